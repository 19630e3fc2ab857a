/** Public API of evaluation: LISA-convention metrics and prediction-file scoring. */
export { MetricAccumulator, intersectionUnion, sampleIou, boxIou, boxHit, IOU_EPS, CIOU_EPS, type Box, type MetricResult, type SampleExtras } from './metrics';
export { scorePredictions, readPredictions, predictionEntry, type Prediction } from './predictions';
