/**
 * `npm start`: the default main job. For now (issue 2): make sure the default
 * benchmark exists in data/bench (scale quick, seed 0), generating it when absent,
 * and print its statistics. Later issues grow this into the full pipeline; keep it
 * a short list of library calls.
 */
import { parseArgs } from 'node:util';
import { join } from 'node:path';
import { ensureBenchmark } from '../data/generate/benchmark';
import { formatStats } from '../data/generate/stats';
import { projectRoot } from '../util/paths';
import { UsageError } from './errors';

/** Where `npm start` keeps the default benchmark. */
export const DEFAULT_BENCH_DIR = join('data', 'bench');

export async function run(argv: string[]): Promise<number> {
  try {
    parseArgs({ args: argv, options: {}, strict: true, allowPositionals: false });
  } catch (e) {
    throw new UsageError(`${(e as Error).message}\n\nusage: npm start (no options yet)`);
  }
  const dir = join(projectRoot(), DEFAULT_BENCH_DIR);
  const { manifest, generated } = await ensureBenchmark(dir, { scale: 'quick', seed: 0 });
  console.log(`${generated ? 'generated' : 'using'} benchmark ${dir} (scale ${manifest.scale}, seed ${manifest.seed}, ${manifest.imageSize}x${manifest.imageSize})\n`);
  console.log(formatStats(manifest.stats));
  return 0;
}
