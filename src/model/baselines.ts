/**
 * The baselines the paper's tables compare LENS with, built from the same parts
 * and the same presets (paper Fig. 1 (a) and (b); DESIGN.md "Training"):
 *
 * - LISA-style (Lai et al. 2024, dvlab-research/LISA `model/LISA.py`): the MLLM's
 *   last-layer state at ONE segmentation token -> `text_hidden_fcs` projection ->
 *   SAM sparse prompt; no reasoning, supervised (token CE + BCE x2 / Dice x0.5).
 *   LISA freezes the vision tower and SAM's image encoder and trains the LLM,
 *   the projection and SAM's decoder.
 * - Seg-Zero-style (Liu et al. 2025, dvlab-research/Seg-Zero): the MLLM answers
 *   in the LENS format, the first `[x1, y1, x2, y2]` of its answer is given to a
 *   FROZEN SAM as a box prompt; RL trains the MLLM on format + box rewards only.
 *   A parse failure becomes the box [0, 0, 0, 0], as Seg-Zero's parser returns.
 */
import * as tf from '@tensorflow/tfjs-core';
import { Rng } from '../random';
import { parseBox, type Box } from './answer';
import { applySplit, prefixSplit, type TrainableSplit } from './lens';
import { MLLM } from './mllm';
import { MLP, Module } from './nn';
import { resolveLensConfig, type LensConfig, type LensConfigDelta, type PresetName } from './presets';
import { assertShape, isBuffer, torchStd } from './sam/common';
import { MiniSam } from './sam/sam';
import { ANSWER_END_ID } from './tokenizer';
import { VisionEncoder } from './vision_encoder';

/** Encoder inputs shared by the baselines: images or their cached encodings, batch B or 1. */
export interface BaselineImages {
  images?: tf.Tensor4D;
  visual?: tf.Tensor3D;
  samEmbeddings?: tf.Tensor4D;
}

/** Parts every baseline has: vision encoder, MLLM, mini-SAM. */
abstract class BaselineBase extends Module {
  readonly vision: VisionEncoder;
  readonly mllm: MLLM;
  readonly sam: MiniSam;

  constructor(readonly config: LensConfig, rng: Rng) {
    super();
    this.vision = this.child('vision', new VisionEncoder(config.vision, rng.fork('vision')));
    this.mllm = this.child('mllm', new MLLM(config.mllm, rng.fork('mllm')));
    this.sam = this.child('sam', new MiniSam(config.sam, rng.fork('sam')));
  }

  /** Parameter-name prefixes this baseline trains. */
  abstract readonly trainablePrefixes: readonly string[];

  /** Like Module.setTrainable, but buffers stay frozen. */
  override setTrainable(trainable: boolean): this {
    super.setTrainable(trainable);
    for (const v of this.parameters()) if (isBuffer(v)) v.trainable = false;
    return this;
  }

  /** The trainable / frozen split of this baseline's training. */
  trainingSplit(): TrainableSplit {
    return prefixSplit(this, this.trainablePrefixes);
  }

  /** Freezes everything outside the training set; returns the variables to optimise. */
  setTraining(): tf.Variable[] {
    return applySplit(this.trainingSplit());
  }

  protected visualFor(inputs: BaselineImages, b: number): tf.Tensor3D | undefined {
    const v = inputs.visual ?? (inputs.images ? this.vision.apply(inputs.images) : undefined);
    if (!v || v.shape[0] === b) return v;
    if (v.shape[0] !== 1) throw new Error(`${this.constructor.name}: visual tokens have batch ${v.shape[0]}, expected ${b} or 1`);
    return tf.broadcastTo(v, [b, v.shape[1], v.shape[2]]) as tf.Tensor3D;
  }

  protected samEmbeddingsFor(inputs: BaselineImages): tf.Tensor4D {
    if (inputs.samEmbeddings) return inputs.samEmbeddings;
    if (inputs.images) return this.sam.embedImage(inputs.images);
    throw new Error(`${this.constructor.name}: give images or samEmbeddings for the segmenter`);
  }
}

/** LISA-style baseline options. */
export interface LisaOptions {
  /**
   * Token whose last-layer state prompts SAM (LISA's `[SEG]`). The tokenizer has
   * no `<seg>`, so the default is `</answer>`: a LISA-style answer
   * `<answer>label</answer>` ends on it and its state has read the whole answer.
   */
  segTokenId: number;
}

/** LISA-style outputs (the caller disposes them). */
export type LisaOutputs = {
  /** [B, T, vocab] */
  logits: tf.Tensor3D;
  /** [B, 1, C_sam] projected segmentation-token state. */
  samPrompts: tf.Tensor3D;
  /** [B, 4h, 4w] */
  masks: tf.Tensor3D;
  /** [B, 1] */
  iou: tf.Tensor2D;
};

/** LISA-style: one segmentation token's hidden state -> projection -> SAM sparse prompt. */
export class LisaModel extends BaselineBase {
  readonly segProj: MLP; // C_llm -> C_llm -> C_sam (LISA's text_hidden_fcs)
  readonly segTokenId: number;
  readonly trainablePrefixes = ['mllm.', 'seg_proj.', 'sam.prompt_encoder.', 'sam.mask_decoder.'] as const;

  constructor(config: LensConfig, rng: Rng, { segTokenId = ANSWER_END_ID }: Partial<LisaOptions> = {}) {
    super(config, rng);
    if (!Number.isInteger(segTokenId) || segTokenId < 0 || segTokenId >= config.mllm.vocabSize) {
      throw new Error(`LisaOptions.segTokenId: expected an integer in [0, ${config.mllm.vocabSize}), got ${segTokenId}`);
    }
    this.segTokenId = segTokenId;
    const c = config.mllm.hiddenSize;
    this.segProj = this.child('seg_proj', new MLP(c, c, config.sam.promptDim, rng.fork('seg_proj'), { std: torchStd(c) }));
  }

  /** Host-side one-hot [B, T] of each row's LAST real segmentation token; throws naming rows without one. */
  private segSelector(tokens: tf.Tensor2D, attentionMask: tf.Tensor2D): tf.Tensor3D {
    const [b, t] = tokens.shape;
    const ids = tokens.dataSync();
    const mask = attentionMask.dataSync();
    const sel = new Float32Array(b * t);
    const missing: number[] = [];
    for (let r = 0; r < b; r++) {
      let pos = -1;
      for (let j = 0; j < t; j++) if (ids[r * t + j] === this.segTokenId && mask[r * t + j]) pos = j;
      if (pos < 0) missing.push(r);
      else sel[r * t + pos] = 1;
    }
    if (missing.length > 0) throw new Error(`LisaModel.forward: row(s) ${missing.join(', ')} hold no segmentation token (id ${this.segTokenId})`);
    return tf.tensor3d(sel, [b, t, 1]);
  }

  /** tokens [B, T] (+ images) -> logits [B, T, vocab], prompts [B, 1, C_sam], masks [B, 4h, 4w], iou [B, 1]. */
  forward(inputs: { tokens: tf.Tensor2D; attentionMask: tf.Tensor2D } & BaselineImages): LisaOutputs {
    const { tokens, attentionMask } = inputs;
    assertShape('LisaModel.forward tokens', tokens, [null, null]);
    assertShape('LisaModel.forward attentionMask', attentionMask, [tokens.shape[0], tokens.shape[1]]);
    const sel = this.segSelector(tokens, attentionMask);
    try {
      return tf.tidy(() => {
        const b = tokens.shape[0];
        const { logits, hidden } = this.mllm.forward({ tokens, attentionMask, visual: this.visualFor(inputs, b) });
        // A one-hot product instead of gather: gather's gradient is missing on wasm.
        const state = tf.sum(tf.mul(hidden, sel), 1, true) as tf.Tensor3D; // [B, 1, C]
        const samPrompts = this.segProj.apply(state); // [B, 1, C_sam]
        const { masks, iou } = this.sam.decode(this.samEmbeddingsFor(inputs), { sparse: samPrompts });
        return { logits, samPrompts, masks, iou };
      });
    } finally {
      sel.dispose();
    }
  }
}

/** Seg-Zero-style outputs of the segmentation step (the caller disposes the tensors). */
export type SegZeroSegmentation = {
  /** [B, 4h, 4w] */
  masks: tf.Tensor3D;
  /** [B, 1] */
  iou: tf.Tensor2D;
  /** Parsed boxes, null where parsing failed (SAM then got [0, 0, 0, 0]). */
  boxes: Array<Box | null>;
};

/** Seg-Zero-style: the MLLM's parsed box -> frozen SAM box prompt; RL trains vision + MLLM only. */
export class SegZeroModel extends BaselineBase {
  readonly trainablePrefixes = ['vision.', 'mllm.'] as const;

  /** The policy pass: tokens [B, T] (+ images or visual) -> logits [B, T, vocab]. */
  policyLogits(inputs: { tokens: tf.Tensor2D; attentionMask: tf.Tensor2D } & BaselineImages): tf.Tensor3D {
    return tf.tidy(() => this.mllm.forward({ ...inputs, visual: this.visualFor(inputs, inputs.tokens.shape[0]) }).logits);
  }

  /** completions (B strings) + images / SAM embeddings (batch B or 1) -> masks from the parsed boxes. */
  segment(completions: readonly string[], inputs: BaselineImages): SegZeroSegmentation {
    if (completions.length === 0) throw new Error('SegZeroModel.segment: no completions');
    const boxes = completions.map((c) => parseBox(c));
    const flat = boxes.flatMap((bx) => bx ?? [0, 0, 0, 0]);
    return {
      ...tf.tidy(() => this.sam.decode(this.samEmbeddingsFor(inputs), { boxes: tf.tensor2d(flat, [completions.length, 4]) })),
      boxes,
    };
  }
}

/** Builds the LISA-style baseline from a preset or a delta (its `context` / `connector` sections are unused). */
export function buildLisa(presetOrConfig: PresetName | LensConfigDelta = 'quick', { seed = 0, segTokenId }: { seed?: number; segTokenId?: number } = {}): LisaModel {
  return new LisaModel(resolveLensConfig(presetOrConfig), new Rng(seed), { segTokenId });
}

/** Builds the Seg-Zero-style baseline from a preset or a delta. */
export function buildSegZero(presetOrConfig: PresetName | LensConfigDelta = 'quick', { seed = 0 }: { seed?: number } = {}): SegZeroModel {
  return new SegZeroModel(resolveLensConfig(presetOrConfig), new Rng(seed));
}
