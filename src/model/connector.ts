/**
 * The LENS connector (paper eq. 3, Fig. 2; Table 4 ablates 'vit' vs 'mlp'),
 * following the official code: the M query states get a learned positional
 * embedding (zero-init), pass through `depth` pre-LN non-causal transformer
 * blocks at the LLM width (quick-GELU, no final norm; kind 'vit') or skip them
 * (kind 'mlp'), are collapsed from M tokens to K (official: a Conv1d with kernel M
 * -> one token), and are projected Linear -> GELU -> Linear to the SAM prompt width.
 * [B, M, C_llm] -> [B, K, C_sam], fed to SAM as sparse prompt tokens.
 */
import * as tf from '@tensorflow/tfjs-core';
import type { Rng } from '../random';
import { Linear, MLP, Module, TransformerBlock, init } from './nn';
import { assertShape, checkDivisible, checkInt, checkOneOf, torchStd } from './sam/common';

export const CONNECTOR_KINDS = ['vit', 'mlp'] as const;
export type ConnectorKind = (typeof CONNECTOR_KINDS)[number];

/** Sizes and variant of the connector. */
export interface ConnectorConfig {
  /** 'vit' = positional embedding + transformer blocks (official, paper's best); 'mlp' = the same without the blocks (Table 4). */
  kind: ConnectorKind;
  /** Input width C_llm = the MLLM hidden size (official: 2048). */
  inDim: number;
  /** Output width C_sam = the SAM prompt width (official: 256). */
  outDim: number;
  /** Number of context queries M it reads (official: 64). */
  numQueries: number;
  /** Transformer blocks of the 'vit' kind (official: 4); ignored by 'mlp'. */
  depth: number;
  /** Attention heads of those blocks (official: 16); must divide inDim. */
  heads: number;
  /** MLP hidden width of those blocks as a multiple of inDim (official: 4). */
  mlpRatio: number;
  /**
   * Number K of tokens handed to SAM (official: 1). The collapse is a strided
   * Conv1d with kernel = stride = M / K, run as one Linear over each group of M/K
   * flattened query states: for K = 1 it is exactly the official kernel-M conv,
   * and unlike a dense [M*C] -> [K*C] Linear its parameter count does not grow
   * with K (at the official width the K = 1 collapse alone is 268M weights).
   * Output token k summarises queries k*M/K .. (k+1)*M/K - 1; M must divide by K.
   */
  numOutputTokens: number;
}

/** Official LENS values, except the widths, which the presets set from the MLLM and SAM. */
export const DEFAULT_CONNECTOR_CONFIG: ConnectorConfig = {
  kind: 'vit',
  inDim: 64,
  outDim: 32,
  numQueries: 64,
  depth: 4,
  heads: 4,
  mlpRatio: 4,
  numOutputTokens: 1,
};

/** Fills defaults and checks every field; throws naming the field and what was expected. */
export function validateConnectorConfig(partial: Partial<ConnectorConfig> = {}): ConnectorConfig {
  const c: ConnectorConfig = { ...DEFAULT_CONNECTOR_CONFIG, ...partial };
  const unknown = Object.keys(partial).filter((k) => !(k in DEFAULT_CONNECTOR_CONFIG));
  if (unknown.length > 0) throw new Error(`ConnectorConfig: unknown field(s) ${unknown.join(', ')}`);
  checkOneOf('ConnectorConfig.kind', c.kind, CONNECTOR_KINDS);
  for (const k of ['inDim', 'outDim', 'numQueries', 'heads', 'mlpRatio', 'numOutputTokens'] as const) checkInt(`ConnectorConfig.${k}`, c[k]);
  checkInt('ConnectorConfig.depth', c.depth, 0);
  checkDivisible('ConnectorConfig.numQueries', c.numQueries, c.numOutputTokens, 'numOutputTokens');
  checkDivisible('ConnectorConfig.inDim', c.inDim, c.heads, 'heads');
  return c;
}

/** Query states [B, M, C_llm] -> SAM sparse prompt tokens [B, K, C_sam]. */
export class Connector extends Module {
  readonly config: ConnectorConfig;
  readonly posEmbed: tf.Variable; // [1, M, C_llm], zero init
  readonly blocks: TransformerBlock[] = [];
  readonly collapse: Linear; // [(M/K)*C_llm] -> C_llm
  readonly proj: MLP; // C_llm -> C_llm -> C_sam

  constructor(config: Partial<ConnectorConfig>, rng: Rng) {
    super();
    const c = (this.config = validateConnectorConfig(config));
    this.posEmbed = this.param('pos_embed', init.constant(c.numQueries * c.inDim, 0), [1, c.numQueries, c.inDim]);
    if (c.kind === 'vit') {
      for (let i = 0; i < c.depth; i++) this.blocks.push(this.child(`blocks.${i}`, new TransformerBlock(c.inDim, c.heads, c.mlpRatio, rng)));
    }
    const group = c.numQueries / c.numOutputTokens;
    // torch's Conv1d / Linear default scale, as the official collapse and projection use.
    this.collapse = this.child('collapse', new Linear(group * c.inDim, c.inDim, rng, { std: torchStd(group * c.inDim) }));
    this.proj = this.child('proj', new MLP(c.inDim, c.inDim, c.outDim, rng, { std: torchStd(c.inDim) }));
  }

  /** Kind of the connector ('vit' or 'mlp'). */
  get kind(): ConnectorKind {
    return this.config.kind;
  }

  /** Number K of output tokens. */
  get numOutputTokens(): number {
    return this.config.numOutputTokens;
  }

  /** queries [B, M, C_llm] -> [B, K, C_sam]. */
  apply(queries: tf.Tensor3D): tf.Tensor3D {
    const c = this.config;
    assertShape('Connector queries', queries, [null, c.numQueries, c.inDim]);
    return tf.tidy(() => {
      const b = queries.shape[0];
      let x = tf.add(queries, this.posEmbed) as tf.Tensor3D; // [B, M, C]
      for (const blk of this.blocks) x = blk.apply(x); // non-causal: no attention bias
      const k = c.numOutputTokens;
      const grouped = tf.reshape(x, [b * k, (c.numQueries / k) * c.inDim]); // [B*K, (M/K)*C], token-major within a group
      const collapsed = tf.reshape(this.collapse.apply(grouped), [b, k, c.inDim]) as tf.Tensor3D; // [B, K, C_llm]
      return this.proj.apply(collapsed); // [B, K, C_sam]
    });
  }
}
