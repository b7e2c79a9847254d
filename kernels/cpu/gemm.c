/* gemm.c: the CPU tables' general matrix product, C(M,N) = (or +=)
 * op(A)(M,K) . op(B)(K,N), row-major, op a transpose where asked.
 *
 * Our own blocked product (BLIS's loop nest: panels of B and of A packed
 * into slivers of NR columns and MR rows, and a register micro-kernel of
 * 12 x 32 floats in 512-bit FMAs, or 6 x 16 in 256-bit ones) runs on the
 * avx512 and avx2 levels, since the OpenBLAS that Debian ships may run
 * 256-bit kernels on CPUs that have AVX-512 (it knows no newer core than
 * its release, and OPENBLAS_CORETYPE can pin it lower), and on AVX2-only
 * Zen 2 ours trains the stories15M shape 15% faster than OpenBLAS's Zen
 * kernels (OpenBLAS zeroes C in a pass of its own before a product with
 * beta 0, and its threads scale 1.6x from one to two, ours 1.8x) and
 * fine-tunes and evaluates SmolLM2-135M 3-5% faster (with KC = 512 there:
 * 256 was 0-10% slower than OpenBLAS, from session to session). On the
 * generic level, and with LLM_GEMM=openblas, OpenBLAS's sgemm. The amx
 * level is the avx512 one whose bf16 products run in AMX tiles (blocks of
 * 32 x 32 by TDPBF16PS, below).
 *
 * Order of summation (our product, on either level): each element is a
 * chain of fmaf over k within each block of KC values of k (the level's
 * LLM_GEMM_KC_*), from 0, times alpha, added to the element in block order
 * (the first block stored when beta is 0, every block added when it is
 * 1). Threads split rows and columns only, never k, so the result is the
 * same bits for any thread count. */
#include <limits.h>
#include <math.h>
#include <pthread.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cblas.h>
#include <omp.h>

#include "cpu.h"
#include "amx.h"
#include "half.h"
#include "simd.h"

static void blas_gemm(int ta, int tb, int M, int N, int K, float alpha, const float *A,
                      int lda, const float *B, int ldb, float beta, float *C, int ldc)
{
    cblas_sgemm(CblasRowMajor, ta ? CblasTrans : CblasNoTrans, tb ? CblasTrans : CblasNoTrans,
                M, N, K, alpha, A, lda, B, ldb, beta, C, ldc);
}

/* x rounded to bfloat16 (half.h): its bits, and the float they are. */
static inline uint32_t bf16_bits(float x)
{
    return llm_float_to_bf16(x);
}

/* llm_bf16_to_float(llm_float_to_bf16(x)), in 32-bit lanes: loops of it
 * vectorise without narrowing to 16 bits and back. */
static inline float bf16_round(float x)
{
    uint32_t u;
    memcpy(&u, &x, sizeof u);
    u = (u & 0x7fffffffu) > 0x7f800000u ? u | 0x00400000u : u + 0x7fffu + (u >> 16 & 1u);
    u &= 0xffff0000u;
    memcpy(&x, &u, sizeof x);
    return x;
}

/* Element (r, c) of op(X): X's (c, r) when t. */
static inline float op(const float *X, int ld, int t, int r, int c)
{
    return t ? X[(size_t)c * ld + r] : X[(size_t)r * ld + c];
}

/* dst(rows, cols) = src(rows, cols; leading dimension ld) rounded to
 * bf16, by every thread unless called inside a parallel region (the
 * attention's tiles; own_gemm says why omp_get_level) or small. */
static void round_copy(float *dst, const float *src, int rows, int cols, int ld)
{
#pragma omp parallel for schedule(static) if (omp_get_level() == 0 && (size_t)rows * cols >= 65536)
    for (int r = 0; r < rows; r++) {
        const float *s = src + (size_t)r * ld;
        float *d = dst + (size_t)r * cols;
#pragma omp simd
        for (int c = 0; c < cols; c++)
            d[c] = bf16_round(s[c]);
    }
}

/* The bf16 product as the level's fp32 product (llm_cpu_gemm: ours, or
 * OpenBLAS) over copies of A and B rounded to bf16 (the generic level,
 * LLM_GEMM=openblas, or when our panels did not fit in memory),
 * each copy in its matrix's own layout, so that it reads and writes rows
 * and the product transposes as it packs; plain loops when even the copies
 * do not fit. */
static void bf16_by_copies(int ta, int tb, int M, int N, int K, float alpha, const float *A,
                           int lda, const float *B, int ldb, float beta, float *C, int ldc)
{
    int ar = ta ? K : M, ac = ta ? M : K, br = tb ? N : K, bc = tb ? K : N;
    float *a = malloc(((size_t)ar * ac + 1) * sizeof *a);
    float *b = malloc(((size_t)br * bc + 1) * sizeof *b);
    if (a && b) {
        round_copy(a, A, ar, ac, lda);
        round_copy(b, B, br, bc, ldb);
        llm_cpu_gemm(ta, tb, M, N, K, alpha, a, ac > 0 ? ac : 1, b, bc > 0 ? bc : 1, beta, C,
                     ldc);
    } else {
        for (int i = 0; i < M; i++)
            for (int j = 0; j < N; j++) {
                float s = 0.0f;
                for (int k = 0; k < K; k++)
                    s = fmaf(bf16_round(op(A, lda, ta, i, k)), bf16_round(op(B, ldb, tb, k, j)), s);
                float *c = C + (size_t)i * ldc + j;
                *c = alpha * s + (beta != 0.0f ? *c : 0.0f);
            }
    }
    free(a);
    free(b);
}

/* A panel where our product does not run (the generic level,
 * LLM_GEMM=openblas): op(B) as it is, K x N, and the products over it the
 * level's own. */
static void panel_plain_pack(float *mem, const float *B, int ldb, int tb, int K, int N)
{
    for (int k = 0; k < K; k++)
        for (int j = 0; j < N; j++)
            mem[(size_t)k * N + j] = op(B, ldb, tb, k, j);
}

static void panel_plain_gemm(int ta, int M, int N, int K, int j0, int k0, float alpha,
                             const float *A, int lda, const llm_cpu_panel *pn, float beta,
                             float *C, int ldc)
{
    int ldb = pn->N > 0 ? pn->N : 1, k = k0 < K ? K - k0 : 0;
    if (k == 0)
        k0 = 0;   /* (nothing is read) */
    (pn->bf16 ? llm_cpu_gemm_bf16 : llm_cpu_gemm)(
        ta, 0, M, N - j0, k, alpha, ta ? A + (size_t)k0 * lda : A + k0, lda,
        pn->p + (size_t)k0 * ldb + j0, ldb, beta, C + j0, ldc);
}

#if defined(__AVX512F__) || (defined(__AVX2__) && defined(__FMA__))
#include <immintrin.h>

/* Our product, on the avx512 and avx2 levels: the same loop nest, over
 * micro-kernels of MR rows by two vectors. */
enum {
#if defined(__AVX512F__)
    MR = 12,     /* rows of the micro-kernel: 24 accumulators of 16 floats */
    NR = 32,     /* columns: two vectors */
    KC = LLM_GEMM_KC_AVX512,
#else
    MR = 6,      /* 12 accumulators of 8 floats, of AVX2's 16 registers */
    NR = 16,
    KC = LLM_GEMM_KC_AVX2,
#endif
                 /* k per block of the order of summation, and per packed
                  * block: an A sliver (12 KB on either level) and a B
                  * sliver (32 KB) stay in L1/L2 across the micro-kernel's
                  * loop (avx2 with KC = 512 rather than 256: SmolLM2-135M
                  * fine-tuned 4-6% faster on Zen 2, its evaluation 3-5%, the
                  * stories15M shape the same). The packed block before a
                  * short tail takes the tail too (below 2 KC: the
                  * micro-kernel sums it as its own block, C then in L1), so
                  * that a product with K = 288 makes one pass over C, not
                  * two and a read */
    MC = 96,     /* rows of A packed per task (KC x MC: 96 or 192 KB, L2) */
    NC = 4096,   /* columns of B packed at once (KC x NC: 4 or 8 MB, L3) */
};

/* Grow-only scratch of the calling thread, so that the many small
 * products of attention allocate nothing; freed when the thread ends. An
 * OpenMP team smaller than the one before ends the threads it no longer
 * needs, and the next larger team starts new ones (libgomp: attention's
 * team of B x H threads between products' teams of all of them, on a
 * machine with more threads than that): kept in _Thread_local pointers,
 * each such thread's scratch leaked, 137 KB a layer in a test with 4
 * threads and 3 heads. */
typedef struct {
    float *buf[2];
    size_t cap[2];
} thread_scratch;

static pthread_key_t scratch_key;
static int scratch_key_ok;

static void scratch_free(void *p)
{
    thread_scratch *t = p;
    free(t->buf[0]);
    free(t->buf[1]);
    free(t);
}

static void scratch_key_make(void)
{
    scratch_key_ok = pthread_key_create(&scratch_key, scratch_free) == 0;
}

/* NULL when out of memory (own_gemm then fails, and OpenBLAS runs). */
static float *scratch(int which, size_t floats)
{
    static pthread_once_t once = PTHREAD_ONCE_INIT;
    pthread_once(&once, scratch_key_make);
    if (!scratch_key_ok)
        return NULL;
    thread_scratch *t = pthread_getspecific(scratch_key);
    if (!t) {
        t = calloc(1, sizeof *t);
        if (!t || pthread_setspecific(scratch_key, t) != 0) {
            free(t);
            return NULL;
        }
    }
    if (t->cap[which] < floats) {
        free(t->buf[which]);
        size_t bytes = (floats * sizeof(float) + 63) & ~(size_t)63;
        t->buf[which] = aligned_alloc(64, bytes);
        t->cap[which] = t->buf[which] ? floats : 0;
    }
    return t->buf[which];
}

/* How a product runs: floats; bf16 inputs emulated (rounded while packing,
 * then the float micro-kernel); bf16 pairs through VDPBF16PS; bf16 pairs
 * through AMX's TDPBF16PS (the amx level). */
enum { P_F32, P_BF16_ROUND, P_BF16_DP, P_BF16_AMX };

/* Slots of a packed sliver's row that kc values of k take: pairs of them
 * with P_BF16_DP; with P_BF16_AMX, pairs up to a multiple of 16 (a tile's
 * row of 64 bytes), zero past kc. */
static inline int slots(int mode, int kc)
{
    return mode == P_BF16_AMX ? ((kc + 1) / 2 + 15) / 16 * 16
           : mode == P_BF16_DP ? (kc + 1) / 2
                               : kc;
}

/* C(M, N) of a product over no k: 0 with beta 0, else as it is. */
static void no_k(float beta, float *C, int ldc, int M, int N)
{
    if (beta == 0.0f)
        for (int i = 0; i < M; i++)
            memset(C + (size_t)i * ldc, 0, (size_t)N * sizeof *C);
}

/* x[0, n) rounded to bf16 in place: P_BF16_ROUND's slivers packed by
 * pack_rows, rounded where they were just written (rounding commutes with
 * packing). */
static inline void round_run(float *x, size_t n)
{
#pragma omp simd
    for (size_t i = 0; i < n; i++)
        x[i] = bf16_round(x[i]);
}

/* dst[0, n) = src[0, n), rounded to bf16 when round (a constant n: vector
 * moves, no call), then zeros up to w. */
static inline void copy_run(float *restrict dst, const float *restrict src, int n, int w,
                            int round)
{
    if (round) {
#pragma omp simd
        for (int i = 0; i < n; i++)
            dst[i] = bf16_round(src[i]);
    } else {
        memcpy(dst, src, (size_t)n * sizeof *src);
    }
    if (n < w)
        memset(dst + n, 0, (size_t)(w - n) * sizeof *dst);
}

#if defined(__AVX512F__)
/* Bit patterns of bf16: 16 floats (the first n) converted by VCVTNEPS2BF16
 * (to nearest, ties to even; denormal inputs become zero), zero-extended
 * into 32-bit lanes. */
__attribute__((target("avx512bf16")))
static inline __m512i bf16_lanes(const float *x, int n)
{
    __m256bh h = _mm512_cvtneps_pbh(_mm512_maskz_loadu_ps(lanes(n), x));
    return _mm512_cvtepu16_epi32((__m256i)h);
}

/* r[0..15], 16 rows of 16 32-bit values, transposed in place: r[c] holds
 * column c, row i in lane i. */
static inline void transpose16(__m512i r[16])
{
    __m512i t[16];
    for (int i = 0; i < 16; i += 2) {
        t[i] = _mm512_unpacklo_epi32(r[i], r[i + 1]);
        t[i + 1] = _mm512_unpackhi_epi32(r[i], r[i + 1]);
    }
    /* r[4i + j]: in each 128-bit lane L, rows 4i..4i+3 of column 4L + j */
    for (int i = 0; i < 16; i += 4) {
        r[i] = _mm512_unpacklo_epi64(t[i], t[i + 2]);
        r[i + 1] = _mm512_unpackhi_epi64(t[i], t[i + 2]);
        r[i + 2] = _mm512_unpacklo_epi64(t[i + 1], t[i + 3]);
        r[i + 3] = _mm512_unpackhi_epi64(t[i + 1], t[i + 3]);
    }
    for (int j = 0; j < 4; j++) {
        __m512i u0 = _mm512_shuffle_i32x4(r[j], r[4 + j], 0x88);
        __m512i u1 = _mm512_shuffle_i32x4(r[j], r[4 + j], 0xdd);
        __m512i v0 = _mm512_shuffle_i32x4(r[8 + j], r[12 + j], 0x88);
        __m512i v1 = _mm512_shuffle_i32x4(r[8 + j], r[12 + j], 0xdd);
        t[j] = _mm512_shuffle_i32x4(u0, v0, 0x88);
        t[4 + j] = _mm512_shuffle_i32x4(u1, v1, 0x88);
        t[8 + j] = _mm512_shuffle_i32x4(u0, v0, 0xdd);
        t[12 + j] = _mm512_shuffle_i32x4(u1, v1, 0xdd);
    }
    for (int c = 0; c < 16; c++)
        r[c] = t[c];
}

/* A sliver of w (NR or MR) lines for P_BF16_DP: slot dst[p * w + r] holds
 * line r's values at k = k0 + 2p (low half) and k0 + 2p + 1 (high half),
 * zero past kc and past line n. Line r of the sliver is X's column c0 + r
 * when `across` (X's rows are k: pairs come from two rows), else X's row
 * c0 + r (pairs are adjacent in it: 16 lines at a time are converted and
 * transposed). */
__attribute__((target("avx512bf16")))
static void pack_pairs(uint32_t *restrict dst, int w, const float *X, int ld, int across,
                       int k0, int kc, int c0, int n)
{
    int kp = (kc + 1) / 2;
    if (across) {
        for (int p = 0; p < kp; p++) {
            const float *r0 = X + (size_t)(k0 + 2 * p) * ld + c0;
            for (int h = 0; h < w; h += 16) {
                __m512i v = bf16_lanes(r0 + h, n - h);
                if (2 * p + 1 < kc)
                    v = _mm512_or_si512(v, _mm512_slli_epi32(bf16_lanes(r0 + ld + h, n - h), 16));
                _mm512_mask_storeu_epi32(dst + (size_t)p * w + h, lanes(w - h), v);
            }
        }
        return;
    }
    for (int g = 0; g < w; g += 16) {
        __mmask16 out = lanes(w - g);
        for (int c = 0; c < kc; c += 32) {
            __m512i v[16];
            for (int i = 0; i < 16; i++) {
                if (g + i >= n || g + i >= w) {
                    v[i] = _mm512_setzero_si512();
                    continue;
                }
                const float *x = X + (size_t)(c0 + g + i) * ld + k0 + c;
                v[i] = (__m512i)_mm512_cvtne2ps_pbh(
                    _mm512_maskz_loadu_ps(lanes(kc - c - 16), x + 16),
                    _mm512_maskz_loadu_ps(lanes(kc - c), x));
            }
            transpose16(v);
            for (int q = 0; q < 16 && c / 2 + q < kp; q++)
                _mm512_mask_storeu_epi32(dst + (size_t)(c / 2 + q) * w + g, out, v[q]);
        }
    }
}

/* Lines c0.. (the first n of w, NR or MR; zero past n) of X's rows, k0..
 * k0+kc of each, into dst[k * w + r]: 16 lines at a time transposed. */
static void pack_rows(float *restrict dst, int w, const float *X, int ld, int k0, int kc,
                      int c0, int n)
{
    for (int g = 0; g < w; g += 16) {
        __mmask16 out = lanes(w - g);
        for (int c = 0; c < kc; c += 16) {
            __m512i v[16];
            for (int i = 0; i < 16; i++)
                v[i] = g + i < n && g + i < w
                           ? _mm512_castps_si512(_mm512_maskz_loadu_ps(
                                 lanes(kc - c), X + (size_t)(c0 + g + i) * ld + k0 + c))
                           : _mm512_setzero_si512();
            transpose16(v);
            for (int q = 0; q < 16 && c + q < kc; q++)
                _mm512_mask_storeu_epi32(dst + (size_t)(c + q) * w + g, out, v[q]);
        }
    }
}

#else
/* r[0..7], 8 rows of 8 floats, transposed in place: r[c] holds column c. */
static inline void transpose8(__m256 r[8])
{
    __m256 t[8], u[8];
    for (int i = 0; i < 8; i += 2) {
        t[i] = _mm256_unpacklo_ps(r[i], r[i + 1]);
        t[i + 1] = _mm256_unpackhi_ps(r[i], r[i + 1]);
    }
    /* u[4h + j]: rows 4h..4h+3 of column j (low half) and j + 4 (high) */
    for (int h = 0; h < 8; h += 4) {
        u[h] = _mm256_shuffle_ps(t[h], t[h + 2], 0x44);
        u[h + 1] = _mm256_shuffle_ps(t[h], t[h + 2], 0xee);
        u[h + 2] = _mm256_shuffle_ps(t[h + 1], t[h + 3], 0x44);
        u[h + 3] = _mm256_shuffle_ps(t[h + 1], t[h + 3], 0xee);
    }
    for (int j = 0; j < 4; j++) {
        r[j] = _mm256_permute2f128_ps(u[j], u[4 + j], 0x20);
        r[4 + j] = _mm256_permute2f128_ps(u[j], u[4 + j], 0x31);
    }
}

/* The first n (8 or 6; else fewer, one at a time) lanes of v at d. */
static inline void store_first(float *d, __m256 v, int n)
{
    if (n == 8) {
        _mm256_storeu_ps(d, v);
    } else if (n == 6) {
        _mm_storeu_ps(d, _mm256_castps256_ps128(v));
        _mm_storel_pi((__m64 *)(d + 4), _mm256_extractf128_ps(v, 1));
    } else {
        float t[8];
        _mm256_storeu_ps(t, v);
        memcpy(d, t, (size_t)n * sizeof *d);
    }
}

/* Lines c0.. (the first n of w, NR or MR; zero past n) of X's rows, k0..
 * k0+kc of each, into dst[k * w + r]: 8 lines by 8 values at a time
 * transposed, the last few values of k one at a time. */
static void pack_rows(float *restrict dst, int w, const float *X, int ld, int k0, int kc,
                      int c0, int n)
{
    for (int g = 0; g < w; g += 8) {
        int lw = w - g < 8 ? w - g : 8, c = 0;
        for (; c + 8 <= kc; c += 8) {
            __m256 v[8];
            for (int i = 0; i < 8; i++)
                v[i] = i < lw && g + i < n
                           ? _mm256_loadu_ps(X + (size_t)(c0 + g + i) * ld + k0 + c)
                           : _mm256_setzero_ps();
            transpose8(v);
            for (int q = 0; q < 8; q++)
                store_first(dst + (size_t)(c + q) * w + g, v[q], lw);
        }
        for (; c < kc; c++)
            for (int i = 0; i < lw; i++)
                dst[(size_t)c * w + g + i] =
                    g + i < n ? X[(size_t)(c0 + g + i) * ld + k0 + c] : 0.0f;
    }
}
#endif

/* Rows k0.. of op(B), columns j0..j0+nc, into slivers of NR columns:
 * floats bp[s * kc * NR + k * NR + j] (zero past column nc), or with
 * P_BF16_DP pairs of k, (k = 2p, 2p + 1) in the low and high halves of
 * 32-bit slot bp[s * kp * NR + p * NR + j], kp = (kc + 1) / 2.
 * Unit u of b_units(): row k0 + u into every sliver when B's rows are k
 * and hold floats (B is then read along its rows: a sliver at a time, each
 * row's few values would be a cache miss the prefetchers cannot foresee),
 * else sliver u. */
static int b_units(int tb, int mode, int kc, int nc)
{
    return !tb && mode < P_BF16_DP ? kc : (nc + NR - 1) / NR;
}

static void pack_b(float *restrict bp, const float *B, int ldb, int tb, int k0, int kc,
                   int j0, int nc, int u, int mode)
{
    int round = mode == P_BF16_ROUND;
    if (!tb && mode < P_BF16_DP) {
        const float *src = B + (size_t)(k0 + u) * ldb + j0;
        for (int js = 0; js < nc; js += NR) {
            float *dst = bp + (size_t)js * kc + (size_t)u * NR;
            if (nc - js >= NR)
                copy_run(dst, src + js, NR, NR, round);
            else
                copy_run(dst, src + js, nc - js, NR, round);
        }
        return;
    }
    int s = u, js = s * NR, nr = nc - js < NR ? nc - js : NR;
#if defined(__AVX512F__)
    if (mode >= P_BF16_DP) {   /* P_BF16_AMX: then zero pairs up to slots() */
        int kp = (kc + 1) / 2, ks = slots(mode, kc);
        uint32_t *dst = (uint32_t *)bp + (size_t)s * ks * NR;
        pack_pairs(dst, NR, B, ldb, !tb, k0, kc, j0 + js, nr);
        memset(dst + (size_t)kp * NR, 0, (size_t)(ks - kp) * NR * sizeof *dst);
        return;
    }
#endif
    float *dst = bp + (size_t)s * kc * NR;   /* B's rows are j */
    pack_rows(dst, NR, B, ldb, k0, kc, j0 + js, nr);
    if (round)
        round_run(dst, (size_t)kc * NR);
}

/* Rows i0..i0+mc of op(A), columns k0..k0+kc, into slivers of MR rows:
 * ap[s * kc * MR + k * MR + i] (zero past row mc), or pairs of k as in
 * pack_b. */
static void pack_a(float *restrict ap, const float *A, int lda, int ta, int i0, int mc,
                   int k0, int kc, int mode)
{
    int round = mode == P_BF16_ROUND;
    if (ta && mode != P_BF16_DP) {
        /* A's rows are k: each read once, whole, into every sliver. */
        for (int k = 0; k < kc; k++) {
            const float *src = A + (size_t)(k0 + k) * lda + i0;
            for (int is = 0; is < mc; is += MR) {
                float *dst = ap + (size_t)is * kc + (size_t)k * MR;
                if (mc - is >= MR)
                    copy_run(dst, src + is, MR, MR, round);
                else
                    copy_run(dst, src + is, mc - is, MR, round);
            }
        }
        return;
    }
    for (int is = 0; is < mc; is += MR) {
        int mr = mc - is < MR ? mc - is : MR;
#if defined(__AVX512F__)
        if (mode == P_BF16_DP) {
            int kp = (kc + 1) / 2;
            pack_pairs((uint32_t *)ap + (size_t)is * kp, MR, A, lda, ta, k0, kc, i0 + is, mr);
            continue;
        }
#endif
        float *dst = ap + (size_t)is * kc;   /* A's rows are i */
        pack_rows(dst, MR, A, lda, k0, kc, i0 + is, mr);
        if (round)
            round_run(dst, (size_t)kc * MR);
    }
}

#if defined(__AVX512F__)
/* c(mr, nr) = (add ? c + : ) alpha * acc. */
static inline void store(__m512 acc[MR][2], float alpha, float *c, int ldc, int mr, int nr,
                         int add)
{
    __m512 va = _mm512_set1_ps(alpha);
    __mmask16 m0 = lanes(nr), m1 = lanes(nr - 16);
#pragma GCC unroll 12
    for (int i = 0; i < MR; i++) {
        if (i >= mr)
            break;
        float *ci = c + (size_t)i * ldc;
        __m512 r0 = _mm512_mul_ps(va, acc[i][0]), r1 = _mm512_mul_ps(va, acc[i][1]);
        if (add) {
            r0 = _mm512_add_ps(_mm512_maskz_loadu_ps(m0, ci), r0);
            r1 = _mm512_add_ps(_mm512_maskz_loadu_ps(m1, ci + 16), r1);
        }
        _mm512_mask_storeu_ps(ci, m0, r0);
        _mm512_mask_storeu_ps(ci + 16, m1, r1);
    }
}

/* c(mr, nr) = (add ? c + : ) alpha * (a-sliver . b-sliver over kc). pf
 * (the next B sliver, for the avx2 level's prefetch) goes unused: no
 * AVX-512 machine has measured it. */
static void micro(int kc, const float *restrict a, const float *restrict b, float alpha,
                  float *c, int ldc, int mr, int nr, int add, const float *pf)
{
    __m512 acc[MR][2];
    (void)pf;
#pragma GCC unroll 12
    for (int i = 0; i < MR; i++)
        acc[i][0] = acc[i][1] = _mm512_setzero_ps();
    for (int k = 0; k < kc; k++, a += MR, b += NR) {
        __m512 b0 = _mm512_load_ps(b), b1 = _mm512_load_ps(b + 16);
#pragma GCC unroll 12
        for (int i = 0; i < MR; i++) {
            __m512 ai = _mm512_set1_ps(a[i]);
            acc[i][0] = _mm512_fmadd_ps(ai, b0, acc[i][0]);
            acc[i][1] = _mm512_fmadd_ps(ai, b1, acc[i][1]);
        }
    }
    store(acc, alpha, c, ldc, mr, nr, add);
}

/* The same over kp pairs of bf16 (P_BF16_DP), fp32 accumulation, for the
 * first M rows of a (a constant at each call), so that a short sliver (a
 * product's last rows; inference's few rows) computes only its own rows.
 * Row i's pair p is a[i * rs + p * ps]: a sliver (rs 1, ps MR), or rows
 * of pairs one after another (rs kp, ps 1: matmul_rows_bf16's). */
__attribute__((target("avx512bf16"), always_inline))
static inline void micro_bf16_m(int kp, const uint32_t *restrict a, size_t rs, size_t ps,
                                const uint32_t *restrict b, float alpha, float *c, int ldc,
                                int nr, int add, const int M)
{
    __m512 acc[MR][2];
#pragma GCC unroll 12
    for (int i = 0; i < MR; i++)
        acc[i][0] = acc[i][1] = _mm512_setzero_ps();
    for (int p = 0; p < kp; p++, a += ps, b += NR) {
        __m512bh b0 = (__m512bh)_mm512_loadu_si512(b), b1 = (__m512bh)_mm512_loadu_si512(b + 16);
#pragma GCC unroll 12
        for (int i = 0; i < M; i++) {
            __m512bh ai = (__m512bh)_mm512_set1_epi32((int)a[i * rs]);
            acc[i][0] = _mm512_dpbf16_ps(acc[i][0], ai, b0);
            acc[i][1] = _mm512_dpbf16_ps(acc[i][1], ai, b1);
        }
    }
    store(acc, alpha, c, ldc, M, nr, add);
}

#define MICRO_BF16_CASES(rs, ps)                                                     \
    switch (mr) {                                                                   \
    case 12: micro_bf16_m(kp, a, rs, ps, b, alpha, c, ldc, nr, add, 12); break;     \
    case 11: micro_bf16_m(kp, a, rs, ps, b, alpha, c, ldc, nr, add, 11); break;     \
    case 10: micro_bf16_m(kp, a, rs, ps, b, alpha, c, ldc, nr, add, 10); break;     \
    case 9: micro_bf16_m(kp, a, rs, ps, b, alpha, c, ldc, nr, add, 9); break;       \
    case 8: micro_bf16_m(kp, a, rs, ps, b, alpha, c, ldc, nr, add, 8); break;       \
    case 7: micro_bf16_m(kp, a, rs, ps, b, alpha, c, ldc, nr, add, 7); break;       \
    case 6: micro_bf16_m(kp, a, rs, ps, b, alpha, c, ldc, nr, add, 6); break;       \
    case 5: micro_bf16_m(kp, a, rs, ps, b, alpha, c, ldc, nr, add, 5); break;       \
    case 4: micro_bf16_m(kp, a, rs, ps, b, alpha, c, ldc, nr, add, 4); break;       \
    case 3: micro_bf16_m(kp, a, rs, ps, b, alpha, c, ldc, nr, add, 3); break;       \
    case 2: micro_bf16_m(kp, a, rs, ps, b, alpha, c, ldc, nr, add, 2); break;       \
    default: micro_bf16_m(kp, a, rs, ps, b, alpha, c, ldc, nr, add, 1); break;      \
    }

/* Over a sliver (the training product's). */
__attribute__((target("avx512bf16")))
static void micro_bf16(int kp, const uint32_t *restrict a, const uint32_t *restrict b,
                       float alpha, float *c, int ldc, int mr, int nr, int add)
{
    MICRO_BF16_CASES(1, MR)
}

/* Over mr rows of kp pairs each (the inference product's). */
__attribute__((target("avx512bf16")))
static void micro_bf16_rows(int kp, const uint32_t *restrict a, const uint32_t *restrict b,
                            float *c, int ldc, int mr, int nr)
{
    float alpha = 1.0f;
    int add = 0;
    MICRO_BF16_CASES((size_t)kp, 1)
}
#undef MICRO_BF16_CASES

#if LLM_AMX
/* AMX (P_BF16_AMX): blocks of MA rows by NR columns of C in four tiles of
 * 16 x 16 floats, TDPBF16PS over chunks of 16 pairs of k (a tile row's 64
 * bytes): A's two tiles of 16 rows by 16 pairs, B's two of 16 pairs by 16
 * columns, straight from pack_b's pairs (row p of a sliver: NR slots,
 * 128 bytes). Each block's sum runs over the packed block's kc at once,
 * in the tiles' order: the hardware's own bits, as VDPBF16PS's are
 * avx512's (amx_emulate.h's model follows the SDM's order, which no AMX
 * machine has confirmed here; tests hold the product to rounding). */
enum { MA = 32 };   /* rows of an AMX block: two tiles of 16 */
_Static_assert(MC % MA == 0 && NR == 32, "AMX blocks tile MC rows and a sliver's columns");

/* Rows i0..i0+mc of op(A), pairs of columns k0..k0+kc, for the tiles:
 * blocks of MA rows, each chunks of 16 pairs in turn, each MA rows of 16
 * slots (a tile's rows, 64 bytes apart): row r's pair 16 ch + q of block
 * b at dst[b * MA * kpad + (ch * MA + r) * 16 + q], kpad = slots(), zero
 * past kc and past mc. Rows of A along k give their pairs converted in
 * place; A's rows along i (ta) pairs of two rows, 16 rows i at a time,
 * transposed. */
__attribute__((target("avx512bf16")))
static void pack_tiles(uint32_t *restrict dst, const float *A, int lda, int ta, int i0, int mc,
                       int k0, int kc)
{
    int kp = (kc + 1) / 2, kpad = slots(P_BF16_AMX, kc), nch = kpad / 16;
    for (int is = 0; is < mc; is += MA) {
        uint32_t *blk = dst + (size_t)is * kpad;
        int mr = mc - is < MA ? mc - is : MA;
        if (!ta) {
            for (int r = 0; r < MA; r++)
                for (int ch = 0; ch < nch; ch++) {
                    uint32_t *d = blk + ((size_t)ch * MA + r) * 16;
                    if (r >= mr) {
                        _mm512_storeu_si512(d, _mm512_setzero_si512());
                        continue;
                    }
                    const float *x = A + (size_t)(i0 + is + r) * lda + k0 + 32 * ch;
                    int n = kc - 32 * ch;
                    __m512bh v = _mm512_cvtne2ps_pbh(_mm512_maskz_loadu_ps(lanes(n - 16), x + 16),
                                                     _mm512_maskz_loadu_ps(lanes(n), x));
                    _mm512_storeu_si512(d, (__m512i)v);
                }
            continue;
        }
        for (int g = 0; g < MA; g += 16)
            for (int ch = 0; ch < nch; ch++) {
                __m512i v[16];
                for (int q = 0; q < 16; q++) {
                    int p = 16 * ch + q;
                    if (p >= kp || g >= mr) {
                        v[q] = _mm512_setzero_si512();
                        continue;
                    }
                    const float *r0 = A + (size_t)(k0 + 2 * p) * lda + i0 + is + g;
                    v[q] = bf16_lanes(r0, mr - g);
                    if (2 * p + 1 < kc)
                        v[q] = _mm512_or_si512(
                            v[q], _mm512_slli_epi32(bf16_lanes(r0 + lda, mr - g), 16));
                }
                transpose16(v);
                for (int i = 0; i < 16; i++)
                    _mm512_storeu_si512(blk + ((size_t)ch * MA + g + i) * 16, v[i]);
            }
    }
}

/* The tiles' shapes, one configuration for all eight: 16 rows of 64
 * bytes (palette 1; LDTILECFG's 64-byte layout). */
static void amx_begin(void)
{
    _Alignas(64) unsigned char cfg[64] = {1};
    for (int t = 0; t < 8; t++) {
        cfg[16 + 2 * t] = 64;   /* colsb, little-endian */
        cfg[48 + t] = 16;       /* rows */
    }
    amx_config(cfg);
}

/* c(mr, nr) = (add ? c + : ) alpha * (a-block . b-sliver over nch chunks):
 * tiles 0-3 the sums (rows 0-15 and 16-31 by columns 0-15 and 16-31),
 * 4-5 A's, 6-7 B's; a block of at most 16 rows leaves out tiles 2, 3 and
 * 5. */
static void micro_amx(int nch, const uint32_t *a, const uint32_t *b, float alpha, float *c,
                      int ldc, int mr, int nr, int add)
{
    _Alignas(64) float sum[MA * NR];
    amx_zero(0);
    amx_zero(1);
    if (mr > 16) {
        amx_zero(2);
        amx_zero(3);
    }
    for (int ch = 0; ch < nch; ch++) {
        const uint32_t *ac = a + (size_t)ch * MA * 16, *bc = b + (size_t)ch * 16 * NR;
        amx_load(4, ac, 64);
        amx_load(6, bc, NR * 4);
        amx_load(7, bc + 16, NR * 4);
        amx_dpbf16(0, 4, 6);
        amx_dpbf16(1, 4, 7);
        if (mr > 16) {
            amx_load(5, ac + 16 * 16, 64);
            amx_dpbf16(2, 5, 6);
            amx_dpbf16(3, 5, 7);
        }
    }
    amx_store(0, sum, NR * 4);
    amx_store(1, sum + 16, NR * 4);
    if (mr > 16) {
        amx_store(2, sum + 16 * NR, NR * 4);
        amx_store(3, sum + 16 * NR + 16, NR * 4);
    }
    __m512 va = _mm512_set1_ps(alpha);
    __mmask16 m0 = lanes(nr), m1 = lanes(nr - 16);
    for (int i = 0; i < mr; i++) {
        float *ci = c + (size_t)i * ldc;
        __m512 r0 = _mm512_mul_ps(va, _mm512_load_ps(sum + i * NR)),
               r1 = _mm512_mul_ps(va, _mm512_load_ps(sum + i * NR + 16));
        if (add) {
            r0 = _mm512_add_ps(_mm512_maskz_loadu_ps(m0, ci), r0);
            r1 = _mm512_add_ps(_mm512_maskz_loadu_ps(m1, ci + 16), r1);
        }
        _mm512_mask_storeu_ps(ci, m0, r0);
        _mm512_mask_storeu_ps(ci + 16, m1, r1);
    }
}

/* task() for P_BF16_AMX: A packed for the tiles, every block of MA rows
 * by NR columns over the whole kc. */
static void task_amx(const float *bp, size_t bs, float *ap, const float *A, int lda, int ta,
                     int i0, int mc, int k0, int kc, int jt, int nt, float alpha, float *C,
                     int ldc, int j0, int add)
{
    int kpad = slots(P_BF16_AMX, kc);
    pack_tiles((uint32_t *)ap, A, lda, ta, i0, mc, k0, kc);
    amx_begin();
    for (int jr = jt; jr < jt + nt; jr += NR) {
        int nr = jt + nt - jr < NR ? jt + nt - jr : NR;
        const uint32_t *b = (const uint32_t *)bp + (size_t)(jr / NR) * bs;
        for (int ir = 0; ir < mc; ir += MA)
            micro_amx(kpad / 16, (const uint32_t *)ap + (size_t)ir * kpad, b, alpha,
                      C + (size_t)(i0 + ir) * ldc + j0 + jr, ldc, mc - ir < MA ? mc - ir : MA,
                      nr, add);
    }
    amx_release();
}
#endif
#else
/* c(mr, nr) = (add ? c + : ) alpha * acc: the same operations as the
 * avx512 level's, edge tiles through a copy. */
static inline void store(__m256 acc[MR][2], float alpha, float *c, int ldc, int mr, int nr,
                         int add)
{
    __m256 va = _mm256_set1_ps(alpha);
#pragma GCC unroll 6
    for (int i = 0; i < MR; i++) {
        if (i >= mr)
            break;
        float *ci = c + (size_t)i * ldc;
        __m256 r0 = _mm256_mul_ps(va, acc[i][0]), r1 = _mm256_mul_ps(va, acc[i][1]);
        if (nr == NR) {
            if (add) {
                r0 = _mm256_add_ps(_mm256_loadu_ps(ci), r0);
                r1 = _mm256_add_ps(_mm256_loadu_ps(ci + 8), r1);
            }
            _mm256_storeu_ps(ci, r0);
            _mm256_storeu_ps(ci + 8, r1);
        } else {
            float r[NR];
            _mm256_storeu_ps(r, r0);
            _mm256_storeu_ps(r + 8, r1);
            for (int j = 0; j < nr; j++)
                ci[j] = add ? ci[j] + r[j] : r[j];
        }
    }
}

/* c(mr, nr) = (add ? c + : ) alpha * (a-sliver . b-sliver over kc), and
 * when pf is not NULL, the next B sliver (as long as this one) asked into
 * L2, a row of it for each k: so that B panels too large for L2 (wide
 * products: 49152 columns) stream from L3 ahead of use (Zen 2: 256 x
 * 49152 x 576 114 -> 100 ms, 288 x 768 x 2048 6.6 -> 5.7 ms). */
static void micro(int kc, const float *restrict a, const float *restrict b, float alpha,
                  float *c, int ldc, int mr, int nr, int add, const float *pf)
{
    __m256 acc[MR][2];
#pragma GCC unroll 6
    for (int i = 0; i < MR; i++)
        acc[i][0] = acc[i][1] = _mm256_setzero_ps();
    for (int k = 0; k < kc; k++, a += MR, b += NR) {
        if (pf)
            _mm_prefetch((const char *)(pf + (size_t)k * NR), _MM_HINT_T1);
        __m256 b0 = _mm256_load_ps(b), b1 = _mm256_load_ps(b + 8);
#pragma GCC unroll 6
        for (int i = 0; i < MR; i++) {
            __m256 ai = _mm256_broadcast_ss(a + i);
            acc[i][0] = _mm256_fmadd_ps(ai, b0, acc[i][0]);
            acc[i][1] = _mm256_fmadd_ps(ai, b1, acc[i][1]);
        }
    }
    store(acc, alpha, c, ldc, mr, nr, add);
}
#endif

/* Rows [i0, i0+mc) and columns [jt, jt+nt) (offsets within the packed
 * panel of nc columns at j0) of C, over the packed block of kc whose B
 * slivers start bs slots apart. */
static void task(const float *bp, size_t bs, float *ap, const float *A, int lda, int ta,
                 int i0, int mc, int k0, int kc, int jt, int nt, float alpha, float *C,
                 int ldc, int j0, int add, int mode)
{
#if LLM_AMX
    if (mode == P_BF16_AMX) {
        task_amx(bp, bs, ap, A, lda, ta, i0, mc, k0, kc, jt, nt, alpha, C, ldc, j0, add);
        return;
    }
#endif
    pack_a(ap, A, lda, ta, i0, mc, k0, kc, mode);
    int ks = slots(mode, kc);
    for (int jr = jt; jr < jt + nt; jr += NR) {
        int nr = jt + nt - jr < NR ? jt + nt - jr : NR;
        const float *b = bp + (size_t)(jr / NR) * bs, *next = b + bs;
        for (int ir = 0; ir < mc; ir += MR) {
            float *c = C + (size_t)(i0 + ir) * ldc + j0 + jr;
            int mr = mc - ir < MR ? mc - ir : MR;
            /* The packed block's blocks of summation (KC values of k,
             * KC / 2 pairs), each added to C in turn. */
            for (int k = 0, n; k < ks; k += n) {
                n = mode == P_BF16_DP ? KC / 2 : KC;
                n = ks - k < n ? ks - k : n;
#if defined(__AVX512F__)
                if (mode == P_BF16_DP)
                    micro_bf16(n, (const uint32_t *)ap + (size_t)ir * ks + (size_t)k * MR,
                               (const uint32_t *)b + (size_t)k * NR, alpha, c, ldc, mr, nr,
                               add || k > 0);
                else
#endif
                    micro(n, ap + (size_t)ir * ks + (size_t)k * MR, b + (size_t)k * NR, alpha,
                          c, ldc, mr, nr, add || k > 0,
                          ir == 0 && jr + NR < jt + nt ? next + (size_t)k * NR : NULL);
            }
        }
    }
}

/* @return 0, or -1 when out of memory for the packed panels (C untouched). */
static int own_gemm(int ta, int tb, int M, int N, int K, float alpha, const float *A,
                    int lda, const float *B, int ldb, float beta, float *C, int ldc, int mode)
{
    int accumulate = beta != 0.0f;
    if (K == 0) {
        no_k(beta, C, ldc, M, N);
        return 0;
    }
    int ncmax = N < NC ? N : NC, kcmax = K < 2 * KC ? K : 2 * KC;
    /* Slots of a packed row or column: kcmax, fewer for pairs, or up to
     * 16 pairs more for AMX's tiles. */
    int kw = slots(mode, kcmax) > kcmax ? slots(mode, kcmax) : kcmax;
    float *bp = scratch(0, (size_t)kw * ((ncmax + NR - 1) / NR * NR));
    /* Serial inside any region, a team of one included (attention's, for
     * a single task), which omp_in_parallel() does not count: there a
     * team of our own would be a nested one, its threads started anew
     * for every product. */
    int par = omp_get_level() == 0 && omp_get_max_threads() > 1 &&
              (double)M * N * K >= 64.0 * 64 * 64;
    int failed = !bp, nth = par ? omp_get_max_threads() : 1;
#pragma omp parallel if (par) shared(failed)
    {
        float *ap = scratch(1, (size_t)MC * kw);
        if (!ap) {
#pragma omp atomic write
            failed = 1;
        }
#pragma omp barrier
        for (int j0 = 0; j0 < N && !failed; j0 += NC) {
            int nc = N - j0 < NC ? N - j0 : NC;
            for (int k0 = 0, kc; k0 < K; k0 += kc) {
                kc = K - k0 < 2 * KC ? K - k0 : KC;
                int add = accumulate || k0 > 0, nu = b_units(tb, mode, kc, nc);
#pragma omp for schedule(static)
                for (int u = 0; u < nu; u++)
                    pack_b(bp, B, ldb, tb, k0, kc, j0, nc, u, mode);
                /* Tasks of at most MC rows, whole slivers of mu spread
                 * evenly over a multiple of the thread count (no thread
                 * waits at the barrier for another's extra task), by all
                 * nc columns, so that each A block is packed once; split
                 * the columns too (repacking A for each part) only when
                 * rows alone give each thread fewer than two tasks. */
                int mu = MR;   /* rows of the micro-kernel */
#if LLM_AMX
                mu = mode == P_BF16_AMX ? MA : MR;
#endif
                int sl = (M + mu - 1) / mu, tm = (M + MC - 1) / MC;
                tm = (tm + nth - 1) / nth * nth;
                tm = tm < sl ? tm : sl;
                int tn = (2 * nth + tm - 1) / tm, cw = (nc + tn - 1) / tn;
                cw = (cw + NR - 1) / NR * NR;
                tn = (nc + cw - 1) / cw;
#pragma omp for schedule(static)
                for (int t = 0; t < tm * tn; t++) {
                    int r = t / tn, jt = t % tn * cw;
                    int i0 = (int)((long)r * sl / tm) * mu,
                        i1 = (int)((long)(r + 1) * sl / tm) * mu;
                    task(bp, (size_t)slots(mode, kc) * NR, ap, A, lda, ta, i0,
                         (i1 < M ? i1 : M) - i0, k0, kc, jt, nc - jt < cw ? nc - jt : cw,
                         alpha, C, ldc, j0, add, mode);
                }
            }
        }
    }
    return failed ? -1 : 0;
}

/* The paths of the levels with our product, chosen once from LLM_GEMM and
 * the CPU: fp32 products by ours unless "openblas"; bf16 products, on the
 * avx512 level, by VDPBF16PS where the CPU has AVX512_BF16, else emulated
 * by ours, rounding as it packs ("own-nobf16" forces that, for tests), and
 * so on the avx2 level; with "openblas", by OpenBLAS's product over
 * rounded copies (bf16 -1). */
typedef struct {
    int own, bf16;
} paths;

static paths gemm_paths(void)
{
    static int cached = -1;   /* own | bf16 + 1 << 1, racing writers agree */
    int c = __atomic_load_n(&cached, __ATOMIC_RELAXED);
    if (c < 0) {
        const char *e = getenv("LLM_GEMM");
        int own = !(e && strcmp(e, "openblas") == 0), bf16 = -1;
        if (own) {
            bf16 = P_BF16_ROUND;
#if defined(__AVX512F__)
            __builtin_cpu_init();
            if (!(e && strcmp(e, "own-nobf16") == 0) && __builtin_cpu_supports("avx512bf16"))
                bf16 = LLM_AMX ? P_BF16_AMX : P_BF16_DP;   /* amx: runs where the tiles do */
#endif
        }
        c = own | (bf16 + 1) << 1;
        __atomic_store_n(&cached, c, __ATOMIC_RELAXED);
    }
    return (paths){c & 1, (c >> 1) - 1};
}

void llm_cpu_gemm(int ta, int tb, int M, int N, int K, float alpha, const float *A, int lda,
                  const float *B, int ldb, float beta, float *C, int ldc)
{
    if (M <= 0 || N <= 0)
        return;
    if (!gemm_paths().own || own_gemm(ta, tb, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc, P_F32))
        blas_gemm(ta, tb, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc);
}

const char *llm_cpu_gemm_name(void)
{
#if LLM_AMX
    return gemm_paths().own ? "own amx" : "openblas";
#elif defined(__AVX512F__)
    return gemm_paths().own ? "own avx512" : "openblas";
#else
    return gemm_paths().own ? "own avx2" : "openblas";
#endif
}

void llm_cpu_gemm_bf16(int ta, int tb, int M, int N, int K, float alpha, const float *A,
                       int lda, const float *B, int ldb, float beta, float *C, int ldc)
{
    if (M <= 0 || N <= 0)
        return;
    int mode = gemm_paths().bf16;
    if (mode < 0 || own_gemm(ta, tb, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc, mode))
        bf16_by_copies(ta, tb, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc);
}

/* Panels in our packing: slivers of NR columns over all K rows (pairs of
 * them with P_BF16_DP), so that the product's block at k0 starts k0 rows
 * (k0 / 2 pairs) into each sliver, column j0 (a multiple of NR) starts
 * sliver j0 / NR, and a product over a prefix of K makes own_gemm's blocks
 * of it, and so its bits. */
size_t llm_cpu_panel_floats(int K, int N)
{
    return (size_t)K * ((N + NR - 1) / NR * NR);
}

size_t llm_cpu_panel_work(int K)
{
    return (size_t)MC * (K < 2 * KC ? K : 2 * KC);
}

void llm_cpu_panel_at(llm_cpu_panel *pn, float *mem, int bf16, int K, int N)
{
    /* On the amx level, panels (attention's few rows a product) stay
     * VDPBF16PS's: a prefix of k starts at any pair, not a tile's. */
    paths p = gemm_paths();
    int b = p.bf16 == P_BF16_AMX ? P_BF16_DP : p.bf16;
    *pn = (llm_cpu_panel){mem, K, N, bf16 ? b : p.own ? P_F32 : -1, bf16};
}

void llm_cpu_panel_pack(llm_cpu_panel *pn, float *mem, int bf16, const float *B, int ldb,
                        int tb, int K, int N)
{
    llm_cpu_panel_at(pn, mem, bf16, K, N);
    if (pn->mode < 0) {
        panel_plain_pack(mem, B, ldb, tb, K, N);
        return;
    }
    for (int u = 0, nu = b_units(tb, pn->mode, K, N); u < nu; u++)
        pack_b(mem, B, ldb, tb, 0, K, 0, N, u, pn->mode);
}

void llm_cpu_panel_gemm(int ta, int M, int N, int K, int j0, int k0, float alpha,
                        const float *A, int lda, const llm_cpu_panel *pn, float beta, float *C,
                        int ldc, float *work)
{
    if (M <= 0 || N <= j0)
        return;
    if (pn->mode < 0) {
        panel_plain_gemm(ta, M, N, K, j0, k0, alpha, A, lda, pn, beta, C, ldc);
        return;
    }
    if (k0 >= K) {
        no_k(beta, C + j0, ldc, M, N - j0);
        return;
    }
    /* The blocks of own_gemm over [0, K) (KC values of k, the last up to
     * 2 KC - 1, which task() sums as KC and the rest), from k0: the block
     * that k0 falls in is summed from k0 to its end. */
    size_t bs = (size_t)slots(pn->mode, pn->K) * NR;
    for (int b0 = 0, kc; b0 < K; b0 += kc) {
        kc = K - b0 < 2 * KC ? K - b0 : KC;
        for (int s = b0 > k0 ? b0 : k0, n; s < b0 + kc; s += n) {
            n = s > b0 && s < b0 + KC && kc > KC ? b0 + KC - s : b0 + kc - s;
            const float *bp = pn->p + (size_t)slots(pn->mode, s) * NR;   /* s is even */
            for (int i0 = 0; i0 < M; i0 += MC)
                task(bp, bs, work, A, lda, ta, i0, M - i0 < MC ? M - i0 : MC, s, n, j0, N - j0,
                     alpha, C, ldc, 0, beta != 0.0f || s > k0, pn->mode);
        }
    }
}

#else

size_t llm_cpu_panel_floats(int K, int N)
{
    return (size_t)K * N;
}

size_t llm_cpu_panel_work(int K)
{
    (void)K;
    return 0;
}

void llm_cpu_panel_at(llm_cpu_panel *pn, float *mem, int bf16, int K, int N)
{
    *pn = (llm_cpu_panel){mem, K, N, -1, bf16};
}

void llm_cpu_panel_pack(llm_cpu_panel *pn, float *mem, int bf16, const float *B, int ldb,
                        int tb, int K, int N)
{
    llm_cpu_panel_at(pn, mem, bf16, K, N);
    panel_plain_pack(mem, B, ldb, tb, K, N);
}

void llm_cpu_panel_gemm(int ta, int M, int N, int K, int j0, int k0, float alpha,
                        const float *A, int lda, const llm_cpu_panel *pn, float beta, float *C,
                        int ldc, float *work)
{
    (void)work;
    if (M > 0 && N > j0)
        panel_plain_gemm(ta, M, N, K, j0, k0, alpha, A, lda, pn, beta, C, ldc);
}

void llm_cpu_gemm(int ta, int tb, int M, int N, int K, float alpha, const float *A, int lda,
                  const float *B, int ldb, float beta, float *C, int ldc)
{
    if (M > 0 && N > 0)
        blas_gemm(ta, tb, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc);
}

const char *llm_cpu_gemm_name(void)
{
    return "openblas";
}

void llm_cpu_gemm_bf16(int ta, int tb, int M, int N, int K, float alpha, const float *A,
                       int lda, const float *B, int ldb, float beta, float *C, int ldc)
{
    if (M > 0 && N > 0)
        bf16_by_copies(ta, tb, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc);
}

#endif

/* ------------------------------------------------------------ bf16 rows */

int llm_cpu_bf16_dp(void)
{
#if defined(__AVX512F__)
    return gemm_paths().bf16 >= P_BF16_DP;
#else
    return 0;
#endif
}

/* Inference products over bf16 copies of the weights (kernels.h:
 * pack_bf16, matmul_rows_bf16). The weights come packed in panels of PW
 * rows; the input rows are rounded per call into rows of pairs, slot
 * xs[n * kp + j] holding row n's pair j. A tile is up to RB rows by one
 * panel. */
enum { RB = 12, PW = 32 };
#if defined(__AVX512F__)
_Static_assert((int)RB == (int)MR && (int)PW == (int)NR, "a tile is the micro-kernel's");
#endif

static inline float bf16_lo(uint32_t s)
{
    return llm_bf16_to_float((uint16_t)s);
}

static inline float bf16_hi(uint32_t s)
{
    return llm_bf16_to_float((uint16_t)(s >> 16));
}

/* Pair j of row x (IC values): bf16 of x[2j] low, of x[2j + 1] high. */
static inline uint32_t pair_of(const float *x, int j, int IC)
{
    return bf16_bits(x[2 * j]) | (2 * j + 1 < IC ? bf16_bits(x[2 * j + 1]) << 16 : 0);
}

void llm_cpu_pack_bf16(uint32_t *dst, const float *w, int IC, int OC)
{
    int kp = (IC + 1) / 2, np = (OC + PW - 1) / PW;
#pragma omp parallel for schedule(static)
    for (int p = 0; p < np; p++)
        for (int r = 0; r < PW; r++) {
            int o = p * PW + r;
            uint32_t *d = dst + (size_t)p * kp * PW + r;
            for (int j = 0; j < kp; j++)
                d[(size_t)j * PW] = o < OC ? pair_of(w + (size_t)o * IC, j, IC) : 0;
        }
}

/* The kp pairs of row x (IC values) into xs. */
static void pack_row(uint32_t *xs, const float *x, int IC)
{
    for (int j = 0; j < (IC + 1) / 2; j++)
        xs[j] = pair_of(x, j, IC);
}

/* t = the first mr rows of x (rows of kp pairs) times a panel w: fmaf
 * over k in order, from 0. */
static void tile_fma(float t[RB][PW], const uint32_t *x, const uint32_t *w, int IC, int mr)
{
    int kp = (IC + 1) / 2;
    for (int i = 0; i < mr; i++)
        for (int r = 0; r < PW; r++)
            t[i][r] = 0.0f;
    for (int j = 0; j < kp; j++) {
        const uint32_t *wj = w + (size_t)j * PW;
        int odd = 2 * j + 1 < IC;
        for (int i = 0; i < mr; i++) {
            uint32_t xi = x[(size_t)i * kp + j];
            float xl = bf16_lo(xi), xh = bf16_hi(xi);
            for (int r = 0; r < PW; r++)
                t[i][r] = fmaf(xl, bf16_lo(wj[r]), t[i][r]);
            if (odd)
                for (int r = 0; r < PW; r++)
                    t[i][r] = fmaf(xh, bf16_hi(wj[r]), t[i][r]);
        }
    }
}

#if defined(__AVX512F__)
/* pack_row for VDPBF16PS, by VCVTNE2PS2BF16 (which also rounds to
 * nearest, ties to even, but flushes subnormals to zero, as VDPBF16PS
 * treats them anyway). */
__attribute__((target("avx512bf16")))
static void pack_row_dp(uint32_t *xs, const float *x, int IC)
{
    for (int c = 0; c < IC; c += 32) {
        __m512bh v = _mm512_cvtne2ps_pbh(_mm512_maskz_loadu_ps(lanes(IC - c - 16), x + c + 16),
                                         _mm512_maskz_loadu_ps(lanes(IC - c), x + c));
        _mm512_mask_storeu_epi32(xs + c / 2, lanes((IC - c + 1) / 2), (__m512i)v);
    }
}
#endif

void llm_cpu_matmul_rows_bf16(float *out, size_t ldo, const float *inp, size_t ldi,
                              const int *map, const uint32_t *w, int o0, uint32_t *scratch,
                              int N, int IC, int OC)
{
    if (N <= 0 || OC <= 0)
        return;
#if defined(__AVX512F__)
    int dp = llm_cpu_bf16_dp();
#endif
    int kp = (IC + 1) / 2, ns = (N + RB - 1) / RB;
    int p0 = o0 / PW, p1 = (o0 + OC + PW - 1) / PW;
#pragma omp parallel
    {
#pragma omp for schedule(static)
        for (int n = 0; n < N; n++) {
            const float *x = inp + (size_t)(map ? map[n] : n) * ldi;
#if defined(__AVX512F__)
            if (dp)
                pack_row_dp(scratch + (size_t)n * kp, x, IC);
            else
#endif
                pack_row(scratch + (size_t)n * kp, x, IC);
        }
#pragma omp for collapse(2) schedule(static)
        for (int p = p0; p < p1; p++)
            for (int s = 0; s < ns; s++) {
                const uint32_t *x = scratch + (size_t)s * RB * kp, *wp = w + (size_t)p * kp * PW;
                int mr = N - s * RB < RB ? N - s * RB : RB;
                /* Columns of the panel inside [o0, o0 + OC). */
                int c0 = p * PW - o0, r0 = c0 < 0 ? -c0 : 0;
                int r1 = OC - c0 < PW ? OC - c0 : PW;
#if defined(__AVX512F__)
                /* Straight into out when its rows are consecutive. */
                if (dp && !map && r0 == 0 && ldo <= INT_MAX) {
                    micro_bf16_rows(kp, x, wp, out + (size_t)s * RB * ldo + c0, (int)ldo, mr,
                                    r1);
                    continue;
                }
#endif
                float t[RB][PW];
#if defined(__AVX512F__)
                if (dp)
                    micro_bf16_rows(kp, x, wp, t[0], PW, mr, PW);
                else
#endif
                    tile_fma(t, x, wp, IC, mr);
                for (int i = 0; i < mr; i++) {
                    int n = s * RB + i;
                    memcpy(out + (size_t)(map ? map[n] : n) * ldo + (c0 + r0), t[i] + r0,
                           (size_t)(r1 - r0) * sizeof(float));
                }
            }
    }
}
