/**
 * Mini-SAM mask decoder: segment-anything `modeling/mask_decoder.py`
 * (MaskDecoder.predict_masks) with single-mask output, as LENS uses SAM
 * (multimask_output=False). Output tokens (IoU token + mask token) are prepended
 * to the sparse prompts; the two-way transformer runs over them and the image
 * embedding (+ dense prompt); the image is upscaled 4x by two ConvTranspose2d(k=2,
 * s=2) equivalents with LayerNorm2d + GELU between (written as per-pixel Linear +
 * pixel shuffle); a hypernetwork MLP turns the mask token into per-pixel weights;
 * an MLP on the IoU token predicts the mask's IoU.
 *
 * Why one mask token and not SAM's four: LENS reads only the single-mask output,
 * and here SAM is trained from scratch, so the three multimask tokens' hypernetworks
 * would be parameters that never receive a gradient.
 */
import * as tf from '@tensorflow/tfjs-core';
import type { Rng } from '../../random';
import { LayerNorm, Module, init, quickGelu } from '../nn';
import { SamMLP, UpConv2x2, assertShape, checkDivisible, checkInt } from './common';
import { TwoWayTransformer } from './transformer';

/** Sizes of the mask decoder and its two-way transformer. */
export interface SamMaskDecoderConfig {
  /** Width C_sam (SAM: 256); divisible by 8 (the upscaled image has C/8 channels). */
  dim: number;
  /** Two-way transformer depth (SAM: 2). */
  depth: number;
  /** Attention heads (SAM: 8); dim / downsampleRate must divide by it. */
  heads: number;
  /** Token MLP hidden width (SAM: 2048 = 8 x dim). */
  mlpDim: number;
  /** Cross-attention downsampling (SAM: 2). */
  downsampleRate: number;
  /** Layers of the IoU head MLP (SAM: 3). */
  iouHeadDepth: number;
  /** Hidden width of the IoU head MLP (SAM: 256). */
  iouHeadHiddenDim: number;
}

/** Checks each field; throws naming it. */
export function validateSamMaskDecoderConfig(c: SamMaskDecoderConfig): SamMaskDecoderConfig {
  const w = 'SamMaskDecoderConfig';
  for (const k of ['dim', 'depth', 'heads', 'mlpDim', 'downsampleRate', 'iouHeadDepth', 'iouHeadHiddenDim'] as const) {
    checkInt(`${w}.${k}`, c[k], 1);
  }
  checkDivisible(`${w}.dim`, c.dim, 8, 'eight (the 4x upscaling ends at dim / 8 channels)');
  checkDivisible(`${w}.dim`, c.dim, c.downsampleRate, 'downsampleRate');
  checkDivisible(`${w}.dim / downsampleRate`, c.dim / c.downsampleRate, c.heads, 'heads');
  return c;
}

/** What the decoder returns. */
export type SamMaskOutput = {
  /** Low-resolution mask logits [B, 4h, 4w]. */
  masks: tf.Tensor3D;
  /** Predicted IoU of the mask [B, 1]. */
  iou: tf.Tensor2D;
};

/** image embeddings [B|1, h, w, C] + pe [1, h, w, C] + sparse [B, N, C] + dense [B, h, w, C] -> masks [B, 4h, 4w], iou [B, 1]. */
export class SamMaskDecoder extends Module {
  readonly iouToken: tf.Variable; // [1, C]
  readonly maskToken: tf.Variable; // [1, C]
  readonly transformer: TwoWayTransformer;
  readonly up1: UpConv2x2;
  readonly upNorm: LayerNorm;
  readonly up2: UpConv2x2;
  readonly hypernet: SamMLP;
  readonly iouHead: SamMLP;

  constructor(readonly config: SamMaskDecoderConfig, rng: Rng) {
    super();
    const c = validateSamMaskDecoderConfig(config);
    this.iouToken = this.param('iou_token', init.normal(rng, c.dim, 1), [1, c.dim]);
    this.maskToken = this.param('mask_tokens', init.normal(rng, c.dim, 1), [1, c.dim]);
    this.transformer = this.child(
      'transformer',
      new TwoWayTransformer({ depth: c.depth, dim: c.dim, heads: c.heads, mlpDim: c.mlpDim, downsampleRate: c.downsampleRate }, rng),
    );
    this.up1 = this.child('output_upscaling.0', new UpConv2x2(c.dim, c.dim / 4, rng));
    this.upNorm = this.child('output_upscaling.1', new LayerNorm(c.dim / 4, 1e-6));
    this.up2 = this.child('output_upscaling.3', new UpConv2x2(c.dim / 4, c.dim / 8, rng));
    this.hypernet = this.child('output_hypernetworks_mlps.0', new SamMLP(c.dim, c.dim, c.dim / 8, 3, rng));
    this.iouHead = this.child('iou_prediction_head', new SamMLP(c.dim, c.iouHeadHiddenDim, 1, c.iouHeadDepth, rng));
  }

  apply(image: tf.Tensor4D, imagePE: tf.Tensor4D, sparse: tf.Tensor3D, dense: tf.Tensor4D): SamMaskOutput {
    const c = this.config.dim;
    const b = sparse.shape[0];
    assertShape('SamMaskDecoder sparse', sparse, [null, null, c]);
    assertShape('SamMaskDecoder dense', dense, [b, null, null, c]);
    const [h, w] = [dense.shape[1], dense.shape[2]];
    assertShape('SamMaskDecoder image', image, [image.shape[0] === 1 ? 1 : b, h, w, c]);
    assertShape('SamMaskDecoder imagePE', imagePE, [1, h, w, c]);
    return tf.tidy(() => {
      const out = tf.concat([this.iouToken, this.maskToken], 0); // [2, C]
      const tokens = tf.concat([tf.broadcastTo(tf.expandDims(out, 0), [b, 2, c]), sparse], 1) as tf.Tensor3D; // [B, 2+N, C]
      // One image may serve B prompt sets (G rollouts): the add broadcasts batch 1 to B.
      const src = tf.add(image, dense) as tf.Tensor4D; // [B, h, w, C]
      const { tokens: hs, image: srcOut } = this.transformer.apply(src, imagePE, tokens);
      const iouTokenOut = tf.reshape(tf.slice(hs, [0, 0, 0], [b, 1, c]), [b, c]); // [B, C]
      const maskTokenOut = tf.reshape(tf.slice(hs, [0, 1, 0], [b, 1, c]), [b, c]); // [B, C]
      const s4 = tf.reshape(srcOut, [b, h, w, c]) as tf.Tensor4D; // [B, h, w, C]
      const u1 = quickGelu(this.upNorm.apply(this.up1.apply(s4))); // [B, 2h, 2w, C/4]
      const u2 = quickGelu(this.up2.apply(u1)); // [B, 4h, 4w, C/8]
      const hyper = tf.expandDims(this.hypernet.apply(maskTokenOut), 2); // [B, C/8, 1]
      const flat = tf.reshape(u2, [b, 16 * h * w, c / 8]); // [B, 16hw, C/8]
      const masks = tf.reshape(tf.matMul(flat, hyper), [b, 4 * h, 4 * w]) as tf.Tensor3D; // [B, 4h, 4w]
      const iou = this.iouHead.apply(iouTokenOut) as tf.Tensor2D; // [B, 1]
      return { masks, iou };
    });
  }
}

/**
 * Bilinear resize of mask logits to the ground-truth resolution, as SAM's
 * postprocess_masks / F.interpolate(align_corners=False) (= tfjs halfPixelCenters).
 * logits [B, h, w] -> [B, H, W].
 */
export function upsampleMaskLogits(logits: tf.Tensor3D, height: number, width: number): tf.Tensor3D {
  checkInt('upsampleMaskLogits height', height);
  checkInt('upsampleMaskLogits width', width);
  return tf.tidy(() => {
    const [b, h, w] = logits.shape;
    if (h === height && w === width) return tf.clone(logits);
    const x = tf.reshape(logits, [b, h, w, 1]) as tf.Tensor4D; // [B, h, w, 1]
    const y = tf.image.resizeBilinear(x, [height, width], false, true); // [B, H, W, 1]
    return tf.reshape(y, [b, height, width]);
  });
}
