/**
 * Masks and boxes drawn over an image, as PNG bytes (sharp): the mask figures of
 * the notebooks (data tour, predictions vs. ground truth). Images here are small
 * (64-128 px), so the overlay is drawn on a nearest-neighbour upscale: pixels stay
 * visible as squares, and outlines / box edges stay thin. Masks follow the data
 * layer's convention (src/data/types.ts): row-major height*width, 1 = in,
 * 0 = out, 255 = ignore (drawn as a grey hatch).
 */
import sharp from 'sharp';
import type { RgbImage } from '../data/formats/image';

export type Rgb = [number, number, number];

/** '#rrggbb' or [r, g, b] -> [r, g, b]; throws naming the bad value. */
export function parseColor(c: string | Rgb, where = 'color'): Rgb {
  if (Array.isArray(c)) {
    if (c.length === 3 && c.every((v) => Number.isInteger(v) && v >= 0 && v <= 255)) return [c[0], c[1], c[2]];
  } else if (/^#[0-9a-fA-F]{6}$/.test(c)) {
    const n = parseInt(c.slice(1), 16);
    return [(n >> 16) & 255, (n >> 8) & 255, n & 255];
  }
  throw new Error(`${where}: expected '#rrggbb' or [r, g, b] with integers 0-255, got ${JSON.stringify(c)}`);
}

/** One mask layer. */
export interface MaskLayer {
  /** Row-major height*width; 1 (or any value but 0 / 255) = in, 0 = out, 255 = ignore. */
  mask: Uint8Array;
  color: string | Rgb;
  /** Fill opacity in [0, 1] (default 0.45). */
  alpha?: number;
  /** Width in output pixels of the boundary drawn in full colour (default 2; 0 = none). */
  outline?: number;
}

/** A box in original pixels, COCO xywh (the data layer's `bbox`). */
export interface BoxLayer {
  xywh: [number, number, number, number];
  color: string | Rgb;
  /** Line width in output pixels (default 2). */
  lineWidth?: number;
}

/** Options of `overlayPng`. */
export interface OverlayOptions {
  masks?: MaskLayer[];
  boxes?: BoxLayer[];
  /** Integer upscale factor (default: the smallest making the long side >= 256 px). */
  scale?: number;
}

const IGNORE = 255;

/**
 * RGB image + masks + boxes -> packed RGB of the overlay, (H*s) x (W*s) x 3.
 * Fill: out = (1 - alpha) * pixel + alpha * color; the boundary (in-mask pixels
 * with an out-of-mask pixel at most `outline` steps away along a row or column, on
 * the upscaled grid) in full colour. Image borders count as outside.
 */
export function overlayRgb(img: RgbImage, opts: OverlayOptions = {}): RgbImage {
  const { height: h, width: w, data } = img;
  if (data.length !== h * w * 3) throw new Error(`overlay: image data has ${data.length} bytes, expected height*width*3 = ${h * w * 3}`);
  const s = opts.scale ?? Math.max(1, Math.ceil(256 / Math.max(h, w)));
  if (!Number.isInteger(s) || s < 1 || s > 256) throw new Error(`overlay: scale must be an integer in [1, 256], got ${s}`);
  const H = h * s;
  const W = w * s;
  const out = new Uint8Array(H * W * 3);
  for (let y = 0; y < H; y++) {
    for (let x = 0; x < W; x++) {
      const src = (Math.floor(y / s) * w + Math.floor(x / s)) * 3;
      const dst = (y * W + x) * 3;
      out[dst] = data[src]!;
      out[dst + 1] = data[src + 1]!;
      out[dst + 2] = data[src + 2]!;
    }
  }
  const masks = opts.masks ?? [];
  masks.forEach((layer, li) => {
    if (layer.mask.length !== h * w) throw new Error(`overlay: masks[${li}] has ${layer.mask.length} values, expected height*width = ${h * w}`);
    const alpha = layer.alpha ?? 0.45;
    if (!(alpha >= 0 && alpha <= 1)) throw new Error(`overlay: masks[${li}].alpha must be in [0, 1], got ${alpha}`);
    const color = parseColor(layer.color, `overlay: masks[${li}].color`);
    const outline = layer.outline ?? 2;
    if (!Number.isInteger(outline) || outline < 0) throw new Error(`overlay: masks[${li}].outline must be an integer >= 0, got ${outline}`);
    const at = (y: number, x: number): number => layer.mask[Math.floor(y / s) * w + Math.floor(x / s)]!;
    const isIn = (v: number): boolean => v !== 0 && v !== IGNORE;
    for (let y = 0; y < H; y++) {
      for (let x = 0; x < W; x++) {
        const v = at(y, x);
        const dst = (y * W + x) * 3;
        if (v === IGNORE) {
          if ((x + y) % 6 < 2) out[dst] = out[dst + 1] = out[dst + 2] = 128; // hatch: "not scored"
          continue;
        }
        if (!isIn(v)) continue;
        let edge = false;
        for (let d = 1; d <= outline && !edge; d++) {
          edge = y - d < 0 || x - d < 0 || y + d >= H || x + d >= W
            || !isIn(at(y - d, x)) || !isIn(at(y + d, x)) || !isIn(at(y, x - d)) || !isIn(at(y, x + d));
        }
        for (let k = 0; k < 3; k++) out[dst + k] = edge ? color[k]! : Math.round((1 - alpha) * out[dst + k]! + alpha * color[k]!);
      }
    }
  });
  (opts.boxes ?? []).forEach((b, bi) => {
    const color = parseColor(b.color, `overlay: boxes[${bi}].color`);
    const lw = b.lineWidth ?? 2;
    const [bx, by, bw, bh] = b.xywh;
    if (![bx, by, bw, bh].every(Number.isFinite) || bw < 0 || bh < 0) throw new Error(`overlay: boxes[${bi}].xywh must be finite with w, h >= 0, got ${JSON.stringify(b.xywh)}`);
    const x0 = Math.round(bx * s);
    const y0 = Math.round(by * s);
    const x1 = Math.round((bx + bw) * s) - 1;
    const y1 = Math.round((by + bh) * s) - 1;
    const paint = (y: number, x: number): void => {
      if (y < 0 || x < 0 || y >= H || x >= W) return;
      const dst = (y * W + x) * 3;
      out[dst] = color[0];
      out[dst + 1] = color[1];
      out[dst + 2] = color[2];
    };
    for (let t = 0; t < lw; t++) {
      for (let x = x0; x <= x1; x++) {
        paint(y0 + t, x);
        paint(y1 - t, x);
      }
      for (let y = y0; y <= y1; y++) {
        paint(y, x0 + t);
        paint(y, x1 - t);
      }
    }
  });
  return { data: out, height: H, width: W };
}

/** RGB image + masks + boxes -> PNG bytes of the overlay (see overlayRgb). */
export async function overlayPng(img: RgbImage, opts: OverlayOptions = {}): Promise<Uint8Array> {
  const o = overlayRgb(img, opts);
  return pngOf(o);
}

/** Packed RGB -> PNG bytes. */
export async function pngOf(img: RgbImage): Promise<Uint8Array> {
  const buf = await sharp(img.data, { raw: { width: img.width, height: img.height, channels: 3 } }).png().toBuffer();
  return new Uint8Array(buf.buffer, buf.byteOffset, buf.byteLength);
}

/**
 * Panels side by side (left to right, wrapping after `columns`), `gap` white
 * pixels between them: the image/png fallback of a gallery. Panels may differ in size.
 */
export async function montagePng(panels: Uint8Array[], { columns = 4, gap = 8 }: { columns?: number; gap?: number } = {}): Promise<Uint8Array> {
  if (panels.length === 0) throw new Error('montage: expected at least one panel');
  const metas = await Promise.all(panels.map((p) => sharp(p).metadata()));
  const sizes = metas.map((m, i) => {
    if (!m.width || !m.height) throw new Error(`montage: panel ${i} is not a decodable image`);
    return { w: m.width, h: m.height };
  });
  const rows = Math.ceil(panels.length / columns);
  const cellW = Math.max(...sizes.map((z) => z.w));
  const cellH = Math.max(...sizes.map((z) => z.h));
  const W = Math.min(columns, panels.length) * (cellW + gap) - gap;
  const H = rows * (cellH + gap) - gap;
  const buf = await sharp({ create: { width: W, height: H, channels: 3, background: { r: 255, g: 255, b: 255 } } })
    .composite(panels.map((p, i) => ({ input: Buffer.from(p), left: (i % columns) * (cellW + gap), top: Math.floor(i / columns) * (cellH + gap) })))
    .png()
    .toBuffer();
  return new Uint8Array(buf.buffer, buf.byteOffset, buf.byteLength);
}
