/* classify.c: the classifier head over the backbone of model.c (pooling,
 * linear layer, softmax or sigmoid losses and their gradients), labelled
 * documents and their batcher, prediction (packed documents, threads over
 * batches),
 * calibration (temperature, per-label thresholds), and log-likelihood
 * scores of continuations for zero-shot use of a language model. */
#include <limits.h>
#include <math.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "internal.h"
#include "kernels.h"
#include "model.h"
#include "train/train.h"

/* ---------------------------------------------------------------- pooling */

int llm_pooling_parse(const char *name, llm_pooling *p)
{
    if (name && strcmp(name, "last") == 0)
        *p = LLM_POOL_LAST;
    else if (name && strcmp(name, "mean") == 0)
        *p = LLM_POOL_MEAN;
    else
        return llm_fail(LLM_ERR_INVALID, "unknown pooling '%s' (last, mean)",
                        name ? name : "(null)");
    return LLM_OK;
}

const char *llm_pooling_name(llm_pooling p)
{
    return p == LLM_POOL_MEAN ? "mean" : "last";
}

/* ------------------------------------------------------------------- head */

static int check_label(const char *s, int i)
{
    size_t n = strlen(s), bad;
    if (n == 0)
        return llm_fail(LLM_ERR_INVALID, "label %d is empty", i + 1);
    if (strpbrk(s, "\t\r\n"))
        return llm_fail(LLM_ERR_INVALID, "label '%s' holds a tab or line break", s);
    if (!llm_utf8_check(s, n, &bad))
        return llm_fail(LLM_ERR_INVALID, "label %d is not valid UTF-8", i + 1);
    return LLM_OK;
}

int llm_model_add_head(llm_model *m, const llm_head_params *p, uint64_t seed)
{
    int K = p->n_labels, C = m->cfg.dim;
    if (K < 1 || K > (1 << 20) || (!p->multi_label && K < 2))
        return llm_fail(LLM_ERR_INVALID, "a %s classifier needs %s labels, not %d",
                        p->multi_label ? "multi-label" : "single-label",
                        p->multi_label ? "1 or more" : "2 or more", K);
    if (p->pooling != LLM_POOL_LAST && p->pooling != LLM_POOL_MEAN)
        return llm_fail(LLM_ERR_INVALID, "unknown pooling %d", (int)p->pooling);
    for (int i = 0; i < K; i++) {
        int rc = check_label(p->labels[i], i);
        if (rc)
            return rc;
        for (int j = 0; j < i; j++)
            if (strcmp(p->labels[i], p->labels[j]) == 0)
                return llm_fail(LLM_ERR_INVALID, "label '%s' appears twice", p->labels[i]);
    }
    if (m->lora_rank)
        return llm_fail(LLM_ERR_INVALID, "add the head before the adapters (llm_model_lora())");
    int rc0 = llm_model_own(m);   /* the block grows: not in a mapped file */
    if (rc0)
        return rc0;
    const llm_kernels *k = m->k;
    char **names = calloc((size_t)K, sizeof *names);
    float *thr = malloc((size_t)K * sizeof *thr);
    size_t nh = (size_t)K * C + (size_t)K, n = m->n_backbone + nh;
    float *head = malloc(nh * sizeof *head);   /* drawn here, then uploaded */
    int fresh = !m->head;
    if (fresh)
        m->head = calloc(1, sizeof *m->head);
    float *params = thr && names && head && m->head ? k->alloc(n * sizeof *params) : NULL;
    int ok = params != NULL;
    for (int i = 0; ok && i < K; i++)
        ok = (names[i] = strdup(p->labels[i])) != NULL;
    if (!ok) {
        k->free(params);
        for (int i = 0; names && i < K; i++)
            free(names[i]);
        free(names);
        free(thr);
        free(head);
        if (fresh)
            llm_head_free(m);
        return llm_fail(LLM_ERR_NOMEM, "out of memory for a head of %d labels", K);
    }
    k->copy(params, m->params, m->n_backbone * sizeof *params);
    k->free(m->params);
    for (int i = 0; m->head->labels && i < m->head->n_labels; i++)
        free(m->head->labels[i]);
    free(m->head->labels);
    free(m->head->thresholds);
    llm_optim_drop(m);
    m->opt->steps = 0;
    m->params = params;
    m->n_params = n;
    m->head->n_labels = K;
    m->head->labels = names;
    m->head->thresholds = thr;
    m->head->multi_label = p->multi_label ? 1 : 0;
    m->head->pooling = p->pooling;
    m->head->temperature = 1.0;
    m->pass->ready = m->head->ready = m->head->B = 0;
    llm_model_views(m);
    llm_rng r;
    llm_rng_seed(&r, seed);
    for (size_t i = 0; i < (size_t)K * C; i++)
        head[i] = (float)(0.02 * llm_rng_normal(&r));
    for (int i = 0; i < K; i++) {
        head[(size_t)K * C + i] = 0.0f;
        thr[i] = 0.5f;
    }
    k->upload(m->head->w, head, nh * sizeof *head);   /* head_b follows head_w */
    free(head);
    return LLM_OK;
}

void llm_head_free(llm_model *m)
{
    llm_head *h = m->head;
    if (!h)
        return;
    for (int i = 0; h->labels && i < h->n_labels; i++)
        free(h->labels[i]);
    free(h->labels);
    free(h->thresholds);
    m->k->free(h->cls);
    free(h->cls_host);
    free(h->lens);
    free(h);
    m->head = NULL;
}

int llm_model_n_labels(const llm_model *m)
{
    return llm_n_labels(m);
}

const char *llm_model_label(const llm_model *m, int i)
{
    return i >= 0 && i < llm_n_labels(m) ? m->head->labels[i] : NULL;
}

int llm_model_multi_label(const llm_model *m)
{
    return m->head ? m->head->multi_label : 0;
}

llm_pooling llm_model_pooling(const llm_model *m)
{
    return m->head ? (llm_pooling)m->head->pooling : LLM_POOL_LAST;
}

double llm_model_temperature(const llm_model *m)
{
    return m->head ? m->head->temperature : 1.0;
}

const float *llm_model_thresholds(const llm_model *m)
{
    return m->head ? m->head->thresholds : NULL;
}

int llm_model_set_calibration(llm_model *m, double temperature, const float *thresholds)
{
    if (!m->head)
        return llm_fail(LLM_ERR_INVALID, "the model is not a classifier");
    if (!(temperature > 0) || !isfinite(temperature))
        return llm_fail(LLM_ERR_INVALID, "temperature (%g) must be finite and > 0",
                        temperature);
    for (int i = 0; thresholds && i < m->head->n_labels; i++)
        if (!(thresholds[i] >= 0 && thresholds[i] <= 1))
            return llm_fail(LLM_ERR_INVALID, "threshold of '%s' (%g) must be in [0, 1]",
                            m->head->labels[i], thresholds[i]);
    m->head->temperature = temperature;
    if (thresholds)
        memcpy(m->head->thresholds, thresholds, (size_t)m->head->n_labels * sizeof *thresholds);
    return LLM_OK;
}

int llm_model_freeze(llm_model *m, int frozen)
{
    if (!m->head)
        return llm_fail(LLM_ERR_INVALID, "only a classifier's backbone can be frozen "
                        "(llm_model_add_head() first)");
    m->head->frozen = frozen ? 1 : 0;
    return LLM_OK;
}

/* ---------------------------------------------------------- forward, loss */

/* Buffers of the head: pooled (B, C) | logits (B, K) | dlogits (B, K) |
 * dpooled (B, C). */
static int cls_reserve(llm_model *m, int B)
{
    size_t need = (size_t)B * (2 * (size_t)m->cfg.dim + 2 * (size_t)m->head->n_labels);
    need += (size_t)m->head->n_labels;   /* the host side's copy of the bias */
    if (need > m->head->cls_cap) {
        m->k->free(m->head->cls);
        free(m->head->cls_host);
        m->head->cls_cap = 0;
        m->head->cls = m->k->alloc(need * sizeof *m->head->cls);
        m->head->cls_host = malloc(need * sizeof *m->head->cls_host);
        if (!m->head->cls || !m->head->cls_host)
            return llm_fail(LLM_ERR_NOMEM, "out of memory");
        m->head->cls_cap = need;
    }
    if ((size_t)B > m->head->lens_cap) {
        free(m->head->lens);
        m->head->lens_cap = 0;
        if (!(m->head->lens = malloc((size_t)B * sizeof *m->head->lens)))
            return llm_fail(LLM_ERR_NOMEM, "out of memory");
        m->head->lens_cap = (size_t)B;
    }
    return LLM_OK;
}

static double softplus(double x)
{
    return (x > 0 ? x : 0) + log1p(exp(-fabs(x)));
}

/* Loss of logits (B, K) against y; gradient into dlog. */
static int cls_loss(const llm_model *m, const float *logits, int B,
                    const llm_cls_targets *y, float *dlog, double *loss)
{
    int K = m->head->n_labels;
    for (int k = 0; y->weights && k < K; k++)
        if (!(y->weights[k] >= 0) || !isfinite(y->weights[k]))
            return llm_fail(LLM_ERR_INVALID, "class weight %d (%g) must be finite and >= 0",
                            k, y->weights[k]);
    if (!m->head->multi_label) {
        if (!y->labels)
            return llm_fail(LLM_ERR_INVALID, "a single-label classifier needs labels");
        double wsum = 0, sum = 0;
        for (int b = 0; b < B; b++) {
            int lab = y->labels[b];
            if (lab < 0 || lab >= K)
                return llm_fail(LLM_ERR_RANGE, "label %d of row %d is outside [0, %d)",
                                lab, b, K);
            wsum += y->weights ? y->weights[lab] : 1.0;
        }
        if (!(wsum > 0))
            return llm_fail(LLM_ERR_INVALID, "the labels of the batch all weigh 0");
        for (int b = 0; b < B; b++) {
            const float *z = logits + (size_t)b * K;
            float *d = dlog + (size_t)b * K;
            int lab = y->labels[b];
            double w = y->weights ? y->weights[lab] : 1.0, mx = z[0], s = 0;
            for (int k = 1; k < K; k++)
                mx = z[k] > mx ? z[k] : mx;
            for (int k = 0; k < K; k++)
                s += exp(z[k] - mx);
            double lse = mx + log(s);
            sum += w * (lse - z[lab]);
            for (int k = 0; k < K; k++)
                d[k] = (float)(w * (exp(z[k] - lse) - (k == lab)) / wsum);
        }
        *loss = sum / wsum;
        return LLM_OK;
    }
    if (!y->targets)
        return llm_fail(LLM_ERR_INVALID, "a multi-label classifier needs targets");
    double sum = 0, scale = 1.0 / ((double)B * K);
    for (size_t i = 0; i < (size_t)B * K; i++) {
        double t = y->targets[i], x = logits[i];
        if (!(t >= 0 && t <= 1))
            return llm_fail(LLM_ERR_RANGE, "target %g of row %zu is outside [0, 1]", t,
                            i / (size_t)K);
        double pw = y->weights ? y->weights[i % (size_t)K] : 1.0;
        double sg = 1.0 / (1.0 + exp(-x));
        sum += pw * t * softplus(-x) + (1 - t) * softplus(x);
        dlog[i] = (float)((pw * t * (sg - 1) + (1 - t) * sg) * scale);
    }
    *loss = sum * scale;
    return LLM_OK;
}

int llm_cls_forward(llm_model *m, const int32_t *tokens, const int32_t *lengths,
                    int B, int T, const llm_cls_targets *y, float *loss)
{
    if (!m->head)
        return llm_fail(LLM_ERR_INVALID, "the model is a language model, not a classifier");
    m->head->ready = m->head->B = 0;
    if (B < 1 || T < 1 || T > m->cfg.context)
        return llm_fail(LLM_ERR_INVALID, "batch %d x %d: need B >= 1 and 1 <= T <= context (%d)",
                        B, T, m->cfg.context);
    for (int b = 0; b < B; b++)
        if (lengths[b] < 1 || lengths[b] > T)
            return llm_fail(LLM_ERR_INVALID, "length %d of row %d is outside [1, %d]",
                            lengths[b], b, T);
    int rc = cls_reserve(m, B);
    if (!rc)
        rc = llm_model_forward_hidden(m, tokens, NULL, NULL, B, T);
    if (rc)
        return rc;
    int C = m->cfg.dim, K = m->head->n_labels;
    const llm_kernels *k = m->k;
    /* The pooling, the bias and the loss run on the host, over copies. */
    float *owned;
    const float *h = llm_host_view(k, llm_model_hidden(m), (size_t)B * T * C, &owned);
    if (!h)
        return LLM_ERR_NOMEM;
    float *pooled = m->head->cls_host, *logits = pooled + (size_t)B * C, *dlog = logits + (size_t)B * K;
    float *bias = dlog + (size_t)B * K + (size_t)B * C;
    memcpy(m->head->lens, lengths, (size_t)B * sizeof *lengths);
    for (int b = 0; b < B; b++) {
        float *p = pooled + (size_t)b * C;
        const float *hb = h + (size_t)b * T * C;
        int len = lengths[b];
        if (m->head->pooling == LLM_POOL_LAST) {
            memcpy(p, hb + (size_t)(len - 1) * C, (size_t)C * sizeof *p);
            continue;
        }
        for (int c = 0; c < C; c++) {
            double s = 0;
            for (int t = 0; t < len; t++)
                s += hb[(size_t)t * C + c];
            p[c] = (float)(s / len);
        }
    }
    free(owned);
    float *pooled_d = m->head->cls, *logits_d = pooled_d + (size_t)B * C;
    k->upload(pooled_d, pooled, (size_t)B * C * sizeof *pooled);
    k->matmul_forward(logits_d, pooled_d, m->head->w, B, C, K);
    k->download(logits, logits_d, (size_t)B * K * sizeof *logits);
    k->download(bias, m->head->b, (size_t)K * sizeof *bias);
    for (int b = 0; b < B; b++)
        for (int j = 0; j < K; j++)
            logits[(size_t)b * K + j] += bias[j];
    m->head->B = B;
    if (!y) {
        if (loss)
            *loss = 0;
        return LLM_OK;
    }
    double l = 0;
    if ((rc = cls_loss(m, logits, B, y, dlog, &l)))
        return rc;
    if (!(y->lm_weight >= 0) || !isfinite(y->lm_weight))
        return llm_fail(LLM_ERR_INVALID, "language modelling weight %g must be finite and "
                        ">= 0", y->lm_weight);
    m->head->lm = 0;
    if (y->lm_weight > 0 && !m->head->frozen) {
        /* Each real position predicts the next real token of its row. */
        int n = B * T;
        int32_t *tgt = m->pass->ids_host + (size_t)n;
        size_t count = 0;
        for (int b = 0; b < B; b++)
            for (int t = 0; t < T; t++) {
                int32_t v = t + 1 < lengths[b] ? tokens[(size_t)b * T + t + 1] : -1;
                tgt[(size_t)b * T + t] = v;
                count += v >= 0;
            }
        if (count) {
            l += llm_model_lm_loss(m, y->lm_weight);
            m->head->lm = 1;
        }
    }
    if (loss)
        *loss = (float)l;
    m->head->ready = 1;
    return LLM_OK;
}

const float *llm_cls_logits(const llm_model *m)
{
    return m->head && m->head->B ? m->head->cls_host + (size_t)m->head->B * m->cfg.dim : NULL;
}

/* The pooling's gradient: dpooled (B, C), device, added into da (B, T, C),
 * device, on the host. */
static int pool_backward(const llm_model *m, const float *ddpooled, float *dda)
{
    int B = m->pass->B, T = m->pass->T, C = m->cfg.dim;
    size_t nda = (size_t)B * T * C;
    float *owned_p, *owned_a;
    const float *dpooled = llm_host_view(m->k, ddpooled, (size_t)B * C, &owned_p);
    float *da = dpooled ? llm_host_edit(m->k, dda, nda, &owned_a) : NULL;
    if (!da) {
        free(owned_p);
        return LLM_ERR_NOMEM;
    }
    for (int b = 0; b < B; b++) {
        const float *dp = dpooled + (size_t)b * C;
        float *db = da + (size_t)b * T * C;
        int len = m->head->lens[b];
        if (m->head->pooling == LLM_POOL_LAST) {
            for (int c = 0; c < C; c++)
                db[(size_t)(len - 1) * C + c] += dp[c];
            continue;
        }
        for (int t = 0; t < len; t++)
            for (int c = 0; c < C; c++)
                db[(size_t)t * C + c] += dp[c] / (float)len;
    }
    free(owned_p);
    llm_host_done(m->k, dda, owned_a, nda);
    return LLM_OK;
}

int llm_cls_backward(llm_model *m)
{
    if (!m->head || !m->head->ready)
        return llm_fail(LLM_ERR_INVALID, "backward needs a classifier forward with labels first");
    m->head->ready = 0;
    if (!m->opt->grads) {
        int rc = llm_model_zero_grad(m);
        if (rc)
            return rc;
    }
    int B = m->pass->B, T = m->pass->T, C = m->cfg.dim, K = m->head->n_labels;
    const llm_kernels *k = m->k;
    float *pooled = m->head->cls, *dlog = pooled + (size_t)B * C + (size_t)B * K;
    float *dpooled = dlog + (size_t)B * K;
    const float *hdlog = m->head->cls_host + (size_t)B * C + (size_t)B * K;
    float *gbias = m->head->cls_host + (size_t)B * (2 * C + 2 * K);
    k->upload(dlog, hdlog, (size_t)B * K * sizeof *dlog);
    /* The head is the first thing that trains (g_off: past the backbone
     * under adapters, else 0). */
    size_t g = m->g_off;
    float *gw = m->opt->grads + ((size_t)(m->head->w - m->params) - g);
    float *gb = m->opt->grads + ((size_t)(m->head->b - m->params) - g);
    k->matmul_backward(m->head->frozen ? NULL : dpooled, gw, dlog, pooled, m->head->w, B, C, K);
    k->download(gbias, gb, (size_t)K * sizeof *gbias);
    for (int j = 0; j < K; j++) {
        double s = 0;
        for (int b = 0; b < B; b++)
            s += hdlog[(size_t)b * K + j];
        gbias[j] += (float)s;
    }
    k->upload(gb, gbias, (size_t)K * sizeof *gbias);
    if (m->head->frozen)
        return LLM_OK;
    float *da = llm_model_dhidden(m);
    if (m->head->lm)
        llm_model_lm_backward(m);   /* the auxiliary LM loss's gradient: da first */
    else
        k->zero(da, (size_t)B * T * C * sizeof *da);
    int rc = pool_backward(m, dpooled, da);
    return rc ? rc : llm_model_backward_hidden(m);
}

int llm_cls_backward_input(llm_model *m, const float *dlogits)
{
    if (!m->head || !m->head->cls || !m->pass->acts)
        return llm_fail(LLM_ERR_INVALID, "backward needs a classifier forward first");
    int B = m->pass->B, T = m->pass->T, C = m->cfg.dim, K = m->head->n_labels;
    const llm_kernels *k = m->k;
    if (!m->opt->grad_sink && !(m->opt->grad_sink = k->alloc((size_t)C * sizeof *m->opt->grad_sink)))
        return llm_fail(LLM_ERR_NOMEM, "out of memory");
    float *pooled = m->head->cls, *dlog = pooled + (size_t)B * C + (size_t)B * K;
    float *dpooled = dlog + (size_t)B * K;
    k->upload(dlog, dlogits, (size_t)B * K * sizeof *dlog);
    k->matmul_backward(dpooled, NULL, dlog, pooled, m->head->w, B, C, K);
    float *da = llm_model_dhidden(m);
    k->zero(da, (size_t)B * T * C * sizeof *da);
    int rc = pool_backward(m, dpooled, da);
    if (rc)
        return rc;
    m->pass->input_grad = 1;
    rc = llm_model_backward_hidden(m);
    m->pass->input_grad = 0;
    m->pass->ready = m->head->ready = 0;
    return rc;
}

void llm_cls_probs(const llm_model *m, const float *logits, size_t n, float *probs)
{
    if (!m->head)   /* (a language model: no labels) */
        return;
    int K = m->head->n_labels;
    double inv = 1.0 / m->head->temperature;
    for (size_t b = 0; b < n; b++) {
        const float *z = logits + b * K;
        float *p = probs + b * K;
        if (m->head->multi_label) {
            for (int k = 0; k < K; k++)
                p[k] = (float)(1.0 / (1.0 + exp(-inv * z[k])));
            continue;
        }
        double mx = z[0], s = 0;
        for (int k = 1; k < K; k++)
            mx = z[k] > mx ? z[k] : mx;
        double e[64], *ep = K <= 64 ? e : NULL;
        for (int k = 0; k < K; k++) {
            double v = exp(inv * (z[k] - mx));
            s += v;
            if (ep)
                ep[k] = v;
        }
        for (int k = 0; k < K; k++)
            p[k] = (float)((ep ? ep[k] : exp(inv * (z[k] - mx))) / s);
    }
}

/* ---------------------------------------------------------------- encoding */

/* The end of the longest prefix of s[0..n) of at most `cap` bytes that does
 * not split a UTF-8 sequence. */
static size_t utf8_cut(const char *s, size_t n, size_t cap)
{
    if (n <= cap)
        return n;
    size_t k = cap;
    while (k > 0 && ((unsigned char)s[k] & 0xC0) == 0x80)
        k--;
    return k;
}

static int push2(llm_ids *v, int32_t x)
{
    int rc = llm_ids_push(v, x);
    return rc ? rc : llm_ids_push(v, x);
}

/* text[0..n) at byte `at` of the document: ids into out, their spans. */
static int encode_at(const llm_tok *t, const char *text, size_t n, size_t at, llm_ids *out,
                     llm_ids *spans)
{
    if (!spans)
        return llm_tok_encode(t, text, n, out);
    size_t from = spans->len;
    int rc = llm_tok_encode_spans(t, text, n, out, spans);
    for (size_t i = from; !rc && i < spans->len; i++)
        if (spans->data[i] >= 0)
            spans->data[i] += (int32_t)at;
    return rc;
}

static int cls_encode(const llm_tok *t, const char *text, size_t n, int max_tokens,
                      llm_ids *out, llm_ids *spans, int *truncated)
{
    if (truncated)
        *truncated = 0;
    out->len = 0;
    if (max_tokens != 0 && max_tokens < 3)
        return llm_fail(LLM_ERR_INVALID, "documents need room for 3 tokens, not %d",
                        max_tokens);
    int bos = llm_tok_bos_id(t), eos = llm_tok_eos_id(t), rc;
    if (spans) {
        spans->len = 0;
        if (n > (size_t)INT32_MAX / 2)
            return llm_fail(LLM_ERR_RANGE, "a text of %zu bytes is too long for offsets", n);
    }
    if (bos >= 0 && ((rc = llm_ids_push(out, bos)) || (spans && (rc = push2(spans, -1)))))
        return rc;
    if (max_tokens > 0) {
        /* A piece is at most 16 characters (64 bytes): this prefix holds
         * more tokens than fit, whenever the text is longer. */
        size_t cap = (size_t)max_tokens * 64 + 256;
        size_t k = utf8_cut(text, n, cap);
        if (k < n && truncated)
            *truncated = 1;
        if ((rc = encode_at(t, text, k, 0, out, spans)))
            return rc;
        size_t keep = (size_t)max_tokens - (eos >= 0);
        if (out->len > keep) {
            out->len = keep;
            if (spans)
                spans->len = 2 * keep;
            if (truncated)
                *truncated = 1;
        }
    } else {
        enum { PIECE = 1 << 16 };
        size_t off = 0;
        while (off < n) {
            size_t k = utf8_cut(text + off, n - off, PIECE);
            if (off + k < n) {        /* cut at the last space of the piece */
                size_t s = k;
                while (s > PIECE / 2 && text[off + s - 1] != ' ')
                    s--;
                if (s > PIECE / 2)
                    k = s;
            }
            if (k == 0)
                k = n - off < 4 ? n - off : 4;   /* unreachable with valid UTF-8 */
            if ((rc = encode_at(t, text + off, k, off, out, spans)))
                return rc;
            off += k;
        }
    }
    if (eos >= 0 && ((rc = llm_ids_push(out, eos)) || (spans && (rc = push2(spans, -1)))))
        return rc;
    return LLM_OK;
}

int llm_cls_encode(const llm_tok *t, const char *text, size_t n, int max_tokens,
                   llm_ids *out, int *truncated)
{
    return cls_encode(t, text, n, max_tokens, out, NULL, truncated);
}

typedef struct {
    const llm_tok *t;
    const char *text;
    const size_t *off, *len;
    size_t n;
    int max_tokens;
    llm_ids *out;
    int *truncated, *status;
} encode_job;

#define ENCODE_CHUNK 8   /* texts per task */

static void encode_task(void *ctx, int task, int thread)
{
    const encode_job *j = ctx;
    (void)thread;
    size_t end = ((size_t)task + 1) * ENCODE_CHUNK;
    for (size_t i = (size_t)task * ENCODE_CHUNK; i < end && i < j->n; i++) {
        int tr = 0;
        const char *p = j->len[i] ? j->text + j->off[i] : "";
        j->status[i] = cls_encode(j->t, p, j->len[i], j->max_tokens, &j->out[i], NULL, &tr);
        if (j->truncated)
            j->truncated[i] = tr;
    }
}

int llm_cls_encode_many(const llm_tok *t, const char *text, const size_t *off,
                        const size_t *len, size_t n, int max_tokens, llm_ids *out,
                        int *truncated)
{
    if (n == 0)
        return LLM_OK;
    if ((n + ENCODE_CHUNK - 1) / ENCODE_CHUNK > INT32_MAX)
        return llm_fail(LLM_ERR_INVALID, "%zu texts are too many for one call", n);
    int *status = malloc(n * sizeof *status);
    if (!status)
        return llm_fail(LLM_ERR_NOMEM, "out of memory");
    encode_job j = { t, text, off, len, n, max_tokens, out, truncated, status };
    llm_kernels_parallel((int)((n + ENCODE_CHUNK - 1) / ENCODE_CHUNK), 0, encode_task, &j);
    int rc = LLM_OK;
    for (size_t i = 0; i < n && !rc; i++)
        if (status[i])   /* again on this thread, for its message */
            rc = cls_encode(t, text + off[i], len[i], max_tokens, &out[i], NULL, NULL);
    free(status);
    return rc;
}

int llm_cls_encode_spans(const llm_tok *t, const char *text, size_t n, int max_tokens,
                         llm_ids *out, llm_ids *spans, int *truncated)
{
    return cls_encode(t, text, n, max_tokens, out, spans, truncated);
}

/* -------------------------------------------------------------- prediction */

/* Probabilities (n, K) of documents packed b at a time: pooled (b, C) and
 * logits (b, K) are this thread's scratch, in device memory, and z (b, K)
 * on the host. */
static int predict_chunk(llm_model *m, llm_session *s, const int32_t *const *docs,
                         const size_t *lens, int b, float *pooled, float *logits, float *z,
                         float *p)
{
    int K = m->head->n_labels, C = m->cfg.dim;
    int rc = llm_session_pooled(s, docs, lens, b, m->head->pooling, pooled);
    if (rc)
        return rc;
    /* The head: a few dot products per document, in a fixed order. */
    m->k->linear_f64(logits, pooled, m->head->w, m->head->b, b, C, K);
    m->k->download(z, logits, (size_t)b * K * sizeof *z);
    if ((rc = llm_device_ok(m->k)))
        return rc;
    llm_cls_probs(m, z, (size_t)b, p);
    return LLM_OK;
}

static int cls_predict(llm_model *m, const int32_t *const *docs, const size_t *lens,
                       size_t n, const size_t *owner, size_t n_records, int B, float *probs);

int llm_cls_predict(llm_model *m, const int32_t *const *docs, const size_t *lens,
                    size_t n, const size_t *owner, size_t n_records, int B, float *probs)
{
    if (!m->lora_rank || !m->head)
        return cls_predict(m, docs, lens, n, owner, n_records, B, probs);
    /* The inference forward knows no adapters: it reads the merged weights,
     * pointed to for the duration (validation while training adapters). */
    size_t n2;
    float *w = llm_model_lora_merged(m, &n2);
    if (!w)
        return LLM_ERR_NOMEM;
    float *v[4] = { m->wqkv, m->wo, m->w13, m->w2 };
    m->wo = w + (m->wo - m->wqkv);
    m->w13 = w + (m->w13 - m->wqkv);
    m->w2 = w + (m->w2 - m->wqkv);
    m->wqkv = w;
    int rc = cls_predict(m, docs, lens, n, owner, n_records, B, probs);
    m->wqkv = v[0];
    m->wo = v[1];
    m->w13 = v[2];
    m->w2 = v[3];
    m->k->free(w);
    return rc;
}

/* cls_predict()'s batches: chunk documents from docs + task * chunk each;
 * every thread's scratch and its lowest failing batch (fail_at, nchunks
 * when none) with status and message. */
typedef struct {
    char msg[256];
    size_t fail_at;
    int rc;
} predict_slot;

typedef struct {
    llm_model *m;
    llm_session **sess;    /* (threads) one packed-forward session each */
    const int32_t *const *docs;
    const size_t *lens;
    size_t n, chunk, nchunks;
    int K, C;
    float *scratch;        /* (threads, chunk * 2K) host */
    float *dev;            /* (threads, chunk * (C + K)) device */
    float *dp;             /* (n, K) probabilities by document */
    predict_slot *slot;    /* (threads) */
    atomic_int failed;     /* some batch failed: skip the rest */
} predict_job;

static void predict_task(void *ctx, int task, int id)
{
    predict_job *j = ctx;
    if (atomic_load_explicit(&j->failed, memory_order_relaxed))
        return;
    size_t K = (size_t)j->K, s = (size_t)task * j->chunk;
    int b = j->n - s < j->chunk ? (int)(j->n - s) : (int)j->chunk;
    float *pooled = j->dev + (size_t)id * j->chunk * (j->C + K);
    float *z = j->scratch + (size_t)id * j->chunk * 2 * K, *p = z + j->chunk * K;
    int e = predict_chunk(j->m, j->sess[id], j->docs + s, j->lens + s, b, pooled,
                          pooled + j->chunk * j->C, z, p);
    if (e) {
        predict_slot *sl = &j->slot[id];
        if ((size_t)task < sl->fail_at) {
            sl->fail_at = (size_t)task;
            sl->rc = e;
            snprintf(sl->msg, sizeof sl->msg, "%s", llm_errmsg());
        }
        atomic_store_explicit(&j->failed, 1, memory_order_relaxed);
        return;
    }
    memcpy(j->dp + s * K, p, (size_t)b * K * sizeof *p);
}

static int cls_predict(llm_model *m, const int32_t *const *docs, const size_t *lens,
                       size_t n, const size_t *owner, size_t n_records, int B, float *probs)
{
    if (!m->head)
        return llm_fail(LLM_ERR_INVALID, "the model is a language model, not a classifier");
    if (B < 1)
        return llm_fail(LLM_ERR_INVALID, "batch size %d must be positive", B);
    int K = m->head->n_labels, C = m->cfg.dim;
    int rc = llm_check_docs(m, docs, lens, n);
    if (rc)
        return rc;
    for (size_t i = 0; owner && i < n; i++) {
        if (owner[i] >= n_records)
            return llm_fail(LLM_ERR_RANGE, "window %zu belongs to record %zu of %zu", i,
                            owner[i], n_records);
    }
    size_t nout = owner ? n_records : n;
    if (owner)
        memset(probs, 0, nout * K * sizeof *probs);
    if (n == 0)
        return LLM_OK;
    /* Threads take batches of documents, each batch one single-threaded
     * forward: no barrier inside a batch, and every thread busy once there
     * are as many batches as threads. */
    int nt = llm_kernels_threads();
    size_t chunk = (n + (size_t)nt - 1) / (size_t)nt;
    chunk = chunk < (size_t)B ? chunk : (size_t)B;
    size_t nchunks = (n + chunk - 1) / chunk;
    if (nchunks > INT_MAX)
        return llm_fail(LLM_ERR_RANGE, "%zu batches of %zu documents are too many", nchunks,
                        chunk);
    nt = nchunks < (size_t)nt ? (int)nchunks : nt;
    llm_session **sess = calloc((size_t)nt, sizeof *sess);
    if (!sess)
        return llm_fail(LLM_ERR_NOMEM, "out of memory");
    for (int id = 0; id < nt && !rc; id++)
        rc = llm_session_new_packed(m, &sess[id]);
    float *scratch = malloc((size_t)nt * chunk * 2 * (size_t)K * sizeof *scratch);
    float *dev = m->k->alloc((size_t)nt * chunk * (C + (size_t)K) * sizeof *dev);
    float *dp = owner ? malloc(n * K * sizeof *dp) : probs;   /* by document */
    uint32_t *count = owner ? calloc(nout ? nout : 1, sizeof *count) : NULL;
    predict_slot *slot = malloc((size_t)nt * sizeof *slot);
    if (rc)
        goto done;
    if (!scratch || !dev || !dp || (owner && !count) || !slot) {
        rc = llm_fail(LLM_ERR_NOMEM, "out of memory");
        goto done;
    }
    for (int id = 0; id < nt; id++)
        slot[id].fail_at = nchunks;
    predict_job job = {m, sess, docs, lens, n, chunk, nchunks, K, C, scratch, dev, dp, slot,
                       0};
    llm_kernels_parallel((int)nchunks, nt, predict_task, &job);
    const predict_slot *first = NULL;   /* the lowest failing batch */
    for (int id = 0; id < nt; id++)
        if (slot[id].fail_at < nchunks && (!first || slot[id].fail_at < first->fail_at))
            first = &slot[id];
    if (first) {
        rc = llm_fail(first->rc, "%s", first->msg);
        goto done;
    }
    for (size_t i = 0; owner && i < n; i++) {
        float *dst = probs + owner[i] * K;
        for (int k = 0; k < K; k++)
            dst[k] += dp[i * K + k];
        count[owner[i]]++;
    }
    for (size_t r = 0; owner && r < nout; r++)
        for (int k = 0; count[r] > 1 && k < K; k++)
            probs[r * K + k] /= (float)count[r];
done:
    for (int id = 0; id < nt; id++)
        llm_session_free(sess[id]);
    free(sess);
    free(scratch);
    m->k->free(dev);
    if (owner)
        free(dp);
    free(count);
    free(slot);
    return rc;
}

int llm_lm_score(llm_model *m, const int32_t *tokens, const int32_t *targets,
                 int B, int T, double *logprob)
{
    int V = m->cfg.vocab_size;
    if (B < 1 || T < 1 || T > m->cfg.context)
        return llm_fail(LLM_ERR_INVALID, "batch %d x %d: need B >= 1 and 1 <= T <= context (%d)",
                        B, T, m->cfg.context);
    for (size_t i = 0; i < (size_t)B * T; i++)
        if (targets[i] >= V)
            return llm_fail(LLM_ERR_RANGE, "target %d at position %zu is outside the "
                            "vocabulary [0, %d)", targets[i], i, V);
    int rc = llm_model_forward(m, tokens, NULL, B, T, NULL);
    if (rc)
        return rc;
    const float *lg = llm_model_logits(m);
    for (int b = 0; b < B; b++) {
        double sum = 0;
        for (int t = 0; t < T; t++) {
            int32_t y = targets[(size_t)b * T + t];
            if (y < 0)
                continue;
            const float *z = lg + ((size_t)b * T + t) * V;
            double mx = z[0], s = 0;
            for (int v = 1; v < V; v++)
                mx = z[v] > mx ? z[v] : mx;
            for (int v = 0; v < V; v++)
                s += exp(z[v] - mx);
            sum += z[y] - mx - log(s);
        }
        logprob[b] = sum;
    }
    return LLM_OK;
}

/* ------------------------------------------------------------------ data */

#define MAX_DOC 65536

struct llm_cls_data {
    int K;
    llm_ids ids;          /* every document's ids, concatenated */
    llm_ids labs;         /* every document's labels, concatenated */
    size_t *off, *loff;   /* (count + 1) starts in ids and labs */
    size_t count, off_cap, loff_cap;
};

int llm_cls_data_new(int n_labels, llm_cls_data **out)
{
    *out = NULL;
    if (n_labels < 1)
        return llm_fail(LLM_ERR_INVALID, "%d labels: need at least 1", n_labels);
    llm_cls_data *d = calloc(1, sizeof *d);
    if (!d || !(d->off = calloc(1, sizeof *d->off)) || !(d->loff = calloc(1, sizeof *d->loff))) {
        llm_cls_data_free(d);
        return llm_fail(LLM_ERR_NOMEM, "out of memory");
    }
    d->K = n_labels;
    d->off_cap = d->loff_cap = 1;
    *out = d;
    return LLM_OK;
}

void llm_cls_data_free(llm_cls_data *d)
{
    if (!d)
        return;
    llm_ids_free(&d->ids);
    llm_ids_free(&d->labs);
    free(d->off);
    free(d->loff);
    free(d);
}

int llm_cls_data_add(llm_cls_data *d, const int32_t *ids, size_t n,
                     const int32_t *labels, size_t n_labels)
{
    if (n < 1 || n > MAX_DOC)
        return llm_fail(LLM_ERR_INVALID, "a document of %zu tokens (1 to %d)", n, MAX_DOC);
    if (n_labels < 1 || n_labels > (size_t)d->K)
        return llm_fail(LLM_ERR_INVALID, "a document with %zu labels (1 to %d)", n_labels,
                        d->K);
    for (size_t i = 0; i < n_labels; i++)
        if (labels[i] < 0 || labels[i] >= d->K)
            return llm_fail(LLM_ERR_RANGE, "label %d is outside [0, %d)", labels[i], d->K);
    int rc = llm_ids_check(ids, n);
    if (!rc)
        rc = llm_grow((void **)&d->off, &d->off_cap, d->count + 2, sizeof *d->off);
    if (!rc)
        rc = llm_grow((void **)&d->loff, &d->loff_cap, d->count + 2, sizeof *d->loff);
    if (!rc)
        rc = llm_ids_reserve(&d->ids, d->ids.len + n);
    if (!rc)
        rc = llm_ids_reserve(&d->labs, d->labs.len + n_labels);
    if (rc)
        return rc;
    memcpy(d->ids.data + d->ids.len, ids, n * sizeof *ids);
    d->ids.len += n;
    memcpy(d->labs.data + d->labs.len, labels, n_labels * sizeof *labels);
    d->labs.len += n_labels;
    d->count++;
    d->off[d->count] = d->ids.len;
    d->loff[d->count] = d->labs.len;
    return LLM_OK;
}

size_t llm_cls_data_count(const llm_cls_data *d)
{
    return d->count;
}

void llm_cls_data_doc(const llm_cls_data *d, size_t i, const int32_t **ids, size_t *n,
                      const int32_t **labels, size_t *n_labels)
{
    if (ids)
        *ids = d->ids.data + d->off[i];
    if (n)
        *n = d->off[i + 1] - d->off[i];
    if (labels)
        *labels = d->labs.data + d->loff[i];
    if (n_labels)
        *n_labels = d->loff[i + 1] - d->loff[i];
}

void llm_cls_data_label_counts(const llm_cls_data *d, uint64_t *counts)
{
    memset(counts, 0, (size_t)d->K * sizeof *counts);
    for (size_t i = 0; i < d->labs.len; i++)
        counts[d->labs.data[i]]++;
}

int llm_cls_class_weights(const llm_cls_data *d, int multi_label, float *weights)
{
    int K = d->K;
    uint64_t *cnt = malloc((size_t)K * sizeof *cnt);
    if (!cnt)
        return llm_fail(LLM_ERR_NOMEM, "out of memory");
    llm_cls_data_label_counts(d, cnt);
    double n = (double)d->count;
    for (int k = 0; k < K; k++) {
        if (cnt[k] == 0)
            weights[k] = 1.0f;
        else if (multi_label)
            weights[k] = (float)((n - (double)cnt[k]) / (double)cnt[k]);
        else
            weights[k] = (float)(n / ((double)K * (double)cnt[k]));
    }
    free(cnt);
    return LLM_OK;
}

int llm_batcher_new_docs(const llm_cls_data *d, uint64_t seed, llm_batcher **out)
{
    return llm_batcher_new_items(d, d->count, seed, out);
}

/* Row b of a (B, T) batch from document i. */
static void fill_row(const llm_cls_data *d, size_t i, int b, int T, int32_t *tokens,
                     int32_t *lengths, int32_t *labels, float *targets)
{
    const int32_t *ids, *lab;
    size_t n, nl;
    llm_cls_data_doc(d, i, &ids, &n, &lab, &nl);
    int32_t *row = tokens + (size_t)b * T;
    memcpy(row, ids, n * sizeof *row);
    for (size_t t = n; t < (size_t)T; t++)
        row[t] = 0;
    lengths[b] = (int32_t)n;
    if (labels)
        labels[b] = lab[0];
    if (targets) {
        float *tg = targets + (size_t)b * d->K;
        for (int k = 0; k < d->K; k++)
            tg[k] = 0;
        for (size_t j = 0; j < nl; j++)
            tg[lab[j]] = 1;
    }
}

int llm_batcher_next_docs(llm_batcher *b, int B, int32_t *tokens, int32_t *lengths,
                          int *T, int32_t *labels, float *targets)
{
    const llm_cls_data *d = llm_batcher_docs(b);
    if (!d)
        return llm_fail(LLM_ERR_INVALID, "the batcher is not over documents");
    size_t stack[256], *idx = B <= 256 ? stack : malloc((size_t)B * sizeof *idx);
    if (!idx)
        return llm_fail(LLM_ERR_NOMEM, "out of memory");
    size_t maxlen = 1;
    for (int r = 0; r < B; r++) {
        idx[r] = (size_t)llm_batcher_take(b);
        size_t n = d->off[idx[r] + 1] - d->off[idx[r]];
        maxlen = n > maxlen ? n : maxlen;
    }
    *T = (int)maxlen;
    for (int r = 0; r < B; r++)
        fill_row(d, idx[r], r, *T, tokens, lengths, labels, targets);
    if (idx != stack)
        free(idx);
    return LLM_OK;
}

/* ------------------------------------------------------------ evaluation */

int llm_cls_eval(llm_model *m, const llm_cls_data *d, int B, float *logits,
                 llm_cls_eval_result *r)
{
    memset(r, 0, sizeof *r);
    if (!m->head)
        return llm_fail(LLM_ERR_INVALID, "the model is a language model, not a classifier");
    if (d->K != m->head->n_labels)
        return llm_fail(LLM_ERR_INVALID, "data of %d labels for a classifier of %d", d->K,
                        m->head->n_labels);
    if (B < 1 || d->count == 0)
        return llm_fail(LLM_ERR_INVALID, "nothing to evaluate");
    int K = m->head->n_labels, ctx = m->cfg.context;
    size_t maxlen = 1;
    for (size_t i = 0; i < d->count; i++) {
        size_t n = d->off[i + 1] - d->off[i];
        if (n > (size_t)ctx)
            return llm_fail(LLM_ERR_INVALID, "document %zu has %zu tokens, more than the "
                            "context (%d)", i, n, ctx);
        maxlen = n > maxlen ? n : maxlen;
    }
    int32_t *tok = malloc((size_t)B * maxlen * sizeof *tok);
    int32_t *len = malloc((size_t)B * sizeof *len), *lab = malloc((size_t)B * sizeof *lab);
    float *tg = malloc((size_t)B * K * sizeof *tg);
    int rc = LLM_OK;
    double loss_sum = 0, right = 0;
    if (!tok || !len || !lab || !tg)
        rc = llm_fail(LLM_ERR_NOMEM, "out of memory");
    for (size_t s = 0; s < d->count && !rc; s += (size_t)B) {
        int b = d->count - s < (size_t)B ? (int)(d->count - s) : B;
        int T = 1;
        for (int i = 0; i < b; i++) {
            size_t n = d->off[s + i + 1] - d->off[s + i];
            T = (int)n > T ? (int)n : T;
        }
        for (int i = 0; i < b; i++)
            fill_row(d, s + (size_t)i, i, T, tok, len, lab, tg);
        llm_cls_targets y = { lab, tg, NULL, 0 };
        float loss;
        if ((rc = llm_cls_forward(m, tok, len, b, T, &y, &loss)))
            break;
        m->head->ready = 0;
        loss_sum += (double)loss * b;
        const float *z = llm_cls_logits(m);
        if (logits)
            memcpy(logits + s * K, z, (size_t)b * K * sizeof *z);
        for (int i = 0; i < b; i++) {
            const float *zi = z + (size_t)i * K;
            if (!m->head->multi_label) {
                int best = 0;
                for (int k = 1; k < K; k++)
                    best = zi[k] > zi[best] ? k : best;
                right += best == lab[i];
                continue;
            }
            int ok = 1;
            for (int k = 0; k < K; k++)
                ok &= (zi[k] > 0) == (tg[(size_t)i * K + k] > 0.5f);
            right += ok;
        }
    }
    free(tok);
    free(len);
    free(lab);
    free(tg);
    if (rc)
        return rc;
    r->docs = d->count;
    r->loss = loss_sum / (double)d->count;
    r->accuracy = right / (double)d->count;
    return LLM_OK;
}

/* Mean NLL of d under logits * beta. */
static double nll_at(const llm_model *m, const float *logits, const llm_cls_data *d,
                     double beta)
{
    int K = m->head->n_labels;
    double sum = 0;
    for (size_t i = 0; i < d->count; i++) {
        const float *z = logits + i * K;
        const int32_t *lab = d->labs.data + d->loff[i];
        size_t nl = d->loff[i + 1] - d->loff[i];
        if (!m->head->multi_label) {
            double mx = z[0], s = 0;
            for (int k = 1; k < K; k++)
                mx = z[k] > mx ? z[k] : mx;
            for (int k = 0; k < K; k++)
                s += exp(beta * (z[k] - mx));
            sum += log(s) - beta * (z[lab[0]] - mx);
            continue;
        }
        for (int k = 0; k < K; k++) {
            int pos = 0;
            for (size_t j = 0; j < nl; j++)
                pos |= lab[j] == k;
            sum += softplus(pos ? -beta * z[k] : beta * z[k]) / K;
        }
    }
    return sum / (double)d->count;
}

int llm_cls_fit_temperature(const llm_model *m, const float *logits,
                            const llm_cls_data *d, double *temperature)
{
    if (d->count == 0 || d->K != llm_n_labels(m))
        return llm_fail(LLM_ERR_INVALID, "no validation documents to fit a temperature on");
    /* Golden-section search over beta = 1 / T: the NLL is convex in beta. */
    const double g = (sqrt(5.0) - 1) / 2;
    double a = 1.0 / 20, b = 1.0 / 0.05;
    double c = b - g * (b - a), e = a + g * (b - a);
    double fc = nll_at(m, logits, d, c), fe = nll_at(m, logits, d, e);
    for (int it = 0; it < 80; it++) {
        if (fc <= fe) {
            b = e; e = c; fe = fc;
            c = b - g * (b - a);
            fc = nll_at(m, logits, d, c);
        } else {
            a = c; c = e; fc = fe;
            e = a + g * (b - a);
            fe = nll_at(m, logits, d, e);
        }
    }
    *temperature = 2.0 / (a + b);
    return LLM_OK;
}

typedef struct {
    float p;
    int pos;
} scored;

static int cmp_scored(const void *a, const void *b)
{
    float x = ((const scored *)a)->p, y = ((const scored *)b)->p;
    return x > y ? -1 : x < y;
}

int llm_cls_tune_thresholds(const llm_model *m, const float *probs,
                            const llm_cls_data *d, float *thresholds)
{
    int K = llm_n_labels(m);
    size_t n = d->count;
    if (n == 0 || K == 0 || d->K != K)
        return llm_fail(LLM_ERR_INVALID, "no validation documents to tune thresholds on");
    scored *s = malloc(n * sizeof *s);
    if (!s)
        return llm_fail(LLM_ERR_NOMEM, "out of memory");
    for (int k = 0; k < K; k++) {
        size_t P = 0;
        for (size_t i = 0; i < n; i++) {
            s[i].p = probs[i * K + k];
            s[i].pos = 0;
            for (size_t j = d->loff[i]; j < d->loff[i + 1]; j++)
                s[i].pos |= d->labs.data[j] == k;
            P += (size_t)s[i].pos;
        }
        thresholds[k] = 0.5f;
        if (P == 0)
            continue;
        qsort(s, n, sizeof *s, cmp_scored);
        /* Accepting the top j: F1 = 2 TP / (j + P); cut only between
         * distinct probabilities. */
        double best = -1;
        size_t bj = 0, tp = 0;
        for (size_t j = 1; j <= n; j++) {
            tp += (size_t)s[j - 1].pos;
            if (j < n && s[j].p == s[j - 1].p)
                continue;
            double f1 = 2.0 * (double)tp / (double)(j + P);
            if (f1 > best) {
                best = f1;
                bj = j;
            }
        }
        float lo = s[bj - 1].p, hi = bj < n ? s[bj].p : 0.0f;
        thresholds[k] = 0.5f * (lo + hi);
    }
    free(s);
    return LLM_OK;
}
