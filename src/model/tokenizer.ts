/**
 * Word-level tokenizer fitted to the benchmark's language, with the special tokens
 * the LENS format needs and a Qwen-style chat template (DESIGN.md "The model": "tokenizer
 * fitted to the benchmark's language, with the special tokens the format needs").
 *
 * Mirrors, at small scale, what Qwen2.5-VL's tokenizer + processor give LENS:
 * - chat template `<|im_start|>role\n...<|im_end|>` (Qwen2 `chat_template`), one image
 *   placeholder in the user turn that the processor expands to one slot per visual token
 *   (Qwen's `<|image_pad|>` repeated; here `<image>` repeated `numVisualTokens` times);
 * - the user question of Seg-Zero / LENS ("Please find '...' with bbox. Output the thinking
 *   process in <think> </think> and final answer in <answer> </answer> tags.");
 * - every integer 0..maxInt is ONE token (Qwen tokenises digits one by one; a single token
 *   per coordinate makes a box 4 decisions, which a small model learns far faster).
 *
 * Decisions (documented here, tested in test/model/tokenizer.test.ts):
 * - lowercase; words are `[a-z][a-z0-9_]*` with inner `'` or `-` joins (`object's`,
 *   `left-most`, `bbox_2d`); a digit run is a number; any other non-space char is one
 *   punctuation token. Whitespace is not a token: decode re-creates it with fixed rules,
 *   so decode(encode(s)) is a normal form of s, and equals s for the answer format.
 * - unknown words -> `<unk>` (no character fallback): the benchmark's language is closed
 *   (procedurally generated), so unknowns only come from outside text, and a character
 *   fallback would make the small model spend capacity on spelling.
 * - integers above maxInt, or written with leading zeros, -> `<unk>` (box coordinates
 *   never exceed the model's input size, which is at most maxInt + 1).
 */
import { readFileSync } from 'node:fs';
import { writeJsonAtomic } from '../util/fs';

/** Special tokens at fixed ids (the model config refers to them by id). */
export const SPECIAL_TOKENS = [
  '<pad>',
  '<bos>',
  '<eos>',
  '<unk>',
  '<image>',
  '<think>',
  '</think>',
  '<answer>',
  '</answer>',
  '<|im_start|>',
  '<|im_end|>',
] as const;
export type SpecialToken = (typeof SPECIAL_TOKENS)[number];

export const PAD_ID = 0;
export const BOS_ID = 1;
/** End-of-text: generation stops a row when it emits this. */
export const EOS_ID = 2;
export const UNK_ID = 3;
/** The image placeholder; its slots receive the vision encoder's tokens. */
export const IMAGE_ID = 4;
export const THINK_ID = 5;
export const THINK_END_ID = 6;
export const ANSWER_ID = 7;
export const ANSWER_END_ID = 8;
export const IM_START_ID = 9;
export const IM_END_ID = 10;

/** Punctuation tokens, always in the vocabulary (JSON's `[ ] { } , : "` first). */
export const PUNCTUATION = ['[', ']', '{', '}', ',', ':', '"', "'", '.', '?', '!', ';', '(', ')', '-', '/', '+', '=', '<', '>', '&', '%', '#', '*'] as const;

/** Words always in the vocabulary: chat roles and the answer JSON's keys. */
export const RESERVED_WORDS = ['system', 'user', 'assistant', 'bbox_2d', 'label'] as const;

/** Qwen2.5's default system prompt (kept short: every token costs compute here). */
export const DEFAULT_SYSTEM_PROMPT = 'You are a helpful assistant.';

/** The Seg-Zero / LENS user question around a referring expression (kept short). */
export function formatQuestion(sentence: string): string {
  return `Please find '${sentence.trim()}' with bbox. Output the thinking process in <think> </think> and final answer in <answer> </answer> tags.`;
}

/**
 * Qwen-style chat prompt: system turn, user turn with one `<image>` then the question,
 * and the opening of the assistant turn (generation continues from there).
 * `instruction` is the referring expression / reasoning query, wrapped by formatQuestion.
 */
export function buildPrompt({ system = DEFAULT_SYSTEM_PROMPT, instruction }: { system?: string; instruction: string }): string {
  return (
    `<|im_start|>system\n${system}<|im_end|>\n` +
    `<|im_start|>user\n<image>${formatQuestion(instruction)}<|im_end|>\n` +
    `<|im_start|>assistant\n`
  );
}

const SPECIAL_RE = new RegExp(`(${SPECIAL_TOKENS.map((t) => t.replace(/[|[\]\\/]/g, '\\$&')).join('|')})`);
/** Word | number | any other single non-space char. */
const PIECE_RE = /[a-z][a-z0-9_]*(?:['-][a-z0-9_]+)*|\d+|\S/gu;
const NUMBER_RE = /^\d+$/;

/** Splits text into token strings (lowercased; specials recognised literally). */
export function pretokenize(text: string): string[] {
  const out: string[] = [];
  for (const part of text.toLowerCase().split(SPECIAL_RE)) {
    if (part === '') continue;
    if ((SPECIAL_TOKENS as readonly string[]).includes(part)) out.push(part);
    else for (const m of part.matchAll(PIECE_RE)) out.push(m[0]);
  }
  return out;
}

export interface FitOptions {
  /** Largest integer that is one token; 255 covers any coordinate of an image up to 256 px. */
  maxInt?: number;
  /** Words seen fewer times than this map to <unk>; 1 keeps every word of the corpus. */
  minCount?: number;
  /** Cap on the number of fitted words (most frequent first); undefined = no cap. */
  maxWords?: number;
}

/** The serialised form (part of every checkpoint). */
export interface TokenizerJson {
  format: 'lens-tokenizer';
  version: 1;
  maxInt: number;
  vocab: string[];
}

const NO_SPACE_BEFORE = new Set([',', ':', ']', '}', ')', '.', '?', '!', ';', '/']);
const NO_SPACE_AFTER = new Set(['[', '{', '(', '/']);

export class Tokenizer {
  private readonly ids: Map<string, number>;

  private constructor(
    /** Token strings by id. */
    readonly vocab: readonly string[],
    /** Largest single-token integer. */
    readonly maxInt: number,
  ) {
    this.ids = new Map(vocab.map((t, i) => [t, i]));
  }

  /**
   * Builds the vocabulary: specials (fixed ids), punctuation, integers 0..maxInt, reserved
   * words, then the words of `texts` by descending count (ties alphabetical, so the
   * vocabulary does not depend on the order of `texts`). The chat template's own words
   * are always included.
   */
  static fit(texts: Iterable<string>, { maxInt = 255, minCount = 1, maxWords }: FitOptions = {}): Tokenizer {
    if (!Number.isInteger(maxInt) || maxInt < 0) throw new Error(`Tokenizer.fit: maxInt must be an integer >= 0, got ${maxInt}`);
    if (!Number.isInteger(minCount) || minCount < 1) throw new Error(`Tokenizer.fit: minCount must be an integer >= 1, got ${minCount}`);
    if (maxWords !== undefined && (!Number.isInteger(maxWords) || maxWords < 0)) {
      throw new Error(`Tokenizer.fit: maxWords must be an integer >= 0, got ${maxWords}`);
    }
    const base: string[] = [...SPECIAL_TOKENS, ...PUNCTUATION];
    for (let i = 0; i <= maxInt; i++) base.push(String(i));
    base.push(...RESERVED_WORDS);
    const isWord = (t: string) => /^[a-z]/.test(t);
    // The chat template's own words are always in, in order of appearance.
    for (const t of pretokenize(buildPrompt({ instruction: '' }))) if (isWord(t) && !base.includes(t)) base.push(t);
    const taken = new Set(base);
    const counts = new Map<string, number>();
    for (const text of texts) {
      for (const t of pretokenize(text)) if (isWord(t) && !taken.has(t)) counts.set(t, (counts.get(t) ?? 0) + 1);
    }
    const words = [...counts.entries()]
      .filter(([, c]) => c >= minCount)
      .sort((a, b) => b[1] - a[1] || (a[0] < b[0] ? -1 : a[0] > b[0] ? 1 : 0))
      .map(([w]) => w);
    return new Tokenizer([...base, ...(maxWords === undefined ? words : words.slice(0, maxWords))], maxInt);
  }

  /** Vocabulary size (the MLLM's `vocabSize`). */
  get size(): number {
    return this.vocab.length;
  }

  /** Id of a token string, or <unk>'s. */
  tokenId(token: string): number {
    return this.ids.get(token) ?? UNK_ID;
  }

  /** text -> ids (lowercased; unknown words and out-of-range integers -> <unk>). */
  encode(text: string, { eos = false }: { eos?: boolean } = {}): number[] {
    const out: number[] = [];
    for (const t of pretokenize(text)) {
      if (NUMBER_RE.test(t) && (t.length > 1 && t[0] === '0')) out.push(UNK_ID);
      else out.push(this.tokenId(t));
    }
    if (eos) out.push(EOS_ID);
    return out;
  }

  /**
   * ids -> text, re-spacing with fixed rules: no space around special tokens (but <unk>); none before
   * `, : ] } ) . ? ! ;`; none after `[ { (`; quotes glue inward (open / close by parity);
   * `-` glues to a following number; `.` between numbers glues (decimals).
   * <pad>, <bos> and <eos> are dropped unless `keepControl`.
   */
  decode(ids: readonly number[], { keepControl = false }: { keepControl?: boolean } = {}): string {
    const toks: string[] = [];
    for (const id of ids) {
      if (!Number.isInteger(id) || id < 0 || id >= this.vocab.length) {
        throw new Error(`Tokenizer.decode: id ${id} is outside the vocabulary [0, ${this.vocab.length})`);
      }
      if (!keepControl && (id === PAD_ID || id === BOS_ID || id === EOS_ID)) continue;
      toks.push(this.vocab[id]!);
    }
    // <unk> stands for a word, so it is spaced like one; other specials glue.
    const isSpecial = (t: string) => t !== '<unk>' && (SPECIAL_TOKENS as readonly string[]).includes(t);
    const openQuote: Record<string, boolean> = { '"': false, "'": false };
    let out = '';
    let prev: string | null = null;
    let prevGlueAfter = true; // nothing before the first token
    for (let i = 0; i < toks.length; i++) {
      const t = toks[i]!;
      const next = toks[i + 1];
      let glueBefore = prevGlueAfter || isSpecial(t) || NO_SPACE_BEFORE.has(t);
      let glueAfter = isSpecial(t) || NO_SPACE_AFTER.has(t);
      if (t === '"' || t === "'") {
        if (openQuote[t]) glueBefore = true; // closing quote
        else glueAfter = true; // opening quote
        openQuote[t] = !openQuote[t];
      }
      if (t === '-' && next !== undefined && NUMBER_RE.test(next)) glueAfter = true;
      if (t === '.' && prev !== null && NUMBER_RE.test(prev) && next !== undefined && NUMBER_RE.test(next)) glueAfter = true;
      if (!glueBefore) out += ' ';
      out += t;
      prev = t;
      prevGlueAfter = glueAfter;
    }
    return out;
  }

  /**
   * A chat prompt -> ids, with its one `<image>` expanded to `numVisualTokens` slots
   * (Qwen2.5-VL's processor does the same with `<|image_pad|>`). 0 slots drops the image.
   */
  encodePrompt(prompt: string, numVisualTokens: number): number[] {
    if (!Number.isInteger(numVisualTokens) || numVisualTokens < 0) {
      throw new Error(`Tokenizer.encodePrompt: numVisualTokens must be an integer >= 0, got ${numVisualTokens}`);
    }
    const ids = this.encode(prompt);
    const n = ids.filter((i) => i === IMAGE_ID).length;
    if (n !== 1) throw new Error(`Tokenizer.encodePrompt: expected exactly one <image> in the prompt, found ${n}`);
    const at = ids.indexOf(IMAGE_ID);
    return [...ids.slice(0, at), ...new Array<number>(numVisualTokens).fill(IMAGE_ID), ...ids.slice(at + 1)];
  }

  toJSON(): TokenizerJson {
    return { format: 'lens-tokenizer', version: 1, maxInt: this.maxInt, vocab: [...this.vocab] };
  }

  /** Rebuilds a tokenizer, checking the layout this code depends on; `where` names the source. */
  static fromJSON(json: unknown, where = 'tokenizer JSON'): Tokenizer {
    const j = json as Partial<TokenizerJson> | null;
    if (!j || typeof j !== 'object') throw new Error(`${where}: expected an object, got ${json === null ? 'null' : typeof json}`);
    if (j.format !== 'lens-tokenizer') throw new Error(`${where}: field 'format' must be "lens-tokenizer", got ${JSON.stringify(j.format)}`);
    if (j.version !== 1) throw new Error(`${where}: field 'version' must be 1, got ${JSON.stringify(j.version)}`);
    if (!Number.isInteger(j.maxInt) || (j.maxInt as number) < 0) {
      throw new Error(`${where}: field 'maxInt' must be an integer >= 0, got ${JSON.stringify(j.maxInt)}`);
    }
    if (!Array.isArray(j.vocab) || !j.vocab.every((t) => typeof t === 'string' && t !== '')) {
      throw new Error(`${where}: field 'vocab' must be an array of non-empty strings`);
    }
    const vocab = j.vocab as string[];
    SPECIAL_TOKENS.forEach((t, i) => {
      if (vocab[i] !== t) throw new Error(`${where}: field 'vocab[${i}]' must be ${t}, got ${JSON.stringify(vocab[i])}`);
    });
    const seen = new Set<string>();
    for (const t of vocab) {
      if (seen.has(t)) throw new Error(`${where}: field 'vocab' has the duplicate token ${JSON.stringify(t)}`);
      seen.add(t);
    }
    for (let i = 0; i <= (j.maxInt as number); i++) {
      if (!seen.has(String(i))) throw new Error(`${where}: field 'vocab' lacks the integer token ${i} (maxInt ${j.maxInt})`);
    }
    return new Tokenizer(vocab, j.maxInt as number);
  }

  /** Writes the tokenizer as JSON (atomically). */
  save(path: string): void {
    writeJsonAtomic(path, this.toJSON());
  }

  /** Reads a tokenizer written by save(). */
  static load(path: string): Tokenizer {
    let json: unknown;
    try {
      json = JSON.parse(readFileSync(path, 'utf8'));
    } catch (e) {
      throw new Error(`${path}: cannot read tokenizer JSON: ${(e as Error).message}`);
    }
    return Tokenizer.fromJSON(json, path);
  }
}

/**
 * Pads token lists to one length. side 'left' (the default, for prompts) puts every
 * sequence's last token in the last column, as HF's left padding for generation does, so
 * tokens generated or queries appended next follow every row at the same index.
 * -> ids [B][T] and attention mask [B][T] (1 = real token).
 */
export function padSequences(
  seqs: readonly (readonly number[])[],
  { side = 'left', padId = PAD_ID, length }: { side?: 'left' | 'right'; padId?: number; length?: number } = {},
): { ids: number[][]; mask: number[][] } {
  const longest = seqs.reduce((m, s) => Math.max(m, s.length), 0);
  const T = length ?? longest;
  if (T < longest) throw new Error(`padSequences: length ${T} is shorter than the longest sequence (${longest})`);
  const ids: number[][] = [];
  const mask: number[][] = [];
  for (const s of seqs) {
    const pad = new Array<number>(T - s.length).fill(padId);
    const zeros = new Array<number>(T - s.length).fill(0);
    const ones = new Array<number>(s.length).fill(1);
    ids.push(side === 'left' ? [...pad, ...s] : [...s, ...pad]);
    mask.push(side === 'left' ? [...zeros, ...ones] : [...ones, ...zeros]);
  }
  return { ids, mask };
}
