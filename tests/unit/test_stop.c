/* test_stop.c: a training step stopped on request (llm_train_params.stop).
 * A trainer whose stop() answers yes at its k-th poll, for every k from
 * the first poll of the third step to past the step's last (accumulation
 * of 2 micro-batches, dropout on, so that the data, the masks and the
 * gradients of a dropped step would all show), returns
 * LLM_ERR_INTERRUPTED, leaves the step count, the weights and the AdamW
 * moments as they were, and, stepped on, ends with the bits of a trainer
 * never stopped: the same losses, gradient norms and tokens at every step
 * and the same parameters. A trainer of two ranks (world 2) never polls:
 * its ranks agree on stopping between steps. The same for a classifier. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "llm.h"

static int failures;

#define FAIL(...) do { failures++; printf("FAIL "); printf(__VA_ARGS__); printf("\n"); } while (0)
#define CHECK_RC(call) do { int rc_ = (call); if (rc_ != LLM_OK) { \
    printf("FAIL %s:%d: %s: %s\n", __FILE__, __LINE__, #call, llm_errmsg()); exit(1); } } while (0)

enum { STEPS = 5, STOPPED_STEP = 2 };   /* 0-based: the third step is stopped */

typedef struct {
    int polls;     /* so far */
    int at;        /* answer yes at this poll (1-based), 0: never */
} poller;

static int poll_stop(void *ctx)
{
    poller *p = ctx;
    return ++p->polls == p->at;
}

/* The other rank of a world of 2, played as nothing (the stop is what is
 * tested, not the sums). */
static int no_reduce(void *ctx, float *grads, size_t n, double *sums, size_t ns)
{
    (void)ctx, (void)grads, (void)n, (void)sums, (void)ns;
    return LLM_OK;
}

/* Every parameter's data and moments, concatenated, into a new array. */
static float *snapshot(const llm_model *m, size_t *n)
{
    size_t total = 0;
    for (size_t i = 0; i < llm_model_param_count(m); i++) {
        llm_param p;
        CHECK_RC(llm_model_param_at(m, i, &p));
        total += p.numel * (p.has_moments ? 3 : 1);
    }
    float *s = malloc(total * sizeof *s), *o = s;
    for (size_t i = 0; i < llm_model_param_count(m); i++) {
        llm_param p;
        CHECK_RC(llm_model_param_at(m, i, &p));
        CHECK_RC(llm_model_param_read(m, i, LLM_PARAM_DATA, o));
        o += p.numel;
        if (p.has_moments) {
            CHECK_RC(llm_model_param_read(m, i, LLM_PARAM_ADAM_M, o));
            CHECK_RC(llm_model_param_read(m, i, LLM_PARAM_ADAM_V, o + p.numel));
            o += 2 * p.numel;
        }
    }
    *n = total;
    return s;
}

typedef struct {
    llm_step_info info[STEPS];
    float *params;
    size_t n;
    int polls_in_step;   /* the polls of the stopped step, run whole */
    int interrupted;     /* the stop came within the step */
} outcome;

/* STEPS steps of a small language model (cls = 0) or classifier (1); with
 * at > 0, the third step stopped at its at-th poll and taken again. */
static outcome train(int cls, int at, int world)
{
    llm_config c = { .vocab_size = 11, .dim = 8, .n_layers = 3, .n_heads = 2,
                     .n_kv_heads = 1, .ffn_dim = 12, .context = 6,
                     .rope_base = 10000.0, .norm_eps = 1e-5, .tied = 1 };
    llm_model *m;
    CHECK_RC(llm_model_create(&c, 7, "cpu", &m));
    int32_t ids[600];
    llm_rng rng;
    llm_rng_seed(&rng, 12345);
    for (int i = 0; i < 600; i++)
        ids[i] = (int32_t)llm_rng_below(&rng, 11);
    llm_data *d = NULL;
    llm_cls_data *docs = NULL;
    llm_batcher *b;
    if (cls) {
        const char *names[] = { "a", "b", "c" };
        llm_head_params hp = { 3, names, 0, LLM_POOL_LAST };
        CHECK_RC(llm_model_add_head(m, &hp, 5));
        CHECK_RC(llm_cls_data_new(3, &docs));
        for (int i = 0; i < 40; i++) {
            int32_t lab = ids[i] % 3;
            CHECK_RC(llm_cls_data_add(docs, ids + 10 * i, 2 + (size_t)(i % 5), &lab, 1));
        }
        CHECK_RC(llm_batcher_new_docs(docs, 3, &b));
    } else {
        CHECK_RC(llm_data_new(11, &d));
        CHECK_RC(llm_data_add_ids(d, ids, 600));
        CHECK_RC(llm_batcher_new(d, 0, 600, 6, 3, &b));
    }
    CHECK_RC(llm_model_set_dropout(m, 0.2, 9));
    llm_train_params p;
    llm_train_defaults(&p);
    p.batch = 2;
    p.seq_len = 6;
    p.accum = 2;
    p.sched.warmup = 1;
    p.sched.total = STEPS;
    p.world = world;
    p.reduce = no_reduce;
    poller pl = { 0, 0 };
    p.stop = poll_stop;
    p.stop_ctx = &pl;
    llm_trainer *tr;
    CHECK_RC(llm_trainer_new(m, b, &p, &tr));
    outcome o;
    memset(&o, 0, sizeof o);
    for (int i = 0; i < STEPS; i++) {
        if (i == STOPPED_STEP && at > 0) {
            size_t n0, n1;
            float *before = snapshot(m, &n0);
            int64_t steps = llm_model_steps(m);
            pl.polls = 0;
            pl.at = at;
            int rc = llm_trainer_step(tr, &o.info[i]);
            o.interrupted = rc == LLM_ERR_INTERRUPTED;
            if (rc != LLM_OK && rc != LLM_ERR_INTERRUPTED)
                FAIL("stopped at poll %d: status %d (%s)", at, rc, llm_errmsg());
            float *after = snapshot(m, &n1);
            if (o.interrupted && (llm_model_steps(m) != steps ||
                                  memcmp(before, after, n0 * sizeof *before)))
                FAIL("stopped at poll %d: the step count or the weights and moments changed",
                     at);
            free(before);
            free(after);
            pl.at = 0;
            if (!o.interrupted)
                continue;   /* the stop came after the step's last poll: it ran whole */
        }
        pl.polls = 0;
        CHECK_RC(llm_trainer_step(tr, &o.info[i]));
        if (i == STOPPED_STEP)
            o.polls_in_step = pl.polls;
    }
    o.params = snapshot(m, &o.n);
    llm_trainer_free(tr);
    llm_batcher_free(b);
    llm_data_free(d);
    llm_cls_data_free(docs);
    llm_model_free(m);
    return o;
}

static void against(const char *what, const outcome *ref, const outcome *o, int at)
{
    for (int i = 0; i < STEPS; i++)
        if (memcmp(&ref->info[i].loss, &o->info[i].loss, sizeof(double)) ||
            memcmp(&ref->info[i].grad_norm, &o->info[i].grad_norm, sizeof(double)) ||
            ref->info[i].tokens != o->info[i].tokens || ref->info[i].step != o->info[i].step)
            FAIL("%s, stopped at poll %d: step %d: loss %.17g norm %.17g, never stopped "
                 "%.17g %.17g", what, at, i + 1, o->info[i].loss, o->info[i].grad_norm,
                 ref->info[i].loss, ref->info[i].grad_norm);
    if (ref->n != o->n || memcmp(ref->params, o->params, ref->n * sizeof *ref->params))
        FAIL("%s, stopped at poll %d: the parameters differ from the run never stopped", what,
             at);
}

int main(void)
{
    const char *what[] = { "language model", "classifier" };
    for (int cls = 0; cls < 2; cls++) {
        outcome ref = train(cls, 0, 1);
        /* 3 layers, forward and backward, 2 micro-batches: 12 polls. */
        if (ref.polls_in_step != 12)
            FAIL("%s: %d polls in a step, not 12 (one per layer of each forward and "
                 "backward)", what[cls], ref.polls_in_step);
        int stopped = 0;
        for (int at = 1; at <= ref.polls_in_step + 1; at++) {
            outcome o = train(cls, at, 1);
            stopped += o.interrupted;
            if (o.interrupted != (at <= ref.polls_in_step))
                FAIL("%s: a stop at poll %d of %d %s", what[cls], at, ref.polls_in_step,
                     o.interrupted ? "came after the step" : "did not stop the step");
            against(what[cls], &ref, &o, at);
            free(o.params);
        }
        outcome two = train(cls, 1, 2);
        if (two.interrupted)
            FAIL("%s: a trainer of 2 ranks stopped within a step", what[cls]);
        printf("%s: stopped at each of %d polls of step %d, then stepped on: %s\n", what[cls],
               stopped, STOPPED_STEP + 1, failures ? "FAILED" : "the bits of a run never stopped");
        free(two.params);
        free(ref.params);
    }
    return failures ? 1 : 0;
}
