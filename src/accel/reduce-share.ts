/**
 * Sum, Mean, Identity and Cast for the wasm backend (replacing tfjs-backend-wasm
 * 4.22's kernels/Sum.ts, Mean.ts, Identity.ts, Cast.ts).
 *
 * - Sum / Mean: the stock kernel transposes the reduced axes to the end, then sums the
 *   innermost axis. Every bias gradient (broadcasting Add's backward pass) is a sum
 *   over the LEADING axes of a large [N, C] gradient, so it paid a full scalar
 *   transpose first. Here any contiguous block of axes is summed in place as
 *   [pre, red, post] -> [pre, post] (native, vectorised along post, threaded);
 *   non-contiguous axis sets and non-float32 inputs keep the stock kernel.
 * - Identity, and Cast to the same dtype: the stock kernels copy the buffer; here
 *   the output shares the input's buffer (a reference count, as Reshape already
 *   does), which is safe because no wasm kernel writes into its inputs.
 */
import * as tf from '@tensorflow/tfjs-core';
import type { NativeAddon } from './native';
import { heapBuffer, offsetOf, type KernelArgs } from './wasm-backend';

/** Sum kernel (inputs x; attrs axis, keepDims). x: [...] -> x summed over `axis`. */
export function makeSum(addon: NativeAddon, stock: tf.KernelFunc) {
  return makeReduce(addon, stock, false);
}

/** Mean kernel: as Sum, then divided by the number of reduced elements (float32 out). */
export function makeMean(addon: NativeAddon, stock: tf.KernelFunc) {
  return makeReduce(addon, stock, true);
}

function makeReduce(addon: NativeAddon, stock: tf.KernelFunc, mean: boolean) {
  return (args: KernelArgs): tf.TensorInfo => {
    const { x } = args.inputs;
    const { axis, keepDims } = (args.attrs ?? {}) as { axis: number | number[]; keepDims: boolean };
    if (x.dtype !== 'float32') return stock(args as never) as tf.TensorInfo;
    const shape = x.shape;
    const axes = tf.util.parseAxisParam(axis, shape).slice().sort((p, q) => p - q);
    for (let i = 1; i < axes.length; i++) {
      // a repeated or non-contiguous axis set is not a [pre, red, post] view: stock path
      if (axes[i] !== axes[i - 1] + 1) return stock(args as never) as tf.TensorInfo;
    }
    const first = axes.length ? axes[0] : shape.length;
    const last = axes.length ? axes[axes.length - 1] : shape.length - 1;
    let pre = 1;
    let red = 1;
    let post = 1;
    for (let i = 0; i < shape.length; i++) {
      if (i < first) pre *= shape[i];
      else if (i <= last) red *= shape[i];
      else post *= shape[i];
    }
    const outShape = keepDims
      ? shape.map((d, i) => (i >= first && i <= last ? 1 : d))
      : shape.filter((_, i) => i < first || i > last);
    const out = args.backend.makeOutput(outShape, 'float32');
    addon.sum(heapBuffer(args.backend), offsetOf(args.backend, x), offsetOf(args.backend, out), pre, red, post, mean ? 1 : 0);
    return out;
  };
}

/** Identity kernel: shares the input's buffer. */
export function makeIdentity(stock: tf.KernelFunc) {
  return (args: KernelArgs): tf.TensorInfo => {
    const { x } = args.inputs;
    if (x.dtype === 'string') return stock(args as never) as tf.TensorInfo;
    args.backend.incRef(x.dataId);
    return { dataId: x.dataId, shape: x.shape.slice(), dtype: x.dtype };
  };
}

/** Cast kernel: same dtype shares the buffer; a real conversion keeps the stock kernel. */
export function makeCast(stock: tf.KernelFunc) {
  return (args: KernelArgs): tf.TensorInfo => {
    const { x } = args.inputs;
    const { dtype } = (args.attrs ?? {}) as { dtype: tf.DataType };
    if (dtype !== x.dtype || x.dtype === 'string') return stock(args as never) as tf.TensorInfo;
    args.backend.incRef(x.dataId);
    return { dataId: x.dataId, shape: x.shape.slice(), dtype: x.dtype };
  };
}
