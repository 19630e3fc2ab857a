/**
 * What each kind of notebook output looks like as a mime bundle (src/viz/display.ts):
 * - a figure: Plotly JSON + an offline text/html fallback (the static SVG as an
 *   `<img>` data URI: classic Notebook's and JupyterLab's sanitisers strip inline
 *   `<svg>` from untrusted (e.g. CI-executed) notebooks but keep data-URI images)
 *   + text/plain;
 * - a table: text/html + aligned text/plain;
 * - a gallery of PNG panels with captions: text/html + image/png montage + text/plain.
 */
import type { Figure } from './figure';
import { montagePng } from './overlay';
import { escapeXml, renderSvg } from './svg';
import type { MimeBundle } from './display';

export const PLOTLY_MIME = 'application/vnd.plotly.v1+json';

const base64 = (b: Uint8Array | string): string => Buffer.from(b as Uint8Array).toString('base64');

/** The static fallback of a figure as an `<img>` (SVG data URI) with the title as alt text. */
export function figureImgHtml(fig: Figure, svg = renderSvg(fig)): string {
  const size = /width="(\d+)" height="(\d+)"/.exec(svg);
  const dims = size ? ` width="${size[1]}" height="${size[2]}"` : '';
  return `<img src="data:image/svg+xml;base64,${base64(svg)}"${dims} alt="${escapeXml(fig.layout.title?.text ?? 'figure')}"/>`;
}

/** A figure's bundle: Plotly JSON, the SVG fallback as HTML, and a one-line text. */
export function figureBundle(fig: Figure): MimeBundle {
  const svg = renderSvg(fig); // also validates the figure before anything is sent
  return {
    [PLOTLY_MIME]: { data: fig.data, layout: fig.layout, config: { responsive: true } },
    'text/html': figureImgHtml(fig, svg),
    'text/plain': `<Figure: ${fig.layout.title?.text ?? `${fig.data.length} trace(s)`}>`,
  };
}

/** A table cell: numbers right-aligned; integers with thousands separators, others to 4 significant digits. */
export function formatCell(v: unknown): string {
  if (typeof v === 'number') {
    if (!Number.isFinite(v)) return String(v);
    if (Number.isInteger(v)) return v.toLocaleString('en-US');
    return Math.abs(v) >= 1e4 ? v.toFixed(0) : Number(v.toPrecision(4)).toString();
  }
  if (v === null || v === undefined) return '';
  return String(v);
}

/** Options of `tableBundle`. */
export interface TableOptions {
  /** Column order (default: the keys of the first row). */
  columns?: string[];
  title?: string;
}

/** Rows of records -> an HTML table and an aligned plain-text table. */
export function tableBundle(rows: Array<Record<string, unknown>>, opts: TableOptions = {}): MimeBundle {
  const columns = opts.columns ?? Object.keys(rows[0] ?? {});
  if (columns.length === 0) throw new Error('table: expected at least one column (give rows or opts.columns)');
  const numeric = columns.map((c) => rows.length > 0 && rows.every((r) => typeof r[c] === 'number' || r[c] === undefined || r[c] === null));
  const cells = rows.map((r) => columns.map((c) => formatCell(r[c])));
  const th = columns.map((c, j) => `<th style="text-align:${numeric[j] ? 'right' : 'left'}">${escapeXml(c)}</th>`).join('');
  const body = cells.map((row) => `<tr>${row.map((v, j) => `<td style="text-align:${numeric[j] ? 'right' : 'left'}">${escapeXml(v)}</td>`).join('')}</tr>`).join('\n');
  const caption = opts.title ? `<caption style="caption-side:top;font-weight:bold">${escapeXml(opts.title)}</caption>` : '';
  const html = `<table>${caption}<thead><tr>${th}</tr></thead>\n<tbody>\n${body}\n</tbody></table>`;
  const widths = columns.map((c, j) => Math.max(c.length, ...cells.map((r) => r[j]!.length)));
  const line = (vals: string[]): string => vals.map((v, j) => (numeric[j] ? v.padStart(widths[j]!) : v.padEnd(widths[j]!))).join('  ').trimEnd();
  const text = [...(opts.title ? [opts.title] : []), line(columns), widths.map((w) => '-'.repeat(w)).join('  '), ...cells.map(line)].join('\n');
  return { 'text/html': html, 'text/plain': text };
}

/** One panel of a gallery: a PNG and its caption (plain text; newlines kept). */
export interface GalleryItem {
  png: Uint8Array;
  caption: string;
  /** Bold first line above the caption. */
  title?: string;
}

/** Panels with captions as an HTML grid, plus an image/png montage (no text) and the captions as text/plain. */
export async function galleryBundle(
  items: GalleryItem[],
  { columns = 4, panelWidth = 256, title }: { columns?: number; panelWidth?: number; title?: string } = {},
): Promise<MimeBundle> {
  if (items.length === 0) throw new Error('gallery: expected at least one item');
  const figs = items.map((it) => {
    const head = it.title ? `<b>${escapeXml(it.title)}</b><br/>` : '';
    return `<figure style="display:inline-block;vertical-align:top;width:${panelWidth}px;margin:4px 8px 12px 0">`
      + `<img src="data:image/png;base64,${base64(it.png)}" width="${panelWidth}" style="image-rendering:pixelated" alt="${escapeXml(it.title ?? 'panel')}"/>`
      + `<figcaption style="font-size:12px;white-space:pre-wrap;line-height:1.35">${head}${escapeXml(it.caption)}</figcaption></figure>`;
  });
  const lines = items.map((it, i) => `[${i + 1}] ${it.title ? `${it.title}: ` : ''}${it.caption}`);
  const text = (title ? [title, ...lines] : lines).join('\n');
  const heading = title ? `<p style="font-weight:bold;margin:4px 0">${escapeXml(title)}</p>\n` : '';
  return {
    'text/html': `<div>${heading}${figs.join('\n')}</div>`,
    'image/png': await montagePng(items.map((it) => it.png), { columns }),
    'text/plain': text,
  };
}
