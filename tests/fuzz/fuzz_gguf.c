/* fuzz_gguf.c: the GGUF reader on arbitrary bytes. An accepted file must keep
 * every promise of lib/format/gguf.h: each key readable through the getter of its
 * type, tensor bytes inside the input and sized by type and shape, no two
 * tensors sharing a byte, lookups consistent; the first blocks of every
 * supported tensor dequantize. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "format/gguf.h"
#include "internal.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static volatile unsigned sink;

static void walk_kv(const llm_gguf *g)
{
    unsigned sum = 0;
    for (size_t i = 0; i < llm_gguf_kv_count(g); i++) {
        const char *k = llm_gguf_kv_key(g, i), *s;
        int t = llm_gguf_kv_type(g, i), et, b;
        size_t len, n;
        int64_t v;
        double d;
        if (!k || !llm_gguf_has(g, k) || t < 0 || t > LLM_GGUF_T_FLOAT64)
            abort();
        switch (t) {
        case LLM_GGUF_T_STRING:
            if (llm_gguf_get_str(g, k, &s, &len) != LLM_OK || s[len] != '\0')
                abort();
            sum += len;
            break;
        case LLM_GGUF_T_ARRAY:
            if (llm_gguf_get_arr(g, k, &et, &n) != LLM_OK)
                abort();
            for (size_t j = 0; j < n && j < 64; j++) {
                if (et == LLM_GGUF_T_STRING) {
                    if (llm_gguf_arr_str(g, k, j, &s, &len) != LLM_OK || s[len] != '\0')
                        abort();
                    sum += len;
                } else if (et != LLM_GGUF_T_BOOL &&
                           llm_gguf_arr_float(g, k, j, &d) != LLM_OK) {
                    abort();
                } else if (et != LLM_GGUF_T_FLOAT32 && et != LLM_GGUF_T_FLOAT64) {
                    int rc = llm_gguf_arr_int(g, k, j, &v);
                    if (rc != LLM_OK && !(et == LLM_GGUF_T_UINT64 && rc == LLM_ERR_FORMAT))
                        abort();
                }
            }
            if (llm_gguf_arr_int(g, k, n, &v) == LLM_OK)
                abort();
            break;
        case LLM_GGUF_T_BOOL:
            if (llm_gguf_get_bool(g, k, &b) != LLM_OK || (b != 0 && b != 1))
                abort();
            break;
        case LLM_GGUF_T_FLOAT32: case LLM_GGUF_T_FLOAT64:
            if (llm_gguf_get_float(g, k, &d) != LLM_OK || llm_gguf_get_int(g, k, &v) != LLM_ERR_FORMAT)
                abort();
            break;
        default: {
            int rc = llm_gguf_get_int(g, k, &v);
            if (llm_gguf_get_float(g, k, &d) != LLM_OK ||
                (rc != LLM_OK && !(t == LLM_GGUF_T_UINT64 && rc == LLM_ERR_FORMAT)))
                abort();
            if (llm_gguf_get_str(g, k, &s, &len) != LLM_ERR_FORMAT)
                abort();
        }
        }
    }
    if (llm_gguf_kv_key(g, llm_gguf_kv_count(g)) != NULL)
        abort();
    sink = sum;
}

static void walk_tensors(const llm_gguf *g, const uint8_t *data, size_t size)
{
    size_t n = llm_gguf_tensor_count(g);
    float out[512];
    for (size_t i = 0; i < n; i++) {
        const llm_gguf_tensor *t = llm_gguf_tensor_at(g, i);
        if (!t || !t->name || t->n_dims < 1 || t->n_dims > 4 || llm_gguf_tensor_find(g, t->name) != t)
            abort();
        uint64_t elems = 1;
        for (int d = 0; d < 4; d++) {
            if (t->ne[d] < 1 || (d >= t->n_dims && t->ne[d] != 1))
                abort();
            elems *= (uint64_t)t->ne[d];
        }
        size_t nbytes;
        if (elems != t->n_elements || llm_gguf_type_nbytes(t->type, elems, &nbytes) != LLM_OK ||
            nbytes != t->nbytes)
            abort();
        const uint8_t *p = t->data;
        if (p < data || (size_t)(p - data) > size || t->nbytes > size - (size_t)(p - data) ||
            t->offset % llm_gguf_alignment(g))
            abort();
        for (size_t j = 0; n <= 64 && j < i; j++) {
            const llm_gguf_tensor *u = llm_gguf_tensor_at(g, j);
            const uint8_t *q = u->data;
            if (p < q + u->nbytes && q < p + t->nbytes)
                abort();
        }
        size_t bl = llm_gguf_type_block(t->type);
        size_t k = bl > 256 ? bl : 512 / bl * bl;
        if (k > t->n_elements)
            k = (size_t)t->n_elements;
        int rc = llm_gguf_tensor_dequantize(g, t, out, k);
        if (rc != (llm_gguf_type_supported(t->type) ? LLM_OK : LLM_ERR_UNSUPPORTED))
            abort();
    }
    if (llm_gguf_tensor_at(g, n) != NULL)
        abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    llm_gguf *g = NULL;
    int rc = llm_gguf_open_mem(data, size, "fuzz.gguf", &g);
    if (rc == LLM_OK) {
        walk_kv(g);
        walk_tensors(g, data, size);
    } else if (g != NULL || !strstr(llm_errmsg(), "'fuzz.gguf'") ||
               (rc != LLM_ERR_FORMAT && rc != LLM_ERR_UNSUPPORTED && rc != LLM_ERR_NOMEM)) {
        abort();
    }
    llm_gguf_close(g);
    /* Every supported type on the raw bytes, as far as they go. */
    if (size >= 1) {
        int type = data[0] % 31;
        float out[512];
        size_t bl = llm_gguf_type_block(type), bb = llm_gguf_type_block_bytes(type);
        if (llm_gguf_type_supported(type) && bl <= 256) {
            size_t nb = (size - 1) / bb;
            if (nb > 512 / bl)
                nb = 512 / bl;
            if (llm_gguf_dequantize(type, data + 1, nb * bb, out, nb * bl) != LLM_OK)
                abort();
        }
    }
    return 0;
}
