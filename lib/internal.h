/* internal.h: helpers shared by the library's own files; not API. */
#ifndef LLM_INTERNAL_H
#define LLM_INTERNAL_H

#include <stdarg.h>
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
/*! llm_fail_param() : the same, naming the parameter at fault
 *  (llm_errparam()). */
int llm_fail_param(int status, const char *param, const char *fmt, ...) LLM_PRINTF(3, 4);
/* llm_fail_cause() : as llm_fail(), the message followed by ": " and the
 * message of the failure being reported (the current one), for the caller
 * that adds where it happened ("'file': tensor 'x': <why>"). */
int llm_fail_cause(int status, const char *fmt, ...) LLM_PRINTF(2, 3);
/*! llm_buf_printf() / llm_buf_vprintf() : appends printf-formatted text,
 *  any length, to `b`. */
int llm_buf_printf(llm_buf *b, const char *fmt, ...) LLM_PRINTF(2, 3);
int llm_buf_vprintf(llm_buf *b, const char *fmt, va_list ap) LLM_PRINTF(2, 0);

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

/*! llm_remove_stale_temps() : removes the temporary files that writers of
 *  `path` left when killed (PATH.tmpXXXXXX, regular files); @return how
 *  many. Only for a process about to write `path` itself. */
int  llm_remove_stale_temps(const char *path);
/*! llm_file_digest() : a file's size and 64-bit FNV-1a hash of its bytes
 *  (to tell that a file changed, not to resist an adversary). */
int  llm_file_digest(const char *path, uint64_t *size, uint64_t *hash);
/*! llm_grow() : makes room for `want` elements of `elem` bytes in *p
 *  (capacity *cap, doubled as needed). @return LLM_OK or LLM_ERR_NOMEM. */
int  llm_grow(void **p, size_t *cap, size_t want, size_t elem);

/*! llm_map_file() : maps a whole regular file read-only (a zero-length file
 *  gives a NULL map with *len 0). */
int  llm_map_file(const char *path, const void **map, size_t *len);
void llm_unmap_file(const void *map, size_t len);
/* Atomic output (fileio.c), shared by every writer of the library. */
/*! llm_write_all() : writes all n bytes (retrying short writes and EINTR).
 *  @return 0, or -1 with errno set. */
int  llm_write_all(int fd, const void *p, size_t n);
/*! llm_create_temp() : creates "PATH.tmpXXXXXX" exclusively, mode 0666 less
 *  the umask (not mkstemp's 0600), its name in *tmp (malloc'd).
 *  @return the open descriptor (>= 0), or LLM_ERR_IO / LLM_ERR_NOMEM with
 *  "cannot write 'PATH': ...". */
int  llm_create_temp(const char *path, char **tmp);
/*! llm_create_temp_dir() : the same for a folder (mode 0777 less the umask).
 *  @return LLM_OK, LLM_ERR_IO or LLM_ERR_NOMEM. */
int  llm_create_temp_dir(const char *path, char **tmp);
/*! llm_sync_dir() : fsyncs the folder holding `path`, so that a rename into
 *  it is durable; failures are ignored (nothing a caller could act on). */
void llm_sync_dir(const char *path);
/*! llm_write_file() : writes p[0..n) to `path` atomically (temporary file,
 *  fsync, rename). @return LLM_OK, LLM_ERR_IO or LLM_ERR_NOMEM. */
int  llm_write_file(const char *path, const void *p, size_t n);
/*! llm_remove_dir() : removes a folder of plain files that this process
 *  created (a temporary one), ignoring failures. */
void llm_remove_dir(const char *dir);

/* ------------------------------------------------------------------------ */
/* JSON (json.c): a strict RFC 8259 parser into a read-only tree, and a string
 * escaper. Strings are decoded (escapes, \uXXXX surrogate pairs) to UTF-8;
 * control characters, invalid UTF-8, lone surrogates, trailing garbage and
 * nesting deeper than 64 are rejected. Duplicate keys are kept: callers that
 * care check them.                                                          */

typedef enum {
    LLM_JSON_NULL, LLM_JSON_FALSE, LLM_JSON_TRUE, LLM_JSON_NUMBER,
    LLM_JSON_STRING, LLM_JSON_ARRAY, LLM_JSON_OBJECT
} llm_json_type;

typedef struct llm_json_node llm_json_node;
struct llm_json_node {
    llm_json_type type;
    size_t offset;               /* of the value's first byte, plus `base` */
    const char *str;             /* STRING: decoded; NUMBER: the literal; NUL-terminated */
    size_t len;                  /* bytes in str (a string may hold "\u0000") */
    const char *key;             /* an OBJECT member's decoded key, else NULL */
    size_t key_len;
    size_t count;                /* ARRAY, OBJECT: number of children */
    const llm_json_node *child;  /* first child (document order), or NULL */
    const llm_json_node *next;   /* next sibling, or NULL */
};

typedef struct llm_json llm_json;

/*! llm_json_parse() : parses text[0..len) (one value, whitespace around it).
 *  Messages read "'name': invalid JSON at offset N: ...", N = base + offset,
 *  so that a caller parsing part of a file reports file offsets.
 *  @return LLM_OK, LLM_ERR_FORMAT or LLM_ERR_NOMEM. */
int  llm_json_parse(const char *text, size_t len, const char *name, size_t base,
                    llm_json **out);
const llm_json_node *llm_json_root(const llm_json *j);
void llm_json_free(llm_json *j);   /* accepts NULL; frees every node and string */
/*! llm_json_get() : the first member of `obj` named `key`, or NULL. */
const llm_json_node *llm_json_get(const llm_json_node *obj, const char *key);
/*! llm_json_int64() / llm_json_double() : 0 with the value of a NUMBER node,
 *  -1 when it is not a number, not an integer (int64), or out of range. */
int  llm_json_int64(const llm_json_node *n, int64_t *v);
int  llm_json_double(const llm_json_node *n, double *v);
/*! llm_json_put_string() : appends s[0..n) to `b` as a quoted JSON string
 *  (", \ and control characters escaped). @return LLM_OK, LLM_ERR_UTF8 when
 *  `s` is not valid UTF-8, or LLM_ERR_NOMEM. */
int  llm_json_put_string(llm_buf *b, const char *s, size_t n);

/* ------------------------------------------------------------------------ */
/* Tokenizer (tokenizer.cc), for tests and benchmarks of our own encoder.   */
/*! llm_tok_encode_spm() : llm_tok_encode() through SentencePiece always. */
int llm_tok_encode_spm(const llm_tok *t, const char *text, size_t n, llm_ids *out);
/*! llm_tok_own_encoder() : 1 when llm_tok_encode() uses our own encoder
 *  (unigram.c) for this model, 0 when SentencePiece's. */
int llm_tok_own_encoder(const llm_tok *t);

/* ------------------------------------------------------------------------ */
/* Batchers over items other than token sequences (data.c), for classify.c:
 * the same seeded, resumable order over n items (documents of `docs`). */
int llm_batcher_new_items(const llm_cls_data *docs, uint64_t n, uint64_t seed,
                          llm_batcher **out);
/*! llm_batcher_docs() : the documents of a batcher over them, else NULL. */
const llm_cls_data *llm_batcher_docs(const llm_batcher *b);
/*! llm_session_model() : the model a session runs. */
const llm_model *llm_session_model(const llm_session *s);
/*! llm_pairs_width() : T of the last llm_pairs_pack() (0 before any). */
int llm_pairs_width(const llm_pairs *d);
/*! llm_batcher_pairs() : the pairs of a batcher over them, else NULL. */
const llm_pairs *llm_batcher_pairs(const llm_batcher *b);
/*! llm_batcher_take() : the next item's index in the shuffled order. */
uint64_t llm_batcher_take(llm_batcher *b);

/* ------------------------------------------------------------------------ */
/* For the trainer (model.c). */
/*! llm_model_grad_size() : floats of the gradient block (every tensor
 *  that trains, in parameter-block order), 0 before the first
 *  llm_model_zero_grad(). */
size_t llm_model_grad_size(const llm_model *m);
/*! llm_model_grad_copy() : the gradient block to host (to_host) or back
 *  from it, llm_model_grad_size() floats. */
void llm_model_grad_copy(llm_model *m, float *host, int to_host);
/*! llm_model_set_micro() : the micro-batch of this step whose dropout masks
 *  the next forward draws (by default, counted by backward passes). */
void llm_model_set_micro(llm_model *m, int64_t micro);

#ifdef __cplusplus
}
#endif
#endif
