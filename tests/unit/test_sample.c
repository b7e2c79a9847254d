/* test_sample.c: the token sampler on synthetic logits, against a naive
 * double-precision version of the same chain (full sort, no shortcuts):
 * supports, frequencies (chi-square), log-probabilities, the draw rule,
 * penalties against hand-computed values, seeds, and parameter checks. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "llm.h"

static int failures, checks;

#define CHECK(cond, ...)                                                    \
    do {                                                                    \
        checks++;                                                           \
        if (!(cond)) {                                                      \
            failures++;                                                     \
            fprintf(stderr, "%s:%d: FAILED %s: ", __FILE__, __LINE__, #cond); \
            fprintf(stderr, __VA_ARGS__);                                   \
            fputc('\n', stderr);                                            \
        }                                                                   \
    } while (0)

#define MAXV 32000

/* ---------------------------------------------------------------- naive */

typedef struct {
    int n;               /* tokens in the final distribution */
    int32_t id[MAXV];    /* by logit descending, ties by id */
    double prob[MAXV];   /* renormalised */
} dist;

static const float *cmp_logits;

static int cmp_desc(const void *a, const void *b)
{
    int32_t x = *(const int32_t *)a, y = *(const int32_t *)b;
    if (cmp_logits[x] != cmp_logits[y])
        return cmp_logits[x] > cmp_logits[y] ? -1 : 1;
    return x < y ? -1 : x > y;
}

/* The chain of llm.h on already-penalised logits, temperature > 0. */
static void naive_dist(const llm_sampler_params *p, const float *l, int vocab,
                       dist *d)
{
    static int32_t ord[MAXV];
    int n = 0;
    for (int t = 0; t < vocab; t++)
        if (l[t] != -INFINITY)
            ord[n++] = t;
    cmp_logits = l;
    qsort(ord, (size_t)n, sizeof *ord, cmp_desc);
    if (p->top_k > 0 && p->top_k < n)
        n = p->top_k;
    double lmax = l[ord[0]], z = 0;
    static double pr[MAXV];
    for (int i = 0; i < n; i++)
        z += pr[i] = exp(((double)l[ord[i]] - lmax) / p->temperature);
    for (int i = 0; i < n; i++)
        pr[i] /= z;
    if (p->top_p < 1) {
        double cum = 0;
        for (int i = 0; i < n; i++) {
            cum += pr[i];
            if (cum >= p->top_p) {
                n = i + 1;
                break;
            }
        }
    }
    if (p->min_p > 0) {
        int k = 0;
        while (k < n && pr[k] >= p->min_p * pr[0])
            k++;
        n = k;
    }
    z = 0;
    for (int i = 0; i < n; i++)
        z += pr[i];
    d->n = n;
    for (int i = 0; i < n; i++) {
        d->id[i] = ord[i];
        d->prob[i] = pr[i] / z;
    }
    /* With no cut at all, the draw walks the vocabulary in id order. */
    if ((p->top_k == 0 || p->top_k >= vocab) && p->top_p >= 1 && p->min_p <= 0) {
        static double byid[MAXV];
        for (int i = 0; i < n; i++)
            byid[ord[i]] = d->prob[i];
        int k = 0;
        for (int t = 0; t < vocab; t++)
            if (l[t] != -INFINITY) {
                d->id[k] = t;
                d->prob[k++] = byid[t];
            }
    }
}

static double dist_prob(const dist *d, int32_t t)
{
    for (int i = 0; i < d->n; i++)
        if (d->id[i] == t)
            return d->prob[i];
    return 0;
}

/* The token the draw rule gives for u; *close when u is within 1e-6 of a
 * boundary, where rounding (the sampler's weights are floats) may decide
 * either way. */
static int32_t dist_pick(const dist *d, double u, int *close)
{
    double cum = 0;
    *close = 0;
    for (int i = 0; i < d->n; i++) {
        cum += d->prob[i];
        if (fabs(cum - u) < 1e-6)
            *close = 1;
        if (cum > u)
            return d->id[i];
    }
    *close = 1;
    return d->id[d->n - 1];
}

/* Chi-square of observed counts against d, classes with expected < 5 pooled;
 * *df the degrees of freedom. */
static double chi_square(const dist *d, const long *count, long draws, int *df)
{
    double x2 = 0, pool_e = 0, pool_o = 0;
    int classes = 0;
    for (int i = 0; i < d->n; i++) {
        double e = d->prob[i] * (double)draws;
        double o = (double)count[d->id[i]];
        if (e < 5) {
            pool_e += e;
            pool_o += o;
            continue;
        }
        x2 += (o - e) * (o - e) / e;
        classes++;
    }
    if (pool_e > 0) {
        x2 += (pool_o - pool_e) * (pool_o - pool_e) / (pool_e < 1 ? 1 : pool_e);
        classes++;
    }
    *df = classes > 1 ? classes - 1 : 1;
    return x2;
}

/* A bound far in the tail of chi-square(df): mean + 6 sd. */
static double chi_bound(int df)
{
    return df + 6 * sqrt(2.0 * df);
}

static void random_logits(llm_rng *r, float *l, int vocab, double scale)
{
    for (int t = 0; t < vocab; t++)
        l[t] = (float)(scale * llm_rng_normal(r));
}

static llm_sampler *make(const llm_sampler_params *p)
{
    llm_sampler *s = NULL;
    int rc = llm_sampler_new(p, &s);
    if (rc != LLM_OK) {
        fprintf(stderr, "llm_sampler_new: %s\n", llm_errmsg());
        exit(1);
    }
    return s;
}

static llm_sampler_params off(double temperature)
{
    llm_sampler_params p;
    llm_sampler_defaults(&p);
    p.temperature = temperature;
    p.top_k = 0;
    p.top_p = 1;
    p.min_p = 0;
    return p;
}

/* ---------------------------------------------------------------- tests */

static void test_params(void)
{
    llm_sampler_params p, d;
    llm_sampler_defaults(&d);
    CHECK(d.temperature == 0.8 && d.top_k == 40 && d.top_p == 0.95 &&
          d.min_p == 0.05 && d.repeat_penalty == 1.0 && d.repeat_last_n == 64 &&
          d.presence_penalty == 0 && d.frequency_penalty == 0, "defaults");
    CHECK(llm_sampler_check(&d) == LLM_OK, "%s", llm_errmsg());

    int nbad = 0;
#define BAD(nm, stmt)                                                       \
    do {                                                                    \
        p = d;                                                              \
        stmt;                                                               \
        int rc_ = llm_sampler_check(&p);                                    \
        CHECK(rc_ == LLM_ERR_INVALID, "%s accepted", #stmt);                \
        CHECK(strstr(llm_errmsg(), nm) != NULL, "%s: message '%s'", #stmt,  \
              llm_errmsg());                                                \
        llm_sampler *s_ = (llm_sampler *)(void *)&p;                              \
        CHECK(llm_sampler_new(&p, &s_) == LLM_ERR_INVALID && s_ == NULL,    \
              "new with %s", #stmt);                                        \
        nbad++;                                                             \
    } while (0)
    BAD("temperature", p.temperature = -0.1);
    BAD("temperature", p.temperature = NAN);
    BAD("temperature", p.temperature = INFINITY);
    BAD("top-k", p.top_k = -1);
    BAD("top-p", p.top_p = 0);
    BAD("top-p", p.top_p = -0.5);
    BAD("top-p", p.top_p = 1.0000001);
    BAD("top-p", p.top_p = NAN);
    BAD("min-p", p.min_p = -0.01);
    BAD("min-p", p.min_p = 1.5);
    BAD("min-p", p.min_p = NAN);
    BAD("repeat-penalty", p.repeat_penalty = 0);
    BAD("repeat-penalty", p.repeat_penalty = -1.1);
    BAD("repeat-penalty", p.repeat_penalty = INFINITY);
    BAD("repeat-penalty", p.repeat_penalty = NAN);
    BAD("repeat-last-n", p.repeat_last_n = -2);
    BAD("presence-penalty", p.presence_penalty = NAN);
    BAD("presence-penalty", p.presence_penalty = -INFINITY);
    BAD("frequency-penalty", p.frequency_penalty = INFINITY);
#undef BAD
    CHECK(nbad == 19, "%d", nbad);
    /* The edges of every range are accepted. */
    p = d;
    p.temperature = 0; p.top_k = 0; p.top_p = 1; p.min_p = 1;
    p.repeat_penalty = 1e-3; p.repeat_last_n = -1;
    p.presence_penalty = -2; p.frequency_penalty = -2;
    CHECK(llm_sampler_check(&p) == LLM_OK, "%s", llm_errmsg());
    p.top_p = 1e-9; p.min_p = 0;
    CHECK(llm_sampler_check(&p) == LLM_OK, "%s", llm_errmsg());

    llm_sampler *s = NULL;
    CHECK(llm_sampler_new(NULL, &s) == LLM_OK && s, "new(NULL)");
    CHECK(s && llm_sampler_get_params(s)->top_k == 40, "NULL gives defaults");
    float l[4] = {0, 1, 2, 3};
    int32_t tok = -1;
    llm_rng r;
    llm_rng_seed(&r, 1);
    CHECK(llm_sampler_sample(s, &r, l, 0, NULL, 0, &tok, NULL) == LLM_ERR_INVALID,
          "vocab 0");
    CHECK(strstr(llm_errmsg(), "vocabulary") != NULL, "%s", llm_errmsg());
    llm_sampler_free(s);
    llm_sampler_free(NULL);
}

static void test_greedy(void)
{
    llm_sampler_params p = off(0);
    llm_sampler *s = make(&p);
    llm_rng r, r0;
    llm_rng_seed(&r, 7);
    static float l[1000], l0[1000];
    for (int trial = 0; trial < 50; trial++) {
        random_logits(&r, l, 1000, 3);
        if (trial % 5 == 1) {        /* ties: the lowest id wins */
            l[900] = l[17] = l[400] = 50;
        }
        if (trial % 5 == 2)
            for (int t = 0; t < 1000; t++)
                l[t] = t % 3 == 0 ? -INFINITY : 1.0f;
        memcpy(l0, l, sizeof l);
        int32_t best = 0;
        for (int t = 1; t < 1000; t++)
            if (l0[t] > l0[best])
                best = t;
        double z = 0;
        for (int t = 0; t < 1000; t++)
            z += exp((double)l0[t] - l0[best]);
        int32_t tok = -1;
        float lp = 1;
        r0 = r;
        int rc = llm_sampler_sample(s, &r, l, 1000, NULL, 0, &tok, &lp);
        CHECK(rc == LLM_OK, "%s", llm_errmsg());
        CHECK(tok == best, "trial %d: %d, argmax %d", trial, tok, best);
        if (trial % 5 == 1)
            CHECK(tok == 17, "tie: %d", tok);
        if (trial % 5 == 2)
            CHECK(tok == 1, "tie after masked 0: %d", tok);
        CHECK(fabs(lp - (-log(z))) < 1e-5, "logprob %g, naive %g", lp, -log(z));
        CHECK(memcmp(&r, &r0, sizeof r) == 0, "greedy consumed randomness");
    }
    /* rng may be NULL when greedy, logprob may be NULL. */
    float two[2] = {1, 1};
    int32_t tok = -1;
    CHECK(llm_sampler_sample(s, NULL, two, 2, NULL, 0, &tok, NULL) == LLM_OK &&
          tok == 0, "two equal: %d", tok);
    llm_sampler_free(s);
}

/* Draws `draws` tokens from fixed logits with `p`, checking every token is in
 * the naive final distribution, that logprob matches it, and that the draw
 * rule (replayed with a copy of the RNG) picks the same token; then the
 * frequencies against the probabilities. */
static void check_against_naive(const char *what, const llm_sampler_params *p,
                                const float *logits, int vocab, long draws,
                                uint64_t seed)
{
    static float l[MAXV];
    static long count[MAXV];
    static dist d;
    naive_dist(p, logits, vocab, &d);
    memset(count, 0, sizeof count);
    llm_sampler *s = make(p);
    llm_rng r;
    llm_rng_seed(&r, seed);
    long outside = 0, badlp = 0, badpick = 0, badrng = 0;
    for (long k = 0; k < draws; k++) {
        memcpy(l, logits, (size_t)vocab * sizeof *l);
        llm_rng ru = r;
        double u = llm_rng_uniform(&ru);   /* the one draw it must make */
        int32_t tok = -1;
        float lp = 0;
        int rc = llm_sampler_sample(s, &r, l, vocab, NULL, 0, &tok, &lp);
        if (rc != LLM_OK) {
            CHECK(0, "%s: %s", what, llm_errmsg());
            break;
        }
        badrng += memcmp(&r, &ru, sizeof r) != 0;
        double pr = dist_prob(&d, tok);
        if (pr == 0) {
            outside++;
            continue;
        }
        count[tok]++;
        badlp += fabs(lp - log(pr)) > 1e-5 + 1e-5 * fabs(log(pr));
        int close;
        int32_t want = dist_pick(&d, u, &close);
        badpick += !close && want != tok;
    }
    CHECK(outside == 0, "%s: %ld draws outside the %d-token support", what,
          outside, d.n);
    CHECK(badlp == 0, "%s: %ld logprobs differ from the naive ones", what, badlp);
    CHECK(badpick == 0, "%s: %ld picks differ from the draw rule", what, badpick);
    CHECK(badrng == 0, "%s: %ld calls did not use exactly one uniform", what,
          badrng);
    int df;
    double x2 = chi_square(&d, count, draws, &df);
    CHECK(x2 < chi_bound(df), "%s: chi-square %.1f with %d df (bound %.1f)",
          what, x2, df, chi_bound(df));
    llm_sampler_free(s);
}

static void test_filters(void)
{
    static float l[MAXV];
    llm_rng r;
    llm_rng_seed(&r, 2024);
    llm_sampler_params p;

    /* top-k: never outside the k best, on random logits. */
    random_logits(&r, l, 1000, 2);
    p = off(1.0);
    p.top_k = 10;
    check_against_naive("top-k 10", &p, l, 1000, 20000, 1);
    p.top_k = 1;
    check_against_naive("top-k 1", &p, l, 1000, 2000, 2);
    p.top_k = 999;
    check_against_naive("top-k 999", &p, l, 1000, 20000, 3);

    /* top-p: only the nucleus, with the right frequencies. */
    random_logits(&r, l, 200, 1.5);
    p = off(1.0);
    p.top_p = 0.7;
    check_against_naive("top-p 0.7", &p, l, 200, 20000, 4);
    p.top_p = 0.05;
    check_against_naive("top-p 0.05 (one token)", &p, l, 200, 1000, 5);
    p.temperature = 0.6;
    p.top_p = 0.95;
    check_against_naive("top-p 0.95 T 0.6", &p, l, 200, 20000, 6);

    /* min-p: the floor min_p * p_max. */
    p = off(1.0);
    p.min_p = 0.1;
    check_against_naive("min-p 0.1", &p, l, 200, 20000, 7);
    p.min_p = 1.0;
    check_against_naive("min-p 1", &p, l, 200, 500, 8);
    {
        /* Direct check of the floor on a hand-made distribution. */
        float h[6] = {0, (float)log(0.5), (float)log(0.2), (float)log(0.09),
                      (float)log(0.05), -INFINITY};
        p = off(1.0);
        p.min_p = 0.1;   /* keeps p >= 0.1 * p_max: ids 0, 1, 2 */
        llm_sampler *s = make(&p);
        long seen[6] = {0};
        llm_rng_seed(&r, 99);
        for (int k = 0; k < 5000; k++) {
            float c[6];
            memcpy(c, h, sizeof c);
            int32_t tok = -1;
            CHECK(llm_sampler_sample(s, &r, c, 6, NULL, 0, &tok, NULL) == LLM_OK,
                  "%s", llm_errmsg());
            if (tok >= 0 && tok < 6)
                seen[tok]++;
        }
        CHECK(seen[3] == 0 && seen[4] == 0 && seen[5] == 0,
              "below the floor: %ld %ld %ld", seen[3], seen[4], seen[5]);
        CHECK(seen[0] > 0 && seen[1] > 0 && seen[2] > 0, "kept tokens appear");
        llm_sampler_free(s);
    }

    /* The whole chain, at the defaults and others, on a 32000 vocabulary
     * (exercises the lazy ordering of the candidates). */
    random_logits(&r, l, MAXV, 3);
    llm_sampler_defaults(&p);
    check_against_naive("defaults V=32000", &p, l, MAXV, 2000, 9);
    p = off(1.0);
    check_against_naive("no filter V=32000", &p, l, MAXV, 300, 10);
    p.top_p = 0.9;
    check_against_naive("top-p 0.9 V=32000", &p, l, MAXV, 300, 11);
    p = off(0.7);
    p.min_p = 0.02;
    check_against_naive("min-p V=32000", &p, l, MAXV, 1000, 12);
    p = off(1.3);
    p.top_k = 100;
    p.top_p = 0.8;
    p.min_p = 0.05;
    check_against_naive("k+p+min-p V=32000", &p, l, MAXV, 2000, 13);

    /* Peaked logits, many ties and masked tokens. */
    for (int t = 0; t < 500; t++)
        l[t] = t % 7 == 0 ? -INFINITY : (float)(t % 5);
    p = off(0.9);
    p.top_k = 30;
    check_against_naive("ties top-k", &p, l, 500, 5000, 14);
    p = off(0.9);
    p.top_p = 0.5;
    check_against_naive("ties top-p", &p, l, 500, 5000, 15);
    /* No filter: the id-order walk over blocks of 64, with a short last
     * block (500 = 7 x 64 + 52) and masked tokens inside blocks. */
    p = off(0.9);
    check_against_naive("ties, masked, no filter", &p, l, 500, 20000, 16);
    /* One token holding nearly all the weight, in the short last block. */
    for (int t = 0; t < 500; t++)
        l[t] = t == 470 ? 12.0f : (float)(t % 3) - 8.0f;
    check_against_naive("peaked, no filter", &p, l, 500, 20000, 17);
}

static void test_temperature(void)
{
    static float base[100], l[100];
    for (int t = 0; t < 100; t++)
        base[t] = (float)((t * 37) % 100) * 0.1f;   /* distinct; max at t=73 */
    int32_t top = 0;
    for (int t = 1; t < 100; t++)
        if (base[t] > base[top])
            top = t;
    double temps[] = {1e-4, 0.005, 0.5, 1, 5, 1e6};
    int distinct_prev = 0;
    for (size_t i = 0; i < sizeof temps / sizeof *temps; i++) {
        llm_sampler_params p = off(temps[i]);
        llm_sampler *s = make(&p);
        llm_rng r;
        llm_rng_seed(&r, 5);
        int seen[100] = {0};
        long at_top = 0;
        for (int k = 0; k < 4000; k++) {
            memcpy(l, base, sizeof l);
            int32_t tok = -1;
            CHECK(llm_sampler_sample(s, &r, l, 100, NULL, 0, &tok, NULL) == LLM_OK,
                  "%s", llm_errmsg());
            if (tok < 0 || tok >= 100)
                continue;
            seen[tok] = 1;
            at_top += tok == top;
        }
        int distinct = 0;
        for (int t = 0; t < 100; t++)
            distinct += seen[t];
        if (temps[i] <= 0.005)
            CHECK(at_top == 4000, "T=%g: argmax %ld of 4000", temps[i], at_top);
        if (temps[i] >= 5)
            CHECK(distinct >= 95, "T=%g: only %d distinct", temps[i], distinct);
        CHECK(distinct >= distinct_prev, "T=%g spreads less (%d < %d)",
              temps[i], distinct, distinct_prev);
        distinct_prev = distinct;
        llm_sampler_free(s);
    }
}

static void sequence(const llm_sampler_params *p, uint64_t seed, int32_t *out,
                     int n)
{
    static float l[5000];
    llm_rng lr;
    llm_rng_seed(&lr, 77);   /* the same "model" every time */
    llm_sampler *s = make(p);
    llm_rng r;
    llm_rng_seed(&r, seed);
    for (int k = 0; k < n; k++) {
        random_logits(&lr, l, 5000, 2);
        int rc = llm_sampler_sample(s, &r, l, 5000, out, (size_t)k, &out[k], NULL);
        CHECK(rc == LLM_OK, "%s", llm_errmsg());
    }
    llm_sampler_free(s);
}

static void test_seeds(void)
{
    llm_sampler_params p;
    llm_sampler_defaults(&p);
    p.temperature = 1.2;
    p.repeat_penalty = 1.1;
    p.frequency_penalty = 0.1;
    static int32_t a[300], b[300], c[300];
    sequence(&p, 42, a, 300);
    sequence(&p, 42, b, 300);
    sequence(&p, 43, c, 300);
    CHECK(memcmp(a, b, sizeof a) == 0, "same seed, different sequence");
    int same = 0;
    for (int i = 0; i < 300; i++)
        same += a[i] == c[i];
    CHECK(same < 150, "seeds 42 and 43 agree on %d of 300 tokens", same);

    /* Reusing one sampler across a vocabulary change (scratch regrown). */
    llm_sampler *s = make(&p);
    llm_rng r;
    llm_rng_seed(&r, 3);
    float small[10] = {0, 1, 2, 3, 4, 5, 6, 7, 8, 9};
    static float big[20000];
    for (int t = 0; t < 20000; t++)
        big[t] = (float)(t % 101) * 0.05f;
    int32_t tok = -1;
    CHECK(llm_sampler_sample(s, &r, small, 10, NULL, 0, &tok, NULL) == LLM_OK &&
          tok >= 0 && tok < 10, "small %d", tok);
    CHECK(llm_sampler_sample(s, &r, big, 20000, NULL, 0, &tok, NULL) == LLM_OK &&
          tok >= 0 && tok < 20000 && tok % 101 >= 90, "big %d", tok);
    llm_sampler_free(s);
}

static void test_penalties(void)
{
    const float base[8] = {2.0f, -1.0f, 0.5f, 3.0f, -2.0f, 0.0f, 1.25f, -0.75f};
    /* Token counts in this history: 0 x3, 1 x2, 3 x1, 5 x1, 6 x0 ... */
    const int32_t hist[9] = {6, 6, 0, 1, 1, 3, 5, 0, 0};
    llm_sampler_params p;
    llm_sampler_defaults(&p);
    p.repeat_penalty = 1.5;
    p.presence_penalty = 0.25;
    p.frequency_penalty = 0.125;
    p.repeat_last_n = 7;   /* window {0, 1, 1, 3, 5, 0, 0}: 6 falls outside */
    llm_sampler *s = make(&p);
    float l[8];
    memcpy(l, base, sizeof l);
    CHECK(llm_sampler_penalize(s, l, 8, hist, 9) == LLM_OK, "%s", llm_errmsg());
    /* By hand: positive logits divided by 1.5, others multiplied, then
     * minus count * 0.125 + 0.25. */
    const float want[8] = {
        (float)(2.0 / 1.5 - 3 * 0.125 - 0.25),    /* 0.708333... */
        (float)(-1.0 * 1.5 - 2 * 0.125 - 0.25),   /* -2.0 */
        0.5f,                                      /* not in the window */
        (float)(3.0 / 1.5 - 1 * 0.125 - 0.25),    /* 1.625 */
        -2.0f,
        (float)(0.0 * 1.5 - 1 * 0.125 - 0.25),    /* -0.375 */
        1.25f,                                     /* only before the window */
        -0.75f,
    };
    for (int t = 0; t < 8; t++)
        CHECK(l[t] == want[t], "token %d: %.9g, want %.9g", t, l[t], want[t]);
    CHECK(want[1] == -2.0f && want[3] == 1.625f && want[5] == -0.375f,
          "hand values");
    /* Again: the counts must not leak from the previous call. */
    memcpy(l, base, sizeof l);
    CHECK(llm_sampler_penalize(s, l, 8, hist, 9) == LLM_OK, "%s", llm_errmsg());
    CHECK(memcmp(l, want, sizeof l) == 0, "second call differs");
    llm_sampler_free(s);

    /* -1: the whole history, so token 6 (twice) too. */
    p.repeat_last_n = -1;
    s = make(&p);
    memcpy(l, base, sizeof l);
    CHECK(llm_sampler_penalize(s, l, 8, hist, 9) == LLM_OK, "%s", llm_errmsg());
    CHECK(l[6] == (float)(1.25 / 1.5 - 2 * 0.125 - 0.25), "whole history: %g",
          l[6]);
    CHECK(l[0] == want[0], "whole history, token 0: %g", l[0]);
    /* A window longer than the history is the whole history. */
    llm_sampler_free(s);
    p.repeat_last_n = 1000;
    s = make(&p);
    float l2[8];
    memcpy(l2, base, sizeof l2);
    CHECK(llm_sampler_penalize(s, l2, 8, hist, 9) == LLM_OK &&
          memcmp(l, l2, sizeof l) == 0, "window 1000 != whole history");
    llm_sampler_free(s);

    /* 0: off, and out-of-range ids are then not even read. */
    p.repeat_last_n = 0;
    s = make(&p);
    memcpy(l, base, sizeof l);
    const int32_t junk[2] = {-5, 99};
    CHECK(llm_sampler_penalize(s, l, 8, junk, 2) == LLM_OK &&
          memcmp(l, base, sizeof l) == 0, "repeat-last-n 0 changed logits");
    llm_sampler_free(s);

    /* Only the presence penalty; and a negative one rewards. */
    llm_sampler_defaults(&p);
    p.presence_penalty = -0.5;
    s = make(&p);
    memcpy(l, base, sizeof l);
    CHECK(llm_sampler_penalize(s, l, 8, hist, 9) == LLM_OK, "%s", llm_errmsg());
    CHECK(l[0] == 2.5f && l[1] == -0.5f && l[6] == 1.75f && l[2] == 0.5f,
          "presence: %g %g %g %g", l[0], l[1], l[6], l[2]);
    /* Ids outside the vocabulary in the window are rejected. */
    const int32_t bad[3] = {1, 8, 2};
    memcpy(l, base, sizeof l);
    CHECK(llm_sampler_penalize(s, l, 8, bad, 3) == LLM_ERR_RANGE,
          "id 8 of vocab 8 accepted");
    CHECK(strstr(llm_errmsg(), "history token 1") != NULL, "%s", llm_errmsg());
    const int32_t neg[1] = {-1};
    int32_t tok;
    CHECK(llm_sampler_sample(s, NULL, l, 8, neg, 1, &tok, NULL) == LLM_ERR_RANGE,
          "id -1 accepted");
    llm_sampler_free(s);

    /* Penalties feed the sampler: greedy picks the argmax of the penalised
     * logits, and the repeat penalty steers it away from a repeated token. */
    llm_sampler_defaults(&p);
    p.temperature = 0;
    p.repeat_penalty = 2.0;
    s = make(&p);
    memcpy(l, base, sizeof l);
    const int32_t h3[1] = {3};
    tok = -1;
    float lp = 0;
    CHECK(llm_sampler_sample(s, NULL, l, 8, h3, 1, &tok, &lp) == LLM_OK &&
          tok == 0, "greedy after penalty: %d", tok);
    {
        double pen[8], z = 0;
        for (int t = 0; t < 8; t++)
            pen[t] = t == 3 ? 1.5 : base[t];
        for (int t = 0; t < 8; t++)
            z += exp(pen[t] - 2.0);
        CHECK(fabs(lp - (-log(z))) < 1e-6, "greedy logprob %g vs %g", lp,
              -log(z));
    }
    llm_sampler_free(s);
}

static void test_numeric(void)
{
    llm_sampler_params p;
    llm_sampler_defaults(&p);
    llm_sampler *s = make(&p);
    llm_rng r;
    llm_rng_seed(&r, 11);
    float l[4] = {0, NAN, 1, 2};
    int32_t tok;
    CHECK(llm_sampler_sample(s, &r, l, 4, NULL, 0, &tok, NULL) == LLM_ERR_NUMERIC,
          "NaN accepted");
    CHECK(strstr(llm_errmsg(), "token 1") != NULL, "%s", llm_errmsg());
    float inf[3] = {0, INFINITY, 1};
    CHECK(llm_sampler_sample(s, &r, inf, 3, NULL, 0, &tok, NULL) == LLM_ERR_NUMERIC,
          "+inf accepted");
    float none[3] = {-INFINITY, -INFINITY, -INFINITY};
    CHECK(llm_sampler_sample(s, &r, none, 3, NULL, 0, &tok, NULL) == LLM_ERR_NUMERIC,
          "all -inf accepted");
    /* Masked tokens never come out, even with everything else tiny. */
    p = off(50);
    llm_sampler_free(s);
    s = make(&p);
    for (int k = 0; k < 2000; k++) {
        float m[5] = {-INFINITY, -80, -INFINITY, -81, -INFINITY};
        tok = -1;
        CHECK(llm_sampler_sample(s, &r, m, 5, NULL, 0, &tok, NULL) == LLM_OK &&
              (tok == 1 || tok == 3), "masked token %d", tok);
    }
    llm_sampler_free(s);
}

/* llm_sampler_sample_batch() against llm_sampler_sample() called on each
 * sequence in turn with a sampler of its own: the same tokens, logprobs
 * and stream states, bit for bit, on 1, 2 and 3 threads and over several
 * steps (the per-thread samplers are made once, then reused). */
#define BN 13
#define BV 1000
static void test_batch(void)
{
    llm_sampler_params ps[3];
    llm_sampler_defaults(&ps[0]);
    ps[0].repeat_penalty = 1.3;
    ps[0].frequency_penalty = 0.2;
    ps[1] = off(1.0);
    ps[2] = off(0.0);
    static float logits[BN * BV], work[BN * BV];
    static int32_t hist[BN][40];
    for (int pi = 0; pi < 3; pi++)
        for (int threads = 1; threads <= 3; threads++) {
            llm_set_threads(threads);
            llm_sampler *s = make(&ps[pi]), *ref = make(&ps[pi]);
            llm_rng r, rb[BN], rr[BN];
            llm_rng_seed(&r, 100 + (uint64_t)pi);
            for (int i = 0; i < BN; i++) {
                llm_rng_seed(&rb[i], 7 * (uint64_t)i + 1);
                rr[i] = rb[i];
            }
            const int32_t *h[BN];
            size_t nh[BN];
            int bad = 0;
            for (int step = 0; step < 4; step++) {
                for (int i = 0; i < BN; i++) {
                    random_logits(&r, logits + (size_t)i * BV, BV, 1.0 + i % 4);
                    nh[i] = (size_t)((i * 3 + step * 5) % 41);
                    for (size_t k = 0; k < nh[i]; k++)
                        hist[i][k] = (int32_t)(llm_rng_u64(&r) % BV);
                    h[i] = hist[i];
                }
                int32_t tok[BN], want[BN];
                float lp[BN], wlp[BN];
                memcpy(work, logits, sizeof work);
                int rc = llm_sampler_sample_batch(s, BN, pi == 2 ? NULL : rb, work, BV, h, nh,
                                                  tok, lp);
                CHECK(rc == LLM_OK, "%s", llm_errmsg());
                for (int i = 0; i < BN; i++) {
                    memcpy(work, logits + (size_t)i * BV, BV * sizeof *work);
                    CHECK(llm_sampler_sample(ref, pi == 2 ? NULL : &rr[i], work, BV, h[i],
                                             nh[i], &want[i], &wlp[i]) == LLM_OK,
                          "%s", llm_errmsg());
                    bad += tok[i] != want[i] || memcmp(&lp[i], &wlp[i], sizeof lp[i]) ||
                           memcmp(&rb[i], &rr[i], sizeof rb[i]);
                }
            }
            CHECK(bad == 0, "params %d, %d threads: %d sequences differ", pi, threads, bad);
            llm_sampler_free(s);
            llm_sampler_free(ref);
        }
    /* The lowest failing sequence is the one reported. */
    llm_set_threads(3);
    llm_sampler_params p = off(1.0);
    llm_sampler *s = make(&p);
    llm_rng rb[BN];
    for (int i = 0; i < BN; i++)
        llm_rng_seed(&rb[i], (uint64_t)i);
    for (size_t i = 0; i < BN * BV; i++)
        work[i] = 0.0f;
    work[9 * BV + 5] = NAN;
    work[4 * BV + 2] = INFINITY;
    int32_t tok[BN];
    CHECK(llm_sampler_sample_batch(s, BN, rb, work, BV, NULL, NULL, tok, NULL) ==
          LLM_ERR_NUMERIC, "NaN and +inf accepted");
    CHECK(strstr(llm_errmsg(), "sequence 4: logit of token 2 is +inf") != NULL, "%s",
          llm_errmsg());
    CHECK(llm_sampler_sample_batch(s, 0, rb, work, BV, NULL, NULL, tok, NULL) == LLM_OK,
          "n = 0");
    llm_sampler_free(s);
    llm_set_threads(0);
}

int main(void)
{
    test_params();
    test_greedy();
    test_filters();
    test_temperature();
    test_seeds();
    test_penalties();
    test_numeric();
    test_batch();
    if (failures) {
        fprintf(stderr, "test_sample: %d of %d checks failed\n", failures, checks);
        return 1;
    }
    printf("test_sample: %d checks passed\n", checks);
    return 0;
}
