import sharp from 'sharp';
import { describe, expect, it } from 'vitest';
import type { TrainExample } from '../../src/train/data';
import type { RolloutGroup, RolloutView } from '../../src/train/rollouts';
import { rolloutBrowserBundle, rolloutOverlayPng, rolloutRows } from '../../src/viz/rollouts';

const side = 4;
const example = {
  id: 'refcoco/val/1/0', family: 'refcoco', split: 'val', sentence: 'the <red> star',
  rgb: new Uint8Array(side * side * 3).fill(100), target: Uint8Array.from([0, 0, 0, 0, 0, 1, 1, 0, 0, 1, 1, 0, 0, 0, 0, 0]), box: [1, 1, 3, 3],
} as unknown as TrainExample;

const rollout = (index: number, over: Partial<RolloutView>): RolloutView => ({
  index, text: '', thinking: null, answer: null, box: null, length: 3, mask: new Uint8Array(side * side),
  format: 0, boxReward: 0, seg: 0, total: 0, advantage: 0, ...over,
});

const group: RolloutGroup = {
  example, side, rollouts: [
    rollout(0, { text: '<think>a & b</think><answer>[1, 1, 3, 3]</answer>', thinking: 'a & b', answer: '[1, 1, 3, 3]', box: [1, 1, 3, 3], format: 1, boxReward: 1, seg: 0.5, total: 2.5, advantage: 0.7 }),
    rollout(1, { text: 'junk', total: 0, advantage: -0.7 }),
    rollout(2, { text: '<answer>[3, 1, 1, 3]</answer>', answer: '[3, 1, 1, 3]', box: [3, 1, 1, 3] }),
  ],
};

describe('rollout browser view', () => {
  it('draws a rollout over the input image at the default upscale', async () => {
    const meta = await sharp(await rolloutOverlayPng(group, group.rollouts[0]!)).metadata();
    expect([meta.width, meta.height]).toEqual([256, 256]); // 4 px * 64 (long side >= 256)
  });

  it('has one escaped table row per rollout with its overlay, rewards and a signed advantage colour', async () => {
    const b = await rolloutBrowserBundle(group);
    const html = b['text/html'] as string;
    expect(html.match(/<tr>/g)!.length).toBe(4); // header + 3 rollouts
    expect(html.match(/data:image\/png;base64,/g)!.length).toBe(3);
    expect(html).toContain('a &amp; b');
    expect(html).toContain('the &lt;red&gt; star');
    expect(html).toContain('color:#00a070">0.700');
    expect(html).toContain('color:#d03020">-0.700');
    expect(b['text/plain']).toContain('#: 0 | thinking: a & b | answer: [1, 1, 3, 3] | box: [1, 1, 3, 3] | format: 1 | box_iou: 1 | seg_iou: 0.500 | total: 2.500 | advantage: 0.700');
  });

  it('says when a completion has no think or answer block', () => {
    const rows = rolloutRows(group);
    expect(rows[1]).toMatchObject({ thinking: '(no <think> block)', answer: '(no <answer> block) "junk"', box: 'none' });
    expect(rows[2]!.box).toBe('[3, 1, 1, 3] (inverted: empty)'); // drawn as no box: overlay refuses w < 0
  });
});
