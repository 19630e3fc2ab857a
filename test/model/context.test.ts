/** Context queries: init, readout contract, bad arguments, gradient path. */
import * as tf from '@tensorflow/tfjs-core';
import { beforeAll, describe, expect, it } from 'vitest';
import { ContextQueries, validateContextQueriesConfig } from '../../src/model/context_module';
import { Rng } from '../../src/random';
import { expectAllClose, gradientReach, useBackend } from './sam-testutil';

beforeAll(async () => {
  await useBackend('cpu');
});

describe('ContextQueries', () => {
  it('is one parameter [1, M, C] drawn from N(0, 0.02)', () => {
    const q = new ContextQueries({ numQueries: 64, dim: 64 }, new Rng(1));
    expect(q.namedParameters().map(([n, v]) => [n, v.shape])).toEqual([['queries', [1, 64, 64]]]);
    const d = q.queries.dataSync() as Float32Array;
    const mean = d.reduce((s, v) => s + v, 0) / d.length;
    const std = Math.sqrt(d.reduce((s, v) => s + (v - mean) ** 2, 0) / d.length);
    expect(Math.abs(mean)).toBeLessThan(0.002);
    expect(std).toBeGreaterThan(0.019);
    expect(std).toBeLessThan(0.021);
    q.dispose();
  });

  it('readout returns exactly the last M rows of hidden [B, T+M, C]', () => {
    const q = new ContextQueries({ numQueries: 2, dim: 3 }, new Rng(1));
    tf.tidy(() => {
      const hidden = tf.tensor3d(Array.from({ length: 2 * 5 * 3 }, (_, i) => i), [2, 5, 3]);
      const r = q.readout(hidden);
      expect(r.shape).toEqual([2, 2, 3]);
      expect(Array.from(r.dataSync())).toEqual([9, 10, 11, 12, 13, 14, 24, 25, 26, 27, 28, 29]);
      expect(q.readout(hidden, 1).shape).toEqual([2, 1, 3]);
      expect(() => q.readout(hidden, 6)).toThrow(/expected 1 <= M <= T\+M = 5, got M = 6/);
      expect(() => q.readout(tf.zeros([2, 5, 4]) as tf.Tensor3D)).toThrow(/readout hidden: expected shape \[\*, \*, 3\]/);
    });
    q.dispose();
  });

  it('config errors name the field', () => {
    expect(() => validateContextQueriesConfig({ numQueries: 0 })).toThrow(/ContextQueriesConfig.numQueries: expected an integer >= 1, got 0/);
    expect(() => validateContextQueriesConfig({ initStd: -1 })).toThrow(/ContextQueriesConfig.initStd/);
  });

  it('apply() hands out a disposable copy through which the gradient reaches the queries', () => {
    const q = new ContextQueries({ numQueries: 4, dim: 8 }, new Rng(2));
    const before = tf.memory().numTensors;
    const copy = q.apply();
    expectAllClose(copy, q.queries, 0, 0);
    copy.dispose();
    expect(q.queries.isDisposed).toBe(false);
    const { unreached } = gradientReach(q.namedParameters(), () =>
      tf.tidy(() => {
        // a stand-in "MLLM": the queries appended after a prefix, read back out
        const seq = tf.concat([tf.ones([2, 3, 8]), tf.broadcastTo(q.apply(), [2, 4, 8])], 1) as tf.Tensor3D;
        return tf.sum(tf.square(q.readout(tf.tanh(seq))));
      }),
    );
    expect(unreached).toEqual([]);
    expect(tf.memory().numTensors).toBe(before);
    q.dispose();
  });
});

describe('ContextQueries on wasm', () => {
  it('trains one step on wasm with the gradients of cpu', async () => {
    const q = new ContextQueries({ numQueries: 4, dim: 8 }, new Rng(3));
    const loss = () => tf.tidy(() => tf.sum(tf.square(tf.sin(q.readout(tf.concat([tf.ones([2, 3, 8]), tf.broadcastTo(q.apply(), [2, 4, 8])], 1) as tf.Tensor3D)))) as tf.Scalar);
    const cpu = gradientReach(q.namedParameters(), loss).grads.get('queries')!;
    await useBackend('wasm');
    try {
      const wasm = gradientReach(q.namedParameters(), loss).grads.get('queries')!;
      expectAllClose(wasm, cpu, 1e-6, 1e-4);
      const opt = tf.train.sgd(0.1);
      const before = Float32Array.from(q.queries.dataSync());
      opt.minimize(loss, false, [q.queries]);
      expect(Array.from(q.queries.dataSync())).not.toEqual(Array.from(before));
      opt.dispose();
    } finally {
      q.dispose();
      await useBackend('cpu');
    }
  });
});
