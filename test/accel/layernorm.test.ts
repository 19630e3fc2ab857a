/**
 * The fused layer norm (src/accel/layernorm.ts) against the composite form of
 * src/model/nn.ts: values and the gradients of x, gamma and beta all-close, no
 * tensors left behind; without the fused kernels it is the composite form.
 */
import * as tf from '@tensorflow/tfjs-core';
import { beforeAll, describe, expect, it } from 'vitest';
import { layerNorm, layerNormComposite, setWasmAccel } from '../../src/accel';
import { LayerNorm } from '../../src/model/nn';
import { Rng } from '../../src/random';
import { expectAllClose, HAVE_NATIVE, randn, runWith, startWasm } from './accel-testutil';

beforeAll(startWasm);

describe('fused layer norm', () => {
  it.skipIf(!HAVE_NATIVE)('matches the composite form, values and gradients of x, gamma, beta', async () => {
    const rng = new Rng(1);
    for (const shape of [[2, 7, 33], [300, 128], [5, 1]]) {
      const x = tf.add(tf.mul(randn(rng, shape), 3), 1.5);
      const c = shape[shape.length - 1];
      const gamma = randn(rng, [c]);
      const beta = randn(rng, [c]);
      const w = randn(rng, shape);
      type LN = (x: tf.Tensor, g: tf.Tensor, b: tf.Tensor, eps: number) => tf.Tensor;
      const loss = (f: LN) => (a: tf.Tensor, g: tf.Tensor, b: tf.Tensor) => tf.sum(tf.mul(f(a, g, b, 1e-5), w));
      const ref = runWith(true, () => [layerNormComposite(x, gamma, beta, 1e-5), ...tf.grads(loss(layerNormComposite))([x, gamma, beta])]);
      const got = runWith(true, () => [layerNorm(x, gamma, beta, 1e-5), ...tf.grads(loss(layerNorm))([x, gamma, beta])]);
      got.forEach((g, i) => expectAllClose(g, ref[i], `layerNorm [${shape}] output ${i}`, 1e-4, 1e-4));
      const prof = await tf.profile(() => {
        tf.grads(loss(layerNorm))([x, gamma, beta]).forEach((t) => t.dispose());
      });
      expect(prof.kernels.map((k) => k.name)).toEqual(expect.arrayContaining(['LensLayerNorm', 'LensLayerNormGrad']));
      tf.dispose([x, gamma, beta, w]);
    }
  });

  it.skipIf(!HAVE_NATIVE)('trains LayerNorm parameters without leaking tensors', () => {
    const ln = new LayerNorm(16);
    const x = randn(new Rng(2), [4, 16]);
    const step = () => {
      const { value, grads } = tf.variableGrads(() => tf.sum(tf.square(layerNorm(x, ln.gamma, ln.beta))) as tf.Scalar, [ln.gamma, ln.beta]);
      tf.dispose([value, ...Object.values(grads)]);
    };
    step();
    const n = tf.memory().numTensors;
    step();
    expect(tf.memory().numTensors).toBe(n);
    ln.dispose();
    x.dispose();
  });

  it('is the composite form when the fused kernels are off', () => {
    setWasmAccel(false);
    try {
      const x = tf.tensor2d([[1, 2, 3, 4]]);
      const y = layerNorm(x, tf.ones([4]), tf.zeros([4]));
      const s = Math.sqrt(1.25 + 1e-5);
      expectAllClose(y.dataSync(), [-1.5 / s, -0.5 / s, 0.5 / s, 1.5 / s], 'composite layer norm', 1e-5, 1e-6);
      tf.dispose([x, y]);
    } finally {
      setWasmAccel(true);
    }
  });
});
