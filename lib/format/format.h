/* format.h: what the readers and writers of lib/format/ share beyond
 * internal.h: names from a file made safe to print. */
#ifndef LLM_FORMAT_H
#define LLM_FORMAT_H

#include <stddef.h>
#include <string.h>

/* Strings from a file in messages: at most 64 bytes, control characters
 * replaced, so that a hostile name cannot garble a terminal. */
typedef struct {
    char s[72];
} llm_shown;

static inline llm_shown llm_show(const char *s, size_t n)
{
    llm_shown r;
    size_t k = n > 64 ? 64 : n, i;
    for (i = 0; i < k; i++) {
        unsigned char c = (unsigned char)s[i];
        r.s[i] = c < 0x20 || c == 0x7f ? '?' : (char)c;
    }
    if (k < n) {
        memcpy(r.s + i, "...", 3);
        i += 3;
    }
    r.s[i] = '\0';
    return r;
}

#endif
