/* model.c: the Llama-style transformer's weights: config and presets, the
 * parameter block and its named tensors, low-rank adapters, copies in and
 * out. The passes over a batch are in pass.c, the trainer state (gradients,
 * AdamW, dropout) in optim.c, the classifier head in classify.c, saving
 * and loading in model_io.c.
 *
 * Memory: one block of parameters. Each attention and feed-forward layer has
 * its input projections fused ((wq | wk | wv) and (w1 | w3), row-stacked per
 * layer), so one sgemm does what three or two would; every named tensor of
 * the file format is still one contiguous slice of the block. */
#include <math.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

#include "internal.h"
#include "kernels.h"
#include "model.h"
#ifdef LLM_CUDA
#include "cuda/cuda.h"   /* why no GPU can be used */
#endif

/* ------------------------------------------------------------------ config */

static const struct {
    const char *name;
    int dim, n_layers, n_heads, n_kv_heads, ffn_dim, context;
} presets[] = {
    { "tiny", 128, 4, 4, 4, 344, 256 },
    { "small", 288, 6, 6, 6, 768, 256 },      /* llama2.c stories15M */
    { "medium", 512, 8, 8, 8, 1376, 1024 },   /* stories42M */
    { "large", 768, 12, 12, 12, 2048, 1024 }, /* stories110M */
};
#define N_PRESETS (int)(sizeof presets / sizeof presets[0])

const char *llm_config_preset_name(int i)
{
    return i >= 0 && i < N_PRESETS ? presets[i].name : NULL;
}

int llm_config_preset(const char *name, llm_config *c)
{
    for (int i = 0; i < N_PRESETS; i++)
        if (name && strcmp(name, presets[i].name) == 0) {
            int V = c->vocab_size;
            memset(c, 0, sizeof *c);
            c->vocab_size = V;
            c->dim = presets[i].dim;
            c->n_layers = presets[i].n_layers;
            c->n_heads = presets[i].n_heads;
            c->n_kv_heads = presets[i].n_kv_heads;
            c->ffn_dim = presets[i].ffn_dim;
            c->context = presets[i].context;
            c->rope_base = 10000.0;
            c->norm_eps = 1e-5;
            c->tied = 1;
            return LLM_OK;
        }
    return llm_fail(LLM_ERR_INVALID,
                    "unknown preset '%s' (tiny, small, medium, large)",
                    name ? name : "(null)");
}

/* Limits keep every size product well inside int and size_t arithmetic. */
#define MAX_DIM (1 << 16)
#define MAX_VOCAB (1 << 24)

int llm_config_check(const llm_config *c)
{
    if (c->vocab_size < 1 || c->vocab_size > MAX_VOCAB)
        return llm_fail_param(LLM_ERR_INVALID, "vocab_size", "vocabulary size %d must be in "
                              "[1, %d]", c->vocab_size, MAX_VOCAB);
    if (c->dim < 2 || c->dim > MAX_DIM)
        return llm_fail_param(LLM_ERR_INVALID, "dim", "model dimension %d must be in [2, %d]",
                              c->dim, MAX_DIM);
    if (c->n_layers < 1 || c->n_layers > 1024)
        return llm_fail_param(LLM_ERR_INVALID, "n_layers", "number of layers %d must be in "
                              "[1, 1024]", c->n_layers);
    if (c->n_heads < 1 || c->n_heads > c->dim)
        return llm_fail_param(LLM_ERR_INVALID, "n_heads", "number of heads %d must be in "
                              "[1, the model dimension %d]", c->n_heads, c->dim);
    if (c->dim % c->n_heads)
        return llm_fail_param(LLM_ERR_INVALID, "n_heads", "number of heads %d must divide "
                              "the model dimension %d", c->n_heads, c->dim);
    if ((c->dim / c->n_heads) % 2)
        return llm_fail_param(LLM_ERR_INVALID, "n_heads", "head size (model dimension / "
                              "heads = %d/%d = %d) must be even for rotary embeddings",
                              c->dim, c->n_heads, c->dim / c->n_heads);
    if (c->n_kv_heads < 1 || c->n_kv_heads > c->n_heads || c->n_heads % c->n_kv_heads)
        return llm_fail_param(LLM_ERR_INVALID, "n_kv_heads", "number of key/value heads %d "
                              "must divide the number of heads %d", c->n_kv_heads, c->n_heads);
    if (c->ffn_dim < 1 || c->ffn_dim > 4 * MAX_DIM)
        return llm_fail_param(LLM_ERR_INVALID, "ffn_dim", "feed-forward dimension %d must be "
                              "in [1, %d]", c->ffn_dim, 4 * MAX_DIM);
    if (c->context < 1 || c->context > MAX_DIM)
        return llm_fail_param(LLM_ERR_INVALID, "context", "context %d must be in [1, %d]",
                              c->context, MAX_DIM);
    if (!(c->rope_base > 1.0) || !isfinite(c->rope_base))
        return llm_fail(LLM_ERR_INVALID, "rope base (%g) must be finite and > 1", c->rope_base);
    if (!(c->norm_eps > 0.0) || !(c->norm_eps < 1.0))
        return llm_fail(LLM_ERR_INVALID, "norm eps (%g) must be in (0, 1)", c->norm_eps);
    if (c->tied != 0 && c->tied != 1)
        return llm_fail(LLM_ERR_INVALID, "tied (%d) must be 0 or 1", c->tied);
    return LLM_OK;
}

/* Parameter counts per family, in floats. */
static void family_sizes(const llm_config *c, size_t *wte, size_t *norms,
                         size_t *layer2d, size_t *wout)
{
    size_t C = (size_t)c->dim, L = (size_t)c->n_layers, hd = C / (size_t)c->n_heads;
    size_t QS = (size_t)(c->n_heads + 2 * c->n_kv_heads) * hd;
    size_t OS = (size_t)c->n_heads * hd, F = (size_t)c->ffn_dim;
    *wte = (size_t)c->vocab_size * C;
    *norms = 2 * L * C + C;
    *layer2d = L * (QS * C + C * OS + 2 * F * C + C * F);
    *wout = c->tied ? 0 : (size_t)c->vocab_size * C;
}

int64_t llm_config_params(const llm_config *c)
{
    if (llm_config_check(c) != LLM_OK)
        return -1;
    size_t a, b, d, e;
    family_sizes(c, &a, &b, &d, &e);
    return (int64_t)(a + b + d + e);
}

int llm_set_threads(int n)
{
    return llm_kernels_set_threads(n);
}

const char *llm_cpu_level(void)
{
    return llm_kernels_cpu_level();
}

const char *llm_cpu_gemm(void)
{
    return llm_kernels_cpu_gemm();
}

const char *const *llm_cpu_levels(void)
{
    return llm_kernels_cpu_levels(1);
}

/* -------------------------------------------------------------- creation */

static int add_tensor(llm_model *m, const char *name, int ndim, int64_t d0,
                      int64_t d1, float *base)
{
    llm_tensor_desc *t = &m->tensors[m->n_tensors++];
    snprintf(t->name, sizeof t->name, "%s", name);
    t->ndim = ndim;
    t->shape[0] = d0;
    t->shape[1] = ndim == 2 ? d1 : 0;
    t->numel = (size_t)d0 * (size_t)(ndim == 2 ? d1 : 1);
    t->offset = (size_t)(base - m->params);
    return LLM_OK;
}

/* Adapter t's input and output features, and where its output lies in a
 * row of the fused projection (column col of ld floats), which is also the
 * first row of its base weight in the layer's fused weight. */
void llm_lora_dims(const llm_model *m, int t, int *in, int *out, int *col, int *ld)
{
    int C = m->cfg.dim, F = m->cfg.ffn_dim, QD = m->cfg.n_heads * m->hd;
    int KD = m->cfg.n_kv_heads * m->hd;
    switch (t) {
    case LLM_LORA_Q:  *in = C; *out = QD; *col = 0; *ld = m->QS; break;
    case LLM_LORA_K:  *in = C; *out = KD; *col = QD; *ld = m->QS; break;
    case LLM_LORA_V:  *in = C; *out = KD; *col = QD + KD; *ld = m->QS; break;
    case LLM_LORA_O:  *in = m->OS; *out = C; *col = 0; *ld = C; break;
    case LLM_LORA_W1: *in = C; *out = F; *col = 0; *ld = 2 * F; break;
    case LLM_LORA_W2: *in = F; *out = C; *col = 0; *ld = C; break;
    default:          *in = C; *out = F; *col = F; *ld = 2 * F; break;
    }
}

float llm_lora_scale(const llm_model *m)
{
    return (float)(m->lora_alpha / m->lora_rank);
}

/* Layer l's base weight (out, in) under adapter t. */
static float *lora_base(const llm_model *m, int t, int l)
{
    int in, out, col, ld;
    llm_lora_dims(m, t, &in, &out, &col, &ld);
    size_t C = (size_t)m->cfg.dim, F = (size_t)m->cfg.ffn_dim;
    switch (t) {
    case LLM_LORA_Q: case LLM_LORA_K: case LLM_LORA_V:
        return m->wqkv + (size_t)l * m->QS * C + (size_t)col * C;
    case LLM_LORA_O:
        return m->wo + (size_t)l * C * m->OS;
    case LLM_LORA_W2:
        return m->w2 + (size_t)l * C * F;
    default:
        return m->w13 + (size_t)l * 2 * F * C + (size_t)col * C;
    }
}

/* The file's tensors in file order, as slices of the fused families. */
static void build_tensor_table(llm_model *m)
{
    const llm_config *c = &m->cfg;
    int C = c->dim, hd = m->hd, F = c->ffn_dim;
    char name[LLM_TENSOR_NAME];
    m->n_tensors = 0;
    add_tensor(m, "tok_embeddings.weight", 2, c->vocab_size, C, m->wte);
    for (int l = 0; l < c->n_layers; l++) {
        float *qkv = m->wqkv + (size_t)l * m->QS * C;
        float *w13 = m->w13 + (size_t)l * 2 * F * C;
#define T_(fmt, ...) (snprintf(name, sizeof name, fmt, l), add_tensor(m, name, __VA_ARGS__))
        T_("layers.%d.attention_norm.weight", 1, C, 0, m->attn_norm + (size_t)l * C);
        T_("layers.%d.attention.wq.weight", 2, c->n_heads * hd, C, qkv);
        T_("layers.%d.attention.wk.weight", 2, c->n_kv_heads * hd, C,
           qkv + (size_t)c->n_heads * hd * C);
        T_("layers.%d.attention.wv.weight", 2, c->n_kv_heads * hd, C,
           qkv + (size_t)(c->n_heads + c->n_kv_heads) * hd * C);
        T_("layers.%d.attention.wo.weight", 2, C, m->OS, m->wo + (size_t)l * C * m->OS);
        T_("layers.%d.ffn_norm.weight", 1, C, 0, m->ffn_norm + (size_t)l * C);
        T_("layers.%d.feed_forward.w1.weight", 2, F, C, w13);
        T_("layers.%d.feed_forward.w2.weight", 2, C, F, m->w2 + (size_t)l * C * F);
        T_("layers.%d.feed_forward.w3.weight", 2, F, C, w13 + (size_t)F * C);
#undef T_
    }
    add_tensor(m, "norm.weight", 1, C, 0, m->norm);
    if (!c->tied)
        add_tensor(m, "output.weight", 2, c->vocab_size, C, m->wout);
    if (m->head) {
        add_tensor(m, "head.weight", 2, m->head->n_labels, C, m->head->w);
        add_tensor(m, "head.bias", 1, m->head->n_labels, 0, m->head->b);
    }
    static const char *const proj[LLM_LORA_N] = {
        "attention.wq", "attention.wk", "attention.wv", "attention.wo",
        "feed_forward.w1", "feed_forward.w2", "feed_forward.w3" };
    int r = m->lora_rank;
    for (int t = 0; r && t < LLM_LORA_N; t++) {
        int in, out, col, ld;
        llm_lora_dims(m, t, &in, &out, &col, &ld);
        for (int l = 0; l < c->n_layers; l++) {
            snprintf(name, sizeof name, "layers.%d.%s.lora_a", l, proj[t]);
            add_tensor(m, name, 2, r, in, m->lora_a[t] + (size_t)l * r * in);
            snprintf(name, sizeof name, "layers.%d.%s.lora_b", l, proj[t]);
            add_tensor(m, name, 2, out, r, m->lora_b[t] + (size_t)l * out * r);
        }
    }
}

void llm_model_views(llm_model *m)
{
    const llm_config *c = &m->cfg;
    size_t wte, norms, layer2d, wout;
    family_sizes(c, &wte, &norms, &layer2d, &wout);
    /* Layout: the families AdamW never decays first, then the 2-D weights,
     * then the classifier head, if any. */
    size_t C = (size_t)c->dim, L = (size_t)c->n_layers, F = (size_t)c->ffn_dim;
    float *p = m->params;
    m->wte = p;        p += wte;
    m->attn_norm = p;  p += L * C;
    m->ffn_norm = p;   p += L * C;
    m->norm = p;       p += C;
    m->n_nodecay = (size_t)(p - m->params);
    m->wqkv = p;       p += L * m->QS * C;
    m->wo = p;         p += L * C * m->OS;
    m->w13 = p;        p += L * 2 * F * C;
    m->w2 = p;         p += L * C * F;
    m->wout = c->tied ? m->wte : p;
    if (m->head) {
        m->head->w = m->params + m->n_backbone;
        m->head->b = m->head->w + (size_t)m->head->n_labels * C;
    }
    /* Adapters last: (L, r, in) A then (L, out, r) B per target. */
    p = m->params + (m->n_params - m->n_lora);
    for (int t = 0; m->lora_rank && t < LLM_LORA_N; t++) {
        int in, out, col, ld;
        llm_lora_dims(m, t, &in, &out, &col, &ld);
        m->lora_a[t] = p;  p += L * (size_t)m->lora_rank * (size_t)in;
        m->lora_b[t] = p;  p += L * (size_t)out * (size_t)m->lora_rank;
    }
    build_tensor_table(m);
}

#ifdef LLM_CUDA
/* The index of the first entry of k the model needs that is NULL, or -1:
 * every member after `name` is a function pointer but host_memory, and the
 * optional entries (kernels.h: LLM_KERNELS_OPTIONAL) are checked where
 * they are used (llm_model_decode_f16(), llm_model_quantize_q8(), ...). */
#define OPTIONAL_AT(name) offsetof(llm_kernels, name),
static int missing_entry(const llm_kernels *k)
{
    typedef void (*entry)(void);
    size_t hm = offsetof(llm_kernels, host_memory);
    size_t optional[] = { LLM_KERNELS_OPTIONAL(OPTIONAL_AT) };
    int i = 0;
    for (size_t at = offsetof(llm_kernels, alloc); at + sizeof(entry) <= sizeof *k;
         at += sizeof(entry), i++) {
        int skip = at <= hm && hm < at + sizeof(entry);
        for (size_t j = 0; j < sizeof optional / sizeof optional[0]; j++)
            skip |= at == optional[j];
        entry e;
        memcpy(&e, (const char *)k + at, sizeof e);
        if (!skip && !e)
            return i;
    }
    return -1;
}
#endif

int llm_device_check(const char *device)
{
    if (!device || strcmp(device, "cpu") == 0 || strcmp(device, "ref") == 0)
        return LLM_OK;
    if (strcmp(device, "cuda") != 0)
        return llm_fail(LLM_ERR_DEVICE, "unknown device '%s' (cpu, cuda)", device);
#ifndef LLM_CUDA
    return llm_fail(LLM_ERR_DEVICE, "device 'cuda' is not available: this build has no CUDA "
                    "support (build with make CUDA=1)");
#else
    const llm_kernels *k = llm_kernels_get("cuda");
    if (!k) {
        const char *why = llm_cuda_errmsg();
        return llm_fail(LLM_ERR_DEVICE, "device 'cuda' is not available: no usable CUDA "
                        "device or driver%s%s%s", why ? " (" : "", why ? why : "",
                        why ? ")" : "");
    }
    int e = missing_entry(k);
    if (e >= 0)
        return llm_fail(LLM_ERR_DEVICE, "device 'cuda': its kernel table lacks entry %d, "
                        "which models need (a build of mismatched kernels)", e);
    return LLM_OK;
#endif
}

int llm_model_alloc(const llm_config *c, const char *device, llm_model **out)
{
    *out = NULL;
    int rc = llm_config_check(c);
    if (rc)
        return rc;
    rc = llm_device_check(device);
    if (rc)
        return rc;
    const llm_kernels *k = llm_kernels_get(device ? device : "cpu");
    llm_model *m = calloc(1, sizeof *m);
    if (!m)
        return llm_fail(LLM_ERR_NOMEM, "out of memory");
    m->cfg = *c;
    m->k = k;
    m->hd = c->dim / c->n_heads;
    m->QS = (c->n_heads + 2 * c->n_kv_heads) * m->hd;
    m->OS = c->n_heads * m->hd;
    size_t wte, norms, layer2d, wout;
    family_sizes(c, &wte, &norms, &layer2d, &wout);
    m->n_params = m->n_backbone = wte + norms + layer2d + wout;
    m->opt = calloc(1, sizeof *m->opt);
    m->pass = calloc(1, sizeof *m->pass);
    if (!m->opt || !m->pass) {
        llm_model_free(m);
        return llm_fail(LLM_ERR_NOMEM, "out of memory");
    }
    m->pass->emb_base = -1;
    m->params = k->alloc(m->n_params * sizeof *m->params);
    /* Room for the head's two tensors and 14 adapters per layer too. */
    m->tensors = calloc((size_t)(9 + 2 * LLM_LORA_N) * c->n_layers + 5, sizeof *m->tensors);
    size_t h2 = (size_t)m->hd / 2, nr = (size_t)c->context * h2;
    m->rope_cos = k->alloc(nr * sizeof *m->rope_cos);
    m->rope_sin = k->alloc(nr * sizeof *m->rope_sin);
    float *cs = malloc(2 * nr * sizeof *cs);
    if (!m->params || !m->tensors || !m->rope_cos || !m->rope_sin || !cs) {
        free(cs);
        llm_model_free(m);
        return llm_fail(LLM_ERR_NOMEM, "out of memory for a model of %zu parameters",
                        m->n_params);
    }
    llm_model_views(m);
    /* Angles in double, as the float64 PyTorch reference computes them. */
    for (int t = 0; t < c->context; t++)
        for (size_t i = 0; i < h2; i++) {
            double a = t * pow(c->rope_base, -2.0 * (double)i / m->hd);
            cs[t * h2 + i] = (float)cos(a);
            cs[nr + t * h2 + i] = (float)sin(a);
        }
    k->upload(m->rope_cos, cs, nr * sizeof *cs);
    k->upload(m->rope_sin, cs + nr, nr * sizeof *cs);
    free(cs);
    *out = m;
    return LLM_OK;
}

int llm_model_create(const llm_config *c, uint64_t seed, const char *device,
                     llm_model **out)
{
    llm_model *m;
    int rc = llm_model_alloc(c, device, &m);
    if (rc)
        return rc;
    size_t most = 0;
    for (size_t i = 0; i < m->n_tensors; i++)
        most = m->tensors[i].numel > most ? m->tensors[i].numel : most;
    float *d = malloc(most * sizeof *d);   /* each tensor drawn here, then uploaded */
    if (!d) {
        llm_model_free(m);
        return llm_fail(LLM_ERR_NOMEM, "out of memory");
    }
    llm_rng rng;
    llm_rng_seed(&rng, seed);
    double out_scale = 1.0 / sqrt(2.0 * c->n_layers);
    for (size_t i = 0; i < m->n_tensors; i++) {
        const llm_tensor_desc *t = &m->tensors[i];
        /* Output projections add into the residual stream: GPT-2's scaling. */
        int scaled = strstr(t->name, ".wo.weight") || strstr(t->name, ".w2.weight");
        double sd = 0.02 * (scaled ? out_scale : 1.0);
        for (size_t j = 0; j < t->numel; j++)
            d[j] = t->ndim == 1 ? 1.0f : (float)(sd * llm_rng_normal(&rng));
        m->k->upload(m->params + t->offset, d, t->numel * sizeof *d);
    }
    free(d);
    *out = m;
    return LLM_OK;
}

/* ------------------------------------------------------------- adapters */

int llm_model_lora(llm_model *m, int r, double alpha, uint64_t seed)
{
    const llm_config *c = &m->cfg;
    int rmax = c->dim < c->ffn_dim ? c->dim : c->ffn_dim;
    if (m->lora_rank)
        return llm_fail(LLM_ERR_INVALID, "the model already has adapters (rank %d)",
                        m->lora_rank);
    if (r < 1 || r > rmax)
        return llm_fail(LLM_ERR_INVALID, "LoRA rank (%d) must be in [1, %d]", r, rmax);
    if (!(alpha > 0) || !isfinite(alpha))
        return llm_fail(LLM_ERR_INVALID, "LoRA alpha (%g) must be finite and > 0", alpha);
    int rc = llm_model_own(m);   /* the block grows: not in a mapped file */
    if (rc)
        return rc;
    size_t n = 0;
    for (int t = 0; t < LLM_LORA_N; t++) {
        int in, out, col, ld;
        llm_lora_dims(m, t, &in, &out, &col, &ld);
        n += (size_t)c->n_layers * (size_t)r * (size_t)(in + out);
    }
    const llm_kernels *k = m->k;
    size_t most = 0;
    for (int t = 0; t < LLM_LORA_N; t++) {
        int in, out, col, ld;
        llm_lora_dims(m, t, &in, &out, &col, &ld);
        size_t na = (size_t)c->n_layers * (size_t)r * (size_t)in;
        most = na > most ? na : most;
    }
    float *sink = m->opt->grad_sink ? m->opt->grad_sink : k->alloc((size_t)c->dim * sizeof *sink);
    float *p = sink ? k->alloc((m->n_params + n) * sizeof *p) : NULL;
    float *host = p ? malloc(most * sizeof *host) : NULL;
    if (!host) {
        if (sink != m->opt->grad_sink)
            k->free(sink);
        k->free(p);
        return llm_fail(LLM_ERR_NOMEM, "out of memory for adapters of rank %d", r);
    }
    k->copy(p, m->params, m->n_params * sizeof *p);
    k->free(m->params);
    llm_optim_drop(m);
    m->params = p;
    m->opt->grad_sink = sink;
    m->lora_rank = r;
    m->lora_alpha = alpha;
    m->n_lora = n;
    m->g_off = m->n_backbone;
    m->n_params += n;
    m->pass->ready = 0;
    if (m->head) {
        m->head->frozen = 0;
        m->head->ready = 0;
    }
    llm_model_views(m);
    /* PEFT: kaiming_uniform_(A, a=sqrt(5)), i.e. U(-1/sqrt(in), 1/sqrt(in));
     * B = 0. */
    llm_rng rng;
    llm_rng_seed(&rng, seed);
    for (int t = 0; t < LLM_LORA_N; t++) {
        int in, out, col, ld;
        llm_lora_dims(m, t, &in, &out, &col, &ld);
        size_t na = (size_t)c->n_layers * (size_t)r * (size_t)in;
        double bound = 1.0 / sqrt((double)in);
        for (size_t i = 0; i < na; i++)
            host[i] = (float)(bound * (2.0 * llm_rng_uniform(&rng) - 1.0));
        k->upload(m->lora_a[t], host, na * sizeof *host);
        k->zero(m->lora_b[t], (size_t)c->n_layers * (size_t)out * r * sizeof(float));
    }
    free(host);
    return LLM_OK;
}

int llm_model_lora_rank(const llm_model *m)
{
    return m->lora_rank;
}

double llm_model_lora_alpha(const llm_model *m)
{
    return m->lora_rank ? m->lora_alpha : 0.0;
}

int llm_model_lora_fold(llm_model *m)
{
    if (!m->lora_rank)
        return LLM_OK;
    int rc = llm_model_own(m);
    if (rc)
        return rc;
    size_t n2;
    float *w = llm_model_lora_merged(m, &n2);
    if (!w)
        return LLM_ERR_NOMEM;
    m->k->copy(m->wqkv, w, n2 * sizeof *w);
    m->k->free(w);
    /* The adapters are the block's last floats: it keeps them, unused. */
    llm_optim_drop(m);
    m->n_params -= m->n_lora;
    m->n_lora = 0;
    m->lora_rank = 0;
    m->lora_alpha = 0.0;
    m->g_off = 0;
    for (int t = 0; t < LLM_LORA_N; t++)
        m->lora_a[t] = m->lora_b[t] = NULL;
    m->pass->ready = 0;
    if (m->head)
        m->head->ready = 0;
    llm_model_views(m);
    return LLM_OK;
}

float *llm_model_lora_merged(const llm_model *m, size_t *n_layer2d)
{
    const llm_config *c = &m->cfg;
    size_t wte, norms, layer2d, wout;
    family_sizes(c, &wte, &norms, &layer2d, &wout);
    *n_layer2d = layer2d;
    const llm_kernels *k = m->k;
    int r = m->lora_rank, C = c->dim, F = c->ffn_dim;
    size_t CF = (size_t)(C > F ? C : F), na = CF * (size_t)(r ? r : 1);
    float *w = k->alloc(layer2d * sizeof *w);
    float *ba = k->alloc(CF * CF * sizeof *ba);
    float *at = k->alloc(na * sizeof *at);
    float *ha = malloc(2 * na * sizeof *ha);   /* host: A, then A^T */
    if (!w || !ba || !at || !ha) {
        k->free(w);
        k->free(ba);
        k->free(at);
        free(ha);
        llm_fail(LLM_ERR_NOMEM, "out of memory merging the adapters");
        return NULL;
    }
    k->copy(w, m->wqkv, layer2d * sizeof *w);
    for (int t = 0; r && t < LLM_LORA_N; t++) {
        int in, out, col, ld;
        llm_lora_dims(m, t, &in, &out, &col, &ld);
        for (int l = 0; l < c->n_layers; l++) {
            const float *Bm = m->lora_b[t] + (size_t)l * out * r;
            float *hat = ha + na;
            k->download(ha, m->lora_a[t] + (size_t)l * r * in, (size_t)r * in * sizeof *ha);
            for (int i = 0; i < in; i++)        /* A^T (in, r): a copy, no arithmetic */
                for (int j = 0; j < r; j++)
                    hat[(size_t)i * r + j] = ha[(size_t)j * in + i];
            k->upload(at, hat, (size_t)in * r * sizeof *at);
            /* B A (out, in) = B (out, r) . (A^T)^T */
            k->matmul_forward(ba, Bm, at, out, r, in);
            float *dst = w + (lora_base(m, t, l) - m->wqkv);
            k->axpy(dst, in, ba, in, out, in, llm_lora_scale(m));
        }
    }
    k->free(ba);
    k->free(at);
    free(ha);
    return w;
}

void llm_model_free(llm_model *m)
{
    if (!m)
        return;
    const llm_kernels *k = m->k;
    k->free(m->h_wqkv);
    k->free(m->lp_wqkv.q);   /* the block of every int8 or bf16 copy */
    if (m->file)
        llm_st_close(m->file);
    else
        k->free(m->params);
    llm_optim_free(m);
    llm_pass_free(m);
    free(m->tensors);
    k->free(m->rope_cos);
    k->free(m->rope_sin);
    llm_head_free(m);
    free(m->chat_system);
    free(m);
}

const llm_config *llm_model_config(const llm_model *m)
{
    return &m->cfg;
}

const char *llm_model_chat_template(const llm_model *m)
{
    return m->chat;
}

const char *llm_model_chat_system(const llm_model *m)
{
    return m->chat_system;
}

int llm_model_set_chat_system(llm_model *m, const char *text)
{
    char *c = NULL;
    if (text && !(c = strdup(text)))
        return llm_fail(LLM_ERR_NOMEM, "out of memory");
    free(m->chat_system);
    m->chat_system = c;
    return LLM_OK;
}

int llm_model_set_chat(llm_model *m, const char *name)
{
    static const char *const known[] = { "chatml", "llama2" };
    m->chat = NULL;
    if (!name)
        return LLM_OK;
    for (size_t i = 0; i < sizeof known / sizeof known[0]; i++)
        if (strcmp(name, known[i]) == 0) {
            m->chat = known[i];
            return LLM_OK;
        }
    return llm_fail(LLM_ERR_INVALID, "unknown chat template '%s' (chatml, llama2)", name);
}

/* ---------------------------------------------------------------- tensors */

size_t llm_model_param_count(const llm_model *m)
{
    return m->n_tensors;
}

/* Where `what` of tensor t lives: device memory, or NULL when it has none. */
static float *param_block(const llm_model *m, const llm_tensor_desc *t, int what)
{
    /* Frozen tensors (below g_off) have neither gradients nor moments. */
    int trains = t->offset >= m->g_off;
    size_t o = t->offset - (trains ? m->g_off : 0);
    float *b = what == LLM_PARAM_GRAD ? m->opt->grads : what == LLM_PARAM_ADAM_M ? m->opt->adam_m
             : m->opt->adam_v;
    if (what == LLM_PARAM_DATA)
        return m->params + t->offset;
    return b && trains ? b + o : NULL;
}

int llm_model_param_at(const llm_model *m, size_t i, llm_param *p)
{
    if (i >= m->n_tensors)
        return llm_fail(LLM_ERR_RANGE, "parameter index %zu out of range (%zu)",
                        i, m->n_tensors);
    const llm_tensor_desc *t = &m->tensors[i];
    p->name = t->name;
    p->ndim = t->ndim;
    p->shape[0] = t->shape[0];
    p->shape[1] = t->shape[1];
    p->numel = t->numel;
    p->has_grad = param_block(m, t, LLM_PARAM_GRAD) != NULL;
    p->has_moments = param_block(m, t, LLM_PARAM_ADAM_M) != NULL;
    return LLM_OK;
}

/* Parameter i's block of `what`, or the reason why not. */
static int param_where(const llm_model *m, size_t i, int what, float **at)
{
    static const char *const names[] = { "values", "gradient", "first moment",
                                         "second moment" };
    if (i >= m->n_tensors)
        return llm_fail(LLM_ERR_RANGE, "parameter index %zu out of range (%zu)",
                        i, m->n_tensors);
    if (what < LLM_PARAM_DATA || what > LLM_PARAM_ADAM_V)
        return llm_fail(LLM_ERR_INVALID, "unknown part %d of a parameter", what);
    if (!(*at = param_block(m, &m->tensors[i], what)))
        return llm_fail(LLM_ERR_INVALID, "parameter '%s' has no %s", m->tensors[i].name,
                        names[what]);
    return LLM_OK;
}

int llm_model_param_read(const llm_model *m, size_t i, int what, float *dst)
{
    float *at;
    int rc = param_where(m, i, what, &at);
    if (!rc) {
        m->k->download(dst, at, m->tensors[i].numel * sizeof *dst);
        rc = llm_device_ok(m->k);
    }
    return rc;
}

int llm_model_param_write(llm_model *m, size_t i, int what, const float *src)
{
    float *at;
    int rc = what == LLM_PARAM_DATA ? llm_model_own(m) : LLM_OK;
    if (!rc)
        rc = param_where(m, i, what, &at);
    if (!rc)
        m->k->upload(at, src, m->tensors[i].numel * sizeof *src);
    return rc;
}

float *llm_host_edit(const llm_kernels *k, float *dev, size_t n, float **owned)
{
    return (float *)(uintptr_t)llm_host_view(k, dev, n, owned);
}

void llm_host_done(const llm_kernels *k, float *dev, float *owned, size_t n)
{
    if (!owned)
        return;
    k->upload(dev, owned, n * sizeof *owned);
    free(owned);
}

const float *llm_host_view(const llm_kernels *k, const float *dev, size_t n, float **owned)
{
    *owned = NULL;
    if (k->host_memory)
        return dev;
    if (!(*owned = malloc((n ? n : 1) * sizeof **owned))) {
        llm_fail(LLM_ERR_NOMEM, "out of memory for a host copy of %zu floats", n);
        return NULL;
    }
    k->download(*owned, dev, n * sizeof **owned);
    if (llm_device_ok(k) != LLM_OK) {
        free(*owned);
        *owned = NULL;
        return NULL;
    }
    return *owned;
}

int llm_device_ok(const llm_kernels *k)
{
    const char *why = k->failure ? k->failure() : NULL;
    return why ? llm_fail(LLM_ERR_DEVICE, "device '%s' failed: %s", k->name, why) : LLM_OK;
}

int llm_model_param_find(const llm_model *m, const char *name, llm_param *p, size_t *index)
{
    for (size_t i = 0; i < m->n_tensors; i++)
        if (strcmp(m->tensors[i].name, name) == 0) {
            if (index)
                *index = i;
            return llm_model_param_at(m, i, p);
        }
    return llm_fail(LLM_ERR_RANGE, "no parameter named '%s'", name);
}

int llm_model_own(llm_model *m)
{
    if (!m->file)
        return LLM_OK;
    float *p = m->k->alloc(m->n_params * sizeof *p);
    if (!p)
        return llm_fail(LLM_ERR_NOMEM, "out of memory for a model of %zu parameters",
                        m->n_params);
    m->k->upload(p, m->params, m->n_params * sizeof *p);
    llm_st_close(m->file);
    m->file = NULL;
    m->params = p;
    llm_model_views(m);
    return LLM_OK;
}

