/**
 * Polygon rasterisation in the two conventions the datasets use:
 * - COCO (RefCOCO instances.json): pycocotools `rleFrPoly` (common/maskApi.c), ported
 *   step for step: vertices scaled by 5 and rounded, boundary walked densely, the
 *   column crossings downsampled back to pixel centres, then turned into column-major
 *   runs. A pixel is set when its centre lies inside the polygon (ties per the C code).
 *   Several polygons of one annotation are united (pycocotools `annToRLE` -> merge).
 * - LabelMe / ReasonSeg: LISA's `get_mask_from_json` draws each polygon with
 *   `cv2.polylines(thickness=1)` + `cv2.fillPoly` on int32-truncated vertices, so the
 *   boundary pixels are included. `fillPolygonLabelMe` reproduces that convention
 *   (scanline fill of the integer-vertex polygon, boundary-inclusive, plus 8-connected
 *   Bresenham edges); OpenCV itself cannot be run here, so it is checked against
 *   hand-drawn cases, not against cv2 bit for bit.
 */

/** pycocotools rleFrPoly: flat [x1,y1,x2,y2,...] polygon -> column-major run counts. */
export function polygonToCounts(xy: readonly number[], height: number, width: number): number[] {
  const k = xy.length / 2;
  const h = height;
  const w = width;
  const scale = 5;
  const x: number[] = new Array(k + 1);
  const y: number[] = new Array(k + 1);
  for (let j = 0; j < k; j++) x[j] = Math.trunc(scale * xy[j * 2]! + 0.5); // C (int) cast truncates
  x[k] = x[0]!;
  for (let j = 0; j < k; j++) y[j] = Math.trunc(scale * xy[j * 2 + 1]! + 0.5);
  y[k] = y[0]!;
  // upsample: discrete points densely along the boundary
  const u: number[] = [];
  const v: number[] = [];
  for (let j = 0; j < k; j++) {
    let xs = x[j]!;
    let xe = x[j + 1]!;
    let ys = y[j]!;
    let ye = y[j + 1]!;
    const dx = Math.abs(xe - xs);
    const dy = Math.abs(ys - ye);
    const flip = (dx >= dy && xs > xe) || (dx < dy && ys > ye);
    if (flip) {
      [xs, xe] = [xe, xs];
      [ys, ye] = [ye, ys];
    }
    const s = dx >= dy ? (ye - ys) / dx : (xe - xs) / dy;
    if (dx >= dy) {
      for (let d = 0; d <= dx; d++) {
        const t = flip ? dx - d : d;
        u.push(t + xs);
        v.push(Math.trunc(ys + s * t + 0.5));
      }
    } else {
      for (let d = 0; d <= dy; d++) {
        const t = flip ? dy - d : d;
        v.push(t + ys);
        u.push(Math.trunc(xs + s * t + 0.5));
      }
    }
  }
  // points along the y-boundary, downsampled to pixel centres
  const bx: number[] = [];
  const by: number[] = [];
  for (let j = 1; j < u.length; j++) {
    if (u[j] === u[j - 1]) continue;
    let xd = u[j]! < u[j - 1]! ? u[j]! : u[j]! - 1;
    xd = (xd + 0.5) / scale - 0.5;
    if (Math.floor(xd) !== xd || xd < 0 || xd > w - 1) continue;
    let yd = v[j]! < v[j - 1]! ? v[j]! : v[j - 1]!;
    yd = (yd + 0.5) / scale - 0.5;
    if (yd < 0) yd = 0;
    else if (yd > h) yd = h;
    yd = Math.ceil(yd);
    bx.push(xd);
    by.push(yd);
  }
  // run lengths from the sorted column-major boundary positions
  const a: number[] = bx.map((xx, j) => xx * h + by[j]!);
  a.push(h * w);
  a.sort((p, q) => p - q);
  let prev = 0;
  for (let j = 0; j < a.length; j++) {
    const t = a[j]!;
    a[j] = t - prev;
    prev = t;
  }
  const b: number[] = [a[0]!];
  let j = 1;
  while (j < a.length) {
    if (a[j]! > 0) b.push(a[j++]!);
    else {
      j++; // a zero-length run cancels: merge the next run into the previous one
      if (j < a.length) b[b.length - 1] += a[j++]!;
    }
  }
  return b;
}

function checkPolygon(poly: unknown, where: string): number[] {
  if (!Array.isArray(poly) || !poly.every((c) => typeof c === 'number' && Number.isFinite(c))) {
    throw new Error(`${where}: expected a flat list of numbers [x1, y1, x2, y2, ...]`);
  }
  if (poly.length % 2 !== 0) throw new Error(`${where}: polygon has an odd number of coordinates (${poly.length})`);
  if (poly.length < 6) throw new Error(`${where}: polygon has ${poly.length / 2} points, expected at least 3`);
  return poly as number[];
}

/**
 * COCO polygons (each flat [x1,y1,...]) -> row-major 0/1 mask [height*width], the
 * union of the polygons, equal to pycocotools frPyObjects + merge + decode.
 */
export function rasterizePolygons(polygons: number[][], height: number, width: number, where: string): Uint8Array {
  if (!Array.isArray(polygons) || polygons.length === 0) throw new Error(`${where}: expected a non-empty list of polygons`);
  const out = new Uint8Array(height * width);
  polygons.forEach((poly, i) => {
    const counts = polygonToCounts(checkPolygon(poly, `${where}[${i}]`), height, width);
    let pos = 0;
    let val = 0;
    for (const run of counts) {
      if (val) {
        for (let q = pos; q < pos + run; q++) {
          const x = Math.floor(q / height);
          out[(q - x * height) * width + x] = 1;
        }
      }
      pos += run;
      val ^= 1;
    }
  });
  return out;
}

/** Shoelace area of a polygon given as [[x, y], ...] (absolute value). */
export function polygonArea(points: ReadonlyArray<readonly [number, number]>): number {
  let s = 0;
  for (let i = 0; i < points.length; i++) {
    const [x0, y0] = points[i]!;
    const [x1, y1] = points[(i + 1) % points.length]!;
    s += x0 * y1 - x1 * y0;
  }
  return Math.abs(s) / 2;
}

/**
 * Draws one LabelMe polygon ([[x, y], ...], pixel coordinates) into a row-major mask
 * with `value`, as LISA does with cv2: vertices truncated to int32, interior filled
 * (pixel (x, y) set when the point (x, y) is inside or on the polygon), outline drawn
 * 8-connected. Pixels outside the image are clipped.
 */
export function fillPolygonLabelMe(
  mask: Uint8Array,
  height: number,
  width: number,
  points: ReadonlyArray<readonly [number, number]>,
  value: number,
): void {
  const pts = points.map(([px, py]) => [Math.trunc(px), Math.trunc(py)] as const);
  const n = pts.length;
  const set = (x: number, y: number): void => {
    if (x >= 0 && x < width && y >= 0 && y < height) mask[y * width + x] = value;
  };
  // Scanline fill, even-odd rule on the integer polygon, boundary-inclusive spans.
  let ymin = Infinity;
  let ymax = -Infinity;
  for (const [, py] of pts) {
    ymin = Math.min(ymin, py);
    ymax = Math.max(ymax, py);
  }
  for (let yy = Math.max(0, ymin); yy <= Math.min(height - 1, ymax); yy++) {
    const xs: number[] = [];
    for (let i = 0; i < n; i++) {
      const [x0, y0] = pts[i]!;
      const [x1, y1] = pts[(i + 1) % n]!;
      if (y0 === y1) continue;
      // half-open in y so a vertex shared by two edges is counted once
      if ((yy >= y0 && yy < y1) || (yy >= y1 && yy < y0)) xs.push(x0 + ((yy - y0) * (x1 - x0)) / (y1 - y0));
    }
    xs.sort((p, q) => p - q);
    for (let i = 0; i + 1 < xs.length; i += 2) {
      const lo = Math.max(0, Math.ceil(xs[i]! - 1e-9));
      const hi = Math.min(width - 1, Math.floor(xs[i + 1]! + 1e-9));
      for (let xx = lo; xx <= hi; xx++) set(xx, yy);
    }
  }
  // Outline (cv2.polylines, thickness 1, 8-connected): Bresenham between vertices.
  for (let i = 0; i < n; i++) {
    let [x0, y0] = pts[i]!;
    const [x1, y1] = pts[(i + 1) % n]!;
    const dx = Math.abs(x1 - x0);
    const dy = -Math.abs(y1 - y0);
    const sx = x0 < x1 ? 1 : -1;
    const sy = y0 < y1 ? 1 : -1;
    let err = dx + dy;
    for (;;) {
      set(x0, y0);
      if (x0 === x1 && y0 === y1) break;
      const e2 = 2 * err;
      if (e2 >= dy) {
        err += dy;
        x0 += sx;
      }
      if (e2 <= dx) {
        err += dx;
        y0 += sy;
      }
    }
  }
}
