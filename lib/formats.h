/* formats.h: what the readers and writers of the model file formats
 * (gguf.c, safetensors.c) share beyond internal.h: names from a file made
 * safe to print, and the end of a streamed atomic write (fileio.c). */
#ifndef LLM_FORMATS_H
#define LLM_FORMATS_H

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

/*! llm_finish_temp() : ends a write begun with llm_create_temp(path, &tmp):
 *  when `ok` (every write succeeded), syncs and closes fd, renames tmp to
 *  path and syncs the folder; otherwise, or when one of those fails, closes
 *  fd and removes tmp. Frees tmp. When !ok the reason is read from errno, so
 *  call it right after the write that failed.
 *  @return LLM_OK, or LLM_ERR_IO with "cannot write 'PATH': reason". */
int llm_finish_temp(int fd, char *tmp, const char *path, int ok);

#endif
