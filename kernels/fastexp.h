/* fastexp.h: an exp the compiler can vectorise, for the CPU kernels and
 * the sampler, and the same bits for the CUDA kernels. Loops calling it
 * vectorise at -O3 with -fno-math-errno and -fno-trapping-math (the
 * Makefile gives those files these flags). */
#ifndef LLM_FASTEXP_H
#define LLM_FASTEXP_H

#include <stdint.h>
#include <string.h>

#include "elementwise.h"   /* LLM_HD */

/* The CUDA kernels call it too (attention_rows), and must get the CPU's
 * bits: on the GPU every operation is spelled out, since nvcc would
 * otherwise contract a product and a sum into one fma (C11 builds of the
 * CPU kernels do not contract). */
#ifdef __CUDA_ARCH__
#define LLM_FX_MUL(a, b) __fmul_rn(a, b)
#define LLM_FX_ADD(a, b) __fadd_rn(a, b)
#define LLM_FX_SUB(a, b) __fsub_rn(a, b)
#define LLM_FX_FLOOR(x) floorf(x)
#else
#define LLM_FX_MUL(a, b) ((a) * (b))
#define LLM_FX_ADD(a, b) ((a) + (b))
#define LLM_FX_SUB(a, b) ((a) - (b))
#define LLM_FX_FLOOR(x) __builtin_floorf(x)
#endif

/* exp for x in the range softmax and silu need, written so that the
 * compiler vectorises loops calling it (libm's expf is not vectorised without
 * -ffast-math). Cephes polynomial, max relative error ~1e-7; inputs below
 * -87 give ~1e-38 instead of 0, which no caller can tell apart. */
LLM_HD float fast_expf(float x)
{
    /* NaN must come out as NaN (a diverging run has to be noticed), and
     * must not reach the float-to-int conversion, which it would make
     * undefined. */
    float in = x;
    x = in != in ? 0.0f : x;
    x = x < -87.0f ? -87.0f : x;
    x = x > 88.0f ? 88.0f : x;
    float fx = LLM_FX_FLOOR(LLM_FX_ADD(LLM_FX_MUL(x, 1.44269504088896341f), 0.5f));
    int32_t n = (int32_t)fx;
    float r = LLM_FX_ADD(LLM_FX_SUB(x, LLM_FX_MUL(fx, 0.693359375f)),
                         LLM_FX_MUL(fx, 2.12194440e-4f));
    float y = 1.9875691500e-4f;
    y = LLM_FX_ADD(LLM_FX_MUL(y, r), 1.3981999507e-3f);
    y = LLM_FX_ADD(LLM_FX_MUL(y, r), 8.3334519073e-3f);
    y = LLM_FX_ADD(LLM_FX_MUL(y, r), 4.1665795894e-2f);
    y = LLM_FX_ADD(LLM_FX_MUL(y, r), 1.6666665459e-1f);
    y = LLM_FX_ADD(LLM_FX_MUL(y, r), 5.0000001201e-1f);
    y = LLM_FX_ADD(LLM_FX_ADD(LLM_FX_MUL(LLM_FX_MUL(y, r), r), r), 1.0f);
    uint32_t bits = (uint32_t)(n + 127) << 23;
    float p;
    memcpy(&p, &bits, sizeof p);
    return in != in ? in : LLM_FX_MUL(y, p);
}

#endif
