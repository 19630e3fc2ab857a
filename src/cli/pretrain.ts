/**
 * `lens pretrain`: stage 0, the stand-ins for pretrained weights (src/train/stage0.ts):
 * 0a (mini-SAM on box / point prompts) into OUT/0a, 0v (the vision encoder on fresh
 * pictures, when the config gives it steps) into OUT/0v, 0b (MLLM SFT on the LENS answer
 * format) into OUT/0b, and the whole model + tokenizer in OUT, which `lens align --from
 * OUT` reads.
 */
import { join } from 'node:path';
import { runPretrain, type PretrainStage } from '../train/stage0';
import { UsageError } from './errors';
import { dataRootOf, parseStageArgs, type StageArgs } from './stage-args';

const HELP = `usage: lens pretrain [--preset tiny|quick|paper] [--stage 0a|0v|0b|both] [--seed N] [--out DIR] [--resume] [--data DIR] [--config FILE]

  --preset P     model and step sizes (default quick)
  --stage S      0a (mini-SAM), 0v (vision encoder, needs OUT/0a), 0b (MLLM SFT, needs OUT/0a and
                 OUT/0v when stage0v.steps > 0) or both: all of them (default)
  --seed N       seed of the initial weights, batches and prompts (default 0)
  --out DIR      run folder (default results/runs/pretrain-<preset>-s<seed>); sub-runs in DIR/0a, DIR/0v, DIR/0b
  --resume       continue an interrupted run from its checkpoints (finished sub-stages are skipped)
  --data DIR     dataset root (default data/bench, generated at quick scale if absent)
  --config FILE  JSON delta of the config, e.g. {"stage0a": {"steps": 100}, "stage0b": {"reasonFraction": 0.3}}

Ends with DIR/model.safetensors + DIR/tokenizer.json for 'lens align --from DIR'.`;

/** Parses the flags; exported for tests. */
export function parsePretrainArgs(argv: string[]): StageArgs & { stage: PretrainStage } {
  const a = parseStageArgs(argv, { command: 'pretrain', help: HELP, requireFrom: false, options: { stage: 'both' } });
  const stage = a.extra.stage!;
  if (!['0a', '0v', '0b', 'both'].includes(stage)) throw new UsageError(`--stage: expected 0a, 0v, 0b or both, got '${stage}'`);
  return { ...a, stage: stage as PretrainStage };
}

export async function run(argv: string[]): Promise<number> {
  const a = parsePretrainArgs(argv);
  if (a.help) {
    console.log(HELP);
    return 0;
  }
  const dataRoot = await dataRootOf(a);
  const t0 = performance.now();
  const { dir, metrics } = await runPretrain({ dataRoot, out: a.out, preset: a.preset, seed: a.seed, resume: a.resume, stage: a.stage, config: a.config as never });
  const rows = [...metrics.stage0a.map((r) => ({ stage: '0a', ...r })), ...metrics.stage0v.map((r) => ({ stage: '0v', ...r })), ...metrics.stage0b.map((r) => ({ stage: '0b', ...r }))];
  if (rows.length > 0) console.table(rows);
  console.log(`pretrain done in ${((performance.now() - t0) / 1000).toFixed(0)} s: ${a.stage === '0a' ? join(dir, '0a') : dir}`);
  return 0;
}
