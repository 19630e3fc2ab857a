import { describe, expect, it } from 'vitest';
import { countsToString, decodeRle, encodeRle, maskBbox, maskToCounts, rleArea, stringToCounts } from '../../src/data/formats/rle';
import { Rng } from '../../src/random';

// Expected strings are derived by hand from pycocotools maskApi.c (rleEncode +
// rleToString); pycocotools itself cannot be installed here (no PyPI).
describe('COCO RLE', () => {
  it('encodes a 3x3 vertical bar (column-major runs [3,2,4] -> "324")', () => {
    // row-major: 0 1 0 / 0 1 0 / 0 0 0 ; column-major sequence 000 110 000
    const m = Uint8Array.from([0, 1, 0, 0, 1, 0, 0, 0, 0]);
    expect(maskToCounts(m, 3, 3)).toEqual([3, 2, 4]);
    expect(encodeRle(m, 3, 3)).toEqual({ size: [3, 3], counts: '324' });
  });

  it('starts with an empty zero run and stores deltas from the 4th count on ("02100")', () => {
    // row-major 2x3: 1 0 1 / 1 1 0 ; column-major 11 01 10 -> runs [0,2,1,2,1]
    // counts[3]=2 is stored as 2-counts[1]=0, counts[4]=1 as 1-counts[2]=0
    const m = Uint8Array.from([1, 0, 1, 1, 1, 0]);
    expect(maskToCounts(m, 2, 3)).toEqual([0, 2, 1, 2, 1]);
    expect(encodeRle(m, 2, 3).counts).toBe('02100');
  });

  it('uses continuation groups and a sign bit ([100] -> "T3", [0,40,1,5] -> "0X11mN")', () => {
    // 100 = 4 + 3*32: group 4|0x20 -> 'T', then 3 -> '3'
    expect(countsToString([100])).toBe('T3');
    // 40 = 8 + 1*32 -> 'X','1'; 5-40 = -35 = 29 + (-2)*32: 29|0x20 -> 'm', -2&31=30 -> 'N'
    expect(countsToString([0, 40, 1, 5])).toBe('0X11mN');
    expect(stringToCounts('0X11mN', 't')).toEqual([0, 40, 1, 5]);
    const m = decodeRle({ size: [46, 1], counts: '0X11mN' }, 't');
    expect(Array.from(m.subarray(0, 40)).every((v) => v === 1)).toBe(true);
    expect(m[40]).toBe(0);
    expect(Array.from(m.subarray(41)).every((v) => v === 1)).toBe(true);
  });

  it('decodes the known vectors back to row-major masks', () => {
    expect(Array.from(decodeRle({ size: [3, 3], counts: '324' }, 't'))).toEqual([0, 1, 0, 0, 1, 0, 0, 0, 0]);
    expect(Array.from(decodeRle({ size: [2, 3], counts: '02100' }, 't'))).toEqual([1, 0, 1, 1, 1, 0]);
    expect(Array.from(decodeRle({ size: [2, 3], counts: [0, 2, 1, 2, 1] }, 't'))).toEqual([1, 0, 1, 1, 1, 0]);
  });

  it('round-trips random masks of several sizes, including empty and full', () => {
    const rng = new Rng(7);
    for (const [h, w, p] of [[1, 1, 0.5], [5, 7, 0.3], [17, 33, 0.5], [64, 48, 0.9], [40, 40, 0], [9, 11, 1]] as const) {
      const m = new Uint8Array(h * w);
      for (let i = 0; i < m.length; i++) m[i] = rng.next() < p ? 1 : 0;
      const rle = encodeRle(m, h, w);
      expect(rle.size).toEqual([h, w]);
      expect(decodeRle(rle, 't')).toEqual(m);
      expect(rleArea(rle, 't')).toBe(m.reduce((a, b) => a + b, 0));
    }
  });

  it('round-trips long runs (multi-group values, large negative deltas)', () => {
    const h = 300;
    const w = 200;
    const m = new Uint8Array(h * w);
    for (let y = 10; y < 290; y++) for (let x = 50; x < 51; x++) m[y * w + x] = 1; // thin column: huge 0 runs, short 1 runs
    for (let y = 0; y < 3; y++) for (let x = 100; x < 200; x++) m[y * w + x] = 1;
    expect(Buffer.from(decodeRle(encodeRle(m, h, w), 't')).equals(Buffer.from(m))).toBe(true);
  });

  it('rejects RLE that does not decode to h*w, bad characters, truncation and bad size', () => {
    expect(() => decodeRle({ size: [3, 4], counts: '324' }, 'pred.json[2].segmentation')).toThrow(
      /pred\.json\[2\]\.segmentation: RLE counts cover 9 pixels, expected size 3x4 = 12/,
    );
    expect(() => decodeRle({ size: [3, 3], counts: '32 4' }, 'a.json')).toThrow(/a\.json\.counts: RLE counts has character " "/);
    expect(() => decodeRle({ size: [10, 10], counts: 'T' }, 'a.json')).toThrow(/ends inside a value/);
    expect(() => decodeRle({ size: [3] as unknown as [number, number], counts: '324' }, 'a.json')).toThrow(/a\.json\.size: expected \[height, width\]/);
    expect(() => encodeRle(new Uint8Array(5), 2, 3)).toThrow(/expected height\*width = 2\*3 = 6/);
  });

  it('maskBbox gives the tight COCO xywh box, ignoring 255, null when empty', () => {
    const m = new Uint8Array(4 * 5);
    m[1 * 5 + 2] = 1;
    m[2 * 5 + 3] = 1;
    m[3 * 5 + 0] = 255;
    expect(maskBbox(m, 4, 5)).toEqual([2, 1, 2, 2]);
    expect(maskBbox(new Uint8Array(6), 2, 3)).toBeNull();
  });
});
