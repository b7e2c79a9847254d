/* fuzz_pairs.c: pairs-file lines (llm_pairs_parse()) over arbitrary bytes,
 * and packing. Each input line is parsed: on success both fields are valid
 * UTF-8 and NUL-terminated at their length, and re-escaping them as a JSON
 * line parses back to the same fields; so does a tab line, unless the input
 * starts with '{' (a tab line that is a whole JSON object reads as JSON, as
 * llm_pairs_parse() says). The byte values of the successful fields then
 * make examples (ids = bytes, prompt = the input's length + 1), packed
 * into rows of 8 to 40: every kept example appears once, whole, with
 * targets exactly on its output and starts at its first position. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "llm.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void escape(llm_buf *b, const char *s, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        const char *e = s[i] == '\t' ? "\\t" : s[i] == '\n' ? "\\n" : s[i] == '\r' ? "\\r"
                        : s[i] == '\\' ? "\\\\" : NULL;
        if (llm_buf_append(b, e ? e : s + i, e ? 2 : 1))
            abort();
    }
}

/* s[0, n) as the inside of a JSON string: quote, backslash and control
 * characters escaped, the rest (valid UTF-8) as it is. */
static void escape_json(llm_buf *b, const char *s, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        char e[8];
        int k = 0;
        if (c == '"' || c == '\\')
            k = snprintf(e, sizeof e, "\\%c", c);
        else if (c < 0x20)
            k = snprintf(e, sizeof e, "\\u%04x", c);
        if (llm_buf_append(b, k ? e : s + i, k ? (size_t)k : 1))
            abort();
    }
}

/* Whether `line` parses back to the fields in and out. */
static int same(const llm_buf *line, llm_buf *in2, llm_buf *out2, const llm_buf *in,
                const llm_buf *out)
{
    return llm_pairs_parse(line->data, line->len, in2, out2) == LLM_OK &&
           in2->len == in->len && out2->len == out->len &&
           !memcmp(in2->data, in->data, in->len) && !memcmp(out2->data, out->data, out->len);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const char *p = (const char *)data, *end = p + size;
    llm_buf in = { 0 }, out = { 0 }, line = { 0 }, in2 = { 0 }, out2 = { 0 };
    llm_pairs *d;
    if (llm_pairs_new(&d))
        return 0;
    while (p < end) {
        const char *nl = memchr(p, '\n', (size_t)(end - p));
        size_t n = nl ? (size_t)(nl - p) : (size_t)(end - p);
        if (llm_pairs_parse(p, n, &in, &out) == LLM_OK) {
            size_t bad;
            if (!llm_utf8_check(in.data, in.len, &bad) ||
                !llm_utf8_check(out.data, out.len, &bad) || in.data[in.len] || out.data[out.len])
                abort();
            line.len = 0;
            escape(&line, in.data, in.len);
            llm_buf_append(&line, "\t", 1);
            escape(&line, out.data, out.len);
            if (!(in.len && in.data[0] == '{') && !same(&line, &in2, &out2, &in, &out))
                abort();
            line.len = 0;
            llm_buf_append(&line, "{\"input\": \"", 11);
            escape_json(&line, in.data, in.len);
            llm_buf_append(&line, "\", \"output\": \"", 14);
            escape_json(&line, out.data, out.len);
            llm_buf_append(&line, "\"}", 2);
            if (!same(&line, &in2, &out2, &in, &out))
                abort();
            int32_t ids[64];
            size_t k = 0;
            ids[k++] = 1;
            for (size_t i = 0; i < in.len && k < 32; i++)
                ids[k++] = (unsigned char)in.data[i];
            size_t np = k;
            for (size_t i = 0; i < out.len && k < 63; i++)
                ids[k++] = (unsigned char)out.data[i];
            ids[k++] = 2;
            if (llm_pairs_add(d, ids, k, np))
                abort();
        }
        p += n + (nl != NULL);
    }
    size_t count = llm_pairs_count(d), dropped, cut;
    int T = 8 + (int)(size % 33);
    if (count && llm_pairs_pack(d, T, size & 1, size, &dropped, &cut) == LLM_OK) {
        int32_t tok[40], tgt[40], st[40];
        size_t seen = 0, rows = llm_pairs_rows(d);
        for (size_t r = 0; r < rows; r++) {
            size_t used = llm_pairs_row(d, r, tok, tgt, st);
            if (used == 0 || used > (size_t)T)
                abort();
            for (int t = 0; t < T; t++) {
                if (st[t] < 0 || st[t] > t)
                    abort();
                if ((size_t)t >= used && !(st[t] == t && tok[t] == 0 && tgt[t] == -1))
                    abort();
                if (t > 0 && (size_t)t < used && st[t] != st[t - 1] && st[t] != t)
                    abort();
                if ((size_t)t < used && st[t] == t)
                    seen++;
            }
        }
        if (seen + dropped != count || cut > seen)
            abort();
    }
    llm_pairs_free(d);
    llm_buf_free(&in);
    llm_buf_free(&out);
    llm_buf_free(&line);
    llm_buf_free(&in2);
    llm_buf_free(&out2);
    return 0;
}
