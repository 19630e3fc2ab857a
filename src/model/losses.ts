/**
 * Training losses as standalone functions with shapes in their docs, combined by
 * a weight table (sam2 `training/loss_fns.py` style).
 *
 * Segmentation (official LENS code, LISA's `sigmoid_ce_loss` / `dice_loss` shape):
 * pixel-mean BCE per mask + Dice with +1 smoothing per mask, both averaged over
 * masks, weights 1:1, at the ground-truth resolution (upsample the decoder's
 * low-res logits first with `upsampleMaskLogits`). Pixels labelled 255 are
 * ignored (LISA's ReasonSeg convention). Token cross-entropy for the supervised
 * MLLM stages (stage 0b SFT, the LISA baseline).
 *
 * Every function returns a scalar the caller owns; inputs are not disposed.
 */
import * as tf from '@tensorflow/tfjs-core';
import { assertShape } from './sam/common';

/** Label value of "ignore" pixels in ground-truth masks (LISA, ReasonSeg). */
export const IGNORE_LABEL = 255;

/** Weights of the segmentation loss terms. */
export interface SegLossWeights {
  /** Weight of the pixel-mean BCE (official LENS: 1.0; LISA: 2.0). */
  bce: number;
  /** Weight of the Dice loss (official LENS: 1.0; LISA: 0.5). */
  dice: number;
}

/** The official LENS weights, 1:1 (lens-official-code-facts.md). */
export const DEFAULT_SEG_LOSS_WEIGHTS: SegLossWeights = { bce: 1, dice: 1 };

/** LISA's weights (bce_loss_weight 2.0, dice_loss_weight 0.5), for the LISA-style baseline. */
export const LISA_SEG_LOSS_WEIGHTS: SegLossWeights = { bce: 2, dice: 0.5 };

function checkSame(where: string, a: tf.Tensor, b: tf.Tensor, what: string): void {
  if (a.shape.length !== b.shape.length || a.shape.some((s, i) => s !== b.shape[i])) {
    throw new Error(`${where}: ${what} shape [${b.shape.join(', ')}] must equal the logits' [${a.shape.join(', ')}]`);
  }
}

/** Per-mask mean of v over valid pixels: v, valid [B, ...] -> [B]. */
function maskedMeanPerMask(v: tf.Tensor, valid: tf.Tensor | undefined): tf.Tensor1D {
  const b = v.shape[0]!;
  const flat = tf.reshape(v, [b, -1]); // [B, P]
  if (!valid) return tf.mean(flat, 1) as tf.Tensor1D;
  const w = tf.reshape(valid, [b, -1]);
  return tf.div(tf.sum(tf.mul(flat, w), 1), tf.maximum(tf.sum(w, 1), 1)) as tf.Tensor1D;
}

/**
 * Pixel-mean binary cross-entropy with logits, averaged over masks:
 * mean_b [ sum_p valid * (max(x,0) - x y + log(1 + e^-|x|)) / sum_p valid ].
 * logits, targets (0/1), valid (0/1, optional) [B, H, W] -> scalar.
 */
export function bceLoss(logits: tf.Tensor3D, targets: tf.Tensor3D, valid?: tf.Tensor3D): tf.Scalar {
  checkSame('bceLoss', logits, targets, 'targets');
  if (valid) checkSame('bceLoss', logits, valid, 'valid');
  return tf.tidy(() => {
    const x = logits;
    const y = tf.cast(targets, 'float32');
    const ce = tf.add(tf.sub(tf.relu(x), tf.mul(x, y)), tf.log1p(tf.exp(tf.neg(tf.abs(x))))); // stable BCE
    return tf.mean(maskedMeanPerMask(ce, valid));
  });
}

/**
 * Dice loss with +1 smoothing per mask, averaged over masks (official LENS):
 * 1 - (2 sum(s y) + 1) / (sum(s) + sum(y) + 1), s = sigmoid(x), ignored pixels zeroed.
 * logits, targets (0/1), valid (optional) [B, H, W] -> scalar.
 */
export function diceLoss(logits: tf.Tensor3D, targets: tf.Tensor3D, valid?: tf.Tensor3D): tf.Scalar {
  checkSame('diceLoss', logits, targets, 'targets');
  if (valid) checkSame('diceLoss', logits, valid, 'valid');
  return tf.tidy(() => {
    const b = logits.shape[0];
    let s: tf.Tensor = tf.sigmoid(logits);
    let y: tf.Tensor = tf.cast(targets, 'float32');
    if (valid) {
      s = tf.mul(s, valid);
      y = tf.mul(y, valid);
    }
    const sf = tf.reshape(s, [b, -1]); // [B, P]
    const yf = tf.reshape(y, [b, -1]);
    const num = tf.add(tf.mul(tf.sum(tf.mul(sf, yf), 1), 2), 1);
    const den = tf.add(tf.add(tf.sum(sf, 1), tf.sum(yf, 1)), 1);
    return tf.mean(tf.sub(1, tf.div(num, den)));
  });
}

/** Splits a label map with ignore pixels into binary targets and a validity mask: [B, H, W] -> both [B, H, W]. */
export function splitIgnore(labels: tf.Tensor3D, ignoreLabel = IGNORE_LABEL): { targets: tf.Tensor3D; valid: tf.Tensor3D } {
  return tf.tidy(() => {
    const l = tf.cast(labels, 'float32');
    const valid = tf.cast(tf.notEqual(l, ignoreLabel), 'float32') as tf.Tensor3D;
    const targets = tf.mul(tf.cast(tf.greater(l, 0.5), 'float32'), valid) as tf.Tensor3D;
    return { targets, valid };
  });
}

/** Options of `segLoss`. */
export interface SegLossOptions {
  /** Term weights (default 1:1, official LENS). */
  weights?: SegLossWeights;
  /** Label of ignored pixels (default 255); pixels with it count in neither term. */
  ignoreLabel?: number;
}

/**
 * L_seg = w_bce * BCE + w_dice * Dice at the ground-truth resolution.
 * logits [B, H, W] (already upsampled), labels [B, H, W] in {0, 1, 255} -> scalar.
 */
export function segLoss(logits: tf.Tensor3D, labels: tf.Tensor3D, opts: SegLossOptions = {}): tf.Scalar {
  const { weights = DEFAULT_SEG_LOSS_WEIGHTS, ignoreLabel = IGNORE_LABEL } = opts;
  if (logits.shape.some((s, i) => s !== labels.shape[i]) || logits.rank !== labels.rank) {
    throw new Error(
      `segLoss: logits [${logits.shape.join(', ')}] and labels [${labels.shape.join(', ')}] differ: ` +
        'upsample the logits to the label resolution first (upsampleMaskLogits)',
    );
  }
  for (const k of ['bce', 'dice'] as const) {
    if (!(typeof weights[k] === 'number' && weights[k] >= 0)) throw new Error(`segLoss: weights.${k} must be a number >= 0, got ${weights[k]}`);
  }
  return tf.tidy(() => {
    const { targets, valid } = splitIgnore(labels, ignoreLabel);
    return tf.add(tf.mul(bceLoss(logits, targets, valid), weights.bce), tf.mul(diceLoss(logits, targets, valid), weights.dice)) as tf.Scalar;
  });
}

/** How `tokenCrossEntropy` averages. */
export type TokenReduction = 'token' | 'sequence';

/**
 * Masked next-token cross-entropy: -log softmax(logits)[target] at positions with
 * mask 1. 'token' (default): sum over the batch / number of masked tokens (SFT);
 * 'sequence': per-sequence token mean, then batch mean (the official GRPO loss's
 * averaging). Uses a one-hot product, not gather, so it trains on wasm (gather's
 * gradient is missing there). logits [B, T, V], targets [B, T] int, mask [B, T] -> scalar.
 * Targets at masked-out positions may be any value (they are not read).
 */
export function tokenCrossEntropy(
  logits: tf.Tensor3D,
  targets: tf.Tensor2D,
  mask: tf.Tensor2D,
  reduction: TokenReduction = 'token',
): tf.Scalar {
  const [b, t, v] = logits.shape;
  assertShape('tokenCrossEntropy targets', targets, [b, t]);
  assertShape('tokenCrossEntropy mask', mask, [b, t]);
  if (reduction !== 'token' && reduction !== 'sequence') throw new Error(`tokenCrossEntropy: reduction must be 'token' or 'sequence', got ${reduction}`);
  return tf.tidy(() => {
    const m = tf.cast(mask, 'float32');
    const tgt = tf.mul(tf.cast(targets, 'int32'), tf.cast(mask, 'int32')); // masked positions -> class 0, weight 0
    const logp = tf.logSoftmax(tf.reshape(logits, [b * t, v])); // [B*T, V]
    const picked = tf.sum(tf.mul(logp, tf.oneHot(tf.reshape(tgt, [b * t]), v)), 1); // [B*T]
    const nll = tf.mul(tf.neg(tf.reshape(picked, [b, t])), m); // [B, T]
    if (reduction === 'token') return tf.div(tf.sum(nll), tf.maximum(tf.sum(m), 1)) as tf.Scalar;
    return tf.mean(tf.div(tf.sum(nll, 1), tf.maximum(tf.sum(m, 1), 1))) as tf.Scalar;
  });
}
