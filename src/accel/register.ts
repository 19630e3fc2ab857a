/**
 * Registers this project's kernels on the wasm backend (issue #3; docs/performance.md).
 *
 * Two groups:
 * - completions: kernels tfjs-backend-wasm 4.22 lacks and training needs
 *   (Conv2DBackpropFilter, UnsortedSegmentSum, Einsum). Always registered, with a
 *   JavaScript fallback when the addon is absent.
 * - replacements: faster versions of stock kernels, on the native addon
 *   (BatchMatMul, _FusedMatMul, Sum, Mean, Softmax, Sigmoid, Exp, Transpose, the
 *   broadcasting binary ops),
 *   plus the buffer-sharing Identity / Cast, the block-copying GatherV2 / Tile (JavaScript)
 *   and Conv2DBackpropInput at stride 1 as a conv2d.
 *   Registered only when the addon loads; `setWasmAccel(false)` puts the stock
 *   kernels back (the benchmark interleaves both in one process, tests compare them).
 */
import * as tf from '@tensorflow/tfjs-core';
import { ADAM_KERNEL, makeAdamKernel } from './adam';
import { installFusedGradients, makeGradKernel, SIGMOID_GRAD_KERNEL, SOFTMAX_GRAD_KERNEL } from './gradients';
import { LAYER_NORM_GRAD_KERNEL, LAYER_NORM_KERNEL, makeLayerNormGradKernel, makeLayerNormKernel } from './layernorm';
import { makeQuickGeluKernel, QUICK_GELU_GRAD_KERNEL, QUICK_GELU_KERNEL } from './quick-gelu';
import { makeBatchMatMul, makeFusedMatMul } from './matmul';
import { BUILD_HINT, loadNative, type NativeAddon } from './native';
import { BINARY_OPS, makeBinary, makeSoftmax, makeTranspose, makeUnary, UNARY_OPS } from './elementwise';
import { makeConv2DBackpropInput } from './conv-input-grad';
import { makeGather, makeTile } from './copy-kernels';
import { makeCast, makeIdentity, makeMean, makeSum } from './reduce-share';
import { makeConv2DBackpropFilter, makeEinsum, makeUnsortedSegmentSum } from './training-kernels';
import { looksLikeWasmBackend, type WasmKernelFunc } from './wasm-backend';

/** What registration did, for the backend's one-line report. */
export interface AccelStatus {
  /** True when the native replacements are registered. */
  native: boolean;
  /** e.g. "native sgemm: OpenBLAS 0.3.21 ... (2 threads)" or "stock kernels: <why>; to fix: ...". */
  detail: string;
  /** Kernels replaced by native versions, and native-only ones like LensAdamUpdate (empty without the addon). */
  replaced: string[];
  /** Kernels added that the wasm backend lacked. */
  added: string[];
}

type Maker = (addon: NativeAddon, stock: tf.KernelFunc) => WasmKernelFunc;

/** The replacement set: kernel name -> factory taking the addon and the stock kernel. */
const REPLACEMENTS: Record<string, Maker> = {
  BatchMatMul: makeBatchMatMul,
  _FusedMatMul: makeFusedMatMul,
  Sum: makeSum,
  Mean: makeMean,
  Softmax: makeSoftmax,
  ...Object.fromEntries(Object.entries(UNARY_OPS).map(([name, op]) => [name, (addon: NativeAddon, stock: tf.KernelFunc) => makeUnary(addon, stock, op)])),
  Transpose: makeTranspose,
  ...Object.fromEntries(Object.entries(BINARY_OPS).map(([name, op]) => [name, (addon: NativeAddon, stock: tf.KernelFunc) => makeBinary(addon, stock, op)])),
  Identity: (_a, stock) => makeIdentity(stock),
  Cast: (_a, stock) => makeCast(stock),
  GatherV2: (_a, stock) => makeGather(stock),
  Tile: (_a, stock) => makeTile(stock),
  Conv2DBackpropInput: (_a, stock) => makeConv2DBackpropInput(stock),
};

/** Kernels with no stock counterpart, registered only while the native kernels are on. */
const NATIVE_ONLY: Record<string, (addon: NativeAddon) => WasmKernelFunc> = {
  [ADAM_KERNEL]: makeAdamKernel,
  [SOFTMAX_GRAD_KERNEL]: (addon) => makeGradKernel(addon, true),
  [SIGMOID_GRAD_KERNEL]: (addon) => makeGradKernel(addon, false),
  [LAYER_NORM_KERNEL]: makeLayerNormKernel,
  [LAYER_NORM_GRAD_KERNEL]: makeLayerNormGradKernel,
  [QUICK_GELU_KERNEL]: (addon) => makeQuickGeluKernel(addon, false),
  [QUICK_GELU_GRAD_KERNEL]: (addon) => makeQuickGeluKernel(addon, true),
};

const stockConfigs = new Map<string, tf.KernelConfig>();
const accelConfigs = new Map<string, tf.KernelConfig>();
let status: AccelStatus | null = null;

function swapIn(config: tf.KernelConfig): void {
  if (tf.getKernel(config.kernelName, 'wasm')) tf.unregisterKernel(config.kernelName, 'wasm');
  tf.registerKernel(config);
}

/**
 * Registers the completions and (when the addon loads) the replacements on the wasm
 * backend. Idempotent. Call after the wasm backend is active (src/backend.ts does).
 */
export function registerWasmAccel(): AccelStatus {
  if (status) return status;
  const backend = tf.findBackend('wasm');
  if (!looksLikeWasmBackend(backend)) {
    status = {
      native: false,
      detail: 'stock kernels: the wasm backend is not started or its internals changed (tfjs-backend-wasm 4.22 expected)',
      replaced: [],
      added: [],
    };
    return status;
  }
  const load = loadNative();
  const addon = load.ok ? load.addon : null;
  const added: string[] = [];
  for (const [name, make] of [
    ['Conv2DBackpropFilter', makeConv2DBackpropFilter],
    ['UnsortedSegmentSum', makeUnsortedSegmentSum],
    ['Einsum', makeEinsum],
  ] as const) {
    if (!tf.getKernel(name, 'wasm')) {
      tf.registerKernel({ kernelName: name, backendName: 'wasm', kernelFunc: make(addon) as unknown as tf.KernelFunc });
      added.push(name);
    }
  }
  const replaced: string[] = [];
  if (addon) {
    for (const [name, make] of Object.entries(REPLACEMENTS)) {
      const stock = tf.getKernel(name, 'wasm');
      if (!stock) continue;
      stockConfigs.set(name, stock);
      accelConfigs.set(name, { kernelName: name, backendName: 'wasm', kernelFunc: make(addon, stock.kernelFunc) as unknown as tf.KernelFunc });
      replaced.push(name);
    }
    for (const [name, make] of Object.entries(NATIVE_ONLY)) {
      accelConfigs.set(name, { kernelName: name, backendName: 'wasm', kernelFunc: make(addon) as unknown as tf.KernelFunc });
      replaced.push(name);
    }
    setWasmAccel(true);
    installFusedGradients(); // uses the two gradient kernels above when they are registered
    const info = addon.info();
    const blas = info.blas.split(' ').slice(0, 2).join(' ');
    status = { native: true, detail: `native sgemm: ${blas}, ${info.blasThreads} BLAS threads, ${info.poolThreads} kernel threads`, replaced, added };
  } else {
    const why = 'reason' in load ? load.reason : 'unknown'; // 'in' also narrows under tslab's non-strict compiler
    status = { native: false, detail: `stock kernels: ${why}; to fix: ${BUILD_HINT}`, replaced, added };
  }
  return status;
}

/** Switches between the native replacements (true) and the stock wasm kernels (false). */
export function setWasmAccel(on: boolean): void {
  const source = on ? accelConfigs : stockConfigs;
  for (const config of source.values()) swapIn(config);
  if (!on) for (const name of Object.keys(NATIVE_ONLY)) if (tf.getKernel(name, 'wasm')) tf.unregisterKernel(name, 'wasm');
}

/** The status of the last registration, or null before it. */
export function wasmAccelStatus(): AccelStatus | null {
  return status;
}

/** The stock kernel function of a replaced kernel (tests compare against it). */
export function stockKernel(name: string): tf.KernelFunc | undefined {
  return stockConfigs.get(name)?.kernelFunc;
}
