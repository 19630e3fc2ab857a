/**
 * Figures of the ablation tables (paper Tables 3-5; src/train/ablate.ts): our cIoU per
 * cell over seeds (mean with ± 1 sample-std error bars, and every seed as a point) and
 * the paper's printed values beside ours. Two figures, because the paper's LENS-3B sits
 * at 70-88% cIoU and our small model far lower: on one axis our differences between
 * cells would vanish, so the first figure has its own scale and the second shows both.
 */
import type { CellSummary } from '../train/ablate_summary';
import { PALETTE, type Figure, type ScatterTrace } from './figure';

const finite = (v: number | null): number | null => (v !== null && Number.isFinite(v) ? v : null);

/** Our cIoU per cell: mean ± std (error bars) and the per-seed values as small points. */
export function ablationSeedFigure(title: string, cells: readonly CellSummary[], { height = 380, width = 640 } = {}): Figure {
  const x = cells.map((c) => c.cell);
  const mean: ScatterTrace = {
    type: 'scatter', name: 'ours: mean ± std', mode: 'markers', x, y: cells.map((c) => finite(c.mean)),
    marker: { color: PALETTE[0], size: 11 }, error_y: { type: 'data', array: cells.map((c) => (c.n > 1 ? c.std : null)), visible: true, color: PALETTE[0] },
  };
  const seeds: ScatterTrace = {
    type: 'scatter', name: 'ours: each seed', mode: 'markers',
    x: cells.flatMap((c) => c.values.map(() => c.cell)), y: cells.flatMap((c) => c.values.map(finite)),
    marker: { color: PALETTE[4], size: 6 },
  };
  return {
    data: [mean, seeds],
    layout: { title: { text: title }, xaxis: { type: 'category' }, yaxis: { title: { text: 'cIoU, RefCOCO testA (%)' } }, showlegend: true, width, height },
  };
}

/** The paper's cIoU and our mean per cell as grouped bars on one 0-100 axis (null: not printed / no seeds). */
export function ablationPaperFigure(title: string, cells: readonly CellSummary[], { height = 380, width = 640 } = {}): Figure {
  const x = cells.map((c) => c.cell);
  const label = (v: number | null) => (v === null ? 'n/a' : v.toFixed(1));
  return {
    data: [
      { type: 'bar', name: 'paper (LENS-3B)', x, y: cells.map((c) => c.paper ?? Number.NaN), orientation: 'v', marker: { color: PALETTE[1] }, text: cells.map((c) => label(c.paper)) },
      { type: 'bar', name: 'ours (mean)', x, y: cells.map((c) => finite(c.mean) ?? Number.NaN), orientation: 'v', marker: { color: PALETTE[0] }, text: cells.map((c) => label(finite(c.mean))) },
    ],
    layout: {
      title: { text: title }, xaxis: { type: 'category' }, yaxis: { title: { text: 'cIoU (%)' }, range: [0, 100] }, barmode: 'group', showlegend: true, width, height,
    },
  };
}
