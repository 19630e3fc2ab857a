/**
 * LENS inference as the paper evaluates it (Sec. 4, official `eval` scripts): greedy
 * generation from the prompt alone, then prompt + completion + the M context queries
 * through the MLLM, the connector and SAM (lens-official-code-facts.md "What precedes the
 * queries: evaluation = prompt + greedy generation"), the mask logits upsampled to the
 * sample's ORIGINAL size and thresholded at > 0, scored in the LISA convention
 * (eval/metrics.ts). Used by stage 1, stage 2 and the main job's table.
 *
 * The completion keeps its <eos> before the queries, as stage 1 teacher-forces
 * prompt + answer + <eos> (train/data.ts encodeBatch) and stage-2 rollouts end with it.
 */
import * as tf from '@tensorflow/tfjs-core';
import { parseSplitName } from '../data/index';
import { MetricAccumulator, type Box as XywhBox, type MetricResult } from '../eval/metrics';
import { isFormatValid, parseBox, type Box } from '../model/answer';
import { generate } from '../model/generate';
import type { LensModel } from '../model/lens';
import { upsampleMaskLogits } from '../model/sam/mask_decoder';
import type { Tokenizer } from '../model/tokenizer';
import { Progress } from '../util/progress';
import { imageTensors, loadExamples, promptIds, type TrainExample } from './data';

/** Options of `predictLens`. */
export interface PredictOptions {
  /** Sentences per forward batch (memory vs speed; 16 fits every preset here). */
  batchSize?: number;
  /** Longest greedy completion; the LENS answers of the benchmark take ~40-60 tokens. */
  maxNewTokens?: number;
  /** Progress label; no bar when quiet. */
  label?: string;
  quiet?: boolean;
}

/** One sentence's prediction. */
export interface LensPrediction {
  /** The example's id (= its RefSample id). */
  id: string;
  /** The decoded completion. */
  text: string;
  /** Box parsed from the answer, xyxy in model-input pixels; null when none parses. */
  box: Box | null;
  /** The completion passes the official think-format check. */
  formatValid: boolean;
  /** Binary mask at the sample's original size (sample.height x sample.width), 1 = foreground. */
  mask: Uint8Array;
}

/** Default generation budget of evaluation (answers of the generated benchmark fit well within it). */
export const DEFAULT_MAX_NEW_TOKENS = 80;

/**
 * Mask logits of given token sequences: tokens / attentionMask [B, T] (prompt +
 * completion, left-padded) with the context queries appended -> low-res mask logits
 * [B, 4h, 4w]. The picture is `images` [B, S, S, 3], or already encoded: `visual` [B, V, C]
 * for the `<image>` slots and SAM's `samEmbeddings` [B, h, w, C]. One MLLM pass without
 * logits (only the queries' states are read). The caller disposes the result.
 */
export function maskLogitsFor(
  model: LensModel,
  tokens: tf.Tensor2D,
  attentionMask: tf.Tensor2D,
  picture: tf.Tensor4D | { visual: tf.Tensor3D; samEmbeddings: tf.Tensor4D },
): tf.Tensor3D {
  return tf.tidy(() => {
    const encoded = picture instanceof tf.Tensor ? { visual: model.vision.apply(picture), samEmbeddings: model.sam.embedImage(picture) } : picture;
    const { hidden, cache } = model.mllm.prefill({ tokens, attentionMask, visual: encoded.visual, extra: model.context.apply() }, { logits: 'none' });
    for (const l of cache.layers) tf.dispose([l.k, l.v]);
    const queryStates = model.context.readout(hidden); // [B, M, C]
    return model.segmentFromQueries(queryStates, encoded.samEmbeddings).masks;
  });
}

/**
 * Greedy generation over `examples` in batches: per batch, the pictures [B, S, S, 3] and the
 * completions go to `use`; the pictures are disposed after it. `where` names the caller in errors.
 */
function eachGreedyBatch(
  where: string,
  model: LensModel,
  tokenizer: Tokenizer,
  examples: readonly TrainExample[],
  opts: PredictOptions,
  use: (chunk: readonly TrainExample[], gen: ReturnType<typeof generate>, images: tf.Tensor4D) => void,
): void {
  const { batchSize = 16, maxNewTokens = DEFAULT_MAX_NEW_TOKENS, quiet = true, label = where } = opts;
  if (!Number.isInteger(batchSize) || batchSize < 1) throw new Error(`${where}: batchSize must be an integer >= 1, got ${batchSize}`);
  const bar = new Progress({ label, total: examples.length, unit: 'sent', quiet });
  for (let s = 0; s < examples.length; s += batchSize) {
    const chunk = examples.slice(s, s + batchSize);
    const { images, labels } = imageTensors(chunk, model.config.imageSize);
    labels.dispose();
    try {
      const visual = model.vision.apply(images); // [B, V, C]
      let gen: ReturnType<typeof generate>;
      try {
        const prompts = chunk.map((e) => promptIds(tokenizer, e, model.vision.numTokens));
        gen = generate(model.mllm, tokenizer, { prompts, visual }, { greedy: true, numSamples: 1, maxNewTokens });
      } finally {
        visual.dispose();
      }
      use(chunk, gen, images);
    } finally {
      images.dispose();
    }
    bar.tick(chunk.length);
  }
  bar.finish();
}

/** The MLLM's greedy completion of each example's prompt, as text (no queries, no SAM). */
export function greedyAnswers(model: LensModel, tokenizer: Tokenizer, examples: readonly TrainExample[], opts: PredictOptions = {}): string[] {
  const out: string[] = [];
  eachGreedyBatch('greedyAnswers', model, tokenizer, examples, { label: 'generate', ...opts }, (_, gen) => out.push(...gen.text));
  return out;
}

/** Box xyxy in input pixels -> COCO xywh in the sample's original pixels (for box_acc50). */
export function inputBoxToOriginal(box: Box, side: number, height: number, width: number): XywhBox {
  const sx = width / side;
  const sy = height / side;
  return [box[0] * sx, box[1] * sy, (box[2] - box[0]) * sx, (box[3] - box[1]) * sy];
}

/**
 * Greedy LENS inference on examples: per batch, generate from the prompt, run
 * prompt + completion + queries -> mask logits, upsample each to its sample's original
 * size, threshold > 0. Leaves tf.memory().numTensors unchanged.
 */
export function predictLens(model: LensModel, tokenizer: Tokenizer, examples: readonly TrainExample[], opts: PredictOptions = {}): LensPrediction[] {
  const out: LensPrediction[] = [];
  eachGreedyBatch('predictLens', model, tokenizer, examples, { label: 'predict', ...opts }, (chunk, gen, images) => {
    const B = chunk.length;
    const T = gen.sequences[0]!.length;
    const tokens = tf.tensor2d(gen.sequences.flat(), [B, T], 'int32');
    const mask = tf.tensor2d(gen.attentionMask.flat(), [B, T], 'int32');
    let low: tf.Tensor3D;
    try {
      low = maskLogitsFor(model, tokens, mask, images);
    } finally {
      tf.dispose([tokens, mask]);
    }
    try {
      chunk.forEach((e, b) => {
        const h = e.sample.height;
        const w = e.sample.width;
        const logits = tf.tidy(() => upsampleMaskLogits(tf.slice(low, [b, 0, 0], [1, low.shape[1], low.shape[2]]) as tf.Tensor3D, h, w));
        const v = logits.dataSync();
        logits.dispose();
        const m = new Uint8Array(h * w);
        for (let i = 0; i < m.length; i++) m[i] = v[i]! > 0 ? 1 : 0;
        const text = gen.text[b]!;
        out.push({ id: e.id, text, box: parseBox(text), formatValid: isFormatValid(text), mask: m });
      });
    } finally {
      low.dispose();
    }
  });
  return out;
}

/** Scores predictions against their examples (LISA convention at original size, box_acc50, format rate). */
export function scoreLens(examples: readonly TrainExample[], preds: readonly LensPrediction[], side: number): MetricResult {
  if (examples.length !== preds.length) throw new Error(`scoreLens: ${examples.length} examples but ${preds.length} predictions`);
  const acc = new MetricAccumulator();
  examples.forEach((e, i) => {
    const p = preds[i]!;
    if (p.id !== e.id) throw new Error(`scoreLens: prediction ${i} is for ${p.id}, expected ${e.id}`);
    const s = e.sample;
    acc.add(p.mask, s.mask(), {
      predBox: p.box ? inputBoxToOriginal(p.box, side, s.height, s.width) : null,
      targetBox: s.bbox,
      formatValid: p.formatValid,
    });
  });
  return acc.result();
}

/** One split's metrics, as a row of metrics.arrow. */
export interface SplitMetrics extends MetricResult {
  /** FAMILY/SPLIT. */
  split: string;
}

/**
 * Evaluates a LENS model on FAMILY/SPLIT names of a dataset root, the first `limit`
 * samples of each (all when undefined; ReasonSeg: first sentence per image, LISA's
 * convention). -> one SplitMetrics row per split.
 */
export async function evaluateLens(
  model: LensModel,
  tokenizer: Tokenizer,
  dataRoot: string,
  splits: readonly string[],
  { limit, ...opts }: PredictOptions & { limit?: number } = {},
): Promise<SplitMetrics[]> {
  const rows: SplitMetrics[] = [];
  for (const name of splits) {
    const { family, split } = parseSplitName(name);
    // allSentences false: ReasonSeg is scored on the first sentence per image (LISA ValDataset).
    const examples = await loadExamples(dataRoot, family, split, { imageSize: model.config.imageSize, limit, allSentences: false, quiet: true });
    const preds = predictLens(model, tokenizer, examples, { ...opts, label: `eval ${name}` });
    rows.push({ split: name, ...scoreLens(examples, preds, model.config.imageSize) });
  }
  return rows;
}
