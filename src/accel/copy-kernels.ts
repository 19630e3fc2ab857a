/**
 * GatherV2 and Tile for the wasm backend as block copies on the heap, replacing
 * tfjs-backend-wasm 4.22's kernels/GatherV2.ts and Tile.ts for 4-byte dtypes. The
 * stock kernels walk the output one element at a time through generic strides: an
 * embedding lookup of 1792 rows of 128 floats took 13 ms, as long as four of a
 * stage-0b step's largest matmuls, and each `tf.broadcastTo` (Tile) in SAM 12 ms.
 * Here every output row of the innermost dim is one copyWithin (a plain loop when
 * rows are short). Gather's indices are checked first, with the stock kernel's
 * message, before anything is written.
 */
import * as tf from '@tensorflow/tfjs-core';
import { heapBuffer, offsetOf, type KernelArgs } from './wasm-backend';

/** Rows shorter than this are copied element by element (copyWithin's call costs more). */
const BLOCK_COPY_MIN = 16;

/** Copies `n` 4-byte elements from src to dst within the heap view. */
function copyRow(heap: Int32Array, dst: number, src: number, n: number): void {
  if (n >= BLOCK_COPY_MIN) heap.copyWithin(dst, src, src + n);
  else for (let k = 0; k < n; k++) heap[dst + k] = heap[src + k]!;
}

/** GatherV2 kernel (batchDims 0): x viewed as [outer, dim, inner] around the axis. */
export function makeGather(stock: tf.KernelFunc) {
  return (args: KernelArgs): tf.TensorInfo => {
    const { x, indices } = args.inputs;
    const { axis, batchDims } = (args.attrs ?? {}) as { axis: number; batchDims: number };
    if (batchDims !== 0 || (x.dtype !== 'float32' && x.dtype !== 'int32') || indices.dtype !== 'int32') return stock(args as never) as tf.TensorInfo;
    const backend = args.backend;
    const ax = tf.util.parseAxisParam(axis, x.shape)[0];
    const dim = x.shape[ax];
    const outer = tf.util.sizeFromShape(x.shape.slice(0, ax));
    const inner = tf.util.sizeFromShape(x.shape.slice(ax + 1));
    const idx = backend.typedArrayFromHeap(indices) as Int32Array;
    for (let i = 0; i < idx.length; i++) {
      if (!(idx[i] >= 0 && idx[i] < dim)) throw new Error(`GatherV2: the index value ${idx[i]} is not in [0, ${dim - 1}]`);
    }
    const n = idx.length;
    const picked = idx.slice(); // the heap may move when the output is allocated
    const out = backend.makeOutput([...x.shape.slice(0, ax), ...indices.shape, ...x.shape.slice(ax + 1)], x.dtype);
    if (outer * n * inner === 0) return out;
    const heap = new Int32Array(heapBuffer(backend)); // 4-byte elements: float32 moved as bits
    // element offsets by division: the heap grows to 4 GiB, and `>> 2` is negative past 2 GiB
    const xBase = offsetOf(backend, x) / 4;
    const outBase = offsetOf(backend, out) / 4;
    for (let o = 0; o < outer; o++) {
      for (let j = 0; j < n; j++) {
        const src = xBase + (o * dim + picked[j]) * inner;
        const dst = outBase + (o * n + j) * inner;
        copyRow(heap, dst, src, inner);
      }
    }
    return out;
  };
}

/** Tile kernel: output row (all dims but the last) r reads x's row at each index mod x's size, `reps` times over. */
export function makeTile(stock: tf.KernelFunc) {
  return (args: KernelArgs): tf.TensorInfo => {
    const { x } = args.inputs;
    const { reps } = (args.attrs ?? {}) as { reps: number[] };
    const rank = x.shape.length;
    if (rank === 0 || (x.dtype !== 'float32' && x.dtype !== 'int32')) return stock(args as never) as tf.TensorInfo;
    const backend = args.backend;
    const outShape = x.shape.map((s, d) => s * reps[d]!);
    const out = backend.makeOutput(outShape, x.dtype);
    if (tf.util.sizeFromShape(outShape) === 0) return out;
    const heap = new Int32Array(heapBuffer(backend));
    const xBase = offsetOf(backend, x) / 4;
    const outBase = offsetOf(backend, out) / 4;
    const xStride = tf.util.computeStrides(x.shape);
    const last = x.shape[rank - 1]!;
    const lastReps = reps[rank - 1]!;
    const rows = tf.util.sizeFromShape(outShape.slice(0, -1));
    const at = new Array<number>(rank - 1).fill(0); // the output row's multi-index
    let src = xBase; // x's row for it
    let dst = outBase;
    for (let r = 0; r < rows; r++) {
      for (let k = 0; k < lastReps; k++, dst += last) copyRow(heap, dst, src, last);
      // next output row: odometer over the leading dims, x's offset following index mod size
      for (let d = rank - 2; d >= 0; d--) {
        at[d]!++;
        src += at[d]! % x.shape[d]! === 0 ? -(x.shape[d]! - 1) * xStride[d]! : xStride[d]!;
        if (at[d]! < outShape[d]!) break;
        at[d] = 0;
      }
    }
    return out;
  };
}
