/* parallel.c: llm_kernels_parallel(), the one place where the library runs
 * its own work (batches of documents, sampling jobs) on several threads:
 * an OpenMP team handing tasks out one at a time, each member restricted
 * to one thread for the kernels its tasks call. */
#include <omp.h>

#include "kernels.h"

/* The team is the kernels' whole team even where fewer threads take tasks
 * (a short last batch, one sequence to sample): libgomp ends the threads a
 * smaller team leaves out, and the next product's team would start them
 * anew. Threads [0, active) take tasks, the others wait at the end. */
void llm_kernels_parallel(int n_tasks, int threads,
                          void (*fn)(void *ctx, int task, int thread), void *ctx)
{
    if (n_tasks <= 0)
        return;
    if (threads <= 0)
        threads = llm_kernels_threads();
    int active = threads < n_tasks ? threads : n_tasks, team = llm_kernels_threads(), next = 0;
#pragma omp parallel num_threads(team > active ? team : active)
    {
        int id = omp_get_thread_num();
        if (id < active) {
            omp_set_num_threads(1);   /* the kernels inside run on this thread */
            for (;;) {
                int t;
#pragma omp atomic capture
                t = next++;
                if (t >= n_tasks)
                    break;
                fn(ctx, t, id);
            }
        }
    }
}
