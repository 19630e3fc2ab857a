/**
 * The assembled LENS model and the baselines: forward contract, cached encodings
 * and the stage-1 cached prefix give the same outputs, per-stage gradient reach
 * (every trainable variable, no frozen one), memory after a forward pass and a
 * train step, and wasm agreement.
 */
import * as tf from '@tensorflow/tfjs-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { buildLisa, buildSegZero } from '../../src/model/baselines';
import { LENS_UNUSED_PARAMS, STAGES, repeatRows, syntheticLensBatch, type LensModel, type Stage } from '../../src/model/lens';
import { disposeCache } from '../../src/model/mllm';
import { buildLens } from '../../src/model/presets';
import { segLoss, tokenCrossEntropy } from '../../src/model/losses';
import { upsampleMaskLogits } from '../../src/model/sam';
import { ANSWER_END_ID } from '../../src/model/tokenizer';
import { expectAllClose, gradientReach, useBackend } from './sam-testutil';

let model: LensModel;
let batch: ReturnType<typeof syntheticLensBatch>;

beforeAll(async () => {
  await useBackend('cpu');
  model = buildLens('tiny', { seed: 1 });
  batch = syntheticLensBatch(model.config, { batch: 2, promptLength: 6, answerLength: 6, seed: 2 });
});
afterAll(() => {
  model.dispose();
  tf.dispose(batch);
});

/** L = L_seg(upsampled masks) + token CE on the answer: touches every part LENS trains. */
function lensLoss(m: LensModel): tf.Scalar {
  return tf.tidy(() => {
    const out = m.forward({ tokens: batch.tokens, attentionMask: batch.attentionMask, images: batch.images });
    const [b, t] = batch.tokens.shape;
    const logits = tf.slice(out.logits, [0, 0, 0], [b, t - 1, -1]) as tf.Tensor3D;
    const targets = tf.slice(batch.tokens, [0, 1], [b, t - 1]) as tf.Tensor2D;
    const ce = tokenCrossEntropy(logits, targets, tf.onesLike(targets) as tf.Tensor2D);
    const s = model.config.sam.imageSize;
    const seg = segLoss(upsampleMaskLogits(out.masks, s, s), batch.labels);
    return tf.addN([ce, seg, tf.mean(tf.square(out.iou))]) as tf.Scalar;
  });
}

describe('LensModel forward', () => {
  it('returns logits [B, T, vocab], query states [B, M, C], SAM prompts [B, K, C_sam], masks [B, 4h, 4w], iou [B, 1]', () => {
    const before = tf.memory().numTensors;
    const out = model.forward({ tokens: batch.tokens, attentionMask: batch.attentionMask, images: batch.images });
    const c = model.config;
    const t = batch.tokens.shape[1];
    expect(out.logits.shape).toEqual([2, t, c.mllm.vocabSize]);
    expect(out.queryStates.shape).toEqual([2, c.context.numQueries, c.mllm.hiddenSize]);
    expect(out.samPrompts.shape).toEqual([2, 1, c.sam.promptDim]);
    expect(out.masks.shape).toEqual([2, 64, 64]);
    expect(out.iou.shape).toEqual([2, 1]);
    tf.dispose(out);
    expect(tf.memory().numTensors).toBe(before);
  });

  it('cached encodings (batch 1, broadcast) give the outputs of the images path', () => {
    tf.tidy(() => {
      const img1 = tf.slice(batch.images, [0, 0, 0, 0], [1, -1, -1, -1]) as tf.Tensor4D;
      const tokens = tf.concat([tf.slice(batch.tokens, [0, 0], [1, -1]), tf.slice(batch.tokens, [0, 0], [1, -1])], 0) as tf.Tensor2D;
      const a = model.forward({ tokens, attentionMask: batch.attentionMask, images: repeatRows(img1, 2) });
      const b = model.forward({ tokens, attentionMask: batch.attentionMask, visual: model.vision.apply(img1), samEmbeddings: model.sam.embedImage(img1) });
      expectAllClose(b.logits, a.logits, 1e-5);
      expectAllClose(b.masks, a.masks, 1e-4);
    });
  });

  it('segmentFromCache (stage 1: prefix encoded once, only the queries run) equals forward', () => {
    tf.tidy(() => {
      const full = model.forward({ tokens: batch.tokens, attentionMask: batch.attentionMask, images: batch.images });
      const { logits, hidden, cache } = model.mllm.prefill(
        { tokens: batch.tokens, attentionMask: batch.attentionMask, visual: model.vision.apply(batch.images) },
        { logits: 'none' },
      );
      const seg = model.segmentFromCache(cache, model.sam.embedImage(batch.images));
      expect(logits).toBeNull();
      hidden.dispose();
      disposeCache(cache);
      expectAllClose(seg.queryStates, full.queryStates, 1e-4);
      expectAllClose(seg.masks, full.masks, 1e-4);
    });
  });

  it('bad inputs are named', () => {
    tf.tidy(() => {
      const visual = model.vision.apply(batch.images);
      expect(() => model.forward({ tokens: batch.tokens, attentionMask: batch.attentionMask, visual })).toThrow(/give images or samEmbeddings/);
      expect(() => model.forward({ tokens: batch.tokens, attentionMask: tf.ones([2, 3]) as tf.Tensor2D, images: batch.images })).toThrow(
        /LensModel.forward attentionMask: expected shape \[2, \d+\]/,
      );
      const three = tf.concat([batch.images, batch.images, batch.images], 0) as tf.Tensor4D;
      expect(() => model.forward({ tokens: batch.tokens, attentionMask: batch.attentionMask, images: three })).toThrow(/images has batch 6, expected 2 or 1/);
      expect(() => model.setStage('stage9' as Stage)).toThrow(/unknown stage "stage9"/);
    });
  });

  it('repeatRows lays out G rollouts per prompt', () => {
    tf.tidy(() => {
      expect(Array.from(repeatRows(tf.tensor2d([[1, 2], [3, 4]]), 2).dataSync())).toEqual([1, 2, 1, 2, 3, 4, 3, 4]);
    });
  });
});

describe('LensModel stages', () => {
  it('stage sets: stage1 = queries + connector; stage2 = all but SAM image encoder; buffers never', () => {
    const names = (s: Stage) => model.stageSplit(s).trainable.map(([n]) => n);
    expect(names('stage1').every((n) => n.startsWith('context.') || n.startsWith('connector.'))).toBe(true);
    expect(names('stage1')).toContain('context.queries');
    const s2 = names('stage2');
    expect(s2.some((n) => n.startsWith('sam.image_encoder.'))).toBe(false);
    expect(s2).not.toContain('sam.prompt_encoder.pe_layer.positional_encoding_gaussian_matrix');
    expect(s2.length + model.stageSplit('stage2').frozen.length).toBe(model.namedParameters().length);
    for (const s of STAGES) expect(names(s).length).toBeGreaterThan(0);
  });

  for (const stage of ['stage1', 'stage2'] as const) {
    it(`${stage}: gradients reach every trainable variable and no frozen one`, () => {
      const before = tf.memory().numTensors;
      model.setStage(stage);
      const { trainable, frozen } = model.stageSplit(stage);
      const reach = gradientReach([...trainable, ...frozen], () => lensLoss(model));
      const unreached = new Set(reach.unreached);
      const missed = trainable.map(([n]) => n).filter((n) => unreached.has(n) && !LENS_UNUSED_PARAMS.includes(n));
      expect(missed).toEqual([]);
      expect(frozen.map(([n]) => n).filter((n) => !unreached.has(n))).toEqual([]);
      expect(tf.memory().numTensors).toBe(before);
    });
  }

  it('a stage-2 train step changes the trainable variables only and leaves no tensors behind', () => {
    const vars = model.setStage('stage2');
    const enc = Float32Array.from(model.sam.imageEncoder.posEmbed.dataSync());
    const q = Float32Array.from(model.context.queries.dataSync());
    const opt = tf.train.adam(1e-3);
    const before = tf.memory().numTensors;
    tf.dispose(opt.minimize(() => lensLoss(model), true, vars) ?? []);
    const afterFirst = tf.memory().numTensors; // Adam's moments are created on the first step
    tf.dispose(opt.minimize(() => lensLoss(model), true, vars) ?? []);
    expect(tf.memory().numTensors).toBe(afterFirst);
    expect(afterFirst - before).toBe(2 * vars.length); // Adam's m and v per trained variable
    expect(model.context.queries.dataSync()).not.toEqual(q);
    expect(Array.from(model.sam.imageEncoder.posEmbed.dataSync())).toEqual(Array.from(enc));
    opt.dispose();
  });

  it('wasm gives the forward pass of cpu and trains stage 1 with the same gradients', async () => {
    model.setStage('stage1');
    const { trainable } = model.stageSplit('stage1');
    const cpuOut = tf.tidy(() => model.forward({ ...batch }).masks.dataSync());
    const cpu = gradientReach(trainable, () => lensLoss(model)).grads;
    await useBackend('wasm');
    try {
      const wasmOut = tf.tidy(() => model.forward({ ...batch }).masks.dataSync());
      expectAllClose(wasmOut, cpuOut, 1e-3, 1e-3);
      const wasm = gradientReach(trainable, () => lensLoss(model)).grads;
      for (const [name, g] of cpu) {
        const scale = Math.max(...g.map(Math.abs));
        try {
          expectAllClose(wasm.get(name)!, g, 2e-3 * scale + 1e-7, 2e-2);
        } catch (e) {
          throw new Error(`${name}: ${(e as Error).message}`);
        }
      }
    } finally {
      await useBackend('cpu');
    }
  });

  it('wasm trains stage 2 (needs the gather gradient kernel)', async () => {
    const vars = model.setStage('stage2');
    await useBackend('wasm');
    try {
      const opt = tf.train.sgd(1e-3);
      tf.dispose(opt.minimize(() => lensLoss(model), true, vars) ?? []);
      opt.dispose();
    } finally {
      await useBackend('cpu');
    }
  });
});

describe('baselines', () => {
  it('LISA-style: the segmentation token state prompts SAM; trains LLM, projection and SAM decoder', () => {
    const lisa = buildLisa('tiny', { seed: 3 });
    const before = tf.memory().numTensors;
    const tokens = tf.tidy(() => {
      const t = batch.tokens.arraySync();
      t[0]![t[0]!.length - 3] = ANSWER_END_ID;
      t[1]![t[1]!.length - 1] = ANSWER_END_ID;
      return tf.tensor2d(t, undefined, 'int32');
    });
    const out = lisa.forward({ tokens, attentionMask: batch.attentionMask, images: batch.images });
    expect(out.samPrompts.shape).toEqual([2, 1, 32]);
    expect(out.masks.shape).toEqual([2, 64, 64]);
    tf.dispose(out);
    const vars = lisa.setTraining();
    const { trainable, frozen } = lisa.trainingSplit();
    expect(vars.length).toBe(trainable.length);
    const loss = () =>
      tf.tidy(() => {
        const o = lisa.forward({ tokens, attentionMask: batch.attentionMask, images: batch.images });
        return tf.addN([segLoss(upsampleMaskLogits(o.masks, 64, 64), batch.labels), tf.mean(o.logits), tf.mean(tf.square(o.iou))]) as tf.Scalar;
      });
    const reach = gradientReach([...trainable, ...frozen], loss);
    const unreached = new Set(reach.unreached);
    expect(trainable.map(([n]) => n).filter((n) => unreached.has(n) && !LENS_UNUSED_PARAMS.includes(n))).toEqual([]);
    expect(frozen.map(([n]) => n).filter((n) => !unreached.has(n))).toEqual([]);
    expect(() => lisa.forward({ tokens: batch.tokens, attentionMask: batch.attentionMask, images: batch.images })).toThrow(/row\(s\) 0, 1 hold no segmentation token/);
    tokens.dispose();
    expect(tf.memory().numTensors).toBe(before);
    lisa.dispose();
  });

  it('Seg-Zero-style: the parsed box prompts a frozen SAM; unparsable answers give box [0, 0, 0, 0]', () => {
    const sz = buildSegZero('tiny', { seed: 4 });
    const before = tf.memory().numTensors;
    const good = '<think>left</think><answer>[{"bbox_2d": [3, 4, 40, 50], "label": "cat"}]</answer>';
    const seg = sz.segment([good, 'garbage'], { images: tf.keep(tf.slice(batch.images, [0, 0, 0, 0], [1, -1, -1, -1])) as tf.Tensor4D });
    expect(seg.boxes).toEqual([[3, 4, 40, 50], null]);
    expect(seg.masks.shape).toEqual([2, 64, 64]);
    const ref = tf.tidy(() => sz.sam.decode(sz.sam.embedImage(tf.slice(batch.images, [0, 0, 0, 0], [1, -1, -1, -1]) as tf.Tensor4D), { boxes: tf.tensor2d([[3, 4, 40, 50], [0, 0, 0, 0]]) }).masks);
    expectAllClose(seg.masks, ref, 1e-5);
    tf.dispose([seg.masks, seg.iou, ref]);
    const { trainable } = sz.trainingSplit();
    expect(trainable.some(([n]) => n.startsWith('sam.'))).toBe(false);
    const logits = sz.policyLogits({ tokens: batch.tokens, attentionMask: batch.attentionMask, images: batch.images });
    expect(logits.shape).toEqual([2, batch.tokens.shape[1], 512]);
    logits.dispose();
    sz.dispose();
    expect(tf.memory().numTensors).toBeLessThanOrEqual(before + 1); // the kept image slice below
  });
});
