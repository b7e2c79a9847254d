/* buf.c: growable byte and id buffers, whole-file read-only maps, and the
 * file readers' common object (llm_reader). */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "internal.h"

int llm_ids_check(const int32_t *ids, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (ids[i] < 0)
            return llm_fail(LLM_ERR_RANGE, "token id %d is negative", ids[i]);
    return LLM_OK;
}

int llm_grow(void **p, size_t *cap, size_t want, size_t elem)
{
    if (want <= *cap)
        return LLM_OK;
    size_t ncap = *cap ? *cap : 16;
    while (ncap < want) {
        if (ncap > SIZE_MAX / 2)
            return llm_fail(LLM_ERR_NOMEM, "buffer size overflow");
        ncap *= 2;
    }
    size_t bytes;
    if (llm_mul_size(ncap, elem, &bytes))
        return llm_fail(LLM_ERR_NOMEM, "buffer size overflow");
    void *q = realloc(*p, bytes);
    if (!q)
        return llm_fail(LLM_ERR_NOMEM, "out of memory (%zu bytes)", bytes);
    *p = q;
    *cap = ncap;
    return LLM_OK;
}

int llm_buf_reserve(llm_buf *b, size_t cap)
{
    size_t want;
    if (llm_add_size(cap, 1, &want))
        return llm_fail(LLM_ERR_NOMEM, "buffer size overflow");
    void *p = b->data;
    int rc = llm_grow(&p, &b->cap, want, 1);
    b->data = p;
    if (rc == LLM_OK && b->len == 0)
        b->data[0] = '\0';
    return rc;
}

int llm_unescape(const char *s, size_t n, llm_buf *b)
{
    int rc = llm_buf_reserve(b, b->len + n);
    for (size_t i = 0; i < n && !rc; i++) {
        char c = s[i];
        if (c == '\\' && i + 1 < n) {
            char e = s[i + 1];
            char d = e == 'n' ? '\n' : e == 'r' ? '\r' : e == 't' ? '\t' : e == '\\' ? '\\' : 0;
            if (d) {
                c = d;
                i++;
            }
        }
        b->data[b->len++] = c;
    }
    if (!rc)
        b->data[b->len] = '\0';
    return rc;
}

int llm_buf_append(llm_buf *b, const void *p, size_t n)
{
    size_t want;
    if (llm_add_size(b->len, n, &want))
        return llm_fail(LLM_ERR_NOMEM, "buffer size overflow");
    int rc = llm_buf_reserve(b, want);
    if (rc)
        return rc;
    if (n)
        memcpy(b->data + b->len, p, n);
    b->len += n;
    b->data[b->len] = '\0';
    return LLM_OK;
}

void llm_buf_free(llm_buf *b)
{
    if (!b)
        return;
    free(b->data);
    b->data = NULL;
    b->len = b->cap = 0;
}

int llm_ids_reserve(llm_ids *v, size_t cap)
{
    void *p = v->data;
    int rc = llm_grow(&p, &v->cap, cap, sizeof *v->data);
    v->data = p;
    return rc;
}

int llm_ids_push(llm_ids *v, int32_t id)
{
    if (v->len == v->cap) {
        int rc = llm_ids_reserve(v, v->len + 1);
        if (rc)
            return rc;
    }
    v->data[v->len++] = id;
    return LLM_OK;
}

void llm_ids_free(llm_ids *v)
{
    if (!v)
        return;
    free(v->data);
    v->data = NULL;
    v->len = v->cap = 0;
}

int llm_map_file(const char *path, const void **map, size_t *len)
{
    *map = NULL;
    *len = 0;
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return llm_fail(LLM_ERR_IO, "cannot open '%s': %s", path, strerror(errno));
    struct stat st;
    if (fstat(fd, &st) != 0) {
        int e = errno;
        close(fd);
        return llm_fail(LLM_ERR_IO, "cannot stat '%s': %s", path, strerror(e));
    }
    if (!S_ISREG(st.st_mode)) {
        close(fd);
        return llm_fail(LLM_ERR_IO, "cannot map '%s': not a regular file", path);
    }
    if (st.st_size == 0) {
        close(fd);
        return LLM_OK;
    }
    if ((uint64_t)st.st_size > SIZE_MAX) {
        close(fd);
        return llm_fail(LLM_ERR_NOMEM, "'%s': file too large to map", path);
    }
    void *p = mmap(NULL, (size_t)st.st_size, PROT_READ, MAP_PRIVATE, fd, 0);
    int e = errno;
    close(fd);
    if (p == MAP_FAILED)
        return llm_fail(LLM_ERR_IO, "cannot map '%s': %s", path, strerror(e));
    *map = p;
    *len = (size_t)st.st_size;
    return LLM_OK;
}

void llm_unmap_file(const void *map, size_t len)
{
    if (map && len)
        munmap((void *)map, len);
}

int llm_reader_open(const llm_reader_kind *k, const char *path, const void *buf,
                    size_t len, const char *name, void *out)
{
    llm_reader *r = NULL;
    memcpy(out, &r, sizeof r);
    const void *map = NULL;
    size_t map_len = 0;
    if (path) {
        int rc = llm_map_file(path, &map, &map_len);
        if (rc)
            return rc;
        buf = map;
        len = map_len;
        name = path;
    } else if (!buf) {
        buf = "";
        len = 0;
    }
    if (!name)
        name = "<memory>";
    r = calloc(1, k->size);
    if (!r || !(r->name = strdup(name))) {
        free(r);
        llm_unmap_file(map, map_len);
        return llm_fail(LLM_ERR_NOMEM, "'%s': out of memory", name);
    }
    int rc = k->parse(r, buf, len);
    if (rc) {
        llm_reader_close(k, r);
        llm_unmap_file(map, map_len);
        return rc;
    }
    r->map = map;
    r->map_len = map_len;
    memcpy(out, &r, sizeof r);
    return LLM_OK;
}

void llm_reader_close(const llm_reader_kind *k, llm_reader *r)
{
    if (!r)
        return;
    if (k->clear)
        k->clear(r);
    llm_unmap_file(r->map, r->map_len);
    free(r->name);
    free(r);
}

size_t llm_find_name(const char *key, const size_t *order, size_t n,
                     const char *(*name)(const void *ctx, size_t i), const void *ctx)
{
    size_t lo = 0, hi = key ? n : 0;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        int c = strcmp(key, name(ctx, order[mid]));
        if (c == 0)
            return order[mid];
        if (c < 0)
            hi = mid;
        else
            lo = mid + 1;
    }
    return SIZE_MAX;
}

int llm_buf_vprintf(llm_buf *b, const char *fmt, va_list ap)
{
    va_list again;
    va_copy(again, ap);
    int n = vsnprintf(NULL, 0, fmt, ap);
    int rc = n < 0 ? llm_fail(LLM_ERR_INVALID, "bad format '%s'", fmt)
                   : llm_buf_reserve(b, b->len + (size_t)n);
    if (rc == LLM_OK) {
        vsnprintf(b->data + b->len, (size_t)n + 1, fmt, again);
        b->len += (size_t)n;
    }
    va_end(again);
    return rc;
}

int llm_buf_printf(llm_buf *b, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int rc = llm_buf_vprintf(b, fmt, ap);
    va_end(ap);
    return rc;
}
