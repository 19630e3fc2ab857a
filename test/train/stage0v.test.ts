import { mkdirSync, mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as tf from '@tensorflow/tfjs-core';
import '@tensorflow/tfjs-backend-cpu';
import { beforeAll, describe, expect, it } from 'vitest';
import { initBackend } from '../../src/backend';
import { ensureBenchmark } from '../../src/data/generate/benchmark';
import { resolveGenerateConfig, type SceneObject } from '../../src/data/generate/index';
import { CATEGORIES, COLOURS } from '../../src/data/generate/vocab';
import { loadLens } from '../../src/model/presets';
import { readArrow } from '../../src/util/arrow';
import { readSafetensors } from '../../src/util/safetensors';
import { InterruptedRun } from '../../src/train/loop';
import { resolvePretrainConfig, runPretrain } from '../../src/train/stage0';
import { disposeCellTargets, freshPictures, runStage0v, sceneCellTargets } from '../../src/train/stage0v';

const root = mkdtempSync(join(tmpdir(), 'lens-stage0v-'));
const data = join(root, 'data');

beforeAll(async () => {
  await initBackend({ quiet: true });
  if (!process.env.LENS_BACKEND && !tf.getKernel('UnsortedSegmentSum', tf.getBackend())) await tf.setBackend('cpu');
  await ensureBenchmark(data, { scale: 'tiny', seed: 0 }, { quiet: true });
});

/** A scene object with only the fields the targets read. */
const object = (category: string, colour: string, pixels: number[], side: number, bbox: [number, number, number, number]) => {
  const visible = new Uint8Array(side * side);
  for (const p of pixels) visible[p] = 1;
  return { category, colour, visible, bbox } as unknown as SceneObject;
};

describe('stage 0v targets', () => {
  it('sceneCellTargets: category and colour shares of the visible pixels per cell, the box of the cell\'s main object, empty cells masked', () => {
    // a 4 x 4 picture, 2 x 2 cells: a red person on 3 pixels of cell 0 and 1 of cell 1, a blue star on 1 pixel of cell 0
    const person = object(CATEGORIES[0]!.name, COLOURS[0]!.name, [0, 1, 4, 2], 4, [0, 0, 3, 2]);
    const star = object(CATEGORIES[5]!.name, COLOURS[2]!.name, [5], 4, [1, 1, 1, 1]);
    const t = sceneCellTargets([person, star], 4, 2);
    const K = CATEGORIES.length;
    const KC = COLOURS.length;
    expect(t.mask).toEqual(new Float32Array([1, 1, 0, 0]));
    expect(t.category[0]).toBeCloseTo(0.75, 6);
    expect(t.category[5]).toBeCloseTo(0.25, 6);
    expect(t.category[K]).toBeCloseTo(1, 6); // cell 1: the person alone
    expect(t.colour[0]).toBeCloseTo(0.75, 6);
    expect(t.colour[2]).toBeCloseTo(0.25, 6);
    expect(t.colour[KC]).toBeCloseTo(1, 6);
    expect(Array.from(t.box.subarray(0, 4))).toEqual([0, 0, 0.75, 0.5]); // the person holds most of cell 0
    expect(Array.from(t.box.subarray(8))).toEqual(new Array(8).fill(0));
    expect(() => sceneCellTargets([person], 4, 3)).toThrow(/side 4 is not a multiple of the 3 x 3 token grid/);
  });

  it('freshPictures: the same stream and index give the same picture, another stream another; no tensor left', () => {
    const generator = resolveGenerateConfig({ scale: 'tiny', seed: 0 });
    const before = tf.memory().numTensors;
    const a = freshPictures(generator, 'x', 3, 2, 4);
    const b = freshPictures(generator, 'x', 4, 1, 4);
    const c = freshPictures(generator, 'y', 3, 2, 4);
    const rows = (t: tf.Tensor4D, i: number) => tf.tidy(() => Array.from(t.slice([i], [1]).dataSync()));
    expect(rows(b.images, 0)).toEqual(rows(a.images, 1));
    expect(rows(c.images, 0)).not.toEqual(rows(a.images, 0));
    expect(a.category.shape).toEqual([2 * 16, CATEGORIES.length]);
    expect(Array.from(a.mask.dataSync()).some((m) => m === 1)).toBe(true);
    [a, b, c].forEach(disposeCellTargets);
    expect(tf.memory().numTensors).toBe(before);
  });
});

describe('stage 0v runs', () => {
  const config = { ...resolvePretrainConfig('tiny').stage0v, steps: 4, checkpointEvery: 2 };

  it('logs its three terms, leaks no tensor, and a run killed after step 3 resumes to the same weights', async () => {
    const before = tf.memory().numTensors;
    const straight = await runStage0v({ dataRoot: data, out: join(root, 'straight'), preset: 'tiny', seed: 0, resume: false, quiet: true, config });
    const init = loadLens(join(straight.dir, 'model.safetensors')).model;
    straight.model.dispose();
    expect(tf.memory().numTensors).toBe(before + init.namedParameters().length);
    const rows = readArrow(join(straight.dir, 'steps.arrow'));
    expect(rows.map((r) => r.step)).toEqual([0, 1, 2, 3]);
    for (const r of rows) for (const k of ['category', 'colour', 'boxL1']) expect(Number.isFinite(r[k]), k).toBe(true);
    const metrics = readArrow(join(straight.dir, 'metrics.arrow'));
    expect(metrics[0]!.split).toBe('fresh/held-out');
    expect(metrics[0]!.categoryPrior as number).toBeGreaterThan(0);
    init.dispose();
    const out = join(root, 'killed');
    await expect(runStage0v({ dataRoot: data, out, preset: 'tiny', seed: 0, resume: false, quiet: true, config, stopAfter: 3 })).rejects.toBeInstanceOf(InterruptedRun);
    const resumed = await runStage0v({ dataRoot: data, out, preset: 'tiny', seed: 0, resume: true, quiet: true, config });
    resumed.model.dispose();
    const a = readSafetensors(join(straight.dir, 'model.safetensors')).tensors;
    const b = readSafetensors(join(out, 'model.safetensors')).tensors;
    expect([...b.keys()]).toEqual([...a.keys()]);
    expect([...a.keys()].some((k) => /category_head|colour_head|box_head/.test(k))).toBe(false); // the heads are stage 0v's own
    for (const [name, t] of a) expect(Array.from(b.get(name)!.data), name).toEqual(Array.from(t.data));
  });

  it('lens pretrain runs 0a, 0v, 0b in turn: 0v trains the vision encoder alone, and 0b starts from it', async () => {
    const out = join(root, 'chain');
    const cfg = {
      stage0a: { steps: 2, batchSize: 2, checkpointEvery: 2, limitImages: 1, evalInstances: 0 },
      stage0v: { steps: 2, checkpointEvery: 2, evalImages: 0 },
      stage0b: { steps: 1, batchSize: 2, checkpointEvery: 1, limitPerFamily: 2, evalPerSplit: 0, lr: 1e-12 },
    };
    const r = await runPretrain({ dataRoot: data, out, preset: 'tiny', seed: 0, resume: false, config: cfg, quiet: true });
    expect(r.metrics.stage0v).toEqual([]);
    const a = readSafetensors(join(out, '0a', 'model.safetensors')).tensors;
    const v = readSafetensors(join(out, '0v', 'model.safetensors')).tensors;
    const b = readSafetensors(join(out, 'model.safetensors')).tensors;
    const same = (x: typeof a, y: typeof a, n: string) => Array.from(x.get(n)!.data).every((q, i) => q === y.get(n)!.data[i]);
    for (const n of a.keys()) {
      if (n.startsWith('vision.')) {
        expect(same(a, v, n), n).toBe(false);
        // 0b at lr 1e-12 barely moves it: the hand-over carries 0v's encoder
        Array.from(b.get(n)!.data).forEach((q, i) => expect(q).toBeCloseTo(v.get(n)!.data[i]!, 5));
      } else {
        expect(same(a, v, n), n).toBe(true);
      }
    }
  });

  it('--stage 0v with stage0v.steps 0, and 0b before a configured 0v, say what to do', async () => {
    const out = join(root, 'order');
    const a = { steps: 2, batchSize: 2, checkpointEvery: 2, limitImages: 1, evalInstances: 0 };
    await expect(runPretrain({ dataRoot: data, out, preset: 'tiny', seed: 0, resume: false, stage: '0v', quiet: true, config: { stage0v: { steps: 0 } } })).rejects.toThrow(
      /stage0v.steps is 0 in this config; set it above 0 to run stage 0v/,
    );
    await runPretrain({ dataRoot: data, out, preset: 'tiny', seed: 0, resume: false, stage: '0a', quiet: true, config: { stage0a: a } });
    await expect(runPretrain({ dataRoot: data, out, preset: 'tiny', seed: 0, resume: false, stage: '0b', quiet: true, config: { stage0a: a } })).rejects.toThrow(
      /holds no finished stage-0v run; run 'lens pretrain --stage 0v'/,
    );
  });

  it('data the generator did not write is a config error saying how to skip stage 0v', async () => {
    const plain = join(root, 'not-generated');
    mkdirSync(plain, { recursive: true });
    await expect(runStage0v({ dataRoot: plain, out: join(root, 'bad'), preset: 'tiny', seed: 0, resume: false, quiet: true, config })).rejects.toThrow(
      /is not a generated benchmark .*set stage0v.steps to 0/,
    );
  });
});
