import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, afterEach, describe, expect, it, vi } from 'vitest';
import { figureBundle, formatCell, galleryBundle, PLOTLY_MIME, tableBundle } from '../../src/viz/bundles';
import { displayBundle, encodeBundle, kernelSink, setDisplaySink, type DisplayContent } from '../../src/viz/display';
import { barChart } from '../../src/viz/figure';
import { overlayPng } from '../../src/viz/overlay';
import { renderSvg } from '../../src/viz/svg';
import { figurePageHtml, scriptJson, writeFigure, writeFigurePage } from '../../src/viz/writer';

const fig = barChart({ title: 'Params', categories: ['a', 'b'], series: [{ name: 'n', values: [3, 4] }] });

afterEach(() => setDisplaySink(null));

describe('display bundle', () => {
  it('sends one display_data message carrying every MIME type of a figure', () => {
    const sent: Array<[DisplayContent, boolean]> = [];
    setDisplaySink((c, u) => sent.push([c, u]));
    expect(displayBundle(figureBundle(fig))).toBe(true);
    expect(sent).toHaveLength(1);
    const [content, update] = sent[0]!;
    expect(update).toBe(false);
    expect(Object.keys(content.data).sort()).toEqual([PLOTLY_MIME, 'text/html', 'text/plain'].sort());
    // Plotly JSON travels as an object (Jupyter's rule for JSON MIME types), equal to the figure
    expect(content.data[PLOTLY_MIME]).toMatchObject({ data: fig.data, layout: fig.layout });
    // the HTML fallback is the static SVG as a data-URI image, with no script and no network
    const html = content.data['text/html'] as string;
    const b64 = /src="data:image\/svg\+xml;base64,([^"]+)"/.exec(html)![1]!;
    expect(Buffer.from(b64, 'base64').toString()).toBe(renderSvg(fig));
    expect(html).not.toMatch(/<script|https?:/);
    expect(content.data['text/plain']).toBe('<Figure: Params>');
  });

  it('sends bytes as base64 and refuses objects for non-JSON types', () => {
    expect(encodeBundle({ 'image/png': new Uint8Array([1, 2, 3]), 'application/json': { a: 1 } })).toEqual({ 'image/png': 'AQID', 'application/json': { a: 1 } });
    expect(() => encodeBundle({ 'text/html': { a: 1 } })).toThrow(/'text\/html' holds an object/);
    expect(() => displayBundle({})).toThrow(/at least one MIME type/);
  });

  it('outside a tslab kernel finds no kernel writer and prints the text/plain part', () => {
    expect(kernelSink()).toBeNull();
    const write = vi.spyOn(process.stdout, 'write').mockImplementation(() => true);
    try {
      expect(displayBundle({ 'text/plain': 'hello', 'text/html': '<b>hello</b>' })).toBe(false);
      expect(write).toHaveBeenCalledWith('hello\n');
    } finally {
      write.mockRestore();
    }
  });
});

describe('tables', () => {
  it('right-aligns numeric columns and formats integers with separators', () => {
    const b = tableBundle([{ part: 'mllm', params: 1234567 }, { part: 'sam', params: 0.5 }], { title: 'T' });
    expect(b['text/plain']).toBe(['T', 'part     params', '----  ---------', 'mllm  1,234,567', 'sam         0.5'].join('\n'));
    expect(b['text/html']).toContain('<td style="text-align:right">1,234,567</td>');
    expect(b['text/html']).toContain('<caption');
  });

  it('escapes cells and formats values', () => {
    expect(tableBundle([{ a: '<x>' }])['text/html']).toContain('&lt;x&gt;');
    expect([formatCell(0.123456), formatCell(12345.6), formatCell(null), formatCell(NaN)]).toEqual(['0.1235', '12346', '', 'NaN']);
    expect(() => tableBundle([])).toThrow(/at least one column/);
  });
});

describe('gallery', () => {
  it('shows PNG panels with captions as HTML, a montage PNG and the captions as text', async () => {
    const img = { data: new Uint8Array(4 * 4 * 3).fill(200), height: 4, width: 4 };
    const png = await overlayPng(img, { scale: 2 });
    const b = await galleryBundle([{ png, caption: 'one <1>', title: 's1' }, { png, caption: 'two' }], { columns: 2, title: 'G' });
    expect(b['text/plain']).toBe('G\n[1] s1: one <1>\n[2] two');
    expect((b['text/html'] as string).match(/<img src="data:image\/png;base64,/g)).toHaveLength(2);
    expect(b['text/html']).toContain('one &lt;1&gt;');
    const sharp = (await import('sharp')).default;
    const meta = await sharp(b['image/png'] as Uint8Array).metadata();
    expect([meta.width, meta.height]).toEqual([8 + 8 + 8, 8]); // two 8 px panels, 8 px gap
  });
});

describe('figure pages', () => {
  const root = mkdtempSync(join(tmpdir(), 'lens-viz-'));
  afterAll(() => rmSync(root, { recursive: true, force: true }));

  it('writes results/figures/<notebook>/<name>.html with the inline SVG and the Plotly JSON', () => {
    const path = writeFigure('02_model_anatomy', 'params', fig, root);
    expect(path).toBe(join(root, 'results', 'figures', '02_model_anatomy', 'params.html'));
    const html = readFileSync(path, 'utf8');
    expect(html).toContain(renderSvg(fig));
    const json = /<script type="application\/json" id="plotly-figure">(.*?)<\/script>/s.exec(html)![1]!;
    expect(JSON.parse(json)).toEqual({ data: fig.data, layout: fig.layout });
    expect(html).not.toMatch(/https?:\/\/(?!www\.w3\.org)/); // nothing fetched from the network
  });

  it('keeps the embedded JSON from closing its script element', () => {
    expect(scriptJson({ t: '</script><script>alert(1)</script>' })).not.toContain('</script>');
    expect(JSON.parse(scriptJson({ t: '</script>' }))).toEqual({ t: '</script>' });
    expect(figurePageHtml({ title: 'x', bodyHtml: '<p>y</p>' })).not.toContain('plotly-figure');
  });

  it('refuses names that are not plain file names', () => {
    expect(() => writeFigurePage('../x', 'a', { title: '', bodyHtml: '' }, root)).toThrow(/notebook "..\/x" must match/);
    expect(() => writeFigurePage('nb', 'a/b', { title: '', bodyHtml: '' }, root)).toThrow(/name "a\/b" must match/);
  });
});
