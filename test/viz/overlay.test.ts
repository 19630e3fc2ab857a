import sharp from 'sharp';
import { describe, expect, it } from 'vitest';
import { montagePng, overlayPng, overlayRgb, parseColor } from '../../src/viz/overlay';
import { crc32, encodePngSync } from '../../src/viz/png';

const grey = (h: number, w: number, v = 100) => ({ data: new Uint8Array(h * w * 3).fill(v), height: h, width: w });
const px = (img: { data: Uint8Array; width: number }, y: number, x: number) => [...img.data.subarray((y * img.width + x) * 3, (y * img.width + x) * 3 + 3)];

describe('overlayRgb', () => {
  it('blends the mask colour with alpha, leaves pixels outside the mask alone', () => {
    const o = overlayRgb(grey(2, 2), { masks: [{ mask: new Uint8Array([1, 0, 0, 0]), color: '#ff0000', alpha: 0.5, outline: 0 }], scale: 1 });
    expect(px(o, 0, 0)).toEqual([178, 50, 50]); // round(0.5*100 + 0.5*255) = 178, 0.5*100 = 50
    expect(px(o, 0, 1)).toEqual([100, 100, 100]);
  });

  it('upscales by nearest neighbour and outlines the mask on the upscaled grid', () => {
    const mask = new Uint8Array([0, 0, 0, 0, 1, 0, 0, 0, 0]); // the centre pixel of 3x3
    const o = overlayRgb(grey(3, 3), { masks: [{ mask, color: [0, 255, 0], alpha: 0.5, outline: 1 }], scale: 4 });
    expect([o.height, o.width]).toEqual([12, 12]);
    expect(px(o, 4, 4)).toEqual([0, 255, 0]); // boundary of the 4x4 block: full colour
    expect(px(o, 5, 5)).toEqual([50, 178, 50]); // interior: blended
    expect(px(o, 3, 3)).toEqual([100, 100, 100]); // outside
    const thick = overlayRgb(grey(3, 3), { masks: [{ mask, color: [0, 255, 0], alpha: 0.5 }], scale: 6 }); // default outline 2
    expect(px(thick, 7, 8)).toEqual([0, 255, 0]); // 2nd pixel in from the top edge (row 6)
    expect(px(thick, 8, 8)).toEqual([50, 178, 50]); // 3rd: interior
  });

  it('hatches ignore pixels (255) grey instead of filling them', () => {
    const o = overlayRgb(grey(1, 1, 10), { masks: [{ mask: new Uint8Array([255]), color: '#ff0000' }], scale: 6 });
    expect(px(o, 0, 0)).toEqual([128, 128, 128]); // (x + y) % 6 < 2
    expect(px(o, 0, 3)).toEqual([10, 10, 10]);
  });

  it('draws a COCO xywh box at the scaled position, 2 px wide by default', () => {
    const o = overlayRgb(grey(6, 6), { boxes: [{ xywh: [1, 1, 4, 4], color: '#0000ff' }], scale: 2 });
    expect(px(o, 2, 2)).toEqual([0, 0, 255]); // top-left corner (1*2, 1*2)
    expect(px(o, 9, 9)).toEqual([0, 0, 255]); // bottom-right corner ((1+4)*2 - 1)
    expect(px(o, 3, 5)).toEqual([0, 0, 255]); // second row of the 2 px top edge
    expect(px(o, 4, 5)).toEqual([100, 100, 100]); // inside the box, untouched
    expect(px(o, 1, 1)).toEqual([100, 100, 100]); // outside
    expect(px(o, 10, 10)).toEqual([100, 100, 100]); // outside, past the bottom-right corner
  });

  it('picks a scale that makes the long side at least 256 px', () => {
    expect(overlayRgb(grey(64, 32)).height).toBe(256);
  });

  it('names the bad argument', () => {
    expect(() => overlayRgb(grey(2, 2), { masks: [{ mask: new Uint8Array(3), color: '#fff000' }] })).toThrow(/masks\[0\] has 3 values, expected height\*width = 4/);
    expect(() => overlayRgb(grey(2, 2), { masks: [{ mask: new Uint8Array(4), color: 'red' }] })).toThrow(/masks\[0\]\.color: expected '#rrggbb'/);
    expect(() => overlayRgb(grey(2, 2), { scale: 1.5 })).toThrow(/scale must be an integer/);
    expect(() => overlayRgb(grey(2, 2), { boxes: [{ xywh: [0, 0, -1, 1], color: '#000000' }] })).toThrow(/boxes\[0\]\.xywh/);
    expect(() => overlayRgb(grey(2, 2), { masks: [{ mask: new Uint8Array(4), color: '#000000', outline: -1 }] })).toThrow(/masks\[0\]\.outline must be an integer >= 0/);
    expect(parseColor([1, 2, 3])).toEqual([1, 2, 3]);
  });
});

describe('PNG output', () => {
  it('overlayPng decodes back to overlayRgb exactly', async () => {
    const img = grey(3, 5, 40);
    const opts = { masks: [{ mask: new Uint8Array(15).fill(1), color: '#00cc96' }], boxes: [{ xywh: [0, 0, 5, 3] as [number, number, number, number], color: '#FFA15A' }], scale: 3 };
    const { data, info } = await sharp(await overlayPng(img, opts)).raw().toBuffer({ resolveWithObject: true });
    const want = overlayRgb(img, opts);
    expect([info.height, info.width, info.channels]).toEqual([9, 15, 3]);
    expect(Buffer.compare(data, Buffer.from(want.data))).toBe(0);
  });

  it('encodePngSync writes a PNG that decodes to its pixels; crc32 matches the known value', async () => {
    expect(crc32(new TextEncoder().encode('IEND'))).toBe(0xae426082);
    const rgb = new Uint8Array([255, 0, 0, 0, 255, 0, 0, 0, 255, 1, 2, 3]);
    const { data, info } = await sharp(encodePngSync(rgb, 2, 2)).raw().toBuffer({ resolveWithObject: true });
    expect([info.width, info.height]).toEqual([2, 2]);
    expect([...data]).toEqual([...rgb]);
    expect(() => encodePngSync(rgb, 2, 3)).toThrow(/expected height\*width\*3 = 18/);
  });

  it('montagePng lays panels out in rows with gaps', async () => {
    const p = await overlayPng(grey(2, 2), { scale: 1 });
    const meta = await sharp(await montagePng([p, p, p], { columns: 2, gap: 1 })).metadata();
    expect([meta.width, meta.height]).toEqual([5, 5]);
    await expect(montagePng([])).rejects.toThrow(/at least one panel/);
  });
});
