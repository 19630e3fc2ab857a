/**
 * The project's wasm kernels on tensors that sit above 2 GiB of the heap. tfjs-backend-wasm
 * grows its heap to 4 GiB and stores byte offsets unsigned; GatherV2 and Tile once turned
 * them into element offsets with a signed shift (`>> 2`), which is negative past 2 GiB, and
 * their copyWithin then wrote from the heap's end: stage 2 at 8 prompts a step (a 2.1 GiB
 * peak) collapsed to format rate 0 in two steps, with no error. Own file: the heap never
 * shrinks, so the process that ran this keeps its 2 GiB.
 */
import * as tf from '@tensorflow/tfjs-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { offsetOf, type WasmBackend } from '../../src/accel/wasm-backend';
import { startWasm } from './accel-testutil';

const TWO_GIB = 2 ** 31;
let filler: tf.Tensor;

beforeAll(async () => {
  await startWasm();
  // everything allocated after this lies above it
  filler = tf.zeros([TWO_GIB / 4 + (16 << 20)], 'int32');
});
afterAll(() => filler.dispose());

/** A tensor's byte offset in the wasm heap. */
const offset = (t: tf.Tensor) => offsetOf(tf.backend() as unknown as WasmBackend, t);

describe('wasm kernels above 2 GiB of heap', () => {
  it('GatherV2 copies the rows it names', () => {
    const x = tf.tensor2d(Array.from({ length: 4 * 20 }, (_, i) => i), [4, 20]); // rows of 20: block copies
    const idx = tf.tensor1d([3, 0, 3], 'int32');
    expect(offset(x)).toBeGreaterThan(TWO_GIB);
    const y = tf.gather(x, idx);
    const rows = x.arraySync();
    expect(y.arraySync()).toEqual([rows[3], rows[0], rows[3]]);
    tf.dispose([x, idx, y]);
  });

  it('Tile repeats its input', () => {
    const x = tf.tensor2d([[1, 2, 3], [4, 5, 6]]);
    expect(offset(x)).toBeGreaterThan(TWO_GIB);
    const y = tf.tile(x, [2, 6]); // copies of x's rows of 3: the element-by-element path
    const row = (r: number[]) => Array.from({ length: 6 }, () => r).flat();
    expect(y.arraySync()).toEqual([row([1, 2, 3]), row([4, 5, 6]), row([1, 2, 3]), row([4, 5, 6])]);
    tf.dispose([x, y]);
  });
});
