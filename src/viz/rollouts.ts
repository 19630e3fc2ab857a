/**
 * The rollout browser's display (notebook 04, issue #6): one prompt's G stage-2 rollouts
 * (src/train/rollouts.ts) side by side, one table row each: the reasoning text, the
 * parsed box, the mask overlay (PNG via sharp), R_format / R_box / R_seg, the total
 * and the group-normalised advantage. Sent as a text/html + text/plain bundle
 * (DESIGN.md "Notebooks"); the PNG is embedded as a data URI so the page and the
 * notebook need no other file.
 */
import type { RolloutGroup, RolloutView } from '../train/rollouts';
import type { MimeBundle } from './display';
import { PRED_COLOR } from './predictions';
import { overlayPng, type BoxLayer, type MaskLayer } from './overlay';
import { GT_BOX_COLOR, GT_MASK_COLOR } from './samples';
import { escapeXml } from './svg';

/** A rollout's mask / box colour (ground truth stays green / amber). */
export const ROLLOUT_COLOR = PRED_COLOR;

const xyxyToXywh = (b: readonly number[]): [number, number, number, number] => [b[0]!, b[1]!, b[2]! - b[0]!, b[3]! - b[1]!];

/**
 * The rollout's overlay on the model-input image (example.rgb, S x S): ground-truth mask
 * and box, then the rollout's mask and parsed box. -> PNG bytes.
 */
export async function rolloutOverlayPng(group: RolloutGroup, r: RolloutView, { scale }: { scale?: number } = {}): Promise<Uint8Array> {
  const e = group.example;
  const masks: MaskLayer[] = [
    { mask: e.target, color: GT_MASK_COLOR, alpha: 0.35, outline: 1 },
    { mask: r.mask, color: ROLLOUT_COLOR, alpha: 0.45, outline: 1 },
  ];
  const boxes: BoxLayer[] = [{ xywh: xyxyToXywh(e.box), color: GT_BOX_COLOR }];
  // An inverted box (x2 <= x1 or y2 <= y1) is empty for R_box (rewards.ts) and is not drawn.
  if (r.box && r.box[2] > r.box[0] && r.box[3] > r.box[1]) boxes.push({ xywh: xyxyToXywh(r.box), color: ROLLOUT_COLOR });
  return overlayPng({ data: e.rgb, height: group.side, width: group.side }, { masks, boxes, ...(scale ? { scale } : {}) });
}

const boxText = (b: RolloutView['box']): string => (b ? `[${b.join(', ')}]${b[2] > b[0] && b[3] > b[1] ? '' : ' (inverted: empty)'}` : 'none');

const fmt = (v: number, d = 3): string => (Number.isFinite(v) && !Number.isInteger(v) ? v.toFixed(d) : String(v));

/** The rows of the browser as plain records (also the text/plain part). */
export function rolloutRows(group: RolloutGroup): Array<Record<string, string | number>> {
  return group.rollouts.map((r) => ({
    '#': r.index,
    thinking: r.thinking ?? '(no <think> block)',
    answer: r.answer ?? `(no <answer> block) ${JSON.stringify(r.text)}`,
    box: boxText(r.box),
    format: r.format,
    box_iou: r.boxReward,
    seg_iou: r.seg,
    total: r.total,
    advantage: r.advantage,
  }));
}

/**
 * One prompt's rollouts as a bundle: an HTML table (reasoning, box, overlay, reward parts,
 * advantage per rollout, rows sorted as drawn) and a plain-text version.
 */
export async function rolloutBrowserBundle(group: RolloutGroup, { panelWidth = 160 }: { panelWidth?: number } = {}): Promise<MimeBundle> {
  const e = group.example;
  const pngs = await Promise.all(group.rollouts.map((r) => rolloutOverlayPng(group, r)));
  const head = ['#', 'reasoning (<think>)', 'answer', 'box (xyxy)', 'mask (red) vs truth (green)', 'R_format', 'R_box', 'R_seg', 'R', 'advantage'];
  const td = (s: string, style = ''): string => `<td style="vertical-align:top;${style}">${s}</td>`;
  const num = (v: number, color?: string): string => td(fmt(v), `text-align:right;font-family:monospace${color ? `;color:${color}` : ''}`);
  const rows = group.rollouts.map((r, i) => {
    const adv = r.advantage > 0 ? '#00a070' : r.advantage < 0 ? '#d03020' : undefined;
    const img = `<img src="data:image/png;base64,${Buffer.from(pngs[i]!).toString('base64')}" width="${panelWidth}" style="image-rendering:pixelated" alt="rollout ${r.index}"/>`;
    return `<tr>${td(String(r.index))}${td(escapeXml(r.thinking ?? '(no <think> block)'), 'max-width:320px;white-space:pre-wrap;font-size:12px')}`
      + `${td(escapeXml(r.answer ?? r.text), 'max-width:220px;white-space:pre-wrap;font-size:12px;font-family:monospace')}`
      + `${td(escapeXml(boxText(r.box)), 'font-family:monospace')}${td(img)}`
      + `${num(r.format)}${num(r.boxReward)}${num(r.seg)}${num(r.total)}${num(r.advantage, adv)}</tr>`;
  });
  const caption = `"${e.sentence}" (${e.id}; ${e.family}/${e.split}); truth box [${e.box.join(', ')}], ${group.rollouts.length} rollouts`;
  const html = `<table><caption style="caption-side:top;font-weight:bold;text-align:left">${escapeXml(caption)}</caption>`
    + `<thead><tr>${head.map((h) => `<th style="text-align:left">${escapeXml(h)}</th>`).join('')}</tr></thead>\n<tbody>\n${rows.join('\n')}\n</tbody></table>`;
  const text = [caption, ...rolloutRows(group).map((r) => Object.entries(r).map(([k, v]) => `${k}: ${typeof v === 'number' ? fmt(v) : v}`).join(' | '))].join('\n');
  return { 'text/html': html, 'text/plain': text };
}
