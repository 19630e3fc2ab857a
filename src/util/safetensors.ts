/**
 * The safetensors format (huggingface/safetensors, "Format" in its README):
 * an 8-byte little-endian unsigned length N, an N-byte UTF-8 JSON header
 * {name: {dtype, shape, data_offsets: [begin, end]}, "__metadata__": {str: str}},
 * then the raw little-endian tensor bytes, offsets relative to the end of the
 * header. Writers pad the header with spaces to a multiple of 8 bytes; readers
 * require the byte ranges to tile the data buffer exactly (no gaps, no overlap).
 *
 * Here: write F32 and I32; read F32, I32, and F16 / BF16 (widened to float32,
 * which is exact). `saveModule` / `loadModule` checkpoint a Module's named
 * parameters (buffers included) with its config in the metadata.
 */
import { readFileSync } from 'node:fs';
import { endianness } from 'node:os';
import * as tf from '@tensorflow/tfjs-core';
import type { Module } from '../model/nn';
import { writeFileAtomic } from './fs';

/** In-memory tensor: host data with its shape. */
export interface HostTensor {
  dtype: 'float32' | 'int32';
  shape: number[];
  data: Float32Array | Int32Array;
}

/** Parsed file: tensors by name plus the string metadata. */
export interface SafetensorsContent {
  tensors: Map<string, HostTensor>;
  /** The file's dtype per tensor before widening (e.g. 'BF16'). */
  fileDtypes: Map<string, string>;
  metadata: Record<string, string>;
}

const WRITE_DTYPE = { float32: 'F32', int32: 'I32' } as const;
const READ_DTYPES: Record<string, { bytes: number; to: 'float32' | 'int32' }> = {
  F32: { bytes: 4, to: 'float32' },
  I32: { bytes: 4, to: 'int32' },
  F16: { bytes: 2, to: 'float32' },
  BF16: { bytes: 2, to: 'float32' },
};
/** Refuse absurd header lengths before allocating (the reference reader's limit is 100 MB). */
const MAX_HEADER_BYTES = 100_000_000;

if (endianness() !== 'LE') throw new Error('safetensors: this reader assumes a little-endian host');

function numel(shape: number[]): number {
  return shape.reduce((a, b) => a * b, 1);
}

/** Serialises tensors (and string metadata) to safetensors bytes; tensors in sorted-name order. */
export function encodeSafetensors(tensors: Map<string, HostTensor> | Record<string, HostTensor>, metadata: Record<string, string> = {}): Uint8Array {
  const entries = [...(tensors instanceof Map ? tensors.entries() : Object.entries(tensors))].sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
  const header: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(metadata)) {
    if (typeof v !== 'string') throw new Error(`safetensors metadata '${k}': values must be strings, got ${typeof v}`);
  }
  if (Object.keys(metadata).length > 0) header.__metadata__ = metadata;
  let offset = 0;
  for (const [name, t] of entries) {
    if (name === '__metadata__') throw new Error("safetensors: '__metadata__' is reserved and cannot name a tensor");
    const dt = WRITE_DTYPE[t.dtype];
    if (!dt) throw new Error(`safetensors tensor '${name}': cannot write dtype ${t.dtype} (float32, int32)`);
    if (t.data.length !== numel(t.shape)) {
      throw new Error(`safetensors tensor '${name}': ${t.data.length} values for shape [${t.shape.join(', ')}]`);
    }
    const n = t.data.byteLength;
    header[name] = { dtype: dt, shape: t.shape, data_offsets: [offset, offset + n] };
    offset += n;
  }
  let json = JSON.stringify(header);
  const rawLen = Buffer.byteLength(json, 'utf8');
  json += ' '.repeat((8 - (rawLen % 8)) % 8); // pad so the data starts 8-aligned
  const hbytes = Buffer.from(json, 'utf8');
  const out = new Uint8Array(8 + hbytes.length + offset);
  new DataView(out.buffer).setBigUint64(0, BigInt(hbytes.length), true);
  out.set(hbytes, 8);
  let pos = 8 + hbytes.length;
  for (const [, t] of entries) {
    out.set(new Uint8Array(t.data.buffer, t.data.byteOffset, t.data.byteLength), pos);
    pos += t.data.byteLength;
  }
  return out;
}

function f16ToF32(h: number): number {
  const s = h & 0x8000 ? -1 : 1;
  const e = (h >> 10) & 0x1f;
  const m = h & 0x3ff;
  if (e === 0) return s * m * 2 ** -24; // subnormal (and zero)
  if (e === 31) return m ? NaN : s * Infinity;
  return s * (1 + m / 1024) * 2 ** (e - 15);
}

/** Parses safetensors bytes; `where` (the file name) prefixes every error. */
export function decodeSafetensors(bytes: Uint8Array, where = 'safetensors'): SafetensorsContent {
  if (bytes.length < 8) throw new Error(`${where}: truncated: ${bytes.length} bytes, need at least 8 for the header length`);
  const dv = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const n64 = dv.getBigUint64(0, true);
  if (n64 > BigInt(bytes.length - 8) || n64 > BigInt(MAX_HEADER_BYTES)) {
    throw new Error(`${where}: header length ${n64} exceeds the file (${bytes.length - 8} bytes after the length field): corrupted or truncated`);
  }
  const n = Number(n64);
  let header: unknown;
  try {
    header = JSON.parse(new TextDecoder('utf-8', { fatal: true }).decode(bytes.subarray(8, 8 + n)));
  } catch (e) {
    throw new Error(`${where}: header is not valid UTF-8 JSON (${(e as Error).message})`);
  }
  if (typeof header !== 'object' || header === null || Array.isArray(header)) throw new Error(`${where}: header must be a JSON object`);
  const dataStart = 8 + n;
  const dataLen = bytes.length - dataStart;
  const metadata: Record<string, string> = {};
  const tensors = new Map<string, HostTensor>();
  const fileDtypes = new Map<string, string>();
  const ranges: Array<[number, number, string]> = [];
  for (const [name, raw] of Object.entries(header as Record<string, unknown>)) {
    if (name === '__metadata__') {
      if (typeof raw !== 'object' || raw === null || Array.isArray(raw)) throw new Error(`${where}: __metadata__ must be an object of strings`);
      for (const [k, v] of Object.entries(raw)) {
        if (typeof v !== 'string') throw new Error(`${where}: __metadata__.${k} must be a string, got ${typeof v}`);
        metadata[k] = v;
      }
      continue;
    }
    const e = raw as { dtype?: unknown; shape?: unknown; data_offsets?: unknown };
    const field = `${where}: tensor '${name}'`;
    if (typeof e !== 'object' || e === null) throw new Error(`${field}: entry must be an object`);
    const spec = typeof e.dtype === 'string' ? READ_DTYPES[e.dtype] : undefined;
    if (!spec) throw new Error(`${field}: unsupported dtype ${JSON.stringify(e.dtype)} (readable: ${Object.keys(READ_DTYPES).join(', ')})`);
    if (!Array.isArray(e.shape) || !e.shape.every((d) => Number.isInteger(d) && d >= 0)) {
      throw new Error(`${field}: shape must be an array of non-negative integers, got ${JSON.stringify(e.shape)}`);
    }
    const off = e.data_offsets;
    if (!Array.isArray(off) || off.length !== 2 || !off.every((d) => Number.isInteger(d) && d >= 0) || off[0] > off[1]) {
      throw new Error(`${field}: data_offsets must be [begin, end] with 0 <= begin <= end, got ${JSON.stringify(off)}`);
    }
    const [b, en] = off as [number, number];
    const shape = e.shape as number[];
    const count = numel(shape);
    if (en - b !== count * spec.bytes) {
      throw new Error(`${field}: data_offsets span ${en - b} bytes but ${e.dtype} [${shape.join(', ')}] needs ${count * spec.bytes}`);
    }
    if (en > dataLen) throw new Error(`${field}: data ends at byte ${en} but the file has ${dataLen} data bytes: truncated`);
    ranges.push([b, en, name]);
    // A copy (aligned, independent of the file buffer); not .slice(), which on a Buffer is a view.
    const chunk = new Uint8Array(bytes.subarray(dataStart + b, dataStart + en));
    let data: Float32Array | Int32Array;
    if (e.dtype === 'F32') data = new Float32Array(chunk.buffer);
    else if (e.dtype === 'I32') data = new Int32Array(chunk.buffer);
    else {
      const u16 = new Uint16Array(chunk.buffer);
      const f = new Float32Array(count);
      if (e.dtype === 'BF16') {
        const u32 = new Uint32Array(f.buffer);
        for (let i = 0; i < count; i++) u32[i] = u16[i]! << 16; // bf16 is the top half of an f32
      } else {
        for (let i = 0; i < count; i++) f[i] = f16ToF32(u16[i]!);
      }
      data = f;
    }
    tensors.set(name, { dtype: spec.to, shape, data });
    fileDtypes.set(name, e.dtype as string);
  }
  // The byte ranges must tile the data buffer: sorted, contiguous, ending at its end.
  ranges.sort((x, y) => x[0] - y[0] || x[1] - y[1]);
  let expect = 0;
  for (const [b, en, name] of ranges) {
    if (b !== expect) throw new Error(`${where}: tensor '${name}' starts at byte ${b}, expected ${expect} (gap or overlap in data_offsets)`);
    expect = en;
  }
  if (expect !== dataLen) throw new Error(`${where}: tensors cover ${expect} data bytes but the file has ${dataLen}: trailing bytes or corrupted offsets`);
  return { tensors, fileDtypes, metadata };
}

/** Writes tensors + metadata to `path` atomically (temp file + rename). */
export function writeSafetensors(path: string, tensors: Map<string, HostTensor> | Record<string, HostTensor>, metadata: Record<string, string> = {}): void {
  writeFileAtomic(path, encodeSafetensors(tensors, metadata));
}

/** Reads a safetensors file; errors name the file. */
export function readSafetensors(path: string): SafetensorsContent {
  let bytes: Uint8Array;
  try {
    bytes = readFileSync(path);
  } catch (e) {
    throw new Error(`${path}: cannot read safetensors file (${(e as Error).message})`);
  }
  return decodeSafetensors(bytes, path);
}

/** A module's parameters as host tensors by dotted name (buffers included). */
export function moduleTensors(module: Module): Map<string, HostTensor> {
  const out = new Map<string, HostTensor>();
  for (const [name, v] of module.namedParameters()) {
    if (v.dtype !== 'float32' && v.dtype !== 'int32') throw new Error(`parameter '${name}': cannot save dtype ${v.dtype}`);
    out.set(name, { dtype: v.dtype, shape: [...v.shape], data: v.dataSync() as Float32Array | Int32Array });
  }
  return out;
}

/** Saves every parameter of `module` (and `metadata`, e.g. { config: JSON }) to `path` atomically. */
export function saveModule(module: Module, path: string, metadata: Record<string, string> = {}): void {
  writeSafetensors(path, moduleTensors(module), metadata);
}

/** Options of `loadModule`. */
export interface LoadModuleOptions {
  /** Name prefix in the file to load from (e.g. 'sam.' to load MiniSam from a whole-model file); default ''. */
  prefix?: string;
  /** With a prefix, ignore file tensors outside it (default true); unexpected tensors inside it are still errors. */
  ignoreOutsidePrefix?: boolean;
}

/**
 * Loads `path` into `module`'s parameters after checking that names, shapes and
 * dtypes all match; on any mismatch nothing is assigned and the error lists the
 * missing, unexpected and mismatched tensors with the file name. F16 / BF16 file
 * tensors load into float32 parameters (exact widening). Returns the metadata.
 */
export function loadModule(module: Module, path: string, opts: LoadModuleOptions = {}): Record<string, string> {
  const { prefix = '', ignoreOutsidePrefix = true } = opts;
  const content = readSafetensors(path);
  const params = new Map(module.namedParameters());
  const missing: string[] = [];
  const mismatched: string[] = [];
  const assign: Array<[tf.Variable, HostTensor]> = [];
  for (const [name, v] of params) {
    const t = content.tensors.get(prefix + name);
    if (!t) {
      missing.push(prefix + name);
      continue;
    }
    const shapeOk = t.shape.length === v.shape.length && t.shape.every((d, i) => d === v.shape[i]);
    const fileDtype = content.fileDtypes.get(prefix + name)!;
    const dtypeOk = t.dtype === v.dtype;
    if (!shapeOk || !dtypeOk) {
      mismatched.push(`${prefix + name}: file ${fileDtype} [${t.shape.join(', ')}] vs model ${v.dtype} [${v.shape.join(', ')}]`);
      continue;
    }
    assign.push([v, t]);
  }
  const unexpected = [...content.tensors.keys()].filter((k) => {
    if (!k.startsWith(prefix)) return !ignoreOutsidePrefix || prefix === '';
    return !params.has(k.slice(prefix.length));
  });
  if (missing.length + unexpected.length + mismatched.length > 0) {
    const parts: string[] = [];
    if (missing.length) parts.push(`missing from the file (${missing.length}): ${missing.join(', ')}`);
    if (unexpected.length) parts.push(`unexpected in the file (${unexpected.length}): ${unexpected.join(', ')}`);
    if (mismatched.length) parts.push(`mismatched (${mismatched.length}): ${mismatched.join('; ')}`);
    throw new Error(`${path}: checkpoint does not match the model: ${parts.join('; ')}`);
  }
  for (const [v, t] of assign) {
    tf.tidy(() => v.assign(tf.tensor(t.data, t.shape, t.dtype)));
  }
  return content.metadata;
}
