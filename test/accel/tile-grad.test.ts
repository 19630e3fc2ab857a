/**
 * The Tile / broadcastTo gradient (src/accel/tile-grad.ts) equals tfjs-core's own
 * slice-per-tile gradient on every rank that one handles, and is what a started backend
 * uses: no slice per tile.
 */
import * as tf from '@tensorflow/tfjs-core';
import { beforeAll, describe, expect, it } from 'vitest';
import { tileGradient, useTileGradient } from '../../src/accel/tile-grad';
import { Rng } from '../../src/random';
import { useBackend } from '../backend-util';
import { expectAllClose, randn } from './accel-testutil';

beforeAll(() => useBackend('cpu'));

/** dx of sum(tile(x, reps) * dy) through tfjs-core's own slice-per-tile gradient (switched back in for the call). */
function stockGradient(dy: tf.Tensor, xShape: number[], reps: number[]): tf.Tensor {
  useTileGradient(false);
  try {
    const x = tf.zeros(xShape);
    const [g] = tf.grads((xx: tf.Tensor) => tf.sum(tf.mul(tf.tile(xx, reps), dy)))([x]);
    x.dispose();
    return g!;
  } finally {
    useTileGradient(true);
  }
}

describe('tileGradient', () => {
  const cases: Array<[number[], number[]]> = [
    [[3], [4]],
    [[2, 3], [1, 5]],
    [[2, 1, 3], [3, 4, 2]],
    [[1, 1, 1, 4], [2, 3, 5, 1]],
    [[2, 2, 1, 3], [2, 1, 3, 2]],
  ];
  for (const [xShape, reps] of cases) {
    it(`x ${JSON.stringify(xShape)} tiled ${JSON.stringify(reps)}`, () => {
      const dy = randn(new Rng(xShape.length), xShape.map((s, i) => s * reps[i]!));
      const ours = tileGradient(dy, xShape, reps);
      const ref = stockGradient(dy, xShape, reps);
      expect(ours.shape).toEqual(xShape);
      expectAllClose(ours.dataSync(), ref.dataSync(), `tile ${JSON.stringify(reps)}`);
      tf.dispose([dy, ours, ref]);
    });
  }

  it('is the gradient broadcastTo gets once a backend has started, with no slice per tile', async () => {
    const x = randn(new Rng(7), [1, 1, 1, 8]);
    const w = randn(new Rng(8), [4, 16, 16, 8]);
    const f = (xx: tf.Tensor) => tf.sum(tf.mul(tf.broadcastTo(xx, [4, 16, 16, 8]), w));
    const want = tf.tidy(() => tf.sum(w, [0, 1, 2], true).dataSync());
    const before = tf.memory().numTensors;
    const p = await tf.profile(() => {
      const [g] = tf.grads(f)([x]);
      expectAllClose(g!.dataSync(), want, 'd/dx sum(broadcastTo(x) * w)');
      g!.dispose();
    });
    expect(tf.memory().numTensors).toBe(before);
    expect(p.kernels.filter((k) => k.name === 'Slice')).toHaveLength(0); // the stock gradient: 1,024 here
    tf.dispose([x, w]);
  });
});
