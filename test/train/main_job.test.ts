import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { useBackend } from '../backend-util';
import { checkMainJobConfig, runMainJob, scoreLine, summaryMarkdown } from '../../src/train/main_job';
import { evaluationSplits } from '../../src/train/stage_io';
import { readArrow, type Row } from '../../src/util/arrow';

describe('the main job (tiny preset)', () => {
  it('runs every stage and baseline, scores every split, and a second run skips the finished stages', async () => {
    await useBackend('wasm');
    const root = mkdtempSync(join(tmpdir(), 'lens-main-'));
    const opts = { preset: 'tiny' as const, seed: 0, dataRoot: join(root, 'data'), out: join(root, 'out'), config: { segzero: { steps: 2 } }, quiet: true };
    await runMainJob(opts);
    expect(JSON.parse(readFileSync(join(opts.out, 'segzero', 'run.json'), 'utf8')).config.train.steps).toBe(2); // the job's config reaches its run (tiny default: 3)
    for (const d of ['pretrain', 'align', 'grpo', 'lisa', 'segzero']) expect(existsSync(join(opts.out, d, 'model.safetensors')), d).toBe(true);
    const rows = readArrow(join(opts.out, 'summary.arrow'));
    expect(rows.map((r) => r.split)).toEqual(evaluationSplits());
    for (const r of rows) {
      for (const m of ['lens-stage1', 'lens-stage2', 'lisa', 'segzero']) {
        expect(r[`${m}_ciou`], `${r.split} ${m}`).toBeGreaterThanOrEqual(0);
        expect(r[`${m}_ciou`], `${r.split} ${m}`).toBeLessThanOrEqual(100);
      }
    }
    expect(readFileSync(join(opts.out, 'summary.md'), 'utf8')).toContain(summaryMarkdown(rows));
    const score = scoreLine(readArrow(join(opts.out, 'grpo', 'steps.arrow')));
    expect(score).toMatch(/^stage 2, mean reward on its training prompts \(fixed draws\): \d\.\d{3} \(stage 1\); \d\.\d{3} after 2, \d\.\d{3} after 3 steps$/);
    expect(readFileSync(join(opts.out, 'summary.md'), 'utf8')).toContain(score);
    const sentences = readArrow(join(opts.out, 'align', 'eval.arrow')).reduce((n, r) => n + Number(r.n), 0);
    expect(readFileSync(join(opts.out, 'summary.md'), 'utf8')).toMatch(
      new RegExp(`stage 2 - stage 1, mean cIoU over 10 splits: [-+]\\d+\\.\\d\\d points \\(95% paired bootstrap interval [-+]\\d+\\.\\d\\d \\.\\. [-+]\\d+\\.\\d\\d; ${sentences} sentences\\)`),
    );
    const align = readFileSync(join(opts.out, 'align', 'run.json'), 'utf8');
    const again = await runMainJob(opts);
    expect(readFileSync(join(opts.out, 'align', 'run.json'), 'utf8')).toBe(align); // not retrained
    expect(again.rows).toEqual(rows);
    // Another job into the same folder would reuse this one's runs: refused before anything trains.
    await expect(runMainJob({ ...opts, seed: 1 })).rejects.toThrow(/job\.json: this folder holds another main job \(seed 0 there, 1 here\)/);
    await expect(runMainJob({ ...opts, config: {} })).rejects.toThrow(/job\.json: this folder holds another main job \(segzero\.steps 2 there, \d+ here\)/);
    // The same job asked otherwise (a default restated) is the same job: resolved configs are compared.
    const alignSteps = JSON.parse(align).config.align.steps as number;
    expect((await runMainJob({ ...opts, config: { align: { steps: alignSteps }, segzero: { steps: 2 } } })).rows).toEqual(rows);
    // A record without resolved configs (an older lens-ts, other defaults maybe) is refused.
    const record = JSON.parse(readFileSync(join(opts.out, 'job.json'), 'utf8'));
    writeFileSync(join(opts.out, 'job.json'), JSON.stringify({ ...record, resolved: undefined }));
    await expect(runMainJob(opts)).rejects.toThrow(/job\.json: records no resolved configs \(written by an older lens-ts/);
    rmSync(join(opts.out, 'job.json')); // runs but no record of which job trained them
    await expect(runMainJob(opts)).rejects.toThrow(/holds runs \(pretrain, align, grpo, lisa, segzero\) but no job\.json/);
    writeFileSync(join(opts.out, 'job.json'), '{"preset": "ti');
    await expect(runMainJob(opts)).rejects.toThrow(/job\.json: unreadable job record/);
  });
});

describe('checkMainJobConfig', () => {
  it("passes each run's delta to that run's own rules, naming the run and the field", () => {
    expect(checkMainJobConfig('quick', { pretrain: { stage0b: { steps: 7000 } }, grpo: { lr: 1e-5 } })).toEqual({ pretrain: { stage0b: { steps: 7000 } }, grpo: { lr: 1e-5 } });
    expect(() => checkMainJobConfig('quick', [], 'f.json')).toThrow(/f\.json: expected an object of config deltas keyed by run \(pretrain, align, grpo, lisa, segzero\), got \[\]/);
    expect(() => checkMainJobConfig('quick', { stage2: {} }, 'f.json')).toThrow(/f\.json: unknown run 'stage2'; expected one of: pretrain, align, grpo, lisa, segzero/);
    expect(() => checkMainJobConfig('quick', { segzero: { stepz: 1 } }, 'f.json')).toThrow(/f\.json, segzero: unknown field 'stepz'/);
    expect(() => checkMainJobConfig('quick', { pretrain: { stage0b: { steps: 'many' } } }, 'f.json')).toThrow(/f\.json, pretrain: field 'stage0b\.steps'/);
    expect(() => checkMainJobConfig('quick', { align: { evalLimit: 10 } }, 'f.json')).toThrow(/'align\.evalLimit' is set by the main job/);
  });
});

describe('scoreLine', () => {
  it("lists the stage-1 score, then the policy's after each scored step", () => {
    const rows: Row[] = [{ step: 0 }, { step: 1, scoreReward: 1.4421, scoreRefReward: 1.4674 }, { step: 2 }, { step: 3, scoreReward: 1.5092, scoreRefReward: 1.4674 }];
    expect(scoreLine(rows)).toBe('stage 2, mean reward on its training prompts (fixed draws): 1.467 (stage 1); 1.442 after 2, 1.509 after 4 steps');
    expect(scoreLine([{ step: 0, rewardMean: 1 }])).toBe('');
  });
});
