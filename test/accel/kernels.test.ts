/**
 * The native replacement kernels against the stock wasm kernels they replace:
 * forward values and gradients all-close on random shapes with transposes, batch
 * broadcasting, ranks 2-4 and odd sizes; tensor bookkeeping unchanged.
 */
import * as tf from '@tensorflow/tfjs-core';
import { beforeAll, describe, expect, it } from 'vitest';
import { wasmAccelStatus } from '../../src/accel';
import { Attention, TransformerBlock } from '../../src/model/nn';
import { Rng } from '../../src/random';
import { expectAllClose, HAVE_NATIVE, randn, runOn, runWith, startWasm } from './accel-testutil';

beforeAll(startWasm);

/** f under stock and native kernels, all-close per output. */
function sameAsStock(label: string, f: () => tf.Tensor | tf.Tensor[], rtol = 2e-5, atol = 2e-5): void {
  const stock = runWith(false, f);
  const accel = runWith(true, f);
  expect(accel.length).toBe(stock.length);
  accel.forEach((a, i) => expectAllClose(a, stock[i], `${label} output ${i}`, rtol, atol));
}

/**
 * f under the native kernels vs the cpu backend: the reference where the stock wasm
 * kernel itself is wrong (its BatchMatMul mis-shapes [2,1,..] x [3,..] broadcasting and
 * its _FusedMatMul with a bias gives wrong rows for batch > 1, both fixed here).
 */
async function sameAsCpu(label: string, f: () => tf.Tensor | tf.Tensor[], rtol = 2e-5, atol = 2e-5): Promise<void> {
  const ref = await runOn('cpu', f);
  const accel = runWith(true, f);
  accel.forEach((a, i) => expectAllClose(a, ref[i], `${label} output ${i} vs cpu`, rtol, atol));
}

/** A host-side random tensor factory: values fixed, tensor made on the active backend. */
function hostRandn(rng: Rng, shape: number[]): () => tf.Tensor {
  const n = shape.reduce((p, d) => p * d, 1);
  const v = new Float32Array(n);
  for (let i = 0; i < n; i++) v[i] = rng.normal(0, 1);
  return () => tf.tensor(v, shape);
}

describe.skipIf(!HAVE_NATIVE)('native kernels vs stock wasm kernels', () => {
  it('registers the replacements and reports the native sgemm', () => {
    const s = wasmAccelStatus();
    expect(s?.native).toBe(true);
    expect(s?.detail).toMatch(/^native sgemm: OpenBLAS/);
    expect(s?.replaced).toEqual(expect.arrayContaining(['BatchMatMul', '_FusedMatMul', 'Sum', 'Mean', 'Softmax', 'Sigmoid', 'Exp', 'GatherV2', 'Tile', 'Conv2DBackpropInput', 'Add', 'Multiply', 'Identity', 'Cast']));
  });

  it('matMul: every transpose combination, ranks 2-4, odd sizes, batch broadcasting', async () => {
    const rng = new Rng(1);
    const cases: Array<[number[], number[]]> = [
      [[5, 7], [7, 3]], // rank 2
      [[1, 1], [1, 1]],
      [[17, 33], [33, 9]],
      [[3, 5, 7], [3, 7, 4]], // batched
      [[2, 3, 5, 7], [3, 7, 4]], // broadcast b over a's leading dim
      [[4, 6, 11], [11, 2]], // rank 3 x rank 2: the "tall gemm" path
      [[1, 6, 11], [5, 11, 2]], // a broadcast over b's batch
      [[128, 256], [256, 96]], // big enough to be split into row blocks across threads
      [[8, 64, 48], [8, 48, 64]], // batches spread over threads; N = 64: the small-N micro-kernel
      [[3, 23, 45], [3, 45, 32]], // N = 32 (attention head size), rows not a multiple of 6
      [[2, 7, 5], [2, 5, 16]], // N = 16
      [[2, 4, 1, 32], [2, 4, 32, 37]], // one decoded token per head: the plain-loop path (M <= 4), k a multiple of 8
      [[3, 3, 13], [3, 13, 5]], // M = 3, k with a tail
      [[4, 19], [19, 9]], // M = 4, rank 2
    ];
    const swap = (s: number[], t: boolean) => (t ? [...s.slice(0, -2), s[s.length - 1], s[s.length - 2]] : s);
    for (const [sa, sb] of cases) {
      for (const [ta, tb] of [[false, false], [true, false], [false, true], [true, true]] as const) {
        const a = hostRandn(rng, swap(sa, ta));
        const b = hostRandn(rng, swap(sb, tb));
        const f = () => tf.matMul(a(), b(), ta, tb);
        await sameAsCpu(`matMul [${sa}]x[${sb}] tA=${ta} tB=${tb}`, f);
        // the stock kernel is right whenever the batch dims are equal or one side has none
        if (sa.length === 2 || sb.length === 2 || sa.slice(0, -2).join() === sb.slice(0, -2).join()) {
          sameAsStock(`matMul [${sa}]x[${sb}] tA=${ta} tB=${tb}`, f);
        }
      }
    }
  });

  it('matMul broadcasts batch dims both ways, numpy-style (stock wasm and cpu return 60 of the 120 values)', () => {
    const rng = new Rng(11);
    const a = randn(rng, [2, 1, 5, 7]);
    const b = randn(rng, [3, 7, 4]);
    const out = runWith(true, () => tf.matMul(a, b))[0];
    expect(out.length).toBe(2 * 3 * 5 * 4);
    const ref = runWith(true, () => {
      const parts: tf.Tensor[] = [];
      for (let i = 0; i < 2; i++) for (let j = 0; j < 3; j++) parts.push(tf.matMul(tf.reshape(tf.slice(a, [i, 0, 0, 0], [1, 1, 5, 7]), [5, 7]), tf.reshape(tf.slice(b, [j, 0, 0], [1, 7, 4]), [7, 4])));
      return tf.stack(parts);
    })[0];
    expectAllClose(out, ref, 'broadcast both ways');
    tf.dispose([a, b]);
  });

  it('matMul with a zero-size inner dimension gives zeros, as stock', () => {
    const a = tf.zeros([3, 0]);
    const b = tf.zeros([0, 4]);
    const out = runWith(true, () => tf.matMul(a, b))[0];
    expect(Array.from(out)).toEqual(new Array(12).fill(0));
    tf.dispose([a, b]);
  });

  it('matMul with mismatched inner sizes throws the stock message', () => {
    const a = tf.ones([2, 3]);
    const b = tf.ones([4, 2]);
    expect(() => runWith(true, () => tf.matMul(a, b))).toThrow(/inner shapes \(3\) and \(4\)/);
    tf.dispose([a, b]);
  });

  it('fused matMul: bias broadcast and each activation', async () => {
    const rng = new Rng(2);
    const a = hostRandn(rng, [2, 5, 6]);
    const b = hostRandn(rng, [2, 6, 3]);
    const bias = hostRandn(rng, [3]);
    const bias2 = hostRandn(rng, [5, 1]);
    const alpha = hostRandn(rng, [3]);
    for (const activation of ['linear', 'relu', 'relu6', 'elu', 'sigmoid', 'leakyrelu', 'prelu'] as const) {
      await sameAsCpu(`fused ${activation}`, () =>
        tf.fused.matMul({ a: a(), b: b(), bias: bias(), activation, preluActivationWeights: activation === 'prelu' ? alpha() : undefined, leakyreluAlpha: 0.1 }),
      );
    }
    await sameAsCpu('fused, bias broadcast over rows', () => tf.fused.matMul({ a: a(), b: b(), bias: bias2(), activation: 'relu' }));
    await sameAsCpu('fused, no bias, transposed', () => tf.fused.matMul({ a: a(), b: a(), transposeB: true }));
  });

  it('sum and mean over contiguous, non-contiguous, empty and all axes, with keepDims', () => {
    const rng = new Rng(3);
    const x = randn(rng, [3, 4, 5, 6]);
    const axesList: Array<number | number[] | undefined> = [0, 1, 3, -1, [0, 1], [1, 2], [2, 3], [0, 2], [1, 3], [0, 1, 2, 3], [], undefined];
    for (const axis of axesList) {
      for (const keep of [false, true]) {
        sameAsStock(`sum axis=${JSON.stringify(axis)} keep=${keep}`, () => tf.sum(x, axis, keep));
        sameAsStock(`mean axis=${JSON.stringify(axis)} keep=${keep}`, () => tf.mean(x, axis, keep));
      }
    }
    const big = randn(rng, [4000, 70]); // leading-axis reduction split over threads (> 0.25M floats)
    sameAsStock('sum of a tall matrix over axis 0', () => tf.sum(big, 0), 1e-4, 1e-4);
    sameAsStock('mean of a tall matrix over axis 0', () => tf.mean(big, 0), 1e-4, 1e-4);
    const ints = tf.tensor([1, 2, 3, 4], [2, 2], 'int32'); // int32 stays on the stock kernel
    sameAsStock('int32 sum', () => tf.sum(ints, 0));
    tf.dispose([x, big, ints]);
  });

  it('sum of a hand-computed example', () => {
    const x = tf.tensor([1, 2, 3, 4, 5, 6], [2, 3]);
    expect(Array.from(runWith(true, () => tf.sum(x, 0))[0])).toEqual([5, 7, 9]);
    expect(Array.from(runWith(true, () => tf.mean(x, 1))[0])).toEqual([2, 5]);
    x.dispose();
  });

  it('binary ops: bit-identical to stock under every broadcast pattern', () => {
    const rng = new Rng(4);
    const pairs: Array<[number[], number[]]> = [
      [[7], [7]],
      [[3, 4, 5], []],
      [[], [3, 4, 5]],
      [[3, 4, 5], [5]],
      [[3, 4, 5], [4, 1]],
      [[3, 1, 5], [1, 4, 1]],
      [[2, 3, 4, 5], [3, 1, 5]],
      [[1, 1, 1], [2, 1, 3]],
      [[0, 3], [3]],
    ];
    const ops: Array<[string, (a: tf.Tensor, b: tf.Tensor) => tf.Tensor]> = [
      ['add', tf.add],
      ['sub', tf.sub],
      ['mul', tf.mul],
      ['div', tf.div],
      ['squaredDifference', tf.squaredDifference],
    ];
    for (const [sa, sb] of pairs) {
      const a = randn(rng, sa);
      const b = randn(rng, sb);
      for (const [name, op] of ops) sameAsStock(`${name} [${sa}] [${sb}]`, () => op(a, b), 0, 0);
      tf.dispose([a, b]);
    }
  });

  it('binary ops on long rows split across threads stay bit-identical', () => {
    // > 0.25M floats: the threaded path (values made on the backend: 0.5M JS normals would dominate the test)
    const wave = (shape: number[], k: number) => tf.tidy(() => tf.reshape(tf.sin(tf.mul(tf.range(0, shape.reduce((p, d) => p * d, 1)), k)), shape));
    const a = wave([2, 140001], 0.37);
    const b = wave([2, 140001], 1.13);
    const c = wave([140001], 0.71);
    sameAsStock('mul long rows', () => tf.mul(a, b), 0, 0);
    sameAsStock('sub long row broadcast', () => tf.sub(a, c), 0, 0);
    tf.dispose([a, b, c]);
  });

  it('sigmoid, including saturated and NaN inputs', () => {
    const rng = new Rng(13);
    const x = tf.mul(randn(rng, [5, 20001]), 10);
    sameAsStock('sigmoid', () => tf.sigmoid(x), 1e-6, 1e-7);
    const edge = tf.tensor([-1000, -90, -88, 0, 88, 90, 1000, NaN]);
    const out = runWith(true, () => tf.sigmoid(edge))[0];
    expectAllClose(out.subarray(0, 7), [0, 0, 0, 0.5, 1, 1, 1], 'sigmoid ends', 0, 1e-30);
    expect(Number.isNaN(out[7])).toBe(true);
    tf.dispose([x, edge]);
  });

  it('exp, including saturated and NaN inputs', () => {
    const rng = new Rng(14);
    const x = tf.mul(randn(rng, [3, 10007]), 8);
    sameAsStock('exp', () => tf.exp(x), 1e-6, 0);
    // below -87.3 the result flushes to 0 (stock: subnormals down to 1e-45), as a softmax wants
    const edge = tf.tensor([-1000, -88, -87, 0, 1, 88, NaN]);
    const out = runWith(true, () => tf.exp(edge))[0];
    expectAllClose(out.subarray(0, 6), [0, 0, Math.exp(-87), 1, Math.E, Math.exp(88)], 'exp ends', 1e-6, 0);
    expect(Number.isNaN(out[6])).toBe(true);
    tf.dispose([x, edge]);
  });

  it('gather: every axis, short and long rows, int32 values, the same as stock to the bit', () => {
    const rng = new Rng(15);
    const x = randn(rng, [4, 6, 40]);
    const xi = tf.cast(tf.mul(x, 100), 'int32');
    const idx = tf.tensor1d([5, 0, 5, 2], 'int32');
    const idx2 = tf.tensor2d([[1, 3], [0, 0], [3, 1]], [3, 2], 'int32');
    sameAsStock('gather axis 0', () => tf.gather(x, tf.tensor1d([3, 1, 1], 'int32')), 0, 0);
    sameAsStock('gather axis 1', () => tf.gather(x, idx, 1), 0, 0);
    sameAsStock('gather axis 2 (short rows)', () => tf.gather(x, idx, 2), 0, 0);
    sameAsStock('gather 2-d indices', () => tf.gather(x, idx2, 0), 0, 0);
    sameAsStock('gather int32', () => tf.cast(tf.gather(xi, idx, 1), 'float32'), 0, 0);
    const shape = runWith(true, () => tf.gather(x, idx2, 1))[0];
    expect(shape.length).toBe(4 * 3 * 2 * 40);
    tf.dispose([x, xi, idx, idx2]);
  });

  it('tile and broadcastTo: every axis, short and long rows, int32, the same as stock to the bit', () => {
    const rng = new Rng(16);
    const x = randn(rng, [2, 3, 20]);
    const xi = tf.cast(tf.mul(x, 100), 'int32');
    const e = randn(rng, [1, 1, 1, 8]);
    for (const reps of [[1, 1, 1], [3, 1, 1], [1, 2, 1], [1, 1, 4], [2, 3, 2]]) {
      sameAsStock(`tile ${reps}`, () => tf.tile(x, reps), 0, 0);
      sameAsStock(`tile int32 ${reps}`, () => tf.cast(tf.tile(xi, reps), 'float32'), 0, 0);
    }
    sameAsStock('broadcastTo a dense prompt', () => tf.broadcastTo(e, [3, 4, 5, 8]), 0, 0);
    sameAsStock('tile rank 1', () => tf.tile(tf.tensor1d([1, 2, 3]), [4]), 0, 0);
    tf.dispose([x, xi, e]);
  });

  it('conv2d input gradient at stride 1 (a flipped-filter conv2d): same/valid/explicit pads, odd sizes; stride 2 stays stock', () => {
    const rng = new Rng(17);
    const x = randn(rng, [2, 7, 5, 3]) as tf.Tensor4D;
    for (const [k, pad] of [[3, 'same'], [3, 'valid'], [1, 'valid'], [2, 'same'], [3, [[0, 0], [1, 1], [1, 1], [0, 0]]], [3, [[0, 0], [2, 0], [0, 1], [0, 0]]]] as const) {
      const w = randn(rng, [k, k, 3, 4]) as tf.Tensor4D;
      const f = (t: tf.Tensor) => tf.sum(tf.square(tf.conv2d(t as tf.Tensor4D, w, 1, pad as never)));
      sameAsStock(`conv2d dx k${k} ${JSON.stringify(pad)}`, () => tf.grad(f)(x), 1e-5, 1e-5);
      w.dispose();
    }
    const w = randn(rng, [3, 3, 3, 4]) as tf.Tensor4D;
    sameAsStock('conv2d dx stride 2', () => tf.grad((t: tf.Tensor) => tf.sum(tf.conv2d(t as tf.Tensor4D, w, 2, 'same')))(x), 1e-5, 1e-5);
    tf.dispose([x, w]);
  });

  it('gather refuses an out-of-range index as the stock kernel does', () => {
    const x = tf.zeros([3, 20]);
    const bad = tf.tensor1d([0, 3], 'int32');
    expect(() => tf.gather(x, bad)).toThrow(/GatherV2: the index value 3 is not in \[0, 2\]/);
    tf.dispose([x, bad]);
  });

  it('transpose: head split / merge permutations, size-1 dims, int32, identity shares the buffer', () => {
    const rng = new Rng(14);
    const x = randn(rng, [2, 5, 3, 4]);
    for (const perm of [[0, 2, 1, 3], [0, 1, 3, 2], [3, 2, 1, 0], [1, 0, 2, 3], [0, 1, 2, 3]]) {
      sameAsStock(`transpose ${perm}`, () => tf.transpose(x, perm), 0, 0);
    }
    const big = randn(rng, [8, 64, 4, 160]);
    sameAsStock('transpose, threaded', () => tf.transpose(big, [0, 2, 1, 3]), 0, 0);
    big.dispose();
    const y = randn(rng, [1, 6, 1, 7]);
    sameAsStock('transpose with unit dims', () => tf.transpose(y, [2, 3, 0, 1]), 0, 0);
    const ints = tf.tensor3d(Int32Array.from({ length: 24 }, (_, i) => i), [2, 3, 4], 'int32');
    sameAsStock('transpose int32', () => tf.transpose(ints, [2, 0, 1]), 0, 0);
    const buffers = tf.memory().numDataBuffers;
    const same = tf.transpose(y, [0, 2, 1, 3]); // only unit dims move: no data movement
    expect(tf.memory().numDataBuffers).toBe(buffers);
    expect(same.shape).toEqual([1, 1, 6, 7]);
    tf.dispose([x, y, ints, same]);
  });

  it('softmax: rows with large logits and masked (-1e9) entries', () => {
    const rng = new Rng(5);
    const x = tf.mul(randn(rng, [3, 4, 37]), 20);
    sameAsStock('softmax', () => tf.softmax(x), 1e-5, 1e-6);
    const wide = randn(rng, [64, 1201]); // threaded
    sameAsStock('softmax, threaded', () => tf.softmax(wide), 1e-5, 1e-6);
    wide.dispose();
    const masked = tf.tensor([[0, -1e9, 1, -1e9, 2], [-1e9, -1e9, 5, -1e9, -1e9]]);
    const out = runWith(true, () => tf.softmax(masked))[0];
    expectAllClose(out, [0.09003057, 0, 0.24472847, 0, 0.66524096, 0, 0, 1, 0, 0], 'softmax hand-computed', 1e-5, 1e-7);
    tf.dispose([x, masked]);
  });

  it('identity and same-dtype cast share the buffer, and disposing either keeps the other', () => {
    const x = tf.tensor([1, 2, 3]);
    const before = tf.memory().numDataBuffers;
    const c = tf.clone(x);
    const k = tf.cast(x, 'float32');
    expect(tf.memory().numDataBuffers).toBe(before); // no copy was made
    x.dispose();
    expect(Array.from(c.dataSync())).toEqual([1, 2, 3]);
    c.dispose();
    expect(Array.from(k.dataSync())).toEqual([1, 2, 3]);
    const i = tf.cast(k, 'int32'); // a real conversion still converts
    expect(i.dtype).toBe('int32');
    tf.dispose([k, i]);
  });

  it('gradients of matmul / broadcasting / softmax / reductions match stock', () => {
    const rng = new Rng(6);
    const a = randn(rng, [30, 8]);
    const w = randn(rng, [8, 6]);
    const bias = randn(rng, [6]);
    const kmat = randn(rng, [2, 3, 7, 6]); // tfjs-core's matMul gradient cannot un-broadcast batch dims
    const f = (a: tf.Tensor, w: tf.Tensor, bias: tf.Tensor, k: tf.Tensor): tf.Scalar => {
      // tfjs-core's matMul gradient cannot un-broadcast batch dims: project rank-2, as nn.ts does
      const h = tf.reshape(tf.add(tf.matMul(a, w), bias), [2, 3, 5, 6]);
      const s = tf.softmax(tf.mul(tf.matMul(h, k, false, true), 0.3)); // [2, 3, 5, 7]
      const y = tf.matMul(s, k); // [2, 3, 5, 6]
      return tf.add(tf.mean(tf.square(tf.sub(y, h))), tf.sum(tf.mul(tf.sum(h, [0, 1]), 0.01)));
    };
    sameAsStock('grads', () => tf.grads(f)([a, w, bias, kmat]), 1e-4, 1e-5);
    tf.dispose([a, w, bias, kmat]);
  });

  it('softmax and sigmoid gradients run as one fused kernel each and match the stock formulas', async () => {
    const rng = new Rng(15);
    const x = randn(rng, [30, 50, 70]); // > 0.25M floats: the threaded path
    const w = randn(rng, [30, 50, 70]);
    const f = (t: tf.Tensor) => tf.sum(tf.mul(tf.add(tf.softmax(t), tf.sigmoid(t)), w));
    sameAsStock('softmax + sigmoid grads', () => tf.grad(f)(x), 1e-5, 1e-6);
    const prof = await tf.profile(() => {
      tf.grad(f)(x).dispose();
    });
    const names = prof.kernels.map((k) => k.name);
    expect(names).toContain('LensSoftmaxGrad');
    expect(names).toContain('LensSigmoidGrad');
    tf.dispose([x, w]);
  });

  it('a transformer block forward and backward match stock and leave no tensors behind', () => {
    const rng = new Rng(7);
    const block = new TransformerBlock(16, 4, 4, rng);
    const x = randn(rng, [2, 9, 16]) as tf.Tensor3D;
    const vars = block.parameters();
    const step = () => {
      const { value, grads } = tf.variableGrads(() => tf.mean(tf.square(block.apply(x))) as tf.Scalar, vars);
      return [value, ...vars.map((v) => grads[v.name])];
    };
    runWith(true, step); // warm-up (kernel setup) before counting tensors
    const n0 = tf.memory().numTensors;
    sameAsStock('transformer block value and grads', step, 1e-4, 1e-5);
    expect(tf.memory().numTensors).toBe(n0);
    const att = new Attention(16, 2, rng);
    sameAsStock('attention forward', () => att.apply(x, x, x));
    tf.dispose([x]);
    block.dispose();
    att.dispose();
  });
});
