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

/** Runs f in a tidy and copies its outputs to host arrays. */
function hostCopies(f: () => tf.Tensor | tf.Tensor[]): Float32Array[] {
  const copies: Float32Array[] = [];
  // collected outside the tidy's return value: tidy walks what it returns, element by element
  tf.tidy(() => {
    const out = f();
    for (const t of Array.isArray(out) ? out : [out]) copies.push(new Float32Array(t.dataSync() as ArrayLike<number>));
  });
  return copies;
}

/** Host copies of the outputs of `f` (one tensor or several), computed with the stock or the native kernels. */
export function runWith(accel: boolean, f: () => tf.Tensor | tf.Tensor[]): Float32Array[] {
  setWasmAccel(accel);
  try {
    return hostCopies(f);
  } finally {
    setWasmAccel(true);
  }
}

/** Host copies of `f`'s outputs on another backend (e.g. cpu as the reference for kernels wasm lacks). */
export async function runOn(backend: string, f: () => tf.Tensor | tf.Tensor[]): Promise<Float32Array[]> {
  const prev = tf.getBackend();
  await tf.setBackend(backend);
  try {
    return hostCopies(f);
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
  const v = new Float32Array(n); // a plain loop: Float32Array.from(arrayLike, fn) is far slower
  for (let i = 0; i < n; i++) v[i] = rng.normal(0, 1);
  return tf.tensor(v, shape);
}
