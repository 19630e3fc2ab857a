/**
 * Shared checks for the dataset loaders: the split table, JSON reading with the
 * file named in every error, and typed field accessors that say which field of
 * which file was wrong and what was expected.
 */
import { readFileSync } from 'node:fs';
import type { Family } from '../types';

/** Valid splits per family (RefCOCO/+ : UNC splits, RefCOCOg: UMD splits, ReasonSeg, GroundingSuite-Eval). */
export const SPLITS: Readonly<Record<Family, readonly string[]>> = {
  refcoco: ['train', 'val', 'testA', 'testB'],
  'refcoco+': ['train', 'val', 'testA', 'testB'],
  refcocog: ['train', 'val', 'test'],
  reasonseg: ['train', 'val', 'test'],
  groundingsuite: ['eval'],
};

/** All families, in the order the paper's tables list them. */
export const FAMILIES = Object.keys(SPLITS) as Family[];

/** Throws unless `family` is known and `split` is one of its splits, listing the valid ones. */
export function checkSplit(family: string, split: string): asserts family is Family {
  if (!(family in SPLITS)) {
    throw new Error(`unknown dataset family '${family}': expected one of ${FAMILIES.join(', ')}`);
  }
  const valid = SPLITS[family as Family];
  if (!valid.includes(split)) {
    throw new Error(`unknown split '${split}' for ${family}: expected one of ${valid.join(', ')}`);
  }
}

/** Reads and parses a JSON file; errors name the file. */
export function readJson(path: string): unknown {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (e) {
    throw new Error(`${path}: cannot read file (${(e as NodeJS.ErrnoException).code ?? (e as Error).message})`);
  }
  try {
    return JSON.parse(text);
  } catch (e) {
    throw new Error(`${path}: malformed JSON: ${(e as Error).message}`);
  }
}

/** A plain object, or an error naming `where`. */
export function obj(v: unknown, where: string): Record<string, unknown> {
  if (typeof v !== 'object' || v === null || Array.isArray(v)) throw new Error(`${where}: expected an object, got ${describe(v)}`);
  return v as Record<string, unknown>;
}

/** An array, or an error naming `where`. */
export function arr(v: unknown, where: string): unknown[] {
  if (!Array.isArray(v)) throw new Error(`${where}: expected a list, got ${describe(v)}`);
  return v;
}

/** A string field. */
export function str(o: Record<string, unknown>, key: string, where: string): string {
  const v = o[key];
  if (typeof v !== 'string') throw new Error(`${where}.${key}: expected a string, got ${describe(v)}`);
  return v;
}

/** A finite number field. */
export function num(o: Record<string, unknown>, key: string, where: string): number {
  const v = o[key];
  if (typeof v !== 'number' || !Number.isFinite(v)) throw new Error(`${where}.${key}: expected a number, got ${describe(v)}`);
  return v;
}

/** A positive integer field (image sizes). */
export function posInt(o: Record<string, unknown>, key: string, where: string): number {
  const v = o[key];
  if (typeof v !== 'number' || !Number.isInteger(v) || v <= 0) throw new Error(`${where}.${key}: expected a positive integer, got ${describe(v)}`);
  return v;
}

/** An id field: integer or string (COCO ids are integers; other sources use strings). */
export function id(o: Record<string, unknown>, key: string, where: string): number | string {
  const v = o[key];
  if ((typeof v === 'number' && Number.isInteger(v)) || (typeof v === 'string' && v !== '')) return v;
  throw new Error(`${where}.${key}: expected an integer or string id, got ${describe(v)}`);
}

/** A box of 4 finite numbers. */
export function box4(v: unknown, where: string): [number, number, number, number] {
  if (!Array.isArray(v) || v.length !== 4 || !v.every((x) => typeof x === 'number' && Number.isFinite(x))) {
    throw new Error(`${where}: expected a box of 4 numbers, got ${describe(v)}`);
  }
  return v as [number, number, number, number];
}

/** Short description of a bad value for error messages. */
export function describe(v: unknown): string {
  if (v === undefined) return 'nothing (field missing)';
  const s = JSON.stringify(v);
  return s === undefined ? String(v) : s.length > 60 ? `${s.slice(0, 57)}...` : s;
}
