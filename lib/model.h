/* model.h: the model's internal layout, shared by model.c and model_io.c;
 * not API. */
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

struct llm_model {
    llm_config cfg;
    const llm_kernels *k;
    int hd, QS, OS;        /* head size; qkv row (H+2KVH)*hd; attention out H*hd */

    size_t n_params;
    size_t n_nodecay;      /* leading floats AdamW never decays by default */
    float *params;         /* one block; the views below point into it */
    float *wte;            /* (V, C) */
    float *attn_norm;      /* (L, C) */
    float *ffn_norm;       /* (L, C) */
    float *norm;           /* (C) */
    float *wqkv;           /* (L, (H+2KVH)*hd, C): wq | wk | wv rows per layer */
    float *wo;             /* (L, C, H*hd) */
    float *w13;            /* (L, 2F, C): w1 (gate) | w3 (up) rows per layer */
    float *w2;             /* (L, C, F) */
    float *wout;           /* (V, C); == wte when tied */
    float *grads;          /* (n_params), same layout; NULL until needed */
    float *adam_m, *adam_v;/* (n_params) each; NULL until the first step */
    int64_t steps;

    float *rope_cos, *rope_sin;   /* (context, hd/2) */
    llm_tensor_desc *tensors;     /* file order */
    size_t n_tensors;

    float *acts;           /* activations of the last forward, see acts */
    size_t acts_cap;       /* floats */
    int32_t *ids;          /* (2, B, T) tokens and targets of the last forward */
    size_t ids_cap;
    int B, T;              /* shape of the last forward */
    int ready;             /* a forward with targets awaits its backward */
    float dscale;          /* 1 / counted targets */
};

/* A model with allocated, uninitialised parameters. */
int llm_model_alloc(const llm_config *c, const char *device, llm_model **out);
int llm_model_adamw_alloc(llm_model *m);

#endif
