/* train.c: one optimiser step of language-model training (micro-batches,
 * gradient accumulation, clipping, schedule, AdamW), evaluation on held-out
 * tokens, and checkpoints that let a resumed run continue bit for bit. The
 * loop, its progress and its files belong to the program (llm-train). */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <ctype.h>
#include <string.h>
#include <time.h>

#include "internal.h"
#include "kernels.h"
#include "model/model.h"
#include "train.h"

struct llm_trainer {
    llm_model *m;              /* not owned */
    llm_batcher *b;            /* not owned */
    llm_train_params p;
    int32_t *inputs, *targets; /* (batch, seq_len) each */
    /* Classifier training (a batcher over documents): */
    int32_t *lengths, *labels; /* (batch) each */
    float *cls_targets;        /* (batch, K), multi-label */
    int32_t *starts;           /* (batch, seq_len): pairs, packed */
    float *grads;              /* host copy of the gradients for the all-reduce */
    size_t grads_cap;          /* floats */
};

void llm_train_defaults(llm_train_params *p)
{
    memset(p, 0, sizeof *p);
    p->batch = 8;
    p->seq_len = 256;
    p->accum = 1;
    llm_adamw_defaults(&p->adamw);
    p->sched.kind = LLM_SCHED_COSINE;
    p->sched.lr = p->adamw.lr;
    p->sched.min_lr = p->adamw.lr / 10;
    p->sched.warmup = 50;
    p->sched.total = 1000;
    p->sched.decay_fraction = 0.2;
    p->clip = 1.0;
}

int llm_trainer_new(llm_model *m, llm_batcher *b, const llm_train_params *p,
                    llm_trainer **out)
{
    *out = NULL;
    const llm_config *c = llm_model_config(m);
    if (p->batch < 1 || p->accum < 1 || p->seq_len < 1)
        return llm_fail(LLM_ERR_INVALID, "batch, accumulation and sequence length must be positive");
    if (p->seq_len > c->context)
        return llm_fail(LLM_ERR_INVALID, "sequence length %d is longer than the context %d",
                        p->seq_len, c->context);
    if (!(p->clip >= 0) || !isfinite(p->clip))
        return llm_fail(LLM_ERR_INVALID, "gradient clipping norm must be finite and >= 0");
    if (p->world > 1 && (p->rank < 0 || p->rank >= p->world || !p->reduce))
        return llm_fail(LLM_ERR_INVALID, "rank %d of %d, or no reduce function", p->rank,
                        p->world);
    if (p->world > 1 && p->accum % p->world)
        return llm_fail(LLM_ERR_INVALID, "%d micro-batches per step cannot be shared by %d "
                        "ranks (use a multiple of %d)", p->accum, p->world, p->world);
    int rc0 = llm_model_own(m);   /* training writes the weights */
    if (rc0)
        return rc0;
    int K = llm_model_n_labels(m);
    if (llm_batcher_docs(b) && !K)
        return llm_fail(LLM_ERR_INVALID, "training on labelled documents needs a classifier");
    const llm_pairs *pairs = llm_batcher_pairs(b);
    if (pairs && (K || llm_pairs_width(pairs) != p->seq_len))
        return llm_fail(LLM_ERR_INVALID, K ? "a classifier cannot train on input -> output "
                        "pairs" : "pairs packed in rows of %d tokens, sequence length %d",
                        llm_pairs_width(pairs), p->seq_len);
    int width = llm_batcher_width(b);
    if (width && width != p->seq_len)
        return llm_fail(LLM_ERR_INVALID, "a batcher of sequences of %d tokens, sequence "
                        "length %d", width, p->seq_len);
    const llm_cls_data *docs = llm_batcher_docs(b);
    for (size_t i = 0, n = docs ? llm_cls_data_count(docs) : 0; i < n; i++) {
        const int32_t *ids;
        size_t len;
        llm_cls_data_doc(docs, i, &ids, &len, NULL, NULL);
        if (len > (size_t)p->seq_len)   /* (the rows hold seq_len tokens) */
            return llm_fail(LLM_ERR_INVALID, "document %zu has %zu tokens, more than the "
                            "sequence length %d", i + 1, len, p->seq_len);
    }
    llm_trainer *t = calloc(1, sizeof *t);
    size_t n = (size_t)p->batch * (size_t)p->seq_len;
    if (t) {
        t->inputs = malloc(n * sizeof *t->inputs);
        t->targets = malloc(n * sizeof *t->targets);
        if (K) {
            t->lengths = malloc((size_t)p->batch * sizeof *t->lengths);
            t->labels = malloc((size_t)p->batch * sizeof *t->labels);
            t->cls_targets = malloc((size_t)p->batch * K * sizeof *t->cls_targets);
        }
    }
    if (t && llm_batcher_pairs(b))
        t->starts = malloc(n * sizeof *t->starts);
    if (!t || !t->inputs || !t->targets || (llm_batcher_pairs(b) && !t->starts) ||
        (K && (!t->lengths || !t->labels || !t->cls_targets))) {
        llm_trainer_free(t);
        return llm_fail(LLM_ERR_NOMEM, "out of memory");
    }
    t->m = m;
    t->b = b;
    t->p = *p;
    *out = t;
    return LLM_OK;
}

void llm_trainer_set_schedule(llm_trainer *t, const llm_schedule *s)
{
    t->p.sched = *s;
}

void llm_trainer_free(llm_trainer *t)
{
    if (!t)
        return;
    free(t->inputs);
    free(t->targets);
    free(t->lengths);
    free(t->labels);
    free(t->cls_targets);
    free(t->starts);
    free(t->grads);
    free(t);
}

static int trainer_step(llm_trainer *t, llm_step_info *info);

int llm_trainer_step(llm_trainer *t, llm_step_info *info)
{
    llm_model_set_training(t->m, 1);   /* dropout, when set, applies here only */
    /* A step stopped part way leaves the weights, the optimiser and the
     * step count as they were (the optimiser runs last) and its gradients
     * to the next step's zeroing; its data is read again. */
    llm_data_pos pos = llm_batcher_pos(t->b);
    int stop = t->p.stop && t->p.world <= 1;
    if (stop)
        llm_pass_stop(t->m, t->p.stop, t->p.stop_ctx);
    int rc = trainer_step(t, info);
    if (stop)
        llm_pass_stop(t->m, NULL, NULL);
    if (rc == LLM_ERR_INTERRUPTED) {
        int rs = llm_batcher_seek(t->b, pos);
        rc = rs ? rs : llm_fail(LLM_ERR_INTERRUPTED, "step %lld stopped on request",
                                (long long)llm_model_steps(t->m) + 1);
    }
    llm_model_set_training(t->m, 0);
    return rc;
}

static int trainer_step(llm_trainer *t, llm_step_info *info)
{
    const llm_train_params *p = &t->p;
    int64_t step = llm_model_steps(t->m);          /* 0-based index of this step */
    int rc = llm_model_zero_grad(t->m);
    if (rc)
        return rc;
    double loss_sum = 0;
    uint64_t tokens = 0;
    int docs = llm_batcher_docs(t->b) != NULL;
    int world = p->world > 1 ? p->world : 1;
    for (int a = 0; a < p->accum; a++) {
        float loss;
        if (a % world != p->rank % world) {
            /* Another rank's micro-batch. */
            llm_batcher_skip(t->b, (uint64_t)p->batch);
            continue;
        }
        if (isnan(loss_sum)) {
            /* A non-finite loss on one rank: the others must still meet
             * it in reduce(), where it turns every rank's sum into NaN. */
            llm_batcher_skip(t->b, (uint64_t)p->batch);
            continue;
        }
        llm_model_set_micro(t->m, a);   /* dropout masks as one process draws them */
        if (docs) {
            /* A classifier: documents, right-padded to the longest. */
            int T, multi = llm_model_multi_label(t->m);
            rc = llm_batcher_next_docs(t->b, p->batch, t->inputs, t->lengths, &T,
                                       t->labels, multi ? t->cls_targets : NULL);
            if (rc)
                return rc;
            llm_cls_targets y = { t->labels, t->cls_targets, p->class_weights, p->lm_weight };
            rc = llm_cls_forward(t->m, t->inputs, t->lengths, p->batch, T, &y, &loss);
            for (int i = 0; i < p->batch; i++)
                tokens += (uint64_t)t->lengths[i];
        } else if (t->starts) {
            /* Input -> output pairs, packed into rows. */
            uint64_t used;
            rc = llm_batcher_next_pairs(t->b, p->batch, t->inputs, t->targets, t->starts,
                                        &used);
            if (rc)
                return rc;
            rc = llm_model_forward_packed(t->m, t->inputs, t->targets, t->starts, p->batch,
                                          p->seq_len, &loss);
            tokens += used;
        } else {
            rc = llm_batcher_next(t->b, p->batch, t->inputs, t->targets);
            if (rc)
                return rc;
            rc = llm_model_forward(t->m, t->inputs, t->targets, p->batch, p->seq_len, &loss);
            tokens += (uint64_t)p->batch * (uint64_t)p->seq_len;
        }
        if (rc)
            return rc;
        if (!isfinite(loss) && world == 1)
            return llm_fail(LLM_ERR_NUMERIC, "loss is %s at step %lld (learning rate too "
                            "high, or non-finite weights?)", isnan(loss) ? "NaN" : "infinite",
                            (long long)step + 1);
        if (!isfinite(loss)) {
            loss_sum = NAN;
            continue;
        }
        loss_sum += loss;
        rc = docs ? llm_cls_backward(t->m) : llm_model_backward(t->m);
        if (rc)
            return rc;
    }
    if (world > 1) {
        /* Sum the ranks' gradients and losses: then every rank holds what one
         * process would have accumulated, up to the order of the float sums. */
        size_t n = llm_model_grad_size(t->m);
        double sums[2] = { loss_sum, (double)tokens };
        if (p->reduce_device) {   /* in place, in device memory */
            rc = p->reduce(p->reduce_ctx, t->m->opt->grads, n, sums, 2);
        } else {
            if ((rc = llm_grow((void **)&t->grads, &t->grads_cap, n ? n : 1, sizeof *t->grads)))
                return rc;
            llm_model_grad_copy(t->m, t->grads, 1);
            rc = p->reduce(p->reduce_ctx, t->grads, n, sums, 2);
            if (!rc)
                llm_model_grad_copy(t->m, t->grads, 0);
        }
        if (rc)
            return rc;
        loss_sum = sums[0];
        tokens = (uint64_t)sums[1];
        if (!isfinite(loss_sum))
            return llm_fail(LLM_ERR_NUMERIC, "loss is not finite at step %lld on some rank "
                            "(learning rate too high, or non-finite weights?)",
                            (long long)step + 1);
    }
    if (p->accum > 1)
        llm_model_scale_grad(t->m, 1.0f / (float)p->accum);
    double norm = p->clip > 0 ? llm_model_clip_grad(t->m, p->clip) : llm_model_grad_norm(t->m);
    if (!isfinite(norm))
        return llm_fail(LLM_ERR_NUMERIC, "gradient norm is %s at step %lld (learning rate "
                        "too high?)", isnan(norm) ? "NaN" : "infinite", (long long)step + 1);
    llm_adamw o = p->adamw;
    o.lr = llm_schedule_lr(&p->sched, step);
    rc = llm_model_adamw_step(t->m, &o);
    if (rc)
        return rc;
    if (info) {
        info->step = step + 1;
        info->loss = loss_sum / p->accum;
        info->grad_norm = norm;
        info->lr = o.lr;
        info->tokens = tokens;
    }
    return LLM_OK;
}

int llm_eval_loss(llm_model *m, const llm_data *d, uint64_t begin, uint64_t end,
                  int B, int T, uint64_t max_tokens, llm_eval_result *r)
{
    memset(r, 0, sizeof *r);
    if (B < 1 || T < 1 || T > llm_model_config(m)->context)
        return llm_fail(LLM_ERR_INVALID, "bad evaluation batch %d x %d", B, T);
    if (end > llm_data_count(d) || begin > end)
        return llm_fail(LLM_ERR_RANGE, "evaluation range out of the data");
    uint64_t nseq = end - begin > 0 ? (end - begin - 1) / (uint64_t)T : 0;
    if (max_tokens && nseq > max_tokens / (uint64_t)T)
        nseq = max_tokens / (uint64_t)T ? max_tokens / (uint64_t)T : 1;
    if (nseq == 0)
        return llm_fail(LLM_ERR_INVALID, "%llu held-out tokens are fewer than one "
                        "sequence of %d + 1", (unsigned long long)(end - begin), T);
    size_t n = (size_t)B * (size_t)T;
    int32_t *buf = malloc((n + 1) * sizeof *buf * 2);
    if (!buf)
        return llm_fail(LLM_ERR_NOMEM, "out of memory");
    int32_t *in = buf, *tg = buf + n + 1;
    double sum = 0;
    int rc = LLM_OK;
    llm_pass_no_grad(m, 1);   /* the loss alone: one layer's activations at a time */
    for (uint64_t s = 0; s < nseq && rc == LLM_OK; s += (uint64_t)B) {
        int b = nseq - s < (uint64_t)B ? (int)(nseq - s) : B;
        for (int i = 0; i < b && rc == LLM_OK; i++) {
            uint64_t pos = begin + (s + (uint64_t)i) * (uint64_t)T;
            rc = llm_data_read(d, pos, (size_t)T + 1, tg + (size_t)i * T);
            if (rc == LLM_OK) {
                memcpy(in + (size_t)i * T, tg + (size_t)i * T, (size_t)T * sizeof *in);
                memmove(tg + (size_t)i * T, tg + (size_t)i * T + 1, (size_t)T * sizeof *tg);
            }
        }
        float loss = 0;
        if (rc == LLM_OK)
            rc = llm_model_forward(m, in, tg, b, T, &loss);
        sum += (double)loss * b * T;
    }
    llm_pass_no_grad(m, 0);
    free(buf);
    if (rc)
        return rc;
    r->tokens = nseq * (uint64_t)T;
    r->first = begin + 1;
    r->loss = sum / (double)r->tokens;
    return LLM_OK;
}

/* ------------------------------------------------------------------------ */
/* Checkpoints: a model file with the optimizer state (model.c) plus where
 * the data and the run stand, in __metadata__. */

int llm_trainer_save(const llm_trainer *t, const char *path, const void *tok,
                     size_t tok_len, const char *const *extra)
{
    llm_data_pos pos = llm_batcher_pos(t->b);
    char epoch[32], index[32];
    snprintf(epoch, sizeof epoch, "%llu", (unsigned long long)pos.epoch);
    snprintf(index, sizeof index, "%llu", (unsigned long long)pos.index);
    /* A checkpoint has moments even before the first step (zeros, as that
     * step would start from): a model file without them would hold any
     * adapters merged into its weights, and --resume could not go on. */
    int rc = llm_model_adamw_alloc(t->m);
    if (rc)
        return rc;
    size_t n = 0;
    while (extra && extra[n] && extra[n + 1])
        n += 2;
    const char **meta = malloc((n + 5) * sizeof *meta);
    if (!meta)
        return llm_fail(LLM_ERR_NOMEM, "out of memory");
    size_t k = 0;
    meta[k++] = "train.epoch";
    meta[k++] = epoch;
    meta[k++] = "train.index";
    meta[k++] = index;
    for (size_t i = 0; i < n; i++)
        meta[k++] = extra[i];
    meta[k] = NULL;
    llm_save_params sp = { tok, tok_len, 1, meta };
    rc = llm_model_save(t->m, path, &sp);
    free(meta);
    return rc;
}

int llm_trainer_restore(llm_trainer *t, const char *path)
{
    llm_st *f;
    int rc = llm_st_open(path, &f);
    if (rc)
        return rc;
    const char *e = llm_st_meta(f, "train.epoch"), *i = llm_st_meta(f, "train.index");
    char *end1 = NULL, *end2 = NULL;
    llm_data_pos pos = { 0, 0 };
    if (e && i) {
        pos.epoch = strtoull(e, &end1, 10);
        pos.index = strtoull(i, &end2, 10);
    }
    if (!e || !i) {
        llm_st_close(f);
        return llm_fail(LLM_ERR_FORMAT, "'%s': not a training checkpoint (no data "
                        "position; is it a final model file?)", path);
    }
    /* (strtoull takes "-1" as 2^64 - 1: digits only) */
    if (*end1 || *end2 || !isdigit((unsigned char)*e) || !isdigit((unsigned char)*i)) {
        rc = llm_fail(LLM_ERR_FORMAT, "'%s': bad data position (epoch '%s', index '%s')",
                      path, e, i);
        llm_st_close(f);
        return rc;
    }
    llm_st_close(f);
    return llm_batcher_seek(t->b, pos);
}

/* ------------------------------------------------------------------------ */
/* Throughput accounting. */

double llm_config_flops_per_token(const llm_config *c, int T)
{
    /* PaLM's count: 6 per weight of every matrix product (forward 2,
     * backward 4), the output projection included, plus the attention
     * scores and weighted sums, 12 * L * H * hd * T, without the causal
     * halving. */
    double hd = (double)c->dim / c->n_heads;
    double per_layer = (double)c->dim * hd * (c->n_heads * 2 + c->n_kv_heads * 2) +
                       3.0 * c->dim * c->ffn_dim;
    double matmul = c->n_layers * per_layer + (double)c->vocab_size * c->dim;
    return 6 * matmul + 12.0 * c->n_layers * c->n_heads * hd * T;
}

double llm_peak_flops(void)
{
    enum { N = 1024, REPS = 4 };
    float *a = malloc(sizeof(float) * N * N * 3);
    if (!a)
        return 0;
    for (size_t i = 0; i < (size_t)N * N * 3; i++)
        a[i] = (float)((i * 2654435761u) % 1000) * 1e-3f;
    float *b = a + N * N, *c = b + N * N;
    const llm_kernels *k = llm_kernels_cpu();   /* c = a . b^T, sgemm */
    k->matmul_forward(c, a, b, N, N, N);
    double best = 0;
    for (int r = 0; r < REPS; r++) {
        struct timespec t0, t1;
        clock_gettime(CLOCK_MONOTONIC, &t0);
        k->matmul_forward(c, a, b, N, N, N);
        clock_gettime(CLOCK_MONOTONIC, &t1);
        double s = (double)(t1.tv_sec - t0.tv_sec) + 1e-9 * (double)(t1.tv_nsec - t0.tv_nsec);
        double f = 2.0 * N * N * N / s;
        if (f > best)
            best = f;
    }
    free(a);
    return best;
}
