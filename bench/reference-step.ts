/**
 * The reference training step of issue #3, built from the project's own layers
 * (src/model/nn.ts): a pre-LN transformer (4 blocks, width 128, 4 heads, MLP 4x)
 * with a causal bias, a final LayerNorm and a Linear head, MSE loss against a fixed
 * random target, Adam. bench/torch_step.py is the same network in PyTorch.
 * Gradients must be registered by the caller (tfjs-core alone registers none):
 * bench/gradients.ts under tsx, `import '@tensorflow/tfjs-core/dist/register_all_gradients'` under vitest.
 */
import * as tf from '@tensorflow/tfjs-core';
import { adam } from '../src/accel';
import { causalBias, LayerNorm, Linear, Module, TransformerBlock } from '../src/model/nn';
import { Rng } from '../src/random';

/** Sizes of the reference step; the defaults are the issue's. */
export interface RefStepConfig {
  /** Sequences per step (issue #3: 16). */
  batch: number;
  /** Tokens per sequence (issue #3: 192). */
  tokens: number;
  /** Model width C (issue #3: 128). */
  width: number;
  /** Transformer blocks (issue #3: 4). */
  layers: number;
  /** Attention heads (issue #3: 4). */
  heads: number;
  /** MLP hidden width / C (issue #3: 4). */
  mlpRatio: number;
}

export const DEFAULT_REF_STEP: RefStepConfig = { batch: 16, tokens: 192, width: 128, layers: 4, heads: 4, mlpRatio: 4 };

/** Checks every field is a positive integer and heads divide the width; throws naming the field. */
export function validateRefStepConfig(c: RefStepConfig): RefStepConfig {
  for (const [k, v] of Object.entries(c)) {
    if (!Number.isInteger(v) || v < 1) throw new Error(`reference step config: '${k}' must be a positive integer, got ${v}`);
  }
  if (c.width % c.heads !== 0) throw new Error(`reference step config: 'heads' (${c.heads}) must divide 'width' (${c.width})`);
  return c;
}

/**
 * FLOPs of one training step (forward + backward = 3x forward), counting matmuls only:
 * per block 2*T*12*C^2 (q, k, v, out, MLP) + 4*B*N^2*C (scores and weighted sum), plus the head 2*T*C^2.
 */
export function refStepFlops(c: RefStepConfig): number {
  const t = c.batch * c.tokens;
  const perBlock = 2 * t * (4 + 2 * c.mlpRatio) * c.width * c.width + 4 * c.batch * c.tokens * c.tokens * c.width;
  const forward = c.layers * perBlock + 2 * t * c.width * c.width;
  return 3 * forward;
}

/** The network: blocks -> LayerNorm -> Linear. x: [B, N, C] -> [B, N, C]. */
export class RefNet extends Module {
  readonly blocks: TransformerBlock[];
  readonly ln: LayerNorm;
  readonly head: Linear;

  constructor(readonly cfg: RefStepConfig, rng: Rng) {
    super();
    this.blocks = [];
    for (let i = 0; i < cfg.layers; i++) this.blocks.push(this.child(`blocks.${i}`, new TransformerBlock(cfg.width, cfg.heads, cfg.mlpRatio, rng)));
    this.ln = this.child('ln', new LayerNorm(cfg.width));
    this.head = this.child('head', new Linear(cfg.width, cfg.width, rng));
  }

  apply(x: tf.Tensor3D, bias: tf.Tensor): tf.Tensor3D {
    return tf.tidy(() => {
      let h = x;
      for (const b of this.blocks) h = b.apply(h, bias);
      return this.head.apply(this.ln.apply(h));
    });
  }
}

/** A ready-to-run step: `run()` does forward, backward and an Adam update, returns the loss. */
export interface RefStep {
  net: RefNet;
  run(): number;
  dispose(): void;
}

/** Builds the network, fixed input / target / bias, and Adam (lr 1e-3, eps 1e-8 as torch; src/accel/adam.ts). */
export function buildRefStep(cfg: RefStepConfig = DEFAULT_REF_STEP, seed = 0): RefStep {
  validateRefStepConfig(cfg);
  const rng = new Rng(seed);
  const net = new RefNet(cfg, rng.fork('net'));
  const shape: [number, number, number] = [cfg.batch, cfg.tokens, cfg.width];
  const n = cfg.batch * cfg.tokens * cfg.width;
  const data = rng.fork('data');
  const x = tf.tensor3d(Float32Array.from({ length: n }, () => data.normal(0, 1)), shape);
  const target = tf.tensor3d(Float32Array.from({ length: n }, () => data.normal(0, 1)), shape);
  const bias = causalBias(cfg.tokens, cfg.tokens);
  // the project's Adam: tfjs's AdamOptimizer, its update fused into one kernel when the native kernels are on
  const opt = adam(1e-3, 0.9, 0.999, 1e-8);
  const vars = net.trainableParameters();
  return {
    net,
    run() {
      const cost = opt.minimize(() => tf.mean(tf.squaredDifference(net.apply(x, bias), target)) as tf.Scalar, true, vars);
      if (!cost) throw new Error('reference step: optimizer returned no cost');
      const v = cost.dataSync()[0];
      cost.dispose();
      return v;
    },
    dispose() {
      opt.dispose();
      net.dispose();
      tf.dispose([x, target, bias]);
    },
  };
}
