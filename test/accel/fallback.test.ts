/**
 * Without the addon (LENS_NATIVE=0 stands in for "not built"), the wasm backend still
 * starts, says in its detail line that it runs stock kernels and how to fix it, keeps
 * the stock matmul, and still trains the layers wasm lacked kernels for (JS fallbacks).
 */
import './no-native-env'; // first: the addon is looked for once, at the first import below that asks
import * as tf from '@tensorflow/tfjs-core';
import { beforeAll, describe, expect, it } from 'vitest';
import { wasmAccelStatus } from '../../src/accel';
import { backendInfo } from '../../src/backend';
import { Rng } from '../../src/random';
import { expectAllClose, randn, runOn, startWasm } from './accel-testutil';

beforeAll(startWasm);

describe('wasm backend without the native addon', () => {
  it('reports stock kernels, the reason and the fix in the backend detail', async () => {
    const info = await backendInfo();
    expect(info.detail).toMatch(/stock kernels: disabled by LENS_NATIVE=0; to fix: install libopenblas-dev/);
    const s = wasmAccelStatus();
    expect(s?.native).toBe(false);
    expect(s?.replaced).toEqual([]);
    expect(s?.added).toEqual(['Conv2DBackpropFilter', 'UnsortedSegmentSum', 'Einsum']);
  });

  it('still trains a conv2d weight and an embedding table (JavaScript kernels)', async () => {
    const rng = new Rng(1);
    const xv = randn(rng, [2, 5, 5, 3]);
    const wv = randn(rng, [3, 3, 3, 2]);
    const tv = randn(rng, [5, 4]);
    const x = xv.dataSync().slice();
    const w = wv.dataSync().slice();
    const t = tv.dataSync().slice();
    tf.dispose([xv, wv, tv]);
    const f = () => {
      const ids = tf.tensor1d([4, 0, 4], 'int32');
      const [gw] = tf.grads((ww: tf.Tensor) => tf.sum(tf.square(tf.conv2d(tf.tensor4d(x, [2, 5, 5, 3]), ww as tf.Tensor4D, 1, 'same'))))([tf.tensor4d(w, [3, 3, 3, 2])]);
      const [gt] = tf.grads((tt: tf.Tensor) => tf.sum(tf.square(tf.gather(tt, ids))))([tf.tensor2d(t, [5, 4])]);
      return [gw, gt];
    };
    const ref = await runOn('cpu', f);
    const got = await runOn('wasm', f);
    got.forEach((g, i) => expectAllClose(g, ref[i], `fallback grad ${i}`, 1e-4, 1e-4));
  });
});
