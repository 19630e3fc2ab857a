import { describe, expect, it } from 'vitest';
import { Rng } from '../../src/random';
import { maskToPolygons } from '../../src/data/generate/contour';
import { composeScene, maskStats, rasterizeObject, renderScene, sampleScene } from '../../src/data/generate/scene';
import { COLOURS } from '../../src/data/generate/vocab';
import { fillPolygonLabelMe } from '../../src/data/formats/polygon';

const rows = (m: Uint8Array, h: number, w: number): string[] =>
  Array.from({ length: h }, (_, y) => Array.from(m.subarray(y * w, y * w + w)).join(''));
const sum = (m: Uint8Array): number => m.reduce((a, v) => a + v, 0);

describe('analytic object masks (pixel centres inside the shape)', () => {
  it('circle r=2 at (2,2): every pixel but the 4 corners (corner centres at distance sqrt(4.5) > 2)', () => {
    expect(rows(rasterizeObject('circle', 2, 2, 2, 4), 4, 4)).toEqual(['0110', '1111', '1111', '0110']);
  });

  it('square r=10 at (10,10): half side 8.2 px, so columns 2..17 -> 16x16 = 256 pixels', () => {
    const m = rasterizeObject('square', 10, 10, 10, 20);
    expect(sum(m)).toBe(256);
    expect(maskStats(m, 20).bbox).toEqual([2, 2, 16, 16]);
  });

  it('ring r=4 at (4,4): 52 pixels within radius 4 minus the 12 within radius 2 = 40, with a hole', () => {
    const m = rasterizeObject('ring', 4, 4, 4, 8);
    expect(sum(m)).toBe(40);
    expect(m[3 * 8 + 3]).toBe(0); // centre pixel is in the hole
    expect(maskToPolygons(m, 8, 8).exact).toBe(false); // LabelMe polygons cannot carry a hole
  });

  it('maskStats: area, xywh box and centroid of pixel centres', () => {
    const m = new Uint8Array(16);
    m[1] = 1; // (1,0)
    m[2] = 1; // (2,0)
    m[5] = 1; // (1,1)
    const s = maskStats(m, 4);
    expect(s.area).toBe(3);
    expect(s.bbox).toEqual([1, 0, 2, 2]);
    expect(s.centroid[0]).toBeCloseTo((1.5 + 2.5 + 1.5) / 3, 10);
    expect(s.centroid[1]).toBeCloseTo((0.5 + 0.5 + 1.5) / 3, 10);
  });
});

describe('scenes: z-order, visible masks and rendering', () => {
  it('a later object removes its pixels from the earlier one (visible = full minus later full masks)', () => {
    const scene = composeScene(32, [
      { category: 'square', colour: 'red', sizeClass: 'large', cx: 12, cy: 16, r: 8 },
      { category: 'circle', colour: 'blue', sizeClass: 'large', cx: 18, cy: 16, r: 6 },
    ]);
    const [under, over] = scene.objects as [typeof scene.objects[0], typeof scene.objects[0]];
    expect(over.area).toBe(over.fullArea);
    let overlap = 0;
    for (let p = 0; p < 32 * 32; p++) if (under.full[p] && over.full[p]) overlap++;
    expect(overlap).toBeGreaterThan(0);
    expect(under.area).toBe(under.fullArea - overlap);
  });

  it('sampled scenes: visible masks are disjoint, cover the union of full masks and keep >= minVisibleFraction', () => {
    const root = new Rng(11);
    for (let i = 0; i < 8; i++) {
      const scene = sampleScene(root.fork(i), 64, { minObjects: 3, maxObjects: 6, minVisibleFraction: 0.6 });
      expect(scene.objects.length).toBeGreaterThanOrEqual(3);
      for (let p = 0; p < 64 * 64; p++) {
        const vis = scene.objects.filter((o) => o.visible[p] === 1);
        const full = scene.objects.filter((o) => o.full[p] === 1);
        expect(vis.length).toBe(full.length > 0 ? 1 : 0);
        if (vis.length) expect(vis[0]).toBe(full[full.length - 1]); // the top-most object owns the pixel
      }
      for (const o of scene.objects) {
        expect(o.area).toBeGreaterThanOrEqual(0.6 * o.fullArea);
        const s = maskStats(o.visible, 64);
        expect([s.area, ...s.bbox]).toEqual([o.area, ...o.bbox]);
      }
    }
  });

  it('honours testA/testB-style requirements (at least 2 figures / 2 shapes)', () => {
    const root = new Rng(5);
    for (let i = 0; i < 10; i++) {
      const a = sampleScene(root.fork(`a${i}`), 64, { minObjects: 3, maxObjects: 6, minVisibleFraction: 0.6, minFigures: 2 });
      expect(a.objects.filter((o) => o.supercategory === 'figure').length).toBeGreaterThanOrEqual(2);
      const b = sampleScene(root.fork(`b${i}`), 64, { minObjects: 3, maxObjects: 6, minVisibleFraction: 0.6, minShapes: 2 });
      expect(b.objects.filter((o) => o.supercategory === 'shape').length).toBeGreaterThanOrEqual(2);
    }
  });

  it('an object\'s inner pixels are nearest to its named colour; background stays muted', () => {
    const root = new Rng(2);
    for (let i = 0; i < 5; i++) {
      const scene = sampleScene(root.fork(i), 64, { minObjects: 3, maxObjects: 6, minVisibleFraction: 0.6 });
      const rgb = renderScene(root.fork(`r${i}`), scene);
      for (let p = 0; p < 64 * 64; p++) {
        const px = [rgb[3 * p]!, rgb[3 * p + 1]!, rgb[3 * p + 2]!];
        const owner = scene.objects.find((o) => o.visible[p] === 1);
        if (!owner) {
          expect(Math.max(...px) - Math.min(...px)).toBeLessThanOrEqual(0.3 * 255 * 0.58 + 14); // saturation <= 0.3 at value <= 0.58, plus jitter
          continue;
        }
        const x = p % 64;
        const inner = [p - 1, p + 1, p - 64, p + 64].every((q) => x > 0 && x < 63 && q >= 0 && q < 4096 && owner.visible[q] === 1);
        if (!inner) continue;
        const nearest = COLOURS.map((c) => ({ c, d: c.rgb.reduce((a, v, k) => a + (v - px[k]!) ** 2, 0) })).sort((a, b) => a.d - b.d)[0]!;
        expect(nearest.c.name).toBe(owner.colour);
      }
    }
  });

  it('is a pure function of the Rng stream (same fork -> same scene and pixels)', () => {
    const a = sampleScene(new Rng(9).fork('x'), 64, { minObjects: 3, maxObjects: 6, minVisibleFraction: 0.6 });
    const b = sampleScene(new Rng(9).fork('x'), 64, { minObjects: 3, maxObjects: 6, minVisibleFraction: 0.6 });
    expect(b.objects.map((o) => [o.category, o.colour, o.cx, o.cy])).toEqual(a.objects.map((o) => [o.category, o.colour, o.cx, o.cy]));
    expect(renderScene(new Rng(1), b)).toEqual(renderScene(new Rng(1), a));
  });
});

describe('mask -> LabelMe polygons (exact under the cv2-style reader)', () => {
  it('fills back to the same mask for every hole-free visible mask of sampled scenes', () => {
    const root = new Rng(4);
    let checked = 0;
    for (let i = 0; i < 30; i++) {
      const scene = sampleScene(root.fork(i), 64, { minObjects: 3, maxObjects: 6, minVisibleFraction: 0.6 });
      for (const o of scene.objects) {
        const { polygons, exact } = maskToPolygons(o.visible, 64, 64);
        if (o.category === 'ring') continue;
        const back = new Uint8Array(64 * 64);
        for (const poly of polygons) fillPolygonLabelMe(back, 64, 64, poly, 1);
        if (exact) {
          expect(Buffer.from(back).equals(Buffer.from(o.visible))).toBe(true);
          checked++;
        } else {
          // not exact = a hole (the fill differs) or a 1-2 pixel fragment (a polygon of < 3 points)
          const differs = back.some((v, p) => v !== o.visible[p]);
          expect(differs || polygons.some((q) => q.length < 3)).toBe(true);
        }
      }
    }
    expect(checked).toBeGreaterThan(80);
  });

  it('traces a hand-drawn L shape and a two-part mask (largest part first)', () => {
    // 5x4:  1100 / 1000 / 1000 / 0000 / 0011
    const m = Uint8Array.from([1, 1, 0, 0, 1, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 1]);
    const r = maskToPolygons(m, 5, 4);
    expect(r.polygons.length).toBe(2);
    expect(r.polygons[0]).toEqual([[0, 0], [1, 0], [0, 1], [0, 2]]);
    expect(r.exact).toBe(false); // the 2-pixel part is a 2-point polygon, which readers reject
  });
});
