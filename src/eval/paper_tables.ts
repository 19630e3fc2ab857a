/**
 * The paper's published numbers (LENS, arXiv 2508.14153: Table 1 referring segmentation
 * cIoU, Table 2 ReasonSeg gIoU / cIoU), read from ../shared/reference/paper-tables.json
 * beside the checkout, for notebook 08's side-by-side comparison with our runs.
 * Our split names (FAMILY/SPLIT) map onto the tables' columns ("refcoco+_testA",
 * "reasonseg_val_giou").
 */
import { existsSync, readFileSync } from 'node:fs';
import { resolve } from 'node:path';
import { projectRoot } from '../util/paths';

/** One table as stored: column names and, per method, one value (percent) or null per column. */
export interface PaperTable {
  columns: string[];
  rows: Record<string, Array<number | null>>;
}

/** The two tables notebook 08 compares with. */
export interface PaperTables {
  source: string;
  /** Table 1: RefCOCO / RefCOCO+ / RefCOCOg cIoU per split, and the average. */
  table1: PaperTable;
  /** Table 2: ReasonSeg val / test gIoU and cIoU, GroundingSuite-Eval. */
  table2: PaperTable;
}

/** Where the file is expected: ../shared/reference/paper-tables.json from the project root. */
export function defaultPaperTablesPath(root = projectRoot()): string {
  return resolve(root, '..', 'shared', 'reference', 'paper-tables.json');
}

function checkTable(v: unknown, key: string, path: string): PaperTable {
  const t = v as Partial<PaperTable> | undefined;
  if (!t || !Array.isArray(t.columns) || typeof t.rows !== 'object' || t.rows === null) {
    throw new Error(`${path}: '${key}' must be an object with 'columns' (array) and 'rows' (object)`);
  }
  for (const [name, vals] of Object.entries(t.rows)) {
    if (!Array.isArray(vals) || vals.length !== t.columns.length || !vals.every((x) => x === null || typeof x === 'number')) {
      throw new Error(`${path}: ${key}.rows["${name}"] must hold ${t.columns.length} numbers or nulls (one per column)`);
    }
  }
  return t as PaperTable;
}

/**
 * Reads Tables 1 and 2. A missing file throws a message saying where it was looked for and
 * what it is (the notebooks print it and go on without the paper's columns).
 */
export function loadPaperTables(path = defaultPaperTablesPath()): PaperTables {
  if (!existsSync(path)) {
    throw new Error(`${path} not found: the paper's Tables 1-2 are read from ../shared/reference/paper-tables.json beside the checkout (the project's shared reference folder); without it only our own numbers are shown`);
  }
  let raw: Record<string, unknown>;
  try {
    raw = JSON.parse(readFileSync(path, 'utf8')) as Record<string, unknown>;
  } catch (e) {
    throw new Error(`${path}: not valid JSON (${(e as Error).message})`);
  }
  return {
    source: typeof raw.source === 'string' ? raw.source : path,
    table1: checkTable(raw.table1_res_ciou, 'table1_res_ciou', path),
    table2: checkTable(raw.table2_reasonseg_gs, 'table2_reasonseg_gs', path),
  };
}

/** The value of `method` in `column` of a table; null when either is absent or the cell is empty. */
export function paperValue(t: PaperTable, method: string, column: string): number | null {
  const j = t.columns.indexOf(column);
  const row = t.rows[method];
  return j < 0 || !row ? null : (row[j] ?? null);
}

/**
 * The paper's number for one of our splits and metric: refcoco* splits -> Table 1 cIoU
 * (the paper reports no gIoU there: null), reasonseg/val|test -> Table 2.
 * @example paperMetric(t, 'LENS-3B', 'refcoco+/testA', 'ciou') // 82.8
 */
export function paperMetric(t: PaperTables, method: string, split: string, metric: 'giou' | 'ciou'): number | null {
  const [family, name] = split.split('/');
  if (family === 'reasonseg') return paperValue(t.table2, method, `reasonseg_${name}_${metric}`);
  return metric === 'ciou' ? paperValue(t.table1, method, `${family}_${name}`) : null;
}

/** Table 1 and Table 2 name the same methods differently; the rows notebook 08 shows. */
export const PAPER_METHODS = [
  { label: 'LENS-3B', table1: 'LENS-3B', table2: 'LENS-3B' },
  { label: 'LISA (T1: LISA, T2: LISA-7B ft)', table1: 'LISA', table2: 'LISA-7B(ft)' },
  { label: 'Seg-Zero-3B', table1: 'Seg-Zero-3B', table2: 'Seg-Zero-3B' },
] as const;

/** Per split, each PAPER_METHODS entry's gIoU / cIoU from whichever table holds the split (percent; null = not reported). */
export function paperRows(t: PaperTables, splits: readonly string[]): Array<Record<string, string | number | null>> {
  return splits.map((split) => {
    const row: Record<string, string | number | null> = { split };
    const reason = split.startsWith('reasonseg/');
    for (const m of PAPER_METHODS) {
      const name = reason ? m.table2 : m.table1;
      row[`${m.table1} gIoU`] = paperMetric(t, name, split, 'giou');
      row[`${m.table1} cIoU`] = paperMetric(t, name, split, 'ciou');
    }
    return row;
  });
}

/**
 * Methods ordered best first by their value (nulls left out): `{ a: 30, b: 50, c: null }` -> ['b', 'a'].
 * Ties keep the given order.
 */
export function rankOrder(values: Record<string, number | null | undefined>): string[] {
  return Object.entries(values)
    .filter((e): e is [string, number] => typeof e[1] === 'number' && Number.isFinite(e[1]))
    .map(([k, v], i) => ({ k, v, i }))
    .sort((a, b) => b.v - a.v || a.i - b.i)
    .map((e) => e.k);
}

/** Our model columns (main_job.ts MAIN_JOB_MODELS) and the paper's method each is compared with. */
export const ORDERING_PAIRS = [
  { ours: 'lens-stage2', name: 'LENS', paper: PAPER_METHODS[0] },
  { ours: 'lisa', name: 'LISA', paper: PAPER_METHODS[1] },
  { ours: 'segzero', name: 'Seg-Zero', paper: PAPER_METHODS[2] },
] as const;

/** One split's ranking of LENS, LISA and Seg-Zero by cIoU, ours vs the paper's. */
export interface OrderingRow {
  split: string;
  /** e.g. 'LISA > LENS > Seg-Zero', best first. */
  ours: string;
  paper: string;
  same: boolean;
}

/**
 * For each split where the paper reports all three methods' cIoU: the order of ours
 * (summary rows with `<model>_ciou`, main_job.ts summaryRows) next to the paper's.
 */
export function orderingRows(summary: ReadonlyArray<Record<string, unknown>>, t: PaperTables): OrderingRow[] {
  return summary.flatMap((row) => {
    const split = String(row.split);
    const reason = split.startsWith('reasonseg/');
    const paper = Object.fromEntries(ORDERING_PAIRS.map((p) => [p.name, paperMetric(t, reason ? p.paper.table2 : p.paper.table1, split, 'ciou')]));
    if (Object.values(paper).some((v) => v === null)) return [];
    const ours = Object.fromEntries(ORDERING_PAIRS.map((p) => {
      const v = row[`${p.ours}_ciou`];
      return [p.name, typeof v === 'number' ? v : null];
    }));
    const a = rankOrder(ours).join(' > ');
    const b = rankOrder(paper).join(' > ');
    return [{ split, ours: a, paper: b, same: a === b }];
  });
}
