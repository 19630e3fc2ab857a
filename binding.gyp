# node-gyp build of the native kernels for the wasm backend (native/lens_accel.c).
# Built by scripts/build-native.mjs (the package's `install` script), which first
# checks that OpenBLAS's cblas.h and libopenblas are present; output: build/Release/lens_accel.node.
# -march=native: built on the machine it runs on (npm install); -ffp-contract=off: no fused
# multiply-adds, so element-wise results round exactly as the stock kernels' do;
# -fno-trapping-math: lets GCC if-convert the clamps of exp_approx, without which the
# exp, sigmoid and softmax loops stayed scalar (7x slower); it changes no result.
{
  "targets": [
    {
      "target_name": "lens_accel",
      "sources": ["native/lens_accel.c"],
      "cflags": ["-O3", "-march=native", "-std=gnu11", "-fno-math-errno", "-fno-trapping-math", "-ffp-contract=off", "-Wall", "-Wno-parentheses"],
      "cflags!": ["-O2"],
      "libraries": ["-lopenblas", "-lpthread", "-lm"]
    }
  ]
}
