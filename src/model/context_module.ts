/**
 * Context queries of the LENS context module (paper Sec. "Context Module", eq. 2;
 * official code: one parameter [1, M, C], M = 64, N(0, 0.02)). They are appended
 * after the whole sequence (prompt + completion) as extra input embeddings of
 * the MLLM, with the attention mask extended by ones and ordinary causal
 * attention, and read out from the last M positions of the last layer after the
 * final norm: the same forward pass that gives the policy's per-token log-probs.
 */
import * as tf from '@tensorflow/tfjs-core';
import type { Rng } from '../random';
import { Module, init } from './nn';
import { assertShape, checkInt } from './sam/common';

/** Sizes of the context queries. */
export interface ContextQueriesConfig {
  /** Number of queries M (official code and paper Table 3's best: 64). */
  numQueries: number;
  /** Width C = the MLLM hidden size. */
  dim: number;
  /** Std of the N(0, std) init (official code: 0.02). */
  initStd: number;
}

/** The official values except the width, which is the MLLM's. */
export const DEFAULT_CONTEXT_QUERIES_CONFIG: ContextQueriesConfig = { numQueries: 64, dim: 64, initStd: 0.02 };

/** Fills defaults and checks every field; throws naming it. */
export function validateContextQueriesConfig(partial: Partial<ContextQueriesConfig> = {}): ContextQueriesConfig {
  const c = { ...DEFAULT_CONTEXT_QUERIES_CONFIG, ...partial };
  checkInt('ContextQueriesConfig.numQueries', c.numQueries);
  checkInt('ContextQueriesConfig.dim', c.dim);
  if (!(typeof c.initStd === 'number' && c.initStd >= 0 && Number.isFinite(c.initStd))) {
    throw new Error(`ContextQueriesConfig.initStd: expected a finite number >= 0, got ${JSON.stringify(c.initStd)}`);
  }
  return c;
}

/** M learnable queries Q [1, M, C] ~ N(0, 0.02). */
export class ContextQueries extends Module {
  readonly config: ContextQueriesConfig;
  readonly queries: tf.Variable; // [1, M, C]

  constructor(config: Partial<ContextQueriesConfig>, rng: Rng) {
    super();
    this.config = validateContextQueriesConfig(config);
    const { numQueries: m, dim: c, initStd } = this.config;
    this.queries = this.param('queries', init.normal(rng, m * c, initStd), [1, m, c]);
  }

  /** Number of queries M. */
  get numQueries(): number {
    return this.config.numQueries;
  }

  /** The queries as a tensor the caller owns, for the MLLM's `extra` input: [1, M, C]. */
  apply(): tf.Tensor3D {
    return tf.clone(this.queries) as tf.Tensor3D; // a copy the caller may dispose; the gradient flows through it
  }

  /** hidden [B, T+M, C] (last layer, after the final norm) -> the query states [B, M, C] (last M rows). */
  readout(hidden: tf.Tensor3D, m: number = this.numQueries): tf.Tensor3D {
    assertShape('ContextQueries.readout hidden', hidden, [null, null, this.config.dim]);
    const [b, t, c] = hidden.shape;
    if (!Number.isInteger(m) || m < 1 || m > t) {
      throw new Error(`ContextQueries.readout: expected 1 <= M <= T+M = ${t}, got M = ${m}`);
    }
    return tf.slice(hidden, [0, t - m, 0], [b, m, c]);
  }
}
