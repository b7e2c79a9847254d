/* lowp.c: inference in reduced precision. llm_model_quantize_q8() (int8
 * weights in blocks of 32 with a scale and an offset each, inputs in
 * int16) and llm_model_weights_bf16() (bfloat16) make copies of the
 * layers' and the output layer's weights through the kernel table; from
 * then on every forward's matrix products (sessions: prefill, steps, packed
 * forwards; llm_model_forward() for evaluation) round or quantize their
 * input rows and take the table's product in that precision, whose every
 * output element is computed alone, so that batching still changes no
 * bits. */
#include <stdint.h>
#include <string.h>

#include "internal.h"
#include "kernels.h"
#include "model.h"

static size_t blocks(int IC)
{
    return ((size_t)IC + 31) / 32;
}

/* 32-bit slots of pack_bf16's copy of `rows` rows of IC. */
static size_t bf16_slots(size_t rows, int IC)
{
    return (rows + 31) / 32 * 32 * (((size_t)IC + 1) / 2);
}

/* The widest input of the model's products. */
static int widest(const llm_model *m)
{
    int C = m->cfg.dim, w = m->OS > C ? m->OS : C;
    return m->cfg.ffn_dim > w ? m->cfg.ffn_dim : w;
}

int llm_lpx_reserve(const llm_model *m, llm_lpx *x, size_t rows)
{
    if (rows <= x->rows)
        return LLM_OK;
    llm_lpx_free(m, x);
    int IC = widest(m);
    size_t nb = blocks(IC), nq, nd = 0;
    int bad = m->lp == LLM_LP_BF16
                  ? llm_mul_size(rows, ((size_t)IC + 1) / 2 * sizeof(uint32_t), &nq)
                  : llm_mul_size(rows, nb * 32 * sizeof(int16_t), &nq) ||
                        llm_mul_size(rows, nb * sizeof(float), &nd);
    if (bad || !(x->q = m->k->alloc(nq)) ||
        (nd && (!(x->d = m->k->alloc(nd)) || !(x->s = m->k->alloc(nd))))) {
        llm_lpx_free(m, x);
        return llm_fail(LLM_ERR_NOMEM, "out of memory for %zu rows of %s activations", rows,
                        m->lp == LLM_LP_BF16 ? "bf16" : "int8");
    }
    x->rows = rows;
    return LLM_OK;
}

void llm_lpx_free(const llm_model *m, llm_lpx *x)
{
    m->k->free(x->q);
    m->k->free(x->d);
    m->k->free(x->s);
    x->q = NULL;
    x->d = NULL;
    x->s = NULL;
    x->rows = 0;
}

void llm_lp_product(const llm_model *m, llm_lpx *x, float *out, size_t ldo,
                    const float *inp, size_t ldi, const int *map, const llm_lpw *w,
                    size_t row0, int N, int IC, int OC)
{
    if (m->lp == LLM_LP_BF16) {
        /* Layer row0 / rows's panels, from its row o0. */
        size_t l = row0 / w->rows;
        int o0 = (int)(row0 % w->rows);
        m->k->matmul_rows_bf16(out, ldo, inp, ldi, map,
                               (const uint32_t *)w->q + l * bf16_slots(w->rows, IC), o0, x->q,
                               N, IC, OC);
        return;
    }
    size_t nb = blocks(IC);
    m->k->quantize_q16(x->q, x->d, x->s, inp, ldi, map, N, IC);
    m->k->matmul_rows_q8(out, ldo, map, x->q, x->d, x->s,
                         (const char *)w->q + row0 * nb * LLM_Q8_BYTES, N, IC, OC);
}

/* The five weights that get copies: name, floats, layers, rows per layer,
 * row width, and the copy. */
typedef struct {
    const char *name;
    const float *f;
    size_t layers, rows;
    int IC;
    llm_lpw *lp;
} weight;

enum { NW = 5 };

static void weights(llm_model *m, weight t[NW])
{
    const llm_config *c = &m->cfg;
    size_t L = (size_t)c->n_layers, C = (size_t)c->dim, F = (size_t)c->ffn_dim;
    t[0] = (weight){ "wqkv", m->wqkv, L, (size_t)m->QS, (int)C, &m->lp_wqkv };
    t[1] = (weight){ "wo", m->wo, L, C, m->OS, &m->lp_wo };
    t[2] = (weight){ "w13", m->w13, L, 2 * F, (int)C, &m->lp_w13 };
    t[3] = (weight){ "w2", m->w2, L, C, (int)F, &m->lp_w2 };
    t[4] = (weight){ "output", m->wout, 1, (size_t)c->vocab_size, (int)C, &m->lp_wout };
}

/* Whether copies in precision lp (named `what`) can be made, `entries`
 * telling whether the table has its products: LLM_OK, *done set when the
 * model has them already; or the reason. */
static int can_copy(const llm_model *m, int lp, int entries, const char *what, int *done)
{
    *done = m->lp == lp;
    if (*done)
        return LLM_OK;
    if (m->lp)
        return llm_fail(LLM_ERR_INVALID, "the model already computes in another precision");
    if (!entries)
        return llm_fail(LLM_ERR_UNSUPPORTED, "the '%s' kernels have no %s products",
                        m->k->name, what);
    if (m->lora_rank)
        return llm_fail(LLM_ERR_UNSUPPORTED, "%s weights of a model with low-rank adapters: "
                        "save it without its optimizer state first, which merges them", what);
    return LLM_OK;
}

int llm_model_quantize_q8(llm_model *m)
{
    int done, rc = can_copy(m, LLM_LP_Q8,
                            m->k->quantize_q8 && m->k->quantize_q16 && m->k->matmul_rows_q8,
                            "int8 (q8)", &done);
    if (rc || done)
        return rc;
    weight t[NW];
    weights(m, t);
    size_t n = 0;
    for (int i = 0; i < NW; i++) {
        if (t[i].layers * t[i].rows > INT32_MAX)
            return llm_fail(LLM_ERR_RANGE, "weight %s has too many rows (%zu) for int8 "
                            "products", t[i].name, t[i].layers * t[i].rows);
        n += t[i].layers * t[i].rows * blocks(t[i].IC);
    }
    char *block = m->k->alloc(n * LLM_Q8_BYTES);
    if (!block)
        return llm_fail(LLM_ERR_NOMEM, "out of memory for int8 weights (%zu MB)",
                        (n * LLM_Q8_BYTES) >> 20);
    llm_lpw w[NW];
    char *q = block;
    for (int i = 0; i < NW; i++) {
        int rows = (int)(t[i].layers * t[i].rows), IC = t[i].IC;
        int bad = m->k->quantize_q8(q, t[i].f, (size_t)IC, NULL, rows, IC);
        if (bad < rows) {
            m->k->free(block);
            return llm_fail(LLM_ERR_NUMERIC, "weight %s row %d holds an infinity or NaN",
                            t[i].name, bad);
        }
        w[i] = (llm_lpw){ q, t[i].rows };
        q += (size_t)rows * blocks(IC) * LLM_Q8_BYTES;
    }
    for (int i = 0; i < NW; i++)
        *t[i].lp = w[i];
    m->lp = LLM_LP_Q8;
    return LLM_OK;
}

int llm_model_weights_bf16(llm_model *m)
{
    int done, rc = can_copy(m, LLM_LP_BF16, m->k->pack_bf16 && m->k->matmul_rows_bf16,
                            "bf16 inference", &done);
    if (rc || done)
        return rc;
    weight t[NW];
    weights(m, t);
    size_t n = 0;
    for (int i = 0; i < NW; i++) {
        if (t[i].rows > INT32_MAX)
            return llm_fail(LLM_ERR_RANGE, "weight %s has too many rows (%zu) for bf16 "
                            "products", t[i].name, t[i].rows);
        n += t[i].layers * bf16_slots(t[i].rows, t[i].IC);
    }
    uint32_t *block = m->k->alloc(n * sizeof *block);
    if (!block)
        return llm_fail(LLM_ERR_NOMEM, "out of memory for bf16 weights (%zu MB)",
                        (n * sizeof *block) >> 20);
    uint32_t *p = block;
    for (int i = 0; i < NW; i++) {
        *t[i].lp = (llm_lpw){ p, t[i].rows };
        for (size_t l = 0; l < t[i].layers; l++, p += bf16_slots(t[i].rows, t[i].IC))
            m->k->pack_bf16(p, t[i].f + l * t[i].rows * (size_t)t[i].IC, t[i].IC,
                            (int)t[i].rows);
    }
    m->lp = LLM_LP_BF16;
    return LLM_OK;
}
