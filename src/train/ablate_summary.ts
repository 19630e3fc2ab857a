/**
 * Summaries of the ablation tables (paper Tables 3, 4, 5; reference/paper-tables.json):
 * per cell the mean, spread and range of our cIoU over seeds next to the paper's value,
 * and a verdict on whether our ORDERING of the cells agrees with the paper's once the
 * seed spread is taken into account. Pure functions of rows (tested with hand-made rows);
 * the Markdown of the README's ablation tables is rendered from the Arrow files by
 * `ablationMarkdown` (`npx lens ablate <table> --report`).
 *
 * Decisions:
 * - spread = the sample standard deviation over seeds (n - 1 in the denominator: a few
 *   seeds estimate the spread of a training outcome, not of a fixed population); 0 for
 *   one seed;
 * - a pair of cells is compared only when the paper printed a value for both and the
 *   values differ; the paper's order (a > b or a < b) is then checked against ours:
 *   |our difference| <= std_a + std_b -> 'within spread' (our seeds cannot tell the two
 *   apart), else 'agrees' / 'disagrees' by the sign;
 * - the overall verdict is 'agrees' when every compared pair agrees, 'disagrees' when no
 *   pair agrees and at least one disagrees, 'mixed' when some agree and some disagree,
 *   'within spread' when every pair is within the seed spread, 'no pairs' when nothing
 *   can be compared (one line also gives the counts).
 */
import type { Row } from '../util/arrow';

/** One row of a table file: one cell x one seed (metrics in percent, as the paper prints). */
export interface AblationRow {
  /** 'queries' | 'connector' | 'rewards'. */
  table: string;
  /** The cell's label (grid order is the table's order). */
  cell: string;
  /** The cell's delta as JSON (model delta, or Table 5's switches). */
  delta: string;
  seed: number;
  /** cIoU on RefCOCO testA, percent. */
  ciou: number;
  /** gIoU, percent. */
  giou: number;
  /** Share of answers in the think/answer format, percent (NaN when the model answers no such format). */
  formatRate: number;
  /** Box Acc@0.5, percent (NaN when the model answers no box). */
  boxAcc50: number;
  /** Sentences scored. */
  n: number;
  /** Wall seconds this cell x seed took when it was computed (a run shared with an earlier cell is not counted again). */
  seconds: number;
  /** The run folder scored, relative to the table's folder. */
  run: string;
}

/** A cell of a grid as the summaries need it: its label and the paper's value (null = not printed). */
export interface GridCell {
  label: string;
  paper: number | null;
}

/** One cell's figures over its seeds. */
export interface CellSummary {
  cell: string;
  /** Seeds present. */
  n: number;
  seeds: number[];
  /** cIoU mean / sample std / min / max over seeds, percent (NaN without seeds). */
  mean: number;
  std: number;
  min: number;
  max: number;
  /** The per-seed cIoU values, in seed order. */
  values: number[];
  giou: number;
  formatRate: number;
  boxAcc50: number;
  paper: number | null;
}

const mean = (xs: readonly number[]): number => (xs.length ? xs.reduce((a, x) => a + x, 0) / xs.length : Number.NaN);

/** Sample standard deviation (n - 1); 0 for fewer than two values. */
export function sampleStd(xs: readonly number[]): number {
  if (xs.length < 2) return 0;
  const m = mean(xs);
  return Math.sqrt(xs.reduce((a, x) => a + (x - m) ** 2, 0) / (xs.length - 1));
}

/** Mean of the finite values (NaN when none: a figure the model does not produce). */
const finiteMean = (xs: readonly number[]): number => mean(xs.filter((x) => Number.isFinite(x)));

/** Per grid cell, in grid order: mean, std, min, max, seeds of our cIoU, and the paper's value. */
export function summarizeCells(rows: readonly AblationRow[], grid: readonly GridCell[]): CellSummary[] {
  return grid.map((g) => {
    const mine = rows.filter((r) => r.cell === g.label).sort((a, b) => a.seed - b.seed);
    const v = mine.map((r) => r.ciou);
    return {
      cell: g.label,
      n: mine.length,
      seeds: mine.map((r) => r.seed),
      mean: mean(v),
      std: sampleStd(v),
      min: v.length ? Math.min(...v) : Number.NaN,
      max: v.length ? Math.max(...v) : Number.NaN,
      values: v,
      giou: finiteMean(mine.map((r) => r.giou)),
      formatRate: finiteMean(mine.map((r) => r.formatRate)),
      boxAcc50: finiteMean(mine.map((r) => r.boxAcc50)),
      paper: g.paper,
    };
  });
}

export type PairOutcome = 'agrees' | 'disagrees' | 'within spread';

/** One compared pair of cells. */
export interface PairVerdict {
  a: string;
  b: string;
  /** paper(a) - paper(b). */
  paperDiff: number;
  /** mean(a) - mean(b), ours. */
  ourDiff: number;
  /** std(a) + std(b), ours. */
  spread: number;
  verdict: PairOutcome;
}

/** Every pair (a before b in grid order) whose paper values both exist and differ, judged as the file header says. */
export function pairVerdicts(cells: readonly CellSummary[]): PairVerdict[] {
  const out: PairVerdict[] = [];
  for (let i = 0; i < cells.length; i++) {
    for (let j = i + 1; j < cells.length; j++) {
      const a = cells[i]!;
      const b = cells[j]!;
      if (a.paper === null || b.paper === null || a.paper === b.paper) continue;
      if (a.n === 0 || b.n === 0) continue;
      const paperDiff = a.paper - b.paper;
      const ourDiff = a.mean - b.mean;
      const spread = a.std + b.std;
      const verdict: PairOutcome = Math.abs(ourDiff) <= spread ? 'within spread' : Math.sign(ourDiff) === Math.sign(paperDiff) ? 'agrees' : 'disagrees';
      out.push({ a: a.cell, b: b.cell, paperDiff, ourDiff, spread, verdict });
    }
  }
  return out;
}

export type OverallOutcome = 'agrees' | 'disagrees' | 'mixed' | 'within spread' | 'no pairs';

/** The table's verdict from its pairs, with a one-line explanation. */
export function overallVerdict(pairs: readonly PairVerdict[]): { verdict: OverallOutcome; line: string } {
  const count = (v: PairOutcome) => pairs.filter((p) => p.verdict === v).length;
  const agree = count('agrees');
  const disagree = count('disagrees');
  const within = count('within spread');
  let verdict: OverallOutcome;
  if (pairs.length === 0) verdict = 'no pairs';
  else if (agree === pairs.length) verdict = 'agrees';
  else if (agree === 0 && disagree > 0) verdict = 'disagrees';
  else if (agree > 0 && disagree > 0) verdict = 'mixed';
  else if (within === pairs.length) verdict = 'within spread';
  else verdict = 'agrees'; // some agree, the rest within the spread: nothing contradicts the paper
  const detail = pairs.length === 0
    ? 'no two cells with different paper values have seeds yet'
    : `of ${pairs.length} pairs of cells the paper orders, ${agree} agree beyond the seed spread, ${disagree} disagree beyond it, ${within} are within it (|mean difference| <= std_a + std_b)`;
  const head = verdict === 'agrees' && disagree === 0 && within > 0 ? 'agrees where our seeds can tell' : verdict;
  return { verdict, line: `Verdict: ${head}: ${detail}.` };
}

const f1 = (v: number | null): string => (v === null || !Number.isFinite(v) ? 'n/a' : v.toFixed(1));

/** Table rows for display (notebooks): ours mean ± std, range, seeds, paper, format rate, gIoU. */
export function summaryTable(cells: readonly CellSummary[]): Array<Record<string, string | number>> {
  return cells.map((c) => ({
    cell: c.cell,
    'cIoU ours (mean ± std)': c.n ? `${f1(c.mean)} ± ${f1(c.std)}` : 'n/a',
    'min–max': c.n ? `${f1(c.min)}–${f1(c.max)}` : 'n/a',
    seeds: c.n,
    'cIoU paper': f1(c.paper),
    'gIoU ours': f1(c.giou),
    'format rate ours': f1(c.formatRate),
  }));
}

/** A Markdown table of the summaries plus the verdict line (README; `lens ablate --report`). */
export function ablationMarkdown(title: string, cells: readonly CellSummary[], note = ''): string {
  const rows = summaryTable(cells);
  const cols = Object.keys(rows[0] ?? { cell: '' });
  const lines = [
    `**${title}**`,
    '',
    `| ${cols.join(' | ')} |`,
    `|${cols.map((_, i) => (i === 0 ? '---' : '---:')).join('|')}|`,
    ...rows.map((r) => `| ${cols.map((c) => String(r[c])).join(' | ')} |`),
    '',
    overallVerdict(pairVerdicts(cells)).line,
  ];
  if (note) lines.push('', note);
  return lines.join('\n');
}

/** Rows of a table file as AblationRow (numbers that came back NaN stay NaN). */
export function asAblationRows(rows: readonly Row[]): AblationRow[] {
  return rows.map((r) => ({
    table: String(r.table),
    cell: String(r.cell),
    delta: String(r.delta),
    seed: Number(r.seed),
    ciou: Number(r.ciou),
    giou: Number(r.giou),
    formatRate: r.formatRate === null ? Number.NaN : Number(r.formatRate),
    boxAcc50: r.boxAcc50 === null ? Number.NaN : Number(r.boxAcc50),
    n: Number(r.n),
    seconds: Number(r.seconds),
    run: String(r.run),
  }));
}
