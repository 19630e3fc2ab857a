/**
 * The addon on its own (known-answer gemm / sum / binary / softmax on a plain
 * ArrayBuffer, bounds checks), the broadcast collapsing that feeds it, and the build
 * script's "no OpenBLAS" path: one line, exit 0.
 */
import { spawnSync } from 'node:child_process';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { loadNative, type NativeAddon } from '../../src/accel';
import { collapseBroadcast, transposePlan } from '../../src/accel/elementwise';
import { projectRoot } from '../../src/util/paths';

const load = loadNative();
const addon = load.ok ? load.addon : (null as unknown as NativeAddon);

/** A heap with float arrays placed at the given float offsets. */
function heap(floats: number, put: Array<[number, number[]]>): { buf: ArrayBuffer; f: Float32Array } {
  const buf = new ArrayBuffer(floats * 4);
  const f = new Float32Array(buf);
  for (const [at, vals] of put) f.set(vals, at);
  return { buf, f };
}

describe('collapseBroadcast', () => {
  it('merges dims both operands walk alike and drops size-1 output dims', () => {
    expect(collapseBroadcast([2, 3, 4], [2, 3, 4], [2, 3, 4])).toEqual({ shape: [24], sa: [1], sb: [1] });
    expect(collapseBroadcast([2, 3, 4], [4], [2, 3, 4])).toEqual({ shape: [6, 4], sa: [4, 1], sb: [0, 1] });
    expect(collapseBroadcast([2, 3, 4], [3, 1], [2, 3, 4])).toEqual({ shape: [2, 3, 4], sa: [12, 4, 1], sb: [0, 1, 0] });
    expect(collapseBroadcast([], [5], [5])).toEqual({ shape: [5], sa: [0], sb: [1] });
    expect(collapseBroadcast([1, 1], [1], [1, 1])).toEqual({ shape: [1], sa: [0], sb: [0] });
  });
});

describe('transposePlan', () => {
  it('turns a permutation into x strides per output dim, merging and dropping dims', () => {
    expect(transposePlan([2, 5, 3, 4], [0, 2, 1, 3])).toEqual({ shape: [2, 3, 5, 4], stride: [60, 4, 12, 1] });
    expect(transposePlan([2, 3, 4], [0, 1, 2])).toEqual({ shape: [24], stride: [1] });
    expect(transposePlan([2, 3, 4], [2, 0, 1])).toEqual({ shape: [4, 6], stride: [1, 4] });
    expect(transposePlan([1, 6, 1, 7], [0, 2, 1, 3])).toEqual({ shape: [42], stride: [1] });
    expect(transposePlan([1], [0])).toEqual({ shape: [1], stride: [1] });
  });
});

describe.skipIf(!load.ok)('native addon', () => {
  it('reports OpenBLAS and its threads', () => {
    const info = addon.info();
    expect(info.blas).toMatch(/OpenBLAS/);
    expect(info.poolThreads).toBeGreaterThanOrEqual(1);
  });

  it('gemm: a hand-computed product, transposed operands, broadcast batch and accumulate', () => {
    // A = [[1,2,3],[4,5,6]] at float 0, B = [[1,0],[0,1],[1,1]] at float 8, C at float 16
    const { buf, f } = heap(64, [[0, [1, 2, 3, 4, 5, 6]], [8, [1, 0, 0, 1, 1, 1]]]);
    addon.gemm(buf, new Float64Array([0, 32, 64, 2, 2, 3, 0, 0, 0, 0]));
    expect(Array.from(f.subarray(16, 20))).toEqual([4, 5, 10, 11]);
    // A^T B^T with A stored [3, 2] = A above read transposed: (A^T)^T (B^T) -> use B as [2,3] read transposed
    addon.gemm(buf, new Float64Array([0, 32, 64, 3, 3, 2, 1, 1, 0, 0]));
    // op(A) = [[1,4],[2,5],[3,6]] (A read as [2,3] transposed); op(B) = B read as [3,2] transposed = [[1,0,1],[0,1,1]]
    expect(Array.from(f.subarray(16, 25))).toEqual([1, 4, 5, 2, 5, 7, 3, 6, 9]);
    // accumulate (beta = 1): C += A B
    f.fill(0, 16);
    addon.gemm(buf, new Float64Array([0, 32, 64, 2, 2, 3, 0, 0, 1, 0]));
    addon.gemm(buf, new Float64Array([0, 32, 64, 2, 2, 3, 0, 0, 1, 0]));
    expect(Array.from(f.subarray(16, 20))).toEqual([8, 10, 20, 22]);
    // batch of 2 with B broadcast (stride 0): both batches equal A B
    f.set([1, 2, 3, 4, 5, 6], 40);
    addon.gemm(buf, new Float64Array([0, 32, 112, 2, 2, 3, 0, 0, 0, 1, 2, 0, 0]));
    expect(Array.from(f.subarray(28, 36))).toEqual([4, 5, 10, 11, 4, 5, 10, 11]);
  });

  it('sum / mean over the middle axis of [pre, red, post]', () => {
    const { buf, f } = heap(32, [[0, [1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12]]]);
    addon.sum(buf, 0, 64, 2, 3, 2, 0); // x [2, 3, 2] -> [2, 2]
    expect(Array.from(f.subarray(16, 20))).toEqual([9, 12, 27, 30]);
    addon.sum(buf, 0, 64, 1, 12, 1, 1); // mean of all
    expect(f[16]).toBe(6.5);
  });

  it('binary ops with a broadcast row, and softmax rows', () => {
    const { buf, f } = heap(32, [[0, [1, 2, 3, 4, 5, 6]], [8, [10, 20, 30]]]);
    addon.binary(buf, new Float64Array([0, 32, 64, 0, 2, 2, 3, 3, 1, 0, 1])); // [2,3] + [3]
    expect(Array.from(f.subarray(16, 22))).toEqual([11, 22, 33, 14, 25, 36]);
    addon.binary(buf, new Float64Array([0, 32, 64, 3, 1, 6, 1, 0])); // [6] / scalar 10
    expect(Array.from(f.subarray(16, 22))).toEqual([0.1, 0.2, 0.3, 0.4, 0.5, 0.6].map(Math.fround));
    addon.softmax(buf, 0, 64, 2, 3);
    const e = [Math.exp(-2), Math.exp(-1), 1];
    const s = e[0] + e[1] + e[2];
    for (let i = 0; i < 6; i++) expect(f[16 + i]).toBeCloseTo(e[i % 3] / s, 6);
  });

  it('refuses operands outside the heap and malformed descriptors, naming the function', () => {
    const buf = new ArrayBuffer(64);
    expect(() => addon.gemm(buf, new Float64Array([0, 0, 0, 8, 8, 8, 0, 0, 0, 0]))).toThrow(/gemm: an operand lies outside the wasm heap/);
    expect(() => addon.gemm(buf, new Float64Array([0, 0]))).toThrow(/gemm: argument 1 must be a Float64Array descriptor/);
    expect(() => addon.gemm(new Uint8Array(4) as unknown as ArrayBuffer, new Float64Array(10))).toThrow(/argument 0 must be the wasm heap/);
    expect(() => addon.sum(buf, 0, 0, 4, 4, 4, 0)).toThrow(/sum: an operand lies outside/);
    expect(() => addon.binary(buf, new Float64Array([0, 0, 0, 9, 1, 4, 1, 1]))).toThrow(/binary: unknown op code/);
    expect(() => addon.softmax(buf, 0, 0, 100, 100)).toThrow(/softmax: an operand lies outside/);
  });
});

describe('scripts/build-native.mjs', () => {
  it('without OpenBLAS prints one line naming the fix and exits 0', () => {
    const r = spawnSync(process.execPath, [join(projectRoot(), 'scripts', 'build-native.mjs')], {
      env: { ...process.env, LENS_NATIVE_PRETEND_NO_BLAS: '1' },
      encoding: 'utf8',
    });
    expect(r.status).toBe(0);
    const lines = r.stdout.trim().split('\n');
    expect(lines).toHaveLength(1);
    expect(lines[0]).toMatch(/^\[lens\] native kernels not built \(OpenBLAS library \(-lopenblas\) not found\).*apt-get install libopenblas-dev.*npm run build:native/);
  });

  it('with LENS_NATIVE_STRICT=1 the same failure exits 1 (for CI of the addon itself)', () => {
    const r = spawnSync(process.execPath, [join(projectRoot(), 'scripts', 'build-native.mjs')], {
      env: { ...process.env, LENS_NATIVE_SKIP: '1', LENS_NATIVE_STRICT: '1' },
      encoding: 'utf8',
    });
    expect(r.status).toBe(1);
    expect(r.stdout).toMatch(/LENS_NATIVE_SKIP=1/);
  });
});
