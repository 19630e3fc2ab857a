/**
 * Mini-SAM: shape contracts, bad arguments, known-answer checks of the rewritten
 * layers (pixel-shuffle upconv == conv2dTranspose, im2col conv == conv2d,
 * random-Fourier PE by hand, SAM's point-label rules), gradient reach, memory,
 * and wasm vs cpu agreement.
 */
import * as tf from '@tensorflow/tfjs-core';
import { beforeAll, describe, expect, it } from 'vitest';
import { Rng } from '../../src/random';
import {
  Conv3x3,
  MiniSam,
  SamPromptEncoder,
  UpConv2x2,
  isBuffer,
  pixelShuffle2,
  upsampleMaskLogits,
  validateMiniSamConfig,
  validateSamMaskDecoderConfig,
  type MiniSamConfig,
} from '../../src/model/sam';
import { expectAllClose, gradientReach, useBackend } from './sam-testutil';

const CFG: Partial<MiniSamConfig> = { imageSize: 32, patchSize: 4, encoderDim: 16, promptDim: 16, decoderMlpDim: 32, iouHeadHiddenDim: 16 };

function images(b: number, size: number, seed = 1): tf.Tensor4D {
  const rng = new Rng(seed);
  const a = new Float32Array(b * size * size * 3).map(() => rng.next());
  return tf.tensor4d(a, [b, size, size, 3]);
}

beforeAll(async () => {
  await useBackend('cpu');
});

describe('mini-SAM shape contracts', () => {
  it('boxes, points, sparse tokens and no prompt give [B, 4h, 4w] logits and [B, 1] IoU', () => {
    const sam = new MiniSam(CFG, new Rng(0));
    const before = tf.memory().numTensors;
    tf.tidy(() => {
      const img = images(2, 32);
      const emb = sam.embedImage(img);
      expect(emb.shape).toEqual([2, 8, 8, 16]);
      const boxes = tf.tensor2d([[1, 2, 20, 30], [0, 0, 31, 31]]);
      const points = { coords: tf.tensor3d([[[3, 4]], [[10, 11]]]), labels: tf.tensor2d([[1], [0]]) };
      const sparse = tf.randomNormal([2, 3, 16], 0, 1, 'float32', 3) as tf.Tensor3D;
      for (const prompts of [{ boxes }, { points }, { sparse }, {}, { boxes, points, sparse }]) {
        const { masks, iou } = sam.decode(emb, prompts);
        expect(masks.shape).toEqual([2, 32, 32]);
        expect(iou.shape).toEqual([2, 1]);
      }
      const full = sam.apply(img, { boxes });
      expect(full.masks.shape).toEqual([2, 32, 32]);
    });
    expect(tf.memory().numTensors).toBe(before);
    sam.dispose();
  });

  it('the prompt encoder orders sparse tokens points (+padding), box corners, extra tokens', () => {
    const pe = new SamPromptEncoder({ dim: 8, imageSize: 32, embedSize: 8 }, new Rng(2));
    tf.tidy(() => {
      const coords = tf.tensor3d([[[5, 6], [7, 8]]]);
      const labels = tf.tensor2d([[1, 0]]);
      const boxes = tf.tensor2d([[1, 2, 3, 4]]);
      const extra = tf.ones([1, 2, 8]) as tf.Tensor3D;
      expect(pe.apply({ points: { coords, labels } }).sparse.shape).toEqual([1, 3, 8]); // + padding point
      expect(pe.apply({ points: { coords, labels }, boxes }).sparse.shape).toEqual([1, 4, 8]); // no padding with a box
      const all = pe.apply({ points: { coords, labels }, boxes, sparse: extra });
      expect(all.sparse.shape).toEqual([1, 6, 8]);
      expectAllClose(tf.slice(all.sparse, [0, 4, 0], [1, 2, 8]), extra, 0, 0); // appended as-is
      expect(all.dense.shape).toEqual([1, 8, 8, 8]);
      expectAllClose(tf.reshape(tf.slice(all.dense, [0, 3, 5, 0], [1, 1, 1, 8]), [8]), pe.noMaskEmbed, 0, 0);
      expect(pe.denseImagePE().shape).toEqual([1, 8, 8, 8]);
      expect(pe.apply({}, 3).sparse.shape).toEqual([3, 0, 8]);
    });
    pe.dispose();
  });

  it('batch-1 embeddings serve G prompt sets exactly as tiled embeddings do', () => {
    const sam = new MiniSam(CFG, new Rng(4));
    tf.tidy(() => {
      const emb = sam.embedImage(images(1, 32));
      const sparse = tf.randomNormal([3, 1, 16], 0, 1, 'float32', 5) as tf.Tensor3D;
      const a = sam.decode(emb, { sparse });
      const b = sam.decode(tf.tile(emb, [3, 1, 1, 1]), { sparse });
      expect(a.masks.shape).toEqual([3, 32, 32]);
      expectAllClose(a.masks, b.masks, 1e-5);
      expectAllClose(a.iou, b.iou, 1e-5);
    });
    sam.dispose();
  });
});

describe('mini-SAM bad arguments', () => {
  it('config errors name the field', () => {
    expect(() => validateMiniSamConfig({ patchSize: 5 })).toThrow(/MiniSamConfig.imageSize: expected a multiple of patchSize/);
    expect(() => validateMiniSamConfig({ promptDim: 0 })).toThrow(/MiniSamConfig.promptDim: expected an integer >= 1, got 0/);
    expect(() => validateMiniSamConfig({ bogus: 1 } as never)).toThrow(/unknown field\(s\) bogus/);
    expect(() =>
      validateSamMaskDecoderConfig({ dim: 12, depth: 2, heads: 2, mlpDim: 8, downsampleRate: 2, iouHeadDepth: 3, iouHeadHiddenDim: 8 }),
    ).toThrow(/SamMaskDecoderConfig.dim: expected a multiple of eight/);
  });

  it('tensor errors name the input and the expected shape', () => {
    const sam = new MiniSam(CFG, new Rng(0));
    tf.tidy(() => {
      expect(() => sam.embedImage(images(1, 16))).toThrow(/SamImageEncoder images: expected shape \[\*, 32, 32, 3\], got \[1, 16, 16, 3\]/);
      const emb = tf.zeros([2, 8, 8, 16]) as tf.Tensor4D;
      expect(() => sam.decode(emb, { sparse: tf.zeros([2, 1, 8]) as tf.Tensor3D })).toThrow(/sparse: expected shape \[2, \*, 16\]/);
      expect(() => sam.decode(emb, { boxes: tf.zeros([2, 3]) as tf.Tensor2D })).toThrow(/boxes: expected shape \[2, 4\]/);
      expect(() => sam.decode(emb, { boxes: tf.zeros([3, 4]) as tf.Tensor2D })).toThrow(/disagree on the batch size/);
      expect(() => sam.decode(tf.zeros([2, 4, 4, 16]) as tf.Tensor4D, {})).toThrow(/MiniSam.decode embeddings: expected shape \[\*, 8, 8, 16\]/);
    });
    sam.dispose();
  });
});

describe('rewritten layers against the reference ops', () => {
  it('UpConv2x2 (Linear + pixel shuffle) equals conv2dTranspose(k=2, s=2)', () => {
    const up = new UpConv2x2(3, 2, new Rng(7));
    tf.tidy(() => {
      up.bias.assign(tf.tensor1d([0.5, -0.25]));
      const x = tf.randomNormal([2, 3, 4, 3], 0, 1, 'float32', 8) as tf.Tensor4D;
      // Our weight [Ci, (di, dj, co)] -> tfjs conv2dTranspose filter [kh, kw, outC, inC].
      const w = tf.transpose(tf.reshape(up.proj.weight, [3, 2, 2, 2]), [1, 2, 3, 0]);
      const ref = tf.add(tf.conv2dTranspose(x, w as tf.Tensor4D, [2, 6, 8, 2], 2, 'valid'), tf.tensor1d([0.5, -0.25]));
      expectAllClose(up.apply(x), ref, 1e-5);
    });
    up.dispose();
  });

  it('pixelShuffle2 puts channel di*2C + dj*C + c at pixel (2i+di, 2j+dj)', () => {
    tf.tidy(() => {
      // one pixel, C = 1: channels [a, b, c, d] -> [[a, b], [c, d]]
      const y = pixelShuffle2(tf.tensor4d([1, 2, 3, 4], [1, 1, 1, 4]), 1);
      expect(y.shape).toEqual([1, 2, 2, 1]);
      expect(Array.from(y.dataSync())).toEqual([1, 2, 3, 4]);
      const y2 = pixelShuffle2(tf.tensor4d([1, 2, 3, 4, 5, 6, 7, 8], [1, 1, 2, 4]), 1); // two pixels in a row
      expect(Array.from(y2.dataSync())).toEqual([1, 2, 5, 6, 3, 4, 7, 8]);
    });
  });

  it('Conv3x3 equals a direct 3x3 convolution with zero padding, weight row (ky*3 + kx)*Ci + ci', () => {
    const [B, H, W, Ci, Co] = [2, 5, 6, 3, 4];
    const conv = new Conv3x3(Ci, Co, new Rng(9));
    const x = tf.randomNormal([B, H, W, Ci], 0, 1, 'float32', 10) as tf.Tensor4D;
    const xv = x.dataSync();
    const wv = conv.proj.weight.dataSync();
    const want = new Float32Array(B * H * W * Co);
    for (let b = 0; b < B; b++) {
      for (let i = 0; i < H; i++) {
        for (let j = 0; j < W; j++) {
          for (let ky = 0; ky < 3; ky++) {
            for (let kx = 0; kx < 3; kx++) {
              const [yi, xj] = [i + ky - 1, j + kx - 1];
              if (yi < 0 || yi >= H || xj < 0 || xj >= W) continue;
              for (let ci = 0; ci < Ci; ci++) {
                for (let co = 0; co < Co; co++) {
                  want[((b * H + i) * W + j) * Co + co]! += xv[((b * H + yi) * W + xj) * Ci + ci]! * wv[((ky * 3 + kx) * Ci + ci) * Co + co]!;
                }
              }
            }
          }
        }
      }
    }
    tf.tidy(() => expectAllClose(conv.apply(x), tf.tensor4d(want, [B, H, W, Co]), 1e-5));
    x.dispose();
    conv.dispose();
  });

  it('random-Fourier PE matches hand values: pe(p) = [sin(2pi(2p-1)G), cos(2pi(2p-1)G)]', () => {
    const pe = new SamPromptEncoder({ dim: 4, imageSize: 16, embedSize: 4 }, new Rng(11));
    tf.tidy(() => {
      pe.gaussian.assign(tf.tensor2d([[0.25, 0], [0, 0.5]]));
      // p = (0.75, 0.25) -> 2p-1 = (0.5, -0.5) -> 2pi * (0.125, -0.25) = (pi/4, -pi/2)
      const got = pe.peEncoding(tf.tensor2d([[0.75, 0.25]]));
      expectAllClose(got, tf.tensor2d([[Math.SQRT1_2, -1, Math.SQRT1_2, 0]]), 1e-6);
      // dense PE cell (i=1, j=2) of a 4x4 grid is at (x, y) = (2.5/4, 1.5/4)
      const cell = tf.slice(pe.denseImagePE(), [0, 1, 2, 0], [1, 1, 1, 4]);
      expectAllClose(tf.reshape(cell, [1, 4]), pe.peEncoding(tf.tensor2d([[2.5 / 4, 1.5 / 4]])), 1e-6);
    });
    pe.dispose();
  });

  it('point labels: -1 -> not_a_point_embed only; 1 -> pe + fg; 0 -> pe + bg; box corners -> pe + corner embeds', () => {
    const pe = new SamPromptEncoder({ dim: 8, imageSize: 16, embedSize: 4 }, new Rng(12));
    tf.tidy(() => {
      const coords = tf.tensor3d([[[3, 5], [3, 5], [3, 5]]]);
      const labels = tf.tensor2d([[-1, 1, 0]]);
      const sp = pe.apply({ points: { coords, labels }, boxes: tf.tensor2d([[3, 5, 7, 9]]) }).sparse; // [1, 5, 8]
      const row = (i: number) => tf.reshape(tf.slice(sp, [0, i, 0], [1, 1, 8]), [8]);
      const p = tf.reshape(pe.peEncoding(tf.tensor2d([[3.5 / 16, 5.5 / 16]])), [8]);
      const q = tf.reshape(pe.peEncoding(tf.tensor2d([[7.5 / 16, 9.5 / 16]])), [8]);
      expectAllClose(row(0), pe.notAPointEmbed, 1e-6);
      expectAllClose(row(1), tf.add(p, pe.pointEmbeddings[1]!), 1e-6);
      expectAllClose(row(2), tf.add(p, pe.pointEmbeddings[0]!), 1e-6);
      expectAllClose(row(3), tf.add(p, pe.pointEmbeddings[2]!), 1e-6);
      expectAllClose(row(4), tf.add(q, pe.pointEmbeddings[3]!), 1e-6);
    });
    pe.dispose();
  });

  it('upsampleMaskLogits resizes bilinearly with half-pixel centres', () => {
    tf.tidy(() => {
      const y = upsampleMaskLogits(tf.tensor3d([0, 4], [1, 1, 2]), 1, 4);
      // half-pixel: output x centres map to input 0-0.25 (clamped), 0.25, 0.75, 1.25 (clamped)
      expectAllClose(y, tf.tensor3d([0, 1, 3, 4], [1, 1, 4]), 1e-6);
    });
  });
});

describe('mini-SAM training', () => {
  function samLoss(sam: MiniSam): tf.Scalar {
    const img = images(2, 32, 3);
    const points = { coords: tf.tensor3d([[[3, 4], [20, 9]], [[10, 11], [1, 30]]]), labels: tf.tensor2d([[1, 0], [0, 1]]) };
    const boxes = tf.tensor2d([[1, 2, 20, 30], [4, 4, 12, 30]]);
    const target = tf.cast(tf.greater(tf.randomUniform([2, 32, 32], 0, 1, 'float32', 13), 0.5), 'float32');
    const a = sam.apply(img, { points }); // with the padding point
    const b = sam.apply(img, { boxes });
    const l = tf.addN([
      tf.mean(tf.square(tf.sub(tf.sigmoid(a.masks), target))),
      tf.mean(tf.square(tf.sub(tf.sigmoid(b.masks), target))),
      tf.mean(tf.square(tf.sub(a.iou, 0.3))),
    ]);
    return l as tf.Scalar;
  }

  it('gradients reach every trainable variable and not the PE buffer; memory is unchanged', () => {
    const sam = new MiniSam(CFG, new Rng(20));
    const named = sam.namedParameters();
    const bufferNames = named.filter(([, v]) => isBuffer(v)).map(([n]) => n);
    expect(bufferNames).toEqual(['prompt_encoder.pe_layer.positional_encoding_gaussian_matrix']);
    sam.setTrainable(true);
    expect(sam.promptEncoder.gaussian.trainable).toBe(false); // setTrainable keeps buffers frozen
    const before = tf.memory().numTensors;
    const { unreached } = gradientReach(named, () => samLoss(sam));
    expect(unreached).toEqual(bufferNames);
    // a train step: apply grads with SGD
    const opt = tf.train.sgd(0.1);
    const w0 = Float32Array.from(sam.maskDecoder.maskToken.dataSync());
    tf.dispose(opt.minimize(() => samLoss(sam), false, sam.trainableParameters()) ?? []);
    expect(sam.maskDecoder.maskToken.dataSync()).not.toEqual(w0);
    opt.dispose();
    expect(tf.memory().numTensors).toBe(before);
    sam.dispose();
  });

  it('wasm gives the forward pass and the gradients of cpu', async () => {
    await useBackend('cpu');
    const sam = new MiniSam(CFG, new Rng(21));
    const named = sam.namedParameters().filter(([, v]) => v.trainable);
    const cpuOut = tf.tidy(() => sam.apply(images(1, 32, 4), { boxes: tf.tensor2d([[2, 3, 25, 20]]) }).masks.dataSync());
    const cpu = gradientReach(named, () => samLoss(sam)).grads;
    await useBackend('wasm');
    try {
      const wasmOut = tf.tidy(() => sam.apply(images(1, 32, 4), { boxes: tf.tensor2d([[2, 3, 25, 20]]) }).masks.dataSync());
      expectAllClose(wasmOut, cpuOut, 1e-4, 1e-3);
      const wasm = gradientReach(named, () => samLoss(sam)).grads;
      for (const [name, g] of cpu) {
        const scale = Math.max(...g.map(Math.abs));
        try {
          expectAllClose(wasm.get(name)!, g, 1e-3 * scale + 1e-7, 1e-2);
        } catch (e) {
          throw new Error(`${name}: ${(e as Error).message}`);
        }
      }
    } finally {
      sam.dispose();
      await useBackend('cpu');
    }
  });
});
