/* pairs.c: input -> output pairs (llm-train --task pairs): the prompt layout
 * stored in the model, examples as ids with their prompt length, packing
 * into rows of the batch with each example attending to itself only, the
 * batcher over those rows, and the validation loss. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "internal.h"
#include "model/model.h"
#include "train.h"

/* Examples in the open rows the packer tries before starting a new one. */
#define OPEN_ROWS 16

struct llm_pairs {
    llm_ids ids;          /* every example's ids, one after another */
    size_t *off;          /* (count + 1) starts in ids */
    size_t *prompt;       /* (count) prompt lengths */
    size_t count, off_cap, prompt_cap;
    /* The packing: row r holds examples ex[roff[r] .. roff[r + 1]). */
    int T;
    int shuffled;
    size_t *ex, *roff;
    size_t *cut;          /* (count) prompt tokens left out from the start */
    size_t rows;
    size_t dropped;
};

int llm_model_set_pairs(llm_model *m, const char *layout)
{
    if (!layout) {
        m->pairs = NULL;
        return LLM_OK;
    }
    if (strcmp(layout, "eos") == 0) {
        m->pairs = "eos";
        return LLM_OK;
    }
    if (strcmp(layout, "chat") == 0) {
        if (!m->chat)
            return llm_fail(LLM_ERR_INVALID, "the pairs layout 'chat' needs a model with a "
                            "chat template");
        m->pairs = "chat";
        return LLM_OK;
    }
    return llm_fail(LLM_ERR_INVALID, "unknown pairs layout '%s' (eos, chat)", layout);
}

const char *llm_model_pairs(const llm_model *m)
{
    return m->pairs;
}

int llm_pairs_encode(const llm_model *m, const llm_tok *t, const char *in, size_t n,
                     const char *output, size_t on, llm_ids *ids, size_t *n_prompt)
{
    if (!m->pairs)
        return llm_fail(LLM_ERR_INVALID, "the model is not an input -> output model");
    int eos = llm_tok_eos_id(t), bos = llm_tok_bos_id(t), rc = LLM_OK;
    if (eos < 0)
        return llm_fail(LLM_ERR_INVALID, "the tokenizer has no EOS token to end outputs with");
    size_t first = ids->len;
    if (strcmp(m->pairs, "chat") == 0) {
        const char *sys = m->chat_system;
        rc = llm_chat_encode(t, m->chat, sys, sys ? strlen(sys) : 0, in, n, ids);
    } else {
        if (bos >= 0)
            rc = llm_ids_push(ids, bos);
        if (!rc)
            rc = llm_tok_encode(t, in, n, ids);
        if (!rc)
            rc = llm_ids_push(ids, eos);
    }
    if (!rc && n_prompt)
        *n_prompt = ids->len - first;
    if (!rc && output) {
        rc = llm_tok_encode(t, output, on, ids);
        if (!rc)
            rc = llm_ids_push(ids, eos);
    }
    return rc;
}

static int json_field(const llm_json_node *root, const char *key, llm_buf *b)
{
    const llm_json_node *v = llm_json_get(root, key);
    if (!v || v->type != LLM_JSON_STRING)
        return llm_fail(LLM_ERR_FORMAT, "the JSON object has no string \"%s\"", key);
    return llm_buf_append(b, v->str, v->len);
}

int llm_pairs_parse(const char *line, size_t n, llm_buf *in, llm_buf *out)
{
    in->len = out->len = 0;
    int rc = llm_buf_append(in, "", 0);
    if (!rc)
        rc = llm_buf_append(out, "", 0);
    if (rc)
        return rc;
    if (n && line[n - 1] == '\r')
        n--;
    llm_json *j = NULL;
    if (n && line[0] == '{' && llm_json_parse(line, n, "", 0, &j) == LLM_OK &&
        llm_json_root(j)->type == LLM_JSON_OBJECT) {
        rc = json_field(llm_json_root(j), "input", in);
        if (!rc)
            rc = json_field(llm_json_root(j), "output", out);
        llm_json_free(j);
    } else {
        llm_json_free(j);
        const char *tab = memchr(line, '\t', n);
        if (!tab)
            return llm_fail(LLM_ERR_FORMAT, "no tab: expected input<TAB>output (or a JSON "
                            "object with \"input\" and \"output\")");
        size_t a = (size_t)(tab - line);
        if (memchr(tab + 1, '\t', n - a - 1))
            return llm_fail(LLM_ERR_FORMAT, "more than one tab: escape tabs inside a field "
                            "as \\t");
        rc = llm_unescape(line, a, in);
        if (!rc)
            rc = llm_unescape(tab + 1, n - a - 1, out);
    }
    if (rc)
        return rc;
    size_t bad;
    int in_ok = llm_utf8_check(in->data, in->len, &bad);
    if (!in_ok || !llm_utf8_check(out->data, out->len, &bad))
        return llm_fail(LLM_ERR_UTF8, "invalid UTF-8 in the %s at byte %zu",
                        in_ok ? "output" : "input", bad + 1);
    return LLM_OK;
}

/* ------------------------------------------------------------------ data */

int llm_pairs_new(llm_pairs **out)
{
    *out = NULL;
    llm_pairs *d = calloc(1, sizeof *d);
    if (!d || !(d->off = calloc(1, sizeof *d->off))) {
        free(d);
        return llm_fail(LLM_ERR_NOMEM, "out of memory");
    }
    d->off_cap = 1;
    *out = d;
    return LLM_OK;
}

void llm_pairs_free(llm_pairs *d)
{
    if (!d)
        return;
    llm_ids_free(&d->ids);
    free(d->off);
    free(d->prompt);
    free(d->ex);
    free(d->roff);
    free(d->cut);
    free(d);
}

int llm_pairs_add(llm_pairs *d, const int32_t *ids, size_t n, size_t n_prompt)
{
    if (n_prompt < 1 || n_prompt >= n || n > INT32_MAX)
        return llm_fail(LLM_ERR_INVALID, "an example of %zu tokens with a prompt of %zu: need "
                        "1 <= prompt < tokens", n, n_prompt);
    int rc = llm_ids_check(ids, n);
    if (!rc)
        rc = llm_grow((void **)&d->off, &d->off_cap, d->count + 2, sizeof *d->off);
    if (!rc)
        rc = llm_grow((void **)&d->prompt, &d->prompt_cap, d->count + 1, sizeof *d->prompt);
    if (!rc)
        rc = llm_ids_reserve(&d->ids, d->ids.len + n);
    if (rc)
        return rc;
    memcpy(d->ids.data + d->ids.len, ids, n * sizeof *ids);
    d->ids.len += n;
    d->prompt[d->count] = n_prompt;
    d->off[++d->count] = d->ids.len;
    return LLM_OK;
}

size_t llm_pairs_count(const llm_pairs *d)
{
    return d->count;
}

void llm_pairs_example(const llm_pairs *d, size_t i, const int32_t **ids, size_t *n,
                       size_t *n_prompt)
{
    if (ids)
        *ids = d->ids.data + d->off[i];
    if (n)
        *n = d->off[i + 1] - d->off[i];
    if (n_prompt)
        *n_prompt = d->prompt[i];
}

/* ---------------------------------------------------------------- packing */

int llm_pairs_pack(llm_pairs *d, int T, int shuffle, uint64_t seed, size_t *dropped,
                   size_t *truncated)
{
    if (T < 2)
        return llm_fail(LLM_ERR_INVALID, "rows of %d tokens: need at least 2", T);
    size_t n = d->count, kept = 0, cuts = 0, m = n ? n : 1;
    size_t *order = malloc(m * sizeof *order);
    size_t *row = malloc(m * sizeof *row);       /* row of each kept example */
    size_t *fill = malloc(m * sizeof *fill);     /* tokens in each row */
    size_t *ex = malloc(m * sizeof *ex), *roff = malloc((n + 1) * sizeof *roff);
    size_t *cut = malloc(m * sizeof *cut);
    if (!order || !row || !fill || !ex || !roff || !cut) {
        free(order); free(row); free(fill); free(ex); free(roff); free(cut);
        return llm_fail(LLM_ERR_NOMEM, "out of memory for packing %zu examples", n);
    }
    llm_rng rng;
    llm_rng_seed(&rng, seed ^ 0x6a09e667f3bcc909ULL);
    if (shuffle)
        llm_rng_permutation(&rng, order, n);
    else
        for (size_t i = 0; i < n; i++)
            order[i] = i;
    size_t rows = 0;
    for (size_t k = 0; k < n; k++) {
        size_t i = order[k], len = d->off[i + 1] - d->off[i], np = d->prompt[i];
        /* Too long: the prompt loses its first tokens, as llm-generate
         * truncates a prompt, while at least one of them is left to
         * predict the output's first token; an output (with EOS) that
         * fills the row alone leaves the example out. */
        cut[i] = 0;
        if (len > (size_t)T) {
            if (len - np + 1 > (size_t)T) {
                row[i] = SIZE_MAX;
                continue;
            }
            cut[i] = len - (size_t)T;
            len = (size_t)T;
            cuts++;
        }
        size_t r = rows > OPEN_ROWS ? rows - OPEN_ROWS : 0;
        while (r < rows && fill[r] + len > (size_t)T)
            r++;
        if (r == rows)
            fill[rows++] = 0;
        fill[r] += len;
        row[i] = r;
        kept++;
    }
    /* Counting sort by row, keeping the packing order within a row. */
    memset(roff, 0, (rows + 1) * sizeof *roff);
    for (size_t i = 0; i < n; i++)
        if (row[i] != SIZE_MAX)
            roff[row[i] + 1]++;
    for (size_t r = 0; r < rows; r++)
        roff[r + 1] += roff[r];
    memcpy(fill, roff, rows * sizeof *fill);
    for (size_t k = 0; k < n; k++)
        if (row[order[k]] != SIZE_MAX)
            ex[fill[row[order[k]]]++] = order[k];
    free(order);
    free(row);
    free(fill);
    free(d->ex);
    free(d->roff);
    free(d->cut);
    d->ex = ex;
    d->roff = roff;
    d->cut = cut;
    d->rows = rows;
    d->T = T;
    d->shuffled = shuffle;
    d->dropped = n - kept;
    if (dropped)
        *dropped = n - kept;
    if (truncated)
        *truncated = cuts;
    return LLM_OK;
}

int llm_pairs_width(const llm_pairs *d)
{
    return d->T;
}

size_t llm_pairs_rows(const llm_pairs *d)
{
    return d->rows;
}

size_t llm_pairs_row(const llm_pairs *d, size_t r, int32_t *tokens, int32_t *targets,
                     int32_t *starts)
{
    int T = d->T, t = 0;
    for (size_t k = d->roff[r]; k < d->roff[r + 1]; k++) {
        size_t i = d->ex[k], c = d->cut[i];
        size_t len = d->off[i + 1] - d->off[i] - c, np = d->prompt[i] - c;
        const int32_t *ids = d->ids.data + d->off[i] + c;
        for (size_t j = 0; j < len; j++, t++) {
            tokens[t] = ids[j];
            /* Position j predicts ids[j + 1]: counted from the output's
             * first token (j + 1 == np) to EOS. */
            targets[t] = j + 1 >= np && j + 1 < len ? ids[j + 1] : -1;
            starts[t] = t - (int)j;
        }
    }
    size_t used = (size_t)t;
    for (; t < T; t++) {
        tokens[t] = 0;
        targets[t] = -1;
        starts[t] = t;
    }
    return used;
}

int llm_batcher_next_pairs(llm_batcher *b, int B, int32_t *tokens, int32_t *targets,
                           int32_t *starts, uint64_t *tokens_used)
{
    const llm_pairs *d = llm_batcher_pairs(b);
    if (!d)
        return llm_fail(LLM_ERR_INVALID, "the batcher is not over pairs");
    uint64_t used = 0;
    for (int i = 0; i < B; i++) {
        size_t o = (size_t)i * d->T;
        used += llm_pairs_row(d, (size_t)llm_batcher_take(b), tokens + o, targets + o,
                              starts + o);
    }
    if (tokens_used)
        *tokens_used = used;
    return LLM_OK;
}

/* ------------------------------------------------------------- evaluation */

int llm_pairs_eval(llm_model *m, llm_pairs *d, int B, int T, llm_pairs_eval_result *r)
{
    memset(r, 0, sizeof *r);
    if (B < 1)
        return llm_fail(LLM_ERR_INVALID, "batch %d must be positive", B);
    int rc = LLM_OK;
    if ((d->T != T || d->shuffled || !d->ex) && (rc = llm_pairs_pack(d, T, 0, 0, NULL, NULL)))
        return rc;   /* packed in file order once, then reused */
    if (d->rows == 0)
        return llm_fail(LLM_ERR_INVALID, "no example fits %d tokens", T);
    size_t n = (size_t)B * T;
    int32_t *tok = malloc(n * sizeof *tok), *tgt = malloc(n * sizeof *tgt);
    int32_t *st = malloc(n * sizeof *st);
    if (!tok || !tgt || !st) {
        free(tok); free(tgt); free(st);
        return llm_fail(LLM_ERR_NOMEM, "out of memory");
    }
    double sum = 0;
    uint64_t count = 0;
    for (size_t r0 = 0; r0 < d->rows && !rc; r0 += (size_t)B) {
        int rows = d->rows - r0 < (size_t)B ? (int)(d->rows - r0) : B;
        uint64_t c = 0;
        for (int i = 0; i < rows; i++)
            llm_pairs_row(d, r0 + (size_t)i, tok + (size_t)i * T, tgt + (size_t)i * T,
                          st + (size_t)i * T);
        for (size_t i = 0; i < (size_t)rows * T; i++)
            c += tgt[i] >= 0;
        float loss;
        rc = llm_model_forward_packed(m, tok, tgt, st, rows, T, &loss);
        sum += (double)loss * (double)c;
        count += c;
    }
    free(tok);
    free(tgt);
    free(st);
    if (rc)
        return rc;
    r->loss = count ? sum / (double)count : 0.0;
    r->tokens = count;
    r->examples = d->count - d->dropped;
    return LLM_OK;
}
