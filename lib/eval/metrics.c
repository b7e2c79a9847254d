/* metrics.c: classification metrics over label names: a confusion-matrix
 * accumulator (single-label) or per-label decision counts (multi-label),
 * accuracy, per-label precision/recall/F1/support, macro and micro averages,
 * and expected calibration error. Definitions in llm.h and llm-eval(1). */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "internal.h"

#define ECE_BINS 10

typedef struct {
    char *name;            /* NUL-terminated copy */
    size_t len;
    int cls;               /* report order: 0 declared, 1 seen as gold, 2 predicted only */
    uint64_t seq;          /* order within its class */
    uint64_t support, predicted, tp;
    uint64_t mark;         /* multi-label: last record that touched it, x2 + role bits */
} label;

typedef struct {
    uint64_t key;          /* gold << 32 | predicted, internal ids; EMPTY when unused */
    uint64_t count;
} cell;

#define EMPTY UINT64_MAX

struct llm_metrics {
    int multi;
    label *labels;         /* internal id order (first interned first) */
    size_t n, cap;
    int *slots;            /* name hash: internal id + 1, 0 = empty */
    size_t nslots;
    cell *cells;           /* single-label confusion counts */
    size_t ncells, cells_cap;
    uint64_t seq[3];
    uint64_t records, exact;
    int prob_state;        /* 0 no records yet, 1 every record has one, 2 none has */
    uint64_t bin_n[ECE_BINS];
    double bin_conf[ECE_BINS], bin_correct[ECE_BINS];
    size_t *order;         /* report position -> internal id, after summarising */
    size_t *rank;          /* internal id -> report position */
    size_t ordered;        /* labels covered by order[] (== n when current) */
    int *scratch;          /* multi-label record: ids touched */
    size_t scratch_cap;
};

int llm_metrics_new(int multi_label, llm_metrics **out)
{
    *out = NULL;
    llm_metrics *m = calloc(1, sizeof *m);
    if (!m)
        return llm_fail(LLM_ERR_NOMEM, "out of memory");
    m->multi = multi_label != 0;
    *out = m;
    return LLM_OK;
}

void llm_metrics_free(llm_metrics *m)
{
    if (!m)
        return;
    for (size_t i = 0; i < m->n; i++)
        free(m->labels[i].name);
    free(m->labels);
    free(m->slots);
    free(m->cells);
    free(m->order);
    free(m->rank);
    free(m->scratch);
    free(m);
}

static uint64_t hash_bytes(const char *s, size_t n)
{
    uint64_t h = 1469598103934665603ull;   /* FNV-1a */
    for (size_t i = 0; i < n; i++)
        h = (h ^ (unsigned char)s[i]) * 1099511628211ull;
    return h;
}

static uint64_t hash_u64(uint64_t x)
{
    x ^= x >> 33;
    x *= 0xff51afd7ed558ccdull;
    x ^= x >> 33;
    return x;
}

static int rehash_labels(llm_metrics *m, size_t nslots)
{
    int *s = calloc(nslots, sizeof *s);
    if (!s)
        return llm_fail(LLM_ERR_NOMEM, "out of memory");
    for (size_t i = 0; i < m->n; i++) {
        size_t j = hash_bytes(m->labels[i].name, m->labels[i].len) & (nslots - 1);
        while (s[j])
            j = (j + 1) & (nslots - 1);
        s[j] = (int)i + 1;
    }
    free(m->slots);
    m->slots = s;
    m->nslots = nslots;
    return LLM_OK;
}

/* The internal id of s[0..n), interned with class `cls` when new; a label
 * already known moves to an earlier class (predicted-only -> gold). */
static int intern(llm_metrics *m, const char *s, size_t n, int cls, size_t *id)
{
    if (m->nslots == 0 || (m->n + 1) * 2 > m->nslots) {
        int rc = rehash_labels(m, m->nslots ? m->nslots * 2 : 64);
        if (rc)
            return rc;
    }
    size_t j = hash_bytes(s, n) & (m->nslots - 1);
    for (; m->slots[j]; j = (j + 1) & (m->nslots - 1)) {
        label *l = &m->labels[m->slots[j] - 1];
        if (l->len == n && memcmp(l->name, s, n) == 0) {
            if (cls < l->cls) {
                l->cls = cls;
                l->seq = m->seq[cls]++;
            }
            *id = (size_t)m->slots[j] - 1;
            return LLM_OK;
        }
    }
    if (m->n >= (size_t)INT32_MAX)
        return llm_fail(LLM_ERR_RANGE, "too many labels");
    int rc = llm_grow((void **)&m->labels, &m->cap, m->n + 1, sizeof *m->labels);
    if (rc)
        return rc;
    char *copy = malloc(n + 1);
    if (!copy)
        return llm_fail(LLM_ERR_NOMEM, "out of memory");
    memcpy(copy, s, n);
    copy[n] = '\0';
    label *l = &m->labels[m->n];
    memset(l, 0, sizeof *l);
    l->name = copy;
    l->len = n;
    l->cls = cls;
    l->seq = m->seq[cls]++;
    m->slots[j] = (int)m->n + 1;
    *id = m->n++;
    return LLM_OK;
}

int llm_metrics_declare(llm_metrics *m, const char *name, size_t len)
{
    size_t id;
    return intern(m, name, len, 0, &id);
}

static cell *find_cell(cell *cells, size_t cap, uint64_t key)
{
    size_t j = hash_u64(key) & (cap - 1);
    while (cells[j].key != EMPTY && cells[j].key != key)
        j = (j + 1) & (cap - 1);
    return &cells[j];
}

static int count_pair(llm_metrics *m, size_t g, size_t p)
{
    if (m->cells_cap == 0 || (m->ncells + 1) * 2 > m->cells_cap) {
        size_t cap = m->cells_cap ? m->cells_cap * 2 : 64;
        cell *c = malloc(cap * sizeof *c);
        if (!c)
            return llm_fail(LLM_ERR_NOMEM, "out of memory");
        for (size_t i = 0; i < cap; i++)
            c[i].key = EMPTY;
        for (size_t i = 0; i < m->cells_cap; i++)
            if (m->cells[i].key != EMPTY)
                *find_cell(c, cap, m->cells[i].key) = m->cells[i];
        free(m->cells);
        m->cells = c;
        m->cells_cap = cap;
    }
    uint64_t key = (uint64_t)g << 32 | (uint64_t)p;
    cell *c = find_cell(m->cells, m->cells_cap, key);
    if (c->key == EMPTY) {
        c->key = key;
        c->count = 0;
        m->ncells++;
    }
    c->count++;
    return LLM_OK;
}

static int push_scratch(llm_metrics *m, size_t *k, size_t id)
{
    int rc = llm_grow((void **)&m->scratch, &m->scratch_cap, *k + 1, sizeof *m->scratch);
    if (rc)
        return rc;
    m->scratch[(*k)++] = (int)id;
    return LLM_OK;
}

int llm_metrics_add(llm_metrics *m, const char *const *gold, const size_t *gold_len,
                    size_t n_gold, const char *const *pred, const size_t *pred_len,
                    size_t n_pred, double prob)
{
    if (!m->multi && (n_gold != 1 || n_pred != 1))
        return llm_fail(LLM_ERR_INVALID, "a single-label record has one gold and one "
                        "predicted label (%zu and %zu given)", n_gold, n_pred);
    int has_prob = !(prob < 0);
    if (has_prob && !(prob <= 1))
        return llm_fail(LLM_ERR_RANGE, "probability %g is not in [0, 1]", prob);
    if (m->prob_state && m->prob_state != (has_prob ? 1 : 2))
        return llm_fail(LLM_ERR_INVALID, has_prob ?
                        "a probability where earlier records have none" :
                        "no probability where earlier records have one");
    int correct, rc;
    if (!m->multi) {
        size_t g, p;
        if ((rc = intern(m, gold[0], gold_len[0], 1, &g)) ||
            (rc = intern(m, pred[0], pred_len[0], 2, &p)) ||
            (rc = count_pair(m, g, p)))
            return rc;
        m->labels[g].support++;
        m->labels[p].predicted++;
        correct = g == p;
        m->labels[g].tp += (uint64_t)correct;
    } else {
        /* mark: record stamp in the high bits, bit 0 gold, bit 1 predicted;
         * a label given twice in one set counts once. */
        uint64_t stamp = (m->records + 1) << 2;
        size_t k = 0;
        for (int side = 0; side < 2; side++) {
            const char *const *s = side ? pred : gold;
            const size_t *len = side ? pred_len : gold_len;
            size_t cnt = side ? n_pred : n_gold;
            for (size_t i = 0; i < cnt; i++) {
                size_t id;
                if ((rc = intern(m, s[i], len[i], side ? 2 : 1, &id)))
                    return rc;
                label *l = &m->labels[id];
                if ((l->mark & ~(uint64_t)3) != stamp) {
                    l->mark = stamp;
                    if ((rc = push_scratch(m, &k, id)))
                        return rc;
                }
                l->mark |= side ? 2u : 1u;
            }
        }
        correct = 1;
        for (size_t i = 0; i < k; i++) {
            label *l = &m->labels[m->scratch[i]];
            int in_gold = (l->mark & 1) != 0, in_pred = (l->mark & 2) != 0;
            l->support += (uint64_t)in_gold;
            l->predicted += (uint64_t)in_pred;
            l->tp += (uint64_t)(in_gold && in_pred);
            if (in_gold != in_pred)
                correct = 0;
        }
    }
    m->records++;
    m->exact += (uint64_t)correct;
    m->prob_state = has_prob ? 1 : 2;
    if (has_prob) {
        int b = (int)floor(prob * ECE_BINS);
        if (b >= ECE_BINS)       /* 1.0 belongs to the last bin */
            b = ECE_BINS - 1;
        m->bin_n[b]++;
        m->bin_conf[b] += prob;
        m->bin_correct[b] += correct;
    }
    return LLM_OK;
}

typedef struct {
    uint64_t cls, seq;
    size_t id;
} order_key;

static int by_report_order(const void *a, const void *b)
{
    const order_key *x = a, *y = b;
    if (x->cls != y->cls)
        return x->cls < y->cls ? -1 : 1;
    return x->seq < y->seq ? -1 : x->seq > y->seq;
}

static int make_order(llm_metrics *m)
{
    if (m->ordered == m->n && m->order)
        return LLM_OK;
    size_t n = m->n ? m->n : 1;
    size_t *o = malloc(n * sizeof *o), *r = malloc(n * sizeof *r);
    order_key *k = malloc(n * sizeof *k);
    if (!o || !r || !k) {
        free(o);
        free(r);
        free(k);
        return llm_fail(LLM_ERR_NOMEM, "out of memory");
    }
    /* Sequence numbers are unique within a class: the order is total, and
     * qsort's instability does not matter. */
    for (size_t i = 0; i < m->n; i++)
        k[i] = (order_key){ (uint64_t)m->labels[i].cls, m->labels[i].seq, i };
    qsort(k, m->n, sizeof *k, by_report_order);
    for (size_t i = 0; i < m->n; i++) {
        o[i] = k[i].id;
        r[k[i].id] = i;
    }
    free(k);
    free(m->order);
    free(m->rank);
    m->order = o;
    m->rank = r;
    m->ordered = m->n;
    return LLM_OK;
}

static double ratio(uint64_t a, uint64_t b)
{
    return b ? (double)a / (double)b : 0.0;
}

int llm_metrics_summary(llm_metrics *m, llm_metrics_result *r)
{
    memset(r, 0, sizeof *r);
    r->multi_label = m->multi;
    r->ece = NAN;
    if (m->records == 0)
        return llm_fail(LLM_ERR_INVALID, "no records");
    int rc = make_order(m);
    if (rc)
        return rc;
    r->records = m->records;
    r->labels = m->n;
    r->accuracy = ratio(m->exact, m->records);
    uint64_t tp = 0, sup = 0, pred = 0;
    double sp = 0, sr = 0, sf = 0;
    for (size_t i = 0; i < m->n; i++) {
        const label *l = &m->labels[i];
        tp += l->tp;
        sup += l->support;
        pred += l->predicted;
        sp += ratio(l->tp, l->predicted);
        sr += ratio(l->tp, l->support);
        sf += ratio(2 * l->tp, l->support + l->predicted);
    }
    if (m->n) {
        r->macro_precision = sp / (double)m->n;
        r->macro_recall = sr / (double)m->n;
        r->macro_f1 = sf / (double)m->n;
    }
    r->micro_precision = ratio(tp, pred);
    r->micro_recall = ratio(tp, sup);
    r->micro_f1 = ratio(2 * tp, sup + pred);
    r->decisions = m->multi ? sup + pred - tp : m->records;
    r->has_prob = m->prob_state == 1;
    if (r->has_prob) {
        double e = 0;
        for (int b = 0; b < ECE_BINS; b++)
            if (m->bin_n[b])
                e += fabs(m->bin_correct[b] - m->bin_conf[b]);
        /* sum_b n_b/N |acc_b - conf_b| = sum_b |correct_b - conf_sum_b| / N */
        r->ece = e / (double)m->records;
    }
    return LLM_OK;
}

int llm_metrics_label_at(const llm_metrics *m, size_t i, llm_label_stats *s)
{
    memset(s, 0, sizeof *s);
    if (!m->order || m->ordered != m->n)
        return llm_fail(LLM_ERR_INVALID, "llm_metrics_summary() first");
    if (i >= m->n)
        return llm_fail(LLM_ERR_RANGE, "label %zu of %zu", i, m->n);
    const label *l = &m->labels[m->order[i]];
    s->name = l->name;
    s->len = l->len;
    s->support = l->support;
    s->predicted = l->predicted;
    s->tp = l->tp;
    s->precision = ratio(l->tp, l->predicted);
    s->recall = ratio(l->tp, l->support);
    s->f1 = ratio(2 * l->tp, l->support + l->predicted);
    return LLM_OK;
}

uint64_t llm_metrics_confusion(const llm_metrics *m, size_t gold, size_t pred)
{
    if (m->multi || !m->order || m->ordered != m->n || gold >= m->n || pred >= m->n ||
        !m->cells_cap)
        return 0;
    uint64_t key = (uint64_t)m->order[gold] << 32 | (uint64_t)m->order[pred];
    const cell *c = find_cell(m->cells, m->cells_cap, key);
    return c->key == key ? c->count : 0;
}

int llm_metrics_ece_bin(const llm_metrics *m, int bin, uint64_t *count,
                        double *confidence, double *accuracy)
{
    if (bin < 0 || bin >= ECE_BINS)
        return llm_fail(LLM_ERR_RANGE, "bin %d of %d", bin, ECE_BINS);
    *count = m->bin_n[bin];
    *confidence = m->bin_n[bin] ? m->bin_conf[bin] / (double)m->bin_n[bin] : 0;
    *accuracy = m->bin_n[bin] ? m->bin_correct[bin] / (double)m->bin_n[bin] : 0;
    return LLM_OK;
}
