/* internal.h: helpers shared by the library's own files; not API. */
#ifndef LLM_INTERNAL_H
#define LLM_INTERNAL_H

#include "llm.h"

#if defined(__GNUC__)
#define LLM_PRINTF(a, b) __attribute__((format(printf, a, b)))
#else
#define LLM_PRINTF(a, b)
#endif

#ifdef __cplusplus
extern "C" {
#endif

/*! llm_fail() : records a formatted message for llm_errmsg() and returns
 *  `status`, so that callers write `return llm_fail(LLM_ERR_IO, ...)`. */
int llm_fail(int status, const char *fmt, ...) LLM_PRINTF(2, 3);

/* Overflow-checked size arithmetic: 0 on success, -1 on overflow. */
static inline int llm_mul_size(size_t a, size_t b, size_t *r)
{
    return __builtin_mul_overflow(a, b, r) ? -1 : 0;
}
static inline int llm_add_size(size_t a, size_t b, size_t *r)
{
    return __builtin_add_overflow(a, b, r) ? -1 : 0;
}

/* Little-endian loads and stores, independent of host order and alignment. */
static inline uint32_t llm_le32(const unsigned char *p)
{
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 |
           (uint32_t)p[3] << 24;
}
static inline uint64_t llm_le64(const unsigned char *p)
{
    return (uint64_t)llm_le32(p) | (uint64_t)llm_le32(p + 4) << 32;
}
static inline void llm_put_le32(unsigned char *p, uint32_t v)
{
    p[0] = (unsigned char)v; p[1] = (unsigned char)(v >> 8);
    p[2] = (unsigned char)(v >> 16); p[3] = (unsigned char)(v >> 24);
}
static inline void llm_put_le64(unsigned char *p, uint64_t v)
{
    llm_put_le32(p, (uint32_t)v);
    llm_put_le32(p + 4, (uint32_t)(v >> 32));
}

/*! llm_map_file() : maps a whole regular file read-only (a zero-length file
 *  gives a NULL map with *len 0). */
int  llm_map_file(const char *path, const void **map, size_t *len);
void llm_unmap_file(const void *map, size_t len);

#ifdef __cplusplus
}
#endif
#endif
