/**
 * Layer norm over the last axis as ONE kernel forward and ONE backward on the wasm
 * backend with the native kernels (`LensLayerNorm`, `LensLayerNormGrad`), through
 * tf.customGrad. The composite form (src/model/nn.ts `LayerNorm`: tf.moments, sub,
 * rsqrt, mul, mul, add) costs ~10 kernel calls forward and ~15 backward and as many
 * passes over the activations; PyTorch's native_layer_norm is one kernel each way.
 * Elsewhere (other backends, no addon, stock kernels) it IS the composite form.
 *
 * y = (x - mean) * rsqrt(var + eps) * gamma + beta, mean / var over the last axis
 * (population variance, as tf.moments). Not bit-identical to the composite (one pass,
 * another summation order): all-close, tested.
 */
import * as tf from '@tensorflow/tfjs-core';
import type { NativeAddon } from './native';
import { heapBuffer, offsetOf, type KernelArgs } from './wasm-backend';

export const LAYER_NORM_KERNEL = 'LensLayerNorm';
export const LAYER_NORM_GRAD_KERNEL = 'LensLayerNormGrad';

function rowsAndWidth(x: tf.TensorInfo): [number, number] {
  const c = x.shape[x.shape.length - 1];
  return [tf.util.sizeFromShape(x.shape) / c, c];
}

/** LensLayerNorm: inputs x [..., C], gamma [C], beta [C]; attrs eps -> [y, mean [rows], rstd [rows]]. */
export function makeLayerNormKernel(addon: NativeAddon) {
  return (args: KernelArgs): tf.TensorInfo[] => {
    const { x, gamma, beta } = args.inputs;
    const { eps } = args.attrs as { eps: number };
    const [rows, c] = rowsAndWidth(x);
    if (gamma.shape.length !== 1 || gamma.shape[0] !== c || beta.shape.length !== 1 || beta.shape[0] !== c) {
      throw new Error(`${LAYER_NORM_KERNEL}: gamma and beta must be [${c}], got [${gamma.shape}] and [${beta.shape}]`);
    }
    const b = args.backend;
    const outs = [b.makeOutput(x.shape, 'float32'), b.makeOutput([rows], 'float32'), b.makeOutput([rows], 'float32')];
    const desc = new Float64Array([...[x, gamma, beta, ...outs].map((t) => offsetOf(b, t)), rows, c, eps]);
    addon.layerNorm(heapBuffer(b), desc, false);
    return outs;
  };
}

/** LensLayerNormGrad: inputs dy, x, gamma, mean, rstd -> [dx, dgamma, dbeta]. */
export function makeLayerNormGradKernel(addon: NativeAddon) {
  return (args: KernelArgs): tf.TensorInfo[] => {
    const { dy, x, gamma, mean, rstd } = args.inputs;
    const [rows, c] = rowsAndWidth(x);
    const b = args.backend;
    const outs = [b.makeOutput(x.shape, 'float32'), b.makeOutput([c], 'float32'), b.makeOutput([c], 'float32')];
    const desc = new Float64Array([...[x, gamma, dy, mean, rstd, ...outs].map((t) => offsetOf(b, t)), rows, c]);
    addon.layerNorm(heapBuffer(b), desc, true);
    return outs;
  };
}

/** The composite form (as src/model/nn.ts LayerNorm). x: [..., C] -> [..., C]. */
export function layerNormComposite(x: tf.Tensor, gamma: tf.Tensor, beta: tf.Tensor, eps: number): tf.Tensor {
  return tf.tidy(() => {
    const { mean, variance } = tf.moments(x, -1, true);
    const xhat = tf.mul(tf.sub(x, mean), tf.rsqrt(tf.add(variance, eps)));
    return tf.add(tf.mul(xhat, gamma), beta);
  });
}

/**
 * Layer norm over the last axis: fused kernels where registered for the active
 * backend, the composite form otherwise. x: [..., C], gamma / beta: [C] -> [..., C].
 */
export function layerNorm(x: tf.Tensor, gamma: tf.Tensor, beta: tf.Tensor, eps = 1e-5): tf.Tensor {
  const backend = tf.getBackend();
  if (!tf.getKernel(LAYER_NORM_KERNEL, backend) || !tf.getKernel(LAYER_NORM_GRAD_KERNEL, backend) || x.dtype !== 'float32') {
    return layerNormComposite(x, gamma, beta, eps);
  }
  const f = tf.customGrad((...args: Array<tf.Tensor | tf.GradSaveFunc>) => {
    const [xi, g, b, save] = args as [tf.Tensor, tf.Tensor, tf.Tensor, tf.GradSaveFunc];
    const [y, mean, rstd] = tf.engine().runKernel(LAYER_NORM_KERNEL, { x: xi, gamma: g, beta: b }, { eps }) as tf.Tensor[];
    save([xi, g, mean, rstd]);
    return {
      value: y,
      gradFunc: (dy: tf.Tensor, saved: tf.Tensor[]) => {
        const [sx, sg, sm, sr] = saved;
        return tf.engine().runKernel(LAYER_NORM_GRAD_KERNEL, { dy, x: sx, gamma: sg, mean: sm, rstd: sr }, {}) as tf.Tensor[];
      },
    };
  });
  return f(x, gamma, beta);
}
