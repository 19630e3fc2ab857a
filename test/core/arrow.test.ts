import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { appendArrow, readArrow, writeArrow } from '../../src/util/arrow';

describe('arrow results files', () => {
  const dir = mkdtempSync(join(tmpdir(), 'lens-arrow-'));
  it('round-trips numbers, strings and booleans, filling missing numbers with NaN', () => {
    const p = join(dir, 'a.arrow');
    writeArrow(p, [
      { step: 1, loss: 0.5, split: 'val', ok: true },
      { step: 2, split: 'testA', ok: false },
    ]);
    const rows = readArrow(p);
    expect(rows[0]).toEqual({ step: 1, loss: 0.5, split: 'val', ok: true });
    expect(rows[1]!.loss).toBeNaN();
    expect(rows[1]!.split).toBe('testA');
  });
  it('appends', () => {
    const p = join(dir, 'b.arrow');
    appendArrow(p, [{ x: 1 }]);
    appendArrow(p, [{ x: 2 }]);
    expect(readArrow(p).map((r) => r.x)).toEqual([1, 2]);
  });
  it('names the file and column on bad input', () => {
    const p = join(dir, 'c.arrow');
    expect(() => writeArrow(p, [{ x: 1 }, { x: 'two' }])).toThrow(/c\.arrow: column 'x' mixes numbers with string \(row 1\)/);
    writeFileSync(join(dir, 'junk.arrow'), 'not arrow');
    expect(() => readArrow(join(dir, 'junk.arrow'))).toThrow(/junk\.arrow: not a readable Arrow IPC file/);
  });
});
