/* corpus.c: text and token files into a token stream, as llm-train and
 * llm-eval both read them (one copy, so that a loss measured by one is the
 * loss measured by the other), and the bytes of text a span of tokens stands
 * for (the denominator of bits per byte). */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "internal.h"

int llm_data_add_text(llm_data *d, const llm_tok *tok, FILE *f, const char *name)
{
    llm_lines *r;
    int rc = llm_lines_open(f, &r);
    if (rc)
        return rc;
    llm_ids ids = { 0 };
    const char *line;
    size_t len;
    /* BOS where the tokenizer's own users put it (SentencePiece models:
     * always; pretrained byte-level BPE: as their flag says); EOS ends
     * every line. */
    int bos = llm_tok_add_bos(tok) ? llm_tok_bos_id(tok) : -1, eos = llm_tok_eos_id(tok);
    while ((rc = llm_lines_next(r, &line, &len)) == 1) {
        if (len && line[len - 1] == '\r')
            len--;
        if (len == 0)
            continue;
        size_t bad;
        if (!llm_utf8_check(line, len, &bad)) {
            rc = llm_fail(LLM_ERR_UTF8, "'%s', line %lld: invalid UTF-8 at byte %zu", name,
                          (long long)llm_lines_number(r), bad + 1);
            break;
        }
        ids.len = 0;
        rc = bos >= 0 ? llm_ids_push(&ids, bos) : LLM_OK;
        if (!rc && (rc = llm_tok_encode(tok, line, len, &ids)) != LLM_OK)
            rc = llm_fail_cause(rc, "'%s', line %lld", name, (long long)llm_lines_number(r));
        if (!rc && eos >= 0)
            rc = llm_ids_push(&ids, eos);
        if (!rc)
            rc = llm_data_add_ids(d, ids.data, ids.len);
        if (rc)
            break;
    }
    if (rc < 0 && rc == LLM_ERR_IO)   /* from the reader: name the file */
        rc = llm_fail_cause(rc, "'%s'", name);
    llm_lines_free(r);
    llm_ids_free(&ids);
    return rc < 0 ? rc : LLM_OK;
}

/* A token stream from a FILE (standard input read whole: it cannot be mapped). */
static int add_token_stream(llm_data *d, FILE *f, const char *name)
{
    llm_tokreader *r;
    int rc = llm_tokreader_open(f, name, &r);
    if (rc)
        return rc;
    if (llm_tokreader_info(r)->vocab_size != llm_data_vocab(d)) {
        rc = llm_fail(LLM_ERR_FORMAT, "%s: token file has vocabulary size %u, the "
                      "tokenizer has %u", name, llm_tokreader_info(r)->vocab_size,
                      llm_data_vocab(d));
        llm_tokreader_free(r);
        return rc;
    }
    enum { N = 4096 };
    uint32_t buf[N];
    int32_t ids[N];
    int64_t got;
    while ((got = llm_tokreader_read(r, buf, N)) > 0) {
        for (int64_t i = 0; i < got; i++)
            ids[i] = (int32_t)buf[i];
        if ((rc = llm_data_add_ids(d, ids, (size_t)got)) != LLM_OK)
            break;
    }
    if (got < 0)
        rc = (int)got;
    llm_tokreader_free(r);
    return rc;
}

/* Standard input and other streams that cannot be mapped or rewound (pipes,
 * process substitution) are read whole, then told apart by their magic. */
static int add_stream(llm_data *d, const llm_tok *tok, FILE *in, const char *name)
{
    llm_buf b = { 0 };
    char chunk[1 << 16];
    size_t n;
    int rc = LLM_OK;
    while (rc == LLM_OK && (n = fread(chunk, 1, sizeof chunk, in)) > 0)
        rc = llm_buf_append(&b, chunk, n);
    if (rc == LLM_OK && ferror(in))
        rc = in == stdin ? llm_fail(LLM_ERR_IO, "read error on standard input: %s",
                                    strerror(errno))
                         : llm_fail(LLM_ERR_IO, "read error on '%s': %s", name,
                                    strerror(errno));
    if (rc || b.len == 0) {
        llm_buf_free(&b);
        return rc;
    }
    FILE *f = fmemopen(b.data, b.len, "rb");
    if (!f) {
        llm_buf_free(&b);
        return llm_fail(LLM_ERR_NOMEM, "out of memory");
    }
    if (b.len >= 8 && memcmp(b.data, LLM_TOKFILE_MAGIC, 8) == 0)
        rc = add_token_stream(d, f, name);
    else
        rc = llm_data_add_text(d, tok, f, name);
    fclose(f);
    llm_buf_free(&b);
    return rc;
}

int llm_data_add_input(llm_data *d, const llm_tok *tok, const char *path)
{
    if (!path || strcmp(path, "-") == 0)
        return add_stream(d, tok, stdin, "(standard input)");
    FILE *f = fopen(path, "rb");
    if (!f)
        return llm_fail(LLM_ERR_IO, "cannot open '%s': %s", path, strerror(errno));
    struct stat st;
    if (fstat(fileno(f), &st) == 0 && S_ISDIR(st.st_mode)) {
        fclose(f);
        return llm_fail(LLM_ERR_IO, "cannot read '%s': %s", path, strerror(EISDIR));
    }
    int rc;
    if (fstat(fileno(f), &st) != 0 || !S_ISREG(st.st_mode)) {
        rc = add_stream(d, tok, f, path);
        fclose(f);
        return rc;
    }
    unsigned char magic[8];
    size_t n = fread(magic, 1, sizeof magic, f);
    if (n == 8 && memcmp(magic, LLM_TOKFILE_MAGIC, 8) == 0) {
        fclose(f);
        return llm_data_add_file(d, path);
    }
    if (fseeko(f, 0, SEEK_SET) != 0)
        rc = llm_fail(LLM_ERR_IO, "cannot read '%s': %s", path, strerror(errno));
    else
        rc = llm_data_add_text(d, tok, f, path);
    fclose(f);
    return rc;
}

/* Bytes of the decoded run ids[0..n); with skip_first, less those of ids[0]
 * (a context token that only makes the next piece decode as it does inside
 * its document, e.g. keep the space SentencePiece writes as its "_"). */
static int run_bytes(const llm_tok *tok, const llm_ids *run, int skip_first,
                     llm_buf *text, uint64_t *bytes)
{
    if (run->len == 0)
        return LLM_OK;
    text->len = 0;
    int rc = llm_tok_decode(tok, run->data, run->len, text);
    if (rc)
        return rc;
    size_t n = text->len;
    if (skip_first) {
        text->len = 0;
        if ((rc = llm_tok_decode(tok, run->data, 1, text)))
            return rc;
        n = n >= text->len ? n - text->len : 0;
    }
    *bytes += n;
    return LLM_OK;
}

int llm_data_text_bytes(const llm_data *d, const llm_tok *tok, uint64_t first, uint64_t n,
                        uint64_t *bytes)
{
    /* Each document (the ids between BOS/EOS) is decoded on its own, as it
     * was encoded: decoding across documents would turn each document's
     * leading "_" into a space the text does not have. */
    *bytes = 0;
    int bos = llm_tok_bos_id(tok), eos = llm_tok_eos_id(tok);
    enum { K = 4096 };
    int32_t ids[K];
    llm_buf text = { 0 };
    llm_ids run = { 0 };
    int rc = LLM_OK, skip_first = 0;
    if (n && first > 0) {   /* starting inside a document: its previous id as context */
        int32_t prev;
        rc = llm_data_read(d, first - 1, 1, &prev);
        if (rc == LLM_OK && prev != bos && prev != eos) {
            rc = llm_ids_push(&run, prev);
            skip_first = 1;
        }
    }
    for (uint64_t p = 0; p < n && rc == LLM_OK; ) {
        size_t k = n - p < K ? (size_t)(n - p) : K;
        rc = llm_data_read(d, first + p, k, ids);
        for (size_t i = 0; i < k && rc == LLM_OK; i++) {
            if (ids[i] == bos || ids[i] == eos) {
                rc = run_bytes(tok, &run, skip_first, &text, bytes);
                run.len = 0;
                skip_first = 0;
                *bytes += ids[i] == eos;   /* the line end */
            } else {
                rc = llm_ids_push(&run, ids[i]);
            }
        }
        p += k;
    }
    if (rc == LLM_OK)
        rc = run_bytes(tok, &run, skip_first, &text, bytes);
    llm_buf_free(&text);
    llm_ids_free(&run);
    return rc;
}
