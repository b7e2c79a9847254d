/* allreduce.h: sums of float blocks in GPU memory over data-parallel ranks,
 * one GPU per rank, over NCCL: llm-train's gradient all-reduce under MPI
 * in a `make MPI=1 CUDA=1` build (cmd/par.c). Only llm-train links it
 * (with -lnccl); the library never does.
 *
 * Determinism: NCCL sums in an order fixed by its algorithm (ring or tree),
 * protocol and channel count, which it chooses from the topology, the
 * number of ranks and the size: the same machines, rank count and block
 * give the same bits run to run, and every rank gets the same bytes (each
 * sum is made once and copied to all). Another topology or rank count may
 * sum in another order (NCCL_ALGO and NCCL_PROTO pin the choice). */
#ifndef LLM_ALLREDUCE_H
#define LLM_ALLREDUCE_H

#include <stddef.h>

#ifdef __cplusplus
extern "C" {
#endif

#define LLM_NCCL_ID_BYTES 128   /* NCCL_UNIQUE_ID_BYTES */

/*! llm_nccl_id() : a new communicator's id, made by one rank (rank 0)
 *  and sent to the others (MPI_Bcast). @return 0, or -1 (llm_nccl_errmsg()). */
int llm_nccl_id(unsigned char id[LLM_NCCL_ID_BYTES]);
/*! llm_nccl_init() : joins the communicator `id` of `world` ranks as
 *  `rank`, on the current GPU (llm_cuda_use_device()); every rank calls
 *  it, and it returns when all have. @return 0, or -1. */
int llm_nccl_init(const unsigned char id[LLM_NCCL_ID_BYTES], int rank, int world);
/*! llm_nccl_sum() : x(n), device memory of the current GPU, summed over
 *  the ranks in place, after the work queued on the default stream; it
 *  returns when the sum is there. @return 0, or -1. */
int llm_nccl_sum(float *x, size_t n);
/*! llm_nccl_free() : leaves the communicator; nothing when none. */
void llm_nccl_free(void);
/*! llm_nccl_errmsg() : why the last call failed. */
const char *llm_nccl_errmsg(void);

#ifdef __cplusplus
}
#endif
#endif
