import { existsSync, mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { useBackend } from '../backend-util';
import { runMainJob, scoreLine, summaryMarkdown } from '../../src/train/main_job';
import { evaluationSplits } from '../../src/train/stage_io';
import { readArrow, type Row } from '../../src/util/arrow';

describe('the main job (tiny preset)', () => {
  it('runs every stage and baseline, scores every split, and a second run skips the finished stages', async () => {
    await useBackend('wasm');
    const root = mkdtempSync(join(tmpdir(), 'lens-main-'));
    const opts = { preset: 'tiny' as const, seed: 0, dataRoot: join(root, 'data'), out: join(root, 'out'), quiet: true };
    await runMainJob(opts);
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
    const align = readFileSync(join(opts.out, 'align', 'run.json'), 'utf8');
    const again = await runMainJob(opts);
    expect(readFileSync(join(opts.out, 'align', 'run.json'), 'utf8')).toBe(align); // not retrained
    expect(again.rows).toEqual(rows);
  });
});

describe('scoreLine', () => {
  it("lists the stage-1 score, then the policy's after each scored step", () => {
    const rows: Row[] = [{ step: 0 }, { step: 1, scoreReward: 1.4421, scoreRefReward: 1.4674 }, { step: 2 }, { step: 3, scoreReward: 1.5092, scoreRefReward: 1.4674 }];
    expect(scoreLine(rows)).toBe('stage 2, mean reward on its training prompts (fixed draws): 1.467 (stage 1); 1.442 after 2, 1.509 after 4 steps');
    expect(scoreLine([{ step: 0, rewardMean: 1 }])).toBe('');
  });
});
