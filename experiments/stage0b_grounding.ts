/**
 * Experiment for issue #5 (docs/stage0b-grounding.md): does the stage-0b MLLM learn to
 * ground, i.e. to read the target's position from the image, and what helps it?
 *
 * Trains the vision encoder + MLLM of a stage-0a model on the LENS answers (stage 0b's
 * SFT, same data, batches and schedule shape) with up to five changes, each off by default:
 * - `--pointer W`: an auxiliary loss, weight W. The last-layer state of the answer's
 *   `[` before the box (the position that predicts x1) is dotted with the last-layer states
 *   of the V visual tokens (scaled by 1 / sqrt(C)); the softmax over V is trained by
 *   cross-entropy towards the share of the target mask inside each token's image cell.
 *   Parameter-free: it shapes the MLLM's own states, and so gives the vision encoder a
 *   direct gradient (the plain SFT gives it almost none: the answers are learnt from text).
 *   `--pointer-at box`: at the states that predict each of the four coordinates, not x1 alone.
 *   `--pointer-layer L`: on the residual states after block L instead of the last layer's.
 *   `--attn-pointer L`: on attention instead of states: head 0 of block L is trained to put
 *   its weight (softmax over every key) on the visual tokens that hold the target, so it
 *   copies the target token's value into the state that writes the box.
 *   `--place-probe W`: a loss (weight W) on a linear head of its own that reads the
 *   target's cell off the pointer's x1 state: the state must hold where the object is.
 *   Every evaluation scores the pointer on the held-out sentences, teacher-forced:
 *   `pointerHeldOut` (its cross-entropy) and `pointerHit` (the share whose x1 state points,
 *   argmax, at a token holding some of the target).
 * - `--no-place`: the reasoning's last sentence names the target without its place ("It is
 *   the red circle." for "It is the red circle at the top."), so only the picture can place the box.
 * - `--pos2d S`: a fixed 2D sin-cos code of each visual token's (row, col), times S, added
 *   to the vision encoder's output (the MLLM's learned 1D positions cannot tell rows from
 *   columns; Qwen2.5-VL's mRoPE gives visual tokens their (h, w) positions).
 * - `--coord-sigma s`: the 4 box coordinates are scored against a Gaussian over the integer
 *   tokens (std s pixels) instead of one-hot: a neighbour of the right value costs less.
 * - `--describe F`: a fraction F of every batch is a "describe" example instead: the
 *   prompt "list every object." and, as the answer, every instance of the picture with its
 *   box and category (the RefCOCO families' COCO instances), tokens only the picture can
 *   predict (the role of a real MLLM's grounding pretraining data).
 * - `--label W`: an auxiliary loss, weight W: each visual token (the vision encoder's
 *   output, before the MLLM) is scored through the tied LM head against the category words
 *   of the instances whose boxes cover its image cell (share-weighted): visual tokens
 *   that read as the words naming what they show.
 *   `--label-pretrain N` runs N steps of it alone (lr `--lr`) before the SFT; with
 *   `--label-head own` through a head of its own (dropped afterwards) instead of the tied one.
 * - `--oracle S`: not a method but a control: each visual token gets S x the embedding of
 *   the category words of the instances covering its cell (`--label`'s targets), looked up
 *   by the picture's pixels, so the visual tokens name their shapes exactly (RefCOCO-family
 *   pictures; the ReasonSeg-like ones get nothing). What is left to learn is the MLLM's reading.
 * `--number-pos S`: adds S x the --pos2d code of each integer's place to its embedding
 * (common.ts addNumberCode 'pos2d'; written into the saved model).
 * `--box-weight W`: the box's four integers weigh W in the answer NLL (the other tokens 1).
 * `--mix-box F`: a fraction F of every batch answers with the box alone ("[x1, y1, x2, y2]",
 * as `pool_tasks.ts --task refer-box`), its sentence prefixed with the word `bbox_2d` so
 * that the two answer forms have different prompts; the rest in the LENS format.
 * `--fresh`: the SFT's batches are the sentences of fresh generated pictures (never the
 * same picture twice; `--pool-from` the first index) instead of the benchmark's training set.
 * `--vision-lr L` gives the vision encoder its own peak learning rate (the rest keeps `--lr`).
 * `--vision JSON` starts from a fresh vision encoder with these fields changed (e.g.
 * `'{"patchSize":4,"mergeSize":4}'`); SAM is still the stage-0a one.
 *
 * Every `--eval-every` steps: greedy answers on `--eval` refcoco val sentences (format
 * rate, box Acc@0.5, mean box IoU) and the answers' NLL with their own vs another
 * sample's image (stage0.ts imageDependence; per token, then apart for the box's four
 * integers, `boxNll`, and the answer's other tokens, `restNll`), and the spread of the vision encoder's own
 * visual tokens over those images (common.ts visualSpread). Rows go to OUT/eval.arrow, the model to
 * OUT/model.safetensors (without the --pos2d code: load it with this script's flag).
 * `--steps 0` only scores the model of --from (e.g. --from results/main/pretrain/0b).
 *
 *   npx tsx experiments/stage0b_grounding.ts --out results/experiments/sft            # stage 0b as is
 *   npx tsx experiments/stage0b_grounding.ts --pointer 1 --pos2d 0.5 --coord-sigma 1.5 --steps 5000 --out results/experiments/ptr
 */
import { mkdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import * as tf from '@tensorflow/tfjs-core';
import { initBackend } from '../src/backend';
import { tokenCrossEntropy } from '../src/model/losses';
import type { LensModel } from '../src/model/lens';
import { Linear } from '../src/model/nn';
import { buildLens, loadLens } from '../src/model/presets';
import type { VisionEncoderConfig } from '../src/model/vision_encoder';
import { IMAGE_ID, Tokenizer, UNK_ID } from '../src/model/tokenizer';
import { Rng } from '../src/random';
import { writeArrow, type Row } from '../src/util/arrow';
import { batchIndices, boxToInput, disposeBatch, encodeBatch, imageTensors, loadExamples, type Batch, type TrainExample } from '../src/train/data';
import { loadSplit, type Family } from '../src/data/index';
import { generateReferImage, resolveGenerateConfig, targetLabel } from '../src/data/generate/index';
import { formatAnswer, type Box } from '../src/model/answer';
import { AdamW } from '../src/train/optim';
import { lrAt } from '../src/train/schedule';
import { capReasoning, evaluateAnswers, imageDependence } from '../src/train/stage0';
import { cellShares } from '../src/train/grounding';
import { saveStageModel, TRAIN_FAMILIES } from '../src/train/stage_io';
import { addNumberCode, addPos2d, optimiserStep, smoothedAnswerNll, visualSpread } from './common';

const { values: a } = parseArgs({
  options: {
    from: { type: 'string', default: 'results/main/pretrain/0a' },
    tokenizer: { type: 'string', default: 'results/main/pretrain/0b/tokenizer.json' },
    data: { type: 'string', default: 'data/bench' },
    out: { type: 'string', default: 'results/experiments/stage0b' },
    steps: { type: 'string', default: '600' },
    batch: { type: 'string', default: '16' },
    lr: { type: 'string', default: '1e-3' },
    'vision-lr': { type: 'string' },
    pointer: { type: 'string', default: '0' },
    label: { type: 'string', default: '0' },
    'label-pretrain': { type: 'string', default: '0' },
    'label-head': { type: 'string', default: 'tied' },
    vision: { type: 'string' },
    describe: { type: 'string', default: '0' },
    pos2d: { type: 'string', default: '0' },
    oracle: { type: 'string', default: '0' },
    'coord-sigma': { type: 'string', default: '0' },
    fresh: { type: 'boolean', default: false },
    'mix-box': { type: 'string', default: '0' },
    'box-weight': { type: 'string', default: '1' },
    'number-pos': { type: 'string', default: '0' },
    'no-place': { type: 'boolean', default: false },
    'pointer-at': { type: 'string', default: 'x1' },
    'pointer-layer': { type: 'string', default: '0' },
    'attn-pointer': { type: 'string', default: '0' },
    'place-probe': { type: 'string', default: '0' },
    'pool-from': { type: 'string', default: '20000' },
    'eval-every': { type: 'string', default: '300' },
    eval: { type: 'string', default: '100' },
    seed: { type: 'string', default: '0' },
  },
});
const num = (k: keyof typeof a) => {
  const v = Number(a[k]);
  if (!Number.isFinite(v) || v < 0) throw new Error(`--${k}: expected a number >= 0, got '${a[k]}'`);
  return v;
};
const STEPS = num('steps');
const BATCH = num('batch');
const POINTER = num('pointer');
const LABEL = num('label');
const LABEL_PRETRAIN = num('label-pretrain');
if (a['label-head'] !== 'tied' && a['label-head'] !== 'own') throw new Error(`--label-head: expected tied or own, got '${a['label-head']}'`);
const POS2D = num('pos2d');
const ORACLE = num('oracle');
const SIGMA = num('coord-sigma');
const DESCRIBE = num('describe');
if (DESCRIBE > 1) throw new Error(`--describe: expected a fraction in [0, 1], got ${DESCRIBE}`);
const DESCRIBE_PROMPT = 'list every object.';
const FRESH = a.fresh!;
const MIX_BOX = num('mix-box');
if (MIX_BOX > 1) throw new Error(`--mix-box: expected a fraction in [0, 1], got ${MIX_BOX}`);
if (a['pointer-at'] !== 'x1' && a['pointer-at'] !== 'box') throw new Error(`--pointer-at: expected x1 or box, got '${a['pointer-at']}'`);
/** --pointer-at: offsets from the box's `[` of the states the pointer trains (x1 alone, or each of the four coordinates). */
const POINTER_AT = a['pointer-at'] === 'box' ? [0, 2, 4, 6] : [0];

/**
 * The taps below record only while `losses` runs its forward pass (not in generation or the
 * other evaluations, where nothing reads them).
 */
let tapping = false;

/**
 * --pointer-layer L (1..numLayers): the pointer scores the residual states after block L
 * instead of the last layer's normed states (0: those), so the blocks above are free to turn
 * the pointed-at token into the next token. Set by wrapping block L's applyKV.
 */
let layerOut: tf.Tensor3D | null = null;
function tapLayer(model: LensModel, L: number): void {
  const blk = model.mllm.blocks[L - 1];
  if (!blk) throw new Error(`--pointer-layer: expected 1..${model.mllm.blocks.length}, got ${L}`);
  const plain = blk.applyKV.bind(blk);
  blk.applyKV = ((...args: Parameters<typeof plain>) => {
    const r = plain(...args);
    if (!tapping) return r;
    layerOut?.dispose(); // the previous forward pass's (kept below: runBlocks' scope would dispose it)
    layerOut = tf.keep(r.y as tf.Tensor3D);
    return r;
  }) as typeof blk.applyKV;
}

/**
 * --attn-pointer L (1..numLayers): the pointer supervises attention instead of states: head 0
 * of block L (src's `attentionOf`), at the pointer's positions, is trained by cross-entropy to
 * put its weight on the visual tokens holding the target (the whole softmax over every key, so
 * the weight must leave the text). The head then copies the target token's value, its place
 * included, into the state that writes the box. (src/train/grounding.ts is this loss as stage
 * 0b has it.)
 */
/**
 * --place-probe W: an auxiliary loss, weight W: a linear head of its own (dropped at the end)
 * reads the target's visual cell (its mask shares, as the pointer's targets) off the state
 * the pointer scores at the box's `[`, so that state must carry where the pointed-at
 * object is, not only what it looks like.
 */
let placeHead: Linear | null = null;

/** --no-place: the reasoning's last sentence names the target without its place ("It is the red circle."). */
function withoutPlace(e: TrainExample): TrainExample {
  const place = / (at the [a-z ]+|in the centre)\.<\/think>/;
  return place.test(e.answer) ? { ...e, answer: e.answer.replace(place, '.</think>') } : e;
}

/**
 * --fresh: the sentences of generated pictures the benchmark does not hold (the
 * generator's RefCOCO-like train stream from `--pool-from` on), one batch per call,
 * the answers as stage 0b writes them: a picture is never seen twice, so the answers
 * cannot be learnt by heart.
 */
function freshStream(side: number, seed: number): (n: number) => TrainExample[] {
  const generator = resolveGenerateConfig({ scale: 'quick', seed });
  if (generator.imageSize !== side) throw new Error(`--fresh: the generator draws ${generator.imageSize}-px pictures, the model takes ${side}`);
  let next = num('pool-from');
  let queue: TrainExample[] = [];
  return (n) => {
    while (queue.length < n) {
      const img = generateReferImage(generator, 'train', next++);
      for (const r of img.refs) {
        const o = img.scene.objects.find((x) => x.z === r.target)!;
        const [x, y, w, h] = o.bbox;
        const box: Box = [x, y, x + w, y + h];
        const label = targetLabel(o);
        for (const e of r.expressions)
          queue.push({ id: `fresh/${img.index}/${r.family}/${r.target}`, family: r.family as Family, split: 'train', sentence: e.text, label, reasoning: e.reasoning, rgb: img.rgb, target: o.visible, box, answer: formatAnswer({ thinking: e.reasoning, box, label }), sample: null as never });
      }
    }
    const out = new Rng(next).shuffle(queue).slice(0, n);
    queue = queue.filter((e) => !out.includes(e));
    return out;
  };
}

/**
 * One "describe" example per RefCOCO-family training image: the prompt asks for every
 * object, the answer lists each instance's box and category in reading order, the JSON
 * of the LENS answer without the reasoning. Only the picture can tell the answer.
 */
async function describeExamples(root: string, refs: readonly TrainExample[], side: number): Promise<TrainExample[]> {
  const byImage = new Map<string, TrainExample>();
  for (const e of refs) if (e.family !== 'reasonseg' && !byImage.has(e.sample.imagePath)) byImage.set(e.sample.imagePath, e);
  const out: TrainExample[] = [];
  for (const [path, instances] of await imageInstances(root, side)) {
    const e = byImage.get(path);
    if (!e) continue;
    const items = [...instances].sort((p, q) => p.box[1]! - q.box[1]! || p.box[0]! - q.box[0]!);
    const answer = `[${items.map((it) => `{"bbox_2d": [${it.box.join(', ')}], "label": ${JSON.stringify(it.label)}}`).join(', ')}]`;
    out.push({ ...e, id: `describe/${e.sample.imageId}`, sentence: DESCRIBE_PROMPT, answer, target: new Uint8Array(side * side) });
  }
  return out;
}

/** Per visual cell, the category words of the instances whose boxes cover it (share-weighted). */
interface CellLabels {
  /** [B*V, vocab] rows summing to 1 where the cell holds an object. */
  target: tf.Tensor2D;
  /** [B*V] 1 where it does. */
  mask: tf.Tensor1D;
}

function cellLabels(ex: readonly TrainExample[], inst: Map<string, Array<{ box: number[]; label: string }>>, tok: Tokenizer, side: number, g: number, vocab: number): CellLabels {
  const target = new Float32Array(ex.length * g * g * vocab);
  const mask = new Float32Array(ex.length * g * g);
  const cell = side / g;
  ex.forEach((e, k) => {
    for (const it of inst.get(e.sample.imagePath) ?? []) {
      const id = tok.tokenId(it.label);
      if (id === UNK_ID) continue;
      const [x1, y1, x2, y2] = it.box as [number, number, number, number];
      for (let r = 0; r < g; r++) {
        for (let c = 0; c < g; c++) {
          const ow = Math.max(0, Math.min(x2, (c + 1) * cell) - Math.max(x1, c * cell));
          const oh = Math.max(0, Math.min(y2, (r + 1) * cell) - Math.max(y1, r * cell));
          if (ow * oh > 0) target[((k * g * g) + r * g + c) * vocab + id]! += (ow * oh) / (cell * cell);
        }
      }
    }
    for (let q = 0; q < g * g; q++) {
      const row = target.subarray((k * g * g + q) * vocab, (k * g * g + q + 1) * vocab);
      const z = row.reduce((u, v) => u + v, 0);
      if (z > 0) {
        row.forEach((v, i) => (row[i] = v / z));
        mask[k * g * g + q] = 1;
      }
    }
  });
  return { target: tf.tensor2d(target, [ex.length * g * g, vocab]), mask: tf.tensor1d(mask) };
}

/** Cross-entropy of the visual tokens [B, V, C], read through the tied LM head (or `head`), against the cells' category words. */
function labelLoss(model: LensModel, visual: tf.Tensor3D, labels: CellLabels, head: Linear | null = null): tf.Scalar {
  return tf.tidy(() => {
    const [B, V, C] = visual.shape;
    const flat = tf.reshape(visual, [B * V, C]) as tf.Tensor2D;
    const logits = head ? head.apply(flat) : tf.matMul(flat, tf.transpose(model.mllm.embed.weight)); // [B*V, vocab]
    const ce = tf.neg(tf.sum(tf.mul(tf.logSoftmax(logits), labels.target), -1)); // [B*V]
    return tf.div(tf.sum(tf.mul(ce, labels.mask)), tf.maximum(tf.sum(labels.mask), 1)) as tf.Scalar;
  });
}

/** imagePath -> (input-pixel box, category word) of every instance, over the RefCOCO families. */
async function imageInstances(root: string, side: number, split = 'train'): Promise<Map<string, Array<{ box: number[]; label: string }>>> {
  const out = new Map<string, Array<{ box: number[]; label: string }>>();
  for (const family of ['refcoco', 'refcoco+', 'refcocog'] as const) {
    const ds = await loadSplit(root, family, split);
    const coco = JSON.parse(readFileSync(join(root, 'refer_seg', family, 'instances.json'), 'utf8')) as { categories: Array<{ id: number; name: string }> };
    const names = new Map(coco.categories.map((c) => [c.id, c.name] as const));
    for (const s of ds.samples) {
      if (out.has(s.imagePath)) continue;
      out.set(s.imagePath, ds.instances(s.imageId).map((i) => ({ box: boxToInput(i.bbox, s.height, s.width, side), label: names.get(i.categoryId) ?? '?' })));
    }
  }
  return out;
}

/** The answer NLL (coordinates Gaussian-smoothed when SIGMA > 0) and the pointer loss. */
function losses(model: LensModel, tok: Tokenizer, b: Batch, shares: tf.Tensor2D, labels: CellLabels | null): { sft: tf.Scalar; pointer: tf.Scalar; label: tf.Scalar; hit: tf.Scalar; place: tf.Scalar } {
  return tf.tidy(() => {
    const visual = model.vision.apply(b.images);
    const label = labels ? labelLoss(model, visual, labels) : tf.scalar(0);
    tapping = true;
    let out: { logits: tf.Tensor3D; hidden: tf.Tensor3D; logAttention?: tf.Tensor3D };
    try {
      const attentionOf = num('attn-pointer') > 0 ? { layer: num('attn-pointer'), head: 0 } : undefined;
      out = model.mllm.forward({ tokens: b.tokens, attentionMask: b.attentionMask, visual }, { attentionOf });
    } finally {
      tapping = false;
    }
    const { logits, hidden } = out;
    const [B, T, V] = logits.shape;
    const lg = tf.slice(logits, [0, 0, 0], [B, T - 1, V]) as tf.Tensor3D; // predicts tokens 1..T-1
    const ids = b.tokens.arraySync() as number[][];
    const bbox = tok.tokenId('bbox_2d');
    const open = tok.tokenId('[');
    const sft =
      SIGMA === 0 && num('box-weight') === 1
        ? tokenCrossEntropy(lg, tf.slice(b.tokens, [0, 1], [B, T - 1]) as tf.Tensor2D, tf.slice(b.answerMask, [0, 1], [B, T - 1]) as tf.Tensor2D)
        : smoothedAnswerNll(logits, b, tok, SIGMA, num('box-weight'));
    const nv = model.vision.numTokens;
    const C = hidden.shape[2];
    const states = num('pointer-layer') > 0 ? layerOut! : hidden;
    const q: tf.Tensor[] = [];
    const k: tf.Tensor[] = [];
    ids.forEach((row, i) => {
      const at = row.indexOf(open, row.indexOf(bbox)); // the state that predicts x1
      q.push(tf.concat(POINTER_AT.map((d) => tf.slice(states, [i, at + d, 0], [1, 1, C])), 1));
      if (num('attn-pointer') === 0) k.push(tf.slice(states, [i, row.indexOf(IMAGE_ID), 0], [1, nv, C])); // the visual tokens' states
    });
    let scores: tf.Tensor; // [B, np, nv] log-weights over the visual tokens
    if (num('attn-pointer') > 0) {
      const rows = ids.map((row, i) => {
        const at = row.indexOf(open, row.indexOf(bbox));
        const v0 = row.indexOf(IMAGE_ID);
        return tf.concat(POINTER_AT.map((d) => tf.slice(out.logAttention!, [i, at + d, v0], [1, 1, nv])), 1);
      });
      scores = tf.concat(rows, 0);
    } else {
      scores = tf.logSoftmax(tf.div(tf.matMul(tf.concat(q, 0), tf.concat(k, 0), false, true), Math.sqrt(C)));
    }
    const pointer = tf.mean(tf.neg(tf.sum(tf.mul(scores, tf.expandDims(shares, 1)), -1))) as tf.Scalar;
    // share of the examples whose x1 state points (argmax) at a token holding some of the target
    const top = tf.oneHot(tf.argMax(tf.squeeze(tf.slice(scores, [0, 0, 0], [B, 1, nv]), [1]), -1), nv);
    const hit = tf.mean(tf.cast(tf.greater(tf.sum(tf.mul(top, shares), -1), 0), 'float32')) as tf.Scalar;
    const place = placeHead
      ? (tf.mean(tf.neg(tf.sum(tf.mul(tf.logSoftmax(placeHead.apply(tf.reshape(tf.concat(q.map((t) => tf.slice(t, [0, 0, 0], [1, 1, C])), 0), [B, C]))), shares), -1))) as tf.Scalar)
      : tf.scalar(0);
    return { sft, pointer, label, hit, place };
  });
}

/** The pointer's cross-entropy and hit rate (see `losses`) on held-out examples, teacher-forced. */
function pointerScores(model: LensModel, tok: Tokenizer, ex: readonly TrainExample[], side: number, batch: number): { ce: number; hit: number } {
  let ce = 0;
  let hit = 0;
  for (let i = 0; i < ex.length; i += batch) {
    const part = ex.slice(i, i + batch);
    const b = encodeBatch(tok, part, { numVisual: model.vision.numTokens, side, withAnswer: true });
    const shares = cellShares(b.labels, Math.sqrt(model.vision.numTokens));
    const l = losses(model, tok, b, shares, null);
    ce += l.pointer.dataSync()[0]! * part.length;
    hit += l.hit.dataSync()[0]! * part.length;
    tf.dispose([l.sft, l.pointer, l.label, l.hit, l.place, shares]);
    disposeBatch(b);
  }
  return { ce: ce / ex.length, hit: hit / ex.length };
}

/**
 * `--label-pretrain N`: N steps of the label loss alone (vision encoder and token
 * embeddings, lr `--lr`, batch `--batch`) before the SFT: a vision encoder that already
 * tells the shapes apart, the role of a pretrained vision tower.
 */
function pretrainLabels(
  model: LensModel,
  tok: Tokenizer,
  train: readonly TrainExample[],
  instances: Map<string, Array<{ box: number[]; label: string }>>,
  heldOut: { examples: readonly TrainExample[]; instances: Map<string, Array<{ box: number[]; label: string }>> },
  steps: number,
  lr: number,
  rng: Rng,
): void {
  const own = a['label-head'] === 'own' ? new Linear(model.config.mllm.hiddenSize, model.config.mllm.vocabSize, new Rng(5), { std: 0.02 }) : null;
  const params: Array<[string, tf.Variable]> = own
    ? [...model.namedParameters().filter(([n]) => n.startsWith('vision.')), ...own.namedParameters().map(([n, v]) => [`head.${n}`, v] as [string, tf.Variable])]
    : model.namedParameters().filter(([n]) => n.startsWith('vision.') || n === 'mllm.embed_tokens.weight');
  for (const [, v] of params) v.trainable = true;
  const opt = new AdamW(new Map(params));
  const side = model.config.imageSize;
  const g = Math.sqrt(model.vision.numTokens);
  const withLabels = train.filter((e) => instances.has(e.sample.imagePath));
  let sum = 0;
  for (let step = 0; step < steps; step++) {
    const ex = batchIndices(withLabels.length, BATCH, step, rng).map((i) => withLabels[i]!);
    const { images, labels: masks } = imageTensors(ex, side);
    const labels = cellLabels(ex, instances, tok, side, g, model.config.mllm.vocabSize);
    sum += optimiserStep(opt, params, () => labelLoss(model, model.vision.apply(images), labels, own), lrAt(step, { kind: 'cosine', lr, warmupSteps: 50, totalSteps: steps, minRatio: 0.1 }));
    tf.dispose([images, masks, labels.target, labels.mask]);
    if ((step + 1) % 250 === 0) {
      console.log(`label pretraining step ${step + 1}: cell category cross-entropy ${(sum / 250).toFixed(3)}`);
      sum = 0;
    }
  }
  let held = 0;
  for (let i = 0; i < heldOut.examples.length; i += 25) {
    const ex = heldOut.examples.slice(i, i + 25);
    const { images, labels: masks } = imageTensors(ex, side);
    const labels = cellLabels(ex, heldOut.instances, tok, side, g, model.config.mllm.vocabSize);
    const l = tf.tidy(() => labelLoss(model, model.vision.apply(images), labels, own));
    held += l.dataSync()[0]! * ex.length;
    tf.dispose([images, masks, labels.target, labels.mask, l]);
  }
  console.log(`label pretraining: held-out cell category cross-entropy ${(held / heldOut.examples.length).toFixed(3)} (the images of ${heldOut.examples.length} refcoco val sentences)`);
  own?.dispose();
}

/**
 * The teacher-forced NLL per token of the box's four integers and of the answer's other
 * tokens, with each example's own picture and with the next one's: where in the answer the
 * picture is read. Returns [box own, box other, rest own, rest other].
 */
function splitDependence(model: LensModel, tok: Tokenizer, examples: readonly TrainExample[], batch: number): [number, number, number, number] {
  const side = model.config.imageSize;
  const zero = tok.tokenId('0');
  const sums = [0, 0, 0, 0];
  const counts = [0, 0];
  for (let s = 0; s + 1 < examples.length; s += batch) {
    const b = encodeBatch(tok, examples.slice(s, s + batch), { numVisual: model.vision.numTokens, side, withAnswer: true });
    const ids = b.tokens.arraySync();
    const ans = b.answerMask.arraySync();
    const [own, other] = tf.tidy(() => {
      const rolled = tf.concat([tf.slice(b.images, [1, 0, 0, 0], [-1, -1, -1, -1]), tf.slice(b.images, [0, 0, 0, 0], [1, -1, -1, -1])], 0) as tf.Tensor4D;
      const [B, T] = b.tokens.shape;
      const next = tf.oneHot(tf.slice(b.tokens, [0, 1], [B, T - 1]), model.config.mllm.vocabSize); // [B, T-1, vocab]: the token each position predicts
      return [b.images, rolled].map((images) => {
        const { logits, hidden } = model.mllm.forward({ tokens: b.tokens, attentionMask: b.attentionMask, visual: model.vision.apply(images) });
        hidden.dispose();
        const logp = tf.logSoftmax(tf.slice(logits, [0, 0, 0], [B, T - 1, -1]));
        return tf.neg(tf.sum(tf.mul(logp, next), -1)).arraySync() as number[][]; // [B, T-1]: each token's NLL
      });
    });
    ids.forEach((row, i) => {
      let coords = 0;
      for (let t = 1; t < row.length; t++) {
        if (!ans[i]![t]) continue;
        const box = row[t]! >= zero && row[t]! <= zero + tok.maxInt && coords++ < 4 ? 0 : 1;
        sums[2 * box]! += own![i]![t - 1]!;
        sums[2 * box + 1]! += other![i]![t - 1]!;
        counts[box]!++;
      }
    });
    disposeBatch(b);
  }
  return [sums[0]! / counts[0]!, sums[1]! / counts[0]!, sums[2]! / counts[1]!, sums[3]! / counts[1]!];
}

/** FNV-1a hash of an image's bytes (`scale` 255 for [0, 1] floats): the oracle's lookup key. */
function pictureKey(px: ArrayLike<number>, scale = 1): number {
  let h = 0x811c9dc5;
  for (let i = 0; i < px.length; i++) h = Math.imul(h ^ Math.round(px[i]! * scale), 0x01000193);
  return h >>> 0;
}

/** --oracle: adds S x the category words' embeddings of each picture's cells to the vision encoder's output. */
function addOracle(model: LensModel, pictures: readonly TrainExample[], instances: Map<string, Array<{ box: number[]; label: string }>>, tok: Tokenizer, scale: number): void {
  const side = model.config.imageSize;
  const V = model.vision.numTokens;
  const vocab = model.config.mllm.vocabSize;
  const cells = new Map<number, Float32Array>();
  for (const e of pictures) {
    const key = pictureKey(e.rgb);
    if (cells.has(key) || !instances.has(e.sample.imagePath)) continue;
    const l = cellLabels([e], instances, tok, side, Math.sqrt(V), vocab);
    cells.set(key, l.target.dataSync() as Float32Array);
    tf.dispose([l.target, l.mask]);
  }
  console.log(`oracle: the cells of ${cells.size} pictures name their shapes`);
  const plain = model.vision.apply.bind(model.vision);
  model.vision.apply = (images: tf.Tensor4D) => {
    const B = images.shape[0];
    const px = images.dataSync();
    const n = side * side * 3;
    const t = new Float32Array(B * V * vocab);
    for (let b = 0; b < B; b++) {
      const row = cells.get(pictureKey(px.subarray(b * n, (b + 1) * n), 255));
      if (row) t.set(row, b * V * vocab);
    }
    return tf.tidy(() => tf.add(plain(images), tf.mul(tf.reshape(tf.matMul(tf.tensor2d(t, [B * V, vocab]), model.mllm.embed.weight), [B, V, -1]), scale)) as tf.Tensor3D);
  };
}

/** `--vision JSON`: a fresh model whose vision encoder has these fields changed, with the loaded (stage 0a) SAM copied in. */
function withVision(loaded: LensModel, vision: Partial<VisionEncoderConfig>): LensModel {
  const model = buildLens({ ...loaded.config, vision: { ...loaded.config.vision, ...vision } });
  const sam = new Map(loaded.namedParameters().filter(([n]) => n.startsWith('sam.')));
  for (const [n, v] of model.namedParameters()) if (sam.has(n)) v.assign(sam.get(n)!);
  loaded.dispose();
  return model;
}

async function main(): Promise<void> {
  await initBackend({ quiet: true });
  const loaded = loadLens(join(a.from!, 'model.safetensors')).model;
  const model = a.vision ? withVision(loaded, JSON.parse(a.vision) as Partial<VisionEncoderConfig>) : loaded;
  const tok = Tokenizer.load(a.tokenizer!);
  const side = model.config.imageSize;
  const g = Math.sqrt(model.vision.numTokens);
  const plainVision = model.vision.apply.bind(model.vision); // the encoder's own output, before --pos2d / --oracle
  if (POS2D > 0) addPos2d(model, POS2D);
  if (num('number-pos') > 0) addNumberCode(model, tok, num('number-pos'), 'pos2d');
  if (num('pointer-layer') > 0) tapLayer(model, num('pointer-layer'));
  const all: TrainExample[] = [];
  for (const f of TRAIN_FAMILIES) all.push(...(await loadExamples(a.data!, f, 'train', { imageSize: side, quiet: true })));
  const capped = capReasoning(all, 0.5, new Rng(Number(a.seed)).fork('reason-cap')); // stage 0b's reasoning cap
  const train = a['no-place'] ? capped.map(withoutPlace) : capped;
  const described = DESCRIBE > 0 ? await describeExamples(a.data!, all, side) : [];
  if (DESCRIBE > 0) console.log(`describe task: ${described.length} images, e.g. ${described[0]?.answer.slice(0, 120)}`);
  const val = (await loadExamples(a.data!, 'refcoco', 'val', { imageSize: side, allSentences: false, limit: num('eval'), quiet: true })).map((e) => (a['no-place'] ? withoutPlace(e) : e));
  const instances = LABEL > 0 || LABEL_PRETRAIN > 0 || ORACLE > 0 ? await imageInstances(a.data!, side) : new Map<string, Array<{ box: number[]; label: string }>>();
  if (ORACLE > 0) addOracle(model, [...all, ...val], new Map([...instances, ...(await imageInstances(a.data!, side, 'val'))]), tok, ORACLE);
  const params = model.stageSplit('stage0b').trainable;
  model.setStage('stage0b');
  if (num('place-probe') > 0) {
    placeHead = new Linear(model.config.mllm.hiddenSize, model.vision.numTokens, new Rng(7), { std: 0.02 });
    params.push(...placeHead.namedParameters().map(([n, v]) => [`place.${n}`, v] as [string, tf.Variable]));
  }
  const opt = new AdamW(new Map(params));
  const visionScale = a['vision-lr'] === undefined ? 1 : Number(a['vision-lr']) / Number(a.lr);
  const rng = new Rng(Number(a.seed));
  const rows: Row[] = [];
  const out = a.out!;
  mkdirSync(out, { recursive: true });
  const t0 = performance.now();
  let sum = { sft: 0, pointer: 0, label: 0, place: 0, n: 0 };
  const evaluate = (step: number) => {
    const r = evaluateAnswers(model, tok, val, { batch: 25, maxNewTokens: 64 });
    const dep = imageDependence(model, tok, val, { batch: 25 });
    const [boxOwn, boxOther, restOwn, restOther] = splitDependence(model, tok, val, 25);
    const { images, labels } = imageTensors(val, side);
    const spread = visualSpread(plainVision, images);
    const ptr = pointerScores(model, tok, val, side, 25);
    tf.dispose([images, labels]);
    const row: Row = {
      step,
      seconds: (performance.now() - t0) / 1000,
      sftLoss: sum.n ? sum.sft / sum.n : NaN,
      pointerLoss: sum.n ? sum.pointer / sum.n : NaN,
      labelLoss: sum.n ? sum.label / sum.n : NaN,
      pointerHeldOut: ptr.ce,
      pointerHit: ptr.hit,
      placeLoss: sum.n ? sum.place / sum.n : NaN,
      formatRate: r.formatRate,
      boxAcc50: r.boxAcc50,
      boxIou: r.boxIou,
      answerNll: dep.own,
      answerNllOtherImage: dep.shuffled,
      boxNll: boxOwn,
      boxNllOtherImage: boxOther,
      restNll: restOwn,
      restNllOtherImage: restOther,
      visualMeanNorm: spread.meanNorm,
      visualDeviationRms: spread.deviationRms,
    };
    sum = { sft: 0, pointer: 0, label: 0, place: 0, n: 0 };
    rows.push(row);
    writeArrow(join(out, 'eval.arrow'), rows);
    console.log(Object.entries(row).map(([k, v]) => `${k} ${typeof v === 'number' ? +v.toFixed(4) : v}`).join(', '));
  };
  if (LABEL_PRETRAIN > 0) {
    const heldOut = { examples: val, instances: await imageInstances(a.data!, side, 'val') };
    pretrainLabels(model, tok, train, instances, heldOut, LABEL_PRETRAIN, Number(a.lr), rng.fork('label-pretrain'));
  }
  if (STEPS === 0) evaluate(0); // --steps 0: score the model of --from as it is (e.g. a stage-0b run)
  const fresh = FRESH ? freshStream(side, Number(a.seed)) : null;
  for (let step = 0; step < STEPS; step++) {
    const nDescribe = Math.round(DESCRIBE * BATCH);
    const ex = fresh ? fresh(BATCH - nDescribe) : batchIndices(train.length, BATCH, step, rng.fork('data')).slice(0, BATCH - nDescribe).map((i) => train[i]!);
    const nBox = Math.round(MIX_BOX * ex.length);
    ex.splice(0, nBox, ...ex.slice(0, nBox).map((e) => ({ ...e, sentence: `bbox_2d ${e.sentence}`, answer: `[${e.box.join(', ')}]` })));
    if (nDescribe > 0) ex.push(...batchIndices(described.length, nDescribe, step, rng.fork('describe')).map((i) => described[i]!));
    const b = encodeBatch(tok, ex, { numVisual: model.vision.numTokens, side, withAnswer: true });
    const shares = cellShares(b.labels, g);
    const labels = LABEL > 0 ? cellLabels(ex, instances, tok, side, g, model.config.mllm.vocabSize) : null;
    const lr = lrAt(step, { kind: 'cosine', lr: Number(a.lr), warmupSteps: 50, totalSteps: STEPS, minRatio: 0.1 });
    optimiserStep(opt, params, () => {
      const l = losses(model, tok, b, shares, labels);
      const v = (t: tf.Scalar) => t.dataSync()[0]!;
      sum = { sft: sum.sft + v(l.sft), pointer: sum.pointer + v(l.pointer), label: sum.label + v(l.label), place: sum.place + v(l.place), n: sum.n + 1 };
      l.hit.dispose();
      return tf.addN([l.sft, tf.mul(l.pointer, POINTER), tf.mul(l.label, LABEL), tf.mul(l.place, num('place-probe'))]) as tf.Scalar;
    }, lr, (n) => (n.startsWith('vision.') ? visionScale : 1));
    tf.dispose([shares, ...(labels ? [labels.target, labels.mask] : [])]);
    disposeBatch(b);
    const next = step + 1;
    if (next % num('eval-every') === 0 || next === STEPS) {
      evaluate(next);
      saveStageModel(out, model, tok, { stage: 'stage0b-experiment' });
    }
  }
}

main().catch((e: unknown) => {
  console.error(e instanceof Error ? e.stack : e);
  process.exit(1);
});
