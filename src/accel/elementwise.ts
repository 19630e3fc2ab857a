/**
 * Element-wise kernels for the wasm backend on the native addon: the broadcasting
 * binary ops (Add, Sub, Multiply, RealDiv, SquaredDifference), Sigmoid, Exp, Softmax
 * and Transpose, which dominate a training step once its matmuls are fast (bench
 * --profile). They replace tfjs-backend-wasm 4.22's kernels of the same names
 * (kernels/binary_kernel.ts, Softmax.ts) for float32 inputs, with the same numpy
 * broadcasting (tf.broadcast_util); other dtypes keep the stock kernels. The
 * arithmetic is the same IEEE float32 operation, so binary results are bit-identical;
 * Softmax, Sigmoid and Exp use a polynomial exp (about 2 ulp, as XNNPACK's; e^x is 0
 * below x = -87.3, where the stock kernel still gives subnormals), Softmax
 * max-subtracted like the stock kernel. All of them split across the addon's threads
 * (the stock wasm kernels run on one core).
 */
import * as tf from '@tensorflow/tfjs-core';
import type { NativeAddon } from './native';
import { heapBuffer, offsetOf, type KernelArgs } from './wasm-backend';

/** Op codes shared with native/lens_accel.c (enum OP_*). */
export const BINARY_OPS = { Add: 0, Sub: 1, Multiply: 2, RealDiv: 3, SquaredDifference: 4 } as const;

/** Dims the native loop accepts after collapsing (MAX_RANK in lens_accel.c). */
const MAX_RANK = 6;

/**
 * The broadcast of a and b to `out`, collapsed: size-1 output dims dropped, and
 * neighbouring dims merged where both operands step through them as one (both
 * contiguous, or both broadcast). Strides are in elements, 0 where broadcast.
 */
export function collapseBroadcast(aShape: number[], bShape: number[], out: number[]): { shape: number[]; sa: number[]; sb: number[] } {
  const strides = (shape: number[]): number[] => {
    const r = out.length;
    const s = new Array<number>(r).fill(0);
    let acc = 1;
    for (let i = shape.length - 1; i >= 0; i--) {
      const o = i + r - shape.length;
      s[o] = shape[i] === 1 ? 0 : acc;
      acc *= shape[i];
    }
    return s;
  };
  const fa = strides(aShape);
  const fb = strides(bShape);
  const shape: number[] = [];
  const sa: number[] = [];
  const sb: number[] = [];
  for (let i = 0; i < out.length; i++) {
    if (out[i] === 1) continue;
    const k = shape.length - 1;
    // merge dim i into the previous kept dim when, for both operands, stepping the
    // previous dim once equals stepping dim i across its whole length
    if (k >= 0 && sa[k] === fa[i] * out[i] && sb[k] === fb[i] * out[i]) {
      shape[k] *= out[i];
      sa[k] = fa[i];
      sb[k] = fb[i];
    } else {
      shape.push(out[i]);
      sa.push(fa[i]);
      sb.push(fb[i]);
    }
  }
  if (shape.length === 0) return { shape: [1], sa: [0], sb: [0] };
  return { shape, sa, sb };
}

/** A broadcasting float32 binary kernel (inputs a, b) on the addon; other dtypes go to `stock`. */
export function makeBinary(addon: NativeAddon, stock: tf.KernelFunc, op: number) {
  return (args: KernelArgs): tf.TensorInfo => {
    const { a, b } = args.inputs;
    if (a.dtype !== 'float32' || b.dtype !== 'float32') return stock(args as never) as tf.TensorInfo;
    const outShape = tf.broadcast_util.assertAndGetBroadcastShape(a.shape, b.shape);
    const { shape, sa, sb } = collapseBroadcast(a.shape, b.shape, outShape);
    if (shape.length > MAX_RANK) return stock(args as never) as tf.TensorInfo;
    const backend = args.backend;
    const out = backend.makeOutput(outShape, 'float32');
    if (tf.util.sizeFromShape(outShape) === 0) return out;
    const r = shape.length;
    const desc = new Float64Array(5 + 3 * r);
    desc[0] = offsetOf(backend, a);
    desc[1] = offsetOf(backend, b);
    desc[2] = offsetOf(backend, out);
    desc[3] = op;
    desc[4] = r;
    desc.set(shape, 5);
    desc.set(sa, 5 + r);
    desc.set(sb, 5 + 2 * r);
    addon.binary(heapBuffer(backend), desc);
    return out;
  };
}

/** Softmax kernel (inputs logits; attrs dim, always the last axis in tfjs-core). */
export function makeSoftmax(addon: NativeAddon, stock: tf.KernelFunc) {
  return (args: KernelArgs): tf.TensorInfo => {
    const { logits } = args.inputs;
    const { dim } = (args.attrs ?? {}) as { dim: number };
    const rank = logits.shape.length;
    if (logits.dtype !== 'float32' || rank === 0 || (dim !== -1 && dim !== rank - 1)) return stock(args as never) as tf.TensorInfo;
    const backend = args.backend;
    const out = backend.makeOutput(logits.shape, 'float32');
    const channels = logits.shape[rank - 1];
    const size = tf.util.sizeFromShape(logits.shape);
    if (size === 0) return out;
    addon.softmax(heapBuffer(backend), offsetOf(backend, logits), offsetOf(backend, out), size / channels, channels);
    return out;
  };
}

/** Op codes of the addon's unary kernel (enum UN_* in native/lens_accel.c). */
export const UNARY_OPS = { Sigmoid: 0, Exp: 1 } as const;

/** Sigmoid (1 / (1 + e^-x)) or Exp kernel, float32 (other dtypes: stock). */
export function makeUnary(addon: NativeAddon, stock: tf.KernelFunc, op: number) {
  return (args: KernelArgs): tf.TensorInfo => {
    const { x } = args.inputs;
    if (x.dtype !== 'float32') return stock(args as never) as tf.TensorInfo;
    const backend = args.backend;
    const out = backend.makeOutput(x.shape, 'float32');
    const n = tf.util.sizeFromShape(x.shape);
    if (n > 0) addon.unary(heapBuffer(backend), offsetOf(backend, x), offsetOf(backend, out), n, op);
    return out;
  };
}

/**
 * The permutation as a strided copy: output dims of size 1 dropped, neighbours merged
 * where x walks them contiguously. Returns the output shape and x's stride per output dim.
 */
export function transposePlan(shape: number[], perm: number[]): { shape: number[]; stride: number[] } {
  const xStride = new Array<number>(shape.length);
  let acc = 1;
  for (let i = shape.length - 1; i >= 0; i--) {
    xStride[i] = acc;
    acc *= shape[i];
  }
  const outShape: number[] = [];
  const stride: number[] = [];
  for (const p of perm) {
    const n = shape[p];
    if (n === 1) continue;
    const k = outShape.length - 1;
    if (k >= 0 && stride[k] === xStride[p] * n) {
      outShape[k] *= n;
      stride[k] = xStride[p];
    } else {
      outShape.push(n);
      stride.push(xStride[p]);
    }
  }
  if (outShape.length === 0) return { shape: [1], stride: [1] };
  return { shape: outShape, stride };
}

/** Transpose kernel (inputs x; attrs perm) for 4-byte dtypes; a no-op permutation shares the buffer. */
export function makeTranspose(addon: NativeAddon, stock: tf.KernelFunc) {
  return (args: KernelArgs): tf.TensorInfo => {
    const { x } = args.inputs;
    const { perm } = (args.attrs ?? {}) as { perm: number[] };
    if (x.dtype !== 'float32' && x.dtype !== 'int32') return stock(args as never) as tf.TensorInfo;
    const outShape = perm.map((p) => x.shape[p]);
    const plan = transposePlan(x.shape, perm);
    const backend = args.backend;
    if (plan.shape.length === 1 && plan.stride[0] === 1) {
      // the data order does not change: share the buffer, as Reshape does
      backend.incRef(x.dataId);
      return { dataId: x.dataId, shape: outShape, dtype: x.dtype };
    }
    if (plan.shape.length > MAX_RANK) return stock(args as never) as tf.TensorInfo;
    const out = backend.makeOutput(outShape, x.dtype);
    const r = plan.shape.length;
    const desc = new Float64Array(3 + 2 * r);
    desc[0] = offsetOf(backend, x);
    desc[1] = offsetOf(backend, out);
    desc[2] = r;
    desc.set(plan.shape, 3);
    desc.set(plan.stride, 3 + r);
    addon.transpose(heapBuffer(backend), desc);
    return out;
  };
}
