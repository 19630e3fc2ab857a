/**
 * Experiment for issue #5 (docs/stage0b-grounding.md): does the state that writes the box
 * know where the target is? Teacher-forces RefCOCO sentences through a stage-0b model,
 * takes the last-layer state at the box's `[` (the one that predicts x1), and fits a linear
 * probe (Adam, 500 full-batch steps) to the 4 x 4 cell of the target box's centre, and to
 * its column, on the first `--train` training sentences; prints the accuracy on `--eval`
 * val sentences beside the most common class's share. 650 training pictures are easily
 * learnt by heart, so only the held-out accuracy says anything.
 *
 *   npx tsx experiments/place_probe.ts --from results/main/pretrain/0b
 *   npx tsx experiments/place_probe.ts --from results/experiments/attn-ptr --pos2d 0.5
 */
import { parseArgs } from 'node:util';
import * as tf from '@tensorflow/tfjs-core';
import { initBackend } from '../src/backend';
import { disposeBatch, encodeBatch, loadExamples, type TrainExample } from '../src/train/data';
import { loadExperimentModel } from './common';

const { values: a } = parseArgs({
  options: {
    from: { type: 'string', default: 'results/main/pretrain/0b' },
    data: { type: 'string', default: 'data/bench' },
    pos2d: { type: 'string', default: '0' },
    train: { type: 'string', default: '1500' },
    eval: { type: 'string', default: '200' },
  },
});

async function main(): Promise<void> {
  await initBackend({ quiet: true });
  const { model, tok } = loadExperimentModel(a.from!, Number(a.pos2d));
  const side = model.config.imageSize;
  const C = model.config.mllm.hiddenSize;
  const open = tok.tokenId('[');
  const bbox = tok.tokenId('bbox_2d');
  const cell = side / 4;

  /** x1 states [N, C] and the target's cell (row-major on 4 x 4) and column. */
  const states = (ex: readonly TrainExample[]) => {
    const x = new Float32Array(ex.length * C);
    const cells = new Int32Array(ex.length);
    const cols = new Int32Array(ex.length);
    for (let s = 0; s < ex.length; s += 25) {
      const part = ex.slice(s, s + 25);
      const b = encodeBatch(tok, part, { numVisual: model.vision.numTokens, side, withAnswer: true });
      const ids = b.tokens.arraySync() as number[][];
      const hidden = tf.tidy(() => model.mllm.forward({ tokens: b.tokens, attentionMask: b.attentionMask, visual: model.vision.apply(b.images) }).hidden);
      const h = hidden.arraySync() as number[][][];
      part.forEach((e, k) => {
        x.set(h[k]![ids[k]!.indexOf(open, ids[k]!.indexOf(bbox))]!, (s + k) * C);
        const [x1, y1, x2, y2] = e.box;
        const col = Math.min(3, Math.floor((x1 + x2) / 2 / cell));
        cols[s + k] = col;
        cells[s + k] = Math.min(3, Math.floor((y1 + y2) / 2 / cell)) * 4 + col;
      });
      hidden.dispose();
      disposeBatch(b);
    }
    return { x, cells, cols };
  };
  const train = states((await loadExamples(a.data!, 'refcoco', 'train', { imageSize: side, quiet: true })).slice(0, Number(a.train)));
  const val = states(await loadExamples(a.data!, 'refcoco', 'val', { imageSize: side, allSentences: false, limit: Number(a.eval), quiet: true }));
  const nTrain = train.cells.length;
  const nVal = val.cells.length;
  for (const [name, K, yTrain, yVal] of [['cell', 16, train.cells, val.cells], ['column', 4, train.cols, val.cols]] as const) {
    const w = tf.variable(tf.zeros([C, K]));
    const bias = tf.variable(tf.zeros([K]));
    const xTrain = tf.tensor2d(train.x, [nTrain, C]);
    const target = tf.oneHot(tf.tensor1d(yTrain, 'int32'), K);
    const opt = tf.train.adam(1e-2);
    for (let i = 0; i < 500; i++) opt.minimize(() => tf.losses.softmaxCrossEntropy(target, tf.add(tf.matMul(xTrain, w), bias)) as tf.Scalar);
    const accuracy = (x: Float32Array, y: Int32Array) =>
      tf.tidy(() => {
        const pred = tf.argMax(tf.add(tf.matMul(tf.tensor2d(x, [y.length, C]), w), bias), -1).dataSync();
        return Array.from(pred).reduce((s, p, i) => s + +(p === y[i]), 0) / y.length;
      });
    const counts = new Array<number>(K).fill(0);
    yVal.forEach((v) => counts[v]!++);
    console.log(`${a.from} ${name}: held-out accuracy ${accuracy(val.x, yVal).toFixed(2)} (training ${accuracy(train.x, yTrain).toFixed(2)}, most common ${(Math.max(...counts) / nVal).toFixed(2)})`);
    tf.dispose([w, bias, xTrain, target]);
    opt.dispose();
  }
  model.dispose();
}

main().catch((e: unknown) => {
  console.error(e instanceof Error ? e.stack : e);
  process.exit(1);
});
