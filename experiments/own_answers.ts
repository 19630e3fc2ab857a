/**
 * How often a stage's greedy answer has the right box (IoU > 0.5, the paper's Acc@0.5) on
 * training sentences and on held-out ones: whether stage 1 trained on the MLLM's own answers
 * (`ownAnswerFraction`) would see them wrong as often as evaluation does, or answers the MLLM
 * learnt by heart (docs/stage0b-grounding.md, "Stage 1 on its own answers").
 *
 *   npx tsx experiments/own_answers.ts results/main/pretrain [--data data/bench] [--n 100]
 */
import { parseArgs } from 'node:util';
import { initBackend } from '../src/backend';
import { boxHit } from '../src/eval/metrics';
import { parseBox, type Box } from '../src/model/answer';
import { loadExamples } from '../src/train/data';
import { greedyAnswers, inputBoxToOriginal } from '../src/train/predict';
import { loadStageModel, TRAIN_FAMILIES } from '../src/train/stage_io';

const { values, positionals } = parseArgs({ allowPositionals: true, options: { data: { type: 'string', default: 'data/bench' }, n: { type: 'string', default: '100' } } });
const from = positionals[0];
if (!from) throw new Error('usage: npx tsx experiments/own_answers.ts STAGE_RUN_DIR [--data DIR] [--n SENTENCES]');
await initBackend({ quiet: true });
const { model, tokenizer } = loadStageModel(from);
const side = model.config.imageSize;
const xywh = (b: Box) => inputBoxToOriginal(b, side, side, side);
console.log('family\tsplit\tsentences\tbox Acc@0.5');
for (const family of TRAIN_FAMILIES) {
  for (const split of ['train', 'val']) {
    // the first sentences of the split, as stage 1's pool takes them (poolPerFamily)
    const exs = await loadExamples(values.data, family, split, { imageSize: side, limit: Number(values.n), allSentences: split === 'train', quiet: true });
    const answers = greedyAnswers(model, tokenizer, exs, { batchSize: 32 });
    const hits = answers.filter((a, i) => {
      const box = parseBox(a);
      return boxHit(box && xywh(box), xywh(exs[i]!.box));
    }).length;
    console.log(`${family}\t${split}\t${exs.length}\t${(hits / exs.length).toFixed(2)}`);
  }
}
model.dispose();
