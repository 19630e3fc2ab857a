/**
 * Locating the project root without `import.meta` (tslab compiles imported files
 * to CommonJS, where `import.meta` is a syntax error): walk up from the working
 * directory, then from the script being run, to the package.json named lens-ts.
 */
import { existsSync, readFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';

function findUp(start: string): string | null {
  let dir = resolve(start);
  for (;;) {
    const pkg = join(dir, 'package.json');
    if (existsSync(pkg)) {
      try {
        if ((JSON.parse(readFileSync(pkg, 'utf8')) as { name?: string }).name === 'lens-ts') return dir;
      } catch {
        // an unreadable package.json on the way up is not ours; keep walking
      }
    }
    const parent = dirname(dir);
    if (parent === dir) return null;
    dir = parent;
  }
}

let cached: string | null = null;

/** Absolute path of the lens-ts checkout. */
export function projectRoot(): string {
  cached ??= findUp(process.cwd()) ?? (process.argv[1] ? findUp(dirname(process.argv[1])) : null);
  if (!cached) throw new Error(`cannot find the lens-ts project root above ${process.cwd()}: run from inside the checkout`);
  return cached;
}
