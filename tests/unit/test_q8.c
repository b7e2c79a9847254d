/* test_q8.c: the int8 kernels of every CPU level this machine runs against
 * the reference: quantize_q8 (weights: int8 blocks with a scale and an
 * offset), quantize_q16 (inputs: int16 blocks) and matmul_rows_q8 give the
 * same bits (the order of the float sums is their contract), on odd shapes
 * (a short last block, fewer than 8 blocks, 8 and 9 blocks, few and many
 * rows, the repacking path), through a map, with every row alone equal to
 * the same row in a batch and under 1 and 2 threads. (ref.c and q8.c
 * share the scalar block rules, q8_rule.h, so for the weights the bitwise
 * test covers the threads and the layout; the rule itself is held to what
 * follows.) Against independent arithmetic: every quantized value within half a step of its input; the
 * weights' offset form chosen only where it has the smaller error, and
 * giving back blocks of a 4-bit grid with an offset (dequantized Q4_1)
 * and the symmetric form blocks of an int8 grid (Q8_0) nearly exactly; the
 * input sums equal to the scale times the sum of the int16s; the product
 * within the bound its quantization errors allow of the exact product of
 * the float inputs; special values (zero, subnormal, inf, NaN blocks)
 * follow the rules of kernels.h. The amx level's int8 tiles run here too
 * on CPUs with AVX512_BF16, over a model of the tile instructions (the
 * test-only level amxemu), as no machine this project is tested on has
 * AMX. */
#include <float.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kernels.h"

/* Present where the build has the amx level (Makefile: its amxemu q8.o). */
typedef int quantize_q8_fn(void *w, const float *inp, size_t ldi, const int *map, int N, int IC);
typedef int quantize_q16_fn(int16_t *q, float *d, float *s, const float *inp, size_t ldi,
                            const int *map, int N, int IC);
typedef void matmul_rows_q8_fn(float *out, size_t ldo, const int *map, const int16_t *xq,
                               const float *xd, const float *xs, const void *w, int N, int IC,
                               int OC);
extern quantize_q8_fn llm_cpu_quantize_q8_amxemu __attribute__((weak));
extern quantize_q16_fn llm_cpu_quantize_q16_amxemu __attribute__((weak));
extern matmul_rows_q8_fn llm_cpu_matmul_rows_q8_amxemu __attribute__((weak));

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

/* Values of mixed magnitude, block by block (of 32): most in [-1, 1),
 * some shifted to one sign, some on a 4-bit grid with an offset (d * j +
 * m, j in [0, 15]: dequantized Q4_1), some on an int8 grid (d * q, q in
 * [-127, 127] with 127 or -127 present: dequantized Q8_0), each block
 * scaled by its own power of 2, so that the scales differ. */
static float *values(size_t n)
{
    float *x = xmalloc(n * sizeof *x);
    for (size_t i = 0; i < n; i += 32) {
        size_t e = n - i < 32 ? n : i + 32;
        float s = (float)ldexp(1.0, (int)(next_u64() % 41) - 20);
        int kind = (int)(next_u64() % 5);
        float d = 0.01f + 0.1f * (uniform() + 1.0f), m0 = -8.0f * d + 0.3f * d * uniform();
        for (size_t j = i; j < e; j++) {
            float v = uniform();
            if (kind == 1)
                v = 0.5f * v + 1.5f;
            else if (kind == 2)   /* both ends present, as Q4_1 makes them */
                v = d * (float)(j == i ? 0 : j == i + 1 ? 15 : (int)(next_u64() % 16)) + m0;
            else if (kind == 3)
                v = d * (float)(j == i ? 127 : (int)(next_u64() % 255) - 127);
            x[j] = v * s;
        }
    }
    return x;
}

static int nblocks(int IC)
{
    return (IC + 31) / 32;
}

/* Block b of the int8 weight rows w (nb blocks a row), row n: its int8s,
 * scale and offset (kernels.h's layout). */
static const int8_t *wq_of(const void *w, int nb, int n, int b)
{
    return (const int8_t *)w + (size_t)n * nb * LLM_Q8_BYTES + llm_q8_qoff(nb, b);
}

static float wd_of(const void *w, int nb, int n, int b)
{
    float d;
    memcpy(&d, (const char *)w + (size_t)n * nb * LLM_Q8_BYTES + llm_q8_doff(nb, b), sizeof d);
    return d;
}

static float wm_of(const void *w, int nb, int n, int b)
{
    float m;
    memcpy(&m, (const char *)w + (size_t)n * nb * LLM_Q8_BYTES + llm_q8_moff(nb, b), sizeof m);
    return m;
}

/* Whether the 32 values x are on a 4-bit grid from their least to their
 * largest value (dequantized Q4_1) or an int8 grid up to their largest
 * magnitude (Q8_0): values()'s kinds 2 and 3. */
static int on_grid(const float *x, int len)
{
    double lo = x[0], hi = x[0], amax = 0;
    for (int k = 0; k < len; k++) {
        lo = fmin(lo, x[k]);
        hi = fmax(hi, x[k]);
        amax = fmax(amax, fabs(x[k]));
    }
    if (len < 32 || !(hi > lo))
        return 0;
    int q4 = 1, q8 = 1;
    for (int k = 0; k < len; k++) {
        double t4 = (x[k] - lo) / ((hi - lo) / 15), t8 = x[k] / (amax / 127);
        q4 &= fabs(t4 - nearbyint(t4)) < 1e-4;
        q8 &= fabs(t8 - nearbyint(t8)) < 1e-4;
    }
    return q4 || q8;
}

/* quantize_q8 (weights) of N rows map[n] of x (ldi apart) on f and r: the
 * same bits and return values; every value within half a step of its
 * input (|x - (q d + m)| <= d / 2, up to float roundings); the offset
 * form (m != 0) only with a smaller squared error than the symmetric
 * form's, computed here; blocks on a grid given back within 1e-5 of the
 * block's spread. */
static void test_quantize(const llm_kernels *f, const llm_kernels *r, int N, int IC)
{
    int R = N + 2, nb = nblocks(IC);
    size_t ldi = (size_t)IC + 3;
    float *x = values((size_t)R * ldi);
    int *map = shuffled(R);
    size_t nw = (size_t)N * nb * LLM_Q8_BYTES;
    char *w1 = xmalloc(nw), *w2 = xmalloc(nw);
    memset(w1, 0x55, nw);   /* the padding must be written too */
    memset(w2, 0x33, nw);
    int b1 = f->quantize_q8(w1, x, ldi, map, N, IC);
    int b2 = r->quantize_q8(w2, x, ldi, map, N, IC);
    if (b1 != N || b2 != N)
        FAIL("quantize_q8 N=%d IC=%d: finite rows reported bad (%d, %d)", N, IC, b1, b2);
    if (memcmp(w1, w2, nw))
        FAIL("quantize_q8 N=%d IC=%d: not bitwise identical to ref", N, IC);
    for (int n = 0; n < N; n++)
        for (int b = 0; b < nb; b++) {
            float d = wd_of(w2, nb, n, b), m = wm_of(w2, nb, n, b);
            const float *xb = x + (size_t)map[n] * ldi + 32 * b;
            const int8_t *qb = wq_of(w2, nb, n, b);
            int len = IC - 32 * b < 32 ? IC - 32 * b : 32;
            double amax = 0, lo = xb[0], hi = xb[0], err = 0, sym = 0;
            for (int k = 0; k < len; k++) {
                amax = fmax(amax, fabs(xb[k]));
                lo = fmin(lo, xb[k]);
                hi = fmax(hi, xb[k]);
            }
            for (int k = 0; k < 32; k++) {
                if (k >= len) {
                    if (qb[k] != 0)
                        FAIL("quantize_q8 IC=%d: padding %d is %d, not 0", IC, 32 * b + k, qb[k]);
                    continue;
                }
                double v = xb[k], e = fabs(v - ((double)qb[k] * d + m));
                double ds = (double)(float)(amax / 127.0), t = v - ds * nearbyint(v / ds);
                err += e * e;
                sym += t * t;
                /* the rounding of 1/d, of x - m and of m: a few ulps of
                 * values up to 255 steps */
                if (!(e <= d * (0.5 + 255 * 0x1p-21))) {
                    FAIL("quantize_q8 IC=%d row %d [%d]: %.9g -> %d x %.9g + %.9g, error "
                         "%.3g > d/2", IC, n, 32 * b + k, v, qb[k], (double)d, (double)m, e);
                    goto done;
                }
            }
            if (m != 0.0f && !(err <= sym * (1 + 1e-6)))
                FAIL("quantize_q8 IC=%d row %d block %d: the offset form's error %.3g is not "
                     "below the symmetric form's %.3g", IC, n, b, err, sym);
            if (on_grid(xb, len) && !(sqrt(err / len) <= 1e-5 * (hi - lo)))
                FAIL("quantize_q8 IC=%d row %d block %d: a grid block comes back with rms "
                     "error %.3g of its spread %.3g", IC, n, b, sqrt(err / len), hi - lo);
        }
done:
    free(x); free(map); free(w1); free(w2);
}

/* quantize_q16 (inputs) likewise: the same bits; |x - q d| <= d / 2; s = d
 * times the exact sum of the block's q. */
static void test_quantize16(const llm_kernels *f, const llm_kernels *r, int N, int IC)
{
    int R = N + 2, nb = nblocks(IC);
    size_t ldi = (size_t)IC + 3;
    float *x = values((size_t)R * ldi);
    int *map = shuffled(R);
    size_t nq = (size_t)N * nb * 32, nd = (size_t)N * nb;
    int16_t *q1 = xmalloc(nq * sizeof *q1), *q2 = xmalloc(nq * sizeof *q2);
    float *d1 = xmalloc(nd * sizeof *d1), *d2 = xmalloc(nd * sizeof *d2);
    float *s1 = xmalloc(nd * sizeof *s1), *s2 = xmalloc(nd * sizeof *s2);
    memset(q1, 0x55, nq * sizeof *q1);
    memset(q2, 0x33, nq * sizeof *q2);
    int b1 = f->quantize_q16(q1, d1, s1, x, ldi, map, N, IC);
    int b2 = r->quantize_q16(q2, d2, s2, x, ldi, map, N, IC);
    if (b1 != N || b2 != N)
        FAIL("quantize_q16 N=%d IC=%d: finite rows reported bad (%d, %d)", N, IC, b1, b2);
    if (memcmp(q1, q2, nq * sizeof *q1) || memcmp(d1, d2, nd * sizeof *d1) ||
        memcmp(s1, s2, nd * sizeof *s1))
        FAIL("quantize_q16 N=%d IC=%d: not bitwise identical to ref", N, IC);
    for (int n = 0; n < N; n++)
        for (int b = 0; b < nb; b++) {
            float d = d2[(size_t)n * nb + b];
            const int16_t *qb = q2 + ((size_t)n * nb + b) * 32;
            long sum = 0;
            for (int k = 0; k < 32; k++) {
                int i = 32 * b + k;
                sum += qb[k];
                if (qb[k] < -32767) {
                    FAIL("quantize_q16 IC=%d: q = %d below -32767", IC, qb[k]);
                    goto done;
                }
                if (i >= IC) {
                    if (qb[k] != 0)
                        FAIL("quantize_q16 IC=%d: padding %d is %d, not 0", IC, i, qb[k]);
                    continue;
                }
                double v = x[(size_t)map[n] * ldi + i], e = fabs(v - (double)qb[k] * d);
                if (!(e <= d * (0.5 + 32767 * 0x1p-22))) {
                    FAIL("quantize_q16 IC=%d row %d [%d]: %.9g -> %d x %.9g, error %.3g > d/2",
                         IC, n, i, v, qb[k], (double)d, e);
                    goto done;
                }
            }
            if (s2[(size_t)n * nb + b] != d * (float)sum)
                FAIL("quantize_q16 IC=%d row %d block %d: sum %.9g, want %.9g", IC, n, b,
                     (double)s2[(size_t)n * nb + b], (double)(d * (float)sum));
        }
done:
    free(x); free(map); free(q1); free(q2); free(d1); free(d2); free(s1); free(s2);
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
        _Alignas(16) char wx[N * 2 * LLM_Q8_BYTES];
        int16_t q16[N * 2 * 32];
        float d16[N * 2], s16[N * 2];
        int bad = k->quantize_q8(wx, x, IC, NULL, N, IC);
        int bad16 = k->quantize_q16(q16, d16, s16, x, IC, NULL, N, IC);
        if (bad != 1 || bad16 != 1)
            FAIL("%s quantize_q8 / q16: first non-finite row %d / %d, want 1", k->name, bad,
                 bad16);
        for (int i = 0; i < 64; i++)
            if (wd_of(wx, nb, 0, i / 32) != 0.0f || wm_of(wx, nb, 0, i / 32) != 0.0f ||
                wq_of(wx, nb, 0, i / 32)[i % 32] != 0 || d16[i / 32] != 0.0f ||
                s16[i / 32] != 0.0f || q16[i] != 0) {
                FAIL("%s quantize_q8 / q16: a block of subnormals is not zero", k->name);
                break;
            }
        if (!isnan(wd_of(wx, nb, 1, 1)) || !isnan(wd_of(wx, nb, 3, 0)) ||
            isnan(wd_of(wx, nb, 1, 0)) || isnan(wd_of(wx, nb, 3, 1)) || !isnan(d16[1 * nb + 1]) || !isnan(d16[3 * nb]) ||
            isnan(d16[1 * nb]) || isnan(d16[3 * nb + 1]) || !isnan(s16[3 * nb]))
            FAIL("%s quantize_q8 / q16: only the blocks with inf or NaN get a NaN scale",
                 k->name);
        if (d16[2 * nb] != 1e30f / 32767.0f || q16[2 * nb * 32 + 7] != -32767)
            FAIL("%s quantize_q16: -1e30 gives d %.9g, q %d", k->name, (double)d16[2 * nb],
                 q16[2 * nb * 32 + 7]);
        /* A NaN scale makes its row's products NaN, and only its row's;
         * NaN weights make their column NaN. */
        float w[3 * IC], out[N * 3];
        for (int i = 0; i < 3 * IC; i++)
            w[i] = uniform();
        _Alignas(16) char wq[3 * 2 * LLM_Q8_BYTES];
        k->quantize_q8(wq, w, IC, NULL, 3, IC);
        k->matmul_rows_q8(out, 3, NULL, q16, d16, s16, wq, N, IC, 3);
        for (int o = 0; o < 3; o++)
            if (out[o] != 0.0f || !isnan(out[3 + o]) || !isfinite(out[6 + o]) ||
                !isnan(out[9 + o]))
                FAIL("%s matmul_rows_q8: row outputs %g %g %g %g, want 0 NaN finite NaN",
                     k->name, out[o], out[3 + o], out[6 + o], out[9 + o]);
        w[IC + 3] = NAN;
        if (k->quantize_q8(wq, w, IC, NULL, 3, IC) != 1)
            FAIL("%s quantize_q8: the NaN weight's row not reported", k->name);
        k->matmul_rows_q8(out, 3, NULL, q16, d16, s16, wq, N, IC, 3);
        if (!isnan(out[6 + 1]) || !isfinite(out[6 + 0]) || !isfinite(out[6 + 2]))
            FAIL("%s matmul_rows_q8: a NaN weight gives %g %g %g, want finite NaN finite",
                 k->name, out[6], out[7], out[8]);
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
    int16_t *xq = xmalloc((size_t)N * nb * 32 * sizeof *xq);
    char *wq = xmalloc((size_t)OC * nb * LLM_Q8_BYTES);
    float *xd = xmalloc((size_t)N * nb * sizeof *xd), *xs = xmalloc((size_t)N * nb * sizeof *xs);
    float *o1 = values((size_t)R * ldo), *o2 = xmalloc((size_t)R * ldo * sizeof *o2);
    float *o3 = xmalloc((size_t)R * ldo * sizeof *o3), *before = xmalloc((size_t)R * ldo * sizeof *before);
    memcpy(o2, o1, (size_t)R * ldo * sizeof *o2);
    memcpy(o3, o1, (size_t)R * ldo * sizeof *o3);
    memcpy(before, o1, (size_t)R * ldo * sizeof *o3);
    r->quantize_q16(xq, xd, xs, x, ldi, map, N, IC);
    r->quantize_q8(wq, w, (size_t)IC, NULL, OC, IC);
    f->matmul_rows_q8(o1, ldo, map, xq, xd, xs, wq, N, IC, OC);
    r->matmul_rows_q8(o2, ldo, map, xq, xd, xs, wq, N, IC, OC);
    if (memcmp(o1, o2, (size_t)R * ldo * sizeof *o1) != 0)
        FAIL("matmul_rows_q8 N=%d IC=%d OC=%d: not bitwise identical to ref", N, IC, OC);
    for (int n = N; n < R; n++)
        if (memcmp(o1 + (size_t)map[n] * ldo, before + (size_t)map[n] * ldo, ldo * sizeof *o1))
            FAIL("matmul_rows_q8 N=%d IC=%d OC=%d: a row outside the map was written", N, IC,
                 OC);
    for (int n = 0; n < N; n++)
        f->matmul_rows_q8(o3, ldo, map + n, xq + (size_t)n * nb * 32, xd + (size_t)n * nb,
                          xs + (size_t)n * nb, wq, 1, IC, OC);
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
                double ew = 0.5 * wd_of(wq, nb, o, k / 32);
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
    free(x); free(w); free(map); free(xq); free(wq); free(xd); free(xs);
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
            test_quantize16(f, r, shapes[i][0], shapes[i][1]);
            test_product(f, r, shapes[i][0], shapes[i][1], shapes[i][2]);
        }
        test_quantize(f, r, 300, 200);   /* enough values for threads */
        test_quantize16(f, r, 300, 200);
    }
}

int main(void)
{
    const llm_kernels *r = llm_kernels_ref();
    if (!r->quantize_q8 || !r->quantize_q16 || !r->matmul_rows_q8) {
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
    /* The amx level's int8 tiles over the model of the instructions
     * (kernels/cpu/amx_emulate.h): avx512's table with amxemu's q8
     * kernels, where the CPU runs the avx512 level with AVX512_BF16. */
    const llm_kernels *avx512 = llm_kernels_cpu_for("avx512");
    __builtin_cpu_init();
    if (llm_cpu_matmul_rows_q8_amxemu && avx512 && __builtin_cpu_supports("avx512bf16")) {
        llm_kernels emu = *avx512;
        emu.name = "amxemu";
        emu.quantize_q8 = llm_cpu_quantize_q8_amxemu;
        emu.quantize_q16 = llm_cpu_quantize_q16_amxemu;
        emu.matmul_rows_q8 = llm_cpu_matmul_rows_q8_amxemu;
        int before = failures;
        test_level(&emu, r);
        printf("level amxemu: %s\n", failures == before ? "passed" : "FAILED");
    } else {
        printf("level amxemu: %s, skipped\n", llm_cpu_matmul_rows_q8_amxemu
                                                   ? "this CPU lacks AVX-512 or AVX512_BF16"
                                                   : "not in this build");
    }
    const llm_kernels *g = llm_kernels_guarded();
    if (!g->quantize_q8 || !g->quantize_q16 || !g->matmul_rows_q8)
        FAIL("the guarded table lacks the q8 kernels");
    if (failures) {
        printf("%d check(s) failed\n", failures);
        return 1;
    }
    printf("all q8 kernel checks passed\n");
    return 0;
}
