/**
 * The vision encoder box of LENS Figure 2: a patch ViT standing in for Qwen2.5-VL's vision
 * tower, at small width.
 *
 * Image [B, H, W, 3] in [0, 1] -> patches (p x p) -> Linear patch embedding + learned
 * positional embedding -> pre-LN TransformerBlocks (ViT, non-causal) -> final LayerNorm ->
 * Qwen2.5-VL's patch merger: each `mergeSize x mergeSize` group of neighbouring patch tokens
 * is concatenated and projected Linear -> GELU -> Linear to the LLM width
 * (Qwen2.5-VL `PatchMerger`, spatial_merge_size 2; GELU is quick-GELU here, the project's
 * one activation). Output: [B, V, C_llm] with V = (imageSize / patchSize / mergeSize)^2,
 * row-major over the merged grid.
 *
 * Performance rules (docs/performance.md): the patch embedding is rank-4 reshapes /
 * transposes + one rank-2 matmul (the same function as a stride-p conv2d with an HWIO
 * filter flattened to [p*p*3, C]), not conv2d. The optional conv stem (`stem: 'conv'`) does
 * use conv2d: its filter gradient is the project's Conv2DBackpropFilter (src/accel), and an
 * im2col written with pads / slices / concats was ~10x slower still on wasm.
 */
import * as tf from '@tensorflow/tfjs-core';
import { LayerNorm, Linear, MLP, Module, TransformerBlock, init, quickGelu } from './nn';
import type { Rng } from '../random';

export interface VisionEncoderConfig {
  /** Side of the square input image in pixels (DESIGN.md: 64 in presets tiny and quick). */
  imageSize: number;
  /** Patch side (Qwen2.5-VL: 14; 8 here so a 64 px image gives an 8 x 8 grid). */
  patchSize: number;
  /** ViT width. */
  width: number;
  /** Number of ViT blocks. */
  depth: number;
  /** Attention heads; must divide width. */
  numHeads: number;
  /** MLP hidden width = mlpRatio * width (ViT's 4). */
  mlpRatio: number;
  /** Side of the patch group the merger fuses into one token (Qwen2.5-VL: 2, i.e. 4x fewer tokens). */
  mergeSize: number;
  /** Output width = the MLLM's hiddenSize. */
  outDim: number;
  /** Std of the N(0, std) init of projections and positional embedding (0.02, ViT / Qwen). */
  initStd: number;
  /**
   * Scale of a fixed 2D sin-cos code of each visual token's (row, column) on the merged grid,
   * added to the encoder's output (`sinCos2d`); 0 = none. Qwen2.5-VL gives its visual tokens
   * their (h, w) positions through 2D mRoPE inside the LLM; our MLLM has learned 1D positions,
   * which cannot tell a token's row from its column, so the code stands in for mRoPE's 2D
   * positions. Needs outDim divisible by 4.
   */
  pos2dScale: number;
  /**
   * How pixels become patch tokens. 'patch': one linear map of each p x p patch (Qwen2.5-VL's
   * patch embedding, a stride-p conv). 'conv': a convolutional stem (Xiao et al. 2021, "Early
   * convolutions help transformers see better"): a 3 x 3 conv to width / 4 channels at full
   * resolution, then log2(p) 3 x 3 stride-2 convs (width / 2, then width) down to the patch
   * grid, quick-GELU between them (torch's padding 1). From scratch on the generated pictures
   * its shapes come faster than the patch embedding's, at several times the cost per step:
   * conv2d and its input gradient are the wasm backend's own kernels, its filter gradient the
   * project's (docs/stage0b-grounding.md, "Shapes: the ViT, not our kernels").
   */
  stem: 'patch' | 'conv';
}

/** Defaults sized for the `tiny` preset; presets.ts sets every size explicitly. */
export const DEFAULT_VISION_ENCODER_CONFIG: VisionEncoderConfig = {
  imageSize: 64,
  patchSize: 8,
  width: 32,
  depth: 2,
  numHeads: 2,
  mlpRatio: 4,
  mergeSize: 2,
  outDim: 64,
  initStd: 0.02,
  pos2dScale: 0,
  stem: 'patch',
};

/** Fills defaults and checks every field; throws naming the field and what was expected. */
export function validateVisionEncoderConfig(partial: Partial<VisionEncoderConfig> = {}): VisionEncoderConfig {
  const c: VisionEncoderConfig = { ...DEFAULT_VISION_ENCODER_CONFIG, ...partial };
  for (const k of ['imageSize', 'patchSize', 'width', 'depth', 'numHeads', 'mlpRatio', 'mergeSize', 'outDim'] as const) {
    const v = c[k];
    if (typeof v !== 'number' || !Number.isInteger(v) || v < 1) throw new Error(`VisionEncoderConfig.${k}: expected a positive integer, got ${JSON.stringify(v)}`);
  }
  if (c.imageSize % c.patchSize !== 0) {
    throw new Error(`VisionEncoderConfig.patchSize: expected a divisor of imageSize ${c.imageSize}, got ${c.patchSize}`);
  }
  const grid = c.imageSize / c.patchSize;
  if (grid % c.mergeSize !== 0) {
    throw new Error(`VisionEncoderConfig.mergeSize: expected a divisor of the patch grid side ${grid}, got ${c.mergeSize}`);
  }
  if (c.width % c.numHeads !== 0) throw new Error(`VisionEncoderConfig.numHeads: expected a divisor of width ${c.width}, got ${c.numHeads}`);
  if (typeof c.initStd !== 'number' || !(c.initStd > 0)) throw new Error(`VisionEncoderConfig.initStd: expected a number > 0, got ${JSON.stringify(c.initStd)}`);
  if (typeof c.pos2dScale !== 'number' || !(c.pos2dScale >= 0)) throw new Error(`VisionEncoderConfig.pos2dScale: expected a number >= 0, got ${JSON.stringify(c.pos2dScale)}`);
  if (c.stem !== 'patch' && c.stem !== 'conv') throw new Error(`VisionEncoderConfig.stem: expected 'patch' or 'conv', got ${JSON.stringify(c.stem)}`);
  if (c.stem === 'conv' && (!Number.isInteger(Math.log2(c.patchSize)) || c.width % 4 !== 0)) {
    throw new Error(`VisionEncoderConfig.stem: 'conv' needs patchSize a power of 2 and width divisible by 4, got patchSize ${c.patchSize}, width ${c.width}`);
  }
  if (c.pos2dScale > 0 && c.outDim % 4 !== 0) throw new Error(`VisionEncoderConfig.pos2dScale: the 2D code needs outDim divisible by 4, got outDim ${c.outDim}`);
  return c;
}

/** Number of visual tokens V the encoder emits (= `<image>` slots in the prompt). */
export function numVisualTokens(config: Partial<VisionEncoderConfig> = {}): number {
  const c = validateVisionEncoderConfig(config);
  const side = c.imageSize / c.patchSize / c.mergeSize;
  return side * side;
}

/**
 * Writes scale * sin(f_k u) at out[at + k] and scale * cos(f_k u) at out[at + q + k] for
 * k < q, f_k = pi * 100^(-k/q): one axis of `sinCos2d`.
 */
export function writeSinCos(out: Float32Array, at: number, q: number, u: number, scale: number): void {
  for (let k = 0; k < q; k++) {
    const f = Math.PI * Math.pow(100, -k / q);
    out[at + k] = scale * Math.sin(f * u);
    out[at + q + k] = scale * Math.cos(f * u);
  }
}

/**
 * [g*g * C] row-major: a fixed 2D sin-cos code of each token's (row, col) on a g x g grid,
 * times `scale`, in quarters of C: sin / cos of the column, then sin / cos of the row.
 */
export function sinCos2d(g: number, C: number, scale: number): Float32Array {
  if (C % 4 !== 0) throw new Error(`sinCos2d: width ${C} is not divisible by 4`);
  const q = C / 4;
  const code = new Float32Array(g * g * C);
  for (let r = 0; r < g; r++) {
    for (let c = 0; c < g; c++) {
      writeSinCos(code, (r * g + c) * C, q, c, scale);
      writeSinCos(code, (r * g + c) * C + 2 * q, q, r, scale);
    }
  }
  return code;
}

/**
 * Non-overlapping p x p patches as rows, with rank-4 reshapes / transposes only.
 * images [B, H, W, Ch] -> [B * (H/p) * (W/p), p * p * Ch], patches row-major, each patch
 * flattened in (py, px, ch) order, so `patchify(x) @ W` equals conv2d(x, W as HWIO
 * [p, p, Ch, C], stride p) (tested).
 */
export function patchify(images: tf.Tensor4D, p: number): tf.Tensor2D {
  return tf.tidy(() => {
    const [B, H, W, ch] = images.shape;
    if (H % p !== 0 || W % p !== 0) throw new Error(`patchify: image ${H} x ${W} is not a multiple of the patch size ${p}`);
    let x: tf.Tensor = tf.reshape(images, [B * (H / p), p, W / p, p * ch]); // [B*gh, py, gw, px*ch]
    x = tf.transpose(x, [0, 2, 1, 3]); // [B*gh, gw, py, px*ch]
    return tf.reshape(x, [(B * H * W) / (p * p), p * p * ch]) as tf.Tensor2D; // [B*N, p*p*ch]
  });
}

/** Patch ViT + patch merger. images [B, H, W, 3] in [0, 1] -> visual tokens [B, V, outDim]. */
export class VisionEncoder extends Module {
  readonly config: VisionEncoderConfig;
  /** The 'patch' stem (null with 'conv'). */
  readonly patchEmbed: Linear | null;
  /** The 'conv' stem: per layer a Linear [9 * cin, cout] holding the HWIO filter flattened, and its stride (empty with 'patch'). */
  readonly convStem: Array<{ proj: Linear; stride: 1 | 2 }> = [];
  readonly posEmbed: tf.Variable; // [1, N, width]
  readonly blocks: TransformerBlock[];
  readonly norm: LayerNorm;
  readonly merger: MLP;
  /** The pos2dScale code [V * outDim], or null when pos2dScale is 0. */
  private readonly pos2d: Float32Array | null;

  constructor(config: Partial<VisionEncoderConfig>, rng: Rng) {
    super();
    const c = (this.config = validateVisionEncoderConfig(config));
    const p = c.patchSize;
    const n = (c.imageSize / p) ** 2;
    if (c.stem === 'patch') {
      this.patchEmbed = this.child('patch_embed', new Linear(p * p * 3, c.width, rng.fork('patch_embed'), { std: c.initStd }));
    } else {
      this.patchEmbed = null;
      const widths = [c.width / 4]; // full resolution, then one stride-2 conv per halving
      for (let k = 1; k <= Math.log2(p); k++) widths.push(Math.min(c.width, (c.width / 4) * 2 ** k));
      let cin = 3;
      widths.forEach((cout, k) => {
        // torch's Conv2d default scale, std 1 / sqrt(3 fanIn); rows (ky*3 + kx)*cin + ci (HWIO flattened)
        const proj = new Linear(9 * cin, cout, rng.fork(`conv_stem.${k}`), { std: 1 / Math.sqrt(27 * cin) });
        this.convStem.push({ proj: this.child(`conv_stem.${k}`, proj), stride: k === 0 ? 1 : 2 });
        cin = cout;
      });
    }
    this.posEmbed = this.param('pos_embed', init.normal(rng.fork('pos_embed'), n * c.width, c.initStd), [1, n, c.width]);
    this.blocks = [];
    for (let i = 0; i < c.depth; i++) {
      this.blocks.push(this.child(`blocks.${i}`, new TransformerBlock(c.width, c.numHeads, c.mlpRatio, rng.fork(`blocks.${i}`))));
    }
    this.norm = this.child('norm', new LayerNorm(c.width));
    const m2 = c.mergeSize * c.mergeSize;
    this.merger = this.child('merger', new MLP(c.width * m2, c.width * m2, c.outDim, rng.fork('merger'), { std: c.initStd }));
    this.pos2d = c.pos2dScale > 0 ? sinCos2d(c.imageSize / p / c.mergeSize, c.outDim, c.pos2dScale) : null;
  }

  /** Number of visual tokens V per image. */
  get numTokens(): number {
    const side = this.config.imageSize / this.config.patchSize / this.config.mergeSize;
    return side * side;
  }

  /** images [B, H, W, 3] float32 in [0, 1] -> [B, V, outDim]. */
  apply(images: tf.Tensor4D): tf.Tensor3D {
    const c = this.config;
    if (!images || images.rank !== 4 || images.shape[1] !== c.imageSize || images.shape[2] !== c.imageSize || images.shape[3] !== 3) {
      throw new Error(`VisionEncoder: images must be [B, ${c.imageSize}, ${c.imageSize}, 3], got [${images?.shape.join(', ')}]`);
    }
    if (images.dtype !== 'float32') throw new Error(`VisionEncoder: images must be float32 in [0, 1], got ${images.dtype}`);
    return tf.tidy(() => {
      const B = images.shape[0];
      const g = c.imageSize / c.patchSize; // patch grid side
      // Centre the [0, 1] pixels (what the image normalisation of ViTs does, without dataset stats).
      const x = this.embedPatches(tf.sub(images, 0.5) as tf.Tensor4D); // [B*N, width]
      let h = tf.add(tf.reshape(x, [B, g * g, c.width]), this.posEmbed) as tf.Tensor3D; // [B, N, width]
      for (const blk of this.blocks) h = blk.apply(h);
      h = this.norm.apply(h);
      const out = this.mergeAndProject(h, B, g);
      return this.pos2d ? (tf.add(out, tf.tensor3d(this.pos2d, [1, this.numTokens, c.outDim])) as tf.Tensor3D) : out;
    });
  }

  /** The stem: centred images [B, H, W, 3] -> patch tokens [B * (H/p) * (W/p), width], row-major. */
  private embedPatches(x: tf.Tensor4D): tf.Tensor2D {
    if (this.patchEmbed) return this.patchEmbed.apply(patchify(x, this.config.patchSize)) as tf.Tensor2D;
    let h = x;
    this.convStem.forEach(({ proj, stride }, k) => {
      const filter = tf.reshape(proj.weight, [3, 3, h.shape[3], -1]) as tf.Tensor4D;
      h = tf.add(tf.conv2d(h, filter, stride, [[0, 0], [1, 1], [1, 1], [0, 0]]), proj.bias!) as tf.Tensor4D;
      if (k < this.convStem.length - 1) h = quickGelu(h);
    });
    return tf.reshape(h, [-1, this.config.width]) as tf.Tensor2D;
  }

  /** Patch merger: [B, g*g, w] -> groups of m x m neighbours [B, V, m*m*w] -> MLP -> [B, V, outDim]. */
  private mergeAndProject(h: tf.Tensor3D, B: number, g: number): tf.Tensor3D {
    const m = this.config.mergeSize;
    const w = this.config.width;
    if (m === 1) return this.merger.apply(h);
    const gm = g / m;
    let x: tf.Tensor = tf.reshape(h, [B * gm, m, gm, m * w]); // [B*gm, dy, gx, dx*w]
    x = tf.transpose(x, [0, 2, 1, 3]); // [B*gm, gx, dy, dx*w]
    x = tf.reshape(x, [B, gm * gm, m * m * w]); // [B, V, (dy, dx, w)]
    return this.merger.apply(x as tf.Tensor3D);
  }
}
