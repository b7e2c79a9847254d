/* test_infer.c: the key/value-cache session against a full recompute of
 * each sequence with llm_model_forward(), for tied and untied, grouped and
 * plain multi-head configs, on the fast and the reference kernels: prefill
 * (whole and in chunks), then steps over several sequences of different
 * lengths together. Also: a step's logits do not depend on which other
 * sequences share it nor on the thread count, and bad calls are refused.
 * Half-precision decoding: the conversions against the F16C instructions
 * and known values, and f16 steps against fp32 steps over weights rounded
 * to half (the same bits). A batch of steps and prompts together has the
 * bits of the steps and the prompts apart. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "half.h"
#include "llm.h"
#include "testparam.h"
#if defined(__F16C__)
#include <immintrin.h>
#endif

static int failures;

#define FAIL(...) do { failures++; printf("FAIL "); printf(__VA_ARGS__); printf("\n"); } while (0)
#define CHECK_RC(call) do { int rc_ = (call); if (rc_ != LLM_OK) { \
    printf("FAIL %s:%d: %s: %s\n", __FILE__, __LINE__, #call, llm_errmsg()); exit(1); } } while (0)

/* Stated tolerance: |got - ref| <= ATOL + RTOL * |ref|. */
#define ATOL 1e-4
#define RTOL 1e-4

static double worst_seen;

static void compare(const char *what, int seq, int pos, const float *got, const float *ref,
                    int V)
{
    for (int i = 0; i < V; i++) {
        double d = fabs((double)got[i] - ref[i]);
        if (d > worst_seen)
            worst_seen = d;
        if (!(d <= ATOL + RTOL * fabs(ref[i]))) {
            FAIL("%s: seq %d pos %d logit %d: got %.9g want %.9g", what, seq, pos, i,
                 got[i], ref[i]);
            return;
        }
    }
}

/* Weights of std ~0.3, so that attention is far from uniform and every
 * logit matters. */
static llm_model *make_model(const llm_config *c, const char *device, uint64_t seed)
{
    llm_model *m;
    CHECK_RC(llm_model_create(c, seed, device, &m));
    llm_rng r;
    llm_rng_seed(&r, seed + 100);
    for (size_t i = 0; i < llm_model_param_count(m); i++) {
        llm_param p;
        CHECK_RC(llm_model_param_at(m, i, &p));
        float *d = param_get(m, i, LLM_PARAM_DATA);
        for (size_t j = 0; j < p.numel; j++)
            d[j] = p.ndim == 2 ? d[j] * 15.0f : (float)(1.0 + 0.2 * llm_rng_normal(&r));
        param_set(m, i, LLM_PARAM_DATA, d);
        free(d);
    }
    return m;
}

/* Logits of the full recompute of tokens[0..t] at position t. */
static void recompute(llm_model *m, const int32_t *tokens, int t, float *out)
{
    int V = llm_model_config(m)->vocab_size;
    CHECK_RC(llm_model_forward(m, tokens, NULL, 1, t + 1, NULL));
    memcpy(out, llm_model_logits(m) + (size_t)t * V, (size_t)V * sizeof *out);
}

#define NSEQ 4

static void test_config(const char *name, const llm_config *c, const char *device)
{
    llm_model *m = make_model(c, device, 42);
    int V = c->vocab_size, T = c->context;
    /* Sequence lengths differ, prompts differ, one prompt is a single token. */
    int total[NSEQ] = { T, T - 3, 5, T - 1 };
    int prompt[NSEQ] = { 1, 4, 5, 7 };
    int32_t tok[NSEQ][64];
    llm_rng r;
    llm_rng_seed(&r, 7);
    for (int j = 0; j < NSEQ; j++)
        for (int t = 0; t < total[j]; t++)
            tok[j][t] = (int32_t)llm_rng_below(&r, (uint64_t)V);
    float *got = malloc((size_t)NSEQ * V * sizeof *got), *ref = malloc((size_t)V * sizeof *ref);
    llm_session *s;
    CHECK_RC(llm_session_new(m, NSEQ, &s));
    char what[96];
    snprintf(what, sizeof what, "%s/%s prefill", name, device);
    for (int j = 0; j < NSEQ; j++) {
        if (j == 3) {   /* in two chunks: the second continues at position 3 */
            CHECK_RC(llm_session_prefill(s, j, tok[j], 3, NULL));
            CHECK_RC(llm_session_prefill(s, j, tok[j] + 3, prompt[j] - 3, got));
        } else {
            CHECK_RC(llm_session_prefill(s, j, tok[j], prompt[j], got));
        }
        if (llm_session_len(s, j) != prompt[j])
            FAIL("%s: seq %d holds %d, want %d", what, j, llm_session_len(s, j), prompt[j]);
        recompute(m, tok[j], prompt[j] - 1, ref);
        compare(what, j, prompt[j] - 1, got, ref, V);
    }
    snprintf(what, sizeof what, "%s/%s step", name, device);
    for (;;) {
        int seqs[NSEQ], n = 0;
        int32_t next[NSEQ];
        /* The active sequences, in a rotating order. */
        for (int i = 0; i < NSEQ; i++) {
            int j = (i + llm_session_len(s, 0)) % NSEQ;
            int len = llm_session_len(s, j);
            if (len < total[j]) {
                seqs[n] = j;
                next[n++] = tok[j][len];
            }
        }
        if (!n)
            break;
        CHECK_RC(llm_session_step(s, seqs, next, n, got));
        for (int i = 0; i < n; i++) {
            int j = seqs[i], pos = llm_session_len(s, j) - 1;
            recompute(m, tok[j], pos, ref);
            compare(what, j, pos, got + (size_t)i * V, ref, V);
        }
    }
    /* A cleared sequence starts again at position 0. */
    CHECK_RC(llm_session_clear(s, 2));
    CHECK_RC(llm_session_prefill(s, 2, tok[1], 2, got));
    recompute(m, tok[1], 1, ref);
    compare(what, 2, 1, got, ref, V);
    llm_session_free(s);
    free(got);
    free(ref);
    llm_model_free(m);
}

/* The same sequence stepped alone, among others, and with 1 or 2 threads:
 * the same bits. */
static void test_batch_invariance(const llm_config *c)
{
    llm_model *m = make_model(c, "cpu", 3);
    int V = c->vocab_size;
    int32_t pr[8][3] = { { 1, 2, 3 }, { 4, 5, 6 }, { 7, 8, 9 }, { 1, 1, 1 },
                         { 2, 2, 2 }, { 3, 3, 3 }, { 4, 4, 4 }, { 5, 5, 5 } };
    float *alone = malloc((size_t)V * sizeof *alone);
    float *many = malloc((size_t)8 * V * sizeof *many);
    for (int threads = 1; threads <= 2; threads++) {
        /* Prefill (sgemm) is reproducible per thread count: always 2 here. */
        llm_set_threads(2);
        llm_session *a, *b;
        CHECK_RC(llm_session_new(m, 1, &a));
        CHECK_RC(llm_session_new(m, 8, &b));
        CHECK_RC(llm_session_prefill(a, 0, pr[5], 3, NULL));
        for (int j = 0; j < 8; j++)
            CHECK_RC(llm_session_prefill(b, j, pr[j], 3, NULL));
        int seqs[8] = { 7, 6, 5, 4, 3, 2, 1, 0 };
        int32_t next[8] = { 9, 8, 7, 6, 5, 4, 3, 2 };
        int zero = 0;
        llm_set_threads(threads);
        for (int step = 0; step < 4; step++) {
            CHECK_RC(llm_session_step(a, &zero, &next[2], 1, alone));
            CHECK_RC(llm_session_step(b, seqs, next, 8, many));
            if (memcmp(alone, many + (size_t)2 * V, (size_t)V * sizeof *alone) != 0)
                FAIL("step %d, %d thread(s): logits alone differ from the same sequence "
                     "among 8", step, threads);
            static float first[4][512];
            if (threads == 1)
                memcpy(first[step], alone, (size_t)V * sizeof *alone);
            else if (memcmp(first[step], alone, (size_t)V * sizeof *alone) != 0)
                FAIL("step %d: 1 and 2 threads give different step logits", step);
        }
        llm_session_free(a);
        llm_session_free(b);
    }
    llm_set_threads(2);
    free(alone);
    free(many);
    llm_model_free(m);
}

static void test_errors(const llm_config *c)
{
    llm_model *m = make_model(c, "cpu", 5);
    int V = c->vocab_size;
    float *lg = malloc((size_t)2 * V * sizeof *lg);
    llm_session *s;
    if (llm_session_new(m, 0, &s) != LLM_ERR_INVALID || s)
        FAIL("a session of 0 sequences was accepted");
    CHECK_RC(llm_session_new(m, 2, &s));
    int32_t t[64] = { 0 };
    t[1] = (int32_t)V;
    if (llm_session_prefill(s, 0, t, 2, lg) != LLM_ERR_RANGE || llm_session_len(s, 0) != 0)
        FAIL("token id V accepted, or the sequence changed");
    if (llm_session_prefill(s, 2, t, 1, lg) != LLM_ERR_RANGE)
        FAIL("sequence 2 of 2 accepted");
    if (llm_session_prefill(s, 0, t, 0, lg) != LLM_ERR_INVALID)
        FAIL("an empty prefill accepted");
    t[1] = 0;
    if (llm_session_prefill(s, 0, t, c->context + 1, lg) != LLM_ERR_RANGE)
        FAIL("a prefill longer than the context accepted");
    CHECK_RC(llm_session_prefill(s, 0, t, c->context, lg));
    int seqs[2] = { 0, 1 };
    if (llm_session_step(s, seqs, t, 2, lg) != LLM_ERR_RANGE || llm_session_len(s, 1) != 0)
        FAIL("a step past the context accepted, or another sequence changed");
    seqs[0] = 1;
    if (llm_session_step(s, seqs, t, 2, lg) != LLM_ERR_INVALID)
        FAIL("a sequence twice in one step accepted");
    if (llm_session_len(s, 5) != -1)
        FAIL("length of a sequence out of range");
    seqs[0] = 0;
    if (llm_session_step(s, seqs + 1, t, 1, NULL) != LLM_ERR_INVALID ||
        llm_session_len(s, 1) != 0)
        FAIL("a step without logits accepted, or its sequence changed");
    llm_session_free(s);
    llm_session_free(NULL);
    free(lg);
    llm_model_free(m);
}

/* The conversions: known values, round to nearest even at every kind of
 * boundary, and (with F16C) every half and many floats against the
 * hardware. */
static void test_half(void)
{
    static const struct { float f; uint16_t h; } known[] = {
        { 0.0f, 0x0000 }, { -0.0f, 0x8000 }, { 1.0f, 0x3c00 }, { -2.0f, 0xc000 },
        { 65504.0f, 0x7bff }, { 65519.0f, 0x7bff }, { 65520.0f, 0x7c00 },
        { 1e9f, 0x7c00 }, { -1e9f, 0xfc00 },
        { 0x1p-14f, 0x0400 }, { 0x1p-24f, 0x0001 }, { 0x1p-25f, 0x0000 },
        { 0x1.000002p-25f, 0x0001 }, { 0x3p-25f, 0x0002 },          /* 1.5 ulp: even */
        { 1.0f + 0x1p-11f, 0x3c00 }, { 1.0f + 0x3p-11f, 0x3c02 },   /* ties to even */
        { 0x1.00201p+0f, 0x3c01 }, { 0x1.ffep-15f, 0x0400 },
        { 0.333333343f, 0x3555 },
    };
    for (size_t i = 0; i < sizeof known / sizeof known[0]; i++) {
        uint16_t h = llm_float_to_half(known[i].f);
        if (h != known[i].h)
            FAIL("float_to_half(%a) = 0x%04x, want 0x%04x", (double)known[i].f, h,
                 known[i].h);
    }
    if (llm_half_to_float(0x0001) != 0x1p-24f || llm_half_to_float(0x3555) != 0x1.554p-2f ||
        llm_half_to_float(0xfbff) != -65504.0f || !isinf(llm_half_to_float(0x7c00)) ||
        !isnan(llm_half_to_float(0x7e01)))
        FAIL("half_to_float of known values");
    for (uint32_t h = 0; h < 0x10000; h++) {
        /* Every finite half survives the round trip. */
        if ((h & 0x7c00) != 0x7c00 && llm_float_to_half(llm_half_to_float((uint16_t)h)) != h) {
            FAIL("half 0x%04x does not survive float and back", h);
            break;
        }
    }
#if defined(__F16C__)
    for (uint32_t h = 0; h < 0x10000; h++) {
        float a = llm_half_to_float((uint16_t)h), b = _cvtsh_ss((unsigned short)h);
        if (memcmp(&a, &b, sizeof a) != 0) {
            FAIL("half_to_float(0x%04x) = %a, F16C %a", h, (double)a, (double)b);
            break;
        }
    }
    /* Every exponent, with mantissas near the rounding boundaries and
     * random ones, both signs, plus NaNs. */
    llm_rng r;
    llm_rng_seed(&r, 11);
    for (uint32_t e = 0; e < 256; e++)
        for (int k = 0; k < 4096; k++) {
            uint32_t m = k < 64 ? ((uint32_t)(k & 31) - 16u + 0x1000u * (uint32_t)(k >> 5)) & 0x7fffffu
                                : (uint32_t)llm_rng_u64(&r) & 0x7fffffu;
            uint32_t u = (uint32_t)(k & 1) << 31 | e << 23 | m;
            float f;
            memcpy(&f, &u, sizeof f);
            uint16_t a = llm_float_to_half(f);
            uint16_t b = (uint16_t)_cvtss_sh(f, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
            if (a != b) {
                FAIL("float_to_half(%a) (0x%08x) = 0x%04x, F16C 0x%04x", (double)f, u, a, b);
                return;
            }
        }
#endif
}

/* f16 steps on an untied model equal fp32 steps on a copy whose layer and
 * output weights are rounded to half (the embedding stays fp32 in both),
 * whatever the batch; and a weight beyond half's range is refused. */
static void test_decode_f16(const llm_config *c)
{
    int V = c->vocab_size;
    llm_model *h = make_model(c, "cpu", 9), *r = make_model(c, "cpu", 9);
    for (size_t i = 0; i < llm_model_param_count(r); i++) {
        llm_param p;
        CHECK_RC(llm_model_param_at(r, i, &p));
        if (p.ndim == 2 && strcmp(p.name, "tok_embeddings.weight") != 0) {
            float *d = param_get(r, i, LLM_PARAM_DATA);
            for (size_t j = 0; j < p.numel; j++)
                d[j] = llm_half_to_float(llm_float_to_half(d[j]));
            param_set(r, i, LLM_PARAM_DATA, d);
            free(d);
        }
    }
    CHECK_RC(llm_model_decode_f16(h));
    CHECK_RC(llm_model_decode_f16(h));   /* twice: nothing changes */
    float *lh = malloc((size_t)3 * V * sizeof *lh), *lr = malloc((size_t)3 * V * sizeof *lr);
    float *l1 = malloc((size_t)V * sizeof *l1);
    llm_session *sh, *sr, *s1;
    CHECK_RC(llm_session_new(h, 3, &sh));
    CHECK_RC(llm_session_new(r, 3, &sr));
    CHECK_RC(llm_session_new(h, 1, &s1));
    int seqs[3] = { 2, 0, 1 }, zero = 0;
    for (int step = 0; step < c->context; step++) {
        int32_t tok[3] = { (int32_t)(step * 7 % V), (int32_t)(step * 3 % V), (int32_t)(step % V) };
        CHECK_RC(llm_session_step(sh, seqs, tok, 3, lh));
        CHECK_RC(llm_session_step(sr, seqs, tok, 3, lr));
        CHECK_RC(llm_session_step(s1, &zero, &tok[1], 1, l1));
        if (memcmp(lh, lr, (size_t)3 * V * sizeof *lh) != 0)
            FAIL("step %d: f16 logits differ from fp32 over rounded weights", step);
        if (memcmp(l1, lh + V, (size_t)V * sizeof *l1) != 0)
            FAIL("step %d: f16 logits alone differ from the same sequence among 3", step);
    }
    llm_session_free(sh);
    llm_session_free(sr);
    llm_session_free(s1);
    /* A weight past 65504 (it would round to infinity) is refused. */
    size_t iw2 = param_index(r, "layers.0.feed_forward.w2.weight", NULL);
    float *w2 = param_get(r, iw2, LLM_PARAM_DATA);
    w2[3] = 70000.0f;
    param_set(r, iw2, LLM_PARAM_DATA, w2);
    if (llm_model_decode_f16(r) != LLM_ERR_RANGE || !strstr(llm_errmsg(), "w2[3]"))
        FAIL("a weight of 70000 was accepted for f16, or the message does not name it: %s",
             llm_errmsg());
    w2[3] = 65504.0f;
    param_set(r, iw2, LLM_PARAM_DATA, w2);
    free(w2);
    CHECK_RC(llm_model_decode_f16(r));
    free(lh);
    free(lr);
    free(l1);
    llm_model_free(h);
    llm_model_free(r);
}

/* int8 (q8) or bf16 copies (bf16: with a bf16 key/value cache): a prompt
 * prefilled gives the same bits as stepped token by token; a sequence
 * alone the same bits as among 3 and under 1 or 2 threads; a copied
 * sequence steps as its source; llm_model_forward() over the same int8 products agrees with
 * the session within the cache-vs-recompute tolerance (only attention's
 * kernels differ: sessions use attention_rows) widened by one step of an
 * input's quantization (a last-bit difference can move a value across a
 * rounding boundary); the logits stay near fp32's but are not fp32's;
 * backward is refused; the other precision is refused; q8: a non-finite
 * weight is named. */
static void test_lowp(const llm_config *c, int bf16)
{
    int V = c->vocab_size, T = 6;
    const char *name = bf16 ? "bf16" : "q8";
    int (*copies)(llm_model *) = bf16 ? llm_model_weights_bf16 : llm_model_quantize_q8;
    llm_model *m = make_model(c, "cpu", 11), *f = make_model(c, "cpu", 11);
    CHECK_RC(copies(m));
    CHECK_RC(copies(m));   /* twice: nothing changes */
    if ((bf16 ? llm_model_quantize_q8(m) : llm_model_weights_bf16(m)) != LLM_ERR_INVALID)
        FAIL("%s: copies in the other precision were not refused", name);
    int32_t tok[6] = { 3, 1, 4, 1, 5, 9 };
    float *pre = malloc((size_t)V * sizeof *pre), *st = malloc((size_t)T * V * sizeof *st);
    float *many = malloc((size_t)3 * V * sizeof *many), *lf = malloc((size_t)V * sizeof *lf);
    float *rec = malloc((size_t)T * V * sizeof *rec), *st1 = malloc((size_t)T * V * sizeof *st1);
    for (int threads = 1; threads <= 2; threads++) {
        llm_set_threads(threads);
        llm_session *a, *b, *d;
        CHECK_RC(llm_session_new(m, 1, &a));
        CHECK_RC(llm_session_new(m, 3, &b));
        CHECK_RC(llm_session_new(m, 1, &d));
        CHECK_RC(llm_session_prefill(a, 0, tok, T, pre));
        int zero = 0, seqs[3] = { 1, 2, 0 };
        for (int t = 0; t < T; t++) {
            int32_t three[3] = { (int32_t)((t * 5 + 2) % V), tok[t], (int32_t)(t % V) };
            CHECK_RC(llm_session_step(d, &zero, &tok[t], 1, st + (size_t)t * V));
            CHECK_RC(llm_session_step(b, seqs, three, 3, many));
            if (memcmp(many + V, st + (size_t)t * V, (size_t)V * sizeof *many) != 0)
                FAIL("%s step %d, %d thread(s): a sequence alone differs from the same "
                     "among 3", name, t, threads);
        }
        if (memcmp(pre, st + (size_t)(T - 1) * V, (size_t)V * sizeof *pre) != 0)
            FAIL("%s, %d thread(s): the prompt prefilled differs from it stepped", name,
                 threads);
        /* A copied sequence (beam search's llm_session_copy()) goes on as
         * its source: sequence 1's history into sequence 0, then one step
         * of each with the same token. */
        CHECK_RC(llm_session_copy(b, 0, 1));
        int two[2] = { 0, 1 };
        int32_t same[2] = { 7 % V, 7 % V };
        CHECK_RC(llm_session_step(b, two, same, 2, many));
        if (llm_session_len(b, 0) != T + 1 ||
            memcmp(many, many + V, (size_t)V * sizeof *many) != 0)
            FAIL("%s, %d thread(s): a copied sequence steps differently from its source",
                 name, threads);
        if (threads == 1)
            memcpy(st1, st, (size_t)T * V * sizeof *st);
        else if (memcmp(st1, st, (size_t)T * V * sizeof *st) != 0)
            FAIL("%s: 1 and 2 threads give different step logits", name);
        llm_session_free(a);
        llm_session_free(b);
        llm_session_free(d);
    }
    /* The evaluation forward, and fp32. */
    double worst_rec = 0, worst_f = 0, range = 0;
    for (int t = 0; t < T; t++) {
        recompute(m, tok, t, rec + (size_t)t * V);
        recompute(f, tok, t, lf);
        for (int i = 0; i < V; i++) {
            double g = st[(size_t)t * V + i], r = rec[(size_t)t * V + i];
            worst_rec = fmax(worst_rec, fabs(g - r) / (1e-3 + 1e-3 * fabs(r)));
            worst_f = fmax(worst_f, fabs(g - lf[i]));
            range = fmax(range, fabs(lf[i]));
        }
    }
    if (!(worst_rec <= 1))
        FAIL("%s: the evaluation forward differs from the session by %.3g x the "
             "tolerance 1e-3 + 1e-3 |ref|", name, worst_rec);
    /* These models are deliberately sharp (weights std 0.3), and int8
     * steps of 1/254 of a block's largest value moved their logits by up
     * to 10% of the largest; a broken product (a wrong scale or block)
     * moves them by their own size. (tests/sh/q8.sh bounds a trained
     * model's perplexity.) */
    if (!(worst_f <= 0.25 * range) || worst_f == 0)
        FAIL("%s logits differ from fp32 by %.3g (largest |logit| %.3g)", name, worst_f,
             range);
    printf("%s (V=%d C=%d): |%s - f32| <= %.3g of |logit| <= %.3g; evaluation forward "
           "within %.3g of its tolerance\n", name, V, c->dim, name, worst_f, range, worst_rec);
    CHECK_RC(llm_model_forward(m, tok, tok + 1, 1, T - 1, NULL));
    if (llm_model_backward(m) != LLM_ERR_INVALID)
        FAIL("%s: backward was not refused", name);
    /* A weight that is not finite is named (q8; bf16 keeps it, as fp32). */
    size_t iw = param_index(f, "layers.0.attention.wo.weight", NULL);
    float *w = param_get(f, iw, LLM_PARAM_DATA);
    w[c->dim + 1] = NAN;
    param_set(f, iw, LLM_PARAM_DATA, w);
    free(w);
    if (!bf16 && (llm_model_quantize_q8(f) != LLM_ERR_NUMERIC || !strstr(llm_errmsg(), "wo row 1")))
        FAIL("q8: a NaN weight was accepted, or not named: %s", llm_errmsg());
    llm_set_threads(2);
    free(pre); free(st); free(many); free(lf); free(rec); free(st1);
    llm_model_free(m);
    llm_model_free(f);
}

/* llm_session_prefill_batch() against one llm_session_prefill() per
 * prompt, in another order (`lowp`: 0 fp32, 1 bf16 copies, 2 int8): the
 * same logits, bit for bit, and the same caches (a step after it gives
 * the same bits). Prompts of 1 to the context, some over 32 tokens (fp32:
 * sgemm, each alone), one continuing a sequence; 72 prompts of 2,300
 * tokens in all, more than one forward's rows. Then refusals, which
 * change no length. */
static void test_prefill_batch(const llm_config *c, int lowp)
{
    enum { NP = 72 };
    const char *name = lowp == 2 ? "q8" : lowp ? "bf16" : "f32";
    llm_model *m = make_model(c, "cpu", 5);
    if (lowp)
        CHECK_RC(lowp == 2 ? llm_model_quantize_q8(m) : llm_model_weights_bf16(m));
    int V = c->vocab_size, T = c->context;
    int32_t *tok = malloc((size_t)NP * T * sizeof *tok);
    const int32_t *pt[NP];
    int seqs[NP], lens[NP], order[NP];
    llm_rng r;
    llm_rng_seed(&r, 9);
    for (int i = 0; i < NP; i++) {
        seqs[i] = (i * 29) % NP;   /* a permutation */
        lens[i] = i == 0 ? T - 3 : i == 1 ? 1 : i == 2 ? T : 20 + (i * 7) % 25;
        order[i] = NP - 1 - i;
        pt[i] = tok + (size_t)i * T;
        for (int t = 0; t < T; t++)
            tok[(size_t)i * T + t] = (int32_t)llm_rng_below(&r, (uint64_t)V);
    }
    float *got = malloc((size_t)NP * V * sizeof *got), *one = malloc((size_t)V * sizeof *one);
    float *sa = malloc((size_t)NP * V * sizeof *sa), *sb = malloc((size_t)NP * V * sizeof *sb);
    llm_session *a, *b;
    CHECK_RC(llm_session_new(m, NP, &a));
    CHECK_RC(llm_session_new(m, NP, &b));
    /* Prompt 0 continues 3 tokens already held. */
    int32_t head[3] = { 1, 2, 3 };
    CHECK_RC(llm_session_prefill(a, seqs[0], head, 3, NULL));
    CHECK_RC(llm_session_prefill(b, seqs[0], head, 3, NULL));
    /* Refusals first: nothing may change. */
    int dup[2] = { seqs[1], seqs[1] }, bad_len[2] = { 2, T };
    int32_t badtok[2] = { 0, (int32_t)V };
    const int32_t *badp[2] = { pt[1], badtok };
    if (llm_session_prefill_batch(a, dup, pt + 1, lens + 1, 2, got) != LLM_ERR_INVALID)
        FAIL("%s prefill batch: a sequence twice was not refused", name);
    if (llm_session_prefill_batch(a, seqs + 1, badp, bad_len, 2, got) != LLM_ERR_RANGE)
        FAIL("%s prefill batch: a token outside the vocabulary was not refused", name);
    if (llm_session_prefill_batch(a, seqs, pt, bad_len + 1, 1, got) != LLM_ERR_RANGE)
        FAIL("%s prefill batch: %d + 3 tokens past the context were not refused", name, T);
    if (llm_session_prefill_batch(a, seqs, pt, lens, 0, got) != LLM_ERR_INVALID)
        FAIL("%s prefill batch: no prompts were not refused", name);
    for (int i = 0; i < NP; i++)
        if (llm_session_len(a, seqs[i]) != (i == 0 ? 3 : 0))
            FAIL("%s prefill batch: a refusal changed sequence %d's length", name, seqs[i]);
    CHECK_RC(llm_session_prefill_batch(a, seqs, pt, lens, NP, got));
    for (int k = 0; k < NP; k++) {
        int i = order[k];
        CHECK_RC(llm_session_prefill(b, seqs[i], pt[i], lens[i], one));
        if (memcmp(one, got + (size_t)i * V, (size_t)V * sizeof *one) != 0)
            FAIL("%s prefill batch: prompt %d (%d tokens) differs from its own prefill",
                 name, i, lens[i]);
    }
    int32_t next[NP];
    int n = 0, sq[NP];
    for (int i = 0; i < NP; i++) {
        int len = llm_session_len(a, seqs[i]);
        if (len != llm_session_len(b, seqs[i]) || len != lens[i] + (i == 0 ? 3 : 0))
            FAIL("%s prefill batch: sequence %d holds %d and %d, want %d", name, seqs[i],
                 len, llm_session_len(b, seqs[i]), lens[i] + (i == 0 ? 3 : 0));
        if (len < T) {
            sq[n] = seqs[i];
            next[n++] = (int32_t)(i % V);
        }
    }
    CHECK_RC(llm_session_step(a, sq, next, n, sa));
    CHECK_RC(llm_session_step(b, sq, next, n, sb));
    if (memcmp(sa, sb, (size_t)n * V * sizeof *sa) != 0)
        FAIL("%s prefill batch: a step after it differs from a step after single prefills",
             name);
    llm_session_free(a);
    llm_session_free(b);
    free(tok); free(got); free(one); free(sa); free(sb);
    llm_model_free(m);
}

/* llm_session_advance() against llm_session_step() of its steps and
 * llm_session_prefill_batch() of its prompts on a second session (mode 0:
 * fp32, one forward; 1 bf16 copies, 2 int8, one forward; 3 half copies,
 * two forwards): the same logits, bit for bit, and the same caches (a
 * step of every sequence after it gives the same bits). Two rounds: 6
 * sequences stepping beside 5 new prompts of up to 30 tokens, then all 11
 * stepping beside 3 new prompts, one of 40 tokens (fp32: sgemm, so the
 * prompts go in forwards of their own). Then refusals, which change no
 * length. */
static void test_advance(const llm_config *c, int mode)
{
    enum { NS = 14 };
    const char *names[] = { "f32", "bf16", "q8", "f16" }, *name = names[mode];
    llm_model *m = make_model(c, "cpu", 11);
    if (mode)
        CHECK_RC(mode == 1   ? llm_model_weights_bf16(m)
                 : mode == 2 ? llm_model_quantize_q8(m)
                             : llm_model_decode_f16(m));
    int V = c->vocab_size, T = c->context;
    int32_t *tok = malloc((size_t)NS * T * sizeof *tok), next[NS];
    llm_rng r;
    llm_rng_seed(&r, 13);
    for (int i = 0; i < NS * T; i++)
        tok[i] = (int32_t)llm_rng_below(&r, (uint64_t)V);
    float *ga = malloc((size_t)NS * V * sizeof *ga), *gb = malloc((size_t)NS * V * sizeof *gb);
    llm_session *a, *b;
    CHECK_RC(llm_session_new(m, NS, &a));
    CHECK_RC(llm_session_new(m, NS, &b));
    /* Sequences 0-5 hold 3 to 13 tokens. */
    for (int q = 0; q < 6; q++) {
        CHECK_RC(llm_session_prefill(a, q, tok + (size_t)q * T, 3 + 2 * q, NULL));
        CHECK_RC(llm_session_prefill(b, q, tok + (size_t)q * T, 3 + 2 * q, NULL));
    }
    int seqs[NS], lens[NS];
    const int32_t *pt[NS];
    for (int round = 0; round < 2; round++) {
        int n_step = round ? 11 : 6, n = round ? 14 : 11;
        for (int i = 0; i < n; i++) {
            int q = i < n_step ? (i * 5) % n_step : i;   /* steps in another order */
            seqs[i] = q;
            if (i < n_step) {
                next[i] = (int32_t)((q * 7 + round) % V);
                pt[i] = next + i;
                lens[i] = 1;
            } else {
                pt[i] = tok + (size_t)q * T;
                lens[i] = round && i == 12 ? 40 : 2 + (i * 11) % 29;
            }
        }
        CHECK_RC(llm_session_advance(a, seqs, pt, lens, n, n_step, ga));
        CHECK_RC(llm_session_step(b, seqs, next, n_step, gb));
        CHECK_RC(llm_session_prefill_batch(b, seqs + n_step, pt + n_step, lens + n_step,
                                           n - n_step, gb + (size_t)n_step * V));
        for (int i = 0; i < n; i++)
            if (memcmp(ga + (size_t)i * V, gb + (size_t)i * V, (size_t)V * sizeof *ga) != 0)
                FAIL("%s advance round %d: sequence %d (%s of %d) differs from its own %s",
                     name, round, seqs[i], i < n_step ? "a step" : "a prompt", lens[i],
                     i < n_step ? "step" : "prefill");
    }
    /* Every sequence one step on: the caches agree. */
    for (int q = 0; q < NS; q++) {
        seqs[q] = q;
        next[q] = (int32_t)(q % V);
        if (llm_session_len(a, q) != llm_session_len(b, q))
            FAIL("%s advance: sequence %d holds %d and %d", name, q, llm_session_len(a, q),
                 llm_session_len(b, q));
    }
    CHECK_RC(llm_session_step(a, seqs, next, NS, ga));
    CHECK_RC(llm_session_step(b, seqs, next, NS, gb));
    if (memcmp(ga, gb, (size_t)NS * V * sizeof *ga) != 0)
        FAIL("%s advance: a step after it differs from a step after steps and prefills", name);
    /* Refusals. */
    int held[NS];
    for (int q = 0; q < NS; q++)
        held[q] = llm_session_len(a, q);
    int s2[2] = { 0, 1 }, l2[2] = { 1, 3 }, dup[2] = { 2, 2 }, one[2] = { 1, 1 };
    const int32_t *p2[2] = { tok, tok + T };
    if (llm_session_advance(a, s2, p2, l2, 2, 2, ga) != LLM_ERR_INVALID)
        FAIL("%s advance: a step of 3 tokens was not refused", name);
    if (llm_session_advance(a, dup, p2, l2, 2, 1, ga) != LLM_ERR_INVALID)
        FAIL("%s advance: a sequence both stepping and prefilling was not refused", name);
    if (llm_session_advance(a, s2, p2, one, 2, 3, ga) != LLM_ERR_INVALID ||
        llm_session_advance(a, s2, p2, one, 2, -1, ga) != LLM_ERR_INVALID)
        FAIL("%s advance: a step count outside [0, n] was not refused", name);
    if (llm_session_advance(a, s2, p2, one, 2, 1, NULL) != LLM_ERR_INVALID)
        FAIL("%s advance: no logits was not refused", name);
    for (int q = 0; q < NS; q++)
        if (llm_session_len(a, q) != held[q])
            FAIL("%s advance: a refusal changed sequence %d's length", name, q);
    llm_session_free(a);
    llm_session_free(b);
    free(tok); free(ga); free(gb);
    llm_model_free(m);
}

/* A prompt past 32 tokens prefilled whole from position 0 (attention by
 * the table's attention_forward, as the recompute's), and the same tokens
 * after a held head of 5 (attention_rows over the cache), against the
 * recompute, on the fast and the reference kernels. */
static void test_long_prompt(const llm_config *c)
{
    int V = c->vocab_size, T = c->context - 2;
    int32_t tok[64];
    llm_rng r;
    llm_rng_seed(&r, 11);
    for (int t = 0; t < T; t++)
        tok[t] = (int32_t)llm_rng_below(&r, (uint64_t)V);
    float *got = malloc((size_t)V * sizeof *got), *ref = malloc((size_t)V * sizeof *ref);
    const char *devices[] = { "cpu", "ref" };
    for (int d = 0; d < 2; d++) {
        llm_model *m = make_model(c, devices[d], 5);
        llm_session *s;
        CHECK_RC(llm_session_new(m, 2, &s));
        char what[64];
        snprintf(what, sizeof what, "long prompt/%s whole", devices[d]);
        CHECK_RC(llm_session_prefill(s, 0, tok, T, got));
        recompute(m, tok, T - 1, ref);
        compare(what, 0, T - 1, got, ref, V);
        snprintf(what, sizeof what, "long prompt/%s after 5", devices[d]);
        CHECK_RC(llm_session_prefill(s, 1, tok, 5, NULL));
        CHECK_RC(llm_session_prefill(s, 1, tok + 5, T - 5, got));
        compare(what, 1, T - 1, got, ref, V);
        /* Stepping on from the whole prompt's cache. */
        snprintf(what, sizeof what, "long prompt/%s step", devices[d]);
        int seq = 0;
        CHECK_RC(llm_session_step(s, &seq, &tok[T - 1], 1, got));
        int32_t more[64];
        memcpy(more, tok, (size_t)T * sizeof *more);
        more[T] = tok[T - 1];
        recompute(m, more, T, ref);
        compare(what, 0, T, got, ref, V);
        llm_session_free(s);
        llm_model_free(m);
    }
    free(got);
    free(ref);
}

int main(void)
{
    llm_set_threads(2);
    /* Tied with grouped-query heads; head size 6 and widths that are not
     * multiples of 8 exercise the tails of the step's matrix products. */
    llm_config gqa = { .vocab_size = 37, .dim = 12, .n_layers = 2, .n_heads = 2,
                       .n_kv_heads = 1, .ffn_dim = 20, .context = 12,
                       .rope_base = 10000.0, .norm_eps = 1e-5, .tied = 1 };
    /* Untied, plain multi-head, widths that are multiples of 8. */
    llm_config mha = { .vocab_size = 61, .dim = 32, .n_layers = 3, .n_heads = 4,
                       .n_kv_heads = 4, .ffn_dim = 48, .context = 16,
                       .rope_base = 10000.0, .norm_eps = 1e-5, .tied = 0 };
    /* Larger, grouped 8/2, head size 16. */
    llm_config big = { .vocab_size = 300, .dim = 128, .n_layers = 2, .n_heads = 8,
                       .n_kv_heads = 2, .ffn_dim = 200, .context = 24,
                       .rope_base = 10000.0, .norm_eps = 1e-5, .tied = 1 };
    /* Head size 84 = 64 + 2 * 8 + 4: every part of the attention's
     * loops over a head (a 64-float block, blocks of 8, a tail). */
    llm_config wide = { .vocab_size = 50, .dim = 168, .n_layers = 1, .n_heads = 2,
                        .n_kv_heads = 1, .ffn_dim = 64, .context = 19,
                        .rope_base = 10000.0, .norm_eps = 1e-5, .tied = 0 };
    const char *devices[] = { "cpu", "ref" };
    for (int d = 0; d < 2; d++) {
        test_config("gqa-tied", &gqa, devices[d]);
        test_config("mha-untied", &mha, devices[d]);
        test_config("gqa-big", &big, devices[d]);
        test_config("head-84", &wide, devices[d]);
    }
    test_batch_invariance(&mha);
    test_batch_invariance(&big);
    test_errors(&gqa);
    test_half();
    test_decode_f16(&mha);
    llm_config odd = mha;   /* widths with tails past the blocks of 8 */
    odd.dim = 36, odd.ffn_dim = 44, odd.n_heads = 3, odd.n_kv_heads = 3;
    test_decode_f16(&odd);
    llm_config q8wide = wide;
    q8wide.dim = 320;   /* 10 blocks: 8 in the tree, 2 after */
    q8wide.ffn_dim = 288;
    for (int bf16 = 0; bf16 <= 1; bf16++) {
        test_lowp(&mha, bf16);
        test_lowp(&odd, bf16);   /* 36 and 44 wide: short last blocks, odd pairs */
        test_lowp(&big, bf16);   /* 200 wide: 7 blocks, the last short */
        test_lowp(&q8wide, bf16);
    }
    /* Prompts past 32 tokens (prefilled by sgemm over fp32 weights). */
    llm_config longer = { .vocab_size = 40, .dim = 16, .n_layers = 2, .n_heads = 2,
                          .n_kv_heads = 1, .ffn_dim = 24, .context = 48,
                          .rope_base = 10000.0, .norm_eps = 1e-5, .tied = 1 };
    for (int lowp = 0; lowp <= 2; lowp++)
        test_prefill_batch(&longer, lowp);
    for (int mode = 0; mode <= 3; mode++)
        test_advance(&longer, mode);
    test_long_prompt(&longer);
    printf("max |cache - recompute| over all logits: %.3g (tolerance %g + %g*|ref|)\n",
           worst_seen, ATOL, RTOL);
    if (failures) {
        printf("%d failure(s)\n", failures);
        return 1;
    }
    printf("test_infer: all passed\n");
    return 0;
}
