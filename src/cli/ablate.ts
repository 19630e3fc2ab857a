/**
 * `lens ablate queries|connector|rewards`: the paper's ablation tables 3, 4, 5
 * (src/train/ablate.ts): every cell x seed not yet in results/ablations/<preset>/<table>.arrow
 * is trained from the shared stage-0 run and scored on RefCOCO testA; then the table is
 * printed as Markdown with the paper's numbers and the verdict. `--report` only prints.
 */
import { join } from 'node:path';
import { initBackend } from '../backend';
import { ensureBenchmark } from '../data/generate/benchmark';
import { PRESET_NAMES, type PresetName } from '../model/presets';
import { ABLATION, ABLATION_TABLES, ablationDir, ablationReport, runAblation, type AblationTable } from '../train/ablate';
import { projectRoot } from '../util/paths';
import { parseFlags, UsageError } from './errors';

const HELP = `usage: lens ablate queries|connector|rewards|all [--preset tiny|quick|paper] [--seeds N] [--data DIR] [--out DIR] [--from DIR] [--report]

  queries      Table 3: M = 1, 16, 32, 64, 128 context queries, after stage 1
  connector    Table 4: MLP vs ViT connector, after stage 1
  rewards      Table 5: no context module / + R_box / + R_format / + alignment / + R_seg
  all          the three, in that order

  --preset P   model and stage sizes (default quick)
  --seeds N    seeds 0 .. N-1 per cell (default ${ABLATION.quick.seeds})
  --data DIR   dataset root (default data/bench for quick, data/bench-<preset> otherwise; generated if absent)
  --out DIR    table folder (default results/ablations/<preset>)
  --from DIR   the shared stage-0 run folder (default results/main/pretrain when finished, else trained into <out>/pretrain)
  --report     print the tables from the Arrow files; run nothing

Finished cells are skipped, interrupted runs resume; the tables are written after every cell.`;

/** Parsed flags of `lens ablate`. */
export interface AblateArgs {
  tables: AblationTable[];
  preset: PresetName;
  seeds: number | undefined;
  data: string | undefined;
  out: string | undefined;
  from: string | undefined;
  report: boolean;
  quiet: boolean;
  help: boolean;
}

/** Parses argv; throws UsageError naming the flag. */
export function parseAblateArgs(argv: string[]): AblateArgs {
  const { values, positionals } = parseFlags(argv, {
        preset: { type: 'string', default: 'quick' },
        seeds: { type: 'string' },
        data: { type: 'string' },
        out: { type: 'string' },
        from: { type: 'string' },
        report: { type: 'boolean', default: false },
        quiet: { type: 'boolean', default: false },
        help: { type: 'boolean', short: 'h', default: false },
      }, HELP, { positionals: true });
  const help = values.help === true;
  const preset = values.preset as string;
  if (!(PRESET_NAMES as readonly string[]).includes(preset)) throw new UsageError(`--preset: expected one of ${PRESET_NAMES.join(', ')}, got '${preset}'`);
  let seeds: number | undefined;
  if (values.seeds !== undefined) {
    seeds = Number(values.seeds);
    if (!Number.isInteger(seeds) || seeds < 1) throw new UsageError(`--seeds: expected an integer >= 1, got '${values.seeds}'`);
  }
  const names = [...ABLATION_TABLES, 'all'];
  if (!help) {
    if (positionals.length !== 1) throw new UsageError(`expected one table (${names.join(', ')}), got ${positionals.length === 0 ? 'none' : positionals.join(' ')}\n\n${HELP}`);
    if (!names.includes(positionals[0]!)) throw new UsageError(`table: expected one of ${names.join(', ')}, got '${positionals[0]}'`);
  }
  const t = positionals[0];
  return {
    tables: t === 'all' ? [...ABLATION_TABLES] : t ? [t as AblationTable] : [],
    preset: preset as PresetName,
    seeds,
    data: values.data as string | undefined,
    out: values.out as string | undefined,
    from: values.from as string | undefined,
    report: values.report === true,
    quiet: values.quiet === true,
    help,
  };
}

export async function run(argv: string[]): Promise<number> {
  const a = parseAblateArgs(argv);
  if (a.help) {
    console.log(HELP);
    return 0;
  }
  const out = a.out ?? ablationDir(a.preset);
  if (!a.report) {
    const root = projectRoot();
    const dataRoot = a.data ?? join(root, 'data', a.preset === 'quick' ? 'bench' : `bench-${a.preset}`);
    if (a.data === undefined) await ensureBenchmark(dataRoot, { scale: a.preset, seed: 0 });
    await initBackend();
    for (const table of a.tables) {
      const t0 = performance.now();
      const { file } = await runAblation({ table, preset: a.preset, seeds: a.seeds, dataRoot, out, from: a.from, quiet: a.quiet });
      console.log(`ablate ${table}: ${file} (${((performance.now() - t0) / 1000).toFixed(0)} s)`);
    }
  }
  console.log(a.tables.map((t) => ablationReport(t, out, a.preset)).join('\n\n'));
  return 0;
}
