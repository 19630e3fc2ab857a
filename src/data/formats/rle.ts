/**
 * COCO run-length encoding, bit-compatible with pycocotools (`common/maskApi.c`:
 * rleEncode, rleDecode, rleToString, rleFrString).
 *
 * A COCO RLE lists alternating run lengths of 0s and 1s over the mask read in
 * COLUMN-major (Fortran) order, always starting with a (possibly empty) run of 0s.
 * The compressed string stores each count as LEB128-like groups of 5 bits (6th bit =
 * "more follows"), offset by 48 so it is printable ASCII '0'..'o'. From the fourth
 * count on (index i > 2, not i >= 2: a quirk of the C code kept for compatibility)
 * the value stored is the difference to the count two places before, so it may be
 * negative; the top data bit of the last group is its sign.
 *
 * Masks in this codebase are ROW-major Uint8Array height*width; the transposition
 * happens here and nowhere else.
 */
import type { CocoRle } from '../types';

/** Uncompressed COCO RLE (`counts` as a number list, as in COCO `iscrowd` annotations). */
export interface CocoRleUncompressed {
  size: [number, number];
  counts: number[];
}

/** Run lengths of a row-major 0/1 mask in COCO column-major order (first run = zeros). */
export function maskToCounts(mask: Uint8Array, height: number, width: number): number[] {
  if (mask.length !== height * width) {
    throw new Error(`encodeRle: mask has ${mask.length} values, expected height*width = ${height}*${width} = ${height * width}`);
  }
  const counts: number[] = [];
  let prev = 0;
  let run = 0;
  for (let x = 0; x < width; x++) {
    for (let y = 0; y < height; y++) {
      const v = mask[y * width + x] ? 1 : 0; // any non-zero value (e.g. 255) is foreground
      if (v !== prev) {
        counts.push(run);
        run = 0;
        prev = v;
      }
      run++;
    }
  }
  counts.push(run);
  return counts;
}

/** pycocotools `rleToString`: counts -> compressed string. */
export function countsToString(counts: readonly number[]): string {
  let s = '';
  for (let i = 0; i < counts.length; i++) {
    let x = counts[i]!;
    if (i > 2) x -= counts[i - 2]!;
    let more = true;
    while (more) {
      let c = ((x % 32) + 32) % 32; // x & 0x1f on a possibly negative number
      x = Math.floor(x / 32); // arithmetic shift right by 5
      more = c & 0x10 ? x !== -1 : x !== 0;
      if (more) c |= 0x20;
      s += String.fromCharCode(c + 48);
    }
  }
  return s;
}

/** pycocotools `rleFrString`: compressed string -> counts. `where` names the source for errors. */
export function stringToCounts(s: string, where: string): number[] {
  const counts: number[] = [];
  let p = 0;
  while (p < s.length) {
    let x = 0;
    let k = 0;
    let more = true;
    while (more) {
      if (p >= s.length) throw new Error(`${where}: RLE counts string ends inside a value (at character ${p})`);
      const c = s.charCodeAt(p) - 48;
      if (c < 0 || c > 63) {
        throw new Error(`${where}: RLE counts has character ${JSON.stringify(s[p])} at ${p}, expected ASCII '0'..'o'`);
      }
      x += (c & 0x1f) * 2 ** (5 * k);
      more = (c & 0x20) !== 0;
      p++;
      k++;
      if (!more && c & 0x10) x -= 2 ** (5 * k); // sign-extend the last group
    }
    if (counts.length > 2) x += counts[counts.length - 2]!;
    if (x < 0) throw new Error(`${where}: RLE counts decodes to a negative run length (${x}) at value ${counts.length}`);
    counts.push(x);
  }
  return counts;
}

/** Row-major 0/1 mask [height*width] -> COCO RLE with compressed counts (pycocotools `encode`). */
export function encodeRle(mask: Uint8Array, height: number, width: number): CocoRle {
  return { size: [height, width], counts: countsToString(maskToCounts(mask, height, width)) };
}

/** Checks an RLE object's shape and returns [height, width]. */
function checkSize(rle: unknown, where: string): [number, number] {
  if (typeof rle !== 'object' || rle === null) throw new Error(`${where}: expected an RLE object {size, counts}, got ${JSON.stringify(rle)}`);
  const size = (rle as { size?: unknown }).size;
  if (!Array.isArray(size) || size.length !== 2 || !size.every((v) => Number.isInteger(v) && v >= 0)) {
    throw new Error(`${where}.size: expected [height, width] non-negative integers, got ${JSON.stringify(size)}`);
  }
  return [size[0] as number, size[1] as number];
}

/**
 * COCO RLE (compressed string or uncompressed number list) -> row-major 0/1 mask
 * [height*width]. Throws, naming `where`, when the runs do not cover height*width.
 */
export function decodeRle(rle: CocoRle | CocoRleUncompressed, where: string): Uint8Array {
  const [height, width] = checkSize(rle, where);
  const raw = (rle as { counts?: unknown }).counts;
  let counts: number[];
  if (typeof raw === 'string') counts = stringToCounts(raw, `${where}.counts`);
  else if (Array.isArray(raw) && raw.every((v) => Number.isInteger(v) && v >= 0)) counts = raw as number[];
  else throw new Error(`${where}.counts: expected a compressed RLE string or a list of non-negative integers`);
  const total = counts.reduce((a, b) => a + b, 0);
  if (total !== height * width) {
    throw new Error(`${where}: RLE counts cover ${total} pixels, expected size ${height}x${width} = ${height * width}`);
  }
  const out = new Uint8Array(height * width);
  let pos = 0; // column-major position
  let v = 0;
  for (const run of counts) {
    if (v) {
      for (let q = pos; q < pos + run; q++) {
        const x = Math.floor(q / height);
        const y = q - x * height;
        out[y * width + x] = 1;
      }
    }
    pos += run;
    v ^= 1;
  }
  return out;
}

/** Foreground pixel count of an RLE (pycocotools `area`): sum of the odd runs. */
export function rleArea(rle: CocoRle, where: string): number {
  const counts = stringToCounts(rle.counts, `${where}.counts`);
  let a = 0;
  for (let i = 1; i < counts.length; i += 2) a += counts[i]!;
  return a;
}

/** Tight box of the non-zero, non-255 pixels of a row-major mask, COCO xywh; null when empty. */
export function maskBbox(mask: Uint8Array, height: number, width: number): [number, number, number, number] | null {
  let x0 = width;
  let y0 = height;
  let x1 = -1;
  let y1 = -1;
  for (let y = 0; y < height; y++) {
    const row = y * width;
    for (let x = 0; x < width; x++) {
      const v = mask[row + x];
      if (v && v !== 255) {
        if (x < x0) x0 = x;
        if (x > x1) x1 = x;
        if (y < y0) y0 = y;
        if (y > y1) y1 = y;
      }
    }
  }
  return x1 < 0 ? null : [x0, y0, x1 - x0 + 1, y1 - y0 + 1];
}
