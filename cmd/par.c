/* par.c: llm-train's data-parallel collectives (see par.h): OpenMPI calls
 * when built with `make MPI=1` (LLM_MPI), plus NCCL between GPUs with
 * `make MPI=1 CUDA=1` (LLM_NCCL), else one process of one. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "par.h"

static double comm_seconds;

double par_comm_seconds(void)
{
    return comm_seconds;
}

#ifdef LLM_MPI
#include <limits.h>
#include <mpi.h>

#ifdef LLM_NCCL
#include "cuda/allreduce.h"
#include "cuda/cuda.h"
#endif

static int g_rank, g_world = 1, g_local = 1, g_local_rank, g_done, g_nccl;

/* Any exit but par_finalize()'s (cli_die, a failed step, a usage error)
 * takes the whole job down: the other ranks would wait in the next
 * collective for ever. mpirun then names the rank that ended it. */
static void abort_job(void)
{
    int init = 0, fin = 0;
    MPI_Initialized(&init);
    MPI_Finalized(&fin);
    if (!init || fin || g_done)
        return;
    if (g_world > 1)
        MPI_Abort(MPI_COMM_WORLD, 1);
    else
        MPI_Finalize();
}

void par_init(int *argc, char ***argv)
{
    int provided;
    /* Only the main thread calls MPI; OpenMP and OpenBLAS threads never do. */
    if (MPI_Init_thread(argc, argv, MPI_THREAD_FUNNELED, &provided) != MPI_SUCCESS)
        cli_die("cannot start MPI");
    MPI_Comm_rank(MPI_COMM_WORLD, &g_rank);
    MPI_Comm_size(MPI_COMM_WORLD, &g_world);
    MPI_Comm local;
    if (MPI_Comm_split_type(MPI_COMM_WORLD, MPI_COMM_TYPE_SHARED, 0, MPI_INFO_NULL,
                            &local) == MPI_SUCCESS) {
        MPI_Comm_size(local, &g_local);
        MPI_Comm_rank(local, &g_local_rank);
        MPI_Comm_free(&local);
    }
    atexit(abort_job);
}

void par_finalize(void)
{
    g_done = 1;
#ifdef LLM_NCCL
    llm_nccl_free();
#endif
    MPI_Finalize();
}

#ifdef LLM_NCCL
void par_device(const char *device)
{
    if (g_world <= 1 || !device || strcmp(device, "cuda") != 0)
        return;
    int n = llm_cuda_device_count();
    if (n <= 0)
        return;   /* llm_device_check() says why there is no GPU */
    if (g_local > n)
        cli_die("%d ranks on this machine for %d GPU%s: run one rank per GPU (mpirun -np "
                "N with N GPUs per machine)", g_local, n, n == 1 ? "" : "s");
    int gpu = g_local_rank % n;
    if (llm_cuda_use_device(gpu) != 0)
        cli_die("rank %d cannot use GPU %d: %s", g_rank, gpu, llm_cuda_errmsg());
    unsigned char id[LLM_NCCL_ID_BYTES];
    memset(id, 0, sizeof id);
    if (g_rank == 0 && llm_nccl_id(id) != 0)
        cli_die("%s", llm_nccl_errmsg());   /* the job ends: the others wait below */
    if (MPI_Bcast(id, (int)sizeof id, MPI_BYTE, 0, MPI_COMM_WORLD) != MPI_SUCCESS)
        cli_die("MPI_Bcast of the NCCL id failed");
    if (llm_nccl_init(id, g_rank, g_world) != 0)
        cli_die("rank %d, GPU %d: %s", g_rank, gpu, llm_nccl_errmsg());
    g_nccl = 1;
}
#else
void par_device(const char *device)
{
    (void)device;   /* every rank works on the first GPU; sums go through host memory */
}
#endif

int par_reduce_device(void)
{
    return g_nccl;
}

int par_rank(void) { return g_rank; }
int par_world(void) { return g_world; }
int par_local(void) { return g_local; }
int par_built(void) { return 1; }

int par_reduce(void *ctx, float *grads, size_t n, double *sums, size_t ns)
{
    (void)ctx;
    double t0 = cli_now();
    int rc = MPI_SUCCESS;
#ifdef LLM_NCCL
    if (g_nccl && llm_nccl_sum(grads, n) != 0)
        cli_die("the all-reduce of the gradients between GPUs failed: %s", llm_nccl_errmsg());
#endif
    /* One contiguous block, in pieces of at most INT_MAX floats. */
    for (size_t off = 0; !g_nccl && rc == MPI_SUCCESS && off < n; off += (size_t)INT_MAX) {
        size_t k = n - off < (size_t)INT_MAX ? n - off : (size_t)INT_MAX;
        rc = MPI_Allreduce(MPI_IN_PLACE, grads + off, (int)k, MPI_FLOAT, MPI_SUM,
                           MPI_COMM_WORLD);
    }
    if (rc == MPI_SUCCESS && ns)
        rc = MPI_Allreduce(MPI_IN_PLACE, sums, (int)ns, MPI_DOUBLE, MPI_SUM, MPI_COMM_WORLD);
    comm_seconds += cli_now() - t0;
    if (rc != MPI_SUCCESS)
        cli_die("MPI_Allreduce of the gradients failed (error %d)", rc);
    return 0;
}

int par_or(int v)
{
    int r = v;
    if (g_world > 1)
        MPI_Allreduce(&v, &r, 1, MPI_INT, MPI_BOR, MPI_COMM_WORLD);
    return r;
}

unsigned long long par_max_u64(unsigned long long v)
{
    unsigned long long r = v;
    if (g_world > 1)
        MPI_Allreduce(&v, &r, 1, MPI_UNSIGNED_LONG_LONG, MPI_MAX, MPI_COMM_WORLD);
    return r;
}

unsigned long long par_min_u64(unsigned long long v)
{
    unsigned long long r = v;
    if (g_world > 1)
        MPI_Allreduce(&v, &r, 1, MPI_UNSIGNED_LONG_LONG, MPI_MIN, MPI_COMM_WORLD);
    return r;
}

#else /* one process */

/* Variables launchers set in every rank they start. */
static const char *const rank_env[][2] = {
    {"OMPI_COMM_WORLD_SIZE", "mpirun (Open MPI)"},
    {"PMI_SIZE", "an MPI launcher (PMI)"},
    {"PMIX_SIZE", "an MPI launcher (PMIx)"},
    {"MPI_LOCALNRANKS", "mpirun (MPICH)"},
};

void par_init(int *argc, char ***argv)
{
    (void)argc;
    (void)argv;
    for (size_t i = 0; i < sizeof rank_env / sizeof rank_env[0]; i++) {
        const char *s = getenv(rank_env[i][0]);
        if (s && atoi(s) > 1)
            cli_die("started as one of %s ranks by %s, but this llm-train was built without "
                    "MPI (make MPI=1): each rank would train alone over the same files",
                    s, rank_env[i][1]);
    }
}

void par_finalize(void) {}
void par_device(const char *device) { (void)device; }
int par_reduce_device(void) { return 0; }
int par_rank(void) { return 0; }
int par_world(void) { return 1; }
int par_local(void) { return 1; }
int par_built(void) { return 0; }

int par_reduce(void *ctx, float *grads, size_t n, double *sums, size_t ns)
{
    (void)ctx;
    (void)grads;
    (void)n;
    (void)sums;
    (void)ns;
    return 0;
}

int par_or(int v) { return v; }
unsigned long long par_max_u64(unsigned long long v) { return v; }
unsigned long long par_min_u64(unsigned long long v) { return v; }

#endif
