/* text.h: the text group's internals (lib/text/: the tokenizers, their
 * encoders and chat layouts) that other groups, tests and benchmarks use;
 * not API. */
#ifndef LLM_TEXT_H
#define LLM_TEXT_H

#include "llm.h"

#ifdef __cplusplus
extern "C" {
#endif

/*! llm_tok_encode_spm() : llm_tok_encode() through SentencePiece always. */
int llm_tok_encode_spm(const llm_tok *t, const char *text, size_t n, llm_ids *out);
/*! llm_tok_own_encoder() : 1 when llm_tok_encode() uses our own encoder
 *  (unigram.c) for this model, 0 when SentencePiece's. */
int llm_tok_own_encoder(const llm_tok *t);

#ifdef __cplusplus
}
#endif
#endif
