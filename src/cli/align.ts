/**
 * `lens align --from DIR`: stage 1, pretraining alignment (src/train/align.ts): queries +
 * connector learn to prompt the frozen SAM from the frozen MLLM's states after the
 * ground-truth answer.
 */
import { runAlign } from '../train/align';
import { dataRootOf, parseStageArgs } from './stage-args';

const HELP = `usage: lens align --from DIR [--preset tiny|quick|paper] [--seed N] [--out DIR] [--resume] [--data DIR] [--config FILE]

  --from DIR     the stage-0 run folder (model.safetensors + tokenizer.json, from 'lens pretrain')
  --preset P     step sizes (default quick); the model's sizes come from --from
  --seed N       seed of the batches (default 0)
  --out DIR      run folder (default results/runs/align-<preset>-s<seed>)
  --resume       continue an interrupted run from its checkpoint
  --data DIR     dataset root (default data/bench, generated at quick scale if absent)
  --config FILE  JSON delta of the stage-1 config, e.g. {"steps": 500, "lr": 5e-4, "evalLimit": 0}

Ends with DIR/model.safetensors + DIR/tokenizer.json for 'lens grpo --from DIR', and metrics.arrow (gIoU / cIoU per split).`;

export async function run(argv: string[]): Promise<number> {
  const a = parseStageArgs(argv, { command: 'align', help: HELP });
  if (a.help) {
    console.log(HELP);
    return 0;
  }
  const dataRoot = await dataRootOf(a);
  const t0 = performance.now();
  const { dir, metrics } = await runAlign({ dataRoot, out: a.out, preset: a.preset, seed: a.seed, resume: a.resume, from: a.from, config: a.config as never });
  if (metrics.length > 0) console.table(metrics);
  console.log(`align done in ${((performance.now() - t0) / 1000).toFixed(0)} s: ${dir}`);
  return 0;
}
