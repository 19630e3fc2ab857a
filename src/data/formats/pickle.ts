/**
 * Python pickle, data only: a writer of protocol 2 (what REFER's `refs(unc).p` /
 * `refs(umd).p` files are) and a safe reader.
 *
 * The reader is a small stack machine over the opcodes of CPython's
 * `Lib/pickletools.py` that build plain data (None, bools, ints, floats, strings,
 * lists, tuples, dicts, memo) and REFUSES every opcode that names or calls Python
 * code (GLOBAL, STACK_GLOBAL, REDUCE, BUILD, INST, OBJ, NEWOBJ, NEWOBJ_EX, EXT*,
 * PERSID, BINPERSID, ...): nothing is ever looked up or executed, so a malicious
 * pickle can only produce an error naming the file and the opcode.
 *
 * Real refs pickles were written by Python 2 cPickle at protocol 2: keys and ASCII
 * text as SHORT_BINSTRING / BINSTRING, unicode as BINUNICODE, ints as BININT*,
 * memo via BINPUT / LONG_BINPUT / BINGET. Files re-dumped by Python 3 (protocols 3-5)
 * add FRAME, SHORT_BINUNICODE, MEMOIZE, which are also accepted.
 *
 * The writer mirrors CPython's C pickler (`Modules/_pickle.c`, the one `pickle.dumps`
 * uses) at protocol 2, without memo
 * (no PUT/GET): its output equals `pickletools.optimize(pickle.dumps(v, 2))` for
 * values without shared sub-objects.
 */

/** Plain data a pickle may hold here. Tuples read as arrays; non-string dict keys are stringified. */
export type PickleValue = null | boolean | number | bigint | string | PickleValue[] | { [k: string]: PickleValue };

// Opcodes (pickletools names).
const OP = {
  MARK: 0x28, // (
  STOP: 0x2e, // .
  POP: 0x30, // 0
  POP_MARK: 0x31, // 1
  DUP: 0x32, // 2
  FLOAT: 0x46, // F
  INT: 0x49, // I
  BININT: 0x4a, // J
  BININT1: 0x4b, // K
  LONG: 0x4c, // L
  BININT2: 0x4d, // M
  NONE: 0x4e, // N
  STRING: 0x53, // S
  BINSTRING: 0x54, // T
  SHORT_BINSTRING: 0x55, // U
  UNICODE: 0x56, // V
  BINUNICODE: 0x58, // X
  APPEND: 0x61, // a
  BINGET: 0x68, // h
  LONG_BINGET: 0x6a, // j
  LIST: 0x6c, // l
  EMPTY_LIST: 0x5d, // ]
  EMPTY_TUPLE: 0x29, // )
  TUPLE: 0x74, // t
  EMPTY_DICT: 0x7d, // }
  DICT: 0x64, // d
  APPENDS: 0x65, // e
  GET: 0x67, // g
  PUT: 0x70, // p
  BINPUT: 0x71, // q
  LONG_BINPUT: 0x72, // r
  SETITEM: 0x73, // s
  SETITEMS: 0x75, // u
  BINFLOAT: 0x47, // G
  PROTO: 0x80,
  TUPLE1: 0x85,
  TUPLE2: 0x86,
  TUPLE3: 0x87,
  NEWTRUE: 0x88,
  NEWFALSE: 0x89,
  LONG1: 0x8a,
  LONG4: 0x8b,
  SHORT_BINUNICODE: 0x8c,
  BINUNICODE8: 0x8d,
  FRAME: 0x95,
  MEMOIZE: 0x94,
} as const;

/** Opcodes that reference or run Python code: refused by name. */
const REFUSED: Record<number, string> = {
  0x63: 'GLOBAL',
  0x93: 'STACK_GLOBAL',
  0x52: 'REDUCE',
  0x62: 'BUILD',
  0x69: 'INST',
  0x6f: 'OBJ',
  0x81: 'NEWOBJ',
  0x92: 'NEWOBJ_EX',
  0x82: 'EXT1',
  0x83: 'EXT2',
  0x84: 'EXT4',
  0x50: 'PERSID',
  0x51: 'BINPERSID',
  0x42: 'BINBYTES',
  0x43: 'SHORT_BINBYTES',
  0x8e: 'BINBYTES8',
  0x8f: 'EMPTY_SET',
  0x90: 'ADDITEMS',
  0x91: 'FROZENSET',
  0x96: 'BYTEARRAY8',
  0x97: 'NEXT_BUFFER',
  0x98: 'READONLY_BUFFER',
};

const MARK = Symbol('mark');
type Slot = PickleValue | typeof MARK;

const utf8 = new TextDecoder('utf-8', { fatal: true });
const latin1 = new TextDecoder('latin1');

/** Python 2 `str` bytes: UTF-8 when valid (ASCII always is), else Latin-1 (as `encoding='latin1'`). */
function decodePy2Str(b: Uint8Array): string {
  try {
    return utf8.decode(b);
  } catch {
    return latin1.decode(b);
  }
}

/** Little-endian two's-complement bytes -> number when safe, else bigint (pickle LONG1/LONG4). */
function decodeLong(b: Uint8Array): number | bigint {
  if (b.length === 0) return 0;
  let v = 0n;
  for (let i = b.length - 1; i >= 0; i--) v = (v << 8n) | BigInt(b[i]!);
  if (b[b.length - 1]! & 0x80) v -= 1n << BigInt(8 * b.length);
  return v >= BigInt(Number.MIN_SAFE_INTEGER) && v <= BigInt(Number.MAX_SAFE_INTEGER) ? Number(v) : v;
}

/** Parses a data-only pickle (protocols 0-5 minus code/bytes opcodes). `where` names the file. */
export function readPickle(bytes: Uint8Array, where: string): PickleValue {
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const stack: Slot[] = [];
  const memo = new Map<number, PickleValue>();
  let p = 0;

  const fail = (msg: string, at: number): never => {
    throw new Error(`${where}: pickle ${msg} (at byte ${at})`);
  };
  const need = (n: number, at: number): void => {
    if (p + n > bytes.length) fail(`is truncated: needs ${n} more bytes`, at);
  };
  const take = (n: number, at: number): Uint8Array => {
    need(n, at);
    const b = bytes.subarray(p, p + n);
    p += n;
    return b;
  };
  const line = (at: number): string => {
    const end = bytes.indexOf(0x0a, p);
    if (end < 0) fail('is truncated: text argument without newline', at);
    const s = latin1.decode(bytes.subarray(p, end));
    p = end + 1;
    return s;
  };
  const pop = (at: number): PickleValue => {
    const v = stack.pop();
    if (v === undefined || v === MARK) fail('pops an empty stack or a MARK', at);
    return v as PickleValue;
  };
  const top = (at: number): PickleValue => {
    const v = stack[stack.length - 1];
    if (v === undefined || v === MARK) fail('expects a value on the stack', at);
    return v as PickleValue;
  };
  const popMark = (at: number): PickleValue[] => {
    let i = stack.length - 1;
    while (i >= 0 && stack[i] !== MARK) i--;
    if (i < 0) fail('has no MARK for a multi-item opcode', at);
    const items = stack.slice(i + 1) as PickleValue[];
    stack.length = i;
    return items;
  };
  const asList = (v: PickleValue, at: number): PickleValue[] => {
    if (!Array.isArray(v)) fail('appends to something that is not a list', at);
    return v as PickleValue[];
  };
  const asDict = (v: PickleValue, at: number): { [k: string]: PickleValue } => {
    if (v === null || typeof v !== 'object' || Array.isArray(v)) fail('sets an item on something that is not a dict', at);
    return v as { [k: string]: PickleValue };
  };
  const key = (k: PickleValue, at: number): string => {
    if (typeof k === 'string') return k;
    if (typeof k === 'number' || typeof k === 'bigint' || typeof k === 'boolean' || k === null) return String(k);
    return fail('has a dict key that is not a string or number', at);
  };
  const putMemo = (idx: number, at: number): void => {
    memo.set(idx, top(at));
  };
  const getMemo = (idx: number, at: number): PickleValue => {
    if (!memo.has(idx)) fail(`reads memo entry ${idx} that was never stored`, at);
    return memo.get(idx)!;
  };

  while (p < bytes.length) {
    const at = p;
    const op = bytes[p++]!;
    switch (op) {
      case OP.PROTO:
        need(1, at);
        if (bytes[p]! > 5) fail(`protocol ${bytes[p]} is not supported (0-5)`, at);
        p += 1;
        break;
      case OP.FRAME:
        need(8, at);
        p += 8; // framing only groups bytes; contents follow inline
        break;
      case OP.STOP: {
        const v = pop(at);
        if (stack.length) fail(`leaves ${stack.length} items on the stack at STOP`, at);
        return v;
      }
      case OP.MARK:
        stack.push(MARK);
        break;
      case OP.POP:
        if (stack.length === 0) fail('pops an empty stack', at);
        stack.pop();
        break;
      case OP.POP_MARK:
        popMark(at);
        break;
      case OP.DUP:
        stack.push(top(at));
        break;
      case OP.NONE:
        stack.push(null);
        break;
      case OP.NEWTRUE:
        stack.push(true);
        break;
      case OP.NEWFALSE:
        stack.push(false);
        break;
      case OP.BININT1:
        need(1, at);
        stack.push(bytes[p]!);
        p += 1;
        break;
      case OP.BININT2:
        need(2, at);
        stack.push(view.getUint16(p, true));
        p += 2;
        break;
      case OP.BININT:
        need(4, at);
        stack.push(view.getInt32(p, true));
        p += 4;
        break;
      case OP.LONG1: {
        need(1, at);
        const n = bytes[p++]!;
        stack.push(decodeLong(take(n, at)));
        break;
      }
      case OP.LONG4: {
        need(4, at);
        const n = view.getInt32(p, true);
        p += 4;
        if (n < 0) fail('LONG4 has a negative length', at);
        stack.push(decodeLong(take(n, at)));
        break;
      }
      case OP.INT: {
        const s = line(at).trim();
        if (s === '00') stack.push(false);
        else if (s === '01') stack.push(true);
        else {
          if (!/^[-+]?\d+$/.test(s)) fail(`INT argument ${JSON.stringify(s)} is not an integer`, at);
          const b = BigInt(s);
          stack.push(b >= BigInt(Number.MIN_SAFE_INTEGER) && b <= BigInt(Number.MAX_SAFE_INTEGER) ? Number(b) : b);
        }
        break;
      }
      case OP.LONG: {
        const s = line(at).trim().replace(/L$/, '');
        if (!/^[-+]?\d+$/.test(s)) fail(`LONG argument ${JSON.stringify(s)} is not an integer`, at);
        const b = BigInt(s);
        stack.push(b >= BigInt(Number.MIN_SAFE_INTEGER) && b <= BigInt(Number.MAX_SAFE_INTEGER) ? Number(b) : b);
        break;
      }
      case OP.BINFLOAT:
        need(8, at);
        stack.push(view.getFloat64(p, false)); // big-endian, as struct '>d'
        p += 8;
        break;
      case OP.FLOAT: {
        const s = line(at).trim();
        const v = Number(s);
        if (s === '' || Number.isNaN(v) && !/^[-+]?nan$/i.test(s)) fail(`FLOAT argument ${JSON.stringify(s)} is not a number`, at);
        stack.push(v);
        break;
      }
      case OP.SHORT_BINSTRING: {
        need(1, at);
        const n = bytes[p++]!;
        stack.push(decodePy2Str(take(n, at)));
        break;
      }
      case OP.BINSTRING: {
        need(4, at);
        const n = view.getInt32(p, true);
        p += 4;
        if (n < 0) fail('BINSTRING has a negative length', at);
        stack.push(decodePy2Str(take(n, at)));
        break;
      }
      case OP.SHORT_BINUNICODE: {
        need(1, at);
        const n = bytes[p++]!;
        stack.push(utf8.decode(take(n, at)));
        break;
      }
      case OP.BINUNICODE: {
        need(4, at);
        const n = view.getUint32(p, true);
        p += 4;
        stack.push(utf8.decode(take(n, at)));
        break;
      }
      case OP.BINUNICODE8: {
        need(8, at);
        const n = Number(view.getBigUint64(p, true));
        p += 8;
        stack.push(utf8.decode(take(n, at)));
        break;
      }
      case OP.STRING: {
        // Protocol 0: a Python repr in quotes; only simple escapes are decoded.
        const s = line(at).trim();
        const q = s[0];
        if ((q !== "'" && q !== '"') || s[s.length - 1] !== q || s.length < 2) fail('STRING argument is not quoted', at);
        stack.push(s.slice(1, -1).replace(/\\x([0-9a-fA-F]{2})|\\(.)/g, (_m, hex: string | undefined, ch: string | undefined) =>
          hex ? String.fromCharCode(parseInt(hex, 16)) : ch === 'n' ? '\n' : ch === 't' ? '\t' : ch === 'r' ? '\r' : ch!,
        ));
        break;
      }
      case OP.UNICODE: {
        const s = line(at);
        stack.push(s.replace(/\\u([0-9a-fA-F]{4})|\\U([0-9a-fA-F]{8})/g, (_m, a: string | undefined, b: string | undefined) =>
          String.fromCodePoint(parseInt((a ?? b)!, 16)),
        ));
        break;
      }
      case OP.EMPTY_LIST:
        stack.push([]);
        break;
      case OP.LIST:
        stack.push(popMark(at));
        break;
      case OP.APPEND: {
        const v = pop(at);
        asList(top(at), at).push(v);
        break;
      }
      case OP.APPENDS: {
        const items = popMark(at);
        asList(top(at), at).push(...items);
        break;
      }
      case OP.EMPTY_TUPLE:
        stack.push([]);
        break;
      case OP.TUPLE:
        stack.push(popMark(at));
        break;
      case OP.TUPLE1:
      case OP.TUPLE2:
      case OP.TUPLE3: {
        const n = op - OP.TUPLE1 + 1;
        const items: PickleValue[] = [];
        for (let i = 0; i < n; i++) items.unshift(pop(at));
        stack.push(items);
        break;
      }
      case OP.EMPTY_DICT:
        stack.push({});
        break;
      case OP.DICT: {
        const items = popMark(at);
        if (items.length % 2) fail('DICT has an odd number of items', at);
        const d: { [k: string]: PickleValue } = {};
        for (let i = 0; i < items.length; i += 2) d[key(items[i]!, at)] = items[i + 1]!;
        stack.push(d);
        break;
      }
      case OP.SETITEM: {
        const v = pop(at);
        const k = pop(at);
        asDict(top(at), at)[key(k, at)] = v;
        break;
      }
      case OP.SETITEMS: {
        const items = popMark(at);
        if (items.length % 2) fail('SETITEMS has an odd number of items', at);
        const d = asDict(top(at), at);
        for (let i = 0; i < items.length; i += 2) d[key(items[i]!, at)] = items[i + 1]!;
        break;
      }
      case OP.BINPUT:
        need(1, at);
        putMemo(bytes[p++]!, at);
        break;
      case OP.LONG_BINPUT:
        need(4, at);
        putMemo(view.getUint32(p, true), at);
        p += 4;
        break;
      case OP.PUT: {
        const s = line(at);
        putMemo(Number.parseInt(s, 10), at);
        break;
      }
      case OP.MEMOIZE:
        putMemo(memo.size, at);
        break;
      case OP.BINGET:
        need(1, at);
        stack.push(getMemo(bytes[p++]!, at));
        break;
      case OP.LONG_BINGET:
        need(4, at);
        stack.push(getMemo(view.getUint32(p, true), at));
        p += 4;
        break;
      case OP.GET:
        stack.push(getMemo(Number.parseInt(line(at), 10), at));
        break;
      default: {
        const name = REFUSED[op];
        if (name) {
          fail(`opcode ${name} (0x${op.toString(16)}) is refused: only plain data (lists, dicts, strings, numbers) is read, never Python objects or code`, at);
        }
        fail(`opcode 0x${op.toString(16).padStart(2, '0')} is not supported by this data-only reader`, at);
      }
    }
  }
  return fail('ends without STOP', p);
}

/** Growable byte buffer for the writer. */
class Bytes {
  private buf = new Uint8Array(1024);
  length = 0;
  private grow(n: number): void {
    if (this.length + n <= this.buf.length) return;
    let cap = this.buf.length * 2;
    while (cap < this.length + n) cap *= 2;
    const b = new Uint8Array(cap);
    b.set(this.buf.subarray(0, this.length));
    this.buf = b;
  }
  byte(v: number): void {
    this.grow(1);
    this.buf[this.length++] = v;
  }
  bytes(v: Uint8Array): void {
    this.grow(v.length);
    this.buf.set(v, this.length);
    this.length += v.length;
  }
  u32(v: number): void {
    this.grow(4);
    new DataView(this.buf.buffer).setUint32(this.length, v, true);
    this.length += 4;
  }
  result(): Uint8Array {
    return this.buf.slice(0, this.length);
  }
}

/** Two's-complement little-endian minimal bytes of an integer (CPython `encode_long`). */
function encodeLong(v: bigint): Uint8Array {
  if (v === 0n) return new Uint8Array(0);
  const out: number[] = [];
  let x = v;
  for (;;) {
    out.push(Number(x & 0xffn));
    x >>= 8n; // arithmetic shift for negatives
    const last = out[out.length - 1]!;
    if ((x === 0n && !(last & 0x80)) || (x === -1n && last & 0x80)) break;
  }
  return Uint8Array.from(out);
}

const BATCH = 1000; // CPython BATCHSIZE

/**
 * Serialises plain data as a protocol-2 pickle, opcode for opcode as CPython 3 does
 * (minus memo). Integral numbers become Python ints (BININT1/BININT2/BININT/LONG1),
 * other numbers floats (BINFLOAT), bigints ints, strings BINUNICODE, arrays lists,
 * objects dicts with string keys.
 */
export function writePickle(value: PickleValue): Uint8Array {
  const out = new Bytes();
  const enc = new TextEncoder();
  const saveInt = (v: bigint): void => {
    if (v >= 0n && v <= 0xffn) {
      out.byte(OP.BININT1);
      out.byte(Number(v));
    } else if (v >= 0n && v <= 0xffffn) {
      out.byte(OP.BININT2);
      out.byte(Number(v & 0xffn));
      out.byte(Number(v >> 8n));
    } else if (v >= -0x80000000n && v <= 0x7fffffffn) {
      out.byte(OP.BININT);
      out.u32(Number(BigInt.asUintN(32, v)));
    } else {
      const b = encodeLong(v);
      if (b.length > 255) throw new Error(`writePickle: integer ${v} is too large for LONG1`);
      out.byte(OP.LONG1);
      out.byte(b.length);
      out.bytes(b);
    }
  };
  const save = (v: PickleValue, path: string): void => {
    if (v === null) out.byte(OP.NONE);
    else if (v === true) out.byte(OP.NEWTRUE);
    else if (v === false) out.byte(OP.NEWFALSE);
    else if (typeof v === 'bigint') saveInt(v);
    else if (typeof v === 'number') {
      if (Number.isInteger(v) && !Object.is(v, -0)) saveInt(BigInt(v));
      else {
        out.byte(OP.BINFLOAT);
        const b = new Uint8Array(8);
        new DataView(b.buffer).setFloat64(0, v, false);
        out.bytes(b);
      }
    } else if (typeof v === 'string') {
      const b = enc.encode(v);
      out.byte(OP.BINUNICODE);
      out.u32(b.length);
      out.bytes(b);
    } else if (Array.isArray(v)) {
      // _pickle.c batch_list_exact: one item -> APPEND; else MARK..APPENDS per 1000.
      out.byte(OP.EMPTY_LIST);
      if (v.length === 1) {
        save(v[0]!, `${path}[0]`);
        out.byte(OP.APPEND);
      } else if (v.length > 1) {
        for (let i = 0; i < v.length; i += BATCH) {
          out.byte(OP.MARK);
          for (let j = i; j < Math.min(i + BATCH, v.length); j++) save(v[j]!, `${path}[${j}]`);
          out.byte(OP.APPENDS);
        }
      }
    } else if (typeof v === 'object') {
      // _pickle.c batch_dict_exact: one pair -> SETITEM; else MARK..SETITEMS per 1000,
      // continuing while the last batch was full (so exactly 1000 pairs end with an empty batch).
      const entries = Object.entries(v);
      const saveKv = ([k, x]: [string, PickleValue]): void => {
        save(k, path);
        save(x, `${path}.${k}`);
      };
      out.byte(OP.EMPTY_DICT);
      if (entries.length === 1) {
        saveKv(entries[0]!);
        out.byte(OP.SETITEM);
      } else if (entries.length > 1) {
        let i = 0;
        let n: number;
        do {
          const batch = entries.slice(i, i + BATCH);
          n = batch.length;
          i += n;
          out.byte(OP.MARK);
          batch.forEach(saveKv);
          out.byte(OP.SETITEMS);
        } while (n === BATCH);
      }
    } else {
      throw new Error(`writePickle: value at ${path || 'top'} has type ${typeof v}, expected plain data`);
    }
  };
  out.byte(OP.PROTO);
  out.byte(2);
  save(value, '');
  out.byte(OP.STOP);
  return out.result();
}
