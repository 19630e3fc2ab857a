/**
 * Experiment for issue #5 (docs/stage0b-grounding.md): does the stage-0b MLLM learn to
 * ground, i.e. to read the target's position from the image, and what helps it?
 *
 * Trains the vision encoder + MLLM of a stage-0a model on the LENS answers (stage 0b's
 * SFT, same data, batches and schedule shape) with up to four changes, each off by default:
 * - `--pointer W`: an auxiliary loss, weight W. The last-layer state of the answer's
 *   `[` before the box (the position that predicts x1) is dotted with the last-layer states
 *   of the V visual tokens (scaled by 1 / sqrt(C)); the softmax over V is trained by
 *   cross-entropy towards the share of the target mask inside each token's image cell.
 *   Parameter-free: it shapes the MLLM's own states, and so gives the vision encoder a
 *   direct gradient (the plain SFT gives it almost none: the answers are learnt from text).
 * - `--pos2d S`: a fixed 2D sin-cos code of each visual token's (row, col), times S, added
 *   to the vision encoder's output (the MLLM's learned 1D positions cannot tell rows from
 *   columns; Qwen2.5-VL's mRoPE gives visual tokens their (h, w) positions).
 * - `--coord-sigma s`: the 4 box coordinates are scored against a Gaussian over the integer
 *   tokens (std s pixels) instead of one-hot: a neighbour of the right value costs less.
 * - `--describe F`: a fraction F of every batch is a "describe" example instead: the
 *   prompt "list every object." and, as the answer, every instance of the picture with its
 *   box and category (the RefCOCO families' COCO instances), tokens only the picture can
 *   predict (the role of a real MLLM's grounding pretraining data).
 *
 * Every `--eval-every` steps: greedy answers on `--eval` refcoco val sentences (format
 * rate, box Acc@0.5, mean box IoU) and the answers' NLL with their own vs another
 * sample's image (stage0.ts imageDependence). Rows go to OUT/eval.arrow, the model to
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
import { loadLens } from '../src/model/presets';
import { IMAGE_ID, Tokenizer } from '../src/model/tokenizer';
import { Rng } from '../src/random';
import { writeArrow, type Row } from '../src/util/arrow';
import { batchIndices, boxToInput, disposeBatch, encodeBatch, loadExamples, type Batch, type TrainExample } from '../src/train/data';
import { loadSplit } from '../src/data/index';
import { AdamW, clipByGlobalNorm } from '../src/train/optim';
import { lrAt } from '../src/train/schedule';
import { capReasoning, evaluateAnswers, imageDependence } from '../src/train/stage0';
import { saveStageModel, TRAIN_FAMILIES } from '../src/train/stage_io';

const { values: a } = parseArgs({
  options: {
    from: { type: 'string', default: 'results/main/pretrain/0a' },
    tokenizer: { type: 'string', default: 'results/main/pretrain/0b/tokenizer.json' },
    data: { type: 'string', default: 'data/bench' },
    out: { type: 'string', default: 'results/experiments/stage0b' },
    steps: { type: 'string', default: '600' },
    batch: { type: 'string', default: '16' },
    lr: { type: 'string', default: '1e-3' },
    pointer: { type: 'string', default: '0' },
    describe: { type: 'string', default: '0' },
    pos2d: { type: 'string', default: '0' },
    'coord-sigma': { type: 'string', default: '0' },
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
const POS2D = num('pos2d');
const SIGMA = num('coord-sigma');
const DESCRIBE = num('describe');
if (DESCRIBE > 1) throw new Error(`--describe: expected a fraction in [0, 1], got ${DESCRIBE}`);
const DESCRIBE_PROMPT = 'list every object.';

/**
 * One "describe" example per RefCOCO-family training image: the prompt asks for every
 * object, the answer lists each instance's box and category in reading order, the JSON
 * of the LENS answer without the reasoning. Only the picture can tell the answer.
 */
async function describeExamples(root: string, refs: readonly TrainExample[], side: number): Promise<TrainExample[]> {
  const byImage = new Map<string, TrainExample>();
  for (const e of refs) if (e.family !== 'reasonseg' && !byImage.has(e.sample.imagePath)) byImage.set(e.sample.imagePath, e);
  const out: TrainExample[] = [];
  const done = new Set<string>();
  for (const family of ['refcoco', 'refcoco+', 'refcocog'] as const) {
    const ds = await loadSplit(root, family, 'train');
    const coco = JSON.parse(readFileSync(join(root, 'refer_seg', family, 'instances.json'), 'utf8')) as { categories: Array<{ id: number; name: string }> };
    const names = new Map(coco.categories.map((c) => [c.id, c.name] as const));
    for (const s of ds.samples) {
      const e = byImage.get(s.imagePath);
      if (!e || done.has(s.imagePath)) continue;
      done.add(s.imagePath);
      const items = ds.instances(s.imageId).map((inst) => ({ box: boxToInput(inst.bbox, s.height, s.width, side), label: names.get(inst.categoryId) ?? String(inst.categoryId) }));
      items.sort((p, q) => p.box[1] - q.box[1] || p.box[0] - q.box[0]);
      const answer = `[${items.map((it) => `{"bbox_2d": [${it.box.join(', ')}], "label": ${JSON.stringify(it.label)}}`).join(', ')}]`;
      out.push({ ...e, id: `describe/${s.imageId}`, sentence: DESCRIBE_PROMPT, answer, target: new Uint8Array(side * side) });
    }
  }
  return out;
}

/** [1, g*g, C]: per visual token (row r, col c) sin / cos of c and of r at C/4 frequencies each. */
function sinCos2d(g: number, C: number, scale: number): tf.Tensor3D {
  const q = C / 4;
  const code = new Float32Array(g * g * C);
  for (let r = 0; r < g; r++) {
    for (let c = 0; c < g; c++) {
      const o = (r * g + c) * C;
      for (let k = 0; k < q; k++) {
        const f = Math.PI * Math.pow(100, -k / q);
        code[o + k] = Math.sin(f * c);
        code[o + q + k] = Math.cos(f * c);
        code[o + 2 * q + k] = Math.sin(f * r);
        code[o + 3 * q + k] = Math.cos(f * r);
      }
    }
  }
  return tf.mul(tf.tensor3d(code, [1, g * g, C]), scale) as tf.Tensor3D;
}

/** [B, g*g] share of each example's target mask inside each visual token's cell. */
function cellShares(ex: readonly TrainExample[], side: number, g: number): tf.Tensor2D {
  const out = new Float32Array(ex.length * g * g);
  const cell = side / g;
  ex.forEach((e, k) => {
    let n = 0;
    for (let q = 0; q < side * side; q++) {
      if (e.target[q] !== 1) continue;
      out[k * g * g + Math.floor(Math.floor(q / side) / cell) * g + Math.floor((q % side) / cell)]!++;
      n++;
    }
    for (let c = 0; c < g * g; c++) out[k * g * g + c]! /= Math.max(1, n);
  });
  return tf.tensor2d(out, [ex.length, g * g]);
}

/** The answer NLL (coordinates Gaussian-smoothed when SIGMA > 0) and the pointer loss. */
function losses(model: LensModel, tok: Tokenizer, b: Batch, shares: tf.Tensor2D): { sft: tf.Scalar; pointer: tf.Scalar } {
  return tf.tidy(() => {
    const visual = model.vision.apply(b.images);
    const { logits, hidden } = model.mllm.forward({ tokens: b.tokens, attentionMask: b.attentionMask, visual });
    const [B, T, V] = logits.shape;
    const lg = tf.slice(logits, [0, 0, 0], [B, T - 1, V]) as tf.Tensor3D; // predicts tokens 1..T-1
    const ids = b.tokens.arraySync() as number[][];
    const bbox = tok.tokenId('bbox_2d');
    const open = tok.tokenId('[');
    let sft: tf.Scalar;
    if (SIGMA === 0) {
      sft = tokenCrossEntropy(lg, tf.slice(b.tokens, [0, 1], [B, T - 1]) as tf.Tensor2D, tf.slice(b.answerMask, [0, 1], [B, T - 1]) as tf.Tensor2D);
    } else {
      const ans = b.answerMask.arraySync() as number[][];
      const zero = tok.tokenId('0');
      const target = new Float32Array(B * (T - 1) * V);
      const mask = new Float32Array(B * (T - 1));
      ids.forEach((row, i) => {
        const start = row.indexOf(bbox);
        let coords = 0;
        for (let t = 1; t < T; t++) {
          if (!ans[i]![t]) continue;
          mask[i * (T - 1) + t - 1] = 1;
          const id = row[t]!;
          const base = (i * (T - 1) + t - 1) * V;
          const value = id - zero;
          if (start >= 0 && t > start && coords < 4 && value >= 0 && value <= tok.maxInt) {
            coords++;
            let z = 0;
            for (let n = 0; n <= tok.maxInt; n++) z += target[base + zero + n] = Math.exp(-((n - value) ** 2) / (2 * SIGMA * SIGMA));
            for (let n = 0; n <= tok.maxInt; n++) target[base + zero + n]! /= z;
          } else {
            target[base + id] = 1;
          }
        }
      });
      const m = tf.tensor2d(mask, [B, T - 1]);
      const nll = tf.neg(tf.sum(tf.mul(tf.logSoftmax(lg), tf.tensor3d(target, [B, T - 1, V])), -1)); // [B, T-1]
      sft = tf.div(tf.sum(tf.mul(nll, m)), tf.sum(m)) as tf.Scalar;
    }
    const nv = model.vision.numTokens;
    const C = hidden.shape[2];
    const q: tf.Tensor[] = [];
    const k: tf.Tensor[] = [];
    ids.forEach((row, i) => {
      q.push(tf.slice(hidden, [i, row.indexOf(open, row.indexOf(bbox)), 0], [1, 1, C])); // the state that predicts x1
      k.push(tf.slice(hidden, [i, row.indexOf(IMAGE_ID), 0], [1, nv, C])); // the visual tokens' states
    });
    const scores = tf.reshape(tf.div(tf.matMul(tf.concat(q, 0), tf.concat(k, 0), false, true), Math.sqrt(C)), [B, nv]);
    const pointer = tf.mean(tf.neg(tf.sum(tf.mul(tf.logSoftmax(scores), shares), -1))) as tf.Scalar;
    return { sft, pointer };
  });
}

async function main(): Promise<void> {
  await initBackend({ quiet: true });
  const { model } = loadLens(join(a.from!, 'model.safetensors'));
  const tok = Tokenizer.load(a.tokenizer!);
  const side = model.config.imageSize;
  const g = Math.sqrt(model.vision.numTokens);
  if (POS2D > 0) {
    const code = sinCos2d(g, model.config.mllm.hiddenSize, POS2D);
    const plain = model.vision.apply.bind(model.vision);
    model.vision.apply = (images: tf.Tensor4D) => tf.tidy(() => tf.add(plain(images), code) as tf.Tensor3D);
  }
  const all: TrainExample[] = [];
  for (const f of TRAIN_FAMILIES) all.push(...(await loadExamples(a.data!, f, 'train', { imageSize: side, quiet: true })));
  const train = capReasoning(all, 0.5, new Rng(Number(a.seed)).fork('reason-cap')); // stage 0b's reasoning cap
  const described = DESCRIBE > 0 ? await describeExamples(a.data!, all, side) : [];
  if (DESCRIBE > 0) console.log(`describe task: ${described.length} images, e.g. ${described[0]?.answer.slice(0, 120)}`);
  const val = await loadExamples(a.data!, 'refcoco', 'val', { imageSize: side, allSentences: false, limit: num('eval'), quiet: true });
  const params = model.stageSplit('stage0b').trainable;
  model.setStage('stage0b');
  const opt = new AdamW(new Map(params));
  const nameOf = new Map(params.map(([n, v]) => [v.name, n] as const));
  const rng = new Rng(Number(a.seed));
  const rows: Row[] = [];
  const out = a.out!;
  mkdirSync(out, { recursive: true });
  const t0 = performance.now();
  let sum = { sft: 0, pointer: 0, n: 0 };
  const evaluate = (step: number) => {
    const r = evaluateAnswers(model, tok, val, { batch: 25, maxNewTokens: 64 });
    const dep = imageDependence(model, tok, val, { batch: 25 });
    const row: Row = {
      step,
      seconds: (performance.now() - t0) / 1000,
      sftLoss: sum.n ? sum.sft / sum.n : NaN,
      pointerLoss: sum.n ? sum.pointer / sum.n : NaN,
      formatRate: r.formatRate,
      boxAcc50: r.boxAcc50,
      boxIou: r.boxIou,
      answerNll: dep.own,
      answerNllOtherImage: dep.shuffled,
    };
    sum = { sft: 0, pointer: 0, n: 0 };
    rows.push(row);
    writeArrow(join(out, 'eval.arrow'), rows);
    console.log(Object.entries(row).map(([k, v]) => `${k} ${typeof v === 'number' ? +v.toFixed(4) : v}`).join(', '));
  };
  if (STEPS === 0) evaluate(0); // --steps 0: score the model of --from as it is (e.g. a stage-0b run)
  for (let step = 0; step < STEPS; step++) {
    const nDescribe = Math.round(DESCRIBE * BATCH);
    const ex = batchIndices(train.length, BATCH, step, rng.fork('data')).slice(0, BATCH - nDescribe).map((i) => train[i]!);
    if (nDescribe > 0) ex.push(...batchIndices(described.length, nDescribe, step, rng.fork('describe')).map((i) => described[i]!));
    const b = encodeBatch(tok, ex, { numVisual: model.vision.numTokens, side, withAnswer: true });
    const shares = cellShares(ex, side, g);
    const lr = lrAt(step, { kind: 'cosine', lr: Number(a.lr), warmupSteps: 50, totalSteps: STEPS, minRatio: 0.1 });
    const { value, grads } = tf.variableGrads(() => {
      const l = losses(model, tok, b, shares);
      sum = { sft: sum.sft + l.sft.dataSync()[0]!, pointer: sum.pointer + l.pointer.dataSync()[0]!, n: sum.n + 1 };
      return tf.add(l.sft, tf.mul(l.pointer, POINTER)) as tf.Scalar;
    }, params.map(([, v]) => v));
    const named: Record<string, tf.Tensor> = {};
    for (const [vn, gr] of Object.entries(grads)) named[nameOf.get(vn)!] = gr;
    const clipped = clipByGlobalNorm(named, 1).grads;
    opt.apply(clipped, lr);
    tf.dispose([value, shares, ...Object.values(grads), ...Object.values(clipped)]);
    disposeBatch(b);
    const next = step + 1;
    if (next % num('eval-every') === 0 || next === STEPS) {
      evaluate(next);
      saveStageModel(out, model, tok, { stage: 'stage0b-experiment' });
    }
  }
}

main().catch((e: unknown) => {
  console.error(e instanceof Error ? e.message : e);
  process.exit(1);
});
