/**
 * The whole LENS model of the paper's Figure 2, assembled from its parts:
 * vision encoder -> MLLM over [instruction, visual tokens, text] with the context
 * queries appended after the whole sequence -> read-out of the last M rows of the
 * last layer after the final norm -> connector -> mini-SAM (sparse prompt = the
 * connector tokens, no-mask dense prompt, single-mask output). One forward pass
 * yields both the per-token logits (for the policy's log-probs) and the mask
 * logits (lens-official-code-facts.md "LENS model").
 *
 * Trainable sets per stage (paper Fig. 2 caption, official code):
 * - stage1 (pretraining alignment): context queries + connector only;
 * - stage2 (GRPO + L_seg): everything except SAM's image encoder;
 * - stage0a (segmenter pretraining, DESIGN.md): SAM; stage0v (vision tower pretraining): the
 *   vision encoder; stage0b (MLLM SFT): vision + MLLM.
 * Buffers (the prompt encoder's Fourier matrix) are never trainable.
 */
import * as tf from '@tensorflow/tfjs-core';
import { Rng } from '../random';
import { Connector } from './connector';
import { ContextQueries } from './context_module';
import { MLLM, type KVCache } from './mllm';
import { Module } from './nn';
import type { LensConfig } from './presets';
import { assertShape, isBuffer } from './sam/common';
import { MiniSam } from './sam/sam';
import { VisionEncoder } from './vision_encoder';

export const STAGES = ['stage0a', 'stage0v', 'stage0b', 'stage1', 'stage2'] as const;
export type Stage = (typeof STAGES)[number];

/** The modules stage 2 trains (all but SAM's image encoder); a stage-2 run may train fewer (GrpoStageConfig.trainable). */
export const STAGE2_MODULES = ['vision', 'mllm', 'context', 'connector', 'sam.prompt_encoder', 'sam.mask_decoder'] as const;
export type Stage2Module = (typeof STAGE2_MODULES)[number];

/** Top-level parameter-name prefixes trained in each stage. */
export const STAGE_TRAINABLE: Record<Stage, readonly string[]> = {
  stage0a: ['sam.'],
  stage0v: ['vision.'],
  stage0b: ['vision.', 'mllm.'],
  stage1: ['context.', 'connector.'],
  stage2: STAGE2_MODULES.map((m) => `${m}.`),
};

/** A module's parameters split by a name predicate; buffers always land in `frozen`. */
export interface TrainableSplit {
  trainable: Array<[string, tf.Variable]>;
  frozen: Array<[string, tf.Variable]>;
}

/** Splits `module`'s parameters: trainable where `isTrainable(name)` holds and the variable is no buffer. */
export function splitParameters(module: Module, isTrainable: (name: string) => boolean): TrainableSplit {
  const out: TrainableSplit = { trainable: [], frozen: [] };
  for (const [name, v] of module.namedParameters()) (isTrainable(name) && !isBuffer(v) ? out.trainable : out.frozen).push([name, v]);
  return out;
}

/** Splits `module`'s parameters: trainable those whose names start with one of `prefixes` (e.g. 'sam.mask_decoder.'). */
export function prefixSplit(module: Module, prefixes: readonly string[]): TrainableSplit {
  return splitParameters(module, (n) => prefixes.some((p) => n.startsWith(p)));
}

/** Sets every variable's `trainable` flag from a split; returns the trainable variables (for the optimiser). */
export function applySplit(split: TrainableSplit): tf.Variable[] {
  for (const [, v] of split.frozen) v.trainable = false;
  for (const [, v] of split.trainable) v.trainable = true;
  return split.trainable.map(([, v]) => v);
}

/**
 * [P, ...] -> [P*G, ...]: each row repeated G times in place (torch repeat_interleave),
 * the layout of G rollouts per prompt.
 */
export function repeatRows<T extends tf.Tensor>(x: T, g: number): T {
  if (!Number.isInteger(g) || g < 1) throw new Error(`repeatRows: expected an integer G >= 1, got ${g}`);
  return tf.tidy(() => {
    if (g === 1) return tf.clone(x);
    const [p, ...rest] = x.shape;
    const e = tf.expandDims(x, 1); // [P, 1, ...]
    const b = tf.broadcastTo(e, [p!, g, ...rest]); // [P, G, ...]
    return tf.reshape(b, [p! * g, ...rest]) as T;
  });
}

/** Inputs of a LENS forward pass. Images (or their cached encodings) have batch B or 1. */
export interface LensInputs {
  /** int32 [B, T]: prompt (with V `<image>` slots) + answer / completion. */
  tokens: tf.Tensor2D;
  /** [B, T]: 1 real, 0 padding. */
  attentionMask: tf.Tensor2D;
  /** [B|1, H, W, 3] in [0, 1]; used by whichever encoder has no cached output below. */
  images?: tf.Tensor4D;
  /** [B|1, V, C_llm] cached vision-encoder output (frozen vision encoder). */
  visual?: tf.Tensor3D;
  /** [B|1, h, w, C_sam] cached SAM image embeddings (frozen SAM image encoder). */
  samEmbeddings?: tf.Tensor4D;
}

/** What the LENS forward pass returns (the caller disposes every tensor). */
export type LensOutputs = {
  /** [B, T, vocab] next-token logits at the token positions. */
  logits: tf.Tensor3D;
  /** [B, M, C_llm] the context queries' last-layer states. */
  queryStates: tf.Tensor3D;
  /** [B, K, C_sam] the connector output given to SAM as sparse prompts. */
  samPrompts: tf.Tensor3D;
  /** [B, 4h, 4w] low-resolution mask logits (upsampleMaskLogits for the loss). */
  masks: tf.Tensor3D;
  /** [B, 1] SAM's predicted IoU. */
  iou: tf.Tensor2D;
};

/** The segmentation half of the outputs (stage 1 with a cached prefix). */
export type LensSegOutputs = Omit<LensOutputs, 'logits'>;

/** The LENS model: vision encoder, MLLM, context queries, connector, mini-SAM. */
export class LensModel extends Module {
  readonly vision: VisionEncoder;
  readonly mllm: MLLM;
  readonly context: ContextQueries;
  readonly connector: Connector;
  readonly sam: MiniSam;

  /** Build through `buildLens` (presets.ts), which resolves and checks the config. */
  constructor(readonly config: LensConfig, rng: Rng) {
    super();
    this.vision = this.child('vision', new VisionEncoder(config.vision, rng.fork('vision')));
    this.mllm = this.child('mllm', new MLLM(config.mllm, rng.fork('mllm')));
    this.context = this.child('context', new ContextQueries(config.context, rng.fork('context')));
    this.connector = this.child('connector', new Connector(config.connector, rng.fork('connector')));
    this.sam = this.child('sam', new MiniSam(config.sam, rng.fork('sam')));
  }

  /** Like Module.setTrainable, but buffers stay frozen. */
  override setTrainable(trainable: boolean): this {
    super.setTrainable(trainable);
    for (const v of this.parameters()) if (isBuffer(v)) v.trainable = false;
    return this;
  }

  /** The trainable / frozen split of a stage. */
  stageSplit(stage: Stage): TrainableSplit {
    const prefixes = STAGE_TRAINABLE[stage];
    if (!prefixes) throw new Error(`LensModel.stageSplit: unknown stage ${JSON.stringify(stage)}; expected one of ${STAGES.join(', ')}`);
    return prefixSplit(this, prefixes);
  }

  /** Freezes everything outside the stage's trainable set; returns the variables to optimise. */
  setStage(stage: Stage): tf.Variable[] {
    return applySplit(this.stageSplit(stage));
  }

  /** Batch-1 tensors broadcast to B rows; other batches must equal B. */
  private rows<T extends tf.Tensor>(x: T, b: number, what: string): T {
    if (x.shape[0] === b) return x;
    if (x.shape[0] !== 1) throw new Error(`LensModel.forward: ${what} has batch ${x.shape[0]}, expected ${b} or 1`);
    return tf.broadcastTo(x, [b, ...x.shape.slice(1)]) as T;
  }

  /** The MLLM's visual tokens for B rows: cached `visual`, else the vision encoder on `images`. */
  private visualFor(inputs: LensInputs, b: number): tf.Tensor3D | undefined {
    if (inputs.visual) return this.rows(inputs.visual, b, 'visual');
    if (inputs.images) return this.rows(this.vision.apply(inputs.images), b, 'images');
    return undefined;
  }

  /** SAM image embeddings [B|1, h, w, C]: cached, else the SAM image encoder on `images`. */
  private samEmbeddingsFor(inputs: LensInputs): tf.Tensor4D {
    if (inputs.samEmbeddings) return inputs.samEmbeddings;
    if (inputs.images) return this.sam.embedImage(inputs.images);
    throw new Error('LensModel.forward: give images or samEmbeddings for the segmenter');
  }

  /** query states [B, M, C_llm] + SAM image embeddings [B|1, h, w, C] -> prompts, masks, iou. */
  segmentFromQueries(queryStates: tf.Tensor3D, samEmbeddings: tf.Tensor4D): LensSegOutputs {
    return tf.tidy(() => {
      const samPrompts = this.connector.apply(queryStates); // [B, K, C_sam]
      const { masks, iou } = this.sam.decode(samEmbeddings, { sparse: samPrompts });
      return { queryStates: tf.clone(queryStates), samPrompts, masks, iou };
    });
  }

  /**
   * The full pass: tokens [B, T] (+ images / cached encodings) -> logits [B, T, vocab],
   * query states [B, M, C_llm], SAM prompts [B, K, C_sam], masks [B, 4h, 4w], iou [B, 1].
   */
  forward(inputs: LensInputs): LensOutputs {
    const { tokens, attentionMask } = inputs;
    assertShape('LensModel.forward tokens', tokens, [null, null]);
    assertShape('LensModel.forward attentionMask', attentionMask, [tokens.shape[0], tokens.shape[1]]);
    const b = tokens.shape[0];
    return tf.tidy(() => {
      const visual = this.visualFor(inputs, b);
      const queries = this.context.apply(); // [1, M, C]
      const { logits, hidden } = this.mllm.forward({ tokens, attentionMask, visual, extra: queries });
      const queryStates = this.context.readout(hidden); // [B, M, C]
      const seg = this.segmentFromQueries(queryStates, this.samEmbeddingsFor(inputs));
      return { logits, ...seg };
    });
  }

  /**
   * Stage 1 with a frozen MLLM: the prefix (prompt + ground-truth answer) is encoded
   * once (`mllm.prefill`, outside any gradient), and only the M query positions run
   * here, attending to the cached keys / values. Same function as `forward`'s
   * segmentation half (tested). cache of B rows + embeddings [B|1, h, w, C] -> outputs.
   */
  segmentFromCache(cache: KVCache, samEmbeddings: tf.Tensor4D): LensSegOutputs {
    return tf.tidy(() => {
      const { hidden } = this.mllm.extend(cache, { embeds: this.context.apply() }, { logits: 'none' }); // [B, M, C]
      return this.segmentFromQueries(hidden, samEmbeddings);
    });
  }
}

/**
 * A synthetic batch for smoke tests and timing: B rows of `promptLength` text
 * tokens around V contiguous `<image>` slots, then `answerLength` answer tokens,
 * random ids from the non-special part of the vocabulary, no padding; random
 * images. The caller disposes the tensors.
 */
export function syntheticLensBatch(
  config: LensConfig,
  { batch = 2, promptLength = 24, answerLength = 24, seed = 0 }: { batch?: number; promptLength?: number; answerLength?: number; seed?: number } = {},
): { tokens: tf.Tensor2D; attentionMask: tf.Tensor2D; images: tf.Tensor4D; labels: tf.Tensor3D } {
  const rng = new Rng(seed);
  const side = config.vision.imageSize / config.vision.patchSize / config.vision.mergeSize;
  const v = side * side;
  const t = promptLength + v + answerLength;
  const lo = 16; // above the special tokens
  const ids = new Int32Array(batch * t);
  for (let b = 0; b < batch; b++) {
    for (let j = 0; j < t; j++) {
      const inImage = j >= 4 && j < 4 + v; // a few prompt tokens, the image slots, the rest of the prompt
      ids[b * t + j] = inImage ? config.mllm.imageTokenId : lo + rng.int(config.mllm.vocabSize - lo);
    }
  }
  const s = config.imageSize;
  const px = new Float32Array(batch * s * s * 3).map(() => rng.next());
  const m = config.sam.imageSize;
  const lab = new Float32Array(batch * m * m).map(() => (rng.next() < 0.3 ? 1 : 0));
  return {
    tokens: tf.tensor2d(ids, [batch, t], 'int32'),
    attentionMask: tf.ones([batch, t], 'int32') as tf.Tensor2D,
    images: tf.tensor4d(px, [batch, s, s, 3]),
    labels: tf.tensor3d(lab, [batch, m, m]),
  };
}

/**
 * Parameters in stage 2's trainable set that LENS's own forward pass never uses,
 * so they get no gradient there: SAM's point / box-corner embeddings and the
 * padding-point embedding (LENS prompts SAM with the connector tokens only; they
 * still train in stage 0a, and box prompts use them in the Seg-Zero baseline).
 */
export const LENS_UNUSED_PARAMS: readonly string[] = [
  'sam.prompt_encoder.point_embeddings.0',
  'sam.prompt_encoder.point_embeddings.1',
  'sam.prompt_encoder.point_embeddings.2',
  'sam.prompt_encoder.point_embeddings.3',
  'sam.prompt_encoder.not_a_point_embed',
];
