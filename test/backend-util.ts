/**
 * Switches the active backend for a test, after starting the project's backend once
 * (initBackend), so that wasm runs with the kernels src/accel registers, as in real runs.
 */
import * as tf from '@tensorflow/tfjs-core';
import '@tensorflow/tfjs-backend-cpu';
import '@tensorflow/tfjs-backend-wasm';
import { initBackend } from '../src/backend';

export async function useBackend(name: 'cpu' | 'wasm'): Promise<void> {
  await initBackend({ quiet: true });
  await tf.setBackend(name);
  await tf.ready();
  if (tf.getBackend() !== name) throw new Error(`could not start backend ${name}`);
}
