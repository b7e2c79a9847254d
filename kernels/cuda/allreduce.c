/* allreduce.c: allreduce.h over NCCL, on a stream of its own that waits
 * for the default stream (where the CUDA table queues every kernel) and
 * makes it wait in turn: cudaStreamCreate's streams synchronise with the
 * legacy default stream. */
#include <stdio.h>
#include <string.h>

#include <cuda_runtime.h>
#include <nccl.h>

#include "allreduce.h"

_Static_assert(sizeof(ncclUniqueId) == LLM_NCCL_ID_BYTES, "ncclUniqueId is not 128 bytes");

static ncclComm_t comm;
static cudaStream_t stream;
static char msg[256];

static int nccl_failed(const char *where, ncclResult_t r)
{
    const char *last = comm ? ncclGetLastError(comm) : NULL;
    snprintf(msg, sizeof msg, "%s: %s%s%s", where, ncclGetErrorString(r),
             last && *last ? ": " : "", last && *last ? last : "");
    return -1;
}

static int cuda_failed(const char *where, cudaError_t e)
{
    snprintf(msg, sizeof msg, "%s: %s", where, cudaGetErrorString(e));
    cudaGetLastError();
    return -1;
}

const char *llm_nccl_errmsg(void)
{
    return msg;
}

int llm_nccl_id(unsigned char id[LLM_NCCL_ID_BYTES])
{
    ncclUniqueId u;
    ncclResult_t r = ncclGetUniqueId(&u);
    if (r != ncclSuccess)
        return nccl_failed("ncclGetUniqueId", r);
    memcpy(id, &u, sizeof u);
    return 0;
}

int llm_nccl_init(const unsigned char id[LLM_NCCL_ID_BYTES], int rank, int world)
{
    ncclUniqueId u;
    memcpy(&u, id, sizeof u);
    if (comm) {
        snprintf(msg, sizeof msg, "ncclCommInitRank: already joined");
        return -1;
    }
    cudaError_t e = cudaStreamCreate(&stream);
    if (e != cudaSuccess)
        return cuda_failed("cudaStreamCreate", e);
    ncclResult_t r = ncclCommInitRank(&comm, world, u, rank);
    if (r != ncclSuccess) {
        comm = NULL;
        cudaStreamDestroy(stream);
        stream = NULL;
        return nccl_failed("ncclCommInitRank", r);
    }
    return 0;
}

int llm_nccl_sum(float *x, size_t n)
{
    if (!comm) {
        snprintf(msg, sizeof msg, "ncclAllReduce: no communicator (llm_nccl_init)");
        return -1;
    }
    if (n == 0)
        return 0;
    ncclResult_t r = ncclAllReduce(x, x, n, ncclFloat, ncclSum, comm, stream);
    if (r != ncclSuccess)
        return nccl_failed("ncclAllReduce", r);
    cudaError_t e = cudaStreamSynchronize(stream);
    if (e != cudaSuccess)
        return cuda_failed("ncclAllReduce (cudaStreamSynchronize)", e);
    return 0;
}

void llm_nccl_free(void)
{
    if (comm)
        ncclCommDestroy(comm);
    if (stream)
        cudaStreamDestroy(stream);
    comm = NULL;
    stream = NULL;
}
