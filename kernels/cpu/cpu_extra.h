/* cpu_extra.h: the sampling, dropout and classifier-head kernels of
 * kernels/cpu/sample.c and dropout.c (fast) and ref_sample.c (reference),
 * shared by the cpu and ref tables and, for the host-side sampling
 * entries, by the CUDA table. Contracts in kernels.h. */
#ifndef LLM_CPU_EXTRA_H
#define LLM_CPU_EXTRA_H

#include <stddef.h>
#include <stdint.h>

#include "level.h"   /* the llm_cpu_ names carry the level */

#ifdef __cplusplus
extern "C" {
#endif

/* SplitMix64's finaliser: dropout's hash (kernels.h). */
static inline uint64_t llm_mix64(uint64_t z)
{
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
}

float  llm_cpu_logits_max(const float *x, int n, int *bad);
double llm_cpu_softmax_weights(float *w, float *bsum, const float *x, int n,
                               float xmax, float inv_t, int block);
int    llm_cpu_find_first(const float *x, int n, float v);
void   llm_cpu_linear_f64(float *out, const float *inp, const float *w,
                          const float *b, int N, int C, int K);
void   llm_cpu_dropout(float *x, size_t n, double p, uint64_t key);

float  llm_ref_logits_max(const float *x, int n, int *bad);
double llm_ref_softmax_weights(float *w, float *bsum, const float *x, int n,
                               float xmax, float inv_t, int block);
int    llm_ref_find_first(const float *x, int n, float v);
void   llm_ref_linear_f64(float *out, const float *inp, const float *w,
                          const float *b, int N, int C, int K);
void   llm_ref_dropout(float *x, size_t n, double p, uint64_t key);

#ifdef __cplusplus
}
#endif
#endif
