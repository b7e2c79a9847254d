/* gguf.h: reading (mmap, full validation), dequantizing, quantizing and
 * atomic writing of GGUF files (llama.cpp's model format, versions 2 and 3),
 * for importing and exporting models. Internal to the library; not API. */
#ifndef LLM_GGUF_H
#define LLM_GGUF_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* Tensor types, numbered as ggml_type. The first eleven are supported
 * (dequantized); the others are named in messages and their sizes known, so
 * that a file holding them can still be opened and listed. */
enum {
    LLM_GGUF_F32 = 0, LLM_GGUF_F16 = 1, LLM_GGUF_Q4_0 = 2, LLM_GGUF_Q4_1 = 3,
    LLM_GGUF_Q5_0 = 6, LLM_GGUF_Q5_1 = 7, LLM_GGUF_Q8_0 = 8, LLM_GGUF_Q4_K = 12,
    LLM_GGUF_Q5_K = 13, LLM_GGUF_Q6_K = 14, LLM_GGUF_BF16 = 30,
    LLM_GGUF_Q8_1 = 9, LLM_GGUF_Q2_K = 10, LLM_GGUF_Q3_K = 11, LLM_GGUF_Q8_K = 15,
    LLM_GGUF_IQ2_XXS = 16, LLM_GGUF_IQ2_XS = 17, LLM_GGUF_IQ3_XXS = 18,
    LLM_GGUF_IQ1_S = 19, LLM_GGUF_IQ4_NL = 20, LLM_GGUF_IQ3_S = 21, LLM_GGUF_IQ2_S = 22,
    LLM_GGUF_IQ4_XS = 23, LLM_GGUF_I8 = 24, LLM_GGUF_I16 = 25, LLM_GGUF_I32 = 26,
    LLM_GGUF_I64 = 27, LLM_GGUF_F64 = 28, LLM_GGUF_IQ1_M = 29, LLM_GGUF_TQ1_0 = 34,
    LLM_GGUF_TQ2_0 = 35, LLM_GGUF_MXFP4 = 39, LLM_GGUF_NVFP4 = 40, LLM_GGUF_Q1_0 = 41
};

/* Metadata value types. */
enum {
    LLM_GGUF_T_UINT8 = 0, LLM_GGUF_T_INT8 = 1, LLM_GGUF_T_UINT16 = 2, LLM_GGUF_T_INT16 = 3,
    LLM_GGUF_T_UINT32 = 4, LLM_GGUF_T_INT32 = 5, LLM_GGUF_T_FLOAT32 = 6, LLM_GGUF_T_BOOL = 7,
    LLM_GGUF_T_STRING = 8, LLM_GGUF_T_ARRAY = 9, LLM_GGUF_T_UINT64 = 10, LLM_GGUF_T_INT64 = 11,
    LLM_GGUF_T_FLOAT64 = 12
};

#define LLM_GGUF_MAX_DIMS 4
#define LLM_GGUF_DEFAULT_ALIGNMENT 32
#define LLM_GGUF_MAX_ALIGNMENT (1u << 20)   /* larger general.alignment refused */

typedef struct llm_gguf llm_gguf;

typedef struct {
    const char *name;          /* NUL-terminated copy */
    int type;                  /* LLM_GGUF_*; may be a known but unsupported one */
    int n_dims;                /* 1..4 */
    int64_t ne[4];             /* ne[0] fastest-varying: a torch (out, in) weight
                                * has ne = {in, out}; unused dimensions are 1 */
    uint64_t n_elements;       /* product of ne, at most INT64_MAX */
    const void *data;          /* into the mapping: in bounds, at an aligned offset */
    size_t nbytes;             /* n_elements / block * block bytes */
    uint64_t offset;           /* of data, from the start of the data section */
} llm_gguf_tensor;

/* ------------------------------------------------------------------------ */
/* Reader. Messages read "'FILE': what is wrong", FILE the path or name given.
 * Every size, count and offset is checked against the file before use, so a
 * hostile file is refused (LLM_ERR_FORMAT, or LLM_ERR_UNSUPPORTED for an
 * unknown version or tensor type) and never read out of bounds; allocations
 * stay within a small multiple of the file size. Nested arrays, keys and
 * names holding a NUL, duplicate keys or tensor names, overlapping tensors
 * and bool values other than 0/1 are refused. */

/*! llm_gguf_open() : maps `path` read-only and validates it.
 *  @return LLM_OK, LLM_ERR_IO, LLM_ERR_FORMAT, LLM_ERR_UNSUPPORTED or
 *  LLM_ERR_NOMEM; *out is NULL on failure. */
int  llm_gguf_open(const char *path, llm_gguf **out);
/*! llm_gguf_open_mem() : the same over buf[0..len), which is not copied and
 *  must outlive the reader. `name` (NULL: "<memory>") is used in messages. */
int  llm_gguf_open_mem(const void *buf, size_t len, const char *name, llm_gguf **out);
void llm_gguf_close(llm_gguf *g);   /* accepts NULL */
/*! llm_gguf_is_gguf() : 1 when buf starts with the magic "GGUF", else 0. */
int  llm_gguf_is_gguf(const void *buf, size_t len);
uint32_t llm_gguf_version(const llm_gguf *g);
/*! llm_gguf_alignment() : general.alignment, or 32 when absent. */
uint32_t llm_gguf_alignment(const llm_gguf *g);
/*! llm_gguf_name() : the path or name given at open. */
const char *llm_gguf_name(const llm_gguf *g);

/* Metadata. Every getter returns LLM_OK; LLM_ERR_RANGE with "'FILE': no key
 * 'K'" when the key is absent (or "index I past the N elements" for arrays);
 * LLM_ERR_FORMAT with "'FILE': key 'K' is TYPE, not WANTED" when of another
 * type. Outputs are written only on LLM_OK. */
int llm_gguf_has(const llm_gguf *g, const char *key);   /* 1 or 0 */
/*! llm_gguf_get_int() : any integer type, or bool (0/1); a uint64 above
 *  INT64_MAX is LLM_ERR_FORMAT. */
int llm_gguf_get_int(const llm_gguf *g, const char *key, int64_t *v);
/*! llm_gguf_get_float() : float32, float64 or any integer type. */
int llm_gguf_get_float(const llm_gguf *g, const char *key, double *v);
int llm_gguf_get_bool(const llm_gguf *g, const char *key, int *v);
/*! llm_gguf_get_str() : *s NUL-terminated (a copy owned by g), *len without
 *  the NUL (a string may hold NUL bytes); len may be NULL. */
int llm_gguf_get_str(const llm_gguf *g, const char *key, const char **s, size_t *len);
/*! llm_gguf_get_arr() : an array's element type (LLM_GGUF_T_*) and count;
 *  either output may be NULL. */
int llm_gguf_get_arr(const llm_gguf *g, const char *key, int *elem_type, size_t *count);
/*! llm_gguf_arr_str() : element i of an array of strings, as get_str. */
int llm_gguf_arr_str(const llm_gguf *g, const char *key, size_t i, const char **s, size_t *len);
/*! llm_gguf_arr_float() : element i of an array of any numeric type. */
int llm_gguf_arr_float(const llm_gguf *g, const char *key, size_t i, double *v);
/*! llm_gguf_arr_int() : element i of an array of an integer type or bool. */
int llm_gguf_arr_int(const llm_gguf *g, const char *key, size_t i, int64_t *v);
/* Listing, in file order. Out of range: NULL, -1. */
size_t      llm_gguf_kv_count(const llm_gguf *g);
const char *llm_gguf_kv_key(const llm_gguf *g, size_t i);
int         llm_gguf_kv_type(const llm_gguf *g, size_t i);
/*! llm_gguf_value_type_name() : "uint32", "string", ...; "type N" for unknown
 *  (in a static buffer per thread). */
const char *llm_gguf_value_type_name(int t);

size_t llm_gguf_tensor_count(const llm_gguf *g);
/*! llm_gguf_tensor_at() : in file order; NULL when i is out of range. */
const llm_gguf_tensor *llm_gguf_tensor_at(const llm_gguf *g, size_t i);
/*! llm_gguf_tensor_find() : by name; NULL when absent. */
const llm_gguf_tensor *llm_gguf_tensor_find(const llm_gguf *g, const char *name);
/*! llm_gguf_tensor_dequantize() : the first n elements of t (n a multiple
 *  of its block size, at most t->n_elements) into dst, as
 *  llm_gguf_dequantize(); messages name the file and the tensor ("'F': tensor
 *  'T' has type IQ2_XXS, which is not supported").
 *  @return LLM_OK, LLM_ERR_UNSUPPORTED or LLM_ERR_INVALID. */
int llm_gguf_tensor_dequantize(const llm_gguf *g, const llm_gguf_tensor *t, float *dst, size_t n);

/* ------------------------------------------------------------------------ */
/* Types and (de)quantization. */

/*! llm_gguf_type_name() : "Q4_K", ...; "type 99" for unknown (in a static
 *  buffer per thread). */
const char *llm_gguf_type_name(int type);
/*! llm_gguf_type_supported() : 1 for the eleven types that dequantize. */
int    llm_gguf_type_supported(int type);
/*! llm_gguf_type_block() / _block_bytes() : elements per block and bytes per
 *  block of any known type (supported or not); 0 when unknown. */
size_t llm_gguf_type_block(int type);
size_t llm_gguf_type_block_bytes(int type);
/*! llm_gguf_dequantize() : n elements (a multiple of the type's block size)
 *  of `type` from src (exactly the nbytes those elements take) into dst,
 *  bit-exact with gguf-py's gguf.quants.dequantize (numpy float32 arithmetic,
 *  no fused multiply-add; F16 NaNs keep their payload unquieted, as numpy).
 *  @return LLM_OK, LLM_ERR_UNSUPPORTED (type) or LLM_ERR_INVALID (sizes). */
int llm_gguf_dequantize(int type, const void *src, size_t nbytes, float *dst, size_t n);
/*! llm_gguf_quantize() : n floats into dst[0..cap) as F32 (copy), F16 (round
 *  to nearest even, as numpy astype(float16)), BF16 or Q8_0, bit-exact with
 *  gguf.quants.quantize. Q8_0 refuses NaN and infinities (LLM_ERR_NUMERIC).
 *  @return LLM_OK, LLM_ERR_UNSUPPORTED, LLM_ERR_INVALID (n not a multiple of
 *  the block, cap too small) or LLM_ERR_NUMERIC. */
int llm_gguf_quantize(int type, const float *src, size_t n, void *dst, size_t cap);
/*! llm_gguf_type_nbytes() : bytes that n elements of `type` take into *nbytes.
 *  @return LLM_OK, or LLM_ERR_INVALID (unknown type, n not a multiple of the
 *  block size, overflow). */
int llm_gguf_type_nbytes(int type, uint64_t n, size_t *nbytes);

/* ------------------------------------------------------------------------ */
/* Writer: GGUF v3, key/values and tensor infos in the order added, each
 * tensor's data at an offset aligned to general.alignment (set with
 * llm_gguf_writer_kv_u32(), else 32) and padded to it, as gguf-py writes.
 * Arguments are checked when added (LLM_ERR_INVALID: duplicate key or name,
 * bad shape or size, general.alignment not a power of two up to 2^20). */
typedef struct llm_gguf_writer llm_gguf_writer;

int  llm_gguf_writer_new(llm_gguf_writer **out);
void llm_gguf_writer_free(llm_gguf_writer *w);   /* accepts NULL */
/* Keys and strings are copied. */
int  llm_gguf_writer_kv_str(llm_gguf_writer *w, const char *key, const char *s);
int  llm_gguf_writer_kv_u32(llm_gguf_writer *w, const char *key, uint32_t v);
int  llm_gguf_writer_kv_i32(llm_gguf_writer *w, const char *key, int32_t v);
int  llm_gguf_writer_kv_u64(llm_gguf_writer *w, const char *key, uint64_t v);
int  llm_gguf_writer_kv_f32(llm_gguf_writer *w, const char *key, float v);
int  llm_gguf_writer_kv_bool(llm_gguf_writer *w, const char *key, int v);
int  llm_gguf_writer_kv_arr_str(llm_gguf_writer *w, const char *key, const char *const *s,
                                size_t n);
int  llm_gguf_writer_kv_arr_f32(llm_gguf_writer *w, const char *key, const float *v, size_t n);
int  llm_gguf_writer_kv_arr_i32(llm_gguf_writer *w, const char *key, const int32_t *v,
                                size_t n);
/*! llm_gguf_writer_tensor() : adds a tensor of `type` and shape ne[0..n_dims)
 *  (GGUF order, ne[0] fastest); nbytes must be what that shape takes. The
 *  data is NOT copied: it must stay valid until llm_gguf_writer_write()
 *  returns (llm_gguf_writer_tensor_copy() copies it). */
int  llm_gguf_writer_tensor(llm_gguf_writer *w, const char *name, int type, int n_dims,
                            const int64_t *ne, const void *data, size_t nbytes);
int  llm_gguf_writer_tensor_copy(llm_gguf_writer *w, const char *name, int type, int n_dims,
                                 const int64_t *ne, const void *data, size_t nbytes);
/*! llm_gguf_writer_write() : writes the file to a temporary name in the same
 *  directory, syncs it and renames it to `path`, so that `path` is either
 *  the old file or the complete new one. @return LLM_OK, LLM_ERR_IO,
 *  LLM_ERR_NOMEM. */
int  llm_gguf_writer_write(llm_gguf_writer *w, const char *path);
/*! llm_gguf_writer_bytes() : the whole file in memory, in *out (malloc'd,
 *  freed by the caller with free()) and *len, for tests and fuzz seeds.
 *  @return LLM_OK, LLM_ERR_INVALID or LLM_ERR_NOMEM. */
int  llm_gguf_writer_bytes(llm_gguf_writer *w, void **out, size_t *len);

#ifdef __cplusplus
}
#endif
#endif
