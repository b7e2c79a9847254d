/* utf8.c: strict UTF-8 validation (RFC 3629), with a fast path for ASCII;
 * repair; display columns (utf8proc's character widths). */
#include <string.h>

#include <utf8proc.h>

#include "internal.h"

/* Eight bytes at a time while the text is ASCII, which most of it is: memcpy
 * keeps the load legal at any alignment and compiles to one instruction. */
static size_t ascii_run(const unsigned char *s, size_t n)
{
    size_t i = 0;
    while (i + 8 <= n) {
        uint64_t w;
        memcpy(&w, s + i, 8);
        if (w & UINT64_C(0x8080808080808080))
            break;
        i += 8;
    }
    while (i < n && s[i] < 0x80)
        i++;
    return i;
}

int llm_utf8_check(const char *str, size_t n, size_t *bad)
{
    const unsigned char *s = (const unsigned char *)str;
    size_t i = 0;
    while (i < n) {
        if (s[i] < 0x80) {
            i += ascii_run(s + i, n - i);
            continue;
        }
        unsigned c = s[i];
        size_t len;
        /* The allowed range of the second byte excludes overlongs (E0, F0),
         * surrogates (ED) and code points past U+10FFFF (F4), per the table
         * in RFC 3629 section 4. */
        unsigned lo = 0x80, hi = 0xBF;
        if (c >= 0xC2 && c <= 0xDF) {
            len = 2;
        } else if (c >= 0xE0 && c <= 0xEF) {
            len = 3;
            if (c == 0xE0)
                lo = 0xA0;
            else if (c == 0xED)
                hi = 0x9F;
        } else if (c >= 0xF0 && c <= 0xF4) {
            len = 4;
            if (c == 0xF0)
                lo = 0x90;
            else if (c == 0xF4)
                hi = 0x8F;
        } else {
            /* 80..BF stray continuation, C0/C1 overlong, F5..FF out of range
             * or the old 5- and 6-byte forms. */
            if (bad)
                *bad = i;
            return 0;
        }
        /* Report the lead byte of a sequence that is cut short or broken:
         * that is where the bad character starts. */
        if (n - i < len || s[i + 1] < lo || s[i + 1] > hi) {
            if (bad)
                *bad = i;
            return 0;
        }
        for (size_t k = 2; k < len; k++) {
            if ((s[i + k] & 0xC0) != 0x80) {
                if (bad)
                    *bad = i;
                return 0;
            }
        }
        i += len;
    }
    return 1;
}

int llm_utf8_repair(const char *s, size_t n, llm_buf *out, size_t *replaced)
{
    size_t fixed = 0;
    while (n) {
        size_t bad;
        if (llm_utf8_check(s, n, &bad)) {
            if (llm_buf_append(out, s, n))
                return llm_fail(LLM_ERR_NOMEM, "out of memory");
            break;
        }
        if (llm_buf_append(out, s, bad) || llm_buf_append(out, "\xEF\xBF\xBD", 3))
            return llm_fail(LLM_ERR_NOMEM, "out of memory");
        fixed++;
        /* The bad lead byte and up to 3 continuation bytes after it: a valid
         * sequence never starts with a continuation byte, so none is lost. */
        size_t skip = 1;
        while (bad + skip < n && ((unsigned char)s[bad + skip] & 0xC0) == 0x80 && skip < 4)
            skip++;
        s += bad + skip;
        n -= bad + skip;
    }
    if (replaced)
        *replaced = fixed;
    return LLM_OK;
}

int llm_utf8_skip_bom(const char **s, size_t *n)
{
    if (*n < 3 || memcmp(*s, "\xEF\xBB\xBF", 3) != 0)
        return 0;
    *s += 3;
    *n -= 3;
    return 1;
}

size_t llm_utf8_columns(const char *s, size_t n, size_t max, size_t *fit)
{
    const utf8proc_uint8_t *u = (const utf8proc_uint8_t *)s;
    size_t cols = 0, i = 0, ok = 0;
    int over = 0;
    while (i < n) {
        utf8proc_int32_t c;
        utf8proc_ssize_t k = utf8proc_iterate(u + i, (utf8proc_ssize_t)(n - i), &c);
        int w = 1;
        if (k <= 0)
            k = 1;   /* an invalid byte: one column, as a replacement character */
        else
            w = utf8proc_charwidth(c);
        cols += (size_t)w;
        i += (size_t)k;
        over |= cols > max;
        if (!over)
            ok = i;   /* (a zero-width mark after the last fitting base stays) */
    }
    if (fit)
        *fit = ok;
    return cols;
}
