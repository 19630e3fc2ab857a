import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { afterAll, afterEach, describe, expect, it, vi } from 'vitest';
import { run } from '../../src/cli/evaluate';
import { main } from '../../src/cli/main';
import { encodeRle } from '../../src/data/formats/rle';
import { loadSplit } from '../../src/data/index';
import { predictionEntry } from '../../src/eval/predictions';

const FIX = resolve('test/fixtures/lisa-mini');
const tmp = mkdtempSync(join(tmpdir(), 'lens-evaluate-'));
afterAll(() => rmSync(tmp, { recursive: true, force: true }));
afterEach(() => vi.restoreAllMocks());

let n = 0;
function predFile(value: unknown): string {
  const p = join(tmp, `pred${n++}.json`);
  writeFileSync(p, typeof value === 'string' ? value : JSON.stringify(value));
  return p;
}

/** Runs `lens evaluate` through the dispatcher, capturing stdout / stderr. */
async function evaluate(args: string[]): Promise<{ code: number; out: string; err: string }> {
  let out = '';
  let err = '';
  vi.spyOn(process.stdout, 'write').mockImplementation((s: string | Uint8Array) => ((out += String(s)), true));
  vi.spyOn(console, 'error').mockImplementation((...a: unknown[]) => void (err += `${a.join(' ')}\n`));
  vi.spyOn(console, 'log').mockImplementation((...a: unknown[]) => void (out += `${a.join(' ')}\n`));
  const code = await main(['evaluate', ...args]);
  vi.restoreAllMocks();
  return { code, out, err };
}

const mask8 = (pixels: Array<[number, number]>): Uint8Array => {
  const m = new Uint8Array(64);
  for (const [x, y] of pixels) m[y * 8 + x] = 1;
  return m;
};

describe('lens evaluate', () => {
  it('perfect predictions by ref_id (all sentences) score 1 and print one JSON object', async () => {
    const ds = await loadSplit(FIX, 'refcoco', 'val');
    const gt = ds.samples[0]!.mask();
    const pred = predFile([{ ref_id: 0, segmentation: encodeRle(gt, 8, 8), bbox: [1, 1, 3, 4] }]);
    const r = await evaluate(['--data', FIX, '--split', 'refcoco/val', '--pred', pred]);
    expect(r.code).toBe(0);
    expect(r.out.trim().split('\n')).toHaveLength(1);
    const m = JSON.parse(r.out);
    expect(Object.keys(m).sort()).toEqual(['box_acc50', 'ciou', 'giou', 'n']);
    expect(m.n).toBe(2);
    expect(m.giou).toBeCloseTo(12 / (12 + 1e-5), 12);
    expect(m.ciou).toBeCloseTo(1, 9);
    expect(m.box_acc50).toBe(1);
  });

  it('a missing prediction counts as an empty mask; gIoU and cIoU by hand', async () => {
    // sentence 0: predict 6 of the 12 target pixels (I=6, U=12); sentence 1: nothing (I=0, U=12)
    const half = mask8([[1, 1], [2, 1], [3, 1], [1, 2], [2, 2], [3, 2]]);
    const pred = predFile([{ ref_id: 0, sent_idx: 0, segmentation: encodeRle(half, 8, 8), format_valid: true }]);
    const r = await evaluate(['--data', FIX, '--split', 'refcoco/val', '--pred', pred]);
    const m = JSON.parse(r.out);
    expect(m.n).toBe(2);
    expect(m.giou).toBeCloseTo(6 / (12 + 1e-5) / 2, 12);
    expect(m.ciou).toBeCloseTo(6 / 24, 9);
    expect(m.format_rate).toBe(1);
    expect(m.box_acc50).toBeUndefined();
    expect(r.err).toMatch(/1 of 2 samples have no prediction/);
  });

  it('scores ReasonSeg with ignore pixels (sample_id keys, string ref ids)', async () => {
    // a: target 25 px minus 4 ignored = 21; predict the full 5x5 square -> I = 21, U = 21
    const sq: Array<[number, number]> = [];
    for (let y = 1; y <= 5; y++) for (let x = 1; x <= 5; x++) sq.push([x, y]);
    const pred = predFile([{ sample_id: 'reasonseg/val/a/0', segmentation: encodeRle(mask8(sq), 8, 8) }]);
    const m = JSON.parse((await evaluate(['--data', FIX, '--split', 'reasonseg/val', '--pred', pred])).out);
    // b is missing: target 16 + 9 = 25 px, I = 0
    expect(m.n).toBe(2);
    expect(m.giou).toBeCloseTo((21 / (21 + 1e-5) + 0) / 2, 12);
    expect(m.ciou).toBeCloseTo(21 / (21 + 25), 9);
  });

  it('scores GroundingSuite-Eval from a jsonl root', async () => {
    const pred = predFile([{ ref_id: 1, segmentation: { size: [8, 8], counts: 'l14' }, bbox: [7, 4, 1, 4] }]);
    const m = JSON.parse((await evaluate(['--data', FIX, '--split', 'groundingsuite/eval', '--pred', pred])).out);
    expect(m).toEqual({ giou: expect.closeTo(4 / (4 + 1e-5) / 2, 12), ciou: expect.closeTo(0.5, 9), n: 2, box_acc50: 0.5 });
  });

  it('unknown family or split: usage error listing the valid ones (exit 2)', async () => {
    const pred = predFile([]);
    const r = await evaluate(['--data', FIX, '--split', 'refcoco/test', '--pred', pred]);
    expect(r.code).toBe(2);
    expect(r.err).toMatch(/--split: unknown split 'test' for refcoco: expected one of train, val, testA, testB/);
    const r2 = await evaluate(['--data', FIX, '--split', 'coco/val', '--pred', pred]);
    expect(r2.err).toMatch(/unknown dataset family 'coco': expected one of refcoco, refcoco\+, refcocog, reasonseg, groundingsuite/);
    const r3 = await evaluate(['--data', FIX, '--pred', pred]);
    expect([r3.code, r3.err]).toEqual([2, expect.stringMatching(/--split is required/)]);
  });

  it('wrong-size prediction mask: error naming the pred file and ref id (exit 1)', async () => {
    const pred = predFile([{ ref_id: 0, segmentation: encodeRle(new Uint8Array(63), 7, 9) }]);
    const r = await evaluate(['--data', FIX, '--split', 'refcoco/val', '--pred', pred]);
    expect(r.code).toBe(1);
    expect(r.err).toContain(`${pred}[0] (ref_id 0): mask size [7, 9] but the image of refcoco/val/0/0 is [8, 8]`);
  });

  it('bad predictions files: malformed JSON, RLE not covering h*w, unknown ref, duplicates', async () => {
    const bad = async (value: unknown): Promise<string> => (await evaluate(['--data', FIX, '--split', 'refcoco/val', '--pred', predFile(value)])).err;
    expect(await bad('[{"ref_id": 0,')).toMatch(/pred\d+\.json: malformed JSON/);
    expect(await bad({ ref_id: 0 })).toMatch(/expected a JSON list of predictions/);
    expect(await bad([{ ref_id: 0, segmentation: { size: [8, 8], counts: '324' } }])).toMatch(/pred\d+\.json\[0\]\.segmentation: RLE counts cover 9 pixels, expected size 8x8 = 64/);
    expect(await bad([{ ref_id: 5, segmentation: { size: [8, 8], counts: 'T1' } }])).toMatch(/\[0\] \(ref_id 5\): no such sample in refcoco\/val/);
    expect(await bad([
      { ref_id: 0, segmentation: { size: [8, 8], counts: 'T1' } },
      { ref_id: 0, sent_idx: 1, segmentation: { size: [8, 8], counts: 'T1' } },
    ])).toMatch(/\[1\] \(ref_id 0 sent_idx 1\): sample refcoco\/val\/0\/1 already has a prediction \(.*\[0\]\)/);
    expect(await bad([{ segmentation: { size: [8, 8], counts: 'T1' } }])).toMatch(/\[0\]: expected "ref_id" or "sample_id"/);
  });

  it('predictionEntry writes entries that lens evaluate reads back (ground truth scores 1)', async () => {
    const ds = await loadSplit(FIX, 'refcoco', 'testA');
    const s = ds.samples[0]!;
    const entry = predictionEntry(s, s.mask(), { bbox: s.bbox, formatValid: false });
    expect(entry.sample_id).toBe('refcoco/testA/1/0');
    const m = JSON.parse((await evaluate(['--data', FIX, '--split', 'refcoco/testA', '--pred', predFile([entry])])).out);
    expect(m).toEqual({ giou: expect.closeTo(4 / (4 + 1e-5), 12), ciou: expect.closeTo(1, 9), n: 1, box_acc50: 1, format_rate: 0 });
    expect(() => predictionEntry(s, new Uint8Array(3))).toThrow('predictionEntry(refcoco/testA/1/0): mask has 3 pixels, the image is 8x8');
  });

  it('--help prints the usage and exits 0', async () => {
    let out = '';
    vi.spyOn(console, 'log').mockImplementation((s: unknown) => void (out += String(s)));
    expect(await run(['--help'])).toBe(0);
    expect(out).toMatch(/usage: lens evaluate --data DIR --split FAMILY\/SPLIT --pred FILE/);
  });
});
