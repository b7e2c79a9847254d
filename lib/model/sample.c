/* sample.c: the next-token sampler of llm-generate. One chain, in llama.cpp's
 * classic order: penalties, greedy shortcut, top-k, temperature, softmax,
 * top-p, min-p, one uniform draw. Candidates are ordered by a total order
 * (logit descending, then id ascending) so that every step, and so every
 * sampled sequence, is a pure function of the logits, the history and the
 * RNG state. The order is built lazily: only as much of the candidate list
 * is sorted as a step looks at, which keeps a 32000-token vocabulary cheap
 * when top-k, top-p or min-p cut it down (the usual case). With no cut at
 * all (top-k 0, top-p 1, min-p 0) no order is needed: the draw walks the
 * vocabulary in id order, as llama2.c's sampler does, over weights computed
 * in one vectorised pass and summed in blocks, so that finding the token
 * costs a walk over block sums and then one block. The passes over the
 * whole vocabulary are the CPU kernel table's (kernels.h), and a batch of
 * sequences is sampled on the kernels' threads (llm_kernels_parallel()). */
#include <assert.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "internal.h"
#include "kernels.h"

/* Tokens per block of the plain draw's partial sums. */
#define BLOCK 64

struct llm_sampler {
    llm_sampler_params p;
    size_t cap;          /* entries in each array below */
    uint64_t *key;       /* (cap) candidates as keys (see key_of) */
    uint64_t *tmp;       /* (cap) radix sort buffer */
    double *w;           /* (cap) by token id: unnormalised probability */
    int32_t *count;      /* (cap) by token id: occurrences in the penalty
                          * window; all zero between calls */
    float *f;            /* (cap) by token id: the plain draw's weights */
    float *bsum;         /* (cap / BLOCK + 1) their sums by block */
    struct llm_sampler **sub;  /* (nsub) llm_sampler_sample_batch()'s */
    int nsub;                  /* samplers for threads 1, 2, ... */
    /* llm_sampler_sample_batch(): the lowest sequence that failed on this
     * sampler's thread (-1: none), its status and message. */
    int fail_at, fail_rc;
    char fail_msg[1024];
};

void llm_sampler_defaults(llm_sampler_params *p)
{
    assert(p);
    p->temperature = 0.8;
    p->top_k = 40;
    p->top_p = 0.95;
    p->min_p = 0.05;
    p->repeat_penalty = 1.0;
    p->repeat_last_n = 64;
    p->presence_penalty = 0.0;
    p->frequency_penalty = 0.0;
}

int llm_sampler_check(const llm_sampler_params *p)
{
    assert(p);
    if (!(isfinite(p->temperature) && p->temperature >= 0))
        return llm_fail(LLM_ERR_INVALID,
                        "temperature must be a finite number >= 0 (got %g)",
                        p->temperature);
    if (p->top_k < 0)
        return llm_fail(LLM_ERR_INVALID,
                        "top-k must be >= 0, 0 meaning off (got %d)", p->top_k);
    if (!(p->top_p > 0 && p->top_p <= 1))
        return llm_fail(LLM_ERR_INVALID,
                        "top-p must be in (0, 1], 1 meaning off (got %g)",
                        p->top_p);
    if (!(p->min_p >= 0 && p->min_p <= 1))
        return llm_fail(LLM_ERR_INVALID,
                        "min-p must be in [0, 1], 0 meaning off (got %g)",
                        p->min_p);
    if (!(isfinite(p->repeat_penalty) && p->repeat_penalty > 0))
        return llm_fail(LLM_ERR_INVALID,
                        "repeat-penalty must be a finite number > 0, 1 meaning "
                        "off (got %g)", p->repeat_penalty);
    if (p->repeat_last_n < -1)
        return llm_fail(LLM_ERR_INVALID,
                        "repeat-last-n must be >= -1, 0 meaning off and -1 the "
                        "whole history (got %d)", p->repeat_last_n);
    if (!isfinite(p->presence_penalty))
        return llm_fail(LLM_ERR_INVALID,
                        "presence-penalty must be a finite number (got %g)",
                        p->presence_penalty);
    if (!isfinite(p->frequency_penalty))
        return llm_fail(LLM_ERR_INVALID,
                        "frequency-penalty must be a finite number (got %g)",
                        p->frequency_penalty);
    return LLM_OK;
}

int llm_sampler_new(const llm_sampler_params *p, llm_sampler **out)
{
    assert(out);
    *out = NULL;
    llm_sampler_params d;
    if (!p) {
        llm_sampler_defaults(&d);
        p = &d;
    }
    int rc = llm_sampler_check(p);
    if (rc != LLM_OK)
        return rc;
    llm_sampler *s = calloc(1, sizeof *s);
    if (!s)
        return llm_fail(LLM_ERR_NOMEM, "out of memory allocating a sampler");
    s->p = *p;
    *out = s;
    return LLM_OK;
}

static void free_scratch(llm_sampler *s)
{
    free(s->key);
    free(s->tmp);
    free(s->w);
    free(s->count);
    free(s->f);
    free(s->bsum);
}

void llm_sampler_free(llm_sampler *s)
{
    if (!s)
        return;
    free_scratch(s);
    for (int i = 0; i < s->nsub; i++)
        llm_sampler_free(s->sub[i]);
    free(s->sub);
    free(s);
}

const llm_sampler_params *llm_sampler_get_params(const llm_sampler *s)
{
    assert(s);
    return &s->p;
}

/* Grows the scratch to `vocab` entries; after the first call with the
 * largest vocabulary, sampling allocates nothing. */
static int reserve(llm_sampler *s, int vocab)
{
    if (vocab <= 0)
        return llm_fail(LLM_ERR_INVALID,
                        "vocabulary size must be > 0 (got %d)", vocab);
    size_t n = (size_t)vocab;
    if (n <= s->cap)
        return LLM_OK;
    uint64_t *key = malloc(n * sizeof *key);
    uint64_t *tmp = malloc(n * sizeof *tmp);
    double *w = malloc(n * sizeof *w);
    int32_t *count = calloc(n, sizeof *count);
    float *f = malloc(n * sizeof *f);
    float *bsum = malloc((n / BLOCK + 1) * sizeof *bsum);
    if (!key || !tmp || !w || !count || !f || !bsum) {
        free(key);
        free(tmp);
        free(w);
        free(count);
        free(f);
        free(bsum);
        return llm_fail(LLM_ERR_NOMEM,
                        "out of memory for sampler scratch (%d tokens)", vocab);
    }
    free_scratch(s);
    s->key = key;
    s->tmp = tmp;
    s->w = w;
    s->count = count;
    s->f = f;
    s->bsum = bsum;
    s->cap = n;
    return LLM_OK;
}

static int penalize(llm_sampler *s, float *logits, int vocab,
                    const int32_t *history, size_t n_history)
{
    const llm_sampler_params *p = &s->p;
    if (p->repeat_last_n == 0 || n_history == 0 ||
        (p->repeat_penalty == 1.0 && p->presence_penalty == 0.0 &&
         p->frequency_penalty == 0.0))
        return LLM_OK;
    assert(history);
    size_t n = n_history;
    if (p->repeat_last_n > 0 && (size_t)p->repeat_last_n < n)
        n = (size_t)p->repeat_last_n;
    const int32_t *h = history + (n_history - n);
    for (size_t i = 0; i < n; i++)
        if (h[i] < 0 || h[i] >= vocab)
            return llm_fail(LLM_ERR_RANGE,
                            "history token %zu is %ld, outside the vocabulary "
                            "[0, %d)", n_history - n + i, (long)h[i], vocab);
    int32_t *count = s->count;
    for (size_t i = 0; i < n; i++)
        count[h[i]]++;
    /* Each distinct token once, at its first occurrence in the window;
     * its count is zeroed there, which also restores the all-zero state. */
    for (size_t i = 0; i < n; i++) {
        int32_t t = h[i];
        int32_t c = count[t];
        if (c == 0)
            continue;
        count[t] = 0;
        double l = logits[t];
        l = l > 0 ? l / p->repeat_penalty : l * p->repeat_penalty;
        l -= (double)c * p->frequency_penalty + p->presence_penalty;
        logits[t] = (float)l;
    }
    return LLM_OK;
}

int llm_sampler_penalize(llm_sampler *s, float *logits, int vocab,
                         const int32_t *history, size_t n_history)
{
    assert(s && logits);
    int rc = reserve(s, vocab);
    if (rc != LLM_OK)
        return rc;
    return penalize(s, logits, vocab, history, n_history);
}

/* ---------------------------------------------------------------- order */

/* A candidate as one integer whose order is the total order of candidates,
 * greater first: the logit's bits made monotone in the high half (with -0
 * as +0, so that equal logits tie), the id inverted in the low half (lower
 * ids first). Comparisons are then integer compares on contiguous memory. */
static inline uint64_t key_of(float l, int32_t t)
{
    uint32_t u;
    if (l == 0)
        l = 0;   /* -0 == +0 */
    memcpy(&u, &l, sizeof u);
    u = (u & 0x80000000u) ? ~u : (u | 0x80000000u);
    return (uint64_t)u << 32 | (uint32_t)(UINT32_MAX - (uint32_t)t);
}

static inline int32_t key_id(uint64_t k)
{
    return (int32_t)(UINT32_MAX - (uint32_t)k);
}

/* Min-heap: the root is the smallest (worst) of h[0..n). */
static void sift_down(uint64_t *h, size_t n, size_t i)
{
    uint64_t x = h[i];
    for (;;) {
        size_t c = 2 * i + 1;
        if (c >= n)
            break;
        if (c + 1 < n && h[c + 1] < h[c])
            c++;
        if (x <= h[c])
            break;
        h[i] = h[c];
        i = c;
    }
    h[i] = x;
}

/* LSD radix sort of k[0..n), descending, 8 bits a pass; passes where every
 * key has the same digit are skipped. */
static void radix_desc(uint64_t *k, uint64_t *tmp, size_t n)
{
    size_t hist[8][256];
    memset(hist, 0, sizeof hist);
    for (size_t i = 0; i < n; i++)
        for (int d = 0; d < 8; d++)
            hist[d][(k[i] >> (8 * d)) & 255]++;
    uint64_t *src = k, *dst = tmp;
    for (int d = 0; d < 8; d++) {
        size_t *h = hist[d];
        if (h[(k[0] >> (8 * d)) & 255] == n)
            continue;
        size_t pos = 0;
        for (int b = 255; b >= 0; b--) {
            size_t c = h[b];
            h[b] = pos;
            pos += c;
        }
        for (size_t i = 0; i < n; i++)
            dst[h[(src[i] >> (8 * d)) & 255]++] = src[i];
        uint64_t *t = src;
        src = dst;
        dst = t;
    }
    if (src != k)
        memcpy(k, src, n * sizeof *k);
}

typedef struct {
    uint64_t *key;   /* candidates */
    uint64_t *tmp;
    size_t n;        /* candidates in key */
    size_t sorted;   /* key[0, sorted) are the greatest `sorted`, in order */
} order;

/* Extends the sorted prefix to at least min(m, n) entries: heap selection of
 * the greatest of the unsorted rest, O(rest log m), then heapsort of those;
 * or, when most of the rest is wanted, a radix sort of all of it. */
static void order_extend(order *o, size_t m)
{
    if (m > o->n)
        m = o->n;
    if (m <= o->sorted)
        return;
    uint64_t *h = o->key + o->sorted;
    size_t rest = o->n - o->sorted;
    size_t c = m - o->sorted;
    if (c > rest / 16) {
        radix_desc(h, o->tmp, rest);
        o->sorted = o->n;
        return;
    }
    for (size_t i = c / 2; i-- > 0;)
        sift_down(h, c, i);
    for (size_t j = c; j < rest; j++)
        if (h[j] > h[0]) {
            uint64_t t = h[j];
            h[j] = h[0];
            h[0] = t;
            sift_down(h, c, 0);
        }
    for (size_t e = c; e-- > 1;) {   /* smallest to the back: greatest first */
        uint64_t t = h[0];
        h[0] = h[e];
        h[e] = t;
        sift_down(h, e, 0);
    }
    o->sorted += c;
}

/* The k greatest candidates of the finite logits into h[0..k), greatest
 * first: a min-heap of keys, into which a block of logits is looked at
 * only when one of them beats the heap's worst (a later token must beat it
 * strictly: an equal logit with a higher id orders after it). @return k,
 * or the number of finite logits when fewer (then h is unordered). */
static size_t select_top_k(uint64_t *h, const float *logits, int vocab, size_t k)
{
    size_t n = 0;
    int32_t t = 0;
    for (; t < vocab && n < k; t++)
        if (logits[t] != -INFINITY)
            h[n++] = key_of(logits[t], t);
    if (n < k)
        return n;
    for (size_t i = k / 2; i-- > 0;)
        sift_down(h, k, i);
    float worst = logits[key_id(h[0])];
    while (t < vocab) {
        int32_t e = vocab - t < 16 ? vocab : t + 16;
        int any = 0;
        for (int32_t j = t; j < e; j++)
            any |= logits[j] > worst;
        for (int32_t j = t; any && j < e; j++)
            if (logits[j] > worst) {
                h[0] = key_of(logits[j], j);
                sift_down(h, k, 0);
                worst = logits[key_id(h[0])];
            }
        t = e;
    }
    for (size_t e = k; e-- > 1;) {   /* smallest to the back: greatest first */
        uint64_t x = h[0];
        h[0] = h[e];
        h[e] = x;
        sift_down(h, e, 0);
    }
    return k;
}

/* The candidate at rank i (< n), sorting more when needed. */
static inline int32_t order_at(order *o, size_t i)
{
    if (i >= o->sorted)
        order_extend(o, o->sorted < 64 ? 64 : 8 * o->sorted);
    return key_id(o->key[i]);
}

/* ---------------------------------------------------------------- sample */

/* The draw with no cut: weights exp((l - lmax) / T) by id, -inf giving 0;
 * z their sum by blocks; the token is found by walking the block sums, then
 * the one block where the running sum passes u * z. */
static int sample_plain(llm_sampler *s, llm_rng *rng, const float *logits, int vocab,
                        float lmax, int32_t *token, float *logprob)
{
    float *f = s->f, inv = (float)(1.0 / s->p.temperature);
    double z = llm_kernels_cpu()->softmax_weights(f, s->bsum, logits, vocab, lmax, inv,
                                                  BLOCK);
    int nb = (vocab + BLOCK - 1) / BLOCK;
    double target = llm_rng_uniform(rng) * z, cum = 0;
    int j = 0;
    while (j < nb && cum + s->bsum[j] <= target)
        cum += s->bsum[j++];
    int32_t pick = -1;
    if (j < nb) {
        int32_t b = j * BLOCK, e = vocab - b < BLOCK ? vocab : b + BLOCK;
        for (int32_t t = b; t < e && pick < 0; t++)
            if ((cum += f[t]) > target)
                pick = t;
        /* The block's own sum in double can fall short of its float sum:
         * then its last token with any weight. */
        for (int32_t t = e; pick < 0 && t-- > b;)
            if (f[t] > 0)
                pick = t;
    }
    /* Rounding left the target at or past the summed weights: the last
     * token that has any weight. */
    for (int32_t t = vocab; pick < 0 && t-- > 0;)
        if (f[t] > 0)
            pick = t;
    assert(pick >= 0);
    *token = pick;
    if (logprob)
        *logprob = (float)log(f[pick] / z);
    return LLM_OK;
}

int llm_sampler_sample(llm_sampler *s, llm_rng *rng, float *logits, int vocab,
                       const int32_t *history, size_t n_history,
                       int32_t *token, float *logprob)
{
    assert(s && logits && token);
    const llm_sampler_params *p = &s->p;
    int rc = reserve(s, vocab);
    if (rc != LLM_OK)
        return rc;
    rc = penalize(s, logits, vocab, history, n_history);
    if (rc != LLM_OK)
        return rc;

    /* Check, and find the maximum: one vectorised pass, which also looks
     * for NaN or +inf. */
    const llm_kernels *k = llm_kernels_cpu();
    int bad;
    float lmax = k->logits_max(logits, vocab, &bad);
    if (bad)
        for (int32_t t = 0; t < vocab; t++)
            if (isnan(logits[t]) || logits[t] == INFINITY)
                return llm_fail(LLM_ERR_NUMERIC,
                                "logit of token %ld is %s (after penalties)",
                                (long)t, isnan(logits[t]) ? "NaN" : "+inf");
    if (lmax == -INFINITY)
        return llm_fail(LLM_ERR_NUMERIC, "every logit is -inf: nothing to sample");
    int plain = (p->top_k == 0 || p->top_k >= vocab) && p->top_p >= 1 && p->min_p <= 0;
    if (p->temperature > 0 && plain) {
        assert(rng);
        return sample_plain(s, rng, logits, vocab, lmax, token, logprob);
    }
    if (p->temperature == 0) {
        /* Greedy: the first maximum, so ties go to the lowest id. */
        int32_t best = k->find_first(logits, vocab, lmax);
        assert(best < vocab);
        /* Its logprob is under the temperature-1 softmax of these logits. */
        *token = best;
        if (logprob) {
            double z = 0;
            for (int32_t t = 0; t < vocab; t++)
                z += exp((double)logits[t] - lmax);   /* -inf gives 0 */
            *logprob = (float)-log(z);
        }
        return LLM_OK;
    }
    assert(rng);

    /* The candidates: every token above -inf (-inf masks a token); with
     * top-k, only the k best, selected straight from the logits; with
     * min-p alone, only tokens whose logit comes near the best one's
     * (w >= min-p means l >= lmax + T ln(min-p); the bound taken a little
     * lower, and the exact test made below). */
    order o = {s->key, s->tmp, 0, 0};
    if (p->top_k > 0 && p->top_k < vocab) {
        o.n = select_top_k(o.key, logits, vocab, (size_t)p->top_k);
        o.sorted = o.n == (size_t)p->top_k ? o.n : 0;
    } else {
        float lo = -INFINITY;
        if (p->min_p > 0 && p->top_p >= 1) {
            double b = lmax + p->temperature * log(p->min_p);
            lo = (float)(b - 1e-4 * (1 + fabs(b)));
        }
        for (int32_t t = 0; t < vocab; t++)
            if (logits[t] != -INFINITY && logits[t] >= lo)
                o.key[o.n++] = key_of(logits[t], t);
    }

    /* Temperature and softmax, in double. The best token gets weight
     * exp(0) = 1, which is also the min-p reference. */
    double *w = s->w;
    double z = 0;
    for (size_t i = 0; i < o.n; i++) {
        int32_t t = key_id(o.key[i]);
        w[t] = exp(((double)logits[t] - lmax) / p->temperature);
        z += w[t];
    }

    size_t n_softmax = o.n;
    if (p->top_p < 1) {
        double goal = p->top_p * z, cum = 0;
        for (size_t i = 0; i < o.n; i++) {
            cum += w[order_at(&o, i)];
            if (cum >= goal) {
                o.n = i + 1;
                break;
            }
        }
    }

    if (p->min_p > 0) {
        /* Weights are monotone in the logit, so the kept tokens are a
         * prefix of the order: count them, then sort that many. */
        size_t keep = 0;
        for (size_t i = 0; i < o.n; i++)
            keep += w[key_id(o.key[i])] >= p->min_p;
        order_extend(&o, keep);
        o.n = keep;
    }
    if (o.n != n_softmax) {   /* renormalise over what is left */
        z = 0;
        for (size_t i = 0; i < o.n; i++)
            z += w[key_id(o.key[i])];
    }

    /* One uniform per sampled token, whatever the filters left, so that the
     * k-th token always uses the k-th draw of the stream. */
    double target = llm_rng_uniform(rng) * z, cum = 0;
    int32_t pick = -1;
    for (size_t i = 0; i < o.n; i++) {
        int32_t t = order_at(&o, i);
        cum += w[t];
        if (cum > target) {
            pick = t;
            break;
        }
    }
    if (pick < 0) {
        /* Rounding left target at or past the summed weights: the last
         * token that has any weight. */
        order_extend(&o, o.n);
        for (size_t i = o.n; i-- > 0;)
            if (w[key_id(o.key[i])] > 0) {
                pick = key_id(o.key[i]);
                break;
            }
    }
    assert(pick >= 0);
    *token = pick;
    if (logprob)
        *logprob = (float)log(w[pick] / z);
    return LLM_OK;
}

/* One batch of llm_sampler_sample_batch(): its arguments. */
typedef struct {
    llm_sampler *s;
    llm_rng *rng;
    float *logits;
    int vocab;
    const int32_t *const *history;
    const size_t *n_history;
    int32_t *tokens;
    float *logprobs;
} batch;

/* Samples sequence i on thread `id`: thread 0 with s itself, thread id
 * with sub[id - 1], which also keeps that thread's lowest failure. */
static void batch_task(void *ctx, int i, int id)
{
    const batch *a = ctx;
    llm_sampler *own = id ? a->s->sub[id - 1] : a->s;
    int rc = llm_sampler_sample(own, a->rng ? &a->rng[i] : NULL,
                                a->logits + (size_t)i * a->vocab, a->vocab,
                                a->history ? a->history[i] : NULL,
                                a->history ? a->n_history[i] : 0, &a->tokens[i],
                                a->logprobs ? &a->logprobs[i] : NULL);
    if (rc != LLM_OK && (own->fail_at < 0 || i < own->fail_at)) {
        own->fail_at = i;
        own->fail_rc = rc;
        snprintf(own->fail_msg, sizeof own->fail_msg, "%s", llm_errmsg());
    }
}

int llm_sampler_sample_batch(llm_sampler *s, int n, llm_rng *rng, float *logits, int vocab,
                             const int32_t *const *history, const size_t *n_history,
                             int32_t *tokens, float *logprobs)
{
    assert(s && n >= 0 && (n == 0 || (logits && tokens)));
    if (n <= 1)
        return n ? llm_sampler_sample(s, rng, logits, vocab, history ? history[0] : NULL,
                                      history ? n_history[0] : 0, tokens,
                                      logprobs) : LLM_OK;
    /* Thread 0 samples with s itself, thread i with sub[i - 1]: the
     * scratch differs, the draws do not (a sample is a pure function of
     * the logits, the history and the stream). */
    int threads = llm_kernels_threads();
    threads = threads < n ? threads : n;
    if (threads - 1 > s->nsub) {
        llm_sampler **sub = realloc(s->sub, (size_t)(threads - 1) * sizeof *sub);
        if (!sub)
            return llm_fail(LLM_ERR_NOMEM, "out of memory allocating samplers");
        s->sub = sub;
        for (; s->nsub < threads - 1; s->nsub++) {
            int rc = llm_sampler_new(&s->p, &sub[s->nsub]);
            if (rc != LLM_OK)
                return rc;
        }
    }
    for (int id = 0; id < threads; id++)
        (id ? s->sub[id - 1] : s)->fail_at = -1;
    batch a = {s, rng, logits, vocab, history, n_history, tokens, logprobs};
    llm_kernels_parallel(n, threads, batch_task, &a);
    const llm_sampler *first = NULL;   /* the lowest failing sequence */
    for (int id = 0; id < threads; id++) {
        const llm_sampler *own = id ? s->sub[id - 1] : s;
        if (own->fail_at >= 0 && (!first || own->fail_at < first->fail_at))
            first = own;
    }
    if (first)
        return llm_fail(first->fail_rc, "sequence %d: %s", first->fail_at, first->fail_msg);
    return LLM_OK;
}
