import { cpSync, existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as tf from '@tensorflow/tfjs-core';
import '@tensorflow/tfjs-backend-cpu';
import { beforeAll, describe, expect, it } from 'vitest';
import { initBackend } from '../../src/backend';
import { run as pretrainCli } from '../../src/cli/pretrain';
import { ConfigError } from '../../src/config';
import { ensureBenchmark, readManifest } from '../../src/data/generate/benchmark';
import { resolveGenerateConfig } from '../../src/data/generate/index';
import { buildLens } from '../../src/model/presets';
import { Rng } from '../../src/random';
import { readArrow } from '../../src/util/arrow';
import { readSafetensors } from '../../src/util/safetensors';
import { fitTokenizer, generatedExamples, loadExamples, type SftExample, type TrainExample } from '../../src/train/data';
import { InterruptedRun } from '../../src/train/loop';
import { loadStageModel } from '../../src/train/stage_io';
import { boxIouXyxy, capReasoning, checkTokenizerFits, fitVocabulary, imageDependence, runPretrain, runStage0b } from '../../src/train/stage0';

const root = mkdtempSync(join(tmpdir(), 'lens-stage0b-'));
const data = join(root, 'data');

beforeAll(async () => {
  // MLLM training needs the gradient of embedding lookups (UnsortedSegmentSum), which
  // stock wasm lacks (src/accel registers it); should it be missing, fall back to cpu
  // (slow: ~3 min instead of seconds). LENS_BACKEND picks a backend explicitly.
  await initBackend({ quiet: true });
  if (!process.env.LENS_BACKEND && !tf.getKernel('UnsortedSegmentSum', tf.getBackend())) await tf.setBackend('cpu');
  await ensureBenchmark(data, { scale: 'tiny', seed: 0 }, { quiet: true });
});

describe('stage 0b pieces', () => {
  it('imageDependence: the answer NLL moves when each prompt gets another sample\'s image (the image reaches the answer), no tensor left', async () => {
    const ex = await loadExamples(data, 'refcoco', 'train', { imageSize: 64, limit: 6, quiet: true });
    const tok = fitTokenizer(ex);
    const model = buildLens({ preset: 'tiny', mllm: { vocabSize: 512 } }, { seed: 3 });
    const before = tf.memory().numTensors;
    const dep = imageDependence(model, tok, ex, { batch: 3 });
    expect(tf.memory().numTensors).toBe(before);
    expect(Number.isFinite(dep.own) && Number.isFinite(dep.shuffled)).toBe(true);
    expect(dep.gain).toBeCloseTo(dep.shuffled - dep.own, 12);
    expect(Math.abs(dep.gain)).toBeGreaterThan(1e-7); // an untrained model still sees its picture
    // With the vision encoder's output zeroed the picture cannot matter: the gain is exactly 0.
    const v = model.vision.merger.fc2.weight;
    const b = model.vision.merger.fc2.bias!;
    v.assign(tf.zerosLike(v));
    b.assign(tf.zerosLike(b));
    expect(imageDependence(model, tok, ex, { batch: 3 }).gain).toBe(0);
    model.dispose();
  });

  it('the tokenizer-size check says which field to raise, and to what', async () => {
    const ex = await loadExamples(data, 'refcoco', 'train', { imageSize: 64, limit: 6, quiet: true });
    const tok = fitTokenizer(ex);
    const small = buildLens({ preset: 'tiny', mllm: { vocabSize: tok.size - 1 } });
    expect(() => checkTokenizerFits(tok, small, 50)).toThrow(ConfigError);
    expect(() => checkTokenizerFits(tok, small, 50)).toThrow(
      new RegExp(`has ${tok.size} tokens, more than the model's mllm.vocabSize ${tok.size - 1} .*raise mllm.vocabSize to at least ${tok.size}`),
    );
    small.dispose();
    const ok = buildLens('tiny');
    expect(() => checkTokenizerFits(tok, ok, 50)).not.toThrow();
    // tiny: 256 positions, 8 context queries
    expect(() => checkTokenizerFits(tok, ok, 249)).toThrow(/needs 257 positions, more than the model's mllm.maxPositions 256: raise mllm.maxPositions to at least 257/);
    ok.dispose();
  });

  it('fitVocabulary drops the rarest words to fit vocabSize (they read as <unk>), or leaves the overflow to the check', async () => {
    const ex = await loadExamples(data, 'refcoco', 'train', { imageSize: 64, limit: 6, quiet: true });
    const full = fitTokenizer(ex);
    const fit = fitVocabulary(ex, full.size - 5, 'drop-rarest');
    expect(fit.tokenizer.size).toBe(full.size - 5);
    expect(fit.dropped).toBe(5);
    expect(fit.unkShare).toBeGreaterThan(0);
    // The kept words are the most frequent ones: the dropped ones are the last of the full vocabulary.
    expect(fit.tokenizer.vocab).toEqual(full.vocab.slice(0, full.size - 5));
    expect(fitVocabulary(ex, full.size - 5, 'error')).toMatchObject({ dropped: 0, unkShare: 0 });
    expect(fitVocabulary(ex, full.size - 5, 'error').tokenizer.size).toBe(full.size);
    expect(fitVocabulary(ex, full.size, 'drop-rarest').dropped).toBe(0);
  });

  it('capReasoning keeps the given fraction of reasoning sentences (seeded) and every other one', () => {
    const ex = (family: string, i: number) => ({ family, id: `${family}${i}` }) as unknown as TrainExample;
    const all = [...Array.from({ length: 10 }, (_, i) => ex('reasonseg', i)), ...Array.from({ length: 5 }, (_, i) => ex('refcoco', i))];
    const a = capReasoning(all, 0.3, new Rng(1));
    expect(a.filter((e) => e.family === 'reasonseg')).toHaveLength(3);
    expect(a.filter((e) => e.family === 'refcoco')).toHaveLength(5);
    expect(capReasoning(all, 0.3, new Rng(1)).map((e) => e.id)).toEqual(a.map((e) => e.id));
    expect(capReasoning(all, 0, new Rng(1))).toHaveLength(5);
    expect(capReasoning(all, 1, new Rng(1))).toHaveLength(15);
  });

  it('boxIouXyxy: hand-computed values', () => {
    expect(boxIouXyxy([0, 0, 2, 2], [1, 1, 3, 3])).toBeCloseTo(1 / 7, 12);
    expect(boxIouXyxy([0, 0, 2, 2], [0, 0, 2, 2])).toBe(1);
    expect(boxIouXyxy([0, 0, 1, 1], [2, 2, 3, 3])).toBe(0);
    expect(boxIouXyxy([1, 1, 1, 1], [1, 1, 1, 1])).toBe(0);
  });
});

describe('stage 0b extra pictures', () => {
  const key = (e: SftExample) => `${e.family}|${e.sentence}|${e.box.join(',')}|${e.label}`;
  const generator = () => resolveGenerateConfig(readManifest(data).config);

  it('generatedExamples from image 0 are the benchmark\'s own training sentences, pictures, targets and answers', async () => {
    const g = generator();
    const made = generatedExamples(g, { refer: g.referImages.train, reason: g.reasonImages.train, from: { refer: 0, reason: 0 } });
    const loaded: TrainExample[] = [];
    for (const f of ['refcoco', 'refcoco+', 'refcocog', 'reasonseg'] as const) loaded.push(...(await loadExamples(data, f, 'train', { imageSize: 64, quiet: true })));
    expect(made.map(key).sort()).toEqual(loaded.map(key).sort());
    const byKey = new Map(loaded.map((e) => [key(e), e]));
    for (const e of made) {
      const l = byKey.get(key(e))!;
      expect(e.answer).toBe(l.answer);
      expect(e.reasoning).toBe(l.reasoning);
      expect(Array.from(e.rgb)).toEqual(Array.from(l.rgb));
      expect(Array.from(e.target)).toEqual(Array.from(l.target));
    }
  });

  it('extra pictures continue the training stream: none of them is a benchmark picture, and the pool is the same on every call', async () => {
    const g = generator();
    const from = { refer: g.referImages.train, reason: g.reasonImages.train };
    const extra = generatedExamples(g, { refer: 3, reason: 2, from });
    expect(new Set(extra.map((e) => e.family))).toEqual(new Set(['refcoco', 'refcoco+', 'refcocog', 'reasonseg']));
    expect(extra.every((e) => e.split === 'train')).toBe(true);
    const picture = (e: SftExample) => Buffer.from(e.rgb).toString('base64');
    const bench = new Set<string>();
    for (const f of ['refcoco', 'reasonseg'] as const) {
      for (const s of ['train', 'val'] as const) for (const e of await loadExamples(data, f, s, { imageSize: 64, quiet: true })) bench.add(picture(e));
    }
    expect(new Set(extra.map(picture)).size).toBe(5);
    for (const e of extra) expect(bench.has(picture(e)), e.id).toBe(false);
    expect(generatedExamples(g, { refer: 3, reason: 2, from }).map((e) => e.id)).toEqual(extra.map((e) => e.id));
  });

  it('stage0b.extraPictures on data the generator did not write says how to do without', async () => {
    const bare = join(mkdtempSync(join(tmpdir(), 'lens-no-manifest-')), 'data');
    cpSync(data, bare, { recursive: true });
    rmSync(join(bare, 'manifest.json'));
    await expect(
      runStage0b({ dataRoot: bare, out: join(root, 'extra-bare'), preset: 'tiny', seed: 0, resume: false, quiet: true, config: { extraPictures: 1 } }),
    ).rejects.toThrow(/stage0b.extraPictures draws more training pictures .* is not a generated benchmark .*set stage0b.extraPictures to 0/);
  });
});

describe('stage 0b training', () => {
  it('overfits a fixed batch (loss falls), trains only vision + MLLM, leaks no tensor, evaluates with greedy generation', async () => {
    const before = tf.memory().numTensors;
    // One sentence per family and a batch of all four: every step sees the same batch.
    const r = await runStage0b({
      dataRoot: data,
      out: join(root, 'overfit'),
      preset: 'tiny',
      seed: 0,
      resume: false,
      quiet: true,
      config: { steps: 8, batchSize: 4, lr: 1e-2, warmupSteps: 0, limitPerFamily: 1, reasonFraction: 1, evalPerSplit: 1, evalBatch: 1, evalMaxNewTokens: 8 },
    });
    const losses = readArrow(join(r.dir, 'steps.arrow')).map((row) => row.loss as number);
    expect(losses).toHaveLength(8);
    expect(losses[7]!).toBeLessThan(losses[0]! * 0.7);
    const init = buildLens('tiny', { seed: 0 });
    const trained = new Map(r.model.namedParameters());
    for (const [name, v] of init.namedParameters()) {
      const t = trained.get(name)!.dataSync();
      const same = v.dataSync().every((x, i) => x === t[i]);
      // Only the vision encoder and the MLLM move (the LM head is tied to the embedding).
      if (name.startsWith('sam.') || name.startsWith('context.') || name.startsWith('connector.')) expect(same, name).toBe(true);
    }
    expect(Array.from(init.mllm.embed.weight.dataSync())).not.toEqual(Array.from(r.model.mllm.embed.weight.dataSync()));
    init.dispose();
    const metrics = readArrow(join(r.dir, 'metrics.arrow'));
    expect(metrics.map((m) => m.split)).toEqual(['refcoco/val', 'refcoco+/val', 'refcocog/val', 'reasonseg/val']);
    for (const m of metrics) {
      expect(m.formatRate).toBeGreaterThanOrEqual(0);
      expect(m.boxAcc50).toBeLessThanOrEqual(1);
    }
    r.model.dispose();
    expect(tf.memory().numTensors).toBe(before);
  });

  it('lens pretrain (both stages) resumes a run killed in 0b to the same model and hands over model + tokenizer', async () => {
    const cfg = {
      stage0a: { steps: 2, batchSize: 2, checkpointEvery: 2, limitImages: 1, evalInstances: 0 },
      stage0b: { steps: 4, batchSize: 2, checkpointEvery: 2, limitPerFamily: 2, evalPerSplit: 0 },
    };
    const cfgFile = join(root, 'cfg.json');
    writeFileSync(cfgFile, JSON.stringify(cfg));
    const args = (out: string) => ['--preset', 'tiny', '--data', data, '--out', out, '--config', cfgFile];
    const quiet = [console.log, console.error, console.table];
    console.log = console.error = console.table = () => {};
    try {
      const straight = join(root, 'straight');
      expect(await pretrainCli(args(straight))).toBe(0);
      const killed = join(root, 'killed');
      // stopAfter 3: 0a (2 steps) finishes, 0b stops after its step 3 with a checkpoint at 2.
      await expect(runPretrain({ dataRoot: data, out: killed, preset: 'tiny', seed: 0, resume: false, config: cfg, quiet: true, stopAfter: 3 })).rejects.toBeInstanceOf(InterruptedRun);
      expect(existsSync(join(killed, 'model.safetensors'))).toBe(false);
      expect(await pretrainCli([...args(killed), '--resume'])).toBe(0);
      const a = readSafetensors(join(straight, 'model.safetensors')).tensors;
      const b = readSafetensors(join(killed, 'model.safetensors')).tensors;
      expect([...b.keys()]).toEqual([...a.keys()]);
      for (const [name, t] of a) expect(Array.from(b.get(name)!.data), name).toEqual(Array.from(t.data));
      expect(readArrow(join(killed, '0b', 'steps.arrow')).map((r) => r.step)).toEqual([0, 1, 2, 3]);
      // The hand-over folder is what `lens align --from` reads.
      const { model, tokenizer } = loadStageModel(killed);
      expect(tokenizer.size).toBeLessThanOrEqual(model.config.mllm.vocabSize);
      model.dispose();
    } finally {
      [console.log, console.error, console.table] = quiet;
    }
  });

  it('--stage 0b without a finished 0a says what to run first', async () => {
    await expect(runPretrain({ dataRoot: data, out: join(root, 'no0a'), preset: 'tiny', seed: 0, resume: false, stage: '0b', quiet: true })).rejects.toThrow(
      /holds no finished stage-0a run; run 'lens pretrain --stage 0a'/,
    );
  });
});
