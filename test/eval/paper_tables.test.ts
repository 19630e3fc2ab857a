import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { loadPaperTables, orderingRows, paperMetric, paperRows, rankOrder } from '../../src/eval/paper_tables';

const dir = mkdtempSync(join(tmpdir(), 'lens-paper-'));
const file = join(dir, 'paper-tables.json');
// The shape of ../shared/reference/paper-tables.json, with a few of its values.
writeFileSync(file, JSON.stringify({
  source: 'test',
  table1_res_ciou: {
    columns: ['refcoco_val', 'refcoco_testA', 'refcoco+_testA', 'avg'],
    rows: { LISA: [74.1, 76.5, 67.4, 67.9], 'Seg-Zero-3B': [null, 79.3, 73.7, null], 'LENS-3B': [84.2, 85.3, 82.8, 81.2] },
  },
  table2_reasonseg_gs: {
    columns: ['reasonseg_val_giou', 'reasonseg_val_ciou', 'reasonseg_test_giou', 'reasonseg_test_ciou'],
    rows: { 'LISA-7B(ft)': [52.9, 54.0, 55.6, 56.9], 'Seg-Zero-3B': [58.2, 53.1, 56.1, 48.6], 'LENS-3B': [62.1, 64.9, 57.2, 58.0] },
  },
}));

describe('loadPaperTables', () => {
  it('maps our split names onto Table 1 (cIoU only) and Table 2', () => {
    const t = loadPaperTables(file);
    expect(paperMetric(t, 'LENS-3B', 'refcoco+/testA', 'ciou')).toBe(82.8);
    expect(paperMetric(t, 'LENS-3B', 'refcoco+/testA', 'giou')).toBeNull(); // Table 1 has no gIoU
    expect(paperMetric(t, 'Seg-Zero-3B', 'refcoco/val', 'ciou')).toBeNull(); // not reported
    expect(paperMetric(t, 'LISA-7B(ft)', 'reasonseg/test', 'giou')).toBe(55.6);
    expect(paperMetric(t, 'nobody', 'reasonseg/test', 'giou')).toBeNull();
  });

  it('gives one row per split with each method from its own table', () => {
    const [a, b] = paperRows(loadPaperTables(file), ['refcoco/testA', 'reasonseg/val']);
    expect(a).toMatchObject({ split: 'refcoco/testA', 'LISA cIoU': 76.5, 'Seg-Zero-3B cIoU': 79.3, 'LENS-3B cIoU': 85.3, 'LENS-3B gIoU': null });
    expect(b).toMatchObject({ split: 'reasonseg/val', 'LISA gIoU': 52.9, 'LISA cIoU': 54.0, 'LENS-3B cIoU': 64.9 });
  });

  it('says where it looked when the file is absent, and names a malformed row', () => {
    expect(() => loadPaperTables(join(dir, 'none.json'))).toThrow(/none\.json not found: .*\.\.\/shared\/reference\/paper-tables\.json/);
    const bad = join(dir, 'bad.json');
    writeFileSync(bad, JSON.stringify({ table1_res_ciou: { columns: ['a', 'b'], rows: { X: [1] } }, table2_reasonseg_gs: { columns: [], rows: {} } }));
    expect(() => loadPaperTables(bad)).toThrow('table1_res_ciou.rows["X"] must hold 2 numbers or nulls');
  });
});

describe('rankOrder', () => {
  it('orders best first, leaving out missing values, ties in given order', () => {
    expect(rankOrder({ a: 30, b: 50, c: null })).toEqual(['b', 'a']);
    expect(rankOrder({ x: 1, y: 1, z: 2 })).toEqual(['z', 'x', 'y']);
  });
});

describe('orderingRows', () => {
  it('ranks ours and the paper on the splits where the paper has all three, and says whether they agree', () => {
    const t = loadPaperTables(file);
    const summary = [
      { split: 'refcoco/val', 'lens-stage2_ciou': 30, lisa_ciou: 20, segzero_ciou: 10 }, // Seg-Zero-3B not reported: left out
      { split: 'refcoco/testA', 'lens-stage2_ciou': 30, lisa_ciou: 20, segzero_ciou: 25 },
      { split: 'reasonseg/val', 'lens-stage2_ciou': 10, lisa_ciou: 20, segzero_ciou: 5 },
    ];
    expect(orderingRows(summary, t)).toEqual([
      { split: 'refcoco/testA', ours: 'LENS > Seg-Zero > LISA', paper: 'LENS > Seg-Zero > LISA', same: true },
      { split: 'reasonseg/val', ours: 'LISA > LENS > Seg-Zero', paper: 'LENS > LISA > Seg-Zero', same: false },
    ]);
  });
});
