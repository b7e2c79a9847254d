/* optim.c: the trainer state: gradients (allocation, norm, scaling,
 * clipping, the copies of an all-reduce), AdamW and its moments, and
 * residual dropout's masks. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "elementwise.h"
#include "internal.h"
#include "kernels.h"
#include "model/model.h"
#include "train.h"

void llm_optim_drop(llm_model *m)
{
    const llm_kernels *k = m->k;
    k->free(m->opt->grads);
    k->free(m->opt->adam_m);
    k->free(m->opt->adam_v);
    m->opt->grads = m->opt->adam_m = m->opt->adam_v = NULL;
}

void llm_model_reset_optimizer(llm_model *m)
{
    llm_optim_drop(m);
    m->opt->steps = 0;
    m->opt->drop_micro = 0;
}

void llm_optim_free(llm_model *m)
{
    if (!m->opt)
        return;
    llm_optim_drop(m);
    m->k->free(m->opt->grad_sink);
    free(m->opt);
    m->opt = NULL;
}


/* ------------------------------------------------------------------------ */
/* Residual dropout. A mask bit is a hash of (seed, step, micro-batch, site,
 * position), so the backward pass recomputes the forward's mask instead of
 * storing it, and no thread count or batching changes it. */

int llm_model_set_dropout(llm_model *m, double p, uint64_t seed)
{
    if (!(p >= 0.0 && p < 1.0))
        return llm_fail_param(LLM_ERR_INVALID, "dropout", "dropout probability %g must be in "
                              "[0, 1)", p);
    m->opt->drop_p = p;
    m->opt->drop_seed = seed;
    return LLM_OK;
}

int llm_model_set_label_smoothing(llm_model *m, double eps)
{
    if (!(eps >= 0.0 && eps < 1.0))
        return llm_fail_param(LLM_ERR_INVALID, "label_smoothing", "label smoothing %g must be "
                              "in [0, 1)", eps);
    m->opt->smooth = (float)eps;
    return LLM_OK;
}

int llm_model_set_precision(llm_model *m, const char *precision)
{
    int bf16 = precision && strcmp(precision, "bf16") == 0;
    if (!bf16 && precision && strcmp(precision, "f32") != 0)
        return llm_fail_param(LLM_ERR_INVALID, "precision", "unknown precision '%s' (f32, "
                              "bf16)", precision);
    if (bf16 && (!m->k->matmul_forward_bf16 || !m->k->matmul_backward_bf16))
        return llm_fail_param(LLM_ERR_UNSUPPORTED, "precision", "the '%s' kernels have no "
                              "bf16 products", m->k->name);
    m->opt->bf16 = bf16;
    return LLM_OK;
}

void llm_model_set_training(llm_model *m, int on)
{
    m->opt->training = on != 0;
}

/* x[i] *= mask(i) / (1 - p) for the mask of `site` (2 per layer): the
 * dropout kernel, keyed by a hash of the step, micro-batch and site. */
void llm_dropout_apply(const llm_model *m, float *x, size_t n, int site)
{
    uint64_t base = llm_mix64(m->opt->drop_seed ^ llm_mix64((uint64_t)m->opt->steps * 0x9e3779b97f4a7c15ULL +
                                               (uint64_t)m->opt->drop_micro * 0xd1b54a32d192ed03ULL +
                                               (uint64_t)site));
    m->k->dropout(x, n, m->opt->drop_p, base);
}

/* ------------------------------------------------------------ gradients */

/* Floats that train, from g_off on: gradients and moments hold these. */
static size_t grad_count(const llm_model *m)
{
    return m->n_params - m->g_off;
}

int llm_grads_alloc(llm_model *m)
{
    if (m->opt->grads)
        return LLM_OK;
    m->opt->grads = m->k->alloc(grad_count(m) * sizeof *m->opt->grads);
    if (!m->opt->grads)
        return llm_fail(LLM_ERR_NOMEM, "out of memory for gradients");
    m->k->zero(m->opt->grads, grad_count(m) * sizeof *m->opt->grads);
    return LLM_OK;
}

size_t llm_model_grad_size(const llm_model *m)
{
    return m->opt->grads ? grad_count(m) : 0;
}

void llm_model_grad_copy(llm_model *m, float *host, int to_host)
{
    size_t n = llm_model_grad_size(m) * sizeof *host;
    if (to_host)
        m->k->download(host, m->opt->grads, n);
    else
        m->k->upload(m->opt->grads, host, n);
}

void llm_model_set_micro(llm_model *m, int64_t micro)
{
    m->opt->drop_micro = micro;
}

int llm_model_zero_grad(llm_model *m)
{
    int rc = llm_grads_alloc(m);
    if (rc)
        return rc;
    m->k->zero(m->opt->grads, grad_count(m) * sizeof *m->opt->grads);
    return LLM_OK;
}

/* Gradient views: the same offsets as the parameters, less g_off; NULL for
 * a frozen weight (below g_off: the kernels then skip its gradient). */
double llm_model_grad_norm(const llm_model *m)
{
    if (!m->opt->grads)
        return 0.0;
    return sqrt(m->k->sum_squares(m->opt->grads, grad_count(m)));
}

void llm_model_scale_grad(llm_model *m, float s)
{
    if (m->opt->grads)
        m->k->scale(m->opt->grads, grad_count(m), s);
}

double llm_model_clip_grad(llm_model *m, double max_norm)
{
    double norm = llm_model_grad_norm(m);
    if (m->opt->grads && max_norm > 0 && norm > max_norm)
        m->k->scale(m->opt->grads, grad_count(m), (float)(max_norm / (norm + 1e-6)));
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
    if (m->opt->adam_m)
        return LLM_OK;
    size_t n = grad_count(m) * sizeof *m->opt->adam_m;
    m->opt->adam_m = m->k->alloc(n);
    m->opt->adam_v = m->k->alloc(n);
    if (!m->opt->adam_m || !m->opt->adam_v) {
        m->k->free(m->opt->adam_m);
        m->k->free(m->opt->adam_v);
        m->opt->adam_m = m->opt->adam_v = NULL;
        return llm_fail(LLM_ERR_NOMEM, "out of memory for optimizer state");
    }
    m->k->zero(m->opt->adam_m, n);
    m->k->zero(m->opt->adam_v, n);
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
    if (!m->opt->grads)
        return llm_fail(LLM_ERR_INVALID, "AdamW step without gradients");
    if (!isfinite(m->k->sum_squares(m->opt->grads, grad_count(m))))
        return llm_fail(LLM_ERR_NUMERIC, "a gradient is not finite; step %lld skipped",
                        (long long)m->opt->steps + 1);
    int rc = llm_model_adamw_alloc(m);
    if (rc == LLM_OK)
        rc = llm_model_own(m);   /* a mapped file is read-only */
    if (rc)
        return rc;
    if (m->opt->steps >= INT32_MAX)
        return llm_fail(LLM_ERR_RANGE, "too many AdamW steps");
    int t = (int)++m->opt->steps;
    m->opt->drop_micro = 0;
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
        if (m->head) {
            size_t nw = (size_t)m->head->n_labels * m->cfg.dim;
            m->k->adamw_update(m->head->w, m->opt->grads, m->opt->adam_m, m->opt->adam_v, nw,
                               lr, b1, b2, eps, wd, t);
            m->k->adamw_update(m->head->b, m->opt->grads + nw, m->opt->adam_m + nw, m->opt->adam_v + nw,
                               (size_t)m->head->n_labels, lr, b1, b2, eps, 0.0f, t);
        }
        m->k->adamw_update(m->params + off, m->opt->grads + (off - g), m->opt->adam_m + (off - g),
                           m->opt->adam_v + (off - g), m->n_lora, lr, b1, b2, eps, wd, t);
        return LLM_OK;
    }
    if (!m->head || !m->head->frozen) {
        m->k->adamw_update(m->params, m->opt->grads, m->opt->adam_m, m->opt->adam_v, nwte,
                           lr, b1, b2, eps, o->decay_embedding ? wd : 0.0f, t);
        m->k->adamw_update(m->params + nwte, m->opt->grads + nwte, m->opt->adam_m + nwte,
                           m->opt->adam_v + nwte, m->n_nodecay - nwte, lr, b1, b2, eps, 0.0f, t);
        size_t off = m->n_nodecay;
        m->k->adamw_update(m->params + off, m->opt->grads + off, m->opt->adam_m + off,
                           m->opt->adam_v + off, m->n_backbone - off, lr, b1, b2, eps, wd, t);
    }
    if (m->head) {
        size_t off = m->n_backbone, nw = (size_t)m->head->n_labels * m->cfg.dim;
        m->k->adamw_update(m->params + off, m->opt->grads + off, m->opt->adam_m + off,
                           m->opt->adam_v + off, nw, lr, b1, b2, eps, wd, t);
        off += nw;
        m->k->adamw_update(m->params + off, m->opt->grads + off, m->opt->adam_m + off,
                           m->opt->adam_v + off, (size_t)m->head->n_labels, lr, b1, b2, eps, 0.0f, t);
    }
    return LLM_OK;
}

int64_t llm_model_steps(const llm_model *m)
{
    return m->opt->steps;
}

