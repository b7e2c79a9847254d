/* llm-eval.c: measure a model. Scores predictions against gold labels
 * (--pairs: accuracy, per-label precision/recall/F1, macro/micro-F1,
 * confusion matrix, calibration), generated text against references
 * (--pairs --text: BLEU, chrF2, exact match, token F1, ROUGE-L), a
 * classifier on labelled text (the same report, from its own predictions),
 * or a language model on text or token files (loss, perplexity, bits per
 * byte). Options, reading and the report only; the metrics are
 * lib/eval/metrics.c and lib/eval/textmetrics.c, prediction lib/model/classify.c, the loss
 * lib/train/train.c. */
#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "plot.h"

/* Option values, holding their defaults (--help prints them from here). */
static int o_pairs, o_text, o_multi, o_quiet, o_threads;
static const char *o_model, *o_task, *o_labels, *o_leakage, *o_plot;
static double o_similarity = 0.8;
static const char *o_format = "text";
static const char *o_device = "cpu", *o_precision = "f32";
static int o_batch, o_context, o_top_tokens;
static int64_t o_max_tokens, o_seed = 1;

static const cli_opt opts[] = {
    {"pairs", 0, CLI_FLAG, &o_pairs, NULL,
     "score predictions: read gold<TAB>predicted[<TAB>probability] lines", NULL, 0, 0,
     0, CLI_COMPLETE_NONE, 1},
    {"text", 0, CLI_FLAG, &o_text, NULL,
     "with --pairs: score generated text: read reference<TAB>hypothesis lines (\\t, "
     "\\n, \\r and \\\\ escaped, as llm-generate writes them) for BLEU, chrF2, "
     "exact match, token F1 and ROUGE-L", NULL, 0, 0, 0, CLI_COMPLETE_NONE, 1},
    {"model", 'm', CLI_STRING, &o_model, "FILE",
     "model file to evaluate: a classifier on labelled text, or a language model on "
     "text or token files", NULL, 0, 0, 0, CLI_COMPLETE_FILE, 0},
    {"leakage", 0, CLI_STRING, &o_leakage, "TRAIN",
     "report each document of FILE (test or validation data) whose text is also in "
     "TRAIN, exactly or nearly, after folding case, Unicode forms, punctuation and "
     "spaces; with --model, also the share of its 13-grams of tokens found in TRAIN",
     NULL, 0, 0, 0, CLI_COMPLETE_FILE, 0},
    {"top-tokens", 0, CLI_INT, &o_top_tokens, "K",
     "with a classifier: for each label, the K tokens that most often drive its "
     "predictions (the 5 highest integrated-gradients scores of each document for each "
     "predicted label), with document counts", NULL, 1, 100000, 0, CLI_COMPLETE_NONE, 1},
    {"plot", 0, CLI_STRING, &o_plot, "FILE",
     "classifiers (--pairs or a classifier model): also draw the confusion matrix as a "
     "heat map and the reliability diagram, as SVG", NULL, 0, 0, 0, CLI_COMPLETE_FILE, 1},
    {"similarity", 0, CLI_DOUBLE, &o_similarity, "X",
     "with --leakage: a near duplicate has at least this Jaccard similarity of "
     "character 5-grams", NULL, 0.01, 1, 0, CLI_COMPLETE_NONE, 0},
    {"task", 0, CLI_CHOICE, &o_task, "TASK",
     "with --model: lm (loss on text) or classify (labelled TSV), default: from the "
     "model file; with --leakage: pairs, the files are input-output pairs "
     "(input<TAB>output or JSON Lines, as llm-train --task pairs reads): inputs are "
     "compared, outputs like labels", "lm|classify|pairs", 0, 0, 0, CLI_COMPLETE_CHOICE,
     1},
    {"multi-label", 0, CLI_FLAG, &o_multi, NULL,
     "with --pairs: each side is a set of labels, comma-separated (or several "
     "__label__ words)", NULL, 0, 0, 0, CLI_COMPLETE_NONE, 1},
    {"labels", 0, CLI_STRING, &o_labels, "LIST",
     "report labels in this order (comma-separated); others follow in order of "
     "appearance", NULL, 0, 0, 0, CLI_COMPLETE_NONE, 0},
    {"format", 0, CLI_CHOICE, &o_format, "FMT",
     "output: an aligned table, or one JSON object", "text|json", 0, 0, 0,
     CLI_COMPLETE_CHOICE, 0},
    {"context", 0, CLI_INT, &o_context, "N",
     "language model: tokens per scored window (0: the model's context, at most 1024, "
     "or the whole text when shorter)", NULL, 0,
     1 << 20, 0, CLI_COMPLETE_NONE, 0},
    {"batch", 'b', CLI_INT, &o_batch, "N",
     "windows (language model) or documents (classifier) per forward pass (0: 8 "
     "windows, 64 documents)", NULL, 0, 65536, 0, CLI_COMPLETE_NONE, 0},
    {"max-tokens", 0, CLI_INT64, &o_max_tokens, "N",
     "language model: score at most N tokens, in whole windows (0: all)", NULL, 0,
     1e15, 0, CLI_COMPLETE_NONE, 0},
    CLI_OPT_THREADS(&o_threads),
    {"seed", 0, CLI_INT64, &o_seed, "N",
     "accepted for uniformity: evaluation draws no random numbers", NULL, 0, 9.2e18, 0,
     CLI_COMPLETE_NONE, 0},
    CLI_OPT_DEVICE(&o_device),
    {"precision", 0, CLI_CHOICE, &o_precision, "P",
     "weights of the model's matrix products: f32; q8: int8 copies in blocks of 32 "
     "with a scale and an offset each, inputs in int16; or bf16: bfloat16 copies, inputs "
     "rounded alike, sums in f32 (CPU only, both)", "f32|q8|bf16", 0, 0, 0,
     CLI_COMPLETE_CHOICE, 0},
    {"quiet", 'q', CLI_FLAG, &o_quiet, NULL, "print no notes on standard error", NULL,
     0, 0, 0, CLI_COMPLETE_NONE, 1},
    CLI_OPT_HELP,
    CLI_OPT_VERSION,
};

static const cli_prog prog = {
    "llm-eval", "--pairs [--text] [FILE]... | -m MODEL [FILE]... | --leakage TRAIN [-m MODEL] "
    "[FILE]...",
    "Score predictions against gold labels, generated text against references, a "
    "classifier on labelled text, or a language model's loss, perplexity and bits "
    "per byte; find test documents that are also in the training data.",
    NULL, 0, opts, (int)(sizeof opts / sizeof opts[0]),
};

static void check(int rc)
{
    if (rc)
        cli_die_status(rc);
}

static const char *display_name(const char *path)
{
    return !path || strcmp(path, "-") == 0 ? "(standard input)" : path;
}

/* ------------------------------------------------------------------------ */
/* Output helpers: everything goes to one buffer, written at the end. */

static llm_buf out;

static void put(const char *s)
{
    check(llm_buf_append(&out, s, strlen(s)));
}

static void putf(const char *fmt, ...) CLI_PRINTF(1, 2);
static void putf(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int rc = llm_buf_vprintf(&out, fmt, ap);
    va_end(ap);
    check(rc);
}

/* A JSON number; NaN or infinity (undefined metrics) as null. */
static void put_num(double x)
{
    if (isfinite(x))
        putf("%.10g", x);
    else
        put("null");
}

static void put_jstr(const char *s, size_t n)
{
    int rc = llm_json_put_string(&out, s, n);
    if (rc == LLM_ERR_UTF8)
        cli_die("label is not valid UTF-8");   /* input lines are checked first */
    check(rc);
}

/* Spaces. */
static void pad(size_t n)
{
    for (size_t i = 0; i < n; i++)
        put(" ");
}

/* Display columns of UTF-8 text (wide CJK characters take two, combining
 * marks none). */
static size_t columns(const char *s, size_t n)
{
    return llm_utf8_columns(s, n, SIZE_MAX, NULL);
}

/* s[0..n) cut to at most `w` columns, the last one an ellipsis when cut;
 * then padded to `w` on the right (left = 0) or the left (left = 1). */
static void put_cell(const char *s, size_t n, size_t w, int right)
{
    size_t shown = n, c = columns(s, n);
    int cut = c > w;
    if (cut) {   /* what fits in w - 1 columns (a wide character left out
                  * rather than cut), and the ellipsis's column */
        llm_utf8_columns(s, n, w > 0 ? w - 1 : 0, &shown);
        c = columns(s, shown) + (w > 0);
    }
    if (right)
        pad(w - c);
    check(llm_buf_append(&out, s, shown));
    if (cut && w > 0)
        put("\xe2\x80\xa6");   /* U+2026 HORIZONTAL ELLIPSIS */
    if (!right)
        pad(w - c);
}

static size_t digits(uint64_t v)
{
    size_t d = 1;
    while (v >= 10) {
        v /= 10;
        d++;
    }
    return d;
}

/* ------------------------------------------------------------------------ */
/* --pairs: gold<TAB>predicted[<TAB>probability] lines. */

#define LABEL_WIDTH 24      /* widest label column of the table */
#define MATRIX_WIDTH 10     /* widest label heading of a confusion column */
#define MATRIX_MAX 40       /* more labels: the text table omits the matrix */

typedef struct {
    const char **s;
    size_t *len;
    size_t n, cap;
} label_list;

static void list_push(label_list *l, const char *s, size_t n)
{
    if (l->n == l->cap) {
        size_t cap = l->cap ? l->cap * 2 : 8;
        const char **a = realloc(l->s, cap * sizeof *a);
        if (a)
            l->s = a;
        size_t *b = realloc(l->len, cap * sizeof *b);
        if (b)
            l->len = b;
        if (!a || !b)
            cli_die("out of memory");
        l->cap = cap;
    }
    l->s[l->n] = s;
    l->len[l->n++] = n;
}

static void trim(const char **s, size_t *n)
{
    while (*n && (**s == ' '))
        (*s)++, (*n)--;
    while (*n && (*s)[*n - 1] == ' ')
        (*n)--;
}

/* Parses a probability; 0 when it is a number in [0, max]. */
static int parse_prob_max(const char *s, size_t n, double max, double *p, const char **why)
{
    char buf[64];
    if (n == 0 || n >= sizeof buf) {
        *why = "is not a number";
        return -1;
    }
    memcpy(buf, s, n);
    buf[n] = '\0';
    char *end;
    errno = 0;
    double v = strtod(buf, &end);
    if (*end || end == buf || !isfinite(v)) {
        *why = "is not a number";
        return -1;
    }
    if (!(v >= 0 && v <= max)) {
        *why = "is not in [0, 1]";
        return -1;
    }
    *p = v;
    return 0;
}

static int parse_prob(const char *s, size_t n, double *p, const char **why)
{
    return parse_prob_max(s, n, 1, p, why);
}

/* fastText prints exp(log(p + 1e-5)) for a probability p (its log is taken
 * with that guard), so 1.00001 for certainty: the 1e-5 is taken back. */
#define FT_EPS 1e-5

#define FT "__label__"
#define FT_LEN 9

/* One side of a record into `l`. Forms: fastText ("__label__a" words, each
 * optionally followed by its probability, as `fasttext predict-prob`
 * writes), a comma-separated set (--multi-label), or one label. Surrounding
 * spaces are not part of a label. *prob: the first label's probability from
 * the fastText form, or -1. Returns NULL, or what is wrong. */
static const char *parse_side(const char *s, size_t n, int is_pred, label_list *l,
                              double *prob, char *why, size_t why_len)
{
    l->n = 0;
    *prob = -1;
    const char *what = is_pred ? "predicted" : "gold";
    trim(&s, &n);
    if (n >= FT_LEN && memcmp(s, FT, FT_LEN) == 0) {
        int last_had_prob = 1;
        size_t nprob = 0;
        for (size_t i = 0; i < n;) {
            while (i < n && s[i] == ' ')
                i++;
            size_t j = i;
            while (j < n && s[j] != ' ')
                j++;
            if (j == i)
                break;
            const char *w = s + i;
            size_t wn = j - i;
            if (wn >= FT_LEN && memcmp(w, FT, FT_LEN) == 0) {
                if (wn == FT_LEN) {
                    snprintf(why, why_len, "empty %s label", what);
                    return why;
                }
                list_push(l, w + FT_LEN, wn - FT_LEN);
                last_had_prob = 0;
            } else {
                double p;
                const char *bad;
                if (!is_pred || last_had_prob ||
                    parse_prob_max(w, wn, 1 + FT_EPS, &p, &bad)) {
                    snprintf(why, why_len, "'%.*s' among fastText %s labels is neither "
                             "__label__NAME nor a probability", (int)(wn > 40 ? 40 : wn),
                             w, what);
                    return why;
                }
                /* Single-label: the top label's; multi-label: the product
                 * of the set's (classifier mode's confidence in a set). */
                p = p > FT_EPS ? p - FT_EPS : 0;
                if (l->n == 1)
                    *prob = p;
                else if (o_multi)
                    *prob *= p;
                nprob++;
                last_had_prob = 1;
            }
            i = j;
        }
        if (o_multi && nprob != l->n)
            *prob = -1;   /* a label without its probability: no confidence */
        if (!o_multi && l->n > 1) {
            if (is_pred) {
                l->n = 1;   /* predict with k > 1: the first is the top label */
            } else {
                snprintf(why, why_len, "%zu gold labels (use --multi-label)", l->n);
                return why;
            }
        }
    } else if (o_multi) {
        for (size_t i = 0; i <= n;) {
            size_t j = i;
            while (j < n && s[j] != ',')
                j++;
            const char *w = s + i;
            size_t wn = j - i;
            trim(&w, &wn);
            if (wn)
                list_push(l, w, wn);
            i = j + 1;
        }
    } else if (n) {
        list_push(l, s, n);
    }
    if (!o_multi && l->n == 0) {
        snprintf(why, why_len, "empty %s label", what);
        return why;
    }
    return NULL;
}

static void read_pairs(llm_metrics *m, const char *path)
{
    cli_records r;
    cli_records_open(&r, path);
    const char *name = r.name, *line;
    size_t len;
    label_list gold = { 0 }, pred = { 0 };
    char why[160];
    while (cli_records_next(&r, &line, &len)) {
        long long ln = r.ln;
        int rc;
        const char *t1 = memchr(line, '\t', len);
        if (!t1)
            cli_die("'%s', line %lld: no tab (expected gold<TAB>predicted)", name, ln);
        const char *p = t1 + 1, *end = line + len;
        const char *t2 = memchr(p, '\t', (size_t)(end - p));
        const char *t3 = t2 ? memchr(t2 + 1, '\t', (size_t)(end - t2 - 1)) : NULL;
        if (t3)
            cli_die("'%s', line %lld: too many fields (expected gold<TAB>predicted"
                    "[<TAB>probability])", name, ln);
        size_t pn = (size_t)((t2 ? t2 : end) - p);
        double gp, prob;
        const char *err = parse_side(line, (size_t)(t1 - line), 0, &gold, &gp, why,
                                     sizeof why);
        if (!err)
            err = parse_side(p, pn, 1, &pred, &prob, why, sizeof why);
        if (err)
            cli_die("'%s', line %lld: %s", name, ln, err);
        if (t2) {
            const char *ps = t2 + 1, *bad_why;
            size_t psn = (size_t)(end - ps);
            trim(&ps, &psn);
            if (parse_prob(ps, psn, &prob, &bad_why))
                cli_die("'%s', line %lld: probability '%.*s' %s", name, ln,
                        (int)(psn > 40 ? 40 : psn), ps, bad_why);
        }
        rc = llm_metrics_add(m, gold.s, gold.len, gold.n, pred.s, pred.len, pred.n, prob);
        if (rc == LLM_ERR_INVALID)
            cli_die("'%s', line %lld: %s", name, ln, prob >= 0 ?
                    "a probability, where earlier lines have none" :
                    "no probability, where earlier lines have one");
        check(rc);
    }
    free(gold.s);
    free(gold.len);
    free(pred.s);
    free(pred.len);
    cli_records_close(&r);
}

static void *xcalloc(size_t n, size_t size);

/* --top-tokens: per (label, token id) the documents whose explanation of
 * that predicted label has the token among its TOP_PER_DOC highest positive
 * scores, and the sum of those scores; an open-addressing table. */
enum { TOP_PER_DOC = 5 };

typedef struct {
    uint64_t key;            /* label * vocab + id + 1; 0: empty */
    uint32_t docs;
    double sum;
} top_slot;

static struct {
    top_slot *t;
    size_t cap, n;
    int V, K;
    const char *const *names;
    const llm_tok *tok;
} g_top;

static top_slot *top_find(uint64_t key)
{
    size_t i = (size_t)(key * 0x9E3779B97F4A7C15ull) & (g_top.cap - 1);
    while (g_top.t[i].key && g_top.t[i].key != key)
        i = (i + 1) & (g_top.cap - 1);
    return &g_top.t[i];
}

static void top_add(int label, int id, double score)
{
    if (2 * (g_top.n + 1) > g_top.cap) {
        top_slot *old = g_top.t;
        size_t oc = g_top.cap;
        g_top.cap = oc ? 2 * oc : 1024;
        g_top.t = xcalloc(g_top.cap, sizeof *g_top.t);
        for (size_t i = 0; i < oc; i++)
            if (old[i].key)
                *top_find(old[i].key) = old[i];
        free(old);
    }
    uint64_t key = (uint64_t)label * (uint64_t)g_top.V + (uint64_t)id + 1;
    top_slot *s = top_find(key);
    if (!s->key) {
        s->key = key;
        g_top.n++;
    }
    s->docs++;
    s->sum += score;
}

static int top_cmp(const void *a, const void *b)
{
    const top_slot *x = *(const top_slot *const *)a, *y = *(const top_slot *const *)b;
    if (x->docs != y->docs)
        return x->docs < y->docs ? 1 : -1;
    if (x->sum != y->sum)
        return x->sum < y->sum ? 1 : -1;
    return x->key < y->key ? -1 : x->key > y->key;
}

/* Label k's slots, most documents first (ties: larger score sum, lower id). */
static size_t top_of(int k, const top_slot **v)
{
    size_t n = 0;
    for (size_t i = 0; i < g_top.cap; i++) {
        const top_slot *s = &g_top.t[i];
        if (s->key && (int)((s->key - 1) / (uint64_t)g_top.V) == k)
            v[n++] = s;
    }
    qsort(v, n, sizeof *v, top_cmp);
    return n < (size_t)o_top_tokens ? n : (size_t)o_top_tokens;
}

/* A token's text: its piece decoded, spaces around it dropped, invalid
 * UTF-8 (part of a character) as U+FFFD. */
static void top_text(const top_slot *s, llm_buf *b)
{
    b->len = 0;
    int id = (int)((s->key - 1) % (uint64_t)g_top.V);
    check(llm_tok_decode_piece(g_top.tok, -1, id, b));
    llm_buf t = { 0 };
    size_t a = 0, z = b->len;
    while (a < z && b->data[a] == ' ')
        a++;
    while (z > a && b->data[z - 1] == ' ')
        z--;
    check(llm_utf8_repair(b->data ? b->data + a : "", z - a, &t, NULL));
    b->len = 0;
    check(llm_buf_append(b, t.data ? t.data : "", t.len));
    llm_buf_free(&t);
}

static void report_top_text(void)
{
    const top_slot **v = xcalloc(g_top.n, sizeof *v);
    llm_buf b = { 0 };
    putf("\ntokens that most often drive each predicted label (documents, mean score)\n");
    for (int k = 0; k < g_top.K; k++) {
        size_t n = top_of(k, v);
        put(g_top.names[k]);
        put(":");
        for (size_t i = 0; i < n; i++) {
            top_text(v[i], &b);
            put(" ");
            put(b.data ? b.data : "");
            putf(" (%u, %#.3g)", v[i]->docs, v[i]->sum / v[i]->docs);   /* 3 digits, however small */
            put(i + 1 < n ? "," : "");
        }
        put("\n");
    }
    llm_buf_free(&b);
    free((void *)v);
}

static void report_top_json(void)
{
    const top_slot **v = xcalloc(g_top.n, sizeof *v);
    llm_buf b = { 0 };
    put(",\"top_tokens\":{");
    for (int k = 0; k < g_top.K; k++) {
        size_t n = top_of(k, v);
        put(k ? "," : "");
        put_jstr(g_top.names[k], strlen(g_top.names[k]));
        put(":[");
        for (size_t i = 0; i < n; i++) {
            top_text(v[i], &b);
            put(i ? ",{\"token\":" : "{\"token\":");
            put_jstr(b.data ? b.data : "", b.len);
            putf(",\"documents\":%u,\"mean_score\":", v[i]->docs);
            put_num(v[i]->sum / v[i]->docs);
            put("}");
        }
        put("]");
    }
    put("}");
    llm_buf_free(&b);
    free((void *)v);
}

static void report_text(llm_metrics *m, const llm_metrics_result *res)
{
    size_t n = res->labels;
    llm_label_stats st;
    size_t w = 5;   /* "label" */
    for (size_t i = 0; i < n; i++) {
        check(llm_metrics_label_at(m, i, &st));
        size_t c = columns(st.name, st.len);
        if (c > w)
            w = c;
    }
    if (w > LABEL_WIDTH)
        w = LABEL_WIDTH;
    size_t sw = digits(res->records);
    if (sw < 7)
        sw = 7;   /* "support" */
    put_cell("label", 5, w, 0);
    putf("  precision  recall      F1  %*s\n", (int)sw, "support");
    for (size_t i = 0; i < n; i++) {
        check(llm_metrics_label_at(m, i, &st));
        put_cell(st.name, st.len, w, 0);
        putf("  %9.4f  %6.4f  %6.4f  %*llu\n", st.precision, st.recall, st.f1, (int)sw,
             (unsigned long long)st.support);
    }
    put("\n");
    putf("%-16s%llu\n", "records", (unsigned long long)res->records);
    putf("%-16s%.4f\n", res->multi_label ? "exact match" : "accuracy", res->accuracy);
    putf("%-16s%.4f\n", "macro-F1", res->macro_f1);
    if (res->multi_label) {
        putf("%-16s%.4f\n", "micro-precision", res->micro_precision);
        putf("%-16s%.4f\n", "micro-recall", res->micro_recall);
    }
    putf("%-16s%.4f\n", "micro-F1", res->micro_f1);
    if (res->has_prob)
        putf("%-16s%.4f\n", "ECE", res->ece);
    if (res->multi_label)
        return;
    put("\n");
    if (n > MATRIX_MAX) {
        putf("confusion matrix omitted: %zu labels (--format json has it)\n", n);
        return;
    }
    put("confusion matrix (rows: gold, columns: predicted)\n");
    size_t *cw = malloc(n * sizeof *cw);
    if (!cw)
        cli_die("out of memory");
    for (size_t j = 0; j < n; j++) {
        check(llm_metrics_label_at(m, j, &st));
        uint64_t mx = 0;
        for (size_t i = 0; i < n; i++) {
            uint64_t v = llm_metrics_confusion(m, i, j);
            if (v > mx)
                mx = v;
        }
        size_t c = columns(st.name, st.len);
        cw[j] = c < MATRIX_WIDTH ? c : MATRIX_WIDTH;
        if (digits(mx) > cw[j])
            cw[j] = digits(mx);
    }
    pad(w);
    for (size_t j = 0; j < n; j++) {
        check(llm_metrics_label_at(m, j, &st));
        put("  ");
        put_cell(st.name, st.len, cw[j], 1);
    }
    put("\n");
    for (size_t i = 0; i < n; i++) {
        check(llm_metrics_label_at(m, i, &st));
        put_cell(st.name, st.len, w, 0);
        for (size_t j = 0; j < n; j++)
            putf("  %*llu", (int)cw[j], (unsigned long long)llm_metrics_confusion(m, i, j));
        put("\n");
    }
    free(cw);
}

static void report_json(llm_metrics *m, const llm_metrics_result *res)
{
    llm_label_stats st;
    putf("{\"records\":%llu,\"multi_label\":%s,\"accuracy\":",
         (unsigned long long)res->records, res->multi_label ? "true" : "false");
    put_num(res->accuracy);
    put(",\"macro_precision\":");
    put_num(res->macro_precision);
    put(",\"macro_recall\":");
    put_num(res->macro_recall);
    put(",\"macro_f1\":");
    put_num(res->macro_f1);
    put(",\"micro_precision\":");
    put_num(res->micro_precision);
    put(",\"micro_recall\":");
    put_num(res->micro_recall);
    put(",\"micro_f1\":");
    put_num(res->micro_f1);
    put(",\"ece\":");
    put_num(res->has_prob ? res->ece : NAN);
    put(",\"labels\":[");
    for (size_t i = 0; i < res->labels; i++) {
        check(llm_metrics_label_at(m, i, &st));
        put(i ? ",{\"label\":" : "{\"label\":");
        put_jstr(st.name, st.len);
        put(",\"precision\":");
        put_num(st.precision);
        put(",\"recall\":");
        put_num(st.recall);
        put(",\"f1\":");
        put_num(st.f1);
        putf(",\"support\":%llu,\"predicted\":%llu,\"tp\":%llu}",
             (unsigned long long)st.support, (unsigned long long)st.predicted,
             (unsigned long long)st.tp);
    }
    put("],\"confusion\":");
    if (res->multi_label) {
        put("null");
    } else {
        put("[");
        for (size_t i = 0; i < res->labels; i++) {
            put(i ? ",[" : "[");
            for (size_t j = 0; j < res->labels; j++)
                putf(j ? ",%llu" : "%llu",
                     (unsigned long long)llm_metrics_confusion(m, i, j));
            put("]");
        }
        put("]");
    }
    if (res->has_prob) {
        put(",\"calibration\":[");
        for (int b = 0; b < 10; b++) {
            uint64_t cnt;
            double conf, acc;
            check(llm_metrics_ece_bin(m, b, &cnt, &conf, &acc));
            putf("%s{\"lower\":%.1f,\"upper\":%.1f,\"count\":%llu,\"confidence\":",
                 b ? "," : "", b / 10.0, (b + 1) / 10.0, (unsigned long long)cnt);
            put_num(conf);
            put(",\"accuracy\":");
            put_num(acc);
            put("}");
        }
        put("]");
    }
    if (g_top.K)
        report_top_json();
    put("}\n");
}

typedef int (*label_known_fn)(const void *ctx, const char *s, size_t n);

/* --labels into m, in order; each must be known to `known` when not NULL. */
static void declare_labels(llm_metrics *m, label_known_fn known, const void *ctx)
{
    const char *s = o_labels;
    while (s) {
        const char *e = strchr(s, ',');
        size_t n = e ? (size_t)(e - s) : strlen(s);
        const char *w = s;
        trim(&w, &n);
        if (n == 0)
            cli_usage("--labels: empty label in '%s'", o_labels);
        if (!llm_utf8_check(w, n, NULL))
            cli_usage("--labels: invalid UTF-8");
        if (known && !known(ctx, w, n))
            cli_usage("--labels: '%.*s' is not one of the model's labels", (int)n, w);
        check(llm_metrics_declare(m, w, n));
        s = e ? e + 1 : NULL;
    }
}

/* --plot: the confusion matrix and the reliability diagram. */
static void write_plot(llm_metrics *m, const llm_metrics_result *res)
{
    size_t K = res->labels;
    const char **names = xcalloc(K, sizeof *names);
    size_t *len = xcalloc(K, sizeof *len);
    uint64_t *conf = res->multi_label ? NULL : xcalloc(K * K, sizeof *conf);
    llm_label_stats st;
    for (size_t i = 0; i < K; i++) {
        check(llm_metrics_label_at(m, i, &st));
        names[i] = st.name;
        len[i] = st.len;
        for (size_t j = 0; conf && j < K; j++)
            conf[i * K + j] = llm_metrics_confusion(m, i, j);
    }
    uint64_t bn[10] = { 0 };
    double bc[10], ba[10];
    for (int b = 0; b < 10; b++) {
        bc[b] = ba[b] = 0;
        if (res->has_prob)
            check(llm_metrics_ece_bin(m, b, &bn[b], &bc[b], &ba[b]));
    }
    llm_buf svg = { 0 };
    char title[160];
    snprintf(title, sizeof title, "%s %.4f, macro-F1 %.4f, %llu records%s",
             res->multi_label ? "exact match" : "accuracy", res->accuracy, res->macro_f1,
             (unsigned long long)res->records, res->has_prob ? "" : " (no probabilities)");
    plot_classifier(&svg, (int)K, names, len, conf, bn, bc, ba, title);
    check(llm_write_file(o_plot, svg.data, svg.len));
    llm_buf_free(&svg);
    free((void *)names);
    free(len);
    free(conf);
}

static void write_report(llm_metrics *m, int from_stdin)
{
    llm_metrics_result res;
    int rc = llm_metrics_summary(m, &res);
    if (rc == LLM_ERR_INVALID)
        cli_die("no records in %s", from_stdin ? "standard input" : "the input");
    check(rc);
    if (o_plot)
        write_plot(m, &res);
    if (strcmp(o_format, "json") == 0) {
        report_json(m, &res);
    } else {
        report_text(m, &res);
        if (g_top.K)
            report_top_text();
    }
}

static void run_pairs(int first, int argc, char **argv)
{
    llm_metrics *m;
    check(llm_metrics_new(o_multi, &m));
    declare_labels(m, NULL, NULL);
    if (first >= argc)
        read_pairs(m, NULL);
    for (int i = first; i < argc; i++)
        read_pairs(m, argv[i]);
    write_report(m, first >= argc);
    llm_metrics_free(m);
}

/* ------------------------------------------------------------------------ */
/* --pairs --text: reference<TAB>hypothesis lines, each field escaped as
 * llm-generate writes text records. */

static void read_text_pairs(llm_text_metrics *m, const char *path)
{
    cli_records r;
    cli_records_open(&r, path);
    const char *name = r.name, *line;
    size_t len;
    llm_buf ref = { 0 }, hyp = { 0 };
    while (cli_records_next(&r, &line, &len)) {
        long long ln = r.ln;
        const char *tab = memchr(line, '\t', len);
        if (!tab)
            cli_die("'%s', line %lld: no tab (expected reference<TAB>hypothesis)", name, ln);
        size_t rn = (size_t)(tab - line), hn = len - rn - 1;
        if (memchr(tab + 1, '\t', hn))
            cli_die("'%s', line %lld: too many fields (expected reference<TAB>hypothesis, "
                    "tabs inside them escaped as \\t)", name, ln);
        ref.len = hyp.len = 0;
        check(llm_unescape(line, rn, &ref));
        check(llm_unescape(tab + 1, hn, &hyp));
        if (llm_text_metrics_add(m, ref.data ? ref.data : "", ref.len,
                                 hyp.data ? hyp.data : "", hyp.len))
            cli_die("'%s', line %lld: %s", name, ln, llm_errmsg());
    }
    llm_buf_free(&ref);
    llm_buf_free(&hyp);
    cli_records_close(&r);
}

static void run_text(int first, int argc, char **argv)
{
    llm_text_metrics *m;
    check(llm_text_metrics_new(&m));
    if (first >= argc)
        read_text_pairs(m, NULL);
    for (int i = first; i < argc; i++)
        read_text_pairs(m, argv[i]);
    llm_text_metrics_result r;
    int rc = llm_text_metrics_summary(m, &r);
    if (rc == LLM_ERR_INVALID)
        cli_die("no records in %s", first >= argc ? "standard input" : "the input");
    check(rc);
    if (strcmp(o_format, "json") == 0) {
        putf("{\"lines\":%llu,\"bleu\":", (unsigned long long)r.lines);
        put_num(r.bleu);
        put(",\"bleu_precisions\":[");
        for (int n = 0; n < 4; n++) {
            put(n ? "," : "");
            put_num(r.bleu_precisions[n]);
        }
        put("],\"bleu_bp\":");
        put_num(r.bleu_bp);
        putf(",\"bleu_sys_len\":%llu,\"bleu_ref_len\":%llu,\"chrf\":",
             (unsigned long long)r.bleu_sys_len, (unsigned long long)r.bleu_ref_len);
        put_num(r.chrf);
        put(",\"exact_match\":");
        put_num(r.exact_match);
        put(",\"token_f1\":");
        put_num(r.token_f1);
        put(",\"rouge_l\":");
        put_num(r.rouge_l);
        put("}\n");
    } else {
        putf("%-16s%llu\n", "lines", (unsigned long long)r.lines);
        putf("%-16s%.4f\n", "BLEU", r.bleu);
        putf("%-16s%.4f/%.4f/%.4f/%.4f\n", "BLEU precisions", r.bleu_precisions[0],
             r.bleu_precisions[1], r.bleu_precisions[2], r.bleu_precisions[3]);
        putf("%-16s%.4f\n", "BLEU BP", r.bleu_bp);
        putf("%-16s%llu\n", "BLEU hyp tokens", (unsigned long long)r.bleu_sys_len);
        putf("%-16s%llu\n", "BLEU ref tokens", (unsigned long long)r.bleu_ref_len);
        putf("%-16s%.4f\n", "chrF2", r.chrf);
        putf("%-16s%.4f\n", "exact match", r.exact_match);
        putf("%-16s%.4f\n", "token F1", r.token_f1);
        putf("%-16s%.4f\n", "ROUGE-L", r.rouge_l);
    }
    llm_text_metrics_free(m);
}

/* ------------------------------------------------------------------------ */
/* -m CLASSIFIER: labelled lines, read as llm-train reads them (label<TAB>text,
 * comma-separated labels for a multi-label model, or fastText's
 * `__label__x text`), predicted in chunks of 4 x --batch documents as
 * llm-classify does (so that, with the same --batch and threads, both
 * compute the same probabilities), and scored as --pairs scores. */

typedef struct {
    llm_model *m;
    const llm_tok *tok;
    int K, multi, ctx, B;
    const char **names;      /* (K) the model's labels */
    size_t *name_len;
    int *by_name;            /* (K) label indices in byte order of their names */
    char *known;             /* "a, b, c" for messages */
    llm_metrics *met;
    /* The chunk of documents waiting for prediction. */
    llm_ids ids, gold;       /* documents' ids, gold label indices, back to back */
    size_t *doff, *dlen, *goff;   /* document d: ids at doff, gold at goff[d..d+1) */
    const int32_t **dptr;
    size_t n, cap;
    float *probs;            /* (cap, K) */
    const char **gname, **pname;  /* (K) scratch for one record */
    size_t *glen, *plen;
    uint64_t truncated;
    /* --top-tokens: one document's scores, attributed positions, order */
    float *xscore;
    unsigned char *xvary;
    int *xord;
    size_t xcap;
    int baseline;            /* token of the integrated-gradients baseline, or -1 */
} cls_eval;

static int name_cmp(const char *a, size_t an, const char *b, size_t bn)
{
    int c = memcmp(a, b, an < bn ? an : bn);
    return c ? c : (an > bn) - (an < bn);
}

/* The index of label s[0..n) in the model, or -1. */
static int cls_label(const cls_eval *c, const char *s, size_t n)
{
    int lo = 0, hi = c->K;
    while (lo < hi) {
        int mid = lo + (hi - lo) / 2, k = c->by_name[mid];
        int r = name_cmp(c->names[k], c->name_len[k], s, n);
        if (r == 0)
            return k;
        if (r < 0)
            lo = mid + 1;
        else
            hi = mid;
    }
    return -1;
}

static int cls_known(const void *ctx, const char *s, size_t n)
{
    return cls_label(ctx, s, n) >= 0;
}

static const cls_eval *g_sort_cls;

static int cmp_by_name(const void *a, const void *b)
{
    const cls_eval *c = g_sort_cls;
    int x = *(const int *)a, y = *(const int *)b;
    return name_cmp(c->names[x], c->name_len[x], c->names[y], c->name_len[y]);
}

static void *xcalloc(size_t n, size_t size)
{
    void *p = calloc(n ? n : 1, size);
    if (!p)
        cli_die("out of memory");
    return p;
}

/* --top-tokens: explains predicted label `name` of document d. */
static void cls_top(cls_eval *c, size_t d, const char *name)
{
    int k = cls_label(c, name, strlen(name)), n = (int)c->dlen[d];
    const int32_t *ids = c->ids.data + c->doff[d];
    if ((size_t)n > c->xcap) {
        c->xcap = (size_t)n;
        c->xscore = realloc(c->xscore, c->xcap * sizeof *c->xscore);
        c->xvary = realloc(c->xvary, c->xcap);
        c->xord = realloc(c->xord, c->xcap * sizeof *c->xord);
        if (!c->xscore || !c->xvary || !c->xord)
            cli_die("out of memory");
    }
    int bos = llm_tok_bos_id(c->tok) >= 0, eos = llm_tok_eos_id(c->tok) >= 0;
    for (int i = 0; i < n; i++)
        c->xvary[i] = i >= bos && i < n - eos;
    double f[2];
    check(llm_cls_explain(c->m, ids, n, c->xvary, k, LLM_EXPLAIN_IG, 32, c->baseline,
                          c->xscore, f));
    /* The TOP_PER_DOC highest positive scores, one per distinct token. */
    int m = 0;
    for (int i = 0; i < n; i++) {
        if (!c->xvary[i] || !(c->xscore[i] > 0))
            continue;
        int j = 0;
        while (j < m && ids[c->xord[j]] != ids[i])
            j++;
        if (j < m) {
            if (c->xscore[i] > c->xscore[c->xord[j]])
                c->xord[j] = i;
            continue;
        }
        c->xord[m++] = i;
    }
    for (int r = 0; r < m && r < TOP_PER_DOC; r++) {   /* partial selection sort */
        int best = r;
        for (int j = r + 1; j < m; j++)
            if (c->xscore[c->xord[j]] > c->xscore[c->xord[best]] ||
                (c->xscore[c->xord[j]] == c->xscore[c->xord[best]] && c->xord[j] < c->xord[best]))
                best = j;
        int t = c->xord[r];
        c->xord[r] = c->xord[best];
        c->xord[best] = t;
        top_add(k, ids[c->xord[r]], c->xscore[c->xord[r]]);
    }
}

/* Predicts the chunk and adds its records to the metrics. */
static void cls_flush(cls_eval *c)
{
    if (c->n == 0)
        return;
    for (size_t d = 0; d < c->n; d++)
        c->dptr[d] = c->ids.data + c->doff[d];
    check(llm_cls_predict(c->m, c->dptr, c->dlen, c->n, NULL, 0, c->B, c->probs));
    const float *thr = llm_model_thresholds(c->m);
    size_t K = (size_t)c->K;
    for (size_t d = 0; d < c->n; d++) {
        const float *p = c->probs + d * K;
        size_t ng = 0, np = 0;
        for (size_t i = c->goff[d]; i < c->goff[d + 1]; i++) {
            int k = c->gold.data[i];
            c->gname[ng] = c->names[k];
            c->glen[ng++] = c->name_len[k];
        }
        double prob;
        if (c->multi) {
            /* Every label at or above its tuned threshold, as llm-classify
             * prints them; the confidence is the probability that this set
             * is exactly right, the labels taken as independent. */
            prob = 1;
            for (size_t k = 0; k < K; k++) {
                if (p[k] >= thr[k]) {
                    c->pname[np] = c->names[k];
                    c->plen[np++] = c->name_len[k];
                    prob *= p[k];
                } else {
                    prob *= 1 - (double)p[k];
                }
            }
        } else {
            /* The top label (ties: the first), and its probability as
             * llm-classify prints it, so that scoring its output with
             * --pairs gives the same figures to the last digit. */
            size_t top = 0;
            for (size_t k = 1; k < K; k++)
                if (p[k] > p[top])
                    top = k;
            c->pname[0] = c->names[top];
            c->plen[0] = c->name_len[top];
            np = 1;
            char num[32];
            snprintf(num, sizeof num, "%.4f", (double)p[top]);
            prob = strtod(num, NULL);
        }
        check(llm_metrics_add(c->met, c->gname, c->glen, ng, c->pname, c->plen, np, prob));
        for (size_t i = 0; o_top_tokens && i < np; i++)
            cls_top(c, d, c->pname[i]);
    }
    c->n = 0;
    c->ids.len = 0;
    c->gold.len = 0;
}

/* Adds label k to the gold set of the record being read (once). */
static void cls_gold(cls_eval *c, int k)
{
    for (size_t i = c->goff[c->n]; i < c->gold.len; i++)
        if (c->gold.data[i] == k)
            return;
    check(llm_ids_push(&c->gold, k));
}

static CLI_NORETURN void cls_unknown(const cls_eval *c, const char *name, long long ln,
                                     const char *s, size_t n)
{
    cli_die("'%s', line %lld: label '%.*s' is not one of the model's labels (%s)", name, ln,
            (int)(n > 60 ? 60 : n), s, c->known);
}

static void cls_read(cls_eval *c, const char *path)
{
    cli_records r;
    cli_records_open(&r, path);
    const char *name = r.name, *line;
    size_t len;
    llm_ids doc = { 0 };
    static cli_span span[4096];
    while (cli_records_next(&r, &line, &len)) {
        long long ln = r.ln;
        const char *text, *end = line + len;
        c->goff[c->n] = c->gold.len;
        size_t nl;
        const char *why = cli_split_labelled(line, len, c->multi, span,
                                             sizeof span / sizeof span[0], &nl, &text);
        if (why)
            cli_die("'%s', line %lld: %s", name, ln, why);
        for (size_t i = 0; i < nl; i++) {
            int k = cls_label(c, span[i].s, span[i].n);
            if (k < 0)
                cls_unknown(c, name, ln, span[i].s, span[i].n);
            cls_gold(c, k);
        }
        if (nl > 1 && !c->multi)
            cli_die("'%s', line %lld: %zu labels, but the model is single-label", name, ln,
                    nl);
        int tr;
        if (llm_cls_encode(c->tok, text, (size_t)(end - text), c->ctx, &doc, &tr))
            cli_die("'%s', line %lld: %s", name, ln, llm_errmsg());
        c->truncated += (uint64_t)tr;
        c->doff[c->n] = c->ids.len;
        c->dlen[c->n] = doc.len;
        for (size_t i = 0; i < doc.len; i++)
            check(llm_ids_push(&c->ids, doc.data[i]));
        c->n++;
        c->goff[c->n] = c->gold.len;
        if (c->n == c->cap)
            cls_flush(c);
    }
    cls_flush(c);   /* as llm-classify, which labels what is left of each input */
    llm_ids_free(&doc);
    cli_records_close(&r);
}

static void run_classifier(const char *path, int first, int argc, char **argv)
{
    llm_set_threads(o_threads);
    cls_eval c = { 0 };
    check(llm_model_load(path, o_device, &c.m));
    cli_precision(c.m, o_precision);
    llm_tok *tok;
    check(llm_tok_load(path, &tok));
    c.tok = tok;
    const llm_config *cfg = llm_model_config(c.m);
    if (cfg->vocab_size != llm_tok_vocab_size(tok))
        cli_die("'%s': the model has a vocabulary of %d, its tokenizer %d", path,
                cfg->vocab_size, llm_tok_vocab_size(tok));
    c.K = llm_model_n_labels(c.m);
    c.multi = llm_model_multi_label(c.m);
    c.ctx = cfg->context;
    c.B = o_batch ? o_batch : 64;
    size_t K = (size_t)c.K;
    c.names = xcalloc(K, sizeof *c.names);
    c.name_len = xcalloc(K, sizeof *c.name_len);
    c.by_name = xcalloc(K, sizeof *c.by_name);
    llm_buf known = { 0 };
    for (int k = 0; k < c.K; k++) {
        c.names[k] = llm_model_label(c.m, k);
        c.name_len[k] = strlen(c.names[k]);
        c.by_name[k] = k;
        if (k < 12 || c.K <= 16) {
            if (k)
                check(llm_buf_append(&known, ", ", 2));
            check(llm_buf_append(&known, c.names[k], c.name_len[k]));
        } else if (k == 12) {
            char more[48];
            snprintf(more, sizeof more, ", ... %d in all", c.K);
            check(llm_buf_append(&known, more, strlen(more)));
        }
    }
    c.known = known.data;
    g_sort_cls = &c;
    qsort(c.by_name, K, sizeof *c.by_name, cmp_by_name);
    c.cap = (size_t)c.B * 4;
    c.doff = xcalloc(c.cap, sizeof *c.doff);
    c.dlen = xcalloc(c.cap, sizeof *c.dlen);
    c.goff = xcalloc(c.cap + 1, sizeof *c.goff);
    c.dptr = xcalloc(c.cap, sizeof *c.dptr);
    c.probs = xcalloc(c.cap * K, sizeof *c.probs);
    c.gname = xcalloc(K, sizeof *c.gname);
    c.pname = xcalloc(K, sizeof *c.pname);
    c.glen = xcalloc(K, sizeof *c.glen);
    c.plen = xcalloc(K, sizeof *c.plen);
    check(llm_metrics_new(c.multi, &c.met));
    declare_labels(c.met, cls_known, &c);
    if (o_top_tokens) {
        c.baseline = -1;   /* zero embeddings, as llm-classify --explain */
        g_top.V = cfg->vocab_size;
        g_top.K = c.K;
        g_top.names = c.names;
        g_top.tok = tok;
    }

    if (first >= argc)
        cls_read(&c, NULL);
    for (int i = first; i < argc; i++)
        cls_read(&c, argv[i]);
    write_report(c.met, first >= argc);
    if (!o_quiet && c.truncated)
        cli_warn("%llu document%s longer than the context of %d tokens: truncated",
                 (unsigned long long)c.truncated, c.truncated == 1 ? " was" : "s were",
                 c.ctx);

    llm_metrics_free(c.met);
    free(c.xscore);
    free(c.xvary);
    free(c.xord);
    free(g_top.t);
    llm_ids_free(&c.ids);
    llm_ids_free(&c.gold);
    free(c.doff);
    free(c.dlen);
    free(c.goff);
    free((void *)c.dptr);
    free(c.probs);
    free((void *)c.gname);
    free((void *)c.pname);
    free(c.glen);
    free(c.plen);
    free((void *)c.names);
    free(c.name_len);
    free(c.by_name);
    llm_buf_free(&known);
    llm_tok_free(tok);
    llm_model_free(c.m);
}

/* ------------------------------------------------------------------------ */
/* -m MODEL: a language model's loss on text or token files. */

static void run_lm(const char *path, int first, int argc, char **argv)
{
    if (o_labels)
        cli_usage("--labels needs --pairs or a classifier; '%s' is a language model", path);
    if (o_batch == 0)
        o_batch = 8;
    llm_set_threads(o_threads);
    llm_tok *tok;
    check(llm_tok_load(path, &tok));
    llm_model *m;
    check(llm_model_load(path, o_device, &m));
    cli_precision(m, o_precision);
    const llm_config *cfg = llm_model_config(m);
    int V = llm_tok_vocab_size(tok);
    if (cfg->vocab_size != V)
        cli_die("'%s': the model has a vocabulary of %d, its tokenizer %d", path,
                cfg->vocab_size, V);
    /* By default windows of the model's context, at most 1024 tokens: the
     * logits of a batch of 8192-token windows of a 49k vocabulary would
     * take 13 GB. */
    int T = o_context ? o_context : cfg->context < 1024 ? cfg->context : 1024;
    if (T > cfg->context)
        cli_usage("--context %d is longer than the model's context %d", T, cfg->context);
    if (o_max_tokens && o_max_tokens < T)
        cli_usage("--max-tokens %lld is less than one window of --context %d tokens",
                  (long long)o_max_tokens, T);

    llm_data *d;
    check(llm_data_new((uint32_t)V, &d));
    if (first >= argc)
        check(llm_data_add_input(d, tok, NULL));
    for (int i = first; i < argc; i++)
        check(llm_data_add_input(d, tok, argv[i]));
    uint64_t n = llm_data_count(d);
    if (n == 0)
        cli_die("no tokens in %s", first >= argc ? "standard input" : "the input");
    if (n < (uint64_t)T + 1 && !o_context && !o_max_tokens && n >= 2)
        T = (int)(n - 1);   /* a short text: one window of all of it */
    if (n < (uint64_t)T + 1)
        cli_die("%llu tokens are fewer than one window of %d + 1 (use a shorter --context)",
                (unsigned long long)n, T);

    llm_eval_result r;
    check(llm_eval_loss(m, d, 0, n, o_batch, T, (uint64_t)o_max_tokens, &r));
    if (!isfinite(r.loss))
        cli_die("'%s': the loss is %s: the model's weights hold non-finite values, or its "
                "logits overflow", path, isnan(r.loss) ? "NaN" : "infinite");
    uint64_t bytes;
    check(llm_data_text_bytes(d, tok, r.first, r.tokens, &bytes));
    double bpb = bytes ? r.loss * (double)r.tokens / (double)bytes / log(2.0) : NAN;
    if (!o_quiet && o_max_tokens && r.tokens + 1 < n)
        fprintf(stderr, "llm-eval: scored %llu of %llu tokens (whole windows of %d)\n",
                (unsigned long long)r.tokens, (unsigned long long)n - 1, T);
    if (strcmp(o_format, "json") == 0) {
        putf("{\"tokens\":%llu,\"bytes\":%llu,\"loss\":", (unsigned long long)r.tokens,
             (unsigned long long)bytes);
        put_num(r.loss);
        put(",\"perplexity\":");
        put_num(exp(r.loss));
        put(",\"bits_per_byte\":");
        put_num(bpb);
        putf(",\"context\":%d}\n", T);
    } else {
        putf("%-16s%llu\n", "tokens", (unsigned long long)r.tokens);
        putf("%-16s%llu\n", "bytes", (unsigned long long)bytes);
        putf("%-16s%.4f nats/token\n", "loss", r.loss);
        putf("%-16s%.2f\n", "perplexity", exp(r.loss));
        putf("%-16s%.4f\n", "bits per byte", bpb);
    }
    llm_data_free(d);
    llm_model_free(m);
    llm_tok_free(tok);
}


/* ------------------------------------------------------------------------ */
/* --leakage TRAIN: the test documents whose folded text is also in TRAIN,
 * exactly or nearly (lib/eval/leak.c), and with --model the share of their
 * 13-grams of tokens found in TRAIN. A file is labelled when most of its
 * non-empty lines are (label<TAB>text or __label__ words, as llm-train reads
 * them); then only their text is compared (a line without a label, whole,
 * with a warning), and the label sets of a leaked pair are compared too.
 * With --task pairs every line is an input-output pair: the input is the
 * text, the output the label (its 13-grams count too). */

typedef struct {
    size_t off, len;            /* the line in the file's buffer */
    size_t text, label_len;     /* the text's offset in it; the label's length */
    long long line;
    int lab;                    /* it has labels (or is a pair) */
} leak_doc;

typedef struct {
    const char *name;
    llm_buf data;
    leak_doc *docs;
    size_t n, empty;
    int labelled;
} leak_file;

static int span_cmp(const void *pa, const void *pb)
{
    const cli_span *a = pa, *b = pb;
    int c = memcmp(a->s, b->s, a->n < b->n ? a->n : b->n);
    return c ? c : (a->n > b->n) - (a->n < b->n);
}

/* The labels of a line (label<TAB>text, commas between several, or every
 * leading __label__ word), each without blanks at its ends, sorted, each
 * once, at most cap of them; *text after them. @return how many, 0 when
 * the line is not labelled. */
static size_t leak_labels(const char *s, size_t n, cli_span *v, size_t cap, const char **text)
{
    size_t nl;
    if (cli_split_labelled(s, n, 1, v, cap, &nl, text))
        return 0;
    for (size_t i = 0; i < nl; i++) {
        while (v[i].n && (v[i].s[0] == ' ' || v[i].s[0] == '\t'))
            v[i].s++, v[i].n--;
        while (v[i].n && (v[i].s[v[i].n - 1] == ' ' || v[i].s[v[i].n - 1] == '\t'))
            v[i].n--;
        if (!v[i].n)
            return 0;
    }
    qsort(v, nl, sizeof *v, span_cmp);
    size_t k = 0;   /* a label repeated on a line counts once */
    for (size_t i = 0; i < nl; i++)
        if (!k || span_cmp(&v[k - 1], &v[i]) != 0)
            v[k++] = v[i];
    return k;
}

/* Whether two labelled lines have the same set of labels: "World<TAB>",
 * "__label__World" and "World ,World<TAB>" are one label. */
static int leak_same_labels(const char *a, size_t an, const char *b, size_t bn)
{
    static cli_span x[256], y[256];
    const char *t;
    size_t nx = leak_labels(a, an, x, 256, &t), ny = leak_labels(b, bn, y, 256, &t);
    for (size_t i = 0; i < nx && nx == ny; i++)
        if (span_cmp(&x[i], &y[i]) != 0)
            return 0;
    return nx == ny;
}

/* Reads a test or training file; with `pairs`, its pairs (the output
 * stored first, as a labelled line's label, then the input as its text). */
static void leak_read(const char *path, int pairs, leak_file *f)
{
    f->name = display_name(path);
    llm_buf pin = { 0 }, pout = { 0 };
    FILE *fp = cli_open(path);
    llm_lines *r;
    check(llm_lines_open(fp, &r));
    const char *line;
    size_t len, cap = 0, nlab = 0;
    long long first_unlabelled = 0;
    int rc;
    while ((rc = llm_lines_next(r, &line, &len)) == 1) {
        if (len && line[len - 1] == '\r')
            len--;
        if (len == 0) {
            f->empty++;
            continue;
        }
        if (f->n == cap) {
            cap = cap ? 2 * cap : 1024;
            leak_doc *d = realloc(f->docs, cap * sizeof *d);
            if (!d)
                check(LLM_ERR_NOMEM);
            f->docs = d;
        }
        leak_doc *d = &f->docs[f->n++];
        if (pairs) {
            long long ln = (long long)llm_lines_number(r);
            if (llm_pairs_parse(line, len, &pin, &pout))
                cli_die("'%s', line %lld: %s", f->name, ln, llm_errmsg());
            *d = (leak_doc){ f->data.len, pout.len + pin.len, pout.len, pout.len, ln, 1 };
            nlab++;
            check(llm_buf_append(&f->data, pout.data, pout.len));
            check(llm_buf_append(&f->data, pin.data, pin.len));
            continue;
        }
        static cli_span v[256];
        const char *text = NULL;
        int lab = leak_labels(line, len, v, 256, &text) > 0;
        nlab += (size_t)lab;
        if (!lab && !first_unlabelled)
            first_unlabelled = (long long)llm_lines_number(r);
        *d = (leak_doc){ f->data.len, len, lab ? (size_t)(text - line) : 0,
                         lab ? (size_t)(text - line) : 0, (long long)llm_lines_number(r), lab };
        check(llm_buf_append(&f->data, line, len));
    }
    if (rc < 0)
        cli_die("'%s': %s", f->name, llm_errmsg());
    llm_lines_free(r);
    cli_close(fp);
    llm_buf_free(&pin);
    llm_buf_free(&pout);
    /* Labelled when most lines are: one stray line must not make every
     * label part of the text compared (and every leak missed). */
    f->labelled = 2 * nlab > f->n;
    if (!f->labelled)
        for (size_t i = 0; i < f->n; i++)
            f->docs[i].text = f->docs[i].label_len = 0, f->docs[i].lab = 0;
    if (nlab && nlab < f->n && !o_quiet)
        cli_warn(f->labelled ? "'%s': %zu of %zu lines have no label (the first: line %lld): "
                               "compared whole, with no label"
                             : "'%s': %zu of %zu lines have no label (the first: line %lld): "
                               "the file is read as unlabelled text, compared whole",
                 f->name, f->n - nlab, f->n, first_unlabelled);
}

static const char *leak_text(const leak_file *f, const leak_doc *d, size_t *n)
{
    *n = d->len - d->text;
    return f->data.data + d->off + d->text;
}

static void leak_free(leak_file *f)
{
    llm_buf_free(&f->data);
    free(f->docs);
}

/* Tokens of a document's text, or of its label when `label` (a pair's
 * output), for the 13-gram overlap (none for invalid UTF-8, which only the
 * folded comparison covers). */
static void leak_tokens(llm_tok *tok, const leak_file *f, const leak_doc *d, int label,
                        llm_ids *ids)
{
    size_t n = d->label_len, bad;
    const char *s = label ? f->data.data + d->off : leak_text(f, d, &n);
    ids->len = 0;
    if (llm_utf8_check(s, n, &bad) && llm_tok_encode(tok, s, n, ids))
        cli_die("'%s', line %lld: %s", f->name, d->line, llm_errmsg());
}

/* The matches of test file i (f), whose documents are results base ..
 * base + f->n - 1 of x, and its summary; text or JSON. */
static void leak_report_file(const leak_file *f, int i, const leak_file *train,
                             const llm_leak *x, llm_ngrams *grams, size_t base, int json)
{
    int labels = f->labelled && train->labelled;
    const char *what = o_task ? "output" : "label";   /* --task pairs */
    size_t exact = 0, near = 0, other = 0;
    if (json) {
        put(i ? ",{\"file\":" : "{\"file\":");
        put_jstr(f->name, strlen(f->name));
        put(",\"matches\":[");
    }
    for (size_t j = 0; j < f->n; j++) {
        const llm_leak_match *m = llm_leak_result(x, base + j);
        if (m->train_id < 0)
            continue;
        const leak_doc *d = &f->docs[j], *t = &train->docs[m->train_id];
        const char *dl = f->data.data + d->off, *tl = train->data.data + t->off;
        int both = labels && d->lab && t->lab;   /* (else no verdict on labels) */
        int same = !both ? 0
                   : o_task ? d->label_len == t->label_len && !memcmp(dl, tl, d->label_len)
                            : leak_same_labels(dl, d->len, tl, t->len);
        if (both && !same)
            other++;
        if (json) {
            putf("%s{\"line\":%lld,\"train_line\":%lld,\"kind\":\"%s\",\"similarity\":%.6g",
                 exact + near ? "," : "", d->line, t->line, m->exact ? "exact" : "near",
                 m->similarity);
            if (labels && both)
                putf(",\"%s\":\"%s\"", what, same ? "same" : "other");
            else if (labels)
                putf(",\"%s\":null", what);
            put("}");
        } else {
            putf("%s:%lld\t%s:%lld\t%s\t%.4f", f->name, d->line, train->name, t->line,
                 m->exact ? "exact" : "near", m->similarity);
            if (labels)
                putf("\t%s-%s", !both ? "no" : same ? "same" : "other", what);
            put("\n");
        }
        if (m->exact)
            exact++;
        else
            near++;
    }
    uint64_t total = 0, found = 0;
    if (grams)
        llm_ngrams_counts(grams, (uint32_t)i, &total, &found);
    size_t leaked = exact + near;
    if (json) {
        putf("],\"documents\":%zu,\"empty_lines\":%zu,\"leaked\":%zu,\"exact\":%zu,"
             "\"near\":%zu", f->n, f->empty, leaked, exact, near);
        if (labels)
            putf(",\"other_%s\":%zu", what, other);
        if (grams)
            putf(",\"ngram\":13,\"ngrams\":%llu,\"ngrams_in_train\":%llu",
                 (unsigned long long)total, (unsigned long long)found);
        put("}");
    } else {
        putf("# %s: %zu of %zu documents (%.2f%%) also in %s: %zu exact, %zu near",
             f->name, leaked, f->n, f->n ? 100.0 * (double)leaked / (double)f->n : 0.0,
             train->name, exact, near);
        if (labels)
            putf("; %zu with another %s", other, what);
        put("\n");
        if (grams)
            putf("# %s: %llu of %llu 13-grams of tokens (%.2f%%) also in %s\n", f->name,
                 (unsigned long long)found, (unsigned long long)total,
                 total ? 100.0 * (double)found / (double)total : 0.0, train->name);
    }
}

static void run_leakage(int first, int argc, char **argv)
{
    int pairs = o_task != NULL;   /* the only --task of --leakage */
    int nfiles = argc > first ? argc - first : 1;
    leak_file train = { 0 }, *test = calloc((size_t)nfiles, sizeof *test);
    if (!test)
        check(LLM_ERR_NOMEM);
    if (strcmp(o_leakage, "-") == 0)
        for (int i = 0; i < nfiles; i++)
            if (argc <= first || strcmp(argv[first + i], "-") == 0)
                cli_usage("the training file and a test file cannot both be standard input");
    llm_tok *tok = NULL;
    llm_ngrams *grams = NULL;
    if (o_model) {
        check(llm_tok_load(o_model, &tok));
        check(llm_ngrams_new(13, &grams));
    }
    llm_leak *x;
    check(llm_leak_new(o_similarity, &x));
    llm_ids ids = { 0 };
    for (int i = 0; i < nfiles; i++) {
        leak_read(argc > first ? argv[first + i] : "-", pairs, &test[i]);
        for (size_t j = 0; j < test[i].n; j++) {
            size_t n;
            const char *t = leak_text(&test[i], &test[i].docs[j], &n);
            check(llm_leak_add_test(x, t, n));
            for (int part = 0; grams && part <= pairs; part++) {
                leak_tokens(tok, &test[i], &test[i].docs[j], part, &ids);
                check(llm_ngrams_add(grams, ids.data, ids.len, (uint32_t)i));
            }
        }
    }
    check(llm_leak_index(x));
    leak_read(o_leakage, pairs, &train);
    for (size_t j = 0; j < train.n; j++) {
        size_t n;
        const char *t = leak_text(&train, &train.docs[j], &n);
        check(llm_leak_scan(x, t, n, (int64_t)j));
        for (int part = 0; grams && part <= pairs; part++) {
            leak_tokens(tok, &train, &train.docs[j], part, &ids);
            llm_ngrams_scan(grams, ids.data, ids.len);
        }
    }
    /* Report. */
    int json = strcmp(o_format, "json") == 0;
    if (json) {
        put("{\"train\":");
        put_jstr(train.name, strlen(train.name));
        putf(",\"train_documents\":%zu,\"similarity\":%g,\"hashes\":%d,\"rows\":%d,\"files\":[",
             train.n, o_similarity, LLM_LEAK_HASHES, LLM_LEAK_ROWS);
    }
    size_t base = 0;
    for (int i = 0; i < nfiles; i++) {
        leak_report_file(&test[i], i, &train, x, grams, base, json);
        base += test[i].n;
    }
    if (json)
        put("]}\n");
    else
        putf("# %s: %zu documents; near: Jaccard of character 5-grams >= %g "
             "(MinHash of %d functions, %d bands of %d)\n", train.name, train.n,
             o_similarity, LLM_LEAK_HASHES, LLM_LEAK_HASHES / LLM_LEAK_ROWS, LLM_LEAK_ROWS);
    for (int i = 0; i < nfiles; i++)
        leak_free(&test[i]);
    free(test);
    leak_free(&train);
    llm_ids_free(&ids);
    llm_ngrams_free(grams);
    llm_leak_free(x);
    if (tok)
        llm_tok_free(tok);
}

static int ends_with(const char *s, const char *suffix)
{
    size_t n = strlen(s), k = strlen(suffix);
    return n >= k && strcmp(s + n - k, suffix) == 0;
}

static void run_model(int first, int argc, char **argv)
{
    /* Which kind of model: one with labels is a classifier. (Our files are
     * mapped, so loading twice costs little; GGUF and Hugging Face models
     * are language models, whose loader runs once.) */
    int classifier = 0;
    if (llm_model_format(o_model) == LLM_FORMAT_LLM) {
        llm_model *probe;
        check(llm_model_load(o_model, o_device, &probe));
        classifier = llm_model_n_labels(probe) > 0;
        llm_model_free(probe);
    }
    if (classifier) {
        if (o_task && strcmp(o_task, "lm") == 0)
            cli_usage("'%s' is a classifier, not a language model: --task lm does not apply",
                    o_model);
        if (o_context || o_max_tokens)
            cli_usage("--%s applies to a language model; '%s' is a classifier",
                      o_context ? "context" : "max-tokens", o_model);
        run_classifier(o_model, first, argc, argv);
        return;
    }
    if (o_top_tokens || o_plot)
        cli_usage("--%s is for a classifier; '%s' is a language model",
                  o_top_tokens ? "top-tokens" : "plot", o_model);
    int wants_classify = o_task ? strcmp(o_task, "classify") == 0 : 0;
    /* Labelled TSV given to a language model, without --task lm: almost
     * surely meant for a classifier. */
    for (int i = first; !o_task && i < argc; i++)
        if (ends_with(argv[i], ".tsv"))
            wants_classify = 1;
    if (wants_classify)
        cli_die("'%s' is a language model, not a classifier; use --pairs to score "
                "predictions (or --task lm for its loss on the text)", o_model);
    run_lm(o_model, first, argc, argv);
}

int main(int argc, char **argv)
{
    cli_signals();
    int first = cli_parse(&prog, argc, argv, NULL);
    if (o_text && !o_pairs)
        cli_usage("--text needs --pairs");
    if (o_pairs && (o_model || o_leakage))
        cli_usage("--pairs and --%s cannot be combined", o_model ? "model" : "leakage");
    if (o_task && strcmp(o_task, "pairs") == 0 && !o_leakage)
        cli_usage("--task pairs applies to --leakage");
    if (!o_pairs && !o_model && !o_leakage)
        cli_usage("missing --pairs, --model FILE or --leakage TRAIN");
    if (o_leakage && o_task && strcmp(o_task, "pairs") != 0)
        cli_usage("--task %s does not apply to --leakage (pairs does)", o_task);
    if (o_pairs && o_task)
        cli_usage("--task needs --model");
    if (!o_pairs && o_multi)
        cli_usage("--multi-label needs --pairs");
    if (strcmp(o_precision, "f32") != 0 && !o_model)
        cli_usage("--precision applies to a model's evaluation: it needs --model");
    if (o_top_tokens && !o_model)
        cli_usage("--top-tokens needs --model (a classifier)");
    if (o_plot && o_leakage)
        cli_usage("--plot draws a classifier's evaluation, not --leakage");
    if (o_text && (o_multi || o_labels || o_plot))
        cli_usage("--%s is for labels; --text scores text",
                  o_multi ? "multi-label" : o_labels ? "labels" : "plot");
    check(llm_device_check(o_device));
    if (o_plot) {   /* before the evaluation, whose report a bad path would lose */
        int e = llm_can_write_beside(o_plot);
        if (e)
            cli_die("cannot write '%s': %s", o_plot, strerror(e));
    }
    if (o_text)
        run_text(first, argc, argv);
    else if (o_pairs)
        run_pairs(first, argc, argv);
    else if (o_leakage)
        run_leakage(first, argc, argv);
    else
        run_model(first, argc, argv);
    cli_write(out.data, out.len, stdout);
    cli_flush(stdout);
    llm_buf_free(&out);
    return 0;
}
