/**
 * Experiment for issue #5 (docs/stage0b-grounding.md): two tasks on FRESH generated scenes,
 * a pool that never repeats a picture (the benchmark's 650 training pictures are memorised):
 * images `--pool-from`, `--pool-from` + 1, ... of the generator's RefCOCO-like train stream
 * (`generateReferImage`; index 650 and up are pictures the written benchmark does not hold,
 * and the val / test streams are forked apart), held-out scenes from index 1,000,000.
 *
 * - `--task cells`: the vision encoder alone (a fresh one of `--preset`'s size, `--vision`
 *   fields changed), through a linear head of its own, predicts each visual token's category
 *   shares (the visible-mask pixels of the 13 categories inside its image cell). Prints the
 *   training and held-out cross-entropy beside the prior (always predicting the mean
 *   shares) and the floor (the targets' own entropy: cells holding two shapes).
 *   `--colour W` adds, through a second head, the 8 colours' shares (weight W); `--geometry W`,
 *   through a third, the box of the object that holds most of each cell (sigmoid, mean L1 in
 *   image-side units, weight W; printed in pixels); `--save DIR`
 *   writes the model (this vision encoder; MLLM and SAM fresh) to DIR/model.safetensors, a
 *   start for `stage0b_grounding.ts --from DIR`.
 * - `--task colour | place | colour-place`: the vision encoder + MLLM of `--from` (a stage-0b
 *   model, which knows the tokenizer's words) learn a short answer about the one object of a
 *   category the prompt names: "the yellow diamond at the centre". Prints the held-out
 *   answer NLL with each scene's own picture and with another's (the image dependence).
 *   `--oracle S` adds to each visual token S x the embedding of the category words of the
 *   objects in its cell (visible-pixel share): visual tokens that name their shapes exactly,
 *   so what is left to learn is the MLLM's reading. `--pos2d S` adds the visual tokens' 2D
 *   position code (as in stage0b_grounding.ts); `--tokenizer FILE` reads the words from FILE
 *   instead of `--from`'s (to start from a stage-0a model: `--tokenizer results/main/pretrain/0b/tokenizer.json`).
 * - `--task box`: the same, with the object's box as the whole answer ("diamond" ->
 *   "[18, 34, 31, 46]"), and the teacher-forced box (each coordinate the most likely integer)
 *   scored against the true one: Acc@0.5 and mean IoU on the held-out scenes.
 *   `--task colour-box` names the one object of a colour instead ("pink" -> its box);
 *   `--task refer-box` gives one of the picture's generated RefCOCO-like expressions.
 *   `--coord-sigma s` scores the box's integers against a Gaussian (std s) over the
 *   integer tokens; `--number-code S` adds to the integer tokens' embeddings an ordered code
 *   (`--code-kind fourier | thermo`, common.ts addNumberCode); `--objects N` draws every
 *   picture with N objects, `--curriculum N` the first N steps' with two; `--save DIR`
 *   writes the trained model (without the --pos2d code) for `stage0b_grounding.ts --from DIR`.
 *
 *   npx tsx experiments/pool_tasks.ts --task cells --steps 2000
 *   npx tsx experiments/pool_tasks.ts --task colour-place --steps 600 --oracle 1
 *   npx tsx experiments/pool_tasks.ts --task place --from results/main/pretrain/0a --tokenizer results/main/pretrain/0b/tokenizer.json --oracle 20 --pos2d 0.5 --steps 600
 *   npx tsx experiments/pool_tasks.ts --task cells --colour 1 --save results/experiments/vision-cells
 *   npx tsx experiments/pool_tasks.ts --task box --from results/experiments/vision-cells --tokenizer results/main/pretrain/0b/tokenizer.json --pos2d 0.5 --steps 600
 *   npx tsx experiments/pool_tasks.ts --task colour-box --from results/experiments/vision-geom --tokenizer results/main/pretrain/0b/tokenizer.json --pos2d 0.5 --steps 3000 --curriculum 500
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import * as tf from '@tensorflow/tfjs-core';
import { initBackend } from '../src/backend';
import { CATEGORIES, COLOURS, generateReferImage, regionName, resolveGenerateConfig, type SceneObject } from '../src/data/generate/index';
import { Linear } from '../src/model/nn';
import { buildLens, loadLens, PRESETS, saveLens, type PresetName } from '../src/model/presets';
import { Tokenizer } from '../src/model/tokenizer';
import { Rng } from '../src/random';
import { disposeBatch, encodeBatch, type TrainExample } from '../src/train/data';
import { AdamW } from '../src/train/optim';
import { lrAt } from '../src/train/schedule';
import { boxIouXyxy, sftLoss } from '../src/train/stage0';
import type { Box } from '../src/eval/metrics';
import { addNumberCode, addPos2d, optimiserStep, smoothedAnswerNll } from './common';

const { values: a } = parseArgs({
  options: {
    task: { type: 'string', default: 'cells' },
    preset: { type: 'string', default: 'quick' },
    vision: { type: 'string', default: '{}' },
    from: { type: 'string', default: 'results/main/pretrain/0b' },
    steps: { type: 'string', default: '2000' },
    batch: { type: 'string', default: '32' },
    lr: { type: 'string', default: '1e-3' },
    'vision-lr': { type: 'string', default: '3e-5' },
    oracle: { type: 'string', default: '0' },
    pos2d: { type: 'string', default: '0' },
    tokenizer: { type: 'string' },
    colour: { type: 'string', default: '0' },
    geometry: { type: 'string', default: '0' },
    save: { type: 'string' },
    dump: { type: 'string' },
    'pool-from': { type: 'string', default: '20000' },
    'coord-sigma': { type: 'string', default: '0' },
    'number-code': { type: 'string', default: '0' },
    'code-kind': { type: 'string', default: 'fourier' },
    objects: { type: 'string' },
    curriculum: { type: 'string', default: '0' },
    seed: { type: 'string', default: '0' },
  },
});
const num = (k: 'steps' | 'batch' | 'lr' | 'vision-lr' | 'oracle' | 'pos2d' | 'colour' | 'geometry' | 'pool-from' | 'seed' | 'coord-sigma' | 'number-code' | 'curriculum'): number => {
  const v = Number(a[k]);
  if (!Number.isFinite(v) || v < 0) throw new Error(`--${k}: expected a number >= 0, got '${a[k]}'`);
  return v;
};
const TASKS = ['cells', 'colour', 'place', 'colour-place', 'box', 'colour-box', 'refer-box'];
const BOX = a.task === 'box' || a.task === 'colour-box' || a.task === 'refer-box';
const KEY = (o: SceneObject) => (a.task === 'colour-box' ? o.colour : o.category); // what the prompt names
if (!TASKS.includes(a.task!)) throw new Error(`--task: expected one of ${TASKS.join(', ')}, got '${a.task}'`);
const [STEPS, BATCH, LR, VISION_LR, ORACLE, POOL_FROM] = (['steps', 'batch', 'lr', 'vision-lr', 'oracle', 'pool-from'] as const).map(num) as [number, number, number, number, number, number];
const HELD_FROM = 1_000_000;
const HELD = 256;
const generator = resolveGenerateConfig({ scale: 'quick', seed: num('seed'), ...(a.objects ? { minObjects: Number(a.objects), maxObjects: Number(a.objects) } : {}) });
const side = generator.imageSize;
const easy = resolveGenerateConfig({ scale: 'quick', seed: num('seed'), minObjects: 2, maxObjects: 2 }); // --curriculum N: the first N steps' scenes

/** [V, K] visible-pixel share of each category index (`index(o)`) inside each of the g x g cells; `raw`: shares of the cell's area. */
function cellShares(objects: readonly SceneObject[], g: number, K: number, index: (o: SceneObject) => number, raw: boolean): Float32Array {
  const cell = side / g;
  const t = new Float32Array(g * g * K);
  for (const o of objects) {
    const k = index(o);
    for (let q = 0; q < side * side; q++) if (o.visible[q]) t[(Math.floor(Math.floor(q / side) / cell) * g + Math.floor((q % side) / cell)) * K + k]! += 1;
  }
  for (let v = 0; v < g * g; v++) {
    const row = t.subarray(v * K, (v + 1) * K);
    const z = raw ? cell * cell : row.reduce((s, x) => s + x, 0);
    if (z > 0) row.forEach((x, i) => (row[i] = x / z));
  }
  return t;
}

const pixels = (rgbs: readonly Uint8Array[]): tf.Tensor4D => {
  const px = new Float32Array(rgbs.length * side * side * 3);
  rgbs.forEach((rgb, b) => rgb.forEach((x, i) => (px[b * rgb.length + i] = x / 255)));
  return tf.tensor4d(px, [rgbs.length, side, side, 3]);
};

const schedule = (s: number) => lrAt(s, { kind: 'cosine', lr: LR, warmupSteps: Math.min(100, Math.floor(STEPS / 10)), totalSteps: STEPS, minRatio: 0.1 });

/**
 * `--task cells --dump PREFIX`: writes the task's pictures and targets for a peer framework
 * instead of training (experiments/cells_torch.py): the `--steps` x `--batch` training
 * pictures from `--pool-from` to PREFIX_train.{px,t}, the held-out ones to PREFIX_held.{px,t};
 * .px uint8 [N, side, side, 3], .t float32 [N, cells, 13].
 */
function dumpCells<B extends { images: tf.Tensor4D; target: tf.Tensor2D }>(batch: (from: number, n: number) => B, dispose: (b: B) => void): void {
  const write = (path: string, from: number, n: number) => {
    const px: Buffer[] = [];
    const t: Buffer[] = [];
    for (let i = 0; i < n; i += 512) {
      const b = batch(from + i, Math.min(512, n - i));
      px.push(Buffer.from(Uint8Array.from(b.images.dataSync(), (x) => Math.round(x * 255))));
      t.push(Buffer.from((b.target.dataSync() as Float32Array).buffer));
      dispose(b);
    }
    writeFileSync(`${path}.px`, Buffer.concat(px));
    writeFileSync(`${path}.t`, Buffer.concat(t));
  };
  write(`${a.dump}_train`, POOL_FROM, STEPS * BATCH);
  write(`${a.dump}_held`, HELD_FROM, HELD);
  console.log(`wrote ${STEPS * BATCH} training and ${HELD} held-out pictures to ${a.dump}_{train,held}.{px,t}`);
}

/** --task cells: can the vision encoder learn the 13 shapes (and, with --colour W, the 8 colours) when no picture repeats? */
function cells(): void {
  const preset = a.preset as PresetName;
  if (!PRESETS[preset]) throw new Error(`--preset: expected one of ${Object.keys(PRESETS).join(', ')}, got '${a.preset}'`);
  const model = buildLens({ preset, vision: { ...PRESETS[preset].vision, ...(JSON.parse(a.vision!) as object) } }, { seed: num('seed') });
  const vc = model.vision.config;
  const g = side / vc.patchSize / vc.mergeSize;
  const K = CATEGORIES.length;
  const KC = COLOURS.length;
  const COLOUR = num('colour');
  const GEOMETRY = num('geometry');
  const catIndex = new Map(CATEGORIES.map((c, i) => [c.name, i]));
  const colIndex = new Map(COLOURS.map((c, i) => [c.name, i]));
  const batch = (from: number, n: number) => {
    const imgs = Array.from({ length: n }, (_, i) => generateReferImage(generator, 'train', from + i));
    const t = new Float32Array(n * g * g * K);
    const tc = new Float32Array(n * g * g * KC); // colour and box targets: filled only for their heads
    const tb = new Float32Array(n * g * g * 4);
    imgs.forEach((im, b) => {
      const objs = im.scene.objects;
      t.set(cellShares(objs, g, K, (o) => catIndex.get(o.category)!, false), b * g * g * K);
      if (COLOUR > 0) tc.set(cellShares(objs, g, KC, (o) => colIndex.get(o.colour)!, false), b * g * g * KC);
      if (GEOMETRY === 0) return;
      const own = cellShares(objs, g, objs.length, (o) => objs.indexOf(o), false); // each object's share of each cell
      for (let v = 0; v < g * g; v++) {
        const row = Array.from(own.subarray(v * objs.length, (v + 1) * objs.length));
        const best = row.indexOf(Math.max(...row));
        if (row[best]! <= 0) continue;
        const [x, y, w, h] = objs[best]!.bbox;
        tb.set([x / side, y / side, (x + w) / side, (y + h) / side], (b * g * g + v) * 4);
      }
    });
    const mask = Array.from({ length: n * g * g }, (_, r) => (t.subarray(r * K, (r + 1) * K).some((x) => x > 0) ? 1 : 0));
    return { images: pixels(imgs.map((im) => im.rgb)), target: tf.tensor2d(t, [n * g * g, K]), colour: tf.tensor2d(tc, [n * g * g, KC]), boxes: tf.tensor2d(tb, [n * g * g, 4]), mask: tf.tensor1d(mask) };
  };
  type CellBatch = ReturnType<typeof batch>;
  const dispose = (b: CellBatch) => tf.dispose([b.images, b.target, b.colour, b.boxes, b.mask]);
  const head = new Linear(model.config.mllm.hiddenSize, K, new Rng(3), { std: 0.02 });
  const colourHead = COLOUR > 0 ? new Linear(model.config.mllm.hiddenSize, KC, new Rng(4), { std: 0.02 }) : null;
  const boxHead = GEOMETRY > 0 ? new Linear(model.config.mllm.hiddenSize, 4, new Rng(5), { std: 0.02 }) : null;
  const params: Array<[string, tf.Variable]> = [
    ...model.namedParameters().filter(([n]) => n.startsWith('vision.')),
    ...head.namedParameters().map(([n, v]) => [`head.${n}`, v] as [string, tf.Variable]),
    ...(colourHead?.namedParameters() ?? []).map(([n, v]) => [`colour.${n}`, v] as [string, tf.Variable]),
    ...(boxHead?.namedParameters() ?? []).map(([n, v]) => [`box.${n}`, v] as [string, tf.Variable]),
  ];
  for (const [, v] of params) v.trainable = true;
  const masked = (ce: tf.Tensor1D, mask: tf.Tensor1D) => tf.div(tf.sum(tf.mul(ce, mask)), tf.sum(mask)) as tf.Scalar;
  const ce = (logits: tf.Tensor2D, target: tf.Tensor2D, mask: tf.Tensor1D) => masked(tf.neg(tf.sum(tf.mul(tf.logSoftmax(logits), target), -1)) as tf.Tensor1D, mask);
  /** The category and (with --colour) colour cross-entropies, and (with --geometry) the box's mean L1 in [0, 1] units, of a batch. */
  const losses = (b: CellBatch): [tf.Scalar, tf.Scalar, tf.Scalar] =>
    tf.tidy(() => {
      const v = model.vision.apply(b.images);
      const flat = tf.reshape(v, [-1, v.shape[2]]) as tf.Tensor2D;
      const l1 = (p: tf.Tensor2D) => masked(tf.mean(tf.abs(tf.sub(tf.sigmoid(p), b.boxes)), -1) as tf.Tensor1D, b.mask);
      return [ce(head.apply(flat), b.target, b.mask), colourHead ? ce(colourHead.apply(flat), b.colour, b.mask) : tf.scalar(0), boxHead ? l1(boxHead.apply(flat)) : tf.scalar(0)];
    });
  if (a.dump) return dumpCells(batch, dispose);
  const held = batch(HELD_FROM, HELD);
  const [prior, floor] = tf.tidy(() => {
    const mean = tf.div(tf.sum(tf.mul(held.target, tf.expandDims(held.mask, 1)), 0), tf.sum(held.mask));
    return [tf.log(mean), tf.log(tf.add(held.target, 1e-9))].map((lg) => masked(tf.neg(tf.sum(tf.mul(lg, held.target), -1)) as tf.Tensor1D, held.mask).dataSync()[0]!);
  });
  console.log(`cells: ${g} x ${g} visual tokens, ${K} categories; held-out prior ${prior!.toFixed(3)}, floor ${floor!.toFixed(3)}${COLOUR > 0 ? `; colour loss weight ${COLOUR}` : ''}`);
  const opt = new AdamW(new Map(params));
  const t0 = performance.now();
  let sum = 0;
  for (let s = 0; s < STEPS; s++) {
    const b = batch(POOL_FROM + s * BATCH, BATCH);
    sum += optimiserStep(opt, params, () => tf.tidy(() => {
      const [cat, col, box] = losses(b);
      return tf.addN([cat, ...(COLOUR > 0 ? [tf.mul(col, COLOUR)] : []), ...(GEOMETRY > 0 ? [tf.mul(box, GEOMETRY)] : [])]) as tf.Scalar;
    }), schedule(s));
    dispose(b);
    if ((s + 1) % 250 === 0 || s + 1 === STEPS) {
      const [cat, col, box] = losses(held);
      const colour = (COLOUR > 0 ? `, colour ${col.dataSync()[0]!.toFixed(3)}` : '') + (GEOMETRY > 0 ? `, box L1 ${(box.dataSync()[0]! * side).toFixed(2)} px` : '');
      console.log(`step ${s + 1}: training ${(sum / ((s % 250) + 1)).toFixed(3)}, held-out ${cat.dataSync()[0]!.toFixed(3)}${colour} (${((performance.now() - t0) / 1000 / (s + 1)).toFixed(3)} s/step)`);
      tf.dispose([cat, col, box]);
      sum = 0;
    }
  }
  dispose(held);
  head.dispose();
  colourHead?.dispose();
  boxHead?.dispose();
  if (a.save) {
    mkdirSync(a.save, { recursive: true });
    saveLens(model, join(a.save, 'model.safetensors'), { stage: 'experiment: pool_tasks cells' });
    console.log(`saved the model (this vision encoder, a fresh MLLM and SAM) to ${a.save}/model.safetensors`);
  }
  model.dispose();
}

/** --task colour | place | colour-place: does the MLLM learn to read the named object's colour / place? */
function answers(): void {
  const model = loadLens(`${a.from}/model.safetensors`).model;
  const tok = Tokenizer.load(a.tokenizer ?? `${a.from}/tokenizer.json`);
  if (num('pos2d') > 0) addPos2d(model, num('pos2d'));
  if (num('number-code') > 0) addNumberCode(model, tok, num('number-code'), a['code-kind'] as 'fourier' | 'thermo');
  const V = model.vision.numTokens;
  const g = Math.sqrt(V);
  const vocab = model.config.mllm.vocabSize;
  type Example = TrainExample & { cells: Float32Array };
  /** The examples of pictures from..: one per picture that has an object whose category appears once. */
  const examples = (from: number, n: number, gen = generator): { examples: Example[]; next: number } => {
    const out: Example[] = [];
    let i = from;
    for (; out.length < n; i++) {
      const img = generateReferImage(gen, 'train', i);
      const objs = img.scene.objects;
      const ref = a.task === 'refer-box' ? img.refs[i % img.refs.length] : undefined; // one of the picture's generated expressions
      if (a.task === 'refer-box' && !ref) continue;
      const once = ref ? objs.filter((o) => o.z === ref.target) : objs.filter((o) => objs.filter((p) => KEY(p) === KEY(o)).length === 1);
      if (once.length === 0) continue;
      const o = once[i % once.length]!;
      const sentence = ref ? ref.expressions[Math.floor(i / img.refs.length) % ref.expressions.length]!.text : KEY(o);
      const where = regionName(o, side);
      const [x, y, w, h] = o.bbox;
      const box: [number, number, number, number] = [x, y, x + w, y + h];
      const answer =
        a.task === 'colour' ? `the ${o.colour} ${o.category}`
        : a.task === 'place' ? `the ${o.category} at the ${where}`
        : BOX ? `[${box.join(', ')}]`
        : `the ${o.colour} ${o.category} at the ${where}`;
      const cells = ORACLE > 0 ? cellShares(objs, g, vocab, (p) => tok.tokenId(p.category), true) : new Float32Array(0);
      out.push({ id: String(i), family: 'refcoco', split: 'train', sentence, label: KEY(o), reasoning: '', rgb: img.rgb, target: o.visible, box, answer, sample: null as never, cells });
    }
    return { examples: out, next: i };
  };
  let oracle: Float32Array | null = null; // the batch's cells while it runs (--oracle only)
  if (ORACLE > 0) {
    const plain = model.vision.apply.bind(model.vision);
    model.vision.apply = (images: tf.Tensor4D) =>
      tf.tidy(() => {
        const B = images.shape[0];
        const words = tf.matMul(tf.tensor2d(oracle!, [B * V, vocab]), model.mllm.embed.weight);
        return tf.add(plain(images), tf.mul(tf.reshape(words, [B, V, -1]), ORACLE)) as tf.Tensor3D;
      });
  }
  const withCells = (ex: readonly Example[]) => {
    if (ORACLE === 0) return;
    oracle = new Float32Array(ex.length * V * vocab);
    ex.forEach((e, b) => oracle!.set(e.cells, b * V * vocab));
  };
  const held = examples(HELD_FROM, 64).examples;
  const heldOther = held.map((e, i) => ({ ...held[(i + 1) % held.length]!, sentence: e.sentence, answer: e.answer })); // another scene's picture (and cells)
  const nll = (ex: readonly Example[]) => {
    withCells(ex);
    const b = encodeBatch(tok, ex, { numVisual: V, side, withAnswer: true });
    const l = sftLoss(model, b);
    const v = l.dataSync()[0]!;
    tf.dispose([l]);
    disposeBatch(b);
    return v;
  };
  /** --task box: the teacher-forced box (each coordinate the most likely integer) against the true one: Acc@0.5 and mean IoU. */
  const number0 = tok.tokenId('0');
  const boxes = (ex: readonly Example[]): string => {
    withCells(ex);
    const b = encodeBatch(tok, ex, { numVisual: V, side, withAnswer: true });
    const guess = tf.tidy(() => {
      const { logits, hidden } = model.mllm.forward({ tokens: b.tokens, attentionMask: b.attentionMask, visual: model.vision.apply(b.images) });
      hidden.dispose();
      return tf.argMax(tf.slice(logits, [0, 0, number0], [-1, -1, side + 1]), -1).arraySync() as number[][]; // [B, T]: best integer 0..side
    });
    const tokens = b.tokens.arraySync();
    const answer = b.answerMask.arraySync();
    disposeBatch(b);
    let hits = 0;
    let iou = 0;
    ex.forEach((e, r) => {
      const at = tokens[r]!.flatMap((t, i) => (answer[r]![i] && t >= number0 && t <= number0 + side ? [i] : []));
      const q = boxIouXyxy(at.map((i) => guess[r]![i - 1]!) as Box, e.box as Box);
      hits += q >= 0.5 ? 1 : 0;
      iou += q;
    });
    return `, teacher-forced box Acc@0.5 ${(hits / ex.length).toFixed(3)}, mean IoU ${(iou / ex.length).toFixed(3)}`;
  };
  const report = (s: number, train: string) =>
    console.log(`step ${s}: ${train}held-out answer NLL ${nll(held).toFixed(3)}, with another picture ${nll(heldOther).toFixed(3)}${BOX ? boxes(held) : ''}`);
  console.log(`${a.task}: e.g. '${held[0]!.sentence}' -> '${held[0]!.answer}'`);
  report(0, '');
  const params = model.stageSplit('stage0b').trainable;
  model.setStage('stage0b');
  const opt = new AdamW(new Map(params));
  const t0 = performance.now();
  let next = POOL_FROM;
  let sum = 0;
  for (let s = 0; s < STEPS; s++) {
    const r = examples(next, BATCH, s < num('curriculum') ? easy : generator);
    next = r.next;
    withCells(r.examples);
    const b = encodeBatch(tok, r.examples, { numVisual: V, side, withAnswer: true });
    const loss = () =>
      num('coord-sigma') === 0 ? sftLoss(model, b)
      : tf.tidy(() => {
          const { logits, hidden } = model.mllm.forward({ tokens: b.tokens, attentionMask: b.attentionMask, visual: model.vision.apply(b.images) });
          hidden.dispose();
          return smoothedAnswerNll(logits, b, tok, num('coord-sigma'));
        });
    sum += optimiserStep(opt, params, loss, schedule(s), (n) => (n.startsWith('vision.') ? VISION_LR / LR : 1));
    disposeBatch(b);
    if ((s + 1) % 100 === 0) {
      report(s + 1, `training ${(sum / 100).toFixed(3)}, `);
      console.log(`  (${((performance.now() - t0) / 1000 / (s + 1)).toFixed(2)} s/step)`);
      sum = 0;
    }
  }
  if (a.save) {
    mkdirSync(a.save, { recursive: true });
    saveLens(model, join(a.save, 'model.safetensors'), { stage: `experiment: pool_tasks ${a.task}` }); // without the --pos2d code and the --oracle words
    console.log(`saved the model to ${a.save}/model.safetensors`);
  }
  model.dispose();
}

await initBackend({ quiet: true });
if (a.task === 'cells') cells();
else answers();
