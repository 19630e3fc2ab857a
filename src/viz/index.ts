/**
 * Public API of the notebooks' plotting layer (DESIGN.md "Notebooks"): Plotly
 * figures with an offline SVG fallback, shown as one multi-MIME display bundle;
 * mask / box overlays as PNG; standalone figure pages under results/figures/.
 *
 * Notebooks import `./src/viz/index` (tslab resolves a folder import only by its
 * file name: `./src/viz` would not load).
 */
export * from './figure';
export { renderSvg, niceTicks, formatTick, colorAt, escapeXml } from './svg';
export * from './display';
export * from './bundles';
export * from './overlay';
export * from './writer';
export * from './notebook';
export * from './samples';
export * from './anatomy';
export * from './environment';
export * from './ablation';
export * from './paired';
