/**
 * Display bundles: one Jupyter `display_data` message carrying several MIME types
 * (the Jupyter messaging protocol's mime bundle), so each frontend picks the
 * richest it can render: JupyterLab with a Plotly renderer takes
 * `application/vnd.plotly.v1+json`, classic Notebook and HTML exports take the
 * `text/html` fallback, a terminal takes `text/plain` (DESIGN.md "Notebooks").
 *
 * tslab's public API (`tslab.display.raw(mime, data)`, node_modules/tslab/dist/public.js)
 * sends ONE MIME type per message. Its kernel keeps the message writer of the
 * running cell in `lastWriteDisplayData` (dist/jupyter.js, set per execute request),
 * and public.js calls it with `{ data, metadata, transient }`; we call the same writer
 * with a whole bundle. We only take it from tslab's module when the kernel has
 * already loaded that module, so importing this file outside a kernel (tests,
 * scripts) never starts tslab; there the text/plain part is printed instead.
 */
import { createRequire } from 'node:module';
import { join } from 'node:path';
import { projectRoot } from '../util/paths';

/** A Jupyter mime bundle: text types as strings, binary types as bytes (sent base64), JSON types as objects. */
export type MimeBundle = Record<string, string | Uint8Array | object>;

/** The `display_data` content Jupyter expects (messaging spec 5.3). */
export interface DisplayContent {
  data: Record<string, unknown>;
  metadata: Record<string, unknown>;
  transient: Record<string, unknown>;
}

/** Sends one display message (tslab's writer signature: content, isUpdate). */
export type DisplaySink = (content: DisplayContent, update: boolean) => void;

let sinkOverride: DisplaySink | null = null;

/** Routes displays to `sink` (tests; null restores the kernel / stdout default). */
export function setDisplaySink(sink: DisplaySink | null): void {
  sinkOverride = sink;
}

/** tslab's writer for the running cell, if this process is a tslab kernel; else null. */
export function kernelSink(): DisplaySink | null {
  let req: NodeRequire;
  let path: string;
  try {
    req = createRequire(join(projectRoot(), 'package.json'));
    path = req.resolve('tslab/dist/jupyter');
  } catch {
    return null; // tslab not installed: certainly not its kernel
  }
  const mod = req.cache[path]; // loaded only when this process is tslab's kernel
  const writer = (mod?.exports as { lastWriteDisplayData?: DisplaySink | null } | undefined)?.lastWriteDisplayData;
  return typeof writer === 'function' ? writer : null;
}

/** Jupyter's wire form of a bundle: bytes as base64, JSON types kept as objects, strings as they are. */
export function encodeBundle(bundle: MimeBundle): Record<string, unknown> {
  const data: Record<string, unknown> = {};
  for (const [mime, v] of Object.entries(bundle)) {
    if (v instanceof Uint8Array) data[mime] = Buffer.from(v.buffer, v.byteOffset, v.byteLength).toString('base64');
    else if (typeof v === 'string') data[mime] = v;
    else if (/^application\/(.+\+)?json$/.test(mime)) data[mime] = v;
    else throw new Error(`display bundle: '${mime}' holds an object; only application/*json types may (give text as a string, binary as bytes)`);
  }
  return data;
}

/**
 * Shows a bundle in the notebook as ONE display_data message. Outside a tslab
 * kernel prints its text/plain part (or the list of its types) and returns false.
 */
export function displayBundle(bundle: MimeBundle, metadata: Record<string, unknown> = {}): boolean {
  if (Object.keys(bundle).length === 0) throw new Error('display bundle: expected at least one MIME type');
  const data = encodeBundle(bundle);
  const sink = sinkOverride ?? kernelSink();
  if (!sink) {
    const text = typeof bundle['text/plain'] === 'string' ? bundle['text/plain'] : `[display: ${Object.keys(bundle).join(', ')}]`;
    process.stdout.write(`${text}\n`);
    return false;
  }
  sink({ data, metadata, transient: {} }, false);
  return true;
}
