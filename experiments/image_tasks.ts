/**
 * Experiment for issue #5 (docs/stage0b-grounding.md): can the vision encoder + MLLM of a
 * stage-0a model learn an answer that ONLY the picture determines, with stage 0b's
 * optimiser, batch and learning rate? One answer token per RefCOCO training image:
 * - `--task solid`: the picture replaced by one of 8 solid colours, the answer its index
 *   (a plumbing check: the image reaches the answer and the whole path trains);
 * - `--task top-x`: the left edge x1 of the topmost instance (0..64);
 * - `--task top-category`: the category of the topmost instance.
 * Prints the answer token's mean cross-entropy every 25 steps beside the prior entropy of
 * the answers (what a model that ignores the picture reaches).
 *
 *   npx tsx experiments/image_tasks.ts --task solid
 *   npx tsx experiments/image_tasks.ts --task top-x
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import * as tf from '@tensorflow/tfjs-core';
import { initBackend } from '../src/backend';
import { loadSplit } from '../src/data/index';
import { loadLens } from '../src/model/presets';
import { Tokenizer } from '../src/model/tokenizer';
import { Rng } from '../src/random';
import { batchIndices, boxToInput, disposeBatch, encodeBatch, loadExamples, type TrainExample } from '../src/train/data';
import { AdamW, clipByGlobalNorm } from '../src/train/optim';
import { sftLoss } from '../src/train/stage0';

const { values: a } = parseArgs({
  options: {
    task: { type: 'string', default: 'top-x' },
    from: { type: 'string', default: 'results/main/pretrain/0a' },
    tokenizer: { type: 'string', default: 'results/main/pretrain/0b/tokenizer.json' },
    data: { type: 'string', default: 'data/bench' },
    steps: { type: 'string', default: '400' },
    lr: { type: 'string', default: '1e-3' },
  },
});
const TASKS = ['solid', 'top-x', 'top-category'];
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
    const top = ds
      .instances(s.imageId)
      .map((i) => ({ box: boxToInput(i.bbox, s.height, s.width, side), name: names.get(i.categoryId) ?? '?' }))
      .sort((p, q) => p.box[1] - q.box[1])[0]!;
    const k = examples.length % 8;
    const answer = a.task === 'solid' ? String(k) : a.task === 'top-x' ? String(top.box[0]) : top.name;
    examples.push({ ...e, rgb: a.task === 'solid' ? solid(k, side) : e.rgb, sentence: 'what is at the top?', answer });
  }
  const counts = new Map<string, number>();
  for (const e of examples) counts.set(e.answer, (counts.get(e.answer) ?? 0) + 1);
  let prior = 0;
  for (const c of counts.values()) prior -= (c / examples.length) * Math.log(c / examples.length);
  console.log(`task ${a.task}: ${examples.length} images, ${counts.size} answers, prior entropy ${prior.toFixed(3)} nats`);

  const params = model.stageSplit('stage0b').trainable;
  model.setStage('stage0b');
  const opt = new AdamW(new Map(params));
  const nameOf = new Map(params.map(([n, v]) => [v.name, n] as const));
  const rng = new Rng(0);
  let sum = 0;
  for (let step = 0; step < Number(a.steps); step++) {
    const b = encodeBatch(tok, batchIndices(examples.length, 16, step, rng.fork('data')).map((i) => examples[i]!), { numVisual: model.vision.numTokens, side, withAnswer: true });
    const { value, grads } = tf.variableGrads(() => sftLoss(model, b), params.map(([, v]) => v));
    sum += 2 * value.dataSync()[0]!; // sftLoss averages the answer token and <eos> (whose cost is ~0 after a few steps)
    const named: Record<string, tf.Tensor> = {};
    for (const [vn, g] of Object.entries(grads)) named[nameOf.get(vn)!] = g;
    const clipped = clipByGlobalNorm(named, 1).grads;
    opt.apply(clipped, Number(a.lr));
    tf.dispose([value, ...Object.values(grads), ...Object.values(clipped)]);
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
