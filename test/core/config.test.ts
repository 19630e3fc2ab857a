import { describe, expect, it } from 'vitest';
import { resolveConfig, rules } from '../../src/config';

const DEFAULT = { lr: 1e-3, groupSize: 8, connector: 'vit', rewards: { format: 1, box: 1 }, splits: ['val'] };
const RULES = { lr: rules.positive, groupSize: rules.int(2), connector: rules.oneOf('vit', 'mlp'), 'rewards.box': rules.nonNegative };

describe('resolveConfig', () => {
  it('fills defaults, merges nested fields, replaces lists whole, and does not share state', () => {
    const c = resolveConfig(DEFAULT, { groupSize: 4, rewards: { box: 0 }, splits: ['testA', 'testB'] }, 'cfg', RULES);
    expect(c).toEqual({ lr: 1e-3, groupSize: 4, connector: 'vit', rewards: { format: 1, box: 0 }, splits: ['testA', 'testB'] });
    c.rewards.format = 5;
    expect(DEFAULT.rewards.format).toBe(1);
  });
  it.each([
    [{ lr: -1 }, /cfg: field 'lr' = -1; expected a positive number/],
    [{ groupSize: 1 }, /field 'groupSize' = 1; expected an integer in \[2, ∞\]/],
    [{ connector: 'cnn' }, /field 'connector' = "cnn"; expected one of "vit", "mlp"/],
    [{ rewards: { box: -0.5 } }, /field 'rewards.box' = -0.5/],
    [{ rewards: { seg: 1 } }, /unknown field 'rewards.seg'; expected one of: format, box/],
    [{ lr: '0.1' }, /field 'lr' must be a number, got "0.1"/],
    [{ rewards: 3 }, /field 'rewards' must be an object/],
    [{ splits: 'val' }, /field 'splits' must be a list/],
    [{ splits: { a: 1 } }, /field 'splits' must be a list/],
  ])('rejects %j', (delta, msg) => {
    expect(() => resolveConfig(DEFAULT, delta, 'cfg', RULES)).toThrow(msg);
  });
});
