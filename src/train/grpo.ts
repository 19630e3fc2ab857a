/**
 * The GRPO maths of LENS stage 2 (paper Sec. 3.3, Eq. 4-6; Shao et al. 2024), as
 * small pure functions named with the paper's symbols. Semantics follow the
 * official code's trainer, TRL v0.17 `GRPOTrainer` (lens-official-code-facts.md):
 * - advantages A_i = (r_i - mean(r_group)) / (std(r_group) + 1e-4), std unbiased
 *   (torch.std, as TRL computes it);
 * - ratio rho = exp(log pi_theta - log pi_old), surrogate min(rho A, clip(rho, 1-eps, 1+eps) A);
 * - k3 KL to the reference policy: exp(ref - logp) - (ref - logp) - 1, per token;
 * - loss = -(surrogate - beta * KL), token mean per sequence, then batch mean.
 */
import * as tf from '@tensorflow/tfjs-core';

/** The advantage normaliser's epsilon (TRL, official LENS code). */
export const ADVANTAGE_EPS = 1e-4;

/**
 * Group-relative advantages. `rewards` holds G consecutive rollouts per prompt.
 * A_i = (r_i - mean_g) / (std_g + 1e-4), std with Bessel's correction (torch.std).
 * @example groupAdvantages([1, 0], 2) // ≈ [0.7070, -0.7070]: mean 0.5, std 0.7071
 */
export function groupAdvantages(rewards: readonly number[], groupSize: number, eps = ADVANTAGE_EPS): number[] {
  if (!Number.isInteger(groupSize) || groupSize < 1) throw new RangeError(`groupSize must be a positive integer, got ${groupSize}`);
  if (rewards.length % groupSize !== 0) {
    throw new RangeError(`rewards has ${rewards.length} entries, not a multiple of groupSize ${groupSize}`);
  }
  const out = new Array<number>(rewards.length);
  for (let g = 0; g < rewards.length; g += groupSize) {
    const grp = rewards.slice(g, g + groupSize);
    const mean = grp.reduce((s, r) => s + r, 0) / groupSize;
    const variance = groupSize > 1 ? grp.reduce((s, r) => s + (r - mean) ** 2, 0) / (groupSize - 1) : 0;
    const std = Math.sqrt(variance);
    for (let i = 0; i < groupSize; i++) out[g + i] = (grp[i]! - mean) / (std + eps);
  }
  return out;
}

/** Fraction of groups whose rewards are all equal (they carry no learning signal). */
export function zeroSpreadFraction(rewards: readonly number[], groupSize: number, tol = 1e-9): number {
  const groups = rewards.length / groupSize;
  let flat = 0;
  for (let g = 0; g < rewards.length; g += groupSize) {
    const grp = rewards.slice(g, g + groupSize);
    if (Math.max(...grp) - Math.min(...grp) <= tol) flat++;
  }
  return groups > 0 ? flat / groups : 0;
}

/** k3 estimator of KL(pi_theta || pi_ref) per token: exp(ref - logp) - (ref - logp) - 1 (>= 0). */
export function k3Kl(logp: tf.Tensor2D, refLogp: tf.Tensor2D): tf.Tensor2D {
  return tf.tidy(() => {
    const d = tf.sub(refLogp, logp);
    return tf.sub(tf.sub(tf.exp(d), d), 1) as tf.Tensor2D;
  });
}

/**
 * Clipped surrogate per token: min(rho A, clip(rho, 1 - eps, 1 + eps) A) with
 * rho = exp(logp - oldLogp). logp, oldLogp: [B, T]; advantages: [B].
 */
export function clippedSurrogate(logp: tf.Tensor2D, oldLogp: tf.Tensor2D, advantages: tf.Tensor1D, eps: number): tf.Tensor2D {
  return tf.tidy(() => {
    const ratio = tf.exp(tf.sub(logp, oldLogp));
    const a = tf.expandDims(advantages, 1); // [B, 1]
    const unclipped = tf.mul(ratio, a);
    const clipped = tf.mul(tf.clipByValue(ratio, 1 - eps, 1 + eps), a);
    return tf.minimum(unclipped, clipped) as tf.Tensor2D;
  });
}

export interface GrpoLossInput {
  /** log pi_theta of the sampled completion tokens, [B, T] (differentiable). */
  logp: tf.Tensor2D;
  /** log pi_old, [B, T] (the sampling policy; equals logp's values on the first update). */
  oldLogp: tf.Tensor2D;
  /** log pi_ref, [B, T] (frozen stage-1 policy); null when beta = 0. */
  refLogp: tf.Tensor2D | null;
  /** Group-normalised advantages, [B]. */
  advantages: tf.Tensor1D;
  /** 1 for completion tokens, 0 for padding, [B, T]. */
  mask: tf.Tensor2D;
  /** KL weight beta (official: 0.04). */
  beta: number;
  /** Clip range epsilon (official: 0.2). */
  clipEps: number;
}

export interface GrpoLossOutput {
  /** Scalar loss to minimise. */
  loss: tf.Scalar;
  /** Mean per-token KL (token mean per sequence, then batch mean); scalar. */
  kl: tf.Scalar;
  /** Fraction of completion tokens where clipping changed the objective; scalar. */
  clipFraction: tf.Scalar;
}

/** Token mean per sequence, then batch mean: sum_t(x m) / sum_t(m), averaged over B. */
export function sequenceTokenMean(x: tf.Tensor2D, mask: tf.Tensor2D): tf.Scalar {
  return tf.tidy(() => {
    const perSeq = tf.div(tf.sum(tf.mul(x, mask), 1), tf.maximum(tf.sum(mask, 1), 1));
    return tf.mean(perSeq) as tf.Scalar;
  });
}

/**
 * GRPO objective (to minimise): L = mean_B [ sum_t m_t * -(S_t - beta * KL_t) / sum_t m_t ],
 * S_t the clipped surrogate, KL_t the k3 estimate against the reference policy.
 */
export function grpoLoss(inp: GrpoLossInput): GrpoLossOutput {
  const { logp, oldLogp, refLogp, advantages, mask, beta, clipEps } = inp;
  if (logp.shape.join() !== mask.shape.join() || oldLogp.shape.join() !== mask.shape.join()) {
    throw new Error(`grpoLoss: logp ${logp.shape}, oldLogp ${oldLogp.shape} and mask ${mask.shape} must have the same [B, T] shape`);
  }
  if (advantages.shape[0] !== logp.shape[0]) throw new Error(`grpoLoss: advantages [${advantages.shape}] must be [B=${logp.shape[0]}]`);
  return tf.tidy(() => {
    const surrogate = clippedSurrogate(logp, oldLogp, advantages, clipEps);
    const perTokenKl = refLogp && beta !== 0 ? k3Kl(logp, refLogp) : tf.zerosLike(logp);
    const perToken = tf.neg(tf.sub(surrogate, tf.mul(perTokenKl, beta))) as tf.Tensor2D;
    const loss = sequenceTokenMean(perToken, mask);
    const kl = sequenceTokenMean(perTokenKl, mask);
    const ratio = tf.exp(tf.sub(logp, oldLogp));
    const clippedMask = tf.cast(tf.logicalOr(tf.less(ratio, 1 - clipEps), tf.greater(ratio, 1 + clipEps)), 'float32');
    const clipFraction = tf.div(tf.sum(tf.mul(clippedMask, mask)), tf.maximum(tf.sum(mask), 1)) as tf.Scalar;
    return { loss, kl, clipFraction };
  });
}
