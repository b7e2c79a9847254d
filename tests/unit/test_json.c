/* test_json.c: the internal JSON parser and string escaper (lib/json.c)
 * against hand-written documents and their known decoded values. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "internal.h"

static int failures;

#define CHECK(cond)                                                            \
    do {                                                                       \
        if (!(cond)) {                                                         \
            fprintf(stderr, "%s:%d: CHECK failed: %s (last error: %s)\n",      \
                    __FILE__, __LINE__, #cond, llm_errmsg());                  \
            failures++;                                                        \
        }                                                                      \
    } while (0)

static llm_json *parse(const char *s)
{
    llm_json *j = NULL;
    int rc = llm_json_parse(s, strlen(s), "t.json", 0, &j);
    if (rc != LLM_OK) {
        fprintf(stderr, "cannot parse %s: %s\n", s, llm_errmsg());
        failures++;
    }
    return j;
}

static void test_tree(void)
{
    llm_json *j = parse(" {\"a\": [1, -2.5e3, true, false, null, \"x\"], \"b\": {}, "
                        "\"c\": [], \"a\": 0} ");
    if (!j)
        return;
    const llm_json_node *r = llm_json_root(j);
    CHECK(r->type == LLM_JSON_OBJECT && r->count == 4 && r->offset == 1);
    const llm_json_node *a = llm_json_get(r, "a");   /* the first "a" */
    CHECK(a && a->type == LLM_JSON_ARRAY && a->count == 6 && a->offset == 7);
    static const llm_json_type want[] = {LLM_JSON_NUMBER, LLM_JSON_NUMBER, LLM_JSON_TRUE,
                                         LLM_JSON_FALSE, LLM_JSON_NULL, LLM_JSON_STRING};
    int i = 0;
    for (const llm_json_node *c = a ? a->child : NULL; c; c = c->next, i++)
        CHECK(i < 6 && c->type == want[i] && c->key == NULL);
    CHECK(i == 6);
    const llm_json_node *n = a->child;
    CHECK(strcmp(n->str, "1") == 0 && n->next->len == 6 && strcmp(n->next->str, "-2.5e3") == 0);
    CHECK(strcmp(a->child->next->next->next->next->next->str, "x") == 0);
    const llm_json_node *b = llm_json_get(r, "b"), *c = llm_json_get(r, "c");
    CHECK(b && b->type == LLM_JSON_OBJECT && b->count == 0 && b->child == NULL);
    CHECK(c && c->type == LLM_JSON_ARRAY && c->count == 0 && c->child == NULL);
    CHECK(llm_json_get(r, "d") == NULL && llm_json_get(a, "a") == NULL);
    CHECK(r->child->next->next->next->key_len == 1 && r->child->next->next->next->next == NULL);
    llm_json_free(j);
    llm_json_free(NULL);
}

static void test_numbers(void)
{
    llm_json *j = parse("[0, -0, 9223372036854775807, -9223372036854775808, "
                        "9223372036854775808, 1.5, 1e2, -1E-2, 1e400, 0.1, 12345678901234567890123]");
    if (!j)
        return;
    const llm_json_node *n = llm_json_root(j)->child;
    int64_t v;
    double d;
    CHECK(llm_json_int64(n, &v) == 0 && v == 0);
    n = n->next;
    CHECK(llm_json_int64(n, &v) == 0 && v == 0);
    n = n->next;
    CHECK(llm_json_int64(n, &v) == 0 && v == INT64_MAX);
    n = n->next;
    CHECK(llm_json_int64(n, &v) == 0 && v == INT64_MIN);
    n = n->next;
    CHECK(llm_json_int64(n, &v) == -1);                       /* 2^63 */
    CHECK(llm_json_double(n, &d) == 0 && d == 9223372036854775808.0);
    n = n->next;
    CHECK(llm_json_int64(n, &v) == -1 && llm_json_double(n, &d) == 0 && d == 1.5);
    n = n->next;
    CHECK(llm_json_int64(n, &v) == -1 && llm_json_double(n, &d) == 0 && d == 100.0);
    n = n->next;
    CHECK(llm_json_double(n, &d) == 0 && d == -0.01);
    n = n->next;
    CHECK(llm_json_double(n, &d) == -1);                      /* overflows a double */
    n = n->next;
    CHECK(llm_json_double(n, &d) == 0 && d == 0.1);
    n = n->next;
    CHECK(llm_json_int64(n, &v) == -1);                       /* past uint64 */
    CHECK(llm_json_int64(llm_json_root(j), &v) == -1);        /* not a number */
    llm_json_free(j);
}

static void test_strings(void)
{
    llm_json *j = parse("[\"\", \"a\\u0000b\", \"\\\"\\\\\\/\\b\\f\\n\\r\\t\", "
                        "\"\\u00e9\\u20AC\\ud83d\\ude00\", \"\xc3\xa9\xe2\x82\xac\xf0\x9f\x98\x80\", "
                        "{\"k\\u0065y\": 1}]");
    if (!j)
        return;
    const llm_json_node *s = llm_json_root(j)->child;
    CHECK(s->type == LLM_JSON_STRING && s->len == 0 && s->str[0] == '\0');
    s = s->next;
    CHECK(s->len == 3 && memcmp(s->str, "a\0b", 4) == 0);
    s = s->next;
    CHECK(s->len == 8 && strcmp(s->str, "\"\\/\b\f\n\r\t") == 0);
    s = s->next;
    CHECK(s->len == 9 && strcmp(s->str, "\xc3\xa9\xe2\x82\xac\xf0\x9f\x98\x80") == 0);
    s = s->next;
    CHECK(s->len == 9 && strcmp(s->str, "\xc3\xa9\xe2\x82\xac\xf0\x9f\x98\x80") == 0);
    s = s->next;
    CHECK(s->type == LLM_JSON_OBJECT && llm_json_get(s, "key") != NULL);
    llm_json_free(j);
}

static void test_errors(void)
{
    static const char *bad[] = {
        "", " ", "{", "}", "[1,]", "[,1]", "{\"a\":}", "{\"a\" 1}", "{1:2}", "tru", "nulll",
        "01", "1.", ".5", "-", "1e", "+1", "0x10", "\"abc", "\"\\q\"", "\"\\u12\"",
        "\"\x7f\x80\"", "\"\xf5\x80\x80\x80\"", "\"\xf4\x90\x80\x80\"", "\"\xe0\x80\xaf\"",
        "\"\\udc00\"", "\"\\ud800x\"", "\"\\ud800\\ud800\"", "\"\t\"", "[] []", "NaN",
        "Infinity", "[1] x", "\xef\xbb\xbf{}",   /* a BOM is not JSON */
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        llm_json *j = NULL;
        int rc = llm_json_parse(bad[i], strlen(bad[i]), "t.json", 100, &j);
        if (rc != LLM_ERR_FORMAT || j != NULL) {
            fprintf(stderr, "bad JSON #%zu <%s> gave %d\n", i, bad[i], rc);
            failures++;
        }
    }
    /* Offsets in messages are counted from `base`. */
    llm_json *j;
    CHECK(llm_json_parse("[1, 2 3]", 8, "t.json", 100, &j) == LLM_ERR_FORMAT);
    CHECK(strcmp(llm_errmsg(), "'t.json': invalid JSON at offset 106: expected ',' or ']'") == 0);
    /* A length, not a NUL, ends the text. */
    CHECK(llm_json_parse("[1]]", 3, "t.json", 0, &j) == LLM_OK);
    llm_json_free(j);
    CHECK(llm_json_parse("[1]\0", 4, "t.json", 0, &j) == LLM_ERR_FORMAT);

    /* Nesting: 65 levels are fine, 66 are refused (and do not recurse on). */
    char deep[200];
    for (int levels = 65; levels <= 66; levels++) {
        memset(deep, '[', (size_t)levels);
        memset(deep + levels, ']', (size_t)levels);
        int rc = llm_json_parse(deep, 2 * (size_t)levels, "t.json", 0, &j);
        CHECK(levels == 65 ? rc == LLM_OK : rc == LLM_ERR_FORMAT);
        if (rc == LLM_OK)
            llm_json_free(j);
    }
}

static void check_escape(const char *in, size_t n, const char *want)
{
    llm_buf b = {0};
    int rc = llm_json_put_string(&b, in, n);
    if (rc != LLM_OK || strcmp(b.data, want) != 0) {
        fprintf(stderr, "escape: got %s, expected %s (rc %d)\n", b.data ? b.data : "(null)",
                want, rc);
        failures++;
    }
    /* And it parses back to the same bytes. */
    llm_json *j;
    if (rc == LLM_OK && llm_json_parse(b.data, b.len, "esc", 0, &j) == LLM_OK) {
        const llm_json_node *r = llm_json_root(j);
        CHECK(r->len == n && memcmp(r->str, in, n) == 0);
        llm_json_free(j);
    } else {
        failures++;
    }
    llm_buf_free(&b);
}

static void test_escape(void)
{
    check_escape("", 0, "\"\"");
    check_escape("plain text", 10, "\"plain text\"");
    check_escape("q\"b\\s/", 6, "\"q\\\"b\\\\s/\"");
    check_escape("\b\f\n\r\t", 5, "\"\\b\\f\\n\\r\\t\"");
    check_escape("\x01\x1f\x7f", 3, "\"\\u0001\\u001f\x7f\"");
    check_escape("a\0b", 3, "\"a\\u0000b\"");
    check_escape("\xc3\xa9\xf0\x9f\x98\x80", 6, "\"\xc3\xa9\xf0\x9f\x98\x80\"");
    llm_buf b = {0};
    CHECK(llm_json_put_string(&b, "ok\xff", 3) == LLM_ERR_UTF8);
    CHECK(llm_json_put_string(&b, "\xed\xa0\x80", 3) == LLM_ERR_UTF8);   /* surrogate */
    CHECK(llm_json_put_string(&b, "\xc3", 1) == LLM_ERR_UTF8);           /* truncated */
    CHECK(b.len == 0);   /* nothing appended on failure */
    llm_buf_free(&b);
}

int main(void)
{
    test_tree();
    test_numbers();
    test_strings();
    test_errors();
    test_escape();
    if (failures) {
        fprintf(stderr, "test_json: %d check(s) failed\n", failures);
        return 1;
    }
    printf("test_json: all checks passed\n");
    return 0;
}
