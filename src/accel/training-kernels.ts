/**
 * Kernels that tfjs-backend-wasm 4.22 does not have and training needs (issue #3):
 * - Conv2DBackpropFilter: the weight gradient of conv2d / conv1d / conv2dTranspose.
 *   im2col + one sgemm per batch chunk: dW[fh*fw*inC, outC] = P^T dy, with
 *   P[(b,oh,ow), (kh,kw,c)] = x[b, oh*sh - padTop + kh, ow*sw - padLeft + kw, c]
 *   (0 outside the image). Semantics: tfjs-backend-cpu kernels/Conv2DBackpropFilter.ts.
 * - UnsortedSegmentSum: the gradient of gather (every embedding table).
 *   out[s, ...] = sum over i with segmentIds[i] == s of x[i, ...]; ids outside
 *   [0, numSegments) are dropped (tfjs-backend-cpu / TensorFlow semantics).
 * - Einsum: tfjs-backend-cpu kernels/Einsum.ts, on the registered wasm kernels.
 * Each works without the native addon (a JavaScript loop replaces the sgemm).
 */
import * as tf from '@tensorflow/tfjs-core';
import type { NativeAddon } from './native';
import { callKernel, disposeInfo, heapBuffer, offsetOf, type KernelArgs, type WasmBackend } from './wasm-backend';

/** Largest im2col scratch matrix, in floats (64 MiB): bigger batches are done in chunks. */
const IM2COL_MAX_FLOATS = 16 * 1024 * 1024;

/** The attributes tfjs gives both conv2d gradient kernels (the filter's or the input's shape besides). */
export interface ConvBackpropAttrs {
  strides: [number, number] | number;
  pad: 'valid' | 'same' | number | tf.backend_util.ExplicitPadding;
  dataFormat: 'NHWC' | 'NCHW';
  dimRoundingMode?: 'floor' | 'round' | 'ceil';
}

interface Conv2DBackpropFilterAttrs extends ConvBackpropAttrs {
  filterShape: [number, number, number, number];
}

/** Writes im2col rows for images [b0, b0 + nb) of x (NHWC) into p (row-major [nb*outH*outW, fh*fw*inC]). */
function im2col(x: Float32Array, p: Float32Array, info: tf.backend_util.Conv2DInfo, b0: number, nb: number): void {
  const { inHeight: H, inWidth: W, inChannels: C, outHeight: OH, outWidth: OW, filterHeight: FH, filterWidth: FW } = info;
  const { strideHeight: SH, strideWidth: SW } = info;
  const top = info.padInfo.top;
  const left = info.padInfo.left;
  const K = FH * FW * C;
  let row = 0;
  for (let b = b0; b < b0 + nb; b++) {
    const xb = b * H * W * C;
    for (let oh = 0; oh < OH; oh++) {
      for (let ow = 0; ow < OW; ow++, row++) {
        let o = row * K;
        for (let kh = 0; kh < FH; kh++) {
          const ih = oh * SH - top + kh;
          for (let kw = 0; kw < FW; kw++, o += C) {
            const iw = ow * SW - left + kw;
            if (ih < 0 || ih >= H || iw < 0 || iw >= W) {
              p.fill(0, o, o + C);
            } else {
              const src = xb + (ih * W + iw) * C;
              for (let c = 0; c < C; c++) p[o + c] = x[src + c];
            }
          }
        }
      }
    }
  }
}

/** dw[K, N] += p[rows, K]^T dy[rows, N] in JavaScript (the fallback for the sgemm). */
function addPtDy(p: Float32Array, dy: Float32Array, dyStart: number, dw: Float32Array, rows: number, K: number, N: number): void {
  for (let r = 0; r < rows; r++) {
    const pr = r * K;
    const dr = dyStart + r * N;
    for (let k = 0; k < K; k++) {
      const v = p[pr + k];
      if (v === 0) continue;
      const o = k * N;
      for (let n = 0; n < N; n++) dw[o + n] += v * dy[dr + n];
    }
  }
}

/** Conv2DBackpropFilter (inputs x, dy; attrs strides, pad, dataFormat, dimRoundingMode, filterShape). */
export function makeConv2DBackpropFilter(addon: NativeAddon | null) {
  return (args: KernelArgs): tf.TensorInfo => {
    const backend = args.backend;
    const attrs = args.attrs as unknown as Conv2DBackpropFilterAttrs;
    let { x, dy } = args.inputs;
    const toDispose: tf.TensorInfo[] = [];
    const fmt = tf.backend_util.convertConv2DDataFormat(attrs.dataFormat ?? 'NHWC');
    if (fmt === 'channelsFirst') {
      // NCHW -> NHWC through the wasm Transpose, so one im2col layout serves both
      x = callKernel('Transpose', { inputs: { x }, backend, attrs: { perm: [0, 2, 3, 1] } });
      dy = callKernel('Transpose', { inputs: { x: dy }, backend, attrs: { perm: [0, 2, 3, 1] } });
      toDispose.push(x, dy);
    }
    const info = tf.backend_util.computeConv2DInfo(
      x.shape as [number, number, number, number],
      attrs.filterShape,
      attrs.strides,
      1,
      attrs.pad,
      attrs.dimRoundingMode,
      false,
      'channelsLast',
    );
    const rowsPerImage = info.outHeight * info.outWidth;
    const K = info.filterHeight * info.filterWidth * info.inChannels;
    const N = info.outChannels;
    const out = backend.makeOutput(info.filterShape, 'float32');
    const chunk = Math.max(1, Math.min(info.batchSize, Math.floor(IM2COL_MAX_FLOATS / Math.max(1, rowsPerImage * K))));
    const scratch = backend.makeOutput([chunk * rowsPerImage, K], 'float32');
    (backend.typedArrayFromHeap(out) as Float32Array).fill(0);
    for (let b0 = 0; b0 < info.batchSize; b0 += chunk) {
      const nb = Math.min(chunk, info.batchSize - b0);
      const rows = nb * rowsPerImage;
      // views re-made per chunk: nothing here allocates, but they must come after makeOutput
      const xv = backend.typedArrayFromHeap(x) as Float32Array;
      const pv = backend.typedArrayFromHeap(scratch) as Float32Array;
      im2col(xv, pv, info, b0, nb);
      if (rows * K === 0) continue;
      if (addon) {
        const desc = new Float64Array([
          offsetOf(backend, scratch), // A = P, read transposed: [K, rows]
          offsetOf(backend, dy) + b0 * rowsPerImage * N * 4, // B = dy rows of this chunk: [rows, N]
          offsetOf(backend, out),
          K, N, rows, 1, 0, 1, 0, // M, N, K, transA, transB, beta = accumulate, batch rank 0
        ]);
        addon.gemm(heapBuffer(backend), desc);
      } else {
        addPtDy(pv, backend.typedArrayFromHeap(dy) as Float32Array, b0 * rowsPerImage * N, backend.typedArrayFromHeap(out) as Float32Array, rows, K, N);
      }
    }
    disposeInfo(backend, scratch);
    for (const t of toDispose) disposeInfo(backend, t);
    return out;
  };
}

/** UnsortedSegmentSum (inputs x, segmentIds; attrs numSegments). x: [...ids.shape, ...inner] -> [numSegments, ...inner]. */
export function makeUnsortedSegmentSum(_addon: NativeAddon | null) {
  return (args: KernelArgs): tf.TensorInfo => {
    const backend = args.backend;
    const { x, segmentIds } = args.inputs;
    const { numSegments } = args.attrs as { numSegments: number };
    const idRank = segmentIds.shape.length;
    for (let i = 0; i < idRank; i++) {
      if (segmentIds.shape[i] !== x.shape[i]) {
        throw new Error(`UnsortedSegmentSum: segmentIds shape [${segmentIds.shape}] must be a prefix of x shape [${x.shape}]`);
      }
    }
    const inner = x.shape.slice(idRank);
    const innerSize = tf.util.sizeFromShape(inner);
    const out = backend.makeOutput([numSegments, ...inner], x.dtype);
    const ov = backend.typedArrayFromHeap(out);
    ov.fill(0);
    const xv = backend.typedArrayFromHeap(x);
    const ids = backend.typedArrayFromHeap(segmentIds);
    for (let i = 0; i < ids.length; i++) {
      const s = ids[i];
      if (s < 0 || s >= numSegments) continue; // dropped, as TensorFlow does
      const o = s * innerSize;
      const src = i * innerSize;
      for (let j = 0; j < innerSize; j++) ov[o + j] += xv[src + j];
    }
    return out;
  };
}

/** Einsum (inputs: the operands; attrs equation): tfjs-backend-cpu's algorithm on wasm kernels. */
export function makeEinsum(_addon: NativeAddon | null) {
  return (args: KernelArgs): tf.TensorInfo => {
    const backend: WasmBackend = args.backend;
    const { equation } = args.attrs as { equation: string };
    const tensors = Object.keys(args.inputs)
      .sort((p, q) => Number(p) - Number(q))
      .map((k) => args.inputs[k]);
    const bu = tf.backend_util;
    const { allDims, summedDims, idDims } = bu.decodeEinsumEquation(equation, tensors.length);
    bu.checkEinsumDimSizes(allDims.length, idDims, tensors as tf.Tensor[]);
    const { path, steps } = bu.getEinsumComputePath(summedDims, idDims);
    let out: tf.TensorInfo | null = null;
    let remaining = allDims.length;
    const temps: tf.TensorInfo[] = [];
    for (let i = 0; i < steps.length; i++) {
      for (const term of steps[i]) {
        const { permutationIndices: perm, expandDims } = bu.getEinsumPermutation(remaining, idDims[term]);
        let t = tensors[term];
        if (!bu.isIdentityPermutation(perm)) {
          t = callKernel('Transpose', { inputs: { x: t }, backend, attrs: { perm } });
          temps.push(t);
        }
        const target = t.shape.slice();
        for (const d of expandDims) target.splice(d, 0, 1);
        if (!tf.util.arraysEqual(t.shape, target)) {
          t = callKernel('Reshape', { inputs: { x: t }, backend, attrs: { shape: target } });
          temps.push(t);
        }
        if (out === null) {
          out = t;
        } else {
          out = callKernel('Multiply', { inputs: { a: t, b: out }, backend });
          temps.push(out);
        }
      }
      if (i < steps.length - 1) {
        if (path[i] >= 0) {
          out = callKernel('Sum', {
            inputs: { x: out as tf.TensorInfo },
            backend,
            attrs: { axis: path[i] - (allDims.length - remaining), keepDims: false },
          });
          temps.push(out);
        }
        remaining--;
      }
    }
    if (out === null) throw new Error(`Einsum: equation '${equation}' produced no output`);
    for (const t of temps) if (t !== out) disposeInfo(backend, t);
    // an untouched operand must not be handed back as a new tensor without a reference
    if (tensors.includes(out)) out = callKernel('Identity', { inputs: { x: out }, backend });
    return out;
  };
}
