/**
 * Stage 0v, the vision tower's pretraining (a stand-in, as 0a and 0b are; the paper starts
 * from Qwen2.5-VL's pretrained ViT): the vision encoder alone learns, through three linear
 * heads of its own (dropped afterwards), what each of its visual tokens shows:
 *
 * - the categories inside the token's image cell (the shares of their visible pixels);
 * - their colours (the same shares over the colours);
 * - the box of the object that covers most of the cell (x1, y1, x2, y2 over the image side,
 *   through a sigmoid, L1), so a token also knows the extent of what it shows.
 *
 * Pictures are fresh: drawn by the generator that wrote the benchmark (its manifest's
 * config, the training split's scene rules) from a random stream of their own, so no
 * picture repeats and none is a benchmark picture. The benchmark's 650 training pictures are
 * learnt by heart long before the shapes are (docs/stage0b-grounding.md, "Fresh pictures").
 * Without a pretrained encoder stage 0b's answers name the target's category in ~3% of
 * the sentences; from this one in ~60% (the same doc).
 */
import { join } from 'node:path';
import * as tf from '@tensorflow/tfjs-core';
import { initBackend } from '../backend';
import { ConfigError, rules, type Rule } from '../config';
import { renderScene, resolveGenerateConfig, sampleScene, type SceneObject } from '../data/generate/index';
import { CATEGORIES, COLOURS } from '../data/generate/vocab';
import type { LensModel } from '../model/lens';
import { Linear, Module } from '../model/nn';
import { buildLens, loadLens, saveLens } from '../model/presets';
import { Rng } from '../random';
import type { Row } from '../util/arrow';
import { stage0Loop, trainLoop, type StageLoopSettings, type StepPlan } from './loop';
import { Run } from './run';
import { benchmarkGenerator, MODEL_FILE, type StageRunOptions } from './stage_io';

/** Stage 0v: the vision encoder's dense pretraining on fresh generated pictures. */
export interface Stage0vConfig extends StageLoopSettings {
  /** Optimiser steps; 0 = no stage 0v (stage 0b starts from 0a's fresh vision encoder). */
  steps: number;
  /** Pictures per step. */
  batchSize: number;
  /** Weight of the colour head's cross-entropy (the category head's is 1). */
  colourWeight: number;
  /** Weight of the box head's L1 (in image-side units). */
  geometryWeight: number;
  /** Held-out fresh pictures scored at the end (a stream of their own); 0 = none. */
  evalImages: number;
}

/** The quick preset's stage 0v (the other presets derive from it in stage0.ts). */
export const V_BASE: Stage0vConfig = {
  steps: 2500,
  batchSize: 32,
  lr: 1e-3,
  warmupSteps: 100,
  gradClip: 1,
  checkpointEvery: 100,
  colourWeight: 1,
  geometryWeight: 1,
  evalImages: 256,
};

export const V_RULES: Record<keyof Stage0vConfig, Rule> = {
  steps: rules.int(0),
  batchSize: rules.int(1),
  lr: rules.positive,
  warmupSteps: rules.int(0),
  gradClip: rules.positive,
  checkpointEvery: rules.int(1),
  colourWeight: rules.nonNegative,
  geometryWeight: rules.nonNegative,
  evalImages: rules.int(0),
};

/** Targets of a batch of pictures, one row per visual token. */
export interface CellTargets {
  images: tf.Tensor4D;
  /** [N*g*g, categories] visible-pixel shares of the categories in each cell. */
  category: tf.Tensor2D;
  /** [N*g*g, colours] the same over colours. */
  colour: tf.Tensor2D;
  /** [N*g*g, 4] the box (xyxy / side) of the object holding most of the cell. */
  box: tf.Tensor2D;
  /** [N*g*g] 1 where the cell holds some object (the rows the losses score). */
  mask: tf.Tensor1D;
}

const CATEGORY_INDEX = new Map(CATEGORIES.map((c, i) => [c.name, i] as const));
const COLOUR_INDEX = new Map(COLOURS.map((c, i) => [c.name, i] as const));

/**
 * The targets of one scene's g x g cells (row-major), from its objects' visible masks.
 * Returns category [g*g*K], colour [g*g*KC], box [g*g*4], mask [g*g].
 */
export function sceneCellTargets(objects: readonly SceneObject[], side: number, g: number): { category: Float32Array; colour: Float32Array; box: Float32Array; mask: Float32Array } {
  if (side % g !== 0) throw new Error(`sceneCellTargets: image side ${side} is not a multiple of the ${g} x ${g} token grid`);
  const K = CATEGORIES.length;
  const KC = COLOURS.length;
  const cell = side / g;
  const own = new Float32Array(g * g * objects.length); // each object's visible pixels per cell
  objects.forEach((o, j) => {
    for (let q = 0; q < side * side; q++) if (o.visible[q]) own[(Math.floor(Math.floor(q / side) / cell) * g + Math.floor((q % side) / cell)) * objects.length + j]!++;
  });
  const category = new Float32Array(g * g * K);
  const colour = new Float32Array(g * g * KC);
  const box = new Float32Array(g * g * 4);
  const mask = new Float32Array(g * g);
  for (let v = 0; v < g * g; v++) {
    let total = 0;
    let best = -1;
    objects.forEach((o, j) => {
      const n = own[v * objects.length + j]!;
      if (n === 0) return;
      const k = CATEGORY_INDEX.get(o.category);
      const c = COLOUR_INDEX.get(o.colour);
      if (k === undefined || c === undefined) throw new Error(`sceneCellTargets: unknown category '${o.category}' or colour '${o.colour}'`);
      category[v * K + k]! += n;
      colour[v * KC + c]! += n;
      total += n;
      if (best < 0 || n > own[v * objects.length + best]!) best = j;
    });
    if (total === 0) continue;
    mask[v] = 1;
    for (let k = 0; k < K; k++) category[v * K + k]! /= total;
    for (let c = 0; c < KC; c++) colour[v * KC + c]! /= total;
    const [x, y, w, h] = objects[best]!.bbox;
    box.set([x / side, y / side, (x + w) / side, (y + h) / side], v * 4);
  }
  return { category, colour, box, mask };
}

/**
 * Fresh pictures `from`, `from + 1`, ... of a stream (`stream`: a name of its own, so
 * training and held-out pictures never meet) under the benchmark generator's rules, with
 * their cell targets.
 */
export function freshPictures(generator: ReturnType<typeof resolveGenerateConfig>, stream: string, from: number, n: number, g: number): CellTargets {
  const side = generator.imageSize;
  const req = { minObjects: generator.minObjects, maxObjects: generator.maxObjects, minVisibleFraction: generator.minVisibleFraction };
  const px = new Float32Array(n * side * side * 3);
  const parts = Array.from({ length: n }, (_, i) => {
    const rng = new Rng(generator.seed).fork(`${stream}/${from + i}`);
    const scene = sampleScene(rng.fork('scene'), side, req);
    const rgb = renderScene(rng.fork('render'), scene);
    for (let p = 0; p < rgb.length; p++) px[i * rgb.length + p] = rgb[p]! / 255;
    return sceneCellTargets(scene.objects, side, g);
  });
  const cat = (k: 'category' | 'colour' | 'box' | 'mask') => {
    const out = new Float32Array(parts.reduce((s, p) => s + p[k].length, 0));
    let at = 0;
    for (const p of parts) {
      out.set(p[k], at);
      at += p[k].length;
    }
    return out;
  };
  const rows = n * g * g;
  return {
    images: tf.tensor4d(px, [n, side, side, 3]),
    category: tf.tensor2d(cat('category'), [rows, CATEGORIES.length]),
    colour: tf.tensor2d(cat('colour'), [rows, COLOURS.length]),
    box: tf.tensor2d(cat('box'), [rows, 4]),
    mask: tf.tensor1d(cat('mask')),
  };
}

export function disposeCellTargets(t: CellTargets): void {
  tf.dispose([t.images, t.category, t.colour, t.box, t.mask]);
}

/** The model and stage 0v's three heads, one module, so that checkpoints hold all of it. */
export class VisionPretrainModule extends Module {
  readonly category: Linear;
  readonly colour: Linear;
  readonly box: Linear;

  constructor(readonly lens: LensModel, seed: number) {
    super();
    this.child('lens', lens);
    const C = lens.vision.config.outDim;
    const rng = new Rng(seed).fork('stage0v-heads');
    this.category = this.child('category_head', new Linear(C, CATEGORIES.length, rng.fork('category'), { std: 0.02 }));
    this.colour = this.child('colour_head', new Linear(C, COLOURS.length, rng.fork('colour'), { std: 0.02 }));
    this.box = this.child('box_head', new Linear(C, 4, rng.fork('box'), { std: 0.02 }));
  }

  headParameters(): Array<[string, tf.Variable]> {
    return this.namedParameters().filter(([n]) => !n.startsWith('lens.'));
  }

  disposeHeads(): void {
    for (const [, v] of this.headParameters()) v.dispose();
  }

  /** The three terms on a batch: category and colour cross-entropies and the box L1, over the cells that hold an object. */
  losses(t: CellTargets): { category: tf.Scalar; colour: tf.Scalar; box: tf.Scalar } {
    return tf.tidy(() => {
      const v = this.lens.vision.apply(t.images);
      const flat = tf.reshape(v, [-1, v.shape[2]]) as tf.Tensor2D;
      const n = tf.maximum(tf.sum(t.mask), 1);
      const masked = (perRow: tf.Tensor) => tf.div(tf.sum(tf.mul(perRow, t.mask)), n) as tf.Scalar;
      const ce = (logits: tf.Tensor2D, target: tf.Tensor2D) => masked(tf.neg(tf.sum(tf.mul(tf.logSoftmax(logits), target), -1)));
      return {
        category: ce(this.category.apply(flat), t.category),
        colour: ce(this.colour.apply(flat), t.colour),
        box: masked(tf.mean(tf.abs(tf.sub(tf.sigmoid(this.box.apply(flat)), t.box)), -1)),
      };
    });
  }
}

/**
 * Stage 0v: trains the vision encoder of the model in `from` (0a's) on fresh pictures;
 * writes OUT/model.safetensors (the whole model) and held-out metrics (each head's loss
 * beside its prior: the category cross-entropy of always predicting the mean shares).
 * Step s draws pictures s * batchSize, ... of the training stream (so a resumed run sees
 * what an uninterrupted one would); the streams follow the benchmark's seed, not the run's:
 * `--seed` changes the heads' initialisation here and, through 0a, the encoder's.
 */
export async function runStage0v(opts: Omit<StageRunOptions<Stage0vConfig>, 'config'> & { config: Stage0vConfig }): Promise<{ dir: string; metrics: Row[]; model: LensModel }> {
  const backend = await initBackend({ quiet: true });
  const cfg = opts.config;
  const model = opts.from ? loadLens(join(opts.from, MODEL_FILE)).model : buildLens(opts.preset, { seed: opts.seed });
  const heads = new VisionPretrainModule(model, opts.seed);
  try {
    const generator = benchmarkGenerator(opts.dataRoot, 'stage 0v draws fresh pictures from the generator that wrote the benchmark', 'set stage0v.steps to 0 in the pretrain config to skip it');
    const side = model.config.imageSize;
    if (generator.imageSize !== side) {
      throw new ConfigError(`stage 0v: the benchmark's generator draws ${generator.imageSize}-px pictures, the '${opts.preset}' model takes ${side}-px ones`);
    }
    const g = Math.round(Math.sqrt(model.vision.numTokens));
    const run = Run.open(opts.out, { kind: 'pretrain-0v', seed: opts.seed, backend, config: { preset: opts.preset, stage0v: cfg }, resume: opts.resume });
    const params = [...model.stageSplit('stage0v').trainable, ...heads.headParameters()];
    model.setStage('stage0v');
    const plan: StepPlan<CellTargets> = {
      prepare: (step) => freshPictures(generator, 'vision-pretrain/train', step * cfg.batchSize, cfg.batchSize, g),
      loss: (t) => {
        const l = heads.losses(t);
        const loss = tf.addN([l.category, tf.mul(l.colour, cfg.colourWeight), tf.mul(l.box, cfg.geometryWeight)]) as tf.Scalar;
        return { loss, logs: { category: l.category, colour: l.colour, boxL1: l.box } };
      },
      dispose: disposeCellTargets,
    };
    await trainLoop(stage0Loop(run, heads, params, cfg, opts, 'stage 0v (vision encoder)'), plan);
    const metrics: Row[] = [];
    if (cfg.evalImages > 0) {
      const held = freshPictures(generator, 'vision-pretrain/held-out', 0, cfg.evalImages, g);
      let l: number[] = [];
      let prior = NaN;
      tf.tidy(() => {
        const r = heads.losses(held);
        const n = tf.maximum(tf.sum(held.mask), 1);
        const mean = tf.div(tf.sum(tf.mul(held.category, tf.expandDims(held.mask, 1)), 0), n); // always predicting the mean shares
        prior = tf.div(tf.sum(tf.mul(tf.neg(tf.sum(tf.mul(tf.log(tf.add(mean, 1e-9)), held.category), -1)), held.mask)), n).dataSync()[0]!;
        l = [r.category, r.colour, r.box].map((t) => t.dataSync()[0]!);
      });
      disposeCellTargets(held);
      metrics.push({ split: 'fresh/held-out', n: cfg.evalImages, category: l[0]!, categoryPrior: prior, colour: l[1]!, boxL1Px: l[2]! * side });
      if (!opts.quiet) {
        console.error(`stage 0v: held-out category cross-entropy ${l[0]!.toFixed(3)} (prior ${prior.toFixed(3)}), colour ${l[1]!.toFixed(3)}, box L1 ${(l[2]! * side).toFixed(2)} px (${cfg.evalImages} fresh pictures)`);
      }
    }
    saveLens(model, join(opts.out, MODEL_FILE), { stage: 'stage0v' });
    run.finish(metrics);
    return { dir: opts.out, metrics, model };
  } catch (e) {
    model.dispose();
    throw e;
  } finally {
    heads.disposeHeads();
  }
}
