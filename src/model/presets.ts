/**
 * Every size of the model in one place (segment-anything `build_sam.py` registry,
 * minGPT `get_default_config`): named presets `tiny` (tests), `quick` (the
 * default main job on two CPU cores) and `paper` (the full reproduction, the
 * official LENS structure at the largest width this project trains), and ONE
 * builder, `buildLens`. An ablation passes a config delta (e.g. `{ connector:
 * { kind: 'mlp' } }` for Table 4, `{ context: { numQueries: 16 } }` for Table 3);
 * it never edits the model.
 *
 * Widths shared between parts are derived here, never set twice: the vision
 * encoder's output, the context queries and the connector input are the MLLM
 * width; the connector output is the SAM prompt width; the connector reads M =
 * context.numQueries queries; the vision encoder and SAM see the same image size.
 */
import { Rng } from '../random';
import { validateConnectorConfig, type ConnectorConfig } from './connector';
import { validateContextQueriesConfig, type ContextQueriesConfig } from './context_module';
import { LensModel } from './lens';
import { validateMllmConfig, type MllmConfig } from './mllm';
import type { Module } from './nn';
import { loadModule, readSafetensors, saveModule } from '../util/safetensors';
import { DEFAULT_MINI_SAM_CONFIG, validateMiniSamConfig, type MiniSamConfig } from './sam/sam';
import { validateVisionEncoderConfig, type VisionEncoderConfig } from './vision_encoder';

export const PRESET_NAMES = ['tiny', 'quick', 'paper'] as const;
export type PresetName = (typeof PRESET_NAMES)[number];

/** The resolved configuration of a whole LENS model (saved in every checkpoint's metadata). */
export interface LensConfig {
  /** Preset the sizes started from (a delta may have changed some). */
  preset: PresetName;
  /** Input image side in pixels, shared by the vision encoder and SAM (DESIGN.md: 64 in tiny / quick). */
  imageSize: number;
  /** Vision encoder (patch ViT + merger); `imageSize` and `outDim` are derived. */
  vision: VisionEncoderConfig;
  /** MLLM (decoder-only transformer); `vocabSize` must equal the fitted tokenizer's size. */
  mllm: MllmConfig;
  /** Context queries; `dim` is derived (= mllm.hiddenSize). */
  context: ContextQueriesConfig;
  /** Connector; `inDim`, `outDim` and `numQueries` are derived. */
  connector: ConnectorConfig;
  /** Mini-SAM; `imageSize` is derived. */
  sam: MiniSamConfig;
}

/** A config delta: any subset of any section, plus the preset to start from. */
export interface LensConfigDelta {
  preset?: PresetName;
  imageSize?: number;
  vision?: Partial<VisionEncoderConfig>;
  mllm?: Partial<MllmConfig>;
  context?: Partial<ContextQueriesConfig>;
  connector?: Partial<ConnectorConfig>;
  sam?: Partial<MiniSamConfig>;
}

type PresetSizes = Required<Omit<LensConfigDelta, 'preset'>>;

/**
 * The presets. Fields marked "official" follow lens-official-code-facts.md; the
 * widths are the project's (Qwen2.5-VL-3B / SAM2-L cannot be trained here).
 * tiny: smallest that exercises every code path (M > K, two blocks in SAM's
 * two-way transformer, a patch merger), for the tests.
 * quick: the default main job, 2.1M parameters (a forward pass of 2 samples takes
 * ~0.25 s on stock wasm here: `npx lens export --preset quick --bench`).
 * quick and paper give the visual tokens the fixed 2D code of their place (pos2dScale 0.5,
 * standing in for Qwen2.5-VL's 2D mRoPE; tiny leaves it out, the tests' numbers predate it).
 * paper: the official structure (M = 64 queries, a 4-block ViT connector, SAM's
 * 4x-below-input mask resolution and 8x decoder MLP) at a 128 px input.
 */
const { imageSize: _derived, ...TINY_SAM } = DEFAULT_MINI_SAM_CONFIG; // imageSize is derived below

export const PRESETS: Record<PresetName, PresetSizes> = {
  tiny: {
    imageSize: 64,
    vision: { patchSize: 8, width: 32, depth: 1, numHeads: 2, mlpRatio: 4, mergeSize: 2, initStd: 0.02 },
    mllm: { vocabSize: 512, hiddenSize: 64, numLayers: 2, numHeads: 4, mlpRatio: 4, maxPositions: 256, tieWordEmbeddings: true, initStd: 0.02 },
    context: { numQueries: 8, initStd: 0.02 },
    connector: { kind: 'vit', depth: 1, heads: 4, mlpRatio: 2, numOutputTokens: 1 },
    sam: TINY_SAM, // MiniSam's own defaults are the tiny sizes
  },
  quick: {
    imageSize: 64,
    vision: { patchSize: 8, width: 64, depth: 2, numHeads: 4, mlpRatio: 4, mergeSize: 2, initStd: 0.02, pos2dScale: 0.5 },
    mllm: { vocabSize: 512, hiddenSize: 128, numLayers: 4, numHeads: 4, mlpRatio: 4, maxPositions: 320, tieWordEmbeddings: true, initStd: 0.02 },
    context: { numQueries: 16, initStd: 0.02 },
    connector: { kind: 'vit', depth: 2, heads: 4, mlpRatio: 4, numOutputTokens: 1 },
    sam: {
      patchSize: 4,
      encoderDim: 64,
      encoderDepth: 2,
      encoderHeads: 4,
      encoderMlpRatio: 4,
      promptDim: 64,
      decoderDepth: 2,
      decoderHeads: 4,
      decoderMlpDim: 256,
      attentionDownsampleRate: 2,
      iouHeadDepth: 3,
      iouHeadHiddenDim: 64,
    },
  },
  paper: {
    imageSize: 128,
    vision: { patchSize: 8, width: 128, depth: 4, numHeads: 4, mlpRatio: 4, mergeSize: 2, initStd: 0.02, pos2dScale: 0.5 },
    mllm: { vocabSize: 512, hiddenSize: 256, numLayers: 8, numHeads: 8, mlpRatio: 4, maxPositions: 512, tieWordEmbeddings: true, initStd: 0.02 },
    context: { numQueries: 64, initStd: 0.02 }, // official M
    connector: { kind: 'vit', depth: 4, heads: 8, mlpRatio: 4, numOutputTokens: 1 }, // official depth 4, K 1
    sam: {
      patchSize: 8, // 16x16 embedding grid, 64x64 masks: SAM's mask at 1/4 of the input side
      encoderDim: 128,
      encoderDepth: 4,
      encoderHeads: 4,
      encoderMlpRatio: 4,
      promptDim: 128,
      decoderDepth: 2, // official
      decoderHeads: 8, // official
      decoderMlpDim: 1024, // 8 x promptDim, as SAM's 2048 = 8 x 256
      attentionDownsampleRate: 2, // official
      iouHeadDepth: 3, // official
      iouHeadHiddenDim: 128,
    },
  },
};

const SECTIONS = ['vision', 'mllm', 'context', 'connector', 'sam'] as const;

/** Sets a derived field, refusing a delta that set it to something else. */
function derive<T extends object, K extends keyof T>(section: string, target: T, delta: Partial<T> | undefined, key: K, value: T[K]): void {
  if (delta && delta[key] !== undefined && delta[key] !== value) {
    throw new Error(`LensConfig.${section}.${String(key)}: derived as ${JSON.stringify(value)}, but the config sets ${JSON.stringify(delta[key])}`);
  }
  target[key] = value;
}

/**
 * Resolves a preset name or a delta (on top of `delta.preset`, default 'quick') into
 * a full, validated LensConfig. A saved config resolves to itself.
 */
export function resolveLensConfig(presetOrConfig: PresetName | LensConfigDelta = 'quick'): LensConfig {
  const delta: LensConfigDelta = typeof presetOrConfig === 'string' ? { preset: presetOrConfig } : presetOrConfig;
  if (typeof delta !== 'object' || delta === null) throw new Error(`LensConfig: expected a preset name or a config object, got ${JSON.stringify(presetOrConfig)}`);
  const preset = delta.preset ?? 'quick';
  if (!(PRESET_NAMES as readonly string[]).includes(preset)) {
    throw new Error(`LensConfig.preset: expected one of ${PRESET_NAMES.join(', ')}, got ${JSON.stringify(preset)}`);
  }
  const unknown = Object.keys(delta).filter((k) => !['preset', 'imageSize', ...SECTIONS].includes(k));
  if (unknown.length > 0) throw new Error(`LensConfig: unknown field(s) ${unknown.join(', ')}`);
  const base = PRESETS[preset as PresetName];
  const imageSize = delta.imageSize ?? base.imageSize;
  const vision = { ...base.vision, ...delta.vision } as VisionEncoderConfig;
  const mllm = { ...base.mllm, ...delta.mllm } as MllmConfig;
  const context = { ...base.context, ...delta.context } as ContextQueriesConfig;
  const connector = { ...base.connector, ...delta.connector } as ConnectorConfig;
  const sam = { ...base.sam, ...delta.sam } as MiniSamConfig;
  derive('vision', vision, delta.vision, 'imageSize', imageSize);
  derive('sam', sam, delta.sam, 'imageSize', imageSize);
  const hidden = validateMllmConfig(mllm).hiddenSize;
  derive('vision', vision, delta.vision, 'outDim', hidden);
  derive('context', context, delta.context, 'dim', hidden);
  derive('connector', connector, delta.connector, 'inDim', hidden);
  derive('connector', connector, delta.connector, 'outDim', validateMiniSamConfig(sam).promptDim);
  derive('connector', connector, delta.connector, 'numQueries', validateContextQueriesConfig(context).numQueries);
  return {
    preset: preset as PresetName,
    imageSize,
    vision: validateVisionEncoderConfig(vision),
    mllm: validateMllmConfig(mllm),
    context: validateContextQueriesConfig(context),
    connector: validateConnectorConfig(connector),
    sam: validateMiniSamConfig(sam),
  };
}

/** Builds a LENS model from a preset name or a config delta; `seed` fixes every initial weight. */
export function buildLens(presetOrConfig: PresetName | LensConfigDelta = 'quick', { seed = 0 }: { seed?: number } = {}): LensModel {
  return new LensModel(resolveLensConfig(presetOrConfig), new Rng(seed));
}

// ---------------------------------------------------------------------------
// Checkpoints of the whole model or of one component (safetensors + config)
// ---------------------------------------------------------------------------

/** Components that can be saved / loaded alone (child names of LensModel). */
export const LENS_COMPONENTS = ['vision', 'mllm', 'context', 'connector', 'sam'] as const;
export type LensComponent = (typeof LENS_COMPONENTS)[number];

/** Metadata key holding the JSON config; `format` marks our files. */
const FORMAT = 'lens-ts/1';

/** Saves the whole model with its resolved config (metadata: format, config, and `extra`). */
export function saveLens(model: LensModel, path: string, extra: Record<string, string> = {}): void {
  saveModule(model, path, { ...extra, format: FORMAT, component: 'lens', config: JSON.stringify(model.config) });
}

/** Builds the model a checkpoint describes and loads its weights (names, shapes, dtypes checked). */
export function loadLens(path: string): { model: LensModel; metadata: Record<string, string> } {
  const { metadata } = readSafetensors(path);
  if (metadata.component !== 'lens' || typeof metadata.config !== 'string') {
    throw new Error(`${path}: not a whole-model LENS checkpoint (metadata.component = ${JSON.stringify(metadata.component)}, expected "lens" with a config)`);
  }
  let config: LensConfig;
  try {
    config = resolveLensConfig(JSON.parse(metadata.config) as LensConfigDelta);
  } catch (e) {
    throw new Error(`${path}: metadata.config: ${(e as Error).message}`);
  }
  const model = new LensModel(config, new Rng(0));
  try {
    loadModule(model, path);
  } catch (e) {
    model.dispose();
    throw e;
  }
  return { model, metadata };
}

function componentOf(model: LensModel, name: LensComponent): Module {
  if (!(LENS_COMPONENTS as readonly string[]).includes(name)) {
    throw new Error(`component: expected one of ${LENS_COMPONENTS.join(', ')}, got ${JSON.stringify(name)}`);
  }
  return model[name];
}

/** Saves one component (e.g. the stage-0a SAM) with its section of the config. */
export function saveComponent(model: LensModel, name: LensComponent, path: string, extra: Record<string, string> = {}): void {
  saveModule(componentOf(model, name), path, { ...extra, format: FORMAT, component: name, config: JSON.stringify(model.config[name]) });
}

/**
 * Loads one component from a component file or from a whole-model file (its
 * `name.` tensors); the shapes of the model's component must match the file's.
 */
export function loadComponent(model: LensModel, name: LensComponent, path: string): Record<string, string> {
  const m = componentOf(model, name);
  const { metadata } = readSafetensors(path);
  if (metadata.component === 'lens') return loadModule(m, path, { prefix: `${name}.` });
  if (metadata.component !== undefined && metadata.component !== name) {
    throw new Error(`${path}: holds component '${metadata.component}', not '${name}'`);
  }
  return loadModule(m, path);
}
