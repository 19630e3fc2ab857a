/**
 * Generation: the samplers' rules (greedy, banned, top-k, top-p, temperature),
 * cached == uncached decoding, generation log-probs == teacher-forced re-scoring,
 * per-row stop at <eos> with masking, G samples per prompt, left padding, seeds,
 * memory, and bad arguments.
 */
import * as tf from '@tensorflow/tfjs-core';
import { beforeAll, describe, expect, it } from 'vitest';
import { Rng } from '../../src/random';
import { DEFAULT_SAMPLING, generate, pickToken, toRescoreTensors, validateSampling, type GenerationResult, type SamplingConfig } from '../../src/model/generate';
import { MLLM, shiftedLogProbs } from '../../src/model/mllm';
import { EOS_ID, PAD_ID, buildPrompt } from '../../src/model/tokenizer';
import { maxAbsDiff, setBackend, tinyTokenizer } from './mllm-testutil';

const tok = tinyTokenizer();
const C = 16;
const V = 4; // visual tokens per image
const model = (seed: number) => new MLLM({ vocabSize: tok.size, hiddenSize: C, numLayers: 2, numHeads: 2, maxPositions: 128 }, new Rng(seed));
const prompt = (s: string) => tok.encodePrompt(buildPrompt({ instruction: s }), V);
const visual = (p: number, seed: number) => tf.randomNormal([p, V, C], 0, 1, 'float32', seed) as tf.Tensor3D;

const cfg = (c: Partial<SamplingConfig>) => validateSampling(c);

beforeAll(async () => {
  await setBackend('cpu');
});

describe('pickToken', () => {
  const row = Float32Array.from([0, 3, 1, 2.5, -1]);

  it('greedy takes the argmax among allowed tokens, lowest id on ties', () => {
    expect(pickToken(row, cfg({ greedy: true, bannedTokens: [] }), undefined)).toBe(1);
    expect(pickToken(row, cfg({ greedy: true, bannedTokens: [1] }), undefined)).toBe(3);
    expect(pickToken(Float32Array.from([2, 2, 1]), cfg({ greedy: true, bannedTokens: [] }), undefined)).toBe(0);
  });

  it('top-k 1 and a tiny top-p are greedy; top-k 2 only ever yields the two best', () => {
    const rng = new Rng(1);
    for (let i = 0; i < 50; i++) {
      expect(pickToken(row, cfg({ topK: 1, bannedTokens: [] }), rng)).toBe(1);
      expect(pickToken(row, cfg({ topP: 1e-6, bannedTokens: [] }), rng)).toBe(1);
      expect([1, 3]).toContain(pickToken(row, cfg({ topK: 2, bannedTokens: [] }), rng));
    }
  });

  it('top-p keeps the smallest most-likely set reaching p', () => {
    // probs ~ [0.5, 0.3, 0.2] -> p = 0.6 keeps {0, 1}, p = 0.5 keeps {0}
    const r = Float32Array.from([Math.log(0.5), Math.log(0.3), Math.log(0.2)]);
    const rng = new Rng(2);
    const seen = new Set<number>();
    for (let i = 0; i < 200; i++) seen.add(pickToken(r, cfg({ topP: 0.6, bannedTokens: [] }), rng));
    expect([...seen].sort()).toEqual([0, 1]);
    for (let i = 0; i < 50; i++) expect(pickToken(r, cfg({ topP: 0.5, bannedTokens: [] }), rng)).toBe(0);
  });

  it('samples in proportion to softmax(logits / T)', () => {
    const r = Float32Array.from([0, Math.log(3)]); // T = 1: [0.25, 0.75]; T = 2: [1/(1+sqrt3), sqrt3/(1+sqrt3)]
    for (const [T, p1] of [[1, 0.75], [2, Math.sqrt(3) / (1 + Math.sqrt(3))]] as const) {
      const rng = new Rng(3);
      let ones = 0;
      const n = 4000;
      for (let i = 0; i < n; i++) ones += pickToken(r, cfg({ temperature: T, bannedTokens: [] }), rng);
      expect(Math.abs(ones / n - p1)).toBeLessThan(0.03);
    }
  });

  it('needs an rng to sample', () => {
    expect(() => pickToken(row, cfg({}), undefined)).toThrow(/needs an rng/);
  });
});

describe('validateSampling', () => {
  it('fills defaults and names the bad field', () => {
    expect(validateSampling({})).toEqual(DEFAULT_SAMPLING);
    expect(() => validateSampling({ temperature: 0 })).toThrow(/temperature: expected a finite number > 0/);
    expect(() => validateSampling({ topP: 1.5 })).toThrow(/topP/);
    expect(() => validateSampling({ topK: -1 })).toThrow(/topK/);
    expect(() => validateSampling({ maxNewTokens: 0 })).toThrow(/maxNewTokens/);
    expect(() => validateSampling({ numSamples: 1.5 })).toThrow(/numSamples/);
    expect(() => validateSampling({ bannedTokens: [EOS_ID] })).toThrow(/<eos>/);
  });
});

/** Teacher-forced log-probs of each row's completion, [B][n_b]. */
function rescore(m: MLLM, r: GenerationResult, vis: tf.Tensor3D | undefined, G: number): number[][] {
  return tf.tidy(() => {
    const t = toRescoreTensors(r);
    const v = vis ? (tf.reshape(tf.tile(tf.expandDims(vis, 1), [1, G, 1, 1]), [-1, V, C]) as tf.Tensor3D) : undefined;
    const { logits } = m.forward({ tokens: t.tokens, attentionMask: t.attentionMask, visual: v });
    const lp = shiftedLogProbs(logits, t.tokens, r.promptLength, t.attentionMask).arraySync() as number[][];
    return lp.map((row, b) => row.slice(0, r.tokens[b]!.length));
  });
}

describe('generate', () => {
  it('cached and uncached greedy decoding agree; log-probs equal teacher-forced re-scoring', () => {
    const m = model(1);
    const vis = visual(2, 5);
    const prompts = [prompt('the red circle'), prompt('the largest green triangle left of the blue square')];
    const before = tf.memory().numTensors;
    const cached = generate(m, tok, { prompts, visual: vis }, { greedy: true, maxNewTokens: 8 });
    const plain = generate(m, tok, { prompts, visual: vis }, { greedy: true, maxNewTokens: 8, useCache: false });
    expect(tf.memory().numTensors).toBe(before);
    expect(cached.tokens).toEqual(plain.tokens);
    cached.tokens.forEach((t, b) => expect(t.length === 8 || (cached.finished[b] && t[t.length - 1] === EOS_ID)).toBe(true));
    for (let b = 0; b < 2; b++) expect(maxAbsDiff(cached.logProbs[b]!, plain.logProbs[b]!)).toBeLessThan(1e-4);
    const forced = rescore(m, cached, vis, 1);
    for (let b = 0; b < 2; b++) expect(maxAbsDiff(cached.logProbs[b]!, forced[b]!)).toBeLessThan(1e-4);
    expect(cached.logProbs.flat().every((x) => x <= 0 && Number.isFinite(x))).toBe(true);
    expect(cached.text[0]).toBe(tok.decode(cached.tokens[0]!));
    vis.dispose();
    m.dispose();
  });

  it('a prompt decodes the same alone and left-padded in a batch', () => {
    const m = model(2);
    const vis = visual(2, 6);
    const short = prompt('red');
    const long = prompt('the largest green triangle left of the blue square');
    const alone = generate(m, tok, { prompts: [short], visual: tf.slice(vis, [0, 0, 0], [1, V, C]) }, { greedy: true, maxNewTokens: 6 });
    const batch = generate(m, tok, { prompts: [short, long], visual: vis }, { greedy: true, maxNewTokens: 6 });
    expect(batch.tokens[0]).toEqual(alone.tokens[0]);
    expect(maxAbsDiff(batch.logProbs[0]!, alone.logProbs[0]!)).toBeLessThan(1e-4);
    expect(batch.promptLength).toBe(long.length);
    tf.dispose(vis);
    m.dispose();
  });

  it('samples G rows per prompt, stops rows at <eos> with masking, and re-scores exactly', () => {
    const m = model(3);
    const vis = visual(2, 7);
    const G = 4;
    // Only 10 tokens allowed (eos among them) at a high temperature: rows stop after a few steps.
    const allowed = new Set([EOS_ID, ...Array.from({ length: 9 }, (_, i) => 20 + i)]);
    const bannedTokens = Array.from({ length: tok.size }, (_, i) => i).filter((i) => !allowed.has(i));
    const opts = { numSamples: G, temperature: 8, maxNewTokens: 12, bannedTokens };
    const before = tf.memory().numTensors;
    const r = generate(m, tok, { prompts: [prompt('the red circle'), prompt('the blue square')], visual: vis }, opts, new Rng(11));
    expect(tf.memory().numTensors).toBe(before);
    expect(r.tokens).toHaveLength(2 * G);
    expect(r.promptIndex).toEqual([0, 0, 0, 0, 1, 1, 1, 1]);
    // some rows stop early, some run to the limit (a check of this test's setup)
    expect(r.finished.some(Boolean) && !r.finished.every(Boolean)).toBe(true);
    const N = r.sequences[0]!.length - r.promptLength;
    for (let b = 0; b < 2 * G; b++) {
      const n = r.tokens[b]!.length;
      expect(r.tokens[b]!.slice(0, -1)).not.toContain(EOS_ID);
      if (r.finished[b]) expect(r.tokens[b]![n - 1]).toBe(EOS_ID);
      else expect(n).toBe(12);
      expect(r.tokens[b]!.every((t) => allowed.has(t))).toBe(true);
      expect(r.completionMask[b]).toEqual([...new Array(n).fill(1), ...new Array(N - n).fill(0)]);
      expect(r.sequences[b]!.slice(r.promptLength)).toEqual([...r.tokens[b]!, ...new Array(N - n).fill(PAD_ID)]);
      expect(r.text[b]).toBe(tok.decode(r.tokens[b]!.filter((t) => t !== EOS_ID)));
    }
    // the sampled rows of one prompt differ
    expect(new Set(r.tokens.slice(0, G).map((t) => t.join(','))).size).toBeGreaterThan(1);
    const forced = rescore(m, r, vis, G);
    for (let b = 0; b < 2 * G; b++) expect(maxAbsDiff(r.logProbs[b]!, forced[b]!)).toBeLessThan(1e-4);
    // cached == uncached under the same seed too
    const plain = generate(m, tok, { prompts: [prompt('the red circle'), prompt('the blue square')], visual: vis }, { ...opts, useCache: false }, new Rng(11));
    expect(plain.tokens).toEqual(r.tokens);
    vis.dispose();
    m.dispose();
  });

  it('greedy G samples are identical; seeds repeat; banned tokens never appear', () => {
    const m = model(4);
    const vis = visual(1, 8);
    const p = [prompt('the red circle')];
    const g = generate(m, tok, { prompts: p, visual: vis }, { greedy: true, numSamples: 3, maxNewTokens: 5 });
    expect(g.tokens[1]).toEqual(g.tokens[0]);
    expect(g.tokens[2]).toEqual(g.tokens[0]);
    const opts = { numSamples: 3, maxNewTokens: 12, temperature: 3 };
    const a = generate(m, tok, { prompts: p, visual: vis }, opts, new Rng(5));
    const b = generate(m, tok, { prompts: p, visual: vis }, opts, new Rng(5));
    const c = generate(m, tok, { prompts: p, visual: vis }, opts, new Rng(6));
    expect(b.tokens).toEqual(a.tokens);
    expect(c.tokens).not.toEqual(a.tokens);
    for (const t of [...a.tokens, ...c.tokens].flat()) expect(DEFAULT_SAMPLING.bannedTokens).not.toContain(t);
    vis.dispose();
    m.dispose();
  });

  it('rejects bad arguments', () => {
    const m = model(5);
    const vis = visual(1, 9);
    expect(() => generate(m, tok, { prompts: [] })).toThrow(/non-empty list/);
    expect(() => generate(m, tok, { prompts: [[]] })).toThrow(/non-empty list/);
    expect(() => generate(m, tok, { prompts: [prompt('a'), prompt('b')], visual: vis }, { greedy: true })).toThrow(/visual must be \[2, V, C\]/);
    expect(() => generate(m, tok, { prompts: [prompt('a')], visual: vis }, {})).toThrow(/needs an rng/);
    expect(() => generate(m, tok, { prompts: [prompt('a')] }, { greedy: true })).toThrow(/no visual tokens were given/);
    const before = tf.memory().numTensors;
    expect(() => generate(m, tok, { prompts: [prompt('a')], visual: vis }, { greedy: true, maxNewTokens: 200 })).toThrow(/maxPositions/);
    expect(() => generate(m, tok, { prompts: [prompt('a')], visual: vis }, { greedy: true, maxNewTokens: 200, useCache: false })).toThrow(/maxPositions/);
    expect(tf.memory().numTensors).toBe(before); // nothing leaks when a step throws
    vis.dispose();
    m.dispose();
  });

  it('never emits ids beyond the tokenizer when the MLLM vocabulary is padded, and refuses a smaller one', () => {
    const big = new MLLM({ vocabSize: tok.size + 50, hiddenSize: C, numLayers: 1, numHeads: 2, maxPositions: 128 }, new Rng(7));
    const textOnly = tok.encodePrompt(buildPrompt({ instruction: 'red' }), 0);
    const r = generate(big, tok, { prompts: [textOnly] }, { numSamples: 4, temperature: 20, maxNewTokens: 10 }, new Rng(1));
    expect(r.tokens.flat().every((t) => t < tok.size)).toBe(true);
    big.dispose();
    const small = new MLLM({ vocabSize: tok.size - 1, hiddenSize: C, numLayers: 1, numHeads: 2, maxPositions: 128 }, new Rng(7));
    expect(() => generate(small, tok, { prompts: [prompt('red')] }, { greedy: true })).toThrow(/tokenizer has \d+ tokens but the MLLM's vocabSize is/);
    small.dispose();
  });
});

describe('generate on wasm', () => {
  it('gives the cpu greedy tokens and log-probs', async () => {
    const m = model(6);
    const host = visual(2, 10).arraySync();
    const prompts = [prompt('the red circle'), prompt('the largest green triangle')];
    const run = () => {
      const vis = tf.tensor3d(host);
      const r = generate(m, tok, { prompts, visual: vis }, { greedy: true, maxNewTokens: 6 });
      vis.dispose();
      return r;
    };
    const cpu = run();
    await setBackend('wasm');
    try {
      const wasm = run();
      expect(wasm.tokens).toEqual(cpu.tokens);
      for (let b = 0; b < 2; b++) expect(maxAbsDiff(wasm.logProbs[b]!, cpu.logProbs[b]!)).toBeLessThan(1e-4);
    } finally {
      await setBackend('cpu');
    }
    m.dispose();
  });
});
