/**
 * File writing that never leaves a half-written file behind: write to a temporary
 * file in the same folder, then rename over the target (atomic on POSIX).
 */
import { mkdirSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { dirname, isAbsolute, relative, resolve } from 'node:path';

/** Writes `data` to `path` atomically, creating parent folders. */
export function writeFileAtomic(path: string, data: string | Uint8Array): void {
  mkdirSync(dirname(path), { recursive: true });
  const tmp = `${path}.${process.pid}.${Date.now().toString(36)}.tmp`;
  try {
    writeFileSync(tmp, data);
    renameSync(tmp, path);
  } catch (e) {
    rmSync(tmp, { force: true });
    throw e;
  }
}

/** JSON.stringify + writeFileAtomic, two-space indented, trailing newline. */
export function writeJsonAtomic(path: string, value: unknown): void {
  writeFileAtomic(path, `${JSON.stringify(value, null, 2)}\n`);
}

/**
 * Resolves `name` (taken from an annotation file) under `root`, refusing any name
 * that would escape it (`..`, absolute paths). `where` names the file and field
 * for the error message.
 */
export function resolveInside(root: string, name: string, where: string): string {
  if (typeof name !== 'string' || name === '') {
    throw new Error(`${where}: expected a non-empty file name, got ${JSON.stringify(name)}`);
  }
  const full = resolve(root, name);
  const rel = relative(resolve(root), full);
  if (isAbsolute(name) || rel.startsWith('..') || isAbsolute(rel)) {
    throw new Error(`${where}: file name ${JSON.stringify(name)} escapes the dataset root ${root}`);
  }
  return full;
}
