/* amx_emulate.h: the AMX tile instructions that amx.h names (LDTILECFG,
 * TILERELEASE, TILEZERO, TILELOADD, TILESTORED, TDPBF16PS, TDPBSSD,
 * TDPBUSD), in C, for the tests: no machine this project has run on has
 * AMX, so the amx level's products are compiled a second time against
 * this model of the hardware (the Makefile's test-only level "amxemu", and
 * make AMX_EMULATE=1's whole amx level) and test_gemm, test_kernels and
 * test_q8 check their packing, tiling and edges against plain loops.
 *
 * The model follows the Intel SDM (vol. 2, "TDPBF16PS", "LDTILECFG",
 * "TILELOADD"), and is strict where the hardware faults, so that a wrong
 * configuration fails here rather than on a user's machine: LDTILECFG
 * takes palette 1 only, rows <= 16 and colsb <= 64 for tiles 0-7 and zeros
 * for the rest and for the reserved bytes (#GP); a tile instruction before
 * LDTILECFG or on an unconfigured tile, or a tile product whose operands
 * are not three tiles or whose shapes disagree (a.colsb / 4 != b.rows,
 * c.rows != a.rows, c.colsb != b.colsb, a colsb not of whole dwords), is
 * #UD: abort() here. TDPBF16PS treats bf16 inputs below the normal range
 * as zero, rounds to nearest even and flushes fp32 results below the
 * normal range to zero, in the SDM's order (amx_dpbf16). TDPBSSD and
 * TDPBUSD add to each int32 the four products of a dword of A's row
 * (signed bytes; unsigned for TDPBUSD) and B's (signed), wrapping as the
 * hardware does. The state is per thread, as the tile
 * registers are, but also per source file (each includes this header):
 * unlike the hardware's, one kernel's tiles cannot clobber another's,
 * which no kernel relies on (each configures, uses and releases the tiles
 * within one call). */
#ifndef LLM_CPU_AMX_EMULATE_H
#define LLM_CPU_AMX_EMULATE_H

#include <float.h>
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

typedef struct {
    int on;
    uint8_t rows[8];
    uint16_t colsb[8];
    unsigned char t[8][16][64];
} amx_emu_state;

static _Thread_local amx_emu_state amx_emu;

static inline void amx_emu_fault(void)
{
    abort();
}

static inline void amx_config(const void *cfg)
{
    const unsigned char *c = cfg;
    if (c[0] != 1 || c[1] != 0)   /* palette 1, start_row 0 */
        amx_emu_fault();
    for (int i = 2; i < 16; i++)
        if (c[i])
            amx_emu_fault();
    for (int i = 0; i < 16; i++) {
        uint16_t colsb;
        memcpy(&colsb, c + 16 + 2 * i, 2);
        uint8_t rows = c[48 + i];
        if (i >= 8 ? colsb || rows : colsb > 64 || rows > 16 || !colsb != !rows)
            amx_emu_fault();
        if (i < 8) {
            amx_emu.rows[i] = rows;
            amx_emu.colsb[i] = colsb;
        }
    }
    memset(amx_emu.t, 0, sizeof amx_emu.t);
    amx_emu.on = 1;
}

static inline void amx_release(void)
{
    memset(&amx_emu, 0, sizeof amx_emu);
}

static inline void amx_emu_check(int t)
{
    if (!amx_emu.on || t < 0 || t > 7 || !amx_emu.rows[t])
        amx_emu_fault();
}

static inline void amx_zero(int t)
{
    amx_emu_check(t);
    memset(amx_emu.t[t], 0, sizeof amx_emu.t[t]);
}

/* Rows of colsb bytes, stride bytes apart; the rest of the tile zeroed. */
static inline void amx_load(int t, const void *base, long stride)
{
    amx_emu_check(t);
    memset(amx_emu.t[t], 0, sizeof amx_emu.t[t]);
    for (int r = 0; r < amx_emu.rows[t]; r++)
        memcpy(amx_emu.t[t][r], (const unsigned char *)base + (long)r * stride, amx_emu.colsb[t]);
}

static inline void amx_store(int t, void *base, long stride)
{
    amx_emu_check(t);
    for (int r = 0; r < amx_emu.rows[t]; r++)
        memcpy((unsigned char *)base + (long)r * stride, amx_emu.t[t][r], amx_emu.colsb[t]);
}

static inline float amx_emu_bf16(const unsigned char *p)
{
    uint16_t h;
    memcpy(&h, p, 2);
    uint32_t u = (uint32_t)h << 16;
    if ((u & 0x7f800000u) == 0)   /* zero or below the normal range: DAZ */
        u &= 0x80000000u;
    float f;
    memcpy(&f, &u, 4);
    return f;
}

static inline float amx_emu_ftz(float x)
{
    return fabsf(x) < FLT_MIN ? copysignf(0.0f, x) : x;
}

/* #UD for a tile product: operands not distinct (AMX-E4), or shapes that
 * disagree. */
static inline void amx_emu_shapes(int c, int a, int b)
{
    amx_emu_check(c);
    amx_emu_check(a);
    amx_emu_check(b);
    if (c == a || c == b || a == b || amx_emu.colsb[a] / 4 != amx_emu.rows[b] ||
        amx_emu.rows[c] != amx_emu.rows[a] || amx_emu.colsb[c] != amx_emu.colsb[b] ||
        amx_emu.colsb[a] % 4 || amx_emu.colsb[b] % 4 || amx_emu.colsb[c] % 4)
        amx_emu_fault();
}

/* The SDM's order: per output, the even and the odd products each summed
 * from 0 by FMA (DAZ, FTZ, to nearest even), then their sum added to C.
 * (The Intrinsics Guide's pseudo-code chains them from C instead; no
 * hardware has told which is right, and both are within rounding.) */
static inline void amx_dpbf16(int c, int a, int b)
{
    amx_emu_shapes(c, a, b);
    int M = amx_emu.rows[c], N = amx_emu.colsb[c] / 4, K = amx_emu.colsb[a] / 4;
    float fa[16][32], fb[16][32];   /* the bf16 inputs as floats */
    for (int m = 0; m < M; m++)
        for (int e = 0; e < 2 * K; e++)
            fa[m][e] = amx_emu_bf16(amx_emu.t[a][m] + 2 * e);
    for (int k = 0; k < K; k++)
        for (int e = 0; e < 2 * N; e++)
            fb[k][e] = amx_emu_bf16(amx_emu.t[b][k] + 2 * e);
    for (int m = 0; m < M; m++)
        for (int n = 0; n < N; n++) {
            float s, even = 0.0f, odd = 0.0f;
            for (int k = 0; k < K; k++) {   /* the product of bf16s is exact in fp32 */
                even = amx_emu_ftz(fmaf(fa[m][2 * k], fb[k][2 * n], even));
                odd = amx_emu_ftz(fmaf(fa[m][2 * k + 1], fb[k][2 * n + 1], odd));
            }
            memcpy(&s, amx_emu.t[c][m] + 4 * n, 4);
            s = amx_emu_ftz(s + amx_emu_ftz(even + odd));
            memcpy(amx_emu.t[c][m] + 4 * n, &s, 4);
        }
}

/* TDPBSSD (a signed) and TDPBUSD (a unsigned): c.int32[m][n] += the sum
 * over k of the four products a.byte[m][4k + j] * b.byte[k][4n + j]. */
static inline void amx_emu_dpb(int c, int a, int b, int a_signed)
{
    amx_emu_shapes(c, a, b);
    int M = amx_emu.rows[c], N = amx_emu.colsb[c] / 4, K = amx_emu.colsb[a] / 4;
    for (int m = 0; m < M; m++)
        for (int n = 0; n < N; n++) {
            uint32_t s;
            memcpy(&s, amx_emu.t[c][m] + 4 * n, 4);
            for (int k = 0; k < K; k++)
                for (int j = 0; j < 4; j++) {
                    unsigned char ab = amx_emu.t[a][m][4 * k + j];
                    int32_t av = a_signed ? (int32_t)(int8_t)ab : (int32_t)ab;
                    int32_t bv = (int8_t)amx_emu.t[b][k][4 * n + j];
                    s += (uint32_t)(av * bv);
                }
            memcpy(amx_emu.t[c][m] + 4 * n, &s, 4);
        }
}

#define amx_dpbssd(c, a, b) amx_emu_dpb(c, a, b, 1)
#define amx_dpbusd(c, a, b) amx_emu_dpb(c, a, b, 0)

#endif
