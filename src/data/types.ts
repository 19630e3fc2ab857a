/**
 * Shared data types of the referring-segmentation loaders (LISA's dataset layout:
 * RefCOCO / RefCOCO+ / RefCOCOg via REFER, ReasonSeg LabelMe JSON, GroundingSuite-Eval
 * jsonl). One sentence is one evaluation sample, as in LISA's `ValDataset`.
 */

/** Dataset families the loaders understand (the paper's benchmarks). */
export type Family = 'refcoco' | 'refcoco+' | 'refcocog' | 'reasonseg' | 'groundingsuite';

/** COCO run-length encoding, compressed-string form (pycocotools `rleToString`). */
export interface CocoRle {
  /** [height, width] of the image the mask covers. */
  size: [number, number];
  /** LEB128-like string of column-major run lengths, first run = zeros. */
  counts: string;
}

/** One sentence = one evaluation sample (LISA convention). */
export interface RefSample {
  /** `${family}/${split}/${refId}/${sentIdx}`, stable across loads. */
  id: string;
  family: Family;
  split: string;
  /** ref_id (COCO families), image stem (ReasonSeg) or idx (GroundingSuite). */
  refId: number | string;
  /** Index of the sentence within its ref. */
  sentIdx: number;
  imageId: number | string;
  /** Absolute, validated to lie inside the dataset root. */
  imagePath: string;
  /** Original image size. */
  height: number;
  width: number;
  sentence: string;
  /** Category / target name (answer JSON "label"). */
  label?: string;
  /** Short chain-of-thought; generated data only (our extension of the formats). */
  reasoning?: string;
  /** Target box, COCO xywh, original pixels; null when the target is empty. */
  bbox: [number, number, number, number] | null;
  /** Target, row-major height*width, values 0 / 1 / 255 (ignore). Decoded on each call. */
  mask(): Uint8Array;
}

/** One instance of an image (COCO families), for trivial baselines. */
export interface InstanceRecord {
  annId: number;
  categoryId: number;
  bbox: [number, number, number, number];
  /** Row-major height*width, 0 / 1. */
  mask(): Uint8Array;
}

/** The samples of one split of one family. */
export interface RefDataset {
  family: Family;
  split: string;
  root: string;
  samples: RefSample[];
  /** All instance masks of an image (COCO families; used by trivial baselines). */
  instances(imageId: number | string): InstanceRecord[];
}
