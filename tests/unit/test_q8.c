/* test_q8.c: the int8 (Q8_0) kernels of every CPU level this machine runs
 * against the reference: quantize_q8 and matmul_rows_q8 give the same bits
 * (the order of the float sums is their contract), on odd shapes (a short
 * last block, fewer than 8 blocks, 8 and 9 blocks, few and many rows),
 * through a map, with every row alone equal to the same row in a batch
 * and under 1 and 2
 * threads; the quantization's round-trip error is within half a step of
 * each block; the product is within the bound its quantization errors
 * allow of the exact product; special values (zero, subnormal, inf, NaN
 * blocks) follow the rule of kernels.h. */
#include <float.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kernels.h"

#define TESTRAND_SEED 0x5851f42d4c957f2dull
#include "testrand.h"

static int failures;

#define FAIL(...) do { failures++; printf("FAIL "); printf(__VA_ARGS__); printf("\n"); } while (0)

static int *shuffled(int R)
{
    int *p = xmalloc((size_t)R * sizeof *p);
    for (int i = 0; i < R; i++)
        p[i] = i;
    for (int i = R - 1; i > 0; i--) {
        int j = (int)(next_u64() % (uint64_t)(i + 1)), t = p[i];
        p[i] = p[j];
        p[j] = t;
    }
    return p;
}

/* Values of mixed magnitude: most in [-1, 1), some blocks scaled far down
 * or up, so that the scales differ from block to block. */
static float *values(size_t n)
{
    float *x = xmalloc(n * sizeof *x);
    for (size_t i = 0; i < n; i++)
        x[i] = uniform();
    for (size_t i = 0; i + 32 <= n; i += 32) {
        float s = (float)ldexp(1.0, (int)(next_u64() % 41) - 20);
        for (size_t j = i; j < i + 32; j++)
            x[j] *= s;
    }
    return x;
}

static int nblocks(int IC)
{
    return (IC + 31) / 32;
}

/* quantize_q8 of N rows map[n] of x (ldi apart) on f and r: the same
 * bits; the return values agree; every value is within half a step of
 * its block (|x - q d| <= d / 2, up to the rounding of 1 / d). */
static void test_quantize(const llm_kernels *f, const llm_kernels *r, int N, int IC)
{
    int R = N + 2, nb = nblocks(IC);
    size_t ldi = (size_t)IC + 3;
    float *x = values((size_t)R * ldi);
    int *map = shuffled(R);
    size_t nq = (size_t)N * nb * 32, nd = (size_t)N * nb;
    int8_t *q1 = xmalloc(nq), *q2 = xmalloc(nq);
    float *d1 = xmalloc(nd * sizeof *d1), *d2 = xmalloc(nd * sizeof *d2);
    memset(q1, 0x55, nq);   /* the padding must be written too */
    memset(q2, 0x33, nq);
    int b1 = f->quantize_q8(q1, d1, x, ldi, map, N, IC);
    int b2 = r->quantize_q8(q2, d2, x, ldi, map, N, IC);
    if (b1 != N || b2 != N)
        FAIL("quantize_q8 N=%d IC=%d: finite rows reported bad (%d, %d)", N, IC, b1, b2);
    if (memcmp(q1, q2, nq) != 0 || memcmp(d1, d2, nd * sizeof *d1) != 0)
        FAIL("quantize_q8 N=%d IC=%d: not bitwise identical to ref", N, IC);
    for (int n = 0; n < N; n++)
        for (int b = 0; b < nb; b++) {
            float d = d2[(size_t)n * nb + b];
            for (int k = 0; k < 32; k++) {
                int i = 32 * b + k, qv = q2[((size_t)n * nb + b) * 32 + k];
                if (qv < -127 || qv > 127) {
                    FAIL("quantize_q8 IC=%d: q = %d outside [-127, 127]", IC, qv);
                    return;
                }
                if (i >= IC) {
                    if (qv != 0)
                        FAIL("quantize_q8 IC=%d: padding %d is %d, not 0", IC, i, qv);
                    continue;
                }
                double v = x[(size_t)map[n] * ldi + i], e = fabs(v - (double)qv * d);
                /* x * (1/d) is x / d within two roundings of a value
                 * up to 127: 127 * 2^-22 steps. */
                if (!(e <= d * (0.5 + 127 * 0x1p-22))) {
                    FAIL("quantize_q8 IC=%d row %d [%d]: %.9g -> %d x %.9g, error %.3g > "
                         "d/2", IC, n, i, v, qv, (double)d, e);
                    return;
                }
            }
        }
    free(x); free(map); free(q1); free(q2); free(d1); free(d2);
}

/* Blocks of zeros, subnormals, an inf and a NaN. */
static void test_special(const llm_kernels *f, const llm_kernels *r)
{
    enum { IC = 40, N = 4 };
    float x[N * IC];
    for (int i = 0; i < N * IC; i++)
        x[i] = 0.25f * (float)(i % 7) - 0.7f;
    for (int i = 0; i < IC; i++)   /* row 0: subnormals and zeros */
        x[i] = i % 3 ? -FLT_MIN * 0.5f * (float)(i % 5) : 0.0f;
    x[1 * IC + 35] = INFINITY;   /* row 1, in the short block */
    x[3 * IC + 2] = NAN;         /* row 3, first block */
    x[2 * IC + 7] = -1e30f;      /* row 2: a large value */
    int nb = nblocks(IC);
    for (int t = 0; t < 2; t++) {
        const llm_kernels *k = t ? r : f;
        int8_t q[N * 2 * 32];
        float d[N * 2];
        int bad = k->quantize_q8(q, d, x, IC, NULL, N, IC);
        if (bad != 1)
            FAIL("%s quantize_q8: first non-finite row %d, want 1", k->name, bad);
        for (int i = 0; i < 64; i++)
            if (d[i / 32] != 0.0f || q[i] != 0) {
                FAIL("%s quantize_q8: a block of subnormals is not zero", k->name);
                break;
            }
        if (!isnan(d[1 * nb + 1]) || !isnan(d[3 * nb]) || isnan(d[1 * nb]) || isnan(d[3 * nb + 1]))
            FAIL("%s quantize_q8: only the blocks with inf or NaN get a NaN scale", k->name);
        if (d[2 * nb] != 1e30f / 127.0f || q[2 * nb * 32 + 7] != -127)
            FAIL("%s quantize_q8: -1e30 gives d %.9g, q %d", k->name, (double)d[2 * nb],
                 q[2 * nb * 32 + 7]);
        /* A NaN scale makes its row's products NaN, and only its row's. */
        float w[3 * IC], out[N * 3];
        for (int i = 0; i < 3 * IC; i++)
            w[i] = uniform();
        int8_t wq[3 * 2 * 32];
        float wd[3 * 2];
        k->quantize_q8(wq, wd, w, IC, NULL, 3, IC);
        k->matmul_rows_q8(out, 3, NULL, q, d, wq, wd, N, IC, 3);
        for (int o = 0; o < 3; o++)
            if (out[o] != 0.0f || !isnan(out[3 + o]) || !isfinite(out[6 + o]) ||
                !isnan(out[9 + o]))
                FAIL("%s matmul_rows_q8: row outputs %g %g %g %g, want 0 NaN finite NaN",
                     k->name, out[o], out[3 + o], out[6 + o], out[9 + o]);
    }
}

/* matmul_rows_q8 on f against r, bit for bit, through a map, rows outside
 * it untouched, each row alone as in the batch; and within the error that
 * quantization allows of the exact product of the float inputs. */
static void test_product(const llm_kernels *f, const llm_kernels *r, int N, int IC, int OC)
{
    int R = N + 3, nb = nblocks(IC);
    size_t ldi = (size_t)IC + 5, ldo = (size_t)OC + 3;
    float *x = values((size_t)R * ldi), *w = values((size_t)OC * IC);
    int *map = shuffled(R);
    int8_t *xq = xmalloc((size_t)N * nb * 32), *wq = xmalloc((size_t)OC * nb * 32);
    float *xd = xmalloc((size_t)N * nb * sizeof *xd), *wd = xmalloc((size_t)OC * nb * sizeof *wd);
    float *o1 = values((size_t)R * ldo), *o2 = xmalloc((size_t)R * ldo * sizeof *o2);
    float *o3 = xmalloc((size_t)R * ldo * sizeof *o3), *before = xmalloc((size_t)R * ldo * sizeof *before);
    memcpy(o2, o1, (size_t)R * ldo * sizeof *o2);
    memcpy(o3, o1, (size_t)R * ldo * sizeof *o3);
    memcpy(before, o1, (size_t)R * ldo * sizeof *o3);
    r->quantize_q8(xq, xd, x, ldi, map, N, IC);
    r->quantize_q8(wq, wd, w, (size_t)IC, NULL, OC, IC);
    f->matmul_rows_q8(o1, ldo, map, xq, xd, wq, wd, N, IC, OC);
    r->matmul_rows_q8(o2, ldo, map, xq, xd, wq, wd, N, IC, OC);
    if (memcmp(o1, o2, (size_t)R * ldo * sizeof *o1) != 0)
        FAIL("matmul_rows_q8 N=%d IC=%d OC=%d: not bitwise identical to ref", N, IC, OC);
    for (int n = N; n < R; n++)
        if (memcmp(o1 + (size_t)map[n] * ldo, before + (size_t)map[n] * ldo, ldo * sizeof *o1))
            FAIL("matmul_rows_q8 N=%d IC=%d OC=%d: a row outside the map was written", N, IC,
                 OC);
    for (int n = 0; n < N; n++)
        f->matmul_rows_q8(o3, ldo, map + n, xq + (size_t)n * nb * 32, xd + (size_t)n * nb, wq,
                          wd, 1, IC, OC);
    if (memcmp(o3, o1, (size_t)R * ldo * sizeof *o1) != 0)
        FAIL("matmul_rows_q8 N=%d IC=%d OC=%d: a row alone differs from the batch", N, IC, OC);
    /* |got - exact| <= sum_k |w||ex| + |x||ew| + |ew||ex| with the
     * quantization errors e <= d/2 of each block, plus float rounding. */
    for (int n = 0; n < N; n++)
        for (int o = 0; o < OC; o++) {
            const float *xr = x + (size_t)map[n] * ldi, *wr = w + (size_t)o * IC;
            double exact = 0, bound = 0, mag = 0;
            for (int k = 0; k < IC; k++) {
                double ex = 0.5 * xd[(size_t)n * nb + k / 32];
                double ew = 0.5 * wd[(size_t)o * nb + k / 32];
                exact += (double)xr[k] * wr[k];
                bound += fabs(wr[k]) * ex + fabs(xr[k]) * ew + ex * ew;
                mag += fabs((double)xr[k] * wr[k]) + (fabs(wr[k]) + ew) * ex + fabs(xr[k]) * ew;
            }
            double got = o1[(size_t)map[n] * ldo + o];
            if (!(fabs(got - exact) <= bound * 1.001 + 1e-5 * mag)) {
                FAIL("matmul_rows_q8 N=%d IC=%d OC=%d (%d, %d): %.9g, exact %.9g, bound %.3g",
                     N, IC, OC, n, o, got, exact, bound);
                n = N;
                break;
            }
        }
    free(x); free(w); free(map); free(xq); free(wq); free(xd); free(wd);
    free(o1); free(o2); free(o3); free(before);
}

static void test_level(const llm_kernels *f, const llm_kernels *r)
{
    static const int shapes[][3] = {
        { 1, 1, 1 }, { 1, 32, 5 }, { 2, 13, 5 }, { 1, 33, 7 }, { 3, 256, 64 },
        { 7, 288, 17 }, { 50, 40, 9 }, { 4, 576, 131 }, { 53, 1000, 70 }, { 1, 1536, 33 },
        /* 24 rows and more take q8.c's repacking path where there is VNNI:
         * 9 and 18 blocks (the tree and the blocks after it), output rows
         * that 16 does not divide. */
        { 30, 288, 37 }, { 24, 576, 131 }, { 40, 100, 16 },
    };
    for (int threads = 1; threads <= 2; threads++) {
        llm_kernels_set_threads(threads);
        test_special(f, r);
        for (size_t i = 0; i < sizeof shapes / sizeof shapes[0]; i++) {
            test_quantize(f, r, shapes[i][0], shapes[i][1]);
            test_product(f, r, shapes[i][0], shapes[i][1], shapes[i][2]);
        }
        test_quantize(f, r, 300, 200);   /* enough values for threads */
    }
}

int main(void)
{
    const llm_kernels *r = llm_kernels_ref();
    if (!r->quantize_q8 || !r->matmul_rows_q8) {
        printf("FAIL the ref table has no q8 kernels\n");
        return 1;
    }
    for (const char *const *lv = llm_kernels_cpu_levels(0); *lv; lv++) {
        const llm_kernels *k = llm_kernels_cpu_for(*lv);
        if (!k) {
            printf("level %s: not supported by this CPU, skipped\n", *lv);
            continue;
        }
        int before = failures;
        test_level(k, r);
        printf("level %s: %s\n", *lv, failures == before ? "passed" : "FAILED");
    }
    const llm_kernels *g = llm_kernels_guarded();
    if (!g->quantize_q8 || !g->matmul_rows_q8)
        FAIL("the guarded table lacks the q8 kernels");
    if (failures) {
        printf("%d check(s) failed\n", failures);
        return 1;
    }
    printf("all q8 kernel checks passed\n");
    return 0;
}
