// Every test process starts the backend as every entry point of the library does:
// backend.ts registers tfjs's gradients and, on wasm, the project's kernels
// (src/accel). Tests that compare backends switch with tf.setBackend afterwards.
import { initBackend } from '../src/backend';

await initBackend({ quiet: true });
