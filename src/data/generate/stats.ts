/**
 * Statistics of a generated benchmark (what `npm start` prints): images, sentences
 * per family and split, mean words per sentence, objects per image and the target
 * area distribution. Collected while generating and stored in manifest.json, so
 * printing them needs no pass over the files.
 */

/** Target area bins, as fractions of the image area. */
export const AREA_BINS = [0.01, 0.02, 0.05, 0.1, 0.2] as const;

export interface SplitStats {
  images: number;
  refs: number;
  sentences: number;
  words: number;
  /** Histogram of target area / image area over refs: bins split at AREA_BINS (length AREA_BINS.length + 1). */
  targetArea: number[];
}

export interface BenchmarkStats {
  /** family -> split -> counts. */
  splits: Record<string, Record<string, SplitStats>>;
  /** Histogram of objects per image over all distinct images. */
  objectsPerImage: Record<string, number>;
  /** Sentences per template id over all families (how varied the language is). */
  templates: Record<string, number>;
}

export function emptyStats(): BenchmarkStats {
  return { splits: {}, objectsPerImage: {}, templates: {} };
}

/** The stats entry of family/split, created on first use. */
export function splitStats(s: BenchmarkStats, family: string, split: string): SplitStats {
  const f = (s.splits[family] ??= {});
  return (f[split] ??= { images: 0, refs: 0, sentences: 0, words: 0, targetArea: new Array<number>(AREA_BINS.length + 1).fill(0) });
}

/** Bin index of an area fraction. */
export function areaBin(frac: number): number {
  const i = AREA_BINS.findIndex((b) => frac < b);
  return i === -1 ? AREA_BINS.length : i;
}

function pad(cells: string[], widths: number[]): string {
  return cells.map((c, i) => (i === 0 ? c.padEnd(widths[i]!) : c.padStart(widths[i]!))).join('  ');
}

function table(header: string[], rows: string[][]): string {
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i]!.length)));
  const line = widths.map((w) => '-'.repeat(w)).join('  ');
  return [pad(header, widths), line, ...rows.map((r) => pad(r, widths))].join('\n');
}

/** Readable tables of the statistics (plain text, fixed width). */
export function formatStats(s: BenchmarkStats): string {
  const binNames = AREA_BINS.map((b) => `<${b * 100}%`).concat(`>=${AREA_BINS[AREA_BINS.length - 1]! * 100}%`);
  const rows: string[][] = [];
  for (const [family, splits] of Object.entries(s.splits)) {
    for (const [split, v] of Object.entries(splits)) {
      const tot = v.targetArea.reduce((a, b) => a + b, 0) || 1;
      rows.push([`${family}/${split}`, String(v.images), String(v.refs), String(v.sentences), (v.words / Math.max(1, v.sentences)).toFixed(1),
        ...v.targetArea.map((n) => `${Math.round((100 * n) / tot)}%`)]);
    }
  }
  const main = table(['family/split', 'images', 'refs', 'sentences', 'words/sent', ...binNames.map((b) => `area${b}`)], rows);
  const opi = Object.entries(s.objectsPerImage).sort((a, b) => Number(a[0]) - Number(b[0]));
  const nImg = opi.reduce((a, [, n]) => a + n, 0);
  const meanObj = opi.reduce((a, [k, n]) => a + Number(k) * n, 0) / Math.max(1, nImg);
  const objLine = `objects per image: mean ${meanObj.toFixed(2)} over ${nImg} images (${opi.map(([k, n]) => `${k}: ${n}`).join(', ')})`;
  const tpl = Object.entries(s.templates).sort((a, b) => b[1] - a[1]).map(([k, n]) => `${k} ${n}`).join(', ');
  return `${main}\n\n${objLine}\ntarget area = visible target pixels / image pixels, share of refs per bin\nsentences per template: ${tpl}`;
}
