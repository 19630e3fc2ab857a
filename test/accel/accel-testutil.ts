/**
 * Helpers for the wasm acceleration tests: start wasm through src/backend.ts (which
 * registers the accelerated kernels), run a function under the stock or the
 * accelerated kernels, and an all-close check with a readable failure message.
 */
import * as tf from '@tensorflow/tfjs-core';
// tfjs-core's node bundle registers no gradients; this registers them (as the model tests do).
import '@tensorflow/tfjs-core/dist/register_all_gradients';
import '@tensorflow/tfjs-backend-cpu';
import { expect } from 'vitest';
import { loadNative, setWasmAccel } from '../../src/accel';
import { initBackend } from '../../src/backend';
import { Rng } from '../../src/random';

/** Starts the wasm backend with the project's kernels (once per test file / process). */
export async function startWasm(): Promise<void> {
  await initBackend({ name: 'wasm', quiet: true });
  await tf.setBackend('wasm');
}

/** True when the native addon is built and loads here (native-only tests skip otherwise). */
export const HAVE_NATIVE = loadNative().ok;

/** Host copies of the outputs of `f` (one tensor or several), computed with the stock or the native kernels. */
export function runWith(accel: boolean, f: () => tf.Tensor | tf.Tensor[]): Float32Array[] {
  setWasmAccel(accel);
  try {
    return tf.tidy(() => {
      const out = f();
      return (Array.isArray(out) ? out : [out]).map((t) => Float32Array.from(t.dataSync() as ArrayLike<number>));
    });
  } finally {
    setWasmAccel(true);
  }
}

/** Host copies of `f`'s outputs on another backend (e.g. cpu as the reference for kernels wasm lacks). */
export async function runOn(backend: string, f: () => tf.Tensor | tf.Tensor[]): Promise<Float32Array[]> {
  const prev = tf.getBackend();
  await tf.setBackend(backend);
  try {
    return tf.tidy(() => {
      const out = f();
      return (Array.isArray(out) ? out : [out]).map((t) => Float32Array.from(t.dataSync() as ArrayLike<number>));
    });
  } finally {
    await tf.setBackend(prev);
  }
}

/** Expects |a - b| <= atol + rtol |b| elementwise, reporting the worst element. */
export function expectAllClose(a: ArrayLike<number>, b: ArrayLike<number>, label: string, rtol = 1e-5, atol = 1e-5): void {
  expect(a.length, `${label}: length`).toBe(b.length);
  let worst = -1;
  let excess = 0;
  for (let i = 0; i < a.length; i++) {
    const d = Math.abs(a[i] - b[i]);
    const over = d - (atol + rtol * Math.abs(b[i]));
    if (!(over <= excess) && !(Number.isNaN(a[i]) && Number.isNaN(b[i]))) {
      excess = Number.isNaN(over) ? Infinity : over;
      worst = i;
    }
  }
  if (worst >= 0) expect.fail(`${label}: element ${worst} is ${a[worst]}, expected ${b[worst]} (tolerance ${atol} + ${rtol}*|expected|)`);
}

/** Plain numbers ~ N(0, 1) from the project's seeded Rng. */
export function randn(rng: Rng, shape: number[]): tf.Tensor {
  const n = shape.reduce((p, d) => p * d, 1);
  return tf.tensor(Float32Array.from({ length: n }, () => rng.normal(0, 1)), shape);
}
