/**
 * `lens train-baseline lisa|segzero --from <pretrain run>`: trains one of the baselines the
 * paper compares with (src/train/baselines.ts) from the stage-0 run's parts, into a run
 * folder that `lens evaluate --run DIR` scores.
 */
import { BASELINE_KINDS, runBaseline, type BaselineKind } from '../train/baselines';
import { UsageError } from './errors';
import { dataRootOf, parseStageArgs, type StageArgs } from './stage-args';

const HELP = `usage: lens train-baseline lisa|segzero --from DIR [--preset tiny|quick|paper] [--seed N] [--out DIR] [--resume] [--data DIR] [--config FILE]

  lisa           LISA-style: one segmentation token -> SAM prompt, supervised (CE + BCE + Dice; LISA's 1.0 / 2.0 / 0.5 except quick, see baselines.ts)
  segzero        Seg-Zero-style: the MLLM's box -> frozen SAM; GRPO on format + box rewards
  --from DIR     the stage-0 run folder (lens pretrain): vision + MLLM from 0b, SAM from 0a (required)
  --preset P     step and batch sizes (default quick)
  --seed N       seed of batches, rollouts and new weights (default 0)
  --out DIR      run folder (default results/runs/<lisa|segzero>-<preset>-s<seed>)
  --resume       continue an interrupted run from its checkpoint
  --data DIR     dataset root (default data/bench, generated at quick scale if absent)
  --config FILE  JSON delta of the baseline's config, e.g. {"steps": 50, "lr": 0.0005}

Ends with DIR/model.safetensors + DIR/tokenizer.json for 'lens evaluate --run DIR'.`;

/** Parsed flags; exported for tests. */
export type TrainBaselineArgs = StageArgs & { kind: BaselineKind };

/** Parses the flags (null = --help). */
export function parseTrainBaselineArgs(argv: string[]): TrainBaselineArgs | null {
  const a = parseStageArgs(argv, { command: 'baseline', help: HELP, positionals: true, runName: (p) => p[0] ?? 'baseline' });
  if (a.help) return null;
  if (a.positionals.length !== 1 || !(BASELINE_KINDS as readonly string[]).includes(a.positionals[0]!)) {
    throw new UsageError(`expected one baseline, lisa or segzero, got ${a.positionals.length ? `'${a.positionals.join(' ')}'` : 'none'}\n\n${HELP}`);
  }
  return { ...a, kind: a.positionals[0] as BaselineKind };
}

export async function run(argv: string[]): Promise<number> {
  const a = parseTrainBaselineArgs(argv);
  if (!a) {
    console.log(HELP);
    return 0;
  }
  const dataRoot = await dataRootOf(a);
  const t0 = performance.now();
  const { dir, steps } = await runBaseline(a.kind, { dataRoot, out: a.out, preset: a.preset, seed: a.seed, resume: a.resume, from: a.from, config: a.config as never });
  console.log(`${a.kind} done in ${((performance.now() - t0) / 1000).toFixed(0)} s (${steps} steps): ${dir}`);
  return 0;
}
