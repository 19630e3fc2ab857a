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
import type { PresetName } from '../model/presets';
import { SPLITS } from '../data/index';
import { loadLens, saveLens } from '../model/presets';
import type { LensModel } from '../model/lens';
import { Tokenizer } from '../model/tokenizer';
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
  quiet?: boolean;
  /** Stops after this step as if killed (resume tests). */
  stopAfter?: number;
}
