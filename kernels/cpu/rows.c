/* rows.c: the CPU kernels of inference (KV-cached generation and packed
 * classification): row products whose every output element is summed in
 * an order that does not depend on the batch or the threads, and attention
 * of query rows over cached keys and values.
 *
 * Batch invariance is the contract here: a sequence decoded alongside 31
 * others, or a document classified in any batch, gets the same bits as
 * alone. matmul_rows() and matmul_rows_packed() fix their order of
 * summation in kernels.h, and ref.c computes the same order in plain C, so
 * the two agree bit for bit (test_kernels). */
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <omp.h>
#if defined(__AVX2__) && defined(__FMA__) || defined(__F16C__)
#include <immintrin.h>
#endif

#include "fastexp.h"
#include "half.h"
#include "kernels.h"
#include "cpu.h"
#include "simd.h"

/* ------------------------------------------------------------ matvec */

/* out(N,OC) = inp(N,IC) . w(OC,IC)^T with every weight row read once for
 * all N input rows. Output element (n, o) is always computed as: 8 lanes
 * accumulated by FMA over k = 0, 8, 16, ... (while k + 8 <= IC), summed
 * lane pairs in a fixed tree, then the tail k in order: independent of N,
 * of the tiling and of the thread count.
 *
 * tile() computes R weight rows against Q input rows; R and Q are constants
 * at every call, so that once inlined its accumulators live in registers
 * (4 x 3 = 12 of the 16 ymm registers, with the 4 weight vectors reused 3
 * times and the 3 input vectors 4 times). */

/* The rows of a product: row n of the input is in + r * ldi and row n of
 * the output out + r * ldo, where r = map[n] (map NULL: r = n). */
typedef struct {
    const float *in;
    float *out;
    size_t ldi, ldo;
    const int *map;
} rowset;

static inline size_t row_of(const rowset *rs, int n)
{
    return (size_t)(rs->map ? rs->map[n] : n);
}

#if defined(__AVX2__) && defined(__FMA__)
/* hsum8 of four vectors at once, the same tree for each: (a0 .. a3). */
static inline __m128 hsum8x4(__m256 a0, __m256 a1, __m256 a2, __m256 a3)
{
    __m256 s01 = _mm256_add_ps(_mm256_permute2f128_ps(a0, a1, 0x20),
                               _mm256_permute2f128_ps(a0, a1, 0x31));
    __m256 s23 = _mm256_add_ps(_mm256_permute2f128_ps(a2, a3, 0x20),
                               _mm256_permute2f128_ps(a2, a3, 0x31));
    /* Lanes l0+l4, l2+l6, l1+l5, l3+l7 of each, then the pairs' sums. */
    s01 = _mm256_permute_ps(s01, _MM_SHUFFLE(3, 1, 2, 0));
    s23 = _mm256_permute_ps(s23, _MM_SHUFFLE(3, 1, 2, 0));
    __m256 h = _mm256_hadd_ps(s01, s23);
    h = _mm256_hadd_ps(h, h);   /* a0 a2 . . | a1 a3 . . */
    return _mm_unpacklo_ps(_mm256_castps256_ps128(h), _mm256_extractf128_ps(h, 1));
}

/* Weights are floats, or IEEE halves (h = 1: llm_model_decode_f16()), read
 * as 8 floats from element i; h is a constant at every call. */
__attribute__((always_inline))
static inline __m256 wload(const void *w, size_t i, const int h)
{
    if (!h)
        return _mm256_loadu_ps((const float *)w + i);
#if defined(__F16C__)
    return _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)((const uint16_t *)w + i)));
#else
    float t[8];
    for (int j = 0; j < 8; j++)
        t[j] = llm_half_to_float(((const uint16_t *)w)[i + j]);
    return _mm256_loadu_ps(t);
#endif
}
#endif

static inline float wget(const void *w, size_t i, const int h)
{
    return h ? llm_half_to_float(((const uint16_t *)w)[i]) : ((const float *)w)[i];
}

static inline const char *waddr(const void *w, size_t i, const int h)
{
    return (const char *)w + i * (h ? sizeof(uint16_t) : sizeof(float));
}

#if defined(__AVX2__) && defined(__FMA__)
__attribute__((always_inline))
static inline void tile(const rowset *rs, const void *w, const int h, int IC, int o, int n,
                        const int R, const int Q, const int pf)
{
    __m256 acc[4][3];
#pragma GCC unroll 4
    for (int r = 0; r < 4; r++)
#pragma GCC unroll 3
        for (int q = 0; q < 3; q++)
            acc[r][q] = _mm256_setzero_ps();
    size_t w0 = (size_t)o * IC;   /* element of w where row o starts */
    const float *xr[3];
    float *orow[3];
#pragma GCC unroll 3
    for (int q = 0; q < Q; q++) {
        size_t r = row_of(rs, n + q);
        xr[q] = rs->in + r * rs->ldi;
        orow[q] = rs->out + r * rs->ldo + o;
    }
    int K8 = IC & ~7;
    if (Q == 1) {
        /* One input row (decoding one sequence: bound by memory): the
         * weight rows one after the other, a single forward stream left
         * to the hardware prefetcher, whatever pf. (Asking for the rows
         * 8 rows on, as before, made decoding 30-50% slower on 1 thread
         * on Zen 4; 1 KB on gained nothing beyond noise.) Half weights
         * on the avx2 level are the exception: on Zen 2 the request 8
         * rows on made them 20-30% faster (f32 the same or slower). */
#pragma GCC unroll 4
        for (int r = 0; r < R; r++) {
            size_t wr = w0 + (size_t)r * IC;
            for (int k = 0; k < K8; k += 8) {
#if !defined(__AVX512F__)
                if (h)
                    _mm_prefetch(waddr(w, wr + 8 * (size_t)IC + k, h), _MM_HINT_T0);
#endif
                acc[r][0] = _mm256_fmadd_ps(wload(w, wr + k, h), _mm256_loadu_ps(xr[0] + k),
                                            acc[r][0]);
            }
        }
    }
    for (int k = 0; Q > 1 && k < K8; k += 8) {
        __m256 x[3];
#pragma GCC unroll 3
        for (int q = 0; q < Q; q++)
            x[q] = _mm256_loadu_ps(xr[q] + k);
#pragma GCC unroll 4
        for (int r = 0; r < R; r++) {
            /* Short rows end before the hardware prefetcher is up to
             * speed: the first tile over these weight rows (pf) asks for
             * the same part of the rows 8 rows on; the next tiles find
             * these rows in L1, and more prefetches would only take load
             * slots. */
            if (pf)
                _mm_prefetch(waddr(w, w0 + (size_t)(r + 8) * IC + k, h), _MM_HINT_T0);
            __m256 wv = wload(w, w0 + (size_t)r * IC + k, h);
#pragma GCC unroll 3
            for (int q = 0; q < Q; q++)
                acc[r][q] = _mm256_fmadd_ps(wv, x[q], acc[r][q]);
        }
    }
    if (R == 4 && K8 == IC) {
#pragma GCC unroll 3
        for (int q = 0; q < Q; q++)
            _mm_storeu_ps(orow[q], hsum8x4(acc[0][q], acc[1][q], acc[2][q], acc[3][q]));
        return;
    }
#pragma GCC unroll 4
    for (int r = 0; r < R; r++)
#pragma GCC unroll 3
        for (int q = 0; q < Q; q++) {
            float s = hsum8(acc[r][q]);
            size_t wr = w0 + (size_t)r * IC;
            for (int t = K8; t < IC; t++)
                s += wget(w, wr + t, h) * xr[q][t];
            orow[q][r] = s;
        }
}
#else
/* Portable version of the same order: 8 partial sums, the same tree. */
static inline void tile(const rowset *rs, const void *w, const int h, int IC, int o, int n,
                        const int R, const int Q, const int pf)
{
    (void)pf;
    int K8 = IC & ~7;
    for (int q = 0; q < Q; q++) {
        size_t rr = row_of(rs, n + q);
        const float *xq = rs->in + rr * rs->ldi;
        float *oq = rs->out + rr * rs->ldo + o;
        for (int r = 0; r < R; r++) {
            size_t wr = (size_t)(o + r) * IC;
            float l[8] = { 0 };
            for (int k = 0; k < K8; k += 8)
                for (int j = 0; j < 8; j++)
                    l[j] = fmaf(wget(w, wr + k + j, h), xq[k + j], l[j]);
            float s = ((l[0] + l[4]) + (l[2] + l[6])) + ((l[1] + l[5]) + (l[3] + l[7]));
            for (int t = K8; t < IC; t++)
                s += wget(w, wr + t, h) * xq[t];
            oq[r] = s;
        }
    }
}
#endif

#if defined(__AVX512F__)
/* 8 weight rows against Q input rows (Q <= 6) at once on the avx512 level:
 * each zmm holds two weight rows' 8 lanes, so that every lane takes the
 * FMAs of tile()'s ymm lanes in the same order and the sums come out the
 * same bits, with half the instructions (4 x Q accumulators). */
__attribute__((always_inline))
static inline __m512 wload2(const void *w, size_t i, size_t j, const int h)
{
    if (!h)
        return _mm512_insertf32x8(_mm512_castps256_ps512(_mm256_loadu_ps((const float *)w + i)),
                                  _mm256_loadu_ps((const float *)w + j), 1);
    const uint16_t *hw = w;
    return _mm512_cvtph_ps(_mm256_set_m128i(_mm_loadu_si128((const __m128i *)(hw + j)),
                                            _mm_loadu_si128((const __m128i *)(hw + i))));
}

__attribute__((always_inline))
static inline void tile8(const rowset *rs, const void *w, const int h, int IC, int o, int n,
                         const int Q, const int pf)
{
    __m512 acc[4][6];
#pragma GCC unroll 4
    for (int p = 0; p < 4; p++)
#pragma GCC unroll 6
        for (int q = 0; q < 6; q++)
            acc[p][q] = _mm512_setzero_ps();
    size_t w0 = (size_t)o * IC;
    const float *xr[6];
    float *orow[6];
#pragma GCC unroll 6
    for (int q = 0; q < Q; q++) {
        size_t r = row_of(rs, n + q);
        xr[q] = rs->in + r * rs->ldi;
        orow[q] = rs->out + r * rs->ldo + o;
    }
    int K8 = IC & ~7;
    for (int k = 0; k < K8; k += 8) {
        __m512 x[6];
#pragma GCC unroll 6
        for (int q = 0; q < Q; q++)
            x[q] = _mm512_broadcast_f32x8(_mm256_loadu_ps(xr[q] + k));
#pragma GCC unroll 4
        for (int p = 0; p < 4; p++) {
            if (pf) {
                _mm_prefetch(waddr(w, w0 + (size_t)(2 * p + 8) * IC + k, h), _MM_HINT_T0);
                _mm_prefetch(waddr(w, w0 + (size_t)(2 * p + 9) * IC + k, h), _MM_HINT_T0);
            }
            __m512 wv = wload2(w, w0 + (size_t)(2 * p) * IC + k, w0 + (size_t)(2 * p + 1) * IC + k,
                               h);
#pragma GCC unroll 6
            for (int q = 0; q < Q; q++)
                acc[p][q] = _mm512_fmadd_ps(wv, x[q], acc[p][q]);
        }
    }
#pragma GCC unroll 6
    for (int q = 0; q < Q; q++) {
        __m256 r[8];
#pragma GCC unroll 4
        for (int p = 0; p < 4; p++) {
            r[2 * p] = _mm512_castps512_ps256(acc[p][q]);
            r[2 * p + 1] = _mm512_extractf32x8_ps(acc[p][q], 1);
        }
        if (K8 == IC) {
            _mm_storeu_ps(orow[q], hsum8x4(r[0], r[1], r[2], r[3]));
            _mm_storeu_ps(orow[q] + 4, hsum8x4(r[4], r[5], r[6], r[7]));
            continue;
        }
        for (int j = 0; j < 8; j++) {
            float s = hsum8(r[j]);
            size_t wr = w0 + (size_t)j * IC;
            for (int t = K8; t < IC; t++)
                s += wget(w, wr + t, h) * xr[q][t];
            orow[q][j] = s;
        }
    }
}

/* Weight rows o..o+7 against input rows g..g+gn-1, six at a time. */
__attribute__((always_inline))
static inline void rows8(const rowset *rs, const void *w, const int h, int IC, int o, int g,
                         int gn)
{
    int n = g, end = g + gn;
    for (; n + 6 <= end; n += 6)
        tile8(rs, w, h, IC, o, n, 6, n == g);
    switch (end - n) {
    case 5: tile8(rs, w, h, IC, o, n, 5, n == g); break;
    case 4: tile8(rs, w, h, IC, o, n, 4, n == g); break;
    case 3: tile8(rs, w, h, IC, o, n, 3, n == g); break;
    case 2: tile8(rs, w, h, IC, o, n, 2, n == g); break;
    case 1: tile8(rs, w, h, IC, o, n, 1, n == g); break;
    default: break;
    }
}
#endif

/* Weight rows o..o+R-1 (R = 4, or 1 for the last OC % 4) against input
 * rows g..g+gn-1, three at a time; the first tile prefetches. */
#if defined(__GNUC__)
__attribute__((always_inline))
#endif
static inline void rows(const rowset *rs, const void *w, const int h, int IC, int o,
                        const int R, int g, int gn)
{
    int n = g, end = g + gn;
    if (n + 3 <= end) {
        tile(rs, w, h, IC, o, n, R, 3, 1);
        n += 3;
    }
    for (; n + 3 <= end; n += 3)
        tile(rs, w, h, IC, o, n, R, 3, 0);
    if (end - n == 2)
        tile(rs, w, h, IC, o, n, R, 2, n == g);
    else if (end - n == 1)
        tile(rs, w, h, IC, o, n, R, 1, 1);
}

/* Input rows are taken in groups that stay in L2 while a thread's weight
 * rows stream past them once per group. */
#define SKINNY_GROUP 48

/* Weight rows blocks [b0, b1) of 4 against all N rows of rs. */
#if defined(__GNUC__)
__attribute__((always_inline))
#endif
static inline void skinny_part(const rowset *rs, const void *w, const int h, int N, int IC,
                               int OC, int b0, int b1)
{
    for (int g = 0; g < N; g += SKINNY_GROUP) {
        int gn = N - g < SKINNY_GROUP ? N - g : SKINNY_GROUP;
        int b = b0;
#if defined(__AVX512F__)
        /* Eight rows at a time while there are, but for one input row,
         * which streams the rows one after another (tile()); the same
         * bits as four. */
        for (; gn > 1 && b + 2 <= b1 && OC - 4 * b >= 8; b += 2)
            rows8(rs, w, h, IC, 4 * b, g, gn);
#endif
        for (; b < b1; b++) {
            int o = 4 * b;
            if (OC - o >= 4)
                rows(rs, w, h, IC, o, 4, g, gn);
            else
                for (; o < OC; o++)
                    rows(rs, w, h, IC, o, 1, g, gn);
        }
    }
}

/* rows of rs (N of them) times w(OC, IC)^T, w floats or (h) halves. */
static void skinny_rows(const rowset *rs, const void *w, int h, int N, int IC, int OC)
{
#pragma omp parallel
    {
        int nt = omp_get_num_threads(), id = omp_get_thread_num();
        /* Contiguous runs of 4-row blocks per thread; the last block may
         * be short, and its rows go one at a time. */
        int nb = (OC + 3) / 4;
        int b0 = (int)((int64_t)nb * id / nt), b1 = (int)((int64_t)nb * (id + 1) / nt);
        if (h)
            skinny_part(rs, w, 1, N, IC, OC, b0, b1);
        else
            skinny_part(rs, w, 0, N, IC, OC, b0, b1);
    }
}

/* ------------------------------------------------------------ gemm */

/* The same product for many rows at once (a packed classification
 * forward): compute-bound, so the weights are packed per call into panels
 * of GEMM_NR outputs, k-major and zero past OC (pack[p][k][j] =
 * w[GEMM_NR p + j][k]), and a GEMM_MR x GEMM_NR register tile (6 x 16 in
 * ymm, 12 x 32 in zmm on the avx512 level) broadcasts one input per row
 * and reads two weight vectors per k. Output element (n, o) is always one FMA
 * chain over k = 0 .. IC-1 in order, from 0: independent of N, of the
 * tiling and of the thread count (not the order of skinny_rows). */
#if defined(__AVX512F__)
#define GEMM_MR 12   /* 24 zmm accumulators */
#define GEMM_NR 32
#else
#define GEMM_MR 6
#define GEMM_NR 16
#endif

/* Floats of the packed copy of a (OC, IC) weight. */
static size_t gemm_pack_size(int IC, int OC)
{
    return (size_t)(OC + GEMM_NR - 1) / GEMM_NR * GEMM_NR * (size_t)IC;
}

#if defined(__AVX512F__)
/* The avx512 level's tile: 32 outputs in two zmm per input row. */
__attribute__((always_inline))
static inline void gemm_tile(const rowset *rs, const float *pk, int IC, int o, int OC,
                             int n, const int M)
{
    __m512 acc[GEMM_MR][2];
    const float *x[GEMM_MR];
#pragma GCC unroll 12
    for (int r = 0; r < M; r++) {
        acc[r][0] = acc[r][1] = _mm512_setzero_ps();
        x[r] = rs->in + row_of(rs, n + r) * rs->ldi;
    }
    for (int k = 0; k < IC; k++) {
        __m512 b0 = _mm512_loadu_ps(pk + (size_t)k * GEMM_NR);
        __m512 b1 = _mm512_loadu_ps(pk + (size_t)k * GEMM_NR + 16);
#pragma GCC unroll 12
        for (int r = 0; r < M; r++) {
            __m512 a = _mm512_set1_ps(x[r][k]);
            acc[r][0] = _mm512_fmadd_ps(a, b0, acc[r][0]);
            acc[r][1] = _mm512_fmadd_ps(a, b1, acc[r][1]);
        }
    }
    int w = OC - o < GEMM_NR ? OC - o : GEMM_NR;
    __mmask16 m0 = lanes(w), m1 = lanes(w - 16);
#pragma GCC unroll 12
    for (int r = 0; r < M; r++) {
        float *out = rs->out + row_of(rs, n + r) * rs->ldo + o;
        _mm512_mask_storeu_ps(out, m0, acc[r][0]);
        _mm512_mask_storeu_ps(out + 16, m1, acc[r][1]);
    }
}
#elif defined(__AVX2__) && defined(__FMA__)
__attribute__((always_inline))
static inline void gemm_tile(const rowset *rs, const float *pk, int IC, int o, int OC,
                             int n, const int M)
{
    __m256 acc[GEMM_MR][2];
    const float *x[GEMM_MR];
#pragma GCC unroll 6
    for (int r = 0; r < M; r++) {
        acc[r][0] = acc[r][1] = _mm256_setzero_ps();
        x[r] = rs->in + row_of(rs, n + r) * rs->ldi;
    }
    for (int k = 0; k < IC; k++) {
        __m256 b0 = _mm256_loadu_ps(pk + (size_t)k * GEMM_NR);
        __m256 b1 = _mm256_loadu_ps(pk + (size_t)k * GEMM_NR + 8);
#pragma GCC unroll 6
        for (int r = 0; r < M; r++) {
            __m256 a = _mm256_broadcast_ss(x[r] + k);
            acc[r][0] = _mm256_fmadd_ps(a, b0, acc[r][0]);
            acc[r][1] = _mm256_fmadd_ps(a, b1, acc[r][1]);
        }
    }
    int w = OC - o < GEMM_NR ? OC - o : GEMM_NR;
#pragma GCC unroll 6
    for (int r = 0; r < M; r++) {
        float *out = rs->out + row_of(rs, n + r) * rs->ldo + o;
        if (w == GEMM_NR) {
            _mm256_storeu_ps(out, acc[r][0]);
            _mm256_storeu_ps(out + 8, acc[r][1]);
        } else {
            float t[GEMM_NR];
            _mm256_storeu_ps(t, acc[r][0]);
            _mm256_storeu_ps(t + 8, acc[r][1]);
            memcpy(out, t, (size_t)w * sizeof *t);
        }
    }
}

#endif

#if defined(__AVX2__) && defined(__FMA__)
/* rows of rs (N of them) times w(OC, IC)^T; pk has gemm_pack_size()
 * floats. */
static void gemm_rows(const rowset *rs, const float *w, float *pk, int N, int IC, int OC)
{
    int np = (OC + GEMM_NR - 1) / GEMM_NR, nb = (N + GEMM_MR - 1) / GEMM_MR;
    size_t psz = (size_t)GEMM_NR * IC;
    /* Panels are taken in groups of about 128 KiB, which stay in L2 while
     * all the row blocks go past them. */
    int pg = (int)(32768 / psz);
    pg = pg < 1 ? 1 : pg > np ? np : pg;
    int ng = (np + pg - 1) / pg;
#pragma omp parallel
    {
#pragma omp for schedule(static)
        for (int p = 0; p < np; p++) {
            float *d = pk + (size_t)p * psz;
            for (int j = 0; j < GEMM_NR; j++) {
                int o = p * GEMM_NR + j;
                const float *wr = w + (size_t)o * IC;
                if (o < OC)
                    for (int k = 0; k < IC; k++)
                        d[(size_t)k * GEMM_NR + j] = wr[k];
                else
                    for (int k = 0; k < IC; k++)
                        d[(size_t)k * GEMM_NR + j] = 0.0f;
            }
        }
#pragma omp for collapse(2) schedule(static)
        for (int g = 0; g < ng; g++)
            for (int b = 0; b < nb; b++) {
                int n = b * GEMM_MR, m = N - n < GEMM_MR ? N - n : GEMM_MR;
                int p1 = (g + 1) * pg < np ? (g + 1) * pg : np;
                for (int p = g * pg; p < p1; p++) {
                    const float *pp = pk + (size_t)p * psz;
                    int o = p * GEMM_NR;
                    switch (m) {
#if GEMM_MR > 6
                    case 12: gemm_tile(rs, pp, IC, o, OC, n, 12); break;
                    case 11: gemm_tile(rs, pp, IC, o, OC, n, 11); break;
                    case 10: gemm_tile(rs, pp, IC, o, OC, n, 10); break;
                    case 9: gemm_tile(rs, pp, IC, o, OC, n, 9); break;
                    case 8: gemm_tile(rs, pp, IC, o, OC, n, 8); break;
                    case 7: gemm_tile(rs, pp, IC, o, OC, n, 7); break;
#endif
                    case 6: gemm_tile(rs, pp, IC, o, OC, n, 6); break;
                    case 5: gemm_tile(rs, pp, IC, o, OC, n, 5); break;
                    case 4: gemm_tile(rs, pp, IC, o, OC, n, 4); break;
                    case 3: gemm_tile(rs, pp, IC, o, OC, n, 3); break;
                    case 2: gemm_tile(rs, pp, IC, o, OC, n, 2); break;
                    default: gemm_tile(rs, pp, IC, o, OC, n, 1); break;
                    }
                }
            }
    }
}
#else
/* Portable version: one FMA chain per element as well, without packing. */
static void gemm_rows(const rowset *rs, const float *w, float *pk, int N, int IC, int OC)
{
    (void)pk;
#pragma omp parallel for schedule(static)
    for (int n = 0; n < N; n++) {
        size_t r = row_of(rs, n);
        const float *x = rs->in + r * rs->ldi;
        float *out = rs->out + r * rs->ldo;
        for (int o = 0; o < OC; o++) {
            const float *wr = w + (size_t)o * IC;
            float acc = 0.0f;
            for (int k = 0; k < IC; k++)
                acc = fmaf(x[k], wr[k], acc);
            out[o] = acc;
        }
    }
}
#endif

void llm_cpu_matmul_rows(float *out, size_t ldo, const float *inp, size_t ldi,
                         const int *map, const void *w, int half, int N, int IC, int OC)
{
    rowset rs = { inp, out, ldi, ldo, map };
    skinny_rows(&rs, w, half != 0, N, IC, OC);
}

size_t llm_cpu_matmul_rows_scratch(int IC, int OC)
{
    return gemm_pack_size(IC, OC);
}

void llm_cpu_matmul_rows_packed(float *out, size_t ldo, const float *inp, size_t ldi,
                                const int *map, const float *w, float *scratch,
                                int N, int IC, int OC)
{
    rowset rs = { inp, out, ldi, ldo, map };
    gemm_rows(&rs, w, scratch, N, IC, OC);
}

/* Attention's two inner loops, in an order fixed by hd alone. scores():
 * a[t] = q . K[t] for the n keys K + t * stride: 8 lanes accumulated by
 * FMA over j = 0, 8, ... (while j + 8 <= hd), the lanes summed in hsum8's
 * tree, then the tail j in order; four keys go together, each as alone.
 * mix(): o = sum over t = 0 .. n-1 in order of a[t] * V[t], one FMA per
 * element and step, with up to 64 elements of o held in registers. The
 * avx512 level's scores() sums 16 lanes over j = 0, 16, ... (while j + 16
 * <= hd), folds them to 8 (lane u + lane u + 8) and goes on as above from
 * there; its mix() keeps the same per-element order, 16 elements a
 * register. */
#if defined(__AVX512F__)
/* Lanes u and u + 8 of v added: 8 lanes. */
static inline __m256 fold16(__m512 v)
{
    return _mm256_add_ps(_mm512_castps512_ps256(v), _mm512_extractf32x8_ps(v, 1));
}
#endif
#if defined(__AVX2__) && defined(__FMA__)
static void scores(float *a, const float *q, const float *K, size_t stride, int n, int hd)
{
    int H8 = hd & ~7, t = 0;
#if defined(__AVX512F__)
    int H16 = hd & ~15;
#else
    int H16 = 0;
#endif
    for (; t + 4 <= n; t += 4) {
        const float *k0 = K + (size_t)t * stride, *k1 = k0 + stride, *k2 = k1 + stride,
                    *k3 = k2 + stride;
        __m256 s0 = _mm256_setzero_ps(), s1 = s0, s2 = s0, s3 = s0;
#if defined(__AVX512F__)
        if (H16) {
            __m512 z0 = _mm512_setzero_ps(), z1 = z0, z2 = z0, z3 = z0;
            for (int j = 0; j < H16; j += 16) {
                __m512 x = _mm512_loadu_ps(q + j);
                z0 = _mm512_fmadd_ps(x, _mm512_loadu_ps(k0 + j), z0);
                z1 = _mm512_fmadd_ps(x, _mm512_loadu_ps(k1 + j), z1);
                z2 = _mm512_fmadd_ps(x, _mm512_loadu_ps(k2 + j), z2);
                z3 = _mm512_fmadd_ps(x, _mm512_loadu_ps(k3 + j), z3);
            }
            s0 = fold16(z0);
            s1 = fold16(z1);
            s2 = fold16(z2);
            s3 = fold16(z3);
        }
#endif
        for (int j = H16; j < H8; j += 8) {
            __m256 x = _mm256_loadu_ps(q + j);
            s0 = _mm256_fmadd_ps(x, _mm256_loadu_ps(k0 + j), s0);
            s1 = _mm256_fmadd_ps(x, _mm256_loadu_ps(k1 + j), s1);
            s2 = _mm256_fmadd_ps(x, _mm256_loadu_ps(k2 + j), s2);
            s3 = _mm256_fmadd_ps(x, _mm256_loadu_ps(k3 + j), s3);
        }
        _mm_storeu_ps(a + t, hsum8x4(s0, s1, s2, s3));
        for (int j = H8; j < hd; j++) {
            a[t] += q[j] * k0[j];
            a[t + 1] += q[j] * k1[j];
            a[t + 2] += q[j] * k2[j];
            a[t + 3] += q[j] * k3[j];
        }
    }
    for (; t < n; t++) {
        const float *k = K + (size_t)t * stride;
        __m256 s0 = _mm256_setzero_ps();
#if defined(__AVX512F__)
        if (H16) {
            __m512 z0 = _mm512_setzero_ps();
            for (int j = 0; j < H16; j += 16)
                z0 = _mm512_fmadd_ps(_mm512_loadu_ps(q + j), _mm512_loadu_ps(k + j), z0);
            s0 = fold16(z0);
        }
#endif
        for (int j = H16; j < H8; j += 8)
            s0 = _mm256_fmadd_ps(_mm256_loadu_ps(q + j), _mm256_loadu_ps(k + j), s0);
        a[t] = hsum8(s0);
        for (int j = H8; j < hd; j++)
            a[t] += q[j] * k[j];
    }
}

static void mix(float *o, const float *a, const float *V, size_t stride, int n, int hd)
{
    int j0 = 0;
#if defined(__AVX512F__)
    for (; j0 + 64 <= hd; j0 += 64) {
        __m512 v0 = _mm512_setzero_ps(), v1 = v0, v2 = v0, v3 = v0;
        for (int t = 0; t < n; t++) {
            const float *x = V + (size_t)t * stride + j0;
            __m512 w = _mm512_set1_ps(a[t]);
            v0 = _mm512_fmadd_ps(w, _mm512_loadu_ps(x), v0);
            v1 = _mm512_fmadd_ps(w, _mm512_loadu_ps(x + 16), v1);
            v2 = _mm512_fmadd_ps(w, _mm512_loadu_ps(x + 32), v2);
            v3 = _mm512_fmadd_ps(w, _mm512_loadu_ps(x + 48), v3);
        }
        _mm512_storeu_ps(o + j0, v0);
        _mm512_storeu_ps(o + j0 + 16, v1);
        _mm512_storeu_ps(o + j0 + 32, v2);
        _mm512_storeu_ps(o + j0 + 48, v3);
    }
    for (; j0 + 16 <= hd; j0 += 16) {
        __m512 v = _mm512_setzero_ps();
        for (int t = 0; t < n; t++)
            v = _mm512_fmadd_ps(_mm512_set1_ps(a[t]),
                                _mm512_loadu_ps(V + (size_t)t * stride + j0), v);
        _mm512_storeu_ps(o + j0, v);
    }
#endif
    for (; j0 + 64 <= hd; j0 += 64) {
        __m256 v[8];
#pragma GCC unroll 8
        for (int u = 0; u < 8; u++)
            v[u] = _mm256_setzero_ps();
        for (int t = 0; t < n; t++) {
            const float *x = V + (size_t)t * stride + j0;
            __m256 w = _mm256_set1_ps(a[t]);
#pragma GCC unroll 8
            for (int u = 0; u < 8; u++)
                v[u] = _mm256_fmadd_ps(w, _mm256_loadu_ps(x + 8 * u), v[u]);
        }
#pragma GCC unroll 8
        for (int u = 0; u < 8; u++)
            _mm256_storeu_ps(o + j0 + 8 * u, v[u]);
    }
    for (; j0 + 8 <= hd; j0 += 8) {
        __m256 v = _mm256_setzero_ps();
        for (int t = 0; t < n; t++)
            v = _mm256_fmadd_ps(_mm256_set1_ps(a[t]),
                                _mm256_loadu_ps(V + (size_t)t * stride + j0), v);
        _mm256_storeu_ps(o + j0, v);
    }
    for (; j0 < hd; j0++) {
        float v = 0.0f;
        for (int t = 0; t < n; t++)
            v = fmaf(a[t], V[(size_t)t * stride + j0], v);
        o[j0] = v;
    }
}
#else
static void scores(float *a, const float *q, const float *K, size_t stride, int n, int hd)
{
    int H8 = hd & ~7;
    for (int t = 0; t < n; t++) {
        const float *k = K + (size_t)t * stride;
        float l[8] = { 0 };
        for (int j = 0; j < H8; j += 8)
            for (int u = 0; u < 8; u++)
                l[u] = fmaf(q[j + u], k[j + u], l[u]);
        float d = ((l[0] + l[4]) + (l[2] + l[6])) + ((l[1] + l[5]) + (l[3] + l[7]));
        for (int j = H8; j < hd; j++)
            d += q[j] * k[j];
        a[t] = d;
    }
}

static void mix(float *o, const float *a, const float *V, size_t stride, int n, int hd)
{
    for (int j = 0; j < hd; j++) {
        float v = 0.0f;
        for (int t = 0; t < n; t++)
            v = fmaf(a[t], V[(size_t)t * stride + j], v);
        o[j] = v;
    }
}
#endif


/* Scores a[0..n) scaled, then softmax's numerators fast_expf(a - max):
 * @return 1 / their sum. */
static inline float softmax_terms(float *a, int n, float scale)
{
    float mx = -INFINITY;
    for (int t = 0; t < n; t++) {
        a[t] *= scale;
        mx = a[t] > mx ? a[t] : mx;
    }
    float sum = 0.0f;
#pragma omp simd reduction(+:sum)
    for (int t = 0; t < n; t++) {
        a[t] = fast_expf(a[t] - mx);
        sum += a[t];
    }
    return 1.0f / sum;
}

/* One task per (row, head), taken dynamically a few at a time once there
 * are many (rows differ in length); each task's arithmetic is independent
 * of the others and of the thread that runs it. */
void llm_cpu_attention_rows(float *out, size_t ldo, const float *const *q,
                            const float *const *K, const float *const *V, size_t kvs,
                            const int *len, int n, int H, int KVH, int hd,
                            float *scratch, int maxlen)
{
    int rep = H / KVH;
    float scale = 1.0f / sqrtf((float)hd);
    int chunk = n * H / (8 * omp_get_max_threads());
    chunk = chunk < 1 ? 1 : chunk;
#pragma omp parallel for schedule(dynamic, chunk)
    for (int task = 0; task < n * H; task++) {
        int i = task / H, h = task % H, kh = h / rep, p = len[i];
        const float *Kh = K[i] + (size_t)kh * hd, *Vh = V[i] + (size_t)kh * hd;
        float *a = scratch + (size_t)omp_get_thread_num() * maxlen;
        scores(a, q[i] + (size_t)h * hd, Kh, kvs, p, hd);
        float inv = softmax_terms(a, p, scale);
        for (int t = 0; t < p; t++)
            a[t] *= inv;
        mix(out + (size_t)i * ldo + (size_t)h * hd, a, Vh, kvs, p, hd);
    }
}

/* ------------------------------------------------------------ bf16 cache
 * attention_rows_bf16 (kernels.h): keys and values of bfloat16 bits. Two
 * paths, fixed for a level and CPU: fmaf over the values widened to float
 * (in attention_rows' orders: 8 lanes over j for a score, t in order for
 * an output), or VDPBF16PS (llm_cpu_bf16_dp()), which takes j in pairs for
 * the scores and t in pairs for the outputs. A product of two bf16 values
 * is exact in float either way: only the orders of the sums differ. */

#if defined(__AVX2__) && defined(__FMA__)
/* 8 bf16 values widened to floats. */
static inline __m256 widen8(const uint16_t *x)
{
    __m128i h = _mm_loadu_si128((const __m128i *)x);
    return _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_cvtepu16_epi32(h), 16));
}
#endif

/* One (row, head) by fmaf: qr (hd) and a (n) are scratch. */
static void head_bf16_fma(float *o, const float *q, const uint16_t *K, const uint16_t *V,
                          size_t stride, int n, int hd, float scale, float *a, float *qr)
{
    int H8 = hd & ~7;
    for (int j = 0; j < hd; j++)
        qr[j] = llm_bf16_to_float(llm_float_to_bf16(q[j]));
    for (int t = 0; t < n; t++) {
        const uint16_t *k = K + (size_t)t * stride;
#if defined(__AVX2__) && defined(__FMA__)
        __m256 s = _mm256_setzero_ps();
        for (int j = 0; j < H8; j += 8)
            s = _mm256_fmadd_ps(_mm256_loadu_ps(qr + j), widen8(k + j), s);
        float d = hsum8(s);
#else
        float l[8] = { 0 };
        for (int j = 0; j < H8; j += 8)
            for (int u = 0; u < 8; u++)
                l[u] = fmaf(qr[j + u], llm_bf16_to_float(k[j + u]), l[u]);
        float d = ((l[0] + l[4]) + (l[2] + l[6])) + ((l[1] + l[5]) + (l[3] + l[7]));
#endif
        for (int j = H8; j < hd; j++)
            d = fmaf(qr[j], llm_bf16_to_float(k[j]), d);
        a[t] = d;
    }
    float inv = softmax_terms(a, n, scale);
    for (int t = 0; t < n; t++)
        a[t] = llm_bf16_to_float(llm_float_to_bf16(a[t] * inv));
    int j0 = 0;
#if defined(__AVX2__) && defined(__FMA__)
    for (; j0 + 32 <= hd; j0 += 32) {
        __m256 v0 = _mm256_setzero_ps(), v1 = v0, v2 = v0, v3 = v0;
        for (int t = 0; t < n; t++) {
            const uint16_t *x = V + (size_t)t * stride + j0;
            __m256 w = _mm256_set1_ps(a[t]);
            v0 = _mm256_fmadd_ps(w, widen8(x), v0);
            v1 = _mm256_fmadd_ps(w, widen8(x + 8), v1);
            v2 = _mm256_fmadd_ps(w, widen8(x + 16), v2);
            v3 = _mm256_fmadd_ps(w, widen8(x + 24), v3);
        }
        _mm256_storeu_ps(o + j0, v0);
        _mm256_storeu_ps(o + j0 + 8, v1);
        _mm256_storeu_ps(o + j0 + 16, v2);
        _mm256_storeu_ps(o + j0 + 24, v3);
    }
    for (; j0 + 8 <= hd; j0 += 8) {
        __m256 v = _mm256_setzero_ps();
        for (int t = 0; t < n; t++)
            v = _mm256_fmadd_ps(_mm256_set1_ps(a[t]), widen8(V + (size_t)t * stride + j0), v);
        _mm256_storeu_ps(o + j0, v);
    }
#endif
    for (; j0 < hd; j0++) {
        float v = 0.0f;
        for (int t = 0; t < n; t++)
            v = fmaf(a[t], llm_bf16_to_float(V[(size_t)t * stride + j0]), v);
        o[j0] = v;
    }
}

#if defined(__AVX512F__)
/* 32 floats x[0 .. n) (n clamped as lanes32's) rounded to bf16 by
 * VCVTNE2PS2BF16 into h[0 .. n). */
__attribute__((target("avx512bf16")))
static inline void to_bf16_32(uint16_t *h, const float *x, int n, float mul)
{
    __m512 m = _mm512_set1_ps(mul);
    __m512 lo = _mm512_mul_ps(_mm512_maskz_loadu_ps(lanes(n), x), m);
    __m512 hi = _mm512_mul_ps(_mm512_maskz_loadu_ps(lanes(n - 16), x + 16), m);
    _mm512_mask_storeu_epi16(h, lanes32(n), (__m512i)_mm512_cvtne2ps_pbh(hi, lo));
}

/* Score of q's bf16 pairs qb against key k: 16 lanes of VDPBF16PS over
 * pairs of j, 32 values a step, the last step masked. */
__attribute__((target("avx512bf16")))
static inline __m512 dot_bf16(const uint16_t *qb, const uint16_t *k, int hd)
{
    __m512 z = _mm512_setzero_ps();
    for (int c = 0; c < hd; c += 32) {
        __mmask32 m = lanes32(hd - c);
        z = _mm512_dpbf16_ps(z, (__m512bh)_mm512_maskz_loadu_epi16(m, qb + c),
                             (__m512bh)_mm512_maskz_loadu_epi16(m, k + c));
    }
    return z;
}

/* One (row, head) by VDPBF16PS: a (n floats), pb (n + 1 halves) and qb
 * (hd halves) are scratch. Outputs: pairs (t, t + 1) of probabilities
 * against the two values rows interleaved by VPUNPCK[LH]WD, which leaves
 * output j of a 32-wide chunk in lane 4L + s of the low accumulator (j =
 * 8L + s, s < 4) or of the high one (j = 8L + 4 + s); a permutation puts
 * them back in order. */
__attribute__((target("avx512bf16")))
static void head_bf16_dp(float *o, const float *q, const uint16_t *K, const uint16_t *V,
                         size_t stride, int n, int hd, float scale, float *a, uint16_t *pb,
                         uint16_t *qb)
{
    for (int c = 0; c < hd; c += 32)
        to_bf16_32(qb + c, q + c, hd - c, 1.0f);
    int t = 0;
    for (; t + 4 <= n; t += 4) {
        const uint16_t *k = K + (size_t)t * stride;
        __m256 s0 = fold16(dot_bf16(qb, k, hd)), s1 = fold16(dot_bf16(qb, k + stride, hd));
        __m256 s2 = fold16(dot_bf16(qb, k + 2 * stride, hd));
        __m256 s3 = fold16(dot_bf16(qb, k + 3 * stride, hd));
        _mm_storeu_ps(a + t, hsum8x4(s0, s1, s2, s3));
    }
    for (; t < n; t++)
        a[t] = hsum8(fold16(dot_bf16(qb, K + (size_t)t * stride, hd)));
    float inv = softmax_terms(a, n, scale);
    for (int c = 0; c < n; c += 32)
        to_bf16_32(pb + c, a + c, n - c, inv);
    pb[n] = 0;   /* the partner of an odd last t */
    const __m512i lo_idx = _mm512_setr_epi32(0, 1, 2, 3, 16, 17, 18, 19, 4, 5, 6, 7, 20, 21, 22, 23);
    const __m512i hi_idx = _mm512_setr_epi32(8, 9, 10, 11, 24, 25, 26, 27, 12, 13, 14, 15, 28, 29,
                                             30, 31);
    for (int j0 = 0; j0 < hd; j0 += 64) {
        __mmask32 m0 = lanes32(hd - j0), m1 = lanes32(hd - j0 - 32);
        __m512 a0 = _mm512_setzero_ps(), a1 = a0, a2 = a0, a3 = a0;
        for (t = 0; t < n; t += 2) {
            uint32_t pp;
            memcpy(&pp, pb + t, sizeof pp);
            __m512bh w = (__m512bh)_mm512_set1_epi32((int)pp);
            const uint16_t *x = V + (size_t)t * stride + j0;
            __m512i x0 = _mm512_maskz_loadu_epi16(m0, x), y0 = _mm512_setzero_si512();
            __m512i x1 = _mm512_maskz_loadu_epi16(m1, x + 32), y1 = y0;
            if (t + 1 < n) {
                y0 = _mm512_maskz_loadu_epi16(m0, x + stride);
                y1 = _mm512_maskz_loadu_epi16(m1, x + stride + 32);
            }
            a0 = _mm512_dpbf16_ps(a0, (__m512bh)_mm512_unpacklo_epi16(x0, y0), w);
            a1 = _mm512_dpbf16_ps(a1, (__m512bh)_mm512_unpackhi_epi16(x0, y0), w);
            a2 = _mm512_dpbf16_ps(a2, (__m512bh)_mm512_unpacklo_epi16(x1, y1), w);
            a3 = _mm512_dpbf16_ps(a3, (__m512bh)_mm512_unpackhi_epi16(x1, y1), w);
        }
        _mm512_mask_storeu_ps(o + j0, lanes(hd - j0), _mm512_permutex2var_ps(a0, lo_idx, a1));
        _mm512_mask_storeu_ps(o + j0 + 16, lanes(hd - j0 - 16),
                              _mm512_permutex2var_ps(a0, hi_idx, a1));
        _mm512_mask_storeu_ps(o + j0 + 32, lanes(hd - j0 - 32),
                              _mm512_permutex2var_ps(a2, lo_idx, a3));
        _mm512_mask_storeu_ps(o + j0 + 48, lanes(hd - j0 - 48),
                              _mm512_permutex2var_ps(a2, hi_idx, a3));
    }
}
#endif

void llm_cpu_attention_rows_bf16(float *out, size_t ldo, const float *const *q,
                                 const uint16_t *const *K, const uint16_t *const *V,
                                 size_t kvs, const int *len, int n, int H, int KVH, int hd,
                                 float *scratch, int maxlen)
{
    int rep = H / KVH;
    float scale = 1.0f / sqrtf((float)hd);
#if defined(__AVX512F__)
    int dp = llm_cpu_bf16_dp();
#endif
    int chunk = n * H / (8 * omp_get_max_threads());
    chunk = chunk < 1 ? 1 : chunk;
#pragma omp parallel for schedule(dynamic, chunk)
    for (int task = 0; task < n * H; task++) {
        int i = task / H, h = task % H, kh = h / rep;
        const uint16_t *Kh = K[i] + (size_t)kh * hd, *Vh = V[i] + (size_t)kh * hd;
        const float *qh = q[i] + (size_t)h * hd;
        float *o = out + (size_t)i * ldo + (size_t)h * hd;
        float *a = scratch + (size_t)omp_get_thread_num() * (2 * (size_t)maxlen + hd);
#if defined(__AVX512F__)
        if (dp) {
            uint16_t *pb = (uint16_t *)(a + maxlen), *qb = pb + maxlen + 1;
            head_bf16_dp(o, qh, Kh, Vh, kvs, len[i], hd, scale, a, pb, qb);
            continue;
        }
#endif
        head_bf16_fma(o, qh, Kh, Vh, kvs, len[i], hd, scale, a, a + maxlen);
    }
}

/* Blocks of 8 by F16C, which rounds as llm_float_to_half() does. */
size_t llm_cpu_to_half(uint16_t *h, const float *f, size_t n)
{
    size_t bad = n;
#pragma omp parallel for schedule(static) reduction(min:bad)
    for (size_t b = 0; b < (n + 7) / 8; b++) {
        size_t j = 8 * b, e = j + 8 < n ? j + 8 : n;
#if defined(__F16C__)
        if (e - j == 8)
            _mm_storeu_si128((__m128i *)(h + j),
                             _mm256_cvtps_ph(_mm256_loadu_ps(f + j),
                                             _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC));
        else
#endif
            for (size_t q = j; q < e; q++)
                h[q] = llm_float_to_half(f[q]);
        for (size_t q = j; q < e; q++)
            if ((h[q] & 0x7c00u) == 0x7c00u && q < bad)
                bad = q;
    }
    return bad;
}
