import '@tensorflow/tfjs-backend-cpu';
import * as tf from '@tensorflow/tfjs-core';
import { beforeAll, describe, expect, it } from 'vitest';
import { clippedSurrogate, groupAdvantages, grpoLoss, k3Kl, sequenceTokenMean, zeroSpreadFraction } from '../../src/train/grpo';

beforeAll(async () => {
  await tf.setBackend('cpu');
});

const close = (a: number[], b: number[], tol = 1e-5) => {
  expect(a.length).toBe(b.length);
  a.forEach((x, i) => expect(x).toBeCloseTo(b[i]!, -Math.log10(tol)));
};

describe('groupAdvantages', () => {
  it('normalises within each group with the unbiased std and the 1e-4 epsilon', () => {
    // group 1: [1, 0] -> mean 0.5, std sqrt(0.5) = 0.70711; group 2: [3, 3, 0] would need G=3, so use [2, 4]
    const a = groupAdvantages([1, 0, 2, 4], 2);
    const s1 = Math.sqrt(0.5);
    const s2 = Math.sqrt(2);
    close(a, [0.5 / (s1 + 1e-4), -0.5 / (s1 + 1e-4), -1 / (s2 + 1e-4), 1 / (s2 + 1e-4)]);
  });
  it('gives zeros for a group with no spread', () => {
    close(groupAdvantages([0.3, 0.3, 0.3], 3), [0, 0, 0]);
  });
  it('rejects a reward count that is not a multiple of G', () => {
    expect(() => groupAdvantages([1, 2, 3], 2)).toThrow(/multiple of groupSize 2/);
  });
  it('counts flat groups', () => {
    expect(zeroSpreadFraction([1, 1, 0, 1, 2, 2], 2)).toBeCloseTo(2 / 3);
  });
});

describe('k3Kl and the clipped surrogate', () => {
  it('k3 matches exp(d) - d - 1 and is zero when the policies agree', () => {
    const logp = tf.tensor2d([[-1, -2]]);
    const ref = tf.tensor2d([[-1, -1.5]]);
    const kl = k3Kl(logp, ref);
    const d = 0.5;
    close(Array.from(kl.dataSync()), [0, Math.exp(d) - d - 1]);
    tf.dispose([logp, ref, kl]);
  });
  it('clips the ratio on the side the advantage points to', () => {
    // rho = e^{0.5} = 1.6487 with A = +1 -> min(1.6487, 1.2) = 1.2; with A = -1 -> min(-1.6487, -1.2) = -1.6487
    const logp = tf.tensor2d([[0.5], [0.5]]);
    const old = tf.tensor2d([[0], [0]]);
    const adv = tf.tensor1d([1, -1]);
    const s = clippedSurrogate(logp, old, adv, 0.2);
    close(Array.from(s.dataSync()), [1.2, -Math.exp(0.5)]);
    tf.dispose([logp, old, adv, s]);
  });
});

describe('grpoLoss', () => {
  it('equals -mean(A) token-averaged per sequence when on-policy and beta = 0', () => {
    const logp = tf.tensor2d([[-1, -2, -3], [-0.5, -0.5, -9]]);
    const mask = tf.tensor2d([[1, 1, 1], [1, 1, 0]]);
    const adv = tf.tensor1d([2, -1]);
    const { loss, kl, clipFraction } = grpoLoss({ logp, oldLogp: logp, refLogp: null, advantages: adv, mask, beta: 0.04, clipEps: 0.2 });
    expect(loss.dataSync()[0]).toBeCloseTo(-(2 + -1) / 2, 6);
    expect(kl.dataSync()[0]).toBe(0);
    expect(clipFraction.dataSync()[0]).toBe(0);
    tf.dispose([logp, mask, adv, loss, kl, clipFraction]);
  });
  it('adds beta times the masked k3 KL, hand-computed', () => {
    const logp = tf.tensor2d([[-1, -1], [-2, -2]]);
    const ref = tf.tensor2d([[-1.5, -1], [-2, -1]]);
    const mask = tf.tensor2d([[1, 1], [1, 0]]);
    const adv = tf.tensor1d([0, 0]);
    const beta = 0.1;
    const k = (d: number) => Math.exp(d) - d - 1;
    const klSeq = [(k(-0.5) + k(0)) / 2, k(0)]; // the masked token (d = 1) is excluded
    const { loss, kl, clipFraction } = grpoLoss({ logp, oldLogp: logp, refLogp: ref, advantages: adv, mask, beta, clipEps: 0.2 });
    expect(kl.dataSync()[0]).toBeCloseTo((klSeq[0]! + klSeq[1]!) / 2, 6);
    expect(loss.dataSync()[0]).toBeCloseTo((beta * (klSeq[0]! + klSeq[1]!)) / 2, 6);
    tf.dispose([logp, ref, mask, adv, loss, kl, clipFraction]);
  });
  it('has gradient -A/T_i per token on-policy (the policy-gradient identity)', () => {
    const mask = tf.tensor2d([[1, 1, 1, 1], [1, 1, 0, 0]]);
    const adv = tf.tensor1d([1.5, -0.5]);
    const logp = tf.variable(tf.tensor2d([[-1, -1, -1, -1], [-1, -1, -1, -1]]));
    const old = tf.tensor2d([[-1, -1, -1, -1], [-1, -1, -1, -1]]);
    const g = tf.grad((x: tf.Tensor) => grpoLoss({ logp: x as tf.Tensor2D, oldLogp: old, refLogp: null, advantages: adv, mask, beta: 0, clipEps: 0.2 }).loss)(logp);
    close(Array.from(g.dataSync()), [-1.5 / 8, -1.5 / 8, -1.5 / 8, -1.5 / 8, 0.5 / 4, 0.5 / 4, 0, 0]);
    tf.dispose([mask, adv, logp, old, g]);
  });
  it('rejects mismatched shapes', () => {
    const a = tf.zeros([2, 3]) as tf.Tensor2D;
    const b = tf.zeros([2, 4]) as tf.Tensor2D;
    const adv = tf.zeros([2]) as tf.Tensor1D;
    expect(() => grpoLoss({ logp: a, oldLogp: a, refLogp: null, advantages: adv, mask: b, beta: 0, clipEps: 0.2 })).toThrow(/same \[B, T\] shape/);
    tf.dispose([a, b, adv]);
  });
  it('leaves no tensors behind', () => {
    const logp = tf.tensor2d([[-1, -2]]);
    const mask = tf.tensor2d([[1, 1]]);
    const adv = tf.tensor1d([1]);
    const before = tf.memory().numTensors;
    const out = grpoLoss({ logp, oldLogp: logp, refLogp: logp, advantages: adv, mask, beta: 0.04, clipEps: 0.2 });
    tf.dispose([out.loss, out.kl, out.clipFraction]);
    const m = sequenceTokenMean(logp, mask);
    m.dispose();
    expect(tf.memory().numTensors).toBe(before);
    tf.dispose([logp, mask, adv]);
  });
});
