import { describe, expect, it } from 'vitest';
import type { Row } from '../../src/util/arrow';
import { defaultWindow, meanBandSeries, movingAverage, rawAndSmoothed, scoreSeries, stepSeries } from '../../src/viz/run_charts';

const steps: Row[] = [
  { step: 0, loss: 4, rewardMean: 1, rewardStd: 0.5, boxPrompt: 1 },
  { step: 1, loss: 2, rewardMean: 2, rewardStd: 0, boxPrompt: 0 },
  { step: 2, loss: null, rewardMean: 3, boxPrompt: 1 },
  { step: 3, loss: 0, rewardMean: 1.5, rewardStd: 1, boxPrompt: 0 },
];

describe('stepSeries', () => {
  it('takes the finite values of a column over steps, optionally filtered', () => {
    expect(stepSeries(steps, 'loss')).toEqual({ x: [0, 1, 3], y: [4, 2, 0] });
    expect(stepSeries(steps, 'loss', { filter: (r) => r.boxPrompt === 0 })).toEqual({ x: [1, 3], y: [2, 0] });
    expect(stepSeries([], 'loss')).toEqual({ x: [], y: [] });
  });

  it('names a missing column and the columns there are', () => {
    expect(() => stepSeries(steps, 'kl')).toThrow("steps.arrow: no step logs column 'kl'; columns: step, loss, rewardMean, rewardStd, boxPrompt");
  });
});

describe('movingAverage', () => {
  it('averages the trailing window, shorter at the start', () => {
    expect(movingAverage([1, 2, 3, 4], 2)).toEqual([1, 1.5, 2.5, 3.5]);
    expect(movingAverage([3, 6, 9], 5)).toEqual([3, 4.5, 6]);
    expect(movingAverage([5, 7], 1)).toEqual([5, 7]);
    expect(() => movingAverage([1], 0)).toThrow('window must be an integer >= 1, got 0');
  });

  it('has a window of ~5% of the points', () => {
    expect(defaultWindow(10)).toBe(1);
    expect(defaultWindow(800)).toBe(40);
  });
});

describe('meanBandSeries / rawAndSmoothed', () => {
  it('draws mean and mean +- std on the steps that log both', () => {
    const [m, hi, lo] = meanBandSeries(steps, 'reward', { name: 'R', color: '#123456' });
    expect(m).toMatchObject({ name: 'R mean', x: [0, 1, 3], y: [1, 2, 1.5], color: '#123456' });
    expect(hi).toMatchObject({ x: [0, 1, 3], y: [1.5, 2, 2.5], dash: 'dash' });
    expect(lo).toMatchObject({ x: [0, 1, 3], y: [0.5, 2, 0.5], dash: 'dash' });
  });

  it('gives the raw column dotted and its moving average solid', () => {
    const [raw, smooth] = rawAndSmoothed(steps, 'loss', { window: 2 });
    expect(raw).toMatchObject({ name: 'loss (per step)', y: [4, 2, 0], dash: 'dot' });
    expect(smooth).toMatchObject({ name: 'loss (mean of 2)', y: [4, 3, 1] });
  });
});

describe('scoreSeries', () => {
  it('starts the policy at the stage-1 score at step 0 and puts each score after its step', () => {
    const scored: Row[] = [
      { step: 0, rewardMean: 1 },
      { step: 1, rewardMean: 1, scoreReward: 1.5, scoreRefReward: 1.4 },
      { step: 2, rewardMean: 1 },
      { step: 3, rewardMean: 1, scoreReward: 1.6, scoreRefReward: 1.4 },
    ];
    const [policy, ref] = scoreSeries(scored);
    expect(policy).toMatchObject({ x: [0, 2, 4], y: [1.4, 1.5, 1.6], markers: true });
    expect(ref).toMatchObject({ x: [0, 4], y: [1.4, 1.4], dash: 'dash' });
    expect(scoreSeries(steps)).toEqual([]); // a run that scored nothing
  });
});
