/* gguf.c: GGUF files (llama.cpp's model format, versions 2 and 3): a reader
 * that validates every size, count and offset before use, dequantization
 * bit-exact with gguf-py, quantization for export, and an atomic writer. */
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "format.h"
#include "gguf.h"
#include "half.h"
#include "internal.h"

/* Bit-exactness with numpy needs every product rounded before it is added:
 * no fused multiply-add. GCC contracts nothing in ISO C mode (-std=c11, as
 * the Makefile builds); clang contracts within an expression unless told. */
#if defined(__clang__)
#pragma STDC FP_CONTRACT OFF
#endif

#define GGUF_MAGIC "GGUF"
/* Smallest encodings, to bound counts by the bytes left before allocating:
 * a key/value is a length (8), a key (>= 1), a type (4) and a value (>= 1);
 * a tensor info a name length (8), a name (>= 1), n_dims (4), one ne (8),
 * a type (4) and an offset (8). */
#define KV_MIN_BYTES 14u
#define TENSOR_MIN_BYTES 33u

/* ======================================================================== */
/* Types                                                                    */

static const struct {
    const char *name;
    uint16_t block, bytes;
    uint8_t supported;
} types[] = {
    [LLM_GGUF_F32] = {"F32", 1, 4, 1},        [LLM_GGUF_F16] = {"F16", 1, 2, 1},
    [LLM_GGUF_Q4_0] = {"Q4_0", 32, 18, 1},    [LLM_GGUF_Q4_1] = {"Q4_1", 32, 20, 1},
    [LLM_GGUF_Q5_0] = {"Q5_0", 32, 22, 1},    [LLM_GGUF_Q5_1] = {"Q5_1", 32, 24, 1},
    [LLM_GGUF_Q8_0] = {"Q8_0", 32, 34, 1},    [LLM_GGUF_Q8_1] = {"Q8_1", 32, 40, 0},
    [LLM_GGUF_Q2_K] = {"Q2_K", 256, 84, 0},   [LLM_GGUF_Q3_K] = {"Q3_K", 256, 110, 0},
    [LLM_GGUF_Q4_K] = {"Q4_K", 256, 144, 1},  [LLM_GGUF_Q5_K] = {"Q5_K", 256, 176, 1},
    [LLM_GGUF_Q6_K] = {"Q6_K", 256, 210, 1},  [LLM_GGUF_Q8_K] = {"Q8_K", 256, 292, 0},
    [LLM_GGUF_IQ2_XXS] = {"IQ2_XXS", 256, 66, 0}, [LLM_GGUF_IQ2_XS] = {"IQ2_XS", 256, 74, 0},
    [LLM_GGUF_IQ3_XXS] = {"IQ3_XXS", 256, 98, 0}, [LLM_GGUF_IQ1_S] = {"IQ1_S", 256, 50, 0},
    [LLM_GGUF_IQ4_NL] = {"IQ4_NL", 32, 18, 0},    [LLM_GGUF_IQ3_S] = {"IQ3_S", 256, 110, 0},
    [LLM_GGUF_IQ2_S] = {"IQ2_S", 256, 82, 0},     [LLM_GGUF_IQ4_XS] = {"IQ4_XS", 256, 136, 0},
    [LLM_GGUF_I8] = {"I8", 1, 1, 0},          [LLM_GGUF_I16] = {"I16", 1, 2, 0},
    [LLM_GGUF_I32] = {"I32", 1, 4, 0},        [LLM_GGUF_I64] = {"I64", 1, 8, 0},
    [LLM_GGUF_F64] = {"F64", 1, 8, 0},        [LLM_GGUF_IQ1_M] = {"IQ1_M", 256, 56, 0},
    [LLM_GGUF_BF16] = {"BF16", 1, 2, 1},      [LLM_GGUF_TQ1_0] = {"TQ1_0", 256, 54, 0},
    [LLM_GGUF_TQ2_0] = {"TQ2_0", 256, 66, 0}, [LLM_GGUF_MXFP4] = {"MXFP4", 32, 17, 0},
    [LLM_GGUF_NVFP4] = {"NVFP4", 64, 36, 0},  [LLM_GGUF_Q1_0] = {"Q1_0", 128, 18, 0},
};
#define N_TYPES (int)(sizeof types / sizeof types[0])

static int type_known(int t)
{
    return t >= 0 && t < N_TYPES && types[t].name != NULL;
}

const char *llm_gguf_type_name(int type)
{
    static _Thread_local char buf[24];
    if (type_known(type))
        return types[type].name;
    snprintf(buf, sizeof buf, "type %d", type);
    return buf;
}

int llm_gguf_type_supported(int type)
{
    return type_known(type) && types[type].supported;
}

size_t llm_gguf_type_block(int type)
{
    return type_known(type) ? types[type].block : 0;
}

size_t llm_gguf_type_block_bytes(int type)
{
    return type_known(type) ? types[type].bytes : 0;
}

int llm_gguf_type_nbytes(int type, uint64_t n, size_t *nbytes)
{
    if (!type_known(type))
        return llm_fail(LLM_ERR_INVALID, "unknown GGUF tensor %s", llm_gguf_type_name(type));
    if (n % types[type].block)
        return llm_fail(LLM_ERR_INVALID, "%llu elements of %s: not a multiple of its block of %u",
                        (unsigned long long)n, types[type].name, (unsigned)types[type].block);
    uint64_t b;
    if (__builtin_mul_overflow(n / types[type].block, (uint64_t)types[type].bytes, &b) ||
        b > SIZE_MAX)
        return llm_fail(LLM_ERR_INVALID, "%llu elements of %s: size overflows",
                        (unsigned long long)n, types[type].name);
    *nbytes = (size_t)b;
    return LLM_OK;
}

static const char *const value_types[] = {
    "uint8", "int8", "uint16", "int16", "uint32", "int32", "float32",
    "bool", "string", "array", "uint64", "int64", "float64",
};
#define N_VALUE_TYPES (int)(sizeof value_types / sizeof value_types[0])

const char *llm_gguf_value_type_name(int t)
{
    static _Thread_local char buf[24];
    if (t >= 0 && t < N_VALUE_TYPES)
        return value_types[t];
    snprintf(buf, sizeof buf, "type %d", t);
    return buf;
}

/* Bytes of a fixed-size value type; 0 for string, array and unknown. */
static size_t value_size(int t)
{
    switch (t) {
    case LLM_GGUF_T_UINT8: case LLM_GGUF_T_INT8: case LLM_GGUF_T_BOOL:
        return 1;
    case LLM_GGUF_T_UINT16: case LLM_GGUF_T_INT16:
        return 2;
    case LLM_GGUF_T_UINT32: case LLM_GGUF_T_INT32: case LLM_GGUF_T_FLOAT32:
        return 4;
    case LLM_GGUF_T_UINT64: case LLM_GGUF_T_INT64: case LLM_GGUF_T_FLOAT64:
        return 8;
    default:
        return 0;
    }
}

static int is_int_type(int t)
{
    return value_size(t) && t != LLM_GGUF_T_FLOAT32 && t != LLM_GGUF_T_FLOAT64;
}

/* ======================================================================== */
/* Half precision as numpy converts it: kernels/half.h for every finite value and
 * infinity (the same rounding), but NaNs keep their payload and are not
 * made quiet, which is what numpy's astype does and F16C would not.        */

static inline uint16_t le16(const unsigned char *p)
{
    return (uint16_t)(p[0] | p[1] << 8);
}

static inline float bits_float(uint32_t u)
{
    float f;
    memcpy(&f, &u, sizeof f);
    return f;
}

static inline uint32_t float_bits(float f)
{
    uint32_t u;
    memcpy(&u, &f, sizeof u);
    return u;
}

static inline float half_np(uint16_t h)
{
    if ((h & 0x7c00u) == 0x7c00u && (h & 0x3ffu))
        return bits_float((uint32_t)(h & 0x8000u) << 16 | 0x7f800000u | (uint32_t)(h & 0x3ffu) << 13);
    return llm_half_to_float(h);
}

static inline uint16_t half_from_np(float f)
{
    uint32_t u = float_bits(f);
    if ((u & 0x7fffffffu) > 0x7f800000u) {
        uint16_t r = (uint16_t)(0x7c00u | ((u & 0x7fffffu) >> 13));
        if (r == 0x7c00u)
            r++;
        return (uint16_t)((u >> 16 & 0x8000u) | r);
    }
    return llm_float_to_half(f);
}

/* ======================================================================== */
/* Dequantization. Each mirrors gguf-py's dequantize_blocks: products and  */
/* sums in float32, in numpy's order ((d * sc) * q - dmin * m for the K   */
/* types), each rounded.                                                   */

static void deq_q4_0(const unsigned char *x, float *y, size_t nb)
{
    for (size_t b = 0; b < nb; b++, x += 18, y += 32) {
        float d = half_np(le16(x));
        for (int j = 0; j < 16; j++) {
            y[j] = d * (float)((x[2 + j] & 15) - 8);
            y[j + 16] = d * (float)((x[2 + j] >> 4) - 8);
        }
    }
}

static void deq_q4_1(const unsigned char *x, float *y, size_t nb)
{
    for (size_t b = 0; b < nb; b++, x += 20, y += 32) {
        float d = half_np(le16(x)), m = half_np(le16(x + 2));
        for (int j = 0; j < 16; j++) {
            float lo = d * (float)(x[4 + j] & 15), hi = d * (float)(x[4 + j] >> 4);
            y[j] = lo + m;
            y[j + 16] = hi + m;
        }
    }
}

static void deq_q5_0(const unsigned char *x, float *y, size_t nb)
{
    for (size_t b = 0; b < nb; b++, x += 22, y += 32) {
        float d = half_np(le16(x));
        uint32_t qh = llm_le32(x + 2);
        for (int j = 0; j < 16; j++) {
            int lo = (x[6 + j] & 15) | (int)((qh >> j & 1) << 4);
            int hi = (x[6 + j] >> 4) | (int)((qh >> (j + 16) & 1) << 4);
            y[j] = d * (float)(lo - 16);
            y[j + 16] = d * (float)(hi - 16);
        }
    }
}

static void deq_q5_1(const unsigned char *x, float *y, size_t nb)
{
    for (size_t b = 0; b < nb; b++, x += 24, y += 32) {
        float d = half_np(le16(x)), m = half_np(le16(x + 2));
        uint32_t qh = llm_le32(x + 4);
        for (int j = 0; j < 16; j++) {
            int lo = (x[8 + j] & 15) | (int)((qh >> j & 1) << 4);
            int hi = (x[8 + j] >> 4) | (int)((qh >> (j + 16) & 1) << 4);
            float a = d * (float)lo, c = d * (float)hi;
            y[j] = a + m;
            y[j + 16] = c + m;
        }
    }
}

static void deq_q8_0(const unsigned char *x, float *y, size_t nb)
{
    for (size_t b = 0; b < nb; b++, x += 34, y += 32) {
        float d = half_np(le16(x));
        for (int j = 0; j < 32; j++)
            y[j] = (float)(int8_t)x[2 + j] * d;
    }
}

/* The 12 bytes of 6-bit scales and mins of Q4_K and Q5_K. */
static void k_scales(const unsigned char *s, int sc[8], int mn[8])
{
    for (int j = 0; j < 4; j++) {
        sc[j] = s[j] & 63;
        mn[j] = s[j + 4] & 63;
        sc[j + 4] = (s[j + 8] & 15) | (s[j] >> 6) << 4;
        mn[j + 4] = (s[j + 8] >> 4) | (s[j + 4] >> 6) << 4;
    }
}

static void deq_q4_k(const unsigned char *x, float *y, size_t nb)
{
    for (size_t b = 0; b < nb; b++, x += 144, y += 256) {
        float d = half_np(le16(x)), dmin = half_np(le16(x + 2));
        int sc[8], mn[8];
        k_scales(x + 4, sc, mn);
        const unsigned char *qs = x + 16;
        for (int j = 0; j < 8; j++) {
            float ds = d * (float)sc[j], dm = dmin * (float)mn[j];
            const unsigned char *q = qs + (j / 2) * 32;
            int shift = (j % 2) * 4;
            for (int l = 0; l < 32; l++) {
                float p = ds * (float)((q[l] >> shift) & 15);
                y[j * 32 + l] = p - dm;
            }
        }
    }
}

static void deq_q5_k(const unsigned char *x, float *y, size_t nb)
{
    for (size_t b = 0; b < nb; b++, x += 176, y += 256) {
        float d = half_np(le16(x)), dmin = half_np(le16(x + 2));
        int sc[8], mn[8];
        k_scales(x + 4, sc, mn);
        const unsigned char *qh = x + 16, *qs = x + 48;
        for (int j = 0; j < 8; j++) {
            float ds = d * (float)sc[j], dm = dmin * (float)mn[j];
            const unsigned char *q = qs + (j / 2) * 32;
            int shift = (j % 2) * 4;
            for (int l = 0; l < 32; l++) {
                int v = ((q[l] >> shift) & 15) | ((qh[l] >> j) & 1) << 4;
                float p = ds * (float)v;
                y[j * 32 + l] = p - dm;
            }
        }
    }
}

static void deq_q6_k(const unsigned char *x, float *y, size_t nb)
{
    for (size_t b = 0; b < nb; b++, x += 210, y += 256) {
        const unsigned char *ql = x, *qh = x + 128, *sc = x + 192;
        float d = half_np(le16(x + 208));
        for (int i = 0; i < 256; i++) {
            int h = i / 128, r = i % 128;
            int lo = (ql[h * 64 + r % 64] >> (4 * (r / 64))) & 15;
            int hi = (qh[h * 32 + r % 32] >> (2 * (r / 32))) & 3;
            float ds = d * (float)(int8_t)sc[i / 16];
            y[i] = ds * (float)((lo | hi << 4) - 32);
        }
    }
}

int llm_gguf_dequantize(int type, const void *src, size_t nbytes, float *dst, size_t n)
{
    if (!llm_gguf_type_supported(type))
        return llm_fail(LLM_ERR_UNSUPPORTED, "GGUF tensor type %s is not supported",
                        llm_gguf_type_name(type));
    size_t want;
    int rc = llm_gguf_type_nbytes(type, n, &want);
    if (rc)
        return rc;
    if (want != nbytes)
        return llm_fail(LLM_ERR_INVALID, "%zu elements of %s take %zu bytes, not %zu", n,
                        types[type].name, want, nbytes);
    const unsigned char *x = src;
    size_t nb = n / types[type].block;
    switch (type) {
    case LLM_GGUF_F32:
        for (size_t i = 0; i < n; i++)
            dst[i] = bits_float(llm_le32(x + 4 * i));
        break;
    case LLM_GGUF_F16:
        for (size_t i = 0; i < n; i++)
            dst[i] = half_np(le16(x + 2 * i));
        break;
    case LLM_GGUF_BF16:
        for (size_t i = 0; i < n; i++)
            dst[i] = bits_float((uint32_t)le16(x + 2 * i) << 16);
        break;
    case LLM_GGUF_Q4_0: deq_q4_0(x, dst, nb); break;
    case LLM_GGUF_Q4_1: deq_q4_1(x, dst, nb); break;
    case LLM_GGUF_Q5_0: deq_q5_0(x, dst, nb); break;
    case LLM_GGUF_Q5_1: deq_q5_1(x, dst, nb); break;
    case LLM_GGUF_Q8_0: deq_q8_0(x, dst, nb); break;
    case LLM_GGUF_Q4_K: deq_q4_k(x, dst, nb); break;
    case LLM_GGUF_Q5_K: deq_q5_k(x, dst, nb); break;
    case LLM_GGUF_Q6_K: deq_q6_k(x, dst, nb); break;
    default: break;
    }
    return LLM_OK;
}

/* ======================================================================== */
/* Quantization                                                             */

/* np_roundf of gguf-py: round half away from zero, as ggml's roundf. */
static float np_roundf(float v)
{
    float a = fabsf(v), fl = floorf(a);
    float b = fl + floorf(2.0f * (a - fl));
    return v < 0 ? -b : b;
}

static void quant_q8_0(const float *x, unsigned char *y, size_t nb)
{
    for (size_t b = 0; b < nb; b++, x += 32, y += 34) {
        float amax = 0.0f;
        for (int j = 0; j < 32; j++)
            if (fabsf(x[j]) > amax)
                amax = fabsf(x[j]);
        float d = amax / 127.0f;
        float id = d == 0.0f ? 0.0f : 1.0f / d;
        uint16_t h = half_from_np(d);
        y[0] = (unsigned char)h;
        y[1] = (unsigned char)(h >> 8);
        /* Below amax ~ 3.7e-37, 1 / d overflows to inf and x * id is inf or
         * NaN: numpy's cast (cvttss2si on x86) gives 0 for those, where C's
         * would be undefined. */
        for (int j = 0; j < 32; j++) {
            float r = np_roundf(x[j] * id);
            y[2 + j] = isfinite(r) ? (unsigned char)(int8_t)r : 0;
        }
    }
}

int llm_gguf_quantize(int type, const float *src, size_t n, void *dst, size_t cap)
{
    if (type != LLM_GGUF_F32 && type != LLM_GGUF_F16 && type != LLM_GGUF_BF16 &&
        type != LLM_GGUF_Q8_0)
        return llm_fail(LLM_ERR_UNSUPPORTED, "quantizing to GGUF %s is not supported",
                        llm_gguf_type_name(type));
    size_t want;
    int rc = llm_gguf_type_nbytes(type, n, &want);
    if (rc)
        return rc;
    if (cap < want)
        return llm_fail(LLM_ERR_INVALID, "%zu elements of %s take %zu bytes, only %zu given",
                        n, types[type].name, want, cap);
    unsigned char *y = dst;
    switch (type) {
    case LLM_GGUF_F32:
        for (size_t i = 0; i < n; i++)
            llm_put_le32(y + 4 * i, float_bits(src[i]));
        break;
    case LLM_GGUF_F16:
        for (size_t i = 0; i < n; i++) {
            uint16_t h = half_from_np(src[i]);
            y[2 * i] = (unsigned char)h;
            y[2 * i + 1] = (unsigned char)(h >> 8);
        }
        break;
    case LLM_GGUF_BF16:
        /* As ggml_compute_fp32_to_bf16: NaN made quiet, else round to
         * nearest even on the upper half. */
        for (size_t i = 0; i < n; i++) {
            uint32_t u = float_bits(src[i]);
            uint32_t h = (u & 0x7fffffffu) > 0x7f800000u
                             ? (u >> 16) | 64u
                             : (uint32_t)(((uint64_t)u + 0x7fffu + (u >> 16 & 1)) >> 16);
            y[2 * i] = (unsigned char)h;
            y[2 * i + 1] = (unsigned char)(h >> 8);
        }
        break;
    case LLM_GGUF_Q8_0:
        for (size_t i = 0; i < n; i++)
            if (!isfinite(src[i]))
                return llm_fail(LLM_ERR_NUMERIC, "cannot quantize %s to Q8_0 (element %zu)",
                                isnan(src[i]) ? "NaN" : "an infinity", i);
        quant_q8_0(src, y, n / 32);
        break;
    default:
        break;
    }
    return LLM_OK;
}

/* ======================================================================== */
/* Reader                                                                   */

typedef struct {
    size_t key;           /* arena offset of the NUL-terminated key */
    int type, elem_type;  /* LLM_GGUF_T_*; elem_type for arrays */
    uint64_t count;       /* array elements */
    size_t raw;           /* file offset of a fixed-size value or array's first element */
    size_t str, len;      /* STRING: arena offset and length; string ARRAY: index in strs */
} gkv;

struct llm_gguf {
    llm_reader head;             /* name (for messages), owned mapping */
    const unsigned char *buf;
    size_t len;
    uint32_t version, alignment;
    llm_buf arena;               /* keys, strings and names, each NUL-terminated */
    gkv *kv;                     /* file order */
    size_t nkv;
    size_t *kv_sorted;           /* indices into kv, by key */
    size_t *strs;                /* arena offsets: per string array, count + 1 */
    size_t nstrs, strs_cap;
    llm_gguf_tensor *t;          /* file order */
    size_t *t_name;              /* arena offsets of the names (during parsing) */
    size_t nt;
    size_t *t_sorted;            /* indices into t, by name */
};

static const char *astr(const llm_gguf *g, size_t off)
{
    return g->arena.data + off;
}

/* A cursor over the header; `what` and `item` say where it is for messages. */
typedef struct {
    llm_gguf *g;
    size_t pos;
    const char *what;    /* "key/value", "tensor info" */
    size_t item;
} rd;

static int truncated(const rd *r, const char *field)
{
    if (strcmp(r->what, "header") == 0)
        return llm_fail(LLM_ERR_FORMAT, "'%s': truncated at offset %zu: %s (file is %zu bytes)",
                        r->g->head.name, r->pos, field, r->g->len);
    return llm_fail(LLM_ERR_FORMAT, "'%s': truncated at offset %zu: %s %zu: %s (file is %zu bytes)",
                    r->g->head.name, r->pos, r->what, r->item, field, r->g->len);
}

static int rd_u32(rd *r, uint32_t *v, const char *field)
{
    if (r->g->len - r->pos < 4)
        return truncated(r, field);
    *v = llm_le32(r->g->buf + r->pos);
    r->pos += 4;
    return LLM_OK;
}

static int rd_u64(rd *r, uint64_t *v, const char *field)
{
    if (r->g->len - r->pos < 8)
        return truncated(r, field);
    *v = llm_le64(r->g->buf + r->pos);
    r->pos += 8;
    return LLM_OK;
}

/* A string: its length and bytes, copied NUL-terminated into the arena. */
static int rd_str(rd *r, size_t *off, size_t *len, const char *field)
{
    uint64_t n;
    int rc = rd_u64(r, &n, field);
    if (rc)
        return rc;
    if (n > r->g->len - r->pos) {
        r->pos -= 8;
        return llm_fail(LLM_ERR_FORMAT,
                        "'%s': %s %zu: %s at offset %zu: length %llu past the end of the file "
                        "(%zu bytes)", r->g->head.name, r->what, r->item, field, r->pos,
                        (unsigned long long)n, r->g->len);
    }
    *off = r->g->arena.len;
    *len = (size_t)n;
    if (llm_buf_append(&r->g->arena, r->g->buf + r->pos, (size_t)n) ||
        llm_buf_append(&r->g->arena, "", 1))
        return llm_fail(LLM_ERR_NOMEM, "'%s': out of memory", r->g->head.name);
    r->pos += (size_t)n;
    return LLM_OK;
}

/* Keys and tensor names are handed out as C strings: a NUL inside would
 * cut them silently, and an empty one cannot be asked for. */
static int check_name(const rd *r, size_t off, size_t len, const char *field)
{
    const char *s = astr(r->g, off);
    if (len == 0)
        return llm_fail(LLM_ERR_FORMAT, "'%s': %s %zu: empty %s", r->g->head.name, r->what, r->item,
                        field);
    if (memchr(s, '\0', len))
        return llm_fail(LLM_ERR_FORMAT, "'%s': %s %zu: %s '%s' contains a NUL byte",
                        r->g->head.name, r->what, r->item, field, llm_show(s, len).s);
    return LLM_OK;
}

static int grow(void **p, size_t *cap, size_t need, size_t elem)
{
    if (need <= *cap)
        return LLM_OK;
    size_t ncap = *cap ? *cap : 64, bytes;
    while (ncap < need)
        if (llm_mul_size(ncap, 2, &ncap))
            return LLM_ERR_NOMEM;
    if (llm_mul_size(ncap, elem, &bytes))
        return LLM_ERR_NOMEM;
    void *q = realloc(*p, bytes);
    if (!q)
        return LLM_ERR_NOMEM;
    *p = q;
    *cap = ncap;
    return LLM_OK;
}

/* Fixed-size values must be 0/1 when bool. */
static int check_bools(const rd *r, const unsigned char *p, uint64_t n, const char *key)
{
    for (uint64_t i = 0; i < n; i++)
        if (p[i] > 1)
            return llm_fail(LLM_ERR_FORMAT, "'%s': key '%s': bool value %u is not 0 or 1",
                            r->g->head.name, llm_show(key, strlen(key)).s, (unsigned)p[i]);
    return LLM_OK;
}

static int parse_kv(rd *r, gkv *e)
{
    llm_gguf *g = r->g;
    size_t klen;
    int rc = rd_str(r, &e->key, &klen, "key");
    if (rc || (rc = check_name(r, e->key, klen, "key")))
        return rc;
    uint32_t t;
    if ((rc = rd_u32(r, &t, "value type")))
        return rc;
    const char *key = astr(g, e->key);
    llm_shown k = llm_show(key, klen);
    if (t >= (uint32_t)N_VALUE_TYPES)
        return llm_fail(LLM_ERR_FORMAT, "'%s': key '%s' has unknown value type %u", g->head.name,
                        k.s, t);
    e->type = (int)t;
    e->elem_type = -1;
    if (t == LLM_GGUF_T_STRING)
        return rd_str(r, &e->str, &e->len, "string value");
    if (t != LLM_GGUF_T_ARRAY) {
        size_t sz = value_size(e->type);
        if (g->len - r->pos < sz)
            return truncated(r, "value");
        e->raw = r->pos;
        r->pos += sz;
        return t == LLM_GGUF_T_BOOL ? check_bools(r, g->buf + e->raw, 1, key) : LLM_OK;
    }
    uint32_t et;
    uint64_t n;
    if ((rc = rd_u32(r, &et, "array element type")) || (rc = rd_u64(r, &n, "array length")))
        return rc;
    if (et == LLM_GGUF_T_ARRAY)
        return llm_fail(LLM_ERR_FORMAT, "'%s': key '%s' is an array of arrays (not supported)",
                        g->head.name, k.s);
    if (et >= (uint32_t)N_VALUE_TYPES)
        return llm_fail(LLM_ERR_FORMAT, "'%s': key '%s' is an array of unknown value type %u",
                        g->head.name, k.s, et);
    e->elem_type = (int)et;
    e->count = n;
    size_t left = g->len - r->pos;
    if (et != LLM_GGUF_T_STRING) {
        size_t sz = value_size(e->elem_type);
        if (n > left / sz)
            return llm_fail(LLM_ERR_FORMAT,
                            "'%s': key '%s': array of %llu %s past the end of the file "
                            "(%zu bytes left)", g->head.name, k.s, (unsigned long long)n,
                            value_types[et], left);
        e->raw = r->pos;
        r->pos += (size_t)n * sz;
        return et == LLM_GGUF_T_BOOL ? check_bools(r, g->buf + e->raw, n, key) : LLM_OK;
    }
    /* Each string takes at least its 8-byte length. */
    if (n > left / 8)
        return llm_fail(LLM_ERR_FORMAT,
                        "'%s': key '%s': array of %llu strings past the end of the file "
                        "(%zu bytes left)", g->head.name, k.s, (unsigned long long)n, left);
    size_t need;
    if (llm_add_size(g->nstrs, (size_t)n + 1, &need) ||
        grow((void **)&g->strs, &g->strs_cap, need, sizeof *g->strs))
        return llm_fail(LLM_ERR_NOMEM, "'%s': out of memory", g->head.name);
    e->str = g->nstrs;
    for (uint64_t i = 0; i < n; i++) {
        size_t off, len;
        if ((rc = rd_str(r, &off, &len, "array string")))
            return rc;
        g->strs[g->nstrs++] = off;
    }
    g->strs[g->nstrs++] = g->arena.len;   /* the end of the last one */
    return LLM_OK;
}

/* qsort has no context argument in C11: the file being sorted, per thread so
 * that opens on different threads stay apart. */
static _Thread_local const llm_gguf *cmp_ctx;

static int kv_cmp(const void *a, const void *b)
{
    const size_t *x = a, *y = b;
    return strcmp(astr(cmp_ctx, cmp_ctx->kv[*x].key), astr(cmp_ctx, cmp_ctx->kv[*y].key));
}

static int t_cmp(const void *a, const void *b)
{
    const size_t *x = a, *y = b;
    return strcmp(cmp_ctx->t[*x].name, cmp_ctx->t[*y].name);
}

static int off_cmp(const void *a, const void *b)
{
    const size_t *x = a, *y = b;
    uint64_t p = cmp_ctx->t[*x].offset, q = cmp_ctx->t[*y].offset;
    return p < q ? -1 : p > q;
}

static const char *kv_key(const void *g, size_t i)
{
    return astr(g, ((const llm_gguf *)g)->kv[i].key);
}

static const gkv *find_kv(const llm_gguf *g, const char *key)
{
    size_t i = llm_find_name(key, g->kv_sorted, g->nkv, kv_key, g);
    return i < g->nkv ? &g->kv[i] : NULL;
}

static int parse_tensor_info(rd *r, size_t i)
{
    llm_gguf *g = r->g;
    llm_gguf_tensor *t = &g->t[i];
    size_t nlen;
    int rc = rd_str(r, &g->t_name[i], &nlen, "name");
    if (rc || (rc = check_name(r, g->t_name[i], nlen, "name")))
        return rc;
    llm_shown nm = llm_show(astr(g, g->t_name[i]), nlen);
    uint32_t nd;
    if ((rc = rd_u32(r, &nd, "n_dims")))
        return rc;
    if (nd < 1 || nd > LLM_GGUF_MAX_DIMS)
        return llm_fail(LLM_ERR_FORMAT, "'%s': tensor '%s' has %u dimensions (1 to %d allowed)",
                        g->head.name, nm.s, nd, LLM_GGUF_MAX_DIMS);
    t->n_dims = (int)nd;
    uint64_t elems = 1;
    for (int d = 0; d < LLM_GGUF_MAX_DIMS; d++)
        t->ne[d] = 1;
    for (uint32_t d = 0; d < nd; d++) {
        uint64_t v;
        if ((rc = rd_u64(r, &v, "ne")))
            return rc;
        if (v < 1 || v > INT64_MAX)
            return llm_fail(LLM_ERR_FORMAT, "'%s': tensor '%s': ne[%u] = %llu (1 to 2^63-1 "
                            "allowed)", g->head.name, nm.s, d, (unsigned long long)v);
        if (__builtin_mul_overflow(elems, v, &elems) || elems > INT64_MAX)
            return llm_fail(LLM_ERR_FORMAT, "'%s': tensor '%s': shape too large "
                            "(element count overflows)", g->head.name, nm.s);
        t->ne[d] = (int64_t)v;
    }
    t->n_elements = elems;
    uint32_t ty;
    if ((rc = rd_u32(r, &ty, "type")))
        return rc;
    if (ty > INT32_MAX || !type_known((int)ty))
        return llm_fail(LLM_ERR_UNSUPPORTED, "'%s': tensor '%s' has unknown type %u", g->head.name,
                        nm.s, ty);
    t->type = (int)ty;
    if ((uint64_t)t->ne[0] % types[ty].block)
        return llm_fail(LLM_ERR_FORMAT, "'%s': tensor '%s': ne[0] = %lld is not a multiple of "
                        "the %s block size %u", g->head.name, nm.s, (long long)t->ne[0],
                        types[ty].name, (unsigned)types[ty].block);
    uint64_t nbytes;
    if (__builtin_mul_overflow(elems / types[ty].block, (uint64_t)types[ty].bytes, &nbytes) ||
        nbytes > g->len)
        return llm_fail(LLM_ERR_FORMAT, "'%s': tensor '%s': %llu elements of %s do not fit in "
                        "the file (%zu bytes)", g->head.name, nm.s, (unsigned long long)elems,
                        types[ty].name, g->len);
    t->nbytes = (size_t)nbytes;
    if ((rc = rd_u64(r, &t->offset, "offset")))
        return rc;
    return LLM_OK;
}

static int gguf_parse(llm_reader *head, const unsigned char *buf, size_t len)
{
    llm_gguf *g = (llm_gguf *)head;
    g->buf = buf;
    g->len = len;
    if (g->len < 4 || memcmp(g->buf, GGUF_MAGIC, 4) != 0)
        return llm_fail(LLM_ERR_FORMAT, "'%s': not a GGUF file (%s)", g->head.name,
                        g->len < 4 ? "shorter than the magic" : "bad magic");
    rd r = {g, 4, "header", 0};
    uint32_t version;
    uint64_t nt, nkv;
    int rc = rd_u32(&r, &version, "version");
    if (rc)
        return rc;
    if (version != 2 && version != 3) {
        uint32_t sw = __builtin_bswap32(version);
        if (sw == 2 || sw == 3)
            return llm_fail(LLM_ERR_UNSUPPORTED, "'%s': GGUF version %u is big-endian "
                            "(not supported)", g->head.name, sw);
        return llm_fail(LLM_ERR_UNSUPPORTED, "'%s': GGUF version %u is not supported "
                        "(2 and 3 are)", g->head.name, version);
    }
    g->version = version;
    if ((rc = rd_u64(&r, &nt, "tensor count")) || (rc = rd_u64(&r, &nkv, "key/value count")))
        return rc;
    size_t left = g->len - r.pos;
    if (nkv > left / KV_MIN_BYTES || nt > left / TENSOR_MIN_BYTES ||
        nkv * KV_MIN_BYTES + nt * TENSOR_MIN_BYTES > left)
        return llm_fail(LLM_ERR_FORMAT, "'%s': %llu tensors and %llu key/values cannot fit in "
                        "the %zu bytes left", g->head.name, (unsigned long long)nt,
                        (unsigned long long)nkv, left);
    g->kv = calloc(nkv ? (size_t)nkv : 1, sizeof *g->kv);
    g->kv_sorted = calloc(nkv ? (size_t)nkv : 1, sizeof *g->kv_sorted);
    g->t = calloc(nt ? (size_t)nt : 1, sizeof *g->t);
    g->t_name = calloc(nt ? (size_t)nt : 1, sizeof *g->t_name);
    g->t_sorted = calloc(nt ? (size_t)nt : 1, sizeof *g->t_sorted);
    if (!g->kv || !g->kv_sorted || !g->t || !g->t_name || !g->t_sorted)
        return llm_fail(LLM_ERR_NOMEM, "'%s': out of memory", g->head.name);

    r.what = "key/value";
    for (r.item = 0; r.item < nkv; r.item++, g->nkv++)
        if ((rc = parse_kv(&r, &g->kv[r.item])))
            return rc;
    for (size_t i = 0; i < g->nkv; i++)
        g->kv_sorted[i] = i;
    cmp_ctx = g;
    qsort(g->kv_sorted, g->nkv, sizeof *g->kv_sorted, kv_cmp);
    for (size_t i = 1; i < g->nkv; i++)
        if (strcmp(astr(g, g->kv[g->kv_sorted[i - 1]].key), astr(g, g->kv[g->kv_sorted[i]].key)) == 0) {
            const char *k = astr(g, g->kv[g->kv_sorted[i]].key);
            return llm_fail(LLM_ERR_FORMAT, "'%s': duplicate key '%s'", g->head.name,
                            llm_show(k, strlen(k)).s);
        }

    g->alignment = LLM_GGUF_DEFAULT_ALIGNMENT;
    const gkv *al = find_kv(g, "general.alignment");
    if (al) {
        if (al->type != LLM_GGUF_T_UINT32)
            return llm_fail(LLM_ERR_FORMAT, "'%s': general.alignment is %s, not uint32", g->head.name,
                            value_types[al->type]);
        uint32_t a = llm_le32(g->buf + al->raw);
        if (a == 0 || (a & (a - 1)) || a > LLM_GGUF_MAX_ALIGNMENT)
            return llm_fail(LLM_ERR_FORMAT, "'%s': general.alignment %u is not a power of two "
                            "up to %u", g->head.name, a, LLM_GGUF_MAX_ALIGNMENT);
        g->alignment = a;
    }

    r.what = "tensor info";
    for (r.item = 0; r.item < nt; r.item++, g->nt++)
        if ((rc = parse_tensor_info(&r, r.item)))
            return rc;
    /* The arena no longer grows: names can point into it. */
    for (size_t i = 0; i < g->nt; i++)
        g->t[i].name = astr(g, g->t_name[i]);

    uint64_t data_start = ((uint64_t)r.pos + g->alignment - 1) / g->alignment * g->alignment;
    for (size_t i = 0; i < g->nt; i++) {
        llm_gguf_tensor *t = &g->t[i];
        llm_shown nm = llm_show(t->name, strlen(t->name));
        if (t->offset % g->alignment)
            return llm_fail(LLM_ERR_FORMAT, "'%s': tensor '%s': data offset %llu is not a "
                            "multiple of the alignment %u", g->head.name, nm.s,
                            (unsigned long long)t->offset, g->alignment);
        if (data_start > g->len || t->offset > g->len - data_start ||
            t->nbytes > g->len - data_start - t->offset)
            return llm_fail(LLM_ERR_FORMAT, "'%s': tensor '%s': data [%llu, +%zu) past the end "
                            "of the file (%zu bytes, data from %llu)", g->head.name, nm.s,
                            (unsigned long long)t->offset, t->nbytes, g->len,
                            (unsigned long long)data_start);
        t->data = g->buf + data_start + t->offset;
    }

    for (size_t i = 0; i < g->nt; i++)
        g->t_sorted[i] = i;
    cmp_ctx = g;
    qsort(g->t_sorted, g->nt, sizeof *g->t_sorted, off_cmp);
    for (size_t i = 1; i < g->nt; i++) {
        const llm_gguf_tensor *a = &g->t[g->t_sorted[i - 1]], *b = &g->t[g->t_sorted[i]];
        if (b->offset < a->offset + a->nbytes)
            return llm_fail(LLM_ERR_FORMAT, "'%s': tensors '%s' [%llu, +%zu) and '%s' [%llu, "
                            "+%zu) overlap", g->head.name, llm_show(a->name, strlen(a->name)).s,
                            (unsigned long long)a->offset, a->nbytes,
                            llm_show(b->name, strlen(b->name)).s, (unsigned long long)b->offset,
                            b->nbytes);
    }
    cmp_ctx = g;
    qsort(g->t_sorted, g->nt, sizeof *g->t_sorted, t_cmp);
    for (size_t i = 1; i < g->nt; i++) {
        const char *a = g->t[g->t_sorted[i - 1]].name, *b = g->t[g->t_sorted[i]].name;
        if (strcmp(a, b) == 0)
            return llm_fail(LLM_ERR_FORMAT, "'%s': duplicate tensor name '%s'", g->head.name,
                            llm_show(b, strlen(b)).s);
    }
    free(g->t_name);
    g->t_name = NULL;
    return LLM_OK;
}

int llm_gguf_is_gguf(const void *buf, size_t len)
{
    return buf && len >= 4 && memcmp(buf, GGUF_MAGIC, 4) == 0;
}

static void gguf_clear(llm_reader *head)
{
    llm_gguf *g = (llm_gguf *)head;
    llm_buf_free(&g->arena);
    free(g->kv);
    free(g->kv_sorted);
    free(g->strs);
    free(g->t);
    free(g->t_name);
    free(g->t_sorted);
}

static const llm_reader_kind gguf_kind = {sizeof(llm_gguf), gguf_parse, gguf_clear};

int llm_gguf_open_mem(const void *buf, size_t len, const char *name, llm_gguf **out)
{
    return llm_reader_open(&gguf_kind, NULL, buf, len, name, out);
}

int llm_gguf_open(const char *path, llm_gguf **out)
{
    return llm_reader_open(&gguf_kind, path, NULL, 0, NULL, out);
}

void llm_gguf_close(llm_gguf *g)
{
    llm_reader_close(&gguf_kind, g ? &g->head : NULL);
}

uint32_t llm_gguf_version(const llm_gguf *g)
{
    return g->version;
}

uint32_t llm_gguf_alignment(const llm_gguf *g)
{
    return g->alignment;
}

const char *llm_gguf_name(const llm_gguf *g)
{
    return g->head.name;
}

/* ------------------------------------------------------------------------ */
/* Metadata                                                                 */

static void type_desc(const gkv *e, char *buf, size_t cap)
{
    if (e->type == LLM_GGUF_T_ARRAY)
        snprintf(buf, cap, "an array of %s", value_types[e->elem_type]);
    else
        snprintf(buf, cap, "%s", value_types[e->type]);
}

static int wrong_type(const llm_gguf *g, const char *key, const gkv *e, const char *want)
{
    char d[40];
    type_desc(e, d, sizeof d);
    return llm_fail(LLM_ERR_FORMAT, "'%s': key '%s' is %s, not %s", g->head.name,
                    llm_show(key, strlen(key)).s, d, want);
}

static int lookup(const llm_gguf *g, const char *key, const gkv **e)
{
    *e = key ? find_kv(g, key) : NULL;
    if (!*e)
        return llm_fail(LLM_ERR_RANGE, "'%s': no key '%s'", g->head.name,
                        key ? llm_show(key, strlen(key)).s : "(null)");
    return LLM_OK;
}

/* A fixed-size value of type t at p as an integer; -1 for a float type or
 * a uint64 above INT64_MAX. */
static int scalar_int(int t, const unsigned char *p, int64_t *v)
{
    switch (t) {
    case LLM_GGUF_T_UINT8: case LLM_GGUF_T_BOOL: *v = p[0]; return 0;
    case LLM_GGUF_T_INT8: *v = (int8_t)p[0]; return 0;
    case LLM_GGUF_T_UINT16: *v = le16(p); return 0;
    case LLM_GGUF_T_INT16: *v = (int16_t)le16(p); return 0;
    case LLM_GGUF_T_UINT32: *v = llm_le32(p); return 0;
    case LLM_GGUF_T_INT32: *v = (int32_t)llm_le32(p); return 0;
    case LLM_GGUF_T_INT64: *v = (int64_t)llm_le64(p); return 0;
    case LLM_GGUF_T_UINT64:
        if (llm_le64(p) > INT64_MAX)
            return -1;
        *v = (int64_t)llm_le64(p);
        return 0;
    default:
        return -1;
    }
}

static double scalar_double(int t, const unsigned char *p)
{
    int64_t v;
    if (t == LLM_GGUF_T_FLOAT32)
        return bits_float(llm_le32(p));
    if (t == LLM_GGUF_T_FLOAT64) {
        uint64_t u = llm_le64(p);
        double d;
        memcpy(&d, &u, sizeof d);
        return d;
    }
    if (t == LLM_GGUF_T_UINT64)
        return (double)llm_le64(p);
    return scalar_int(t, p, &v) == 0 ? (double)v : 0.0;
}

static int too_big(const llm_gguf *g, const char *key, const unsigned char *p)
{
    return llm_fail(LLM_ERR_FORMAT, "'%s': key '%s': uint64 value %llu is too large",
                    g->head.name, llm_show(key, strlen(key)).s, (unsigned long long)llm_le64(p));
}

int llm_gguf_has(const llm_gguf *g, const char *key)
{
    return key && find_kv(g, key) != NULL;
}

int llm_gguf_get_int(const llm_gguf *g, const char *key, int64_t *v)
{
    const gkv *e;
    int rc = lookup(g, key, &e);
    if (rc)
        return rc;
    if (!is_int_type(e->type))
        return wrong_type(g, key, e, "an integer");
    int64_t x;
    if (scalar_int(e->type, g->buf + e->raw, &x))
        return too_big(g, key, g->buf + e->raw);
    *v = x;
    return LLM_OK;
}

int llm_gguf_get_float(const llm_gguf *g, const char *key, double *v)
{
    const gkv *e;
    int rc = lookup(g, key, &e);
    if (rc)
        return rc;
    if (!value_size(e->type) || e->type == LLM_GGUF_T_BOOL)
        return wrong_type(g, key, e, "a number");
    *v = scalar_double(e->type, g->buf + e->raw);
    return LLM_OK;
}

int llm_gguf_get_bool(const llm_gguf *g, const char *key, int *v)
{
    const gkv *e;
    int rc = lookup(g, key, &e);
    if (rc)
        return rc;
    if (e->type != LLM_GGUF_T_BOOL)
        return wrong_type(g, key, e, "a bool");
    *v = g->buf[e->raw];
    return LLM_OK;
}

int llm_gguf_get_str(const llm_gguf *g, const char *key, const char **s, size_t *len)
{
    const gkv *e;
    int rc = lookup(g, key, &e);
    if (rc)
        return rc;
    if (e->type != LLM_GGUF_T_STRING)
        return wrong_type(g, key, e, "a string");
    *s = astr(g, e->str);
    if (len)
        *len = e->len;
    return LLM_OK;
}

int llm_gguf_get_arr(const llm_gguf *g, const char *key, int *elem_type, size_t *count)
{
    const gkv *e;
    int rc = lookup(g, key, &e);
    if (rc)
        return rc;
    if (e->type != LLM_GGUF_T_ARRAY)
        return wrong_type(g, key, e, "an array");
    if (elem_type)
        *elem_type = e->elem_type;
    if (count)
        *count = (size_t)e->count;
    return LLM_OK;
}

/* The array `key` holding element i, of a type that `ok` accepts. */
static int arr_elem(const llm_gguf *g, const char *key, size_t i, int (*ok)(int),
                    const char *want, const gkv **out)
{
    const gkv *e;
    int rc = lookup(g, key, &e);
    if (rc)
        return rc;
    if (e->type != LLM_GGUF_T_ARRAY || !ok(e->elem_type))
        return wrong_type(g, key, e, want);
    if (i >= e->count)
        return llm_fail(LLM_ERR_RANGE, "'%s': key '%s': index %zu past the %llu elements",
                        g->head.name, llm_show(key, strlen(key)).s, i, (unsigned long long)e->count);
    *out = e;
    return LLM_OK;
}

static int ok_str(int t)
{
    return t == LLM_GGUF_T_STRING;
}

static int ok_num(int t)
{
    return value_size(t) && t != LLM_GGUF_T_BOOL;
}

int llm_gguf_arr_str(const llm_gguf *g, const char *key, size_t i, const char **s, size_t *len)
{
    const gkv *e;
    int rc = arr_elem(g, key, i, ok_str, "an array of string", &e);
    if (rc)
        return rc;
    size_t off = g->strs[e->str + i];
    *s = astr(g, off);
    if (len)
        *len = g->strs[e->str + i + 1] - off - 1;
    return LLM_OK;
}

int llm_gguf_arr_float(const llm_gguf *g, const char *key, size_t i, double *v)
{
    const gkv *e;
    int rc = arr_elem(g, key, i, ok_num, "an array of numbers", &e);
    if (rc)
        return rc;
    *v = scalar_double(e->elem_type, g->buf + e->raw + i * value_size(e->elem_type));
    return LLM_OK;
}

int llm_gguf_arr_int(const llm_gguf *g, const char *key, size_t i, int64_t *v)
{
    const gkv *e;
    int rc = arr_elem(g, key, i, is_int_type, "an array of integers", &e);
    if (rc)
        return rc;
    const unsigned char *p = g->buf + e->raw + i * value_size(e->elem_type);
    int64_t x;
    if (scalar_int(e->elem_type, p, &x))
        return too_big(g, key, p);
    *v = x;
    return LLM_OK;
}

size_t llm_gguf_kv_count(const llm_gguf *g)
{
    return g->nkv;
}

const char *llm_gguf_kv_key(const llm_gguf *g, size_t i)
{
    return i < g->nkv ? astr(g, g->kv[i].key) : NULL;
}

int llm_gguf_kv_type(const llm_gguf *g, size_t i)
{
    return i < g->nkv ? g->kv[i].type : -1;
}

/* ------------------------------------------------------------------------ */
/* Tensors                                                                  */

size_t llm_gguf_tensor_count(const llm_gguf *g)
{
    return g->nt;
}

const llm_gguf_tensor *llm_gguf_tensor_at(const llm_gguf *g, size_t i)
{
    return i < g->nt ? &g->t[i] : NULL;
}

static const char *tensor_name(const void *g, size_t i)
{
    return ((const llm_gguf *)g)->t[i].name;
}

const llm_gguf_tensor *llm_gguf_tensor_find(const llm_gguf *g, const char *name)
{
    size_t i = llm_find_name(name, g->t_sorted, g->nt, tensor_name, g);
    return i < g->nt ? &g->t[i] : NULL;
}

int llm_gguf_tensor_dequantize(const llm_gguf *g, const llm_gguf_tensor *t, float *dst, size_t n)
{
    llm_shown nm = llm_show(t->name, strlen(t->name));
    if (!llm_gguf_type_supported(t->type))
        return llm_fail(LLM_ERR_UNSUPPORTED, "'%s': tensor '%s' has type %s, which is not "
                        "supported", g->head.name, nm.s, llm_gguf_type_name(t->type));
    size_t bl = types[t->type].block;
    if (n > t->n_elements || n % bl)
        return llm_fail(LLM_ERR_INVALID, "'%s': tensor '%s': cannot dequantize %zu of its "
                        "%llu elements (blocks of %zu)", g->head.name, nm.s, n,
                        (unsigned long long)t->n_elements, bl);
    return llm_gguf_dequantize(t->type, t->data, n / bl * types[t->type].bytes, dst, n);
}

/* ======================================================================== */
/* Writer                                                                   */

typedef struct {
    char *key;
    int type;
    unsigned char *val;   /* the encoded value (after its type) */
    size_t len;
} wkv;

typedef struct {
    char *name;
    int type, n_dims;
    int64_t ne[LLM_GGUF_MAX_DIMS];
    const void *data;
    void *owned;          /* the copy, for llm_gguf_writer_tensor_copy() */
    size_t nbytes;
} wtensor;

struct llm_gguf_writer {
    wkv *kv;
    size_t nkv, kv_cap;
    wtensor *t;
    size_t nt, t_cap;
    uint32_t alignment;
};

int llm_gguf_writer_new(llm_gguf_writer **out)
{
    *out = calloc(1, sizeof **out);
    if (!*out)
        return llm_fail(LLM_ERR_NOMEM, "out of memory");
    (*out)->alignment = LLM_GGUF_DEFAULT_ALIGNMENT;
    return LLM_OK;
}

void llm_gguf_writer_free(llm_gguf_writer *w)
{
    if (!w)
        return;
    for (size_t i = 0; i < w->nkv; i++) {
        free(w->kv[i].key);
        free(w->kv[i].val);
    }
    for (size_t i = 0; i < w->nt; i++) {
        free(w->t[i].name);
        free(w->t[i].owned);
    }
    free(w->kv);
    free(w->t);
    free(w);
}

/* Keys, names and strings must read back in gguf-py, which decodes UTF-8. */
static int check_text(const char *what, const char *s, int allow_empty)
{
    if (!s)
        return llm_fail(LLM_ERR_INVALID, "%s is NULL", what);
    size_t n = strlen(s);
    if (!n && !allow_empty)
        return llm_fail(LLM_ERR_INVALID, "%s is empty", what);
    if (!llm_utf8_check(s, n, NULL))
        return llm_fail(LLM_ERR_INVALID, "%s '%s' is not valid UTF-8", what, llm_show(s, n).s);
    return LLM_OK;
}

/* Adds key with an encoded value of val_len bytes, which the caller fills. */
static int add_kv(llm_gguf_writer *w, const char *key, int type, size_t val_len,
                  unsigned char **val)
{
    int rc = check_text("key", key, 0);
    if (rc)
        return rc;
    for (size_t i = 0; i < w->nkv; i++)
        if (strcmp(w->kv[i].key, key) == 0)
            return llm_fail(LLM_ERR_INVALID, "duplicate key '%s'", llm_show(key, strlen(key)).s);
    if (strcmp(key, "general.alignment") == 0 && type != LLM_GGUF_T_UINT32)
        return llm_fail(LLM_ERR_INVALID, "general.alignment must be a uint32");
    if (grow((void **)&w->kv, &w->kv_cap, w->nkv + 1, sizeof *w->kv))
        return llm_fail(LLM_ERR_NOMEM, "out of memory");
    wkv *e = &w->kv[w->nkv];
    e->key = strdup(key);
    e->val = malloc(val_len ? val_len : 1);
    if (!e->key || !e->val) {
        free(e->key);
        free(e->val);
        return llm_fail(LLM_ERR_NOMEM, "out of memory");
    }
    e->type = type;
    e->len = val_len;
    *val = e->val;
    w->nkv++;
    return LLM_OK;
}

static unsigned char *put_str(unsigned char *p, const char *s, size_t n)
{
    llm_put_le64(p, n);
    memcpy(p + 8, s, n);
    return p + 8 + n;
}

int llm_gguf_writer_kv_str(llm_gguf_writer *w, const char *key, const char *s)
{
    int rc = check_text("string value", s, 1);
    if (rc)
        return rc;
    size_t n = strlen(s);
    unsigned char *p;
    if ((rc = add_kv(w, key, LLM_GGUF_T_STRING, 8 + n, &p)))
        return rc;
    put_str(p, s, n);
    return LLM_OK;
}

static int kv_fixed(llm_gguf_writer *w, const char *key, int type, uint64_t bits)
{
    unsigned char *p;
    size_t sz = value_size(type);
    int rc = add_kv(w, key, type, sz, &p);
    if (rc)
        return rc;
    for (size_t i = 0; i < sz; i++)
        p[i] = (unsigned char)(bits >> (8 * i));
    return LLM_OK;
}

int llm_gguf_writer_kv_u32(llm_gguf_writer *w, const char *key, uint32_t v)
{
    int align = key && strcmp(key, "general.alignment") == 0;
    if (align && (v == 0 || (v & (v - 1)) || v > LLM_GGUF_MAX_ALIGNMENT))
        return llm_fail(LLM_ERR_INVALID, "general.alignment %u is not a power of two up to %u",
                        v, LLM_GGUF_MAX_ALIGNMENT);
    int rc = kv_fixed(w, key, LLM_GGUF_T_UINT32, v);
    if (rc == LLM_OK && align)
        w->alignment = v;
    return rc;
}

int llm_gguf_writer_kv_i32(llm_gguf_writer *w, const char *key, int32_t v)
{
    return kv_fixed(w, key, LLM_GGUF_T_INT32, (uint32_t)v);
}

int llm_gguf_writer_kv_u64(llm_gguf_writer *w, const char *key, uint64_t v)
{
    return kv_fixed(w, key, LLM_GGUF_T_UINT64, v);
}

int llm_gguf_writer_kv_f32(llm_gguf_writer *w, const char *key, float v)
{
    return kv_fixed(w, key, LLM_GGUF_T_FLOAT32, float_bits(v));
}

int llm_gguf_writer_kv_bool(llm_gguf_writer *w, const char *key, int v)
{
    return kv_fixed(w, key, LLM_GGUF_T_BOOL, v != 0);
}

/* An array header (element type, count) and room for `body` bytes. */
static int kv_arr(llm_gguf_writer *w, const char *key, int et, size_t n, size_t body,
                  unsigned char **p)
{
    size_t len;
    if (llm_add_size(body, 12, &len))
        return llm_fail(LLM_ERR_NOMEM, "array '%s' too large", key ? key : "(null)");
    int rc = add_kv(w, key, LLM_GGUF_T_ARRAY, len, p);
    if (rc)
        return rc;
    llm_put_le32(*p, (uint32_t)et);
    llm_put_le64(*p + 4, n);
    *p += 12;
    return LLM_OK;
}

int llm_gguf_writer_kv_arr_str(llm_gguf_writer *w, const char *key, const char *const *s,
                               size_t n)
{
    size_t body = 0;
    if (n && !s)
        return llm_fail(LLM_ERR_INVALID, "array '%s': no strings", key ? key : "(null)");
    for (size_t i = 0; i < n; i++) {
        int rc = check_text("string value", s[i], 1);
        if (rc)
            return rc;
        if (llm_add_size(body, strlen(s[i]), &body) || llm_add_size(body, 8, &body))
            return llm_fail(LLM_ERR_NOMEM, "array '%s' too large", key ? key : "(null)");
    }
    unsigned char *p;
    int rc = kv_arr(w, key, LLM_GGUF_T_STRING, n, body, &p);
    for (size_t i = 0; rc == LLM_OK && i < n; i++)
        p = put_str(p, s[i], strlen(s[i]));
    return rc;
}

/* An array of n four-byte values (float32 or int32), each stored as its bits. */
static int kv_arr4(llm_gguf_writer *w, const char *key, int et, const void *v, size_t n)
{
    size_t body;
    if (n && !v)
        return llm_fail(LLM_ERR_INVALID, "array '%s': no values", key ? key : "(null)");
    if (llm_mul_size(n, 4, &body))
        return llm_fail(LLM_ERR_NOMEM, "array '%s' too large", key ? key : "(null)");
    unsigned char *p;
    int rc = kv_arr(w, key, et, n, body, &p);
    for (size_t i = 0; rc == LLM_OK && i < n; i++) {
        uint32_t u;
        memcpy(&u, (const unsigned char *)v + 4 * i, 4);
        llm_put_le32(p + 4 * i, u);
    }
    return rc;
}

int llm_gguf_writer_kv_arr_f32(llm_gguf_writer *w, const char *key, const float *v, size_t n)
{
    return kv_arr4(w, key, LLM_GGUF_T_FLOAT32, v, n);
}

int llm_gguf_writer_kv_arr_i32(llm_gguf_writer *w, const char *key, const int32_t *v, size_t n)
{
    return kv_arr4(w, key, LLM_GGUF_T_INT32, v, n);
}

static int add_tensor(llm_gguf_writer *w, const char *name, int type, int n_dims,
                      const int64_t *ne, const void *data, size_t nbytes, int copy)
{
    int rc = check_text("tensor name", name, 0);
    if (rc)
        return rc;
    llm_shown nm = llm_show(name, strlen(name));
    for (size_t i = 0; i < w->nt; i++)
        if (strcmp(w->t[i].name, name) == 0)
            return llm_fail(LLM_ERR_INVALID, "duplicate tensor name '%s'", nm.s);
    if (!type_known(type))
        return llm_fail(LLM_ERR_INVALID, "tensor '%s': unknown %s", nm.s,
                        llm_gguf_type_name(type));
    if (n_dims < 1 || n_dims > LLM_GGUF_MAX_DIMS || !ne)
        return llm_fail(LLM_ERR_INVALID, "tensor '%s': %d dimensions (1 to %d allowed)", nm.s,
                        n_dims, LLM_GGUF_MAX_DIMS);
    uint64_t elems = 1;
    for (int d = 0; d < n_dims; d++)
        if (ne[d] < 1 || __builtin_mul_overflow(elems, (uint64_t)ne[d], &elems) ||
            elems > INT64_MAX)
            return llm_fail(LLM_ERR_INVALID, "tensor '%s': ne[%d] = %lld is invalid or too "
                            "large", nm.s, d, (long long)ne[d]);
    if ((uint64_t)ne[0] % types[type].block)
        return llm_fail(LLM_ERR_INVALID, "tensor '%s': ne[0] = %lld is not a multiple of the "
                        "%s block size %u", nm.s, (long long)ne[0], types[type].name,
                        (unsigned)types[type].block);
    size_t want;
    if ((rc = llm_gguf_type_nbytes(type, elems, &want)))
        return rc;
    if (want != nbytes || !data)
        return llm_fail(LLM_ERR_INVALID, "tensor '%s': %s of %llu elements takes %zu bytes, "
                        "not %zu", nm.s, types[type].name, (unsigned long long)elems, want,
                        data ? nbytes : 0);
    if (grow((void **)&w->t, &w->t_cap, w->nt + 1, sizeof *w->t))
        return llm_fail(LLM_ERR_NOMEM, "out of memory");
    wtensor *e = &w->t[w->nt];
    memset(e, 0, sizeof *e);
    e->name = strdup(name);
    if (copy && (e->owned = malloc(nbytes)))
        memcpy(e->owned, data, nbytes);
    if (!e->name || (copy && !e->owned)) {
        free(e->name);
        free(e->owned);
        return llm_fail(LLM_ERR_NOMEM, "out of memory");
    }
    e->type = type;
    e->n_dims = n_dims;
    for (int d = 0; d < LLM_GGUF_MAX_DIMS; d++)
        e->ne[d] = d < n_dims ? ne[d] : 1;
    e->data = copy ? e->owned : data;
    e->nbytes = nbytes;
    w->nt++;
    return LLM_OK;
}

int llm_gguf_writer_tensor(llm_gguf_writer *w, const char *name, int type, int n_dims,
                           const int64_t *ne, const void *data, size_t nbytes)
{
    return add_tensor(w, name, type, n_dims, ne, data, nbytes, 0);
}

int llm_gguf_writer_tensor_copy(llm_gguf_writer *w, const char *name, int type, int n_dims,
                                const int64_t *ne, const void *data, size_t nbytes)
{
    return add_tensor(w, name, type, n_dims, ne, data, nbytes, 1);
}

static size_t pad_to(size_t n, size_t a)
{
    return (a - n % a) % a;
}

#define PUT(p, n)                                                  \
    do {                                                           \
        if (rc == LLM_OK)                                          \
            rc = llm_buf_append(h, p, n);                          \
    } while (0)

/* Everything before the tensor data, padded to the alignment. */
static int build_header(const llm_gguf_writer *w, llm_buf *h)
{
    int rc = LLM_OK;
    unsigned char b[8];
    PUT(GGUF_MAGIC, 4);
    llm_put_le32(b, 3);
    PUT(b, 4);
    llm_put_le64(b, w->nt);
    PUT(b, 8);
    llm_put_le64(b, w->nkv);
    PUT(b, 8);
    for (size_t i = 0; i < w->nkv; i++) {
        const wkv *e = &w->kv[i];
        llm_put_le64(b, strlen(e->key));
        PUT(b, 8);
        PUT(e->key, strlen(e->key));
        llm_put_le32(b, (uint32_t)e->type);
        PUT(b, 4);
        PUT(e->val, e->len);
    }
    uint64_t off = 0;
    for (size_t i = 0; i < w->nt; i++) {
        const wtensor *t = &w->t[i];
        llm_put_le64(b, strlen(t->name));
        PUT(b, 8);
        PUT(t->name, strlen(t->name));
        llm_put_le32(b, (uint32_t)t->n_dims);
        PUT(b, 4);
        for (int d = 0; d < t->n_dims; d++) {
            llm_put_le64(b, (uint64_t)t->ne[d]);
            PUT(b, 8);
        }
        llm_put_le32(b, (uint32_t)t->type);
        PUT(b, 4);
        llm_put_le64(b, off);
        PUT(b, 8);
        if (__builtin_add_overflow(off, (uint64_t)t->nbytes + pad_to(t->nbytes, w->alignment),
                                   &off))
            rc = llm_fail(LLM_ERR_INVALID, "tensors too large in total");
    }
    static const unsigned char zeros[64];
    for (size_t p = rc ? 0 : pad_to(h->len, w->alignment); p; ) {
        size_t k = p < sizeof zeros ? p : sizeof zeros;
        PUT(zeros, k);
        p -= k;
    }
    if (rc == LLM_ERR_NOMEM)
        rc = llm_fail(LLM_ERR_NOMEM, "out of memory");
    return rc;
}

#undef PUT

int llm_gguf_writer_bytes(llm_gguf_writer *w, void **out, size_t *len)
{
    *out = NULL;
    *len = 0;
    llm_buf h = {0};
    int rc = build_header(w, &h);
    size_t total = h.len;
    for (size_t i = 0; rc == LLM_OK && i < w->nt; i++)
        if (llm_add_size(total, w->t[i].nbytes + pad_to(w->t[i].nbytes, w->alignment), &total))
            rc = llm_fail(LLM_ERR_NOMEM, "file too large");
    unsigned char *p = rc ? NULL : calloc(total ? total : 1, 1);
    if (rc == LLM_OK && !p)
        rc = llm_fail(LLM_ERR_NOMEM, "out of memory");
    if (rc == LLM_OK) {
        memcpy(p, h.data, h.len);
        size_t at = h.len;
        for (size_t i = 0; i < w->nt; i++) {
            memcpy(p + at, w->t[i].data, w->t[i].nbytes);
            at += w->t[i].nbytes + pad_to(w->t[i].nbytes, w->alignment);
        }
        *out = p;
        *len = total;
    }
    llm_buf_free(&h);
    return rc;
}

int llm_gguf_writer_write(llm_gguf_writer *w, const char *path)
{
    if (!path)
        return llm_fail(LLM_ERR_INVALID, "no output path");
    llm_buf h = {0};
    int rc = build_header(w, &h);
    if (rc) {
        llm_buf_free(&h);
        return rc;
    }
    char *tmp = NULL;
    int fd = llm_create_temp(path, &tmp);
    if (fd < 0) {
        llm_buf_free(&h);
        return fd;
    }
    static const unsigned char zeros[LLM_GGUF_MAX_ALIGNMENT > 4096 ? 4096 : 1];
    int ok = llm_write_all(fd, h.data, h.len) == 0;
    for (size_t i = 0; ok && i < w->nt; i++) {
        ok = llm_write_all(fd, w->t[i].data, w->t[i].nbytes) == 0;
        for (size_t p = pad_to(w->t[i].nbytes, w->alignment); ok && p; ) {
            size_t k = p < sizeof zeros ? p : sizeof zeros;
            ok = llm_write_all(fd, zeros, k) == 0;
            p -= k;
        }
    }
    rc = llm_finish_temp(fd, tmp, path, ok);
    llm_buf_free(&h);
    return rc;
}
