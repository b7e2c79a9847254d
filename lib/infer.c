/* infer.c: generation with a key/value cache. A session holds, for up to
 * n_seq sequences, the rotated keys and the values of every layer at every
 * position seen, so that each new token costs one pass over the weights
 * instead of a recompute of the whole sequence.
 *
 * Two entry points, chosen so that results never depend on batching:
 *  - prefill: the tokens of ONE sequence in one forward, matrix-matrix
 *    through the kernel table (sgemm on the CPU);
 *  - step: one token for each of n sequences together. Its matrix products
 *    go through skinny_matmul() below, which reads every weight row once for
 *    all n rows (decode is bound by memory bandwidth) and computes each
 *    output element in the same order whatever n and the thread count, so
 *    that a sequence decoded alongside 31 others gets the same bits as alone.
 * Everything else (norms, RoPE, SwiGLU, residuals) is per row already. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include <omp.h>
#if defined(__AVX2__) && defined(__FMA__)
#include <immintrin.h>
#endif

#include "internal.h"
#include "kernels.h"
#include "model.h"

struct llm_session {
    const llm_model *m;
    int n_seq, n_ctx;
    int KVD;              /* KVH * hd: one key (or value) row */
    int skinny;           /* step uses skinny_matmul (CPU kernels) */
    float *kv;            /* (n_seq, L, 2, n_ctx, KVD): keys then values */
    int *len;             /* (n_seq) positions held */

    /* Scratch for up to `rows` rows, grown on demand. */
    int rows;
    float *x;             /* (rows, C) residual stream */
    float *xb;            /* (rows, C) norm output / sublayer output */
    float *qkv;           /* (rows, QS) */
    float *atty;          /* (rows, OS) */
    float *h13;           /* (rows, 2F) */
    float *hsw;           /* (rows, F) */
    float *rstd;          /* (rows) */
    float *rcos, *rsin;   /* (rows, hd/2) RoPE tables gathered by position */
    int *rseq, *rpos;     /* (rows) sequence and position of each row */
    float *att;           /* (threads, n_ctx) attention scores */
    int att_threads;
};

/* ------------------------------------------------------------ matvec */

/* out(N,OC) = inp(N,IC) . w(OC,IC)^T with every weight row read once for
 * all N input rows. Output element (n, o) is always computed as: 8 lanes
 * accumulated by FMA over k = 0, 8, 16, ... (while k + 8 <= IC), summed
 * lane pairs in a fixed tree, then the tail k in order: independent of N,
 * of the blocking and of the thread count. */
#if defined(__AVX2__) && defined(__FMA__)
static inline float hsum8(__m256 v)
{
    __m128 lo = _mm256_castps256_ps128(v), hi = _mm256_extractf128_ps(v, 1);
    __m128 s = _mm_add_ps(lo, hi);                    /* l0+l4 .. l3+l7 */
    s = _mm_add_ps(s, _mm_movehl_ps(s, s));           /* (0+2), (1+3) */
    s = _mm_add_ss(s, _mm_movehdup_ps(s));            /* 0 + 1 */
    return _mm_cvtss_f32(s);
}

/* Rows o..o+R-1 of w against input rows n..n+Q-1 (R <= 4, Q <= 2). */
static inline void block(float *out, const float *inp, const float *w, int IC,
                         int OC, int o, int R, int n, int Q)
{
    __m256 acc[4][2];
    for (int r = 0; r < 4; r++)
        acc[r][0] = acc[r][1] = _mm256_setzero_ps();
    const float *w0 = w + (size_t)o * IC;
    const float *x0 = inp + (size_t)n * IC, *x1 = x0 + (Q > 1 ? IC : 0);
    int k = 0, K8 = IC & ~7;
    if (R == 4 && Q == 2) {
        for (; k < K8; k += 8) {
            __m256 a = _mm256_loadu_ps(x0 + k), b = _mm256_loadu_ps(x1 + k);
            for (int r = 0; r < 4; r++) {
                __m256 wv = _mm256_loadu_ps(w0 + (size_t)r * IC + k);
                acc[r][0] = _mm256_fmadd_ps(wv, a, acc[r][0]);
                acc[r][1] = _mm256_fmadd_ps(wv, b, acc[r][1]);
            }
        }
    } else if (R == 4) {
        for (; k < K8; k += 8) {
            __m256 a = _mm256_loadu_ps(x0 + k);
            for (int r = 0; r < 4; r++)
                acc[r][0] = _mm256_fmadd_ps(_mm256_loadu_ps(w0 + (size_t)r * IC + k), a,
                                            acc[r][0]);
        }
    } else {
        for (; k < K8; k += 8)
            for (int r = 0; r < R; r++) {
                __m256 wv = _mm256_loadu_ps(w0 + (size_t)r * IC + k);
                for (int q = 0; q < Q; q++)
                    acc[r][q] = _mm256_fmadd_ps(wv, _mm256_loadu_ps(x0 + (size_t)q * IC + k),
                                                acc[r][q]);
            }
    }
    for (int r = 0; r < R; r++)
        for (int q = 0; q < Q; q++) {
            float s = hsum8(acc[r][q]);
            const float *wr = w0 + (size_t)r * IC, *xq = x0 + (size_t)q * IC;
            for (int t = K8; t < IC; t++)
                s += wr[t] * xq[t];
            out[(size_t)(n + q) * OC + o + r] = s;
        }
}
#else
/* Portable version of the same order: 8 partial sums, the same tree. */
static inline void block(float *out, const float *inp, const float *w, int IC,
                         int OC, int o, int R, int n, int Q)
{
    int K8 = IC & ~7;
    for (int r = 0; r < R; r++)
        for (int q = 0; q < Q; q++) {
            const float *wr = w + (size_t)(o + r) * IC, *xq = inp + (size_t)(n + q) * IC;
            float l[8] = { 0 };
            for (int k = 0; k < K8; k += 8)
                for (int j = 0; j < 8; j++)
                    l[j] = fmaf(wr[k + j], xq[k + j], l[j]);
            float s = ((l[0] + l[4]) + (l[2] + l[6])) + ((l[1] + l[5]) + (l[3] + l[7]));
            for (int t = K8; t < IC; t++)
                s += wr[t] * xq[t];
            out[(size_t)(n + q) * OC + o + r] = s;
        }
}
#endif

/* Input rows are taken in groups that stay in L2 while a thread's weight
 * rows stream past them once per group. */
#define SKINNY_GROUP 32

static void skinny_matmul(float *out, const float *inp, const float *w, int N,
                          int IC, int OC)
{
#pragma omp parallel
    {
        int nt = omp_get_num_threads(), id = omp_get_thread_num();
        /* Contiguous runs of 4-row blocks per thread. */
        int nb = (OC + 3) / 4;
        int b0 = (int)((int64_t)nb * id / nt), b1 = (int)((int64_t)nb * (id + 1) / nt);
        for (int g = 0; g < N; g += SKINNY_GROUP) {
            int gn = N - g < SKINNY_GROUP ? N - g : SKINNY_GROUP;
            for (int b = b0; b < b1; b++) {
                int o = 4 * b, R = OC - o < 4 ? OC - o : 4;
                int n = g;
                for (; n + 2 <= g + gn; n += 2)
                    block(out, inp, w, IC, OC, o, R, n, 2);
                if (n < g + gn)
                    block(out, inp, w, IC, OC, o, R, n, 1);
            }
        }
    }
}

/* ------------------------------------------------------------ session */

static float *kv_at(const llm_session *s, int seq, int l, int which)
{
    const llm_config *c = &s->m->cfg;
    size_t per = (size_t)s->n_ctx * s->KVD;
    return s->kv + (((size_t)seq * c->n_layers + l) * 2 + which) * per;
}

int llm_session_new(const llm_model *m, int n_seq, llm_session **out)
{
    *out = NULL;
    if (n_seq < 1 || n_seq > 65536)
        return llm_fail(LLM_ERR_INVALID, "sequences per session (%d) must be in [1, 65536]",
                        n_seq);
    const llm_config *c = &m->cfg;
    llm_session *s = calloc(1, sizeof *s);
    if (!s)
        return llm_fail(LLM_ERR_NOMEM, "out of memory");
    s->m = m;
    s->n_seq = n_seq;
    s->n_ctx = c->context;
    s->KVD = c->n_kv_heads * m->hd;
    s->skinny = strcmp(m->k->name, "cpu") == 0;
    size_t n;
    /* Pages of the cache are touched only as positions fill. */
    if (llm_mul_size((size_t)n_seq * c->n_layers * 2, (size_t)s->n_ctx * s->KVD, &n) ||
        llm_mul_size(n, sizeof(float), &n) || !(s->kv = malloc(n)) ||
        !(s->len = calloc((size_t)n_seq, sizeof *s->len))) {
        llm_session_free(s);
        return llm_fail(LLM_ERR_NOMEM, "out of memory for a key/value cache of %d "
                        "sequences x %d positions", n_seq, c->context);
    }
    *out = s;
    return LLM_OK;
}

void llm_session_free(llm_session *s)
{
    if (!s)
        return;
    free(s->kv);
    free(s->len);
    free(s->x);
    free(s->xb);
    free(s->qkv);
    free(s->atty);
    free(s->h13);
    free(s->hsw);
    free(s->rstd);
    free(s->rcos);
    free(s->rsin);
    free(s->rseq);
    free(s->rpos);
    free(s->att);
    free(s);
}

int llm_session_seqs(const llm_session *s)
{
    return s->n_seq;
}

int llm_session_len(const llm_session *s, int seq)
{
    return seq >= 0 && seq < s->n_seq ? s->len[seq] : -1;
}

int llm_session_clear(llm_session *s, int seq)
{
    if (seq < 0 || seq >= s->n_seq)
        return llm_fail(LLM_ERR_RANGE, "sequence %d out of range [0, %d)", seq, s->n_seq);
    s->len[seq] = 0;
    return LLM_OK;
}

static int grow(llm_session *s, int rows)
{
    int threads = omp_get_max_threads();
    if (threads > s->att_threads) {
        free(s->att);
        s->att_threads = 0;
        s->att = malloc((size_t)threads * s->n_ctx * sizeof *s->att);
        if (!s->att)
            return llm_fail(LLM_ERR_NOMEM, "out of memory");
        s->att_threads = threads;
    }
    if (rows <= s->rows)
        return LLM_OK;
    const llm_model *m = s->m;
    const llm_config *c = &m->cfg;
    size_t R = (size_t)rows, C = (size_t)c->dim, F = (size_t)c->ffn_dim;
    struct { float **p; size_t n; } f[] = {
        { &s->x, R * C }, { &s->xb, R * C }, { &s->qkv, R * m->QS },
        { &s->atty, R * m->OS }, { &s->h13, R * 2 * F }, { &s->hsw, R * F },
        { &s->rstd, R }, { &s->rcos, R * (size_t)(m->hd / 2) },
        { &s->rsin, R * (size_t)(m->hd / 2) },
    };
    s->rows = 0;
    int ok = 1;
    for (size_t i = 0; i < sizeof f / sizeof f[0]; i++) {
        free(*f[i].p);
        ok &= (*f[i].p = malloc(f[i].n * sizeof(float))) != NULL;
    }
    free(s->rseq);
    free(s->rpos);
    ok &= (s->rseq = malloc(R * sizeof *s->rseq)) != NULL;
    ok &= (s->rpos = malloc(R * sizeof *s->rpos)) != NULL;
    if (!ok)
        return llm_fail(LLM_ERR_NOMEM, "out of memory for %d rows of activations", rows);
    s->rows = rows;
    return LLM_OK;
}

/* Causal attention of every row against its own sequence's cache, which
 * already holds this row's key and value: out(N, OS) =. One task per (row,
 * head); each task's arithmetic is independent of the others. */
static void attend(llm_session *s, int l, int N)
{
    const llm_model *m = s->m;
    const llm_config *c = &m->cfg;
    int H = c->n_heads, hd = m->hd, rep = H / c->n_kv_heads, KVD = s->KVD;
    float scale = 1.0f / sqrtf((float)hd);
#pragma omp parallel for schedule(dynamic, 1)
    for (int task = 0; task < N * H; task++) {
        int r = task / H, h = task % H, kh = h / rep;
        int p = s->rpos[r];
        const float *q = s->qkv + (size_t)r * m->QS + (size_t)h * hd;
        const float *K = kv_at(s, s->rseq[r], l, 0) + (size_t)kh * hd;
        const float *V = kv_at(s, s->rseq[r], l, 1) + (size_t)kh * hd;
        float *a = s->att + (size_t)omp_get_thread_num() * s->n_ctx;
        float mx = -INFINITY;
        for (int t = 0; t <= p; t++) {
            const float *k = K + (size_t)t * KVD;
            float d = 0.0f;
#pragma omp simd reduction(+:d)
            for (int i = 0; i < hd; i++)
                d += q[i] * k[i];
            a[t] = d * scale;
            mx = a[t] > mx ? a[t] : mx;
        }
        float sum = 0.0f;
        for (int t = 0; t <= p; t++) {
            a[t] = expf(a[t] - mx);
            sum += a[t];
        }
        float inv = 1.0f / sum;
        float *o = s->atty + (size_t)r * m->OS + (size_t)h * hd;
        for (int i = 0; i < hd; i++)
            o[i] = 0.0f;
        for (int t = 0; t <= p; t++) {
            const float *v = V + (size_t)t * KVD;
            float w = a[t] * inv;
#pragma omp simd
            for (int i = 0; i < hd; i++)
                o[i] += w * v[i];
        }
    }
}

/* The forward of N rows whose tokens, sequences and positions are in
 * tokens / s->rseq / s->rpos; logits of the rows `last` (n of them; NULL:
 * rows 0..n-1) into logits (n, V), none when logits is NULL. `skinny`:
 * matrix products by skinny_matmul. */
static void forward(llm_session *s, const int32_t *tokens, int N, const int *last,
                    int n, float *logits, int skinny)
{
    const llm_model *m = s->m;
    const llm_config *c = &m->cfg;
    const llm_kernels *k = m->k;
    int C = c->dim, F = c->ffn_dim, H = c->n_heads, KVH = c->n_kv_heads, hd = m->hd;
    int QS = m->QS, OS = m->OS, h2 = hd / 2, KVD = s->KVD;
    float eps = (float)c->norm_eps;
    void (*mm)(float *, const float *, const float *, int, int, int) =
        skinny ? skinny_matmul : k->matmul_forward;

    for (int r = 0; r < N; r++) {
        memcpy(s->rcos + (size_t)r * h2, m->rope_cos + (size_t)s->rpos[r] * h2,
               (size_t)h2 * sizeof(float));
        memcpy(s->rsin + (size_t)r * h2, m->rope_sin + (size_t)s->rpos[r] * h2,
               (size_t)h2 * sizeof(float));
    }
    k->embedding_forward(s->x, tokens, m->wte, N, C);
    for (int l = 0; l < c->n_layers; l++) {
        k->rmsnorm_forward(s->xb, s->rstd, s->x, m->attn_norm + (size_t)l * C, N, C, eps);
        mm(s->qkv, s->xb, m->wqkv + (size_t)l * QS * C, N, C, QS);
        /* The gathered tables make row r rotate by its own position. */
        k->rope_forward(s->qkv, s->rcos, s->rsin, 1, N, H + KVH, hd, QS);
        for (int r = 0; r < N; r++) {
            const float *row = s->qkv + (size_t)r * QS + (size_t)H * hd;
            size_t at = (size_t)s->rpos[r] * KVD;
            memcpy(kv_at(s, s->rseq[r], l, 0) + at, row, (size_t)KVD * sizeof(float));
            memcpy(kv_at(s, s->rseq[r], l, 1) + at, row + KVD, (size_t)KVD * sizeof(float));
        }
        attend(s, l, N);
        mm(s->xb, s->atty, m->wo + (size_t)l * C * OS, N, OS, C);
        k->residual_forward(s->x, s->x, s->xb, (size_t)N * C);
        k->rmsnorm_forward(s->xb, s->rstd, s->x, m->ffn_norm + (size_t)l * C, N, C, eps);
        mm(s->h13, s->xb, m->w13 + (size_t)l * 2 * F * C, N, C, 2 * F);
        k->swiglu_forward(s->hsw, s->h13, N, F);
        mm(s->xb, s->hsw, m->w2 + (size_t)l * C * F, N, F, C);
        k->residual_forward(s->x, s->x, s->xb, (size_t)N * C);
    }
    if (!logits)
        return;
    /* Only the rows whose logits are wanted go through the output layer. */
    for (int i = 0; last && i < n; i++)
        if (last[i] != i)
            memmove(s->x + (size_t)i * C, s->x + (size_t)last[i] * C,
                    (size_t)C * sizeof(float));
    k->rmsnorm_forward(s->xb, s->rstd, s->x, m->norm, n, C, eps);
    /* A few rows against the whole vocabulary: skinny for prefill too. */
    if (s->skinny)
        mm = skinny_matmul;
    mm(logits, s->xb, m->wout, n, C, c->vocab_size);
}

static int check_tokens(const llm_session *s, const int32_t *tokens, int n)
{
    int V = s->m->cfg.vocab_size;
    for (int i = 0; i < n; i++)
        if (tokens[i] < 0 || tokens[i] >= V)
            return llm_fail(LLM_ERR_RANGE, "token %d at index %d is outside the "
                            "vocabulary [0, %d)", tokens[i], i, V);
    return LLM_OK;
}

int llm_session_prefill(llm_session *s, int seq, const int32_t *tokens, int n,
                        float *logits)
{
    if (seq < 0 || seq >= s->n_seq)
        return llm_fail(LLM_ERR_RANGE, "sequence %d out of range [0, %d)", seq, s->n_seq);
    if (n < 1)
        return llm_fail(LLM_ERR_INVALID, "prefill needs at least one token");
    if (n > s->n_ctx - s->len[seq])
        return llm_fail(LLM_ERR_RANGE, "%d more tokens do not fit in the context (%d "
                        "held of %d)", n, s->len[seq], s->n_ctx);
    int rc = check_tokens(s, tokens, n);
    if (!rc)
        rc = grow(s, n);
    if (rc)
        return rc;
    for (int r = 0; r < n; r++) {
        s->rseq[r] = seq;
        s->rpos[r] = s->len[seq] + r;
    }
    int last = n - 1;
    forward(s, tokens, n, &last, 1, logits, 0);
    s->len[seq] += n;
    return LLM_OK;
}

int llm_session_step(llm_session *s, const int *seqs, const int32_t *tokens, int n,
                     float *logits)
{
    if (n < 1 || n > s->n_seq)
        return llm_fail(LLM_ERR_INVALID, "a step takes 1 to %d sequences, not %d",
                        s->n_seq, n);
    for (int i = 0; i < n; i++) {
        if (seqs[i] < 0 || seqs[i] >= s->n_seq)
            return llm_fail(LLM_ERR_RANGE, "sequence %d out of range [0, %d)", seqs[i],
                            s->n_seq);
        if (s->len[seqs[i]] >= s->n_ctx)
            return llm_fail(LLM_ERR_RANGE, "sequence %d is full (context %d)", seqs[i],
                            s->n_ctx);
        for (int j = 0; j < i; j++)
            if (seqs[j] == seqs[i])
                return llm_fail(LLM_ERR_INVALID, "sequence %d appears twice in one step",
                                seqs[i]);
    }
    int rc = check_tokens(s, tokens, n);
    if (!rc)
        rc = grow(s, n);
    if (rc)
        return rc;
    for (int r = 0; r < n; r++) {
        s->rseq[r] = seqs[r];
        s->rpos[r] = s->len[seqs[r]];
    }
    forward(s, tokens, n, NULL, n, logits, s->skinny);
    for (int r = 0; r < n; r++)
        s->len[seqs[r]]++;
    return LLM_OK;
}
