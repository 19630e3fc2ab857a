/**
 * Picks the tfjs backend once at start-up (DESIGN.md "Compute").
 *
 * Order tried: tfjs-node-gpu, tfjs-node (native TensorFlow, where the user could
 * install it), webgpu (a real GPU adapter through the optional `webgpu` package),
 * wasm (the default here), cpu (last resort). `LENS_BACKEND` names one instead, and
 * then it is an error if that one cannot start. The choice is printed once and
 * returned so every run can record it.
 */
import * as tf from '@tensorflow/tfjs-core';
// Gradients: tfjs-core's Node bundle registers none, and its ESM
// register_all_gradients cannot load under Node (extensionless imports). The union
// package's Node bundle registers them all into tfjs-core's global registry, the one
// every copy shares. Everything that trains starts a backend first, so this is the
// one place that needs it.
import '@tensorflow/tfjs';
import { installTileGradient } from './accel/tile-grad';

export const BACKEND_NAMES = ['tfjs-node-gpu', 'tfjs-node', 'webgpu', 'wasm', 'cpu'] as const;
export type BackendName = (typeof BACKEND_NAMES)[number];

/** What was chosen and why; saved in every run's resolved config. */
export interface BackendInfo {
  /** Our name for it (one of BACKEND_NAMES). */
  name: BackendName;
  /** tfjs's registry name (`tensorflow`, `webgpu`, `wasm`, `cpu`). */
  tfName: string;
  /** How it was chosen: `auto` or `LENS_BACKEND=<name>`. */
  chosenBy: string;
  /** Backend-specific detail, e.g. the GPU adapter or the wasm kernel set. */
  detail: string;
  /** Why each earlier candidate was skipped (auto mode only). */
  skipped: Record<string, string>;
}

/** Thrown when a backend cannot start: carries the reason and what to do. */
export class BackendError extends Error {
  override name = 'BackendError';
}

type Starter = () => Promise<{ tfName: string; detail: string }>;

async function importOptional(pkg: string): Promise<unknown> {
  try {
    return await import(pkg);
  } catch (e) {
    const code = (e as { code?: string }).code;
    if (code === 'ERR_MODULE_NOT_FOUND' || code === 'MODULE_NOT_FOUND') {
      throw new BackendError(`package ${pkg} is not installed (npm install ${pkg})`);
    }
    throw new BackendError(`package ${pkg} failed to load: ${(e as Error).message}`);
  }
}

async function activate(tfName: string): Promise<void> {
  tf.env().set('PROD', true); // no "install tfjs-node" banner: this project chooses its backend on purpose
  const ok = await tf.setBackend(tfName);
  if (!ok || tf.getBackend() !== tfName) {
    throw new BackendError(`tfjs backend '${tfName}' is registered but failed to initialise`);
  }
  await tf.ready();
}

const STARTERS: Record<BackendName, Starter> = {
  'tfjs-node-gpu': async () => {
    await importOptional('@tensorflow/tfjs-node-gpu');
    await activate('tensorflow');
    return { tfName: 'tensorflow', detail: 'native TensorFlow with CUDA' };
  },
  'tfjs-node': async () => {
    await importOptional('@tensorflow/tfjs-node');
    await activate('tensorflow');
    return { tfName: 'tensorflow', detail: 'native TensorFlow (CPU)' };
  },
  webgpu: async () => {
    const g = globalThis as { navigator?: { gpu?: unknown } };
    if (!g.navigator?.gpu) {
      const dawn = (await importOptional('webgpu')) as { create: (flags: string[]) => unknown; globals?: object };
      if (dawn.globals) Object.assign(globalThis, dawn.globals);
      const gpu = dawn.create([]);
      Object.defineProperty(globalThis, 'navigator', { value: { ...(g.navigator ?? {}), gpu }, configurable: true });
    }
    const gpu = (globalThis as unknown as { navigator: { gpu: { requestAdapter(): Promise<unknown> } } }).navigator.gpu;
    const adapter = (await gpu.requestAdapter()) as { isFallbackAdapter?: boolean; info?: { description?: string; vendor?: string } } | null;
    if (!adapter) throw new BackendError('no WebGPU adapter found (no GPU, or no Vulkan driver)');
    if (adapter.isFallbackAdapter) throw new BackendError('only a software (fallback) WebGPU adapter is present');
    await import('@tensorflow/tfjs-backend-webgpu');
    await activate('webgpu');
    const info = adapter.info;
    return { tfName: 'webgpu', detail: [info?.vendor, info?.description].filter(Boolean).join(' ') || 'WebGPU adapter' };
  },
  wasm: async () => {
    await import('@tensorflow/tfjs-backend-wasm');
    await activate('wasm');
    // Native matmul / element-wise kernels and the training kernels wasm lacks (issue #3,
    // docs/performance.md). A failure here must not cost the backend: report it and go on.
    let accel: string;
    try {
      const { registerWasmAccel } = await import('./accel/register');
      accel = registerWasmAccel().detail;
    } catch (e) {
      accel = `stock kernels: registering the native kernels failed (${(e as Error).message})`;
    }
    return { tfName: 'wasm', detail: `tfjs-backend-wasm (XNNPACK); ${accel}` };
  },
  cpu: async () => {
    await import('@tensorflow/tfjs-backend-cpu');
    await activate('cpu');
    return { tfName: 'cpu', detail: 'tfjs-backend-cpu (plain JavaScript)' };
  },
};

/** Hooks run after a backend starts (e.g. the native-matmul kernels for wasm). */
const afterStart: Array<(info: BackendInfo) => Promise<void> | void> = [];

/** Registers work to do once the backend is active; it may amend `info.detail`. */
export function onBackendStart(hook: (info: BackendInfo) => Promise<void> | void): void {
  afterStart.push(hook);
}

let current: Promise<BackendInfo> | null = null;

/**
 * Starts the backend (once per process; later calls return the same answer).
 * @param opts.name overrides `LENS_BACKEND`; `opts.quiet` suppresses the one-line report.
 */
export function initBackend(opts: { name?: string; quiet?: boolean } = {}): Promise<BackendInfo> {
  current ??= startBackend(opts.name ?? process.env.LENS_BACKEND, opts.quiet ?? false);
  return current;
}

/** The info of the started backend; throws if initBackend has not run. */
export async function backendInfo(): Promise<BackendInfo> {
  if (!current) throw new BackendError('no backend started yet: call initBackend() first');
  return current;
}

/** Starts a backend without the once-per-process cache (initBackend is the normal entry). */
export async function startBackend(requested: string | undefined, quiet = true): Promise<BackendInfo> {
  const skipped: Record<string, string> = {};
  let candidates: readonly BackendName[] = BACKEND_NAMES;
  let chosenBy = 'auto';
  if (requested !== undefined && requested !== '' && requested !== 'auto') {
    if (!(BACKEND_NAMES as readonly string[]).includes(requested)) {
      throw new BackendError(`LENS_BACKEND='${requested}' is not a backend; expected one of: auto, ${BACKEND_NAMES.join(', ')}`);
    }
    candidates = [requested as BackendName];
    chosenBy = `LENS_BACKEND=${requested}`;
  }
  for (const name of candidates) {
    try {
      const { tfName, detail } = await STARTERS[name]();
      const info: BackendInfo = { name, tfName, chosenBy, detail, skipped };
      installTileGradient(); // every backend: tfjs-core's Tile / broadcastTo gradient is one slice per tile
      for (const hook of afterStart) await hook(info);
      if (!quiet) console.log(`[lens] backend: ${name} (${info.detail}; chosen by ${chosenBy})`);
      return info;
    } catch (e) {
      const why = e instanceof BackendError ? e.message : `${(e as Error).name}: ${(e as Error).message}`;
      if (chosenBy !== 'auto') throw new BackendError(`backend '${name}' requested by LENS_BACKEND is not available: ${why}`);
      skipped[name] = why;
    }
  }
  throw new BackendError(`no tfjs backend could start: ${JSON.stringify(skipped)}`);
}
