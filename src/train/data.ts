/**
 * From dataset samples to model batches (all stages). A `TrainExample` holds one
 * sentence with its image and target at the model's input size, the target box in
 * input pixels, and the LENS answer it should produce:
 *   <think>{reasoning}</think><answer>[{"bbox_2d": [x1, y1, x2, y2], "label": "{label}"}]</answer>
 * Boxes are absolute pixels of the resized input (lens-official-code-facts.md), as
 * integers, x2 = x + w (the COCO box's far edge).
 */
import * as tf from '@tensorflow/tfjs-core';
import { generateReferImage, generateReasonImage, type GeneratedImage } from '../data/generate/benchmark';
import { targetLabel, type GenerateConfig } from '../data/generate/index';
import { loadSplit, readSampleImage, resizeRgb, type Family, type RefSample } from '../data/index';
import { formatAnswer, type Box } from '../model/answer';
import { buildPrompt, EOS_ID, padSequences, Tokenizer } from '../model/tokenizer';
import type { Rng } from '../random';
import { Progress } from '../util/progress';

/**
 * One sentence at model resolution, as the training batches need it: stage 0b's generated
 * extra pictures (`generatedExamples`) have nothing more.
 */
export interface SftExample {
  id: string;
  family: Family;
  split: string;
  sentence: string;
  /** Target phrase for the answer JSON ("blue star"); the category name on real data. */
  label: string;
  /** Chain of thought taught in stage 0b (generated data); a one-line fallback elsewhere. */
  reasoning: string;
  /** [S * S * 3] RGB bytes at the model input size. */
  rgb: Uint8Array;
  /** [S * S] target at the model input size: 0 / 1 / 255 (ignore), nearest-neighbour resized. */
  target: Uint8Array;
  /** Target box, xyxy in input pixels. */
  box: Box;
  /** The ground-truth LENS answer text. */
  answer: string;
}

/** One training / evaluation sentence of a dataset split, at model resolution. */
export interface TrainExample extends SftExample {
  /** The sample it came from (full-resolution mask for LISA-convention evaluation). */
  sample: RefSample;
}

/** Nearest-neighbour resize of a one-channel mask (keeps 0 / 1 / 255 exact). */
export function resizeMaskNearest(mask: Uint8Array, h: number, w: number, side: number): Uint8Array {
  if (h === side && w === side) return mask;
  const out = new Uint8Array(side * side);
  for (let y = 0; y < side; y++) {
    const sy = Math.min(h - 1, Math.floor(((y + 0.5) * h) / side));
    for (let x = 0; x < side; x++) out[y * side + x] = mask[sy * w + Math.min(w - 1, Math.floor(((x + 0.5) * w) / side))]!;
  }
  return out;
}

/** COCO xywh in original pixels -> integer xyxy in input pixels, clamped to [0, side]. */
export function boxToInput(bbox: readonly number[], h: number, w: number, side: number): Box {
  const [x, y, bw, bh] = bbox as [number, number, number, number];
  const c = (v: number) => Math.max(0, Math.min(side, Math.round(v)));
  return [c((x * side) / w), c((y * side) / h), c(((x + bw) * side) / w), c(((y + bh) * side) / h)];
}

/** Loads FAMILY/SPLIT and brings every sentence to model resolution. */
export async function loadExamples(
  root: string,
  family: Family,
  split: string,
  { imageSize, allSentences = true, limit, quiet = false }: { imageSize: number; allSentences?: boolean; limit?: number; quiet?: boolean },
): Promise<TrainExample[]> {
  const ds = await loadSplit(root, family, split, { allSentences });
  const samples = limit === undefined ? ds.samples : ds.samples.slice(0, limit);
  const images = new Map<string, Uint8Array>();
  const bar = new Progress({ label: `load ${family}/${split}`, total: samples.length, unit: 'sent', quiet });
  const out: TrainExample[] = [];
  for (const s of samples) {
    const key = s.imagePath;
    let rgb = images.get(key);
    if (!rgb) {
      const img = await readSampleImage(s);
      rgb = await resizeRgb(img.data, img.height, img.width, imageSize, imageSize, 'linear');
      images.set(key, rgb);
    }
    const mask = s.mask();
    const bbox = s.bbox ?? [0, 0, 0, 0];
    const box = boxToInput(bbox, s.height, s.width, imageSize);
    const label = s.label ?? 'object';
    const reasoning = s.reasoning ?? `The ${label} matches the description.`;
    out.push({
      id: s.id,
      family: s.family,
      split: s.split,
      sentence: s.sentence,
      label,
      reasoning,
      rgb,
      target: resizeMaskNearest(mask, s.height, s.width, imageSize),
      box,
      answer: formatAnswer({ thinking: reasoning, box, label }),
      sample: s,
    });
    bar.tick();
  }
  bar.finish();
  return out;
}

/**
 * Training sentences of generated pictures beyond a benchmark's training split: the next
 * `refer` pictures of its RefCOCO-like training stream (image indices `from.refer` on, every
 * ref of the three families) and the next `reason` of its ReasonSeg-like one, as
 * `generateBenchmark` would have written them with a larger training split (same
 * generator, same rules, so never a val or test picture). A pure function of its
 * arguments, so a resumed run rebuilds the same pool. Pictures are drawn at the
 * generator's side, which must be the model's.
 */
export function generatedExamples(
  generator: GenerateConfig,
  { refer, reason, from }: { refer: number; reason: number; from: { refer: number; reason: number } },
): SftExample[] {
  const side = generator.imageSize;
  const out: SftExample[] = [];
  const add = (img: GeneratedImage) => {
    for (const r of img.refs) {
      const o = img.scene.objects[r.target]!;
      const box = boxToInput(o.bbox, side, side, side);
      const label = targetLabel(o);
      r.expressions.forEach((e, k) =>
        out.push({
          id: `generated/${r.family}/${img.split}/${img.index}/${r.target}/${k}`,
          family: r.family,
          split: img.split,
          sentence: e.text,
          label,
          reasoning: e.reasoning,
          rgb: img.rgb,
          target: o.visible,
          box,
          answer: formatAnswer({ thinking: e.reasoning, box, label }),
        }),
      );
    }
  };
  for (let i = 0; i < refer; i++) add(generateReferImage(generator, 'train', from.refer + i));
  for (let i = 0; i < reason; i++) add(generateReasonImage(generator, 'train', from.reason + i));
  return out;
}

/** Fits the tokenizer to the training examples' prompts and answers (the benchmark's language). */
export function fitTokenizer(examples: readonly TrainExample[], maxInt = 255): Tokenizer {
  const texts: string[] = [];
  for (const e of examples) texts.push(buildPrompt({ instruction: e.sentence }), e.answer);
  return Tokenizer.fit(texts, { maxInt });
}

/** Prompt ids of an example, `<image>` expanded to V slots. */
export function promptIds(tok: Tokenizer, e: SftExample, numVisual: number): number[] {
  return tok.encodePrompt(buildPrompt({ instruction: e.sentence }), numVisual);
}

/** A model-ready batch. The caller disposes every tensor (`disposeBatch`). */
export interface Batch {
  /** int32 [B, T]: left-padded prompt (+ answer and <eos> when `withAnswer`). */
  tokens: tf.Tensor2D;
  /** [B, T]: 1 on real tokens. */
  attentionMask: tf.Tensor2D;
  /** [B, T]: 1 on answer tokens (incl. <eos>) at their own position; zeros without answers. */
  answerMask: tf.Tensor2D;
  /** [B, S, S, 3] in [0, 1]. */
  images: tf.Tensor4D;
  /** [B, S, S] float 0 / 1 / 255 targets. */
  labels: tf.Tensor3D;
  /** [B][4] target boxes (input pixels). */
  boxes: Box[];
  /** The prompt ids (unpadded), for generation. */
  prompts: number[][];
}

/** Images [B, S, S, 3] in [0, 1] and labels [B, S, S] of some examples. */
export function imageTensors(examples: readonly SftExample[], side: number): { images: tf.Tensor4D; labels: tf.Tensor3D } {
  const px = new Float32Array(examples.length * side * side * 3);
  const lab = new Float32Array(examples.length * side * side);
  examples.forEach((e, b) => {
    if (e.rgb.length !== side * side * 3) throw new Error(`example ${e.id}: image has ${e.rgb.length} bytes, expected ${side}x${side}x3`);
    for (let i = 0; i < e.rgb.length; i++) px[b * side * side * 3 + i] = e.rgb[i]! / 255;
    lab.set(e.target, b * side * side);
  });
  return { images: tf.tensor4d(px, [examples.length, side, side, 3]), labels: tf.tensor3d(lab, [examples.length, side, side]) };
}

/** Encodes examples into one left-padded batch (prompt, or prompt + answer + <eos>). */
export function encodeBatch(
  tok: Tokenizer,
  examples: readonly SftExample[],
  { numVisual, side, withAnswer }: { numVisual: number; side: number; withAnswer: boolean },
): Batch {
  const prompts = examples.map((e) => promptIds(tok, e, numVisual));
  const answers = examples.map((e) => (withAnswer ? [...tok.encode(e.answer), EOS_ID] : []));
  const seqs = prompts.map((p, i) => [...p, ...answers[i]!]);
  const { ids, mask } = padSequences(seqs, { side: 'left' });
  const T = ids[0]?.length ?? 0;
  const ans = ids.map((_, i) => {
    const row = new Array<number>(T).fill(0);
    for (let t = T - answers[i]!.length; t < T; t++) row[t] = 1;
    return row;
  });
  return {
    tokens: tf.tensor2d(ids, [examples.length, T], 'int32'),
    attentionMask: tf.tensor2d(mask, [examples.length, T], 'int32'),
    answerMask: tf.tensor2d(ans, [examples.length, T], 'float32'),
    ...imageTensors(examples, side),
    boxes: examples.map((e) => e.box),
    prompts,
  };
}

export function disposeBatch(b: Batch): void {
  tf.dispose([b.tokens, b.attentionMask, b.answerMask, b.images, b.labels]);
}

/**
 * The example indices of optimiser step `step`: epochs of a fresh shuffle each
 * (`rng.fork('epoch-<e>')`), the remainder of an epoch dropped. A pure function of
 * the run's rng and the step, so a resumed run sees the same batches.
 */
export function batchIndices(n: number, batchSize: number, step: number, rng: Rng): number[] {
  if (batchSize > n) throw new Error(`batchIndices: batch size ${batchSize} exceeds the ${n} examples`);
  const perEpoch = Math.floor(n / batchSize);
  const epoch = Math.floor(step / perEpoch);
  const order = rng.fork(`epoch-${epoch}`).shuffle(Array.from({ length: n }, (_, i) => i));
  const start = (step % perEpoch) * batchSize;
  return order.slice(start, start + batchSize);
}
