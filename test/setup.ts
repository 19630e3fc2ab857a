// Every test process loads the backend module, as every entry point of the library
// does: it is where tfjs's gradients get registered (see src/backend.ts).
import '../src/backend';
