/* fuzz_safetensors.c: the safetensors reader on arbitrary bytes. An accepted
 * file must keep every promise of the API (tensor bytes inside the input and
 * sized by dtype and shape, lookups consistent, no overlaps); the same bytes
 * parsed as plain JSON must re-escape and parse back to the same strings. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "internal.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static volatile unsigned sink;

static void check_tensors(const llm_st *f, const uint8_t *data, size_t size)
{
    size_t n = llm_st_count(f);
    unsigned sum = 0;
    for (size_t i = 0; i < n; i++) {
        const llm_st_tensor *t = llm_st_at(f, i);
        if (!t || !t->name || (unsigned)t->dtype >= LLM_DT_COUNT || t->ndim < 0 ||
            t->ndim > LLM_ST_MAX_DIMS)
            abort();
        size_t want = llm_dtype_size(t->dtype);
        for (int d = 0; d < t->ndim; d++) {
            if (t->shape[d] < 0)
                abort();
            if (__builtin_mul_overflow(want, (size_t)t->shape[d], &want))
                want = 0;   /* only possible when a later dimension is 0 */
        }
        if (want != t->nbytes)
            abort();
        const uint8_t *p = t->data;
        if (p < data + 8 || (size_t)(p - data) > size || t->nbytes > size - (size_t)(p - data))
            abort();
        for (size_t k = 0; k < t->nbytes; k++)
            sum += p[k];
        if (llm_st_find(f, t->name) != t)
            abort();
        /* No two tensors share a byte (checked pairwise on small files). */
        for (size_t j = 0; n <= 64 && j < i; j++) {
            const llm_st_tensor *u = llm_st_at(f, j);
            const uint8_t *q = u->data;
            if (t->nbytes && u->nbytes && p < q + u->nbytes && q < p + t->nbytes)
                abort();
        }
    }
    if (llm_st_at(f, n) != NULL)
        abort();
    for (size_t i = 0; i < llm_st_meta_count(f); i++) {
        const char *k, *v;
        llm_st_meta_at(f, i, &k, &v);
        if (!k || !v || llm_st_meta(f, k) != v)
            abort();
        sum += (unsigned char)v[0] + (unsigned)strlen(v);
    }
    sink = sum;
}

/* Every string and key re-escaped parses back to the same bytes. */
static void check_strings(const llm_json_node *n)
{
    for (; n; n = n->next) {
        const char *s[2] = {n->key, n->type == LLM_JSON_STRING ? n->str : NULL};
        size_t len[2] = {n->key_len, n->len};
        for (int i = 0; i < 2; i++) {
            if (!s[i])
                continue;
            llm_buf b = {0};
            llm_json *j = NULL;
            if (llm_json_put_string(&b, s[i], len[i]) != LLM_OK ||
                llm_json_parse(b.data, b.len, "re", 0, &j) != LLM_OK)
                abort();
            const llm_json_node *r = llm_json_root(j);
            if (r->type != LLM_JSON_STRING || r->len != len[i] || memcmp(r->str, s[i], len[i]))
                abort();
            llm_json_free(j);
            llm_buf_free(&b);
        }
        check_strings(n->child);
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    llm_st *f = NULL;
    int rc = llm_st_open_mem(data, size, "fuzz.st", &f);
    if (rc == LLM_OK) {
        check_tensors(f, data, size);
    } else if (f != NULL || llm_errmsg()[0] == '\0' ||
               (rc != LLM_ERR_FORMAT && rc != LLM_ERR_NOMEM)) {
        abort();
    }
    llm_st_close(f);

    /* The header alone (or the whole input) as a JSON document. */
    size_t off = 0, len = size;
    if (size >= 8) {
        uint64_t h = llm_le64(data);
        if (h <= size - 8) {
            off = 8;
            len = (size_t)h;
        }
    }
    llm_json *j = NULL;
    if (llm_json_parse((const char *)data + off, len, "fuzz.json", off, &j) == LLM_OK)
        check_strings(llm_json_root(j));
    llm_json_free(j);
    return 0;
}
