/**
 * How stages hand a model to the next one: every stage's run folder ends with
 * `model.safetensors` (the whole LensModel with its config, presets.ts saveLens)
 * and `tokenizer.json` (fitted once, in stage 0b, then carried along). A later
 * stage names that folder with `--from`.
 */
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import type { Family } from '../data/index';
import type { ConfigDelta } from '../config';
import type { LensConfig, LensConfigDelta, PresetName } from '../model/presets';
import { SPLITS } from '../data/index';
import { buildLens, loadLens, saveLens } from '../model/presets';
import type { LensModel } from '../model/lens';
import { Tokenizer } from '../model/tokenizer';
import { ConfigError } from '../config';
import { readManifest } from '../data/generate/benchmark';
import { resolveGenerateConfig, type GenerateConfig } from '../data/generate/index';
import { loadExamples, type TrainExample } from './data';

export const MODEL_FILE = 'model.safetensors';
export const TOKENIZER_FILE = 'tokenizer.json';

/** Writes a stage's result into its run folder. */
export function saveStageModel(dir: string, model: LensModel, tokenizer: Tokenizer, extra: Record<string, string> = {}): void {
  tokenizer.save(join(dir, TOKENIZER_FILE));
  saveLens(model, join(dir, MODEL_FILE), extra);
}

/** Reads the model and tokenizer a stage left in `dir`. */
export function loadStageModel(dir: string): { model: LensModel; tokenizer: Tokenizer; metadata: Record<string, string> } {
  const m = join(dir, MODEL_FILE);
  const t = join(dir, TOKENIZER_FILE);
  for (const p of [m, t]) {
    if (!existsSync(p)) throw new Error(`${dir}: no ${p.slice(dir.length + 1)} here; --from must name the run folder of a finished earlier stage`);
  }
  const { model, metadata } = loadLens(m);
  return { model, tokenizer: Tokenizer.load(t), metadata };
}

/** What `loadStageModelRebuilt` always re-initialises: the context queries and the connector. */
export const REBUILT_PARTS: readonly string[] = ['context.', 'connector.'];

/** Fields presets.ts derives (never set in a delta): dropped from a saved config before a delta is merged. */
const DERIVED: Record<string, readonly string[]> = {
  vision: ['imageSize', 'outDim'],
  sam: ['imageSize'],
  context: ['dim'],
  connector: ['inDim', 'outDim', 'numQueries'],
};

/**
 * A saved LensConfig with `delta` merged over it, as a delta buildLens resolves: every
 * section's saved fields (derived ones dropped, presets.ts derives them again) overridden
 * by the delta's. E.g. `{ context: { numQueries: 32 } }` over a quick config gives the
 * quick model with 32 queries and a connector reading 32.
 */
export function mergeLensDelta(saved: LensConfig, delta: LensConfigDelta): LensConfigDelta {
  const out: Record<string, unknown> = { preset: delta.preset ?? saved.preset, imageSize: delta.imageSize ?? saved.imageSize };
  for (const section of ['vision', 'mllm', 'context', 'connector', 'sam'] as const) {
    const s: Record<string, unknown> = { ...(saved[section] as object) };
    for (const k of DERIVED[section] ?? []) delete s[k];
    out[section] = { ...s, ...(delta[section] ?? {}) };
  }
  return out as LensConfigDelta;
}

/**
 * The model of stage run `dir` rebuilt for an ablation cell (Tables 3, 4; Table 5's rows
 * without alignment): the saved config with `delta` merged (mergeLensDelta), built with
 * `seed`, so the context queries and the connector start FRESH (N(0, 0.02) queries, the
 * connector's own init) at the delta's sizes, then every other parameter whose name and
 * shape match copied from the saved model (vision encoder, MLLM, SAM: the paper ablates
 * from the same pretrained weights). Parts under `fresh` (default REBUILT_PARTS) are never
 * copied. Returns the names kept and the names left fresh.
 */
export function loadStageModelRebuilt(
  dir: string,
  delta: LensConfigDelta,
  seed: number,
  fresh: readonly string[] = REBUILT_PARTS,
): { model: LensModel; tokenizer: Tokenizer; metadata: Record<string, string>; kept: string[]; rebuilt: string[] } {
  const saved = loadStageModel(dir);
  try {
    const model = buildLens(mergeLensDelta(saved.model.config, delta), { seed });
    const from = new Map(saved.model.namedParameters());
    const kept: string[] = [];
    const rebuilt: string[] = [];
    for (const [name, v] of model.namedParameters()) {
      const s = from.get(name);
      if (!fresh.some((p) => name.startsWith(p)) && s && s.shape.join() === v.shape.join()) {
        v.assign(s);
        kept.push(name);
      } else rebuilt.push(name);
    }
    return { model, tokenizer: saved.tokenizer, metadata: saved.metadata, kept, rebuilt };
  } finally {
    saved.model.dispose();
  }
}

/** The families every stage trains on (the paper trains on the RefCOCO family mixture plus reasoning data). */
export const TRAIN_FAMILIES: readonly Family[] = ['refcoco', 'refcoco+', 'refcocog', 'reasonseg'];

/** Every family's train split at model resolution, concatenated in a fixed order. */
export async function loadTrainingSet(root: string, imageSize: number, { limitPerFamily, quiet = false }: { limitPerFamily?: number; quiet?: boolean } = {}): Promise<TrainExample[]> {
  const out: TrainExample[] = [];
  for (const f of TRAIN_FAMILIES) out.push(...(await loadExamples(root, f, 'train', { imageSize, limit: limitPerFamily, quiet })));
  return out;
}

/** Every evaluation split of the generated benchmark's families, as FAMILY/SPLIT names. */
export function evaluationSplits(): string[] {
  return TRAIN_FAMILIES.flatMap((f) => SPLITS[f].filter((s) => s !== 'train').map((s) => `${f}/${s}`));
}

/** What every stage's run function takes (stage 0a / 0b, 1, 2, the baselines). */
export interface StageRunOptions<C> {
  /** Dataset root (LISA layout). */
  dataRoot: string;
  /** The run folder. */
  out: string;
  preset: PresetName;
  seed: number;
  resume: boolean;
  /** The earlier stage's run folder (model.safetensors + tokenizer.json) to start from. */
  from?: string;
  config?: ConfigDelta<C>;
  /**
   * Stages 1 and 2 only (ablations): start from `from` with the context queries and the
   * connector rebuilt at these sizes and freshly initialised from `seed`, every other
   * weight kept (loadStageModelRebuilt); `{}` = the saved sizes, fresh weights.
   */
  model?: LensConfigDelta;
  quiet?: boolean;
  /** Stops after this step as if killed (resume tests). */
  stopAfter?: number;
}

/**
 * The config of the generator that wrote the benchmark under `dataRoot` (its manifest.json),
 * for a stage that draws more pictures from it; a clear error naming `why` and `skip` (how to
 * do without) for data the generator did not write.
 */
export function benchmarkGenerator(dataRoot: string, why: string, skip: string): GenerateConfig {
  let manifest;
  try {
    manifest = readManifest(dataRoot);
  } catch (e) {
    throw new ConfigError(`${why}, and ${dataRoot} is not a generated benchmark (${(e as Error).message}); ${skip}`);
  }
  return resolveGenerateConfig(manifest.config);
}
