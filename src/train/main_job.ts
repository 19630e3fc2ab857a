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
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { ensureBenchmark } from '../data/generate/benchmark';
import type { PresetName } from '../model/presets';
import { readArrow, writeArrow, type Row } from '../util/arrow';
import { projectRoot } from '../util/paths';
import { writeFileAtomic } from '../util/fs';
import { runAlign } from './align';
import { runBaseline } from './baselines';
import { evaluateRun, resolveEvaluateConfig, type EvalRow } from './evaluate_run';
import { runGrpo, scoreCurve } from './grpo_stage';
import { runIsDone } from './run';
import { runPretrain } from './stage0';
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
  quiet?: boolean;
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

/** Evaluation rows of a run, computed once and kept in its eval.arrow. */
async function evaluated(dir: string, dataRoot: string, preset: PresetName, quiet?: boolean): Promise<EvalRow[]> {
  const cached = join(dir, 'eval.arrow');
  if (existsSync(cached) && runIsDone(dir)) return readArrow(cached) as unknown as EvalRow[];
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
  await step('stage 0 (pretrain)', dirs.pretrain, quiet, (resume) => runPretrain({ ...common, out: dirs.pretrain, resume }));
  await step('stage 1 (align)', dirs.align, quiet, (resume) => runAlign({ ...common, out: dirs.align, resume, from: dirs.pretrain, config: { evalLimit: 0 } }));
  await step('stage 2 (grpo)', dirs.grpo, quiet, (resume) => runGrpo({ ...common, out: dirs.grpo, resume, from: dirs.align, config: { evalLimit: 0 } }));
  await step('baseline lisa', dirs.lisa, quiet, (resume) => runBaseline('lisa', { ...common, out: dirs.lisa, resume, from: dirs.pretrain }));
  await step('baseline segzero', dirs.segzero, quiet, (resume) => runBaseline('segzero', { ...common, out: dirs.segzero, resume, from: dirs.pretrain }));

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
  const md = `${summaryMarkdown(rows)}\n\ngIoU / cIoU (%) per split; preset ${preset}, seed ${seed}; ${(seconds / 60).toFixed(1)} min this invocation.\n${score ? `\n${score}.\n` : ''}`;
  writeFileAtomic(join(out, 'summary.md'), md);
  if (!quiet) console.log(`\n${md}`);
  return { rows, seconds };
}
