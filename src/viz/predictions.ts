/**
 * A LENS prediction drawn over its sample (notebook 03's masks before / after alignment):
 * the original image with the ground-truth mask and box (green / amber, samples.ts), the
 * predicted mask and parsed box over them, captioned with the sample's IoU in the
 * LISA convention (eval/metrics.ts) and the generated answer.
 */
import { intersectionUnion, sampleIou } from '../eval/metrics';
import { inputBoxToOriginal, type LensPrediction } from '../train/predict';
import type { TrainExample } from '../train/data';
import type { GalleryItem } from './bundles';
import { samplePanel } from './samples';

/** Predicted masks and boxes (Plotly red: apart from the ground truth's green / amber and from the bluish generated backgrounds). */
export const PRED_COLOR = '#EF553B';

/** IoU of a prediction's mask with its sample's target (original size; 255 ignored; empty vs empty = 1). */
export function predictionIou(e: TrainExample, p: LensPrediction): number {
  const { i, u } = intersectionUnion(p.mask, e.sample.mask(), `prediction for ${e.id}`);
  return sampleIou(i, u);
}

/**
 * One panel: sample + ground truth + the prediction (mask and box in `color`), titled
 * `title`, captioned with the sentence, the IoU and (first `answerChars` characters of)
 * the completion.
 */
export async function predictionPanel(
  e: TrainExample,
  p: LensPrediction,
  { title, color = PRED_COLOR, side, answerChars = 160 }: { title: string; color?: string; side: number; answerChars?: number },
): Promise<GalleryItem> {
  if (p.id !== e.id) throw new Error(`predictionPanel: prediction is for ${p.id}, the example is ${e.id}`);
  const s = e.sample;
  const panel = await samplePanel(s, {
    masks: [{ mask: p.mask, color, alpha: 0.45 }],
    // An inverted box (x2 <= x1 or y2 <= y1) is empty for the metrics and is not drawn.
    boxes: p.box && p.box[2] > p.box[0] && p.box[3] > p.box[1] ? [{ xywh: inputBoxToOriginal(p.box, side, s.height, s.width), color }] : [],
    reasoning: false,
  });
  const text = p.text.length > answerChars ? `${p.text.slice(0, answerChars)}…` : p.text;
  return { ...panel, title, caption: `"${e.sentence}"\nIoU ${predictionIou(e, p).toFixed(3)}${p.formatValid ? '' : ' (answer not in the LENS format)'}\n${text}` };
}
