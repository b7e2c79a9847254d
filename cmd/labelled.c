/* labelled.c: the labels and the text of a labelled line, in fastText's
 * form or as LABEL<TAB>text (cli_split_labelled(), cli.h). */
#include "cli.h"

#include <string.h>

/* Appends label s..e to labels (cap of them). @return NULL or the error. */
static const char *add_label(const char *s, const char *e, cli_span *labels, size_t cap,
                             size_t *n)
{
    if (e == s)
        return "empty label";
    if (*n == cap)
        return "too many labels";
    labels[(*n)++] = (cli_span){ s, (size_t)(e - s) };
    return NULL;
}

const char *cli_split_labelled(const char *line, size_t len, int multi, cli_span *labels,
                               size_t cap, size_t *n, const char **text)
{
    static const char ft[] = "__label__";
    const size_t FT = sizeof ft - 1;
    const char *end = line + len;
    *n = 0;
    if (len >= FT && memcmp(line, ft, FT) == 0) {
        const char *p = line;
        while ((size_t)(end - p) >= FT && memcmp(p, ft, FT) == 0) {
            const char *s = p + FT, *e = s;
            while (e < end && *e != ' ' && *e != '\t')
                e++;
            const char *why = add_label(s, e, labels, cap, n);
            if (why)
                return why;
            p = e;
            while (p < end && (*p == ' ' || *p == '\t'))
                p++;
        }
        *text = p;
        return NULL;
    }
    const char *tab = memchr(line, '\t', len);
    if (!tab)
        return "no tab between label and text (expected 'label<TAB>text' or "
               "'__label__x text')";
    /* Each label ends at a comma (multi) or the tab; one ending at a comma
     * must be followed by another. */
    for (const char *s = line; s <= tab;) {
        const char *e = s;
        while (e < tab && !(multi && *e == ','))
            e++;
        const char *why = add_label(s, e, labels, cap, n);
        if (why)
            return why;
        s = e + 1;
    }
    *text = tab + 1;
    return NULL;
}
