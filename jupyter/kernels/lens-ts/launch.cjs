#!/usr/bin/env node
/**
 * Starts the project's own tslab kernel in the project root.
 *
 * Why a launcher: Jupyter starts a kernel with its working directory set to the
 * notebook's folder (notebooks/), but tslab resolves `./src/...` imports only
 * from its working directory (it ignores tsconfig.json), so the kernel must run
 * in the checkout's root. The root is found from this file's place in the
 * checkout (jupyter/kernels/lens-ts/launch.cjs), which holds both for the in-repo
 * spec (JUPYTER_PATH=<repo>/jupyter, where {resource_dir} is this folder) and for
 * the spec `npm run kernel` registers (its argv names this file by absolute path).
 *
 * Usage (from kernel.json): node launch.cjs <connection_file>
 */
'use strict';
const { existsSync } = require('node:fs');
const { join, resolve } = require('node:path');

const root = resolve(__dirname, '..', '..', '..');
const connectionFile = process.argv[2];
if (!connectionFile) {
  process.stderr.write('lens-ts kernel: usage: node launch.cjs <connection_file> (Jupyter fills it in from kernel.json)\n');
  process.exit(2);
}
const tslabMain = join(root, 'node_modules', 'tslab', 'dist', 'main.js');
if (!existsSync(tslabMain)) {
  process.stderr.write(`lens-ts kernel: ${tslabMain} not found: run \`npm install\` in ${root} first\n`);
  process.exit(1);
}
const configPath = resolve(connectionFile); // before chdir: Jupyter may pass a relative path
process.chdir(root);
// tslab's own entry point for Jupyter (`tslab kernel --config-path FILE`), called
// in this process so that Jupyter's interrupt signal (SIGINT) reaches tslab.
require(tslabMain).startKernel({ configPath });
