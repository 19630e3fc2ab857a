/**
 * Whether runs differ from a base run by more than the evaluation's noise: each run's mean cIoU
 * over the splits minus the base's, with a 95% paired bootstrap interval (eval/paired.ts). Reads
 * the predictions that `lens evaluate --run` (or the main job) wrote into each run folder; the
 * runs must have answered the same sentences (same preset's evaluation).
 *
 *   npx tsx experiments/paired_ciou.ts results/main/align results/main/grpo [more runs ...] [--data data/bench]
 *
 * `--splits a,b` compares on those splits only, e.g. the ablation cells, which are scored on
 * RefCOCO testA alone:
 *
 *   npx tsx experiments/paired_ciou.ts results/ablations/quick/runs/align-M32-vit-b912ee64-s0 results/ablations/quick/runs/align-M64-vit-1566afe8-s0 --splits refcoco/testA
 */
import { parseArgs } from 'node:util';
import { pairedCiouDifference, pairedLine, runSentenceCounts } from '../src/eval/paired';
import { evaluationSplits } from '../src/train/stage_io';

const { values, positionals } = parseArgs({ allowPositionals: true, options: { data: { type: 'string', default: 'data/bench' }, splits: { type: 'string' } } });
const [base, ...runs] = positionals;
if (!base || runs.length === 0) throw new Error('usage: npx tsx experiments/paired_ciou.ts BASE_RUN RUN [RUN ...] [--data DIR] [--splits FAMILY/SPLIT,...]');
const splits = values.splits ? values.splits.split(',') : evaluationSplits();
const a = await runSentenceCounts(base, values.data!, splits);
for (const run of runs) console.log(pairedLine(`${run} - ${base}`, pairedCiouDifference(a, await runSentenceCounts(run, values.data!, splits))));
