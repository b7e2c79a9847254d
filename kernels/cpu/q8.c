/* q8.c: the CPU kernels of int8 inference: the weights quantized once into
 * blocks of 32 int8s with a float scale and offset each, the input rows at
 * every product into blocks of 32 int16s with a scale each, and the row
 * product of the two, whose integer dot products per block are exact and
 * whose float sum over blocks follows the order kernels.h fixes, so that
 * ref.c gives the same bits and a row gets the same bits in any batch.
 *
 * A block's dot product: the int8 weights sign-extended to int16 and
 * multiplied by the int16 inputs in pairs (madd: no pair reaches int32's
 * limit, 2 x 128 x 32767 < 2^31), 8-wide on AVX2, 16-wide on AVX-512.
 * With AVX512-VNNI and many input rows (a prompt, an evaluation, a
 * classification batch), the weight rows are repacked 16 at a time so that
 * the lanes of one vpdpwssd hold 16 output rows: no horizontal sums, the
 * same bits. The level's flags stay without -mavx512vnni; only the
 * functions with a target attribute use it, when cpuid says so, so that
 * the binary runs on AVX-512 CPUs without it. On the amx level, many input
 * rows go through AMX's int8 tiles instead: each int16 input split into
 * its high byte (signed) and low byte (unsigned), x = 256 h + l, a block's
 * dot product is 256 TDPBSSD(h, w) + TDPBUSD(l, w), exact in int32 as
 * before, so again the same bits. */
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
#include "amx.h"
#include "cpu.h"
#include "simd.h"
#include "q8_rule.h"

/* Rows of quantization below this many values go without threads. */
#define Q8_PAR_MIN 32768
/* Input rows taken together while a thread's weight rows go past them. */
#define Q8_GROUP 32

/* ------------------------------------------------------------ quantize */

#if defined(__AVX2__) && defined(__FMA__)
/* The largest of 8 unsigned bit patterns. */
static inline uint32_t max8_epu32(__m256i a)
{
    __m128i t = _mm_max_epu32(_mm256_castsi256_si128(a), _mm256_extracti128_si256(a, 1));
    t = _mm_max_epu32(t, _mm_shuffle_epi32(t, 0x4e));
    t = _mm_max_epu32(t, _mm_shuffle_epi32(t, 0xb1));
    return (uint32_t)_mm_cvtsi128_si32(t);
}

/* 32 int32s (4 vectors of 8, in order) as 32 int8s, in order: packs works
 * within 128-bit lanes (lane 0 holds dwords 0-3 of each vector, lane 1
 * dwords 4-7), so the dwords are put back in order after. */
static inline void store_i8x32(int8_t *q, __m256i i0, __m256i i1, __m256i i2, __m256i i3)
{
    __m256i b = _mm256_packs_epi16(_mm256_packs_epi32(i0, i1), _mm256_packs_epi32(i2, i3));
    b = _mm256_permutevar8x32_epi32(b, _mm256_setr_epi32(0, 4, 1, 5, 2, 6, 3, 7));
    _mm256_storeu_si256((__m256i *)q, b);
}

/* q8_rule.h's block_error over a whole block, its order: lane j of 4
 * doubles sums the squares of k = j, j + 4, ...; then (e0 + e2) + (e1 +
 * e3). Multiplies and adds separately, as the scalar rule's (C11 does not
 * contract them). */
static inline double block_error32(const int8_t *q, float d, float m, const float *x)
{
    __m256d vd = _mm256_set1_pd(d), vm = _mm256_set1_pd(m), e = _mm256_setzero_pd();
    for (int k = 0; k < 32; k += 4) {
        int32_t q4;
        memcpy(&q4, q + k, sizeof q4);
        __m256d qk = _mm256_cvtepi32_pd(_mm_cvtepi8_epi32(_mm_cvtsi32_si128(q4)));
        __m256d t = _mm256_sub_pd(_mm256_add_pd(_mm256_mul_pd(vd, qk), vm),
                                  _mm256_cvtps_pd(_mm_loadu_ps(x + k)));
        e = _mm256_add_pd(e, _mm256_mul_pd(t, t));
    }
    __m128d h = _mm_add_pd(_mm256_castpd256_pd128(e), _mm256_extractf128_pd(e, 1));
    return _mm_cvtsd_f64(_mm_add_sd(h, _mm_unpackhi_pd(h, h)));
}

/* q8_rule.h's weight_block over a whole block: the same bits (maxima and
 * minima are exact in any order; the sign of a zero lo or hi changes none
 * of the values made from them; cvtps rounds to nearest, ties to even, as
 * nearbyintf under the default MXCSR). */
static int weight_block32(int8_t *q, float *d, float *m, const float *x)
{
    __m256 v[4], lo, hi;
    __m256i mag = _mm256_set1_epi32(0x7fffffff), a = _mm256_setzero_si256();
    for (int j = 0; j < 4; j++) {
        v[j] = _mm256_loadu_ps(x + 8 * j);
        a = _mm256_max_epu32(a, _mm256_and_si256(_mm256_castps_si256(v[j]), mag));
    }
    uint32_t au = max8_epu32(a);
    float amax, ds;
    memcpy(&amax, &au, sizeof amax);
    *m = 0.0f;
    if (au >= 0x7f800000u || (ds = amax / 127.0f) < FLT_MIN) {
        memset(q, 0, 32);
        *d = au >= 0x7f800000u ? NAN : 0.0f;
        return au >= 0x7f800000u;
    }
    __m256 id = _mm256_set1_ps(1.0f / ds);
    store_i8x32(q, _mm256_cvtps_epi32(_mm256_mul_ps(v[0], id)),
                _mm256_cvtps_epi32(_mm256_mul_ps(v[1], id)),
                _mm256_cvtps_epi32(_mm256_mul_ps(v[2], id)),
                _mm256_cvtps_epi32(_mm256_mul_ps(v[3], id)));
    *d = ds;
    lo = _mm256_min_ps(_mm256_min_ps(v[0], v[1]), _mm256_min_ps(v[2], v[3]));
    hi = _mm256_max_ps(_mm256_max_ps(v[0], v[1]), _mm256_max_ps(v[2], v[3]));
    __m128 l = _mm_min_ps(_mm256_castps256_ps128(lo), _mm256_extractf128_ps(lo, 1));
    __m128 h = _mm_max_ps(_mm256_castps256_ps128(hi), _mm256_extractf128_ps(hi, 1));
    l = _mm_min_ps(l, _mm_movehl_ps(l, l));
    h = _mm_max_ps(h, _mm_movehl_ps(h, h));
    float flo = _mm_cvtss_f32(_mm_min_ss(l, _mm_shuffle_ps(l, l, 1)));
    float fhi = _mm_cvtss_f32(_mm_max_ss(h, _mm_shuffle_ps(h, h, 1)));
    if (!(flo < fhi))
        return 0;
    float da = (fhi - flo) / 255.0f, ma = flo + 128.0f * da;
    __m256 vma = _mm256_set1_ps(ma), ida = _mm256_set1_ps(1.0f / da);
    __m256 cl = _mm256_set1_ps(-128.0f), ch = _mm256_set1_ps(127.0f);
    __m256i ia[4];
    for (int j = 0; j < 4; j++) {
        __m256 r = _mm256_round_ps(_mm256_mul_ps(_mm256_sub_ps(v[j], vma), ida),
                                   _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
        ia[j] = _mm256_cvtps_epi32(_mm256_min_ps(_mm256_max_ps(r, cl), ch));
    }
    int8_t qa[32];
    store_i8x32(qa, ia[0], ia[1], ia[2], ia[3]);
    if (block_error32(qa, da, ma, x) < block_error32(q, ds, 0.0f, x)) {
        memcpy(q, qa, 32);
        *d = da;
        *m = ma;
    }
    return 0;
}
#endif

int llm_cpu_quantize_q8(void *w, const float *inp, size_t ldi, const int *map, int N, int IC)
{
    int nb = (IC + 31) / 32, bad = N;
#pragma omp parallel for schedule(static) reduction(min:bad) \
    if ((size_t)N * IC >= Q8_PAR_MIN)
    for (int n = 0; n < N; n++) {
        const float *x = inp + (size_t)(map ? map[n] : n) * ldi;
        char *row = (char *)w + (size_t)n * nb * LLM_Q8_BYTES;
        int worse = 0;
        for (int b = 0; b < nb; b++) {
            int8_t *q = (int8_t *)(row + llm_q8_qoff(nb, b));
            float *d = (float *)(row + llm_q8_doff(nb, b)), *m = (float *)(row + llm_q8_moff(nb, b));
#if defined(__AVX2__) && defined(__FMA__)
            if (IC - 32 * b >= 32) {
                worse |= weight_block32(q, d, m, x + 32 * b);
                continue;
            }
#endif
            worse |= weight_block(q, d, m, x + 32 * b, IC - 32 * b < 32 ? IC - 32 * b : 32);
        }
        if (worse && n < bad)
            bad = n;
    }
    return bad;
}

#if defined(__AVX2__) && defined(__FMA__)
/* A whole input block: the maximum of the bit patterns by integer maxima
 * (exact, any order), the rounding by cvtps (nearest, ties to even, as the
 * default MXCSR), the sum of the exact integers, the packing as 32 int16s
 * in order. */
static int input_block32(int16_t *q, float *d, float *s, const float *x)
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
    if (au >= 0x7f800000u || (db = amax / 32767.0f) < FLT_MIN) {
        memset(q, 0, 32 * sizeof *q);
        *d = *s = au >= 0x7f800000u ? NAN : 0.0f;
        return au >= 0x7f800000u;
    }
    __m256 id = _mm256_set1_ps(1.0f / db);
    __m256i i0 = _mm256_cvtps_epi32(_mm256_mul_ps(v[0], id));
    __m256i i1 = _mm256_cvtps_epi32(_mm256_mul_ps(v[1], id));
    __m256i i2 = _mm256_cvtps_epi32(_mm256_mul_ps(v[2], id));
    __m256i i3 = _mm256_cvtps_epi32(_mm256_mul_ps(v[3], id));
    __m256i sum = _mm256_add_epi32(_mm256_add_epi32(i0, i1), _mm256_add_epi32(i2, i3));
    __m128i u = _mm_add_epi32(_mm256_castsi256_si128(sum), _mm256_extracti128_si256(sum, 1));
    u = _mm_add_epi32(u, _mm_shuffle_epi32(u, 0x4e));
    u = _mm_add_epi32(u, _mm_shuffle_epi32(u, 0xb1));
    /* packs works within 128-bit lanes: 0-3 8-11 | 4-7 12-15, then the
     * quadwords back in order. */
    __m256i p0 = _mm256_permute4x64_epi64(_mm256_packs_epi32(i0, i1), 0xd8);
    __m256i p1 = _mm256_permute4x64_epi64(_mm256_packs_epi32(i2, i3), 0xd8);
    _mm256_storeu_si256((__m256i *)q, p0);
    _mm256_storeu_si256((__m256i *)(q + 16), p1);
    *d = db;
    *s = db * (float)_mm_cvtsi128_si32(u);
    return 0;
}
#endif

int llm_cpu_quantize_q16(int16_t *q, float *d, float *s, const float *inp, size_t ldi,
                         const int *map, int N, int IC)
{
    int nb = (IC + 31) / 32, bad = N;
#pragma omp parallel for schedule(static) reduction(min:bad) \
    if ((size_t)N * IC >= Q8_PAR_MIN)
    for (int n = 0; n < N; n++) {
        const float *x = inp + (size_t)(map ? map[n] : n) * ldi;
        size_t i = (size_t)n * nb;
        int worse = 0;
        for (int b = 0; b < nb; b++) {
            int len = IC - 32 * b < 32 ? IC - 32 * b : 32;
#if defined(__AVX2__) && defined(__FMA__)
            if (len == 32) {
                worse |= input_block32(q + (i + b) * 32, d + i + b, s + i + b, x + 32 * b);
                continue;
            }
#endif
            worse |= input_block(q + (i + b) * 32, d + i + b, s + i + b, x + 32 * b, len);
        }
        if (worse && n < bad)
            bad = n;
    }
    return bad;
}

/* ------------------------------------------------------------ product */

/* The product's operands: input row n is xq + n * nb * 32 (scales xd + n *
 * nb, scaled sums xs + n * nb), weight row o starts at w + o * nb *
 * LLM_Q8_BYTES, output row n is out + r * ldo with r = map[n] (map NULL:
 * n). */
typedef struct {
    float *out;
    size_t ldo;
    const int *map;
    const int16_t *xq;
    const char *w;
    const float *xd, *xs;
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

/* The 8 int32 lanes whose sum is the dot product of the 32 int8s of w and
 * the 32 int16s of x. */
static inline __m256i block_dot(const int8_t *w, const int16_t *x)
{
#if defined(__AVX512BW__)
    __m512i p = _mm512_madd_epi16(_mm512_cvtepi8_epi16(_mm256_loadu_si256((const __m256i *)w)),
                                  _mm512_loadu_si512(x));
    return _mm256_add_epi32(_mm512_castsi512_si256(p), _mm512_extracti64x4_epi64(p, 1));
#else
    __m256i w0 = _mm256_cvtepi8_epi16(_mm_loadu_si128((const __m128i *)w));
    __m256i w1 = _mm256_cvtepi8_epi16(_mm_loadu_si128((const __m128i *)(w + 16)));
    return _mm256_add_epi32(_mm256_madd_epi16(w0, _mm256_loadu_si256((const __m256i *)x)),
                            _mm256_madd_epi16(w1, _mm256_loadu_si256((const __m256i *)(x + 16))));
#endif
}

/* Element (n, o): blocks 8 at a time, lane j of the accumulator taking the
 * blocks b = 8i + j, then hsum8's tree, then the remaining blocks. */
static inline float elem(const q8set *s, int n, int o)
{
    int nb = s->nb, nb8 = nb & ~7;
    const int16_t *x = s->xq + (size_t)n * nb * 32;
    const char *w = s->w + (size_t)o * nb * LLM_Q8_BYTES;
    const float *dx = s->xd + (size_t)n * nb, *sx = s->xs + (size_t)n * nb;
    __m256 acc = _mm256_setzero_ps();
    for (int b = 0; b < nb8; b += 8) {
        /* a whole group: 8 blocks' int8s, their scales, their offsets */
        const char *g = w + (size_t)b * LLM_Q8_BYTES;
        __m256i v[8];
#pragma GCC unroll 8
        for (int j = 0; j < 8; j++)
            v[j] = block_dot((const int8_t *)g + 32 * j, x + 32 * (b + j));
        __m256 sb = _mm256_mul_ps(_mm256_loadu_ps((const float *)(g + 256)),
                                  _mm256_loadu_ps(dx + b));
        acc = _mm256_fmadd_ps(sb, _mm256_cvtepi32_ps(reduce8(v)), acc);
        acc = _mm256_fmadd_ps(_mm256_loadu_ps((const float *)(g + 288)), _mm256_loadu_ps(sx + b),
                              acc);
    }
    float p = hsum8(acc);
    for (int b = nb8; b < nb; b++) {
        float d = *(const float *)(w + llm_q8_doff(nb, b));
        float m = *(const float *)(w + llm_q8_moff(nb, b));
        int32_t i = reduce1(block_dot((const int8_t *)(w + llm_q8_qoff(nb, b)), x + 32 * b));
        p = fmaf(m, sx[b], fmaf(d * dx[b], (float)i, p));
    }
    return p;
}

/* Weight rows [o0, o1) against every input row, the input rows Q8_GROUP at
 * a time (they stay in L1/L2 while the weight rows stream past once per
 * group). */
static void q8_part(const q8set *s, int o0, int o1)
{
    for (int g = 0; g < s->N; g += Q8_GROUP) {
        int ge = s->N - g < Q8_GROUP ? s->N : g + Q8_GROUP;
        for (int o = o0; o < o1; o++)
            for (int n = g; n < ge; n++)
                s->out[(size_t)(s->map ? s->map[n] : n) * s->ldo + o] = elem(s, n, o);
    }
}

#if defined(__AVX512F__)
static int has_vnni(void)
{
    __builtin_cpu_init();
    return __builtin_cpu_supports("avx512vnni");
}

/* Many input rows on a CPU with VNNI: the weight rows are repacked, 16 at
 * a time, as int16 pairs, so that one vpdpwssd takes 2 values of 16 rows
 * (one pair per lane) against 2 values of an input row broadcast to every
 * lane: a block's 16 integer sums come out in the lanes with no
 * horizontal sum. Then the scales, offsets and the float sums of
 * kernels.h, lane by lane: the same bits as q8_part's, whichever way each
 * row goes. */
#define Q8_PACK_MIN 24   /* input rows from which repacking pays (measured) */
#define Q8_LANES 16

/* Byte offsets of 16 weight rows of nb blocks, one a lane. */
static inline __m512i row_offsets(int nb)
{
    __m512i lane = _mm512_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15);
    return _mm512_mullo_epi32(lane, _mm512_set1_epi32(nb * LLM_Q8_BYTES));
}

/* ps[b * 16 + r] and pm[b * 16 + r]: the scale and the offset of block b of
 * the weight rows at w + wrow (lanes m; 0 in the others). */
static inline void gather_scales(float *ps, float *pm, __mmask16 m, __m512i wrow, const char *w,
                                 int nb, int b)
{
    _mm512_storeu_ps(ps + (size_t)b * Q8_LANES,
                     _mm512_mask_i32gather_ps(_mm512_setzero_ps(), m, wrow,
                                              w + llm_q8_doff(nb, b), 1));
    _mm512_storeu_ps(pm + (size_t)b * Q8_LANES,
                     _mm512_mask_i32gather_ps(_mm512_setzero_ps(), m, wrow,
                                              w + llm_q8_moff(nb, b), 1));
}

/* Weight rows o0 .. o0+15 (past OC: 0): the 32-bit word pk[(b * 16 + t) *
 * 16 + r] holds w[o0 + r][32b + 2t] (low half) and w[o0 + r][32b + 2t + 1]
 * (high half) as int16s; ps[b * 16 + r] = wd[o0 + r][b], pm[b * 16 + r] =
 * wm[o0 + r][b]. By gathers of 4 bytes a row, widened and split into the
 * pairs (0, 1) and (2, 3). */
static void pack16(int32_t *pk, float *ps, float *pm, const q8set *s, int o0)
{
    int nb = s->nb, rows = s->OC - o0 < Q8_LANES ? s->OC - o0 : Q8_LANES;
    __mmask16 m = (__mmask16)((1u << rows) - 1);
    const char *w = s->w + (size_t)o0 * nb * LLM_Q8_BYTES;
    __m512i wrow = row_offsets(nb);
    __m512i even = _mm512_setr_epi32(0, 2, 4, 6, 8, 10, 12, 14, 16, 18, 20, 22, 24, 26, 28, 30);
    __m512i odd = _mm512_add_epi32(even, _mm512_set1_epi32(1)), zero = _mm512_setzero_si512();
    for (int b = 0; b < nb; b++) {
        for (int t = 0; t < 8; t++) {
            /* lane r: bytes 4t .. 4t+3 of row r's block b */
            __m512i v = _mm512_mask_i32gather_epi32(zero, m, wrow,
                                                    w + llm_q8_qoff(nb, b) + 4 * t, 1);
            /* int16s: rows 0-7 in lo, 8-15 in hi, each as words (0, 1), (2, 3) */
            __m512i lo = _mm512_cvtepi8_epi16(_mm512_castsi512_si256(v));
            __m512i hi = _mm512_cvtepi8_epi16(_mm512_extracti64x4_epi64(v, 1));
            int32_t *dst = pk + ((size_t)b * 16 + 2 * t) * Q8_LANES;
            _mm512_storeu_si512(dst, _mm512_permutex2var_epi32(lo, even, hi));
            _mm512_storeu_si512(dst + Q8_LANES, _mm512_permutex2var_epi32(lo, odd, hi));
        }
        gather_scales(ps, pm, m, wrow, w, nb, b);
    }
}

/* The 16 integer sums of block b of the packed rows with input block x. */
__attribute__((target("avx512vnni"), always_inline))
static inline __m512i block16(const int32_t *pk, int b, const int16_t *x)
{
    const int32_t *w = pk + (size_t)b * 16 * Q8_LANES;
    __m512i acc = _mm512_setzero_si512();
#pragma GCC unroll 16
    for (int t = 0; t < 16; t++) {
        int32_t q;
        memcpy(&q, x + 2 * t, sizeof q);
        acc = _mm512_dpwssd_epi32(acc, _mm512_loadu_si512(w + t * Q8_LANES),
                                  _mm512_set1_epi32(q));
    }
    return acc;
}

/* Outputs o0 .. o0+15 of every input row from pack16's pk, ps and pm. */
__attribute__((target("avx512vnni")))
static void q8_rows16(const q8set *s, const int32_t *pk, const float *ps, const float *pm,
                      int o0)
{
    int nb = s->nb, nb8 = nb & ~7, rows = s->OC - o0 < Q8_LANES ? s->OC - o0 : Q8_LANES;
    __mmask16 keep = (__mmask16)((1u << rows) - 1);
    for (int n = 0; n < s->N; n++) {
        const int16_t *x = s->xq + (size_t)n * nb * 32;
        const float *dx = s->xd + (size_t)n * nb, *sx = s->xs + (size_t)n * nb;
        __m512 p[8];
#pragma GCC unroll 8
        for (int j = 0; j < 8; j++)
            p[j] = _mm512_setzero_ps();
        for (int b = 0; b < nb8; b += 8) {
#pragma GCC unroll 8
            for (int j = 0; j < 8; j++) {
                __m512i i = block16(pk, b + j, x + 32 * (b + j));
                __m512 sb = _mm512_mul_ps(_mm512_loadu_ps(ps + (b + j) * Q8_LANES),
                                          _mm512_set1_ps(dx[b + j]));
                p[j] = _mm512_fmadd_ps(sb, _mm512_cvtepi32_ps(i), p[j]);
                p[j] = _mm512_fmadd_ps(_mm512_loadu_ps(pm + (b + j) * Q8_LANES),
                                       _mm512_set1_ps(sx[b + j]), p[j]);
            }
        }
        __m512 sum = _mm512_add_ps(_mm512_add_ps(_mm512_add_ps(p[0], p[4]),
                                                 _mm512_add_ps(p[2], p[6])),
                                   _mm512_add_ps(_mm512_add_ps(p[1], p[5]),
                                                 _mm512_add_ps(p[3], p[7])));
        for (int b = nb8; b < nb; b++) {
            __m512i i = block16(pk, b, x + 32 * b);
            __m512 sb = _mm512_mul_ps(_mm512_loadu_ps(ps + b * Q8_LANES), _mm512_set1_ps(dx[b]));
            sum = _mm512_fmadd_ps(sb, _mm512_cvtepi32_ps(i), sum);
            sum = _mm512_fmadd_ps(_mm512_loadu_ps(pm + b * Q8_LANES), _mm512_set1_ps(sx[b]), sum);
        }
        _mm512_mask_storeu_ps(s->out + (size_t)(s->map ? s->map[n] : n) * s->ldo + o0, keep,
                              sum);
    }
}

/* The repacking product: groups of 16 weight rows split between the
 * threads; a thread without memory for its packing takes its rows the
 * unpacked way. */
static void q8_product_packed(const q8set *s)
{
    int nb = s->nb, ng = (s->OC + Q8_LANES - 1) / Q8_LANES;
#pragma omp parallel
    {
        int nt = omp_get_num_threads(), id = omp_get_thread_num();
        int g0 = (int)((int64_t)ng * id / nt), g1 = (int)((int64_t)ng * (id + 1) / nt);
        int32_t *pk = malloc((size_t)nb * 16 * Q8_LANES * sizeof *pk);
        float *ps = malloc((size_t)nb * Q8_LANES * 2 * sizeof *ps);
        if (pk && ps)
            for (int g = g0; g < g1; g++) {
                pack16(pk, ps, ps + (size_t)nb * Q8_LANES, s, g * Q8_LANES);
                q8_rows16(s, pk, ps, ps + (size_t)nb * Q8_LANES, g * Q8_LANES);
            }
        else if (g0 < g1)
            q8_part(s, g0 * Q8_LANES, g1 * Q8_LANES < s->OC ? g1 * Q8_LANES : s->OC);
        free(pk);
        free(ps);
    }
}
#endif

#if LLM_AMX
/* AMX: tiles of 16 input rows by 16 weight rows (outputs), a block of 32
 * values of k at a time: tile 0 the sums of the high bytes (TDPBSSD),
 * tile 1 of the low bytes (TDPBUSD), tiles 2 and 3 the inputs' high and
 * low bytes (16 rows of 32), tile 4 the weights (8 rows of 16 outputs by
 * 4 bytes: VNNI's layout). Then the scales, offsets and float sums of
 * kernels.h per input row, 16 outputs in the lanes, as q8_rows16. */
enum { XT = 16 };   /* input rows of a tile */

static void q8_amx_begin(void)
{
    _Alignas(64) unsigned char cfg[64] = {1};
    static const unsigned char rows[5] = {16, 16, 16, 16, 8}, colsb[5] = {64, 64, 32, 32, 64};
    for (int t = 0; t < 5; t++) {
        cfg[16 + 2 * t] = colsb[t];
        cfg[48 + t] = rows[t];
    }
    amx_config(cfg);
}

/* Input rows XT at a time, blocks in turn, each row's 64 bytes the high
 * bytes of its block's 32 int16s then the low ones: row r of group g,
 * block b at xa + ((g * nb + b) * XT + r) * 64; rows past N zero. */
static void q8_amx_inputs(unsigned char *xa, const q8set *s)
{
    int nb = s->nb, ng = (s->N + XT - 1) / XT;
#pragma omp parallel for schedule(static)
    for (int g = 0; g < ng; g++)
        for (int b = 0; b < nb; b++)
            for (int r = 0; r < XT; r++) {
                unsigned char *d = xa + (((size_t)g * nb + b) * XT + r) * 64;
                int n = g * XT + r;
                if (n >= s->N) {
                    _mm512_storeu_si512(d, _mm512_setzero_si512());
                    continue;
                }
                __m512i x = _mm512_loadu_si512(s->xq + ((size_t)n * nb + b) * 32);
                _mm256_storeu_si256((__m256i *)d, _mm512_cvtepi16_epi8(_mm512_srai_epi16(x, 8)));
                _mm256_storeu_si256((__m256i *)(d + 32), _mm512_cvtepi16_epi8(x));
            }
}

/* Weight rows o0 .. o0+15 (past OC: 0) for tile 4: pk[(b * 8 + t) * 16 + r]
 * holds bytes 4t .. 4t+3 of row o0 + r's block b; ps and pm as pack16's. */
static void q8_amx_weights(int32_t *pk, float *ps, float *pm, const q8set *s, int o0)
{
    int nb = s->nb, rows = s->OC - o0 < Q8_LANES ? s->OC - o0 : Q8_LANES;
    __mmask16 m = (__mmask16)((1u << rows) - 1);
    const char *w = s->w + (size_t)o0 * nb * LLM_Q8_BYTES;
    __m512i wrow = row_offsets(nb);
    for (int b = 0; b < nb; b++) {
        for (int t = 0; t < 8; t++)
            _mm512_storeu_si512(pk + ((size_t)b * 8 + t) * Q8_LANES,
                                _mm512_mask_i32gather_epi32(_mm512_setzero_si512(), m, wrow,
                                                            w + llm_q8_qoff(nb, b) + 4 * t, 1));
        gather_scales(ps, pm, m, wrow, w, nb, b);
    }
}

/* Block b's int32 sums of input group g by the packed weights, into
 * i[r * 16 + o]. */
static void q8_amx_block(int32_t *i, const unsigned char *xa, const int32_t *pk, int nb, int g,
                         int b)
{
    _Alignas(64) int32_t lo[XT * Q8_LANES];
    const unsigned char *x = xa + ((size_t)g * nb + b) * XT * 64;
    amx_zero(0);
    amx_zero(1);
    amx_load(2, x, 64);
    amx_load(3, x + 32, 64);
    amx_load(4, pk + (size_t)b * 8 * Q8_LANES, 64);
    amx_dpbssd(0, 2, 4);
    amx_dpbusd(1, 3, 4);
    amx_store(0, i, 64);
    amx_store(1, lo, 64);
    for (int r = 0; r < XT; r++) {
        __m512i h = _mm512_load_si512(i + r * Q8_LANES);
        _mm512_store_si512(i + r * Q8_LANES,
                           _mm512_add_epi32(_mm512_slli_epi32(h, 8),
                                            _mm512_load_si512(lo + r * Q8_LANES)));
    }
}

/* Block b of input group g (its first nr rows) added to acc[r * stride]
 * for row r, 16 outputs in the lanes: kernels.h's two fmas. */
static inline void q8_amx_add(__m512 *acc, int stride, const q8set *s, const unsigned char *xa,
                              const int32_t *pk, const float *ps, const float *pm, int g, int b,
                              int nr)
{
    _Alignas(64) int32_t iv[XT * Q8_LANES];
    int nb = s->nb;
    q8_amx_block(iv, xa, pk, nb, g, b);
    __m512 d = _mm512_loadu_ps(ps + (size_t)b * Q8_LANES),
           m = _mm512_loadu_ps(pm + (size_t)b * Q8_LANES);
    for (int r = 0; r < nr; r++) {
        size_t n = (size_t)g * XT + r;
        __m512 sb = _mm512_mul_ps(d, _mm512_set1_ps(s->xd[n * nb + b])), *a = acc + r * stride;
        *a = _mm512_fmadd_ps(sb, _mm512_cvtepi32_ps(_mm512_load_si512(iv + r * Q8_LANES)), *a);
        *a = _mm512_fmadd_ps(m, _mm512_set1_ps(s->xs[n * nb + b]), *a);
    }
}

/* Outputs o0 .. o0+15 of every input row: blocks 8 at a time into 8 sums
 * per row (as q8_rows16's p[j]), their tree, then the remaining blocks. */
static void q8_amx_rows16(const q8set *s, const unsigned char *xa, const int32_t *pk,
                          const float *ps, const float *pm, int o0)
{
    int nb = s->nb, nb8 = nb & ~7, rows = s->OC - o0 < Q8_LANES ? s->OC - o0 : Q8_LANES;
    __mmask16 keep = (__mmask16)((1u << rows) - 1);
    for (int g = 0; g * XT < s->N; g++) {
        int nr = s->N - g * XT < XT ? s->N - g * XT : XT;
        __m512 p[XT][8], sum[XT];
        for (int r = 0; r < XT; r++)
            for (int j = 0; j < 8; j++)
                p[r][j] = _mm512_setzero_ps();
        for (int b = 0; b < nb8; b++)
            q8_amx_add(&p[0][b & 7], 8, s, xa, pk, ps, pm, g, b, nr);
        for (int r = 0; r < nr; r++)
            sum[r] = _mm512_add_ps(_mm512_add_ps(_mm512_add_ps(p[r][0], p[r][4]),
                                                 _mm512_add_ps(p[r][2], p[r][6])),
                                   _mm512_add_ps(_mm512_add_ps(p[r][1], p[r][5]),
                                                 _mm512_add_ps(p[r][3], p[r][7])));
        for (int b = nb8; b < nb; b++)
            q8_amx_add(sum, 1, s, xa, pk, ps, pm, g, b, nr);
        for (int r = 0; r < nr; r++) {
            int n = g * XT + r;
            _mm512_mask_storeu_ps(s->out + (size_t)(s->map ? s->map[n] : n) * s->ldo + o0, keep,
                                  sum[r]);
        }
    }
}

/* The AMX product: the inputs split once, groups of 16 weight rows
 * between the threads as q8_product_packed's. @return 0, or -1 when out of
 * memory (nothing written). */
static int q8_product_amx(const q8set *s)
{
    int nb = s->nb, ng = (s->OC + Q8_LANES - 1) / Q8_LANES;
    unsigned char *xa = malloc((size_t)(s->N + XT - 1) / XT * XT * nb * 64);
    if (!xa)
        return -1;
    q8_amx_inputs(xa, s);
#pragma omp parallel
    {
        int nt = omp_get_num_threads(), id = omp_get_thread_num();
        int g0 = (int)((int64_t)ng * id / nt), g1 = (int)((int64_t)ng * (id + 1) / nt);
        int32_t *pk = malloc((size_t)nb * 8 * Q8_LANES * sizeof *pk);
        float *ps = malloc((size_t)nb * Q8_LANES * 2 * sizeof *ps);
        if (pk && ps) {
            q8_amx_begin();
            for (int g = g0; g < g1; g++) {
                q8_amx_weights(pk, ps, ps + (size_t)nb * Q8_LANES, s, g * Q8_LANES);
                q8_amx_rows16(s, xa, pk, ps, ps + (size_t)nb * Q8_LANES, g * Q8_LANES);
            }
            amx_release();
        } else if (g0 < g1) {
            q8_part(s, g0 * Q8_LANES, g1 * Q8_LANES < s->OC ? g1 * Q8_LANES : s->OC);
        }
        free(pk);
        free(ps);
    }
    free(xa);
    return 0;
}
#endif

/* Contiguous runs of weight rows per thread. */
static void q8_product(const q8set *s)
{
#if LLM_AMX
    if (s->N >= Q8_PACK_MIN && q8_product_amx(s) == 0)
        return;
#endif
#if defined(__AVX512F__)
    if (s->N >= Q8_PACK_MIN && has_vnni()) {
        q8_product_packed(s);
        return;
    }
#endif
#pragma omp parallel
    {
        int nt = omp_get_num_threads(), id = omp_get_thread_num();
        int o0 = (int)((int64_t)s->OC * id / nt), o1 = (int)((int64_t)s->OC * (id + 1) / nt);
        q8_part(s, o0, o1);
    }
}
#else
/* Portable: the same order in plain C. */
static float q8_elem(const q8set *s, int n, int o)
{
    int nb = s->nb, nb8 = nb & ~7;
    const int16_t *x = s->xq + (size_t)n * nb * 32;
    const char *w = s->w + (size_t)o * nb * LLM_Q8_BYTES;
    const float *dx = s->xd + (size_t)n * nb, *sx = s->xs + (size_t)n * nb;
    float p[8] = { 0 };
    for (int b = 0; b < nb; b++) {
        const int8_t *q = (const int8_t *)(w + llm_q8_qoff(nb, b));
        float d = *(const float *)(w + llm_q8_doff(nb, b));
        float m = *(const float *)(w + llm_q8_moff(nb, b));
        int32_t ib = 0;
        for (int k = 0; k < 32; k++)
            ib += (int32_t)q[k] * x[32 * b + k];
        float sb = d * dx[b];
        if (b < nb8) {
            p[b & 7] = fmaf(m, sx[b], fmaf(sb, (float)ib, p[b & 7]));
            continue;
        }
        if (b == nb8)
            p[0] = ((p[0] + p[4]) + (p[2] + p[6])) + ((p[1] + p[5]) + (p[3] + p[7]));
        p[0] = fmaf(m, sx[b], fmaf(sb, (float)ib, p[0]));
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

void llm_cpu_matmul_rows_q8(float *out, size_t ldo, const int *map, const int16_t *xq,
                            const float *xd, const float *xs, const void *w, int N, int IC,
                            int OC)
{
    q8set s = { out, ldo, map, xq, w, xd, xs, N, (IC + 31) / 32, OC };
    q8_product(&s);
}
