/**
 * safetensors: known-answer bytes from the format spec, bit-exact module round
 * trip, F16 / BF16 widening, corrupted and truncated files, and loadModule's
 * name / shape / dtype checks.
 */
import { mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as tf from '@tensorflow/tfjs-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Linear, Module } from '../../src/model/nn';
import { Rng } from '../../src/random';
import { decodeSafetensors, encodeSafetensors, loadModule, readSafetensors, saveModule } from '../../src/util/safetensors';
import { useBackend } from './sam-testutil';

let dir: string;
beforeAll(async () => {
  await useBackend('cpu');
  dir = mkdtempSync(join(tmpdir(), 'lens-st-'));
});
afterAll(() => rmSync(dir, { recursive: true, force: true }));

class Toy extends Module {
  readonly a: Linear;
  readonly b: Linear;
  constructor(seed: number, out = 3) {
    super();
    const rng = new Rng(seed);
    this.a = this.child('a', new Linear(4, out, rng));
    this.b = this.child('b', new Linear(out, 2, rng, { bias: false }));
  }
}

function header(bytes: Uint8Array): { n: number; json: string } {
  const n = Number(new DataView(bytes.buffer, bytes.byteOffset).getBigUint64(0, true));
  return { n, json: Buffer.from(bytes.subarray(8, 8 + n)).toString('utf8') };
}

/** A file whose header is `json` (padded to 8) followed by `data`. */
function rawFile(json: string, data: Uint8Array): Uint8Array {
  const h = Buffer.from(json.padEnd(Math.ceil(json.length / 8) * 8, ' '));
  const out = new Uint8Array(8 + h.length + data.length);
  new DataView(out.buffer).setBigUint64(0, BigInt(h.length), true);
  out.set(h, 8);
  out.set(data, 8 + h.length);
  return out;
}

describe('safetensors encoding', () => {
  it('writes the spec layout byte for byte', () => {
    const bytes = encodeSafetensors({ w: { dtype: 'float32', shape: [2], data: new Float32Array([1, -2]) } }, { k: 'v' });
    const json = '{"__metadata__":{"k":"v"},"w":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}} '; // 79 bytes + 1 space of padding
    expect(json.length).toBe(80);
    expect(Array.from(bytes.subarray(0, 8))).toEqual([80, 0, 0, 0, 0, 0, 0, 0]);
    expect(header(bytes).json).toBe(json);
    expect(Array.from(bytes.subarray(88))).toEqual([0x00, 0x00, 0x80, 0x3f, 0x00, 0x00, 0x00, 0xc0]); // 1.0f, -2.0f LE
  });

  it('pads the header with spaces to a multiple of 8 and sorts tensors by name', () => {
    const bytes = encodeSafetensors({
      z: { dtype: 'int32', shape: [1], data: new Int32Array([7]) },
      a: { dtype: 'float32', shape: [1, 1], data: new Float32Array([3]) },
    });
    const { n, json } = header(bytes);
    expect(n % 8).toBe(0);
    expect(json).toBe('{"a":{"dtype":"F32","shape":[1,1],"data_offsets":[0,4]},"z":{"dtype":"I32","shape":[1],"data_offsets":[4,8]}}'.padEnd(n, ' '));
    const back = decodeSafetensors(bytes);
    expect(back.tensors.get('z')).toEqual({ dtype: 'int32', shape: [1], data: new Int32Array([7]) });
    expect(Array.from(back.tensors.get('a')!.data)).toEqual([3]);
  });

  it('widens F16 and BF16 to float32 exactly', () => {
    const f16 = new Uint16Array([0x3c00, 0xc000, 0x0001, 0x7c00, 0x3555]); // 1, -2, 2^-24, inf, 0.333251953125
    const bf16 = new Uint16Array([0x3f80, 0xc040, 0x0000]); // 1, -3, 0
    const data = new Uint8Array(16);
    data.set(new Uint8Array(f16.buffer), 0);
    data.set(new Uint8Array(bf16.buffer), 10);
    const file = rawFile('{"h":{"dtype":"F16","shape":[5],"data_offsets":[0,10]},"b":{"dtype":"BF16","shape":[3],"data_offsets":[10,16]}}', data);
    const c = decodeSafetensors(file);
    expect(Array.from(c.tensors.get('h')!.data)).toEqual([1, -2, 2 ** -24, Infinity, 0.333251953125]);
    expect(Array.from(c.tensors.get('b')!.data)).toEqual([1, -3, 0]);
    expect(c.tensors.get('b')!.dtype).toBe('float32');
    expect(c.fileDtypes.get('b')).toBe('BF16');
  });
});

describe('safetensors errors name the file and the problem', () => {
  const good = () => encodeSafetensors({ w: { dtype: 'float32', shape: [2, 2], data: new Float32Array([1, 2, 3, 4]) } });
  const cases: Array<[string, () => Uint8Array, RegExp]> = [
    ['fewer than 8 bytes', () => new Uint8Array(5), /f\.st: truncated: 5 bytes, need at least 8/],
    ['truncated data', () => good().subarray(0, good().length - 1), /f\.st: tensor 'w': data ends at byte 16 but the file has 15 data bytes: truncated/],
    ['header length past the end', () => {
      const b = good().slice();
      new DataView(b.buffer).setBigUint64(0, 1n << 40n, true);
      return b;
    }, /f\.st: header length 1099511627776 exceeds the file/],
    ['corrupted JSON', () => {
      const b = good().slice();
      b[8] = 0x5b; // '{' -> '['
      return b;
    }, /f\.st: header is not valid UTF-8 JSON/],
    ['unknown dtype', () => rawFile('{"w":{"dtype":"F64","shape":[1],"data_offsets":[0,8]}}', new Uint8Array(8)), /tensor 'w': unsupported dtype "F64"/],
    ['offsets not matching the shape', () => rawFile('{"w":{"dtype":"F32","shape":[3],"data_offsets":[0,8]}}', new Uint8Array(8)), /data_offsets span 8 bytes but F32 \[3\] needs 12/],
    ['gap between tensors', () => rawFile('{"w":{"dtype":"F32","shape":[1],"data_offsets":[4,8]}}', new Uint8Array(8)), /tensor 'w' starts at byte 4, expected 0/],
    ['trailing bytes', () => rawFile('{"w":{"dtype":"F32","shape":[1],"data_offsets":[0,4]}}', new Uint8Array(8)), /cover 4 data bytes but the file has 8/],
    ['non-string metadata', () => rawFile('{"__metadata__":{"a":1}}', new Uint8Array(0)), /__metadata__\.a must be a string/],
    ['bad shape', () => rawFile('{"w":{"dtype":"F32","shape":[-1],"data_offsets":[0,4]}}', new Uint8Array(4)), /shape must be an array of non-negative integers/],
  ];
  for (const [what, make, re] of cases) {
    it(what, () => {
      expect(() => decodeSafetensors(make(), 'f.st')).toThrow(re);
    });
  }

  it('a missing file names its path', () => {
    expect(() => readSafetensors(join(dir, 'nope.safetensors'))).toThrow(/nope\.safetensors: cannot read safetensors file/);
  });
});

describe('saveModule / loadModule', () => {
  it('round trips every parameter bit for bit, with the metadata', () => {
    const src = new Toy(1);
    // awkward values: -0, the smallest subnormal, infinities, NaN, the largest float
    src.a.bias!.assign(tf.tensor1d([-0, 1.401298464324817e-45, -Infinity]));
    src.b.weight.assign(tf.tensor2d([[NaN, 3.4028234663852886e38], [Infinity, 1 / 3], [-1e-38, 0.1]]));
    const path = join(dir, 'toy.safetensors');
    saveModule(src, path, { config: JSON.stringify({ out: 3 }), preset: 'toy' });
    const dst = new Toy(2);
    const meta = loadModule(dst, path);
    expect(meta).toEqual({ config: '{"out":3}', preset: 'toy' });
    for (const [[n1, v1], [n2, v2]] of src.namedParameters().map((p, i) => [p, dst.namedParameters()[i]!] as const)) {
      expect(n2).toBe(n1);
      const a = new Uint8Array((v1.dataSync() as Float32Array).buffer.slice(0));
      const b = new Uint8Array((v2.dataSync() as Float32Array).buffer.slice(0));
      expect(Buffer.compare(Buffer.from(a), Buffer.from(b))).toBe(0);
    }
    // the file is complete and no temp file is left behind
    expect(readdirSync(dir).filter((f) => f.endsWith('.tmp'))).toEqual([]);
    expect(readFileSync(path).length).toBeGreaterThan(8);
    src.dispose();
    dst.dispose();
  });

  it('lists missing, unexpected and mismatched tensors with the file name and assigns nothing', () => {
    const src = new Toy(1, 3);
    const path = join(dir, 'toy3.safetensors');
    saveModule(src, path);
    const wider = new Toy(3, 5); // a.weight [4,5], a.bias [5], b.weight [5,2]
    const before = Float32Array.from(wider.a.weight.dataSync());
    expect(() => loadModule(wider, path)).toThrow(/toy3\.safetensors: checkpoint does not match the model: mismatched \(3\): a\.weight: file F32 \[4, 3\] vs model float32 \[4, 5\]/);
    expect(Array.from(wider.a.weight.dataSync())).toEqual(Array.from(before));

    class Other extends Module {
      readonly a: Linear;
      readonly c: Linear;
      constructor() {
        super();
        const rng = new Rng(4);
        this.a = this.child('a', new Linear(4, 3, rng));
        this.c = this.child('c', new Linear(3, 2, rng));
      }
    }
    const other = new Other();
    expect(() => loadModule(other, path)).toThrow(/missing from the file \(2\): c\.weight, c\.bias; unexpected in the file \(1\): b\.weight/);
    // an I32 tensor where a float32 parameter is expected is a dtype mismatch
    const p2 = join(dir, 'int.safetensors');
    writeFileSync(p2, encodeSafetensors({
      'a.weight': { dtype: 'int32', shape: [4, 3], data: new Int32Array(12) },
      'a.bias': { dtype: 'float32', shape: [3], data: new Float32Array(3) },
      'b.weight': { dtype: 'float32', shape: [3, 2], data: new Float32Array(6) },
    }));
    expect(() => loadModule(src, p2)).toThrow(/mismatched \(1\): a\.weight: file I32 \[4, 3\] vs model float32 \[4, 3\]/);
    tf.dispose([src, wider, other].flatMap((m) => m.parameters()));
  });

  it('loads a component from a whole-model file by prefix', () => {
    class Outer extends Module {
      readonly toy: Toy;
      readonly head: Linear;
      constructor() {
        super();
        this.toy = this.child('toy', new Toy(5));
        this.head = this.child('head', new Linear(2, 2, new Rng(6)));
      }
    }
    const outer = new Outer();
    const path = join(dir, 'outer.safetensors');
    saveModule(outer, path);
    const toy = new Toy(7);
    loadModule(toy, path, { prefix: 'toy.' });
    expect(Array.from(toy.a.weight.dataSync())).toEqual(Array.from(outer.toy.a.weight.dataSync()));
    expect(() => loadModule(toy, path)).toThrow(/missing from the file/);
    outer.dispose();
    toy.dispose();
  });
});
