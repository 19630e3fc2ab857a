/**
 * `npx tsx bench/fused-ops.ts [--reps N]`: what the fused model-level ops (src/accel/layernorm.ts,
 * src/accel/quick-gelu.ts) buy on the reference step of `npm run bench` (bench/reference-step.ts),
 * side by side in one process: each round runs the step with every fused op registered, then with
 * one pair of kernels removed (the op then runs as its composite of stock-replacing kernels).
 * Prints min / median ms per variant and each variant's median over the all-fused one.
 * Needs the native kernels (wasm backend); see docs/performance.md.
 */
import * as tf from '@tensorflow/tfjs-core';
import { cpus, loadavg } from 'node:os';
import { parseArgs } from 'node:util';
import { LAYER_NORM_GRAD_KERNEL, LAYER_NORM_KERNEL, QUICK_GELU_GRAD_KERNEL, QUICK_GELU_KERNEL } from '../src/accel';
import { initBackend } from '../src/backend';
import { buildRefStep } from './reference-step';

const { values } = parseArgs({ options: { reps: { type: 'string', default: '11' } } });
const reps = Number(values.reps);
if (!Number.isInteger(reps) || reps < 1) throw new Error(`--reps: expected a positive integer, got ${values.reps}`);

const info = await initBackend({ name: 'wasm' });
const pairs = { 'quick-GELU': [QUICK_GELU_KERNEL, QUICK_GELU_GRAD_KERNEL], 'layer norm': [LAYER_NORM_KERNEL, LAYER_NORM_GRAD_KERNEL] };
const configs = new Map(Object.values(pairs).flat().map((k) => [k, tf.getKernel(k, 'wasm')]));
const missing = [...configs].filter(([, c]) => !c).map(([k]) => k);
if (missing.length > 0) throw new Error(`fused kernels not registered (${missing.join(', ')}): ${info.detail}`);

/** Registers every fused kernel but those of `off`. */
function only(off: readonly string[]): void {
  for (const [name, config] of configs) {
    if (tf.getKernel(name, 'wasm')) tf.unregisterKernel(name, 'wasm');
    if (!off.includes(name)) tf.registerKernel(config!);
  }
}

const variants: Array<{ name: string; off: readonly string[]; times: number[] }> = [
  { name: 'all fused', off: [], times: [] },
  ...Object.entries(pairs).map(([op, kernels]) => ({ name: `without fused ${op}`, off: kernels, times: [] as number[] })),
];
console.log(`machine: ${cpus().length} cores (${cpus()[0]?.model ?? '?'}), load average ${loadavg().map((l) => l.toFixed(2)).join(' ')}`);
const step = buildRefStep();
try {
  for (let r = 0; r <= reps; r++) {
    for (const v of variants) {
      only(v.off);
      const t = performance.now();
      step.run();
      if (r > 0) v.times.push(performance.now() - t); // round 0 warms every variant up
    }
  }
} finally {
  only([]);
  step.dispose();
}
const median = (a: number[]) => [...a].sort((x, y) => x - y)[a.length >> 1]!;
const base = median(variants[0]!.times);
for (const v of variants) {
  console.log(`${v.name.padEnd(26)} min ${Math.min(...v.times).toFixed(1)} ms, median ${median(v.times).toFixed(1)} ms, x${(median(v.times) / base).toFixed(3)} of all fused`);
}
