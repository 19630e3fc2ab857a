import { describe, expect, it } from 'vitest';
import { Rng } from '../../src/random';

describe('Rng', () => {
  it('repeats exactly from the same seed and differs across seeds', () => {
    const a = new Rng(42);
    const b = new Rng(42);
    const c = new Rng(43);
    const xs = Array.from({ length: 5 }, () => a.nextUint32());
    expect(Array.from({ length: 5 }, () => b.nextUint32())).toEqual(xs);
    expect(Array.from({ length: 5 }, () => c.nextUint32())).not.toEqual(xs);
  });

  it('forks streams that depend on the seed and label only, not on draws made before', () => {
    const a = new Rng(7);
    const f1 = a.fork('data').next();
    a.next();
    a.next();
    expect(a.fork('data').next()).toBe(f1);
    expect(a.fork('init').next()).not.toBe(f1);
  });

  it('has the moments of its distributions', () => {
    const r = new Rng(1);
    const n = 20000;
    let s = 0;
    let s2 = 0;
    for (let i = 0; i < n; i++) {
      const z = r.normal();
      s += z;
      s2 += z * z;
    }
    expect(Math.abs(s / n)).toBeLessThan(0.03);
    expect(Math.abs(s2 / n - 1)).toBeLessThan(0.04);
    const counts = new Array(6).fill(0);
    for (let i = 0; i < 6000; i++) counts[r.int(6)]++;
    for (const c of counts) expect(Math.abs(c - 1000)).toBeLessThan(120);
  });

  it('shuffles to a permutation and rejects bad arguments', () => {
    const r = new Rng(3);
    expect(r.shuffle([1, 2, 3, 4, 5]).sort()).toEqual([1, 2, 3, 4, 5]);
    expect(() => new Rng(-1)).toThrow(/seed must be an integer/);
    expect(() => new Rng(1.5)).toThrow(/seed must be an integer/);
    expect(() => r.int(0)).toThrow(/positive integer/);
    expect(() => r.pick([])).toThrow(/empty/);
  });
});
