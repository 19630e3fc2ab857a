/**
 * Referring-segmentation metrics in the LISA convention (LISA `train_ds.py` validate +
 * `utils/utils.py` intersectionAndUnionGPU), which LENS reports:
 * - per sample, foreground I and U at full resolution; logits thresholded at > 0;
 *   target pixels labelled 255 are ignored (removed from both I and U);
 * - per-sample IoU = I / (U + 1e-5), and a sample with U = 0 (empty target, empty
 *   prediction) scores 1 (LISA: `acc_iou[union == 0] += 1.0`);
 * - gIoU = mean per-sample IoU; cIoU = sum(I) / (sum(U) + 1e-10) (LISA's meter sums);
 * - box accuracy: predicted vs ground-truth box IoU > 0.5 (strict), boxes COCO xywh;
 * - format-valid rate: fraction of answers that parsed.
 * One accumulator per split.
 */

/** COCO box [x, y, w, h] in pixels. */
export type Box = [number, number, number, number];

/** LISA's smoothing of per-sample IoU. */
export const IOU_EPS = 1e-5;
/** LISA's smoothing of cIoU. */
export const CIOU_EPS = 1e-10;

/**
 * Foreground intersection and union of a prediction and a target.
 * pred: Uint8Array (non-zero = foreground) or Float32Array logits (> 0 = foreground), length h*w;
 * target: Uint8Array 0 / 1 / 255 (ignore), same length.
 */
export function intersectionUnion(pred: Uint8Array | Float32Array, target: Uint8Array, where = 'prediction'): { i: number; u: number } {
  if (pred.length !== target.length) {
    throw new Error(`${where}: mask has ${pred.length} pixels, the target has ${target.length}`);
  }
  let i = 0;
  let u = 0;
  const logits = pred instanceof Float32Array;
  for (let p = 0; p < target.length; p++) {
    const t = target[p]!;
    if (t === 255) continue;
    const q = logits ? pred[p]! > 0 : pred[p]! !== 0;
    if (q && t) i++;
    if (q || t) u++;
  }
  return { i, u };
}

/** Per-sample IoU, LISA: I / (U + 1e-5), and 1 when U = 0. */
export function sampleIou(i: number, u: number): number {
  return u === 0 ? 1 : i / (u + IOU_EPS);
}

/** IoU of two COCO xywh boxes (continuous coordinates); 0 when the union is empty. */
export function boxIou(a: Box, b: Box): number {
  const ix = Math.min(a[0] + a[2], b[0] + b[2]) - Math.max(a[0], b[0]);
  const iy = Math.min(a[1] + a[3], b[1] + b[3]) - Math.max(a[1], b[1]);
  const inter = ix > 0 && iy > 0 ? ix * iy : 0;
  const union = Math.max(0, a[2]) * Math.max(0, a[3]) + Math.max(0, b[2]) * Math.max(0, b[3]) - inter;
  return union > 0 ? inter / union : 0;
}

/** Box hit at the paper's threshold: IoU > 0.5. */
export function boxHit(pred: Box | null | undefined, target: Box): boolean {
  return !!pred && boxIou(pred, target) > 0.5;
}

/** Metrics of one split. Optional keys appear only when some sample supplied them. */
export interface MetricResult {
  giou: number;
  ciou: number;
  n: number;
  box_acc50?: number;
  format_rate?: number;
}

/** Extra per-sample inputs of `MetricAccumulator.add`. */
export interface SampleExtras {
  /** Predicted box (xywh); with `targetBox` it counts towards box_acc50 (null = no box: a miss). */
  predBox?: Box | null;
  /** Ground-truth box (xywh); samples without one (empty targets) are left out of box_acc50. */
  targetBox?: Box | null;
  /** Whether the answer was well-formed; counts towards format_rate. */
  formatValid?: boolean;
}

/** Accumulates I, U, per-sample IoU, box hits and format validity over a split. */
export class MetricAccumulator {
  private sumI = 0;
  private sumU = 0;
  private sumIou = 0;
  private count = 0;
  private boxHits = 0;
  private boxN = 0;
  private formatOk = 0;
  private formatN = 0;

  /** Adds one sample: pred mask or logits vs target (0/1/255), plus optional box / format info. */
  add(pred: Uint8Array | Float32Array, target: Uint8Array, extras: SampleExtras = {}): { i: number; u: number; iou: number } {
    const { i, u } = intersectionUnion(pred, target);
    return this.addCounts(i, u, extras);
  }

  /** Adds a sample from precomputed foreground I and U. */
  addCounts(i: number, u: number, extras: SampleExtras = {}): { i: number; u: number; iou: number } {
    const iou = sampleIou(i, u);
    this.sumI += i;
    this.sumU += u;
    this.sumIou += iou;
    this.count++;
    if (extras.targetBox) {
      this.boxN++;
      if (boxHit(extras.predBox, extras.targetBox)) this.boxHits++;
    }
    if (extras.formatValid !== undefined) {
      this.formatN++;
      if (extras.formatValid) this.formatOk++;
    }
    return { i, u, iou };
  }

  /** gIoU, cIoU, n, and box_acc50 / format_rate when any sample gave them; NaN-free (n = 0 -> zeros). */
  result(): MetricResult {
    const r: MetricResult = {
      giou: this.count ? this.sumIou / this.count : 0,
      ciou: this.sumI / (this.sumU + CIOU_EPS),
      n: this.count,
    };
    if (this.boxN) r.box_acc50 = this.boxHits / this.boxN;
    if (this.formatN) r.format_rate = this.formatOk / this.formatN;
    return r;
  }
}
