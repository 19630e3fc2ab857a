import { describe, expect, it } from 'vitest';
import { fillPolygonLabelMe, polygonArea, polygonToCounts, rasterizePolygons } from '../../src/data/formats/polygon';

const rows = (m: Uint8Array, h: number, w: number): string[] =>
  Array.from({ length: h }, (_, y) => Array.from(m.subarray(y * w, y * w + w)).join(''));

describe('COCO polygons (pycocotools rleFrPoly)', () => {
  it('square [0,3]^2 on 5x5 gives runs [0,3,2,3,2,3,12] (hand-traced through maskApi.c)', () => {
    // Column crossings at scaled u = 3, 8, 13 (top edge, y -> 0) and u = 12, 7, 2 (bottom
    // edge, y -> ceil(2.6) = 3): boundary indices 0,5,10 and 3,8,13 (x*h + y), plus h*w = 25.
    expect(polygonToCounts([0, 0, 3, 0, 3, 3, 0, 3], 5, 5)).toEqual([0, 3, 2, 3, 2, 3, 12]);
    expect(rows(rasterizePolygons([[0, 0, 3, 0, 3, 3, 0, 3]], 5, 5, 't'), 5, 5)).toEqual(['11100', '11100', '11100', '00000', '00000']);
  });

  it('sets exactly the pixels whose centres lie inside (triangle x + y < 4.2)', () => {
    // centres (x+.5, y+.5) inside x + y + 1 < 4.2  <=>  x + y <= 3
    const m = rasterizePolygons([[0, 0, 4.2, 0, 0, 4.2]], 6, 6, 't');
    expect(rows(m, 6, 6)).toEqual(['111100', '111000', '110000', '100000', '000000', '000000']);
  });

  it('clips polygons that leave the image and unites several polygons', () => {
    expect(rows(rasterizePolygons([[-2, -2, 3, -2, 3, 3, -2, 3]], 5, 5, 't'), 5, 5)).toEqual(['11100', '11100', '11100', '00000', '00000']);
    expect(rows(rasterizePolygons([[2, 1, 9, 1, 9, 9, 2, 9]], 6, 6, 't'), 6, 6)).toEqual(['000000', '001111', '001111', '001111', '001111', '001111']);
    const two = rasterizePolygons([[0, 0, 1, 0, 1, 1, 0, 1], [3, 3, 4, 3, 4, 4, 3, 4]], 4, 4, 't');
    expect(rows(two, 4, 4)).toEqual(['1000', '0000', '0000', '0001']);
  });

  it('rejects a polygon with fewer than 3 points, odd coordinates or non-numbers', () => {
    expect(() => rasterizePolygons([[0, 0, 1, 1]], 4, 4, 'instances.json annotations[3].segmentation')).toThrow(
      'instances.json annotations[3].segmentation[0]: polygon has 2 points, expected at least 3',
    );
    expect(() => rasterizePolygons([[0, 0, 1, 1, 2]], 4, 4, 'a')).toThrow(/odd number of coordinates/);
    expect(() => rasterizePolygons([[0, 0, 1, 'x', 2, 2] as unknown as number[]], 4, 4, 'a')).toThrow(/flat list of numbers/);
    expect(() => rasterizePolygons([], 4, 4, 'a')).toThrow(/non-empty list of polygons/);
  });
});

describe('LabelMe polygons (LISA cv2 convention)', () => {
  it('fills boundary-inclusive on truncated integer vertices', () => {
    const m = new Uint8Array(25);
    fillPolygonLabelMe(m, 5, 5, [[1.9, 1.2], [3, 1], [3, 3], [1, 3.7]], 1); // truncates to the square [1,3]^2
    expect(rows(m, 5, 5)).toEqual(['00000', '01110', '01110', '01110', '00000']);
  });

  it('includes the hypotenuse of a triangle (x + y <= 4 -> 15 pixels) and writes the given value', () => {
    const m = new Uint8Array(25);
    fillPolygonLabelMe(m, 5, 5, [[0, 0], [4, 0], [0, 4]], 255);
    expect(rows(m, 5, 5).map((r) => r.replace(/255/g, 'X'))).toEqual(['XXXXX', 'XXXX0', 'XXX00', 'XX000', 'X0000']);
  });

  it('polygonArea is the shoelace area', () => {
    expect(polygonArea([[0, 0], [4, 0], [4, 3], [0, 3]])).toBe(12);
    expect(polygonArea([[0, 0], [0, 3], [4, 0]])).toBe(6);
  });
});
