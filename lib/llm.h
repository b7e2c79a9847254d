/* llm.h: the one public header of libllm, the library behind the llm-* programs.
 *
 * Conventions (see STYLE.md):
 *  - functions return an int status: LLM_OK (0) or a negative LLM_ERR_* code;
 *    the detailed reason is in llm_errmsg() (per thread, valid until the next
 *    failing call on the same thread);
 *  - the library never prints and never exits;
 *  - whoever creates frees; every _free/_close accepts NULL;
 *  - sizes are size_t or int64_t; every size read from a file is checked.
 */
#ifndef LLM_H
#define LLM_H

#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#if defined(__GNUC__)
#define LLM_PRINTF(a, b) __attribute__((format(printf, a, b)))
#else
#define LLM_PRINTF(a, b)
#endif

#ifdef __cplusplus
extern "C" {
#endif

#define LLM_VERSION "0.1.0"

/* ------------------------------------------------------------------------ */
/* Status codes. Values are stable: they may be stored or compared.          */

enum {
    LLM_OK = 0,
    LLM_ERR_IO = -1,          /* open/read/write/rename failed (errno in message) */
    LLM_ERR_FORMAT = -2,      /* a file or stream is malformed */
    LLM_ERR_NOMEM = -3,       /* allocation failed or a size overflowed */
    LLM_ERR_INVALID = -4,     /* an argument or option value is invalid */
    LLM_ERR_RANGE = -5,       /* a value (token id, index) is out of range */
    LLM_ERR_UTF8 = -6,        /* text is not valid UTF-8 */
    LLM_ERR_UNSUPPORTED = -7, /* valid but not supported (e.g. newer version) */
    LLM_ERR_TOKENIZER = -8,   /* SentencePiece reported an error */
    LLM_ERR_NUMERIC = -9,     /* NaN or Inf where a finite value is needed */
    LLM_ERR_DEVICE = -10,     /* the requested device is not available */
    LLM_ERR_INTERRUPTED = -11 /* stopped on request (signal) */
};

/*! llm_strerror() : a short constant description of a status code. */
const char *llm_strerror(int status);

/*! llm_errmsg() : the detailed message of the last failure on this thread,
 *  e.g. "'x.tok': bad magic (not a token file)". Never NULL. */
const char *llm_errmsg(void);

/*! llm_errparam() : when the last failure on this thread was a parameter
 *  out of its range, the parameter's name, else NULL: "vocab_size", "dim",
 *  "n_layers", "n_heads", "n_kv_heads", "ffn_dim", "context" (the model
 *  configuration's keys), "dropout", "lr", "weight_decay". The
 *  message names the parameter in words ("learning rate -1 must be ...");
 *  a program maps the name to its own option. */
const char *llm_errparam(void);

/* ------------------------------------------------------------------------ */
/* Growable buffers, used to hand variable-sized results back to callers.    */

typedef struct {
    char *data;   /* NUL-terminated for convenience; len excludes the NUL */
    size_t len;
    size_t cap;
} llm_buf;

typedef struct {
    int32_t *data;
    size_t len;
    size_t cap;
} llm_ids;

int  llm_buf_reserve(llm_buf *b, size_t cap);
int  llm_buf_append(llm_buf *b, const void *p, size_t n);
/*! llm_buf_printf() / llm_buf_vprintf() : appends printf-formatted text,
 *  any length, to `b`. @return LLM_OK or LLM_ERR_NOMEM. */
int  llm_buf_printf(llm_buf *b, const char *fmt, ...) LLM_PRINTF(2, 3);
int  llm_buf_vprintf(llm_buf *b, const char *fmt, va_list ap) LLM_PRINTF(2, 0);
void llm_buf_free(llm_buf *b);            /* frees storage, zeroes *b */
/*! llm_unescape() : appends s[0..n) to b with the escapes of the programs'
 *  one-line text records (\n, \r, \t, \\) turned back into their bytes;
 *  any other backslash stays as it is. */
int  llm_unescape(const char *s, size_t n, llm_buf *b);
int  llm_ids_reserve(llm_ids *v, size_t cap);
int  llm_ids_push(llm_ids *v, int32_t id);
void llm_ids_free(llm_ids *v);

/* ------------------------------------------------------------------------ */
/* Pseudo-random numbers: xoshiro256**, the same sequence on every machine.  */

typedef struct {
    uint64_t s[4];   /* plain state: save it to continue the sequence later */
} llm_rng;

void     llm_rng_seed(llm_rng *r, uint64_t seed);
uint64_t llm_rng_u64(llm_rng *r);
double   llm_rng_uniform(llm_rng *r);              /* [0, 1) */
uint64_t llm_rng_below(llm_rng *r, uint64_t n);    /* [0, n), unbiased */
double   llm_rng_normal(llm_rng *r);               /* mean 0, sd 1 */
/*! llm_rng_permutation() : a[i] = i for i < n, then shuffled (Fisher-Yates). */
void     llm_rng_permutation(llm_rng *r, size_t *a, size_t n);

/* ------------------------------------------------------------------------ */
/* UTF-8.                                                                    */

/*! llm_utf8_check() : @return 1 when s[0..n) is valid UTF-8 (no overlongs, no
 *  surrogates, <= U+10FFFF), else 0 and *bad = offset of the first bad byte:
 *  the start of the first invalid or truncated sequence (as Python's
 *  UnicodeDecodeError.start). `bad` may be NULL. */
int llm_utf8_check(const char *s, size_t n, size_t *bad);
/*! llm_utf8_repair() : appends s[0..n) to `out` with each invalid sequence
 *  (a bad lead byte and the continuation bytes after it, up to 4 bytes)
 *  replaced by one U+FFFD; *replaced (may be NULL) = how many. */
int llm_utf8_repair(const char *s, size_t n, llm_buf *out, size_t *replaced);
/*! llm_utf8_skip_bom() : steps *s and *n past a UTF-8 byte-order mark
 *  (EF BB BF) at the start of s, which Windows editors write at the start
 *  of a file. The programs' line readers drop one at the start of each
 *  input. @return 1 when there was one. */
int llm_utf8_skip_bom(const char **s, size_t *n);
/*! llm_utf8_columns() : the terminal columns valid UTF-8 s[0..n) takes (East
 *  Asian wide and full-width characters 2, combining marks and other
 *  zero-width characters 0, the rest 1: utf8proc's widths; a byte of an
 *  invalid sequence 1), and *fit (may be NULL) = the bytes of its longest
 *  prefix of whole characters, combining marks kept with their base, that
 *  takes at most `max` columns. */
size_t llm_utf8_columns(const char *s, size_t n, size_t max, size_t *fit);

/* ------------------------------------------------------------------------ */
/* Line reader: lines of any length, with line numbers.                      */

typedef struct llm_lines llm_lines;

/*! llm_lines_open() : reads lines from `f` (not closed by llm_lines_free). */
int llm_lines_open(FILE *f, llm_lines **out);
/*! llm_lines_next() : the next line, without its "\n" (a final line without
 *  "\n" still counts). A "\r" before the "\n" is kept: callers that accept
 *  CRLF text strip it. A UTF-8 byte-order mark before the first line is
 *  dropped. The line may contain NUL bytes; line[len] is NUL.
 *  The pointer is valid until the next call.
 *  @return 1 with a line, 0 at end of input, or LLM_ERR_IO / LLM_ERR_NOMEM. */
int llm_lines_next(llm_lines *r, const char **line, size_t *len);
/*! llm_lines_number() : 1-based number of the line last returned. */
int64_t llm_lines_number(const llm_lines *r);
void llm_lines_free(llm_lines *r);

/* ------------------------------------------------------------------------ */
/* Safetensors files (model files and checkpoints).                          */

typedef enum {
    LLM_DT_BOOL, LLM_DT_U8, LLM_DT_I8, LLM_DT_I16, LLM_DT_U16, LLM_DT_F16,
    LLM_DT_BF16, LLM_DT_I32, LLM_DT_U32, LLM_DT_F32, LLM_DT_F64, LLM_DT_I64,
    LLM_DT_U64, LLM_DT_COUNT
} llm_dtype;

#define LLM_ST_MAX_DIMS 8

/*! llm_dtype_name() : "F32", "U8", ... as written in safetensors headers. */
const char *llm_dtype_name(llm_dtype t);
/*! llm_dtype_size() : bytes per element. */
size_t llm_dtype_size(llm_dtype t);

typedef struct {
    const char *name;
    llm_dtype dtype;
    int ndim;
    int64_t shape[LLM_ST_MAX_DIMS];
    const void *data;   /* points into the mapped file; may be unaligned */
    size_t nbytes;
} llm_st_tensor;

typedef struct llm_st llm_st;

/*! llm_st_open() : maps `path` read-only and validates everything: header
 *  length against the file size, JSON syntax, dtypes, shapes (no overflow),
 *  data_offsets in range, consistent with dtype*shape, and non-overlapping.
 *  @return LLM_OK, LLM_ERR_IO or LLM_ERR_FORMAT. */
int llm_st_open(const char *path, llm_st **out);
/*! llm_st_open_mem() : the same over bytes in memory (not copied; `buf` must
 *  outlive the handle). `name` is used in messages. */
int llm_st_open_mem(const void *buf, size_t len, const char *name, llm_st **out);
void llm_st_close(llm_st *f);

size_t llm_st_count(const llm_st *f);
const llm_st_tensor *llm_st_at(const llm_st *f, size_t i);   /* file order */
const llm_st_tensor *llm_st_find(const llm_st *f, const char *name);
/*! llm_st_meta() : a `__metadata__` value, or NULL when the key is absent. */
const char *llm_st_meta(const llm_st *f, const char *key);
size_t llm_st_meta_count(const llm_st *f);
void llm_st_meta_at(const llm_st *f, size_t i, const char **key, const char **val);

typedef struct llm_st_writer llm_st_writer;

int  llm_st_writer_new(llm_st_writer **out);
/*! llm_st_writer_add() : adds a tensor. `data` is NOT copied: it must stay
 *  valid until llm_st_writer_write() returns. Names must be unique. */
int  llm_st_writer_add(llm_st_writer *w, const char *name, llm_dtype t,
                       int ndim, const int64_t *shape, const void *data);
/*! llm_st_writer_meta() : adds a `__metadata__` entry (key and value copied). */
int  llm_st_writer_meta(llm_st_writer *w, const char *key, const char *val);
/*! llm_st_writer_write() : writes `path` atomically: a temporary file in the
 *  same directory, fsync, rename. On failure `path` is untouched. */
int  llm_st_writer_write(llm_st_writer *w, const char *path);
void llm_st_writer_free(llm_st_writer *w);

/* ------------------------------------------------------------------------ */
/* Token files: see llm-formats(5).
 *   offset 0  8 bytes  magic "LLMTOKS\0"
 *   offset 8  u32      version (1)
 *   offset 12 u32      token width in bytes (2 or 4)
 *   offset 16 u32      vocabulary size (every id is < this)
 *   offset 20 u32      reserved, 0
 *   offset 24 u64      token count, 0 = unknown (written to a pipe)
 *   offset 32          ids, little-endian
 * All header integers little-endian. */

#define LLM_TOKFILE_MAGIC "LLMTOKS"      /* 7 chars + NUL = 8 bytes */
#define LLM_TOKFILE_VERSION 1
#define LLM_TOKFILE_HEADER 32

typedef struct {
    uint32_t version;
    uint32_t width;       /* 2 or 4 */
    uint32_t vocab_size;
    uint64_t count;       /* 0 = unknown */
} llm_tokfile_header;

/*! llm_tokfile_width() : 2 when every id < vocab_size fits in 16 bits, else 4. */
uint32_t llm_tokfile_width(uint32_t vocab_size);
/*! llm_tokfile_header_parse() : validates magic, version, width, vocabulary. */
int llm_tokfile_header_parse(const unsigned char hdr[LLM_TOKFILE_HEADER],
                             const char *name, llm_tokfile_header *h);

/* Whole-file access by mmap, for training. */
typedef struct llm_tokfile llm_tokfile;

/*! llm_tokfile_open() : maps `path`, validates the header, the count against
 *  the file size (count 0: derived from the size, which must be a whole
 *  number of tokens) and every id < vocab_size. */
int llm_tokfile_open(const char *path, llm_tokfile **out);
int llm_tokfile_open_mem(const void *buf, size_t len, const char *name,
                         llm_tokfile **out);
void llm_tokfile_close(llm_tokfile *t);
const llm_tokfile_header *llm_tokfile_info(const llm_tokfile *t);
uint64_t llm_tokfile_count(const llm_tokfile *t);
/*! llm_tokfile_get() : id i (< count), already validated. */
uint32_t llm_tokfile_get(const llm_tokfile *t, uint64_t i);

/* Streaming read (pipes). */
typedef struct llm_tokreader llm_tokreader;

/*! llm_tokreader_open() : reads and validates the header from `f`. */
int llm_tokreader_open(FILE *f, const char *name, llm_tokreader **out);
const llm_tokfile_header *llm_tokreader_info(const llm_tokreader *r);
/*! llm_tokreader_read() : up to `cap` ids into dst, each checked against the
 *  vocabulary. @return count read (0 at end), or a negative status
 *  (LLM_ERR_FORMAT for a partial token, too many/few tokens for the header's
 *  count, or an id past the vocabulary, with the offset in the message). */
int64_t llm_tokreader_read(llm_tokreader *r, uint32_t *dst, size_t cap);
void llm_tokreader_free(llm_tokreader *r);

/* Streaming write. The count is patched in at close when `f` is seekable. */
typedef struct llm_tokwriter llm_tokwriter;

int  llm_tokwriter_open(FILE *f, uint32_t vocab_size, llm_tokwriter **out);
int  llm_tokwriter_write(llm_tokwriter *w, const int32_t *ids, size_t n);
/*! llm_tokwriter_close() : flushes, patches the count if it can, frees `w`
 *  (also on failure). Does not close `f`. */
int  llm_tokwriter_close(llm_tokwriter *w);

/* ------------------------------------------------------------------------ */
/* Training data: a token stream of segments, cut into shuffled sequences.  */

typedef struct llm_data llm_data;

int  llm_data_new(uint32_t vocab_size, llm_data **out);
/*! llm_data_add_file() : appends a token file (mapped, validated); its
 *  vocabulary size must equal the data's. */
int  llm_data_add_file(llm_data *d, const char *path);
/*! llm_data_add_ids() : appends a copy of ids, each checked < vocabulary. */
int  llm_data_add_ids(llm_data *d, const int32_t *ids, size_t n);
uint64_t llm_data_count(const llm_data *d);
uint32_t llm_data_vocab(const llm_data *d);
/*! llm_data_read() : n ids from stream position pos. */
int  llm_data_read(const llm_data *d, uint64_t pos, size_t n, int32_t *dst);
void llm_data_free(llm_data *d);

/* Where a batcher is: sequence `index` of the shuffled order of `epoch`. */
typedef struct {
    uint64_t epoch;
    uint64_t index;
} llm_data_pos;

typedef struct llm_batcher llm_batcher;

/*! llm_batcher_new() : sequences of T inputs and T targets (shifted by one)
 *  from tokens [begin, end) of `d` (which must outlive the batcher): the
 *  range holds (end-begin-1)/T whole sequences; each epoch visits every one
 *  once, in an order derived from (seed, epoch) only. */
int  llm_batcher_new(const llm_data *d, uint64_t begin, uint64_t end, int T,
                     uint64_t seed, llm_batcher **out);
uint64_t llm_batcher_sequences(const llm_batcher *b);
/*! llm_batcher_next() : fills inputs and targets, each (B, T). */
int  llm_batcher_next(llm_batcher *b, int B, int32_t *inputs, int32_t *targets);
/*! llm_batcher_skip() : moves past the next n sequences (or documents)
 *  without reading them, to where n more of them taken one by one would
 *  leave it: how a data-parallel rank passes over the other ranks'
 *  micro-batches (llm_train_params.world). */
void llm_batcher_skip(llm_batcher *b, uint64_t n);
llm_data_pos llm_batcher_pos(const llm_batcher *b);
int  llm_batcher_seek(llm_batcher *b, llm_data_pos pos);
void llm_batcher_free(llm_batcher *b);

/* Learning-rate schedules: linear warmup to lr over `warmup` steps, then
 * cosine or linear decay to min_lr at `total`, constant, or WSD (stable,
 * then linear decay over the last decay_fraction of the post-warmup steps). */
typedef enum {
    LLM_SCHED_COSINE, LLM_SCHED_LINEAR, LLM_SCHED_CONSTANT, LLM_SCHED_WSD
} llm_schedule_kind;

typedef struct {
    llm_schedule_kind kind;
    double lr, min_lr;
    int64_t warmup, total;
    double decay_fraction;   /* WSD only; 0 means 0.2 */
} llm_schedule;

int    llm_schedule_parse(const char *name, llm_schedule_kind *kind);
/*! llm_schedule_name() : "cosine", "linear", "constant" or "wsd"; NULL
 *  past the last kind. */
const char *llm_schedule_name(llm_schedule_kind kind);
/*! llm_schedule_lr() : the learning rate of 0-based step `step`. */
double llm_schedule_lr(const llm_schedule *s, int64_t step);

/* ------------------------------------------------------------------------ */
/* Tokenizer: a C API over SentencePiece, and byte-level BPE (GPT-2 style:
 * SmolLM2, Llama 3, Qwen2, GPT-2) with the ids of Hugging Face tokenizers. */

typedef struct llm_tok llm_tok;

typedef enum {
    LLM_PIECE_NORMAL = 1, LLM_PIECE_UNKNOWN = 2, LLM_PIECE_CONTROL = 3,
    LLM_PIECE_USER = 4, LLM_PIECE_BYTE = 6, LLM_PIECE_UNUSED = 5
} llm_piece_type;

/*! llm_tok_load() : loads a SentencePiece .model file, a Hugging Face
 *  tokenizer.json of a byte-level BPE model (first non-space byte '{'), or
 *  the tokenizer embedded in an llm model file (safetensors; a U8 tensor
 *  "tokenizer.model" or "tokenizer.json"). */
int  llm_tok_load(const char *path, llm_tok **out);
/*! llm_tok_load_mem() : loads a serialized SentencePiece ModelProto. */
int  llm_tok_load_mem(const void *buf, size_t len, llm_tok **out);
/*! llm_tok_load_hf_json() : loads a tokenizer.json file. What is read and
 *  what is refused by name (normalizers, non-Isolated splits, dropout...)
 *  is listed in lib/text/bpe.c. @return LLM_OK, LLM_ERR_IO, LLM_ERR_FORMAT,
 *  LLM_ERR_UNSUPPORTED (a valid feature we do not implement), LLM_ERR_NOMEM. */
int  llm_tok_load_hf_json(const char *path, llm_tok **out);
void llm_tok_free(llm_tok *t);

/* A vocabulary as GGUF files hold it (tokenizer.ggml.*). */
typedef struct {
    const char *model;            /* "gpt2" (byte-level BPE), "llama" (SentencePiece BPE)
                                   * or "t5" (SentencePiece unigram) */
    const char *const *tokens;    /* (n_tokens) */
    const size_t *token_lens;     /* (n_tokens), or NULL: NUL-terminated */
    size_t n_tokens;
    const float *scores;          /* llama: piece scores (required); gpt2: unused, may be NULL */
    const int32_t *types;         /* GGUF token types (llm_piece_type), or NULL: all normal */
    const char *const *merges;    /* gpt2: "a b", rank = index */
    size_t n_merges;
    const char *pre;              /* gpt2: tokenizer.ggml.pre, NULL = "default" */
    int bos_id, eos_id, unk_id, pad_id;   /* -1: none */
    int add_bos, add_eos;         /* -1: the model type's default (llama: bos yes; gpt2: no) */
    int add_space_prefix;         /* llama: -1 default (yes) */
} llm_tok_vocab;

/*! llm_tok_from_vocab() : builds a tokenizer from a GGUF-style vocabulary.
 *  "gpt2": byte-level BPE with the pre-tokenizer regexes of `pre` (names as
 *  llama.cpp's: default/gpt2, llama3/llama-bpe, smollm, qwen2 and aliases);
 *  control and user-defined tokens are matched literally in the text
 *  (user-defined always, control never by llm_tok_encode()).
 *  "llama" ("t5": unigram instead of BPE): a SentencePiece BPE ModelProto (identity normalization, byte
 *  fallback when the vocabulary has byte pieces, no removal of extra
 *  whitespace, the dummy prefix unless add_space_prefix is 0), as Llama 2
 *  and TinyLlama's tokenizer.model are. `name` names the source in messages.
 *  @return LLM_OK, LLM_ERR_INVALID (model, pre or scores), LLM_ERR_FORMAT
 *  (duplicate, empty or invalid-UTF-8 token, bad merge or type, special id
 *  out of range), LLM_ERR_UNSUPPORTED (an unknown pre), LLM_ERR_NOMEM. */
int llm_tok_from_vocab(const llm_tok_vocab *v, const char *name, llm_tok **out);

/* What llm_tok_bytes() holds: a serialized SentencePiece ModelProto, or a
 * tokenizer.json (UTF-8 JSON text starting with '{'). */
enum { LLM_TOK_SPM = 1, LLM_TOK_HF_JSON = 2 };
/*! llm_tok_format() : LLM_TOK_SPM or LLM_TOK_HF_JSON, so that a model file
 *  names its tensor "tokenizer.model" or "tokenizer.json". */
int llm_tok_format(const llm_tok *t);

/*! llm_tok_bytes() : the serialized model, e.g. to embed it in a model file. */
void llm_tok_bytes(const llm_tok *t, const void **buf, size_t *len);

int llm_tok_vocab_size(const llm_tok *t);
int llm_tok_bos_id(const llm_tok *t);    /* -1 when the model has none */
int llm_tok_eos_id(const llm_tok *t);
int llm_tok_unk_id(const llm_tok *t);
int llm_tok_pad_id(const llm_tok *t);
/*! llm_tok_add_bos() / llm_tok_add_eos() : the model's own flags (1 or 0):
 *  whether its users put BOS before / EOS after a text. llm_tok_encode()
 *  adds neither. SentencePiece models from a file: BOS when there is a bos
 *  id, no EOS; from llm_tok_from_vocab(): as given. Byte-level BPE: as given,
 *  or from tokenizer.json (see lib/text/bpe.c). */
int llm_tok_add_bos(const llm_tok *t);
int llm_tok_add_eos(const llm_tok *t);
/*! llm_tok_model_type() : "unigram", "bpe", "word" or "char" (SentencePiece
 *  models), or "bytelevel-bpe". */
const char *llm_tok_model_type(const llm_tok *t);
/*! llm_tok_normalizer() : the normalisation rule name, e.g. "nmt_nfkc";
 *  "identity" for byte-level BPE. */
const char *llm_tok_normalizer(const llm_tok *t);
/*! llm_tok_byte_fallback() : SentencePiece's byte_fallback; 0 for
 *  byte-level BPE (which needs none: every byte is a token). */
int llm_tok_byte_fallback(const llm_tok *t);

/* Vocabulary queries; `id` must be in [0, vocab_size). Byte-level BPE
 * pieces are in the GPT-2 byte alphabet ("Ġthe"); their scores are 0. */
const char *llm_tok_piece(const llm_tok *t, int id);
float llm_tok_score(const llm_tok *t, int id);
llm_piece_type llm_tok_piece_type(const llm_tok *t, int id);
/*! llm_tok_piece_id() : the id of a piece, or -1 when not in the vocabulary. */
int llm_tok_piece_id(const llm_tok *t, const char *piece);

/*! llm_tok_encode() : appends the ids of text[0..n) to `out`. Byte-level
 *  BPE takes any bytes (each byte of invalid UTF-8 is a piece of its own)
 *  and decodes back to them exactly. */
int llm_tok_encode(const llm_tok *t, const char *text, size_t n, llm_ids *out);
/*! llm_tok_encode_spans() : as llm_tok_encode(), and appends to `spans`
 *  each id's [start, end) byte offsets in text[0..n), two ints per id; -1,
 *  -1 for an id the normaliser made up. The ids are llm_tok_encode()'s. */
int llm_tok_encode_spans(const llm_tok *t, const char *text, size_t n, llm_ids *out,
                         llm_ids *spans);
/*! llm_tok_encode_pieces() : appends the pieces, separated by single spaces,
 *  to `out` (as spm_encode --output_format=piece). */
int llm_tok_encode_pieces(const llm_tok *t, const char *text, size_t n,
                          llm_buf *out);
/*! llm_tok_decode() : appends the text of ids to `out`. Every id must be in
 *  range (else LLM_ERR_RANGE). Byte-level BPE: control tokens give their
 *  text, as HF decode(skip_special_tokens=False). */
int llm_tok_decode(const llm_tok *t, const int32_t *ids, size_t n, llm_buf *out);
/*! llm_tok_decode_piece() : appends the text of one id as it would appear
 *  when decoding a sequence after a previous id `prev` (-1 at the start):
 *  for streaming output. */
int llm_tok_decode_piece(const llm_tok *t, int prev, int id, llm_buf *out);

typedef struct {
    const char *model_type;          /* "unigram" (default), "bpe", "char", "word" */
    int vocab_size;                  /* 8000 */
    double character_coverage;       /* 0.9995 */
    int byte_fallback;               /* 1 */
    const char *normalization;       /* "nmt_nfkc", "nfkc", "nmt_nfkc_cf", "nfkc_cf", "identity" */
    int remove_extra_whitespaces;    /* 1; forced 0 by "identity" is the caller's choice */
    int split_digits;                /* 0 */
    const char *user_symbols;        /* comma-separated, or NULL */
    const char *control_symbols;     /* comma-separated, or NULL */
    int64_t input_sentence_size;     /* 0 = all sentences */
    uint32_t seed;                   /* sampling of sentences */
    int threads;                     /* 0 = all cores */
    int max_sentence_length;         /* bytes; 4192 */
    int verbose;                     /* let SentencePiece log to stderr */
    int fit_vocab;                   /* 0; 1: a size the corpus cannot support is
                                        replaced by the nearest it can (the
                                        trainer's upper bound, or the pieces
                                        its characters need) and trained again */
} llm_tok_train_params;

/*! llm_tok_train_defaults() : fills `p` with the defaults shown above. */
void llm_tok_train_defaults(llm_tok_train_params *p);
/*! llm_tok_train() : trains a model on the text files `inputs` (one sentence
 *  per line, UTF-8 checked; "-" reads standard input) and returns it loaded.
 *  Writes no files. The serialized model is llm_tok_bytes(). */
int llm_tok_train(const char *const *inputs, size_t n_inputs,
                  const llm_tok_train_params *p, llm_tok **out);

/* ------------------------------------------------------------------------ */
/* Sampling the next token (sample.c), as llama.cpp does, in this order:
 *
 *  1. penalties, over the last `repeat_last_n` tokens of the history (the
 *     window is shared by all three, as llama.cpp's penalty_last_n), for each
 *     distinct token t in it, occurring c times, once:
 *         l = l > 0 ? l / repeat_penalty : l * repeat_penalty;
 *         l -= c * frequency_penalty + presence_penalty;
 *     computed in double and rounded to float once;
 *  2. temperature 0: greedy, the highest logit, ties to the lowest id;
 *  3. top-k: the k highest logits (ties at the boundary: lowest ids);
 *  4. temperature: l / T;  5. softmax (in double);
 *  6. top-p: the smallest set of most probable tokens whose probability sums
 *     to >= top_p (the token that crosses it is kept; at least one);
 *  7. min-p: drop tokens with p < min_p * p_max;
 *  8. renormalise and draw: u = llm_rng_uniform(rng), and the token where the
 *     cumulative probability first exceeds u, walking the tokens by logit
 *     (so probability) descending, ties by lowest id.
 *
 * Exactly one llm_rng_uniform() is drawn per sampled token when temperature
 * > 0 (even when one candidate is left), none when it is 0: the k-th token
 * of a sequence always uses the k-th number of the stream, so a seed
 * reproduces a sequence exactly, whatever the batching around it. Logits of
 * -inf mask tokens; NaN or +inf (after penalties) is LLM_ERR_NUMERIC.
 * Cost: a pass over the vocabulary, plus ordering only as many candidates as
 * the filters keep (partial selection; a radix sort when most are kept).
 * Defaults (llama.cpp's): temperature 0.8, top_k 40, top_p 0.95, min_p 0.05,
 * repeat_penalty 1 (off), repeat_last_n 64, presence and frequency 0.     */

typedef struct {
    double temperature;       /* >= 0, finite; 0 = greedy */
    int top_k;                /* >= 0; 0 = off */
    double top_p;             /* (0, 1]; 1 = off */
    double min_p;             /* [0, 1]; 0 = off */
    double repeat_penalty;    /* > 0, finite; 1 = off */
    int repeat_last_n;        /* penalty window: >= 0 tokens, 0 = off, -1 = all */
    double presence_penalty;  /* finite (negative rewards); 0 = off */
    double frequency_penalty; /* finite, per occurrence; 0 = off */
} llm_sampler_params;

/*! llm_sampler_defaults() : fills `p` with the defaults above. */
void llm_sampler_defaults(llm_sampler_params *p);
/*! llm_sampler_check() : @return LLM_OK, or LLM_ERR_INVALID with a message
 *  naming the first bad field (as its option: "top-p must be in (0, 1]...")
 *  and its accepted range. Values are never clamped. */
int  llm_sampler_check(const llm_sampler_params *p);

/* A sampler holds the parameters and scratch memory sized to the vocabulary
 * (grown on the first call; later calls allocate nothing). No global state:
 * use one sampler per thread. */
typedef struct llm_sampler llm_sampler;

/*! llm_sampler_new() : checks and copies `p` (NULL: the defaults).
 *  @return LLM_OK, LLM_ERR_INVALID or LLM_ERR_NOMEM. */
int  llm_sampler_new(const llm_sampler_params *p, llm_sampler **out);
void llm_sampler_free(llm_sampler *s);
const llm_sampler_params *llm_sampler_get_params(const llm_sampler *s);

/*! llm_sampler_sample() : picks the next token from logits[0..vocab).
 *  `logits` is scratch: modified in place, contents unspecified on return.
 *  `history` is the sequence so far (prompt and generated, n_history ids,
 *  may be NULL when 0), read only for the penalties; its ids in the window
 *  must be in [0, vocab). `rng` may be NULL when temperature is 0.
 *  *logprob (when not NULL): the natural log of the chosen token's
 *  probability in the final, filtered and renormalised distribution; for
 *  greedy, under the temperature-1 softmax of the penalised logits.
 *  @return LLM_OK, LLM_ERR_INVALID (vocab <= 0), LLM_ERR_RANGE (a history
 *  id), LLM_ERR_NUMERIC (NaN/+inf, or every logit -inf), LLM_ERR_NOMEM. */
int  llm_sampler_sample(llm_sampler *s, llm_rng *rng, float *logits, int vocab,
                        const int32_t *history, size_t n_history,
                        int32_t *token, float *logprob);
/*! llm_sampler_sample_batch() : llm_sampler_sample() for n sequences at
 *  once, on the threads: sequence i samples from logits + i * vocab with
 *  rng[i] (rng may be NULL when temperature is 0) and history[i] of
 *  n_history[i] ids (history may be NULL: none), into tokens[i] and, when
 *  logprobs is not NULL, logprobs[i]. The tokens are those of n calls of
 *  llm_sampler_sample() in turn, whatever the thread count; `s` keeps one
 *  sampler's scratch per thread. On failure the status of the lowest
 *  failing sequence, whose number the message names; the other sequences
 *  may or may not have drawn. */
int  llm_sampler_sample_batch(llm_sampler *s, int n, llm_rng *rng, float *logits, int vocab,
                              const int32_t *const *history, const size_t *n_history,
                              int32_t *tokens, float *logprobs);
/*! llm_sampler_penalize() : applies step 1 alone, in place (the logits the
 *  rest of llm_sampler_sample() sees), e.g. to show or test them. */
int  llm_sampler_penalize(llm_sampler *s, float *logits, int vocab,
                          const int32_t *history, size_t n_history);

/* ------------------------------------------------------------------------ */
/* Transformer model (model.c): a Llama-style decoder as in llm-formats(5):
 * token embedding; per layer RMSNorm, causal grouped-query attention with
 * rotary positions (adjacent pairs), RMSNorm, SwiGLU; final RMSNorm; output
 * projection tied to the embedding by default. Weights are (out, in)
 * row-major like torch.nn.Linear; parameter names are the safetensors names
 * ("tok_embeddings.weight", "layers.0.attention.wq.weight", ...).
 * Threads: llm_set_threads(); results are bitwise reproducible for the same
 * seed, inputs and thread count. */

typedef struct {
    int vocab_size;     /* V, from the tokenizer */
    int dim;            /* C; a multiple of n_heads, head_dim = C / H even */
    int n_layers;       /* L */
    int n_heads;        /* H */
    int n_kv_heads;     /* KVH; n_heads % n_kv_heads == 0 */
    int ffn_dim;        /* F, SwiGLU hidden size */
    int context;        /* T_max, the longest sequence */
    double rope_base;   /* 10000 */
    double norm_eps;    /* 1e-5 */
    int tied;           /* 1: the output projection is the token embedding */
} llm_config;

/*! llm_config_preset() : fills `c` with a named shape, keeping its
 *  vocab_size: "tiny" (4 x 128, ~1M parameters with a 4k vocabulary),
 *  "small" (llama2.c stories15M: 6 x 288, 6 heads, FFN 768, context 256),
 *  "medium" (stories42M: 8 x 512, FFN 1376, context 1024), "large"
 *  (stories110M: 12 x 768, FFN 2048, context 1024). Unknown name:
 *  LLM_ERR_INVALID listing the names. */
int llm_config_preset(const char *name, llm_config *c);
/*! llm_config_preset_name() : the i-th preset name, NULL past the end. */
const char *llm_config_preset_name(int i);
/*! llm_config_check() : LLM_OK, or LLM_ERR_INVALID naming the first bad
 *  field as its option ("--heads (5) must divide --dim (288)"). */
int llm_config_check(const llm_config *c);
/*! llm_config_params() : number of parameters (-1 when c is invalid). */
int64_t llm_config_params(const llm_config *c);

typedef struct llm_model llm_model;

/*! llm_set_threads() : one thread count for every kernel (OpenMP and
 *  OpenBLAS share it, so they never oversubscribe); n <= 0: all cores.
 *  @return the count in use. */
int llm_set_threads(int n);

/*! llm_cpu_level() : the instruction-set level of the CPU kernels in use:
 *  "generic", "avx2", "avx512" or "amx" ("native" in a `make NATIVE=1` build),
 *  the best this CPU runs unless the environment variable LLM_CPU names
 *  another (chosen once; a level that cannot be used is said on stderr
 *  and the best one used). llm_cpu_levels() : every level this build has
 *  and this CPU runs, best first, NULL-terminated. */
const char *llm_cpu_level(void);
const char *const *llm_cpu_levels(void);
/*! llm_cpu_gemm() : what computes that level's matrix products: "own
 *  amx" (our AVX-512 kernel, its bf16 products in AMX tiles: the amx
 *  level's default), "own avx512" (our AVX-512 kernel: the avx512 level's),
 *  "own avx2" (its AVX2 form: the avx2 level's) or "openblas" (the generic
 *  level's, or forced by the environment variable LLM_GEMM=openblas). */
const char *llm_cpu_gemm(void);

/*! llm_device_check() : LLM_OK when models can run on `device`: "cpu",
 *  "ref" or NULL; "cuda" in a CUDA build (make CUDA=1) with a usable GPU,
 *  whose kernel table has every entry a model needs. Else LLM_ERR_DEVICE
 *  saying why (an unknown device; cuda: not built, no usable GPU or
 *  driver, with the driver's reason). */
int llm_device_check(const char *device);

/*! llm_model_create() : a model with freshly initialised weights: normal
 *  (std 0.02) from llm_rng seeded with `seed`, drawn tensor by tensor in
 *  file order; wo and w2 scaled by 1/sqrt(2L); norm weights 1. `device`:
 *  "cpu" (NULL means cpu), "ref" (slow reference kernels), "cuda".
 *  @return LLM_OK, LLM_ERR_INVALID, LLM_ERR_DEVICE or LLM_ERR_NOMEM. */
int  llm_model_create(const llm_config *c, uint64_t seed, const char *device,
                      llm_model **out);
void llm_model_free(llm_model *m);
const llm_config *llm_model_config(const llm_model *m);

/*! llm_model_forward() : runs tokens (B, T) through the model, T <=
 *  context, every id < vocab_size. Activations for backward are kept
 *  (memory grows to fit the largest B, T seen). With `targets` (B, T; a
 *  target < 0 is ignored), *loss = mean cross-entropy over the counted
 *  positions (0 when none counts); without, loss may be NULL.
 *  @return LLM_OK, LLM_ERR_INVALID, LLM_ERR_RANGE (an id, with its
 *  position) or LLM_ERR_NOMEM. */
int llm_model_forward(llm_model *m, const int32_t *tokens,
                      const int32_t *targets, int B, int T, float *loss);
/*! llm_model_forward_packed() : llm_model_forward() over rows that each
 *  hold several documents: starts (B, T) gives, for every position, the
 *  position in its row where its document begins (0 <= starts[b*T+t] <= t),
 *  and attention never crosses into an earlier document. RoPE sees row
 *  positions, which leaves attention scores as they would be at positions
 *  from 0 (they depend on distances only), up to float rounding.
 *  starts NULL: llm_model_forward(). @return as llm_model_forward(), and
 *  LLM_ERR_RANGE for a start outside [0, t]. */
int llm_model_forward_packed(llm_model *m, const int32_t *tokens, const int32_t *targets,
                             const int32_t *starts, int B, int T, float *loss);
/*! llm_model_set_dropout() : residual dropout with probability p in [0, 1)
 *  on the attention and feed-forward outputs of every block, in training
 *  passes only (see llm_model_set_training()); kept values are scaled by
 *  1 / (1 - p). Each mask is a pure function of (seed, AdamW step, backward
 *  passes since that step, layer, position), so repeated and resumed runs
 *  draw the same masks whatever the thread count. p = 0 turns it off. */
int  llm_model_set_dropout(llm_model *m, double p, uint64_t seed);
/*! llm_model_set_label_smoothing() : label smoothing eps in [0, 1) for
 *  the language-modelling loss's gradient (lm and pairs training, and a
 *  classifier's auxiliary LM loss): the targets become (1 - eps) x the
 *  next token + eps / V x every token. The loss that forwards report stays
 *  the plain cross-entropy, comparable with validation. 0 (the default)
 *  turns it off. @return LLM_ERR_INVALID outside [0, 1). */
int  llm_model_set_label_smoothing(llm_model *m, double eps);
/*! llm_model_set_precision() : "f32" (the default) or "bf16": mixed
 *  precision, the products of the blocks' and the output layer's weights
 *  taken on inputs rounded to bfloat16 with fp32 sums (as PyTorch's
 *  autocast), in training and evaluation passes; weights, gradients and
 *  AdamW moments stay fp32. @return LLM_ERR_INVALID for another name,
 *  LLM_ERR_UNSUPPORTED when the model's kernels have no bf16 products. */
int  llm_model_set_precision(llm_model *m, const char *precision);
/*! llm_model_set_training() : 1 while training (dropout on), 0 otherwise,
 *  the default (validation, inference). */
void llm_model_set_training(llm_model *m, int on);
/*! llm_model_logits() : a copy of the (B, T, V) logits of the last
 *  forward, valid until the next call on m; NULL before any forward or
 *  when out of memory (reason set). Not after llm_model_backward(), whose
 *  gradients overwrite them on the device. */
const float *llm_model_logits(llm_model *m);
/*! llm_model_backward() : adds d(loss)/d(parameter) of the last forward
 *  (which must have had targets) to the gradients.
 *  @return LLM_OK, LLM_ERR_INVALID (no such forward) or LLM_ERR_NOMEM. */
int llm_model_backward(llm_model *m);
/*! llm_model_zero_grad() : sets every gradient to 0 (allocating them). */
int llm_model_zero_grad(llm_model *m);
/*! llm_model_grad_norm() : the global L2 norm of all gradients (0 when
 *  none are allocated); summed in double in a fixed order. */
double llm_model_grad_norm(const llm_model *m);
/*! llm_model_scale_grad() : multiplies every gradient by s (averaging
 *  accumulated micro-batches), through the model's kernels. */
void llm_model_scale_grad(llm_model *m, float s);
/*! llm_model_clip_grad() : scales the gradients so that their global norm
 *  is at most max_norm (> 0). @return the norm before clipping. */
double llm_model_clip_grad(llm_model *m, double max_norm);

/*! llm_model_reset_optimizer() : drops the gradients and AdamW moments
 *  and sets the step count to 0: a checkpoint, loaded, then starts a new
 *  run as its model file would (llm-train --init). */
void llm_model_reset_optimizer(llm_model *m);

/*! llm_model_lora() : adds low-rank adapters (LoRA, Hu et al. 2021) of rank
 *  r to every layer's wq, wk, wv, wo, w1, w2 and w3: each projection W
 *  (out, in) becomes y = W x + (alpha / r) B (A x) with A (r, in) drawn as
 *  PEFT draws it (kaiming-uniform, U(-1/sqrt(in), 1/sqrt(in)), from `seed`)
 *  and B (out, r) = 0, so that the adapted model starts equal to the base.
 *  From then on only the adapters (and a classifier head, if the model has
 *  one: add it first) have gradients and AdamW moments: the base weights,
 *  norms and embedding stay as they are, and need no memory beyond their
 *  own. Gradients and optimizer state are reset. llm_model_save() writes
 *  the merged weights W + (alpha / r) B A (a plain model) unless it saves
 *  the optimizer state (a checkpoint): then the base weights, the adapters
 *  ("layers.N.<proj>.lora_a" / "lora_b") and their moments, with
 *  "lora.rank" and "lora.alpha" in the metadata, which llm_model_load()
 *  reads back into an adapted model.
 *  @return LLM_OK, LLM_ERR_INVALID (adapters already there, r outside
 *  [1, min(dim, ffn_dim)], alpha not finite and > 0), LLM_ERR_NOMEM. */
int llm_model_lora(llm_model *m, int r, double alpha, uint64_t seed);
/*! llm_model_lora_fold() : merges the adapters into the weights they adapt
 *  (W + (alpha / r) B A, the weights llm_model_save() writes to a model
 *  file) and removes them, with the gradients and optimizer state: a
 *  checkpoint with adapters, loaded, becomes the model its model file
 *  holds. LLM_OK at once without adapters; else LLM_OK or LLM_ERR_NOMEM. */
int llm_model_lora_fold(llm_model *m);
/*! llm_model_lora_rank() : r of the model's adapters, 0 when it has none. */
int llm_model_lora_rank(const llm_model *m);
/*! llm_model_lora_alpha() : their alpha (0 when none). */
double llm_model_lora_alpha(const llm_model *m);

typedef struct {
    double lr;               /* 1e-3 */
    double beta1, beta2;     /* 0.9, 0.95 */
    double eps;              /* 1e-8 */
    double weight_decay;     /* 0.1, on 2-D weights except the embedding */
    int decay_embedding;     /* 0; 1: decay tok_embeddings too */
} llm_adamw;

void llm_adamw_defaults(llm_adamw *o);
/*! llm_model_adamw_step() : one torch.optim.AdamW step over all parameters
 *  (moments allocated, zeroed, on the first call). Gradients are left as
 *  they are. @return LLM_OK, LLM_ERR_INVALID (a bad hyper-parameter, or no
 *  gradients), LLM_ERR_NUMERIC (a non-finite gradient: nothing is changed)
 *  or LLM_ERR_NOMEM. */
int llm_model_adamw_step(llm_model *m, const llm_adamw *o);
/*! llm_model_steps() : AdamW steps taken so far (restored by load). */
int64_t llm_model_steps(const llm_model *m);

/* A named parameter tensor. Its values, gradient and AdamW moments live in
 * the memory of the model's device (which may be a GPU's): copy them with
 * llm_model_param_read() and llm_model_param_write(). */
typedef struct {
    const char *name;
    int ndim;              /* 1 or 2 */
    int64_t shape[2];
    size_t numel;
    int has_grad;          /* it trains and its gradient is allocated */
    int has_moments;       /* it trains and its AdamW moments are allocated */
} llm_param;

/* What of a parameter llm_model_param_read() and _write() copy. */
enum { LLM_PARAM_DATA, LLM_PARAM_GRAD, LLM_PARAM_ADAM_M, LLM_PARAM_ADAM_V };

size_t llm_model_param_count(const llm_model *m);
/*! llm_model_param_at() : parameter i in file order; LLM_ERR_RANGE past the end. */
int llm_model_param_at(const llm_model *m, size_t i, llm_param *p);
/*! llm_model_param_read() : copies the numel floats of `what` (LLM_PARAM_*)
 *  of parameter i into dst. @return LLM_OK, LLM_ERR_RANGE (no such
 *  parameter) or LLM_ERR_INVALID (no such gradient or moment). */
int llm_model_param_read(const llm_model *m, size_t i, int what, float *dst);
/*! llm_model_param_write() : the other way; the model then owns its
 *  weights (a mapped file is copied first). Same errors, and
 *  LLM_ERR_NOMEM. */
int llm_model_param_write(llm_model *m, size_t i, int what, const float *src);
/*! llm_model_param_find() : by name, and its index into *index (when not
 *  NULL); LLM_ERR_RANGE when there is none. */
int llm_model_param_find(const llm_model *m, const char *name, llm_param *p, size_t *index);

typedef struct {
    const void *tokenizer;      /* serialized SentencePiece model, or NULL */
    size_t tokenizer_len;
    int optimizer;              /* 1: also AdamW moments and step (a checkpoint) */
    const char *const *meta;    /* extra metadata: key, value, ..., NULL */
} llm_save_params;

/*! llm_model_save() : writes a model file (safetensors, atomically): the
 *  parameters, "tokenizer.model" (U8) and the metadata of llm-formats(5);
 *  with p->optimizer, "adamw.m.<name>", "adamw.v.<name>" and metadata
 *  "adamw.step". p may be NULL. Tensors lie in the file in the model's
 *  memory order, so that llm_model_load() can map them.
 *  @return LLM_OK, LLM_ERR_IO, LLM_ERR_NOMEM. */
int llm_model_save(const llm_model *m, const char *path, const llm_save_params *p);
/*! llm_model_load() : reads a model file: checks "format", the version, the
 *  config, and every tensor's dtype and shape; restores AdamW state when
 *  present. When the file holds the parameters as one run of
 *  little-endian F32 in memory order (as llm_model_save() writes them), the
 *  model reads them where the file lies mapped, read-only, so that
 *  processes loading one file share one copy; otherwise they are copied.
 *  Training (llm_trainer_new(), AdamW, a new head) first takes a private
 *  copy. The file must not be written in place while the model lives
 *  (replace it by rename). @return LLM_OK, LLM_ERR_IO, LLM_ERR_FORMAT (with
 *  the file and the tensor or key), LLM_ERR_UNSUPPORTED, LLM_ERR_DEVICE,
 *  LLM_ERR_NOMEM. */
int llm_model_load(const char *path, const char *device, llm_model **out);
/* What a model path holds. */
enum { LLM_FORMAT_LLM = 0, LLM_FORMAT_GGUF = 1, LLM_FORMAT_HF = 2 };
/*! llm_model_format() : by a look at `path`: a folder is a Hugging Face
 *  model (config.json, safetensors weights, tokenizer.json or
 *  tokenizer.model), a file that starts with "GGUF" a GGUF file; anything
 *  else, including what cannot be opened, is taken for our own model file
 *  (whose reader then says what is wrong). llm_model_load() and
 *  llm_tok_load() read all three. */
int llm_model_format(const char *path);
/*! llm_model_chat_template() : the chat layout of an instruct model,
 *  "chatml" (<|im_start|>role ... <|im_end|>) or "llama2" ([INST] ...
 *  [/INST]), or NULL when it has none. Read from a pretrained model's chat
 *  template and kept in model files (metadata "chat_template"). */
const char *llm_model_chat_template(const llm_model *m);
/*! llm_model_set_chat() : sets it; NULL: none. @return LLM_OK, or
 *  LLM_ERR_INVALID for a name other than those. */
int llm_model_set_chat(llm_model *m, const char *name);
/*! llm_model_chat_system() : the system turn the model's chat template
 *  puts first when a conversation has none (SmolLM2's "You are a helpful AI
 *  assistant named SmolLM, ..."), or NULL; metadata "chat_system". */
const char *llm_model_chat_system(const llm_model *m);
/*! llm_model_set_chat_system() : sets it (copied; NULL: none). */
int llm_model_set_chat_system(llm_model *m, const char *text);
/*! llm_chat_encode() : appends to `out` the ids of a prompt in chat layout
 *  `tmpl` ("chatml" or "llama2"): a system turn when `system` is not NULL,
 *  the user's turn, and the start of the assistant's, where generation
 *  goes on. The layout's markers are the vocabulary's special tokens; the
 *  turns' text is encoded as plain text (markers typed in it stay text).
 *  No system turn is added by default.
 *  @return LLM_OK, LLM_ERR_INVALID (unknown template), LLM_ERR_UNSUPPORTED
 *  (the vocabulary lacks a marker, or cannot encode a byte of the layout's
 *  words or the system turn), or the tokenizer's error on the user's text
 *  (LLM_ERR_RANGE: a byte no piece holds). */
int llm_chat_encode(const llm_tok *t, const char *tmpl, const char *system, size_t sn,
                    const char *user, size_t un, llm_ids *out);
/*! llm_model_own() : makes the parameters a private, writable copy when they
 *  lie mapped from the model file (llm_model_load()); a no-op otherwise.
 *  Training does it first. The copy sits in transparent huge pages where the
 *  system has them: faster to stream through (one decoding step reads every
 *  weight) than a file mapped in 4 KiB pages, but no longer shared between
 *  processes (llm-generate --no-mmap). @return LLM_OK, LLM_ERR_NOMEM. */
int llm_model_own(llm_model *m);

/* ------------------------------------------------------------------------ */
/* Export (export.c): a language model and its tokenizer in the formats
 * others read, llama.cpp's GGUF and Hugging Face's LlamaForCausalLM folder,
 * so that llm_model_load() and llm_tok_load() read back the same weights
 * (to the rounding of the type), config, tokenizer and chat settings.
 * Classifiers have no such format: both refuse them (LLM_ERR_UNSUPPORTED).
 * The chat layout travels as a Jinja chat template: ChatML in SmolLM2's
 * shape, its default system turn (llm_model_chat_system()) as a literal
 * first turn, or Llama 2's [INST] template. */

/* Tensor types of GGUF export, numbered as ggml_type. */
enum { LLM_EXPORT_F32 = 0, LLM_EXPORT_F16 = 1, LLM_EXPORT_Q8_0 = 8 };

/*! llm_model_export_gguf() : writes `path` (atomically) as a GGUF v3 file
 *  of architecture "llama": 2-D weights of `type` (LLM_EXPORT_F32, _F16 or
 *  _Q8_0, bit-exact with gguf-py's quantize), except that a matrix whose
 *  rows are not a multiple of 32 falls back to F16 under Q8_0, as
 *  llama.cpp's converter does; norm weights always F32. Tensors under
 *  llama.cpp's names, unpermuted (GGUF's llama rotates adjacent pairs, as
 *  we do); a tied model has no output.weight. Metadata: the llama.* shape
 *  keys, general.file_type, general.quantization_version 2 when quantized,
 *  tokenizer.chat_template, and with `t` (NULL: no tokenizer) the
 *  tokenizer.ggml.* vocabulary: SentencePiece (pieces, scores, types,
 *  special ids, add_bos/add_eos, add_space_prefix) as "llama" for a BPE
 *  model and "t5" (llama.cpp's unigram, UGM) for a unigram one; no
 *  normalization travels, so that only identity-normalized models encode
 *  the same everywhere (char and word models: LLM_ERR_UNSUPPORTED); our
 *  own import reads "llama" but not yet "t5"; byte-level BPE as
 *  "gpt2" (tokens, types, merges, and tokenizer.ggml.pre when its
 *  pre-tokenizer is one llama.cpp names). t's vocabulary must be the
 *  model's. @return LLM_OK, LLM_ERR_INVALID, LLM_ERR_UNSUPPORTED,
 *  LLM_ERR_NUMERIC (Q8_0 of a non-finite weight), LLM_ERR_IO, LLM_ERR_NOMEM. */
int llm_model_export_gguf(const llm_model *m, const llm_tok *t, const char *path, int type);
/*! llm_model_export_hf() : writes the folder `dir`, which must not exist or
 *  be empty (else LLM_ERR_INVALID): config.json, generation_config.json,
 *  model.safetensors (F32, or BF16 rounded to nearest even when `bf16`;
 *  Hugging Face names, q/k rows in its rotate-half layout; a tied model
 *  has no lm_head), and with `t`: tokenizer.json (byte-level BPE) or
 *  tokenizer.model (SentencePiece) and tokenizer_config.json (special
 *  tokens, add_bos/add_eos, chat template, model_max_length). Built in a
 *  temporary folder beside `dir` and renamed onto it: on failure nothing
 *  is left. @return LLM_OK, LLM_ERR_INVALID, LLM_ERR_UNSUPPORTED,
 *  LLM_ERR_IO, LLM_ERR_NOMEM. */
int llm_model_export_hf(const llm_model *m, const llm_tok *t, const char *dir, int bf16);

/* ------------------------------------------------------------------------ */
/* Generation with a key/value cache (infer.c). A session keeps the keys and
 * values of every layer for up to n_seq sequences of up to the model's
 * context, so that each new token costs one pass over the weights. Logits
 * equal those of llm_model_forward() over the whole sequence up to float
 * rounding (tests: 1e-4 + 1e-4 * |ref|).
 *
 * Results never depend on batching: prefill and llm_session_step()
 * compute every row in the same order whether its sequence is alone or
 * with others (a prompt of over 32 tokens over fp32 weights is prefilled
 * alone, by the backend's sgemm). For the same thread count results are
 * bitwise reproducible (sgemm's rounding may change with the thread count;
 * the other products' does not). */

typedef struct llm_session llm_session;

/*! llm_session_new() : a cache for n_seq (in [1, 65536]) empty sequences
 *  over `m`, which must outlive the session and not change meanwhile. The
 *  cache's memory is reserved for n_seq x context positions but only
 *  touched as positions fill. Its keys and values are floats, or bfloat16
 *  when `m` has bf16 copies of its weights (llm_model_weights_bf16(),
 *  called before) and the backend has bf16 attention (the CPU's).
 *  @return LLM_OK, LLM_ERR_INVALID, LLM_ERR_NOMEM. */
int  llm_session_new(const llm_model *m, int n_seq, llm_session **out);
void llm_session_free(llm_session *s);
int  llm_session_seqs(const llm_session *s);
/*! llm_session_len() : positions held by sequence `seq` (-1: no such seq). */
int  llm_session_len(const llm_session *s, int seq);
/*! llm_session_clear() : empties sequence `seq`, to start another in its place. */
int  llm_session_clear(llm_session *s, int seq);
/*! llm_session_prefill() : appends tokens[0..n) (n >= 1) to sequence `seq`
 *  in one forward (matrix-matrix), at positions len .. len + n - 1; when
 *  logits is not NULL, writes the V logits after the last one.
 *  @return LLM_OK, LLM_ERR_INVALID, LLM_ERR_RANGE (a token id, a bad seq,
 *  or more than the context), LLM_ERR_NOMEM. Nothing changes on failure. */
int  llm_session_prefill(llm_session *s, int seq, const int32_t *tokens, int n,
                         float *logits);
/*! llm_session_prefill_batch() : llm_session_prefill() of n prompts (n in
 *  [1, sequences]) together: appends tokens[i][0..lens[i]) to sequence
 *  seqs[i] (distinct) for each i < n, many prompts to a forward, so that
 *  the weights are streamed once for all of them; when logits is not
 *  NULL, writes (n, V): row i after prompt i's last token. Each prompt's
 *  logits and cache have the bits its own llm_session_prefill() gives.
 *  @return as llm_session_prefill(); on failure no sequence's length
 *  changes. */
int  llm_session_prefill_batch(llm_session *s, const int *seqs,
                               const int32_t *const *tokens, const int *lens, int n,
                               float *logits);
/*! llm_session_step() : appends tokens[i] to sequence seqs[i] for i < n
 *  (distinct sequences, none full) in one forward; logits (n, V) after each.
 *  @return as llm_session_prefill(). */
int  llm_session_step(llm_session *s, const int *seqs, const int32_t *tokens, int n,
                      float *logits);
/*! llm_session_advance() : the steps of running sequences and the prompts
 *  of new ones in one call, as a server batches them: appends
 *  tokens[i][0..lens[i]) to sequence seqs[i] (distinct) for each i < n,
 *  where the first n_step entries are steps (lens[i] == 1) and the rest
 *  prompts; logits (n, V, not NULL): row i after sequence i's last token.
 *  Each row has the bits llm_session_step() of the steps and
 *  llm_session_prefill_batch() of the prompts give; both go in one
 *  forward (the weights streamed once) where that holds, which is with
 *  bf16 or int8 copies of the weights, or over fp32 weights without half
 *  copies when no prompt is over 32 tokens; else the steps' forward, then
 *  the prompts'. @return as llm_session_prefill(); on failure no
 *  sequence's length changes. */
int  llm_session_advance(llm_session *s, const int *seqs, const int32_t *const *tokens,
                         const int *lens, int n, int n_step, float *logits);
/*! llm_session_copy() : makes sequence `dst` a copy of sequence `src`
 *  (its positions, keys and values), as beam search forks a hypothesis.
 *  dst == src does nothing. @return LLM_OK or LLM_ERR_RANGE (a bad seq). */
int  llm_session_copy(llm_session *s, int dst, int src);

/*! Beam search over a session: for each of n prompts, `beams` hypotheses
 *  grow together, all prompts' live hypotheses stepped in one
 *  llm_session_step() (so a batch gives the same text as one prompt at a
 *  time: steps are batch-invariant, and ties break by hypothesis, then
 *  token id). At each step every live hypothesis of a prompt offers its
 *  2 x beams best next tokens; of all offers the `beams` best by total
 *  log-probability go on, and an offer of EOS finishes its hypothesis with
 *  the score sum / length^length_penalty (length: generated tokens, EOS
 *  counted). A prompt is done when `beams` hypotheses have finished and no
 *  live one can beat the worst of them by its score at this length (as
 *  Hugging Face's early_stopping=False), or after max_tokens tokens, when
 *  the live hypotheses finish as they are. beams 1 is greedy decoding. */
typedef struct {
    int beams;               /* >= 1 */
    double length_penalty;   /* finite; 1: mean log-probability per token;
                              * 0: the plain sum (favours short outputs) */
    int max_tokens;          /* >= 1 */
} llm_beam_params;

/*! llm_beam_search() : decodes prompts[i] (lens[i] >= 1 ids) for i < n in
 *  sequences [i x beams, (i + 1) x beams) of `s` (which must have that many;
 *  they are cleared first, and each prompt plus max_tokens must fit the
 *  context). out[i] gets the best hypothesis' ids without EOS (appended to
 *  whatever it holds), score[i] its score and finished[i] 1 when it ended
 *  with EOS (0: at max_tokens); score and finished may be NULL.
 *  @return LLM_OK, LLM_ERR_INVALID, LLM_ERR_RANGE, LLM_ERR_NOMEM. */
int  llm_beam_search(llm_session *s, const int32_t *const *prompts, const size_t *lens, int n,
                     int eos, const llm_beam_params *p, llm_ids *out, double *score,
                     int *finished);

/*! llm_model_decode_f16() : from now on every llm_session_step() over `m`
 *  reads IEEE half-precision copies (rounded to nearest even) of the layers'
 *  and the output layer's weights: half the bytes per token, so about twice
 *  the tokens per second where decoding is bound by memory bandwidth. Steps
 *  then equal fp32 steps over the weights rounded to half, bit for bit;
 *  prefill still reads the fp32 weights. Costs 2 bytes per such weight
 *  (on the model's device). The copies are of the weights as they are now:
 *  later changes to them (training) do not reach the steps. Not to be
 *  called while a session over `m` is running.
 *  @return LLM_OK, LLM_ERR_UNSUPPORTED (kernels without half products),
 *  LLM_ERR_RANGE (a weight beyond half's range, 65504), LLM_ERR_NOMEM. */
int  llm_model_decode_f16(llm_model *m);

/*! llm_model_quantize_q8() : from now on every forward over `m` (sessions'
 *  prefill, steps and packed forwards; llm_model_forward(), for evaluation)
 *  computes the matrix products of its layers and of its output layer
 *  with int8 weights: quantized once, here, in blocks of 32 along each row
 *  with a float scale d and offset m each, a weight being d q + m (Q8_0's
 *  d = max|w| / 127, m = 0, or the block's range in 255 steps where that
 *  errs less, as kernels.h's quantize_q8 says; a short last block when 32
 *  does not divide the row); every input row quantized at each product
 *  into blocks of 32 int16s, integer dot products per block, scaled and
 *  summed in float in a fixed order (kernels.h), so that a sequence still
 *  gets the same bits in any batch, and a prompt prefilled the same bits
 *  as stepped token by token. Under a third of fp32's bytes per token
 *  (1.25 bytes a weight). The embedding, norms and classifier head stay
 *  fp32; the fp32 weights stay too (the copies cost 1.25 bytes per weight
 *  on top). Takes precedence over
 *  llm_model_decode_f16()'s copies. The model can no longer train
 *  (backward refuses). CPU only. Not to be called while a
 *  session over `m` is running.
 *  @return LLM_OK, LLM_ERR_UNSUPPORTED (kernels without int8 products, such
 *  as cuda; a model with unmerged adapters), LLM_ERR_NUMERIC (a weight is
 *  inf or NaN), LLM_ERR_INVALID (the model has bf16 copies already),
 *  LLM_ERR_NOMEM. */
int  llm_model_quantize_q8(llm_model *m);

/*! llm_model_weights_bf16() : the same as llm_model_quantize_q8(), in
 *  bfloat16: the weights rounded once, here, to bf16 (to nearest, ties to
 *  even), every input row rounded alike at each product, the exact
 *  products summed in fp32 in an order fixed per element (kernels.h:
 *  matmul_rows_bf16), so batching changes no bits. The arithmetic of
 *  llm_model_set_precision(m, "bf16") training, attention included (its
 *  query, keys, values and weights rounded to bf16, sums and softmax in
 *  fp32; sessions then cache bf16 keys and values, half the bytes): a
 *  model trained so reads the weights its products saw. With AVX512_BF16 (VDPBF16PS) about twice
 *  fp32's products per second, and half its bytes per token; elsewhere
 *  emulated in fp32 (slower than fp32 itself). The copies cost 2 bytes per
 *  weight on top of the fp32 ones. The model can no longer train
 *  (backward refuses). CPU only. Not to be called while a session over `m`
 *  is running.
 *  @return LLM_OK, LLM_ERR_UNSUPPORTED (kernels without bf16 inference
 *  products, such as cuda; a model with unmerged adapters), LLM_ERR_INVALID
 *  (the model has int8 copies already), LLM_ERR_NOMEM. */
int  llm_model_weights_bf16(llm_model *m);

/* ------------------------------------------------------------------------ */
/* Classification (classify.c): the same backbone with a head over its final
 * RMSNorm'd hidden states h (B, T, C). Each batch row is one document,
 * right-padded: its first lengths[b] tokens are real, and causal attention
 * keeps them unaffected by the padding after them. The head reads only the
 * real positions:
 *     pooled[b] = h[b, len-1]             LLM_POOL_LAST (the last real token)
 *               = mean of h[b, 0..len)    LLM_POOL_MEAN
 *     logits    = pooled . head.weight^T + head.bias              (B, K)
 * Loss, single-label: softmax cross-entropy; with class weights w,
 *     sum_b w[y_b] ce_b / sum_b w[y_b]    (torch's CrossEntropyLoss(weight=w));
 * multi-label: a sigmoid binary cross-entropy per label, mean over B x K,
 * with weights as pos_weight (torch's BCEWithLogitsLoss(pos_weight=w)).
 * Plus, with lm_weight > 0 (llm_cls_targets), the documents' own language
 * modelling loss as an auxiliary term (GPT-1's fine-tuning objective):
 *     + lm_weight * mean over real positions t + 1 < len[b] of
 *       -log softmax(h[b, t] . output^T)[tokens[b, t + 1]]
 * which keeps the backbone a language model of the domain while the head
 * trains: on 10,000 THUCNews titles it added 0.9 point of test accuracy
 * (mean of 5 seeds), but not on every data set (llm-train(1)).
 * Probabilities: softmax(logits / temperature), or sigmoid(logits /
 * temperature) per label; the temperature is fitted on validation data.
 * Documents are BOS, their tokens, EOS (llm_cls_encode()).               */

typedef enum { LLM_POOL_LAST = 0, LLM_POOL_MEAN = 1 } llm_pooling;

/*! llm_pooling_parse() : "last" or "mean". @return LLM_OK or LLM_ERR_INVALID. */
int llm_pooling_parse(const char *name, llm_pooling *p);
const char *llm_pooling_name(llm_pooling p);

typedef struct {
    int n_labels;                 /* K >= 1; >= 2 when single-label */
    const char *const *labels;    /* K distinct names: non-empty UTF-8 without
                                   * tab, CR, LF or NUL (they go into TSV) */
    int multi_label;              /* 1: independent labels */
    llm_pooling pooling;
} llm_head_params;

/*! llm_model_add_head() : makes `m` a classifier with a fresh head (weight
 *  N(0, 0.02^2) from `seed`, bias 0), replacing any it had; temperature 1,
 *  thresholds 0.5. Gradients, optimizer state and the step count are reset.
 *  @return LLM_OK, LLM_ERR_INVALID (a bad label, naming it), LLM_ERR_NOMEM. */
int  llm_model_add_head(llm_model *m, const llm_head_params *p, uint64_t seed);
/*! llm_model_n_labels() : K, or 0 for a language model. */
int  llm_model_n_labels(const llm_model *m);
const char *llm_model_label(const llm_model *m, int i);   /* i in [0, K) */
int  llm_model_multi_label(const llm_model *m);
llm_pooling llm_model_pooling(const llm_model *m);
double llm_model_temperature(const llm_model *m);
/*! llm_model_thresholds() : (K) per-label decision thresholds (multi-label). */
const float *llm_model_thresholds(const llm_model *m);
/*! llm_model_set_calibration() : temperature (finite, > 0) and, when not
 *  NULL, K thresholds in [0, 1]. @return LLM_OK or LLM_ERR_INVALID. */
int  llm_model_set_calibration(llm_model *m, double temperature, const float *thresholds);
/*! llm_model_freeze() : 1: only the head trains: llm_cls_backward() stops
 *  at the head and AdamW leaves the backbone as it is (no weight decay).
 *  LLM_ERR_INVALID on a language model (nothing would train). */
int  llm_model_freeze(llm_model *m, int frozen);

typedef struct {
    const int32_t *labels;   /* single-label: (B) indices in [0, K) */
    const float *targets;    /* multi-label: (B, K), each in [0, 1] */
    const float *weights;    /* (K) finite >= 0, or NULL (all 1) */
    double lm_weight;        /* finite >= 0: weight of the auxiliary language
                              * modelling loss (0: none) */
} llm_cls_targets;

/*! llm_cls_forward() : the classifier over tokens (B, T), rows right-padded
 *  (padding must still be ids < vocab_size), lengths[b] in [1, T]. With `y`,
 *  *loss as above and the gradient is kept for llm_cls_backward().
 *  @return LLM_OK, LLM_ERR_INVALID (not a classifier, bad lengths or
 *  targets), LLM_ERR_RANGE, LLM_ERR_NOMEM. */
int  llm_cls_forward(llm_model *m, const int32_t *tokens, const int32_t *lengths,
                     int B, int T, const llm_cls_targets *y, float *loss);
/*! llm_cls_logits() : (B, K) raw logits of the last llm_cls_forward()
 *  (NULL before one, or after one that failed). */
const float *llm_cls_logits(const llm_model *m);
/*! llm_cls_backward() : adds the gradients of the last forward with `y`
 *  (the head's, and unless frozen the backbone's). */
int  llm_cls_backward(llm_model *m);
/*! llm_cls_probs() : probabilities (n, K) from raw logits at the model's
 *  temperature; `probs` may be `logits`. A language model has no labels:
 *  nothing is written. */
void llm_cls_probs(const llm_model *m, const float *logits, size_t n, float *probs);

/*! llm_cls_encode() : replaces `out` with the document of text[0..n): BOS,
 *  its ids, EOS (each when the tokenizer has it). max_tokens > 0: at most
 *  that many (>= 3), the text's tail dropped (*truncated = 1; then only a
 *  prefix of a very long text is tokenized, 64 bytes per token and more);
 *  max_tokens 0: all of it (a long text is tokenized in pieces of about
 *  64 KB cut at spaces). `truncated` may be NULL. */
int  llm_cls_encode(const llm_tok *t, const char *text, size_t n, int max_tokens,
                    llm_ids *out, int *truncated);

/*! llm_cls_encode_many() : llm_cls_encode() of n texts on the threads, text
 *  i being text[off[i] .. off[i] + len[i]), into out[i] (n initialised
 *  llm_ids, reused) and truncated[i] (may be NULL). @return LLM_OK, or the
 *  failure of the lowest failing text, with its message. */
int  llm_cls_encode_many(const llm_tok *t, const char *text, const size_t *off,
                         const size_t *len, size_t n, int max_tokens, llm_ids *out,
                         int *truncated);

/*! llm_cls_encode_spans() : as llm_cls_encode(), and replaces `spans`
 *  with each id's [start, end) byte offsets in text (two ints per id;
 *  -1, -1 for BOS, EOS and ids the normaliser made up). */
int  llm_cls_encode_spans(const llm_tok *t, const char *text, size_t n, int max_tokens,
                          llm_ids *out, llm_ids *spans, int *truncated);

typedef enum {
    LLM_EXPLAIN_IG = 0,          /* integrated gradients (default) */
    LLM_EXPLAIN_OCCLUSION = 1    /* each token left out in turn */
} llm_explain_method;
/*! llm_explain_method_parse() : "ig" or "occlusion". */
int  llm_explain_method_parse(const char *name, llm_explain_method *out);

/*! llm_cls_explain() : how much each token of one document ids[0..n) (as
 *  llm_cls_encode() makes it) moves label `label`'s score F: log p(label)
 *  for a single-label model, logit / temperature (log-odds) for a
 *  multi-label one, through the training forward in fp32.
 *  Positions with vary[i] = 0 (BOS, EOS) are kept and get 0.
 *  LLM_EXPLAIN_IG: integrated gradients over the token embeddings from a
 *  baseline where the varied positions hold token `baseline`'s embedding
 *  (-1: zero), with a `steps`-node Gauss-Legendre rule (1..1024; cost:
 *  about steps forwards and backwards of the document); the scores sum to
 *  F(x) - F(baseline) (closely with a baseline token; the zero baseline
 *  makes F turn sharply near it, see explain.c).
 *  f[0] = F(x), f[1] = F(baseline).
 *  LLM_EXPLAIN_OCCLUSION: scores[i] = F(x) - F(x without token i) (one
 *  forward per varied token); f[0] = F(x), f[1] = NAN. */
int  llm_cls_explain(llm_model *m, const int32_t *ids, int n, const unsigned char *vary,
                     int label, llm_explain_method method, int steps, int baseline,
                     float *scores, double f[2]);

/*! llm_cls_predict() : probabilities of n documents (each <= context ids,
 *  as llm_cls_encode() makes them), B documents per forward, packed with no
 *  padding; each document's probabilities depend on it alone, not on the
 *  others or (on the CPU) the thread count. owner == NULL: probs is (n, K); otherwise document i is a window
 *  of record owner[i] < n_records, and probs (n_records, K) holds each
 *  record's mean over its windows (a record without windows: zeros). */
int  llm_cls_predict(llm_model *m, const int32_t *const *docs, const size_t *lens,
                     size_t n, const size_t *owner, size_t n_records, int B,
                     float *probs);

/*! llm_lm_score() : for a language model: sum over t of log p(targets[b, t]
 *  | tokens[b, ..t]) for each row b, over targets >= 0, into logprob (B). */
int  llm_lm_score(llm_model *m, const int32_t *tokens, const int32_t *targets,
                  int B, int T, double *logprob);

/* Labelled documents, held in memory. */
typedef struct llm_cls_data llm_cls_data;

int  llm_cls_data_new(int n_labels, llm_cls_data **out);
/*! llm_cls_data_add() : copies a document (1..65536 ids) and its labels
 *  (each in [0, K); at least one). */
int  llm_cls_data_add(llm_cls_data *d, const int32_t *ids, size_t n,
                      const int32_t *labels, size_t n_labels);
size_t llm_cls_data_count(const llm_cls_data *d);
/*! llm_cls_data_doc() : document i (< count): its ids and labels. */
void llm_cls_data_doc(const llm_cls_data *d, size_t i, const int32_t **ids, size_t *n,
                      const int32_t **labels, size_t *n_labels);
/*! llm_cls_data_label_counts() : documents per label into counts (K). */
void llm_cls_data_label_counts(const llm_cls_data *d, uint64_t *counts);
/*! llm_cls_class_weights() : loss weights (K) that balance the labels of
 *  `d`: single-label, inverse to each label's frequency and 1 on average
 *  over the documents (n / (K * count)); multi-label, each label's
 *  negatives over its positives (PyTorch's pos_weight); 1 for a label no
 *  document has. */
int  llm_cls_class_weights(const llm_cls_data *d, int multi_label, float *weights);
void llm_cls_data_free(llm_cls_data *d);

/*! llm_batcher_new_docs() : a batcher over the documents of `d` (which
 *  must outlive it), each epoch in an order derived from (seed, epoch). A
 *  trainer over it trains the classifier (llm_train_params.seq_len is then
 *  the longest document). */
int  llm_batcher_new_docs(const llm_cls_data *d, uint64_t seed, llm_batcher **out);
/*! llm_batcher_next_docs() : the next B documents, right-padded with id 0
 *  to the longest of them (*T): tokens (B, *T), lengths (B), and labels (B,
 *  the first label of each) or targets (B, K) when not NULL. */
int  llm_batcher_next_docs(llm_batcher *b, int B, int32_t *tokens, int32_t *lengths,
                           int *T, int32_t *labels, float *targets);

/* ------------------------------------------------------------------------ */
/* Input -> output pairs (pairs.c): a language model taught to write an
 * output for an input (translation, answers, drafting). Each example is
 * the input's prompt followed by the output and EOS; the loss counts the
 * output's tokens and EOS only. The prompt's layout is the model's:
 *   "eos"  [BOS] input EOS            (models without a chat layout)
 *   "chat" the model's chat layout with the input as the user's turn
 *          (an instruct model), the output as the assistant's answer.
 * Several examples share a row of the batch, each attending to itself only
 * (llm_model_forward_packed()), so short pairs waste no compute on padding. */

/*! llm_model_set_pairs() : marks `m` as an input -> output model with
 *  layout "eos" or "chat" (which needs the model's chat template), or NULL
 *  for a plain language model. Saved in the model file (task "pairs").
 *  @return LLM_OK or LLM_ERR_INVALID. */
int  llm_model_set_pairs(llm_model *m, const char *layout);
/*! llm_model_pairs() : the layout, or NULL when `m` is not a pairs model. */
const char *llm_model_pairs(const llm_model *m);

/*! llm_pairs_encode() : appends to `ids` the prompt of input in[0..n)
 *  (valid UTF-8) in m's layout, and when `output` is not NULL the output's
 *  ids and EOS; *n_prompt (when not NULL) = ids in the prompt.
 *  @return LLM_OK, LLM_ERR_INVALID (not a pairs model, or no EOS id),
 *  a tokenizer's status, LLM_ERR_NOMEM. */
int  llm_pairs_encode(const llm_model *m, const llm_tok *t, const char *in, size_t n,
                      const char *output, size_t on, llm_ids *ids, size_t *n_prompt);
/*! llm_pairs_parse() : one line of a pairs file (without its newline; a
 *  final CR is dropped) into `in` and `out` (cleared first, NUL-terminated):
 *  a JSON object with string members "input" and "output" when the line
 *  starts with '{' and is one, else `input<TAB>output` with tabs, newlines
 *  and backslashes inside the fields escaped (llm_unescape()). Both must
 *  be valid UTF-8. @return LLM_OK, LLM_ERR_FORMAT (with the reason),
 *  LLM_ERR_UTF8, LLM_ERR_NOMEM. */
int  llm_pairs_parse(const char *line, size_t n, llm_buf *in, llm_buf *out);

typedef struct llm_pairs llm_pairs;
int    llm_pairs_new(llm_pairs **out);
void   llm_pairs_free(llm_pairs *d);
/*! llm_pairs_add() : appends an example of ids[0..n), whose first n_prompt
 *  (1 <= n_prompt < n) are the prompt. @return LLM_OK, LLM_ERR_INVALID,
 *  LLM_ERR_RANGE (a negative id), LLM_ERR_NOMEM. */
int    llm_pairs_add(llm_pairs *d, const int32_t *ids, size_t n, size_t n_prompt);
size_t llm_pairs_count(const llm_pairs *d);
void   llm_pairs_example(const llm_pairs *d, size_t i, const int32_t **ids, size_t *n,
                         size_t *n_prompt);
/*! llm_pairs_pack() : lays the examples out in rows of T tokens: in the
 *  order of a shuffle seeded by `seed` (or in file order when shuffle is
 *  0), each goes into the first of the last 16 open rows with room for it,
 *  else a new row. An example longer than T keeps the last T of its
 *  tokens, losing the start of its prompt (*truncated counts these), when
 *  at least one prompt token is left; else, its output and EOS alone
 *  filling T, it is left out (*dropped counts these). Either pointer may
 *  be NULL. Packing again replaces the previous layout. */
int    llm_pairs_pack(llm_pairs *d, int T, int shuffle, uint64_t seed, size_t *dropped,
                      size_t *truncated);
/*! llm_pairs_rows() : rows of the last packing (0 before any). */
size_t llm_pairs_rows(const llm_pairs *d);
/*! llm_pairs_row() : row r of the packing: tokens (T), targets (T; -1 where
 *  nothing is predicted: prompts, and padding with id 0) and starts (T; the
 *  position where each position's example begins); @return the example
 *  tokens in the row. */
size_t llm_pairs_row(const llm_pairs *d, size_t r, int32_t *tokens, int32_t *targets,
                     int32_t *starts);

/*! llm_batcher_new_pairs() : a batcher over the packed rows of `p` (which
 *  must outlive it and not be packed again), each epoch in an order
 *  derived from (seed, epoch). A trainer over it trains with
 *  llm_model_forward_packed(); llm_train_params.seq_len must be the T of
 *  the packing. */
int  llm_batcher_new_pairs(const llm_pairs *p, uint64_t seed, llm_batcher **out);
/*! llm_batcher_next_pairs() : the next B rows (B, T) as llm_pairs_row()
 *  gives them; *tokens_used (when not NULL) = example tokens in them. */
int  llm_batcher_next_pairs(llm_batcher *b, int B, int32_t *tokens, int32_t *targets,
                            int32_t *starts, uint64_t *tokens_used);

typedef struct {
    double loss;          /* mean loss per output token (and EOS) */
    uint64_t tokens;      /* output tokens counted */
    size_t examples;
} llm_pairs_eval_result;

/*! llm_pairs_eval() : the loss of every example of `d` (packed first, in
 *  file order, in rows of T), in batches of B rows. */
int  llm_pairs_eval(llm_model *m, llm_pairs *d, int B, int T, llm_pairs_eval_result *r);

typedef struct {
    double loss;          /* mean unweighted loss per document */
    double accuracy;      /* top label right (multi-label: the exact label set
                           * at probability 0.5) */
    size_t docs;
} llm_cls_eval_result;

/*! llm_cls_eval() : scores every document of `d` in order, in batches of
 *  up to B; raw logits (count, K) into `logits` when not NULL. */
int  llm_cls_eval(llm_model *m, const llm_cls_data *d, int B, float *logits,
                  llm_cls_eval_result *r);
/*! llm_cls_fit_temperature() : the temperature in [0.05, 20] that minimises
 *  the mean negative log-likelihood of d's labels under logits (count, K)
 *  / T (golden-section search over 1/T; the NLL is convex in it). */
int  llm_cls_fit_temperature(const llm_model *m, const float *logits,
                             const llm_cls_data *d, double *temperature);
/*! llm_cls_tune_thresholds() : for each label, the probability threshold
 *  that maximises F1 on d, given probs (count, K): the midpoint between
 *  the lowest accepted and highest rejected probability; 0.5 for a label
 *  without positives in d. Into thresholds (K). */
int  llm_cls_tune_thresholds(const llm_model *m, const float *probs,
                             const llm_cls_data *d, float *thresholds);

/* ------------------------------------------------------------------------ */
/* Training (train.c): one optimiser step at a time; the program owns the
 * loop, its progress, and its files. */

typedef struct {
    int batch;            /* micro-batch, in sequences */
    int seq_len;          /* T, <= context */
    int accum;            /* micro-batches per optimiser step (>= 1) */
    llm_schedule sched;   /* the learning rate of each step comes from here */
    llm_adamw adamw;      /* its lr is ignored */
    double clip;          /* largest global gradient norm; 0: no clipping */
    const float *class_weights; /* classifier: (K) loss weights, or NULL */
    double lm_weight;     /* classifier: auxiliary LM loss weight (llm_cls_targets) */
    /* Data parallelism (llm-train under MPI): `world` processes run the same
     * trainer over the same data and seed; micro-batch a of a step (of
     * `accum`, a multiple of world) belongs to rank a % world, which
     * computes it while the others skip it, so the global batch and the data
     * position are those of one process. reduce() then sums, in place over
     * all ranks, the gradient block (n floats) and `ns` doubles, giving every
     * rank the same result (@return LLM_OK or a status). world <= 1: one
     * process, reduce() never called, results bit for bit as without it. */
    int rank, world;
    int (*reduce)(void *ctx, float *grads, size_t n, double *sums, size_t ns);
    void *reduce_ctx;
    /* 1: reduce() gets the gradient block where the model keeps it, in
     * its device's memory (GPU memory on cuda: an all-reduce between GPUs,
     * NCCL), not a host copy; sums stay host memory. */
    int reduce_device;
    /* When set (one process only: world <= 1), polled before each layer of
     * every forward and backward of a step: when it returns nonzero the
     * step is dropped, its data read again by the next one and the
     * weights untouched, and llm_trainer_step() returns
     * LLM_ERR_INTERRUPTED (a signal need not wait for a long step). */
    int (*stop)(void *ctx);
    void *stop_ctx;
} llm_train_params;

/*! llm_train_defaults() : batch 8, seq_len 256, accum 1, cosine from the
 *  AdamW default rate (1e-3) to a tenth of it over 1000 steps after 50 of
 *  warmup (WSD: decay over the last 0.2), AdamW defaults, clip 1. These
 *  are llm-train's defaults too: it reads them from here. */
void llm_train_defaults(llm_train_params *p);

typedef struct {
    int64_t step;         /* 1-based number of the step just taken */
    double loss;          /* mean training loss over its micro-batches */
    double grad_norm;     /* global norm before clipping */
    double lr;
    uint64_t tokens;      /* tokens this step trained on */
} llm_step_info;

typedef struct llm_trainer llm_trainer;

/*! llm_trainer_new() : `m` and `b` must outlive the trainer. */
int  llm_trainer_new(llm_model *m, llm_batcher *b, const llm_train_params *p,
                     llm_trainer **out);
/*! llm_trainer_step() : zero gradients, accum x (next batch, forward,
 *  backward), average, clip, AdamW at the scheduled rate. With world > 1,
 *  only this rank's micro-batches, then reduce(); info then holds the
 *  global loss and tokens.
 *  @return LLM_OK, or LLM_ERR_NUMERIC for a non-finite loss or gradient
 *  (the weights are then unchanged), or another failure. */
int  llm_trainer_step(llm_trainer *t, llm_step_info *info);
/*! llm_trainer_save() : a checkpoint: the model with its AdamW state, the
 *  tokenizer, the data position, and `extra` metadata (key, value, ...,
 *  NULL); written atomically. */
int  llm_trainer_save(const llm_trainer *t, const char *path, const void *tok,
                      size_t tok_len, const char *const *extra);
/*! llm_trainer_restore() : moves the batcher to the data position saved in
 *  checkpoint `path` (the model itself is loaded with llm_model_load()). */
int  llm_trainer_restore(llm_trainer *t, const char *path);
void llm_trainer_free(llm_trainer *t);
/*! llm_trainer_set_schedule() : the learning rates of the steps from now on
 *  come from `s` (a run that fits its schedule to a time limit). */
void llm_trainer_set_schedule(llm_trainer *t, const llm_schedule *s);

typedef struct {
    double loss;          /* mean cross-entropy, nats per token */
    uint64_t tokens;      /* tokens scored */
    uint64_t first;       /* stream position of the first scored token */
} llm_eval_result;

/*! llm_config_flops_per_token() : training FLOPs per token (forward and
 *  backward) at sequence length T, PaLM's count (6 per weight of every
 *  matrix product, plus attention 12 * L * H * hd * T). */
double llm_config_flops_per_token(const llm_config *c, int T);
/*! llm_peak_flops() : this machine's sgemm rate in FLOP/s, measured now
 *  (about 0.1 s) with the current thread count: the denominator of MFU. */
double llm_peak_flops(void);

/*! llm_eval_loss() : the loss over consecutive sequences of T + 1 tokens in
 *  [begin, end) of `d`, in order, at most max_tokens scored (0: all). */
int llm_eval_loss(llm_model *m, const llm_data *d, uint64_t begin, uint64_t end,
                  int B, int T, uint64_t max_tokens, llm_eval_result *r);

/* ------------------------------------------------------------------------ */
/* Evaluation data (corpus.c): text and token files read the way llm-train
 * and llm-eval both read them, so that their losses are comparable.        */

/*! llm_data_add_text() : appends the lines of `f` (`name` in messages): each
 *  non-empty line is one document, BOS (when the tokenizer has one), its
 *  ids, EOS (when it has one). A "\r" before the line end is dropped.
 *  @return LLM_OK, LLM_ERR_UTF8 ("'name', line N: invalid UTF-8 at byte K"),
 *  LLM_ERR_IO, LLM_ERR_TOKENIZER, LLM_ERR_NOMEM. */
int llm_data_add_text(llm_data *d, const llm_tok *tok, FILE *f, const char *name);
/*! llm_data_add_input() : appends a token file (told by its magic; mapped)
 *  or text (as llm_data_add_text()). NULL or "-" is standard input, and a
 *  pipe is read whole, then told apart the same way. @return as above, or
 *  LLM_ERR_FORMAT for a bad token file ("cannot open 'x': reason" when the
 *  file cannot be opened). */
int llm_data_add_input(llm_data *d, const llm_tok *tok, const char *path);
/*! llm_data_text_bytes() : *bytes = the bytes of text that tokens [first,
 *  first + n) of `d` stand for: their decoded UTF-8 plus one byte (the line
 *  end) per EOS. The denominator of bits per byte. */
int llm_data_text_bytes(const llm_data *d, const llm_tok *tok, uint64_t first,
                        uint64_t n, uint64_t *bytes);

/* ------------------------------------------------------------------------ */
/* Train/test leakage (leak.c): which test documents also occur, exactly or
 * nearly, in the training data. Texts are compared folded (NFKC, case
 * folded, punctuation, separators and controls as one space, trimmed):
 * exact = equal folded texts; near = the Jaccard similarity of their sets
 * of character 5-grams >= a threshold, found through MinHash (HASHES
 * functions) in LSH bands of ROWS values and confirmed by the exact
 * Jaccard. Add every test document, build the index, then stream the
 * training documents past it; memory holds only the test side. */
#define LLM_LEAK_HASHES 144
#define LLM_LEAK_ROWS 6
typedef struct llm_leak llm_leak;
typedef struct {
    int64_t train_id;     /* the best training document's id, -1 if none */
    double similarity;    /* its Jaccard similarity (1 when exact) */
    int exact;            /* 1: equal folded texts */
} llm_leak_match;
/*! llm_leak_new() : an empty index; threshold in (0, 1]. */
int  llm_leak_new(double threshold, llm_leak **out);
void llm_leak_free(llm_leak *x);
/*! llm_leak_add_test() : test document number llm_leak_count() (0-based). */
int  llm_leak_add_test(llm_leak *x, const char *text, size_t n);
size_t llm_leak_count(const llm_leak *x);
/*! llm_leak_index() : after the last test document, before any scan. */
int  llm_leak_index(llm_leak *x);
/*! llm_leak_scan() : compares one training document (id >= 0, the
 *  caller's, e.g. its line number) with every test document. The best
 *  match of each test document is kept: exact before near, then the higher
 *  similarity, then the first scanned. */
int  llm_leak_scan(llm_leak *x, const char *text, size_t n, int64_t id);
/*! llm_leak_result() : test document doc's best match (NULL if no such doc). */
const llm_leak_match *llm_leak_result(const llm_leak *x, size_t doc);
/*! llm_leak_fold() : the folded form of a text (valid UTF-8; invalid input
 *  bytes become U+FFFD) into out, replacing its contents. */
int  llm_leak_fold(const char *s, size_t n, llm_buf *out);
/*! llm_leak_jaccard() : the exact shingle Jaccard of two texts' folded forms. */
int  llm_leak_jaccard(const char *a, size_t na, const char *b, size_t nb, double *out);

/* Token n-gram overlap (leak.c): the share of test n-grams (with their
 * multiplicity) that occur anywhere in the training data, per group (e.g.
 * test file). Add the test side, then scan the training documents. */
typedef struct llm_ngrams llm_ngrams;
int  llm_ngrams_new(int n, llm_ngrams **out);   /* n in [1, 64] */
void llm_ngrams_free(llm_ngrams *g);
int  llm_ngrams_add(llm_ngrams *g, const int32_t *ids, size_t n, uint32_t group);
void llm_ngrams_index(llm_ngrams *g);   /* after the last add (scan does it too) */
void llm_ngrams_scan(llm_ngrams *g, const int32_t *ids, size_t n);
void llm_ngrams_counts(const llm_ngrams *g, uint32_t group, uint64_t *total, uint64_t *found);

/* Classification metrics (metrics.c), over label names.
 *
 * Single-label: each record has one gold and one predicted label; the
 * counts form a confusion matrix C[gold][predicted]. Multi-label: each record
 * has a set of gold and a set of predicted labels (either may be empty); for
 * every label, a record is a true positive (in both), false positive
 * (predicted only), false negative (gold only) or nothing.
 *
 * Per label, with tp, support = gold count, predicted = predicted count:
 *   precision = tp / predicted,  recall = tp / support,
 *   F1 = 2 tp / (support + predicted) (= 2PR / (P + R)); each 0 when its
 *   denominator is 0 (as scikit-learn's zero_division=0).
 * macro-X = the plain mean of X over every label of the report;
 * micro-X = X of the summed counts: single-label micro-P = micro-R =
 *   micro-F1 = accuracy; multi-label, over all (record, label) decisions.
 * accuracy = records whose prediction is right / records (multi-label: the
 *   predicted set equals the gold set: subset accuracy).
 * ECE = sum over 10 equal-width bins [0, 0.1), ..., [0.9, 1.0] of the
 *   records' confidence p (1.0 in the last bin) of
 *   n_bin / N * |accuracy_bin - mean confidence_bin|,
 *   where a record is right as for accuracy.
 *
 * Report order of labels: those given to llm_metrics_declare() in that
 * order, then those seen as gold in order of first appearance, then those
 * only ever predicted, in order of first appearance (they have support 0,
 * and count in the macro averages, as in scikit-learn).                     */

typedef struct llm_metrics llm_metrics;

/*! llm_metrics_new() : an empty accumulator; multi_label 0 or 1. */
int  llm_metrics_new(int multi_label, llm_metrics **out);
void llm_metrics_free(llm_metrics *m);
/*! llm_metrics_declare() : fixes a label's place in the report before the
 *  labels seen in records (call in the wanted order). Name copied. */
int  llm_metrics_declare(llm_metrics *m, const char *name, size_t len);
/*! llm_metrics_add() : one record. gold[i][0..gold_len[i]) are the gold
 *  labels, pred likewise (copied; any bytes). Single-label: exactly one of
 *  each. Multi-label: a label repeated within a set counts once. `prob`: the
 *  confidence of the (top) prediction, in [0, 1], or negative for none;
 *  either every record has one or none has.
 *  @return LLM_OK, LLM_ERR_INVALID (counts, or a probability where earlier
 *  records had none or the reverse), LLM_ERR_RANGE (prob > 1 or NaN),
 *  LLM_ERR_NOMEM. Nothing is counted on failure except new label names. */
int  llm_metrics_add(llm_metrics *m, const char *const *gold, const size_t *gold_len,
                     size_t n_gold, const char *const *pred, const size_t *pred_len,
                     size_t n_pred, double prob);

typedef struct {
    int multi_label;
    uint64_t records;
    size_t labels;            /* rows of the report */
    uint64_t decisions;       /* single: records; multi: (record, label) pairs
                                 in the gold or the predicted set */
    double accuracy;
    double macro_precision, macro_recall, macro_f1;
    double micro_precision, micro_recall, micro_f1;
    int has_prob;             /* every record had a probability */
    double ece;               /* NaN without probabilities */
} llm_metrics_result;

/*! llm_metrics_summary() : computes the figures over the records so far and
 *  fixes the report order for the accessors below (call again after more
 *  records). @return LLM_OK, LLM_ERR_INVALID ("no records"), LLM_ERR_NOMEM. */
int  llm_metrics_summary(llm_metrics *m, llm_metrics_result *r);

typedef struct {
    const char *name;         /* NUL-terminated; valid until llm_metrics_free() */
    size_t len;
    uint64_t support, predicted, tp;
    double precision, recall, f1;
} llm_label_stats;

/*! llm_metrics_label_at() : label i of the report (after llm_metrics_summary()).
 *  @return LLM_OK, LLM_ERR_RANGE, LLM_ERR_INVALID (not summarised). */
int  llm_metrics_label_at(const llm_metrics *m, size_t i, llm_label_stats *s);
/*! llm_metrics_confusion() : single-label: records with gold label `gold`
 *  predicted as `pred` (report positions); 0 when out of range, for
 *  multi-label, or before llm_metrics_summary(). */
uint64_t llm_metrics_confusion(const llm_metrics *m, size_t gold, size_t pred);
/*! llm_metrics_ece_bin() : calibration bin `bin` (0..9, [bin/10, (bin+1)/10)):
 *  records in it, their mean confidence and accuracy (0 when empty). */
int  llm_metrics_ece_bin(const llm_metrics *m, int bin, uint64_t *count,
                         double *confidence, double *accuracy);

/* Generated text against references (textmetrics.c): each figure as the
 * implementation people quote computes it, on a 0-100 scale.
 *
 * bleu: corpus BLEU of sacreBLEU 2 with its defaults
 *   (sacrebleu.corpus_bleu(hyps, [refs])): each text right-stripped and cut
 *   by the 13a tokenizer of mteval-v13a (ASCII punctuation apart, periods
 *   and commas apart unless by a digit, a dash after a digit apart; other
 *   characters, non-ASCII punctuation included, stay in their words), case
 *   kept; clipped n-gram matches (n = 1..4) and lengths summed over lines;
 *   precision p_n = matches / n-grams, an order without matches smoothed
 *   'exp' (the k-th such order: 1 / (2^k n-grams)); BLEU = BP exp(mean
 *   log p_n), BP = exp(1 - ref/sys) when sys < ref. 0 when no n-gram
 *   matches, or when the hypotheses have no n-grams of some order.
 * chrf: chrF2 of sacreBLEU (CHRF()): character n-grams (n = 1..6, code
 *   points, whitespace removed) counted and summed over lines; precision
 *   and recall averaged over the orders both sides have, then
 *   F = 5 P R / (4 P + R).
 * exact_match, token_f1: the SQuAD v1.1 evaluation script, averaged over
 *   lines. Texts are normalised (lower case, ASCII punctuation removed, the
 *   words a, an, the removed, whitespace collapsed); exact match: equal
 *   normalised texts; F1 of the tokens as multisets, 0 when none is shared
 *   (so also when both are empty).
 * rouge_l: rouge-score's RougeScorer(['rougeL']) F-measure averaged over
 *   lines: tokens are the runs of [a-z0-9] of the lowered text (no
 *   stemming), F of the longest common subsequence; 0 when a side has none.
 *
 * Lower case and whitespace are Python's (str.lower(), str.split()), as the
 * reference implementations are Python. */

typedef struct llm_text_metrics llm_text_metrics;

/*! llm_text_metrics_new() : an empty accumulator. */
int  llm_text_metrics_new(llm_text_metrics **out);
void llm_text_metrics_free(llm_text_metrics *m);
/*! llm_text_metrics_add() : one line: reference ref[0..ref_len) and
 *  hypothesis hyp[0..hyp_len), UTF-8, either may be empty. A line of any
 *  length is scored (ROUGE-L costs n m / 64 steps).
 *  @return LLM_OK, LLM_ERR_UTF8, LLM_ERR_RANGE (a text of 256 MB or more),
 *  LLM_ERR_NOMEM. Nothing is counted on failure. */
int  llm_text_metrics_add(llm_text_metrics *m, const char *ref, size_t ref_len,
                          const char *hyp, size_t hyp_len);

typedef struct {
    uint64_t lines;
    double bleu;
    double bleu_precisions[4];    /* p_n, 0-100, smoothed as above */
    double bleu_bp;               /* brevity penalty */
    uint64_t bleu_sys_len, bleu_ref_len;   /* 13a tokens */
    uint64_t bleu_correct[4], bleu_total[4];
    double chrf;
    double exact_match, token_f1, rouge_l;
} llm_text_metrics_result;

/*! llm_text_metrics_summary() : the figures over the lines so far.
 *  @return LLM_OK, LLM_ERR_INVALID ("no lines"). */
int  llm_text_metrics_summary(const llm_text_metrics *m, llm_text_metrics_result *r);

/* ------------------------------------------------------------------------ */
/* Utilities the programs share with the library: JSON in and out, and files
 * of interrupted writers.                                                   */

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


/*! llm_write_file() : writes p[0..n) to `path` atomically (temporary file,
 *  fsync, rename). @return LLM_OK, LLM_ERR_IO or LLM_ERR_NOMEM. */
int  llm_write_file(const char *path, const void *p, size_t n);
/*! llm_can_write_beside() : whether this process may create files in the
 *  folder that holds `path` (as writing it atomically does; where a link is
 *  at path, the folder of the file it names), or write a device or FIFO
 *  at path, without creating any. @return 0, or the errno that says why
 *  not (EISDIR for a folder). */
int  llm_can_write_beside(const char *path);
/*! llm_output_target() : where an output named `path` goes: the file a
 *  symbolic link at path names (so that the link stays a link), else path,
 *  in *target (malloc'd). *direct is set where that is not a regular file
 *  or none (a device such as /dev/stdout, a FIFO; a link to nothing yet):
 *  written in place, since it cannot be replaced; otherwise writers write
 *  a temporary file beside it and rename it over it. @return LLM_OK,
 *  LLM_ERR_IO for a folder ("cannot write 'PATH': it is a folder"), or
 *  LLM_ERR_NOMEM. */
int  llm_output_target(const char *path, char **target, int *direct);
/*! llm_remove_stale_temps() : removes the temporary files that writers of
 *  `path` left when killed (PATH.tmpXXXXXX, regular files); @return how
 *  many. Only for a process about to write `path` itself. */
int  llm_remove_stale_temps(const char *path);
/*! llm_file_digest() : a file's size and 64-bit FNV-1a hash of its bytes
 *  (to tell that a file changed, not to resist an adversary). */
int  llm_file_digest(const char *path, uint64_t *size, uint64_t *hash);

#ifdef __cplusplus
}
#endif
#endif /* LLM_H */
