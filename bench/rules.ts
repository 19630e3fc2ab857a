/**
 * `npm run bench:rules`: measures the model-writing rules of docs/performance.md on
 * the accelerated wasm backend, each as an A/B pair interleaved step by step (the
 * machine is shared; see the load average printed first). Prints median and min ms
 * of forward + backward (or a full training step) for each side.
 *
 * 1. separate Q / K / V projections + rank-4 head transposes vs one fused qkv
 *    projection split with a rank-5 transpose (nanoGPT's c_attn);
 * 2. GELU as x * sigmoid(1.702 x) vs the tanh approximation;
 * 3. Adam: the fused update (src/accel/adam.ts) vs tf.train.adam;
 * 4. Identity / same-dtype Cast sharing the input buffer vs copying it;
 * 5. layer norm as the fused op (src/accel/layernorm.ts) vs the composite of
 *    src/model/nn.ts, alone and inside the whole reference step;
 * 6. the Tile / broadcastTo gradient (src/accel/tile-grad.ts) vs tfjs-core's slice-per-tile
 *    one, on a stage-0a step of the quick preset's mini-SAM (box prompts, batch 8).
 */
import * as tf from '@tensorflow/tfjs-core';
import { loadavg } from 'node:os';
import { parseArgs } from 'node:util';
import { adam, layerNorm, setWasmAccel, stockKernel, wasmAccelStatus } from '../src/accel';
import { useTileGradient } from '../src/accel/tile-grad';
import { initBackend } from '../src/backend';
import { buildLens } from '../src/model/presets';
import { Attention, LayerNorm, Linear, quickGelu } from '../src/model/nn';
import { Rng } from '../src/random';
import { buildRefStep, DEFAULT_REF_STEP, RefNet } from './reference-step';

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 ? s[m] : (s[m - 1] + s[m]) / 2;
}

/** Interleaves a and b `reps` times after one warm-up each; returns their times. */
function ab(reps: number, a: () => void, b: () => void): [number[], number[]] {
  a();
  b();
  const ta: number[] = [];
  const tb: number[] = [];
  for (let i = 0; i < reps; i++) {
    for (const [f, t] of [[a, ta], [b, tb]] as const) {
      const s = performance.now();
      f();
      t.push(performance.now() - s);
    }
  }
  return [ta, tb];
}

function report(rule: string, labels: [string, string], [ta, tb]: [number[], number[]]): void {
  const [ma, mb] = [median(ta), median(tb)];
  console.log(`\n${rule}`);
  console.log(`  ${labels[0].padEnd(46)} median ${ma.toFixed(1).padStart(7)} ms  min ${Math.min(...ta).toFixed(1).padStart(7)} ms`);
  console.log(`  ${labels[1].padEnd(46)} median ${mb.toFixed(1).padStart(7)} ms  min ${Math.min(...tb).toFixed(1).padStart(7)} ms   (${(mb / ma).toFixed(2)}x)`);
}

/** Time of value + gradients of sum(f(x)^2) w.r.t. `vars`, synchronised by reading the value. */
function fwdBwd(f: () => tf.Tensor, vars: tf.Variable[]): () => void {
  return () => {
    const { value, grads } = tf.variableGrads(() => tf.sum(tf.square(f())) as tf.Scalar, vars);
    value.dataSync();
    tf.dispose([value, ...Object.values(grads)]);
  };
}

/** nanoGPT-style attention: one qkv projection, heads split by a rank-5 transpose. */
class FusedQkvAttention {
  readonly qkv: Linear;
  readonly out: Linear;
  constructor(readonly dim: number, readonly heads: number, rng: Rng) {
    this.qkv = new Linear(dim, 3 * dim, rng);
    this.out = new Linear(dim, dim, rng);
  }
  apply(x: tf.Tensor3D, bias: tf.Tensor): tf.Tensor3D {
    const [b, n, c] = x.shape;
    const hs = c / this.heads;
    const qkv = tf.transpose(tf.reshape(this.qkv.apply(x), [b, n, 3, this.heads, hs]), [2, 0, 3, 1, 4]); // [3, B, H, N, hs]
    const [q, k, v] = tf.unstack(qkv) as tf.Tensor4D[];
    const y = Attention.sdpa(q, k, v, bias); // [B, H, N, hs]
    return this.out.apply(tf.reshape(tf.transpose(y, [0, 2, 1, 3]), [b, n, c]));
  }
  parameters(): tf.Variable[] {
    return [...this.qkv.parameters(), ...this.out.parameters()];
  }
}

/** GELU, tanh approximation (GPT-2): 0.5 x (1 + tanh(sqrt(2/pi) (x + 0.044715 x^3))). */
function geluTanh(x: tf.Tensor): tf.Tensor {
  const inner = tf.mul(tf.add(x, tf.mul(tf.pow(x, 3), 0.044715)), Math.sqrt(2 / Math.PI));
  return tf.mul(tf.mul(x, 0.5), tf.add(tf.tanh(inner), 1));
}

async function main(argv: string[]): Promise<number> {
  const { values } = parseArgs({ args: argv, options: { reps: { type: 'string' } } });
  const reps = values.reps ? Number(values.reps) : 5;
  await initBackend({ name: 'wasm' });
  if (!wasmAccelStatus()?.native) {
    console.log(`rules: the native kernels are not available (${wasmAccelStatus()?.detail}); the rules are measured on them`);
    return 1;
  }
  setWasmAccel(true);
  console.log(`load average ${loadavg().map((l) => l.toFixed(2)).join(' ')}; ${reps} interleaved repetitions per side`);
  const { batch, tokens, width, heads, mlpRatio } = DEFAULT_REF_STEP;
  const rng = new Rng(1);
  const x = tf.randomNormal([batch, tokens, width], 0, 1, 'float32', 1) as tf.Tensor3D;
  const bias = tf.zeros([tokens, tokens]);

  // 1. attention projections
  const sep = new Attention(width, heads, rng);
  const fused = new FusedQkvAttention(width, heads, rng);
  report(
    '1. attention, forward + backward, [16, 192, 128], 4 heads',
    ['separate q / k / v, rank-4 transposes (rule)', 'fused qkv, rank-5 transpose'],
    ab(reps, fwdBwd(() => sep.apply(x, x, x, bias), sep.parameters()), fwdBwd(() => fused.apply(x, bias), fused.parameters())),
  );

  // 2. GELU form
  const fc = new Linear(width, width * mlpRatio, rng);
  report(
    `2. Linear ${width}->${width * mlpRatio} + GELU, forward + backward`,
    ['quick-GELU x*sigmoid(1.702x) (rule)', 'tanh GELU'],
    ab(reps, fwdBwd(() => quickGelu(fc.apply(x)), fc.parameters()), fwdBwd(() => geluTanh(fc.apply(x)), fc.parameters())),
  );

  // 3. Adam
  const netA = new RefNet(DEFAULT_REF_STEP, new Rng(2));
  const netB = new RefNet(DEFAULT_REF_STEP, new Rng(2));
  const causal = tf.zeros([tokens, tokens]);
  const target = tf.randomNormal([batch, tokens, width], 0, 1, 'float32', 2);
  const optA = adam(1e-3, 0.9, 0.999, 1e-8);
  const optB = tf.train.adam(1e-3, 0.9, 0.999, 1e-8);
  const trainStep = (net: RefNet, opt: tf.Optimizer) => () => {
    const c = opt.minimize(() => tf.mean(tf.squaredDifference(net.apply(x, causal), target)) as tf.Scalar, true, net.trainableParameters());
    c?.dataSync();
    c?.dispose();
  };
  report('3. reference training step, optimiser', ['fused Adam, src/accel (rule)', 'tf.train.adam'], ab(reps, trainStep(netA, optA), trainStep(netB, optB)));

  // 4. buffer sharing for Identity / Cast
  const step = buildRefStep(DEFAULT_REF_STEP, 3);
  const copying = ['Identity', 'Cast'].map((name) => ({ kernelName: name, backendName: 'wasm', kernelFunc: stockKernel(name)! }));
  const sharing = ['Identity', 'Cast'].map((name) => tf.getKernel(name, 'wasm')!);
  const use = (configs: tf.KernelConfig[]) => {
    for (const c of configs) {
      tf.unregisterKernel(c.kernelName, 'wasm');
      tf.registerKernel(c);
    }
  };
  const times = ab(
    reps,
    () => {
      use(sharing);
      step.run();
    },
    () => {
      use(copying);
      step.run();
    },
  );
  use(sharing);
  report('4. reference training step, Identity / Cast', ['share the input buffer (accelerated default)', 'copy (stock)'], times);

  // 5. layer norm
  const ln = new LayerNorm(width);
  report(
    `5a. layer norm [${batch}, ${tokens}, ${width}], forward + backward`,
    ['fused layerNorm (src/accel)', 'composite (src/model/nn.ts LayerNorm)'],
    ab(reps, fwdBwd(() => layerNorm(x, ln.gamma, ln.beta, ln.eps), ln.parameters()), fwdBwd(() => ln.apply(x), ln.parameters())),
  );
  const composite = LayerNorm.prototype.apply;
  const fusedApply = function (this: LayerNorm, t: tf.Tensor) {
    return layerNorm(t, this.gamma, this.beta, this.eps);
  } as typeof composite;
  const stepLn = buildRefStep(DEFAULT_REF_STEP, 4);
  const lnTimes = ab(
    reps,
    () => {
      LayerNorm.prototype.apply = fusedApply;
      stepLn.run();
    },
    () => {
      LayerNorm.prototype.apply = composite;
      stepLn.run();
    },
  );
  LayerNorm.prototype.apply = composite;
  report('5b. reference training step, LayerNorm', ['fused layerNorm in every LayerNorm', 'composite (as src/model/nn.ts today)'], lnTimes);
  ln.dispose();
  stepLn.dispose();

  // 6. the Tile / broadcastTo gradient, on the mini-SAM (its no-mask embedding is broadcast to [B, h, w, C])
  const lens = buildLens('quick');
  const samVars = lens.setStage('stage0a');
  const side = lens.config.imageSize;
  const images = tf.randomUniform([8, side, side, 3], 0, 1, 'float32', 2) as tf.Tensor4D;
  const boxes = tf.tensor2d(Array.from({ length: 8 }, (_, i) => [4 + i, 6, 30 + i, 40]));
  const samStep = fwdBwd(() => lens.sam.apply(images, { boxes }).masks, samVars);
  report(
    '6. stage-0a step of the quick mini-SAM (box prompts, batch 8), forward + backward',
    ['reshape + sum per tiled axis (src/accel)', "tfjs-core's one slice per tile"],
    ab(
      reps,
      () => {
        useTileGradient(true);
        samStep();
      },
      () => {
        useTileGradient(false);
        samStep();
      },
    ),
  );
  useTileGradient(true);
  tf.dispose([images, boxes]);
  lens.dispose();

  tf.dispose([x, bias, causal, target]);
  for (const m of [sep, fc, netA, netB]) m.dispose();
  tf.dispose(fused.parameters());
  optA.dispose();
  optB.dispose();
  step.dispose();
  return 0;
}

main(process.argv.slice(2)).then(
  (code) => {
    process.exitCode = code;
  },
  (e: unknown) => {
    console.error(`rules: ${(e as Error).message}`);
    process.exitCode = 1;
  },
);
