import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as tf from '@tensorflow/tfjs-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { initBackend } from '../../src/backend';
import { ensureBenchmark } from '../../src/data/generate';
import type { LensModel } from '../../src/model/lens';
import { buildLens } from '../../src/model/presets';
import type { Tokenizer } from '../../src/model/tokenizer';
import { Rng } from '../../src/random';
import { fitTokenizer, type TrainExample } from '../../src/train/data';
import { groupAdvantages } from '../../src/train/grpo';
import { disposeGrpoBatch, grpoStageLoss, resolveGrpoStageConfig, sampleRollouts } from '../../src/train/grpo_stage';
import { segIouReward, unifiedReward } from '../../src/train/rewards';
import { extractThinking } from '../../src/model/answer';
import { browseRollouts } from '../../src/train/rollouts';
import { loadTrainingSet } from '../../src/train/stage_io';

const root = mkdtempSync(join(tmpdir(), 'lens-rollouts-'));
let examples: TrainExample[];
let tokenizer: Tokenizer;
let model: LensModel;
const cfg = () => resolveGrpoStageConfig('tiny', { maxNewTokens: 10 });

beforeAll(async () => {
  await initBackend({ quiet: true });
  const data = join(root, 'data');
  await ensureBenchmark(data, { scale: 'tiny', seed: 0 }, { quiet: true });
  const all = await loadTrainingSet(data, 64, { quiet: true });
  tokenizer = fitTokenizer(all);
  examples = all.slice(0, 2);
  model = buildLens('tiny', { seed: 5 });
});

afterAll(() => model.dispose());

describe('extractThinking', () => {
  it('reads the first think block, or null', () => {
    expect(extractThinking('<think>a\nb</think><answer>x</answer><think>c</think>')).toBe('a\nb');
    expect(extractThinking('<think>open only')).toBeNull();
  });
});

describe('browseRollouts', () => {
  it('returns G rollouts per prompt with label-resolution masks, each reward part, and the group advantages; numTensors unchanged', () => {
    const c = cfg();
    const before = tf.memory().numTensors;
    const groups = browseRollouts(model, tokenizer, examples, { config: c, seed: 3 });
    expect(tf.memory().numTensors).toBe(before);
    expect(groups.map((g) => g.example.id)).toEqual(examples.map((e) => e.id));
    for (const g of groups) {
      expect(g.side).toBe(64);
      expect(g.rollouts.map((r) => r.index)).toEqual([0, 1, 2, 3]); // tiny G = 4
      for (const r of g.rollouts) {
        expect(r.mask.length).toBe(64 * 64);
        expect(r.mask.every((v) => v === 0 || v === 1)).toBe(true);
        // R_seg is the IoU of exactly this mask with the example's target (rewards.ts).
        expect(r.seg).toBeCloseTo(segIouReward(r.mask, g.example.target), 10);
        expect(r.total).toBeCloseTo(unifiedReward({ format: r.format, box: r.boxReward, seg: r.seg }, c.rewardWeights), 12);
        expect(r.length).toBeGreaterThan(0);
        expect(r.length).toBeLessThanOrEqual(c.maxNewTokens);
        if (r.box === null) expect(r.boxReward).toBe(0);
      }
      expect(g.rollouts.map((r) => r.advantage)).toEqual(groupAdvantages(g.rollouts.map((r) => r.total), 4));
    }
  });

  it('draws and scores the same rollouts as a stage-2 step with the same stream', () => {
    const c = cfg();
    const groups = browseRollouts(model, tokenizer, examples, { config: c, seed: 7 });
    const batch = sampleRollouts(model, null, tokenizer, examples, c, new Rng(7).fork('rollouts'));
    try {
      tf.tidy(() => {
        grpoStageLoss(model, batch, c, 0); // fills batch.rewards as training does
      });
      const flat = groups.flatMap((g) => g.rollouts);
      expect(flat.map((r) => r.text)).toEqual(batch.text);
      const r = batch.rewards!;
      flat.forEach((x, i) => {
        expect(x.format).toBe(r.format[i]);
        expect(x.boxReward).toBe(r.box[i]);
        expect(x.seg).toBeCloseTo(r.seg[i]!, 6);
        expect(x.advantage).toBeCloseTo(r.advantages[i]!, 4);
      });
    } finally {
      disposeGrpoBatch(batch);
    }
  });

  it('is deterministic in its seed and refuses an empty prompt list', () => {
    const c = cfg();
    const a = browseRollouts(model, tokenizer, examples.slice(0, 1), { config: c, seed: 11 });
    const b = browseRollouts(model, tokenizer, examples.slice(0, 1), { config: c, seed: 11 });
    expect(b[0]!.rollouts.map((r) => r.text)).toEqual(a[0]!.rollouts.map((r) => r.text));
    expect(() => browseRollouts(model, tokenizer, [], { config: c })).toThrow(/examples is empty/);
  });
});
