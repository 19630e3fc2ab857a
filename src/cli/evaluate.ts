/**
 * `lens evaluate --data DIR --split FAMILY/SPLIT --pred FILE [--images DIR]`: scores a
 * COCO-results-style predictions file on one split in the LISA convention and prints
 * ONE JSON object on stdout: {"giou", "ciou", "n", "box_acc50"? (when any prediction
 * has a bbox), "format_rate"? (when any has format_valid)}. Missing predictions count
 * as empty masks (their number goes to stderr).
 *
 * DIR is a dataset root in LISA's layout (refer_seg/, reason_seg/). GroundingSuite:
 * `--split groundingsuite/eval` with DIR holding GroundingSuite-Eval.jsonl; its
 * image_path values resolve under --images (default DIR).
 */
import { parseArgs } from 'node:util';
import { FAMILIES, SPLITS, loadSplit, parseSplitName } from '../data/index';
import { readPredictions, scorePredictions } from '../eval/predictions';
import { UsageError } from './errors';

const HELP = `usage: lens evaluate --data DIR --split FAMILY/SPLIT --pred FILE [--images DIR]

  --data DIR      dataset root (LISA layout: refer_seg/, reason_seg/; or a folder holding GroundingSuite-Eval.jsonl)
  --split F/S     ${FAMILIES.map((f) => `${f}/{${SPLITS[f].join(',')}}`).join(' ')}
  --pred FILE     JSON list of {"ref_id"|"sample_id", "sent_idx"?, "segmentation": {"size":[h,w],"counts":RLE}, "bbox"?: [x,y,w,h], "format_valid"?}
  --images DIR    GroundingSuite image root (default: --data)

Prints one JSON object: {"giou", "ciou", "n", "box_acc50"?, "format_rate"?}.`;

export async function run(argv: string[]): Promise<number> {
  let values: { data?: string; split?: string; pred?: string; images?: string; help?: boolean };
  try {
    ({ values } = parseArgs({
      args: argv,
      options: {
        data: { type: 'string' },
        split: { type: 'string' },
        pred: { type: 'string' },
        images: { type: 'string' },
        help: { type: 'boolean', short: 'h' },
      },
      strict: true,
      allowPositionals: false,
    }));
  } catch (e) {
    throw new UsageError(`${(e as Error).message}\n\n${HELP}`);
  }
  if (values.help) {
    console.log(HELP);
    return 0;
  }
  for (const flag of ['data', 'split', 'pred'] as const) {
    if (!values[flag]) throw new UsageError(`--${flag} is required\n\n${HELP}`);
  }
  let family: string;
  let split: string;
  try {
    ({ family, split } = parseSplitName(values.split!));
  } catch (e) {
    throw new UsageError(`--split: ${(e as Error).message}`);
  }
  const ds = await loadSplit(values.data!, family, split, values.images ? { imageRoot: values.images } : {});
  const preds = readPredictions(values.pred!);
  const { missing, ...metrics } = scorePredictions(ds, preds, values.pred!);
  if (missing) console.error(`lens evaluate: ${missing} of ${metrics.n} samples have no prediction (scored as empty masks)`);
  process.stdout.write(`${JSON.stringify(metrics)}\n`);
  return 0;
}
