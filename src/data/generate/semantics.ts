/**
 * Structured meaning of a referring expression, and its evaluation against every
 * object of a scene. The generator only emits a sentence whose structure
 * identifies exactly one object (issue 2: "never emits an ambiguous one").
 *
 * Predicates are three-valued (yes / maybe / no): "left of the star" is `maybe`
 * for an object barely to the left, or far above. An expression identifies its
 * target only when the target is a clear `yes` and every other object a clear
 * `no`, so a reader who judges borderline cases differently still finds one
 * answer. Superlatives and ordinals need margins between the winner and the
 * runner-up for the same reason.
 */
import type { Scene, SceneObject, SizeClass } from './scene';
import { category as categoryInfo, type Supercategory } from './vocab';

export type RegionX = 'left' | 'centre' | 'right';
export type RegionY = 'top' | 'middle' | 'bottom';

/** Per-object attribute constraints (all must hold). */
export interface Attr {
  category?: string;
  supercategory?: Supercategory;
  colour?: string;
  /** "the only object that is not red". */
  notColour?: string;
  size?: SizeClass;
  /** Horizontal third of the image the visible centroid lies in. */
  regionX?: RegionX;
  regionY?: RegionY;
  /** Exact corner count of the category (null-corner categories give `maybe`). */
  corners?: number;
  /** How many objects of the scene share this object's colour (itself included). */
  colourCount?: number;
  /** How many objects of the scene share this object's category (itself included). */
  categoryCount?: number;
  /** Partly hidden by a later object. */
  occluded?: boolean;
}

export type RelKind = 'leftOf' | 'rightOf' | 'above' | 'below' | 'hiddenBy' | 'hiding' | 'biggerThan' | 'smallerThan' | 'nearest';

/** A relation to another object, itself given by an expression that must identify it. */
export interface Relation {
  kind: RelKind;
  landmark: Expr;
}

export type SortKey = 'x' | 'y' | 'area' | 'corners';

/** How the target is picked among the objects satisfying attr and relation. */
export type Select =
  | { kind: 'only' }
  /** Largest (max) or smallest (min) key; `n` = the sentence states the candidate count ("the larger of the two"). */
  | { kind: 'extreme'; key: SortKey; dir: 'min' | 'max'; n?: number }
  /** k-th (1-based) in increasing (min) or decreasing (max) key order: "second from the left" = x, min, 2. */
  | { kind: 'ordinal'; key: 'x' | 'y'; dir: 'min' | 'max'; k: number }
  /** The middle one of exactly three. */
  | { kind: 'middle'; key: 'x' | 'y' };

export interface Expr {
  attr: Attr;
  rel?: Relation;
  select: Select;
}

export type Truth = 'yes' | 'maybe' | 'no';

/** Margins, as fractions of the image side (positions) or ratios (areas). */
export const MARGINS = {
  /** Centroids closer than this (x image side) are not clearly ordered. */
  position: 0.08,
  /** Half-width of the band around the thirds' borders where region words are uncertain. */
  regionBand: 0.05,
  /** Area ratio for "bigger" / "largest" to be clear. */
  areaRatio: 1.5,
  /** Area ratio below which two objects are clearly NOT in a bigger-than relation. */
  areaSame: 1.15,
  /** Hidden fraction of the full area above which an object is clearly occluded. */
  occludedYes: 0.08,
  /** Hidden fraction below which it clearly is not. */
  occludedNo: 0.02,
  /** Visible fraction a large object needs to be clearly "large" (and clearly not "small"). */
  sizeWordVisible: 0.8,
  /** Distance ratio between the runner-up and the nearest for "closest to" to be clear. */
  nearestRatio: 1.35,
} as const;

const and = (a: Truth, b: Truth): Truth => (a === 'no' || b === 'no' ? 'no' : a === 'maybe' || b === 'maybe' ? 'maybe' : 'yes');
const crisp = (b: boolean): Truth => (b ? 'yes' : 'no');

function regionX(o: SceneObject, size: number): Record<RegionX, Truth> {
  return thirds(o.centroid[0] / size, ['left', 'centre', 'right']) as Record<RegionX, Truth>;
}
function regionY(o: SceneObject, size: number): Record<RegionY, Truth> {
  return thirds(o.centroid[1] / size, ['top', 'middle', 'bottom']) as Record<RegionY, Truth>;
}
function thirds(t: number, names: [string, string, string]): Record<string, Truth> {
  const b = MARGINS.regionBand;
  const out: Record<string, Truth> = {};
  names.forEach((n, i) => {
    const lo = i / 3;
    const hi = (i + 1) / 3;
    if (t >= lo + (i === 0 ? -1 : b) && t <= hi - (i === 2 ? -1 : b)) out[n] = 'yes';
    else if (t >= lo - b && t <= hi + b) out[n] = 'maybe';
    else out[n] = 'no';
  });
  return out;
}

/** Named region of an object's centroid ("top left", "centre"), for reasoning traces. */
export function regionName(o: SceneObject, size: number): string {
  const x = (['left', 'centre', 'right'] as const)[Math.min(2, Math.floor((o.centroid[0] / size) * 3))]!;
  const y = (['top', 'middle', 'bottom'] as const)[Math.min(2, Math.floor((o.centroid[1] / size) * 3))]!;
  if (y === 'middle') return x === 'centre' ? 'centre' : `middle ${x}`;
  return x === 'centre' ? y : `${y} ${x}`;
}

/** Hidden fraction of the full mask. */
function hiddenFraction(o: SceneObject): number {
  return o.fullArea === 0 ? 0 : 1 - o.area / o.fullArea;
}

/** Overlap counts per object pair, memoised: relation templates ask for the same pairs many times. */
const overlapCache = new WeakMap<SceneObject, Map<SceneObject, number>>();

/** Pixels of `under`'s full mask covered by `over`'s full mask (0 when `over` is drawn first). */
function coveredBy(under: SceneObject, over: SceneObject): number {
  if (over.z <= under.z) return 0;
  let row = overlapCache.get(under);
  if (!row) overlapCache.set(under, (row = new Map()));
  const hit = row.get(over);
  if (hit !== undefined) return hit;
  let n = 0;
  for (let p = 0; p < under.full.length; p++) if (under.full[p] === 1 && over.full[p] === 1) n++;
  row.set(over, n);
  return n;
}

/** Truth of one attribute set for one object. */
export function attrTruth(attr: Attr, o: SceneObject, scene: Scene): Truth {
  let t: Truth = 'yes';
  const objs = scene.objects;
  if (attr.category !== undefined) t = and(t, crisp(o.category === attr.category));
  if (attr.supercategory !== undefined) t = and(t, crisp(o.supercategory === attr.supercategory));
  if (attr.colour !== undefined) t = and(t, crisp(o.colour === attr.colour));
  if (attr.notColour !== undefined) t = and(t, crisp(o.colour !== attr.notColour));
  if (attr.size !== undefined) {
    // A large object that is much occluded may look no bigger than a small one.
    const whole = o.area >= MARGINS.sizeWordVisible * o.fullArea;
    const s: Truth = o.sizeClass === attr.size ? (attr.size === 'large' && !whole ? 'maybe' : 'yes') : attr.size === 'small' && !whole ? 'maybe' : 'no';
    t = and(t, s);
  }
  if (attr.regionX !== undefined) t = and(t, regionX(o, scene.size)[attr.regionX]);
  if (attr.regionY !== undefined) t = and(t, regionY(o, scene.size)[attr.regionY]);
  if (attr.corners !== undefined) {
    const c = categoryInfo(o.category).corners;
    t = and(t, c === null ? (o.supercategory === 'shape' ? 'maybe' : 'no') : crisp(c === attr.corners));
  }
  if (attr.colourCount !== undefined) t = and(t, crisp(objs.filter((q) => q.colour === o.colour).length === attr.colourCount));
  if (attr.categoryCount !== undefined) t = and(t, crisp(objs.filter((q) => q.category === o.category).length === attr.categoryCount));
  if (attr.occluded !== undefined) {
    const h = hiddenFraction(o);
    const occ: Truth = h >= MARGINS.occludedYes ? 'yes' : h <= MARGINS.occludedNo ? 'no' : 'maybe';
    t = and(t, attr.occluded ? occ : occ === 'yes' ? 'no' : occ === 'no' ? 'yes' : 'maybe');
  }
  return t;
}

/** Truth of `o kind lm` (o is the candidate, lm the landmark); `nearest` is handled by resolve. */
export function relationTruth(kind: RelKind, o: SceneObject, lm: SceneObject, size: number): Truth {
  if (o === lm) return 'no';
  const m = MARGINS.position * size;
  const dx = lm.centroid[0] - o.centroid[0]; // > 0: o is left of lm
  const dy = lm.centroid[1] - o.centroid[1]; // > 0: o is above lm
  const directional = (along: number, across: number): Truth => {
    if (along >= m && Math.abs(across) <= along) return 'yes';
    if (along < m / 3 || Math.abs(across) > 2.5 * along) return 'no';
    return 'maybe';
  };
  switch (kind) {
    case 'leftOf': return directional(dx, dy);
    case 'rightOf': return directional(-dx, dy);
    case 'above': return directional(dy, dx);
    case 'below': return directional(-dy, dx);
    case 'hiddenBy':
    case 'hiding': {
      const [under, over] = kind === 'hiddenBy' ? [o, lm] : [lm, o];
      const n = coveredBy(under, over);
      if (n >= Math.max(3, MARGINS.occludedYes * under.fullArea)) return 'yes';
      return n === 0 ? 'no' : 'maybe';
    }
    case 'biggerThan':
    case 'smallerThan': {
      const ratio = kind === 'biggerThan' ? o.area / Math.max(1, lm.area) : lm.area / Math.max(1, o.area);
      return ratio >= MARGINS.areaRatio ? 'yes' : ratio <= MARGINS.areaSame ? 'no' : 'maybe';
    }
    case 'nearest':
      throw new Error('relationTruth: nearest is a selection, resolved in resolve()');
  }
}

/** Result of evaluating an expression: `sure` objects certainly match, `possible` might (sure is a subset). */
export interface Resolution {
  sure: number[];
  possible: number[];
}

function keyOf(key: SortKey, o: SceneObject): number {
  switch (key) {
    case 'x': return o.centroid[0];
    case 'y': return o.centroid[1];
    case 'area': return o.area;
    case 'corners': return categoryInfo(o.category).corners ?? Number.NaN;
  }
}

/** Are a (preferred) and b (runner-up) clearly apart on `key`? */
function clearlyApart(key: SortKey, a: SceneObject, b: SceneObject, size: number): boolean {
  const ka = keyOf(key, a);
  const kb = keyOf(key, b);
  if (key === 'area') return Math.max(ka, kb) >= MARGINS.areaRatio * Math.min(ka, kb);
  if (key === 'corners') return ka !== kb;
  return Math.abs(ka - kb) >= MARGINS.position * size;
}

const AMBIGUOUS = (all: number[]): Resolution => ({ sure: [], possible: all });

/** Which objects does `expr` refer to? */
export function resolve(expr: Expr, scene: Scene): Resolution {
  const objs = scene.objects;
  const all = objs.map((_, i) => i);
  let lm: SceneObject | null = null;
  if (expr.rel) {
    const r = resolve(expr.rel.landmark, scene);
    if (r.sure.length !== 1 || r.possible.length !== 1) return AMBIGUOUS(all);
    lm = objs[r.sure[0]!]!;
  }
  const truth = objs.map((o) => {
    let t = attrTruth(expr.attr, o, scene);
    if (lm && expr.rel && expr.rel.kind !== 'nearest') t = and(t, relationTruth(expr.rel.kind, o, lm, scene.size));
    if (lm && o === lm) t = 'no';
    return t;
  });
  const yes = all.filter((i) => truth[i] === 'yes');
  const possible = all.filter((i) => truth[i] !== 'no');
  const nearest = expr.rel?.kind === 'nearest';
  if (expr.select.kind === 'only' && !nearest) return { sure: yes, possible };
  // A selection over a set with uncertain members is itself uncertain.
  if (yes.length !== possible.length) return AMBIGUOUS(possible);
  const cands = yes.map((i) => objs[i]!);
  if (nearest) {
    if (expr.select.kind !== 'only' || cands.length < 2 || !lm) return AMBIGUOUS(possible);
    const d = (o: SceneObject): number => Math.hypot(o.centroid[0] - lm!.centroid[0], o.centroid[1] - lm!.centroid[1]);
    const sorted = [...cands].sort((a, b) => d(a) - d(b));
    const [a, b] = [sorted[0]!, sorted[1]!];
    return d(b) >= MARGINS.nearestRatio * d(a) + 1 ? { sure: [a.z], possible: [a.z] } : AMBIGUOUS([a.z, b.z]);
  }
  const sel = expr.select;
  if (sel.kind === 'extreme') {
    if (cands.length < 2 || (sel.n !== undefined && cands.length !== sel.n)) return AMBIGUOUS(possible);
    if (sel.key === 'corners' && cands.some((o) => Number.isNaN(keyOf('corners', o)))) return AMBIGUOUS(possible);
    const sign = sel.dir === 'max' ? -1 : 1;
    const sorted = [...cands].sort((a, b) => sign * (keyOf(sel.key, a) - keyOf(sel.key, b)));
    const [a, b] = [sorted[0]!, sorted[1]!];
    return clearlyApart(sel.key, a, b, scene.size) ? { sure: [a.z], possible: [a.z] } : AMBIGUOUS([a.z, b.z]);
  }
  if (sel.kind === 'ordinal') {
    if (cands.length < sel.k) return AMBIGUOUS(possible);
    const sign = sel.dir === 'max' ? -1 : 1;
    const sorted = [...cands].sort((a, b) => sign * (keyOf(sel.key, a) - keyOf(sel.key, b)));
    const t = sorted[sel.k - 1]!;
    const prev = sorted[sel.k - 2];
    const next = sorted[sel.k];
    if (prev && !clearlyApart(sel.key, t, prev, scene.size)) return AMBIGUOUS([t.z, prev.z]);
    if (next && !clearlyApart(sel.key, t, next, scene.size)) return AMBIGUOUS([t.z, next.z]);
    return { sure: [t.z], possible: [t.z] };
  }
  if (sel.kind === 'middle') {
    if (cands.length !== 3) return AMBIGUOUS(possible);
    const sorted = [...cands].sort((a, b) => keyOf(sel.key, a) - keyOf(sel.key, b));
    const [a, t, c] = [sorted[0]!, sorted[1]!, sorted[2]!];
    return clearlyApart(sel.key, t, a, scene.size) && clearlyApart(sel.key, t, c, scene.size)
      ? { sure: [t.z], possible: [t.z] } : AMBIGUOUS([a.z, t.z, c.z]);
  }
  return AMBIGUOUS(possible);
}

/** True when `expr` refers to exactly the object with draw index `target` and nothing else could be meant. */
export function identifies(expr: Expr, scene: Scene, target: number): boolean {
  const r = resolve(expr, scene);
  return r.sure.length === 1 && r.possible.length === 1 && r.sure[0] === target;
}
