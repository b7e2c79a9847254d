/* kernels.c: backend lookup by device name and the one thread-count knob
 * shared by OpenMP and OpenBLAS. */
#include <string.h>

#include <cblas.h>
#include <omp.h>

#include "kernels.h"
#ifdef LLM_CUDA
#include "cuda/cuda.h"
#endif

static int n_threads;   /* 0: not set yet, both libraries at their default */

const llm_kernels *llm_kernels_get(const char *device)
{
    if (!device || strcmp(device, "cpu") == 0)
        return llm_kernels_cpu();
    if (strcmp(device, "ref") == 0)
        return llm_kernels_ref();
#ifdef LLM_CUDA
    if (strcmp(device, "cuda") == 0)
        return llm_kernels_cuda();   /* NULL without a usable GPU */
#endif
    return NULL;
}

/* OpenMP and OpenBLAS (pthread build) keep separate pools. Matrix products
 * and element-wise kernels alternate, never overlap, so giving both pools
 * the same size keeps one busy thread per core at any time. */
int llm_kernels_set_threads(int n)
{
    if (n <= 0)
        n = omp_get_num_procs();
    omp_set_num_threads(n);
    openblas_set_num_threads(n);
    n_threads = n;
    return n;
}

int llm_kernels_threads(void)
{
    return n_threads > 0 ? n_threads : omp_get_max_threads();
}
