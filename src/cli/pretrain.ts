/**
 * `lens pretrain`: stage 0, the stand-ins for pretrained weights (src/train/stage0.ts):
 * 0a (mini-SAM on box / point prompts) into OUT/0a, 0b (MLLM SFT on the LENS answer
 * format) into OUT/0b, and the whole model + tokenizer in OUT, which `lens align --from
 * OUT` reads.
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { ensureBenchmark } from '../data/generate/benchmark';
import { PRESET_NAMES, type PresetName } from '../model/presets';
import { defaultRunsDir } from '../train/run';
import { runPretrain, type PretrainStage } from '../train/stage0';
import { projectRoot } from '../util/paths';
import { UsageError } from './errors';

const HELP = `usage: lens pretrain [--preset tiny|quick|paper] [--stage 0a|0b|both] [--seed N] [--out DIR] [--resume] [--data DIR] [--config FILE]

  --preset P     model and step sizes (default quick)
  --stage S      0a (mini-SAM), 0b (MLLM SFT, needs OUT/0a finished) or both (default)
  --seed N       seed of the initial weights, batches and prompts (default 0)
  --out DIR      run folder (default results/runs/pretrain-<preset>-s<seed>); sub-runs in DIR/0a, DIR/0b
  --resume       continue an interrupted run from its checkpoints (finished sub-stages are skipped)
  --data DIR     dataset root (default data/bench, generated at quick scale if absent)
  --config FILE  JSON delta of the config, e.g. {"stage0a": {"steps": 100}, "stage0b": {"reasonFraction": 0.3}}

Ends with DIR/model.safetensors + DIR/tokenizer.json for 'lens align --from DIR'.`;

/** Parses the flags; exported for tests. */
export function parsePretrainArgs(argv: string[]): {
  preset: PresetName;
  stage: PretrainStage;
  seed: number;
  out: string;
  resume: boolean;
  data: string | undefined;
  config: unknown;
  help: boolean;
} {
  let values: Record<string, string | boolean | undefined>;
  try {
    ({ values } = parseArgs({
      args: argv,
      options: {
        preset: { type: 'string', default: 'quick' },
        stage: { type: 'string', default: 'both' },
        seed: { type: 'string', default: '0' },
        out: { type: 'string' },
        resume: { type: 'boolean', default: false },
        data: { type: 'string' },
        config: { type: 'string' },
        help: { type: 'boolean', short: 'h', default: false },
      },
      strict: true,
      allowPositionals: false,
    }));
  } catch (e) {
    throw new UsageError(`${(e as Error).message}\n\n${HELP}`);
  }
  const preset = values.preset as string;
  if (!(PRESET_NAMES as readonly string[]).includes(preset)) throw new UsageError(`--preset: expected one of ${PRESET_NAMES.join(', ')}, got '${preset}'`);
  const stage = values.stage as string;
  if (!['0a', '0b', 'both'].includes(stage)) throw new UsageError(`--stage: expected 0a, 0b or both, got '${stage}'`);
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
    preset: preset as PresetName,
    stage: stage as PretrainStage,
    seed,
    out: (values.out as string | undefined) ?? join(defaultRunsDir(), `pretrain-${preset}-s${seed}`),
    resume: values.resume === true,
    data: values.data as string | undefined,
    config,
    help: values.help === true,
  };
}

export async function run(argv: string[]): Promise<number> {
  const a = parsePretrainArgs(argv);
  if (a.help) {
    console.log(HELP);
    return 0;
  }
  let dataRoot = a.data;
  if (dataRoot === undefined) {
    dataRoot = join(projectRoot(), 'data', 'bench');
    await ensureBenchmark(dataRoot, { scale: 'quick', seed: 0 });
  }
  const t0 = performance.now();
  const { dir, metrics } = await runPretrain({ dataRoot, out: a.out, preset: a.preset, seed: a.seed, resume: a.resume, stage: a.stage, config: a.config as never });
  const rows = [...metrics.stage0a.map((r) => ({ stage: '0a', ...r })), ...metrics.stage0b.map((r) => ({ stage: '0b', ...r }))];
  if (rows.length > 0) console.table(rows);
  console.log(`pretrain done in ${((performance.now() - t0) / 1000).toFixed(0)} s: ${a.stage === '0a' ? join(dir, '0a') : dir}`);
  return 0;
}
