/**
 * Experiment for issue #5 (docs/stage0b-grounding.md): stage 1 (src/train/align.ts, the
 * quick preset's settings) from an experiment's stage-0b model, scored as the main job
 * scores it (gIoU / cIoU on 50 sentences of every evaluation split), the gate the issue sets.
 *
 * The experiment scripts start from models whose SAM is not stage 0a's (`pool_tasks.ts
 * --task cells --save` writes a fresh one) and add `--pos2d` outside the model. This copies
 * `--sam`'s SAM in, writes `--pos2d` into the vision config (src's pos2dScale), saves that
 * stage-0b model to OUT/stage0b and runs stage 1 into OUT/align.
 *
 *   npx tsx experiments/align_experiment.ts --from results/experiments/vision-geom-ptr-3k --pos2d 0.5 --out scratch/align-ptr-3k
 */
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { initBackend } from '../src/backend';
import { loadLens } from '../src/model/presets';
import { runAlign } from '../src/train/align';
import { loadStageModelRebuilt, saveStageModel } from '../src/train/stage_io';

const { values: a } = parseArgs({
  options: {
    from: { type: 'string' },
    sam: { type: 'string', default: 'results/main/pretrain/0a' },
    pos2d: { type: 'string', default: '0' },
    data: { type: 'string', default: 'data/bench' },
    out: { type: 'string', default: 'scratch/align-experiment' },
  },
});

async function main(): Promise<void> {
  if (!a.from) throw new Error('--from DIR is required: an experiment folder holding model.safetensors and tokenizer.json');
  await initBackend({ quiet: true });
  const { model, tokenizer } = loadStageModelRebuilt(a.from, { vision: { pos2dScale: Number(a.pos2d) } }, 0, []);
  const sam = loadLens(join(a.sam!, 'model.safetensors')).model;
  const samParams = new Map(sam.namedParameters());
  for (const [n, v] of model.namedParameters()) if (n.startsWith('sam.')) v.assign(samParams.get(n)!);
  sam.dispose();
  const stage0b = join(a.out!, 'stage0b');
  saveStageModel(stage0b, model, tokenizer, { stage: `stage0b (experiment ${a.from}, SAM of ${a.sam})` });
  model.dispose();
  const { metrics } = await runAlign({ dataRoot: a.data!, out: join(a.out!, 'align'), preset: 'quick', seed: 0, resume: false, from: stage0b, quiet: true });
  for (const m of metrics) console.log(`${m.split}: gIoU ${(100 * Number(m.giou)).toFixed(1)}, cIoU ${(100 * Number(m.ciou)).toFixed(1)}`);
}

main().catch((e: unknown) => {
  console.error(e instanceof Error ? e.stack : e);
  process.exit(1);
});
