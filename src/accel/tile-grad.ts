/**
 * The gradient of Tile (and so of `tf.broadcastTo`, which tfjs 4.22 runs as the Tile
 * kernel) as one reshape + sum per tiled axis, for every backend.
 *
 * tfjs-core's own Tile gradient adds up one `slice` of dy per tile: broadcasting SAM's
 * no-mask embedding [1, 1, 1, C] to the dense prompt [B, h, w, C] costs B*h*w slices of
 * the whole dy on every backward pass (2,048 slice + add kernels at batch 8 on the quick
 * preset; with this gradient and Conv3x3 as conv2d, `npm start`'s stage 0a went from 5.7 to
 * 2.1 min and its stage 2 from 1.8 to 1.0 min on wasm). Tiling lays the reps of an axis out
 * block-major (index i*s + a is block i, offset a), so reshaping that axis to [r, s] and
 * summing over r is the same gradient with one kernel per tiled axis.
 */
import * as tf from '@tensorflow/tfjs-core';

/** dy of `tile(x, reps)` -> dx (x's shape): per axis with reps > 1, reshape [.., r*s, ..] to [.., r, s, ..] and sum r. */
export function tileGradient(dy: tf.Tensor, xShape: readonly number[], reps: readonly number[]): tf.Tensor {
  if (xShape.length !== reps.length || dy.rank !== xShape.length) {
    throw new Error(`tileGradient: x of rank ${xShape.length}, reps of ${reps.length}, dy of ${dy.rank}: expected equal ranks`);
  }
  return tf.tidy(() => {
    let g = dy;
    const shape = [...dy.shape];
    for (let i = 0; i < xShape.length; i++) {
      const r = reps[i]!;
      if (r === 1) continue;
      const s = xShape[i]!;
      const before = shape.slice(0, i).reduce((a, b) => a * b, 1);
      const after = shape.slice(i + 1).reduce((a, b) => a * b, 1);
      g = tf.sum(tf.reshape(g, [before, r, s, after]), 1);
      shape[i] = s;
      g = tf.reshape(g, shape);
    }
    return g === dy ? tf.clone(dy) : g;
  });
}

let stock: tf.GradConfig | null = null;
let ours: tf.GradConfig | null = null;

/** Replaces tfjs-core's Tile gradient with `tileGradient` (idempotent; backend-independent maths). */
export function installTileGradient(): void {
  if (ours) return;
  stock = tf.getGradient('Tile') ?? null;
  if (!stock) return; // nothing to replace: tfjs-core registers it when its gradients load
  ours = {
    ...stock,
    gradFunc: (dy, saved, attrs) => {
      const [x] = saved;
      const { reps } = attrs as unknown as { reps: number[] };
      return { x: () => tileGradient(dy as tf.Tensor, x!.shape, reps) };
    },
  };
  tf.registerGradient(ours);
}

/** Switches between this gradient (true) and tfjs-core's slice-per-tile one (`npm run bench:rules` times both). */
export function useTileGradient(on: boolean): void {
  installTileGradient();
  const config = on ? ours : stock;
  if (config) tf.registerGradient(config);
}
