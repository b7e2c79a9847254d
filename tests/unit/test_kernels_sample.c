/* test_kernels_sample.c: the sampling, classifier-head and dropout kernels
 * of the cpu table against the ref table (bit for bit, or within the
 * tolerance kernels.h gives), their edge cases (-inf and NaN logits, ties
 * for the first maximum, sizes off the vector width and block boundaries),
 * dropout against a recomputation of its hash, and llm_kernels_parallel()
 * running every task once on threads in range. */
#include <math.h>
#include <omp.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kernels.h"

#define TESTRAND_SEED 0x243f6a8885a308d3ull
#include "testrand.h"

static int failures;

#define FAIL(...) do { failures++; printf("FAIL "); printf(__VA_ARGS__); printf("\n"); } while (0)

/* Logits in [-8, 8), a few of them -inf when `masked`. */
static float *logits(int n, int masked)
{
    float *x = xmalloc((size_t)n * sizeof *x);
    for (int i = 0; i < n; i++)
        x[i] = masked && next_u64() % 5 == 0 ? -INFINITY : 8 * uniform();
    return x;
}

/* Sizes around the vector widths (4, 8, 16) and the 64-entry blocks. */
static const int sizes[] = {1, 2, 7, 8, 15, 16, 17, 63, 64, 65, 127, 128, 129, 1000, 32003};
#define NSIZES (int)(sizeof sizes / sizeof sizes[0])

/* ------------------------------------------------------------ logits_max */

static void test_logits_max(const llm_kernels *f, const llm_kernels *r)
{
    for (int si = 0; si < NSIZES; si++) {
        int n = sizes[si];
        for (int masked = 0; masked <= 1; masked++) {
            float *x = logits(n, masked);
            x[next_u64() % n] = 9.5f;   /* somewhere, one clear maximum */
            int b1 = -1, b2 = -1;
            float m1 = f->logits_max(x, n, &b1), m2 = r->logits_max(x, n, &b2);
            if (m1 != 9.5f || m2 != 9.5f || b1 != 0 || b2 != 0)
                FAIL("logits_max n=%d masked=%d: cpu %g (bad %d), ref %g (bad %d), want 9.5",
                     n, masked, m1, b1, m2, b2);
            /* The maximum at the last entry: the loop's tail. */
            x[n - 1] = 10.0f;
            m1 = f->logits_max(x, n, &b1);
            if (m1 != 10.0f || b1)
                FAIL("logits_max n=%d: the last entry's maximum missed (%g)", n, m1);
            /* NaN and +inf anywhere, the first, the last and the middle. */
            int at[3] = {0, n - 1, n / 2};
            for (int a = 0; a < 3; a++)
                for (int kind = 0; kind < 2; kind++) {
                    float keep = x[at[a]];
                    x[at[a]] = kind ? INFINITY : NAN;
                    f->logits_max(x, n, &b1);
                    r->logits_max(x, n, &b2);
                    if (b1 != 1 || b2 != 1)
                        FAIL("logits_max n=%d: %s at %d not flagged (cpu %d, ref %d)", n,
                             kind ? "+inf" : "NaN", at[a], b1, b2);
                    x[at[a]] = keep;
                }
            free(x);
        }
        /* Every logit -inf: -inf, and no error flagged. */
        float *x = xmalloc((size_t)n * sizeof *x);
        for (int i = 0; i < n; i++)
            x[i] = -INFINITY;
        int b1 = -1, b2 = -1;
        float m1 = f->logits_max(x, n, &b1), m2 = r->logits_max(x, n, &b2);
        if (m1 != -INFINITY || m2 != -INFINITY || b1 || b2)
            FAIL("logits_max n=%d all -inf: cpu %g (bad %d), ref %g (bad %d)", n, m1, b1, m2,
                 b2);
        /* Negative logits only: the maximum is negative, not a 0 start. */
        for (int i = 0; i < n; i++)
            x[i] = -1 - (float)(next_u64() % 100);
        x[n / 3] = -0.5f;
        m1 = f->logits_max(x, n, &b1);
        m2 = r->logits_max(x, n, &b2);
        if (m1 != -0.5f || m2 != -0.5f)
            FAIL("logits_max n=%d negative: cpu %g, ref %g, want -0.5", n, m1, m2);
        free(x);
    }
}

/* ------------------------------------------------------- softmax_weights */

static void test_softmax_weights(const llm_kernels *f, const llm_kernels *r)
{
    static const int blocks[] = {1, 7, 64};
    static const float temps[] = {1.0f, 0.7f, 1.9f};
    for (int si = 0; si < NSIZES; si++)
        for (int bi = 0; bi < 3; bi++) {
            int n = sizes[si], block = blocks[bi], nb = (n + block - 1) / block;
            float inv = 1 / temps[(si + bi) % 3];
            float *x = logits(n, 1);
            x[next_u64() % n] = 9.0f;   /* the maximum, never masked */
            size_t cap = (size_t)n / block + 2;   /* one sentinel past the contract */
            float *w1 = xmalloc((size_t)n * sizeof *w1), *w2 = xmalloc((size_t)n * sizeof *w2);
            float *s1 = xmalloc(cap * sizeof *s1), *s2 = xmalloc(cap * sizeof *s2);
            for (size_t j = 0; j < cap; j++)
                s1[j] = s2[j] = -7.0f;
            double z1 = f->softmax_weights(w1, s1, x, n, 9.0f, inv, block);
            double z2 = r->softmax_weights(w2, s2, x, n, 9.0f, inv, block);
            if (memcmp(w1, w2, (size_t)n * sizeof *w1) != 0)
                FAIL("softmax_weights n=%d block=%d: w not bitwise the ref's", n, block);
            double tol = 2.0 * block / 16777216.0;
            for (int j = 0; j < nb; j++)
                if (!(fabs((double)s1[j] - s2[j]) <= tol * fabs((double)s2[j]))) {
                    FAIL("softmax_weights n=%d block=%d: bsum[%d] %.9g, ref %.9g", n, block,
                         j, s1[j], s2[j]);
                    break;
                }
            for (size_t j = (size_t)nb; j < cap; j++)
                if (s1[j] != -7.0f || s2[j] != -7.0f)
                    FAIL("softmax_weights n=%d block=%d: bsum[%zu] written past the last "
                         "block", n, block, j);
            if (!(fabs(z1 - z2) <= tol * z2))
                FAIL("softmax_weights n=%d block=%d: sum %.17g, ref %.17g", n, block, z1, z2);
            /* The contract itself: exp within fast_expf's error, 0 for -inf,
             * 1 for the maximum, and the sum of the block sums. */
            double zs = 0;
            for (int j = 0; j < nb; j++)
                zs += s2[j];
            if (zs != z2)
                FAIL("softmax_weights n=%d block=%d: ref's sum is not its block sums'", n,
                     block);
            for (int i = 0; i < n; i++) {
                double want = x[i] == -INFINITY ? 0 : exp((double)((x[i] - 9.0f) * inv));
                if (!(fabs(w1[i] - want) <= 1e-30 + 1e-6 * want)) {
                    FAIL("softmax_weights n=%d: w[%d] = %.9g for logit %g, want %.9g", n, i,
                         w1[i], x[i], want);
                    break;
                }
            }
            free(x); free(w1); free(w2); free(s1); free(s2);
        }
}

/* ------------------------------------------------------------ find_first */

static void test_find_first(const llm_kernels *f, const llm_kernels *r)
{
    for (int si = 0; si < NSIZES; si++) {
        int n = sizes[si];
        float *x = logits(n, 1);
        /* Ties: the value at three places, the first wins. */
        int at[3] = {(int)(next_u64() % n), (int)(next_u64() % n), (int)(next_u64() % n)};
        int want = n;
        for (int a = 0; a < 3; a++) {
            x[at[a]] = 20.0f;
            want = at[a] < want ? at[a] : want;
        }
        int g1 = f->find_first(x, n, 20.0f), g2 = r->find_first(x, n, 20.0f);
        if (g1 != want || g2 != want)
            FAIL("find_first n=%d ties: cpu %d, ref %d, want %d", n, g1, g2, want);
        /* Absent: n. */
        g1 = f->find_first(x, n, 30.0f);
        g2 = r->find_first(x, n, 30.0f);
        if (g1 != n || g2 != n)
            FAIL("find_first n=%d absent: cpu %d, ref %d, want %d", n, g1, g2, n);
        /* Only at block boundaries and the tail: 63, 64, n - 1. */
        int edge[3] = {63, 64, n - 1};
        for (int e = 0; e < 3; e++) {
            if (edge[e] >= n)
                continue;
            for (int i = 0; i < n; i++)
                x[i] = x[i] == 20.0f || x[i] == 21.0f ? 0.5f : x[i];
            x[edge[e]] = 21.0f;
            if (e == 2 && n > 64)
                x[n - 2 < 64 ? 64 : n - 2] = 21.0f;   /* a later tie in the last block */
            int w = edge[e];
            if (e == 2 && n > 64)
                w = n - 2 < 64 ? 64 : n - 2;
            g1 = f->find_first(x, n, 21.0f);
            g2 = r->find_first(x, n, 21.0f);
            if (g1 != w || g2 != w)
                FAIL("find_first n=%d at %d: cpu %d, ref %d", n, w, g1, g2);
        }
        /* -0 equals +0. */
        for (int i = 0; i < n; i++)
            x[i] = x[i] == 0 ? 1.0f : x[i];
        x[n - 1] = -0.0f;
        g1 = f->find_first(x, n, 0.0f);
        g2 = r->find_first(x, n, 0.0f);
        if (g1 != n - 1 || g2 != n - 1)
            FAIL("find_first n=%d: -0 at %d not found as +0 (cpu %d, ref %d)", n, n - 1, g1,
                 g2);
        free(x);
    }
}

/* ------------------------------------------------------------ linear_f64 */

static void test_linear_f64(const llm_kernels *f, const llm_kernels *r, int N, int C, int K)
{
    float *inp = xmalloc((size_t)N * C * sizeof *inp), *w = xmalloc((size_t)K * C * sizeof *w);
    float *b = xmalloc((size_t)K * sizeof *b);
    float *o1 = xmalloc((size_t)N * K * sizeof *o1), *o2 = xmalloc((size_t)N * K * sizeof *o2);
    for (size_t i = 0; i < (size_t)N * C; i++)
        inp[i] = uniform();
    for (size_t i = 0; i < (size_t)K * C; i++)
        w[i] = uniform();
    for (int k = 0; k < K; k++)
        b[k] = uniform();
    for (size_t i = 0; i < (size_t)N * K; i++)
        o1[i] = o2[i] = NAN;   /* "=": every element written */
    f->linear_f64(o1, inp, w, b, N, C, K);
    r->linear_f64(o2, inp, w, b, N, C, K);
    if (memcmp(o1, o2, (size_t)N * K * sizeof *o1) != 0)
        FAIL("linear_f64 N=%d C=%d K=%d: not bitwise the ref's", N, C, K);
    for (int i = 0; i < N; i++)
        for (int k = 0; k < K; k++) {
            double s = b[k];
            for (int c = 0; c < C; c++)
                s += (double)inp[(size_t)i * C + c] * w[(size_t)k * C + c];
            if (o1[(size_t)i * K + k] != (float)s) {
                FAIL("linear_f64 N=%d C=%d K=%d: [%d,%d] %.9g, want %.9g", N, C, K, i, k,
                     o1[(size_t)i * K + k], (float)s);
                i = N;
                break;
            }
        }
    free(inp); free(w); free(b); free(o1); free(o2);
}

/* --------------------------------------------------------------- dropout */

/* The contract's mask, written out: SplitMix64's finaliser. */
static float dropped(float x, size_t i, double p, uint64_t key)
{
    uint64_t z = key + i * 0x9e3779b97f4a7c15ull;
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    z ^= z >> 31;
    uint32_t u = (uint32_t)(z >> 40), cut = (uint32_t)(p * 16777216.0);
    return u >= cut ? x * (float)(1.0 / (1.0 - p)) : 0.0f;
}

static void test_dropout(const llm_kernels *k, size_t n, double p, uint64_t key)
{
    float *x = xmalloc(n * sizeof *x), *y = xmalloc(n * sizeof *y);
    float *want = xmalloc(n * sizeof *want);
    for (size_t i = 0; i < n; i++) {
        x[i] = uniform();
        want[i] = dropped(x[i], i, p, key);
    }
    size_t zeros = 0;
    for (size_t i = 0; i < n; i++)
        zeros += want[i] == 0;
    static const int threads[] = {1, 2, 5};
    for (int t = 0; t < 3; t++) {
        llm_kernels_set_threads(threads[t]);
        memcpy(y, x, n * sizeof *y);
        k->dropout(y, n, p, key);
        if (memcmp(y, want, n * sizeof *y) != 0)
            FAIL("dropout %s n=%zu p=%g threads=%d: not the hash's mask", k->name, n, p,
                 threads[t]);
    }
    /* A split of x keyed on: the same bits. */
    if (n > 3) {
        size_t h = n / 3;
        memcpy(y, x, n * sizeof *y);
        k->dropout(y, h, p, key);
        k->dropout(y + h, n - h, p, key + h * 0x9e3779b97f4a7c15ull);
        if (memcmp(y, want, n * sizeof *y) != 0)
            FAIL("dropout %s n=%zu p=%g: a split call changes the mask", k->name, n, p);
    }
    /* About a fraction p dropped (4 standard deviations, plus one). */
    double mean = p * n, sd = sqrt(n * p * (1 - p));
    if (fabs((double)zeros - mean) > 4 * sd + 1)
        FAIL("dropout n=%zu p=%g: %zu dropped, expected about %.0f", n, p, zeros, mean);
    free(x); free(y); free(want);
}

/* -------------------------------------------------------------- parallel */

typedef struct {
    atomic_int *runs;    /* (n) times each task ran */
    atomic_int *busy;    /* (64) a task is running on this thread */
    atomic_int bad_id, overlap, wide;
    int max_id;          /* exclusive */
} par_ctx;

static void par_task(void *ctx, int task, int thread)
{
    par_ctx *c = ctx;
    if (thread < 0 || thread >= c->max_id) {
        atomic_store(&c->bad_id, 1);
        atomic_fetch_add(&c->runs[task], 1);
        return;
    }
    if (atomic_exchange(&c->busy[thread], 1))
        atomic_store(&c->overlap, 1);
    if (omp_get_max_threads() != 1)   /* kernels inside run on this thread */
        atomic_store(&c->wide, 1);
    atomic_fetch_add(&c->runs[task], 1);
    volatile double s = 0;   /* a little work, so that threads overlap */
    for (int i = 0; i < 2000 + task % 7 * 500; i++)
        s += i;
    atomic_store(&c->busy[thread], 0);
}

static void test_parallel(int n, int threads)
{
    par_ctx c;
    c.runs = xmalloc((size_t)(n ? n : 1) * sizeof *c.runs);
    c.busy = xmalloc(64 * sizeof *c.busy);
    for (int i = 0; i < n; i++)
        atomic_init(&c.runs[i], 0);
    for (int i = 0; i < 64; i++)
        atomic_init(&c.busy[i], 0);
    atomic_init(&c.bad_id, 0);
    atomic_init(&c.overlap, 0);
    atomic_init(&c.wide, 0);
    int t = threads > 0 ? threads : llm_kernels_threads();
    c.max_id = t < n ? t : n;
    llm_kernels_parallel(n, threads, par_task, &c);
    for (int i = 0; i < n; i++)
        if (atomic_load(&c.runs[i]) != 1) {
            FAIL("parallel n=%d threads=%d: task %d ran %d times", n, threads, i,
                 atomic_load(&c.runs[i]));
            break;
        }
    if (atomic_load(&c.bad_id))
        FAIL("parallel n=%d threads=%d: a thread id outside [0, %d)", n, threads, c.max_id);
    if (atomic_load(&c.overlap))
        FAIL("parallel n=%d threads=%d: two tasks at once on one thread id", n, threads);
    if (atomic_load(&c.wide))
        FAIL("parallel n=%d threads=%d: a task may run kernels on more than one thread", n,
             threads);
    if (omp_get_max_threads() != llm_kernels_threads())
        FAIL("parallel n=%d threads=%d: the caller's thread count changed (%d, was %d)", n,
             threads, omp_get_max_threads(), llm_kernels_threads());
    free(c.runs);
    free(c.busy);
}

/* The sampling, head and dropout kernels of one CPU level. */
static int test_level(const llm_kernels *f, const llm_kernels *r)
{
    if (!f->logits_max || !f->softmax_weights || !f->find_first || !f->linear_f64 ||
        !f->dropout || !r->logits_max || !r->softmax_weights || !r->find_first ||
        !r->linear_f64 || !r->dropout) {
        printf("FAIL an entry of the sampling block is NULL in the cpu or ref table\n");
        return 1;
    }
    test_logits_max(f, r);
    test_softmax_weights(f, r);
    test_find_first(f, r);
    test_linear_f64(f, r, 1, 1, 1);
    test_linear_f64(f, r, 3, 17, 2);
    test_linear_f64(f, r, 8, 288, 5);
    static const double ps[] = {0.0, 0.1, 0.5, 0.9};
    for (int i = 0; i < 4; i++)
        for (int j = 0; j < 2; j++) {
            const llm_kernels *k = j ? r : f;
            test_dropout(k, 1, ps[i], 12345);
            test_dropout(k, 1001, ps[i], 0xdeadbeefcafef00dull);
            test_dropout(k, 100003, ps[i], (uint64_t)i);
        }
    return 0;
}

int main(void)
{
    const llm_kernels *r = llm_kernels_ref();
    for (const char *const *lv = llm_kernels_cpu_levels(0); *lv; lv++) {
        const llm_kernels *f = llm_kernels_cpu_for(*lv);
        if (!f) {
            printf("level %s: not supported by this CPU, skipped\n", *lv);
            continue;
        }
        printf("level %s\n", *lv);   /* the failures below are its */
        if (test_level(f, r) != 0)
            return 1;
    }
    llm_kernels_set_threads(2);
    static const int tasks[] = {0, 1, 3, 5, 100};
    static const int threads[] = {1, 2, 8, 0};
    for (int i = 0; i < 5; i++)
        for (int j = 0; j < 4; j++)
            test_parallel(tasks[i], threads[j]);
    llm_kernels_set_threads(1);
    test_parallel(10, 0);
    if (failures) {
        printf("%d check(s) failed\n", failures);
        return 1;
    }
    printf("all sampling, head and dropout kernel checks passed\n");
    return 0;
}
