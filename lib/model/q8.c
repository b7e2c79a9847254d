/* q8.c: int8 inference (Q8_0). llm_model_quantize_q8() makes quantized
 * copies of the layers' and the output layer's weights through the kernel
 * table; from then on every forward's matrix products (sessions: prefill,
 * steps, packed forwards; llm_model_forward() for evaluation) quantize
 * their input rows and take the table's int8 product, whose every output
 * element is computed alone, so that batching still changes no bits. */
#include <stdint.h>
#include <string.h>

#include "internal.h"
#include "kernels.h"
#include "model.h"

static size_t blocks(int IC)
{
    return ((size_t)IC + 31) / 32;
}

/* The widest input of the model's products. */
static int widest(const llm_model *m)
{
    int C = m->cfg.dim, w = m->OS > C ? m->OS : C;
    return m->cfg.ffn_dim > w ? m->cfg.ffn_dim : w;
}

int llm_q8x_reserve(const llm_model *m, llm_q8x *x, size_t rows)
{
    if (rows <= x->rows)
        return LLM_OK;
    llm_q8x_free(m, x);
    size_t nb = blocks(widest(m)), nq, nd;
    if (llm_mul_size(rows, nb * 32, &nq) || llm_mul_size(rows, nb * sizeof(float), &nd) ||
        !(x->q = m->k->alloc(nq)) || !(x->d = m->k->alloc(nd))) {
        llm_q8x_free(m, x);
        return llm_fail(LLM_ERR_NOMEM, "out of memory for %zu rows of int8 activations",
                        rows);
    }
    x->rows = rows;
    return LLM_OK;
}

void llm_q8x_free(const llm_model *m, llm_q8x *x)
{
    m->k->free(x->q);
    m->k->free(x->d);
    x->q = NULL;
    x->d = NULL;
    x->rows = 0;
}

void llm_q8_product(const llm_model *m, llm_q8x *x, float *out, size_t ldo,
                    const float *inp, size_t ldi, const int *map, const llm_q8w *w,
                    size_t row0, int N, int IC, int OC)
{
    size_t nb = blocks(IC);
    m->k->quantize_q8(x->q, x->d, inp, ldi, map, N, IC);
    m->k->matmul_rows_q8(out, ldo, map, x->q, x->d, w->q + row0 * nb * 32,
                         w->d + row0 * nb, N, IC, OC);
}

int llm_model_quantize_q8(llm_model *m)
{
    if (m->q_wqkv.q)
        return LLM_OK;
    if (!m->k->quantize_q8 || !m->k->matmul_rows_q8)
        return llm_fail(LLM_ERR_UNSUPPORTED, "the '%s' kernels have no int8 (q8) products",
                        m->k->name);
    if (m->lora_rank)
        return llm_fail(LLM_ERR_UNSUPPORTED, "int8 (q8) weights of a model with low-rank "
                        "adapters: save it without its optimizer state first, which "
                        "merges them");
    const llm_config *c = &m->cfg;
    size_t L = (size_t)c->n_layers, C = (size_t)c->dim, F = (size_t)c->ffn_dim;
    struct { const char *name; const float *f; size_t rows; int IC; llm_q8w *q; } t[] = {
        { "wqkv", m->wqkv, L * m->QS, (int)C, &m->q_wqkv },
        { "wo", m->wo, L * C, m->OS, &m->q_wo },
        { "w13", m->w13, L * 2 * F, (int)C, &m->q_w13 },
        { "w2", m->w2, L * C, (int)F, &m->q_w2 },
        { "output", m->wout, (size_t)c->vocab_size, (int)C, &m->q_wout },
    };
    enum { NT = sizeof t / sizeof t[0] };
    /* One block: every weight's int8s (multiples of 32 bytes), then every
     * weight's scales. */
    size_t nq = 0, nd = 0;
    for (int i = 0; i < NT; i++) {
        if (t[i].rows > INT32_MAX)
            return llm_fail(LLM_ERR_RANGE, "weight %s has too many rows (%zu) for int8 "
                            "products", t[i].name, t[i].rows);
        nq += t[i].rows * blocks(t[i].IC) * 32;
        nd += t[i].rows * blocks(t[i].IC);
    }
    char *block = m->k->alloc(nq + nd * sizeof(float));
    if (!block)
        return llm_fail(LLM_ERR_NOMEM, "out of memory for int8 weights (%zu MB)",
                        (nq + nd * sizeof(float)) >> 20);
    llm_q8w w[NT];
    int8_t *q = (int8_t *)block;
    float *d = (float *)(block + nq);
    for (int i = 0; i < NT; i++) {
        int rows = (int)t[i].rows, IC = t[i].IC;
        int bad = m->k->quantize_q8(q, d, t[i].f, (size_t)IC, NULL, rows, IC);
        if (bad < rows) {
            m->k->free(block);
            return llm_fail(LLM_ERR_NUMERIC, "weight %s row %d holds an infinity or NaN",
                            t[i].name, bad);
        }
        w[i].q = q;
        w[i].d = d;
        q += t[i].rows * blocks(IC) * 32;
        d += t[i].rows * blocks(IC);
    }
    for (int i = 0; i < NT; i++)
        *t[i].q = w[i];
    return LLM_OK;
}
