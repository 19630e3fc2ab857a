/**
 * What the experiment scripts share: one optimiser step without the training loop's
 * checkpoints, logs and NaN guard (src/train/loop.ts has those for the real stages).
 */
import * as tf from '@tensorflow/tfjs-core';
import { AdamW, clipByGlobalNorm } from '../src/train/optim';

/**
 * Gradients of `loss` over `params`, clipped to global norm 1 (as every stage), one AdamW
 * update at `lr` (`lrScale`: a parameter's own multiple of it). Returns the loss value and
 * leaves no tensor behind.
 */
export function optimiserStep(
  opt: AdamW,
  params: ReadonlyArray<readonly [string, tf.Variable]>,
  loss: () => tf.Scalar,
  lr: number,
  lrScale?: (name: string) => number,
): number {
  const nameOf = new Map(params.map(([n, v]) => [v.name, n] as const));
  const { value, grads } = tf.variableGrads(loss, params.map(([, v]) => v));
  const named: Record<string, tf.Tensor> = {};
  for (const [vn, g] of Object.entries(grads)) named[nameOf.get(vn)!] = g;
  const clipped = clipByGlobalNorm(named, 1).grads;
  const v = value.dataSync()[0]!;
  opt.apply(clipped, lr, lrScale);
  tf.dispose([value, ...Object.values(grads), ...Object.values(clipped)]);
  return v;
}
