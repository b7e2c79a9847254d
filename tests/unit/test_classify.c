/* test_classify.c: the classifier head (classify.c): loss, logits and every
 * gradient against the PyTorch fixtures of make_cls_reference.py and
 * against finite differences; padding invariance and window averaging of
 * prediction; save/load of labels and calibration, and rejection of bad
 * metadata; --freeze; temperature fitting and threshold tuning on cases
 * with known answers; document encoding with truncation; the document
 * batcher's determinism. */
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

static int close_enough(const char *what, const float *got, const float *ref, size_t n,
                        double atol, double rtol)
{
    for (size_t i = 0; i < n; i++) {
        double d = fabs((double)got[i] - ref[i]);
        if (!(d <= atol + rtol * fabs(ref[i]))) {
            FAIL("%s: [%zu] got %.9g want %.9g (tolerance %g + %g*|ref|)", what, i, got[i],
                 ref[i], atol, rtol);
            return 0;
        }
    }
    return 1;
}

static const char *fixtures(void)
{
    const char *d = getenv("FIXTURES");
    return d ? d : "tests/fixtures";
}

static const llm_st_tensor *need(const llm_st *f, const char *name, size_t numel)
{
    const llm_st_tensor *t = llm_st_find(f, name);
    if (!t || t->nbytes != numel * 4) {
        printf("FAIL fixture tensor '%s' missing or of the wrong size\n", name);
        exit(1);
    }
    return t;
}

static void *copy(const llm_st_tensor *t)
{
    void *p = malloc(t->nbytes ? t->nbytes : 1);
    if (!p)
        exit(1);
    memcpy(p, t->data, t->nbytes);
    return p;
}

static const char *labels4[] = { "alpha", "beta", "gamma", "delta" };

/* ------------------------------------------------------- PyTorch fixture */

static void test_fixture(const char *file, const char *device)
{
    char path[512], what[600];
    snprintf(path, sizeof path, "%s/%s", fixtures(), file);
    llm_st *f;
    if (llm_st_open(path, &f) != LLM_OK) {
        FAIL("cannot open %s: %s", path, llm_errmsg());
        return;
    }
    llm_config c = { 0 };
    c.vocab_size = atoi(llm_st_meta(f, "vocab_size"));
    c.dim = atoi(llm_st_meta(f, "dim"));
    c.n_layers = atoi(llm_st_meta(f, "n_layers"));
    c.n_heads = atoi(llm_st_meta(f, "n_heads"));
    c.n_kv_heads = atoi(llm_st_meta(f, "n_kv_heads"));
    c.ffn_dim = atoi(llm_st_meta(f, "ffn_dim"));
    c.context = atoi(llm_st_meta(f, "context"));
    c.rope_base = strtod(llm_st_meta(f, "rope_base"), NULL);
    c.norm_eps = strtod(llm_st_meta(f, "norm_eps"), NULL);
    c.tied = atoi(llm_st_meta(f, "tied"));
    int K = atoi(llm_st_meta(f, "n_labels")), multi = atoi(llm_st_meta(f, "multi_label"));
    llm_head_params hp = { K, labels4, multi, LLM_POOL_LAST };
    CHECK_RC(llm_pooling_parse(llm_st_meta(f, "pooling"), &hp.pooling));
    llm_model *m;
    CHECK_RC(llm_model_create(&c, 0, device, &m));
    CHECK_RC(llm_model_add_head(m, &hp, 1));
    size_t np = llm_model_param_count(m);
    for (size_t i = 0; i < np; i++) {
        llm_param p;
        CHECK_RC(llm_model_param_at(m, i, &p));
        float *d = copy(need(f, p.name, p.numel));
        param_set(m, i, LLM_PARAM_DATA, d);
        free(d);
    }
    const llm_st_tensor *ids = llm_st_find(f, "input_ids");
    int B = (int)ids->shape[0], T = (int)ids->shape[1];
    int32_t *tok = copy(ids), *len = copy(need(f, "lengths", (size_t)B));
    llm_cls_targets y = { NULL, NULL, copy(need(f, "weights", (size_t)K)), 0 };
    if (multi)
        y.targets = copy(need(f, "targets", (size_t)B * K));
    else
        y.labels = copy(need(f, "labels", (size_t)B));
    float *ref_logits = copy(need(f, "logits", (size_t)B * K));
    float *ref_loss = copy(need(f, "loss", 1));
    float loss;
    CHECK_RC(llm_model_zero_grad(m));
    CHECK_RC(llm_cls_forward(m, tok, len, B, T, &y, &loss));
    snprintf(what, sizeof what, "%s [%s] logits", file, device);
    close_enough(what, llm_cls_logits(m), ref_logits, (size_t)B * K, 1e-5, 1e-5);
    snprintf(what, sizeof what, "%s [%s] loss", file, device);
    close_enough(what, &loss, ref_loss, 1, 0, 2e-6);
    CHECK_RC(llm_cls_backward(m));
    for (size_t i = 0; i < np; i++) {
        llm_param p;
        char name[128];
        CHECK_RC(llm_model_param_at(m, i, &p));
        snprintf(name, sizeof name, "grad.%s", p.name);
        float *g = copy(need(f, name, p.numel));
        double gmax = 0;
        for (size_t j = 0; j < p.numel; j++)
            gmax = fmax(gmax, fabs(g[j]));
        snprintf(what, sizeof what, "%s [%s] %s", file, device, name);
        float *pg = param_get(m, i, LLM_PARAM_GRAD);
        close_enough(what, pg, g, p.numel, 1e-5 * gmax + 1e-9, 1e-4);
        free(pg);
        free(g);
    }
    free(tok);
    free(len);
    free((void *)y.weights);
    free((void *)y.targets);
    free((void *)y.labels);
    free(ref_logits);
    free(ref_loss);
    llm_model_free(m);
    llm_st_close(f);
}

/* ---------------------------------------------------- finite differences */

/* Norm weights 1 + 0.3 N(0,1), matrices scale * N(0,1), so that every
 * path carries signal. */
static void randomize(llm_model *m, uint64_t seed, double scale)
{
    llm_rng r;
    llm_rng_seed(&r, seed);
    for (size_t i = 0; i < llm_model_param_count(m); i++) {
        llm_param p;
        CHECK_RC(llm_model_param_at(m, i, &p));
        float *d = param_get(m, i, LLM_PARAM_DATA);
        for (size_t j = 0; j < p.numel; j++)
            d[j] = p.ndim == 1 ? (float)(1.0 + 0.3 * llm_rng_normal(&r))
                               : (float)(scale * llm_rng_normal(&r));
        param_set(m, i, LLM_PARAM_DATA, d);
        free(d);
    }
}

static llm_model *tiny_classifier(const char *device, int K, int multi, llm_pooling pool,
                                  double scale)
{
    llm_config c = { .vocab_size = 11, .dim = 8, .n_layers = 2, .n_heads = 2,
                     .n_kv_heads = 1, .ffn_dim = 12, .context = 6, .rope_base = 1e4,
                     .norm_eps = 1e-5, .tied = 1 };
    llm_model *m;
    CHECK_RC(llm_model_create(&c, 7, device, &m));
    llm_head_params hp = { K, labels4, multi, pool };
    CHECK_RC(llm_model_add_head(m, &hp, 3));
    if (scale > 0)
        randomize(m, 99, scale);
    return m;
}

/* lmw: weight of the auxiliary language modelling loss. */
static void test_gradcheck(int multi, llm_pooling pool, double lmw)
{
    enum { B = 3, T = 6, K = 3 };
    llm_model *m = tiny_classifier("ref", K, multi, pool, 0.4);
    int32_t tok[B * T], len[B] = { 6, 2, 4 }, lab[B] = { 2, 0, 1 };
    float tg[B * K] = { 1, 0, 1, 0, 0, 1, 1, 1, 0 }, w[K] = { 0.5f, 2.0f, 1.25f };
    for (int i = 0; i < B * T; i++)
        tok[i] = (int32_t)((i * 7 + 3) % 11);
    llm_cls_targets y = { lab, tg, w, lmw };
    float loss;
    CHECK_RC(llm_model_zero_grad(m));
    CHECK_RC(llm_cls_forward(m, tok, len, B, T, &y, &loss));
    CHECK_RC(llm_cls_backward(m));
    llm_rng r;
    llm_rng_seed(&r, 5);
    const double h = 1e-2;
    for (size_t i = 0; i < llm_model_param_count(m); i++) {
        llm_param p;
        CHECK_RC(llm_model_param_at(m, i, &p));
        float *d = param_get(m, i, LLM_PARAM_DATA), *gr = param_get(m, i, LLM_PARAM_GRAD);
        for (int s = 0; s < 3; s++) {
            size_t j = (size_t)llm_rng_below(&r, p.numel);
            float old = d[j], lp, lm;
            d[j] = (float)(old + h);
            param_set(m, i, LLM_PARAM_DATA, d);
            CHECK_RC(llm_cls_forward(m, tok, len, B, T, &y, &lp));
            d[j] = (float)(old - h);
            param_set(m, i, LLM_PARAM_DATA, d);
            CHECK_RC(llm_cls_forward(m, tok, len, B, T, &y, &lm));
            d[j] = old;
            param_set(m, i, LLM_PARAM_DATA, d);
            double fd = ((double)lp - lm) / (2 * h), g = gr[j];
            if (!(fabs(fd - g) <= 2e-4 + 2e-2 * fabs(fd)))
                FAIL("gradcheck multi=%d pool=%s lm %g %s[%zu]: analytic %.6g, finite "
                     "difference %.6g", multi, llm_pooling_name(pool), lmw, p.name, j, g, fd);
        }
        free(d);
        free(gr);
    }
    /* The padding after each row's length plays no part. */
    float *g0 = malloc(4096 * sizeof *g0);
    const float *z = llm_cls_logits(m);
    CHECK_RC(llm_cls_forward(m, tok, len, B, T, &y, &loss));
    memcpy(g0, z, B * K * sizeof *g0);
    for (int b = 0; b < B; b++)
        for (int t = len[b]; t < T; t++)
            tok[b * T + t] = (tok[b * T + t] + 5) % 11;
    CHECK_RC(llm_cls_forward(m, tok, len, B, T, &y, &loss));
    close_enough("logits after changing the padding", llm_cls_logits(m), g0, B * K, 1e-6, 1e-6);
    free(g0);
    llm_model_free(m);
}

/* Misuse gets an error, not a crash: a language model given to the
 * classifier's forward and probabilities, a batch of -1 sequences to
 * llm_lm_score(). And a classifier's logits stay its last classifier
 * forward's after a language-model forward of more rows. */
static void test_misuse(void)
{
    llm_config c = { .vocab_size = 11, .dim = 8, .n_layers = 1, .n_heads = 2,
                     .n_kv_heads = 1, .ffn_dim = 12, .context = 6, .rope_base = 1e4,
                     .norm_eps = 1e-5, .tied = 1 };
    llm_model *m;
    CHECK_RC(llm_model_create(&c, 7, "cpu", &m));
    int32_t tok[36] = { 1, 2 }, len[1] = { 2 }, lab[1] = { 0 };
    llm_cls_targets y = { lab, NULL, NULL, 0 };
    float loss, z[2] = { 0, 1 }, p[2] = { -7, -7 };
    int rc = llm_cls_forward(m, tok, len, 1, 2, &y, &loss);
    if (rc != LLM_ERR_INVALID || !strstr(llm_errmsg(), "not a classifier"))
        FAIL("llm_cls_forward on a language model: rc %d, '%s'", rc, llm_errmsg());
    llm_cls_probs(m, z, 1, p);
    if (p[0] != -7 || p[1] != -7)
        FAIL("llm_cls_probs on a language model wrote %g %g", p[0], p[1]);
    double lp[1];
    rc = llm_lm_score(m, tok, tok + 2, -1, 2, lp);
    if (rc != LLM_ERR_INVALID)
        FAIL("llm_lm_score of -1 sequences: rc %d", rc);
    llm_model_free(m);

    m = tiny_classifier("cpu", 3, 0, LLM_POOL_LAST, 0.5);
    if (llm_cls_logits(m))
        FAIL("logits before a classifier forward");
    CHECK_RC(llm_cls_forward(m, tok, len, 1, 2, &y, &loss));
    const float *l1 = llm_cls_logits(m);
    float keep[3];
    memcpy(keep, l1, sizeof keep);
    CHECK_RC(llm_model_forward(m, tok, NULL, 6, 6, NULL));
    const float *l2 = llm_cls_logits(m);
    if (l2 != l1 || memcmp(keep, l2, sizeof keep) != 0)
        FAIL("a language-model forward of 6 rows moved the classifier's logits");
    llm_model_free(m);
}

/* --------------------------------------------------------------- freeze */

static void test_freeze(void)
{
    llm_model *m = tiny_classifier("cpu", 3, 0, LLM_POOL_MEAN, 0);
    size_t n = llm_model_param_count(m);
    llm_param emb, head;
    size_t iemb = param_index(m, "tok_embeddings.weight", &emb);
    size_t ihead = param_index(m, "head.weight", &head);
    float *e0 = param_get(m, iemb, LLM_PARAM_DATA), *h0 = param_get(m, ihead, LLM_PARAM_DATA);
    CHECK_RC(llm_model_freeze(m, 1));
    int32_t tok[12] = { 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 1, 2 }, len[2] = { 6, 3 }, lab[2] = { 0, 2 };
    /* The language modelling term trains the backbone only: no effect. */
    llm_cls_targets y = { lab, NULL, NULL, 0.5 };
    llm_adamw o;
    llm_adamw_defaults(&o);
    for (int s = 0; s < 3; s++) {
        float loss;
        CHECK_RC(llm_model_zero_grad(m));
        CHECK_RC(llm_cls_forward(m, tok, len, 2, 6, &y, &loss));
        CHECK_RC(llm_cls_backward(m));
        CHECK_RC(llm_model_adamw_step(m, &o));
    }
    iemb = param_index(m, "tok_embeddings.weight", &emb);
    ihead = param_index(m, "head.weight", &head);
    float *e1 = param_get(m, iemb, LLM_PARAM_DATA), *h1 = param_get(m, ihead, LLM_PARAM_DATA);
    if (memcmp(e0, e1, emb.numel * 4) != 0)
        FAIL("freeze: the backbone changed");
    if (memcmp(h0, h1, head.numel * 4) == 0)
        FAIL("freeze: the head did not train");
    free(e1);
    free(h1);
    for (size_t i = 0; i < n; i++) {
        llm_param p;
        CHECK_RC(llm_model_param_at(m, i, &p));
        if (strncmp(p.name, "head.", 5) == 0)
            continue;
        float *g = param_get(m, i, LLM_PARAM_GRAD);
        for (size_t j = 0; j < p.numel; j++)
            if (g[j] != 0) {
                FAIL("freeze: gradient of %s is not 0", p.name);
                break;
            }
        free(g);
    }
    free(e0);
    free(h0);
    llm_model_free(m);
}

/* The auxiliary term against the language model's own loss: a classifier
 * forward with lm_weight w exceeds the one without by w times the mean
 * next-token loss of llm_model_forward() over each row's real positions;
 * padding, rows of one token, and a bad weight. */
static void test_lm_term(void)
{
    enum { B = 3, T = 6, K = 3 };
    llm_model *m = tiny_classifier("cpu", K, 0, LLM_POOL_MEAN, 0.4);
    int32_t tok[B * T], tgt[B * T], len[B] = { 6, 1, 4 }, lab[B] = { 2, 0, 1 };
    for (int i = 0; i < B * T; i++)
        tok[i] = (int32_t)((i * 5 + 2) % 11);
    for (int b = 0; b < B; b++)
        for (int t = 0; t < T; t++)
            tgt[b * T + t] = t + 1 < len[b] ? tok[b * T + t + 1] : -1;
    float l0, l1, lref;
    llm_cls_targets y0 = { lab, NULL, NULL, 0 }, y1 = { lab, NULL, NULL, 0.7 };
    CHECK_RC(llm_cls_forward(m, tok, len, B, T, &y0, &l0));
    CHECK_RC(llm_cls_forward(m, tok, len, B, T, &y1, &l1));
    CHECK_RC(llm_model_forward(m, tok, tgt, B, T, &lref));
    if (!(fabs((l1 - l0) - 0.7 * lref) <= 1e-5 * fabs(l1)))
        FAIL("lm term: %.7g - %.7g, want 0.7 x %.7g", l1, l0, lref);
    /* Only the padding changes: the same loss. */
    for (int b = 0; b < B; b++)
        for (int t = len[b]; t < T; t++)
            tok[b * T + t] = (tok[b * T + t] + 3) % 11;
    float l2;
    CHECK_RC(llm_cls_forward(m, tok, len, B, T, &y1, &l2));
    if (l2 != l1)
        FAIL("lm term depends on the padding: %.9g, %.9g", l1, l2);
    /* No position with a next token: the term is 0. */
    int32_t one[B] = { 1, 1, 1 };
    CHECK_RC(llm_cls_forward(m, tok, one, B, T, &y0, &l0));
    CHECK_RC(llm_cls_forward(m, tok, one, B, T, &y1, &l1));
    if (l0 != l1)
        FAIL("lm term of one-token rows: %.9g, want %.9g", l1, l0);
    llm_cls_targets bad = { lab, NULL, NULL, -0.5 };
    if (llm_cls_forward(m, tok, len, B, T, &bad, &l1) != LLM_ERR_INVALID ||
        !strstr(llm_errmsg(), "language modelling weight"))
        FAIL("negative lm weight accepted: %s", llm_errmsg());
    llm_model_free(m);
}

/* ------------------------------------------------------------ save, load */

static void test_save_load(void)
{
    llm_model *m = tiny_classifier("cpu", 4, 1, LLM_POOL_MEAN, 0);
    float thr[4] = { 0.25f, 0.5f, 0.75f, 0.125f };
    CHECK_RC(llm_model_set_calibration(m, 1.75, thr));
    CHECK_RC(llm_model_save(m, "cls.llm", NULL));
    llm_model *b;
    CHECK_RC(llm_model_load("cls.llm", "cpu", &b));
    if (llm_model_n_labels(b) != 4 || !llm_model_multi_label(b) ||
        llm_model_pooling(b) != LLM_POOL_MEAN || llm_model_temperature(b) != 1.75 ||
        memcmp(llm_model_thresholds(b), thr, sizeof thr) != 0)
        FAIL("save/load: head metadata differs");
    for (int i = 0; i < 4; i++)
        if (strcmp(llm_model_label(b, i), labels4[i]) != 0)
            FAIL("save/load: label %d is '%s'", i, llm_model_label(b, i));
    for (size_t i = 0; i < llm_model_param_count(m); i++) {
        llm_param p, q;
        CHECK_RC(llm_model_param_at(m, i, &p));
        CHECK_RC(llm_model_param_at(b, i, &q));
        float *x = param_get(m, i, LLM_PARAM_DATA), *z = param_get(b, i, LLM_PARAM_DATA);
        if (strcmp(p.name, q.name) || memcmp(x, z, p.numel * 4))
            FAIL("save/load: %s differs", p.name);
        free(x);
        free(z);
    }
    llm_model_free(b);

    /* Bad metadata: rewrite one value of the header in place (same length). */
    struct { const char *from, *to, *msg; } bad[] = {
        { "\"pooling\":\"mean\"", "\"pooling\":\"maen\"", "pooling" },
        { "\"multi_label\":\"1\"", "\"multi_label\":\"2\"", "multi_label" },
        { "\"temperature\":\"1.75\"", "\"temperature\":\"-1.75\"", "temperature" },
        { "\"labels\":\"[", "\"labels\":\"{", "labels" },
    };
    FILE *f = fopen("cls.llm", "rb");
    static char buf[1 << 20];
    size_t n = fread(buf, 1, sizeof buf, f);
    fclose(f);
    for (size_t k = 0; k < sizeof bad / sizeof bad[0]; k++) {
        char *copy_ = malloc(n + 8);
        memcpy(copy_, buf, n);
        char *at = memmem(copy_, n, bad[k].from, strlen(bad[k].from));
        if (!at) {
            FAIL("bad metadata case %zu: '%s' not in the header", k, bad[k].from);
            free(copy_);
            continue;
        }
        size_t lf = strlen(bad[k].from), lt = strlen(bad[k].to);
        if (lt == lf) {
            memcpy(at, bad[k].to, lt);
        } else {   /* one byte longer: eat one byte of the header's padding */
            memmove(at + lt, at + lf, n - (size_t)(at - copy_) - lf);
            memcpy(at, bad[k].to, lt);
            /* header length +1 */
            unsigned long long hl = 0;
            for (int i = 7; i >= 0; i--)
                hl = hl << 8 | (unsigned char)copy_[i];
            hl += lt - lf;
            for (int i = 0; i < 8; i++)
                copy_[i] = (char)(hl >> (8 * i));
        }
        f = fopen("bad.llm", "wb");
        fwrite(copy_, 1, n + (lt - lf), f);
        fclose(f);
        free(copy_);
        llm_model *x = NULL;
        int rc = llm_model_load("bad.llm", "cpu", &x);
        if (rc != LLM_ERR_FORMAT || !strstr(llm_errmsg(), bad[k].msg))
            FAIL("bad metadata %s: status %d, message '%s'", bad[k].to, rc, llm_errmsg());
        llm_model_free(x);
    }
    remove("cls.llm");
    remove("bad.llm");

    /* Labels that would break TSV output, or repeat, are refused. */
    const char *tab[] = { "a\tb", "c" }, *dup[] = { "a", "a" }, *empty[] = { "", "b" };
    llm_head_params hp = { 2, tab, 0, LLM_POOL_LAST };
    if (llm_model_add_head(m, &hp, 1) != LLM_ERR_INVALID)
        FAIL("a label with a tab was accepted");
    hp.labels = dup;
    if (llm_model_add_head(m, &hp, 1) != LLM_ERR_INVALID)
        FAIL("a repeated label was accepted");
    hp.labels = empty;
    if (llm_model_add_head(m, &hp, 1) != LLM_ERR_INVALID)
        FAIL("an empty label was accepted");
    llm_model_free(m);
}

/* ----------------------------------------------------- prediction, windows */

static void test_predict(void)
{
    llm_model *m = tiny_classifier("cpu", 3, 0, LLM_POOL_LAST, 0.3);
    int32_t d0[] = { 1, 2, 3, 4, 5, 6 }, d1[] = { 7, 8 }, d2[] = { 9 }, d3[] = { 3, 3, 3, 3 };
    const int32_t *docs[] = { d0, d1, d2, d3 };
    size_t lens[] = { 6, 2, 1, 4 };
    float all[12], one[3];
    CHECK_RC(llm_cls_predict(m, docs, lens, 4, NULL, 0, 3, all));
    for (int i = 0; i < 4; i++) {
        CHECK_RC(llm_cls_predict(m, docs + i, lens + i, 1, NULL, 0, 1, one));
        close_enough("a document alone and in a padded batch", one, all + 3 * i, 3, 1e-6, 1e-5);
        double s = one[0] + one[1] + one[2];
        if (fabs(s - 1) > 1e-5)
            FAIL("probabilities sum to %g", s);
    }
    /* Windows 0, 1 -> record 1; 2 -> record 0; 3 -> record 2; record 3: none. */
    size_t owner[] = { 1, 1, 0, 2 };
    float rec[12];
    CHECK_RC(llm_cls_predict(m, docs, lens, 4, owner, 4, 2, rec));
    float want[12] = { 0 };
    for (int k = 0; k < 3; k++) {
        want[k] = all[6 + k];
        want[3 + k] = (all[k] + all[3 + k]) / 2;
        want[6 + k] = all[9 + k];
    }
    close_enough("mean over windows", rec, want, 12, 1e-6, 1e-5);
    /* A temperature flattens the distribution. */
    CHECK_RC(llm_model_set_calibration(m, 1000, NULL));
    CHECK_RC(llm_cls_predict(m, docs, lens, 1, NULL, 0, 1, one));
    if (fabs(one[0] - 1.0 / 3) > 1e-3)
        FAIL("temperature 1000: p = %g, not ~1/3", one[0]);
    llm_model_free(m);
}

/* Prediction (packed documents, no padding, inference forward) against the
 * training forward on each document alone, for both poolings, on a model
 * whose widths are not multiples of 8, in fp32 and over bf16 copies of
 * the weights (where both forwards round attention's inputs too); and each
 * document's probabilities the same bits alone, among others in any batch
 * size, on 1 or 2 threads. Documents past 32 tokens (in fp32 their
 * attention is attention_forward's, the rest attention_rows') among short
 * ones. */
static void test_predict_reference(llm_pooling pool, int bf16)
{
    llm_config c = { .vocab_size = 50, .dim = 20, .n_layers = 2, .n_heads = 2,
                     .n_kv_heads = 1, .ffn_dim = 36, .context = 48, .rope_base = 1e4,
                     .norm_eps = 1e-5, .tied = 0 };
    llm_model *m;
    CHECK_RC(llm_model_create(&c, 5, "cpu", &m));
    llm_head_params hp = { 3, labels4, 0, pool };
    CHECK_RC(llm_model_add_head(m, &hp, 3));
    randomize(m, 17, 0.3);
    if (bf16)
        CHECK_RC(llm_model_weights_bf16(m));
    llm_rng r;
    llm_rng_seed(&r, 18);
    enum { N = 9 };
    int32_t ids[N][48];
    const int32_t *docs[N];
    size_t lens[N] = { 16, 1, 7, 2, 40, 9, 3, 33, 5 };
    for (int d = 0; d < N; d++) {
        for (size_t t = 0; t < lens[d]; t++)
            ids[d][t] = (int32_t)llm_rng_below(&r, 50);
        docs[d] = ids[d];
    }
    float all[N * 3], one[3], ref[3];
    const char *name = pool == LLM_POOL_LAST ? (bf16 ? "bf16 last" : "last")
                                             : (bf16 ? "bf16 mean" : "mean");
    char what[96];
    llm_set_threads(2);
    CHECK_RC(llm_cls_predict(m, docs, lens, N, NULL, 0, 4, all));
    for (int d = 0; d < N; d++) {
        int32_t len = (int32_t)lens[d];
        CHECK_RC(llm_cls_forward(m, docs[d], &len, 1, len, NULL, NULL));
        llm_cls_probs(m, llm_cls_logits(m), 1, ref);
        snprintf(what, sizeof what, "%s pooling: document %d against the training forward",
                 name, d);
        close_enough(what, all + 3 * d, ref, 3, 1e-6, 1e-5);
    }
    for (int threads = 1; threads <= 2; threads++) {
        llm_set_threads(threads);
        for (int B = 1; B <= N; B += 3) {
            float again[N * 3];
            CHECK_RC(llm_cls_predict(m, docs, lens, N, NULL, 0, B, again));
            if (memcmp(again, all, sizeof all) != 0)
                FAIL("%s pooling: batches of %d on %d thread(s) change the bits", name, B,
                     threads);
        }
        CHECK_RC(llm_cls_predict(m, docs + 4, lens + 4, 1, NULL, 0, 1, one));
        if (memcmp(one, all + 12, sizeof one) != 0)
            FAIL("%s pooling: a document alone on %d thread(s) differs from in a batch",
                 name, threads);
    }
    llm_set_threads(2);
    llm_model_free(m);
}

/* ------------------------------------------------------------ calibration */

static void test_calibration(void)
{
    /* Labels drawn from softmax(z / 2.5): the fitted temperature is ~2.5. */
    enum { N = 20000, K = 3 };
    llm_model *m = tiny_classifier("cpu", K, 0, LLM_POOL_LAST, 0);
    llm_cls_data *d;
    CHECK_RC(llm_cls_data_new(K, &d));
    float *z = malloc(N * K * sizeof *z);
    llm_rng r;
    llm_rng_seed(&r, 11);
    int32_t one = 1;
    for (int i = 0; i < N; i++) {
        double p[K], s = 0;
        for (int k = 0; k < K; k++) {
            z[i * K + k] = (float)(3 * llm_rng_normal(&r));
            p[k] = exp(z[i * K + k] / 2.5);
            s += p[k];
        }
        double u = llm_rng_uniform(&r) * s;
        int32_t lab = 0;
        while (lab < K - 1 && (u -= p[lab]) > 0)
            lab++;
        CHECK_RC(llm_cls_data_add(d, &one, 1, &lab, 1));
    }
    double T;
    CHECK_RC(llm_cls_fit_temperature(m, z, d, &T));
    if (fabs(T - 2.5) > 0.1)
        FAIL("fitted temperature %g, expected ~2.5", T);
    free(z);
    llm_cls_data_free(d);
    llm_model_free(m);

    /* Thresholds: label 0 positives at 0.9, 0.8, 0.35; negatives at 0.4,
     * 0.3, 0.1: accepting the top 3 (F1 = 6/7 vs 0.8 for the top 2 and for
     * the top 5... ) gives the cut between 0.35 and 0.3. */
    m = tiny_classifier("cpu", 2, 1, LLM_POOL_LAST, 0);
    CHECK_RC(llm_cls_data_new(2, &d));
    float probs[12] = { 0.9f, 0, 0.8f, 0, 0.4f, 0, 0.35f, 0, 0.3f, 0, 0.1f, 0 };
    int pos[6] = { 1, 1, 0, 1, 0, 0 };
    for (int i = 0; i < 6; i++) {
        int32_t lab = pos[i] ? 0 : 1;
        CHECK_RC(llm_cls_data_add(d, &one, 1, &lab, 1));
    }
    float thr[2];
    CHECK_RC(llm_cls_tune_thresholds(m, probs, d, thr));
    if (fabs(thr[0] - 0.325f) > 1e-6)
        FAIL("threshold of label 0: %g, expected 0.325", thr[0]);
    /* Label 1 (positives: the three negatives of label 0, all at p = 0):
     * every probability ties, so all are accepted: 0 / 2 = 0. */
    if (thr[1] != 0.0f)
        FAIL("threshold of label 1: %g, expected 0", thr[1]);
    llm_cls_data_free(d);
    llm_model_free(m);
}

/* --------------------------------------------------- encoding and batches */

/* llm_cls_encode_many() against llm_cls_encode() text by text, and its
 * failure: the lowest failing text's, with that text's message. */
static void test_encode_many(void)
{
    char path[512];
    snprintf(path, sizeof path, "%s/tiny.model", fixtures());
    llm_tok *t;
    CHECK_RC(llm_tok_load(path, &t));
    char text[4096] = "";
    enum { N = 40 };
    size_t off[N], len[N];
    for (int i = 0; i < N; i++) {
        off[i] = strlen(text);
        for (int k = 0; k < i % 7; k++)   /* i % 7 == 0: empty */
            strcat(text, k % 2 ? "the seal was worn " : "pump ");
        len[i] = strlen(text) - off[i];
    }
    for (int max = 0; max <= 5; max += 5) {
        llm_ids out[N] = { { 0 } }, one = { 0 };
        int tr[N], tr1;
        CHECK_RC(llm_cls_encode_many(t, text, off, len, N, max, out, tr));
        for (int i = 0; i < N; i++) {
            CHECK_RC(llm_cls_encode(t, text + off[i], len[i], max, &one, &tr1));
            if (one.len != out[i].len || memcmp(one.data, out[i].data, one.len * 4) ||
                tr1 != tr[i])
                FAIL("encode_many max %d: text %d differs from llm_cls_encode", max, i);
        }
        if (max == 5 && (llm_cls_encode_many(t, text, off, len, N, 2, out, NULL) !=
                         LLM_ERR_INVALID || !strstr(llm_errmsg(), "2")))
            FAIL("encode_many: room for 2 tokens accepted: %s", llm_errmsg());
        for (int i = 0; i < N; i++)
            llm_ids_free(&out[i]);
        llm_ids_free(&one);
    }
    llm_tok_free(t);
}

static void test_encode_and_batches(void)
{
    char path[512];
    snprintf(path, sizeof path, "%s/tiny.model", fixtures());
    llm_tok *t;
    CHECK_RC(llm_tok_load(path, &t));
    llm_ids ids = { 0 }, full = { 0 };
    int tr;
    const char *s = "The pump failed because the seal was worn out after two years.";
    CHECK_RC(llm_cls_encode(t, s, strlen(s), 0, &full, &tr));
    if (tr || full.data[0] != llm_tok_bos_id(t) || full.data[full.len - 1] != llm_tok_eos_id(t))
        FAIL("encode: not BOS ... EOS");
    CHECK_RC(llm_cls_encode(t, s, strlen(s), 6, &ids, &tr));
    if (!tr || ids.len != 6 || memcmp(ids.data, full.data, 5 * 4) ||
        ids.data[5] != llm_tok_eos_id(t))
        FAIL("encode: truncation to 6 gives %zu ids (truncated %d)", ids.len, tr);
    CHECK_RC(llm_cls_encode(t, s, strlen(s), (int)full.len, &ids, &tr));
    if (tr || ids.len != full.len)
        FAIL("encode: a document that fits was truncated");
    if (llm_cls_encode(t, s, strlen(s), 2, &ids, &tr) != LLM_ERR_INVALID)
        FAIL("encode: room for 2 tokens accepted");
    /* A long text in pieces gives the ids of the whole, cut between words. */
    size_t n = 200000;
    char *big = malloc(n + 1);
    for (size_t i = 0; i < n; i++)
        big[i] = "pump seal "[i % 10];
    CHECK_RC(llm_cls_encode(t, big, n, 0, &full, &tr));
    CHECK_RC(llm_cls_encode(t, big, n, 100, &ids, &tr));
    if (!tr || ids.len != 100 || memcmp(ids.data, full.data, 99 * 4))
        FAIL("encode: long text prefix differs");
    free(big);

    /* The document batcher: same seed, same batches; every document once
     * per epoch; padding with 0; labels of multi-label documents. */
    llm_cls_data *d;
    CHECK_RC(llm_cls_data_new(3, &d));
    for (int i = 0; i < 10; i++) {
        int32_t doc[5] = { 1, 2 + i, 3, 4, 5 }, lab[2] = { i % 3, (i + 1) % 3 };
        CHECK_RC(llm_cls_data_add(d, doc, (size_t)(1 + i % 5), lab, 1 + (i % 2)));
    }
    llm_batcher *a, *b;
    CHECK_RC(llm_batcher_new_docs(d, 42, &a));
    CHECK_RC(llm_batcher_new_docs(d, 42, &b));
    int32_t ta[20], tb[20], la[4], lb[4], ya[4], yb[4];
    float ga[12], gb[12];
    for (int step = 0; step < 5; step++) {
        int Ta, Tb;
        CHECK_RC(llm_batcher_next_docs(a, 2, ta, la, &Ta, ya, ga));
        CHECK_RC(llm_batcher_next_docs(b, 2, tb, lb, &Tb, yb, gb));
        if (Ta != Tb || memcmp(ta, tb, (size_t)(2 * Ta) * 4) || memcmp(ga, gb, sizeof ga[0] * 6))
            FAIL("batcher: same seed, different batches");
        for (int r = 0; r < 2; r++) {
            for (int t2 = la[r]; t2 < Ta; t2++)
                if (ta[r * Ta + t2] != 0)
                    FAIL("batcher: padding is not 0");
            float sum = ga[r * 3] + ga[r * 3 + 1] + ga[r * 3 + 2];
            if (sum < 1 || sum > 2)
                FAIL("batcher: %g labels in a row", sum);
        }
    }
    llm_batcher_free(a);
    llm_batcher_free(b);
    llm_cls_data_free(d);
    llm_ids_free(&ids);
    llm_ids_free(&full);
    llm_tok_free(t);
}

/* --balance's weights, worked by hand: labels 0 0 0 1 and (multi) 0+1 of
 * K = 3 (label 2 absent: weight 1). */
static void test_class_weights(void)
{
    llm_cls_data *d;
    int32_t ids[2] = { 1, 2 }, l0 = 0, l1 = 1, both[2] = { 0, 1 };
    CHECK_RC(llm_cls_data_new(3, &d));
    for (int i = 0; i < 3; i++)
        CHECK_RC(llm_cls_data_add(d, ids, 2, &l0, 1));
    CHECK_RC(llm_cls_data_add(d, ids, 2, &l1, 1));
    float w[3];
    CHECK_RC(llm_cls_class_weights(d, 0, w));
    if (w[0] != (float)(4.0 / 9.0) || w[1] != (float)(4.0 / 3.0) || w[2] != 1.0f)
        FAIL("single-label weights %.9g %.9g %.9g, want 4/9 4/3 1", w[0], w[1], w[2]);
    CHECK_RC(llm_cls_data_add(d, ids, 2, both, 2));   /* 5 documents: 4 x 0, 2 x 1 */
    CHECK_RC(llm_cls_class_weights(d, 1, w));
    if (w[0] != 0.25f || w[1] != 1.5f || w[2] != 1.0f)
        FAIL("multi-label weights %.9g %.9g %.9g, want 1/4 3/2 1", w[0], w[1], w[2]);
    llm_cls_data_free(d);
}

int main(void)
{
    test_class_weights();
    test_encode_many();
    test_fixture("cls_single_last.safetensors", "cpu");
    test_fixture("cls_single_last.safetensors", "ref");
    test_fixture("cls_multi_mean.safetensors", "cpu");
    test_fixture("cls_multi_mean.safetensors", "ref");
    test_gradcheck(0, LLM_POOL_LAST, 0);
    test_gradcheck(0, LLM_POOL_MEAN, 0);
    test_gradcheck(1, LLM_POOL_LAST, 0);
    test_gradcheck(1, LLM_POOL_MEAN, 0);
    test_gradcheck(0, LLM_POOL_LAST, 0.7);
    test_gradcheck(1, LLM_POOL_MEAN, 1.3);
    test_lm_term();
    test_misuse();
    test_freeze();
    test_save_load();
    test_predict();
    test_predict_reference(LLM_POOL_LAST, 0);
    test_predict_reference(LLM_POOL_LAST, 1);
    test_predict_reference(LLM_POOL_MEAN, 0);
    test_predict_reference(LLM_POOL_MEAN, 1);
    test_calibration();
    test_encode_and_batches();
    if (failures) {
        printf("%d classifier checks failed\n", failures);
        return 1;
    }
    printf("all classifier checks passed\n");
    return 0;
}
