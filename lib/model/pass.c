/* pass.c: the model's passes over a batch of B sequences of T tokens, for
 * training, evaluation and attribution: the forward into the activations
 * it keeps (every layer through llm_block_forward(), with sgemm, low-rank
 * adapters, attention within the batch and dropout as its hooks), the
 * language-model loss and logits, and the backward into the gradients of
 * the trainer state (optim.c).
 *
 * Memory: one block of activations, sized by (B, T) and grown on demand,
 * and the batch's token ids, both the table's. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "internal.h"
#include "kernels.h"
#include "model.h"

/* ------------------------------------------------------------ activations */

void llm_pass_free(llm_model *m)
{
    llm_pass *p = m->pass;
    if (!p)
        return;
    m->k->free(p->acts);
    m->k->free(p->ids);
    llm_lpx_free(m, &p->lpx);
    free(p->ids_host);
    free(p->loss_host);
    free(p->logits_host);
    free(p);
    m->pass = NULL;
}

typedef struct {
    float *res;     /* (L+1, B, T, C) residual stream into each layer, and out */
    float *rstd1;   /* (L, B, T) */
    float *a1;      /* (L, B, T, C) attention_norm output */
    float *qkv;     /* (L, B, T, QS) after RoPE */
    float *att;     /* (L, attention_saved(B, T, H)): what each layer's
                     * attention keeps for its backward (kernels.h) */
    float *atty;    /* (L, B, T, OS) attention output before wo */
    float *res_mid; /* (L, B, T, C) residual after attention */
    float *rstd2;   /* (L, B, T) */
    float *a2;      /* (L, B, T, C) ffn_norm output */
    float *h13;     /* (L, B, T, 2F) gate | up */
    float *hsw;     /* (L, B, T, F) silu(gate) * up */
    float *rstdf;   /* (B, T) */
    float *af;      /* (B, T, C) final norm output */
    float *logits;  /* (B, T, V), at least attention_scratch(B, T, H, KVH, hd,
                     * backward) floats: scratch for the attention of
                     * each layer, then logits, dlogits, then scratch for
                     * the attention backward */
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

/* Lays out the activations of (B, T) from base (NULL: just count): for
 * every layer, or under no_grad for one (the residual stream in two slots,
 * used in turn), logits for LLM_NO_GRAD_ROWS rows and nothing for a
 * backward. @return floats needed. */
static size_t acts_layout(const llm_model *m, int B, int T, float *base, acts *a)
{
    const llm_config *c = &m->cfg;
    int ng = m->pass->no_grad;
    size_t N = (size_t)B * T, L = ng ? 1 : (size_t)c->n_layers, C = (size_t)c->dim;
    size_t F = (size_t)c->ffn_dim, H = (size_t)c->n_heads, V = (size_t)c->vocab_size;
    size_t saved = m->k->attention_saved(B, T, (int)H);
    size_t scratch = m->k->attention_scratch(B, T, (int)H, c->n_kv_heads, m->hd, !ng);
    size_t R = (size_t)m->lora_rank, CF = C > F ? C : F, G = ng ? 0 : N;
    size_t lrows = ng && N > LLM_NO_GRAD_ROWS ? LLM_NO_GRAD_ROWS : N;
    struct { float **p; size_t n; } parts[] = {
        { &a->res, (L + 1) * N * C }, { &a->rstd1, L * N }, { &a->a1, L * N * C },
        { &a->qkv, L * N * m->QS }, { &a->att, L * saved },
        { &a->atty, L * N * m->OS }, { &a->res_mid, L * N * C },
        { &a->rstd2, L * N }, { &a->a2, L * N * C }, { &a->h13, L * N * 2 * F },
        { &a->hsw, L * N * F }, { &a->rstdf, N }, { &a->af, N * C },
        { &a->losses, N }, { &a->tmp, N * C },
        { &a->dres, G * C }, { &a->da, G * C }, { &a->dqkv, G * m->QS },
        { &a->datty, G * m->OS }, { &a->dh13, G * 2 * F }, { &a->dhsw, G * F },
        { &a->lu, L * LLM_LORA_N * N * R }, { &a->lv, R ? N * CF : 0 }, { &a->ldu, G * R },
        { &a->ldx, R && !ng ? N * CF : 0 },
        /* Last: its size follows the thread count (attention's scratch),
         * which moves no other part. */
        { &a->logits, lrows * V > scratch ? lrows * V : scratch },
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
    if (need > m->pass->acts_cap) {
        m->k->free(m->pass->acts);
        m->pass->acts_cap = 0;
        m->pass->acts = m->k->alloc(need * sizeof(float));
        if (!m->pass->acts)
            return llm_fail(LLM_ERR_NOMEM, "out of memory for activations (%zu MB)",
                            need * sizeof(float) >> 20);
        m->pass->acts_cap = need;
    }
    if (nids > m->pass->ids_cap) {
        m->k->free(m->pass->ids);
        free(m->pass->ids_host);
        free(m->pass->loss_host);
        m->pass->ids_cap = 0;
        m->pass->ids = m->k->alloc(nids * sizeof *m->pass->ids);
        m->pass->ids_host = malloc(nids * sizeof *m->pass->ids_host);
        m->pass->loss_host = malloc(nids / 3 * sizeof *m->pass->loss_host);
        if (!m->pass->ids || !m->pass->ids_host || !m->pass->loss_host)
            return llm_fail(LLM_ERR_NOMEM, "out of memory");
        m->pass->ids_cap = nids;
    }
    acts_layout(m, B, T, m->pass->acts, a);
    return LLM_OK;
}

/* The products of the weights of the blocks and of the output layer, and
 * attention's: in bf16 with fp32 sums under llm_model_set_precision(m,
 * "bf16") (attention where the backend has it), else fp32. Adapters and a
 * classifier head stay fp32. */
static void weight_forward(const llm_model *m, float *out, const float *inp, const float *w,
                           int N, int IC, int OC)
{
    if (m->opt->bf16)
        m->k->matmul_forward_bf16(out, inp, w, N, IC, OC);
    else
        m->k->matmul_forward(out, inp, w, N, IC, OC);
}

static void weight_backward(const llm_model *m, float *dinp, float *dw, const float *dout,
                            const float *inp, const float *w, int N, int IC, int OC)
{
    if (m->opt->bf16)
        m->k->matmul_backward_bf16(dinp, dw, dout, inp, w, N, IC, OC);
    else
        m->k->matmul_backward(dinp, dw, dout, inp, w, N, IC, OC);
}

/* Whether attention runs in bf16 too: under "bf16" where the backend has
 * both directions, so that a forward and its backward always agree; and
 * over bf16 copies of the weights (evaluation), as a session's bf16
 * key/value cache does (infer.c). */
static int bf16_attention(const llm_model *m)
{
    return (m->opt->bf16 || m->lp == LLM_LP_BF16) && m->k->attention_forward_bf16 &&
           m->k->attention_backward_bf16;
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
        llm_lora_dims(m, t, &in, &out, &col, &ld);
        float *u = a->lu + ((m->pass->no_grad ? 0 : (size_t)l) * LLM_LORA_N + t) * n * r;
        k->matmul_forward(u, x, m->lora_a[t] + (size_t)l * r * in, n, in, r);
        k->matmul_forward(a->lv, u, m->lora_b[t] + (size_t)l * out * r, n, r, out);
        k->axpy(y + col, ld, a->lv, out, n, out, llm_lora_scale(m));
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
        llm_lora_dims(m, t, &in, &out, &col, &ld);
        const float *u = a->lu + ((size_t)l * LLM_LORA_N + t) * n * r;
        float *A = m->lora_a[t] + (size_t)l * r * in, *Bm = m->lora_b[t] + (size_t)l * out * r;
        k->zero(a->lv, (size_t)n * out * sizeof *a->lv);
        k->axpy(a->lv, out, dy + col, ld, n, out, llm_lora_scale(m));   /* s dy */
        k->matmul_backward(a->ldu, gradp(m, Bm), a->lv, u, Bm, n, r, out);
        k->matmul_backward(a->ldx, gradp(m, A), a->ldu, x, A, n, in, r);
        k->residual_forward(dx, dx, a->ldx, (size_t)n * in);
    }
}

void llm_pass_stop(llm_model *m, int (*stop)(void *ctx), void *ctx)
{
    m->pass->stop = stop;
    m->pass->stop_ctx = ctx;
}

static int stopped(const llm_model *m)
{
    return m->pass->stop && m->pass->stop(m->pass->stop_ctx)
               ? llm_fail(LLM_ERR_INTERRUPTED, "stopped on request")
               : LLM_OK;
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
    if (m->lp_wqkv.q) {   /* int8 or bf16 copies (lowp.c), which refused adapters */
        const llm_lpw *q = w == LLM_W_QKV ? &m->lp_wqkv : w == LLM_W_O ? &m->lp_wo
                         : w == LLM_W_13 ? &m->lp_w13 : &m->lp_w2;
        size_t rows = w == LLM_W_QKV ? (size_t)m->QS : w == LLM_W_13 ? 2 * F : C;
        int IC = w == LLM_W_O ? m->OS : w == LLM_W_2 ? (int)F : (int)C;
        llm_lp_product(m, &m->pass->lpx, out, ldo, inp, ldi, map, q,
                       (size_t)l * rows + (size_t)o0, N, IC, OC);
        return;
    }
    switch (w) {
    case LLM_W_QKV:
        weight_forward(m, out, inp, m->wqkv + (size_t)l * m->QS * C, N, (int)C, OC);
        if (m->lora_rank)
            lora_forward(m, f->a, l, LLM_LORA_Q, LLM_LORA_V, out, inp, N);
        break;
    case LLM_W_O:
        weight_forward(m, out, inp, m->wo + (size_t)l * C * m->OS, N, m->OS, OC);
        if (m->lora_rank)
            lora_forward(m, f->a, l, LLM_LORA_O, LLM_LORA_O, out, inp, N);
        break;
    case LLM_W_13:
        weight_forward(m, out, inp, m->w13 + (size_t)l * 2 * F * C, N, (int)C, OC);
        if (m->lora_rank) {
            lora_forward(m, f->a, l, LLM_LORA_W1, LLM_LORA_W1, out, inp, N);
            lora_forward(m, f->a, l, LLM_LORA_W3, LLM_LORA_W3, out, inp, N);
        }
        break;
    default:
        weight_forward(m, out, inp, m->w2 + (size_t)l * C * F, N, (int)F, OC);
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
    size_t saved = m->k->attention_saved(f->B, f->T, H);
    float *att = f->a->att + (m->pass->no_grad ? 0 : (size_t)l) * saved;
    (bf16_attention(m) ? m->k->attention_forward_bf16 : m->k->attention_forward)(
        b->atty, att, f->a->logits, b->qkv, f->start, f->B, f->T, H, m->cfg.n_kv_heads, m->hd);
}

static void train_dropout(void *ctx, int l, int site, float *y, int n)
{
    const train_fwd *f = ctx;
    llm_dropout_apply(f->m, y, (size_t)n * f->m->cfg.dim, 2 * l + site);
}

int llm_model_forward_hidden(llm_model *m, const int32_t *tokens,
                             const int32_t *targets, const int32_t *starts, int B, int T)
{
    const llm_config *c = &m->cfg;
    const llm_kernels *k = m->k;
    m->pass->ready = 0;
    if (m->head)
        m->head->ready = 0;
    if (B < 1 || T < 1 || T > c->context)
        return llm_fail(LLM_ERR_INVALID, "batch %d x %d: need B >= 1 and 1 <= T <= context (%d)",
                        B, T, c->context);
    size_t N = (size_t)B * T, per = (size_t)(c->vocab_size > c->n_heads * T ? c->vocab_size
                                                                            : c->n_heads * T);
    if (N > (size_t)INT32_MAX / per)
        return llm_fail(LLM_ERR_INVALID, "batch %d x %d is too large: %zu tokens x %zu %s "
                        "each pass 2^31 - 1 (fewer or shorter sequences)", B, T, N, per,
                        per == (size_t)c->vocab_size ? "logits" : "attention scores");
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
    if (!rc && m->lp_wqkv.q)
        rc = llm_lpx_reserve(m, &m->pass->lpx, N);
    if (rc)
        return rc;
    int32_t *tok = m->pass->ids, *start = starts ? m->pass->ids + 2 * N : NULL;
    memcpy(m->pass->ids_host, tokens, N * sizeof *tok);
    k->upload(tok, tokens, N * sizeof *tok);
    if (start)
        k->upload(start, starts, N * sizeof *start);
    int n = (int)N;
    float eps = (float)c->norm_eps;

    m->opt->drop_active = m->opt->training && m->opt->drop_p > 0;
    k->embedding_forward(a.res, tok, m->wte, n, C);
    for (size_t i = 0; m->pass->emb_scale && i < N; i++)
        if (m->pass->emb_scale[i] != 1.0f) {
            k->scale(a.res + i * C, (size_t)C, m->pass->emb_scale[i]);
            if (m->pass->emb_base >= 0)
                k->axpy(a.res + i * C, C, m->wte + (size_t)m->pass->emb_base * C, C, 1, C,
                        1.0f - m->pass->emb_scale[i]);
        }
    train_fwd f = { m, &a, start, B, T };
    llm_block_ops ops = { train_product, train_rope, train_attend,
                          m->opt->drop_active ? train_dropout : NULL, &f };
    int ng = m->pass->no_grad;
    for (int l = 0; l < c->n_layers; l++) {
        if ((rc = stopped(m)))
            return rc;
        size_t i = ng ? 0 : (size_t)l;   /* the layer's slot; the stream's: */
        size_t r0 = ng ? (size_t)(l % 2) : (size_t)l, r1 = ng ? (size_t)((l + 1) % 2) : r0 + 1;
        llm_block b = {
            .n = n,
            .in = a.res + r0 * N * C,
            .mid = a.res_mid + i * N * C,
            .out = a.res + r1 * N * C,
            .a1 = a.a1 + i * N * C, .rstd1 = a.rstd1 + i * N,
            .qkv = a.qkv + i * N * m->QS,
            .atty = a.atty + i * N * m->OS,
            .a2 = a.a2 + i * N * C, .rstd2 = a.rstd2 + i * N,
            .h13 = a.h13 + i * N * 2 * F, .hsw = a.hsw + i * N * F,
            .tmp = a.tmp,
        };
        llm_block_forward(m, &ops, l, &b);
    }
    size_t last = ng ? (size_t)(c->n_layers % 2) : (size_t)c->n_layers;
    k->rmsnorm_forward(a.af, a.rstdf, a.res + last * N * C, m->norm, n, C, eps);
    m->pass->B = B;
    m->pass->T = T;
    m->pass->packed = start != NULL;
    return LLM_OK;
}

float *llm_model_hidden(const llm_model *m)
{
    acts a;
    acts_layout(m, m->pass->B, m->pass->T, m->pass->acts, &a);
    return m->pass->acts ? a.af : NULL;
}

float *llm_model_dhidden(const llm_model *m)
{
    acts a;
    acts_layout(m, m->pass->B, m->pass->T, m->pass->acts, &a);
    return m->pass->acts ? a.da : NULL;
}

float *llm_model_dinput(const llm_model *m)
{
    acts a;
    acts_layout(m, m->pass->B, m->pass->T, m->pass->acts, &a);
    return m->pass->acts ? a.dres : NULL;
}

/* logits(n, V) = af(n, C) . wout^T, from the int8 or bf16 copies when there
 * are (lowp.c). */
static void output_logits(llm_model *m, float *logits, const float *af, int n)
{
    int C = m->cfg.dim, V = m->cfg.vocab_size;
    if (m->lp_wqkv.q)
        llm_lp_product(m, &m->pass->lpx, logits, (size_t)V, af, (size_t)C, NULL, &m->lp_wout, 0,
                       n, C, V);
    else
        weight_forward(m, logits, af, m->wout, n, C, V);
}

double llm_model_lm_loss(llm_model *m, double weight)
{
    int n = m->pass->B * m->pass->T, V = m->cfg.vocab_size;
    acts a;
    acts_layout(m, m->pass->B, m->pass->T, m->pass->acts, &a);
    const int32_t *tgt = m->pass->ids_host + (size_t)n;
    size_t count = 0;
    for (int i = 0; i < n; i++)
        count += tgt[i] >= 0;
    m->k->upload(m->pass->ids + (size_t)n, tgt, (size_t)n * sizeof *tgt);
    /* (float)(w / count) is 1.0f / count for w = 1: rounding a quotient to
     * double, then to float, is exact (53 >= 2 x 24 + 2 bits). */
    m->pass->dscale = count ? (float)(weight / (double)count) : 0.0f;
    /* All rows at once, or under no_grad LLM_NO_GRAD_ROWS at a time. */
    int rows = m->pass->no_grad && n > LLM_NO_GRAD_ROWS ? LLM_NO_GRAD_ROWS : n;
    for (int r = 0; r < n; r += rows) {
        int k = n - r < rows ? n - r : rows;
        output_logits(m, a.logits, a.af + (size_t)r * m->cfg.dim, k);
        m->k->crossentropy_forward(a.losses + r, NULL, a.logits, m->pass->ids + (size_t)n + r,
                                   k, V, m->pass->dscale, 0.0f);
    }
    m->k->download(m->pass->loss_host, a.losses, (size_t)n * sizeof *m->pass->loss_host);
    double s = 0.0;
    for (int i = 0; i < n; i++)
        s += m->pass->loss_host[i];
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
        if (m->pass->no_grad)
            return llm_fail(LLM_ERR_INVALID, "an evaluation pass keeps no logits: give targets");
        acts a;
        acts_layout(m, B, T, m->pass->acts, &a);
        output_logits(m, a.logits, a.af, B * T);
        if (loss)
            *loss = 0.0f;
        return LLM_OK;
    }
    memcpy(m->pass->ids_host + (size_t)B * T, targets, (size_t)B * T * sizeof *targets);
    double l = llm_model_lm_loss(m, 1.0);
    if ((rc = llm_device_ok(m->k)))   /* this pass's, or an earlier step's failure */
        return rc;
    if (loss)
        *loss = (float)l;
    m->pass->ready = 1;
    return LLM_OK;
}

const float *llm_model_logits(llm_model *m)
{
    if (!m->pass->acts || m->pass->no_grad)
        return NULL;
    acts a;
    acts_layout(m, m->pass->B, m->pass->T, m->pass->acts, &a);
    size_t n = (size_t)m->pass->B * m->pass->T * m->cfg.vocab_size;
    if (n > m->pass->logits_host_cap) {
        free(m->pass->logits_host);
        m->pass->logits_host_cap = 0;
        if (!(m->pass->logits_host = malloc(n * sizeof *m->pass->logits_host))) {
            llm_fail(LLM_ERR_NOMEM, "out of memory for %zu logits", n);
            return NULL;
        }
        m->pass->logits_host_cap = n;
    }
    m->k->download(m->pass->logits_host, a.logits, n * sizeof *m->pass->logits_host);
    return m->pass->logits_host;
}

static float *gradp(const llm_model *m, const float *p)
{
    size_t o = (size_t)(p - m->params);
    return o >= m->g_off && !m->pass->input_grad ? m->opt->grads + (o - m->g_off) : NULL;
}
#define G(p) gradp(m, (p))
/* A frozen norm's gradient goes to a sink nobody reads. */
#define GN(p) (gradp(m, (p)) ? gradp(m, (p)) : m->opt->grad_sink)

/* LLM_OK when the last forward can be followed by a backward. */
static int backward_allowed(const llm_model *m)
{
    if (m->lp_wqkv.q)
        return llm_fail(LLM_ERR_INVALID, "a model with %s copies of its weights is for "
                        "inference: it computes no gradients",
                        m->lp == LLM_LP_Q8 ? "int8 (q8)" : "bf16");
    if (m->pass->no_grad)
        return llm_fail(LLM_ERR_INVALID, "an evaluation pass keeps nothing for a backward");
    acts a;   /* attention's scratch follows the thread count: as the forward reserved? */
    if (acts_layout(m, m->pass->B, m->pass->T, NULL, &a) > m->pass->acts_cap)
        return llm_fail(LLM_ERR_INVALID, "the backward has more threads than its forward had");
    return LLM_OK;
}

int llm_model_backward(llm_model *m)
{
    int rc = backward_allowed(m);
    if (rc)
        return rc;
    if (!m->pass->ready)
        return llm_fail(LLM_ERR_INVALID, "backward needs a forward pass with targets first");
    rc = llm_grads_alloc(m);
    if (rc)
        return rc;
    m->pass->ready = 0;   /* the logits are overwritten below */
    llm_model_lm_backward(m);
    return llm_model_backward_hidden(m);
}

void llm_model_lm_backward(llm_model *m)
{
    int n = m->pass->B * m->pass->T, V = m->cfg.vocab_size, C = m->cfg.dim;
    acts a;
    acts_layout(m, m->pass->B, m->pass->T, m->pass->acts, &a);
    /* The gradient of the smoothed loss; the forward reported the plain one. */
    m->k->crossentropy_forward(a.losses, a.logits, a.logits, m->pass->ids + (size_t)n, n, V,
                               m->pass->dscale, m->opt->smooth);
    weight_backward(m, a.da, G(m->wout), a.logits, a.af, m->wout, n, C, V);
}

void llm_pass_no_grad(llm_model *m, int on)
{
    m->pass->no_grad = on != 0;
    m->pass->ready = 0;
}

int llm_model_backward_hidden(llm_model *m)
{
    int rc = backward_allowed(m);
    if (!rc && !m->pass->input_grad)
        rc = llm_grads_alloc(m);
    if (rc)
        return rc;
    const llm_config *c = &m->cfg;
    const llm_kernels *k = m->k;
    int B = m->pass->B, T = m->pass->T, n = B * T;
    size_t N = (size_t)n;
    int C = c->dim, F = c->ffn_dim, H = c->n_heads, KVH = c->n_kv_heads;
    acts a;
    acts_layout(m, B, T, m->pass->acts, &a);
    int32_t *tok = m->pass->ids, *start = m->pass->packed ? tok + 2 * N : NULL;
    size_t saved = k->attention_saved(B, T, H);
    k->zero(a.dres, N * C * sizeof *a.dres);
    k->rmsnorm_backward(a.dres, GN(m->norm), a.da, a.res + (size_t)c->n_layers * N * C,
                        m->norm, a.rstdf, n, C);
    for (int l = c->n_layers - 1; l >= 0; l--) {
        if ((rc = stopped(m)))
            return rc;
        float *res = a.res + (size_t)l * N * C;
        float *rstd1 = a.rstd1 + (size_t)l * N, *rstd2 = a.rstd2 + (size_t)l * N;
        float *a1 = a.a1 + (size_t)l * N * C, *a2 = a.a2 + (size_t)l * N * C;
        float *qkv = a.qkv + (size_t)l * N * m->QS;
        float *att = a.att + (size_t)l * saved;
        float *atty = a.atty + (size_t)l * N * m->OS;
        float *res_mid = a.res_mid + (size_t)l * N * C;
        float *h13 = a.h13 + (size_t)l * N * 2 * F, *hsw = a.hsw + (size_t)l * N * F;
        float *wqkv = m->wqkv + (size_t)l * m->QS * C, *wo = m->wo + (size_t)l * C * m->OS;
        float *w13 = m->w13 + (size_t)l * 2 * F * C, *w2 = m->w2 + (size_t)l * C * F;
        float *an = m->attn_norm + (size_t)l * C, *fn = m->ffn_norm + (size_t)l * C;

        /* res_next = res_mid + drop(w2(hsw)): dres flows to res_mid unchanged;
         * the branch sees it through the same mask. */
        const float *dbranch = a.dres;
        if (m->opt->drop_active) {
            k->copy(a.tmp, a.dres, N * C * sizeof *a.tmp);
            llm_dropout_apply(m, a.tmp, N * C, 2 * l + 1);
            dbranch = a.tmp;
        }
        weight_backward(m, a.dhsw, G(w2), dbranch, hsw, w2, n, F, C);
        if (m->lora_rank)
            lora_backward(m, &a, l, LLM_LORA_W2, LLM_LORA_W2, dbranch, hsw, a.dhsw, n);
        k->swiglu_backward(a.dh13, a.dhsw, h13, n, F);
        weight_backward(m, a.da, G(w13), a.dh13, a2, w13, n, C, 2 * F);
        if (m->lora_rank) {
            lora_backward(m, &a, l, LLM_LORA_W1, LLM_LORA_W1, a.dh13, a2, a.da, n);
            lora_backward(m, &a, l, LLM_LORA_W3, LLM_LORA_W3, a.dh13, a2, a.da, n);
        }
        k->rmsnorm_backward(a.dres, GN(fn), a.da, res_mid, fn, rstd2, n, C);
        /* res_mid = res + drop(wo(atty)). */
        if (m->opt->drop_active) {
            k->copy(a.tmp, a.dres, N * C * sizeof *a.tmp);
            llm_dropout_apply(m, a.tmp, N * C, 2 * l);
        }
        weight_backward(m, a.datty, G(wo), dbranch, atty, wo, n, m->OS, C);
        if (m->lora_rank)
            lora_backward(m, &a, l, LLM_LORA_O, LLM_LORA_O, dbranch, atty, a.datty, n);
        (bf16_attention(m) ? k->attention_backward_bf16 : k->attention_backward)(
            a.dqkv, a.logits, a.datty, qkv, atty, att, start, B, T, H, KVH, m->hd);
        k->rope_backward(a.dqkv, m->rope_cos, m->rope_sin, B, T, H + KVH, m->hd, m->QS);
        weight_backward(m, a.da, G(wqkv), a.dqkv, a1, wqkv, n, C, m->QS);
        if (m->lora_rank)
            lora_backward(m, &a, l, LLM_LORA_Q, LLM_LORA_V, a.dqkv, a1, a.da, n);
        k->rmsnorm_backward(a.dres, GN(an), a.da, res, an, rstd1, n, C);
    }
    if (G(m->wte))
        k->embedding_backward(G(m->wte), a.dres, tok, n, C);
    if (m->opt->drop_active)
        m->opt->drop_micro++;   /* the next micro-batch of this step gets new masks */
    return LLM_OK;
}

