/**
 * Fused gradients for Softmax and Sigmoid on the wasm backend with the native
 * kernels. tfjs-core's gradient formulas (gradients/Softmax_grad.ts: dy*y -
 * sum(dy*y, last)*y; gradients/Sigmoid_grad.ts: dy*(y*(1-y))) cost 3-4 kernel
 * calls and as many passes over an attention-sized tensor; `LensSoftmaxGrad` /
 * `LensSigmoidGrad` do the same float32 operations in one pass (bit-identical to
 * the formulas on the native kernels).
 *
 * Gradients are registered per kernel, not per backend, so the wrapper keeps
 * tfjs-core's gradient and uses it whenever the fused kernel is not registered for
 * the active backend (other backends, stock kernels switched back). It is installed
 * only over a gradient that is already registered, never in its place.
 */
import * as tf from '@tensorflow/tfjs-core';
import type { NativeAddon } from './native';
import { heapBuffer, offsetOf, type KernelArgs } from './wasm-backend';

export const SOFTMAX_GRAD_KERNEL = 'LensSoftmaxGrad';
export const SIGMOID_GRAD_KERNEL = 'LensSigmoidGrad';

/** LensSoftmaxGrad (inputs dy, y: [..., C]) and LensSigmoidGrad (inputs dy, y) kernels. */
export function makeGradKernel(addon: NativeAddon, softmax: boolean) {
  return (args: KernelArgs): tf.TensorInfo => {
    const { dy, y } = args.inputs;
    if (!tf.util.arraysEqual(dy.shape, y.shape) || dy.dtype !== 'float32' || y.dtype !== 'float32') {
      throw new Error(`${softmax ? SOFTMAX_GRAD_KERNEL : SIGMOID_GRAD_KERNEL}: dy and y must be float32 of one shape, got [${dy.shape}] and [${y.shape}]`);
    }
    const backend = args.backend;
    const out = backend.makeOutput(y.shape, 'float32');
    const n = tf.util.sizeFromShape(y.shape);
    if (n === 0) return out;
    const c = softmax ? y.shape[y.shape.length - 1] : 1;
    addon.grad(heapBuffer(backend), offsetOf(backend, dy), offsetOf(backend, y), offsetOf(backend, out), n / c, c, softmax ? 1 : 0);
    return out;
  };
}

function fusedAvailable(kernel: string): boolean {
  return tf.getKernel(kernel, tf.getBackend()) !== undefined;
}

let installed = false;

/** Wraps tfjs-core's Softmax and Sigmoid gradients (when registered) to use the fused kernels where present. */
export function installFusedGradients(): string[] {
  if (installed) return [];
  installed = true;
  const done: string[] = [];
  const softmax = tf.getGradient('Softmax');
  if (softmax) {
    tf.registerGradient({
      ...softmax,
      gradFunc: (dy, saved, attrs) => {
        const y = saved[0];
        const dim = (attrs as { dim: number }).dim;
        if (!fusedAvailable(SOFTMAX_GRAD_KERNEL) || Array.isArray(dy) || (dim !== -1 && dim !== y.rank - 1) || y.dtype !== 'float32') {
          return softmax.gradFunc(dy, saved, attrs);
        }
        return { logits: () => tf.engine().runKernel(SOFTMAX_GRAD_KERNEL, { dy, y }, {}) as tf.Tensor };
      },
    });
    done.push('Softmax');
  }
  const sigmoid = tf.getGradient('Sigmoid');
  if (sigmoid) {
    tf.registerGradient({
      ...sigmoid,
      gradFunc: (dy, saved, attrs) => {
        const y = saved[0];
        if (!fusedAvailable(SIGMOID_GRAD_KERNEL) || Array.isArray(dy) || y.dtype !== 'float32') return sigmoid.gradFunc(dy, saved, attrs);
        return { x: () => tf.engine().runKernel(SIGMOID_GRAD_KERNEL, { dy, y }, {}) as tf.Tensor };
      },
    });
    done.push('Sigmoid');
  }
  return done;
}
