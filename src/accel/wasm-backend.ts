/**
 * The few internals of tfjs-backend-wasm 4.22 (`BackendWasm`, backend_wasm.ts) that
 * the replacement kernels use: the heap, each tensor's byte offset in it, output
 * allocation and reference counts. Typed here once so every kernel file reads the
 * same contract; checked at registration (`looksLikeWasmBackend`).
 */
import * as tf from '@tensorflow/tfjs-core';

/** What tfjs-backend-wasm stores per data id (its `TensorData`). */
export interface WasmTensorData {
  id: number;
  /** Byte offset of the tensor's first element in the wasm heap. */
  memoryOffset: number;
  shape: number[];
  dtype: tf.DataType;
  refCount: number;
}

/** The parts of tfjs-backend-wasm's BackendWasm used here. */
export interface WasmBackend {
  wasm: { HEAPU8: Uint8Array };
  dataIdMap: { get(dataId: tf.DataId): WasmTensorData };
  /** Allocates an output on the wasm heap (this may grow the heap: re-read HEAPU8 after). */
  makeOutput(shape: number[], dtype: tf.DataType, memoryOffset?: number, values?: tf.backend_util.BackendValues): tf.TensorInfo;
  disposeData(dataId: tf.DataId, force?: boolean): boolean;
  incRef(dataId: tf.DataId): void;
  typedArrayFromHeap(t: tf.TensorInfo): Float32Array | Int32Array | Uint8Array;
}

/** The arguments every kernel function receives. */
export interface KernelArgs {
  /** Named inputs; optional ones (a fused bias) may be absent at run time. */
  inputs: Record<string, tf.TensorInfo>;
  backend: WasmBackend;
  attrs?: tf.NamedAttrMap;
}

export type WasmKernelFunc = (args: KernelArgs) => tf.TensorInfo | tf.TensorInfo[];

/** True if `b` has the internals above (guards against a tfjs-backend-wasm upgrade). */
export function looksLikeWasmBackend(b: unknown): b is WasmBackend {
  const w = b as Partial<WasmBackend> | null;
  return (
    w != null &&
    w.wasm != null &&
    w.wasm.HEAPU8 instanceof Uint8Array &&
    w.dataIdMap != null &&
    typeof w.dataIdMap.get === 'function' &&
    typeof w.makeOutput === 'function' &&
    typeof w.typedArrayFromHeap === 'function' &&
    typeof w.incRef === 'function'
  );
}

/** The heap's current ArrayBuffer (fetch it after the last allocation of a kernel). */
export function heapBuffer(backend: WasmBackend): ArrayBuffer {
  return backend.wasm.HEAPU8.buffer as ArrayBuffer;
}

/** Byte offset of a tensor in the wasm heap. */
export function offsetOf(backend: WasmBackend, t: tf.TensorInfo): number {
  return backend.dataIdMap.get(t.dataId).memoryOffset;
}

/** Runs the kernel currently registered for `name` on wasm (ours or stock). */
export function callKernel(name: string, args: KernelArgs): tf.TensorInfo {
  const k = tf.getKernel(name, 'wasm');
  if (!k) throw new Error(`kernel ${name} is not registered for backend 'wasm'`);
  return k.kernelFunc(args as unknown as Parameters<tf.KernelFunc>[0]) as tf.TensorInfo;
}

/** Frees an intermediate produced inside a kernel. */
export function disposeInfo(backend: WasmBackend, t: tf.TensorInfo): void {
  backend.disposeData(t.dataId);
}
