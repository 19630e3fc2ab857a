/**
 * Whether one run's cIoU differs from another's by more than the evaluation's own noise: the
 * difference of the mean cIoU over splits (b - a, points), with a paired bootstrap interval.
 * Both runs answered the same sentences, so each resample draws sentences (with replacement,
 * within each split) and scores both runs on the same draw: what is left is the runs'
 * disagreement, not the sentences' difficulty. At 150 sentences per split, a ten-split mean
 * moves by about a point between draws (stage 2 against stage 1 in the main job), so a
 * difference of half a point says nothing on its own.
 */
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { decodeRle } from '../data/formats/rle';
import { loadSplit, parseSplitName } from '../data/index';
import { Rng } from '../random';
import { CIOU_EPS, intersectionUnion } from './metrics';
import { readPredictions } from './predictions';

/** One run's foreground intersection and union per sentence of one split, sorted by sample id. */
export interface SentenceCounts {
  split: string;
  ids: string[];
  i: number[];
  u: number[];
}

/** Mean over splits of cIoU b - a (points) and its paired bootstrap interval. */
export interface PairedDifference {
  /** Mean over splits of 100 * (cIoU_b - cIoU_a) on every sentence. */
  difference: number;
  /** Lower and upper ends of the central `level` interval of the resampled differences. */
  lo: number;
  hi: number;
  level: number;
  resamples: number;
  splits: number;
  /** Sentences in all splits together. */
  sentences: number;
}

const ciou = (i: number, u: number) => i / (u + CIOU_EPS);

/**
 * The mean over splits of cIoU(b) - cIoU(a), in points, with a percentile interval from
 * `resamples` paired bootstrap draws (sentences resampled within each split, the same draw
 * for both runs; seeded, so the same inputs give the same interval). `a` and `b` must cover
 * the same splits and sentences, in the same order.
 * @example pairedCiouDifference(stage1, stage2) // { difference: -0.63, lo: -1.64, hi: 0.36, ... } (the main job of fefd77d)
 */
export function pairedCiouDifference(
  a: readonly SentenceCounts[],
  b: readonly SentenceCounts[],
  { resamples = 2000, seed = 0, level = 0.95 }: { resamples?: number; seed?: number; level?: number } = {},
): PairedDifference {
  if (a.length === 0) throw new Error('pairedCiouDifference: no splits');
  if (a.length !== b.length) throw new Error(`pairedCiouDifference: ${a.length} splits against ${b.length}`);
  if (!Number.isInteger(resamples) || resamples < 1) throw new Error(`pairedCiouDifference: resamples must be an integer >= 1, got ${resamples}`);
  if (!(level > 0 && level < 1)) throw new Error(`pairedCiouDifference: level must be in (0, 1), got ${level}`);
  a.forEach((x, s) => {
    const y = b[s]!;
    if (x.split !== y.split) throw new Error(`pairedCiouDifference: split ${s} is ${x.split} in one run and ${y.split} in the other`);
    if (x.ids.length === 0) throw new Error(`pairedCiouDifference: ${x.split} has no sentences`);
    if (x.ids.length !== y.ids.length) throw new Error(`pairedCiouDifference: ${x.split} has ${x.ids.length} sentences in one run and ${y.ids.length} in the other`);
    const k = x.ids.findIndex((id, j) => id !== y.ids[j]);
    if (k >= 0) throw new Error(`pairedCiouDifference: ${x.split} sentence ${k} is ${x.ids[k]} in one run and ${y.ids[k]} in the other`);
  });
  // `pick(n, j)`: the sentence the j-th of a split's n counts as (j itself for the full set)
  const diff = (pick: (n: number, j: number) => number) => {
    let d = 0;
    a.forEach((x, s) => {
      const y = b[s]!;
      let [ia, ua, ib, ub] = [0, 0, 0, 0];
      for (let j = 0; j < x.ids.length; j++) {
        const k = pick(x.ids.length, j);
        ia += x.i[k]!;
        ua += x.u[k]!;
        ib += y.i[k]!;
        ub += y.u[k]!;
      }
      d += 100 * (ciou(ib, ub) - ciou(ia, ua));
    });
    return d / a.length;
  };
  const rng = new Rng(seed).fork('paired-bootstrap');
  const draws = Array.from({ length: resamples }, () => diff((n) => rng.int(n))).sort((p, q) => p - q);
  const at = (q: number) => draws[Math.min(resamples - 1, Math.max(0, Math.round(q * (resamples - 1))))]!;
  return {
    difference: diff((_, j) => j),
    lo: at((1 - level) / 2),
    hi: at((1 + level) / 2),
    level,
    resamples,
    splits: a.length,
    sentences: a.reduce((n, x) => n + x.ids.length, 0),
  };
}

/**
 * A run folder's per-sentence counts on `splits`, from the predictions `lens evaluate --run`
 * (and the main job) keep in <dir>/predictions/<family>_<split>.json. Errors name the file.
 */
export async function runSentenceCounts(dir: string, dataRoot: string, splits: readonly string[]): Promise<SentenceCounts[]> {
  const out: SentenceCounts[] = [];
  for (const name of splits) {
    const { family, split } = parseSplitName(name);
    const file = join(dir, 'predictions', `${family}_${split}.json`);
    if (!existsSync(file)) throw new Error(`${file}: no predictions for ${name}; run 'npx lens evaluate --run ${dir}' first`);
    const ds = await loadSplit(dataRoot, family, split);
    const byId = new Map(ds.samples.map((s) => [s.id, s]));
    const rows = readPredictions(file).map((p) => {
      const where = `${file}[${p.index}]`;
      if (p.sampleId === undefined) throw new Error(`${where}: no sample_id (a run's predictions are keyed by sample_id)`);
      const s = byId.get(p.sampleId);
      if (!s) throw new Error(`${where}: no sample ${p.sampleId} in ${name} under ${dataRoot}`);
      return { id: p.sampleId, ...intersectionUnion(decodeRle(p.segmentation, `${where}.segmentation`), s.mask(), where) };
    });
    rows.sort((p, q) => (p.id < q.id ? -1 : p.id > q.id ? 1 : 0));
    out.push({ split: name, ids: rows.map((r) => r.id), i: rows.map((r) => r.i), u: rows.map((r) => r.u) });
  }
  return out;
}

/**
 * One line for a summary.
 * @example pairedLine('stage 2 - stage 1', d) // "stage 2 - stage 1, mean cIoU over 10 splits: -0.63 points (95% paired bootstrap interval -1.64 .. +0.36; 1500 sentences)"
 */
export function pairedLine(what: string, d: PairedDifference): string {
  const f = (v: number) => {
    const r = Math.round(v * 100) / 100 || 0; // no "-0.00"
    return `${r >= 0 ? '+' : ''}${r.toFixed(2)}`;
  };
  return `${what}, mean cIoU over ${d.splits} splits: ${f(d.difference)} points (${Math.round(100 * d.level)}% paired bootstrap interval ${f(d.lo)} .. ${f(d.hi)}; ${d.sentences} sentences)`;
}
