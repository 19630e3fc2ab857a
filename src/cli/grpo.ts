/**
 * `lens grpo --from DIR`: stage 2, GRPO with unified rewards + L_seg (src/train/grpo_stage.ts),
 * starting from a stage-1 run folder whose model is also the frozen KL reference.
 */
import { runGrpo } from '../train/grpo_stage';
import { dataRootOf, parseStageArgs } from './stage-args';

const HELP = `usage: lens grpo --from DIR [--preset tiny|quick|paper] [--seed N] [--out DIR] [--resume] [--data DIR] [--config FILE]

  --from DIR     the stage-1 run folder (model.safetensors + tokenizer.json, from 'lens align')
  --preset P     step sizes (default quick); the model's sizes come from --from
  --seed N       seed of the prompts and rollouts (default 0)
  --out DIR      run folder (default results/runs/grpo-<preset>-s<seed>)
  --resume       continue an interrupted run from its checkpoint
  --data DIR     dataset root (default data/bench, generated at quick scale if absent)
  --config FILE  JSON delta of the stage-2 config, e.g. {"numGenerations": 8, "iouExponent": 2, "rewardWeights": {"format": 1, "box": 1, "seg": 0}}

Per-step logs (steps.arrow): every reward component's mean / std, KL, clip fraction, format rate,
zero-spread group fraction, seg loss, completion length, and the frozen stage-1 model's reward on
the same prompts with the policy's gain over it (refRewardMean, rewardGain; logReferenceReward, off in quick),
and every scoreEvery steps the policy's mean reward on its training prompts under fixed draws,
beside the stage-1 model's (scoreReward, scoreRefReward, scoreGain). Ends with model.safetensors +
tokenizer.json and metrics.arrow.`;

export async function run(argv: string[]): Promise<number> {
  const a = parseStageArgs(argv, { command: 'grpo', help: HELP });
  if (a.help) {
    console.log(HELP);
    return 0;
  }
  const dataRoot = await dataRootOf(a);
  const t0 = performance.now();
  const { dir, metrics } = await runGrpo({ dataRoot, out: a.out, preset: a.preset, seed: a.seed, resume: a.resume, from: a.from, config: a.config as never });
  if (metrics.length > 0) console.table(metrics);
  console.log(`grpo done in ${((performance.now() - t0) / 1000).toFixed(0)} s: ${dir}`);
  return 0;
}
