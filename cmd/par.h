/* par.h: the few collective operations llm-train needs to run as N
 * data-parallel ranks under mpirun or srun. With `make MPI=1` they are
 * OpenMPI calls (cmd/par.c), and with `make MPI=1 CUDA=1` the gradients of
 * GPU ranks are summed over NCCL (kernels/cuda/allreduce.h); otherwise one
 * process: rank 0 of 1, and the collectives do nothing. The library (lib/train/train.c) never sees MPI: it gets
 * par_reduce() through llm_train_params.reduce. */
#ifndef LLM_PAR_H
#define LLM_PAR_H

#include <stddef.h>

/*! par_init() : MPI_Init, once, before the options are parsed. Without MPI,
 *  fails (cli_die) when the environment says this is one of several ranks
 *  of mpirun/srun: each would otherwise train alone over the same files. */
void par_init(int *argc, char ***argv);
/*! par_finalize() : MPI_Finalize at a normal end. Any other exit (cli_die,
 *  a failed step) aborts every rank of the job through an atexit handler,
 *  so that no rank waits forever in a collective. */
void par_finalize(void);
int  par_rank(void);
int  par_world(void);
/*! par_local() : ranks on this machine (1 without MPI). */
int  par_local(void);
/*! par_device() : under MPI with NCCL (make MPI=1 CUDA=1), several ranks
 *  and device "cuda": gives this rank its own GPU, number (its rank among
 *  the ranks of its machine) modulo the GPUs there, before anything starts
 *  CUDA, and joins all ranks in one NCCL communicator (its id broadcast
 *  from rank 0 over MPI); from then on par_reduce() sums the gradients in
 *  GPU memory, between the GPUs. More ranks on a machine than GPUs is an
 *  error (cli_die): one rank per GPU. Else does nothing. */
void par_device(const char *device);
/*! par_reduce_device() : 1 when par_reduce() takes the gradient block in
 *  GPU memory (llm_train_params.reduce_device), after par_device(). */
int  par_reduce_device(void);
/*! par_reduce() : llm_train_params.reduce: sums grads (n floats; host
 *  memory, or GPU memory when par_reduce_device()) and sums (ns doubles,
 *  host memory) over the ranks, in place; every rank gets the same bytes. */
int  par_reduce(void *ctx, float *grads, size_t n, double *sums, size_t ns);
/*! par_or() : bitwise OR of `v` over the ranks (stop decisions). */
int  par_or(int v);
/*! par_max_u64() / par_min_u64() : over the ranks. */
unsigned long long par_max_u64(unsigned long long v);
unsigned long long par_min_u64(unsigned long long v);
/*! par_comm_seconds() : wall time spent in par_reduce() so far. */
double par_comm_seconds(void);
/*! par_built() : 1 when built with MPI. */
int  par_built(void);

#endif
