/**
 * RefCOCO / RefCOCO+ / RefCOCOg in LISA's layout (LISA `utils/refer.py` REFER class
 * and `utils/dataset.py` ValDataset):
 *   refer_seg/<family>/instances.json   COCO images / annotations / categories
 *   refer_seg/<family>/refs(unc).p      refs pickle (refcocog: refs(umd).p)
 *   refer_seg/images/mscoco/images/train2014/<images[].file_name>
 * Every sentence of every ref in the split is one sample; the target is the ref's
 * annotation mask. The refs' own `file_name` (which carries an annotation suffix in
 * the real files) is not used for the image: the COCO image entry is.
 */
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { resolveInside } from '../../util/fs';
import { readPickle } from '../formats/pickle';
import type { InstanceRecord, RefDataset, RefSample } from '../types';
import { arr, box4, checkSplit, id, num, obj, posInt, readJson, str } from './common';
import { decodeSegmentation } from './segmentation';

/** The COCO families. */
export type CocoFamily = 'refcoco' | 'refcoco+' | 'refcocog';

/** Refs pickle name per family (REFER's splitBy: unc for RefCOCO/+, umd for RefCOCOg, as LISA). */
export const REFS_FILE: Readonly<Record<CocoFamily, string>> = {
  refcoco: 'refs(unc).p',
  'refcoco+': 'refs(unc).p',
  refcocog: 'refs(umd).p',
};

/** Folder of the COCO train2014 images under a dataset root (LISA layout). */
export const COCO_IMAGE_DIR = join('refer_seg', 'images', 'mscoco', 'images', 'train2014');

interface CocoImage {
  id: number | string;
  path: string;
  height: number;
  width: number;
  where: string;
}

interface CocoAnn {
  id: number;
  imageId: number | string;
  categoryId: number;
  bbox: [number, number, number, number];
  segmentation: unknown;
  where: string;
}

/** Loads one split of a COCO referring family from a LISA-layout root. */
export function loadRefCoco(root: string, family: CocoFamily, split: string): RefDataset {
  checkSplit(family, split);
  const dir = join(root, 'refer_seg', family);
  const instPath = join(dir, 'instances.json');
  const refsPath = join(dir, REFS_FILE[family]);
  if (!existsSync(instPath)) throw new Error(`${instPath}: file not found (expected the LISA layout refer_seg/${family}/instances.json under --data ${root})`);
  if (!existsSync(refsPath)) throw new Error(`${refsPath}: file not found (expected refer_seg/${family}/${REFS_FILE[family]})`);

  const inst = obj(readJson(instPath), instPath);
  const imageDir = join(root, COCO_IMAGE_DIR);
  const images = new Map<number | string, CocoImage>();
  arr(inst.images, `${instPath} images`).forEach((raw, i) => {
    const where = `${instPath} images[${i}]`;
    const o = obj(raw, where);
    const fileName = str(o, 'file_name', where);
    images.set(id(o, 'id', where), {
      id: id(o, 'id', where),
      path: resolveInside(imageDir, fileName, `${where}.file_name`),
      height: posInt(o, 'height', where),
      width: posInt(o, 'width', where),
      where,
    });
  });
  const categories = new Map<number, string>();
  arr(inst.categories ?? [], `${instPath} categories`).forEach((raw, i) => {
    const where = `${instPath} categories[${i}]`;
    const o = obj(raw, where);
    categories.set(num(o, 'id', where), str(o, 'name', where));
  });
  const anns = new Map<number, CocoAnn>();
  const annsOfImage = new Map<number | string, number[]>();
  arr(inst.annotations, `${instPath} annotations`).forEach((raw, i) => {
    const where = `${instPath} annotations[${i}]`;
    const o = obj(raw, where);
    const a: CocoAnn = {
      id: num(o, 'id', where),
      imageId: id(o, 'image_id', where),
      categoryId: num(o, 'category_id', where),
      bbox: box4(o.bbox, `${where}.bbox`),
      segmentation: o.segmentation,
      where: `${where}.segmentation`,
    };
    if (!images.has(a.imageId)) throw new Error(`${where}.image_id: image ${a.imageId} is not in images`);
    anns.set(a.id, a);
    const list = annsOfImage.get(a.imageId) ?? [];
    list.push(a.id);
    annsOfImage.set(a.imageId, list);
  });

  const annMask = (a: CocoAnn): Uint8Array => {
    const img = images.get(a.imageId)!;
    return decodeSegmentation(a.segmentation, img.height, img.width, a.where);
  };

  const refs = arr(readPickle(new Uint8Array(readFileSync(refsPath)), refsPath), refsPath);
  const samples: RefSample[] = [];
  const checkedImages = new Set<number | string>();
  refs.forEach((raw, r) => {
    const where = `${refsPath} refs[${r}]`;
    const ref = obj(raw, where);
    if (str(ref, 'split', where) !== split) return;
    const refId = id(ref, 'ref_id', where);
    const annId = num(ref, 'ann_id', where);
    const ann = anns.get(annId);
    if (!ann) throw new Error(`${where}.ann_id: annotation ${annId} is not in ${instPath}`);
    const img = images.get(ann.imageId)!;
    if (!checkedImages.has(img.id)) {
      if (!existsSync(img.path)) throw new Error(`${img.where}.file_name: image file ${img.path} does not exist`);
      checkedImages.add(img.id);
    }
    const label = categories.get(ann.categoryId);
    arr(ref.sentences, `${where}.sentences`).forEach((rawSent, s) => {
      const sw = `${where}.sentences[${s}]`;
      const sent = obj(rawSent, sw);
      const reasoning = sent.reasoning;
      if (reasoning !== undefined && reasoning !== null && typeof reasoning !== 'string') {
        throw new Error(`${sw}.reasoning: expected a string when present`);
      }
      // Our generator's per-sentence target phrase ("blue star") beats the bare category name.
      const sentLabel = typeof sent.label === 'string' && sent.label !== '' ? sent.label : label;
      samples.push({
        id: `${family}/${split}/${refId}/${s}`,
        family,
        split,
        refId,
        sentIdx: s,
        imageId: img.id,
        imagePath: img.path,
        height: img.height,
        width: img.width,
        sentence: str(sent, 'sent', sw),
        ...(sentLabel !== undefined ? { label: sentLabel } : {}),
        ...(typeof reasoning === 'string' ? { reasoning } : {}),
        bbox: ann.bbox,
        mask: () => annMask(ann),
      });
    });
  });

  return {
    family,
    split,
    root,
    samples,
    instances(imageId: number | string): InstanceRecord[] {
      return (annsOfImage.get(imageId) ?? []).map((aid) => {
        const a = anns.get(aid)!;
        return { annId: a.id, categoryId: a.categoryId, bbox: a.bbox, mask: () => annMask(a) };
      });
    },
  };
}
