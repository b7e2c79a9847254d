/* explain.c: attributions of a classifier's label to the tokens of one
 * document, by integrated gradients through the training backward pass
 * (Sundararajan et al., 2017) or by occlusion (each token left out in turn).
 *
 * The score explained is F = log p(label) for a single-label model (the
 * log-softmax of the logits at the model's temperature), or the label's
 * logit / temperature (its log-odds) for a multi-label one: a sum of
 * attributions then reads as a change of log-probability or log-odds.
 *
 * Integrated gradients: with e_i the embedding of token i, p the baseline
 * (a token's embedding, or zero) and F(a) the score when every attributed
 * position holds p + a (e_i - p) (BOS and EOS keep theirs), score_i =
 * (e_i - p) . integral over a in [0, 1] of dF/d(input_i) at a, which sums
 * to F(1) - F(0) (completeness). The integral is a Gauss-Legendre rule of
 * `steps` nodes (as Captum's default), exact for polynomials of degree
 * 2 steps - 1; the nodes run as the rows of a batch, as many per forward as
 * the activation budget allows.
 *
 * The zero baseline is a poor point for a network of RMSNorms without
 * biases: near a = 0 every norm works in its epsilon regime and F turns
 * sharply at several scales of a (down to 1e-4 and below on a small random
 * model), where a rule in a misses the turns. For it the nodes are spread
 * evenly in log a from about sqrt(eps / mean square of the embeddings) up,
 * which resolves the first turn (on an ag_news classifier, 32 nodes give
 * the sum 1.3899 for F(x) - F(0) = 1.3900). A baseline token keeps the path
 * away from zero and F smooth, but is an arbitrary point: an untrained
 * <unk> can look like one label to the model, and then every real token
 * seems to argue against it. llm-classify uses zero. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "internal.h"
#include "model.h"

/* Gauss-Legendre nodes and weights on [0, 1]: Newton's method on the
 * Legendre polynomial P_n from Chebyshev guesses, in double. */
static void gauss_legendre(int n, double *x, double *w)
{
    for (int i = 0; i < n; i++) {
        double z = cos(M_PI * (i + 0.75) / (n + 0.5)), dp = 1;
        for (int it = 0; it < 100; it++) {
            double p0 = 1, p1 = z;     /* P_{k-1}, P_k from P_0, P_1 */
            for (int k = 2; k <= n; k++) {
                double p2 = ((2.0 * k - 1) * z * p1 - (k - 1.0) * p0) / k;
                p0 = p1;
                p1 = p2;
            }
            dp = n * (z * p1 - p0) / (z * z - 1);   /* P_n'(z) */
            double dz = p1 / dp;
            z -= dz;
            if (fabs(dz) < 1e-15)
                break;
        }
        /* z falls with i: x rises; weights of [-1, 1] halved for [0, 1]. */
        x[i] = (1 - z) / 2;
        w[i] = 1.0 / ((1 - z * z) * dp * dp);
    }
}

/* F of each row of the last classifier forward, and (with dlog) dF/dlogits
 * times weight[r]. */
static void score_rows(const llm_model *m, int rows, int label, const double *weight,
                       double *f, float *dlog)
{
    const float *z = llm_cls_logits(m);
    int K = m->head->n_labels;
    double inv = 1.0 / m->head->temperature;
    for (int r = 0; r < rows; r++) {
        const float *zr = z + (size_t)r * K;
        float *d = dlog ? dlog + (size_t)r * K : NULL;
        if (m->head->multi_label) {
            f[r] = inv * zr[label];
            for (int k = 0; d && k < K; k++)
                d[k] = k == label ? (float)(weight[r] * inv) : 0.0f;
            continue;
        }
        double mx = zr[0], s = 0;
        for (int k = 1; k < K; k++)
            mx = zr[k] > mx ? zr[k] : mx;
        for (int k = 0; k < K; k++)
            s += exp(inv * (zr[k] - mx));
        f[r] = inv * (zr[label] - mx) - log(s);
        for (int k = 0; d && k < K; k++) {
            double p = exp(inv * (zr[k] - mx)) / s;
            d[k] = (float)(weight[r] * inv * ((k == label) - p));
        }
    }
}

/* Rows of n tokens per forward, so that the activations the training pass
 * keeps stay near 256 MB: per position about L (8 C + 3 F + H n) floats and
 * the vocabulary-wide scratch; at most 4096 positions. */
static int rows_per_pass(const llm_model *m, int n, int want)
{
    const llm_config *c = &m->cfg;
    double per_pos = 4.0 * ((double)c->n_layers * (8.0 * c->dim + 3.0 * c->ffn_dim +
                                                   (double)c->n_heads * n) + c->vocab_size);
    double r = 256e6 / (per_pos * n);
    if (r * n > 4096)
        r = 4096.0 / n;
    int rows = r < 1 ? 1 : (int)r;
    return rows < want ? rows : want;
}

static int explain_ig(llm_model *m, const int32_t *ids, int n, const unsigned char *vary,
                      int label, int steps, int base, float *scores, double f[2])
{
    const llm_kernels *k = m->k;
    int C = m->cfg.dim, K = m->head->n_labels;
    int R = rows_per_pass(m, n, steps);
    double *x = malloc((size_t)steps * sizeof *x), *w = malloc((size_t)steps * sizeof *w);
    double *fr = malloc((size_t)R * sizeof *fr), *wr = malloc((size_t)R * sizeof *wr);
    int32_t *tok = malloc((size_t)R * n * sizeof *tok), *len = malloc((size_t)R * sizeof *len);
    float *scale = malloc((size_t)R * n * sizeof *scale);
    float *dlog = malloc((size_t)R * K * sizeof *dlog);
    /* Device memory: the gradient summed over the path, and two dot products. */
    float *g = k->alloc((size_t)n * C * sizeof *g), *dots = k->alloc(2 * sizeof *dots);
    int rc = LLM_OK;
    if (!x || !w || !fr || !wr || !tok || !len || !scale || !dlog || !g || !dots) {
        rc = llm_fail(LLM_ERR_NOMEM, "out of memory for explanations");
        goto done;
    }
    k->zero(g, (size_t)n * C * sizeof *g);
    /* The path's scale (see the top of the file): the sharpest turn is
     * near a = sqrt(eps / mean square) of the largest varied embedding. */
    double ms = 0;
    for (int i = 0; i < n; i++) {
        double q = k->sum_squares(m->wte + (size_t)ids[i] * C, (size_t)C) / C;
        if (vary[i] && q > ms)
            ms = q;
    }
    double a0 = ms > 0 ? sqrt(m->cfg.norm_eps / ms) : 1;
    double lambda = log(1 / (a0 < 1e-12 ? 1e-12 : a0)) + 2;
    lambda = lambda < 1 ? 1 : lambda;
    gauss_legendre(steps, x, w);
    for (int i = 0; base < 0 && i < steps; i++) {   /* a = (e^(lambda u) - 1) / (e^lambda - 1) */
        double den = expm1(lambda);
        w[i] *= lambda * exp(lambda * x[i]) / den;
        x[i] = expm1(lambda * x[i]) / den;
    }
    for (int r = 0; r < R; r++) {
        wr[r] = 1;
        memcpy(tok + (size_t)r * n, ids, (size_t)n * sizeof *tok);
        len[r] = n;
    }
    m->pass->emb_scale = scale;
    m->pass->emb_base = base;
    /* F(x) at a = 1 and F(baseline) at a = 0, one row each. */
    for (int r = 0; r < 2 && !rc; r++) {
        for (int i = 0; i < n; i++)
            scale[i] = vary[i] ? (float)(1 - r) : 1.0f;
        if (!(rc = llm_cls_forward(m, tok, len, 1, n, NULL, NULL))) {
            score_rows(m, 1, label, wr, fr, NULL);
            f[r] = fr[0];
        }
    }
    for (int s0 = 0; s0 < steps && !rc; s0 += R) {
        int rows = steps - s0 < R ? steps - s0 : R;
        for (int r = 0; r < rows; r++) {
            wr[r] = w[s0 + r];
            for (int i = 0; i < n; i++)
                scale[(size_t)r * n + i] = vary[i] ? (float)x[s0 + r] : 1.0f;
        }
        if ((rc = llm_cls_forward(m, tok, len, rows, n, NULL, NULL)))
            break;
        score_rows(m, rows, label, wr, fr, dlog);
        if ((rc = llm_cls_backward_input(m, dlog)))
            break;
        const float *d = llm_model_dinput(m);
        for (int r = 0; r < rows; r++)
            k->axpy(g, C, d + (size_t)r * n * C, C, n, C, 1.0f);
    }
    /* score_i = (e_i - p) . g_i, each dot product a 1 x 1 matrix product. */
    for (int i = 0; i < n && !rc; i++) {
        float d2[2] = { 0, 0 };   /* (e_i . g_i, p . g_i) */
        k->matmul_forward(dots, g + (size_t)i * C, m->wte + (size_t)ids[i] * C, 1, C, 1);
        if (base >= 0)
            k->matmul_forward(dots + 1, g + (size_t)i * C, m->wte + (size_t)base * C, 1, C, 1);
        k->download(d2, dots, (base >= 0 ? 2 : 1) * sizeof *d2);
        scores[i] = vary[i] ? d2[0] - d2[1] : 0.0f;
    }
done:
    m->pass->emb_scale = NULL;
    m->pass->emb_base = -1;
    free(x);
    free(w);
    free(fr);
    free(wr);
    free(tok);
    free(len);
    free(scale);
    free(dlog);
    k->free(g);
    k->free(dots);
    return rc;
}

static int explain_occlusion(llm_model *m, const int32_t *ids, int n,
                             const unsigned char *vary, int label, float *scores,
                             double f[2])
{
    int R = n > 1 ? rows_per_pass(m, n - 1, n) : 1;
    int32_t *tok = malloc((size_t)R * n * sizeof *tok), *len = malloc((size_t)R * sizeof *len);
    int *pos = malloc((size_t)R * sizeof *pos);
    double *fr = malloc((size_t)R * sizeof *fr), one = 1;
    int rc = LLM_OK;
    if (!tok || !len || !pos || !fr) {
        rc = llm_fail(LLM_ERR_NOMEM, "out of memory for explanations");
        goto done;
    }
    len[0] = n;
    if ((rc = llm_cls_forward(m, ids, len, 1, n, NULL, NULL)))
        goto done;
    score_rows(m, 1, label, &one, f, NULL);
    f[1] = NAN;
    for (int i = 0; i < n; i++)
        scores[i] = 0.0f;
    for (int i = 0; i < n && n > 1;) {
        int rows = 0;
        for (; i < n && rows < R; i++) {
            if (!vary[i])
                continue;
            int32_t *t = tok + (size_t)rows * (n - 1);
            memcpy(t, ids, (size_t)i * sizeof *t);
            memcpy(t + i, ids + i + 1, (size_t)(n - 1 - i) * sizeof *t);
            len[rows] = n - 1;
            pos[rows++] = i;
        }
        if (!rows)
            break;
        if ((rc = llm_cls_forward(m, tok, len, rows, n - 1, NULL, NULL)))
            break;
        score_rows(m, rows, label, &one, fr, NULL);
        for (int r = 0; r < rows; r++)
            scores[pos[r]] = (float)(f[0] - fr[r]);
    }
done:
    free(tok);
    free(len);
    free(pos);
    free(fr);
    return rc;
}

int llm_cls_explain(llm_model *m, const int32_t *ids, int n, const unsigned char *vary,
                    int label, llm_explain_method method, int steps, int baseline,
                    float *scores, double f[2])
{
    if (!m->head)
        return llm_fail(LLM_ERR_INVALID, "the model is a language model, not a classifier");
    if (label < 0 || label >= m->head->n_labels)
        return llm_fail(LLM_ERR_RANGE, "label %d is outside [0, %d)", label, m->head->n_labels);
    if (n < 1 || n > m->cfg.context)
        return llm_fail(LLM_ERR_INVALID, "a document of %d tokens: need 1 to %d", n,
                        m->cfg.context);
    if (method == LLM_EXPLAIN_IG && (steps < 1 || steps > 1024))
        return llm_fail(LLM_ERR_INVALID, "%d integration steps: need 1 to 1024", steps);
    if (baseline >= m->cfg.vocab_size || baseline < -1)
        return llm_fail(LLM_ERR_RANGE, "baseline token %d is outside the vocabulary",
                        baseline);
    if (method != LLM_EXPLAIN_IG && method != LLM_EXPLAIN_OCCLUSION)
        return llm_fail(LLM_ERR_INVALID, "unknown explanation method %d", (int)method);
    for (int i = 0; i < n; i++)   /* (integrated gradients reads their embeddings first) */
        if (ids[i] < 0 || ids[i] >= m->cfg.vocab_size)
            return llm_fail(LLM_ERR_RANGE, "token %d at position %d is outside the "
                            "vocabulary [0, %d)", ids[i], i, m->cfg.vocab_size);
    int training = m->opt->training;
    m->opt->training = 0;   /* no dropout */
    int rc = method == LLM_EXPLAIN_IG
                 ? explain_ig(m, ids, n, vary, label, steps, baseline, scores, f)
                 : explain_occlusion(m, ids, n, vary, label, scores, f);
    m->opt->training = training;
    return rc;
}

int llm_explain_method_parse(const char *name, llm_explain_method *out)
{
    if (name && strcmp(name, "ig") == 0)
        *out = LLM_EXPLAIN_IG;
    else if (name && strcmp(name, "occlusion") == 0)
        *out = LLM_EXPLAIN_OCCLUSION;
    else
        return llm_fail(LLM_ERR_INVALID, "unknown explanation method '%s' (ig, occlusion)",
                        name ? name : "(null)");
    return LLM_OK;
}
