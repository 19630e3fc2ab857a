import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as tf from '@tensorflow/tfjs-core';
import { beforeAll, describe, expect, it } from 'vitest';
import { initBackend, type BackendInfo } from '../../src/backend';
import { run as pretrainCli } from '../../src/cli/pretrain';
import { ConfigError } from '../../src/config';
import { ensureBenchmark } from '../../src/data/generate/benchmark';
import { buildLens } from '../../src/model/presets';
import { Rng } from '../../src/random';
import { readArrow } from '../../src/util/arrow';
import { readSafetensors } from '../../src/util/safetensors';
import { InterruptedRun, trainLoop, type StepPlan } from '../../src/train/loop';
import { Run } from '../../src/train/run';
import {
  jitterBox,
  loadInstances,
  maskBox,
  predictedMaskIou,
  resolvePretrainConfig,
  runPretrain,
  samBatch,
  samLoss,
  samplePoints,
  type SamBatch,
} from '../../src/train/stage0';

let backend: BackendInfo;
const root = mkdtempSync(join(tmpdir(), 'lens-stage0a-'));
const data = join(root, 'data');

beforeAll(async () => {
  backend = await initBackend({ quiet: true });
  await ensureBenchmark(data, { scale: 'tiny', seed: 0 }, { quiet: true });
});

describe('stage 0a pieces', () => {
  it('maskBox is the tight xyxy box (x2, y2 exclusive), null when empty', () => {
    const m = new Uint8Array(16);
    expect(maskBox(m, 4)).toBeNull();
    m[1 * 4 + 2] = 1; // (x 2, y 1)
    m[3 * 4 + 1] = 1; // (x 1, y 3)
    m[0] = 255; // ignore pixels are not foreground
    expect(maskBox(m, 4)).toEqual([1, 1, 3, 4]);
  });

  it('jitterBox: zero noise keeps the box; noisy boxes stay ordered, non-empty and inside the image', () => {
    const rng = new Rng(1);
    expect(jitterBox([3, 4, 10, 12], 0, 16, rng)).toEqual([3, 4, 10, 12]);
    for (let i = 0; i < 200; i++) {
      const [a, b, c, d] = jitterBox([0, 14, 2, 16], 0.5, 16, rng);
      expect(a).toBeGreaterThanOrEqual(0);
      expect(d).toBeLessThanOrEqual(16);
      expect(c).toBeGreaterThan(a);
      expect(d).toBeGreaterThan(b);
    }
  });

  it('samplePoints: the first point is foreground, negatives lie on background (0) pixels only', () => {
    const side = 8;
    const m = new Uint8Array(side * side);
    for (let y = 2; y < 5; y++) for (let x = 2; x < 5; x++) m[y * side + x] = 1;
    m[7 * side + 7] = 255;
    const rng = new Rng(2);
    let negatives = 0;
    for (let i = 0; i < 100; i++) {
      const { coords, labels } = samplePoints(m, side, 3, 0.5, rng);
      expect(labels[0]).toBe(1);
      coords.forEach(([x, y], k) => {
        expect(m[y * side + x]).toBe(labels[k] === 1 ? 1 : 0);
        if (labels[k] === 0) negatives++;
      });
    }
    expect(negatives).toBeGreaterThan(50); // ~100 of the 200 later points
    expect(() => samplePoints(new Uint8Array(4), 2, 1, 0, rng)).toThrow(/no foreground pixel/);
  });

  it('predictedMaskIou: hand-computed IoU of the thresholded logits, 255 ignored, empty vs empty = 1', () => {
    // mask 1: pred {0, 1}, target {1, 2}, pixel 3 ignored (pred there) -> I 1, U 3
    // mask 2: nothing predicted, nothing to find -> 1
    const logits = tf.tensor3d([[[5, 2], [-1, 3]], [[-1, -2], [-3, -4]]]);
    const labels = tf.tensor3d([[[0, 1], [1, 255]], [[0, 0], [255, 0]]]);
    const iou = predictedMaskIou(logits, labels);
    const [a, b] = Array.from(iou.dataSync());
    expect(a).toBeCloseTo(1 / 3, 6);
    expect(b).toBe(1);
    tf.dispose([logits, labels, iou]);
  });

  it('every instance of the training images is used, not only the referred ones', async () => {
    const inst = await loadInstances(data, 'train', { imageSize: 64, families: ['refcoco'], minArea: 1 });
    const { loadSplit } = await import('../../src/data');
    const ds = await loadSplit(data, 'refcoco', 'train');
    const referred = new Set(ds.samples.map((s) => `${s.imagePath}#${s.refId}`)).size;
    expect(inst.length).toBeGreaterThan(referred);
    for (const i of inst) {
      expect(i.rgb.length).toBe(64 * 64 * 3);
      expect(maskBox(i.mask, 64)).toEqual(i.box);
    }
  });

  it('config errors name the field and what was expected', () => {
    expect(() => resolvePretrainConfig('tiny', { stage0a: { boxProb: 2 } })).toThrow(ConfigError);
    expect(() => resolvePretrainConfig('tiny', { stage0a: { boxProb: 2 } })).toThrow(/'stage0a.boxProb' = 2; expected a number in \[0, 1\]/);
    expect(() => resolvePretrainConfig('tiny', { stage0a: { bogus: 1 } })).toThrow(/unknown field 'stage0a.bogus'/);
  });
});

describe('stage 0a training', () => {
  it('overfits a fixed batch of box prompts (loss falls) and leaks no tensor per step', async () => {
    const model = buildLens('tiny', { seed: 0 });
    const items = (await loadInstances(data, 'train', { imageSize: 64, families: ['refcoco'], limitImages: 2, minArea: 4 })).slice(0, 4);
    const params = model.stageSplit('stage0a').trainable;
    model.setStage('stage0a');
    expect(params.every(([n]) => n.startsWith('sam.'))).toBe(true);
    const plan: StepPlan<SamBatch> = {
      prepare: () => samBatch(items, 64, { boxProb: 1, boxNoise: 0, maxPoints: 1, negativePointProb: 0 }, new Rng(0)),
      loss: (b) => samLoss(model, b, 1),
      dispose: (b) => tf.dispose([b.images, b.labels, b.boxes!]),
    };
    const run = Run.open(join(root, 'overfit'), { kind: 'test', seed: 0, backend, config: {}, resume: false });
    const before = tf.memory().numTensors;
    const steps = 8;
    await trainLoop(
      { run, model, params, totalSteps: steps, schedule: { kind: 'constant', lr: 1e-2, warmupSteps: 0, totalSteps: steps }, gradClip: 1, checkpointEvery: 100, seed: 0, label: 'test', quiet: true },
      plan,
    );
    // The loop's optimiser state is freed with it: only the checkpoint is on disk.
    expect(tf.memory().numTensors).toBe(before);
    const losses = run.steps().map((r) => r.loss as number);
    expect(losses[steps - 1]!).toBeLessThan(losses[0]! * 0.8);
    model.dispose();
  });

  it('point prompts: the batch has 1..maxPoints points with the first positive', () => {
    const items = [{ imagePath: 'x', rgb: new Uint8Array(4 * 4 * 3), mask: Uint8Array.from([0, 0, 0, 0, 0, 1, 1, 0, 0, 1, 1, 0, 0, 0, 0, 0]), box: [1, 1, 3, 3] as [number, number, number, number] }];
    const b = samBatch(items, 4, { boxProb: 0, boxNoise: 0.1, maxPoints: 3, negativePointProb: 0.5 }, new Rng(5));
    expect(b.kind).toBe('points');
    const n = b.points!.coords.shape[1];
    expect(n).toBeGreaterThanOrEqual(1);
    expect(n).toBeLessThanOrEqual(3);
    expect(b.points!.labels.dataSync()[0]).toBe(1);
    tf.dispose([b.images, b.labels, b.points!.coords, b.points!.labels]);
  });

  it('the CLI resumes a killed run to the same weights as an uninterrupted one', async () => {
    const cfg = { stage0a: { steps: 4, batchSize: 4, checkpointEvery: 2, limitImages: 2, evalInstances: 4 } };
    const cfgFile = join(root, 'cfg.json');
    writeFileSync(cfgFile, JSON.stringify(cfg));
    const args = (out: string) => ['--preset', 'tiny', '--stage', '0a', '--data', data, '--out', out, '--config', cfgFile];
    const quiet = console.log;
    console.log = () => {};
    try {
      expect(await pretrainCli(args(join(root, 'straight')))).toBe(0);
      const killed = join(root, 'killed');
      await expect(runPretrain({ dataRoot: data, out: killed, preset: 'tiny', seed: 0, resume: false, stage: '0a', config: cfg, quiet: true, stopAfter: 3 })).rejects.toBeInstanceOf(InterruptedRun);
      await expect(pretrainCli(args(killed))).rejects.toThrow(/already holds a run; pass --resume/);
      expect(await pretrainCli([...args(killed), '--resume'])).toBe(0);
      const a = readSafetensors(join(root, 'straight', '0a', 'model.safetensors')).tensors;
      const b = readSafetensors(join(killed, '0a', 'model.safetensors')).tensors;
      for (const [name, t] of a) if (name.startsWith('sam.')) expect(Array.from(b.get(name)!.data), name).toEqual(Array.from(t.data));
      expect(readArrow(join(killed, '0a', 'steps.arrow')).map((r) => r.step)).toEqual([0, 1, 2, 3]);
      const m = readArrow(join(killed, '0a', 'metrics.arrow'));
      expect(m[0]).toMatchObject({ split: 'heldout/val', prompt: 'box', n: 4 });
    } finally {
      console.log = quiet;
    }
  });
});
