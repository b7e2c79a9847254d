/* import.c: pretrained Llama-family models that others wrote, GGUF files
 * (llama.cpp) and Hugging Face folders (LlamaForCausalLM), read into our
 * model with every weight dequantized to fp32, and their tokenizers into an
 * llm_tok. Everything a file says about the architecture is either honoured
 * or refused by name: a model we would run differently from its authors is
 * worse than no model.
 *
 * Rotary layout: ours, like GGUF's "llama" tensors, rotates adjacent pairs
 * (x[2i], x[2i+1]); Hugging Face rotates halves (x[i], x[i + hd/2]), so the
 * rows of q_proj and k_proj are permuted within each head on the way in (and
 * back on the way out, llm_hf_permute_rows()). */
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "text/bpe.h"
#include "gguf.h"
#include "half.h"
#include "import.h"
#include "model/model.h"

/* ------------------------------------------------------------ tensor names */

/* Our tensor names and theirs; "%d" is the layer. */
static const struct {
    const char *ours, *gguf, *hf;
} names[] = {
    { "tok_embeddings.weight", "token_embd.weight", "model.embed_tokens.weight" },
    { "norm.weight", "output_norm.weight", "model.norm.weight" },
    { "output.weight", "output.weight", "lm_head.weight" },
    { "layers.%d.attention_norm.weight", "blk.%d.attn_norm.weight",
      "model.layers.%d.input_layernorm.weight" },
    { "layers.%d.attention.wq.weight", "blk.%d.attn_q.weight",
      "model.layers.%d.self_attn.q_proj.weight" },
    { "layers.%d.attention.wk.weight", "blk.%d.attn_k.weight",
      "model.layers.%d.self_attn.k_proj.weight" },
    { "layers.%d.attention.wv.weight", "blk.%d.attn_v.weight",
      "model.layers.%d.self_attn.v_proj.weight" },
    { "layers.%d.attention.wo.weight", "blk.%d.attn_output.weight",
      "model.layers.%d.self_attn.o_proj.weight" },
    { "layers.%d.ffn_norm.weight", "blk.%d.ffn_norm.weight",
      "model.layers.%d.post_attention_layernorm.weight" },
    { "layers.%d.feed_forward.w1.weight", "blk.%d.ffn_gate.weight",
      "model.layers.%d.mlp.gate_proj.weight" },
    { "layers.%d.feed_forward.w2.weight", "blk.%d.ffn_down.weight",
      "model.layers.%d.mlp.down_proj.weight" },
    { "layers.%d.feed_forward.w3.weight", "blk.%d.ffn_up.weight",
      "model.layers.%d.mlp.up_proj.weight" },
};

/* Matches `s` against a pattern with at most one "%d"; *layer gets it (-1
 * when the pattern has none). */
static int match_name(const char *pat, const char *s, int *layer)
{
    const char *d = strstr(pat, "%d");
    *layer = -1;
    if (!d)
        return strcmp(pat, s) == 0;
    size_t pre = (size_t)(d - pat);
    if (strncmp(pat, s, pre) != 0)
        return 0;
    s += pre;
    if (*s < '0' || *s > '9' || (*s == '0' && s[1] >= '0' && s[1] <= '9'))
        return 0;
    long v = 0;
    while (*s >= '0' && *s <= '9') {
        v = v * 10 + (*s++ - '0');
        if (v > 1 << 20)
            return 0;
    }
    if (strcmp(d + 2, s) != 0)
        return 0;
    *layer = (int)v;
    return 1;
}

int llm_tensor_rename(const char *name, int from, int to, char *dst, size_t cap)
{
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++) {
        const char *f = from == LLM_NAMES_GGUF ? names[i].gguf
                        : from == LLM_NAMES_HF ? names[i].hf : names[i].ours;
        const char *t = to == LLM_NAMES_GGUF ? names[i].gguf
                        : to == LLM_NAMES_HF ? names[i].hf : names[i].ours;
        int layer;
        if (!match_name(f, name, &layer))
            continue;
        const char *d = strstr(t, "%d");
        int n = layer < 0 ? snprintf(dst, cap, "%s", t)
                          : snprintf(dst, cap, "%.*s%d%s", (int)(d - t), t, layer, d + 2);
        return n > 0 && (size_t)n < cap ? layer : -2;
    }
    return -2;
}

void llm_hf_permute_rows(float *w, int rows, int cols, int hd, int to_hf)
{
    size_t rowb = (size_t)cols * sizeof *w;
    float *tmp = malloc((size_t)hd * rowb);
    if (!tmp)
        return;
    for (int h = 0; h < rows / hd; h++) {
        float *blk = w + (size_t)h * hd * cols;
        memcpy(tmp, blk, (size_t)hd * rowb);
        for (int i = 0; i < hd / 2; i++)
            for (int j = 0; j < 2; j++) {
                int pairs = 2 * i + j, halves = j * (hd / 2) + i;
                if (to_hf)
                    memcpy(blk + (size_t)halves * cols, tmp + (size_t)pairs * cols, rowb);
                else
                    memcpy(blk + (size_t)pairs * cols, tmp + (size_t)halves * cols, rowb);
            }
    }
    free(tmp);
}

/* -------------------------------------------------------------- file kinds */

int llm_model_format(const char *path)
{
    struct stat st;
    if (stat(path, &st) == 0 && S_ISDIR(st.st_mode))
        return LLM_FORMAT_HF;
    FILE *f = fopen(path, "rb");
    if (!f)
        return LLM_FORMAT_LLM;   /* the reader says why */
    unsigned char b[4] = { 0 };
    size_t n = fread(b, 1, sizeof b, f);
    fclose(f);
    return llm_gguf_is_gguf(b, n) ? LLM_FORMAT_GGUF : LLM_FORMAT_LLM;
}

/* After the tensors of a file have been read into m: every one of the
 * model's was there (seen), named in the file's scheme when not, and every
 * weight is finite. */
static int check_complete(const llm_model *m, const unsigned char *seen, const char *src,
                          int scheme)
{
    for (size_t k = 0; k < m->n_tensors; k++)
        if (!seen[k]) {
            char theirs[LLM_TENSOR_NAME];
            if (llm_tensor_rename(m->tensors[k].name, LLM_NAMES_OURS, scheme, theirs,
                                  sizeof theirs) == -2)
                snprintf(theirs, sizeof theirs, "%s", m->tensors[k].name);
            return llm_fail(LLM_ERR_FORMAT, "'%s': tensor '%s' is missing", src, theirs);
        }
    float *owned;
    const float *w = llm_host_view(m->k, m->params, m->n_params, &owned);
    if (!w)
        return LLM_ERR_NOMEM;
    for (size_t j = 0; j < m->n_params; j++)
        if (!isfinite(w[j])) {
            free(owned);
            return llm_fail(LLM_ERR_FORMAT, "'%s': a weight is not finite (parameter %zu)",
                            src, j);
        }
    free(owned);
    return LLM_OK;
}

/* Room on the host for the largest of m's tensors, each read there and
 * then uploaded. */
static float *tensor_stage(const llm_model *m)
{
    size_t most = 1;
    for (size_t i = 0; i < m->n_tensors; i++)
        most = m->tensors[i].numel > most ? m->tensors[i].numel : most;
    float *f = malloc(most * sizeof *f);
    if (!f)
        llm_fail(LLM_ERR_NOMEM, "out of memory");
    return f;
}

/* The start of an import: the model of config c, uninitialised, a mark
 * per tensor of whether the file had it, and the host room tensor_stage()
 * gives. */
static int import_begin(const llm_config *c, const char *device, llm_model **m,
                        unsigned char **seen, float **stage)
{
    int rc = llm_model_alloc(c, device, m);
    if (rc)
        return rc;
    if (!(*seen = calloc((*m)->n_tensors, 1)) || !(*stage = tensor_stage(*m)))
        return llm_fail(LLM_ERR_NOMEM, "out of memory");
    return LLM_OK;
}

/* The end of an import: the model to *out, or freed on failure. */
static int import_end(int rc, llm_model *m, unsigned char *seen, float *stage,
                      llm_model **out)
{
    free(seen);
    free(stage);
    if (rc) {
        llm_model_free(m);
        return rc;
    }
    *out = m;
    return LLM_OK;
}

/* ------------------------------------------------------------------- GGUF */

static int gguf_key_int(const llm_gguf *g, const char *path, const char *key, int required,
                        int64_t lo, int64_t hi, int *out)
{
    int64_t v;
    int rc = llm_gguf_get_int(g, key, &v);
    if (rc == LLM_ERR_RANGE && !required)
        return LLM_OK;
    if (rc == LLM_ERR_RANGE)
        return llm_fail(LLM_ERR_FORMAT, "'%s': metadata has no '%s'", path, key);
    if (rc)
        return rc;
    if (v < lo || v > hi)
        return llm_fail(LLM_ERR_FORMAT, "'%s': '%s' is %lld, outside [%lld, %lld]", path, key,
                        (long long)v, (long long)lo, (long long)hi);
    *out = (int)v;
    return LLM_OK;
}

static int gguf_key_float(const llm_gguf *g, const char *path, const char *key, double *out)
{
    double v;
    int rc = llm_gguf_get_float(g, key, &v);
    if (rc == LLM_ERR_RANGE)
        return LLM_OK;
    if (rc)
        return rc;
    if (!isfinite(v))
        return llm_fail(LLM_ERR_FORMAT, "'%s': '%s' is not finite", path, key);
    *out = v;
    return LLM_OK;
}

/* The architecture's keys into *c; refuses what the model does not do. */
static int gguf_config(const llm_gguf *g, const char *path, llm_config *c)
{
    const char *arch;
    size_t len;
    int rc = llm_gguf_get_str(g, "general.architecture", &arch, &len);
    if (rc == LLM_ERR_RANGE)
        return llm_fail(LLM_ERR_FORMAT, "'%s': metadata has no 'general.architecture'", path);
    if (rc)
        return rc;
    if (strcmp(arch, "llama") != 0)
        return llm_fail(LLM_ERR_UNSUPPORTED, "'%s': architecture '%s' is not supported "
                        "(only 'llama')", path, arch);
    memset(c, 0, sizeof *c);
    c->rope_base = 10000.0;
    c->norm_eps = 1e-5;
    const int big = 1 << 20;
    if ((rc = gguf_key_int(g, path, "llama.block_count", 1, 1, 1024, &c->n_layers)) ||
        (rc = gguf_key_int(g, path, "llama.embedding_length", 1, 2, big, &c->dim)) ||
        (rc = gguf_key_int(g, path, "llama.feed_forward_length", 1, 1, big, &c->ffn_dim)) ||
        (rc = gguf_key_int(g, path, "llama.attention.head_count", 1, 1, big, &c->n_heads)) ||
        (rc = gguf_key_int(g, path, "llama.context_length", 1, 1, 1 << 16, &c->context)))
        return rc;
    c->n_kv_heads = c->n_heads;
    if ((rc = gguf_key_int(g, path, "llama.attention.head_count_kv", 0, 1, big,
                           &c->n_kv_heads)) ||
        (rc = gguf_key_float(g, path, "llama.rope.freq_base", &c->rope_base)) ||
        (rc = gguf_key_float(g, path, "llama.attention.layer_norm_rms_epsilon", &c->norm_eps)))
        return rc;
    if (c->dim % c->n_heads)
        return llm_fail(LLM_ERR_FORMAT, "'%s': %d heads do not divide the width %d", path,
                        c->n_heads, c->dim);
    int hd = c->dim / c->n_heads, v = hd;
    static const char *const same_hd[] = {
        "llama.rope.dimension_count", "llama.attention.key_length",
        "llama.attention.value_length"
    };
    for (size_t i = 0; i < 3; i++) {
        v = hd;
        if ((rc = gguf_key_int(g, path, same_hd[i], 0, 0, big, &v)))
            return rc;
        if (v != hd)
            return llm_fail(LLM_ERR_UNSUPPORTED, "'%s': '%s' is %d, not the head size %d "
                            "(%s is not supported)", path, same_hd[i], v, hd,
                            i == 0 ? "partial rotary embedding" : "a separate head size");
    }
    int experts = 0;
    if ((rc = gguf_key_int(g, path, "llama.expert_count", 0, 0, big, &experts)))
        return rc;
    if (experts > 0)
        return llm_fail(LLM_ERR_UNSUPPORTED, "'%s': mixture of experts (%d experts) is not "
                        "supported", path, experts);
    const char *rs;
    if (llm_gguf_get_str(g, "llama.rope.scaling.type", &rs, &len) == LLM_OK &&
        strcmp(rs, "none") != 0) {
        double f = 1.0;
        if ((rc = gguf_key_float(g, path, "llama.rope.scaling.factor", &f)))
            return rc;
        if (f != 1.0)
            return llm_fail(LLM_ERR_UNSUPPORTED, "'%s': rope scaling '%s' (factor %g) is "
                            "not supported", path, rs, f);
    }
    const llm_gguf_tensor *emb = llm_gguf_tensor_find(g, "token_embd.weight");
    if (!emb)
        return llm_fail(LLM_ERR_FORMAT, "'%s': tensor 'token_embd.weight' is missing", path);
    if (emb->n_dims != 2 || emb->ne[0] != c->dim || emb->ne[1] > (1 << 24))
        return llm_fail(LLM_ERR_FORMAT, "'%s': tensor 'token_embd.weight' is not (vocabulary, "
                        "%d)", path, c->dim);
    c->vocab_size = (int)emb->ne[1];
    c->tied = llm_gguf_tensor_find(g, "output.weight") == NULL;
    if (llm_config_check(c) != LLM_OK)
        return llm_fail_cause(LLM_ERR_FORMAT, "'%s': unusable llama config", path);
    return LLM_OK;
}

/* The chat layout a template (Jinja text) is written for, by its markers:
 * we format the two common layouts ourselves rather than run Jinja. */
const char *llm_chat_detect(const char *tmpl)
{
    if (!tmpl)
        return NULL;
    if (strstr(tmpl, "<|im_start|>"))
        return "chatml";
    if (strstr(tmpl, "[INST]"))
        return "llama2";
    return NULL;
}

/* The default system turn of a ChatML template: the text of a string
 * literal "<|im_start|>system\n...<|im_end|>" in it (Jinja escapes \n, \',
 * \" and \\ undone), when it holds no expression. */
static int chat_default_system(const char *tmpl, llm_model *m)
{
    static const char head[] = "<|im_start|>system";
    const char *p = tmpl ? strstr(tmpl, head) : NULL;
    if (!p || !m->chat || strcmp(m->chat, "chatml") != 0 || p == tmpl ||
        (p[-1] != '\'' && p[-1] != '"'))
        return LLM_OK;
    char quote = p[-1];
    p += sizeof head - 1;
    if (*p == '\n')
        p++;
    else if (p[0] == '\\' && p[1] == 'n')
        p += 2;
    else
        return LLM_OK;
    const char *end = strstr(p, "<|im_end|>");
    if (!end)
        return LLM_OK;
    llm_buf b = { 0 };
    int rc = LLM_OK;
    for (const char *q = p; !rc && q < end; q++) {
        char ch = *q;
        if (ch == quote || ch == '{')
            goto none;   /* the literal ends, or an expression: not a fixed text */
        if (ch == '\\' && q + 1 < end) {
            q++;
            ch = *q == 'n' ? '\n' : *q == 't' ? '\t' : *q;
        }
        rc = llm_buf_append(&b, &ch, 1);
    }
    if (!rc)
        rc = llm_buf_append(&b, "", 1);
    if (!rc)
        rc = llm_model_set_chat_system(m, b.data);
none:
    llm_buf_free(&b);
    return rc;
}

static int gguf_chat(const llm_gguf *g, llm_model *m)
{
    const char *s;
    size_t len;
    if (llm_gguf_get_str(g, "tokenizer.chat_template", &s, &len) != LLM_OK)
        return LLM_OK;
    int rc = llm_model_set_chat(m, llm_chat_detect(s));
    return rc ? rc : chat_default_system(s, m);
}

/* Elements of llama tensor `k` of the name table under config c. */
static uint64_t table_numel(size_t k, const llm_config *c)
{
    uint64_t C = (uint64_t)c->dim, V = (uint64_t)c->vocab_size, F = (uint64_t)c->ffn_dim,
             hd = C / (uint64_t)c->n_heads, Q = (uint64_t)c->n_heads * hd,
             KV = (uint64_t)c->n_kv_heads * hd;
    static const int kind[] = { 0, 1, 0, 1, 2, 3, 3, 2, 1, 4, 4, 4 };
    switch (kind[k]) {
    case 0: return V * C;
    case 1: return C;
    case 2: return Q * C;
    case 3: return KV * C;
    default: return F * C;
    }
}

/* The file's tensors against the config, by name and size only. */
static int gguf_check_tensors(const llm_gguf *g, const char *path, const llm_config *c)
{
    size_t nt = sizeof names / sizeof names[0];
    for (size_t i = 0; i < llm_gguf_tensor_count(g); i++) {
        const llm_gguf_tensor *t = llm_gguf_tensor_at(g, i);
        size_t k = 0;
        int layer = -1;
        while (k < nt && !match_name(names[k].gguf, t->name, &layer))
            k++;
        if (k == nt || layer >= c->n_layers || (k == 2 && c->tied))
            return llm_fail(LLM_ERR_UNSUPPORTED, "'%s': tensor '%s' is not part of a llama "
                            "model this program runs", path, t->name);
        if (t->n_elements != table_numel(k, c))
            return llm_fail(LLM_ERR_FORMAT, "'%s': tensor '%s' has %llu elements, the config "
                            "needs %llu", path, t->name, (unsigned long long)t->n_elements,
                            (unsigned long long)table_numel(k, c));
    }
    char want[LLM_TENSOR_NAME];
    for (size_t k = 0; k < nt; k++)
        for (int l = 0; l < (strstr(names[k].gguf, "%d") ? c->n_layers : 1); l++) {
            if (k == 2 && c->tied)
                continue;
            const char *d = strstr(names[k].gguf, "%d");
            if (d)
                snprintf(want, sizeof want, "%.*s%d%s", (int)(d - names[k].gguf),
                         names[k].gguf, l, d + 2);
            else
                snprintf(want, sizeof want, "%s", names[k].gguf);
            if (!llm_gguf_tensor_find(g, want))
                return llm_fail(LLM_ERR_FORMAT, "'%s': tensor '%s' is missing", path, want);
        }
    return LLM_OK;
}

int llm_gguf_model_load(const char *path, const char *device, llm_model **out)
{
    *out = NULL;
    llm_gguf *g;
    int rc = llm_gguf_open(path, &g);
    if (rc)
        return rc;
    llm_config c;
    llm_model *m = NULL;
    unsigned char *seen = NULL;
    float *stage = NULL;
    if ((rc = gguf_config(g, path, &c)))
        goto done;
    /* Every weight comes from the file: before anything is allocated for
     * the config, each tensor must be one it has, of its size, and none may
     * be missing, so that a lying config cannot ask for gigabytes. */
    if ((rc = gguf_check_tensors(g, path, &c)))
        goto done;
    if ((rc = import_begin(&c, device, &m, &seen, &stage)))
        goto done;
    char ours[LLM_TENSOR_NAME];
    for (size_t i = 0; !rc && i < llm_gguf_tensor_count(g); i++) {
        const llm_gguf_tensor *t = llm_gguf_tensor_at(g, i);
        int layer = llm_tensor_rename(t->name, LLM_NAMES_GGUF, LLM_NAMES_OURS, ours,
                                      sizeof ours);
        if (layer == -2 || layer >= c.n_layers) {
            rc = llm_fail(LLM_ERR_UNSUPPORTED, "'%s': tensor '%s' is not part of a llama "
                          "model this program runs", path, t->name);
            break;
        }
        size_t k = 0;
        while (k < m->n_tensors && strcmp(m->tensors[k].name, ours) != 0)
            k++;
        if (k == m->n_tensors) {   /* output.weight of a tied model cannot happen */
            rc = llm_fail(LLM_ERR_FORMAT, "'%s': unexpected tensor '%s'", path, t->name);
            break;
        }
        const llm_tensor_desc *d = &m->tensors[k];
        /* GGUF dims run fastest first: a (out, in) matrix has ne {in, out}. */
        int ok = t->n_dims == d->ndim &&
                 (d->ndim == 1 ? t->ne[0] == d->shape[0]
                               : t->ne[0] == d->shape[1] && t->ne[1] == d->shape[0]);
        if (!ok) {
            rc = llm_fail(LLM_ERR_FORMAT, "'%s': tensor '%s' has the wrong shape for this "
                          "config", path, t->name);
            break;
        }
        if (seen[k]++) {
            rc = llm_fail(LLM_ERR_FORMAT, "'%s': tensor '%s' appears twice", path, t->name);
            break;
        }
        if (!llm_gguf_type_supported(t->type)) {
            rc = llm_fail(LLM_ERR_UNSUPPORTED, "'%s': tensor '%s' has type %s, which is not "
                          "supported", path, t->name, llm_gguf_type_name(t->type));
            break;
        }
        rc = llm_gguf_dequantize(t->type, t->data, t->nbytes, stage, d->numel);
        if (rc) {
            rc = llm_fail_cause(rc, "'%s': tensor '%s'", path, t->name);
        } else {
            m->k->upload(m->params + d->offset, stage, d->numel * sizeof *stage);
        }
    }
    if (!rc)
        rc = check_complete(m, seen, path, LLM_NAMES_GGUF);
    if (!rc)
        rc = gguf_chat(g, m);
done:
    llm_gguf_close(g);
    return import_end(rc, m, seen, stage, out);
}


/* An optional array `key` of one entry per token (n of them): *out = room
 * for n entries of `elem` bytes when the file has it, NULL when not. */
static int per_token_arr(const llm_gguf *g, const char *path, const char *key,
                         const char *what, size_t n, size_t elem, void **out)
{
    int et;
    size_t k;
    *out = NULL;
    if (llm_gguf_get_arr(g, key, &et, &k) != LLM_OK)
        return LLM_OK;
    if (k != n)
        return llm_fail(LLM_ERR_FORMAT, "'%s': %zu %s for %zu tokens", path, k, what, n);
    if (!(*out = malloc(n * elem)))
        return llm_fail(LLM_ERR_NOMEM, "out of memory");
    return LLM_OK;
}

/* GGUF's tokenizer: tokenizer.ggml.model "gpt2" (byte-level BPE) or
 * "llama" (SentencePiece), with its vocabulary, merges or scores, special
 * ids and flags. */
int llm_gguf_tok_load(const char *path, llm_tok **out)
{
    *out = NULL;
    llm_gguf *g;
    int rc = llm_gguf_open(path, &g);
    if (rc)
        return rc;
    llm_tok_vocab v;
    memset(&v, 0, sizeof v);
    v.bos_id = v.eos_id = v.unk_id = v.pad_id = -1;
    v.add_bos = v.add_eos = v.add_space_prefix = -1;
    const char **tokens = NULL, **merges = NULL;
    size_t *lens = NULL;
    float *scores = NULL;
    int32_t *types = NULL;
    size_t len, n = 0, nm = 0;
    int et;
    if ((rc = llm_gguf_get_str(g, "tokenizer.ggml.model", &v.model, &len))) {
        if (rc == LLM_ERR_RANGE)
            rc = llm_fail(LLM_ERR_FORMAT, "'%s': no tokenizer (metadata has no "
                          "'tokenizer.ggml.model')", path);
        goto done;
    }
    if (strcmp(v.model, "gpt2") != 0 && strcmp(v.model, "llama") != 0 &&
        strcmp(v.model, "t5") != 0) {
        rc = llm_fail(LLM_ERR_UNSUPPORTED, "'%s': tokenizer '%s' is not supported (gpt2, "
                      "llama, t5)", path, v.model);
        goto done;
    }
    /* A unigram vocabulary's normalization rules (a precompiled charsmap)
     * are not read: such a model encodes as with identity normalization. */
    if ((rc = llm_gguf_get_arr(g, "tokenizer.ggml.tokens", &et, &n)))
        goto arr_fail;
    if (et != LLM_GGUF_T_STRING || n == 0 || n > (1u << 24)) {
        rc = llm_fail(LLM_ERR_FORMAT, "'%s': 'tokenizer.ggml.tokens' is not 1 to 2^24 strings",
                      path);
        goto done;
    }
    tokens = calloc(n, sizeof *tokens);
    lens = calloc(n, sizeof *lens);
    if (!tokens || !lens) {
        rc = llm_fail(LLM_ERR_NOMEM, "out of memory");
        goto done;
    }
    for (size_t i = 0; !rc && i < n; i++)
        rc = llm_gguf_arr_str(g, "tokenizer.ggml.tokens", i, &tokens[i], &lens[i]);
    if (rc)
        goto done;
    if ((rc = per_token_arr(g, path, "tokenizer.ggml.scores", "scores", n, sizeof *scores,
                            (void **)&scores)))
        goto done;
    if (scores) {
        for (size_t i = 0; !rc && i < n; i++) {
            double d;
            rc = llm_gguf_arr_float(g, "tokenizer.ggml.scores", i, &d);
            scores[i] = (float)d;
        }
        if (rc)
            goto done;
    }
    if ((rc = per_token_arr(g, path, "tokenizer.ggml.token_type", "token types", n,
                            sizeof *types, (void **)&types)))
        goto done;
    if (types) {
        for (size_t i = 0; !rc && i < n; i++) {
            int64_t t;
            rc = llm_gguf_arr_int(g, "tokenizer.ggml.token_type", i, &t);
            if (!rc && (t < 0 || t > 6))
                rc = llm_fail(LLM_ERR_FORMAT, "'%s': token %zu has type %lld", path, i,
                              (long long)t);
            types[i] = (int32_t)t;
        }
        if (rc)
            goto done;
    }
    if (llm_gguf_get_arr(g, "tokenizer.ggml.merges", &et, &nm) == LLM_OK) {
        if (et != LLM_GGUF_T_STRING) {
            rc = llm_fail(LLM_ERR_FORMAT, "'%s': 'tokenizer.ggml.merges' is not strings", path);
            goto done;
        }
        if (nm && !(merges = calloc(nm, sizeof *merges))) {
            rc = llm_fail(LLM_ERR_NOMEM, "out of memory");
            goto done;
        }
        for (size_t i = 0; !rc && i < nm; i++)
            rc = llm_gguf_arr_str(g, "tokenizer.ggml.merges", i, &merges[i], &len);
        if (rc)
            goto done;
    }
    if (llm_gguf_get_str(g, "tokenizer.ggml.pre", &v.pre, &len) != LLM_OK)
        v.pre = NULL;
    static const char *const id_keys[] = {
        "tokenizer.ggml.bos_token_id", "tokenizer.ggml.eos_token_id",
        "tokenizer.ggml.unknown_token_id", "tokenizer.ggml.padding_token_id"
    };
    int *ids[] = { &v.bos_id, &v.eos_id, &v.unk_id, &v.pad_id };
    for (size_t i = 0; i < 4; i++)
        if ((rc = gguf_key_int(g, path, id_keys[i], 0, 0, (int64_t)n - 1, ids[i])))
            goto done;
    static const char *const flag_keys[] = {
        "tokenizer.ggml.add_bos_token", "tokenizer.ggml.add_eos_token",
        "tokenizer.ggml.add_space_prefix"
    };
    int *flags[] = { &v.add_bos, &v.add_eos, &v.add_space_prefix };
    for (size_t i = 0; i < 3; i++) {
        int b;
        rc = llm_gguf_get_bool(g, flag_keys[i], &b);
        if (rc == LLM_ERR_RANGE) {
            rc = LLM_OK;
            continue;
        }
        if (rc)
            goto done;
        *flags[i] = b;
    }
    v.tokens = tokens;
    v.token_lens = lens;
    v.n_tokens = n;
    v.scores = scores;
    v.types = types;
    v.merges = merges;
    v.n_merges = nm;
    rc = llm_tok_from_vocab(&v, path, out);
    goto done;
arr_fail:
    if (rc == LLM_ERR_RANGE)
        rc = llm_fail(LLM_ERR_FORMAT, "'%s': metadata has no 'tokenizer.ggml.tokens'", path);
done:
    free(tokens);
    free(lens);
    free(scores);
    free(types);
    free(merges);
    llm_gguf_close(g);
    return rc;
}

/* ------------------------------------------------------- Hugging Face folder */

/* Reads dir/name whole into a NUL-terminated buffer (at most `max` bytes);
 * LLM_ERR_RANGE when it does not exist. */
static int read_small(const char *dir, const char *name, size_t max, char **buf, size_t *len,
                      char *path, size_t cap)
{
    *buf = NULL;
    if ((size_t)snprintf(path, cap, "%s/%s", dir, name) >= cap)
        return llm_fail(LLM_ERR_INVALID, "'%s': path too long", dir);
    FILE *f = fopen(path, "rb");
    if (!f) {
        if (errno == ENOENT)
            return LLM_ERR_RANGE;
        return llm_fail(LLM_ERR_IO, "cannot open '%s': %s", path, strerror(errno));
    }
    llm_buf b = { 0 };
    char chunk[65536];
    size_t got;
    int rc = LLM_OK;
    while (!rc && (got = fread(chunk, 1, sizeof chunk, f)) > 0) {
        if (b.len + got > max)
            rc = llm_fail(LLM_ERR_FORMAT, "'%s': larger than %zu bytes", path, max);
        else
            rc = llm_buf_append(&b, chunk, got);
    }
    if (!rc && ferror(f))
        rc = llm_fail(LLM_ERR_IO, "cannot read '%s': %s", path, strerror(errno));
    fclose(f);
    if (!rc)
        rc = llm_buf_append(&b, "", 1);
    if (rc) {
        llm_buf_free(&b);
        return rc;
    }
    *buf = b.data;
    *len = b.len - 1;
    return LLM_OK;
}

static int json_int(const llm_json_node *o, const char *path, const char *key, int required,
                    int64_t lo, int64_t hi, int *out)
{
    const llm_json_node *n = llm_json_get(o, key);
    int64_t v;
    if (!n || n->type == LLM_JSON_NULL) {
        if (required)
            return llm_fail(LLM_ERR_FORMAT, "'%s': no \"%s\"", path, key);
        return LLM_OK;
    }
    if (llm_json_int64(n, &v) != 0 || v < lo || v > hi)
        return llm_fail(LLM_ERR_FORMAT, "'%s': \"%s\" is not an integer in [%lld, %lld]",
                        path, key, (long long)lo, (long long)hi);
    *out = (int)v;
    return LLM_OK;
}

static int json_num(const llm_json_node *o, const char *path, const char *key, double *out)
{
    const llm_json_node *n = llm_json_get(o, key);
    if (!n || n->type == LLM_JSON_NULL)
        return LLM_OK;
    if (llm_json_double(n, out) != 0 || !isfinite(*out))
        return llm_fail(LLM_ERR_FORMAT, "'%s': \"%s\" is not a number", path, key);
    return LLM_OK;
}

/* A boolean member: *out unchanged when absent or null. */
static int json_bool(const llm_json_node *o, const char *path, const char *key, int *out)
{
    const llm_json_node *n = llm_json_get(o, key);
    if (!n || n->type == LLM_JSON_NULL)
        return LLM_OK;
    if (n->type != LLM_JSON_TRUE && n->type != LLM_JSON_FALSE)
        return llm_fail(LLM_ERR_FORMAT, "'%s': \"%s\" is not true or false", path, key);
    *out = n->type == LLM_JSON_TRUE;
    return LLM_OK;
}

static int json_is(const llm_json_node *o, const char *key, const char *s)
{
    const llm_json_node *n = llm_json_get(o, key);
    return n && n->type == LLM_JSON_STRING && strcmp(n->str, s) == 0;
}

/* config.json of a LlamaForCausalLM into *c. */
static int hf_config(const char *dir, llm_config *c)
{
    char path[4096], *text;
    size_t len;
    int rc = read_small(dir, "config.json", 1 << 20, &text, &len, path, sizeof path);
    if (rc == LLM_ERR_RANGE)
        return llm_fail(LLM_ERR_FORMAT, "'%s': not a model folder (no config.json)", dir);
    if (rc)
        return rc;
    llm_json *j = NULL;
    if ((rc = llm_json_parse(text, len, path, 0, &j)))
        goto done;
    const llm_json_node *o = llm_json_root(j);
    if (o->type != LLM_JSON_OBJECT) {
        rc = llm_fail(LLM_ERR_FORMAT, "'%s': not a JSON object", path);
        goto done;
    }
    if (!json_is(o, "model_type", "llama")) {
        const llm_json_node *mt = llm_json_get(o, "model_type");
        rc = llm_fail(LLM_ERR_UNSUPPORTED, "'%s': model_type %s%s%s is not supported (only "
                      "'llama')", path, mt && mt->type == LLM_JSON_STRING ? "'" : "",
                      mt && mt->type == LLM_JSON_STRING ? mt->str : "(missing)",
                      mt && mt->type == LLM_JSON_STRING ? "'" : "");
        goto done;
    }
    memset(c, 0, sizeof *c);
    c->rope_base = 10000.0;
    c->norm_eps = 1e-6;       /* LlamaConfig's default */
    const int big = 1 << 20;
    if ((rc = json_int(o, path, "hidden_size", 1, 2, big, &c->dim)) ||
        (rc = json_int(o, path, "intermediate_size", 1, 1, big, &c->ffn_dim)) ||
        (rc = json_int(o, path, "num_hidden_layers", 1, 1, 1024, &c->n_layers)) ||
        (rc = json_int(o, path, "num_attention_heads", 1, 1, big, &c->n_heads)) ||
        (rc = json_int(o, path, "vocab_size", 1, 1, 1 << 24, &c->vocab_size)) ||
        (rc = json_int(o, path, "max_position_embeddings", 1, 1, 1 << 16, &c->context)))
        goto done;
    c->n_kv_heads = c->n_heads;
    int tied = 0;    /* LlamaConfig's default */
    if ((rc = json_int(o, path, "num_key_value_heads", 0, 1, big, &c->n_kv_heads)) ||
        (rc = json_num(o, path, "rope_theta", &c->rope_base)) ||
        (rc = json_num(o, path, "rms_norm_eps", &c->norm_eps)) ||
        (rc = json_bool(o, path, "tie_word_embeddings", &tied)))
        goto done;
    c->tied = tied;
    if (c->dim % c->n_heads) {
        rc = llm_fail(LLM_ERR_FORMAT, "'%s': %d heads do not divide hidden_size %d", path,
                      c->n_heads, c->dim);
        goto done;
    }
    int hd = c->dim / c->n_heads, h = hd;
    if ((rc = json_int(o, path, "head_dim", 0, 1, big, &h)))
        goto done;
    if (h != hd) {
        rc = llm_fail(LLM_ERR_UNSUPPORTED, "'%s': head_dim %d differs from hidden_size / "
                      "num_attention_heads (%d), which is not supported", path, h, hd);
        goto done;
    }
    const llm_json_node *n;
    if ((n = llm_json_get(o, "hidden_act")) && !json_is(o, "hidden_act", "silu")) {
        rc = llm_fail(LLM_ERR_UNSUPPORTED, "'%s': hidden_act %s is not supported (silu)", path,
                      n->type == LLM_JSON_STRING ? n->str : "(not a string)");
        goto done;
    }
    static const char *const off[] = { "attention_bias", "mlp_bias" };
    for (size_t i = 0; i < 2; i++) {
        int b = 0;
        if ((rc = json_bool(o, path, off[i], &b)))
            goto done;
        if (b) {
            rc = llm_fail(LLM_ERR_UNSUPPORTED, "'%s': %s is not supported", path, off[i]);
            goto done;
        }
    }
    /* transformers 5 writes "rope_parameters" {"rope_theta", "rope_type"};
     * earlier ones "rope_theta" and "rope_scaling". Only the plain rotary
     * embedding ("default") is implemented. */
    static const char *const rope_keys[] = { "rope_parameters", "rope_scaling" };
    for (size_t i = 0; i < 2; i++) {
        if (!(n = llm_json_get(o, rope_keys[i])) || n->type == LLM_JSON_NULL)
            continue;
        const llm_json_node *ty = n->type == LLM_JSON_OBJECT ? llm_json_get(n, "rope_type") : NULL;
        if (!ty && n->type == LLM_JSON_OBJECT)
            ty = llm_json_get(n, "type");
        if (n->type != LLM_JSON_OBJECT || (ty && !json_is(n, ty->key, "default")) ||
            (!ty && i == 1)) {
            rc = llm_fail(LLM_ERR_UNSUPPORTED, "'%s': %s of type %s is not supported (only "
                          "default rotary embedding)", path, rope_keys[i],
                          ty && ty->type == LLM_JSON_STRING ? ty->str : "(unknown)");
            goto done;
        }
        if ((rc = json_num(n, path, "rope_theta", &c->rope_base)))
            goto done;
    }
    if (llm_config_check(c) != LLM_OK) {
        rc = llm_fail_cause(LLM_ERR_FORMAT, "'%s': unusable llama config", path);
    }
done:
    llm_json_free(j);
    free(text);
    return rc;
}

/* Converts n elements of a safetensors tensor to fp32. */
static int st_to_f32(const llm_st_tensor *t, float *dst, size_t n)
{
    const unsigned char *p = t->data;
    switch (t->dtype) {
    case LLM_DT_F32:
        memcpy(dst, p, n * sizeof *dst);
        return LLM_OK;
    case LLM_DT_F16:
        for (size_t i = 0; i < n; i++)
            dst[i] = llm_half_to_float((uint16_t)(p[2 * i] | p[2 * i + 1] << 8));
        return LLM_OK;
    case LLM_DT_BF16:
        for (size_t i = 0; i < n; i++) {
            uint32_t u = (uint32_t)(p[2 * i] | p[2 * i + 1] << 8) << 16;
            memcpy(dst + i, &u, sizeof u);
        }
        return LLM_OK;
    default:
        return llm_fail(LLM_ERR_UNSUPPORTED, "tensor '%s' is %s (F32, F16 and BF16 are "
                        "supported)", t->name, llm_dtype_name(t->dtype));
    }
}

#define HF_MAX_SHARDS 1024

/* The safetensors files of the folder: model.safetensors, or the shards
 * that model.safetensors.index.json names. */
static int hf_open_shards(const char *dir, llm_st ***out, size_t *n_out)
{
    char path[4096], *text;
    size_t len;
    *out = NULL;
    *n_out = 0;
    int rc = read_small(dir, "model.safetensors.index.json", 64 << 20, &text, &len, path,
                        sizeof path);
    llm_st **v = NULL;
    size_t n = 0;
    if (rc == LLM_ERR_RANGE) {
        if ((size_t)snprintf(path, sizeof path, "%s/model.safetensors", dir) >= sizeof path)
            return llm_fail(LLM_ERR_INVALID, "'%s': path too long", dir);
        if (!(v = calloc(1, sizeof *v)))
            return llm_fail(LLM_ERR_NOMEM, "out of memory");
        if ((rc = llm_st_open(path, &v[0]))) {
            free(v);
            return rc;
        }
        *out = v;
        *n_out = 1;
        return LLM_OK;
    }
    if (rc)
        return rc;
    llm_json *j = NULL;
    const llm_json_node *wm;
    if ((rc = llm_json_parse(text, len, path, 0, &j)))
        goto done;
    wm = llm_json_get(llm_json_root(j), "weight_map");
    if (!wm || wm->type != LLM_JSON_OBJECT) {
        rc = llm_fail(LLM_ERR_FORMAT, "'%s': no \"weight_map\" object", path);
        goto done;
    }
    /* The distinct file names, each opened once. */
    const char **files = calloc(wm->count ? wm->count : 1, sizeof *files);
    if (!files) {
        rc = llm_fail(LLM_ERR_NOMEM, "out of memory");
        goto done;
    }
    size_t nf = 0;
    for (const llm_json_node *e = wm->child; e && !rc; e = e->next) {
        if (e->type != LLM_JSON_STRING || strlen(e->str) != e->len || !e->len ||
            strchr(e->str, '/') || strcmp(e->str, "..") == 0) {
            rc = llm_fail(LLM_ERR_FORMAT, "'%s': weight_map names a bad file for '%s'", path,
                          e->key);
            break;
        }
        size_t k = 0;
        while (k < nf && strcmp(files[k], e->str) != 0)
            k++;
        if (k == nf) {
            if (nf == HF_MAX_SHARDS) {
                rc = llm_fail(LLM_ERR_FORMAT, "'%s': more than %d shards", path,
                              HF_MAX_SHARDS);
                break;
            }
            files[nf++] = e->str;
        }
    }
    if (!rc && !(v = calloc(nf ? nf : 1, sizeof *v)))
        rc = llm_fail(LLM_ERR_NOMEM, "out of memory");
    for (size_t k = 0; !rc && k < nf; k++) {
        char sp[4096];
        if ((size_t)snprintf(sp, sizeof sp, "%s/%s", dir, files[k]) >= sizeof sp)
            rc = llm_fail(LLM_ERR_INVALID, "'%s': path too long", dir);
        else if (!(rc = llm_st_open(sp, &v[k])))
            n++;
    }
    free(files);
done:
    llm_json_free(j);
    free(text);
    if (rc) {
        for (size_t k = 0; k < n; k++)
            llm_st_close(v[k]);
        free(v);
        return rc;
    }
    *out = v;
    *n_out = n;
    return LLM_OK;
}

/* chat_template.jinja, else tokenizer_config.json's "chat_template" (a
 * string, or a list of {"name", "template"} of which "default" counts). */
static int hf_chat(const char *dir, llm_model *m)
{
    char path[4096], *text;
    size_t len;
    /* transformers 4.43 and later save the template as a file of its own. */
    int rc = read_small(dir, "chat_template.jinja", 16 << 20, &text, &len, path, sizeof path);
    if (rc == LLM_OK) {
        rc = llm_model_set_chat(m, llm_chat_detect(text));
        if (!rc)
            rc = chat_default_system(text, m);
        free(text);
        return rc;
    }
    if (rc != LLM_ERR_RANGE)
        return rc;
    rc = read_small(dir, "tokenizer_config.json", 16 << 20, &text, &len, path, sizeof path);
    if (rc == LLM_ERR_RANGE)
        return LLM_OK;
    if (rc)
        return rc;
    llm_json *j = NULL;
    if (!(rc = llm_json_parse(text, len, path, 0, &j))) {
        const llm_json_node *t = llm_json_get(llm_json_root(j), "chat_template");
        const char *s = NULL;
        if (t && t->type == LLM_JSON_STRING)
            s = t->str;
        for (const llm_json_node *e = t && t->type == LLM_JSON_ARRAY ? t->child : NULL; e;
             e = e->next)
            if (json_is(e, "name", "default") && llm_json_get(e, "template") &&
                llm_json_get(e, "template")->type == LLM_JSON_STRING)
                s = llm_json_get(e, "template")->str;
        rc = llm_model_set_chat(m, llm_chat_detect(s));
        if (!rc)
            rc = chat_default_system(s, m);
    }
    llm_json_free(j);
    free(text);
    return rc;
}

int llm_hf_model_load(const char *dir, const char *device, llm_model **out)
{
    *out = NULL;
    llm_config c;
    llm_model *m = NULL;
    llm_st **sh = NULL;
    size_t nsh = 0;
    unsigned char *seen = NULL;
    float *stage = NULL;
    int rc = hf_config(dir, &c);
    if (rc || (rc = hf_open_shards(dir, &sh, &nsh)))
        goto done;
    /* As for GGUF: no allocation for weights the files do not hold. */
    uint64_t have = 0;
    for (size_t s = 0; s < nsh; s++)
        for (size_t i = 0; i < llm_st_count(sh[s]); i++) {
            const llm_st_tensor *t = llm_st_at(sh[s], i);
            size_t es = llm_dtype_size(t->dtype);
            have += es ? t->nbytes / es : 0;
        }
    if ((uint64_t)llm_config_params(&c) > have) {
        rc = llm_fail(LLM_ERR_FORMAT, "'%s': config.json needs %lld weights, the safetensors "
                      "files hold %llu", dir, (long long)llm_config_params(&c),
                      (unsigned long long)have);
        goto done;
    }
    if ((rc = import_begin(&c, device, &m, &seen, &stage)))
        goto done;
    char ours[LLM_TENSOR_NAME];
    for (size_t s = 0; !rc && s < nsh; s++)
        for (size_t i = 0; !rc && i < llm_st_count(sh[s]); i++) {
            const llm_st_tensor *t = llm_st_at(sh[s], i);
            /* Buffers some exporters keep: derived, not weights. */
            if (strstr(t->name, "rotary_emb.inv_freq"))
                continue;
            int layer = llm_tensor_rename(t->name, LLM_NAMES_HF, LLM_NAMES_OURS, ours,
                                          sizeof ours);
            size_t k = 0;
            if (layer == -2 || layer >= c.n_layers)
                k = m->n_tensors;
            while (k < m->n_tensors && strcmp(m->tensors[k].name, ours) != 0)
                k++;
            if (k == m->n_tensors) {
                /* A tied model may still carry lm_head: it must equal the embedding. */
                if (c.tied && strcmp(t->name, "lm_head.weight") == 0)
                    continue;
                rc = llm_fail(LLM_ERR_UNSUPPORTED, "'%s': tensor '%s' is not part of a llama "
                              "model this program runs", dir, t->name);
                break;
            }
            const llm_tensor_desc *d = &m->tensors[k];
            int ok = t->ndim == d->ndim && t->shape[0] == d->shape[0] &&
                     (d->ndim == 1 || t->shape[1] == d->shape[1]);
            if (!ok) {
                rc = llm_fail(LLM_ERR_FORMAT, "'%s': tensor '%s' has the wrong shape for "
                              "config.json", dir, t->name);
                break;
            }
            if (seen[k]++) {
                rc = llm_fail(LLM_ERR_FORMAT, "'%s': tensor '%s' appears twice", dir, t->name);
                break;
            }
            if ((rc = st_to_f32(t, stage, d->numel))) {
                rc = llm_fail_cause(rc, "'%s'", dir);
                break;
            }
            if (strstr(ours, ".attention.wq.") || strstr(ours, ".attention.wk."))
                llm_hf_permute_rows(stage, (int)d->shape[0], (int)d->shape[1], m->hd, 0);
            m->k->upload(m->params + d->offset, stage, d->numel * sizeof *stage);
        }
    if (!rc)
        rc = check_complete(m, seen, dir, LLM_NAMES_HF);
    if (!rc)
        rc = hf_chat(dir, m);
done:
    for (size_t s = 0; s < nsh; s++)
        llm_st_close(sh[s]);
    free(sh);
    return import_end(rc, m, seen, stage, out);
}

/* A special token of tokenizer_config.json ("bos_token": "<s>" or
 * {"content": "<s>", ...}) as an id; -2 when absent or null. */
static int hf_special_id(const llm_json_node *o, const char *key, const llm_tok *t,
                         const char *path, int *id)
{
    const llm_json_node *n = llm_json_get(o, key);
    *id = -2;
    if (n && n->type == LLM_JSON_OBJECT)
        n = llm_json_get(n, "content");
    if (!n || n->type == LLM_JSON_NULL)
        return LLM_OK;
    if (n->type != LLM_JSON_STRING)
        return llm_fail(LLM_ERR_FORMAT, "'%s': \"%s\" is not a string", path, key);
    if ((*id = llm_tok_piece_id(t, n->str)) < 0)
        return llm_fail(LLM_ERR_FORMAT, "'%s': %s '%s' is not in the vocabulary", path, key,
                        n->str);
    return LLM_OK;
}

/* tokenizer_config.json's special tokens and add_bos_token/add_eos_token
 * over what tokenizer.json says. */
static int hf_tok_config(const char *dir, llm_tok *t)
{
    char path[4096], *text;
    size_t len;
    int rc = read_small(dir, "tokenizer_config.json", 16 << 20, &text, &len, path,
                        sizeof path);
    if (rc == LLM_ERR_RANGE)
        return LLM_OK;
    if (rc)
        return rc;
    llm_json *j = NULL;
    int ids[LLM_BPE_N_SPECIAL];
    for (int i = 0; i < LLM_BPE_N_SPECIAL; i++)
        ids[i] = -2;
    if (!(rc = llm_json_parse(text, len, path, 0, &j))) {
        const llm_json_node *o = llm_json_root(j);
        int ab = -2, ae = -2;
        if (!(rc = hf_special_id(o, "bos_token", t, path, &ids[LLM_BPE_BOS])) &&
            !(rc = hf_special_id(o, "eos_token", t, path, &ids[LLM_BPE_EOS])) &&
            !(rc = hf_special_id(o, "unk_token", t, path, &ids[LLM_BPE_UNK])) &&
            !(rc = hf_special_id(o, "pad_token", t, path, &ids[LLM_BPE_PAD])) &&
            !(rc = json_bool(o, path, "add_bos_token", &ab)) &&
            !(rc = json_bool(o, path, "add_eos_token", &ae))) {
            ids[LLM_BPE_ADD_BOS] = ab;
            ids[LLM_BPE_ADD_EOS] = ae;
            rc = llm_tok_set_special(t, ids);
        }
    }
    llm_json_free(j);
    free(text);
    return rc;
}

int llm_hf_tok_load(const char *dir, llm_tok **out)
{
    *out = NULL;
    char path[4096];
    struct stat st;
    if ((size_t)snprintf(path, sizeof path, "%s/tokenizer.json", dir) >= sizeof path)
        return llm_fail(LLM_ERR_INVALID, "'%s': path too long", dir);
    if (stat(path, &st) == 0) {
        int rc = llm_tok_load_hf_json(path, out);
        if (!rc && (rc = hf_tok_config(dir, *out))) {
            llm_tok_free(*out);
            *out = NULL;
        }
        return rc;
    }
    snprintf(path, sizeof path, "%s/tokenizer.model", dir);
    if (stat(path, &st) == 0)
        return llm_tok_load(path, out);
    return llm_fail(LLM_ERR_FORMAT, "'%s': the folder has neither tokenizer.json nor "
                    "tokenizer.model", dir);
}
