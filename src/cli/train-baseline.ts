/**
 * `lens train-baseline lisa|segzero --from <pretrain run>`: trains one of the baselines the
 * paper compares with (src/train/baselines.ts) from the stage-0 run's parts, into a run
 * folder that `lens evaluate --run DIR` scores.
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { ensureBenchmark } from '../data/generate/benchmark';
import { PRESET_NAMES, type PresetName } from '../model/presets';
import { BASELINE_KINDS, runBaseline, type BaselineKind } from '../train/baselines';
import { defaultRunsDir } from '../train/run';
import { projectRoot } from '../util/paths';
import { UsageError } from './errors';

const HELP = `usage: lens train-baseline lisa|segzero --from DIR [--preset tiny|quick|paper] [--seed N] [--out DIR] [--resume] [--data DIR] [--config FILE]

  lisa           LISA-style: one segmentation token -> SAM prompt, supervised (CE + BCE + Dice; LISA's 1.0 / 2.0 / 0.5 except quick, see baselines.ts)
  segzero        Seg-Zero-style: the MLLM's box -> frozen SAM; GRPO on format + box rewards
  --from DIR     the stage-0 run folder (lens pretrain): vision + MLLM from 0b, SAM from 0a (required)
  --preset P     step and batch sizes (default quick)
  --seed N       seed of batches, rollouts and new weights (default 0)
  --out DIR      run folder (default results/runs/<lisa|segzero>-<preset>-s<seed>)
  --resume       continue an interrupted run from its checkpoint
  --data DIR     dataset root (default data/bench, generated at quick scale if absent)
  --config FILE  JSON delta of the baseline's config, e.g. {"steps": 50, "lr": 0.0005}

Ends with DIR/model.safetensors + DIR/tokenizer.json for 'lens evaluate --run DIR'.`;

/** Parsed flags; exported for tests. */
export interface TrainBaselineArgs {
  kind: BaselineKind;
  from: string;
  preset: PresetName;
  seed: number;
  out: string;
  resume: boolean;
  data: string | undefined;
  config: unknown;
}

/** Parses the flags (null = --help). */
export function parseTrainBaselineArgs(argv: string[]): TrainBaselineArgs | null {
  let values: Record<string, string | boolean | undefined>;
  let positionals: string[];
  try {
    ({ values, positionals } = parseArgs({
      args: argv,
      options: {
        from: { type: 'string' },
        preset: { type: 'string', default: 'quick' },
        seed: { type: 'string', default: '0' },
        out: { type: 'string' },
        resume: { type: 'boolean', default: false },
        data: { type: 'string' },
        config: { type: 'string' },
        help: { type: 'boolean', short: 'h', default: false },
      },
      strict: true,
      allowPositionals: true,
    }));
  } catch (e) {
    throw new UsageError(`${(e as Error).message}\n\n${HELP}`);
  }
  if (values.help) return null;
  if (positionals.length !== 1 || !(BASELINE_KINDS as readonly string[]).includes(positionals[0]!)) {
    throw new UsageError(`expected one baseline, lisa or segzero, got ${positionals.length ? `'${positionals.join(' ')}'` : 'none'}\n\n${HELP}`);
  }
  const kind = positionals[0] as BaselineKind;
  if (typeof values.from !== 'string') throw new UsageError(`--from DIR (the stage-0 run folder) is required\n\n${HELP}`);
  const preset = values.preset as string;
  if (!(PRESET_NAMES as readonly string[]).includes(preset)) throw new UsageError(`--preset: expected one of ${PRESET_NAMES.join(', ')}, got '${preset}'`);
  const seed = Number(values.seed);
  if (!Number.isInteger(seed) || seed < 0) throw new UsageError(`--seed: expected an integer >= 0, got '${values.seed}'`);
  let config: unknown = {};
  if (typeof values.config === 'string') {
    try {
      config = JSON.parse(readFileSync(values.config, 'utf8'));
    } catch (e) {
      throw new UsageError(`--config ${values.config}: ${(e as Error).message}`);
    }
  }
  return {
    kind,
    from: values.from,
    preset: preset as PresetName,
    seed,
    out: (values.out as string | undefined) ?? join(defaultRunsDir(), `${kind}-${preset}-s${seed}`),
    resume: values.resume === true,
    data: values.data as string | undefined,
    config,
  };
}

export async function run(argv: string[]): Promise<number> {
  const a = parseTrainBaselineArgs(argv);
  if (!a) {
    console.log(HELP);
    return 0;
  }
  let dataRoot = a.data;
  if (dataRoot === undefined) {
    dataRoot = join(projectRoot(), 'data', 'bench');
    await ensureBenchmark(dataRoot, { scale: 'quick', seed: 0 });
  }
  const t0 = performance.now();
  const { dir, steps } = await runBaseline(a.kind, { dataRoot, out: a.out, preset: a.preset, seed: a.seed, resume: a.resume, from: a.from, config: a.config as never });
  console.log(`${a.kind} done in ${((performance.now() - t0) / 1000).toFixed(0)} s (${steps} steps): ${dir}`);
  return 0;
}
