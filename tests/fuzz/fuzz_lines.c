/* fuzz_lines.c: the line reader over arbitrary bytes (the lines put back
 * together must give the input, less a byte-order mark at its start), and llm_utf8_check on each line against a
 * decoder written from the definition. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "llm.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static int ref_utf8(const unsigned char *s, size_t n, size_t *bad)
{
    size_t i = 0;
    while (i < n) {
        unsigned c = s[i];
        size_t len;
        unsigned long cp, min;
        if (c < 0x80) { len = 1; cp = c; min = 0; }
        else if ((c & 0xE0) == 0xC0) { len = 2; cp = c & 0x1F; min = 0x80; }
        else if ((c & 0xF0) == 0xE0) { len = 3; cp = c & 0x0F; min = 0x800; }
        else if ((c & 0xF8) == 0xF0) { len = 4; cp = c & 0x07; min = 0x10000; }
        else { *bad = i; return 0; }
        if (n - i < len) { *bad = i; return 0; }
        for (size_t k = 1; k < len; k++) {
            if ((s[i + k] & 0xC0) != 0x80) { *bad = i; return 0; }
            cp = cp << 6 | (s[i + k] & 0x3F);
        }
        if (cp < min || (cp >= 0xD800 && cp <= 0xDFFF) || cp > 0x10FFFF) {
            *bad = i;
            return 0;
        }
        i += len;
    }
    return 1;
}

static void check_utf8(const char *s, size_t n)
{
    size_t b1 = 0, b2 = 0;
    int v1 = llm_utf8_check(s, n, &b1);
    int v2 = ref_utf8((const unsigned char *)s, n, &b2);
    if (v1 != v2 || (!v1 && b1 != b2))
        abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    check_utf8((const char *)data, size);
    if (size == 0)
        return 0;   /* fmemopen() of zero bytes is not portable */
    FILE *f = fmemopen((void *)data, size, "rb");
    if (!f)
        return 0;
    llm_lines *r;
    if (llm_lines_open(f, &r) != LLM_OK)
        abort();
    const char *line;
    size_t len, pos = 0;
    int64_t num = 0;
    if (size >= 3 && memcmp(data, "\xEF\xBB\xBF", 3) == 0)
        pos = 3;   /* a byte-order mark before the first line is dropped */
    int rc;
    while ((rc = llm_lines_next(r, &line, &len)) == 1) {
        num++;
        if (llm_lines_number(r) != num || line[len] != '\0' || len > size - pos ||
            memchr(line, '\n', len) || memcmp(line, data + pos, len) != 0)
            abort();
        pos += len;
        /* Every line but possibly the last ends with "\n" in the input. */
        if (pos < size) {
            if (data[pos] != '\n')
                abort();
            pos++;
        }
        check_utf8(line, len);
    }
    if (rc != 0 || pos != size)
        abort();
    llm_lines_free(r);
    fclose(f);
    return 0;
}
