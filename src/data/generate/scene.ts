/**
 * Scenes of the generated benchmark: several shaped, coloured, sized objects on a
 * textured background, with exact instance masks.
 *
 * Masks are analytic: a pixel (x, y) belongs to an object when its centre
 * (x + 0.5, y + 0.5) lies inside the object's shape, so the full mask is exact on
 * the pixel grid. Objects are drawn in z-order; an instance's mask is its
 * VISIBLE part (pixels covered by a later object are removed), as COCO instance
 * masks are. Every pixel of an object's visible mask is painted in the object's
 * colour (with a darker rim and slight noise), so the image and the masks agree
 * pixel for pixel.
 */
import type { Rng } from '../../random';
import { CATEGORIES, COLOURS, category as categoryInfo, colour as colourInfo, type CategoryName, type Supercategory } from './vocab';

export type SizeClass = 'small' | 'large';

/** One object of a scene; geometry in pixels, masks row-major size*size with values 0/1. */
export interface SceneObject {
  /** Position in the drawing order (0 = drawn first, at the bottom). */
  z: number;
  category: CategoryName;
  supercategory: Supercategory;
  colour: string;
  sizeClass: SizeClass;
  /** Shape centre and half-extent in pixels. */
  cx: number;
  cy: number;
  r: number;
  /** Full (unoccluded) mask. */
  full: Uint8Array;
  /** Visible mask = full minus every later object's full mask. */
  visible: Uint8Array;
  fullArea: number;
  /** Visible pixel count (the instance's COCO `area`). */
  area: number;
  /** Tight box of the visible mask, COCO xywh in pixels. */
  bbox: [number, number, number, number];
  /** Centroid of the visible mask (pixel centres), in pixels. */
  centroid: [number, number];
}

export interface Scene {
  size: number;
  objects: SceneObject[];
  /** Background description (for the manifest / debugging). */
  background: string;
}

/** Size classes as fractions of the image side (half-extent); far apart so "small"/"large" is never borderline. */
export const SIZE_RANGES: Record<SizeClass, [number, number]> = {
  small: [0.09, 0.115],
  large: [0.15, 0.19],
};

const TAU = Math.PI * 2;
const STAR: Array<[number, number]> = Array.from({ length: 10 }, (_, i) => {
  const a = -Math.PI / 2 + (i * Math.PI) / 5;
  const rad = i % 2 === 0 ? 1 : 0.45;
  return [rad * Math.cos(a), rad * Math.sin(a)];
});

/** Even-odd point-in-polygon test. */
function inPolygon(u: number, v: number, poly: ReadonlyArray<[number, number]>): boolean {
  let inside = false;
  for (let i = 0, j = poly.length - 1; i < poly.length; j = i++) {
    const [xi, yi] = poly[i]!;
    const [xj, yj] = poly[j]!;
    if (yi > v !== yj > v && u < ((xj - xi) * (v - yi)) / (yj - yi) + xi) inside = !inside;
  }
  return inside;
}

/**
 * Inside test of a category's shape in normalised coordinates: u = (x - cx) / r,
 * v = (y - cy) / r, y pointing down; every shape fits in [-1, 1]^2.
 */
export function insideShape(name: CategoryName, u: number, v: number): boolean {
  const au = Math.abs(u);
  switch (name) {
    case 'circle':
      return u * u + v * v <= 1;
    case 'ring': {
      const d = u * u + v * v;
      return d <= 1 && d >= 0.5 * 0.5;
    }
    case 'square':
      return au <= 0.82 && Math.abs(v) <= 0.82;
    case 'diamond':
      return au + Math.abs(v) <= 1;
    case 'triangle':
      return v <= 0.75 && v >= -0.95 && au <= (0.95 * (v + 0.95)) / 1.7;
    case 'hexagon':
      return au <= Math.sqrt(3) / 2 && Math.abs(v) + au / Math.sqrt(3) <= 1;
    case 'star':
      return inPolygon(u, v, STAR);
    case 'heart': {
      // (x^2 + y^2 - 1)^3 - x^2 y^3 <= 0, the classic heart curve, y up, fitted into [-1, 1]^2
      const x = u * 1.15;
      const y = -v * 1.15 + 0.15;
      const q = x * x + y * y - 1;
      return q * q * q - x * x * y * y * y <= 0;
    }
    case 'cross':
      return (au <= 0.3 && Math.abs(v) <= 0.95) || (au <= 0.95 && Math.abs(v) <= 0.3);
    case 'person': {
      if (u * u + (v + 0.72) * (v + 0.72) <= 0.26 * 0.26) return true; // head
      if (au <= 0.2 && v >= -0.46 && v <= 0.32) return true; // torso
      if (au <= 0.66 && v >= -0.38 && v <= -0.2) return true; // arms
      if (v >= 0.3 && v <= 1) {
        const inner = 0.02 + (v - 0.3) * 0.45;
        return au >= inner && au <= inner + 0.24; // legs, spreading
      }
      return false;
    }
    case 'snowman':
      return u * u + (v - 0.4) * (v - 0.4) <= 0.6 * 0.6 || u * u + (v + 0.52) * (v + 0.52) <= 0.42 * 0.42;
    case 'robot':
      return (au <= 0.36 && v >= -1 && v <= -0.46) // head
        || (au <= 0.62 && v >= -0.4 && v <= 0.5) // body
        || (au >= 0.14 && au <= 0.44 && v > 0.5 && v <= 1); // legs
    case 'ghost': {
      if (v <= -0.2) return u * u + (v + 0.2) * (v + 0.2) <= 0.72 * 0.72; // dome
      const hem = 0.78 + 0.18 * Math.cos((u / 0.72) * 1.5 * TAU); // wavy hem
      return au <= 0.72 && v <= hem;
    }
    default:
      throw new Error(`generate: no shape for category ${JSON.stringify(name)}`);
  }
}

/** Full mask of an object: pixel centres inside the shape. [size*size] row-major 0/1. */
export function rasterizeObject(name: CategoryName, cx: number, cy: number, r: number, size: number): Uint8Array {
  const m = new Uint8Array(size * size);
  const x0 = Math.max(0, Math.floor(cx - r - 1));
  const x1 = Math.min(size - 1, Math.ceil(cx + r + 1));
  const y0 = Math.max(0, Math.floor(cy - r - 1));
  const y1 = Math.min(size - 1, Math.ceil(cy + r + 1));
  for (let y = y0; y <= y1; y++) {
    const v = (y + 0.5 - cy) / r;
    for (let x = x0; x <= x1; x++) {
      if (insideShape(name, (x + 0.5 - cx) / r, v)) m[y * size + x] = 1;
    }
  }
  return m;
}

/** Area, tight xywh box and centroid of a 0/1 mask (zeros when empty). */
export function maskStats(m: Uint8Array, size: number): { area: number; bbox: [number, number, number, number]; centroid: [number, number] } {
  let area = 0;
  let sx = 0;
  let sy = 0;
  let minX = size;
  let minY = size;
  let maxX = -1;
  let maxY = -1;
  for (let y = 0; y < size; y++) {
    for (let x = 0; x < size; x++) {
      if (m[y * size + x] !== 1) continue;
      area++;
      sx += x + 0.5;
      sy += y + 0.5;
      if (x < minX) minX = x;
      if (x > maxX) maxX = x;
      if (y < minY) minY = y;
      if (y > maxY) maxY = y;
    }
  }
  if (area === 0) return { area: 0, bbox: [0, 0, 0, 0], centroid: [0, 0] };
  return { area, bbox: [minX, minY, maxX - minX + 1, maxY - minY + 1], centroid: [sx / area, sy / area] };
}

/** Recomputes every object's visible mask and statistics from the full masks and z-order. */
function updateVisibility(objects: SceneObject[], size: number): void {
  const covered = new Uint8Array(size * size);
  for (let i = objects.length - 1; i >= 0; i--) {
    const o = objects[i]!;
    const vis = new Uint8Array(size * size);
    for (let p = 0; p < vis.length; p++) {
      if (o.full[p] === 1 && covered[p] === 0) vis[p] = 1;
    }
    for (let p = 0; p < vis.length; p++) if (o.full[p] === 1) covered[p] = 1;
    const s = maskStats(vis, size);
    o.visible = vis;
    o.area = s.area;
    o.bbox = s.bbox;
    o.centroid = s.centroid;
  }
}

/** What a scene must contain (RefCOCO-like testA needs several person-like figures, testB several shapes). */
export interface SceneRequirements {
  minObjects: number;
  maxObjects: number;
  minVisibleFraction: number;
  /** Fewest objects of supercategory `figure`. */
  minFigures?: number;
  /** Fewest objects of supercategory `shape`. */
  minShapes?: number;
}

const FIGURES = CATEGORIES.filter((c) => c.supercategory === 'figure').map((c) => c.name);
const SHAPES = CATEGORIES.filter((c) => c.supercategory === 'shape').map((c) => c.name);
const PLACE_TRIES = 40;

/**
 * Samples the objects of a scene (no pixels of the image yet). Categories and
 * colours come from small per-scene palettes so that repeats are common and
 * location, size and relations are needed to tell objects apart.
 */
export function sampleObjects(rng: Rng, size: number, req: SceneRequirements): SceneObject[] {
  const n = rng.intBetween(req.minObjects, req.maxObjects);
  const minFig = Math.min(req.minFigures ?? 0, n);
  const minShape = Math.min(req.minShapes ?? 0, n - minFig);
  const figPalette = rng.shuffle(FIGURES).slice(0, rng.intBetween(1, 2));
  const shapePalette = rng.shuffle(SHAPES).slice(0, rng.intBetween(2, 4));
  const colourPalette = rng.shuffle(COLOURS.map((c) => c.name)).slice(0, rng.intBetween(2, 4));
  const isFigure: boolean[] = [];
  for (let i = 0; i < n; i++) isFigure.push(i < minFig ? true : i < minFig + minShape ? false : rng.bernoulli(0.3));
  const order = rng.shuffle(isFigure);
  const objects: SceneObject[] = [];
  for (const fig of order) {
    const cat = rng.pick(fig ? figPalette : shapePalette);
    const col = rng.pick(colourPalette);
    const sizeClass: SizeClass = rng.bernoulli(0.5) ? 'small' : 'large';
    const [lo, hi] = SIZE_RANGES[sizeClass];
    const r = rng.uniform(lo, hi) * size;
    for (let t = 0; t < PLACE_TRIES; t++) {
      const margin = r + 1;
      const cx = rng.uniform(margin, size - margin);
      const cy = rng.uniform(margin, size - margin);
      const full = rasterizeObject(cat, cx, cy, r, size);
      // The new object goes on top: it stays whole and only removes pixels from the
      // earlier ones, so checking their loss inside its box is enough.
      const x0 = Math.max(0, Math.floor(cx - r - 1));
      const x1 = Math.min(size - 1, Math.ceil(cx + r + 1));
      const y0 = Math.max(0, Math.floor(cy - r - 1));
      const y1 = Math.min(size - 1, Math.ceil(cy + r + 1));
      const lost = objects.map((q) => {
        let n = 0;
        for (let y = y0; y <= y1; y++) for (let x = x0; x <= x1; x++) if (full[y * size + x] === 1 && q.visible[y * size + x] === 1) n++;
        return n;
      });
      if (!objects.every((q, i) => q.area - lost[i]! >= req.minVisibleFraction * q.fullArea)) continue;
      objects.forEach((q, i) => {
        if (lost[i] === 0) return;
        for (let y = y0; y <= y1; y++) for (let x = x0; x <= x1; x++) if (full[y * size + x] === 1) q.visible[y * size + x] = 0;
        Object.assign(q, maskStats(q.visible, size));
      });
      const st = maskStats(full, size);
      objects.push({
        z: objects.length, category: cat, supercategory: categoryInfo(cat).supercategory, colour: col, sizeClass,
        cx, cy, r, full, visible: full.slice(), fullArea: st.area, area: st.area, bbox: st.bbox, centroid: st.centroid,
      });
      break;
    }
  }
  return objects;
}

/** What `composeScene` needs of one object (hand-built scenes: tests, examples). */
export interface ObjectSpec {
  category: CategoryName;
  colour: string;
  sizeClass: SizeClass;
  cx: number;
  cy: number;
  r: number;
}

/** A scene from explicit objects, in drawing order (first = bottom); masks and statistics computed. */
export function composeScene(size: number, specs: ObjectSpec[]): Scene {
  const objects: SceneObject[] = specs.map((s, z) => {
    colourInfo(s.colour); // throws on an unknown colour name
    const full = rasterizeObject(s.category, s.cx, s.cy, s.r, size);
    return {
      ...s, z, supercategory: categoryInfo(s.category).supercategory, full, visible: full,
      fullArea: maskStats(full, size).area, area: 0, bbox: [0, 0, 0, 0], centroid: [s.cx, s.cy],
    };
  });
  updateVisibility(objects, size);
  return { size, objects, background: '' };
}

/** Does the sampled object list meet the scene requirements? */
function meets(objects: SceneObject[], req: SceneRequirements): boolean {
  const figs = objects.filter((o) => o.supercategory === 'figure').length;
  return objects.length >= req.minObjects && figs >= (req.minFigures ?? 0) && objects.length - figs >= (req.minShapes ?? 0);
}

/** Samples objects until the requirements hold (placement can drop objects in crowded scenes). */
export function sampleScene(rng: Rng, size: number, req: SceneRequirements): Scene {
  for (let attempt = 0; attempt < 50; attempt++) {
    const objects = sampleObjects(rng, size, req);
    if (meets(objects, req)) return { size, objects, background: '' };
  }
  throw new Error(`generate: could not place ${req.minObjects} objects in a ${size}x${size} image with minVisibleFraction ${req.minVisibleFraction}; lower the object count or raise imageSize`);
}

function hsv(h: number, s: number, v: number): [number, number, number] {
  const f = (n: number): number => {
    const k = (n + h / 60) % 6;
    return v - v * s * Math.max(0, Math.min(k, 4 - k, 1));
  };
  return [f(5) * 255, f(3) * 255, f(1) * 255];
}

const clamp8 = (x: number): number => (x < 0 ? 0 : x > 255 ? 255 : Math.round(x));

/**
 * Paints a textured background (value noise, stripes, checks or a gradient) in two
 * muted colours: saturation <= 0.3 and value in [0.3, 0.58], so the saturated or
 * near-white object colours stay distinguishable from it.
 */
export function paintBackground(rng: Rng, size: number): { rgb: Float32Array; kind: string } {
  const h = rng.uniform(0, 360);
  const c1 = hsv(h, rng.uniform(0.05, 0.3), rng.uniform(0.3, 0.5));
  const c2 = hsv((h + rng.uniform(-40, 40) + 360) % 360, rng.uniform(0.05, 0.3), rng.uniform(0.38, 0.58));
  const kind = rng.pick(['noise', 'stripes', 'checks', 'gradient'] as const);
  const rgb = new Float32Array(size * size * 3);
  const grid = 6;
  const lattice = Array.from({ length: (grid + 1) * (grid + 1) }, () => rng.next());
  const period = rng.uniform(5, 12);
  const angle = rng.pick([0, 45, 90, 135]) * (Math.PI / 180);
  const [ca, sa] = [Math.cos(angle), Math.sin(angle)];
  const gradAngle = rng.uniform(0, TAU);
  // defined once: a closure made per pixel costs more than the pixel (tsx's keepNames wraps each)
  const at = (i: number, j: number): number => lattice[j * (grid + 1) + i]!;
  for (let y = 0; y < size; y++) {
    for (let x = 0; x < size; x++) {
      let t: number;
      if (kind === 'noise') {
        const gx = (x / size) * grid;
        const gy = (y / size) * grid;
        const ix = Math.floor(gx);
        const iy = Math.floor(gy);
        const fx = gx - ix;
        const fy = gy - iy;
        t = (at(ix, iy) * (1 - fx) + at(ix + 1, iy) * fx) * (1 - fy) + (at(ix, iy + 1) * (1 - fx) + at(ix + 1, iy + 1) * fx) * fy;
      } else if (kind === 'stripes') {
        t = Math.floor((x * ca + y * sa) / period) % 2 === 0 ? 0 : 1;
      } else if (kind === 'checks') {
        t = (Math.floor(x / period) + Math.floor(y / period)) % 2;
      } else {
        t = 0.5 + ((x / size - 0.5) * Math.cos(gradAngle) + (y / size - 0.5) * Math.sin(gradAngle)) * 0.9;
      }
      t = Math.min(1, Math.max(0, Math.abs(t)));
      const p = (y * size + x) * 3;
      const jitter = rng.uniform(-6, 6);
      for (let ch = 0; ch < 3; ch++) rgb[p + ch] = c1[ch]! * (1 - t) + c2[ch]! * t + jitter;
    }
  }
  return { rgb, kind };
}

/** Darkening of an object's rim pixels, so same-coloured neighbours stay separable. */
const RIM_SHADE = 0.68;

/** Renders the scene to RGB bytes (row-major, 3 channels); draws the background first. */
export function renderScene(rng: Rng, scene: Scene): Uint8Array {
  const { size } = scene;
  const bg = paintBackground(rng, size);
  scene.background = bg.kind;
  const rgb = bg.rgb;
  for (const o of scene.objects) {
    const base = colourInfo(o.colour).rgb;
    const shade = rng.uniform(0.9, 1.04);
    for (let y = 0; y < size; y++) {
      for (let x = 0; x < size; x++) {
        const p = y * size + x;
        if (o.visible[p] !== 1) continue;
        const rim = x === 0 || y === 0 || x === size - 1 || y === size - 1
          || o.visible[p - 1] !== 1 || o.visible[p + 1] !== 1 || o.visible[p - size] !== 1 || o.visible[p + size] !== 1;
        const k = shade * (rim ? RIM_SHADE : 1);
        const jitter = rng.uniform(-5, 5);
        for (let ch = 0; ch < 3; ch++) rgb[p * 3 + ch] = base[ch]! * k + jitter;
      }
    }
  }
  const out = new Uint8Array(size * size * 3);
  for (let i = 0; i < out.length; i++) out[i] = clamp8(rgb[i]!);
  return out;
}
