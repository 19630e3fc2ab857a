/**
 * One run against another, split by split (eval/paired.ts): each point the difference of cIoU
 * (points) with its paired bootstrap interval, drawn against a line at 0, so that a difference
 * the evaluation cannot tell from none reads as an interval across the line.
 */
import type { PairedDifference } from '../eval/paired';
import { PALETTE, type Figure } from './figure';

/** Differences with their intervals, one category each (e.g. the splits, then their mean). */
export function pairedDifferenceFigure(title: string, items: ReadonlyArray<{ label: string; d: PairedDifference }>, { height = 380, width = 900 } = {}): Figure {
  if (items.length === 0) throw new Error('pairedDifferenceFigure: nothing to draw');
  const x = items.map((it) => it.label);
  const level = Math.round(100 * items[0]!.d.level);
  return {
    data: [
      {
        type: 'scatter',
        name: `difference, ${level}% paired bootstrap interval`,
        mode: 'markers',
        x,
        y: items.map((it) => it.d.difference),
        marker: { color: PALETTE[1], size: 10 },
        error_y: { type: 'data', symmetric: false, array: items.map((it) => it.d.hi - it.d.difference), arrayminus: items.map((it) => it.d.difference - it.d.lo), visible: true, color: PALETTE[1] },
      },
      // after the points: a category axis takes its order from the first trace
      { type: 'scatter', name: 'no difference', mode: 'lines', x: [x[0]!, x[x.length - 1]!], y: [0, 0], line: { color: '#7f7f7f', dash: 'dash', width: 1 } },
    ],
    layout: { title: { text: title }, xaxis: { type: 'category' }, yaxis: { title: { text: 'cIoU difference (points)' } }, showlegend: true, width, height },
  };
}
