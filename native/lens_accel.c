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
#include <sched.h>
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
/* Thread pool: the calling thread plus (nthreads - 1) workers, sharing a job */
/* cut into tasks that every thread claims one at a time (an atomic counter). */
/* The caller never waits for a worker that has not started: on a loaded     */
/* machine (the 2 cores here are shared) it simply runs more tasks itself,    */
/* so a descheduled worker costs nothing but its own in-flight task.          */
/* Workers spin briefly (jobs come back to back inside a step), then sleep.   */
/* ------------------------------------------------------------------------- */

typedef void (*task_fn)(void *ctx, size_t task);

#define MAX_THREADS 16
#define SPIN_ITERS 4000

static struct {
  int nthreads; /* including the caller */
  pthread_t tid[MAX_THREADS];
  pthread_mutex_t mu;
  pthread_cond_t cv;
  atomic_uint generation; /* bumped for every job */
  atomic_int active;      /* workers inside a job */
  atomic_size_t next;     /* next unclaimed task */
  size_t ntasks;
  task_fn fn;
  void *ctx;
} pool;

static inline void cpu_relax(void) {
#if defined(__x86_64__) || defined(__i386__)
  __builtin_ia32_pause();
#endif
}

static void run_tasks(void) {
  for (;;) {
    size_t t = atomic_fetch_add(&pool.next, 1);
    if (t >= pool.ntasks) return;
    pool.fn(pool.ctx, t);
  }
}

static void *pool_worker(void *arg) {
  (void)arg;
  unsigned seen = atomic_load(&pool.generation);
  for (;;) {
    int spins = 0;
    while (atomic_load(&pool.generation) == seen && spins++ < SPIN_ITERS) cpu_relax();
    if (atomic_load(&pool.generation) == seen) {
      pthread_mutex_lock(&pool.mu);
      while (atomic_load(&pool.generation) == seen) pthread_cond_wait(&pool.cv, &pool.mu);
      pthread_mutex_unlock(&pool.mu);
    }
    seen = atomic_load(&pool.generation);
    atomic_fetch_add(&pool.active, 1);
    /* the job may have finished (and another begun) between the two loads: the
       caller waits for active == 0 before touching the job, so re-check here */
    if (atomic_load(&pool.generation) == seen) run_tasks();
    atomic_fetch_sub(&pool.active, 1);
  }
  return NULL;
}

static void pool_start(int nthreads) {
  if (nthreads < 1) nthreads = 1;
  if (nthreads > MAX_THREADS) nthreads = MAX_THREADS;
  pthread_mutex_init(&pool.mu, NULL);
  pthread_cond_init(&pool.cv, NULL);
  atomic_store(&pool.generation, 0);
  atomic_store(&pool.active, 0);
  atomic_store(&pool.next, 0);
  pool.ntasks = 0;
  pool.nthreads = 1;
  for (int i = 1; i < nthreads; i++) {
    pthread_attr_t attr;
    pthread_attr_init(&attr);
    pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
    int rc = pthread_create(&pool.tid[i], &attr, pool_worker, NULL);
    pthread_attr_destroy(&attr);
    if (rc != 0) break; /* run with the workers we got */
    pool.nthreads = i + 1;
  }
}

/* Waits until no worker is inside a job. If one was preempted mid-task (the cores
   are shared), stop spinning soon and yield, so it can be scheduled and finish. */
static void wait_idle(void) {
  for (int spins = 0; atomic_load(&pool.active) != 0; spins++) {
    if (spins < 2000)
      cpu_relax();
    else
      sched_yield();
  }
}

/* Runs fn(ctx, t) for t in [0, ntasks); on the caller alone when `work` (about one
   unit per element or flop) is too small to pay for waking a worker. */
/* One job at a time: a second JavaScript thread (a Node worker) calling in while the
   pool is busy runs its job alone instead of corrupting the shared job slot. */
static atomic_flag pool_busy = ATOMIC_FLAG_INIT;

static void parallel_tasks(task_fn fn, void *ctx, size_t ntasks, double work) {
  /* below ~0.25M units (floats touched, or flops / 8) a job takes < ~0.1 ms alone:
     not worth a worker, whose preemption on a loaded machine could cost far more */
  if (pool.nthreads <= 1 || ntasks < 2 || work < 262144.0 || atomic_flag_test_and_set(&pool_busy)) {
    for (size_t t = 0; t < ntasks; t++) fn(ctx, t);
    return;
  }
  wait_idle(); /* a worker that woke late for the last job is still leaving it */
  pool.fn = fn;
  pool.ctx = ctx;
  pool.ntasks = ntasks;
  atomic_store(&pool.next, 0);
  pthread_mutex_lock(&pool.mu);
  atomic_fetch_add(&pool.generation, 1);
  pthread_cond_broadcast(&pool.cv);
  pthread_mutex_unlock(&pool.mu);
  run_tasks();
  wait_idle(); /* only for tasks a worker already claimed */
  atomic_flag_clear(&pool_busy);
}

/* Number of tasks for `work` units: at least min_work each, at most 4 per thread. */
static size_t task_count(double work, double min_work, size_t max_parts) {
  double t = work / min_work;
  size_t cap = (size_t)pool.nthreads * 4;
  if (cap > max_parts) cap = max_parts;
  if (t < 1) return 1;
  return t > (double)cap ? cap : (size_t)t;
}

/* ------------------------------------------------------------------------- */
/* gemm: C[batch] = op(A[batch]) @ op(B[batch]) with broadcast batch dims.    */
/* OpenBLAS runs single-threaded; the pool splits batches and row / column    */
/* blocks, so there is one scheduler for the two cores, not two competing.    */
/* ------------------------------------------------------------------------- */

typedef struct {
  float *a, *b, *c;
  int m, n, k, ta, tb;
  float beta;          /* 0: C = A B, 1: C += A B */
  int rank;            /* number of batch dims */
  const double *shape; /* out batch shape [rank] */
  const double *sa, *sb; /* batch strides of A and B in elements (0 = broadcast) */
  size_t splits;       /* blocks per matrix */
  int split_m;         /* split rows (1) or columns (0) */
} gemm_job;

/*
 * Small-N matmul micro-kernel: C[m, N] (+)= op(A)[m, k] B[k, N] for N = 16, 32 or 64
 * and B untransposed: the attention products P V, dS K, P^T dO, dS^T Q (N = head
 * size), 64 per call, where OpenBLAS's small-matrix path reaches only ~60-70 GFLOP/s
 * per core. Six rows of C stay in registers (6 x N/16 vectors), each step of k loads
 * one row of B and broadcasts six elements of A. fp-contract=fast here only: the
 * product may use fused multiply-adds like any sgemm (the element-wise kernels keep
 * exact stock rounding).
 */
#ifdef __AVX512F__ /* see small_gemm below */
/* LENS_NATIVE_SMALL_GEMM=0 turns the micro-kernel off (A/B measurements). */
static int small_off = -1;
static int getenv_small_off(void) {
  if (small_off < 0) {
    const char *e = getenv("LENS_NATIVE_SMALL_GEMM");
    small_off = e && e[0] == '0';
  }
  return small_off;
}

typedef float v16 __attribute__((vector_size(64)));
typedef float v16u __attribute__((vector_size(64), aligned(4)));

#define SMALL_GEMM(NV)                                                                              \
  __attribute__((optimize("fp-contract=fast"))) static void small_gemm_##NV(                       \
      const float *a, int lda, int ta, const float *b, int ldb, float *c, int ldc, int m, int k,   \
      float beta) {                                                                                 \
    int i = 0;                                                                                      \
    for (; i + 6 <= m; i += 6) {                                                                    \
      v16 acc[6][NV];                                                                               \
      for (int r = 0; r < 6; r++)                                                                   \
        for (int v = 0; v < NV; v++) acc[r][v] = (v16){0};                                          \
      for (int kk = 0; kk < k; kk++) {                                                              \
        v16 bv[NV];                                                                                 \
        for (int v = 0; v < NV; v++) bv[v] = *(const v16u *)(b + (size_t)kk * ldb + 16 * v);        \
        for (int r = 0; r < 6; r++) {                                                               \
          float av = ta ? a[(size_t)kk * lda + i + r] : a[(size_t)(i + r) * lda + kk];              \
          for (int v = 0; v < NV; v++) acc[r][v] += av * bv[v];                                     \
        }                                                                                           \
      }                                                                                             \
      for (int r = 0; r < 6; r++)                                                                   \
        for (int v = 0; v < NV; v++) {                                                              \
          v16u *o = (v16u *)(c + (size_t)(i + r) * ldc + 16 * v);                                   \
          *o = beta != 0 ? *o + acc[r][v] : acc[r][v];                                              \
        }                                                                                           \
    }                                                                                               \
    for (; i < m; i++) {                                                                            \
      v16 acc[NV];                                                                                  \
      for (int v = 0; v < NV; v++) acc[v] = (v16){0};                                               \
      for (int kk = 0; kk < k; kk++) {                                                              \
        float av = ta ? a[(size_t)kk * lda + i] : a[(size_t)i * lda + kk];                          \
        for (int v = 0; v < NV; v++) acc[v] += av * *(const v16u *)(b + (size_t)kk * ldb + 16 * v); \
      }                                                                                             \
      for (int v = 0; v < NV; v++) {                                                                \
        v16u *o = (v16u *)(c + (size_t)i * ldc + 16 * v);                                           \
        *o = beta != 0 ? *o + acc[v] : acc[v];                                                      \
      }                                                                                             \
    }                                                                                               \
  }

SMALL_GEMM(1)
SMALL_GEMM(2)
SMALL_GEMM(4)
#endif

/* Uses the micro-kernel when it applies; returns 0 to let OpenBLAS do it. Only where the
   compiler has 512-bit registers (AVX-512): its 6 x N/16 accumulators of 16 floats fit the 32
   zmm registers there, but on AVX2 each is split into two of the 16 ymm registers and spills.
   Measured on an AVX2 Zen 3 (a stage-0b step of the quick preset): the attention products
   [16,4,112,112] x [16,4,112,32] took 12.3 ms a call through it and 0.7 ms through OpenBLAS,
   the whole step 716 ms against 420. */
static int small_gemm(const float *a, int lda, int ta, int tb, const float *b, int ldb, float *c, int ldc, int m, int n,
                      int k, float beta) {
#ifdef __AVX512F__
  if (tb || m < 6 || k < 1 || getenv_small_off()) return 0;
  switch (n) {
    case 16: small_gemm_1(a, lda, ta, b, ldb, c, ldc, m, k, beta); return 1;
    case 32: small_gemm_2(a, lda, ta, b, ldb, c, ldc, m, k, beta); return 1;
    case 64: small_gemm_4(a, lda, ta, b, ldb, c, ldc, m, k, beta); return 1;
  }
#endif
  return 0;
}

/*
 * Products of at most TINY_M rows (one decoded token per sequence: the attention's
 * q K^T and P V per head), as plain loops. OpenBLAS's per-call cost dominates there:
 * 128 heads of [1, 32] x [32, 100] took 171 us through it, about 1 us each for 6 kflop.
 * B transposed: dot products along k in eight partial sums; B untransposed: rows of B
 * scaled and added along n. Both vectorise.
 */
#define TINY_M 4
static void tiny_gemm(const float *a, int lda, int ta, int tb, const float *b, int ldb, float *c, int ldc, int m, int n,
                      int k, float beta) {
  for (int i = 0; i < m; i++) {
    float *ci = c + (size_t)i * ldc;
    if (tb) {
      for (int jn = 0; jn < n; jn++) {
        const float *bj = b + (size_t)jn * ldb;
        float acc[8] = {0, 0, 0, 0, 0, 0, 0, 0};
        int kk = 0;
        if (!ta) {
          const float *ai = a + (size_t)i * lda;
          for (; kk + 8 <= k; kk += 8)
            for (int u = 0; u < 8; u++) acc[u] += ai[kk + u] * bj[kk + u];
          for (; kk < k; kk++) acc[0] += ai[kk] * bj[kk];
        } else {
          for (; kk < k; kk++) acc[0] += a[(size_t)kk * lda + i] * bj[kk];
        }
        float s = ((acc[0] + acc[4]) + (acc[1] + acc[5])) + ((acc[2] + acc[6]) + (acc[3] + acc[7]));
        ci[jn] = beta != 0 ? ci[jn] + s : s;
      }
    } else {
      if (beta == 0)
        for (int jn = 0; jn < n; jn++) ci[jn] = 0;
      for (int kk = 0; kk < k; kk++) {
        float av = ta ? a[(size_t)kk * lda + i] : a[(size_t)i * lda + kk];
        const float *bk = b + (size_t)kk * ldb;
        for (int jn = 0; jn < n; jn++) ci[jn] += av * bk[jn];
      }
    }
  }
}

static void gemm_task(void *ctx, size_t task) {
  const gemm_job *j = (const gemm_job *)ctx;
  size_t bi = task / j->splits, part = task % j->splits;
  /* unravel bi over the batch shape (row-major) to element offsets of A and B */
  size_t rem = bi, oa = 0, ob = 0;
  for (int d = j->rank - 1; d >= 0; d--) {
    size_t dim = (size_t)j->shape[d];
    size_t idx = rem % dim;
    rem /= dim;
    oa += idx * (size_t)j->sa[d];
    ob += idx * (size_t)j->sb[d];
  }
  const float *a = j->a + oa, *b = j->b + ob;
  float *c = j->c + bi * (size_t)j->m * (size_t)j->n;
  int lda = j->ta ? j->m : j->k;
  int ldb = j->tb ? j->k : j->n;
  int m = j->m, n = j->n;
  if (j->splits > 1) {
    /* block boundaries rounded to 16 so each block keeps whole micro-kernel tiles */
    size_t total = j->split_m ? (size_t)j->m : (size_t)j->n;
    size_t per = ((total + j->splits - 1) / j->splits + 15) & ~(size_t)15;
    size_t lo = part * per, hi = lo + per > total ? total : lo + per;
    if (lo >= hi) return;
    if (j->split_m) {
      a += j->ta ? lo : lo * (size_t)j->k;
      c += lo * (size_t)j->n;
      m = (int)(hi - lo);
    } else {
      b += j->tb ? lo * (size_t)j->k : lo;
      c += lo;
      n = (int)(hi - lo);
    }
  }
  if (m <= TINY_M && (double)m * n * j->k <= 1e5) {
    tiny_gemm(a, lda, j->ta, j->tb, b, ldb, c, j->n, m, n, j->k, j->beta);
    return;
  }
  /* small products (per matrix < ~8 MFLOP) with N = 16 / 32 / 64: the micro-kernel */
  if ((double)m * n * j->k < 4e6 && small_gemm(a, lda, j->ta, j->tb, b, ldb, c, j->n, m, n, j->k, j->beta)) return;
  cblas_sgemm(CblasRowMajor, j->ta ? CblasTrans : CblasNoTrans, j->tb ? CblasTrans : CblasNoTrans, m, n, j->k, 1.0f, a,
              lda, b, ldb, j->beta, c, j->n);
}

/*
 * gemm(heap, desc): desc = [aOff, bOff, cOff, M, N, K, transA, transB, beta, rank,
 *                           outBatch[rank], strideA[rank], strideB[rank]]
 * Offsets in bytes; strides in elements. C is written contiguous [batch, M, N].
 * beta 0 overwrites C, beta 1 accumulates into it (the im2col filter gradient).
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
    if (j.beta == 0) memset(j.c, 0, (size_t)(nb * mn) * 4);
    return NULL;
  }
  /* B shared by every batch and A's batches contiguous and untransposed: one tall gemm. */
  int b_shared = 1, a_contig = !j.ta;
  double expect = mk;
  for (int i = rank - 1; i >= 0; i--) {
    if (j.sb[i] != 0 && j.shape[i] != 1) b_shared = 0;
    if (j.shape[i] != 1 && j.sa[i] != expect) a_contig = 0;
    expect *= j.shape[i];
  }
  if (nb > 1 && b_shared && a_contig) {
    j.m = (int)(nb * j.m);
    j.rank = 0;
    nb = 1;
  }
  size_t nbatch = (size_t)nb;
  double flops = 2.0 * nb * mn * j.k;
  j.splits = 1;
  j.split_m = j.m >= j.n;
  if (nbatch < (size_t)pool.nthreads * 2) {
    /* few matrices: cut each into row or column blocks of at least ~2 MFLOP */
    size_t along = (size_t)(j.split_m ? j.m : j.n) / 16;
    double per_matrix = flops / nb;
    j.splits = task_count(per_matrix, 2e6, along > 0 ? along : 1);
  }
  parallel_tasks(gemm_task, &j, nbatch * j.splits, flops / 8);
  return NULL;
}

/* ------------------------------------------------------------------------- */
/* Reductions: out[p, q] = scale * sum_r x[p, r, q]                           */
/* ------------------------------------------------------------------------- */

typedef struct {
  const float *x;
  float *out;
  size_t pre, red, post;
  int divide;            /* mean: divide by red (as the stock kernel), not multiply */
  size_t rows_per_task;  /* split over pre: rows of the [pre, red, post] view per task */
  size_t chunks;         /* split over red instead: chunks per row, partial sums in `partial` */
  float *partial;        /* [pre, chunks, post] */
} sum_job;

/* o[0..post) = sum over r in [r0, r1) of x[r, 0..post) (x rows `post` apart) */
static void sum_block(const float *x, size_t r0, size_t r1, size_t post, float *o) {
  if (post == 1) {
    /* innermost reduction: eight partial sums so the compiler vectorises */
    float acc[8] = {0, 0, 0, 0, 0, 0, 0, 0};
    size_t r = r0;
    for (; r + 8 <= r1; r += 8)
      for (int u = 0; u < 8; u++) acc[u] += x[r + u];
    float s = ((acc[0] + acc[4]) + (acc[1] + acc[5])) + ((acc[2] + acc[6]) + (acc[3] + acc[7]));
    for (; r < r1; r++) s += x[r];
    o[0] = s;
    return;
  }
  memcpy(o, x + r0 * post, post * sizeof(float));
  for (size_t r = r0 + 1; r < r1; r++) {
    const float *xr = x + r * post;
    for (size_t q = 0; q < post; q++) o[q] += xr[q];
  }
}

static void sum_task(void *ctx, size_t t) {
  const sum_job *j = (const sum_job *)ctx;
  size_t red = j->red, post = j->post;
  if (j->chunks) {
    size_t p = t / j->chunks, c = t % j->chunks;
    size_t per = (red + j->chunks - 1) / j->chunks;
    size_t r0 = c * per, r1 = r0 + per > red ? red : r0 + per;
    float *o = j->partial + t * post;
    if (r0 >= r1) {
      memset(o, 0, post * sizeof(float));
      return;
    }
    sum_block(j->x + p * red * post, r0, r1, post, o);
    return;
  }
  size_t p0 = t * j->rows_per_task, p1 = p0 + j->rows_per_task;
  if (p1 > j->pre) p1 = j->pre;
  for (size_t p = p0; p < p1; p++) {
    float *o = j->out + p * post;
    sum_block(j->x + p * red * post, 0, red, post, o);
    if (j->divide)
      for (size_t q = 0; q < post; q++) o[q] = o[q] / (float)red;
  }
}

/* sum(heap, xOff, outOff, pre, red, post, mean): out[pre, post] = sum (or mean) over the middle axis. */
static napi_value js_sum(napi_env env, napi_callback_info info) {
  size_t argc = 7;
  napi_value argv[7];
  CHECK(napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  if (argc < 7) FAIL("sum(heap, xOff, outOff, pre, red, post, mean): expected 7 arguments");
  uint8_t *heap;
  size_t heap_len;
  if (!get_heap(env, argv[0], &heap, &heap_len)) FAIL("sum: argument 0 must be the wasm heap ArrayBuffer");
  double v[6];
  for (int i = 0; i < 6; i++) CHECK(napi_get_value_double(env, argv[1 + i], &v[i]));
  double pre = v[2], red = v[3], post = v[4];
  if (!in_heap(heap_len, v[0], 4 * pre * red * post) || !in_heap(heap_len, v[1], 4 * pre * post))
    FAIL("sum: an operand lies outside the wasm heap");
  sum_job j = {(const float *)(heap + (size_t)v[0]), (float *)(heap + (size_t)v[1]), (size_t)pre, (size_t)red,
               (size_t)post, v[5] != 0, 0, 0, NULL};
  if (pre * post == 0) return NULL;
  if (red == 0) {
    float fill = j.divide ? NAN : 0.0f; /* mean of nothing is 0/0 */
    for (size_t i = 0; i < (size_t)(pre * post); i++) j.out[i] = fill;
    return NULL;
  }
  double work = pre * red * post;
  if (pool.nthreads > 1 && pre < (double)pool.nthreads * 2 && red >= 64 && work >= 65536) {
    /* few output rows (a bias gradient: pre == 1): each task sums a block of the
       reduced axis into its own partial row (whole rows: contiguous, prefetchable),
       then the partial rows are added here */
    j.chunks = task_count(work, 32768, (size_t)red / 16);
    size_t ntasks = (size_t)pre * j.chunks;
    j.partial = (float *)malloc(ntasks * (size_t)post * sizeof(float));
    if (!j.partial) FAIL("sum: out of memory for partial sums");
    parallel_tasks(sum_task, &j, ntasks, work);
    for (size_t p = 0; p < (size_t)pre; p++) {
      float *o = j.out + p * (size_t)post;
      const float *part = j.partial + p * j.chunks * (size_t)post;
      memcpy(o, part, (size_t)post * sizeof(float));
      for (size_t c = 1; c < j.chunks; c++)
        for (size_t q = 0; q < (size_t)post; q++) o[q] += part[c * (size_t)post + q];
      if (j.divide)
        for (size_t q = 0; q < (size_t)post; q++) o[q] = o[q] / (float)red;
    }
    free(j.partial);
    return NULL;
  }
  size_t parts = task_count(work, 32768, (size_t)pre);
  j.rows_per_task = ((size_t)pre + parts - 1) / parts;
  parallel_tasks(sum_task, &j, ((size_t)pre + j.rows_per_task - 1) / j.rows_per_task, work);
  return NULL;
}

/* ------------------------------------------------------------------------- */
/* Broadcasting binary ops: out = a (op) b, float32, numpy broadcasting.      */
/* The TypeScript side collapses the shapes to at most 6 dims and gives each  */
/* operand's element strides per output dim (0 where broadcast).              */
/* ------------------------------------------------------------------------- */

enum { OP_ADD = 0, OP_SUB = 1, OP_MUL = 2, OP_DIV = 3, OP_SQDIFF = 4 };
#define MAX_RANK 6

typedef struct {
  const float *a, *b;
  float *out;
  int op, rank;
  size_t shape[MAX_RANK], sa[MAX_RANK], sb[MAX_RANK];
  size_t inner, rows, rows_per_task;
  size_t col_chunks, cols_per_task; /* few long rows (same-shape operands collapse to one): split the row */
} binary_job;

#define BIN_LOOP(EXPR)                                                  \
  do {                                                                  \
    if (sa == 1 && sb == 1)                                             \
      for (size_t i = 0; i < n; i++) { float x = a[i], y = b[i]; o[i] = (EXPR); } \
    else if (sa == 1 && sb == 0) {                                      \
      float y = b[0];                                                   \
      for (size_t i = 0; i < n; i++) { float x = a[i]; o[i] = (EXPR); } \
    } else if (sa == 0 && sb == 1) {                                    \
      float x = a[0];                                                   \
      for (size_t i = 0; i < n; i++) { float y = b[i]; o[i] = (EXPR); } \
    } else                                                              \
      for (size_t i = 0; i < n; i++) { float x = a[i * sa], y = b[i * sb]; o[i] = (EXPR); } \
  } while (0)

static void binary_row(int op, const float *a, size_t sa, const float *b, size_t sb, float *o, size_t n) {
  switch (op) {
    case OP_ADD: BIN_LOOP(x + y); break;
    case OP_SUB: BIN_LOOP(x - y); break;
    case OP_MUL: BIN_LOOP(x * y); break;
    case OP_DIV: BIN_LOOP(x / y); break;
    case OP_SQDIFF: BIN_LOOP((x - y) * (x - y)); break;
  }
}

static void binary_task(void *ctx, size_t t) {
  const binary_job *j = (const binary_job *)ctx;
  size_t r0, r1, c0 = 0, c1 = j->inner;
  if (j->col_chunks > 1) {
    r0 = t / j->col_chunks;
    r1 = r0 + 1;
    c0 = (t % j->col_chunks) * j->cols_per_task;
    c1 = c0 + j->cols_per_task > j->inner ? j->inner : c0 + j->cols_per_task;
    if (c0 >= c1) return;
  } else {
    r0 = t * j->rows_per_task;
    r1 = r0 + j->rows_per_task > j->rows ? j->rows : r0 + j->rows_per_task;
  }
  int last = j->rank - 1;
  size_t la = j->sa[last], lb = j->sb[last];
  for (size_t r = r0; r < r1; r++) {
    size_t rem = r, oa = 0, ob = 0;
    for (int d = last - 1; d >= 0; d--) {
      size_t idx = rem % j->shape[d];
      rem /= j->shape[d];
      oa += idx * j->sa[d];
      ob += idx * j->sb[d];
    }
    binary_row(j->op, j->a + oa + c0 * la, la, j->b + ob + c0 * lb, lb, j->out + r * j->inner + c0, c1 - c0);
  }
}

/* binary(heap, desc): desc = [aOff, bOff, outOff, op, rank, shape[rank], strideA[rank], strideB[rank]] */
static napi_value js_binary(napi_env env, napi_callback_info info) {
  size_t argc = 2;
  napi_value argv[2];
  CHECK(napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  if (argc < 2) FAIL("binary(heap, desc): expected 2 arguments");
  uint8_t *heap;
  size_t heap_len, nd;
  const double *d;
  if (!get_heap(env, argv[0], &heap, &heap_len)) FAIL("binary: argument 0 must be the wasm heap ArrayBuffer");
  if (!get_desc(env, argv[1], &d, &nd) || nd < 5) FAIL("binary: argument 1 must be a Float64Array descriptor");
  binary_job j;
  j.op = (int)d[3];
  j.rank = (int)d[4];
  if (j.op < OP_ADD || j.op > OP_SQDIFF) FAIL("binary: unknown op code");
  if (j.rank < 1 || j.rank > MAX_RANK || nd < (size_t)(5 + 3 * j.rank)) FAIL("binary: bad rank in descriptor");
  double size = 1, maxa = 0, maxb = 0;
  for (int i = 0; i < j.rank; i++) {
    j.shape[i] = (size_t)d[5 + i];
    j.sa[i] = (size_t)d[5 + j.rank + i];
    j.sb[i] = (size_t)d[5 + 2 * j.rank + i];
    size *= d[5 + i];
    maxa += (d[5 + i] - 1) * d[5 + j.rank + i];
    maxb += (d[5 + i] - 1) * d[5 + 2 * j.rank + i];
  }
  if (size == 0) return NULL;
  if (!in_heap(heap_len, d[0], 4 * (maxa + 1)) || !in_heap(heap_len, d[1], 4 * (maxb + 1)) ||
      !in_heap(heap_len, d[2], 4 * size))
    FAIL("binary: an operand lies outside the wasm heap");
  j.a = (const float *)(heap + (size_t)d[0]);
  j.b = (const float *)(heap + (size_t)d[1]);
  j.out = (float *)(heap + (size_t)d[2]);
  j.inner = j.shape[j.rank - 1];
  j.rows = (size_t)size / j.inner;
  size_t parts = task_count(size, 32768, (size_t)size / 256 + 1);
  size_t ntasks;
  if (j.rows >= parts) {
    j.col_chunks = 1;
    j.rows_per_task = (j.rows + parts - 1) / parts;
    ntasks = (j.rows + j.rows_per_task - 1) / j.rows_per_task;
  } else {
    /* blocks of a row, in multiples of 16 floats (whole cache lines) */
    size_t per_row = (parts + j.rows - 1) / j.rows;
    j.cols_per_task = ((j.inner + per_row - 1) / per_row + 15) & ~(size_t)15;
    j.col_chunks = (j.inner + j.cols_per_task - 1) / j.cols_per_task;
    ntasks = j.rows * j.col_chunks;
  }
  parallel_tasks(binary_task, &j, ntasks, size);
  return NULL;
}

/* ------------------------------------------------------------------------- */
/* Softmax over the last axis.                                                */
/* ------------------------------------------------------------------------- */

/* exp(x) for float, branch-free so loops over it vectorise (given -fno-trapping-math,
   binding.gyp; GCC 12 keeps them scalar without it): Cody-Waite range
   reduction x = n ln2 + r, |r| <= ln2 / 2, then a degree-6 polynomial for e^r and
   2^n from the exponent bits (the scheme of Cephes expf / XNNPACK's exp). Relative
   error about 2 ulp; below -87.3 the result flushes to 0, as a softmax wants. */
static inline float exp_approx(float x) {
  x = x < -87.3f ? -87.3f : (x > 88.7f ? 88.7f : x);
  /* round to nearest by the 1.5 * 2^23 trick (vectorises; roundf does not) */
  float n = (x * 1.44269504089f + 12582912.0f) - 12582912.0f;
  float r = x - n * 0.693359375f;
  r = r - n * -2.12194440e-4f;
  float p = 1.9875691500e-4f;
  p = p * r + 1.3981999507e-3f;
  p = p * r + 8.3334519073e-3f;
  p = p * r + 4.1665795894e-2f;
  p = p * r + 1.6666665459e-1f;
  p = p * r + 5.0000001201e-1f;
  p = p * r * r + r + 1.0f;
  union { float f; int32_t i; } scale;
  scale.i = ((int32_t)n + 127) << 23;
  float y = p * scale.f;
  return x <= -87.3f ? 0.0f : y;
}

typedef struct {
  const float *x;
  float *out;
  size_t channels, rows, rows_per_task;
} softmax_job;

static void softmax_task(void *ctx, size_t t) {
  const softmax_job *j = (const softmax_job *)ctx;
  size_t r0 = t * j->rows_per_task, r1 = r0 + j->rows_per_task, c = j->channels;
  if (r1 > j->rows) r1 = j->rows;
  for (size_t r = r0; r < r1; r++) {
    const float *x = j->x + r * c;
    float *o = j->out + r * c;
    /* row max in eight lanes (a single running max would not vectorise) */
    float mx[8];
    for (int u = 0; u < 8; u++) mx[u] = x[0];
    size_t i = 0;
    for (; i + 8 <= c; i += 8)
      for (int u = 0; u < 8; u++) mx[u] = x[i + u] > mx[u] ? x[i + u] : mx[u];
    float m = mx[0];
    for (int u = 1; u < 8; u++) m = mx[u] > m ? mx[u] : m;
    for (; i < c; i++) m = x[i] > m ? x[i] : m;
    for (i = 0; i < c; i++) o[i] = exp_approx(x[i] - m);
    /* eight partial sums: a single float accumulator would not vectorise */
    float acc[8] = {0, 0, 0, 0, 0, 0, 0, 0};
    for (i = 0; i + 8 <= c; i += 8)
      for (int u = 0; u < 8; u++) acc[u] += o[i + u];
    float s = ((acc[0] + acc[4]) + (acc[1] + acc[5])) + ((acc[2] + acc[6]) + (acc[3] + acc[7]));
    for (; i < c; i++) s += o[i];
    float inv = 1.0f / s;
    for (i = 0; i < c; i++) o[i] *= inv;
  }
}

/* softmax(heap, xOff, outOff, rows, channels) */
static napi_value js_softmax(napi_env env, napi_callback_info info) {
  size_t argc = 5;
  napi_value argv[5];
  CHECK(napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  if (argc < 5) FAIL("softmax(heap, xOff, outOff, rows, channels): expected 5 arguments");
  uint8_t *heap;
  size_t heap_len;
  if (!get_heap(env, argv[0], &heap, &heap_len)) FAIL("softmax: argument 0 must be the wasm heap ArrayBuffer");
  double v[4];
  for (int i = 0; i < 4; i++) CHECK(napi_get_value_double(env, argv[1 + i], &v[i]));
  double size = v[2] * v[3];
  if (!in_heap(heap_len, v[0], 4 * size) || !in_heap(heap_len, v[1], 4 * size))
    FAIL("softmax: an operand lies outside the wasm heap");
  if (size == 0) return NULL;
  softmax_job j = {(const float *)(heap + (size_t)v[0]), (float *)(heap + (size_t)v[1]), (size_t)v[3], (size_t)v[2], 0};
  size_t parts = task_count(size * 4, 32768, j.rows);
  j.rows_per_task = (j.rows + parts - 1) / parts;
  parallel_tasks(softmax_task, &j, (j.rows + j.rows_per_task - 1) / j.rows_per_task, size * 4);
  return NULL;
}

/* ------------------------------------------------------------------------- */
/* Unary ops over a flat float32 array.                                       */
/* ------------------------------------------------------------------------- */

enum { UN_SIGMOID = 0, UN_EXP = 1 };

typedef struct {
  const float *x;
  float *out;
  size_t n, per_task;
  int op;
} unary_job;

static void unary_task(void *ctx, size_t t) {
  const unary_job *j = (const unary_job *)ctx;
  size_t i0 = t * j->per_task, i1 = i0 + j->per_task > j->n ? j->n : i0 + j->per_task;
  const float *x = j->x;
  float *o = j->out;
  switch (j->op) {
    case UN_SIGMOID:
      /* 1 / (1 + e^-x), as the stock kernel; e^-x saturates to 0 or 3e38, so the ends are 1 and ~0 */
      for (size_t i = i0; i < i1; i++) o[i] = 1.0f / (1.0f + exp_approx(-x[i]));
      break;
    case UN_EXP:
      for (size_t i = i0; i < i1; i++) o[i] = exp_approx(x[i]);
      break;
  }
}

/* unary(heap, xOff, outOff, n, op) */
static napi_value js_unary(napi_env env, napi_callback_info info) {
  size_t argc = 5;
  napi_value argv[5];
  CHECK(napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  if (argc < 5) FAIL("unary(heap, xOff, outOff, n, op): expected 5 arguments");
  uint8_t *heap;
  size_t heap_len;
  if (!get_heap(env, argv[0], &heap, &heap_len)) FAIL("unary: argument 0 must be the wasm heap ArrayBuffer");
  double v[4];
  for (int i = 0; i < 4; i++) CHECK(napi_get_value_double(env, argv[1 + i], &v[i]));
  if (!in_heap(heap_len, v[0], 4 * v[2]) || !in_heap(heap_len, v[1], 4 * v[2])) FAIL("unary: an operand lies outside the wasm heap");
  if (v[3] != UN_SIGMOID && v[3] != UN_EXP) FAIL("unary: unknown op code");
  unary_job j = {(const float *)(heap + (size_t)v[0]), (float *)(heap + (size_t)v[1]), (size_t)v[2], 0, (int)v[3]};
  if (j.n == 0) return NULL;
  size_t parts = task_count((double)j.n * 4, 32768, j.n / 256 + 1);
  j.per_task = ((j.n + parts - 1) / parts + 15) & ~(size_t)15;
  parallel_tasks(unary_task, &j, (j.n + j.per_task - 1) / j.per_task, (double)j.n * 4);
  return NULL;
}

/* ------------------------------------------------------------------------- */
/* Transpose of 4-byte elements: out = x permuted, rank <= 6.                 */
/* The TypeScript side drops size-1 dims and passes each output dim's stride  */
/* in x, so the inner loop is a strided (often contiguous) copy.              */
/* ------------------------------------------------------------------------- */

typedef struct {
  const uint32_t *x;
  uint32_t *out;
  int rank;
  size_t shape[MAX_RANK], stride[MAX_RANK]; /* output shape; x stride per output dim */
  size_t inner, rows, rows_per_task;
} transpose_job;

static void transpose_task(void *ctx, size_t t) {
  const transpose_job *j = (const transpose_job *)ctx;
  size_t r0 = t * j->rows_per_task, r1 = r0 + j->rows_per_task > j->rows ? j->rows : r0 + j->rows_per_task;
  int last = j->rank - 1;
  size_t ls = j->stride[last], n = j->inner;
  for (size_t r = r0; r < r1; r++) {
    size_t rem = r, off = 0;
    for (int d = last - 1; d >= 0; d--) {
      size_t idx = rem % j->shape[d];
      rem /= j->shape[d];
      off += idx * j->stride[d];
    }
    const uint32_t *x = j->x + off;
    uint32_t *o = j->out + r * n;
    if (ls == 1)
      memcpy(o, x, n * 4);
    else
      for (size_t i = 0; i < n; i++) o[i] = x[i * ls];
  }
}

/* transpose(heap, desc): desc = [xOff, outOff, rank, outShape[rank], xStride[rank]] */
static napi_value js_transpose(napi_env env, napi_callback_info info) {
  size_t argc = 2;
  napi_value argv[2];
  CHECK(napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  if (argc < 2) FAIL("transpose(heap, desc): expected 2 arguments");
  uint8_t *heap;
  size_t heap_len, nd;
  const double *d;
  if (!get_heap(env, argv[0], &heap, &heap_len)) FAIL("transpose: argument 0 must be the wasm heap ArrayBuffer");
  if (!get_desc(env, argv[1], &d, &nd) || nd < 3) FAIL("transpose: argument 1 must be a Float64Array descriptor");
  transpose_job j;
  j.rank = (int)d[2];
  if (j.rank < 1 || j.rank > MAX_RANK || nd < (size_t)(3 + 2 * j.rank)) FAIL("transpose: bad rank in descriptor");
  double size = 1, maxx = 0;
  for (int i = 0; i < j.rank; i++) {
    j.shape[i] = (size_t)d[3 + i];
    j.stride[i] = (size_t)d[3 + j.rank + i];
    size *= d[3 + i];
    maxx += (d[3 + i] - 1) * d[3 + j.rank + i];
  }
  if (size == 0) return NULL;
  if (!in_heap(heap_len, d[0], 4 * (maxx + 1)) || !in_heap(heap_len, d[1], 4 * size))
    FAIL("transpose: an operand lies outside the wasm heap");
  j.x = (const uint32_t *)(heap + (size_t)d[0]);
  j.out = (uint32_t *)(heap + (size_t)d[1]);
  j.inner = j.shape[j.rank - 1];
  j.rows = (size_t)size / j.inner;
  size_t parts = task_count(size, 32768, j.rows);
  j.rows_per_task = (j.rows + parts - 1) / parts;
  parallel_tasks(transpose_task, &j, (j.rows + j.rows_per_task - 1) / j.rows_per_task, size);
  return NULL;
}

/* ------------------------------------------------------------------------- */
/* Adam update, fused: tfjs-core's AdamOptimizer.applyGradients per variable  */
/* (optimizers/adam_optimizer.ts) in one pass instead of 13 kernel calls, the */
/* same float32 operations in the same order, so the result is bit-identical  */
/* (built with -ffp-contract=off: no fused multiply-adds).                    */
/* ------------------------------------------------------------------------- */

typedef struct {
  const float *value, *m, *v, *g;
  float *out_value, *out_m, *out_v;
  size_t n, per_task;
  float beta1, omb1, beta2, omb2, omab1, omab2, eps, neg_lr;
} adam_job;

static void adam_task(void *ctx, size_t t) {
  const adam_job *j = (const adam_job *)ctx;
  size_t i0 = t * j->per_task, i1 = i0 + j->per_task > j->n ? j->n : i0 + j->per_task;
  for (size_t i = i0; i < i1; i++) {
    float g = j->g[i];
    float m1 = j->m[i] * j->beta1 + g * j->omb1;         /* add(mul(m, b1), mul(g, 1 - b1)) */
    float v1 = j->v[i] * j->beta2 + (g * g) * j->omb2;   /* add(mul(v, b2), mul(square(g), 1 - b2)) */
    float mh = m1 / j->omab1;                            /* div(m', 1 - accBeta1) */
    float vh = v1 / j->omab2;                            /* div(v', 1 - accBeta2) */
    float step = (mh / (sqrtf(vh) + j->eps)) * j->neg_lr; /* mul(div(mh, add(sqrt(vh), eps)), -lr) */
    j->out_value[i] = step + j->value[i];
    j->out_m[i] = m1;
    j->out_v[i] = v1;
  }
}

/* adam(heap, desc): desc = [valueOff, mOff, vOff, gOff, outValueOff, outMOff, outVOff, n,
                             beta1, 1 - beta1, beta2, 1 - beta2, 1 - accBeta1, 1 - accBeta2, eps, -lr] */
static napi_value js_adam(napi_env env, napi_callback_info info) {
  size_t argc = 2;
  napi_value argv[2];
  CHECK(napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  if (argc < 2) FAIL("adam(heap, desc): expected 2 arguments");
  uint8_t *heap;
  size_t heap_len, nd;
  const double *d;
  if (!get_heap(env, argv[0], &heap, &heap_len)) FAIL("adam: argument 0 must be the wasm heap ArrayBuffer");
  if (!get_desc(env, argv[1], &d, &nd) || nd < 16) FAIL("adam: argument 1 must be a Float64Array descriptor of 16");
  double n = d[7];
  for (int i = 0; i < 7; i++)
    if (!in_heap(heap_len, d[i], 4 * n)) FAIL("adam: an operand lies outside the wasm heap");
  adam_job j = {(const float *)(heap + (size_t)d[0]), (const float *)(heap + (size_t)d[1]),
                (const float *)(heap + (size_t)d[2]), (const float *)(heap + (size_t)d[3]),
                (float *)(heap + (size_t)d[4]), (float *)(heap + (size_t)d[5]), (float *)(heap + (size_t)d[6]),
                (size_t)n, 0,
                (float)d[8], (float)d[9], (float)d[10], (float)d[11], (float)d[12], (float)d[13], (float)d[14], (float)d[15]};
  if (j.n == 0) return NULL;
  size_t parts = task_count(n * 8, 32768, j.n / 256 + 1);
  j.per_task = ((j.n + parts - 1) / parts + 15) & ~(size_t)15;
  parallel_tasks(adam_task, &j, (j.n + j.per_task - 1) / j.per_task, n * 8);
  return NULL;
}

/* ------------------------------------------------------------------------- */
/* Fused gradients of Softmax and Sigmoid (tfjs-core gradients/Softmax_grad.ts,*/
/* Sigmoid_grad.ts): the same float32 operations in the same order as the     */
/* composite formulas on these kernels, in one pass instead of 3-4 kernels.   */
/* ------------------------------------------------------------------------- */

typedef struct {
  const float *dy, *y;
  float *out;
  size_t rows, channels, per_task;
  int softmax;
} grad_job;

static void grad_task(void *ctx, size_t t) {
  const grad_job *j = (const grad_job *)ctx;
  if (!j->softmax) {
    size_t i0 = t * j->per_task, i1 = i0 + j->per_task > j->rows ? j->rows : i0 + j->per_task;
    for (size_t i = i0; i < i1; i++) {
      float y = j->y[i];
      j->out[i] = j->dy[i] * (y * (1.0f - y)); /* mul(dy, mul(y, sub(1, y))) */
    }
    return;
  }
  size_t r0 = t * j->per_task, r1 = r0 + j->per_task > j->rows ? j->rows : r0 + j->per_task, c = j->channels;
  for (size_t r = r0; r < r1; r++) {
    const float *dy = j->dy + r * c, *y = j->y + r * c;
    float *o = j->out + r * c;
    for (size_t i = 0; i < c; i++) o[i] = dy[i] * y[i]; /* dyTimesY = mul(dy, y) */
    float s;
    sum_block(o, 0, c, 1, &s);                             /* sum(dyTimesY, last, keepDims): the Sum kernel's order */
    for (size_t i = 0; i < c; i++) o[i] = o[i] - s * y[i]; /* sub(dyTimesY, mul(sum, y)) */
  }
}

/* grad(heap, dyOff, yOff, outOff, rows, channels, softmax): softmax = 1 for rows x channels, 0: sigmoid over rows floats */
static napi_value js_grad(napi_env env, napi_callback_info info) {
  size_t argc = 7;
  napi_value argv[7];
  CHECK(napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  if (argc < 7) FAIL("grad(heap, dyOff, yOff, outOff, rows, channels, softmax): expected 7 arguments");
  uint8_t *heap;
  size_t heap_len;
  if (!get_heap(env, argv[0], &heap, &heap_len)) FAIL("grad: argument 0 must be the wasm heap ArrayBuffer");
  double v[6];
  for (int i = 0; i < 6; i++) CHECK(napi_get_value_double(env, argv[1 + i], &v[i]));
  double size = v[3] * (v[5] != 0 ? v[4] : 1);
  for (int i = 0; i < 3; i++)
    if (!in_heap(heap_len, v[i], 4 * size)) FAIL("grad: an operand lies outside the wasm heap");
  if (size == 0) return NULL;
  grad_job j = {(const float *)(heap + (size_t)v[0]), (const float *)(heap + (size_t)v[1]), (float *)(heap + (size_t)v[2]),
                (size_t)v[3], (size_t)v[4], 0, v[5] != 0};
  size_t parts = task_count(size * 2, 32768, j.softmax ? j.rows : j.rows / 256 + 1);
  j.per_task = (j.rows + parts - 1) / parts;
  if (!j.softmax) j.per_task = (j.per_task + 15) & ~(size_t)15;
  parallel_tasks(grad_task, &j, (j.rows + j.per_task - 1) / j.per_task, size * 2);
  return NULL;
}

/* ------------------------------------------------------------------------- */
/* Layer norm over the last axis, forward and backward in one pass each       */
/* (src/accel/layernorm.ts; the composite in src/model/nn.ts costs ~10 kernels */
/* forward and ~15 backward). y = (x - mean) * rstd * gamma + beta,           */
/* rstd = 1 / sqrt(var + eps), var the population variance (tf.moments).      */
/* ------------------------------------------------------------------------- */

typedef struct {
  const float *x, *gamma, *beta, *dy, *mean, *rstd;
  float *y, *out_mean, *out_rstd, *dx, *partial; /* partial: [tasks, 2, C] dgamma / dbeta */
  size_t rows, c, per_task;
  float eps;
} ln_job;

static void ln_fwd_task(void *ctx, size_t t) {
  const ln_job *j = (const ln_job *)ctx;
  size_t r0 = t * j->per_task, r1 = r0 + j->per_task > j->rows ? j->rows : r0 + j->per_task, c = j->c;
  for (size_t r = r0; r < r1; r++) {
    const float *x = j->x + r * c;
    float *y = j->y + r * c;
    float s;
    sum_block(x, 0, c, 1, &s);
    float mean = s / (float)c;
    for (size_t i = 0; i < c; i++) y[i] = (x[i] - mean) * (x[i] - mean); /* scratch: squared deviations */
    float v;
    sum_block(y, 0, c, 1, &v);
    float rstd = 1.0f / sqrtf(v / (float)c + j->eps);
    for (size_t i = 0; i < c; i++) y[i] = (x[i] - mean) * rstd * j->gamma[i] + j->beta[i];
    j->out_mean[r] = mean;
    j->out_rstd[r] = rstd;
  }
}

static void ln_bwd_task(void *ctx, size_t t) {
  const ln_job *j = (const ln_job *)ctx;
  size_t r0 = t * j->per_task, r1 = r0 + j->per_task > j->rows ? j->rows : r0 + j->per_task, c = j->c;
  float *dg = j->partial + t * 2 * c, *db = dg + c;
  memset(dg, 0, 2 * c * sizeof(float));
  for (size_t r = r0; r < r1; r++) {
    const float *x = j->x + r * c, *dy = j->dy + r * c;
    float *dx = j->dx + r * c;
    float mean = j->mean[r], rstd = j->rstd[r];
    float a8[8] = {0}, b8[8] = {0};
    size_t i = 0;
    for (; i + 8 <= c; i += 8)
      for (int u = 0; u < 8; u++) {
        float xh = (x[i + u] - mean) * rstd, g = dy[i + u] * j->gamma[i + u];
        a8[u] += g;
        b8[u] += g * xh;
      }
    float sa = 0, sb = 0;
    for (int u = 0; u < 8; u++) {
      sa += a8[u];
      sb += b8[u];
    }
    for (; i < c; i++) {
      float xh = (x[i] - mean) * rstd, g = dy[i] * j->gamma[i];
      sa += g;
      sb += g * xh;
    }
    float ma = sa / (float)c, mb = sb / (float)c;
    for (i = 0; i < c; i++) {
      float xh = (x[i] - mean) * rstd;
      dx[i] = rstd * (dy[i] * j->gamma[i] - ma - xh * mb);
      dg[i] += dy[i] * xh;
      db[i] += dy[i];
    }
  }
}

/* layerNorm(heap, desc, backward): forward desc = [x, gamma, beta, y, mean, rstd offsets, rows, C, eps];
   backward desc = [x, gamma, dy, mean, rstd, dx, dgamma, dbeta offsets, rows, C] */
static napi_value js_layer_norm(napi_env env, napi_callback_info info) {
  size_t argc = 3;
  napi_value argv[3];
  CHECK(napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  if (argc < 3) FAIL("layerNorm(heap, desc, backward): expected 3 arguments");
  uint8_t *heap;
  size_t heap_len, nd;
  const double *d;
  bool backward;
  if (!get_heap(env, argv[0], &heap, &heap_len)) FAIL("layerNorm: argument 0 must be the wasm heap ArrayBuffer");
  if (!get_desc(env, argv[1], &d, &nd)) FAIL("layerNorm: argument 1 must be a Float64Array descriptor");
  CHECK(napi_get_value_bool(env, argv[2], &backward));
  ln_job j;
  memset(&j, 0, sizeof j);
  if (!backward) {
    if (nd < 9) FAIL("layerNorm: forward descriptor needs 9 entries");
    j.rows = (size_t)d[6];
    j.c = (size_t)d[7];
    j.eps = (float)d[8];
    double n = (double)j.rows * j.c;
    if (!in_heap(heap_len, d[0], 4 * n) || !in_heap(heap_len, d[1], 4.0 * j.c) || !in_heap(heap_len, d[2], 4.0 * j.c) ||
        !in_heap(heap_len, d[3], 4 * n) || !in_heap(heap_len, d[4], 4.0 * j.rows) || !in_heap(heap_len, d[5], 4.0 * j.rows))
      FAIL("layerNorm: an operand lies outside the wasm heap");
    if (n == 0) return NULL;
    j.x = (const float *)(heap + (size_t)d[0]);
    j.gamma = (const float *)(heap + (size_t)d[1]);
    j.beta = (const float *)(heap + (size_t)d[2]);
    j.y = (float *)(heap + (size_t)d[3]);
    j.out_mean = (float *)(heap + (size_t)d[4]);
    j.out_rstd = (float *)(heap + (size_t)d[5]);
    size_t parts = task_count(n * 3, 32768, j.rows);
    j.per_task = (j.rows + parts - 1) / parts;
    parallel_tasks(ln_fwd_task, &j, (j.rows + j.per_task - 1) / j.per_task, n * 3);
    return NULL;
  }
  if (nd < 10) FAIL("layerNorm: backward descriptor needs 10 entries");
  j.rows = (size_t)d[8];
  j.c = (size_t)d[9];
  double n = (double)j.rows * j.c;
  if (!in_heap(heap_len, d[0], 4 * n) || !in_heap(heap_len, d[1], 4.0 * j.c) || !in_heap(heap_len, d[2], 4 * n) ||
      !in_heap(heap_len, d[3], 4.0 * j.rows) || !in_heap(heap_len, d[4], 4.0 * j.rows) || !in_heap(heap_len, d[5], 4 * n) ||
      !in_heap(heap_len, d[6], 4.0 * j.c) || !in_heap(heap_len, d[7], 4.0 * j.c))
    FAIL("layerNorm: an operand lies outside the wasm heap");
  float *dgamma = (float *)(heap + (size_t)d[6]), *dbeta = (float *)(heap + (size_t)d[7]);
  if (n == 0) {
    memset(dgamma, 0, j.c * 4);
    memset(dbeta, 0, j.c * 4);
    return NULL;
  }
  j.x = (const float *)(heap + (size_t)d[0]);
  j.gamma = (const float *)(heap + (size_t)d[1]);
  j.dy = (const float *)(heap + (size_t)d[2]);
  j.mean = (const float *)(heap + (size_t)d[3]);
  j.rstd = (const float *)(heap + (size_t)d[4]);
  j.dx = (float *)(heap + (size_t)d[5]);
  size_t parts = task_count(n * 4, 32768, j.rows);
  j.per_task = (j.rows + parts - 1) / parts;
  size_t ntasks = (j.rows + j.per_task - 1) / j.per_task;
  j.partial = (float *)malloc(ntasks * 2 * j.c * sizeof(float));
  if (!j.partial) FAIL("layerNorm: out of memory for partial sums");
  parallel_tasks(ln_bwd_task, &j, ntasks, n * 4);
  for (size_t i = 0; i < j.c; i++) {
    float g = 0, b = 0;
    for (size_t t = 0; t < ntasks; t++) {
      g += j.partial[t * 2 * j.c + i];
      b += j.partial[t * 2 * j.c + j.c + i];
    }
    dgamma[i] = g;
    dbeta[i] = b;
  }
  free(j.partial);
  return NULL;
}

/* ------------------------------------------------------------------------- */
/* quick-GELU, y = x * sigmoid(1.702 x), forward and backward in one pass each */
/* (src/accel/quick-gelu.ts). The same float32 operations in the same order as */
/* the composite on these kernels (src/model/nn.ts: mul, Sigmoid, mul; its     */
/* gradient dy*s + ((dy*x) * (s*(1-s))) * 1.702), so bit-identical to it.      */
/* ------------------------------------------------------------------------- */

typedef struct {
  const float *x, *dy;
  float *out;
  size_t n, per_task;
} gelu_job;

static void gelu_fwd_task(void *ctx, size_t t) {
  const gelu_job *j = (const gelu_job *)ctx;
  size_t i0 = t * j->per_task, i1 = i0 + j->per_task > j->n ? j->n : i0 + j->per_task;
  for (size_t i = i0; i < i1; i++) {
    float x = j->x[i], s = 1.0f / (1.0f + exp_approx(-(x * 1.702f)));
    j->out[i] = x * s;
  }
}

static void gelu_bwd_task(void *ctx, size_t t) {
  const gelu_job *j = (const gelu_job *)ctx;
  size_t i0 = t * j->per_task, i1 = i0 + j->per_task > j->n ? j->n : i0 + j->per_task;
  for (size_t i = i0; i < i1; i++) {
    float x = j->x[i], dy = j->dy[i], s = 1.0f / (1.0f + exp_approx(-(x * 1.702f)));
    j->out[i] = dy * s + ((dy * x) * (s * (1.0f - s))) * 1.702f;
  }
}

/* quickGelu(heap, xOff, dyOff, outOff, n, backward): out = quick-GELU(x), or its gradient dx given dy (dyOff unused forward) */
static napi_value js_quick_gelu(napi_env env, napi_callback_info info) {
  size_t argc = 6;
  napi_value argv[6];
  CHECK(napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  if (argc < 6) FAIL("quickGelu(heap, xOff, dyOff, outOff, n, backward): expected 6 arguments");
  uint8_t *heap;
  size_t heap_len;
  if (!get_heap(env, argv[0], &heap, &heap_len)) FAIL("quickGelu: argument 0 must be the wasm heap ArrayBuffer");
  double v[4];
  for (int i = 0; i < 4; i++) CHECK(napi_get_value_double(env, argv[1 + i], &v[i]));
  bool backward;
  CHECK(napi_get_value_bool(env, argv[5], &backward));
  if (!in_heap(heap_len, v[0], 4 * v[3]) || !in_heap(heap_len, v[2], 4 * v[3]) || (backward && !in_heap(heap_len, v[1], 4 * v[3])))
    FAIL("quickGelu: an operand lies outside the wasm heap");
  gelu_job j = {(const float *)(heap + (size_t)v[0]), backward ? (const float *)(heap + (size_t)v[1]) : NULL, (float *)(heap + (size_t)v[2]), (size_t)v[3], 0};
  if (j.n == 0) return NULL;
  double work = (double)j.n * (backward ? 8 : 4);
  size_t parts = task_count(work, 32768, j.n / 256 + 1);
  j.per_task = ((j.n + parts - 1) / parts + 15) & ~(size_t)15;
  parallel_tasks(backward ? gelu_bwd_task : gelu_fwd_task, &j, (j.n + j.per_task - 1) / j.per_task, work);
  return NULL;
}

/* ------------------------------------------------------------------------- */
/* Module                                                                     */
/* ------------------------------------------------------------------------- */

/* info() -> { blas: OpenBLAS config string, blasThreads (1: the pool threads it), poolThreads } */
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
    /* OpenBLAS's own threads would compete with the pool for the same cores (and
       spin after each call); every sgemm here is one task of the pool instead */
    openblas_set_num_threads(1);
  }
  napi_property_descriptor props[] = {
      {"gemm", NULL, js_gemm, NULL, NULL, NULL, napi_default, NULL},
      {"sum", NULL, js_sum, NULL, NULL, NULL, napi_default, NULL},
      {"binary", NULL, js_binary, NULL, NULL, NULL, napi_default, NULL},
      {"softmax", NULL, js_softmax, NULL, NULL, NULL, napi_default, NULL},
      {"unary", NULL, js_unary, NULL, NULL, NULL, napi_default, NULL},
      {"transpose", NULL, js_transpose, NULL, NULL, NULL, napi_default, NULL},
      {"adam", NULL, js_adam, NULL, NULL, NULL, napi_default, NULL},
      {"grad", NULL, js_grad, NULL, NULL, NULL, napi_default, NULL},
      {"layerNorm", NULL, js_layer_norm, NULL, NULL, NULL, napi_default, NULL},
      {"quickGelu", NULL, js_quick_gelu, NULL, NULL, NULL, napi_default, NULL},
      {"info", NULL, js_info, NULL, NULL, NULL, napi_default, NULL},
  };
  CHECK(napi_define_properties(env, exports, sizeof(props) / sizeof(props[0]), props));
  return exports;
}

NAPI_MODULE(NODE_GYP_MODULE_NAME, Init)
