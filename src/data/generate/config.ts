/**
 * Configuration of the generated referring-segmentation benchmark (issue 2,
 * item 4): image size, scene density and how many images / refs / sentences each
 * family and split gets, per named scale.
 *
 * Split sizes follow the shape of the real benchmarks at a small scale: RefCOCO
 * has ~3 refs per image and ~3 sentences per ref with train >> val ~ testA ~
 * testB (Yu et al. 2016); ReasonSeg (Lai et al. 2024) has one target per image
 * and several sentences, evaluated on the first.
 */

export type Scale = 'tiny' | 'quick' | 'paper';
export const SCALES: readonly Scale[] = ['tiny', 'quick', 'paper'];

/** Splits of the RefCOCO-like image pool (refcocog maps testA + testB to `test`). */
export type ReferSplit = 'train' | 'val' | 'testA' | 'testB';
export const REFER_SPLITS: readonly ReferSplit[] = ['train', 'val', 'testA', 'testB'];
export type ReasonSplit = 'train' | 'val' | 'test';
export const REASON_SPLITS: readonly ReasonSplit[] = ['train', 'val', 'test'];

export interface GenerateConfig {
  /** Named size preset this config was resolved from (written to the manifest). */
  scale: Scale;
  /** Root seed; every image derives its own stream with Rng.fork, so output does not depend on order. */
  seed: number;
  /** Square image side in pixels: 64 for tiny/quick (fast training on CPU), 96 for paper (issue 2). */
  imageSize: number;
  /** Fewest objects per scene: 3 so that most targets need more than a category word. */
  minObjects: number;
  /** Most objects per scene: more crowds a 64 px image and raises the occlusion rejection rate. */
  maxObjects: number;
  /** An object whose visible area is below this fraction of its full area is re-placed (issue 2: reject heavy occlusion). */
  minVisibleFraction: number;
  /** Images of the shared RefCOCO / RefCOCO+ / RefCOCOg pool per split (COCO train2014 plays this role for real data). */
  referImages: Record<ReferSplit, number>;
  /** Targets (refs) per image and family, as RefCOCO's ~3 per image; fewer when a target cannot be described uniquely. */
  refsPerImage: number;
  /** Most sentences per ref (RefCOCO has ~3); each is a different expression of the same target. */
  sentencesPerRef: number;
  /** ReasonSeg-like images per split (one target each). */
  reasonImages: Record<ReasonSplit, number>;
  /** Sentences per ReasonSeg-like image (the LISA evaluation uses the first). */
  reasonSentencesPerImage: number;
}

const TINY: GenerateConfig = {
  scale: 'tiny',
  seed: 0,
  imageSize: 64,
  minObjects: 3,
  maxObjects: 6,
  minVisibleFraction: 0.6,
  referImages: { train: 8, val: 3, testA: 3, testB: 3 },
  refsPerImage: 2,
  sentencesPerRef: 2,
  reasonImages: { train: 6, val: 3, test: 3 },
  reasonSentencesPerImage: 2,
};

/** Quick: ~2000+ train sentences per family, a few hundred per val/test split (issue 2 sizing). */
const QUICK: GenerateConfig = {
  ...TINY,
  scale: 'quick',
  referImages: { train: 650, val: 90, testA: 90, testB: 90 },
  reasonImages: { train: 1100, val: 200, test: 300 },
};

/** Paper: ~5x quick, 96 px images. */
const PAPER: GenerateConfig = {
  ...TINY,
  scale: 'paper',
  imageSize: 96,
  maxObjects: 7,
  referImages: { train: 3250, val: 450, testA: 450, testB: 450 },
  reasonImages: { train: 5500, val: 1000, test: 1500 },
};

/** Defaults per scale. */
export const DEFAULT_GENERATE_CONFIGS: Readonly<Record<Scale, Readonly<GenerateConfig>>> = {
  tiny: TINY,
  quick: QUICK,
  paper: PAPER,
};

function int(v: unknown, field: string, lo: number, hi: number): number {
  if (typeof v !== 'number' || !Number.isInteger(v) || v < lo || v > hi) {
    throw new RangeError(`generate config: ${field} must be an integer in [${lo}, ${hi}], got ${JSON.stringify(v)}`);
  }
  return v;
}

/**
 * Fills defaults from the scale's preset (`tiny` unless `scale` is given) and
 * validates; throws naming the field and the expected value.
 */
export function resolveGenerateConfig(partial: Partial<GenerateConfig> = {}): GenerateConfig {
  const scale = partial.scale ?? 'tiny';
  if (!SCALES.includes(scale)) {
    throw new RangeError(`generate config: scale must be one of ${SCALES.join('|')}, got ${JSON.stringify(scale)}`);
  }
  const base = DEFAULT_GENERATE_CONFIGS[scale];
  const c: GenerateConfig = {
    ...base,
    ...partial,
    scale,
    referImages: { ...base.referImages, ...partial.referImages },
    reasonImages: { ...base.reasonImages, ...partial.reasonImages },
  };
  int(c.seed, 'seed', 0, 0xffffffff);
  int(c.imageSize, 'imageSize', 32, 1024);
  int(c.minObjects, 'minObjects', 2, 12);
  int(c.maxObjects, 'maxObjects', c.minObjects, 12);
  if (typeof c.minVisibleFraction !== 'number' || !(c.minVisibleFraction > 0 && c.minVisibleFraction <= 1)) {
    throw new RangeError(`generate config: minVisibleFraction must be a number in (0, 1], got ${JSON.stringify(c.minVisibleFraction)}`);
  }
  for (const s of REFER_SPLITS) int(c.referImages[s], `referImages.${s}`, 0, 1_000_000);
  for (const s of REASON_SPLITS) int(c.reasonImages[s], `reasonImages.${s}`, 0, 1_000_000);
  for (const k of Object.keys(c.referImages)) {
    if (!REFER_SPLITS.includes(k as ReferSplit)) throw new RangeError(`generate config: referImages.${k} is not a split (expected ${REFER_SPLITS.join('|')})`);
  }
  for (const k of Object.keys(c.reasonImages)) {
    if (!REASON_SPLITS.includes(k as ReasonSplit)) throw new RangeError(`generate config: reasonImages.${k} is not a split (expected ${REASON_SPLITS.join('|')})`);
  }
  int(c.refsPerImage, 'refsPerImage', 1, 12);
  int(c.sentencesPerRef, 'sentencesPerRef', 1, 5);
  int(c.reasonSentencesPerImage, 'reasonSentencesPerImage', 1, 5);
  for (const k of Object.keys(c)) {
    if (!(k in base)) throw new RangeError(`generate config: unknown field ${JSON.stringify(k)}`);
  }
  return c;
}
