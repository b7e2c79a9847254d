/* model_io.c: model files: the parameters, the config as __metadata__ and
 * the tokenizer in one safetensors file (llm-formats(5)); optionally the
 * AdamW state, for checkpoints. */
#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "import.h"
#include "model/model.h"

/* Shortest decimal that reads back as the same double ("10000", "1e-05"). */
static void fmt_double(char *buf, size_t cap, double v)
{
    if (v == floor(v) && fabs(v) < 1e15) {   /* "10000", not "1e+04" */
        snprintf(buf, cap, "%.0f", v);
        return;
    }
    for (int prec = 1; prec <= 17; prec++) {
        snprintf(buf, cap, "%.*g", prec, v);
        if (strtod(buf, NULL) == v)
            return;
    }
}

static int add_meta_int(llm_st_writer *w, const char *key, long long v)
{
    char buf[32];
    snprintf(buf, sizeof buf, "%lld", v);
    return llm_st_writer_meta(w, key, buf);
}

static int add_meta_double(llm_st_writer *w, const char *key, double v)
{
    char buf[40];
    fmt_double(buf, sizeof buf, v);
    return llm_st_writer_meta(w, key, buf);
}

/* A classifier's metadata: "labels" and "thresholds" as JSON arrays. */
static int add_meta_head(llm_st_writer *w, const llm_model *m)
{
    llm_buf b = { 0 };
    char num[40];
    int rc = llm_buf_append(&b, "[", 1);
    for (int i = 0; !rc && i < m->head->n_labels; i++) {
        if (i)
            rc = llm_buf_append(&b, ",", 1);
        if (!rc)
            rc = llm_json_put_string(&b, m->head->labels[i], strlen(m->head->labels[i]));
    }
    if (!rc) rc = llm_buf_append(&b, "]", 2);   /* with the NUL */
    if (!rc) rc = llm_st_writer_meta(w, "labels", b.data);
    if (!rc) rc = llm_st_writer_meta(w, "multi_label", m->head->multi_label ? "1" : "0");
    if (!rc) rc = llm_st_writer_meta(w, "pooling", llm_pooling_name((llm_pooling)m->head->pooling));
    if (!rc) rc = add_meta_double(w, "temperature", m->head->temperature);
    b.len = 0;
    if (!rc) rc = llm_buf_append(&b, "[", 1);
    for (int i = 0; !rc && i < m->head->n_labels; i++) {
        fmt_double(num, sizeof num, m->head->thresholds[i]);
        if (i)
            rc = llm_buf_append(&b, ",", 1);
        if (!rc)
            rc = llm_buf_append(&b, num, strlen(num));
    }
    if (!rc) rc = llm_buf_append(&b, "]", 2);
    if (!rc) rc = llm_st_writer_meta(w, "thresholds", b.data);
    llm_buf_free(&b);
    return rc;
}

int llm_model_save(const llm_model *m, const char *path, const llm_save_params *p)
{
    const llm_config *c = &m->cfg;
    llm_save_params none = { 0 };
    if (!p)
        p = &none;
    if (p->optimizer && !m->opt->adam_m)
        return llm_fail(LLM_ERR_INVALID, "cannot save optimizer state before the first step");
    llm_st_writer *w;
    int rc = llm_st_writer_new(&w);
    if (rc)
        return rc;
    char name[LLM_TENSOR_NAME + 16];
    rc = llm_st_writer_meta(w, "format", "llm");
    if (!rc) rc = llm_st_writer_meta(w, "format_version", "1");
    if (!rc) rc = llm_st_writer_meta(w, "arch", "llama");
    if (!rc) rc = add_meta_int(w, "vocab_size", c->vocab_size);
    if (!rc) rc = add_meta_int(w, "dim", c->dim);
    if (!rc) rc = add_meta_int(w, "n_layers", c->n_layers);
    if (!rc) rc = add_meta_int(w, "n_heads", c->n_heads);
    if (!rc) rc = add_meta_int(w, "n_kv_heads", c->n_kv_heads);
    if (!rc) rc = add_meta_int(w, "ffn_dim", c->ffn_dim);
    if (!rc) rc = add_meta_int(w, "context", c->context);
    if (!rc) rc = add_meta_double(w, "rope_base", c->rope_base);
    if (!rc) rc = add_meta_double(w, "norm_eps", c->norm_eps);
    if (!rc) rc = llm_st_writer_meta(w, "tied", c->tied ? "1" : "0");
    if (!rc) rc = llm_st_writer_meta(w, "task", m->head ? "classify" : m->pairs ? "pairs"
                                                                                : "lm");
    if (!rc && m->pairs)
        rc = llm_st_writer_meta(w, "pairs_layout", m->pairs);
    if (!rc && m->chat)
        rc = llm_st_writer_meta(w, "chat_template", m->chat);
    if (!rc && m->chat && m->chat_system)
        rc = llm_st_writer_meta(w, "chat_system", m->chat_system);
    if (!rc && m->head)
        rc = add_meta_head(w, m);
    /* Adapters: a checkpoint keeps them apart from the base weights, so
     * that a resumed run continues exactly; a model file holds the merged
     * weights W + (alpha / r) B A, readable by every program. */
    int lora = m->lora_rank > 0, merge = lora && !p->optimizer;
    float *merged = NULL;
    size_t n_merged = 0, lora_off = m->n_params - m->n_lora;
    if (!rc) rc = add_meta_int(w, "params", (long long)(merge ? lora_off : m->n_params));
    if (!rc && lora && !merge) {
        char num[40];
        rc = add_meta_int(w, "lora.rank", m->lora_rank);
        fmt_double(num, sizeof num, m->lora_alpha);
        if (!rc)
            rc = llm_st_writer_meta(w, "lora.alpha", num);
    }
    if (!rc && merge && !(merged = llm_model_lora_merged(m, &n_merged)))
        rc = LLM_ERR_NOMEM;
    if (!rc && p->optimizer)
        rc = add_meta_int(w, "adamw.step", (long long)m->opt->steps);
    for (const char *const *kv = p->meta; !rc && kv && kv[0]; kv += 2) {
        if (!kv[1]) {
            rc = llm_fail(LLM_ERR_INVALID, "metadata key '%s' has no value", kv[0]);
            break;
        }
        rc = llm_st_writer_meta(w, kv[0], kv[1]);
    }
    /* The tensors in memory order (by offset in the parameter block), so
     * that the file holds the block as it is and llm_model_load() can map
     * it; then the AdamW moments, each block in the same order. */
    size_t *ord = rc ? NULL : malloc(m->n_tensors * sizeof *ord);
    if (!rc && !ord)
        rc = llm_fail(LLM_ERR_NOMEM, "out of memory");
    for (size_t i = 0; !rc && i < m->n_tensors; i++) {
        size_t j = i;
        for (; j > 0 && m->tensors[ord[j - 1]].offset > m->tensors[i].offset; j--)
            ord[j] = ord[j - 1];
        ord[j] = i;
    }
    size_t moff = (size_t)(m->wqkv - m->params), ng = m->n_params - m->g_off;
    /* The writer reads the blocks when it writes: host views until then. */
    float *owned[4] = { NULL, NULL, NULL, NULL };
    const float *host[4] = { NULL, NULL, NULL, NULL };
    for (int part = 0; !rc && part < (p->optimizer ? 3 : 1); part++) {
        const float *dev = part == 0 ? m->params : part == 1 ? m->opt->adam_m : m->opt->adam_v;
        if (!(host[part] = llm_host_view(m->k, dev, part ? ng : m->n_params, &owned[part])))
            rc = LLM_ERR_NOMEM;
    }
    if (!rc && merged && !(host[3] = llm_host_view(m->k, merged, n_merged, &owned[3])))
        rc = LLM_ERR_NOMEM;
    for (int part = 0; !rc && part < (p->optimizer ? 3 : 1); part++) {
        const float *block = host[part];
        for (size_t i = 0; !rc && i < m->n_tensors; i++) {
            const llm_tensor_desc *t = &m->tensors[ord[i]];
            /* Moments exist from g_off on (frozen weights have none). */
            if ((part > 0 && t->offset < m->g_off) || (merge && t->offset >= lora_off))
                continue;
            const float *d = block + t->offset - (part > 0 ? m->g_off : 0);
            if (merge && t->offset >= moff && t->offset < moff + n_merged)
                d = host[3] + (t->offset - moff);
            snprintf(name, sizeof name, "%s%s", part == 0 ? "" : part == 1 ? "adamw.m."
                     : "adamw.v.", t->name);
            rc = llm_st_writer_add(w, name, LLM_DT_F32, t->ndim, t->shape, d);
        }
    }
    free(ord);
    if (!rc && p->tokenizer) {
        /* A byte-level BPE tokenizer is a tokenizer.json (JSON text); a
         * SentencePiece ModelProto never starts with '{' (field 15 as a
         * group, which proto3 does not have). */
        int64_t n = (int64_t)p->tokenizer_len;
        int json = p->tokenizer_len && *(const char *)p->tokenizer == '{';
        rc = llm_st_writer_add(w, json ? "tokenizer.json" : "tokenizer.model", LLM_DT_U8, 1, &n,
                               p->tokenizer);
    }
    if (!rc)
        rc = llm_st_writer_write(w, path);
    llm_st_writer_free(w);
    for (int i = 0; i < 4; i++)
        free(owned[i]);
    m->k->free(merged);
    return rc;
}

static int meta_int(const llm_st *f, const char *path, const char *key, int *out)
{
    const char *s = llm_st_meta(f, key);
    if (!s)
        return llm_fail(LLM_ERR_FORMAT, "'%s': metadata has no '%s'", path, key);
    char *end;
    errno = 0;
    long v = strtol(s, &end, 10);
    if (errno || end == s || *end || v < INT32_MIN || v > INT32_MAX)
        return llm_fail(LLM_ERR_FORMAT, "'%s': metadata '%s' is not an integer: '%s'",
                        path, key, s);
    *out = (int)v;
    return LLM_OK;
}

static int meta_double(const llm_st *f, const char *path, const char *key, double *out)
{
    const char *s = llm_st_meta(f, key);
    if (!s)
        return llm_fail(LLM_ERR_FORMAT, "'%s': metadata has no '%s'", path, key);
    char *end;
    errno = 0;
    double v = strtod(s, &end);
    if (errno || end == s || *end || !isfinite(v))
        return llm_fail(LLM_ERR_FORMAT, "'%s': metadata '%s' is not a number: '%s'",
                        path, key, s);
    *out = v;
    return LLM_OK;
}

/* Copies tensor `name` of exactly shape t into dst, memory of the table k
 * (file data may be unaligned: upload copies bytes); dst NULL: checks
 * only. */
static int load_tensor(const llm_st *f, const char *path, const char *name,
                       const llm_tensor_desc *t, const llm_kernels *k, float *dst)
{
    const llm_st_tensor *s = llm_st_find(f, name);
    if (!s)
        return llm_fail(LLM_ERR_FORMAT, "'%s': tensor '%s' is missing", path, name);
    if (s->dtype != LLM_DT_F32)
        return llm_fail(LLM_ERR_FORMAT, "'%s': tensor '%s' is %s, expected F32",
                        path, name, llm_dtype_name(s->dtype));
    int ok = s->ndim == t->ndim && s->shape[0] == t->shape[0] &&
             (t->ndim == 1 || s->shape[1] == t->shape[1]);
    if (!ok) {
        char want[48], got[96] = "";
        if (t->ndim == 1)
            snprintf(want, sizeof want, "(%lld)", (long long)t->shape[0]);
        else
            snprintf(want, sizeof want, "(%lld, %lld)", (long long)t->shape[0],
                     (long long)t->shape[1]);
        size_t len = 0;
        for (int d = 0; d < s->ndim && len < sizeof got - 24; d++)
            len += (size_t)snprintf(got + len, sizeof got - len, "%s%lld",
                                    d ? ", " : "", (long long)s->shape[d]);
        return llm_fail(LLM_ERR_FORMAT, "'%s': tensor '%s' has shape (%s), expected %s",
                        path, name, got, want);
    }
    if (dst)
        k->upload(dst, s->data, t->numel * sizeof *dst);
    return LLM_OK;
}

/* The parameter block inside the mapped file, when its tensors lie there
 * as in memory: one run of little-endian F32 in block order, float-aligned.
 * Else NULL, and they are copied. */
static const float *mapped_block(const llm_st *f, const llm_model *m)
{
    const uint32_t one = 1;
    unsigned char little;
    memcpy(&little, &one, 1);
    if (!little)
        return NULL;
    const char *base = NULL;
    size_t total = 0;
    for (size_t i = 0; i < m->n_tensors; i++) {
        const llm_tensor_desc *t = &m->tensors[i];
        const llm_st_tensor *s = llm_st_find(f, t->name);
        if (!s || s->dtype != LLM_DT_F32 || s->nbytes != t->numel * sizeof(float))
            return NULL;
        const char *b = (const char *)s->data - t->offset * sizeof(float);
        if (base && b != base)
            return NULL;
        base = b;
        total += t->numel;
    }
    if (!base || total != m->n_params || (uintptr_t)base % _Alignof(float))
        return NULL;
    return (const float *)base;
}

/* A classifier's head from the metadata: labels, multi_label, pooling,
 * temperature and thresholds; the tensors are read with the others. */
static int load_head(const llm_st *f, const char *path, llm_model *m)
{
    const char *s = llm_st_meta(f, "labels");
    if (!s)
        return llm_fail(LLM_ERR_FORMAT, "'%s': a classifier without metadata 'labels'", path);
    llm_json *j = NULL, *jt = NULL;
    const char **names = NULL;
    float *thr = NULL;
    int rc = llm_json_parse(s, strlen(s), path, 0, &j);
    if (rc)
        return llm_fail_cause(LLM_ERR_FORMAT, "'%s': metadata 'labels'", path);
    const llm_json_node *root = llm_json_root(j);
    int K = root->type == LLM_JSON_ARRAY ? (int)root->count : 0;
    if (root->type != LLM_JSON_ARRAY || root->count < 1 || root->count > (1 << 20)) {
        rc = llm_fail(LLM_ERR_FORMAT, "'%s': metadata 'labels' is not a non-empty JSON array",
                      path);
        goto done;
    }
    names = calloc((size_t)K, sizeof *names);
    thr = malloc((size_t)K * sizeof *thr);
    if (!names || !thr) {
        rc = llm_fail(LLM_ERR_NOMEM, "out of memory");
        goto done;
    }
    int i = 0;
    for (const llm_json_node *n = root->child; n; n = n->next, i++) {
        if (n->type != LLM_JSON_STRING || strlen(n->str) != n->len) {
            rc = llm_fail(LLM_ERR_FORMAT, "'%s': label %d in metadata 'labels' is not a "
                          "string", path, i + 1);
            goto done;
        }
        names[i] = n->str;
    }
    llm_head_params hp = { K, names, 0, LLM_POOL_LAST };
    const char *ml = llm_st_meta(f, "multi_label"), *po = llm_st_meta(f, "pooling");
    if (!ml || (strcmp(ml, "0") != 0 && strcmp(ml, "1") != 0)) {
        rc = llm_fail(LLM_ERR_FORMAT, "'%s': metadata 'multi_label' must be 0 or 1", path);
        goto done;
    }
    hp.multi_label = ml[0] == '1';
    if (!po || llm_pooling_parse(po, &hp.pooling) != LLM_OK) {
        rc = llm_fail(LLM_ERR_FORMAT, "'%s': metadata 'pooling' must be last or mean", path);
        goto done;
    }
    if ((rc = llm_model_add_head(m, &hp, 0))) {
        rc = llm_fail_cause(rc == LLM_ERR_NOMEM ? rc : LLM_ERR_FORMAT, "'%s'", path);
        goto done;
    }
    double temp;
    if ((rc = meta_double(f, path, "temperature", &temp)))
        goto done;
    s = llm_st_meta(f, "thresholds");
    if (!s || llm_json_parse(s, strlen(s), path, 0, &jt) != LLM_OK ||
        llm_json_root(jt)->type != LLM_JSON_ARRAY || (int)llm_json_root(jt)->count != K) {
        rc = llm_fail(LLM_ERR_FORMAT, "'%s': metadata 'thresholds' is not a JSON array of "
                      "%d numbers", path, K);
        goto done;
    }
    i = 0;
    for (const llm_json_node *n = llm_json_root(jt)->child; n; n = n->next, i++) {
        double v;
        if (llm_json_double(n, &v) != 0) {
            rc = llm_fail(LLM_ERR_FORMAT, "'%s': threshold %d is not a number", path, i + 1);
            goto done;
        }
        thr[i] = (float)v;
    }
    if ((rc = llm_model_set_calibration(m, temp, thr))) {
        rc = llm_fail_cause(LLM_ERR_FORMAT, "'%s'", path);
    }
done:
    llm_json_free(j);
    llm_json_free(jt);
    free(names);
    free(thr);
    return rc;
}

int llm_model_load(const char *path, const char *device, llm_model **out)
{
    *out = NULL;
    switch (llm_model_format(path)) {
    case LLM_FORMAT_GGUF:
        return llm_gguf_model_load(path, device, out);
    case LLM_FORMAT_HF:
        return llm_hf_model_load(path, device, out);
    }
    llm_st *f;
    int rc = llm_st_open(path, &f);
    if (rc)
        return rc;
    const char *s;
    llm_model *m = NULL;
    llm_config c;
    memset(&c, 0, sizeof c);
    if (!(s = llm_st_meta(f, "format")) || strcmp(s, "llm") != 0) {
        rc = llm_fail(LLM_ERR_FORMAT, "'%s': not an llm model file (metadata \"format\" is %s%s%s)",
                      path, s ? "'" : "", s ? s : "missing", s ? "'" : "");
        goto done;
    }
    if (!(s = llm_st_meta(f, "format_version")) || strcmp(s, "1") != 0) {
        rc = llm_fail(s ? LLM_ERR_UNSUPPORTED : LLM_ERR_FORMAT,
                      "'%s': model format version %s is not supported (this is version 1)",
                      path, s ? s : "(missing)");
        goto done;
    }
    if ((s = llm_st_meta(f, "arch")) && strcmp(s, "llama") != 0) {
        rc = llm_fail(LLM_ERR_UNSUPPORTED, "'%s': architecture '%s' is not supported", path, s);
        goto done;
    }
    int classify = 0, pairs = 0;
    if ((s = llm_st_meta(f, "task")) && strcmp(s, "lm") != 0) {
        if (strcmp(s, "classify") != 0 && strcmp(s, "pairs") != 0) {
            rc = llm_fail(LLM_ERR_UNSUPPORTED, "'%s': task '%s' is not supported here", path, s);
            goto done;
        }
        classify = s[0] == 'c';
        pairs = s[0] == 'p';
    }
    if ((rc = meta_int(f, path, "vocab_size", &c.vocab_size)) ||
        (rc = meta_int(f, path, "dim", &c.dim)) ||
        (rc = meta_int(f, path, "n_layers", &c.n_layers)) ||
        (rc = meta_int(f, path, "n_heads", &c.n_heads)) ||
        (rc = meta_int(f, path, "n_kv_heads", &c.n_kv_heads)) ||
        (rc = meta_int(f, path, "ffn_dim", &c.ffn_dim)) ||
        (rc = meta_int(f, path, "context", &c.context)) ||
        (rc = meta_double(f, path, "rope_base", &c.rope_base)) ||
        (rc = meta_double(f, path, "norm_eps", &c.norm_eps)) ||
        (rc = meta_int(f, path, "tied", &c.tied)))
        goto done;
    if (llm_config_check(&c) != LLM_OK) {
        rc = llm_fail_cause(LLM_ERR_FORMAT, "'%s': bad model config", path);
        goto done;
    }
    if ((rc = llm_model_alloc(&c, device, &m)))
        goto done;
    if (classify && (rc = load_head(f, path, m)))
        goto done;
    if ((s = llm_st_meta(f, "chat_template")) && llm_model_set_chat(m, s)) {
        rc = llm_fail(LLM_ERR_FORMAT, "'%s': unknown chat template '%s'", path, s);
        goto done;
    }
    if ((s = llm_st_meta(f, "chat_system")) && (rc = llm_model_set_chat_system(m, s)))
        goto done;
    if (pairs && llm_model_set_pairs(m, (s = llm_st_meta(f, "pairs_layout")) ? s : "")) {
        rc = llm_fail(LLM_ERR_FORMAT, "'%s': metadata 'pairs_layout' is %s%s%s (eos, or chat "
                      "with a chat template)", path, s ? "'" : "missing", s ? s : "",
                      s ? "'" : "");
        goto done;
    }
    if ((s = llm_st_meta(f, "lora.rank"))) {
        /* A checkpoint of adapters: the tensors below fill them in. */
        int r;
        double alpha;
        if ((rc = meta_int(f, path, "lora.rank", &r)) ||
            (rc = meta_double(f, path, "lora.alpha", &alpha)))
            goto done;
        if ((rc = llm_model_lora(m, r, alpha, 0))) {
            rc = llm_fail_cause(LLM_ERR_FORMAT, "'%s': bad adapters", path);
            goto done;
        }
    }
    for (size_t i = 0; !rc && i < m->n_tensors; i++)
        rc = load_tensor(f, path, m->tensors[i].name, &m->tensors[i], m->k, NULL);
    /* Inference on the CPU reads the weights where the file lies mapped,
     * shared by every process that loads it; training first takes its own
     * copy (llm_model_own()). */
    const float *mapped = rc || !m->k->host_memory ? NULL : mapped_block(f, m);
    if (mapped) {
        m->k->free(m->params);
        m->params = (float *)(uintptr_t)mapped;
        m->file = f;
        llm_model_views(m);
    }
    for (size_t i = 0; !rc && !mapped && i < m->n_tensors; i++)
        rc = load_tensor(f, path, m->tensors[i].name, &m->tensors[i], m->k,
                         m->params + m->tensors[i].offset);
    if (!rc && llm_st_meta(f, "adamw.step")) {
        int step;
        char name[LLM_TENSOR_NAME + 16];
        if ((rc = meta_int(f, path, "adamw.step", &step)))
            goto done;
        if (step < 0) {
            rc = llm_fail(LLM_ERR_FORMAT, "'%s': adamw.step %d is negative", path, step);
            goto done;
        }
        if ((rc = llm_model_adamw_alloc(m)))
            goto done;
        m->opt->steps = step;
        for (size_t i = 0; !rc && i < m->n_tensors; i++) {
            const llm_tensor_desc *t = &m->tensors[i];
            if (t->offset < m->g_off)
                continue;   /* frozen under adapters: no moments */
            snprintf(name, sizeof name, "adamw.m.%s", t->name);
            rc = load_tensor(f, path, name, t, m->k, m->opt->adam_m + (t->offset - m->g_off));
            snprintf(name, sizeof name, "adamw.v.%s", t->name);
            if (!rc)
                rc = load_tensor(f, path, name, t, m->k, m->opt->adam_v + (t->offset - m->g_off));
        }
    }
done:
    if (!m || m->file != f)
        llm_st_close(f);
    if (rc) {
        llm_model_free(m);
        return rc;
    }
    *out = m;
    return LLM_OK;
}
