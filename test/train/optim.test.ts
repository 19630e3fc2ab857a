import '@tensorflow/tfjs-backend-cpu';
import * as tf from '@tensorflow/tfjs-core';
import { beforeAll, describe, expect, it } from 'vitest';
import { AdamW, clipByGlobalNorm } from '../../src/train/optim';
import { lrAt } from '../../src/train/schedule';

beforeAll(async () => {
  await tf.setBackend('cpu');
});

describe('lrAt', () => {
  it('warms up linearly, then follows cosine to the floor', () => {
    const s = { kind: 'cosine' as const, lr: 1, warmupSteps: 4, totalSteps: 104 };
    expect(lrAt(0, s)).toBeCloseTo(0.25);
    expect(lrAt(3, s)).toBeCloseTo(1);
    expect(lrAt(54, s)).toBeCloseTo(0.5);
    expect(lrAt(104, s)).toBeCloseTo(0);
    expect(lrAt(104, { ...s, minRatio: 0.1 })).toBeCloseTo(0.1);
  });
  it('decays linearly', () => {
    const s = { kind: 'linear' as const, lr: 2, warmupSteps: 0, totalSteps: 10 };
    expect(lrAt(0, s)).toBeCloseTo(2);
    expect(lrAt(5, s)).toBeCloseTo(1);
    expect(lrAt(10, s)).toBeCloseTo(0);
  });
});

describe('clipByGlobalNorm', () => {
  it('scales to the max norm only when above it', () => {
    const g = { a: tf.tensor1d([3]), b: tf.tensor1d([4]) }; // norm 5
    const { grads, norm } = clipByGlobalNorm(g, 1);
    expect(norm).toBeCloseTo(5);
    expect(grads.a!.dataSync()[0]).toBeCloseTo(0.6, 5);
    expect(grads.b!.dataSync()[0]).toBeCloseTo(0.8, 5);
    const same = clipByGlobalNorm(g, 10);
    expect(same.grads.a!.dataSync()[0]).toBe(3);
    tf.dispose([g.a, g.b, ...Object.values(grads), ...Object.values(same.grads)]);
  });
});

describe('AdamW', () => {
  it('takes the textbook first and second steps, with decoupled weight decay', () => {
    const p = tf.variable(tf.tensor1d([1, -2]));
    const opt = new AdamW(new Map([['p', p]]), { weightDecay: 0.1 });
    const g = tf.tensor1d([0.5, 0.5]);
    opt.apply({ p: g }, 0.01);
    // step 1: m_hat = g, v_hat = g^2 -> update = sign(g) (up to eps) + wd * p
    const exp1 = [1 - 0.01 * (1 + 0.1 * 1), -2 - 0.01 * (1 + 0.1 * -2)];
    Array.from(p.dataSync()).forEach((x, i) => expect(x).toBeCloseTo(exp1[i]!, 6));
    const g2 = tf.tensor1d([-1, 0.5]);
    opt.apply({ p: g2 }, 0.01);
    const m = [0.9 * 0.05 + 0.1 * -1, 0.9 * 0.05 + 0.1 * 0.5];
    const v = [0.999 * 0.00025 + 0.001 * 1, 0.999 * 0.00025 + 0.001 * 0.25];
    const exp2 = exp1.map((p1, i) => {
      const mh = m[i]! / (1 - 0.9 ** 2);
      const vh = v[i]! / (1 - 0.999 ** 2);
      return p1 - 0.01 * (mh / (Math.sqrt(vh) + 1e-8) + 0.1 * p1);
    });
    Array.from(p.dataSync()).forEach((x, i) => expect(x).toBeCloseTo(exp2[i]!, 6));
    tf.dispose([g, g2]);
    opt.dispose();
    p.dispose();
  });

  it('gives each parameter its own multiple of the lr (a parameter group)', () => {
    const a = tf.variable(tf.tensor1d([1]));
    const b = tf.variable(tf.tensor1d([1]));
    const opt = new AdamW(new Map([['vision.w', a], ['mllm.w', b]]));
    const g = tf.tensor1d([0.5]);
    opt.apply({ 'vision.w': g, 'mllm.w': g }, 0.01, (name) => (name.startsWith('vision.') ? 0.1 : 1));
    // step 1 moves each by lr * scale (m_hat / sqrt(v_hat) = 1)
    expect(a.dataSync()[0]).toBeCloseTo(1 - 0.001, 6);
    expect(b.dataSync()[0]).toBeCloseTo(1 - 0.01, 6);
    tf.dispose([a, b, g]);
  });
  it('resumes from saved state to the same parameters, with no tensor left behind', () => {
    const before = tf.memory().numTensors;
    const run = (splitAt: number | null) => {
      const p = tf.tidy(() => tf.variable(tf.tensor1d([0.3, 0.7])));
      let opt = new AdamW(new Map([['p', p]]));
      for (let s = 0; s < 4; s++) {
        if (s === splitAt) {
          const st = opt.state();
          const copies = Object.fromEntries(Object.entries(st.tensors).map(([k, t]) => [k, tf.clone(t)]));
          opt.dispose();
          opt = new AdamW(new Map([['p', p]]));
          opt.loadState(st.step, copies);
          tf.dispose(Object.values(copies));
        }
        const g = tf.tensor1d([Math.sin(s), Math.cos(s)]);
        opt.apply({ p: g }, 0.1);
        g.dispose();
      }
      const out = Array.from(p.dataSync());
      opt.dispose();
      p.dispose();
      return out;
    };
    expect(run(2)).toEqual(run(null));
    expect(tf.memory().numTensors).toBe(before);
  });

  it('rejects a gradient for an unknown parameter and a wrongly shaped state', () => {
    const p = tf.variable(tf.tensor1d([1]));
    const opt = new AdamW(new Map([['p', p]]));
    const g = tf.tensor1d([1]);
    expect(() => opt.apply({ q: g }, 0.1)).toThrow(/unknown parameter 'q'/);
    const bad = tf.zeros([2]);
    expect(() => opt.loadState(1, { 'm.p': bad })).toThrow(/'m.p' has shape \[2\], parameter has \[1\]/);
    tf.dispose([g, bad, p]);
    opt.dispose();
  });
});
