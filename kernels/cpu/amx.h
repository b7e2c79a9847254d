/* amx.h: the AMX tile instructions that the amx level's kernels use
 * (gemm.c's bf16 products, q8.c's int8 ones), under names of our own:
 * the instructions on the amx level (the Makefile's LLM_AMX_LEVEL, with
 * AMX-TILE, AMX-BF16 and AMX-INT8: kernels.c asks Linux for the tiles'
 * state before that level runs, which a NATIVE=1 build's level does not),
 * and amx_emulate.h's model of them in the tests' builds
 * (LLM_AMX_EMULATE: test_gemm's level amxemu, make AMX_EMULATE=1). LLM_AMX
 * says whether either is there. Tile numbers must be literal: the
 * instructions name their registers. */
#ifndef LLM_CPU_AMX_H
#define LLM_CPU_AMX_H

#if defined(LLM_AMX_EMULATE)
#include "amx_emulate.h"
#define LLM_AMX 1
#elif defined(LLM_AMX_LEVEL) && defined(__AMX_TILE__) && defined(__AMX_BF16__) && \
    defined(__AMX_INT8__)
#include <immintrin.h>
#define LLM_AMX 1
/* GCC 12's _tile_loadconfig tells the compiler it reads 8 of the 64
 * bytes, and _tile_loadd that it reads no memory: a compiler barrier
 * before each, so that every store to what they read is done first
 * (whatever the inlining). */
#define amx_barrier() __asm__ volatile("" ::: "memory")
#define amx_config(cfg)                                                                    \
    do {                                                                                   \
        amx_barrier();                                                                     \
        _tile_loadconfig(cfg);                                                             \
    } while (0)
#define amx_release() _tile_release()
#define amx_zero(t) _tile_zero(t)
#define amx_load(t, base, stride)                                                          \
    do {                                                                                   \
        amx_barrier();                                                                     \
        _tile_loadd(t, base, stride);                                                      \
    } while (0)
#define amx_store(t, base, stride) _tile_stored(t, base, stride)
#define amx_dpbf16(c, a, b) _tile_dpbf16ps(c, a, b)
#define amx_dpbssd(c, a, b) _tile_dpbssd(c, a, b)
#define amx_dpbusd(c, a, b) _tile_dpbusd(c, a, b)
#else
#define LLM_AMX 0
#endif

#endif
