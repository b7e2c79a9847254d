/* bpe.h: byte-level BPE tokenizers (GPT-2 style: GPT-2, SmolLM2, Llama 3,
 * Qwen2), for tokenizer.cc and import.c; not API. Ids are those of Hugging
 * Face `tokenizers` for the same vocabulary, merges and pre-tokenizer.
 *
 * Encoding, in order:
 *  1. added tokens are cut out of the text, leftmost-longest, as literal
 *     strings: user-defined ones (type 4) always, control ones (type 3) only
 *     with parse_special (HF: special added tokens, split_special_tokens
 *     false; llama.cpp: parse_special);
 *  2. each remaining span is cut into maximal runs of valid UTF-8; every
 *     byte that is not part of a valid character becomes a piece of its own
 *     (HF never sees such text: Python strings are valid Unicode);
 *  3. the pre-tokenizer regexes run in sequence over the valid runs: each
 *     splits every current piece into its matches and the gaps between them,
 *     all kept (HF Split with behavior Isolated; llama.cpp
 *     unicode_regex_split); a regex sees one piece at a time, so lookahead
 *     stops at the piece's end;
 *  4. each piece's bytes map to tokens of one byte each (the GPT-2
 *     byte-to-unicode alphabet) and pairs merge, lowest merge rank first,
 *     leftmost first among equal ranks (HF BPE::merge_word). With
 *     ignore_merges, a piece that is a token as a whole is that token.
 * A byte with no token gives unk_id when there is one, else LLM_ERR_RANGE.
 * Every byte string encodes, and decode(encode(x)) == x.
 *
 * Decoding gives, per token, the bytes its characters stand for in the
 * byte alphabet; a token with a character outside it (an added token such
 * as "<|im_start|>" is inside it; "—" is not) gives its own text. Control
 * tokens decode to their text too: HF decode(skip_special_tokens=False),
 * without the U+FFFD replacement HF makes for invalid UTF-8 (we give the
 * raw bytes). */
#ifndef LLM_BPE_H
#define LLM_BPE_H

#include "internal.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct llm_bpe llm_bpe;

/* What llm_bpe_new() builds from; pointers are only read during the call. */
typedef struct {
    const char *const *tokens;      /* (n_tokens) token strings, byte-alphabet */
    const size_t *token_lens;       /* (n_tokens), or NULL: NUL-terminated */
    size_t n_tokens;
    const int32_t *types;           /* (n_tokens) GGUF token types, or NULL: all normal */
    const char *const *merges;      /* (n_merges) "a b"; rank = index */
    size_t n_merges;
    const char *const *regexes;     /* (n_regexes) pre-tokenizer, applied in order */
    size_t n_regexes;
    int bos_id, eos_id, unk_id, pad_id;     /* -1: none */
    int add_bos, add_eos;           /* 0 or 1 */
    int ignore_merges;              /* 1: a piece that is a token is that token */
} llm_bpe_spec;

/*! llm_bpe_pre_regexes() : the pre-tokenizer regexes of a named preset, as
 *  GGUF's tokenizer.ggml.pre names them: "default" and "gpt2" (also "mpt",
 *  "olmo", "jais"), "llama3" and "llama-bpe", "smollm" (also "starcoder",
 *  "refact", "command-r", "codeshell", "exaone", "minerva"), "qwen2" (also
 *  "qwen2.5", "stablelm2", "deepseek-r1-qwen").
 *  @return LLM_OK, or LLM_ERR_UNSUPPORTED for another name. */
int llm_bpe_pre_regexes(const char *name, const char *const **re, size_t *n);
/*! llm_bpe_pre_ignore_merges() : 1 for the presets whose models encode a
 *  piece that is a whole token as that token (llama3), as llama.cpp does. */
int llm_bpe_pre_ignore_merges(const char *name);

/*! llm_bpe_new() : validates and builds. `name` names the source in
 *  messages ("'x.gguf': merge 12 ('a b'): 'b' is not a token").
 *  @return LLM_OK, LLM_ERR_FORMAT (empty, duplicate or invalid-UTF-8 token,
 *  type out of range, malformed or duplicate merge, a merge of or into a
 *  non-token, a regex that does not compile, a special id out of range),
 *  LLM_ERR_NOMEM. */
int  llm_bpe_new(const llm_bpe_spec *s, const char *name, llm_bpe **out);
void llm_bpe_free(llm_bpe *b);    /* accepts NULL */

/*! llm_bpe_from_json() : reads a Hugging Face tokenizer.json of a byte-level
 *  BPE model (ours, or HF's own: see bpe.c for what is read and what is
 *  refused by name). @return LLM_OK, LLM_ERR_FORMAT, LLM_ERR_UNSUPPORTED
 *  (a valid feature we do not implement), LLM_ERR_NOMEM. */
int llm_bpe_from_json(const char *text, size_t len, const char *name, llm_bpe **out);
/*! llm_bpe_to_json() : appends a tokenizer.json that
 *  tokenizers.Tokenizer.from_file() loads and encodes with as we do; it
 *  starts with '{'. Special ids and flags travel as model.llm (an object HF
 *  ignores) and, for add_bos/add_eos, as a TemplateProcessing. */
int llm_bpe_to_json(const llm_bpe *b, llm_buf *out);

/* Per-thread working memory of llm_bpe_encode_with(); zero it before first
 * use, free it with llm_bpe_scratch_free(). */
typedef struct {
    void *match;                    /* pcre2_match_data */
    struct llm_bpe_span *a, *b;     /* pieces, before and after one regex */
    size_t a_cap, b_cap;
    struct llm_bpe_sym *sym;        /* symbols of one piece */
    size_t sym_cap;
    struct llm_bpe_pair *heap;      /* candidate merges */
    size_t heap_cap;
    char *enc;                      /* a piece in the byte alphabet */
    size_t enc_cap;
    llm_buf norm;                   /* the text in NFC, when the model says so */
} llm_bpe_scratch;

void llm_bpe_scratch_free(llm_bpe_scratch *s);

/*! llm_bpe_encode() : appends the ids of text[0..n) (any bytes) to `out`.
 *  Adds no BOS/EOS (add_bos is the caller's business).
 *  @return LLM_OK; LLM_ERR_RANGE for a byte with no token and no unk;
 *  LLM_ERR_FORMAT when a regex fails on the text (match limit);
 *  LLM_ERR_NOMEM. On error `out` is as it was. */
int llm_bpe_encode(const llm_bpe *b, const char *text, size_t n, int parse_special,
                   llm_ids *out);
int llm_bpe_encode_with(const llm_bpe *b, const char *text, size_t n, int parse_special,
                        llm_bpe_scratch *s, llm_ids *out);
/* As llm_bpe_encode_with() (parse_special 0), and appends to `spans` each
 * token's [start, end) byte offsets in text (two ints per token; -1 when
 * the normaliser's change cannot be traced back). A token of a character
 * split into bytes spans the bytes it holds. */
int llm_bpe_encode_spans(const llm_bpe *b, const char *text, size_t n, llm_bpe_scratch *s,
                         llm_ids *out, llm_ids *spans);
/*! llm_bpe_decode() : appends the bytes of ids (see above); an id out of
 *  range is LLM_ERR_RANGE. */
int llm_bpe_decode(const llm_bpe *b, const int32_t *ids, size_t n, llm_buf *out);
/*! llm_bpe_decode_piece() : the bytes of one id, for streaming: the bytes
 *  of consecutive ids concatenate to llm_bpe_decode() of them. */
int llm_bpe_decode_piece(const llm_bpe *b, int32_t id, llm_buf *out);

/* Vocabulary queries; `id` must be in [0, llm_bpe_n_tokens()). */
size_t      llm_bpe_n_tokens(const llm_bpe *b);
const char *llm_bpe_token(const llm_bpe *b, int32_t id, size_t *len);
int         llm_bpe_token_type(const llm_bpe *b, int32_t id);
/*! llm_bpe_token_id() : the id of a token string, or -1. */
int32_t     llm_bpe_token_id(const llm_bpe *b, const char *tok, size_t len);
size_t      llm_bpe_n_merges(const llm_bpe *b);
/*! llm_bpe_merge() : the ids of merge i (rank i); -1 when i is out of range. */
int         llm_bpe_merge(const llm_bpe *b, size_t i, int32_t *left, int32_t *right);
size_t      llm_bpe_n_regexes(const llm_bpe *b);
int         llm_bpe_nfc(const llm_bpe *b);   /* 1: normalizer NFC (decode gives the NFC text) */
const char *llm_bpe_regex(const llm_bpe *b, size_t i);

/* Special ids (-1: none) and flags, in this order in `v`: bos, eos, unk,
 * pad, add_bos, add_eos. */
enum { LLM_BPE_BOS, LLM_BPE_EOS, LLM_BPE_UNK, LLM_BPE_PAD, LLM_BPE_ADD_BOS,
       LLM_BPE_ADD_EOS, LLM_BPE_N_SPECIAL };
int  llm_bpe_special(const llm_bpe *b, int which);
/*! llm_bpe_set_special() : sets one of them (e.g. from tokenizer_config.json);
 *  an id must be -1 or a token, a flag 0 or 1, else LLM_ERR_INVALID. */
int  llm_bpe_set_special(llm_bpe *b, int which, int value);

#ifdef __cplusplus
}
#endif
#endif
