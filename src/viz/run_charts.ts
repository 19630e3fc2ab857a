/**
 * Line series of training logs (notebooks 03, 04): a logged column over steps, its
 * moving average, and a logged mean with a ±std band (stage 2 logs `<k>Mean` / `<k>Std`
 * per reward component, grpo_stage.ts rolloutLogs). The band is drawn as two dashed
 * lines in the mean's colour: the figure subset (figure.ts) has no filled areas, and the
 * static SVG fallback must look like the Plotly figure.
 */
import { scoreCurve } from '../train/grpo_stage';
import type { Row } from '../util/arrow';
import { PALETTE, type LineSeries } from './figure';

/**
 * The rows with a finite number in `key` (and a numeric `step`), optionally only those
 * passing `filter` -> { x: step, y }. Throws naming the column (and the columns there are)
 * when rows exist but none has it: a renamed log column should fail loudly, not plot nothing.
 */
export function stepSeries(steps: readonly Row[], key: string, { filter, where = 'steps.arrow' }: { filter?: (r: Row) => boolean; where?: string } = {}): { x: number[]; y: number[] } {
  const x: number[] = [];
  const y: number[] = [];
  let seen = false;
  for (const r of steps) {
    const v = r[key];
    if (typeof v !== 'number' || !Number.isFinite(v) || typeof r.step !== 'number') continue;
    seen = true;
    if (filter && !filter(r)) continue;
    x.push(r.step);
    y.push(v);
  }
  if (steps.length > 0 && !seen) throw new Error(`${where}: no step logs column '${key}'; columns: ${Object.keys(steps[0]!).join(', ')}`);
  return { x, y };
}

/**
 * Trailing moving average over `window` points (the first points average what there is):
 * m_i = mean(y_{max(0, i-window+1)..i}).
 * @example movingAverage([1, 2, 3, 4], 2) // [1, 1.5, 2.5, 3.5]
 */
export function movingAverage(y: readonly number[], window: number): number[] {
  if (!Number.isInteger(window) || window < 1) throw new Error(`movingAverage: window must be an integer >= 1, got ${window}`);
  const out: number[] = [];
  let sum = 0;
  for (let i = 0; i < y.length; i++) {
    sum += y[i]!;
    if (i >= window) sum -= y[i - window]!;
    out.push(sum / Math.min(i + 1, window));
  }
  return out;
}

/** A window of about 5% of the points (at least 1): smooth enough for noisy batch figures, short enough to keep trends. */
export function defaultWindow(n: number): number {
  return Math.max(1, Math.round(n / 20));
}

/**
 * A logged column as two series: the raw values (dotted) and their moving average (solid),
 * both in `color`. The smoothed one is named `name`.
 */
export function rawAndSmoothed(steps: readonly Row[], key: string, { name = key, color = PALETTE[0], window }: { name?: string; color?: string; window?: number } = {}): LineSeries[] {
  const s = stepSeries(steps, key);
  const w = window ?? defaultWindow(s.x.length);
  return [
    { name: `${name} (per step)`, x: s.x, y: s.y, color, dash: 'dot' },
    { name: w > 1 ? `${name} (mean of ${w})` : name, x: s.x, y: movingAverage(s.y, w), color },
  ];
}

/**
 * `<prefix>Mean` with its ±`<prefix>Std` band: three series in one colour (mean solid,
 * mean ± std dashed). Steps missing either column are left out.
 */
export function meanBandSeries(steps: readonly Row[], prefix: string, { name = prefix, color = PALETTE[0] }: { name?: string; color?: string } = {}): LineSeries[] {
  const mean = stepSeries(steps, `${prefix}Mean`);
  const std = stepSeries(steps, `${prefix}Std`);
  const byStep = new Map(std.x.map((s, i) => [s, std.y[i]!]));
  const x: number[] = [];
  const m: number[] = [];
  const sd: number[] = [];
  mean.x.forEach((s, i) => {
    const v = byStep.get(s);
    if (v === undefined) return;
    x.push(s);
    m.push(mean.y[i]!);
    sd.push(v);
  });
  return [
    { name: `${name} mean`, x, y: m, color },
    { name: `${name} + std`, x, y: m.map((v, i) => v + sd[i]!), color, dash: 'dash' },
    { name: `${name} - std`, x, y: m.map((v, i) => v - sd[i]!), color, dash: 'dash' },
  ];
}

/**
 * Stage 2's scorings on its training prompts (grpo_stage.ts, scoreEvery; scoreCurve): the
 * policy's score after each scored step, starting from the stage-1 model's at step 0 (the
 * policy before its first update), and that stage-1 score as a flat dashed line. [] when the
 * run scored nothing.
 */
export function scoreSeries(steps: readonly Row[], { color = PALETTE[3], refColor = PALETTE[7] }: { color?: string; refColor?: string } = {}): LineSeries[] {
  const { ref, after, reward } = scoreCurve(steps);
  if (after.length === 0) return [];
  if (ref === null) return [{ name: 'R, policy', x: after, y: reward, color, markers: true }];
  return [
    { name: 'R, policy', x: [0, ...after], y: [ref, ...reward], color, markers: true },
    { name: 'R, stage 1', x: [0, after.at(-1)!], y: [ref, ref], color: refColor, dash: 'dash' },
  ];
}
