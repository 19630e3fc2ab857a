import { existsSync, mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as tf from '@tensorflow/tfjs-core';
import { beforeAll, describe, expect, it } from 'vitest';
import { initBackend } from '../../src/backend';
import { ensureBenchmark } from '../../src/data/generate';
import { LENS_UNUSED_PARAMS, STAGE2_MODULES } from '../../src/model/lens';
import { buildLens } from '../../src/model/presets';
import type { Tokenizer } from '../../src/model/tokenizer';
import { Rng } from '../../src/random';
import { fitTokenizer, type TrainExample } from '../../src/train/data';
import { groupAdvantages } from '../../src/train/grpo';
import {
  disposeGrpoBatch,
  evenlySpaced,
  grpoStageLoss,
  resolveGrpoStageConfig,
  rolloutLogs,
  runGrpo,
  PromptScorer,
  sampleRollouts,
  scoreOnPrompts,
  scoreRollouts,
  segLossOnRows,
  segLossRows,
  type GrpoBatch,
} from '../../src/train/grpo_stage';
import { segLoss } from '../../src/model/losses';
import { AdamW } from '../../src/train/optim';
import { InterruptedRun } from '../../src/train/loop';
import { readSafetensors } from '../../src/util/safetensors';
import { loadTrainingSet, saveStageModel } from '../../src/train/stage_io';
import { readArrow } from '../../src/util/arrow';

const root = mkdtempSync(join(tmpdir(), 'lens-grpo-'));
const data = join(root, 'data');
const stage1 = join(root, 'stage1');
let examples: TrainExample[];
let tokenizer: Tokenizer;

beforeAll(async () => {
  // Stage 2 trains the token embeddings, whose gradient (UnsortedSegmentSum) stock wasm lacks;
  // the native kernels add it. Without them these tests fall back to cpu (slow: ~1 min).
  await initBackend({ quiet: true });
  if (!tf.getKernel('UnsortedSegmentSum', tf.getBackend())) {
    await import('@tensorflow/tfjs-backend-cpu');
    await tf.setBackend('cpu');
  }
  await ensureBenchmark(data, { scale: 'tiny', seed: 0 }, { quiet: true });
  examples = await loadTrainingSet(data, 64, { limitPerFamily: 4, quiet: true });
  tokenizer = fitTokenizer(await loadTrainingSet(data, 64, { quiet: true }));
  const m = buildLens('tiny', { seed: 5 });
  saveStageModel(stage1, m, tokenizer);
  m.dispose();
});

const cfg = () => resolveGrpoStageConfig('tiny', { maxNewTokens: 10 });

describe('scoreRollouts', () => {
  it('scores format, box and the rollout mask, and group-normalises the totals', () => {
    const e = examples[0]!;
    const [x1, y1, x2, y2] = e.box;
    const good = `<think>t</think><answer>[{"bbox_2d": [${x1}, ${y1}, ${x2}, ${y2}], "label": "x"}]</answer>`;
    const batch = { examples: [e], G: 2, text: [good, 'garbage'] } as unknown as GrpoBatch;
    const px = 64 * 64;
    const logits = new Float32Array(2 * px).fill(-1);
    for (let p = 0; p < px; p++) if (e.target[p] === 1) logits[p] = 1; // rollout 0: the exact mask; rollout 1: empty
    const r = scoreRollouts(batch, logits, cfg(), 64);
    expect(r.format).toEqual([1, 0]);
    expect(r.box[0]).toBeCloseTo(1, 10);
    expect(r.box[1]).toBe(0);
    expect(r.seg[0]).toBeCloseTo(1, 4);
    expect(r.seg[1]).toBe(0);
    expect(r.total[0]).toBeCloseTo(3, 4);
    expect(r.advantages).toEqual(groupAdvantages(r.total, 2));
    const logs = rolloutLogs({ ...batch, rewards: r, lengths: [12, 3], rolloutSeconds: 0.5 });
    expect(logs.rewardMean).toBeCloseTo(1.5, 4);
    expect(logs.formatRate).toBe(0.5);
    expect(logs.zeroSpread).toBe(0);
    expect(logs.completionLength).toBe(7.5);
  });
});

describe('L_seg on some rollouts (segLossOn)', () => {
  it('marks every rollout, or those whose box IoU is above 0.5 (R_box = IoU^e)', () => {
    expect(segLossRows([0.9, 0.3, 0.6], { segLossOn: 'all', iouExponent: 1 })).toEqual([1, 1, 1]);
    expect(segLossRows([0.9, 0.3, 0.6, 0.5], { segLossOn: 'rightBox', iouExponent: 1 })).toEqual([1, 0, 1, 0]);
    // squared: 0.36 is IoU 0.6, a hit; 0.2 is IoU 0.45, a miss
    expect(segLossRows([0.36, 0.2], { segLossOn: 'rightBox', iouExponent: 2 })).toEqual([1, 0]);
  });

  it('is L_seg over the marked masks alone; unmarked masks get no gradient; no tensor left', () => {
    const rng = new Rng(4);
    const logits = tf.tensor3d(Array.from({ length: 3 * 8 * 8 }, () => rng.normal()), [3, 8, 8]);
    const labels = tf.tensor3d(Array.from({ length: 3 * 8 * 8 }, () => (rng.bernoulli(0.1) ? 255 : rng.bernoulli(0.4) ? 1 : 0)), [3, 8, 8], 'int32');
    const before = tf.memory().numTensors;
    const value = (t: tf.Scalar) => {
      const v = t.dataSync()[0]!;
      t.dispose();
      return v;
    };
    expect(value(segLossOnRows(logits, labels, [1, 1, 1]))).toBe(value(segLoss(logits, labels)));
    const rows02 = tf.tidy(() => segLoss(tf.gather(logits, [0, 2]) as tf.Tensor3D, tf.gather(labels, [0, 2]) as tf.Tensor3D));
    expect(value(segLossOnRows(logits, labels, [1, 0, 1]))).toBeCloseTo(value(rows02), 5);
    expect(value(segLossOnRows(logits, labels, [0, 0, 0]))).toBe(0);
    const g = tf.grad((x: tf.Tensor) => segLossOnRows(x as tf.Tensor3D, labels, [1, 0, 1]))(logits);
    const per = tf.tidy(() => tf.sum(tf.abs(g), [1, 2]).arraySync() as number[]);
    g.dispose();
    expect(per[1]).toBe(0);
    expect(per[0]).toBeGreaterThan(0);
    expect(per[2]).toBeGreaterThan(0);
    expect(tf.memory().numTensors).toBe(before);
    tf.dispose([logits, labels]);
  });
});

describe('a GRPO step', () => {
  it('changes every stage-2 trainable variable (but the unused prompt embeddings) and no frozen one; numTensors unchanged', () => {
    const model = buildLens('tiny', { seed: 5 });
    const ref = buildLens('tiny', { seed: 5 });
    ref.setTrainable(false);
    const split = model.stageSplit('stage2');
    model.setStage('stage2');
    const c = resolveGrpoStageConfig('tiny', { maxNewTokens: 10, updatesPerBatch: 2 });
    const snapshot = new Map(model.namedParameters().map(([n, v]) => [n, Array.from(v.dataSync())]));
    const opt = new AdamW(new Map(split.trainable));
    const before = tf.memory().numTensors;
    const batch = sampleRollouts(model, ref, tokenizer, examples.slice(0, 2), c, new Rng(1));
    expect(batch.tokens.shape[0]).toBe(2 * c.numGenerations);
    const nameOf = new Map(split.trainable.map(([n, v]) => [v.name, n] as const));
    const logs: Record<string, number>[] = [];
    for (let u = 0; u < c.updatesPerBatch; u++) {
      const kept: Record<string, number> = {};
      const { value, grads } = tf.variableGrads(() => {
        const out = grpoStageLoss(model, batch, c, u);
        for (const [k, t] of Object.entries(out.logs)) kept[k] = t.dataSync()[0]!;
        return out.loss;
      }, split.trainable.map(([, v]) => v));
      expect(Number.isFinite(value.dataSync()[0]!)).toBe(true);
      const named = Object.fromEntries(Object.entries(grads).map(([vn, g]) => [nameOf.get(vn)!, g]));
      opt.apply(named, 1e-3);
      tf.dispose([value, ...Object.values(grads)]);
      logs.push(kept);
      if (u === 0) expect(batch.rewards!.total.length).toBe(2 * c.numGenerations);
    }
    const rewardsOfFirst = batch.rewards!;
    expect(rolloutLogs(batch).rewardMean).toBeGreaterThanOrEqual(0);
    // The reference's reward: its own G rollouts per prompt (stream 'reference'), scored as the
    // policy's are; here recomputed through the policy's path on the reference model.
    const own = sampleRollouts(ref, null, tokenizer, examples.slice(0, 2), c, new Rng(1).fork('reference'));
    tf.tidy(() => void grpoStageLoss(ref, own, c, 0)); // scores own.rewards
    expect(batch.reference!.total).toEqual(own.rewards!.total);
    expect(batch.reference!.seg).toEqual(own.rewards!.seg);
    disposeGrpoBatch(own);
    const withRef = rolloutLogs(batch);
    expect(withRef.rewardGain).toBeCloseTo(withRef.rewardMean! - withRef.refRewardMean!, 10);
    disposeGrpoBatch(batch);
    opt.dispose();
    expect(tf.memory().numTensors).toBe(before);
    // The policy sampled: KL to an identical reference ~ 0 at the first update.
    expect(logs[0]!.kl).toBeLessThan(1e-3);
    expect(logs[0]!.segLoss).toBeGreaterThan(0);
    expect(batch.rewards).toBe(rewardsOfFirst); // rewards fixed at u = 0
    const trainable = new Set(split.trainable.map(([n]) => n));
    const unexpected: string[] = [];
    for (const [n, v] of model.namedParameters()) {
      const changed = Array.from(v.dataSync()).some((x, i) => x !== snapshot.get(n)![i]);
      // Besides LENS_UNUSED_PARAMS, SAM's IoU head gets no gradient: neither GRPO nor L_seg reads
      // the predicted IoU (the official stage 2 trains it in name only, too).
      const noGradient = LENS_UNUSED_PARAMS.includes(n) || n.startsWith('sam.mask_decoder.iou_prediction_head.');
      const shouldChange = trainable.has(n) && !noGradient;
      if (changed !== shouldChange) unexpected.push(`${n}: changed ${changed}`);
    }
    expect(unexpected).toEqual([]);
    expect([...trainable].some((n) => n.startsWith('sam.image_encoder'))).toBe(false);
    model.dispose();
    ref.dispose();
  });
});

describe('evenlySpaced', () => {
  it('takes k items spread through the list, or all of it', () => {
    expect(evenlySpaced([0, 1, 2, 3, 4, 5], 3)).toEqual([0, 2, 4]);
    expect(evenlySpaced([0, 1, 2, 3, 4, 5, 6], 2)).toEqual([0, 3]);
    expect(evenlySpaced([0, 1, 2], 0)).toEqual([0, 1, 2]);
    expect(evenlySpaced([0, 1, 2], 5)).toEqual([0, 1, 2]);
  });
});

describe('scoreOnPrompts', () => {
  it('gives the same model the same score, copies of it the same, another model another; numTensors unchanged', () => {
    const a = buildLens('tiny', { seed: 5 });
    const copy = buildLens('tiny', { seed: 5 });
    const other = buildLens('tiny', { seed: 6 });
    const c = cfg();
    const prompts = examples.slice(0, 3);
    const opts = { samples: 2, seed: 9, chunk: 2 };
    const before = tf.memory().numTensors;
    const s = scoreOnPrompts(a, tokenizer, prompts, c, opts);
    expect(tf.memory().numTensors).toBe(before);
    expect(scoreOnPrompts(a, tokenizer, prompts, c, opts)).toEqual(s);
    expect(scoreOnPrompts(copy, tokenizer, prompts, c, opts)).toEqual(s);
    expect(scoreOnPrompts(other, tokenizer, prompts, c, opts)).not.toEqual(s);
    expect(scoreOnPrompts(a, tokenizer, prompts, c, { ...opts, seed: 10 })).not.toEqual(s);
    expect(s.reward).toBeCloseTo(s.format + s.box + s.seg, 10); // all weights 1
    // one scorer for a run: pictures and SAM embeddings made once, the same scores each time
    const scorer = new PromptScorer(a, prompts, opts);
    expect(scorer.score(a, tokenizer, c)).toEqual(s);
    expect(scorer.score(copy, tokenizer, c)).toEqual(s);
    scorer.dispose();
    expect(tf.memory().numTensors).toBe(before);
    for (const x of [a, copy, other]) x.dispose();
  });
});

describe('runGrpo', () => {
  it('trains from a stage-1 folder and logs every reward component per step', async () => {
    const out = join(root, 'run');
    await runGrpo({ dataRoot: data, out, preset: 'tiny', seed: 0, resume: false, from: stage1, quiet: true, config: { steps: 1, maxNewTokens: 6, evalLimit: 1, evalMaxNewTokens: 6 } });
    for (const f of ['model.safetensors', 'tokenizer.json', 'run.json', 'steps.arrow', 'metrics.arrow']) expect(existsSync(join(out, f))).toBe(true);
    const steps = readArrow(join(out, 'steps.arrow'));
    expect(steps.map((r) => r.step)).toEqual([0]);
    for (const k of ['loss', 'rewardMean', 'rewardStd', 'formatMean', 'formatStd', 'boxMean', 'boxStd', 'segMean', 'segStd', 'kl', 'clipFraction', 'formatRate', 'zeroSpread', 'segLoss', 'completionLength']) {
      expect([k, Number.isFinite(steps[0]![k] as number)]).toEqual([k, true]);
    }
    expect(readArrow(join(out, 'metrics.arrow')).length).toBe(10);
  });

  it('scores the policy on its training prompts every scoreEvery steps and after the last, beside the stage-1 model', async () => {
    const out = join(root, 'scored');
    await runGrpo({ dataRoot: data, out, preset: 'tiny', seed: 0, resume: false, from: stage1, quiet: true, config: { steps: 3, scoreEvery: 2, maxNewTokens: 6, evalLimit: 0 } });
    const steps = readArrow(join(out, 'steps.arrow'));
    expect(steps.map((r) => Number.isFinite(r.scoreReward as number))).toEqual([false, true, true]); // after 2 steps, after 3
    const [, s2, s3] = steps as [unknown, Record<string, number>, Record<string, number>];
    expect(s3.scoreRefReward).toBe(s2.scoreRefReward); // the stage-1 model, scored once
    for (const r of [s2, s3]) expect(r.scoreGain).toBeCloseTo(r.scoreReward - r.scoreRefReward, 12);
  });

  it('a killed and resumed run ends with the same weights as an uninterrupted one (rollouts replay from the step rng)', async () => {
    const config = { steps: 2, checkpointEvery: 1, maxNewTokens: 6, evalLimit: 0 };
    const base = { dataRoot: data, preset: 'tiny' as const, seed: 2, from: stage1, quiet: true, config };
    await runGrpo({ ...base, out: join(root, 'straight'), resume: false });
    await expect(runGrpo({ ...base, out: join(root, 'killed'), resume: false, stopAfter: 1 })).rejects.toBeInstanceOf(InterruptedRun);
    await runGrpo({ ...base, out: join(root, 'killed'), resume: true });
    const a = readSafetensors(join(root, 'straight', 'model.safetensors'));
    const b = readSafetensors(join(root, 'killed', 'model.safetensors'));
    for (const [name, t] of a.tensors) expect([name, Array.from(b.tensors.get(name)!.data)]).toEqual([name, Array.from(t.data)]);
    expect(readArrow(join(root, 'killed', 'steps.arrow')).map((r) => r.rewardMean)).toEqual(readArrow(join(root, 'straight', 'steps.arrow')).map((r) => r.rewardMean));
  });

  it('trains only the modules of `trainable` (here the MLLM): every other weight stays the stage-1 one', async () => {
    const out = join(root, 'mllm-only');
    await runGrpo({ dataRoot: data, out, preset: 'tiny', seed: 0, resume: false, from: stage1, quiet: true, config: { steps: 1, trainable: ['mllm'], maxNewTokens: 6, evalLimit: 0 } });
    const before = readSafetensors(join(stage1, 'model.safetensors')).tensors;
    const after = readSafetensors(join(out, 'model.safetensors')).tensors;
    let moved = 0;
    for (const [name, t] of after) {
      const same = Array.from(t.data).every((x, k) => x === before.get(name)!.data[k]);
      if (!name.startsWith('mllm.')) expect([name, same]).toEqual([name, true]);
      else if (!same) moved++;
    }
    expect(moved).toBeGreaterThan(10);
  });

  it('needs --from, and names bad config fields', async () => {
    await expect(runGrpo({ dataRoot: data, out: join(root, 'x'), preset: 'tiny', seed: 0, resume: false })).rejects.toThrow(/--from DIR is required/);
    expect(() => resolveGrpoStageConfig('tiny', { numGenerations: 1 })).toThrow(/grpo config: field 'numGenerations' = 1; expected an integer in \[2/);
    expect(() => resolveGrpoStageConfig('tiny', { rewardWeights: { box: -1 } })).toThrow(/field 'rewardWeights.box' = -1/);
    expect(() => resolveGrpoStageConfig('tiny', { trainable: ['sam'] })).toThrow(/field 'trainable' = \["sam"\]; expected a non-empty list of distinct modules from "vision", "mllm", .*"sam.mask_decoder"/);
    expect(() => resolveGrpoStageConfig('tiny', { trainable: [] })).toThrow(/field 'trainable' = \[\]/);
    expect(() => resolveGrpoStageConfig('tiny', { segLossOn: 'hits' })).toThrow(/field 'segLossOn' = "hits"; expected one of "all", "rightBox"/);
    expect(() => resolveGrpoStageConfig('tiny', { trainable: ['mllm', 'mllm'] })).toThrow(/field 'trainable'/);
    expect(resolveGrpoStageConfig('tiny').trainable).toEqual([...STAGE2_MODULES]);
  });
});
