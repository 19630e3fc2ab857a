/**
 * A static SVG rendering of the Plotly figures of src/viz/figure.ts: the offline
 * fallback shown where no Plotly renderer is present (classic Notebook, HTML
 * exports, the standalone figure files). The machine and the notebooks' readers
 * are offline, and bundling plotly.js (~3.5 MB) into every figure is no option
 * (DESIGN.md "Notebooks"), so the few chart types we use are drawn here, with
 * Plotly's look (palette, fonts, white plot area with grey grid) and its axis
 * semantics (log axes, category axes, 'reversed' autorange).
 *
 * No fonts are needed to produce it: text is left to the browser (or librsvg when
 * a test rasterises it); label widths are estimated at 0.6 em per character.
 */
import type { Axis, BarTrace, ColorscaleName, ErrorBars, Figure, HeatmapTrace, ScatterTrace, Trace } from './figure';
import { PALETTE } from './figure';
import { encodePngSync } from './png';

/** Heatmaps with more cells than this are drawn as one PNG image instead of one rect per cell. */
const HEATMAP_RECT_LIMIT = 400;
/** Category labels closer than this many pixels would overlap: then every k-th category is labelled. */
const MIN_LABEL_SPACING = 14;

const FONT = 'Open Sans, verdana, arial, sans-serif';
const FONT_SIZE = 12;
const CHAR_W = 0.6 * FONT_SIZE; // estimated advance per character
const GRID = '#e5ecf6';
const TEXT = '#2a3f5f'; // Plotly's default font colour

/** Plotly's colour scales as [position, [r, g, b]] control points. */
const COLORSCALES: Record<ColorscaleName, Array<[number, [number, number, number]]>> = {
  Viridis: ([
    [0, '#440154'], [0.0627, '#48186a'], [0.1255, '#472d7b'], [0.1882, '#424086'], [0.251, '#3b528b'], [0.3137, '#33638d'],
    [0.3765, '#2c728e'], [0.4392, '#26828e'], [0.502, '#21918c'], [0.5647, '#1fa088'], [0.6275, '#28ae80'], [0.6902, '#3fbc73'],
    [0.7529, '#5ec962'], [0.8157, '#84d44b'], [0.8784, '#addc30'], [0.9412, '#d8e219'], [1, '#fde725'],
  ] as Array<[number, string]>).map(([p, h]) => [p, hexToRgb(h)]),
  Greys: [[0, [0, 0, 0]], [1, [255, 255, 255]]],
  RdBu: [[0, [5, 10, 172]], [0.35, [106, 137, 235]], [0.5, [190, 190, 190]], [0.6, [220, 170, 132]], [0.7, [230, 145, 90]], [1, [178, 10, 28]]],
};

function hexToRgb(hex: string): [number, number, number] {
  const n = parseInt(hex.slice(1), 16);
  return [(n >> 16) & 255, (n >> 8) & 255, n & 255];
}

const hex2 = (v: number): string => Math.round(v).toString(16).padStart(2, '0');

/** The colour of t in [0, 1] on a Plotly colour scale (linear between control points), as #rrggbb. */
export function colorAt(scale: ColorscaleName, t: number): string {
  const pts = COLORSCALES[scale];
  if (!pts) throw new Error(`colorscale: expected one of ${Object.keys(COLORSCALES).join(', ')}, got ${JSON.stringify(scale)}`);
  const u = Math.min(1, Math.max(0, Number.isFinite(t) ? t : 0));
  let i = 1;
  while (i < pts.length - 1 && pts[i]![0] < u) i++;
  const [p0, c0] = pts[i - 1]!;
  const [p1, c1] = pts[i]!;
  const f = p1 === p0 ? 0 : (u - p0) / (p1 - p0);
  return `#${c0.map((c, k) => hex2(c + (c1[k]! - c) * f)).join('')}`;
}

/** Escapes text for SVG / HTML content and attribute values. */
export function escapeXml(s: string): string {
  return s.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;').replace(/"/g, '&quot;').replace(/'/g, '&#39;');
}

/** Rounds a coordinate to 2 decimals (smaller files, stable output). */
const r2 = (v: number): string => String(Math.round(v * 100) / 100);

/**
 * "Nice" tick values (1, 2, 5 x 10^k steps) inside [lo, hi], about `target` of them:
 * niceTicks(0, 10) = [0, 2, 4, 6, 8, 10].
 */
export function niceTicks(lo: number, hi: number, target = 6): { ticks: number[]; step: number } {
  if (!Number.isFinite(lo) || !Number.isFinite(hi)) throw new Error(`niceTicks: expected finite bounds, got [${lo}, ${hi}]`);
  if (hi < lo) [lo, hi] = [hi, lo];
  if (hi === lo) return { ticks: [lo], step: 1 };
  const raw = (hi - lo) / Math.max(1, target - 1);
  const mag = 10 ** Math.floor(Math.log10(raw));
  const step = [1, 2, 2.5, 5, 10].map((m) => m * mag).find((s) => s >= raw * 0.999) ?? 10 * mag;
  const ticks: number[] = [];
  const first = Math.ceil(lo / step - 1e-9) * step;
  for (let v = first; v <= hi + step * 1e-9; v += step) ticks.push(Math.abs(v) < step * 1e-9 ? 0 : Number(v.toPrecision(12)));
  return { ticks, step };
}

/** Decimals that show every multiple of `step` exactly (0.25 -> 2, 5 -> 0), at most 6. */
function decimalsFor(step: number): number {
  for (let d = 0; d < 6; d++) {
    const v = step * 10 ** d;
    if (Math.abs(v - Math.round(v)) < 1e-6 * Math.max(1, v)) return d;
  }
  return 6;
}

/** Tick label: SI suffix from 10^4 (Plotly's "12k", "2.5M"), else as many decimals as the step needs. */
export function formatTick(v: number, step: number): string {
  const a = Math.abs(v);
  if (a >= 1e4) {
    const [div, suf] = a >= 1e9 ? [1e9, 'G'] : a >= 1e6 ? [1e6, 'M'] : [1e3, 'k'];
    const dec = Math.min(3, decimalsFor(step / div));
    return `${(v / div).toFixed(dec)}${suf}`;
  }
  if (a > 0 && a < 1e-3) return v.toExponential(1);
  return v.toFixed(decimalsFor(step));
}

/** A value on the chart: a number, or a category string. */
type Datum = number | string | null;

/** A mapping from data to pixels along one axis, with its ticks. */
interface Scale {
  kind: 'linear' | 'log' | 'category';
  /** Data value -> pixel (NaN when not drawable, e.g. <= 0 on a log axis). */
  map(v: Datum): number;
  /** Width of one category band in pixels (category axes), else 0. */
  band: number;
  ticks: Array<{ at: number; label: string }>;
}

function numericScale(values: number[], axis: Axis | undefined, p0: number, p1: number, opts: { includeZero: boolean; pad: number }): Scale {
  const log = axis?.type === 'log';
  const finite = values.filter((v) => Number.isFinite(v) && (!log || v > 0));
  let lo: number;
  let hi: number;
  if (axis?.range) {
    [lo, hi] = axis.range;
  } else {
    const t = finite.map((v) => (log ? Math.log10(v) : v));
    lo = t.length ? Math.min(...t) : 0;
    hi = t.length ? Math.max(...t) : 1;
    if (opts.includeZero && !log) {
      lo = Math.min(lo, 0);
      hi = Math.max(hi, 0);
    }
    if (hi === lo) {
      lo -= log ? 0.5 : Math.abs(lo) * 0.5 || 1;
      hi += log ? 0.5 : Math.abs(hi) * 0.5 || 1;
    }
    const pad = (hi - lo) * opts.pad;
    if (!(opts.includeZero && lo === 0)) lo -= pad;
    if (!(opts.includeZero && hi === 0)) hi += pad;
  }
  const reversed = axis?.autorange === 'reversed';
  const toPx = (u: number): number => {
    const f = (u - lo) / (hi - lo);
    return reversed ? p1 + (p0 - p1) * f : p0 + (p1 - p0) * f;
  };
  const ticks: Scale['ticks'] = [];
  if (log) {
    // Plotly's log ticks: powers of ten, with 2x and 5x between them when the range spans under three decades.
    const all: Array<{ e: number; v: number; m: number }> = [];
    for (let d = Math.floor(lo); d <= Math.ceil(hi); d++) for (const m of [1, 2, 5]) all.push({ e: d + Math.log10(m), v: m * 10 ** d, m });
    const inside = all.filter((t) => t.e >= lo - 1e-9 && t.e <= hi + 1e-9);
    const powers = inside.filter((t) => t.m === 1);
    if (inside.length >= 3) {
      for (const t of powers.length >= 3 ? powers : inside) ticks.push({ at: toPx(t.e), label: formatTick(t.v, t.v) });
    } else {
      // under half a decade: plain nice values, placed on the log scale
      const { ticks: t, step } = niceTicks(10 ** lo, 10 ** hi);
      for (const v of t) if (v > 0) ticks.push({ at: toPx(Math.log10(v)), label: formatTick(v, step) });
    }
  } else {
    const { ticks: t, step } = niceTicks(lo, hi);
    for (const v of t) ticks.push({ at: toPx(v), label: formatTick(v, step) });
  }
  return {
    kind: log ? 'log' : 'linear',
    band: 0,
    ticks,
    map: (v) => {
      if (typeof v !== 'number' || !Number.isFinite(v)) return NaN;
      if (log) return v > 0 ? toPx(Math.log10(v)) : NaN;
      return toPx(v);
    },
  };
}

function categoryScale(categories: string[], axis: Axis | undefined, p0: number, p1: number): Scale {
  const n = Math.max(1, categories.length);
  const reversed = axis?.autorange === 'reversed';
  const band = Math.abs(p1 - p0) / n;
  const index = new Map(categories.map((c, i) => [c, i]));
  const at = (i: number): number => {
    const f = (i + 0.5) / n;
    return reversed ? p1 + (p0 - p1) * f : p0 + (p1 - p0) * f;
  };
  const every = Math.max(1, Math.ceil(MIN_LABEL_SPACING / Math.max(band, 1e-9))); // every k-th label when bands are thinner than a line of text
  return {
    kind: 'category',
    band,
    ticks: categories.flatMap((c, i) => (i % every === 0 ? [{ at: at(i), label: c }] : [])),
    map: (v) => {
      const i = index.get(String(v));
      return i === undefined ? NaN : at(i);
    },
  };
}

/** Categories in order of first appearance. */
function categoriesOf(values: Datum[][]): string[] {
  const seen = new Set<string>();
  for (const vs of values) for (const v of vs) if (v !== null) seen.add(String(v));
  return [...seen];
}

const isCategoryAxis = (axis: Axis | undefined, values: Datum[][]): boolean =>
  axis?.type === 'category' || (axis?.type === undefined && values.some((vs) => vs.some((v) => typeof v === 'string')));

const textWidth = (s: string): number => s.length * CHAR_W;

function traceColor(t: Trace, i: number): string {
  if (t.type === 'scatter') return t.line?.color ?? t.marker?.color ?? PALETTE[i % PALETTE.length]!;
  if (t.type === 'bar') return t.marker?.color ?? PALETTE[i % PALETTE.length]!;
  return PALETTE[i % PALETTE.length]!;
}

function checkTraces(fig: Figure): void {
  if (!fig || !Array.isArray(fig.data) || typeof fig.layout !== 'object' || fig.layout === null) {
    throw new Error('renderSvg: expected a figure { data: Trace[], layout: {...} }');
  }
  fig.data.forEach((t, i) => {
    if (!['scatter', 'bar', 'heatmap'].includes((t as { type?: string }).type ?? '')) {
      throw new Error(`renderSvg: data[${i}].type = ${JSON.stringify((t as { type?: string }).type)}; expected one of scatter, bar, heatmap`);
    }
  });
  const kinds = new Set(fig.data.map((t) => t.type));
  if (kinds.has('heatmap') && kinds.size > 1) throw new Error('renderSvg: a heatmap cannot share its axes with other traces here; draw it in its own figure');
}

/**
 * Draws a figure as a standalone SVG document (width x height from the layout,
 * default 640 x 400). Throws naming the trace for chart types it does not know.
 */
export function renderSvg(fig: Figure): string {
  checkTraces(fig);
  const L = fig.layout;
  const isHeatmap = fig.data.length > 0 && fig.data[0]!.type === 'heatmap';
  const W = L.width ?? (isHeatmap ? 520 : 640);
  const H = L.height ?? (isHeatmap ? 440 : 400);
  const out: string[] = [];
  const titleText = L.title?.text;

  // Data along each axis (for the scales and for the margins their labels need).
  const xs: Datum[][] = [];
  const ys: Datum[][] = [];
  for (const t of fig.data) {
    if (t.type === 'heatmap') {
      const cols = t.z[0]?.length ?? 0;
      xs.push(t.x ? [...t.x].map(String) : Array.from({ length: cols }, (_, i) => String(i)));
      ys.push(t.y ? [...t.y].map(String) : Array.from({ length: t.z.length }, (_, i) => String(i)));
    } else {
      xs.push(t.x as Datum[]);
      // error bars widen the value range: their ends join the trace's values for the scale
      const err = t.type === 'scatter' ? t.error_y : undefined;
      const ends = err ? t.y.flatMap((y, i) => { const b = errorEnds(err, y, i); return b ? [b.lo, b.hi] : []; }) : [];
      ys.push([...(t.y as Datum[]), ...ends]);
    }
  }
  const xCat = isHeatmap || isCategoryAxis(L.xaxis, xs);
  const yCat = isHeatmap || isCategoryAxis(L.yaxis, ys);
  const stacked = L.barmode === 'stack';
  const bars = fig.data.filter((t): t is BarTrace => t.type === 'bar');
  const horizontalBars = bars.length > 0 && bars.every((b) => b.orientation === 'h');

  // Value extents (stacked bars: cumulative sums per category).
  const valueExtent = (vals: Datum[][], traces: Trace[], alongX: boolean): number[] => {
    const flat: number[] = [];
    if (stacked && bars.length > 0) {
      const pos = new Map<string, number>();
      const neg = new Map<string, number>();
      for (const b of bars) {
        const cats = (alongX ? b.y : b.x) as Datum[];
        const v = (alongX ? b.x : b.y) as Datum[];
        cats.forEach((c, i) => {
          const n = Number(v[i]);
          if (!Number.isFinite(n)) return;
          const m = n >= 0 ? pos : neg;
          m.set(String(c), (m.get(String(c)) ?? 0) + n);
        });
      }
      flat.push(...pos.values(), ...neg.values());
    }
    vals.forEach((vs, i) => {
      if (traces[i]!.type === 'heatmap') return;
      for (const v of vs) if (typeof v === 'number') flat.push(v);
    });
    return flat;
  };

  // Margins: title, tick labels, axis titles, legend, colorbar.
  const showLegend = !isHeatmap && (L.showlegend ?? fig.data.length > 1) && fig.data.some((t) => t.name);
  const legendW = showLegend ? 34 + Math.max(...fig.data.map((t) => textWidth(t.name ?? ''))) : 0;
  const heat = isHeatmap ? (fig.data[0] as HeatmapTrace) : null;
  const colorbarW = heat && heat.showscale !== false ? 70 : 0;
  const yTickLabels = yCat ? categoriesOf(ys) : ['-0.000', '10000'];
  const yTickW = Math.min(240, Math.max(...yTickLabels.map(textWidth), 24));
  const left = 12 + yTickW + (L.yaxis?.title ? 22 : 0);
  const xLabels = xCat ? categoriesOf(xs) : [];
  const plotW0 = W - left - 16 - legendW - colorbarW;
  const xBand = xCat && xLabels.length ? plotW0 / xLabels.length : Infinity;
  const labelEvery = Math.max(1, Math.ceil(MIN_LABEL_SPACING / Math.max(xBand, 1e-9))); // as categoryScale labels them
  const rotateX = xCat && Math.max(0, ...xLabels.map(textWidth)) > xBand * labelEvery * 0.95;
  const xTickH = rotateX ? Math.min(110, 12 + Math.max(...xLabels.map(textWidth)) * 0.6) : 22;
  const top = titleText ? 46 : 16;
  const bottom = 10 + xTickH + (L.xaxis?.title ? 22 : 0);
  const x0 = left;
  const x1 = left + Math.max(40, plotW0);
  const y0 = H - bottom; // pixel y of the bottom of the plot area
  const y1 = top;
  if (x1 > W || y0 < y1 + 20) throw new Error(`renderSvg: figure ${W}x${H} is too small for its labels; set layout.width / height`);

  const barFloor = bars.length > 0;
  const barText = bars.some((b) => b.text && b.text.length > 0); // room for labels past the longest bar
  const xScale: Scale = xCat
    ? categoryScale(categoriesOf(xs), L.xaxis, x0, x1)
    : numericScale(valueExtent(xs, fig.data, true), L.xaxis, x0, x1, { includeZero: barFloor && horizontalBars, pad: barFloor && horizontalBars ? (barText ? 0.18 : 0.05) : 0.04 });
  const yScale: Scale = yCat
    ? categoryScale(categoriesOf(ys), L.yaxis, y0, y1)
    : numericScale(valueExtent(ys, fig.data, false), L.yaxis, y0, y1, { includeZero: barFloor && !horizontalBars, pad: barText ? 0.08 : 0.05 });

  out.push(`<svg xmlns="http://www.w3.org/2000/svg" width="${W}" height="${H}" viewBox="0 0 ${W} ${H}" font-family="${FONT}" font-size="${FONT_SIZE}" fill="${TEXT}">`);
  out.push(`<rect x="0" y="0" width="${W}" height="${H}" fill="#ffffff"/>`);
  if (titleText) out.push(`<text x="${r2(W / 2)}" y="26" text-anchor="middle" font-size="17">${escapeXml(titleText)}</text>`);
  out.push(`<rect x="${r2(x0)}" y="${r2(y1)}" width="${r2(x1 - x0)}" height="${r2(y0 - y1)}" fill="#ffffff" stroke="${GRID}"/>`);

  // Grid lines and tick labels.
  if (!isHeatmap) {
    if (xScale.kind !== 'category') for (const t of xScale.ticks) out.push(`<line x1="${r2(t.at)}" y1="${r2(y1)}" x2="${r2(t.at)}" y2="${r2(y0)}" stroke="${GRID}"/>`);
    if (yScale.kind !== 'category') for (const t of yScale.ticks) out.push(`<line x1="${r2(x0)}" y1="${r2(t.at)}" x2="${r2(x1)}" y2="${r2(t.at)}" stroke="${GRID}"/>`);
  }
  for (const t of xScale.ticks) {
    if (rotateX) {
      out.push(`<text x="${r2(t.at)}" y="${r2(y0 + 14)}" text-anchor="end" transform="rotate(-35 ${r2(t.at)} ${r2(y0 + 14)})">${escapeXml(t.label)}</text>`);
    } else {
      out.push(`<text x="${r2(t.at)}" y="${r2(y0 + 17)}" text-anchor="middle">${escapeXml(t.label)}</text>`);
    }
  }
  for (const t of yScale.ticks) {
    const label = textWidth(t.label) > yTickW ? `${t.label.slice(0, Math.floor(yTickW / CHAR_W) - 1)}…` : t.label;
    out.push(`<text x="${r2(x0 - 6)}" y="${r2(t.at + 4)}" text-anchor="end">${escapeXml(label)}</text>`);
  }
  if (L.xaxis?.title) out.push(`<text x="${r2((x0 + x1) / 2)}" y="${r2(H - 8)}" text-anchor="middle" font-size="14">${escapeXml(L.xaxis.title.text)}</text>`);
  if (L.yaxis?.title) {
    const cy = (y0 + y1) / 2;
    out.push(`<text x="16" y="${r2(cy)}" text-anchor="middle" font-size="14" transform="rotate(-90 16 ${r2(cy)})">${escapeXml(L.yaxis.title.text)}</text>`);
  }

  // Traces.
  if (heat) drawHeatmap(out, heat, xScale, yScale, { x1, y0, y1 }, colorbarW > 0);
  const barSlots = stacked ? 1 : bars.length;
  const stackBase = new Map<string, { pos: number; neg: number }>();
  let barIndex = 0;
  fig.data.forEach((t, i) => {
    if (t.type === 'scatter') drawScatter(out, t, traceColor(t, i), xScale, yScale);
    if (t.type === 'bar') drawBars(out, t, traceColor(t, i), xScale, yScale, { slot: stacked ? 0 : barIndex++, slots: barSlots, stackBase: stacked ? stackBase : null, floor: horizontalBars ? x0 : y0 });
  });

  // Legend.
  if (showLegend) {
    const lx = x1 + 14;
    fig.data.forEach((t, i) => {
      const ly = y1 + 8 + i * 20;
      const c = traceColor(t, i);
      if (t.type === 'scatter') {
        const dash = t.line?.dash === 'dash' ? ' stroke-dasharray="6,3"' : t.line?.dash === 'dot' ? ' stroke-dasharray="2,3"' : '';
        out.push(`<line x1="${r2(lx)}" y1="${r2(ly + 6)}" x2="${r2(lx + 22)}" y2="${r2(ly + 6)}" stroke="${c}" stroke-width="2"${dash}/>`);
      } else {
        out.push(`<rect x="${r2(lx + 4)}" y="${r2(ly)}" width="14" height="12" fill="${c}"/>`);
      }
      out.push(`<text x="${r2(lx + 28)}" y="${r2(ly + 10)}">${escapeXml(t.name ?? `trace ${i}`)}</text>`);
    });
  }
  out.push('</svg>');
  return out.join('\n');
}

/** Where point i's error bar ends (Plotly: `arrayminus` below when not symmetric), or null when it has none. */
function errorEnds(err: ErrorBars, y: Datum, i: number): { lo: number; hi: number } | null {
  const up = err.array[i];
  const down = err.symmetric === false ? err.arrayminus?.[i] : up;
  if (typeof y !== 'number' || typeof up !== 'number' || typeof down !== 'number' || !Number.isFinite(up) || !Number.isFinite(down)) return null;
  return { lo: y - down, hi: y + up };
}

function drawScatter(out: string[], t: ScatterTrace, color: string, xs: Scale, ys: Scale): void {
  const pts = t.x.map((x, i) => [xs.map(x), ys.map(t.y[i] ?? null)] as const);
  const mode = t.mode ?? 'lines+markers';
  if (mode.includes('lines')) {
    const dash = t.line?.dash === 'dash' ? ' stroke-dasharray="6,3"' : t.line?.dash === 'dot' ? ' stroke-dasharray="2,3"' : '';
    let run: string[] = [];
    const flush = (): void => {
      if (run.length > 1) out.push(`<polyline points="${run.join(' ')}" fill="none" stroke="${color}" stroke-width="${t.line?.width ?? 2}"${dash}/>`);
      run = [];
    };
    for (const [px, py] of pts) {
      if (Number.isFinite(px) && Number.isFinite(py)) run.push(`${r2(px)},${r2(py)}`);
      else flush(); // a gap, as Plotly draws null values
    }
    flush();
  }
  const err = t.error_y;
  if (err && err.visible !== false) {
    const cap = (err.width ?? 4);
    const stroke = err.color ?? color;
    t.y.forEach((y, i) => {
      const ends = errorEnds(err, y, i);
      const px = pts[i]![0];
      if (!ends || !Number.isFinite(px)) return;
      const lo = ys.map(ends.lo);
      const hi = ys.map(ends.hi);
      if (!Number.isFinite(lo) || !Number.isFinite(hi)) return;
      out.push(`<path d="M${r2(px)},${r2(lo)}V${r2(hi)}M${r2(px - cap)},${r2(lo)}H${r2(px + cap)}M${r2(px - cap)},${r2(hi)}H${r2(px + cap)}" fill="none" stroke="${stroke}" stroke-width="${err.thickness ?? 2}"/>`);
    });
  }
  if (mode.includes('markers')) {
    const rad = (t.marker?.size ?? 6) / 2;
    for (const [px, py] of pts) if (Number.isFinite(px) && Number.isFinite(py)) out.push(`<circle cx="${r2(px)}" cy="${r2(py)}" r="${r2(rad)}" fill="${t.marker?.color ?? color}"/>`);
  }
}

function drawBars(
  out: string[], t: BarTrace, color: string, xs: Scale, ys: Scale,
  o: { slot: number; slots: number; stackBase: Map<string, { pos: number; neg: number }> | null; floor: number },
): void {
  const horizontal = t.orientation === 'h';
  const cat = horizontal ? ys : xs;
  const val = horizontal ? xs : ys;
  const cats = (horizontal ? t.y : t.x) as Datum[];
  const vals = (horizontal ? t.x : t.y) as Datum[];
  const groupW = cat.band * 0.8;
  const w = groupW / o.slots;
  cats.forEach((c, i) => {
    const v = Number(vals[i]);
    const center = cat.map(c);
    if (!Number.isFinite(v) || !Number.isFinite(center)) return;
    let from = val.kind === 'log' ? NaN : 0;
    if (o.stackBase) {
      const base = o.stackBase.get(String(c)) ?? { pos: 0, neg: 0 };
      from = v >= 0 ? base.pos : base.neg;
      if (v >= 0) base.pos += v;
      else base.neg += v;
      o.stackBase.set(String(c), base);
    }
    const p0 = Number.isFinite(from) ? val.map(from) : o.floor; // log axes have no 0: bars start at the axis
    const p1 = val.map(from + v);
    if (!Number.isFinite(p0) || !Number.isFinite(p1)) return;
    const s = center - groupW / 2 + o.slot * w;
    const [lo, hi] = p0 < p1 ? [p0, p1] : [p1, p0];
    out.push(horizontal
      ? `<rect x="${r2(lo)}" y="${r2(s)}" width="${r2(hi - lo)}" height="${r2(w)}" fill="${color}"/>`
      : `<rect x="${r2(s)}" y="${r2(lo)}" width="${r2(w)}" height="${r2(hi - lo)}" fill="${color}"/>`);
    const label = t.text?.[i];
    if (label) {
      out.push(horizontal
        ? `<text x="${r2(hi + 4)}" y="${r2(s + w / 2 + 4)}" font-size="11">${escapeXml(label)}</text>`
        : `<text x="${r2(s + w / 2)}" y="${r2(lo - 4)}" text-anchor="middle" font-size="11">${escapeXml(label)}</text>`);
    }
  });
}

function drawHeatmap(out: string[], t: HeatmapTrace, xs: Scale, ys: Scale, box: { x1: number; y0: number; y1: number }, colorbar: boolean): void {
  const vals = t.z.flat().filter((v): v is number => typeof v === 'number' && Number.isFinite(v));
  let zmin = t.zmin ?? (vals.length ? Math.min(...vals) : 0);
  let zmax = t.zmax ?? (vals.length ? Math.max(...vals) : 1);
  if (t.zmid !== undefined && t.zmin === undefined && t.zmax === undefined) {
    // Plotly's zmid: the colour scale's middle at zmid, the range symmetric around it
    const r = Math.max(Math.abs(zmin - t.zmid), Math.abs(zmax - t.zmid));
    [zmin, zmax] = [t.zmid - r, t.zmid + r];
  }
  const scale = t.colorscale ?? 'Viridis';
  const norm = (v: number): number => (zmax === zmin ? 0.5 : (v - zmin) / (zmax - zmin));
  const cols = t.z[0]?.length ?? 0;
  const xLabels = t.x ? t.x.map(String) : Array.from({ length: cols }, (_, i) => String(i));
  const yLabels = t.y ? t.y.map(String) : Array.from({ length: t.z.length }, (_, i) => String(i));
  const cw = xs.band;
  const ch = ys.band;
  const rows = t.z.length;
  if (rows * cols > HEATMAP_RECT_LIMIT) {
    // Many cells: one pixelated PNG image (row r at the pixel row its y label maps to; null cells white).
    const rgb = new Uint8Array(rows * cols * 3).fill(255);
    const yTop = ys.map(yLabels[0]!) < ys.map(yLabels[rows - 1]!); // row 0 drawn at the top?
    t.z.forEach((row, r) => row.forEach((v, c) => {
      if (typeof v !== 'number' || !Number.isFinite(v)) return;
      const h = colorAt(scale, norm(v));
      const pr = yTop ? r : rows - 1 - r;
      const xc = xs.map(xLabels[0]!) < xs.map(xLabels[cols - 1]!) ? c : cols - 1 - c;
      rgb.set([parseInt(h.slice(1, 3), 16), parseInt(h.slice(3, 5), 16), parseInt(h.slice(5, 7), 16)], (pr * cols + xc) * 3);
    }));
    const png = Buffer.from(encodePngSync(rgb, rows, cols)).toString('base64');
    const left = Math.min(xs.map(xLabels[0]!), xs.map(xLabels[cols - 1]!)) - cw / 2;
    const topPx = Math.min(ys.map(yLabels[0]!), ys.map(yLabels[rows - 1]!)) - ch / 2;
    out.push(`<image x="${r2(left)}" y="${r2(topPx)}" width="${r2(cw * cols)}" height="${r2(ch * rows)}" preserveAspectRatio="none" style="image-rendering:pixelated" href="data:image/png;base64,${png}"/>`);
  } else {
    t.z.forEach((row, r) => {
      row.forEach((v, c) => {
        if (typeof v !== 'number' || !Number.isFinite(v)) return; // null cells stay blank, as in Plotly
        const cx = xs.map(xLabels[c]!);
        const cy = ys.map(yLabels[r]!);
        // +0.5 px overlap hides hairline seams between cells in rasterisers
        out.push(`<rect x="${r2(cx - cw / 2)}" y="${r2(cy - ch / 2)}" width="${r2(cw + 0.5)}" height="${r2(ch + 0.5)}" fill="${colorAt(scale, norm(v))}"/>`);
      });
    });
  }
  if (!colorbar) return;
  const bx = box.x1 + 14;
  const bw = 16;
  const steps = 48;
  const hgt = box.y0 - box.y1;
  for (let i = 0; i < steps; i++) {
    const f = i / (steps - 1);
    const y = box.y0 - ((i + 1) / steps) * hgt;
    out.push(`<rect x="${r2(bx)}" y="${r2(y)}" width="${bw}" height="${r2(hgt / steps + 0.5)}" fill="${colorAt(scale, f)}"/>`);
  }
  const { ticks, step } = niceTicks(zmin, zmax, 5);
  for (const v of ticks) {
    const y = box.y0 - norm(v) * hgt;
    out.push(`<line x1="${r2(bx + bw)}" y1="${r2(y)}" x2="${r2(bx + bw + 4)}" y2="${r2(y)}" stroke="${TEXT}"/>`);
    out.push(`<text x="${r2(bx + bw + 7)}" y="${r2(y + 4)}">${escapeXml(formatTick(v, step))}</text>`);
  }
}
