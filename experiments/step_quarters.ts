/**
 * A run's per-step logs by quarter: the mean of each named column over each quarter of the
 * steps (docs/stage0b-grounding.md, "Stage 2: what its reward says").
 *
 *   npx tsx experiments/step_quarters.ts results/main/grpo rewardMean,refRewardMean,rewardGain
 *
 * The first argument is a run folder (or its steps.arrow); the second, comma-separated columns
 * (default rewardMean). A quarter's mean is over the steps that logged a number. A stage-2 run
 * that scored its training prompts (scoreEvery) also gets that curve, as the main job prints it.
 */
import { existsSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { scoreLine } from '../src/train/main_job';
import { readArrow } from '../src/util/arrow';

const [target, list = 'rewardMean'] = process.argv.slice(2);
if (!target) throw new Error('usage: npx tsx experiments/step_quarters.ts RUN_DIR|steps.arrow [col1,col2,...]');
const file = existsSync(target) && statSync(target).isDirectory() ? join(target, 'steps.arrow') : target;
if (!existsSync(file)) throw new Error(`${file}: no such file (a run folder holding steps.arrow, or the file itself)`);
const rows = readArrow(file);
if (rows.length < 4) throw new Error(`${file}: ${rows.length} steps, fewer than four quarters`);
const cols = list.split(',').map((c) => c.trim()).filter(Boolean);
const missing = cols.filter((c) => !(c in rows[0]!));
if (missing.length) throw new Error(`${file}: no column ${missing.join(', ')}; it has ${Object.keys(rows[0]!).join(', ')}`);
const q = Math.ceil(rows.length / 4);
for (let i = 0; i < 4; i++) {
  const part = rows.slice(i * q, (i + 1) * q);
  const means = cols.map((c) => {
    const xs = part.map((r) => Number(r[c])).filter(Number.isFinite);
    return `${c} ${(xs.reduce((a, x) => a + x, 0) / xs.length).toFixed(3)}`;
  });
  console.log(`steps ${i * q + 1}-${i * q + part.length}: ${means.join(', ')}`);
}
const scored = scoreLine(rows);
if (scored) console.log(scored);
