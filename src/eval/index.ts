/** Public API of evaluation: LISA-convention metrics, prediction-file scoring, and paired comparison of two runs. */
export { MetricAccumulator, intersectionUnion, sampleIou, boxIou, boxHit, IOU_EPS, CIOU_EPS, type Box, type MetricResult, type SampleExtras } from './metrics';
export { scorePredictions, readPredictions, predictionEntry, type Prediction } from './predictions';
export { pairedCiouDifference, pairedLine, runSentenceCounts, type PairedDifference, type SentenceCounts } from './paired';
