/**
 * The MLLM box of LENS Figure 2 (paper Sec. "Reasoning Model"): a decoder-only pre-LN
 * transformer over [system + instruction tokens, visual tokens, text], standing in for
 * Qwen2.5-VL-3B's language model at small width.
 *
 * Mirrors HF Qwen2.5-VL as the official LENS code drives it:
 * - the token sequence already holds one `<image>` slot per visual token (the processor
 *   expands the placeholder), and the embeddings of those slots are replaced by the vision
 *   encoder's tokens (`inputs_embeds[image_mask] = image_embeds`), so logits stay aligned
 *   with the tokens: [B, T, vocab];
 * - positions come from the attention mask (HF derives position_ids from it), so LEFT
 *   padding does not shift them; here learned absolute positions (GPT-2) replace mRoPE;
 * - `extra` embeddings (the context queries, lens-official-code-facts.md "LENS model") are
 *   appended after the whole sequence with mask ones, ordinary causal attention, and read
 *   from the last layer after the final norm, in the same pass that gives the logits;
 * - the LM head is tied to the token embedding, as in Qwen2.5-3B (`tie_word_embeddings`),
 *   which also halves the embedding parameters at this small width (config field).
 * A KV cache (`prefill` / `extend`) serves generation (generate.ts) and stage 1, where the
 * frozen MLLM's prefix is encoded once and only the query positions run (DESIGN.md).
 */
import * as tf from '@tensorflow/tfjs-core';
import { Embedding, LayerNorm, Linear, MASK_NEG, Module, TransformerBlock } from './nn';
import type { Rng } from '../random';
import { IMAGE_ID } from './tokenizer';

export interface MllmConfig {
  /** Token vocabulary size; must equal the fitted Tokenizer's `size`. */
  vocabSize: number;
  /** Model width C (Qwen2.5-VL-3B: 2048; small here for CPU training). */
  hiddenSize: number;
  /** Number of transformer blocks (Qwen2.5-3B: 36). */
  numLayers: number;
  /** Attention heads; must divide hiddenSize. */
  numHeads: number;
  /** MLP hidden width = mlpRatio * hiddenSize (GPT-2's 4). */
  mlpRatio: number;
  /** Length of the learned position table: must cover prompt + visual slots + completion + queries. */
  maxPositions: number;
  /** Tie the LM head to the token embedding (Qwen2.5-3B does; halves embedding parameters). */
  tieWordEmbeddings: boolean;
  /** Id of the `<image>` slot token whose embeddings the visual tokens replace (tokenizer's IMAGE_ID). */
  imageTokenId: number;
  /** Std of the N(0, std) init of embeddings and projections (Qwen / GPT-2 initializer_range 0.02). */
  initStd: number;
}

/** Defaults sized for the `tiny` preset; presets.ts sets every size explicitly. */
export const DEFAULT_MLLM_CONFIG: MllmConfig = {
  vocabSize: 512,
  hiddenSize: 64,
  numLayers: 2,
  numHeads: 4,
  mlpRatio: 4,
  maxPositions: 256,
  tieWordEmbeddings: true,
  imageTokenId: IMAGE_ID,
  initStd: 0.02,
};

/** Fills defaults and checks every field; throws naming the field and what was expected. */
export function validateMllmConfig(partial: Partial<MllmConfig> = {}): MllmConfig {
  const c: MllmConfig = { ...DEFAULT_MLLM_CONFIG, ...partial };
  const posInt = (k: keyof MllmConfig) => {
    const v = c[k];
    if (typeof v !== 'number' || !Number.isInteger(v) || v < 1) throw new Error(`MllmConfig.${k}: expected a positive integer, got ${JSON.stringify(v)}`);
  };
  (['vocabSize', 'hiddenSize', 'numLayers', 'numHeads', 'mlpRatio', 'maxPositions'] as const).forEach(posInt);
  if (c.hiddenSize % c.numHeads !== 0) {
    throw new Error(`MllmConfig.numHeads: expected a divisor of hiddenSize ${c.hiddenSize}, got ${c.numHeads}`);
  }
  if (typeof c.tieWordEmbeddings !== 'boolean') throw new Error(`MllmConfig.tieWordEmbeddings: expected a boolean, got ${JSON.stringify(c.tieWordEmbeddings)}`);
  if (!Number.isInteger(c.imageTokenId) || c.imageTokenId < 0 || c.imageTokenId >= c.vocabSize) {
    throw new Error(`MllmConfig.imageTokenId: expected an integer in [0, vocabSize ${c.vocabSize}), got ${JSON.stringify(c.imageTokenId)}`);
  }
  if (typeof c.initStd !== 'number' || !(c.initStd > 0)) throw new Error(`MllmConfig.initStd: expected a number > 0, got ${JSON.stringify(c.initStd)}`);
  return c;
}

/** Inputs of one forward pass. */
export interface MllmInputs {
  /** int32 [B, T]; each row holds exactly V contiguous `<image>` slots when `visual` is given. */
  tokens: tf.Tensor2D;
  /** [B, T], 1 = real token, 0 = padding (left padding expected, any 0/1 pattern works). */
  attentionMask: tf.Tensor2D;
  /** [B, V, C] visual tokens (vision encoder output), placed at the `<image>` slots. */
  visual?: tf.Tensor3D;
  /** [B or 1, M, C] embeddings appended after the whole sequence (context queries). */
  extra?: tf.Tensor3D;
}

/** Outputs of one forward pass. */
export interface MllmOutput {
  /** [B, T, vocab] next-token logits at every token position (not at `extra` positions). */
  logits: tf.Tensor3D;
  /** [B, T (+ M), C] last layer after the final norm; the last M rows belong to `extra`. */
  hidden: tf.Tensor3D;
  /** [B, T + M, T + M] the log attention weights of `attentionOf`'s head, when asked for. */
  logAttention?: tf.Tensor3D;
}

/** One attention head: `layer` 1..numLayers (the block's output is layer L's), `head` 0-based. */
export interface HeadRef {
  layer: number;
  head: number;
}

/** Per-layer keys / values [B, H, L, hs] and the host-side bookkeeping of what they hold. */
export interface KVCache {
  layers: Array<{ k: tf.Tensor4D; v: tf.Tensor4D }>;
  /** [B][L]: 1 where the cached position is a real token. */
  keyMask: number[][];
  /** [B]: real tokens so far = the position id of each row's next token. */
  nextPos: number[];
}

/** Disposes the tensors of a KV cache. */
export function disposeCache(cache: KVCache): void {
  for (const l of cache.layers) {
    l.k.dispose();
    l.v.dispose();
  }
}

/** Which logits a cached call computes: every new token position, only the last one, or none. */
export type LogitsMode = 'all' | 'last' | 'none';

interface HostBatch {
  B: number;
  T: number;
  tokens: Int32Array;
  mask: number[][];
  /** Start of each row's run of `<image>` slots, -1 when none. */
  imageStart: number[];
}

export class MLLM extends Module {
  readonly config: MllmConfig;
  readonly embed: Embedding;
  readonly pos: Embedding;
  readonly blocks: TransformerBlock[];
  readonly norm: LayerNorm;
  readonly lmHead: Linear | null;

  constructor(config: Partial<MllmConfig>, rng: Rng) {
    super();
    const c = (this.config = validateMllmConfig(config));
    this.embed = this.child('embed_tokens', new Embedding(c.vocabSize, c.hiddenSize, rng.fork('embed_tokens'), { std: c.initStd }));
    this.pos = this.child('embed_positions', new Embedding(c.maxPositions, c.hiddenSize, rng.fork('embed_positions'), { std: c.initStd }));
    this.blocks = [];
    for (let i = 0; i < c.numLayers; i++) {
      this.blocks.push(this.child(`layers.${i}`, new TransformerBlock(c.hiddenSize, c.numHeads, c.mlpRatio, rng.fork(`layers.${i}`))));
    }
    this.norm = this.child('norm', new LayerNorm(c.hiddenSize));
    this.lmHead = c.tieWordEmbeddings
      ? null
      : this.child('lm_head', new Linear(c.hiddenSize, c.vocabSize, rng.fork('lm_head'), { bias: false, std: c.initStd }));
  }

  /** Model width C. */
  get hiddenSize(): number {
    return this.config.hiddenSize;
  }

  /**
   * One pass over the whole sequence (training, scoring).
   * tokens [B, T] int32, attentionMask [B, T], visual? [B, V, C], extra? [B|1, M, C]
   * -> logits [B, T, vocab], hidden [B, T + M, C] (after the final norm).
   */
  forward(inputs: MllmInputs, { attentionOf }: { attentionOf?: HeadRef } = {}): MllmOutput {
    const { logits, hidden, cache, logAttention } = this.prefill(inputs, { logits: 'all', attentionOf });
    disposeCache(cache);
    return { logits: logits as tf.Tensor3D, hidden, ...(logAttention ? { logAttention } : {}) };
  }

  /**
   * `forward` that also returns the KV cache (of tokens and `extra`) for `extend`.
   * logits: 'all' -> [B, T, vocab], 'last' -> [B, 1, vocab] (last token column), 'none' -> null.
   * The caller disposes the outputs and the cache (disposeCache).
   */
  prefill(inputs: MllmInputs, { logits = 'all', attentionOf }: { logits?: LogitsMode; attentionOf?: HeadRef } = {}): {
    logits: tf.Tensor3D | null;
    hidden: tf.Tensor3D;
    cache: KVCache;
    logAttention?: tf.Tensor3D;
  } {
    if (attentionOf && !(Number.isInteger(attentionOf.layer) && attentionOf.layer >= 1 && attentionOf.layer <= this.blocks.length)) {
      throw new Error(`MLLM.forward: attentionOf.layer must be an integer in 1..${this.blocks.length}, got ${attentionOf.layer}`);
    }
    const host = this.checkInputs(inputs, 'MLLM.forward');
    const M = inputs.extra ? inputs.extra.shape[1] : 0;
    // Positions from the mask: the k-th real token of a row is at position k (HF position_ids).
    const posIds = new Int32Array(host.B * (host.T + M));
    const nextPos: number[] = [];
    const keyMask: number[][] = [];
    for (let b = 0; b < host.B; b++) {
      let p = 0;
      for (let t = 0; t < host.T; t++) {
        posIds[b * (host.T + M) + t] = host.mask[b]![t] ? p : 0;
        if (host.mask[b]![t]) p++;
      }
      for (let j = 0; j < M; j++) posIds[b * (host.T + M) + host.T + j] = p + j;
      nextPos.push(p + M);
      keyMask.push([...host.mask[b]!, ...new Array<number>(M).fill(1)]);
    }
    this.checkPositions(nextPos, 'MLLM.forward');
    const out = tidyKeep(() => {
      let x = this.embedTokensWithVisual(inputs, host); // [B, T, C]
      if (inputs.extra) {
        const e = tf.broadcastTo(inputs.extra, [host.B, M, this.hiddenSize]) as tf.Tensor3D; // [B, M, C]
        x = tf.concat([x, e], 1); // [B, T + M, C]
      }
      const posT = tf.tensor2d(posIds, [host.B, host.T + M], 'int32');
      x = tf.add(x, this.pos.apply(posT)) as tf.Tensor3D;
      const bias = attentionBias(keyMask, 0, host.T + M);
      const { hidden, layers, logAttention } = this.runBlocks(x, bias, null, attentionOf);
      const lg = this.logitsFor(hidden, host.T, logits);
      return { hidden, layers, logits: lg, logAttention };
    });
    return { logits: out.logits, hidden: out.hidden, cache: { layers: out.layers, keyMask, nextPos }, ...(out.logAttention ? { logAttention: out.logAttention } : {}) };
  }

  /**
   * Runs N new positions on top of a cache: either `tokens` [B, N] int32 (generation) or
   * `embeds` [B|1, N, C] (e.g. context queries after a cached prefix). `mask` [B][N] marks
   * real positions (default all 1; generation masks rows that already stopped).
   * -> logits per `logits` mode over the N new positions, hidden [B, N, C], and a NEW cache
   * (past then new); the old cache is left to the caller (dispose it if no longer needed).
   */
  extend(
    cache: KVCache,
    step: { tokens?: tf.Tensor2D; embeds?: tf.Tensor3D; mask?: number[][] },
    { logits = 'all' }: { logits?: LogitsMode } = {},
  ): { logits: tf.Tensor3D | null; hidden: tf.Tensor3D; cache: KVCache } {
    const B = cache.nextPos.length;
    const L = cache.keyMask[0]?.length ?? 0;
    if ((step.tokens === undefined) === (step.embeds === undefined)) throw new Error('MLLM.extend: give exactly one of tokens or embeds');
    let N: number;
    if (step.tokens) {
      if (step.tokens.rank !== 2 || step.tokens.dtype !== 'int32' || step.tokens.shape[0] !== B) {
        throw new Error(`MLLM.extend: tokens must be int32 [${B}, N], got ${step.tokens.dtype} [${step.tokens.shape.join(', ')}]`);
      }
      N = step.tokens.shape[1];
    } else {
      const e = step.embeds!;
      if (e.rank !== 3 || (e.shape[0] !== B && e.shape[0] !== 1) || e.shape[2] !== this.hiddenSize) {
        throw new Error(`MLLM.extend: embeds must be [${B} or 1, N, ${this.hiddenSize}], got [${e.shape.join(', ')}]`);
      }
      N = e.shape[1];
    }
    const mask = step.mask ?? Array.from({ length: B }, () => new Array<number>(N).fill(1));
    if (mask.length !== B || mask.some((r) => r.length !== N)) throw new Error(`MLLM.extend: mask must be [${B}][${N}]`);
    const posIds = new Int32Array(B * N);
    const nextPos = cache.nextPos.slice();
    for (let b = 0; b < B; b++) {
      for (let j = 0; j < N; j++) {
        posIds[b * N + j] = mask[b]![j] ? nextPos[b]! : 0;
        if (mask[b]![j]) nextPos[b]!++;
      }
    }
    this.checkPositions(nextPos, 'MLLM.extend');
    const keyMask = cache.keyMask.map((r, b) => [...r, ...mask[b]!]);
    const out = tidyKeep(() => {
      let x: tf.Tensor3D = step.tokens
        ? (this.embed.apply(step.tokens) as tf.Tensor3D)
        : (tf.broadcastTo(step.embeds!, [B, N, this.hiddenSize]) as tf.Tensor3D);
      x = tf.add(x, this.pos.apply(tf.tensor2d(posIds, [B, N], 'int32'))) as tf.Tensor3D;
      const bias = attentionBias(keyMask, L, N);
      const { hidden, layers } = this.runBlocks(x, bias, cache.layers);
      return { hidden, layers, logits: this.logitsFor(hidden, N, logits) };
    });
    return { logits: out.logits, hidden: out.hidden, cache: { layers: out.layers, keyMask, nextPos } };
  }

  /** Next-token logits from final-norm states: hidden [B, N(+M), C] -> [B, N, vocab] (first N rows). */
  lmLogits(hidden: tf.Tensor3D, n = hidden.shape[1]): tf.Tensor3D {
    return tf.tidy(() => {
      const [B, , C] = hidden.shape;
      const h = n === hidden.shape[1] ? hidden : tf.slice(hidden, [0, 0, 0], [B, n, C]);
      const h2 = tf.reshape(h, [B * n, C]); // rank-2 matmul
      // Tied head: transpose the [vocab, C] table (cheap) so the big matmul is an un-transposed
      // rank-2 one, the only kind stock wasm sends to XNNPACK (docs/performance.md).
      const lg = this.lmHead ? this.lmHead.apply(h2) : tf.matMul(h2, tf.transpose(this.embed.weight)); // [B*n, vocab]
      return tf.reshape(lg, [B, n, this.config.vocabSize]);
    });
  }

  private logitsFor(hidden: tf.Tensor3D, n: number, mode: LogitsMode): tf.Tensor3D | null {
    if (mode === 'none') return null;
    if (mode === 'all') return this.lmLogits(hidden, n);
    const [B, , C] = hidden.shape;
    return tf.tidy(() => this.lmLogits(tf.slice(hidden, [0, n - 1, 0], [B, 1, C]) as tf.Tensor3D));
  }

  /**
   * Blocks then final norm. x [B, N, C], bias [B, 1, N, L + N] -> hidden [B, N, C], per-layer
   * K / V, and `attentionOf`'s log attention weights [B, N, L + N] when asked for.
   */
  private runBlocks(
    x: tf.Tensor3D,
    bias: tf.Tensor4D,
    past: KVCache['layers'] | null,
    attentionOf?: HeadRef,
  ): { hidden: tf.Tensor3D; layers: KVCache['layers']; logAttention?: tf.Tensor3D } {
    const layers: KVCache['layers'] = [];
    let h = x;
    let logAttention: tf.Tensor3D | undefined;
    this.blocks.forEach((blk, i) => {
      const tap = attentionOf && attentionOf.layer === i + 1 ? attentionOf.head : undefined;
      const { y, k, v, logAttn } = blk.applyKV(h, bias, past ? past[i] : undefined, tap);
      layers.push({ k, v });
      if (logAttn) logAttention = logAttn;
      h = y;
    });
    return { hidden: this.norm.apply(h), layers, logAttention };
  }

  /** Token embeddings with the visual tokens placed in each row's `<image>` slots. -> [B, T, C] */
  private embedTokensWithVisual(inputs: MllmInputs, host: HostBatch): tf.Tensor3D {
    const x = this.embed.apply(inputs.tokens) as tf.Tensor3D; // [B, T, C]
    const visual = inputs.visual;
    if (!visual) return x;
    const [B, V, C] = visual.shape;
    const T = host.T;
    // One row gather from [text embeddings; visual tokens]: row b's slot run takes its V
    // visual tokens, every other position its own embedding. Its gradient is one
    // segment sum (per-row slices, pads and a stack cost ~50 kernels, the unstack alone
    // 12 ms of a stage-0b step).
    const idx = new Int32Array(B * T);
    for (let b = 0; b < B; b++) {
      const s = host.imageStart[b]!;
      for (let t = 0; t < T; t++) idx[b * T + t] = t >= s && t < s + V ? B * T + b * V + (t - s) : b * T + t;
    }
    const both = tf.concat([tf.reshape(x, [B * T, C]), tf.reshape(visual, [B * V, C])]);
    return tf.reshape(tf.gather(both, tf.tensor1d(idx, 'int32')), [B, T, C]) as tf.Tensor3D;
  }

  private checkPositions(nextPos: number[], where: string): void {
    const most = Math.max(0, ...nextPos);
    if (most > this.config.maxPositions) {
      throw new Error(`${where}: a row holds ${most} real positions, more than maxPositions ${this.config.maxPositions}`);
    }
  }

  /** Checks ranks, widths and the `<image>` slot layout; reads tokens and mask to the host. */
  private checkInputs(inputs: MllmInputs, where: string): HostBatch {
    const { tokens, attentionMask, visual, extra } = inputs;
    if (!tokens || tokens.rank !== 2 || tokens.dtype !== 'int32') {
      throw new Error(`${where}: tokens must be int32 [B, T], got ${tokens ? `${tokens.dtype} [${tokens.shape.join(', ')}]` : tokens}`);
    }
    const [B, T] = tokens.shape;
    if (!attentionMask || attentionMask.rank !== 2 || attentionMask.shape[0] !== B || attentionMask.shape[1] !== T) {
      throw new Error(`${where}: attentionMask must be [${B}, ${T}] like tokens, got [${attentionMask?.shape.join(', ')}]`);
    }
    const C = this.hiddenSize;
    if (visual && (visual.rank !== 3 || visual.shape[0] !== B || visual.shape[2] !== C)) {
      throw new Error(`${where}: visual must be [${B}, V, ${C}], got [${visual.shape.join(', ')}]`);
    }
    if (extra && (extra.rank !== 3 || (extra.shape[0] !== B && extra.shape[0] !== 1) || extra.shape[2] !== C)) {
      throw new Error(`${where}: extra must be [${B} or 1, M, ${C}], got [${extra.shape.join(', ')}]`);
    }
    const tok = tokens.dataSync() as Int32Array;
    const maskFlat = attentionMask.dataSync();
    const mask: number[][] = [];
    const imageStart: number[] = [];
    const V = visual ? visual.shape[1] : 0;
    for (let b = 0; b < B; b++) {
      const row: number[] = [];
      let first = -1;
      let count = 0;
      for (let t = 0; t < T; t++) {
        const m = maskFlat[b * T + t]!;
        if (m !== 0 && m !== 1) throw new Error(`${where}: attentionMask must hold 0 / 1, got ${m} at [${b}, ${t}]`);
        row.push(m);
        const id = tok[b * T + t]!;
        if (id < 0 || id >= this.config.vocabSize) throw new Error(`${where}: token id ${id} at [${b}, ${t}] is outside [0, vocabSize ${this.config.vocabSize})`);
        if (id === this.config.imageTokenId && m === 1) {
          if (first < 0) first = t;
          count++;
        }
      }
      if (count !== V || (V > 0 && tok.slice(b * T + first, b * T + first + V).some((id) => id !== this.config.imageTokenId))) {
        throw new Error(
          visual
            ? `${where}: row ${b} must hold exactly ${V} contiguous <image> slots (one per visual token), found ${count}`
            : `${where}: row ${b} holds ${count} <image> slots but no visual tokens were given`,
        );
      }
      mask.push(row);
      imageStart.push(first);
    }
    return { B, T, tokens: tok, mask, imageStart };
  }
}

/** tf.tidy for a result holding tensors in any nesting (tf.tidy's types reject null fields). */
function tidyKeep<T>(fn: () => T): T {
  let result!: T;
  tf.tidy(() => {
    result = fn();
    const keep: tf.Tensor[] = [];
    const walk = (v: unknown): void => {
      if (v instanceof tf.Tensor) keep.push(v);
      else if (Array.isArray(v)) v.forEach(walk);
      else if (v && typeof v === 'object') Object.values(v).forEach(walk);
    };
    walk(result);
    return keep;
  });
  return result;
}

/**
 * Additive attention bias [B, 1, N, L + N] for N new queries after L cached keys:
 * query i (at column L + i) sees key j iff j <= L + i and key j is real; a padding query
 * also sees itself, so no softmax row is empty (its output is never used).
 */
export function attentionBias(keyMask: number[][], L: number, N: number): tf.Tensor4D {
  const B = keyMask.length;
  const K = L + N;
  const a = new Float32Array(B * N * K);
  for (let b = 0; b < B; b++) {
    const km = keyMask[b]!;
    if (km.length !== K) throw new Error(`attentionBias: keyMask row ${b} has ${km.length} entries, expected ${K}`);
    for (let i = 0; i < N; i++) {
      const base = (b * N + i) * K;
      for (let j = 0; j < K; j++) a[base + j] = j <= L + i && (km[j] === 1 || j === L + i) ? 0 : MASK_NEG;
    }
  }
  return tf.tensor4d(a, [B, 1, N, K]);
}

/**
 * Per-token log-probabilities of given tokens: log softmax(logits)[target], times mask.
 * logits [B, T, vocab], targets int32 [B, T], mask? [B, T] -> [B, T].
 * Written as a one-hot contraction (not gather) so its gradient exists on every backend.
 * For next-token scoring pass logits[:, t-1] against tokens[:, t] (see `shiftedLogProbs`).
 */
export function logProbs(logits: tf.Tensor3D, targets: tf.Tensor2D, mask?: tf.Tensor2D): tf.Tensor2D {
  return tf.tidy(() => {
    const [B, T, V] = logits.shape;
    if (targets.rank !== 2 || targets.shape[0] !== B || targets.shape[1] !== T || targets.dtype !== 'int32') {
      throw new Error(`logProbs: targets must be int32 [${B}, ${T}], got ${targets.dtype} [${targets.shape.join(', ')}]`);
    }
    if (mask && (mask.shape[0] !== B || mask.shape[1] !== T)) throw new Error(`logProbs: mask must be [${B}, ${T}], got [${mask.shape.join(', ')}]`);
    const lp = tf.sum(tf.mul(tf.logSoftmax(logits), tf.oneHot(targets, V)), -1) as tf.Tensor2D; // [B, T]
    return mask ? (tf.mul(lp, tf.cast(mask, 'float32')) as tf.Tensor2D) : lp;
  });
}

/**
 * Log-probs of tokens[:, start:] under the logits one step earlier (teacher forcing):
 * logits [B, T, vocab], tokens int32 [B, T] -> [B, T - start] (start >= 1), masked if given.
 */
export function shiftedLogProbs(logits: tf.Tensor3D, tokens: tf.Tensor2D, start: number, mask?: tf.Tensor2D): tf.Tensor2D {
  return tf.tidy(() => {
    const [B, T, V] = logits.shape;
    if (!Number.isInteger(start) || start < 1 || start > T) throw new Error(`shiftedLogProbs: start must be in [1, ${T}], got ${start}`);
    const n = T - start;
    const lg = tf.slice(logits, [0, start - 1, 0], [B, n, V]) as tf.Tensor3D;
    const tg = tf.slice(tokens, [0, start], [B, n]) as tf.Tensor2D;
    const mk = mask ? (tf.slice(mask, [0, start], [B, n]) as tf.Tensor2D) : undefined;
    return logProbs(lg, tg, mk);
  });
}
