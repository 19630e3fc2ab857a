/**
 * Public API of the generated referring-segmentation benchmark (issue 2, item 4):
 * config presets, scenes, expression families and their semantics, the writer.
 */
export { DEFAULT_GENERATE_CONFIGS, REASON_SPLITS, REFER_SPLITS, SCALES, resolveGenerateConfig } from './config';
export type { GenerateConfig, ReasonSplit, ReferSplit, Scale } from './config';
export { composeScene, renderScene, sampleScene, insideShape, rasterizeObject, maskStats } from './scene';
export type { ObjectSpec, Scene, SceneObject, SceneRequirements, SizeClass } from './scene';
export { identifies, resolve, attrTruth, relationTruth, regionName, MARGINS } from './semantics';
export type { Attr, Expr, Relation, RelKind, Resolution, Select, Truth } from './semantics';
export { describeTarget, tokenize, targetLabel, GEN_FAMILIES } from './expressions';
export type { Expression, GenFamily } from './expressions';
export { maskToPolygons } from './contour';
export {
  ensureBenchmark, generateBenchmark, generateReasonImage, generateReferImage, readManifest, reasonStem, referFileName,
  GENERATOR_NAME, GENERATOR_VERSION, LAYOUT,
} from './benchmark';
export type { GenerateOptions, GeneratedImage, GeneratedRef, Manifest } from './benchmark';
export { formatStats } from './stats';
export type { BenchmarkStats, SplitStats } from './stats';
export { CATEGORIES, COLOURS, LOCATION_WORDS } from './vocab';
