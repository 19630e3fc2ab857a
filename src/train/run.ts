/**
 * One folder per run (`results/runs/<id>/`), nanoGPT-style: the resolved config,
 * seed, backend and code version in run.json; per-step logs and final metrics as
 * Arrow; one checkpoint (model + optimiser state + step) rewritten atomically, so
 * a killed run resumes from its last checkpoint and never finds a torn file.
 */
import { execFileSync } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import * as tf from '@tensorflow/tfjs-core';
import type { BackendInfo } from '../backend';
import type { Module } from '../model/nn';
import { loadModule, moduleTensors, readSafetensors, writeSafetensors, type HostTensor } from '../util/safetensors';
import { readArrow, writeArrow, type Row } from '../util/arrow';
import { writeJsonAtomic } from '../util/fs';
import { projectRoot } from '../util/paths';

export type RunStatus = 'running' | 'done' | 'failed';

/** What run.json records. */
export interface RunRecord {
  id: string;
  /** The job, e.g. `align` or `grpo`. */
  kind: string;
  seed: number;
  backend: Pick<BackendInfo, 'name' | 'detail' | 'chosenBy'>;
  /** `git describe --always --dirty` of the checkout, or 'unknown'. */
  codeVersion: string;
  startedAt: string;
  resumedAt: string[];
  status: RunStatus;
  /** Why a failed run stopped. */
  error?: string;
  /** The fully resolved config (every default filled). */
  config: unknown;
}

/** The checkout's version for run records. */
export function codeVersion(): string {
  try {
    return execFileSync('git', ['describe', '--always', '--dirty'], { cwd: projectRoot(), encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] }).trim();
  } catch {
    return 'unknown';
  }
}

/**
 * True when `dir` holds a run.json whose status is 'done' (and, given `kind`, whose kind
 * is that): the test every "skip what is finished" rerun makes. An unreadable record is
 * not done.
 */
export function runIsDone(dir: string, kind?: string): boolean {
  const rec = join(dir, 'run.json');
  if (!existsSync(rec)) return false;
  try {
    const r = JSON.parse(readFileSync(rec, 'utf8')) as Partial<RunRecord>;
    return r.status === 'done' && (kind === undefined || r.kind === kind);
  } catch {
    return false;
  }
}

/** Where runs live unless told otherwise. */
export function defaultRunsDir(): string {
  return join(projectRoot(), 'results', 'runs');
}

export class Run {
  readonly record: RunRecord;
  private rows: Row[] = [];

  private constructor(readonly dir: string, record: RunRecord) {
    this.record = record;
  }

  get ckptPath(): string {
    return join(this.dir, 'ckpt.safetensors');
  }

  get stepsPath(): string {
    return join(this.dir, 'steps.arrow');
  }

  /**
   * Opens `dir`: a new run (refusing a folder that already holds one unless
   * `resume`), or the same run again with `resume`, whose config must equal the
   * saved one (a resumed run that changed its config would not be the same run).
   */
  static open(dir: string, init: { kind: string; seed: number; backend: BackendInfo; config: unknown; resume: boolean }): Run {
    const recPath = join(dir, 'run.json');
    if (existsSync(recPath)) {
      if (!init.resume) throw new Error(`${dir} already holds a run; pass --resume to continue it or choose another --out`);
      const old = JSON.parse(readFileSync(recPath, 'utf8')) as RunRecord;
      const a = JSON.stringify(old.config);
      const b = JSON.stringify(init.config);
      if (a !== b) throw new Error(`${recPath}: --resume with a different config than the run was started with (saved ${a}, now ${b})`);
      if (old.kind !== init.kind) throw new Error(`${recPath}: run is a '${old.kind}' run, not '${init.kind}'`);
      if (old.seed !== init.seed) throw new Error(`${recPath}: --resume with seed ${init.seed}, but the run was started with seed ${old.seed}; pass --seed ${old.seed} or choose another --out`);
      const run = new Run(dir, { ...old, status: 'running', resumedAt: [...old.resumedAt, new Date().toISOString()] });
      delete run.record.error;
      if (existsSync(run.stepsPath)) run.rows = readArrow(run.stepsPath);
      run.saveRecord();
      return run;
    }
    mkdirSync(dir, { recursive: true });
    const run = new Run(dir, {
      id: dir.split(/[\\/]/).pop() ?? dir,
      kind: init.kind,
      seed: init.seed,
      backend: { name: init.backend.name, detail: init.backend.detail, chosenBy: init.backend.chosenBy },
      codeVersion: codeVersion(),
      startedAt: new Date().toISOString(),
      resumedAt: [],
      status: 'running',
      config: init.config,
    });
    run.saveRecord();
    return run;
  }

  saveRecord(): void {
    writeJsonAtomic(join(this.dir, 'run.json'), this.record);
  }

  /** Records one step's figures (kept in memory; written with each checkpoint and at the end). */
  log(row: Row): void {
    this.rows.push(row);
  }

  /** The logged rows so far. */
  steps(): readonly Row[] {
    return this.rows;
  }

  flushLogs(): void {
    writeArrow(this.stepsPath, this.rows);
  }

  /**
   * Writes the checkpoint: every model parameter under `model.`, extra tensors
   * (optimiser state) under their own names, and `step` in the metadata; then the logs.
   */
  saveCheckpoint(step: number, model: Module, extra: Record<string, tf.Tensor> = {}, metadata: Record<string, string> = {}): void {
    const tensors = new Map<string, HostTensor>();
    for (const [name, t] of moduleTensors(model)) tensors.set(`model.${name}`, t);
    for (const [name, t] of Object.entries(extra)) {
      tensors.set(name, { dtype: t.dtype as 'float32' | 'int32', shape: [...t.shape], data: t.dataSync() as Float32Array | Int32Array });
    }
    writeSafetensors(this.ckptPath, tensors, { ...metadata, step: String(step) });
    this.rows = this.rows.filter((r) => typeof r.step !== 'number' || r.step < step);
    this.flushLogs();
  }

  /** Checkpointed step (the next step to run), or null when there is none. */
  checkpointStep(): number | null {
    if (!existsSync(this.ckptPath)) return null;
    return Number(readSafetensors(this.ckptPath).metadata.step);
  }

  /**
   * Loads the checkpoint into `model` (names, shapes and dtypes checked) and returns
   * its step, the non-model tensors (the caller disposes them) and the metadata.
   */
  loadCheckpoint(model: Module): { step: number; extra: Record<string, tf.Tensor>; metadata: Record<string, string> } {
    loadModule(model, this.ckptPath, { prefix: 'model.' });
    const content = readSafetensors(this.ckptPath);
    const extra: Record<string, tf.Tensor> = {};
    for (const [name, t] of content.tensors) if (!name.startsWith('model.')) extra[name] = tf.tensor(t.data, t.shape, t.dtype);
    const step = Number(content.metadata.step);
    if (!Number.isInteger(step) || step < 0) throw new Error(`${this.ckptPath}: metadata 'step' must be an integer >= 0, got ${content.metadata.step}`);
    // Steps logged after the checkpoint will run again.
    this.rows = this.rows.filter((r) => typeof r.step !== 'number' || r.step < step);
    return { step, extra, metadata: content.metadata };
  }

  /** Marks the run finished, writing logs, final metrics (Arrow) and run.json. */
  finish(metrics: Row[] = []): void {
    this.flushLogs();
    if (metrics.length > 0) writeArrow(join(this.dir, 'metrics.arrow'), metrics);
    this.record.status = 'done';
    this.saveRecord();
  }

  /** Marks the run failed with `error` (logs up to the last checkpoint stay). */
  fail(error: string): void {
    this.record.status = 'failed';
    this.record.error = error;
    this.saveRecord();
  }
}
