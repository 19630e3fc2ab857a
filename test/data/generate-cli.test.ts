import { existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it, vi } from 'vitest';
import { run } from '../../src/cli/generate';
import { UsageError, main } from '../../src/cli/main';
import { readManifest } from '../../src/data/generate/benchmark';

const root = mkdtempSync(join(tmpdir(), 'lens-gen-cli-'));
afterAll(() => rmSync(root, { recursive: true, force: true }));

describe('lens generate', () => {
  it('writes DIR with the given scale and seed', async () => {
    const out = join(root, 'bench');
    expect(await run(['--out', out, '--scale', 'tiny', '--seed', '7', '--quiet'])).toBe(0);
    const m = readManifest(out);
    expect([m.scale, m.seed, m.imageSize]).toEqual(['tiny', 7, 64]);
    expect(existsSync(`${out}.tmp`)).toBe(false);
  });

  it('refuses to overwrite without --force (exit code 1, message names the folder)', async () => {
    const out = join(root, 'bench');
    const err = vi.spyOn(console, 'error').mockImplementation(() => {});
    expect(await main(['generate', '--out', out, '--scale', 'tiny', '--quiet'])).toBe(1);
    expect(String(err.mock.calls[0]?.[0])).toContain(`output folder ${out} is not empty (pass --force to replace it)`);
    err.mockRestore();
    expect(await run(['--out', out, '--scale', 'tiny', '--seed', '8', '--quiet', '--force'])).toBe(0);
    expect(readManifest(out).seed).toBe(8);
  });

  it('--config overrides config fields; a bad field is named with the file', async () => {
    const cfg = join(root, 'small.json');
    writeFileSync(cfg, JSON.stringify({ imageSize: 48, seed: 4, referImages: { train: 2, val: 1, testA: 1, testB: 1 }, reasonImages: { train: 1, val: 1, test: 1 } }));
    const out = join(root, 'small');
    expect(await run(['--out', out, '--scale', 'tiny', '--config', cfg, '--quiet'])).toBe(0);
    const m = readManifest(out);
    expect([m.imageSize, m.seed, m.counts.refcoco!.train!.images]).toEqual([48, 4, 2]);
    writeFileSync(cfg, JSON.stringify({ imageSize: 8 }));
    await expect(run(['--out', join(root, 'bad'), '--config', cfg])).rejects.toThrow(`--config ${cfg}: generate config: imageSize must be an integer in [32, 1024], got 8`);
    writeFileSync(cfg, '[1]');
    await expect(run(['--out', join(root, 'bad'), '--config', cfg])).rejects.toThrow('expected a JSON object of config fields');
  });

  it('rejects bad flags with a UsageError naming the flag', async () => {
    await expect(run(['--scale', 'tiny'])).rejects.toThrow(UsageError);
    await expect(run(['--scale', 'tiny'])).rejects.toThrow('--out DIR is required');
    await expect(run(['--out', 'x', '--scale', 'huge'])).rejects.toThrow('--scale must be one of tiny|quick|paper, got "huge"');
    await expect(run(['--out', 'x', '--seed', '1.5'])).rejects.toThrow('--seed must be an integer in [0, 4294967295], got "1.5"');
    await expect(run(['--out', 'x', '--seed', '4294967296'])).rejects.toThrow('--seed must be an integer');
    await expect(run(['--out', 'x', '--colour', 'red'])).rejects.toThrow(/Unknown option '--colour'/);
  });

  it('is registered in the lens dispatcher with start', async () => {
    const log = vi.spyOn(console, 'log').mockImplementation(() => {});
    expect(await main(['--help'])).toBe(0);
    const text = String(log.mock.calls[0]?.[0]);
    log.mockRestore();
    expect(text).toMatch(/\n {2}generate {8}/);
    expect(text).toMatch(/\n {2}start {11}/);
  });
});
