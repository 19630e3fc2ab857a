/**
 * Public API of the wasm-backend acceleration (issue #3; docs/performance.md):
 * native kernels on an N-API addon over OpenBLAS, plus the training kernels the
 * wasm backend lacks. src/backend.ts calls `registerWasmAccel()` when wasm starts.
 */
export { registerWasmAccel, setWasmAccel, stockKernel, wasmAccelStatus, type AccelStatus } from './register';
export { loadNative, BUILD_HINT, ADDON_RELATIVE_PATH, type NativeAddon, type NativeLoad } from './native';
export { adam, FusedAdamOptimizer, ADAM_KERNEL } from './adam';
export { layerNorm, layerNormComposite, LAYER_NORM_KERNEL, LAYER_NORM_GRAD_KERNEL } from './layernorm';
export { quickGelu, quickGeluComposite, QUICK_GELU_KERNEL, QUICK_GELU_GRAD_KERNEL } from './quick-gelu';
