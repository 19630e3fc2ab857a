/**
 * `npx lens generate --out DIR [--seed N] [--scale tiny|quick|paper] [--config FILE] [--force]`:
 * writes the generated referring-segmentation benchmark (src/data/generate) to DIR
 * in the LISA dataset layout, then prints its statistics.
 */
import { readFileSync } from 'node:fs';
import { resolve } from 'node:path';
import { generateBenchmark } from '../data/generate/benchmark';
import { SCALES, resolveGenerateConfig, type GenerateConfig, type Scale } from '../data/generate/config';
import { formatStats } from '../data/generate/stats';
import { parseFlags, UsageError } from './errors';

const USAGE = `usage: lens generate --out DIR [--seed N] [--scale tiny|quick|paper] [--config FILE] [--force] [--quiet]

  --out DIR     output folder (written to DIR.tmp, then renamed)
  --seed N      integer seed in [0, 2^32), default 0
  --scale S     tiny (tests), quick (default), paper (~5x quick, 96 px images)
  --config FILE JSON object overriding fields of the scale's config, e.g.
                {"imageSize": 80, "referImages": {"train": 2000}} (see src/data/generate/config.ts)
  --force       replace a non-empty DIR
  --quiet       no progress bar or statistics`;

/** Reads a --config JSON file of GenerateConfig overrides; errors name the file. */
export function readConfigFile(path: string): Partial<GenerateConfig> {
  let value: unknown;
  try {
    value = JSON.parse(readFileSync(path, 'utf8'));
  } catch (e) {
    throw new Error(`--config ${path}: ${(e as Error).message}`);
  }
  if (typeof value !== 'object' || value === null || Array.isArray(value)) throw new Error(`--config ${path}: expected a JSON object of config fields`);
  return value as Partial<GenerateConfig>;
}

/** Parses an integer seed flag; throws UsageError naming the flag. */
export function parseSeed(text: string | undefined): number {
  if (text === undefined) return 0;
  if (!/^\d+$/.test(text) || Number(text) > 0xffffffff) throw new UsageError(`--seed must be an integer in [0, 4294967295], got ${JSON.stringify(text)}`);
  return Number(text);
}

export async function run(argv: string[]): Promise<number> {
  const { values } = parseFlags(argv, {
        out: { type: 'string' },
        seed: { type: 'string' },
        scale: { type: 'string' },
        config: { type: 'string' },
        force: { type: 'boolean', default: false },
        quiet: { type: 'boolean', default: false },
        help: { type: 'boolean', short: 'h', default: false },
      }, USAGE);
  if (values.help) {
    console.log(USAGE);
    return 0;
  }
  if (!values.out) throw new UsageError(`--out DIR is required\n\n${USAGE}`);
  const overrides = values.config ? readConfigFile(values.config) : {};
  // flags win over the config file, which wins over the defaults (scale quick, seed 0)
  const scale = (values.scale ?? overrides.scale ?? 'quick') as Scale;
  if (!SCALES.includes(scale)) throw new UsageError(`--scale must be one of ${SCALES.join('|')}, got ${JSON.stringify(values.scale)}`);
  const seed = values.seed !== undefined ? parseSeed(values.seed) : overrides.seed ?? 0;
  const out = resolve(values.out);
  let config: GenerateConfig;
  try {
    config = resolveGenerateConfig({ ...overrides, scale, seed });
  } catch (e) {
    throw new Error(`${values.config ? `--config ${values.config}: ` : ''}${(e as Error).message}`);
  }
  const manifest = await generateBenchmark(out, config, { force: values.force, quiet: values.quiet });
  if (!values.quiet) console.log(`wrote ${out} (scale ${scale}, seed ${seed})\n\n${formatStats(manifest.stats)}`);
  return 0;
}
