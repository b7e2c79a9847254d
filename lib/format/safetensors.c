/* safetensors.c: reading (mmap, full validation) and atomic writing of
 * safetensors files, the format of model files and checkpoints. */
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "format.h"
#include "internal.h"

/* The reference implementation refuses larger headers; so do we, so that a
 * corrupt length cannot make us parse (and allocate for) gigabytes. */
#define ST_MAX_HEADER 100000000u

static const struct {
    const char *name;
    size_t size;
} dtypes[LLM_DT_COUNT] = {
    [LLM_DT_BOOL] = {"BOOL", 1}, [LLM_DT_U8] = {"U8", 1},
    [LLM_DT_I8] = {"I8", 1},     [LLM_DT_I16] = {"I16", 2},
    [LLM_DT_U16] = {"U16", 2},   [LLM_DT_F16] = {"F16", 2},
    [LLM_DT_BF16] = {"BF16", 2}, [LLM_DT_I32] = {"I32", 4},
    [LLM_DT_U32] = {"U32", 4},   [LLM_DT_F32] = {"F32", 4},
    [LLM_DT_F64] = {"F64", 8},   [LLM_DT_I64] = {"I64", 8},
    [LLM_DT_U64] = {"U64", 8},
};

const char *llm_dtype_name(llm_dtype t)
{
    return (unsigned)t < LLM_DT_COUNT ? dtypes[t].name : "?";
}

size_t llm_dtype_size(llm_dtype t)
{
    return (unsigned)t < LLM_DT_COUNT ? dtypes[t].size : 0;
}

/* ======================================================================== */
/* Reader                                                                   */

typedef struct {
    const char *key, *val;
} st_meta;

struct llm_st {
    llm_reader head;           /* name (for messages), owned mapping */
    llm_json *json;            /* names and metadata point into it */
    llm_st_tensor *t;          /* file (header) order */
    size_t n;
    size_t *by_name;           /* indices into t, sorted by name */
    st_meta *meta;             /* file order */
    st_meta *meta_sorted;      /* the same, sorted by key */
    size_t nmeta;
};

static int by_name_cmp(const void *a, const void *b)
{
    const char *const *x = a, *const *y = b;
    return strcmp(*x, *y);
}

/* Sorting pairs of (name pointer, index) lets one qsort serve both the
 * duplicate check and the lookup table. */
typedef struct {
    const char *name;
    size_t i;
} named;

static int named_cmp(const void *a, const void *b)
{
    const named *x = a, *y = b;
    return strcmp(x->name, y->name);
}

typedef struct {
    uint64_t begin, end;
    size_t i;
} span;

static int span_cmp(const void *a, const void *b)
{
    const span *x = a, *y = b;
    if (x->begin != y->begin)
        return x->begin < y->begin ? -1 : 1;
    if (x->end != y->end)
        return x->end < y->end ? -1 : 1;
    return 0;
}

static int parse_dtype(const llm_json_node *v, llm_dtype *t)
{
    if (v->type != LLM_JSON_STRING)
        return -1;
    for (int i = 0; i < LLM_DT_COUNT; i++)
        if (strlen(dtypes[i].name) == v->len && memcmp(dtypes[i].name, v->str, v->len) == 0) {
            *t = (llm_dtype)i;
            return 0;
        }
    return -1;
}

/* Validates one tensor entry `e` (its key is the name) and fills `t`. */
static int parse_tensor(llm_st *f, const llm_json_node *e, const unsigned char *data,
                        uint64_t data_len, llm_st_tensor *t, span *sp)
{
    llm_shown nm = llm_show(e->key, e->key_len);
    if (e->type != LLM_JSON_OBJECT)
        return llm_fail(LLM_ERR_FORMAT, "'%s': tensor '%s' (offset %zu): entry is not an object",
                        f->head.name, nm.s, e->offset);
    const llm_json_node *dt = NULL, *shape = NULL, *offs = NULL;
    for (const llm_json_node *c = e->child; c; c = c->next) {
        const llm_json_node **slot;
        if (c->key_len == 5 && memcmp(c->key, "dtype", 5) == 0)
            slot = &dt;
        else if (c->key_len == 5 && memcmp(c->key, "shape", 5) == 0)
            slot = &shape;
        else if (c->key_len == 12 && memcmp(c->key, "data_offsets", 12) == 0)
            slot = &offs;
        else
            return llm_fail(LLM_ERR_FORMAT, "'%s': tensor '%s': unknown field '%s'",
                            f->head.name, nm.s, llm_show(c->key, c->key_len).s);
        if (*slot)
            return llm_fail(LLM_ERR_FORMAT, "'%s': tensor '%s': duplicate field '%s'",
                            f->head.name, nm.s, llm_show(c->key, c->key_len).s);
        *slot = c;
    }
    if (!dt || !shape || !offs)
        return llm_fail(LLM_ERR_FORMAT, "'%s': tensor '%s': missing field '%s'", f->head.name,
                        nm.s, !dt ? "dtype" : !shape ? "shape" : "data_offsets");
    if (parse_dtype(dt, &t->dtype))
        return llm_fail(LLM_ERR_FORMAT, "'%s': tensor '%s': unknown dtype%s%s%s", f->head.name,
                        nm.s, dt->type == LLM_JSON_STRING ? " '" : "",
                        dt->type == LLM_JSON_STRING ? llm_show(dt->str, dt->len).s : "",
                        dt->type == LLM_JSON_STRING ? "'" : "");
    if (shape->type != LLM_JSON_ARRAY)
        return llm_fail(LLM_ERR_FORMAT, "'%s': tensor '%s': shape is not an array",
                        f->head.name, nm.s);
    if (shape->count > LLM_ST_MAX_DIMS)
        return llm_fail(LLM_ERR_FORMAT, "'%s': tensor '%s': %zu dimensions (at most %d)",
                        f->head.name, nm.s, shape->count, LLM_ST_MAX_DIMS);
    t->ndim = (int)shape->count;
    uint64_t elems = 1;
    int k = 0, overflow = 0;
    for (const llm_json_node *c = shape->child; c; c = c->next, k++) {
        int64_t d;
        if (llm_json_int64(c, &d) || d < 0)
            return llm_fail(LLM_ERR_FORMAT,
                            "'%s': tensor '%s': shape[%d] is not a non-negative integer",
                            f->head.name, nm.s, k);
        t->shape[k] = d;
        /* Keep multiplying after an overflow: a later 0 makes it empty. */
        if (__builtin_mul_overflow(elems, (uint64_t)d, &elems))
            overflow = 1;
    }
    for (int i = k; i < LLM_ST_MAX_DIMS; i++)
        t->shape[i] = 0;
    int has_zero = 0;
    for (int i = 0; i < k; i++)
        has_zero |= t->shape[i] == 0;
    uint64_t nbytes;
    if (has_zero)
        nbytes = 0;
    else if (overflow || __builtin_mul_overflow(elems, (uint64_t)dtypes[t->dtype].size, &nbytes))
        return llm_fail(LLM_ERR_FORMAT, "'%s': tensor '%s': shape too large (size overflows)",
                        f->head.name, nm.s);
    if (offs->type != LLM_JSON_ARRAY || offs->count != 2)
        return llm_fail(LLM_ERR_FORMAT, "'%s': tensor '%s': data_offsets is not [begin, end]",
                        f->head.name, nm.s);
    int64_t b, en;
    if (llm_json_int64(offs->child, &b) || llm_json_int64(offs->child->next, &en) ||
        b < 0 || en < 0)
        return llm_fail(LLM_ERR_FORMAT,
                        "'%s': tensor '%s': data_offsets are not non-negative integers",
                        f->head.name, nm.s);
    if (b > en || (uint64_t)en > data_len)
        return llm_fail(LLM_ERR_FORMAT,
                        "'%s': tensor '%s' data_offsets [%lld, %lld] out of range (data is %llu bytes)",
                        f->head.name, nm.s, (long long)b, (long long)en,
                        (unsigned long long)data_len);
    if ((uint64_t)(en - b) != nbytes)
        return llm_fail(LLM_ERR_FORMAT,
                        "'%s': tensor '%s': data_offsets [%lld, %lld] hold %llu bytes, "
                        "but its dtype %s and shape need %llu",
                        f->head.name, nm.s, (long long)b, (long long)en,
                        (unsigned long long)(en - b), dtypes[t->dtype].name,
                        (unsigned long long)nbytes);
    t->name = e->key;
    t->data = data + b;
    t->nbytes = (size_t)nbytes;
    sp->begin = (uint64_t)b;
    sp->end = (uint64_t)en;
    return LLM_OK;
}

static int parse_meta(llm_st *f, const llm_json_node *m)
{
    if (m->type == LLM_JSON_NULL)
        return LLM_OK;
    if (m->type != LLM_JSON_OBJECT)
        return llm_fail(LLM_ERR_FORMAT, "'%s': __metadata__ is not an object", f->head.name);
    if (m->count == 0)
        return LLM_OK;
    f->meta = calloc(m->count, sizeof *f->meta);
    if (!f->meta)
        return llm_fail(LLM_ERR_NOMEM, "'%s': out of memory", f->head.name);
    for (const llm_json_node *c = m->child; c; c = c->next) {
        llm_shown k = llm_show(c->key, c->key_len);
        if (c->type != LLM_JSON_STRING)
            return llm_fail(LLM_ERR_FORMAT, "'%s': __metadata__ value of '%s' is not a string",
                            f->head.name, k.s);
        /* The API hands out C strings: a NUL inside would silently cut them. */
        if (strlen(c->key) != c->key_len || strlen(c->str) != c->len)
            return llm_fail(LLM_ERR_FORMAT,
                            "'%s': __metadata__ entry '%s' contains a NUL character "
                            "(not supported)", f->head.name, k.s);
        f->meta[f->nmeta].key = c->key;
        f->meta[f->nmeta].val = c->str;
        f->nmeta++;
    }
    f->meta_sorted = malloc(f->nmeta * sizeof *f->meta_sorted);
    if (!f->meta_sorted)
        return llm_fail(LLM_ERR_NOMEM, "'%s': out of memory", f->head.name);
    memcpy(f->meta_sorted, f->meta, f->nmeta * sizeof *f->meta_sorted);
    qsort(f->meta_sorted, f->nmeta, sizeof *f->meta_sorted, by_name_cmp);
    for (size_t i = 1; i < f->nmeta; i++)
        if (strcmp(f->meta_sorted[i - 1].key, f->meta_sorted[i].key) == 0)
            return llm_fail(LLM_ERR_FORMAT, "'%s': duplicate __metadata__ key '%s'", f->head.name,
                            llm_show(f->meta_sorted[i].key, strlen(f->meta_sorted[i].key)).s);
    return LLM_OK;
}

static int st_parse(llm_reader *head, const unsigned char *buf, size_t len)
{
    llm_st *f = (llm_st *)head;
    size_t j = 8;   /* the format's header is a JSON object, maybe after blanks */
    while (j < len && (buf[j] == ' ' || buf[j] == '\t' || buf[j] == '\n' || buf[j] == '\r'))
        j++;
    if (j >= len || buf[j] != '{')
        return llm_fail(LLM_ERR_FORMAT, "'%s': not a model file (expected one of ours or "
                        "safetensors, GGUF, or a Hugging Face folder)", f->head.name);
    uint64_t hlen = llm_le64(buf);
    if (hlen > ST_MAX_HEADER)
        return llm_fail(LLM_ERR_FORMAT, "'%s': header length %llu exceeds the limit of %u bytes",
                        f->head.name, (unsigned long long)hlen, ST_MAX_HEADER);
    if (hlen > len - 8)
        return llm_fail(LLM_ERR_FORMAT,
                        "'%s': header length %llu past the end of the file (%zu bytes)",
                        f->head.name, (unsigned long long)hlen, len);
    int rc = llm_json_parse((const char *)buf + 8, (size_t)hlen, f->head.name, 8, &f->json);
    if (rc)
        return rc;
    const llm_json_node *root = llm_json_root(f->json);
    if (root->type != LLM_JSON_OBJECT)
        return llm_fail(LLM_ERR_FORMAT, "'%s': header is not a JSON object", f->head.name);
    const unsigned char *data = buf + 8 + hlen;
    uint64_t data_len = len - 8 - hlen;

    f->t = calloc(root->count ? root->count : 1, sizeof *f->t);
    span *sp = calloc(root->count ? root->count : 1, sizeof *sp);
    named *nm = calloc(root->count ? root->count : 1, sizeof *nm);
    if (!f->t || !sp || !nm) {
        rc = llm_fail(LLM_ERR_NOMEM, "'%s': out of memory", f->head.name);
        goto out;
    }
    const llm_json_node *meta = NULL;
    for (const llm_json_node *e = root->child; e; e = e->next) {
        if (e->key_len == 12 && memcmp(e->key, "__metadata__", 12) == 0) {
            if (meta) {
                rc = llm_fail(LLM_ERR_FORMAT, "'%s': duplicate __metadata__", f->head.name);
                goto out;
            }
            meta = e;
            continue;
        }
        if (strlen(e->key) != e->key_len) {
            rc = llm_fail(LLM_ERR_FORMAT,
                          "'%s': tensor name '%s' contains a NUL character (not supported)",
                          f->head.name, llm_show(e->key, e->key_len).s);
            goto out;
        }
        if ((rc = parse_tensor(f, e, data, data_len, &f->t[f->n], &sp[f->n])))
            goto out;
        sp[f->n].i = f->n;
        nm[f->n].name = f->t[f->n].name;
        nm[f->n].i = f->n;
        f->n++;
    }
    if (meta && (rc = parse_meta(f, meta)))
        goto out;

    qsort(nm, f->n, sizeof *nm, named_cmp);
    for (size_t i = 1; i < f->n; i++)
        if (strcmp(nm[i - 1].name, nm[i].name) == 0) {
            rc = llm_fail(LLM_ERR_FORMAT, "'%s': duplicate tensor name '%s'", f->head.name,
                          llm_show(nm[i].name, strlen(nm[i].name)).s);
            goto out;
        }
    qsort(sp, f->n, sizeof *sp, span_cmp);
    for (size_t i = 1; i < f->n; i++)
        if (sp[i].begin < sp[i - 1].end) {
            const llm_st_tensor *a = &f->t[sp[i - 1].i], *b = &f->t[sp[i].i];
            rc = llm_fail(LLM_ERR_FORMAT,
                          "'%s': tensors '%s' [%llu, %llu] and '%s' [%llu, %llu] overlap",
                          f->head.name, llm_show(a->name, strlen(a->name)).s,
                          (unsigned long long)sp[i - 1].begin, (unsigned long long)sp[i - 1].end,
                          llm_show(b->name, strlen(b->name)).s,
                          (unsigned long long)sp[i].begin, (unsigned long long)sp[i].end);
            goto out;
        }
    f->by_name = malloc((f->n ? f->n : 1) * sizeof *f->by_name);
    if (!f->by_name) {
        rc = llm_fail(LLM_ERR_NOMEM, "'%s': out of memory", f->head.name);
        goto out;
    }
    for (size_t i = 0; i < f->n; i++)
        f->by_name[i] = nm[i].i;
    rc = LLM_OK;
out:
    free(sp);
    free(nm);
    return rc;
}

static void st_clear(llm_reader *head)
{
    llm_st *f = (llm_st *)head;
    llm_json_free(f->json);
    free(f->t);
    free(f->by_name);
    free(f->meta);
    free(f->meta_sorted);
}

static const llm_reader_kind st_kind = {sizeof(llm_st), st_parse, st_clear};

int llm_st_open(const char *path, llm_st **out)
{
    return llm_reader_open(&st_kind, path, NULL, 0, NULL, out);
}

int llm_st_open_mem(const void *buf, size_t len, const char *name, llm_st **out)
{
    return llm_reader_open(&st_kind, NULL, buf, len, name, out);
}

void llm_st_close(llm_st *f)
{
    llm_reader_close(&st_kind, f ? &f->head : NULL);
}

size_t llm_st_count(const llm_st *f)
{
    return f->n;
}

const llm_st_tensor *llm_st_at(const llm_st *f, size_t i)
{
    return i < f->n ? &f->t[i] : NULL;
}

static const char *tensor_name(const void *f, size_t i)
{
    return ((const llm_st *)f)->t[i].name;
}

const llm_st_tensor *llm_st_find(const llm_st *f, const char *name)
{
    size_t i = llm_find_name(name, f->by_name, f->n, tensor_name, f);
    return i < f->n ? &f->t[i] : NULL;
}

const char *llm_st_meta(const llm_st *f, const char *key)
{
    st_meta k = {key, NULL};
    const st_meta *m = f->nmeta ? bsearch(&k, f->meta_sorted, f->nmeta, sizeof *f->meta_sorted,
                                          by_name_cmp)
                                : NULL;
    return m ? m->val : NULL;
}

size_t llm_st_meta_count(const llm_st *f)
{
    return f->nmeta;
}

/* In file order, as llm_st_at(). */
void llm_st_meta_at(const llm_st *f, size_t i, const char **key, const char **val)
{
    *key = i < f->nmeta ? f->meta[i].key : NULL;
    *val = i < f->nmeta ? f->meta[i].val : NULL;
}

/* ======================================================================== */
/* Writer                                                                   */

typedef struct {
    char *name;
    llm_dtype dtype;
    int ndim;
    int64_t shape[LLM_ST_MAX_DIMS];
    const void *data;
    size_t nbytes;
} wtensor;

struct llm_st_writer {
    wtensor *t;
    size_t n, cap;
    st_meta *meta;   /* owned copies */
    size_t nmeta, meta_cap;
};

int llm_st_writer_new(llm_st_writer **out)
{
    *out = calloc(1, sizeof **out);
    return *out ? LLM_OK : llm_fail(LLM_ERR_NOMEM, "out of memory");
}

void llm_st_writer_free(llm_st_writer *w)
{
    if (!w)
        return;
    for (size_t i = 0; i < w->n; i++)
        free(w->t[i].name);
    for (size_t i = 0; i < w->nmeta; i++) {
        free((char *)w->meta[i].key);
        free((char *)w->meta[i].val);
    }
    free(w->t);
    free(w->meta);
    free(w);
}

static int grow_array(void **p, size_t *cap, size_t n, size_t elem)
{
    if (n < *cap)
        return LLM_OK;
    size_t ncap = *cap ? *cap * 2 : 16, bytes;
    if (ncap < *cap || llm_mul_size(ncap, elem, &bytes))
        return llm_fail(LLM_ERR_NOMEM, "too many entries");
    void *q = realloc(*p, bytes);
    if (!q)
        return llm_fail(LLM_ERR_NOMEM, "out of memory");
    *p = q;
    *cap = ncap;
    return LLM_OK;
}

/* Names and keys must survive a round trip through a reader: valid UTF-8
 * (checked by the escaper) and not "__metadata__". */
static int check_text(const char *what, const char *s)
{
    llm_buf tmp = {0};
    int rc = llm_json_put_string(&tmp, s, strlen(s));
    llm_buf_free(&tmp);
    if (rc == LLM_ERR_UTF8)
        return llm_fail(LLM_ERR_INVALID, "%s '%s' is not valid UTF-8", what, llm_show(s, strlen(s)).s);
    return rc;
}

int llm_st_writer_add(llm_st_writer *w, const char *name, llm_dtype t, int ndim,
                      const int64_t *shape, const void *data)
{
    if (!name || strcmp(name, "__metadata__") == 0)
        return llm_fail(LLM_ERR_INVALID, "invalid tensor name '%s'", name ? name : "(null)");
    llm_shown nm = llm_show(name, strlen(name));
    if ((unsigned)t >= LLM_DT_COUNT)
        return llm_fail(LLM_ERR_INVALID, "tensor '%s': invalid dtype %d", nm.s, (int)t);
    if (ndim < 0 || ndim > LLM_ST_MAX_DIMS || (ndim > 0 && !shape))
        return llm_fail(LLM_ERR_INVALID, "tensor '%s': invalid number of dimensions %d",
                        nm.s, ndim);
    size_t elems = 1;
    for (int i = 0; i < ndim; i++) {
        if (shape[i] < 0)
            return llm_fail(LLM_ERR_INVALID, "tensor '%s': negative dimension %lld", nm.s,
                            (long long)shape[i]);
        if ((uint64_t)shape[i] > SIZE_MAX || llm_mul_size(elems, (size_t)shape[i], &elems))
            return llm_fail(LLM_ERR_INVALID, "tensor '%s': shape too large", nm.s);
    }
    size_t nbytes;
    if (llm_mul_size(elems, dtypes[t].size, &nbytes))
        return llm_fail(LLM_ERR_INVALID, "tensor '%s': shape too large", nm.s);
    if (nbytes && !data)
        return llm_fail(LLM_ERR_INVALID, "tensor '%s': no data", nm.s);
    for (size_t i = 0; i < w->n; i++)
        if (strcmp(w->t[i].name, name) == 0)
            return llm_fail(LLM_ERR_INVALID, "duplicate tensor name '%s'", nm.s);
    int rc = check_text("tensor name", name);
    if (rc == LLM_OK)
        rc = grow_array((void **)&w->t, &w->cap, w->n, sizeof *w->t);
    if (rc)
        return rc;
    wtensor *e = &w->t[w->n];
    memset(e, 0, sizeof *e);
    if (!(e->name = strdup(name)))
        return llm_fail(LLM_ERR_NOMEM, "out of memory");
    e->dtype = t;
    e->ndim = ndim;
    for (int i = 0; i < ndim; i++)
        e->shape[i] = shape[i];
    e->data = data;
    e->nbytes = nbytes;
    w->n++;
    return LLM_OK;
}

int llm_st_writer_meta(llm_st_writer *w, const char *key, const char *val)
{
    if (!key || !val)
        return llm_fail(LLM_ERR_INVALID, "metadata key or value is NULL");
    for (size_t i = 0; i < w->nmeta; i++)
        if (strcmp(w->meta[i].key, key) == 0)
            return llm_fail(LLM_ERR_INVALID, "duplicate metadata key '%s'",
                            llm_show(key, strlen(key)).s);
    int rc = check_text("metadata key", key);
    if (rc == LLM_OK)
        rc = check_text("metadata value", val);
    if (rc == LLM_OK)
        rc = grow_array((void **)&w->meta, &w->meta_cap, w->nmeta, sizeof *w->meta);
    if (rc)
        return rc;
    char *k = strdup(key), *v = strdup(val);
    if (!k || !v) {
        free(k);
        free(v);
        return llm_fail(LLM_ERR_NOMEM, "out of memory");
    }
    w->meta[w->nmeta].key = k;
    w->meta[w->nmeta].val = v;
    w->nmeta++;
    return LLM_OK;
}

static int put_u64(llm_buf *b, uint64_t v)
{
    char s[24];
    int n = snprintf(s, sizeof s, "%llu", (unsigned long long)v);
    return llm_buf_append(b, s, (size_t)n);
}

#define PUT(lit) llm_buf_append(&h, lit, sizeof lit - 1)

/* The header exactly as the reference writer lays it out (metadata first,
 * compact JSON), padded with spaces so that the data starts 8-aligned. */
static int build_header(const llm_st_writer *w, llm_buf *out)
{
    llm_buf h = {0};
    int rc = llm_buf_append(&h, "\0\0\0\0\0\0\0\0{", 9);
    if (w->nmeta) {
        if (rc == LLM_OK)
            rc = PUT("\"__metadata__\":{");
        for (size_t i = 0; rc == LLM_OK && i < w->nmeta; i++) {
            if (i)
                rc = PUT(",");
            if (rc == LLM_OK)
                rc = llm_json_put_string(&h, w->meta[i].key, strlen(w->meta[i].key));
            if (rc == LLM_OK)
                rc = PUT(":");
            if (rc == LLM_OK)
                rc = llm_json_put_string(&h, w->meta[i].val, strlen(w->meta[i].val));
        }
        if (rc == LLM_OK)
            rc = PUT("}");
    }
    uint64_t off = 0;
    for (size_t i = 0; rc == LLM_OK && i < w->n; i++) {
        const wtensor *e = &w->t[i];
        if (i || w->nmeta)
            rc = PUT(",");
        if (rc == LLM_OK)
            rc = llm_json_put_string(&h, e->name, strlen(e->name));
        if (rc == LLM_OK)
            rc = PUT(":{\"dtype\":\"");
        if (rc == LLM_OK)
            rc = llm_buf_append(&h, dtypes[e->dtype].name, strlen(dtypes[e->dtype].name));
        if (rc == LLM_OK)
            rc = PUT("\",\"shape\":[");
        for (int d = 0; rc == LLM_OK && d < e->ndim; d++) {
            if (d)
                rc = PUT(",");
            if (rc == LLM_OK)
                rc = put_u64(&h, (uint64_t)e->shape[d]);
        }
        if (rc == LLM_OK)
            rc = PUT("],\"data_offsets\":[");
        if (rc == LLM_OK)
            rc = put_u64(&h, off);
        if (rc == LLM_OK && __builtin_add_overflow(off, (uint64_t)e->nbytes, &off))
            rc = llm_fail(LLM_ERR_INVALID, "tensors too large in total");
        if (rc == LLM_OK)
            rc = PUT(",");
        if (rc == LLM_OK)
            rc = put_u64(&h, off);
        if (rc == LLM_OK)
            rc = PUT("]}");
    }
    if (rc == LLM_OK)
        rc = PUT("}");
    while (rc == LLM_OK && h.len % 8)
        rc = PUT(" ");
    if (rc == LLM_OK && h.len - 8 > ST_MAX_HEADER)
        rc = llm_fail(LLM_ERR_INVALID, "header of %zu bytes exceeds the limit of %u",
                      h.len - 8, ST_MAX_HEADER);
    if (rc) {
        llm_buf_free(&h);
        return rc;
    }
    llm_put_le64((unsigned char *)h.data, (uint64_t)(h.len - 8));
    *out = h;
    return LLM_OK;
}

#undef PUT

int llm_st_writer_write(llm_st_writer *w, const char *path)
{
    llm_buf h = {0};
    int rc = build_header(w, &h);
    if (rc)
        return rc;
    char *tmp = NULL;
    int fd = llm_create_temp(path, &tmp);
    if (fd < 0) {
        llm_buf_free(&h);
        return fd;
    }
    int ok = llm_write_all(fd, h.data, h.len) == 0;
    for (size_t i = 0; ok && i < w->n; i++)
        ok = llm_write_all(fd, w->t[i].data, w->t[i].nbytes) == 0;
    rc = llm_finish_temp(fd, tmp, path, ok);
    llm_buf_free(&h);
    return rc;
}
