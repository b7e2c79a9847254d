/* testparam.h: a parameter's values, gradient or AdamW moments copied to
 * and from the host, for tests: they live in the model's device memory,
 * reached through llm_model_param_read() and llm_model_param_write() only.
 * Each gives up (exit 1) on failure. */
#ifndef TESTPARAM_H
#define TESTPARAM_H

#include <stdio.h>
#include <stdlib.h>

#include "llm.h"

/* A malloc'ed copy of `what` (LLM_PARAM_*) of parameter i. */
static inline float *param_get(const llm_model *m, size_t i, int what)
{
    llm_param p;
    float *h = NULL;
    if (llm_model_param_at(m, i, &p) != LLM_OK ||
        !(h = malloc(p.numel ? p.numel * sizeof *h : 1)) ||
        llm_model_param_read(m, i, what, h) != LLM_OK) {
        printf("FAIL %s:%d: parameter %zu part %d: %s\n", __FILE__, __LINE__, i, what,
               llm_errmsg());
        exit(1);
    }
    return h;
}

/* Writes `what` of parameter i from numel floats at src. */
static inline void param_set(llm_model *m, size_t i, int what, const float *src)
{
    if (llm_model_param_write(m, i, what, src) != LLM_OK) {
        printf("FAIL %s:%d: parameter %zu part %d: %s\n", __FILE__, __LINE__, i, what,
               llm_errmsg());
        exit(1);
    }
}

/* The index of the parameter called name (its description into *p when p
 * is not NULL). */
static inline size_t param_index(const llm_model *m, const char *name, llm_param *p)
{
    llm_param q;
    size_t i;
    if (llm_model_param_find(m, name, p ? p : &q, &i) != LLM_OK) {
        printf("FAIL %s:%d: %s\n", __FILE__, __LINE__, llm_errmsg());
        exit(1);
    }
    return i;
}

/* Sets element j of `what` of parameter i to v; @return its old value. */
#endif
