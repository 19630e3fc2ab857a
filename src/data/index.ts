/**
 * Public API of the data layer: shared types, format codecs, and `loadSplit`, the
 * one entry point later stages call to get the samples of FAMILY/SPLIT from a dataset
 * root in LISA's layout (docs: data-layout in the README / DESIGN "Data").
 */
import { checkSplit } from './loaders/common';
import { loadGroundingSuite } from './loaders/groundingsuite';
import { loadReasonSeg } from './loaders/reasonseg';
import { loadRefCoco } from './loaders/refcoco';
import { readImageRgb, type RgbImage } from './formats/image';
import type { Family, RefDataset, RefSample } from './types';

export type { CocoRle, Family, InstanceRecord, RefDataset, RefSample } from './types';
export { FAMILIES, SPLITS, checkSplit } from './loaders/common';
export { encodeRle, decodeRle, maskBbox, rleArea } from './formats/rle';
export { rasterizePolygons, fillPolygonLabelMe, polygonArea } from './formats/polygon';
export { readPickle, writePickle, type PickleValue } from './formats/pickle';
export { writePng, readImageRgb, resizeRgb, encodePng, type RgbImage } from './formats/image';
export { loadRefCoco, REFS_FILE, COCO_IMAGE_DIR } from './loaders/refcoco';
export { loadReasonSeg, reasonSegDir, reasonSegMask } from './loaders/reasonseg';
export { loadGroundingSuite, GROUNDINGSUITE_FILE } from './loaders/groundingsuite';

/** Options of `loadSplit`. */
export interface LoadOptions {
  /** ReasonSeg: one sample per sentence instead of LISA's first-sentence-per-image (for training). */
  allSentences?: boolean;
  /** GroundingSuite: folder the jsonl's image_path values are relative to (default: the root). */
  imageRoot?: string;
}

/**
 * Loads FAMILY/SPLIT from a dataset root: refcoco|refcoco+|refcocog / train|val|testA|testB|test,
 * reasonseg / train|val|test, groundingsuite / eval. Unknown names throw listing the valid ones.
 */
export async function loadSplit(root: string, family: Family | string, split: string, opts: LoadOptions = {}): Promise<RefDataset> {
  checkSplit(family, split);
  switch (family) {
    case 'refcoco':
    case 'refcoco+':
    case 'refcocog':
      return loadRefCoco(root, family, split);
    case 'reasonseg':
      return loadReasonSeg(root, split, { allSentences: opts.allSentences ?? false });
    case 'groundingsuite':
      return loadGroundingSuite(root, opts.imageRoot ?? root);
  }
}

/** Parses "family/split" (e.g. "refcoco+/testA"); throws listing the valid names. */
export function parseSplitName(name: string): { family: Family; split: string } {
  const slash = name.lastIndexOf('/');
  if (slash <= 0) throw new Error(`split '${name}': expected FAMILY/SPLIT such as refcoco/testA or reasonseg/val`);
  const family = name.slice(0, slash);
  const split = name.slice(slash + 1);
  checkSplit(family, split);
  return { family, split };
}

/**
 * Decodes a sample's image to RGB and checks it has the size the annotations say,
 * so a mask can never silently mismatch its image.
 */
export async function readSampleImage(sample: RefSample): Promise<RgbImage> {
  const img = await readImageRgb(sample.imagePath, `sample ${sample.id}`);
  if (img.height !== sample.height || img.width !== sample.width) {
    throw new Error(
      `${sample.imagePath}: image is ${img.height}x${img.width} but its annotation (sample ${sample.id}) says ${sample.height}x${sample.width} (height x width)`,
    );
  }
  return img;
}
