/* test_kernels.c: every fast CPU kernel against the reference kernel on
 * random inputs of several shapes (odd ones included), and every reference
 * backward against central finite differences of its forward. The
 * inference kernels, whose order of summation is their contract, must
 * equal the reference bit for bit, and give every row the same bits in
 * any batch. Every CPU level this machine runs is tested; the others are
 * skipped, saying so. */
#include <math.h>
#include <omp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "half.h"
#include "kernels.h"

#define TESTRAND_SEED 0x9e3779b97f4a7c15ull
#include "testrand.h"

static int failures;

/* n floats, uninitialised; exits when out of memory. */
static float *floats(size_t n)
{
    float *p = malloc((n ? n : 1) * sizeof *p);
    if (!p) {
        fprintf(stderr, "out of memory\n");
        exit(1);
    }
    return p;
}

static float *rnd(size_t n)
{
    float *p = floats(n);
    for (size_t i = 0; i < n; i++)
        p[i] = uniform();
    return p;
}

/* Scratch for a kernel: NaN throughout, so that a kernel reading what it
 * did not write shows; and drawing nothing from the random stream, whose
 * later draws would otherwise move with the scratch's size (the thread
 * count, the level). */
static float *scratch_of(size_t n)
{
    float *p = floats(n);
    for (size_t i = 0; i < n; i++)
        p[i] = NAN;
    return p;
}

static float *copy_of(const float *a, size_t n)
{
    float *p = floats(n);
    memcpy(p, a, n * sizeof *p);
    return p;
}

/* Reports the worst element when any |got - ref| > atol + rtol*|ref|. */
static void check(const char *what, const float *got, const float *ref,
                  size_t n, double atol, double rtol)
{
    size_t bad = 0, worst = 0;
    double wexcess = -1;
    for (size_t i = 0; i < n; i++) {
        double d = fabs((double)got[i] - ref[i]), lim = atol + rtol * fabs(ref[i]);
        if (!(d <= lim)) {
            bad++;
            if (d - lim > wexcess || isnan(d)) {
                wexcess = d - lim;
                worst = i;
            }
        }
    }
    if (bad) {
        failures++;
        printf("FAIL %s: %zu of %zu differ; worst [%zu] got %.9g want %.9g\n",
               what, bad, n, worst, got[worst], ref[worst]);
    }
}

/* A product of bf16-rounded inputs against a reference that rounds the
 * same inputs from values it computed apart (probabilities, dS): a value
 * within a float's rounding of a bf16 boundary may round the other way on
 * one side, an error of 2^-8 of that term. Such a weight moves every value
 * of its row of hd (about one weight in 20,000 does), so: all within that
 * error (2e-3 + 1e-2 |ref|), and all but a few rows in a thousand as close
 * as fp32's products (1e-5 + 1e-4 |ref|). */
static void check_bf16(const char *what, const float *got, const float *ref, size_t n,
                       int hd)
{
    size_t loose = 0, rows = n / (size_t)hd;
    for (size_t r = 0; r < rows; r++) {
        int off = 0;
        for (int i = 0; i < hd; i++) {
            size_t j = r * (size_t)hd + (size_t)i;
            off |= !(fabs((double)got[j] - ref[j]) <= 1e-5 + 1e-4 * fabs(ref[j]));
        }
        loose += (size_t)off;
    }
    check(what, got, ref, n, 2e-3, 1e-2);
    if (loose > 2 + rows / 250) {
        failures++;
        printf("FAIL %s: %zu of %zu rows beyond fp32's rounding\n", what, loose, rows);
    }
}

static void check_bits(const char *what, const float *a, const float *b, size_t n)
{
    if (memcmp(a, b, n * sizeof *a) != 0) {
        failures++;
        printf("FAIL %s: not bitwise identical\n", what);
    }
}

/* ------------------------------------------------------------ fast vs ref */

static void test_matmul(const llm_kernels *f, const llm_kernels *r, int N, int IC, int OC)
{
    char what[96];
    float *inp = rnd((size_t)N * IC), *w = rnd((size_t)OC * IC);
    float *dout = rnd((size_t)N * OC);
    float *o1 = rnd((size_t)N * OC), *o2 = rnd((size_t)N * OC);
    f->matmul_forward(o1, inp, w, N, IC, OC);
    r->matmul_forward(o2, inp, w, N, IC, OC);
    snprintf(what, sizeof what, "matmul_forward N=%d IC=%d OC=%d", N, IC, OC);
    check(what, o1, o2, (size_t)N * OC, 1e-4, 1e-4);

    float *di1 = rnd((size_t)N * IC), *di2 = rnd((size_t)N * IC);
    float *dw1 = rnd((size_t)OC * IC), *dw2 = copy_of(dw1, (size_t)OC * IC);
    f->matmul_backward(di1, dw1, dout, inp, w, N, IC, OC);
    r->matmul_backward(di2, dw2, dout, inp, w, N, IC, OC);
    snprintf(what, sizeof what, "matmul_backward dinp N=%d IC=%d OC=%d", N, IC, OC);
    check(what, di1, di2, (size_t)N * IC, 1e-4, 1e-4);
    snprintf(what, sizeof what, "matmul_backward dw N=%d IC=%d OC=%d", N, IC, OC);
    check(what, dw1, dw2, (size_t)OC * IC, 1e-4, 1e-4);

    /* Mixed precision: the same products of bf16-rounded inputs. */
    f->matmul_forward_bf16(o1, inp, w, N, IC, OC);
    r->matmul_forward_bf16(o2, inp, w, N, IC, OC);
    snprintf(what, sizeof what, "matmul_forward_bf16 N=%d IC=%d OC=%d", N, IC, OC);
    check(what, o1, o2, (size_t)N * OC, 1e-4, 1e-4);
    memcpy(dw1, dw2, (size_t)OC * IC * sizeof *dw1);
    f->matmul_backward_bf16(di1, dw1, dout, inp, w, N, IC, OC);
    r->matmul_backward_bf16(di2, dw2, dout, inp, w, N, IC, OC);
    snprintf(what, sizeof what, "matmul_backward_bf16 dinp N=%d IC=%d OC=%d", N, IC, OC);
    check(what, di1, di2, (size_t)N * IC, 1e-4, 1e-4);
    snprintf(what, sizeof what, "matmul_backward_bf16 dw N=%d IC=%d OC=%d", N, IC, OC);
    check(what, dw1, dw2, (size_t)OC * IC, 1e-4, 1e-4);
    free(inp); free(w); free(dout); free(o1); free(o2);
    free(di1); free(di2); free(dw1); free(dw2);
}

/* bf16 rounding itself, exactly: to nearest, ties to even (the bf16 values
 * near 1 are 2^-7 apart), and far from the fp32 product. */
static void test_bf16_rounding(const llm_kernels *k)
{
    static const struct { float x, want; } cases[] = {
        {1.0f + 0x1p-8f, 1.0f},                  /* tie: down to even */
        {1.0f + 3 * 0x1p-8f, 1.0f + 0x1p-6f},    /* tie: up to even */
        {1.0f + 0x1p-8f + 0x1p-20f, 1.0f + 0x1p-7f},
        {-3.0f - 0x1p-7f, -3.0f},                /* spacing 2^-6 there: tie, to even */
        {0.0f, 0.0f},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        float one = 1.0f, out = -1.0f;
        k->matmul_forward_bf16(&out, &cases[i].x, &one, 1, 1, 1);
        if (out != cases[i].want) {
            failures++;
            printf("FAIL %s matmul_forward_bf16: %.9g rounds to %.9g, want %.9g\n", k->name,
                   (double)cases[i].x, (double)out, (double)cases[i].want);
        }
    }
    int N = 8, IC = 64, OC = 8;
    float *inp = rnd((size_t)N * IC), *w = rnd((size_t)OC * IC);
    float *a = rnd((size_t)N * OC), *b = rnd((size_t)N * OC);
    k->matmul_forward(a, inp, w, N, IC, OC);
    k->matmul_forward_bf16(b, inp, w, N, IC, OC);
    double worst = 0;
    for (int i = 0; i < N * OC; i++)
        worst = fmax(worst, fabs((double)a[i] - b[i]));
    if (!(worst > 1e-4)) {   /* 8 bits: errors near 2^-9 per input */
        failures++;
        printf("FAIL %s matmul_forward_bf16: within %g of fp32: inputs not rounded?\n", k->name,
               worst);
    }
    free(inp); free(w); free(a); free(b);
}

static void test_embedding(const llm_kernels *f, const llm_kernels *r, int N, int V, int C)
{
    char what[96];
    int32_t *tok = malloc((size_t)N * sizeof *tok);
    for (int n = 0; n < N; n++)
        tok[n] = (int32_t)(next_u64() % (uint64_t)(n % 3 == 0 ? 2 : V));   /* repeats */
    float *wte = rnd((size_t)V * C), *o1 = rnd((size_t)N * C), *o2 = rnd((size_t)N * C);
    f->embedding_forward(o1, tok, wte, N, C);
    r->embedding_forward(o2, tok, wte, N, C);
    snprintf(what, sizeof what, "embedding_forward N=%d V=%d C=%d", N, V, C);
    check_bits(what, o1, o2, (size_t)N * C);
    float *dout = rnd((size_t)N * C), *d1 = rnd((size_t)V * C);
    float *d2 = copy_of(d1, (size_t)V * C);
    f->embedding_backward(d1, dout, tok, N, C);
    r->embedding_backward(d2, dout, tok, N, C);
    snprintf(what, sizeof what, "embedding_backward N=%d V=%d C=%d", N, V, C);
    check(what, d1, d2, (size_t)V * C, 1e-5, 1e-5);
    free(tok); free(wte); free(o1); free(o2); free(dout); free(d1); free(d2);
}

static void test_rmsnorm(const llm_kernels *f, const llm_kernels *r, int N, int C)
{
    char what[96];
    float *x = rnd((size_t)N * C), *w = rnd(C);
    float *o1 = rnd((size_t)N * C), *o2 = rnd((size_t)N * C), *s1 = rnd(N), *s2 = rnd(N);
    f->rmsnorm_forward(o1, s1, x, w, N, C, 1e-5f);
    r->rmsnorm_forward(o2, s2, x, w, N, C, 1e-5f);
    snprintf(what, sizeof what, "rmsnorm_forward N=%d C=%d", N, C);
    check(what, o1, o2, (size_t)N * C, 1e-5, 1e-5);
    check(what, s1, s2, N, 1e-5, 1e-5);
    float *dout = rnd((size_t)N * C), *dx1 = rnd((size_t)N * C);
    float *dx2 = copy_of(dx1, (size_t)N * C);
    float *dw1 = rnd(C), *dw2 = copy_of(dw1, C);
    f->rmsnorm_backward(dx1, dw1, dout, x, w, s2, N, C);
    r->rmsnorm_backward(dx2, dw2, dout, x, w, s2, N, C);
    snprintf(what, sizeof what, "rmsnorm_backward N=%d C=%d", N, C);
    check(what, dx1, dx2, (size_t)N * C, 1e-4, 1e-4);
    check(what, dw1, dw2, C, 1e-4, 1e-4);
    free(x); free(w); free(o1); free(o2); free(s1); free(s2);
    free(dout); free(dx1); free(dx2); free(dw1); free(dw2);
}

static void rope_tables(int T, int hd, float **c, float **s)
{
    *c = malloc((size_t)T * hd / 2 * sizeof **c);
    *s = malloc((size_t)T * hd / 2 * sizeof **s);
    for (int t = 0; t < T; t++)
        for (int i = 0; i < hd / 2; i++) {
            double a = t * pow(10000.0, -2.0 * i / hd);
            (*c)[t * hd / 2 + i] = (float)cos(a);
            (*s)[t * hd / 2 + i] = (float)sin(a);
        }
}

static void test_rope(const llm_kernels *f, const llm_kernels *r, int B, int T, int nh, int hd)
{
    char what[96];
    int stride = nh * hd + 3;   /* a tail the kernel must leave alone */
    size_t n = (size_t)B * T * stride;
    float *c, *s;
    rope_tables(T, hd, &c, &s);
    float *x1 = rnd(n), *x2 = copy_of(x1, n);
    f->rope_forward(x1, c, s, B, T, nh, hd, stride);
    r->rope_forward(x2, c, s, B, T, nh, hd, stride);
    snprintf(what, sizeof what, "rope_forward B=%d T=%d nh=%d hd=%d", B, T, nh, hd);
    check(what, x1, x2, n, 1e-6, 1e-6);
    f->rope_backward(x1, c, s, B, T, nh, hd, stride);
    r->rope_backward(x2, c, s, B, T, nh, hd, stride);
    snprintf(what, sizeof what, "rope_backward B=%d T=%d nh=%d hd=%d", B, T, nh, hd);
    check(what, x1, x2, n, 1e-6, 1e-6);
    free(c); free(s); free(x1); free(x2);
}

/* Documents of random lengths (1 to 2 * mean) packed into rows of T: the
 * start of each position's document, as the packing batcher makes it. */
static int32_t *random_starts(int B, int T, int mean)
{
    int32_t *st = malloc((size_t)B * T * sizeof *st);
    if (!st)
        abort();
    for (int b = 0; b < B; b++)
        for (int t = 0, s = 0, left = 0; t < T; t++) {
            if (left == 0) {
                s = t;
                left = 1 + (int)(rand() % (unsigned)(2 * mean));
            }
            st[(size_t)b * T + t] = s;
            left--;
        }
    return st;
}

static void test_attention(const llm_kernels *f, const llm_kernels *r,
                           int B, int T, int H, int KVH, int hd, int packed)
{
    char what[128];
    int QS = (H + 2 * KVH) * hd;
    size_t nq = (size_t)B * T * QS, no = (size_t)B * T * H * hd, na = (size_t)B * H * T * T;
    float *qkv = rnd(nq);
    for (size_t i = 0; i < nq; i++)
        qkv[i] *= 2.0f;   /* peakier softmax */
    int32_t *st = packed ? random_starts(B, T, packed) : NULL;
    /* Each table's backward reads what its own forward saved (the forms
     * differ: kernels.h), each from scratch of the size it asks for. */
    size_t ns = f->attention_saved(B, T, H), nsc = f->attention_scratch(B, T, H, KVH, hd, 1);
    float *o1 = rnd(no), *o2 = rnd(no), *a1 = rnd(ns), *a2 = rnd(na);
    float *scr = scratch_of(nsc);
    f->attention_forward(o1, a1, scr, qkv, st, B, T, H, KVH, hd);
    r->attention_forward(o2, a2, NULL, qkv, st, B, T, H, KVH, hd);
    snprintf(what, sizeof what, "attention_forward out B=%d T=%d H=%d KVH=%d hd=%d%s", B, T, H,
             KVH, hd, packed ? " packed" : "");
    check(what, o1, o2, no, 1e-5, 1e-4);
    float *dout = rnd(no), *d1 = rnd(nq), *d2 = rnd(nq);
    f->attention_backward(d1, scr, dout, qkv, o1, a1, st, B, T, H, KVH, hd);
    r->attention_backward(d2, NULL, dout, qkv, o2, a2, st, B, T, H, KVH, hd);
    snprintf(what, sizeof what, "attention_backward B=%d T=%d H=%d KVH=%d hd=%d", B, T, H, KVH, hd);
    check(what, d1, d2, nq, 1e-5, 1e-4);
    /* Mixed precision, where the table has it: the reference that rounds
     * the same inputs (check_bf16), and not fp32's result (inputs rounded:
     * errors near 2^-9 each). Not at long contexts: there a row sums
     * hundreds of probabilities, and those that lie near a bf16 rounding
     * boundary round to either side of it in the reference (its softmax is
     * not ours to the last bit), beyond check_bf16's allowance (at T =
     * 1100, 18-26 rows of 2200 against 10 allowed, before the panels as
     * after); test_gemm pins the bf16 products over many blocks exactly. */
    if (f->attention_forward_bf16 && r->attention_forward_bf16 && T <= 256) {
        float *o3 = rnd(no), *a3 = rnd(na), *d3 = rnd(nq);
        f->attention_forward_bf16(o1, a1, scr, qkv, st, B, T, H, KVH, hd);
        r->attention_forward_bf16(o3, a3, NULL, qkv, st, B, T, H, KVH, hd);
        snprintf(what, sizeof what, "attention_forward_bf16 out B=%d T=%d H=%d KVH=%d hd=%d%s",
                 B, T, H, KVH, hd, packed ? " packed" : "");
        check_bf16(what, o1, o3, no, hd);
        f->attention_backward_bf16(d1, scr, dout, qkv, o1, a1, st, B, T, H, KVH, hd);
        r->attention_backward_bf16(d3, NULL, dout, qkv, o3, a3, st, B, T, H, KVH, hd);
        snprintf(what, sizeof what, "attention_backward_bf16 B=%d T=%d H=%d KVH=%d hd=%d", B,
                 T, H, KVH, hd);
        check_bf16(what, d1, d3, nq, hd);
        double fo = 0, fd = 0;
        for (size_t i = 0; i < no; i++)
            fo = fmax(fo, fabs((double)o1[i] - o2[i]));
        for (size_t i = 0; i < nq; i++)
            fd = fmax(fd, fabs((double)d1[i] - d2[i]));
        if (T > 1 && !(fo > 1e-4 && fd > 1e-4)) {   /* T = 1: the one weight is 1 */
            failures++;
            printf("FAIL %s: within %g and %g of fp32: inputs not rounded?\n", what, fo, fd);
        }
        free(o3); free(a3); free(d3);
    }
    free(qkv); free(o1); free(o2); free(a1); free(a2);
    free(dout); free(d1); free(d2); free(scr);
    free(st);
}

/* The kernel id of the team's thread k (-1 without one). */
static long tid_of(int k)
{
    long t = -1;
#pragma omp parallel
    if (omp_get_thread_num() == k)
        t = (long)syscall(SYS_gettid);
    return t;
}

/* Attention over fewer heads than threads keeps the team's threads: a
 * team of fewer would make libgomp end the others, to be started anew by
 * the next full team, every layer (and, before our product's scratch was
 * freed with its thread, leak theirs). Three threads, two heads. */
static void test_attention_team(const llm_kernels *k)
{
    int T = 70, H = 2, hd = 8, QS = 3 * H * hd;
    llm_kernels_set_threads(3);
    float *qkv = rnd((size_t)T * QS), *dout = rnd((size_t)T * H * hd);
    float *o = rnd((size_t)T * H * hd), *a = rnd(k->attention_saved(1, T, H));
    float *d = rnd((size_t)T * QS), *scr = scratch_of(k->attention_scratch(1, T, H, H, hd, 1));
    long before = tid_of(2);
    k->attention_forward(o, a, scr, qkv, NULL, 1, T, H, H, hd);
    k->attention_backward(d, scr, dout, qkv, o, a, NULL, 1, T, H, H, hd);
    long after = tid_of(2);
    if (before < 0 || before != after) {
        failures++;
        printf("FAIL %s: attention over 2 heads on 3 threads ended thread 2 (%ld, then %ld)\n",
               k->name, before, after);
    }
    llm_kernels_set_threads(2);
    free(qkv); free(dout); free(o); free(a); free(d); free(scr);
}

static void no_work(void *ctx, int task, int thread)
{
    (void)ctx, (void)task, (void)thread;
}

/* llm_kernels_parallel() with fewer tasks than threads (a short last
 * batch of documents, few sequences to sample) keeps the team's threads
 * too: 2 tasks on 3 threads leave thread 2 as it was (a team of one
 * leaves libgomp's threads alone; one of two ended the third). */
static void test_parallel_team(void)
{
    llm_kernels_set_threads(3);
    long before = tid_of(2);
    llm_kernels_parallel(2, 0, no_work, NULL);
    long after = tid_of(2);
    if (before < 0 || before != after) {
        failures++;
        printf("FAIL llm_kernels_parallel: 2 tasks on 3 threads ended thread 2 (%ld, then "
               "%ld)\n", before, after);
    }
    llm_kernels_set_threads(2);
}

/* Attention's bits do not depend on the thread count: a layer's heads
 * are cut into units by its shape alone, and the backward sums the units'
 * dK and dV in a fixed order. 1 thread against 3, fp32 and (where the
 * table has it) bf16: outputs, what the forward keeps, and gradients. */
static void test_attention_threads(const llm_kernels *k, int B, int T, int H, int KVH, int hd)
{
    int QS = (H + 2 * KVH) * hd, OS = H * hd;
    size_t nq = (size_t)B * T * QS, no = (size_t)B * T * OS, ns = k->attention_saved(B, T, H);
    float *qkv = rnd(nq), *dout = rnd(no), *got[2][2][3];
    for (int bf = 0; bf < 2; bf++)
        for (int i = 0; i < 2; i++) {
            llm_kernels_set_threads(i ? 3 : 1);
            float *o = rnd(no), *a = rnd(ns), *d = rnd(nq);
            float *scr = scratch_of(k->attention_scratch(B, T, H, KVH, hd, 1));
            if (bf && k->attention_forward_bf16) {
                k->attention_forward_bf16(o, a, scr, qkv, NULL, B, T, H, KVH, hd);
                k->attention_backward_bf16(d, scr, dout, qkv, o, a, NULL, B, T, H, KVH, hd);
            } else {
                k->attention_forward(o, a, scr, qkv, NULL, B, T, H, KVH, hd);
                k->attention_backward(d, scr, dout, qkv, o, a, NULL, B, T, H, KVH, hd);
            }
            got[bf][i][0] = o, got[bf][i][1] = a, got[bf][i][2] = d;
            free(scr);
        }
    static const char *names[] = { "out", "saved", "dqkv" };
    size_t sizes[] = { no, ns, nq };
    for (int bf = 0; bf < 2; bf++)
        for (int j = 0; j < 3; j++) {
            if (memcmp(got[bf][0][j], got[bf][1][j], sizes[j] * sizeof(float))) {
                failures++;
                printf("FAIL %s attention%s B=%d T=%d H=%d KVH=%d hd=%d: %s differs between 1 "
                       "and 3 threads\n", k->name, bf ? "_bf16" : "", B, T, H, KVH, hd,
                       names[j]);
            }
            free(got[bf][0][j]);
            free(got[bf][1][j]);
        }
    llm_kernels_set_threads(2);
    free(qkv); free(dout);
}

/* A row packed with documents, under its starts, gives each document the
 * outputs and gradients it gets alone in a row of its own (within rounding:
 * the reference adds in double). */
static void test_attention_packing(const llm_kernels *k, int T, int H, int KVH, int hd)
{
    int QS = (H + 2 * KVH) * hd, OS = H * hd;
    float *qkv = rnd((size_t)T * QS), *dout = rnd((size_t)T * OS);
    int32_t *st = random_starts(1, T, 5);
    float *o = rnd((size_t)T * OS), *a = rnd(k->attention_saved(1, T, H));
    float *d = rnd((size_t)T * QS), *scr = scratch_of(k->attention_scratch(1, T, H, KVH, hd, 1));
    k->attention_forward(o, a, scr, qkv, st, 1, T, H, KVH, hd);
    k->attention_backward(d, scr, dout, qkv, o, a, st, 1, T, H, KVH, hd);
    int docs = 0;
    for (int t0 = 0; t0 < T; docs++) {
        int n = 1;
        while (t0 + n < T && st[t0 + n] == t0)
            n++;
        float *o1 = rnd((size_t)n * OS), *a1 = rnd(k->attention_saved(1, n, H));
        float *d1 = rnd((size_t)n * QS);
        float *s1 = scratch_of(k->attention_scratch(1, n, H, KVH, hd, 1));
        k->attention_forward(o1, a1, s1, qkv + (size_t)t0 * QS, NULL, 1, n, H, KVH, hd);
        k->attention_backward(d1, s1, dout + (size_t)t0 * OS, qkv + (size_t)t0 * QS, o1, a1,
                              NULL, 1, n, H, KVH, hd);
        char what[96];
        snprintf(what, sizeof what, "%s: packed document [%d, %d) out", k->name, t0, t0 + n);
        check(what, o + (size_t)t0 * OS, o1, (size_t)n * OS, 1e-5, 1e-4);
        snprintf(what, sizeof what, "%s: packed document [%d, %d) dqkv", k->name, t0, t0 + n);
        check(what, d + (size_t)t0 * QS, d1, (size_t)n * QS, 1e-5, 1e-4);
        free(o1); free(a1); free(d1); free(s1);
        t0 += n;
    }
    if (docs < 3) {
        fprintf(stderr, "FAIL: packing test made %d documents\n", docs);
        failures++;
    }
    free(qkv); free(dout); free(st); free(o); free(a); free(d); free(scr);
}

static void test_swiglu(const llm_kernels *f, const llm_kernels *r, int N, int F)
{
    char what[96];
    float *h = rnd((size_t)N * 2 * F);
    for (size_t i = 0; i < (size_t)N * 2 * F; i++)
        h[i] *= 6.0f;
    float *o1 = rnd((size_t)N * F), *o2 = rnd((size_t)N * F), *dout = rnd((size_t)N * F);
    float *d1 = rnd((size_t)N * 2 * F), *d2 = rnd((size_t)N * 2 * F);
    f->swiglu_forward(o1, h, N, F);
    r->swiglu_forward(o2, h, N, F);
    snprintf(what, sizeof what, "swiglu_forward N=%d F=%d", N, F);
    check(what, o1, o2, (size_t)N * F, 1e-6, 1e-5);
    f->swiglu_backward(d1, dout, h, N, F);
    r->swiglu_backward(d2, dout, h, N, F);
    snprintf(what, sizeof what, "swiglu_backward N=%d F=%d", N, F);
    check(what, d1, d2, (size_t)N * 2 * F, 1e-6, 1e-5);
    free(h); free(o1); free(o2); free(dout); free(d1); free(d2);
}

static void test_crossentropy(const llm_kernels *f, const llm_kernels *r, int N, int V,
                              float eps)
{
    char what[96];
    size_t n = (size_t)N * V;
    float *l = rnd(n);
    for (size_t i = 0; i < n; i++)
        l[i] *= 8.0f;
    int32_t *y = malloc((size_t)N * sizeof *y);
    for (int i = 0; i < N; i++)
        y[i] = i % 5 == 2 ? -1 : (int32_t)(next_u64() % (uint64_t)V);
    float *l1 = rnd(N), *l2 = rnd(N), *l3 = rnd(N), *d1 = rnd(n), *d2 = rnd(n);
    float *inplace = copy_of(l, n);
    float dscale = 1.0f / (float)N;
    f->crossentropy_forward(l1, NULL, l, y, N, V, dscale, eps);
    r->crossentropy_forward(l2, d2, l, y, N, V, dscale, eps);
    snprintf(what, sizeof what, "crossentropy_forward losses N=%d V=%d eps=%g", N, V, eps);
    check(what, l1, l2, N, 1e-5, 1e-5);
    f->crossentropy_forward(l3, d1, l, y, N, V, dscale, eps);
    check(what, l3, l2, N, 1e-5, 1e-5);
    snprintf(what, sizeof what, "crossentropy_forward dlogits N=%d V=%d eps=%g", N, V, eps);
    check(what, d1, d2, n, 1e-7, 1e-5);
    f->crossentropy_forward(l3, inplace, inplace, y, N, V, dscale, eps);
    snprintf(what, sizeof what, "crossentropy_forward in place N=%d V=%d eps=%g", N, V, eps);
    check(what, inplace, d2, n, 1e-7, 1e-5);
    check(what, l3, l2, N, 1e-5, 1e-5);
    free(l); free(y); free(l1); free(l2); free(l3); free(d1); free(d2); free(inplace);
}

/* axpy into strided columns (the LoRA adapters' add and gather), and a
 * matmul backward with a frozen weight (dw NULL: dinp alone). */
static void test_axpy(const llm_kernels *f, const llm_kernels *r, int N, int C, int ldy,
                      int ldx)
{
    char what[96];
    size_t ny = (size_t)N * ldy, nx = (size_t)N * ldx;
    float *x = rnd(nx), *y1 = rnd(ny), *y2 = copy_of(y1, ny), *y0 = copy_of(y1, ny);
    f->axpy(y1, ldy, x, ldx, N, C, -0.625f);
    r->axpy(y2, ldy, x, ldx, N, C, -0.625f);
    snprintf(what, sizeof what, "axpy N=%d C=%d ldy=%d ldx=%d", N, C, ldy, ldx);
    check_bits(what, y1, y2, ny);
    for (int n = 0; n < N; n++)
        for (int c = 0; c < ldy; c++) {
            size_t i = (size_t)n * ldy + c;
            float want = c < C ? y0[i] + -0.625f * x[(size_t)n * ldx + c] : y0[i];
            if (y2[i] != want) {
                failures++;
                printf("FAIL %s: [%d][%d] %g, want %g\n", what, n, c, y2[i], want);
                n = N;
                break;
            }
        }
    free(x), free(y1), free(y2), free(y0);
    int IC = C, OC = ldy;
    float *dout = rnd((size_t)N * OC), *inp = rnd((size_t)N * IC), *w = rnd((size_t)OC * IC);
    float *d1 = rnd((size_t)N * IC), *d2 = rnd((size_t)N * IC), *dw = rnd((size_t)OC * IC);
    f->matmul_backward(d1, NULL, dout, inp, w, N, IC, OC);
    r->matmul_backward(d2, dw, dout, inp, w, N, IC, OC);
    snprintf(what, sizeof what, "matmul_backward dw=NULL N=%d IC=%d OC=%d", N, IC, OC);
    check(what, d1, d2, (size_t)N * IC, 1e-5, 1e-4);
    free(dout), free(inp), free(w), free(d1), free(d2), free(dw);
}

static void test_elementwise(const llm_kernels *f, const llm_kernels *r, size_t n)
{
    char what[96];
    float *a = rnd(n), *b = rnd(n), *o1 = rnd(n), *o2 = rnd(n);
    f->residual_forward(o1, a, b, n);
    r->residual_forward(o2, a, b, n);
    snprintf(what, sizeof what, "residual_forward n=%zu", n);
    check_bits(what, o1, o2, n);
    f->scale(o1, n, 0.37f);
    r->scale(o2, n, 0.37f);
    snprintf(what, sizeof what, "scale n=%zu", n);
    check_bits(what, o1, o2, n);
    double s1 = f->sum_squares(a, n), s2 = r->sum_squares(a, n);
    if (!(fabs(s1 - s2) <= 1e-9 * s2 + 1e-12)) {
        failures++;
        printf("FAIL sum_squares n=%zu: %.17g vs %.17g\n", n, s1, s2);
    }
    /* AdamW: several steps so that m, v and the bias corrections all matter. */
    float *p1 = rnd(n), *p2 = copy_of(p1, n), *m1 = calloc(n + 1, 4), *m2 = calloc(n + 1, 4);
    float *v1 = calloc(n + 1, 4), *v2 = calloc(n + 1, 4);
    for (int t = 1; t <= 4; t++) {
        float *g = rnd(n);
        f->adamw_update(p1, g, m1, v1, n, 1e-2f, 0.9f, 0.95f, 1e-8f, 0.1f, t);
        r->adamw_update(p2, g, m2, v2, n, 1e-2f, 0.9f, 0.95f, 1e-8f, 0.1f, t);
        free(g);
    }
    snprintf(what, sizeof what, "adamw_update n=%zu", n);
    check(what, p1, p2, n, 1e-6, 1e-5);
    check(what, m1, m2, n, 1e-7, 1e-5);
    check(what, v1, v2, n, 1e-7, 1e-5);
    free(a); free(b); free(o1); free(o2); free(p1); free(p2);
    free(m1); free(m2); free(v1); free(v2);
}

/* ------------------------------------------------------------ inference */

/* A shuffled order of the R rows of an array: the map of a product. */
static int *shuffled_rows(int R)
{
    int *perm = malloc((size_t)R * sizeof *perm);
    if (!perm)
        exit(1);
    for (int i = 0; i < R; i++)
        perm[i] = i;
    for (int i = R - 1; i > 0; i--) {
        int j = (int)(next_u64() % (uint64_t)(i + 1)), t = perm[i];
        perm[i] = perm[j];
        perm[j] = t;
    }
    return perm;
}

/* matmul_rows (packed = 0, over floats or halves) or matmul_rows_packed:
 * N of R rows through a map, strided rows; the fast kernel equals the
 * reference bit for bit, leaves the other rows alone, gives each row the
 * bits it gets alone, and is a product (against matmul_forward). */
static void test_matmul_rows(const llm_kernels *f, const llm_kernels *r, int packed, int half,
                             int N, int IC, int OC)
{
    char what[128];
    int R = N + 3;
    size_t ldi = (size_t)IC + 5, ldo = (size_t)OC + 3;
    float *inp = rnd((size_t)R * ldi), *wf = rnd((size_t)OC * IC);
    uint16_t *wh = malloc((size_t)OC * IC * sizeof *wh);
    float *o1 = rnd((size_t)R * ldo), *o2 = copy_of(o1, (size_t)R * ldo);
    float *o3 = copy_of(o1, (size_t)R * ldo), *before = copy_of(o1, (size_t)R * ldo);
    float *scratch = malloc((f->matmul_rows_scratch(IC, OC) + 1) * sizeof *scratch);
    float *rs = malloc((r->matmul_rows_scratch(IC, OC) + 1) * sizeof *rs);
    int *map = shuffled_rows(R);
    if (!wh || !scratch || !rs)
        exit(1);
    for (size_t i = 0; i < (size_t)OC * IC; i++) {
        wh[i] = llm_float_to_half(wf[i]);
        if (half)
            wf[i] = llm_half_to_float(wh[i]);   /* the weights the product sees */
    }
    const void *w = half ? (const void *)wh : (const void *)wf;
#define ROWS(k, out, m, n, scr)                                                      \
    (packed ? (k)->matmul_rows_packed(out, ldo, inp, ldi, m, wf, scr, n, IC, OC)    \
            : (k)->matmul_rows(out, ldo, inp, ldi, m, w, half, n, IC, OC))
    ROWS(f, o1, map, N, scratch);
    ROWS(r, o2, map, N, rs);
    snprintf(what, sizeof what, "matmul_rows%s%s N=%d IC=%d OC=%d", packed ? "_packed" : "",
             half ? " (halves)" : "", N, IC, OC);
    check_bits(what, o1, o2, (size_t)R * ldo);
    for (int n = N; n < R; n++)   /* rows outside the map untouched */
        check_bits(what, o1 + (size_t)map[n] * ldo, before + (size_t)map[n] * ldo, ldo);
    for (int n = 0; n < N; n++)   /* each row alone */
        ROWS(f, o3, map + n, 1, scratch);
    check_bits(what, o3, o1, (size_t)R * ldo);
#undef ROWS
    /* A product: against the double-precision reference. */
    float *x = malloc((size_t)N * IC * sizeof *x), *want = malloc((size_t)N * OC * sizeof *want);
    float *got = malloc((size_t)N * OC * sizeof *got);
    if (!x || !want || !got)
        exit(1);
    for (int n = 0; n < N; n++) {
        memcpy(x + (size_t)n * IC, inp + (size_t)map[n] * ldi, (size_t)IC * sizeof *x);
        memcpy(got + (size_t)n * OC, o1 + (size_t)map[n] * ldo, (size_t)OC * sizeof *got);
    }
    r->matmul_forward(want, x, wf, N, IC, OC);
    check(what, got, want, (size_t)N * OC, 1e-5, 1e-5);
    free(inp); free(wf); free(wh); free(o1); free(o2); free(o3); free(before);
    free(scratch); free(rs); free(map); free(x); free(want); free(got);
}

/* pack_bf16 and matmul_rows_bf16: the packing equals the reference's bit
 * for bit (ties planted); N of R rows through a map, rows o0 .. o0+OC-1
 * of a weight of OCW rows: equal to the reference bit for bit on the fmaf
 * path (within rounding where VDPBF16PS may run: `dp`), other rows left
 * alone, each row the bits it gets alone and the bits of the whole
 * weight's product; a product of rounded inputs (against the double
 * product of bf16 values) whose inputs are rounded (not the fp32 one). */
static void test_matmul_rows_bf16(const llm_kernels *f, const llm_kernels *r, int dp, int N,
                                  int IC, int OCW, int o0, int OC)
{
    char what[128];
    int R = N + 3, kp = (IC + 1) / 2, np = (OCW + 31) / 32;
    size_t ldi = (size_t)IC + 5, ldo = (size_t)OC + 3, ldw = (size_t)OCW + 1;
    float *inp = rnd((size_t)R * ldi), *w = rnd((size_t)OCW * IC);
    if (IC > 2) {   /* ties: to even, down and up */
        w[0] = 1.0f + 0x1p-8f;
        w[1] = 1.0f + 3 * 0x1p-8f;
        inp[2] = -3.0f - 0x1p-7f;
    }
    size_t ps = (size_t)np * kp * 32;
    uint32_t *p1 = malloc(ps * sizeof *p1), *p2 = malloc(ps * sizeof *p2);
    uint32_t *scr = malloc((size_t)N * kp * sizeof *scr);
    float *o1 = rnd((size_t)R * ldo), *o2 = copy_of(o1, (size_t)R * ldo);
    float *o3 = copy_of(o1, (size_t)R * ldo), *before = copy_of(o1, (size_t)R * ldo);
    float *all = rnd((size_t)R * ldw);
    int *map = shuffled_rows(R);
    if (!p1 || !p2 || !scr)
        exit(1);
    memset(p1, 0xab, ps * sizeof *p1);
    f->pack_bf16(p1, w, IC, OCW);
    r->pack_bf16(p2, w, IC, OCW);
    snprintf(what, sizeof what, "pack_bf16 IC=%d OC=%d", IC, OCW);
    check_bits(what, (const float *)p1, (const float *)p2, ps);
    f->matmul_rows_bf16(o1, ldo, inp, ldi, map, p1, o0, scr, N, IC, OC);
    r->matmul_rows_bf16(o2, ldo, inp, ldi, map, p2, o0, scr, N, IC, OC);
    snprintf(what, sizeof what, "matmul_rows_bf16 N=%d IC=%d rows %d..%d of %d%s", N, IC, o0,
             o0 + OC - 1, OCW, dp ? " (VDPBF16PS)" : "");
    if (dp)
        check(what, o1, o2, (size_t)R * ldo, 1e-5, 1e-5);
    else
        check_bits(what, o1, o2, (size_t)R * ldo);
    for (int n = N; n < R; n++)   /* rows outside the map untouched */
        check_bits(what, o1 + (size_t)map[n] * ldo, before + (size_t)map[n] * ldo, ldo);
    for (int n = 0; n < N; n++)   /* each row alone */
        f->matmul_rows_bf16(o3, ldo, inp, ldi, map + n, p1, o0, scr, 1, IC, OC);
    check_bits(what, o3, o1, (size_t)R * ldo);
    f->matmul_rows_bf16(all, ldw, inp, ldi, map, p1, 0, scr, N, IC, OCW);
    for (int n = 0; n < N; n++)   /* the same bits as within the whole weight's rows */
        check_bits(what, o1 + (size_t)map[n] * ldo, all + (size_t)map[n] * ldw + o0,
                   (size_t)OC);
    /* A product of the rounded values, and not of the floats. */
    float *x = malloc((size_t)N * IC * sizeof *x), *want = malloc((size_t)N * OC * sizeof *want);
    float *got = malloc((size_t)N * OC * sizeof *got), *f32 = malloc((size_t)N * OC * sizeof *f32);
    if (!x || !want || !got || !f32)
        exit(1);
    for (int n = 0; n < N; n++) {
        memcpy(x + (size_t)n * IC, inp + (size_t)map[n] * ldi, (size_t)IC * sizeof *x);
        memcpy(got + (size_t)n * OC, o1 + (size_t)map[n] * ldo, (size_t)OC * sizeof *got);
    }
    r->matmul_forward_bf16(want, x, w + (size_t)o0 * IC, N, IC, OC);
    r->matmul_forward(f32, x, w + (size_t)o0 * IC, N, IC, OC);
    check(what, got, want, (size_t)N * OC, 1e-5, 1e-5);
    double worst = 0;
    for (size_t i = 0; i < (size_t)N * OC; i++)
        worst = fmax(worst, fabs((double)got[i] - f32[i]));
    if (IC >= 16 && !(worst > 1e-4)) {
        failures++;
        printf("FAIL %s: within %g of fp32: inputs not rounded?\n", what, worst);
    }
    free(inp); free(w); free(p1); free(p2); free(scr); free(o1); free(o2); free(o3);
    free(before); free(all); free(map); free(x); free(want); free(got); free(f32);
}

/* attention_rows over a cache of n rows of different lengths (strided
 * keys and values) against the reference; each row's bits alone equal its
 * bits in the batch; and over a whole sequence's own qkv rows it is causal
 * attention (attention_forward). */
static void test_attention_rows(const llm_kernels *f, const llm_kernels *r, int n, int H,
                                int KVH, int hd, int maxlen)
{
    char what[128];
    size_t kvs = (size_t)KVH * hd + 3, OS = (size_t)H * hd;
    const float **q = malloc((size_t)n * sizeof *q), **K = malloc((size_t)n * sizeof *K);
    const float **V = malloc((size_t)n * sizeof *V);
    int *len = malloc((size_t)n * sizeof *len);
    float *qs = rnd((size_t)n * OS), *cache = rnd((size_t)n * 2 * maxlen * kvs);
    float *o1 = rnd((size_t)n * OS), *o2 = rnd((size_t)n * OS), *o3 = rnd(OS);
    float *scratch = malloc((size_t)llm_kernels_threads() * maxlen * sizeof *scratch);
    if (!q || !K || !V || !len || !scratch)
        exit(1);
    for (int i = 0; i < n; i++) {
        q[i] = qs + (size_t)i * OS;
        K[i] = cache + (size_t)i * 2 * maxlen * kvs;
        V[i] = K[i] + (size_t)maxlen * kvs;
        len[i] = i == 0 ? maxlen : 1 + (int)(next_u64() % (uint64_t)maxlen);
    }
    for (size_t i = 0; i < (size_t)n * 2 * maxlen * kvs; i++)
        cache[i] *= 3.0f;   /* peakier softmax */
    f->attention_rows(o1, OS, q, K, V, kvs, len, n, H, KVH, hd, scratch, maxlen);
    r->attention_rows(o2, OS, q, K, V, kvs, len, n, H, KVH, hd, scratch, maxlen);
    snprintf(what, sizeof what, "attention_rows n=%d H=%d KVH=%d hd=%d len<=%d", n, H, KVH,
             hd, maxlen);
    check(what, o1, o2, (size_t)n * OS, 1e-5, 1e-4);
    for (int i = 0; i < n; i++) {
        f->attention_rows(o3, OS, q + i, K + i, V + i, kvs, len + i, 1, H, KVH, hd, scratch,
                          maxlen);
        check_bits(what, o3, o1 + (size_t)i * OS, OS);
    }
    /* One sequence of T = maxlen positions over its own rows of qkv. */
    int T = maxlen, QS = (H + 2 * KVH) * hd;
    float *qkv = rnd((size_t)T * QS), *att = malloc((size_t)H * T * T * sizeof *att);
    float *full = malloc((size_t)T * OS * sizeof *full), *rows = rnd((size_t)T * OS);
    const float **tq = malloc((size_t)T * sizeof *tq), **tk = malloc((size_t)T * sizeof *tk);
    const float **tv = malloc((size_t)T * sizeof *tv);
    int *tl = malloc((size_t)T * sizeof *tl);
    if (!att || !full || !tq || !tk || !tv || !tl)
        exit(1);
    for (int t = 0; t < T; t++) {
        tq[t] = qkv + (size_t)t * QS;
        tk[t] = qkv + (size_t)H * hd;
        tv[t] = tk[t] + (size_t)KVH * hd;
        tl[t] = t + 1;
    }
    r->attention_forward(full, att, NULL, qkv, NULL, 1, T, H, KVH, hd);
    f->attention_rows(rows, OS, tq, tk, tv, (size_t)QS, tl, T, H, KVH, hd, scratch, maxlen);
    snprintf(what, sizeof what, "attention_rows = attention_forward T=%d H=%d KVH=%d hd=%d",
             T, H, KVH, hd);
    check(what, rows, full, (size_t)T * OS, 1e-5, 1e-4);
    free(q); free(K); free(V); free(len); free(qs); free(cache); free(o1); free(o2);
    free(o3); free(scratch); free(qkv); free(att); free(full); free(rows);
    free(tq); free(tk); free(tv); free(tl);
}

/* copy_rows of N rows of n into rows of a cache in another order, with gaps
 * between them: the same bits as the reference, src's rows exactly, and
 * nothing else written. */
static void test_copy_rows(const llm_kernels *f, const llm_kernels *r, int N, int n, int lds)
{
    char what[96];
    size_t gap = (size_t)n + 3, cells = (size_t)N * gap + 1;
    float *src = rnd((size_t)N * lds), *c1 = rnd(cells), *c2 = copy_of(c1, cells);
    float *c0 = copy_of(c1, cells);
    float **d1 = malloc((size_t)N * sizeof *d1), **d2 = malloc((size_t)N * sizeof *d2);
    if (!d1 || !d2)
        exit(1);
    for (int i = 0; i < N; i++) {
        size_t at = (size_t)((i * 7 + 3) % N) * gap + 1;   /* a permutation: 7 and N coprime */
        d1[i] = c1 + at;
        d2[i] = c2 + at;
    }
    f->copy_rows(d1, src, (size_t)lds, N, n);
    r->copy_rows(d2, src, (size_t)lds, N, n);
    snprintf(what, sizeof what, "copy_rows N=%d n=%d lds=%d", N, n, lds);
    check_bits(what, c1, c2, cells);
    size_t moved = 0;
    for (int i = 0; i < N; i++) {
        size_t at = (size_t)(d2[i] - c2);
        moved += memcmp(c2 + at, src + (size_t)i * lds, (size_t)n * sizeof *src) != 0;
        memcpy(c2 + at, c0 + at, (size_t)n * sizeof *c2);
    }
    if (moved || memcmp(c2, c0, cells * sizeof *c0) != 0) {
        failures++;
        printf("FAIL %s (reference): %zu rows not copied, or a cell outside them written\n",
               what, moved);
    }
    free(src); free(c0); free(c1); free(c2); free(d1); free(d2);
}

/* copy_rows_bf16 like copy_rows: the same bits as the reference, each
 * value the bf16 nearest (half.h's llm_float_to_bf16, pinned on exact
 * cases: ties to even, overflow to inf, NaN kept a NaN), nothing else
 * written. */
static void test_copy_rows_bf16(const llm_kernels *f, const llm_kernels *r, int N, int n,
                                int lds)
{
    char what[96];
    static const struct { float x; uint16_t want; } edge[] = {
        {1.0f, 0x3f80}, {1.0f + 0x1p-8f, 0x3f80}, {1.0f + 3 * 0x1p-8f, 0x3f82},
        {-3.0f - 0x1p-7f, 0xc040}, {3.4e38f, 0x7f80}, {-0.0f, 0x8000}, {0x1p-130f, 0x0008},
    };
    size_t ne = sizeof edge / sizeof edge[0];
    size_t gap = (size_t)n + 3, cells = (size_t)N * gap + 1;
    float *src = rnd((size_t)N * lds);
    for (size_t i = 0; i < (size_t)N * lds; i++)
        if (i % 5 == 0)
            src[i] = edge[(i / 5) % ne].x;
    if (N * lds > 1)
        src[1] = NAN;
    uint16_t *c1 = malloc(cells * sizeof *c1), *c2 = malloc(cells * sizeof *c2);
    uint16_t **d1 = malloc((size_t)N * sizeof *d1), **d2 = malloc((size_t)N * sizeof *d2);
    if (!c1 || !c2 || !d1 || !d2)
        exit(1);
    memset(c1, 0xa5, cells * sizeof *c1);
    memset(c2, 0xa5, cells * sizeof *c2);
    for (int i = 0; i < N; i++) {
        size_t at = (size_t)((i * 7 + 3) % N) * gap + 1;
        d1[i] = c1 + at;
        d2[i] = c2 + at;
    }
    f->copy_rows_bf16(d1, src, (size_t)lds, N, n);
    r->copy_rows_bf16(d2, src, (size_t)lds, N, n);
    snprintf(what, sizeof what, "copy_rows_bf16 N=%d n=%d lds=%d", N, n, lds);
    if (memcmp(c1, c2, cells * sizeof *c1) != 0) {
        failures++;
        printf("FAIL %s: not the reference's bits\n", what);
    }
    size_t wrong = 0, outside = 0;
    for (int i = 0; i < N; i++)
        for (int j = 0; j < n; j++) {
            float x = src[(size_t)i * lds + j];
            uint16_t got = d1[i][j];
            size_t e = ((size_t)i * lds + j) / 5;
            if (isnan(x))
                wrong += (got & 0x7f80) != 0x7f80 || !(got & 0x7f);
            else if (((size_t)i * lds + j) % 5 == 0)
                wrong += got != edge[e % ne].want;
            else
                wrong += got != llm_float_to_bf16(x) ||
                         !(fabs(llm_bf16_to_float(got) - (double)x) <= fabs((double)x) * 0x1p-8);
            d1[i][j] = 0xa5a5;
        }
    for (size_t i = 0; i < cells; i++)
        outside += c1[i] != 0xa5a5;
    if (wrong || outside) {
        failures++;
        printf("FAIL %s: %zu values not the nearest bf16, %zu cells outside the rows "
               "written\n", what, wrong, outside);
    }
    free(src); free(c1); free(c2); free(d1); free(d2);
}

/* attention_rows_bf16 over a bf16 cache of n rows of different lengths
 * (strided) against the reference (check_bf16: a probability within a
 * float's rounding of a bf16 boundary may round the other way), and not
 * attention_rows' over the same keys and values as floats (q and the
 * probabilities rounded); each row's bits alone equal its bits in the
 * batch; and over a whole sequence's keys and values, stored by
 * copy_rows_bf16, it is attention_forward_bf16's causal attention. */
static void test_attention_rows_bf16(const llm_kernels *f, const llm_kernels *r, int n, int H,
                                     int KVH, int hd, int maxlen)
{
    char what[128];
    size_t kvs = (size_t)KVH * hd + 3, OS = (size_t)H * hd, nc = (size_t)n * 2 * maxlen * kvs;
    const float **q = malloc((size_t)n * sizeof *q), **Kf = malloc((size_t)n * sizeof *Kf);
    const float **Vf = malloc((size_t)n * sizeof *Vf);
    const uint16_t **K = malloc((size_t)n * sizeof *K), **V = malloc((size_t)n * sizeof *V);
    int *len = malloc((size_t)n * sizeof *len);
    float *qs = rnd((size_t)n * OS), *cf = rnd(nc);
    uint16_t *cache = malloc(nc * sizeof *cache);
    float *o1 = rnd((size_t)n * OS), *o2 = rnd((size_t)n * OS), *o3 = rnd(OS);
    float *of = rnd((size_t)n * OS);
    float *scratch = malloc((size_t)llm_kernels_threads() * (2 * (size_t)maxlen + hd) *
                            sizeof *scratch);
    if (!q || !Kf || !Vf || !K || !V || !len || !cache || !scratch)
        exit(1);
    for (size_t i = 0; i < nc; i++) {
        cache[i] = llm_float_to_bf16(3.0f * cf[i]);   /* peakier softmax */
        cf[i] = llm_bf16_to_float(cache[i]);
    }
    for (int i = 0; i < n; i++) {
        q[i] = qs + (size_t)i * OS;
        K[i] = cache + (size_t)i * 2 * maxlen * kvs;
        V[i] = K[i] + (size_t)maxlen * kvs;
        Kf[i] = cf + (size_t)i * 2 * maxlen * kvs;
        Vf[i] = Kf[i] + (size_t)maxlen * kvs;
        len[i] = i == 0 ? maxlen : 1 + (int)(next_u64() % (uint64_t)maxlen);
    }
    f->attention_rows_bf16(o1, OS, q, K, V, kvs, len, n, H, KVH, hd, scratch, maxlen);
    r->attention_rows_bf16(o2, OS, q, K, V, kvs, len, n, H, KVH, hd, scratch, maxlen);
    snprintf(what, sizeof what, "attention_rows_bf16 n=%d H=%d KVH=%d hd=%d len<=%d", n, H,
             KVH, hd, maxlen);
    check_bf16(what, o1, o2, (size_t)n * OS, hd);
    f->attention_rows(of, OS, q, Kf, Vf, kvs, len, n, H, KVH, hd, scratch, maxlen);
    double worst = 0;
    for (size_t i = 0; i < (size_t)n * OS; i++)
        worst = fmax(worst, fabs((double)o1[i] - of[i]));
    if (hd * maxlen >= 16 && !(worst > 1e-4)) {
        failures++;
        printf("FAIL %s: within %g of attention_rows: q or the weights not rounded?\n", what,
               worst);
    }
    for (int i = 0; i < n; i++) {
        f->attention_rows_bf16(o3, OS, q + i, K + i, V + i, kvs, len + i, 1, H, KVH, hd,
                               scratch, maxlen);
        check_bits(what, o3, o1 + (size_t)i * OS, OS);
    }
    /* One sequence of T = maxlen positions: its keys and values cached. */
    int T = maxlen, QS = (H + 2 * KVH) * hd, KVD = KVH * hd;
    float *qkv = rnd((size_t)T * QS), *att = malloc((size_t)H * T * T * sizeof *att);
    float *full = malloc((size_t)T * OS * sizeof *full), *rows = rnd((size_t)T * OS);
    uint16_t *kc = malloc((size_t)T * KVD * sizeof *kc), *vc = malloc((size_t)T * KVD * sizeof *vc);
    uint16_t **kd = malloc((size_t)T * sizeof *kd), **vd = malloc((size_t)T * sizeof *vd);
    const float **tq = malloc((size_t)T * sizeof *tq);
    const uint16_t **tk = malloc((size_t)T * sizeof *tk), **tv = malloc((size_t)T * sizeof *tv);
    int *tl = malloc((size_t)T * sizeof *tl);
    if (!att || !full || !kc || !vc || !kd || !vd || !tq || !tk || !tv || !tl)
        exit(1);
    for (int t = 0; t < T; t++) {
        kd[t] = kc + (size_t)t * KVD;
        vd[t] = vc + (size_t)t * KVD;
        tq[t] = qkv + (size_t)t * QS;
        tk[t] = kc;
        tv[t] = vc;
        tl[t] = t + 1;
    }
    f->copy_rows_bf16(kd, qkv + (size_t)H * hd, (size_t)QS, T, KVD);
    f->copy_rows_bf16(vd, qkv + (size_t)(H + KVH) * hd, (size_t)QS, T, KVD);
    r->attention_forward_bf16(full, att, NULL, qkv, NULL, 1, T, H, KVH, hd);
    f->attention_rows_bf16(rows, OS, tq, tk, tv, (size_t)KVD, tl, T, H, KVH, hd, scratch,
                           maxlen);
    snprintf(what, sizeof what, "attention_rows_bf16 = attention_forward_bf16 T=%d H=%d "
             "KVH=%d hd=%d", T, H, KVH, hd);
    check_bf16(what, rows, full, (size_t)T * OS, hd);
    free(q); free(Kf); free(Vf); free(K); free(V); free(len); free(qs); free(cf);
    free(cache); free(o1); free(o2); free(o3); free(of); free(scratch); free(qkv); free(att);
    free(full); free(rows); free(kc); free(vc); free(kd); free(vd); free(tq); free(tk);
    free(tv); free(tl);
}

/* to_half against the reference and half.h, bit for bit, with the first
 * value out of half's range reported. */
static void test_to_half(const llm_kernels *f, const llm_kernels *r, size_t n, size_t bad_at)
{
    char what[96];
    float *x = rnd(n);
    static const float edge[] = { 65504.0f, 65519.99f, -6.1e-5f, 5.96e-8f, 2.98e-8f,
                                  1.0009765625f, 1.00048828125f, -0.0f, 1e-10f };
    for (size_t i = 0; i < n; i++)
        x[i] = i % 3 == 0 ? edge[(i / 3) % (sizeof edge / sizeof edge[0])] : x[i] * 1000;
    if (bad_at < n)
        x[bad_at] = bad_at % 2 ? 65520.0f : NAN;
    if (bad_at + 2 < n)
        x[bad_at + 2] = INFINITY;
    uint16_t *h1 = malloc(n * sizeof *h1), *h2 = malloc(n * sizeof *h2);
    if (!h1 || !h2)
        exit(1);
    size_t b1 = f->to_half(h1, x, n), b2 = r->to_half(h2, x, n);
    size_t want = bad_at < n ? bad_at : n;
    snprintf(what, sizeof what, "to_half n=%zu", n);
    if (memcmp(h1, h2, n * sizeof *h1) != 0 || b1 != b2 || b1 != want) {
        failures++;
        printf("FAIL %s: halves differ or first bad %zu / %zu, want %zu\n", what, b1, b2,
               want);
    }
    for (size_t i = 0; i < n; i++)
        if (h1[i] != llm_float_to_half(x[i])) {
            failures++;
            printf("FAIL %s: [%zu] %g gives %04x, not %04x\n", what, i, (double)x[i],
                   (unsigned)h1[i], (unsigned)llm_float_to_half(x[i]));
            break;
        }
    free(x); free(h1); free(h2);
}

/* ------------------------------------------- reference vs finite differences
 * Each forward is wrapped as L(inputs) = sum_i wgt_i * out_i in double; the
 * analytic gradient comes from the backward with dout = wgt. Central
 * differences with step 1e-2 on inputs in [-1, 1): truncation ~1e-4 and
 * float rounding ~1e-5, so the tolerance is 3e-3 + 3e-2*|g|. */

typedef double (*loss_fn)(void *ctx);

static void fd_check(const char *what, loss_fn L, void *ctx, float *x, size_t n,
                     const float *grad)
{
    const float h = 1e-2f;
    size_t bad = 0;
    for (size_t i = 0; i < n; i++) {
        float old = x[i];
        x[i] = old + h;
        double lp = L(ctx);
        x[i] = old - h;
        double lm = L(ctx);
        x[i] = old;
        double fd = (lp - lm) / (2.0 * h);
        if (!(fabs(fd - grad[i]) <= 3e-3 + 3e-2 * fabs(fd))) {
            if (!bad)
                printf("FAIL fd %s: [%zu] analytic %.7g, finite difference %.7g\n",
                       what, i, grad[i], fd);
            bad++;
        }
    }
    if (bad)
        failures++;
}

static double wsum(const float *o, const float *w, size_t n)
{
    double s = 0;
    for (size_t i = 0; i < n; i++)
        s += (double)o[i] * w[i];
    return s;
}

struct mm { const llm_kernels *k; float *inp, *w, *out, *wgt; int N, IC, OC; };
static double mm_loss(void *p)
{
    struct mm *c = p;
    c->k->matmul_forward(c->out, c->inp, c->w, c->N, c->IC, c->OC);
    return wsum(c->out, c->wgt, (size_t)c->N * c->OC);
}

struct emb { const llm_kernels *k; int32_t *tok; float *wte, *out, *wgt; int N, C; };
static double emb_loss(void *p)
{
    struct emb *c = p;
    c->k->embedding_forward(c->out, c->tok, c->wte, c->N, c->C);
    return wsum(c->out, c->wgt, (size_t)c->N * c->C);
}

struct rn { const llm_kernels *k; float *x, *w, *out, *rstd, *wgt; int N, C; };
static double rn_loss(void *p)
{
    struct rn *c = p;
    c->k->rmsnorm_forward(c->out, c->rstd, c->x, c->w, c->N, c->C, 1e-5f);
    return wsum(c->out, c->wgt, (size_t)c->N * c->C);
}

struct rp { const llm_kernels *k; float *x, *tmp, *c, *s, *wgt; int B, T, nh, hd; };
static double rp_loss(void *p)
{
    struct rp *c = p;
    size_t n = (size_t)c->B * c->T * c->nh * c->hd;
    memcpy(c->tmp, c->x, n * sizeof *c->x);
    c->k->rope_forward(c->tmp, c->c, c->s, c->B, c->T, c->nh, c->hd, c->nh * c->hd);
    return wsum(c->tmp, c->wgt, n);
}

struct at { const llm_kernels *k; float *qkv, *out, *att, *wgt; const int32_t *st;
            int B, T, H, KVH, hd; };
static double at_loss(void *p)
{
    struct at *c = p;
    c->k->attention_forward(c->out, c->att, NULL, c->qkv, c->st, c->B, c->T, c->H, c->KVH,
                            c->hd);
    return wsum(c->out, c->wgt, (size_t)c->B * c->T * c->H * c->hd);
}

struct sw { const llm_kernels *k; float *h, *out, *wgt; int N, F; };
static double sw_loss(void *p)
{
    struct sw *c = p;
    c->k->swiglu_forward(c->out, c->h, c->N, c->F);
    return wsum(c->out, c->wgt, (size_t)c->N * c->F);
}

struct ce { const llm_kernels *k; float *l, *losses; int32_t *y; int N, V; float eps; };
static double ce_loss(void *p)
{
    struct ce *c = p;
    c->k->crossentropy_forward(c->losses, NULL, c->l, c->y, c->N, c->V, 1.0f, c->eps);
    double s = 0;
    for (int i = 0; i < c->N; i++)
        s += c->losses[i];
    return s / c->N;
}

static void test_finite_differences(const llm_kernels *r)
{
    {   /* matmul */
        int N = 3, IC = 5, OC = 4;
        struct mm c = { r, rnd(N * IC), rnd(OC * IC), rnd(N * OC), rnd(N * OC), N, IC, OC };
        float *di = rnd(N * IC), *dw = calloc(OC * IC, 4);
        r->matmul_backward(di, dw, c.wgt, c.inp, c.w, N, IC, OC);
        fd_check("matmul dinp", mm_loss, &c, c.inp, N * IC, di);
        fd_check("matmul dw", mm_loss, &c, c.w, OC * IC, dw);
        free(c.inp); free(c.w); free(c.out); free(c.wgt); free(di); free(dw);
    }
    {   /* embedding, with a repeated token */
        int N = 4, V = 3, C = 5;
        int32_t tok[4] = { 2, 0, 2, 1 };
        struct emb c = { r, tok, rnd(V * C), rnd(N * C), rnd(N * C), N, C };
        float *d = calloc(V * C, 4);
        r->embedding_backward(d, c.wgt, tok, N, C);
        fd_check("embedding dwte", emb_loss, &c, c.wte, V * C, d);
        free(c.wte); free(c.out); free(c.wgt); free(d);
    }
    {   /* rmsnorm */
        int N = 3, C = 7;
        struct rn c = { r, rnd(N * C), rnd(C), rnd(N * C), rnd(N), rnd(N * C), N, C };
        float *dx = calloc(N * C, 4), *dw = calloc(C, 4);
        rn_loss(&c);
        r->rmsnorm_backward(dx, dw, c.wgt, c.x, c.w, c.rstd, N, C);
        fd_check("rmsnorm dinp", rn_loss, &c, c.x, N * C, dx);
        fd_check("rmsnorm dw", rn_loss, &c, c.w, C, dw);
        free(c.x); free(c.w); free(c.out); free(c.rstd); free(c.wgt); free(dx); free(dw);
    }
    {   /* rope */
        int B = 2, T = 3, nh = 2, hd = 4, n = B * T * nh * hd;
        struct rp c = { r, rnd(n), rnd(n), NULL, NULL, rnd(n), B, T, nh, hd };
        rope_tables(T, hd, &c.c, &c.s);
        float *dx = copy_of(c.wgt, n);
        r->rope_backward(dx, c.c, c.s, B, T, nh, hd, nh * hd);
        fd_check("rope dx", rp_loss, &c, c.x, n, dx);
        free(c.x); free(c.tmp); free(c.c); free(c.s); free(c.wgt); free(dx);
    }
    {   /* attention with GQA */
        int B = 2, T = 4, H = 4, KVH = 2, hd = 3, nq = B * T * (H + 2 * KVH) * hd;
        static const int32_t st[] = { 0, 0, 2, 2, 0, 1, 1, 3 };   /* 2 rows of 4 */
        for (int packed = 0; packed < 2; packed++) {
            struct at c = { r, rnd(nq), rnd(B * T * H * hd), rnd(B * H * T * T),
                            rnd(B * T * H * hd), packed ? st : NULL, B, T, H, KVH, hd };
            float *d = rnd(nq);
            at_loss(&c);
            r->attention_backward(d, NULL, c.wgt, c.qkv, c.out, c.att, c.st, B, T, H, KVH, hd);
            fd_check(packed ? "attention dqkv, packed" : "attention dqkv", at_loss, &c, c.qkv,
                     nq, d);
            free(c.qkv); free(c.out); free(c.att); free(c.wgt); free(d);
        }
    }
    {   /* swiglu */
        int N = 3, F = 5;
        struct sw c = { r, rnd(N * 2 * F), rnd(N * F), rnd(N * F), N, F };
        float *d = rnd(N * 2 * F);
        r->swiglu_backward(d, c.wgt, c.h, N, F);
        fd_check("swiglu dh13", sw_loss, &c, c.h, N * 2 * F, d);
        free(c.h); free(c.out); free(c.wgt); free(d);
    }
    for (int s = 0; s <= 1; s++) {   /* cross-entropy with an ignored target */
        int N = 4, V = 6;
        int32_t y[4] = { 1, -1, 5, 0 };
        struct ce c = { r, rnd(N * V), rnd(N), y, N, V, s ? 0.1f : 0.0f };
        float *d = rnd(N * V);
        r->crossentropy_forward(c.losses, d, c.l, y, N, V, 1.0f / N, c.eps);
        fd_check(s ? "crossentropy dlogits, smoothing 0.1" : "crossentropy dlogits", ce_loss,
                 &c, c.l, N * V, d);
        free(c.l); free(c.losses); free(d);
    }
    {   /* smoothing eps is the mix (1 - eps) target + eps (each class / V) */
        enum { N = 3, V = 7 };
        float eps = 0.2f, *l = rnd(N * V), ls[N], d[N * V], l0[N], d0[N * V];
        int32_t y[N] = { 4, 0, 6 }, yv[N];
        double want_l[N] = { 0 }, want_d[N * V] = { 0 };
        r->crossentropy_forward(ls, d, l, y, N, V, 1.0f, eps);
        r->crossentropy_forward(l0, d0, l, y, N, V, 1.0f, 0.0f);
        for (int i = 0; i < N; i++) {
            want_l[i] = (1.0 - eps) * l0[i];
            for (int j = 0; j < V; j++)
                want_d[i * V + j] = (1.0 - eps) * d0[i * V + j];
        }
        for (int v = 0; v < V; v++) {
            for (int i = 0; i < N; i++)
                yv[i] = v;
            r->crossentropy_forward(l0, d0, l, yv, N, V, 1.0f, 0.0f);
            for (int i = 0; i < N; i++) {
                want_l[i] += eps * l0[i] / V;
                for (int j = 0; j < V; j++)
                    want_d[i * V + j] += eps * d0[i * V + j] / V;
            }
        }
        float wl[N], wd[N * V];
        for (int i = 0; i < N * V; i++)
            wd[i] = (float)want_d[i];
        for (int i = 0; i < N; i++)
            wl[i] = (float)want_l[i];
        check("crossentropy smoothing: loss as the mix of targets", ls, wl, N, 1e-6, 1e-6);
        check("crossentropy smoothing: dlogits as the mix of targets", d, wd, N * V, 1e-7,
              1e-6);
        free(l);
    }
}

/* Every fast kernel of one CPU level against the reference. */
static void test_level(const llm_kernels *f, const llm_kernels *r, int dp)
{
    test_bf16_rounding(f);
    for (int threads = 1; threads <= 2; threads++) {
        llm_kernels_set_threads(threads);
        test_matmul(f, r, 1, 1, 1);
        test_matmul(f, r, 7, 13, 5);
        test_matmul(f, r, 64, 96, 131);
        test_embedding(f, r, 9, 5, 7);
        test_embedding(f, r, 100, 37, 33);
        test_rmsnorm(f, r, 5, 7);
        test_rmsnorm(f, r, 70, 288);
        test_rope(f, r, 2, 5, 3, 6);
        test_rope(f, r, 1, 17, 2, 48);
        test_attention(f, r, 1, 1, 1, 1, 2, 0);
        test_attention(f, r, 2, 5, 4, 2, 6, 0);
        test_attention(f, r, 1, 70, 3, 3, 8, 0);
        test_attention(f, r, 2, 130, 6, 1, 4, 0);
        test_attention(f, r, 2, 5, 4, 2, 6, 2);
        test_attention(f, r, 2, 130, 6, 1, 4, 9);
        /* Longer than two blocks of k of our product (the avx2 level's
         * 2 x 512): the products over a prefix of the values' panel and
         * dQ's over the keys' sum several blocks. */
        test_attention(f, r, 1, 1100, 2, 1, 4, 0);
        /* Tasks enough not to be cut (32 heads, 32 groups), and heads
         * enough but groups cut. */
        test_attention(f, r, 8, 40, 4, 4, 8, 0);
        test_attention(f, r, 4, 130, 8, 2, 8, 3);
        test_attention_packing(f, 70, 4, 2, 8);
        test_attention_packing(r, 40, 2, 1, 4);
        test_attention_team(f);
        test_attention_threads(f, 1, 520, 4, 1, 8);   /* the group cut into 32 units */
        test_attention_threads(f, 8, 40, 4, 4, 8);    /* not cut */
        test_swiglu(f, r, 3, 5);
        test_swiglu(f, r, 33, 97);
        test_crossentropy(f, r, 7, 67, 0.0f);
        test_crossentropy(f, r, 12, 4096, 0.0f);
        test_crossentropy(f, r, 7, 67, 0.1f);
        test_crossentropy(f, r, 12, 4096, 0.25f);
        test_elementwise(f, r, 1);
        test_elementwise(f, r, 1001);
        test_elementwise(f, r, 100003);
        test_axpy(f, r, 1, 1, 1, 1);
        test_axpy(f, r, 7, 5, 13, 9);
        test_axpy(f, r, 300, 96, 288, 96);
        for (int packed = 0; packed <= 1; packed++)
            for (int half = 0; half <= !packed; half++) {
                test_matmul_rows(f, r, packed, half, 1, 1, 1);
                test_matmul_rows(f, r, packed, half, 1, 96, 131);
                test_matmul_rows(f, r, packed, half, 2, 13, 5);
                test_matmul_rows(f, r, packed, half, 3, 96, 64);
                test_matmul_rows(f, r, packed, half, 7, 40, 17);
                test_matmul_rows(f, r, packed, half, 50, 19, 9);
                test_matmul_rows(f, r, packed, half, 53, 288, 70);
            }
        test_matmul_rows_bf16(f, r, dp, 1, 1, 1, 0, 1);
        test_matmul_rows_bf16(f, r, dp, 1, 256, 768, 0, 768);
        test_matmul_rows_bf16(f, r, dp, 2, 13, 40, 7, 30);
        test_matmul_rows_bf16(f, r, dp, 13, 96, 131, 64, 67);
        test_matmul_rows_bf16(f, r, dp, 12, 40, 64, 33, 17);
        test_matmul_rows_bf16(f, r, dp, 53, 288, 70, 0, 70);
        test_matmul_rows_bf16(f, r, dp, 25, 17, 100, 99, 1);
        test_attention_rows(f, r, 1, 1, 1, 1, 1);
        test_attention_rows(f, r, 5, 4, 2, 6, 9);
        test_attention_rows(f, r, 9, 6, 3, 64, 40);
        test_attention_rows(f, r, 3, 2, 1, 72, 130);
        test_copy_rows(f, r, 1, 1, 1);
        test_copy_rows(f, r, 5, 12, 36);
        test_copy_rows(f, r, 200, 256, 768);   /* enough to go parallel */
        test_attention_rows_bf16(f, r, 1, 1, 1, 1, 1);
        test_attention_rows_bf16(f, r, 5, 4, 2, 6, 9);
        test_attention_rows_bf16(f, r, 9, 6, 3, 64, 40);
        test_attention_rows_bf16(f, r, 7, 4, 4, 64, 33);   /* odd lengths: a lone last t */
        test_attention_rows_bf16(f, r, 3, 2, 1, 72, 130);  /* a short last chunk of 32 */
        test_attention_rows_bf16(f, r, 2, 2, 2, 100, 20);  /* 64 + a short 36 */
        test_copy_rows_bf16(f, r, 1, 1, 1);
        test_copy_rows_bf16(f, r, 5, 12, 36);
        test_copy_rows_bf16(f, r, 200, 256, 768);
        test_to_half(f, r, 1, 5);
        test_to_half(f, r, 7, 3);
        test_to_half(f, r, 1001, 1001);
        test_to_half(f, r, 100003, 77777);
    }
}

int main(void)
{
    /* With LLM_KERNELS=guarded (make check-guarded) the "cpu" device is the
     * guarded table (test_guarded checks that), whose kernels are the cpu
     * table's: the cpu table itself is then llm_kernels_cpu(). */
    const char *env = getenv("LLM_KERNELS");
    int guarded = env && strcmp(env, "guarded") == 0;
    const llm_kernels *f = llm_kernels_get("cpu"), *r = llm_kernels_get("ref");
    if (guarded && f && (f != llm_kernels_guarded() || !llm_kernels_cpu()))
        f = NULL;
    else if (guarded)
        f = llm_kernels_cpu();
    if (!f || !r || llm_kernels_get("nonesuch") != NULL) {
        printf("FAIL kernel lookup\n");
        return 1;
    }
#ifndef LLM_CUDA
    if (llm_kernels_get("cuda") != NULL) {
        printf("FAIL cuda lookup without LLM_CUDA\n");
        return 1;
    }
#endif
    /* "cpu" is the table of the chosen level; every level the CPU runs is
     * tested, each as itself. */
    if (f != llm_kernels_cpu_for(llm_kernels_cpu_level()) || strcmp(f->name, "cpu") != 0 ||
        llm_kernels_cpu_for("nonesuch") != NULL) {
        printf("FAIL cpu level lookup\n");
        return 1;
    }
    for (const char *const *lv = llm_kernels_cpu_levels(0); *lv; lv++) {
        const llm_kernels *k = llm_kernels_cpu_for(*lv);
        if (!k) {
            printf("level %s: not supported by this CPU, skipped\n", *lv);
            continue;
        }
        int before = failures;
        /* VDPBF16PS in matmul_rows_bf16 (kernels.h): maybe on these (amx
         * too: its tiles take the training products only). */
        const char *g = getenv("LLM_GEMM");
        int dp = (strcmp(*lv, "avx512") == 0 || strcmp(*lv, "amx") == 0 ||
                  strcmp(*lv, "native") == 0) &&
                 !(g && (strcmp(g, "openblas") == 0 || strcmp(g, "own-nobf16") == 0));
#if defined(__x86_64__)
        dp = dp && __builtin_cpu_supports("avx512bf16");
#endif
        test_level(k, r, dp);
        printf("level %s: %s\n", *lv, failures == before ? "passed" : "FAILED");
    }
    test_bf16_rounding(r);
    test_finite_differences(r);
    test_parallel_team();
    if (failures) {
        printf("%d check(s) failed\n", failures);
        return 1;
    }
    printf("all kernel checks passed\n");
    return 0;
}
