/* export.c: our language models written in the formats others read: a GGUF
 * file for llama.cpp (F32, F16 or Q8_0 matrices) and a Hugging Face
 * LlamaForCausalLM folder for transformers (F32 or BF16 safetensors), each
 * with its tokenizer and chat template, so that import.c reads back the
 * same model, tokenizer and chat settings.
 *
 * Rotary layout: GGUF's llama tensors rotate adjacent pairs as we do, so
 * they are written as they are; Hugging Face rotates halves, so the rows of
 * q_proj and k_proj are permuted within each head (llm_hf_permute_rows()). */
#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <dirent.h>
#include <sys/stat.h>
#include <unistd.h>

#include "text/bpe.h"
#include "gguf.h"
#include "import.h"
#include "model/model.h"

_Static_assert((int)LLM_EXPORT_F32 == (int)LLM_GGUF_F32 && (int)LLM_EXPORT_F16 == (int)LLM_GGUF_F16 &&
               (int)LLM_EXPORT_Q8_0 == (int)LLM_GGUF_Q8_0,
               "LLM_EXPORT_* are ggml_type numbers");

/* -------------------------------------------------------------- shared */

static int refuse_classifier(const llm_model *m, const char *path, const char *fmt)
{
    if (llm_model_n_labels(m) > 0)
        return llm_fail(LLM_ERR_UNSUPPORTED, "'%s': a classifier (%d labels) cannot be "
                        "exported to %s: only language models can", path,
                        llm_model_n_labels(m), fmt);
    return LLM_OK;
}

/* Shortest decimal that reads back as the same double ("10000", "1e-05"). */
static void fmt_double(char *buf, size_t cap, double v)
{
    if (v == floor(v) && fabs(v) < 1e15) {
        snprintf(buf, cap, "%.1f", v);   /* "10000.0": a float in JSON readers */
        return;
    }
    for (int prec = 1; prec <= 17; prec++) {
        snprintf(buf, cap, "%.*g", prec, v);
        if (strtod(buf, NULL) == v)
            return;
    }
}

static int put(llm_buf *b, const char *s)
{
    return llm_buf_append(b, s, strlen(s));
}

/* Appends s as the body of a Jinja single-quoted string literal. */
static int jinja_literal(llm_buf *b, const char *s)
{
    int rc = LLM_OK;
    for (; !rc && *s; s++) {
        if (*s == '\\' || *s == '\'')
            rc = llm_buf_append(b, "\\", 1);
        if (!rc)
            rc = llm_buf_append(b, s, 1);
    }
    return rc;
}

/* The Jinja chat template of the model's chat layout, empty when it has
 * none: ChatML in SmolLM2's shape (its default system turn, when the model
 * has one, first unless the conversation starts with its own), or Llama 2's
 * [INST] template. import.c recognises both by their markers and reads the
 * default system turn back from the literal. */
static int chat_template(const llm_model *m, llm_buf *out)
{
    const char *chat = llm_model_chat_template(m);
    int rc = LLM_OK;
    if (!chat)
        return llm_buf_append(out, "", 0);
    if (strcmp(chat, "chatml") == 0) {
        const char *sys = llm_model_chat_system(m);
        rc = put(out, "{% for message in messages %}");
        if (!rc && sys) {
            rc = put(out, "{% if loop.first and messages[0]['role'] != 'system' %}"
                          "{{ '<|im_start|>system\n");
            if (!rc)
                rc = jinja_literal(out, sys);
            if (!rc)
                rc = put(out, "<|im_end|>\n' }}{% endif %}");
        }
        if (!rc)
            rc = put(out, "{{'<|im_start|>' + message['role'] + '\n' + message['content'] + "
                          "'<|im_end|>' + '\n'}}{% endfor %}{% if add_generation_prompt %}"
                          "{{ '<|im_start|>assistant\n' }}{% endif %}");
        return rc;
    }
    /* Llama 2 chat's own template. */
    return put(out, "{% if messages[0]['role'] == 'system' %}{% set loop_messages = "
                    "messages[1:] %}{% set system_message = messages[0]['content'] %}"
                    "{% else %}{% set loop_messages = messages %}{% set system_message = "
                    "false %}{% endif %}{% for message in loop_messages %}{% if "
                    "(message['role'] == 'user') != (loop.index0 % 2 == 0) %}{{ "
                    "raise_exception('Conversation roles must alternate "
                    "user/assistant/user/assistant/...') }}{% endif %}{% if loop.index0 == 0 "
                    "and system_message != false %}{% set content = '<<SYS>>\\n' + "
                    "system_message + '\\n<</SYS>>\\n\\n' + message['content'] %}{% else %}"
                    "{% set content = message['content'] %}{% endif %}{% if message['role'] "
                    "== 'user' %}{{ bos_token + '[INST] ' + content.strip() + ' [/INST]' }}"
                    "{% elif message['role'] == 'assistant' %}{{ ' '  + content.strip() + ' ' "
                    "+ eos_token }}{% endif %}{% endfor %}");
}

/* Whether a SentencePiece model puts "▁" before a text (add_dummy_prefix),
 * found by encoding one letter: the first piece starts with "▁", or is its
 * first byte when "▁" is spelled in byte pieces. */
static int spm_space_prefix(const llm_tok *t)
{
    llm_buf b = { 0 };
    int yes = 1;
    if (llm_tok_encode_pieces(t, "a", 1, &b) == LLM_OK && b.data)
        yes = strncmp(b.data, "\xe2\x96\x81", 3) == 0 || strncmp(b.data, "<0xE2>", 6) == 0;
    llm_buf_free(&b);
    return yes;
}

/* The byte-level BPE of a tokenizer, rebuilt from its tokenizer.json. */
static int tok_bpe(const llm_tok *t, llm_bpe **out)
{
    const void *buf;
    size_t len;
    llm_tok_bytes(t, &buf, &len);
    return llm_bpe_from_json(buf, len, "tokenizer", out);
}

/* The pre-tokenizer name llama.cpp knows for b's regexes (llama.cpp's own
 * spelling first), or NULL when none of ours matches. */
static const char *bpe_pre_name(const llm_bpe *b)
{
    static const char *const names[] = { "gpt-2", "llama-bpe", "smollm", "qwen2" };
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++) {
        const char *const *re;
        size_t n;
        if (llm_bpe_pre_regexes(names[i], &re, &n) != LLM_OK || n != llm_bpe_n_regexes(b))
            continue;
        size_t k = 0;
        while (k < n && strcmp(re[k], llm_bpe_regex(b, k)) == 0)
            k++;
        if (k == n)
            return names[i];
    }
    return NULL;
}

/* ------------------------------------------------------------------ GGUF */

static int gguf_tokenizer(llm_gguf_writer *w, const llm_tok *t)
{
    int n = llm_tok_vocab_size(t);
    int spm = llm_tok_format(t) == LLM_TOK_SPM;
    const char **tokens = calloc((size_t)n, sizeof *tokens);
    int32_t *types = calloc((size_t)n, sizeof *types);
    float *scores = spm ? calloc((size_t)n, sizeof *scores) : NULL;
    llm_bpe *b = NULL;
    char **merges = NULL;
    size_t nm = 0;
    llm_buf mb = { 0 };
    int rc = LLM_OK;
    if (!tokens || !types || (spm && !scores)) {
        rc = llm_fail(LLM_ERR_NOMEM, "out of memory");
        goto done;
    }
    for (int i = 0; i < n; i++) {
        tokens[i] = llm_tok_piece(t, i);
        types[i] = (int32_t)llm_tok_piece_type(t, i);
        if (spm)
            scores[i] = llm_tok_score(t, i);
    }
    /* llama.cpp's "llama" vocabulary is SentencePiece BPE (pieces merged by
     * score); a unigram model needs its "t5" (UGM) vocabulary, or texts
     * would split differently. */
    const char *kind = "gpt2";
    if (spm) {
        const char *mt = llm_tok_model_type(t);
        kind = strcmp(mt, "bpe") == 0 ? "llama" : strcmp(mt, "unigram") == 0 ? "t5" : NULL;
        if (!kind) {
            rc = llm_fail(LLM_ERR_UNSUPPORTED, "a SentencePiece '%s' tokenizer has no GGUF "
                          "form (unigram and bpe have)", mt);
            goto done;
        }
    }
    rc = llm_gguf_writer_kv_str(w, "tokenizer.ggml.model", kind);
    if (!rc && !spm && !(rc = tok_bpe(t, &b))) {
        const char *pre = bpe_pre_name(b);
        if (pre)
            rc = llm_gguf_writer_kv_str(w, "tokenizer.ggml.pre", pre);
    }
    if (!rc)
        rc = llm_gguf_writer_kv_arr_str(w, "tokenizer.ggml.tokens", tokens, (size_t)n);
    if (!rc && spm)
        rc = llm_gguf_writer_kv_arr_f32(w, "tokenizer.ggml.scores", scores, (size_t)n);
    if (!rc)
        rc = llm_gguf_writer_kv_arr_i32(w, "tokenizer.ggml.token_type", types, (size_t)n);
    if (!rc && b) {
        /* "left right" for each merge, by rank; offsets first, pointers after
         * the buffer stops moving. */
        nm = llm_bpe_n_merges(b);
        size_t *off = calloc(nm ? nm : 1, sizeof *off);
        merges = calloc(nm ? nm : 1, sizeof *merges);
        if (!off || !merges)
            rc = llm_fail(LLM_ERR_NOMEM, "out of memory");
        for (size_t i = 0; !rc && i < nm; i++) {
            int32_t l, r;
            size_t ll, rl;
            llm_bpe_merge(b, i, &l, &r);
            const char *ls = llm_bpe_token(b, l, &ll), *rs = llm_bpe_token(b, r, &rl);
            off[i] = mb.len;
            if (!(rc = llm_buf_append(&mb, ls, ll)) && !(rc = llm_buf_append(&mb, " ", 1)) &&
                !(rc = llm_buf_append(&mb, rs, rl)))
                rc = llm_buf_append(&mb, "", 1);
        }
        for (size_t i = 0; !rc && i < nm; i++)
            merges[i] = mb.data + off[i];
        free(off);
        if (!rc)
            rc = llm_gguf_writer_kv_arr_str(w, "tokenizer.ggml.merges",
                                            (const char *const *)merges, nm);
    }
    static const char *const id_keys[] = {
        "tokenizer.ggml.bos_token_id", "tokenizer.ggml.eos_token_id",
        "tokenizer.ggml.unknown_token_id", "tokenizer.ggml.padding_token_id"
    };
    int ids[] = { llm_tok_bos_id(t), llm_tok_eos_id(t), llm_tok_unk_id(t), llm_tok_pad_id(t) };
    for (size_t i = 0; !rc && i < 4; i++)
        if (ids[i] >= 0)
            rc = llm_gguf_writer_kv_u32(w, id_keys[i], (uint32_t)ids[i]);
    if (!rc)
        rc = llm_gguf_writer_kv_bool(w, "tokenizer.ggml.add_bos_token", llm_tok_add_bos(t));
    if (!rc)
        rc = llm_gguf_writer_kv_bool(w, "tokenizer.ggml.add_eos_token", llm_tok_add_eos(t));
    if (!rc && spm)
        rc = llm_gguf_writer_kv_bool(w, "tokenizer.ggml.add_space_prefix",
                                     spm_space_prefix(t));
done:
    llm_bpe_free(b);
    llm_buf_free(&mb);
    free(merges);
    free(tokens);
    free(types);
    free(scores);
    return rc;
}

int llm_model_export_gguf(const llm_model *m, const llm_tok *t, const char *path, int type)
{
    if (type != LLM_GGUF_F32 && type != LLM_GGUF_F16 && type != LLM_GGUF_Q8_0)
        return llm_fail(LLM_ERR_INVALID, "'%s': GGUF export writes F32, F16 or Q8_0, not %s",
                        path, llm_gguf_type_name(type));
    int rc = refuse_classifier(m, path, "GGUF");
    if (rc)
        return rc;
    const llm_config *c = &m->cfg;
    if (t && llm_tok_vocab_size(t) != c->vocab_size)
        return llm_fail(LLM_ERR_INVALID, "'%s': the tokenizer has %d tokens, the model %d",
                        path, llm_tok_vocab_size(t), c->vocab_size);
    size_t np = llm_model_param_count(m);
    int *types = calloc(np ? np : 1, sizeof *types);
    size_t *nbytes = calloc(np ? np : 1, sizeof *nbytes);
    unsigned char *data = NULL;
    llm_gguf_writer *w = NULL;
    llm_buf chat = { 0 };
    int quantized = 0;
    float *owned = NULL;
    const float *host = llm_host_view(m->k, m->params, m->n_params, &owned);
    if (!types || !nbytes || !host) {
        rc = llm_fail(LLM_ERR_NOMEM, "out of memory");
        goto done;
    }
    /* Each tensor's type and size, then one block for the converted ones. */
    size_t total = 0;
    for (size_t i = 0; !rc && i < np; i++) {
        llm_param p;
        llm_model_param_at(m, i, &p);
        int ty = p.ndim == 1 ? LLM_GGUF_F32 : type;
        /* llama.cpp's converter falls back to F16 for rows that are not a
         * whole number of Q8_0 blocks. */
        if (ty == LLM_GGUF_Q8_0 && p.shape[1] % (int64_t)llm_gguf_type_block(ty))
            ty = LLM_GGUF_F16;
        quantized |= ty == LLM_GGUF_Q8_0;
        types[i] = ty;
        rc = llm_gguf_type_nbytes(ty, p.numel, &nbytes[i]);
        if (!rc && ty != LLM_GGUF_F32 && llm_add_size(total, nbytes[i], &total))
            rc = llm_fail(LLM_ERR_NOMEM, "model too large");
    }
    if (!rc && total && !(data = malloc(total)))
        rc = llm_fail(LLM_ERR_NOMEM, "out of memory (%zu bytes)", total);
    if (!rc)
        rc = llm_gguf_writer_new(&w);
    if (rc)
        goto done;
    int hd = c->dim / c->n_heads;
    int ftype = type == LLM_GGUF_F32 ? 0 : type == LLM_GGUF_F16 ? 1 : 7;   /* llama_ftype */
    if ((rc = llm_gguf_writer_kv_str(w, "general.architecture", "llama")) ||
        (rc = llm_gguf_writer_kv_u32(w, "llama.context_length", (uint32_t)c->context)) ||
        (rc = llm_gguf_writer_kv_u32(w, "llama.embedding_length", (uint32_t)c->dim)) ||
        (rc = llm_gguf_writer_kv_u32(w, "llama.block_count", (uint32_t)c->n_layers)) ||
        (rc = llm_gguf_writer_kv_u32(w, "llama.feed_forward_length", (uint32_t)c->ffn_dim)) ||
        (rc = llm_gguf_writer_kv_u32(w, "llama.attention.head_count", (uint32_t)c->n_heads)) ||
        (rc = llm_gguf_writer_kv_u32(w, "llama.attention.head_count_kv",
                                     (uint32_t)c->n_kv_heads)) ||
        (rc = llm_gguf_writer_kv_f32(w, "llama.attention.layer_norm_rms_epsilon",
                                     (float)c->norm_eps)) ||
        (rc = llm_gguf_writer_kv_f32(w, "llama.rope.freq_base", (float)c->rope_base)) ||
        (rc = llm_gguf_writer_kv_u32(w, "llama.rope.dimension_count", (uint32_t)hd)) ||
        (rc = llm_gguf_writer_kv_u32(w, "llama.vocab_size", (uint32_t)c->vocab_size)) ||
        (rc = llm_gguf_writer_kv_u32(w, "general.file_type", (uint32_t)ftype)))
        goto done;
    if (quantized && (rc = llm_gguf_writer_kv_u32(w, "general.quantization_version", 2)))
        goto done;
    if (t && (rc = gguf_tokenizer(w, t)))
        goto done;
    if ((rc = chat_template(m, &chat)))
        goto done;
    if (chat.len && (rc = llm_gguf_writer_kv_str(w, "tokenizer.chat_template", chat.data)))
        goto done;
    size_t at = 0;
    for (size_t i = 0; !rc && i < np; i++) {
        llm_param p;
        llm_model_param_at(m, i, &p);
        char name[LLM_TENSOR_NAME];
        if (llm_tensor_rename(p.name, LLM_NAMES_OURS, LLM_NAMES_GGUF, name, sizeof name) == -2) {
            rc = llm_fail(LLM_ERR_UNSUPPORTED, "'%s': tensor '%s' has no GGUF name", path,
                          p.name);
            break;
        }
        int64_t ne[2] = { p.ndim == 1 ? p.shape[0] : p.shape[1], p.shape[0] };
        const float *f = host + m->tensors[i].offset;
        const void *src = f;
        if (types[i] != LLM_GGUF_F32) {
            rc = llm_gguf_quantize(types[i], f, p.numel, data + at, nbytes[i]);
            if (rc) {
                rc = llm_fail_cause(rc, "'%s': tensor '%s'", path, name);
                break;
            }
            src = data + at;
            at += nbytes[i];
        }
        rc = llm_gguf_writer_tensor(w, name, types[i], p.ndim, ne, src, nbytes[i]);
    }
    if (!rc)
        rc = llm_gguf_writer_write(w, path);
done:
    llm_gguf_writer_free(w);
    llm_buf_free(&chat);
    free(owned);
    free(data);
    free(types);
    free(nbytes);
    return rc;
}

/* ---------------------------------------------------------- Hugging Face */

static int json_kv_str(llm_buf *b, const char *key, const char *s, int last)
{
    int rc = llm_buf_printf(b, "  \"%s\": ", key);
    if (!rc)
        rc = s ? llm_json_put_string(b, s, strlen(s)) : put(b, "null");
    return rc ? rc : put(b, last ? "\n" : ",\n");
}

static int json_kv_raw(llm_buf *b, const char *key, const char *v, int last)
{
    return llm_buf_printf(b, "  \"%s\": %s%s\n", key, v, last ? "" : ",");
}

static int json_kv_int(llm_buf *b, const char *key, long long v, int last)
{
    char s[32];
    if (v < 0)
        snprintf(s, sizeof s, "null");
    else
        snprintf(s, sizeof s, "%lld", v);
    return json_kv_raw(b, key, s, last);
}

static int hf_config(const llm_model *m, const llm_tok *t, int bf16, llm_buf *b)
{
    const llm_config *c = &m->cfg;
    char eps[40], theta[40];
    fmt_double(eps, sizeof eps, c->norm_eps);
    fmt_double(theta, sizeof theta, c->rope_base);
    int bos = t ? llm_tok_bos_id(t) : -1, eos = t ? llm_tok_eos_id(t) : -1;
    int pad = t ? llm_tok_pad_id(t) : -1;
    int rc = put(b, "{\n  \"architectures\": [\"LlamaForCausalLM\"],\n");
    if (!rc) rc = json_kv_str(b, "model_type", "llama", 0);
    if (!rc) rc = json_kv_int(b, "vocab_size", c->vocab_size, 0);
    if (!rc) rc = json_kv_int(b, "hidden_size", c->dim, 0);
    if (!rc) rc = json_kv_int(b, "intermediate_size", c->ffn_dim, 0);
    if (!rc) rc = json_kv_int(b, "num_hidden_layers", c->n_layers, 0);
    if (!rc) rc = json_kv_int(b, "num_attention_heads", c->n_heads, 0);
    if (!rc) rc = json_kv_int(b, "num_key_value_heads", c->n_kv_heads, 0);
    if (!rc) rc = json_kv_int(b, "head_dim", c->dim / c->n_heads, 0);
    if (!rc) rc = json_kv_str(b, "hidden_act", "silu", 0);
    if (!rc) rc = json_kv_int(b, "max_position_embeddings", c->context, 0);
    if (!rc) rc = json_kv_raw(b, "rms_norm_eps", eps, 0);
    if (!rc) rc = json_kv_raw(b, "rope_theta", theta, 0);
    if (!rc) rc = json_kv_raw(b, "rope_scaling", "null", 0);
    if (!rc) rc = json_kv_raw(b, "attention_bias", "false", 0);
    if (!rc) rc = json_kv_raw(b, "attention_dropout", "0.0", 0);
    if (!rc) rc = json_kv_raw(b, "mlp_bias", "false", 0);
    if (!rc) rc = json_kv_raw(b, "initializer_range", "0.02", 0);
    if (!rc) rc = json_kv_int(b, "pretraining_tp", 1, 0);
    if (!rc) rc = json_kv_raw(b, "use_cache", "true", 0);
    if (!rc) rc = json_kv_raw(b, "tie_word_embeddings", c->tied ? "true" : "false", 0);
    if (!rc) rc = json_kv_int(b, "bos_token_id", bos, 0);
    if (!rc) rc = json_kv_int(b, "eos_token_id", eos, 0);
    if (!rc && pad >= 0) rc = json_kv_int(b, "pad_token_id", pad, 0);
    if (!rc) rc = json_kv_str(b, "torch_dtype", bf16 ? "bfloat16" : "float32", 0);
    if (!rc) rc = json_kv_str(b, "transformers_version", "4.46.0", 1);
    return rc ? rc : put(b, "}\n");
}

static int hf_generation_config(const llm_tok *t, llm_buf *b)
{
    int rc = put(b, "{\n");
    if (!rc) rc = json_kv_int(b, "bos_token_id", t ? llm_tok_bos_id(t) : -1, 0);
    if (!rc) rc = json_kv_int(b, "eos_token_id", t ? llm_tok_eos_id(t) : -1, 0);
    if (!rc && t && llm_tok_pad_id(t) >= 0)
        rc = json_kv_int(b, "pad_token_id", llm_tok_pad_id(t), 0);
    if (!rc) rc = json_kv_str(b, "transformers_version", "4.46.0", 1);
    return rc ? rc : put(b, "}\n");
}

static int hf_tokenizer_config(const llm_model *m, const llm_tok *t, llm_buf *b)
{
    llm_buf chat = { 0 };
    int spm = llm_tok_format(t) == LLM_TOK_SPM;
    int ids[] = { llm_tok_bos_id(t), llm_tok_eos_id(t), llm_tok_unk_id(t), llm_tok_pad_id(t) };
    static const char *const keys[] = { "bos_token", "eos_token", "unk_token", "pad_token" };
    int rc = chat_template(m, &chat);
    if (!rc) rc = put(b, "{\n");
    if (!rc)
        rc = json_kv_str(b, "tokenizer_class",
                         spm ? "LlamaTokenizer" : "PreTrainedTokenizerFast", 0);
    for (size_t i = 0; !rc && i < 4; i++)
        rc = json_kv_str(b, keys[i], ids[i] >= 0 ? llm_tok_piece(t, ids[i]) : NULL, 0);
    if (!rc) rc = json_kv_raw(b, "add_bos_token", llm_tok_add_bos(t) ? "true" : "false", 0);
    if (!rc) rc = json_kv_raw(b, "add_eos_token", llm_tok_add_eos(t) ? "true" : "false", 0);
    if (!rc && spm) {
        /* The SentencePiece model as it is: its own normalizer, and no
         * space inserted after special tokens (transformers' legacy mode). */
        rc = json_kv_raw(b, "legacy", "false", 0);
        if (!rc)
            rc = json_kv_raw(b, "add_prefix_space",
                             spm_space_prefix(t) ? "true" : "false", 0);
    }
    if (!rc) rc = json_kv_raw(b, "clean_up_tokenization_spaces", "false", 0);
    if (!rc && chat.len) rc = json_kv_str(b, "chat_template", chat.data, 0);
    if (!rc) rc = json_kv_int(b, "model_max_length", m->cfg.context, 1);
    if (!rc) rc = put(b, "}\n");
    llm_buf_free(&chat);
    return rc;
}

static uint16_t to_bf16(float f)
{
    uint32_t u;
    memcpy(&u, &f, sizeof u);
    if ((u & 0x7fffffffu) > 0x7f800000u)        /* NaN: keep it one, quiet */
        return (uint16_t)(u >> 16 | 0x40);
    u += 0x7fffu + (u >> 16 & 1);              /* round to nearest even */
    return (uint16_t)(u >> 16);
}

/* model.safetensors: every parameter under its Hugging Face name, q and k
 * rows in the halves layout; F32 or BF16. */
static int hf_weights(const llm_model *m, const char *path, int bf16)
{
    size_t np = llm_model_param_count(m);
    size_t esz = bf16 ? 2 : 4;
    unsigned char *data = NULL;
    char (*names)[LLM_TENSOR_NAME] = calloc(np ? np : 1, sizeof *names);
    llm_st_writer *w = NULL;
    size_t nbytes;
    int rc = LLM_OK;
    float *owned = NULL;
    const float *host = NULL;
    if (!names || llm_mul_size(m->n_params, esz, &nbytes) || !(data = malloc(nbytes ? nbytes : 1)))
        rc = llm_fail(LLM_ERR_NOMEM, "out of memory");
    else if (!(host = llm_host_view(m->k, m->params, m->n_params, &owned)))
        rc = LLM_ERR_NOMEM;
    if (!rc)
        rc = llm_st_writer_new(&w);
    if (!rc)
        rc = llm_st_writer_meta(w, "format", "pt");
    size_t at = 0;
    for (size_t i = 0; !rc && i < np; i++) {
        llm_param p;
        llm_model_param_at(m, i, &p);
        if (llm_tensor_rename(p.name, LLM_NAMES_OURS, LLM_NAMES_HF, names[i],
                              sizeof names[i]) == -2) {
            rc = llm_fail(LLM_ERR_UNSUPPORTED, "'%s': tensor '%s' has no Hugging Face name",
                          path, p.name);
            break;
        }
        float *f = (float *)(void *)(data + at * esz);
        if (bf16) {
            /* Permuted in F32 first, then rounded. */
            f = malloc(p.numel * sizeof *f);
            if (!f) {
                rc = llm_fail(LLM_ERR_NOMEM, "out of memory");
                break;
            }
        }
        memcpy(f, host + m->tensors[i].offset, p.numel * sizeof *f);
        if (strstr(p.name, ".attention.wq.") || strstr(p.name, ".attention.wk."))
            llm_hf_permute_rows(f, (int)p.shape[0], (int)p.shape[1], m->hd, 1);
        if (bf16) {
            uint16_t *h = (uint16_t *)(void *)(data + at * esz);
            for (size_t j = 0; j < p.numel; j++) {
                uint16_t v = to_bf16(f[j]);
                memcpy(h + j, &v, sizeof v);
            }
            free(f);
        }
        rc = llm_st_writer_add(w, names[i], bf16 ? LLM_DT_BF16 : LLM_DT_F32, p.ndim, p.shape,
                               data + at * esz);
        at += p.numel;
    }
    if (!rc)
        rc = llm_st_writer_write(w, path);
    llm_st_writer_free(w);
    free(owned);
    free(data);
    free(names);
    return rc;
}

/* A path without its trailing slashes ("out/" -> "out"), malloc'd. */
static char *strip_slashes(const char *dir)
{
    size_t n = strlen(dir);
    while (n > 1 && dir[n - 1] == '/')
        n--;
    return strndup(dir, n);
}

static int write_in(const char *dir, const char *name, const llm_buf *b)
{
    char path[4096];
    if ((size_t)snprintf(path, sizeof path, "%s/%s", dir, name) >= sizeof path)
        return llm_fail(LLM_ERR_INVALID, "'%s': path too long", dir);
    return llm_write_file(path, b->data ? b->data : "", b->len);
}

int llm_model_export_hf(const llm_model *m, const llm_tok *t, const char *dir, int bf16)
{
    int rc = refuse_classifier(m, dir, "a Hugging Face folder");
    if (rc)
        return rc;
    if (t && llm_tok_vocab_size(t) > m->cfg.vocab_size)
        return llm_fail(LLM_ERR_INVALID, "'%s': the tokenizer has %d tokens, more than the "
                        "model's %d", dir, llm_tok_vocab_size(t), m->cfg.vocab_size);
    char *out = strip_slashes(dir), *tmp = NULL;
    if (!out)
        return llm_fail(LLM_ERR_NOMEM, "out of memory");
    struct stat st;
    if (stat(out, &st) == 0) {
        DIR *d = S_ISDIR(st.st_mode) ? opendir(out) : NULL;
        int empty = d != NULL;
        struct dirent *e;
        while (d && (e = readdir(d)))
            if (strcmp(e->d_name, ".") != 0 && strcmp(e->d_name, "..") != 0)
                empty = 0;
        if (d)
            closedir(d);
        if (!empty) {
            rc = llm_fail(LLM_ERR_INVALID, "'%s': %s", dir, S_ISDIR(st.st_mode) ?
                          "the folder exists and is not empty" : "exists and is not a folder");
            free(out);
            return rc;
        }
    } else if (errno != ENOENT) {
        rc = llm_fail(LLM_ERR_IO, "cannot write '%s': %s", dir, strerror(errno));
        free(out);
        return rc;
    }
    /* Everything goes into a fresh folder beside the target, renamed onto
     * it at the end (rename replaces an empty folder): the target is never
     * seen half-written. */
    llm_buf b = { 0 };
    char path[4096];
    if ((rc = llm_create_temp_dir(out, &tmp)))
        goto done;
    if ((rc = hf_config(m, t, bf16, &b)) || (rc = write_in(tmp, "config.json", &b)))
        goto done;
    b.len = 0;
    if ((rc = hf_generation_config(t, &b)) || (rc = write_in(tmp, "generation_config.json", &b)))
        goto done;
    if ((size_t)snprintf(path, sizeof path, "%s/model.safetensors", tmp) >= sizeof path) {
        rc = llm_fail(LLM_ERR_INVALID, "'%s': path too long", dir);
        goto done;
    }
    if ((rc = hf_weights(m, path, bf16)))
        goto done;
    if (t) {
        const void *tb;
        size_t tl;
        llm_tok_bytes(t, &tb, &tl);
        llm_buf raw = { (char *)(uintptr_t)tb, tl, tl };
        int spm = llm_tok_format(t) == LLM_TOK_SPM;
        if ((rc = write_in(tmp, spm ? "tokenizer.model" : "tokenizer.json", &raw)))
            goto done;
        b.len = 0;
        if ((rc = hf_tokenizer_config(m, t, &b)) ||
            (rc = write_in(tmp, "tokenizer_config.json", &b)))
            goto done;
    }
    if (rename(tmp, out) != 0)
        rc = llm_fail(LLM_ERR_IO, "cannot rename the temporary folder to '%s': %s", dir,
                      strerror(errno));
    else
        llm_sync_dir(out);
done:
    if (rc && tmp)
        llm_remove_dir(tmp);
    llm_buf_free(&b);
    free(tmp);
    free(out);
    return rc;
}
