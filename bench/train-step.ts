/**
 * `npm run bench`: the reference training step of issue #3 (bench/reference-step.ts)
 * under stock wasm kernels, the native-accelerated wasm kernels, and PyTorch CPU
 * (bench/torch_step.py, a live subprocess), interleaved step by step in one run so
 * load from other processes hits every variant alike. Prints min and median ms per
 * step and GFLOP/s per variant, appends every timed step to
 * results/bench/train-step.arrow, and ends with `ratio_vs_pytorch=<accelerated
 * median / PyTorch median>`. `--profile` adds a per-kernel profile of the
 * accelerated step. See docs/performance.md.
 */
import * as tf from '@tensorflow/tfjs-core';
import { tableFromArrays, tableFromIPC, tableToIPC } from 'apache-arrow';
import { spawn, spawnSync, type ChildProcessWithoutNullStreams } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { cpus, loadavg } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { parseArgs } from 'node:util';
import { setWasmAccel, wasmAccelStatus } from '../src/accel';
import { initBackend } from '../src/backend';
import { writeFileAtomic } from '../src/util/fs';
import { projectRoot } from '../src/util/paths';
import { registerGradients } from './gradients';
import { buildRefStep, DEFAULT_REF_STEP, refStepFlops, type RefStep } from './reference-step';

const HELP = `usage: npm run bench -- [options]
  --reps N           timed steps per fast variant (default 7)
  --stock-reps N     timed steps of the stock wasm variant, ~9 s each (default 3; 0 skips it)
  --warmup N         untimed steps per variant first (default 1, at least 1)
  --torch-threads N  torch.set_num_threads for the PyTorch peer (default 1)
  --blas-threads N   OPENBLAS_NUM_THREADS for the PyTorch peer and the addon (default 2)
  --no-torch         skip the PyTorch peer
  --profile          per-kernel profile of the accelerated step
  --out DIR          where the Arrow file goes (default results/bench)`;

interface Variant {
  name: string;
  /** Runs one step; returns its wall time in ms (PyTorch reports its own). */
  step(): Promise<number>;
  reps: number;
  times: number[];
}

/** The PyTorch peer as a subprocess speaking bench/torch_step.py's line protocol. */
class TorchPeer {
  private constructor(
    private readonly proc: ChildProcessWithoutNullStreams,
    private readonly lines: AsyncIterator<string>,
    readonly banner: string,
  ) {}

  static async start(python: string, threads: number, blasThreads: number): Promise<TorchPeer> {
    const c = DEFAULT_REF_STEP;
    const script = join(projectRoot(), 'bench', 'torch_step.py');
    const args = [script, c.batch, c.tokens, c.width, c.layers, c.heads, c.mlpRatio, threads].map(String);
    const proc = spawn(python, args, {
      env: { ...process.env, OPENBLAS_NUM_THREADS: String(blasThreads), OMP_NUM_THREADS: String(threads) },
      stdio: ['pipe', 'pipe', 'pipe'],
    });
    let stderr = '';
    proc.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    const lines = createInterface({ input: proc.stdout })[Symbol.asyncIterator]();
    const first = await lines.next();
    if (first.done || !String(first.value).startsWith('ready')) {
      proc.kill();
      throw new Error(`bench/torch_step.py did not start: ${stderr.trim().split('\n').slice(-3).join(' | ') || 'no output'}`);
    }
    return new TorchPeer(proc, lines, String(first.value));
  }

  async step(): Promise<number> {
    this.proc.stdin.write('step\n');
    const r = await this.lines.next();
    const m = /^ms ([\d.]+) loss/.exec(String(r.value ?? ''));
    if (r.done || !m) throw new Error(`bench/torch_step.py: unexpected reply '${String(r.value)}'`);
    return Number(m[1]);
  }

  stop(): void {
    if (this.proc.exitCode !== null) return;
    this.proc.stdin.end('quit\n');
    // a peer stuck mid-step must not keep the benchmark alive
    setTimeout(() => this.proc.kill(), 2000).unref();
  }
}

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 ? s[m] : (s[m - 1] + s[m]) / 2;
}

function int(flag: string, v: string | undefined, def: number): number {
  if (v === undefined) return def;
  const n = Number(v);
  if (!Number.isInteger(n) || n < 0) throw new Error(`bench: --${flag} must be a non-negative integer, got '${v}'`);
  return n;
}

function torchAvailable(python: string): string | null {
  const r = spawnSync(python, ['-c', 'import torch'], { encoding: 'utf8' });
  if (r.error) return `${python} not found`;
  if (r.status !== 0) return `python3-torch is not installed for ${python} (apt-get install python3-torch)`;
  return null;
}

/** Per-kernel profile of one accelerated step: count, total ms, share, sorted by time. */
async function profileStep(step: RefStep): Promise<void> {
  const t0 = performance.now();
  const info = await tf.profile(() => {
    step.run();
  });
  const wall = performance.now() - t0;
  const by = new Map<string, { n: number; ms: number }>();
  const byShape = new Map<string, { n: number; ms: number }>();
  for (const k of info.kernels) {
    const ms = typeof k.kernelTimeMs === 'number' ? k.kernelTimeMs : 0;
    for (const [map, key] of [[by, k.name], [byShape, `${k.name} ${JSON.stringify(k.inputShapes)}`]] as const) {
      const e = map.get(key) ?? { n: 0, ms: 0 };
      e.n++;
      e.ms += ms;
      map.set(key, e);
    }
  }
  const rows = [...by.entries()].sort((a, b) => b[1].ms - a[1].ms);
  const total = rows.reduce((s, [, e]) => s + e.ms, 0);
  console.log(`\nprofile of one accelerated step: ${info.kernels.length} kernel calls, ${total.toFixed(1)} ms in kernels, ${wall.toFixed(1)} ms wall (profiling adds overhead)`);
  console.log(`${'kernel'.padEnd(24)}${'calls'.padStart(7)}${'ms'.padStart(10)}${'share'.padStart(8)}`);
  for (const [name, e] of rows) {
    console.log(`${name.padEnd(24)}${String(e.n).padStart(7)}${e.ms.toFixed(1).padStart(10)}${`${((100 * e.ms) / total).toFixed(1)}%`.padStart(8)}`);
  }
  console.log(`${'(outside kernels)'.padEnd(24)}${''.padStart(7)}${(wall - total).toFixed(1).padStart(10)}`);
  console.log('\nheaviest kernel calls by input shapes:');
  for (const [key, e] of [...byShape.entries()].sort((a, b) => b[1].ms - a[1].ms).slice(0, 15)) {
    console.log(`${e.ms.toFixed(1).padStart(8)} ms ${String(e.n).padStart(4)}x  ${key}`);
  }
}

function appendArrow(path: string, rows: Record<string, Array<string | number>>): void {
  let cols = rows;
  if (existsSync(path)) {
    const old = tableFromIPC(readFileSync(path));
    cols = {};
    for (const [k, v] of Object.entries(rows)) {
      const prev = old.getChild(k);
      const prevValues = prev ? (Array.from(prev.toArray() as ArrayLike<string | number>) as Array<string | number>) : new Array(old.numRows).fill(typeof v[0] === 'number' ? NaN : '');
      cols[k] = [...prevValues, ...v];
    }
  }
  const table = tableFromArrays(
    Object.fromEntries(Object.entries(cols).map(([k, v]) => [k, typeof v[0] === 'number' ? Float64Array.from(v as number[]) : (v as string[])])),
  );
  writeFileAtomic(path, tableToIPC(table, 'file'));
}

async function main(argv: string[]): Promise<number> {
  const { values } = parseArgs({
    args: argv,
    options: {
      reps: { type: 'string' },
      'stock-reps': { type: 'string' },
      warmup: { type: 'string' },
      'torch-threads': { type: 'string' },
      'blas-threads': { type: 'string' },
      'no-torch': { type: 'boolean' },
      profile: { type: 'boolean' },
      out: { type: 'string' },
      help: { type: 'boolean', short: 'h' },
    },
  });
  if (values.help) {
    console.log(HELP);
    return 0;
  }
  const reps = int('reps', values.reps, 7);
  const stockReps = int('stock-reps', values['stock-reps'], 3);
  const warmup = int('warmup', values.warmup, 1);
  const torchThreads = int('torch-threads', values['torch-threads'], 1);
  const blasThreads = int('blas-threads', values['blas-threads'], 2);
  process.env.OPENBLAS_NUM_THREADS ??= String(blasThreads); // read by OpenBLAS when the addon loads

  registerGradients();
  const backend = await initBackend({ name: 'wasm' });
  const accel = wasmAccelStatus();
  const flops = refStepFlops(DEFAULT_REF_STEP);
  console.log(`reference step: ${JSON.stringify(DEFAULT_REF_STEP)}, Adam, MSE; ${(flops / 1e9).toFixed(1)} GFLOP per step`);
  console.log(`machine: ${cpus().length} cores (${cpus()[0]?.model ?? '?'}), load average ${loadavg().map((l) => l.toFixed(2)).join(' ')}`);

  const step = buildRefStep();
  const variants: Variant[] = [];
  if (stockReps > 0) {
    variants.push({
      name: 'wasm-stock',
      reps: stockReps,
      times: [],
      step: async () => {
        setWasmAccel(false);
        const t = performance.now();
        step.run();
        return performance.now() - t;
      },
    });
  }
  if (accel?.native) {
    variants.push({
      name: 'wasm-accel',
      reps,
      times: [],
      step: async () => {
        setWasmAccel(true);
        const t = performance.now();
        step.run();
        return performance.now() - t;
      },
    });
  } else {
    console.log(`wasm-accel: skipped (${accel?.detail ?? 'not registered'})`);
  }
  let torch: TorchPeer | null = null;
  const summary = new Map<string, number>(); // variant -> median ms
  try {
    if (!values['no-torch']) {
      const python = process.env.LENS_PYTHON ?? '/usr/bin/python3';
      const why = torchAvailable(python);
      if (why) console.log(`pytorch: skipped (${why})`);
      else {
        torch = await TorchPeer.start(python, torchThreads, blasThreads);
        console.log(`pytorch: ${torch.banner.replace(/^ready /, 'torch ')} (torch threads ${torchThreads}, OPENBLAS_NUM_THREADS=${blasThreads})`);
        const peer = torch;
        variants.push({ name: 'pytorch', reps, times: [], step: () => peer.step() });
      }
    }

    for (let w = 0; w < Math.max(1, warmup); w++) for (const v of variants) await v.step();
    const before = tf.memory().numTensors; // after warm-up: Adam creates its moment variables on the first step
    const rounds = Math.max(...variants.map((v) => v.reps), 0);
    for (let r = 0; r < rounds; r++) {
      for (const v of variants) if (r < v.reps) v.times.push(await v.step());
      console.log(`round ${r + 1}/${rounds}: ${variants.filter((v) => r < v.reps).map((v) => `${v.name} ${v.times[r].toFixed(0)} ms`).join(', ')}`);
    }
    if (tf.memory().numTensors !== before) throw new Error(`tensor leak, ${tf.memory().numTensors - before} tensors per run`);
    setWasmAccel(true);

    console.log(`\n${'variant'.padEnd(12)}${'steps'.padStart(6)}${'min ms'.padStart(10)}${'median ms'.padStart(11)}${'GFLOP/s'.padStart(9)}`);
    for (const v of variants) {
      if (!v.times.length) continue;
      const med = median(v.times);
      summary.set(v.name, med);
      console.log(`${v.name.padEnd(12)}${String(v.times.length).padStart(6)}${Math.min(...v.times).toFixed(1).padStart(10)}${med.toFixed(1).padStart(11)}${(flops / 1e6 / med).toFixed(1).padStart(9)}`);
    }

    const runId = new Date().toISOString();
    const rows: Record<string, Array<string | number>> = { run: [], variant: [], rep: [], ms: [], gflop: [], load1: [], detail: [] };
    const load1 = loadavg()[0];
    for (const v of variants) {
      v.times.forEach((ms, i) => {
        rows.run.push(runId);
        rows.variant.push(v.name);
        rows.rep.push(i);
        rows.ms.push(ms);
        rows.gflop.push(flops / 1e9);
        rows.load1.push(load1);
        rows.detail.push(v.name === 'pytorch' ? (torch?.banner ?? '') : backend.detail);
      });
    }
    if (rows.run.length) {
      const out = join(values.out ?? join(projectRoot(), 'results', 'bench'), 'train-step.arrow');
      appendArrow(out, rows);
      console.log(`appended ${rows.run.length} timed steps to ${out}`);
    }
    if (values.profile && accel?.native) {
      setWasmAccel(true);
      await profileStep(step);
    }
  } finally {
    torch?.stop();
    step.dispose();
  }

  const a = summary.get('wasm-accel');
  const p = summary.get('pytorch');
  console.log(`ratio_vs_pytorch=${a !== undefined && p !== undefined ? (a / p).toFixed(3) : 'n/a'}`);
  return 0;
}

main(process.argv.slice(2)).then(
  (code) => {
    process.exitCode = code;
  },
  (e: unknown) => {
    console.error(`bench: ${(e as Error).message}`);
    process.exitCode = 1;
  },
);
