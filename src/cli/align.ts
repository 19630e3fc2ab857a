/**
 * `lens align --from DIR`: stage 1, pretraining alignment (src/train/align.ts): queries +
 * connector learn to prompt the frozen SAM from the frozen MLLM's states after the
 * ground-truth answer. Also home of the flag parser `lens grpo` shares.
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { ensureBenchmark } from '../data/generate/benchmark';
import { PRESET_NAMES, type PresetName } from '../model/presets';
import { runAlign } from '../train/align';
import { defaultRunsDir } from '../train/run';
import { projectRoot } from '../util/paths';
import { UsageError } from './errors';

/** The flags every stage command after stage 0 takes. */
export interface StageArgs {
  preset: PresetName;
  seed: number;
  out: string;
  resume: boolean;
  from: string;
  data: string | undefined;
  config: unknown;
  help: boolean;
}

/** Parses --preset --seed --out --resume --from --data --config --help; `from` is required unless --help. */
export function parseStageArgs(argv: string[], command: string, help: string): StageArgs {
  let values: Record<string, string | boolean | undefined>;
  try {
    ({ values } = parseArgs({
      args: argv,
      options: {
        preset: { type: 'string', default: 'quick' },
        seed: { type: 'string', default: '0' },
        out: { type: 'string' },
        resume: { type: 'boolean', default: false },
        from: { type: 'string' },
        data: { type: 'string' },
        config: { type: 'string' },
        help: { type: 'boolean', short: 'h', default: false },
      },
      strict: true,
      allowPositionals: false,
    }));
  } catch (e) {
    throw new UsageError(`${(e as Error).message}\n\n${help}`);
  }
  const isHelp = values.help === true;
  const preset = values.preset as string;
  if (!(PRESET_NAMES as readonly string[]).includes(preset)) throw new UsageError(`--preset: expected one of ${PRESET_NAMES.join(', ')}, got '${preset}'`);
  const seed = Number(values.seed);
  if (!Number.isInteger(seed) || seed < 0) throw new UsageError(`--seed: expected an integer >= 0, got '${values.seed}'`);
  if (!isHelp && typeof values.from !== 'string') throw new UsageError(`--from DIR is required (the earlier stage's run folder)\n\n${help}`);
  let config: unknown = {};
  if (typeof values.config === 'string') {
    try {
      config = JSON.parse(readFileSync(values.config, 'utf8'));
    } catch (e) {
      throw new UsageError(`--config ${values.config}: ${(e as Error).message}`);
    }
  }
  return {
    preset: preset as PresetName,
    seed,
    out: (values.out as string | undefined) ?? join(defaultRunsDir(), `${command}-${preset}-s${seed}`),
    resume: values.resume === true,
    from: (values.from as string | undefined) ?? '',
    data: values.data as string | undefined,
    config,
    help: isHelp,
  };
}

/** --data, or data/bench generated at quick scale when absent. */
export async function dataRootOf(a: StageArgs): Promise<string> {
  if (a.data !== undefined) return a.data;
  const root = join(projectRoot(), 'data', 'bench');
  await ensureBenchmark(root, { scale: 'quick', seed: 0 });
  return root;
}

const HELP = `usage: lens align --from DIR [--preset tiny|quick|paper] [--seed N] [--out DIR] [--resume] [--data DIR] [--config FILE]

  --from DIR     the stage-0 run folder (model.safetensors + tokenizer.json, from 'lens pretrain')
  --preset P     step sizes (default quick); the model's sizes come from --from
  --seed N       seed of the batches (default 0)
  --out DIR      run folder (default results/runs/align-<preset>-s<seed>)
  --resume       continue an interrupted run from its checkpoint
  --data DIR     dataset root (default data/bench, generated at quick scale if absent)
  --config FILE  JSON delta of the stage-1 config, e.g. {"steps": 500, "lr": 5e-4, "evalLimit": 0}

Ends with DIR/model.safetensors + DIR/tokenizer.json for 'lens grpo --from DIR', and metrics.arrow (gIoU / cIoU per split).`;

export async function run(argv: string[]): Promise<number> {
  const a = parseStageArgs(argv, 'align', HELP);
  if (a.help) {
    console.log(HELP);
    return 0;
  }
  const dataRoot = await dataRootOf(a);
  const t0 = performance.now();
  const { dir, metrics } = await runAlign({ dataRoot, out: a.out, preset: a.preset, seed: a.seed, resume: a.resume, from: a.from, config: a.config as never });
  if (metrics.length > 0) console.table(metrics);
  console.log(`align done in ${((performance.now() - t0) / 1000).toFixed(0)} s: ${dir}`);
  return 0;
}
