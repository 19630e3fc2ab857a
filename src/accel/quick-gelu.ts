/**
 * quick-GELU, y = x * sigmoid(1.702 x), as ONE kernel forward and ONE backward on the
 * wasm backend with the native kernels (`LensQuickGelu`, `LensQuickGeluGrad`), through
 * tf.customGrad. The composite form (mul, Sigmoid, mul) costs 3 kernels forward and ~6
 * backward, each a pass over an MLP's hidden activations ([tokens, 4 x width]); the
 * fused pair reads x (and dy) once. It does the composite's float32 operations in its
 * order, so on the native kernels the two are bit-identical (tested).
 * Elsewhere (other backends, no addon, stock kernels) it IS the composite form.
 */
import * as tf from '@tensorflow/tfjs-core';
import type { NativeAddon } from './native';
import { heapBuffer, offsetOf, type KernelArgs } from './wasm-backend';

export const QUICK_GELU_KERNEL = 'LensQuickGelu';
export const QUICK_GELU_GRAD_KERNEL = 'LensQuickGeluGrad';

/** LensQuickGelu (inputs x) and LensQuickGeluGrad (inputs dy, x -> dx), float32. */
export function makeQuickGeluKernel(addon: NativeAddon, backward: boolean) {
  const name = backward ? QUICK_GELU_GRAD_KERNEL : QUICK_GELU_KERNEL;
  return (args: KernelArgs): tf.TensorInfo => {
    const { x, dy } = args.inputs;
    if (x.dtype !== 'float32' || (backward && (dy.dtype !== 'float32' || !tf.util.arraysEqual(dy.shape, x.shape)))) {
      throw new Error(`${name}: expected float32 input${backward ? 's dy and x of one shape' : ''}, got x ${x.dtype} [${x.shape}]${backward ? ` and dy ${dy.dtype} [${dy.shape}]` : ''}`);
    }
    const b = args.backend;
    const out = b.makeOutput(x.shape, 'float32');
    const n = tf.util.sizeFromShape(x.shape);
    if (n > 0) addon.quickGelu(heapBuffer(b), offsetOf(b, x), backward ? offsetOf(b, dy) : 0, offsetOf(b, out), n, backward);
    return out;
  };
}

/** The composite form: x * sigmoid(1.702 x). */
export function quickGeluComposite<T extends tf.Tensor>(x: T): T {
  return tf.tidy(() => tf.mul(x, tf.sigmoid(tf.mul(x, 1.702)))) as T;
}

/** The fused pair as one op with its gradient (built once: it has no attributes). */
const fused = tf.customGrad((...args: Array<tf.Tensor | tf.GradSaveFunc>) => {
  const [x, save] = args as [tf.Tensor, tf.GradSaveFunc];
  save([x]);
  return {
    value: tf.engine().runKernel(QUICK_GELU_KERNEL, { x }, {}) as tf.Tensor,
    gradFunc: (dy: tf.Tensor, saved: tf.Tensor[]) => tf.engine().runKernel(QUICK_GELU_GRAD_KERNEL, { dy, x: saved[0]! }, {}) as tf.Tensor,
  };
});

/** quick-GELU (CLIP's and the LENS connector's activation): the fused kernels where registered, the composite form otherwise. */
export function quickGelu<T extends tf.Tensor>(x: T): T {
  const backend = tf.getBackend();
  if (!tf.getKernel(QUICK_GELU_KERNEL, backend) || !tf.getKernel(QUICK_GELU_GRAD_KERNEL, backend) || x.dtype !== 'float32') {
    return quickGeluComposite(x);
  }
  return fused(x) as T;
}
