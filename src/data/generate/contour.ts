/**
 * Mask -> LabelMe polygons for the ReasonSeg-like files, exact under LISA's
 * reader (cv2.fillPoly + cv2.polylines on int32 points, where point (x, y) is the
 * centre of pixel (x, y); formats/polygon.ts `fillPolygonLabelMe`).
 *
 * Each 8-connected component is traced along its boundary pixels (Moore-neighbour
 * tracing, as cv2.findContours' outer borders); consecutive vertices are
 * 8-neighbours, so the drawn outline is exactly the boundary and the fill exactly
 * the inside. Holes cannot be written in LabelMe's union-of-polygons form (a ring's
 * hole would be filled), so `maskToPolygons` reports whether the polygons
 * reproduce the mask and the generator picks another target when they do not.
 */
import { fillPolygonLabelMe } from '../formats/polygon';

type Pt = [number, number];

// Clockwise in image coordinates (y down): E, SE, S, SW, W, NW, N, NE.
const DX = [1, 1, 0, -1, -1, -1, 0, 1];
const DY = [0, 1, 1, 1, 0, -1, -1, -1];

/** Boundary pixels of the component containing `start` (its top-most, then left-most pixel). */
function trace(mask: Uint8Array, h: number, w: number, start: Pt): Pt[] {
  const on = (x: number, y: number): boolean => x >= 0 && y >= 0 && x < w && y < h && mask[y * w + x] === 1;
  const step = (x: number, y: number, from: number): [number, number, number] | null => {
    for (let i = 0; i < 8; i++) {
      const d = (from + i) % 8;
      if (on(x + DX[d]!, y + DY[d]!)) return [x + DX[d]!, y + DY[d]!, d];
    }
    return null;
  };
  const [sx, sy] = start;
  // Above and left of the start pixel is background, so the search may begin at NW (5).
  const first = step(sx, sy, 5);
  if (!first) return [[sx, sy]];
  const firstDir = first[2];
  const out: Pt[] = [[sx, sy]];
  let [x, y, d] = first;
  for (let guard = 0; guard < 4 * h * w + 8; guard++) {
    const next = step(x, y, (d + 6) % 8)!;
    if (x === sx && y === sy && next[2] === firstDir) return out;
    out.push([x, y]);
    [x, y, d] = next;
  }
  throw new Error('contour trace did not close (a bug)');
}

/** Drops vertices in the middle of straight runs (same step before and after). */
function simplify(pts: Pt[]): Pt[] {
  if (pts.length < 3) return pts;
  const n = pts.length;
  return pts.filter((p, i) => {
    const a = pts[(i - 1 + n) % n]!;
    const b = pts[(i + 1) % n]!;
    return !(p[0] - a[0] === b[0] - p[0] && p[1] - a[1] === b[1] - p[1]);
  });
}

/**
 * Outer boundary polygons ([[x, y], ...] in pixel-centre coordinates) of every
 * 8-connected component of a 0/1 mask [h*w], largest first, and whether filling
 * them the LabelMe way gives back exactly the mask.
 */
export function maskToPolygons(mask: Uint8Array, h: number, w: number): { polygons: Pt[][]; exact: boolean } {
  const seen = new Uint8Array(h * w);
  const polys: Array<{ pts: Pt[]; size: number }> = [];
  const stack: number[] = [];
  for (let p = 0; p < h * w; p++) {
    if (mask[p] !== 1 || seen[p]) continue;
    // flood-fill the component (8-connected) to mark it and count its pixels
    let size = 0;
    seen[p] = 1;
    stack.push(p);
    while (stack.length) {
      const q = stack.pop()!;
      size++;
      const qx = q % w;
      const qy = (q - qx) / w;
      for (let d = 0; d < 8; d++) {
        const nx = qx + DX[d]!;
        const ny = qy + DY[d]!;
        if (nx < 0 || ny < 0 || nx >= w || ny >= h) continue;
        const r = ny * w + nx;
        if (mask[r] === 1 && !seen[r]) {
          seen[r] = 1;
          stack.push(r);
        }
      }
    }
    polys.push({ pts: simplify(trace(mask, h, w, [p % w, Math.floor(p / w)])), size });
  }
  polys.sort((a, b) => b.size - a.size);
  const polygons = polys.map((q) => q.pts);
  const back = new Uint8Array(h * w);
  for (const poly of polygons) fillPolygonLabelMe(back, h, w, poly, 1);
  // LISA's reader and ours reject polygons of fewer than 3 points: a 1-2 pixel fragment is not writable.
  let exact = polygons.every((q) => q.length >= 3);
  for (let p = 0; p < h * w; p++) {
    if (!exact || (mask[p] === 1 ? 1 : 0) !== back[p]) {
      exact = false;
      break;
    }
  }
  return { polygons, exact };
}
