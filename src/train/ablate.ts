/**
 * The ablation harness (paper Sec. 4.3, Tables 3, 4, 5; issue #6): each table is a named
 * grid of cells (config deltas), trained at >= 3 seeds per cell from ONE shared stage-0
 * run, scored by cIoU on RefCOCO testA (the metric all three tables print,
 * reference/paper-tables.json notes), and stored one row per cell x seed in
 * `results/ablations/<preset>/<table>.arrow` (ablate_summary.ts summarises them).
 *
 * - Table 3 (`queries`): stage 1 with M = 1, 16, 32, 64, 128 context queries;
 * - Table 4 (`connector`): stage 1 with the `mlp` vs the `vit` connector;
 * - Table 5 (`rewards`): the five rows [context module, alignment, R_box, R_format, R_seg]:
 *   1. no context module: the stage-0b MLLM's box prompts the stage-0a frozen SAM (the
 *      Seg-Zero pipeline without RL; deterministic, so its seeds share one folder and
 *      the spread is 0 by construction);
 *   2. fresh queries + connector (no alignment), GRPO with R_box only;
 *   3. no alignment, GRPO with R_box + R_format;
 *   4. alignment, then GRPO with R_box + R_format;
 *   5. alignment, then GRPO with all three (the full LENS).
 *   alpha * L_seg stays on in rows 2-5 (the paper's objective). The paper prints no number
 *   for row 2 (its model could not follow the format): our format rate is kept beside.
 *
 * Decisions (see also ABLATION):
 * - Stage 0 is shared: the default is the main job's `results/main/pretrain` (or
 *   `results/main-<preset>/pretrain`) when it holds model.safetensors, else one
 *   runPretrain into `<out>/pretrain`. The seed varies stage 1 / 2 only: the fresh init of
 *   the queries and the connector (stage_io.ts loadStageModelRebuilt: every cell starts
 *   them fresh from its seed, vision / MLLM / SAM weights kept), the data order and the
 *   rollout sampling; the paper ablates from the same pretrained weights.
 * - Run folders are named by what makes them distinct (`align-M16-vit-<hash>-s0`, the hash
 *   over the resolved stage config and model sections), never by the cell: Table 3's
 *   default-M cell, Table 4's `vit` cell and Table 5 rows 4 / 5's alignment are the SAME
 *   folder for a seed whenever their stage settings agree, and are trained once.
 *   The stage-0 folder is not part of the names (they must not depend on where a
 *   checkout lives, or committed tables would not be found again): a table folder belongs
 *   to one stage 0, named by the SHA-256 of its model file in `<out>/stage0.json`
 *   (written when a cell first needs stage 0). A cell to train from another stage 0 is
 *   refused rather than mixed into the tables: pass another `--out`, or delete `runs/`,
 *   the table files and `stage0.json` to retrain every cell.
 * - Resumable: the table file is rewritten atomically after every finished cell x seed; a
 *   rerun skips the rows already there for the same run folder name, and an interrupted
 *   run folder resumes from its checkpoint. Scores are cached per run folder
 *   (`ablation-eval.json`, keyed by split and sentence limit).
 */
import { createHash } from 'node:crypto';
import { existsSync, readFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import type { ConfigDelta } from '../config';
import { STAGE2_MODULES } from '../model/lens';
import { resolveLensConfig, type LensConfig, type LensConfigDelta, type PresetName } from '../model/presets';
import { readArrow, writeArrow, type Row } from '../util/arrow';
import { writeJsonAtomic } from '../util/fs';
import { projectRoot } from '../util/paths';
import { readSafetensors } from '../util/safetensors';
import { resolveAlignConfig, runAlign, type AlignConfig } from './align';
import { ablationMarkdown, asAblationRows, summarizeCells, type AblationRow, type CellSummary, type GridCell } from './ablate_summary';
import { baselineFromStage0, saveBaseline } from './baselines';
import { evaluateRun, type EvalRow } from './evaluate_run';
import { resolveGrpoStageConfig, runGrpo, type GrpoStageConfig } from './grpo_stage';
import type { RewardWeights } from './rewards';
import { mainJobDir } from './main_job';
import { runIsDone } from './run';
import { runPretrain } from './stage0';
import { mergeLensDelta, MODEL_FILE } from './stage_io';

export const ABLATION_TABLES = ['queries', 'connector', 'rewards'] as const;
/** Which ablation table. */
export type AblationTable = (typeof ABLATION_TABLES)[number];

/** The split all three tables report (paper Tables 3-5: cIoU on RefCOCO testA). */
export const ABLATION_SPLIT = 'refcoco/testA';

/** Table 5's switches for one row (paper columns context_module, align_stage, r_box, r_format, r_seg). */
export interface RewardRowSpec {
  contextModule: boolean;
  align: boolean;
  /** GRPO reward weights l1 (format), l2 (box), l3 (seg) of Eq. 3; unused without the context module. */
  rewardWeights: RewardWeights;
}

/** One cell of a grid. */
export interface AblationCell extends GridCell {
  /** Tables 3 / 4: the model delta stage 1 starts from (context module / connector sizes). */
  model?: LensConfigDelta;
  /** Table 5: the row's switches. */
  row?: RewardRowSpec;
}

/** A named grid: the cells of one paper table, in the paper's order. */
export interface AblationGrid {
  table: AblationTable;
  /** The paper's table, for titles. */
  title: string;
  cells: AblationCell[];
}

const PAPER_QUERIES = [1, 16, 32, 64, 128];
const PAPER_QUERIES_CIOU = [85.9, 87.4, 87.8, 87.9, 87.2];

/** The three grids (values: reference/paper-tables.json). */
export const ABLATION_GRIDS: Record<AblationTable, AblationGrid> = {
  queries: {
    table: 'queries',
    title: 'Table 3: number of context queries M (cIoU, RefCOCO testA, after stage 1)',
    cells: PAPER_QUERIES.map((m, i) => ({ label: `M=${m}`, model: { context: { numQueries: m } }, paper: PAPER_QUERIES_CIOU[i]! })),
  },
  connector: {
    table: 'connector',
    title: 'Table 4: connector (cIoU, RefCOCO testA, after stage 1)',
    cells: [
      { label: 'MLP', model: { connector: { kind: 'mlp' } }, paper: 72.8 },
      { label: 'ViT', model: { connector: { kind: 'vit' } }, paper: 87.8 },
    ],
  },
  rewards: {
    table: 'rewards',
    title: 'Table 5: context module, alignment and reward components (cIoU, RefCOCO testA)',
    cells: [
      { label: '1 box -> SAM', row: { contextModule: false, align: false, rewardWeights: { format: 0, box: 0, seg: 0 } }, paper: 79.3 },
      { label: '2 + context, R_box', row: { contextModule: true, align: false, rewardWeights: { format: 0, box: 1, seg: 0 } }, paper: null },
      { label: '3 + R_format', row: { contextModule: true, align: false, rewardWeights: { format: 1, box: 1, seg: 0 } }, paper: 72.3 },
      { label: '4 + alignment', row: { contextModule: true, align: true, rewardWeights: { format: 1, box: 1, seg: 0 } }, paper: 81.9 },
      { label: '5 + R_seg (LENS)', row: { contextModule: true, align: true, rewardWeights: { format: 1, box: 1, seg: 1 } }, paper: 82.7 },
    ],
  },
};

/** Budget of one table: what every cell of it trains and scores. */
export interface TableSettings {
  /** RefCOCO testA sentences scored per cell (0 = all; evenly spaced over the split, evaluate_run.ts). */
  evalLimit: number;
  /** Stage-1 config delta of every cell (its evalLimit is forced to 0: the harness scores testA itself). */
  align: ConfigDelta<AlignConfig>;
  /** Stage-2 config delta (Table 5; rewardWeights and evalLimit are set per row). */
  grpo: ConfigDelta<GrpoStageConfig>;
}

/** Per-preset settings of the harness. */
export interface AblationSettings {
  /** Seeds per cell when none are given (the issue asks for at least 3). */
  seeds: number;
  tables: Record<AblationTable, TableSettings>;
}

const same = (s: TableSettings): Record<AblationTable, TableSettings> => ({ queries: s, connector: s, rewards: s });

/**
 * Per preset. quick: the stage defaults (DEFAULT_ALIGN / DEFAULT_GRPO) as the committed tables
 * trained them: stage 1 at 300 steps from 300 sentences per family (the main job's runs 600
 * from 600 since its stage 0b got longer; the tables start from the stage 0 of
 * `results/ablations/quick/stage0.json`, the shorter one), L_seg on every rollout (the paper's;
 * the main job's stage 2 trains it on right-box rollouts only, GrpoStageConfig.segLossOn), the
 * reference reward logged and scored every 10 steps, and 150 testA sentences per cell, as the
 * main job scores its splits. tiny: the stage defaults of tiny (a few steps)
 * and 6 sentences, so each notebook runs in well under a minute in CI. paper: every testA
 * sentence. The three tables share one align delta per preset so that their shared alignment
 * runs are the same folders.
 */
export const ABLATION: Record<PresetName, AblationSettings> = {
  tiny: { seeds: 3, tables: same({ evalLimit: 6, align: {}, grpo: {} }) },
  quick: { seeds: 3, tables: same({ evalLimit: 150, align: { steps: 300, poolPerFamily: 300 }, grpo: { segLossOn: 'all', steps: 80, logReferenceReward: true, scoreEvery: 10 } }) },
  paper: { seeds: 3, tables: same({ evalLimit: 0, align: {}, grpo: {} }) },
};

/** Options of runAblation. */
export interface AblationOptions {
  table: AblationTable;
  preset: PresetName;
  /** Seeds: N means 0 .. N-1; default ABLATION[preset].seeds. */
  seeds?: number | readonly number[];
  /** Dataset root (LISA layout). */
  dataRoot: string;
  /** Table folder; default results/ablations/<preset>. */
  out?: string;
  /** Stage-0 run folder; default the main job's pretrain, else <out>/pretrain (trained once). */
  from?: string;
  /** Overrides of the preset's settings for this table (tests). */
  settings?: Partial<TableSettings>;
  /** Only the cells with these labels (tests); default all. */
  cells?: readonly string[];
  /** No output at all. */
  quiet?: boolean;
  /** Show the stage runs' own progress (default true; notebooks on tiny turn it off and keep the one-line cell log). */
  stageOutput?: boolean;
}

/** The default table folder of a preset. */
export function ablationDir(preset: PresetName, root = projectRoot()): string {
  return join(root, 'results', 'ablations', preset);
}

/** The table file of a folder. */
export function tableFile(out: string, table: AblationTable): string {
  return join(out, `${table}.arrow`);
}

/** The seed list of a `seeds` option. */
export function seedList(seeds: number | readonly number[]): number[] {
  const list = typeof seeds === 'number' ? Array.from({ length: seeds }, (_, i) => i) : [...seeds];
  if (list.length === 0 || list.some((s) => !Number.isInteger(s) || s < 0)) throw new Error(`ablation seeds: expected a count >= 1 or integers >= 0, got ${JSON.stringify(seeds)}`);
  return list;
}

const hash8 = (v: unknown): string => createHash('sha256').update(JSON.stringify(v)).digest('hex').slice(0, 8);

/**
 * Settings added after the committed tables were trained, with the value that trains as before:
 * left out of run names at that value, so the tables' rows are found again (a renamed run reads
 * as a missing cell, and `lens ablate` and notebooks 05-07 would retrain it).
 */
const ALIGN_ADDED_LATER: Partial<AlignConfig> = { ownAnswerFraction: 0 };
const GRPO_ADDED_LATER: Partial<GrpoStageConfig> = { trainable: [...STAGE2_MODULES], segLossOn: 'all' };

/** A config as run names hash it: without the fields of `addedLater` at their old value. */
function nameConfig<T extends object>(cfg: T, addedLater: Partial<T>): Partial<T> {
  const old = (k: string) => JSON.stringify((addedLater as Record<string, unknown>)[k]);
  return Object.fromEntries(Object.entries(cfg).filter(([k, v]) => !(k in addedLater) || old(k) !== JSON.stringify(v))) as Partial<T>;
}

const log = (quiet: boolean | undefined, msg: string): void => {
  if (!quiet) console.log(`[ablate] ${msg}`);
};

/**
 * The stage-0 folder the cells start from: `from`, else the main job's pretrain when it
 * holds model.safetensors, else `<out>/pretrain`, trained once here (resumed if interrupted).
 */
export async function resolvePretrain(opts: Pick<AblationOptions, 'preset' | 'dataRoot' | 'from' | 'quiet'> & { out: string }): Promise<string> {
  if (opts.from !== undefined) {
    if (!existsSync(join(opts.from, MODEL_FILE))) throw new Error(`--from ${opts.from}: no ${MODEL_FILE} there; expected a finished 'lens pretrain' run folder`);
    return resolve(opts.from);
  }
  const main = join(mainJobDir(opts.preset), 'pretrain');
  if (existsSync(join(main, MODEL_FILE))) return main;
  const own = join(opts.out, 'pretrain');
  if (!existsSync(join(own, MODEL_FILE))) {
    log(opts.quiet, `stage 0 (shared by every cell) -> ${own}`);
    await runPretrain({ dataRoot: opts.dataRoot, out: own, preset: opts.preset, seed: 0, resume: existsSync(join(own, '0a')), quiet: opts.quiet });
  }
  return own;
}

/** The file of a table folder that names the stage 0 its runs start from. */
export const STAGE0_FILE = 'stage0.json';

/** Which stage 0 a table folder's runs start from: its model file's SHA-256 (16 hex) and, where recorded, the commit that trained its stage 0b. */
export interface Stage0Identity {
  model: string;
  codeVersion: string | null;
}

export function stage0Identity(dir: string): Stage0Identity {
  const model = createHash('sha256').update(readFileSync(join(dir, MODEL_FILE))).digest('hex').slice(0, 16);
  const run = join(dir, '0b', 'run.json');
  const codeVersion = existsSync(run) ? ((JSON.parse(readFileSync(run, 'utf8')) as { codeVersion?: string }).codeVersion ?? null) : null;
  return { model, codeVersion };
}

/** Reads a table folder's `stage0.json`, naming the file when it is not what `claimStage0` writes. */
function readStage0File(file: string): Stage0Identity {
  let v: unknown;
  try {
    v = JSON.parse(readFileSync(file, 'utf8'));
  } catch (e) {
    throw new Error(`${file}: not JSON (${(e as Error).message}); expected {"model": "<16 hex digits>", "codeVersion": "<commit>" | null}, as lens ablate writes it`);
  }
  const id = v as Partial<Stage0Identity>;
  if (typeof id?.model !== 'string' || !/^[0-9a-f]{16}$/.test(id.model)) throw new Error(`${file}: 'model' = ${JSON.stringify(id?.model)}; expected 16 hex digits of the stage-0 model file's SHA-256`);
  return { model: id.model, codeVersion: typeof id.codeVersion === 'string' ? id.codeVersion : null };
}

/**
 * Ties a table folder to the stage 0 in `dir`: records it in `<out>/stage0.json` the first
 * time, and refuses a stage 0 whose model file differs from the recorded one (its cells
 * would be mixed with cells of another stage 0 in one table).
 */
export function claimStage0(out: string, dir: string): Stage0Identity {
  const id = stage0Identity(dir);
  const file = join(out, STAGE0_FILE);
  if (!existsSync(file)) {
    writeJsonAtomic(file, id);
    return id;
  }
  const had = readStage0File(file);
  if (had.model !== id.model) {
    throw new Error(
      `${file}: the tables and runs in ${out} start from the stage 0 whose model file hashes ${had.model}` +
        `${had.codeVersion ? ` (stage 0b at ${had.codeVersion})` : ''}, but ${join(dir, MODEL_FILE)} hashes ${id.model}; ` +
        `training the missing cells from it would mix two stage 0s in one table. Pass --out a new folder, or --from the stage 0 the tables were trained from, ` +
        `or delete ${join(out, 'runs')}, the table files and ${STAGE0_FILE} to retrain every cell.`,
    );
  }
  return id;
}

/** The saved LensConfig of a stage folder (from the model file's metadata). */
function savedConfig(dir: string): LensConfig {
  const meta = readSafetensors(join(dir, MODEL_FILE)).metadata;
  return resolveLensConfig(JSON.parse(meta.config ?? '{}') as LensConfigDelta);
}

/**
 * The canonical model delta of a cell: the context and connector sections the delta
 * resolves to over the stage-0 config, derived fields dropped. Two deltas that build the
 * same model (Table 3's M=16 on quick, Table 4's ViT, `{}`) give the same canonical form,
 * hence the same run folder and the same recorded config.
 */
export function canonicalModelDelta(base: LensConfig, delta: LensConfigDelta): LensConfigDelta {
  const c = resolveLensConfig(mergeLensDelta(base, delta));
  const { dim: _d, ...context } = c.context;
  const { inDim: _i, outDim: _o, numQueries: _m, ...connector } = c.connector;
  return { context, connector };
}

/** Scores a run folder on the ablation split, cached in `<dir>/ablation-eval.json` by split and limit. */
async function scoreRun(dir: string, preset: PresetName, dataRoot: string, limit: number, quiet?: boolean): Promise<EvalRow> {
  const cacheFile = join(dir, 'ablation-eval.json');
  const key = `${ABLATION_SPLIT}@${limit}`;
  const cache: Record<string, EvalRow> = existsSync(cacheFile) ? (JSON.parse(readFileSync(cacheFile, 'utf8')) as Record<string, EvalRow>) : {};
  if (cache[key]) return cache[key]!;
  const [row] = await evaluateRun(dir, { dataRoot, splits: [ABLATION_SPLIT], preset, config: { maxPerSplit: limit }, quiet });
  cache[key] = row!;
  writeJsonAtomic(cacheFile, cache);
  return row!;
}

/** What one cell x seed needs: its run folder (relative name) and how to make and score it. */
interface CellPlan {
  run: string;
  compute: () => Promise<EvalRow>;
}

/** Everything the cell planners share. */
interface Context {
  preset: PresetName;
  dataRoot: string;
  out: string;
  settings: TableSettings;
  /** The preset's config: run names are planned from it without touching stage 0. */
  base: LensConfig;
  /** The stage-0 folder, resolved (and trained if needed) on first use only. */
  pretrain: () => Promise<string>;
  /** Quiet stage runs. */
  quiet?: boolean;
}

/** A stage-1 run of a model delta at a seed (shared across tables when the settings agree). */
function alignRun(ctx: Context, delta: LensConfigDelta, seed: number): { name: string; ensure: () => Promise<string> } {
  const model = canonicalModelDelta(ctx.base, delta);
  const config = { ...ctx.settings.align, evalLimit: 0 };
  const cfg = resolveAlignConfig(ctx.preset, config);
  const name = `align-M${model.context!.numQueries}-${model.connector!.kind}-${hash8({ cfg: nameConfig(cfg, ALIGN_ADDED_LATER), model })}-s${seed}`;
  const dir = join(ctx.out, 'runs', name);
  return {
    name,
    ensure: async () => {
      if (!runIsDone(dir)) {
        log(ctx.quiet, `stage 1 ${name}`);
        await runAlign({ dataRoot: ctx.dataRoot, out: dir, preset: ctx.preset, seed, resume: existsSync(join(dir, 'run.json')), from: await ctx.pretrain(), config, model, quiet: ctx.quiet });
      }
      return dir;
    },
  };
}

/** The plan of one cell x seed. */
function planCell(ctx: Context, cell: AblationCell, seed: number): CellPlan {
  const limit = ctx.settings.evalLimit;
  const score = (dir: string) => scoreRun(dir, ctx.preset, ctx.dataRoot, limit, ctx.quiet);
  if (cell.model) {
    const a = alignRun(ctx, cell.model, seed);
    return { run: join('runs', a.name), compute: async () => score(await a.ensure()) };
  }
  const row = cell.row;
  if (!row) throw new Error(`ablation cell '${cell.label}': needs a model delta or a Table 5 row`);
  if (!row.contextModule) {
    // The Seg-Zero pipeline without RL: no training, no seed.
    const name = 'segzero-norl';
    const dir = join(ctx.out, 'runs', name);
    return {
      run: join('runs', name),
      compute: async () => {
        if (!existsSync(join(dir, MODEL_FILE))) {
          const pretrain = await ctx.pretrain();
          const { model, tokenizer } = baselineFromStage0('segzero', pretrain, 0);
          try {
            saveBaseline(dir, model, tokenizer, { kind: 'segzero', from: pretrain, note: 'stage-0 MLLM box -> stage-0a SAM, no RL (Table 5 row 1)' });
          } finally {
            model.dispose();
          }
        }
        return score(dir);
      },
    };
  }
  const align = row.align ? alignRun(ctx, {}, seed) : null;
  const model = align ? undefined : canonicalModelDelta(ctx.base, {}); // no alignment: fresh queries + connector
  const config = { ...ctx.settings.grpo, evalLimit: 0, rewardWeights: row.rewardWeights };
  const cfg = resolveGrpoStageConfig(ctx.preset, config);
  const w = row.rewardWeights;
  const tag = `${align ? 'align' : 'noalign'}-r${w.format}${w.box}${w.seg}`;
  const name = `grpo-${tag}-${hash8({ cfg: nameConfig(cfg, GRPO_ADDED_LATER), from: align ? align.name.replace(/-s\d+$/, '') : 'pretrain', model: model ?? null })}-s${seed}`;
  const dir = join(ctx.out, 'runs', name);
  return {
    run: join('runs', name),
    compute: async () => {
      const from = align ? await align.ensure() : await ctx.pretrain();
      if (!runIsDone(dir)) {
        log(ctx.quiet, `stage 2 ${name}`);
        await runGrpo({ dataRoot: ctx.dataRoot, out: dir, preset: ctx.preset, seed, resume: existsSync(join(dir, 'run.json')), from, config, ...(model ? { model } : {}), quiet: ctx.quiet });
      }
      return score(dir);
    },
  };
}

/** The JSON of a cell's delta (the table file's `delta` column). */
export function cellDelta(cell: AblationCell): string {
  return JSON.stringify(cell.model ?? cell.row ?? {});
}

const pct = (v: number | undefined): number => (v === undefined || v === null || !Number.isFinite(v) ? Number.NaN : 100 * v);

/** An AblationRow as Arrow cells. */
function rowCells(r: AblationRow): Row {
  const num = (v: number) => (Number.isFinite(v) ? v : null);
  return { table: r.table, cell: r.cell, delta: r.delta, seed: r.seed, ciou: r.ciou, giou: r.giou, formatRate: num(r.formatRate), boxAcc50: num(r.boxAcc50), n: r.n, seconds: r.seconds, run: r.run };
}

/** Reads a table file (empty when absent). */
export function readAblationTable(out: string, table: AblationTable): AblationRow[] {
  const f = tableFile(out, table);
  return existsSync(f) ? asAblationRows(readArrow(f)) : [];
}

/** A table's rows summarised per cell in the grid's order. */
export function summarizeAblation(table: AblationTable, rows: readonly AblationRow[]): CellSummary[] {
  return summarizeCells(rows, ABLATION_GRIDS[table].cells);
}

/**
 * Runs (or finishes) one table: every cell x seed not yet in `<out>/<table>.arrow` is
 * trained (sharing run folders), scored on RefCOCO testA and appended; the file is
 * rewritten after each. Returns every row of the file and its per-cell summary.
 */
export async function runAblation(opts: AblationOptions): Promise<{ file: string; rows: AblationRow[]; summary: CellSummary[] }> {
  const grid = ABLATION_GRIDS[opts.table];
  if (!grid) throw new Error(`ablation table: expected one of ${ABLATION_TABLES.join(', ')}, got ${JSON.stringify(opts.table)}`);
  const preset = opts.preset;
  const defaults = ABLATION[preset];
  if (!defaults) throw new Error(`ablation preset: expected one of ${Object.keys(ABLATION).join(', ')}, got ${JSON.stringify(preset)}`);
  const seeds = seedList(opts.seeds ?? defaults.seeds);
  const out = resolve(opts.out ?? ablationDir(preset));
  const file = tableFile(out, opts.table);
  const settings: TableSettings = { ...defaults.tables[opts.table], ...opts.settings };
  const cells = opts.cells ? grid.cells.filter((c) => opts.cells!.includes(c.label)) : grid.cells;
  if (opts.cells && cells.length !== opts.cells.length) throw new Error(`ablation cells: expected labels among ${grid.cells.map((c) => JSON.stringify(c.label)).join(', ')}, got ${JSON.stringify(opts.cells)}`);
  let rows = readAblationTable(out, opts.table);
  const stageQuiet = opts.quiet === true || opts.stageOutput === false;
  let pretrain: string | null = null;
  const ctx: Context = {
    preset,
    dataRoot: opts.dataRoot,
    out,
    settings,
    base: resolveLensConfig(preset),
    pretrain: async () => {
      if (pretrain === null) {
        const dir = await resolvePretrain({ preset, dataRoot: opts.dataRoot, from: opts.from, quiet: stageQuiet, out });
        const saved = savedConfig(dir);
        if (saved.preset !== preset) throw new Error(`${join(dir, MODEL_FILE)}: a '${saved.preset}' model, but the ablation runs preset '${preset}'; pass --from a ${preset} pretrain folder`);
        claimStage0(out, dir);
        pretrain = dir;
      }
      return pretrain;
    },
    quiet: stageQuiet,
  };
  for (const cell of cells) {
    for (const seed of seeds) {
      const plan = planCell(ctx, cell, seed);
      if (rows.some((r) => r.cell === cell.label && r.seed === seed && r.run === plan.run)) continue;
      await ctx.pretrain(); // shared by every cell: not counted in this cell's seconds
      const t0 = performance.now();
      const m = await plan.compute();
      const row: AblationRow = {
        table: opts.table,
        cell: cell.label,
        delta: cellDelta(cell),
        seed,
        ciou: pct(m.ciou),
        giou: pct(m.giou),
        formatRate: pct(m.format_rate),
        boxAcc50: pct(m.box_acc50),
        n: m.n,
        seconds: (performance.now() - t0) / 1000,
        run: plan.run,
      };
      log(opts.quiet, `${opts.table} ${cell.label} seed ${seed}: cIoU ${row.ciou.toFixed(1)} (${row.n} sentences, ${row.seconds.toFixed(0)} s) -> ${row.run}`);
      rows = [...rows.filter((r) => !(r.cell === cell.label && r.seed === seed)), row];
      const order = new Map(grid.cells.map((g, i) => [g.label, i]));
      rows.sort((a, b) => (order.get(a.cell) ?? 1e9) - (order.get(b.cell) ?? 1e9) || a.seed - b.seed);
      writeArrow(file, rows.map(rowCells));
    }
  }
  return { file, rows, summary: summarizeAblation(opts.table, rows) };
}

/** The Markdown of one table from its file (README; `lens ablate TABLE --report`): title, table, verdict, what was run. */
export function ablationReport(table: AblationTable, out: string, preset: PresetName): string {
  const rows = readAblationTable(out, table);
  const grid = ABLATION_GRIDS[table];
  const summary = summarizeAblation(table, rows);
  const ns = [...new Set(rows.map((r) => r.n))].sort((a, b) => a - b);
  const seeds = [...new Set(rows.map((r) => r.seed))].sort((a, b) => a - b);
  const notes = [
    rows.length === 0
      ? `No rows yet in ${tableFile(out, table)}: run \`npx lens ablate ${table} --preset ${preset}\`.`
      : `Ours: preset ${preset}, ${ns.join(' / ')} sentences of ${ABLATION_SPLIT} per cell, seeds ${seeds.join(', ')}; mean ± sample std over seeds, in %. Paper: LENS-3B as printed.`,
  ];
  const marker = join(out, STAGE0_FILE);
  if (rows.length > 0 && existsSync(marker)) {
    const id = readStage0File(marker);
    notes.push(`Stage 0: the model file of SHA-256 ${id.model}…${id.codeVersion ? `, its 0b trained at \`${id.codeVersion}\`` : ''} (\`${STAGE0_FILE}\`).`);
  }
  if (table === 'rewards') notes.push('Row 1 has no training and no seed (spread 0 by construction). The paper prints no cIoU for row 2 (its model could not follow the format): compare our format rate.');
  return ablationMarkdown(grid.title, summary, notes.join(' '));
}
