/**
 * What the experiment scripts share: one optimiser step without the training loop's
 * checkpoints, logs and NaN guard (src/train/loop.ts has those for the real stages), and
 * the `--pos2d` code of the visual tokens.
 */
import * as tf from '@tensorflow/tfjs-core';
import type { LensModel } from '../src/model/lens';
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

/**
 * [1, g*g, C]: a fixed 2D sin-cos code of each visual token's (row, col) on the g x g grid,
 * times `scale` (quarters of C: sin / cos of the column, sin / cos of the row).
 */
export function sinCos2d(g: number, C: number, scale: number): tf.Tensor3D {
  const q = C / 4;
  const code = new Float32Array(g * g * C);
  for (let r = 0; r < g; r++) {
    for (let c = 0; c < g; c++) {
      const o = (r * g + c) * C;
      for (let k = 0; k < q; k++) {
        const f = Math.PI * Math.pow(100, -k / q);
        code[o + k] = Math.sin(f * c);
        code[o + q + k] = Math.cos(f * c);
        code[o + 2 * q + k] = Math.sin(f * r);
        code[o + 3 * q + k] = Math.cos(f * r);
      }
    }
  }
  return tf.mul(tf.tensor3d(code, [1, g * g, C]), scale) as tf.Tensor3D;
}

/** `--pos2d S`: adds sinCos2d(S) to every output of the model's vision encoder (its visual tokens' 2D positions). */
export function addPos2d(model: LensModel, scale: number): void {
  const code = sinCos2d(Math.sqrt(model.vision.numTokens), model.config.mllm.hiddenSize, scale);
  const plain = model.vision.apply.bind(model.vision);
  model.vision.apply = (images: tf.Tensor4D) => tf.tidy(() => tf.add(plain(images), code) as tf.Tensor3D);
}

/**
 * How much the visual tokens differ from one another: the norm of their mean over every
 * token of every image, and the root-mean-square norm of each token's deviation from it.
 * A vision encoder whose output collapses to one vector (mean large, deviation small) leaves
 * the MLLM's layer norms nothing to tell the tokens apart by.
 */
export function visualSpread(encode: (images: tf.Tensor4D) => tf.Tensor3D, images: tf.Tensor4D): { meanNorm: number; deviationRms: number } {
  return tf.tidy(() => {
    const v = encode(images);
    const flat = tf.reshape(v, [-1, v.shape[2]]);
    const mean = tf.mean(flat, 0);
    const dev = tf.sub(flat, mean);
    return { meanNorm: tf.norm(mean).dataSync()[0]!, deviationRms: Math.sqrt(tf.mean(tf.sum(tf.square(dev), -1)).dataSync()[0]!) };
  });
}
