/**
 * The rollout browser of notebook 04 (issue #6): for some prompts, the G rollouts that
 * stage 2 would draw for them (paper Sec. 3.3, Eq. 3-6; official hustvl/LENS stage-2
 * trainer on TRL's GRPOTrainer), each with its decoded completion, parsed box, its own
 * mask, every reward component, the total and the group-normalised advantage.
 *
 * Nothing here re-derives the stage-2 maths: rollouts come from `sampleRollouts`
 * (LENS_ROLLOUT_SAMPLING with the config's temperature / top-p / top-k / G / length),
 * rewards and advantages from `scoreRollouts` (rewards.ts, grpo.ts). The one model call
 * below is the forward pass of `grpoStageLoss` (prompt + sampled completion + context
 * queries -> mask logits at the input side) without the loss, outside any gradient;
 * test/train/rollouts.test.ts checks that both give the same rewards.
 */
import * as tf from '@tensorflow/tfjs-core';
import { extractAnswer, extractThinking, parseBox, type Box } from '../model/answer';
import { repeatRows, type LensModel } from '../model/lens';
import { upsampleMaskLogits } from '../model/sam/mask_decoder';
import type { Tokenizer } from '../model/tokenizer';
import { Rng } from '../random';
import type { TrainExample } from './data';
import { disposeGrpoBatch, resolveGrpoStageConfig, sampleRollouts, scoreRollouts, type GrpoStageConfig } from './grpo_stage';

/** One rollout as the browser shows it. */
export interface RolloutView {
  /** Position in its group, 0..G-1. */
  index: number;
  /** The decoded completion (what the reward functions read). */
  text: string;
  /** Text inside the first `<think>…</think>`, or null when there is none. */
  thinking: string | null;
  /** Text inside the first closed `<answer>…</answer>`, or null. */
  answer: string | null;
  /** Box parsed from the answer, xyxy in model-input pixels; null when none parses (R_box = 0). */
  box: Box | null;
  /** Completion tokens incl. <eos>. */
  length: number;
  /** [S * S] the rollout's own mask at label resolution (the input side S, as R_seg sees it): 1 where logit > 0. */
  mask: Uint8Array;
  /** R_format, R_box, R_seg (rewards.ts, with the config's IoU exponent). */
  format: number;
  boxReward: number;
  seg: number;
  /** R = l1 R_format + l2 R_box + l3 R_seg with the config's weights. */
  total: number;
  /** (R - mean_group) / (std_group + 1e-4) (grpo.ts groupAdvantages). */
  advantage: number;
}

/** One prompt's group of rollouts. */
export interface RolloutGroup {
  example: TrainExample;
  /** Model input side S: masks and boxes are in this resolution (example.rgb, example.target). */
  side: number;
  rollouts: RolloutView[];
}

/** Options of `browseRollouts`. */
export interface RolloutBrowserOptions {
  /**
   * Stage-2 settings (G, sampling, length, reward weights, IoU exponent). Default: the
   * model preset's DEFAULT_GRPO; a notebook passes the finished run's own config.
   */
  config?: GrpoStageConfig;
  /** Seed of the sampling stream (default 0): the same seed draws the same rollouts. */
  seed?: number;
}

/**
 * Draws and scores G rollouts per example exactly as a stage-2 step does (one batch of
 * P = examples.length prompts): examples -> one RolloutGroup each. Leaves
 * tf.memory().numTensors unchanged.
 */
export function browseRollouts(model: LensModel, tokenizer: Tokenizer, examples: readonly TrainExample[], opts: RolloutBrowserOptions = {}): RolloutGroup[] {
  if (examples.length === 0) throw new Error('browseRollouts: examples is empty; expected at least one prompt');
  const cfg = opts.config ?? resolveGrpoStageConfig(model.config.preset);
  const seed = opts.seed ?? 0;
  if (!Number.isInteger(seed)) throw new Error(`browseRollouts: seed must be an integer, got ${seed}`);
  const side = model.config.imageSize;
  const px = side * side;
  const batch = sampleRollouts(model, null, tokenizer, examples, cfg, new Rng(seed).fork('rollouts'));
  try {
    // grpoStageLoss's forward pass: completion + queries -> each rollout's own mask logits.
    const logits = tf.tidy(() => {
      const visual = repeatRows(model.vision.apply(batch.images), batch.G); // [P*G, V, C]
      const out = model.forward({ tokens: batch.tokens, attentionMask: batch.attentionMask, visual, samEmbeddings: batch.samEmbeddings });
      return upsampleMaskLogits(out.masks, side, side); // [P*G, S, S]
    });
    const values = logits.dataSync() as Float32Array;
    logits.dispose();
    const r = scoreRollouts(batch, values, cfg, side);
    return batch.examples.map((example, p) => ({
      example,
      side,
      rollouts: Array.from({ length: batch.G }, (_, g) => {
        const i = p * batch.G + g;
        const text = batch.text[i]!;
        const mask = new Uint8Array(px);
        for (let q = 0; q < px; q++) mask[q] = values[i * px + q]! > 0 ? 1 : 0;
        return {
          index: g,
          text,
          thinking: extractThinking(text),
          answer: extractAnswer(text),
          box: parseBox(text),
          length: batch.lengths[i]!,
          mask,
          format: r.format[i]!,
          boxReward: r.box[i]!,
          seg: r.seg[i]!,
          total: r.total[i]!,
          advantage: r.advantages[i]!,
        };
      }),
    }));
  } finally {
    disposeGrpoBatch(batch);
  }
}
