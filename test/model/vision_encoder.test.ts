/**
 * Vision encoder: patchify == stride-p conv2d, shape contract, bad arguments, memory,
 * gradient reach, one Adam step changes every variable, wasm forward == cpu forward;
 * with both stems (patch, conv), and the pos2dScale code.
 */
import * as tf from '@tensorflow/tfjs-core';
import { beforeAll, describe, expect, it } from 'vitest';
import { Rng } from '../../src/random';
import { VisionEncoder, numVisualTokens, patchify, sinCos2d, validateVisionEncoderConfig, type VisionEncoderConfig } from '../../src/model/vision_encoder';
import { gradReach, maxAbsDiff, setBackend } from './mllm-testutil';

const CFG: Partial<VisionEncoderConfig> = { imageSize: 16, patchSize: 4, width: 8, depth: 1, numHeads: 2, mergeSize: 2, outDim: 12 };
const STEMS = [CFG, { ...CFG, stem: 'conv' as const }];

function images(b: number, size: number, seed = 1): tf.Tensor4D {
  const rng = new Rng(seed);
  return tf.tensor4d(new Float32Array(b * size * size * 3).map(() => rng.next()), [b, size, size, 3]);
}

beforeAll(async () => {
  await setBackend('cpu');
});

describe('patchify', () => {
  it('times a weight equals conv2d with that weight as an HWIO filter, stride p', () => {
    tf.tidy(() => {
      const x = images(2, 8);
      const w = tf.randomNormal([2 * 2 * 3, 5], 0, 1, 'float32', 7) as tf.Tensor2D;
      const viaPatches = tf.reshape(tf.matMul(patchify(x, 2), w), [2, 4, 4, 5]);
      const viaConv = tf.conv2d(x, tf.reshape(w, [2, 2, 3, 5]) as tf.Tensor4D, 2, 'valid');
      expect(maxAbsDiff(viaPatches.dataSync(), viaConv.dataSync())).toBeLessThan(1e-5);
    });
  });
  it('orders patches row-major and pixels (py, px, ch) inside a patch', () => {
    tf.tidy(() => {
      const x = tf.tensor4d(Array.from({ length: 16 }, (_, i) => i), [1, 4, 4, 1]);
      expect(Array.from(patchify(x, 2).dataSync())).toEqual([0, 1, 4, 5, 2, 3, 6, 7, 8, 9, 12, 13, 10, 11, 14, 15]);
      expect(() => patchify(x, 3)).toThrow(/not a multiple of the patch size 3/);
    });
  });
});

describe('VisionEncoder', () => {
  it('maps [B, H, W, 3] to [B, V, outDim] with V = (H / p / merge)^2', () => {
    const enc = new VisionEncoder(CFG, new Rng(0));
    expect(enc.numTokens).toBe(4);
    expect(numVisualTokens(CFG)).toBe(4);
    expect(numVisualTokens({ ...CFG, mergeSize: 1 })).toBe(16);
    const before = tf.memory().numTensors;
    const x = images(3, 16);
    const y = enc.apply(x);
    expect(y.shape).toEqual([3, 4, 12]);
    tf.dispose([x, y]);
    expect(tf.memory().numTensors).toBe(before);
    const flat = new VisionEncoder({ ...CFG, mergeSize: 1 }, new Rng(0));
    tf.tidy(() => {
      expect(flat.apply(images(1, 16)).shape).toEqual([1, 16, 12]);
    });
    enc.dispose();
    flat.dispose();
  });

  it('rejects wrong sizes, ranks and dtypes', () => {
    const enc = new VisionEncoder(CFG, new Rng(0));
    tf.tidy(() => {
      expect(() => enc.apply(images(1, 8))).toThrow(/images must be \[B, 16, 16, 3\], got \[1, 8, 8, 3\]/);
      expect(() => enc.apply(tf.zeros([1, 16, 16, 1]) as tf.Tensor4D)).toThrow(/\[B, 16, 16, 3\]/);
      expect(() => enc.apply(tf.zeros([16, 16, 3]) as unknown as tf.Tensor4D)).toThrow(/\[B, 16, 16, 3\]/);
      expect(() => enc.apply(tf.zeros([1, 16, 16, 3], 'int32') as tf.Tensor4D)).toThrow(/float32/);
    });
    enc.dispose();
  });

  it('validates its config naming the field', () => {
    expect(() => validateVisionEncoderConfig({ patchSize: 5 })).toThrow(/patchSize: expected a divisor of imageSize 64/);
    expect(() => validateVisionEncoderConfig({ imageSize: 32, patchSize: 8, mergeSize: 3 })).toThrow(/mergeSize/);
    expect(() => validateVisionEncoderConfig({ width: 10, numHeads: 4 })).toThrow(/numHeads/);
    expect(() => validateVisionEncoderConfig({ depth: 0 })).toThrow(/depth: expected a positive integer/);
    expect(() => validateVisionEncoderConfig({ initStd: 0 })).toThrow(/initStd/);
    expect(() => validateVisionEncoderConfig({ pos2dScale: -1 })).toThrow(/pos2dScale: expected a number >= 0, got -1/);
    expect(() => validateVisionEncoderConfig({ pos2dScale: 1, outDim: 10 })).toThrow(/pos2dScale: the 2D code needs outDim divisible by 4, got outDim 10/);
    expect(() => validateVisionEncoderConfig({ stem: 'cnn' as never })).toThrow(/stem: expected 'patch' or 'conv', got "cnn"/);
    expect(() => validateVisionEncoderConfig({ imageSize: 60, patchSize: 6, mergeSize: 1, stem: 'conv' })).toThrow(/stem: 'conv' needs patchSize a power of 2/);
  });

  it('pos2dScale adds the sin-cos code of each token\'s (row, column), nothing else', () => {
    // (row 0, col 0): sin 0 = 0, cos 0 = 1 in both quarters; (row 1, col 0) differs only in the row quarters
    const code = sinCos2d(2, 8, 0.5);
    expect(Array.from(code.subarray(0, 8))).toEqual([0, 0, 0.5, 0.5, 0, 0, 0.5, 0.5]);
    expect(Array.from(code.subarray(16, 20))).toEqual([0, 0, 0.5, 0.5]);
    expect(code[20]).toBeCloseTo(0.5 * Math.sin(Math.PI), 6);
    const plain = new VisionEncoder(CFG, new Rng(4));
    const coded = new VisionEncoder({ ...CFG, pos2dScale: 0.5 }, new Rng(4));
    tf.tidy(() => {
      const x = images(2, 16);
      const diff = tf.sub(coded.apply(x), plain.apply(x)).dataSync();
      const want = sinCos2d(2, 12, 0.5);
      for (let b = 0; b < 2; b++) expect(maxAbsDiff(diff.subarray(b * 48, (b + 1) * 48), want)).toBeLessThan(1e-5);
    });
    plain.dispose();
    coded.dispose();
  });

  it('the conv stem sees across patch borders: a pixel moves the tokens of neighbouring patches', () => {
    const enc = new VisionEncoder({ ...CFG, depth: 1, mergeSize: 1, stem: 'conv' }, new Rng(5));
    const embed = (x: tf.Tensor4D) => (enc as unknown as { embedPatches(x: tf.Tensor4D): tf.Tensor2D }).embedPatches(x);
    tf.tidy(() => {
      const x = tf.zeros([1, 16, 16, 3]) as tf.Tensor4D;
      const poked = tf.add(x, tf.tensor4d(Array.from({ length: 16 * 16 * 3 }, (_, i) => (i === (4 * 16 + 3) * 3 ? 1 : 0)), [1, 16, 16, 3])) as tf.Tensor4D; // pixel (4, 3): patch (1, 0)
      const d = tf.sum(tf.abs(tf.sub(embed(poked), embed(x))), -1).dataSync(); // [16 patches]
      expect(d[1 * 4 + 0]).toBeGreaterThan(0); // its own patch
      expect(d[1 * 4 + 1]).toBeGreaterThan(0); // the patch to its right, across the border
      expect(d[3 * 4 + 3]).toBe(0); // a far patch
    });
    enc.dispose();
  });

  it.each(STEMS)('gradients reach every parameter; an Adam step changes each and leaks no tensor (%o)', (cfg) => {
    const enc = new VisionEncoder(cfg, new Rng(1));
    const x = images(2, 16);
    const target = tf.randomNormal([2, 4, 12], 0, 1, 'float32', 3);
    const loss = () => tf.mean(tf.square(tf.sub(enc.apply(x), target))) as tf.Scalar;
    expect(gradReach(enc.namedParameters(), loss).unreached).toEqual([]);
    const opt: tf.Optimizer = tf.train.adam(1e-2);
    const step = () => {
      const { value, grads } = tf.variableGrads(loss);
      opt.applyGradients(grads);
      tf.dispose([value, grads]);
    };
    step(); // creates Adam's slot variables
    const before = enc.namedParameters().map(([n, v]) => [n, Float32Array.from(v.dataSync() as Float32Array)] as const);
    const n0 = tf.memory().numTensors;
    step();
    expect(tf.memory().numTensors).toBe(n0);
    const unchanged = before.filter(([n, old]) => maxAbsDiff(old, enc.namedParameters().find(([m]) => m === n)![1].dataSync()) === 0);
    expect(unchanged.map(([n]) => n)).toEqual([]);
    opt.dispose();
    tf.dispose([x, target]);
    enc.dispose();
  });
});

describe('VisionEncoder on wasm', () => {
  it.each(STEMS)('gives the cpu forward within 1e-4 (%o)', async (cfg) => {
    const enc = new VisionEncoder(cfg, new Rng(2));
    const host = images(2, 16).arraySync();
    const run = () => tf.tidy(() => Float32Array.from(enc.apply(tf.tensor4d(host)).dataSync() as Float32Array));
    const cpu = run();
    await setBackend('wasm');
    try {
      const wasm = run();
      expect(maxAbsDiff(cpu, wasm)).toBeLessThan(1e-4);
    } finally {
      await setBackend('cpu');
    }
    enc.dispose();
  });

  // The patch stem uses no gather and no conv, so even stock wasm 4.22 has every kernel its
  // gradient needs; the conv stem's filter gradient is the project's Conv2DBackpropFilter.
  it.each(STEMS)('trains one step on wasm with the cpu gradients (%o)', async (cfg) => {
    const enc = new VisionEncoder(cfg, new Rng(3));
    const host = images(2, 16).arraySync();
    const grads = () => {
      const x = tf.tensor4d(host);
      const r = gradReach(enc.namedParameters(), () => tf.mean(tf.square(enc.apply(x))) as tf.Scalar);
      x.dispose();
      return r;
    };
    const cpu = grads();
    await setBackend('wasm');
    try {
      const wasm = grads();
      expect(wasm.unreached).toEqual([]);
      for (const [n, g] of cpu.grads) expect(maxAbsDiff(g, wasm.grads.get(n)!), n).toBeLessThan(1e-4);
    } finally {
      await setBackend('cpu');
    }
    enc.dispose();
  });
});
