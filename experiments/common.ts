/**
 * What the experiment scripts share: one optimiser step without the training loop's
 * checkpoints, logs and NaN guard (src/train/loop.ts has those for the real stages), and
 * the `--pos2d` code of the visual tokens.
 */
import * as tf from '@tensorflow/tfjs-core';
import type { LensModel } from '../src/model/lens';
import { loadLens } from '../src/model/presets';
import { Tokenizer } from '../src/model/tokenizer';
import type { Batch } from '../src/train/data';
import { AdamW, clipByGlobalNorm } from '../src/train/optim';
import { sinCos2d, writeSinCos } from '../src/model/vision_encoder';

/**
 * Gradients of `loss` over `params`, clipped to global norm 1 (as every stage), one AdamW
 * update at `lr` (`lrScale`: a parameter's own multiple of it). Returns the loss value and
 * leaves no tensor behind.
 */
export function optimiserStep(
  opt: AdamW,
  params: ReadonlyArray<readonly [string, tf.Variable]>,
  loss: () => tf.Scalar,
  lr: number,
  lrScale?: (name: string) => number,
): number {
  const nameOf = new Map(params.map(([n, v]) => [v.name, n] as const));
  const { value, grads } = tf.variableGrads(loss, params.map(([, v]) => v));
  const named: Record<string, tf.Tensor> = {};
  for (const [vn, g] of Object.entries(grads)) named[nameOf.get(vn)!] = g;
  const clipped = clipByGlobalNorm(named, 1).grads;
  const v = value.dataSync()[0]!;
  opt.apply(clipped, lr, lrScale);
  tf.dispose([value, ...Object.values(grads), ...Object.values(clipped)]);
  return v;
}

/** `--pos2d S`: adds the 2D code of src's VisionEncoderConfig.pos2dScale (sinCos2d, times S) to every output of the model's vision encoder, bolted on. */
export function addPos2d(model: LensModel, scale: number): void {
  const g = Math.sqrt(model.vision.numTokens);
  const C = model.config.mllm.hiddenSize;
  const code = sinCos2d(g, C, scale);
  const plain = model.vision.apply.bind(model.vision);
  model.vision.apply = (images: tf.Tensor4D) => tf.tidy(() => tf.add(plain(images), tf.tensor3d(code, [1, g * g, C])) as tf.Tensor3D);
}

/**
 * An experiment's stage-0b model and its tokenizer from folder `from` (model.safetensors +
 * tokenizer.json), with `--pos2d` bolted on when the experiment trained with it.
 */
export function loadExperimentModel(from: string, pos2d: number): { model: LensModel; tok: Tokenizer } {
  const model = loadLens(`${from}/model.safetensors`).model;
  if (pos2d > 0) addPos2d(model, pos2d);
  return { model, tok: Tokenizer.load(`${from}/tokenizer.json`) };
}

/**
 * How much the visual tokens differ from one another: the norm of their mean over every
 * token of every image, and the root-mean-square norm of each token's deviation from it.
 * A vision encoder whose output collapses to one vector (mean large, deviation small) leaves
 * the MLLM's layer norms nothing to tell the tokens apart by.
 */
export function visualSpread(encode: (images: tf.Tensor4D) => tf.Tensor3D, images: tf.Tensor4D): { meanNorm: number; deviationRms: number } {
  return tf.tidy(() => {
    const v = encode(images);
    const flat = tf.reshape(v, [-1, v.shape[2]]);
    const mean = tf.mean(flat, 0);
    const dev = tf.sub(flat, mean);
    return { meanNorm: tf.norm(mean).dataSync()[0]!, deviationRms: Math.sqrt(tf.mean(tf.sum(tf.square(dev), -1)).dataSync()[0]!) };
  });
}

/**
 * `--number-code S`: writes into the integer tokens' embeddings (0..maxInt, tied to the LM
 * head) S x a Fourier code of the integer, sin / cos at periods 2*side, side, side/2, ... 4
 * on the first dimensions: neighbouring integers start close, as in a pretrained LM's number
 * embeddings, so a coordinate read from the picture maps to nearby tokens. `pos2d`: the
 * visual tokens' --pos2d code (sinCos2d) of the integer's place in cell units, in both the
 * column and the row quarters: a state that points at a visual token then also points at
 * the integers of its place.
 */
export function addNumberCode(model: LensModel, tok: Tokenizer, scale: number, kind: 'fourier' | 'thermo' | 'pos2d' = 'fourier'): void {
  const side = model.config.imageSize;
  const w = model.mllm.embed.weight;
  const [V, C] = w.shape as [number, number];
  const zero = tok.tokenId('0');
  const code = new Float32Array(V * C);
  if (kind === 'pos2d') {
    // the --pos2d code of the cell position n / cell - 0.5, in both the column and the row quarters
    const g = Math.sqrt(model.vision.numTokens);
    const q = C / 4;
    for (let n = 0; n <= tok.maxInt; n++) {
      const u = n / (side / g) - 0.5;
      for (const o of [0, 2 * q]) writeSinCos(code, (zero + n) * C + o, q, u, scale);
    }
  } else if (kind === 'thermo') {
    const J = 32; // thresholds every side / 32 pixels: dimension j is +S/2 above threshold j, -S/2 below
    for (let n = 0; n <= tok.maxInt; n++) for (let j = 0; j < J; j++) code[(zero + n) * C + j] = (n > ((j + 0.5) * side) / J ? 0.5 : -0.5) * scale;
  } else {
    const periods: number[] = [];
    for (let p = 2 * side; p >= 4; p /= 2) periods.push(p);
    for (let n = 0; n <= tok.maxInt; n++) {
      periods.forEach((p, k) => {
        code[(zero + n) * C + 2 * k] = scale * Math.sin((2 * Math.PI * n) / p);
        code[(zero + n) * C + 2 * k + 1] = scale * Math.cos((2 * Math.PI * n) / p);
      });
    }
  }
  tf.tidy(() => w.assign(tf.add(w, tf.tensor2d(code, [V, C]))));
}

/**
 * The answer NLL of `logits` [B, T, V] (position t predicts token t + 1) with the first
 * four integer tokens of each answer (its box) scored against a Gaussian (std `sigma`) over
 * the integers 0..maxInt instead of one-hot (`sigma` 0: one-hot): a near miss costs less
 * than a far one. `boxWeight`: those four tokens' weight in the mean (the others weigh 1).
 */
export function smoothedAnswerNll(logits: tf.Tensor3D, b: Batch, tok: Tokenizer, sigma: number, boxWeight = 1): tf.Scalar {
  return tf.tidy(() => {
    const [B, T, V] = logits.shape;
    const ids = b.tokens.arraySync() as number[][];
    const ans = b.answerMask.arraySync() as number[][];
    const zero = tok.tokenId('0');
    const kernel = (value: number) => {
      const k = Array.from({ length: tok.maxInt + 1 }, (_, n) => Math.exp(-((n - value) ** 2) / (2 * sigma * sigma)));
      const z = k.reduce((s, x) => s + x, 0);
      return k.map((x) => x / z);
    };
    const target = new Float32Array(B * (T - 1) * V);
    const mask = new Float32Array(B * (T - 1));
    ids.forEach((row, i) => {
      let coords = 0;
      for (let t = 1; t < T; t++) {
        if (!ans[i]![t]) continue;
        const r = i * (T - 1) + t - 1;
        mask[r] = 1;
        const value = row[t]! - zero;
        if (value >= 0 && value <= tok.maxInt && coords++ < 4) {
          if (sigma > 0) target.set(kernel(value), r * V + zero);
          else target[r * V + row[t]!] = 1;
          mask[r] = boxWeight;
        } else target[r * V + row[t]!] = 1;
      }
    });
    const lg = tf.slice(logits, [0, 0, 0], [B, T - 1, V]);
    const nll = tf.neg(tf.sum(tf.mul(tf.logSoftmax(lg), tf.tensor3d(target, [B, T - 1, V])), -1));
    const m = tf.tensor2d(mask, [B, T - 1]);
    return tf.div(tf.sum(tf.mul(nll, m)), tf.sum(m)) as tf.Scalar;
  });
}
