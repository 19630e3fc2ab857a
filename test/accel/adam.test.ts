/**
 * The fused Adam (src/accel/adam.ts) against tfjs's own Adam: the same weights and
 * moments after several steps, bit for bit, and the same saved state; without the
 * fused kernel it is tfjs's Adam unchanged.
 */
import * as tf from '@tensorflow/tfjs-core';
import { beforeAll, describe, expect, it } from 'vitest';
import { adam, ADAM_KERNEL, setWasmAccel } from '../../src/accel';
import { Rng } from '../../src/random';
import { AdamW } from '../../src/train/optim';
import { HAVE_NATIVE, startWasm } from './accel-testutil';

beforeAll(startWasm);

/** Trains two tiny weights for `steps` steps with `opt`; returns their values and the optimizer's saved weights. */
async function train(opt: tf.Optimizer, steps: number): Promise<{ values: number[][]; saved: Array<{ name: string; values: number[] }> }> {
  const rng = new Rng(9);
  const w = tf.variable(tf.tensor2d(Float32Array.from({ length: 12 }, () => rng.normal(0, 1)), [3, 4]), true, 'fa_w');
  const b = tf.variable(tf.tensor1d(Float32Array.from({ length: 4 }, () => rng.normal(0, 1))), true, 'fa_b');
  const x = tf.tensor2d(Float32Array.from({ length: 15 }, () => rng.normal(0, 1)), [5, 3]);
  for (let i = 0; i < steps; i++) {
    const cost = opt.minimize(() => tf.mean(tf.square(tf.sigmoid(tf.add(tf.matMul(x, w), b)))) as tf.Scalar, true, [w, b]);
    cost?.dispose();
  }
  const values = [Array.from(w.dataSync()), Array.from(b.dataSync())];
  const saved = (await opt.getWeights()).map((n) => ({ name: n.name, values: Array.from(n.tensor.dataSync()) }));
  tf.dispose([w, b, x]);
  opt.dispose();
  return { values, saved };
}

describe('fused Adam', () => {
  it.skipIf(!HAVE_NATIVE)('is registered for wasm with the native kernels and removed with them', () => {
    expect(tf.getKernel(ADAM_KERNEL, 'wasm')).toBeDefined();
    setWasmAccel(false);
    expect(tf.getKernel(ADAM_KERNEL, 'wasm')).toBeUndefined();
    setWasmAccel(true);
    expect(tf.getKernel(ADAM_KERNEL, 'wasm')).toBeDefined();
  });

  it.skipIf(!HAVE_NATIVE)('matches tf.train.adam bit for bit over 5 steps, moments and saved state included', async () => {
    const ref = await train(tf.train.adam(0.01, 0.9, 0.999, 1e-7), 5);
    const fused = await train(adam(0.01, 0.9, 0.999, 1e-7), 5);
    expect(fused.values).toEqual(ref.values);
    expect(fused.saved.map((s) => s.name)).toEqual(ref.saved.map((s) => s.name));
    expect(fused.saved).toEqual(ref.saved);
    expect(ref.values[0]).not.toEqual(Array.from({ length: 12 }, () => 0)); // it trained
  });

  it('without the fused kernel is tfjs Adam itself', async () => {
    setWasmAccel(false);
    try {
      const ref = await train(tf.train.adam(0.02), 3);
      const plain = await train(adam(0.02), 3);
      expect(plain.values).toEqual(ref.values);
    } finally {
      setWasmAccel(true);
    }
  });

  it.skipIf(!HAVE_NATIVE)('refuses mismatched moment shapes naming the input', () => {
    const v = tf.ones([3]);
    const m = tf.ones([4]);
    expect(() =>
      tf.engine().runKernel(ADAM_KERNEL, { value: v, m, v, g: v }, { beta1: 0.9, beta2: 0.999, oneMinusAccBeta1: 0.1, oneMinusAccBeta2: 0.001, epsilon: 1e-7, learningRate: 0.1 }),
    ).toThrow(/input 'm' must be float32 of shape \[3\]/);
    tf.dispose([v, m]);
  });
});

describe("training's AdamW on the fused kernel", () => {
  /** Five AdamW steps on two parameters with their own lr multiples; their values, moments and the tensor count change. */
  function run(accel: boolean, weightDecay: number): { values: number[][]; leaked: number } {
    setWasmAccel(accel);
    try {
      const rng = new Rng(4);
      const before = tf.memory().numTensors;
      const a = tf.tidy(() => tf.variable(tf.tensor2d(Float32Array.from({ length: 12 }, () => rng.normal(0, 1)), [3, 4])));
      const b = tf.tidy(() => tf.variable(tf.tensor1d(Float32Array.from({ length: 5 }, () => rng.normal(0, 1)))));
      const opt = new AdamW(new Map<string, tf.Variable>([['vision.a', a], ['b', b]]), { weightDecay });
      for (let s = 0; s < 5; s++) {
        const g = { 'vision.a': tf.tensor2d(Float32Array.from({ length: 12 }, () => rng.normal(0, 1)), [3, 4]), b: tf.tensor1d(Float32Array.from({ length: 5 }, () => rng.normal(0, 1e-3))) };
        opt.apply(g, 0.01 * (s + 1), (n) => (n.startsWith('vision.') ? 0.1 : 1));
        tf.dispose(Object.values(g));
      }
      const values = [a, b, ...Object.values(opt.state().tensors)].map((t) => Array.from(t.dataSync()));
      opt.dispose();
      tf.dispose([a, b]);
      return { values, leaked: tf.memory().numTensors - before };
    } finally {
      setWasmAccel(true);
    }
  }

  it.skipIf(!HAVE_NATIVE)('gives the op-by-op update bit for bit, moments included, and leaves no tensor behind', () => {
    const fused = run(true, 0);
    expect(fused.values).toEqual(run(false, 0).values);
    expect(fused.leaked).toBe(0);
    expect(fused.values[0]).not.toEqual(run(true, 1e-2).values[0]); // weight decay takes the op-by-op path, and matters
  });
});
