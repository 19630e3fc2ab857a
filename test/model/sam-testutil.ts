/**
 * Helpers for the segmentation-side model tests: backend switching, an all-close
 * matcher, and the gradient-reach check ("one backward pass reaches every
 * trainable variable", TRL trainer-test style).
 */
import * as tf from '@tensorflow/tfjs-core';
import '@tensorflow/tfjs-backend-cpu';
import '@tensorflow/tfjs-backend-wasm';
import { expect } from 'vitest';

/** Switches the active tfjs backend ('cpu' or 'wasm'). */
export { useBackend } from '../backend-util';


/** Asserts |a - b| <= atol + rtol*|b| elementwise, with a message naming the worst index. */
export function expectAllClose(a: tf.Tensor | ArrayLike<number>, b: tf.Tensor | ArrayLike<number>, atol = 1e-5, rtol = 1e-5): void {
  const av = a instanceof tf.Tensor ? a.dataSync() : a;
  const bv = b instanceof tf.Tensor ? b.dataSync() : b;
  if (a instanceof tf.Tensor && b instanceof tf.Tensor) expect(a.shape).toEqual(b.shape);
  expect(av.length).toBe(bv.length);
  let worst = -1;
  let worstErr = 0;
  for (let i = 0; i < av.length; i++) {
    const err = Math.abs(av[i]! - bv[i]!) - (atol + rtol * Math.abs(bv[i]!));
    if (!(err <= 0) && (worst < 0 || err > worstErr || Number.isNaN(err))) {
      worst = i;
      worstErr = err;
    }
  }
  if (worst >= 0) throw new Error(`not all close: at ${worst}: ${av[worst]} vs ${bv[worst]} (atol ${atol}, rtol ${rtol})`);
}

/**
 * Gradients of `loss` w.r.t. the named variables; returns the names whose gradient is
 * missing or all zero, and the gradients' host values (for backend comparisons).
 */
export function gradientReach(
  named: Array<[string, tf.Variable]>,
  loss: () => tf.Scalar,
): { unreached: string[]; grads: Map<string, Float32Array> } {
  const vars = named.map(([, v]) => v);
  const { value, grads } = tf.variableGrads(loss, vars);
  value.dispose();
  const unreached: string[] = [];
  const host = new Map<string, Float32Array>();
  for (const [name, v] of named) {
    const g = grads[v.name];
    if (!g) {
      unreached.push(name);
      continue;
    }
    const d = g.dataSync() as Float32Array;
    host.set(name, Float32Array.from(d));
    if (!d.some((x) => x !== 0 && Number.isFinite(x))) unreached.push(name);
  }
  tf.dispose(grads);
  return { unreached, grads: host };
}
