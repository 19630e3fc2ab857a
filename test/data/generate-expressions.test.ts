import { describe, expect, it } from 'vitest';
import { Rng } from '../../src/random';
import { describeTarget, GEN_FAMILIES, tokenize, type Expression, type GenFamily } from '../../src/data/generate/expressions';
import { composeScene, sampleScene, type Scene } from '../../src/data/generate/scene';
import { identifies, resolve } from '../../src/data/generate/semantics';
import { CATEGORIES, COLOURS, LOCATION_WORDS } from '../../src/data/generate/vocab';

interface Item { family: GenFamily; scene: Scene; target: number; e: Expression }

/** Every expression of every family for every object of `n` sampled scenes. */
function corpus(n: number, seed: number): Item[] {
  const root = new Rng(seed);
  const out: Item[] = [];
  for (let i = 0; i < n; i++) {
    const rng = root.fork(i);
    const scene = sampleScene(rng.fork('scene'), 64, { minObjects: 3, maxObjects: 6, minVisibleFraction: 0.6 });
    for (const family of GEN_FAMILIES) {
      for (const o of scene.objects) {
        for (const e of describeTarget(family, scene, o.z, 3, rng.fork(`${family}${o.z}`))) out.push({ family, scene, target: o.z, e });
      }
    }
  }
  return out;
}

const ITEMS = corpus(60, 123);

describe('generated referring expressions', () => {
  it('produces a sizeable corpus in every family', () => {
    for (const f of GEN_FAMILIES) expect(ITEMS.filter((x) => x.family === f).length).toBeGreaterThan(100);
  });

  it('every expression, re-evaluated against its scene, picks exactly its target', () => {
    for (const { e, scene, target } of ITEMS) {
      const r = resolve(e.expr, scene);
      expect(r.possible).toEqual([target]);
      expect(r.sure).toEqual([target]);
    }
  });

  it('short attribute-only sentences, read back from the WORDS alone, match exactly the target', () => {
    // an independent reading of "big red circle" / "red one": colour, size and noun words
    const colours = new Set(COLOURS.map((c) => c.name));
    const nouns = new Map(CATEGORIES.map((c) => [c.name, c.name]));
    let checked = 0;
    for (const { family, e, scene, target } of ITEMS) {
      if (!(family === 'refcoco' || family === 'refcoco+') || !(e.template === 'attr' || e.template === 'colour')) continue;
      const words = tokenize(e.text);
      const colour = words.find((w) => colours.has(w));
      const size = words.some((w) => w === 'big' || w === 'large') ? 'large' : words.some((w) => w === 'small' || w === 'little') ? 'small' : undefined;
      const cat = words.map((w) => nouns.get(w)).find(Boolean);
      const matches = scene.objects.filter((o) => (!colour || o.colour === colour) && (!size || o.sizeClass === size) && (!cat || o.category === cat));
      expect(matches.map((o) => o.z), e.text).toEqual([target]);
      checked++;
    }
    expect(checked).toBeGreaterThan(100);
  });

  it('short location sentences ("left red circle", "upper ghost"), read from the words, pick the target', () => {
    const colours = new Set(COLOURS.map((c) => c.name));
    const nouns = new Set(CATEGORIES.map((c) => c.name));
    const dirs: Record<string, [0 | 1, 1 | -1]> = { left: [0, 1], leftmost: [0, 1], right: [0, -1], rightmost: [0, -1], top: [1, 1], upper: [1, 1], bottom: [1, -1], lower: [1, -1] };
    let checked = 0;
    for (const { family, e, scene, target } of ITEMS) {
      if (family !== 'refcoco' || e.template !== 'loc-extreme') continue;
      const words = tokenize(e.text);
      const colour = words.find((w) => colours.has(w));
      const cat = words.find((w) => nouns.has(w));
      const dir = words.map((w) => dirs[w]).find(Boolean)!;
      expect(dir, e.text).toBeDefined();
      const [axis, sign] = dir;
      const cands = scene.objects.filter((o) => (!colour || o.colour === colour) && (!cat || o.category === cat));
      const best = [...cands].sort((p, q) => sign * (p.centroid[axis] - q.centroid[axis]))[0]!;
      expect(best.z, e.text).toBe(target);
      checked++;
    }
    expect(checked).toBeGreaterThan(50);
  });

  it('RefCOCO+-like sentences contain no location words', () => {
    const banned = new Set(LOCATION_WORDS);
    for (const { family, e } of ITEMS) {
      if (family !== 'refcoco+') continue;
      expect(tokenize(e.text).filter((w) => banned.has(w)), e.text).toEqual([]);
    }
  });

  it('RefCOCO-like sentences use location words; RefCOCOg-like ones are longer', () => {
    const banned = new Set(LOCATION_WORDS);
    const mean = (f: GenFamily): number => {
      const xs = ITEMS.filter((x) => x.family === f);
      return xs.reduce((a, x) => a + tokenize(x.e.text).length, 0) / xs.length;
    };
    const located = ITEMS.filter((x) => x.family === 'refcoco' && tokenize(x.e.text).some((w) => banned.has(w))).length;
    expect(located / ITEMS.filter((x) => x.family === 'refcoco').length).toBeGreaterThan(0.25);
    expect(mean('refcocog')).toBeGreaterThan(mean('refcoco') + 3);
    expect(mean('refcoco')).toBeLessThan(5);
  });

  it('every reasoning trace has 2-3 sentences and ends naming the target and its place', () => {
    for (const { e, scene, target } of ITEMS) {
      const o = scene.objects[target]!;
      const sentences = e.reasoning.split(/(?<=\.)\s+/);
      expect(sentences.length).toBeGreaterThanOrEqual(2);
      expect(sentences.length).toBeLessThanOrEqual(3);
      expect(sentences[sentences.length - 1]).toMatch(new RegExp(`^It is the ${o.colour} ${o.category} (at the|in the) [a-z ]+\\.$`));
      expect(e.reasoning).not.toMatch(/There is one [^.]*\. Only one of them/); // no narrowing of a single candidate
    }
  });

  it('the ReasonSeg-like family uses many kinds of reasoning', () => {
    const kinds = new Set(ITEMS.filter((x) => x.family === 'reasonseg').map((x) => x.e.template));
    for (const k of ['knowledge-colour', 'knowledge-category', 'ordinal', 'relation', 'comparison']) expect(kinds).toContain(k);
    expect(kinds.size).toBeGreaterThanOrEqual(8);
  });

  it('gives no sentence for an object that cannot be told apart (two identical red circles)', () => {
    // identical, same row, 2 px apart: neither position nor size nor colour separates them
    const s = composeScene(64, [
      { category: 'circle', colour: 'red', sizeClass: 'small', cx: 30, cy: 32, r: 5 },
      { category: 'circle', colour: 'red', sizeClass: 'small', cx: 42, cy: 33, r: 5 },
    ]);
    for (const f of GEN_FAMILIES) {
      for (const e of describeTarget(f, s, 0, 3, new Rng(1))) expect(identifies(e.expr, s, 0)).toBe(true);
    }
    expect(describeTarget('refcoco+', s, 0, 3, new Rng(1))).toEqual([]); // appearance cannot separate them
    expect(describeTarget('refcoco', s, 0, 3, new Rng(1)).length).toBeGreaterThan(0); // "left circle" can
  });

  it('is deterministic for a given Rng stream', () => {
    const s = sampleScene(new Rng(3), 64, { minObjects: 4, maxObjects: 6, minVisibleFraction: 0.6 });
    const a = describeTarget('reasonseg', s, 0, 3, new Rng(7)).map((e) => e.text);
    const b = describeTarget('reasonseg', s, 0, 3, new Rng(7)).map((e) => e.text);
    expect(b).toEqual(a);
  });
});
