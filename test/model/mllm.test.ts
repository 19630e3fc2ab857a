/**
 * MLLM: forward contract, left-padding invariance (positions from the mask), visual
 * splicing, appended `extra` queries, the KV cache path, bad arguments, log-prob helpers,
 * gradient reach (tied and untied head, frozen parts), memory, and wasm vs cpu.
 */
import * as tf from '@tensorflow/tfjs-core';
import { beforeAll, describe, expect, it } from 'vitest';
import { Rng } from '../../src/random';
import { MLLM, attentionBias, disposeCache, logProbs, shiftedLogProbs, validateMllmConfig, type MllmConfig } from '../../src/model/mllm';
import { MASK_NEG } from '../../src/model/nn';
import { IMAGE_ID, PAD_ID } from '../../src/model/tokenizer';
import { VisionEncoder } from '../../src/model/vision_encoder';
import { gradReach, maxAbsDiff, setBackend } from './mllm-testutil';

const C = 16;
const CFG: Partial<MllmConfig> = { vocabSize: 40, hiddenSize: C, numLayers: 2, numHeads: 2, maxPositions: 32 };
const I = IMAGE_ID;

const t2 = (rows: number[][]) => tf.tensor2d(rows, [rows.length, rows[0]!.length], 'int32');
const rnd = (shape: number[], seed: number) => tf.randomNormal(shape, 0, 1, 'float32', seed);
/** Host rows of a [B, T, X] tensor. */
const rows3 = (x: tf.Tensor) => x.arraySync() as number[][][];

beforeAll(async () => {
  await setBackend('cpu');
});

describe('MLLM forward contract', () => {
  it('gives logits [B, T, vocab] and hidden [B, T + M, C], and leaks nothing', () => {
    const m = new MLLM(CFG, new Rng(0));
    const tokens = t2([[0, 0, 12, I, I, 13], [11, 12, I, I, 14, 15]]);
    const mask = t2([[0, 0, 1, 1, 1, 1], [1, 1, 1, 1, 1, 1]]);
    const visual = rnd([2, 2, C], 1) as tf.Tensor3D;
    const extra = rnd([1, 3, C], 2) as tf.Tensor3D;
    const before = tf.memory().numTensors;
    const { logits, hidden } = m.forward({ tokens, attentionMask: mask, visual, extra });
    expect(logits.shape).toEqual([2, 6, 40]);
    expect(hidden.shape).toEqual([2, 9, C]);
    expect(m.hiddenSize).toBe(C);
    tf.dispose([logits, hidden]);
    expect(tf.memory().numTensors).toBe(before);
    tf.dispose([tokens, mask, visual, extra]);
    m.dispose();
  });

  it('is invariant to left padding: positions come from the mask', () => {
    const m = new MLLM(CFG, new Rng(1));
    tf.tidy(() => {
      const alone = m.forward({ tokens: t2([[11, 12, 13]]), attentionMask: t2([[1, 1, 1]]) }).logits;
      const padded = m.forward({ tokens: t2([[PAD_ID, PAD_ID, 11, 12, 13], [11, 12, 13, 14, 15]]), attentionMask: t2([[0, 0, 1, 1, 1], [1, 1, 1, 1, 1]]) }).logits;
      const a = rows3(alone)[0]!;
      const p = rows3(padded)[0]!.slice(2);
      expect(maxAbsDiff(a.flat(), p.flat())).toBeLessThan(1e-5);
      // without the mask the same tokens at shifted positions give different logits
      const shifted = m.forward({ tokens: t2([[PAD_ID, PAD_ID, 11, 12, 13]]), attentionMask: t2([[1, 1, 1, 1, 1]]) }).logits;
      expect(maxAbsDiff(a.flat(), rows3(shifted)[0]!.slice(2).flat())).toBeGreaterThan(1e-3);
    });
    m.dispose();
  });

  it('places the visual tokens at the <image> slots; earlier positions do not see them', () => {
    const m = new MLLM(CFG, new Rng(2));
    tf.tidy(() => {
      const tokens = t2([[11, 12, I, I, 13]]);
      const mask = t2([[1, 1, 1, 1, 1]]);
      const h1 = rows3(m.forward({ tokens, attentionMask: mask, visual: rnd([1, 2, C], 3) as tf.Tensor3D }).logits)[0]!;
      const h2 = rows3(m.forward({ tokens, attentionMask: mask, visual: rnd([1, 2, C], 4) as tf.Tensor3D }).logits)[0]!;
      expect(maxAbsDiff(h1.slice(0, 2).flat(), h2.slice(0, 2).flat())).toBeLessThan(1e-6); // causal
      expect(maxAbsDiff(h1.slice(2).flat(), h2.slice(2).flat())).toBeGreaterThan(1e-3);
    });
    m.dispose();
  });

  it('appends extra after the sequence: it sees every real token and changes nothing before it', () => {
    const m = new MLLM(CFG, new Rng(3));
    tf.tidy(() => {
      const tokens = t2([[0, 11, 12, 13], [11, 12, 14, 15]]);
      const mask = t2([[0, 1, 1, 1], [1, 1, 1, 1]]);
      const plain = m.forward({ tokens, attentionMask: mask });
      const q = rnd([1, 2, C], 5) as tf.Tensor3D;
      const withQ = m.forward({ tokens, attentionMask: mask, extra: q });
      expect(maxAbsDiff(plain.logits.dataSync(), withQ.logits.dataSync())).toBeLessThan(1e-6);
      expect(maxAbsDiff(plain.hidden.dataSync(), tf.slice(withQ.hidden, [0, 0, 0], [2, 4, C]).dataSync())).toBeLessThan(1e-6);
      // [1, M, C] broadcasts like the same queries tiled to [B, M, C]
      const tiled = m.forward({ tokens, attentionMask: mask, extra: tf.tile(q, [2, 1, 1]) as tf.Tensor3D });
      expect(maxAbsDiff(withQ.hidden.dataSync(), tiled.hidden.dataSync())).toBeLessThan(1e-6);
      // the query read-out depends on the text before it
      const other = m.forward({ tokens: t2([[0, 11, 12, 16], [11, 12, 14, 15]]), attentionMask: mask, extra: q });
      const last = (h: tf.Tensor3D) => tf.slice(h, [0, 4, 0], [1, 2, C]).dataSync();
      expect(maxAbsDiff(last(withQ.hidden), last(other.hidden))).toBeGreaterThan(1e-3);
    });
    m.dispose();
  });

  it('prefill + extend gives the one-pass result (stage 1: cached prefix, queries only)', () => {
    const m = new MLLM(CFG, new Rng(4));
    tf.tidy(() => {
      const tokens = t2([[0, 0, 11, I, I, 13], [11, 12, I, I, 14, 15]]);
      const mask = t2([[0, 0, 1, 1, 1, 1], [1, 1, 1, 1, 1, 1]]);
      const visual = rnd([2, 2, C], 6) as tf.Tensor3D;
      const q = rnd([1, 3, C], 7) as tf.Tensor3D;
      const full = m.forward({ tokens, attentionMask: mask, visual, extra: q });
      const pre = m.prefill({ tokens, attentionMask: mask, visual }, { logits: 'last' });
      expect(pre.logits!.shape).toEqual([2, 1, 40]);
      expect(maxAbsDiff(pre.logits!.dataSync(), tf.slice(full.logits, [0, 5, 0], [2, 1, 40]).dataSync())).toBeLessThan(1e-5);
      const ext = m.extend(pre.cache, { embeds: q }, { logits: 'none' });
      expect(ext.logits).toBeNull();
      expect(ext.hidden.shape).toEqual([2, 3, C]);
      expect(maxAbsDiff(ext.hidden.dataSync(), tf.slice(full.hidden, [0, 6, 0], [2, 3, C]).dataSync())).toBeLessThan(1e-5);
      expect(ext.cache.nextPos).toEqual([4 + 3, 6 + 3]);
      disposeCache(pre.cache);
      disposeCache(ext.cache);
    });
    m.dispose();
  });

  it('queries after a cached prefix get the one-pass gradients (stage 1 trains only them)', () => {
    const m = new MLLM(CFG, new Rng(6));
    const tokens = t2([[0, 11, 12, 13], [11, 12, 14, 15]]);
    const mask = t2([[0, 1, 1, 1], [1, 1, 1, 1]]);
    const q = tf.variable(rnd([1, 3, C], 8) as tf.Tensor3D, true, 'stage1_queries');
    const target = rnd([2, 3, C], 9);
    const readoutLoss = (h: tf.Tensor3D) => tf.mean(tf.square(tf.sub(h, target))) as tf.Scalar;
    const onePass = tf.variableGrads(() => readoutLoss(tf.slice(m.forward({ tokens, attentionMask: mask, extra: q }).hidden, [0, 4, 0], [2, 3, C])), [q]);
    const pre = m.prefill({ tokens, attentionMask: mask }, { logits: 'none' });
    const before = tf.memory().numTensors;
    const cached = tf.variableGrads(() => {
      const ext = m.extend(pre.cache, { embeds: q }, { logits: 'none' });
      disposeCache(ext.cache);
      return readoutLoss(ext.hidden);
    }, [q]);
    expect(maxAbsDiff(cached.value.dataSync(), onePass.value.dataSync())).toBeLessThan(1e-6);
    expect(maxAbsDiff(cached.grads[q.name]!.dataSync(), onePass.grads[q.name]!.dataSync())).toBeLessThan(1e-6);
    tf.dispose([cached.value, cached.grads]);
    expect(tf.memory().numTensors).toBe(before);
    tf.dispose([onePass.value, onePass.grads, pre.hidden, tokens, mask, q, target]);
    disposeCache(pre.cache);
    m.dispose();
  });

  it('rejects bad inputs naming what was expected', () => {
    const m = new MLLM(CFG, new Rng(5));
    tf.tidy(() => {
      const tokens = t2([[11, I, 12]]);
      const mask = t2([[1, 1, 1]]);
      const vis = rnd([1, 1, C], 1) as tf.Tensor3D;
      const f = (x: Partial<Parameters<MLLM['forward']>[0]>) => () => m.forward({ tokens, attentionMask: mask, visual: vis, ...x } as Parameters<MLLM['forward']>[0]);
      expect(f({ tokens: tf.tensor2d([[11, I, 12]]) })).toThrow(/tokens must be int32 \[B, T\], got float32/);
      expect(f({ tokens: tf.tensor3d([[[1]]], [1, 1, 1], 'int32') as unknown as tf.Tensor2D })).toThrow(/tokens must be int32 \[B, T\]/);
      expect(f({ attentionMask: t2([[1, 1]]) })).toThrow(/attentionMask must be \[1, 3\]/);
      expect(f({ attentionMask: t2([[1, 2, 1]]) })).toThrow(/0 \/ 1, got 2 at \[0, 1\]/);
      expect(f({ visual: rnd([1, 1, C + 1], 1) as tf.Tensor3D })).toThrow(/visual must be \[1, V, 16\]/);
      expect(f({ visual: rnd([1, 2, C], 1) as tf.Tensor3D })).toThrow(/row 0 must hold exactly 2 contiguous <image> slots.*found 1/);
      expect(f({ visual: undefined })).toThrow(/row 0 holds 1 <image> slots but no visual tokens/);
      expect(f({ tokens: t2([[11, I, I]]), visual: vis })).toThrow(/exactly 1 contiguous/);
      expect(f({ tokens: t2([[I, 11, I]]), visual: rnd([1, 2, C], 1) as tf.Tensor3D })).toThrow(/exactly 2 contiguous/);
      expect(f({ extra: rnd([2, 1, C], 1) as tf.Tensor3D })).toThrow(/extra must be \[1 or 1, M, 16\]/);
      expect(f({ extra: rnd([1, 1, 3], 1) as tf.Tensor3D })).toThrow(/extra must be/);
      expect(f({ tokens: t2([[11, I, 40]]) })).toThrow(/token id 40 at \[0, 2\] is outside \[0, vocabSize 40\)/);
      expect(f({ extra: rnd([1, 30, C], 1) as tf.Tensor3D })).toThrow(/33 real positions, more than maxPositions 32/);
    });
    m.dispose();
  });

  it('validates its config naming the field', () => {
    expect(() => validateMllmConfig({ hiddenSize: 10, numHeads: 4 })).toThrow(/numHeads: expected a divisor of hiddenSize 10/);
    expect(() => validateMllmConfig({ vocabSize: 0 })).toThrow(/vocabSize: expected a positive integer/);
    expect(() => validateMllmConfig({ vocabSize: 3 })).toThrow(/imageTokenId/);
    expect(() => validateMllmConfig({ tieWordEmbeddings: 1 as unknown as boolean })).toThrow(/tieWordEmbeddings/);
    expect(() => validateMllmConfig({ initStd: -1 })).toThrow(/initStd/);
    expect(validateMllmConfig({}).tieWordEmbeddings).toBe(true);
  });
});

describe('attentionBias', () => {
  it('is causal over real keys; a padding query sees only itself', () => {
    const b = attentionBias([[0, 1, 1]], 0, 3);
    const a = Array.from(b.dataSync()).map((v) => (v === 0 ? 1 : v === MASK_NEG ? 0 : NaN));
    expect(a).toEqual([1, 0, 0, 0, 1, 0, 0, 1, 1]);
    const c = attentionBias([[0, 1, 1, 1]], 2, 2); // 2 cached, 2 new
    expect(Array.from(c.dataSync()).map((v) => (v === 0 ? 1 : 0))).toEqual([0, 1, 1, 0, 0, 1, 1, 1]);
    tf.dispose([b, c]);
  });
});

describe('log-prob helpers', () => {
  it('logProbs matches log softmax by hand and masks', () => {
    tf.tidy(() => {
      const logits = tf.tensor3d([[[0, Math.log(3)], [1, 1]]]); // softmax [1/4, 3/4], [1/2, 1/2]
      const lp = logProbs(logits, t2([[1, 0]]), tf.tensor2d([[1, 0]]));
      expect(maxAbsDiff(lp.dataSync(), [Math.log(0.75), 0])).toBeLessThan(1e-6);
      const s = shiftedLogProbs(logits, t2([[0, 1]]), 1);
      expect(s.shape).toEqual([1, 1]);
      expect(maxAbsDiff(s.dataSync(), [Math.log(0.75)])).toBeLessThan(1e-6);
      expect(() => logProbs(logits, t2([[1, 0, 1]]))).toThrow(/targets must be int32 \[1, 2\]/);
      expect(() => shiftedLogProbs(logits, t2([[1, 0]]), 0)).toThrow(/start must be in \[1, 2\]/);
    });
  });
});

/** A vision encoder + MLLM pair and a loss over both (LM + a query read-out). */
function pair(seed: number, tie: boolean) {
  const enc = new VisionEncoder({ imageSize: 8, patchSize: 4, width: 8, depth: 1, numHeads: 2, mergeSize: 1, outDim: C }, new Rng(seed));
  const m = new MLLM({ ...CFG, tieWordEmbeddings: tie }, new Rng(seed + 1));
  const rng = new Rng(seed + 2);
  const img = Array.from({ length: 2 * 8 * 8 * 3 }, () => rng.next());
  const tok = [[0, 11, I, I, I, I, 12, 13], [11, 14, I, I, I, I, 15, 16]];
  const msk = [[0, 1, 1, 1, 1, 1, 1, 1], [1, 1, 1, 1, 1, 1, 1, 1]];
  const loss = () =>
    tf.tidy(() => {
      const tokens = t2(tok);
      const mask = t2(msk);
      const visual = enc.apply(tf.tensor4d(img, [2, 8, 8, 3]));
      const { logits, hidden } = m.forward({ tokens, attentionMask: mask, visual, extra: rnd([1, 2, C], 9) as tf.Tensor3D });
      const lp = shiftedLogProbs(logits, tokens, 1, mask);
      const q = tf.slice(hidden, [0, 8, 0], [2, 2, C]);
      return tf.add(tf.neg(tf.mean(lp)), tf.mean(tf.square(q))) as tf.Scalar;
    });
  return { enc, m, loss, dispose: () => (enc.dispose(), m.dispose()) };
}

describe('MLLM training', () => {
  for (const tie of [true, false]) {
    it(`gradients reach every parameter of the MLLM and the vision encoder (tied head: ${tie})`, () => {
      const p = pair(10, tie);
      const named = [...p.enc.namedParameters('vision.'), ...p.m.namedParameters('llm.')];
      expect(gradReach(named, p.loss).unreached).toEqual([]);
      expect(p.m.namedParameters().some(([n]) => n.startsWith('lm_head'))).toBe(!tie);
      p.dispose();
    });
  }

  it('frozen parts get no gradient: variableGrads over the trainable set skips them', () => {
    const p = pair(20, true);
    p.enc.setTrainable(false);
    const { value, grads } = tf.variableGrads(p.loss);
    const names = new Set(Object.keys(grads));
    expect(p.enc.parameters().some((v) => names.has(v.name))).toBe(false);
    expect(p.m.parameters().every((v) => names.has(v.name))).toBe(true);
    tf.dispose([value, grads]);
    p.dispose();
  });

  it('one Adam step changes every trainable variable and leaves numTensors unchanged', () => {
    const p = pair(30, true);
    const opt: tf.Optimizer = tf.train.adam(1e-2);
    const step = () => {
      const { value, grads } = tf.variableGrads(p.loss);
      opt.applyGradients(grads);
      tf.dispose([value, grads]);
    };
    step(); // creates Adam's slot variables
    const named = [...p.enc.namedParameters('vision.'), ...p.m.namedParameters('llm.')];
    const before = named.map(([, v]) => Float32Array.from(v.dataSync() as Float32Array));
    const n0 = tf.memory().numTensors;
    step();
    expect(tf.memory().numTensors).toBe(n0);
    const unchanged = named.filter(([, v], i) => maxAbsDiff(before[i]!, v.dataSync()) === 0).map(([n]) => n);
    expect(unchanged).toEqual([]);
    opt.dispose();
    p.dispose();
  });
});

describe('MLLM on wasm', () => {
  it('forward matches cpu within 1e-4', async () => {
    const p = pair(40, true);
    const run = () => tf.tidy(() => Float32Array.from(p.loss().dataSync() as Float32Array));
    const m = new MLLM(CFG, new Rng(41));
    const fwd = () =>
      tf.tidy(() => {
        const out = m.forward({ tokens: t2([[0, 11, 12], [13, 14, 15]]), attentionMask: t2([[0, 1, 1], [1, 1, 1]]), extra: rnd([1, 2, C], 3) as tf.Tensor3D });
        return [Float32Array.from(out.logits.dataSync() as Float32Array), Float32Array.from(out.hidden.dataSync() as Float32Array)];
      });
    const cpuLoss = run();
    const [cpuLogits, cpuHidden] = fwd();
    await setBackend('wasm');
    try {
      expect(maxAbsDiff(run(), cpuLoss)).toBeLessThan(1e-4);
      const [l, h] = fwd();
      expect(maxAbsDiff(l!, cpuLogits!)).toBeLessThan(1e-4);
      expect(maxAbsDiff(h!, cpuHidden!)).toBeLessThan(1e-4);
    } finally {
      await setBackend('cpu');
    }
    m.dispose();
    p.dispose();
  });

  it('trains on wasm with the cpu gradients (needs UnsortedSegmentSum)', async () => {
    const p = pair(50, true);
    const named = [...p.enc.namedParameters('vision.'), ...p.m.namedParameters('llm.')];
    const cpu = gradReach(named, p.loss);
    await setBackend('wasm');
    try {
      const wasm = gradReach(named, p.loss);
      expect(wasm.unreached).toEqual([]);
      for (const [n, g] of cpu.grads) expect(maxAbsDiff(g, wasm.grads.get(n)!), n).toBeLessThan(1e-4);
    } finally {
      await setBackend('cpu');
    }
    p.dispose();
  });
});
