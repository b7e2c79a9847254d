/* infer.c: generation with a key/value cache. A session holds, for up to
 * n_seq sequences, the rotated keys and the values of every layer at every
 * position seen, so that each new token costs one pass over the weights
 * instead of a recompute of the whole sequence.
 *
 * Three entry points, chosen so that results never depend on batching:
 *  - prefill: the tokens of ONE sequence in one forward, matrix-matrix
 *    through the kernel table (sgemm on the CPU);
 *  - step: one token for each of n sequences together. Its matrix products
 *    go through skinny_rows() below, which reads every weight row once for
 *    all n rows (decode is bound by memory bandwidth) and computes each
 *    output element in the same order whatever n and the thread count, so
 *    that a sequence decoded alongside 31 others gets the same bits as alone;
 *  - pooled (classification): whole documents packed as rows with nothing
 *    cached, computing past the last layer's keys and values only the rows
 *    that pooling reads. Many rows per product: gemm_rows() below, whose
 *    order of summation is again the same for any batch and threads.
 * Everything else (norms, RoPE, SwiGLU, residuals, attention) is per row. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include <omp.h>
#if defined(__AVX2__) && defined(__FMA__) || defined(__F16C__)
#include <immintrin.h>
#endif

#include "fastexp.h"
#include "half.h"
#include "internal.h"
#include "kernels.h"
#include "model.h"

struct llm_session {
    const llm_model *m;
    int n_seq, n_ctx;
    int KVD;              /* KVH * hd: one key (or value) row */
    int skinny;           /* CPU kernels: step by skinny_rows(), pooled by gemm_rows() */
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
    int *keep;            /* (rows) rows that go past the last layer's cache */
    int32_t *tok;         /* (rows) tokens of a packed forward */
    /* A packed forward (llm_session_pooled()) caches nothing: sequence d's
     * keys and values are its own rows of qkv, from row start[d] on. */
    const int *start;     /* NULL: keys and values in the cache */
    float *att;           /* (threads, n_ctx) attention scores */
    int att_threads;
    float *wpack;         /* gemm_rows()' packed weights, for any product */
};

/* ------------------------------------------------------------ matvec */

/* out(N,OC) = inp(N,IC) . w(OC,IC)^T with every weight row read once for
 * all N input rows. Output element (n, o) is always computed as: 8 lanes
 * accumulated by FMA over k = 0, 8, 16, ... (while k + 8 <= IC), summed
 * lane pairs in a fixed tree, then the tail k in order: independent of N,
 * of the tiling and of the thread count.
 *
 * tile() computes R weight rows against Q input rows; R and Q are constants
 * at every call, so that once inlined its accumulators live in registers
 * (4 x 3 = 12 of the 16 ymm registers, with the 4 weight vectors reused 3
 * times and the 3 input vectors 4 times). */

/* The rows of a product: row n of the input is in + r * ldi and row n of
 * the output out + r * ldo, where r = map[n] (map NULL: r = n). */
typedef struct {
    const float *in;
    float *out;
    size_t ldi, ldo;
    const int *map;
} rowset;

static inline size_t row_of(const rowset *rs, int n)
{
    return (size_t)(rs->map ? rs->map[n] : n);
}

#if defined(__AVX2__) && defined(__FMA__)
static inline float hsum8(__m256 v)
{
    __m128 lo = _mm256_castps256_ps128(v), hi = _mm256_extractf128_ps(v, 1);
    __m128 s = _mm_add_ps(lo, hi);                    /* l0+l4 .. l3+l7 */
    s = _mm_add_ps(s, _mm_movehl_ps(s, s));           /* (0+2), (1+3) */
    s = _mm_add_ss(s, _mm_movehdup_ps(s));            /* 0 + 1 */
    return _mm_cvtss_f32(s);
}

/* hsum8 of four vectors at once, the same tree for each: (a0 .. a3). */
static inline __m128 hsum8x4(__m256 a0, __m256 a1, __m256 a2, __m256 a3)
{
    __m256 s01 = _mm256_add_ps(_mm256_permute2f128_ps(a0, a1, 0x20),
                               _mm256_permute2f128_ps(a0, a1, 0x31));
    __m256 s23 = _mm256_add_ps(_mm256_permute2f128_ps(a2, a3, 0x20),
                               _mm256_permute2f128_ps(a2, a3, 0x31));
    /* Lanes l0+l4, l2+l6, l1+l5, l3+l7 of each, then the pairs' sums. */
    s01 = _mm256_permute_ps(s01, _MM_SHUFFLE(3, 1, 2, 0));
    s23 = _mm256_permute_ps(s23, _MM_SHUFFLE(3, 1, 2, 0));
    __m256 h = _mm256_hadd_ps(s01, s23);
    h = _mm256_hadd_ps(h, h);   /* a0 a2 . . | a1 a3 . . */
    return _mm_unpacklo_ps(_mm256_castps256_ps128(h), _mm256_extractf128_ps(h, 1));
}

/* Weights are floats, or IEEE halves (h = 1: llm_model_decode_f16()), read
 * as 8 floats from element i; h is a constant at every call. */
__attribute__((always_inline))
static inline __m256 wload(const void *w, size_t i, const int h)
{
    if (!h)
        return _mm256_loadu_ps((const float *)w + i);
#if defined(__F16C__)
    return _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)((const uint16_t *)w + i)));
#else
    float t[8];
    for (int j = 0; j < 8; j++)
        t[j] = llm_half_to_float(((const uint16_t *)w)[i + j]);
    return _mm256_loadu_ps(t);
#endif
}
#endif

static inline float wget(const void *w, size_t i, const int h)
{
    return h ? llm_half_to_float(((const uint16_t *)w)[i]) : ((const float *)w)[i];
}

static inline const char *waddr(const void *w, size_t i, const int h)
{
    return (const char *)w + i * (h ? sizeof(uint16_t) : sizeof(float));
}

#if defined(__AVX2__) && defined(__FMA__)
__attribute__((always_inline))
static inline void tile(const rowset *rs, const void *w, const int h, int IC, int o, int n,
                        const int R, const int Q, const int pf)
{
    __m256 acc[4][3];
#pragma GCC unroll 4
    for (int r = 0; r < 4; r++)
#pragma GCC unroll 3
        for (int q = 0; q < 3; q++)
            acc[r][q] = _mm256_setzero_ps();
    size_t w0 = (size_t)o * IC;   /* element of w where row o starts */
    const float *xr[3];
    float *orow[3];
#pragma GCC unroll 3
    for (int q = 0; q < Q; q++) {
        size_t r = row_of(rs, n + q);
        xr[q] = rs->in + r * rs->ldi;
        orow[q] = rs->out + r * rs->ldo + o;
    }
    int K8 = IC & ~7;
    if (Q == 1) {
        /* One input row (decoding one sequence: bound by memory): the
         * weight rows one after the other, a single forward stream that
         * always asks 8 rows ahead, whatever pf. */
#pragma GCC unroll 4
        for (int r = 0; r < R; r++) {
            size_t wr = w0 + (size_t)r * IC;
            for (int k = 0; k < K8; k += 8) {
                _mm_prefetch(waddr(w, wr + 8 * (size_t)IC + k, h), _MM_HINT_T0);
                acc[r][0] = _mm256_fmadd_ps(wload(w, wr + k, h), _mm256_loadu_ps(xr[0] + k),
                                            acc[r][0]);
            }
        }
    }
    for (int k = 0; Q > 1 && k < K8; k += 8) {
        __m256 x[3];
#pragma GCC unroll 3
        for (int q = 0; q < Q; q++)
            x[q] = _mm256_loadu_ps(xr[q] + k);
#pragma GCC unroll 4
        for (int r = 0; r < R; r++) {
            /* Short rows end before the hardware prefetcher is up to
             * speed: the first tile over these weight rows (pf) asks for
             * the same part of the rows 8 rows on; the next tiles find
             * these rows in L1, and more prefetches would only take load
             * slots. */
            if (pf)
                _mm_prefetch(waddr(w, w0 + (size_t)(r + 8) * IC + k, h), _MM_HINT_T0);
            __m256 wv = wload(w, w0 + (size_t)r * IC + k, h);
#pragma GCC unroll 3
            for (int q = 0; q < Q; q++)
                acc[r][q] = _mm256_fmadd_ps(wv, x[q], acc[r][q]);
        }
    }
    if (R == 4 && K8 == IC) {
#pragma GCC unroll 3
        for (int q = 0; q < Q; q++)
            _mm_storeu_ps(orow[q], hsum8x4(acc[0][q], acc[1][q], acc[2][q], acc[3][q]));
        return;
    }
#pragma GCC unroll 4
    for (int r = 0; r < R; r++)
#pragma GCC unroll 3
        for (int q = 0; q < Q; q++) {
            float s = hsum8(acc[r][q]);
            size_t wr = w0 + (size_t)r * IC;
            for (int t = K8; t < IC; t++)
                s += wget(w, wr + t, h) * xr[q][t];
            orow[q][r] = s;
        }
}
#else
/* Portable version of the same order: 8 partial sums, the same tree. */
static inline void tile(const rowset *rs, const void *w, const int h, int IC, int o, int n,
                        const int R, const int Q, const int pf)
{
    (void)pf;
    int K8 = IC & ~7;
    for (int q = 0; q < Q; q++) {
        size_t rr = row_of(rs, n + q);
        const float *xq = rs->in + rr * rs->ldi;
        float *oq = rs->out + rr * rs->ldo + o;
        for (int r = 0; r < R; r++) {
            size_t wr = (size_t)(o + r) * IC;
            float l[8] = { 0 };
            for (int k = 0; k < K8; k += 8)
                for (int j = 0; j < 8; j++)
                    l[j] = fmaf(wget(w, wr + k + j, h), xq[k + j], l[j]);
            float s = ((l[0] + l[4]) + (l[2] + l[6])) + ((l[1] + l[5]) + (l[3] + l[7]));
            for (int t = K8; t < IC; t++)
                s += wget(w, wr + t, h) * xq[t];
            oq[r] = s;
        }
    }
}
#endif

/* Weight rows o..o+R-1 (R = 4, or 1 for the last OC % 4) against input
 * rows g..g+gn-1, three at a time; the first tile prefetches. */
#if defined(__GNUC__)
__attribute__((always_inline))
#endif
static inline void rows(const rowset *rs, const void *w, const int h, int IC, int o,
                        const int R, int g, int gn)
{
    int n = g, end = g + gn;
    if (n + 3 <= end) {
        tile(rs, w, h, IC, o, n, R, 3, 1);
        n += 3;
    }
    for (; n + 3 <= end; n += 3)
        tile(rs, w, h, IC, o, n, R, 3, 0);
    if (end - n == 2)
        tile(rs, w, h, IC, o, n, R, 2, n == g);
    else if (end - n == 1)
        tile(rs, w, h, IC, o, n, R, 1, 1);
}

/* Input rows are taken in groups that stay in L2 while a thread's weight
 * rows stream past them once per group. */
#define SKINNY_GROUP 48

/* Weight rows blocks [b0, b1) of 4 against all N rows of rs. */
#if defined(__GNUC__)
__attribute__((always_inline))
#endif
static inline void skinny_part(const rowset *rs, const void *w, const int h, int N, int IC,
                               int OC, int b0, int b1)
{
    for (int g = 0; g < N; g += SKINNY_GROUP) {
        int gn = N - g < SKINNY_GROUP ? N - g : SKINNY_GROUP;
        for (int b = b0; b < b1; b++) {
            int o = 4 * b;
            if (OC - o >= 4)
                rows(rs, w, h, IC, o, 4, g, gn);
            else
                for (; o < OC; o++)
                    rows(rs, w, h, IC, o, 1, g, gn);
        }
    }
}

/* rows of rs (N of them) times w(OC, IC)^T, w floats or (h) halves. */
static void skinny_rows(const rowset *rs, const void *w, int h, int N, int IC, int OC)
{
#pragma omp parallel
    {
        int nt = omp_get_num_threads(), id = omp_get_thread_num();
        /* Contiguous runs of 4-row blocks per thread; the last block may
         * be short, and its rows go one at a time. */
        int nb = (OC + 3) / 4;
        int b0 = (int)((int64_t)nb * id / nt), b1 = (int)((int64_t)nb * (id + 1) / nt);
        if (h)
            skinny_part(rs, w, 1, N, IC, OC, b0, b1);
        else
            skinny_part(rs, w, 0, N, IC, OC, b0, b1);
    }
}

/* ------------------------------------------------------------ gemm */

/* The same product for many rows at once (a packed classification
 * forward): compute-bound, so the weights are packed per call into panels
 * of GEMM_NR outputs, k-major and zero past OC (pack[p][k][j] = w[16p+j][k]),
 * and a GEMM_MR x GEMM_NR register tile broadcasts one input per row and
 * reads two weight vectors per k. Output element (n, o) is always one FMA
 * chain over k = 0 .. IC-1 in order, from 0: independent of N, of the
 * tiling and of the thread count (not the order of skinny_rows). */
#define GEMM_MR 6
#define GEMM_NR 16

/* Floats of the packed copy of a (OC, IC) weight. */
static size_t gemm_pack_size(int IC, int OC)
{
    return (size_t)(OC + GEMM_NR - 1) / GEMM_NR * GEMM_NR * (size_t)IC;
}

#if defined(__AVX2__) && defined(__FMA__)
__attribute__((always_inline))
static inline void gemm_tile(const rowset *rs, const float *pk, int IC, int o, int OC,
                             int n, const int M)
{
    __m256 acc[GEMM_MR][2];
    const float *x[GEMM_MR];
#pragma GCC unroll 6
    for (int r = 0; r < M; r++) {
        acc[r][0] = acc[r][1] = _mm256_setzero_ps();
        x[r] = rs->in + row_of(rs, n + r) * rs->ldi;
    }
    for (int k = 0; k < IC; k++) {
        __m256 b0 = _mm256_loadu_ps(pk + (size_t)k * GEMM_NR);
        __m256 b1 = _mm256_loadu_ps(pk + (size_t)k * GEMM_NR + 8);
#pragma GCC unroll 6
        for (int r = 0; r < M; r++) {
            __m256 a = _mm256_broadcast_ss(x[r] + k);
            acc[r][0] = _mm256_fmadd_ps(a, b0, acc[r][0]);
            acc[r][1] = _mm256_fmadd_ps(a, b1, acc[r][1]);
        }
    }
    int w = OC - o < GEMM_NR ? OC - o : GEMM_NR;
#pragma GCC unroll 6
    for (int r = 0; r < M; r++) {
        float *out = rs->out + row_of(rs, n + r) * rs->ldo + o;
        if (w == GEMM_NR) {
            _mm256_storeu_ps(out, acc[r][0]);
            _mm256_storeu_ps(out + 8, acc[r][1]);
        } else {
            float t[GEMM_NR];
            _mm256_storeu_ps(t, acc[r][0]);
            _mm256_storeu_ps(t + 8, acc[r][1]);
            memcpy(out, t, (size_t)w * sizeof *t);
        }
    }
}

/* rows of rs (N of them) times w(OC, IC)^T; pk has gemm_pack_size()
 * floats. */
static void gemm_rows(const rowset *rs, const float *w, float *pk, int N, int IC, int OC)
{
    int np = (OC + GEMM_NR - 1) / GEMM_NR, nb = (N + GEMM_MR - 1) / GEMM_MR;
    size_t psz = (size_t)GEMM_NR * IC;
    /* Panels are taken in groups of about 128 KiB, which stay in L2 while
     * all the row blocks go past them. */
    int pg = (int)(32768 / psz);
    pg = pg < 1 ? 1 : pg > np ? np : pg;
    int ng = (np + pg - 1) / pg;
#pragma omp parallel
    {
#pragma omp for schedule(static)
        for (int p = 0; p < np; p++) {
            float *d = pk + (size_t)p * psz;
            for (int j = 0; j < GEMM_NR; j++) {
                int o = p * GEMM_NR + j;
                const float *wr = w + (size_t)o * IC;
                if (o < OC)
                    for (int k = 0; k < IC; k++)
                        d[(size_t)k * GEMM_NR + j] = wr[k];
                else
                    for (int k = 0; k < IC; k++)
                        d[(size_t)k * GEMM_NR + j] = 0.0f;
            }
        }
#pragma omp for collapse(2) schedule(static)
        for (int g = 0; g < ng; g++)
            for (int b = 0; b < nb; b++) {
                int n = b * GEMM_MR, m = N - n < GEMM_MR ? N - n : GEMM_MR;
                int p1 = (g + 1) * pg < np ? (g + 1) * pg : np;
                for (int p = g * pg; p < p1; p++) {
                    const float *pp = pk + (size_t)p * psz;
                    int o = p * GEMM_NR;
                    switch (m) {
                    case 6: gemm_tile(rs, pp, IC, o, OC, n, 6); break;
                    case 5: gemm_tile(rs, pp, IC, o, OC, n, 5); break;
                    case 4: gemm_tile(rs, pp, IC, o, OC, n, 4); break;
                    case 3: gemm_tile(rs, pp, IC, o, OC, n, 3); break;
                    case 2: gemm_tile(rs, pp, IC, o, OC, n, 2); break;
                    default: gemm_tile(rs, pp, IC, o, OC, n, 1); break;
                    }
                }
            }
    }
}
#else
/* Portable version: one chain per element as well, without packing. */
static void gemm_rows(const rowset *rs, const float *w, float *pk, int N, int IC, int OC)
{
    (void)pk;
#pragma omp parallel for schedule(static)
    for (int n = 0; n < N; n++) {
        size_t r = row_of(rs, n);
        const float *x = rs->in + r * rs->ldi;
        float *out = rs->out + r * rs->ldo;
        for (int o = 0; o < OC; o++) {
            const float *wr = w + (size_t)o * IC;
            float acc = 0.0f;
            for (int k = 0; k < IC; k++)
                acc += x[k] * wr[k];
            out[o] = acc;
        }
    }
}
#endif

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
        llm_mul_size(n, sizeof(float), &n) || !(s->kv = llm_alloc64(n)) ||
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
    free(s->keep);
    free(s->tok);
    free(s->att);
    free(s->wpack);
    free(s);
}

const llm_model *llm_session_model(const llm_session *s)
{
    return s->m;
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

int llm_session_copy(llm_session *s, int dst, int src)
{
    if (dst < 0 || dst >= s->n_seq || src < 0 || src >= s->n_seq)
        return llm_fail(LLM_ERR_RANGE, "sequence %d or %d out of range [0, %d)", dst, src,
                        s->n_seq);
    if (dst == src)
        return LLM_OK;
    size_t n = (size_t)s->len[src] * s->KVD * sizeof(float);
    for (int l = 0; l < s->m->cfg.n_layers; l++)
        for (int w = 0; w < 2; w++)
            memcpy(kv_at(s, dst, l, w), kv_at(s, src, l, w), n);
    s->len[dst] = s->len[src];
    return LLM_OK;
}

static int grow(llm_session *s, int rows)
{
    int threads = omp_get_max_threads();
    if (threads > s->att_threads) {
        free(s->att);
        s->att_threads = 0;
        s->att = llm_alloc64((size_t)threads * s->n_ctx * sizeof *s->att);
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
        ok &= (*f[i].p = llm_alloc64(f[i].n * sizeof(float))) != NULL;
    }
    free(s->rseq);
    free(s->rpos);
    free(s->keep);
    free(s->tok);
    ok &= (s->rseq = malloc(R * sizeof *s->rseq)) != NULL;
    ok &= (s->rpos = malloc(R * sizeof *s->rpos)) != NULL;
    ok &= (s->keep = malloc(R * sizeof *s->keep)) != NULL;
    ok &= (s->tok = malloc(R * sizeof *s->tok)) != NULL;
    if (!ok)
        return llm_fail(LLM_ERR_NOMEM, "out of memory for %d rows of activations", rows);
    s->rows = rows;
    return LLM_OK;
}

/* Room for gemm_rows()' packed copy of any of the layers' weights. */
static int gemm_reserve(llm_session *s)
{
    if (s->wpack)
        return LLM_OK;
    const llm_model *m = s->m;
    int C = m->cfg.dim, F = m->cfg.ffn_dim;
    size_t n = gemm_pack_size(C, m->QS), t;
    if ((t = gemm_pack_size(m->OS, C)) > n)
        n = t;
    if ((t = gemm_pack_size(C, 2 * F)) > n)
        n = t;
    if ((t = gemm_pack_size(F, C)) > n)
        n = t;
    if (!(s->wpack = malloc(n * sizeof *s->wpack)))
        return llm_fail(LLM_ERR_NOMEM, "out of memory");
    return LLM_OK;
}

/* Attention's two inner loops, in an order fixed by hd alone. scores():
 * a[t] = q . K[t] for the n keys K + t * stride: 8 lanes accumulated by
 * FMA over j = 0, 8, ... (while j + 8 <= hd), the lanes summed in hsum8's
 * tree, then the tail j in order; four keys go together, each as alone.
 * mix(): o = sum over t = 0 .. n-1 in order of a[t] * V[t], one FMA per
 * element and step, with up to 64 elements of o held in registers. */
#if defined(__AVX2__) && defined(__FMA__)
static void scores(float *a, const float *q, const float *K, size_t stride, int n, int hd)
{
    int H8 = hd & ~7, t = 0;
    for (; t + 4 <= n; t += 4) {
        const float *k0 = K + (size_t)t * stride, *k1 = k0 + stride, *k2 = k1 + stride,
                    *k3 = k2 + stride;
        __m256 s0 = _mm256_setzero_ps(), s1 = s0, s2 = s0, s3 = s0;
        for (int j = 0; j < H8; j += 8) {
            __m256 x = _mm256_loadu_ps(q + j);
            s0 = _mm256_fmadd_ps(x, _mm256_loadu_ps(k0 + j), s0);
            s1 = _mm256_fmadd_ps(x, _mm256_loadu_ps(k1 + j), s1);
            s2 = _mm256_fmadd_ps(x, _mm256_loadu_ps(k2 + j), s2);
            s3 = _mm256_fmadd_ps(x, _mm256_loadu_ps(k3 + j), s3);
        }
        _mm_storeu_ps(a + t, hsum8x4(s0, s1, s2, s3));
        for (int j = H8; j < hd; j++) {
            a[t] += q[j] * k0[j];
            a[t + 1] += q[j] * k1[j];
            a[t + 2] += q[j] * k2[j];
            a[t + 3] += q[j] * k3[j];
        }
    }
    for (; t < n; t++) {
        const float *k = K + (size_t)t * stride;
        __m256 s0 = _mm256_setzero_ps();
        for (int j = 0; j < H8; j += 8)
            s0 = _mm256_fmadd_ps(_mm256_loadu_ps(q + j), _mm256_loadu_ps(k + j), s0);
        a[t] = hsum8(s0);
        for (int j = H8; j < hd; j++)
            a[t] += q[j] * k[j];
    }
}

static void mix(float *o, const float *a, const float *V, size_t stride, int n, int hd)
{
    int j0 = 0;
    for (; j0 + 64 <= hd; j0 += 64) {
        __m256 v[8];
#pragma GCC unroll 8
        for (int u = 0; u < 8; u++)
            v[u] = _mm256_setzero_ps();
        for (int t = 0; t < n; t++) {
            const float *x = V + (size_t)t * stride + j0;
            __m256 w = _mm256_set1_ps(a[t]);
#pragma GCC unroll 8
            for (int u = 0; u < 8; u++)
                v[u] = _mm256_fmadd_ps(w, _mm256_loadu_ps(x + 8 * u), v[u]);
        }
#pragma GCC unroll 8
        for (int u = 0; u < 8; u++)
            _mm256_storeu_ps(o + j0 + 8 * u, v[u]);
    }
    for (; j0 + 8 <= hd; j0 += 8) {
        __m256 v = _mm256_setzero_ps();
        for (int t = 0; t < n; t++)
            v = _mm256_fmadd_ps(_mm256_set1_ps(a[t]),
                                _mm256_loadu_ps(V + (size_t)t * stride + j0), v);
        _mm256_storeu_ps(o + j0, v);
    }
    for (; j0 < hd; j0++) {
        float v = 0.0f;
        for (int t = 0; t < n; t++)
            v = fmaf(a[t], V[(size_t)t * stride + j0], v);
        o[j0] = v;
    }
}
#else
static void scores(float *a, const float *q, const float *K, size_t stride, int n, int hd)
{
    int H8 = hd & ~7;
    for (int t = 0; t < n; t++) {
        const float *k = K + (size_t)t * stride;
        float l[8] = { 0 };
        for (int j = 0; j < H8; j += 8)
            for (int u = 0; u < 8; u++)
                l[u] = fmaf(q[j + u], k[j + u], l[u]);
        float d = ((l[0] + l[4]) + (l[2] + l[6])) + ((l[1] + l[5]) + (l[3] + l[7]));
        for (int j = H8; j < hd; j++)
            d += q[j] * k[j];
        a[t] = d;
    }
}

static void mix(float *o, const float *a, const float *V, size_t stride, int n, int hd)
{
    for (int j = 0; j < hd; j++) {
        float v = 0.0f;
        for (int t = 0; t < n; t++)
            v = fmaf(a[t], V[(size_t)t * stride + j], v);
        o[j] = v;
    }
}
#endif

/* Causal attention of n rows against their own sequences' keys and
 * values, which already hold each row's own: row i of out(n, OS) = for the
 * query row rows[i] of qkv (rows NULL: i). Keys and values come from the
 * cache, or in a packed forward from the sequence's own rows of qkv. One
 * task per (row, head); each task's arithmetic is independent of the
 * others. */
static void attend(llm_session *s, int l, int n, const int *rows)
{
    const llm_model *m = s->m;
    const llm_config *c = &m->cfg;
    int H = c->n_heads, hd = m->hd, rep = H / c->n_kv_heads;
    float scale = 1.0f / sqrtf((float)hd);
    /* Tasks differ in length (positions): taken dynamically, a few at a
     * time once there are many. */
    int chunk = n * H / (8 * omp_get_max_threads());
    chunk = chunk < 1 ? 1 : chunk;
#pragma omp parallel for schedule(dynamic, chunk)
    for (int task = 0; task < n * H; task++) {
        int i = task / H, h = task % H, kh = h / rep;
        int r = rows ? rows[i] : i, p = s->rpos[r], seq = s->rseq[r];
        const float *q = s->qkv + (size_t)r * m->QS + (size_t)h * hd;
        const float *K, *V;
        size_t stride;
        if (s->start) {
            K = s->qkv + (size_t)s->start[seq] * m->QS + (size_t)(H + kh) * hd;
            V = K + s->KVD;
            stride = (size_t)m->QS;
        } else {
            K = kv_at(s, seq, l, 0) + (size_t)kh * hd;
            V = kv_at(s, seq, l, 1) + (size_t)kh * hd;
            stride = (size_t)s->KVD;
        }
        float *a = s->att + (size_t)omp_get_thread_num() * s->n_ctx;
        scores(a, q, K, stride, p + 1, hd);
        float mx = -INFINITY;
        for (int t = 0; t <= p; t++) {
            a[t] *= scale;
            mx = a[t] > mx ? a[t] : mx;
        }
        float sum = 0.0f;
#pragma omp simd reduction(+:sum)
        for (int t = 0; t <= p; t++) {
            a[t] = fast_expf(a[t] - mx);
            sum += a[t];
        }
        float inv = 1.0f / sum;
        for (int t = 0; t <= p; t++)
            a[t] *= inv;
        mix(s->atty + (size_t)i * m->OS + (size_t)h * hd, a, V, stride, p + 1, hd);
    }
}

/* The forward of N rows whose tokens, sequences and positions are in
 * tokens / s->rseq / s->rpos. Every row's keys and values go through every
 * layer (into the cache unless packed); past the last layer's, only the n
 * rows keep[0..n) (increasing; NULL: all N, n == N) go on, and their final
 * RMSNorm'd hidden states end in s->xb (n, C). Matrix products by `mm`. */
enum { MM_KERNEL, MM_SKINNY, MM_SKINNY_F32, MM_GEMM };
/* Prompts up to this many tokens are prefilled by row products. */
#define PREFILL_SKINNY 32

/* rows of rs (N of them) times w(OC, IC)^T by the method `mm`, where w
 * starts at element `at` of the floats f, or for a decoding step of their
 * half copies h when llm_model_decode_f16() made them (else h is NULL). */
static void product(llm_session *s, int mm, const rowset *rs, const float *f,
                    const uint16_t *h, size_t at, int N, int IC, int OC)
{
    if (mm == MM_GEMM)
        gemm_rows(rs, f + at, s->wpack, N, IC, OC);
    else if (mm == MM_SKINNY && h)
        skinny_rows(rs, h + at, 1, N, IC, OC);
    else if (mm == MM_SKINNY || mm == MM_SKINNY_F32)
        skinny_rows(rs, f + at, 0, N, IC, OC);
    else   /* contiguous rows only */
        s->m->k->matmul_forward(rs->out, rs->in, f + at, N, IC, OC);
}

static void matmul(llm_session *s, int mm, float *out, const float *inp, const float *f,
                   const uint16_t *h, size_t at, int N, int IC, int OC)
{
    rowset rs = { inp, out, (size_t)IC, (size_t)OC, NULL };
    product(s, mm, &rs, f, h, at, N, IC, OC);
}

static void forward(llm_session *s, const int32_t *tokens, int N, const int *keep,
                    int n, int mm)
{
    const llm_model *m = s->m;
    const llm_config *c = &m->cfg;
    const llm_kernels *k = m->k;
    int C = c->dim, F = c->ffn_dim, H = c->n_heads, KVH = c->n_kv_heads, hd = m->hd;
    int QS = m->QS, OS = m->OS, h2 = hd / 2, KVD = s->KVD;
    float eps = (float)c->norm_eps;

    for (int r = 0; r < N; r++) {
        memcpy(s->rcos + (size_t)r * h2, m->rope_cos + (size_t)s->rpos[r] * h2,
               (size_t)h2 * sizeof(float));
        memcpy(s->rsin + (size_t)r * h2, m->rope_sin + (size_t)s->rpos[r] * h2,
               (size_t)h2 * sizeof(float));
    }
    k->embedding_forward(s->x, tokens, m->wte, N, C);
    int rows = N;   /* rows going on: N, then n in the last layer */
    for (int l = 0; l < c->n_layers; l++) {
        k->rmsnorm_forward(s->xb, s->rstd, s->x, m->attn_norm + (size_t)l * C, rows, C, eps);
        size_t wqkv = (size_t)l * QS * C;   /* layer l's rows of m->wqkv */
        int last = l == c->n_layers - 1 && keep;
        if (last && mm != MM_KERNEL && n < rows) {
            /* Keys and values of every row, queries of the kept rows only;
             * each row rotated by its own position. */
            size_t qd = (size_t)H * hd;
            rowset kv = { s->xb, s->qkv + qd, (size_t)C, (size_t)QS, NULL };
            rowset q = { s->xb, s->qkv, (size_t)C, (size_t)QS, keep };
            product(s, mm, &kv, m->wqkv, m->h_wqkv, wqkv + qd * C, rows, C, 2 * KVD);
            product(s, mm, &q, m->wqkv, m->h_wqkv, wqkv, n, C, (int)qd);
            k->rope_forward(s->qkv + qd, s->rcos, s->rsin, 1, rows, KVH, hd, QS);
            for (int i = 0; i < n; i++)
                k->rope_forward(s->qkv + (size_t)keep[i] * QS, s->rcos + (size_t)keep[i] * h2,
                                s->rsin + (size_t)keep[i] * h2, 1, 1, H, hd, QS);
        } else {
            matmul(s, mm, s->qkv, s->xb, m->wqkv, m->h_wqkv, wqkv, rows, C, QS);
            /* The gathered tables make row r rotate by its own position. */
            k->rope_forward(s->qkv, s->rcos, s->rsin, 1, rows, H + KVH, hd, QS);
        }
        for (int r = 0; !s->start && r < rows; r++) {
            const float *row = s->qkv + (size_t)r * QS + (size_t)H * hd;
            size_t at = (size_t)s->rpos[r] * KVD;
            memcpy(kv_at(s, s->rseq[r], l, 0) + at, row, (size_t)KVD * sizeof(float));
            memcpy(kv_at(s, s->rseq[r], l, 1) + at, row + KVD, (size_t)KVD * sizeof(float));
        }
        const int *qrows = NULL;
        if (last) {
            /* Only the kept rows' queries and residuals go on. */
            for (int i = 0; i < n; i++)
                if (keep[i] != i)
                    memmove(s->x + (size_t)i * C, s->x + (size_t)keep[i] * C,
                            (size_t)C * sizeof(float));
            qrows = keep;
            rows = n;
        }
        attend(s, l, rows, qrows);
        matmul(s, mm, s->xb, s->atty, m->wo, m->h_wo, (size_t)l * C * OS, rows, OS, C);
        k->residual_forward(s->x, s->x, s->xb, (size_t)rows * C);
        k->rmsnorm_forward(s->xb, s->rstd, s->x, m->ffn_norm + (size_t)l * C, rows, C, eps);
        matmul(s, mm, s->h13, s->xb, m->w13, m->h_w13, (size_t)l * 2 * F * C, rows, C, 2 * F);
        k->swiglu_forward(s->hsw, s->h13, rows, F);
        matmul(s, mm, s->xb, s->hsw, m->w2, m->h_w2, (size_t)l * C * F, rows, F, C);
        k->residual_forward(s->x, s->x, s->xb, (size_t)rows * C);
    }
    k->rmsnorm_forward(s->xb, s->rstd, s->x, m->norm, rows, C, eps);
}

/* Logits (n, V) of the n rows in s->xb: a few rows against the whole
 * vocabulary, by skinny_rows() on the CPU; from the half copy of the
 * output weights when `h` and there is one. */
static void output(llm_session *s, int n, float *logits, int h)
{
    const llm_model *m = s->m;
    matmul(s, s->skinny ? MM_SKINNY : MM_KERNEL, logits, s->xb, m->wout,
           h ? m->h_wout : NULL, 0, n, m->cfg.dim, m->cfg.vocab_size);
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
    s->keep[0] = n - 1;
    /* A short prompt costs sgemm more in packing the weights than in
     * arithmetic: then the steps' row products (over fp32 weights). */
    forward(s, tokens, n, s->keep, 1, s->skinny && n <= PREFILL_SKINNY ? MM_SKINNY_F32
                                                                        : MM_KERNEL);
    if (logits)
        output(s, 1, logits, 0);
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
    forward(s, tokens, n, NULL, n, s->skinny ? MM_SKINNY : MM_KERNEL);
    output(s, n, logits, 1);
    for (int r = 0; r < n; r++)
        s->len[seqs[r]]++;
    return LLM_OK;
}

int llm_check_docs(const llm_model *m, const int32_t *const *docs, const size_t *lens,
                   size_t n)
{
    int ctx = m->cfg.context, V = m->cfg.vocab_size;
    for (size_t d = 0; d < n; d++) {
        if (lens[d] < 1 || lens[d] > (size_t)ctx)
            return llm_fail(LLM_ERR_INVALID, "document %zu has %zu tokens, not 1 to the "
                            "context (%d)", d, lens[d], ctx);
        for (size_t t = 0; t < lens[d]; t++)
            if (docs[d][t] < 0 || docs[d][t] >= V)
                return llm_fail(LLM_ERR_RANGE, "token %d at index %zu of document %zu is "
                                "outside the vocabulary [0, %d)", docs[d][t], t, d, V);
    }
    return LLM_OK;
}

int llm_session_pooled(llm_session *s, const int32_t *const *docs, const size_t *lens,
                       int nd, int pooling, float *pooled)
{
    int C = s->m->cfg.dim;
    if (nd < 1)
        return llm_fail(LLM_ERR_INVALID, "a packed forward needs at least one document");
    int rc = llm_check_docs(s->m, docs, lens, (size_t)nd);
    if (rc)
        return rc;
    size_t N = 0;
    for (int d = 0; d < nd; d++)
        N += lens[d];
    if (N > INT32_MAX / 2)
        return llm_fail(LLM_ERR_INVALID, "%zu tokens are too many for one forward", N);
    int *start = malloc((size_t)nd * sizeof *start);
    rc = start ? grow(s, (int)N) : llm_fail(LLM_ERR_NOMEM, "out of memory");
    if (!rc && s->skinny)
        rc = gemm_reserve(s);
    if (rc) {
        free(start);
        return rc;
    }
    int r = 0;
    for (int d = 0; d < nd; d++) {
        start[d] = r;
        for (size_t t = 0; t < lens[d]; t++, r++) {
            s->tok[r] = docs[d][t];
            s->rseq[r] = d;
            s->rpos[r] = (int)t;
        }
        s->keep[d] = r - 1;
    }
    int last = pooling == LLM_POOL_LAST;
    s->start = start;
    forward(s, s->tok, (int)N, last ? s->keep : NULL, last ? nd : (int)N,
            s->skinny ? MM_GEMM : MM_KERNEL);
    s->start = NULL;
    for (int d = 0; d < nd; d++) {
        float *p = pooled + (size_t)d * C;
        if (last) {
            memcpy(p, s->xb + (size_t)d * C, (size_t)C * sizeof *p);
            continue;
        }
        const float *h = s->xb + (size_t)start[d] * C;
        for (int j = 0; j < C; j++) {
            double sum = 0;
            for (size_t t = 0; t < lens[d]; t++)
                sum += h[t * C + j];
            p[j] = (float)(sum / (double)lens[d]);
        }
    }
    free(start);
    return LLM_OK;
}

/* ------------------------------------------------------------ f16 */

int llm_model_decode_f16(llm_model *m)
{
    if (m->h_wqkv)
        return LLM_OK;
    if (strcmp(m->k->name, "cpu") != 0)
        return llm_fail(LLM_ERR_INVALID, "half-precision decoding is for the CPU, not '%s'",
                        m->k->name);
    const llm_config *c = &m->cfg;
    size_t L = (size_t)c->n_layers, C = (size_t)c->dim, F = (size_t)c->ffn_dim;
    struct { const char *name; const float *f; size_t n; uint16_t **h; } t[] = {
        { "wqkv", m->wqkv, L * m->QS * C, &m->h_wqkv },
        { "wo", m->wo, L * C * m->OS, &m->h_wo },
        { "w13", m->w13, L * 2 * F * C, &m->h_w13 },
        { "w2", m->w2, L * C * F, &m->h_w2 },
        { "output", m->wout, (size_t)c->vocab_size * C, &m->h_wout },
    };
    size_t total = 0;
    for (size_t i = 0; i < sizeof t / sizeof t[0]; i++)
        total += t[i].n;
    uint16_t *block = llm_alloc_big(total * sizeof *block, 0);
    if (!block)
        return llm_fail(LLM_ERR_NOMEM, "out of memory for half-precision weights (%zu MB)",
                        (total * sizeof *block) >> 20);
    uint16_t *h = block;
    for (size_t i = 0; i < sizeof t / sizeof t[0]; h += t[i].n, i++) {
        const float *f = t[i].f;
        size_t n = t[i].n, bad = SIZE_MAX;
        /* Blocks of 8 (F16C rounds as llm_float_to_half() does: test_infer). */
#pragma omp parallel for schedule(static) reduction(min:bad)
        for (size_t b = 0; b < (n + 7) / 8; b++) {
            size_t j = 8 * b, e = j + 8 < n ? j + 8 : n;
#if defined(__F16C__)
            if (e - j == 8) {
                _mm_storeu_si128((__m128i *)(h + j),
                                 _mm256_cvtps_ph(_mm256_loadu_ps(f + j),
                                                 _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC));
            } else
#endif
                for (size_t q = j; q < e; q++)
                    h[q] = llm_float_to_half(f[q]);
            for (size_t q = j; q < e; q++)
                if ((h[q] & 0x7c00u) == 0x7c00u && q < bad)
                    bad = q;
        }
        if (bad != SIZE_MAX) {
            free(block);
            return llm_fail(LLM_ERR_RANGE, "weight %s[%zu] = %g is outside half precision's "
                            "range (magnitude 65504)", t[i].name, bad, (double)f[bad]);
        }
    }
    h = block;
    for (size_t i = 0; i < sizeof t / sizeof t[0]; h += t[i].n, i++)
        *t[i].h = h;
    return LLM_OK;
}
