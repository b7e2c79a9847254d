/* test_lines.c: the line reader on known inputs: empty, no final newline,
 * CRLF kept, embedded NULs, a 10 MB line, many lines, a pipe. */
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

/* A regular file holding exactly these bytes, positioned at the start. */
static FILE *file_of(const void *p, size_t n)
{
    FILE *f = tmpfile();
    if (!f || fwrite(p, 1, n, f) != n || fseek(f, 0, SEEK_SET) != 0) {
        perror("tmpfile");
        exit(1);
    }
    return f;
}

struct want {
    const char *s;
    size_t n;
};

/* Reads `f` to the end and compares with the expected lines, in order. */
static void expect_lines(const char *what, FILE *f, const struct want *w, size_t nw)
{
    llm_lines *r;
    CHECK(llm_lines_open(f, &r) == LLM_OK, "%s: open", what);
    CHECK(llm_lines_number(r) == 0, "%s: number before the first line", what);
    const char *line;
    size_t len;
    size_t i = 0;
    int rc;
    while ((rc = llm_lines_next(r, &line, &len)) == 1) {
        if (i >= nw) {
            CHECK(i < nw, "%s: extra line %zu (%zu bytes)", what, i + 1, len);
            break;
        }
        CHECK(len == w[i].n && memcmp(line, w[i].s, len) == 0,
              "%s: line %zu is %zu bytes '%.*s', want %zu bytes '%.*s'", what,
              i + 1, len, (int)len, line, w[i].n, (int)w[i].n, w[i].s);
        CHECK(line[len] == '\0', "%s: line %zu not NUL-terminated", what, i + 1);
        CHECK(llm_lines_number(r) == (int64_t)(i + 1), "%s: number %lld, want %zu",
              what, (long long)llm_lines_number(r), i + 1);
        i++;
    }
    CHECK(rc == 0, "%s: ended with %d (%s)", what, rc, llm_errmsg());
    CHECK(i == nw, "%s: %zu lines, want %zu", what, i, nw);
    /* The end is sticky. */
    CHECK(llm_lines_next(r, &line, &len) == 0, "%s: second end", what);
    CHECK(llm_lines_number(r) == (int64_t)nw, "%s: number after the end", what);
    llm_lines_free(r);
}

#define S(x) {x, sizeof x - 1}
#define FILE_OF(lit) file_of(lit, sizeof lit - 1)

int main(void)
{
    llm_lines_free(NULL);

    FILE *f = FILE_OF("");
    expect_lines("empty", f, NULL, 0);
    fclose(f);

    static const struct want w1[] = {S("a"), S("bc")};
    f = FILE_OF("a\nbc");
    expect_lines("no final newline", f, w1, 2);
    fclose(f);

    f = FILE_OF("a\nbc\n");
    expect_lines("final newline", f, w1, 2);
    fclose(f);

    static const struct want w2[] = {S(""), S(""), S("x"), S("")};
    f = FILE_OF("\n\nx\n\n");
    expect_lines("empty lines", f, w2, 4);
    fclose(f);

    static const struct want w3[] = {S("a\r"), S("b\r"), S("\r"), S("c")};
    f = FILE_OF("a\r\nb\r\n\r\nc");
    expect_lines("CRLF kept", f, w3, 4);
    fclose(f);

    static const struct want w4[] = {S("x\0y"), S("\0"), S("z\0")};
    f = FILE_OF("x\0y\n\0\nz\0");
    expect_lines("embedded NUL", f, w4, 3);
    fclose(f);

    /* A 10 MB line between two short ones. */
    size_t big = 10u << 20;
    char *buf = malloc(big + 16);
    if (!buf)
        return 1;
    memcpy(buf, "head\n", 5);
    for (size_t i = 0; i < big; i++)
        buf[5 + i] = (char)('a' + (i * 7) % 26);
    memcpy(buf + 5 + big, "\ntail", 5);
    struct want w5[] = {S("head"), {buf + 5, big}, S("tail")};
    f = file_of(buf, big + 10);
    expect_lines("10 MB line", f, w5, 3);
    fclose(f);
    free(buf);

    /* 100000 short lines: every content and number checked. */
    FILE *g = tmpfile();
    if (!g)
        return 1;
    for (int i = 1; i <= 100000; i++)
        fprintf(g, "line %d\n", i);
    rewind(g);
    llm_lines *r;
    CHECK(llm_lines_open(g, &r) == LLM_OK, "open many");
    const char *line;
    size_t len;
    int n = 0, bad = 0;
    while (llm_lines_next(r, &line, &len) == 1) {
        char want[32];
        n++;
        int k = snprintf(want, sizeof want, "line %d", n);
        if (len != (size_t)k || memcmp(line, want, len) != 0 ||
            llm_lines_number(r) != n)
            bad++;
    }
    CHECK(n == 100000 && bad == 0, "many lines: %d read, %d wrong", n, bad);
    llm_lines_free(r);
    fclose(g);

    /* A pipe: no seeking, and the data arrives in pieces. */
    FILE *p = popen("printf 'one\\ntwo\\r\\n\\nthree'", "r");
    if (!p) {
        perror("popen");
        return 1;
    }
    static const struct want w6[] = {S("one"), S("two\r"), S(""), S("three")};
    expect_lines("pipe", p, w6, 4);
    CHECK(pclose(p) == 0, "pclose");

    /* A stream opened for writing only: a read error, reported as such. */
    FILE *wo = fopen("/dev/null", "w");
    if (wo) {
        CHECK(llm_lines_open(wo, &r) == LLM_OK, "open write-only");
        int rc = llm_lines_next(r, &line, &len);
        CHECK(rc == LLM_ERR_IO, "read from a write-only stream gave %d", rc);
        CHECK(strstr(llm_errmsg(), "read error") != NULL, "message '%s'",
              llm_errmsg());
        llm_lines_free(r);
        fclose(wo);
    }

    printf("test_lines: %d checks, %d failed\n", checks, failures);
    return failures ? 1 : 0;
}
