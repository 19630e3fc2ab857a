/**
 * Adam with a fused per-variable update (issue #3: per-op overhead). tfjs-core's
 * AdamOptimizer (optimizers/adam_optimizer.ts) spends 13 kernel calls per variable
 * per step (~900 for the reference transformer); torch's Adam is one pass. Here the
 * update of value, first and second moment is ONE kernel, `LensAdamUpdate`,
 * registered for the wasm backend when the native addon is present; it performs
 * the same float32 operations in the same order, so training is bit-identical to
 * `tf.train.adam`. Elsewhere (other backends, no addon, stock kernels switched
 * back) the optimizer is exactly tfjs's AdamOptimizer: same class, same
 * getWeights / setWeights, same serialisation name.
 *
 * Use `adam(lr, beta1, beta2, eps)` wherever `tf.train.adam` would be used
 * (docs/performance.md).
 */
import * as tf from '@tensorflow/tfjs-core';
import type { NativeAddon } from './native';
import { heapBuffer, offsetOf, type KernelArgs } from './wasm-backend';

/** The fused kernel's name (registered for 'wasm' by src/accel/register.ts). */
export const ADAM_KERNEL = 'LensAdamUpdate';

/** Attributes of the fused update: the scalars tfjs's AdamOptimizer builds per step. */
interface AdamAttrs {
  beta1: number;
  beta2: number;
  /** 1 - beta1^t as the float32 tfjs computes it. */
  oneMinusAccBeta1: number;
  oneMinusAccBeta2: number;
  epsilon: number;
  learningRate: number;
}

/** LensAdamUpdate kernel: inputs value, m, v, g (float32, same shape) -> [value', m', v']. */
export function makeAdamKernel(addon: NativeAddon) {
  return (args: KernelArgs): tf.TensorInfo[] => {
    const { value, m, v, g } = args.inputs;
    const a = args.attrs as unknown as AdamAttrs;
    for (const [name, t] of Object.entries({ m, v, g })) {
      if (t.dtype !== 'float32' || !tf.util.arraysEqual(t.shape, value.shape)) {
        throw new Error(`${ADAM_KERNEL}: input '${name}' must be float32 of shape [${value.shape}], got ${t.dtype} [${t.shape}]`);
      }
    }
    const backend = args.backend;
    const outs = [backend.makeOutput(value.shape, 'float32'), backend.makeOutput(value.shape, 'float32'), backend.makeOutput(value.shape, 'float32')];
    const n = tf.util.sizeFromShape(value.shape);
    const f = Math.fround;
    const desc = new Float64Array([
      ...[value, m, v, g, ...outs].map((t) => offsetOf(backend, t)),
      n,
      // the scalars exactly as tfjs makes them: JS doubles converted to float32 tensors
      f(a.beta1), f(1 - a.beta1), f(a.beta2), f(1 - a.beta2),
      f(a.oneMinusAccBeta1), f(a.oneMinusAccBeta2), f(a.epsilon), f(-a.learningRate),
    ]);
    addon.adam(heapBuffer(backend), desc);
    return outs;
  };
}

/** The private state of tfjs's AdamOptimizer this subclass reuses (same fields, same saving). */
interface AdamState {
  accBeta1: tf.Variable;
  accBeta2: tf.Variable;
  accumulatedFirstMoment: Array<{ originalName: string; variable: tf.Variable } | undefined>;
  accumulatedSecondMoment: Array<{ originalName: string; variable: tf.Variable } | undefined>;
}

/** tfjs's AdamOptimizer whose per-variable update is one fused kernel where one is registered. */
export class FusedAdamOptimizer extends tf.AdamOptimizer {
  override applyGradients(variableGradients: Parameters<tf.AdamOptimizer['applyGradients']>[0]): void {
    if (!tf.getKernel(ADAM_KERNEL, tf.getBackend())) {
      super.applyGradients(variableGradients);
      return;
    }
    const s = this as unknown as AdamState;
    const names = Array.isArray(variableGradients) ? variableGradients.map((v) => v.name) : Object.keys(variableGradients);
    tf.tidy(() => {
      // 1 - accBeta as tfjs computes it: sub(1, accBeta) in float32
      const oneMinusAccBeta1 = Math.fround(1 - s.accBeta1.dataSync()[0]);
      const oneMinusAccBeta2 = Math.fround(1 - s.accBeta2.dataSync()[0]);
      const attrs = { beta1: this.beta1, beta2: this.beta2, oneMinusAccBeta1, oneMinusAccBeta2, epsilon: this.epsilon, learningRate: this.learningRate };
      names.forEach((name, i) => {
        const value = tf.engine().registeredVariables[name];
        s.accumulatedFirstMoment[i] ??= { originalName: `${name}/m`, variable: tf.tidy(() => tf.variable(tf.zerosLike(value), false)) };
        s.accumulatedSecondMoment[i] ??= { originalName: `${name}/v`, variable: tf.tidy(() => tf.variable(tf.zerosLike(value), false)) };
        const g: tf.Tensor | undefined = Array.isArray(variableGradients) ? variableGradients[i].tensor : variableGradients[name];
        if (g == null) return;
        const m = s.accumulatedFirstMoment[i]!.variable;
        const v = s.accumulatedSecondMoment[i]!.variable;
        const [nv, nm, nsv] = tf.engine().runKernel(ADAM_KERNEL, { value, m, v, g }, attrs as unknown as tf.NamedAttrMap) as tf.Tensor[];
        m.assign(nm);
        v.assign(nsv);
        value.assign(nv);
      });
      s.accBeta1.assign(tf.mul(s.accBeta1, this.beta1));
      s.accBeta2.assign(tf.mul(s.accBeta2, this.beta2));
    });
    this.incrementIterations();
  }
}

/** Drop-in for `tf.train.adam` (same defaults: beta1 0.9, beta2 0.999, epsilon from the backend). */
export function adam(learningRate = 0.001, beta1 = 0.9, beta2 = 0.999, epsilon?: number): FusedAdamOptimizer {
  return new FusedAdamOptimizer(learningRate, beta1, beta2, epsilon);
}
