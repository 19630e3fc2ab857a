/**
 * Static checks of the notebooks and the kernel spec (CI executes the notebooks
 * themselves: scripts/run-notebooks.py). tslab loads a relative import as
 * `<path>.js` compiled from `<path>.ts` and nothing else, so a folder import
 * (`./src/model` for ./src/model/index.ts) type-checks but fails at run time:
 * every import reachable from a notebook must name a file.
 */
import { spawnSync } from 'node:child_process';
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { dirname, join, relative, resolve } from 'node:path';
import { describe, expect, it } from 'vitest';
import { projectRoot } from '../../src/util/paths';

const root = projectRoot();
const nbDir = join(root, 'notebooks');
const notebooks = readdirSync(nbDir).filter((f) => f.endsWith('.ipynb')).sort();

interface Notebook {
  metadata: { kernelspec?: { name?: string } };
  cells: Array<{ cell_type: string; source: string | string[]; outputs?: unknown[]; execution_count?: number | null }>;
}
const read = (f: string): Notebook => JSON.parse(readFileSync(join(nbDir, f), 'utf8')) as Notebook;
const src = (c: Notebook['cells'][number]): string => (Array.isArray(c.source) ? c.source.join('') : c.source);
const relImports = (code: string): string[] => [...code.matchAll(/(?:from|import)\s*\(?\s*'(\.{1,2}\/[^']+)'/g)].map((m) => m[1]!);

/** Relative imports reachable from `entries` (paths without extension, absolute) that do not name a .ts file. */
function unloadableImports(entries: Array<{ spec: string; from: string }>): string[] {
  const bad: string[] = [];
  const seen = new Set<string>();
  const queue = [...entries];
  while (queue.length > 0) {
    const { spec, from } = queue.shift()!;
    const base = resolve(from, spec);
    const file = `${base}.ts`;
    if (!existsSync(file)) {
      bad.push(`${relative(root, join(from, 'x'))}: '${spec}'${existsSync(join(base, 'index.ts')) ? ` is a folder: write '${spec}/index'` : ' not found'}`);
      continue;
    }
    if (seen.has(file)) continue;
    seen.add(file);
    for (const s of relImports(readFileSync(file, 'utf8'))) queue.push({ spec: s, from: dirname(file) });
  }
  return bad;
}

describe('notebooks', () => {
  it('exist, numbered in workflow order from 00', () => {
    expect(notebooks.slice(0, 3)).toEqual(['00_setup.ipynb', '01_data_tour.ipynb', '02_model_anatomy.ipynb']);
  });

  it.each(notebooks)('%s runs on the lens-ts kernel and is committed without outputs', (f) => {
    const nb = read(f);
    expect(nb.metadata.kernelspec?.name).toBe('lens-ts');
    for (const c of nb.cells.filter((x) => x.cell_type === 'code')) {
      expect(c.outputs ?? []).toEqual([]);
      expect(c.execution_count ?? null).toBeNull();
    }
  });

  it.each(notebooks)('%s imports only files tslab can load (no folder imports, transitively)', (f) => {
    const code = read(f).cells.filter((c) => c.cell_type === 'code').map(src).join('\n');
    expect(unloadableImports(relImports(code).map((spec) => ({ spec, from: root })))).toEqual([]);
  });

  it('every library file can load under tslab (notebooks may import any of them)', () => {
    const files: string[] = [];
    const walk = (d: string) => {
      for (const e of readdirSync(d, { withFileTypes: true })) {
        if (e.isDirectory()) walk(join(d, e.name));
        else if (e.name.endsWith('.ts')) files.push(join(d, e.name));
      }
    };
    walk(join(root, 'src'));
    expect(unloadableImports(files.map((f) => ({ spec: `./${relative(root, f).replace(/\.ts$/, '')}`, from: root })))).toEqual([]);
  });

  it('the folder-import check finds a folder import', () => {
    expect(unloadableImports([{ spec: './src/viz', from: root }])).toEqual([`x: './src/viz' is a folder: write './src/viz/index'`]);
  });
});

describe('kernel spec', () => {
  it('the in-repo spec starts the launcher from its own folder with the connection file', () => {
    const spec = JSON.parse(readFileSync(join(root, 'jupyter/kernels/lens-ts/kernel.json'), 'utf8')) as { argv: string[]; language: string };
    expect(spec.argv).toEqual(['node', '{resource_dir}/launch.cjs', '{connection_file}']);
    expect(spec.language).toBe('typescript');
    expect(existsSync(join(root, 'jupyter/kernels/lens-ts/launch.cjs'))).toBe(true);
  });

  it('npm run kernel writes a spec naming this checkout\'s launcher by absolute path', () => {
    const r = spawnSync(process.execPath, [join(root, 'jupyter/install-kernel.cjs'), '--print'], { encoding: 'utf8' });
    expect(r.status).toBe(0);
    const spec = JSON.parse(r.stdout) as { argv: string[] };
    expect(spec.argv).toEqual([process.execPath, join(root, 'jupyter/kernels/lens-ts/launch.cjs'), '{connection_file}']);
  });

  it('the launcher refuses to start without a connection file', () => {
    const r = spawnSync(process.execPath, [join(root, 'jupyter/kernels/lens-ts/launch.cjs')], { encoding: 'utf8' });
    expect(r.status).toBe(2);
    expect(r.stderr).toMatch(/usage: node launch.cjs <connection_file>/);
  });
});
