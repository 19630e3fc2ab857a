// Every test process loads the backend module, as every entry point of the library
// does: it registers tfjs's gradients (see src/backend.ts). Tests start a backend
// through test/backend-util.ts, so wasm runs with the project's kernels (src/accel).
import '../src/backend';
