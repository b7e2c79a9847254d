/* llm-classify.c: label each input line (or a TSV field of it) with a
 * classifier model, or zero-shot with a language model and --labels; one
 * output record per input record, in order, streamed. Options and I/O
 * only: encoding, batching and the maths are in lib/model/classify.c. */
#include <errno.h>
#include <math.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cli.h"

static const char *o_model, *o_format = "tsv", *o_long = "truncate", *o_labels;
static const char *o_template = "{text} Label: {label}";
static const char *o_device = "cpu", *o_precision = "f32";
static int o_text_field, o_id_field, o_top_k, o_with_input, o_null, o_threads, o_quiet;
static int o_batch = 64, o_explain, o_explain_steps = 32;
static const char *o_explain_method = "ig";
static double o_threshold = -1;
static int64_t o_seed = 1;

static const cli_opt opts[] = {
    {"model", 'm', CLI_STRING, &o_model, "FILE",
     "classifier model file (or a language model, with --labels)", NULL, 0, 0, 0,
     CLI_COMPLETE_FILE, 1},
    {"text-field", 'f', CLI_INT, &o_text_field, "N",
     "classify field N (1-based) of tab-separated records (0: the whole record)", NULL, 0,
     1000000, 0, CLI_COMPLETE_NONE, 0},
    {"id-field", 0, CLI_INT, &o_id_field, "N",
     "copy field N of each record to the start of its output record (0: none)", NULL, 0,
     1000000, 0, CLI_COMPLETE_NONE, 0},
    {"top-k", 'k', CLI_INT, &o_top_k, "K",
     "print the K most probable labels (0: 1 for single-label models, every label that "
     "passes its threshold for multi-label ones)", NULL, 0, 1000000, 0, CLI_COMPLETE_NONE,
     1},
    {"threshold", 0, CLI_DOUBLE, &o_threshold, "P",
     "print only labels of probability >= P (multi-label default: the thresholds tuned "
     "in training)", NULL, 0, 1, 0, CLI_COMPLETE_NONE, 1},
    {"with-input", 0, CLI_FLAG, &o_with_input, NULL,
     "append the input record to each output record", NULL, 0, 0, 0, CLI_COMPLETE_NONE, 1},
    {"format", 0, CLI_CHOICE, &o_format, "FMT",
     "tsv: label<TAB>probability; jsonl: one JSON object with every label's probability",
     "tsv|jsonl", 0, 0, 0, CLI_COMPLETE_CHOICE, 0},
    {"null", '0', CLI_FLAG, &o_null, NULL,
     "records end with NUL instead of newline, in input and output", NULL, 0, 0, 0,
     CLI_COMPLETE_NONE, 1},
    {"long", 0, CLI_CHOICE, &o_long, "HOW",
     "documents longer than the context: keep their beginning, or average the "
     "probabilities of consecutive windows", "truncate|mean", 0, 0, 0,
     CLI_COMPLETE_CHOICE, 0},
    {"labels", 0, CLI_STRING, &o_labels, "LIST",
     "zero-shot with a language model: comma-separated candidate labels, scored by their "
     "likelihood as continuations of --template", NULL, 0, 0, 0, CLI_COMPLETE_NONE, 1},
    {"template", 0, CLI_STRING, &o_template, "STR",
     "zero-shot prompt: {text} is the record, {label} a candidate label (at the end); "
     "\\n and \\t are a newline and a tab", NULL, 0, 0, 0, CLI_COMPLETE_NONE, 0},
    {"explain", 0, CLI_OPTINT, &o_explain, "K",
     "explain each printed label by the K tokens (default 10) that raised its probability "
     "most and the K that lowered it most, with their scores and byte offsets", NULL, 1,
     100000, 0, CLI_COMPLETE_NONE, 1},
    {"explain-method", 0, CLI_CHOICE, &o_explain_method, "HOW",
     "ig: integrated gradients over the token embeddings; occlusion: each token left out "
     "in turn", "ig|occlusion", 0, 0, 0, CLI_COMPLETE_CHOICE, 0},
    {"explain-steps", 0, CLI_INT, &o_explain_steps, "N",
     "integration steps of --explain-method ig (cost: about N forward and backward passes "
     "per explained label)", NULL, 1, 1024, 0, CLI_COMPLETE_NONE, 0},
    {"batch", 'b', CLI_INT, &o_batch, "N", "documents per forward pass", NULL, 1, 65536, 0,
     CLI_COMPLETE_NONE, 0},
    CLI_OPT_THREADS(&o_threads),
    {"seed", 0, CLI_INT64, &o_seed, "N",
     "accepted for uniformity: classification draws no random numbers", NULL, 0, 9.2e18,
     0, CLI_COMPLETE_NONE, 0},
    CLI_OPT_DEVICE(&o_device),
    {"precision", 0, CLI_CHOICE, &o_precision, "P",
     "weights of the matrix products: f32; q8: int8 copies in blocks of 32 with a "
     "scale and an offset each, inputs in int16 (under a third of the bytes); or bf16: "
     "bfloat16 copies, inputs rounded alike, sums in f32 (about twice f32's speed where "
     "the CPU has AVX512_BF16); q8 and bf16 CPU only, not with --explain-method ig",
     "f32|q8|bf16", 0, 0, 0, CLI_COMPLETE_CHOICE, 0},
    {"quiet", 'q', CLI_FLAG, &o_quiet, NULL,
     "print no summary (truncated documents, replaced bytes) at the end", NULL, 0, 0, 0,
     CLI_COMPLETE_NONE, 1},
    CLI_OPT_HELP,
    CLI_OPT_VERSION,
};

static const cli_prog prog = {
    "llm-classify", "-m MODEL [FILE]...",
    "Label each line of text (or a field of tab-separated records) with a classifier.",
    NULL, 0, opts, (int)(sizeof opts / sizeof opts[0]),
};

static void check(int rc)
{
    if (rc)
        cli_die_status(rc);
}

/* ------------------------------------------------------------------------ */
/* Input: records read with read(2) into our own buffer, so that we know
 * when no complete record is waiting and a partial batch must be labelled
 * now rather than after the next record arrives (interactive pipes). */

typedef struct {
    int fd;
    const char *name;
    char *buf;
    size_t cap, beg, end;
    int eof;
    long long line;
} reader;

static int has_record(const reader *r, char delim)
{
    return r->beg < r->end && (r->eof || memchr(r->buf + r->beg, delim, r->end - r->beg));
}

/* Whether reading would not block. */
static int readable(const reader *r)
{
    struct pollfd p = { r->fd, POLLIN, 0 };
    return r->eof || poll(&p, 1, 0) > 0;
}

/* The next record (without its delimiter) in *rec, valid until the next
 * call. @return 1, or 0 at the end. */
static int next_record(reader *r, char delim, char **rec, size_t *len)
{
    for (;;) {
        char *nl = r->beg < r->end ? memchr(r->buf + r->beg, delim, r->end - r->beg) : NULL;
        if (nl || (r->eof && r->beg < r->end)) {
            *rec = r->buf + r->beg;
            *len = nl ? (size_t)(nl - *rec) : r->end - r->beg;
            r->beg += *len + (nl != NULL);
            const char *s = *rec;
            if (r->line++ == 0 && llm_utf8_skip_bom(&s, len))   /* a byte-order mark */
                *rec += 3;
            return 1;
        }
        if (r->eof)
            return 0;
        if (r->beg > 0) {
            memmove(r->buf, r->buf + r->beg, r->end - r->beg);
            r->end -= r->beg;
            r->beg = 0;
        }
        if (r->end == r->cap) {
            size_t nc = r->cap ? 2 * r->cap : 1 << 16;
            char *nb = realloc(r->buf, nc);
            if (!nb)
                cli_die("'%s', line %lld: out of memory for a record of %zu bytes",
                        r->name, r->line + 1, r->end);
            r->buf = nb;
            r->cap = nc;
        }
        if (!cli_wait_input(r->fd))   /* SIGINT or SIGTERM ends an idle input */
            return 0;
        ssize_t n = read(r->fd, r->buf + r->end, r->cap - r->end);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0)
            cli_die("cannot read '%s': %s", r->name, strerror(errno));
        if (n == 0)
            r->eof = 1;
        r->end += (size_t)n;
    }
}

/* ------------------------------------------------------------------------ */
/* A batch of records and their documents. */

typedef struct {
    llm_buf text;            /* every record's bytes, back to back */
    size_t *roff, *rlen;     /* record r: the whole record */
    size_t *toff, *tlen;     /* its text field, UTF-8-repaired, in `text` */
    size_t *ioff, *ilen;     /* its id field */
    int *empty;              /* whitespace-only text: no prediction */
    size_t n, cap;
    llm_ids ids;             /* documents' ids, back to back */
    size_t *doff, *dlen, *owner;   /* document d (or window) of record owner[d] */
    size_t nd, dcap;
    const int32_t **dptr;
    float *probs;
    size_t pcap;
    llm_ids *enc;            /* (ecap) record r's ids, encoded in parallel */
    int *etr;                /* and whether it was truncated */
    size_t ecap;
    const char *name;        /* the input of the records, */
    long long line0;         /* and the line of record 0 (records are lines) */
} batch;

/* The first record that cannot be labelled (a missing field; a byte the
 * vocabulary cannot encode), named; empty while there is none. The records
 * before it are labelled and written, then the run stops with this error. */
static char g_bad[512];

static void *grow(void *p, size_t n, size_t size)
{
    void *q = realloc(p, (n ? n : 1) * size);
    if (!q)
        cli_die("out of memory");
    return q;
}

static size_t add_bytes(batch *b, const char *s, size_t n)
{
    size_t off = b->text.len;
    check(llm_buf_append(&b->text, s, n));
    return off;
}

/* Appends s[0..n) with every invalid UTF-8 sequence replaced by U+FFFD.
 * @return 1 when something was replaced. */
static int add_repaired(batch *b, const char *s, size_t n)
{
    size_t fixed;
    check(llm_utf8_repair(s, n, &b->text, &fixed));
    return fixed > 0;
}

/* Field f (1-based) of a tab-separated record. @return 0 when absent. */
static int field(const char *s, size_t n, int f, const char **fs, size_t *fn)
{
    const char *end = s + n;
    for (int i = 1; i < f; i++) {
        const char *t = memchr(s, '\t', (size_t)(end - s));
        if (!t)
            return 0;
        s = t + 1;
    }
    const char *t = memchr(s, '\t', (size_t)(end - s));
    *fs = s;
    *fn = t ? (size_t)(t - s) : (size_t)(end - s);
    return 1;
}

static uint64_t g_truncated, g_repaired;
static llm_model *g_model;
static llm_tok *g_tok;
static int g_K, g_ctx, g_zero_shot, g_multi;
static const char **g_names;
static char g_end;                /* output record terminator */
static int g_flush;

/* @return 0 for a record without its fields (g_bad), not added */
static int add_record(batch *b, const reader *r, const char *rec, size_t len)
{
    if (len && rec[len - 1] == '\r' && !o_null)
        len--;
    const char *ts = rec, *is = NULL;
    size_t tn = len, in = 0;
    if (o_text_field && !field(rec, len, o_text_field, &ts, &tn))
        snprintf(g_bad, sizeof g_bad, "'%s', line %lld: no field %d (fields are separated "
                 "by tabs)", r->name, r->line, o_text_field);
    else if (o_id_field && !field(rec, len, o_id_field, &is, &in))
        snprintf(g_bad, sizeof g_bad, "'%s', line %lld: no field %d for --id-field", r->name,
                 r->line, o_id_field);
    if (g_bad[0])
        return 0;
    if (b->n == 0) {
        b->name = r->name;
        b->line0 = r->line;
    }
    if (b->n == b->cap) {
        b->cap = b->cap ? 2 * b->cap : 256;
        b->roff = grow(b->roff, b->cap, sizeof *b->roff);
        b->rlen = grow(b->rlen, b->cap, sizeof *b->rlen);
        b->toff = grow(b->toff, b->cap, sizeof *b->toff);
        b->tlen = grow(b->tlen, b->cap, sizeof *b->tlen);
        b->ioff = grow(b->ioff, b->cap, sizeof *b->ioff);
        b->ilen = grow(b->ilen, b->cap, sizeof *b->ilen);
        b->empty = grow(b->empty, b->cap, sizeof *b->empty);
    }
    size_t i = b->n++;
    b->roff[i] = add_bytes(b, rec, len);
    b->rlen[i] = len;
    b->ioff[i] = is ? add_bytes(b, is, in) : 0;
    b->ilen[i] = in;
    b->toff[i] = b->text.len;
    g_repaired += (uint64_t)add_repaired(b, ts, tn);
    b->tlen[i] = b->text.len - b->toff[i];
    int blank = 1;
    for (size_t k = 0; k < tn && blank; k++)
        blank = ts[k] == ' ' || ts[k] == '\t' || ts[k] == '\r' || ts[k] == '\n' ||
                ts[k] == '\v' || ts[k] == '\f';
    b->empty[i] = blank;
    return 1;
}

static void add_doc(batch *b, const int32_t *ids, size_t n, size_t owner)
{
    if (b->nd == b->dcap) {
        b->dcap = b->dcap ? 2 * b->dcap : 256;
        b->doff = grow(b->doff, b->dcap, sizeof *b->doff);
        b->dlen = grow(b->dlen, b->dcap, sizeof *b->dlen);
        b->owner = grow(b->owner, b->dcap, sizeof *b->owner);
    }
    b->doff[b->nd] = b->ids.len;
    b->dlen[b->nd] = n;
    b->owner[b->nd] = owner;
    b->nd++;
    for (size_t k = 0; k < n; k++)
        check(llm_ids_push(&b->ids, ids[k]));
}

/* ------------------------------------------------------------------------ */
/* Output. */

static void out(const char *s, size_t n)
{
    cli_write(s, n, stdout);
}

static void outs(const char *s)
{
    out(s, strlen(s));
}

static void out_json_string(const char *s, size_t n)
{
    out("\"", 1);
    size_t run = 0;
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c >= 0x20 && c != '"' && c != '\\')
            continue;
        out(s + run, i - run);
        char e[8];
        if (c == '"' || c == '\\')
            snprintf(e, sizeof e, "\\%c", c);
        else if (c == '\n')
            snprintf(e, sizeof e, "\\n");
        else if (c == '\t')
            snprintf(e, sizeof e, "\\t");
        else if (c == '\r')
            snprintf(e, sizeof e, "\\r");
        else
            snprintf(e, sizeof e, "\\u%04x", c);
        outs(e);
        run = i + 1;
    }
    out(s + run, n - run);
    out("\"", 1);
}

static void out_prob(float p)
{
    char num[32];
    snprintf(num, sizeof num, "%.4f", p);
    outs(num);
}

/* ------------------------------------------------------------------------ */
/* Explanations: each printed label's attributions over the record's text
 * field (offsets into it, after invalid UTF-8 was replaced). */

static llm_explain_method g_method;
/* The integrated-gradients baseline: zero embeddings. A token's (the
 * unknown token's, say) is an arbitrary point: a document of <unk> was
 * labelled Business with p 0.77 by an ag_news classifier, so every real
 * word seemed to argue against Business. */
static const int g_baseline = -1;
static uint64_t g_explain_cut;     /* explained documents that were truncated */

typedef struct {
    llm_ids ids, spans;
    float *score;
    int *order;                    /* positions to print, best first */
    int n_order, truncated;
    size_t cap;
} explanation;

static int by_score_desc(const void *a, const void *b, void *sc)
{
    const float *s = sc;
    float x = s[*(const int *)a], y = s[*(const int *)b];
    return x < y ? 1 : x > y ? -1 : *(const int *)a - *(const int *)b;
}

/* Fills e for label k of the text t[0..n): the K highest positive scores in
 * falling order, then the K lowest negative ones in rising order. */
static void explain_label(explanation *e, const char *t, size_t n, int k)
{
    e->ids.len = 0;
    check(llm_cls_encode_spans(g_tok, t, n, g_ctx, &e->ids, &e->spans, &e->truncated));
    int len = (int)e->ids.len, K = o_explain > 0 ? o_explain : 10;
    if ((size_t)len > e->cap) {
        e->cap = (size_t)len;
        e->score = grow(e->score, e->cap, sizeof *e->score);
        e->order = grow(e->order, e->cap, sizeof *e->order);
    }
    unsigned char *vary = grow(NULL, (size_t)len, 1);
    int bos = llm_tok_bos_id(g_tok) >= 0, eos = llm_tok_eos_id(g_tok) >= 0;
    for (int i = 0; i < len; i++)
        vary[i] = i >= bos && i < len - eos;
    double f[2];
    check(llm_cls_explain(g_model, e->ids.data, len, vary, k, g_method, o_explain_steps,
                          g_baseline, e->score, f));
    int m = 0;
    for (int i = 0; i < len; i++)
        if (vary[i])
            e->order[m++] = i;
    qsort_r(e->order, (size_t)m, sizeof *e->order, by_score_desc, e->score);
    int pos = 0, neg = 0;
    while (pos < m && pos < K && e->score[e->order[pos]] > 0)
        pos++;
    while (neg < m - pos && neg < K && e->score[e->order[m - 1 - neg]] < 0)
        neg++;
    /* The most negative first: the tail reversed, then moved after the
     * positive ones (the two may overlap). */
    for (int i = 0, *tail = e->order + m - neg; i < neg / 2; i++) {
        int s = tail[i];
        tail[i] = tail[neg - 1 - i];
        tail[neg - 1 - i] = s;
    }
    memmove(e->order + pos, e->order + m - neg, (size_t)neg * sizeof *e->order);
    e->n_order = pos + neg;
    free(vary);
}

static int is_space(char c)
{
    return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\v' || c == '\f';
}

/* Token i's span in the text, without the spaces around it (a piece's
 * leading space) unless it is only spaces; -1, -1 when unknown. */
static void token_span(const explanation *e, const char *t, int i, int32_t *s0, int32_t *e0)
{
    int32_t a = e->spans.data[2 * i], z = e->spans.data[2 * i + 1];
    *s0 = a;
    *e0 = z;
    if (a < 0)
        return;
    while (a < z && is_space(t[a]))
        a++;
    while (z > a && is_space(t[z - 1]))
        z--;
    if (a < z) {
        *s0 = a;
        *e0 = z;
    }
}

/* Token i's text: its bytes in the record, or its piece when its place in
 * the text is unknown or holds no byte; invalid UTF-8 (a character split between byte-level
 * tokens) as U+FFFD. */
static void token_text(const explanation *e, const char *t, int i, llm_buf *out)
{
    int32_t s0, e0;
    token_span(e, t, i, &s0, &e0);
    out->len = 0;
    if (s0 >= 0 && e0 == s0) {   /* no bytes: SentencePiece's word-start mark */
        const char *pc = llm_tok_piece(g_tok, e->ids.data[i]);
        check(llm_buf_append(out, pc ? pc : "", pc ? strlen(pc) : 0));
    } else if (s0 < 0) {
        check(llm_tok_decode_piece(g_tok, -1, e->ids.data[i], out));
    } else {
        check(llm_buf_append(out, t + s0, (size_t)(e0 - s0)));
    }
    if (out->len && !llm_utf8_check(out->data, out->len, NULL)) {
        llm_buf fixed = { 0 };
        check(llm_utf8_repair(out->data, out->len, &fixed, NULL));
        out->len = 0;
        check(llm_buf_append(out, fixed.data, fixed.len));
        llm_buf_free(&fixed);
    }
}

static void out_score(float x)
{
    char num[32];
    snprintf(num, sizeof num, "%.4g", x);
    outs(num);
}

static void out_json_string(const char *s, size_t n);

static void emit_explanation_json(explanation *e, const char *t)
{
    llm_buf tok = { 0 };
    out("[", 1);
    for (int j = 0; j < e->n_order; j++) {
        int i = e->order[j];
        token_text(e, t, i, &tok);
        outs(j ? ",{\"token\":" : "{\"token\":");
        out_json_string(tok.data ? tok.data : "", tok.len);
        char num[64];
        int32_t s0, e0;
        token_span(e, t, i, &s0, &e0);
        if (s0 >= 0)
            snprintf(num, sizeof num, ",\"start\":%d,\"end\":%d,\"score\":", (int)s0, (int)e0);
        else
            snprintf(num, sizeof num, ",\"start\":null,\"end\":null,\"score\":");
        outs(num);
        out_score(e->score[i]);
        out("}", 1);
    }
    out("]", 1);
    llm_buf_free(&tok);
}

/* token:score pairs separated by spaces; in a token \, tab, newline, CR and
 * space are written \\, \t, \n, \r and \s. */
static void emit_explanation_tsv(explanation *e, const char *t)
{
    llm_buf tok = { 0 };
    for (int j = 0; j < e->n_order; j++) {
        int i = e->order[j];
        token_text(e, t, i, &tok);
        if (j)
            out(" ", 1);
        for (size_t c = 0; c < tok.len; c++) {
            char ch = tok.data[c];
            const char *esc = ch == '\\' ? "\\\\" : ch == '\t' ? "\\t" : ch == '\n' ? "\\n"
                              : ch == '\r' ? "\\r" : ch == ' ' ? "\\s" : NULL;
            if (esc)
                outs(esc);
            else
                out(&ch, 1);
        }
        out(":", 1);
        out_score(e->score[i]);
    }
    llm_buf_free(&tok);
}

static explanation g_expl;
static int g_colour;   /* --explain, tsv, standard output a terminal */

/* The text again, its explained tokens on a green (for the label) or red
 * (against it) background, darker for a larger share of the largest score:
 * for a person at a terminal, never in a pipe. */
static void emit_coloured(const explanation *e, const char *t, size_t n)
{
    static const int green[] = { 22, 28, 34, 40 }, red[] = { 52, 88, 124, 160 };
    float mx = 0;
    for (int j = 0; j < e->n_order; j++)
        mx = fabsf(e->score[e->order[j]]) > mx ? fabsf(e->score[e->order[j]]) : mx;
    size_t at = 0;
    outs("  ");
    for (size_t i = 0; i < e->ids.len; i++) {
        int32_t s0, e0;
        token_span(e, t, (int)i, &s0, &e0);
        int j = 0;
        while (j < e->n_order && e->order[j] != (int)i)
            j++;
        if (s0 < 0 || j == e->n_order || (size_t)s0 < at || e0 == s0)
            continue;
        out(t + at, (size_t)s0 - at);
        float sc = e->score[i];
        int lvl = mx > 0 ? (int)(3.999f * fabsf(sc) / mx) : 0;
        char esc[32];
        snprintf(esc, sizeof esc, "\033[97;48;5;%dm", sc > 0 ? green[lvl] : red[lvl]);
        outs(esc);
        out(t + s0, (size_t)(e0 - s0));
        outs("\033[0m");
        at = (size_t)e0;
    }
    out(t + at, n - at);
    out("\n", 1);
}

/* The labels to print, most probable first (ties: label order). */
static int pick(const float *p, int *idx)
{
    int n = 0;
    const float *thr = g_zero_shot ? NULL : llm_model_thresholds(g_model);
    int k = o_top_k ? o_top_k : g_multi ? g_K : 1;
    for (int i = 0; i < g_K; i++)
        idx[i] = i;
    for (int i = 1; i < g_K; i++)     /* insertion sort: K is small */
        for (int j = i; j > 0 && p[idx[j]] > p[idx[j - 1]]; j--) {
            int t = idx[j];
            idx[j] = idx[j - 1];
            idx[j - 1] = t;
        }
    for (int i = 0; i < g_K && n < k; i++) {
        double t = o_threshold >= 0 ? o_threshold : g_multi && thr ? thr[idx[i]] : 0;
        if (p[idx[i]] >= t)
            idx[n++] = idx[i];
    }
    return n;
}

static void emit(const batch *b, size_t r, const float *p, int *idx)
{
    const char *text = b->text.data;
    int n = b->empty[r] ? 0 : pick(p, idx);
    if (strcmp(o_format, "jsonl") == 0) {
        out("{", 1);
        if (o_id_field) {
            outs("\"id\":");
            out_json_string(text + b->ioff[r], b->ilen[r]);
            out(",", 1);
        }
        outs("\"label\":");
        if (n)
            out_json_string(g_names[idx[0]], strlen(g_names[idx[0]]));
        else
            outs("\"\"");
        outs(",\"probability\":");
        out_prob(n ? p[idx[0]] : 0.0f);
        outs(",\"labels\":[");
        for (int i = 0; i < n; i++) {
            if (i)
                out(",", 1);
            out_json_string(g_names[idx[i]], strlen(g_names[idx[i]]));
        }
        outs("],\"probabilities\":{");
        for (int i = 0; !b->empty[r] && i < g_K; i++) {
            if (i)
                out(",", 1);
            out_json_string(g_names[i], strlen(g_names[i]));
            out(":", 1);
            out_prob(p[i]);
        }
        out("}", 1);
        if (o_explain) {
            int cut = 0;
            outs(n > 1 ? ",\"explain\":{" : ",\"explain\":");
            if (n == 0)
                outs("[]");
            for (int i = 0; i < n; i++) {
                explain_label(&g_expl, text + b->toff[r], b->tlen[r], idx[i]);
                cut |= g_expl.truncated;
                if (n > 1) {
                    if (i)
                        out(",", 1);
                    out_json_string(g_names[idx[i]], strlen(g_names[idx[i]]));
                    out(":", 1);
                }
                emit_explanation_json(&g_expl, text + b->toff[r]);
            }
            if (n > 1)
                out("}", 1);
            if (cut) {
                outs(",\"explain_truncated\":true");
                g_explain_cut++;
            }
        }
        if (o_with_input) {
            outs(",\"text\":");
            out_json_string(text + b->toff[r], b->tlen[r]);
        }
        out("}", 1);
    } else {
        if (o_id_field) {
            out(text + b->ioff[r], b->ilen[r]);
            out("\t", 1);
        }
        if (n == 0)
            outs("\t0.0000");
        for (int i = 0; i < n; i++) {
            if (i)
                out("\t", 1);
            outs(g_names[idx[i]]);
            out("\t", 1);
            out_prob(p[idx[i]]);
        }
        for (int i = 0; o_explain && i < n; i++) {
            explain_label(&g_expl, text + b->toff[r], b->tlen[r], idx[i]);
            g_explain_cut += (uint64_t)g_expl.truncated;
            out("\t", 1);
            emit_explanation_tsv(&g_expl, text + b->toff[r]);
        }
        if (o_with_input) {
            out("\t", 1);
            out(text + b->roff[r], b->rlen[r]);
        }
    }
    out(&g_end, 1);
    if (g_colour && n) {   /* the first label's explanation (the last one made, if alone) */
        if (n > 1)
            explain_label(&g_expl, text + b->toff[r], b->tlen[r], idx[0]);
        emit_coloured(&g_expl, text + b->toff[r], b->tlen[r]);
    }
    if (g_flush)
        cli_flush(stdout);
}

/* ------------------------------------------------------------------------ */
/* Zero-shot: each candidate label's log-likelihood as the continuation of
 * the template, normalised over the candidates. */

static char *g_prefix_fmt, *g_suffix;    /* template around {label} */
static llm_ids *g_label_ids;             /* (K) ids of label + suffix */

/* @return 0, or -1 when the vocabulary cannot encode record r (g_bad) */
static int zero_shot(batch *b, size_t r, float *p)
{
    const char *text = b->text.data + b->toff[r];
    size_t tn = b->tlen[r];
    llm_buf pre = { 0 };
    for (const char *s = g_prefix_fmt; *s;) {
        const char *t = strstr(s, "{text}");
        if (!t) {
            check(llm_buf_append(&pre, s, strlen(s)));
            break;
        }
        check(llm_buf_append(&pre, s, (size_t)(t - s)));
        check(llm_buf_append(&pre, text, tn));
        s = t + 6;
    }
    llm_ids pids = { 0 };
    int bos = llm_tok_bos_id(g_tok), eos = llm_tok_eos_id(g_tok);
    if (llm_tok_encode(g_tok, pre.data ? pre.data : "", pre.len, &pids)) {
        snprintf(g_bad, sizeof g_bad, "'%s', line %lld: %s", b->name, b->line0 + (long long)r,
                 llm_errmsg());
        llm_ids_free(&pids);
        llm_buf_free(&pre);
        return -1;
    }
    size_t maxc = 0;
    for (int k = 0; k < g_K; k++)
        maxc = g_label_ids[k].len > maxc ? g_label_ids[k].len : maxc;
    /* Room: BOS, prefix, candidate, EOS; a long prefix loses its start. */
    size_t room = (size_t)g_ctx - 2 - maxc, skip = 0;
    if (pids.len > room) {
        skip = pids.len - room;
        g_truncated++;
    }
    size_t T = 1 + (pids.len - skip) + maxc + 1;
    int32_t *tok = calloc((size_t)g_K * T, sizeof *tok), *tgt = malloc((size_t)g_K * T * 4);
    double *lp = malloc((size_t)g_K * sizeof *lp);
    if (!tok || !tgt || !lp)
        cli_die("out of memory");
    for (int k = 0; k < g_K; k++) {
        int32_t *row = tok + (size_t)k * T, *tr = tgt + (size_t)k * T;
        size_t n = 0;
        row[n++] = bos >= 0 ? bos : 0;
        for (size_t i = skip; i < pids.len; i++)
            row[n++] = pids.data[i];
        size_t first = n;
        for (size_t i = 0; i < g_label_ids[k].len; i++)
            row[n++] = g_label_ids[k].data[i];
        if (eos >= 0)
            row[n++] = eos;
        for (size_t t = 0; t < T; t++)    /* target of position t is token t+1 */
            tr[t] = t + 1 >= first && t + 1 < n ? row[t + 1] : -1;
    }
    check(llm_lm_score(g_model, tok, tgt, g_K, (int)T, lp));
    double mx = lp[0], s = 0;
    for (int k = 1; k < g_K; k++)
        mx = lp[k] > mx ? lp[k] : mx;
    for (int k = 0; k < g_K; k++)
        s += exp(lp[k] - mx);
    for (int k = 0; k < g_K; k++)
        p[k] = (float)(exp(lp[k] - mx) / s);
    free(tok);
    free(tgt);
    free(lp);
    llm_ids_free(&pids);
    llm_buf_free(&pre);
    return 0;
}

/* ------------------------------------------------------------------------ */

static void run_batch(batch *b)
{
    if (b->n == 0)
        return;
    if (b->n * (size_t)g_K > b->pcap) {
        b->pcap = b->n * (size_t)g_K;
        b->probs = grow(b->probs, b->pcap, sizeof *b->probs);
    }
    int *idx = malloc((size_t)g_K * sizeof *idx);
    if (!idx)
        cli_die("out of memory");
    if (g_zero_shot) {
        for (size_t r = 0; r < b->n && !cli_stopped(); r++) {
            if (!b->empty[r] && zero_shot(b, r, b->probs + r * (size_t)g_K))
                break;
            emit(b, r, b->probs + r * (size_t)g_K, idx);
        }
    } else {
        b->nd = 0;
        b->ids.len = 0;
        int mean = strcmp(o_long, "mean") == 0;
        if (b->n > b->ecap) {
            b->enc = grow(b->enc, b->n, sizeof *b->enc);
            memset(b->enc + b->ecap, 0, (b->n - b->ecap) * sizeof *b->enc);
            b->etr = grow(b->etr, b->n, sizeof *b->etr);
            b->ecap = b->n;
        }
        /* Records are tokenized on every thread (empty ones too, unused);
         * where one fails, one at a time to the first that fails, which
         * ends the batch (and the run) there. */
        if (llm_cls_encode_many(g_tok, b->text.data, b->toff, b->tlen, b->n, mean ? 0 : g_ctx,
                                b->enc, b->etr))
            for (size_t r = 0; r < b->n; r++) {
                b->enc[r].len = 0;
                if (b->empty[r] || !llm_cls_encode(g_tok, b->text.data + b->toff[r],
                                                   b->tlen[r], mean ? 0 : g_ctx, &b->enc[r],
                                                   &b->etr[r]))
                    continue;
                snprintf(g_bad, sizeof g_bad, "'%s', line %lld: %s", b->name,
                         b->line0 + (long long)r, llm_errmsg());
                b->n = r;
            }
        for (size_t r = 0; r < b->n; r++) {
            if (b->empty[r])
                continue;
            llm_ids *doc = &b->enc[r];
            g_truncated += (uint64_t)b->etr[r];
            if (!mean || doc->len <= (size_t)g_ctx) {
                add_doc(b, doc->data, doc->len, r);
                continue;
            }
            g_truncated++;
            /* Windows of the inner ids, each with BOS and EOS again. */
            int bos = llm_tok_bos_id(g_tok) >= 0, eos = llm_tok_eos_id(g_tok) >= 0;
            size_t inner = doc->len - (size_t)bos - (size_t)eos;
            size_t w = (size_t)g_ctx - (size_t)bos - (size_t)eos;
            int32_t *win = malloc((size_t)g_ctx * sizeof *win);
            if (!win)
                cli_die("out of memory");
            for (size_t s = 0; s < inner; s += w) {
                size_t k = inner - s < w ? inner - s : w, n = 0;
                if (bos)
                    win[n++] = doc->data[0];
                memcpy(win + n, doc->data + bos + s, k * sizeof *win);
                n += k;
                if (eos)
                    win[n++] = doc->data[doc->len - 1];
                add_doc(b, win, n, r);
            }
            free(win);
        }
        b->dptr = grow((void *)b->dptr, b->nd, sizeof *b->dptr);
        for (size_t d = 0; d < b->nd; d++)
            b->dptr[d] = b->ids.data + b->doff[d];
        if (b->nd)
            check(llm_cls_predict(g_model, b->dptr, b->dlen, b->nd, b->owner, b->n, o_batch,
                                  b->probs));
        for (size_t r = 0; r < b->n && !cli_stopped(); r++)   /* whole records */
            emit(b, r, b->probs + r * (size_t)g_K, idx);
    }
    free(idx);
    b->n = 0;
    b->text.len = 0;
}

static void classify_input(batch *b, const char *path)
{
    reader r = { 0 };
    r.name = !path || strcmp(path, "-") == 0 ? "(standard input)" : path;
    FILE *f = cli_open(path);   /* only its descriptor is read, never through stdio */
    r.fd = fileno(f);
    char delim = o_null ? '\0' : '\n';
    size_t chunk = (size_t)o_batch * 16;
    char *rec;
    size_t len;
    while (!cli_stopped() && !g_bad[0]) {
        /* Label what we have before waiting for more. */
        if (b->n && !has_record(&r, delim) && !readable(&r))
            run_batch(b);
        if (!next_record(&r, delim, &rec, &len) || !add_record(b, &r, rec, len))
            break;
        if (b->n >= chunk)
            run_batch(b);
    }
    if (!cli_stopped())
        run_batch(b);
    cli_close(f);
    free(r.buf);
}

/* The labels: a classifier's own, or zero-shot --labels scored through
 * --template. @return the zero-shot names (owned), or NULL. */
static char **setup_labels(void)
{
    char **zs_names = NULL;
    if (o_labels) {
        if (llm_model_n_labels(g_model))
            cli_usage("--labels is for zero-shot use of a language model; '%s' is a "
                      "classifier", o_model);
        llm_buf tb = { 0 };   /* kept: g_prefix_fmt points into it */
        check(llm_unescape(o_template, strlen(o_template), &tb));
        check(llm_buf_append(&tb, "", 0));
        char *tpl = tb.data;
        char *at = strstr(tpl, "{label}");
        if (!at || strstr(at + 7, "{label}"))
            cli_usage("--template must hold {label} once");
        if (strstr(at + 7, "{text}"))   /* (the suffix is scored as it is) */
            cli_usage("--template: {text} must come before {label}");
        g_suffix = at + 7;
        *at = '\0';
        g_prefix_fmt = tpl;
        /* Candidate labels: comma-separated, each non-empty and distinct. */
        const char *s = o_labels;
        for (;;) {
            const char *e = strchr(s, ',');
            size_t n = e ? (size_t)(e - s) : strlen(s);
            if (n == 0)
                cli_usage("--labels: empty label in '%s'", o_labels);
            zs_names = grow(zs_names, (size_t)g_K + 1, sizeof *zs_names);
            if (!(zs_names[g_K] = strndup(s, n)))
                cli_die("out of memory");
            for (int k = 0; k < g_K; k++)
                if (strcmp(zs_names[k], zs_names[g_K]) == 0)
                    cli_usage("--labels: '%s' appears twice", zs_names[k]);
            g_K++;
            if (!e)
                break;
            s = e + 1;
        }
        if (g_K < 2)
            cli_usage("--labels needs two or more labels");
        g_names = (const char **)zs_names;
        g_label_ids = calloc((size_t)g_K, sizeof *g_label_ids);
        if (!g_label_ids)
            cli_die("out of memory");
        for (int k = 0; k < g_K; k++) {
            llm_buf c = { 0 };
            check(llm_buf_append(&c, zs_names[k], strlen(zs_names[k])));
            check(llm_buf_append(&c, g_suffix, strlen(g_suffix)));
            check(llm_tok_encode(g_tok, c.data, c.len, &g_label_ids[k]));
            if (g_label_ids[k].len + 3 > (size_t)g_ctx)
                cli_usage("--labels: '%s' is too long for the context", zs_names[k]);
            llm_buf_free(&c);
        }
        g_zero_shot = 1;
    } else {
        g_K = llm_model_n_labels(g_model);
        if (!g_K)
            cli_die("'%s' is a language model, not a classifier (use --labels for "
                    "zero-shot)", o_model);
        g_multi = llm_model_multi_label(g_model);
        g_names = malloc((size_t)g_K * sizeof *g_names);
        if (!g_names)
            cli_die("out of memory");
        for (int k = 0; k < g_K; k++)
            g_names[k] = llm_model_label(g_model, k);
    }
    return zs_names;
}

/* The closing warnings: truncated documents, cut explanations, repaired
 * records. */
static void summary_warnings(void)
{
    if (!o_quiet && g_truncated)
        cli_warn("%llu document%s longer than the context of %d tokens: %s",
                 (unsigned long long)g_truncated, g_truncated == 1 ? " was" : "s were",
                 g_ctx, g_zero_shot ? "lost their beginning" :
                 strcmp(o_long, "mean") == 0 ? "averaged over windows" : "truncated");
    if (!o_quiet && g_explain_cut)
        cli_warn("%llu explanation%s cover%s only the first %d tokens of a longer document",
                 (unsigned long long)g_explain_cut, g_explain_cut == 1 ? "" : "s",
                 g_explain_cut == 1 ? "s" : "", g_ctx);
    if (!o_quiet && g_repaired)
        cli_warn("%llu record%s held invalid UTF-8, replaced by U+FFFD",
                 (unsigned long long)g_repaired, g_repaired == 1 ? "" : "s");
}

int main(int argc, char **argv)
{
    cli_signals();
    cli_catch_stop();   /* SIGINT, SIGTERM: the records labelled so far, whole */
    int first = cli_parse(&prog, argc, argv, NULL);
    if (!o_model)
        cli_usage("missing --model FILE");
    if (o_id_field && o_id_field == o_text_field)
        cli_usage("--id-field and --text-field name the same field %d", o_id_field);
    check(llm_device_check(o_device));
    llm_set_threads(o_threads);
    if (strcmp(o_precision, "f32") != 0 && o_explain && strcmp(o_explain_method, "ig") == 0)
        cli_usage("--explain-method ig needs gradients, which --precision %s does not have; "
                  "use --explain-method occlusion", o_precision);
    check(llm_model_load(o_model, o_device, &g_model));
    cli_precision(g_model, o_precision);
    check(llm_tok_load(o_model, &g_tok));
    g_ctx = llm_model_config(g_model)->context;
    if (o_explain && o_labels)
        cli_usage("--explain needs a classifier model; zero-shot --labels scores are not "
                  "explained");
    if (o_explain && !llm_model_n_labels(g_model))
        cli_usage("--explain needs a classifier; '%s' is a language model", o_model);
    if (o_explain) {
        check(llm_explain_method_parse(o_explain_method, &g_method));
    }
    char **zs_names = setup_labels();
    g_end = o_null ? '\0' : '\n';
    g_colour = o_explain && !o_null && strcmp(o_format, "tsv") == 0 && isatty(1);
    struct stat st;
    g_flush = fstat(1, &st) != 0 || !S_ISREG(st.st_mode);

    batch b = { 0 };
    if (first >= argc)
        classify_input(&b, NULL);
    for (int i = first; i < argc && !cli_stopped() && !g_bad[0]; i++)
        classify_input(&b, argv[i]);
    cli_flush(stdout);
    summary_warnings();
    free(b.roff); free(b.rlen); free(b.toff); free(b.tlen); free(b.ioff); free(b.ilen);
    free(b.empty); free(b.doff); free(b.dlen); free(b.owner); free((void *)b.dptr);
    free(b.probs);
    llm_ids_free(&g_expl.ids);
    llm_ids_free(&g_expl.spans);
    free(g_expl.score);
    free(g_expl.order);
    llm_buf_free(&b.text);
    llm_ids_free(&b.ids);
    for (size_t r = 0; r < b.ecap; r++)
        llm_ids_free(&b.enc[r]);
    free(b.enc); free(b.etr);
    for (int k = 0; zs_names && k < g_K; k++) {
        free(zs_names[k]);
        llm_ids_free(&g_label_ids[k]);
    }
    free(zs_names);
    free(g_label_ids);
    free(g_prefix_fmt);
    if (!zs_names)
        free(g_names);
    llm_tok_free(g_tok);
    llm_model_free(g_model);
    if (g_bad[0] && !cli_stopped())
        cli_die("%s", g_bad);
    if (g_bad[0])
        cli_warn("%s", g_bad);
    return cli_stopped() ? 128 + cli_stopped() : 0;
}
