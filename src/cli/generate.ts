/**
 * `npx lens generate --out DIR [--seed N] [--scale tiny|quick|paper] [--force]`:
 * writes the generated referring-segmentation benchmark (src/data/generate) to DIR
 * in the LISA dataset layout, then prints its statistics.
 */
import { parseArgs } from 'node:util';
import { resolve } from 'node:path';
import { generateBenchmark } from '../data/generate/benchmark';
import { SCALES, type Scale } from '../data/generate/config';
import { formatStats } from '../data/generate/stats';
import { UsageError } from './main';

const USAGE = `usage: lens generate --out DIR [--seed N] [--scale tiny|quick|paper] [--force] [--quiet]

  --out DIR     output folder (written to DIR.tmp, then renamed)
  --seed N      integer seed in [0, 2^32), default 0
  --scale S     tiny (tests), quick (default), paper (~5x quick, 96 px images)
  --force       replace a non-empty DIR
  --quiet       no progress bar or statistics`;

/** Parses an integer seed flag; throws UsageError naming the flag. */
export function parseSeed(text: string | undefined): number {
  if (text === undefined) return 0;
  if (!/^\d+$/.test(text) || Number(text) > 0xffffffff) throw new UsageError(`--seed must be an integer in [0, 4294967295], got ${JSON.stringify(text)}`);
  return Number(text);
}

export async function run(argv: string[]): Promise<number> {
  let values;
  try {
    ({ values } = parseArgs({
      args: argv,
      options: {
        out: { type: 'string' },
        seed: { type: 'string' },
        scale: { type: 'string' },
        force: { type: 'boolean', default: false },
        quiet: { type: 'boolean', default: false },
        help: { type: 'boolean', short: 'h', default: false },
      },
      strict: true,
      allowPositionals: false,
    }));
  } catch (e) {
    throw new UsageError(`${(e as Error).message}\n\n${USAGE}`);
  }
  if (values.help) {
    console.log(USAGE);
    return 0;
  }
  if (!values.out) throw new UsageError(`--out DIR is required\n\n${USAGE}`);
  const scale = (values.scale ?? 'quick') as Scale;
  if (!SCALES.includes(scale)) throw new UsageError(`--scale must be one of ${SCALES.join('|')}, got ${JSON.stringify(values.scale)}`);
  const seed = parseSeed(values.seed);
  const out = resolve(values.out);
  const manifest = await generateBenchmark(out, { scale, seed }, { force: values.force, quiet: values.quiet });
  if (!values.quiet) console.log(`wrote ${out} (scale ${scale}, seed ${seed})\n\n${formatStats(manifest.stats)}`);
  return 0;
}
