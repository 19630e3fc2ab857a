import { describe, expect, it } from 'vitest';
import { readPickle, writePickle } from '../../src/data/formats/pickle';

const hex = (s: string): Uint8Array => Uint8Array.from(s.match(/../g)!.map((b) => parseInt(b, 16)));
const toHex = (b: Uint8Array): string => Buffer.from(b).toString('hex');

// Known answer: /usr/bin/python3 -c "pickletools.optimize(pickle.dumps(V, 2)).hex()" with
// V = [{'ref_id': 7, 'sentences': [{'sent': 'left man', 'sent_id': 300}],
//       'bbox': [1.5, -2, 70000, 2**40, -2**31-1], 'ok': True, 'none': None, 'u': 'café'}]
const PY_OPTIMIZED =
  '80025d7d2858060000007265665f69644b07580900000073656e74656e6365735d7d28580400000073656e7458080000006c656674206d616e580700000073656e745f69644d2c017561580400000062626f785d28473ff80000000000004afeffffff4a701101008a060000000000018a05ffffff7fff6558020000006f6b8858040000006e6f6e654e5801000000755805000000636166c3a975612e';
// The same value as plain pickle.dumps(V, 2) (with BINPUT memo entries).
const PY_PLAIN =
  '80025d71007d71012858060000007265665f696471024b07580900000073656e74656e63657371035d71047d710528580400000073656e74710658080000006c656674206d616e7107580700000073656e745f696471084d2c017561580400000062626f7871095d710a28473ff80000000000004afeffffff4a701101008a060000000000018a05ffffff7fff6558020000006f6b710b8858040000006e6f6e65710c4e580100000075710d5805000000636166c3a9710e75612e';
const VALUE = [
  { ref_id: 7, sentences: [{ sent: 'left man', sent_id: 300 }], bbox: [1.5, -2, 70000, 2 ** 40, -(2 ** 31) - 1], ok: true, none: null, u: 'café' },
];

describe('pickle writer (protocol 2)', () => {
  it('writes the same bytes as CPython pickle.dumps(v, 2) after pickletools.optimize', () => {
    expect(toHex(writePickle(VALUE))).toBe(PY_OPTIMIZED);
  });

  it('encodes integers like CPython (BININT1/BININT/LONG1 boundaries)', () => {
    expect(toHex(writePickle(255))).toBe('80024bff2e');
    expect(toHex(writePickle(-1))).toBe('80024affffffff2e');
    expect(toHex(writePickle(-256))).toBe('80024a00ffffff2e');
    expect(toHex(writePickle(-(2 ** 31) - 1))).toBe('80028a05ffffff7fff2e');
    expect(toHex(writePickle(2n ** 63n))).toBe('80028a090000000000000080002e');
  });

  it('batches like CPython _pickle.c (known answers from python3 pickle.dumps)', () => {
    const nones = (n: number): string => '4e'.repeat(n);
    // [None]*1001 and *2001: full MARK..APPENDS batches, then a MARK None APPENDS tail
    expect(toHex(writePickle(Array(1001).fill(null)))).toBe(`80025d28${nones(1000)}65284e652e`);
    expect(toHex(writePickle(Array(1000).fill(null)))).toBe(`80025d28${nones(1000)}652e`);
    expect(toHex(writePickle([null]))).toBe('80025d4e612e');
    expect(toHex(writePickle([]))).toBe('80025d2e');
    expect(toHex(writePickle({}))).toBe('80027d2e');
    // a dict of exactly 1000 pairs ends with an empty MARK SETITEMS batch ('2875' before STOP)
    const d: Record<string, null> = {};
    for (let i = 0; i < 1000; i++) d[`k${i}`] = null;
    expect(toHex(writePickle(d)).endsWith('4e7528752e')).toBe(true);
    const big = Array.from({ length: 2501 }, (_, i) => i);
    expect(readPickle(writePickle(big), 'big')).toEqual(big);
  });
});

describe('pickle reader', () => {
  it('reads CPython protocol-2 output with and without memo', () => {
    expect(readPickle(hex(PY_PLAIN), 'plain.p')).toEqual(VALUE);
    expect(readPickle(hex(PY_OPTIMIZED), 'opt.p')).toEqual(VALUE);
  });

  it('reads Python 2 style SHORT_BINSTRING / BINSTRING keys and BINGET memo references', () => {
    // \x80\x02 ] q\x00 ( } q\x01 ( U\x06ref_id K\x07 U\x04sent T\x03\x00\x00\x00abc u h\x01 e .
    // a list holding the same dict twice (second via BINGET 1)
    const b = Uint8Array.from([
      0x80, 0x02, 0x5d, 0x71, 0x00, 0x28, 0x7d, 0x71, 0x01, 0x28,
      0x55, 6, ...Buffer.from('ref_id'), 0x4b, 7,
      0x55, 4, ...Buffer.from('sent'), 0x54, 3, 0, 0, 0, ...Buffer.from('abc'),
      0x75, 0x68, 0x01, 0x65, 0x2e,
    ]);
    const v = readPickle(b, 'refs(unc).p') as Array<Record<string, unknown>>;
    expect(v).toEqual([{ ref_id: 7, sent: 'abc' }, { ref_id: 7, sent: 'abc' }]);
    expect(v[0]).toBe(v[1]);
  });

  it('reads tuples as arrays and protocol-4 framing / SHORT_BINUNICODE / MEMOIZE', () => {
    // python3: pickle.dumps(('a', (1, 2)), 4)
    const b = hex('8004950d000000000000008c0161944b014b02869486942e');
    expect(readPickle(b, 'p4')).toEqual(['a', [1, 2]]);
  });

  it('refuses code opcodes naming the file and opcode, without executing anything', () => {
    // python3: pickle.dumps(Evil(), 2) where Evil.__reduce__ = (os.system, ('touch /tmp/pwned',))
    // c posix\nsystem\n q\x00 X... \x85 R . (hand-assembled GLOBAL + REDUCE)
    const evil = Uint8Array.from([0x80, 0x02, 0x63, ...Buffer.from('posix\nsystem\n'), 0x71, 0x00, 0x58, 4, 0, 0, 0, ...Buffer.from('true'), 0x85, 0x52, 0x2e]);
    expect(() => readPickle(evil, 'refs(unc).p')).toThrow(/refs\(unc\)\.p: pickle opcode GLOBAL \(0x63\) is refused/);
    const stackGlobal = Uint8Array.from([0x80, 0x04, 0x8c, 2, 0x6f, 0x73, 0x8c, 6, ...Buffer.from('system'), 0x93, 0x2e]);
    expect(() => readPickle(stackGlobal, 'x.p')).toThrow(/STACK_GLOBAL/);
    expect(() => readPickle(Uint8Array.from([0x80, 0x02, 0x4e, 0x85, 0x52, 0x2e]), 'x.p')).toThrow(/REDUCE/);
    expect(() => readPickle(Uint8Array.from([0x80, 0x02, 0x7d, 0x7d, 0x62, 0x2e]), 'x.p')).toThrow(/BUILD/);
  });

  it('rejects truncated and malformed pickles with the file name', () => {
    expect(() => readPickle(hex(PY_PLAIN).subarray(0, 40), 'cut.p')).toThrow(/cut\.p: pickle is truncated|cut\.p: pickle ends without STOP/);
    expect(() => readPickle(Uint8Array.from([0x80, 0x02, 0x4e]), 'n.p')).toThrow(/n\.p: pickle ends without STOP/);
    expect(() => readPickle(Uint8Array.from([0x80, 0x02, 0x68, 0x05, 0x2e]), 'm.p')).toThrow(/memo entry 5/);
    expect(() => readPickle(Uint8Array.from([0x80, 0x02, 0xff, 0x2e]), 'f.p')).toThrow(/opcode 0xff is not supported/);
  });
});
