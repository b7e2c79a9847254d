/* test_tokfile.c: token files against hand-written bytes: exact header,
 * raw ids at offset 32 (as numpy.memmap reads them), round trips through a
 * regular file and a pipe, and a corpus of malformed files. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "llm.h"

static int failures, checks;

#define CHECK(cond, ...)                                                    \
    do {                                                                    \
        checks++;                                                           \
        if (!(cond)) {                                                      \
            failures++;                                                     \
            fprintf(stderr, "%s:%d: FAILED %s: ", __FILE__, __LINE__, #cond); \
            fprintf(stderr, __VA_ARGS__);                                   \
            fputc('\n', stderr);                                            \
        }                                                                   \
    } while (0)

static char dir[256];

static const char *path_in(const char *name)
{
    static char p[512];
    snprintf(p, sizeof p, "%s/%s", dir, name);
    return p;
}

static unsigned char *slurp(const char *path, size_t *n)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        return NULL;
    size_t cap = 1 << 20, len = 0, got;
    unsigned char *b = malloc(cap);
    while (b && (got = fread(b + len, 1, cap - len, f)) > 0) {
        len += got;
        if (len == cap) {
            unsigned char *nb = realloc(b, cap *= 2);
            if (!nb)
                free(b);
            b = nb;
        }
    }
    fclose(f);
    *n = len;
    return b;
}

/* Writes ids through the writer to `f`; LLM_OK or the failing status. */
static int write_ids(FILE *f, uint32_t vocab, const int32_t *ids, size_t n,
                     size_t batch)
{
    llm_tokwriter *w;
    int rc = llm_tokwriter_open(f, vocab, &w);
    if (rc)
        return rc;
    for (size_t i = 0; i < n; i += batch) {
        size_t k = n - i < batch ? n - i : batch;
        if ((rc = llm_tokwriter_write(w, ids + i, k)) != LLM_OK) {
            llm_tokwriter_close(w);
            return rc;
        }
    }
    return llm_tokwriter_close(w);
}

/* Reads the whole stream with the reader in odd-sized pieces. */
static int read_stream(FILE *f, const char *name, uint32_t **out, size_t *n)
{
    llm_tokreader *r;
    int rc = llm_tokreader_open(f, name, &r);
    if (rc)
        return rc;
    size_t cap = 1024, len = 0;
    uint32_t *v = malloc(cap * sizeof *v);
    int64_t got;
    while (v && (got = llm_tokreader_read(r, v + len, 777 < cap - len ? 777 : cap - len)) > 0) {
        len += (size_t)got;
        if (cap - len < 777) {
            uint32_t *nv = realloc(v, (cap *= 2) * sizeof *v);
            if (!nv)
                free(v);
            v = nv;
        }
    }
    llm_tokreader_free(r);
    if (!v)
        return LLM_ERR_NOMEM;
    if (got < 0) {
        free(v);
        return (int)got;
    }
    *out = v;
    *n = len;
    return LLM_OK;
}

static void test_width(void)
{
    CHECK(llm_tokfile_width(1) == 2, "1");
    CHECK(llm_tokfile_width(8000) == 2, "8000");
    CHECK(llm_tokfile_width(65535) == 2, "65535");
    CHECK(llm_tokfile_width(65536) == 2, "65536: ids 0..65535 fit 16 bits");
    CHECK(llm_tokfile_width(65537) == 4, "65537");
    CHECK(llm_tokfile_width(1u << 31) == 4, "2^31");
}

/* The exact bytes of a small file, written out by hand from llm-formats(5). */
static void test_known_bytes(void)
{
    static const int32_t ids[] = {0, 1, 7999, 258};
    static const unsigned char want[] = {
        'L', 'L', 'M', 'T', 'O', 'K', 'S', 0,
        1, 0, 0, 0,           /* version */
        2, 0, 0, 0,           /* width */
        0x40, 0x1F, 0, 0,     /* vocabulary 8000 */
        0, 0, 0, 0,           /* reserved */
        4, 0, 0, 0, 0, 0, 0, 0, /* count, patched at close */
        0x00, 0x00, 0x01, 0x00, 0x3F, 0x1F, 0x02, 0x01,
    };
    const char *p = path_in("small.tok");
    FILE *f = fopen(p, "wb");
    CHECK(f && write_ids(f, 8000, ids, 4, 4) == LLM_OK, "write: %s", llm_errmsg());
    if (f)
        fclose(f);
    size_t n = 0;
    unsigned char *got = slurp(p, &n);
    CHECK(got && n == sizeof want && memcmp(got, want, n) == 0,
          "small.tok is %zu bytes, want %zu, or differs", n, sizeof want);
    free(got);

    /* Appending to an existing header: position 0 is not assumed. */
    f = fopen(p, "wb");
    if (f) {
        fputs("prefix", f);
        CHECK(write_ids(f, 8000, ids, 4, 1) == LLM_OK, "write after prefix");
        fclose(f);
        got = slurp(p, &n);
        CHECK(got && n == 6 + sizeof want && memcmp(got, "prefix", 6) == 0 &&
              memcmp(got + 6, want, sizeof want) == 0, "header after a prefix");
        free(got);
    }

    /* A stream in append mode cannot seek back: the count stays 0. */
    f = fopen(p, "wb");
    if (f)
        fclose(f);
    f = fopen(p, "ab");
    if (f) {
        CHECK(write_ids(f, 8000, ids, 4, 4) == LLM_OK, "write in append mode");
        fclose(f);
        got = slurp(p, &n);
        unsigned char w0[sizeof want];
        memcpy(w0, want, sizeof want);
        memset(w0 + 24, 0, 8);
        CHECK(got && n == sizeof want && memcmp(got, w0, n) == 0,
              "append mode: count must be 0");
        free(got);
    }
}

static uint32_t lcg(uint64_t *s)
{
    *s = *s * 6364136223846793005ull + 1442695040888963407ull;
    return (uint32_t)(*s >> 33);
}

/* Round trip through a regular file: mmap reader, streaming reader, and the
 * raw little-endian bytes at offset 32 (what numpy.memmap reads). */
static void test_roundtrip_file(uint32_t vocab, size_t n)
{
    int32_t *ids = malloc(n * sizeof *ids);
    uint64_t s = vocab;
    for (size_t i = 0; i < n; i++)
        ids[i] = (int32_t)(lcg(&s) % vocab);
    if (n > 2) {
        ids[0] = 0;
        ids[n - 1] = (int32_t)(vocab - 1);
    }
    uint32_t width = llm_tokfile_width(vocab);
    const char *p = path_in("rt.tok");
    FILE *f = fopen(p, "wb");
    CHECK(f && write_ids(f, vocab, ids, n, 1000) == LLM_OK, "write: %s", llm_errmsg());
    if (f)
        fclose(f);

    llm_tokfile *t;
    int rc = llm_tokfile_open(p, &t);
    CHECK(rc == LLM_OK, "open vocab %u: %s", vocab, llm_errmsg());
    if (rc == LLM_OK) {
        const llm_tokfile_header *h = llm_tokfile_info(t);
        CHECK(h->version == 1 && h->width == width && h->vocab_size == vocab &&
              h->count == n, "header %u %u %u %llu", h->version, h->width,
              h->vocab_size, (unsigned long long)h->count);
        CHECK(llm_tokfile_count(t) == n, "count");
        size_t bad = 0;
        for (size_t i = 0; i < n; i++)
            bad += llm_tokfile_get(t, i) != (uint32_t)ids[i];
        CHECK(bad == 0, "vocab %u: %zu ids differ after mmap", vocab, bad);
        llm_tokfile_close(t);
    }

    /* Raw bytes at offset 32, decoded here by hand as '<u2' or '<u4'. */
    size_t len = 0;
    unsigned char *raw = slurp(p, &len);
    CHECK(raw && len == 32 + n * width, "file size %zu", len);
    if (raw && len == 32 + n * width) {
        size_t bad = 0;
        for (size_t i = 0; i < n; i++) {
            const unsigned char *q = raw + 32 + i * width;
            uint32_t v = q[0] | (uint32_t)q[1] << 8;
            if (width == 4)
                v |= (uint32_t)q[2] << 16 | (uint32_t)q[3] << 24;
            bad += v != (uint32_t)ids[i];
        }
        CHECK(bad == 0, "vocab %u: %zu raw ids differ", vocab, bad);
        uint64_t c = 0;
        for (int k = 7; k >= 0; k--)
            c = c << 8 | raw[24 + k];
        CHECK(c == n, "raw count %llu", (unsigned long long)c);
    }
    free(raw);

    f = fopen(p, "rb");
    uint32_t *back = NULL;
    size_t nb = 0;
    rc = f ? read_stream(f, p, &back, &nb) : LLM_ERR_IO;
    CHECK(rc == LLM_OK && nb == n, "stream read: %d %s, %zu ids", rc, llm_errmsg(), nb);
    if (rc == LLM_OK) {
        size_t bad = 0;
        for (size_t i = 0; i < nb && i < n; i++)
            bad += back[i] != (uint32_t)ids[i];
        CHECK(bad == 0, "stream: %zu ids differ", bad);
    }
    free(back);
    if (f)
        fclose(f);
    free(ids);
}

/* Through pipes: the writer cannot seek, so the count stays 0 and readers
 * derive it from the size; the streaming reader reads from a pipe. */
static void test_roundtrip_pipe(uint32_t vocab, size_t n)
{
    int32_t *ids = malloc(n * sizeof *ids);
    uint64_t s = vocab + 1;
    for (size_t i = 0; i < n; i++)
        ids[i] = (int32_t)(lcg(&s) % vocab);
    char cmd[600];
    snprintf(cmd, sizeof cmd, "cat > '%s'", path_in("pipe.tok"));
    FILE *f = popen(cmd, "w");
    CHECK(f && write_ids(f, vocab, ids, n, 4096) == LLM_OK, "write to pipe: %s",
          llm_errmsg());
    CHECK(f && pclose(f) == 0, "pclose");

    size_t len = 0;
    unsigned char *raw = slurp(path_in("pipe.tok"), &len);
    uint32_t width = llm_tokfile_width(vocab);
    CHECK(raw && len == 32 + n * width, "pipe file size %zu", len);
    static const unsigned char zero[8];
    CHECK(raw && len >= 32 && memcmp(raw + 24, zero, 8) == 0,
          "count must be 0 after a pipe");
    free(raw);

    llm_tokfile *t;
    int rc = llm_tokfile_open(path_in("pipe.tok"), &t);
    CHECK(rc == LLM_OK, "open: %s", llm_errmsg());
    if (rc == LLM_OK) {
        CHECK(llm_tokfile_count(t) == n, "derived count %llu, want %zu",
              (unsigned long long)llm_tokfile_count(t), n);
        CHECK(llm_tokfile_info(t)->count == 0, "header count stays 0");
        size_t bad = 0;
        for (size_t i = 0; i < n && i < llm_tokfile_count(t); i++)
            bad += llm_tokfile_get(t, i) != (uint32_t)ids[i];
        CHECK(bad == 0, "%zu ids differ", bad);
        llm_tokfile_close(t);
    }

    snprintf(cmd, sizeof cmd, "cat '%s'", path_in("pipe.tok"));
    f = popen(cmd, "r");
    uint32_t *back = NULL;
    size_t nb = 0;
    rc = f ? read_stream(f, "-", &back, &nb) : LLM_ERR_IO;
    CHECK(rc == LLM_OK && nb == n, "read from pipe: %d %s, %zu ids", rc,
          llm_errmsg(), nb);
    if (rc == LLM_OK) {
        size_t bad = 0;
        for (size_t i = 0; i < nb && i < n; i++)
            bad += back[i] != (uint32_t)ids[i];
        CHECK(bad == 0, "pipe read: %zu ids differ", bad);
    }
    free(back);
    if (f)
        pclose(f);
    free(ids);
}

/* A header by hand, then `ndata` bytes of data. */
static size_t make(unsigned char *b, const char *magic, uint32_t ver,
                   uint32_t width, uint32_t vocab, uint32_t res, uint64_t count,
                   const unsigned char *data, size_t ndata)
{
    memcpy(b, magic, 8);
    uint32_t f[4] = {ver, width, vocab, res};
    for (int i = 0; i < 4; i++)
        for (int k = 0; k < 4; k++)
            b[8 + 4 * i + k] = (unsigned char)(f[i] >> (8 * k));
    for (int k = 0; k < 8; k++)
        b[24 + k] = (unsigned char)(count >> (8 * k));
    memcpy(b + 32, data, ndata);
    return 32 + ndata;
}

/* One malformed input through both readers: the status, and a piece of the
 * message each must contain (NULL: the stream reader accepts it). */
static void bad_case(const char *what, const unsigned char *b, size_t n,
                     int want_rc, const char *want_msg, int stream_rc,
                     const char *stream_msg)
{
    llm_tokfile *t = NULL;
    int rc = llm_tokfile_open_mem(b, n, "bad.tok", &t);
    CHECK(rc == want_rc && t == NULL, "%s: open_mem gave %d, want %d (%s)",
          what, rc, want_rc, llm_errmsg());
    CHECK(strstr(llm_errmsg(), want_msg) && strstr(llm_errmsg(), "'bad.tok'"),
          "%s: message '%s' lacks '%s'", what, llm_errmsg(), want_msg);
    llm_tokfile_close(t);

    FILE *f = fmemopen((void *)b, n, "rb");
    if (!f) {
        CHECK(0, "fmemopen");
        return;
    }
    llm_tokreader *r = NULL;
    rc = llm_tokreader_open(f, "bad.tok", &r);
    if (rc == LLM_OK) {
        uint32_t v[3];
        int64_t got;
        while ((got = llm_tokreader_read(r, v, 3)) > 0)
            ;
        rc = (int)got;
        /* The failure is sticky. */
        if (rc < 0)
            CHECK(llm_tokreader_read(r, v, 3) == rc, "%s: sticky", what);
    }
    CHECK(rc == stream_rc, "%s: stream gave %d, want %d (%s)", what, rc,
          stream_rc, llm_errmsg());
    if (stream_msg)
        CHECK(strstr(llm_errmsg(), stream_msg) != NULL,
              "%s: stream message '%s' lacks '%s'", what, llm_errmsg(), stream_msg);
    llm_tokreader_free(r);
    fclose(f);
}

static void test_malformed(void)
{
    unsigned char b[40000];
    /* ids 1, 2, 3, 4 as u16 */
    static const unsigned char d4[] = {1, 0, 2, 0, 3, 0, 4, 0, 9};
    const char *M = "LLMTOKS";
    const int F = LLM_ERR_FORMAT;
    size_t n;

    n = make(b, M, 1, 2, 8000, 0, 4, d4, 8);
    bad_case("truncated header", b, 20, F, "truncated header (20 bytes", F,
             "truncated header (20 bytes");
    bad_case("empty", b, 0, F, "truncated header (0 bytes", F, "truncated header");

    make(b, "LLMTOKZ", 1, 2, 8000, 0, 4, d4, 8);
    bad_case("bad magic", b, n, F, "bad magic (not a token file)", F, "not a token file");

    make(b, M, 2, 2, 8000, 0, 4, d4, 8);
    bad_case("newer version", b, n, LLM_ERR_UNSUPPORTED, "written by a newer version",
             LLM_ERR_UNSUPPORTED, "newer version");
    make(b, M, 0, 2, 8000, 0, 4, d4, 8);
    bad_case("version 0", b, n, F, "version 0 at offset 8", F, "version 0");

    make(b, M, 1, 3, 8000, 0, 4, d4, 8);
    bad_case("width 3", b, n, F, "token width 3 at offset 12", F, "width 3");
    make(b, M, 1, 8, 8000, 0, 4, d4, 8);
    bad_case("width 8", b, n, F, "token width 8", F, "width 8");

    make(b, M, 1, 2, 0, 0, 4, d4, 8);
    bad_case("vocab 0", b, n, F, "vocabulary size 0 at offset 16", F, "size 0");
    make(b, M, 1, 2, 70000, 0, 4, d4, 8);
    bad_case("width 2 vocab 70000", b, n, F, "70000 does not fit token width 2", F,
             "width 2");
    make(b, M, 1, 4, 0x80000000u, 0, 2, d4, 8);
    bad_case("vocab 2^31", b, n, LLM_ERR_UNSUPPORTED, "largest supported",
             LLM_ERR_UNSUPPORTED, "largest supported");

    make(b, M, 1, 2, 8000, 1, 4, d4, 8);
    bad_case("reserved 1", b, n, F, "reserved field at offset 20 is 1, not 0", F,
             "reserved");

    make(b, M, 1, 2, 8000, 0, 5, d4, 8);
    bad_case("count larger than data", b, n, F, "header says 5 tokens", F,
             "truncated: the header declares 5 tokens, the data ends after 4 at offset 40");
    make(b, M, 1, 2, 8000, 0, 3, d4, 8);
    bad_case("count smaller than data", b, n, F, "header says 3 tokens", F,
             "data past the 3 tokens the header declares, at offset 38");
    make(b, M, 1, 2, 8000, 0, UINT64_MAX, d4, 8);
    bad_case("huge count", b, n, F, "header says 18446744073709551615 tokens", F,
             "truncated");
    make(b, M, 1, 4, 300000, 0, 0x4000000000000002ull, d4, 8);
    bad_case("count * width overflows", b, n, F, "header says", F, "truncated");

    n = make(b, M, 1, 2, 8000, 0, 0, d4, 9);
    bad_case("trailing odd byte, count 0", b, n, F, "partial token at offset 40", F,
             "partial token at offset 40");
    make(b, M, 1, 2, 8000, 0, 4, d4, 9);
    bad_case("trailing odd byte, count 4", b, n, F, "header says 4 tokens", F,
             "data past the 4 tokens");
    n = make(b, M, 1, 4, 300000, 0, 0, d4, 7);
    bad_case("u32 partial token", b, n, F, "partial token at offset 36 (3 trailing", F,
             "partial token at offset 36 (3 trailing");

    /* An id past the vocabulary: the exact message. */
    static const unsigned char dbad[] = {1, 0, 2, 0, 0x28, 0x23};   /* 9000 */
    n = make(b, M, 1, 2, 8000, 0, 3, dbad, 6);
    bad_case("id >= vocab", b, n, F,
             "'bad.tok': token 2 at offset 36 is 9000, past the vocabulary size 8000",
             F, "'bad.tok': token 2 at offset 36 is 9000, past the vocabulary size 8000");
    static const unsigned char dedge[] = {0x3F, 0x1F, 0x40, 0x1F};  /* 7999, 8000 */
    n = make(b, M, 1, 2, 8000, 0, 0, dedge, 4);
    bad_case("id == vocab", b, n, F, "token 1 at offset 34 is 8000", F,
             "token 1 at offset 34 is 8000");
    static const unsigned char d32[] = {0, 0, 1, 0, 0xA0, 0x86, 0x01, 0};  /* 65536, 100000 */
    n = make(b, M, 1, 4, 100000, 0, 2, d32, 8);
    bad_case("u32 id == vocab", b, n, F, "token 1 at offset 36 is 100000, past the "
             "vocabulary size 100000", F, "token 1 at offset 36 is 100000");

    /* A bad id deep in the data, past the first validation block. */
    unsigned char many[2 * 10000];
    for (size_t i = 0; i < 10000; i++) {
        many[2 * i] = (unsigned char)(i % 50);
        many[2 * i + 1] = 0;
    }
    many[2 * 7777] = 50;   /* vocabulary 50: ids 0..49 */
    n = make(b, M, 1, 2, 50, 0, 0, many, sizeof many);
    bad_case("id deep in the data", b, n, F, "token 7777 at offset 15586 is 50", F,
             "token 7777 at offset 15586 is 50");
    many[2 * 7777] = 49;
    /* Around the 4096-id blocks the check works in, and in the short tail. */
    static const size_t at[] = {0, 4095, 4096, 8191, 8192, 9999};
    for (size_t k = 0; k < sizeof at / sizeof at[0]; k++) {
        unsigned char saved = many[2 * at[k] + 1];
        many[2 * at[k] + 1] = 1;   /* id 256 + x, past vocabulary 50 */
        n = make(b, M, 1, 2, 50, 0, 0, many, sizeof many);
        char want[80];
        snprintf(want, sizeof want, "token %zu at offset %zu is %u,", at[k],
                 32 + 2 * at[k], 256u + many[2 * at[k]]);
        bad_case("id at a block edge", b, n, F, want, F, want);
        many[2 * at[k] + 1] = saved;
    }
    n = make(b, M, 1, 2, 50, 0, 0, many, sizeof many);
    llm_tokfile *t;
    CHECK(llm_tokfile_open_mem(b, n, "ok.tok", &t) == LLM_OK &&
          llm_tokfile_count(t) == 10000 && llm_tokfile_get(t, 7777) == 49,
          "fixed: %s", llm_errmsg());
    llm_tokfile_close(t);

    /* Valid edge cases: no tokens; width 4 for a small vocabulary. */
    n = make(b, M, 1, 2, 8000, 0, 0, d4, 0);
    CHECK(llm_tokfile_open_mem(b, n, "e.tok", &t) == LLM_OK &&
          llm_tokfile_count(t) == 0, "empty token file: %s", llm_errmsg());
    llm_tokfile_close(t);
    static const unsigned char d32ok[] = {0, 0, 0, 0, 1, 0, 0, 0};
    n = make(b, M, 1, 4, 10, 0, 2, d32ok, 8);
    CHECK(llm_tokfile_open_mem(b, n, "w4.tok", &t) == LLM_OK &&
          llm_tokfile_get(t, 1) == 1, "width 4, vocabulary 10: %s", llm_errmsg());
    llm_tokfile_close(t);
    /* Unaligned buffer. */
    memmove(b + 1, b, n);
    CHECK(llm_tokfile_open_mem(b + 1, n, "u.tok", &t) == LLM_OK &&
          llm_tokfile_get(t, 0) == 0 && llm_tokfile_get(t, 1) == 1, "unaligned");
    llm_tokfile_close(t);

    CHECK(llm_tokfile_open(path_in("does-not-exist.tok"), &t) == LLM_ERR_IO &&
          strstr(llm_errmsg(), "No such file"), "missing file: %s", llm_errmsg());
    CHECK(t == NULL, "out set to NULL on failure");
}

static void test_writer_checks(void)
{
    llm_tokwriter *w;
    CHECK(llm_tokwriter_open(stdout, 0, &w) == LLM_ERR_INVALID, "vocab 0");
    CHECK(llm_tokwriter_open(stdout, 0x80000000u, &w) == LLM_ERR_INVALID, "vocab 2^31");

    const char *p = path_in("w.tok");
    FILE *f = fopen(p, "wb");
    if (!f)
        return;
    CHECK(llm_tokwriter_open(f, 100, &w) == LLM_OK, "open");
    static const int32_t good[] = {5, 99}, neg[] = {1, -1}, big[] = {100};
    CHECK(llm_tokwriter_write(w, good, 2) == LLM_OK, "good ids");
    CHECK(llm_tokwriter_write(w, neg, 2) == LLM_ERR_RANGE, "negative id");
    CHECK(strstr(llm_errmsg(), "token 3 is -1"), "message '%s'", llm_errmsg());
    CHECK(llm_tokwriter_write(w, big, 1) == LLM_ERR_RANGE, "id == vocab");
    CHECK(strstr(llm_errmsg(), "token 2 is 100, outside the vocabulary (size 100)"),
          "message '%s'", llm_errmsg());
    CHECK(llm_tokwriter_write(w, good, 2) == LLM_OK, "good ids again");
    CHECK(llm_tokwriter_close(w) == LLM_OK, "close");
    fclose(f);
    /* The rejected batches left nothing behind. */
    llm_tokfile *t;
    CHECK(llm_tokfile_open(p, &t) == LLM_OK && llm_tokfile_count(t) == 4 &&
          llm_tokfile_get(t, 2) == 5 && llm_tokfile_get(t, 3) == 99,
          "after rejected ids: %s", llm_errmsg());
    llm_tokfile_close(t);

    /* A write error is reported with the system's reason. */
    FILE *full = fopen("/dev/full", "wb");
    if (full) {
        int32_t *ids = calloc(100000, sizeof *ids);
        CHECK(llm_tokwriter_open(full, 100, &w) == LLM_OK, "open /dev/full");
        int rc = llm_tokwriter_write(w, ids, 100000);
        int rc2 = llm_tokwriter_close(w);
        CHECK(rc == LLM_ERR_IO || rc2 == LLM_ERR_IO, "write to /dev/full: %d %d", rc, rc2);
        CHECK(strstr(llm_errmsg(), "No space left"), "message '%s'", llm_errmsg());
        free(ids);
        fclose(full);
    }

    llm_tokwriter_close(NULL);
    llm_tokreader_free(NULL);
    llm_tokfile_close(NULL);
}

int main(void)
{
    const char *tmp = getenv("TMPDIR");
    snprintf(dir, sizeof dir, "%s/test_tokfile.XXXXXX", tmp && *tmp ? tmp : "/tmp");
    if (!mkdtemp(dir)) {
        perror("mkdtemp");
        return 1;
    }
    test_width();
    test_known_bytes();
    test_roundtrip_file(8000, 100000);
    test_roundtrip_file(65536, 70000);
    test_roundtrip_file(100000, 100000);
    test_roundtrip_file(3, 1);
    test_roundtrip_pipe(8000, 50000);
    test_roundtrip_pipe(1u << 20, 50000);
    test_malformed();
    test_writer_checks();

    static const char *names[] = {"small.tok", "rt.tok", "pipe.tok", "w.tok"};
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++)
        remove(path_in(names[i]));
    rmdir(dir);
    printf("test_tokfile: %d checks, %d failed\n", checks, failures);
    return failures ? 1 : 0;
}
