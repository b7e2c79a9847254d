/* unigram.h: our own encoder for SentencePiece unigram models (unigram.c),
 * for tokenizer.cc; not API. It gives exactly the ids of SentencePiece
 * 0.1.97's SentencePieceProcessor::Encode() for the models it accepts. */
#ifndef LLM_UNIGRAM_H
#define LLM_UNIGRAM_H

#include "internal.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Returned by llm_unigram_new() for a model it does not implement, and by
 * llm_unigram_encode() for an input it leaves to SentencePiece. */
#define LLM_UNIGRAM_FALLBACK 1

typedef struct llm_unigram llm_unigram;

/* What the encoder needs of a ModelProto; pointers are only read during
 * llm_unigram_new(). */
typedef struct {
    int n_pieces;
    const char *const *pieces;      /* (n_pieces) piece bytes */
    const size_t *piece_lens;       /* (n_pieces) */
    const float *scores;            /* (n_pieces) */
    const unsigned char *types;     /* (n_pieces) llm_piece_type */
    int byte_fallback;              /* TrainerSpec.byte_fallback */
    /* NormalizerSpec: precompiled_charsmap (NULL, 0 when empty) and flags */
    const unsigned char *charsmap;
    size_t charsmap_len;
    int add_dummy_prefix, remove_extra_ws, escape_ws;
} llm_unigram_spec;

/*! llm_charsmap_check() : validates a NormalizerSpec.precompiled_charsmap
 *  (non-empty) so that no lookup in it reads out of bounds; SentencePiece
 *  itself checks only its first size field.
 *  @return LLM_OK or LLM_ERR_FORMAT. */
int  llm_charsmap_check(const unsigned char *b, size_t n);

/*! llm_unigram_new() : builds the encoder of a model that SentencePiece
 *  has loaded (so its pieces passed SentencePiece's own checks).
 *  @return LLM_OK; LLM_UNIGRAM_FALLBACK, *out NULL, when the model needs
 *  what this encoder does not implement (a piece with a NUL byte, more than
 *  2^28 bytes of pieces; no <unk> or missing byte pieces, which
 *  SentencePiece refuses anyway); LLM_ERR_FORMAT when the charsmap is
 *  corrupt (llm_charsmap_check()); LLM_ERR_NOMEM. */
int  llm_unigram_new(const llm_unigram_spec *s, llm_unigram **out);
void llm_unigram_free(llm_unigram *u);   /* accepts NULL */

/* Per-thread working memory of llm_unigram_encode(), grown as needed; zero
 * it before first use. */
typedef struct {
    char *text;             /* normalized text */
    size_t text_cap;
    void *best;             /* best path ending at each byte of it */
    size_t best_cap;
} llm_unigram_scratch;

void llm_unigram_scratch_free(llm_unigram_scratch *s);

/*! llm_unigram_encode() : appends the ids of text[0..n) to `out`.
 *  @return LLM_OK; LLM_UNIGRAM_FALLBACK, with `out` untouched, for text
 *  with a NUL byte that normalization keeps (or any NUL, with user-defined
 *  pieces): SentencePiece's double-array tries treat NUL in a way that
 *  depends on their layout; also for normalized text of 2 GiB or more;
 *  LLM_ERR_FORMAT for a charsmap lookup with more results than SentencePiece
 *  can hold (its builder never makes one); LLM_ERR_NOMEM. On error `out`
 *  is as it was. */
int llm_unigram_encode(const llm_unigram *u, const char *text, size_t n,
                       llm_unigram_scratch *s, llm_ids *out);

#ifdef __cplusplus
}
#endif
#endif
