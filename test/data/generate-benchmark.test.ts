import { createHash } from 'node:crypto';
import { existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, relative } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadSplit } from '../../src/data/index';
import { readImageRgb } from '../../src/data/formats/image';
import { readPickle } from '../../src/data/formats/pickle';
import { ensureBenchmark, generateBenchmark, generateReasonImage, generateReferImage, readManifest, type Manifest } from '../../src/data/generate/benchmark';
import { resolveGenerateConfig, type ReferSplit } from '../../src/data/generate/config';
import { CATEGORIES } from '../../src/data/generate/vocab';

const root = mkdtempSync(join(tmpdir(), 'lens-gen-'));
afterAll(() => rmSync(root, { recursive: true, force: true }));

/** Fast equality of two byte arrays (vitest's deep equality is slow on 4096-element typed arrays). */
const same = (x: Uint8Array, y: Uint8Array): boolean => Buffer.from(x.buffer, x.byteOffset, x.byteLength).equals(Buffer.from(y.buffer, y.byteOffset, y.byteLength));

/** path (relative to dir) -> sha256 of every file under dir. */
function hashTree(dir: string): Record<string, string> {
  const out: Record<string, string> = {};
  const walk = (d: string): void => {
    for (const name of readdirSync(d).sort()) {
      const p = join(d, name);
      if (statSync(p).isDirectory()) walk(p);
      else out[relative(dir, p)] = createHash('sha256').update(readFileSync(p)).digest('hex');
    }
  };
  walk(dir);
  return out;
}

describe('generated benchmark on disk (scale tiny)', () => {
  const a = join(root, 'a');
  let manifest: Manifest;
  let seconds = 0;
  beforeAll(async () => {
    const t0 = performance.now();
    manifest = await generateBenchmark(a, { scale: 'tiny', seed: 0 }, { quiet: true });
    seconds = (performance.now() - t0) / 1000;
  });

  it('writes the LISA layout, leaves no .tmp folder, and is quick', () => {
    for (const p of [
      'manifest.json', 'refer_seg/refcoco/instances.json', 'refer_seg/refcoco/refs(unc).p', 'refer_seg/refcoco+/refs(unc).p',
      'refer_seg/refcocog/refs(umd).p', 'refer_seg/images/mscoco/images/train2014', 'reason_seg/ReasonSeg/train',
      'reason_seg/ReasonSeg/val', 'reason_seg/ReasonSeg/test',
    ]) expect(existsSync(join(a, p)), p).toBe(true);
    expect(existsSync(`${a}.tmp`)).toBe(false);
    expect(readManifest(a).counts).toEqual(manifest.counts);
    // issue 2: tiny generates in < 2 s; the bound is looser for a loaded 2-core CI machine
    expect(seconds).toBeLessThan(6);
  });

  it('same seed -> byte-identical files; another seed -> different files', async () => {
    const b = join(root, 'b');
    const c = join(root, 'c');
    await generateBenchmark(b, { scale: 'tiny', seed: 0 }, { quiet: true });
    await generateBenchmark(c, { scale: 'tiny', seed: 1 }, { quiet: true });
    const ha = hashTree(a);
    expect(hashTree(b)).toEqual(ha);
    const hc = hashTree(c);
    expect(Object.keys(hc).sort()).toEqual(Object.keys(ha).sort()); // same layout and file names
    expect(Object.keys(ha).filter((k) => ha[k] === hc[k])).toEqual([]);
  });

  it('refs pickles hold the REFER fields plus our reasoning and label; testA targets figures, testB shapes', () => {
    const figureIds = new Set(CATEGORIES.filter((x) => x.supercategory === 'figure').map((x) => x.id));
    const refs = readPickle(readFileSync(join(a, 'refer_seg/refcoco/refs(unc).p')), 'refs') as Array<Record<string, unknown>>;
    expect(refs.length).toBe(manifest.counts.refcoco!.train!.refs + manifest.counts.refcoco!.val!.refs
      + manifest.counts.refcoco!.testA!.refs + manifest.counts.refcoco!.testB!.refs);
    for (const r of refs) {
      expect(Object.keys(r).sort()).toEqual(['ann_id', 'category_id', 'file_name', 'image_id', 'ref_id', 'sent_ids', 'sentences', 'split']);
      if (r.split === 'testA') expect(figureIds.has(r.category_id as number)).toBe(true);
      if (r.split === 'testB') expect(figureIds.has(r.category_id as number)).toBe(false);
      for (const s of r.sentences as Array<Record<string, unknown>>) {
        expect(Object.keys(s).sort()).toEqual(['label', 'raw', 'reasoning', 'sent', 'sent_id', 'tokens']);
      }
    }
    const g = readPickle(readFileSync(join(a, 'refer_seg/refcocog/refs(umd).p')), 'refs') as Array<Record<string, unknown>>;
    expect([...new Set(g.map((r) => r.split))].sort()).toEqual(['test', 'train', 'val']);
  });

  it('reads back through the loaders: every sample mask equals the regenerated visible mask', async () => {
    const config = resolveGenerateConfig({ scale: 'tiny', seed: 0 });
    const firstId: Record<ReferSplit, number> = { train: 1, val: 1 + 8, testA: 1 + 8 + 3, testB: 1 + 8 + 3 + 3 };
    const cache = new Map<string, ReturnType<typeof generateReferImage>>();
    const regen = (pool: ReferSplit, index: number): ReturnType<typeof generateReferImage> => {
      const key = `${pool}/${index}`;
      if (!cache.has(key)) cache.set(key, generateReferImage(config, pool, index));
      return cache.get(key)!;
    };
    for (const family of ['refcoco', 'refcoco+', 'refcocog'] as const) {
      for (const split of family === 'refcocog' ? ['train', 'val', 'test'] : ['train', 'val', 'testA', 'testB']) {
        const ds = await loadSplit(a, family, split);
        expect(ds.samples.length).toBe(manifest.counts[family]![split]!.sentences);
        for (const s of ds.samples) {
          const id = s.imageId as number;
          const pool = (Object.keys(firstId) as ReferSplit[]).filter((k) => id >= firstId[k]).pop()!;
          const img = regen(pool, id - firstId[pool]);
          const ref = img.refs.find((r) => r.family === family && r.expressions.some((e) => e.text === s.sentence))!;
          expect(ref, s.sentence).toBeDefined();
          expect(same(s.mask(), img.scene.objects[ref.target]!.visible), s.id).toBe(true);
          expect(s.bbox).toEqual(img.scene.objects[ref.target]!.bbox);
          expect(s.reasoning).toBe(ref.expressions.find((e) => e.text === s.sentence)!.reasoning);
          expect(s.label).toBe(`${img.scene.objects[ref.target]!.colour} ${img.scene.objects[ref.target]!.category}`);
        }
      }
    }
    const val = await loadSplit(a, 'reasonseg', 'val', { allSentences: true });
    expect(val.samples.length).toBe(manifest.counts.reasonseg!.val!.sentences);
    for (const s of val.samples) {
      if (s.sentIdx > 1) continue;
      const index = Number(String(s.refId).split('_').pop());
      const img = generateReasonImage(config, 'val', index);
      const ref = img.refs[0]!;
      expect(s.sentence).toBe(ref.expressions[s.sentIdx]!.text);
      expect(same(s.mask(), img.scene.objects[ref.target]!.visible), s.id).toBe(true);
      const json = JSON.parse(readFileSync(join(a, 'reason_seg/ReasonSeg/val', `${s.refId}.json`), 'utf8'));
      const o = img.scene.objects[ref.target]!;
      expect(json.labels[s.sentIdx]).toBe(`${o.colour} ${o.category}`);
      expect(s.label).toBe(`${o.colour} ${o.category}`);
      if (s.sentIdx === 0) expect(same((await readImageRgb(s.imagePath, 'test')).data, img.rgb)).toBe(true);
    }
  });

  it('refuses a non-empty output folder unless forced, then replaces it', async () => {
    const d = join(root, 'busy');
    mkdirSync(d);
    writeFileSync(join(d, 'keep.txt'), 'x');
    await expect(generateBenchmark(d, { scale: 'tiny' }, { quiet: true })).rejects.toThrow(/is not empty \(pass --force/);
    expect(existsSync(join(d, 'keep.txt'))).toBe(true);
    await generateBenchmark(`${d}/`, { scale: 'tiny', referImages: { train: 1, val: 1, testA: 1, testB: 1 }, reasonImages: { train: 1, val: 1, test: 1 } }, { quiet: true, force: true });
    expect(existsSync(join(d, 'keep.txt'))).toBe(false);
    expect(readManifest(d).counts.refcoco!.train!.images).toBe(1);
  });

  it('ensureBenchmark generates when absent, reuses when present, and refuses another seed', async () => {
    const d = join(root, 'ensure');
    const small = { scale: 'tiny' as const, referImages: { train: 1, val: 1, testA: 1, testB: 1 }, reasonImages: { train: 1, val: 1, test: 1 } };
    expect((await ensureBenchmark(d, small, { quiet: true })).generated).toBe(true);
    expect((await ensureBenchmark(d, small, { quiet: true })).generated).toBe(false);
    await expect(ensureBenchmark(d, { ...small, seed: 5 }, { quiet: true })).rejects.toThrow(/manifest\.json: holds .*"seed":0.*expected .*"seed":5/);
  });
});

describe('generate config', () => {
  it('fills a scale preset and validates, naming the field', () => {
    expect(resolveGenerateConfig({ scale: 'paper' }).imageSize).toBe(96);
    expect(resolveGenerateConfig({ scale: 'quick' }).imageSize).toBe(64);
    expect(() => resolveGenerateConfig({ imageSize: 10 })).toThrow('generate config: imageSize must be an integer in [32, 1024], got 10');
    expect(() => resolveGenerateConfig({ scale: 'huge' as 'tiny' })).toThrow('scale must be one of tiny|quick|paper');
    expect(() => resolveGenerateConfig({ minObjects: 5, maxObjects: 4 })).toThrow('maxObjects must be an integer in [5, 12], got 4');
    expect(() => resolveGenerateConfig({ referImages: { train: -1 } as never })).toThrow('referImages.train');
    expect(() => resolveGenerateConfig({ minVisibleFraction: 0 })).toThrow('minVisibleFraction must be a number in (0, 1]');
    expect(() => resolveGenerateConfig({ colour: 'red' } as never)).toThrow('unknown field "colour"');
  });

  it('quick gives ~1500-3000 training sentences per family and a few hundred per eval split', () => {
    const q = resolveGenerateConfig({ scale: 'quick' });
    // measured with seed 0: ~2 sentences per ref, 2 refs per image
    expect(q.referImages.train * q.refsPerImage * q.sentencesPerRef).toBeGreaterThan(1500);
    expect(q.referImages.train * q.refsPerImage * q.sentencesPerRef).toBeLessThan(3200);
    expect(q.reasonImages.train * q.reasonSentencesPerImage).toBeLessThan(3200);
  });
});
