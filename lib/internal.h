/* internal.h: what every group of the library shares (errors, buffers,
 * sizes, byte order, files and atomic output); not API. Each group
 * (lib/format, lib/text, lib/model, lib/train, lib/eval) has its own
 * internal header besides. */
#ifndef LLM_INTERNAL_H
#define LLM_INTERNAL_H

#include <stdarg.h>
#include "llm.h"

#ifdef __cplusplus
extern "C" {
#endif

/*! llm_fail() : records a formatted message for llm_errmsg() and returns
 *  `status`, so that callers write `return llm_fail(LLM_ERR_IO, ...)`. */
int llm_fail(int status, const char *fmt, ...) LLM_PRINTF(2, 3);
/*! llm_fail_param() : the same, naming the parameter at fault
 *  (llm_errparam()). */
int llm_fail_param(int status, const char *param, const char *fmt, ...) LLM_PRINTF(3, 4);
/* llm_fail_cause() : as llm_fail(), the message followed by ": " and the
 * message of the failure being reported (the current one), for the caller
 * that adds where it happened ("'file': tensor 'x': <why>"). */
int llm_fail_cause(int status, const char *fmt, ...) LLM_PRINTF(2, 3);

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

/*! llm_grow() : makes room for `want` elements of `elem` bytes in *p
 *  (capacity *cap, doubled as needed). @return LLM_OK or LLM_ERR_NOMEM. */
int  llm_grow(void **p, size_t *cap, size_t want, size_t elem);
/*! llm_ids_check() : LLM_ERR_RANGE ("token id -3 is negative") when one of
 *  ids[0..n) is negative, else LLM_OK. */
int  llm_ids_check(const int32_t *ids, size_t n);

/*! llm_map_file() : maps a whole regular file read-only (a zero-length file
 *  gives a NULL map with *len 0). */
int  llm_map_file(const char *path, const void **map, size_t *len);
void llm_unmap_file(const void *map, size_t len);
/* A file reader's object (gguf.c, safetensors.c, tokfile.c) begins with an
 * llm_reader: the name its messages give, and the mapping it owns when it
 * was opened from a path. Its kind fills and empties the rest. */
typedef struct llm_reader {
    char *name;
    const void *map;
    size_t map_len;
} llm_reader;
typedef struct llm_reader_kind {
    size_t size;   /* of the whole object */
    /* Fills the zeroed object (named) from buf[0..len), which outlives it;
     * on failure the object must stay fit for clear. */
    int (*parse)(llm_reader *r, const unsigned char *buf, size_t len);
    /* Frees what parse allocated: neither the head nor the object (NULL:
     * nothing to free). */
    void (*clear)(llm_reader *r);
} llm_reader_kind;
/*! llm_reader_open() : a new object of kind k over buf[0..len) (not
 *  copied; NULL: no bytes), named `name` ("<memory>" when NULL); or, when
 *  path is not NULL, over the mapped file `path` (buf, len and name
 *  unused), which the object then owns. `out` is the address of a pointer
 *  to k's object type (pointers to structures share one representation):
 *  the object, or NULL on failure. @return the status. */
int  llm_reader_open(const llm_reader_kind *k, const char *path, const void *buf,
                     size_t len, const char *name, void *out);
/*! llm_reader_close() : clears and frees an object of kind k (NULL:
 *  nothing), unmapping its file. */
void llm_reader_close(const llm_reader_kind *k, llm_reader *r);
/*! llm_find_name() : binary search for `key` among n items sorted by name
 *  through order[0..n) (item indices, in name order); name(ctx, i) is item
 *  i's name. @return the item's index, SIZE_MAX when none has that name or
 *  key is NULL. */
size_t llm_find_name(const char *key, const size_t *order, size_t n,
                     const char *(*name)(const void *ctx, size_t i), const void *ctx);
/* Atomic output (fileio.c), shared by every writer of the library. */
/*! llm_write_all() : writes all n bytes (retrying short writes and EINTR).
 *  @return 0, or -1 with errno set. */
int  llm_write_all(int fd, const void *p, size_t n);
/*! llm_finish_temp() : ends a write begun with llm_create_temp(path, &tmp):
 *  when `ok` (every write succeeded), syncs and closes fd, renames tmp to
 *  its target and syncs the folder; otherwise, or when one of those fails,
 *  closes fd and removes tmp. Frees tmp. (With tmp NULL, a target written
 *  in place: closes fd.) When !ok the reason is read from errno, so
 *  call it right after the write that failed.
 *  @return LLM_OK, or LLM_ERR_IO with "cannot write 'PATH': reason". */
int  llm_finish_temp(int fd, char *tmp, const char *path, int ok);

/*! llm_create_temp() : creates "PATH.tmpXXXXXX" exclusively, mode 0666 less
 *  the umask (not mkstemp's 0600), its name in *tmp (malloc'd); PATH is
 *  llm_output_target()'s, and where that is written in place, opens it
 *  and sets *tmp to NULL.
 *  @return the open descriptor (>= 0), or LLM_ERR_IO / LLM_ERR_NOMEM with
 *  "cannot write 'PATH': ...". */
int  llm_create_temp(const char *path, char **tmp);
/*! llm_create_temp_dir() : the same for a folder (mode 0777 less the umask).
 *  @return LLM_OK, LLM_ERR_IO or LLM_ERR_NOMEM. */
int  llm_create_temp_dir(const char *path, char **tmp);
/*! llm_sync_dir() : fsyncs the folder holding `path`, so that a rename into
 *  it is durable; failures are ignored (nothing a caller could act on). */
void llm_sync_dir(const char *path);
/*! llm_remove_dir() : removes a folder of plain files that this process
 *  created (a temporary one), ignoring failures. */
void llm_remove_dir(const char *dir);

#ifdef __cplusplus
}
#endif
#endif
