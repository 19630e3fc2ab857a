/**
 * ReasonSeg in LISA's layout: reason_seg/ReasonSeg/<split>/<stem>.json (LabelMe style)
 * next to <stem>.jpg (real data) or <stem>.png (generated). The target mask follows
 * LISA `utils/data_processing.py` get_mask_from_json: shapes labelled "flag" are
 * skipped, the rest are drawn in descending pixel-area order with value 255 when the
 * label contains "ignore", else 1 (cv2 polylines + fillPoly on int vertices).
 * Evaluation uses the first sentence of each image (LISA ValDataset); training may
 * ask for every sentence.
 */
import { existsSync, readdirSync, statSync } from 'node:fs';
import { join } from 'node:path';
import sharp from 'sharp';
import { resolveInside } from '../../util/fs';
import { maskBbox } from '../formats/rle';
import { fillPolygonLabelMe } from '../formats/polygon';
import type { RefDataset, RefSample } from '../types';
import { arr, checkSplit, describe, obj, readJson, str } from './common';

/** Folder of one ReasonSeg split under a dataset root. */
export function reasonSegDir(root: string, split: string): string {
  return join(root, 'reason_seg', 'ReasonSeg', split);
}

const IMAGE_EXTS = ['.jpg', '.png', '.jpeg', '.JPG', '.PNG', '.JPEG'];

type Pt = [number, number];
interface Shape {
  label: string;
  points: Pt[];
}

/** Parses the `shapes` of a ReasonSeg JSON, checking every polygon; `where` names the file. */
export function parseShapes(json: Record<string, unknown>, where: string): Shape[] {
  return arr(json.shapes, `${where} shapes`).map((raw, i) => {
    const sw = `${where} shapes[${i}]`;
    const o = obj(raw, sw);
    const label = str(o, 'label', sw);
    const pts = arr(o.points, `${sw}.points`);
    const points = pts.map((p, j) => {
      if (!Array.isArray(p) || p.length < 2 || typeof p[0] !== 'number' || typeof p[1] !== 'number' || !Number.isFinite(p[0]) || !Number.isFinite(p[1])) {
        throw new Error(`${sw}.points[${j}]: expected [x, y] numbers, got ${describe(p)}`);
      }
      return [p[0], p[1]] as Pt;
    });
    if (label.toLowerCase() !== 'flag' && points.length < 3) {
      throw new Error(`${sw}.points: polygon has ${points.length} points, expected at least 3 (shape_type ${describe(o.shape_type)})`);
    }
    return { label, points };
  });
}

/** LISA get_mask_from_json: row-major mask with 1 = target, 255 = ignore. */
export function reasonSegMask(shapes: Shape[], height: number, width: number): Uint8Array {
  const valid = shapes.filter((s) => s.label.toLowerCase() !== 'flag');
  const areas = valid.map((s) => {
    const tmp = new Uint8Array(height * width);
    fillPolygonLabelMe(tmp, height, width, s.points, 1);
    let a = 0;
    for (const v of tmp) a += v;
    return a;
  });
  // np.argsort(area)[::-1]: ascending (stable for these small arrays) then reversed
  const order = valid.map((_, i) => i).sort((a, b) => areas[a]! - areas[b]!).reverse();
  const mask = new Uint8Array(height * width);
  for (const i of order) {
    const s = valid[i]!;
    fillPolygonLabelMe(mask, height, width, s.points, s.label.toLowerCase().includes('ignore') ? 255 : 1);
  }
  return mask;
}

/** Options for ReasonSeg loading. */
export interface ReasonSegOptions {
  /** Every sentence of an image becomes a sample (training); default false = first only (LISA eval). */
  allSentences?: boolean;
}

/** Loads one ReasonSeg split. */
export async function loadReasonSeg(root: string, split: string, opts: ReasonSegOptions = {}): Promise<RefDataset> {
  checkSplit('reasonseg', split);
  const dir = reasonSegDir(root, split);
  if (!existsSync(dir) || !statSync(dir).isDirectory()) {
    throw new Error(`${dir}: split folder not found (expected reason_seg/ReasonSeg/${split}/ under --data ${root})`);
  }
  const files = readdirSync(dir).filter((f) => f.endsWith('.json')).sort();
  const samples: RefSample[] = [];
  for (const file of files) {
    const path = resolveInside(dir, file, dir);
    const stem = file.slice(0, -'.json'.length);
    const json = obj(readJson(path), path);
    const rawText = json.text;
    const texts = typeof rawText === 'string' ? [rawText] : arr(rawText, `${path} text`);
    if (texts.length === 0) throw new Error(`${path} text: expected at least one sentence`);
    texts.forEach((t, i) => {
      if (typeof t !== 'string') throw new Error(`${path} text[${i}]: expected a string, got ${describe(t)}`);
    });
    const reasoning = json.reasoning === undefined ? undefined : arr(json.reasoning, `${path} reasoning`);
    const labels = json.labels === undefined ? undefined : arr(json.labels, `${path} labels`);
    const ext = IMAGE_EXTS.find((e) => existsSync(join(dir, stem + e)));
    if (!ext) throw new Error(`${path}: image file ${stem}.jpg / ${stem}.png does not exist in ${dir}`);
    const imagePath = resolveInside(dir, stem + ext, `${path} (image)`);
    let height: number;
    let width: number;
    if (json.imageHeight !== undefined || json.imageWidth !== undefined) {
      if (!Number.isInteger(json.imageHeight) || (json.imageHeight as number) <= 0) throw new Error(`${path} imageHeight: expected a positive integer, got ${describe(json.imageHeight)}`);
      if (!Number.isInteger(json.imageWidth) || (json.imageWidth as number) <= 0) throw new Error(`${path} imageWidth: expected a positive integer, got ${describe(json.imageWidth)}`);
      height = json.imageHeight as number;
      width = json.imageWidth as number;
    } else {
      // LISA takes the size from the decoded image; reading the header is enough.
      const meta = await sharp(imagePath).metadata().catch((e: Error) => {
        throw new Error(`${imagePath}: cannot read image header: ${e.message}`);
      });
      height = meta.height!;
      width = meta.width!;
    }
    const shapes = parseShapes(json, path);
    const bbox = maskBbox(reasonSegMask(shapes, height, width), height, width);
    const n = opts.allSentences ? texts.length : 1;
    for (let s = 0; s < n; s++) {
      const r = reasoning?.[s];
      const l = labels?.[s];
      samples.push({
        id: `reasonseg/${split}/${stem}/${s}`,
        family: 'reasonseg',
        split,
        refId: stem,
        sentIdx: s,
        imageId: stem,
        imagePath,
        height,
        width,
        sentence: texts[s] as string,
        ...(typeof l === 'string' && l !== '' ? { label: l } : {}),
        ...(typeof r === 'string' ? { reasoning: r } : {}),
        bbox,
        mask: () => reasonSegMask(shapes, height, width),
      });
    }
  }
  return { family: 'reasonseg', split, root, samples, instances: () => [] };
}
