/**
 * Connector: the collapse is exactly the official kernel-M Conv1d (K = 1) or a
 * strided kernel-M/K conv; 'vit' attention is non-causal; shapes, bad config,
 * gradient reach, memory, and cpu vs wasm gradients.
 */
import * as tf from '@tensorflow/tfjs-core';
import { beforeAll, describe, expect, it } from 'vitest';
import { Connector, validateConnectorConfig, type ConnectorConfig } from '../../src/model/connector';
import { Rng } from '../../src/random';
import { expectAllClose, gradientReach, useBackend } from './sam-testutil';

const BASE: Partial<ConnectorConfig> = { inDim: 16, outDim: 8, numQueries: 8, depth: 2, heads: 2, mlpRatio: 2 };

beforeAll(async () => {
  await useBackend('cpu');
});

function queries(b: number, m: number, c: number, seed = 1): tf.Tensor3D {
  return tf.randomNormal([b, m, c], 0, 1, 'float32', seed) as tf.Tensor3D;
}

describe('Connector shape contract and config', () => {
  it('[B, M, C_llm] -> [B, K, C_sam] for both kinds and K in {1, 2, 8}', () => {
    for (const kind of ['vit', 'mlp'] as const) {
      for (const k of [1, 2, 8]) {
        const conn = new Connector({ ...BASE, kind, numOutputTokens: k }, new Rng(3));
        const before = tf.memory().numTensors;
        const q = queries(3, 8, 16);
        const out = conn.apply(q);
        expect(out.shape).toEqual([3, k, 8]);
        tf.dispose([q, out]);
        expect(tf.memory().numTensors).toBe(before);
        expect(conn.blocks.length).toBe(kind === 'vit' ? 2 : 0);
        conn.dispose();
      }
    }
  });

  it('the positional embedding starts at zero; errors name the field', () => {
    const conn = new Connector(BASE, new Rng(3));
    expect(conn.posEmbed.shape).toEqual([1, 8, 16]);
    expect(conn.posEmbed.dataSync().every((v) => v === 0)).toBe(true);
    expect(() => conn.apply(tf.zeros([1, 7, 16]) as tf.Tensor3D)).toThrow(/Connector queries: expected shape \[\*, 8, 16\], got \[1, 7, 16\]/);
    conn.dispose();
    expect(() => validateConnectorConfig({ ...BASE, numOutputTokens: 3 })).toThrow(/ConnectorConfig.numQueries: expected a multiple of numOutputTokens \(3\), got 8/);
    expect(() => validateConnectorConfig({ ...BASE, kind: 'conv' as never })).toThrow(/ConnectorConfig.kind: expected one of 'vit', 'mlp', got "conv"/);
    expect(() => validateConnectorConfig({ ...BASE, heads: 3 })).toThrow(/ConnectorConfig.inDim: expected a multiple of heads/);
    expect(() => validateConnectorConfig({ ...BASE, width: 3 } as never)).toThrow(/unknown field\(s\) width/);
    expect(validateConnectorConfig({}).numOutputTokens).toBe(1);
  });
});

describe('Connector collapse', () => {
  it('K = 1 is the official Conv1d with kernel M (then Linear -> GELU -> Linear)', () => {
    const conn = new Connector({ ...BASE, kind: 'mlp', numOutputTokens: 1 }, new Rng(4));
    tf.tidy(() => {
      const q = queries(2, 8, 16);
      const filter = tf.reshape(conn.collapse.weight, [8, 16, 16]) as tf.Tensor3D; // [kernel M, C_in, C_out]
      const conv = tf.add(tf.conv1d(q, filter, 1, 'valid'), conn.collapse.bias!) as tf.Tensor3D; // [B, 1, C]
      expectAllClose(conn.apply(q), conn.proj.apply(conv), 1e-5);
    });
    conn.dispose();
  });

  it('K = 2 is a strided Conv1d with kernel = stride = M/2', () => {
    const conn = new Connector({ ...BASE, kind: 'mlp', numOutputTokens: 2 }, new Rng(5));
    tf.tidy(() => {
      const q = queries(2, 8, 16);
      const filter = tf.reshape(conn.collapse.weight, [4, 16, 16]) as tf.Tensor3D;
      const conv = tf.add(tf.conv1d(q, filter, 4, 'valid'), conn.collapse.bias!) as tf.Tensor3D; // [B, 2, C]
      expectAllClose(conn.apply(q), conn.proj.apply(conv), 1e-5);
    });
    conn.dispose();
  });

  it("'vit' attention is non-causal: the last query changes the first output token", () => {
    const conn = new Connector({ ...BASE, kind: 'vit', numOutputTokens: 8 }, new Rng(6));
    tf.tidy(() => {
      const q = queries(1, 8, 16);
      const q2 = tf.concat([tf.slice(q, [0, 0, 0], [1, 7, 16]), tf.ones([1, 1, 16])], 1) as tf.Tensor3D;
      const a = tf.slice(conn.apply(q), [0, 0, 0], [1, 1, 8]);
      const b = tf.slice(conn.apply(q2), [0, 0, 0], [1, 1, 8]);
      expect(tf.max(tf.abs(tf.sub(a, b))).dataSync()[0]).toBeGreaterThan(1e-4);
    });
    conn.dispose();
  });
});

describe('Connector training', () => {
  const loss = (conn: Connector) => () => tf.tidy(() => tf.sum(tf.square(conn.apply(queries(2, 8, 16, 9)))) as tf.Scalar);

  it('gradients reach every variable; a train step leaves no tensors behind', () => {
    for (const kind of ['vit', 'mlp'] as const) {
      const conn = new Connector({ ...BASE, kind }, new Rng(7));
      const before = tf.memory().numTensors;
      // The zero-init pos embedding gets a gradient even at zero.
      expect(gradientReach(conn.namedParameters(), loss(conn)).unreached).toEqual([]);
      const opt = tf.train.adam(1e-2);
      opt.minimize(loss(conn), false, conn.trainableParameters());
      expect(conn.posEmbed.dataSync().some((v) => v !== 0)).toBe(true);
      opt.dispose();
      expect(tf.memory().numTensors).toBe(before);
      conn.dispose();
    }
  });

  it('wasm gives the gradients of cpu', async () => {
    const conn = new Connector({ ...BASE, kind: 'vit' }, new Rng(8));
    const cpu = gradientReach(conn.namedParameters(), loss(conn)).grads;
    await useBackend('wasm');
    try {
      const wasm = gradientReach(conn.namedParameters(), loss(conn)).grads;
      for (const [name, g] of cpu) {
        const scale = Math.max(...g.map(Math.abs));
        try {
          expectAllClose(wasm.get(name)!, g, 1e-4 * scale + 1e-7, 1e-3);
        } catch (e) {
          throw new Error(`${name}: ${(e as Error).message}`);
        }
      }
    } finally {
      conn.dispose();
      await useBackend('cpu');
    }
  });
});
