/* half.h: IEEE 754 half precision (binary16) to and from float, in plain C
 * so that builds without F16C convert exactly as the F16C instructions do
 * (round to nearest even; NaN stays NaN, made quiet, with its sign and
 * top payload bits). The f16 decoding weights (llm_model_decode_f16()) use them;
 * bfloat16 below. */
#ifndef LLM_HALF_H
#define LLM_HALF_H

#include <stdint.h>
#include <string.h>

#include "elementwise.h"   /* LLM_HD: the CUDA kernels convert as the CPU does */

LLM_HD float llm_half_to_float(uint16_t h)
{
    uint32_t sign = (uint32_t)(h & 0x8000u) << 16, e = (h >> 10) & 0x1fu, m = h & 0x3ffu, u;
    if (e == 0x1f) {
        u = sign | 0x7f800000u | (m ? 0x400000u | m << 13 : 0);   /* inf, quiet NaN */
    } else if (e) {
        u = sign | (e + 112) << 23 | m << 13;            /* normal: bias 15 -> 127 */
    } else if (m) {
        /* Subnormal: m * 2^-24, normalised for float. */
        int s = 0;
        while (!(m & 0x400u)) {
            m <<= 1;
            s++;
        }
        u = sign | (uint32_t)(113 - s) << 23 | (m & 0x3ffu) << 13;
    } else {
        u = sign;                                        /* +-0 */
    }
    float f;
    memcpy(&f, &u, sizeof f);
    return f;
}

LLM_HD uint16_t llm_float_to_half(float f)
{
    uint32_t u;
    memcpy(&u, &f, sizeof u);
    uint16_t sign = (uint16_t)((u >> 16) & 0x8000u);
    uint32_t a = u & 0x7fffffffu;
    if (a >= 0x7f800000u)   /* inf, or NaN kept quiet with its top payload bits */
        return sign | 0x7c00u | (a > 0x7f800000u ? 0x200u | (a >> 13 & 0x3ffu) : 0);
    if (a >= 0x477ff000u)   /* rounds to 2^16 or more: inf */
        return sign | 0x7c00u;
    if (a < 0x38800000u) {
        /* Below 2^-14: subnormal (or 0); shift the 24-bit significand into
         * place, rounding the bits shifted out to nearest even. */
        if (a < 0x33000000u)   /* below half the smallest subnormal: 0 */
            return sign;
        uint32_t m = (a & 0x7fffffu) | 0x800000u;
        int shift = 126 - (int)(a >> 23);                /* 14 .. 24 */
        uint32_t r = m >> shift, rem = m & ((1u << shift) - 1), hb = 1u << (shift - 1);
        r += rem > hb || (rem == hb && (r & 1));
        return sign | (uint16_t)r;
    }
    /* Normal: rebias, round the 13 dropped bits to nearest even (a carry
     * into the exponent is the right answer). */
    uint32_t r = a - 0x38000000u;
    r += 0xfffu + (r >> 13 & 1);
    return sign | (uint16_t)(r >> 13);
}

/* bfloat16, the top half of a float: f rounded to nearest, ties to even
 * (as torch's .to(torch.bfloat16); subnormals kept), NaN kept quiet with
 * its sign; and back, exactly. The bf16 weights and key/value caches of
 * inference (pack_bf16, copy_rows_bf16) use them. */
LLM_HD uint16_t llm_float_to_bf16(float f)
{
    uint32_t u;
    memcpy(&u, &f, sizeof u);
    if ((u & 0x7fffffffu) > 0x7f800000u)
        return (uint16_t)((u >> 16) | 0x40u);
    return (uint16_t)((u + 0x7fffu + ((u >> 16) & 1u)) >> 16);
}

LLM_HD float llm_bf16_to_float(uint16_t h)
{
    uint32_t u = (uint32_t)h << 16;
    float f;
    memcpy(&f, &u, sizeof f);
    return f;
}

#endif
