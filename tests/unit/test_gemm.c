/* test_gemm.c: the CPU levels' matrix product (kernels/cpu/gemm.c) against
 * plain loops. Our product (the avx512 and avx2 levels unless
 * LLM_GEMM=openblas) has an order of summation (fmaf chains over blocks of
 * the level's LLM_GEMM_KC_* values of k, times alpha, added to C block by
 * block), so it must equal a scalar loop in that order bit for bit, for
 * every transpose, beta 0 and 1, edge tiles, several k blocks, and one or
 * two threads, called from inside an OpenMP region too; so must the avx2
 * level's bf16 product (ours, rounding as it packs) with the loop over
 * inputs rounded to bf16. Every level (the OpenBLAS ones
 * included) must agree with a double-precision product within rounding, and
 * so must each level's bf16 product with the double product of inputs
 * rounded to bf16 (run it with LLM_GEMM=own-nobf16 for the avx512 level's
 * emulated path). A product over a prefix of a panel packed once
 * (llm_cpu_panel_*) must be the level's product over that prefix: the
 * same bits where ours runs. Levels this build lacks or this CPU cannot
 * run are skipped, saying so.
 *
 * The amx level's bf16 product (AMX tiles) is held to rounding too, and
 * runs twice: on the amx level where the CPU has AMX, and everywhere with
 * AVX512_BF16 as "amxemu", the same code compiled over a model of the tile
 * instructions (kernels/cpu/amx_emulate.h, which aborts where the hardware
 * would fault), since no machine this project is tested on has AMX. */
#include <math.h>
#include <omp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cpu/cpu.h"
#include "kernels.h"

#define TESTRAND_SEED 0x6a09e667f3bcc909ull
#include "testrand.h"

typedef void gemm_fn(int ta, int tb, int M, int N, int K, float alpha, const float *A, int lda,
                     const float *B, int ldb, float beta, float *C, int ldc);
/* Weak: present when the build has the level (every x86-64 build but
 * NATIVE=1's, which has llm_cpu_gemm_native alone). */
extern gemm_fn llm_cpu_gemm_generic __attribute__((weak));
extern gemm_fn llm_cpu_gemm_avx2 __attribute__((weak));
extern gemm_fn llm_cpu_gemm_avx512 __attribute__((weak));
extern gemm_fn llm_cpu_gemm_amx __attribute__((weak));
extern gemm_fn llm_cpu_gemm_amxemu __attribute__((weak));
extern gemm_fn llm_cpu_gemm_native __attribute__((weak));
extern gemm_fn llm_cpu_gemm_bf16_generic __attribute__((weak));
extern gemm_fn llm_cpu_gemm_bf16_avx2 __attribute__((weak));
extern gemm_fn llm_cpu_gemm_bf16_avx512 __attribute__((weak));
extern gemm_fn llm_cpu_gemm_bf16_amx __attribute__((weak));
extern gemm_fn llm_cpu_gemm_bf16_amxemu __attribute__((weak));
extern gemm_fn llm_cpu_gemm_bf16_native __attribute__((weak));
/* The panels of each level (cpu.h: llm_cpu_panel_*). */
typedef size_t pfloats_fn(int K, int N);
typedef size_t pwork_fn(int K);
typedef void ppack_fn(llm_cpu_panel *pn, float *mem, int bf16, const float *B, int ldb, int tb,
                      int K, int N);
typedef void pgemm_fn(int ta, int M, int N, int K, int j0, int k0, float alpha, const float *A,
                      int lda, const llm_cpu_panel *pn, float beta, float *C, int ldc,
                      float *work);
#define PANEL_FNS(level)                                                                      \
    extern pfloats_fn llm_cpu_panel_floats_##level __attribute__((weak));                     \
    extern pwork_fn llm_cpu_panel_work_##level __attribute__((weak));                         \
    extern ppack_fn llm_cpu_panel_pack_##level __attribute__((weak));                         \
    extern pgemm_fn llm_cpu_panel_gemm_##level __attribute__((weak));
PANEL_FNS(generic)
PANEL_FNS(avx2)
PANEL_FNS(avx512)
PANEL_FNS(amx)
PANEL_FNS(amxemu)
PANEL_FNS(native)
typedef struct {
    pfloats_fn *floats;
    pwork_fn *work;
    ppack_fn *pack;
    pgemm_fn *gemm;
} panel_fns;
#define PANEL(level)                                                                          \
    { llm_cpu_panel_floats_##level, llm_cpu_panel_work_##level, llm_cpu_panel_pack_##level,  \
      llm_cpu_panel_gemm_##level }
typedef const char *name_fn(void);
extern name_fn llm_cpu_gemm_name_avx2 __attribute__((weak));
extern name_fn llm_cpu_gemm_name_avx512 __attribute__((weak));
extern name_fn llm_cpu_gemm_name_amx __attribute__((weak));
extern name_fn llm_cpu_gemm_name_amxemu __attribute__((weak));

/* bf16 products compare with the double product of inputs rounded here,
 * independently of the kernels: 8 significant bits, ties to even. */
static int bf16;

static float rounded(float x)
{
    if (!bf16 || !isfinite(x) || x == 0)
        return x;
    int e;
    float m = frexpf(x, &e);
    return ldexpf(rintf(ldexpf(m, 8)), e - 8);
}

static int failures;

static float *rnd(size_t n)
{
    float *p = malloc((n ? n : 1) * sizeof *p);
    if (!p)
        exit(1);
    for (size_t i = 0; i < n; i++)
        p[i] = uniform();
    return p;
}

/* A copy of x[0, n), rounded to bf16 for bf16 products: the loops below
 * take inputs so rounded (once, not once per use). */
static float *rounded_copy(const float *x, size_t n)
{
    float *r = malloc((n ? n : 1) * sizeof *r);
    if (!r)
        exit(1);
    for (size_t i = 0; i < n; i++)
        r[i] = rounded(x[i]);
    return r;
}

static float opa(const float *A, int lda, int ta, int i, int k)
{
    return ta ? A[(size_t)k * lda + i] : A[(size_t)i * lda + k];
}

static float opb(const float *B, int ldb, int tb, int k, int j)
{
    return tb ? B[(size_t)j * ldb + k] : B[(size_t)k * ldb + j];
}

/* Our product's order with blocks of kc values of k, one element at a
 * time (A and B as rounded_copy() gives them). */
static void ordered(int kc, int ta, int tb, int M, int N, int K, float alpha, const float *A,
                    int lda, const float *B, int ldb, float beta, float *C, int ldc)
{
    for (int i = 0; i < M; i++)
        for (int j = 0; j < N; j++) {
            float c = C[(size_t)i * ldc + j];
            if (beta == 0.0f)
                c = 0.0f;
            for (int k0 = 0; k0 < K; k0 += kc) {
                float s = 0.0f;
                for (int k = k0; k < K && k < k0 + kc; k++)
                    s = fmaf(opa(A, lda, ta, i, k), opb(B, ldb, tb, k, j), s);
                float r = alpha * s;
                c = (k0 == 0 && beta == 0.0f) ? r : c + r;
            }
            C[(size_t)i * ldc + j] = c;
        }
}

/* Within rounding of the double product (A and B as rounded_copy() gives
 * them): |err| <= 4 K 2^-24 sum |a b| + |c|. */
static int close_to_double(int ta, int tb, int M, int N, int K, float alpha, const float *A,
                           int lda, const float *B, int ldb, float beta, const float *C0,
                           const float *C, int ldc)
{
    for (int i = 0; i < M; i++)
        for (int j = 0; j < N; j++) {
            double s = 0, mag = 0;
            for (int k = 0; k < K; k++) {
                double p = (double)opa(A, lda, ta, i, k) * opb(B, ldb, tb, k, j);
                s += p;
                mag += fabs(p);
            }
            double want = alpha * s + (beta != 0.0f ? C0[(size_t)i * ldc + j] : 0.0);
            double lim = (4.0 * (K + 2) * fabs(alpha) * mag + fabs(want)) * 0x1p-24 + 1e-30;
            if (!(fabs(C[(size_t)i * ldc + j] - want) <= lim))
                return 0;
        }
    return 1;
}

/* kc: the block of our product's order of summation (the result must be
 * the ordered loop's bits), or 0 (within rounding of the double product). */
static void one(const char *level, gemm_fn *f, int kc, int ta, int tb, int M, int N, int K,
                float alpha, float beta, int ldpad)
{
    int lda = (ta ? M : K) + ldpad, ldb = (tb ? K : N) + ldpad, ldc = N + ldpad;
    size_t na = (size_t)(ta ? K : M) * lda, nb = (size_t)(tb ? N : K) * ldb,
           nc = (size_t)M * ldc;
    float *A = rnd(na), *B = rnd(nb), *C0 = rnd(nc);
    float *Ar = rounded_copy(A, na), *Br = rounded_copy(B, nb);
    if (beta == 0.0f)   /* C is not read: NaN there would show */
        for (size_t i = 0; i < nc; i++)
            if (i % (size_t)ldc < (size_t)N)
                C0[i] = NAN;
    float *got = malloc((nc ? nc : 1) * sizeof *got), *want = malloc((nc ? nc : 1) * sizeof *want);
    if (!got || !want)
        exit(1);
    memcpy(want, C0, nc * sizeof *want);
    if (kc)
        ordered(kc, ta, tb, M, N, K, alpha, Ar, lda, Br, ldb, beta, want, ldc);
    for (int threads = 1; threads <= 2; threads++) {
        for (int nested = 0; nested <= 1; nested++) {
            memcpy(got, C0, nc * sizeof *got);
            omp_set_num_threads(threads);
            if (nested) {
#pragma omp parallel num_threads(2)
#pragma omp single
                f(ta, tb, M, N, K, alpha, A, lda, B, ldb, beta, got, ldc);
            } else {
                f(ta, tb, M, N, K, alpha, A, lda, B, ldb, beta, got, ldc);
            }
            int ok = kc ? memcmp(got, want, nc * sizeof *got) == 0
                           : close_to_double(ta, tb, M, N, K, alpha, Ar, lda, Br, ldb, beta, C0,
                                             got, ldc);
            /* Padding columns of C are never written. */
            for (int i = 0; i < M && ok; i++)
                for (int j = N; j < ldc; j++)
                    ok &= memcmp(&got[(size_t)i * ldc + j], &C0[(size_t)i * ldc + j],
                                 sizeof *got) == 0;
            if (!ok) {
                failures++;
                printf("FAIL %s: ta %d tb %d M %d N %d K %d alpha %g beta %g ld+%d, "
                       "%d thread(s)%s: %s\n", level, ta, tb, M, N, K, alpha, beta, ldpad, threads,
                       nested ? " inside a parallel region" : "",
                       kc ? "not the bits of the ordered loop" : "outside rounding");
            }
        }
    }
    omp_set_num_threads(1);
    free(A);
    free(B);
    free(Ar);
    free(Br);
    free(C0);
    free(got);
    free(want);
}

static float *aligned(size_t floats)
{
    float *p = aligned_alloc(64, (floats * sizeof(float) + 127) & ~(size_t)63);
    if (!p)
        exit(1);
    return p;
}

/* op(B) (K x N) packed once; products over prefixes of it (the first K'
 * rows: all, an even part, none; the first N' columns) must be f's over
 * the same prefix of B: its bits where our product runs (kc), else within
 * rounding of the double product. So must products of columns from j0
 * only over k from k0 only (multiples of LLM_PANEL_STEP, k0 within a
 * block of summation, at the start of one, in a last block of up to 2 KC
 * on either level, at K) where op(A)'s columns before k0 are zeros, and C's
 * columns before j0 must stay as they were. */
static void panel(const char *level, const panel_fns *p, gemm_fn *f, int kc, int tb, int K,
                  int N)
{
    int ldb = (tb ? K : N) + 3, M = 100;   /* two blocks of MC rows */
    float *B = rnd((size_t)(tb ? N : K) * ldb), *Br = rounded_copy(B, (size_t)(tb ? N : K) * ldb);
    float *mem = aligned(p->floats(K, N)), *work = aligned(p->work(K) + 16);
    llm_cpu_panel pn;
    p->pack(&pn, mem, bf16, B, ldb, tb, K, N);
    const int ks[] = {K, K / 2 & ~1, 0}, ns[] = {N, N / 2 + 1};
    const struct { int j0, k0; } parts[] = {{0, 0},    {64, 0},   {64, 64},          {0, 576},
                                            {64, 832}, {0, 1088}, {0, 64 * (K / 64)}};
    for (int ta = 0; ta <= 1; ta++)
        for (size_t a = 0; a < sizeof ks / sizeof ks[0]; a++)
            for (size_t b = 0; b < sizeof ns / sizeof ns[0]; b++)
                for (size_t cb = 0; cb < 2 * (sizeof parts / sizeof parts[0]); cb++) {
                    int k = ks[a], n = ns[b], j0 = parts[cb / 2].j0, k0 = parts[cb / 2].k0;
                    int c = (int)(cb / 2), beta = (int)(cb % 2);
                    if ((c > 0 && k0 == 0 && j0 == 0) || k0 > k || j0 >= n)
                        continue;
                    int lda = (ta ? M : k) + 1, ldc = n + 2;
                    size_t nc = (size_t)M * ldc;
                    float *A = rnd((size_t)(ta ? k : M) * lda), *C0 = rnd(nc);
                    float *want = malloc(nc * sizeof *want), *got = malloc(nc * sizeof *got);
                    if (!want || !got)
                        exit(1);
                    for (int i = 0; i < M; i++)
                        for (int q = 0; q < k0; q++)
                            A[ta ? (size_t)q * lda + i : (size_t)i * lda + q] = 0.0f;
                    if (!beta)
                        for (size_t i = 0; i < nc; i++)
                            C0[i] = NAN;
                    memcpy(want, C0, nc * sizeof *want);
                    memcpy(got, C0, nc * sizeof *got);
                    f(ta, tb, M, n, k, 0.5f, A, lda, B, ldb, (float)beta, want, ldc);
                    for (int i = 0; i < M; i++)
                        memcpy(want + (size_t)i * ldc, C0 + (size_t)i * ldc, j0 * sizeof *want);
                    p->gemm(ta, M, n, k, j0, k0, 0.5f, A, lda, &pn, (float)beta, got, ldc, work);
                    int ok = 1;
                    for (int i = 0; i < M; i++)
                        ok &= memcmp(got + (size_t)i * ldc, C0 + (size_t)i * ldc,
                                     j0 * sizeof *got) == 0;
                    float *Ar = rounded_copy(A, (size_t)(ta ? k : M) * lda);
                    ok &= kc ? memcmp(got, want, nc * sizeof *got) == 0
                             : close_to_double(ta, tb, M, n - j0, k, 0.5f, Ar, lda,
                                               Br + (tb ? (size_t)j0 * ldb : (size_t)j0), ldb,
                                               (float)beta, C0 + j0, got + j0, ldc);
                    free(Ar);
                    if (!ok) {
                        failures++;
                        printf("FAIL %s panel: tb %d K %d N %d, product ta %d over %d x %d "
                               "from column %d and k %d, beta %d: %s\n", level, tb, K, N, ta,
                               k, n, j0, k0, beta,
                               kc ? "not the product's bits" : "outside rounding");
                    }
                    free(A);
                    free(C0);
                    free(want);
                    free(got);
                }
    free(B);
    free(Br);
    free(mem);
    free(work);
}

static int runs(const char *level)
{
    if (strcmp(level, "amxemu") == 0) {   /* the amx level's code but its tiles */
        __builtin_cpu_init();
        return runs("avx512") && __builtin_cpu_supports("avx512bf16");
    }
    for (const char *const *l = llm_kernels_cpu_levels(1); *l; l++)
        if (strcmp(*l, level) == 0)
            return 1;
    return 0;
}

int main(void)
{
    static const struct { int M, N, K; } shapes[] = {
        {1, 1, 1},    {12, 32, 8},  {13, 33, 7},  {5, 70, 300}, {97, 45, 513},
        {200, 260, 64}, {64, 48, 256}, {3, 600, 2},  {40, 17, 0},  {30, 40, 800},
        {9, 37, 1300},
    };
    /* gemm: where our product may run, the level's name for what runs;
     * there the result must be the ordered loop's bits. The avx512 and
     * amx bf16 products are held to rounding only (VDPBF16PS and the tiles
     * sum pairs). The first NL rows are fp32, the next NL the same levels'
     * bf16. */
    enum { NL = 6 };
    const struct { const char *name; gemm_fn *f; name_fn *gemm; panel_fns panel; } levels[] = {
        {"generic", llm_cpu_gemm_generic, NULL, PANEL(generic)},
        {"avx2", llm_cpu_gemm_avx2, llm_cpu_gemm_name_avx2, PANEL(avx2)},
        {"avx512", llm_cpu_gemm_avx512, llm_cpu_gemm_name_avx512, PANEL(avx512)},
        {"amx", llm_cpu_gemm_amx, llm_cpu_gemm_name_amx, PANEL(amx)},
        {"amxemu", llm_cpu_gemm_amxemu, llm_cpu_gemm_name_amxemu, PANEL(amxemu)},
        {"native", llm_cpu_gemm_native, NULL, PANEL(native)},
        {"generic", llm_cpu_gemm_bf16_generic, NULL, PANEL(generic)},
        {"avx2", llm_cpu_gemm_bf16_avx2, llm_cpu_gemm_name_avx2, PANEL(avx2)},
        {"avx512", llm_cpu_gemm_bf16_avx512, NULL, PANEL(avx512)},
        {"amx", llm_cpu_gemm_bf16_amx, NULL, PANEL(amx)},
        {"amxemu", llm_cpu_gemm_bf16_amxemu, NULL, PANEL(amxemu)},
        {"native", llm_cpu_gemm_bf16_native, NULL, PANEL(native)},
    };
    _Static_assert(sizeof levels / sizeof levels[0] == 2 * NL, "fp32 and bf16 rows");
    int tested = 0;
    for (size_t l = 0; l < sizeof levels / sizeof levels[0]; l++) {
        bf16 = l >= NL;
        char name[32];
        snprintf(name, sizeof name, "%s%s", levels[l].name, bf16 ? " bf16" : "");
        /* amxemu differs from avx512 in its tiles alone: bf16 products
         * unless LLM_GEMM chooses another path. */
        const char *path = getenv("LLM_GEMM");
        if (strcmp(levels[l].name, "amxemu") == 0 && (!bf16 || (path && *path))) {
            printf("skip %s: avx512's code %s\n", name,
                   bf16 ? "under this LLM_GEMM" : "(the tiles take bf16 products only)");
            continue;
        }
        if (!levels[l].f || !runs(levels[l].name)) {
            if (strcmp(levels[l].name, "native") != 0)
                printf("skip %s: %s\n", name,
                       levels[l].f ? "this CPU cannot run it" : "not in this build");
            continue;
        }
        /* Our product (its name "own LEVEL") unless LLM_GEMM=openblas. */
        const char *g = levels[l].gemm ? levels[l].gemm() : "";
        int kc = strcmp(g, "own avx512") == 0 || strcmp(g, "own amx") == 0 ? LLM_GEMM_KC_AVX512
                 : strcmp(g, "own avx2") == 0 ? LLM_GEMM_KC_AVX2
                                              : 0;
        for (size_t s = 0; s < sizeof shapes / sizeof shapes[0]; s++)
            for (int t = 0; t < 4; t++)
                one(name, levels[l].f, kc, t & 1, t >> 1, shapes[s].M, shapes[s].N,
                    shapes[s].K, t == 2 ? 0.125f : 1.0f, t == 3 ? 0.0f : 1.0f, (int)(s % 3));
        printf("%s: %s\n", name,
               kc ? "equal to the ordered loop, bit for bit" : "within rounding");
        /* Panels: the product's own bits wherever ours runs (the avx512
         * bf16 product included: the same path packs the panel; not the
         * amx level's, whose panels are VDPBF16PS's). */
        int own = kc || (bf16 && strcmp(levels[l].name, "avx512") == 0 &&
                         strncmp(levels[l - NL].gemm ? levels[l - NL].gemm() : "", "own", 3) == 0);
        static const struct { int K, N; } pshapes[] = {{64, 48}, {1100, 24}, {7, 5}, {48, 256},
                                                          {320, 100}};
        for (size_t s = 0; s < sizeof pshapes / sizeof pshapes[0]; s++)
            for (int tb = 0; tb <= 1; tb++)
                panel(name, &levels[l].panel, levels[l].f, own, tb, pshapes[s].K, pshapes[s].N);
        printf("%s panels: %s\n", name, own ? "the product's bits" : "within rounding");
        tested++;
    }
    if (!tested) {
        printf("no level of this build runs here\n");
        return 77;
    }
    printf("%d failures\n", failures);
    return failures ? 1 : 0;
}
