/**
 * Image I/O through sharp (libvips): PNG writing for the generator, decoding of
 * user images (JPEG / PNG / WebP) to packed RGB, and resizing. EXIF orientation is
 * deliberately NOT applied, so the pixels keep the orientation the COCO / LabelMe
 * annotations were drawn on (LISA reads with cv2 and uses the stored height/width).
 */
import sharp from 'sharp';
import { existsSync } from 'node:fs';
import { writeFileAtomic } from '../../util/fs';

/** A decoded image: packed RGB, row-major, data.length = height*width*3. */
export interface RgbImage {
  data: Uint8Array;
  height: number;
  width: number;
}

function checkRgb(rgb: Uint8Array, height: number, width: number, where: string): void {
  if (!Number.isInteger(height) || !Number.isInteger(width) || height <= 0 || width <= 0) {
    throw new Error(`${where}: image size must be positive integers, got ${height}x${width}`);
  }
  if (rgb.length !== height * width * 3) {
    throw new Error(`${where}: RGB buffer has ${rgb.length} bytes, expected height*width*3 = ${height * width * 3}`);
  }
}

/** Encodes packed RGB [height*width*3] as PNG bytes. */
export async function encodePng(rgb: Uint8Array, height: number, width: number): Promise<Uint8Array> {
  checkRgb(rgb, height, width, 'encodePng');
  const buf = await sharp(rgb, { raw: { width, height, channels: 3 } }).png({ compressionLevel: 9 }).toBuffer();
  return new Uint8Array(buf.buffer, buf.byteOffset, buf.byteLength);
}

/** Writes packed RGB [height*width*3] to `path` as PNG, atomically (temp + rename). */
export async function writePng(path: string, rgb: Uint8Array, height: number, width: number): Promise<void> {
  checkRgb(rgb, height, width, `writePng ${path}`);
  writeFileAtomic(path, await encodePng(rgb, height, width));
}

/** Decodes an image file to packed RGB (alpha dropped, greyscale expanded). `where` names the field that referenced it. */
export async function readImageRgb(path: string, where: string): Promise<RgbImage> {
  if (!existsSync(path)) throw new Error(`${where}: image file ${path} does not exist`);
  try {
    const { data, info } = await sharp(path).removeAlpha().toColourspace('srgb').raw().toBuffer({ resolveWithObject: true });
    if (info.channels !== 3) throw new Error(`decoded to ${info.channels} channels, expected 3`);
    return { data: new Uint8Array(data.buffer, data.byteOffset, data.byteLength), height: info.height, width: info.width };
  } catch (e) {
    throw new Error(`${where}: cannot decode image ${path}: ${(e as Error).message}`);
  }
}

/** Resampling kernels sharp offers; 'linear' matches bilinear resizes (cv2 / torchvision default). */
export type ResizeKernel = 'nearest' | 'linear' | 'cubic' | 'lanczos3';

/** Resizes packed RGB [h*w*3] -> [outHeight*outWidth*3] (aspect ratio NOT kept: 'fill'). */
export async function resizeRgb(
  rgb: Uint8Array,
  height: number,
  width: number,
  outHeight: number,
  outWidth: number,
  kernel: ResizeKernel = 'linear',
): Promise<Uint8Array> {
  checkRgb(rgb, height, width, 'resizeRgb input');
  if (!Number.isInteger(outHeight) || !Number.isInteger(outWidth) || outHeight <= 0 || outWidth <= 0) {
    throw new Error(`resizeRgb: output size must be positive integers, got ${outHeight}x${outWidth}`);
  }
  if (outHeight === height && outWidth === width) return rgb.slice();
  const buf = await sharp(rgb, { raw: { width, height, channels: 3 } })
    .resize(outWidth, outHeight, { fit: 'fill', kernel })
    .raw()
    .toBuffer();
  return new Uint8Array(buf.buffer, buf.byteOffset, buf.byteLength);
}
