import { mkdtempSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { readImageRgb, resizeRgb, writePng } from '../../src/data/formats/image';

const dir = mkdtempSync(join(tmpdir(), 'lens-image-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

describe('image I/O', () => {
  it('writes a PNG that decodes back to the exact RGB bytes, leaving no temp file', async () => {
    const h = 3;
    const w = 4;
    const rgb = Uint8Array.from({ length: h * w * 3 }, (_, i) => (i * 37) % 256);
    const path = join(dir, 'sub', 'a.png');
    await writePng(path, rgb, h, w);
    const back = await readImageRgb(path, 'test');
    expect(back.height).toBe(h);
    expect(back.width).toBe(w);
    expect(Array.from(back.data)).toEqual(Array.from(rgb));
    expect(readdirSync(join(dir, 'sub'))).toEqual(['a.png']);
  });

  it('rejects a buffer of the wrong size and names missing / undecodable files', async () => {
    await expect(writePng(join(dir, 'b.png'), new Uint8Array(5), 2, 2)).rejects.toThrow(/expected height\*width\*3 = 12/);
    await expect(readImageRgb(join(dir, 'nope.png'), 'instances.json images[0].file_name')).rejects.toThrow(
      /instances\.json images\[0\]\.file_name: image file .*nope\.png does not exist/,
    );
    writeFileSync(join(dir, 'junk.png'), 'not a png');
    await expect(readImageRgb(join(dir, 'junk.png'), 'x')).rejects.toThrow(/x: cannot decode image/);
  });

  it('resizes: a constant image stays constant; nearest 2x upsampling repeats pixels', async () => {
    const c = new Uint8Array(4 * 4 * 3).fill(200);
    const r = await resizeRgb(c, 4, 4, 8, 6);
    expect(r.length).toBe(8 * 6 * 3);
    expect(r.every((v) => v === 200)).toBe(true);
    const two = Uint8Array.from([10, 20, 30, 40, 50, 60]); // 1x2
    const up = await resizeRgb(two, 1, 2, 2, 4, 'nearest');
    expect(Array.from(up.subarray(0, 12))).toEqual([10, 20, 30, 10, 20, 30, 40, 50, 60, 40, 50, 60]);
  });
});
