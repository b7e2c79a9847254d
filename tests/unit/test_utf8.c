/* test_utf8.c: llm_utf8_check against a table (bad offsets as Python's
 * UnicodeDecodeError.start reports them) and against a naive decoder. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

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

/* valid: 1, or 0 with the offset where the first bad sequence starts. These
 * were cross-checked with Python 3: bytes.decode('utf-8') and e.start. */
static const struct {
    const char *s;
    size_t n;
    int valid;
    size_t bad;
} table[] = {
    {"", 0, 1, 0},
    {"hello", 5, 1, 0},
    {"a\0b", 3, 1, 0},
    {"caf\xc3\xa9", 5, 1, 0},
    {"\xc2\x80", 2, 1, 0},                  /* U+0080, smallest 2-byte */
    {"\xdf\xbf", 2, 1, 0},                  /* U+07FF */
    {"\xe0\xa0\x80", 3, 1, 0},              /* U+0800, smallest 3-byte */
    {"\xe2\x82\xac", 3, 1, 0},              /* euro sign */
    {"\xed\x9f\xbf", 3, 1, 0},              /* U+D7FF, just below surrogates */
    {"\xee\x80\x80", 3, 1, 0},              /* U+E000, just above */
    {"\xef\xbf\xbf", 3, 1, 0},              /* U+FFFF */
    {"\xf0\x90\x80\x80", 4, 1, 0},          /* U+10000 */
    {"\xf0\x9f\x98\x80", 4, 1, 0},          /* emoji */
    {"\xf4\x8f\xbf\xbf", 4, 1, 0},          /* U+10FFFF, the last */
    {"\xc0\x80", 2, 0, 0},                  /* overlong NUL */
    {"\xc1\xbf", 2, 0, 0},                  /* overlong U+007F */
    {"\xe0\x80\x80", 3, 0, 0},              /* overlong NUL, 3 bytes */
    {"\xe0\x9f\xbf", 3, 0, 0},              /* overlong U+07FF */
    {"\xf0\x80\x80\x80", 4, 0, 0},          /* overlong NUL, 4 bytes */
    {"\xf0\x8f\xbf\xbf", 4, 0, 0},          /* overlong U+FFFF */
    {"\xed\xa0\x80", 3, 0, 0},              /* U+D800, a surrogate */
    {"\xed\xbf\xbf", 3, 0, 0},              /* U+DFFF */
    {"\xf4\x90\x80\x80", 4, 0, 0},          /* U+110000 */
    {"\xf5\x80\x80\x80", 4, 0, 0},
    {"\xf8\x88\x80\x80\x80", 5, 0, 0},      /* old 5-byte form */
    {"\xfc\x84\x80\x80\x80\x80", 6, 0, 0},  /* old 6-byte form */
    {"\xfe", 1, 0, 0},
    {"\xff", 1, 0, 0},
    {"\x80", 1, 0, 0},                      /* lone continuation */
    {"\xbf", 1, 0, 0},
    {"abc\x80", 4, 0, 3},
    {"ab\xc3", 3, 0, 2},                    /* truncated at the end */
    {"ab\xe2\x82", 4, 0, 2},
    {"ab\xf0\x9f\x98", 5, 0, 2},
    {"ab\xe2\x82x", 5, 0, 2},               /* cut short by ASCII */
    {"ab\xf0\x9f\x98x", 6, 0, 2},
    {"\xc3\xa9\xc3", 3, 0, 2},
    {"\xc3(", 2, 0, 0},
    {"\xe2(\xa1", 3, 0, 0},
    {"\xf0(\x8c(", 4, 0, 0},
    /* Past the 8-byte ASCII fast path, then a surrogate. */
    {"0123456789abcdef\xc3\xa9xyz0123456789\xed\xa0\x80", 34, 0, 31},
};

/* Reference: decode by the definition (bit patterns, then the range of the
 * code point), independent of the lead-byte table the library uses. */
static int ref_check(const unsigned char *s, size_t n, size_t *bad)
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

/* llm_utf8_repair(): exact outputs, one U+FFFD per bad sequence. */
static void repair(void)
{
    static const struct { const char *in; size_t n; const char *want; size_t k; } t[] = {
        { "abc", 3, "abc", 0 },
        { "a\xff" "b", 3, "a\xEF\xBF\xBD" "b", 1 },
        { "\xe4\xb8", 2, "\xEF\xBF\xBD", 1 },                 /* a cut character */
        { "\x80\x80\x80\x80\x80", 5, "\xEF\xBF\xBD\xEF\xBF\xBD", 2 },   /* 4 + 1 strays */
        { "\xe4\xb8\xad", 3, "\xe4\xb8\xad", 0 },
        { "x\xc3(", 3, "x\xEF\xBF\xBD(", 1 },
        { "", 0, "", 0 },
    };
    for (size_t i = 0; i < sizeof t / sizeof t[0]; i++) {
        llm_buf b = { 0 };
        size_t k = 99;
        int rc = llm_utf8_repair(t[i].in, t[i].n, &b, &k);
        size_t wn = strlen(t[i].want);
        CHECK(rc == LLM_OK && k == t[i].k && b.len == wn &&
              (wn == 0 || memcmp(b.data, t[i].want, wn) == 0),
              "repair case %zu: rc %d, %zu replacements, %zu bytes", i, rc, k, b.len);
        llm_buf_free(&b);
    }
}

/* llm_utf8_columns(): East Asian wide characters take 2 columns (as
 * Python's unicodedata.east_asian_width 'W'/'F' says), combining marks 0;
 * the prefix that fits keeps whole characters, marks with their base. */
static void columns(void)
{
    static const struct { const char *in; size_t max, cols, fit; } t[] = {
        { "label", 3, 5, 3 },
        { "\xe4\xbd\x93\xe8\x82\xb2", 3, 4, 3 },              /* 2 CJK: 2 + 2, one fits in 3 */
        { "\xe4\xbd\x93\xe8\x82\xb2", 4, 4, 6 },
        { "e\xcc\x81t\xc3\xa9", 1, 3, 3 },                     /* e + U+0301: 1 column */
        { "\xef\xbc\xa1" "b", 2, 3, 3 },                       /* full-width A: 2 */
        { "a\xe2\x80\x8b" "b", 9, 2, 5 },                      /* zero-width space: 0 */
        { "a\xff" "b", 2, 3, 2 },                              /* an invalid byte: 1 */
        { "", 0, 0, 0 },
    };
    for (size_t i = 0; i < sizeof t / sizeof t[0]; i++) {
        size_t fit = 99, cols = llm_utf8_columns(t[i].in, strlen(t[i].in), t[i].max, &fit);
        CHECK(cols == t[i].cols && fit == t[i].fit, "columns case %zu: %zu columns (want %zu), "
              "%zu bytes fit in %zu (want %zu)", i, cols, t[i].cols, fit, t[i].max, t[i].fit);
    }
}

int main(void)
{
    repair();
    columns();
    for (size_t t = 0; t < sizeof table / sizeof table[0]; t++) {
        size_t bad = 12345;
        int v = llm_utf8_check(table[t].s, table[t].n, &bad);
        CHECK(v == table[t].valid, "case %zu: got %d, want %d", t, v, table[t].valid);
        if (!table[t].valid)
            CHECK(bad == table[t].bad, "case %zu: bad offset %zu, want %zu",
                  t, bad, table[t].bad);
        /* A NULL `bad` is allowed. */
        CHECK(llm_utf8_check(table[t].s, table[t].n, NULL) == table[t].valid,
              "case %zu with NULL bad", t);
    }

    /* Every code point, encoded by hand, is valid unless it is a surrogate. */
    for (unsigned long cp = 0; cp <= 0x10FFFF; cp++) {
        unsigned char b[4];
        size_t n;
        if (cp < 0x80) { b[0] = (unsigned char)cp; n = 1; }
        else if (cp < 0x800) {
            b[0] = (unsigned char)(0xC0 | cp >> 6);
            b[1] = (unsigned char)(0x80 | (cp & 0x3F)); n = 2;
        } else if (cp < 0x10000) {
            b[0] = (unsigned char)(0xE0 | cp >> 12);
            b[1] = (unsigned char)(0x80 | (cp >> 6 & 0x3F));
            b[2] = (unsigned char)(0x80 | (cp & 0x3F)); n = 3;
        } else {
            b[0] = (unsigned char)(0xF0 | cp >> 18);
            b[1] = (unsigned char)(0x80 | (cp >> 12 & 0x3F));
            b[2] = (unsigned char)(0x80 | (cp >> 6 & 0x3F));
            b[3] = (unsigned char)(0x80 | (cp & 0x3F)); n = 4;
        }
        int want = !(cp >= 0xD800 && cp <= 0xDFFF);
        size_t bad = 0;
        int got = llm_utf8_check((const char *)b, n, &bad);
        if (got != want) {
            CHECK(got == want, "U+%04lX: got %d, want %d", cp, got, want);
            break;
        }
    }

    /* Every 1-, 2- and 3-byte string against the reference decoder. */
    long mismatches = 0;
    for (unsigned long x = 0; x < (1ul << 24) && mismatches < 5; x++) {
        unsigned char b[3] = {(unsigned char)(x >> 16), (unsigned char)(x >> 8),
                              (unsigned char)x};
        for (size_t n = 1; n <= 3; n++) {
            if ((n == 1 && x >= 0x100) || (n == 2 && x >= 0x10000))
                continue;   /* shorter strings: enumerate each once */
            const unsigned char *s = b + 3 - n;
            size_t rb = 0, lb = 0;
            int r = ref_check(s, n, &rb);
            int l = llm_utf8_check((const char *)s, n, &lb);
            if (r != l || (!r && rb != lb)) {
                mismatches++;
                CHECK(0, "%02X %02X %02X (n=%zu): got %d@%zu, reference %d@%zu",
                      b[0], b[1], b[2], n, l, lb, r, rb);
            }
        }
    }

    /* Lead bytes F0..FF with interesting continuations, and 4-byte strings
     * placed after ASCII runs of every length up to 17 (the fast path). */
    static const unsigned char cont[] = {0x00, 0x41, 0x7F, 0x80, 0x8F, 0x90,
                                         0x9F, 0xA0, 0xBF, 0xC0, 0xFF};
    size_t nc = sizeof cont;
    for (unsigned lead = 0xF0; lead <= 0xFF; lead++)
        for (size_t a = 0; a < nc; a++)
            for (size_t c = 0; c < nc; c++)
                for (size_t d = 0; d < nc; d++)
                    for (size_t pre = 0; pre <= 17; pre += 17) {
                        unsigned char s[32];
                        memset(s, 'x', pre);
                        s[pre] = (unsigned char)lead;
                        s[pre + 1] = cont[a];
                        s[pre + 2] = cont[c];
                        s[pre + 3] = cont[d];
                        size_t n = pre + 4, rb = 0, lb = 0;
                        int r = ref_check(s, n, &rb);
                        int l = llm_utf8_check((const char *)s, n, &lb);
                        if ((r != l || (!r && rb != lb)) && mismatches++ < 5)
                            CHECK(0, "pre %zu %02X %02X %02X %02X: got %d@%zu, "
                                  "reference %d@%zu", pre, lead, cont[a],
                                  cont[c], cont[d], l, lb, r, rb);
                    }

    /* A long valid text with a bad byte at each position of a 9-byte window,
     * so that the ASCII fast path hands over at every alignment. */
    char big[4096];
    for (size_t i = 0; i < sizeof big; i++)
        big[i] = (char)('a' + i % 26);
    for (size_t pos = 4000; pos < 4009; pos++) {
        char saved = big[pos];
        big[pos] = (char)0x80;
        size_t bad = 0;
        CHECK(llm_utf8_check(big, sizeof big, &bad) == 0 && bad == pos,
              "bad byte at %zu reported at %zu", pos, bad);
        big[pos] = saved;
    }
    CHECK(llm_utf8_check(big, sizeof big, NULL) == 1, "long ASCII text");

    printf("test_utf8: %d checks, %d failed\n", checks, failures);
    return failures ? 1 : 0;
}
