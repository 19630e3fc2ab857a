/**
 * Training the two baselines the paper's tables compare LENS with (paper Table 5 and
 * Fig. 1 (a) / (b); DESIGN.md "Training"), from the same stage-0 parts as LENS:
 *
 * - LISA-style (dvlab-research/LISA `model/LISA.py`, `train_ds.py`): supervised. The
 *   answer is one short FIXED string, LISA's "Sure, it is [SEG]." analogue: our
 *   tokenizer has no [SEG] token, so the answer is `<answer></answer>` and its
 *   `</answer>` plays [SEG] (LisaModel's default segTokenId); no reasoning, no box.
 *   Loss = 1.0 * token CE + 2.0 * BCE + 0.5 * Dice, LISA's `ce_loss_weight`,
 *   `bce_loss_weight`, `dice_loss_weight` (the quick preset uses 1:1, measured; DEFAULT_LISA). Frozen as in LISA: vision tower and SAM's
 *   image encoder (their outputs are computed once per batch, outside the tape).
 * - Seg-Zero-style (dvlab-research/Seg-Zero): the MLLM answers in the LENS format; its
 *   box prompts a FROZEN SAM. GRPO (src/train/grpo.ts, TRL v0.17 semantics as LENS) on
 *   R = w_format * R_format + w_box * R_box only (no mask reward: the mask never feeds
 *   back). Seg-Zero's own rewards are 0/1 thresholds plus point rewards; we use the
 *   VLM-R1 / LENS-code continuous box IoU (with the same exponent field as LENS stage 2)
 *   so the two RL methods differ only in what is rewarded and how SAM is prompted.
 *
 * Both start from a stage-0 run folder (`--from`): vision + MLLM from 0b, SAM from 0a
 * (one LensModel file holds both), copied by parameter name. Each run folder ends with
 * model.safetensors (component 'lisa' / 'segzero', with its LensConfig) + tokenizer.json.
 */
import { join } from 'node:path';
import * as tf from '@tensorflow/tfjs-core';
import { initBackend } from '../backend';
import { resolveConfig, rules, type ConfigDelta } from '../config';
import type { Box } from '../model/answer';
import { LisaModel, SegZeroModel } from '../model/baselines';
import { generate, toRescoreTensors } from '../model/generate';
import { segLoss, tokenCrossEntropy } from '../model/losses';
import { shiftedLogProbs } from '../model/mllm';
import type { Module } from '../model/nn';
import { resolveLensConfig, type LensConfig, type LensConfigDelta, type PresetName } from '../model/presets';
import { upsampleMaskLogits } from '../model/sam/mask_decoder';
import { ANSWER_END_ID, EOS_ID, padSequences, UNK_ID, type Tokenizer } from '../model/tokenizer';
import { repeatRows } from '../model/lens';
import { Rng } from '../random';
import { loadModule, readSafetensors, saveModule } from '../util/safetensors';
import { batchIndices, imageTensors, promptIds, type TrainExample } from './data';
import { groupAdvantages, grpoLoss, zeroSpreadFraction } from './grpo';
import { boxIouReward, formatReward } from './rewards';
import { trainLoop, type StepPlan } from './loop';
import { Run } from './run';
import type { Schedule } from './schedule';
import { OFFICIAL_SAMPLING, ROLLOUT_RULES, type RolloutSettings } from './grpo_stage';
import { DEFAULT_MAX_NEW_TOKENS } from './predict';
import { loadStageModel, loadTrainingSet, MODEL_FILE, TOKENIZER_FILE } from './stage_io';

export const BASELINE_KINDS = ['lisa', 'segzero'] as const;
/** Which baseline. */
export type BaselineKind = (typeof BASELINE_KINDS)[number];
/** A trained baseline model. */
export type BaselineModel = LisaModel | SegZeroModel;

// ---------------------------------------------------------------------------
// Configs
// ---------------------------------------------------------------------------

/** Optimisation fields shared by both baselines. */
export interface BaselineOptimConfig {
  /** Optimiser steps (quick: fitted to the ~2.5 min budget of `npm start`, measured; see DEFAULT_). */
  steps: number;
  /** Peak learning rate. */
  lr: number;
  /** Linear warm-up steps. */
  warmupSteps: number;
  /** Global-norm gradient clip (LISA / TRL / LENS code: 1.0). */
  gradClip: number;
  /** AdamW weight decay (LISA: 0.0; TRL / LENS: 0.0). */
  weightDecay: number;
  /** Checkpoint every this many steps (resume granularity). */
  checkpointEvery: number;
  /** Training sentences per family (0 = all); caps load time on large data. */
  limitPerFamily: number;
}

/** LISA-style supervised training. */
export interface LisaTrainConfig extends BaselineOptimConfig {
  /** Sentences per step (LISA: 10 per GPU x 10 accumulation x 8 GPUs; ours fits two CPU cores). */
  batchSize: number;
  /** The fixed answer; must contain the segmentation token `</answer>` (LISA: "Sure, it is [SEG]."). */
  answer: string;
  /** Token CE weight (LISA `ce_loss_weight` 1.0). */
  ceWeight: number;
  /** Mask BCE weight (LISA `bce_loss_weight` 2.0; quick 1.0, see DEFAULT_LISA). */
  bceWeight: number;
  /** Mask Dice weight (LISA `dice_loss_weight` 0.5; quick 1.0, see DEFAULT_LISA). */
  diceWeight: number;
  /** Learning-rate schedule (LISA: WarmupDecayLR, i.e. linear decay after warm-up). */
  schedule: 'linear' | 'cosine' | 'constant';
}

/** Seg-Zero-style GRPO on format + box rewards. */
export interface SegZeroTrainConfig extends BaselineOptimConfig, RolloutSettings {
  /** Reward weight of the think/answer format (0/1). */
  formatWeight: number;
  /** Reward weight of the box IoU. */
  boxWeight: number;
  /** R_box = IoU^exponent (LENS code squares: 2; paper / VLM-R1 linear: 1, as stage 2's presets). */
  boxExponent: number;
  /** KL weight to the frozen stage-0b policy (TRL / LENS code: 0.04). */
  beta: number;
  /** Clip range (TRL / LENS: 0.2). */
  clipEps: number;
  /** Policy updates per batch mu (LENS code: 1). */
  updatesPerBatch: number;
}

const OPTIM_RULES = {
  steps: rules.int(1),
  lr: rules.positive,
  warmupSteps: rules.int(0),
  gradClip: rules.positive,
  weightDecay: rules.nonNegative,
  checkpointEvery: rules.int(1),
  limitPerFamily: rules.int(0),
};

/**
 * LISA defaults per preset. lr: LISA trains with 3e-4 (LoRA); full fine-tuning of the
 * small model is stable at 1e-3 here. quick: measured ~0.9 s CPU per step at batch 8
 * (wasm + native matmul; 120 steps in 106 s wall with the machine at load ~7), so 120
 * steps ≈ 2 min; 300 sentences per family ≈ one epoch of 120 x 8.
 * Mask-loss weights: tiny and paper use LISA's BCE 2.0 + Dice 0.5. quick uses LENS's 1:1
 * instead, a measured deviation: from the same stage-0 run, 120 steps with LISA's weights
 * collapse to near-empty masks (refcoco/val gIoU 2.7 at lr 1e-3, 4.8 at LISA's lr 3e-4;
 * the seg loss sits at the empty-mask plateau ~0.67), while 1:1 reaches gIoU 18.4
 * (100 sentences each). LISA trains for far longer, where the weighting matters less.
 * `--config '{"bceWeight": 2, "diceWeight": 0.5}'` restores LISA's weights.
 * Longer, from the main job's stage 0 of `5b21c42` (ten-split cIoU mean; 120 steps: 18.2): 480
 * steps 20.2 (1 min); 1920 steps on the same 1,200 sentences 16.7, over-fitted; 1920 on all
 * ~10,000 (`limitPerFamily` 0) 22.3, in 4.8 min, still far below that job's stage 1 (29.3): a fixed answer leaves
 * the [SEG] state to find the target with no reasoning or box to lean on, and the job's 30
 * minutes have no room for it (README, "The main job").
 */
export const DEFAULT_LISA: Record<PresetName, LisaTrainConfig> = {
  tiny: { steps: 4, lr: 3e-3, warmupSteps: 1, gradClip: 1, weightDecay: 0, checkpointEvery: 2, limitPerFamily: 8, batchSize: 4, answer: '<answer></answer>', ceWeight: 1, bceWeight: 2, diceWeight: 0.5, schedule: 'linear' },
  quick: { steps: 120, lr: 1e-3, warmupSteps: 10, gradClip: 1, weightDecay: 0, checkpointEvery: 20, limitPerFamily: 300, batchSize: 8, answer: '<answer></answer>', ceWeight: 1, bceWeight: 1, diceWeight: 1, schedule: 'linear' },
  paper: { steps: 3000, lr: 3e-4, warmupSteps: 100, gradClip: 1, weightDecay: 0, checkpointEvery: 100, limitPerFamily: 0, batchSize: 16, answer: '<answer></answer>', ceWeight: 1, bceWeight: 2, diceWeight: 0.5, schedule: 'linear' },
};

/**
 * Seg-Zero defaults per preset. G, sampling, KL, clip, IoU exponent and completion cap as LENS
 * stage 2 (grpo_stage.ts), so that the two RL methods differ in what is rewarded and how SAM is
 * prompted. lr: the official 3e-6 is for a pretrained 3B model; the stage-0b mini-MLLM needs
 * 5e-5 to move in a few dozen steps. quick: 80 steps of P = 2 prompts, ~0.8 min in the main job
 * (no mask path, no reference rollouts); LENS's stage 2 runs 80 of P = 4 there, ~2 min.
 */
export const DEFAULT_SEGZERO: Record<PresetName, SegZeroTrainConfig> = {
  tiny: {
    steps: 3, lr: 1e-3, warmupSteps: 0, gradClip: 1, weightDecay: 0, checkpointEvery: 2, limitPerFamily: 8,
    ...OFFICIAL_SAMPLING, promptsPerStep: 2, numGenerations: 2, maxNewTokens: 12,
    formatWeight: 1, boxWeight: 1, boxExponent: 1, beta: 0.04, clipEps: 0.2, updatesPerBatch: 1,
  },
  quick: {
    steps: 80, lr: 5e-5, warmupSteps: 4, gradClip: 1, weightDecay: 0, checkpointEvery: 20, limitPerFamily: 200,
    ...OFFICIAL_SAMPLING, promptsPerStep: 2, maxNewTokens: DEFAULT_MAX_NEW_TOKENS,
    formatWeight: 1, boxWeight: 1, boxExponent: 1, beta: 0.04, clipEps: 0.2, updatesPerBatch: 1,
  },
  paper: {
    steps: 1000, lr: 1e-5, warmupSteps: 10, gradClip: 1, weightDecay: 0, checkpointEvery: 50, limitPerFamily: 0,
    ...OFFICIAL_SAMPLING, promptsPerStep: 4, maxNewTokens: DEFAULT_MAX_NEW_TOKENS,
    formatWeight: 1, boxWeight: 1, boxExponent: 1, beta: 0.04, clipEps: 0.2, updatesPerBatch: 1,
  },
};

/** Resolves a LISA config delta over the preset's defaults (errors name the field). */
export function resolveLisaConfig(preset: PresetName, delta: ConfigDelta<LisaTrainConfig> = {}, where = 'lisa config'): LisaTrainConfig {
  return resolveConfig(DEFAULT_LISA[preset], delta, where, {
    ...OPTIM_RULES,
    batchSize: rules.int(1),
    ceWeight: rules.nonNegative,
    bceWeight: rules.nonNegative,
    diceWeight: rules.nonNegative,
    schedule: rules.oneOf('linear', 'cosine', 'constant'),
    answer: (v) => (typeof v === 'string' && v.includes('</answer>') ? null : "a string containing the segmentation token '</answer>'"),
  });
}

/** Resolves a Seg-Zero config delta over the preset's defaults (errors name the field). */
export function resolveSegZeroConfig(preset: PresetName, delta: ConfigDelta<SegZeroTrainConfig> = {}, where = 'segzero config'): SegZeroTrainConfig {
  return resolveConfig(DEFAULT_SEGZERO[preset], delta, where, {
    ...OPTIM_RULES,
    ...ROLLOUT_RULES,
    formatWeight: rules.nonNegative,
    boxWeight: rules.nonNegative,
    boxExponent: rules.positive,
    beta: rules.nonNegative,
    clipEps: rules.positive,
    updatesPerBatch: rules.int(1),
  });
}

// ---------------------------------------------------------------------------
// Models: building from stage 0, saving, loading
// ---------------------------------------------------------------------------

/** Builds an untrained baseline of `kind` for a LENS config. */
export function buildBaseline(kind: BaselineKind, config: LensConfig | LensConfigDelta | PresetName, seed = 0): BaselineModel {
  const c = resolveLensConfig(config as LensConfigDelta);
  return kind === 'lisa' ? new LisaModel(c, new Rng(seed)) : new SegZeroModel(c, new Rng(seed));
}

/**
 * Copies every parameter of `src` whose name starts with one of `prefixes` into the
 * same-named parameter of `dst` (shapes checked). Returns how many were copied.
 */
export function copyParameters(dst: Module, src: Module, prefixes: readonly string[]): number {
  const from = new Map(src.namedParameters());
  let n = 0;
  for (const [name, v] of dst.namedParameters()) {
    if (!prefixes.some((p) => name.startsWith(p))) continue;
    const s = from.get(name);
    if (!s) throw new Error(`copyParameters: the source model has no parameter '${name}'`);
    if (s.shape.join() !== v.shape.join()) throw new Error(`copyParameters: '${name}' is [${s.shape}] in the source, [${v.shape}] here`);
    v.assign(s);
    n++;
  }
  return n;
}

/** A baseline initialised from a stage-0 run folder: vision + MLLM (0b) and SAM (0a). */
export function baselineFromStage0(kind: BaselineKind, fromDir: string, seed = 0): { model: BaselineModel; tokenizer: Tokenizer } {
  const { model: lens, tokenizer } = loadStageModel(fromDir);
  try {
    if (tokenizer.size > lens.config.mllm.vocabSize) {
      throw new Error(`${fromDir}: tokenizer.json has ${tokenizer.size} tokens, more than the model's mllm.vocabSize ${lens.config.mllm.vocabSize}`);
    }
    const model = buildBaseline(kind, lens.config, seed);
    copyParameters(model, lens, ['vision.', 'mllm.', 'sam.']);
    return { model, tokenizer };
  } finally {
    lens.dispose();
  }
}

const FORMAT = 'lens-ts/1';

/** Writes a baseline's model.safetensors (component = kind, config in the metadata) and tokenizer.json. */
export function saveBaseline(dir: string, model: BaselineModel, tokenizer: Tokenizer, extra: Record<string, string> = {}): void {
  const kind: BaselineKind = model instanceof LisaModel ? 'lisa' : 'segzero';
  tokenizer.save(join(dir, TOKENIZER_FILE));
  const meta: Record<string, string> = { ...extra, format: FORMAT, component: kind, config: JSON.stringify(model.config) };
  if (model instanceof LisaModel) meta.segTokenId = String(model.segTokenId);
  saveModule(model, join(dir, MODEL_FILE), meta);
}

/** Reads a baseline model file written by `saveBaseline`. */
export function loadBaseline(path: string): { kind: BaselineKind; model: BaselineModel; metadata: Record<string, string> } {
  const { metadata } = readSafetensors(path);
  const kind = metadata.component as BaselineKind;
  if (!(BASELINE_KINDS as readonly string[]).includes(kind) || typeof metadata.config !== 'string') {
    throw new Error(`${path}: not a baseline checkpoint (metadata.component = ${JSON.stringify(metadata.component)}, expected "lisa" or "segzero" with a config)`);
  }
  const config = resolveLensConfig(JSON.parse(metadata.config) as LensConfigDelta);
  const model = kind === 'lisa' ? new LisaModel(config, new Rng(0), { segTokenId: Number(metadata.segTokenId ?? ANSWER_END_ID) }) : new SegZeroModel(config, new Rng(0));
  try {
    loadModule(model, path);
  } catch (e) {
    model.dispose();
    throw e;
  }
  return { kind, model, metadata };
}

// ---------------------------------------------------------------------------
// LISA-style supervised step
// ---------------------------------------------------------------------------

/** The fixed LISA-style answer ids (without <eos>); throws naming the config field on unknown words. */
export function lisaAnswerIds(tok: Tokenizer, answer: string, segTokenId = ANSWER_END_ID): number[] {
  const ids = tok.encode(answer);
  if (ids.includes(UNK_ID)) throw new Error(`lisa config: field 'answer' = ${JSON.stringify(answer)} has words outside the tokenizer's vocabulary`);
  if (!ids.includes(segTokenId)) throw new Error(`lisa config: field 'answer' = ${JSON.stringify(answer)} does not contain the segmentation token (id ${segTokenId})`);
  return ids;
}

/** A LISA batch; the caller disposes it (`disposeLisaBatch`). */
export interface LisaBatch {
  /** int32 [B, T] left-padded prompt + fixed answer + <eos>. */
  tokens: tf.Tensor2D;
  attentionMask: tf.Tensor2D;
  /** [B, T - 1] 1 where tokens[:, 1:] is an answer token (next-token CE targets). */
  ceMask: tf.Tensor2D;
  /** Frozen encoders' outputs: [B, V, C_llm] and [B, h, w, C_sam]. */
  visual: tf.Tensor3D;
  samEmbeddings: tf.Tensor4D;
  /** [B, S, S] targets 0 / 1 / 255. */
  labels: tf.Tensor3D;
}

/** Encodes examples for the LISA step; the frozen encoders run here, outside the tape. */
export function lisaBatch(model: LisaModel, tok: Tokenizer, examples: readonly TrainExample[], answerIds: readonly number[]): LisaBatch {
  const S = model.config.imageSize;
  const seqs = examples.map((e) => [...promptIds(tok, e, model.vision.numTokens), ...answerIds, EOS_ID]);
  const { ids, mask } = padSequences(seqs, { side: 'left' });
  const B = ids.length;
  const T = ids[0]!.length;
  const n = answerIds.length + 1; // answer + <eos>, the last n columns of every row
  const ce = ids.map(() => Array.from({ length: T - 1 }, (_, t) => (t + 1 >= T - n ? 1 : 0)));
  const { images, labels } = imageTensors(examples, S);
  const enc = tf.tidy(() => ({ visual: model.vision.apply(images), samEmbeddings: model.sam.embedImage(images) }));
  images.dispose();
  return {
    tokens: tf.tensor2d(ids, [B, T], 'int32'),
    attentionMask: tf.tensor2d(mask, [B, T], 'int32'),
    ceMask: tf.tensor2d(ce, [B, T - 1], 'float32'),
    labels,
    ...enc,
  };
}

export function disposeLisaBatch(b: LisaBatch): void {
  tf.dispose([b.tokens, b.attentionMask, b.ceMask, b.visual, b.samEmbeddings, b.labels]);
}

/** LISA loss: ce * CE(next token on the answer) + bce * BCE + dice * Dice (at the label resolution). */
export function lisaLoss(model: LisaModel, b: LisaBatch, c: Pick<LisaTrainConfig, 'ceWeight' | 'bceWeight' | 'diceWeight'>): { loss: tf.Scalar; logs: Record<string, tf.Scalar> } {
  return tf.tidy(() => {
    const out = model.forward({ tokens: b.tokens, attentionMask: b.attentionMask, visual: b.visual, samEmbeddings: b.samEmbeddings });
    const [B, T, V] = out.logits.shape;
    const logits = tf.slice(out.logits, [0, 0, 0], [B, T - 1, V]) as tf.Tensor3D; // predicts tokens[:, 1:]
    const targets = tf.slice(b.tokens, [0, 1], [B, T - 1]) as tf.Tensor2D;
    const ce = tokenCrossEntropy(logits, targets, b.ceMask);
    const S = b.labels.shape[1];
    const up = upsampleMaskLogits(out.masks, S, b.labels.shape[2]);
    const seg = segLoss(up, b.labels, { weights: { bce: c.bceWeight, dice: c.diceWeight } });
    const loss = tf.add(tf.mul(ce, c.ceWeight), seg) as tf.Scalar;
    return { loss, logs: { ce, seg } };
  });
}

/** The LISA StepPlan over `examples` (batches from `batchIndices`, so a resumed run sees the same data). */
export function lisaPlan(model: LisaModel, tok: Tokenizer, examples: readonly TrainExample[], c: LisaTrainConfig): StepPlan<LisaBatch> {
  const answerIds = lisaAnswerIds(tok, c.answer, model.segTokenId);
  return {
    prepare: (step, rng) => lisaBatch(model, tok, batchIndices(examples.length, c.batchSize, step, rng.fork('batch')).map((i) => examples[i]!), answerIds),
    loss: (b) => lisaLoss(model, b, c),
    dispose: disposeLisaBatch,
  };
}

// ---------------------------------------------------------------------------
// Seg-Zero-style GRPO step
// ---------------------------------------------------------------------------

/**
 * Seg-Zero-style reward components of one completion (src/train/rewards.ts): format
 * (0/1, the official think regex) and box = IoU(parsed box clamped to the image, gt)^exponent.
 */
export function segZeroRewards(completion: string, gtBox: Box, exponent: number, imageSize?: number): { format: number; box: number } {
  return { format: formatReward(completion), box: boxIouReward(completion, gtBox, { exponent, imageSize }) };
}

/** One Seg-Zero GRPO batch (the caller disposes it). */
export interface SegZeroBatch {
  tokens: tf.Tensor2D;
  attentionMask: tf.Tensor2D;
  /** [B, N] 1 on completion tokens. */
  completionMask: tf.Tensor2D;
  /** [B, N] log-probs of the sampling policy (the generation's, untempered). */
  oldLogp: tf.Tensor2D;
  /** [B, N] log-probs under the frozen reference, or null when beta = 0. */
  refLogp: tf.Tensor2D | null;
  /** [B] group-normalised advantages. */
  advantages: tf.Tensor1D;
  /** [B, S, S, 3] each prompt's image repeated G times. */
  images: tf.Tensor4D;
  promptLength: number;
  /** Host-side figures for the log. */
  host: Record<string, number>;
}

const meanStd = (xs: readonly number[]): [number, number] => {
  const m = xs.reduce((a, x) => a + x, 0) / Math.max(1, xs.length);
  const v = xs.reduce((a, x) => a + (x - m) ** 2, 0) / Math.max(1, xs.length);
  return [m, Math.sqrt(v)];
};

/** The Seg-Zero StepPlan: rollouts from the current policy, rewards, GRPO loss. */
export function segZeroPlan(model: SegZeroModel, ref: SegZeroModel | null, tok: Tokenizer, examples: readonly TrainExample[], c: SegZeroTrainConfig): StepPlan<SegZeroBatch> {
  const G = c.numGenerations;
  const S = model.config.imageSize;
  return {
    updatesPerBatch: c.updatesPerBatch,
    prepare: (step, rng) => {
      const ex = batchIndices(examples.length, c.promptsPerStep, step, rng.fork('batch')).map((i) => examples[i]!);
      const { images, labels } = imageTensors(ex, S);
      labels.dispose();
      const prompts = ex.map((e) => promptIds(tok, e, model.vision.numTokens));
      const visual = tf.tidy(() => model.vision.apply(images));
      let gen: ReturnType<typeof generate>;
      try {
        gen = generate(model.mllm, tok, { prompts, visual }, { numSamples: G, temperature: c.temperature, topP: c.topP, topK: c.topK, maxNewTokens: c.maxNewTokens }, rng.fork('rollout'));
      } finally {
        visual.dispose();
      }
      const parts = gen.text.map((t, r) => segZeroRewards(t, ex[gen.promptIndex[r]!]!.box, c.boxExponent, S));
      const rewards = parts.map((p) => c.formatWeight * p.format + c.boxWeight * p.box);
      const adv = groupAdvantages(rewards, G);
      const t = toRescoreTensors(gen);
      const [B, N] = t.completionMask.shape;
      const old = gen.logProbs.map((row) => Array.from({ length: N }, (_, j) => row[j] ?? 0));
      const imagesRep = repeatRows(images, G);
      images.dispose();
      const refLogp =
        ref && c.beta > 0
          ? tf.tidy(() => shiftedLogProbs(ref.policyLogits({ tokens: t.tokens, attentionMask: t.attentionMask, images: imagesRep }), t.tokens, gen.promptLength, t.attentionMask))
          : null;
      const [rm, rs] = meanStd(rewards);
      const [fm, fs] = meanStd(parts.map((p) => p.format));
      const [bm, bs] = meanStd(parts.map((p) => p.box));
      const [lm] = meanStd(gen.tokens.map((x) => x.length));
      return {
        tokens: t.tokens,
        attentionMask: t.attentionMask,
        completionMask: t.completionMask,
        oldLogp: tf.tensor2d(old, [B, N], 'float32'),
        refLogp,
        advantages: tf.tensor1d(adv, 'float32'),
        images: imagesRep,
        promptLength: gen.promptLength,
        host: {
          rewardMean: rm, rewardStd: rs, formatMean: fm, formatStd: fs, boxMean: bm, boxStd: bs,
          formatRate: fm, zeroSpread: zeroSpreadFraction(rewards, G), completionLength: lm,
        },
      };
    },
    loss: (b) =>
      tf.tidy(() => {
        const logits = model.policyLogits({ tokens: b.tokens, attentionMask: b.attentionMask, images: b.images });
        const logp = shiftedLogProbs(logits, b.tokens, b.promptLength, b.attentionMask);
        const out = grpoLoss({ logp, oldLogp: b.oldLogp, refLogp: b.refLogp, advantages: b.advantages, mask: b.completionMask, beta: c.beta, clipEps: c.clipEps });
        return { loss: out.loss, logs: { kl: out.kl, clipFraction: out.clipFraction } };
      }),
    hostLogs: (b) => b.host,
    dispose: (b) => tf.dispose([b.tokens, b.attentionMask, b.completionMask, b.oldLogp, b.advantages, b.images, ...(b.refLogp ? [b.refLogp] : [])]),
  };
}

// ---------------------------------------------------------------------------
// Runs
// ---------------------------------------------------------------------------

/** Options of `runBaseline` (the stage convention of T-common). */
export interface RunBaselineOptions {
  dataRoot: string;
  out: string;
  preset: PresetName;
  seed: number;
  resume: boolean;
  /** The stage-0 run folder (vision + MLLM from 0b, SAM from 0a). */
  from: string;
  config?: ConfigDelta<LisaTrainConfig> | ConfigDelta<SegZeroTrainConfig>;
  quiet?: boolean;
  /** Stops after this step as if killed (tests of resume). */
  stopAfter?: number;
}

/** Mean of the last `k` logged values of `key` (final-metrics summary of a run). */
function tailMean(rows: readonly Record<string, unknown>[], key: string, k = 10): number {
  const xs = rows.map((r) => r[key]).filter((v): v is number => typeof v === 'number').slice(-k);
  return xs.length ? xs.reduce((a, x) => a + x, 0) / xs.length : NaN;
}

/**
 * Trains baseline `kind` from a stage-0 run: opens the run folder, trains with
 * trainLoop, writes model.safetensors + tokenizer.json and metrics.arrow (first / last
 * loss, and for Seg-Zero the first / last mean reward). Evaluation is `evaluateRun`.
 */
export async function runBaseline(kind: BaselineKind, opts: RunBaselineOptions): Promise<{ dir: string; config: LisaTrainConfig | SegZeroTrainConfig; steps: number }> {
  const backend = await initBackend({ quiet: true });
  const c = kind === 'lisa' ? resolveLisaConfig(opts.preset, opts.config as ConfigDelta<LisaTrainConfig>) : resolveSegZeroConfig(opts.preset, opts.config as ConfigDelta<SegZeroTrainConfig>);
  const { model, tokenizer } = baselineFromStage0(kind, opts.from, opts.seed);
  const ref = kind === 'segzero' && (c as SegZeroTrainConfig).beta > 0 ? (baselineFromStage0(kind, opts.from, opts.seed).model as SegZeroModel) : null;
  ref?.setTrainable(false);
  try {
    const examples = await loadTrainingSet(opts.dataRoot, model.config.imageSize, { limitPerFamily: c.limitPerFamily || undefined, quiet: opts.quiet });
    const run = Run.open(opts.out, {
      kind: kind === 'lisa' ? 'lisa' : 'segzero',
      seed: opts.seed,
      backend,
      config: { preset: opts.preset, from: opts.from, dataRoot: opts.dataRoot, train: c, model: model.config },
      resume: opts.resume,
    });
    model.setTraining();
    const params = model.trainingSplit().trainable;
    const schedule: Schedule = {
      kind: kind === 'lisa' ? (c as LisaTrainConfig).schedule : 'linear', // TRL default (Seg-Zero, LENS): linear decay
      lr: c.lr,
      warmupSteps: c.warmupSteps,
      totalSteps: c.steps * (kind === 'segzero' ? (c as SegZeroTrainConfig).updatesPerBatch : 1),
    };
    const plan: StepPlan<LisaBatch> | StepPlan<SegZeroBatch> =
      kind === 'lisa' ? lisaPlan(model as LisaModel, tokenizer, examples, c as LisaTrainConfig) : segZeroPlan(model as SegZeroModel, ref, tokenizer, examples, c as SegZeroTrainConfig);
    await trainLoop(
      {
        run, model, params, totalSteps: c.steps, schedule, gradClip: c.gradClip, adamw: { weightDecay: c.weightDecay },
        checkpointEvery: c.checkpointEvery, seed: opts.seed, label: kind, quiet: opts.quiet, stopAfter: opts.stopAfter,
      },
      plan as StepPlan<unknown>,
    );
    saveBaseline(run.dir, model, tokenizer, { kind, from: opts.from });
    const rows = run.steps();
    const metric: Record<string, number | string> = { kind, steps: rows.length, loss_first: tailMean(rows.slice(0, 10), 'loss'), loss_last: tailMean(rows, 'loss') };
    if (kind === 'segzero') Object.assign(metric, { reward_first: tailMean(rows.slice(0, 10), 'rewardMean'), reward_last: tailMean(rows, 'rewardMean') });
    run.finish([metric]);
    return { dir: run.dir, config: c, steps: rows.length };
  } finally {
    model.dispose();
    ref?.dispose();
  }
}

/** `runBaseline('lisa', opts)`, the stage-runner name of the T-common convention. */
export function runLisa(opts: RunBaselineOptions): ReturnType<typeof runBaseline> {
  return runBaseline('lisa', opts);
}

/** `runBaseline('segzero', opts)`, the stage-runner name of the T-common convention. */
export function runSegZero(opts: RunBaselineOptions): ReturnType<typeof runBaseline> {
  return runBaseline('segzero', opts);
}
