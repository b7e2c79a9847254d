/* sample.c: the CPU's sampling passes over a row of logits (maximum and
 * check, the weights of a plain draw, the first maximum) and the classifier
 * head's double-precision logits; contracts in kernels.h. Serial
 * vectorised loops (the sampler runs them for one sequence per thread)
 * that need no OpenMP runtime, so the CUDA test links them bare. */
#include <math.h>
#include <stdint.h>

#include "cpu.h"
#include "fastexp.h"
#include "kernels.h"

/* Tokens per block of the first-maximum search. */
#define FIND_BLOCK 64

float llm_cpu_logits_max(const float *x, int n, int *bad)
{
    float lmax = -INFINITY;
    int b = 0;
#pragma omp simd reduction(max:lmax) reduction(|:b)
    for (int32_t t = 0; t < n; t++) {
        float l = x[t];
        b |= isnan(l) | (l == INFINITY);
        lmax = l > lmax ? l : lmax;
    }
    *bad = b != 0;
    return lmax;
}

double llm_cpu_softmax_weights(float *w, float *bsum, const float *x, int n,
                               float xmax, float inv_t, int block)
{
    double z = 0;
    int nb = 0;
    for (int32_t b = 0; b < n; b += block, nb++) {
        int32_t e = n - b < block ? n : b + block;
        float bs = 0;
#pragma omp simd reduction(+:bs)
        for (int32_t t = b; t < e; t++) {
            float l = x[t];
            float v = l == -INFINITY ? 0.0f : fast_expf((l - xmax) * inv_t);
            w[t] = v;
            bs += v;
        }
        bsum[nb] = bs;
        z += bs;
    }
    return z;
}

/* The first block holding v, then the token: a vectorised compare per
 * block, and one scalar walk. */
int llm_cpu_find_first(const float *x, int n, float v)
{
    for (int32_t b = 0; b < n; b += FIND_BLOCK) {
        int32_t e = n - b < FIND_BLOCK ? n : b + FIND_BLOCK;
        int hit = 0;
#pragma omp simd reduction(|:hit)
        for (int32_t t = b; t < e; t++)
            hit |= x[t] == v;
        if (hit) {
            int32_t i = b;
            while (x[i] != v)
                i++;
            return i;
        }
    }
    return n;
}

void llm_cpu_linear_f64(float *out, const float *inp, const float *w,
                        const float *b, int N, int C, int K)
{
    for (int r = 0; r < N; r++)
        for (int k = 0; k < K; k++) {
            const float *xr = inp + (size_t)r * C, *wk = w + (size_t)k * C;
            double sum = b[k];
            for (int c = 0; c < C; c++)
                sum += (double)xr[c] * wk[c];
            out[(size_t)r * K + k] = (float)sum;
        }
}
