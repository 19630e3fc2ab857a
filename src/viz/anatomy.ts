/**
 * Parameter accounting for notebook 02 (model anatomy): counts grouped by the
 * first `depth` parts of the parameter names of a Module (`sam.mask_decoder.x`
 * at depth 2 -> `sam.mask_decoder`), in the order the model defines them.
 */
import type { Module } from '../model/nn';

/** One group of parameters. */
export interface ParamGroup {
  name: string;
  params: number;
  tensors: number;
}

/** Sizes of named parameters grouped by the first `depth` name parts: ('a.b.w', [2, 3]) at depth 1 -> a: 6. */
export function groupParams(named: Iterable<[string, { shape: number[] }]>, depth = 1): ParamGroup[] {
  if (!Number.isInteger(depth) || depth < 1) throw new Error(`groupParams: depth must be an integer >= 1, got ${depth}`);
  const groups = new Map<string, ParamGroup>();
  for (const [name, v] of named) {
    const key = name.split('.').slice(0, depth).join('.');
    const g = groups.get(key) ?? { name: key, params: 0, tensors: 0 };
    g.params += v.shape.reduce((a, b) => a * b, 1);
    g.tensors += 1;
    groups.set(key, g);
  }
  return [...groups.values()];
}

/** groupParams over a Module's namedParameters(). */
export function paramGroups(module: Module, depth = 1): ParamGroup[] {
  return groupParams(module.namedParameters(), depth);
}
