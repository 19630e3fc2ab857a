#!/usr/bin/env node
/**
 * Builds the native kernels for the wasm backend (native/lens_accel.c -> build/Release/
 * lens_accel.node; issue #3, docs/performance.md). Run by `npm install` (the package's
 * `install` script) and by `npm run build:native`.
 *
 * It never fails the install: without a C compiler, OpenBLAS (libopenblas-dev) or
 * Node's headers it prints ONE line saying so and how to fix it, and exits 0; the
 * project then runs on the stock wasm kernels (src/backend.ts reports which).
 *
 * Environment:
 *   LENS_NATIVE_SKIP=1             do not build (prints the line, exits 0)
 *   LENS_NATIVE_PRETEND_NO_BLAS=1  behave as if OpenBLAS were missing (tests the fallback path)
 *   LENS_NATIVE_STRICT=1           exit 1 instead of 0 when the build fails (CI of this addon)
 */
import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, rmSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = resolve(dirname(fileURLToPath(import.meta.url)), '..');
const logPath = join(root, 'build', 'native-build.log');
const FIX = 'to fix: apt-get install libopenblas-dev, then npm run build:native';

function stock(why) {
  console.log(`[lens] native kernels not built (${why}): the wasm backend will use its stock kernels, ~30x slower to train; ${FIX}`);
  process.exit(process.env.LENS_NATIVE_STRICT === '1' ? 1 : 0);
}

function writeLog(text) {
  mkdirSync(dirname(logPath), { recursive: true });
  writeFileSync(logPath, text);
}

if (process.env.LENS_NATIVE_SKIP === '1') stock('LENS_NATIVE_SKIP=1');

// 1. A C compiler that finds cblas.h and links -lopenblas: the same test the real build needs.
const cc = process.env.CC || 'cc';
const probe = '#include <cblas.h>\nint main(void){float a=1,b=1,c=0;cblas_sgemm(CblasRowMajor,CblasNoTrans,CblasNoTrans,1,1,1,1.f,&a,1,&b,1,0.f,&c,1);return c==1.f?0:1;}\n';
const probeOut = join(root, 'build', 'cblas-probe');
mkdirSync(dirname(probeOut), { recursive: true });
const blasLib = process.env.LENS_NATIVE_PRETEND_NO_BLAS === '1' ? 'lens-pretend-missing-openblas' : 'openblas';
const cc1 = spawnSync(cc, ['-x', 'c', '-', '-o', probeOut, `-l${blasLib}`], { input: probe, encoding: 'utf8' });
rmSync(probeOut, { force: true });
if (cc1.error) stock(`no C compiler '${cc}' (apt-get install build-essential)`);
if (cc1.status !== 0) {
  writeLog(cc1.stderr);
  const noHeader = /cblas\.h/.test(cc1.stderr);
  stock(noHeader ? 'OpenBLAS headers (cblas.h) not found' : 'OpenBLAS library (-lopenblas) not found');
}

// 2. node-gyp: npm's own copy (npm sets npm_config_node_gyp for lifecycle scripts), else the one beside npm.
function findNodeGyp() {
  const candidates = [process.env.npm_config_node_gyp];
  if (process.env.npm_execpath) candidates.push(join(dirname(process.env.npm_execpath), '..', 'node_modules', 'node-gyp', 'bin', 'node-gyp.js'));
  candidates.push(join(dirname(process.execPath), '..', 'lib', 'node_modules', 'npm', 'node_modules', 'node-gyp', 'bin', 'node-gyp.js'));
  try {
    const req = createRequire(join(root, 'package.json'));
    candidates.push(req.resolve('node-gyp/bin/node-gyp.js'));
  } catch {
    // not installed locally: the npm copies above are the usual source
  }
  return candidates.find((p) => p && existsSync(p)) ?? null;
}
const gyp = findNodeGyp();
if (!gyp) stock("node-gyp not found (it ships with npm; reinstall npm or run 'npm install -g node-gyp')");

// 3. Node's headers: the installed ones when present (Debian's nodejs puts them under /usr/include/node),
//    so the build needs no download.
const args = [gyp, 'rebuild'];
const prefix = resolve(dirname(process.execPath), '..');
if (existsSync(join(prefix, 'include', 'node', 'node_api.h'))) args.push(`--nodedir=${prefix}`);
const build = spawnSync(process.execPath, args, { cwd: root, encoding: 'utf8' });
writeLog(`${build.stdout ?? ''}\n${build.stderr ?? ''}`);
if (build.error || build.status !== 0) {
  const last = `${build.stderr ?? ''}`.split('\n').filter((l) => /error/i.test(l)).slice(-1)[0]?.trim();
  stock(`node-gyp failed${last ? `: ${last.slice(0, 160)}` : ''}; log in build/native-build.log`);
}

// 4. It must load here, or the runtime would silently fall back.
const addonPath = join(root, 'build', 'Release', 'lens_accel.node');
try {
  const addon = createRequire(join(root, 'package.json'))(addonPath);
  const info = addon.info();
  console.log(`[lens] native kernels built: ${info.blas.split(' ').slice(0, 2).join(' ')}, ${info.poolThreads} threads (${addonPath})`);
} catch (e) {
  stock(`built but does not load: ${String(e.message).split('\n')[0]}`);
}
