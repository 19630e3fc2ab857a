import { mkdirSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { ensureBenchmark } from '../../src/data/generate/benchmark';
import { claimMainJobFolder } from '../../src/train/main_job';
import { ensureMainSummary, ensureStageRun, notebookMainDir, readRunLogs, stageFinished } from '../../src/train/notebook_runs';
import { useBackend } from '../backend-util';
import { writeArrow } from '../../src/util/arrow';

/** A run folder as a finished (or not) stage leaves it; no real model inside (nothing loads it here). */
function fakeRun(dir: string, { status = 'done', model = true }: { status?: string; model?: boolean } = {}): void {
  mkdirSync(dir, { recursive: true });
  writeFileSync(join(dir, 'run.json'), JSON.stringify({ id: 'x', kind: 'align', status, config: { grpo: { steps: 3 } } }));
  if (model) {
    writeFileSync(join(dir, 'model.safetensors'), '');
    writeFileSync(join(dir, 'tokenizer.json'), '{}');
  }
}

function fakePretrain(dir: string, { sub0b = 'done' }: { sub0b?: string } = {}): void {
  fakeRun(join(dir, '0a'));
  fakeRun(join(dir, '0b'), { status: sub0b });
  writeFileSync(join(dir, 'model.safetensors'), '');
  writeFileSync(join(dir, 'tokenizer.json'), '{}');
}

describe('stageFinished', () => {
  it('needs the hand-over files and a done run (pretrain: both sub-runs)', () => {
    const root = mkdtempSync(join(tmpdir(), 'lens-nbruns-'));
    fakeRun(join(root, 'a'));
    fakeRun(join(root, 'b'), { status: 'running' });
    fakeRun(join(root, 'c'), { model: false });
    fakePretrain(join(root, 'p'));
    fakePretrain(join(root, 'q'), { sub0b: 'failed' });
    expect(stageFinished('align', join(root, 'a'))).toBe(true);
    expect(stageFinished('grpo', join(root, 'b'))).toBe(false);
    expect(stageFinished('align', join(root, 'c'))).toBe(false);
    expect(stageFinished('pretrain', join(root, 'p'))).toBe(true);
    expect(stageFinished('pretrain', join(root, 'q'))).toBe(false);
    expect(stageFinished('align', join(root, 'none'))).toBe(false);
  });
});

describe('ensureStageRun (reuse, no training)', () => {
  it("reuses npm start's finished run under quick, the notebooks' own otherwise", async () => {
    const root = mkdtempSync(join(tmpdir(), 'lens-nbruns-'));
    fakeRun(join(root, 'results', 'main', 'align'));
    fakeRun(join(root, notebookMainDir('tiny'), 'align'));
    const q = await ensureStageRun('align', { preset: 'quick', dataRoot: 'unused', root, quiet: true });
    expect(q).toEqual({ stage: 'align', dir: join(root, 'results', 'main', 'align'), source: 'main', trained: false });
    const t = await ensureStageRun('align', { preset: 'tiny', dataRoot: 'unused', root, quiet: true });
    expect(t).toEqual({ stage: 'align', dir: join(root, 'results', 'notebooks', 'tiny', 'main', 'align'), source: 'notebook', trained: false });
  });

  it('falls back to the notebooks folder under quick when the main run is unfinished', async () => {
    const root = mkdtempSync(join(tmpdir(), 'lens-nbruns-'));
    fakeRun(join(root, 'results', 'main', 'grpo'), { status: 'running' });
    fakeRun(join(root, notebookMainDir('quick'), 'grpo'));
    const r = await ensureStageRun('grpo', { preset: 'quick', dataRoot: 'unused', root, quiet: true });
    expect(r.dir).toBe(join(root, 'results', 'notebooks', 'quick', 'main', 'grpo'));
    expect(r.source).toBe('notebook');
  });
});

describe('ensureStageRun (training)', () => {
  it("claims the notebooks' folder for the main job before training into it, so notebook 08's job adopts the runs", async () => {
    await useBackend('wasm');
    const root = mkdtempSync(join(tmpdir(), 'lens-nbruns-'));
    const dataRoot = join(root, 'data');
    await ensureBenchmark(dataRoot, { scale: 'tiny', seed: 0 }, { quiet: true });
    const r = await ensureStageRun('pretrain', { preset: 'tiny', dataRoot, root, quiet: true });
    expect(r.trained).toBe(true);
    const main = join(root, notebookMainDir('tiny'));
    expect(JSON.parse(readFileSync(join(main, 'job.json'), 'utf8'))).toMatchObject({ preset: 'tiny', seed: 0, config: {} });
    expect(() => claimMainJobFolder(main, 'tiny', 0)).not.toThrow(); // the job notebook 08 runs there
    expect(() => claimMainJobFolder(main, 'tiny', 1)).toThrow(/holds another main job \(seed 0 there, 1 here\)/);
  });
});

describe('ensureMainSummary (reuse, no training)', () => {
  it("reads npm start's summary under quick, the notebooks' one under tiny", async () => {
    const root = mkdtempSync(join(tmpdir(), 'lens-nbruns-'));
    mkdirSync(join(root, 'results', 'main'), { recursive: true });
    writeArrow(join(root, 'results', 'main', 'summary.arrow'), [{ split: 'refcoco/val', 'lens-stage2_ciou': 12.5 }]);
    mkdirSync(join(root, notebookMainDir('tiny')), { recursive: true });
    writeArrow(join(root, notebookMainDir('tiny'), 'summary.arrow'), [{ split: 'refcoco/val', 'lens-stage2_ciou': 3 }]);
    const q = await ensureMainSummary({ preset: 'quick', dataRoot: 'unused', root, quiet: true });
    expect(q).toEqual({ rows: [{ split: 'refcoco/val', 'lens-stage2_ciou': 12.5 }], path: join(root, 'results', 'main', 'summary.arrow'), ran: false });
    const t = await ensureMainSummary({ preset: 'tiny', dataRoot: 'unused', root, quiet: true });
    expect(t.rows[0]!['lens-stage2_ciou']).toBe(3);
    expect(t.ran).toBe(false);
  });
});

describe('readRunLogs', () => {
  it('reads run.json, steps and metrics ([] when absent), and names a folder without run.json', () => {
    const root = mkdtempSync(join(tmpdir(), 'lens-nbruns-'));
    fakeRun(join(root, 'r'));
    writeArrow(join(root, 'r', 'steps.arrow'), [{ step: 0, loss: 1 }, { step: 1, loss: 0.5 }]);
    const logs = readRunLogs(join(root, 'r'));
    expect(logs.record.status).toBe('done');
    expect(logs.steps.map((s) => s.loss)).toEqual([1, 0.5]);
    expect(logs.metrics).toEqual([]);
    expect(() => readRunLogs(join(root, 'nothing'))).toThrow(/nothing: no run.json here; expected a run folder/);
  });
});
