/* beam.c: beam search over a key/value cache session (see llm.h). Each
 * prompt owns `beams` sequences of the session; a hypothesis lives in one of
 * them. When hypotheses fork, the first child of a parent keeps its
 * sequence and the others are copied from it into the sequences of
 * hypotheses that had no child, so no copy ever reads a sequence already
 * overwritten. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "internal.h"
#include "model.h"

typedef struct {
    double score;         /* sum of log-probabilities */
    int seq;              /* session sequence holding its cache */
    int32_t last;         /* the token to feed next */
    llm_ids ids;          /* generated so far */
} hyp;

typedef struct {
    double norm;          /* score / length^penalty */
    double score;
    int eos;
    llm_ids ids;
} done_hyp;

typedef struct {
    double score;
    int from;             /* the live hypothesis it extends */
    int32_t tok;
    float lp;
} offer;

typedef struct {
    hyp *live;            /* (beams) */
    int n_live;
    done_hyp *fin;        /* (beams) best finished, unordered */
    int n_fin;
    int done;
    int steps;            /* tokens generated per hypothesis so far */
} group;

/* Sorts offers best first: score, then hypothesis, then token. */
static int cmp_offer(const void *a, const void *b)
{
    const offer *x = a, *y = b;
    if (x->score != y->score)
        return x->score > y->score ? -1 : 1;
    if (x->from != y->from)
        return x->from < y->from ? -1 : 1;
    return (x->tok > y->tok) - (x->tok < y->tok);
}

static double normalised(double score, int len, double penalty)
{
    return score / pow((double)(len > 0 ? len : 1), penalty);
}

/* Keeps hypothesis (score, ids) among the best `beams` finished; eos: it
 * ends with EOS, which counts in its length but is not in ids. */
static int finish(group *g, int beams, double penalty, double score, const llm_ids *ids,
                  int eos)
{
    int len = (int)ids->len + (eos ? 1 : 0);
    double norm = normalised(score, len, penalty);
    int at = g->n_fin;
    if (g->n_fin == beams) {
        at = 0;
        for (int i = 1; i < beams; i++)
            if (g->fin[i].norm < g->fin[at].norm)
                at = i;
        if (!(norm > g->fin[at].norm))
            return LLM_OK;
    } else {
        g->n_fin++;
        memset(&g->fin[at].ids, 0, sizeof g->fin[at].ids);
    }
    done_hyp *d = &g->fin[at];
    d->norm = norm;
    d->score = score;
    d->eos = eos;
    d->ids.len = 0;
    int rc = llm_ids_reserve(&d->ids, ids->len + 1);
    if (rc)
        return rc;
    if (ids->len)   /* data may be NULL when empty */
        memcpy(d->ids.data, ids->data, ids->len * sizeof *ids->data);
    d->ids.len = ids->len;
    return LLM_OK;
}

/* The k best tokens of logits (V) by value, ties to the lower id, with their
 * log-probabilities, into tok/lp (k <= V). */
static void top_k(const float *logits, int V, int k, int32_t *tok, float *lp)
{
    double mx = -INFINITY, sum = 0;
    for (int v = 0; v < V; v++)
        mx = logits[v] > mx ? logits[v] : mx;
    for (int v = 0; v < V; v++)
        sum += exp((double)logits[v] - mx);
    double lse = mx + log(sum);
    int n = 0;
    for (int v = 0; v < V; v++) {
        float x = logits[v];
        if (n == k && !(x > logits[tok[k - 1]]))
            continue;
        int i = n < k ? n++ : k - 1;
        while (i > 0 && x > logits[tok[i - 1]]) {
            tok[i] = tok[i - 1];
            i--;
        }
        tok[i] = v;
    }
    for (int i = 0; i < k; i++)
        lp[i] = (float)((double)logits[tok[i]] - lse);
}

/* One step of group g from the logits of its live hypotheses (row r of
 * `logits` for live hypothesis r): new live hypotheses, finished ones,
 * and the cache copies. */
static int advance(llm_session *s, group *g, const float *logits, int V, int eos,
                   const llm_beam_params *p, int base, offer *offers, int32_t *tok, float *lp)
{
    int beams = p->beams, k = 2 * beams < V ? 2 * beams : V, n = 0, rc = LLM_OK;
    for (int h = 0; h < g->n_live; h++) {
        top_k(logits + (size_t)h * V, V, k, tok, lp);
        for (int i = 0; i < k; i++)
            offers[n++] = (offer){ g->live[h].score + lp[i], h, tok[i], lp[i] };
    }
    qsort(offers, (size_t)n, sizeof *offers, cmp_offer);
    g->steps++;
    /* The next live set, as (offer) indices, in rank order. */
    int next[256], *nx = beams <= 256 ? next : malloc((size_t)beams * sizeof *nx);
    if (!nx)
        return llm_fail(LLM_ERR_NOMEM, "out of memory");
    int nn = 0;
    for (int i = 0; i < n && nn < beams && !rc; i++) {
        if (offers[i].tok == eos) {
            /* As Hugging Face: EOS offers ranked beyond `beams` are ignored. */
            if (i < beams)
                rc = finish(g, beams, p->length_penalty, offers[i].score,
                            &g->live[offers[i].from].ids, 1);
            continue;
        }
        nx[nn++] = i;
    }
    if (rc)
        goto out;
    /* Done? Every hypothesis has max_tokens now, or nothing live can still
     * beat the worst finished one. */
    if (g->steps >= p->max_tokens || nn == 0) {
        for (int i = 0; i < nn && !rc; i++) {
            const offer *o = &offers[nx[i]];
            llm_ids tmp = g->live[o->from].ids, with = { 0 };   /* tmp + o->tok */
            rc = llm_ids_reserve(&with, tmp.len + 1);
            if (!rc) {
                if (tmp.len)
                    memcpy(with.data, tmp.data, tmp.len * sizeof *tmp.data);
                with.len = tmp.len;
                with.data[with.len++] = o->tok;
                rc = finish(g, beams, p->length_penalty, o->score, &with, 0);
            }
            llm_ids_free(&with);
        }
        g->done = 1;
        goto out;
    }
    if (g->n_fin == beams) {
        double worst = INFINITY;
        for (int i = 0; i < beams; i++)
            worst = g->fin[i].norm < worst ? g->fin[i].norm : worst;
        if (worst >= normalised(offers[nx[0]].score, g->steps, p->length_penalty)) {
            g->done = 1;
            goto out;
        }
    }
    /* Build the new live set: the first child of each parent keeps its
     * sequence; the other children take the sequences left free. */
    {
        hyp nl[256], *nh = beams <= 256 ? nl : malloc((size_t)beams * sizeof *nh);
        unsigned char used[256], *u = beams <= 256 ? used : malloc((size_t)beams);
        int kept[256], *kp = beams <= 256 ? kept : malloc((size_t)beams * sizeof *kp);
        if (!nh || !u || !kp) {
            if (nh != nl) free(nh);
            if (u != used) free(u);
            if (kp != kept) free(kp);
            rc = llm_fail(LLM_ERR_NOMEM, "out of memory");
            goto out;
        }
        memset(u, 0, (size_t)beams);
        for (int h = 0; h < g->n_live; h++)
            kp[h] = 0;
        for (int i = 0; i < nn; i++) {
            const offer *o = &offers[nx[i]];
            memset(&nh[i].ids, 0, sizeof nh[i].ids);
            nh[i].score = o->score;
            nh[i].last = o->tok;
            nh[i].seq = -1;
            if (!kp[o->from]) {
                kp[o->from] = 1;
                nh[i].seq = g->live[o->from].seq;
                u[nh[i].seq - base] = 1;
            }
        }
        int free_seq = 0;
        for (int i = 0; i < nn && !rc; i++) {
            const offer *o = &offers[nx[i]];
            if (nh[i].seq < 0) {
                while (u[free_seq])
                    free_seq++;
                u[free_seq] = 1;
                nh[i].seq = base + free_seq;
                rc = llm_session_copy(s, nh[i].seq, g->live[o->from].seq);
            }
            const llm_ids *pi = &g->live[o->from].ids;
            if (!rc)
                rc = llm_ids_reserve(&nh[i].ids, pi->len + 1);
            if (!rc) {
                if (pi->len)
                    memcpy(nh[i].ids.data, pi->data, pi->len * sizeof *pi->data);
                nh[i].ids.len = pi->len;
                nh[i].ids.data[nh[i].ids.len++] = o->tok;
            }
        }
        for (int h = 0; h < g->n_live; h++)
            llm_ids_free(&g->live[h].ids);
        for (int i = 0; i < nn; i++)
            g->live[i] = nh[i];
        g->n_live = nn;
        if (rc) {
            for (int i = 0; i < nn; i++)
                llm_ids_free(&g->live[i].ids);
            g->n_live = 0;
        }
        if (nh != nl) free(nh);
        if (u != used) free(u);
        if (kp != kept) free(kp);
    }
out:
    if (nx != next)
        free(nx);
    return rc;
}

int llm_beam_search(llm_session *s, const int32_t *const *prompts, const size_t *lens, int n,
                    int eos, const llm_beam_params *p, llm_ids *out, double *score,
                    int *finished)
{
    if (n < 1 || p->beams < 1 || p->max_tokens < 1 || !isfinite(p->length_penalty))
        return llm_fail(LLM_ERR_INVALID, "beam search: %d prompts, %d beams, %d tokens, "
                        "length penalty %g", n, p->beams, p->max_tokens, p->length_penalty);
    int beams = p->beams;
    if ((size_t)n * (size_t)beams > (size_t)llm_session_seqs(s))
        return llm_fail(LLM_ERR_INVALID, "%d prompts x %d beams need %d sequences; the "
                        "session has %d", n, beams, n * beams, llm_session_seqs(s));
    const llm_model *m = llm_session_model(s);
    int V = llm_model_config(m)->vocab_size, ctx = llm_model_config(m)->context;
    for (int i = 0; i < n; i++)
        if (lens[i] < 1 || lens[i] + (size_t)p->max_tokens > (size_t)ctx)
            return llm_fail(LLM_ERR_RANGE, "a prompt of %zu tokens and %d more do not fit "
                            "the context (%d)", lens[i], p->max_tokens, ctx);
    size_t rows = (size_t)n * beams;
    int k = 2 * beams < V ? 2 * beams : V;
    group *g = calloc((size_t)n, sizeof *g);
    float *logits = malloc(rows * V * sizeof *logits);
    offer *offers = malloc((size_t)beams * k * sizeof *offers);
    int32_t *tok = malloc((size_t)k * sizeof *tok), *toks = malloc(rows * sizeof *toks);
    float *lp = malloc((size_t)k * sizeof *lp);
    int *seqs = malloc(rows * sizeof *seqs), *who = malloc(rows * sizeof *who);
    int *plens = malloc((size_t)n * sizeof *plens);
    int rc = LLM_OK;
    if (!g || !logits || !offers || !tok || !toks || !lp || !seqs || !who || !plens)
        rc = llm_fail(LLM_ERR_NOMEM, "out of memory for %d x %d beams", n, beams);
    for (int i = 0; i < n && !rc; i++) {
        g[i].live = calloc((size_t)beams, sizeof *g[i].live);
        g[i].fin = calloc((size_t)beams, sizeof *g[i].fin);
        if (!g[i].live || !g[i].fin) {
            rc = llm_fail(LLM_ERR_NOMEM, "out of memory");
            break;
        }
        int base = i * beams;
        for (int b = 0; b < beams && !rc; b++)
            rc = llm_session_clear(s, base + b);
        g[i].n_live = 1;
        g[i].live[0].seq = seqs[i] = base;
        plens[i] = (int)lens[i];
    }
    /* Every prompt in one prefill; prompt i's logits in row i. */
    if (!rc)
        rc = llm_session_prefill_batch(s, seqs, prompts, plens, n, logits);
    for (int i = 0; i < n && !rc; i++)
        rc = advance(s, &g[i], logits + (size_t)i * V, V, eos, p, i * beams, offers, tok, lp);
    for (;;) {
        int nr = 0;
        for (int i = 0; i < n && !rc; i++)
            for (int h = 0; !g[i].done && h < g[i].n_live; h++) {
                seqs[nr] = g[i].live[h].seq;
                toks[nr] = g[i].live[h].last;
                who[nr++] = i;
            }
        if (rc || nr == 0)
            break;
        rc = llm_session_step(s, seqs, toks, nr, logits);
        /* The rows of a group are consecutive, in live order. */
        for (int r = 0; r < nr && !rc;) {
            int i = who[r];
            rc = advance(s, &g[i], logits + (size_t)r * V, V, eos, p, i * beams, offers, tok,
                         lp);
            while (r < nr && who[r] == i)
                r++;
        }
    }
    for (int i = 0; i < n && !rc; i++) {
        int best = 0;
        for (int f = 1; f < g[i].n_fin; f++)
            if (g[i].fin[f].norm > g[i].fin[best].norm)
                best = f;
        const done_hyp *d = &g[i].fin[best];
        for (size_t j = 0; j < d->ids.len && !rc; j++)
            rc = llm_ids_push(&out[i], d->ids.data[j]);
        if (score)
            score[i] = d->norm;
        if (finished)
            finished[i] = d->eos;
    }
    for (int i = 0; g && i < n; i++) {
        for (int h = 0; g[i].live && h < g[i].n_live; h++)
            llm_ids_free(&g[i].live[h].ids);
        for (int f = 0; g[i].fin && f < g[i].n_fin; f++)
            llm_ids_free(&g[i].fin[f].ids);
        free(g[i].live);
        free(g[i].fin);
    }
    free(g);
    free(logits);
    free(offers);
    free(tok);
    free(toks);
    free(lp);
    free(seqs);
    free(who);
    free(plens);
    return rc;
}
