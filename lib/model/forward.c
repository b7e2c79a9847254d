/* forward.c: the transformer block, the one forward pass of the model.
 * Training (model.c), classification and KV-cached generation (infer.c)
 * all run every layer through llm_block_forward(); they differ only in
 * what its hooks do: how a product is computed (sgemm plus low-rank
 * adapters in training, batch-invariant row products in a session), how
 * rows are rotated (positions of a batch, or of each cached row), what
 * attention reads (the rows' own sequence, or a key/value cache), and
 * what happens to a sublayer's output before the residual add (dropout). */
#include <string.h>

#include "model.h"

void llm_block_forward(const llm_model *m, const llm_block_ops *ops, int l,
                       const llm_block *b)
{
    const llm_config *c = &m->cfg;
    const llm_kernels *k = m->k;
    int C = c->dim, F = c->ffn_dim, H = c->n_heads, KVH = c->n_kv_heads, hd = m->hd;
    int QS = m->QS, OS = m->OS, n = b->n, rows = b->keep ? b->n_keep : n;
    float eps = (float)c->norm_eps;
    void *ctx = ops->ctx;

    k->rmsnorm_forward(b->a1, b->rstd1, b->in, m->attn_norm + (size_t)l * C, n, C, eps);
    if (b->keep && b->queries_kept_only && rows < n) {
        /* Keys and values of every row, queries of the kept rows only. */
        int qd = H * hd;
        ops->product(ctx, LLM_W_QKV, l, qd, 2 * KVH * hd, b->qkv + qd, (size_t)QS, b->a1,
                     (size_t)C, NULL, n);
        ops->product(ctx, LLM_W_QKV, l, 0, qd, b->qkv, (size_t)QS, b->a1, (size_t)C, b->keep,
                     rows);
        ops->rope(ctx, b->qkv + qd, KVH, NULL, n);
        ops->rope(ctx, b->qkv, H, b->keep, rows);
    } else {
        ops->product(ctx, LLM_W_QKV, l, 0, QS, b->qkv, (size_t)QS, b->a1, (size_t)C, NULL, n);
        ops->rope(ctx, b->qkv, H + KVH, NULL, n);
    }
    ops->attend(ctx, l, b);
    for (int i = 0; b->keep && i < rows; i++)   /* only the kept rows go on */
        if (b->keep[i] != i)
            k->copy(b->in + (size_t)i * C, b->in + (size_t)b->keep[i] * C,
                    (size_t)C * sizeof *b->in);
    ops->product(ctx, LLM_W_O, l, 0, C, b->tmp, (size_t)C, b->atty, (size_t)OS, NULL, rows);
    if (ops->sublayer)
        ops->sublayer(ctx, l, 0, b->tmp, rows);
    k->residual_forward(b->mid, b->in, b->tmp, (size_t)rows * C);
    k->rmsnorm_forward(b->a2, b->rstd2, b->mid, m->ffn_norm + (size_t)l * C, rows, C, eps);
    ops->product(ctx, LLM_W_13, l, 0, 2 * F, b->h13, (size_t)2 * F, b->a2, (size_t)C, NULL,
                 rows);
    k->swiglu_forward(b->hsw, b->h13, rows, F);
    ops->product(ctx, LLM_W_2, l, 0, C, b->tmp, (size_t)C, b->hsw, (size_t)F, NULL, rows);
    if (ops->sublayer)
        ops->sublayer(ctx, l, 1, b->tmp, rows);
    k->residual_forward(b->out, b->mid, b->tmp, (size_t)rows * C);
}
