import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { loadSplit } from '../../src/data/index';
import { pairedCiouDifference, pairedLine, runSentenceCounts, type SentenceCounts } from '../../src/eval/paired';
import { predictionEntry } from '../../src/eval/predictions';
import { Rng } from '../../src/random';

const FIX = resolve('test/fixtures/lisa-mini');
const tmp = mkdtempSync(join(tmpdir(), 'lens-paired-'));
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

const counts = (split: string, i: number[], u: number[]): SentenceCounts => ({ split, ids: i.map((_, k) => `${split}/${k}`), i, u });

describe('pairedCiouDifference', () => {
  it('is the mean over splits of cIoU b - a, in points (hand-computed)', () => {
    // split x: a 3/6 = 0.5, b 4/6; split y: a 3/4, b 1/4 -> (16.67 - 50) / 2
    const a = [counts('x', [1, 2], [2, 4]), counts('y', [3], [4])];
    const b = [counts('x', [2, 2], [2, 4]), counts('y', [1], [4])];
    const d = pairedCiouDifference(a, b, { resamples: 50 });
    expect(d.difference).toBeCloseTo((100 * (4 / 6 - 0.5) + 100 * (0.25 - 0.75)) / 2, 9);
    expect(d).toMatchObject({ splits: 2, sentences: 3, resamples: 50, level: 0.95 });
    // split y has one sentence: every draw is it; split x's draws give b - a of 0, +16.67 or +25
    expect(d.lo).toBeGreaterThanOrEqual((0 - 50) / 2 - 1e-9);
    expect(d.hi).toBeLessThanOrEqual((100 - 50) / 2 + 1e-9);
  });

  it('gives 0 .. 0 for a run against itself, and an interval that excludes 0 when b is better on every sentence', () => {
    const rng = new Rng(3);
    const u = Array.from({ length: 150 }, () => 100 + rng.int(900));
    const ia = u.map((x) => Math.floor(x * rng.uniform(0, 0.6)));
    const a = [counts('s', ia, u)];
    expect(pairedCiouDifference(a, a)).toMatchObject({ difference: 0, lo: 0, hi: 0 });
    const better = [counts('s', ia.map((x, k) => Math.min(u[k]!, x + 10 + rng.int(40))), u)];
    const d = pairedCiouDifference(a, better);
    expect(d.lo).toBeGreaterThan(0);
    expect(d.lo).toBeLessThan(d.difference);
    expect(d.hi).toBeGreaterThan(d.difference);
  });

  it('covers 0 when b only reshuffles a’s errors, and is the same for the same seed', () => {
    const rng = new Rng(5);
    const u = Array.from({ length: 200 }, () => 500);
    const ia = u.map(() => rng.int(500));
    const ib = ia.map((x) => Math.max(0, Math.min(500, x + (rng.bernoulli(0.5) ? 60 : -60))));
    const d = pairedCiouDifference([counts('s', ia, u)], [counts('s', ib, u)], { seed: 1 });
    expect(d.lo).toBeLessThan(0);
    expect(d.hi).toBeGreaterThan(0);
    expect(pairedCiouDifference([counts('s', ia, u)], [counts('s', ib, u)], { seed: 1 })).toEqual(d);
    const narrow = pairedCiouDifference([counts('s', ia, u)], [counts('s', ib, u)], { seed: 1, level: 0.5 });
    expect(narrow.lo).toBeGreaterThan(d.lo);
    expect(narrow.hi).toBeLessThan(d.hi);
  });

  it('refuses runs that did not answer the same sentences, naming the split and sentence', () => {
    const a = [counts('x', [1, 2], [2, 4])];
    expect(() => pairedCiouDifference(a, [counts('z', [1, 2], [2, 4])])).toThrow(/split 0 is x in one run and z in the other/);
    expect(() => pairedCiouDifference(a, [counts('x', [1], [2])])).toThrow(/x has 2 sentences in one run and 1 in the other/);
    expect(() => pairedCiouDifference(a, [{ ...a[0]!, ids: ['x/0', 'x/9'] }])).toThrow(/x sentence 1 is x\/1 in one run and x\/9 in the other/);
    expect(() => pairedCiouDifference(a, [...a, ...a])).toThrow(/1 splits against 2/);
    expect(() => pairedCiouDifference([], [])).toThrow(/no splits/);
    expect(() => pairedCiouDifference(a, a, { level: 1 })).toThrow(/level must be in \(0, 1\), got 1/);
  });

  it('reads as one line', () => {
    const line = pairedLine('stage 2 - stage 1', { difference: -0.634, lo: -1.66, hi: 0.331, level: 0.95, resamples: 2000, splits: 10, sentences: 1500 });
    expect(line).toBe('stage 2 - stage 1, mean cIoU over 10 splits: -0.63 points (95% paired bootstrap interval -1.66 .. +0.33; 1500 sentences)');
    expect(pairedLine('b - a', { difference: -0.001, lo: -0.004, hi: 0.002, level: 0.9, resamples: 10, splits: 1, sentences: 6 })).toBe(
      'b - a, mean cIoU over 1 splits: +0.00 points (90% paired bootstrap interval +0.00 .. +0.00; 6 sentences)',
    );
  });
});

describe('runSentenceCounts', () => {
  it("reads a run's predictions: the ground truth counts i = u, an empty mask i = 0; sorted by sample id", async () => {
    const ds = await loadSplit(FIX, 'refcoco', 'val');
    const write = (run: string, mask: (m: Uint8Array) => Uint8Array) => {
      mkdirSync(join(tmp, run, 'predictions'), { recursive: true });
      const entries = ds.samples.map((s) => predictionEntry(s, mask(s.mask()))).reverse();
      writeFileSync(join(tmp, run, 'predictions', 'refcoco_val.json'), JSON.stringify(entries));
    };
    write('truth', (m) => Uint8Array.from(m, (v) => (v === 1 ? 1 : 0)));
    write('empty', (m) => new Uint8Array(m.length));
    const [truth] = await runSentenceCounts(join(tmp, 'truth'), FIX, ['refcoco/val']);
    const [empty] = await runSentenceCounts(join(tmp, 'empty'), FIX, ['refcoco/val']);
    expect(truth!.ids).toEqual(ds.samples.map((s) => s.id).sort());
    expect(truth!.i).toEqual(truth!.u);
    expect(truth!.i.some((x) => x > 0)).toBe(true);
    expect(empty!.i.every((x) => x === 0)).toBe(true);
    const d = pairedCiouDifference([truth!], [empty!]);
    for (const v of [d.difference, d.lo, d.hi]) expect(v).toBeCloseTo(-100, 6);
  });

  it('names the missing file and how to make it, and a sample the split lacks', async () => {
    await expect(runSentenceCounts(join(tmp, 'none'), FIX, ['refcoco/val'])).rejects.toThrow(/none\/predictions\/refcoco_val.json: no predictions for refcoco\/val; run 'npx lens evaluate --run .*none' first/);
    const ds = await loadSplit(FIX, 'refcoco', 'val');
    const s = ds.samples[0]!;
    mkdirSync(join(tmp, 'stray', 'predictions'), { recursive: true });
    writeFileSync(join(tmp, 'stray', 'predictions', 'refcoco_val.json'), JSON.stringify([{ ...predictionEntry(s, new Uint8Array(s.height * s.width)), sample_id: 'refcoco/val/999/0' }]));
    await expect(runSentenceCounts(join(tmp, 'stray'), FIX, ['refcoco/val'])).rejects.toThrow(/refcoco_val.json\[0\]: no sample refcoco\/val\/999\/0 in refcoco\/val/);
  });
});
