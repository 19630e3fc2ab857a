import { describe, expect, it } from 'vitest';
import { MetricAccumulator, boxHit, boxIou, intersectionUnion, sampleIou } from '../../src/eval/metrics';

const u8 = (...v: number[]): Uint8Array => Uint8Array.from(v);

describe('LISA-convention mask metrics', () => {
  it('empty target and empty prediction score IoU 1 (U = 0)', () => {
    expect(intersectionUnion(u8(0, 0, 0, 0), u8(0, 0, 0, 0))).toEqual({ i: 0, u: 0 });
    expect(sampleIou(0, 0)).toBe(1);
    // empty target, non-empty prediction: U > 0, IoU 0
    expect(sampleIou(0, 2)).toBe(0);
  });

  it('per-sample IoU is I / (U + 1e-5)', () => {
    // target 4 px, prediction 2 of them: I = 2, U = 4
    const r = intersectionUnion(u8(1, 1, 0, 0), u8(1, 1, 1, 1));
    expect(r).toEqual({ i: 2, u: 4 });
    expect(sampleIou(r.i, r.u)).toBe(2 / (4 + 1e-5));
  });

  it('pixels labelled 255 in the target are left out of I and U', () => {
    // idx2 ignored; I = {0}, U = {0, 1, 3}
    expect(intersectionUnion(u8(1, 0, 1, 1), u8(1, 1, 255, 0))).toEqual({ i: 1, u: 3 });
    // everything ignored -> U = 0 -> IoU 1
    expect(intersectionUnion(u8(1, 1), u8(255, 255))).toEqual({ i: 0, u: 0 });
  });

  it('thresholds logits at > 0 (0 itself is background)', () => {
    expect(intersectionUnion(Float32Array.from([0.5, -0.1, 0, 2]), u8(1, 0, 1, 1))).toEqual({ i: 2, u: 3 });
  });

  it('gIoU (mean of IoUs) and cIoU (sum I / sum U) differ', () => {
    const acc = new MetricAccumulator();
    acc.add(u8(1, 0, 0, 0, 0, 0, 0, 0, 0), u8(1, 0, 0, 0, 0, 0, 0, 0, 0)); // I=1, U=1
    acc.add(u8(0, 0, 0, 0, 0, 0, 0, 0, 0), u8(1, 1, 1, 1, 1, 1, 1, 1, 1)); // I=0, U=9
    const r = acc.result();
    expect(r.n).toBe(2);
    expect(r.giou).toBeCloseTo((1 / (1 + 1e-5) + 0) / 2, 12);
    expect(r.ciou).toBeCloseTo(1 / 10, 9);
    expect(r.box_acc50).toBeUndefined();
    expect(r.format_rate).toBeUndefined();
  });

  it('an empty-vs-empty sample counts 1 in gIoU but adds nothing to cIoU', () => {
    const acc = new MetricAccumulator();
    acc.add(u8(0, 0), u8(0, 0));
    acc.add(u8(1, 0), u8(1, 1)); // I=1, U=2
    const r = acc.result();
    expect(r.giou).toBeCloseTo((1 + 1 / (2 + 1e-5)) / 2, 12);
    expect(r.ciou).toBeCloseTo(0.5, 9);
  });

  it('rejects a prediction of the wrong size', () => {
    expect(() => intersectionUnion(u8(1, 0, 1), u8(1, 0), 'pred.json[0]')).toThrow('pred.json[0]: mask has 3 pixels, the target has 2');
  });

  it('no samples gives zeros, not NaN', () => {
    expect(new MetricAccumulator().result()).toEqual({ giou: 0, ciou: 0, n: 0 });
  });
});

describe('box metrics and format rate', () => {
  it('box IoU of xywh boxes', () => {
    expect(boxIou([0, 0, 2, 2], [1, 1, 2, 2])).toBeCloseTo(1 / 7, 12);
    expect(boxIou([0, 0, 2, 2], [0, 0, 2, 2])).toBe(1);
    expect(boxIou([0, 0, 1, 1], [2, 2, 1, 1])).toBe(0);
    expect(boxIou([0, 0, 0, 0], [0, 0, 0, 0])).toBe(0);
  });

  it('Acc@0.5 is strict (IoU exactly 0.5 misses) and a missing box misses', () => {
    expect(boxHit([0, 0, 2, 1], [0, 0, 1, 1])).toBe(false); // IoU 0.5
    expect(boxHit([0, 0, 1.9, 1], [0, 0, 1, 1])).toBe(true); // IoU 1/1.9
    expect(boxHit(null, [0, 0, 1, 1])).toBe(false);
  });

  it('accumulates box_acc50 over samples with a target box and format_rate over those that report it', () => {
    const acc = new MetricAccumulator();
    const m = u8(1);
    acc.add(m, m, { predBox: [0, 0, 2, 2], targetBox: [0, 0, 2, 2], formatValid: true });
    acc.add(m, m, { predBox: [5, 5, 1, 1], targetBox: [0, 0, 2, 2], formatValid: false });
    acc.add(m, m, { predBox: null, targetBox: [0, 0, 2, 2], formatValid: true });
    acc.add(m, m, { predBox: [0, 0, 1, 1], targetBox: null }); // empty target: not a box sample
    const r = acc.result();
    expect(r.box_acc50).toBeCloseTo(1 / 3, 12);
    expect(r.format_rate).toBeCloseTo(2 / 3, 12);
    expect(r.n).toBe(4);
  });
});
