/**
 * Mini-SAM two-way transformer: segment-anything `modeling/transformer.py`
 * (TwoWayTransformer, TwoWayAttentionBlock). Tokens (output tokens + prompts)
 * and image embeddings attend to each other in both directions; post-norm, the
 * positional encodings re-added to queries and keys at every attention; the
 * cross attentions work at dim / downsampleRate (SAM: 2); ReLU MLP on tokens.
 */
import * as tf from '@tensorflow/tfjs-core';
import type { Rng } from '../../random';
import { Attention, LayerNorm, Linear, Module } from '../nn';
import { assertShape, torchStd } from './common';

/** SAM's MLPBlock: lin1 -> ReLU -> lin2 (the two-way transformer keeps ReLU, as SAM). x: [..., C] -> [..., C]. */
export class ReluMLPBlock extends Module {
  readonly lin1: Linear;
  readonly lin2: Linear;

  constructor(dim: number, hidden: number, rng: Rng) {
    super();
    this.lin1 = this.child('lin1', new Linear(dim, hidden, rng, { std: torchStd(dim) }));
    this.lin2 = this.child('lin2', new Linear(hidden, dim, rng, { std: torchStd(hidden) }));
  }

  apply<T extends tf.Tensor>(x: T): T {
    return tf.tidy(() => this.lin2.apply(tf.relu(this.lin1.apply(x))));
  }
}

/** Sizes of the two-way transformer (shared with the mask decoder config). */
export interface TwoWayTransformerOptions {
  /** Number of two-way blocks (SAM: 2). */
  depth: number;
  /** Width C_sam. */
  dim: number;
  /** Heads of every attention (SAM: 8). */
  heads: number;
  /** Hidden width of the token MLP (SAM: 2048 = 8 x 256). */
  mlpDim: number;
  /** Cross attentions project to dim / downsampleRate (SAM: 2). */
  downsampleRate: number;
}

function attn(dim: number, heads: number, rate: number, rng: Rng): Attention {
  return new Attention(dim, heads, rng, { internalDim: dim / rate, std: torchStd(dim) });
}

/**
 * One block: (1) token self-attention, (2) tokens -> image cross-attention,
 * (3) token MLP, (4) image -> tokens cross-attention; each followed by a LayerNorm.
 * queries [B, N, C], keys [B, hw, C] -> same shapes.
 */
export class TwoWayAttentionBlock extends Module {
  readonly selfAttn: Attention;
  readonly norm1: LayerNorm;
  readonly crossTokenToImage: Attention;
  readonly norm2: LayerNorm;
  readonly mlp: ReluMLPBlock;
  readonly norm3: LayerNorm;
  readonly norm4: LayerNorm;
  readonly crossImageToToken: Attention;

  constructor(o: TwoWayTransformerOptions, readonly skipFirstLayerPE: boolean, rng: Rng) {
    super();
    this.selfAttn = this.child('self_attn', attn(o.dim, o.heads, 1, rng));
    this.norm1 = this.child('norm1', new LayerNorm(o.dim));
    this.crossTokenToImage = this.child('cross_attn_token_to_image', attn(o.dim, o.heads, o.downsampleRate, rng));
    this.norm2 = this.child('norm2', new LayerNorm(o.dim));
    this.mlp = this.child('mlp', new ReluMLPBlock(o.dim, o.mlpDim, rng));
    this.norm3 = this.child('norm3', new LayerNorm(o.dim));
    this.norm4 = this.child('norm4', new LayerNorm(o.dim));
    this.crossImageToToken = this.child('cross_attn_image_to_token', attn(o.dim, o.heads, o.downsampleRate, rng));
  }

  apply(queries: tf.Tensor3D, keys: tf.Tensor3D, queryPE: tf.Tensor3D, keyPE: tf.Tensor3D): [tf.Tensor3D, tf.Tensor3D] {
    return tf.tidy(() => {
      let q: tf.Tensor3D;
      if (this.skipFirstLayerPE) {
        q = this.norm1.apply(this.selfAttn.apply(queries, queries, queries)); // SAM: queries replaced, no residual
      } else {
        const qp = tf.add(queries, queryPE) as tf.Tensor3D;
        q = this.norm1.apply(tf.add(queries, this.selfAttn.apply(qp, qp, queries)) as tf.Tensor3D);
      }
      let qp = tf.add(q, queryPE) as tf.Tensor3D;
      let kp = tf.add(keys, keyPE) as tf.Tensor3D;
      q = this.norm2.apply(tf.add(q, this.crossTokenToImage.apply(qp, kp, keys)) as tf.Tensor3D);
      q = this.norm3.apply(tf.add(q, this.mlp.apply(q)) as tf.Tensor3D);
      qp = tf.add(q, queryPE) as tf.Tensor3D;
      kp = tf.add(keys, keyPE) as tf.Tensor3D;
      const k = this.norm4.apply(tf.add(keys, this.crossImageToToken.apply(kp, qp, q)) as tf.Tensor3D);
      return [q, k];
    });
  }
}

/**
 * image [B, h, w, C] (+ its pe [1 or B, h, w, C]) and tokens [B, N, C] ->
 * { tokens [B, N, C], image [B, hw, C] } after `depth` blocks and a final
 * token -> image attention + LayerNorm.
 */
export class TwoWayTransformer extends Module {
  readonly layers: TwoWayAttentionBlock[] = [];
  readonly finalAttn: Attention;
  readonly normFinal: LayerNorm;

  constructor(readonly options: TwoWayTransformerOptions, rng: Rng) {
    super();
    const o = options;
    for (let i = 0; i < o.depth; i++) this.layers.push(this.child(`layers.${i}`, new TwoWayAttentionBlock(o, i === 0, rng)));
    this.finalAttn = this.child('final_attn_token_to_image', attn(o.dim, o.heads, o.downsampleRate, rng));
    this.normFinal = this.child('norm_final_attn', new LayerNorm(o.dim));
  }

  apply(image: tf.Tensor4D, imagePE: tf.Tensor4D, tokens: tf.Tensor3D): { tokens: tf.Tensor3D; image: tf.Tensor3D } {
    const c = this.options.dim;
    assertShape('TwoWayTransformer image', image, [null, null, null, c]);
    assertShape('TwoWayTransformer imagePE', imagePE, [null, image.shape[1], image.shape[2], c]);
    assertShape('TwoWayTransformer tokens', tokens, [image.shape[0], null, c]);
    return tf.tidy(() => {
      const [b, h, w] = image.shape;
      let keys = tf.reshape(image, [b, h * w, c]) as tf.Tensor3D; // [B, hw, C]
      // The pe may have batch 1: broadcast it so every attention input has batch B.
      const keyPE = tf.broadcastTo(tf.reshape(imagePE, [imagePE.shape[0], h * w, c]), [b, h * w, c]) as tf.Tensor3D;
      let queries = tokens;
      for (const layer of this.layers) [queries, keys] = layer.apply(queries, keys, tokens, keyPE);
      const q = tf.add(queries, tokens) as tf.Tensor3D;
      const k = tf.add(keys, keyPE) as tf.Tensor3D;
      queries = this.normFinal.apply(tf.add(queries, this.finalAttn.apply(q, k, keys)) as tf.Tensor3D);
      return { tokens: queries, image: keys };
    });
  }
}
