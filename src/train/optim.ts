/**
 * AdamW with global-norm gradient clipping, written on tfjs ops so its state is
 * plain named tensors that checkpoints save and a resumed run restores exactly
 * (tfjs's own optimisers keep their lr and state private).
 * Update (Loshchilov & Hutter 2019, torch.optim.AdamW):
 *   m = b1 m + (1 - b1) g;  v = b2 v + (1 - b2) g^2
 *   p = p - lr * (m / (1 - b1^t)) / (sqrt(v / (1 - b2^t)) + eps) - lr * wd * p
 */
import * as tf from '@tensorflow/tfjs-core';
import { ADAM_KERNEL } from '../accel/adam';

export interface AdamWConfig {
  beta1: number;
  beta2: number;
  eps: number;
  /** Decoupled weight decay; 0 in both official LENS stages. */
  weightDecay: number;
}

export const DEFAULT_ADAMW: AdamWConfig = { beta1: 0.9, beta2: 0.999, eps: 1e-8, weightDecay: 0 };

/**
 * Scales gradients so their global L2 norm is at most `maxNorm` (torch
 * clip_grad_norm_). Returns new tensors (the inputs are not disposed) and the norm
 * before clipping.
 */
export function clipByGlobalNorm(grads: Record<string, tf.Tensor>, maxNorm: number): { grads: Record<string, tf.Tensor>; norm: number } {
  const names = Object.keys(grads);
  const sq = tf.tidy(() => tf.addN(names.map((n) => tf.sum(tf.square(grads[n]!)))));
  const norm = Math.sqrt(sq.dataSync()[0]!);
  sq.dispose();
  const scale = Number.isFinite(maxNorm) && norm > maxNorm ? maxNorm / (norm + 1e-6) : 1;
  const out: Record<string, tf.Tensor> = {};
  for (const n of names) out[n] = scale === 1 ? tf.clone(grads[n]!) : tf.tidy(() => tf.mul(grads[n]!, scale));
  return { grads: out, norm };
}

export class AdamW {
  readonly config: AdamWConfig;
  /** Optimiser steps taken (t in the bias corrections). */
  step = 0;
  private readonly m = new Map<string, tf.Variable>();
  private readonly v = new Map<string, tf.Variable>();

  constructor(private readonly params: ReadonlyMap<string, tf.Variable>, config: Partial<AdamWConfig> = {}) {
    this.config = { ...DEFAULT_ADAMW, ...config };
  }

  /**
   * Applies one update with learning rate `lr`; `grads` maps parameter names to gradients.
   * `lrScale` gives a parameter its own multiple of `lr` (a parameter group's lr; default 1).
   */
  apply(grads: Record<string, tf.Tensor>, lr: number, lrScale?: (name: string) => number): void {
    const { beta1, beta2, eps, weightDecay } = this.config;
    this.step += 1;
    const bc1 = 1 - beta1 ** this.step;
    const bc2 = 1 - beta2 ** this.step;
    // The addon's fused update does the same float32 operations in the same order as
    // the ops below when there is no weight decay: one kernel per parameter instead of 13.
    const fused = weightDecay === 0 && tf.getKernel(ADAM_KERNEL, tf.getBackend()) !== undefined;
    for (const [name, g] of Object.entries(grads)) {
      const p = this.params.get(name);
      if (!p) throw new Error(`AdamW: gradient for unknown parameter '${name}'`);
      const m = this.slot(this.m, name, p);
      const v = this.slot(this.v, name, p);
      const rate = lrScale ? lr * lrScale(name) : lr;
      tf.tidy(() => {
        if (fused) {
          const attrs = { beta1, beta2, oneMinusAccBeta1: bc1, oneMinusAccBeta2: bc2, epsilon: eps, learningRate: rate };
          const [p1, m1, v1] = tf.engine().runKernel(ADAM_KERNEL, { value: p, m, v, g }, attrs) as tf.Tensor[];
          m.assign(m1!);
          v.assign(v1!);
          p.assign(p1!);
          return;
        }
        const m1 = tf.add(tf.mul(m, beta1), tf.mul(g, 1 - beta1));
        const v1 = tf.add(tf.mul(v, beta2), tf.mul(tf.square(g), 1 - beta2));
        let upd = tf.div(tf.div(m1, bc1), tf.add(tf.sqrt(tf.div(v1, bc2)), eps));
        if (weightDecay !== 0) upd = tf.add(upd, tf.mul(p, weightDecay));
        m.assign(m1);
        v.assign(v1);
        p.assign(tf.sub(p, tf.mul(upd, rate)));
      });
    }
  }

  private slot(map: Map<string, tf.Variable>, name: string, p: tf.Variable): tf.Variable {
    let s = map.get(name);
    if (!s) {
      s = tf.tidy(() => tf.variable(tf.zerosLike(p), false));
      map.set(name, s);
    }
    return s;
  }

  /** State as named tensors (`m.<param>`, `v.<param>`) plus the step, for checkpoints. */
  state(): { step: number; tensors: Record<string, tf.Tensor> } {
    const tensors: Record<string, tf.Tensor> = {};
    for (const [n, t] of this.m) tensors[`m.${n}`] = t;
    for (const [n, t] of this.v) tensors[`v.${n}`] = t;
    return { step: this.step, tensors };
  }

  /** Restores what state() returned (tensors are copied; the caller keeps ownership). */
  loadState(step: number, tensors: Record<string, tf.Tensor>): void {
    this.step = step;
    for (const [key, t] of Object.entries(tensors)) {
      const [kind, ...rest] = key.split('.');
      const name = rest.join('.');
      const p = this.params.get(name);
      if ((kind !== 'm' && kind !== 'v') || !p) throw new Error(`AdamW.loadState: unexpected tensor '${key}'`);
      if (t.shape.join() !== p.shape.join()) throw new Error(`AdamW.loadState: '${key}' has shape [${t.shape}], parameter has [${p.shape}]`);
      this.slot(kind === 'm' ? this.m : this.v, name, p).assign(t);
    }
  }

  dispose(): void {
    for (const t of [...this.m.values(), ...this.v.values()]) t.dispose();
    this.m.clear();
    this.v.clear();
  }
}
