/**
 * Experiment for issue #5 (docs/stage0b-grounding.md): can the vision encoder + MLLM of a
 * stage-0a model learn an answer that ONLY the picture determines, with stage 0b's
 * optimiser, batch and learning rate? One answer token per RefCOCO training image:
 * - `--task solid`: the picture replaced by one of 8 solid colours, the answer its index
 *   (a plumbing check: the image reaches the answer and the whole path trains);
 * - `--task top-x`: the left edge x1 of the topmost instance (0..64);
 * - `--task top-category`: the category of the topmost instance;
 * - `--task count`: how many instances the picture holds (3 to 6).
 * Prints the answer token's mean cross-entropy every 25 steps beside the prior entropy of
 * the answers (what a model that ignores the picture reaches).
 *
 * `--probe` replaces the MLLM by a linear classifier over the flattened visual tokens (the
 * vision encoder still trains): can the merged tokens carry the answer at all?
 *
 * `--visual-scale S` multiplies the vision encoder's output by S before the MLLM sees it.
 *
 * `--vision-lr L` gives the vision encoder its own learning rate (the MLLM keeps `--lr`):
 * the vision encoder's gradient through one answer token is weak and noisy, and at the
 * MLLM's 1e-3 its features move faster than the MLLM learns to read them.
 *
 * `--distill-steps N` first trains the vision encoder alone for N steps (batch 16, same lr)
 * to predict, through a linear head on its patch states (before the merger), stage 0a's SAM
 * image embeddings average-pooled to its patch grid and standardised per channel: SAM's encoder
 * has learnt objects from dense masks, so this hands the MLLM's encoder object features
 * the way a pretrained ViT would have them.
 *
 *   npx tsx experiments/image_tasks.ts --task solid
 *   npx tsx experiments/image_tasks.ts --task top-x
 *   npx tsx experiments/image_tasks.ts --task count --steps 800 --vision-lr 3e-5
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import * as tf from '@tensorflow/tfjs-core';
import { initBackend } from '../src/backend';
import { loadSplit } from '../src/data/index';
import type { LensModel } from '../src/model/lens';
import { Linear } from '../src/model/nn';
import { loadLens } from '../src/model/presets';
import { patchify } from '../src/model/vision_encoder';
import { Tokenizer } from '../src/model/tokenizer';
import { Rng } from '../src/random';
import { batchIndices, boxToInput, disposeBatch, encodeBatch, loadExamples, type TrainExample } from '../src/train/data';
import { AdamW } from '../src/train/optim';
import { sftLoss } from '../src/train/stage0';
import { optimiserStep } from './common';

const { values: a } = parseArgs({
  options: {
    task: { type: 'string', default: 'top-x' },
    from: { type: 'string', default: 'results/main/pretrain/0a' },
    tokenizer: { type: 'string', default: 'results/main/pretrain/0b/tokenizer.json' },
    data: { type: 'string', default: 'data/bench' },
    steps: { type: 'string', default: '400' },
    lr: { type: 'string', default: '1e-3' },
    'distill-steps': { type: 'string', default: '0' },
    probe: { type: 'boolean', default: false },
    'visual-scale': { type: 'string', default: '1' },
    'vision-lr': { type: 'string' },
  },
});
const TASKS = ['solid', 'top-x', 'top-category', 'count'];
if (!TASKS.includes(a.task!)) throw new Error(`--task: expected one of ${TASKS.join(', ')}, got '${a.task}'`);

/** 8 colours: bit 0 red, bit 1 green, bit 2 blue, each 0 or 200. */
function solid(k: number, side: number): Uint8Array {
  const rgb = new Uint8Array(side * side * 3);
  for (let q = 0; q < side * side; q++) {
    rgb[q * 3] = (k & 1) * 200;
    rgb[q * 3 + 1] = ((k >> 1) & 1) * 200;
    rgb[q * 3 + 2] = ((k >> 2) & 1) * 200;
  }
  return rgb;
}

/** The example's real picture (solid-colour tasks distil on the real images too). */
const realRgb = new Map<string, Uint8Array>();
function firstImage(e: TrainExample): Uint8Array {
  return realRgb.get(e.id) ?? e.rgb;
}

/** Vision-encoder patch states -> (linear) -> SAM embeddings pooled to the patch grid, MSE. */
function distillFromSam(model: LensModel, images: Uint8Array[], steps: number, lr: number): void {
  const vis = model.vision;
  const c = vis.config;
  const g = c.imageSize / c.patchSize;
  const head = new Linear(c.width, model.config.sam.encoderDim, new Rng(7), { std: 0.02 });
  const params: Array<[string, tf.Variable]> = [...model.namedParameters().filter(([n]) => n.startsWith('vision.') && !n.startsWith('vision.merger.')), ...head.namedParameters().map(([n, v]) => [`head.${n}`, v] as [string, tf.Variable])];
  for (const [, v] of params) v.trainable = true;
  const opt = new AdamW(new Map(params));
  const rng = new Rng(1);
  const side = c.imageSize;
  let sum = 0;
  for (let step = 0; step < steps; step++) {
    const idx = batchIndices(images.length, 16, step, rng.fork('distill'));
    const px = new Float32Array(16 * side * side * 3);
    idx.forEach((i, k) => images[i]!.forEach((v, q) => (px[k * side * side * 3 + q] = v / 255)));
    const imgs = tf.tensor4d(px, [16, side, side, 3]);
    const target = tf.tidy(() => {
      const e = model.sam.embedImage(imgs); // [B, h, w, C]
      const pooled = tf.avgPool(e, e.shape[1] / g, e.shape[1] / g, 'valid'); // [B, g, g, C]
      const { mean, variance } = tf.moments(pooled, [0, 1, 2]); // per channel
      return tf.reshape(tf.div(tf.sub(pooled, mean), tf.add(tf.sqrt(variance), 1e-6)), [16 * g * g, -1]) as tf.Tensor2D;
    });
    sum += optimiserStep(opt, params, () => {
      const x = vis.patchEmbed!.apply(tf.sub(patchify(imgs, c.patchSize), 0.5));
      let h = tf.add(tf.reshape(x, [16, g * g, c.width]), vis.posEmbed) as tf.Tensor3D;
      for (const blk of vis.blocks) h = blk.apply(h);
      const pred = head.apply(tf.reshape(vis.norm.apply(h), [16 * g * g, c.width]) as tf.Tensor2D);
      return tf.mean(tf.square(tf.sub(pred, target))) as tf.Scalar;
    }, lr);
    tf.dispose([imgs, target]);
    if ((step + 1) % 50 === 0) {
      console.log(`distil step ${step + 1}: MSE to SAM's pooled embeddings ${(sum / 50).toFixed(3)} (1 = predicting the mean)`);
      sum = 0;
    }
  }
  head.dispose();
}

async function main(): Promise<void> {
  await initBackend({ quiet: true });
  const { model } = loadLens(join(a.from!, 'model.safetensors'));
  const tok = Tokenizer.load(a.tokenizer!);
  const side = model.config.imageSize;
  const refs = await loadExamples(a.data!, 'refcoco', 'train', { imageSize: side, quiet: true });
  const ds = await loadSplit(a.data!, 'refcoco', 'train');
  const coco = JSON.parse(readFileSync(join(a.data!, 'refer_seg', 'refcoco', 'instances.json'), 'utf8')) as { categories: Array<{ id: number; name: string }> };
  const names = new Map(coco.categories.map((c) => [c.id, c.name] as const));
  const firstOf = new Map<string, TrainExample>();
  for (const e of refs) if (!firstOf.has(e.sample.imagePath)) firstOf.set(e.sample.imagePath, e);
  const examples: TrainExample[] = [];
  for (const s of ds.samples) {
    const e = firstOf.get(s.imagePath);
    if (!e) continue;
    firstOf.delete(s.imagePath); // one example per image
    const all = ds.instances(s.imageId);
    const top = all
      .map((i) => ({ box: boxToInput(i.bbox, s.height, s.width, side), name: names.get(i.categoryId) ?? '?' }))
      .sort((p, q) => p.box[1] - q.box[1])[0]!;
    const k = examples.length % 8;
    const answer = a.task === 'solid' ? String(k) : a.task === 'top-x' ? String(top.box[0]) : a.task === 'count' ? String(all.length) : top.name;
    const id = `${e.id}#task`;
    realRgb.set(id, e.rgb);
    examples.push({ ...e, id, rgb: a.task === 'solid' ? solid(k, side) : e.rgb, sentence: 'what is at the top?', answer });
  }
  const counts = new Map<string, number>();
  for (const e of examples) counts.set(e.answer, (counts.get(e.answer) ?? 0) + 1);
  let prior = 0;
  for (const c of counts.values()) prior -= (c / examples.length) * Math.log(c / examples.length);
  console.log(`task ${a.task}: ${examples.length} images, ${counts.size} answers, prior entropy ${prior.toFixed(3)} nats`);

  const distill = Number(a['distill-steps']);
  if (distill > 0) distillFromSam(model, examples.map((e) => firstImage(e)), distill, Number(a.lr));
  const scale = Number(a['visual-scale']);
  if (scale !== 1) {
    const plain = model.vision.apply.bind(model.vision);
    model.vision.apply = (images: tf.Tensor4D) => tf.tidy(() => tf.mul(plain(images), scale) as tf.Tensor3D);
  }
  const answers = [...counts.keys()];
  const V = model.vision.numTokens * model.config.mllm.hiddenSize;
  const probe = new Linear(V, answers.length, new Rng(11), { std: 0.02 });
  const params = a.probe ? [...model.stageSplit('stage0b').trainable.filter(([n]) => n.startsWith('vision.')), ...probe.namedParameters().map(([n, v]) => [`probe.${n}`, v] as [string, tf.Variable])] : model.stageSplit('stage0b').trainable;
  model.setStage('stage0b');
  for (const [, v] of params) v.trainable = true;
  const probeLoss = (images: tf.Tensor4D, exs: TrainExample[]) =>
    tf.tidy(() => {
      const logits = probe.apply(tf.reshape(model.vision.apply(images), [exs.length, V]) as tf.Tensor2D);
      const y = tf.oneHot(tf.tensor1d(exs.map((e) => answers.indexOf(e.answer)), 'int32'), answers.length);
      return tf.mul(tf.mean(tf.neg(tf.sum(tf.mul(tf.logSoftmax(logits), y), -1))), 0.5) as tf.Scalar; // halved like sftLoss's two tokens
    });
  const opt = new AdamW(new Map(params));
  const visionScale = a['vision-lr'] === undefined ? 1 : Number(a['vision-lr']) / Number(a.lr);
  if (!(visionScale >= 0)) throw new Error(`--vision-lr: expected a number >= 0, got '${a['vision-lr']}'`);
  const rng = new Rng(0);
  let sum = 0;
  for (let step = 0; step < Number(a.steps); step++) {
    const exs = batchIndices(examples.length, 16, step, rng.fork('data')).map((i) => examples[i]!);
    const b = encodeBatch(tok, exs, { numVisual: model.vision.numTokens, side, withAnswer: true });
    const loss = optimiserStep(opt, params, () => (a.probe ? probeLoss(b.images, exs) : sftLoss(model, b)), Number(a.lr), (n) => (n.startsWith('vision.') ? visionScale : 1));
    sum += 2 * loss; // sftLoss averages the answer token and <eos> (whose cost is ~0 after a few steps)
    disposeBatch(b);
    if ((step + 1) % 25 === 0) {
      console.log(`step ${step + 1}: answer cross-entropy ${(sum / 25).toFixed(3)} (prior ${prior.toFixed(3)})`);
      sum = 0;
    }
  }
}

main().catch((e: unknown) => {
  console.error(e instanceof Error ? e.message : e);
  process.exit(1);
});
