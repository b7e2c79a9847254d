/* q8_dot.h: the AVX2 loops of q8.c's product, included by q8.c once per
 * way of taking a block's dot product: Q8_FN(name) names the functions,
 * Q8_TARGET is their target attribute, and Q8_VNNI (when defined) makes a
 * block's dot product one vpdpbusd (AVX512-VNNI) instead of maddubs and
 * madd. The arithmetic that reaches the floats is the same either way:
 * exact integers, then the order of kernels.h. */

/* The 8 int32 lanes whose sum is the dot product of the 32 int8s of w and
 * x, neither holding -128 (quantize_q8 never writes it): |w| (unsigned)
 * times x with the sign of w. */
Q8_TARGET __attribute__((always_inline))
static inline __m256i Q8_FN(block_dot)(const int8_t *w, const int8_t *x)
{
    __m256i wv = _mm256_loadu_si256((const __m256i *)w);
    __m256i xv = _mm256_loadu_si256((const __m256i *)x);
    __m256i aw = _mm256_sign_epi8(wv, wv), sx = _mm256_sign_epi8(xv, wv);
#ifdef Q8_VNNI
    return _mm256_dpbusd_epi32(_mm256_setzero_si256(), aw, sx);
#else
    return _mm256_madd_epi16(_mm256_maddubs_epi16(aw, sx), _mm256_set1_epi16(1));
#endif
}

/* Element (n, o): blocks 8 at a time, lane j of the accumulator taking the
 * blocks b = 8i + j, then hsum8's tree, then the remaining blocks. */
Q8_TARGET __attribute__((always_inline))
static inline float Q8_FN(elem)(const q8set *s, int n, int o)
{
    int nb = s->nb, nb8 = nb & ~7;
    const int8_t *x = s->xq + (size_t)n * nb * 32, *w = s->wq + (size_t)o * nb * 32;
    const float *dx = s->xd + (size_t)n * nb, *dw = s->wd + (size_t)o * nb;
    __m256 acc = _mm256_setzero_ps();
    for (int b = 0; b < nb8; b += 8) {
        __m256i v[8];
#pragma GCC unroll 8
        for (int j = 0; j < 8; j++)
            v[j] = Q8_FN(block_dot)(w + 32 * (b + j), x + 32 * (b + j));
        __m256 sb = _mm256_mul_ps(_mm256_loadu_ps(dw + b), _mm256_loadu_ps(dx + b));
        acc = _mm256_fmadd_ps(sb, _mm256_cvtepi32_ps(reduce8(v)), acc);
    }
    float p = hsum8(acc);
    for (int b = nb8; b < nb; b++)
        p = fmaf(dw[b] * dx[b], (float)reduce1(Q8_FN(block_dot)(w + 32 * b, x + 32 * b)), p);
    return p;
}

/* Weight rows [o0, o1) against every input row, the input rows Q8_GROUP at
 * a time (they stay in L1/L2 while the weight rows stream past once per
 * group). */
Q8_TARGET
static void Q8_FN(q8_part)(const q8set *s, int o0, int o1)
{
    for (int g = 0; g < s->N; g += Q8_GROUP) {
        int ge = s->N - g < Q8_GROUP ? s->N : g + Q8_GROUP;
        for (int o = o0; o < o1; o++)
            for (int n = g; n < ge; n++)
                s->out[(size_t)(s->map ? s->map[n] : n) * s->ldo + o] = Q8_FN(elem)(s, n, o);
    }
}
