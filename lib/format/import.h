/* import.h: models and tokenizers of other formats (import.c); not API.
 * llm_model_load() and llm_tok_load() come here for GGUF files and Hugging
 * Face folders. */
#ifndef LLM_IMPORT_H
#define LLM_IMPORT_H

#include "internal.h"

#ifdef __cplusplus
extern "C" {
#endif



/*! llm_gguf_model_load() : a GGUF "llama" model, every tensor dequantized to
 *  fp32. @return LLM_OK, LLM_ERR_IO, LLM_ERR_FORMAT, LLM_ERR_UNSUPPORTED (an
 *  architecture, tensor type, rope scaling ... named), LLM_ERR_NOMEM. */
int llm_gguf_model_load(const char *path, const char *device, llm_model **out);
/*! llm_gguf_tok_load() : the tokenizer a GGUF file describes. */
int llm_gguf_tok_load(const char *path, llm_tok **out);
/*! llm_hf_model_load() : a Hugging Face LlamaForCausalLM folder
 *  (config.json, model.safetensors or its sharded index; F32, F16, BF16). */
int llm_hf_model_load(const char *dir, const char *device, llm_model **out);
/*! llm_hf_tok_load() : the folder's tokenizer.json, else tokenizer.model. */
int llm_hf_tok_load(const char *dir, llm_tok **out);

/*! llm_tok_set_special() (tokenizer.cc) : a byte-level BPE tokenizer's
 *  special ids and flags, indexed as LLM_BPE_BOS .. LLM_BPE_ADD_EOS
 *  (bpe.h); -2 leaves one as it is. LLM_ERR_UNSUPPORTED for SentencePiece
 *  models, whose ids the model itself fixes. */
int llm_tok_set_special(llm_tok *t, const int *ids);

/* Tensor naming schemes. */
enum { LLM_NAMES_OURS = 0, LLM_NAMES_GGUF = 1, LLM_NAMES_HF = 2 };
/*! llm_tensor_rename() : a llama tensor's name in scheme `to`, given its
 *  name in scheme `from`. @return its layer, -1 for a tensor outside the
 *  layers, -2 when the name is not a llama tensor (or dst is too small). */
int llm_tensor_rename(const char *name, int from, int to, char *dst, size_t cap);
/*! llm_hf_permute_rows() : reorders the rows of a q or k projection (rows x
 *  cols, heads of hd rows) between our adjacent-pair rotary layout and
 *  Hugging Face's halves (to_hf 1: ours -> HF; 0: HF -> ours). */
void llm_hf_permute_rows(float *w, int rows, int cols, int hd, int to_hf);
/*! llm_chat_detect() : "chatml" or "llama2" for a chat template (Jinja
 *  text) by its markers, NULL for any other or none. */
const char *llm_chat_detect(const char *tmpl);

#ifdef __cplusplus
}
#endif
#endif
