import sharp from 'sharp';
import { describe, expect, it } from 'vitest';
import { barChart, heatmap, lineChart, PALETTE, type Figure } from '../../src/viz/figure';
import { colorAt, escapeXml, formatTick, niceTicks, renderSvg } from '../../src/viz/svg';

/** All elements `<tag .../>` with their attributes. */
function elements(svg: string, tag: string): Array<Record<string, string>> {
  return [...svg.matchAll(new RegExp(`<${tag} ([^>]*?)/?>`, 'g'))].map((m) => Object.fromEntries([...m[1]!.matchAll(/([\w-:]+)="([^"]*)"/g)].map((a) => [a[1]!, a[2]!])));
}

/** Texts of `<text>` elements. */
const texts = (svg: string): string[] => [...svg.matchAll(/<text [^>]*>([^<]*)<\/text>/g)].map((m) => m[1]!);

describe('niceTicks / formatTick', () => {
  it.each([
    [0, 10, 6, [0, 2, 4, 6, 8, 10], 2],
    [0, 1, 6, [0, 0.2, 0.4, 0.6, 0.8, 1], 0.2],
    [0.05, 0.95, 6, [0.2, 0.4, 0.6, 0.8], 0.2],
    [-3, 3, 4, [-2, 0, 2], 2],
    [0, 1_200_000, 6, [0, 250_000, 500_000, 750_000, 1_000_000], 250_000],
  ])('niceTicks(%d, %d, %d) = %j, step %d', (lo, hi, n, ticks, step) => {
    const t = niceTicks(lo, hi, n);
    expect(t.step).toBeCloseTo(step, 12);
    expect(t.ticks).toHaveLength(ticks.length);
    t.ticks.forEach((v, i) => expect(v).toBeCloseTo(ticks[i]!, 12));
  });

  it('refuses non-finite bounds', () => {
    expect(() => niceTicks(0, Infinity)).toThrow(/finite/);
  });

  it.each([
    [0.25, 0.25, '0.25'], [0.5, 0.25, '0.50'], [3, 1, '3'], [500_000, 250_000, '500k'], [1_000_000, 500_000, '1.0M'],
    [12_000, 2000, '12k'], [2_500_000, 500_000, '2.5M'], [0.0001, 0.0001, '1.0e-4'],
  ])('formatTick(%d, step %d) = %s', (v, step, want) => {
    expect(formatTick(v, step)).toBe(want);
  });
});

describe('colorAt', () => {
  it('hits Plotly Viridis end points and interpolates linearly between control points', () => {
    expect(colorAt('Viridis', 0)).toBe('#440154');
    expect(colorAt('Viridis', 1)).toBe('#fde725');
    expect(colorAt('Greys', 0.5)).toBe('#808080'); // 127.5 rounds to 128
    expect(colorAt('Viridis', -1)).toBe('#440154'); // clamped
    expect(colorAt('RdBu', 0.5)).toBe('#bebebe');
  });

  it('names the scale it does not know', () => {
    expect(() => colorAt('Jet' as never, 0.5)).toThrow(/expected one of Viridis, Greys, RdBu, got "Jet"/);
  });
});

describe('renderSvg', () => {
  it('draws vertical bars with heights proportional to the values, from a zero baseline', () => {
    const fig = barChart({ title: 'counts', categories: ['a', 'b', 'c'], series: [{ name: 'n', values: [10, 20, 5] }] });
    const svg = renderSvg(fig);
    const bars = elements(svg, 'rect').filter((r) => r.fill === PALETTE[0]);
    expect(bars).toHaveLength(3);
    const h = bars.map((b) => Number(b.height));
    expect(h[1]! / h[0]!).toBeCloseTo(2, 1);
    expect(h[2]! / h[0]!).toBeCloseTo(0.5, 1);
    const bottoms = bars.map((b) => Number(b.y) + Number(b.height));
    expect(Math.max(...bottoms) - Math.min(...bottoms)).toBeLessThan(0.02); // one shared baseline
    expect(texts(svg)).toEqual(expect.arrayContaining(['counts', 'a', 'b', 'c', '0', '20']));
  });

  it('groups bars of several series side by side and stacks them when asked', () => {
    const series = [{ name: 'x', values: [1, 2] }, { name: 'y', values: [3, 4] }];
    const grouped = elements(renderSvg(barChart({ categories: ['p', 'q'], series })), 'rect').filter((r) => r.fill === PALETTE[0] || r.fill === PALETTE[1]);
    const stacked = elements(renderSvg(barChart({ categories: ['p', 'q'], series, stacked: true })), 'rect').filter((r) => r.fill === PALETTE[0] || r.fill === PALETTE[1]);
    // grouped: per category two bars at different x, legend squares aside (4 bars + 2 legend swatches)
    const groupedBars = grouped.filter((r) => r.width !== '14');
    expect(new Set(groupedBars.map((r) => r.x)).size).toBe(4);
    // stacked: the second series starts where the first ends
    const s = stacked.filter((r) => r.width !== '14');
    const p1 = s.find((r) => r.fill === PALETTE[0] && Number(r.x) < 300)!;
    const p2 = s.find((r) => r.fill === PALETTE[1] && r.x === p1.x)!;
    expect(Number(p2.y) + Number(p2.height)).toBeCloseTo(Number(p1.y), 1);
  });

  it('draws lines with a gap at null values and maps a log axis by decades', () => {
    const fig = lineChart({ series: [{ name: 'l', x: [1, 2, 3, 4], y: [1, 10, null, 1000] }], y: { log: true } });
    const svg = renderSvg(fig);
    const lines = elements(svg, 'polyline');
    expect(lines).toHaveLength(1); // (1,1)-(2,10); (4,1000) alone has no segment
    const pts = lines[0]!.points!.split(' ').map((p) => p.split(',').map(Number));
    expect(pts).toHaveLength(2);
    expect(texts(svg)).toEqual(expect.arrayContaining(['1', '10', '100', '1000']));
    const ys = Object.fromEntries(elements(svg, 'text').map((t, i) => [texts(svg)[i], Number(t.y)]));
    // equal pixel distance per decade
    expect(ys['1']! - ys['10']!).toBeCloseTo(ys['10']! - ys['100']!, 1);
  });

  it('draws a small heatmap cell by cell, row 0 on top, with the colour scale', () => {
    const svg = renderSvg(heatmap({ z: [[0, 1], [0.5, 1]], x: ['a', 'b'], y: ['r0', 'r1'] }));
    const cells = elements(svg, 'rect').filter((r) => r.width !== '16' && ['#440154', '#fde725', colorAt('Viridis', 0.5)].includes(r.fill!));
    expect(cells).toHaveLength(4);
    const first = cells[0]!;
    expect(first.fill).toBe('#440154');
    expect(Number(cells[2]!.y)).toBeGreaterThan(Number(first.y)); // row 1 below row 0
    expect(cells[2]!.fill).toBe(colorAt('Viridis', 0.5));
  });

  it('centres a diverging scale on zmid', () => {
    const svg = renderSvg(heatmap({ z: [[-1, 3]], colorscale: 'RdBu', zmid: 0 }));
    const fills = elements(svg, 'rect').map((r) => r.fill);
    expect(fills).toContain(colorAt('RdBu', 1)); // 3 is the top of [-3, 3]
    expect(fills).toContain(colorAt('RdBu', 1 / 3)); // -1 sits a third of the way up
  });

  it('labels every category while they are at least a text line apart, every k-th beyond', () => {
    const cats = Array.from({ length: 40 }, (_, i) => `c${i}`);
    const tall = renderSvg(barChart({ categories: cats, series: [{ name: 'n', values: cats.map(() => 1) }], horizontal: true, height: 60 + 40 * 16 }));
    const short = renderSvg(barChart({ categories: cats, series: [{ name: 'n', values: cats.map(() => 1) }], horizontal: true, height: 300 }));
    expect(texts(tall).filter((t) => /^c\d+$/.test(t))).toHaveLength(40);
    const few = texts(short).filter((t) => /^c\d+$/.test(t));
    expect(few.length).toBeLessThan(40);
    expect(few.length).toBeGreaterThan(10);
  });

  it('draws a large heatmap as one embedded PNG image', async () => {
    const z = Array.from({ length: 32 }, (_, r) => Array.from({ length: 32 }, (_, c) => r * 32 + c));
    const svg = renderSvg(heatmap({ z }));
    const imgs = elements(svg, 'image');
    expect(imgs).toHaveLength(1);
    const png = Buffer.from(imgs[0]!.href!.replace('data:image/png;base64,', ''), 'base64');
    const { data, info } = await sharp(png).raw().toBuffer({ resolveWithObject: true });
    expect([info.width, info.height, info.channels]).toEqual([32, 32, 3]);
    expect([...data.subarray(0, 3)]).toEqual([0x44, 0x01, 0x54]); // z min at the top-left
    expect([...data.subarray(data.length - 3)]).toEqual([0xfd, 0xe7, 0x25]); // z max at the bottom-right
  });

  it('escapes text and renders as a valid SVG document (rasterised by librsvg)', async () => {
    const fig = barChart({ title: 'a <b> & "c"', categories: ['x<y'], series: [{ name: 's', values: [1] }] });
    const svg = renderSvg(fig);
    expect(svg).toContain('a &lt;b&gt; &amp; &quot;c&quot;');
    expect(svg).not.toContain('<b>');
    const meta = await sharp(Buffer.from(svg)).metadata();
    expect([meta.width, meta.height]).toEqual([640, 400]);
    expect(escapeXml(`'`)).toBe('&#39;');
  });

  it.each([
    ['no traces', { data: [], layout: {} } as Figure],
    ['all-zero bars', barChart({ categories: ['a', 'b'], series: [{ name: 'z', values: [0, 0] }] })],
    ['negative bars', barChart({ categories: ['a', 'b'], series: [{ name: 'z', values: [-1, 2] }] })],
    ['a constant heatmap', heatmap({ z: [[2, 2], [2, 2]] })],
    ['a single point', lineChart({ series: [{ name: 'p', x: [5], y: [3] }] })],
    ['zero on a log axis', lineChart({ series: [{ name: 'p', x: [1, 2], y: [0, 10] }], y: { log: true } })],
    ['NaN values', lineChart({ series: [{ name: 'p', x: [1, 2, 3], y: [NaN, 1, 2] }] })],
  ])('draws %s without NaN coordinates', (_, fig) => {
    expect(renderSvg(fig)).not.toMatch(/NaN|Infinity/);
  });

  it('refuses trace types it cannot draw, naming the trace', () => {
    const fig = { data: [{ type: 'scatter', x: [1], y: [1] }, { type: 'pie', values: [1] }], layout: {} } as unknown as Figure;
    expect(() => renderSvg(fig)).toThrow(/data\[1\]\.type = "pie"; expected one of scatter, bar, heatmap/);
  });
});

describe('figure builders', () => {
  it('check their inputs', () => {
    expect(() => lineChart({ series: [{ name: 's', x: [1, 2], y: [1] }] })).toThrow(/lineChart series 's': x and y have 2 and 1 entries/);
    expect(() => barChart({ categories: ['a'], series: [{ name: 'b', values: [1, 2] }] })).toThrow(/categories and values have 1 and 2/);
    expect(() => heatmap({ z: [[1, 2], [3]] })).toThrow(/z row 1 has 1 columns, expected 2/);
    expect(() => heatmap({ z: [[1]], x: ['a', 'b'] })).toThrow(/x has 2 labels, expected 1/);
  });

  it('produce Plotly JSON with explicit colours and horizontal bars reading top-down', () => {
    const f = barChart({ categories: ['a', 'b'], series: [{ name: 'n', values: [1, 2] }], horizontal: true });
    expect(f.data[0]).toMatchObject({ type: 'bar', orientation: 'h', x: [1, 2], y: ['a', 'b'], marker: { color: PALETTE[0] } });
    expect(f.layout.yaxis).toMatchObject({ type: 'category', autorange: 'reversed' });
  });
});
