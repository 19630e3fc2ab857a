/**
 * Stage 0b's grounding losses (docs/stage0b-grounding.md): what makes the small MLLM,
 * trained from scratch, write the box from the picture rather than from the words.
 * Plain SFT learns the answer's format and words, and its box's integers do not depend on
 * the picture; two auxiliary losses change that, each a config field of stage 0b:
 *
 * - the attention pointer (`pointerWeight`): one head (`pointerLayer`, head 0) at the four
 *   states that predict the box's coordinates is trained by cross-entropy to put its weight
 *   (a softmax over every key, so the weight must leave the text) on the visual tokens that
 *   hold the target, in proportion to the target mask's share of each token's cell. The
 *   head then copies the target token's value into the state that writes the box.
 * - the place loss (`placeWeight`): a linear head of its own reads the target's cell
 *   (the same shares) off the last-layer state that predicts x1, so that state must hold
 *   where the object is, not only what it looks like. The head is dropped after stage 0b.
 * - `groundPrompt`: both losses also at a state of the prompt, the `the` of the instruction's
 *   "Output the thinking process" that follows the picture and the sentence: the target is
 *   found there, before any of the answer is written (teacher-forced, the box's states can
 *   lean on the reasoning's words instead of the picture).
 * - `groundReasoning`: both losses also at the two states of the reasoning's last sentence that
 *   name the target: "It is the | red circle at the | bottom left." (its colour, then its place).
 *
 * Real VLMs get both from pretraining on grounding data at scale; these losses stand in for
 * it at the scale of this project (the measurements are in the doc above).
 */
import * as tf from '@tensorflow/tfjs-core';
import type { LensModel } from '../model/lens';
import { disposeCache, type MLLM } from '../model/mllm';
import { tokenCrossEntropy } from '../model/losses';
import { Linear, Module } from '../model/nn';
import { IMAGE_ID, type Tokenizer } from '../model/tokenizer';
import { Rng } from '../random';
import type { Batch } from './data';

/** The grounding losses' settings (Stage0bConfig's fields of the same names). */
export interface GroundingWeights {
  pointerWeight: number;
  pointerLayer: number;
  placeWeight: number;
  /** Also train the pointer and the place loss at the prompt's state after the sentence (`groundingPositions`). */
  groundPrompt: boolean;
  /** Also train both at the reasoning's two naming states (`groundingPositions`). */
  groundReasoning: boolean;
}

/** Offsets from the box's `[` of the states that predict x1, y1, x2, y2 (`[`, then the commas). */
const COORD_STATES = [0, 2, 4, 6] as const;

/**
 * [B, g*g]: the share of each example's target (label 1 pixels; 255 = ignore counts as 0)
 * inside each of the g x g cells the visual tokens stand for, row-major; rows sum to 1, or
 * to 0 where the target is empty.
 */
export function cellShares(labels: tf.Tensor3D, g: number): tf.Tensor2D {
  return tf.tidy(() => {
    const [B, S] = labels.shape;
    if (S % g !== 0) throw new Error(`cellShares: image side ${S} is not a multiple of the ${g} x ${g} token grid`);
    const c = S / g;
    const on = tf.cast(tf.equal(labels, 1), 'float32');
    const counts = tf.reshape(tf.sum(tf.reshape(on, [B, g, c, g, c]), [2, 4]), [B, g * g]);
    return tf.div(counts, tf.maximum(tf.sum(counts, 1, true), 1)) as tf.Tensor2D;
  });
}

/**
 * Per row of a batch of token ids: the position of the answer's box `[` (the first `[`
 * after `bbox_2d`), of the first visual token, `prompt`, the `the` of the instruction's
 * "Output the thinking process" (after the picture and the sentence: tokenizer.ts
 * `formatQuestion`), and the reasoning's two naming states: every trace ends "It is the red
 * circle at the bottom left." (or "... in the centre."), and `name` is the `the` after its
 * `is` (it predicts the colour), `place` the last `the` before the answer's `</think>` (it
 * predicts the place); -1 where the row has none.
 */
export function groundingPositions(ids: readonly (readonly number[])[], tok: Tokenizer): Array<{ open: number; visual: number; prompt: number; name: number; place: number }> {
  const bbox = tok.tokenId('bbox_2d');
  const open = tok.tokenId('[');
  const output = tok.tokenId('output');
  const the = tok.tokenId('the');
  const think = tok.tokenId('<think>');
  const endThink = tok.tokenId('</think>');
  const is = tok.tokenId('is');
  return ids.map((row) => {
    const b = row.indexOf(bbox);
    const o = b < 0 ? -1 : row.indexOf(open, b);
    const q = row.lastIndexOf(output, row.indexOf(think)); // the instruction's, before its "<think> </think>"
    const e = row.lastIndexOf(endThink); // the answer's (the instruction has one too: "in <think> </think>")
    const i = e > q ? row.lastIndexOf(is, e) : -1;
    const t = e > q ? row.lastIndexOf(the, e) : -1;
    return {
      open: o >= 0 && o + COORD_STATES.at(-1)! < row.length ? o : -1,
      visual: row.indexOf(IMAGE_ID),
      prompt: q >= 0 && row[q + 1] === the ? q + 1 : -1,
      name: i > q && row[i + 1] === the ? i + 1 : -1,
      place: t > Math.max(q, i + 1) ? t : -1,
    };
  });
}

/** The model and stage 0b's place head, one module, so that checkpoints (and resume) hold both. */
export class GroundingModule extends Module {
  readonly placeHead: Linear | null;

  constructor(readonly lens: LensModel, placeHead: boolean, seed: number) {
    super();
    this.child('lens', lens);
    this.placeHead = placeHead ? this.child('place_head', new Linear(lens.config.mllm.hiddenSize, lens.vision.numTokens, new Rng(seed).fork('place-head'), { std: 0.02 })) : null;
  }

  /** The place head's parameters, named for the optimiser beside the model's. */
  headParameters(): Array<[string, tf.Variable]> {
    return this.placeHead ? this.placeHead.namedParameters('place_head.') : [];
  }
}

/** Stage 0b's loss terms on one batch; `loss` is their weighted sum. */
export interface GroundingLossTerms {
  loss: tf.Scalar;
  sft: tf.Scalar;
  /** Cross-entropy of the pointer head's visual weights against the target's cell shares (0 when off). */
  pointer: tf.Scalar;
  /** Share of rows whose x1 state's pointer head weighs a token holding the target most (0 when off). */
  pointerHit: tf.Scalar;
  /** Cross-entropy of the place head's cell against the shares (0 when off). */
  place: tf.Scalar;
}

/**
 * Teacher-forced answer cross-entropy from final-norm states hidden [B, T(+M), C]: the
 * state at t predicts token t+1, scored where token t+1 is an answer token (mask [B, T]),
 * averaged over those tokens. The same number as tokenCrossEntropy over all T - 1
 * positions, with the vocabulary head and log-softmax run on the answer rows only (a
 * third of a stage-0b row is answer; the rest are visual and prompt tokens).
 */
export function answerCrossEntropy(mllm: MLLM, hidden: tf.Tensor3D, tokens: tf.Tensor2D, answerMask: tf.Tensor2D): tf.Scalar {
  return tf.tidy(() => {
    const [B, T] = tokens.shape;
    const [, L, C] = hidden.shape;
    const mask = answerMask.dataSync();
    const ids = tokens.dataSync();
    const rows: number[] = [];
    const targets: number[] = [];
    for (let b = 0; b < B; b++) {
      for (let t = 0; t + 1 < T; t++) {
        if (mask[b * T + t + 1] === 0) continue;
        rows.push(b * L + t);
        targets.push(ids[b * T + t + 1]!);
      }
    }
    if (rows.length === 0) return tf.mul(tf.sum(hidden), 0) as tf.Scalar; // no answer token: 0, with a (zero) gradient
    const states = tf.gather(tf.reshape(hidden, [B * L, C]), tf.tensor1d(rows, 'int32')); // [R, C]
    const logits = mllm.lmLogits(tf.expandDims(states, 0) as tf.Tensor3D); // [1, R, vocab]
    const one = tf.ones([1, rows.length]) as tf.Tensor2D;
    return tokenCrossEntropy(logits, tf.tensor2d(targets, [1, rows.length], 'int32'), one);
  });
}

/**
 * The SFT answer cross-entropy plus the grounding losses of `w` (see the file header).
 * With both weights 0 it is stage 0b's plain SFT (the same number as `sftLoss`).
 */
export function groundingLosses(m: GroundingModule, tok: Tokenizer, b: Batch, w: GroundingWeights): GroundingLossTerms {
  return tf.tidy(() => {
    const model = m.lens;
    const usePointer = w.pointerWeight > 0;
    const usePlace = w.placeWeight > 0 && m.placeHead !== null;
    const visual = model.vision.apply(b.images);
    const out = model.mllm.prefill(
      { tokens: b.tokens, attentionMask: b.attentionMask, visual },
      { logits: 'none', ...(usePointer ? { attentionOf: { layer: w.pointerLayer, head: 0 } } : {}) },
    );
    disposeCache(out.cache);
    const sft = answerCrossEntropy(model.mllm, out.hidden, b.tokens, b.answerMask);
    const zero = tf.scalar(0);
    if (!usePointer && !usePlace) return { loss: sft, sft, pointer: zero, pointerHit: zero, place: zero };
    const [B, T] = b.tokens.shape;
    const nv = model.vision.numTokens;
    const shares = cellShares(b.labels, Math.round(Math.sqrt(nv))); // [B, nv]
    const pos = groundingPositions(b.tokens.arraySync(), tok);
    // the states trained besides the box's: the prompt's, then the reasoning's two, when on
    type Pos = (typeof pos)[number];
    type At = (p: Pos) => number;
    const extraAt: At[] = [...(w.groundPrompt ? [(p: Pos) => p.prompt] : []), ...(w.groundReasoning ? [(p: Pos) => p.name, (p: Pos) => p.place] : [])];
    const valid = tf.tensor1d(pos.map((p) => (p.open >= 0 && p.visual >= 0 && extraAt.every((at) => at(p) >= 0) ? 1 : 0)));
    const rowMean = (perRow: tf.Tensor1D) => tf.div(tf.sum(tf.mul(perRow, valid)), tf.maximum(tf.sum(valid), 1)) as tf.Scalar;
    let pointer = zero;
    let pointerHit = zero;
    if (usePointer) {
      // [B, S, nv]: the head's log-weights from each state (the four coordinates', then the
      // extra ones) onto the visual tokens
      const states = (p: Pos) => [...COORD_STATES.map((d) => p.open + d), ...extraAt.map((at) => at(p))];
      const S = COORD_STATES.length + extraAt.length;
      const idx = new Int32Array(B * S * nv);
      pos.forEach((p, r) => {
        states(p).forEach((t, j) => {
          for (let v = 0; v < nv; v++) idx[(r * S + j) * nv + v] = p.open < 0 || p.visual < 0 || t < 0 ? 0 : (r * T + t) * T + p.visual + v;
        });
      });
      const att = tf.reshape(tf.gather(tf.reshape(out.logAttention!, [-1]), tf.tensor1d(idx, 'int32')), [B, S, nv]);
      const ce = tf.mean(tf.neg(tf.sum(tf.mul(att, tf.expandDims(shares, 1)), -1)), 1) as tf.Tensor1D; // [B]
      pointer = rowMean(ce);
      const x1 = tf.squeeze(tf.slice(att, [0, 0, 0], [B, 1, nv]), [1]);
      pointerHit = rowMean(tf.cast(tf.greater(tf.sum(tf.mul(tf.oneHot(tf.argMax(x1, -1), nv), shares), -1), 0), 'float32') as tf.Tensor1D);
    }
    let place = zero;
    if (usePlace) {
      // the state that predicts x1, then the extra ones
      const C = out.hidden.shape[2];
      const flat = tf.reshape(out.hidden, [-1, C]);
      const ceAt = (at: At) => {
        const state = tf.gather(flat, tf.tensor1d(pos.map((p, r) => r * T + Math.max(0, at(p))), 'int32')) as tf.Tensor2D; // [B, C]
        return tf.neg(tf.sum(tf.mul(tf.logSoftmax(m.placeHead!.apply(state)), shares), -1)) as tf.Tensor1D;
      };
      const x1 = ceAt((p) => p.open);
      place = rowMean(extraAt.length ? (tf.div(tf.addN([x1, ...extraAt.map(ceAt)]), 1 + extraAt.length) as tf.Tensor1D) : x1);
    }
    const loss = tf.addN([sft, tf.mul(pointer, w.pointerWeight), tf.mul(place, usePlace ? w.placeWeight : 0)]) as tf.Scalar;
    return { loss, sft, pointer, pointerHit, place };
  });
}
