/**
 * Writes the generated benchmark to disk in the layout real users already hold
 * (LISA's dataset folder; see data-layout in the project docs):
 *
 *   DIR/manifest.json
 *   DIR/refer_seg/images/mscoco/images/train2014/<file_name>.png   shared image pool
 *   DIR/refer_seg/{refcoco,refcoco+}/instances.json + refs(unc).p
 *   DIR/refer_seg/refcocog/instances.json + refs(umd).p
 *   DIR/reason_seg/ReasonSeg/{train,val,test}/<stem>.png + <stem>.json
 *
 * As in the real data, RefCOCO / RefCOCO+ / RefCOCOg share one image pool (COCO
 * train2014 there) with image-level splits; refcocog's `test` is the union of the
 * testA and testB images, so no image is in one family's train split and another's
 * test split. testA refs target supercategory `figure` (RefCOCO: people), testB refs
 * supercategory `shape` (RefCOCO: other objects).
 *
 * Our extensions of the formats (loaders treat them as optional):
 * - refs sentences carry `reasoning` (2-3 sentence trace) and `label` ("blue star");
 * - ReasonSeg JSON carries `reasoning` and `labels`, one per `text` entry.
 *
 * Determinism: every image draws from `Rng(seed).fork("<pool>/<split>/<index>")`, so
 * any image can be regenerated alone and the output does not depend on order; the
 * manifest holds no timestamps, so the same seed gives byte-identical files.
 */
import { existsSync, mkdirSync, readdirSync, readFileSync, renameSync, rmSync } from 'node:fs';
import { join, resolve as resolvePath } from 'node:path';
import { Rng } from '../../random';
import { writeFileAtomic, writeJsonAtomic } from '../../util/fs';
import { Progress } from '../../util/progress';
import { encodePng } from '../formats/image';
import { writePickle, type PickleValue } from '../formats/pickle';
import { encodeRle } from '../formats/rle';
import { REASON_SPLITS, REFER_SPLITS, resolveGenerateConfig, type GenerateConfig, type ReferSplit } from './config';
import { maskToPolygons } from './contour';
import { describeTarget, targetLabel, tokenize, type Expression, type GenFamily } from './expressions';
import { renderScene, sampleScene, type Scene, type SceneRequirements } from './scene';
import { areaBin, emptyStats, splitStats, type BenchmarkStats } from './stats';
import { CATEGORIES, category as categoryInfo } from './vocab';

/** Bumped whenever the same seed would produce different files. */
export const GENERATOR_VERSION = 5;
export const GENERATOR_NAME = 'lens-ts/generate';

/** Folder names of the layout. */
export const LAYOUT = {
  referImages: 'refer_seg/images/mscoco/images/train2014',
  referFamily: (f: 'refcoco' | 'refcoco+' | 'refcocog'): string => `refer_seg/${f}`,
  refsFile: (f: 'refcoco' | 'refcoco+' | 'refcocog'): string => (f === 'refcocog' ? 'refs(umd).p' : 'refs(unc).p'),
  reasonSplit: (s: string): string => `reason_seg/ReasonSeg/${s}`,
} as const;

const REFER_FAMILIES = ['refcoco', 'refcoco+', 'refcocog'] as const;
type ReferFamily = (typeof REFER_FAMILIES)[number];

export interface Manifest {
  generator: { name: string; version: number };
  seed: number;
  scale: string;
  imageSize: number;
  config: GenerateConfig;
  /** family -> split -> {images, refs, sentences}. */
  counts: Record<string, Record<string, { images: number; refs: number; sentences: number }>>;
  categories: Array<{ id: number; name: string; supercategory: string }>;
  stats: BenchmarkStats;
}

/** One generated reference (a target and its sentences) before it is written. */
export interface GeneratedRef {
  family: GenFamily;
  split: string;
  target: number;
  expressions: Expression[];
}

/** One generated image with its scene and refs. */
export interface GeneratedImage {
  pool: 'refer' | 'reason';
  split: string;
  index: number;
  scene: Scene;
  rgb: Uint8Array;
  refs: GeneratedRef[];
  /** ReasonSeg only: the target's LabelMe polygons ([[x, y], ...] pixel centres). */
  polygons?: Array<Array<[number, number]>>;
}

function requirements(config: GenerateConfig, split: string): SceneRequirements {
  const base = { minObjects: config.minObjects, maxObjects: config.maxObjects, minVisibleFraction: config.minVisibleFraction };
  if (split === 'testA') return { ...base, minFigures: 2 };
  if (split === 'testB') return { ...base, minShapes: 2 };
  return base;
}

/** refcocog has one test split made of the testA and testB images. */
function familySplit(family: ReferFamily, split: ReferSplit): string {
  return family === 'refcocog' && (split === 'testA' || split === 'testB') ? 'test' : split;
}

/** Generates image `index` of split `split` of the RefCOCO-like pool (pure function of seed, split, index). */
export function generateReferImage(config: GenerateConfig, split: ReferSplit, index: number): GeneratedImage {
  const rng = new Rng(config.seed).fork(`refer/${split}/${index}`);
  const scene = sampleScene(rng.fork('scene'), config.imageSize, requirements(config, split));
  const rgb = renderScene(rng.fork('render'), scene);
  const refs: GeneratedRef[] = [];
  for (const family of REFER_FAMILIES) {
    const frng = rng.fork(family);
    const fsplit = familySplit(family, split);
    const eligible = scene.objects.filter((o) =>
      fsplit === 'testA' ? o.supercategory === 'figure' : fsplit === 'testB' ? o.supercategory === 'shape' : true);
    let made = 0;
    for (const o of frng.shuffle(eligible)) {
      if (made >= config.refsPerImage) break;
      const expressions = describeTarget(family, scene, o.z, config.sentencesPerRef, frng);
      if (expressions.length === 0) continue;
      refs.push({ family, split: fsplit, target: o.z, expressions });
      made++;
    }
  }
  return { pool: 'refer', split, index, scene, rgb, refs };
}

/**
 * Generates ReasonSeg-like image `index` of `split`: one target whose visible mask
 * is exactly writable as LabelMe polygons and that has `reasonSentencesPerImage`
 * (or at least one) unambiguous implicit descriptions; resamples the scene otherwise.
 */
export function generateReasonImage(config: GenerateConfig, split: string, index: number): GeneratedImage {
  const rng = new Rng(config.seed).fork(`reason/${split}/${index}`);
  for (let attempt = 0; attempt < 50; attempt++) {
    const arng = rng.fork(`attempt${attempt}`);
    const scene = sampleScene(arng.fork('scene'), config.imageSize, requirements(config, split));
    const frng = arng.fork('reasonseg');
    let best: { target: number; expressions: Expression[]; polygons: Array<Array<[number, number]>> } | null = null;
    for (const o of frng.shuffle(scene.objects)) {
      const poly = maskToPolygons(o.visible, scene.size, scene.size);
      if (!poly.exact) continue;
      const expressions = describeTarget('reasonseg', scene, o.z, config.reasonSentencesPerImage, frng);
      if (expressions.length === 0) continue;
      if (!best || expressions.length > best.expressions.length) best = { target: o.z, expressions, polygons: poly.polygons };
      if (expressions.length >= config.reasonSentencesPerImage) break;
    }
    if (best) {
      const rgb = renderScene(arng.fork('render'), scene);
      return { pool: 'reason', split, index, scene, rgb, refs: [{ family: 'reasonseg', split, target: best.target, expressions: best.expressions }], polygons: best.polygons };
    }
  }
  throw new Error(`generate: no describable ReasonSeg target in 50 scenes for ${split}/${index} (seed ${config.seed})`);
}

/** COCO `file_name` of a RefCOCO-like image. */
export function referFileName(imageId: number): string {
  return `lensgen_${String(imageId).padStart(12, '0')}.png`;
}

/** File stem of a ReasonSeg-like image. */
export function reasonStem(split: string, index: number): string {
  return `lensgen_${split}_${String(index).padStart(6, '0')}`;
}

function sentenceRecord(e: Expression, sentId: number, label: string): PickleValue {
  return { tokens: tokenize(e.text), raw: e.text, sent_id: sentId, sent: e.text, reasoning: e.reasoning, label };
}

export interface GenerateOptions {
  /** Overwrite a non-empty output folder. */
  force?: boolean;
  /** No progress bar (tests). */
  quiet?: boolean;
  /** PNG encodes in flight at once (sharp runs them on its own threads). */
  concurrency?: number;
}

function isNonEmptyDir(dir: string): boolean {
  return existsSync(dir) && readdirSync(dir).length > 0;
}

/**
 * Generates the benchmark described by `partial` (filled from its scale's
 * defaults) into `outDir`: written to `outDir.tmp` first and renamed at the end,
 * so an interrupted run leaves no half dataset. Refuses a non-empty `outDir`
 * unless `force`. Returns the manifest.
 */
export async function generateBenchmark(outputDir: string, partial: Partial<GenerateConfig> = {}, opts: GenerateOptions = {}): Promise<Manifest> {
  const config = resolveGenerateConfig(partial);
  // "data/bench/" must not make the temp folder "data/bench/.tmp", inside the target
  const outDir = resolvePath(outputDir);
  if (isNonEmptyDir(outDir) && !opts.force) {
    throw new Error(`generate: output folder ${outDir} is not empty (pass --force to replace it)`);
  }
  const tmp = `${outDir}.tmp`;
  rmSync(tmp, { recursive: true, force: true });
  mkdirSync(tmp, { recursive: true });
  const total = REFER_SPLITS.reduce((a, s) => a + config.referImages[s], 0) + REASON_SPLITS.reduce((a, s) => a + config.reasonImages[s], 0);
  const progress = new Progress({ label: `generate ${config.scale}`, total, unit: 'img', quiet: opts.quiet });
  const stats = emptyStats();
  const pending: Array<Promise<void>> = [];
  const concurrency = opts.concurrency ?? 8;
  const writePngLater = async (path: string, img: GeneratedImage): Promise<void> => {
    pending.push(encodePng(img.rgb, img.scene.size, img.scene.size).then((bytes) => writeFileAtomic(path, bytes)));
    if (pending.length >= concurrency) await Promise.all(pending.splice(0));
  };
  const size = config.imageSize;
  const pixels = size * size;

  // ---- RefCOCO-like pool: shared images, one instances.json, refs per family.
  const images: PickleValue[] = [];
  const annotations: PickleValue[] = [];
  const refs: Record<ReferFamily, PickleValue[]> = { refcoco: [], 'refcoco+': [], refcocog: [] };
  const refId: Record<ReferFamily, number> = { refcoco: 0, 'refcoco+': 0, refcocog: 0 };
  const sentId: Record<ReferFamily, number> = { refcoco: 0, 'refcoco+': 0, refcocog: 0 };
  let imageId = 0;
  let annId = 0;
  const imageDir = join(tmp, LAYOUT.referImages);
  mkdirSync(imageDir, { recursive: true });
  for (const split of REFER_SPLITS) {
    for (let i = 0; i < config.referImages[split]; i++) {
      const img = generateReferImage(config, split, i);
      imageId++;
      const fileName = referFileName(imageId);
      images.push({ id: imageId, file_name: fileName, height: size, width: size });
      const annIds: number[] = [];
      for (const o of img.scene.objects) {
        annId++;
        annIds.push(annId);
        annotations.push({
          id: annId, image_id: imageId, category_id: categoryInfo(o.category).id,
          segmentation: encodeRle(o.visible, size, size) as unknown as PickleValue,
          area: o.area, bbox: o.bbox, iscrowd: 0,
        });
      }
      stats.objectsPerImage[img.scene.objects.length] = (stats.objectsPerImage[img.scene.objects.length] ?? 0) + 1;
      const seen = new Set<string>();
      for (const r of img.refs) {
        const family = r.family as ReferFamily;
        const o = img.scene.objects[r.target]!;
        const label = targetLabel(o);
        const sentences = r.expressions.map((e) => sentenceRecord(e, sentId[family]++, label));
        refs[family].push({
          ref_id: refId[family]++, ann_id: annIds[r.target]!, image_id: imageId, split: r.split,
          category_id: categoryInfo(o.category).id, sent_ids: sentences.map((s) => (s as { sent_id: number }).sent_id),
          sentences, file_name: fileName,
        });
        const st = splitStats(stats, family, r.split);
        if (!seen.has(family)) {
          st.images++;
          seen.add(family);
        }
        st.refs++;
        st.sentences += r.expressions.length;
        st.words += r.expressions.reduce((a, e) => a + tokenize(e.text).length, 0);
        st.targetArea[areaBin(o.area / pixels)]!++;
        for (const e of r.expressions) stats.templates[`${family}:${e.template}`] = (stats.templates[`${family}:${e.template}`] ?? 0) + 1;
      }
      await writePngLater(join(imageDir, fileName), img);
      progress.tick();
    }
  }
  const categories = CATEGORIES.map((c) => ({ id: c.id, name: c.name, supercategory: c.supercategory }));
  const instances = {
    info: { description: 'lens-ts generated referring-segmentation benchmark', version: String(GENERATOR_VERSION), seed: config.seed, scale: config.scale },
    images, annotations, categories,
  };
  for (const family of REFER_FAMILIES) {
    const dir = join(tmp, LAYOUT.referFamily(family));
    writeFileAtomic(join(dir, 'instances.json'), JSON.stringify(instances));
    writeFileAtomic(join(dir, LAYOUT.refsFile(family)), writePickle(refs[family]));
  }

  // ---- ReasonSeg-like pool: one folder per split, LabelMe JSON per image.
  for (const split of REASON_SPLITS) {
    const dir = join(tmp, LAYOUT.reasonSplit(split));
    mkdirSync(dir, { recursive: true });
    for (let i = 0; i < config.reasonImages[split]; i++) {
      const img = generateReasonImage(config, split, i);
      const stem = reasonStem(split, i);
      const r = img.refs[0]!;
      const o = img.scene.objects[r.target]!;
      const label = targetLabel(o);
      writeJsonAtomic(join(dir, `${stem}.json`), {
        text: r.expressions.map((e) => e.text),
        is_sentence: true,
        shapes: img.polygons!.map((points) => ({ label: 'target', points, group_id: null, shape_type: 'polygon', flags: {} })),
        reasoning: r.expressions.map((e) => e.reasoning),
        labels: r.expressions.map(() => label),
        imagePath: `${stem}.png`,
        imageData: null,
        imageHeight: size,
        imageWidth: size,
      });
      await writePngLater(join(dir, `${stem}.png`), img);
      stats.objectsPerImage[img.scene.objects.length] = (stats.objectsPerImage[img.scene.objects.length] ?? 0) + 1;
      const st = splitStats(stats, 'reasonseg', split);
      st.images++;
      st.refs++;
      st.sentences += r.expressions.length;
      st.words += r.expressions.reduce((a, e) => a + tokenize(e.text).length, 0);
      st.targetArea[areaBin(o.area / pixels)]!++;
      for (const e of r.expressions) stats.templates[`reasonseg:${e.template}`] = (stats.templates[`reasonseg:${e.template}`] ?? 0) + 1;
      progress.tick();
    }
  }
  await Promise.all(pending.splice(0));

  const counts: Manifest['counts'] = {};
  for (const [family, splits] of Object.entries(stats.splits)) {
    counts[family] = {};
    for (const [split, v] of Object.entries(splits)) counts[family]![split] = { images: v.images, refs: v.refs, sentences: v.sentences };
  }
  const manifest: Manifest = {
    generator: { name: GENERATOR_NAME, version: GENERATOR_VERSION },
    seed: config.seed, scale: config.scale, imageSize: size, config, counts, categories, stats,
  };
  writeJsonAtomic(join(tmp, 'manifest.json'), manifest);
  progress.finish();
  if (existsSync(outDir)) rmSync(outDir, { recursive: true, force: true });
  renameSync(tmp, outDir);
  return manifest;
}

/** Reads DIR/manifest.json; throws naming the file and the field when it is not a generator manifest. */
export function readManifest(dir: string): Manifest {
  const path = join(dir, 'manifest.json');
  let value: unknown;
  try {
    value = JSON.parse(readFileSync(path, 'utf8'));
  } catch (e) {
    throw new Error(`${path}: cannot read the benchmark manifest (${(e as Error).message})`);
  }
  const m = value as Partial<Manifest>;
  if (typeof m !== 'object' || m === null || m.generator?.name !== GENERATOR_NAME) {
    throw new Error(`${path}: generator.name must be ${JSON.stringify(GENERATOR_NAME)}, got ${JSON.stringify(m?.generator?.name)}`);
  }
  if (typeof m.stats !== 'object' || m.stats === null) throw new Error(`${path}: stats: expected an object`);
  return m as Manifest;
}

/**
 * The benchmark in `dir`: generated with `partial` when `dir` has no manifest,
 * read back otherwise. A manifest from another generator version, seed or scale
 * is an error (the data would not be what the caller asked for).
 */
export async function ensureBenchmark(dir: string, partial: Partial<GenerateConfig> = {}, opts: GenerateOptions = {}): Promise<{ manifest: Manifest; generated: boolean }> {
  const config = resolveGenerateConfig(partial);
  if (!existsSync(join(dir, 'manifest.json'))) {
    return { manifest: await generateBenchmark(dir, config, opts), generated: true };
  }
  const manifest = readManifest(dir);
  const want = { version: GENERATOR_VERSION, seed: config.seed, scale: config.scale };
  const have = { version: manifest.generator.version, seed: manifest.seed, scale: manifest.scale };
  if (JSON.stringify(want) !== JSON.stringify(have)) {
    throw new Error(`${join(dir, 'manifest.json')}: holds ${JSON.stringify(have)}, expected ${JSON.stringify(want)}; `
      + `regenerate with \`npx lens generate --out ${dir} --scale ${config.scale} --seed ${config.seed} --force\``);
  }
  return { manifest, generated: false };
}
