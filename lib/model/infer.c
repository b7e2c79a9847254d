/* infer.c: generation with a key/value cache. A session holds, for up to
 * n_seq sequences, the rotated keys and the values of every layer at every
 * position seen, so that each new token costs one pass over the weights
 * instead of a recompute of the whole sequence.
 *
 * Three entry points, chosen so that results never depend on batching:
 *  - prefill: the tokens of ONE sequence in one forward, matrix-matrix
 *    through the kernel table's matmul_forward (sgemm on the CPU; a whole
 *    prompt from position 0 attends by its attention_forward then), or for
 *    a short prompt its matmul_rows;
 *  - step: one token for each of n sequences together. Its matrix products
 *    go through the table's matmul_rows, which reads every weight row once
 *    for all n rows (decode is bound by memory bandwidth) and computes each
 *    output element in the same order whatever n and the thread count, so
 *    that a sequence decoded alongside 31 others gets the same bits as alone;
 *  - pooled (classification): whole documents packed as rows with nothing
 *    cached, computing past the last layer's keys and values only the rows
 *    that pooling reads. Many rows per product: the table's
 *    matmul_rows_packed, whose order of summation is again the same for
 *    any batch and threads.
 * Everything else (norms, RoPE, SwiGLU, residuals, attention) is per row. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "internal.h"
#include "kernels.h"
#include "model.h"

/* The float and int32 blocks live in the memory of the model's table
 * (device memory, reached through the table only); the bookkeeping (which
 * row is which sequence and position, what attention reads) on the host. */
struct llm_session {
    const llm_model *m;
    int n_seq, n_ctx;
    int KVD;              /* KVH * hd: one key (or value) row */
    void *kv;             /* (n_seq, n_ctx, L, 2, KVD): by position, keys then values */
    size_t kvs;           /* L * 2 * KVD: elements from a position to the next */
    int bf16;             /* attention in bf16 (attention_rows_bf16): kv holds bf16 bits */
    size_t esz;           /* bytes of an element of kv */
    int *len;             /* host: (n_seq) positions held */

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
    int32_t *tok;         /* (rows) tokens of the forward under way */
    int32_t *pos;         /* (rows) rpos, for the gather of rcos and rsin */
    int *rseq, *rpos;     /* host: (rows) sequence and position of each row */
    int *keep;            /* host: (rows) rows that go past the last layer's cache */
    int32_t *htok;        /* host: (rows) tokens of a packed forward */
    float *logits;        /* (logits_rows, V) of a step */
    int logits_rows;
    /* A packed forward (llm_session_pooled()) caches nothing: sequence d's
     * keys and values are its own rows of qkv, from row start[d] on. */
    const int *start;     /* host; NULL: keys and values in the cache */
    const float **aq, **ak, **av;   /* host: (rows) attention's query, keys, values */
    float **kd, **vd;     /* host: (rows) where each row's key and value go */
    const uint16_t **bk, **bv;      /* host: (rows) the same two in bf16 */
    uint16_t **bkd, **bvd;
    uint16_t *pkv;        /* (2, rows, KVD) a packed forward's keys, then values, in bf16 */
    int *alen;            /* host: (rows) and number of keys */
    float *att;           /* (threads, 2 n_ctx + hd) attention's scratch */
    int att_threads;
    float *whole;         /* whole()'s attention_forward: what it keeps, then its */
    size_t whole_n;       /* scratch; floats */
    int mm;               /* how the forward under way computes its products */
    float *wpack;         /* matmul_rows_packed's scratch, for any product */
    llm_lpx lpx;          /* (rows) inputs of int8 or bf16 products (lowp.c) */
};

/* ------------------------------------------------------------ session */

/* The keys (which 0) or values (1) of layer l of sequence seq at its
 * position 0; position p's are p * kvs elements on. A sequence's
 * positions follow one another, each with every layer's keys and values,
 * so that the memory a sequence uses is one block from its start: a
 * session touches the pages its sequences fill, and a step's attention
 * reads few pages of each. */
static void *kv_at(const llm_session *s, int seq, int l, int which)
{
    size_t at = (size_t)seq * s->n_ctx * s->kvs + ((size_t)l * 2 + which) * s->KVD;
    return (char *)s->kv + at * s->esz;
}

/* A session of n_seq sequences, with their key/value cache when `cache`.
 * Attention is in bf16 when the model computes with bf16 copies of its
 * weights (llm_model_weights_bf16(), before the session) and the table can
 * (attention_rows_bf16), as the evaluation forward's then is (pass.c):
 * keys and values are rounded as they are stored, in the cache (half the
 * bytes) or for a packed forward in pkv. */
static int session_new(const llm_model *m, int n_seq, int cache, llm_session **out)
{
    *out = NULL;
    if (!m->k->matmul_rows || !m->k->attention_rows || !m->k->copy_rows)
        return llm_fail(LLM_ERR_UNSUPPORTED, "the '%s' kernels cannot run a key/value "
                        "cache yet", m->k->name);
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
    s->kvs = (size_t)c->n_layers * 2 * s->KVD;
    s->bf16 = m->lp == LLM_LP_BF16 && m->k->attention_rows_bf16 && m->k->copy_rows_bf16;
    s->esz = s->bf16 ? sizeof(uint16_t) : sizeof(float);
    size_t n;
    /* Pages of the cache are touched only as positions fill. */
    if (llm_mul_size((size_t)n_seq * c->n_layers * 2, (size_t)s->n_ctx * s->KVD, &n) ||
        llm_mul_size(n, s->esz, &n) || (cache && !(s->kv = m->k->alloc(n))) ||
        !(s->len = calloc((size_t)n_seq, sizeof *s->len))) {
        llm_session_free(s);
        return llm_fail(LLM_ERR_NOMEM, "out of memory for a key/value cache of %d "
                        "sequences x %d positions", n_seq, c->context);
    }
    *out = s;
    return LLM_OK;
}

int llm_session_new(const llm_model *m, int n_seq, llm_session **out)
{
    return session_new(m, n_seq, 1, out);
}

int llm_session_new_packed(const llm_model *m, llm_session **out)
{
    return session_new(m, 1, 0, out);
}

/* The host arrays of the rows, grown with them. */
static void free_rows(llm_session *s)
{
    free(s->rseq);
    free(s->rpos);
    free(s->keep);
    free(s->htok);
    free(s->aq);
    free(s->ak);
    free(s->av);
    free(s->kd);
    free(s->vd);
    free(s->bk);
    free(s->bv);
    free(s->bkd);
    free(s->bvd);
    free(s->alen);
}

void llm_session_free(llm_session *s)
{
    if (!s)
        return;
    const llm_kernels *k = s->m->k;
    void *dev[] = { s->kv, s->x, s->xb, s->qkv, s->atty, s->h13, s->hsw, s->rstd, s->rcos,
                     s->rsin, s->logits, s->att, s->whole, s->wpack };
    for (size_t i = 0; i < sizeof dev / sizeof dev[0]; i++)
        k->free(dev[i]);
    k->free(s->tok);
    k->free(s->pos);
    k->free(s->pkv);
    llm_lpx_free(s->m, &s->lpx);
    free(s->len);
    free_rows(s);
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
    if (s->len[src])
        s->m->k->copy(kv_at(s, dst, 0, 0), kv_at(s, src, 0, 0),
                      (size_t)s->len[src] * s->kvs * s->esz);
    s->len[dst] = s->len[src];
    return LLM_OK;
}

static int grow(llm_session *s, int rows)
{
    const llm_kernels *k = s->m->k;
    int threads = llm_kernels_threads();
    if (threads > s->att_threads) {
        k->free(s->att);
        s->att_threads = 0;
        /* attention_rows_bf16's, which is the larger */
        s->att = k->alloc((size_t)threads * (2 * (size_t)s->n_ctx + s->m->hd) * sizeof *s->att);
        if (!s->att)
            return llm_fail(LLM_ERR_NOMEM, "out of memory");
        s->att_threads = threads;
    }
    if (s->m->lp_wqkv.q && llm_lpx_reserve(s->m, &s->lpx, (size_t)rows))
        return LLM_ERR_NOMEM;
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
        k->free(*f[i].p);
        ok &= (*f[i].p = k->alloc(f[i].n * sizeof(float))) != NULL;
    }
    k->free(s->tok);
    k->free(s->pos);
    ok &= (s->tok = k->alloc(R * sizeof *s->tok)) != NULL;
    ok &= (s->pos = k->alloc(R * sizeof *s->pos)) != NULL;
    k->free(s->pkv);
    s->pkv = NULL;
    if (s->bf16 && !s->kv)
        ok &= (s->pkv = k->alloc(2 * R * s->KVD * sizeof *s->pkv)) != NULL;
    free_rows(s);
    ok &= (s->aq = malloc(R * sizeof *s->aq)) != NULL;
    ok &= (s->ak = malloc(R * sizeof *s->ak)) != NULL;
    ok &= (s->av = malloc(R * sizeof *s->av)) != NULL;
    ok &= (s->kd = malloc(R * sizeof *s->kd)) != NULL;
    ok &= (s->vd = malloc(R * sizeof *s->vd)) != NULL;
    ok &= (s->bk = malloc(R * sizeof *s->bk)) != NULL;
    ok &= (s->bv = malloc(R * sizeof *s->bv)) != NULL;
    ok &= (s->bkd = malloc(R * sizeof *s->bkd)) != NULL;
    ok &= (s->bvd = malloc(R * sizeof *s->bvd)) != NULL;
    ok &= (s->alen = malloc(R * sizeof *s->alen)) != NULL;
    ok &= (s->rseq = malloc(R * sizeof *s->rseq)) != NULL;
    ok &= (s->rpos = malloc(R * sizeof *s->rpos)) != NULL;
    ok &= (s->keep = malloc(R * sizeof *s->keep)) != NULL;
    ok &= (s->htok = malloc(R * sizeof *s->htok)) != NULL;
    if (!ok)
        return llm_fail(LLM_ERR_NOMEM, "out of memory for %d rows of activations", rows);
    s->rows = rows;
    return LLM_OK;
}

/* Room for matmul_rows_packed's scratch for any of the layers' weights. */
static int packed_reserve(llm_session *s)
{
    if (s->wpack)
        return LLM_OK;
    const llm_model *m = s->m;
    size_t (*size)(int, int) = m->k->matmul_rows_scratch;
    int C = m->cfg.dim, F = m->cfg.ffn_dim;
    size_t n = size(C, m->QS), t;
    if ((t = size(m->OS, C)) > n)
        n = t;
    if ((t = size(C, 2 * F)) > n)
        n = t;
    if ((t = size(F, C)) > n)
        n = t;
    if (!(s->wpack = m->k->alloc((n ? n : 1) * sizeof *s->wpack)))
        return llm_fail(LLM_ERR_NOMEM, "out of memory");
    return LLM_OK;
}

/* Causal attention of n rows against their own sequences' keys and
 * values, which already hold each row's own: row i of out(n, OS) = for the
 * query row rows[i] of qkv (rows NULL: first + i, out from atty's row
 * first on). Keys and values come from the cache, or in a packed forward
 * from the sequence's own rows of qkv (fp32) or of pkv (bf16). */
static void attend(llm_session *s, int l, int n, const int *rows, int first)
{
    const llm_model *m = s->m;
    const llm_config *c = &m->cfg;
    int H = c->n_heads, hd = m->hd, KVD = s->KVD;
    size_t stride = !s->start ? s->kvs : s->bf16 ? (size_t)KVD : (size_t)m->QS;
    float *out = s->atty + (size_t)first * m->OS;
    for (int i = 0; i < n; i++) {
        int r = rows ? rows[i] : first + i, seq = s->rseq[r];
        s->aq[i] = s->qkv + (size_t)r * m->QS;
        if (s->start && s->bf16) {
            s->bk[i] = s->pkv + (size_t)s->start[seq] * KVD;
            s->bv[i] = s->bk[i] + (size_t)s->rows * KVD;
        } else if (s->start) {
            s->ak[i] = s->qkv + (size_t)s->start[seq] * m->QS + (size_t)H * hd;
            s->av[i] = s->ak[i] + KVD;
        } else if (s->bf16) {
            s->bk[i] = kv_at(s, seq, l, 0);
            s->bv[i] = kv_at(s, seq, l, 1);
        } else {
            s->ak[i] = kv_at(s, seq, l, 0);
            s->av[i] = kv_at(s, seq, l, 1);
        }
        s->alen[i] = s->rpos[r] + 1;
    }
    if (s->bf16)
        m->k->attention_rows_bf16(out, (size_t)m->OS, s->aq, s->bk, s->bv, stride, s->alen, n, H,
                                  c->n_kv_heads, hd, s->att, s->n_ctx);
    else
        m->k->attention_rows(out, (size_t)m->OS, s->aq, s->ak, s->av, stride, s->alen, n, H,
                             c->n_kv_heads, hd, s->att, s->n_ctx);
}

/* How a forward computes its products: the table's matmul_forward
 * (contiguous rows only), its matmul_rows over the half copies when there
 * are any (decoding steps) or over the floats, or matmul_rows_packed; all
 * of them in int8 or bf16 instead once the model has such copies. */
enum { MM_KERNEL, MM_ROWS, MM_ROWS_F32, MM_PACKED };
/* Prompts up to this many tokens are prefilled by row products. */
#define PREFILL_ROWS 32

/* Rows map[0..N) (map NULL: 0..N-1) of inp (IC floats apart) times
 * w(OC, IC)^T into the same rows of out (ldo floats apart), by the method
 * `mm`, where w starts at element `at` of the floats f, or for a decoding
 * step of their half copies h when llm_model_decode_f16() made them (else
 * h is NULL); or of the int8 or bf16 copies q whatever `mm`, when
 * llm_model_quantize_q8() or llm_model_weights_bf16() made them (q->q not
 * NULL). */
static void product(llm_session *s, int mm, float *out, size_t ldo, const float *inp,
                    size_t ldi, const int *map, const float *f, const uint16_t *h,
                    const llm_lpw *q, size_t at, int N, int IC, int OC)
{
    const llm_kernels *k = s->m->k;
    if (q->q)
        llm_lp_product(s->m, &s->lpx, out, ldo, inp, ldi, map, q, at / (size_t)IC, N, IC, OC);
    else if (mm == MM_PACKED)
        k->matmul_rows_packed(out, ldo, inp, ldi, map, f + at, s->wpack, N, IC, OC);
    else if (mm == MM_ROWS && h)
        k->matmul_rows(out, ldo, inp, ldi, map, h + at, 1, N, IC, OC);
    else if (mm == MM_ROWS || mm == MM_ROWS_F32)
        k->matmul_rows(out, ldo, inp, ldi, map, f + at, 0, N, IC, OC);
    else   /* contiguous rows only */
        k->matmul_forward(out, inp, f + at, N, IC, OC);
}

static void matmul(llm_session *s, int mm, float *out, const float *inp, const float *f,
                   const uint16_t *h, const llm_lpw *q, size_t at, int N, int IC, int OC)
{
    product(s, mm, out, (size_t)OC, inp, (size_t)IC, NULL, f, h, q, at, N, IC, OC);
}

/* The block's hooks in a session (ctx: the session, whose `mm` says how
 * products go): products by `mm`; RoPE by the positions gathered into
 * rcos / rsin; attention after storing the rows' keys and values in the
 * cache (unless packed). */
static void session_product(void *ctx, int w, int l, int o0, int OC, float *out, size_t ldo,
                            const float *inp, size_t ldi, const int *map, int N)
{
    llm_session *s = ctx;
    const llm_model *m = s->m;
    size_t C = (size_t)m->cfg.dim, F = (size_t)m->cfg.ffn_dim;
    const float *f;
    const uint16_t *h;
    const llm_lpw *q;
    size_t at;
    int IC;
    switch (w) {
    case LLM_W_QKV: f = m->wqkv; h = m->h_wqkv; q = &m->lp_wqkv; at = (size_t)l * m->QS * C;
                    IC = (int)C; break;
    case LLM_W_O:   f = m->wo;   h = m->h_wo;   q = &m->lp_wo;   at = (size_t)l * C * m->OS;
                    IC = m->OS;  break;
    case LLM_W_13:  f = m->w13;  h = m->h_w13;  q = &m->lp_w13;  at = (size_t)l * 2 * F * C;
                    IC = (int)C; break;
    default:        f = m->w2;   h = m->h_w2;   q = &m->lp_w2;   at = (size_t)l * C * F;
                    IC = (int)F; break;
    }
    product(s, s->mm, out, ldo, inp, ldi, map, f, h, q, at + (size_t)o0 * IC, N, IC, OC);
}

static void session_rope(void *ctx, float *x, int nh, const int *map, int N)
{
    llm_session *s = ctx;
    const llm_model *m = s->m;
    int h2 = m->hd / 2;
    if (!map) {   /* the gathered tables make row r rotate by its own position */
        m->k->rope_forward(x, s->rcos, s->rsin, 1, N, nh, m->hd, m->QS);
        return;
    }
    for (int i = 0; i < N; i++)
        m->k->rope_forward(x + (size_t)map[i] * m->QS, s->rcos + (size_t)map[i] * h2,
                           s->rsin + (size_t)map[i] * h2, 1, 1, nh, m->hd, m->QS);
}

/* Rows of the packed forward's document that starts at row r (of n). */
static int doc_len(const llm_session *s, int n, int r)
{
    int d = s->rseq[r];
    return (d == s->rseq[n - 1] ? n : s->start[d + 1]) - r;
}

/* Attention over rows [first, first + T) of the block, one sequence from
 * its position 0, by the table's attention_forward: tiles of queries by
 * matrix products, where attention_rows takes a query row at a time (a
 * 1,004-token prompt to SmolLM2-135M spent a third of its prefill there).
 * @return 0 without the memory for it (the caller then takes
 * attention_rows: the same within rounding). */
static int whole(llm_session *s, const llm_block *b, int first, int T)
{
    const llm_model *m = s->m;
    const llm_config *c = &m->cfg;
    int H = c->n_heads, KVH = c->n_kv_heads;
    size_t saved = m->k->attention_saved(1, T, H);
    size_t n = saved + m->k->attention_scratch(1, T, H, KVH, m->hd, 0);
    if (n > s->whole_n) {
        m->k->free(s->whole);
        s->whole_n = 0;
        if (!(s->whole = m->k->alloc(n * sizeof *s->whole)))
            return 0;
        s->whole_n = n;
    }
    m->k->attention_forward(b->atty + (size_t)first * m->OS, s->whole, s->whole + saved,
                            b->qkv + (size_t)first * m->QS, NULL, 1, T, H, KVH, m->hd);
    return 1;
}

/* The block's attention in fp32 (not the last layer's kept rows): a
 * prompt of more than PREFILL_ROWS tokens prefilled whole from position 0
 * (products by matmul_forward), or in a packed forward each document of
 * more than PREFILL_ROWS tokens, by whole(); the rest (decoding steps,
 * prompts that continue a sequence, short documents) by attention_rows.
 * Each sequence takes one way by its own length, whatever comes with it. */
static void attend_all(llm_session *s, int l, const llm_block *b)
{
    if (!s->start) {
        if (s->mm != MM_KERNEL || s->rpos[0] != 0 || !whole(s, b, 0, b->n))
            attend(s, l, b->n, NULL, 0);
        return;
    }
    for (int r = 0, len; r < b->n; r += len) {
        if ((len = doc_len(s, b->n, r)) > PREFILL_ROWS) {
            if (!whole(s, b, r, len))
                attend(s, l, len, NULL, r);
            continue;
        }
        /* A run of short documents together. */
        int r1 = r + len, next;
        while (r1 < b->n && (next = doc_len(s, b->n, r1)) <= PREFILL_ROWS)
            r1 += next;
        attend(s, l, r1 - r, NULL, r);
        len = r1 - r;
    }
}

static void session_attend(void *ctx, int l, const llm_block *b)
{
    llm_session *s = ctx;
    const llm_model *m = s->m;
    int KVD = s->KVD;
    const float *k0 = b->qkv + (size_t)m->cfg.n_heads * m->hd;
    if (s->bf16) {   /* rounded into the cache, or a packed forward's pkv */
        for (int r = 0; r < b->n; r++) {
            if (s->start) {
                s->bkd[r] = s->pkv + (size_t)r * KVD;
                s->bvd[r] = s->bkd[r] + (size_t)s->rows * KVD;
            } else {
                size_t at = (size_t)s->rpos[r] * s->kvs;
                s->bkd[r] = (uint16_t *)kv_at(s, s->rseq[r], l, 0) + at;
                s->bvd[r] = (uint16_t *)kv_at(s, s->rseq[r], l, 1) + at;
            }
        }
        m->k->copy_rows_bf16(s->bkd, k0, (size_t)m->QS, b->n, KVD);
        m->k->copy_rows_bf16(s->bvd, k0 + KVD, (size_t)m->QS, b->n, KVD);
    } else if (!s->start) {   /* (a packed forward reads qkv itself) */
        for (int r = 0; r < b->n; r++) {
            size_t at = (size_t)s->rpos[r] * s->kvs;
            s->kd[r] = (float *)kv_at(s, s->rseq[r], l, 0) + at;
            s->vd[r] = (float *)kv_at(s, s->rseq[r], l, 1) + at;
        }
        m->k->copy_rows(s->kd, k0, (size_t)m->QS, b->n, KVD);
        m->k->copy_rows(s->vd, k0 + KVD, (size_t)m->QS, b->n, KVD);
    }
    if (b->keep || s->bf16)
        attend(s, l, b->keep ? b->n_keep : b->n, b->keep, 0);
    else
        attend_all(s, l, b);
}

/* The forward of N rows whose tokens (host), sequences and positions are
 * in tokens / s->rseq / s->rpos. Every row's keys and values go through
 * every layer (into the cache unless packed); past the last layer's, only
 * the n rows keep[0..n) (increasing; NULL: all N, n == N) go on, and their
 * final RMSNorm'd hidden states end in s->xb (n, C). Matrix products by
 * `mm`. */
static void forward(llm_session *s, const int32_t *tokens, int N, const int *keep,
                    int n, int mm)
{
    const llm_model *m = s->m;
    const llm_kernels *k = m->k;
    const llm_config *c = &m->cfg;
    int C = c->dim, h2 = m->hd / 2;

    /* The RoPE tables' rows of each row's position: a gather. */
    k->upload(s->pos, s->rpos, (size_t)N * sizeof *s->pos);
    k->embedding_forward(s->rcos, s->pos, m->rope_cos, N, h2);
    k->embedding_forward(s->rsin, s->pos, m->rope_sin, N, h2);
    k->upload(s->tok, tokens, (size_t)N * sizeof *s->tok);
    k->embedding_forward(s->x, s->tok, m->wte, N, C);
    s->mm = mm;
    llm_block_ops ops = { session_product, session_rope, session_attend, NULL, s };
    llm_block b = {
        .n = N, .in = s->x, .mid = s->x, .out = s->x,
        .a1 = s->xb, .rstd1 = s->rstd, .qkv = s->qkv, .atty = s->atty,
        .a2 = s->xb, .rstd2 = s->rstd, .h13 = s->h13, .hsw = s->hsw, .tmp = s->xb,
    };
    for (int l = 0; l < c->n_layers; l++) {
        if (l == c->n_layers - 1 && keep) {
            b.keep = keep;
            b.n_keep = n;
            b.queries_kept_only = mm != MM_KERNEL;   /* matmul_forward takes no map */
        }
        llm_block_forward(m, &ops, l, &b);
    }
    m->k->rmsnorm_forward(s->xb, s->rstd, s->x, m->norm, n, C, (float)c->norm_eps);
}

/* Logits (n, V), to the host, of the n rows in s->xb: a few rows against
 * the whole vocabulary, by matmul_rows; from the half copy of the output
 * weights when `h` and there is one. A table of host memory writes them
 * where the caller wants them (a decoding step's logits are megabytes). */
static int output(llm_session *s, int n, float *logits, int h)
{
    const llm_model *m = s->m;
    size_t V = (size_t)m->cfg.vocab_size;
    if (m->k->host_memory) {
        matmul(s, MM_ROWS, logits, s->xb, m->wout, h ? m->h_wout : NULL, &m->lp_wout, 0, n,
               m->cfg.dim, (int)V);
        return LLM_OK;
    }
    if (n > s->logits_rows) {
        m->k->free(s->logits);
        s->logits_rows = 0;
        if (!(s->logits = m->k->alloc((size_t)n * V * sizeof *s->logits)))
            return llm_fail(LLM_ERR_NOMEM, "out of memory for %d rows of logits", n);
        s->logits_rows = n;
    }
    matmul(s, MM_ROWS, s->logits, s->xb, m->wout, h ? m->h_wout : NULL, &m->lp_wout, 0, n,
           m->cfg.dim, (int)V);
    m->k->download(logits, s->logits, (size_t)n * V * sizeof *logits);
    return llm_device_ok(m->k);
}

/* Room for n rows of these tokens, each in the vocabulary. */
static int take_rows(llm_session *s, const int32_t *tokens, int n)
{
    int V = s->m->cfg.vocab_size;
    for (int i = 0; i < n; i++)
        if (tokens[i] < 0 || tokens[i] >= V)
            return llm_fail(LLM_ERR_RANGE, "token %d at index %d is outside the "
                            "vocabulary [0, %d)", tokens[i], i, V);
    return grow(s, n);
}

/* Rows per forward of a batched prefill, unless one prompt is longer: the
 * activations of this many rows, and enough rows that the weights are
 * streamed once for many prompts' tokens. */
#define PREFILL_CHUNK 2048

/* One forward of prompts [i0, i1) of a batch, `rows` tokens in all,
 * each at its sequence's end; their logits to logits + i0 * V. */
static int prefill_forward(llm_session *s, const int *seqs, const int32_t *const *tokens,
                           const int *lens, int i0, int i1, int rows, int mm, float *logits)
{
    int r = 0;
    for (int i = i0; i < i1; i++) {
        for (int t = 0; t < lens[i]; t++, r++) {
            s->htok[r] = tokens[i][t];
            s->rseq[r] = seqs[i];
            s->rpos[r] = s->len[seqs[i]] + t;
        }
        s->keep[i - i0] = r - 1;
    }
    forward(s, s->htok, rows, s->keep, i1 - i0, mm);
    if (logits)
        return output(s, i1 - i0, logits + (size_t)i0 * s->m->cfg.vocab_size, 0);
    return llm_device_ok(s->m->k);
}

/* Checks a batch that appends tokens[i][0..lens[i]) to sequence seqs[i]
 * for i < n (`what`: "prefill" or "forward", for the messages): n in [1,
 * sequences], each sequence in range, distinct, with room for its tokens,
 * each token in the vocabulary. Sets *most to the longest. */
static int check_batch(const llm_session *s, const int *seqs, const int32_t *const *tokens,
                       const int *lens, int n, const char *what, int *most)
{
    if (!s->kv)
        return llm_fail(LLM_ERR_INVALID, "a session for packed forwards caches nothing");
    if (n < 1 || n > s->n_seq)
        return llm_fail(LLM_ERR_INVALID, "a %s takes 1 to %d sequences, not %d", what,
                        s->n_seq, n);
    int V = s->m->cfg.vocab_size;
    *most = 0;
    for (int i = 0; i < n; i++) {
        if (seqs[i] < 0 || seqs[i] >= s->n_seq)
            return llm_fail(LLM_ERR_RANGE, "sequence %d out of range [0, %d)", seqs[i],
                            s->n_seq);
        if (lens[i] < 1)
            return llm_fail(LLM_ERR_INVALID, "%s needs at least one token", what);
        if (lens[i] > s->n_ctx - s->len[seqs[i]])
            return llm_fail(LLM_ERR_RANGE, "%d more tokens do not fit in the context (%d "
                            "held of %d)", lens[i], s->len[seqs[i]], s->n_ctx);
        for (int j = 0; j < i; j++)
            if (seqs[j] == seqs[i])
                return llm_fail(LLM_ERR_INVALID, "sequence %d appears twice in one %s",
                                seqs[i], what);
        for (int t = 0; t < lens[i]; t++)
            if (tokens[i][t] < 0 || tokens[i][t] >= V)
                return llm_fail(LLM_ERR_RANGE, "token %d at index %d is outside the "
                                "vocabulary [0, %d)", tokens[i][t], t, V);
        *most = lens[i] > *most ? lens[i] : *most;
    }
    return LLM_OK;
}

/* The forwards of a checked prefill (lengths unchanged): prompts in order,
 * as many together as fit in a chunk. Row products give each row the same
 * bits whatever rows come with it; sgemm, for a prompt too long for row
 * products (over fp32 weights), does not, so such a prompt goes alone, as
 * it would by itself. The int8 and bf16 copies' products are row products
 * at any length. */
static int prefill_forwards(llm_session *s, const int *seqs, const int32_t *const *tokens,
                            const int *lens, int n, int most, float *logits)
{
    size_t want = (size_t)n * (size_t)most;
    want = want < PREFILL_CHUNK ? want : PREFILL_CHUNK;
    int rc = grow(s, (size_t)most > want ? most : (int)want);
    int lowp = s->m->lp_wqkv.q != NULL;
    for (int i0 = 0; i0 < n && !rc;) {
        if (!lowp && lens[i0] > PREFILL_ROWS) {
            rc = prefill_forward(s, seqs, tokens, lens, i0, i0 + 1, lens[i0], MM_KERNEL,
                                 logits);
            i0++;
            continue;
        }
        int i1 = i0, rows = 0;
        while (i1 < n && (lowp || lens[i1] <= PREFILL_ROWS) &&
               (i1 == i0 || rows + lens[i1] <= PREFILL_CHUNK))
            rows += lens[i1++];
        rc = prefill_forward(s, seqs, tokens, lens, i0, i1, rows, MM_ROWS_F32, logits);
        i0 = i1;
    }
    return rc;
}

int llm_session_prefill_batch(llm_session *s, const int *seqs,
                              const int32_t *const *tokens, const int *lens, int n,
                              float *logits)
{
    int most, rc = check_batch(s, seqs, tokens, lens, n, "prefill", &most);
    if (rc || (rc = prefill_forwards(s, seqs, tokens, lens, n, most, logits)))
        return rc;
    for (int i = 0; i < n; i++)
        s->len[seqs[i]] += lens[i];
    return LLM_OK;
}

int llm_session_prefill(llm_session *s, int seq, const int32_t *tokens, int n,
                        float *logits)
{
    return llm_session_prefill_batch(s, &seq, &tokens, &n, 1, logits);
}

/* The forward of a checked step (lengths unchanged): token tokens[r] of
 * sequence seqs[r] at its end, products over the half copies if any. */
static int step_forward(llm_session *s, const int *seqs, const int32_t *tokens, int n,
                        float *logits)
{
    int rc = take_rows(s, tokens, n);
    if (rc)
        return rc;
    for (int r = 0; r < n; r++) {
        s->rseq[r] = seqs[r];
        s->rpos[r] = s->len[seqs[r]];
    }
    forward(s, tokens, n, NULL, n, MM_ROWS);
    return output(s, n, logits, 1);
}

int llm_session_step(llm_session *s, const int *seqs, const int32_t *tokens, int n,
                     float *logits)
{
    if (!s->kv)
        return llm_fail(LLM_ERR_INVALID, "a session for packed forwards caches nothing");
    if (n < 1 || n > s->n_seq)
        return llm_fail(LLM_ERR_INVALID, "a step takes 1 to %d sequences, not %d",
                        s->n_seq, n);
    if (!logits)
        return llm_fail(LLM_ERR_INVALID, "a step needs logits to write");
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
    int rc = step_forward(s, seqs, tokens, n, logits);
    if (rc)
        return rc;
    for (int r = 0; r < n; r++)
        s->len[seqs[r]]++;
    return LLM_OK;
}

int llm_session_advance(llm_session *s, const int *seqs, const int32_t *const *tokens,
                        const int *lens, int n, int n_step, float *logits)
{
    int most, rc = check_batch(s, seqs, tokens, lens, n, "forward", &most);
    if (rc)
        return rc;
    if (n_step < 0 || n_step > n || !logits)
        return llm_fail(LLM_ERR_INVALID, "a forward of %d sequences takes 0 to %d steps "
                        "(not %d) and logits", n, n, n_step);
    int rows = n_step, lowp = s->m->lp_wqkv.q != NULL, merge = lowp || !s->m->h_wqkv;
    for (int i = 0; i < n; i++) {
        if (i < n_step && lens[i] != 1)
            return llm_fail(LLM_ERR_INVALID, "a step appends one token, not %d", lens[i]);
        if (i >= n_step) {
            rows += lens[i];
            merge &= lowp || lens[i] <= PREFILL_ROWS;
        }
    }
    if (merge && n_step > 0 && n_step < n && rows <= PREFILL_CHUNK) {
        /* One forward, the steps' rows first: a prefill of them all, whose
         * products are the steps' without half copies. */
        if (!(rc = grow(s, rows)))
            rc = prefill_forward(s, seqs, tokens, lens, 0, n, rows, MM_ROWS_F32, logits);
    } else {   /* the steps' forward, then the prompts' ones */
        if (n_step && !(rc = grow(s, n_step))) {
            for (int i = 0; i < n_step; i++)
                s->htok[i] = tokens[i][0];
            rc = step_forward(s, seqs, s->htok, n_step, logits);
        }
        if (!rc && n_step < n)
            rc = prefill_forwards(s, seqs + n_step, tokens + n_step, lens + n_step,
                                  n - n_step, most,
                                  logits + (size_t)n_step * s->m->cfg.vocab_size);
    }
    if (rc)
        return rc;
    for (int i = 0; i < n; i++)
        s->len[seqs[i]] += lens[i];
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
    if (!rc)
        rc = packed_reserve(s);
    if (rc) {
        free(start);
        return rc;
    }
    int r = 0;
    for (int d = 0; d < nd; d++) {
        start[d] = r;
        for (size_t t = 0; t < lens[d]; t++, r++) {
            s->htok[r] = docs[d][t];
            s->rseq[r] = d;
            s->rpos[r] = (int)t;
        }
        s->keep[d] = r - 1;
    }
    int last = pooling == LLM_POOL_LAST;
    s->start = start;
    forward(s, s->htok, (int)N, last ? s->keep : NULL, last ? nd : (int)N,
            MM_PACKED);
    s->start = NULL;
    const llm_kernels *k = s->m->k;
    if (last) {
        k->copy(pooled, s->xb, (size_t)nd * C * sizeof *pooled);
        free(start);
        return LLM_OK;
    }
    /* Mean pooling, on the host. */
    float *own_x, *own_p;
    const float *xb = llm_host_view(k, s->xb, N * (size_t)C, &own_x);
    float *hp = xb ? llm_host_edit(k, pooled, (size_t)nd * C, &own_p) : NULL;
    if (!hp) {
        free(own_x);
        free(start);
        return LLM_ERR_NOMEM;
    }
    for (int d = 0; d < nd; d++) {
        float *p = hp + (size_t)d * C;
        const float *h = xb + (size_t)start[d] * C;
        for (int j = 0; j < C; j++) {
            double sum = 0;
            for (size_t t = 0; t < lens[d]; t++)
                sum += h[t * C + j];
            p[j] = (float)(sum / (double)lens[d]);
        }
    }
    free(own_x);
    llm_host_done(k, pooled, own_p, (size_t)nd * C);
    free(start);
    return LLM_OK;
}

/* ------------------------------------------------------------ f16 */

int llm_model_decode_f16(llm_model *m)
{
    if (m->h_wqkv)
        return LLM_OK;
    if (!m->k->to_half)
        return llm_fail(LLM_ERR_UNSUPPORTED, "the '%s' kernels do not decode from "
                        "half-precision weights", m->k->name);
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
    uint16_t *block = m->k->alloc(total * sizeof *block);
    if (!block)
        return llm_fail(LLM_ERR_NOMEM, "out of memory for half-precision weights (%zu MB)",
                        (total * sizeof *block) >> 20);
    uint16_t *h = block;
    for (size_t i = 0; i < sizeof t / sizeof t[0]; h += t[i].n, i++) {
        const float *f = t[i].f;
        size_t n = t[i].n, bad = m->k->to_half(h, f, n);
        if (bad < n) {
            float v;
            m->k->download(&v, f + bad, sizeof v);
            m->k->free(block);
            return llm_fail(LLM_ERR_RANGE, "weight %s[%zu] = %g is outside half precision's "
                            "range (magnitude 65504)", t[i].name, bad, (double)v);
        }
    }
    h = block;
    for (size_t i = 0; i < sizeof t / sizeof t[0]; h += t[i].n, i++)
        *t[i].h = h;
    return LLM_OK;
}
