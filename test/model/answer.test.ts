/**
 * The LENS answer format and the official reward parsers' semantics, table-driven
 * (TRL tests/test_rewards.py style).
 */
import { describe, expect, it } from 'vitest';
import { extractAnswer, formatAnswer, isFormatValid, parseBox, parseLabel } from '../../src/model/answer';

describe('formatAnswer', () => {
  it('writes exactly the LENS format with integer pixel boxes', () => {
    expect(formatAnswer({ thinking: 'a', box: [1, 2, 3, 4], label: 'cat' })).toBe(
      '<think>a</think><answer>[{"bbox_2d": [1, 2, 3, 4], "label": "cat"}]</answer>',
    );
    expect(formatAnswer({ thinking: '', box: [1.4, 2.6, 3.5, 0], label: 'a "b"' })).toBe(
      '<think></think><answer>[{"bbox_2d": [1, 3, 4, 0], "label": "a \\"b\\""}]</answer>',
    );
  });
  it('rejects boxes that are not 4 finite numbers', () => {
    expect(() => formatAnswer({ thinking: '', box: [1, 2, 3], label: '' })).toThrow(/4 finite numbers/);
    expect(() => formatAnswer({ thinking: '', box: [1, 2, 3, NaN], label: '' })).toThrow(/4 finite numbers/);
  });
});

describe('isFormatValid', () => {
  const cases: Array<[string, unknown, boolean, boolean]> = [
    // name, text, start-anchored (LENS re.match), full (VLM-R1 re.fullmatch)
    ['canonical', '<think>x</think><answer>[1, 2, 3, 4]</answer>', true, true],
    ['whitespace between', '<think>x</think>\n <answer>y</answer>', true, true],
    ['newlines inside (DOTALL)', '<think>a\nb</think><answer>c\nd</answer>', true, true],
    ['empty tags', '<think></think><answer></answer>', true, true],
    ['trailing text', '<think>x</think><answer>y</answer> bye', true, false],
    ['leading text', 'hi <think>x</think><answer>y</answer>', false, false],
    ['empty string', '', false, false],
    ['missing think', '<answer>y</answer>', false, false],
    ['missing answer', '<think>x</think>', false, false],
    ['text between tags', '<think>x</think> so <answer>y</answer>', false, false],
    ['unclosed answer', '<think>x</think><answer>y', false, false],
    ['unclosed think', '<think>x<answer>y</answer>', false, false],
    ['nested think', '<think><think>x</think></think><answer>y</answer>', true, true],
    ['two answers', '<think>x</think><answer>a</answer><answer>b</answer>', true, true],
    ['not a string', 42, false, false],
  ];
  it.each(cases)('%s', (_name, text, start, full) => {
    expect(isFormatValid(text)).toBe(start);
    expect(isFormatValid(text, { anchor: 'full' })).toBe(full);
  });
});

describe('parseBox', () => {
  const A = (s: string) => `<think>t</think><answer>${s}</answer>`;
  const cases: Array<[string, unknown, number[] | null, number[] | null]> = [
    // name, text, scope 'answer' (default), scope 'anywhere' (official)
    ['canonical', A('[{"bbox_2d": [1, 2, 3, 4], "label": "x"}]'), [1, 2, 3, 4], [1, 2, 3, 4]],
    ['empty', '', null, null],
    ['garbage', 'qwerty ]][[ {', null, null],
    ['no answer tag', '[1, 2, 3, 4]', null, [1, 2, 3, 4]],
    ['unclosed answer', '<answer>[1, 2, 3, 4]', null, [1, 2, 3, 4]],
    ['negative numbers', A('[-1, 2, -3, 4]'), [-1, 2, -3, 4], [-1, 2, -3, 4]],
    ['floats', A('[1.5, 2.25, 3.0, 4]'), [1.5, 2.25, 3, 4], [1.5, 2.25, 3, 4]],
    ['extra spaces', A('[ 1,2,   3,4 ]'), [1, 2, 3, 4], [1, 2, 3, 4]],
    ['space before comma (official regex refuses)', A('[1 , 2, 3, 4]'), null, null],
    ['three numbers', A('[1, 2, 3]'), null, null],
    ['five numbers', A('[1, 2, 3, 4, 5]'), null, null],
    ['two boxes: first wins', A('[1, 2, 3, 4] [5, 6, 7, 8]'), [1, 2, 3, 4], [1, 2, 3, 4]],
    ['box in thinking too', '<think>[9, 9, 9, 9]</think><answer>[1, 2, 3, 4]</answer>', [1, 2, 3, 4], [9, 9, 9, 9]],
    ['nested brackets', A('[[1, 2, 3, 4]]'), [1, 2, 3, 4], [1, 2, 3, 4]],
    ['paren fallback', A('(1, 2, 3, 4)'), null, [1, 2, 3, 4]],
    ['pairs fallback', A('(1, 2), (3, 4)'), null, [1, 2, 3, 4]],
    ['exponent is not a number here', A('[1e3, 2, 3, 4]'), null, null],
    ['not a string', { a: 1 }, null, null],
    ['undefined', undefined, null, null],
  ];
  it.each(cases)('%s', (_name, text, answer, anywhere) => {
    expect(parseBox(text)).toEqual(answer);
    expect(parseBox(text, { scope: 'anywhere' })).toEqual(anywhere);
  });
});

describe('extractAnswer / parseLabel', () => {
  it('reads the answer body and the label, null on garbage', () => {
    const a = formatAnswer({ thinking: 'x', box: [1, 2, 3, 4], label: 'the "big" one' });
    expect(extractAnswer(a)).toBe('[{"bbox_2d": [1, 2, 3, 4], "label": "the \\"big\\" one"}]');
    expect(parseLabel(a)).toBe('the "big" one');
    expect(extractAnswer('<answer>unclosed')).toBeNull();
    expect(parseLabel('<answer>[1, 2, 3, 4]</answer>')).toBeNull();
    expect(parseLabel(7)).toBeNull();
  });
});
