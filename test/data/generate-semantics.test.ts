import { describe, expect, it } from 'vitest';
import { composeScene, type ObjectSpec } from '../../src/data/generate/scene';
import { attrTruth, identifies, relationTruth, resolve, type Expr } from '../../src/data/generate/semantics';

// 64 px images: the position margin is 0.08 * 64 = 5.12 px; region bands are +-3.2 px around x = 21.3 / 42.7.
const obj = (category: string, colour: string, cx: number, cy: number, r = 5, sizeClass: 'small' | 'large' = 'small'): ObjectSpec =>
  ({ category, colour, sizeClass, cx, cy, r });
const only = { kind: 'only' } as const;

describe('expression semantics against a hand-built scene', () => {
  // two red circles in a row and a large blue square above, between them
  const scene = composeScene(64, [obj('circle', 'red', 10, 40), obj('circle', 'red', 54, 40), obj('square', 'blue', 32, 20, 8, 'large')]);

  it('an attribute matching two objects does not identify either', () => {
    expect(resolve({ attr: { category: 'circle' }, select: only }, scene).possible).toEqual([0, 1]);
    expect(identifies({ attr: { category: 'circle' }, select: only }, scene, 0)).toBe(false);
    expect(identifies({ attr: { colour: 'blue' }, select: only }, scene, 2)).toBe(true);
  });

  it('superlatives pick the clear extreme ("left circle", "right circle")', () => {
    expect(identifies({ attr: { category: 'circle' }, select: { kind: 'extreme', key: 'x', dir: 'min' } }, scene, 0)).toBe(true);
    expect(identifies({ attr: { category: 'circle' }, select: { kind: 'extreme', key: 'x', dir: 'max' } }, scene, 1)).toBe(true);
    // "the biggest object": square 13x13 = 169 px vs circles of 80 px (ratio > 1.5)
    expect(identifies({ attr: {}, select: { kind: 'extreme', key: 'area', dir: 'max' } }, scene, 2)).toBe(true);
    // "the smallest object": the two circles tie
    expect(resolve({ attr: {}, select: { kind: 'extreme', key: 'area', dir: 'min' } }, scene).sure).toEqual([]);
  });

  it('"the larger of the two" fails when the candidate count is not two', () => {
    const e: Expr = { attr: {}, select: { kind: 'extreme', key: 'area', dir: 'max', n: 2 } };
    expect(identifies(e, scene, 2)).toBe(false);
  });

  it('relations: "the circle to the left of the square" is the left circle', () => {
    const star: Expr = { attr: { category: 'square' }, select: only };
    expect(identifies({ attr: { category: 'circle' }, rel: { kind: 'leftOf', landmark: star }, select: only }, scene, 0)).toBe(true);
    expect(identifies({ attr: { category: 'circle' }, rel: { kind: 'rightOf', landmark: star }, select: only }, scene, 1)).toBe(true);
    expect(identifies({ attr: {}, rel: { kind: 'above', landmark: { attr: { category: 'circle' }, select: only } }, select: only }, scene, 2)).toBe(false); // landmark ambiguous
    // 18 px right but 20 px down: more below than right, so "right of" is only a maybe
    const steep = composeScene(64, [obj('circle', 'red', 50, 40), obj('square', 'blue', 32, 20, 8, 'large')]);
    expect(relationTruth('rightOf', steep.objects[0]!, steep.objects[1]!, 64)).toBe('maybe');
  });

  it('three-valued directions: clear (>= margin), borderline (maybe), opposite (no)', () => {
    const s = composeScene(64, [obj('circle', 'red', 30, 32), obj('square', 'red', 36, 32), obj('star', 'red', 33, 32), obj('heart', 'red', 20, 32)]);
    const [lm, right6, right3, left10] = s.objects as [typeof s.objects[0], typeof s.objects[0], typeof s.objects[0], typeof s.objects[0]];
    expect(relationTruth('rightOf', right6, lm, 64)).toBe('yes'); // dx = 6 >= 5.12
    expect(relationTruth('rightOf', right3, lm, 64)).toBe('maybe'); // 1.7 <= dx = 3 < 5.12
    expect(relationTruth('rightOf', left10, lm, 64)).toBe('no');
    expect(relationTruth('leftOf', left10, lm, 64)).toBe('yes');
  });

  it('positions closer than the margin are not ordered (no "left one" among near ties)', () => {
    const s = composeScene(64, [obj('circle', 'red', 30, 20), obj('circle', 'red', 33, 45)]);
    expect(resolve({ attr: { category: 'circle' }, select: { kind: 'extreme', key: 'x', dir: 'min' } }, s).sure).toEqual([]);
    expect(identifies({ attr: { category: 'circle' }, select: { kind: 'extreme', key: 'y', dir: 'min' } }, s, 0)).toBe(true);
  });

  it('regions have an uncertain band around the thirds', () => {
    const s = composeScene(64, [obj('circle', 'red', 10, 32), obj('circle', 'red', 21, 32)]);
    expect(attrTruth({ regionX: 'left' }, s.objects[0]!, s)).toBe('yes');
    expect(attrTruth({ regionX: 'left' }, s.objects[1]!, s)).toBe('maybe'); // centroid 21 px, border 21.3 +- 3.2
    expect(identifies({ attr: { category: 'circle', regionX: 'left' }, select: only }, s, 0)).toBe(false);
  });

  it('ordinals and "middle" need clear gaps on both sides', () => {
    const s = composeScene(64, [obj('circle', 'red', 10, 32), obj('circle', 'blue', 30, 32), obj('circle', 'green', 50, 32)]);
    expect(identifies({ attr: {}, select: { kind: 'ordinal', key: 'x', dir: 'min', k: 2 } }, s, 1)).toBe(true);
    expect(identifies({ attr: {}, select: { kind: 'ordinal', key: 'x', dir: 'max', k: 3 } }, s, 0)).toBe(true);
    expect(identifies({ attr: {}, select: { kind: 'middle', key: 'x' } }, s, 1)).toBe(true);
    const tight = composeScene(64, [obj('circle', 'red', 10, 32), obj('circle', 'blue', 30, 32), obj('circle', 'green', 33, 50)]);
    expect(identifies({ attr: {}, select: { kind: 'ordinal', key: 'x', dir: 'min', k: 2 } }, tight, 1)).toBe(false);
  });

  it('corner counts: most corners = hexagon; a heart (debatable corners) makes it ambiguous', () => {
    const s = composeScene(64, [obj('triangle', 'red', 10, 10), obj('hexagon', 'red', 50, 10), obj('square', 'red', 30, 50)]);
    const most: Expr = { attr: { supercategory: 'shape' }, select: { kind: 'extreme', key: 'corners', dir: 'max' } };
    expect(identifies(most, s, 1)).toBe(true);
    expect(identifies({ attr: { supercategory: 'shape', corners: 3 }, select: only }, s, 0)).toBe(true);
    const withHeart = composeScene(64, [obj('triangle', 'red', 10, 10), obj('hexagon', 'red', 50, 10), obj('heart', 'red', 30, 50)]);
    expect(identifies(most, withHeart, 1)).toBe(false);
    expect(identifies({ attr: { supercategory: 'shape', corners: 3 }, select: only }, withHeart, 0)).toBe(false);
  });

  it('counting: the only colour that appears once; the only non-red object', () => {
    const s = composeScene(64, [obj('circle', 'red', 10, 10), obj('square', 'red', 50, 10), obj('star', 'green', 30, 50)]);
    expect(identifies({ attr: { colourCount: 1 }, select: only }, s, 2)).toBe(true);
    expect(identifies({ attr: { notColour: 'red' }, select: only }, s, 2)).toBe(true);
    expect(identifies({ attr: { categoryCount: 1 }, select: only }, s, 2)).toBe(false); // all three categories appear once
  });

  it('occlusion: "partly hidden by" holds for the lower of two overlapping objects only', () => {
    const s = composeScene(64, [obj('square', 'red', 24, 32, 10, 'large'), obj('circle', 'blue', 34, 32, 8, 'large'), obj('star', 'green', 54, 10)]);
    const [sq, ci] = s.objects as [typeof s.objects[0], typeof s.objects[0]];
    expect(relationTruth('hiddenBy', sq, ci, 64)).toBe('yes');
    expect(relationTruth('hiddenBy', ci, sq, 64)).toBe('no');
    expect(relationTruth('hiding', ci, sq, 64)).toBe('yes');
    expect(identifies({ attr: { occluded: true }, select: only }, s, 0)).toBe(true);
  });

  it('"closest to" needs the runner-up clearly further away', () => {
    const clear = composeScene(64, [obj('star', 'red', 32, 32), obj('circle', 'blue', 44, 32), obj('circle', 'blue', 32, 60)]);
    const lm: Expr = { attr: { category: 'star' }, select: only };
    expect(identifies({ attr: { category: 'circle' }, rel: { kind: 'nearest', landmark: lm }, select: only }, clear, 1)).toBe(true);
    const tie = composeScene(64, [obj('star', 'red', 32, 32), obj('circle', 'blue', 44, 32), obj('circle', 'blue', 32, 45)]);
    expect(identifies({ attr: { category: 'circle' }, rel: { kind: 'nearest', landmark: lm }, select: only }, tie, 1)).toBe(false);
  });
});

describe('size words', () => {
  it('"large" is only a maybe for a large object that has lost more than 20 % to occlusion', () => {
    const s = composeScene(64, [
      { category: 'square', colour: 'red', sizeClass: 'large', cx: 20, cy: 32, r: 11 },
      { category: 'square', colour: 'blue', sizeClass: 'large', cx: 32, cy: 32, r: 11 },
      { category: 'circle', colour: 'green', sizeClass: 'small', cx: 54, cy: 10, r: 6 },
    ]);
    const [hidden, top, small] = s.objects as [typeof s.objects[0], typeof s.objects[0], typeof s.objects[0]];
    expect(hidden.area / hidden.fullArea).toBeLessThan(0.8);
    expect(attrTruth({ size: 'large' }, hidden, s)).toBe('maybe');
    expect(attrTruth({ size: 'small' }, hidden, s)).toBe('maybe');
    expect(attrTruth({ size: 'large' }, top, s)).toBe('yes');
    expect(attrTruth({ size: 'small' }, small, s)).toBe('yes');
    expect(attrTruth({ size: 'large' }, small, s)).toBe('no');
  });
});
