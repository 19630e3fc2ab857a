/** Imported first by fallback.test.ts: turns the addon off before anything looks for it. */
process.env.LENS_NATIVE = '0';
