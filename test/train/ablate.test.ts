import { copyFileSync, existsSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as tf from '@tensorflow/tfjs-core';
import { beforeAll, describe, expect, it } from 'vitest';
import { initBackend } from '../../src/backend';
import { ensureBenchmark } from '../../src/data/generate';
import { buildLens, resolveLensConfig } from '../../src/model/presets';
import {
  ABLATION, ABLATION_GRIDS, ablationReport, canonicalModelDelta, readAblationTable, runAblation, seedList, stage0Identity, STAGE0_FILE, tableFile,
} from '../../src/train/ablate';
import {
  ablationMarkdown, overallVerdict, pairVerdicts, sampleStd, summarizeCells, type AblationRow, type PairVerdict,
} from '../../src/train/ablate_summary';
import { fitTokenizer } from '../../src/train/data';
import { loadStageModel, loadStageModelRebuilt, loadTrainingSet, mergeLensDelta, saveStageModel } from '../../src/train/stage_io';
import { readArrow } from '../../src/util/arrow';
import { parseAblateArgs } from '../../src/cli/ablate';
import { UsageError } from '../../src/cli/errors';
import { projectRoot } from '../../src/util/paths';

const row = (cell: string, seed: number, ciou: number, extra: Partial<AblationRow> = {}): AblationRow => ({
  table: 't', cell, delta: '{}', seed, ciou, giou: ciou - 1, formatRate: 100, boxAcc50: Number.NaN, n: 10, seconds: 1, run: `runs/${cell}-s${seed}`, ...extra,
});

describe('ablation summaries (hand-made rows)', () => {
  it('sample std uses n - 1 and is 0 for one value', () => {
    expect(sampleStd([1, 2, 3, 4])).toBeCloseTo(Math.sqrt(5 / 3), 12); // mean 2.5, squares 2.25+0.25+0.25+2.25 = 5
    expect(sampleStd([7])).toBe(0);
  });

  it('summarises each grid cell in grid order: mean, std, min, max, seeds, paper', () => {
    const rows = [row('b', 1, 30), row('a', 0, 10), row('a', 1, 14), row('a', 2, 12), row('b', 0, 20)];
    const s = summarizeCells(rows, [{ label: 'a', paper: 50 }, { label: 'b', paper: null }, { label: 'c', paper: 1 }]);
    expect(s.map((c) => c.cell)).toEqual(['a', 'b', 'c']);
    expect(s[0]).toMatchObject({ n: 3, seeds: [0, 1, 2], mean: 12, std: 2, min: 10, max: 14, values: [10, 14, 12], paper: 50, giou: 11, formatRate: 100 });
    expect(Number.isNaN(s[0]!.boxAcc50)).toBe(true);
    expect(s[1]).toMatchObject({ n: 2, seeds: [0, 1], mean: 25, min: 20, max: 30, paper: null });
    expect(s[1]!.std).toBeCloseTo(Math.sqrt(50), 12);
    expect(s[2]!.n).toBe(0);
  });

  it('judges each pair the paper orders: agrees / disagrees beyond std_a + std_b, else within spread', () => {
    // paper: x 80 > y 70 > z 60; w has no paper value
    const rows = [
      row('x', 0, 20), row('x', 1, 22), // mean 21, std sqrt(2)
      row('y', 0, 10), row('y', 1, 10), // mean 10, std 0
      row('z', 0, 20), row('z', 1, 21), // mean 20.5, std sqrt(0.5)
      row('w', 0, 99),
    ];
    const cells = summarizeCells(rows, [{ label: 'x', paper: 80 }, { label: 'y', paper: 70 }, { label: 'z', paper: 60 }, { label: 'w', paper: null }]);
    const pairs = pairVerdicts(cells);
    const v = Object.fromEntries(pairs.map((p) => [`${p.a}-${p.b}`, p.verdict]));
    expect(v).toEqual({ 'x-y': 'agrees', 'x-z': 'within spread', 'y-z': 'disagrees' });
    const xz = pairs.find((p) => p.a === 'x' && p.b === 'z')!;
    expect(xz.ourDiff).toBeCloseTo(0.5, 12);
    expect(xz.spread).toBeCloseTo(Math.sqrt(2) + Math.sqrt(0.5), 12);
    expect(xz.paperDiff).toBe(20);
    expect(overallVerdict(pairs).verdict).toBe('mixed');
  });

  it('equal paper values are not compared; the overall verdict covers every case', () => {
    const cells = summarizeCells([row('a', 0, 1), row('b', 0, 2)], [{ label: 'a', paper: 5 }, { label: 'b', paper: 5 }]);
    expect(pairVerdicts(cells)).toEqual([]);
    expect(overallVerdict([]).verdict).toBe('no pairs');
    const p = (verdict: PairVerdict['verdict']): PairVerdict => ({ a: 'a', b: 'b', paperDiff: 1, ourDiff: 1, spread: 0, verdict });
    expect(overallVerdict([p('agrees'), p('agrees')]).verdict).toBe('agrees');
    expect(overallVerdict([p('agrees'), p('within spread')])).toMatchObject({ verdict: 'agrees' });
    expect(overallVerdict([p('agrees'), p('within spread')]).line).toContain('agrees where our seeds can tell');
    expect(overallVerdict([p('disagrees'), p('within spread')]).verdict).toBe('disagrees');
    expect(overallVerdict([p('within spread')]).verdict).toBe('within spread');
    expect(overallVerdict([p('agrees'), p('disagrees'), p('within spread')]).line).toContain('1 agree beyond the seed spread, 1 disagree beyond it, 1 are within it');
  });

  it('renders Markdown with ours mean ± std, range, seeds, paper and the verdict', () => {
    const cells = summarizeCells([row('MLP', 0, 10), row('MLP', 1, 12), row('ViT', 0, 20), row('ViT', 1, 20)], [{ label: 'MLP', paper: 72.8 }, { label: 'ViT', paper: 87.8 }]);
    const md = ablationMarkdown('T4', cells, 'note');
    expect(md).toContain('| MLP | 11.0 ± 1.4 | 10.0–12.0 | 2 | 72.8 | 10.0 | 100.0 |');
    expect(md).toContain('| ViT | 20.0 ± 0.0 | 20.0–20.0 | 2 | 87.8 | 19.0 | 100.0 |');
    expect(md).toContain('Verdict: agrees:');
    expect(md.endsWith('note')).toBe(true);
  });
});

describe('ablation grids and settings', () => {
  it('hold the paper cells and values of Tables 3, 4, 5 (reference/paper-tables.json)', () => {
    expect(ABLATION_GRIDS.queries.cells.map((c) => [c.model?.context?.numQueries, c.paper])).toEqual([[1, 85.9], [16, 87.4], [32, 87.8], [64, 87.9], [128, 87.2]]);
    expect(ABLATION_GRIDS.connector.cells.map((c) => [c.model?.connector?.kind, c.paper])).toEqual([['mlp', 72.8], ['vit', 87.8]]);
    const r = ABLATION_GRIDS.rewards.cells.map((c) => [c.row!.contextModule, c.row!.align, c.row!.rewardWeights.box > 0, c.row!.rewardWeights.format > 0, c.row!.rewardWeights.seg > 0, c.paper]);
    expect(r).toEqual([
      [false, false, false, false, false, 79.3],
      [true, false, true, false, false, null],
      [true, false, true, true, false, 72.3],
      [true, true, true, true, false, 81.9],
      [true, true, true, true, true, 82.7],
    ]);
    for (const p of ['tiny', 'quick', 'paper'] as const) expect(ABLATION[p].seeds).toBeGreaterThanOrEqual(3);
    expect(ABLATION.quick.tables.queries.evalLimit).toBe(150);
  });

  it('gives deltas that build the same model one canonical form (shared run folders)', () => {
    const base = resolveLensConfig('quick'); // M = 16, vit
    const m16 = canonicalModelDelta(base, { context: { numQueries: 16 } });
    expect(canonicalModelDelta(base, { connector: { kind: 'vit' } })).toEqual(m16);
    expect(canonicalModelDelta(base, {})).toEqual(m16);
    expect(canonicalModelDelta(base, { context: { numQueries: 32 } }).context).toMatchObject({ numQueries: 32 });
    expect(canonicalModelDelta(base, { connector: { kind: 'mlp' } }).connector).toMatchObject({ kind: 'mlp', depth: base.connector.depth });
    expect(resolveLensConfig(mergeLensDelta(base, { context: { numQueries: 32 } })).connector.numQueries).toBe(32);
  });

  it('seed lists: a count means 0 .. N-1; bad values are refused', () => {
    expect(seedList(3)).toEqual([0, 1, 2]);
    expect(seedList([4, 7])).toEqual([4, 7]);
    expect(() => seedList(0)).toThrow(/ablation seeds/);
    expect(() => seedList([-1])).toThrow(/ablation seeds/);
  });
});

describe('lens ablate flags', () => {
  it('parses a table, preset and seeds', () => {
    expect(parseAblateArgs(['queries', '--preset', 'tiny', '--seeds', '4', '--report'])).toMatchObject({ tables: ['queries'], preset: 'tiny', seeds: 4, report: true });
    expect(parseAblateArgs(['all']).tables).toEqual(['queries', 'connector', 'rewards']);
  });

  it.each([
    [['queries', '--seeds', '0'], /--seeds: expected an integer >= 1, got '0'/],
    [['queries', '--preset', 'huge'], /--preset: expected one of tiny, quick, paper, got 'huge'/],
    [['tables'], /table: expected one of queries, connector, rewards, all, got 'tables'/],
    [[], /expected one table/],
    [['queries', '--bogus'], /bogus/],
  ])('refuses %j naming the flag', (argv, msg) => {
    expect(() => parseAblateArgs(argv)).toThrow(UsageError);
    expect(() => parseAblateArgs(argv)).toThrow(msg);
  });
});

const root = mkdtempSync(join(tmpdir(), 'lens-ablate-'));
const data = join(root, 'data');
const stage0 = join(root, 'stage0');

describe('harness on tiny', () => {
  beforeAll(async () => {
    await initBackend({ quiet: true });
    await ensureBenchmark(data, { scale: 'tiny', seed: 0 }, { quiet: true });
    // A stand-in stage-0 run folder: a freshly built tiny model with the fitted tokenizer.
    const m = buildLens('tiny', { seed: 3 });
    saveStageModel(stage0, m, fitTokenizer(await loadTrainingSet(data, 64, { quiet: true })));
    m.dispose();
  });

  it('rebuilds the context module and connector fresh at the delta sizes and keeps every other weight', () => {
    const before = tf.memory().numTensors;
    const saved = loadStageModel(stage0).model;
    const a = loadStageModelRebuilt(stage0, { context: { numQueries: 4 } }, 1);
    const b = loadStageModelRebuilt(stage0, { context: { numQueries: 4 } }, 1);
    const c = loadStageModelRebuilt(stage0, { context: { numQueries: 4 } }, 2);
    try {
      expect(a.model.config.context.numQueries).toBe(4);
      expect(a.model.config.connector.numQueries).toBe(4);
      const sv = new Map(saved.namedParameters());
      const same = (x: tf.Tensor, y: tf.Tensor) => tf.tidy(() => tf.max(tf.abs(tf.sub(x, y))).dataSync()[0]) === 0;
      for (const [name, v] of a.model.namedParameters()) {
        const fresh = name.startsWith('context.') || name.startsWith('connector.');
        expect(a.kept.includes(name), name).toBe(!fresh);
        expect(a.rebuilt.includes(name), name).toBe(fresh);
        if (!fresh) expect(same(v, sv.get(name)!), name).toBe(true);
      }
      const q = (m: typeof saved) => m.namedParameters().find(([n]) => n.startsWith('context.'))![1];
      expect(q(a.model).shape).toContain(4);
      expect(q(saved).shape).toContain(8);
      expect(same(q(a.model), q(b.model))).toBe(true); // fresh init is a function of the seed
      expect(same(q(a.model), q(c.model))).toBe(false);
      // {} keeps the sizes but still starts the connector fresh from the seed
      const d = loadStageModelRebuilt(stage0, {}, 5);
      const conn = (m: typeof saved) => new Map(m.namedParameters().filter(([n]) => n.startsWith('connector.')));
      const dc = conn(d.model);
      expect([...dc.keys()]).toEqual([...conn(saved).keys()]);
      expect([...dc].some(([n, v]) => v.size > 1 && !same(v, conn(saved).get(n)!))).toBe(true);
      d.model.dispose();
    } finally {
      for (const m of [saved, a.model, b.model, c.model]) m.dispose();
    }
    expect(tf.memory().numTensors).toBe(before);
  });

  it('runs a one-seed connector table end to end, writes the Arrow file, and a rerun skips finished cells', async () => {
    const out = join(root, 'tables');
    const opts = { table: 'connector' as const, preset: 'tiny' as const, seeds: 1, dataRoot: data, out, from: stage0, quiet: true, settings: { evalLimit: 2, align: { steps: 2 } } };
    const first = await runAblation(opts);
    expect(first.file).toBe(tableFile(out, 'connector'));
    const rows = readArrow(first.file);
    expect(rows.map((r) => [r.table, r.cell, r.seed, r.n])).toEqual([['connector', 'MLP', 0, 2], ['connector', 'ViT', 0, 2]]);
    expect(Object.keys(rows[0]!)).toEqual(['table', 'cell', 'delta', 'seed', 'ciou', 'giou', 'formatRate', 'boxAcc50', 'n', 'seconds', 'run']);
    for (const r of rows) {
      expect(r.ciou).toBeGreaterThanOrEqual(0);
      expect(r.ciou).toBeLessThanOrEqual(100);
      expect(existsSync(join(out, String(r.run), 'model.safetensors'))).toBe(true);
    }
    expect(JSON.parse(String(rows[0]!.delta))).toEqual({ connector: { kind: 'mlp' } });
    expect(String(rows[0]!.run)).toMatch(/^runs\/align-M8-mlp-[0-9a-f]{8}-s0$/);
    const rec = readFileSync(join(out, String(rows[1]!.run), 'run.json'), 'utf8');
    const again = await runAblation(opts);
    expect(again.rows).toEqual(readAblationTable(out, 'connector'));
    expect(readFileSync(join(out, String(rows[1]!.run), 'run.json'), 'utf8')).toBe(rec); // not retrained
    expect(again.rows.map((r) => r.seconds)).toEqual(rows.map((r) => r.seconds));
    expect(again.summary.map((s) => [s.cell, s.n, s.paper])).toEqual([['MLP', 1, 72.8], ['ViT', 1, 87.8]]);
    const md = ablationReport('connector', out, 'tiny');
    expect(md).toContain('Table 4');
    expect(md).toContain(`| ViT | ${Number(rows[1]!.ciou).toFixed(1)} ± 0.0 |`);

    // The folder is tied to that stage 0: a missing cell is not trained from another one.
    expect(JSON.parse(readFileSync(join(out, STAGE0_FILE), 'utf8'))).toEqual(stage0Identity(stage0));
    expect(md).toContain(`Stage 0: the model file of SHA-256 ${stage0Identity(stage0).model}…`);
    const other = join(root, 'stage0-other');
    const m = buildLens('tiny', { seed: 4 });
    const saved = loadStageModel(stage0);
    saveStageModel(other, m, saved.tokenizer);
    for (const x of [m, saved.model]) x.dispose();
    expect(stage0Identity(other).model).not.toBe(stage0Identity(stage0).model);
    const table = readFileSync(first.file);
    await expect(runAblation({ ...opts, seeds: 2, from: other })).rejects.toThrow(/stage0\.json: .* hashes [0-9a-f]{16}, but .* hashes [0-9a-f]{16}; training the missing cells from it would mix two stage 0s/);
    expect(readFileSync(first.file).equals(table)).toBe(true);
    writeFileSync(join(out, STAGE0_FILE), '{"model": 3}');
    expect(() => ablationReport('connector', out, 'tiny')).toThrow(/stage0\.json: 'model' = 3; expected 16 hex digits/);
  }, 60_000);
});

describe('README ablation tables', () => {
  it('match the committed quick Arrow files (when present)', () => {
    const out = join(projectRoot(), 'results', 'ablations', 'quick');
    const readme = readFileSync(join(projectRoot(), 'README.md'), 'utf8');
    for (const t of ['queries', 'connector', 'rewards'] as const) {
      if (!existsSync(tableFile(out, t))) continue;
      expect(readme, t).toContain(ablationReport(t, out, 'quick'));
    }
  });
});

describe('committed quick tables', () => {
  it('are complete under the run names planned today, so nothing is retrained (a new stage setting must not rename the runs)', async () => {
    const committed = join(projectRoot(), 'results', 'ablations', 'quick');
    const out = mkdtempSync(join(tmpdir(), 'lens-ablate-names-'));
    for (const t of ['queries', 'connector', 'rewards'] as const) {
      expect(existsSync(tableFile(committed, t)), `${tableFile(committed, t)} is committed`).toBe(true);
      copyFileSync(tableFile(committed, t), tableFile(out, t));
      const before = readAblationTable(out, t);
      // a cell whose run name is not in the file would need stage 0: this folder has none
      const res = await runAblation({ table: t, preset: 'quick', seeds: [...new Set(before.map((r) => r.seed))], dataRoot: join(out, 'no-data'), out, from: join(out, 'no-stage0'), quiet: true });
      expect(res.rows, t).toEqual(before);
    }
  });
});
