/*
 * lens_accel: native float32 kernels for tfjs-backend-wasm (issue #3, docs/performance.md).
 *
 * The wasm backend keeps every tensor in the WebAssembly heap, a plain ArrayBuffer
 * that JavaScript can see. This addon receives that ArrayBuffer and byte offsets
 * into it, so it reads the inputs and writes the output in place: no copies in or
 * out. The heavy kernel is a batched, transposing, broadcasting matmul on OpenBLAS
 * cblas_sgemm (the stock wasm backend sends only un-batched, un-transposed matmuls
 * to XNNPACK and runs every other one as a scalar loop at 1-2 GFLOP/s). The rest are
 * the element-wise and reduction kernels that dominate a training step once the
 * matmuls are fast, vectorised by the compiler and split over a small thread pool.
 *
 * Contract with the TypeScript side (src/accel): the caller allocates every output on the wasm heap
 * BEFORE calling (an allocation may grow the heap and replace the ArrayBuffer), then
 * passes the current buffer. Offsets are byte offsets; all data is float32 unless a
 * function says otherwise. Shapes arrive in a Float64Array "descriptor" so one
 * N-API call carries them all (doubles hold every wasm32 offset exactly).
 *
 * Written against Node's C N-API (node_api.h) only, so it needs no npm dependency.
 */
#define NAPI_VERSION 8
#include <node_api.h>

#include <cblas.h>
#include <math.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* ------------------------------------------------------------------------- */
/* N-API helpers                                                              */
/* ------------------------------------------------------------------------- */

#define CHECK(call)                                                          \
  do {                                                                       \
    if ((call) != napi_ok) {                                                 \
      napi_throw_error(env, NULL, "lens_accel: N-API call failed: " #call);  \
      return NULL;                                                           \
    }                                                                        \
  } while (0)

#define FAIL(msg)                                  \
  do {                                             \
    napi_throw_error(env, NULL, "lens_accel: " msg); \
    return NULL;                                   \
  } while (0)

/* The heap bytes of an ArrayBuffer argument. */
static int get_heap(napi_env env, napi_value v, uint8_t **data, size_t *len) {
  bool is_ab = false;
  if (napi_is_arraybuffer(env, v, &is_ab) != napi_ok || !is_ab) return 0;
  void *p = NULL;
  if (napi_get_arraybuffer_info(env, v, &p, len) != napi_ok) return 0;
  *data = (uint8_t *)p;
  return 1;
}

/* A Float64Array argument (the shape / offset descriptor). */
static int get_desc(napi_env env, napi_value v, const double **d, size_t *n) {
  bool is_ta = false;
  if (napi_is_typedarray(env, v, &is_ta) != napi_ok || !is_ta) return 0;
  napi_typedarray_type t;
  void *p = NULL;
  napi_value ab;
  size_t off;
  if (napi_get_typedarray_info(env, v, &t, n, &p, &ab, &off) != napi_ok) return 0;
  if (t != napi_float64_array) return 0;
  *d = (const double *)p;
  return 1;
}

/* Byte range [off, off + bytes) must lie inside the heap. */
static int in_heap(size_t heap_len, double off, double bytes) {
  return off >= 0 && bytes >= 0 && off + bytes <= (double)heap_len;
}

/* ------------------------------------------------------------------------- */
/* A tiny thread pool: the calling thread plus (nthreads - 1) workers.        */
/* Work is a function over an index range [0, n) split into equal chunks.     */
/* Workers spin briefly, then sleep on a condition variable, so an idle pool  */
/* costs nothing between training steps.                                      */
/* ------------------------------------------------------------------------- */

typedef void (*range_fn)(void *ctx, size_t begin, size_t end);

#define MAX_THREADS 16

static struct {
  int nthreads;             /* including the caller */
  pthread_t tid[MAX_THREADS];
  pthread_mutex_t mu;
  pthread_cond_t cv;
  atomic_uint_fast64_t generation; /* bumped for every job */
  atomic_int pending;       /* workers still running the current job */
  range_fn fn;
  void *ctx;
  size_t n;
  int shutdown;
} pool;

static void pool_chunk(int part, int parts, size_t n, size_t *b, size_t *e) {
  size_t per = n / (size_t)parts, rem = n % (size_t)parts;
  size_t p = (size_t)part;
  *b = p * per + (p < rem ? p : rem);
  *e = *b + per + (p < rem ? 1 : 0);
}

static void *pool_worker(void *arg) {
  int me = (int)(intptr_t)arg;
  uint_fast64_t seen = 0;
  for (;;) {
    /* spin a little: jobs arrive back to back inside a training step */
    int spins = 0;
    while (atomic_load_explicit(&pool.generation, memory_order_acquire) == seen && spins < 20000) {
      spins++;
#if defined(__x86_64__)
      __builtin_ia32_pause();
#endif
    }
    if (atomic_load_explicit(&pool.generation, memory_order_acquire) == seen) {
      pthread_mutex_lock(&pool.mu);
      while (atomic_load(&pool.generation) == seen && !pool.shutdown) pthread_cond_wait(&pool.cv, &pool.mu);
      pthread_mutex_unlock(&pool.mu);
    }
    if (pool.shutdown) return NULL;
    seen = atomic_load_explicit(&pool.generation, memory_order_acquire);
    size_t b, e;
    pool_chunk(me, pool.nthreads, pool.n, &b, &e);
    if (b < e) pool.fn(pool.ctx, b, e);
    atomic_fetch_sub_explicit(&pool.pending, 1, memory_order_acq_rel);
  }
}

static void pool_start(int nthreads) {
  if (nthreads < 1) nthreads = 1;
  if (nthreads > MAX_THREADS) nthreads = MAX_THREADS;
  pool.nthreads = nthreads;
  pthread_mutex_init(&pool.mu, NULL);
  pthread_cond_init(&pool.cv, NULL);
  atomic_store(&pool.generation, 0);
  atomic_store(&pool.pending, 0);
  for (int i = 1; i < nthreads; i++) {
    if (pthread_create(&pool.tid[i], NULL, pool_worker, (void *)(intptr_t)i) != 0) {
      pool.nthreads = i; /* run with the workers we got */
      break;
    }
  }
}

/* Runs fn over [0, n) on the pool; small jobs (n * cost < min_work) stay on the caller. */
static void parallel_for(range_fn fn, void *ctx, size_t n, double work) {
  if (pool.nthreads <= 1 || n < 2 || work < 32768.0) {
    fn(ctx, 0, n);
    return;
  }
  pool.fn = fn;
  pool.ctx = ctx;
  pool.n = n;
  atomic_store_explicit(&pool.pending, pool.nthreads - 1, memory_order_release);
  pthread_mutex_lock(&pool.mu);
  atomic_fetch_add_explicit(&pool.generation, 1, memory_order_acq_rel);
  pthread_cond_broadcast(&pool.cv);
  pthread_mutex_unlock(&pool.mu);
  size_t b, e;
  pool_chunk(0, pool.nthreads, n, &b, &e);
  if (b < e) fn(ctx, b, e);
  while (atomic_load_explicit(&pool.pending, memory_order_acquire) > 0) {
#if defined(__x86_64__)
    __builtin_ia32_pause();
#endif
  }
}

/* ------------------------------------------------------------------------- */
/* gemm: C[batch] = op(A[batch]) @ op(B[batch]) with broadcast batch dims.    */
/* ------------------------------------------------------------------------- */

typedef struct {
  float *a, *b, *c;
  int m, n, k, ta, tb;
  float beta;               /* 0: C = A B, 1: C += A B */
  int rank;                 /* number of batch dims */
  const double *shape;      /* out batch shape [rank] */
  const double *sa, *sb;    /* batch strides of A and B in elements (0 = broadcast) */
} gemm_job;

static void gemm_one(const gemm_job *j, size_t bi) {
  /* unravel bi over the batch shape (row-major) to element offsets of A and B */
  size_t rem = bi, oa = 0, ob = 0;
  for (int d = j->rank - 1; d >= 0; d--) {
    size_t dim = (size_t)j->shape[d];
    size_t idx = rem % dim;
    rem /= dim;
    oa += idx * (size_t)j->sa[d];
    ob += idx * (size_t)j->sb[d];
  }
  float *c = j->c + bi * (size_t)j->m * (size_t)j->n;
  int lda = j->ta ? j->m : j->k;
  int ldb = j->tb ? j->k : j->n;
  cblas_sgemm(CblasRowMajor, j->ta ? CblasTrans : CblasNoTrans, j->tb ? CblasTrans : CblasNoTrans, j->m, j->n, j->k,
              1.0f, j->a + oa, lda, j->b + ob, ldb, j->beta, c, j->n);
}

static void gemm_range(void *ctx, size_t b, size_t e) {
  for (size_t i = b; i < e; i++) gemm_one((const gemm_job *)ctx, i);
}

static int blas_threads = 1;

/*
 * gemm(heap, desc): desc = [aOff, bOff, cOff, M, N, K, transA, transB, beta, rank,
 *                           outBatch[rank], strideA[rank], strideB[rank]]
 * beta 0 overwrites C, beta 1 accumulates into it (the im2col filter gradient).
 * Offsets in bytes; strides in elements. C is written contiguous [batch, M, N].
 */
static napi_value js_gemm(napi_env env, napi_callback_info info) {
  size_t argc = 2;
  napi_value argv[2];
  CHECK(napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  if (argc < 2) FAIL("gemm(heap, desc): expected 2 arguments");
  uint8_t *heap;
  size_t heap_len, nd;
  const double *d;
  if (!get_heap(env, argv[0], &heap, &heap_len)) FAIL("gemm: argument 0 must be the wasm heap ArrayBuffer");
  if (!get_desc(env, argv[1], &d, &nd) || nd < 10) FAIL("gemm: argument 1 must be a Float64Array descriptor");
  int rank = (int)d[9];
  if (rank < 0 || nd < (size_t)(10 + 3 * rank)) FAIL("gemm: descriptor shorter than its batch rank says");
  gemm_job j;
  j.m = (int)d[3];
  j.n = (int)d[4];
  j.k = (int)d[5];
  j.ta = d[6] != 0;
  j.tb = d[7] != 0;
  j.beta = d[8] != 0 ? 1.0f : 0.0f;
  j.rank = rank;
  j.shape = d + 10;
  j.sa = d + 10 + rank;
  j.sb = d + 10 + 2 * rank;
  double nb = 1, maxa = 0, maxb = 0;
  for (int i = 0; i < rank; i++) {
    nb *= j.shape[i];
    maxa += (j.shape[i] - 1) * j.sa[i];
    maxb += (j.shape[i] - 1) * j.sb[i];
  }
  double mk = (double)j.m * j.k, kn = (double)j.k * j.n, mn = (double)j.m * j.n;
  if (!in_heap(heap_len, d[0], 4 * (maxa + mk)) || !in_heap(heap_len, d[1], 4 * (maxb + kn)) ||
      !in_heap(heap_len, d[2], 4 * nb * mn))
    FAIL("gemm: an operand lies outside the wasm heap");
  if (((size_t)d[0] | (size_t)d[1] | (size_t)d[2]) & 3) FAIL("gemm: offsets must be 4-byte aligned");
  j.a = (float *)(heap + (size_t)d[0]);
  j.b = (float *)(heap + (size_t)d[1]);
  j.c = (float *)(heap + (size_t)d[2]);
  if (nb == 0 || mn == 0) return NULL;
  if (j.k == 0) {
    if (j.beta != 0) return NULL;
    memset(j.c, 0, (size_t)(nb * mn) * 4);
    return NULL;
  }
  size_t nbatch = (size_t)nb;
  /* B shared by every batch and A's batches contiguous: one tall gemm. */
  int b_shared = 1, a_contig = !j.ta;
  double expect = mk;
  for (int i = rank - 1; i >= 0; i--) {
    if (j.sb[i] != 0 && j.shape[i] != 1) b_shared = 0;
    if (j.shape[i] != 1 && j.sa[i] != expect) a_contig = 0;
    expect *= j.shape[i];
  }
  if (nbatch > 1 && b_shared && a_contig) {
    cblas_sgemm(CblasRowMajor, CblasNoTrans, j.tb ? CblasTrans : CblasNoTrans, (int)(nbatch * j.m), j.n, j.k, 1.0f, j.a,
                j.k, j.b, j.tb ? j.k : j.n, j.beta, j.c, j.n);
    return NULL;
  }
  if (nbatch == 1 || blas_threads > 1 && mn * j.k >= 2e6) {
    /* big matrices: let OpenBLAS thread each one */
    for (size_t i = 0; i < nbatch; i++) gemm_one(&j, i);
  } else {
    /* many small matrices: one single-threaded sgemm per batch, batches split over the pool */
    if (blas_threads > 1) openblas_set_num_threads(1);
    parallel_for(gemm_range, &j, nbatch, nb * mn * j.k);
    if (blas_threads > 1) openblas_set_num_threads(blas_threads);
  }
  return NULL;
}

/* ------------------------------------------------------------------------- */
/* Reductions                                                                 */
/* ------------------------------------------------------------------------- */

typedef struct {
  const float *x;
  float *out;
  size_t red, post;
} sum_job;

/* out[p, q] = sum_r x[p, r, q] for p in [b, e); vectorised along q. */
static void sum_range(void *ctx, size_t b, size_t e) {
  const sum_job *j = (const sum_job *)ctx;
  size_t red = j->red, post = j->post;
  for (size_t p = b; p < e; p++) {
    const float *x = j->x + p * red * post;
    float *o = j->out + p * post;
    if (post == 1) {
      /* innermost reduction: eight partial sums so the compiler vectorises */
      float acc[8] = {0, 0, 0, 0, 0, 0, 0, 0};
      size_t r = 0;
      for (; r + 8 <= red; r += 8)
        for (int u = 0; u < 8; u++) acc[u] += x[r + u];
      float s = ((acc[0] + acc[4]) + (acc[1] + acc[5])) + ((acc[2] + acc[6]) + (acc[3] + acc[7]));
      for (; r < red; r++) s += x[r];
      o[0] = s;
    } else {
      memcpy(o, x, post * sizeof(float));
      for (size_t r = 1; r < red; r++) {
        const float *xr = x + r * post;
        for (size_t q = 0; q < post; q++) o[q] += xr[q];
      }
    }
  }
}

/* Leading-axis reduction split over q (columns) instead of p: pre == 1. */
static void sum_cols_range(void *ctx, size_t b, size_t e) {
  const sum_job *j = (const sum_job *)ctx;
  size_t red = j->red, post = j->post;
  float *o = j->out;
  memcpy(o + b, j->x + b, (e - b) * sizeof(float));
  for (size_t r = 1; r < red; r++) {
    const float *xr = j->x + r * post;
    for (size_t q = b; q < e; q++) o[q] += xr[q];
  }
}

/* sum(heap, xOff, outOff, pre, red, post): out[pre, post] = sum over the middle axis of x[pre, red, post]. */
static napi_value js_sum(napi_env env, napi_callback_info info) {
  size_t argc = 6;
  napi_value argv[6];
  CHECK(napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  if (argc < 6) FAIL("sum(heap, xOff, outOff, pre, red, post): expected 6 arguments");
  uint8_t *heap;
  size_t heap_len;
  if (!get_heap(env, argv[0], &heap, &heap_len)) FAIL("sum: argument 0 must be the wasm heap ArrayBuffer");
  double v[5];
  for (int i = 0; i < 5; i++) CHECK(napi_get_value_double(env, argv[1 + i], &v[i]));
  double pre = v[2], red = v[3], post = v[4];
  if (!in_heap(heap_len, v[0], 4 * pre * red * post) || !in_heap(heap_len, v[1], 4 * pre * post))
    FAIL("sum: an operand lies outside the wasm heap");
  sum_job j = {(const float *)(heap + (size_t)v[0]), (float *)(heap + (size_t)v[1]), (size_t)red, (size_t)post};
  if (pre * post == 0) return NULL;
  if (red == 0) {
    memset(j.out, 0, (size_t)(pre * post) * 4);
    return NULL;
  }
  if (pre == 1 && post >= 64)
    parallel_for(sum_cols_range, &j, (size_t)post, red * post);
  else
    parallel_for(sum_range, &j, (size_t)pre, pre * red * post);
  return NULL;
}

/* ------------------------------------------------------------------------- */
/* Module                                                                     */
/* ------------------------------------------------------------------------- */

/* info() -> { blas: OpenBLAS config string, blasThreads, poolThreads } */
static napi_value js_info(napi_env env, napi_callback_info info) {
  (void)info;
  napi_value o, s, n1, n2;
  CHECK(napi_create_object(env, &o));
  const char *cfg = openblas_get_config();
  CHECK(napi_create_string_utf8(env, cfg ? cfg : "OpenBLAS", NAPI_AUTO_LENGTH, &s));
  CHECK(napi_create_int32(env, openblas_get_num_threads(), &n1));
  CHECK(napi_create_int32(env, pool.nthreads, &n2));
  CHECK(napi_set_named_property(env, o, "blas", s));
  CHECK(napi_set_named_property(env, o, "blasThreads", n1));
  CHECK(napi_set_named_property(env, o, "poolThreads", n2));
  return o;
}

static napi_value Init(napi_env env, napi_value exports) {
  if (pool.nthreads == 0) {
    long cores = sysconf(_SC_NPROCESSORS_ONLN);
    const char *want = getenv("LENS_NATIVE_THREADS");
    int n = want && atoi(want) > 0 ? atoi(want) : (int)(cores > 0 ? cores : 1);
    pool_start(n);
    blas_threads = openblas_get_num_threads();
  }
  napi_property_descriptor props[] = {
      {"gemm", NULL, js_gemm, NULL, NULL, NULL, napi_default, NULL},
      {"sum", NULL, js_sum, NULL, NULL, NULL, napi_default, NULL},
      {"info", NULL, js_info, NULL, NULL, NULL, napi_default, NULL},
  };
  CHECK(napi_define_properties(env, exports, sizeof(props) / sizeof(props[0]), props));
  return exports;
}

NAPI_MODULE(NODE_GYP_MODULE_NAME, Init)
