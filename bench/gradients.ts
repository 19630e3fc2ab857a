/**
 * Registers tfjs-core's gradient functions for the benchmark. tfjs-core's Node
 * bundle registers none (the umbrella @tensorflow/tfjs package imports
 * `@tensorflow/tfjs-core/dist/register_all_gradients`), and that ES-module file
 * cannot be imported by Node's ESM loader (it imports `./gradients`, which is both
 * a file and a directory). tsx's CommonJS loader resolves it the CommonJS way and
 * transpiles it; the gradients land in tfjs's global registry, shared by every copy.
 */
import * as tf from '@tensorflow/tfjs-core';
import { join } from 'node:path';
import { require as tsxRequire } from 'tsx/cjs/api';
import { projectRoot } from '../src/util/paths';

/** Registers every tfjs-core gradient once (a no-op if something already did). */
export function registerGradients(): void {
  if (tf.getGradient('Mean')) return;
  tsxRequire('@tensorflow/tfjs-core/dist/register_all_gradients', join(projectRoot(), 'package.json'));
  if (!tf.getGradient('Mean')) throw new Error('bench: registering tfjs-core gradients failed');
}
