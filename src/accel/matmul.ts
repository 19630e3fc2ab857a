/**
 * BatchMatMul and _FusedMatMul for the wasm backend on the native sgemm
 * (native/lens_accel.c `gemm`), replacing tfjs-backend-wasm 4.22's kernels of the
 * same names (kernels/BatchMatMul.ts, kernels/_FusedMatMul.ts), whose XNNPACK path
 * takes only un-batched, un-transposed operands and runs the rest (every
 * backward-pass and attention matmul) as a scalar loop.
 *
 * Semantics are tfjs-core's `matMul` (ops/mat_mul.ts): a: [...batchA, M, K] (or
 * [..., K, M] with transposeA), b: [...batchB, K, N] (or [..., N, K]); batch dims
 * broadcast numpy-style -> [...broadcast(batchA, batchB), M, N]. Operands are read
 * in place from the wasm heap; transposes and broadcasting are strides, not copies.
 */
import * as tf from '@tensorflow/tfjs-core';
import type { NativeAddon } from './native';
import { callKernel, disposeInfo, heapBuffer, offsetOf, type KernelArgs, type WasmBackend } from './wasm-backend';

/** Element strides of a's batch dims aligned to the output's batch dims (0 where broadcast). */
function batchStrides(batch: number[], outBatch: number[], matrixSize: number): number[] {
  const r = outBatch.length;
  const strides = new Array<number>(r).fill(0);
  let s = matrixSize;
  for (let i = batch.length - 1; i >= 0; i--) {
    const o = i + (r - batch.length); // right-aligned, as numpy broadcasting
    strides[o] = batch[i] === 1 ? 0 : s;
    s *= batch[i];
  }
  return strides;
}

/**
 * out = op(a) op(b) on the native gemm; `accumulate` adds into an existing `out`.
 * a: [...batchA, M, K], b: [...batchB, K, N] (before transposes) -> [...batch, M, N].
 */
export function nativeMatMul(
  addon: NativeAddon,
  backend: WasmBackend,
  a: tf.TensorInfo,
  b: tf.TensorInfo,
  transposeA: boolean,
  transposeB: boolean,
): tf.TensorInfo {
  const ra = a.shape.length;
  const rb = b.shape.length;
  if (ra < 2 || rb < 2) throw new Error(`BatchMatMul: operands must have rank >= 2, got shapes [${a.shape}] and [${b.shape}]`);
  const innerA = transposeA ? a.shape[ra - 2] : a.shape[ra - 1];
  const innerB = transposeB ? b.shape[rb - 1] : b.shape[rb - 2];
  const m = transposeA ? a.shape[ra - 1] : a.shape[ra - 2];
  const n = transposeB ? b.shape[rb - 2] : b.shape[rb - 1];
  if (innerA !== innerB) {
    // the same wording as tfjs-backend-wasm's BatchMatMul, so callers see one message
    throw new Error(
      `Error in matMul: inner shapes (${innerA}) and (${innerB}) of Tensors with shapes ${a.shape} and ` +
        `${b.shape} and transposeA=${transposeA} and transposeB=${transposeB} must match.`,
    );
  }
  const k = innerA;
  const batchA = a.shape.slice(0, -2);
  const batchB = b.shape.slice(0, -2);
  const outBatch = tf.broadcast_util.assertAndGetBroadcastShape(batchA, batchB);
  const out = backend.makeOutput([...outBatch, m, n], 'float32');
  const r = outBatch.length;
  const desc = new Float64Array(10 + 3 * r);
  desc[0] = offsetOf(backend, a);
  desc[1] = offsetOf(backend, b);
  desc[2] = offsetOf(backend, out);
  desc[3] = m;
  desc[4] = n;
  desc[5] = k;
  desc[6] = transposeA ? 1 : 0;
  desc[7] = transposeB ? 1 : 0;
  desc[8] = 0; // beta: overwrite
  desc[9] = r;
  desc.set(outBatch, 10);
  desc.set(batchStrides(batchA, outBatch, m * k), 10 + r);
  desc.set(batchStrides(batchB, outBatch, k * n), 10 + 2 * r);
  addon.gemm(heapBuffer(backend), desc); // heap read after makeOutput: the allocation may have grown it
  return out;
}

/** BatchMatMul kernel (inputs a, b; attrs transposeA, transposeB). */
export function makeBatchMatMul(addon: NativeAddon, stock: tf.KernelFunc) {
  return (args: KernelArgs): tf.TensorInfo => {
    const { a, b } = args.inputs;
    const { transposeA, transposeB } = (args.attrs ?? {}) as { transposeA?: boolean; transposeB?: boolean };
    // non-float32 operands: let the stock kernel raise its own error
    if (a.dtype !== 'float32' || b.dtype !== 'float32') return stock(args as never) as tf.TensorInfo;
    return nativeMatMul(addon, args.backend, a, b, !!transposeA, !!transposeB);
  };
}

/** The activation of a fused matmul, through the registered element-wise kernels. */
function activate(backend: WasmBackend, x: tf.TensorInfo, activation: string, prelu: tf.TensorInfo | undefined, alpha: number): tf.TensorInfo {
  switch (activation) {
    case 'linear':
      return x;
    case 'relu':
      return callKernel('Relu', { inputs: { x }, backend });
    case 'relu6':
      return callKernel('Relu6', { inputs: { x }, backend });
    case 'elu':
      return callKernel('Elu', { inputs: { x }, backend });
    case 'sigmoid':
      return callKernel('Sigmoid', { inputs: { x }, backend });
    case 'leakyrelu':
      return callKernel('LeakyRelu', { inputs: { x }, backend, attrs: { alpha } });
    case 'prelu':
      if (!prelu) throw new Error(`_FusedMatMul: activation 'prelu' needs preluActivationWeights`);
      return callKernel('Prelu', { inputs: { x, alpha: prelu }, backend });
    default:
      throw new Error(`_FusedMatMul: activation '${activation}' is not supported (expected linear, relu, relu6, elu, sigmoid, leakyrelu or prelu)`);
  }
}

/** _FusedMatMul kernel: activation(op(a) op(b) + bias), bias broadcast against the output. */
export function makeFusedMatMul(addon: NativeAddon, stock: tf.KernelFunc) {
  return (args: KernelArgs): tf.TensorInfo => {
    const { a, b, bias, preluActivationWeights } = args.inputs;
    const attrs = (args.attrs ?? {}) as { transposeA?: boolean; transposeB?: boolean; activation?: string; leakyreluAlpha?: number };
    if (a.dtype !== 'float32' || b.dtype !== 'float32') return stock(args as never) as tf.TensorInfo;
    const backend = args.backend;
    let y = nativeMatMul(addon, backend, a, b, !!attrs.transposeA, !!attrs.transposeB);
    if (bias) {
      const withBias = callKernel('Add', { inputs: { a: y, b: bias }, backend });
      disposeInfo(backend, y);
      y = withBias;
    }
    const act = attrs.activation ?? 'linear';
    const z = activate(backend, y, act, preluActivationWeights, attrs.leakyreluAlpha ?? 0.2);
    if (z !== y) disposeInfo(backend, y);
    return z;
  };
}
