/**
 * Loads the native kernel addon (native/lens_accel.c, built by `npm install` into
 * build/Release/lens_accel.node by scripts/build-native.mjs), or says why it cannot.
 *
 * Loaded with createRequire from the project root (src/util/paths.ts), never
 * import.meta, because tslab compiles this file to CommonJS.
 */
import { existsSync } from 'node:fs';
import { createRequire } from 'node:module';
import { join } from 'node:path';
import { projectRoot } from '../util/paths';

/** The addon's functions; offsets are byte offsets into the wasm heap ArrayBuffer. */
export interface NativeAddon {
  /** C[batch] = op(A) op(B); desc = [aOff, bOff, cOff, M, N, K, tA, tB, rank, outBatch[rank], strideA[rank], strideB[rank]]. */
  gemm(heap: ArrayBuffer, desc: Float64Array): void;
  /** out[pre, post] = sum_r x[pre, r, post] (divided by red when `mean` is 1). */
  sum(heap: ArrayBuffer, xOff: number, outOff: number, pre: number, red: number, post: number, mean: number): void;
  /** out = a (op) b with broadcasting; desc = [aOff, bOff, outOff, op, rank, shape[rank], strideA[rank], strideB[rank]]. */
  binary(heap: ArrayBuffer, desc: Float64Array): void;
  /** out = op(x) over n floats; op 0 = sigmoid, 1 = exp. */
  unary(heap: ArrayBuffer, xOff: number, outOff: number, n: number, op: number): void;
  /** 4-byte elements permuted; desc = [xOff, outOff, rank, outShape[rank], xStride[rank]]. */
  transpose(heap: ArrayBuffer, desc: Float64Array): void;
  /** Fused Adam update; desc = [value, m, v, g, outValue, outM, outV offsets, n, b1, 1-b1, b2, 1-b2, 1-accB1, 1-accB2, eps, -lr]. */
  adam(heap: ArrayBuffer, desc: Float64Array): void;
  /** Fused gradient: softmax (1) of rows x channels, or sigmoid (0) over `rows` floats. */
  grad(heap: ArrayBuffer, dyOff: number, yOff: number, outOff: number, rows: number, channels: number, softmax: number): void;
  /** Layer norm forward (desc [x, gamma, beta, y, mean, rstd offsets, rows, C, eps]) or backward
   *  (desc [x, gamma, dy, mean, rstd, dx, dgamma, dbeta offsets, rows, C]). */
  layerNorm(heap: ArrayBuffer, desc: Float64Array, backward: boolean): void;
  /** quick-GELU of n floats of x, or (backward) its gradient given dy (dyOff unused forward). */
  quickGelu(heap: ArrayBuffer, xOff: number, dyOff: number, outOff: number, n: number, backward: boolean): void;
  /** Row softmax of x: [rows, channels]. */
  softmax(heap: ArrayBuffer, xOff: number, outOff: number, rows: number, channels: number): void;
  /** The BLAS build and thread counts. */
  info(): { blas: string; blasThreads: number; poolThreads: number };
}

/** Where `npm install` puts the addon, relative to the project root. */
export const ADDON_RELATIVE_PATH = 'build/Release/lens_accel.node';

/** How to get the addon, printed with every "stock kernels" message. */
export const BUILD_HINT =
  'install libopenblas-dev (apt-get install libopenblas-dev), then run `npm run build:native` (or `npm install`)';

export type NativeLoad = { ok: true; addon: NativeAddon; path: string } | { ok: false; reason: string };

let cached: NativeLoad | null = null;

/**
 * The addon, loaded once. `LENS_NATIVE=0` turns it off (for comparisons and to test
 * the fallback path); a missing or unloadable file is reported, not thrown.
 */
export function loadNative(): NativeLoad {
  if (cached) return cached;
  cached = tryLoad();
  return cached;
}

function tryLoad(): NativeLoad {
  if (process.env.LENS_NATIVE === '0') return { ok: false, reason: 'disabled by LENS_NATIVE=0' };
  let root: string;
  try {
    root = projectRoot();
  } catch (e) {
    return { ok: false, reason: (e as Error).message };
  }
  const path = join(root, ADDON_RELATIVE_PATH);
  if (!existsSync(path)) return { ok: false, reason: `native addon not built (${ADDON_RELATIVE_PATH} is missing)` };
  try {
    const req = createRequire(join(root, 'package.json'));
    const addon = req(path) as NativeAddon;
    const required = ['gemm', 'transpose', 'adam', 'layerNorm', 'quickGelu'] as const; // the newest of each build
    if (required.some((f) => typeof addon[f] !== 'function')) {
      return { ok: false, reason: `${ADDON_RELATIVE_PATH} is from another version (functions missing): rebuild it (npm run build:native)` };
    }
    return { ok: true, addon, path };
  } catch (e) {
    // typically "libopenblas.so.0: cannot open shared object file" after the library was removed
    return { ok: false, reason: `${ADDON_RELATIVE_PATH} failed to load: ${(e as Error).message.split('\n')[0]}` };
  }
}
