/**
 * The fused quick-GELU (src/accel/quick-gelu.ts) against the composite form on the
 * native kernels: values and the gradient of x bit-identical (same float32 operations,
 * same order), no tensors left behind; without the fused kernels it is the composite.
 */
import * as tf from '@tensorflow/tfjs-core';
import { beforeAll, describe, expect, it } from 'vitest';
import { quickGelu, quickGeluComposite, setWasmAccel } from '../../src/accel';
import { MLP } from '../../src/model/nn';
import { Rng } from '../../src/random';
import { expectAllClose, HAVE_NATIVE, randn, runWith, startWasm } from './accel-testutil';

beforeAll(startWasm);

describe('fused quick-GELU', () => {
  it.skipIf(!HAVE_NATIVE)('is bit-identical to the composite form, values and gradient', async () => {
    const rng = new Rng(3);
    // odd sizes leave a tail after the 16-float task blocks; the large one is split over the threads
    for (const shape of [[3, 7], [300, 513], [1]]) {
      const x = tf.mul(randn(rng, shape), 4); // reaches both tails of the sigmoid
      const dy = randn(rng, shape);
      const vjp = (f: (t: tf.Tensor) => tf.Tensor) => tf.grad(f)(x, dy);
      const ref = runWith(true, () => [quickGeluComposite(x), vjp(quickGeluComposite)]);
      const got = runWith(true, () => [quickGelu(x), vjp(quickGelu)]);
      got.forEach((g, i) => expect(Array.from(g), `quickGelu [${shape}] ${i === 0 ? 'value' : 'gradient'}`).toEqual(Array.from(ref[i]!)));
      const prof = await tf.profile(() => vjp(quickGelu).dispose());
      const names = prof.kernels.map((k) => k.name);
      expect(names).toEqual(expect.arrayContaining(['LensQuickGelu', 'LensQuickGeluGrad']));
      expect(names).not.toContain('Sigmoid');
      tf.dispose([x, dy]);
    }
  });

  it.skipIf(!HAVE_NATIVE)('trains an MLP without leaking tensors', () => {
    const mlp = new MLP(8, 16, 8, new Rng(4));
    const x = randn(new Rng(5), [4, 8]);
    const step = () => {
      const { value, grads } = tf.variableGrads(() => tf.sum(tf.square(mlp.apply(x))) as tf.Scalar);
      tf.dispose([value, ...Object.values(grads)]);
    };
    step();
    const n = tf.memory().numTensors;
    step();
    expect(tf.memory().numTensors).toBe(n);
    mlp.dispose();
    x.dispose();
  });

  it('is the composite form when the fused kernels are off', async () => {
    setWasmAccel(false);
    try {
      const x = tf.tensor1d([-2, 0, 1, 3]);
      const y = quickGelu(x);
      expectAllClose(y.dataSync(), [-2, 0, 1, 3].map((v) => v / (1 + Math.exp(-1.702 * v))), 'composite quick-GELU', 1e-5, 1e-6);
      const prof = await tf.profile(() => quickGelu(x).dispose());
      expect(prof.kernels.map((k) => k.name)).not.toContain('LensQuickGelu');
      tf.dispose([x, y]);
    } finally {
      setWasmAccel(true);
    }
  });
});
