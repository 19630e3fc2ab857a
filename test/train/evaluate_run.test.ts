import { existsSync, mkdirSync, mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as tf from '@tensorflow/tfjs-core';
import { afterEach, beforeAll, describe, expect, it, vi } from 'vitest';
import { initBackend } from '../../src/backend';
import { run as evaluateCli } from '../../src/cli/evaluate';
import { ensureBenchmark } from '../../src/data/generate';
import { buildLens } from '../../src/model/presets';
import type { Tokenizer } from '../../src/model/tokenizer';
import { buildBaseline, disposeLisaBatch, lisaAnswerIds, lisaBatch, lisaLoss, saveBaseline } from '../../src/train/baselines';
import type { LisaModel } from '../../src/model/baselines';
import { AdamW } from '../../src/train/optim';
import { fitTokenizer } from '../../src/train/data';
import { evaluateRun, evaluationSubset, formatEvalTable, loadRunModel, predictLisa, resolveEvaluateConfig } from '../../src/train/evaluate_run';
import { loadTrainingSet, saveStageModel } from '../../src/train/stage_io';
import { readArrow } from '../../src/util/arrow';

const root = mkdtempSync(join(tmpdir(), 'lens-evalrun-'));
const data = join(root, 'data');
let tokenizer: Tokenizer;

beforeAll(async () => {
  await initBackend({ quiet: true }); // inference only: any backend
  await ensureBenchmark(data, { scale: 'tiny', seed: 0 }, { quiet: true });
  tokenizer = fitTokenizer(await loadTrainingSet(data, 64, { quiet: true }));
});

afterEach(() => {
  vi.restoreAllMocks();
});

/** Runs `lens evaluate --pred` on a file and returns the JSON it prints. */
async function scoreThroughPred(split: string, pred: string): Promise<Record<string, number>> {
  const out: string[] = [];
  vi.spyOn(process.stdout, 'write').mockImplementation((s) => (out.push(String(s)), true));
  vi.spyOn(console, 'error').mockImplementation(() => {});
  expect(await evaluateCli(['--data', data, '--split', split, '--pred', pred])).toBe(0);
  vi.restoreAllMocks();
  return JSON.parse(out.join('')) as Record<string, number>;
}

describe('evaluationSubset', () => {
  it('takes evenly spaced items, all when max is 0 or large', () => {
    expect(evaluationSubset([0, 1, 2, 3, 4, 5, 6, 7, 8, 9], 4)).toEqual([0, 2, 5, 7]);
    expect(evaluationSubset([1, 2, 3], 0)).toEqual([1, 2, 3]);
    expect(evaluationSubset([1, 2, 3], 5)).toEqual([1, 2, 3]);
    expect(() => evaluationSubset([1], -1)).toThrow(/max must be an integer >= 0/);
    expect(() => resolveEvaluateConfig('tiny', { maxPerSplit: 1.5 })).toThrow(/evaluate config: field 'maxPerSplit' = 1.5/);
  });
});

describe('evaluateRun', () => {
  it('scores a LENS run and a Seg-Zero run; eval.arrow equals `lens evaluate --pred` on the written predictions', async () => {
    const lensDir = join(root, 'lens-run');
    mkdirSync(lensDir);
    const lens = buildLens('tiny', { seed: 1 });
    saveStageModel(lensDir, lens, tokenizer);
    lens.dispose();
    const szDir = join(root, 'segzero-run');
    mkdirSync(szDir);
    const sz = buildBaseline('segzero', 'tiny', 2);
    saveBaseline(szDir, sz, tokenizer);
    sz.dispose();

    const splits = ['refcoco/val', 'reasonseg/val'];
    for (const [dir, kind] of [[lensDir, 'lens'], [szDir, 'segzero']] as const) {
      const before = tf.memory().numTensors;
      const rows = await evaluateRun(dir, { dataRoot: data, splits, preset: 'tiny', config: { maxPerSplit: 0, maxNewTokens: 6 }, quiet: true });
      expect(tf.memory().numTensors).toBe(before);
      expect(rows.map((r) => [r.split, r.model])).toEqual(splits.map((s) => [s, kind]));
      const arrow = readArrow(join(dir, 'eval.arrow'));
      expect(arrow.map((r) => r.split)).toEqual(splits);
      for (const [i, name] of splits.entries()) {
        const [family, split] = name.split('/');
        const viaPred = await scoreThroughPred(name, join(dir, 'predictions', `${family}_${split}.json`));
        // Boxes are scored for models that answer with one (a parse failure is a miss, not N/A).
        expect(viaPred).toEqual({ giou: rows[i]!.giou, ciou: rows[i]!.ciou, n: rows[i]!.n, box_acc50: rows[i]!.box_acc50, format_rate: rows[i]!.format_rate });
        expect(arrow[i]).toMatchObject({ giou: rows[i]!.giou, ciou: rows[i]!.ciou, n: rows[i]!.n });
      }
    }
    const table = formatEvalTable(await evaluateRun(szDir, { dataRoot: data, splits: ['refcoco/val'], preset: 'tiny', config: { maxPerSplit: 2, maxNewTokens: 4 }, quiet: true }));
    expect(table.split('\n')[0]).toMatch(/^split\s+model\s+gIoU\s+cIoU\s+boxAcc\s+format\s+n$/);
    expect(table.split('\n')[1]).toMatch(/^refcoco\/val\s+segzero\s.*\s2$/);

    // `out` scores the run elsewhere and leaves the run's own evaluation as it was.
    const own = readFileSync(join(szDir, 'eval.arrow'));
    const ownPred = readFileSync(join(szDir, 'predictions', 'refcoco_val.json'));
    const elsewhere = join(root, 'segzero-all');
    const rows = await evaluateRun(szDir, { dataRoot: data, splits: ['refcoco/val'], preset: 'tiny', config: { maxPerSplit: 0, maxNewTokens: 4 }, out: elsewhere, quiet: true });
    expect(readFileSync(join(szDir, 'eval.arrow'))).toEqual(own);
    expect(readFileSync(join(szDir, 'predictions', 'refcoco_val.json'))).toEqual(ownPred);
    expect(readArrow(join(elsewhere, 'eval.arrow'))).toMatchObject([{ split: 'refcoco/val', n: rows[0]!.n }]);
    expect(rows[0]!.n).toBeGreaterThan(2);
    expect(await scoreThroughPred('refcoco/val', join(elsewhere, 'predictions', 'refcoco_val.json'))).toMatchObject({ ciou: rows[0]!.ciou, n: rows[0]!.n });
    await expect(evaluateCli(['--trivial', '--data', data, '--out', elsewhere])).rejects.toThrow(/--out only applies with --run/);
    await expect(evaluateCli(['--data', data, '--split', 'refcoco/val', '--pred', join(elsewhere, 'predictions', 'refcoco_val.json'), '--out', elsewhere])).rejects.toThrow(/--out only applies with --run/);
  });

  it('a LISA run reports no box accuracy (N/A), and a folder without a model is refused', async () => {
    const dir = join(root, 'lisa-run');
    mkdirSync(dir);
    const lisa = buildBaseline('lisa', 'tiny', 3);
    saveBaseline(dir, lisa, tokenizer);
    lisa.dispose();
    const m = loadRunModel(dir);
    expect(m.kind).toBe('lisa');
    m.model.dispose();
    const before = tf.memory().numTensors;
    const rows = await evaluateRun(dir, { dataRoot: data, splits: ['refcocog/val'], preset: 'tiny', quiet: true });
    expect(tf.memory().numTensors).toBe(before);
    expect(rows[0]!.box_acc50).toBeUndefined();
    expect(rows[0]!.n).toBe(resolveEvaluateConfig('tiny').maxPerSplit);
    expect(Number.isNaN(readArrow(join(dir, 'eval.arrow'))[0]!.box_acc50)).toBe(true);
    expect(existsSync(join(dir, 'predictions', 'refcocog_val.json'))).toBe(true);
    await expect(evaluateRun(join(root, 'empty'), { dataRoot: data, quiet: true })).rejects.toThrow(/no model\.safetensors; --run must name the folder of a finished run/);
  });

  it('LISA inference: a model that learned the fixed answer emits the segmentation token and gets masks from its state', async () => {
    const lisa = buildBaseline('lisa', 'tiny', 4) as LisaModel;
    lisa.setTraining();
    const params = lisa.trainingSplit().trainable;
    const examples = (await loadTrainingSet(data, 64, { limitPerFamily: 1, quiet: true })).slice(0, 4);
    const batch = lisaBatch(lisa, tokenizer, examples, lisaAnswerIds(tokenizer, '<answer></answer>'));
    const opt = new AdamW(new Map(params));
    const nameOf = new Map(params.map(([n, v]) => [v.name, n] as const));
    for (let i = 0; i < 30; i++) {
      const { value, grads } = tf.variableGrads(() => lisaLoss(lisa, batch, { ceWeight: 1, bceWeight: 0, diceWeight: 0 }).loss, params.map(([, v]) => v));
      opt.apply(Object.fromEntries(Object.entries(grads).map(([k, g]) => [nameOf.get(k)!, g])), 1e-2);
      tf.dispose([value, ...Object.values(grads)]);
    }
    disposeLisaBatch(batch);
    opt.dispose();
    const before = tf.memory().numTensors;
    const preds = predictLisa(lisa, tokenizer, examples, { batchSize: 3, maxNewTokens: 4 });
    expect(tf.memory().numTensors).toBe(before);
    expect(preds.map((p) => [p.id, p.text.startsWith('<answer></answer>'), p.formatValid, p.box])).toEqual(examples.map((e) => [e.id, true, true, null]));
    for (const p of preds) expect(p.mask.length).toBe(64 * 64); // at the sample's original size
    lisa.dispose();
  });
});
