/* lines.c: a line reader over a FILE*, for lines of any length with NULs. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/types.h>

#include "internal.h"

struct llm_lines {
    FILE *f;
    char *buf;      /* owned by getdelim(), which grows it as needed */
    size_t cap;
    int64_t number;
    int done;       /* end or error seen: later calls keep returning it */
};

int llm_lines_open(FILE *f, llm_lines **out)
{
    *out = NULL;
    llm_lines *r = calloc(1, sizeof *r);
    if (!r)
        return llm_fail(LLM_ERR_NOMEM, "out of memory");
    r->f = f;
    *out = r;
    return LLM_OK;
}

int llm_lines_next(llm_lines *r, const char **line, size_t *len)
{
    *line = NULL;
    *len = 0;
    if (r->done)
        return 0;
    /* getdelim() (POSIX 2008) returns the byte count, so embedded NULs
     * survive, and it grows the buffer for a line of any length. */
    errno = 0;
    ssize_t n = getdelim(&r->buf, &r->cap, '\n', r->f);
    if (n < 0) {
        r->done = 1;
        if (ferror(r->f)) {
            int e = errno ? errno : EIO;
            return llm_fail(LLM_ERR_IO, "read error after line %lld: %s",
                            (long long)r->number, strerror(e));
        }
        if (errno == ENOMEM || errno == EOVERFLOW)
            return llm_fail(LLM_ERR_NOMEM, "line %lld is too long: %s",
                            (long long)r->number + 1, strerror(errno));
        return 0;
    }
    size_t k = (size_t)n;
    if (k > 0 && r->buf[k - 1] == '\n')
        r->buf[--k] = '\0';
    *line = r->buf;
    *len = k;
    if (r->number++ == 0)   /* a byte-order mark before the first line */
        llm_utf8_skip_bom(line, len);
    return 1;
}

int64_t llm_lines_number(const llm_lines *r)
{
    return r->number;
}

void llm_lines_free(llm_lines *r)
{
    if (!r)
        return;
    free(r->buf);
    free(r);
}
