/**
 * Stage 1, pretraining alignment (paper Sec. 3.2; official hustvl/LENS stage-1 script,
 * lens-official-code-facts.md "Stage 1"): the MLLM and SAM are frozen; only the context
 * queries and the connector train, on L_seg = BCE + Dice (1:1) of the mask that the
 * queries produce after the ground-truth answer (prompt + answer + <eos>, teacher forced).
 *
 * A frozen MLLM means its prefix never changes, so it is encoded ONCE (DESIGN.md
 * "Training"): the per-layer keys / values of every training example's prefix
 * (`mllm.prefill`, outside any gradient) and the SAM image embeddings (frozen encoder)
 * are kept host-side as Float32Arrays, filled lazily the first time an example is drawn
 * (`PrefixCache`); each step then runs only the M query positions on top of the cached
 * prefix (`LensModel.segmentFromCache`) -> connector -> SAM decoder -> L_seg. Memory per
 * example on `quick`: 2 (K, V) x 4 layers x ~110 positions x 128 floats ≈ 450 KB, i.e.
 * ~0.45 GB for 1000 examples: the training pool is capped per family (`poolPerFamily`).
 */
import { resolve } from 'node:path';
import * as tf from '@tensorflow/tfjs-core';
import { initBackend } from '../backend';
import { resolveConfig, rules } from '../config';
import type { LensModel } from '../model/lens';
import { segLoss } from '../model/losses';
import { disposeCache, type KVCache } from '../model/mllm';
import type { PresetName } from '../model/presets';
import { upsampleMaskLogits } from '../model/sam/mask_decoder';
import type { Tokenizer } from '../model/tokenizer';
import type { Row } from '../util/arrow';
import { batchIndices, encodeBatch, disposeBatch, type TrainExample } from './data';
import { trainLoop, type StepPlan } from './loop';
import { evaluateLens, greedyAnswers, DEFAULT_MAX_NEW_TOKENS } from './predict';
import { Rng } from '../random';
import { Run } from './run';
import { evaluationSplits, loadStageModel, loadStageModelRebuilt, loadTrainingSet, saveStageModel, type StageRunOptions } from './stage_io';

/** Stage-1 settings. */
export interface AlignConfig {
  /**
   * Optimiser steps (official: 25 epochs at batch 1024; here sized to the preset's time budget,
   * measured). quick: 600 from 600 sentences per family, against 300 from 300 before the longer
   * stage 0b: from that 0b the queries learn to read the answer's box more slowly (training
   * loss 0.40 after 300 steps, 0.21 from the shorter 0b; 0.21 after 600), and 600 steps lift
   * its stage 1 from 29.4 to 33.2 cIoU over every sentence at seed 0, where from the shorter
   * 0b they moved nothing (29.5 -> 29.5; README, "The main job").
   */
  steps: number;
  /** Examples per step (official effective batch 1024, paper 128; small here: 2 CPU cores). */
  batchSize: number;
  /**
   * Peak lr (official 3e-5 with a pretrained 3B MLLM at batch 1024). Our queries and
   * connector start from random init at batch 16 with far fewer steps, so a larger lr
   * (AdamW, 1e-3, the usual rate for a small freshly initialised transformer) is used.
   */
  lr: number;
  /** Linear warm-up steps (official 150 of many thousands; quick 15, a few % of the run). */
  warmupSteps: number;
  /** Cosine floor as a fraction of lr (official cosine to 0). */
  minLrRatio: number;
  /** Global-norm gradient clip (official 1.0). */
  gradClip: number;
  /** AdamW decoupled weight decay (official 0). */
  weightDecay: number;
  /** Steps between checkpoints (resume granularity vs time spent writing). */
  checkpointEvery: number;
  /** Training sentences per family whose prefixes are cached (memory: ~450 KB each on quick); 0 = all. */
  poolPerFamily: number;
  /**
   * Share of the pool whose teacher-forced answer is the frozen MLLM's own greedy completion
   * instead of the ground truth (the target mask stays the truth's), so the queries train on
   * answers as wrong as at evaluation. Default 0, the official stage 1 (prompt + ground-truth
   * answer, lens-official-code-facts.md "What precedes the queries"): at 1 the quick main job's
   * ten-split cIoU was 25.8 against 26.4, the queries learning to doubt the box without finding
   * the target otherwise (docs/stage0b-grounding.md, "Stage 1 on its own answers").
   */
  ownAnswerFraction: number;
  /** Sentences per cached-prefix prefill batch (speed vs peak memory). */
  cacheChunk: number;
  /** Sentences evaluated per evaluation split after training (0 = no evaluation; -1 = all). */
  evalLimit: number;
  /** Sentences per evaluation batch. */
  evalBatchSize: number;
  /** Longest greedy completion at evaluation. */
  maxNewTokens: number;
}

/**
 * Per preset. quick: 600 steps of 16 (`AlignConfig.steps`), ~0.12 s per cached step on
 * wasm + native kernels, the cache of 2400 prefixes ~1.1 GB of host memory; ~1.5 min in
 * all. The main job evaluates run folders itself and passes evalLimit 0. tiny: a handful
 * (tests).
 */
export const DEFAULT_ALIGN: Record<PresetName, AlignConfig> = {
  tiny: { steps: 6, batchSize: 4, lr: 3e-3, warmupSteps: 1, minLrRatio: 0.1, gradClip: 1, weightDecay: 0, checkpointEvery: 3, poolPerFamily: 8, ownAnswerFraction: 0, cacheChunk: 8, evalLimit: 4, evalBatchSize: 4, maxNewTokens: 24 },
  quick: { steps: 600, batchSize: 16, lr: 1e-3, warmupSteps: 15, minLrRatio: 0.05, gradClip: 1, weightDecay: 0, checkpointEvery: 100, poolPerFamily: 600, ownAnswerFraction: 0, cacheChunk: 32, evalLimit: 50, evalBatchSize: 16, maxNewTokens: DEFAULT_MAX_NEW_TOKENS },
  paper: { steps: 3000, batchSize: 32, lr: 5e-4, warmupSteps: 150, minLrRatio: 0, gradClip: 1, weightDecay: 0, checkpointEvery: 250, poolPerFamily: 0, ownAnswerFraction: 0, cacheChunk: 32, evalLimit: -1, evalBatchSize: 16, maxNewTokens: DEFAULT_MAX_NEW_TOKENS },
};

const ALIGN_RULES = {
  steps: rules.int(1),
  batchSize: rules.int(1),
  lr: rules.positive,
  warmupSteps: rules.int(0),
  minLrRatio: rules.range(0, 1),
  gradClip: rules.positive,
  weightDecay: rules.nonNegative,
  checkpointEvery: rules.int(1),
  poolPerFamily: rules.int(0),
  ownAnswerFraction: rules.range(0, 1),
  cacheChunk: rules.int(1),
  evalLimit: rules.int(-1),
  evalBatchSize: rules.int(1),
  maxNewTokens: rules.int(1),
};

/** The preset's defaults with `delta` applied, validated (errors name the field). */
export function resolveAlignConfig(preset: PresetName, delta: unknown = {}, where = 'align config'): AlignConfig {
  const base = DEFAULT_ALIGN[preset];
  if (!base) throw new Error(`${where}: preset must be one of ${Object.keys(DEFAULT_ALIGN).join(', ')}, got ${JSON.stringify(preset)}`);
  return resolveConfig(base, delta, where, ALIGN_RULES);
}

/** One example's cached prefix: per layer K and V, [H, L, hs] each, row-major. */
interface PrefixEntry {
  length: number;
  k: Float32Array[];
  v: Float32Array[];
  /** SAM image embeddings [h, w, C] (shared by the chunk's sentences of one image). */
  sam: Float32Array;
}

/**
 * The frozen prefix of every example, encoded once: MLLM keys / values of prompt +
 * answer + <eos> and SAM image embeddings, host-side. `batch(indices)` assembles a
 * left-padded KVCache of B rows (padding positions masked out) and the embeddings.
 */
export class PrefixCache {
  private readonly kv = new Map<number, PrefixEntry>();
  private readonly heads: number;
  private readonly headSize: number;
  private readonly embShape: [number, number, number];

  constructor(
    private readonly model: LensModel,
    private readonly tokenizer: Tokenizer,
    private readonly examples: readonly TrainExample[],
    private readonly chunk = 32,
  ) {
    const c = model.config.mllm;
    this.heads = c.numHeads;
    this.headSize = c.hiddenSize / c.numHeads;
    const probe = tf.tidy(() => model.sam.embedImage(tf.zeros([1, model.config.imageSize, model.config.imageSize, 3]) as tf.Tensor4D));
    this.embShape = [probe.shape[1], probe.shape[2], probe.shape[3]];
    probe.dispose();
  }

  /** Examples cached so far. */
  get size(): number {
    return this.kv.size;
  }

  /** Host bytes held by the cache (K / V and SAM embeddings). */
  bytes(): number {
    let n = 0;
    const sam = new Set<Float32Array>();
    for (const e of this.kv.values()) {
      for (const a of [...e.k, ...e.v]) n += a.byteLength;
      sam.add(e.sam);
    }
    for (const a of sam) n += a.byteLength;
    return n;
  }

  /**
   * Encodes the examples of `indices` not cached yet (no gradient: frozen parts only).
   * Always whole fixed chunks of the example list (chunk c = examples [c*chunk, (c+1)*chunk)),
   * so every entry is computed in the same padded batch whatever order the examples are
   * drawn in: a resumed run refills the cache bit-identically.
   */
  ensure(indices: readonly number[]): void {
    const chunks = [...new Set(indices.filter((i) => !this.kv.has(i)).map((i) => Math.floor(i / this.chunk)))].sort((a, b) => a - b);
    const side = this.model.config.imageSize;
    const numVisual = this.model.vision.numTokens;
    for (const c of chunks) {
      const ids: number[] = [];
      for (let i = c * this.chunk; i < Math.min(this.examples.length, (c + 1) * this.chunk); i++) ids.push(i);
      const exs = ids.map((i) => this.examples[i]!);
      const b = encodeBatch(this.tokenizer, exs, { numVisual, side, withAnswer: true });
      try {
        const T = b.tokens.shape[1];
        const lengths = (b.attentionMask.arraySync() as number[][]).map((r) => r.reduce((a, x) => a + x, 0));
        const layers = tf.tidy(() => {
          const visual = this.model.vision.apply(b.images);
          const { hidden, cache } = this.model.mllm.prefill({ tokens: b.tokens, attentionMask: b.attentionMask, visual }, { logits: 'none' });
          hidden.dispose();
          return cache.layers.flatMap((l) => [l.k, l.v]);
        });
        const host = layers.map((t) => t.dataSync() as Float32Array);
        tf.dispose(layers);
        const emb = tf.tidy(() => this.model.sam.embedImage(b.images));
        const flat = emb.dataSync() as Float32Array;
        emb.dispose();
        const per = this.embShape[0] * this.embShape[1] * this.embShape[2];
        const byImage = new Map<string, Float32Array>(); // one copy per image within the chunk
        const H = this.heads;
        const hs = this.headSize;
        ids.forEach((idx, r) => {
          const L = lengths[r]!;
          const slice = (a: Float32Array) => {
            const out = new Float32Array(H * L * hs);
            for (let h = 0; h < H; h++) {
              const src = ((r * H + h) * T + (T - L)) * hs; // row r, head h, first real position (left padding)
              out.set(a.subarray(src, src + L * hs), h * L * hs);
            }
            return out;
          };
          const key = exs[r]!.sample.imagePath;
          if (!byImage.has(key)) byImage.set(key, flat.slice(r * per, (r + 1) * per));
          this.kv.set(idx, {
            length: L,
            k: host.filter((_, j) => j % 2 === 0).map(slice),
            v: host.filter((_, j) => j % 2 === 1).map(slice),
            sam: byImage.get(key)!,
          });
        });
      } finally {
        disposeBatch(b);
      }
    }
  }

  /**
   * The cached prefix of `indices` as a left-padded KVCache [B, H, Lmax, hs] per layer,
   * SAM embeddings [B, h, w, C] and labels [B, S, S] (the caller disposes all three).
   */
  batch(indices: readonly number[]): { cache: KVCache; samEmbeddings: tf.Tensor4D; labels: tf.Tensor3D } {
    this.ensure(indices);
    const entries = indices.map((i) => this.kv.get(i)!);
    const B = entries.length;
    const H = this.heads;
    const hs = this.headSize;
    const Lmax = Math.max(...entries.map((e) => e.length));
    const numLayers = entries[0]!.k.length;
    const build = (pick: (e: PrefixEntry) => Float32Array) => {
      const out = new Float32Array(B * H * Lmax * hs);
      entries.forEach((e, b) => {
        const a = pick(e);
        const L = e.length;
        for (let h = 0; h < H; h++) out.set(a.subarray(h * L * hs, (h + 1) * L * hs), ((b * H + h) * Lmax + (Lmax - L)) * hs);
      });
      return tf.tensor4d(out, [B, H, Lmax, hs]);
    };
    const layers: KVCache['layers'] = [];
    for (let l = 0; l < numLayers; l++) layers.push({ k: build((e) => e.k[l]!), v: build((e) => e.v[l]!) });
    const keyMask = entries.map((e) => [...new Array<number>(Lmax - e.length).fill(0), ...new Array<number>(e.length).fill(1)]);
    const [h, w, C] = this.embShape;
    const emb = new Float32Array(B * h * w * C);
    const side = this.model.config.imageSize;
    const lab = new Float32Array(B * side * side);
    indices.forEach((i, b) => {
      const e = this.examples[i]!;
      emb.set(entries[b]!.sam, b * h * w * C);
      lab.set(e.target, b * side * side);
    });
    return {
      cache: { layers, keyMask, nextPos: entries.map((e) => e.length) },
      samEmbeddings: tf.tensor4d(emb, [B, h, w, C]),
      labels: tf.tensor3d(lab, [B, side, side]),
    };
  }
}

/** One stage-1 batch. */
export interface AlignBatch {
  cache: KVCache;
  samEmbeddings: tf.Tensor4D;
  labels: tf.Tensor3D;
}

/** L_seg of the queries after a cached prefix: masks upsampled to the labels' size, BCE + Dice. */
export function alignLoss(model: LensModel, batch: AlignBatch): { loss: tf.Scalar; iou: tf.Scalar } {
  return tf.tidy(() => {
    const out = model.segmentFromCache(batch.cache, batch.samEmbeddings);
    const [, H, W] = batch.labels.shape;
    const loss = segLoss(upsampleMaskLogits(out.masks, H, W), batch.labels);
    return { loss, iou: tf.mean(out.iou) as tf.Scalar };
  });
}

/** The stage-1 step plan over a prefix cache: batches from batchIndices, loss = alignLoss. */
export function alignPlan(model: LensModel, cache: PrefixCache, n: number, cfg: Pick<AlignConfig, 'batchSize'>): StepPlan<AlignBatch> {
  return {
    prepare: (step, rng) => cache.batch(batchIndices(n, cfg.batchSize, step, rng)),
    loss: (b) => {
      const { loss, iou } = alignLoss(model, b);
      return { loss, logs: { predIou: iou } };
    },
    hostLogs: () => ({ cachedExamples: cache.size, cacheMB: cache.bytes() / 2 ** 20 }),
    dispose: (b) => {
      disposeCache(b.cache);
      tf.dispose([b.samEmbeddings, b.labels]);
    },
  };
}

/**
 * The examples with the answer of a `fraction` of them (drawn by `rng`) replaced by the
 * frozen MLLM's own greedy completion: the answer the queries will follow at evaluation.
 */
export function withOwnAnswers(
  model: LensModel,
  tokenizer: Tokenizer,
  examples: readonly TrainExample[],
  fraction: number,
  rng: Rng,
  opts: { batchSize: number; maxNewTokens: number; quiet: boolean },
): TrainExample[] {
  const chosen = examples.map(() => rng.next() < fraction);
  const picked = examples.filter((_, i) => chosen[i]);
  const answers = greedyAnswers(model, tokenizer, picked, { ...opts, label: 'own answers' });
  let k = 0;
  return examples.map((e, i) => (chosen[i] ? { ...e, answer: answers[k++]! } : e));
}

/** Options of runAlign (the convention of every stage). */
export type AlignRunOptions = StageRunOptions<AlignConfig>;

/**
 * Stage 1 end to end: load the stage-0 model, freeze all but queries + connector, train
 * on cached prefixes, evaluate `evalLimit` sentences of every evaluation split, write
 * model.safetensors + tokenizer.json and metrics.arrow into `out`.
 */
export async function runAlign(opts: AlignRunOptions): Promise<{ dir: string; metrics: Row[]; config: AlignConfig }> {
  if (!opts.from) throw new Error('align: --from DIR is required (the stage-0 run folder holding model.safetensors and tokenizer.json)');
  const backend = await initBackend({ quiet: true });
  const cfg = resolveAlignConfig(opts.preset, opts.config ?? {});
  const from = resolve(opts.from);
  const { model, tokenizer } = opts.model ? loadStageModelRebuilt(from, opts.model, opts.seed) : loadStageModel(from);
  try {
    const config = { preset: opts.preset, from, data: resolve(opts.dataRoot), align: cfg, ...(opts.model ? { model: opts.model } : {}) };
    const run = Run.open(opts.out, { kind: 'align', seed: opts.seed, backend, config, resume: opts.resume });
    let examples = await loadTrainingSet(opts.dataRoot, model.config.imageSize, { limitPerFamily: cfg.poolPerFamily || undefined, quiet: opts.quiet ?? false });
    if (cfg.ownAnswerFraction > 0) examples = withOwnAnswers(model, tokenizer, examples, cfg.ownAnswerFraction, new Rng(opts.seed).fork('own-answers'), { batchSize: cfg.evalBatchSize, maxNewTokens: cfg.maxNewTokens, quiet: opts.quiet ?? false });
    if (examples.length < cfg.batchSize) throw new Error(`align: ${examples.length} training sentences under ${opts.dataRoot}, fewer than batchSize ${cfg.batchSize}`);
    const params = model.stageSplit('stage1').trainable;
    model.setStage('stage1');
    const cache = new PrefixCache(model, tokenizer, examples, cfg.cacheChunk);
    await trainLoop(
      {
        run,
        model,
        params,
        totalSteps: cfg.steps,
        schedule: { kind: 'cosine', lr: cfg.lr, warmupSteps: cfg.warmupSteps, totalSteps: cfg.steps, minRatio: cfg.minLrRatio },
        gradClip: cfg.gradClip,
        adamw: { weightDecay: cfg.weightDecay },
        checkpointEvery: cfg.checkpointEvery,
        seed: opts.seed,
        label: 'align',
        quiet: opts.quiet,
        stopAfter: opts.stopAfter,
      },
      alignPlan(model, cache, examples.length, cfg),
    );
    saveStageModel(run.dir, model, tokenizer, { stage: 'stage1' });
    const metrics: Row[] = [];
    if (cfg.evalLimit !== 0) {
      const rows = await evaluateLens(model, tokenizer, opts.dataRoot, evaluationSplits(), {
        limit: cfg.evalLimit < 0 ? undefined : cfg.evalLimit,
        batchSize: cfg.evalBatchSize,
        maxNewTokens: cfg.maxNewTokens,
      });
      for (const r of rows) metrics.push({ model: 'lens-stage1', ...r });
    }
    run.finish(metrics);
    return { dir: run.dir, metrics, config: cfg };
  } finally {
    model.dispose();
  }
}
