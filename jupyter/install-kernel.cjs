#!/usr/bin/env node
/**
 * `npm run kernel`: registers the "TypeScript (lens-ts)" Jupyter kernel for this checkout.
 *
 * `jupyter kernelspec install` COPIES a spec folder, so the in-repo spec
 * (jupyter/kernels/lens-ts, whose argv uses {resource_dir}) would point at the copy,
 * not at this checkout. So this writes a kernel.json whose argv names, by absolute
 * path, the Node running this script and this checkout's launcher
 * (jupyter/kernels/lens-ts/launch.cjs, which chdirs to the root and starts the
 * project's tslab), and installs that with Jupyter's own command. Run it again
 * after moving the checkout.
 *
 * Usage: npm run kernel [-- --user | --sys-prefix | --prefix DIR] [-- --print]
 *   default --user; --print only prints the kernel.json. Jupyter is `$JUPYTER` if
 *   set, else `jupyter` on PATH, else Debian's under /usr/bin/python3.
 */
'use strict';
const { spawnSync } = require('node:child_process');
const { mkdtempSync, rmSync, writeFileSync, existsSync } = require('node:fs');
const { tmpdir } = require('node:os');
const { join, resolve } = require('node:path');

const NAME = 'lens-ts';
const root = resolve(__dirname, '..');
const launcher = join(root, 'jupyter', 'kernels', NAME, 'launch.cjs');

function usage(msg) {
  process.stderr.write(`${msg}\nusage: npm run kernel [-- --user | --sys-prefix | --prefix DIR] [-- --print]\n`);
  process.exit(2);
}

const args = process.argv.slice(2);
let where = ['--user'];
let printOnly = false;
for (let i = 0; i < args.length; i++) {
  const a = args[i];
  if (a === '--print') printOnly = true;
  else if (a === '--user' || a === '--sys-prefix') where = [a];
  else if (a === '--prefix') {
    if (!args[i + 1]) usage('--prefix: expected a folder');
    where = ['--prefix', resolve(args[++i])];
  } else usage(`unknown option ${JSON.stringify(a)}`);
}

const spec = {
  argv: [process.execPath, launcher, '{connection_file}'],
  display_name: 'TypeScript (lens-ts)',
  language: 'typescript',
  interrupt_mode: 'signal',
  metadata: { debugger: false, 'lens-ts': { checkout: root } },
};
if (printOnly) {
  process.stdout.write(`${JSON.stringify(spec, null, 2)}\n`);
  process.exit(0);
}
if (!existsSync(join(root, 'node_modules', 'tslab'))) usage(`${join(root, 'node_modules', 'tslab')} is missing: run \`npm install\` first`);

/**
 * The command that takes `install ...` for kernel specs: `$JUPYTER kernelspec`,
 * `jupyter kernelspec` where it works, else Debian's jupyter_client module under
 * /usr/bin/python3 (Debian's `jupyter` has no `kernelspec` subcommand).
 */
function kernelspecCommand() {
  const works = (cmd) => spawnSync(cmd[0], [...cmd.slice(1), 'list'], { stdio: 'ignore' }).status === 0;
  if (process.env.JUPYTER) return [...process.env.JUPYTER.split(' ').filter(Boolean), 'kernelspec'];
  for (const cmd of [['jupyter', 'kernelspec'], ['/usr/bin/python3', '-m', 'jupyter_client.kernelspecapp']]) if (works(cmd)) return cmd;
  usage('no Jupyter found: install JupyterLab (or set JUPYTER to its jupyter command, e.g. JUPYTER=/opt/conda/bin/jupyter)');
  return [];
}

const dir = mkdtempSync(join(tmpdir(), `${NAME}-kernel-`));
try {
  writeFileSync(join(dir, 'kernel.json'), `${JSON.stringify(spec, null, 2)}\n`);
  const [cmd, ...pre] = kernelspecCommand();
  const res = spawnSync(cmd, [...pre, 'install', ...where, '--replace', '--name', NAME, dir], { stdio: 'inherit' });
  if (res.status !== 0) {
    process.stderr.write(`kernel registration failed: \`${[cmd, ...pre].join(' ')} install\` exited with ${res.status ?? res.signal}\n`);
    process.exit(1);
  }
  process.stdout.write(`registered kernel "${spec.display_name}" (name ${NAME}) -> ${launcher}\n`);
} finally {
  rmSync(dir, { recursive: true, force: true });
}
