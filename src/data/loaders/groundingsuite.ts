/**
 * GroundingSuite-Eval (hustvl/GroundingSuite): one JSON object per line
 * {idx, image_path, class_id?, label, caption, box [x1,y1,x2,y2], segmentation (COCO RLE)}.
 * The caption is the referring expression, `label` the short target name; the mask
 * size is the image size. Images resolve under an image root (default: the folder of
 * the jsonl, so a root holding GroundingSuite-Eval.jsonl and unlabeled2017/ works).
 */
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { resolveInside } from '../../util/fs';
import { decodeRle } from '../formats/rle';
import type { CocoRle, RefDataset, RefSample } from '../types';
import { box4, describe, id, obj, str } from './common';

/** File name of the evaluation set inside the dataset root. */
export const GROUNDINGSUITE_FILE = 'GroundingSuite-Eval.jsonl';

/** Loads GroundingSuite-Eval from `root`/GroundingSuite-Eval.jsonl; images under `imageRoot` (default root). */
export function loadGroundingSuite(root: string, imageRoot: string = root): RefDataset {
  const path = join(root, GROUNDINGSUITE_FILE);
  if (!existsSync(path)) throw new Error(`${path}: file not found (groundingsuite/eval expects --data to hold ${GROUNDINGSUITE_FILE})`);
  const lines = readFileSync(path, 'utf8').split('\n');
  const samples: RefSample[] = [];
  lines.forEach((text, i) => {
    if (text.trim() === '') return;
    const where = `${path} line ${i + 1}`;
    let raw: unknown;
    try {
      raw = JSON.parse(text);
    } catch (e) {
      throw new Error(`${where}: malformed JSON: ${(e as Error).message}`);
    }
    const o = obj(raw, where);
    const idx = id(o, 'idx', where);
    const imagePath = resolveInside(imageRoot, str(o, 'image_path', where), `${where}.image_path`);
    if (!existsSync(imagePath)) throw new Error(`${where}.image_path: image file ${imagePath} does not exist`);
    const seg = obj(o.segmentation, `${where}.segmentation`);
    const size = seg.size;
    if (!Array.isArray(size) || size.length !== 2 || !size.every((v) => Number.isInteger(v) && v > 0)) {
      throw new Error(`${where}.segmentation.size: expected [height, width] positive integers, got ${describe(size)}`);
    }
    if (typeof seg.counts !== 'string') throw new Error(`${where}.segmentation.counts: expected a compressed RLE string, got ${describe(seg.counts)}`);
    const [height, width] = size as [number, number];
    const [x1, y1, x2, y2] = box4(o.box, `${where}.box`);
    const label = o.label;
    samples.push({
      id: `groundingsuite/eval/${idx}/0`,
      family: 'groundingsuite',
      split: 'eval',
      refId: idx,
      sentIdx: 0,
      imageId: str(o, 'image_path', where),
      imagePath,
      height,
      width,
      sentence: str(o, 'caption', where),
      ...(typeof label === 'string' ? { label } : {}),
      bbox: [x1, y1, x2 - x1, y2 - y1], // xyxy -> COCO xywh
      mask: () => decodeRle(seg as unknown as CocoRle, `${where}.segmentation`),
    });
  });
  return { family: 'groundingsuite', split: 'eval', root, samples, instances: () => [] };
}
