/* ref_sample.c: the reference versions of kernels/cpu/sample.c's kernels,
 * plain loops in index order; contracts in kernels.h. */
#include <math.h>
#include <stdint.h>

#include "cpu.h"
#include "fastexp.h"
#include "kernels.h"

float llm_ref_logits_max(const float *x, int n, int *bad)
{
    float lmax = -INFINITY;
    *bad = 0;
    for (int i = 0; i < n; i++) {
        if (isnan(x[i]) || x[i] == INFINITY)
            *bad = 1;
        else if (x[i] > lmax)
            lmax = x[i];
    }
    return lmax;
}

double llm_ref_softmax_weights(float *w, float *bsum, const float *x, int n,
                               float xmax, float inv_t, int block)
{
    double z = 0;
    for (int b = 0, j = 0; b < n; b += block, j++) {
        float s = 0;
        for (int i = b; i < n && i < b + block; i++) {
            w[i] = x[i] == -INFINITY ? 0.0f : fast_expf((x[i] - xmax) * inv_t);
            s += w[i];
        }
        bsum[j] = s;
        z += s;
    }
    return z;
}

int llm_ref_find_first(const float *x, int n, float v)
{
    for (int i = 0; i < n; i++)
        if (x[i] == v)
            return i;
    return n;
}

void llm_ref_linear_f64(float *out, const float *inp, const float *w,
                        const float *b, int N, int C, int K)
{
    for (int r = 0; r < N; r++)
        for (int k = 0; k < K; k++) {
            double sum = b[k];
            for (int c = 0; c < C; c++)
                sum += (double)inp[(size_t)r * C + c] * w[(size_t)k * C + c];
            out[(size_t)r * K + k] = (float)sum;
        }
}

void llm_ref_dropout(float *x, size_t n, double p, uint64_t key)
{
    uint32_t cut = (uint32_t)(p * 16777216.0);
    float scale = (float)(1.0 / (1.0 - p));
    for (size_t i = 0; i < n; i++) {
        uint64_t h = llm_mix64(key + i * 0x9e3779b97f4a7c15ULL);
        if ((uint32_t)(h >> 40) >= cut)
            x[i] *= scale;
        else
            x[i] = 0.0f;
    }
}
