/**
 * Where two runs' cIoU parts, sentence by sentence: the sentences split by whose answer's box hits
 * the target (box IoU > 0.5; both, the first run only, the second only, neither), and among the
 * "both" and "neither" sentences those where the two answered the very same box, so that what
 * differs there is the mask read from it (docs/stage0b-grounding.md, "Stage 2 at a fixed box").
 * Reads the predictions that `lens evaluate --run` wrote; both runs must have answered the same
 * sentences.
 *
 *   npx tsx experiments/box_pairs.ts results/main/align results/main/grpo [--data data/bench]
 */
import { readdirSync } from 'node:fs';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { decodeRle } from '../src/data/formats/rle';
import { loadSplit, parseSplitName } from '../src/data/index';
import { boxHit, CIOU_EPS, intersectionUnion } from '../src/eval/metrics';
import { readPredictions } from '../src/eval/predictions';

const { values, positionals } = parseArgs({ allowPositionals: true, options: { data: { type: 'string', default: 'data/bench' } } });
const [a, b] = positionals;
if (!a || !b) throw new Error('usage: npx tsx experiments/box_pairs.ts RUN_A RUN_B [--data DIR]');
const PARTS = ['both', 'first only', 'second only', 'neither', 'both, same box', 'neither, same box'] as const;
const sums = new Map(PARTS.map((p) => [p, { n: 0, ia: 0, ua: 0, ib: 0, ub: 0 }]));
const add = (part: (typeof PARTS)[number], x: { i: number; u: number }, y: { i: number; u: number }) => {
  const s = sums.get(part)!;
  s.n++;
  s.ia += x.i;
  s.ua += x.u;
  s.ib += y.i;
  s.ub += y.u;
};
for (const f of readdirSync(join(a, 'predictions')).filter((f) => f.endsWith('.json')).sort()) {
  const name = f.replace(/\.json$/, '').replace('_', '/');
  const { family, split } = parseSplitName(name);
  const ds = await loadSplit(values.data!, family, split);
  const byId = new Map(ds.samples.map((s) => [s.id, s]));
  const other = new Map(readPredictions(join(b, 'predictions', f)).map((p) => [p.sampleId, p]));
  for (const p of readPredictions(join(a, 'predictions', f))) {
    const q = other.get(p.sampleId);
    const s = p.sampleId === undefined ? undefined : byId.get(p.sampleId);
    if (!q || !s) throw new Error(`${join(b, 'predictions', f)}: no prediction for ${p.sampleId} of ${join(a, 'predictions', f)} (or no such sample in ${name})`);
    if (!s.bbox) continue; // an empty target has no box to hit
    const x = intersectionUnion(decodeRle(p.segmentation, `${a} ${p.sampleId}`), s.mask());
    const y = intersectionUnion(decodeRle(q.segmentation, `${b} ${p.sampleId}`), s.mask());
    const [ha, hb] = [boxHit(p.bbox, s.bbox), boxHit(q.bbox, s.bbox)];
    const part = ha && hb ? 'both' : ha ? 'first only' : hb ? 'second only' : 'neither';
    add(part, x, y);
    if ((part === 'both' || part === 'neither') && JSON.stringify(p.bbox) === JSON.stringify(q.bbox)) add(`${part}, same box`, x, y);
  }
}
const ciou = (i: number, u: number) => ((100 * i) / (u + CIOU_EPS)).toFixed(1);
console.log(`box hits\tsentences\tcIoU ${a}\tcIoU ${b}`);
for (const [part, s] of sums) console.log([part, s.n, ciou(s.ia, s.ua), ciou(s.ib, s.ub)].join('\t'));
