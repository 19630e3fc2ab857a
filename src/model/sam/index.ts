/** Public API of the mini-SAM (segment-anything `modeling/` at small width). */
export * from './common';
export * from './image_encoder';
export * from './prompt_encoder';
export * from './transformer';
export * from './mask_decoder';
export * from './sam';
