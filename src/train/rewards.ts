/**
 * The unified rewards of LENS stage 2 (paper Sec. 3.3, Eq. 3: R = l1 R_format + l2 R_box
 * + l3 R_seg), as plain host-side functions of one rollout. Official code read for this
 * port: hustvl/LENS `src/open_r1/rewards.py` (think-format 0/1, box IoU and mask IoU,
 * both SQUARED there) and VLM-R1's continuous box-IoU reward
 * (lens-official-code-facts.md "Stage 2").
 *
 * Decisions (tested in test/train/rewards.test.ts):
 * - the IoU exponent is an option (`exponent`): 1 = the paper's linear rewards, 2 = the
 *   official code's squares; the stage-2 config chooses (grpo_stage.ts documents why);
 * - box IoU in continuous coordinates (xyxy, area = (x2 - x1) (y2 - y1)), not Seg-Zero's
 *   "+1 pixel" areas; a box with x2 <= x1 or y2 <= y1 is empty and scores 0; with
 *   `imageSize` the predicted box is first clamped to [0, imageSize] (a box wholly outside
 *   the image becomes empty); a parse failure scores 0 (as the official code's
 *   [0, 0, 0, 0] fallback does);
 * - mask IoU in the LISA convention the metrics use (eval/metrics.ts): pixels labelled
 *   255 in the target count in neither I nor U, and an empty prediction on an empty
 *   target scores 1 (a correct "nothing here").
 */
import { isFormatValid, parseBox, type Box } from '../model/answer';
import { intersectionUnion, sampleIou } from '../eval/metrics';

/** Options of the IoU rewards. */
export interface IouRewardOptions {
  /** Power the IoU is raised to: 1 = paper (linear), 2 = official code (squared). Default 1. */
  exponent?: number;
}

/** Options of the box reward. */
export interface BoxRewardOptions extends IouRewardOptions {
  /** Clamp the predicted box to [0, imageSize] first (the model's input side); off when undefined. */
  imageSize?: number;
  /** Where parseBox looks for the box: inside `<answer>` (default) or anywhere (official search). */
  scope?: 'answer' | 'anywhere';
}

function checkExponent(exponent: number, where: string): void {
  if (typeof exponent !== 'number' || !(exponent > 0) || !Number.isFinite(exponent)) {
    throw new RangeError(`${where}: exponent must be a finite number > 0, got ${JSON.stringify(exponent)}`);
  }
}

/**
 * R_format: 1 when the completion matches `<think>.*?</think>\s*<answer>.*?</answer>`
 * from its start (official regex, Python re.match), else 0.
 * @example formatReward('<think>a</think><answer>[1, 2, 3, 4]</answer>') // 1
 * @example formatReward('<answer>[1, 2, 3, 4]</answer>') // 0
 */
export function formatReward(completion: string): number {
  return isFormatValid(completion) ? 1 : 0;
}

/** IoU of two xyxy boxes in continuous coordinates; an empty or inverted box gives 0. */
export function boxIouXyxy(a: readonly number[], b: readonly number[]): number {
  const area = (x: readonly number[]) => Math.max(0, x[2]! - x[0]!) * Math.max(0, x[3]! - x[1]!);
  const iw = Math.min(a[2]!, b[2]!) - Math.max(a[0]!, b[0]!);
  const ih = Math.min(a[3]!, b[3]!) - Math.max(a[1]!, b[1]!);
  const inter = iw > 0 && ih > 0 ? iw * ih : 0;
  const union = area(a) + area(b) - inter;
  if (area(a) === 0 || area(b) === 0 || union <= 0) return 0;
  return inter / union;
}

/**
 * R_box: IoU(parsed box, gtBox)^exponent, boxes xyxy in input pixels; 0 when no box parses.
 * @example boxIouReward('<think>t</think><answer>[{"bbox_2d": [0, 0, 10, 10]}]</answer>', [0, 0, 10, 20]) // 0.5
 * @example boxIouReward('no answer', [0, 0, 10, 10]) // 0
 */
export function boxIouReward(completion: string, gtBox: Box, { exponent = 1, imageSize, scope = 'answer' }: BoxRewardOptions = {}): number {
  checkExponent(exponent, 'boxIouReward');
  let box = parseBox(completion, { scope });
  if (!box) return 0;
  if (imageSize !== undefined) box = box.map((v) => Math.max(0, Math.min(imageSize, v))) as Box;
  return boxIouXyxy(box, gtBox) ** exponent;
}

/**
 * R_seg: mask IoU^exponent in the LISA convention (target 255 ignored; empty vs empty = 1).
 * predMask: Uint8Array (non-zero = foreground) or Float32Array logits (> 0 = foreground);
 * gtMask: Uint8Array 0 / 1 / 255, same length.
 * @example segIouReward(Uint8Array.of(1, 1, 0, 0), Uint8Array.of(1, 0, 0, 255)) // ≈ 0.5
 */
export function segIouReward(predMask: Uint8Array | Float32Array, gtMask: Uint8Array, { exponent = 1 }: IouRewardOptions = {}): number {
  checkExponent(exponent, 'segIouReward');
  const { i, u } = intersectionUnion(predMask, gtMask, 'segIouReward');
  return Math.min(1, sampleIou(i, u)) ** exponent;
}

/** The reward components of one rollout. */
export interface RewardParts {
  format: number;
  box: number;
  seg: number;
}

/** The weights l1, l2, l3 of Eq. 3 (paper and official code: all 1). */
export type RewardWeights = RewardParts;

/** Paper Eq. 3 and the official code: every component weighted 1. */
export const DEFAULT_REWARD_WEIGHTS: RewardWeights = { format: 1, box: 1, seg: 1 };

/**
 * R = l1 R_format + l2 R_box + l3 R_seg.
 * @example unifiedReward({format: 1, box: 0.5, seg: 0.25}, {format: 1, box: 1, seg: 2}) // 2
 */
export function unifiedReward(parts: RewardParts, weights: RewardWeights = DEFAULT_REWARD_WEIGHTS): number {
  for (const k of ['format', 'box', 'seg'] as const) {
    if (typeof parts[k] !== 'number' || !Number.isFinite(parts[k])) throw new RangeError(`unifiedReward: parts.${k} must be a finite number, got ${parts[k]}`);
    if (typeof weights[k] !== 'number' || !Number.isFinite(weights[k])) throw new RangeError(`unifiedReward: weights.${k} must be a finite number, got ${weights[k]}`);
  }
  return weights.format * parts.format + weights.box * parts.box + weights.seg * parts.seg;
}

/** Mean and (population) standard deviation of a list, for the per-step reward logs; 0s when empty. */
export function meanStd(xs: readonly number[]): { mean: number; std: number } {
  if (xs.length === 0) return { mean: 0, std: 0 };
  const mean = xs.reduce((s, x) => s + x, 0) / xs.length;
  const std = Math.sqrt(xs.reduce((s, x) => s + (x - mean) ** 2, 0) / xs.length);
  return { mean, std };
}
