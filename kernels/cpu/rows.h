/* rows.h: the CPU backend's inference kernels (rows.c), for cpu.c's table;
 * their contracts are the entries of kernels.h with the same names. */
#ifndef LLM_CPU_ROWS_H
#define LLM_CPU_ROWS_H

#include <stddef.h>
#include <stdint.h>

#include "level.h"   /* the names carry the level */

void llm_cpu_matmul_rows(float *out, size_t ldo, const float *inp, size_t ldi,
                         const int *map, const void *w, int half, int N, int IC, int OC);
size_t llm_cpu_matmul_rows_scratch(int IC, int OC);
void llm_cpu_matmul_rows_packed(float *out, size_t ldo, const float *inp, size_t ldi,
                                const int *map, const float *w, float *scratch,
                                int N, int IC, int OC);
void llm_cpu_attention_rows(float *out, size_t ldo, const float *const *q,
                            const float *const *K, const float *const *V, size_t kvs,
                            const int *len, int n, int H, int KVH, int hd,
                            float *scratch, int maxlen);
size_t llm_cpu_to_half(uint16_t *h, const float *f, size_t n);

#endif
