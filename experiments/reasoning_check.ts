/**
 * Experiment for issue #5 (docs/stage0b-grounding.md): does a stage-0b model's greedy
 * reasoning name the right target? Every generated trace ends "It is the <colour>
 * <category> at the <place>." (the generator's last sentence; 3 x 3 places); this compares
 * that sentence with the ground truth's on `--eval` RefCOCO val sentences and prints the
 * share with the right colour, the right label (colour and category), the right place, and
 * both label and place. Chance for the place is about 1/9. `--family F` reads F's val split
 * instead of RefCOCO's.
 *
 *   npx tsx experiments/reasoning_check.ts --from results/main/pretrain/0b
 *   npx tsx experiments/reasoning_check.ts --from results/experiments/vision-geom-ptr-3k --pos2d 0.5
 *
 * `--pos2d S`: the model was trained with stage0b_grounding.ts's `--pos2d S` (not saved in it).
 */
import { parseArgs } from 'node:util';
import * as tf from '@tensorflow/tfjs-core';
import { initBackend } from '../src/backend';
import { generate } from '../src/model/generate';
import { imageTensors, loadExamples, promptIds } from '../src/train/data';
import type { Family } from '../src/data/types';
import { loadExperimentModel } from './common';

const { values: a } = parseArgs({
  options: {
    from: { type: 'string', default: 'results/main/pretrain/0b' },
    data: { type: 'string', default: 'data/bench' },
    pos2d: { type: 'string', default: '0' },
    eval: { type: 'string', default: '100' },
    family: { type: 'string', default: 'refcoco' },
  },
});

/** [label, place] of a trace's last sentence, lower-cased; [] when it has none. */
function lastSentence(text: string): string[] {
  const m = text.toLowerCase().match(/it is the ([a-z ]+?) (at the [a-z ]+|in the centre)\./);
  return m ? [m[1]!, m[2]!] : [];
}

async function main(): Promise<void> {
  await initBackend({ quiet: true });
  const { model, tok } = loadExperimentModel(a.from!, Number(a.pos2d));
  const side = model.config.imageSize;
  const val = await loadExamples(a.data!, a.family as Family, 'val', { imageSize: side, allSentences: false, limit: Number(a.eval), quiet: true });
  const n = { colour: 0, label: 0, place: 0, both: 0 };
  for (let s = 0; s < val.length; s += 25) {
    const chunk = val.slice(s, s + 25);
    const visual = tf.tidy(() => {
      const { images, labels } = imageTensors(chunk, side);
      labels.dispose();
      return model.vision.apply(images);
    });
    const res = generate(model.mllm, tok, { prompts: chunk.map((e) => promptIds(tok, e, model.vision.numTokens)), visual }, { greedy: true, maxNewTokens: 64 });
    visual.dispose();
    res.text.forEach((text, k) => {
      const [gl, gp] = lastSentence(chunk[k]!.answer);
      const [pl, pp] = lastSentence(text);
      n.colour += +(pl !== undefined && gl!.split(' ')[0] === pl.split(' ')[0]);
      n.label += +(gl === pl);
      n.place += +(gp === pp);
      n.both += +(gl === pl && gp === pp);
    });
  }
  const share = (x: number) => +(x / val.length).toFixed(2);
  console.log(`${a.from}: ${val.length} sentences; right colour ${share(n.colour)}, label ${share(n.label)}, place ${share(n.place)}, label and place ${share(n.both)}`);
  model.dispose();
}

main().catch((e: unknown) => {
  console.error(e instanceof Error ? e.stack : e);
  process.exit(1);
});
