import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as tf from '@tensorflow/tfjs-core';
import { afterAll, afterEach, describe, expect, it } from 'vitest';
import { groupParams } from '../../src/viz/anatomy';
import { matmulTimings, packageVersions } from '../../src/viz/environment';
import { benchDirFor, openNotebook, presetFromEnv } from '../../src/viz/notebook';
import { setDisplaySink, type DisplayContent } from '../../src/viz/display';
import { lineChart } from '../../src/viz/figure';
import { overlayPng } from '../../src/viz/overlay';
import { sampleCaption } from '../../src/viz/samples';
import { initBackend } from '../../src/backend';
import { projectRoot } from '../../src/util/paths';
import type { RefSample } from '../../src/data/index';

describe('notebook context', () => {
  it('reads LENS_PRESET, defaulting to quick, and names the variable on a bad value', () => {
    expect(presetFromEnv({})).toBe('quick');
    expect(presetFromEnv({ LENS_PRESET: '' })).toBe('quick');
    expect(presetFromEnv({ LENS_PRESET: 'tiny' })).toBe('tiny');
    expect(() => presetFromEnv({ LENS_PRESET: 'huge' })).toThrow(/LENS_PRESET="huge": expected one of tiny, quick, paper/);
  });

  it('keeps quick on npm start\'s data/bench and gives the other presets their own folders', () => {
    expect([benchDirFor('quick'), benchDirFor('tiny'), benchDirFor('paper')]).toEqual([join('data', 'bench'), join('data', 'bench-tiny'), join('data', 'bench-paper')]);
  });
});

describe('notebook outputs', () => {
  const root = mkdtempSync(join(tmpdir(), 'lens-nb-'));
  afterAll(() => rmSync(root, { recursive: true, force: true }));
  afterEach(() => setDisplaySink(null));

  it('figure / table / gallery each send one bundle and write one page under results/figures/<notebook>', async () => {
    const sent: DisplayContent[] = [];
    setDisplaySink((c) => sent.push(c));
    const nb = openNotebook('99_test', { env: { LENS_PRESET: 'tiny' }, quiet: true, root });
    expect(nb.preset).toBe('tiny');
    expect(nb.figuresDir).toBe(join(root, 'results', 'figures', '99_test'));
    nb.figure(lineChart({ title: 'loss', series: [{ name: 'l', x: [0, 1], y: [1, 0.5] }] }), 'loss');
    nb.table([{ a: 1 }], 'tab', { title: 'T' });
    const png = await overlayPng({ data: new Uint8Array(12), height: 2, width: 2 }, { scale: 1 });
    await nb.gallery([{ png, caption: 'c' }], 'gal', { title: 'G' });
    expect(sent.map((c) => Object.keys(c.data).sort())).toEqual([
      ['application/vnd.plotly.v1+json', 'text/html', 'text/plain'], ['text/html', 'text/plain'], ['image/png', 'text/html', 'text/plain'],
    ]);
    for (const f of ['loss', 'tab', 'gal']) expect(existsSync(join(nb.figuresDir, `${f}.html`))).toBe(true);
    expect(readFileSync(join(nb.figuresDir, 'gal.html'), 'utf8')).toContain('G</p>');
  });
});

describe('anatomy / environment helpers', () => {
  it('groups parameter sizes by name prefix, in first-seen order', () => {
    const named: Array<[string, { shape: number[] }]> = [['a.x.w', { shape: [2, 3] }], ['b.y', { shape: [4] }], ['a.z', { shape: [5] }]];
    expect(groupParams(named, 1)).toEqual([{ name: 'a', params: 11, tensors: 2 }, { name: 'b', params: 4, tensors: 1 }]);
    expect(groupParams(named, 2).map((g) => g.name)).toEqual(['a.x', 'b.y', 'a.z']);
    expect(() => groupParams(named, 0)).toThrow(/depth must be an integer >= 1/);
  });

  it('reports installed package versions from node_modules', () => {
    const v = packageVersions(['@tensorflow/tfjs-core', 'apache-arrow', 'no-such-package-here']);
    expect(v['@tensorflow/tfjs-core']).toBe(JSON.parse(readFileSync(join(projectRoot(), 'node_modules/@tensorflow/tfjs-core/package.json'), 'utf8')).version);
    expect(v['apache-arrow']).toMatch(/^\d+\.\d+\.\d+/); // has an exports map: read from the file, not require
    expect(v['no-such-package-here']).toBe('not installed');
  });

  it('times matmuls without leaking tensors; flops = 2 n^3', async () => {
    await initBackend({ quiet: true });
    const before = tf.memory().numTensors;
    const [t] = matmulTimings([16], 1);
    expect(tf.memory().numTensors).toBe(before);
    expect(t!.n).toBe(16);
    expect(t!.gflops).toBeCloseTo((2 * 16 ** 3) / (t!.ms * 1e6), 9);
    expect(() => matmulTimings([0])).toThrow(/sizes must be positive integers/);
  });

  it('captions a sample with its sentence, label, box and reasoning', () => {
    const s = { sentence: 'the red star', label: 'red star', bbox: [1, 2.25, 3, 4], reasoning: 'It is red.' } as unknown as RefSample;
    expect(sampleCaption(s)).toBe('"the red star"\ntarget: red star; box [1, 2.3, 3, 4] (x, y, w, h)\nreasoning: It is red.');
    expect(sampleCaption({ ...s, bbox: null } as RefSample, { reasoning: false })).toBe('"the red star"\ntarget: red star; no target');
  });
});
