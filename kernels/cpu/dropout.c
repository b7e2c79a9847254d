/* dropout.c: residual dropout on the CPU, threads over the elements (a
 * file of its own: the OpenMP runtime it needs stays out of sample.c,
 * which the CUDA test links); contract in kernels.h. */
#include <stddef.h>
#include <stdint.h>

#include "cpu.h"
#include "kernels.h"

void llm_cpu_dropout(float *x, size_t n, double p, uint64_t key)
{
    uint32_t cut = (uint32_t)(p * 16777216.0);   /* p in 24-bit steps */
    float scale = (float)(1.0 / (1.0 - p));
#pragma omp parallel for schedule(static)
    for (size_t i = 0; i < n; i++) {
        uint32_t u = (uint32_t)(llm_mix64(key + i * 0x9e3779b97f4a7c15ULL) >> 40);
        x[i] = u >= cut ? x[i] * scale : 0.0f;
    }
}
