/**
 * The LENS answer format (paper Fig. 4; lens-official-code-facts.md "Prompt and answer
 * format"): `<think>…</think><answer>[{"bbox_2d": [x1, y1, x2, y2], "label": "…"}]</answer>`,
 * boxes as integers in absolute pixels of the model's input image, xyxy.
 *
 * The checks follow the official reward code (hustvl/LENS `src/open_r1/rewards.py`,
 * `utils.py`), read for this port:
 * - format: `re.match(r"<think>.*?</think>\s*<answer>.*?</answer>", text, re.DOTALL)`.
 *   Python's re.match anchors at the START only, so trailing text after `</answer>` still
 *   passes; VLM-R1 uses re.fullmatch (anchored at both ends). Default here: 'start' (LENS);
 *   `{ anchor: 'full' }` gives VLM-R1's stricter check.
 * - box: the first `[a, b, c, d]` matching
 *   `\[\s*(-?\d+(?:\.\d+)?),\s*(-?\d+(?:\.\d+)?),\s*(-?\d+(?:\.\d+)?),\s*(-?\d+(?:\.\d+)?)\s*\]`.
 *   The official code searches the WHOLE completion (so a box quoted in the thinking wins)
 *   and falls back to `(a, b, c, d)` and `(a, b), (c, d)`, returning [0, 0, 0, 0] on
 *   failure (IoU 0). Default here: scope 'answer' (inside the first closed
 *   `<answer>…</answer>`), bracket form only, null on failure; `{ scope: 'anywhere' }`
 *   reproduces the official search exactly (null instead of zeros).
 */

/** An axis-aligned box [x1, y1, x2, y2] in absolute pixels. */
export type Box = [number, number, number, number];

/**
 * The LENS answer string. Coordinates are rounded to integers; the label is JSON-escaped.
 * formatAnswer({thinking: 'a', box: [1, 2, 3, 4], label: 'cat'})
 *   === '<think>a</think><answer>[{"bbox_2d": [1, 2, 3, 4], "label": "cat"}]</answer>'
 */
export function formatAnswer({ thinking, box, label }: { thinking: string; box: readonly number[]; label: string }): string {
  if (!Array.isArray(box) || box.length !== 4 || !box.every((v) => Number.isFinite(v))) {
    throw new Error(`formatAnswer: box must be 4 finite numbers [x1, y1, x2, y2], got ${JSON.stringify(box)}`);
  }
  const b = box.map((v) => Math.round(v));
  return `<think>${thinking}</think><answer>[{"bbox_2d": [${b.join(', ')}], "label": ${JSON.stringify(label)}}]</answer>`;
}

const FORMAT_START = /^<think>[\s\S]*?<\/think>\s*<answer>[\s\S]*?<\/answer>/;
const FORMAT_FULL = /^<think>[\s\S]*?<\/think>\s*<answer>[\s\S]*?<\/answer>$/;

/**
 * The official think-format check (dot matches newlines). anchor 'start' = Python re.match
 * (LENS, Seg-Zero); 'full' = re.fullmatch (VLM-R1). Never throws; non-strings are invalid.
 */
export function isFormatValid(text: unknown, { anchor = 'start' }: { anchor?: 'start' | 'full' } = {}): boolean {
  if (typeof text !== 'string') return false;
  return (anchor === 'full' ? FORMAT_FULL : FORMAT_START).test(text);
}

const NUM = '(-?\\d+(?:\\.\\d+)?)';
const BRACKET = new RegExp(`\\[\\s*${NUM},\\s*${NUM},\\s*${NUM},\\s*${NUM}\\s*\\]`);
const PAREN = new RegExp(`\\(\\s*${NUM},\\s*${NUM},\\s*${NUM},\\s*${NUM}\\s*\\)`);
const PAIRS = new RegExp(`\\(\\s*${NUM},\\s*${NUM}\\),\\s*\\(\\s*${NUM},\\s*${NUM}\\)`);
const ANSWER = /<answer>([\s\S]*?)<\/answer>/;
const THINK = /<think>([\s\S]*?)<\/think>/;

function firstMatch(re: RegExp, s: string): Box | null {
  const m = re.exec(s);
  if (!m) return null;
  const box = [m[1], m[2], m[3], m[4]].map(Number) as Box;
  return box.every(Number.isFinite) ? box : null;
}

/** The text inside the first closed `<answer>…</answer>`, or null. Never throws. */
export function extractAnswer(text: unknown): string | null {
  if (typeof text !== 'string') return null;
  const m = ANSWER.exec(text);
  return m ? m[1]! : null;
}

/** The text inside the first closed `<think>…</think>`, or null. Never throws. */
export function extractThinking(text: unknown): string | null {
  if (typeof text !== 'string') return null;
  const m = THINK.exec(text);
  return m ? m[1]! : null;
}

/**
 * The predicted box: the first `[a, b, c, d]` of numbers (ints or decimals, maybe negative)
 * in the answer (scope 'answer', default) or anywhere with the official fallbacks
 * (scope 'anywhere'). null when there is none; never throws.
 * parseBox('<think>x</think><answer>[{"bbox_2d": [1, 2, 3, 4]}]</answer>') -> [1, 2, 3, 4]
 */
export function parseBox(text: unknown, { scope = 'answer' }: { scope?: 'answer' | 'anywhere' } = {}): Box | null {
  try {
    if (typeof text !== 'string') return null;
    if (scope === 'answer') {
      const inner = extractAnswer(text);
      return inner === null ? null : firstMatch(BRACKET, inner);
    }
    return firstMatch(BRACKET, text) ?? firstMatch(PAREN, text) ?? firstMatch(PAIRS, text);
  } catch {
    return null;
  }
}

/** The `"label"` string of the answer JSON, or null (for logs and notebooks). Never throws. */
export function parseLabel(text: unknown): string | null {
  const inner = extractAnswer(text);
  if (inner === null) return null;
  const m = /"label"\s*:\s*"((?:[^"\\]|\\.)*)"/.exec(inner);
  if (!m) return null;
  try {
    return JSON.parse(`"${m[1]}"`) as string;
  } catch {
    return null;
  }
}
