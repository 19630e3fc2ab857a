/**
 * A stage-0 folder whose SAM comes from another stage-0a run: FROM's hand-over model (0v and
 * 0b trained, SAM from FROM's 0a) with every `sam.` weight replaced by SAM_MODEL's. Stages 0v
 * and 0b never train SAM and, at the same seed, start from the same other weights whatever 0a
 * did, so the result is what the whole stage 0 would be with that 0a, for the cost of the 0a
 * alone; stage 1 from it then says what a better SAM is worth (docs/stage0b-grounding.md, "A
 * longer stage 0a").
 *
 *   npx tsx experiments/swap_sam.ts FROM SAM_MODEL OUT
 *   npx tsx experiments/swap_sam.ts results/main/pretrain results/runs/pre-a800/0a/model.safetensors results/runs/pre-sam800
 */
import { existsSync, mkdirSync } from 'node:fs';
import { initBackend } from '../src/backend';
import { loadLens } from '../src/model/presets';
import { loadStageModel, saveStageModel } from '../src/train/stage_io';

const [from, samFile, out] = process.argv.slice(2);
if (!from || !samFile || !out) throw new Error('usage: npx tsx experiments/swap_sam.ts FROM SAM_MODEL OUT');
if (existsSync(out)) throw new Error(`${out}: exists; name a new folder`);
await initBackend({});
const { model, tokenizer, metadata } = loadStageModel(from);
const donor = loadLens(samFile).model;
if (JSON.stringify(donor.config.sam) !== JSON.stringify(model.config.sam)) throw new Error(`${samFile}: its SAM is not the shape of ${from}'s`);
const weights = new Map(donor.namedParameters());
let n = 0;
for (const [name, v] of model.namedParameters()) {
  if (!name.startsWith('sam.')) continue;
  v.assign(weights.get(name)!);
  n++;
}
mkdirSync(out, { recursive: true });
saveStageModel(out, model, tokenizer, metadata);
console.log(`${out}: ${from} with the ${n} SAM tensors of ${samFile}`);
