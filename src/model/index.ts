/**
 * Public API of the model (one file per box of the paper's Figure 2, plus the
 * assembly): import from here in notebooks and trainers.
 */
export * from './nn';
export * from './tokenizer';
export * from './answer';
export * from './vision_encoder';
export * from './mllm';
export * from './generate';
export * from './context_module';
export * from './connector';
export * from './losses';
export * from './sam/index';
export * from './lens';
export * from './presets';
export * from './baselines';
