/* test_pairs.c: input -> output pairs and beam search.
 *  - pairs lines: TSV with escapes, JSON Lines, and the errors;
 *  - a packed row's tokens, targets and starts, exactly;
 *  - packing: examples packed several to a row give the loss and the
 *    gradient of every weight that the examples give one by one (each in
 *    a row of its own, weighted by its share of the counted tokens);
 *  - beam search: with beams enough to hold every sequence it is
 *    exhaustive, so it must find the best of all sequences enumerated by
 *    brute force; one beam is greedy decoding; several prompts searched
 *    together give what each gives alone. */
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

static void test_parse(void)
{
    llm_buf in = { 0 }, out = { 0 };
    static const struct { const char *line, *in, *out; } ok[] = {
        { "a b\tc d", "a b", "c d" },
        { "x\\ty\\\\z\\n\tq\\r\r", "x\ty\\z\n", "q\r" },
        { "\t", "", "" },
        { "back\\slash\tok", "back\\slash", "ok" },
        { "{\"input\": \"été\\t\", \"output\": \"summer\", \"id\": 3}", "été\t", "summer" },
        { "{not json\tyes", "{not json", "yes" },
    };
    for (size_t i = 0; i < sizeof ok / sizeof ok[0]; i++) {
        int rc = llm_pairs_parse(ok[i].line, strlen(ok[i].line), &in, &out);
        if (rc || strcmp(in.data, ok[i].in) || strcmp(out.data, ok[i].out))
            FAIL("parse '%s': rc %d, in '%s' out '%s'", ok[i].line, rc, in.data, out.data);
    }
    static const struct { const char *line; int rc; const char *why; } bad[] = {
        { "no tab here", LLM_ERR_FORMAT, "no tab" },
        { "a\tb\tc", LLM_ERR_FORMAT, "more than one tab" },
        { "{\"input\": \"x\"}", LLM_ERR_FORMAT, "\"output\"" },
        { "{\"input\": 1, \"output\": \"y\"}", LLM_ERR_FORMAT, "\"input\"" },
        { "a\xff\tb", LLM_ERR_UTF8, "input" },
        { "a\tb\xc3", LLM_ERR_UTF8, "output" },
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        int rc = llm_pairs_parse(bad[i].line, strlen(bad[i].line), &in, &out);
        if (rc != bad[i].rc || !strstr(llm_errmsg(), bad[i].why))
            FAIL("parse '%s': rc %d (want %d), message '%s'", bad[i].line, rc, bad[i].rc,
                 llm_errmsg());
    }
    llm_buf_free(&in);
    llm_buf_free(&out);
}

/* Examples of 3 to 9 tokens, prompt 1 to n - 1, ids in [1, V). */
static llm_pairs *make_pairs(int count, int V, uint64_t seed)
{
    llm_pairs *d;
    CHECK_RC(llm_pairs_new(&d));
    llm_rng r;
    llm_rng_seed(&r, seed);
    for (int i = 0; i < count; i++) {
        int32_t ids[16];
        int n = 3 + (int)llm_rng_below(&r, 7), np = 1 + (int)llm_rng_below(&r, (uint64_t)n - 1);
        for (int j = 0; j < n; j++)
            ids[j] = 1 + (int32_t)llm_rng_below(&r, (uint64_t)V - 1);
        CHECK_RC(llm_pairs_add(d, ids, (size_t)n, (size_t)np));
    }
    return d;
}

static void test_rows(void)
{
    llm_pairs *d;
    CHECK_RC(llm_pairs_new(&d));
    static const int32_t a[] = { 5, 6, 7, 8 }, b[] = { 9, 10, 11 }, c[] = { 1, 2, 3, 4, 5, 6, 7 };
    CHECK_RC(llm_pairs_add(d, a, 4, 2));    /* loss on 7, 8 */
    CHECK_RC(llm_pairs_add(d, b, 3, 1));    /* loss on 10, 11 */
    CHECK_RC(llm_pairs_add(d, c, 7, 3));    /* loss on 4 .. 7 */
    if (llm_pairs_add(d, a, 4, 4) != LLM_ERR_INVALID || llm_pairs_add(d, a, 4, 0) != LLM_ERR_INVALID)
        FAIL("an example with no output or no prompt was accepted");
    size_t dropped, cut;
    CHECK_RC(llm_pairs_pack(d, 8, 0, 0, &dropped, &cut));
    int32_t tok[8], tgt[8], st[8];
    static const int32_t want_tok[] = { 5, 6, 7, 8, 9, 10, 11, 0 };
    static const int32_t want_tgt[] = { -1, 7, 8, -1, 10, 11, -1, -1 };
    static const int32_t want_st[] = { 0, 0, 0, 0, 4, 4, 4, 7 };
    size_t used = llm_pairs_rows(d) == 2 ? llm_pairs_row(d, 0, tok, tgt, st) : 0;
    if (dropped != 0 || cut != 0 || used != 7 || memcmp(tok, want_tok, sizeof tok) ||
        memcmp(tgt, want_tgt, sizeof tgt) || memcmp(st, want_st, sizeof st))
        FAIL("row 0 of 8: dropped %zu, cut %zu, rows %zu, used %zu", dropped, cut,
             llm_pairs_rows(d), used);
    /* Rows of 6: c loses its first prompt token, as llm-generate would
     * truncate it, and keeps its whole output. */
    CHECK_RC(llm_pairs_pack(d, 6, 0, 0, &dropped, &cut));
    static const int32_t want_tok6[] = { 2, 3, 4, 5, 6, 7 };
    static const int32_t want_tgt6[] = { -1, 4, 5, 6, 7, -1 };
    static const int32_t want_st6[] = { 0, 0, 0, 0, 0, 0 };
    used = llm_pairs_rows(d) == 3 ? llm_pairs_row(d, 2, tok, tgt, st) : 0;
    if (dropped != 0 || cut != 1 || used != 6 || memcmp(tok, want_tok6, sizeof want_tok6) ||
        memcmp(tgt, want_tgt6, sizeof want_tgt6) || memcmp(st, want_st6, sizeof want_st6))
        FAIL("rows of 6: dropped %zu (want 0), cut %zu (want 1), rows %zu (want 3), used %zu",
             dropped, cut, llm_pairs_rows(d), used);
    /* Rows of 4: c's output and EOS alone fill more than a row: left out. */
    CHECK_RC(llm_pairs_pack(d, 4, 0, 0, &dropped, &cut));
    if (dropped != 1 || cut != 0 || llm_pairs_rows(d) != 2)
        FAIL("rows of 4: dropped %zu (want 1), cut %zu (want 0), rows %zu (want 2)", dropped,
             cut, llm_pairs_rows(d));
    /* Rows of 5: the output (4 tokens) and one prompt token just fit. */
    CHECK_RC(llm_pairs_pack(d, 5, 0, 0, &dropped, &cut));
    used = llm_pairs_rows(d) == 3 ? llm_pairs_row(d, 2, tok, tgt, st) : 0;
    if (dropped != 0 || cut != 1 || used != 5 || tok[0] != 3 || tgt[0] != 4 || tgt[3] != 7 ||
        tgt[4] != -1)
        FAIL("rows of 5: dropped %zu, cut %zu, rows %zu, used %zu, first %d -> %d", dropped,
             cut, llm_pairs_rows(d), used, tok[0], tgt[0]);
    llm_pairs_free(d);
}

static void test_packing(const char *device)
{
    llm_config c = { 64, 32, 2, 4, 2, 48, 32, 10000, 1e-5, 1 };
    llm_model *m;
    CHECK_RC(llm_model_create(&c, 7, device, &m));
    llm_pairs *d = make_pairs(12, c.vocab_size, 3);
    int T = 24;
    CHECK_RC(llm_pairs_pack(d, T, 1, 11, NULL, NULL));
    int B = (int)llm_pairs_rows(d);
    if (B >= 12 || B < 2)
        FAIL("%s: 12 examples made %d rows of %d", device, B, T);
    int32_t *tok = malloc((size_t)B * T * sizeof *tok), *tgt = malloc((size_t)B * T * sizeof *tgt);
    int32_t *st = malloc((size_t)B * T * sizeof *st);
    size_t total = 0, count = 0;
    for (int r = 0; r < B; r++)
        llm_pairs_row(d, (size_t)r, tok + (size_t)r * T, tgt + (size_t)r * T, st + (size_t)r * T);
    for (int i = 0; i < B * T; i++)
        count += tgt[i] >= 0;
    float loss;
    CHECK_RC(llm_model_zero_grad(m));
    CHECK_RC(llm_model_forward_packed(m, tok, tgt, st, B, T, &loss));
    CHECK_RC(llm_model_backward(m));
    size_t np = llm_model_param_count(m), ng = 0;
    for (size_t i = 0; i < np; i++) {
        llm_param p;
        CHECK_RC(llm_model_param_at(m, i, &p));
        ng += p.numel;
    }
    float *packed = malloc(ng * sizeof *packed);
    double *alone = calloc(ng, sizeof *alone);
    for (size_t i = 0, o = 0; i < np; i++) {
        llm_param p;
        CHECK_RC(llm_model_param_at(m, i, &p));
        CHECK_RC(llm_model_param_read(m, i, LLM_PARAM_GRAD, packed + o));
        o += p.numel;
    }
    /* One by one: each example alone in a row of its length. */
    double sum = 0;
    for (size_t e = 0; e < llm_pairs_count(d); e++) {
        const int32_t *ids;
        size_t n, npr;
        llm_pairs_example(d, e, &ids, &n, &npr);
        int32_t t2[16];
        size_t cnt = 0;
        for (size_t j = 0; j < n; j++) {
            t2[j] = j + 1 >= npr && j + 1 < n ? ids[j + 1] : -1;
            cnt += t2[j] >= 0;
        }
        float l;
        CHECK_RC(llm_model_zero_grad(m));
        CHECK_RC(llm_model_forward(m, ids, t2, 1, (int)n, &l));
        CHECK_RC(llm_model_backward(m));
        sum += (double)l * (double)cnt;
        total += cnt;
        for (size_t i = 0, o = 0; i < np; i++) {
            llm_param p;
            CHECK_RC(llm_model_param_at(m, i, &p));
            float *g = param_get(m, i, LLM_PARAM_GRAD);
            for (size_t j = 0; j < p.numel; j++)
                alone[o + j] += (double)g[j] * (double)cnt;
            free(g);
            o += p.numel;
        }
    }
    if (total != count)
        FAIL("%s: %zu counted targets packed, %zu one by one", device, count, total);
    double want = sum / (double)total;
    if (!(fabs(loss - want) <= 1e-5 + 1e-5 * fabs(want)))
        FAIL("%s: packed loss %.9g, one by one %.9g", device, loss, want);
    size_t bad = 0;
    double worst = 0;
    for (size_t j = 0; j < ng; j++) {
        double w = alone[j] / (double)total, e = fabs(packed[j] - w);
        worst = e > worst ? e : worst;
        bad += !(e <= 1e-6 + 1e-4 * fabs(w));
    }
    if (bad)
        FAIL("%s: %zu of %zu gradients differ packed vs one by one (worst %.3g)", device, bad,
             ng, worst);
    printf("%s: %zu examples in %d rows of %d: loss %.6f vs %.6f, worst gradient error %.2g\n",
           device, llm_pairs_count(d), B, T, loss, want, worst);
    free(tok); free(tgt); free(st); free(packed); free(alone);
    llm_pairs_free(d);
    llm_model_free(m);
}

/* Log-probabilities of every next token after prefix[0..n) (full recompute). */
static void logprobs(llm_model *m, const int32_t *prefix, int n, double *lp)
{
    CHECK_RC(llm_model_forward(m, prefix, NULL, 1, n, NULL));
    const float *l = llm_model_logits(m) + (size_t)(n - 1) * llm_model_config(m)->vocab_size;
    int V = llm_model_config(m)->vocab_size;
    double mx = -INFINITY, s = 0;
    for (int v = 0; v < V; v++)
        mx = l[v] > mx ? l[v] : mx;
    for (int v = 0; v < V; v++)
        s += exp(l[v] - mx);
    for (int v = 0; v < V; v++)
        lp[v] = l[v] - mx - log(s);
}

/* The best of all continuations of at most `depth` tokens (ending at EOS,
 * or at depth without it) by sum of log-probabilities. */
static void brute(llm_model *m, int32_t *seq, int n, int gen, int depth, int eos, double score,
                  double *best, int32_t *best_ids, int *best_len, int *best_eos, int32_t *cur)
{
    int V = llm_model_config(m)->vocab_size;
    double lp[16];
    logprobs(m, seq, n, lp);
    for (int v = 0; v < V; v++) {
        double s = score + lp[v];
        if (v == eos || gen + 1 == depth) {
            if (s > *best) {
                *best = s;
                memcpy(best_ids, cur, (size_t)gen * sizeof *cur);
                if (v != eos)
                    best_ids[gen] = v;
                *best_len = gen + (v != eos);
                *best_eos = v == eos;
            }
            continue;
        }
        seq[n] = v;
        cur[gen] = v;
        brute(m, seq, n + 1, gen + 1, depth, eos, s, best, best_ids, best_len, best_eos, cur);
    }
}

static void test_beam(void)
{
    llm_config c = { 5, 16, 2, 2, 1, 32, 16, 10000, 1e-5, 0 };
    llm_model *m;
    CHECK_RC(llm_model_create(&c, 5, "cpu", &m));
    /* Peaky weights, so that log-probabilities differ widely. */
    for (size_t i = 0; i < llm_model_param_count(m); i++) {
        llm_param p;
        CHECK_RC(llm_model_param_at(m, i, &p));
        if (p.ndim == 2) {
            float *d = param_get(m, i, LLM_PARAM_DATA);
            for (size_t j = 0; j < p.numel; j++)
                d[j] *= 40.0f;
            param_set(m, i, LLM_PARAM_DATA, d);
            free(d);
        }
    }
    int eos = 4, depth = 4, V = c.vocab_size;
    llm_session *s;
    CHECK_RC(llm_session_new(m, 3 * 256, &s));
    static const int32_t p0[] = { 1, 2 }, p1[] = { 3 }, p2[] = { 2, 0, 1 };
    const int32_t *prompts[] = { p0, p1, p2 };
    size_t lens[] = { 2, 1, 3 };
    llm_ids together[3] = { { 0 } }, alone = { 0 };
    double sc[3];
    int fin[3];
    /* Exhaustive: 4^3 x 5 + ... sequences fit 256 beams. */
    llm_beam_params bp = { 256, 0.0, depth };
    CHECK_RC(llm_beam_search(s, prompts, lens, 3, eos, &bp, together, sc, fin));
    for (int i = 0; i < 3; i++) {
        int32_t seq[16], cur[16], best_ids[16];
        memcpy(seq, prompts[i], lens[i] * sizeof *seq);
        double best = -INFINITY;
        int best_len = 0, best_eos = 0;
        brute(m, seq, (int)lens[i], 0, depth, eos, 0.0, &best, best_ids, &best_len, &best_eos,
              cur);
        if ((int)together[i].len != best_len || fin[i] != best_eos ||
            memcmp(together[i].data, best_ids, (size_t)best_len * sizeof *best_ids) ||
            !(fabs(sc[i] - best) <= 1e-4 + 1e-4 * fabs(best)))
            FAIL("prompt %d: beam search found %zu tokens (eos %d, score %.6f), brute force "
                 "%d (eos %d, score %.6f)", i, together[i].len, fin[i], sc[i], best_len,
                 best_eos, best);
    }
    /* Narrower beams: several prompts together give what each gives alone,
     * and one beam is greedy. */
    for (int beams = 1; beams <= 3; beams++) {
        llm_beam_params q = { beams, 1.0, 8 };
        for (int i = 0; i < 3; i++)
            together[i].len = 0;
        CHECK_RC(llm_beam_search(s, prompts, lens, 3, eos, &q, together, NULL, NULL));
        for (int i = 0; i < 3; i++) {
            alone.len = 0;
            CHECK_RC(llm_beam_search(s, &prompts[i], &lens[i], 1, eos, &q, &alone, NULL,
                                     NULL));
            if (alone.len != together[i].len ||
                memcmp(alone.data, together[i].data, alone.len * sizeof *alone.data))
                FAIL("beams %d, prompt %d: alone and together differ", beams, i);
            if (beams == 1) {
                int32_t seq[32];
                size_t n = lens[i], k = 0;
                memcpy(seq, prompts[i], n * sizeof *seq);
                int ok = 1;
                for (; k < 8; k++) {
                    double lp[16];
                    logprobs(m, seq, (int)n, lp);
                    int arg = 0;
                    for (int v = 1; v < V; v++)
                        arg = lp[v] > lp[arg] ? v : arg;
                    if (arg == eos)
                        break;
                    if (k >= together[i].len || together[i].data[k] != arg)
                        ok = 0;
                    seq[n++] = arg;
                }
                if (!ok || k != together[i].len)
                    FAIL("prompt %d: one beam is not greedy decoding", i);
            }
        }
    }
    llm_beam_params badp = { 2, 1.0, 20 };
    if (llm_beam_search(s, prompts, lens, 1, eos, &badp, &alone, NULL, NULL) != LLM_ERR_RANGE)
        FAIL("a prompt and max_tokens past the context were accepted");
    for (int i = 0; i < 3; i++)
        llm_ids_free(&together[i]);
    llm_ids_free(&alone);
    llm_session_free(s);
    llm_model_free(m);
}

int main(void)
{
    llm_set_threads(2);
    test_parse();
    test_rows();
    test_packing("cpu");
    test_packing("ref");
    test_beam();
    if (failures) {
        printf("%d failure(s)\n", failures);
        return 1;
    }
    printf("all pairs checks passed\n");
    return 0;
}
