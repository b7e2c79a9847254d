/* simd.h: small vector helpers shared by the cpu kernels (gemm.c, rows.c,
 * q8.c), each compiled at the level of the file that includes it. */
#ifndef LLM_CPU_SIMD_H
#define LLM_CPU_SIMD_H

#if defined(__AVX2__) || defined(__AVX512F__)
#include <immintrin.h>
#endif

#if defined(__AVX2__) && defined(__FMA__)
/* The sum of v's 8 lanes by the tree of kernels.h:
 * ((0+4)+(2+6))+((1+5)+(3+7)). */
static inline float hsum8(__m256 v)
{
    __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    s = _mm_add_ps(s, _mm_movehl_ps(s, s));   /* (0+4)+(2+6), (1+5)+(3+7) */
    s = _mm_add_ss(s, _mm_movehdup_ps(s));
    return _mm_cvtss_f32(s);
}
#endif

#if defined(__AVX512F__)
/* The first n of 16 lanes (n clamped to [0, 16]). */
static inline __mmask16 lanes(int n)
{
    return n >= 16 ? 0xffff : n <= 0 ? 0 : (__mmask16)((1u << n) - 1);
}

/* The first n of 32 16-bit lanes (n clamped to [0, 32]). */
static inline __mmask32 lanes32(int n)
{
    return n >= 32 ? 0xffffffffu : n <= 0 ? 0 : (__mmask32)((1u << n) - 1);
}
#endif

#endif
