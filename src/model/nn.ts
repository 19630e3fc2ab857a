/**
 * The small layer toolkit every box of the model is built from, on the tfjs ops
 * API only (so it runs on any backend). No tfjs-layers: parameters are
 * `tf.Variable`s owned by `Module`s with dotted names, like torch's
 * `named_parameters()`, which is what checkpoints and freezing use.
 *
 * Performance rules (docs/performance.md) followed here:
 * - separate Q / K / V projections, heads split with a rank-4 transpose only;
 * - every projection is a rank-2 matmul (activations flattened to [N, C]);
 * - GELU is quick-GELU, x * sigmoid(1.702 x), as the official LENS connector uses.
 */
import * as tf from '@tensorflow/tfjs-core';
import { layerNorm } from '../accel/layernorm';
import { quickGelu } from '../accel/quick-gelu';
import type { Rng } from '../random';

/** A named tree of parameters. Subclasses register variables and child modules. */
export class Module {
  private readonly ownParams = new Map<string, tf.Variable>();
  private readonly children = new Map<string, Module>();

  /** Registers a child module under `name`; returns it. */
  protected child<M extends Module>(name: string, m: M): M {
    if (this.children.has(name) || this.ownParams.has(name)) throw new Error(`duplicate submodule name '${name}'`);
    this.children.set(name, m);
    return m;
  }

  /** Creates and registers a parameter from host values. */
  protected param(name: string, values: Float32Array, shape: number[]): tf.Variable {
    if (this.children.has(name) || this.ownParams.has(name)) throw new Error(`duplicate parameter name '${name}'`);
    const v = tf.tidy(() => tf.variable(tf.tensor(values, shape, 'float32'), true));
    this.ownParams.set(name, v);
    return v;
  }

  /** Every parameter with its dotted path, children in registration order. */
  namedParameters(prefix = ''): Array<[string, tf.Variable]> {
    const out: Array<[string, tf.Variable]> = [];
    for (const [n, v] of this.ownParams) out.push([prefix + n, v]);
    for (const [n, c] of this.children) out.push(...c.namedParameters(`${prefix}${n}.`));
    return out;
  }

  /** The parameters as a list (for optimisers and gradient calls). */
  parameters(): tf.Variable[] {
    return this.namedParameters().map(([, v]) => v);
  }

  /** Parameters currently marked trainable. */
  trainableParameters(): tf.Variable[] {
    return this.parameters().filter((v) => v.trainable);
  }

  /** Freezes (false) or unfreezes (true) every parameter of this subtree. */
  setTrainable(trainable: boolean): this {
    for (const v of this.parameters()) v.trainable = trainable;
    return this;
  }

  /** Total number of scalar parameters. */
  numParams(): number {
    return this.parameters().reduce((s, v) => s + v.size, 0);
  }

  /** A named child module (for inspection in notebooks). */
  getChild(name: string): Module | undefined {
    return this.children.get(name);
  }

  /** Disposes every parameter of this subtree. */
  dispose(): void {
    for (const v of this.parameters()) v.dispose();
  }
}

/** Host-side initialisers, driven by the project's seeded Rng (same values on every backend). */
export const init = {
  normal(rng: Rng, n: number, std: number): Float32Array {
    const a = new Float32Array(n);
    for (let i = 0; i < n; i++) a[i] = rng.normal(0, std);
    return a;
  },
  /** Uniform(-b, b) with b = 1/sqrt(fanIn): torch's nn.Linear / Conv default scale. */
  fanIn(rng: Rng, n: number, fanIn: number): Float32Array {
    const b = 1 / Math.sqrt(fanIn);
    const a = new Float32Array(n);
    for (let i = 0; i < n; i++) a[i] = rng.uniform(-b, b);
    return a;
  },
  constant(n: number, value: number): Float32Array {
    return new Float32Array(n).fill(value);
  },
};

/** quick-GELU: x * sigmoid(1.702 x) (CLIP's and the LENS connector's activation); fused on the native kernels. */
export { quickGelu };

export interface LinearOptions {
  bias?: boolean;
  /** Std of the N(0, std) weight init; default 0.02 (GPT-2 / Qwen init range). */
  std?: number;
}

/** y = x W + b over the last axis. x: [..., inDim] -> [..., outDim]. */
export class Linear extends Module {
  readonly weight: tf.Variable; // [inDim, outDim]
  readonly bias: tf.Variable | null; // [outDim]

  constructor(
    readonly inDim: number,
    readonly outDim: number,
    rng: Rng,
    { bias = true, std = 0.02 }: LinearOptions = {},
  ) {
    super();
    this.weight = this.param('weight', init.normal(rng, inDim * outDim, std), [inDim, outDim]);
    this.bias = bias ? this.param('bias', init.constant(outDim, 0), [outDim]) : null;
  }

  apply<T extends tf.Tensor>(x: T): T {
    return tf.tidy(() => {
      const shape = x.shape;
      if (shape[shape.length - 1] !== this.inDim) {
        throw new Error(`Linear: expected last axis ${this.inDim}, got shape [${shape.join(', ')}]`);
      }
      const x2 = tf.reshape(x, [-1, this.inDim]); // rank-2 matmul: the fast path on every backend
      let y = tf.matMul(x2, this.weight);
      if (this.bias) y = tf.add(y, this.bias);
      return tf.reshape(y, [...shape.slice(0, -1), this.outDim]) as T;
    });
  }
}

/** Layer norm over the last axis with learned gain and bias. */
export class LayerNorm extends Module {
  readonly gamma: tf.Variable;
  readonly beta: tf.Variable;

  constructor(readonly dim: number, readonly eps = 1e-5) {
    super();
    this.gamma = this.param('weight', init.constant(dim, 1), [dim]);
    this.beta = this.param('bias', init.constant(dim, 0), [dim]);
  }

  /** One fused kernel forward and backward where src/accel registered it (wasm), the composite form elsewhere. */
  apply<T extends tf.Tensor>(x: T): T {
    return layerNorm(x, this.gamma, this.beta, this.eps) as T;
  }
}

/** Two-layer perceptron: Linear -> quick-GELU -> Linear. [..., dim] -> [..., outDim]. */
export class MLP extends Module {
  readonly fc1: Linear;
  readonly fc2: Linear;

  constructor(dim: number, hidden: number, outDim: number, rng: Rng, opts: LinearOptions = {}) {
    super();
    this.fc1 = this.child('fc1', new Linear(dim, hidden, rng, opts));
    this.fc2 = this.child('fc2', new Linear(hidden, outDim, rng, opts));
  }

  apply<T extends tf.Tensor>(x: T): T {
    return tf.tidy(() => this.fc2.apply(quickGelu(this.fc1.apply(x))));
  }
}

export interface AttentionOptions {
  /** Width of the attention's internal projections (SAM's downsample_rate); default embedDim. */
  internalDim?: number;
  /** Width of the key / value inputs when they differ from the queries'. */
  kvInDim?: number;
  std?: number;
}

/**
 * Multi-head attention with separate Q / K / V projections (segment-anything's
 * `Attention`; nanoGPT's CausalSelfAttention without the fused c_attn, which
 * would need a rank-5 transpose).
 * q: [B, Nq, C], k and v: [B, Nk, Ckv] -> [B, Nq, C].
 */
export class Attention extends Module {
  readonly q: Linear;
  readonly k: Linear;
  readonly v: Linear;
  readonly out: Linear;
  readonly headDim: number;

  constructor(readonly embedDim: number, readonly numHeads: number, rng: Rng, opts: AttentionOptions = {}) {
    super();
    const internal = opts.internalDim ?? embedDim;
    const kvIn = opts.kvInDim ?? embedDim;
    if (internal % numHeads !== 0) throw new Error(`Attention: internal width ${internal} not divisible by ${numHeads} heads`);
    this.headDim = internal / numHeads;
    const lin = { std: opts.std ?? 0.02 };
    this.q = this.child('q_proj', new Linear(embedDim, internal, rng, lin));
    this.k = this.child('k_proj', new Linear(kvIn, internal, rng, lin));
    this.v = this.child('v_proj', new Linear(kvIn, internal, rng, lin));
    this.out = this.child('out_proj', new Linear(internal, embedDim, rng, lin));
  }

  /** [B, N, H*hs] -> [B, H, N, hs] */
  splitHeads(x: tf.Tensor3D): tf.Tensor4D {
    const [b, n] = x.shape;
    return tf.transpose(tf.reshape(x, [b, n, this.numHeads, this.headDim]), [0, 2, 1, 3]);
  }

  /** [B, H, N, hs] -> [B, N, H*hs] */
  mergeHeads(x: tf.Tensor4D): tf.Tensor3D {
    const [b, h, n, hs] = x.shape;
    return tf.reshape(tf.transpose(x, [0, 2, 1, 3]), [b, n, h * hs]);
  }

  /**
   * Scaled dot-product attention on already split heads.
   * q: [B, H, Nq, hs], k / v: [B, H, Nk, hs]; bias broadcastable to [B, H, Nq, Nk]
   * (0 where allowed, a large negative number where masked).
   */
  static sdpa(q: tf.Tensor4D, k: tf.Tensor4D, v: tf.Tensor4D, bias?: tf.Tensor): tf.Tensor4D {
    return tf.tidy(() => {
      const scale = 1 / Math.sqrt(q.shape[3]);
      let scores = tf.mul(tf.matMul(q, k, false, true), scale); // [B, H, Nq, Nk]
      if (bias) scores = tf.add(scores, bias);
      return tf.matMul(tf.softmax(scores), v) as tf.Tensor4D; // [B, H, Nq, hs]
    });
  }

  apply(q: tf.Tensor3D, k: tf.Tensor3D, v: tf.Tensor3D, bias?: tf.Tensor): tf.Tensor3D {
    return tf.tidy(() => {
      const qh = this.splitHeads(this.q.apply(q));
      const kh = this.splitHeads(this.k.apply(k));
      const vh = this.splitHeads(this.v.apply(v));
      return this.out.apply(this.mergeHeads(Attention.sdpa(qh, kh, vh, bias)));
    });
  }
}

/** Additive mask value: large enough to zero a softmax weight, small enough to stay finite in fp32. */
export const MASK_NEG = -1e9;

/** Causal additive bias [Nq, Nk] for queries at positions offset..offset+Nq-1 over Nk keys. */
export function causalBias(nq: number, nk: number, offset = nk - nq): tf.Tensor2D {
  const a = new Float32Array(nq * nk);
  for (let i = 0; i < nq; i++) for (let j = 0; j < nk; j++) a[i * nk + j] = j <= i + offset ? 0 : MASK_NEG;
  return tf.tensor2d(a, [nq, nk]);
}

/**
 * Pre-LN transformer block (GPT-2 / ViT): x + attn(ln1(x)); x + mlp(ln2(x)).
 * x: [B, N, C] -> [B, N, C]. `bias` is an additive attention mask (causal or padding).
 */
export class TransformerBlock extends Module {
  readonly ln1: LayerNorm;
  readonly attn: Attention;
  readonly ln2: LayerNorm;
  readonly mlp: MLP;

  constructor(dim: number, heads: number, mlpRatio: number, rng: Rng) {
    super();
    this.ln1 = this.child('ln1', new LayerNorm(dim));
    this.attn = this.child('attn', new Attention(dim, heads, rng));
    this.ln2 = this.child('ln2', new LayerNorm(dim));
    this.mlp = this.child('mlp', new MLP(dim, dim * mlpRatio, dim, rng));
  }

  apply(x: tf.Tensor3D, bias?: tf.Tensor): tf.Tensor3D {
    return tf.tidy(() => {
      const h = this.ln1.apply(x);
      const x1 = tf.add(x, this.attn.apply(h, h, h, bias)) as tf.Tensor3D;
      return tf.add(x1, this.mlp.apply(this.ln2.apply(x1))) as tf.Tensor3D;
    });
  }

  /**
   * The same block over new positions only, attending to cached keys / values too
   * (the KV cache of autoregressive decoding, HF `past_key_values`).
   * x: [B, N, C]; past k / v: [B, H, L, hs] or none; bias broadcastable to
   * [B, H, N, L + N] -> y: [B, N, C] and this layer's keys / values [B, H, L + N, hs]
   * (past then new) for the next step. Same function as `apply` when there is no past.
   * `logAttnHead` h: also returns head h's log attention weights [B, N, L + N] (the log of
   * the softmax this pass applies), for losses that supervise where a head looks.
   */
  applyKV(
    x: tf.Tensor3D,
    bias: tf.Tensor | undefined,
    past?: { k: tf.Tensor4D; v: tf.Tensor4D },
    logAttnHead?: number,
  ): { y: tf.Tensor3D; k: tf.Tensor4D; v: tf.Tensor4D; logAttn?: tf.Tensor3D } {
    return tf.tidy(() => {
      const a = this.attn;
      const h = this.ln1.apply(x);
      const qh = a.splitHeads(a.q.apply(h)); // [B, H, N, hs]
      let kh = a.splitHeads(a.k.apply(h));
      let vh = a.splitHeads(a.v.apply(h));
      if (past) {
        kh = tf.concat([past.k, kh], 2) as tf.Tensor4D; // [B, H, L + N, hs]
        vh = tf.concat([past.v, vh], 2) as tf.Tensor4D;
      }
      const att = a.out.apply(a.mergeHeads(Attention.sdpa(qh, kh, vh, bias)));
      const x1 = tf.add(x, att) as tf.Tensor3D;
      const y = tf.add(x1, this.mlp.apply(this.ln2.apply(x1))) as tf.Tensor3D;
      if (logAttnHead === undefined) return { y, k: kh, v: vh };
      if (!Number.isInteger(logAttnHead) || logAttnHead < 0 || logAttnHead >= a.numHeads) {
        throw new Error(`TransformerBlock.applyKV: logAttnHead must be an integer in [0, ${a.numHeads}), got ${logAttnHead}`);
      }
      const one = (t: tf.Tensor4D) => tf.slice(t, [0, logAttnHead, 0, 0], [-1, 1, -1, -1]);
      let sc = tf.mul(tf.matMul(one(qh), one(kh), false, true), 1 / Math.sqrt(a.headDim)); // [B, 1, N, L + N]
      if (bias) sc = tf.add(sc, bias.rank === 4 && bias.shape[1] !== 1 ? tf.slice(bias, [0, logAttnHead, 0, 0], [-1, 1, -1, -1]) : bias);
      return { y, k: kh, v: vh, logAttn: tf.squeeze(tf.logSoftmax(sc), [1]) as tf.Tensor3D };
    });
  }
}

/**
 * A lookup table of learned vectors (torch `nn.Embedding`), N(0, std) init.
 * ids: int32 [...] -> [..., dim]. Its gradient is tf.gather's (UnsortedSegmentSum),
 * which stock tfjs-backend-wasm 4.22 lacks (DESIGN.md "Compute").
 */
export class Embedding extends Module {
  readonly weight: tf.Variable; // [num, dim]

  constructor(readonly num: number, readonly dim: number, rng: Rng, { std = 0.02 }: { std?: number } = {}) {
    super();
    this.weight = this.param('weight', init.normal(rng, num * dim, std), [num, dim]);
  }

  apply(ids: tf.Tensor): tf.Tensor {
    return tf.tidy(() => {
      if (ids.dtype !== 'int32') throw new Error(`Embedding: expected int32 ids, got ${ids.dtype}`);
      const flat = tf.reshape(ids, [-1]); // gather on a rank-1 index: the kernel every backend has
      const rows = tf.gather(this.weight, flat); // [N, dim]
      return tf.reshape(rows, [...ids.shape, this.dim]);
    });
  }
}
