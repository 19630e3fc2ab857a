/**
 * Evaluating a trained run folder (`lens evaluate --run DIR`): load whatever model the
 * run left (LENS after stage 0 / 1 / 2, or a LISA / Seg-Zero baseline), predict every
 * evaluation split (or the ones asked for) the way that model is evaluated in its paper,
 * and score in the LISA convention (gIoU, cIoU, box Acc@0.5, format rate;
 * lens-official-code-facts.md "Evaluation convention"):
 * - LENS: greedy generation, then prompt + completion + queries -> SAM (predict.ts
 *   `predictLens`, shared with stages 1 / 2);
 * - LISA-style: greedy generation of the short answer; the last state at the
 *   segmentation token prompts SAM (LISA `model/LISA.py` evaluate); a completion without
 *   the token gets an empty mask, as LISA's `pred_masks` is empty then; no box;
 * - Seg-Zero-style: greedy generation; the parsed box prompts the frozen SAM.
 * Every prediction goes through the `--pred` contract (eval/predictions.ts
 * predictionEntry -> scorePredictions), so the numbers are the ones
 * `lens evaluate --pred` gives for the same predictions file; the files are kept in
 * <run>/predictions/<family>_<split>.json. Results: <run>/eval.arrow, one row per split.
 *
 * Subset: at most `maxPerSplit` sentences per split, evenly spaced over the split's
 * loader order (`evaluationSubset`), so a quick evaluation still covers every image
 * region of the split; 0 = all. ReasonSeg: the first sentence per image (LISA ValDataset).
 */
import { existsSync, mkdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import * as tf from '@tensorflow/tfjs-core';
import { loadSplit, parseSplitName, type RefDataset } from '../data/index';
import type { MetricResult } from '../eval/metrics';
import { predictionEntry, scorePredictions, type Prediction } from '../eval/predictions';
import { resolveConfig, rules, type ConfigDelta } from '../config';
import { isFormatValid, parseBox } from '../model/answer';
import { LisaModel, SegZeroModel } from '../model/baselines';
import { generate } from '../model/generate';
import type { LensModel } from '../model/lens';
import type { PresetName } from '../model/presets';
import { upsampleMaskLogits } from '../model/sam/mask_decoder';
import type { Tokenizer } from '../model/tokenizer';
import { writeArrow, type Row } from '../util/arrow';
import { writeJsonAtomic } from '../util/fs';
import { Progress } from '../util/progress';
import { readSafetensors } from '../util/safetensors';
import { Tokenizer as TokenizerClass } from '../model/tokenizer';
import { loadLens } from '../model/presets';
import { BASELINE_KINDS, loadBaseline, type BaselineKind } from './baselines';
import { imageTensors, loadExamples, promptIds, type TrainExample } from './data';
import { DEFAULT_MAX_NEW_TOKENS, inputBoxToOriginal, predictLens, type LensPrediction } from './predict';
import { evaluationSplits, MODEL_FILE, TOKENIZER_FILE } from './stage_io';

/** Evaluation settings. */
export interface EvaluateConfig {
  /**
   * Sentences per split at most (0 = all). quick: 150, so four models x 10 splits fit the
   * ~5 min evaluation budget of `npm start`; paper: all, as the paper reports.
   */
  maxPerSplit: number;
  /**
   * Sentences per forward batch. quick: 50, three batches of a 150-sentence split; greedy
   * decoding at batch 16 spends its time in per-token overheads (a split took ~20% longer).
   */
  batchSize: number;
  /** Longest greedy completion (LENS / Seg-Zero; the benchmark's answers take ~40-60 tokens). */
  maxNewTokens: number;
  /** Longest LISA completion: its fixed answer is 2 tokens + <eos>; a little slack. */
  lisaMaxNewTokens: number;
}

export const DEFAULT_EVALUATE: Record<PresetName, EvaluateConfig> = {
  tiny: { maxPerSplit: 6, batchSize: 8, maxNewTokens: 16, lisaMaxNewTokens: 6 },
  quick: { maxPerSplit: 150, batchSize: 50, maxNewTokens: DEFAULT_MAX_NEW_TOKENS, lisaMaxNewTokens: 6 },
  paper: { maxPerSplit: 0, batchSize: 16, maxNewTokens: 128, lisaMaxNewTokens: 6 },
};

/** Resolves an evaluation config delta over a preset's defaults. */
export function resolveEvaluateConfig(preset: PresetName, delta: ConfigDelta<EvaluateConfig> = {}, where = 'evaluate config'): EvaluateConfig {
  return resolveConfig(DEFAULT_EVALUATE[preset], delta, where, {
    maxPerSplit: rules.int(0),
    batchSize: rules.int(1),
    maxNewTokens: rules.int(1),
    lisaMaxNewTokens: rules.int(1),
  });
}

/** At most `max` items, evenly spaced (index floor(i * n / max)); all when max is 0 or >= n. */
export function evaluationSubset<T>(items: readonly T[], max: number): T[] {
  const n = items.length;
  if (!Number.isInteger(max) || max < 0) throw new Error(`evaluationSubset: max must be an integer >= 0, got ${max}`);
  if (max === 0 || max >= n) return items.slice();
  return Array.from({ length: max }, (_, i) => items[Math.floor((i * n) / max)]!);
}

/** What a run folder holds. */
export type RunModelKind = 'lens' | BaselineKind;

/** A loaded run model (dispose `model` when done). */
export type LoadedRunModel =
  | { kind: 'lens'; model: LensModel; tokenizer: Tokenizer }
  | { kind: 'lisa'; model: LisaModel; tokenizer: Tokenizer }
  | { kind: 'segzero'; model: SegZeroModel; tokenizer: Tokenizer };

/** Loads the model and tokenizer a run folder ends with; the model file's metadata says which model it is. */
export function loadRunModel(dir: string): LoadedRunModel {
  const m = join(dir, MODEL_FILE);
  const t = join(dir, TOKENIZER_FILE);
  for (const p of [m, t]) if (!existsSync(p)) throw new Error(`${dir}: no ${p.slice(dir.length + 1)}; --run must name the folder of a finished run (pretrain, align, grpo, lisa, segzero)`);
  const component = readSafetensors(m).metadata.component;
  const tokenizer = TokenizerClass.load(t);
  if (component === 'lens') return { kind: 'lens', model: loadLens(m).model, tokenizer };
  if ((BASELINE_KINDS as readonly string[]).includes(component ?? '')) {
    const b = loadBaseline(m);
    return b.kind === 'lisa' ? { kind: 'lisa', model: b.model as LisaModel, tokenizer } : { kind: 'segzero', model: b.model as SegZeroModel, tokenizer };
  }
  throw new Error(`${m}: metadata.component = ${JSON.stringify(component)}; expected "lens", "lisa" or "segzero"`);
}

/** Binary mask at (h, w) from row `b` of low-res mask logits [B, h', w'] (bilinear, > 0). */
function maskAt(low: tf.Tensor3D, b: number, h: number, w: number): Uint8Array {
  const up = tf.tidy(() => upsampleMaskLogits(tf.slice(low, [b, 0, 0], [1, low.shape[1], low.shape[2]]) as tf.Tensor3D, h, w));
  const v = up.dataSync();
  up.dispose();
  const m = new Uint8Array(h * w);
  for (let i = 0; i < m.length; i++) m[i] = v[i]! > 0 ? 1 : 0;
  return m;
}

/**
 * A baseline's shared first half of inference on a chunk: visual tokens, SAM image
 * embeddings, and the greedy answer. The caller disposes `visual` and `emb`.
 */
function encodeAndGenerate(model: LisaModel | SegZeroModel, tok: Tokenizer, chunk: readonly TrainExample[], maxNewTokens: number) {
  const { images, labels } = imageTensors(chunk, model.config.imageSize);
  labels.dispose();
  const visual = tf.tidy(() => model.vision.apply(images));
  const emb = tf.tidy(() => model.sam.embedImage(images));
  images.dispose();
  try {
    const gen = generate(model.mllm, tok, { prompts: chunk.map((e) => promptIds(tok, e, model.vision.numTokens)), visual }, { greedy: true, maxNewTokens });
    return { visual, emb, gen };
  } catch (e) {
    tf.dispose([visual, emb]);
    throw e;
  }
}

/**
 * LISA-style inference: greedy answer; rows whose completion holds the segmentation
 * token get the mask its state prompts, the others an empty mask. formatValid = the
 * token was produced. Leaves tf.memory().numTensors unchanged.
 */
export function predictLisa(model: LisaModel, tok: Tokenizer, examples: readonly TrainExample[], { batchSize = 16, maxNewTokens = 6 } = {}): LensPrediction[] {
  const out: LensPrediction[] = [];
  for (let s = 0; s < examples.length; s += batchSize) {
    const chunk = examples.slice(s, s + batchSize);
    const { visual, emb, gen } = encodeAndGenerate(model, tok, chunk, maxNewTokens);
    try {
      const rows = chunk.map((_, b) => b).filter((b) => gen.tokens[b]!.includes(model.segTokenId));
      let low: tf.Tensor3D | null = null;
      if (rows.length > 0) {
        const T = gen.sequences[0]!.length;
        low = tf.tidy(() => {
          const idx = tf.tensor1d(rows, 'int32');
          const r = model.forward({
            tokens: tf.tensor2d(rows.map((b) => gen.sequences[b]!), [rows.length, T], 'int32'),
            attentionMask: tf.tensor2d(rows.map((b) => gen.attentionMask[b]!), [rows.length, T], 'int32'),
            visual: tf.gather(visual, idx),
            samEmbeddings: tf.gather(emb, idx),
          });
          return r.masks;
        });
      }
      chunk.forEach((e, b) => {
        const k = rows.indexOf(b);
        const h = e.sample.height;
        const w = e.sample.width;
        out.push({ id: e.id, text: gen.text[b]!, box: null, formatValid: k >= 0, mask: k >= 0 ? maskAt(low!, k, h, w) : new Uint8Array(h * w) });
      });
      low?.dispose();
    } finally {
      tf.dispose([visual, emb]);
    }
  }
  return out;
}

/**
 * Seg-Zero-style inference: greedy LENS-format answer; its first box prompts the frozen
 * SAM ([0, 0, 0, 0] when none parses, as Seg-Zero). Leaves tf.memory().numTensors unchanged.
 */
export function predictSegZero(model: SegZeroModel, tok: Tokenizer, examples: readonly TrainExample[], { batchSize = 16, maxNewTokens = DEFAULT_MAX_NEW_TOKENS } = {}): LensPrediction[] {
  const out: LensPrediction[] = [];
  for (let s = 0; s < examples.length; s += batchSize) {
    const chunk = examples.slice(s, s + batchSize);
    const { visual, emb, gen } = encodeAndGenerate(model, tok, chunk, maxNewTokens);
    try {
      const seg = model.segment(gen.text, { samEmbeddings: emb });
      try {
        chunk.forEach((e, b) => {
          const text = gen.text[b]!;
          out.push({ id: e.id, text, box: parseBox(text), formatValid: isFormatValid(text), mask: maskAt(seg.masks, b, e.sample.height, e.sample.width) });
        });
      } finally {
        tf.dispose([seg.masks, seg.iou]);
      }
    } finally {
      tf.dispose([visual, emb]);
    }
  }
  return out;
}

/** Predictions of a loaded run model on examples. */
export function predictRun(m: LoadedRunModel, examples: readonly TrainExample[], c: EvaluateConfig, label = 'predict', quiet = true): LensPrediction[] {
  if (m.kind === 'lens') return predictLens(m.model, m.tokenizer, examples, { batchSize: c.batchSize, maxNewTokens: c.maxNewTokens, label, quiet });
  if (m.kind === 'lisa') return predictLisa(m.model, m.tokenizer, examples, { batchSize: c.batchSize, maxNewTokens: c.lisaMaxNewTokens });
  return predictSegZero(m.model, m.tokenizer, examples, { batchSize: c.batchSize, maxNewTokens: c.maxNewTokens });
}

/** One row of eval.arrow. */
export interface EvalRow extends MetricResult {
  /** FAMILY/SPLIT. */
  split: string;
  /** Which model the run holds. */
  model: RunModelKind;
}

/** The predictions-file entries (the `--pred` contract) of some predictions. */
export function predictionEntries(
  examples: readonly TrainExample[],
  preds: readonly LensPrediction[],
  side: number,
  { withBoxes = true }: { withBoxes?: boolean } = {},
): ReturnType<typeof predictionEntry>[] {
  return examples.map((e, i) => {
    const p = preds[i]!;
    if (p.id !== e.id) throw new Error(`predictionEntries: prediction ${i} is for ${p.id}, expected ${e.id}`);
    const s = e.sample;
    // A model that answers with a box but gave none scores a miss: [0, 0, 0, 0] (Seg-Zero's parser).
    const bbox = !withBoxes ? null : p.box ? inputBoxToOriginal(p.box, side, s.height, s.width) : ([0, 0, 0, 0] as [number, number, number, number]);
    return predictionEntry(s, p.mask, { bbox, formatValid: p.formatValid });
  });
}

/** Scores entries on the samples they cover (a subset view of the split), through eval/predictions. */
function scoreEntries(ds: RefDataset, examples: readonly TrainExample[], entries: ReturnType<typeof predictionEntry>[], where: string): MetricResult {
  const ids = new Set(examples.map((e) => e.id));
  const view: RefDataset = { ...ds, samples: ds.samples.filter((s) => ids.has(s.id)) };
  const preds: Prediction[] = entries.map((e, index) => ({
    index,
    sampleId: e.sample_id,
    segmentation: e.segmentation,
    ...(e.bbox ? { bbox: e.bbox } : {}),
    ...(e.format_valid !== undefined ? { formatValid: e.format_valid } : {}),
  }));
  const { missing, ...m } = scorePredictions(view, preds, where);
  if (missing) throw new Error(`${where}: ${missing} samples without a prediction`);
  return m;
}

/** Options of `evaluateRun`. */
export interface EvaluateRunOptions {
  dataRoot: string;
  /** FAMILY/SPLIT names; default every evaluation split of the generated benchmark. */
  splits?: readonly string[];
  preset?: PresetName;
  config?: ConfigDelta<EvaluateConfig>;
  /**
   * Folder for eval.arrow and predictions/ (default `dir`): scoring a run another way, e.g.
   * every sentence, without overwriting the evaluation its job's summary was made from.
   */
  out?: string;
  quiet?: boolean;
}

/**
 * Evaluates the model of run folder `dir` on each split; writes <out>/eval.arrow and
 * <out>/predictions/<family>_<split>.json (`out` defaults to `dir`), returns the rows.
 */
export async function evaluateRun(dir: string, opts: EvaluateRunOptions): Promise<EvalRow[]> {
  const c = resolveEvaluateConfig(opts.preset ?? 'quick', opts.config);
  const splits = opts.splits ?? evaluationSplits();
  const out = opts.out ?? dir;
  const m = loadRunModel(dir);
  const rows: EvalRow[] = [];
  try {
    const side = m.model.config.imageSize;
    const bar = new Progress({ label: `evaluate ${dir.split(/[\\/]/).pop()}`, total: splits.length, unit: 'split', quiet: opts.quiet });
    mkdirSync(join(out, 'predictions'), { recursive: true });
    for (const name of splits) {
      const { family, split } = parseSplitName(name);
      const ds = await loadSplit(opts.dataRoot, family, split);
      const all = await loadExamples(opts.dataRoot, family, split, { imageSize: side, allSentences: false, quiet: true });
      const examples = evaluationSubset(all, c.maxPerSplit);
      const preds = predictRun(m, examples, c);
      const entries = predictionEntries(examples, preds, side, { withBoxes: m.kind !== 'lisa' }); // LISA answers no box
      const file = join(out, 'predictions', `${family}_${split}.json`);
      writeJsonAtomic(file, entries);
      rows.push({ split: name, model: m.kind, ...scoreEntries(ds, examples, entries, file) });
      bar.tick(1, name);
    }
    bar.finish();
  } finally {
    m.model.dispose();
  }
  writeArrow(join(out, 'eval.arrow'), rows.map(evalRowCells));
  return rows;
}

/** An EvalRow as Arrow cells (absent box / format figures as null: N/A, not 0). */
export function evalRowCells(r: EvalRow): Row {
  return { split: r.split, model: r.model, giou: r.giou, ciou: r.ciou, n: r.n, box_acc50: r.box_acc50 ?? null, format_rate: r.format_rate ?? null };
}

/** A fixed-width text table of eval rows (percentages, one decimal; '-' where N/A). */
export function formatEvalTable(rows: readonly EvalRow[]): string {
  const pct = (v: number | undefined) => (v === undefined || Number.isNaN(v) ? '-' : (100 * v).toFixed(1));
  const head = ['split', 'model', 'gIoU', 'cIoU', 'boxAcc', 'format', 'n'];
  const body = rows.map((r) => [r.split, r.model, pct(r.giou), pct(r.ciou), pct(r.box_acc50), pct(r.format_rate), String(r.n)]);
  const w = head.map((h, i) => Math.max(h.length, ...body.map((b) => b[i]!.length)));
  const line = (cells: string[]) => cells.map((x, i) => (i < 2 ? x.padEnd(w[i]!) : x.padStart(w[i]!))).join('  ');
  return [line(head), ...body.map(line)].join('\n');
}

/** Reads a run's kind from run.json (for messages), or null. */
export function runKind(dir: string): string | null {
  try {
    return (JSON.parse(readFileSync(join(dir, 'run.json'), 'utf8')) as { kind?: string }).kind ?? null;
  } catch {
    return null;
  }
}
