/* model.c: the Llama-style transformer: config and presets, parameters,
 * forward and backward passes over the kernel table, gradient norm and
 * clipping, AdamW. Saving and loading are in model_io.c.
 *
 * Memory: one block each for parameters, gradients, AdamW m and v, and
 * activations (sized by B, T). Each attention and feed-forward layer has
 * its input projections fused ((wq | wk | wv) and (w1 | w3), row-stacked per
 * layer), so one sgemm does what three or two would; every named tensor of
 * the file format is still one contiguous slice of the block. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "internal.h"
#include "kernels.h"
#include "model.h"

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
static void lora_dims(const llm_model *m, int t, int *in, int *out, int *col, int *ld)
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

static float lora_scale(const llm_model *m)
{
    return (float)(m->lora_alpha / m->lora_rank);
}

/* Layer l's base weight (out, in) under adapter t. */
static float *lora_base(const llm_model *m, int t, int l)
{
    int in, out, col, ld;
    lora_dims(m, t, &in, &out, &col, &ld);
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
    if (m->n_labels) {
        add_tensor(m, "head.weight", 2, m->n_labels, C, m->head_w);
        add_tensor(m, "head.bias", 1, m->n_labels, 0, m->head_b);
    }
    static const char *const proj[LLM_LORA_N] = {
        "attention.wq", "attention.wk", "attention.wv", "attention.wo",
        "feed_forward.w1", "feed_forward.w2", "feed_forward.w3" };
    int r = m->lora_rank;
    for (int t = 0; r && t < LLM_LORA_N; t++) {
        int in, out, col, ld;
        lora_dims(m, t, &in, &out, &col, &ld);
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
    m->head_w = m->n_labels ? m->params + m->n_backbone : NULL;
    m->head_b = m->n_labels ? m->head_w + (size_t)m->n_labels * C : NULL;
    /* Adapters last: (L, r, in) A then (L, out, r) B per target. */
    p = m->params + (m->n_params - m->n_lora);
    for (int t = 0; m->lora_rank && t < LLM_LORA_N; t++) {
        int in, out, col, ld;
        lora_dims(m, t, &in, &out, &col, &ld);
        m->lora_a[t] = p;  p += L * (size_t)m->lora_rank * (size_t)in;
        m->lora_b[t] = p;  p += L * (size_t)out * (size_t)m->lora_rank;
    }
    build_tensor_table(m);
}

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
    if (!llm_kernels_get("cuda"))
        return llm_fail(LLM_ERR_DEVICE, "device 'cuda' is not available: no usable CUDA "
                        "device or driver");
    /* The CUDA kernels exist, but the model's memory still lives on the
     * host: handing it to them would crash. */
    return llm_fail(LLM_ERR_DEVICE, "device 'cuda': models do not run on the GPU yet "
                    "(only the CUDA kernels exist); run them on the CPU");
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
    m->temperature = 1.0;
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
        lora_dims(m, t, &in, &out, &col, &ld);
        n += (size_t)c->n_layers * (size_t)r * (size_t)(in + out);
    }
    const llm_kernels *k = m->k;
    size_t most = 0;
    for (int t = 0; t < LLM_LORA_N; t++) {
        int in, out, col, ld;
        lora_dims(m, t, &in, &out, &col, &ld);
        size_t na = (size_t)c->n_layers * (size_t)r * (size_t)in;
        most = na > most ? na : most;
    }
    float *sink = m->grad_sink ? m->grad_sink : k->alloc((size_t)c->dim * sizeof *sink);
    float *p = sink ? k->alloc((m->n_params + n) * sizeof *p) : NULL;
    float *host = p ? malloc(most * sizeof *host) : NULL;
    if (!host) {
        if (sink != m->grad_sink)
            k->free(sink);
        k->free(p);
        return llm_fail(LLM_ERR_NOMEM, "out of memory for adapters of rank %d", r);
    }
    k->copy(p, m->params, m->n_params * sizeof *p);
    k->free(m->params);
    k->free(m->grads);
    k->free(m->adam_m);
    k->free(m->adam_v);
    m->grads = m->adam_m = m->adam_v = NULL;
    m->params = p;
    m->grad_sink = sink;
    m->lora_rank = r;
    m->lora_alpha = alpha;
    m->n_lora = n;
    m->g_off = m->n_backbone;
    m->n_params += n;
    m->frozen = 0;
    m->ready = m->cls_ready = 0;
    llm_model_views(m);
    /* PEFT: kaiming_uniform_(A, a=sqrt(5)), i.e. U(-1/sqrt(in), 1/sqrt(in));
     * B = 0. */
    llm_rng rng;
    llm_rng_seed(&rng, seed);
    for (int t = 0; t < LLM_LORA_N; t++) {
        int in, out, col, ld;
        lora_dims(m, t, &in, &out, &col, &ld);
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
        lora_dims(m, t, &in, &out, &col, &ld);
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
            k->axpy(dst, in, ba, in, out, in, lora_scale(m));
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
    if (m->file)
        llm_st_close(m->file);
    else
        k->free(m->params);
    k->free(m->grads);
    k->free(m->adam_m);
    k->free(m->adam_v);
    k->free(m->grad_sink);
    k->free(m->acts);
    k->free(m->ids);
    free(m->ids_host);
    free(m->loss_host);
    free(m->logits_host);
    free(m->tensors);
    k->free(m->rope_cos);
    k->free(m->rope_sin);
    for (int i = 0; m->labels && i < m->n_labels; i++)
        free(m->labels[i]);
    free(m->labels);
    free(m->thresholds);
    k->free(m->cls);
    free(m->cls_host);
    free(m->lens);
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
    float *b = what == LLM_PARAM_GRAD ? m->grads : what == LLM_PARAM_ADAM_M ? m->adam_m
             : m->adam_v;
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
    if (!rc)
        m->k->download(dst, at, m->tensors[i].numel * sizeof *dst);
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
    return *owned;
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

/* ------------------------------------------------------------ activations */

typedef struct {
    float *res;     /* (L+1, B, T, C) residual stream into each layer, and out */
    float *rstd1;   /* (L, B, T) */
    float *a1;      /* (L, B, T, C) attention_norm output */
    float *qkv;     /* (L, B, T, QS) after RoPE */
    float *att;     /* (L, B, H, T, T) attention probabilities */
    float *atty;    /* (L, B, T, OS) attention output before wo */
    float *res_mid; /* (L, B, T, C) residual after attention */
    float *rstd2;   /* (L, B, T) */
    float *a2;      /* (L, B, T, C) ffn_norm output */
    float *h13;     /* (L, B, T, 2F) gate | up */
    float *hsw;     /* (L, B, T, F) silu(gate) * up */
    float *rstdf;   /* (B, T) */
    float *af;      /* (B, T, C) final norm output */
    float *logits;  /* (B, T, max(V, H*T)): logits, dlogits, then scratch
                     * for the attention backward */
    float *losses;  /* (B, T) */
    float *tmp;     /* (B, T, C) sublayer output before its residual add */
    float *dres;    /* (B, T, C) gradient of the residual stream */
    float *da;      /* (B, T, C) gradient of a norm output */
    float *dqkv;    /* (B, T, QS) */
    float *datty;   /* (B, T, OS) */
    float *dh13;    /* (B, T, 2F) */
    float *dhsw;    /* (B, T, F) */
    /* Adapters only (0 floats without): */
    float *lu;      /* (L, 7, B, T, r) A x of every adapter, kept for the backward */
    float *lv;      /* (B, T, max(C, F)) B (A x), then the gradient of it */
    float *ldu;     /* (B, T, r) */
    float *ldx;     /* (B, T, max(C, F)) an adapter's input gradient */
} acts;

/* Lays out the activations of (B, T) from base (NULL: just count).
 * @return floats needed. */
static size_t acts_layout(const llm_model *m, int B, int T, float *base, acts *a)
{
    const llm_config *c = &m->cfg;
    size_t N = (size_t)B * T, L = (size_t)c->n_layers, C = (size_t)c->dim;
    size_t F = (size_t)c->ffn_dim, H = (size_t)c->n_heads, V = (size_t)c->vocab_size;
    size_t lw = V > H * (size_t)T ? V : H * (size_t)T;
    size_t R = (size_t)m->lora_rank, CF = C > F ? C : F;
    struct { float **p; size_t n; } parts[] = {
        { &a->res, (L + 1) * N * C }, { &a->rstd1, L * N }, { &a->a1, L * N * C },
        { &a->qkv, L * N * m->QS }, { &a->att, L * N * H * T },
        { &a->atty, L * N * m->OS }, { &a->res_mid, L * N * C },
        { &a->rstd2, L * N }, { &a->a2, L * N * C }, { &a->h13, L * N * 2 * F },
        { &a->hsw, L * N * F }, { &a->rstdf, N }, { &a->af, N * C },
        { &a->logits, N * lw }, { &a->losses, N }, { &a->tmp, N * C },
        { &a->dres, N * C }, { &a->da, N * C }, { &a->dqkv, N * m->QS },
        { &a->datty, N * m->OS }, { &a->dh13, N * 2 * F }, { &a->dhsw, N * F },
        { &a->lu, L * LLM_LORA_N * N * R }, { &a->lv, R ? N * CF : 0 }, { &a->ldu, N * R },
        { &a->ldx, R ? N * CF : 0 },
    };
    size_t total = 0;
    for (size_t i = 0; i < sizeof parts / sizeof parts[0]; i++) {
        /* 16-float alignment keeps rows of every part on cache lines. */
        total = (total + 15) & ~(size_t)15;
        *parts[i].p = base ? base + total : NULL;
        total += parts[i].n;
    }
    return total;
}

static int acts_reserve(llm_model *m, int B, int T, acts *a)
{
    size_t need = acts_layout(m, B, T, NULL, a), nids = (size_t)3 * B * T;
    if (need > m->acts_cap) {
        m->k->free(m->acts);
        m->acts_cap = 0;
        m->acts = m->k->alloc(need * sizeof(float));
        if (!m->acts)
            return llm_fail(LLM_ERR_NOMEM, "out of memory for activations (%zu MB)",
                            need * sizeof(float) >> 20);
        m->acts_cap = need;
    }
    if (nids > m->ids_cap) {
        m->k->free(m->ids);
        free(m->ids_host);
        free(m->loss_host);
        m->ids_cap = 0;
        m->ids = m->k->alloc(nids * sizeof *m->ids);
        m->ids_host = malloc(nids * sizeof *m->ids_host);
        m->loss_host = malloc(nids / 3 * sizeof *m->loss_host);
        if (!m->ids || !m->ids_host || !m->loss_host)
            return llm_fail(LLM_ERR_NOMEM, "out of memory");
        m->ids_cap = nids;
    }
    acts_layout(m, B, T, m->acts, a);
    return LLM_OK;
}

/* ---------------------------------------------------------------- forward */

/* ------------------------------------------------------------------------ */
/* Residual dropout. A mask bit is a hash of (seed, step, micro-batch, site,
 * position), so the backward pass recomputes the forward's mask instead of
 * storing it, and no thread count or batching changes it. */

int llm_model_set_dropout(llm_model *m, double p, uint64_t seed)
{
    if (!(p >= 0.0 && p < 1.0))
        return llm_fail_param(LLM_ERR_INVALID, "dropout", "dropout probability %g must be in "
                              "[0, 1)", p);
    m->drop_p = p;
    m->drop_seed = seed;
    return LLM_OK;
}

void llm_model_set_training(llm_model *m, int on)
{
    m->training = on != 0;
}

static inline uint64_t mix64(uint64_t z)
{
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
}

/* x[i] *= mask(i) / (1 - p) for the mask of `site` (2 per layer): the
 * dropout kernel, keyed by a hash of the step, micro-batch and site. */
static void dropout_apply(const llm_model *m, float *x, size_t n, int site)
{
    uint64_t base = mix64(m->drop_seed ^ mix64((uint64_t)m->steps * 0x9e3779b97f4a7c15ULL +
                                               (uint64_t)m->drop_micro * 0xd1b54a32d192ed03ULL +
                                               (uint64_t)site));
    m->k->dropout(x, n, m->drop_p, base);
}

/* ------------------------------------------------------------------------ */
/* Low-rank adapters: y = W x + s B (A x), s = alpha / r, over the matmul
 * kernels; the strided axpy adds into (and gathers from) the adapter's
 * columns of a fused projection. */

/* Layer l's adapters of the targets in [t0, t1], whose projections all read
 * x (n, in): y (n, ld) += s B (A x); A x kept in a.lu. */
static void lora_forward(llm_model *m, const acts *a, int l, int t0, int t1,
                         float *y, const float *x, int n)
{
    const llm_kernels *k = m->k;
    int r = m->lora_rank;
    for (int t = t0; t <= t1; t++) {
        int in, out, col, ld;
        lora_dims(m, t, &in, &out, &col, &ld);
        float *u = a->lu + ((size_t)l * LLM_LORA_N + t) * n * r;
        k->matmul_forward(u, x, m->lora_a[t] + (size_t)l * r * in, n, in, r);
        k->matmul_forward(a->lv, u, m->lora_b[t] + (size_t)l * out * r, n, r, out);
        k->axpy(y + col, ld, a->lv, out, n, out, lora_scale(m));
    }
}

static float *gradp(const llm_model *m, const float *p);

/* Their backward from dy (n, ld): dA and dB accumulate, and dx (n, in),
 * already holding the base weight's input gradient, gets theirs added. */
static void lora_backward(llm_model *m, const acts *a, int l, int t0, int t1,
                          const float *dy, const float *x, float *dx, int n)
{
    const llm_kernels *k = m->k;
    int r = m->lora_rank;
    for (int t = t0; t <= t1; t++) {
        int in, out, col, ld;
        lora_dims(m, t, &in, &out, &col, &ld);
        const float *u = a->lu + ((size_t)l * LLM_LORA_N + t) * n * r;
        float *A = m->lora_a[t] + (size_t)l * r * in, *Bm = m->lora_b[t] + (size_t)l * out * r;
        k->zero(a->lv, (size_t)n * out * sizeof *a->lv);
        k->axpy(a->lv, out, dy + col, ld, n, out, lora_scale(m));   /* s dy */
        k->matmul_backward(a->ldu, gradp(m, Bm), a->lv, u, Bm, n, r, out);
        k->matmul_backward(a->ldx, gradp(m, A), a->ldu, x, A, n, in, r);
        k->residual_forward(dx, dx, a->ldx, (size_t)n * in);
    }
}

/* The block's hooks in training: sgemm and the adapters, RoPE at each
 * row's position in its sequence of T, attention within the batch's own
 * rows (kept for the backward), and dropout. */
typedef struct {
    llm_model *m;
    const acts *a;
    const int32_t *start;
    int B, T;
} train_fwd;

static void train_product(void *ctx, int w, int l, int o0, int OC, float *out, size_t ldo,
                          const float *inp, size_t ldi, const int *map, int N)
{
    const train_fwd *f = ctx;
    llm_model *m = f->m;
    size_t C = (size_t)m->cfg.dim, F = (size_t)m->cfg.ffn_dim;
    (void)o0, (void)ldo, (void)ldi, (void)map;   /* whole, contiguous rows */
    switch (w) {
    case LLM_W_QKV:
        m->k->matmul_forward(out, inp, m->wqkv + (size_t)l * m->QS * C, N, (int)C, OC);
        if (m->lora_rank)
            lora_forward(m, f->a, l, LLM_LORA_Q, LLM_LORA_V, out, inp, N);
        break;
    case LLM_W_O:
        m->k->matmul_forward(out, inp, m->wo + (size_t)l * C * m->OS, N, m->OS, OC);
        if (m->lora_rank)
            lora_forward(m, f->a, l, LLM_LORA_O, LLM_LORA_O, out, inp, N);
        break;
    case LLM_W_13:
        m->k->matmul_forward(out, inp, m->w13 + (size_t)l * 2 * F * C, N, (int)C, OC);
        if (m->lora_rank) {
            lora_forward(m, f->a, l, LLM_LORA_W1, LLM_LORA_W1, out, inp, N);
            lora_forward(m, f->a, l, LLM_LORA_W3, LLM_LORA_W3, out, inp, N);
        }
        break;
    default:
        m->k->matmul_forward(out, inp, m->w2 + (size_t)l * C * F, N, (int)F, OC);
        if (m->lora_rank)
            lora_forward(m, f->a, l, LLM_LORA_W2, LLM_LORA_W2, out, inp, N);
        break;
    }
}

static void train_rope(void *ctx, float *x, int nh, const int *map, int N)
{
    const train_fwd *f = ctx;
    (void)map, (void)N;   /* all B * T rows */
    f->m->k->rope_forward(x, f->m->rope_cos, f->m->rope_sin, f->B, f->T, nh, f->m->hd,
                          f->m->QS);
}

static void train_attend(void *ctx, int l, const llm_block *b)
{
    const train_fwd *f = ctx;
    const llm_model *m = f->m;
    int H = m->cfg.n_heads;
    float *att = f->a->att + (size_t)l * b->n * H * f->T;
    m->k->attention_forward(b->atty, att, b->qkv, f->start, f->B, f->T, H, m->cfg.n_kv_heads,
                            m->hd);
}

static void train_dropout(void *ctx, int l, int site, float *y, int n)
{
    const train_fwd *f = ctx;
    dropout_apply(f->m, y, (size_t)n * f->m->cfg.dim, 2 * l + site);
}

int llm_model_forward_hidden(llm_model *m, const int32_t *tokens,
                             const int32_t *targets, const int32_t *starts, int B, int T)
{
    const llm_config *c = &m->cfg;
    const llm_kernels *k = m->k;
    m->ready = 0;
    m->cls_ready = 0;
    if (B < 1 || T < 1 || T > c->context)
        return llm_fail(LLM_ERR_INVALID, "batch %d x %d: need B >= 1 and 1 <= T <= context (%d)",
                        B, T, c->context);
    size_t N = (size_t)B * T;
    if (N > (size_t)INT32_MAX / (size_t)(c->vocab_size > c->n_heads * T ? c->vocab_size
                                                                       : c->n_heads * T))
        return llm_fail(LLM_ERR_INVALID, "batch %d x %d is too large", B, T);
    int V = c->vocab_size, C = c->dim, F = c->ffn_dim;
    for (size_t i = 0; i < N; i++) {
        if (tokens[i] < 0 || tokens[i] >= V)
            return llm_fail(LLM_ERR_RANGE, "token %d at position %zu is outside the vocabulary [0, %d)",
                            tokens[i], i, V);
        if (targets && targets[i] >= V)
            return llm_fail(LLM_ERR_RANGE, "target %d at position %zu is outside the vocabulary [0, %d)",
                            targets[i], i, V);
        if (starts && (starts[i] < 0 || starts[i] > (int32_t)(i % (size_t)T)))
            return llm_fail(LLM_ERR_RANGE, "document start %d at position %zu of its row is "
                            "outside [0, %zu]", starts[i], i % (size_t)T, i % (size_t)T);
    }
    acts a;
    int rc = acts_reserve(m, B, T, &a);
    if (rc)
        return rc;
    int32_t *tok = m->ids, *start = starts ? m->ids + 2 * N : NULL;
    memcpy(m->ids_host, tokens, N * sizeof *tok);
    k->upload(tok, tokens, N * sizeof *tok);
    if (start)
        k->upload(start, starts, N * sizeof *start);
    int n = (int)N;
    float eps = (float)c->norm_eps;

    m->drop_active = m->training && m->drop_p > 0;
    k->embedding_forward(a.res, tok, m->wte, n, C);
    for (size_t i = 0; m->emb_scale && i < N; i++)
        if (m->emb_scale[i] != 1.0f) {
            k->scale(a.res + i * C, (size_t)C, m->emb_scale[i]);
            if (m->emb_base >= 0)
                k->axpy(a.res + i * C, C, m->wte + (size_t)m->emb_base * C, C, 1, C,
                        1.0f - m->emb_scale[i]);
        }
    train_fwd f = { m, &a, start, B, T };
    llm_block_ops ops = { train_product, train_rope, train_attend,
                          m->drop_active ? train_dropout : NULL, &f };
    for (int l = 0; l < c->n_layers; l++) {
        llm_block b = {
            .n = n,
            .in = a.res + (size_t)l * N * C,
            .mid = a.res_mid + (size_t)l * N * C,
            .out = a.res + (size_t)(l + 1) * N * C,
            .a1 = a.a1 + (size_t)l * N * C, .rstd1 = a.rstd1 + (size_t)l * N,
            .qkv = a.qkv + (size_t)l * N * m->QS,
            .atty = a.atty + (size_t)l * N * m->OS,
            .a2 = a.a2 + (size_t)l * N * C, .rstd2 = a.rstd2 + (size_t)l * N,
            .h13 = a.h13 + (size_t)l * N * 2 * F, .hsw = a.hsw + (size_t)l * N * F,
            .tmp = a.tmp,
        };
        llm_block_forward(m, &ops, l, &b);
    }
    k->rmsnorm_forward(a.af, a.rstdf, a.res + (size_t)c->n_layers * N * C, m->norm,
                       n, C, eps);
    m->B = B;
    m->T = T;
    return LLM_OK;
}

float *llm_model_hidden(const llm_model *m)
{
    acts a;
    acts_layout(m, m->B, m->T, m->acts, &a);
    return m->acts ? a.af : NULL;
}

float *llm_model_dhidden(const llm_model *m)
{
    acts a;
    acts_layout(m, m->B, m->T, m->acts, &a);
    return m->acts ? a.da : NULL;
}

float *llm_model_dinput(const llm_model *m)
{
    acts a;
    acts_layout(m, m->B, m->T, m->acts, &a);
    return m->acts ? a.dres : NULL;
}

double llm_model_lm_loss(llm_model *m, double weight)
{
    int n = m->B * m->T, V = m->cfg.vocab_size;
    acts a;
    acts_layout(m, m->B, m->T, m->acts, &a);
    const int32_t *tgt = m->ids_host + (size_t)n;
    size_t count = 0;
    for (int i = 0; i < n; i++)
        count += tgt[i] >= 0;
    m->k->upload(m->ids + (size_t)n, tgt, (size_t)n * sizeof *tgt);
    /* (float)(w / count) is 1.0f / count for w = 1: rounding a quotient to
     * double, then to float, is exact (53 >= 2 x 24 + 2 bits). */
    m->dscale = count ? (float)(weight / (double)count) : 0.0f;
    m->k->matmul_forward(a.logits, a.af, m->wout, n, m->cfg.dim, V);
    m->k->crossentropy_forward(a.losses, NULL, a.logits, m->ids + (size_t)n, n, V, m->dscale);
    m->k->download(m->loss_host, a.losses, (size_t)n * sizeof *m->loss_host);
    double s = 0.0;
    for (int i = 0; i < n; i++)
        s += m->loss_host[i];
    return count ? weight * s / (double)count : 0.0;
}

int llm_model_forward(llm_model *m, const int32_t *tokens,
                      const int32_t *targets, int B, int T, float *loss)
{
    return llm_model_forward_packed(m, tokens, targets, NULL, B, T, loss);
}

int llm_model_forward_packed(llm_model *m, const int32_t *tokens, const int32_t *targets,
                             const int32_t *starts, int B, int T, float *loss)
{
    int rc = llm_model_forward_hidden(m, tokens, targets, starts, B, T);
    if (rc)
        return rc;
    if (!targets) {
        acts a;
        acts_layout(m, B, T, m->acts, &a);
        m->k->matmul_forward(a.logits, a.af, m->wout, B * T, m->cfg.dim, m->cfg.vocab_size);
        if (loss)
            *loss = 0.0f;
        return LLM_OK;
    }
    memcpy(m->ids_host + (size_t)B * T, targets, (size_t)B * T * sizeof *targets);
    double l = llm_model_lm_loss(m, 1.0);
    if (loss)
        *loss = (float)l;
    m->ready = 1;
    return LLM_OK;
}

const float *llm_model_logits(llm_model *m)
{
    if (!m->acts)
        return NULL;
    acts a;
    acts_layout(m, m->B, m->T, m->acts, &a);
    size_t n = (size_t)m->B * m->T * m->cfg.vocab_size;
    if (n > m->logits_host_cap) {
        free(m->logits_host);
        m->logits_host_cap = 0;
        if (!(m->logits_host = malloc(n * sizeof *m->logits_host))) {
            llm_fail(LLM_ERR_NOMEM, "out of memory for %zu logits", n);
            return NULL;
        }
        m->logits_host_cap = n;
    }
    m->k->download(m->logits_host, a.logits, n * sizeof *m->logits_host);
    return m->logits_host;
}

/* --------------------------------------------------------------- backward */

/* Floats that train, from g_off on: gradients and moments hold these. */
static size_t n_grad(const llm_model *m)
{
    return m->n_params - m->g_off;
}

static int grads_alloc(llm_model *m)
{
    if (m->grads)
        return LLM_OK;
    m->grads = m->k->alloc(n_grad(m) * sizeof *m->grads);
    if (!m->grads)
        return llm_fail(LLM_ERR_NOMEM, "out of memory for gradients");
    m->k->zero(m->grads, n_grad(m) * sizeof *m->grads);
    return LLM_OK;
}

size_t llm_model_grad_size(const llm_model *m)
{
    return m->grads ? n_grad(m) : 0;
}

void llm_model_grad_copy(llm_model *m, float *host, int to_host)
{
    size_t n = llm_model_grad_size(m) * sizeof *host;
    if (to_host)
        m->k->download(host, m->grads, n);
    else
        m->k->upload(m->grads, host, n);
}

void llm_model_set_micro(llm_model *m, int64_t micro)
{
    m->drop_micro = micro;
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

int llm_model_zero_grad(llm_model *m)
{
    int rc = grads_alloc(m);
    if (rc)
        return rc;
    m->k->zero(m->grads, n_grad(m) * sizeof *m->grads);
    return LLM_OK;
}

/* Gradient views: the same offsets as the parameters, less g_off; NULL for
 * a frozen weight (below g_off: the kernels then skip its gradient). */
static float *gradp(const llm_model *m, const float *p)
{
    size_t o = (size_t)(p - m->params);
    return o >= m->g_off && !m->input_grad ? m->grads + (o - m->g_off) : NULL;
}
#define G(p) gradp(m, (p))
/* A frozen norm's gradient goes to a sink nobody reads. */
#define GN(p) (gradp(m, (p)) ? gradp(m, (p)) : m->grad_sink)

int llm_model_backward(llm_model *m)
{
    if (!m->ready)
        return llm_fail(LLM_ERR_INVALID, "backward needs a forward pass with targets first");
    int rc = grads_alloc(m);
    if (rc)
        return rc;
    m->ready = 0;   /* the logits are overwritten below */
    llm_model_lm_backward(m);
    return llm_model_backward_hidden(m);
}

void llm_model_lm_backward(llm_model *m)
{
    int n = m->B * m->T, V = m->cfg.vocab_size, C = m->cfg.dim;
    acts a;
    acts_layout(m, m->B, m->T, m->acts, &a);
    m->k->crossentropy_forward(a.losses, a.logits, a.logits, m->ids + (size_t)n, n, V,
                               m->dscale);
    m->k->matmul_backward(a.da, G(m->wout), a.logits, a.af, m->wout, n, C, V);
}

int llm_model_backward_hidden(llm_model *m)
{
    int rc = m->input_grad ? LLM_OK : grads_alloc(m);
    if (rc)
        return rc;
    const llm_config *c = &m->cfg;
    const llm_kernels *k = m->k;
    int B = m->B, T = m->T, n = B * T;
    size_t N = (size_t)n;
    int C = c->dim, F = c->ffn_dim, H = c->n_heads, KVH = c->n_kv_heads;
    acts a;
    acts_layout(m, B, T, m->acts, &a);
    int32_t *tok = m->ids;
    k->zero(a.dres, N * C * sizeof *a.dres);
    k->rmsnorm_backward(a.dres, GN(m->norm), a.da, a.res + (size_t)c->n_layers * N * C,
                        m->norm, a.rstdf, n, C);
    for (int l = c->n_layers - 1; l >= 0; l--) {
        float *res = a.res + (size_t)l * N * C;
        float *rstd1 = a.rstd1 + (size_t)l * N, *rstd2 = a.rstd2 + (size_t)l * N;
        float *a1 = a.a1 + (size_t)l * N * C, *a2 = a.a2 + (size_t)l * N * C;
        float *qkv = a.qkv + (size_t)l * N * m->QS;
        float *att = a.att + (size_t)l * N * H * T;
        float *atty = a.atty + (size_t)l * N * m->OS;
        float *res_mid = a.res_mid + (size_t)l * N * C;
        float *h13 = a.h13 + (size_t)l * N * 2 * F, *hsw = a.hsw + (size_t)l * N * F;
        float *wqkv = m->wqkv + (size_t)l * m->QS * C, *wo = m->wo + (size_t)l * C * m->OS;
        float *w13 = m->w13 + (size_t)l * 2 * F * C, *w2 = m->w2 + (size_t)l * C * F;
        float *an = m->attn_norm + (size_t)l * C, *fn = m->ffn_norm + (size_t)l * C;

        /* res_next = res_mid + drop(w2(hsw)): dres flows to res_mid unchanged;
         * the branch sees it through the same mask. */
        const float *dbranch = a.dres;
        if (m->drop_active) {
            k->copy(a.tmp, a.dres, N * C * sizeof *a.tmp);
            dropout_apply(m, a.tmp, N * C, 2 * l + 1);
            dbranch = a.tmp;
        }
        k->matmul_backward(a.dhsw, G(w2), dbranch, hsw, w2, n, F, C);
        if (m->lora_rank)
            lora_backward(m, &a, l, LLM_LORA_W2, LLM_LORA_W2, dbranch, hsw, a.dhsw, n);
        k->swiglu_backward(a.dh13, a.dhsw, h13, n, F);
        k->matmul_backward(a.da, G(w13), a.dh13, a2, w13, n, C, 2 * F);
        if (m->lora_rank) {
            lora_backward(m, &a, l, LLM_LORA_W1, LLM_LORA_W1, a.dh13, a2, a.da, n);
            lora_backward(m, &a, l, LLM_LORA_W3, LLM_LORA_W3, a.dh13, a2, a.da, n);
        }
        k->rmsnorm_backward(a.dres, GN(fn), a.da, res_mid, fn, rstd2, n, C);
        /* res_mid = res + drop(wo(atty)). */
        if (m->drop_active) {
            k->copy(a.tmp, a.dres, N * C * sizeof *a.tmp);
            dropout_apply(m, a.tmp, N * C, 2 * l);
        }
        k->matmul_backward(a.datty, G(wo), dbranch, atty, wo, n, m->OS, C);
        if (m->lora_rank)
            lora_backward(m, &a, l, LLM_LORA_O, LLM_LORA_O, dbranch, atty, a.datty, n);
        k->attention_backward(a.dqkv, a.logits, a.datty, qkv, att, B, T, H, KVH, m->hd);
        k->rope_backward(a.dqkv, m->rope_cos, m->rope_sin, B, T, H + KVH, m->hd, m->QS);
        k->matmul_backward(a.da, G(wqkv), a.dqkv, a1, wqkv, n, C, m->QS);
        if (m->lora_rank)
            lora_backward(m, &a, l, LLM_LORA_Q, LLM_LORA_V, a.dqkv, a1, a.da, n);
        k->rmsnorm_backward(a.dres, GN(an), a.da, res, an, rstd1, n, C);
    }
    if (G(m->wte))
        k->embedding_backward(G(m->wte), a.dres, tok, n, C);
    if (m->drop_active)
        m->drop_micro++;   /* the next micro-batch of this step gets new masks */
    return LLM_OK;
}

double llm_model_grad_norm(const llm_model *m)
{
    if (!m->grads)
        return 0.0;
    return sqrt(m->k->sum_squares(m->grads, n_grad(m)));
}

void llm_model_scale_grad(llm_model *m, float s)
{
    if (m->grads)
        m->k->scale(m->grads, n_grad(m), s);
}

double llm_model_clip_grad(llm_model *m, double max_norm)
{
    double norm = llm_model_grad_norm(m);
    if (m->grads && max_norm > 0 && norm > max_norm)
        m->k->scale(m->grads, n_grad(m), (float)(max_norm / (norm + 1e-6)));
    return norm;
}

/* ------------------------------------------------------------------ AdamW */

void llm_adamw_defaults(llm_adamw *o)
{
    o->lr = 1e-3;
    o->beta1 = 0.9;
    o->beta2 = 0.95;
    o->eps = 1e-8;
    o->weight_decay = 0.1;
    o->decay_embedding = 0;
}

int llm_model_adamw_alloc(llm_model *m)
{
    if (m->adam_m)
        return LLM_OK;
    size_t n = n_grad(m) * sizeof *m->adam_m;
    m->adam_m = m->k->alloc(n);
    m->adam_v = m->k->alloc(n);
    if (!m->adam_m || !m->adam_v) {
        m->k->free(m->adam_m);
        m->k->free(m->adam_v);
        m->adam_m = m->adam_v = NULL;
        return llm_fail(LLM_ERR_NOMEM, "out of memory for optimizer state");
    }
    m->k->zero(m->adam_m, n);
    m->k->zero(m->adam_v, n);
    return LLM_OK;
}

int llm_model_adamw_step(llm_model *m, const llm_adamw *o)
{
    if (!(o->lr >= 0) || !isfinite(o->lr))
        return llm_fail_param(LLM_ERR_INVALID, "lr", "learning rate %g must be finite and >= 0",
                              o->lr);
    if (!(o->beta1 >= 0 && o->beta1 < 1) || !(o->beta2 >= 0 && o->beta2 < 1))
        return llm_fail(LLM_ERR_INVALID, "AdamW betas (%g, %g) must be in [0, 1)",
                        o->beta1, o->beta2);
    if (!(o->eps > 0) || !isfinite(o->eps))
        return llm_fail(LLM_ERR_INVALID, "AdamW eps (%g) must be finite and > 0", o->eps);
    if (!(o->weight_decay >= 0) || !isfinite(o->weight_decay))
        return llm_fail_param(LLM_ERR_INVALID, "weight_decay", "weight decay %g must be "
                              "finite and >= 0", o->weight_decay);
    if (!m->grads)
        return llm_fail(LLM_ERR_INVALID, "AdamW step without gradients");
    if (!isfinite(m->k->sum_squares(m->grads, n_grad(m))))
        return llm_fail(LLM_ERR_NUMERIC, "a gradient is not finite; step %lld skipped",
                        (long long)m->steps + 1);
    int rc = llm_model_adamw_alloc(m);
    if (rc == LLM_OK)
        rc = llm_model_own(m);   /* a mapped file is read-only */
    if (rc)
        return rc;
    if (m->steps >= INT32_MAX)
        return llm_fail(LLM_ERR_RANGE, "too many AdamW steps");
    int t = (int)++m->steps;
    m->drop_micro = 0;
    float lr = (float)o->lr, b1 = (float)o->beta1, b2 = (float)o->beta2;
    float eps = (float)o->eps, wd = (float)o->weight_decay;
    size_t nwte = (size_t)m->cfg.vocab_size * m->cfg.dim;
    /* [wte | norms] undecayed (wte optionally decayed), the rest decayed;
     * then the head: its weight decayed, its bias not; then the adapters,
     * decayed as the matrices they are (as Hugging Face's Trainer does: it
     * exempts only biases and norms). A frozen backbone is left alone
     * (weight decay included), as is the base model under adapters. */
    if (m->lora_rank) {
        size_t g = m->g_off, off = m->n_params - m->n_lora;
        if (m->n_labels) {
            size_t nw = (size_t)m->n_labels * m->cfg.dim;
            m->k->adamw_update(m->head_w, m->grads, m->adam_m, m->adam_v, nw,
                               lr, b1, b2, eps, wd, t);
            m->k->adamw_update(m->head_b, m->grads + nw, m->adam_m + nw, m->adam_v + nw,
                               (size_t)m->n_labels, lr, b1, b2, eps, 0.0f, t);
        }
        m->k->adamw_update(m->params + off, m->grads + (off - g), m->adam_m + (off - g),
                           m->adam_v + (off - g), m->n_lora, lr, b1, b2, eps, wd, t);
        return LLM_OK;
    }
    if (!m->frozen) {
        m->k->adamw_update(m->params, m->grads, m->adam_m, m->adam_v, nwte,
                           lr, b1, b2, eps, o->decay_embedding ? wd : 0.0f, t);
        m->k->adamw_update(m->params + nwte, m->grads + nwte, m->adam_m + nwte,
                           m->adam_v + nwte, m->n_nodecay - nwte, lr, b1, b2, eps, 0.0f, t);
        size_t off = m->n_nodecay;
        m->k->adamw_update(m->params + off, m->grads + off, m->adam_m + off,
                           m->adam_v + off, m->n_backbone - off, lr, b1, b2, eps, wd, t);
    }
    if (m->n_labels) {
        size_t off = m->n_backbone, nw = (size_t)m->n_labels * m->cfg.dim;
        m->k->adamw_update(m->params + off, m->grads + off, m->adam_m + off,
                           m->adam_v + off, nw, lr, b1, b2, eps, wd, t);
        off += nw;
        m->k->adamw_update(m->params + off, m->grads + off, m->adam_m + off,
                           m->adam_v + off, (size_t)m->n_labels, lr, b1, b2, eps, 0.0f, t);
    }
    return LLM_OK;
}

int64_t llm_model_steps(const llm_model *m)
{
    return m->steps;
}
