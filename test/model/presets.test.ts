/**
 * Presets and the builder: every preset resolves with consistent derived widths,
 * deltas (the ablations) apply, conflicts and typos are named, seeds repeat, and
 * whole-model / component checkpoints round trip bit for bit; `lens export`.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as tf from '@tensorflow/tfjs-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { run as exportRun } from '../../src/cli/export';
import { UsageError } from '../../src/cli/main';
import {
  PRESETS,
  PRESET_NAMES,
  buildLens,
  loadComponent,
  loadLens,
  resolveLensConfig,
  saveComponent,
  saveLens,
} from '../../src/model/presets';
import { readSafetensors } from '../../src/util/safetensors';
import { useBackend } from './sam-testutil';

let dir: string;
beforeAll(async () => {
  await useBackend('cpu');
  dir = mkdtempSync(join(tmpdir(), 'lens-presets-'));
});
afterAll(() => rmSync(dir, { recursive: true, force: true }));

function sameWeights(a: tf.Variable[], b: tf.Variable[]): boolean {
  return a.length === b.length && a.every((v, i) => Buffer.compare(Buffer.from(v.dataSync().buffer), Buffer.from(b[i]!.dataSync().buffer)) === 0);
}

describe('presets', () => {
  it('every preset resolves and derives the shared widths', () => {
    for (const name of PRESET_NAMES) {
      const c = resolveLensConfig(name);
      expect(c.preset).toBe(name);
      expect(c.vision.imageSize).toBe(c.imageSize);
      expect(c.sam.imageSize).toBe(c.imageSize);
      expect(c.vision.outDim).toBe(c.mllm.hiddenSize);
      expect(c.context.dim).toBe(c.mllm.hiddenSize);
      expect(c.connector.inDim).toBe(c.mllm.hiddenSize);
      expect(c.connector.outDim).toBe(c.sam.promptDim);
      expect(c.connector.numQueries).toBe(c.context.numQueries);
      expect(resolveLensConfig(JSON.parse(JSON.stringify(c)))).toEqual(c); // a saved config resolves to itself
    }
    expect(PRESETS.paper.context.numQueries).toBe(64); // official M
    expect(PRESETS.paper.connector).toMatchObject({ kind: 'vit', depth: 4, numOutputTokens: 1 });
    expect(resolveLensConfig().preset).toBe('quick');
  });

  it('ablation deltas apply and propagate to the derived fields', () => {
    const mlp = resolveLensConfig({ preset: 'tiny', connector: { kind: 'mlp' } });
    expect(mlp.connector.kind).toBe('mlp');
    const q = resolveLensConfig({ preset: 'tiny', context: { numQueries: 16 }, mllm: { hiddenSize: 96, numHeads: 4 } });
    expect(q.connector.numQueries).toBe(16);
    expect(q.connector.inDim).toBe(96);
    expect(q.vision.outDim).toBe(96);
    expect(resolveLensConfig({ preset: 'tiny', imageSize: 32 }).sam.imageSize).toBe(32);
  });

  it('conflicts, typos and bad values are named', () => {
    expect(() => resolveLensConfig({ preset: 'tiny', connector: { inDim: 7 } })).toThrow(/LensConfig.connector.inDim: derived as 64, but the config sets 7/);
    expect(() => resolveLensConfig({ preset: 'huge' as never })).toThrow(/LensConfig.preset: expected one of tiny, quick, paper, got "huge"/);
    expect(() => resolveLensConfig({ preset: 'tiny', segmenter: {} } as never)).toThrow(/LensConfig: unknown field\(s\) segmenter/);
    expect(() => resolveLensConfig({ preset: 'tiny', context: { numQueries: 6 }, connector: { numOutputTokens: 4 } })).toThrow(
      /ConnectorConfig.numQueries: expected a multiple of numOutputTokens \(4\), got 6/,
    );
    expect(() => resolveLensConfig({ preset: 'tiny', sam: { promptDim: 12 } })).toThrow(/SamMaskDecoderConfig.dim: expected a multiple of eight/);
  });

  it('the same seed gives the same weights, another seed others', () => {
    const a = buildLens('tiny', { seed: 5 });
    const b = buildLens('tiny', { seed: 5 });
    const c = buildLens('tiny', { seed: 6 });
    expect(sameWeights(a.parameters(), b.parameters())).toBe(true);
    expect(sameWeights(a.parameters(), c.parameters())).toBe(false);
    // a delta in one part leaves the initial weights of the others unchanged (forked streams)
    const d = buildLens({ preset: 'tiny', connector: { kind: 'mlp' } }, { seed: 5 });
    expect(sameWeights(a.sam.parameters(), d.sam.parameters())).toBe(true);
    expect(sameWeights(a.mllm.parameters(), d.mllm.parameters())).toBe(true);
    [a, b, c, d].forEach((m) => m.dispose());
  });
});

describe('LENS checkpoints', () => {
  it('saveLens / loadLens round trip the whole model bit for bit with its config', () => {
    const m = buildLens({ preset: 'tiny', connector: { kind: 'mlp' } }, { seed: 7 });
    const path = join(dir, 'lens.safetensors');
    saveLens(m, path, { step: '12' });
    const { model, metadata } = loadLens(path);
    expect(model.config).toEqual(m.config);
    expect(metadata.step).toBe('12');
    expect(model.namedParameters().map(([n]) => n)).toEqual(m.namedParameters().map(([n]) => n));
    expect(sameWeights(model.parameters(), m.parameters())).toBe(true);
    model.dispose();
    m.dispose();
  });

  it('components load from component files and from whole-model files; mismatches are named', () => {
    const src = buildLens('tiny', { seed: 8 });
    const dst = buildLens('tiny', { seed: 9 });
    const whole = join(dir, 'whole.safetensors');
    const samFile = join(dir, 'sam.safetensors');
    saveLens(src, whole);
    saveComponent(src, 'sam', samFile);
    expect(JSON.parse(readSafetensors(samFile).metadata.config!)).toEqual(src.config.sam);
    loadComponent(dst, 'sam', samFile);
    expect(sameWeights(dst.sam.parameters(), src.sam.parameters())).toBe(true);
    loadComponent(dst, 'connector', whole);
    expect(sameWeights(dst.connector.parameters(), src.connector.parameters())).toBe(true);
    expect(sameWeights(dst.mllm.parameters(), src.mllm.parameters())).toBe(false); // untouched
    expect(() => loadComponent(dst, 'mllm', samFile)).toThrow(/sam\.safetensors: holds component 'sam', not 'mllm'/);
    const wider = buildLens({ preset: 'tiny', sam: { promptDim: 64 } }, { seed: 1 });
    expect(() => loadComponent(wider, 'sam', samFile)).toThrow(/sam\.safetensors: checkpoint does not match the model: mismatched/);
    expect(() => loadLens(samFile)).toThrow(/not a whole-model LENS checkpoint/);
    [src, dst, wider].forEach((m) => m.dispose());
  });
});

describe('lens export', () => {
  it('writes an initialised model that loadLens reads back', async () => {
    const out = join(dir, 'export.safetensors');
    expect(await exportRun(['--preset', 'tiny', '--out', out, '--seed', '3', '--vocab-size', '300'])).toBe(0);
    const { model, metadata } = loadLens(out);
    expect(model.config.mllm.vocabSize).toBe(300);
    expect(metadata.seed).toBe('3');
    const ref = buildLens({ preset: 'tiny', mllm: { vocabSize: 300 } }, { seed: 3 });
    expect(sameWeights(model.parameters(), ref.parameters())).toBe(true);
    model.dispose();
    ref.dispose();
  });

  it('bad flags are usage errors', async () => {
    await expect(exportRun(['--preset', 'huge', '--out', 'x'])).rejects.toThrow(UsageError);
    await expect(exportRun(['--preset', 'tiny'])).rejects.toThrow(/--out FILE is required/);
    await expect(exportRun(['--preset', 'tiny', '--out', 'x', '--seed=-1'])).rejects.toThrow(/--seed: expected an integer >= 0/);
    await expect(exportRun(['--bogus'])).rejects.toThrow(UsageError);
    await expect(exportRun(['--out', 'x', '--component', 'head'])).rejects.toThrow(/--component: expected one of/);
  });
});
