/* fastexp.h: an exp the compiler can vectorise, for the CPU kernels and
 * the sampler. Loops calling it vectorise at -O3 with -fno-math-errno and
 * -fno-trapping-math (the Makefile gives those files these flags). */
#ifndef LLM_FASTEXP_H
#define LLM_FASTEXP_H

#include <stdint.h>
#include <string.h>

/* exp for x in the range softmax and silu need, written so that the
 * compiler vectorises loops calling it (libm's expf is not vectorised without
 * -ffast-math). Cephes polynomial, max relative error ~1e-7; inputs below
 * -87 give ~1e-38 instead of 0, which no caller can tell apart. */
static inline float fast_expf(float x)
{
    /* NaN must come out as NaN (a diverging run has to be noticed), and
     * must not reach the float-to-int conversion, which it would make
     * undefined. */
    float in = x;
    x = in != in ? 0.0f : x;
    x = x < -87.0f ? -87.0f : x;
    x = x > 88.0f ? 88.0f : x;
    float fx = __builtin_floorf(x * 1.44269504088896341f + 0.5f);
    int32_t n = (int32_t)fx;
    float r = x - fx * 0.693359375f + fx * 2.12194440e-4f;
    float y = 1.9875691500e-4f;
    y = y * r + 1.3981999507e-3f;
    y = y * r + 8.3334519073e-3f;
    y = y * r + 4.1665795894e-2f;
    y = y * r + 1.6666665459e-1f;
    y = y * r + 5.0000001201e-1f;
    y = y * r * r + r + 1.0f;
    uint32_t bits = (uint32_t)(n + 127) << 23;
    float p;
    memcpy(&p, &bits, sizeof p);
    return in != in ? in : y * p;
}

#endif
