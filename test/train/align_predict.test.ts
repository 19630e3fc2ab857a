import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as tf from '@tensorflow/tfjs-core';
import { beforeAll, describe, expect, it } from 'vitest';
import { initBackend } from '../../src/backend';
import { ensureBenchmark } from '../../src/data/generate';
import { formatAnswer } from '../../src/model/answer';
import { buildLens } from '../../src/model/presets';
import type { Tokenizer } from '../../src/model/tokenizer';
import { encodeBatch, disposeBatch, fitTokenizer, loadExamples, type TrainExample } from '../../src/train/data';
import { inputBoxToOriginal, maskLogitsFor, predictLens, scoreLens, type LensPrediction } from '../../src/train/predict';
import { loadTrainingSet } from '../../src/train/stage_io';

const root = mkdtempSync(join(tmpdir(), 'lens-predict-'));
let tokenizer: Tokenizer;
let examples: TrainExample[];

beforeAll(async () => {
  await initBackend({ quiet: true });
  await ensureBenchmark(root, { scale: 'tiny', seed: 0 }, { quiet: true });
  tokenizer = fitTokenizer(await loadTrainingSet(root, 64, { quiet: true }));
  examples = await loadExamples(root, 'refcoco', 'val', { imageSize: 64, limit: 3, quiet: true });
});

describe('predictLens', () => {
  it('returns one full-size binary mask, box and format flag per sentence, leaking no tensor', () => {
    const model = buildLens('tiny', { seed: 0 });
    const before = tf.memory().numTensors;
    const preds = predictLens(model, tokenizer, examples, { batchSize: 2, maxNewTokens: 5 });
    expect(tf.memory().numTensors).toBe(before);
    expect(preds.map((p) => p.id)).toEqual(examples.map((e) => e.id));
    preds.forEach((p, i) => {
      expect(p.mask.length).toBe(examples[i]!.sample.height * examples[i]!.sample.width);
      expect(p.mask.every((v) => v === 0 || v === 1)).toBe(true);
      expect(p.formatValid).toBe(false); // 5 tokens cannot hold a whole answer
      expect(typeof p.text).toBe('string');
    });
    model.dispose();
  });

  it('its mask path (MLLM without logits) equals the full forward pass on the same tokens', () => {
    const model = buildLens('tiny', { seed: 1 });
    const b = encodeBatch(tokenizer, examples, { numVisual: model.vision.numTokens, side: 64, withAnswer: true });
    const a = maskLogitsFor(model, b.tokens, b.attentionMask, b.images);
    const full = model.forward({ tokens: b.tokens, attentionMask: b.attentionMask, images: b.images });
    const d = tf.tidy(() => tf.max(tf.abs(tf.sub(a, full.masks))).dataSync()[0]!);
    expect(d).toBeLessThan(1e-4);
    tf.dispose([a, ...Object.values(full)]);
    disposeBatch(b);
    model.dispose();
  });
});

describe('scoreLens', () => {
  it('scores perfect predictions 1 and counts the format rate', () => {
    const preds: LensPrediction[] = examples.map((e, i) => ({
      id: e.id,
      text: formatAnswer({ thinking: 't', box: e.box, label: e.label }),
      box: e.box,
      formatValid: i !== 0,
      mask: e.sample.mask().map((v) => (v === 1 ? 1 : 0)),
    }));
    const r = scoreLens(examples, preds, 64);
    expect(r.giou).toBeCloseTo(1, 4);
    expect(r.ciou).toBeCloseTo(1, 6);
    expect(r.box_acc50).toBe(1);
    expect(r.format_rate).toBeCloseTo(2 / 3, 12);
    expect(() => scoreLens(examples, preds.slice(1), 64)).toThrow(/3 examples but 2 predictions/);
  });

  it('maps input-pixel xyxy boxes to original-pixel xywh', () => {
    expect(inputBoxToOriginal([10, 20, 30, 60], 64, 128, 256)).toEqual([40, 40, 80, 80]);
  });
});
