/* elementwise.h: per-element formulas that the CPU and the CUDA kernels
 * share, so that both compute them in the same operations and order (a
 * loop body on the CPU, a thread's body on the GPU), and the one 64-bit
 * mixer every hash of the project uses. LLM_HD marks them for both
 * compilers. */
#ifndef LLM_ELEMENTWISE_H
#define LLM_ELEMENTWISE_H

#include <math.h>
#include <stddef.h>
#include <stdint.h>

#ifdef __CUDACC__
#define LLM_HD __host__ __device__ static inline
#else
#define LLM_HD static inline
#endif

/* SplitMix64's finaliser (shifts 30, 27, 31): dropout's masks, the
 * random generator's seeding, and the hashes of n-grams and documents. */
LLM_HD uint64_t llm_mix64(uint64_t z)
{
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
}

/* One AdamW step of element i (torch.optim.AdamW): ic1, ic2 are the
 * inverse bias corrections 1 / (1 - beta^t), a1 = 1 - beta1, a2 = 1 - beta2. */
LLM_HD void llm_adamw_one(float *p, const float *g, float *m, float *v, size_t i, float lr,
                          float beta1, float beta2, float a1, float a2, float eps, float wd,
                          float ic1, float ic2)
{
    float gi = g[i];
    float mi = beta1 * m[i] + a1 * gi;
    float vi = beta2 * v[i] + a2 * gi * gi;
    m[i] = mi;
    v[i] = vi;
    p[i] -= lr * (mi * ic1 / (sqrtf(vi * ic2) + eps) + wd * p[i]);
}

#endif
