import { describe, expect, it } from 'vitest';
import { summarizeCells, type AblationRow } from '../../src/train/ablate_summary';
import { ablationPaperFigure, ablationSeedFigure, renderSvg } from '../../src/viz/index';

const row = (cell: string, seed: number, ciou: number): AblationRow => ({
  table: 't', cell, delta: '{}', seed, ciou, giou: ciou, formatRate: 100, boxAcc50: 0, n: 5, seconds: 1, run: 'r',
});
const cells = summarizeCells([row('MLP', 0, 10), row('MLP', 1, 20), row('ViT', 0, 30)], [{ label: 'MLP', paper: 72.8 }, { label: 'ViT', paper: 87.8 }]);

describe('ablation figures', () => {
  it('draw our mean with std error bars and every seed as a point', () => {
    const fig = ablationSeedFigure('T4', cells);
    const [mean, seeds] = fig.data as Array<{ y: unknown[]; x: unknown[]; error_y?: { array: unknown[] } }>;
    expect(mean!.y).toEqual([15, 30]);
    expect(mean!.error_y!.array[0]).toBeCloseTo(Math.sqrt(50), 12);
    expect(mean!.error_y!.array[1]).toBeNull(); // one seed: no bar
    expect(seeds!.x).toEqual(['MLP', 'MLP', 'ViT']);
    expect(seeds!.y).toEqual([10, 20, 30]);
    const svg = renderSvg(fig);
    expect((svg.match(/<path d="M[^"]*V[^"]*H/g) ?? []).length).toBe(1); // one error bar with caps
    expect(svg).toContain('>ours: mean ± std<');
    // the scale covers the bar's top end, 15 + 7.07 = 22.07 < ticks' max
    const ticks = [...svg.matchAll(/text-anchor="end">(\d+)</g)].map((m) => Number(m[1]));
    expect(Math.max(...ticks)).toBeGreaterThanOrEqual(30);
    expect(Math.min(...ticks)).toBeLessThanOrEqual(10);
  });

  it('show the paper beside ours on a 0-100 axis', () => {
    const fig = ablationPaperFigure('T4', cells);
    expect(fig.data.map((t) => t.name)).toEqual(['paper (LENS-3B)', 'ours (mean)']);
    expect(fig.data[0]!.y).toEqual([72.8, 87.8]);
    expect(fig.layout.yaxis?.range).toEqual([0, 100]);
    expect(renderSvg(fig)).toContain('>87.8<');
  });
});
