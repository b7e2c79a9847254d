/* cpu.h: the CPU backend's kernels that live outside cpu.c, for the cpu
 * and ref tables: the inference kernels (rows.c, q8.c), the sampling, dropout and
 * classifier-head kernels (sample.c, dropout.c; references in
 * ref_sample.c), the host memory of both (memory.c), and, for its host-side
 * sampling entries, the CUDA table.
 * Contracts in kernels.h, under the same names. */
#ifndef LLM_CPU_H
#define LLM_CPU_H

#include <stddef.h>
#include <stdint.h>

#include "../elementwise.h"   /* llm_mix64 */
#include "../kernels.h"       /* LLM_Q8_BYTES */
#include "level.h"   /* the llm_cpu_ names carry the level */

#ifdef __cplusplus
extern "C" {
#endif

/* memory.c: the cpu and ref tables' memory (host memory); upload and
 * download are llm_host_copy too. */
void  *llm_host_alloc(size_t bytes);
void   llm_host_free(void *p);
void   llm_host_copy(void *dst, const void *src, size_t bytes);
void   llm_host_zero(void *dst, size_t bytes);
/* The training kernels' entries of the cpu and ref tables, each filled
 * from the file's own static function of the entry's name. */
#define LLM_TRAINING_ENTRIES \
    .matmul_forward = matmul_forward, .matmul_backward = matmul_backward, \
    .matmul_forward_bf16 = matmul_forward_bf16, .matmul_backward_bf16 = matmul_backward_bf16, \
    .embedding_forward = embedding_forward, .embedding_backward = embedding_backward, \
    .rmsnorm_forward = rmsnorm_forward, .rmsnorm_backward = rmsnorm_backward, \
    .rope_forward = rope_forward, .rope_backward = rope_backward, \
    .attention_saved = attention_saved, .attention_scratch = attention_scratch, \
    .attention_forward = attention_forward, \
    .attention_backward = attention_backward, \
    .attention_forward_bf16 = attention_forward_bf16, \
    .attention_backward_bf16 = attention_backward_bf16, \
    .swiglu_forward = swiglu_forward, .swiglu_backward = swiglu_backward, \
    .residual_forward = residual_forward, .crossentropy_forward = crossentropy_forward, \
    .adamw_update = adamw_update, .sum_squares = sum_squares, .scale = scale, .axpy = axpy
#define LLM_HOST_MEMORY .alloc = llm_host_alloc, .free = llm_host_free, \
    .upload = llm_host_copy, .download = llm_host_copy, .copy = llm_host_copy, \
    .zero = llm_host_zero, .host_memory = 1

/* gemm.c: C(M,N) = alpha op(A)(M,K) . op(B)(K,N) + beta C, as cblas_sgemm
 * row-major with beta 0 or 1 only; op(A) = A^T when ta (A is then K x M),
 * op(B) = B^T when tb. The same bits for any thread count; serial inside
 * an OpenMP region. On the avx512 and avx2 levels our blocked kernel
 * unless LLM_GEMM=openblas, else OpenBLAS. Our kernel's order of
 * summation: for each block of KC values of k in order (KC the level's,
 * below), s = a chain of fmaf from 0, r = alpha * s, and C = r (the first
 * block, beta 0) or C + r. */
#define LLM_GEMM_KC_AVX512 256
#define LLM_GEMM_KC_AVX2 512
void   llm_cpu_gemm(int ta, int tb, int M, int N, int K, float alpha, const float *A,
                    int lda, const float *B, int ldb, float beta, float *C, int ldc);
/* Inference products over bf16 copies (kernels.h's pack_bf16 and
 * matmul_rows_bf16): VDPBF16PS where llm_cpu_gemm_bf16() uses it, else
 * fmaf over k. */
void   llm_cpu_pack_bf16(uint32_t *dst, const float *w, int IC, int OC);
void   llm_cpu_matmul_rows_bf16(float *out, size_t ldo, const float *inp, size_t ldi,
                                const int *map, const uint32_t *w, int o0, uint32_t *scratch,
                                int N, int IC, int OC);
/* 1 where the bf16 kernels use VDPBF16PS (the avx512 level on a CPU with
 * AVX512_BF16, LLM_GEMM unset), else 0: their bits differ between those. */
int    llm_cpu_bf16_dp(void);
/* "own avx512", "own avx2" or "openblas": which llm_cpu_gemm() runs. */
const char *llm_cpu_gemm_name(void);
/* The same product over op(A) and op(B) rounded to bfloat16 (to nearest,
 * ties to even), accumulated in fp32: VDPBF16PS on the avx512 level of a
 * CPU with AVX512_BF16, else fp32 products of the rounded values (ours
 * rounding as it packs, or with LLM_GEMM=openblas and on the generic
 * level OpenBLAS's over rounded copies), so the bits differ between
 * those. */
void   llm_cpu_gemm_bf16(int ta, int tb, int M, int N, int K, float alpha, const float *A,
                         int lda, const float *B, int ldb, float beta, float *C, int ldc);
/* A B operand packed once for many products over parts of it (attention:
 * each tile of queries reads a prefix of its head's keys and values):
 * llm_cpu_panel_pack() puts op(B) (K x N) at mem (64-byte aligned,
 * llm_cpu_panel_floats(K, N) floats) in the layout that llm_cpu_gemm (bf16:
 * llm_cpu_gemm_bf16) packs it into; llm_cpu_panel_gemm() is then that
 * product with tb 0 over op(B)'s first K rows and N columns (K <= the
 * panel's, even or all of them; N <= the panel's), the same bits, packing
 * A in work (llm_cpu_panel_work(K) floats, 64-byte aligned). Of C it
 * writes columns [j0, N) only, and of the sum over k it takes the terms
 * of k >= k0 only (j0 and k0 multiples of LLM_PANEL_STEP): where op(A)'s
 * columns before k0 are zeros, the product's values, on our product's
 * levels its bits but for the sign of a zero. Serial: for a thread's part
 * of a parallel region. llm_cpu_panel_at() describes in pn the panel that
 * llm_cpu_panel_pack() packed at mem (another thread's: the same
 * description), without packing. */
#define LLM_PANEL_STEP 64
typedef struct {
    float *p;
    int K, N, mode, bf16;   /* mode: the product's own packing, or -1 (op(B) as is) */
} llm_cpu_panel;
size_t llm_cpu_panel_floats(int K, int N);
size_t llm_cpu_panel_work(int K);
void   llm_cpu_panel_pack(llm_cpu_panel *pn, float *mem, int bf16, const float *B, int ldb,
                          int tb, int K, int N);
void   llm_cpu_panel_at(llm_cpu_panel *pn, float *mem, int bf16, int K, int N);
void   llm_cpu_panel_gemm(int ta, int M, int N, int K, int j0, int k0, float alpha,
                          const float *A, int lda, const llm_cpu_panel *pn, float beta, float *C,
                          int ldc, float *work);

void   llm_cpu_matmul_rows(float *out, size_t ldo, const float *inp, size_t ldi,
                           const int *map, const void *w, int half, int N, int IC, int OC);
size_t llm_cpu_matmul_rows_scratch(int IC, int OC);
void   llm_cpu_matmul_rows_packed(float *out, size_t ldo, const float *inp, size_t ldi,
                                  const int *map, const float *w, float *scratch,
                                  int N, int IC, int OC);
void   llm_cpu_attention_rows(float *out, size_t ldo, const float *const *q,
                              const float *const *K, const float *const *V, size_t kvs,
                              const int *len, int n, int H, int KVH, int hd,
                              float *scratch, int maxlen);
void   llm_cpu_attention_rows_bf16(float *out, size_t ldo, const float *const *q,
                                   const uint16_t *const *K, const uint16_t *const *V,
                                   size_t kvs, const int *len, int n, int H, int KVH, int hd,
                                   float *scratch, int maxlen);
size_t llm_cpu_to_half(uint16_t *h, const float *f, size_t n);
/* q8.c */
int    llm_cpu_quantize_q8(void *w, const float *inp, size_t ldi, const int *map, int N,
                           int IC);
int    llm_cpu_quantize_q16(int16_t *q, float *d, float *s, const float *inp, size_t ldi,
                            const int *map, int N, int IC);
void   llm_cpu_matmul_rows_q8(float *out, size_t ldo, const int *map, const int16_t *xq,
                              const float *xd, const float *xs, const void *w, int N, int IC,
                              int OC);

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
