/* level.h: the names of the CPU kernels compiled once per instruction-set
 * level. The Makefile compiles the arithmetic kernels of kernels/cpu/
 * (cpu.c, gemm.c, rows.c, q8.c, sample.c, dropout.c) once for each level of CPU_LEVELS,
 * with that level's flags and LLM_CPU_LEVEL set to its name; every external
 * name below then carries the level as a suffix (llm_cpu_matmul_rows_avx2),
 * so that all levels link into one library side by side and kernels.c
 * picks one table at start-up. A new external name in those files must be
 * added here, or the levels collide at link time.
 *
 * Code compiled once (ref.c, the CUDA table's host-side sampling) sees the
 * names of the base level: generic, or native in a NATIVE=1 build, whose
 * Makefile passes LLM_CPU_LEVEL=native everywhere. */
#ifndef LLM_CPU_LEVEL_H
#define LLM_CPU_LEVEL_H

#ifndef LLM_CPU_LEVEL
#define LLM_CPU_LEVEL generic
#endif

#define LLM_CPU_CAT2(a, b) a##_##b
#define LLM_CPU_CAT(a, b) LLM_CPU_CAT2(a, b)
/* name_<level>, e.g. LLM_CPU_NAME(llm_kernels_cpu) = llm_kernels_cpu_avx2. */
#define LLM_CPU_NAME(name) LLM_CPU_CAT(name, LLM_CPU_LEVEL)

/* gemm.c (cpu.h) */
#define llm_cpu_gemm                 LLM_CPU_NAME(llm_cpu_gemm)
#define llm_cpu_gemm_name            LLM_CPU_NAME(llm_cpu_gemm_name)
#define llm_cpu_gemm_bf16            LLM_CPU_NAME(llm_cpu_gemm_bf16)
#define llm_cpu_pack_bf16            LLM_CPU_NAME(llm_cpu_pack_bf16)
#define llm_cpu_matmul_rows_bf16     LLM_CPU_NAME(llm_cpu_matmul_rows_bf16)
#define llm_cpu_bf16_dp              LLM_CPU_NAME(llm_cpu_bf16_dp)
#define llm_cpu_panel_floats         LLM_CPU_NAME(llm_cpu_panel_floats)
#define llm_cpu_panel_work           LLM_CPU_NAME(llm_cpu_panel_work)
#define llm_cpu_panel_pack           LLM_CPU_NAME(llm_cpu_panel_pack)
#define llm_cpu_panel_at             LLM_CPU_NAME(llm_cpu_panel_at)
#define llm_cpu_panel_gemm           LLM_CPU_NAME(llm_cpu_panel_gemm)
/* rows.c (cpu.h) */
#define llm_cpu_matmul_rows          LLM_CPU_NAME(llm_cpu_matmul_rows)
#define llm_cpu_matmul_rows_scratch  LLM_CPU_NAME(llm_cpu_matmul_rows_scratch)
#define llm_cpu_matmul_rows_packed   LLM_CPU_NAME(llm_cpu_matmul_rows_packed)
#define llm_cpu_attention_rows       LLM_CPU_NAME(llm_cpu_attention_rows)
#define llm_cpu_attention_rows_bf16  LLM_CPU_NAME(llm_cpu_attention_rows_bf16)
#define llm_cpu_to_half              LLM_CPU_NAME(llm_cpu_to_half)
/* q8.c (cpu.h) */
#define llm_cpu_quantize_q8          LLM_CPU_NAME(llm_cpu_quantize_q8)
#define llm_cpu_quantize_q16         LLM_CPU_NAME(llm_cpu_quantize_q16)
#define llm_cpu_matmul_rows_q8       LLM_CPU_NAME(llm_cpu_matmul_rows_q8)
/* sample.c and dropout.c (cpu.h) */
#define llm_cpu_logits_max           LLM_CPU_NAME(llm_cpu_logits_max)
#define llm_cpu_softmax_weights      LLM_CPU_NAME(llm_cpu_softmax_weights)
#define llm_cpu_find_first           LLM_CPU_NAME(llm_cpu_find_first)
#define llm_cpu_linear_f64           LLM_CPU_NAME(llm_cpu_linear_f64)
#define llm_cpu_dropout              LLM_CPU_NAME(llm_cpu_dropout)

#ifdef __cplusplus
extern "C" {
#endif

/* cpu.c's table, one per level (as LLM_CPU_NAME(llm_kernels_cpu)), for
 * kernels.c; only the levels of the build exist. */
struct llm_kernels;
const struct llm_kernels *llm_kernels_cpu_generic(void);
const struct llm_kernels *llm_kernels_cpu_avx2(void);
const struct llm_kernels *llm_kernels_cpu_avx512(void);
const struct llm_kernels *llm_kernels_cpu_amx(void);
const struct llm_kernels *llm_kernels_cpu_native(void);
/* gemm.c's llm_cpu_gemm_name(), one per level likewise. */
const char *llm_cpu_gemm_name_generic(void);
const char *llm_cpu_gemm_name_avx2(void);
const char *llm_cpu_gemm_name_avx512(void);
const char *llm_cpu_gemm_name_amx(void);
const char *llm_cpu_gemm_name_native(void);
/* The bf16 products of the avx512 and amx levels, for the amx level's
 * check at start-up (kernels.c). */
void llm_cpu_gemm_bf16_avx512(int ta, int tb, int M, int N, int K, float alpha, const float *A,
                              int lda, const float *B, int ldb, float beta, float *C, int ldc);
void llm_cpu_gemm_bf16_amx(int ta, int tb, int M, int N, int K, float alpha, const float *A,
                           int lda, const float *B, int ldb, float beta, float *C, int ldc);

#ifdef __cplusplus
}
#endif
#endif
