/**
 * Helpers for the MLLM-side model tests (tokenizer, vision encoder, MLLM, generation):
 * backend switching, an all-close matcher, gradient reach and a tiny fitted tokenizer.
 */
import * as tf from '@tensorflow/tfjs-core';
import '@tensorflow/tfjs-backend-cpu';
import '@tensorflow/tfjs-backend-wasm';
import { Tokenizer } from '../../src/model/tokenizer';

/** Switches the active tfjs backend. */
export { useBackend as setBackend } from '../backend-util';


/** Largest |a - b| over two equally long arrays (throws on a length mismatch). */
export function maxAbsDiff(a: ArrayLike<number>, b: ArrayLike<number>): number {
  if (a.length !== b.length) throw new Error(`length ${a.length} vs ${b.length}`);
  let m = 0;
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i]! - b[i]!));
  return Number.isNaN(m) ? Infinity : m;
}

/** Gradients of `loss` for the given named variables: names with no or all-zero gradient, and host copies. */
export function gradReach(named: Array<[string, tf.Variable]>, loss: () => tf.Scalar): { unreached: string[]; grads: Map<string, Float32Array> } {
  const { value, grads } = tf.variableGrads(loss, named.map(([, v]) => v));
  value.dispose();
  const unreached: string[] = [];
  const host = new Map<string, Float32Array>();
  for (const [name, v] of named) {
    const g = grads[v.name];
    const d = g ? Float32Array.from(g.dataSync() as Float32Array) : new Float32Array();
    host.set(name, d);
    if (!d.some((x) => x !== 0 && Number.isFinite(x))) unreached.push(name);
  }
  tf.dispose(grads);
  return { unreached, grads: host };
}

/** A small tokenizer (integers 0..63) fitted to a few referring sentences. */
export function tinyTokenizer(): Tokenizer {
  return Tokenizer.fit(
    ['the red circle left of the blue square', 'the largest green triangle', 'it is the second object from the left, so the answer is the red one'],
    { maxInt: 63 },
  );
}
