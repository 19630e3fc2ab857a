/**
 * Mini-SAM image encoder: segment-anything `modeling/image_encoder.py`
 * (ImageEncoderViT) at small width. Patch embedding, learned absolute positional
 * embedding, pre-LN ViT blocks with global attention (SAM's windowed attention
 * and relative positions are dropped: at a 16x16 grid global attention is cheap),
 * then SAM's neck (1x1 conv, LayerNorm2d, 3x3 conv, LayerNorm2d) down to the
 * prompt width. Frozen in stage 2 (paper Fig. 2); trained in stage 0a.
 *
 * Performance rules: the patch embedding is a rank-4 reshape / transpose + Linear
 * (not conv2d); the 3x3 neck conv is im2col + matmul (common.ts).
 */
import * as tf from '@tensorflow/tfjs-core';
import type { Rng } from '../../random';
import { LayerNorm, Linear, Module, TransformerBlock, init } from '../nn';
import { Conv3x3, assertShape, checkDivisible, checkInt } from './common';

/** Sizes of the image encoder. */
export interface SamImageEncoderConfig {
  /** Side of the square input image in pixels (the model's `imageSize`; SAM: 1024, presets tiny/quick: 64). */
  imageSize: number;
  /** Patch side; the embedding grid is imageSize / patchSize (SAM: 16 -> 64x64 grid). */
  patchSize: number;
  /** ViT width (SAM ViT-B: 768). */
  dim: number;
  /** Number of ViT blocks (SAM ViT-B: 12). */
  depth: number;
  /** Attention heads (SAM ViT-B: 12). */
  heads: number;
  /** MLP hidden width as a multiple of dim (SAM: 4). */
  mlpRatio: number;
  /** Neck output width = the prompt / mask-decoder width C_sam (SAM: 256). */
  outDim: number;
}

/** Fills nothing (every field is a size) but checks each one; throws naming the field. */
export function validateSamImageEncoderConfig(c: SamImageEncoderConfig): SamImageEncoderConfig {
  const w = 'SamImageEncoderConfig';
  for (const k of ['imageSize', 'patchSize', 'dim', 'depth', 'heads', 'mlpRatio', 'outDim'] as const) {
    checkInt(`${w}.${k}`, c[k], k === 'depth' ? 0 : 1);
  }
  checkDivisible(`${w}.imageSize`, c.imageSize, c.patchSize, 'patchSize');
  checkDivisible(`${w}.dim`, c.dim, c.heads, 'heads');
  return c;
}

/** images [B, H, W, 3] in [0, 1] -> image embeddings [B, h, w, C_sam], h = H / patchSize. */
export class SamImageEncoder extends Module {
  readonly grid: number;
  readonly patchEmbed: Linear;
  readonly posEmbed: tf.Variable; // [1, h*w, dim]
  readonly blocks: TransformerBlock[] = [];
  readonly neckProj: Linear;
  readonly neckNorm1: LayerNorm;
  readonly neckConv: Conv3x3;
  readonly neckNorm2: LayerNorm;

  constructor(readonly config: SamImageEncoderConfig, rng: Rng) {
    super();
    const c = validateSamImageEncoderConfig(config);
    this.grid = c.imageSize / c.patchSize;
    const p = c.patchSize;
    this.patchEmbed = this.child('patch_embed', new Linear(p * p * 3, c.dim, rng, { std: 1 / Math.sqrt(3 * p * p * 3) }));
    this.posEmbed = this.param('pos_embed', init.normal(rng, this.grid * this.grid * c.dim, 0.02), [1, this.grid * this.grid, c.dim]);
    for (let i = 0; i < c.depth; i++) this.blocks.push(this.child(`blocks.${i}`, new TransformerBlock(c.dim, c.heads, c.mlpRatio, rng)));
    // SAM's neck: Conv1x1 (no bias) -> LayerNorm2d -> Conv3x3 (no bias) -> LayerNorm2d; LN2d eps 1e-6.
    this.neckProj = this.child('neck.0', new Linear(c.dim, c.outDim, rng, { bias: false, std: 1 / Math.sqrt(3 * c.dim) }));
    this.neckNorm1 = this.child('neck.1', new LayerNorm(c.outDim, 1e-6));
    this.neckConv = this.child('neck.2', new Conv3x3(c.outDim, c.outDim, rng));
    this.neckNorm2 = this.child('neck.3', new LayerNorm(c.outDim, 1e-6));
  }

  /** images [B, H, W, 3] -> [B, h, w, C_sam]. */
  apply(images: tf.Tensor4D): tf.Tensor4D {
    const c = this.config;
    assertShape('SamImageEncoder images', images, [null, c.imageSize, c.imageSize, 3]);
    return tf.tidy(() => {
      const b = images.shape[0];
      const g = this.grid;
      const p = c.patchSize;
      // Patchify with rank <= 4: row H = (i, py), row content W*3 = (j, px*3 + ch).
      const r = tf.reshape(images, [b * g, p, g, p * 3]); // [B*h, py, w, px*3+ch]
      const t = tf.transpose(r, [0, 2, 1, 3]); // [B*h, w, py, px*3+ch]
      const patches = tf.reshape(t, [b, g * g, p * p * 3]); // [B, h*w, p*p*3], (py, px, ch) order
      let x = tf.add(this.patchEmbed.apply(patches), this.posEmbed) as tf.Tensor3D; // [B, h*w, dim]
      for (const blk of this.blocks) x = blk.apply(x);
      const x4 = tf.reshape(x, [b, g, g, c.dim]) as tf.Tensor4D; // [B, h, w, dim]
      const n1 = this.neckNorm1.apply(this.neckProj.apply(x4));
      return this.neckNorm2.apply(this.neckConv.apply(n1)); // [B, h, w, C_sam]
    });
  }
}
