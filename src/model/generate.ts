/**
 * Autoregressive generation for the MLLM (DESIGN.md "The model": "autoregressive generation
 * with a KV cache, temperature / top-p / top-k sampling, G samples per prompt in one batch").
 *
 * Mirrors HF `generate` as TRL / the official LENS code call it for GRPO rollouts
 * (lens-official-code-facts.md: G = 8, temperature 0.9, top-p 0.9, top-k 50):
 * - prompts are LEFT-padded so every row's next token lands in the same column;
 * - warpers in HF's order: temperature, then top-k, then top-p (keep the smallest set of
 *   most likely tokens whose mass reaches top_p; at least one token);
 * - a row stops at <eos> (kept as its last completion token, as TRL's completion mask
 *   does); afterwards it emits <pad> with attention mask 0, so it no longer affects
 *   anything and costs only its share of the batched matmuls.
 * Sampling runs on the host from the logits in float64 with the project's seeded Rng, so
 * a seed gives the same samples on any backend (up to float differences in the logits).
 *
 * Log-prob convention (what GRPO needs): `logProbs` are log softmax(logits)[token] of the
 * UNTEMPERED, unfiltered model distribution, i.e. log pi_theta(token | prefix), the policy
 * the GRPO ratio and the k3 KL are written in (the official LENS / VLM-R1 trainers
 * re-score with plain log_softmax). Temperature / top-k / top-p / banned tokens shape only
 * the exploration distribution that picks the token. A teacher-forced forward pass over
 * `sequences` reproduces them (tested).
 */
import * as tf from '@tensorflow/tfjs-core';
import { disposeCache, type KVCache, type MLLM } from './mllm';
import { BOS_ID, EOS_ID, IMAGE_ID, PAD_ID, padSequences, type Tokenizer } from './tokenizer';
import type { Rng } from '../random';

export interface SamplingConfig {
  /** Most tokens generated per row (the row stops earlier at <eos>). */
  maxNewTokens: number;
  /** Samples per prompt G, rows grouped prompt by prompt (LENS code: G = 8 in stage 2). */
  numSamples: number;
  /** Argmax decoding (evaluation, as LENS evaluates with greedy generation); ignores the rest. */
  greedy: boolean;
  /** Softmax temperature > 0 (LENS rollouts: 0.9). */
  temperature: number;
  /** Nucleus mass in (0, 1]; 1 = off (LENS rollouts: 0.9). */
  topP: number;
  /** Keep the k most likely tokens; 0 = off (LENS rollouts: 50). */
  topK: number;
  /** Tokens never emitted: padding, <bos> and <image> slots have no meaning in a completion. */
  bannedTokens: number[];
  /** Decode with the KV cache (false recomputes the whole sequence each step: for tests). */
  useCache: boolean;
}

export const DEFAULT_SAMPLING: SamplingConfig = {
  maxNewTokens: 64,
  numSamples: 1,
  greedy: false,
  temperature: 1,
  topP: 1,
  topK: 0,
  bannedTokens: [PAD_ID, BOS_ID, IMAGE_ID],
  useCache: true,
};

/** The official LENS stage-2 rollout settings (lens-official-code-facts.md). */
export const LENS_ROLLOUT_SAMPLING: Partial<SamplingConfig> = { numSamples: 8, temperature: 0.9, topP: 0.9, topK: 50 };

/** Fills defaults and checks every field; throws naming the field and what was expected. */
export function validateSampling(partial: Partial<SamplingConfig> = {}): SamplingConfig {
  const c: SamplingConfig = { ...DEFAULT_SAMPLING, ...partial };
  if (!Number.isInteger(c.maxNewTokens) || c.maxNewTokens < 1) throw new Error(`SamplingConfig.maxNewTokens: expected an integer >= 1, got ${JSON.stringify(c.maxNewTokens)}`);
  if (!Number.isInteger(c.numSamples) || c.numSamples < 1) throw new Error(`SamplingConfig.numSamples: expected an integer >= 1, got ${JSON.stringify(c.numSamples)}`);
  if (typeof c.greedy !== 'boolean') throw new Error(`SamplingConfig.greedy: expected a boolean, got ${JSON.stringify(c.greedy)}`);
  if (typeof c.temperature !== 'number' || !(c.temperature > 0) || !Number.isFinite(c.temperature)) {
    throw new Error(`SamplingConfig.temperature: expected a finite number > 0, got ${JSON.stringify(c.temperature)}`);
  }
  if (typeof c.topP !== 'number' || !(c.topP > 0 && c.topP <= 1)) throw new Error(`SamplingConfig.topP: expected a number in (0, 1], got ${JSON.stringify(c.topP)}`);
  if (!Number.isInteger(c.topK) || c.topK < 0) throw new Error(`SamplingConfig.topK: expected an integer >= 0 (0 = off), got ${JSON.stringify(c.topK)}`);
  if (!Array.isArray(c.bannedTokens) || !c.bannedTokens.every((t) => Number.isInteger(t) && t >= 0)) {
    throw new Error(`SamplingConfig.bannedTokens: expected an array of token ids, got ${JSON.stringify(c.bannedTokens)}`);
  }
  if (c.bannedTokens.includes(EOS_ID)) throw new Error('SamplingConfig.bannedTokens: must not contain <eos> (rows could never stop)');
  if (typeof c.useCache !== 'boolean') throw new Error(`SamplingConfig.useCache: expected a boolean, got ${JSON.stringify(c.useCache)}`);
  return c;
}

export interface GenerateInputs {
  /** Prompt token ids, one list per prompt, `<image>` already expanded to V slots. */
  prompts: number[][];
  /** [P, V, C] visual tokens of each prompt's image (shared by its G samples). */
  visual?: tf.Tensor3D;
}

export interface GenerationResult {
  /** [B][n_b] generated ids per row, <eos> included when the row stopped; B = P * G. */
  tokens: number[][];
  /** [B] decoded completions (without <eos> / <pad>). */
  text: string[];
  /** [B][n_b] log pi(token | prefix) of each generated token, untempered (see file header). */
  logProbs: number[][];
  /** [B] whether the row emitted <eos> within maxNewTokens. */
  finished: boolean[];
  /** Row r belongs to prompt promptIndex[r] (= floor(r / G)). */
  promptIndex: number[];
  /** Columns of the left-padded prompt in `sequences`. */
  promptLength: number;
  /** [B][promptLength + N] left-padded prompt then completion (right-padded with <pad>). */
  sequences: number[][];
  /** [B][promptLength + N] 1 on real tokens (prompt and completion incl. <eos>). */
  attentionMask: number[][];
  /** [B][N] 1 on completion tokens (incl. <eos>), the GRPO per-token mask. */
  completionMask: number[][];
}

/** Host-side log softmax of one row in float64: returns log-sum-exp. */
function logSumExp(row: Float32Array): number {
  let m = -Infinity;
  for (let i = 0; i < row.length; i++) if (row[i]! > m) m = row[i]!;
  let s = 0;
  for (let i = 0; i < row.length; i++) s += Math.exp(row[i]! - m);
  return m + Math.log(s);
}

/**
 * Picks one token from a row of logits under the sampling config (HF warper order:
 * temperature, top-k, top-p). Exported for its unit tests.
 */
export function pickToken(row: Float32Array, c: SamplingConfig, rng: Rng | undefined): number {
  const banned = new Set(c.bannedTokens);
  const allowed: number[] = [];
  for (let i = 0; i < row.length; i++) if (!banned.has(i)) allowed.push(i);
  if (allowed.length === 0) throw new Error('pickToken: every token is banned');
  if (c.greedy) {
    let best = allowed[0]!;
    for (const i of allowed) if (row[i]! > row[best]!) best = i; // ties -> lowest id
    return best;
  }
  if (!rng) throw new Error('generate: sampling (greedy: false) needs an rng');
  // Most likely first; stable on ties (lower id first).
  let cand = allowed.slice().sort((a, b) => row[b]! - row[a]! || a - b);
  if (c.topK > 0 && c.topK < cand.length) cand = cand.slice(0, c.topK);
  const top = row[cand[0]!]! / c.temperature;
  let probs = cand.map((i) => Math.exp(row[i]! / c.temperature - top));
  let total = probs.reduce((s, p) => s + p, 0);
  if (c.topP < 1) {
    let cum = 0;
    let keep = 0;
    while (keep < cand.length && (keep === 0 || cum < c.topP * total)) cum += probs[keep++]!;
    cand = cand.slice(0, keep);
    probs = probs.slice(0, keep);
    total = cum;
  }
  let u = rng.next() * total;
  for (let k = 0; k < cand.length; k++) {
    u -= probs[k]!;
    if (u < 0) return cand[k]!;
  }
  return cand[cand.length - 1]!;
}

/**
 * Batched generation of G samples for each prompt.
 * prompts P lists of ids, visual? [P, V, C] -> B = P * G rows (prompt-major) of tokens,
 * text, untempered log-probs and the padded arrays to re-score them (toRescoreTensors).
 * Leaves tf.memory().numTensors unchanged.
 */
export function generate(
  mllm: MLLM,
  tokenizer: Tokenizer,
  inputs: GenerateInputs,
  sampling: Partial<SamplingConfig> = {},
  rng?: Rng,
): GenerationResult {
  const c = validateSampling(sampling);
  const { prompts, visual } = inputs;
  if (!Array.isArray(prompts) || prompts.length === 0 || prompts.some((p) => !Array.isArray(p) || p.length === 0)) {
    throw new Error('generate: prompts must be a non-empty list of non-empty token lists');
  }
  if (visual && (visual.rank !== 3 || visual.shape[0] !== prompts.length)) {
    throw new Error(`generate: visual must be [${prompts.length}, V, C] (one image per prompt), got [${visual.shape.join(', ')}]`);
  }
  if (!c.greedy && !rng) throw new Error('generate: sampling (greedy: false) needs an rng');
  if (tokenizer.size > mllm.config.vocabSize) {
    throw new Error(`generate: the tokenizer has ${tokenizer.size} tokens but the MLLM's vocabSize is ${mllm.config.vocabSize}`);
  }
  // Rows of a vocabulary padded beyond the tokenizer (a preset's round vocabSize) are never emitted.
  if (tokenizer.size < mllm.config.vocabSize) {
    const extra = Array.from({ length: mllm.config.vocabSize - tokenizer.size }, (_, i) => tokenizer.size + i);
    c.bannedTokens = [...c.bannedTokens, ...extra];
  }
  const G = c.numSamples;
  const P = prompts.length;
  const B = P * G;
  const promptIndex = Array.from({ length: B }, (_, r) => Math.floor(r / G));
  const { ids: promptIds, mask: promptMask } = padSequences(promptIndex.map((p) => prompts[p]!), { side: 'left' });
  const Tp = promptIds[0]!.length;
  const vocab = mllm.config.vocabSize;

  const gen: number[][] = Array.from({ length: B }, () => []);
  const lps: number[][] = Array.from({ length: B }, () => []);
  const finished = new Array<boolean>(B).fill(false);
  /** Column per step: token fed next and whether it is a real token. */
  const stepTokens: number[][] = [];
  const stepMask: number[][] = [];

  // Row r uses image promptIndex[r]: repeat each prompt's visual tokens G times.
  const visualRep = visual
    ? tf.tidy(() => {
        const [, V, C] = visual.shape;
        return tf.reshape(tf.tile(tf.expandDims(visual, 1), [1, G, 1, 1]), [B, V, C]) as tf.Tensor3D; // [B, V, C]
      })
    : undefined;

  /** Chooses every row's next token from last-position logits [B, vocab] on the host. */
  const choose = (flat: Float32Array): void => {
    const col: number[] = [];
    const colMask: number[] = [];
    for (let r = 0; r < B; r++) {
      if (finished[r]) {
        col.push(PAD_ID);
        colMask.push(0);
        continue;
      }
      const row = flat.subarray(r * vocab, (r + 1) * vocab);
      const tok = pickToken(row, c, rng);
      gen[r]!.push(tok);
      lps[r]!.push(row[tok]! - logSumExp(row));
      col.push(tok);
      colMask.push(1);
      if (tok === EOS_ID) finished[r] = true;
    }
    stepTokens.push(col);
    stepMask.push(colMask);
  };

  const tensorInputs = (ids: number[][], mask: number[][]) => ({
    tokens: tf.tensor2d(ids.flat(), [ids.length, ids[0]!.length], 'int32'),
    attentionMask: tf.tensor2d(mask.flat(), [mask.length, mask[0]!.length], 'int32'),
  });

  try {
    if (c.useCache) {
      const t = tensorInputs(promptIds, promptMask);
      let pre: ReturnType<MLLM['prefill']>;
      try {
        pre = mllm.prefill({ ...t, visual: visualRep }, { logits: 'last' });
      } finally {
        t.tokens.dispose();
        t.attentionMask.dispose();
      }
      pre.hidden.dispose();
      let cache: KVCache = pre.cache;
      let logits: tf.Tensor3D | null = pre.logits;
      try {
        for (let step = 0; step < c.maxNewTokens; step++) {
          const flat = logits!.dataSync() as Float32Array; // [B, 1, vocab]
          logits!.dispose();
          logits = null;
          choose(flat);
          if (finished.every(Boolean) || step === c.maxNewTokens - 1) break;
          const col = stepTokens[stepTokens.length - 1]!;
          const colMask = stepMask[stepMask.length - 1]!;
          const tok = tf.tensor2d(col, [B, 1], 'int32');
          let next: ReturnType<MLLM['extend']>;
          try {
            next = mllm.extend(cache, { tokens: tok, mask: colMask.map((m) => [m]) }, { logits: 'last' });
          } finally {
            tok.dispose();
          }
          next.hidden.dispose();
          disposeCache(cache);
          cache = next.cache;
          logits = next.logits;
        }
      } finally {
        logits?.dispose();
        disposeCache(cache);
      }
    } else {
      for (let step = 0; step < c.maxNewTokens; step++) {
        const ids = promptIds.map((p, r) => [...p, ...stepTokens.map((col) => col[r]!)]);
        const mask = promptMask.map((p, r) => [...p, ...stepMask.map((col) => col[r]!)]);
        const t = tensorInputs(ids, mask);
        let flat: tf.Tensor;
        try {
          flat = tf.tidy(() => {
            const { logits, hidden } = mllm.forward({ ...t, visual: visualRep });
            hidden.dispose();
            const T = ids[0]!.length;
            return tf.slice(logits, [0, T - 1, 0], [B, 1, vocab]);
          });
        } finally {
          t.tokens.dispose();
          t.attentionMask.dispose();
        }
        const host = flat.dataSync() as Float32Array;
        flat.dispose();
        choose(host);
        if (finished.every(Boolean)) break;
      }
    }
  } finally {
    visualRep?.dispose();
  }

  const completionMask = Array.from({ length: B }, (_, r) => stepMask.map((col) => col[r]!));
  return {
    tokens: gen,
    text: gen.map((g) => tokenizer.decode(g.filter((t) => t !== EOS_ID && t !== PAD_ID))),
    logProbs: lps,
    finished,
    promptIndex,
    promptLength: Tp,
    sequences: promptIds.map((p, r) => [...p, ...stepTokens.map((col) => col[r]!)]),
    attentionMask: promptMask.map((p, r) => [...p, ...completionMask[r]!]),
    completionMask,
  };
}

/**
 * The re-scoring inputs as tensors (the caller disposes them):
 * tokens int32 [B, Tp + N], attentionMask int32 [B, Tp + N], completionMask float32 [B, N].
 * Pass tokens / attentionMask (+ the same visual, repeated per row) to MLLM.forward, then
 * shiftedLogProbs(logits, tokens, promptLength, attentionMask) gives [B, N] log-probs.
 */
export function toRescoreTensors(r: GenerationResult): { tokens: tf.Tensor2D; attentionMask: tf.Tensor2D; completionMask: tf.Tensor2D } {
  const B = r.sequences.length;
  const T = r.sequences[0]!.length;
  const N = T - r.promptLength;
  return {
    tokens: tf.tensor2d(r.sequences.flat(), [B, T], 'int32'),
    attentionMask: tf.tensor2d(r.attentionMask.flat(), [B, T], 'int32'),
    completionMask: tf.tensor2d(r.completionMask.flat(), [B, N], 'float32'),
  };
}
