import { mkdtempSync } from 'node:fs';
import { cpSync } from 'node:fs';
import { rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { loadSplit, type InstanceRecord, type RefDataset, type RefSample } from '../../src/data';
import { ensureBenchmark } from '../../src/data/generate';
import { Rng } from '../../src/random';
import { formatTrivialTable, instanceSource, largestInstance, randomInstance, scoreTrivial, scoreTrivialSplits, trivialMask } from '../../src/train/trivial';

/** 4x4 image: instance A = the left 6 pixels (rows 0-2, cols 0-1), B = 2 pixels at the right. */
const W = 4;
const maskOf = (px: number[]) => {
  const m = new Uint8Array(W * W);
  for (const p of px) m[p] = 1;
  return m;
};
const A = maskOf([0, 1, 4, 5, 8, 9]);
const B = maskOf([3, 7]);
const inst = (annId: number, m: Uint8Array): InstanceRecord => ({ annId, categoryId: 1, bbox: [0, 0, 1, 1], mask: () => m });

function sample(id: string, imageId: number, target: Uint8Array): RefSample {
  return { id, family: 'refcoco', split: 'val', refId: id, sentIdx: 0, imageId, imagePath: '/dev/null', height: W, width: W, sentence: 's', bbox: [0, 0, 1, 1], mask: () => target };
}

/** Image 1 holds A and B; image 2 holds only B; image 3 has no instance. */
const ds: RefDataset = {
  family: 'refcoco',
  split: 'val',
  root: '/nowhere',
  samples: [sample('t/a', 1, A), sample('t/b', 1, B), sample('t/c', 2, B), sample('t/d', 3, B)],
  instances: (id) => (id === 1 ? [inst(10, A), inst(11, B)] : id === 2 ? [inst(12, B)] : []),
};

describe('trivial predictors on a hand-made split', () => {
  it('largest object: the instance with most pixels, scored with the LISA metrics', () => {
    expect(largestInstance(ds.instances(1))!.annId).toBe(10);
    expect(largestInstance([])).toBeNull();
    const r = scoreTrivial(ds, 'largest');
    // a: A vs A -> I 6, U 6; b: A vs B -> I 0, U 8; c: B vs B -> I 2, U 2; d: empty vs B -> I 0, U 2
    expect(r.n).toBe(4);
    expect(r.available).toBe(true);
    expect(r.giou).toBeCloseTo((6 / (6 + 1e-5) + 0 + 2 / (2 + 1e-5) + 0) / 4, 9);
    expect(r.ciou).toBeCloseTo(8 / 18, 9);
  });

  it('random object: a seeded pick per sample id, independent of order and subset', () => {
    const seed = 7;
    const expected = ds.samples.map((s) => {
      const list = ds.instances(s.imageId);
      return list.length ? list[new Rng(seed).fork(s.id).int(list.length)]!.mask() : new Uint8Array(W * W);
    });
    ds.samples.forEach((s, i) => expect(Array.from(trivialMask('random', s, ds.instances(s.imageId), seed))).toEqual(Array.from(expected[i]!)));
    const rng = new Rng(3);
    const picks = new Set(Array.from({ length: 50 }, () => randomInstance(ds.instances(1), rng)!.annId));
    expect([...picks].sort()).toEqual([10, 11]);
    // Same score twice, and the single-instance image always gets its only instance.
    expect(scoreTrivial(ds, 'random', { seed })).toEqual(scoreTrivial(ds, 'random', { seed }));
    expect(Array.from(trivialMask('random', ds.samples[2]!, ds.instances(2), seed))).toEqual(Array.from(B));
  });

  it('maxPerSplit scores the evenly spaced subset', () => {
    // 4 samples, max 2 -> indices 0 and 2: a (IoU 1) and c (IoU 1)
    const r = scoreTrivial(ds, 'largest', { maxPerSplit: 2 });
    expect(r.n).toBe(2);
    expect(r.ciou).toBeCloseTo(1, 9);
  });
});

describe('trivial predictors on generated data', () => {
  const root = mkdtempSync(join(tmpdir(), 'lens-trivial-'));
  const data = join(root, 'data');
  beforeAll(async () => {
    await ensureBenchmark(data, { scale: 'tiny', seed: 0 }, { quiet: true });
  });

  it('regenerates ReasonSeg instances from the manifest: one of them is exactly the target', async () => {
    const rs = await loadSplit(data, 'reasonseg', 'val');
    const source = instanceSource(rs)!;
    expect(source).not.toBeNull();
    for (const s of rs.samples) {
      const target = s.mask();
      const list = source(s.imageId);
      expect(list.length).toBeGreaterThan(1);
      const exact = list.filter((i) => i.mask().every((v, p) => (v ? 1 : 0) === (target[p] === 1 ? 1 : 0)));
      expect(exact.length).toBe(1);
    }
  });

  it('scores every split; real ReasonSeg (no manifest) is reported N/A, not 0', async () => {
    const rows = await scoreTrivialSplits(data, ['refcoco/val', 'reasonseg/val']);
    expect(rows.map((r) => `${r.split}:${r.predictor}`)).toEqual(['refcoco/val:largest', 'refcoco/val:random', 'reasonseg/val:largest', 'reasonseg/val:random']);
    for (const r of rows) {
      expect(r.available).toBe(true);
      expect(r.n).toBeGreaterThan(0);
      expect(r.ciou).toBeGreaterThanOrEqual(0);
      expect(r.ciou).toBeLessThan(1);
    }
    const bare = join(root, 'bare');
    cpSync(join(data, 'reason_seg'), join(bare, 'reason_seg'), { recursive: true });
    const real = await loadSplit(bare, 'reasonseg', 'val');
    const na = scoreTrivial(real, 'largest');
    expect(na).toMatchObject({ available: false, n: 0 });
    expect(formatTrivialTable([rows[0]!, na]).split('\n')[2]).toMatch(/^reasonseg\/val\s+largest\s+N\/A\s+N\/A\s+0$/);
    rmSync(bare, { recursive: true, force: true });
  });
});
