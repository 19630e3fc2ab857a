/**
 * Small pieces shared by the mini-SAM boxes (segment-anything `modeling/common.py`
 * and `mask_decoder.py`'s MLP), written to the project's performance rules
 * (docs/performance.md): every projection a rank-2 matmul, no transpose above
 * rank 4, no conv kernels (their filter gradients are missing on wasm).
 *
 * Also the config-validation helpers and the "buffer" registry used across the
 * segmentation side: a buffer is a non-trainable parameter (e.g. the prompt
 * encoder's random-Fourier matrix) that is checkpointed but never trained, even
 * when a whole subtree is unfrozen.
 */
import * as tf from '@tensorflow/tfjs-core';
import type { Rng } from '../../random';
import { Linear, Module, init } from '../nn';

// ---------------------------------------------------------------------------
// Buffers
// ---------------------------------------------------------------------------

const BUFFERS = new WeakSet<tf.Variable>();

/** Marks `v` as a buffer: frozen now, and skipped by every stage's trainable set. */
export function markBuffer(v: tf.Variable): tf.Variable {
  v.trainable = false;
  BUFFERS.add(v);
  return v;
}

/** True for variables registered with `markBuffer` (checkpointed, never trained). */
export function isBuffer(v: tf.Variable): boolean {
  return BUFFERS.has(v);
}

// ---------------------------------------------------------------------------
// Config validation
// ---------------------------------------------------------------------------

/** Throws unless `value` is an integer >= min; `where` names the config and field. */
export function checkInt(where: string, value: unknown, min = 1): number {
  if (typeof value !== 'number' || !Number.isInteger(value) || value < min) {
    throw new Error(`${where}: expected an integer >= ${min}, got ${JSON.stringify(value)}`);
  }
  return value;
}

/** Throws unless `value` is one of `allowed`. */
export function checkOneOf<T extends string>(where: string, value: unknown, allowed: readonly T[]): T {
  if (typeof value !== 'string' || !(allowed as readonly string[]).includes(value)) {
    throw new Error(`${where}: expected one of ${allowed.map((a) => `'${a}'`).join(', ')}, got ${JSON.stringify(value)}`);
  }
  return value as T;
}

/** Throws unless `a` is divisible by `b`. */
export function checkDivisible(where: string, a: number, b: number, what: string): void {
  if (a % b !== 0) throw new Error(`${where}: expected a multiple of ${what} (${b}), got ${a}`);
}

/** Throws naming `where` unless `t` has exactly `shape` (null entries match anything). */
export function assertShape(where: string, t: tf.Tensor, shape: Array<number | null>): void {
  const ok = t.rank === shape.length && shape.every((s, i) => s === null || s === t.shape[i]);
  if (!ok) {
    const want = shape.map((s) => (s === null ? '*' : String(s))).join(', ');
    throw new Error(`${where}: expected shape [${want}], got [${t.shape.join(', ')}]`);
  }
}

/**
 * Std of torch's default nn.Linear init, U(-1/sqrt(fanIn), 1/sqrt(fanIn)), as a
 * normal draw: 1/sqrt(3 fanIn). SAM trains its decoder from this scale; GPT's 0.02
 * would make a narrow SAM's three-layer hypernetwork output vanish.
 */
export function torchStd(fanIn: number): number {
  return 1 / Math.sqrt(3 * fanIn);
}

// ---------------------------------------------------------------------------
// Layers
// ---------------------------------------------------------------------------

/**
 * SAM's MLP (mask_decoder.py): `numLayers` Linears with ReLU between.
 * x: [..., inDim] -> [..., outDim]. Used for the hypernetworks and the IoU head.
 */
export class SamMLP extends Module {
  readonly layers: Linear[] = [];

  constructor(inDim: number, hidden: number, outDim: number, numLayers: number, rng: Rng) {
    super();
    checkInt('SamMLP.numLayers', numLayers, 1);
    const dims = [inDim, ...Array<number>(numLayers - 1).fill(hidden), outDim];
    for (let i = 0; i < numLayers; i++) {
      this.layers.push(this.child(`layers.${i}`, new Linear(dims[i]!, dims[i + 1]!, rng, { std: torchStd(dims[i]!) })));
    }
  }

  apply<T extends tf.Tensor>(x: T): T {
    return tf.tidy(() => {
      let h: tf.Tensor = x;
      this.layers.forEach((l, i) => {
        h = l.apply(h);
        if (i < this.layers.length - 1) h = tf.relu(h);
      });
      return h as T;
    });
  }
}

/**
 * ConvTranspose2d(kernel 2, stride 2) as a per-pixel Linear to 4*C_out channels
 * plus a pixel shuffle (the performance rule; the same function exactly).
 * x: [B, h, w, C_in] -> [B, 2h, 2w, C_out].
 *
 * `weight` [C_in, 4*C_out] has column index di*2*C_out + dj*C_out + co, i.e. a torch
 * ConvTranspose2d weight [C_in, C_out, 2, 2] permuted to [C_in, 2(di), 2(dj), C_out].
 * The bias is per output channel, shared by the four sub-pixels, as in the conv.
 */
export class UpConv2x2 extends Module {
  readonly proj: Linear;
  readonly bias: tf.Variable;

  constructor(readonly inDim: number, readonly outDim: number, rng: Rng) {
    super();
    // torch's ConvTranspose2d fan-in is C_out * k * k (its weight's dim 1 onwards).
    this.proj = this.child('weight', new Linear(inDim, 4 * outDim, rng, { bias: false, std: torchStd(outDim * 4) }));
    this.bias = this.param('bias', init.constant(outDim, 0), [outDim]);
  }

  apply(x: tf.Tensor4D): tf.Tensor4D {
    return tf.tidy(() => {
      const y = this.proj.apply(x); // [B, h, w, 4*Co]
      return tf.add(pixelShuffle2(y, this.outDim), this.bias) as tf.Tensor4D;
    });
  }
}

/**
 * Depth-to-space by 2 with rank-4 reshapes only:
 * [B, h, w, 4C] -> [B*h, w, 2, 2C] -> transpose [0, 2, 1, 3] -> [B, 2h, 2w, C].
 * Channel index di*2C + dj*C + c lands at pixel (2i + di, 2j + dj), channel c.
 */
export function pixelShuffle2(y: tf.Tensor4D, c: number): tf.Tensor4D {
  return tf.tidy(() => {
    const [b, h, w, c4] = y.shape;
    if (c4 !== 4 * c) throw new Error(`pixelShuffle2: expected ${4 * c} channels, got ${c4}`);
    const r = tf.reshape(y, [b * h, w, 2, 2 * c]); // [B*h, w, di, dj*C + c]
    const t = tf.transpose(r, [0, 2, 1, 3]); // [B*h, di, w, dj*C + c]
    return tf.reshape(t, [b, 2 * h, 2 * w, c]); // row 2i+di, column 2j+dj
  });
}

/**
 * Conv2d(kernel 3, padding 1, no bias). x: [B, h, w, C_in] -> [B, h, w, C_out]. `weight`
 * [9*C_in, C_out] has row index (ky*3 + kx)*C_in + ci (a torch weight [Co, Ci, 3, 3]
 * permuted to [3, 3, Ci, Co]), so it reshapes to conv2d's HWIO filter as it is. Runs as
 * conv2d: its filter gradient is the project's Conv2DBackpropFilter on wasm (src/accel);
 * an im2col of nine shifted slices concatenated on channels cost ~0.18 s of a batch-8
 * stage-0a step in the concat's gradient alone (a strided SplitV on wasm).
 */
export class Conv3x3 extends Module {
  readonly proj: Linear;

  constructor(readonly inDim: number, readonly outDim: number, rng: Rng) {
    super();
    this.proj = this.child('weight', new Linear(9 * inDim, outDim, rng, { bias: false, std: torchStd(9 * inDim) }));
  }

  apply(x: tf.Tensor4D): tf.Tensor4D {
    return tf.tidy(() => {
      const filter = tf.reshape(this.proj.weight, [3, 3, this.inDim, this.outDim]) as tf.Tensor4D;
      return tf.conv2d(x, filter, 1, [[0, 0], [1, 1], [1, 1], [0, 0]]);
    });
  }
}
