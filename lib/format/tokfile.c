/* tokfile.c: token files (llm-formats(5)): header, mmap reader, streaming
 * reader for pipes, and a streaming writer that patches the count. */
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <unistd.h>

#include "internal.h"

/* Ids are handed to callers as int32_t (llm_ids), so a vocabulary past
 * INT32_MAX could not be used even if a file declared one. */
#define MAX_VOCAB ((uint32_t)INT32_MAX)

static const char *nm(const char *name)
{
    return name ? name : "(input)";
}

uint32_t llm_tokfile_width(uint32_t vocab_size)
{
    /* Ids run from 0 to vocab_size - 1, so 65536 ids still fit 16 bits. */
    return vocab_size <= 65536u ? 2 : 4;
}

int llm_tokfile_header_parse(const unsigned char hdr[LLM_TOKFILE_HEADER],
                             const char *name, llm_tokfile_header *h)
{
    name = nm(name);
    if (memcmp(hdr, LLM_TOKFILE_MAGIC, 8) != 0)
        return llm_fail(LLM_ERR_FORMAT, "'%s': bad magic (not a token file)", name);
    uint32_t version = llm_le32(hdr + 8);
    uint32_t width = llm_le32(hdr + 12);
    uint32_t vocab = llm_le32(hdr + 16);
    uint32_t reserved = llm_le32(hdr + 20);
    if (version == 0)
        return llm_fail(LLM_ERR_FORMAT, "'%s': version 0 at offset 8 is not valid",
                        name);
    if (version > LLM_TOKFILE_VERSION)
        return llm_fail(LLM_ERR_UNSUPPORTED,
                        "'%s': token file version %u was written by a newer "
                        "version of llm (this one reads version %d)",
                        name, version, LLM_TOKFILE_VERSION);
    if (width != 2 && width != 4)
        return llm_fail(LLM_ERR_FORMAT,
                        "'%s': token width %u at offset 12 is not 2 or 4",
                        name, width);
    if (vocab == 0)
        return llm_fail(LLM_ERR_FORMAT, "'%s': vocabulary size 0 at offset 16",
                        name);
    if (vocab > MAX_VOCAB)
        return llm_fail(LLM_ERR_UNSUPPORTED,
                        "'%s': vocabulary size %u at offset 16 is past the "
                        "largest supported, %u", name, vocab, MAX_VOCAB);
    if (width == 2 && vocab > 65536u)
        return llm_fail(LLM_ERR_FORMAT,
                        "'%s': vocabulary size %u does not fit token width 2",
                        name, vocab);
    if (reserved != 0)
        return llm_fail(LLM_ERR_FORMAT,
                        "'%s': reserved field at offset 20 is %u, not 0",
                        name, reserved);
    h->version = version;
    h->width = width;
    h->vocab_size = vocab;
    h->count = llm_le64(hdr + 24);
    return LLM_OK;
}

/* Id i of little-endian ids `width` (2 or 4) bytes wide: on little-endian
 * hosts a load that compilers turn into plain (vector) loads, memcpy
 * making any alignment legal. */
static inline uint32_t id_at(const unsigned char *ids, size_t i, uint32_t width)
{
    const unsigned char *p = ids + i * width;
#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
    if (width == 2) {
        uint16_t v;
        memcpy(&v, p, 2);
        return v;
    }
    uint32_t v;
    memcpy(&v, p, 4);
    return v;
#else
    return width == 2 ? (uint32_t)p[0] | (uint32_t)p[1] << 8 : llm_le32(p);
#endif
}

enum { BLOCK = 4096 };

/* The largest of BLOCK ids: a fixed trip count and no early exit, so that
 * compilers vectorise it even at -O2 (inlined for each constant width). */
static inline uint32_t block_max(const unsigned char *ids, uint32_t width)
{
    uint32_t m = 0;
    for (size_t i = 0; i < BLOCK; i++) {
        uint32_t v = id_at(ids, i, width);
        m = v > m ? v : m;
    }
    return m;
}

/* Index of the first id >= vocab in ids[0..n), or n when all are valid.
 * Whole blocks are checked by their maximum; only a block that fails, and
 * the short tail, are searched id by id. */
static size_t first_bad_id(const unsigned char *ids, size_t n, uint32_t width,
                           uint32_t vocab)
{
    if (width == 2 && vocab >= 65536u)
        return n;   /* every 16-bit value is a valid id */
    size_t b = 0;
    for (; n - b >= BLOCK; b += BLOCK) {
        const unsigned char *p = ids + b * width;
        uint32_t m = width == 2 ? block_max(p, 2) : block_max(p, 4);
        if (m >= vocab)
            break;
    }
    for (size_t i = b; i < n; i++) {
        uint32_t v = id_at(ids, i, width);
        if (v >= vocab)
            return i;
    }
    return n;
}

/* ------------------------------------------------------------------------ */
/* Whole-file access. */

struct llm_tokfile {
    llm_reader head;    /* name, owned mapping (llm_tokfile_open) */
    llm_tokfile_header h;
    const unsigned char *ids;
    uint64_t count;
};

/* The header of len bytes at p (at least LLM_TOKFILE_HEADER of them). */
static int header_of(const unsigned char *p, size_t len, const char *name,
                     llm_tokfile_header *h)
{
    if (len < LLM_TOKFILE_HEADER)
        return llm_fail(LLM_ERR_FORMAT, "'%s': truncated header (%zu bytes, a token file has "
                        "at least %d)", name, len, LLM_TOKFILE_HEADER);
    return llm_tokfile_header_parse(p, name, h);
}

static int tokfile_parse(llm_reader *head, const unsigned char *buf, size_t len)
{
    llm_tokfile *t = (llm_tokfile *)head;
    const char *name = head->name;
    const unsigned char *p = buf;
    llm_tokfile_header h;
    int rc = header_of(p, len, name, &h);
    if (rc)
        return rc;
    size_t data = len - LLM_TOKFILE_HEADER;
    uint64_t have = data / h.width;
    if (h.count == 0) {
        if (data % h.width)
            return llm_fail(LLM_ERR_FORMAT,
                            "'%s': partial token at offset %zu (%zu trailing "
                            "bytes, tokens are %u bytes)", name,
                            LLM_TOKFILE_HEADER + (size_t)have * h.width,
                            data % h.width, h.width);
    } else if (h.count != have || data % h.width) {
        /* Divide rather than multiply: count * width may overflow. */
        return llm_fail(LLM_ERR_FORMAT,
                        "'%s': header says %llu tokens at offset 24, but the "
                        "file holds %zu bytes of token data (%s)", name,
                        (unsigned long long)h.count, data,
                        h.count > have ? "truncated" : "trailing data");
    }
    uint64_t count = have;
    size_t bad = first_bad_id(p + LLM_TOKFILE_HEADER, (size_t)count, h.width,
                              h.vocab_size);
    if (bad < count) {
        const unsigned char *q = p + LLM_TOKFILE_HEADER + bad * h.width;
        uint32_t v = id_at(q, 0, h.width);
        return llm_fail(LLM_ERR_FORMAT,
                        "'%s': token %zu at offset %zu is %u, past the "
                        "vocabulary size %u", name, bad,
                        LLM_TOKFILE_HEADER + bad * h.width, v, h.vocab_size);
    }
    t->h = h;
    t->ids = p + LLM_TOKFILE_HEADER;
    t->count = count;
    return LLM_OK;
}

/* Nothing to clear: the ids are the file's bytes. */
static const llm_reader_kind tokfile_kind = {sizeof(llm_tokfile), tokfile_parse, NULL};

int llm_tokfile_open_mem(const void *buf, size_t len, const char *name,
                         llm_tokfile **out)
{
    return llm_reader_open(&tokfile_kind, NULL, buf, len, nm(name), out);
}

int llm_tokfile_open(const char *path, llm_tokfile **out)
{
    return llm_reader_open(&tokfile_kind, path, NULL, 0, NULL, out);
}

void llm_tokfile_close(llm_tokfile *t)
{
    llm_reader_close(&tokfile_kind, t ? &t->head : NULL);
}

const llm_tokfile_header *llm_tokfile_info(const llm_tokfile *t)
{
    return &t->h;
}

uint64_t llm_tokfile_count(const llm_tokfile *t)
{
    return t->count;
}

uint32_t llm_tokfile_get(const llm_tokfile *t, uint64_t i)
{
    return id_at(t->ids, (size_t)i, t->h.width);
}

/* ------------------------------------------------------------------------ */
/* Streaming read. */

enum { CHUNK_IDS = 1 << 15 };

struct llm_tokreader {
    FILE *f;
    char *name;
    llm_tokfile_header h;
    uint64_t nread;     /* tokens returned so far */
    int status;         /* sticky: once at end or failed, stay there */
    int at_end;
    unsigned char buf[CHUNK_IDS * 4];
};

static char *dupstr(const char *s)
{
    size_t n = strlen(s) + 1;
    char *d = malloc(n);
    if (d)
        memcpy(d, s, n);
    return d;
}

int llm_tokreader_open(FILE *f, const char *name, llm_tokreader **out)
{
    *out = NULL;
    name = nm(name);
    unsigned char hdr[LLM_TOKFILE_HEADER];
    size_t got = fread(hdr, 1, sizeof hdr, f);
    if (got < sizeof hdr && ferror(f))
        return llm_fail(LLM_ERR_IO, "cannot read '%s': %s", name, strerror(errno));
    llm_tokfile_header h;
    int rc = header_of(hdr, got, name, &h);
    if (rc)
        return rc;
    llm_tokreader *r = calloc(1, sizeof *r);
    if (!r || !(r->name = dupstr(name))) {
        free(r);
        return llm_fail(LLM_ERR_NOMEM, "out of memory");
    }
    r->f = f;
    r->h = h;
    *out = r;
    return LLM_OK;
}

const llm_tokfile_header *llm_tokreader_info(const llm_tokreader *r)
{
    return &r->h;
}

static uint64_t offset_of(const llm_tokreader *r, uint64_t token)
{
    return LLM_TOKFILE_HEADER + token * r->h.width;
}

/* fread() that tells a read error from the end of input. */
static int read_some(llm_tokreader *r, void *dst, size_t n, size_t *got)
{
    *got = fread(dst, 1, n, r->f);
    if (*got < n && ferror(r->f))
        return llm_fail(LLM_ERR_IO, "cannot read '%s' at offset %llu: %s",
                        r->name, (unsigned long long)(offset_of(r, r->nread) + *got),
                        strerror(errno));
    return LLM_OK;
}

int64_t llm_tokreader_read(llm_tokreader *r, uint32_t *dst, size_t cap)
{
    if (r->status)
        return r->status;
    if (r->at_end || cap == 0)
        return 0;
    size_t want = cap < CHUNK_IDS ? cap : CHUNK_IDS;
    size_t got;
    int rc;
    if (r->h.count) {
        uint64_t left = r->h.count - r->nread;
        if (left == 0) {
            /* The declared tokens are all read: only the end may follow. */
            unsigned char extra;
            if ((rc = read_some(r, &extra, 1, &got)) != LLM_OK)
                return r->status = rc;
            if (got)
                return r->status = llm_fail(LLM_ERR_FORMAT,
                    "'%s': data past the %llu tokens the header declares, "
                    "at offset %llu", r->name, (unsigned long long)r->h.count,
                    (unsigned long long)offset_of(r, r->nread));
            r->at_end = 1;
            return 0;
        }
        if (want > left)
            want = (size_t)left;
    }
    if ((rc = read_some(r, r->buf, want * r->h.width, &got)) != LLM_OK)
        return r->status = rc;
    size_t n = got / r->h.width;
    size_t bad = first_bad_id(r->buf, n, r->h.width, r->h.vocab_size);
    if (bad < n) {
        const unsigned char *q = r->buf + bad * r->h.width;
        uint32_t v = id_at(q, 0, r->h.width);
        return r->status = llm_fail(LLM_ERR_FORMAT,
            "'%s': token %llu at offset %llu is %u, past the vocabulary "
            "size %u", r->name, (unsigned long long)(r->nread + bad),
            (unsigned long long)offset_of(r, r->nread + bad), v,
            r->h.vocab_size);
    }
    if (got % r->h.width)
        return r->status = llm_fail(LLM_ERR_FORMAT,
            "'%s': partial token at offset %llu (%zu trailing bytes, tokens "
            "are %u bytes)", r->name,
            (unsigned long long)offset_of(r, r->nread + n),
            got % r->h.width, r->h.width);
    if (n < want && r->h.count)
        return r->status = llm_fail(LLM_ERR_FORMAT,
            "'%s': truncated: the header declares %llu tokens, the data ends "
            "after %llu at offset %llu", r->name,
            (unsigned long long)r->h.count,
            (unsigned long long)(r->nread + n),
            (unsigned long long)offset_of(r, r->nread + n));
    for (size_t i = 0; i < n; i++)
        dst[i] = id_at(r->buf, i, r->h.width);
    r->nread += n;
    if (n == 0)
        r->at_end = 1;
    return (int64_t)n;
}

void llm_tokreader_free(llm_tokreader *r)
{
    if (!r)
        return;
    free(r->name);
    free(r);
}

/* ------------------------------------------------------------------------ */
/* Streaming write. */

struct llm_tokwriter {
    FILE *f;
    uint32_t vocab;
    uint32_t width;
    uint64_t count;
    off_t start;        /* position of the header, or -1 when unseekable */
    size_t used;
    unsigned char buf[1 << 16];
};

static int flush_buf(llm_tokwriter *w)
{
    if (w->used && fwrite(w->buf, 1, w->used, w->f) != w->used)
        return llm_fail(LLM_ERR_IO, "cannot write token file: %s",
                        strerror(errno ? errno : EIO));
    w->used = 0;
    return LLM_OK;
}

int llm_tokwriter_open(FILE *f, uint32_t vocab_size, llm_tokwriter **out)
{
    *out = NULL;
    if (vocab_size == 0 || vocab_size > MAX_VOCAB)
        return llm_fail(LLM_ERR_INVALID,
                        "token file vocabulary size %u is not in 1..%u",
                        vocab_size, MAX_VOCAB);
    llm_tokwriter *w = malloc(sizeof *w);
    if (!w)
        return llm_fail(LLM_ERR_NOMEM, "out of memory");
    w->f = f;
    w->vocab = vocab_size;
    w->width = llm_tokfile_width(vocab_size);
    w->count = 0;
    /* Only a regular file not opened for appending can take the count back
     * at close; a pipe, terminal or append stream keeps count 0 (unknown). */
    w->start = -1;
    int fd = fileno(f);
    struct stat st;
    if (fd >= 0 && fstat(fd, &st) == 0 && S_ISREG(st.st_mode)) {
        int fl = fcntl(fd, F_GETFL);
        if (fl >= 0 && !(fl & O_APPEND))
            w->start = ftello(f);
    }
    unsigned char *h = w->buf;
    memcpy(h, LLM_TOKFILE_MAGIC, 8);
    llm_put_le32(h + 8, LLM_TOKFILE_VERSION);
    llm_put_le32(h + 12, w->width);
    llm_put_le32(h + 16, vocab_size);
    llm_put_le32(h + 20, 0);
    llm_put_le64(h + 24, 0);
    w->used = LLM_TOKFILE_HEADER;
    *out = w;
    return LLM_OK;
}

int llm_tokwriter_write(llm_tokwriter *w, const int32_t *ids, size_t n)
{
    /* Check the whole batch first, so that no bad id reaches the stream. */
    for (size_t i = 0; i < n; i++)
        if (ids[i] < 0 || (uint32_t)ids[i] >= w->vocab)
            return llm_fail(LLM_ERR_RANGE,
                            "token %llu is %ld, outside the vocabulary "
                            "(size %u)", (unsigned long long)(w->count + i),
                            (long)ids[i], w->vocab);
    size_t i = 0;
    while (i < n) {
        if (sizeof w->buf - w->used < w->width) {
            errno = 0;
            int rc = flush_buf(w);
            if (rc)
                return rc;
        }
        size_t room = (sizeof w->buf - w->used) / w->width;
        size_t k = n - i < room ? n - i : room;
        unsigned char *p = w->buf + w->used;
        if (w->width == 2) {
            for (size_t j = 0; j < k; j++) {
                uint32_t v = (uint32_t)ids[i + j];
                p[2 * j] = (unsigned char)v;
                p[2 * j + 1] = (unsigned char)(v >> 8);
            }
        } else {
            for (size_t j = 0; j < k; j++)
                llm_put_le32(p + 4 * j, (uint32_t)ids[i + j]);
        }
        w->used += k * w->width;
        i += k;
    }
    w->count += n;
    return LLM_OK;
}

int llm_tokwriter_close(llm_tokwriter *w)
{
    if (!w)
        return LLM_OK;
    errno = 0;
    int rc = flush_buf(w);
    if (rc == LLM_OK && fflush(w->f) != 0)
        rc = llm_fail(LLM_ERR_IO, "cannot write token file: %s",
                      strerror(errno ? errno : EIO));
    if (rc == LLM_OK && w->start >= 0 && w->count > 0) {
        unsigned char c[8];
        llm_put_le64(c, w->count);
        off_t end = ftello(w->f);
        if (end < 0 || fseeko(w->f, w->start + 24, SEEK_SET) != 0 ||
            fwrite(c, 1, 8, w->f) != 8 || fseeko(w->f, end, SEEK_SET) != 0 ||
            fflush(w->f) != 0)
            rc = llm_fail(LLM_ERR_IO, "cannot write the token count: %s",
                          strerror(errno ? errno : EIO));
    }
    free(w);
    return rc;
}
