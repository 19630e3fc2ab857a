/**
 * Results as Apache Arrow IPC files (DESIGN.md: results live in results/ as Arrow;
 * tables and figures are regenerated from them). Rows are flat records of numbers,
 * strings and booleans; columns are typed from the first non-null value.
 */
import { readFileSync, existsSync } from 'node:fs';
import { tableFromArrays, tableFromIPC, tableToIPC } from 'apache-arrow';
import { writeFileAtomic } from './fs';

export type Cell = number | string | boolean | null;
export type Row = Record<string, Cell>;

function columnOf(rows: readonly Row[], key: string, where: string): Float64Array | string[] | boolean[] {
  const first = rows.find((r) => r[key] !== null && r[key] !== undefined)?.[key];
  if (typeof first === 'string') return rows.map((r) => (r[key] === null || r[key] === undefined ? '' : String(r[key])));
  if (typeof first === 'boolean') return rows.map((r) => Boolean(r[key]));
  const out = new Float64Array(rows.length);
  rows.forEach((r, i) => {
    const v = r[key];
    if (v !== null && v !== undefined && typeof v !== 'number') {
      throw new TypeError(`${where}: column '${key}' mixes numbers with ${typeof v} (row ${i})`);
    }
    out[i] = typeof v === 'number' ? v : Number.NaN;
  });
  return out;
}

/** Writes rows as an Arrow IPC file, atomically. Column order: first appearance. */
export function writeArrow(path: string, rows: readonly Row[]): void {
  const keys: string[] = [];
  for (const r of rows) for (const k of Object.keys(r)) if (!keys.includes(k)) keys.push(k);
  const cols: Record<string, Float64Array | string[] | boolean[]> = {};
  for (const k of keys) cols[k] = columnOf(rows, k, path);
  writeFileAtomic(path, tableToIPC(tableFromArrays(cols as Parameters<typeof tableFromArrays>[0]), 'file'));
}

/** Reads an Arrow IPC file back into plain rows (missing numbers come back as NaN). */
export function readArrow(path: string): Row[] {
  if (!existsSync(path)) throw new Error(`${path}: no such Arrow file`);
  let table;
  try {
    table = tableFromIPC(readFileSync(path));
  } catch (e) {
    throw new Error(`${path}: not a readable Arrow IPC file (${(e as Error).message})`);
  }
  return table.toArray().map((r) => {
    const o = r.toJSON() as Record<string, unknown>;
    const row: Row = {};
    for (const [k, v] of Object.entries(o)) row[k] = typeof v === 'bigint' ? Number(v) : (v as Cell);
    return row;
  });
}

/** Appends rows to an Arrow file (read, concatenate, rewrite atomically). */
export function appendArrow(path: string, rows: readonly Row[]): void {
  const old = existsSync(path) ? readArrow(path) : [];
  writeArrow(path, [...old, ...rows]);
}
