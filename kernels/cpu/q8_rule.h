/* q8_rule.h: the block rules of kernels.h's quantize_q8 (int8 weights) and
 * quantize_q16 (int16 inputs) in plain C, one block of len <= 32 values at
 * a time, written once for ref.c's quantizers and q8.c's (which add
 * threads over rows, and vector code for whole input blocks). They return
 * 1 when the block holds an inf or NaN. */
#ifndef LLM_Q8_RULE_H
#define LLM_Q8_RULE_H

#include <float.h>
#include <math.h>
#include <stdint.h>
#include <string.h>

/* The largest |x| of len values, as a bit pattern. */
static inline uint32_t absmax_bits(const float *x, int len)
{
    uint32_t a = 0;
    for (int k = 0; k < len; k++) {
        uint32_t u;
        memcpy(&u, &x[k], sizeof u);
        u &= 0x7fffffffu;
        a = u > a ? u : a;
    }
    return a;
}

/* Sum of ((double)d * q_k + m - x_k)^2 in kernels.h's order: the squares
 * of k = j, j + 4, j + 8, ... added in turn into sum j (j < 4), then
 * (e0 + e2) + (e1 + e3), as 4 lanes of doubles add them. */
static inline double block_error(const int8_t *q, float d, float m, const float *x, int len)
{
    double e[4] = { 0, 0, 0, 0 };
    for (int k = 0; k < len; k++) {
        double t = (double)d * q[k] + m - x[k];
        e[k & 3] += t * t;
    }
    return (e[0] + e[2]) + (e[1] + e[3]);
}

/* One weight block of len <= 32 values by the rule of kernels.h. @return 1
 * when it holds an inf or NaN. */
static inline int weight_block(int8_t *q, float *d, float *m, const float *x, int len)
{
    uint32_t a = absmax_bits(x, len);
    float amax, ds;
    memcpy(&amax, &a, sizeof amax);
    memset(q, 0, 32);
    *m = 0.0f;
    if (a >= 0x7f800000u) {
        *d = NAN;
        return 1;
    }
    if ((ds = amax / 127.0f) < FLT_MIN) {
        *d = 0.0f;
        return 0;
    }
    float id = 1.0f / ds, lo = x[0], hi = x[0];
    for (int k = 0; k < len; k++) {
        q[k] = (int8_t)nearbyintf(x[k] * id);
        lo = x[k] < lo ? x[k] : lo;
        hi = x[k] > hi ? x[k] : hi;
    }
    *d = ds;
    if (!(lo < hi))
        return 0;
    int8_t qa[32] = { 0 };
    float da = (hi - lo) / 255.0f, ma = lo + 128.0f * da, ida = 1.0f / da;
    for (int k = 0; k < len; k++) {
        float v = nearbyintf((x[k] - ma) * ida);
        qa[k] = (int8_t)(v < -128.0f ? -128.0f : v > 127.0f ? 127.0f : v);
    }
    if (block_error(qa, da, ma, x, len) < block_error(q, ds, 0.0f, x, len)) {
        memcpy(q, qa, 32);
        *d = da;
        *m = ma;
    }
    return 0;
}

/* One input block of len <= 32 values by quantize_q16's rule. @return 1
 * when it holds an inf or NaN. */
static inline int input_block(int16_t *q, float *d, float *s, const float *x, int len)
{
    uint32_t a = absmax_bits(x, len);
    float amax, db;
    int32_t sum = 0;
    memcpy(&amax, &a, sizeof amax);
    memset(q, 0, 32 * sizeof *q);
    if (a >= 0x7f800000u) {
        *d = *s = NAN;
        return 1;
    }
    if ((db = amax / 32767.0f) < FLT_MIN) {
        *d = *s = 0.0f;
        return 0;
    }
    float id = 1.0f / db;
    for (int k = 0; k < len; k++)
        sum += q[k] = (int16_t)nearbyintf(x[k] * id);
    *d = db;
    *s = db * (float)sum;
    return 0;
}

#endif
