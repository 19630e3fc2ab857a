import { mkdirSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as tf from '@tensorflow/tfjs-core';
import { beforeAll, describe, expect, it } from 'vitest';
import { initBackend, type BackendInfo } from '../../src/backend';
import { buildLens } from '../../src/model/presets';
import { syntheticLensBatch, type LensModel } from '../../src/model/lens';
import { segLoss } from '../../src/model/losses';
import { upsampleMaskLogits } from '../../src/model/sam/mask_decoder';
import { InterruptedRun, NonFiniteError, trainLoop, type StepPlan } from '../../src/train/loop';
import { Run, runIsDone } from '../../src/train/run';

let backend: BackendInfo;
beforeAll(async () => {
  backend = await initBackend({ quiet: true });
});

const root = mkdtempSync(join(tmpdir(), 'lens-loop-'));
const SCHEDULE = { kind: 'cosine' as const, lr: 3e-3, warmupSteps: 2, totalSteps: 6 };

type Batch = ReturnType<typeof syntheticLensBatch> & { step: number };

/** Stage-1-like plan on the tiny preset: a synthetic batch per step, BCE + Dice on the masks; NaN at step `nanAt`. */
function plan(model: LensModel, nanAt = -1): StepPlan<Batch> {
  return {
    prepare: (step, rng) => ({ ...syntheticLensBatch(model.config, { batch: 2, promptLength: 6, answerLength: 6, seed: rng.seedForOp() }), step }),
    loss: (b) => {
      const out = model.forward({ tokens: b.tokens, attentionMask: b.attentionMask, images: b.images });
      const s = model.config.sam.imageSize;
      const loss = segLoss(upsampleMaskLogits(out.masks, s, s), b.labels);
      return { loss: b.step === nanAt ? (tf.mul(loss, NaN) as tf.Scalar) : loss, logs: { iou: tf.mean(out.iou) as tf.Scalar } };
    },
    dispose: (b) => tf.dispose([b.tokens, b.attentionMask, b.images, b.labels]),
  };
}

function train(dir: string, { stopAfter, resume = false, nanAt = -1 }: { stopAfter?: number; resume?: boolean; nanAt?: number } = {}) {
  const model = buildLens('tiny', { seed: 0 });
  const params = model.stageSplit('stage1').trainable;
  model.setStage('stage1');
  const run = Run.open(dir, { kind: 'test', seed: 1, backend, config: { schedule: SCHEDULE }, resume });
  const p = plan(model, nanAt);
  return { model, run, done: trainLoop({ run, model, params, totalSteps: 6, schedule: SCHEDULE, gradClip: 1, checkpointEvery: 2, seed: 1, label: 'test', quiet: true, stopAfter }, p) };
}

const weights = (m: LensModel) => m.namedParameters().map(([n, v]) => [n, Array.from(v.dataSync())] as const);

describe('trainLoop', () => {
  it('a killed and resumed run ends with the same weights as an uninterrupted one, leaking no tensor', async () => {
    const before = tf.memory().numTensors;
    const a = train(join(root, 'straight'));
    await a.done;
    const wa = weights(a.model);
    a.model.dispose();
    expect(tf.memory().numTensors).toBe(before);

    const b1 = train(join(root, 'killed'), { stopAfter: 3 });
    await expect(b1.done).rejects.toBeInstanceOf(InterruptedRun);
    b1.model.dispose();
    expect(b1.run.checkpointStep()).toBe(2);
    const b2 = train(join(root, 'killed'), { resume: true });
    const res = await b2.done;
    expect(res.resumedFrom).toBe(2);
    expect(weights(b2.model)).toEqual(wa);
    // logs: one row per step, no duplicates from the replayed step 2
    b2.run.finish();
    expect(b2.run.steps().map((r) => r.step)).toEqual([0, 1, 2, 3, 4, 5]);
    b2.model.dispose();
    expect(tf.memory().numTensors).toBe(before);
  });

  it('stops on a NaN loss, names the step and keeps the last good checkpoint', async () => {
    const dir = join(root, 'nan');
    const r = train(dir, { nanAt: 3 });
    await expect(r.done).rejects.toThrow(NonFiniteError);
    await expect(r.done).rejects.toThrow(/step 3: loss is NaN; nothing was applied and the last good state is checkpoint .*ckpt\.safetensors \(step 2\)/);
    expect(JSON.parse(readFileSync(join(dir, 'run.json'), 'utf8')).status).toBe('failed');
    // The checkpoint is intact: resuming (without the NaN) completes.
    r.model.dispose();
    const again = train(dir, { resume: true });
    expect((await again.done).resumedFrom).toBe(2);
    again.model.dispose();
  });

  it('refuses to resume with another config or seed, and to reuse a run folder without --resume', () => {
    const dir = join(root, 'straight');
    expect(() => Run.open(dir, { kind: 'test', seed: 1, backend, config: { other: 1 }, resume: true })).toThrow(/--resume with a different config/);
    expect(() => Run.open(dir, { kind: 'test', seed: 2, backend, config: { schedule: SCHEDULE }, resume: true })).toThrow(/--resume with seed 2, but the run was started with seed 1/);
    expect(() => Run.open(dir, { kind: 'test', seed: 1, backend, config: {}, resume: false })).toThrow(/already holds a run; pass --resume/);
  });
});

describe('runIsDone', () => {
  it('is true only for a readable run.json with status done (and the kind asked for)', () => {
    const root = mkdtempSync(join(tmpdir(), 'lens-runisdone-'));
    const rec = (name: string, body: string) => {
      mkdirSync(join(root, name));
      writeFileSync(join(root, name, 'run.json'), body);
      return join(root, name);
    };
    const done = rec('done', JSON.stringify({ kind: 'align', status: 'done' }));
    expect(runIsDone(done)).toBe(true);
    expect(runIsDone(done, 'align')).toBe(true);
    expect(runIsDone(done, 'grpo')).toBe(false);
    expect(runIsDone(rec('running', JSON.stringify({ kind: 'align', status: 'running' })))).toBe(false);
    expect(runIsDone(rec('torn', '{"kind": "al'))).toBe(false);
    expect(runIsDone(join(root, 'absent'))).toBe(false);
  });
});
