/**
 * The flags every training command takes (pretrain, align, grpo, train-baseline):
 * --preset --seed --out --resume --from --data --config --help, plus a command's own
 * string options and positionals. One parser, so every command names bad flags the
 * same way.
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { ensureBenchmark } from '../data/generate/benchmark';
import { PRESET_NAMES, type PresetName } from '../model/presets';
import { defaultRunsDir } from '../train/run';
import { projectRoot } from '../util/paths';
import { parseFlags, UsageError } from './errors';

export interface StageArgs {
  preset: PresetName;
  seed: number;
  /** Run folder: --out, else results/runs/<name>-<preset>-s<seed>. */
  out: string;
  resume: boolean;
  /** The earlier stage's run folder ('' when the command takes none). */
  from: string;
  data: string | undefined;
  /** Parsed JSON of --config (a config delta), {} without it. */
  config: unknown;
  help: boolean;
  /** The command's own options (`options` below), with their defaults. */
  extra: Record<string, string>;
  positionals: string[];
}

export interface StageArgsSpec {
  /** Used in the default run-folder name (`<name>-<preset>-s<seed>`). */
  command: string;
  /** The command's usage text, appended to flag errors. */
  help: string;
  /** Whether --from is required (default true). */
  requireFrom?: boolean;
  /** The command's own string options and their defaults, e.g. { stage: 'both' }. */
  options?: Record<string, string>;
  /** Accept positionals (e.g. the baseline kind). */
  positionals?: boolean;
  /** Name for the default run folder when it depends on a positional. */
  runName?: (positionals: string[]) => string;
}

/** Parses a training command's flags; --help returns with `help` set and skips the required checks. */
export function parseStageArgs(argv: string[], spec: StageArgsSpec): StageArgs {
  const own = spec.options ?? {};
  const parsed = parseFlags(
    argv,
    {
      preset: { type: 'string', default: 'quick' },
      seed: { type: 'string', default: '0' },
      out: { type: 'string' },
      resume: { type: 'boolean', default: false },
      from: { type: 'string' },
      data: { type: 'string' },
      config: { type: 'string' },
      help: { type: 'boolean', short: 'h', default: false },
      ...Object.fromEntries(Object.entries(own).map(([k, d]) => [k, { type: 'string' as const, default: d }])),
    },
    spec.help,
    { positionals: spec.positionals ?? false },
  );
  const values = parsed.values as Record<string, string | boolean | undefined>;
  const positionals = parsed.positionals;
  const help = values.help === true;
  const preset = values.preset as string;
  if (!(PRESET_NAMES as readonly string[]).includes(preset)) throw new UsageError(`--preset: expected one of ${PRESET_NAMES.join(', ')}, got '${preset}'`);
  const seed = Number(values.seed);
  if (!Number.isInteger(seed) || seed < 0) throw new UsageError(`--seed: expected an integer >= 0, got '${values.seed}'`);
  if (!help && (spec.requireFrom ?? true) && typeof values.from !== 'string') {
    throw new UsageError(`--from DIR is required (the earlier stage's run folder)\n\n${spec.help}`);
  }
  const config = typeof values.config === 'string' ? readConfigFile(values.config) : {};
  const name = spec.runName ? spec.runName(positionals) : spec.command;
  return {
    preset: preset as PresetName,
    seed,
    out: (values.out as string | undefined) ?? join(defaultRunsDir(), `${name}-${preset}-s${seed}`),
    resume: values.resume === true,
    from: (values.from as string | undefined) ?? '',
    data: values.data as string | undefined,
    config,
    help,
    extra: Object.fromEntries(Object.keys(own).map((k) => [k, values[k] as string])),
    positionals,
  };
}

/** The JSON of a --config FILE; an unreadable file or bad JSON is a usage error naming the file. */
export function readConfigFile(path: string): unknown {
  try {
    return JSON.parse(readFileSync(path, 'utf8'));
  } catch (e) {
    throw new UsageError(`--config ${path}: ${(e as Error).message}`);
  }
}

/** --data, or data/bench generated at quick scale when absent. */
export async function dataRootOf(a: Pick<StageArgs, 'data'>): Promise<string> {
  if (a.data !== undefined) return a.data;
  const root = join(projectRoot(), 'data', 'bench');
  await ensureBenchmark(root, { scale: 'quick', seed: 0 });
  return root;
}
