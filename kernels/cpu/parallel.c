/* parallel.c: llm_kernels_parallel(), the one place where the library runs
 * its own work (batches of documents, sampling jobs) on several threads:
 * an OpenMP team over a dynamic schedule, each member restricted to one
 * thread for the kernels its tasks call. */
#include <omp.h>

#include "kernels.h"

void llm_kernels_parallel(int n_tasks, int threads,
                          void (*fn)(void *ctx, int task, int thread), void *ctx)
{
    if (n_tasks <= 0)
        return;
    if (threads <= 0)
        threads = llm_kernels_threads();
    threads = threads < n_tasks ? threads : n_tasks;
#pragma omp parallel num_threads(threads)
    {
        int id = omp_get_thread_num();
        omp_set_num_threads(1);   /* the kernels inside run on this thread */
#pragma omp for schedule(dynamic, 1)
        for (int t = 0; t < n_tasks; t++)
            fn(ctx, t, id);
    }
}
