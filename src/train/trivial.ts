/**
 * The two trivial predictors issue #5 compares the trained models with (a floor that a
 * model which reads the sentence must clear), scored in the LISA convention
 * (src/eval/metrics.ts, reference/lens-official-code-facts.md "Evaluation"):
 * - `largest`: the mask of the image's largest instance (most visible pixels; ties ->
 *   the first listed), i.e. "segment the most salient thing" without reading the text;
 * - `random`: the mask of a random instance of the image, drawn from
 *   `Rng(seed).fork(sample.id)`, so the pick does not depend on order or subset.
 *
 * Instances come from `RefDataset.instances(imageId)` (the COCO annotations of the
 * RefCOCO families). ReasonSeg's LabelMe files hold only the target, so for a GENERATED
 * ReasonSeg split the other objects are recovered by regenerating the image's scene from
 * the benchmark's manifest (`generateReasonImage(manifest.config, split, index)`, a pure
 * function of seed, split and index; the objects' visible masks are exactly what the
 * RefCOCO families annotate). Real ReasonSeg data has no instance list: its rows are
 * reported with `n = 0` and `available = false` (N/A), never as zeros that look like scores.
 */
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { loadSplit, parseSplitName, type InstanceRecord, type RefDataset, type RefSample } from '../data/index';
import { generateReasonImage, readManifest, reasonStem } from '../data/generate/index';
import { MetricAccumulator, type MetricResult } from '../eval/metrics';
import { Rng } from '../random';
import { evaluationSubset } from './evaluate_run';

export const TRIVIAL_KINDS = ['largest', 'random'] as const;
/** Which trivial predictor. */
export type TrivialKind = (typeof TRIVIAL_KINDS)[number];

/** Pixels of a 0/1 mask that are set. */
function area(mask: Uint8Array): number {
  let a = 0;
  for (let i = 0; i < mask.length; i++) if (mask[i]) a++;
  return a;
}

/** The instance with the most mask pixels (first on ties); null for an image without instances. */
export function largestInstance(instances: readonly InstanceRecord[]): InstanceRecord | null {
  let best: InstanceRecord | null = null;
  let bestArea = -1;
  for (const inst of instances) {
    const a = area(inst.mask());
    if (a > bestArea) {
      best = inst;
      bestArea = a;
    }
  }
  return best;
}

/** A uniformly random instance, drawn from `rng`; null for an image without instances. */
export function randomInstance(instances: readonly InstanceRecord[], rng: Rng): InstanceRecord | null {
  return instances.length === 0 ? null : instances[rng.int(instances.length)]!;
}

/** Instance lists per image; null when the split has none (real ReasonSeg). */
export type InstanceSource = ((imageId: number | string) => InstanceRecord[]) | null;

/**
 * Where a split's instances come from: the dataset's own list (RefCOCO families), the
 * regenerated scene (generated ReasonSeg: `root/manifest.json` present), or null.
 */
export function instanceSource(ds: RefDataset): InstanceSource {
  if (ds.family !== 'reasonseg') return (id) => ds.instances(id);
  if (!existsSync(join(ds.root, 'manifest.json'))) return null;
  const manifest = readManifest(ds.root);
  const cache = new Map<string, InstanceRecord[]>();
  return (imageId) => {
    const stem = String(imageId);
    const hit = cache.get(stem);
    if (hit) return hit;
    const m = /_(\d+)$/.exec(stem);
    const index = m ? Number(m[1]) : NaN;
    if (!Number.isInteger(index) || reasonStem(ds.split, index) !== stem) {
      throw new Error(`${ds.root}: reasonseg/${ds.split} image '${stem}' is not a generated stem (${reasonStem(ds.split, 0)}, ...); cannot regenerate its instances`);
    }
    const { scene } = generateReasonImage(manifest.config, ds.split, index);
    const list = scene.objects.map((o, k): InstanceRecord => ({ annId: k, categoryId: -1, bbox: o.bbox, mask: () => o.visible }));
    cache.set(stem, list);
    return list;
  };
}

/** Scores of one trivial predictor on one split; `available` is false where no instance list exists. */
export interface TrivialResult extends MetricResult {
  split: string;
  predictor: TrivialKind;
  available: boolean;
}

/** The trivial prediction for one sample: a copy of the chosen instance's mask, or an empty mask. */
export function trivialMask(kind: TrivialKind, sample: RefSample, instances: readonly InstanceRecord[], seed: number): Uint8Array {
  const inst = kind === 'largest' ? largestInstance(instances) : randomInstance(instances, new Rng(seed).fork(sample.id));
  if (!inst) return new Uint8Array(sample.height * sample.width);
  const m = inst.mask();
  if (m.length !== sample.height * sample.width) {
    throw new Error(`${sample.id}: instance ${inst.annId} mask has ${m.length} pixels, the image is ${sample.height}x${sample.width}`);
  }
  return m;
}

/**
 * Scores `kind` on the samples of a loaded split (at most `maxPerSplit` of them, the
 * same subset `evaluateRun` uses; all when 0), LISA metrics.
 */
export function scoreTrivial(ds: RefDataset, kind: TrivialKind, { seed = 0, maxPerSplit = 0 }: { seed?: number; maxPerSplit?: number } = {}): TrivialResult {
  const split = `${ds.family}/${ds.split}`;
  const source = instanceSource(ds);
  if (!source) return { split, predictor: kind, available: false, giou: 0, ciou: 0, n: 0 };
  const acc = new MetricAccumulator();
  for (const s of evaluationSubset(ds.samples, maxPerSplit)) acc.add(trivialMask(kind, s, source(s.imageId), seed), s.mask());
  return { split, predictor: kind, available: true, ...acc.result() };
}

/** Both trivial predictors on each FAMILY/SPLIT of `splits` under `dataRoot`. */
export async function scoreTrivialSplits(
  dataRoot: string,
  splits: readonly string[],
  { seed = 0, maxPerSplit = 0 }: { seed?: number; maxPerSplit?: number } = {},
): Promise<TrivialResult[]> {
  const out: TrivialResult[] = [];
  for (const name of splits) {
    const { family, split } = parseSplitName(name);
    const ds = await loadSplit(dataRoot, family, split);
    for (const kind of TRIVIAL_KINDS) out.push(scoreTrivial(ds, kind, { seed, maxPerSplit }));
  }
  return out;
}

/** A fixed-width text table of trivial-predictor rows (percentages; 'N/A' where no instance list exists). */
export function formatTrivialTable(rows: readonly TrivialResult[]): string {
  const pct = (r: TrivialResult, v: number) => (r.available ? (100 * v).toFixed(1) : 'N/A');
  const head = ['split', 'predictor', 'gIoU', 'cIoU', 'n'];
  const body = rows.map((r) => [r.split, r.predictor, pct(r, r.giou), pct(r, r.ciou), String(r.n)]);
  const w = head.map((h, i) => Math.max(h.length, ...body.map((b) => b[i]!.length)));
  const line = (cells: string[]) => cells.map((x, i) => (i < 2 ? x.padEnd(w[i]!) : x.padStart(w[i]!))).join('  ');
  return [line(head), ...body.map(line)].join('\n');
}
