/**
 * Typed plain-data configs (STYLE.md 3; TRL's dataclass configs, tfjs-models'
 * validateModelConfig): every config is an interface with a documented DEFAULT_
 * object; `resolveConfig` fills defaults from a partial delta and throws an error
 * naming the field, the value and what was expected. The resolved config is what
 * runs save beside their results.
 */

/** A deep-partial override of a config. */
export type ConfigDelta<T> = { [K in keyof T]?: T[K] extends readonly unknown[] ? T[K] : T[K] extends object ? ConfigDelta<T[K]> : T[K] };

/** A check on one field: returns null when fine, else what was expected. */
export type Rule = (value: unknown) => string | null;

/** Thrown for a bad config value; the message names the config, field and expectation. */
export class ConfigError extends Error {
  override name = 'ConfigError';
}

export const rules = {
  positive: ((v) => (typeof v === 'number' && v > 0 && Number.isFinite(v) ? null : 'a positive number')) as Rule,
  nonNegative: ((v) => (typeof v === 'number' && v >= 0 && Number.isFinite(v) ? null : 'a number >= 0')) as Rule,
  int: (min: number, max = Number.MAX_SAFE_INTEGER): Rule => (v) =>
    typeof v === 'number' && Number.isInteger(v) && v >= min && v <= max ? null : `an integer in [${min}, ${max === Number.MAX_SAFE_INTEGER ? '∞' : max}]`,
  range: (min: number, max: number): Rule => (v) => (typeof v === 'number' && v >= min && v <= max ? null : `a number in [${min}, ${max}]`),
  oneOf: (...options: readonly (string | number | boolean)[]): Rule => (v) =>
    options.includes(v as string) ? null : `one of ${options.map((o) => JSON.stringify(o)).join(', ')}`,
};

export function isPlainObject(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

/**
 * Merges `delta` over `defaults`, checking that every field exists, has the type of
 * its default, and passes its rule (rules are keyed by dotted path, e.g. `rewards.box`).
 * @param where names the config in errors, e.g. `grpo config` or a file path.
 */
export function resolveConfig<T extends object>(defaults: T, delta: unknown, where: string, fieldRules: Record<string, Rule> = {}): T {
  const walk = (def: unknown, d: unknown, path: string): unknown => {
    if (d === undefined) return structuredClone(def);
    if (isPlainObject(def)) {
      if (!isPlainObject(d)) throw new ConfigError(`${where}: field '${path || '(root)'}' must be an object, got ${JSON.stringify(d)}`);
      const out: Record<string, unknown> = {};
      for (const k of Object.keys(d)) {
        if (!(k in def)) {
          throw new ConfigError(`${where}: unknown field '${path ? `${path}.` : ''}${k}'; expected one of: ${Object.keys(def).join(', ')}`);
        }
      }
      for (const k of Object.keys(def)) out[k] = walk(def[k], d[k], path ? `${path}.${k}` : k);
      return out;
    }
    if (def !== null && (typeof def !== typeof d || Array.isArray(def) !== Array.isArray(d))) {
      throw new ConfigError(`${where}: field '${path}' must be a ${Array.isArray(def) ? 'list' : typeof def}, got ${JSON.stringify(d)}`);
    }
    return structuredClone(d);
  };
  const out = walk(defaults, delta, '') as T;
  for (const [path, rule] of Object.entries(fieldRules)) {
    const value = path.split('.').reduce<unknown>((o, k) => (isPlainObject(o) ? o[k] : undefined), out);
    const expected = rule(value);
    if (expected !== null) throw new ConfigError(`${where}: field '${path}' = ${JSON.stringify(value)}; expected ${expected}`);
  }
  return out;
}
