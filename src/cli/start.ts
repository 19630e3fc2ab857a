/**
 * `npm start`: the main job on the embedded defaults (src/train/main_job.ts): the
 * generated benchmark in data/bench, every stage and baseline on the quick preset,
 * all evaluation splits, one summary table under results/main/.
 */
import { join } from 'node:path';
import { initBackend } from '../backend';
import { PRESET_NAMES, type PresetName } from '../model/presets';
import { checkMainJobConfig, mainJobDir, runMainJob } from '../train/main_job';
import { projectRoot } from '../util/paths';
import { parseFlags, UsageError } from './errors';
import { readConfigFile } from './stage-args';

/** Where `npm start` keeps the default benchmark. */
export const DEFAULT_BENCH_DIR = join('data', 'bench');

const USAGE = `usage: npm start [-- --preset tiny|quick|paper] [--seed N] [--data DIR] [--out DIR] [--config FILE]

Runs stage 0, 1, 2 and both baselines, evaluates every split and prints the
gIoU / cIoU table (defaults: quick preset, seed 0, data/bench, results/main).
Rerunning continues an interrupted job: finished stages are skipped.
--config FILE: JSON config deltas keyed by run (pretrain, align, grpo, lisa,
segzero), as each run's own command takes them, e.g.
{"pretrain": {"stage0b": {"steps": 7000}}}; give such a job its own --out.`;

export async function run(argv: string[]): Promise<number> {
  const { values } = parseFlags(argv, { preset: { type: 'string' }, seed: { type: 'string' }, data: { type: 'string' }, out: { type: 'string' }, config: { type: 'string' }, quiet: { type: 'boolean' }, help: { type: 'boolean', short: 'h' } }, USAGE);
  if (values.help) {
    console.log(USAGE);
    return 0;
  }
  const preset = (values.preset ?? 'quick') as PresetName;
  if (!PRESET_NAMES.includes(preset)) throw new UsageError(`--preset: expected one of ${PRESET_NAMES.join(', ')}, got '${values.preset}'`);
  const seed = Number(values.seed ?? 0);
  if (!Number.isInteger(seed) || seed < 0) throw new UsageError(`--seed: expected an integer >= 0, got '${values.seed}'`);
  const root = projectRoot();
  const dataRoot = (values.data as string | undefined) ?? join(root, preset === 'quick' ? DEFAULT_BENCH_DIR : `${DEFAULT_BENCH_DIR}-${preset}`);
  const out = (values.out as string | undefined) ?? mainJobDir(preset, root);
  const config = typeof values.config === 'string' ? checkMainJobConfig(preset, readConfigFile(values.config), `--config ${values.config}`) : {};
  await initBackend();
  const { seconds } = await runMainJob({ preset, seed, dataRoot, out, config, quiet: Boolean(values.quiet) });
  console.log(`main job finished in ${(seconds / 60).toFixed(1)} min; results in ${out}`);
  return 0;
}
