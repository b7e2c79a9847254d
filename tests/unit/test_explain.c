/* test_explain.c: attributions (explain.c) against independent references.
 * Integrated gradients: completeness, the scores summing to F(x) minus
 * F(baseline), for the whole document and for each token attributed alone
 * (which checks every position's gradient along its own path); F(x) against
 * the probabilities of llm_cls_predict() (the inference forward).
 * Occlusion: each score against llm_cls_predict() of the document without
 * that token. Both on single- and multi-label heads, last and mean pooling,
 * with a temperature, and on a document longer than one batch of steps. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "llm.h"
#include "testparam.h"

static int failures;

#define FAIL(...) do { failures++; printf("FAIL "); printf(__VA_ARGS__); printf("\n"); } while (0)
#define CHECK_RC(call) do { int rc_ = (call); if (rc_ != LLM_OK) { \
    printf("FAIL %s:%d: %s: %s\n", __FILE__, __LINE__, #call, llm_errmsg()); exit(1); } } while (0)

static const char *labels[] = { "alpha", "beta", "gamma" };

static llm_model *classifier(int multi, llm_pooling pool, int context, uint64_t seed)
{
    llm_config c = { .vocab_size = 13, .dim = 16, .n_layers = 2, .n_heads = 2,
                     .n_kv_heads = 1, .ffn_dim = 24, .context = context, .rope_base = 1e4,
                     .norm_eps = 1e-5, .tied = 1 };
    llm_model *m;
    CHECK_RC(llm_model_create(&c, seed, "cpu", &m));
    llm_head_params hp = { 3, labels, multi, pool };
    CHECK_RC(llm_model_add_head(m, &hp, seed + 1));
    /* Weights large enough that the score is far from linear in the input. */
    llm_rng r;
    llm_rng_seed(&r, seed + 2);
    for (size_t i = 0; i < llm_model_param_count(m); i++) {
        llm_param p;
        CHECK_RC(llm_model_param_at(m, i, &p));
        float *d = param_get(m, i, LLM_PARAM_DATA);
        for (size_t j = 0; j < p.numel; j++)
            d[j] = p.ndim == 1 ? (float)(1.0 + 0.3 * llm_rng_normal(&r))
                               : (float)(0.2 * llm_rng_normal(&r));
        param_set(m, i, LLM_PARAM_DATA, d);
        free(d);
    }
    return m;
}

/* F from llm_cls_predict(): log p (single label) or log-odds (multi). */
static double predicted_f(llm_model *m, const int32_t *ids, size_t n, int label, int multi)
{
    float p[3];
    const int32_t *docs[1] = { ids };
    CHECK_RC(llm_cls_predict(m, docs, &n, 1, NULL, 0, 1, p));
    return multi ? log(p[label]) - log1p(-p[label]) : log(p[label]);
}

static void ig(int multi, llm_pooling pool, double temperature, int n, int steps)
{
    llm_model *m = classifier(multi, pool, 64, 11 + (uint64_t)n);
    if (temperature != 1)
        CHECK_RC(llm_model_set_calibration(m, temperature, NULL));
    int32_t ids[64];
    unsigned char vary[64];
    float scores[64], one[64];
    for (int i = 0; i < n; i++) {
        ids[i] = (int32_t)((i * 5 + 2) % 13);
        vary[i] = i > 0 && i < n - 1;   /* BOS and EOS stay */
    }
    const char *what = multi ? "multi-label" : "single-label";
    for (int label = 0; label < 3; label++) {
        double f[2];
        CHECK_RC(llm_cls_explain(m, ids, n, vary, label, LLM_EXPLAIN_IG, steps, 0, scores, f));
        double ref = predicted_f(m, ids, (size_t)n, label, multi);
        if (!(fabs(f[0] - ref) <= 1e-4 + 1e-4 * fabs(ref)))
            FAIL("%s %s n=%d: F(x) %.7g, inference forward %.7g", what,
                 llm_pooling_name(pool), n, f[0], ref);
        double sum = 0, dif = f[0] - f[1];
        for (int i = 0; i < n; i++) {
            sum += scores[i];
            if (!vary[i] && scores[i] != 0)
                FAIL("%s: a kept position has score %g", what, scores[i]);
        }
        if (!(fabs(sum - dif) <= 0.01 * fabs(dif) + 1e-6))
            FAIL("%s %s n=%d T=%g label %d: scores sum to %.7g, F(x) - F(baseline) = %.7g",
                 what, llm_pooling_name(pool), n, temperature, label, sum, dif);
        /* Each token alone: its own path from zero to its embedding. */
        for (int i = 1; i < n - 1; i += 3) {
            unsigned char only[64] = { 0 };
            only[i] = 1;
            double g[2];
            CHECK_RC(llm_cls_explain(m, ids, n, only, label, LLM_EXPLAIN_IG, steps, 0, one, g));
            if (!(fabs(one[i] - (g[0] - g[1])) <= 0.01 * fabs(g[0] - g[1]) + 1e-6))
                FAIL("%s token %d alone: score %.7g, F(x) - F(token zeroed) = %.7g", what, i,
                     one[i], g[0] - g[1]);
        }
    }
    llm_model_free(m);
}

static void occlusion(int multi, llm_pooling pool)
{
    enum { N = 9 };
    llm_model *m = classifier(multi, pool, 16, 5);
    int32_t ids[N] = { 1, 4, 7, 10, 2, 5, 8, 11, 3 }, cut[N];
    unsigned char vary[N] = { 0, 1, 1, 1, 1, 1, 1, 1, 0 };
    float scores[N];
    double f[2];
    CHECK_RC(llm_cls_explain(m, ids, N, vary, 1, LLM_EXPLAIN_OCCLUSION, 0, -1, scores, f));
    double full = predicted_f(m, ids, N, 1, multi);
    for (int i = 0; i < N; i++) {
        if (!vary[i]) {
            if (scores[i] != 0)
                FAIL("occlusion: kept position %d has score %g", i, scores[i]);
            continue;
        }
        memcpy(cut, ids, (size_t)i * sizeof *cut);
        memcpy(cut + i, ids + i + 1, (size_t)(N - 1 - i) * sizeof *cut);
        double want = full - predicted_f(m, cut, N - 1, 1, multi);
        if (!(fabs(scores[i] - want) <= 1e-4 + 1e-4 * fabs(want)))
            FAIL("occlusion %s token %d: %.7g, inference forward says %.7g",
                 multi ? "multi" : "single", i, scores[i], want);
    }
    llm_model_free(m);
}

/* The zero baseline on a model at its initialisation (weights 0.02 N(0,1)):
 * completeness holds within 1% too. */
static void zero_baseline(void)
{
    llm_config c = { .vocab_size = 13, .dim = 16, .n_layers = 2, .n_heads = 2,
                     .n_kv_heads = 1, .ffn_dim = 24, .context = 16, .rope_base = 1e4,
                     .norm_eps = 1e-5, .tied = 1 };
    llm_model *m;
    CHECK_RC(llm_model_create(&c, 3, "cpu", &m));
    llm_head_params hp = { 3, labels, 0, LLM_POOL_MEAN };
    CHECK_RC(llm_model_add_head(m, &hp, 4));
    int32_t ids[8] = { 1, 5, 9, 2, 6, 10, 3, 7 };
    unsigned char vary[8] = { 0, 1, 1, 1, 1, 1, 1, 0 };
    float s[8];
    double f[2], sum = 0;
    CHECK_RC(llm_cls_explain(m, ids, 8, vary, 2, LLM_EXPLAIN_IG, 32, -1, s, f));
    for (int i = 0; i < 8; i++)
        sum += s[i];
    if (!(fabs(sum - (f[0] - f[1])) <= 0.01 * fabs(f[0] - f[1]) + 1e-7))
        FAIL("zero baseline: scores sum to %.7g, F(x) - F(0) = %.7g", sum, f[0] - f[1]);
    llm_model_free(m);
}

static void bad_input(void)
{
    llm_model *m = classifier(0, LLM_POOL_LAST, 8, 3);
    int32_t ids[9] = { 1, 2, 3, 4, 5, 6, 7, 8, 9 };
    unsigned char vary[9] = { 1, 1, 1, 1, 1, 1, 1, 1, 1 };
    float s[9];
    double f[2];
    if (llm_cls_explain(m, ids, 9, vary, 0, LLM_EXPLAIN_IG, 8, 0, s, f) == LLM_OK)
        FAIL("a document longer than the context was explained");
    if (llm_cls_explain(m, ids, 4, vary, 3, LLM_EXPLAIN_IG, 8, 0, s, f) == LLM_OK)
        FAIL("label 3 of 3 was explained");
    if (llm_cls_explain(m, ids, 4, vary, 0, LLM_EXPLAIN_IG, 0, 0, s, f) == LLM_OK)
        FAIL("0 steps were accepted");
    /* Ids outside the vocabulary: integrated gradients read their
     * embeddings before any forward checked them. */
    ids[2] = 1 << 28;
    for (int me = 0; me < 2; me++)
        if (llm_cls_explain(m, ids, 4, vary, 0, me ? LLM_EXPLAIN_OCCLUSION : LLM_EXPLAIN_IG, 8,
                            0, s, f) != LLM_ERR_RANGE)
            FAIL("token 2^28 was explained (%s)", me ? "occlusion" : "ig");
    ids[2] = -1;
    if (llm_cls_explain(m, ids, 4, vary, 0, LLM_EXPLAIN_IG, 8, 0, s, f) != LLM_ERR_RANGE)
        FAIL("token -1 was explained");
    ids[2] = 3;
    /* A one-token document: occlusion leaves nothing to score, IG works. */
    CHECK_RC(llm_cls_explain(m, ids, 1, vary, 0, LLM_EXPLAIN_OCCLUSION, 0, -1, s, f));
    if (s[0] != 0)
        FAIL("occlusion of a one-token document: %g", s[0]);
    CHECK_RC(llm_cls_explain(m, ids, 1, vary, 0, LLM_EXPLAIN_IG, 16, 0, s, f));
    if (!(fabs(s[0] - (f[0] - f[1])) <= 0.01 * fabs(f[0] - f[1]) + 1e-6))
        FAIL("one token: %g vs %g", s[0], f[0] - f[1]);
    llm_explain_method me;
    if (llm_explain_method_parse("shap", &me) == LLM_OK)
        FAIL("method 'shap' accepted");
    llm_model_free(m);
    llm_config c = { .vocab_size = 13, .dim = 8, .n_layers = 1, .n_heads = 1, .n_kv_heads = 1,
                     .ffn_dim = 8, .context = 8, .rope_base = 1e4, .norm_eps = 1e-5, .tied = 1 };
    CHECK_RC(llm_model_create(&c, 1, "cpu", &m));
    if (llm_cls_explain(m, ids, 4, vary, 0, LLM_EXPLAIN_IG, 8, 0, s, f) == LLM_OK)
        FAIL("a language model was explained");
    llm_model_free(m);
}

int main(void)
{
    for (int multi = 0; multi < 2; multi++) {
        ig(multi, LLM_POOL_LAST, 1.0, 7, 32);
        ig(multi, LLM_POOL_MEAN, 1.7, 12, 32);
        occlusion(multi, LLM_POOL_MEAN);
        occlusion(multi, LLM_POOL_LAST);
    }
    ig(0, LLM_POOL_MEAN, 1.0, 64, 100);  /* more steps than one pass holds (64) */
    zero_baseline();
    bad_input();
    printf("test_explain: %d failures\n", failures);
    return failures ? 1 : 0;
}
