/**
 * Which run folders a notebook shows (notebooks 03, 04, 08; issue #6): the training
 * notebooks do not retrain what `npm start` already trained. Under preset quick a
 * finished stage of the main job (results/main/<stage>, main_job.ts) is reused; any
 * other stage is trained (or resumed) into results/notebooks/<preset>/main/<stage>,
 * laid out like the main job's folder, so that notebook 08's runMainJob on that
 * folder finds the stages 03 and 04 trained and skips them. Stages are trained with
 * the main job's options (seed 0, the preset's defaults, evalLimit 0 for stages 1
 * and 2: the main job scores run folders itself).
 *
 * Also: a run folder's logs (run.json, steps.arrow, metrics.arrow) for the plots
 * (src/viz/run_charts.ts turns them into line series).
 */
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import type { PresetName } from '../model/presets';
import { readArrow, type Row } from '../util/arrow';
import { projectRoot } from '../util/paths';
import { runAlign } from './align';
import { runGrpo } from './grpo_stage';
import { claimMainJobFolder, mainJobDir, runMainJob } from './main_job';
import { runIsDone, type RunRecord } from './run';
import { runPretrain } from './stage0';
import { MODEL_FILE, TOKENIZER_FILE } from './stage_io';

/** The LENS stages a notebook can ask for, in training order. */
export const NOTEBOOK_STAGES = ['pretrain', 'align', 'grpo'] as const;
export type NotebookStage = (typeof NOTEBOOK_STAGES)[number];

/** The notebooks' own main-job-shaped folder of a preset, relative to the project root (git-ignored). */
export function notebookMainDir(preset: PresetName): string {
  return join('results', 'notebooks', preset, 'main');
}

/**
 * A stage's folder is finished when a later stage can start from it: model.safetensors
 * and tokenizer.json written, and (align, grpo) run.json says done. Pretrain writes its
 * hand-over model only after 0b finished (stage0.ts runPretrain).
 */
export function stageFinished(stage: NotebookStage, dir: string): boolean {
  if (!existsSync(join(dir, MODEL_FILE)) || !existsSync(join(dir, TOKENIZER_FILE))) return false;
  return stage === 'pretrain' ? runIsDone(join(dir, '0a')) && runIsDone(join(dir, '0b')) : runIsDone(dir);
}

/** Where a notebook's stage came from. */
export interface StageRunChoice {
  stage: NotebookStage;
  /** Absolute run folder. */
  dir: string;
  /** 'main': npm start's finished run; 'notebook': the notebooks' own folder. */
  source: 'main' | 'notebook';
  /** True when the stage was trained (or resumed) by this call; false when reused as it was. */
  trained: boolean;
}

/** Options of `ensureStageRun`. */
export interface EnsureStageOptions {
  preset: PresetName;
  /** Dataset root of the preset (the notebook's nb.benchmark() folder). */
  dataRoot: string;
  /** Project root (default projectRoot(); tests use a temp folder). */
  root?: string;
  /** Seed of the runs trained here (default 0, as `npm start`). */
  seed?: number;
  quiet?: boolean;
}

/**
 * The run folder of `stage` for a notebook: npm start's finished one under quick, else the
 * notebooks' folder, trained there first (earlier stages too, recursively) when unfinished;
 * an interrupted run there resumes from its checkpoint.
 */
export async function ensureStageRun(stage: NotebookStage, opts: EnsureStageOptions): Promise<StageRunChoice> {
  const root = opts.root ?? projectRoot();
  if (opts.preset === 'quick') {
    const main = join(mainJobDir('quick', root), stage);
    if (stageFinished(stage, main)) return { stage, dir: main, source: 'main', trained: false };
  }
  const dir = join(root, notebookMainDir(opts.preset), stage);
  if (stageFinished(stage, dir)) return { stage, dir, source: 'notebook', trained: false };
  const common = { dataRoot: opts.dataRoot, preset: opts.preset, seed: opts.seed ?? 0, quiet: opts.quiet ?? false, out: dir };
  // The folder is the main job's (notebook 08 runs it there): its job.json says which job these runs belong to.
  claimMainJobFolder(join(root, notebookMainDir(opts.preset)), opts.preset, common.seed);
  if (!opts.quiet) console.log(`[lens] ${stage}: no finished run to reuse; training into ${dir}`);
  if (stage === 'pretrain') {
    await runPretrain({ ...common, resume: existsSync(join(dir, '0a')) });
  } else {
    const from = await ensureStageRun(stage === 'align' ? 'pretrain' : 'align', opts);
    const resume = existsSync(join(dir, 'run.json'));
    // evalLimit 0 as in the main job (main_job.ts): the run folder is scored where it is shown.
    if (stage === 'align') await runAlign({ ...common, resume, from: from.dir, config: { evalLimit: 0 } });
    else await runGrpo({ ...common, resume, from: from.dir, config: { evalLimit: 0 } });
  }
  return { stage, dir, source: 'notebook', trained: true };
}

/** What a run folder logged. */
export interface RunLogs {
  /** run.json (config, seed, backend, code version, status). */
  record: RunRecord;
  /** steps.arrow: one row per optimiser step ([] when absent). */
  steps: Row[];
  /** metrics.arrow: the final evaluation rows ([] when the run evaluated nothing). */
  metrics: Row[];
}

/** Reads run.json, steps.arrow and metrics.arrow of a run folder; throws naming the folder when run.json is missing. */
export function readRunLogs(dir: string): RunLogs {
  const rec = join(dir, 'run.json');
  if (!existsSync(rec)) throw new Error(`${dir}: no run.json here; expected a run folder (a stage's --out)`);
  const read = (f: string): Row[] => (existsSync(join(dir, f)) ? readArrow(join(dir, f)) : []);
  return { record: JSON.parse(readFileSync(rec, 'utf8')) as RunRecord, steps: read('steps.arrow'), metrics: read('metrics.arrow') };
}


/** The main job's summary a notebook shows, and where it came from. */
export interface MainSummary {
  /** summary.arrow rows: split, `<model>_giou`, `<model>_ciou` (percent), main_job.ts summaryRows. */
  rows: Row[];
  /** Absolute path of the summary.arrow read. */
  path: string;
  /** True when this call ran the main job (missing stages trained, every run scored). */
  ran: boolean;
}

/**
 * npm start's results/main/summary.arrow under quick when it is there; else the notebooks'
 * results/notebooks/<preset>/main/summary.arrow, made by runMainJob on that folder when absent
 * (it reuses the stages notebooks 03 and 04 trained there and trains the rest).
 */
export async function ensureMainSummary(opts: EnsureStageOptions): Promise<MainSummary> {
  const root = opts.root ?? projectRoot();
  if (opts.preset === 'quick') {
    const path = join(mainJobDir('quick', root), 'summary.arrow');
    if (existsSync(path)) return { rows: readArrow(path), path, ran: false };
  }
  const out = join(root, notebookMainDir(opts.preset));
  const path = join(out, 'summary.arrow');
  if (existsSync(path)) return { rows: readArrow(path), path, ran: false };
  if (!opts.quiet) console.log(`[lens] no summary to reuse; running the main job into ${out}`);
  const { rows } = await runMainJob({ preset: opts.preset, seed: opts.seed ?? 0, dataRoot: opts.dataRoot, out, quiet: opts.quiet });
  return { rows, path, ran: true };
}
