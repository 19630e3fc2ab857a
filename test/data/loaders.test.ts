import { cpSync, existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { loadSplit, parseSplitName, readSampleImage, readPickle, writePng } from '../../src/data/index';

// Fixture written by test/fixtures/make_fixtures.py (python3 pickle, Pillow PNG/JPEG).
const FIX = resolve('test/fixtures/lisa-mini');
const tmp = mkdtempSync(join(tmpdir(), 'lens-loaders-'));
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

/** A writable copy of the fixture root, to break one thing in. */
function copyFixture(name: string): string {
  const dst = join(tmp, name);
  cpSync(FIX, dst, { recursive: true });
  return dst;
}

const rows = (m: Uint8Array, h: number, w: number): string[] =>
  Array.from({ length: h }, (_, y) => Array.from(m.subarray(y * w, y * w + w), (v) => (v === 255 ? 'X' : String(v))).join(''));

describe('RefCOCO family loader (LISA layout, python3 protocol-2 refs pickle)', () => {
  it('loads every sentence of the split as a sample, with image, label and bbox', async () => {
    const ds = await loadSplit(FIX, 'refcoco', 'val');
    expect(ds.samples.map((s) => s.id)).toEqual(['refcoco/val/0/0', 'refcoco/val/0/1']);
    const s = ds.samples[0]!;
    expect(s.sentence).toBe('left person');
    expect(ds.samples[1]!.sentence).toBe('the man');
    expect(s.label).toBe('person');
    expect([s.height, s.width, s.imageId]).toEqual([8, 8, 1]);
    expect(s.imagePath).toBe(join(FIX, 'refer_seg/images/mscoco/images/train2014/COCO_train2014_000000000001.png'));
    expect(s.bbox).toEqual([1, 1, 3, 4]);
    expect(s.reasoning).toBeUndefined();
    // polygon [1,1]-[4,5] -> pixel centres x 1..3, y 1..4
    expect(rows(s.mask(), 8, 8)).toEqual(['00000000', '01110000', '01110000', '01110000', '01110000', '00000000', '00000000', '00000000']);
  });

  it('decodes compressed RLE (hand-derived "]12603") and keeps the reasoning extension', async () => {
    const ds = await loadSplit(FIX, 'refcoco', 'testA');
    expect(ds.samples).toHaveLength(1);
    const s = ds.samples[0]!;
    expect(s.reasoning).toBe('The cup is the small object at the bottom right.');
    expect(s.label).toBe('cup');
    const m = s.mask();
    expect(Array.from(m.keys()).filter((i) => m[i])).toEqual([5 * 8 + 5, 5 * 8 + 6, 6 * 8 + 5, 6 * 8 + 6]);
  });

  it('decodes uncompressed RLE and lists all instances of an image', async () => {
    const ds = await loadSplit(FIX, 'refcoco', 'train');
    const m = ds.samples[0]!.mask();
    expect(Array.from(m.keys()).filter((i) => m[i])).toEqual([4 * 8 + 7, 5 * 8 + 7, 6 * 8 + 7, 7 * 8 + 7]);
    const inst = ds.instances(2);
    expect(inst.map((i) => [i.annId, i.categoryId])).toEqual([[201, 1], [202, 2]]);
    expect(inst[0]!.mask().reduce((a, b) => a + b, 0)).toBe(24);
    expect(ds.instances(99)).toEqual([]);
  });

  it('reads refcocog from refs(umd).p with its own splits', async () => {
    expect((await loadSplit(FIX, 'refcocog', 'test')).samples.map((s) => s.sentence)).toEqual(['the band across the top of the picture']);
    await expect(loadSplit(FIX, 'refcocog', 'testA')).rejects.toThrow("unknown split 'testA' for refcocog: expected one of train, val, test");
  });

  it('reads a protocol-4 re-dump of the refs the same as the protocol-2 file', () => {
    const p2 = readPickle(new Uint8Array(readFileSync(join(FIX, 'refer_seg/refcoco/refs(unc).p'))), 'p2');
    const p4 = readPickle(new Uint8Array(readFileSync('test/fixtures/pickle/refs_protocol4.p')), 'p4');
    expect(p4).toEqual(p2);
  });

  it('refuses the malicious os.system pickle without running it', () => {
    const path = 'test/fixtures/pickle/evil_system.p';
    expect(() => readPickle(new Uint8Array(readFileSync(path)), path)).toThrow(/evil_system\.p: pickle opcode GLOBAL \(0x63\) is refused/);
    expect(existsSync('/tmp/lens-ts-pickle-pwned')).toBe(false);
  });
});

describe('ReasonSeg loader', () => {
  it('first sentence per image by default; target 1, ignore 255, flag skipped', async () => {
    const ds = await loadSplit(FIX, 'reasonseg', 'val');
    expect(ds.samples.map((s) => s.id)).toEqual(['reasonseg/val/a/0', 'reasonseg/val/b/0']);
    const a = ds.samples[0]!;
    expect(a.sentence).toBe('What would you pour coffee into?');
    expect(a.reasoning).toBe('Coffee is poured into a mug; the mug is the square.');
    expect(rows(a.mask(), 8, 8)).toEqual(['00000000', '01111100', '01XX1100', '01XX1100', '01111100', '01111100', '00000000', '00000000']);
    expect(a.bbox).toEqual([1, 1, 5, 5]);
  });

  it('takes the size from a .jpg when the JSON has none, unites several targets', async () => {
    const ds = await loadSplit(FIX, 'reasonseg', 'val');
    const b = ds.samples[1]!;
    expect([b.height, b.width]).toEqual([8, 10]);
    expect(b.imagePath.endsWith('b.jpg')).toBe(true);
    expect(rows(b.mask(), 8, 10)).toEqual([
      '1111000000', '1111000000', '1111000000', '1111000000', '0000001110', '0000001110', '0000001110', '0000000000',
    ]);
    expect(b.bbox).toEqual([0, 0, 9, 7]);
  });

  it('gives every sentence when asked (training)', async () => {
    const ds = await loadSplit(FIX, 'reasonseg', 'val', { allSentences: true });
    expect(ds.samples.map((s) => s.id)).toEqual(['reasonseg/val/a/0', 'reasonseg/val/a/1', 'reasonseg/val/b/0']);
    expect(ds.samples[1]!.reasoning).toBe('A drink is held by the mug.');
  });
});

describe('GroundingSuite-Eval loader', () => {
  it('reads caption as the sentence, label, xyxy box as xywh, RLE mask', async () => {
    const ds = await loadSplit(FIX, 'groundingsuite', 'eval');
    expect(ds.samples.map((s) => s.id)).toEqual(['groundingsuite/eval/0/0', 'groundingsuite/eval/1/0']);
    const s = ds.samples[1]!;
    expect(s.sentence).toBe('The thin strip along the right edge.');
    expect(s.label).toBe('strip');
    expect(s.bbox).toEqual([7, 4, 1, 4]);
    const m = s.mask();
    expect(Array.from(m.keys()).filter((i) => m[i])).toEqual([39, 47, 55, 63]);
  });
});

describe('bad input: clear errors naming the file and field', () => {
  it('unknown family / split / split name', async () => {
    await expect(loadSplit(FIX, 'refclef', 'val')).rejects.toThrow(/unknown dataset family 'refclef': expected one of refcoco, refcoco\+, refcocog, reasonseg, groundingsuite/);
    await expect(loadSplit(FIX, 'refcoco', 'test')).rejects.toThrow("unknown split 'test' for refcoco: expected one of train, val, testA, testB");
    expect(() => parseSplitName('refcoco')).toThrow(/expected FAMILY\/SPLIT/);
    expect(parseSplitName('refcoco+/testB')).toEqual({ family: 'refcoco+', split: 'testB' });
  });

  it('a missing ReasonSeg split folder or RefCOCO folder', async () => {
    await expect(loadSplit(FIX, 'reasonseg', 'test')).rejects.toThrow(/ReasonSeg\/test: split folder not found/);
    await expect(loadSplit(FIX, 'refcoco+', 'val')).rejects.toThrow(/refcoco\+\/instances\.json: file not found/);
  });

  it('malformed JSON names the file', async () => {
    const root = copyFixture('badjson');
    writeFileSync(join(root, 'refer_seg/refcoco/instances.json'), '{"images": [');
    await expect(loadSplit(root, 'refcoco', 'val')).rejects.toThrow(/refcoco\/instances\.json: malformed JSON/);
    writeFileSync(join(root, 'reason_seg/ReasonSeg/val/a.json'), '{oops');
    await expect(loadSplit(root, 'reasonseg', 'val')).rejects.toThrow(/val\/a\.json: malformed JSON/);
    const gs = join(root, 'GroundingSuite-Eval.jsonl');
    writeFileSync(gs, `${readFileSync(gs, 'utf8')}not json\n`);
    await expect(loadSplit(root, 'groundingsuite', 'eval')).rejects.toThrow(/GroundingSuite-Eval\.jsonl line 3: malformed JSON/);
    writeFileSync(gs, '{"idx": 0}\n');
    await expect(loadSplit(root, 'groundingsuite', 'eval')).rejects.toThrow(/GroundingSuite-Eval\.jsonl line 1\.image_path: expected a string, got nothing/);
  });

  it('a missing image file names the annotation field', async () => {
    const root = copyFixture('noimage');
    rmSync(join(root, 'refer_seg/images/mscoco/images/train2014/COCO_train2014_000000000001.png'));
    await expect(loadSplit(root, 'refcoco', 'val')).rejects.toThrow(/instances\.json images\[0\]\.file_name: image file .*000000000001\.png does not exist/);
    rmSync(join(root, 'reason_seg/ReasonSeg/val/b.jpg'));
    await expect(loadSplit(root, 'reasonseg', 'val')).rejects.toThrow(/b\.json: image file b\.jpg \/ b\.png does not exist/);
  });

  it('file names escaping the dataset root are refused', async () => {
    const root = copyFixture('escape');
    const p = join(root, 'refer_seg/refcoco/instances.json');
    const inst = JSON.parse(readFileSync(p, 'utf8'));
    inst.images[1].file_name = '../../../../../etc/passwd';
    writeFileSync(p, JSON.stringify(inst));
    await expect(loadSplit(root, 'refcoco', 'val')).rejects.toThrow(/images\[1\]\.file_name: file name "\.\.\/.*escapes the dataset root/);
    writeFileSync(join(root, 'GroundingSuite-Eval.jsonl'), JSON.stringify({ idx: 0, image_path: '/etc/passwd', caption: 'x', box: [0, 0, 1, 1], segmentation: { size: [1, 1], counts: '01' } }) + '\n');
    await expect(loadSplit(root, 'groundingsuite', 'eval')).rejects.toThrow(/line 1\.image_path: file name "\/etc\/passwd" escapes/);
  });

  it('a mask of the wrong size and RLE that does not decode to h*w', async () => {
    const root = copyFixture('badmask');
    const p = join(root, 'refer_seg/refcoco/instances.json');
    const inst = JSON.parse(readFileSync(p, 'utf8'));
    inst.annotations[1].segmentation.size = [8, 9];
    inst.annotations[3].segmentation.counts = [60, 3];
    writeFileSync(p, JSON.stringify(inst));
    const testA = await loadSplit(root, 'refcoco', 'testA');
    expect(() => testA.samples[0]!.mask()).toThrow(/annotations\[1\]\.segmentation\.size: mask is \[8,9\] but the image is \[8, 8\]/);
    const train = await loadSplit(root, 'refcoco', 'train');
    expect(() => train.samples[0]!.mask()).toThrow(/annotations\[3\]\.segmentation: RLE counts cover 63 pixels, expected size 8x8 = 64/);
  });

  it('an image whose real size differs from its annotation', async () => {
    const root = copyFixture('badsize');
    await writePng(join(root, 'refer_seg/images/mscoco/images/train2014/COCO_train2014_000000000001.png'), new Uint8Array(6 * 8 * 3), 6, 8);
    const ds = await loadSplit(root, 'refcoco', 'val');
    await expect(readSampleImage(ds.samples[0]!)).rejects.toThrow(/000000000001\.png: image is 6x8 but its annotation \(sample refcoco\/val\/0\/0\) says 8x8/);
    const ok = await readSampleImage((await loadSplit(FIX, 'refcoco', 'val')).samples[0]!);
    expect([ok.height, ok.width, ok.data.length]).toEqual([8, 8, 192]);
  });

  it('a polygon with fewer than 3 points', async () => {
    const root = copyFixture('badpoly');
    const p = join(root, 'reason_seg/ReasonSeg/val/a.json');
    const j = JSON.parse(readFileSync(p, 'utf8'));
    j.shapes[0].points = [[1, 1], [5, 5]];
    writeFileSync(p, JSON.stringify(j));
    await expect(loadSplit(root, 'reasonseg', 'val')).rejects.toThrow(/a\.json shapes\[0\]\.points: polygon has 2 points, expected at least 3/);
    const q = join(root, 'refer_seg/refcoco/instances.json');
    const inst = JSON.parse(readFileSync(q, 'utf8'));
    inst.annotations[0].segmentation = [[1, 1, 4, 1]];
    writeFileSync(q, JSON.stringify(inst));
    const ds = await loadSplit(root, 'refcoco', 'val');
    expect(() => ds.samples[0]!.mask()).toThrow(/annotations\[0\]\.segmentation\[0\]: polygon has 2 points, expected at least 3/);
  });

  it('unsupported pickle content and refs pointing at unknown annotations', async () => {
    const root = copyFixture('badrefs');
    cpSync('test/fixtures/pickle/evil_system.p', join(root, 'refer_seg/refcoco/refs(unc).p'));
    await expect(loadSplit(root, 'refcoco', 'val')).rejects.toThrow(/refs\(unc\)\.p: pickle opcode GLOBAL/);
    const root2 = copyFixture('badrefs2');
    const p = join(root2, 'refer_seg/refcoco/instances.json');
    const inst = JSON.parse(readFileSync(p, 'utf8'));
    inst.annotations.shift();
    writeFileSync(p, JSON.stringify(inst));
    await expect(loadSplit(root2, 'refcoco', 'val')).rejects.toThrow(/refs\(unc\)\.p refs\[0\]\.ann_id: annotation 101 is not in/);
  });
});

describe('writers -> loaders round trip (the path generated data takes)', () => {
  it('a LISA-layout root written with writePickle / encodeRle / writePng loads back exactly', async () => {
    const { encodeRle } = await import('../../src/data/formats/rle');
    const { writePickle } = await import('../../src/data/formats/pickle');
    const root = join(tmp, 'written');
    const h = 6;
    const w = 7;
    const m = new Uint8Array(h * w);
    for (const p of [8, 9, 15, 16, 30]) m[p] = 1;
    await writePng(join(root, 'refer_seg/images/mscoco/images/train2014/x.png'), new Uint8Array(h * w * 3).fill(9), h, w);
    const { mkdirSync } = await import('node:fs');
    mkdirSync(join(root, 'refer_seg/refcoco+'), { recursive: true });
    writeFileSync(
      join(root, 'refer_seg/refcoco+/instances.json'),
      JSON.stringify({
        images: [{ id: 5, file_name: 'x.png', height: h, width: w }],
        annotations: [{ id: 50, image_id: 5, category_id: 3, segmentation: encodeRle(m, h, w), area: 5, bbox: [1, 1, 2, 3], iscrowd: 0 }],
        categories: [{ id: 3, name: 'star', supercategory: 'shape' }],
      }),
    );
    writeFileSync(
      join(root, 'refer_seg/refcoco+/refs(unc).p'),
      writePickle([{ ref_id: 9, ann_id: 50, image_id: 5, split: 'testB', category_id: 3, sent_ids: [0], file_name: 'x.png',
        sentences: [{ sent: 'the green star', raw: 'The green star', tokens: ['the', 'green', 'star'], sent_id: 0, reasoning: 'Green and star-shaped.' }] }]),
    );
    const ds = await loadSplit(root, 'refcoco+', 'testB');
    expect(ds.samples).toHaveLength(1);
    const s = ds.samples[0]!;
    expect([s.id, s.sentence, s.label, s.reasoning]).toEqual(['refcoco+/testB/9/0', 'the green star', 'star', 'Green and star-shaped.']);
    expect(s.mask()).toEqual(m);
  });

  it.skipIf(!existsSync('/usr/bin/python3'))('python3 reads writePickle output back to the same data', async () => {
    const { writePickle } = await import('../../src/data/formats/pickle');
    const { execFileSync } = await import('node:child_process');
    const value = [{ ref_id: 1, big: 2n ** 40n, neg: -70000, f: 0.25, s: 'naïve ✓', ok: false, none: null, nested: [[1, 2], []] }];
    const p = join(tmp, 'w.p');
    writeFileSync(p, writePickle(value));
    const out = execFileSync('/usr/bin/python3', ['-c', 'import pickle,json,sys; print(json.dumps(pickle.load(open(sys.argv[1],"rb")), ensure_ascii=False))', p], { encoding: 'utf8' });
    expect(JSON.parse(out)).toEqual([{ ...value[0], big: 2 ** 40 }]);
  });
});
