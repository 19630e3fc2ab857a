/**
 * Conv2DBackpropInput for the wasm backend at stride 1: the input gradient of a
 * stride-1 conv2d is itself a conv2d, of dy with the filter flipped in space and its
 * channel axes swapped, padded by (filter size - 1 - forward padding) on each side:
 *   dx[i] = sum_k dy[i + top - k] W[k] = sum_k' dy[i - (fh - 1 - top) + k'] W[fh - 1 - k'].
 * It runs on the registered Conv2D (XNNPACK), replacing tfjs-backend-wasm 4.22's
 * kernels/Conv2DBackpropInput.ts, a scalar loop nest: the backward pass of SAM's 3x3
 * neck conv took 92 ms of a stage-0a step, its forward 10. Other strides, NCHW and
 * non-float32 keep the stock kernel.
 */
import * as tf from '@tensorflow/tfjs-core';
import type { ConvBackpropAttrs } from './training-kernels';
import { callKernel, disposeInfo, type KernelArgs } from './wasm-backend';

interface Conv2DBackpropInputAttrs extends ConvBackpropAttrs {
  inputShape: [number, number, number, number];
}

export function makeConv2DBackpropInput(stock: tf.KernelFunc) {
  return (args: KernelArgs): tf.TensorInfo => {
    const { dy, filter } = args.inputs;
    const a = args.attrs as unknown as Conv2DBackpropInputAttrs;
    const [sh, sw] = typeof a.strides === 'number' ? [a.strides, a.strides] : a.strides;
    if (sh !== 1 || sw !== 1 || (a.dataFormat ?? 'NHWC') !== 'NHWC' || dy.dtype !== 'float32' || filter.dtype !== 'float32') {
      return stock(args as never) as tf.TensorInfo;
    }
    const [fh, fw] = filter.shape as [number, number, number, number];
    const info = tf.backend_util.computeConv2DInfo(a.inputShape, filter.shape as [number, number, number, number], 1, 1, a.pad, a.dimRoundingMode, false, 'channelsLast');
    const p = info.padInfo;
    const pad: tf.backend_util.ExplicitPadding = [[0, 0], [fh - 1 - p.top, fh - 1 - p.bottom], [fw - 1 - p.left, fw - 1 - p.right], [0, 0]];
    if (pad.flat().some((v) => v < 0)) return stock(args as never) as tf.TensorInfo;
    const backend = args.backend;
    const flipped = callKernel('Reverse', { inputs: { x: filter }, backend, attrs: { dims: [0, 1] } });
    const swapped = callKernel('Transpose', { inputs: { x: flipped }, backend, attrs: { perm: [0, 1, 3, 2] } });
    disposeInfo(backend, flipped);
    const dx = callKernel('Conv2D', { inputs: { x: dy, filter: swapped }, backend, attrs: { strides: [1, 1], pad, dataFormat: 'NHWC', dilations: [1, 1] } });
    disposeInfo(backend, swapped);
    return dx;
  };
}
