/* kernels.c: backend lookup by device name, the choice of the CPU
 * kernels' instruction-set level at start-up, and the one thread-count knob
 * shared by OpenMP and OpenBLAS. */
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cblas.h>
#include <omp.h>
#if defined(__x86_64__) || defined(__i386__)
#include <cpuid.h>
#endif
#ifdef LLM_CPU_HAS_amx
#include <sys/syscall.h>
#include <unistd.h>
#endif

#include "cpu/level.h"
#include "kernels.h"
#ifdef LLM_CUDA
#include "cuda/cuda.h"
#endif

/* ---------------------------------------------------------------- CPU levels */

/* The Makefile defines LLM_CPU_HAS_<level> for each level it compiled. */
#if !defined(LLM_CPU_HAS_generic) && !defined(LLM_CPU_HAS_avx2) && \
    !defined(LLM_CPU_HAS_avx512) && !defined(LLM_CPU_HAS_amx) && !defined(LLM_CPU_HAS_native)
#error "no CPU level: build with the Makefile (it defines LLM_CPU_HAS_<level>)"
#endif

static int runs_always(void)
{
    return 1;
}

#if defined(LLM_CPU_HAS_avx2) || defined(LLM_CPU_HAS_avx512) || defined(LLM_CPU_HAS_amx)
/* __builtin_cpu_supports() also checks that the OS saves the ymm and zmm
 * registers; clang 14 lacks its "f16c", so that bit comes from cpuid. */
static int runs_avx2(void)
{
    unsigned a, b, c, d;
    __builtin_cpu_init();
    return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma") &&
           __get_cpuid(1, &a, &b, &c, &d) && (c & bit_F16C);
}
#endif

#if defined(LLM_CPU_HAS_avx512) || defined(LLM_CPU_HAS_amx)
static int runs_avx512(void)
{
    return runs_avx2() && __builtin_cpu_supports("avx512f") &&
           __builtin_cpu_supports("avx512bw") && __builtin_cpu_supports("avx512vl") &&
           __builtin_cpu_supports("avx512dq");
}
#endif

#ifdef LLM_CPU_HAS_amx
/* The amx level: avx512's instructions with AVX512_BF16, AMX-TILE,
 * AMX-BF16 and AMX-INT8 (cpuid leaf 7: EDX bits 24, 22 and 25), Linux's
 * leave to use the tiles' 8 KB of state (arch_prctl ARCH_REQ_XCOMP_PERM
 * for XFEATURE_XTILEDATA, Linux 5.16 and later; without it the first tile
 * instruction is SIGILL), asked once for the whole process, and products
 * that give the avx512 level's bits. That check guards against what the
 * tests cannot see: no machine this project was tested on has AMX, so its
 * products were tested against a model of the instructions
 * (kernels/cpu/amx_emulate.h). The bf16 product's inputs are small
 * integers, exact in bf16 and summed exactly in any order; the int8
 * product is exact by construction and sums its floats in kernels.h's
 * order. Both in every edge the tiles have (rows past a tile of 16, past a
 * block of 32, pairs past a chunk of 16, an odd k, columns past a sliver
 * of 32; input rows past a tile, outputs past 16, blocks past 8). A level
 * that fails the check is not offered, quietly (a line on every run would
 * fill cron's mail) unless LLM_CPU=amx asks for it: choose() then says
 * why. */
static int amx_state = -1;   /* under choose_once: 0 no, 1 yes, 2 failed the check */

static int amx_check(void)
{
    enum { M = 37, N = 45, K = 300 };
    static float a[M * K], b[K * N], c1[M * N], c2[M * N];
    for (int i = 0; i < M * K; i++)
        a[i] = (float)(i * 7 % 9) - 4.0f;
    for (int i = 0; i < K * N; i++)
        b[i] = (float)(i * 5 % 7) - 3.0f;
    for (int t = 0; t < 4; t++) {   /* the four transposes */
        int ta = t & 1, tb = t >> 1;
        llm_cpu_gemm_bf16_avx512(ta, tb, M, N, 71, 1.0f, a, ta ? M : 71, b, tb ? 71 : N, 0.0f,
                                 c1, N);
        llm_cpu_gemm_bf16_amx(ta, tb, M, N, 71, 1.0f, a, ta ? M : 71, b, tb ? 71 : N, 0.0f, c2,
                              N);
        if (memcmp(c1, c2, sizeof c1) != 0)
            return 0;
    }
    /* int8: N weight rows of K (10 blocks), M input rows (from a and b as
     * floats: any values give equal bits). */
    const llm_kernels *x = llm_kernels_cpu_avx512(), *y = llm_kernels_cpu_amx();
    enum { NB = (K + 31) / 32 };
    static _Alignas(64) char wq[N * NB * LLM_Q8_BYTES];
    static int16_t xq[M * NB * 32];
    static float xd[M * NB], xs[M * NB];
    for (int i = 0; i < M * K; i++)
        a[i] = a[i] * 0.37f + (float)(i % 11) * 0.01f;
    x->quantize_q8(wq, b, K, NULL, N, K);
    x->quantize_q16(xq, xd, xs, a, K, NULL, M, K);
    x->matmul_rows_q8(c1, N, NULL, xq, xd, xs, wq, M, K, N);
    y->matmul_rows_q8(c2, N, NULL, xq, xd, xs, wq, M, K, N);
    return memcmp(c1, c2, sizeof c1) == 0;
}

static int runs_amx(void)
{
    if (amx_state >= 0)
        return amx_state == 1;
    amx_state = 0;
    if (!runs_avx512() || !__builtin_cpu_supports("avx512bf16"))
        return 0;
#ifndef LLM_AMX_EMULATE   /* make AMX_EMULATE=1: the tiles are a model in C */
    unsigned a, b, c, d;
    if (!__get_cpuid_count(7, 0, &a, &b, &c, &d) || !(d & 1u << 24) || !(d & 1u << 22) ||
        !(d & 1u << 25) ||
        syscall(SYS_arch_prctl, 0x1023 /* ARCH_REQ_XCOMP_PERM */, 18 /* XTILEDATA */) != 0)
        return 0;
#endif
    amx_state = amx_check() ? 1 : 2;
    return amx_state == 1;
}
#endif

typedef struct {
    const char *name;
    const llm_kernels *(*table)(void);
    int (*runs)(void);   /* whether this CPU has the instructions */
    const char *(*gemm)(void);   /* what computes its matrix products */
} cpu_level;

/* Best first. A native build (NATIVE=1) has that level alone: it runs
 * where it was built. */
static const cpu_level levels[] = {
#ifdef LLM_CPU_HAS_native
    {"native", llm_kernels_cpu_native, runs_always, llm_cpu_gemm_name_native},
#endif
#ifdef LLM_CPU_HAS_amx
    {"amx", llm_kernels_cpu_amx, runs_amx, llm_cpu_gemm_name_amx},
#endif
#ifdef LLM_CPU_HAS_avx512
    {"avx512", llm_kernels_cpu_avx512, runs_avx512, llm_cpu_gemm_name_avx512},
#endif
#ifdef LLM_CPU_HAS_avx2
    {"avx2", llm_kernels_cpu_avx2, runs_avx2, llm_cpu_gemm_name_avx2},
#endif
#ifdef LLM_CPU_HAS_generic
    {"generic", llm_kernels_cpu_generic, runs_always, llm_cpu_gemm_name_generic},
#endif
};
enum { N_LEVELS = sizeof levels / sizeof levels[0] };

static const char *built_names[N_LEVELS + 1], *runnable_names[N_LEVELS + 1];
static const cpu_level *chosen;
static pthread_once_t choose_once = PTHREAD_ONCE_INIT;

/* "a, b, c" from a NULL-terminated list. */
static void join(char *buf, size_t cap, const char *const *names)
{
    size_t n = 0;
    buf[0] = '\0';
    for (int i = 0; names[i] && n < cap; i++) {
        int w = snprintf(buf + n, cap - n, "%s%s", i ? ", " : "", names[i]);
        if (w < 0)
            break;
        n += (size_t)w;
    }
}

/* Once: which levels this CPU runs, and the one to use. LLM_CPU naming a
 * level that cannot be used is not fatal (as OpenBLAS treats
 * OPENBLAS_CORETYPE): the program still works, on the best level, and
 * says so on stderr, since a forced level is a request somebody should
 * hear was refused. Empty counts as unset. */
static void choose(void)
{
    int nr = 0;
    for (int i = 0; i < N_LEVELS; i++) {
        built_names[i] = levels[i].name;
        if (levels[i].runs()) {
            runnable_names[nr++] = levels[i].name;
            if (!chosen)
                chosen = &levels[i];
        }
    }
    const char *want = getenv("LLM_CPU");
    if (!want || !*want)
        return;
    for (int i = 0; i < N_LEVELS; i++)
        if (strcmp(want, levels[i].name) == 0) {
            if (levels[i].runs()) {
                chosen = &levels[i];
                return;
            }
            char have[64];
            join(have, sizeof have, runnable_names);
#ifdef LLM_CPU_HAS_amx
            if (strcmp(want, "amx") == 0 && amx_state == 2) {
                fprintf(stderr, "%s: LLM_CPU=amx: the amx level's matrix products differ "
                        "from the avx512 level's on this CPU (a bug: please report it); "
                        "using %s\n", program_invocation_short_name, chosen->name);
                return;
            }
#endif
            fprintf(stderr, "%s: LLM_CPU=%s: this CPU lacks the instructions of "
                    "level %s (it runs %s); using %s\n", program_invocation_short_name,
                    want, want, have, chosen->name);
            return;
        }
    char built[64];
    join(built, sizeof built, built_names);
    fprintf(stderr, "%s: LLM_CPU=%s: no such level in this build (%s); using %s\n",
            program_invocation_short_name, want, built, chosen->name);
}

const llm_kernels *llm_kernels_cpu(void)
{
    pthread_once(&choose_once, choose);
    return chosen->table();
}

const char *llm_kernels_cpu_level(void)
{
    pthread_once(&choose_once, choose);
    return chosen->name;
}

const char *llm_kernels_cpu_gemm(void)
{
    pthread_once(&choose_once, choose);
    return chosen->gemm();
}

const char *const *llm_kernels_cpu_levels(int runnable)
{
    pthread_once(&choose_once, choose);
    return runnable ? runnable_names : built_names;
}

const llm_kernels *llm_kernels_cpu_for(const char *level)
{
    pthread_once(&choose_once, choose);   /* runs_amx()'s answer, once */
    for (int i = 0; i < N_LEVELS; i++)
        if (strcmp(level, levels[i].name) == 0)
            return levels[i].runs() ? levels[i].table() : NULL;
    return NULL;
}

/* ---------------------------------------------------------------- lookup */

static int n_threads;   /* 0: not set yet, both libraries at their default */

const llm_kernels *llm_kernels_get(const char *device)
{
    if (!device || strcmp(device, "cpu") == 0) {
        const char *k = getenv("LLM_KERNELS");
        return k && strcmp(k, "guarded") == 0 ? llm_kernels_guarded() : llm_kernels_cpu();
    }
    if (strcmp(device, "ref") == 0)
        return llm_kernels_ref();
    if (strcmp(device, "guarded") == 0)
        return llm_kernels_guarded();
#ifdef LLM_CUDA
    if (strcmp(device, "cuda") == 0) {
        const llm_kernels *k = llm_kernels_cuda();   /* NULL without a usable GPU */
        if (k)   /* the sampler's host-side passes: the CPU level in use */
            llm_cuda_set_host_kernels(llm_kernels_cpu());
        return k;
    }
#endif
    return NULL;
}

/* ---------------------------------------------------------------- threads */

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
