/**
 * The one training loop every stage uses (nanoGPT `train.py`, read top to bottom):
 * per step, prepare a batch outside gradients (data, rollouts), then for each update
 * the lr from a pure function of the step, the gradients, a NaN / Inf check, global
 * norm clipping, AdamW, dispose, one log row. Checkpoints every `checkpointEvery`
 * steps; a run with a checkpoint resumes from it and ends with the same weights as
 * an uninterrupted run on the same backend (randomness is `rng.fork('step-<n>')`).
 */
import * as tf from '@tensorflow/tfjs-core';
import { Rng } from '../random';
import type { Module } from '../model/nn';
import { Progress } from '../util/progress';
import { AdamW, clipByGlobalNorm, type AdamWConfig } from './optim';
import type { Run } from './run';
import { lrAt, type Schedule } from './schedule';

/** What a stage supplies to the loop. B is its batch type. */
export interface StepPlan<B> {
  /** Builds step `step`'s batch outside any gradient tape (sampling uses `rng`). */
  prepare(step: number, rng: Rng): B | Promise<B>;
  /** The loss of one update on `batch` (called inside the gradient tape); extra scalars are logged. */
  loss(batch: B, update: number): { loss: tf.Scalar; logs?: Record<string, tf.Scalar> };
  /** Host-side figures of the batch to log (rewards, format rate, ...). */
  hostLogs?(batch: B): Record<string, number>;
  /** Frees the batch's tensors. */
  dispose(batch: B): void;
  /** Updates per batch (GRPO's mu); default 1. */
  updatesPerBatch?: number;
  /** Figures of the model after `steps` steps (an evaluation every so often), logged on the last step's row. */
  afterStep?(steps: number): Record<string, number>;
}

export interface LoopOptions {
  run: Run;
  /** The whole model (checkpoints hold all of it). */
  model: Module;
  /** Named trainable parameters (a stage's trainable set). */
  params: Array<[string, tf.Variable]>;
  totalSteps: number;
  schedule: Schedule;
  /** Global-norm clip (official: 1.0); Infinity = off. */
  gradClip: number;
  adamw?: Partial<AdamWConfig>;
  checkpointEvery: number;
  seed: number;
  /** Progress-bar label. */
  label: string;
  quiet?: boolean;
  /** Stops after this step as if killed (tests of resume). */
  stopAfter?: number;
  /** A parameter's own multiple of the scheduled lr, by name (parameter groups; default 1 for all). */
  lrScale?: (name: string) => number;
}

/** A non-finite loss or gradient: the run stops, its last checkpoint stays good. */
export class NonFiniteError extends Error {
  override name = 'NonFiniteError';
}

/** Thrown by `stopAfter` (tests). */
export class InterruptedRun extends Error {
  override name = 'InterruptedRun';
}

export async function trainLoop<B>(opts: LoopOptions, plan: StepPlan<B>): Promise<{ stepsRun: number; resumedFrom: number | null }> {
  const { run, model, params, totalSteps, schedule, gradClip, checkpointEvery, seed } = opts;
  const byName = new Map(params);
  const nameOf = new Map(params.map(([n, v]) => [v.name, n] as const));
  const vars = params.map(([, v]) => v);
  const opt = new AdamW(byName, opts.adamw);
  const mu = plan.updatesPerBatch ?? 1;
  const root = new Rng(seed);

  let start = 0;
  let resumedFrom: number | null = null;
  if (run.checkpointStep() !== null) {
    const { step, extra, metadata } = run.loadCheckpoint(model);
    const optim = Object.fromEntries(Object.entries(extra).filter(([k]) => k.startsWith('optim.')).map(([k, t]) => [k.slice('optim.'.length), t]));
    opt.loadState(Number(metadata.optimStep ?? 0), optim);
    tf.dispose(Object.values(extra));
    start = step;
    resumedFrom = step;
  }

  const save = (next: number) => {
    const st = opt.state();
    const extra = Object.fromEntries(Object.entries(st.tensors).map(([k, t]) => [`optim.${k}`, t]));
    run.saveCheckpoint(next, model, extra, { optimStep: String(st.step) });
  };
  const lastGood = () => (run.checkpointStep() === null ? 'no checkpoint yet' : `checkpoint ${run.ckptPath} (step ${run.checkpointStep()})`);

  const bar = new Progress({ label: opts.label, total: totalSteps - start, unit: 'step', quiet: opts.quiet });
  try {
    for (let step = start; step < totalSteps; step++) {
      const batch = await plan.prepare(step, root.fork(`step-${step}`));
      const row: Record<string, number> = { step };
      try {
        for (let u = 0; u < mu; u++) {
          const lr = lrAt(step * mu + u, schedule);
          const kept: Record<string, tf.Scalar> = {};
          const { value, grads } = tf.variableGrads(() => {
            const out = plan.loss(batch, u);
            for (const [k, t] of Object.entries(out.logs ?? {})) kept[k] = tf.keep(t);
            return out.loss;
          }, vars);
          const named: Record<string, tf.Tensor> = {};
          for (const [vn, g] of Object.entries(grads)) named[nameOf.get(vn)!] = g;
          const loss = value.dataSync()[0]!;
          const { grads: clipped, norm } = clipByGlobalNorm(named, gradClip);
          const logs = Object.fromEntries(Object.entries(kept).map(([k, t]) => [k, t.dataSync()[0]!]));
          tf.dispose([value, ...Object.values(grads), ...Object.values(kept)]);
          if (!Number.isFinite(loss) || !Number.isFinite(norm)) {
            tf.dispose(Object.values(clipped));
            run.log({ ...row, loss, gradNorm: norm, lr });
            run.flushLogs();
            throw new NonFiniteError(
              `step ${step}: ${!Number.isFinite(loss) ? `loss is ${loss}` : `gradient norm is ${norm}`}; nothing was applied and the last good state is ${lastGood()}. ` +
                'Lower the learning rate or check the inputs, then rerun with --resume.',
            );
          }
          opt.apply(clipped, lr, opts.lrScale);
          tf.dispose(Object.values(clipped));
          if (u === 0) Object.assign(row, { loss, gradNorm: norm, lr }, logs);
        }
        Object.assign(row, plan.hostLogs?.(batch) ?? {});
      } finally {
        plan.dispose(batch);
      }
      Object.assign(row, plan.afterStep?.(step + 1) ?? {});
      run.log(row);
      bar.tick(1, `loss ${row.loss!.toFixed(4)}`);
      const next = step + 1;
      if (next % checkpointEvery === 0 || next === totalSteps) save(next);
      if (opts.stopAfter !== undefined && next >= opts.stopAfter && next < totalSteps) throw new InterruptedRun(`stopped after step ${next} (stopAfter)`);
    }
  } catch (e) {
    if (!(e instanceof InterruptedRun)) run.fail((e as Error).message);
    throw e;
  } finally {
    opt.dispose();
  }
  bar.finish();
  return { stepsRun: totalSteps - start, resumedFrom };
}

/** The settings of a stage-0 style run (`stage0Loop`). */
export interface StageLoopSettings {
  /** Optimiser steps. */
  steps: number;
  /** Peak learning rate, reached after the warm-up, then cosine to 10% of it. */
  lr: number;
  /** Linear warm-up steps. */
  warmupSteps: number;
  /** Global-norm gradient clip. */
  gradClip: number;
  /** Checkpoint every this many steps (what a killed run loses at most). */
  checkpointEvery: number;
}

/** The loop of the stage-0 sub-stages: linear warm-up, cosine to 10% of lr, the config's clip and checkpoint cadence. */
export function stage0Loop(
  run: Run,
  model: Module,
  params: Array<[string, tf.Variable]>,
  cfg: StageLoopSettings,
  opts: { seed: number; quiet?: boolean; stopAfter?: number },
  label: string,
): LoopOptions {
  return {
    run,
    model,
    params,
    totalSteps: cfg.steps,
    schedule: { kind: 'cosine', lr: cfg.lr, warmupSteps: cfg.warmupSteps, totalSteps: cfg.steps, minRatio: 0.1 },
    gradClip: cfg.gradClip,
    checkpointEvery: cfg.checkpointEvery,
    seed: opts.seed,
    label,
    quiet: opts.quiet,
    stopAfter: opts.stopAfter,
  };
}
