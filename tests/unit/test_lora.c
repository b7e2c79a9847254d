/* test_lora.c: low-rank adapters (llm_model_lora()): their gradients (and a
 * classifier head's beside them) against central finite differences; B = 0
 * gives the base model's logits bit for bit; the merged model that
 * llm_model_save() writes gives the adapted model's logits; the base
 * weights never move and have no gradients; the same seed and threads give
 * the same bytes; a run resumed from a checkpoint equals an uninterrupted
 * one bit for bit. */
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "llm.h"
#include "testparam.h"

static int failures;

#define FAIL(...) do { failures++; printf("FAIL "); printf(__VA_ARGS__); printf("\n"); } while (0)
#define CHECK_RC(call) do { int rc_ = (call); if (rc_ != LLM_OK) { \
    printf("FAIL %s:%d: %s: %s\n", __FILE__, __LINE__, #call, llm_errmsg()); exit(1); } } while (0)

static llm_config tiny_config(int tied, int kvh)
{
    llm_config c = { .vocab_size = 11, .dim = 8, .n_layers = 2, .n_heads = 2,
                     .n_kv_heads = kvh, .ffn_dim = 12, .context = 16,
                     .rope_base = 10000.0, .norm_eps = 1e-5, .tied = tied };
    return c;
}

static void fill_batch(int32_t *tok, int32_t *tgt, int n, int V, unsigned seed)
{
    llm_rng r;
    llm_rng_seed(&r, seed);
    for (int i = 0; i < n; i++) {
        tok[i] = (int32_t)llm_rng_below(&r, (uint64_t)V);
        tgt[i] = i % 4 == 1 ? -1 : (int32_t)llm_rng_below(&r, (uint64_t)V);
    }
}

static int is_adapter(const char *name)
{
    return strstr(name, ".lora_a") || strstr(name, ".lora_b");
}

/* Every weight (adapters included) larger than the default init, so that
 * every gradient stands well above the float noise of the loss. */
static void randomise(llm_model *m, unsigned seed)
{
    llm_rng r;
    llm_rng_seed(&r, seed);
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
}

/* The loss of the model's task on a fixed batch. */
enum { GB = 2, GT = 5 };
static float task_loss(llm_model *m, const int32_t *tok, const int32_t *tgt,
                       const int32_t *lens, const int32_t *labels)
{
    float loss;
    if (llm_model_n_labels(m)) {
        llm_cls_targets y = { labels, NULL, NULL, 0.5 };
        CHECK_RC(llm_cls_forward(m, tok, lens, GB, GT, &y, &loss));
    } else {
        CHECK_RC(llm_model_forward(m, tok, tgt, GB, GT, &loss));
    }
    return loss;
}

/* Reference kernels (double accumulation), central differences, step 1e-2. */
static void test_gradcheck(int tied, int kvh, int classify)
{
    llm_config c = tiny_config(tied, kvh);
    llm_model *m;
    CHECK_RC(llm_model_create(&c, 7, "ref", &m));
    if (classify) {
        const char *names[] = { "a", "b", "c" };
        llm_head_params hp = { 3, names, 0, LLM_POOL_MEAN };
        CHECK_RC(llm_model_add_head(m, &hp, 5));
    }
    CHECK_RC(llm_model_lora(m, 3, 6.0, 11));
    randomise(m, 99);
    int32_t tok[GB * GT], tgt[GB * GT], lens[GB] = { GT, 3 }, labels[GB] = { 2, 0 };
    fill_batch(tok, tgt, GB * GT, c.vocab_size, 3);
    CHECK_RC(llm_model_zero_grad(m));
    task_loss(m, tok, tgt, lens, labels);
    CHECK_RC(classify ? llm_cls_backward(m) : llm_model_backward(m));
    const double h = 2e-3;
    double worst = 0;
    int checked = 0;
    llm_rng r;
    llm_rng_seed(&r, 5);
    for (size_t i = 0; i < llm_model_param_count(m); i++) {
        llm_param p;
        CHECK_RC(llm_model_param_at(m, i, &p));
        int trains = is_adapter(p.name) || strncmp(p.name, "head.", 5) == 0;
        if (!trains) {
            if (p.has_grad)
                FAIL("gradcheck: frozen %s has a gradient", p.name);
            continue;
        }
        if (!p.has_grad) {
            FAIL("gradcheck: %s has no gradient", p.name);
            continue;
        }
        float *d = param_get(m, i, LLM_PARAM_DATA), *gr = param_get(m, i, LLM_PARAM_GRAD);
        for (int s = 0; s < 3; s++) {
            size_t j = (size_t)llm_rng_below(&r, p.numel);
            float old = d[j];
            d[j] = (float)(old + h);
            param_set(m, i, LLM_PARAM_DATA, d);
            float lp = task_loss(m, tok, tgt, lens, labels);
            d[j] = (float)(old - h);
            param_set(m, i, LLM_PARAM_DATA, d);
            float lm = task_loss(m, tok, tgt, lens, labels);
            d[j] = old;
            param_set(m, i, LLM_PARAM_DATA, d);
            double fd = ((double)lp - lm) / (2 * h), g = gr[j];
            if (fabs(fd) > 1e-2 && fabs(fd - g) / fabs(fd) > worst)
                worst = fabs(fd - g) / fabs(fd);
            if (!(fabs(fd - g) <= 2e-4 + 2e-2 * fabs(fd)))
                FAIL("gradcheck tied=%d kvh=%d classify=%d %s[%zu]: analytic %.6g, "
                     "finite difference %.6g", tied, kvh, classify, p.name, j, g, fd);
            checked++;
        }
        free(d);
        free(gr);
    }
    printf("ok gradcheck tied=%d kvh=%d classify=%d: %d entries, worst relative error %.2e (|fd| > 0.01)\n",
           tied, kvh, classify, checked, worst);
    llm_model_free(m);
}

/* ------------------------------------------------------------------------ */

enum { TB = 3, TT = 16 };

static void train_steps(llm_model *m, int from, int to)
{
    int32_t tok[TB * TT], tgt[TB * TT];
    llm_adamw o;
    llm_adamw_defaults(&o);
    o.lr = 2e-2;
    for (int s = from; s < to; s++) {
        float loss;
        fill_batch(tok, tgt, TB * TT, llm_model_config(m)->vocab_size, 100 + (unsigned)s);
        CHECK_RC(llm_model_zero_grad(m));
        CHECK_RC(llm_model_forward(m, tok, tgt, TB, TT, &loss));
        CHECK_RC(llm_model_backward(m));
        llm_model_clip_grad(m, 1.0);
        CHECK_RC(llm_model_adamw_step(m, &o));
    }
}

static float *logits_of(llm_model *m)
{
    int32_t tok[TB * TT], tgt[TB * TT];
    fill_batch(tok, tgt, TB * TT, llm_model_config(m)->vocab_size, 7);
    CHECK_RC(llm_model_forward(m, tok, NULL, TB, TT, NULL));
    size_t n = (size_t)TB * TT * llm_model_config(m)->vocab_size;
    float *l = malloc(n * sizeof *l);
    if (!l)
        exit(1);
    memcpy(l, llm_model_logits(m), n * sizeof *l);
    return l;
}

static llm_config small_config(void)
{
    llm_config c = { .vocab_size = 53, .dim = 32, .n_layers = 2, .n_heads = 4,
                     .n_kv_heads = 2, .ffn_dim = 48, .context = 16,
                     .rope_base = 10000.0, .norm_eps = 1e-5, .tied = 1 };
    return c;
}

/* A (base, adapted) pair from the same seed. */
static void pair(llm_model **base, llm_model **ad)
{
    llm_config c = small_config();
    CHECK_RC(llm_model_create(&c, 3, "cpu", base));
    CHECK_RC(llm_model_create(&c, 3, "cpu", ad));
    CHECK_RC(llm_model_lora(*ad, 4, 8.0, 9));
}

static void test_identity(void)
{
    llm_model *b, *a;
    pair(&b, &a);
    size_t n = (size_t)TB * TT * small_config().vocab_size;
    float *lb = logits_of(b), *la = logits_of(a);
    if (memcmp(lb, la, n * sizeof *lb) != 0)
        FAIL("B = 0: the adapted model's logits differ from the base model's");
    free(lb);
    free(la);
    if (llm_model_lora(a, 4, 8.0, 9) == LLM_OK)
        FAIL("adapters added twice");
    llm_model *x;
    llm_config c = small_config();
    CHECK_RC(llm_model_create(&c, 3, "cpu", &x));
    if (llm_model_lora(x, 0, 8.0, 1) == LLM_OK || llm_model_lora(x, 33, 8.0, 1) == LLM_OK ||
        llm_model_lora(x, 4, 0.0, 1) == LLM_OK || llm_model_lora(x, 4, NAN, 1) == LLM_OK)
        FAIL("a bad rank or alpha was accepted");
    llm_model_free(x);
    llm_model_free(b);
    llm_model_free(a);
}

/* Steps move only the adapters; the merged file predicts as the adapted
 * model does. */
static void test_merge(void)
{
    llm_model *b, *a;
    pair(&b, &a);
    train_steps(a, 0, 8);
    for (size_t i = 0; i < llm_model_param_count(b); i++) {
        llm_param p, q;
        CHECK_RC(llm_model_param_at(b, i, &p));
        float *x = param_get(b, i, LLM_PARAM_DATA),
              *y = param_get(a, param_index(a, p.name, &q), LLM_PARAM_DATA);
        if (memcmp(x, y, p.numel * sizeof *x) != 0)
            FAIL("base weight %s moved", p.name);
        free(x);
        free(y);
    }
    llm_param pb;
    float *pbd = param_get(a, param_index(a, "layers.1.feed_forward.w2.lora_b", &pb),
                           LLM_PARAM_DATA);
    int moved = 0;
    for (size_t j = 0; j < pb.numel; j++)
        moved |= pbd[j] != 0.0f;
    free(pbd);
    if (!moved)
        FAIL("the adapters did not train");
    char path[] = "/tmp/test_lora.XXXXXX";
    int fd = mkstemp(path);
    if (fd < 0)
        exit(1);
    close(fd);
    CHECK_RC(llm_model_save(a, path, NULL));
    llm_model *g;
    CHECK_RC(llm_model_load(path, "cpu", &g));
    unlink(path);
    if (llm_model_lora_rank(g) != 0 || llm_model_param_count(g) != llm_model_param_count(b))
        FAIL("the saved model is not a plain model");
    size_t n = (size_t)TB * TT * small_config().vocab_size;
    float *la = logits_of(a), *lg = logits_of(g), *lb = logits_of(b);
    double worst = 0, moved_logits = 0;
    for (size_t i = 0; i < n; i++) {
        double d = fabs((double)la[i] - lg[i]);
        worst = d > worst ? d : worst;
        double e = fabs((double)la[i] - lb[i]);
        moved_logits = e > moved_logits ? e : moved_logits;
        if (!(d <= 1e-5 * (fabs(la[i]) > 1 ? fabs(la[i]) : 1)))
            FAIL("merged logit [%zu] %.9g, adapted %.9g", i, lg[i], la[i]);
    }
    if (!(moved_logits > 1e-3))
        FAIL("training changed the logits by only %g", moved_logits);
    printf("ok merge: max |merged - adapted| logit %.2e (training moved them by %.2e)\n",
           worst, moved_logits);
    free(la);
    free(lg);
    free(lb);
    llm_model_free(g);
    llm_model_free(b);
    llm_model_free(a);
}

/* Part `what` of parameter i of x and of y (numel floats): the same bytes. */
static int same_part(const llm_model *x, const llm_model *y, size_t i, int what, size_t numel)
{
    float *u = param_get(x, i, what), *v = param_get(y, i, what);
    int same = memcmp(u, v, numel * sizeof *u) == 0;
    free(u);
    free(v);
    return same;
}

static int same_bytes(const llm_model *x, const llm_model *y)
{
    if (llm_model_param_count(x) != llm_model_param_count(y))
        return 0;
    for (size_t i = 0; i < llm_model_param_count(x); i++) {
        llm_param p, q;
        CHECK_RC(llm_model_param_at(x, i, &p));
        CHECK_RC(llm_model_param_at(y, i, &q));
        if (strcmp(p.name, q.name) || p.numel != q.numel ||
            !same_part(x, y, i, LLM_PARAM_DATA, p.numel))
            return 0;
        if (p.has_moments != q.has_moments ||
            (p.has_moments && (!same_part(x, y, i, LLM_PARAM_ADAM_M, p.numel) ||
                               !same_part(x, y, i, LLM_PARAM_ADAM_V, p.numel))))
            return 0;
    }
    return 1;
}

static void test_determinism_resume(void)
{
    llm_set_threads(2);
    llm_model *b1, *a1, *b2, *a2;
    pair(&b1, &a1);
    pair(&b2, &a2);
    train_steps(a1, 0, 10);
    train_steps(a2, 0, 4);
    /* Checkpoint at step 4, load it, go on to 10. */
    char path[] = "/tmp/test_lora.XXXXXX";
    int fd = mkstemp(path);
    if (fd < 0)
        exit(1);
    close(fd);
    llm_save_params sp = { NULL, 0, 1, NULL };
    CHECK_RC(llm_model_save(a2, path, &sp));
    llm_model *r;
    CHECK_RC(llm_model_load(path, "cpu", &r));
    unlink(path);
    if (llm_model_lora_rank(r) != 4 || llm_model_lora_alpha(r) != 8.0 ||
        llm_model_steps(r) != 4)
        FAIL("checkpoint: rank %d alpha %g step %lld", llm_model_lora_rank(r),
             llm_model_lora_alpha(r), (long long)llm_model_steps(r));
    if (!same_bytes(r, a2))
        FAIL("checkpoint: the loaded model differs from the saved one");
    train_steps(a2, 4, 10);
    train_steps(r, 4, 10);
    if (!same_bytes(a1, a2))
        FAIL("determinism: two runs of the same seed differ");
    if (!same_bytes(a1, r))
        FAIL("resume: the resumed run differs from the uninterrupted one");
    llm_model_free(r);
    llm_model_free(b1);
    llm_model_free(a1);
    llm_model_free(b2);
    llm_model_free(a2);
}

int main(void)
{
    test_gradcheck(1, 1, 0);
    test_gradcheck(0, 2, 0);
    test_gradcheck(1, 2, 1);
    test_identity();
    test_merge();
    test_determinism_resume();
    if (failures) {
        printf("%d check(s) failed\n", failures);
        return 1;
    }
    printf("all LoRA checks passed\n");
    return 0;
}
