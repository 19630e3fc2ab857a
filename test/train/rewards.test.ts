import { describe, expect, it } from 'vitest';
import { boxIouReward, boxIouXyxy, formatReward, meanStd, segIouReward, unifiedReward } from '../../src/train/rewards';

const ans = (box: string, think = 'the red circle is left') => `<think>${think}</think><answer>[{"bbox_2d": ${box}, "label": "red circle"}]</answer>`;

describe('formatReward', () => {
  it.each([
    [ans('[1, 2, 3, 4]'), 1],
    ['<think>\nmulti\nline\n</think>\n<answer>x</answer>', 1], // dot matches newlines, whitespace between tags
    [`${ans('[1, 2, 3, 4]')} trailing text`, 1], // re.match anchors at the start only (official)
    ['<answer>[1, 2, 3, 4]</answer>', 0], // missing think
    ['<think>t</think>', 0], // missing answer
    ['<think>t</think><answer>[1, 2, 3, 4]', 0], // unclosed answer
    [' <think>t</think><answer>x</answer>', 0], // must start with <think>
    ['<answer>x</answer><think>t</think>', 0], // wrong order
    ['', 0],
    ['%%% garbage ][{', 0],
  ])('%j -> %d', (text, r) => {
    expect(formatReward(text)).toBe(r);
  });
});

describe('boxIouReward', () => {
  const gt: [number, number, number, number] = [0, 0, 10, 20];
  it.each([
    ['exact', ans('[0, 0, 10, 20]'), {}, 1],
    ['half', ans('[0, 0, 10, 10]'), {}, 0.5],
    ['half squared', ans('[0, 0, 10, 10]'), { exponent: 2 }, 0.25],
    ['disjoint', ans('[20, 20, 30, 30]'), {}, 0],
    ['garbage text', 'qwerty', {}, 0],
    ['missing answer tag: no box parsed', '<think>[0, 0, 10, 20]</think>', {}, 0],
    ['box only in the thinking, scope anywhere finds it', '<think>[0, 0, 10, 20]</think>', { scope: 'anywhere' as const }, 1],
    ['inverted box is empty', ans('[10, 20, 0, 0]'), {}, 0],
    ['zero-area box', ans('[5, 5, 5, 15]'), {}, 0],
    ['box reaching outside, clamped to the image', ans('[-10, 0, 10, 20]'), { imageSize: 64 }, 1],
    ['box reaching outside, unclamped', ans('[-10, 0, 10, 20]'), {}, 0.5],
    ['box wholly outside the image, clamped -> empty', ans('[70, 70, 90, 90]'), { imageSize: 64 }, 0],
    ['decimals and negatives parse', ans('[0.0, 0.0, 10.0, 20.0]'), {}, 1],
  ])('%s', (_name, text, opts, r) => {
    expect(boxIouReward(text, gt, opts)).toBeCloseTo(r, 10);
  });

  it('hand-computed partial overlap: [0,0,10,10] vs [5,5,15,15] = 25 / 175', () => {
    expect(boxIouXyxy([0, 0, 10, 10], [5, 5, 15, 15])).toBeCloseTo(25 / 175, 12);
  });

  it('rejects a non-positive exponent, naming it', () => {
    expect(() => boxIouReward(ans('[0, 0, 1, 1]'), gt, { exponent: 0 })).toThrow(/boxIouReward: exponent must be a finite number > 0, got 0/);
  });
});

describe('segIouReward', () => {
  const u8 = (...v: number[]) => Uint8Array.from(v);
  it.each([
    ['exact', u8(1, 1, 0, 0), u8(1, 1, 0, 0), {}, 1],
    ['half', u8(1, 1, 0, 0), u8(1, 0, 0, 0), {}, 0.5],
    ['half squared', u8(1, 1, 0, 0), u8(1, 0, 0, 0), { exponent: 2 }, 0.25],
    ['empty prediction on a non-empty target', u8(0, 0, 0, 0), u8(1, 0, 0, 0), {}, 0],
    ['empty prediction on an empty target (LISA: 1)', u8(0, 0, 0, 0), u8(0, 0, 0, 0), {}, 1],
    ['non-empty prediction on an empty target', u8(1, 0, 0, 0), u8(0, 0, 0, 0), {}, 0],
    ['ignore pixels count in neither I nor U', u8(1, 1, 1, 0), u8(1, 255, 255, 0), {}, 1],
    ['ignore pixels only: empty union -> 1', u8(1, 1, 0, 0), u8(255, 255, 255, 255), {}, 1],
  ])('%s', (_name, pred, gt, opts, r) => {
    expect(segIouReward(pred, gt, opts)).toBeCloseTo(r, 4);
  });

  it('reads Float32Array logits with threshold > 0', () => {
    expect(segIouReward(Float32Array.of(2, -1, 0, 0.5), Uint8Array.of(1, 1, 0, 1))).toBeCloseTo(2 / 3, 4);
  });

  it('names a size mismatch', () => {
    expect(() => segIouReward(new Uint8Array(3), new Uint8Array(4))).toThrow(/segIouReward: mask has 3 pixels, the target has 4/);
  });
});

describe('unifiedReward', () => {
  it('weights the parts (Eq. 3)', () => {
    expect(unifiedReward({ format: 1, box: 0.5, seg: 0.25 })).toBe(1.75);
    expect(unifiedReward({ format: 1, box: 0.5, seg: 0.25 }, { format: 1, box: 1, seg: 2 })).toBe(2);
    expect(unifiedReward({ format: 1, box: 0.5, seg: 0.25 }, { format: 0, box: 1, seg: 0 })).toBe(0.5);
  });
  it('refuses NaN parts, naming the field', () => {
    expect(() => unifiedReward({ format: 1, box: NaN, seg: 0 })).toThrow(/parts\.box must be a finite number/);
  });
  it('meanStd is the population figure', () => {
    expect(meanStd([1, 3])).toEqual({ mean: 2, std: 1 });
    expect(meanStd([])).toEqual({ mean: 0, std: 0 });
  });
});
