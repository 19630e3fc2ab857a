/**
 * The main job (`npm start`, issue #5): generate the default benchmark if absent,
 * stage 0 (0a SAM, 0b MLLM SFT), stage 1 (alignment), stage 2 (GRPO), the two
 * baselines (LISA-style, Seg-Zero-style), then every evaluation split scored for
 * LENS after stage 1 and after stage 2, the baselines and the two trivial floors,
 * printed as one table and written to `<out>/summary.arrow` and `<out>/summary.md`.
 *
 * Each step is a run folder under `<out>`; a step whose run finished is skipped and
 * one that was interrupted resumes from its checkpoint, so rerunning `npm start`
 * after a kill continues where it stopped.
 */
import { existsSync, mkdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { ConfigError, isPlainObject, type ConfigDelta } from '../config';
import { ensureBenchmark } from '../data/generate/benchmark';
import { pairedCiouDifference, pairedLine, runSentenceCounts } from '../eval/paired';
import type { PresetName } from '../model/presets';
import { readArrow, writeArrow, type Row } from '../util/arrow';
import { projectRoot } from '../util/paths';
import { writeFileAtomic, writeJsonAtomic } from '../util/fs';
import { resolveAlignConfig, runAlign, type AlignConfig } from './align';
import { resolveLisaConfig, resolveSegZeroConfig, runBaseline, type LisaTrainConfig, type SegZeroTrainConfig } from './baselines';
import { evaluateRun, resolveEvaluateConfig, type EvalRow } from './evaluate_run';
import { resolveGrpoStageConfig, runGrpo, scoreCurve, type GrpoStageConfig } from './grpo_stage';
import { runIsDone } from './run';
import { resolvePretrainConfig, runPretrain, type PretrainConfig } from './stage0';
import { evaluationSplits } from './stage_io';
import { scoreTrivialSplits } from './trivial';

export interface MainJobOptions {
  /** Model and training sizes (quick: the default, sized for 30 minutes on two cores). */
  preset: PresetName;
  seed: number;
  /** Dataset root; generated here at the preset's scale when it holds no benchmark. */
  dataRoot: string;
  /** Folder of the job's run folders and summary. */
  out: string;
  /** Config deltas of its runs (`npm start -- --config FILE`; checked by `checkMainJobConfig`); none: the preset's defaults. */
  config?: MainJobConfig;
  quiet?: boolean;
}

/** The runs of the main job that take a config delta, in the order they train. */
export const MAIN_JOB_RUNS = ['pretrain', 'align', 'grpo', 'lisa', 'segzero'] as const;

/**
 * The main job's config (`npm start -- --config FILE`): one config delta per run, the same
 * deltas `lens pretrain | align | grpo | train-baseline --config` take, e.g.
 * `{"pretrain": {"stage0b": {"steps": 7000}}, "grpo": {"lr": 1e-5}}`. A run left out
 * trains on the preset's defaults.
 */
export interface MainJobConfig {
  pretrain?: ConfigDelta<PretrainConfig>;
  align?: ConfigDelta<AlignConfig>;
  grpo?: ConfigDelta<GrpoStageConfig>;
  lisa?: ConfigDelta<LisaTrainConfig>;
  segzero?: ConfigDelta<SegZeroTrainConfig>;
}

/** Every run's config, the preset's defaults with the job's delta applied. */
export interface ResolvedMainJobConfig {
  pretrain: PretrainConfig;
  align: AlignConfig;
  grpo: GrpoStageConfig;
  lisa: LisaTrainConfig;
  segzero: SegZeroTrainConfig;
}

/** Each run's resolved config (each run's own rules check its delta; errors name `where` and the run). */
export function resolveMainJobConfig(preset: PresetName, config: MainJobConfig, where = 'main job config'): ResolvedMainJobConfig {
  return {
    pretrain: resolvePretrainConfig(preset, config.pretrain ?? {}, `${where}, pretrain`),
    align: resolveAlignConfig(preset, config.align ?? {}, `${where}, align`),
    grpo: resolveGrpoStageConfig(preset, config.grpo ?? {}, `${where}, grpo`),
    lisa: resolveLisaConfig(preset, config.lisa ?? {}, `${where}, lisa`),
    segzero: resolveSegZeroConfig(preset, config.segzero ?? {}, `${where}, segzero`),
  };
}

/**
 * Checks a main-job config against every run's own rules before anything trains (a typo in
 * `segzero` would otherwise surface after stage 2). `evalLimit` is the job's own: align and
 * grpo skip their evaluation (0), since the job scores every split of every run itself.
 */
export function checkMainJobConfig(preset: PresetName, config: unknown, where = 'main job config'): MainJobConfig {
  return checkedMainJob(preset, config, where).config;
}

/** `checkMainJobConfig`, also returning the resolved configs it checked. */
function checkedMainJob(preset: PresetName, config: unknown, where: string): { config: MainJobConfig; resolved: ResolvedMainJobConfig } {
  if (!isPlainObject(config)) throw new ConfigError(`${where}: expected an object of config deltas keyed by run (${MAIN_JOB_RUNS.join(', ')}), got ${JSON.stringify(config)}`);
  for (const k of Object.keys(config)) {
    if (!(MAIN_JOB_RUNS as readonly string[]).includes(k)) throw new ConfigError(`${where}: unknown run '${k}'; expected one of: ${MAIN_JOB_RUNS.join(', ')}`);
  }
  for (const k of ['align', 'grpo'] as const) {
    const d = config[k];
    if (isPlainObject(d) && 'evalLimit' in d) throw new ConfigError(`${where}: '${k}.evalLimit' is set by the main job (0: it scores every split itself); leave it out`);
  }
  return { config: config as MainJobConfig, resolved: resolveMainJobConfig(preset, config as MainJobConfig, where) };
}

/** `<out>/job.json`: the job's preset, seed and config deltas, and every run's resolved config. */
interface JobRecord {
  preset: PresetName;
  seed: number;
  config: MainJobConfig;
  resolved: ResolvedMainJobConfig;
}

/** Leaves of a JSON value by dotted path (`grpo.lr`), each as JSON text; key order does not matter. */
function leaves(v: unknown, path = '', out = new Map<string, string>()): Map<string, string> {
  if (isPlainObject(v)) for (const [k, x] of Object.entries(v)) leaves(x, path ? `${path}.${k}` : k, out);
  else out.set(path, JSON.stringify(v));
  return out;
}

/**
 * `<out>/job.json` records what the job trains. A rerun into the same folder must be the same
 * job, or it would skip finished runs of another one and print their table as this one's:
 * the same preset, seed and resolved configs, so a changed default (a newer lens-ts) counts,
 * and a delta that only restates a default or orders its keys otherwise does not. A folder
 * that holds runs without a record of their resolved configs is refused.
 */
function claimJobFolder(out: string, job: JobRecord): void {
  const path = join(out, 'job.json');
  const elsewhere = 'choose another folder (npm start -- --out DIR) or move it away';
  if (!existsSync(path)) {
    const runs = MAIN_JOB_RUNS.filter((r) => existsSync(join(out, r)));
    if (runs.length > 0) throw new ConfigError(`${out}: holds runs (${runs.join(', ')}) but no job.json saying which job trained them; ${elsewhere}`);
    mkdirSync(out, { recursive: true });
    writeJsonAtomic(path, job);
    return;
  }
  let had: Partial<JobRecord>;
  try {
    had = JSON.parse(readFileSync(path, 'utf8')) as Partial<JobRecord>;
  } catch (e) {
    throw new ConfigError(`${path}: unreadable job record (${(e as Error).message}); ${elsewhere}`);
  }
  if (!isPlainObject(had) || !isPlainObject(had.resolved)) {
    throw new ConfigError(`${path}: records no resolved configs (written by an older lens-ts, whose defaults may differ); ${elsewhere}`);
  }
  const there = leaves({ preset: had.preset, seed: had.seed, ...had.resolved });
  const here = leaves({ preset: job.preset, seed: job.seed, ...job.resolved });
  const diff = [...new Set([...there.keys(), ...here.keys()])].filter((k) => there.get(k) !== here.get(k));
  if (diff.length > 0) {
    const shown = diff.slice(0, 6).map((k) => `${k} ${there.get(k) ?? '(none)'} there, ${here.get(k) ?? '(none)'} here`);
    throw new ConfigError(`${path}: this folder holds another main job (${shown.join('; ')}${diff.length > 6 ? `; ${diff.length - 6} more` : ''}); ${elsewhere}`);
  }
}

/**
 * Claims `out` for the main job of (preset, seed, config) as `runMainJob` does: writes its
 * job.json, or checks the one there. For code that trains the main job's runs into its folder
 * one by one (the notebooks' folder, notebook_runs.ts), so that the job run there later adopts them.
 */
export function claimMainJobFolder(out: string, preset: PresetName, seed: number, config: MainJobConfig = {}): void {
  claimJobFolder(out, { preset, seed, ...checkedMainJob(preset, config, 'main job config') });
}

/** `npm start`'s folder for a preset: results/main (quick, the default) or results/main-<preset>. */
export function mainJobDir(preset: PresetName, root = projectRoot()): string {
  return join(root, 'results', preset === 'quick' ? 'main' : `main-${preset}`);
}

/** The models of the summary table, in its column order. */
export const MAIN_JOB_MODELS = ['lens-stage1', 'lens-stage2', 'lisa', 'segzero', 'largest', 'random'] as const;

/**
 * Runs `train` into `dir` unless a finished run is there; resumes an unfinished one.
 * The pretrain folder holds two sub-runs (0a, 0b) and is finished once its hand-over
 * model is written, which happens after 0b finishes.
 */
async function step(name: string, dir: string, quiet: boolean | undefined, train: (resume: boolean) => Promise<unknown>): Promise<void> {
  const handOver = existsSync(join(dir, '0a'));
  if (handOver ? existsSync(join(dir, 'model.safetensors')) : runIsDone(dir)) {
    if (!quiet) console.log(`[main] ${name}: done already (${dir})`);
    return;
  }
  const resume = existsSync(join(dir, 'run.json')) || handOver;
  if (!quiet) console.log(`[main] ${name}${resume ? ' (resuming)' : ''} -> ${dir}`);
  await train(resume);
}

/** Evaluation rows of a run, computed once and kept in its eval.arrow (beside the predictions they score). */
async function evaluated(dir: string, dataRoot: string, preset: PresetName, quiet?: boolean): Promise<EvalRow[]> {
  const cached = join(dir, 'eval.arrow');
  if (existsSync(cached) && existsSync(join(dir, 'predictions')) && runIsDone(dir)) return readArrow(cached) as unknown as EvalRow[];
  return evaluateRun(dir, { dataRoot, preset, quiet });
}

/** Per split, gIoU and cIoU of every model (percent), one row per split. */
export function summaryRows(byModel: Record<string, ReadonlyArray<{ split: string; giou: number; ciou: number }>>, splits: readonly string[]): Row[] {
  return splits.map((split) => {
    const row: Row = { split };
    for (const m of MAIN_JOB_MODELS) {
      const r = byModel[m]?.find((x) => x.split === split);
      row[`${m}_giou`] = r ? 100 * r.giou : null;
      row[`${m}_ciou`] = r ? 100 * r.ciou : null;
    }
    return row;
  });
}

/**
 * Stage 2's scorings on its training prompts (grpo_stage.ts, scoreEvery) as one line: the
 * stage-1 model's score, then the policy's after each scored step; '' when it scored nothing.
 * @example scoreLine(rows) // "stage 2, mean reward on its training prompts (fixed draws): 1.467 (stage 1); 1.442 after 10, 1.509 after 20 steps"
 */
export function scoreLine(steps: readonly Row[]): string {
  const { ref, after, reward } = scoreCurve(steps);
  if (after.length === 0) return '';
  const points = after.map((n, i) => `${reward[i]!.toFixed(3)} after ${n}`).join(', ');
  return `stage 2, mean reward on its training prompts (fixed draws): ${ref !== null ? `${ref.toFixed(3)} (stage 1); ` : ''}${points} steps`;
}

/** The summary as a Markdown table (gIoU / cIoU per model, percent). */
export function summaryMarkdown(rows: readonly Row[]): string {
  const f = (v: unknown) => (typeof v === 'number' && Number.isFinite(v) ? v.toFixed(1) : 'N/A');
  const head = `| split | ${MAIN_JOB_MODELS.join(' | ')} |`;
  const rule = `|---|${MAIN_JOB_MODELS.map(() => '---').join('|')}|`;
  const body = rows.map((r) => `| ${r.split} | ${MAIN_JOB_MODELS.map((m) => `${f(r[`${m}_giou`])} / ${f(r[`${m}_ciou`])}`).join(' | ')} |`);
  return [head, rule, ...body].join('\n');
}

export async function runMainJob(opts: MainJobOptions): Promise<{ rows: Row[]; seconds: number }> {
  const t0 = performance.now();
  const { preset, seed, dataRoot, out, quiet } = opts;
  const config = opts.config ?? {};
  claimMainJobFolder(out, preset, seed, config);
  const scale = preset === 'paper' ? 'paper' : preset === 'tiny' ? 'tiny' : 'quick';
  await ensureBenchmark(dataRoot, { scale, seed: 0 }, { quiet });
  const dirs = {
    pretrain: join(out, 'pretrain'),
    align: join(out, 'align'),
    grpo: join(out, 'grpo'),
    lisa: join(out, 'lisa'),
    segzero: join(out, 'segzero'),
  };
  const common = { dataRoot, preset, seed, quiet };
  // Stage runs skip their own evaluation (evalLimit 0): the job scores every run below, once.
  await step('stage 0 (pretrain)', dirs.pretrain, quiet, (resume) => runPretrain({ ...common, out: dirs.pretrain, resume, config: config.pretrain }));
  await step('stage 1 (align)', dirs.align, quiet, (resume) => runAlign({ ...common, out: dirs.align, resume, from: dirs.pretrain, config: { ...config.align, evalLimit: 0 } }));
  await step('stage 2 (grpo)', dirs.grpo, quiet, (resume) => runGrpo({ ...common, out: dirs.grpo, resume, from: dirs.align, config: { ...config.grpo, evalLimit: 0 } }));
  await step('baseline lisa', dirs.lisa, quiet, (resume) => runBaseline('lisa', { ...common, out: dirs.lisa, resume, from: dirs.pretrain, config: config.lisa }));
  await step('baseline segzero', dirs.segzero, quiet, (resume) => runBaseline('segzero', { ...common, out: dirs.segzero, resume, from: dirs.pretrain, config: config.segzero }));

  const splits = evaluationSplits();
  const byModel: Record<string, ReadonlyArray<{ split: string; giou: number; ciou: number }>> = {
    'lens-stage1': await evaluated(dirs.align, dataRoot, preset, quiet),
    'lens-stage2': await evaluated(dirs.grpo, dataRoot, preset, quiet),
    lisa: await evaluated(dirs.lisa, dataRoot, preset, quiet),
    segzero: await evaluated(dirs.segzero, dataRoot, preset, quiet),
  };
  const trivial = await scoreTrivialSplits(dataRoot, splits, { seed, maxPerSplit: resolveEvaluateConfig(preset).maxPerSplit });
  byModel.largest = trivial.filter((t) => t.predictor === 'largest' && t.available);
  byModel.random = trivial.filter((t) => t.predictor === 'random' && t.available);

  const rows = summaryRows(byModel, splits);
  writeArrow(join(out, 'summary.arrow'), rows);
  const seconds = (performance.now() - t0) / 1000;
  const score = scoreLine(readArrow(join(dirs.grpo, 'steps.arrow')));
  // stage 2 against stage 1 on the same sentences: the difference, and whether the evaluation can tell it from 0
  const gain = pairedCiouDifference(await runSentenceCounts(dirs.align, dataRoot, splits), await runSentenceCounts(dirs.grpo, dataRoot, splits));
  const notes = [score, pairedLine('stage 2 - stage 1', gain)].filter(Boolean).map((l) => `\n${l}.\n`);
  const md = `${summaryMarkdown(rows)}\n\ngIoU / cIoU (%) per split; preset ${preset}, seed ${seed}; ${(seconds / 60).toFixed(1)} min this invocation.\n${notes.join('')}`;
  writeFileAtomic(join(out, 'summary.md'), md);
  if (!quiet) console.log(`\n${md}`);
  return { rows, seconds };
}
