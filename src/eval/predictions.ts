/**
 * Scoring a predictions file against a split, COCO results style (the contract of
 * `lens evaluate`): a JSON list of
 *   {"ref_id" | "sample_id", "sent_idx"?, "segmentation": {"size": [h, w], "counts": RLE string},
 *    "bbox"?: [x, y, w, h], "format_valid"?: boolean}
 * `sample_id` names one sample (`family/split/refId/sentIdx`); `ref_id` without
 * `sent_idx` applies to every sentence of that ref (one mask per referred object),
 * with `sent_idx` to that sentence. A sample without a prediction scores as an empty
 * mask (and a missed box when boxes are scored).
 */
import { readFileSync } from 'node:fs';
import { decodeRle, encodeRle } from '../data/formats/rle';
import type { CocoRle, RefDataset, RefSample } from '../data/types';
import { MetricAccumulator, type Box, type MetricResult } from './metrics';

/** One validated entry of a predictions file. */
export interface Prediction {
  /** Position in the file, for error messages. */
  index: number;
  sampleId?: string;
  refId?: number | string;
  sentIdx?: number;
  segmentation: CocoRle;
  bbox?: Box;
  formatValid?: boolean;
}

const describe = (v: unknown): string => {
  const s = JSON.stringify(v);
  return s === undefined ? String(v) : s.length > 60 ? `${s.slice(0, 57)}...` : s;
};

/** Reads and validates a predictions file; every error names the file and entry. */
export function readPredictions(path: string): Prediction[] {
  let raw: unknown;
  try {
    raw = JSON.parse(readFileSync(path, 'utf8'));
  } catch (e) {
    const err = e as NodeJS.ErrnoException;
    throw new Error(err.code ? `${path}: cannot read predictions file (${err.code})` : `${path}: malformed JSON: ${err.message}`);
  }
  if (!Array.isArray(raw)) throw new Error(`${path}: expected a JSON list of predictions, got ${describe(raw)}`);
  return raw.map((entry, index) => {
    const where = `${path}[${index}]`;
    if (typeof entry !== 'object' || entry === null || Array.isArray(entry)) throw new Error(`${where}: expected an object, got ${describe(entry)}`);
    const o = entry as Record<string, unknown>;
    const p: Partial<Prediction> = { index };
    if (o.sample_id !== undefined) {
      if (typeof o.sample_id !== 'string') throw new Error(`${where}.sample_id: expected a string, got ${describe(o.sample_id)}`);
      p.sampleId = o.sample_id;
    } else if (o.ref_id !== undefined) {
      if (!(typeof o.ref_id === 'string' || (typeof o.ref_id === 'number' && Number.isInteger(o.ref_id)))) {
        throw new Error(`${where}.ref_id: expected an integer or string, got ${describe(o.ref_id)}`);
      }
      p.refId = o.ref_id;
      if (o.sent_idx !== undefined) {
        if (!Number.isInteger(o.sent_idx) || (o.sent_idx as number) < 0) throw new Error(`${where}.sent_idx: expected a non-negative integer, got ${describe(o.sent_idx)}`);
        p.sentIdx = o.sent_idx as number;
      }
    } else {
      throw new Error(`${where}: expected "ref_id" or "sample_id"`);
    }
    const seg = o.segmentation as Record<string, unknown> | undefined;
    if (typeof seg !== 'object' || seg === null) throw new Error(`${where}.segmentation: expected an RLE {"size": [h, w], "counts": string}, got ${describe(seg)}`);
    const size = seg.size;
    if (!Array.isArray(size) || size.length !== 2 || !size.every((v) => Number.isInteger(v) && v > 0)) {
      throw new Error(`${where}.segmentation.size: expected [height, width], got ${describe(size)}`);
    }
    if (typeof seg.counts !== 'string') throw new Error(`${where}.segmentation.counts: expected a compressed RLE string, got ${describe(seg.counts)}`);
    p.segmentation = { size: [size[0], size[1]], counts: seg.counts };
    if (o.bbox !== undefined && o.bbox !== null) {
      const b = o.bbox;
      if (!Array.isArray(b) || b.length !== 4 || !b.every((v) => typeof v === 'number' && Number.isFinite(v))) {
        throw new Error(`${where}.bbox: expected [x, y, w, h] numbers, got ${describe(b)}`);
      }
      p.bbox = b as Box;
    }
    if (o.format_valid !== undefined) {
      if (typeof o.format_valid !== 'boolean') throw new Error(`${where}.format_valid: expected true or false, got ${describe(o.format_valid)}`);
      p.formatValid = o.format_valid;
    }
    return p as Prediction;
  });
}

/** Human label of a prediction's key, for errors. */
function keyOf(p: Prediction): string {
  return p.sampleId !== undefined ? `sample_id ${p.sampleId}` : `ref_id ${p.refId}${p.sentIdx !== undefined ? ` sent_idx ${p.sentIdx}` : ''}`;
}

/**
 * Scores predictions against a loaded split in the LISA convention. Throws naming
 * `predPath` and the ref id for unknown refs, duplicates and wrong-size masks.
 */
export function scorePredictions(ds: RefDataset, preds: Prediction[], predPath: string): MetricResult & { missing: number } {
  const byId = new Map<string, RefSample>();
  const byRef = new Map<string, RefSample[]>();
  for (const s of ds.samples) {
    byId.set(s.id, s);
    const list = byRef.get(String(s.refId)) ?? [];
    list.push(s);
    byRef.set(String(s.refId), list);
  }
  const assigned = new Map<string, Prediction>();
  for (const p of preds) {
    const where = `${predPath}[${p.index}] (${keyOf(p)})`;
    let targets: RefSample[];
    if (p.sampleId !== undefined) {
      const s = byId.get(p.sampleId);
      targets = s ? [s] : [];
    } else {
      targets = (byRef.get(String(p.refId)) ?? []).filter((s) => p.sentIdx === undefined || s.sentIdx === p.sentIdx);
    }
    if (targets.length === 0) throw new Error(`${where}: no such sample in ${ds.family}/${ds.split}`);
    for (const s of targets) {
      const prev = assigned.get(s.id);
      if (prev) throw new Error(`${where}: sample ${s.id} already has a prediction (${predPath}[${prev.index}])`);
      const [h, w] = p.segmentation.size;
      if (h !== s.height || w !== s.width) {
        throw new Error(`${where}: mask size [${h}, ${w}] but the image of ${s.id} is [${s.height}, ${s.width}] (height, width)`);
      }
      assigned.set(s.id, p);
    }
  }
  const scoreBoxes = preds.some((p) => p.bbox !== undefined);
  const acc = new MetricAccumulator();
  let missing = 0;
  for (const s of ds.samples) {
    const p = assigned.get(s.id);
    if (!p) missing++;
    const target = s.mask();
    const pred = p ? decodeRle(p.segmentation, `${predPath}[${p.index}].segmentation`) : new Uint8Array(target.length);
    acc.add(pred, target, {
      ...(scoreBoxes ? { predBox: p?.bbox ?? null, targetBox: s.bbox } : {}),
      ...(p?.formatValid !== undefined ? { formatValid: p.formatValid } : {}),
    });
  }
  return { ...acc.result(), missing };
}

/**
 * One predictions-file entry for a sample (the inverse of `readPredictions`): keyed by
 * sample_id, mask row-major 0/1 [height*width] encoded as compressed RLE.
 */
export function predictionEntry(
  sample: RefSample,
  mask: Uint8Array,
  extras: { bbox?: Box | null; formatValid?: boolean } = {},
): { sample_id: string; segmentation: CocoRle; bbox?: Box; format_valid?: boolean } {
  if (mask.length !== sample.height * sample.width) {
    throw new Error(`predictionEntry(${sample.id}): mask has ${mask.length} pixels, the image is ${sample.height}x${sample.width}`);
  }
  return {
    sample_id: sample.id,
    segmentation: encodeRle(mask, sample.height, sample.width),
    ...(extras.bbox ? { bbox: extras.bbox } : {}),
    ...(extras.formatValid !== undefined ? { format_valid: extras.formatValid } : {}),
  };
}
