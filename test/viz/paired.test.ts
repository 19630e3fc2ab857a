import { describe, expect, it } from 'vitest';
import type { PairedDifference } from '../../src/eval/paired';
import { pairedDifferenceFigure, renderSvg } from '../../src/viz/index';

const d = (difference: number, lo: number, hi: number): PairedDifference => ({ difference, lo, hi, level: 0.95, resamples: 100, splits: 1, sentences: 150 });

describe('pairedDifferenceFigure', () => {
  it('draws each difference with its own (asymmetric) interval, in the given order, beside a line at 0', () => {
    const fig = pairedDifferenceFigure('stage 2 - stage 1', [
      { label: 'refcoco/val', d: d(2, -1, 6) },
      { label: 'reasonseg/test', d: d(-3, -9, -2) },
      { label: 'mean', d: d(-0.5, -1.5, 0.5) },
    ]);
    const [points, zero] = fig.data as Array<{ x: string[]; y: number[]; error_y?: { array: number[]; arrayminus: number[]; symmetric: boolean } }>;
    expect(points!.x).toEqual(['refcoco/val', 'reasonseg/test', 'mean']);
    expect(points!.y).toEqual([2, -3, -0.5]);
    expect(points!.error_y).toMatchObject({ symmetric: false, array: [4, 1, 1], arrayminus: [3, 6, 1] });
    expect(zero!.y).toEqual([0, 0]);
    const svg = renderSvg(fig);
    // each interval spans its own ends: the tick labels give the value axis, the error bars' paths their pixels
    const ticks = [...svg.matchAll(/<text [^>]*y="([\d.]+)" text-anchor="end">(-?\d+)</g)].map((m) => ({ px: Number(m[1]), v: Number(m[2]) }));
    const [t0, t1] = [ticks[0]!, ticks[ticks.length - 1]!];
    const valueAt = (px: number) => t0.v + ((px - t0.px) * (t1.v - t0.v)) / (t1.px - t0.px);
    const bars = [...svg.matchAll(/<path d="M[\d.]+,([\d.]+)V([\d.]+)M[^"]*H/g)].map((m) => [valueAt(Number(m[1])), valueAt(Number(m[2]))]);
    expect(bars.length).toBe(3);
    [[-1, 6], [-9, -2], [-1.5, 0.5]].forEach(([lo, hi], i) => {
      expect(bars[i]![0]).toBeCloseTo(lo!, 0); // within the labels' baseline offset
      expect(bars[i]![1]).toBeCloseTo(hi!, 0);
    });
    // categories keep the points' order (the line at 0 names only the first and last)
    const labels = [...svg.matchAll(/>(refcoco\/val|reasonseg\/test|mean)</g)].map((m) => m[1]);
    expect(labels.slice(0, 3)).toEqual(['refcoco/val', 'reasonseg/test', 'mean']);
  });

  it('refuses an empty list', () => {
    expect(() => pairedDifferenceFigure('t', [])).toThrow(/nothing to draw/);
  });
});
