/* par.c: llm-train's data-parallel collectives (see par.h): OpenMPI calls
 * when built with `make MPI=1` (LLM_MPI), else one process of one. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

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

static int g_rank, g_world = 1, g_local = 1, g_done;

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
        MPI_Comm_free(&local);
    }
    atexit(abort_job);
}

void par_finalize(void)
{
    g_done = 1;
    MPI_Finalize();
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
    /* One contiguous block, in pieces of at most INT_MAX floats. */
    for (size_t off = 0; rc == MPI_SUCCESS && off < n; off += (size_t)INT_MAX) {
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
