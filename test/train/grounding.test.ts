import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as tf from '@tensorflow/tfjs-core';
import '@tensorflow/tfjs-backend-cpu';
import { beforeAll, describe, expect, it } from 'vitest';
import { initBackend } from '../../src/backend';
import { ensureBenchmark } from '../../src/data/generate/benchmark';
import { tokenCrossEntropy } from '../../src/model/losses';
import { buildLens } from '../../src/model/presets';
import { formatQuestion, IMAGE_ID } from '../../src/model/tokenizer';
import { readArrow } from '../../src/util/arrow';
import { readSafetensors } from '../../src/util/safetensors';
import { disposeBatch, encodeBatch, fitTokenizer, loadExamples } from '../../src/train/data';
import { answerCrossEntropy, cellShares, groundingLosses, GroundingModule, groundingPositions } from '../../src/train/grounding';
import { InterruptedRun } from '../../src/train/loop';
import { runStage0b, sftLoss } from '../../src/train/stage0';

const root = mkdtempSync(join(tmpdir(), 'lens-grounding-'));
const data = join(root, 'data');

beforeAll(async () => {
  await initBackend({ quiet: true });
  if (!process.env.LENS_BACKEND && !tf.getKernel('UnsortedSegmentSum', tf.getBackend())) await tf.setBackend('cpu');
  await ensureBenchmark(data, { scale: 'tiny', seed: 0 }, { quiet: true });
});

describe('grounding pieces', () => {
  it('cellShares: the target pixels (label 1; 255 is ignored) per cell of the token grid, rows summing to 1, an empty target all 0', () => {
    // 4 x 4 labels, a 2 x 2 grid of 2 x 2 cells
    const labels = tf.tensor3d([1, 1, 0, 0, 1, 0, 0, 0, 0, 0, 0, 1, 255, 0, 0, 0, ...new Array<number>(16).fill(0)], [2, 4, 4]);
    const s = cellShares(labels, 2);
    // row 0: cell (0,0) holds 3 pixels, cell (1,1) one, the 255 in cell (1,0) does not count
    const got = s.arraySync();
    [0.75, 0, 0, 0.25].forEach((v, i) => expect(got[0]![i]).toBeCloseTo(v, 6));
    expect(got[1]).toEqual([0, 0, 0, 0]);
    expect(() => cellShares(labels, 3)).toThrow(/side 4 is not a multiple of the 3 x 3 token grid/);
    tf.dispose([labels, s]);
  });

  it('groundingPositions: the box `[` after bbox_2d, the first visual slot and the prompt\'s `Output the`; -1 where a row has none', async () => {
    const ex = await loadExamples(data, 'refcoco', 'train', { imageSize: 64, limit: 2, quiet: true });
    const tok = fitTokenizer(ex);
    const full = [...tok.encode(`<image> <image> ${formatQuestion('the output of the red star')}`), ...tok.encode(ex[0]!.answer)];
    const [p] = groundingPositions([full], tok);
    expect(full[p!.visual]).toBe(IMAGE_ID);
    expect(p!.visual).toBe(0);
    expect(tok.decode(full.slice(p!.open - 3, p!.open + 2))).toMatch(/bbox_2d.*\[ ?\d+$/);
    // "... with bbox. Output the | thinking process ...": after the sentence, even one that says "the output"
    expect([full[p!.prompt - 1], full[p!.prompt], full[p!.prompt + 1]]).toEqual(['output', 'the', 'thinking'].map((w) => tok.tokenId(w)));
    expect(tok.tokenId('output')).not.toBe(tok.tokenId('<unk>'));
    expect(full.indexOf(tok.tokenId('output'))).toBeLessThan(p!.prompt - 1); // the sentence's own "output" comes first
    // "... it is the | <colour> <category> at the | bottom left. </think>": the reasoning's naming states
    expect(tok.decode(full.slice(p!.name - 2, p!.name + 3))).toBe(`it is the ${ex[0]!.label}`);
    expect(tok.decode(full.slice(p!.place - 1, p!.place + 2))).toMatch(/^(at|in) the (top|bottom|middle|left|right|centre)$/);
    expect(full.slice(p!.place + 1, full.lastIndexOf(tok.tokenId('</think>')))).not.toContain(tok.tokenId('the'));
    expect(groundingPositions([tok.encode('no box here [1, 2]')], tok)[0]).toEqual({ open: -1, visual: -1, prompt: -1, name: -1, place: -1 });
  });

  it('the MLLM reports one head\'s log attention: rows sum to 1, no weight on later positions, and the logits are unchanged', async () => {
    const ex = await loadExamples(data, 'refcoco', 'train', { imageSize: 64, limit: 2, quiet: true });
    const tok = fitTokenizer(ex);
    const model = buildLens({ preset: 'tiny', mllm: { vocabSize: 512 } }, { seed: 1 });
    const b = encodeBatch(tok, ex, { numVisual: model.vision.numTokens, side: 64, withAnswer: true });
    const before = tf.memory().numTensors;
    tf.tidy(() => {
      const visual = model.vision.apply(b.images);
      const plain = model.mllm.forward({ tokens: b.tokens, attentionMask: b.attentionMask, visual });
      const tapped = model.mllm.forward({ tokens: b.tokens, attentionMask: b.attentionMask, visual }, { attentionOf: { layer: 2, head: 1 } });
      expect(Array.from(tapped.logits.dataSync())).toEqual(Array.from(plain.logits.dataSync()));
      const w = tf.exp(tapped.logAttention!).arraySync();
      const T = b.tokens.shape[1];
      for (const row of w) {
        row.forEach((r, i) => {
          expect(r.reduce((s, x) => s + x, 0)).toBeCloseTo(1, 5);
          for (let j = i + 1; j < T; j++) expect(r[j]).toBeLessThan(1e-12);
        });
      }
      expect(() => model.mllm.forward({ tokens: b.tokens, attentionMask: b.attentionMask, visual }, { attentionOf: { layer: 3, head: 0 } })).toThrow(/layer must be an integer in 1..2, got 3/);
    });
    expect(tf.memory().numTensors).toBe(before);
    disposeBatch(b);
    model.dispose();
  });

  it('answerCrossEntropy: the all-positions token cross-entropy, value and gradients, from the answer rows only; no tensor left', async () => {
    const ex = await loadExamples(data, 'refcoco', 'train', { imageSize: 64, limit: 3, quiet: true });
    const tok = fitTokenizer(ex);
    for (const tie of [true, false]) {
      const model = buildLens({ preset: 'tiny', mllm: { vocabSize: 512, tieWordEmbeddings: tie } }, { seed: 3 });
      const b = encodeBatch(tok, ex, { numVisual: model.vision.numTokens, side: 64, withAnswer: true });
      const before = tf.memory().numTensors;
      const vars = model.namedParameters().map(([, v]) => v);
      const run = (rowsOnly: boolean) => {
        const { value, grads } = tf.variableGrads(() => {
          const { logits, hidden } = model.mllm.forward({ tokens: b.tokens, attentionMask: b.attentionMask, visual: model.vision.apply(b.images) });
          if (rowsOnly) return answerCrossEntropy(model.mllm, hidden, b.tokens, b.answerMask);
          const [B, T, V] = logits.shape;
          return tokenCrossEntropy(tf.slice(logits, [0, 0, 0], [B, T - 1, V]) as tf.Tensor3D, tf.slice(b.tokens, [0, 1], [B, T - 1]) as tf.Tensor2D, tf.slice(b.answerMask, [0, 1], [B, T - 1]) as tf.Tensor2D);
        }, vars);
        const out = { loss: value.dataSync()[0]!, g: vars.map((v) => (grads[v.name] ? Array.from(grads[v.name]!.dataSync()) : [])) };
        tf.dispose([value, ...Object.values(grads)]);
        return out;
      };
      const ref = run(false);
      const rows = run(true);
      expect(rows.loss).toBeGreaterThan(5); // ~log(vocab) at initialisation
      expect(rows.loss).toBeCloseTo(ref.loss, 5);
      expect(rows.g.map((g) => g.length)).toEqual(ref.g.map((g) => g.length));
      const off = rows.g.flatMap((g, i) => g.filter((x, j) => !(Math.abs(x - ref.g[i]![j]!) <= 1e-5 + 1e-4 * Math.abs(ref.g[i]![j]!))));
      expect(off).toEqual([]);
      expect(tf.memory().numTensors).toBe(before);
      disposeBatch(b);
      model.dispose();
    }
  });

  it('groundingLosses: plain SFT when both weights are 0; the pointer trains only the blocks up to its layer, the place loss its head; no tensor left', async () => {
    const ex = await loadExamples(data, 'refcoco', 'train', { imageSize: 64, limit: 4, quiet: true });
    const tok = fitTokenizer(ex);
    const model = buildLens({ preset: 'tiny', mllm: { vocabSize: 512 } }, { seed: 2 });
    const g = new GroundingModule(model, true, 0);
    const b = encodeBatch(tok, ex, { numVisual: model.vision.numTokens, side: 64, withAnswer: true });
    const before = tf.memory().numTensors;
    const off = groundingLosses(g, tok, b, { pointerWeight: 0, pointerLayer: 1, placeWeight: 0, groundPrompt: false, groundReasoning: false });
    const sft = sftLoss(model, b);
    expect(off.loss.dataSync()[0]).toBeCloseTo(sft.dataSync()[0]!, 6);
    expect(off.pointer.dataSync()[0]).toBe(0);
    tf.dispose([off.loss, off.sft, off.pointer, off.pointerHit, off.place, sft]);
    expect(tf.memory().numTensors).toBe(before);

    const vars = [...model.namedParameters(), ...g.headParameters()];
    const gradOf = (term: 'pointer' | 'place') => {
      const { grads, value } = tf.variableGrads(() => {
        const t = groundingLosses(g, tok, b, { pointerWeight: 1, pointerLayer: 1, placeWeight: 1, groundPrompt: false, groundReasoning: false });
        return t[term];
      }, vars.map(([, v]) => v));
      const byName = new Map(vars.map(([n, v]) => [n, grads[v.name] ? tf.tidy(() => tf.sum(tf.abs(grads[v.name]!)).dataSync()[0]!) : 0] as const));
      const loss = value.dataSync()[0]!;
      tf.dispose([value, ...Object.values(grads)]);
      return { loss, byName };
    };
    const p = gradOf('pointer');
    // -sum(shares * log w) over a softmax spread over ~T keys: about log(T) at initialisation
    expect(p.loss).toBeGreaterThan(1);
    expect(p.byName.get('mllm.layers.0.attn.q_proj.weight')).toBeGreaterThan(0);
    expect(p.byName.get('vision.merger.fc2.weight')).toBeGreaterThan(0); // the visual keys carry the gradient to the encoder
    expect(p.byName.get('mllm.layers.1.attn.q_proj.weight') ?? 0).toBe(0); // above the pointer's block
    expect(p.byName.get('place_head.weight') ?? 0).toBe(0);
    const q = gradOf('place');
    expect(q.loss).toBeCloseTo(Math.log(model.vision.numTokens), 0); // a near-uniform head at init
    expect(q.byName.get('place_head.weight')).toBeGreaterThan(0);
    expect(q.byName.get('mllm.layers.1.attn.q_proj.weight')).toBeGreaterThan(0);
    expect(tf.memory().numTensors).toBe(before);
    disposeBatch(b);
    model.dispose();
    g.placeHead!.dispose();
  });
  it('groundPrompt / groundReasoning: the pointer averages those states with the four coordinates\' (by hand from the head\'s log attention), the place loss x1\'s with them', async () => {
    const ex = await loadExamples(data, 'refcoco', 'train', { imageSize: 64, limit: 3, quiet: true });
    const tok = fitTokenizer(ex);
    const model = buildLens({ preset: 'tiny', mllm: { vocabSize: 512 } }, { seed: 3 });
    const g = new GroundingModule(model, true, 0);
    const b = encodeBatch(tok, ex, { numVisual: model.vision.numTokens, side: 64, withAnswer: true });
    const before = tf.memory().numTensors;
    const w = { pointerWeight: 1, pointerLayer: 1, placeWeight: 1 };
    const [off, on, all] = [[false, false], [true, false], [true, true]].map(([groundPrompt, groundReasoning]) => {
      const t = groundingLosses(g, tok, b, { ...w, groundPrompt: groundPrompt!, groundReasoning: groundReasoning! });
      const r = { pointer: t.pointer.dataSync()[0]!, place: t.place.dataSync()[0]!, hit: t.pointerHit.dataSync()[0]! };
      tf.dispose(Object.values(t));
      return r;
    });
    // by hand: -sum_v share_v * log a(state -> visual v), per state, then the states' mean per row, then the rows' mean
    const nv = model.vision.numTokens;
    const shares = cellShares(b.labels, Math.round(Math.sqrt(nv)));
    const sh = shares.arraySync();
    const { logAtt, hidden } = tf.tidy(() => {
      const out = model.mllm.forward({ tokens: b.tokens, attentionMask: b.attentionMask, visual: model.vision.apply(b.images) }, { attentionOf: { layer: 1, head: 0 } });
      return { logAtt: out.logAttention!.arraySync() as number[][][], hidden: out.hidden };
    });
    const pos = groundingPositions(b.tokens.arraySync(), tok);
    const ce = (r: number, t: number) => -sh[r]!.reduce((s, x, v) => s + x * logAtt[r]![t]![pos[r]!.visual + v]!, 0);
    const coords = (r: number) => [0, 2, 4, 6].map((d) => ce(r, pos[r]!.open + d));
    const mean = (xs: number[]) => xs.reduce((s, x) => s + x, 0) / xs.length;
    expect(pos.every((p) => p.visual > 0 && p.visual < p.prompt && p.prompt < p.name && p.name < p.place && p.place < p.open)).toBe(true);
    expect(off.pointer).toBeCloseTo(mean(pos.map((_, r) => mean(coords(r)))), 4);
    expect(on.pointer).toBeCloseTo(mean(pos.map((p, r) => mean([...coords(r), ce(r, p.prompt)]))), 4);
    expect(all.pointer).toBeCloseTo(mean(pos.map((p, r) => mean([...coords(r), ce(r, p.prompt), ce(r, p.name), ce(r, p.place)]))), 4);
    expect(on.pointer).not.toBeCloseTo(off.pointer, 4);
    expect(all.pointer).not.toBeCloseTo(on.pointer, 4);
    expect(on.hit).toBe(off.hit); // the hit rate stays x1's
    // the place head at x1's state and at the place word's
    const placeCe = (t: (p: (typeof pos)[number]) => number) =>
      tf.tidy(() => {
        const C = hidden.shape[2];
        const rows = tf.tensor1d(pos.map((p, r) => r * hidden.shape[1] + t(p)), 'int32');
        const lp = tf.logSoftmax(g.placeHead!.apply(tf.gather(tf.reshape(hidden, [-1, C]), rows) as tf.Tensor2D));
        return (tf.neg(tf.sum(tf.mul(lp, shares), -1)).arraySync() as number[]);
      });
    const x1 = placeCe((p) => p.open);
    const prompt = placeCe((p) => p.prompt);
    expect(off.place).toBeCloseTo(mean(x1), 4);
    expect(on.place).toBeCloseTo(mean(x1.map((x, r) => (x + prompt[r]!) / 2)), 4);
    const name = placeCe((p) => p.name);
    const place = placeCe((p) => p.place);
    expect(all.place).toBeCloseTo(mean(x1.map((x, r) => (x + prompt[r]! + name[r]! + place[r]!) / 4)), 4);
    tf.dispose([shares, hidden]);
    expect(tf.memory().numTensors).toBe(before);
    disposeBatch(b);
    model.dispose();
    g.placeHead!.dispose();
  });
});

describe('stage 0b with the grounding losses', () => {
  const config = {
    steps: 4,
    batchSize: 2,
    checkpointEvery: 2,
    limitPerFamily: 2,
    evalPerSplit: 0,
    visionLrScale: 0.1,
    pointerWeight: 1,
    pointerLayer: 2,
    placeWeight: 1,
  };

  it('logs the pointer and place terms, and a run killed after step 3 resumes (place head and all) to the same weights', async () => {
    const before = tf.memory().numTensors;
    const straight = await runStage0b({ dataRoot: data, out: join(root, 'straight'), preset: 'tiny', seed: 0, resume: false, quiet: true, config });
    const rows = readArrow(join(straight.dir, 'steps.arrow'));
    expect(rows).toHaveLength(4);
    for (const r of rows) {
      for (const k of ['sft', 'pointer', 'pointerHit', 'place']) expect(Number.isFinite(r[k]), k).toBe(true);
      expect(r.loss as number).toBeCloseTo((r.sft as number) + (r.pointer as number) + (r.place as number), 4);
    }
    straight.model.dispose();
    expect(tf.memory().numTensors).toBe(before); // the place head goes with the run
    const out = join(root, 'killed');
    await expect(runStage0b({ dataRoot: data, out, preset: 'tiny', seed: 0, resume: false, quiet: true, config, stopAfter: 3 })).rejects.toBeInstanceOf(InterruptedRun);
    const resumed = await runStage0b({ dataRoot: data, out, preset: 'tiny', seed: 0, resume: true, quiet: true, config });
    resumed.model.dispose();
    const a = readSafetensors(join(straight.dir, 'model.safetensors')).tensors;
    const b = readSafetensors(join(out, 'model.safetensors')).tensors;
    expect([...b.keys()]).toEqual([...a.keys()]); // the place head is not in the model
    expect([...a.keys()].some((k) => k.includes('place'))).toBe(false);
    for (const [name, t] of a) expect(Array.from(b.get(name)!.data), name).toEqual(Array.from(t.data));
  });

  it('a pointer layer the MLLM does not have is a config error naming the field', async () => {
    await expect(runStage0b({ dataRoot: data, out: join(root, 'bad'), preset: 'tiny', seed: 0, resume: false, quiet: true, config: { ...config, pointerLayer: 9 } })).rejects.toThrow(
      /field 'pointerLayer' must be a block of the MLLM, 1..2, got 9/,
    );
  });
});
