/**
 * `lens export --preset NAME --out FILE`: writes an initialised LENS model (or one
 * component) as safetensors with its resolved config in the metadata, and prints
 * the parameter count of every part. `--bench` also times a forward pass and a
 * stage-2 train step on the active backend (the README's per-preset table).
 */
import { readFileSync } from 'node:fs';
import * as tf from '@tensorflow/tfjs-core';
import { initBackend } from '../backend';
import { syntheticLensBatch, type LensModel } from '../model/lens';
import { segLoss, tokenCrossEntropy } from '../model/losses';
import { LENS_COMPONENTS, PRESET_NAMES, buildLens, saveComponent, saveLens, type LensComponent, type LensConfigDelta, type PresetName } from '../model/presets';
import { upsampleMaskLogits } from '../model/sam/mask_decoder';
import { parseFlags, UsageError } from './errors';

const HELP = `usage: lens export --preset NAME --out FILE [options]

Writes an initialised model as safetensors (config in the metadata).

options:
  --preset NAME       ${PRESET_NAMES.join(' | ')} (default quick)
  --out FILE          output .safetensors file (required unless --bench alone)
  --config FILE       JSON config delta applied on top of the preset
  --vocab-size N      MLLM vocabulary size (= the fitted tokenizer's size)
  --seed N            initialisation seed (default 0)
  --component NAME    write only one part: ${LENS_COMPONENTS.join(' | ')}
  --bench             time a forward pass and a stage-2 train step (batch --batch)
  --batch N           batch size for --bench (default 2)
  -h, --help          this text`;

function int(flag: string, v: string | undefined, dflt: number, min: number): number {
  if (v === undefined) return dflt;
  const n = Number(v);
  if (!Number.isInteger(n) || n < min) throw new UsageError(`--${flag}: expected an integer >= ${min}, got '${v}'`);
  return n;
}

/** Median wall time of `f` over `reps` runs after one warm-up run, in ms. */
async function timeIt(f: () => Promise<void>, reps: number): Promise<number> {
  await f();
  const ts: number[] = [];
  for (let i = 0; i < reps; i++) {
    const t0 = performance.now();
    await f();
    ts.push(performance.now() - t0);
  }
  ts.sort((a, b) => a - b);
  return ts[Math.floor(ts.length / 2)]!;
}

async function bench(model: LensModel, batchSize: number): Promise<void> {
  const batch = syntheticLensBatch(model.config, { batch: batchSize, promptLength: 48, answerLength: 48 });
  const s = model.config.sam.imageSize;
  const fwd = await timeIt(async () => {
    const out = model.forward(batch);
    await out.masks.data();
    tf.dispose(out);
  }, 3);
  console.log(`forward (batch ${batchSize}, T ${batch.tokens.shape[1]}): ${fwd.toFixed(1)} ms`);
  const vars = model.setStage('stage2');
  const opt = tf.train.adam(1e-4);
  try {
    const step = await timeIt(async () => {
      const loss = opt.minimize(
        () =>
          tf.tidy(() => {
            const o = model.forward(batch);
            const [b, t] = batch.tokens.shape;
            const ce = tokenCrossEntropy(
              tf.slice(o.logits, [0, 0, 0], [b, t - 1, -1]) as tf.Tensor3D,
              tf.slice(batch.tokens, [0, 1], [b, t - 1]) as tf.Tensor2D,
              tf.ones([b, t - 1]) as tf.Tensor2D,
            );
            return tf.add(ce, segLoss(upsampleMaskLogits(o.masks, s, s), batch.labels)) as tf.Scalar;
          }),
        true,
        vars,
      );
      await loss!.data();
      loss!.dispose();
    }, 3);
    console.log(`train step (stage 2, Adam): ${step.toFixed(1)} ms`);
  } catch (e) {
    console.log(`train step (stage 2, Adam): n/a (${(e as Error).message})`);
  } finally {
    opt.dispose();
    tf.dispose(batch);
  }
}

export async function run(argv: string[]): Promise<number> {
  const { values } = parseFlags(argv, {
        preset: { type: 'string' },
        out: { type: 'string' },
        config: { type: 'string' },
        'vocab-size': { type: 'string' },
        seed: { type: 'string' },
        component: { type: 'string' },
        bench: { type: 'boolean' },
        batch: { type: 'string' },
        help: { type: 'boolean', short: 'h' },
      }, HELP);
  if (values.help) {
    console.log(HELP);
    return 0;
  }
  const preset = (values.preset ?? 'quick') as PresetName;
  if (!(PRESET_NAMES as readonly string[]).includes(preset)) throw new UsageError(`--preset: expected one of ${PRESET_NAMES.join(', ')}, got '${preset}'`);
  if (!values.out && !values.bench) throw new UsageError('--out FILE is required');
  const component = values.component as LensComponent | undefined;
  if (component !== undefined && !(LENS_COMPONENTS as readonly string[]).includes(component)) {
    throw new UsageError(`--component: expected one of ${LENS_COMPONENTS.join(', ')}, got '${component}'`);
  }
  let delta: LensConfigDelta = {};
  if (values.config) {
    try {
      delta = JSON.parse(readFileSync(values.config, 'utf8')) as LensConfigDelta;
    } catch (e) {
      throw new UsageError(`--config ${values.config}: cannot read a JSON object (${(e as Error).message})`);
    }
  }
  if (values['vocab-size'] !== undefined) delta = { ...delta, mllm: { ...delta.mllm, vocabSize: int('vocab-size', values['vocab-size'], 0, 16) } };
  const seed = int('seed', values.seed, 0, 0);
  const batchSize = int('batch', values.batch, 2, 1);

  const backend = await initBackend();
  const model = buildLens({ ...delta, preset }, { seed });
  try {
    console.log(`preset ${preset}, seed ${seed}, backend ${backend.name}`);
    for (const name of LENS_COMPONENTS) console.log(`  ${name.padEnd(10)} ${model[name].numParams().toLocaleString('en-US').padStart(12)} parameters`);
    console.log(`  ${'total'.padEnd(10)} ${model.numParams().toLocaleString('en-US').padStart(12)} parameters`);
    if (values.out) {
      if (component) saveComponent(model, component, values.out, { seed: String(seed) });
      else saveLens(model, values.out, { seed: String(seed) });
      console.log(`wrote ${values.out}${component ? ` (component ${component})` : ''}`);
    }
    if (values.bench) await bench(model, batchSize);
  } finally {
    model.dispose();
  }
  return 0;
}
