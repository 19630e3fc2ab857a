/** Losses against hand-computed values (see the comments for the arithmetic). */
import * as tf from '@tensorflow/tfjs-core';
import { beforeAll, describe, expect, it } from 'vitest';
import {
  DEFAULT_SEG_LOSS_WEIGHTS,
  LISA_SEG_LOSS_WEIGHTS,
  bceLoss,
  diceLoss,
  segLoss,
  splitIgnore,
  tokenCrossEntropy,
} from '../../src/model/losses';
import { useBackend } from './sam-testutil';

beforeAll(async () => {
  await useBackend('cpu');
});

const x = () => tf.tensor3d([0, 2, -1, 0], [1, 2, 2]);
const y = () => tf.tensor3d([1, 0, 0, 1], [1, 2, 2]);
// BCE terms: log 2, 2 + log1p(e^-2), log1p(e^-1), log 2
const BCE = 0.9566210149202716;
// Dice: s = sigmoid(x) = [.5, .8808, .2689, .5]; 1 - (2*1 + 1) / (2.1497 + 2 + 1)
const DICE = 0.41744614791995827;
// With the third pixel ignored: mean of terms 1, 2, 4; dice without s3.
const BCE_IGN = 1.171074124054288;
const DICE_IGN = 0.3853462965022708;

function val(f: () => tf.Scalar): number {
  return tf.tidy(() => f().dataSync()[0]!);
}

describe('segmentation losses', () => {
  it('bceLoss and diceLoss match hand values', () => {
    expect(val(() => bceLoss(x(), y()))).toBeCloseTo(BCE, 6);
    expect(val(() => diceLoss(x(), y()))).toBeCloseTo(DICE, 6);
  });

  it('segLoss = 1*BCE + 1*Dice by default, LISA weights 2 / 0.5, ignore label 255 excluded', () => {
    expect(DEFAULT_SEG_LOSS_WEIGHTS).toEqual({ bce: 1, dice: 1 });
    expect(val(() => segLoss(x(), y()))).toBeCloseTo(BCE + DICE, 6);
    expect(val(() => segLoss(x(), y(), { weights: LISA_SEG_LOSS_WEIGHTS }))).toBeCloseTo(2 * BCE + 0.5 * DICE, 6);
    const labels = () => tf.tensor3d([1, 0, 255, 1], [1, 2, 2]);
    expect(val(() => segLoss(x(), labels()))).toBeCloseTo(BCE_IGN + DICE_IGN, 6);
    tf.tidy(() => {
      const { targets, valid } = splitIgnore(labels());
      expect(Array.from(targets.dataSync())).toEqual([1, 0, 0, 1]);
      expect(Array.from(valid.dataSync())).toEqual([1, 1, 0, 1]);
    });
  });

  it('averages per mask, not per pixel, over the batch', () => {
    // mask 0: one valid pixel, x=0,y=1 -> log 2; mask 1: four valid pixels with BCE = BCE.
    const logits = () => tf.tensor3d([0, 5, 5, 5, 0, 2, -1, 0], [2, 2, 2]);
    const labels = () => tf.tensor3d([1, 255, 255, 255, 1, 0, 0, 1], [2, 2, 2]);
    const { targets, valid } = tf.tidy(() => splitIgnore(labels()));
    expect(val(() => bceLoss(logits(), targets, valid))).toBeCloseTo((Math.LN2 + BCE) / 2, 6);
    tf.dispose([targets, valid]);
  });

  it('the BCE gradient is (sigmoid(x) - y) / pixels', () => {
    tf.tidy(() => {
      const g = tf.grad((l: tf.Tensor) => bceLoss(l as tf.Tensor3D, y()))(x());
      const s = [0.5, 0.8807970779778823, 0.2689414213699951, 0.5];
      const want = s.map((v, i) => (v - [1, 0, 0, 1][i]!) / 4);
      Array.from(g.dataSync()).forEach((v, i) => expect(v).toBeCloseTo(want[i]!, 6));
    });
  });

  it('bad shapes are named', () => {
    tf.tidy(() => {
      expect(() => segLoss(x(), tf.zeros([1, 4, 4]) as tf.Tensor3D)).toThrow(/upsample the logits to the label resolution first/);
      expect(() => bceLoss(x(), tf.zeros([1, 2, 3]) as tf.Tensor3D)).toThrow(/bceLoss: targets shape \[1, 2, 3\] must equal the logits' \[1, 2, 2\]/);
      expect(() => segLoss(x(), y(), { weights: { bce: -1, dice: 1 } })).toThrow(/weights.bce must be a number >= 0/);
    });
  });
});

describe('tokenCrossEntropy', () => {
  // position 0: logits [0, ln 3, 0], target 1 -> p = 3/5, nll = ln(5/3); position 1: uniform over 3 -> ln 3
  const logits = () => tf.tensor3d([0, Math.log(3), 0, 1, 1, 1], [1, 2, 3]);
  const targets = () => tf.tensor2d([1, 2], [1, 2], 'int32');

  it('masked token mean matches hand values', () => {
    expect(val(() => tokenCrossEntropy(logits(), targets(), tf.tensor2d([[1, 0]])))).toBeCloseTo(Math.log(5 / 3), 6);
    expect(val(() => tokenCrossEntropy(logits(), targets(), tf.tensor2d([[1, 1]])))).toBeCloseTo((Math.log(5 / 3) + Math.log(3)) / 2, 6);
    // masked-out targets are never read, even out of range
    expect(val(() => tokenCrossEntropy(logits(), tf.tensor2d([1, 99], [1, 2], 'int32'), tf.tensor2d([[1, 0]])))).toBeCloseTo(Math.log(5 / 3), 6);
    expect(val(() => tokenCrossEntropy(logits(), targets(), tf.tensor2d([[0, 0]])))).toBe(0);
  });

  it("'token' weights every token equally, 'sequence' every sequence", () => {
    const l2 = () => tf.concat([logits(), logits()], 0) as tf.Tensor3D; // [2, 2, 3]
    const t2 = () => tf.tensor2d([1, 2, 1, 2], [2, 2], 'int32');
    const m2 = () => tf.tensor2d([[1, 0], [1, 1]]);
    const a = Math.log(5 / 3);
    const b = Math.log(3);
    expect(val(() => tokenCrossEntropy(l2(), t2(), m2(), 'token'))).toBeCloseTo((a + a + b) / 3, 6);
    expect(val(() => tokenCrossEntropy(l2(), t2(), m2(), 'sequence'))).toBeCloseTo((a + (a + b) / 2) / 2, 6);
  });

  it('its gradient is (softmax - onehot) / tokens and it checks shapes', () => {
    tf.tidy(() => {
      const g = tf.grad((l: tf.Tensor) => tokenCrossEntropy(l as tf.Tensor3D, targets(), tf.tensor2d([[1, 0]])))(logits());
      const want = [0.2, 0.6 - 1, 0.2, 0, 0, 0];
      Array.from(g.dataSync()).forEach((v, i) => expect(v).toBeCloseTo(want[i]!, 6));
      expect(() => tokenCrossEntropy(logits(), tf.zeros([1, 3], 'int32') as tf.Tensor2D, tf.zeros([1, 2]) as tf.Tensor2D)).toThrow(
        /tokenCrossEntropy targets: expected shape \[1, 2\], got \[1, 3\]/,
      );
    });
  });

  it('leaves no tensors behind', () => {
    const inputs = [logits(), targets(), tf.tensor2d([[1, 1]]), x(), tf.tensor3d([1, 0, 255, 1], [1, 2, 2])] as const;
    const before = tf.memory().numTensors;
    tokenCrossEntropy(inputs[0], inputs[1], inputs[2]).dispose();
    segLoss(inputs[3], inputs[4]).dispose();
    expect(tf.memory().numTensors).toBe(before);
    tf.dispose([...inputs]);
  });
});

describe('losses on wasm', () => {
  it('give the values and gradients of cpu', async () => {
    const f = (l: tf.Tensor) =>
      tf.add(segLoss(l as tf.Tensor3D, tf.tensor3d([1, 0, 255, 1], [1, 2, 2])), tokenCrossEntropy(tf.reshape(l, [1, 2, 2]) as tf.Tensor3D, tf.tensor2d([1, 0], [1, 2], 'int32'), tf.tensor2d([[1, 1]]))) as tf.Scalar;
    const run = () => tf.tidy(() => {
      const { value, grad } = tf.valueAndGrad(f)(x());
      return [value.dataSync()[0]!, ...Array.from(grad.dataSync())];
    });
    const cpu = run();
    await useBackend('wasm');
    try {
      const wasm = run();
      wasm.forEach((v, i) => expect(v).toBeCloseTo(cpu[i]!, 5));
    } finally {
      await useBackend('cpu');
    }
  });
});
