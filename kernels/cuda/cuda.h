/* cuda.h: the CUDA backend's C entry points: its kernel table, device
 * memory helpers for the library, and error reporting.
 *
 * Every float and int32 pointer given to the table's kernels is device
 * memory. All work runs in order on the default stream of the current
 * device; kernels return before the work is done, and a copy to the host
 * (or llm_cuda_sync()) waits for it. The table's functions return nothing,
 * so a failure inside one is recorded here: the first error message stays
 * until llm_cuda_clear_error(), or until the table's failure entry hands it
 * over, which the library calls where results come back (a forward's loss,
 * a session's logits, every copy to the host it writes files from). The
 * table's entries may be called from several host threads: each runs under
 * one lock (the error record, the kernels' scratch buffer and the cuBLAS
 * handle are shared); the helpers below are not locked. */
#ifndef LLM_CUDA_H
#define LLM_CUDA_H

#include <stddef.h>

#include "kernels.h"

#ifdef __cplusplus
extern "C" {
#endif

/*! llm_kernels_cuda() : the CUDA table, or NULL when no device can be used
 *  (no driver, no GPU, cuBLAS fails to start); the reason in
 *  llm_cuda_errmsg(). Starts CUDA and cuBLAS on first use. */
const llm_kernels *llm_kernels_cuda(void);

/*! llm_cuda_set_host_kernels() : the table whose host-side entries (the
 *  sampler's passes over rows in host memory) the CUDA table uses from now
 *  on; kernels.c gives it the CPU's table, so that sampling gives the same
 *  bits on either device. Until then, those of the base CPU level
 *  (kernels/cpu/level.h), which is all the CUDA kernel test links. */
void llm_cuda_set_host_kernels(const llm_kernels *host);

/*! llm_cuda_device_count() : GPUs the driver reports; 0 when there is no
 *  driver or no device (never fails otherwise). */
int llm_cuda_device_count(void);

/*! llm_cuda_device_name() : "NVIDIA H200" and the like, into (buf, cap);
 *  @return 0, or -1 when there is no device. */
int llm_cuda_device_name(char *buf, size_t cap);

/*! llm_cuda_use_device() : the GPU (0 .. llm_cuda_device_count() - 1)
 *  that the CUDA table starts on and works on, instead of the first; call
 *  it before llm_kernels_cuda() (one GPU per MPI rank: cmd/par.c).
 *  @return 0, or -1 (no such GPU, or CUDA already started on another one;
 *  the reason in llm_cuda_errmsg()). */
int llm_cuda_use_device(int ordinal);

/*! llm_cuda_alloc() : *p = bytes of device memory (cudaMalloc, not managed);
 *  bytes 0 gives NULL. @return 0, or -1 with *p = NULL. */
int llm_cuda_alloc(void **p, size_t bytes);
/*! llm_cuda_free() : accepts NULL. */
void llm_cuda_free(void *p);

/*! Copies and fills; each waits for the work queued before it.
 *  @return 0, or -1 with the reason in llm_cuda_errmsg(). */
int llm_cuda_h2d(void *dst, const void *src, size_t bytes);
int llm_cuda_d2h(void *dst, const void *src, size_t bytes);
int llm_cuda_d2d(void *dst, const void *src, size_t bytes);
int llm_cuda_memset(void *dst, int byte, size_t bytes);

/*! llm_cuda_sync() : waits for all queued work; @return 0, or -1 when it or
 *  any earlier kernel failed. */
int llm_cuda_sync(void);

/*! llm_cuda_errmsg() : the first error recorded since the last clear, or
 *  NULL when none. */
const char *llm_cuda_errmsg(void);
void llm_cuda_clear_error(void);

/*! llm_cuda_set_tf32() : matrix products in TF32 on tensor cores (faster,
 *  ~1e-3 relative error) when on != 0; off (full fp32, the default) keeps
 *  results within ~1e-5 of the CPU reference. */
void llm_cuda_set_tf32(int on);

#ifdef __cplusplus
}
#endif
#endif
