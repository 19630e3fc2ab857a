/**
 * How much of a run's cIoU its answer's box decides: each split's sentences parted by whether
 * the answer's box hits the target (box IoU > 0.5, the paper's Acc@0.5), with the cIoU of each
 * part (docs/stage0b-grounding.md, "More pictures"). Reads the predictions that `lens evaluate
 * --run` wrote (RUN/predictions/<family>_<split>.json); LISA-style runs answer no box.
 *
 *   npx tsx experiments/box_split.ts results/main/align [--data data/bench] [--split refcocog/val ...]
 */
import { existsSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { decodeRle } from '../src/data/formats/rle';
import { loadSplit, parseSplitName } from '../src/data/index';
import { boxHit, CIOU_EPS, intersectionUnion } from '../src/eval/metrics';
import { readPredictions } from '../src/eval/predictions';

const { values, positionals } = parseArgs({ allowPositionals: true, options: { data: { type: 'string', default: 'data/bench' }, split: { type: 'string', multiple: true } } });
const run = positionals[0];
if (!run) throw new Error('usage: npx tsx experiments/box_split.ts RUN_DIR [--data DIR] [--split FAMILY/SPLIT ...]');
const dir = join(run, 'predictions');
if (!existsSync(dir)) throw new Error(`${dir}: no predictions here; run 'npx lens evaluate --run ${run}' first`);
const files = values.split?.map((s) => `${s.replace('/', '_')}.json`) ?? readdirSync(dir).filter((f) => f.endsWith('.json')).sort();

const ciou = (p: { i: number; u: number }) => (100 * p.i) / (p.u + CIOU_EPS);
console.log('split\tsentences\tbox right\tcIoU, box right\tcIoU, box wrong\tcIoU, all');
for (const f of files) {
  const file = join(dir, f);
  if (!existsSync(file)) throw new Error(`${file}: no such predictions file`);
  const name = f.replace(/\.json$/, '').replace('_', '/');
  const { family, split } = parseSplitName(name);
  const ds = await loadSplit(values.data!, family, split, { allSentences: false });
  const byId = new Map(ds.samples.map((s) => [s.id, s]));
  const parts = { right: { i: 0, u: 0, n: 0 }, wrong: { i: 0, u: 0, n: 0 } };
  for (const p of readPredictions(file)) {
    const s = p.sampleId === undefined ? undefined : byId.get(p.sampleId);
    if (!s) throw new Error(`${file}[${p.index}]: no sample ${p.sampleId} in ${name} (predictions keyed by sample_id, as lens evaluate --run writes them)`);
    if (!s.bbox) continue; // an empty target has no box to hit
    const { i, u } = intersectionUnion(decodeRle(p.segmentation, `${file}[${p.index}]`), s.mask(), `${file}[${p.index}]`);
    const part = boxHit(p.bbox, s.bbox) ? parts.right : parts.wrong;
    part.i += i;
    part.u += u;
    part.n++;
  }
  const n = parts.right.n + parts.wrong.n;
  const all = { i: parts.right.i + parts.wrong.i, u: parts.right.u + parts.wrong.u };
  console.log([name, n, `${parts.right.n} (${((100 * parts.right.n) / n).toFixed(0)}%)`, ciou(parts.right).toFixed(1), ciou(parts.wrong).toFixed(1), ciou(all).toFixed(1)].join('\t'));
}
