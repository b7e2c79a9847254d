/* fuzz_tokfile.c: token file readers on arbitrary bytes. The mmap reader and
 * the streaming reader must agree (both accept with the same ids, or both
 * reject), and an accepted file written back gives the same token bytes. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "llm.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    llm_tokfile *t = NULL;
    int rc = llm_tokfile_open_mem(data, size, "fuzz.tok", &t);
    uint64_t count = 0;
    if (rc == LLM_OK) {
        const llm_tokfile_header *h = llm_tokfile_info(t);
        count = llm_tokfile_count(t);
        if (size != LLM_TOKFILE_HEADER + count * h->width)
            abort();
        for (uint64_t i = 0; i < count; i++)
            if (llm_tokfile_get(t, i) >= h->vocab_size)
                abort();
    } else if (t != NULL || llm_errmsg()[0] == '\0') {
        abort();
    }

    /* fmemopen() of zero bytes is not portable; the empty input is only a
     * truncated header anyway. */
    int src = LLM_ERR_FORMAT;
    uint64_t got_total = 0;
    if (size > 0) {
        FILE *f = fmemopen((void *)data, size, "rb");
        if (!f)
            return 0;
        llm_tokreader *r = NULL;
        src = llm_tokreader_open(f, "fuzz.tok", &r);
        if (src == LLM_OK) {
            uint32_t buf[7];
            int64_t n;
            while ((n = llm_tokreader_read(r, buf, sizeof buf / sizeof buf[0])) > 0) {
                for (int64_t i = 0; i < n; i++) {
                    if (buf[i] >= llm_tokreader_info(r)->vocab_size)
                        abort();
                    if (rc == LLM_OK && (got_total + (uint64_t)i >= count ||
                        llm_tokfile_get(t, got_total + (uint64_t)i) != buf[i]))
                        abort();
                }
                got_total += (uint64_t)n;
            }
            if (n < 0)
                src = (int)n;
        }
        llm_tokreader_free(r);
        fclose(f);
    }
    if ((rc == LLM_OK) != (src == LLM_OK))
        abort();
    if (rc == LLM_OK && got_total != count)
        abort();

    /* Write the ids back; with the writer's own width the token bytes match. */
    if (rc == LLM_OK) {
        const llm_tokfile_header *h = llm_tokfile_info(t);
        char *out = NULL;
        size_t outlen = 0;
        FILE *m = open_memstream(&out, &outlen);
        llm_tokwriter *w = NULL;
        if (m && llm_tokwriter_open(m, h->vocab_size, &w) == LLM_OK) {
            int wrc = LLM_OK;
            for (uint64_t i = 0; i < count && wrc == LLM_OK; i++) {
                int32_t id = (int32_t)llm_tokfile_get(t, i);
                wrc = llm_tokwriter_write(w, &id, 1);
            }
            if (wrc != LLM_OK || llm_tokwriter_close(w) != LLM_OK)
                abort();
            fflush(m);
            if (h->width == llm_tokfile_width(h->vocab_size) &&
                (outlen != size || memcmp(out + LLM_TOKFILE_HEADER,
                                          data + LLM_TOKFILE_HEADER,
                                          size - LLM_TOKFILE_HEADER) != 0))
                abort();
        }
        if (m)
            fclose(m);
        free(out);
    }
    llm_tokfile_close(t);
    return 0;
}
