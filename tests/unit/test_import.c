/* test_import.c: pretrained models of other formats read by llm_model_load().
 * The PyTorch reference states of tests/fixtures (make_reference.py) are
 * written as a GGUF file (F32, F16, Q8_0 tensors; llama.cpp's names and
 * shapes) and as a Hugging Face folder (config.json + model.safetensors,
 * F32 and BF16, q/k rows in Hugging Face's rotate-half order, the tied
 * model also carrying lm_head), and what we load must give PyTorch's logits
 * (F32), or exactly the weights that the rounded file holds (F16, BF16,
 * Q8_0). Hostile and unsupported variants are refused with the file and the
 * reason named. */
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "format/gguf.h"
#include "half.h"
#include "format/import.h"
#include "llm.h"
#include "testparam.h"

static int failures;

#define FAIL(...) do { failures++; printf("FAIL "); printf(__VA_ARGS__); printf("\n"); } while (0)
#define CHECK_RC(call) do { int rc_ = (call); if (rc_ != LLM_OK) { \
    printf("FAIL %s:%d: %s: %s\n", __FILE__, __LINE__, #call, llm_errmsg()); exit(1); } } while (0)

typedef struct {
    llm_st *f;
    llm_config c;
} fixture;

static int meta_i(const llm_st *f, const char *k)
{
    const char *s = llm_st_meta(f, k);
    return s ? atoi(s) : -1;
}

static void fixture_open(fixture *x, const char *path)
{
    CHECK_RC(llm_st_open(path, &x->f));
    llm_config *c = &x->c;
    memset(c, 0, sizeof *c);
    c->vocab_size = meta_i(x->f, "vocab_size");
    c->dim = meta_i(x->f, "dim");
    c->n_layers = meta_i(x->f, "n_layers");
    c->n_heads = meta_i(x->f, "n_heads");
    c->n_kv_heads = meta_i(x->f, "n_kv_heads");
    c->ffn_dim = meta_i(x->f, "ffn_dim");
    c->context = meta_i(x->f, "context");
    c->rope_base = strtod(llm_st_meta(x->f, "rope_base"), NULL);
    c->norm_eps = strtod(llm_st_meta(x->f, "norm_eps"), NULL);
    c->tied = meta_i(x->f, "tied");
}

/* Our parameter names in file order, through a throwaway model. */
static llm_model *shape_model(const llm_config *c)
{
    llm_model *m;
    CHECK_RC(llm_model_create(c, 0, "cpu", &m));
    return m;
}

/* What a weight becomes through a file of `type`. */
static void round_trip(int type, const float *src, float *dst, size_t n)
{
    if (type == LLM_GGUF_F32) {
        memcpy(dst, src, n * sizeof *dst);
        return;
    }
    size_t nb;
    CHECK_RC(llm_gguf_type_nbytes(type, n, &nb));
    void *q = malloc(nb);
    CHECK_RC(llm_gguf_quantize(type, src, n, q, nb));
    CHECK_RC(llm_gguf_dequantize(type, q, nb, dst, n));
    free(q);
}

enum { BROKEN_NONE, BROKEN_ARCH, BROKEN_BIAS, BROKEN_MISSING, BROKEN_ROPE, BROKEN_SHAPE,
       BROKEN_TYPE };

/* The fixture as a GGUF file: norms always F32 (as llama.cpp keeps them),
 * matrices of `type`. */
static void write_gguf(const fixture *x, const char *path, int type, int broken)
{
    const llm_config *c = &x->c;
    llm_gguf_writer *w;
    CHECK_RC(llm_gguf_writer_new(&w));
    CHECK_RC(llm_gguf_writer_kv_str(w, "general.architecture",
                                    broken == BROKEN_ARCH ? "gpt2" : "llama"));
    CHECK_RC(llm_gguf_writer_kv_u32(w, "llama.block_count", (uint32_t)c->n_layers));
    CHECK_RC(llm_gguf_writer_kv_u32(w, "llama.embedding_length", (uint32_t)c->dim));
    CHECK_RC(llm_gguf_writer_kv_u32(w, "llama.feed_forward_length", (uint32_t)c->ffn_dim));
    CHECK_RC(llm_gguf_writer_kv_u32(w, "llama.attention.head_count", (uint32_t)c->n_heads));
    CHECK_RC(llm_gguf_writer_kv_u32(w, "llama.attention.head_count_kv",
                                    (uint32_t)c->n_kv_heads));
    CHECK_RC(llm_gguf_writer_kv_u32(w, "llama.context_length", (uint32_t)c->context));
    CHECK_RC(llm_gguf_writer_kv_f32(w, "llama.rope.freq_base", (float)c->rope_base));
    CHECK_RC(llm_gguf_writer_kv_f32(w, "llama.attention.layer_norm_rms_epsilon",
                                    (float)c->norm_eps));
    CHECK_RC(llm_gguf_writer_kv_u32(w, "llama.rope.dimension_count",
                                    (uint32_t)(c->dim / c->n_heads)));
    if (broken == BROKEN_ROPE) {
        CHECK_RC(llm_gguf_writer_kv_str(w, "llama.rope.scaling.type", "linear"));
        CHECK_RC(llm_gguf_writer_kv_f32(w, "llama.rope.scaling.factor", 4.0f));
    }
    llm_model *m = shape_model(c);
    for (size_t i = 0; i < llm_model_param_count(m); i++) {
        llm_param p;
        CHECK_RC(llm_model_param_at(m, i, &p));
        char name[96];
        CHECK_RC(llm_tensor_rename(p.name, LLM_NAMES_OURS, LLM_NAMES_GGUF, name,
                                   sizeof name) == -2);
        if (broken == BROKEN_MISSING && strcmp(name, "blk.1.ffn_up.weight") == 0)
            continue;
        const llm_st_tensor *t = llm_st_find(x->f, p.name);
        int ty = p.ndim == 1 ? LLM_GGUF_F32 : type;
        if (broken == BROKEN_TYPE && strcmp(name, "blk.0.attn_k.weight") == 0)
            ty = 16;   /* IQ2_XXS */
        int64_t ne[2] = { p.ndim == 1 ? p.shape[0] : p.shape[1], p.shape[0] };
        if (broken == BROKEN_SHAPE && strcmp(name, "blk.0.attn_v.weight") == 0)
            ne[1] = ne[0] = 32;
        size_t n = (size_t)(ne[0] * (p.ndim == 1 ? 1 : ne[1])), nb;
        if (ty == 16) {
            nb = n / 256 * 66;
            void *q = calloc(1, nb);
            CHECK_RC(llm_gguf_writer_tensor_copy(w, name, ty, p.ndim, ne, q, nb));
            free(q);
            continue;
        }
        CHECK_RC(llm_gguf_type_nbytes(ty, n, &nb));
        void *q = malloc(nb);
        const float *src = t->data;
        float *tmp = NULL;
        if (broken == BROKEN_SHAPE && n != p.numel)
            src = tmp = calloc(n, sizeof *tmp);
        CHECK_RC(llm_gguf_quantize(ty, src, n, q, nb));
        CHECK_RC(llm_gguf_writer_tensor_copy(w, name, ty, p.ndim, ne, q, nb));
        free(q);
        free(tmp);
    }
    if (broken == BROKEN_BIAS) {
        int64_t ne[1] = { c->dim };
        float *z = calloc((size_t)c->dim, sizeof *z);
        CHECK_RC(llm_gguf_writer_tensor_copy(w, "blk.0.attn_q.bias", LLM_GGUF_F32, 1, ne, z,
                                             (size_t)c->dim * sizeof *z));
        free(z);
    }
    llm_model_free(m);
    CHECK_RC(llm_gguf_writer_write(w, path));
    llm_gguf_writer_free(w);
}

/* The logits of `m` on the fixture's batch against `ref` (B, T, V). */
static void check_logits(const char *what, llm_model *m, const fixture *x, const float *want,
                         double tol)
{
    const llm_st_tensor *ids = llm_st_find(x->f, "input_ids");
    int B = (int)ids->shape[0], T = (int)ids->shape[1], V = x->c.vocab_size;
    int32_t *tok = malloc((size_t)B * T * sizeof *tok);
    memcpy(tok, ids->data, (size_t)B * T * sizeof *tok);
    CHECK_RC(llm_model_forward(m, tok, NULL, B, T, NULL));
    const float *got = llm_model_logits(m);
    double worst = 0;
    for (size_t i = 0; i < (size_t)B * T * V; i++)
        worst = fmax(worst, fabs((double)got[i] - want[i]));
    if (!(worst <= tol))
        FAIL("%s: logits differ by up to %g (tolerance %g)", what, worst, tol);
    free(tok);
}

/* Every parameter of `m` equals the fixture's after a trip through `type`. */
static void check_params(const char *what, const llm_model *m, const fixture *x, int type)
{
    for (size_t i = 0; i < llm_model_param_count(m); i++) {
        llm_param p;
        CHECK_RC(llm_model_param_at(m, i, &p));
        const llm_st_tensor *t = llm_st_find(x->f, p.name);
        float *want = malloc(p.numel * sizeof *want);
        float *got = param_get(m, i, LLM_PARAM_DATA);
        round_trip(p.ndim == 1 ? LLM_GGUF_F32 : type, t->data, want, p.numel);
        if (memcmp(want, got, p.numel * sizeof *want) != 0)
            FAIL("%s: parameter '%s' is not what the file holds", what, p.name);
        free(want);
        free(got);
    }
}

static void expect_refused(const char *what, const char *path, int status, const char *needle)
{
    llm_model *m = NULL;
    int rc = llm_model_load(path, "cpu", &m);
    if (rc != status || m)
        FAIL("%s: status %d (%s), expected %d", what, rc, rc ? llm_errmsg() : "loaded", status);
    else if (!strstr(llm_errmsg(), needle) || !strstr(llm_errmsg(), path))
        FAIL("%s: message '%s' lacks '%s' or the file name", what, llm_errmsg(), needle);
    llm_model_free(m);
}

static void test_gguf(const char *fixture_path)
{
    fixture x;
    fixture_open(&x, fixture_path);
    const llm_st_tensor *lt = llm_st_find(x.f, "logits");
    const char *path = "model.gguf";
    static const int types[] = { LLM_GGUF_F32, LLM_GGUF_F16, LLM_GGUF_Q8_0 };
    for (size_t k = 0; k < 3; k++) {
        char what[256];
        snprintf(what, sizeof what, "%s as GGUF %s", fixture_path,
                 llm_gguf_type_name(types[k]));
        /* Q8_0 needs rows of whole 32-element blocks. */
        if (types[k] == LLM_GGUF_Q8_0 && (x.c.dim % 32 || x.c.ffn_dim % 32))
            continue;
        write_gguf(&x, path, types[k], BROKEN_NONE);
        llm_model *m;
        CHECK_RC(llm_model_load(path, "cpu", &m));
        const llm_config *c = llm_model_config(m);
        if (c->n_kv_heads != x.c.n_kv_heads || c->tied != x.c.tied ||
            c->context != x.c.context || c->vocab_size != x.c.vocab_size)
            FAIL("%s: config differs (kv heads %d, tied %d, context %d, vocab %d)", what,
                 c->n_kv_heads, c->tied, c->context, c->vocab_size);
        check_params(what, m, &x, types[k]);
        if (types[k] == LLM_GGUF_F32)
            check_logits(what, m, &x, lt->data, 1e-5);
        llm_model_free(m);
    }
    write_gguf(&x, path, LLM_GGUF_F32, BROKEN_ARCH);
    expect_refused("GGUF gpt2", path, LLM_ERR_UNSUPPORTED, "architecture 'gpt2'");
    write_gguf(&x, path, LLM_GGUF_F32, BROKEN_BIAS);
    expect_refused("GGUF with a bias", path, LLM_ERR_UNSUPPORTED, "blk.0.attn_q.bias");
    write_gguf(&x, path, LLM_GGUF_F32, BROKEN_MISSING);
    expect_refused("GGUF missing a tensor", path, LLM_ERR_FORMAT, "blk.1.ffn_up.weight");
    write_gguf(&x, path, LLM_GGUF_F32, BROKEN_ROPE);
    expect_refused("GGUF with rope scaling", path, LLM_ERR_UNSUPPORTED, "rope scaling 'linear'");
    write_gguf(&x, path, LLM_GGUF_F32, BROKEN_SHAPE);
    expect_refused("GGUF with a wrong shape", path, LLM_ERR_FORMAT, "blk.0.attn_v.weight");
    if (x.c.dim % 256 == 0) {
        write_gguf(&x, path, LLM_GGUF_F32, BROKEN_TYPE);
        expect_refused("GGUF IQ2_XXS", path, LLM_ERR_UNSUPPORTED, "IQ2_XXS");
    }
    unlink(path);
    llm_st_close(x.f);
}

/* ------------------------------------------------------------ HF folders */

static void write_file(const char *path, const char *text)
{
    FILE *f = fopen(path, "w");
    if (!f || fputs(text, f) < 0 || fclose(f) != 0) {
        printf("FAIL cannot write '%s'\n", path);
        exit(1);
    }
}

static uint16_t to_bf16(float v)
{
    uint32_t u;
    memcpy(&u, &v, sizeof u);
    return (uint16_t)((u + 0x7fffu + (u >> 16 & 1)) >> 16);   /* nearest even; finite */
}

static float from_bf16(uint16_t h)
{
    uint32_t u = (uint32_t)h << 16;
    float v;
    memcpy(&v, &u, sizeof v);
    return v;
}

/* The fixture as a Hugging Face folder; extra: a config.json member added. */
static void write_hf(const fixture *x, const char *dir, int bf16, const char *extra)
{
    const llm_config *c = &x->c;
    char path[512], cfg[2048];
    mkdir(dir, 0755);
    snprintf(cfg, sizeof cfg,
             "{\"architectures\": [\"LlamaForCausalLM\"], \"model_type\": \"llama\", "
             "\"hidden_size\": %d, \"intermediate_size\": %d, \"num_hidden_layers\": %d, "
             "\"num_attention_heads\": %d, \"num_key_value_heads\": %d, \"vocab_size\": %d, "
             "\"max_position_embeddings\": %d, \"rope_theta\": %.17g, \"rms_norm_eps\": "
             "%.17g, \"tie_word_embeddings\": %s, \"hidden_act\": \"silu\", "
             "\"torch_dtype\": \"float32\"%s}",
             c->dim, c->ffn_dim, c->n_layers, c->n_heads, c->n_kv_heads, c->vocab_size,
             c->context, c->rope_base, c->norm_eps, c->tied ? "true" : "false",
             extra ? extra : "");
    snprintf(path, sizeof path, "%s/config.json", dir);
    write_file(path, cfg);
    llm_model *m = shape_model(c);
    llm_st_writer *w;
    CHECK_RC(llm_st_writer_new(&w));
    size_t np = llm_model_param_count(m);
    void **bufs = calloc(np + 1, sizeof *bufs);
    int hd = c->dim / c->n_heads;
    for (size_t i = 0; i < np; i++) {
        llm_param p;
        CHECK_RC(llm_model_param_at(m, i, &p));
        char name[96];
        CHECK_RC(llm_tensor_rename(p.name, LLM_NAMES_OURS, LLM_NAMES_HF, name,
                                   sizeof name) == -2);
        float *v = malloc(p.numel * sizeof *v);
        memcpy(v, llm_st_find(x->f, p.name)->data, p.numel * sizeof *v);
        if (strstr(p.name, ".wq.") || strstr(p.name, ".wk."))
            llm_hf_permute_rows(v, (int)p.shape[0], (int)p.shape[1], hd, 1);
        if (bf16) {
            uint16_t *h = malloc(p.numel * sizeof *h);
            for (size_t j = 0; j < p.numel; j++)
                h[j] = to_bf16(v[j]);
            free(v);
            bufs[i] = h;
        } else {
            bufs[i] = v;
        }
        CHECK_RC(llm_st_writer_add(w, name, bf16 ? LLM_DT_BF16 : LLM_DT_F32, p.ndim, p.shape,
                                   bufs[i]));
    }
    /* transformers saves tied models without lm_head, but older exports
     * keep it: it must be accepted. */
    if (c->tied) {
        llm_param p;
        CHECK_RC(llm_model_param_find(m, "tok_embeddings.weight", &p, NULL));
        CHECK_RC(llm_st_writer_add(w, "lm_head.weight", bf16 ? LLM_DT_BF16 : LLM_DT_F32,
                                   2, p.shape, bufs[0]));
    }
    snprintf(path, sizeof path, "%s/model.safetensors", dir);
    CHECK_RC(llm_st_writer_write(w, path));
    llm_st_writer_free(w);
    for (size_t i = 0; i < np; i++)
        free(bufs[i]);
    free(bufs);
    llm_model_free(m);
}

static void test_hf(const char *fixture_path)
{
    fixture x;
    fixture_open(&x, fixture_path);
    const llm_st_tensor *lt = llm_st_find(x.f, "logits");
    const char *dir = "hf-model";
    char what[256];
    snprintf(what, sizeof what, "%s as a Hugging Face folder", fixture_path);
    write_hf(&x, dir, 0, NULL);
    if (llm_model_format(dir) != LLM_FORMAT_HF)
        FAIL("%s: not seen as a Hugging Face folder", what);
    llm_model *m;
    CHECK_RC(llm_model_load(dir, "cpu", &m));
    check_params(what, m, &x, LLM_GGUF_F32);
    check_logits(what, m, &x, lt->data, 1e-5);
    llm_model_free(m);

    /* BF16: every weight is its bf16 rounding. */
    write_hf(&x, dir, 1, NULL);
    CHECK_RC(llm_model_load(dir, "cpu", &m));
    for (size_t i = 0; i < llm_model_param_count(m); i++) {
        llm_param p;
        CHECK_RC(llm_model_param_at(m, i, &p));
        const float *src = llm_st_find(x.f, p.name)->data;
        float *d = param_get(m, i, LLM_PARAM_DATA);
        for (size_t j = 0; j < p.numel; j++)
            if (d[j] != from_bf16(to_bf16(src[j]))) {
                FAIL("%s BF16: '%s'[%zu] is %g, not %g", what, p.name, j, d[j],
                     from_bf16(to_bf16(src[j])));
                break;
            }
        free(d);
    }
    llm_model_free(m);

    char path[512];
    write_hf(&x, dir, 0, ", \"rope_scaling\": {\"type\": \"linear\", \"factor\": 2.0}");
    expect_refused("HF rope_scaling", dir, LLM_ERR_UNSUPPORTED, "rope_scaling of type linear");
    write_hf(&x, dir, 0, ", \"rope_parameters\": {\"rope_type\": \"yarn\", \"factor\": 4.0}");
    expect_refused("HF rope_parameters", dir, LLM_ERR_UNSUPPORTED,
                   "rope_parameters of type yarn");
    write_hf(&x, dir, 0, ", \"attention_bias\": true");
    expect_refused("HF attention_bias", dir, LLM_ERR_UNSUPPORTED, "attention_bias");
    write_hf(&x, dir, 0, ", \"head_dim\": 2");
    expect_refused("HF head_dim", dir, LLM_ERR_UNSUPPORTED, "head_dim 2");
    snprintf(path, sizeof path, "%s/config.json", dir);
    write_file(path, "{\"model_type\": \"mistral\"}");
    expect_refused("HF mistral", dir, LLM_ERR_UNSUPPORTED, "model_type 'mistral'");
    unlink(path);
    expect_refused("HF folder without config.json", dir, LLM_ERR_FORMAT, "config.json");

    /* The tokenizer: tokenizer.json, with tokenizer_config.json's special
     * tokens and flags over it. */
    write_hf(&x, dir, 0, NULL);
    {
        const char *fx = getenv("FIXTURES");
        char src[512], cmd[1400];
        snprintf(src, sizeof src, "%s/bpe_tiny.json", fx ? fx : "tests/fixtures");
        snprintf(cmd, sizeof cmd, "cp '%s' '%s/tokenizer.json'", src, dir);
        if (system(cmd) != 0)
            FAIL("cannot copy bpe_tiny.json");
        snprintf(path, sizeof path, "%s/tokenizer_config.json", dir);
        write_file(path, "{\"bos_token\": \"<|im_start|>\", \"eos_token\": {\"content\": "
                   "\"<|im_end|>\", \"special\": true}, \"pad_token\": null, "
                   "\"add_bos_token\": true, \"chat_template\": \"{{ '<|im_start|>system\\\\n"
                   "Answer in French.<|im_end|>\\\\n' }}<|im_start|>\"}");
        llm_tok *t;
        CHECK_RC(llm_tok_load(dir, &t));
        if (llm_tok_bos_id(t) != llm_tok_piece_id(t, "<|im_start|>") ||
            llm_tok_eos_id(t) != llm_tok_piece_id(t, "<|im_end|>") || !llm_tok_add_bos(t))
            FAIL("HF tokenizer_config.json: bos %d eos %d add_bos %d", llm_tok_bos_id(t),
                 llm_tok_eos_id(t), llm_tok_add_bos(t));
        llm_tok_free(t);
        CHECK_RC(llm_model_load(dir, "cpu", &m));
        const char *sys = llm_model_chat_system(m);
        if (!llm_model_chat_template(m) || strcmp(llm_model_chat_template(m), "chatml") ||
            !sys || strcmp(sys, "Answer in French."))
            FAIL("HF chat template: %s, system '%s'", llm_model_chat_template(m) ?
                 llm_model_chat_template(m) : "none", sys ? sys : "(none)");
        llm_model_free(m);
        write_file(path, "{\"bos_token\": \"<nope>\"}");
        llm_tok *bad = NULL;
        if (llm_tok_load(dir, &bad) != LLM_ERR_FORMAT || bad ||
            !strstr(llm_errmsg(), "<nope>"))
            FAIL("HF bos_token outside the vocabulary: %s", llm_errmsg());
        unlink(path);
        snprintf(path, sizeof path, "%s/tokenizer.json", dir);
        unlink(path);
    }

    /* Sharded: the index names one shard for all. */
    write_hf(&x, dir, 0, NULL);
    char shard[512];
    snprintf(path, sizeof path, "%s/model.safetensors", dir);
    snprintf(shard, sizeof shard, "%s/model-00001-of-00001.safetensors", dir);
    if (rename(path, shard) != 0)
        FAIL("rename");
    snprintf(path, sizeof path, "%s/model.safetensors.index.json", dir);
    write_file(path, "{\"metadata\": {}, \"weight_map\": {\"model.norm.weight\": "
               "\"model-00001-of-00001.safetensors\"}}");
    CHECK_RC(llm_model_load(dir, "cpu", &m));
    check_logits("sharded HF folder", m, &x, lt->data, 1e-5);
    llm_model_free(m);
    write_file(path, "{\"weight_map\": {\"model.norm.weight\": \"../x.safetensors\"}}");
    expect_refused("HF index naming a file outside", dir, LLM_ERR_FORMAT, "bad file");
    unlink(path);
    unlink(shard);
    snprintf(path, sizeof path, "%s/config.json", dir);
    unlink(path);
    rmdir(dir);
    llm_st_close(x.f);
}

static void test_names(void)
{
    char b[96];
    struct { const char *from; int f, t; const char *want; int layer; } cases[] = {
        { "layers.12.attention.wq.weight", LLM_NAMES_OURS, LLM_NAMES_GGUF,
          "blk.12.attn_q.weight", 12 },
        { "blk.0.ffn_gate.weight", LLM_NAMES_GGUF, LLM_NAMES_HF,
          "model.layers.0.mlp.gate_proj.weight", 0 },
        { "lm_head.weight", LLM_NAMES_HF, LLM_NAMES_OURS, "output.weight", -1 },
        { "blk.01.attn_q.weight", LLM_NAMES_GGUF, LLM_NAMES_OURS, NULL, -2 },
        { "blk.0.attn_q.bias", LLM_NAMES_GGUF, LLM_NAMES_OURS, NULL, -2 },
        { "blk.x.attn_q.weight", LLM_NAMES_GGUF, LLM_NAMES_OURS, NULL, -2 },
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        int l = llm_tensor_rename(cases[i].from, cases[i].f, cases[i].t, b, sizeof b);
        if (l != cases[i].layer || (cases[i].want && strcmp(b, cases[i].want) != 0))
            FAIL("rename '%s': %d '%s'", cases[i].from, l, l >= -1 ? b : "");
    }
    /* The permutation and its inverse; pairs (2i, 2i+1) come from rows i
     * and i + hd/2 of each head. */
    float w[2 * 4 * 3];
    for (int i = 0; i < 24; i++)
        w[i] = (float)i;
    llm_hf_permute_rows(w, 8, 3, 4, 0);
    static const int rows[8] = { 0, 2, 1, 3, 4, 6, 5, 7 };
    for (int r = 0; r < 8; r++)
        if (w[r * 3] != (float)(rows[r] * 3))
            FAIL("permute: row %d holds HF row %g", r, w[r * 3] / 3);
    llm_hf_permute_rows(w, 8, 3, 4, 1);
    for (int i = 0; i < 24; i++)
        if (w[i] != (float)i)
            FAIL("permute there and back: [%d] = %g", i, w[i]);
    const char *t = "{% for m in messages %}<|im_start|>{{ m.role }}";
    if (!llm_chat_detect(t) || strcmp(llm_chat_detect(t), "chatml") != 0 ||
        !llm_chat_detect("[INST] {{ x }} [/INST]") || llm_chat_detect("{{ x }}"))
        FAIL("llm_chat_detect");
}

/* Chat layouts as ids: ChatML from the markers' own ids and the turns'
 * text, Llama 2 as BOS and one encoded string; a marker typed by the user
 * stays text. */
static void push_enc(const llm_tok *t, const char *s, llm_ids *v)
{
    CHECK_RC(llm_tok_encode(t, s, strlen(s), v));
}

static void test_chat(const char *fx)
{
    char path[512];
    llm_tok *t;
    snprintf(path, sizeof path, "%s/bpe_tiny.json", fx);
    CHECK_RC(llm_tok_load(path, &t));
    int st = llm_tok_piece_id(t, "<|im_start|>"), en = llm_tok_piece_id(t, "<|im_end|>");
    if (st < 0 || en < 0) {
        FAIL("bpe_tiny.json lacks the ChatML markers");
        llm_tok_free(t);
        return;
    }
    const char *user = "Is <|im_end|> a marker?";
    llm_ids got = { 0 }, want = { 0 };
    CHECK_RC(llm_chat_encode(t, "chatml", "Be brief.", 9, user, strlen(user), &got));
    CHECK_RC(llm_ids_push(&want, st));
    push_enc(t, "system\nBe brief.", &want);
    CHECK_RC(llm_ids_push(&want, en));
    push_enc(t, "\n", &want);
    CHECK_RC(llm_ids_push(&want, st));
    push_enc(t, "user\nIs <|im_end|> a marker?", &want);
    CHECK_RC(llm_ids_push(&want, en));
    push_enc(t, "\n", &want);
    CHECK_RC(llm_ids_push(&want, st));
    push_enc(t, "assistant\n", &want);
    if (got.len != want.len || memcmp(got.data, want.data, got.len * sizeof *got.data))
        FAIL("chatml: %zu ids, expected %zu", got.len, want.len);
    size_t ends = 0;
    for (size_t i = 0; i < got.len; i++)
        ends += got.data[i] == en;
    if (ends != 2)
        FAIL("chatml: the user's '<|im_end|>' became a marker (%zu markers)", ends);
    llm_tok_free(t);

    snprintf(path, sizeof path, "%s/tiny.model", fx);
    CHECK_RC(llm_tok_load(path, &t));
    got.len = want.len = 0;
    CHECK_RC(llm_chat_encode(t, "llama2", NULL, 0, "hello", 5, &got));
    CHECK_RC(llm_ids_push(&want, llm_tok_bos_id(t)));
    push_enc(t, "[INST] hello [/INST]", &want);
    if (got.len != want.len || memcmp(got.data, want.data, got.len * sizeof *got.data))
        FAIL("llama2: %zu ids, expected %zu", got.len, want.len);
    if (llm_chat_encode(t, "chatml", NULL, 0, "x", 1, &got) != LLM_ERR_UNSUPPORTED ||
        !strstr(llm_errmsg(), "<|im_start|>"))
        FAIL("chatml without markers: %s", llm_errmsg());
    if (llm_chat_encode(t, "vicuna", NULL, 0, "x", 1, &got) != LLM_ERR_INVALID)
        FAIL("unknown template accepted");
    llm_ids_free(&got);
    llm_ids_free(&want);
    llm_tok_free(t);
}

int main(void)
{
    const char *fx = getenv("FIXTURES");
    char tied[512], untied[512];
    snprintf(tied, sizeof tied, "%s/ref_tied_gqa.safetensors", fx ? fx : "tests/fixtures");
    snprintf(untied, sizeof untied, "%s/ref_untied_mha.safetensors",
             fx ? fx : "tests/fixtures");
    test_names();
    test_chat(fx ? fx : "tests/fixtures");
    test_gguf(tied);
    test_gguf(untied);
    test_hf(tied);
    test_hf(untied);
    if (failures) {
        printf("%d check(s) failed\n", failures);
        return 1;
    }
    printf("all import checks passed\n");
    return 0;
}
