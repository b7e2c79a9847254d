/* memory.c: device memory of the cpu and ref tables, which is host memory.
 * Blocks of 4 MiB and more are aligned to 2 MiB and advised into
 * transparent huge pages (Linux's "madvise" mode, a common default): a
 * pass over the weights then takes 512 times fewer TLB misses than over
 * 4 KiB pages, and decoding, which streams every weight per token, is
 * 15-25% faster for it on the 110M shape (make bench, generate.sh). The
 * advice is only advice. Nothing is zeroed (zero() does that), so that
 * the pages of a large key/value cache are touched only as it fills. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

#include "cpu.h"

#define HUGE_ALIGN ((size_t)2 << 20)
#define HUGE_MIN ((size_t)4 << 20)

void *llm_host_alloc(size_t bytes)
{
    if (bytes < HUGE_MIN)
        return aligned_alloc(64, bytes ? (bytes + 63) & ~(size_t)63 : 64);
    if (bytes > SIZE_MAX - HUGE_ALIGN)
        return NULL;
    size_t n = (bytes + HUGE_ALIGN - 1) & ~(HUGE_ALIGN - 1);
    void *p;
    if (posix_memalign(&p, HUGE_ALIGN, n))
        return NULL;
#ifdef MADV_HUGEPAGE
    (void)madvise(p, n, MADV_HUGEPAGE);
#endif
    return p;
}

void llm_host_free(void *p)
{
    free(p);
}

void llm_host_copy(void *dst, const void *src, size_t bytes)
{
    if (bytes)
        memcpy(dst, src, bytes);
}

void llm_host_zero(void *dst, size_t bytes)
{
    if (bytes)
        memset(dst, 0, bytes);
}
