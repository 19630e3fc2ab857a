/**
 * Tokenizer: fixed special ids, single-token integers, exact round trip of the answer
 * format, the chat template's image slots, save / load, and bad input.
 */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { formatAnswer, parseBox } from '../../src/model/answer';
import {
  ANSWER_END_ID,
  ANSWER_ID,
  EOS_ID,
  IMAGE_ID,
  PAD_ID,
  SPECIAL_TOKENS,
  THINK_END_ID,
  THINK_ID,
  Tokenizer,
  UNK_ID,
  buildPrompt,
  padSequences,
  pretokenize,
} from '../../src/model/tokenizer';

const TEXTS = ['The red circle left of the blue square.', 'the largest green triangle', "the object's colour is red", 'so it is the target or not'];

describe('Tokenizer.fit', () => {
  const tok = Tokenizer.fit(TEXTS, { maxInt: 255 });

  it('puts the special tokens at their fixed ids', () => {
    SPECIAL_TOKENS.forEach((t, i) => expect(tok.vocab[i]).toBe(t));
    expect(tok.vocab[IMAGE_ID]).toBe('<image>');
    expect(tok.vocab[EOS_ID]).toBe('<eos>');
  });

  it('makes every integer 0..maxInt one token', () => {
    for (const n of [0, 7, 64, 199, 255]) expect(tok.encode(String(n))).toEqual([tok.tokenId(String(n))]);
    expect(tok.tokenId('255')).not.toBe(UNK_ID);
    expect(tok.encode('256')).toEqual([UNK_ID]);
    expect(tok.encode('007')).toEqual([UNK_ID]);
  });

  it('does not depend on the order of the texts, and counts words', () => {
    expect(Tokenizer.fit([...TEXTS].reverse(), { maxInt: 255 }).vocab).toEqual(tok.vocab);
    const first = tok.vocab.indexOf('the');
    const later = tok.vocab.indexOf('triangle');
    expect(first).toBeGreaterThan(0);
    expect(later).toBeGreaterThan(first); // 'the' is more frequent
    expect(tok.vocab).toContain("object's");
  });

  it('honours minCount and maxWords', () => {
    const a = Tokenizer.fit(['apple apple pear'], { maxInt: 3, minCount: 2 });
    expect(a.vocab).toContain('apple');
    expect(a.vocab).not.toContain('pear');
    const b = Tokenizer.fit(['apple apple pear'], { maxInt: 3, maxWords: 0 });
    expect(b.vocab).not.toContain('apple');
    expect(b.vocab).toContain('assistant'); // template words always present
  });

  it('rejects bad options naming the field', () => {
    expect(() => Tokenizer.fit([], { maxInt: -1 })).toThrow(/maxInt/);
    expect(() => Tokenizer.fit([], { minCount: 0 })).toThrow(/minCount/);
    expect(() => Tokenizer.fit([], { maxWords: 1.5 })).toThrow(/maxWords/);
  });
});

describe('encode / decode', () => {
  const tok = Tokenizer.fit(TEXTS, { maxInt: 255 });

  it('lowercases, maps unknown words to <unk>, recognises specials', () => {
    expect(pretokenize('The RED <think>x</think>, bbox_2d')).toEqual(['the', 'red', '<think>', 'x', '</think>', ',', 'bbox_2d']);
    const ids = tok.encode('The zebra <answer>');
    expect(ids).toEqual([tok.tokenId('the'), UNK_ID, ANSWER_ID]);
    expect(tok.encode('red', { eos: true })).toEqual([tok.tokenId('red'), EOS_ID]);
  });

  it('round-trips the LENS answer exactly, so the box re-parses', () => {
    const answers = [
      formatAnswer({ thinking: 'the red circle is left of the blue square, so it is the target.', box: [3, 10, 40, 63], label: 'the red circle' }),
      formatAnswer({ thinking: '', box: [0, 0, 255, 255], label: 'red' }),
      formatAnswer({ thinking: "the object's colour is red.", box: [12, 7, 9, 1], label: 'the largest green triangle' }),
    ];
    for (const a of answers) {
      const back = tok.decode(tok.encode(a, { eos: true }));
      expect(back).toBe(a);
      expect(parseBox(back)).toEqual(parseBox(a));
    }
    const ids = tok.encode(answers[0]!);
    expect(ids[0]).toBe(THINK_ID);
    expect(ids).toContain(THINK_END_ID);
    expect(ids[ids.length - 1]).toBe(ANSWER_END_ID);
  });

  it('normalises spacing with fixed rules', () => {
    expect(tok.decode(tok.encode('  The   red ,circle .'))).toBe('the red, circle.');
    expect(tok.decode(tok.encode('is "red" or \'blue\' ( 3 ) [1,2]'))).toBe('is "red" or \'blue\' (3) [1, 2]');
    expect(tok.decode(tok.encode('-5 and 1.5'))).toBe('-5 and 1.5');
  });

  it('drops control tokens unless asked, and rejects ids outside the vocabulary', () => {
    const ids = [PAD_ID, tok.tokenId('red'), EOS_ID];
    expect(tok.decode(ids)).toBe('red');
    expect(tok.decode(ids, { keepControl: true })).toBe('<pad>red<eos>');
    expect(tok.decode(tok.encode('the zebra is red'))).toBe('the <unk> is red');
    expect(() => tok.decode([tok.size])).toThrow(/outside the vocabulary/);
    expect(() => tok.decode([-1])).toThrow(/outside the vocabulary/);
  });
});

describe('chat template', () => {
  const tok = Tokenizer.fit(TEXTS, { maxInt: 63 });

  it('has one <image> then the question, and ends by opening the assistant turn', () => {
    const p = buildPrompt({ instruction: 'the red circle' });
    expect(p.match(/<image>/g)).toHaveLength(1);
    expect(p).toContain("<image>Please find 'the red circle' with bbox.");
    expect(p.endsWith('<|im_start|>assistant\n')).toBe(true);
    expect(buildPrompt({ system: 'Be brief.', instruction: 'x' })).toContain('system\nBe brief.<|im_end|>');
  });

  it('expands <image> to one slot per visual token, with no unknown template word', () => {
    const ids = tok.encodePrompt(buildPrompt({ instruction: 'the red circle' }), 5);
    expect(ids.filter((i) => i === IMAGE_ID)).toHaveLength(5);
    const at = ids.indexOf(IMAGE_ID);
    expect(ids.slice(at, at + 5)).toEqual([IMAGE_ID, IMAGE_ID, IMAGE_ID, IMAGE_ID, IMAGE_ID]);
    expect(ids).not.toContain(UNK_ID);
    expect(tok.encodePrompt(buildPrompt({ instruction: 'red' }), 0)).not.toContain(IMAGE_ID);
    expect(() => tok.encodePrompt('no image here', 4)).toThrow(/exactly one <image>.*found 0/);
    expect(() => tok.encodePrompt('<image><image>', 4)).toThrow(/found 2/);
    expect(() => tok.encodePrompt('<image>', -1)).toThrow(/numVisualTokens/);
  });
});

describe('save / load', () => {
  const dir = mkdtempSync(join(tmpdir(), 'lens-tok-'));
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  it('round-trips the vocabulary', () => {
    const tok = Tokenizer.fit(TEXTS, { maxInt: 31 });
    const path = join(dir, 'tok.json');
    tok.save(path);
    const back = Tokenizer.load(path);
    expect(back.vocab).toEqual(tok.vocab);
    expect(back.maxInt).toBe(31);
    expect(back.encode('the red circle 17')).toEqual(tok.encode('the red circle 17'));
  });

  it('fails clearly on a bad file, naming it and the field', () => {
    const good = Tokenizer.fit(TEXTS, { maxInt: 3 }).toJSON();
    const cases: Array<[unknown, RegExp]> = [
      [{ ...good, format: 'x' }, /'format'/],
      [{ ...good, version: 2 }, /'version'/],
      [{ ...good, maxInt: 9 }, /lacks the integer token 4/],
      [{ ...good, vocab: ['<bos>', ...good.vocab.slice(1)] }, /vocab\[0\]' must be <pad>/],
      [{ ...good, vocab: [...good.vocab, 'red', 'red'] }, /duplicate token "red"/],
      [null, /expected an object/],
    ];
    for (const [json, re] of cases) expect(() => Tokenizer.fromJSON(json, 'ckpt/tok.json')).toThrow(re);
    const bad = join(dir, 'bad.json');
    writeFileSync(bad, '{not json');
    expect(() => Tokenizer.load(bad)).toThrow(/bad\.json: cannot read tokenizer JSON/);
  });
});

describe('padSequences', () => {
  it('left-pads by default so the last tokens line up', () => {
    expect(padSequences([[5, 6, 7], [8]])).toEqual({ ids: [[5, 6, 7], [0, 0, 8]], mask: [[1, 1, 1], [0, 0, 1]] });
    expect(padSequences([[5, 6], [8]], { side: 'right', length: 3 })).toEqual({ ids: [[5, 6, 0], [8, 0, 0]], mask: [[1, 1, 0], [1, 0, 0]] });
    expect(() => padSequences([[1, 2, 3]], { length: 2 })).toThrow(/shorter than the longest/);
  });
});
