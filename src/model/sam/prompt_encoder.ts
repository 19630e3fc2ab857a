/**
 * Mini-SAM prompt encoder: segment-anything `modeling/prompt_encoder.py`
 * (PromptEncoder + PositionEmbeddingRandom) semantics, plus LENS's extra sparse
 * tokens (the connector output, appended as-is after points and boxes, as the
 * official LENS / EVF-SAM code feeds text embeddings to SAM2).
 *
 * - Positional encoding: random Fourier features, pe(p) = [sin(2pi (2p-1) G),
 *   cos(2pi (2p-1) G)] with p in [0, 1]^2 and G a fixed N(0, 1) matrix [2, C/2]
 *   (SAM's scale 1.0). G is a buffer: checkpointed, never trained.
 * - Points: pixel coordinates + 0.5 (pixel centres), labels 1 fg, 0 bg, -1 "not a
 *   point" (padding: pe zeroed, not_a_point_embed added). As SAM, a padding point
 *   is appended when points come without boxes.
 * - Boxes: xyxy pixels, the two corners as points + 0.5 with their own learned
 *   embeddings (point_embeddings[2], [3]).
 * - Dense: no mask prompt is supported (LENS never gives one), so the dense
 *   embedding is always the learned no_mask_embed broadcast to [B, h, w, C].
 */
import * as tf from '@tensorflow/tfjs-core';
import type { Rng } from '../../random';
import { Module, init } from '../nn';
import { assertShape, checkDivisible, checkInt, markBuffer } from './common';

/** Sizes of the prompt encoder. */
export interface SamPromptEncoderConfig {
  /** Prompt / decoder width C_sam (SAM: 256); must be even (sin and cos halves). */
  dim: number;
  /** Input image side in pixels, to normalise point and box coordinates (SAM: 1024). */
  imageSize: number;
  /** Image-embedding grid side h = imageSize / patchSize (SAM: 64). */
  embedSize: number;
}

/** Checks each field; throws naming it. */
export function validateSamPromptEncoderConfig(c: SamPromptEncoderConfig): SamPromptEncoderConfig {
  const w = 'SamPromptEncoderConfig';
  checkInt(`${w}.dim`, c.dim, 2);
  checkDivisible(`${w}.dim`, c.dim, 2, 'two (sin and cos halves)');
  checkInt(`${w}.imageSize`, c.imageSize);
  checkInt(`${w}.embedSize`, c.embedSize);
  return c;
}

/** Prompts for one batch; every present field has batch B. */
export interface SamPrompts {
  /** Points: coords [B, N, 2] (x, y) in input-image pixels, labels [B, N] (1 fg, 0 bg, -1 padding). */
  points?: { coords: tf.Tensor3D; labels: tf.Tensor2D };
  /** Boxes [B, 4], xyxy in input-image pixels. */
  boxes?: tf.Tensor2D;
  /** Extra sparse tokens [B, K, C_sam] (the connector's output), appended as-is. */
  sparse?: tf.Tensor3D;
}

/** Output of the prompt encoder. */
export type SamPromptEmbeddings = {
  /** [B, N, C_sam]: points (+ padding point), then box corners, then extra tokens. */
  sparse: tf.Tensor3D;
  /** [B, h, w, C_sam]: the no-mask embedding broadcast. */
  dense: tf.Tensor4D;
};

/** Prompts -> sparse [B, N, C_sam] and dense [B, h, w, C_sam] embeddings. */
export class SamPromptEncoder extends Module {
  readonly gaussian: tf.Variable; // [2, C/2], buffer
  readonly pointEmbeddings: tf.Variable[] = []; // 4 x [C]: bg, fg, box corner 1, box corner 2
  readonly notAPointEmbed: tf.Variable; // [C]
  readonly noMaskEmbed: tf.Variable; // [C]

  constructor(readonly config: SamPromptEncoderConfig, rng: Rng) {
    super();
    const c = validateSamPromptEncoderConfig(config);
    this.gaussian = markBuffer(
      this.param('pe_layer.positional_encoding_gaussian_matrix', init.normal(rng.fork('pe'), c.dim, 1), [2, c.dim / 2]),
    );
    // nn.Embedding's default init is N(0, 1), which SAM keeps for these.
    for (let i = 0; i < 4; i++) this.pointEmbeddings.push(this.param(`point_embeddings.${i}`, init.normal(rng, c.dim, 1), [c.dim]));
    this.notAPointEmbed = this.param('not_a_point_embed', init.normal(rng, c.dim, 1), [c.dim]);
    this.noMaskEmbed = this.param('no_mask_embed', init.normal(rng, c.dim, 1), [c.dim]);
  }

  /** Random-Fourier encoding of normalised coords: [..., 2] in [0, 1] -> [..., C]. */
  peEncoding(coords01: tf.Tensor): tf.Tensor {
    return tf.tidy(() => {
      const shape = coords01.shape;
      const flat = tf.reshape(coords01, [-1, 2]); // [P, 2]
      const proj = tf.mul(tf.matMul(tf.sub(tf.mul(flat, 2), 1), this.gaussian), 2 * Math.PI); // [P, C/2]
      const enc = tf.concat([tf.sin(proj), tf.cos(proj)], 1); // [P, C]
      return tf.reshape(enc, [...shape.slice(0, -1), this.config.dim]);
    });
  }

  /** Pixel coords [..., 2] (x, y) -> pe [..., C]: divides by the image size, as forward_with_coords. */
  private peFromPixels(coords: tf.Tensor): tf.Tensor {
    return tf.tidy(() => this.peEncoding(tf.div(coords, this.config.imageSize)));
  }

  /** The positional encoding of the embedding grid at cell centres: [1, h, w, C] (SAM get_dense_pe). */
  denseImagePE(): tf.Tensor4D {
    return tf.tidy(() => {
      const h = this.config.embedSize;
      const grid = new Float32Array(h * h * 2);
      for (let i = 0; i < h; i++) {
        for (let j = 0; j < h; j++) {
          grid[(i * h + j) * 2] = (j + 0.5) / h; // x
          grid[(i * h + j) * 2 + 1] = (i + 0.5) / h; // y
        }
      }
      return tf.reshape(this.peEncoding(tf.tensor(grid, [h, h, 2])), [1, h, h, this.config.dim]);
    });
  }

  /** Points [B, N, 2] pixels + labels [B, N] -> [B, N(+1 padding), C]. */
  private embedPoints(coords: tf.Tensor3D, labels: tf.Tensor2D, pad: boolean): tf.Tensor3D {
    return tf.tidy(() => {
      let pts: tf.Tensor3D = tf.add(coords, 0.5); // pixel centres
      let lab: tf.Tensor2D = tf.cast(labels, 'float32');
      const b = coords.shape[0];
      if (pad) {
        pts = tf.concat([pts, tf.zeros([b, 1, 2])], 1);
        lab = tf.concat([lab, tf.fill([b, 1], -1)], 1);
      }
      const pe = this.peFromPixels(pts); // [B, N, C]
      const is = (v: number) => tf.expandDims(tf.cast(tf.equal(lab, v), 'float32'), 2); // [B, N, 1]
      const notPad = tf.sub(1, is(-1));
      return tf.addN([
        tf.mul(pe, notPad),
        tf.mul(is(-1), this.notAPointEmbed),
        tf.mul(is(0), this.pointEmbeddings[0]!),
        tf.mul(is(1), this.pointEmbeddings[1]!),
      ]) as tf.Tensor3D;
    });
  }

  /** Boxes [B, 4] xyxy pixels -> corner embeddings [B, 2, C]. */
  private embedBoxes(boxes: tf.Tensor2D): tf.Tensor3D {
    return tf.tidy(() => {
      const b = boxes.shape[0];
      const corners = tf.reshape(tf.add(boxes, 0.5), [b, 2, 2]); // [B, corner, (x, y)]
      const pe = this.peFromPixels(corners); // [B, 2, C]
      const cornerEmbed = tf.stack([this.pointEmbeddings[2]!, this.pointEmbeddings[3]!]); // [2, C]
      return tf.add(pe, cornerEmbed) as tf.Tensor3D;
    });
  }

  /**
   * prompts -> { sparse [B, N, C], dense [B, h, w, C] }. `batch` is needed only
   * when no prompt is given (then sparse is [B, 0, C]).
   */
  apply(prompts: SamPrompts, batch?: number): SamPromptEmbeddings {
    const { points, boxes, sparse } = prompts;
    const c = this.config;
    const sizes = [points?.coords.shape[0], boxes?.shape[0], sparse?.shape[0], batch].filter((x) => x !== undefined);
    if (sizes.length === 0) throw new Error('SamPromptEncoder: no prompt given and no batch size');
    const b = sizes[0]!;
    if (sizes.some((s) => s !== b)) throw new Error(`SamPromptEncoder: prompts disagree on the batch size: ${sizes.join(' vs ')}`);
    if (points) {
      assertShape('SamPromptEncoder points.coords', points.coords, [b, null, 2]);
      assertShape('SamPromptEncoder points.labels', points.labels, [b, points.coords.shape[1]]);
    }
    if (boxes) assertShape('SamPromptEncoder boxes', boxes, [b, 4]);
    if (sparse) assertShape('SamPromptEncoder sparse', sparse, [b, null, c.dim]);
    return tf.tidy(() => {
      const parts: tf.Tensor3D[] = [];
      if (points) parts.push(this.embedPoints(points.coords, points.labels, boxes === undefined));
      if (boxes) parts.push(this.embedBoxes(boxes));
      if (sparse) parts.push(sparse);
      const sp = parts.length > 0 ? tf.concat(parts, 1) : tf.zeros([b, 0, c.dim]);
      const dense = tf.broadcastTo(tf.reshape(this.noMaskEmbed, [1, 1, 1, c.dim]), [b, c.embedSize, c.embedSize, c.dim]);
      return { sparse: (parts.length === 1 ? tf.clone(sp) : sp) as tf.Tensor3D, dense: dense as tf.Tensor4D };
    });
  }
}
