/**
 * Stage 2, GRPO with unified rewards (paper Sec. 3.3, Eq. 3-6; official hustvl/LENS
 * stage-2 trainer on TRL v0.17 GRPOTrainer, lens-official-code-facts.md "Stage 2").
 *
 * Per step: P prompts x G rollouts sampled from the current policy (LENS_ROLLOUT_SAMPLING:
 * temperature 0.9, top-p 0.9, top-k 50); ONE forward pass of prompt + sampled completion
 * + context queries through the whole model gives both the completion tokens' log-probs
 * and the rollout's OWN mask; each rollout is scored R = l1 R_format + l2 R_box + l3 R_seg
 * (rewards.ts), advantages are group-normalised (grpo.ts), and the loss is
 *   grpoLoss(logp, oldLogp = the rollout's sampling log-probs, refLogp = the frozen
 *   stage-1 MLLM + vision encoder, beta, eps) + alpha * L_seg(mask, GT)   (not detached;
 *   on every rollout, or on those with a right box: segLossOn),
 * SAM's image encoder frozen, everything else trained (STAGE2_MODULES; fewer with `trainable`).
 *
 * With updatesPerBatch = mu > 1 the loop calls `loss(batch, u)` mu times on the same
 * rollouts: rewards and advantages are fixed at u = 0 (the policy that sampled), oldLogp
 * stays the rollout's, so the ratio moves away from 1 and the clip binds (TRL semantics).
 * R_seg is measured at the model's input resolution against the resized target
 * (TrainExample.target), which is what the loss sees too.
 */
import { resolve } from 'node:path';
import * as tf from '@tensorflow/tfjs-core';
import { initBackend } from '../backend';
import { resolveConfig, rules } from '../config';
import { generate, LENS_ROLLOUT_SAMPLING, type GenerationResult } from '../model/generate';
import { applySplit, prefixSplit, repeatRows, STAGE2_MODULES, type LensModel, type Stage2Module } from '../model/lens';
import { IGNORE_LABEL, segLoss } from '../model/losses';
import { shiftedLogProbs } from '../model/mllm';
import type { PresetName } from '../model/presets';
import { upsampleMaskLogits } from '../model/sam/mask_decoder';
import type { Tokenizer } from '../model/tokenizer';
import { Rng } from '../random';
import type { Row } from '../util/arrow';
import { batchIndices, imageTensors, promptIds, type TrainExample } from './data';
import { groupAdvantages, grpoLoss, zeroSpreadFraction } from './grpo';
import { trainLoop, type StepPlan } from './loop';
import { DEFAULT_MAX_NEW_TOKENS, evaluateLens, maskLogitsFor } from './predict';
import { boxIouReward, formatReward, meanStd, segIouReward, unifiedReward, type RewardWeights } from './rewards';
import { Run } from './run';
import { evaluationSplits, loadStageModel, loadStageModelRebuilt, loadTrainingSet, saveStageModel, type StageRunOptions } from './stage_io';

/** How rollouts are drawn: the same fields for stage 2 and the Seg-Zero-style baseline. */
export interface RolloutSettings {
  /** Prompts per step P (official: per-device batch x devices; small here, 2 CPU cores). */
  promptsPerStep: number;
  /** Rollouts per prompt G (official 8). */
  numGenerations: number;
  /** Sampling temperature of the rollouts (official 0.9). */
  temperature: number;
  /** Nucleus mass of the rollouts (official 0.9). */
  topP: number;
  /** Top-k of the rollouts (official 50). */
  topK: number;
  /** Longest rollout (the benchmark's answers take <= ~70 tokens). */
  maxNewTokens: number;
}

/** The official sampling (LENS code, LENS_ROLLOUT_SAMPLING): G 8, temperature 0.9, top-p 0.9, top-k 50. */
export const OFFICIAL_SAMPLING: Pick<RolloutSettings, 'numGenerations' | 'temperature' | 'topP' | 'topK'> = {
  numGenerations: LENS_ROLLOUT_SAMPLING.numSamples!,
  temperature: LENS_ROLLOUT_SAMPLING.temperature!,
  topP: LENS_ROLLOUT_SAMPLING.topP!,
  topK: LENS_ROLLOUT_SAMPLING.topK!,
};

/** Validation of RolloutSettings (config.ts rules). */
export const ROLLOUT_RULES = {
  promptsPerStep: rules.int(1),
  numGenerations: rules.int(2),
  temperature: rules.positive,
  topP: (v: unknown) => (typeof v === 'number' && v > 0 && v <= 1 ? null : 'a number in (0, 1]'),
  topK: rules.int(0),
  maxNewTokens: rules.int(1),
};

/** Stage-2 settings. */
export interface GrpoStageConfig extends RolloutSettings {
  /** Optimiser steps (batches of rollouts); sized to the preset's time budget (measured). */
  steps: number;
  /**
   * Peak lr, linear decay (official 3e-6 for a pretrained 3B model at many more steps).
   * quick runs 80 steps, in which 3e-6 moves a small model's weights by ~1e-4: nothing
   * measurable. quick: 2e-5, measured from one stage 1 against 1e-5 and 5e-5 (80
   * steps of 2 prompts, 16 sentences per family): the reward's gain over the stage-1 policy by quarter was
   * +0.02 .. +0.09, +0.04 .. +0.12 and +0.06 .. +0.25, and held-out cIoU (mean of ten splits)
   * 0.4, 0.7 and 1.2 points below stage 1's (from a later, stronger stage 1, 1e-5 raised the
   * reward on the training prompts by only +0.006; docs/stage0b-grounding.md, "Stage 2"). From
   * the main job's stage 1 since 0a trains 2400 steps (cIoU mean 29.3), both lose a little
   * held-out cIoU at two stage-2 seeds, 2e-5 28.7 / 28.9 and 1e-5 29.2 / 28.9, within the
   * seeds' spread, while 2e-5 raises the scored reward more (to 1.615 / 1.570 from 1.551,
   * against 1.570 / 1.560; "A longer stage 0a"). From the stronger stage 1 of the longer 0b
   * (cIoU mean 31.5), at two seeds, 1e-4 raises the scored reward more (1.624 -> 1.710 / 1.646;
   * 2e-5 1.613 / 1.642), 5e-5 at one seed of two, and both cost held-out cIoU (5e-5 -0.26 /
   * -1.59, 1e-4 -1.84 / -2.04, three intervals excluding 0) and up to 3.5 points of held-out
   * box Acc@0.5, from every training sentence as from the pool of 256 (1e-4: -1.68 / -1.47):
   * updates of 4 x 8 rollouts are too noisy for larger steps; 2e-5 stays within the noise
   * ("Stage 2's learning rate, from the longer 0b").
   */
  lr: number;
  /** Linear warm-up steps (official: none). */
  warmupSteps: number;
  /** Global-norm gradient clip (official 1.0). */
  gradClip: number;
  /** AdamW decoupled weight decay (official 0). */
  weightDecay: number;
  /** KL weight beta, k3 estimator to the frozen stage-1 policy (official 0.04). */
  beta: number;
  /** Clip range eps of the surrogate (official 0.2; binds only with updatesPerBatch > 1). */
  clipEps: number;
  /** Policy updates per batch of rollouts, mu (official 1). */
  updatesPerBatch: number;
  /**
   * Weight alpha of L_seg = BCE + Dice on the rollouts' masks, not detached (official 1.0).
   * From the main job's stage 1, alpha 0 and 4 end -0.26 and -0.65 points of mean cIoU from it,
   * alpha 1 -0.63, all within the evaluation's noise; without L_seg the masks of right boxes keep
   * their cIoU but the boxes drift more (docs/stage0b-grounding.md, "Stage 2 at a fixed box").
   */
  segLossWeight: number;
  /**
   * Which rollouts L_seg trains on: 'all' (the paper and the official code) or 'rightBox', those
   * whose answer's box hits the target (IoU > 0.5, the paper's Acc@0.5), averaged over them
   * (none: no L_seg that step). The rewards see every rollout either way.
   * A choice against the paper's letter, for its effect: at the paper's scale most rollouts
   * answer a right box, so L_seg trains masks read from right boxes; here stage 0b's box is right
   * on 11-25% of sentences, and L_seg on the wrong-box rollouts teaches the queries to look past
   * the box they read, which costs the masks of right boxes about a point. quick: 'rightBox'.
   * From three stage 2s (two stage 1s, two stage-2 seeds) it ended +0.46, +0.30 and +0.13 points
   * of mean cIoU above 'all' (each within the evaluation's noise, all three the same way), its
   * masks at a fixed right box gained 0.5-1.6 where 'all' lost 1.4-2.4, and its scored reward
   * rose in all three ('all': fell in one); docs/stage0b-grounding.md, "Stage 2 at a fixed box".
   * paper: 'all'. tiny: 'all' (its boxes never hit, so 'rightBox' would turn L_seg off).
   */
  segLossOn: 'all' | 'rightBox';
  /**
   * The modules stage 2 trains (STAGE2_MODULES; SAM's image encoder never trains). Default
   * all of them, as the paper ("all else trains") and the official trainer do. From the main
   * job's stage 1 (seed 0), 80 steps training only the vision encoder and the MLLM, or all but
   * SAM's prompt encoder and mask decoder, ended where all of it does, within the evaluation's
   * noise (mean cIoU -0.25 and -0.62 points against stage 1, all -0.63; every 95% paired interval
   * covers 0; docs/stage0b-grounding.md, "Stage 2 at a fixed box").
   */
  trainable: Stage2Module[];
  /** Reward weights l1, l2, l3 of Eq. 3 (paper and official code: all 1). */
  rewardWeights: RewardWeights;
  /**
   * Exponent of the box and mask IoU rewards: 1 = the paper's linear Eq. 3, 2 = the
   * official code's squares. Default 1: the paper is what the ablation tables reproduce,
   * and a linear IoU keeps a graded signal where this small model's IoUs are still low.
   */
  iouExponent: number;
  /**
   * Also sample G rollouts per prompt from the frozen stage-1 model (its queries and mask
   * too) and log their mean reward (`refRewardMean`) and the policy's gain over it
   * (`rewardGain`). The prompts change every step, and at P = 2-4 their difficulty moves the
   * per-step reward more than a run's learning does (a frozen policy's reward moved 0.14
   * between quarters of an 80-step run); the same prompts under the stage-1 policy cancel
   * that. Logging only (the loss does not see it); costs a second set of rollouts, so quick
   * leaves it off (DEFAULT_GRPO). Not in the official trainer.
   */
  logReferenceReward: boolean;
  /**
   * Steps between scorings of the policy on the prompts it trains on (0 = never):
   * `scorePrompts` of the pool, `scoreSamples` rollouts each under one fixed seed, so that two
   * scorings differ only by the policy (common random numbers). Logged on that step's row as
   * `scoreReward` (with `scoreBox`, `scoreSeg`), beside `scoreRefReward`, the stage-1 model's on
   * the same draws (the policy's own score at step 0), and `scoreGain`. This is the curve that
   * says whether the reward rises: the per-step reward moves with each step's few prompts
   * (see logReferenceReward). Not in the official trainer (TRL logs the per-step reward).
   */
  scoreEvery: number;
  /** Prompts of the pool scored, evenly spaced through it (so every family; 0 = all of it). */
  scorePrompts: number;
  /** Rollouts per scored prompt. */
  scoreSamples: number;
  /** Steps between checkpoints. */
  checkpointEvery: number;
  /**
   * Training sentences per family the prompts are drawn from; 0 = all. quick: 64, so each of
   * the 256 prompts comes back about every 64 steps. From 200 per family (no prompt twice in 80
   * steps of 2) the gain over the stage-1 policy stayed within the noise (+-0.05). 16 per family
   * makes the clearest rise on the training prompts (+0.06 in 40 steps of 4) that held-out
   * sentences do not pay for: from the main job's stage 1 of `3ef7bf0` (ten-split cIoU 26.4),
   * 40 steps of 4 gave 26.6 / 26.4 at seeds 0 / 1 from 16 per family, 26.8 / 27.2 from 64, and 80
   * steps of 4 from 64 gave 27.8 / 27.1 (80 from 16: 26.6, seed 0); docs/stage0b-grounding.md,
   * "Stage 2: what its reward says".
   */
  poolPerFamily: number;
  /** Sentences evaluated per evaluation split after training (0 = none; -1 = all). */
  evalLimit: number;
  /** Sentences per evaluation batch. */
  evalBatchSize: number;
  /** Longest greedy completion at evaluation. */
  evalMaxNewTokens: number;
}

const OFFICIAL = {
  ...OFFICIAL_SAMPLING,
  gradClip: 1,
  weightDecay: 0,
  beta: 0.04,
  clipEps: 0.2,
  updatesPerBatch: 1,
  segLossWeight: 1,
  segLossOn: 'all' as GrpoStageConfig['segLossOn'],
  trainable: [...STAGE2_MODULES],
  rewardWeights: { format: 1, box: 1, seg: 1 },
  logReferenceReward: true,
  scoreEvery: 0,
  scorePrompts: 0,
  scoreSamples: 4,
};

/**
 * Per preset. quick: 80 steps of P = 4 prompts x G = 8 rollouts from 64 sentences per family
 * (each prompt seen ~1.3 times), ~1.3 s a step (wasm + native kernels, 2 cores), ~2 min with
 * the scorings of 64 of its prompts every 20 steps (`lens grpo` with evalLimit 0). 240 steps
 * (the default from `5b21c42` to the longer stage 0b) ended 0.4 points of held-out cIoU above
 * 80 on 150 sentences per split at three seeds, but on every sentence 240 steps against stage 1
 * were +0.27, +0.98 and -0.50 (README, "On every sentence"): no gain the 4 minutes could show,
 * and they went to stage 0b and stage 1, which move held-out cIoU by points
 * (docs/stage0b-grounding.md, "Three times the steps"); 400 steps (~9 min) raise the scored
 * reward by 0.09-0.15 where 80 end -0.01 .. +0.04 from it, held-out cIoU within the noise either way
 * ("Stage 2's learning rate, from the longer 0b"). logReferenceReward is off: its second
 * set of rollouts costs about as much as 45 more steps, and the scored reward is the cleaner
 * curve. P = 4 rather than 2: the same rollouts in
 * updates half as noisy (from the stage 1 of `e66565a`, 80 steps of 2 ended at held-out cIoU
 * 26.1, 40 of 4 at 26.6). 64 per family: the best held-out cIoU of the pools measured
 * (poolPerFamily). The main job evaluates run folders itself and passes evalLimit 0. tiny: a
 * handful (tests).
 */
export const DEFAULT_GRPO: Record<PresetName, GrpoStageConfig> = {
  tiny: { ...OFFICIAL, numGenerations: 4, steps: 3, promptsPerStep: 2, maxNewTokens: 12, lr: 1e-4, warmupSteps: 0, iouExponent: 1, checkpointEvery: 2, scoreEvery: 2, scorePrompts: 2, scoreSamples: 2, poolPerFamily: 4, evalLimit: 2, evalBatchSize: 4, evalMaxNewTokens: 12 },
  quick: { ...OFFICIAL, segLossOn: 'rightBox', logReferenceReward: false, steps: 80, promptsPerStep: 4, maxNewTokens: DEFAULT_MAX_NEW_TOKENS, lr: 2e-5, warmupSteps: 4, iouExponent: 1, checkpointEvery: 20, scoreEvery: 20, scorePrompts: 64, poolPerFamily: 64, evalLimit: 50, evalBatchSize: 16, evalMaxNewTokens: DEFAULT_MAX_NEW_TOKENS },
  paper: { ...OFFICIAL, steps: 1000, promptsPerStep: 4, maxNewTokens: DEFAULT_MAX_NEW_TOKENS, lr: 1e-5, warmupSteps: 10, iouExponent: 1, checkpointEvery: 50, scoreEvery: 50, scorePrompts: 256, poolPerFamily: 0, evalLimit: -1, evalBatchSize: 16, evalMaxNewTokens: DEFAULT_MAX_NEW_TOKENS },
};

const GRPO_RULES = {
  steps: rules.int(1),
  ...ROLLOUT_RULES,
  lr: rules.positive,
  warmupSteps: rules.int(0),
  gradClip: rules.positive,
  weightDecay: rules.nonNegative,
  beta: rules.nonNegative,
  clipEps: rules.range(0, 1),
  updatesPerBatch: rules.int(1),
  segLossWeight: rules.nonNegative,
  segLossOn: rules.oneOf('all', 'rightBox'),
  trainable: (v: unknown) =>
    Array.isArray(v) && v.length > 0 && v.every((m) => (STAGE2_MODULES as readonly unknown[]).includes(m)) && new Set(v).size === v.length
      ? null
      : `a non-empty list of distinct modules from ${STAGE2_MODULES.map((m) => JSON.stringify(m)).join(', ')}`,
  'rewardWeights.format': rules.nonNegative,
  'rewardWeights.box': rules.nonNegative,
  'rewardWeights.seg': rules.nonNegative,
  iouExponent: rules.positive,
  logReferenceReward: rules.oneOf(true, false),
  scoreEvery: rules.int(0),
  scorePrompts: rules.int(0),
  scoreSamples: rules.int(1),
  checkpointEvery: rules.int(1),
  poolPerFamily: rules.int(0),
  evalLimit: rules.int(-1),
  evalBatchSize: rules.int(1),
  evalMaxNewTokens: rules.int(1),
};

/** The preset's defaults with `delta` applied, validated (errors name the field). */
export function resolveGrpoStageConfig(preset: PresetName, delta: unknown = {}, where = 'grpo config'): GrpoStageConfig {
  const base = DEFAULT_GRPO[preset];
  if (!base) throw new Error(`${where}: preset must be one of ${Object.keys(DEFAULT_GRPO).join(', ')}, got ${JSON.stringify(preset)}`);
  return resolveConfig(base, delta, where, GRPO_RULES);
}

/** Per-rollout rewards of one batch. */
export interface RolloutRewards {
  format: number[];
  box: number[];
  seg: number[];
  total: number[];
  advantages: number[];
}

/** One step's rollouts and everything the loss needs (tensors disposed by `dispose`). */
export interface GrpoBatch {
  examples: TrainExample[];
  /** Rollouts per prompt. */
  G: number;
  /** [P, S, S, 3] the prompts' images (the vision encoder trains: re-encoded in the loss). */
  images: tf.Tensor4D;
  /** [P*G, h, w, C] frozen SAM image embeddings, repeated per rollout. */
  samEmbeddings: tf.Tensor4D;
  /** [P*G, S, S] targets 0 / 1 / 255, repeated per rollout. */
  labels: tf.Tensor3D;
  /** int32 [P*G, T] left-padded prompt then completion; [P*G, T] attention mask. */
  tokens: tf.Tensor2D;
  attentionMask: tf.Tensor2D;
  /** [P*G, N] 1 on completion tokens (incl. <eos>). */
  completionMask: tf.Tensor2D;
  promptLength: number;
  /** [P*G, N] sampling log-probs (detached), zeros on padding. */
  oldLogp: tf.Tensor2D;
  /** [P*G, N] frozen reference log-probs; null when beta = 0. */
  refLogp: tf.Tensor2D | null;
  /** Decoded completions. */
  text: string[];
  /** Completion lengths (tokens incl. <eos>). */
  lengths: number[];
  /** Wall seconds spent sampling and scoring the reference (step-time logs). */
  rolloutSeconds: number;
  /** Filled by the first update (u = 0). */
  rewards?: RolloutRewards;
  /** The frozen stage-1 model's rewards on G rollouts of its own per prompt (logReferenceReward). */
  reference?: Omit<RolloutRewards, 'advantages'>;
}

/** The frozen reference: the stage-1 model (its MLLM and vision encoder give the KL; all of it the reference reward). */
export type ReferencePolicy = LensModel;

/** Samples step `step`'s rollouts and scores the reference log-probs (no gradient). */
export function sampleRollouts(
  model: LensModel,
  ref: ReferencePolicy | null,
  tokenizer: Tokenizer,
  examples: readonly TrainExample[],
  cfg: GrpoStageConfig,
  rng: Rng,
): GrpoBatch {
  const t0 = performance.now();
  const side = model.config.imageSize;
  const G = cfg.numGenerations;
  const exs = examples.slice();
  const { images, labels: labelsP } = imageTensors(exs, side);
  const visual = tf.tidy(() => model.vision.apply(images));
  let gen: GenerationResult;
  try {
    gen = drawRollouts(model.mllm, tokenizer, exs, visual, cfg, rng);
  } finally {
    visual.dispose();
  }
  const B = gen.sequences.length;
  const T = gen.sequences[0]!.length;
  const N = T - gen.promptLength;
  const old = new Float32Array(B * N);
  gen.logProbs.forEach((lp, r) => old.set(lp, r * N));
  const tokens = tf.tensor2d(gen.sequences.flat(), [B, T], 'int32');
  const attentionMask = tf.tensor2d(gen.attentionMask.flat(), [B, T], 'int32');
  const refLogp =
    ref && cfg.beta !== 0
      ? tf.tidy(() => {
          const v = repeatRows(ref.vision.apply(images), G); // [B, V, C]
          const { logits, hidden } = ref.mllm.forward({ tokens, attentionMask, visual: v });
          hidden.dispose();
          return shiftedLogProbs(logits, tokens, gen.promptLength, attentionMask); // [B, N]
        })
      : null;
  const samEmbeddings = tf.tidy(() => repeatRows(model.sam.embedImage(images), G));
  const labels = repeatRows(labelsP, G);
  labelsP.dispose();
  const reference = ref && cfg.logReferenceReward ? sampledRewards(ref, tokenizer, exs, images, samEmbeddings, cfg, rng.fork('reference')) : undefined;
  return {
    examples: exs,
    G,
    images,
    samEmbeddings,
    labels,
    tokens,
    attentionMask,
    completionMask: tf.tensor2d(gen.completionMask.flat(), [B, N], 'float32'),
    promptLength: gen.promptLength,
    oldLogp: tf.tensor2d(old, [B, N]),
    refLogp,
    text: gen.text,
    lengths: gen.completionMask.map((m) => m.reduce((a, x) => a + x, 0)),
    rolloutSeconds: (performance.now() - t0) / 1000,
    ...(reference ? { reference } : {}),
  };
}

/** G rollouts per prompt from `mllm` under the settings' sampling, the prompts' visual tokens [P, V, C] given (no tensor left). */
function drawRollouts(mllm: LensModel['mllm'], tokenizer: Tokenizer, examples: readonly TrainExample[], visual: tf.Tensor3D, cfg: RolloutSettings, rng: Rng): GenerationResult {
  return generate(
    mllm,
    tokenizer,
    { prompts: examples.map((e) => promptIds(tokenizer, e, visual.shape[1])), visual },
    { ...LENS_ROLLOUT_SAMPLING, numSamples: cfg.numGenerations, temperature: cfg.temperature, topP: cfg.topP, topK: cfg.topK, maxNewTokens: cfg.maxNewTokens },
    rng,
  );
}

/**
 * `model`'s rewards on G (cfg.numGenerations) rollouts of its own per prompt, drawn as the
 * policy's are, each scored with its own mask: the frozen reference's on a step's prompts
 * (logReferenceReward), and any model's in a `PromptScorer`. `samEmbeddings` are the prompts'
 * SAM image embeddings repeated per rollout. No gradient; no tensor left.
 */
function sampledRewards(
  model: LensModel,
  tokenizer: Tokenizer,
  examples: readonly TrainExample[],
  images: tf.Tensor4D,
  samEmbeddings: tf.Tensor4D,
  cfg: GrpoStageConfig,
  rng: Rng,
): Omit<RolloutRewards, 'advantages'> {
  const G = cfg.numGenerations;
  const side = images.shape[1];
  const visual = tf.tidy(() => model.vision.apply(images)); // [P, V, C]: for the rollouts and their masks
  let masks: tf.Tensor3D;
  let gen: GenerationResult;
  try {
    gen = drawRollouts(model.mllm, tokenizer, examples, visual, cfg, rng);
    const B = gen.sequences.length;
    const T = gen.sequences[0]!.length;
    masks = tf.tidy(() => {
      const tokens = tf.tensor2d(gen.sequences.flat(), [B, T], 'int32');
      const attentionMask = tf.tensor2d(gen.attentionMask.flat(), [B, T], 'int32');
      return upsampleMaskLogits(maskLogitsFor(model, tokens, attentionMask, { visual: repeatRows(visual, G), samEmbeddings }), side, side);
    });
  } finally {
    visual.dispose();
  }
  const logits = masks.dataSync() as Float32Array;
  masks.dispose();
  const { advantages: _, ...r } = rewardsOf(examples, G, gen.text, logits, cfg, side);
  return r;
}

/** Mean rewards of a scoring (`PromptScorer`). */
export interface PromptScore {
  reward: number;
  format: number;
  box: number;
  seg: number;
}

/**
 * Scores models on fixed prompts: `samples` rollouts each, in chunks of `chunk` prompts whose
 * draws are seeded from `seed` and the chunk's place alone, so the same model gets the same
 * score and two models are compared on the same random numbers (scoreEvery). The prompts'
 * pictures and SAM image embeddings are made once, with `encoder`'s SAM: score only models
 * whose SAM image encoder is the same (stage 2 freezes it, so the policy's and the stage-1
 * model's are). `dispose` frees them.
 */
export class PromptScorer {
  private readonly chunks: Array<{ examples: TrainExample[]; images: tf.Tensor4D; samEmbeddings: tf.Tensor4D }> = [];

  constructor(
    encoder: LensModel,
    readonly examples: readonly TrainExample[],
    readonly opts: { samples: number; seed: number; chunk?: number },
  ) {
    const chunk = opts.chunk ?? 8;
    for (let s = 0; s < examples.length; s += chunk) {
      const exs = examples.slice(s, s + chunk);
      const { images, labels } = imageTensors(exs, encoder.config.imageSize);
      labels.dispose();
      this.chunks.push({ examples: exs, images, samEmbeddings: tf.tidy(() => repeatRows(encoder.sam.embedImage(images), opts.samples)) });
    }
  }

  /** `model`'s mean rewards over every prompt and rollout. No tensor left. */
  score(model: LensModel, tokenizer: Tokenizer, cfg: GrpoStageConfig): PromptScore {
    const { samples, seed, chunk = 8 } = this.opts;
    const sum = { reward: 0, format: 0, box: 0, seg: 0 };
    const root = new Rng(seed).fork('score');
    this.chunks.forEach((c, i) => {
      const r = sampledRewards(model, tokenizer, c.examples, c.images, c.samEmbeddings, { ...cfg, numGenerations: samples }, root.fork(`chunk-${i * chunk}`));
      for (const [k, xs] of [['reward', r.total], ['format', r.format], ['box', r.box], ['seg', r.seg]] as const) sum[k] += xs.reduce((a, x) => a + x, 0);
    });
    const n = this.examples.length * samples;
    return { reward: sum.reward / n, format: sum.format / n, box: sum.box / n, seg: sum.seg / n };
  }

  dispose(): void {
    for (const c of this.chunks) tf.dispose([c.images, c.samEmbeddings]);
    this.chunks.length = 0;
  }
}

/** `model`'s mean reward on `examples` (a PromptScorer of its own, used once). */
export function scoreOnPrompts(
  model: LensModel,
  tokenizer: Tokenizer,
  examples: readonly TrainExample[],
  cfg: GrpoStageConfig,
  opts: { samples: number; seed: number; chunk?: number },
): PromptScore {
  const scorer = new PromptScorer(model, examples, opts);
  try {
    return scorer.score(model, tokenizer, cfg);
  } finally {
    scorer.dispose();
  }
}

/**
 * Stage 2's scorings read back from its step logs: the stage-1 model's score (null when not
 * logged) and the policy's after each scored step (the row of step s holds the score after
 * s + 1 steps; scoringAfterStep). Empty when the run scored nothing.
 */
export function scoreCurve(steps: readonly Row[]): { ref: number | null; after: number[]; reward: number[] } {
  const scored = steps.filter((r) => typeof r.scoreReward === 'number' && Number.isFinite(r.scoreReward) && typeof r.step === 'number');
  const ref = scored.find((r) => typeof r.scoreRefReward === 'number' && Number.isFinite(r.scoreRefReward))?.scoreRefReward as number | undefined;
  return { ref: ref ?? null, after: scored.map((r) => (r.step as number) + 1), reward: scored.map((r) => r.scoreReward as number) };
}

/** Scores every rollout (R_format, R_box, R_seg from its own mask logits [B, S*S]) and group-normalises. */
export function scoreRollouts(batch: GrpoBatch, maskLogits: Float32Array, cfg: GrpoStageConfig, side: number): RolloutRewards {
  return rewardsOf(batch.examples, batch.G, batch.text, maskLogits, cfg, side);
}

/** Rewards of completions `texts` (G per example, prompt-major) with their mask logits [B, S*S]. */
function rewardsOf(examples: readonly TrainExample[], G: number, texts: readonly string[], maskLogits: Float32Array, cfg: GrpoStageConfig, side: number): RolloutRewards {
  const px = side * side;
  const r: RolloutRewards = { format: [], box: [], seg: [], total: [], advantages: [] };
  texts.forEach((text, i) => {
    const e = examples[Math.floor(i / G)]!;
    const parts = {
      format: formatReward(text),
      box: boxIouReward(text, e.box, { exponent: cfg.iouExponent, imageSize: side }),
      seg: segIouReward(maskLogits.subarray(i * px, (i + 1) * px), e.target, { exponent: cfg.iouExponent }),
    };
    r.format.push(parts.format);
    r.box.push(parts.box);
    r.seg.push(parts.seg);
    r.total.push(unifiedReward(parts, cfg.rewardWeights));
  });
  r.advantages = groupAdvantages(r.total, G);
  return r;
}

/**
 * The rollouts L_seg trains on (`segLossOn`), 1 each, from their box rewards R_box = IoU^e:
 * every one, or those whose box IoU is above 0.5.
 * @example segLossRows([0.9, 0.3, 0.6], { segLossOn: 'rightBox', iouExponent: 1 }) // [1, 0, 1]
 */
export function segLossRows(box: readonly number[], cfg: Pick<GrpoStageConfig, 'segLossOn' | 'iouExponent'>): number[] {
  if (cfg.segLossOn === 'all') return box.map(() => 1);
  const hit = Math.pow(0.5, cfg.iouExponent);
  return box.map((r) => (r > hit ? 1 : 0));
}

/**
 * L_seg (BCE + Dice, each averaged over masks) over the rows marked 1 only: the others' labels
 * are all ignore pixels, so they add 0 to both terms, and the mean is rescaled to theirs.
 * No row marked: 0 (no gradient).
 */
export function segLossOnRows(logits: tf.Tensor3D, labels: tf.Tensor3D, rows: readonly number[]): tf.Scalar {
  const n = rows.reduce((a, r) => a + r, 0);
  if (n === rows.length) return segLoss(logits, labels);
  if (n === 0) return tf.scalar(0);
  return tf.tidy(() => {
    const keep = tf.tensor3d(rows.slice(), [rows.length, 1, 1]);
    const masked = tf.add(tf.mul(tf.cast(labels, 'float32'), keep), tf.mul(IGNORE_LABEL, tf.sub(1, keep))) as tf.Tensor3D;
    return tf.mul(segLoss(logits, masked), rows.length / n) as tf.Scalar;
  });
}

/**
 * The stage-2 loss of update `u` on a batch: one forward pass -> logp + masks; rewards
 * at u = 0; grpoLoss + alpha * L_seg. Returns the loss and its parts for the logs.
 */
export function grpoStageLoss(model: LensModel, batch: GrpoBatch, cfg: GrpoStageConfig, u: number): { loss: tf.Scalar; logs: Record<string, tf.Scalar> } {
  const side = model.config.imageSize;
  const visual = repeatRows(model.vision.apply(batch.images), batch.G); // [B, V, C], trains the vision encoder
  const out = model.forward({ tokens: batch.tokens, attentionMask: batch.attentionMask, visual, samEmbeddings: batch.samEmbeddings });
  const logp = shiftedLogProbs(out.logits, batch.tokens, batch.promptLength, batch.attentionMask); // [B, N]
  const masks = upsampleMaskLogits(out.masks, side, side); // [B, S, S]
  if (u === 0 || !batch.rewards) batch.rewards = scoreRollouts(batch, masks.dataSync() as Float32Array, cfg, side);
  const adv = tf.tensor1d(batch.rewards.advantages);
  const g = grpoLoss({ logp, oldLogp: batch.oldLogp, refLogp: batch.refLogp, advantages: adv, mask: batch.completionMask, beta: cfg.beta, clipEps: cfg.clipEps });
  const seg = segLossOnRows(masks, batch.labels, segLossRows(batch.rewards.box, cfg));
  const loss = tf.add(g.loss, tf.mul(seg, cfg.segLossWeight)) as tf.Scalar;
  return { loss, logs: { grpoLoss: g.loss, kl: g.kl, clipFraction: g.clipFraction, segLoss: seg } };
}

/** Host-side figures of a scored batch: every reward component's mean / std, format rate, zero spread, length. */
export function rolloutLogs(batch: GrpoBatch): Record<string, number> {
  const r = batch.rewards;
  if (!r) return {};
  const row: Record<string, number> = {};
  for (const [k, xs] of [['reward', r.total], ['format', r.format], ['box', r.box], ['seg', r.seg]] as const) {
    const { mean, std } = meanStd(xs);
    row[`${k}Mean`] = mean;
    row[`${k}Std`] = std;
  }
  if (batch.reference) {
    for (const [k, xs] of [['refReward', batch.reference.total], ['refBox', batch.reference.box], ['refSeg', batch.reference.seg]] as const) row[`${k}Mean`] = meanStd(xs).mean;
    row.rewardGain = row.rewardMean! - row.refRewardMean!;
  }
  row.formatRate = r.format.reduce((a, x) => a + x, 0) / r.format.length;
  row.zeroSpread = zeroSpreadFraction(r.total, batch.G);
  row.completionLength = meanStd(batch.lengths).mean;
  row.rolloutSeconds = batch.rolloutSeconds;
  return row;
}

/** Frees a batch's tensors. */
export function disposeGrpoBatch(b: GrpoBatch): void {
  tf.dispose([b.images, b.samEmbeddings, b.labels, b.tokens, b.attentionMask, b.completionMask, b.oldLogp]);
  b.refLogp?.dispose();
}

/**
 * The stage-2 step plan: P prompts from batchIndices, G rollouts each, `updatesPerBatch`
 * updates; with a `scorer`, its scorings every scoreEvery steps (the caller disposes it).
 */
export function grpoPlan(model: LensModel, ref: ReferencePolicy | null, tokenizer: Tokenizer, pool: readonly TrainExample[], cfg: GrpoStageConfig, scorer: PromptScorer | null = null): StepPlan<GrpoBatch> {
  return {
    prepare: (step, rng) => {
      const idx = batchIndices(pool.length, cfg.promptsPerStep, step, rng.fork('prompts'));
      return sampleRollouts(model, ref, tokenizer, idx.map((i) => pool[i]!), cfg, rng.fork('rollouts'));
    },
    loss: (b, u) => grpoStageLoss(model, b, cfg, u),
    hostLogs: rolloutLogs,
    dispose: disposeGrpoBatch,
    updatesPerBatch: cfg.updatesPerBatch,
    afterStep: scorer && cfg.scoreEvery > 0 ? scoringAfterStep(model, ref, tokenizer, scorer, cfg) : undefined,
  };
}

/**
 * `k` items of `xs` evenly spaced through it (all of it when k is 0 or not below its length):
 * the pool is family by family, so every family is scored.
 * @example evenlySpaced([0, 1, 2, 3, 4, 5], 3) // [0, 2, 4]
 */
export function evenlySpaced<T>(xs: readonly T[], k: number): T[] {
  if (k <= 0 || k >= xs.length) return xs.slice();
  return Array.from({ length: k }, (_, j) => xs[Math.floor((j * xs.length) / k)]!);
}

/**
 * scoreEvery's figures after `steps` steps, every scoreEvery steps and after the last: the
 * policy's score and the reference's (the stage-1 model, scored once), or {} in between.
 */
function scoringAfterStep(model: LensModel, ref: ReferencePolicy | null, tokenizer: Tokenizer, scorer: PromptScorer, cfg: GrpoStageConfig): (steps: number) => Record<string, number> {
  let refScore: PromptScore | null = null;
  return (steps) => {
    if (steps % cfg.scoreEvery !== 0 && steps !== cfg.steps) return {};
    const s = scorer.score(model, tokenizer, cfg);
    refScore ??= ref ? scorer.score(ref, tokenizer, cfg) : null;
    return {
      scoreReward: s.reward,
      scoreBox: s.box,
      scoreSeg: s.seg,
      ...(refScore ? { scoreRefReward: refScore.reward, scoreGain: s.reward - refScore.reward } : {}),
    };
  };
}

/** Options of runGrpo (the convention of every stage). */
export type GrpoRunOptions = StageRunOptions<GrpoStageConfig>;

/**
 * Stage 2 end to end: load the stage-1 model twice (policy, frozen reference), train the
 * stage-2 set with GRPO + L_seg, evaluate, write model.safetensors + tokenizer.json and
 * metrics.arrow into `out`.
 */
export async function runGrpo(opts: GrpoRunOptions): Promise<{ dir: string; metrics: Row[]; config: GrpoStageConfig }> {
  if (!opts.from) throw new Error('grpo: --from DIR is required (the stage-1 run folder holding model.safetensors and tokenizer.json)');
  const backend = await initBackend({ quiet: true });
  const cfg = resolveGrpoStageConfig(opts.preset, opts.config ?? {});
  const from = resolve(opts.from);
  const { model, tokenizer } = opts.model ? loadStageModelRebuilt(from, opts.model, opts.seed) : loadStageModel(from);
  // the KL reads only the reference's vision + MLLM (the same either way); its rewards and scores all of it
  const refModel = cfg.beta !== 0 || cfg.logReferenceReward || cfg.scoreEvery > 0 ? loadStageModel(from).model : null;
  let scorer: PromptScorer | null = null;
  try {
    refModel?.setTrainable(false);
    const config = { preset: opts.preset, from, data: resolve(opts.dataRoot), grpo: cfg, ...(opts.model ? { model: opts.model } : {}) };
    const run = Run.open(opts.out, { kind: 'grpo', seed: opts.seed, backend, config, resume: opts.resume });
    const pool = await loadTrainingSet(opts.dataRoot, model.config.imageSize, { limitPerFamily: cfg.poolPerFamily || undefined, quiet: opts.quiet ?? false });
    if (pool.length < cfg.promptsPerStep) throw new Error(`grpo: ${pool.length} training sentences under ${opts.dataRoot}, fewer than promptsPerStep ${cfg.promptsPerStep}`);
    // one seed for every scoring, so that scorings differ only by the policy
    if (cfg.scoreEvery > 0) scorer = new PromptScorer(model, evenlySpaced(pool, cfg.scorePrompts), { samples: cfg.scoreSamples, seed: 0x5c0e });
    const split = prefixSplit(model, cfg.trainable.map((m) => `${m}.`));
    applySplit(split);
    const params = split.trainable;
    await trainLoop(
      {
        run,
        model,
        params,
        totalSteps: cfg.steps,
        schedule: { kind: 'linear', lr: cfg.lr, warmupSteps: cfg.warmupSteps, totalSteps: cfg.steps * cfg.updatesPerBatch },
        gradClip: cfg.gradClip,
        adamw: { weightDecay: cfg.weightDecay },
        checkpointEvery: cfg.checkpointEvery,
        seed: opts.seed,
        label: 'grpo',
        quiet: opts.quiet,
        stopAfter: opts.stopAfter,
      },
      grpoPlan(model, refModel, tokenizer, pool, cfg, scorer),
    );
    saveStageModel(run.dir, model, tokenizer, { stage: 'stage2' });
    const metrics: Row[] = [];
    if (cfg.evalLimit !== 0) {
      const rows = await evaluateLens(model, tokenizer, opts.dataRoot, evaluationSplits(), {
        limit: cfg.evalLimit < 0 ? undefined : cfg.evalLimit,
        batchSize: cfg.evalBatchSize,
        maxNewTokens: cfg.evalMaxNewTokens,
      });
      for (const r of rows) metrics.push({ model: 'lens-stage2', ...r });
    }
    run.finish(metrics);
    return { dir: run.dir, metrics, config: cfg };
  } finally {
    scorer?.dispose();
    model.dispose();
    refModel?.dispose();
  }
}
