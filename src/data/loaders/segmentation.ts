/**
 * COCO `segmentation` field -> row-major mask, as LISA's REFER-based loaders do:
 * polygons via pycocotools frPyObjects, RLE dicts (compressed or uncompressed) as
 * given, a list of RLE dicts united; an empty list is an empty mask.
 */
import { decodeRle, type CocoRleUncompressed } from '../formats/rle';
import { rasterizePolygons } from '../formats/polygon';
import type { CocoRle } from '../types';
import { describe } from './common';

/** Decodes a COCO segmentation (polygons | RLE | RLE list) at height x width; `where` names the field. */
export function decodeSegmentation(seg: unknown, height: number, width: number, where: string): Uint8Array {
  const one = (rle: unknown, w: string): Uint8Array => {
    const size = (rle as { size?: unknown }).size;
    if (Array.isArray(size) && (size[0] !== height || size[1] !== width)) {
      throw new Error(`${w}.size: mask is ${describe(size)} but the image is [${height}, ${width}] (height, width)`);
    }
    return decodeRle(rle as CocoRle | CocoRleUncompressed, w);
  };
  if (Array.isArray(seg)) {
    if (seg.length === 0) return new Uint8Array(height * width);
    if (Array.isArray(seg[0])) return rasterizePolygons(seg as number[][], height, width, where);
    const out = new Uint8Array(height * width);
    seg.forEach((r, i) => {
      const m = one(r, `${where}[${i}]`);
      for (let p = 0; p < m.length; p++) out[p] |= m[p]!;
    });
    return out;
  }
  if (typeof seg === 'object' && seg !== null) return one(seg, where);
  throw new Error(`${where}: expected polygons [[x1,y1,...]] or an RLE {size, counts}, got ${describe(seg)}`);
}
