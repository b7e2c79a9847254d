/* test_model.c: the whole model: config validation and presets, gradients
 * against finite differences, bitwise determinism, save/load round trip,
 * and logits, loss, every gradient and 10 AdamW steps against the PyTorch
 * reference states in tests/fixtures (made by make_reference.py). */
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "llm.h"
#include "model/model.h"
#include "testparam.h"

static int failures;

#define FAIL(...) do { failures++; printf("FAIL "); printf(__VA_ARGS__); printf("\n"); } while (0)
#define CHECK_RC(call) do { int rc_ = (call); if (rc_ != LLM_OK) { \
    printf("FAIL %s:%d: %s: %s\n", __FILE__, __LINE__, #call, llm_errmsg()); exit(1); } } while (0)

/* Compares n floats; prints the worst offender. @return 1 when all pass. */
static int close_enough(const char *what, const float *got, const float *ref,
                        size_t n, double atol, double rtol)
{
    size_t bad = 0, worst = 0;
    double wd = -1, maxabs = 0;
    for (size_t i = 0; i < n; i++) {
        double d = fabs((double)got[i] - ref[i]);
        if (d > maxabs || isnan(d))
            maxabs = d;
        if (!(d <= atol + rtol * fabs(ref[i]))) {
            bad++;
            if (d - (atol + rtol * fabs(ref[i])) > wd || isnan(d)) {
                wd = d - (atol + rtol * fabs(ref[i]));
                worst = i;
            }
        }
    }
    if (bad) {
        FAIL("%s: %zu of %zu outside %g + %g*|ref|; worst [%zu] got %.9g want %.9g",
             what, bad, n, atol, rtol, worst, got[worst], ref[worst]);
        return 0;
    }
    if (getenv("VERBOSE"))
        printf("ok %s: max abs diff %.3g over %zu\n", what, maxabs, n);
    return 1;
}

static llm_config tiny_config(int tied, int kvh)
{
    llm_config c = { .vocab_size = 11, .dim = 8, .n_layers = 2, .n_heads = 2,
                     .n_kv_heads = kvh, .ffn_dim = 12, .context = 6,
                     .rope_base = 10000.0, .norm_eps = 1e-5, .tied = tied };
    return c;
}

/* ---------------------------------------------------------------- config */

static void test_config(void)
{
    llm_config c = { .vocab_size = 4096 };
    CHECK_RC(llm_config_preset("small", &c));
    /* stories15M with a 4096 vocabulary: PyTorch counts 7,155,360. */
    if (c.vocab_size != 4096 || c.dim != 288 || llm_config_params(&c) != 7155360)
        FAIL("preset small: dim %d, vocab %d, %lld parameters", c.dim, c.vocab_size,
             (long long)llm_config_params(&c));
    int n = 0;
    for (const char *p; (p = llm_config_preset_name(n)); n++) {
        llm_config d = { .vocab_size = 4096 };
        CHECK_RC(llm_config_preset(p, &d));
        CHECK_RC(llm_config_check(&d));
    }
    if (n != 4)
        FAIL("expected 4 presets, got %d", n);
    if (llm_config_preset("huge", &c) != LLM_ERR_INVALID || !strstr(llm_errmsg(), "huge"))
        FAIL("unknown preset accepted or unnamed: %s", llm_errmsg());
    struct { llm_config c; const char *msg, *param; } bad[] = {
        { { .vocab_size = 0, .dim = 8, .n_layers = 1, .n_heads = 2, .n_kv_heads = 2,
            .ffn_dim = 8, .context = 4, .rope_base = 1e4, .norm_eps = 1e-5, .tied = 1 },
          "vocabulary", "vocab_size" },
        { { .vocab_size = 9, .dim = 9, .n_layers = 1, .n_heads = 2, .n_kv_heads = 2,
            .ffn_dim = 8, .context = 4, .rope_base = 1e4, .norm_eps = 1e-5, .tied = 1 },
          "number of heads 2 must divide the model dimension 9", "n_heads" },
        { { .vocab_size = 9, .dim = 6, .n_layers = 1, .n_heads = 2, .n_kv_heads = 2,
            .ffn_dim = 8, .context = 4, .rope_base = 1e4, .norm_eps = 1e-5, .tied = 1 },
          "even", "n_heads" },
        { { .vocab_size = 9, .dim = 8, .n_layers = 1, .n_heads = 4, .n_kv_heads = 3,
            .ffn_dim = 8, .context = 4, .rope_base = 1e4, .norm_eps = 1e-5, .tied = 1 },
          "key/value heads 3", "n_kv_heads" },
        { { .vocab_size = 9, .dim = 8, .n_layers = 0, .n_heads = 2, .n_kv_heads = 2,
            .ffn_dim = 8, .context = 4, .rope_base = 1e4, .norm_eps = 1e-5, .tied = 1 },
          "number of layers 0", "n_layers" },
        { { .vocab_size = 9, .dim = 8, .n_layers = 1, .n_heads = 2, .n_kv_heads = 2,
            .ffn_dim = 8, .context = 4, .rope_base = 1e4, .norm_eps = 0, .tied = 1 },
          "norm eps", NULL },
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        llm_model *m = NULL;
        if (llm_config_check(&bad[i].c) != LLM_ERR_INVALID || !strstr(llm_errmsg(), bad[i].msg))
            FAIL("bad config %zu: want '%s' in '%s'", i, bad[i].msg, llm_errmsg());
        const char *param = llm_errparam();
        if (bad[i].param ? !param || strcmp(param, bad[i].param) != 0 : param != NULL)
            FAIL("bad config %zu: parameter %s, want %s", i, param ? param : "(none)",
                 bad[i].param ? bad[i].param : "(none)");
        if (llm_model_create(&bad[i].c, 1, "cpu", &m) != LLM_ERR_INVALID || m)
            FAIL("bad config %zu: model created", i);
    }
    llm_config t = tiny_config(1, 1);
    llm_model *m = NULL;
    if (llm_model_create(&t, 1, "nonesuch", &m) != LLM_ERR_DEVICE || m)
        FAIL("unknown device accepted");
    CHECK_RC(llm_model_create(&t, 1, "cpu", &m));
    int32_t tok[4] = { 1, 2, 11, 3 }, tgt[4] = { 1, 2, 3, 4 };
    float loss;
    if (llm_model_forward(m, tok, tgt, 1, 4, &loss) != LLM_ERR_RANGE ||
        !strstr(llm_errmsg(), "position 2"))
        FAIL("token past the vocabulary: %s", llm_errmsg());
    if (llm_model_forward(m, tgt, tgt, 1, 7, &loss) != LLM_ERR_INVALID)
        FAIL("T past the context accepted");
    if (llm_model_backward(m) != LLM_ERR_INVALID)
        FAIL("backward without forward accepted");
    llm_model_free(m);
    llm_model_free(NULL);
}

/* ------------------------------------------------------ finite differences */

static void fill_batch(int32_t *tok, int32_t *tgt, int n, int V, unsigned seed)
{
    llm_rng r;
    llm_rng_seed(&r, seed);
    for (int i = 0; i < n; i++) {
        tok[i] = (int32_t)llm_rng_below(&r, (uint64_t)V);
        tgt[i] = i % 4 == 1 ? -1 : (int32_t)llm_rng_below(&r, (uint64_t)V);
    }
}

/* Reference kernels (double accumulation) keep the loss accurate enough for
 * differences with step 1e-2 on weights made larger than the default init,
 * so that every gradient is well above the float noise of the loss. */
static void test_gradcheck(int tied, int kvh)
{
    llm_config c = tiny_config(tied, kvh);
    llm_model *m;
    CHECK_RC(llm_model_create(&c, 7, "ref", &m));
    llm_rng r;
    llm_rng_seed(&r, 99);
    for (size_t i = 0; i < llm_model_param_count(m); i++) {
        llm_param p;
        CHECK_RC(llm_model_param_at(m, i, &p));
        float *d = param_get(m, i, LLM_PARAM_DATA);
        for (size_t j = 0; j < p.numel; j++)
            d[j] = p.ndim == 1 ? (float)(1.0 + 0.3 * llm_rng_normal(&r))
                               : (float)(0.4 * llm_rng_normal(&r));
        param_set(m, i, LLM_PARAM_DATA, d);
        free(d);
    }
    enum { B = 2, T = 5 };
    int32_t tok[B * T], tgt[B * T];
    fill_batch(tok, tgt, B * T, c.vocab_size, 3);
    float loss;
    CHECK_RC(llm_model_zero_grad(m));
    CHECK_RC(llm_model_forward(m, tok, tgt, B, T, &loss));
    CHECK_RC(llm_model_backward(m));
    const double h = 1e-2;
    int checked = 0;
    for (size_t i = 0; i < llm_model_param_count(m); i++) {
        llm_param p;
        CHECK_RC(llm_model_param_at(m, i, &p));
        float *d = param_get(m, i, LLM_PARAM_DATA), *gr = param_get(m, i, LLM_PARAM_GRAD);
        for (int s = 0; s < 3; s++) {
            size_t j = (size_t)llm_rng_below(&r, p.numel);
            float old = d[j], lp, lm;
            d[j] = (float)(old + h);
            param_set(m, i, LLM_PARAM_DATA, d);
            CHECK_RC(llm_model_forward(m, tok, tgt, B, T, &lp));
            d[j] = (float)(old - h);
            param_set(m, i, LLM_PARAM_DATA, d);
            CHECK_RC(llm_model_forward(m, tok, tgt, B, T, &lm));
            d[j] = old;
            param_set(m, i, LLM_PARAM_DATA, d);
            double fd = ((double)lp - lm) / (2 * h), g = gr[j];
            if (!(fabs(fd - g) <= 2e-4 + 2e-2 * fabs(fd)))
                FAIL("gradcheck tied=%d kvh=%d %s[%zu]: analytic %.6g, finite difference %.6g",
                     tied, kvh, p.name, j, g, fd);
            checked++;
        }
        free(d);
        free(gr);
    }
    if (getenv("VERBOSE"))
        printf("ok gradcheck tied=%d kvh=%d: %d entries\n", tied, kvh, checked);
    llm_model_free(m);
}

/* ------------------------------------------------------------ determinism */

static void train_steps(llm_model *m, int steps, float *losses)
{
    enum { B = 3, T = 16 };
    int32_t tok[B * T], tgt[B * T];
    llm_adamw o;
    llm_adamw_defaults(&o);
    o.lr = 1e-2;
    for (int s = 0; s < steps; s++) {
        fill_batch(tok, tgt, B * T, llm_model_config(m)->vocab_size, 100 + (unsigned)s);
        CHECK_RC(llm_model_zero_grad(m));
        CHECK_RC(llm_model_forward(m, tok, tgt, B, T, &losses[s]));
        CHECK_RC(llm_model_backward(m));
        llm_model_clip_grad(m, 1.0);
        CHECK_RC(llm_model_adamw_step(m, &o));
    }
}

static int same_params(const llm_model *a, const llm_model *b)
{
    for (size_t i = 0; i < llm_model_param_count(a); i++) {
        llm_param p, q;
        CHECK_RC(llm_model_param_at(a, i, &p));
        CHECK_RC(llm_model_param_at(b, i, &q));
        if (strcmp(p.name, q.name) || p.numel != q.numel)
            return 0;
        float *x = param_get(a, i, LLM_PARAM_DATA), *y = param_get(b, i, LLM_PARAM_DATA);
        int same = memcmp(x, y, p.numel * sizeof *x) == 0;
        free(x);
        free(y);
        if (!same)
            return 0;
    }
    return 1;
}

static void test_determinism(void)
{
    llm_config c = { .vocab_size = 97 };
    CHECK_RC(llm_config_preset("tiny", &c));
    c.n_layers = 2;
    c.n_kv_heads = 2;
    llm_set_threads(2);
    llm_model *a, *b;
    float la[3], lb[3];
    CHECK_RC(llm_model_create(&c, 42, "cpu", &a));
    CHECK_RC(llm_model_create(&c, 42, "cpu", &b));
    if (!same_params(a, b))
        FAIL("same seed, different initial weights");
    llm_param p;
    float *wv = param_get(a, param_index(a, "layers.1.feed_forward.w2.weight", &p),
                         LLM_PARAM_DATA);
    double ss = 0;
    for (size_t j = 0; j < p.numel; j++)
        ss += (double)wv[j] * wv[j];
    free(wv);
    double sd = sqrt(ss / (double)p.numel), want = 0.02 / sqrt(2.0 * c.n_layers);
    if (fabs(sd - want) > 0.05 * want)
        FAIL("w2 init std %.5f, want %.5f", sd, want);
    wv = param_get(a, param_index(a, "norm.weight", &p), LLM_PARAM_DATA);
    if (wv[0] != 1.0f || wv[p.numel - 1] != 1.0f)
        FAIL("norm weights not initialised to 1");
    free(wv);
    train_steps(a, 3, la);
    train_steps(b, 3, lb);
    if (memcmp(la, lb, sizeof la) != 0 || !same_params(a, b))
        FAIL("two runs with the same seed and threads differ");
    if (!(la[2] < la[0]))
        FAIL("loss did not go down: %g -> %g", la[0], la[2]);
    llm_model *d;
    CHECK_RC(llm_model_create(&c, 43, "cpu", &d));
    if (same_params(a, d))
        FAIL("different seeds give the same weights");
    llm_model_free(d);

    /* Save with optimizer state, load, and continue: bit-identical. */
    const char tokbytes[] = "not really a tokenizer";
    const char *meta[] = { "train.note", "x", NULL };
    llm_save_params sp = { tokbytes, sizeof tokbytes, 1, meta };
    CHECK_RC(llm_model_save(a, "ckpt.llm", &sp));
    llm_model *e;
    CHECK_RC(llm_model_load("ckpt.llm", "cpu", &e));
    if (!same_params(a, e) || llm_model_steps(e) != 3 ||
        memcmp(llm_model_config(e), llm_model_config(a), sizeof c) != 0)
        FAIL("load after save differs");
    train_steps(a, 2, la);
    train_steps(e, 2, lb);
    if (memcmp(la, lb, 2 * sizeof *la) != 0 || !same_params(a, e))
        FAIL("resumed run differs from the uninterrupted one");
    llm_st *f;
    CHECK_RC(llm_st_open("ckpt.llm", &f));
    const llm_st_tensor *t = llm_st_find(f, "tokenizer.model");
    if (!t || t->nbytes != sizeof tokbytes || strcmp(llm_st_meta(f, "norm_eps"), "1e-05") ||
        strcmp(llm_st_meta(f, "rope_base"), "10000") || strcmp(llm_st_meta(f, "format"), "llm") ||
        strcmp(llm_st_meta(f, "train.note"), "x") || strcmp(llm_st_meta(f, "n_kv_heads"), "2"))
        FAIL("model file metadata or tokenizer tensor wrong");
    llm_st_close(f);
    /* A file that is not a model, and a tensor of the wrong shape. */
    llm_st_writer *w;
    CHECK_RC(llm_st_writer_new(&w));
    CHECK_RC(llm_st_writer_meta(w, "format", "llm"));
    CHECK_RC(llm_st_writer_meta(w, "format_version", "1"));
    const char *keys[][2] = { { "vocab_size", "97" }, { "dim", "128" }, { "n_layers", "2" },
                              { "n_heads", "4" }, { "n_kv_heads", "2" }, { "ffn_dim", "344" },
                              { "context", "256" }, { "rope_base", "10000" },
                              { "norm_eps", "1e-5" }, { "tied", "1" } };
    for (size_t i = 0; i < sizeof keys / sizeof keys[0]; i++)
        CHECK_RC(llm_st_writer_meta(w, keys[i][0], keys[i][1]));
    float zero[16] = { 0 };
    int64_t shape[2] = { 4, 4 };
    CHECK_RC(llm_st_writer_add(w, "tok_embeddings.weight", LLM_DT_F32, 2, shape, zero));
    CHECK_RC(llm_st_writer_write(w, "bad.llm"));
    llm_st_writer_free(w);
    llm_model *g = NULL;
    if (llm_model_load("bad.llm", "cpu", &g) != LLM_ERR_FORMAT || g ||
        !strstr(llm_errmsg(), "tok_embeddings.weight") || !strstr(llm_errmsg(), "(4, 4)"))
        FAIL("wrong shape not reported: %s", llm_errmsg());
    remove("ckpt.llm");
    remove("bad.llm");
    llm_model_free(a);
    llm_model_free(b);
    llm_model_free(e);
}

/* llm_model_own() on a model read from its file's mapping: the same values
 * in a private block, which from 4 MiB up starts on a 2 MiB boundary (the
 * huge pages of the cpu table's alloc, kernels/cpu/memory.c); a second
 * call changes nothing. */
static void test_own(void)
{
    llm_config c = { .vocab_size = 4096, .dim = 256, .n_layers = 2, .n_heads = 4,
                     .n_kv_heads = 4, .ffn_dim = 688, .context = 64, .rope_base = 10000.0,
                     .norm_eps = 1e-5, .tied = 1 };
    llm_model *a, *b;
    CHECK_RC(llm_model_create(&c, 7, "cpu", &a));
    CHECK_RC(llm_model_save(a, "own.llm", NULL));
    CHECK_RC(llm_model_load("own.llm", "cpu", &b));
    /* Where the parameters lie is internal (model.h): b->params. Only a
     * table of host memory runs the weights from the file's mapping (the
     * guarded table of LLM_KERNELS=guarded copies them at load), and only
     * its alloc puts large blocks on huge-page boundaries. */
    int host = b->k->host_memory;
    if (host && !b->file)
        FAIL("a model loaded on %s does not run from its file's mapping", b->k->name);
    float *p = b->params;
    CHECK_RC(llm_model_own(b));
    float *q = b->params;
    if (b->file || (host && q == p))
        FAIL("llm_model_own() kept the parameters where the file lies mapped");
    if (host && (uintptr_t)q % ((uintptr_t)2 << 20) != 0)
        FAIL("own copy of %zu floats at %p: not on a 2 MiB boundary",
             llm_config_params(&c), (void *)q);
    if (!same_params(a, b))
        FAIL("own copy differs from the model saved");
    CHECK_RC(llm_model_own(b));
    if (b->params != q)
        FAIL("a second llm_model_own() moved the parameters");
    remove("own.llm");
    llm_model_free(a);
    llm_model_free(b);
}

/* --------------------------------------------------------- PyTorch fixture */

static int meta_int(const llm_st *f, const char *k)
{
    const char *s = llm_st_meta(f, k);
    if (!s) {
        printf("FAIL fixture has no metadata '%s'\n", k);
        exit(1);
    }
    return atoi(s);
}

static double meta_num(const llm_st *f, const char *k)
{
    const char *s = llm_st_meta(f, k);
    if (!s) {
        printf("FAIL fixture has no metadata '%s'\n", k);
        exit(1);
    }
    return strtod(s, NULL);
}

static const llm_st_tensor *need(const llm_st *f, const char *name, llm_dtype dt, size_t numel)
{
    const llm_st_tensor *t = llm_st_find(f, name);
    if (!t || t->dtype != dt || t->nbytes != numel * llm_dtype_size(dt)) {
        printf("FAIL fixture tensor '%s' missing or of the wrong type or size\n", name);
        exit(1);
    }
    return t;
}

static float *copy_f32(const llm_st_tensor *t)
{
    float *p = malloc(t->nbytes ? t->nbytes : 1);
    if (!p)
        exit(1);
    memcpy(p, t->data, t->nbytes);
    return p;
}

/* Tolerances: the reference is float64; the model runs in float32 with
 * its own summation order and a polynomial exp, so logits and loss agree
 * to ~1e-6 relative; gradients to ~1e-5 of the largest gradient of their
 * tensor. AdamW's first steps move every weight by ~lr whatever the size of
 * its gradient, so a weight whose gradient is near 0 may move differently:
 * final weights are held to 1e-4 absolute (lr = 1e-2; measured 7e-6),
 * losses to 1e-5 relative. */
static void test_fixture(const char *path, const char *device)
{
    llm_st *f;
    if (llm_st_open(path, &f) != LLM_OK) {
        FAIL("cannot open the PyTorch fixture: %s", llm_errmsg());
        return;
    }
    char what[160];
    llm_config c = { 0 };
    c.vocab_size = meta_int(f, "vocab_size");
    c.dim = meta_int(f, "dim");
    c.n_layers = meta_int(f, "n_layers");
    c.n_heads = meta_int(f, "n_heads");
    c.n_kv_heads = meta_int(f, "n_kv_heads");
    c.ffn_dim = meta_int(f, "ffn_dim");
    c.context = meta_int(f, "context");
    c.rope_base = meta_num(f, "rope_base");
    c.norm_eps = meta_num(f, "norm_eps");
    c.tied = meta_int(f, "tied");
    llm_model *m;
    CHECK_RC(llm_model_create(&c, 0, device, &m));
    size_t np = llm_model_param_count(m);
    for (size_t i = 0; i < np; i++) {
        llm_param p;
        CHECK_RC(llm_model_param_at(m, i, &p));
        const llm_st_tensor *t = need(f, p.name, LLM_DT_F32, p.numel);
        if (t->ndim != p.ndim || t->shape[0] != p.shape[0] ||
            (p.ndim == 2 && t->shape[1] != p.shape[1]))
            FAIL("%s: fixture shape differs from the model's", p.name);
        float *d = copy_f32(t);
        param_set(m, i, LLM_PARAM_DATA, d);
        free(d);
    }
    const llm_st_tensor *ids = llm_st_find(f, "input_ids");
    if (!ids || ids->ndim != 2 || ids->dtype != LLM_DT_I32) {
        FAIL("fixture input_ids missing");
        exit(1);
    }
    int B = (int)ids->shape[0], T = (int)ids->shape[1], N = B * T, V = c.vocab_size;
    int32_t *tok = malloc((size_t)N * 4), *tgt = malloc((size_t)N * 4);
    memcpy(tok, ids->data, (size_t)N * 4);
    memcpy(tgt, need(f, "targets", LLM_DT_I32, (size_t)N)->data, (size_t)N * 4);
    float *ref_logits = copy_f32(need(f, "logits", LLM_DT_F32, (size_t)N * V));
    float *ref_loss = copy_f32(need(f, "loss", LLM_DT_F32, 1));

    float loss;
    CHECK_RC(llm_model_zero_grad(m));
    CHECK_RC(llm_model_forward(m, tok, tgt, B, T, &loss));
    snprintf(what, sizeof what, "%s [%s] logits", path, device);
    close_enough(what, llm_model_logits(m), ref_logits, (size_t)N * V, 1e-5, 1e-5);
    snprintf(what, sizeof what, "%s [%s] loss", path, device);
    close_enough(what, &loss, ref_loss, 1, 0, 1e-6);
    CHECK_RC(llm_model_backward(m));
    for (size_t i = 0; i < np; i++) {
        llm_param p;
        char name[128];
        CHECK_RC(llm_model_param_at(m, i, &p));
        snprintf(name, sizeof name, "grad.%s", p.name);
        float *g = copy_f32(need(f, name, LLM_DT_F32, p.numel));
        double gmax = 0;
        for (size_t j = 0; j < p.numel; j++)
            gmax = fmax(gmax, fabs(g[j]));
        snprintf(what, sizeof what, "%s [%s] %s", path, device, name);
        float *pg = param_get(m, i, LLM_PARAM_GRAD);
        close_enough(what, pg, g, p.numel, 1e-5 * gmax + 1e-9, 1e-4);
        free(pg);
        free(g);
    }

    /* AdamW from the same initial weights: the fixture's losses are
     * measured before each step. */
    llm_adamw o;
    llm_adamw_defaults(&o);
    o.lr = meta_num(f, "adamw.lr");
    o.beta1 = meta_num(f, "adamw.beta1");
    o.beta2 = meta_num(f, "adamw.beta2");
    o.eps = meta_num(f, "adamw.eps");
    o.weight_decay = meta_num(f, "adamw.weight_decay");
    int steps = meta_int(f, "adamw.steps");
    float *ref_losses = copy_f32(need(f, "adamw.losses", LLM_DT_F32, (size_t)steps));
    float *losses = malloc((size_t)steps * sizeof *losses);
    for (int s = 0; s < steps; s++) {
        CHECK_RC(llm_model_zero_grad(m));
        CHECK_RC(llm_model_forward(m, tok, tgt, B, T, &losses[s]));
        CHECK_RC(llm_model_backward(m));
        CHECK_RC(llm_model_adamw_step(m, &o));
    }
    snprintf(what, sizeof what, "%s [%s] adamw.losses", path, device);
    close_enough(what, losses, ref_losses, (size_t)steps, 0, 1e-5);
    for (size_t i = 0; i < np; i++) {
        llm_param p;
        char name[128];
        CHECK_RC(llm_model_param_at(m, i, &p));
        snprintf(name, sizeof name, "adamw.final.%s", p.name);
        float *w = copy_f32(need(f, name, LLM_DT_F32, p.numel));
        snprintf(what, sizeof what, "%s [%s] %s", path, device, name);
        float *pd = param_get(m, i, LLM_PARAM_DATA);
        close_enough(what, pd, w, p.numel, 1e-4, 1e-4);
        free(pd);
        free(w);
    }
    free(tok); free(tgt); free(ref_logits); free(ref_loss); free(ref_losses); free(losses);
    llm_model_free(m);
    llm_st_close(f);
}

/* ---------------------------------------------------------------- dropout */

/* Dropout's gradient by finite differences (masks are a function of the
 * step and the backward count, so the differences, taken before the one
 * backward, see the same masks); about p of the branch outputs dropped;
 * none when not training; two runs with the same seed give the same bytes;
 * different micro-batches of one step draw different masks. */
static void test_dropout(void)
{
    llm_config c = tiny_config(1, 1);
    llm_model *m, *m2, *plain;
    CHECK_RC(llm_model_create(&c, 7, "ref", &m));
    CHECK_RC(llm_model_create(&c, 7, "ref", &plain));
    if (llm_model_set_dropout(m, 1.0, 1) != LLM_ERR_INVALID ||
        llm_model_set_dropout(m, -0.1, 1) != LLM_ERR_INVALID)
        FAIL("dropout outside [0, 1) accepted");
    CHECK_RC(llm_model_set_dropout(m, 0.3, 11));
    enum { B = 2, T = 5 };
    int32_t tok[B * T], tgt[B * T];
    fill_batch(tok, tgt, B * T, c.vocab_size, 3);
    float l_eval, l_plain, l_a, l_b;
    CHECK_RC(llm_model_forward(m, tok, tgt, B, T, &l_eval));          /* not training */
    CHECK_RC(llm_model_forward(plain, tok, tgt, B, T, &l_plain));
    if (l_eval != l_plain)
        FAIL("dropout applied outside training: %.9g vs %.9g", l_eval, l_plain);
    llm_model_set_training(m, 1);
    CHECK_RC(llm_model_forward(m, tok, tgt, B, T, &l_a));
    CHECK_RC(llm_model_forward(m, tok, tgt, B, T, &l_b));
    if (l_a != l_b || l_a == l_plain)
        FAIL("training forwards: %.9g, %.9g (plain %.9g): want equal, and not plain",
             l_a, l_b, l_plain);

    /* Finite differences first, then the one backward. */
    llm_rng r;
    llm_rng_seed(&r, 5);
    const double h = 1e-2;
    enum { PICKS = 24 };
    size_t pi[PICKS], pj[PICKS];
    double fd[PICKS];
    for (int k = 0; k < PICKS; k++) {
        llm_param p;
        pi[k] = (size_t)llm_rng_below(&r, llm_model_param_count(m));
        CHECK_RC(llm_model_param_at(m, pi[k], &p));
        pj[k] = (size_t)llm_rng_below(&r, p.numel);
        float *d = param_get(m, pi[k], LLM_PARAM_DATA);
        float old = d[pj[k]], lp, lm;
        d[pj[k]] = (float)(old + h);
        param_set(m, pi[k], LLM_PARAM_DATA, d);
        CHECK_RC(llm_model_forward(m, tok, tgt, B, T, &lp));
        d[pj[k]] = (float)(old - h);
        param_set(m, pi[k], LLM_PARAM_DATA, d);
        CHECK_RC(llm_model_forward(m, tok, tgt, B, T, &lm));
        d[pj[k]] = old;
        param_set(m, pi[k], LLM_PARAM_DATA, d);
        free(d);
        fd[k] = ((double)lp - lm) / (2 * h);
    }
    CHECK_RC(llm_model_zero_grad(m));
    CHECK_RC(llm_model_forward(m, tok, tgt, B, T, &l_a));
    CHECK_RC(llm_model_backward(m));
    for (int k = 0; k < PICKS; k++) {
        llm_param p;
        CHECK_RC(llm_model_param_at(m, pi[k], &p));
        float *gr = param_get(m, pi[k], LLM_PARAM_GRAD);
        double g = gr[pj[k]];
        free(gr);
        if (!(fabs(fd[k] - g) <= 2e-4 + 2e-2 * fabs(fd[k])))
            FAIL("dropout gradcheck %s[%zu]: analytic %.6g, finite difference %.6g",
                 p.name, pj[k], g, fd[k]);
    }
    /* After a backward the next micro-batch of the step has other masks. */
    CHECK_RC(llm_model_forward(m, tok, tgt, B, T, &l_b));
    if (l_b == l_a)
        FAIL("second micro-batch reused the first one's masks");
    llm_model_free(m);

    /* Same seed, same steps: same bytes; another seed: other bytes. */
    float losses[3];
    llm_model *m3;
    c = (llm_config){ .vocab_size = 97 };
    CHECK_RC(llm_config_preset("tiny", &c));
    c.n_layers = 2;
    CHECK_RC(llm_model_create(&c, 7, "cpu", &m));
    CHECK_RC(llm_model_create(&c, 7, "cpu", &m2));
    CHECK_RC(llm_model_create(&c, 7, "cpu", &m3));
    CHECK_RC(llm_model_set_dropout(m, 0.2, 5));
    CHECK_RC(llm_model_set_dropout(m2, 0.2, 5));
    CHECK_RC(llm_model_set_dropout(m3, 0.2, 6));
    llm_model_set_training(m, 1);
    llm_model_set_training(m2, 1);
    llm_model_set_training(m3, 1);
    train_steps(m, 3, losses);
    train_steps(m2, 3, losses);
    train_steps(m3, 3, losses);
    if (!same_params(m, m2))
        FAIL("dropout runs with the same seed differ");
    if (same_params(m, m3))
        FAIL("dropout runs with different seeds are identical");
    llm_model_free(m);
    llm_model_free(m2);
    llm_model_free(m3);
    llm_model_free(plain);
}

/* llm_eval_loss() runs evaluation passes (one layer's activations at a
 * time, the logits in chunks of rows, the head's products by rows): its
 * loss is the training forward's over the same windows, within rounding;
 * and a backward after it is refused rather than reading what was not
 * kept, while training passes work again after it. */
static void test_eval_no_grad(void)
{
    llm_config c = { .vocab_size = 97 };
    CHECK_RC(llm_config_preset("tiny", &c));
    c.n_layers = 3;
    c.context = 300;
    llm_model *m;
    CHECK_RC(llm_model_create(&c, 5, "cpu", &m));
    int B = 2, T = 300;   /* 600 rows: three chunks of logits */
    size_t n = (size_t)B * T + 1;
    int32_t *ids = malloc(n * sizeof *ids);
    for (size_t i = 0; i < n; i++)
        ids[i] = (int32_t)((i * 7919 + i / 3) % 97);
    llm_data *d;
    CHECK_RC(llm_data_new(97, &d));
    CHECK_RC(llm_data_add_ids(d, ids, n));
    llm_eval_result r;
    CHECK_RC(llm_eval_loss(m, d, 0, n, B, T, 0, &r));
    int32_t *in = malloc((n - 1) * sizeof *in), *tg = malloc((n - 1) * sizeof *tg);
    memcpy(in, ids, (n - 1) * sizeof *in);
    memcpy(tg, ids + 1, (n - 1) * sizeof *tg);
    float loss;
    CHECK_RC(llm_model_forward(m, in, tg, B, T, &loss));
    /* Our product (avx512, avx2) gives each row the same bits in any
     * number of rows, so there the two losses are equal; OpenBLAS's may
     * round a chunk of rows otherwise. */
    double tol = strncmp(llm_cpu_gemm(), "own ", 4) == 0 ? 0 : 1e-5 * fabs(loss);
    if (r.tokens != n - 1 || !(fabs(r.loss - (float)r.loss) <= 1e-6 * fabs(loss)) ||
        !(fabs((float)r.loss - loss) <= tol))
        FAIL("evaluation pass: loss %.9g over %llu tokens, the training forward's %.9g",
             r.loss, (unsigned long long)r.tokens, (double)loss);
    CHECK_RC(llm_model_backward(m));   /* training passes as before */
    CHECK_RC(llm_eval_loss(m, d, 0, n, B, T, 0, &r));
    if (llm_model_backward(m) == LLM_OK)
        FAIL("a backward after an evaluation pass was accepted");
    free(in);
    free(tg);
    free(ids);
    llm_data_free(d);
    llm_model_free(m);
}

/* Attention's scratch on the cpu is a part for each thread, reserved by
 * the forward: a backward with more threads than its forward had is
 * refused with a message before it does anything (no gradient added),
 * never run past the reservation; a forward at the new count makes it
 * right. */
static void test_threads_between(void)
{
    llm_config c = { .vocab_size = 11, .dim = 8, .n_layers = 1, .n_heads = 2,
                     .n_kv_heads = 1, .ffn_dim = 12, .context = 64,
                     .rope_base = 10000.0, .norm_eps = 1e-5, .tied = 1 };
    llm_model *m;
    CHECK_RC(llm_model_create(&c, 3, "cpu", &m));
    int T = 64;   /* logits 64 x 11 floats, scratch 2 x 64 x 64 a thread */
    int32_t tok[64], tgt[64];
    fill_batch(tok, tgt, T, 11, 5);
    float loss;
    llm_set_threads(1);
    CHECK_RC(llm_model_forward(m, tok, tgt, 1, T, &loss));
    CHECK_RC(llm_model_backward(m));   /* the gradients exist */
    CHECK_RC(llm_model_zero_grad(m));
    CHECK_RC(llm_model_forward(m, tok, tgt, 1, T, &loss));
    llm_set_threads(2);
    if (llm_model_backward(m) != LLM_ERR_INVALID || !strstr(llm_errmsg(), "threads"))
        FAIL("a backward with more threads than its forward: %s", llm_errmsg());
    if (llm_model_grad_norm(m) != 0.0)
        FAIL("a refused backward added gradients (norm %g)", llm_model_grad_norm(m));
    CHECK_RC(llm_model_forward(m, tok, tgt, 1, T, &loss));
    CHECK_RC(llm_model_backward(m));
    llm_set_threads(0);
    llm_model_free(m);
}

int main(void)
{
    /* Tests run in a temporary directory; the fixtures live in the tree. */
    const char *fx = getenv("FIXTURES");
    char tied[512], untied[512];
    snprintf(tied, sizeof tied, "%s/ref_tied_gqa.safetensors", fx ? fx : "tests/fixtures");
    snprintf(untied, sizeof untied, "%s/ref_untied_mha.safetensors", fx ? fx : "tests/fixtures");

    test_config();
    test_gradcheck(1, 1);
    test_gradcheck(0, 2);
    test_determinism();
    test_own();
    test_dropout();
    test_eval_no_grad();
    test_threads_between();
    for (int threads = 1; threads <= 2; threads++) {
        llm_set_threads(threads);
        test_fixture(tied, "cpu");
        test_fixture(untied, "cpu");
    }
    test_fixture(tied, "ref");
    test_fixture(untied, "ref");
    if (failures) {
        printf("%d check(s) failed\n", failures);
        return 1;
    }
    printf("all model checks passed\n");
    return 0;
}
