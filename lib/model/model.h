/* model.h: the model group's internals (lib/model/): the model's layout
 * and its parts, the block and its hooks, sessions; for lib/format's model
 * files and lib/train's trainer too. Not API. */
#ifndef LLM_MODEL_H
#define LLM_MODEL_H

#include "internal.h"
#include "kernels.h"

#define LLM_TENSOR_NAME 64

typedef struct {
    char name[LLM_TENSOR_NAME];
    int ndim;
    int64_t shape[2];
    size_t numel;
    size_t offset;   /* floats from the start of the parameter block */
} llm_tensor_desc;

/* Reduced-precision copies of a weight w(L * rows, IC), `rows` per layer
 * (lowp.c), in the model's m->lp precision:
 *   LLM_LP_Q8 (llm_model_quantize_q8(), the table's quantize_q8): q (L *
 *       rows) rows of nb = ceil(IC / 32) blocks (kernels.h's LLM_Q8_BYTES);
 *   LLM_LP_BF16 (llm_model_weights_bf16()): for each layer, the table's
 *       pack_bf16 of its rows (panels of 32 rows), one after the other.
 * q NULL: none. */
typedef struct {
    void *q;
    size_t rows;
} llm_lpw;
enum { LLM_LP_NONE, LLM_LP_Q8, LLM_LP_BF16 };

/* Room for the inputs of up to `rows` rows of the widest input of the
 * model's reduced-precision products (lowp.c): q8, quantize_q16's q (rows,
 * nb * 32 int16s), d and s (rows, nb); bf16, matmul_rows_bf16's scratch in
 * q. */
typedef struct {
    void *q;
    float *d, *s;
    size_t rows;
} llm_lpx;

/* The model is three objects around its weights, each with its own type
 * and lifetime: the classifier head (classify.c; absent from a language
 * model), the trainer state (optim.c: gradients, AdamW moments, dropout)
 * and the pass (pass.c: the activations of the last forward over a batch,
 * kept for its backward). Sessions of cached generation and packed
 * classification (infer.c) are made from a model and never stored in it.
 *
 * Every float and int32 block below lives in the memory of the table k
 * (device memory, see kernels.h), which the library reaches through k
 * alone, except where "host" says otherwise. */

/* The classifier head: head.weight and head.bias live at the end of the
 * parameter block, after the n_backbone floats of the language model, so
 * that one AdamW and one file hold them. */
typedef struct {
    int n_labels;          /* K >= 1 */
    int multi_label;       /* 1: independent sigmoids; 0: one softmax */
    int pooling;           /* LLM_POOL_LAST or LLM_POOL_MEAN */
    char **labels;         /* (K) names, owned, host */
    double temperature;    /* calibration: probabilities from logits / T */
    float *thresholds;     /* (K) multi-label decision thresholds, owned, host */
    float *w;              /* (K, C), a view into the parameter block */
    float *b;              /* (K), too */
    int frozen;            /* 1: only the head trains */
    float *cls;            /* pooled (B, C) | logits (B, K) | dlogits (B, K) |
                            * dpooled (B, C) */
    float *cls_host;       /* host: the same layout and the bias (K), where the
                            * head's loss, bias and pooling are computed */
    size_t cls_cap;        /* floats of each */
    int B;                 /* rows of the last classifier forward, 0: none */
    int32_t *lens;         /* host: (B) real tokens per row of the last forward */
    size_t lens_cap;
    int ready;             /* a classifier forward with labels awaits backward */
    int lm;                /* ... with the auxiliary LM loss (scale: dscale) */
} llm_head;

/* The trainer state: what a step changes besides the weights. */
typedef struct {
    float *grads;          /* (n_params - g_off), the parameters' layout from
                            * g_off on; NULL until needed */
    float *adam_m, *adam_v;/* the same, each; NULL until the first step */
    int64_t steps;         /* AdamW steps taken */
    double drop_p;         /* residual dropout probability, 0: off */
    float smooth;          /* label smoothing of the LM loss's gradient, 0: off */
    uint64_t drop_seed;
    int training;          /* dropout applies only while training */
    int drop_active;       /* the last forward used dropout... */
    int64_t drop_micro;    /* ...with masks of this many backwards since the step */
    float *grad_sink;      /* (C) gradient of frozen norm weights, never read */
    int bf16;              /* the weights' products in bf16 (llm_model_set_precision()) */
} llm_optim;

/* The pass: the last forward over a batch (B, T), for its loss, logits and
 * backward. */
typedef struct {
    float *acts;           /* activations, see pass.c */
    size_t acts_cap;       /* floats */
    int32_t *ids;          /* (3, B, T) tokens, targets and document starts */
    int32_t *ids_host;     /* host: the same, written here, then uploaded */
    float *loss_host;      /* host: (B, T) losses of the last loss */
    size_t ids_cap;        /* int32s of each */
    float *logits_host;    /* host: llm_model_logits()'s copy */
    size_t logits_host_cap;
    int B, T;              /* shape of the last forward */
    int packed;            /* it had document starts (ids + 2 B T), which its
                            * attention backward reads again */
    int ready;             /* a forward with targets awaits its backward */
    llm_lpx lpx;           /* the inputs of reduced-precision products (lowp.c) */
    float dscale;          /* 1 / counted targets */
    /* Attribution (explain.c). While emb_scale is set, position i of the
     * next forward sees emb_scale[i] x its token's embedding, plus
     * (1 - emb_scale[i]) x token emb_base's when emb_base >= 0. While
     * input_grad is set, the backward computes no weight gradient and stops
     * at the embeddings' output (llm_model_dinput()). */
    const float *emb_scale;   /* host */
    int emb_base;
    int input_grad;
    /* Evaluation (llm_pass_no_grad()): forwards keep one layer's
     * activations at a time and the logits of LLM_NO_GRAD_ROWS rows, and
     * allow no backward. */
    int no_grad;
    /* Polled before each layer of forwards and backwards while set
     * (llm_pass_stop()): nonzero ends the pass with LLM_ERR_INTERRUPTED. */
    int (*stop)(void *ctx);
    void *stop_ctx;
} llm_pass;

/* The weights and what describes them. */
struct llm_model {
    llm_config cfg;
    const llm_kernels *k;
    int hd, QS, OS;        /* head size; qkv row (H+2KVH)*hd; attention out H*hd */

    size_t n_params;
    size_t n_nodecay;      /* leading floats AdamW never decays by default */
    size_t n_backbone;     /* floats of the language model's parameters */
    float *params;         /* one block; the views below point into it */
    llm_st *file;          /* the model file `params` is mapped from (read
                            * only, shared between processes: on a table of
                            * host memory only), else NULL: params from
                            * k->alloc (llm_model_own()) */
    float *wte;            /* (V, C) */
    float *attn_norm;      /* (L, C) */
    float *ffn_norm;       /* (L, C) */
    float *norm;           /* (C) */
    float *wqkv;           /* (L, (H+2KVH)*hd, C): wq | wk | wv rows per layer */
    float *wo;             /* (L, C, H*hd) */
    float *w13;            /* (L, 2F, C): w1 (gate) | w3 (up) rows per layer */
    float *w2;             /* (L, C, F) */
    float *wout;           /* (V, C); == wte when tied */
    /* IEEE half copies of wqkv, wo, w13, w2 and wout, one block from
     * h_wqkv on, that decoding steps read instead (llm_model_decode_f16());
     * NULL: none. */
    uint16_t *h_wqkv, *h_wo, *h_w13, *h_w2, *h_wout;
    /* Reduced-precision copies of the same five weights, in precision lp
     * (LLM_LP_Q8 or LLM_LP_BF16), one block from lp_wqkv.q on, that every
     * forward reads instead (llm_model_quantize_q8(),
     * llm_model_weights_bf16()); lp_wqkv.q NULL (lp LLM_LP_NONE): none. */
    llm_lpw lp_wqkv, lp_wo, lp_w13, lp_w2, lp_wout;
    int lp;
    float *rope_cos, *rope_sin;   /* (context, hd/2) */
    llm_tensor_desc *tensors;     /* file order, host */
    size_t n_tensors;
    /* Low-rank adapters (LoRA, llm_model_lora()), absent when lora_rank is
     * 0: for each target t (LLM_LORA_Q .. LLM_LORA_W3) A_t (L, r, in_t) and
     * B_t (L, out_t, r), the last n_lora floats of the parameter block.
     * Then only the floats from g_off on train (the head, if any, and the
     * adapters). */
    int lora_rank;         /* r */
    double lora_alpha;     /* the output of B A x is scaled by alpha / r */
    size_t n_lora;
    size_t g_off;          /* 0 without adapters */
    float *lora_a[7], *lora_b[7];
    const char *chat;      /* chat layout ("chatml", "llama2"), a literal, or NULL */
    const char *pairs;     /* an input -> output model's layout ("eos", "chat"), a
                            * literal, or NULL (pairs.c) */
    char *chat_system;     /* the template's default system turn, owned, or NULL */

    llm_head *head;        /* NULL: a language model */
    llm_optim *opt;        /* always there; its blocks allocated when needed */
    llm_pass *pass;        /* always there; its blocks allocated when needed */
};

/* K, or 0 for a language model. */
static inline int llm_n_labels(const llm_model *m)
{
    return m->head ? m->head->n_labels : 0;
}

/* ------------------------------------------------------------ the block
 * llm_block_forward() (forward.c) runs layer l over the n rows of a block:
 * attention sublayer, then feed-forward, each pre-normed with its residual
 * add. What differs between training and a session are the hooks. */

/* The block's matrices: wqkv, wo, w13, w2 of a layer. */
enum { LLM_W_QKV, LLM_W_O, LLM_W_13, LLM_W_2 };

typedef struct {
    int n;              /* rows in */
    float *in;          /* (n, C) residual stream in */
    float *mid;         /* (rows, C) after the attention sublayer (may alias in) */
    float *out;         /* (rows, C) after the feed-forward one (may alias in or mid) */
    float *a1, *rstd1;  /* (n, C), (n): attention's RMSNorm */
    float *qkv;         /* (n, QS) */
    float *atty;        /* (rows, OS) attention's output, written by attend */
    float *a2, *rstd2;  /* (rows, C), (rows): feed-forward's RMSNorm */
    float *h13, *hsw;   /* (rows, 2F), (rows, F) */
    float *tmp;         /* (rows, C) a sublayer's output (may alias a1 / a2) */
    /* NULL: all n rows go on (rows = n). Else only rows keep[0 .. n_keep)
     * (increasing) go on past attention (rows = n_keep): their residual
     * rows move to the front of `in`; with queries_kept_only, the other
     * rows get keys and values but no queries. */
    const int *keep;
    int n_keep;
    int queries_kept_only;
} llm_block;

typedef struct {
    /* out(row map[i] (map NULL: i), OC) = inp(same row) . W^T, W the output
     * features o0 .. o0+OC-1 of matrix w (LLM_W_*) of layer l; rows ldi and
     * ldo floats apart. */
    void (*product)(void *ctx, int w, int l, int o0, int OC, float *out, size_t ldo,
                    const float *inp, size_t ldi, const int *map, int N);
    /* RoPE in place on nh heads from x of rows map[i] (map NULL: 0 .. N-1)
     * of qkv (QS floats apart), each at its position. */
    void (*rope)(void *ctx, float *x, int nh, const int *map, int N);
    /* atty from qkv: causal attention of the rows that go on. */
    void (*attend)(void *ctx, int l, const llm_block *b);
    /* On a sublayer's output y (n, C) before its residual add (site 0:
     * attention, 1: feed-forward); NULL: nothing. */
    void (*sublayer)(void *ctx, int l, int site, float *y, int n);
    void *ctx;
} llm_block_ops;

void llm_block_forward(const llm_model *m, const llm_block_ops *ops, int l,
                       const llm_block *b);

/* A model with allocated, uninitialised parameters. */
int llm_model_alloc(const llm_config *c, const char *device, llm_model **out);
/* Adapter t's input and output features, and where its output lies in a
 * row of the fused projection (column col of ld floats), which is also the
 * first row of its base weight in the layer's fused weight (model.c). */
void  llm_lora_dims(const llm_model *m, int t, int *in, int *out, int *col, int *ld);
float llm_lora_scale(const llm_model *m);   /* alpha / r */

/* The trainer state (optim.c). */
int    llm_model_adamw_alloc(llm_model *m);
int    llm_grads_alloc(llm_model *m);
/* x[i] *= mask(i) / (1 - p) for the dropout mask of `site` (2 per layer),
 * keyed by a hash of the seed, step, micro-batch and site. */
void   llm_dropout_apply(const llm_model *m, float *x, size_t n, int site);
void   llm_optim_drop(llm_model *m);   /* frees gradients and moments */
void   llm_optim_free(llm_model *m);
void   llm_pass_free(llm_model *m);    /* pass.c */

/* Reduced-precision products (lowp.c), when m->lp_wqkv.q: room in x for
 * `rows` inputs; its release; and out(row map[n], OC) (map NULL: n; rows
 * ldo floats apart) = the table's matmul_rows_q8 of rows map[n] of inp
 * (ldi floats apart) quantized into x, or its matmul_rows_bf16, against
 * rows row0 .. row0+OC-1 of w (counted over all layers), whose rows are
 * IC wide, for n in [0, N) (N <= x->rows). */
int    llm_lpx_reserve(const llm_model *m, llm_lpx *x, size_t rows);
void   llm_lpx_free(const llm_model *m, llm_lpx *x);
void   llm_lp_product(const llm_model *m, llm_lpx *x, float *out, size_t ldo,
                      const float *inp, size_t ldi, const int *map, const llm_lpw *w,
                      size_t row0, int N, int IC, int OC);
void   llm_head_free(llm_model *m);    /* classify.c */

/* The trunk shared by the language-model and classifier passes (model.c):
 * checks tokens (and targets, when not NULL) and reserves activations;
 * runs embedding .. final RMSNorm into the `af` activations (B, T, C); and
 * back from their gradient, in the `da` activations, to the embedding. */
int   llm_model_forward_hidden(llm_model *m, const int32_t *tokens,
                               const int32_t *targets, const int32_t *starts, int B, int T);
float *llm_model_hidden(const llm_model *m);    /* af of the last forward */
float *llm_model_dhidden(const llm_model *m);   /* da, to be filled by the caller */
/* The output layer over the final hidden states of the last forward, and
 * `weight` times the mean cross-entropy against the targets the caller put
 * in ids + B * T (< 0: none; 0 when there are none). Its gradient:
 * llm_model_lm_backward(), into da (overwritten) and the output weights'
 * (grads must exist). */
double llm_model_lm_loss(llm_model *m, double weight);
void  llm_model_lm_backward(llm_model *m);
int   llm_model_backward_hidden(llm_model *m);
/* Evaluation passes (on = 1), until called with 0: each forward with
 * targets keeps only what its loss needs, one layer's activations at a time
 * and the logits of LLM_NO_GRAD_ROWS rows at a time (a few hundred MB where
 * a training pass of a 30-layer model over 8 x 1024 tokens keeps tens of
 * GB); llm_model_logits() gives NULL and backwards are refused. */
#define LLM_NO_GRAD_ROWS 256
void llm_pass_no_grad(llm_model *m, int on);

/* Passes that stop before a layer when stop(ctx) returns nonzero
 * (LLM_ERR_INTERRUPTED, the pass's results undefined), until called with
 * NULL. */
void llm_pass_stop(llm_model *m, int (*stop)(void *ctx), void *ctx);

/* After a backward under input_grad: (B, T, C) gradient of the embeddings'
 * output (each row's input to the first layer). */
float *llm_model_dinput(const llm_model *m);
/* From the last llm_cls_forward() (any targets): dlogits (B, K), host,
 * back to llm_model_dinput(), no weight gradient computed (classify.c). */
int   llm_cls_backward_input(llm_model *m, const float *dlogits);
/* The backbone over nd documents packed as rows, each at its own positions
 * from 0 and attending only to itself, with nothing cached (infer.c):
 * pooled (nd, C) = their final RMSNorm'd hidden states pooled by `pooling`
 * (LLM_POOL_LAST or LLM_POOL_MEAN, as in llm_cls_forward()). Past the last
 * layer's keys and values only the rows pooling reads are computed. Each
 * document's result is the same whatever the others and the thread count
 * on the CPU kernels. */
/*! llm_session_model() : the model a session runs. */
const llm_model *llm_session_model(const llm_session *s);
/* Each of n documents has 1 to context tokens, every one in the vocabulary. */
int   llm_check_docs(const llm_model *m, const int32_t *const *docs, const size_t *lens,
                     size_t n);
/* A session for llm_session_pooled() alone: no key/value cache. */
int   llm_session_new_packed(const llm_model *m, struct llm_session **out);
int   llm_session_pooled(struct llm_session *s, const int32_t *const *docs,
                         const size_t *lens, int nd, int pooling, float *pooled);
/* The adapted projections, in the order of their adapter families. */
enum { LLM_LORA_Q, LLM_LORA_K, LLM_LORA_V, LLM_LORA_O, LLM_LORA_W1, LLM_LORA_W2,
       LLM_LORA_W3, LLM_LORA_N };
/* A copy of the layers' 2-D weights (wqkv | wo | w13 | w2, from m->wqkv
 * on, n_layer2d floats) with each adapter merged in: W + (alpha/r) B A, in
 * the table's memory (free with m->k->free). NULL when out of memory
 * (reason set). */
float *llm_model_lora_merged(const llm_model *m, size_t *n_layer2d);
/* n floats of the table's memory at dev, readable on the host: dev itself
 * where the table's memory is host memory, else a copy in *owned (free()
 * it; NULL otherwise). NULL when out of memory, or when the device failed
 * (reason set). For writing weights out to files without doubling the
 * memory on the CPU. */
const float *llm_host_view(const llm_kernels *k, const float *dev, size_t n, float **owned);
/* LLM_OK, or LLM_ERR_DEVICE with the reason when an entry of k failed
 * since the last check (the table's `failure`: a GPU's kernels fail after
 * they return). Checked where results come back from the device: a
 * forward's loss, a session's logits, a classifier's probabilities, every
 * host view and parameter read (so no file is written from a failed
 * device). */
int   llm_device_ok(const llm_kernels *k);
/* The same to change them: then llm_host_done() puts a copy back (and
 * frees it). */
float *llm_host_edit(const llm_kernels *k, float *dev, size_t n, float **owned);
void  llm_host_done(const llm_kernels *k, float *dev, float *owned, size_t n);
/* Points the views (wte, ..., head_w, head_b) into m->params. */
void  llm_model_views(llm_model *m);

#endif
