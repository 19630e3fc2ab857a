/**
 * The environment report of notebook 00 (setup): versions of the runtime and of
 * the packages the project runs on, and a matmul speed probe of the active tfjs
 * backend (BatchMatMul dominates training time here: DESIGN.md "Compute").
 */
import { cpus, totalmem } from 'node:os';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import * as tf from '@tensorflow/tfjs-core';
import { projectRoot } from '../util/paths';

/** Packages whose versions notebook 00 reports. */
export const REPORTED_PACKAGES = [
  '@tensorflow/tfjs-core', '@tensorflow/tfjs-backend-wasm', '@tensorflow/tfjs-backend-cpu', '@tensorflow/tfjs-backend-webgpu',
  'apache-arrow', 'sharp', 'tslab', 'typescript',
] as const;

/**
 * Installed version of each package, read from node_modules/<name>/package.json
 * in the project root (not through require: packages with an `exports` map, e.g.
 * apache-arrow, do not export their package.json), or 'not installed'.
 */
export function packageVersions(names: readonly string[] = REPORTED_PACKAGES): Record<string, string> {
  const out: Record<string, string> = {};
  for (const name of names) {
    try {
      out[name] = (JSON.parse(readFileSync(join(projectRoot(), 'node_modules', name, 'package.json'), 'utf8')) as { version: string }).version;
    } catch {
      out[name] = 'not installed';
    }
  }
  return out;
}

/** Node, platform, CPU and memory in one record. */
export function runtimeInfo(): Record<string, string> {
  const c = cpus();
  return {
    node: process.version,
    platform: `${process.platform} ${process.arch}`,
    cpu: `${c.length} x ${c[0]?.model.trim() ?? 'unknown'}`,
    memory: `${(totalmem() / 2 ** 30).toFixed(1)} GiB`,
  };
}

/** One matmul timing: n x n times n x n, median milliseconds and GFLOP/s (2 n^3 flops). */
export interface MatmulTiming {
  n: number;
  ms: number;
  gflops: number;
}

/**
 * Times [n, n] x [n, n] matmuls on the active backend: one warm-up, then the
 * median of `reps` runs, each read back (dataSync) so asynchronous backends are
 * timed to completion. Leaves no tensors behind.
 */
export function matmulTimings(sizes: readonly number[], reps = 5): MatmulTiming[] {
  if (!Number.isInteger(reps) || reps < 1) throw new Error(`matmulTimings: reps must be an integer >= 1, got ${reps}`);
  return sizes.map((n) => {
    if (!Number.isInteger(n) || n < 1) throw new Error(`matmulTimings: sizes must be positive integers, got ${n}`);
    const a = tf.randomUniform([n, n]);
    const b = tf.randomUniform([n, n]);
    const times: number[] = [];
    for (let r = 0; r <= reps; r++) {
      const t0 = performance.now();
      const c = tf.matMul(a, b);
      c.dataSync();
      c.dispose();
      if (r > 0) times.push(performance.now() - t0); // run 0 warms up (kernel setup, allocation)
    }
    a.dispose();
    b.dispose();
    times.sort((x, y) => x - y);
    const ms = times[Math.floor(times.length / 2)]!;
    return { n, ms, gflops: (2 * n ** 3) / (ms * 1e6) };
  });
}
