/**
 * Mini-SAM: segment-anything `modeling/sam.py` (Sam) assembled from the image
 * encoder, prompt encoder and mask decoder, with the image embedding computed
 * separately (`embedImage`) so that stages 1 and 2, where the encoder is frozen,
 * can cache it, and `decode` taking boxes, points and/or the connector's sparse
 * tokens (paper Fig. 2, "segmentation model"; official LENS: SAM2 with the single
 * connector token as sparse prompt, no-mask dense prompt, single-mask output).
 */
import * as tf from '@tensorflow/tfjs-core';
import type { Rng } from '../../random';
import { Module } from '../nn';
import { assertShape, checkDivisible, checkInt, isBuffer } from './common';
import { SamImageEncoder, validateSamImageEncoderConfig, type SamImageEncoderConfig } from './image_encoder';
import { SamMaskDecoder, validateSamMaskDecoderConfig, type SamMaskDecoderConfig, type SamMaskOutput } from './mask_decoder';
import { SamPromptEncoder, validateSamPromptEncoderConfig, type SamPromptEncoderConfig, type SamPrompts } from './prompt_encoder';

/** Every size of the mini-SAM (presets.ts fills it per preset). */
export interface MiniSamConfig {
  /** Input image side in pixels (the model's imageSize; SAM2: 1024, presets tiny/quick: 64). */
  imageSize: number;
  /** Image encoder patch side (SAM: 16); masks come out at 4 * imageSize / patchSize. */
  patchSize: number;
  /** Image encoder ViT width (SAM ViT-B: 768). */
  encoderDim: number;
  /** Image encoder blocks (SAM ViT-B: 12). */
  encoderDepth: number;
  /** Image encoder heads (SAM ViT-B: 12). */
  encoderHeads: number;
  /** Image encoder MLP ratio (SAM: 4). */
  encoderMlpRatio: number;
  /** Prompt / decoder width C_sam (SAM: 256); the connector projects to it. */
  promptDim: number;
  /** Two-way transformer depth (SAM: 2). */
  decoderDepth: number;
  /** Decoder attention heads (SAM: 8). */
  decoderHeads: number;
  /** Decoder token-MLP width (SAM: 2048 = 8 x promptDim). */
  decoderMlpDim: number;
  /** Cross-attention downsampling in the decoder (SAM: 2). */
  attentionDownsampleRate: number;
  /** IoU head layers (SAM: 3). */
  iouHeadDepth: number;
  /** IoU head hidden width (SAM: 256). */
  iouHeadHiddenDim: number;
}

/** A small default (the `tiny` sizes): 64 px input, 16x16 grid, 64x64 masks. */
export const DEFAULT_MINI_SAM_CONFIG: MiniSamConfig = {
  imageSize: 64,
  patchSize: 4,
  encoderDim: 32,
  encoderDepth: 1,
  encoderHeads: 2,
  encoderMlpRatio: 4,
  promptDim: 32,
  decoderDepth: 2,
  decoderHeads: 2,
  decoderMlpDim: 64,
  attentionDownsampleRate: 2,
  iouHeadDepth: 3,
  iouHeadHiddenDim: 32,
};

/** Fills defaults and checks every field; throws naming the field and what was expected. */
export function validateMiniSamConfig(partial: Partial<MiniSamConfig> = {}): MiniSamConfig {
  const c: MiniSamConfig = { ...DEFAULT_MINI_SAM_CONFIG, ...partial };
  for (const k of Object.keys(DEFAULT_MINI_SAM_CONFIG) as Array<keyof MiniSamConfig>) checkInt(`MiniSamConfig.${k}`, c[k], 1);
  const unknown = Object.keys(partial).filter((k) => !(k in DEFAULT_MINI_SAM_CONFIG));
  if (unknown.length > 0) throw new Error(`MiniSamConfig: unknown field(s) ${unknown.join(', ')}`);
  checkDivisible('MiniSamConfig.imageSize', c.imageSize, c.patchSize, 'patchSize');
  // The parts' own rules (head divisibility, the decoder's dim / 8 upscaling, ...).
  const parts = samPartConfigs(c);
  validateSamImageEncoderConfig(parts.image);
  validateSamPromptEncoderConfig(parts.prompt);
  validateSamMaskDecoderConfig(parts.decoder);
  return c;
}

/** The three component configs a MiniSamConfig expands to. */
export function samPartConfigs(c: MiniSamConfig): {
  image: SamImageEncoderConfig;
  prompt: SamPromptEncoderConfig;
  decoder: SamMaskDecoderConfig;
} {
  return {
    image: {
      imageSize: c.imageSize,
      patchSize: c.patchSize,
      dim: c.encoderDim,
      depth: c.encoderDepth,
      heads: c.encoderHeads,
      mlpRatio: c.encoderMlpRatio,
      outDim: c.promptDim,
    },
    prompt: { dim: c.promptDim, imageSize: c.imageSize, embedSize: c.imageSize / c.patchSize },
    decoder: {
      dim: c.promptDim,
      depth: c.decoderDepth,
      heads: c.decoderHeads,
      mlpDim: c.decoderMlpDim,
      downsampleRate: c.attentionDownsampleRate,
      iouHeadDepth: c.iouHeadDepth,
      iouHeadHiddenDim: c.iouHeadHiddenDim,
    },
  };
}

/** images [B, H, W, 3] + prompts -> mask logits [B, 4h, 4w] (h = H / patchSize) and IoU [B, 1]. */
export class MiniSam extends Module {
  readonly config: MiniSamConfig;
  readonly imageEncoder: SamImageEncoder;
  readonly promptEncoder: SamPromptEncoder;
  readonly maskDecoder: SamMaskDecoder;

  constructor(config: Partial<MiniSamConfig>, rng: Rng) {
    super();
    this.config = validateMiniSamConfig(config);
    const parts = samPartConfigs(this.config);
    this.imageEncoder = this.child('image_encoder', new SamImageEncoder(parts.image, rng.fork('image_encoder')));
    this.promptEncoder = this.child('prompt_encoder', new SamPromptEncoder(parts.prompt, rng.fork('prompt_encoder')));
    this.maskDecoder = this.child('mask_decoder', new SamMaskDecoder(parts.decoder, rng.fork('mask_decoder')));
  }

  /** Like Module.setTrainable, but buffers (the PE matrix) stay frozen. */
  override setTrainable(trainable: boolean): this {
    super.setTrainable(trainable);
    for (const v of this.parameters()) if (isBuffer(v)) v.trainable = false;
    return this;
  }

  /** Side of the image-embedding grid h = imageSize / patchSize. */
  get embedSize(): number {
    return this.config.imageSize / this.config.patchSize;
  }

  /** Side of the low-resolution mask logits, 4h. */
  get maskSize(): number {
    return 4 * this.embedSize;
  }

  /** images [B, H, W, 3] in [0, 1] -> embeddings [B, h, w, C_sam]. */
  embedImage(images: tf.Tensor4D): tf.Tensor4D {
    return this.imageEncoder.apply(images);
  }

  /**
   * embeddings [B or 1, h, w, C_sam] + prompts (batch B) -> masks [B, 4h, 4w], iou [B, 1].
   * With no prompt at all, B is the embeddings' batch.
   */
  decode(embeddings: tf.Tensor4D, prompts: SamPrompts): SamMaskOutput {
    const h = this.embedSize;
    assertShape('MiniSam.decode embeddings', embeddings, [null, h, h, this.config.promptDim]);
    return tf.tidy(() => {
      // Batch-1 embeddings may serve a batch of prompts (G rollouts of one image);
      // otherwise the prompts must match the embeddings' batch.
      const none = !prompts.points && !prompts.boxes && !prompts.sparse;
      const n = embeddings.shape[0];
      const { sparse, dense } = this.promptEncoder.apply(prompts, none || n > 1 ? n : undefined);
      return this.maskDecoder.apply(embeddings, this.promptEncoder.denseImagePE(), sparse, dense);
    });
  }

  /** embedImage then decode. */
  apply(images: tf.Tensor4D, prompts: SamPrompts): SamMaskOutput {
    return tf.tidy(() => {
      const emb = this.embedImage(images);
      return this.decode(emb, prompts);
    });
  }
}
