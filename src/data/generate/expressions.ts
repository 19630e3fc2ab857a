/**
 * Referring expressions of the generated benchmark, in four families that mirror
 * the paper's benchmarks (LENS Sec. 4.1; RefCOCO / RefCOCO+ Yu et al. 2016,
 * RefCOCOg Nagaraja et al. 2016, ReasonSeg Lai et al. 2024):
 * - refcoco: short, may use location words ("left red circle");
 * - refcoco+: appearance only, no location words ("bigger red circle");
 * - refcocog: longer, relational ("the red circle to the left of the blue star");
 * - reasonseg: implicit, one step of reasoning ("the shape with the most corners").
 *
 * Each template builds the structured meaning (semantics.ts) next to the words;
 * a draft is kept only when its structure identifies the target and nothing else.
 * Every sentence comes with a 2-3 sentence reasoning trace ending in the target's
 * name and place (used to teach the LENS answer format in stage 0b) and a label
 * ("blue star").
 */
import type { Rng } from '../../random';
import type { Scene, SceneObject } from './scene';
import { identifies, regionName, resolve, type Attr, type Expr, type RelKind, type Select } from './semantics';
import { CATEGORIES, category as categoryInfo, colour as colourInfo, NUMBER_WORDS, ORDINAL_WORDS } from './vocab';

/** The four generated families (written under the names of the real datasets). */
export type GenFamily = 'refcoco' | 'refcoco+' | 'refcocog' | 'reasonseg';
export const GEN_FAMILIES: readonly GenFamily[] = ['refcoco', 'refcoco+', 'refcocog', 'reasonseg'];

/** A generated sentence about one target. */
export interface Expression {
  /** The sentence, lower case, no final full stop (as RefCOCO's `sent`). */
  text: string;
  /** Structured meaning, checked to identify exactly the target. */
  expr: Expr;
  /** 2-3 short sentences that reach the answer. */
  reasoning: string;
  /** Template id (for statistics and tests). */
  template: string;
}

type Draft = Expression;
interface Ctx {
  scene: Scene;
  t: SceneObject;
  rng: Rng;
}
type Template = (c: Ctx) => Draft[];

// ---------------------------------------------------------------- words

function noun(a: Attr, plural = false): string {
  if (a.category) return plural ? categoryInfo(a.category).plural : a.category;
  const n = a.supercategory ?? 'object';
  return plural ? `${n}s` : n;
}

/** "[size] [colour] noun"; `one` replaces the noun "object" in RefCOCO-style short forms. */
function np(rng: Rng, a: Attr, opts: { plural?: boolean; one?: boolean } = {}): string {
  const words: string[] = [];
  if (a.size) words.push(a.size === 'small' ? rng.pick(['small', 'little']) : rng.pick(['big', 'large']));
  if (a.colour) words.push(a.colour);
  const n = noun(a, opts.plural);
  words.push(opts.one && n === 'object' ? (opts.plural ? 'ones' : rng.pick(['one', 'thing'])) : n);
  return words.join(' ');
}

/** Plain name for traces: "small red circle". */
function plainNp(a: Attr, plural = false): string {
  return [a.size, a.colour, noun(a, plural)].filter(Boolean).join(' ');
}

const labelOf = (o: SceneObject): string => `${o.colour} ${o.category}`;

function count(n: number): string {
  return NUMBER_WORDS[n] ?? String(n);
}

function capital(s: string): string {
  return s.charAt(0).toUpperCase() + s.slice(1);
}

/** "There are two red circles." / "There is one red circle." */
function there(a: Attr, scene: Scene): string {
  const n = scene.objects.filter((o) => matchesCrisp(a, o, scene)).length;
  return n === 1 ? `There is one ${plainNp(a)}.` : `There are ${count(n)} ${plainNp(a, true)}.`;
}

/** "There are two red circles. Only one is at the top." / "There is one red circle, at the top." */
function narrow(a: Attr, scene: Scene, what: string): string[] {
  const n = scene.objects.filter((o) => matchesCrisp(a, o, scene)).length;
  return n === 1 ? [`There is one ${plainNp(a)}, ${what}.`] : [there(a, scene), `Only one of them is ${what}.`];
}

function where(o: SceneObject, scene: Scene): string {
  const r = regionName(o, scene.size);
  return r === 'centre' ? 'in the centre' : `at the ${r}`;
}

/** Final sentence of every trace: name and place of the answer. */
function final(o: SceneObject, scene: Scene): string {
  return `It is the ${labelOf(o)} ${where(o, scene)}.`;
}

function matchesCrisp(a: Attr, o: SceneObject, scene: Scene): boolean {
  const r = resolve({ attr: a, select: { kind: 'only' } }, scene);
  return r.sure.includes(o.z);
}

/** Short, unique names of the other objects, usable as landmarks ("blue star"). */
function landmarks(c: Ctx): Array<{ o: SceneObject; expr: Expr; name: string }> {
  const out: Array<{ o: SceneObject; expr: Expr; name: string }> = [];
  for (const o of c.scene.objects) {
    if (o === c.t) continue;
    for (const a of basicAttrs(o)) {
      const expr: Expr = { attr: a, select: { kind: 'only' } };
      if (identifies(expr, c.scene, o.z)) {
        out.push({ o, expr, name: plainNp(a) });
        break;
      }
    }
  }
  return out;
}

/** Attribute sets that are true of `o` by construction, shortest first. */
function basicAttrs(o: SceneObject): Attr[] {
  return [
    { category: o.category },
    { colour: o.colour, category: o.category },
    { size: o.sizeClass, category: o.category },
    { size: o.sizeClass, colour: o.colour, category: o.category },
  ];
}

const only: Select = { kind: 'only' };
const draft = (template: string, expr: Expr, text: string, reasoning: string[]): Draft => ({ template, expr, text, reasoning: reasoning.join(' ') });

const DIR_WORD = { 'x:min': 'left', 'x:max': 'right', 'y:min': 'top', 'y:max': 'bottom' } as const;
type DirKey = keyof typeof DIR_WORD;
const DIRS: DirKey[] = ['x:min', 'x:max', 'y:min', 'y:max'];
const splitDir = (d: DirKey): { key: 'x' | 'y'; dir: 'min' | 'max' } => {
  const [key, dir] = d.split(':') as ['x' | 'y', 'min' | 'max'];
  return { key, dir };
};
const FURTHEST = { 'x:min': 'furthest to the left', 'x:max': 'furthest to the right', 'y:min': 'highest up', 'y:max': 'lowest down' } as const;

// ---------------------------------------------------------------- shared templates

const attrOnly = (short: boolean): Template => (c) =>
  basicAttrs(c.t).map((a) => {
    const n = np(c.rng, a);
    const text = short ? n : `${c.rng.pick(['the', 'a'])} ${n} ${c.rng.pick(categoryClause(c.t.category))}`;
    return draft(short ? 'attr' : 'attr-long', { attr: a, select: only }, text, [there(a, c.scene), final(c.t, c.scene)]);
  });

/** A descriptive clause per category, for the longer RefCOCOg-like sentences. */
function categoryClause(cat: string): string[] {
  const table: Record<string, string[]> = {
    person: ['with arms stretched out', 'standing with legs apart'],
    snowman: ['made of two snowballs', 'with a round body'],
    robot: ['with a square head', 'standing on two legs'],
    ghost: ['with a wavy bottom edge', 'floating in the picture'],
    circle: ['that is perfectly round', 'in the picture'],
    square: ['with four equal sides', 'in the picture'],
    triangle: ['pointing upwards', 'with three sides'],
    star: ['with five points', 'in the picture'],
    heart: ['like a love symbol', 'in the picture'],
    hexagon: ['with six sides', 'in the picture'],
    cross: ['shaped like a plus sign', 'in the picture'],
    ring: ['with a hole in it', 'shaped like a doughnut'],
    diamond: ['standing on one corner', 'in the picture'],
  };
  return table[cat] ?? ['in the picture'];
}

/** Superlatives by size ("biggest circle", "the smaller of the two red stars"). */
const sizeExtreme = (style: 'short' | 'long'): Template => (c) => {
  const out: Draft[] = [];
  const t = c.t;
  const sets: Attr[] = [{ category: t.category }, { colour: t.colour, category: t.category }, { colour: t.colour }, {}, { supercategory: t.supercategory }];
  for (const a of sets) {
    const n = c.scene.objects.filter((o) => matchesCrisp(a, o, c.scene)).length;
    for (const dir of ['max', 'min'] as const) {
      const two = n === 2;
      const sel: Select = { kind: 'extreme', key: 'area', dir, ...(two ? { n: 2 } : {}) };
      const word = dir === 'max' ? (two ? c.rng.pick(['bigger', 'larger']) : c.rng.pick(['biggest', 'largest'])) : two ? 'smaller' : 'smallest';
      let text: string;
      if (style === 'short') text = `${word} ${np(c.rng, a, { one: true })}`;
      else text = two ? `the ${word} of the two ${np(c.rng, a, { plural: true })}` : `the ${word} ${np(c.rng, a)} in the picture`;
      out.push(draft(style === 'short' ? 'size-extreme' : 'size-extreme-long', { attr: a, select: sel }, text, [
        there(a, c.scene),
        `The ${dir === 'max' ? (two ? 'bigger' : 'biggest') : two ? 'smaller' : 'smallest'} one is the ${labelOf(t)}.`,
        final(t, c.scene),
      ]));
    }
  }
  return out;
};

function relPhrase(rng: Rng, kind: RelKind, lm: string, figure: boolean, appearanceOnly = false): string {
  if (appearanceOnly && kind === 'hiddenBy') return `${rng.pick(['partly covered by', 'half hidden by'])} the ${lm}`;
  if (appearanceOnly && kind === 'hiding') return `${rng.pick(['covering', 'partly covering'])} the ${lm}`;
  const stand = figure ? rng.pick(['standing ', '', '']) : rng.pick(['', 'that is ', 'sitting ']);
  switch (kind) {
    case 'leftOf': return `${stand}${rng.pick(['to the left of', 'just left of', 'on the left of'])} the ${lm}`;
    case 'rightOf': return `${stand}${rng.pick(['to the right of', 'just right of', 'on the right of'])} the ${lm}`;
    // not "higher / lower than": that is true of anything a little higher, even far to the side
    case 'above': return `${stand}${rng.pick(['above', 'directly above', 'right above'])} the ${lm}`;
    case 'below': return `${stand}${rng.pick(['below', 'underneath', 'directly below'])} the ${lm}`;
    case 'nearest': return `${rng.pick(['closest to', 'nearest to', 'that is closest to'])} the ${lm}`;
    case 'hiddenBy': return `${rng.pick(['that is partly hidden behind', 'partly covered by', 'half hidden by'])} the ${lm}`;
    case 'hiding': return `${rng.pick(['that is partly covering', 'lying on top of', 'in front of'])} the ${lm}`;
    case 'biggerThan': return `that is ${rng.pick(['bigger', 'larger'])} than the ${lm}`;
    case 'smallerThan': return `that is smaller than the ${lm}`;
  }
}

function relFact(kind: RelKind): string {
  return { leftOf: 'to its left', rightOf: 'to its right', above: 'above it', below: 'below it', nearest: 'closest to it',
    hiddenBy: 'partly hidden by it', hiding: 'partly covering it', biggerThan: 'bigger than it', smallerThan: 'smaller than it' }[kind];
}

/** Relations to a landmark ("the red circle to the left of the blue star"). */
const relational = (kinds: RelKind[], targetSets: (t: SceneObject) => Attr[], template: string, appearanceOnly = false): Template => (c) => {
  const out: Draft[] = [];
  const fig = c.t.supercategory === 'figure';
  for (const lm of landmarks(c)) {
    for (const kind of kinds) {
      for (const a of targetSets(c.t)) {
        const expr: Expr = { attr: a, rel: { kind, landmark: lm.expr }, select: only };
        const cands = c.scene.objects.filter((o) => o !== lm.o && matchesCrisp(a, o, c.scene)).length;
        const text = `the ${np(c.rng, a)} ${relPhrase(c.rng, kind, lm.name, fig, appearanceOnly)}`;
        const first = `The ${lm.name} is ${where(lm.o, c.scene)}.`;
        const second = cands === 1
          ? `The only ${plainNp(a)} is ${relFact(kind)}.`
          : `Of the ${count(cands)} ${plainNp(a, true)}, one is ${relFact(kind)}.`;
        out.push(draft(template, expr, text, [first, second, final(c.t, c.scene)]));
      }
    }
  }
  return out;
};

// ---------------------------------------------------------------- RefCOCO-like

/** "left red circle", "circle on the right", "far left". */
const locationExtreme: Template = (c) => {
  const out: Draft[] = [];
  const t = c.t;
  for (const a of [{ category: t.category }, { colour: t.colour, category: t.category }, { colour: t.colour }, {}] as Attr[]) {
    for (const d of DIRS) {
      const w = DIR_WORD[d];
      const n = np(c.rng, a, { one: true });
      const horizontal = d[0] === 'x';
      const forms = Object.keys(a).length === 0
        ? horizontal ? [`far ${w}`, `${n} on the far ${w}`, `${n} on ${w}`, `${w} ${n}`] : [`${n} at the very ${w}`, `${n} at ${w}`, `${w} ${n}`]
        : horizontal ? [`${w} ${n}`, `${n} on ${w}`, `${n} on the ${w}`, `${w}most ${n}`]
          : [`${w} ${n}`, `${n} at ${w}`, `${n} at the ${w}`, `${d === 'y:min' ? 'upper' : 'lower'} ${n}`];
      out.push(draft('loc-extreme', { attr: a, select: { kind: 'extreme', ...splitDir(d) } }, c.rng.pick(forms), [
        there(a, c.scene),
        `The one ${FURTHEST[d]} is the target.`,
        final(t, c.scene),
      ]));
    }
  }
  return out;
};

/** "top left circle", "red star in the bottom right corner". */
const locationRegion: Template = (c) => {
  const out: Draft[] = [];
  const t = c.t;
  const name = regionName(t, c.scene.size); // e.g. "top left", "middle right", "centre", "top"
  const [first, second] = name.split(' ') as [string, string | undefined];
  const rx = second ?? (first === 'centre' ? 'centre' : 'centre');
  const ry = second ? first : first === 'centre' ? 'middle' : first;
  for (const base of [{ category: t.category }, { colour: t.colour, category: t.category }] as Attr[]) {
    const a: Attr = { ...base };
    let words: string[];
    if (rx !== 'centre' && ry !== 'middle') {
      Object.assign(a, { regionX: rx, regionY: ry });
      const n = np(c.rng, base);
      words = [`${ry} ${rx} ${n}`, `${n} ${ry} ${rx}`, `${n} in the ${ry} ${rx} corner`];
    } else if (rx !== 'centre') {
      Object.assign(a, { regionX: rx });
      const n = np(c.rng, base);
      words = [`${n} on the ${rx} side`, `${n} at ${rx}`];
    } else if (ry !== 'middle') {
      Object.assign(a, { regionY: ry });
      const n = np(c.rng, base);
      words = [`${n} at the ${ry}`, `${n} along the ${ry}`];
    } else {
      Object.assign(a, { regionX: 'centre', regionY: 'middle' });
      const n = np(c.rng, base);
      words = [`${n} in the centre`, `centre ${n}`];
    }
    out.push(draft('loc-region', { attr: a, select: only }, c.rng.pick(words), [
      ...narrow(base, c.scene, where(t, c.scene)),
      final(t, c.scene),
    ]));
  }
  return out;
};

/** "middle circle" among three in a row. */
const locationMiddle: Template = (c) =>
  ([{ category: c.t.category }, { colour: c.t.colour, category: c.t.category }, {}] as Attr[]).flatMap((a) =>
    (['x', 'y'] as const).map((key) => {
      const n = np(c.rng, a, { one: true });
      const text = key === 'x' ? c.rng.pick([`middle ${n}`, `${n} in the middle`]) : c.rng.pick([`middle ${n} of the column`, `${n} in the middle of the column`]);
      return draft('loc-middle', { attr: a, select: { kind: 'middle', key } }, text, [
        `There are three ${plainNp(a, true)} ${key === 'x' ? 'from left to right' : 'from top to bottom'}.`,
        'The middle one is the target.',
        final(c.t, c.scene),
      ]);
    }));

// ---------------------------------------------------------------- RefCOCO+-like

const colourOnly: Template = (c) => {
  const a: Attr = { colour: c.t.colour };
  return [draft('colour', { attr: a, select: only }, `${c.t.colour} ${c.rng.pick(['one', 'thing', 'object'])}`, [there(a, c.scene), final(c.t, c.scene)])];
};

/** "partly hidden circle" / "fully visible red star". */
const occlusion: Template = (c) => {
  const out: Draft[] = [];
  for (const base of [{ category: c.t.category }, { colour: c.t.colour, category: c.t.category }] as Attr[]) {
    for (const occ of [true, false]) {
      const n = np(c.rng, base);
      const text = occ ? c.rng.pick([`partly hidden ${n}`, `${n} partly covered`, `half covered ${n}`]) : c.rng.pick([`uncovered ${n}`, `${n} fully visible`, `whole ${n}`]);
      out.push(draft('occlusion', { attr: { ...base, occluded: occ }, select: only }, text, [
        ...narrow(base, c.scene, occ ? 'partly hidden' : 'fully visible'),
        final(c.t, c.scene),
      ]));
    }
  }
  return out;
};

/** Appearance-only relations for RefCOCO+ (no location words). */
const plusRelations: Template = (c) =>
  relational(['hiddenBy', 'hiding', 'biggerThan', 'smallerThan'], (t) => [{ category: t.category }, { colour: t.colour, category: t.category }], 'appearance-rel', true)(c)
    .map((d) => ({ ...d, text: d.text.replace(/^the /, '') }));

// ---------------------------------------------------------------- RefCOCOg-like

/** "the red circle that is furthest to the left" / "the star in the top left corner of the picture". */
const longPosition: Template = (c) => {
  const out: Draft[] = [];
  const t = c.t;
  for (const a of [{ category: t.category }, { colour: t.colour, category: t.category }, { supercategory: t.supercategory }] as Attr[]) {
    for (const d of DIRS) {
      const n = np(c.rng, a);
      out.push(draft('position-long', { attr: a, select: { kind: 'extreme', ...splitDir(d) } },
        c.rng.pick([`the ${n} that is ${FURTHEST[d]}`, `the ${n} ${FURTHEST[d]} in the picture`]), [
          there(a, c.scene), `The one ${FURTHEST[d]} is the target.`, final(t, c.scene),
        ]));
    }
  }
  return out;
};

const gRelations = relational(['leftOf', 'rightOf', 'above', 'below', 'nearest', 'hiddenBy', 'hiding'],
  (t) => [{ category: t.category }, { colour: t.colour, category: t.category }, { size: t.sizeClass, category: t.category }, { supercategory: t.supercategory }, { colour: t.colour }],
  'relation');

// ---------------------------------------------------------------- ReasonSeg-like

const knowledgeColour: Template = (c) => {
  const k = c.rng.pick(colourInfo(c.t.colour).knowledge);
  return ([{ colour: c.t.colour }, { colour: c.t.colour, supercategory: c.t.supercategory }, { colour: c.t.colour, size: c.t.sizeClass }] as Attr[]).map((a) => {
    const n = a.size ? `${a.size} ${noun(a)}` : noun(a);
    const text = c.rng.pick([`the ${n} that is ${k.phrase}`, `the ${n} with ${k.phrase}`, `find the ${n} that has ${k.phrase}`]);
    return draft('knowledge-colour', { attr: a, select: only }, text, [k.fact, there(a, c.scene), final(c.t, c.scene)]);
  });
};

const knowledgeCategory: Template = (c) => {
  const k = c.rng.pick(categoryInfo(c.t.category).knowledge);
  const bare: Attr = { category: c.t.category };
  const coloured: Attr = { category: c.t.category, colour: c.t.colour };
  return [
    draft('knowledge-category', { attr: bare, select: only }, k.phrase, [k.fact, there(bare, c.scene), final(c.t, c.scene)]),
    draft('knowledge-category', { attr: coloured, select: only }, `${k.phrase}, the ${c.t.colour} one`, [k.fact, there(coloured, c.scene), final(c.t, c.scene)]),
  ];
};

function cornersFact(scene: Scene): string {
  const seen = [...new Set(scene.objects.filter((o) => o.supercategory === 'shape').map((o) => o.category))];
  const parts = seen.map((n) => {
    const k = categoryInfo(n).corners;
    return `a ${n} has ${k === 0 ? 'no' : count(k ?? 0)} corner${k === 1 ? '' : 's'}`;
  });
  const s = parts.length > 1 ? `${parts.slice(0, -1).join(', ')} and ${parts[parts.length - 1]}` : parts[0] ?? '';
  return `${capital(s)}.`;
}

const corners: Template = (c) => {
  const out: Draft[] = [];
  const shape: Attr = { supercategory: 'shape' };
  for (const dir of ['max', 'min'] as const) {
    out.push(draft('corners-extreme', { attr: shape, select: { kind: 'extreme', key: 'corners', dir } },
      c.rng.pick([`the shape with the ${dir === 'max' ? 'most' : 'fewest'} corners`, `the shape that has the ${dir === 'max' ? 'most' : 'fewest'} corners`]),
      [cornersFact(c.scene), `The ${c.t.category} has the ${dir === 'max' ? 'most' : 'fewest'}.`, final(c.t, c.scene)]));
  }
  const k = categoryInfo(c.t.category).corners;
  if (k !== null && k > 0) {
    const a: Attr = { supercategory: 'shape', corners: k };
    out.push(draft('corners-exact', { attr: a, select: only }, `the shape with exactly ${count(k)} corners`,
      [cornersFact(c.scene), `Only the ${c.t.category} has ${count(k)}.`, final(c.t, c.scene)]));
  }
  return out;
};

const FROM = { 'x:min': 'from the left', 'x:max': 'from the right', 'y:min': 'from the top', 'y:max': 'from the bottom' } as const;

const ordinal: Template = (c) => {
  const out: Draft[] = [];
  for (const a of [{}, { supercategory: c.t.supercategory }, { category: c.t.category }] as Attr[]) {
    for (const d of DIRS) {
      for (const k of [2, 3]) {
        const sd = splitDir(d);
        const expr: Expr = { attr: a, select: { kind: 'ordinal', ...sd, k } };
        const members = c.scene.objects.filter((o) => matchesCrisp(a, o, c.scene));
        if (members.length < k + 1) continue; // "the second of two" is just "the last"
        const sign = sd.dir === 'max' ? -1 : 1;
        const order = [...members].sort((p, q) => sign * ((sd.key === 'x' ? p.centroid[0] - q.centroid[0] : p.centroid[1] - q.centroid[1])));
        const listed = order.slice(0, k + 1).map(labelOf).join(', ');
        out.push(draft('ordinal', expr, `the ${ORDINAL_WORDS[k]} ${noun(a)} ${FROM[d]}`, [
          `${capital(FROM[d])}, the ${noun(a, true)} are: ${listed}${order.length > k + 1 ? ' and more' : ''}.`,
          `The ${ORDINAL_WORDS[k]} one is the ${labelOf(c.t)}.`,
          final(c.t, c.scene),
        ]));
      }
    }
  }
  return out;
};

function colourTally(scene: Scene): string {
  const counts = new Map<string, number>();
  for (const o of scene.objects) counts.set(o.colour, (counts.get(o.colour) ?? 0) + 1);
  const parts = [...counts].map(([k, n]) => `${k} ${n === 1 ? 'once' : n === 2 ? 'twice' : `${count(n)} times`}`);
  return `Colour counts: ${parts.length > 1 ? `${parts.slice(0, -1).join(', ')} and ${parts[parts.length - 1]}` : parts[0]!}.`;
}

function categoryTally(scene: Scene): string {
  const counts = new Map<string, number>();
  for (const o of scene.objects) counts.set(o.category, (counts.get(o.category) ?? 0) + 1);
  const parts = [...counts].map(([k, n]) => `${count(n)} ${n === 1 ? k : categoryInfo(k).plural}`);
  return `There ${[...counts.values()][0] === 1 ? 'is' : 'are'} ${parts.length > 1 ? `${parts.slice(0, -1).join(', ')} and ${parts[parts.length - 1]}` : parts[0]}.`;
}

const counting: Template = (c) => {
  const out: Draft[] = [];
  const t = c.t;
  out.push(draft('count-colour', { attr: { colourCount: 1 }, select: only },
    c.rng.pick(['the object whose colour appears only once', 'the only object with a colour no other object has']),
    [colourTally(c.scene), `Only ${t.colour} appears once.`, final(t, c.scene)]));
  out.push(draft('count-category', { attr: { categoryCount: 1 }, select: only },
    c.rng.pick(['the only object of its kind', 'the object whose shape appears only once']),
    [categoryTally(c.scene), `Only the ${t.category} appears once.`, final(t, c.scene)]));
  const others = c.scene.objects.filter((o) => o !== t);
  if (others.length > 0 && others.every((o) => o.colour === others[0]!.colour)) {
    const x = others[0]!.colour;
    out.push(draft('odd-one-out', { attr: { notColour: x }, select: only },
      c.rng.pick([`the only object that is not ${x}`, `the odd one out among the ${x} objects`]),
      [`All objects but one are ${x}.`, `The odd one is ${t.colour}.`, final(t, c.scene)]));
  }
  for (const dir of ['max', 'min'] as const) {
    const a: Attr = { colourCount: 2 };
    out.push(draft('count-pair', { attr: a, select: { kind: 'extreme', key: 'area', dir, n: 2 } },
      `the ${dir === 'max' ? 'larger' : 'smaller'} of the two objects that share a colour`,
      [colourTally(c.scene), `The two ${t.colour} objects share a colour; the ${labelOf(t)} is the ${dir === 'max' ? 'larger' : 'smaller'}.`, final(t, c.scene)]));
  }
  return out;
};

const comparison: Template = (c) => {
  const out: Draft[] = [];
  for (const a of [{}, { supercategory: c.t.supercategory }] as Attr[]) {
    for (const dir of ['max', 'min'] as const) {
      out.push(draft('size-superlative', { attr: a, select: { kind: 'extreme', key: 'area', dir } },
        `the ${dir === 'max' ? c.rng.pick(['biggest', 'largest']) : 'smallest'} ${noun(a)} in the picture`,
        [`Comparing sizes, the ${labelOf(c.t)} is the ${dir === 'max' ? 'biggest' : 'smallest'} ${noun(a)}.`, final(c.t, c.scene)]));
    }
  }
  return [...out, ...relational(['biggerThan', 'smallerThan'], (t) => [{ category: t.category }, { supercategory: t.supercategory }], 'comparison')(c)];
};

const reasonRelations = relational(['leftOf', 'rightOf', 'above', 'below', 'nearest', 'hiding', 'hiddenBy'],
  (t) => [{}, { supercategory: t.supercategory }], 'relation');

// ---------------------------------------------------------------- families

interface WeightedTemplate {
  template: Template;
  weight: number;
}

const FAMILY_TEMPLATES: Record<GenFamily, WeightedTemplate[]> = {
  refcoco: [
    { template: attrOnly(true), weight: 2 },
    { template: locationExtreme, weight: 3 },
    { template: locationRegion, weight: 2 },
    { template: locationMiddle, weight: 1 },
    { template: sizeExtreme('short'), weight: 1 },
  ],
  'refcoco+': [
    { template: attrOnly(true), weight: 3 },
    { template: colourOnly, weight: 1 },
    { template: sizeExtreme('short'), weight: 3 },
    { template: occlusion, weight: 1 },
    { template: plusRelations, weight: 2 },
  ],
  refcocog: [
    { template: gRelations, weight: 5 },
    { template: attrOnly(false), weight: 1.5 },
    { template: sizeExtreme('long'), weight: 1.5 },
    { template: longPosition, weight: 2 },
  ],
  reasonseg: [
    // Corner and counting questions are rarely unambiguous in a scene, so they get
    // more weight whenever they are.
    { template: knowledgeColour, weight: 2 },
    { template: knowledgeCategory, weight: 2 },
    { template: corners, weight: 6 },
    { template: ordinal, weight: 2 },
    { template: counting, weight: 6 },
    { template: comparison, weight: 2 },
    { template: reasonRelations, weight: 2 },
  ],
};

/**
 * Up to `k` different sentences of `family` that identify `target` (draw index)
 * in `scene`, each from a different template where possible; [] when the target
 * cannot be described unambiguously in this family.
 */
export function describeTarget(family: GenFamily, scene: Scene, target: number, k: number, rng: Rng): Expression[] {
  const t = scene.objects[target];
  if (!t) throw new RangeError(`describeTarget: no object ${target} in a scene of ${scene.objects.length}`);
  const ctx: Ctx = { scene, t, rng };
  const groups: Array<{ weight: number; drafts: Draft[] }> = [];
  for (const wt of FAMILY_TEMPLATES[family]) {
    const drafts = wt.template(ctx).filter((d) => identifies(d.expr, scene, target));
    if (drafts.length > 0) groups.push({ weight: wt.weight, drafts });
  }
  const out: Expression[] = [];
  const texts = new Set<string>();
  // Weighted sampling of templates without replacement (Efraimidis-Spirakis keys), then one draft each.
  const order = groups.map((g) => ({ g, key: Math.log(rng.next() + 1e-12) / g.weight })).sort((a, b) => b.key - a.key);
  for (let round = 0; out.length < k && round < 3; round++) {
    for (const { g } of order) {
      if (out.length >= k) break;
      const pool = g.drafts.filter((d) => !texts.has(d.text));
      if (pool.length === 0) continue;
      const d = rng.pick(pool);
      texts.add(d.text);
      out.push({ text: d.text, expr: d.expr, reasoning: d.reasoning, template: d.template });
    }
  }
  return out;
}

/** Target label for the answer JSON: "blue star". */
export function targetLabel(o: SceneObject): string {
  return labelOf(o);
}

/** Lower-case word tokens as RefCOCO's `tokens` field. */
export function tokenize(text: string): string[] {
  return text.toLowerCase().match(/[a-z0-9]+/g) ?? [];
}

/** Every category name, for vocabulary checks. */
export const CATEGORY_NAMES = CATEGORIES.map((c) => c.name);
