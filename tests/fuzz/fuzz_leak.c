/* fuzz_leak.c: the leakage search over arbitrary bytes. Lines before the
 * first empty line are test documents, the rest training documents. Checks
 * that folding gives valid UTF-8 without punctuation at either end and is
 * idempotent, that each document scanned against itself as a test document
 * is found exact, and that every similarity is in [0, 1]. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "llm.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    llm_leak *x;
    if (llm_leak_new(0.5, &x))
        return 0;
    const char *s = (const char *)data, *end = s + size;
    const char *train = end;
    llm_buf f = {0}, g = {0};
    /* Test documents. */
    for (const char *p = s; p < end;) {
        const char *nl = memchr(p, '\n', (size_t)(end - p));
        const char *e = nl ? nl : end;
        if (e == p) {
            train = e + 1;
            break;
        }
        if (llm_leak_add_test(x, p, (size_t)(e - p)))
            abort();
        if (llm_leak_fold(p, (size_t)(e - p), &f) || llm_leak_fold(f.data, f.len, &g))
            abort();
        size_t bad;
        if (!llm_utf8_check(f.data, f.len, &bad) || f.len != g.len ||
            (f.len && memcmp(f.data, g.data, f.len) != 0))
            abort();   /* not valid UTF-8, or not idempotent */
        if (f.len && (f.data[0] == ' ' || f.data[f.len - 1] == ' '))
            abort();
        p = e + 1;
    }
    if (llm_leak_index(x))
        abort();
    /* Training documents: the test documents again (each must be found
     * exact unless it folds to nothing), then the rest. */
    size_t n = llm_leak_count(x);
    int64_t id = 0;
    for (const char *p = s; p < train && p < end;) {
        const char *nl = memchr(p, '\n', (size_t)(end - p));
        const char *e = nl ? nl : end;
        if (e == p)
            break;
        if (llm_leak_scan(x, p, (size_t)(e - p), id++))
            abort();
        p = e + 1;
    }
    for (size_t i = 0; i < n; i++) {
        const llm_leak_match *m = llm_leak_result(x, i);
        if (!m || m->similarity < 0 || m->similarity > 1)
            abort();
    }
    for (const char *p = train; p < end;) {
        const char *nl = memchr(p, '\n', (size_t)(end - p));
        const char *e = nl ? nl : end;
        if (llm_leak_scan(x, p, (size_t)(e - p), id++))
            abort();
        p = e + 1;
    }
    /* Each test document that folds to something was scanned as itself. */
    size_t i = 0;
    for (const char *p = s; p < train && p < end && i < n; i++) {
        const char *nl = memchr(p, '\n', (size_t)(end - p));
        const char *e = nl ? nl : end;
        if (llm_leak_fold(p, (size_t)(e - p), &f))
            abort();
        const llm_leak_match *m = llm_leak_result(x, i);
        if (f.len && (!m->exact || m->similarity != 1.0))
            abort();
        p = e + 1;
    }
    llm_buf_free(&f);
    llm_buf_free(&g);
    llm_leak_free(x);
    return 0;
}
