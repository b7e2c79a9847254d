/* q8.c: the CPU kernels of int8 inference (Q8_0): quantization of rows into
 * blocks of 32 int8s with a float scale each, and the row product of two
 * such rows, whose integer dot products per block are exact and whose
 * float sum over blocks follows the order kernels.h fixes, so that ref.c
 * gives the same bits and a row gets the same bits in any batch.
 *
 * AVX2 (and the avx512 level without VNNI): a block's dot product by the
 * sign trick, |w| (unsigned) times x with w's sign (signed) through
 * maddubs (no pair of products reaches int16's limit: 2 x 127 x 127 <
 * 32767) and madd. The avx512 level on a CPU with AVX512-VNNI: vpdpbusd
 * on the same operands, one instruction instead of two; the level's flags
 * stay without -mavx512vnni and only the functions compiled for VNNI
 * (q8_dot.h, with a target attribute) use it, when cpuid says so, so that
 * the binary runs on AVX-512 CPUs without it. With VNNI and many input
 * rows (a prompt, an evaluation, a classification batch), the weight rows
 * are repacked 16 at a time so that the lanes of one vpdpbusd hold 16
 * output rows: no horizontal sums, the same bits. */
#include <float.h>
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <omp.h>
#if defined(__AVX2__) && defined(__FMA__)
#include <immintrin.h>
#endif

#include "kernels.h"
#include "cpu.h"
#include "simd.h"

/* Rows of quantization below this many values go without threads. */
#define Q8_PAR_MIN 32768
/* Input rows taken together while a thread's weight rows go past them. */
#define Q8_GROUP 32

/* ------------------------------------------------------------ quantize */

/* One block of len <= 32 values by the rule of kernels.h. @return 1 when
 * it holds an inf or NaN. */
static int quantize_block(int8_t *q, float *d, const float *x, int len)
{
    uint32_t a = 0;
    for (int k = 0; k < len; k++) {
        uint32_t u;
        memcpy(&u, &x[k], sizeof u);
        u &= 0x7fffffffu;
        a = u > a ? u : a;
    }
    float amax, db;
    memcpy(&amax, &a, sizeof amax);
    memset(q, 0, 32);
    if (a >= 0x7f800000u) {
        *d = NAN;
        return 1;
    }
    if ((db = amax / 127.0f) < FLT_MIN) {
        *d = 0.0f;
        return 0;
    }
    float id = 1.0f / db;
    for (int k = 0; k < len; k++)
        q[k] = (int8_t)nearbyintf(x[k] * id);
    *d = db;
    return 0;
}

#if defined(__AVX2__) && defined(__FMA__)
/* A whole block: the maximum of the bit patterns by integer maxima (exact,
 * any order), the rounding by cvtps (nearest, ties to even, as the default
 * MXCSR), the packing as 32 bytes in order. */
static int quantize_block32(int8_t *q, float *d, const float *x)
{
    __m256 v[4];
    __m256i m = _mm256_set1_epi32(0x7fffffff), a = _mm256_setzero_si256();
    for (int j = 0; j < 4; j++) {
        v[j] = _mm256_loadu_ps(x + 8 * j);
        a = _mm256_max_epi32(a, _mm256_and_si256(_mm256_castps_si256(v[j]), m));
    }
    __m128i t = _mm_max_epi32(_mm256_castsi256_si128(a), _mm256_extracti128_si256(a, 1));
    t = _mm_max_epi32(t, _mm_shuffle_epi32(t, 0x4e));
    t = _mm_max_epi32(t, _mm_shuffle_epi32(t, 0xb1));
    uint32_t au = (uint32_t)_mm_cvtsi128_si32(t);
    float amax, db;
    memcpy(&amax, &au, sizeof amax);
    if (au >= 0x7f800000u || (db = amax / 127.0f) < FLT_MIN) {
        memset(q, 0, 32);
        *d = au >= 0x7f800000u ? NAN : 0.0f;
        return au >= 0x7f800000u;
    }
    __m256 id = _mm256_set1_ps(1.0f / db);
    __m256i i0 = _mm256_cvtps_epi32(_mm256_mul_ps(v[0], id));
    __m256i i1 = _mm256_cvtps_epi32(_mm256_mul_ps(v[1], id));
    __m256i i2 = _mm256_cvtps_epi32(_mm256_mul_ps(v[2], id));
    __m256i i3 = _mm256_cvtps_epi32(_mm256_mul_ps(v[3], id));
    /* packs work within 128-bit lanes: 0-3 8-11 4-7 12-15 | ..., then
     * the bytes' dwords back in order. */
    __m256i p = _mm256_packs_epi16(_mm256_packs_epi32(i0, i1), _mm256_packs_epi32(i2, i3));
    p = _mm256_permutevar8x32_epi32(p, _mm256_setr_epi32(0, 4, 1, 5, 2, 6, 3, 7));
    _mm256_storeu_si256((__m256i *)q, p);
    *d = db;
    return 0;
}
#endif

int llm_cpu_quantize_q8(int8_t *q, float *d, const float *inp, size_t ldi, const int *map,
                        int N, int IC)
{
    int nb = (IC + 31) / 32, bad = N;
#pragma omp parallel for schedule(static) reduction(min:bad) \
    if ((size_t)N * IC >= Q8_PAR_MIN)
    for (int n = 0; n < N; n++) {
        const float *x = inp + (size_t)(map ? map[n] : n) * ldi;
        int8_t *qn = q + (size_t)n * nb * 32;
        float *dn = d + (size_t)n * nb;
        int worse = 0;
        for (int b = 0; b < nb; b++) {
            int len = IC - 32 * b < 32 ? IC - 32 * b : 32;
#if defined(__AVX2__) && defined(__FMA__)
            if (len == 32) {
                worse |= quantize_block32(qn + 32 * b, dn + b, x + 32 * b);
                continue;
            }
#endif
            worse |= quantize_block(qn + 32 * b, dn + b, x + 32 * b, len);
        }
        if (worse && n < bad)
            bad = n;
    }
    return bad;
}

/* ------------------------------------------------------------ product */

/* The product's operands: input row n is xq + n * nb * 32 (scales xd + n *
 * nb), weight row o is wq + o * nb * 32 (wd + o * nb), output row n is
 * out + r * ldo with r = map[n] (map NULL: n). */
typedef struct {
    float *out;
    size_t ldo;
    const int *map;
    const int8_t *xq, *wq;
    const float *xd, *wd;
    int N, nb, OC;
} q8set;

#if defined(__AVX2__) && defined(__FMA__)
/* Lane j = the sum of the 8 lanes of v[j]: integers, exact in any order. */
static inline __m256i reduce8(const __m256i v[8])
{
    __m256i h01 = _mm256_hadd_epi32(v[0], v[1]), h23 = _mm256_hadd_epi32(v[2], v[3]);
    __m256i h45 = _mm256_hadd_epi32(v[4], v[5]), h67 = _mm256_hadd_epi32(v[6], v[7]);
    __m256i a = _mm256_hadd_epi32(h01, h23), b = _mm256_hadd_epi32(h45, h67);
    return _mm256_add_epi32(_mm256_permute2x128_si256(a, b, 0x20),
                            _mm256_permute2x128_si256(a, b, 0x31));
}

static inline int32_t reduce1(__m256i v)
{
    __m128i t = _mm_add_epi32(_mm256_castsi256_si128(v), _mm256_extracti128_si256(v, 1));
    t = _mm_add_epi32(t, _mm_shuffle_epi32(t, 0x4e));
    t = _mm_add_epi32(t, _mm_shuffle_epi32(t, 0xb1));
    return _mm_cvtsi128_si32(t);
}

/* The product's loops, once per way of taking a block's dot product. */
#define Q8_FN(name) name##_avx2
#define Q8_TARGET
#include "q8_dot.h"
#undef Q8_FN
#undef Q8_TARGET

#if defined(__AVX512F__)
#define Q8_VNNI 1
#define Q8_FN(name) name##_vnni
#define Q8_TARGET __attribute__((target("avx512vnni,avx512vl")))
#include "q8_dot.h"
#undef Q8_FN
#undef Q8_TARGET
#undef Q8_VNNI

static int has_vnni(void)
{
    __builtin_cpu_init();
    return __builtin_cpu_supports("avx512vnni");
}

/* Many input rows on a CPU with VNNI: the weight rows are repacked, 16 at
 * a time, so that one vpdpbusd takes 4 values of 16 rows (one per lane)
 * against 4 values of an input row broadcast to every lane: a block's 16
 * integer sums come out in the lanes with no horizontal sum. vpdpbusd
 * multiplies unsigned by signed bytes: the weights go in as w + 128, and
 * 128 times the block's sum of the inputs comes off after, an exact
 * integer again. Then the scales and the float sums of kernels.h, lane by
 * lane: the same bits as q8_part's, whichever way each row goes. */
#define Q8_PACK_MIN 24   /* input rows from which repacking pays (measured) */
#define Q8_LANES 16

/* Weight rows o0 .. o0+15 (past OC: 0): pk[((b * 8 + t) * 16 + r) * 4 + i]
 * = w[o0 + r][32b + 4t + i] + 128, ps[b * 16 + r] = wd[o0 + r][b]: a
 * transpose of 4-byte words, by gathers. */
static void pack16(uint8_t *pk, float *ps, const q8set *s, int o0)
{
    int nb = s->nb, rows = s->OC - o0 < Q8_LANES ? s->OC - o0 : Q8_LANES;
    __mmask16 m = (__mmask16)((1u << rows) - 1);
    const int8_t *w = s->wq + (size_t)o0 * nb * 32;
    const float *d = s->wd + (size_t)o0 * nb;
    __m512i lane = _mm512_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15);
    __m512i wrow = _mm512_mullo_epi32(lane, _mm512_set1_epi32(nb * 32));
    __m512i drow = _mm512_mullo_epi32(lane, _mm512_set1_epi32(nb));
    __m512i flip = _mm512_set1_epi32((int)0x80808080u), zero = _mm512_setzero_si512();
    for (int b = 0; b < nb; b++) {
        for (int t = 0; t < 8; t++) {
            __m512i v = _mm512_mask_i32gather_epi32(zero, m, wrow, w + 32 * b + 4 * t, 1);
            _mm512_storeu_si512(pk + ((size_t)b * 8 + t) * Q8_LANES * 4,
                                _mm512_xor_si512(v, flip));
        }
        _mm512_storeu_ps(ps + (size_t)b * Q8_LANES,
                         _mm512_mask_i32gather_ps(_mm512_setzero_ps(), m, drow, d + b, 4));
    }
}

/* The 16 integer sums of block b of the packed rows with input block x,
 * plus 128 x the sum of x (pack16's offset). */
__attribute__((target("avx512vnni"), always_inline))
static inline __m512i block16(const uint8_t *pk, int b, const int8_t *x)
{
    const uint8_t *w = pk + (size_t)b * 8 * Q8_LANES * 4;
    __m512i acc = _mm512_setzero_si512();
#pragma GCC unroll 8
    for (int t = 0; t < 8; t++) {
        int32_t q;
        memcpy(&q, x + 4 * t, sizeof q);
        acc = _mm512_dpbusd_epi32(acc, _mm512_loadu_si512(w + t * Q8_LANES * 4),
                                  _mm512_set1_epi32(q));
    }
    return acc;
}

/* Outputs o0 .. o0+15 of every input row from pack16's pk and ps; cx[n *
 * nb + b] = 128 x the sum of input row n's block b. */
__attribute__((target("avx512vnni")))
static void q8_rows16(const q8set *s, const uint8_t *pk, const float *ps, const int32_t *cx,
                      int o0)
{
    int nb = s->nb, nb8 = nb & ~7, rows = s->OC - o0 < Q8_LANES ? s->OC - o0 : Q8_LANES;
    __mmask16 keep = (__mmask16)((1u << rows) - 1);
    for (int n = 0; n < s->N; n++) {
        const int8_t *x = s->xq + (size_t)n * nb * 32;
        const float *dx = s->xd + (size_t)n * nb;
        const int32_t *c = cx + (size_t)n * nb;
        __m512 p[8];
#pragma GCC unroll 8
        for (int j = 0; j < 8; j++)
            p[j] = _mm512_setzero_ps();
        for (int b = 0; b < nb8; b += 8) {
#pragma GCC unroll 8
            for (int j = 0; j < 8; j++) {
                __m512i i = _mm512_sub_epi32(block16(pk, b + j, x + 32 * (b + j)),
                                             _mm512_set1_epi32(c[b + j]));
                __m512 sb = _mm512_mul_ps(_mm512_loadu_ps(ps + (b + j) * Q8_LANES),
                                          _mm512_set1_ps(dx[b + j]));
                p[j] = _mm512_fmadd_ps(sb, _mm512_cvtepi32_ps(i), p[j]);
            }
        }
        __m512 sum = _mm512_add_ps(_mm512_add_ps(_mm512_add_ps(p[0], p[4]),
                                                 _mm512_add_ps(p[2], p[6])),
                                   _mm512_add_ps(_mm512_add_ps(p[1], p[5]),
                                                 _mm512_add_ps(p[3], p[7])));
        for (int b = nb8; b < nb; b++) {
            __m512i i = _mm512_sub_epi32(block16(pk, b, x + 32 * b), _mm512_set1_epi32(c[b]));
            __m512 sb = _mm512_mul_ps(_mm512_loadu_ps(ps + b * Q8_LANES), _mm512_set1_ps(dx[b]));
            sum = _mm512_fmadd_ps(sb, _mm512_cvtepi32_ps(i), sum);
        }
        _mm512_mask_storeu_ps(s->out + (size_t)(s->map ? s->map[n] : n) * s->ldo + o0, keep,
                              sum);
    }
}

/* The repacking product: groups of 16 weight rows split between the
 * threads. @return 0 when out of memory, having written nothing. */
static int q8_product_packed(const q8set *s)
{
    int nb = s->nb, ng = (s->OC + Q8_LANES - 1) / Q8_LANES;
    int32_t *cx = malloc((size_t)s->N * nb * sizeof *cx);
    if (!cx)
        return 0;
    for (size_t i = 0; i < (size_t)s->N * nb; i++) {
        int32_t t = 0;
        for (int k = 0; k < 32; k++)
            t += s->xq[32 * i + k];
        cx[i] = 128 * t;
    }
#pragma omp parallel
    {
        int nt = omp_get_num_threads(), id = omp_get_thread_num();
        int g0 = (int)((int64_t)ng * id / nt), g1 = (int)((int64_t)ng * (id + 1) / nt);
        uint8_t *pk = malloc((size_t)nb * 32 * Q8_LANES);
        float *ps = malloc((size_t)nb * Q8_LANES * sizeof *ps);
        if (pk && ps)
            for (int g = g0; g < g1; g++) {
                pack16(pk, ps, s, g * Q8_LANES);
                q8_rows16(s, pk, ps, cx, g * Q8_LANES);
            }
        else if (g0 < g1)   /* this thread's rows the unpacked way */
            q8_part_vnni(s, g0 * Q8_LANES, g1 * Q8_LANES < s->OC ? g1 * Q8_LANES : s->OC);
        free(pk);
        free(ps);
    }
    free(cx);
    return 1;
}
#endif

/* Contiguous runs of weight rows per thread. */
static void q8_product(const q8set *s)
{
#if defined(__AVX512F__)
    int vnni = has_vnni();
    if (vnni && s->N >= Q8_PACK_MIN && q8_product_packed(s))
        return;
#endif
#pragma omp parallel
    {
        int nt = omp_get_num_threads(), id = omp_get_thread_num();
        int o0 = (int)((int64_t)s->OC * id / nt), o1 = (int)((int64_t)s->OC * (id + 1) / nt);
#if defined(__AVX512F__)
        if (vnni)
            q8_part_vnni(s, o0, o1);
        else
#endif
            q8_part_avx2(s, o0, o1);
    }
}
#else
/* Portable: the same order in plain C. */
static float q8_elem(const q8set *s, int n, int o)
{
    int nb = s->nb, nb8 = nb & ~7;
    const int8_t *x = s->xq + (size_t)n * nb * 32, *w = s->wq + (size_t)o * nb * 32;
    const float *dx = s->xd + (size_t)n * nb, *dw = s->wd + (size_t)o * nb;
    float p[8] = { 0 };
    for (int b = 0; b < nb; b++) {
        int32_t ib = 0;
        for (int k = 0; k < 32; k++)
            ib += (int32_t)w[32 * b + k] * x[32 * b + k];
        float sb = dw[b] * dx[b];
        if (b < nb8) {
            p[b & 7] = fmaf(sb, (float)ib, p[b & 7]);
            continue;
        }
        if (b == nb8)
            p[0] = ((p[0] + p[4]) + (p[2] + p[6])) + ((p[1] + p[5]) + (p[3] + p[7]));
        p[0] = fmaf(sb, (float)ib, p[0]);
    }
    if (nb8 == nb)
        p[0] = ((p[0] + p[4]) + (p[2] + p[6])) + ((p[1] + p[5]) + (p[3] + p[7]));
    return p[0];
}

static void q8_product(const q8set *s)
{
#pragma omp parallel for schedule(static)
    for (int o = 0; o < s->OC; o++)
        for (int n = 0; n < s->N; n++)
            s->out[(size_t)(s->map ? s->map[n] : n) * s->ldo + o] = q8_elem(s, n, o);
}
#endif

void llm_cpu_matmul_rows_q8(float *out, size_t ldo, const int *map, const int8_t *xq,
                            const float *xd, const int8_t *wq, const float *wd, int N,
                            int IC, int OC)
{
    q8set s = { out, ldo, map, xq, wq, xd, wd, N, (IC + 31) / 32, OC };
    q8_product(&s);
}
