/**
 * Stage 0, the stand-ins for the pretrained weights LENS starts from (DESIGN.md
 * "Scale: a faithful mini-LENS"; the paper itself needs no stage 0):
 *
 * - 0a, segmenter pretraining: the whole mini-SAM (image encoder, prompt encoder,
 *   mask decoder) learns class-agnostic masks of EVERY instance of the training
 *   images from box / point prompts, as SAM is trained (segment-anything paper
 *   Sec. 3 / App. A "training algorithm": box prompts with noise of std 10% of the
 *   box side, point prompts sampled in the mask, negatives outside; focal + Dice
 *   on the mask and an MSE between the IoU head and the mask's true IoU). Here the
 *   mask loss is the project's BCE + Dice (`segLoss`, the loss every later stage
 *   uses) and the IoU-head MSE is kept (weight `iouLossWeight`), so SAM's IoU head
 *   is meaningful too. One prompt kind per step (the whole batch shares it), so
 *   the sparse prompts of a batch have one length.
 * - 0b, MLLM pretraining: the vision encoder + MLLM learn by supervised
 *   fine-tuning (token cross-entropy on the answer tokens only, teacher-forced) to
 *   answer in the LENS format
 *   `<think>{reasoning}</think><answer>[{"bbox_2d": [...], "label": "..."}]</answer>`
 *   then <eos>, standing in for Qwen2.5-VL. The tokenizer is fitted here on the
 *   training set and carried by every later stage. "Good but imperfect, leaving
 *   room for RL": the step budget is far from saturation (greedy box Acc@0.5 ~0.2), and
 *   `reasonFraction` can hold back part of the reasoning family.
 *
 * - 0v (src/train/stage0v.ts, when stage0v.steps > 0), vision tower pretraining: the vision
 *   encoder alone learns what its tokens show on fresh generated pictures, before 0b.
 *
 * `runPretrain` runs 0a into OUT/0a, 0v into OUT/0v, 0b into OUT/0b, and leaves the whole model
 * (0a's SAM, 0b's vision + MLLM, context queries and connector at their
 * initialisation) with the tokenizer in OUT itself, the folder `lens align --from`
 * reads. Each sub-stage is an ordinary run folder (run.json, steps.arrow,
 * metrics.arrow, ckpt.safetensors) and resumes on its own.
 */
import { copyFileSync, existsSync, renameSync } from 'node:fs';
import { join } from 'node:path';
import * as tf from '@tensorflow/tfjs-core';
import { initBackend } from '../backend';
import { ConfigError, resolveConfig, rules, type ConfigDelta, type Rule } from '../config';
import { loadSplit, maskBbox, readSampleImage, resizeRgb, type Family } from '../data/index';
import { isFormatValid, parseBox, type Box } from '../model/answer';
import { generate } from '../model/generate';
import type { LensModel } from '../model/lens';
import { disposeCache } from '../model/mllm';
import { segLoss } from '../model/losses';
import { buildLens, loadLens, saveLens, type PresetName } from '../model/presets';
import { upsampleMaskLogits } from '../model/sam/mask_decoder';
import { buildPrompt, Tokenizer, UNK_ID } from '../model/tokenizer';
import { Rng } from '../random';
import type { Row } from '../util/arrow';
import { disposeBatch, encodeBatch, fitTokenizer, imageTensors, batchIndices, loadExamples, promptIds, resizeMaskNearest, generatedExamples, type Batch, type SftExample, type TrainExample } from './data';
import { answerCrossEntropy, GroundingModule, groundingLosses } from './grounding';
import { runStage0v, V_BASE, V_RULES, type Stage0vConfig } from './stage0v';
import { stage0Loop, trainLoop, type StepPlan } from './loop';
import { Run, runIsDone } from './run';
import { benchmarkGenerator, MODEL_FILE, TOKENIZER_FILE, TRAIN_FAMILIES, saveStageModel, type StageRunOptions } from './stage_io';
export type { StageRunOptions } from './stage_io';

// ---------------------------------------------------------------------------
// Configs
// ---------------------------------------------------------------------------

/** Stage 0a: mini-SAM pretraining on every instance with box / point prompts. */
export interface Stage0aConfig {
  /**
   * Optimiser steps (quick: 1800, ~3.5 min of the 30-minute main job). Stage 1's masks are this
   * SAM's decoding: 800, 1600 and 2400 steps give a held-out box-prompt mIoU of 0.667, 0.754
   * and 0.799, and stage 1 from one stage 0 with each of those SAMs a ten-split cIoU mean of
   * 26.1, 28.7 and 29.3 (seed 1, 800 and 2400 steps: 0.587 and 0.784, 22.1 and 25.8;
   * docs/stage0b-grounding.md, "A longer stage 0a"). 2400 until the longer stage 0b: its
   * last 600 steps are worth ~0.4 points by that curve, and their ~1.2 min went to 0b,
   * whose boxes stage 1 turns into more (`Stage0bConfig.steps`).
   */
  steps: number;
  /** Instances per step (SAM trains 256 images x 64 masks; small here for two CPU cores). */
  batchSize: number;
  /** Peak learning rate (from scratch, a small model: 1e-3, the usual AdamW rate for such ViTs; SAM: 8e-4). */
  lr: number;
  /** Linear warm-up steps (SAM: 250 of 90k; a few % here). */
  warmupSteps: number;
  /** Global-norm gradient clip (SAM: none stated; 1.0 as every other stage, a guard on two CPU cores). */
  gradClip: number;
  /** Checkpoint every this many steps (what a killed run loses at most). */
  checkpointEvery: number;
  /** Probability that a step's prompts are boxes; else 1 to `maxPoints` points (SAM samples both kinds). */
  boxProb: number;
  /** Std of the box-corner noise as a fraction of the box side (SAM: 10%). */
  boxNoise: number;
  /** Most points per point prompt (SAM's first interaction is one point; up to 3 here, a mix of fg / bg). */
  maxPoints: number;
  /** Probability that a point after the first is a background (label 0) point outside the mask. */
  negativePointProb: number;
  /** Weight of the MSE between the IoU head and the true IoU of the predicted mask (SAM: 1). */
  iouLossWeight: number;
  /** Instances smaller than this many pixels at model resolution are skipped (slivers of occluded objects). */
  minArea: number;
  /** Training images per family (0 = all); tests use a handful. */
  limitImages: number;
  /** Held-out instances (refcoco val + reasonseg val images) scored with box prompts at the end; 0 = none. */
  evalInstances: number;
}

/** Stage 0b: MLLM supervised fine-tuning on the LENS answer format. */
export interface Stage0bConfig {
  /**
   * Optimiser steps (quick: 4000, ~14 min of the main job, the largest share; still well below
   * saturation). Measured at 4500 on twice the pictures (`extraPictures` 1) against the 3300
   * on the benchmark alone before: greedy box Acc@0.5 over the ten evaluation splits +9-10
   * points at three seeds, and with stage 1 at 600 steps (`AlignConfig.steps`: from this 0b
   * it needs them) a stage-1 cIoU mean over every sentence +3.7 to +5.0 points
   * (docs/stage0b-grounding.md, "A longer stage 0b, read by a longer stage 1"). 4000 so that
   * the main job keeps its 30 minutes on a slow day of this machine (README, "The main job").
   */
  steps: number;
  /** Sentences per step. */
  batchSize: number;
  /** Peak learning rate (a small decoder from scratch: 1e-3 with warm-up, nanoGPT's shakespeare-char setting). */
  lr: number;
  /** Linear warm-up steps. */
  warmupSteps: number;
  /** Global-norm gradient clip (1.0, as the official LENS stages). */
  gradClip: number;
  /** Checkpoint every this many steps. */
  checkpointEvery: number;
  /**
   * Fraction of the reasoning family's (reasonseg) training sentences used, chosen by
   * a seeded shuffle (the RefCOCO families are used whole): a way to leave stage 2 more
   * room on reasoning (DESIGN.md: stage 0b "good but imperfect"). Default 1: 0b is far from
   * good at this scale anyway, and holding half back (0.5, the old default) cost stage 1 the
   * most where it was weakest: ReasonSeg val / test cIoU 17.5 / 17.4 against 23.1 / 21.5 with
   * all of it, the reasonings' format rate 92-95% against 97-99% (main job's 0a / 0v, same
   * 3500 steps; docs/stage0b-grounding.md, "All of the reasoning family").
   */
  reasonFraction: number;
  /**
   * More training pictures, generated: this many times the benchmark's training split, drawn
   * by the generator that wrote it as the continuation of its training streams (the next
   * RefCOCO-like and ReasonSeg-like training pictures, every sentence of them; never a val or
   * test picture). Stage 0b stands in for a VLM pretrained on far more than one benchmark.
   * `reasonFraction` applies to these too; the tokenizer is fitted on the benchmark alone.
   * Not in the paper (stage 0 is ours). quick: 1, so that 4000 steps of 16 see each of the
   * ~20k training sentences ~3.2 times rather than the benchmark's ~10k 6.4 times. At 3300
   * steps, 4 more gave stage 1 a ten-split cIoU mean of 27.4 against 26.4 at seed 0 and 25.0
   * against 28.5 at seed 1, within what one seed of 0b moves (docs/stage0b-grounding.md,
   * "More pictures"); more pictures go with more steps ("Twice the stage 0b").
   */
  extraPictures: number;
  /** Training sentences per family before the cap (0 = all); tests use a handful. */
  limitPerFamily: number;
  /**
   * When the fitted vocabulary outgrows the model's mllm.vocabSize: 'drop-rarest' keeps
   * the most frequent words that fit (the rest read as <unk>, the count is logged);
   * 'error' stops with a message naming the field to raise.
   */
  vocabOverflow: 'drop-rarest' | 'error';
  /** Sentences per family's val split scored with greedy generation at the end (0 = none). */
  evalPerSplit: number;
  /** Prompts per generation batch in that evaluation. */
  evalBatch: number;
  /** Most generated tokens per answer there; 0 = the longest training answer + 8 (a rambling model is cut, its format invalid). */
  evalMaxNewTokens: number;
  /**
   * The vision encoder's peak learning rate as a multiple of `lr` (a parameter group). Real VLM
   * fine-tuning trains the vision tower far more gently than the language model; a pretrained
   * encoder trained at the MLLM's 1e-3 loses what told its tokens apart
   * (docs/stage0b-grounding.md). 1 = one learning rate for all.
   */
  visionLrScale: number;
  /**
   * Weight of the attention pointer (src/train/grounding.ts): head 0 of block `pointerLayer`,
   * at the states that predict the box's four coordinates, is trained to look at the visual
   * tokens holding the target. Not in the paper, whose MLLM comes pretrained on grounding
   * data; it stands in for that pretraining here. 0 = off (plain SFT).
   */
  pointerWeight: number;
  /** The block (1..mllm.numLayers) whose head 0 the pointer trains. */
  pointerLayer: number;
  /**
   * Weight of the place loss (src/train/grounding.ts): a linear head of its own, dropped after
   * stage 0b, reads the target's visual cell off the state that predicts x1, so that state
   * must hold where the object is. Not in the paper (a stand-in, as the pointer). 0 = off.
   */
  placeWeight: number;
  /**
   * Also train the pointer and the place loss at a state of the prompt: the `the` of the
   * instruction's "Output the thinking process", after the picture and the sentence, so the
   * target is found before any of the answer is written. Teacher-forced, the box's states
   * can lean on the reasoning's words ("at the bottom left") instead of the picture, and the
   * greedy reasoning placed the target right in only ~1/3 of the sentences; with this, the
   * main job's 0b box Acc@0.5 on the val splits rose from 10-15% to 13-25%
   * (docs/stage0b-grounding.md, "Grounding in the prompt"). Not in the paper (a stand-in, as
   * the pointer). false = the box's states only.
   */
  groundPrompt: boolean;
  /**
   * Also train the pointer and the place loss at the two states of the reasoning's last
   * sentence that name the target: "It is the | red circle at the | bottom left." (the one
   * that predicts its colour, the one that predicts its place). Measured with groundPrompt on
   * (docs/stage0b-grounding.md, "The reasoning's naming states"). Not in the paper (a stand-in).
   */
  groundReasoning: boolean;
}

export interface PretrainConfig {
  stage0a: Stage0aConfig;
  /** The vision tower's pretraining (src/train/stage0v.ts), between 0a and 0b; steps 0 = none. */
  stage0v: Stage0vConfig;
  stage0b: Stage0bConfig;
}

const A_BASE: Stage0aConfig = {
  steps: 1800,
  batchSize: 8,
  lr: 1e-3,
  warmupSteps: 20,
  gradClip: 1,
  checkpointEvery: 100,
  boxProb: 0.5,
  boxNoise: 0.1,
  maxPoints: 3,
  negativePointProb: 0.5,
  iouLossWeight: 1,
  minArea: 4,
  limitImages: 0,
  evalInstances: 300,
};

const B_BASE: Stage0bConfig = {
  steps: 4000,
  batchSize: 16,
  lr: 1e-3,
  warmupSteps: 50,
  gradClip: 1,
  checkpointEvery: 50,
  reasonFraction: 1,
  extraPictures: 1,
  limitPerFamily: 0,
  vocabOverflow: 'drop-rarest',
  evalPerSplit: 100,
  evalBatch: 25,
  evalMaxNewTokens: 0,
  visionLrScale: 0.03,
  pointerWeight: 1,
  pointerLayer: 2,
  placeWeight: 1,
  groundPrompt: true,
  groundReasoning: true,
};

/**
 * Defaults per preset. tiny: a handful of steps on a handful of images (tests).
 * quick: step counts set from step times measured here (wasm + native kernels, two
 * quiet cores): 0a ~0.12 s/step at batch 8, 0v ~0.07 s/step at batch 32, 0b ~0.2 s/step
 * at batch 16 with the grounding losses, so 0a (1800 steps) + 0v (2500) + 0b (4000) take
 * ~20 min of the 30-minute `npm start` (README, "The main job"). tiny and paper draw no
 * extra pictures (`extraPictures` needs the generated benchmark; paper may run on real data).
 *
 * 0b has the most of it because it is what the rest waits on: its box's reading of the
 * picture keeps growing from 2000 to 3000-4000 steps (docs/stage0b-grounding.md, "Longer"),
 * and 0b learns per sentence seen, not per step: at batch 8 it needs twice the steps for the
 * same boxes. 0b: plain SFT learns the format and the words in 600 steps and never reads the
 * picture for the box; with the pretrained encoder (0v), the attention pointer and the place
 * loss, the box's integers start to read it between 1000 and 2000 steps.
 *
 * 0a at batch 8 x 300 steps beat batch 16 x 150 (same compute) on held-out box mIoU, 0.31 vs
 * 0.17: the SAM first collapses to empty masks and leaves that plateau after a number of
 * STEPS (~100), not of samples; 500 steps reach 0.57, 800 steps 0.67 (barely past the
 * fill-the-box mask, 0.64); what more steps are worth to stage 1:
 * `Stage0aConfig.steps`.
 *
 * paper: longer runs.
 */
export const DEFAULT_PRETRAIN: Record<PresetName, PretrainConfig> = {
  tiny: {
    stage0a: { ...A_BASE, steps: 6, batchSize: 4, warmupSteps: 1, checkpointEvery: 2, limitImages: 4, evalInstances: 8 },
    stage0v: { ...V_BASE, steps: 4, batchSize: 4, warmupSteps: 1, checkpointEvery: 2, evalImages: 4 },
    stage0b: { ...B_BASE, steps: 6, batchSize: 4, warmupSteps: 1, checkpointEvery: 2, extraPictures: 0, limitPerFamily: 8, evalPerSplit: 4, evalBatch: 4 },
  },
  quick: { stage0a: A_BASE, stage0v: V_BASE, stage0b: B_BASE },
  paper: {
    stage0a: { ...A_BASE, steps: 4000, batchSize: 16, warmupSteps: 200, checkpointEvery: 200, evalInstances: 1000 },
    stage0v: { ...V_BASE, batchSize: 64, warmupSteps: 200, checkpointEvery: 200, evalImages: 1000 },
    stage0b: { ...B_BASE, steps: 6000, batchSize: 32, warmupSteps: 300, checkpointEvery: 200, extraPictures: 0, evalPerSplit: 0 },
  },
};

const A_RULES: Record<string, Rule> = {
  steps: rules.int(1),
  batchSize: rules.int(1),
  lr: rules.positive,
  warmupSteps: rules.int(0),
  gradClip: rules.positive,
  checkpointEvery: rules.int(1),
  boxProb: rules.range(0, 1),
  boxNoise: rules.range(0, 1),
  maxPoints: rules.int(1, 16),
  negativePointProb: rules.range(0, 1),
  iouLossWeight: rules.nonNegative,
  minArea: rules.int(1),
  limitImages: rules.int(0),
  evalInstances: rules.int(0),
};

const B_RULES: Record<string, Rule> = {
  steps: rules.int(1),
  batchSize: rules.int(1),
  lr: rules.positive,
  warmupSteps: rules.int(0),
  gradClip: rules.positive,
  checkpointEvery: rules.int(1),
  reasonFraction: rules.range(0, 1),
  extraPictures: rules.nonNegative,
  limitPerFamily: rules.int(0),
  vocabOverflow: rules.oneOf('drop-rarest', 'error'),
  evalPerSplit: rules.int(0),
  evalBatch: rules.int(1),
  evalMaxNewTokens: rules.int(0),
  visionLrScale: rules.positive,
  pointerWeight: rules.nonNegative,
  pointerLayer: rules.int(1),
  placeWeight: rules.nonNegative,
  groundPrompt: rules.oneOf(true, false),
  groundReasoning: rules.oneOf(true, false),
};

const prefixed = (p: string, r: Record<string, Rule>) => Object.fromEntries(Object.entries(r).map(([k, v]) => [`${p}.${k}`, v]));

/** Resolves a preset's pretraining config with a delta; throws naming the field. */
export function resolvePretrainConfig(preset: PresetName, delta: ConfigDelta<PretrainConfig> | unknown = {}, where = 'pretrain config'): PretrainConfig {
  const defaults = DEFAULT_PRETRAIN[preset];
  if (!defaults) throw new ConfigError(`${where}: unknown preset ${JSON.stringify(preset)}; expected one of ${Object.keys(DEFAULT_PRETRAIN).join(', ')}`);
  return resolveConfig(defaults, delta, where, { ...prefixed('stage0a', A_RULES), ...prefixed('stage0v', V_RULES), ...prefixed('stage0b', B_RULES) });
}

/** Stage 0a's config alone. */
export function resolveStage0aConfig(preset: PresetName, delta: ConfigDelta<Stage0aConfig> = {}): Stage0aConfig {
  return resolvePretrainConfig(preset, { stage0a: delta }, 'stage0a config').stage0a;
}

/** Stage 0b's config alone. */
export function resolveStage0bConfig(preset: PresetName, delta: ConfigDelta<Stage0bConfig> = {}): Stage0bConfig {
  return resolvePretrainConfig(preset, { stage0b: delta }, 'stage0b config').stage0b;
}

// ---------------------------------------------------------------------------
// Stage 0a: instances and prompts
// ---------------------------------------------------------------------------

/** One object mask of one image at model resolution (class-agnostic). */
export interface SamInstance {
  /** The image file it belongs to (images are shared between instances). */
  imagePath: string;
  /** [S * S * 3] RGB bytes at the model input size. */
  rgb: Uint8Array;
  /** [S * S] 0 / 1 / 255 (ignore) at the model input size. */
  mask: Uint8Array;
  /** Tight box of the mask, xyxy in input pixels. */
  box: Box;
}

/** Tight xyxy box (x2, y2 exclusive) of the 1-pixels of an S x S mask, or null when empty. */
export function maskBox(mask: Uint8Array, side: number): Box | null {
  const b = maskBbox(mask, side, side); // xywh of the non-zero, non-ignore pixels
  return b && [b[0], b[1], b[0] + b[2], b[1] + b[3]];
}

function countOnes(mask: Uint8Array): number {
  let n = 0;
  for (let i = 0; i < mask.length; i++) if (mask[i] === 1) n++;
  return n;
}

/**
 * Every instance of every image of FAMILIES/SPLIT at model resolution: all COCO
 * instances of the RefCOCO families' images (not only the referred ones), the
 * targets of ReasonSeg. Images seen twice (shared between families) count once;
 * `exclude` drops images (held-out sets never share an image with training).
 */
export async function loadInstances(
  root: string,
  split: string,
  { imageSize, families = TRAIN_FAMILIES, limitImages = 0, minArea = 1, exclude }: { imageSize: number; families?: readonly Family[]; limitImages?: number; minArea?: number; exclude?: ReadonlySet<string> },
): Promise<SamInstance[]> {
  const out: SamInstance[] = [];
  const seen = new Set<string>();
  const rgbOf = new Map<string, Uint8Array>();
  const add = (imagePath: string, rgb: Uint8Array, full: Uint8Array, h: number, w: number) => {
    const mask = resizeMaskNearest(full, h, w, imageSize);
    if (countOnes(mask) < minArea) return;
    const box = maskBox(mask, imageSize);
    if (box) out.push({ imagePath, rgb, mask, box });
  };
  for (const f of families) {
    const ds = await loadSplit(root, f, split, { allSentences: true });
    const images = new Map<string, (typeof ds.samples)[number]>();
    for (const s of ds.samples) if (!images.has(s.imagePath)) images.set(s.imagePath, s);
    let taken = 0;
    for (const [path, s] of images) {
      if (limitImages > 0 && taken >= limitImages) break;
      if (exclude?.has(path)) continue;
      taken++;
      let rgb = rgbOf.get(path);
      if (!rgb) {
        const img = await readSampleImage(s);
        rgb = await resizeRgb(img.data, img.height, img.width, imageSize, imageSize, 'linear');
        rgbOf.set(path, rgb);
      }
      if (f === 'reasonseg') {
        // ReasonSeg has no instance list: its targets (every sentence's, deduplicated) are the masks.
        for (const t of ds.samples.filter((x) => x.imagePath === path)) {
          const key = `${path}#${JSON.stringify(t.bbox)}`;
          if (seen.has(key)) continue;
          seen.add(key);
          add(path, rgb, t.mask(), t.height, t.width);
        }
      } else {
        if (seen.has(path)) continue; // the same image through another family: its instances are in already
        seen.add(path);
        for (const inst of ds.instances(s.imageId)) add(path, rgb, inst.mask(), s.height, s.width);
      }
    }
  }
  return out;
}

/** Images of instances: [B, S, S, 3] in [0, 1]. */
export function instanceImages(items: readonly SamInstance[], side: number): tf.Tensor4D {
  const px = new Float32Array(items.length * side * side * 3);
  items.forEach((it, b) => {
    for (let i = 0; i < it.rgb.length; i++) px[b * side * side * 3 + i] = it.rgb[i]! / 255;
  });
  return tf.tensor4d(px, [items.length, side, side, 3]);
}

/** Masks of instances: [B, S, S] float 0 / 1 / 255. */
export function instanceLabels(items: readonly SamInstance[], side: number): tf.Tensor3D {
  const lab = new Float32Array(items.length * side * side);
  items.forEach((it, b) => lab.set(it.mask, b * side * side));
  return tf.tensor3d(lab, [items.length, side, side]);
}

/** A stage-0a batch: images, labels and one kind of prompt. */
export interface SamBatch {
  images: tf.Tensor4D;
  labels: tf.Tensor3D;
  kind: 'box' | 'points';
  boxes?: tf.Tensor2D;
  points?: { coords: tf.Tensor3D; labels: tf.Tensor2D };
}

/**
 * SAM-style box jitter: each coordinate moves by N(0, (noise * side)^2), side the box's
 * width (x) or height (y); the result is ordered, at least one pixel wide, inside the image.
 */
export function jitterBox(box: Box, noise: number, side: number, rng: Rng): Box {
  const [x1, y1, x2, y2] = box;
  const w = x2 - x1;
  const h = y2 - y1;
  const c = (v: number) => Math.max(0, Math.min(side, Math.round(v)));
  let a = c(x1 + rng.normal() * noise * w);
  let b = c(y1 + rng.normal() * noise * h);
  let cx = c(x2 + rng.normal() * noise * w);
  let d = c(y2 + rng.normal() * noise * h);
  if (cx < a) [a, cx] = [cx, a];
  if (d < b) [b, d] = [d, b];
  if (cx === a) cx < side ? cx++ : a--;
  if (d === b) d < side ? d++ : b--;
  return [a, b, cx, d];
}

/**
 * `n` prompt points on an S x S mask: the first inside the mask (label 1), each other
 * one a background point outside it (label 0, pixels labelled 0) with probability
 * `negProb`, else another foreground point. Coordinates are pixel indices (x, y).
 */
export function samplePoints(mask: Uint8Array, side: number, n: number, negProb: number, rng: Rng): { coords: Array<[number, number]>; labels: number[] } {
  const fg: number[] = [];
  const bg: number[] = [];
  for (let i = 0; i < mask.length; i++) (mask[i] === 1 ? fg : mask[i] === 0 ? bg : null)?.push(i);
  if (fg.length === 0) throw new Error('samplePoints: the mask has no foreground pixel');
  const coords: Array<[number, number]> = [];
  const labels: number[] = [];
  for (let k = 0; k < n; k++) {
    const neg = k > 0 && bg.length > 0 && rng.next() < negProb;
    const i = rng.pick(neg ? bg : fg);
    coords.push([i % side, Math.floor(i / side)]);
    labels.push(neg ? 0 : 1);
  }
  return { coords, labels };
}

/** Builds a stage-0a batch from instances (outside the tape). */
export function samBatch(items: readonly SamInstance[], side: number, cfg: Pick<Stage0aConfig, 'boxProb' | 'boxNoise' | 'maxPoints' | 'negativePointProb'>, rng: Rng): SamBatch {
  const images = instanceImages(items, side);
  const labels = instanceLabels(items, side);
  if (rng.next() < cfg.boxProb) {
    const boxes = items.map((it) => jitterBox(it.box, cfg.boxNoise, side, rng));
    return { images, labels, kind: 'box', boxes: tf.tensor2d(boxes, [items.length, 4]) };
  }
  const n = 1 + rng.int(cfg.maxPoints);
  const pts = items.map((it) => samplePoints(it.mask, side, n, cfg.negativePointProb, rng));
  return {
    images,
    labels,
    kind: 'points',
    points: {
      coords: tf.tensor3d(pts.map((p) => p.coords), [items.length, n, 2]),
      labels: tf.tensor2d(pts.map((p) => p.labels), [items.length, n]),
    },
  };
}

function disposeSamBatch(b: SamBatch): void {
  tf.dispose([b.images, b.labels, ...(b.boxes ? [b.boxes] : []), ...(b.points ? [b.points.coords, b.points.labels] : [])]);
}

/**
 * The true IoU of the binarised prediction (logits > 0) with the target, ignoring 255,
 * without gradient (step() has a zero gradient): logits, labels [B, S, S] -> [B].
 */
export function predictedMaskIou(logits: tf.Tensor3D, labels: tf.Tensor3D): tf.Tensor1D {
  return tf.tidy(() => {
    const b = logits.shape[0];
    const pred = tf.reshape(tf.step(logits), [b, -1]); // [B, P] 0 / 1
    const l = tf.reshape(labels, [b, -1]);
    const valid = tf.cast(tf.notEqual(l, 255), 'float32');
    const y = tf.mul(tf.cast(tf.equal(l, 1), 'float32'), valid);
    const p = tf.mul(pred, valid);
    const inter = tf.sum(tf.mul(p, y), 1);
    const union = tf.sum(tf.maximum(p, y), 1);
    // Empty target and empty prediction: IoU 1 (LISA convention). Written without
    // equal / where, which have no gradient kernel: union counts pixels, so
    // empty = 1 - min(union, 1) is 1 exactly when it is 0.
    const empty = tf.sub(1, tf.minimum(union, 1));
    return tf.div(tf.add(inter, empty), tf.add(union, empty)) as tf.Tensor1D;
  });
}

/** Stage-0a loss: BCE + Dice at input resolution + w * MSE(IoU head, true IoU). */
export function samLoss(model: LensModel, b: SamBatch, iouLossWeight: number): { loss: tf.Scalar; logs: Record<string, tf.Scalar> } {
  const side = model.config.imageSize;
  const out = model.sam.apply(b.images, b.kind === 'box' ? { boxes: b.boxes! } : { points: b.points! });
  const logits = upsampleMaskLogits(out.masks, side, side);
  const seg = segLoss(logits, b.labels);
  const trueIou = predictedMaskIou(logits, b.labels);
  const iouMse = tf.mean(tf.square(tf.sub(tf.reshape(out.iou, [-1]), trueIou))) as tf.Scalar;
  const loss = tf.add(seg, tf.mul(iouMse, iouLossWeight)) as tf.Scalar;
  return { loss, logs: { seg, iouMse, maskIou: tf.mean(trueIou) as tf.Scalar } };
}

/**
 * Box-prompted mask IoU on instances (exact boxes): mIoU = mean of per-instance IoU,
 * cIoU = sum I / sum U; `boxFillIoU` scores the trivial "fill the box" mask the same way.
 */
export function evaluateSam(model: LensModel, items: readonly SamInstance[], { batch = 32 }: { batch?: number } = {}): { n: number; mIoU: number; cIoU: number; boxFillIoU: number } {
  const side = model.config.imageSize;
  let sumIou = 0;
  let sumI = 0;
  let sumU = 0;
  let sumFill = 0;
  for (let s = 0; s < items.length; s += batch) {
    const chunk = items.slice(s, s + batch);
    const pred = tf.tidy(() => {
      const out = model.sam.apply(instanceImages(chunk, side), { boxes: tf.tensor2d(chunk.map((it) => it.box), [chunk.length, 4]) });
      return tf.greater(upsampleMaskLogits(out.masks, side, side), 0);
    });
    const p = pred.dataSync();
    pred.dispose();
    chunk.forEach((it, k) => {
      let i = 0;
      let u = 0;
      let fi = 0;
      let fu = 0;
      const [x1, y1, x2, y2] = it.box;
      for (let q = 0; q < side * side; q++) {
        const y = it.mask[q]!;
        if (y === 255) continue;
        const pr = p[k * side * side + q]!;
        if (pr && y === 1) i++;
        if (pr || y === 1) u++;
        const px = q % side;
        const py = Math.floor(q / side);
        const inBox = px >= x1 && px < x2 && py >= y1 && py < y2 ? 1 : 0;
        if (inBox && y === 1) fi++;
        if (inBox || y === 1) fu++;
      }
      sumIou += u === 0 ? 1 : i / u;
      sumFill += fu === 0 ? 1 : fi / fu;
      sumI += i;
      sumU += u;
    });
  }
  const n = items.length;
  return { n, mIoU: n ? sumIou / n : NaN, cIoU: sumU ? sumI / sumU : NaN, boxFillIoU: n ? sumFill / n : NaN };
}

// ---------------------------------------------------------------------------
// Stage 0b: SFT
// ---------------------------------------------------------------------------

/**
 * Teacher-forced answer cross-entropy: logits at t predict token t+1, scored where the
 * NEXT token is an answer token (incl. <eos>). model + batch -> scalar.
 */
export function sftLoss(model: LensModel, b: Batch): tf.Scalar {
  return tf.tidy(() => {
    const visual = model.vision.apply(b.images); // [B, V, C]
    const { hidden, cache } = model.mllm.prefill({ tokens: b.tokens, attentionMask: b.attentionMask, visual }, { logits: 'none' });
    disposeCache(cache);
    return answerCrossEntropy(model.mllm, hidden, b.tokens, b.answerMask);
  });
}

/**
 * Checks that the tokenizer fits the model: its size at most mllm.vocabSize (rows
 * beyond it are never emitted: generate bans them), and the longest training sequence
 * plus the context queries within mllm.maxPositions. Throws saying what to change.
 */
export function checkTokenizerFits(tok: Tokenizer, model: LensModel, longest: number): void {
  const m = model.config.mllm;
  if (tok.size > m.vocabSize) {
    throw new ConfigError(
      `stage 0b: the tokenizer fitted on the training set has ${tok.size} tokens, more than the model's mllm.vocabSize ${m.vocabSize} ` +
        `(preset '${model.config.preset}'): raise mllm.vocabSize to at least ${tok.size} in the model preset (src/model/presets.ts) ` +
        'or train on data with a smaller vocabulary',
    );
  }
  const need = longest + model.config.context.numQueries;
  if (need > m.maxPositions) {
    throw new ConfigError(
      `stage 0b: the longest training sequence (${longest} tokens with the answer) plus ${model.config.context.numQueries} context queries ` +
        `needs ${need} positions, more than the model's mllm.maxPositions ${m.maxPositions}: raise mllm.maxPositions to at least ${need}`,
    );
  }
}

/**
 * The tokenizer of the training sentences (prompts and answers), made to fit `vocabSize`:
 * with 'drop-rarest' the least frequent words are left out (they encode as <unk>) when
 * the full vocabulary is larger; with 'error' it is returned whole and checkTokenizerFits
 * reports the overflow. Returns the words dropped and their share of the training words.
 */
export function fitVocabulary(
  examples: readonly TrainExample[],
  vocabSize: number,
  overflow: 'drop-rarest' | 'error',
): { tokenizer: Tokenizer; dropped: number; unkShare: number } {
  const full = fitTokenizer(examples);
  if (full.size <= vocabSize || overflow === 'error') return { tokenizer: full, dropped: 0, unkShare: 0 };
  const texts = examples.flatMap((e) => [buildPrompt({ instruction: e.sentence }), e.answer]);
  const base = Tokenizer.fit(texts, { maxWords: 0 }).size; // specials, punctuation, integers, template words
  if (base > vocabSize) return { tokenizer: full, dropped: 0, unkShare: 0 }; // nothing to drop: checkTokenizerFits explains
  const tokenizer = Tokenizer.fit(texts, { maxWords: vocabSize - base });
  let words = 0;
  let unk = 0;
  for (const t of texts) {
    for (const id of tokenizer.encode(t)) {
      words++;
      if (id === UNK_ID) unk++;
    }
  }
  return { tokenizer, dropped: full.size - tokenizer.size, unkShare: words ? unk / words : 0 };
}

/** Keeps `fraction` of the reasoning family's examples (a seeded choice), all others. */
export function capReasoning<E extends SftExample>(examples: readonly E[], fraction: number, rng: Rng): E[] {
  const reason = examples.map((e, i) => [e, i] as const).filter(([e]) => e.family === 'reasonseg');
  const keep = new Set(rng.shuffle(reason.map(([, i]) => i)).slice(0, Math.round(fraction * reason.length)));
  return examples.filter((e, i) => e.family !== 'reasonseg' || keep.has(i));
}

/** xyxy -> IoU of two boxes (continuous coordinates); 0 when the union is empty. */
export function boxIouXyxy(a: Box, b: Box): number {
  const iw = Math.min(a[2], b[2]) - Math.max(a[0], b[0]);
  const ih = Math.min(a[3], b[3]) - Math.max(a[1], b[1]);
  const inter = iw > 0 && ih > 0 ? iw * ih : 0;
  const area = (x: Box) => Math.max(0, x[2] - x[0]) * Math.max(0, x[3] - x[1]);
  const union = area(a) + area(b) - inter;
  return union > 0 ? inter / union : 0;
}

/**
 * Greedy generation on examples: format-valid rate, box Acc@0.5 (IoU > 0.5, the paper's
 * threshold) and mean box IoU (an unparsable box scores 0).
 */
export function evaluateAnswers(
  model: LensModel,
  tok: Tokenizer,
  examples: readonly TrainExample[],
  { batch, maxNewTokens }: { batch: number; maxNewTokens: number },
): { n: number; formatRate: number; boxAcc50: number; boxIou: number; sample: string } {
  const side = model.config.imageSize;
  let fmt = 0;
  let hit = 0;
  let iouSum = 0;
  let sample = '';
  for (let s = 0; s < examples.length; s += batch) {
    const chunk = examples.slice(s, s + batch);
    const visual = tf.tidy(() => {
      const { images, labels } = imageTensors(chunk, side);
      labels.dispose();
      return model.vision.apply(images);
    });
    const res = generate(model.mllm, tok, { prompts: chunk.map((e) => promptIds(tok, e, model.vision.numTokens)), visual }, { greedy: true, maxNewTokens });
    visual.dispose();
    res.text.forEach((text, k) => {
      if (s === 0 && k === 0) sample = text;
      if (isFormatValid(text)) fmt++;
      const box = parseBox(text);
      const iou = box ? boxIouXyxy(box, chunk[k]!.box) : 0;
      iouSum += iou;
      if (iou > 0.5) hit++;
    });
  }
  const n = examples.length;
  return { n, formatRate: n ? fmt / n : NaN, boxAcc50: n ? hit / n : NaN, boxIou: n ? iouSum / n : NaN, sample };
}

/**
 * How much the answers depend on the image: the teacher-forced answer NLL (sftLoss) of
 * `examples` with their own images, and with the images rolled by one place inside each
 * batch (every prompt paired with another sample's picture). `gain` = shuffled - own:
 * ~0 means the MLLM answers from the text alone (the failure mode of issue #5: the
 * boxes cannot be right then); a grounded model pays for the wrong picture.
 */
export function imageDependence(model: LensModel, tok: Tokenizer, examples: readonly TrainExample[], { batch }: { batch: number }): { own: number; shuffled: number; gain: number } {
  const side = model.config.imageSize;
  let own = 0;
  let shuffled = 0;
  let rows = 0;
  for (let s = 0; s < examples.length; s += batch) {
    const chunk = examples.slice(s, s + batch);
    if (chunk.length < 2) break; // a lone sample has no other picture to swap in
    const b = encodeBatch(tok, chunk, { numVisual: model.vision.numTokens, side, withAnswer: true });
    try {
      const [a, r] = tf.tidy(() => {
        const rolled = tf.concat([tf.slice(b.images, [1, 0, 0, 0], [-1, -1, -1, -1]), tf.slice(b.images, [0, 0, 0, 0], [1, -1, -1, -1])], 0) as tf.Tensor4D;
        return [sftLoss(model, b).dataSync()[0]!, sftLoss(model, { ...b, images: rolled }).dataSync()[0]!];
      });
      own += a! * chunk.length;
      shuffled += r! * chunk.length;
      rows += chunk.length;
    } finally {
      disposeBatch(b);
    }
  }
  const o = own / rows;
  const sh = shuffled / rows;
  return { own: o, shuffled: sh, gain: sh - o };
}

// ---------------------------------------------------------------------------
// Runs
// ---------------------------------------------------------------------------


const log = (quiet: boolean | undefined, msg: string) => {
  if (!quiet) console.error(msg);
};

/** True when `dir` holds a finished run of `kind` and its model file. */
function finished(dir: string, kind: string): boolean {
  return existsSync(join(dir, MODEL_FILE)) && runIsDone(dir, kind);
}

/**
 * Stage 0a: trains the whole mini-SAM of a fresh model (seed `seed`) on every training
 * instance; writes OUT/model.safetensors (the whole model, SAM trained) and metrics
 * (held-out box-prompt mIoU / cIoU, the box-fill baseline).
 */
export async function runStage0a(opts: StageRunOptions<Stage0aConfig>): Promise<{ dir: string; metrics: Row[]; model: LensModel }> {
  const backend = await initBackend({ quiet: true });
  const cfg = resolveStage0aConfig(opts.preset, opts.config ?? {});
  const model = opts.from ? loadLens(join(opts.from, MODEL_FILE)).model : buildLens(opts.preset, { seed: opts.seed });
  try {
    const side = model.config.imageSize;
    const run = Run.open(opts.out, { kind: 'pretrain-0a', seed: opts.seed, backend, config: { preset: opts.preset, stage0a: cfg }, resume: opts.resume });
    const t0 = performance.now();
    const train = await loadInstances(opts.dataRoot, 'train', { imageSize: side, limitImages: cfg.limitImages, minArea: cfg.minArea });
    if (train.length < cfg.batchSize) throw new Error(`stage 0a: ${train.length} training instances under ${opts.dataRoot}, fewer than batchSize ${cfg.batchSize}`);
    log(opts.quiet, `stage 0a: ${train.length} training instances (loaded in ${((performance.now() - t0) / 1000).toFixed(1)} s)`);
    const params = model.stageSplit('stage0a').trainable;
    model.setStage('stage0a');
    const plan: StepPlan<SamBatch> = {
      prepare: (step, rng) => samBatch(batchIndices(train.length, cfg.batchSize, step, rng.fork('data')).map((i) => train[i]!), side, cfg, rng.fork('prompts')),
      loss: (b) => samLoss(model, b, cfg.iouLossWeight),
      hostLogs: (b) => ({ boxPrompt: b.kind === 'box' ? 1 : 0 }),
      dispose: disposeSamBatch,
    };
    await trainLoop(stage0Loop(run, model, params, cfg, opts, 'stage 0a (SAM)'), plan);
    const metrics: Row[] = [];
    if (cfg.evalInstances > 0) {
      const t1 = performance.now();
      const trainImages = new Set(train.map((t) => t.imagePath));
      const held = await loadInstances(opts.dataRoot, 'val', { imageSize: side, families: ['refcoco', 'reasonseg'], minArea: cfg.minArea, exclude: trainImages });
      const pick = new Rng(opts.seed).fork('eval').shuffle(held.slice()).slice(0, cfg.evalInstances);
      const r = evaluateSam(model, pick);
      metrics.push({ split: 'heldout/val', prompt: 'box', n: r.n, mIoU: r.mIoU, cIoU: r.cIoU, boxFillIoU: r.boxFillIoU });
      log(opts.quiet, `stage 0a: held-out box-prompt mIoU ${r.mIoU.toFixed(3)}, cIoU ${r.cIoU.toFixed(3)} (fill-the-box ${r.boxFillIoU.toFixed(3)}), n = ${r.n}, ${((performance.now() - t1) / 1000).toFixed(1)} s`);
    }
    saveLens(model, join(opts.out, MODEL_FILE), { stage: 'stage0a' });
    run.finish(metrics);
    return { dir: opts.out, metrics, model };
  } catch (e) {
    model.dispose();
    throw e;
  }
}

/**
 * Stage 0b's `extraPictures`: `factor` times the benchmark's training pictures more, generated
 * as the continuation of its training streams (`generatedExamples`); [] for 0.
 */
function extraTraining(dataRoot: string, factor: number, side: number, quiet: boolean | undefined): SftExample[] {
  if (factor === 0) return [];
  const generator = benchmarkGenerator(dataRoot, 'stage0b.extraPictures draws more training pictures from the generator that wrote the benchmark', 'set stage0b.extraPictures to 0 to train on its training split alone');
  if (generator.imageSize !== side) {
    throw new ConfigError(`stage0b.extraPictures: the benchmark's generator draws ${generator.imageSize}-px pictures, the model takes ${side}-px ones`);
  }
  const from = { refer: generator.referImages.train, reason: generator.reasonImages.train };
  const t0 = performance.now();
  const out = generatedExamples(generator, { refer: Math.round(factor * from.refer), reason: Math.round(factor * from.reason), from });
  log(quiet, `stage 0b: ${out.length} sentences of ${Math.round(factor * from.refer)} + ${Math.round(factor * from.reason)} generated training pictures (${((performance.now() - t0) / 1000).toFixed(1)} s)`);
  return out;
}

/**
 * Stage 0b: fits the tokenizer on the training sentences, then trains the vision
 * encoder + MLLM of the model in `from` (0a's; a fresh one without it) by SFT on the
 * LENS answers; writes OUT/model.safetensors + tokenizer.json and metrics (greedy
 * format rate and box Acc@0.5 per family's val split).
 */
export async function runStage0b(opts: StageRunOptions<Stage0bConfig>): Promise<{ dir: string; metrics: Row[]; model: LensModel; tokenizer: Tokenizer }> {
  const backend = await initBackend({ quiet: true });
  const cfg = resolveStage0bConfig(opts.preset, opts.config ?? {});
  const model = opts.from ? loadLens(join(opts.from, MODEL_FILE)).model : buildLens(opts.preset, { seed: opts.seed });
  try {
    if (model.config.preset !== opts.preset) throw new Error(`stage 0b: ${opts.from} holds a '${model.config.preset}' model, not '${opts.preset}'`);
    const side = model.config.imageSize;
    const numVisual = model.vision.numTokens;
    const run = Run.open(opts.out, { kind: 'pretrain-0b', seed: opts.seed, backend, config: { preset: opts.preset, stage0b: cfg }, resume: opts.resume });
    const t0 = performance.now();
    const all: TrainExample[] = [];
    for (const f of TRAIN_FAMILIES) {
      all.push(...(await loadExamples(opts.dataRoot, f, 'train', { imageSize: side, limit: cfg.limitPerFamily || undefined, quiet: true })));
    }
    // The tokenizer sees every training sentence (the benchmark's language), also those 0b skips.
    const fitted = fitVocabulary(all, model.config.mllm.vocabSize, cfg.vocabOverflow);
    const tok = fitted.tokenizer;
    if (fitted.dropped > 0) {
      log(opts.quiet, `stage 0b: the ${fitted.dropped} rarest words (${(100 * fitted.unkShare).toFixed(2)}% of training words) read as <unk> to fit mllm.vocabSize ${model.config.mllm.vocabSize}`);
    }
    const extra = extraTraining(opts.dataRoot, cfg.extraPictures, side, opts.quiet);
    const pool: SftExample[] = [...all, ...extra];
    const train = capReasoning(pool, cfg.reasonFraction, new Rng(opts.seed).fork('reason-cap'));
    const lengths = train.map((e) => promptIds(tok, e, numVisual).length + tok.encode(e.answer).length + 1);
    const longest = Math.max(...lengths);
    checkTokenizerFits(tok, model, longest);
    if (train.length < cfg.batchSize) throw new Error(`stage 0b: ${train.length} training sentences under ${opts.dataRoot}, fewer than batchSize ${cfg.batchSize}`);
    log(opts.quiet, `stage 0b: ${train.length} training sentences (of ${all.length} in the benchmark and ${extra.length} generated, ${pool.length - train.length} reasoning ones held back), vocabulary ${tok.size}, longest sequence ${longest} (loaded in ${((performance.now() - t0) / 1000).toFixed(1)} s)`);
    const layers = model.config.mllm.numLayers;
    if (cfg.pointerWeight > 0 && cfg.pointerLayer > layers) {
      throw new ConfigError(`stage0b config: field 'pointerLayer' must be a block of the MLLM, 1..${layers}, got ${cfg.pointerLayer}`);
    }
    const grounded = new GroundingModule(model, cfg.placeWeight > 0, opts.seed);
    const params = [...model.stageSplit('stage0b').trainable, ...grounded.headParameters()];
    model.setStage('stage0b');
    const aux = cfg.pointerWeight > 0 || cfg.placeWeight > 0;
    const plan: StepPlan<Batch> = {
      prepare: (step, rng) => encodeBatch(tok, batchIndices(train.length, cfg.batchSize, step, rng.fork('data')).map((i) => train[i]!), { numVisual, side, withAnswer: true }),
      loss: (b) => {
        if (!aux) return { loss: sftLoss(model, b) };
        const t = groundingLosses(grounded, tok, b, cfg);
        return { loss: t.loss, logs: { sft: t.sft, ...(cfg.pointerWeight > 0 ? { pointer: t.pointer, pointerHit: t.pointerHit } : {}), ...(cfg.placeWeight > 0 ? { place: t.place } : {}) } };
      },
      dispose: disposeBatch,
    };
    const loop = stage0Loop(run, grounded.placeHead ? grounded : model, params, cfg, opts, 'stage 0b (MLLM SFT)'); // checkpoints hold the place head too
    try {
      await trainLoop({ ...loop, lrScale: cfg.visionLrScale === 1 ? undefined : (n) => (n.startsWith('vision.') ? cfg.visionLrScale : 1) }, plan);
    } finally {
      grounded.placeHead?.dispose(); // stage 0b's own: the model does not keep it
    }
    const metrics: Row[] = [];
    if (cfg.evalPerSplit > 0) {
      const t1 = performance.now();
      const maxNewTokens = cfg.evalMaxNewTokens || Math.max(...train.map((e) => tok.encode(e.answer).length + 1)) + 8;
      for (const f of TRAIN_FAMILIES) {
        const val = await loadExamples(opts.dataRoot, f, 'val', { imageSize: side, allSentences: false, limit: cfg.evalPerSplit, quiet: true });
        const r = evaluateAnswers(model, tok, val, { batch: cfg.evalBatch, maxNewTokens });
        const dep = imageDependence(model, tok, val, { batch: cfg.evalBatch });
        metrics.push({ split: `${f}/val`, n: r.n, formatRate: r.formatRate, boxAcc50: r.boxAcc50, boxIou: r.boxIou, answerNll: dep.own, answerNllOtherImage: dep.shuffled });
        log(
          opts.quiet,
          `stage 0b: ${f}/val format ${r.formatRate.toFixed(3)}, box Acc@0.5 ${r.boxAcc50.toFixed(3)}, mean box IoU ${r.boxIou.toFixed(3)}, ` +
            `answer NLL ${dep.own.toFixed(3)} (${dep.shuffled.toFixed(3)} with another sample's image) (n = ${r.n}); e.g. ${r.sample.slice(0, 160)}`,
        );
      }
      log(opts.quiet, `stage 0b: evaluation took ${((performance.now() - t1) / 1000).toFixed(1)} s`);
    }
    saveStageModel(opts.out, model, tok, { stage: 'stage0b' });
    run.finish(metrics);
    return { dir: opts.out, metrics, model, tokenizer: tok };
  } catch (e) {
    model.dispose();
    throw e;
  }
}

export type PretrainStage = '0a' | '0v' | '0b' | 'both';

export interface PretrainOptions extends Omit<StageRunOptions<PretrainConfig>, 'from'> {
  /** Which sub-stages to run ('both': all of them; 0v reads OUT/0a's model, 0b OUT/0v's, or OUT/0a's without 0v). */
  stage?: PretrainStage;
}

/** Copies a file next to its destination, then renames it in place (never a torn file). */
function copyAtomic(src: string, dst: string): void {
  const tmp = `${dst}.tmp-${process.pid}`;
  copyFileSync(src, tmp);
  renameSync(tmp, dst);
}

/**
 * `lens pretrain`: 0a into OUT/0a, 0v (from OUT/0a, when stage0v.steps > 0) into OUT/0v,
 * 0b (from OUT/0v, or OUT/0a without 0v) into OUT/0b, then OUT/model.safetensors
 * + tokenizer.json, the hand-over to `lens align --from OUT`. With `resume`, a finished
 * sub-stage is skipped and an unfinished one continues from its checkpoint.
 */
export async function runPretrain(opts: PretrainOptions): Promise<{ dir: string; metrics: { stage0a: Row[]; stage0v: Row[]; stage0b: Row[] } }> {
  const stage = opts.stage ?? 'both';
  const cfg = resolvePretrainConfig(opts.preset, opts.config ?? {});
  const dirA = join(opts.out, '0a');
  const dirV = join(opts.out, '0v');
  const dirB = join(opts.out, '0b');
  const withV = cfg.stage0v.steps > 0;
  const metrics = { stage0a: [] as Row[], stage0v: [] as Row[], stage0b: [] as Row[] };
  const common = { dataRoot: opts.dataRoot, preset: opts.preset, seed: opts.seed, resume: opts.resume, quiet: opts.quiet, stopAfter: opts.stopAfter };
  if (stage === '0a' || stage === 'both') {
    if (opts.resume && finished(dirA, 'pretrain-0a')) log(opts.quiet, `stage 0a: ${dirA} is finished, skipped`);
    else {
      const r = await runStage0a({ ...common, out: dirA, config: cfg.stage0a });
      r.model.dispose();
      metrics.stage0a = r.metrics;
    }
  }
  const needA = (what: string) => {
    if (!existsSync(join(dirA, MODEL_FILE)) || !finished(dirA, 'pretrain-0a')) {
      throw new Error(`${what}: ${dirA} holds no finished stage-0a run; run 'lens pretrain --stage 0a' (or --stage both) with the same --out first`);
    }
  };
  if (stage === '0v' && !withV) throw new ConfigError("stage 0v: stage0v.steps is 0 in this config; set it above 0 to run stage 0v");
  if (withV && (stage === '0v' || stage === 'both')) {
    needA('stage 0v');
    if (opts.resume && finished(dirV, 'pretrain-0v')) log(opts.quiet, `stage 0v: ${dirV} is finished, skipped`);
    else {
      const r = await runStage0v({ ...common, out: dirV, from: dirA, config: cfg.stage0v });
      r.model.dispose();
      metrics.stage0v = r.metrics;
    }
  }
  if (stage === '0b' || stage === 'both') {
    needA('stage 0b');
    if (withV && (!existsSync(join(dirV, MODEL_FILE)) || !finished(dirV, 'pretrain-0v'))) {
      throw new Error(`stage 0b: ${dirV} holds no finished stage-0v run; run 'lens pretrain --stage 0v' (or --stage both) with the same --out first`);
    }
    if (opts.resume && finished(dirB, 'pretrain-0b')) log(opts.quiet, `stage 0b: ${dirB} is finished, skipped`);
    else {
      const r = await runStage0b({ ...common, out: dirB, from: withV ? dirV : dirA, config: cfg.stage0b });
      r.model.dispose();
      metrics.stage0b = r.metrics;
    }
    copyAtomic(join(dirB, TOKENIZER_FILE), join(opts.out, TOKENIZER_FILE));
    copyAtomic(join(dirB, MODEL_FILE), join(opts.out, MODEL_FILE));
  }
  return { dir: opts.out, metrics };
}
