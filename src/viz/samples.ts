/**
 * One referring-segmentation sample as a gallery panel (notebook 01, later the
 * prediction figures): the image with the target mask and its box drawn over it,
 * captioned with the sentence, the target label, the box and the reasoning trace.
 */
import { readSampleImage, type RefSample } from '../data/index';
import type { GalleryItem } from './bundles';
import { overlayPng, type BoxLayer, type MaskLayer } from './overlay';

/** Ground truth colours: mask green, box amber (predictions use PALETTE colours). */
export const GT_MASK_COLOR = '#00e676';
export const GT_BOX_COLOR = '#FFA15A';

/** Options of `samplePanel`. */
export interface SamplePanelOptions {
  /** Extra layers, e.g. a predicted mask / box, drawn over the ground truth. */
  masks?: MaskLayer[];
  boxes?: BoxLayer[];
  /** Include the reasoning trace in the caption (default true). */
  reasoning?: boolean;
  scale?: number;
}

/** Caption lines of a sample: sentence, then label and box, then (optionally) the reasoning. */
export function sampleCaption(s: RefSample, { reasoning = true }: { reasoning?: boolean } = {}): string {
  const box = s.bbox ? `box [${s.bbox.map((v) => Math.round(v * 10) / 10).join(', ')}] (x, y, w, h)` : 'no target';
  const lines = [`"${s.sentence}"`, `${s.label ? `target: ${s.label}; ` : ''}${box}`];
  if (reasoning && s.reasoning) lines.push(`reasoning: ${s.reasoning}`);
  return lines.join('\n');
}

/** A sample's image with its ground-truth mask and box (plus any extra layers) and its caption. */
export async function samplePanel(s: RefSample, opts: SamplePanelOptions = {}): Promise<GalleryItem> {
  const img = await readSampleImage(s);
  const masks: MaskLayer[] = [{ mask: s.mask(), color: GT_MASK_COLOR, alpha: 0.5 }, ...(opts.masks ?? [])];
  const boxes: BoxLayer[] = [...(s.bbox ? [{ xywh: s.bbox, color: GT_BOX_COLOR }] : []), ...(opts.boxes ?? [])];
  const png = await overlayPng(img, { masks, boxes, ...(opts.scale ? { scale: opts.scale } : {}) });
  return { png, title: s.id, caption: sampleCaption(s, { reasoning: opts.reasoning ?? true }) };
}
