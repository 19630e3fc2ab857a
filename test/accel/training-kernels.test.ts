/**
 * The kernels tfjs-backend-wasm 4.22 lacks (Conv2DBackpropFilter, UnsortedSegmentSum,
 * Einsum) against the cpu backend: the weight gradients of conv2d / conv1d /
 * conv2dTranspose and of an embedding gather train on wasm, with the native sgemm and
 * with the JavaScript fallback used when the addon is absent.
 */
import * as tf from '@tensorflow/tfjs-core';
import { beforeAll, describe, expect, it } from 'vitest';
import { loadNative } from '../../src/accel';
import { makeConv2DBackpropFilter, makeUnsortedSegmentSum } from '../../src/accel/training-kernels';
import type { KernelArgs, WasmBackend } from '../../src/accel/wasm-backend';
import { Rng } from '../../src/random';
import { expectAllClose, HAVE_NATIVE, runOn, startWasm } from './accel-testutil';

beforeAll(startWasm);

/** The filter-gradient kernel directly (tfjs-core has no public op for it). */
function backpropFilter(x: tf.Tensor, dy: tf.Tensor, filterShape: number[], strides: number, pad: string, dataFormat = 'NHWC'): tf.Tensor {
  return tf.engine().runKernel('Conv2DBackpropFilter', { x, dy }, { strides, pad, dataFormat, filterShape } as unknown as tf.NamedAttrMap) as tf.Tensor;
}

function host(rng: Rng, shape: number[]): () => tf.Tensor {
  const n = shape.reduce((p, d) => p * d, 1);
  const v = new Float32Array(n);
  for (let i = 0; i < n; i++) v[i] = rng.normal(0, 1);
  return () => tf.tensor(v, shape);
}

async function wasmVsCpu(label: string, f: () => tf.Tensor | tf.Tensor[], tol = 1e-4): Promise<void> {
  const ref = await runOn('cpu', f);
  const got = await runOn('wasm', f);
  expect(got.length).toBe(ref.length);
  got.forEach((g, i) => expectAllClose(g, ref[i], `${label} output ${i}`, tol, tol));
}

describe('kernels the wasm backend lacks', () => {
  it('are registered for wasm', () => {
    for (const k of ['Conv2DBackpropFilter', 'UnsortedSegmentSum', 'Einsum']) expect(tf.getKernel(k, 'wasm'), k).toBeDefined();
  });

  it('conv2d weight gradient: NHWC, strides, same / valid / explicit padding', async () => {
    const rng = new Rng(1);
    const cases: Array<{ x: number[]; f: number[]; s: [number, number]; pad: 'same' | 'valid' | [[number, number], [number, number], [number, number], [number, number]] }> = [
      { x: [2, 7, 6, 3], f: [3, 3, 3, 4], s: [1, 1], pad: 'same' },
      { x: [2, 9, 8, 2], f: [3, 2, 2, 5], s: [2, 3], pad: 'valid' },
      { x: [1, 8, 8, 3], f: [4, 4, 3, 2], s: [4, 4], pad: 'valid' }, // patch embedding
      { x: [3, 5, 5, 1], f: [2, 3, 1, 3], s: [1, 2], pad: [[0, 0], [1, 0], [2, 1], [0, 0]] },
      { x: [2, 6, 6, 2], f: [3, 3, 2, 16], s: [1, 1], pad: 'same' }, // 16 output channels: the small-N kernel, accumulating
    ];
    for (const c of cases) {
      const x = host(rng, c.x);
      const w = host(rng, c.f);
      const loss = (xx: tf.Tensor, ww: tf.Tensor) => tf.sum(tf.square(tf.conv2d(xx as tf.Tensor4D, ww as tf.Tensor4D, c.s, c.pad)));
      await wasmVsCpu(`conv2d grads x[${c.x}] f[${c.f}] s${c.s} ${JSON.stringify(c.pad)}`, () => tf.grads(loss)([x(), w()]));
    }
  });

  it('conv2d weight gradient in NCHW', async () => {
    const rng = new Rng(2);
    const x = host(rng, [2, 3, 6, 5]);
    const dy = host(rng, [2, 4, 6, 5]);
    const f = () => backpropFilter(x(), dy(), [3, 3, 3, 4], 1, 'same', 'NCHW');
    // the cpu backend's own NCHW path is the reference
    await wasmVsCpu('conv2DBackpropFilter NCHW', f);
  });

  it('conv1d and conv2dTranspose weights train on wasm', async () => {
    const rng = new Rng(3);
    const x1 = host(rng, [2, 11, 3]);
    const w1 = host(rng, [3, 3, 4]);
    await wasmVsCpu('conv1d grads', () => tf.grads((a: tf.Tensor, b: tf.Tensor) => tf.sum(tf.square(tf.conv1d(a as tf.Tensor3D, b as tf.Tensor3D, 2, 'same'))))([x1(), w1()]));
    const x2 = host(rng, [2, 4, 4, 3]);
    const w2 = host(rng, [2, 2, 5, 3]); // [fh, fw, outC, inC]
    await wasmVsCpu('conv2dTranspose grads', () =>
      tf.grads((a: tf.Tensor, b: tf.Tensor) => tf.sum(tf.square(tf.conv2dTranspose(a as tf.Tensor4D, b as tf.Tensor4D, [2, 8, 8, 5], 2, 'same'))))([x2(), w2()]),
    );
  });

  it('the filter gradient falls back to JavaScript without the addon, same values', async () => {
    const rng = new Rng(4);
    const x = host(rng, [2, 6, 5, 3]);
    const dy = host(rng, [2, 3, 3, 4]);
    const attrs = { strides: [2, 2], pad: 'same', dataFormat: 'NHWC', dimRoundingMode: undefined, filterShape: [3, 3, 3, 4] };
    const ref = await runOn('cpu', () => backpropFilter(x(), dy(), [3, 3, 3, 4], 2, 'same'));
    const backend = tf.backend() as unknown as WasmBackend;
    const load = loadNative();
    for (const addon of load.ok ? [null, load.addon] : [null]) {
      const xs = x();
      const dys = dy();
      const out = makeConv2DBackpropFilter(addon)({ inputs: { x: xs, dy: dys }, backend, attrs: attrs as unknown as KernelArgs['attrs'] });
      const vals = (backend.typedArrayFromHeap(out) as Float32Array).slice();
      backend.disposeData(out.dataId);
      tf.dispose([xs, dys]);
      expectAllClose(vals, ref[0], `filter gradient, ${addon ? 'native' : 'JavaScript'} path`, 1e-4, 1e-4);
    }
  });

  it('embedding (gather) gradient: unsortedSegmentSum sums repeated ids and drops out-of-range ones', async () => {
    const rng = new Rng(5);
    const table = host(rng, [6, 4]);
    const ids = () => tf.tensor2d([[0, 2, 2], [5, 0, 1]], [2, 3], 'int32');
    await wasmVsCpu('gather grad', () => tf.grads((t: tf.Tensor) => tf.sum(tf.square(tf.gather(t, ids()))))([table()]));
    const seg = await runOn('wasm', () => tf.unsortedSegmentSum(tf.tensor([[1, 2], [3, 4], [5, 6], [7, 8]]), tf.tensor1d([2, 0, 2, 7], 'int32'), 3));
    expect(Array.from(seg[0])).toEqual([3, 4, 0, 0, 6, 8]); // id 7 is outside [0, 3): dropped
    // the kernel on its own, int32 values and rank-2 ids
    const backend = tf.backend() as unknown as WasmBackend;
    const x = tf.tensor3d([1, 2, 3, 4, 5, 6, 7, 8], [2, 2, 2], 'int32');
    const s = tf.tensor2d([1, 1, 0, -1], [2, 2], 'int32');
    const out = makeUnsortedSegmentSum(null)({ inputs: { x, segmentIds: s }, backend, attrs: { numSegments: 2 } });
    expect(out.dtype).toBe('int32');
    expect(out.shape).toEqual([2, 2]);
    expect(Array.from(backend.typedArrayFromHeap(out))).toEqual([5, 6, 4, 6]);
    backend.disposeData(out.dataId);
    tf.dispose([x, s]);
  });

  it('unsortedSegmentSum names the bad shape', async () => {
    await expect(runOn('wasm', () => tf.unsortedSegmentSum(tf.ones([4, 2]), tf.tensor1d([0, 1, 0], 'int32'), 2))).rejects.toThrow();
  });

  it('einsum: matmul, batched, outer, trace-free reductions and transposes match cpu', async () => {
    const rng = new Rng(6);
    const a = host(rng, [3, 4]);
    const b = host(rng, [4, 5]);
    const c = host(rng, [2, 3, 4]);
    const d = host(rng, [2, 4, 5]);
    const v = host(rng, [4]);
    const eqs: Array<[string, () => tf.Tensor[]]> = [
      ['ij,jk->ik', () => [a(), b()]],
      ['bij,bjk->bik', () => [c(), d()]],
      ['i,j->ij', () => [v(), v()]],
      ['ij->ji', () => [a()]],
      ['ij->i', () => [a()]],
      ['ij,j->i', () => [a(), v()]],
      ['ij->ij', () => [a()]],
    ];
    for (const [eq, args] of eqs) await wasmVsCpu(`einsum ${eq}`, () => tf.einsum(eq, ...args()));
    // a result that is an untouched operand must still be a tensor of its own
    const x = tf.tensor([1, 2, 3, 4], [2, 2]);
    const y = tf.einsum('ij->ij', x);
    x.dispose();
    expect(Array.from(y.dataSync())).toEqual([1, 2, 3, 4]);
    y.dispose();
  });

  it.skipIf(!HAVE_NATIVE)('conv2d training leaves no tensors behind on wasm', async () => {
    const rng = new Rng(7);
    const w = tf.variable(host(rng, [3, 3, 2, 4])());
    const x = host(rng, [2, 6, 6, 2])();
    const step = () => {
      const { value, grads } = tf.variableGrads(() => tf.mean(tf.square(tf.conv2d(x as tf.Tensor4D, w as unknown as tf.Tensor4D, 1, 'same'))), [w]);
      tf.dispose([value, grads[w.name]]);
    };
    step();
    const n = tf.memory().numTensors;
    step();
    expect(tf.memory().numTensors).toBe(n);
    tf.dispose([w, x]);
  });
});
