/**
 * Learning-rate schedules as pure functions of the step (nanoGPT `get_lr`).
 * Stage 1 (alignment): cosine with linear warm-up (paper App. settings; official:
 * 150 warm-up steps). Stage 2 (GRPO): linear decay (TRL default, official code).
 */

export type ScheduleKind = 'cosine' | 'linear' | 'constant';

export interface Schedule {
  kind: ScheduleKind;
  /** Peak learning rate. */
  lr: number;
  /** Linear warm-up steps from 0 to `lr`. */
  warmupSteps: number;
  /** Total optimiser steps of the run. */
  totalSteps: number;
  /** Floor as a fraction of `lr` at the end of cosine / linear decay. */
  minRatio?: number;
}

/** Learning rate at optimiser step `step` (0-based). */
export function lrAt(step: number, s: Schedule): number {
  const { kind, lr, warmupSteps, totalSteps, minRatio = 0 } = s;
  if (warmupSteps > 0 && step < warmupSteps) return (lr * (step + 1)) / warmupSteps;
  if (kind === 'constant') return lr;
  const span = Math.max(1, totalSteps - warmupSteps);
  const t = Math.min(1, Math.max(0, (step - warmupSteps) / span));
  const min = lr * minRatio;
  if (kind === 'linear') return min + (lr - min) * (1 - t);
  return min + 0.5 * (lr - min) * (1 + Math.cos(Math.PI * t));
}
