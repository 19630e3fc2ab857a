/**
 * Figures as Plotly JSON (the `application/vnd.plotly.v1+json` payload that
 * JupyterLab's Plotly renderer reads: `{ data, layout }`), restricted to the
 * subset this project plots and that src/viz/svg.ts can also draw statically:
 * line / marker scatter traces, bars (vertical or horizontal, grouped or stacked)
 * and heatmaps. The builders set every colour explicitly, so the interactive
 * Plotly figure and the static SVG fallback look the same (DESIGN.md "Notebooks").
 */

/** Plotly's default qualitative palette (plotly.js `colorway`), used in trace order. */
export const PALETTE = ['#636efa', '#EF553B', '#00cc96', '#ab63fa', '#FFA15A', '#19d3f3', '#FF6692', '#B6E880', '#FF97FF', '#FECB52'] as const;

/** A line and/or marker series (Plotly `scatter`); null y values leave a gap. */
export interface ScatterTrace {
  type: 'scatter';
  name?: string;
  x: Array<number | string>;
  y: Array<number | null>;
  mode?: 'lines' | 'markers' | 'lines+markers';
  line?: { color?: string; dash?: 'solid' | 'dash' | 'dot'; width?: number };
  marker?: { color?: string; size?: number };
  /** Vertical error bars (Plotly `error_y` of type 'data'): one length per point, null = none; symmetric unless `symmetric: false`. */
  error_y?: ErrorBars;
}

/** Plotly's `error_y` with explicit values (`type: 'data'`); with `symmetric: false`, `array` reaches up and `arrayminus` down. */
export interface ErrorBars {
  type: 'data';
  array: Array<number | null>;
  symmetric?: boolean;
  arrayminus?: Array<number | null>;
  visible?: boolean;
  color?: string;
  thickness?: number;
  /** Cap width in pixels (Plotly default 4). */
  width?: number;
}

/** Bars (Plotly `bar`): vertical bars have categories in `x`, horizontal (`orientation: 'h'`) in `y`. */
export interface BarTrace {
  type: 'bar';
  name?: string;
  x: Array<number | string>;
  y: Array<number | string>;
  orientation?: 'v' | 'h';
  marker?: { color?: string };
  /** Labels drawn on the bars (Plotly `text`). */
  text?: string[];
}

/** Colour scales the static renderer knows (Plotly names). */
export type ColorscaleName = 'Viridis' | 'Greys' | 'RdBu';

/** A heatmap (Plotly `heatmap`): z[row][col]; row 0 is drawn at the top when `yaxis.autorange` is 'reversed'. */
export interface HeatmapTrace {
  type: 'heatmap';
  name?: string;
  z: Array<Array<number | null>>;
  x?: Array<number | string>;
  y?: Array<number | string>;
  colorscale?: ColorscaleName;
  zmin?: number;
  zmax?: number;
  /** Middle of the colour scale (diverging scales: 0), range symmetric around it, as Plotly. */
  zmid?: number;
  showscale?: boolean;
}

export type Trace = ScatterTrace | BarTrace | HeatmapTrace;

/** One axis (Plotly `layout.xaxis` / `yaxis`). */
export interface Axis {
  title?: { text: string };
  type?: 'linear' | 'log' | 'category';
  /** Plotly's 'reversed' flips the axis (heatmaps of matrices: row 0 on top). */
  autorange?: boolean | 'reversed';
  /** Fixed range in data units (log axes: in log10 units, as Plotly). */
  range?: [number, number];
}

/** The layout fields the static renderer honours (Plotly `layout`). */
export interface Layout {
  title?: { text: string };
  xaxis?: Axis;
  yaxis?: Axis;
  width?: number;
  height?: number;
  barmode?: 'group' | 'stack';
  showlegend?: boolean;
}

/** A figure: Plotly's `{ data, layout }`. */
export interface Figure {
  data: Trace[];
  layout: Layout;
}

/** Axis options of the builders. */
export interface AxisOptions {
  title?: string;
  log?: boolean;
}

const axis = (o: AxisOptions | undefined, extra: Partial<Axis> = {}): Axis => ({
  ...(o?.title !== undefined ? { title: { text: o.title } } : {}),
  ...(o?.log ? { type: 'log' as const } : {}),
  ...extra,
});

const title = (t: string | undefined): Pick<Layout, 'title'> => (t !== undefined ? { title: { text: t } } : {});

function checkLengths(where: string, a: unknown[], b: unknown[], what: string): void {
  if (a.length !== b.length) throw new Error(`${where}: ${what} have ${a.length} and ${b.length} entries; expected equal lengths`);
}

/** One series of a line chart. */
export interface LineSeries {
  name: string;
  x: number[];
  y: Array<number | null>;
  color?: string;
  dash?: 'solid' | 'dash' | 'dot';
  markers?: boolean;
}

/** A line chart (training curves, sweeps): one scatter trace per series. */
export function lineChart(opts: { title?: string; x?: AxisOptions; y?: AxisOptions; series: LineSeries[]; width?: number; height?: number }): Figure {
  const data: ScatterTrace[] = opts.series.map((s, i) => {
    checkLengths(`lineChart series '${s.name}'`, s.x, s.y, 'x and y');
    const color = s.color ?? PALETTE[i % PALETTE.length]!;
    return {
      type: 'scatter', name: s.name, x: [...s.x], y: [...s.y], mode: s.markers ? 'lines+markers' : 'lines',
      line: { color, dash: s.dash ?? 'solid', width: 2 }, marker: { color, size: 6 },
    };
  });
  return {
    data,
    layout: {
      ...title(opts.title), xaxis: axis(opts.x), yaxis: axis(opts.y), showlegend: data.length > 1,
      ...(opts.width ? { width: opts.width } : {}), ...(opts.height ? { height: opts.height } : {}),
    },
  };
}

/** One series of a bar chart: one value per category. */
export interface BarSeries {
  name: string;
  values: number[];
  color?: string;
  /** Labels drawn on the bars. */
  text?: string[];
}

/** A bar chart over categories (parameter counts, ablation tables): grouped or stacked, vertical or horizontal. */
export function barChart(opts: {
  title?: string; categories: string[]; series: BarSeries[]; horizontal?: boolean; stacked?: boolean;
  valueAxis?: AxisOptions; categoryAxis?: AxisOptions; width?: number; height?: number;
}): Figure {
  const data: BarTrace[] = opts.series.map((s, i) => {
    checkLengths(`barChart series '${s.name}'`, opts.categories, s.values, 'categories and values');
    if (s.text) checkLengths(`barChart series '${s.name}'`, opts.categories, s.text, 'categories and text');
    const cats = [...opts.categories];
    const vals = [...s.values];
    return {
      type: 'bar', name: s.name, ...(opts.horizontal ? { x: vals, y: cats, orientation: 'h' as const } : { x: cats, y: vals, orientation: 'v' as const }),
      marker: { color: s.color ?? PALETTE[i % PALETTE.length]! }, ...(s.text ? { text: [...s.text] } : {}),
    };
  });
  const valueAxis = axis(opts.valueAxis);
  const catAxis = axis(opts.categoryAxis, { type: 'category', ...(opts.horizontal ? { autorange: 'reversed' as const } : {}) });
  return {
    data,
    layout: {
      ...title(opts.title), xaxis: opts.horizontal ? valueAxis : catAxis, yaxis: opts.horizontal ? catAxis : valueAxis,
      barmode: opts.stacked ? 'stack' : 'group', showlegend: data.length > 1,
      ...(opts.width ? { width: opts.width } : {}), ...(opts.height ? { height: opts.height } : {}),
    },
  };
}

/** A heatmap of a matrix z[row][col] with row 0 at the top (attention maps, confusion matrices, masks). */
export function heatmap(opts: {
  title?: string; z: number[][]; x?: Array<string | number>; y?: Array<string | number>; colorscale?: ColorscaleName;
  zmin?: number; zmax?: number; zmid?: number; xAxis?: AxisOptions; yAxis?: AxisOptions; width?: number; height?: number;
}): Figure {
  const rows = opts.z.length;
  const cols = opts.z[0]?.length ?? 0;
  if (rows === 0 || cols === 0) throw new Error('heatmap: z must be a non-empty matrix');
  opts.z.forEach((r, i) => {
    if (r.length !== cols) throw new Error(`heatmap: z row ${i} has ${r.length} columns, expected ${cols} (as row 0)`);
  });
  if (opts.x && opts.x.length !== cols) throw new Error(`heatmap: x has ${opts.x.length} labels, expected ${cols} (columns of z)`);
  if (opts.y && opts.y.length !== rows) throw new Error(`heatmap: y has ${opts.y.length} labels, expected ${rows} (rows of z)`);
  const trace: HeatmapTrace = {
    type: 'heatmap', z: opts.z.map((r) => [...r]), colorscale: opts.colorscale ?? 'Viridis',
    ...(opts.x ? { x: [...opts.x] } : {}), ...(opts.y ? { y: [...opts.y] } : {}),
    ...(opts.zmin !== undefined ? { zmin: opts.zmin } : {}), ...(opts.zmax !== undefined ? { zmax: opts.zmax } : {}),
    ...(opts.zmid !== undefined ? { zmid: opts.zmid } : {}),
  };
  return {
    data: [trace],
    layout: {
      ...title(opts.title), xaxis: axis(opts.xAxis), yaxis: axis(opts.yAxis, { autorange: 'reversed' }),
      ...(opts.width ? { width: opts.width } : {}), ...(opts.height ? { height: opts.height } : {}),
    },
  };
}
