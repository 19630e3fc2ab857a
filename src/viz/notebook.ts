/**
 * What every notebook starts with (STYLE.md 11: notebooks set a config delta, call
 * the library, plot): the preset from LENS_PRESET (default 'quick'; CI runs the
 * notebooks with 'tiny'), the benchmark folder that goes with it, and output
 * helpers that display a figure / table / gallery and save it under
 * results/figures/<notebook>/ in one call.
 */
import { join } from 'node:path';
import { ensureBenchmark, type Manifest } from '../data/generate/benchmark';
import { PRESET_NAMES, type PresetName } from '../model/presets';
import { projectRoot } from '../util/paths';
import { figureBundle, galleryBundle, tableBundle, type GalleryItem, type TableOptions } from './bundles';
import { displayBundle } from './display';
import type { Figure } from './figure';
import { FIGURES_DIR, writeFigure, writeFigurePage } from './writer';

/** The preset a notebook runs at: LENS_PRESET (tiny | quick | paper), default quick. */
export function presetFromEnv(env: Record<string, string | undefined> = process.env): PresetName {
  const v = env.LENS_PRESET;
  if (v === undefined || v === '') return 'quick';
  if (!(PRESET_NAMES as readonly string[]).includes(v)) {
    throw new Error(`environment variable LENS_PRESET=${JSON.stringify(v)}: expected one of ${PRESET_NAMES.join(', ')} (or unset for quick)`);
  }
  return v as PresetName;
}

/**
 * The benchmark folder of a preset, relative to the project root: quick uses
 * `npm start`'s data/bench; tiny and paper get their own folders so that a CI or
 * full-scale run never replaces the default data (the generator's scales have the
 * presets' names).
 */
export function benchDirFor(preset: PresetName): string {
  return preset === 'quick' ? join('data', 'bench') : join('data', `bench-${preset}`);
}

/** Output helpers bound to one notebook (figures land in results/figures/<name>/). */
export interface NotebookContext {
  /** Notebook name, e.g. '02_model_anatomy'. */
  name: string;
  preset: PresetName;
  /** Absolute folder of this notebook's figure pages (results/figures/<name>). */
  figuresDir: string;
  /**
   * Displays a Plotly figure (with its offline fallback) and writes its page
   * `<figuresDir>/<file>.html`. Returns nothing, so a cell ending in it shows no path.
   */
  figure(fig: Figure, file: string): void;
  /** Displays a table and writes it as a page. */
  table(rows: Array<Record<string, unknown>>, file: string, opts?: TableOptions): void;
  /** Displays PNG panels with captions and writes them as a page. */
  gallery(items: GalleryItem[], file: string, opts?: { title?: string; columns?: number }): Promise<void>;
  /** The preset's benchmark (generated on first use; seed 0), with its absolute folder. */
  benchmark(): Promise<{ dir: string; manifest: Manifest; generated: boolean }>;
}

/**
 * Starts a notebook: reads LENS_PRESET and prints one line saying what runs.
 * `root` (default: the project root) is where results/figures and data/ are (tests use a temp folder).
 */
export function openNotebook(
  name: string,
  { env = process.env, quiet = false, root = projectRoot() }: { env?: Record<string, string | undefined>; quiet?: boolean; root?: string } = {},
): NotebookContext {
  const preset = presetFromEnv(env);
  if (!quiet) console.log(`[lens] notebook ${name}: preset ${preset}${env.LENS_PRESET ? ' (LENS_PRESET)' : ' (default; set LENS_PRESET to change)'}`);
  return {
    name,
    preset,
    figuresDir: join(root, FIGURES_DIR, name),
    figure(fig, file) {
      const bundle = figureBundle(fig);
      writeFigure(name, file, fig, root);
      displayBundle(bundle);
    },
    table(rows, file, opts = {}) {
      const bundle = tableBundle(rows, opts);
      writeFigurePage(name, file, { title: opts.title ?? file, bodyHtml: bundle['text/html'] as string }, root);
      displayBundle(bundle);
    },
    async gallery(items, file, opts = {}) {
      const bundle = await galleryBundle(items, { columns: opts.columns ?? 4, ...(opts.title ? { title: opts.title } : {}) });
      writeFigurePage(name, file, { title: opts.title ?? file, bodyHtml: bundle['text/html'] as string }, root);
      displayBundle(bundle);
    },
    async benchmark() {
      const dir = join(root, benchDirFor(preset));
      const { manifest, generated } = await ensureBenchmark(dir, { scale: preset, seed: 0 });
      return { dir, manifest, generated };
    },
  };
}
