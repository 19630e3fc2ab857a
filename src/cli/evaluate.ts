/**
 * `lens evaluate --data DIR --split FAMILY/SPLIT --pred FILE [--images DIR]`: scores a
 * COCO-results-style predictions file on one split in the LISA convention and prints
 * ONE JSON object on stdout: {"giou", "ciou", "n", "box_acc50"? (when any prediction
 * has a bbox), "format_rate"? (when any has format_valid)}. Missing predictions count
 * as empty masks (their number goes to stderr).
 *
 * DIR is a dataset root in LISA's layout (refer_seg/, reason_seg/). GroundingSuite:
 * `--split groundingsuite/eval` with DIR holding GroundingSuite-Eval.jsonl; its
 * image_path values resolve under --images (default DIR).
 *
 * `lens evaluate --run RUN [--data DIR] [--split FAMILY/SPLIT]... [--max-per-split N] [--preset P] [--out DIR]`:
 * predicts with the model a training run left (LENS, LISA-style or Seg-Zero-style;
 * src/train/evaluate_run.ts) on every evaluation split or the given ones, writes
 * eval.arrow and predictions/*.json (files this same command scores with --pred) into
 * RUN, or into --out DIR, and prints a table.
 */
import { FAMILIES, SPLITS, loadSplit, parseSplitName } from '../data/index';
import { readPredictions, scorePredictions } from '../eval/predictions';
import { parseFlags, UsageError } from './errors';
import { join } from 'node:path';
import { PRESET_NAMES, type PresetName } from '../model/presets';
import { projectRoot } from '../util/paths';

const HELP = `usage: lens evaluate --data DIR --split FAMILY/SPLIT --pred FILE [--images DIR]
       lens evaluate --run RUN [--data DIR] [--split FAMILY/SPLIT]... [--max-per-split N] [--preset P] [--out DIR]
       lens evaluate --trivial [--data DIR] [--split FAMILY/SPLIT]... [--max-per-split N] [--seed N]

  --data DIR      dataset root (LISA layout: refer_seg/, reason_seg/; or a folder holding GroundingSuite-Eval.jsonl)
  --split F/S     ${FAMILIES.map((f) => `${f}/{${SPLITS[f].join(',')}}`).join(' ')}
  --pred FILE     JSON list of {"ref_id"|"sample_id", "sent_idx"?, "segmentation": {"size":[h,w],"counts":RLE}, "bbox"?: [x,y,w,h], "format_valid"?}
  --images DIR    GroundingSuite image root (default: --data)

Prints one JSON object: {"giou", "ciou", "n", "box_acc50"?, "format_rate"?}.

With --run (a finished run folder of pretrain, align, grpo or train-baseline):
  --data DIR           dataset root (default data/bench)
  --split F/S          repeatable; default every evaluation split of the generated benchmark
  --max-per-split N    sentences per split at most, evenly spaced (0 = all; default from --preset)
  --preset P           evaluation defaults tiny|quick|paper (default quick: 150 per split)
  --out DIR            write there instead of into RUN (e.g. every sentence, keeping the job's own evaluation)
Writes RUN/eval.arrow and RUN/predictions/<family>_<split>.json (or under --out); prints a table.

With --trivial: scores the two trivial predictors (largest instance; a seeded random
instance, --seed, default 0) on the same splits and subset; prints a table.`;

export async function run(argv: string[]): Promise<number> {
  const { values } = parseFlags(argv, {
        data: { type: 'string' },
        split: { type: 'string', multiple: true },
        pred: { type: 'string' },
        images: { type: 'string' },
        run: { type: 'string' },
        'max-per-split': { type: 'string' },
        preset: { type: 'string' },
        trivial: { type: 'boolean' },
        seed: { type: 'string' },
        out: { type: 'string' },
        help: { type: 'boolean', short: 'h' },
      }, HELP);
  if (values.help) {
    console.log(HELP);
    return 0;
  }
  if (values.run !== undefined && values.trivial) throw new UsageError(`--run and --trivial are separate modes\n\n${HELP}`);
  if (values.run !== undefined) return runMode(values);
  if (values.trivial) return trivialMode(values);
  for (const flag of ['max-per-split', 'preset', 'seed', 'out'] as const) {
    if (values[flag] !== undefined) throw new UsageError(`--${flag} only applies with --run\n\n${HELP}`);
  }
  for (const flag of ['data', 'split', 'pred'] as const) {
    if (!values[flag]) throw new UsageError(`--${flag} is required\n\n${HELP}`);
  }
  if (values.split!.length !== 1) throw new UsageError(`--split: give one split with --pred, got ${values.split!.length}`);
  let family: string;
  let split: string;
  try {
    ({ family, split } = parseSplitName(values.split![0]!));
  } catch (e) {
    throw new UsageError(`--split: ${(e as Error).message}`);
  }
  const ds = await loadSplit(values.data!, family, split, values.images ? { imageRoot: values.images } : {});
  const preds = readPredictions(values.pred!);
  const { missing, ...metrics } = scorePredictions(ds, preds, values.pred!);
  if (missing) console.error(`lens evaluate: ${missing} of ${metrics.n} samples have no prediction (scored as empty masks)`);
  process.stdout.write(`${JSON.stringify(metrics)}\n`);
  return 0;
}

/** `--run RUN`: evaluates a training run's model (src/train/evaluate_run.ts). */
type ModeValues = { data?: string; split?: string[]; pred?: string; images?: string; run?: string; 'max-per-split'?: string; preset?: string; seed?: string; out?: string };

/** Flags shared by --run and --trivial: preset, max-per-split, splits (checked). */
function modeFlags(values: ModeValues, mode: string): { preset: string; maxPerSplit: number | undefined } {
  if (values.pred !== undefined || values.images !== undefined) throw new UsageError(`${mode} predicts itself: drop --pred / --images\n\n${HELP}`);
  const preset = values.preset ?? 'quick';
  if (!(PRESET_NAMES as readonly string[]).includes(preset)) throw new UsageError(`--preset: expected one of ${PRESET_NAMES.join(', ')}, got '${preset}'`);
  let maxPerSplit: number | undefined;
  if (values['max-per-split'] !== undefined) {
    maxPerSplit = Number(values['max-per-split']);
    if (!Number.isInteger(maxPerSplit) || maxPerSplit < 0) throw new UsageError(`--max-per-split: expected an integer >= 0, got '${values['max-per-split']}'`);
  }
  for (const name of values.split ?? []) {
    try {
      parseSplitName(name);
    } catch (e) {
      throw new UsageError(`--split: ${(e as Error).message}`);
    }
  }
  return { preset, maxPerSplit };
}

/** `--trivial`: the largest-object and random-object predictors (src/train/trivial.ts). */
async function trivialMode(values: ModeValues): Promise<number> {
  const { preset, maxPerSplit } = modeFlags(values, '--trivial');
  if (values.out !== undefined) throw new UsageError(`--out only applies with --run (--trivial writes nothing)\n\n${HELP}`);
  const seed = Number(values.seed ?? '0');
  if (!Number.isInteger(seed) || seed < 0) throw new UsageError(`--seed: expected an integer >= 0, got '${values.seed}'`);
  const { scoreTrivialSplits, formatTrivialTable } = await import('../train/trivial');
  const { resolveEvaluateConfig } = await import('../train/evaluate_run');
  const { evaluationSplits } = await import('../train/stage_io');
  const rows = await scoreTrivialSplits(values.data ?? join(projectRoot(), 'data', 'bench'), values.split ?? evaluationSplits(), {
    seed,
    maxPerSplit: maxPerSplit ?? resolveEvaluateConfig(preset as PresetName).maxPerSplit,
  });
  console.log(formatTrivialTable(rows));
  return 0;
}

async function runMode(values: ModeValues): Promise<number> {
  if (values.seed !== undefined) throw new UsageError(`--seed only applies with --trivial\n\n${HELP}`);
  const { preset, maxPerSplit } = modeFlags(values, '--run');
  const { evaluateRun, formatEvalTable } = await import('../train/evaluate_run');
  const { initBackend } = await import('../backend');
  await initBackend({ quiet: true });
  const rows = await evaluateRun(values.run!, {
    dataRoot: values.data ?? join(projectRoot(), 'data', 'bench'),
    splits: values.split,
    preset: preset as PresetName,
    config: maxPerSplit === undefined ? {} : { maxPerSplit },
    out: values.out,
  });
  console.log(formatEvalTable(rows));
  console.log(`wrote ${join(values.out ?? values.run!, 'eval.arrow')}`);
  return 0;
}
