/* textmetrics.c: generated text scored against references, each figure as
 * the implementation people quote computes it (definitions in llm.h):
 * corpus BLEU and chrF2 of sacreBLEU 2 with its defaults, exact match and
 * token F1 of the SQuAD v1.1 evaluation script, ROUGE-L of rouge-score.
 *
 * Those are Python programs over str, so text is taken as Unicode code
 * points the way Python takes it: whitespace is what str.split() splits on,
 * lower case is str.lower() (utf8proc's simple mapping, which equals
 * Python's everywhere but U+0130 and the final sigma, both handled here),
 * and a word character of the SQuAD script's \b is what re's \w matches
 * (general category L* or N*, or '_'). sacreBLEU's 13a tokenizer is a few
 * regular expressions over ASCII classes, applied here as plain scans with
 * re.sub's left-to-right, non-overlapping matching.
 *
 * Per line, n-grams (of code points, or of token ids) are counted in one
 * open-addressing table keyed by slices of the line's arrays, cleared for
 * each use. ROUGE-L's longest common subsequence is the bit-parallel
 * algorithm of Hyyrö (2004): n * m / 64 word operations and O(m) memory, so
 * a long line costs time, never a table of n * m. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include <utf8proc.h>

#include "elementwise.h"
#include "internal.h"

#define BLEU_ORDER 4
#define CHRF_ORDER 6
#define CHRF_BETA 2.0

typedef struct {
    uint32_t *p;
    size_t n, cap;
} u32vec;

typedef struct {
    size_t off, len;
} span;

typedef struct {
    span *p;
    size_t n, cap;
} spanvec;

/* A slice of some array and two counts (reference, hypothesis), or an id. */
typedef struct {
    const uint32_t *key;   /* NULL: empty */
    uint32_t len, a, b;
} slot;

typedef struct {
    slot *s;
    size_t cap;   /* allocated */
    size_t mask;  /* slots in use - 1 (a power of two - 1) */
    uint32_t n;   /* entries */
} table;

/* One side of a line (0 reference, 1 hypothesis). */
typedef struct {
    u32vec cp;        /* the text's code points */
    u32vec low;       /* cp lowered as str.lower() */
    u32vec x, y;      /* work: the 13a passes, the SQuAD normalisation */
    u32vec squad;     /* normalised for SQuAD */
    u32vec nows;      /* cp without whitespace (chrF) */
    spanvec tok;      /* tokens, offsets into the array they were cut from */
    u32vec ids;       /* token ids (BLEU, ROUGE-L) */
} side;

/* One line's figures, added to the totals only when all are computed. */
typedef struct {
    uint64_t sys, ref, correct[BLEU_ORDER], total[BLEU_ORDER];
    uint64_t chyp[CHRF_ORDER], cref[CHRF_ORDER], cmatch[CHRF_ORDER];
    double em, f1, rouge;
} line_stats;

struct llm_text_metrics {
    uint64_t lines;
    line_stats sum;
    side s[2];
    table t;
    /* ROUGE-L scratch */
    uint64_t *v, *dense;           /* V and a mask (2 W words), built masks */
    size_t cap_words, cap_dense;
    uint32_t *cnt, *start, *pos;   /* (symbols), (symbols + 1), (positions) */
    int32_t *didx;                 /* (symbols): index of a built mask, or -1 */
    size_t cap_cnt, cap_start, cap_didx, cap_pos;
};

/* ------------------------------------------------------------------------ */
/* Storage. */

/* Makes the array whose pointer is at `pp` (any object pointer type) hold
 * at least `need` items of `size` bytes; *cap counts them. */
static int grow(void *pp, size_t *cap, size_t need, size_t size)
{
    if (need <= *cap)
        return LLM_OK;
    size_t c = *cap ? *cap : 64, bytes;
    while (c < need)
        c = c > SIZE_MAX / 2 ? need : c * 2;
    void *p;
    memcpy(&p, pp, sizeof p);
    void *q = llm_mul_size(c, size, &bytes) ? NULL : realloc(p, bytes);
    if (!q)
        return llm_fail(LLM_ERR_NOMEM, "out of memory (a line of %zu items)", need);
    memcpy(pp, &q, sizeof q);
    *cap = c;
    return LLM_OK;
}

/* Room for n * factor + extra items in v (v->n reset to 0). */
static int vec_room(u32vec *v, size_t n, size_t factor, size_t extra)
{
    size_t need;
    if (llm_mul_size(n, factor, &need) || llm_add_size(need, extra, &need))
        return llm_fail(LLM_ERR_NOMEM, "out of memory (a line of %zu characters)", n);
    v->n = 0;
    return grow(&v->p, &v->cap, need, sizeof *v->p);
}

static int span_push(spanvec *v, size_t off, size_t len)
{
    if (v->n == v->cap) {
        int rc = grow(&v->p, &v->cap, v->n + 1, sizeof *v->p);
        if (rc)
            return rc;
    }
    v->p[v->n++] = (span){ off, len };
    return LLM_OK;
}

static size_t slice_hash(const uint32_t *k, uint32_t len)
{
    uint64_t h = len;
    for (uint32_t i = 0; i < len; i++)
        h = llm_mix64(h ^ k[i]) + i;
    return (size_t)h;
}

/* Empties t, with room for `entries` keys at most half full. */
static int tab_clear(table *t, size_t entries)
{
    size_t need = 16;
    while (need / 2 < entries) {
        if (need > SIZE_MAX / 4)
            return llm_fail(LLM_ERR_NOMEM, "out of memory (%zu n-grams)", entries);
        need *= 2;
    }
    int rc = grow(&t->s, &t->cap, need, sizeof *t->s);
    if (rc)
        return rc;
    memset(t->s, 0, need * sizeof *t->s);
    t->mask = need - 1;
    t->n = 0;
    return LLM_OK;
}

/* The slot of key k[0..len): found, or new (counts 0) when `add`, else NULL. */
static slot *tab_get(table *t, const uint32_t *k, uint32_t len, int add)
{
    size_t i = slice_hash(k, len) & t->mask;
    for (;;) {
        slot *s = &t->s[i];
        if (!s->key) {
            if (!add)
                return NULL;
            *s = (slot){ k, len, 0, 0 };
            t->n++;
            return s;
        }
        if (s->len == len && memcmp(s->key, k, (size_t)len * sizeof *k) == 0)
            return s;
        i = (i + 1) & t->mask;
    }
}

/* ------------------------------------------------------------------------ */
/* Code points as Python sees them. */

static void decode(const char *s, size_t n, u32vec *out)
{
    const unsigned char *u = (const unsigned char *)s;
    size_t k = 0;
    for (size_t i = 0; i < n;) {
        uint32_t c = u[i];
        int len = c < 0x80 ? 1 : c < 0xE0 ? 2 : c < 0xF0 ? 3 : 4;
        if (len > 1)
            c &= 0x3Fu >> (len - 1);
        for (int j = 1; j < len; j++)
            c = c << 6 | (u[i + j] & 0x3Fu);
        out->p[k++] = c;
        i += (size_t)len;
    }
    out->n = k;
}

/* str.isspace(): bidirectional class WS, B or S, or category Zs. */
static int is_space(uint32_t c)
{
    if (c < 0x80)
        return (c >= 0x09 && c <= 0x0D) || (c >= 0x1C && c <= 0x20);
    return c == 0x85 || c == 0xA0 || c == 0x1680 || (c >= 0x2000 && c <= 0x200A) ||
           c == 0x2028 || c == 0x2029 || c == 0x202F || c == 0x205F || c == 0x3000;
}

/* Case_Ignorable (DerivedCoreProperties): Mn, Me, Cf, Lm, Sk, and the
 * Word_Break classes MidLetter, MidNumLet and Single_Quote. */
static int case_ignorable(uint32_t c)
{
    switch (utf8proc_category((utf8proc_int32_t)c)) {
    case UTF8PROC_CATEGORY_MN: case UTF8PROC_CATEGORY_ME: case UTF8PROC_CATEGORY_CF:
    case UTF8PROC_CATEGORY_LM: case UTF8PROC_CATEGORY_SK:
        return 1;
    default:
        break;
    }
    switch (c) {
    case 0x27: case 0x2E: case 0x3A: case 0xB7: case 0x387: case 0x55F: case 0x5F4:
    case 0x2018: case 0x2019: case 0x2024: case 0x2027: case 0xFE13: case 0xFE52:
    case 0xFE55: case 0xFF07: case 0xFF0E: case 0xFF1A:
        return 1;
    default:
        return 0;
    }
}

/* Cased: Lu, Ll, Lt, or Other_Lowercase / Other_Uppercase. For the
 * characters that are not case-ignorable (the only ones asked about), those
 * are the ones with a case mapping, ordinal indicators and enclosed letters. */
static int cased(uint32_t c)
{
    utf8proc_int32_t x = (utf8proc_int32_t)c;
    int cat = utf8proc_category(x);
    return cat == UTF8PROC_CATEGORY_LU || cat == UTF8PROC_CATEGORY_LL ||
           cat == UTF8PROC_CATEGORY_LT || utf8proc_tolower(x) != x ||
           utf8proc_toupper(x) != x || c == 0xAA || c == 0xBA ||
           (c >= 0x1F130 && c <= 0x1F149) || (c >= 0x1F150 && c <= 0x1F169) ||
           (c >= 0x1F170 && c <= 0x1F189);
}

/* CPython's handle_capital_sigma(): U+03A3 lowers to final U+03C2 after a
 * cased letter (case-ignorables between) not followed by one. */
static int final_sigma(const uint32_t *s, size_t n, size_t i)
{
    size_t j = i;
    while (j > 0 && case_ignorable(s[j - 1]))
        j--;
    if (j == 0 || !cased(s[j - 1]))
        return 0;
    for (j = i + 1; j < n && case_ignorable(s[j]); j++)
        ;
    return j == n || !cased(s[j]);
}

/* str.lower(): out gets at most 2n code points (U+0130 becomes two). */
static int lower(const u32vec *in, u32vec *out)
{
    int rc = vec_room(out, in->n, 2, 0);
    if (rc)
        return rc;
    for (size_t i = 0; i < in->n; i++) {
        uint32_t c = in->p[i];
        if (c == 0x3A3) {
            out->p[out->n++] = final_sigma(in->p, in->n, i) ? 0x3C2 : 0x3C3;
        } else if (c == 0x130) {
            out->p[out->n++] = 'i';
            out->p[out->n++] = 0x307;
        } else {
            out->p[out->n++] = (uint32_t)utf8proc_tolower((utf8proc_int32_t)c);
        }
    }
    return LLM_OK;
}

/* Tokens: the runs of non-whitespace of a[0..n), as str.split(). */
static int split(const uint32_t *a, size_t n, spanvec *tok)
{
    tok->n = 0;
    for (size_t i = 0; i < n;) {
        while (i < n && is_space(a[i]))
            i++;
        size_t j = i;
        while (j < n && !is_space(a[j]))
            j++;
        if (j > i) {
            int rc = span_push(tok, i, j - i);
            if (rc)
                return rc;
        }
        i = j;
    }
    return LLM_OK;
}

/* ------------------------------------------------------------------------ */
/* sacreBLEU's 13a tokenizer (tokenizer_13a.py, tokenizer_re.py). */

static void swap(u32vec *a, u32vec *b)
{
    u32vec t = *a;
    *a = *b;
    *b = t;
}

/* *x = x.replace(pat, rep), pat and rep ASCII, rep no longer than pat;
 * y is scratch. */
static int replace(u32vec *x, u32vec *y, const char *pat, const char *rep)
{
    const u32vec *in = x;
    u32vec *out = y;
    size_t pn = strlen(pat), rn = strlen(rep);
    int rc = vec_room(out, in->n, 1, 0);
    if (rc)
        return rc;
    for (size_t i = 0; i < in->n;) {
        size_t k = 0;
        while (k < pn && i + k < in->n && in->p[i + k] == (unsigned char)pat[k])
            k++;
        if (k == pn) {
            for (size_t j = 0; j < rn; j++)
                out->p[out->n++] = (unsigned char)rep[j];
            i += pn;
        } else {
            out->p[out->n++] = in->p[i++];
        }
    }
    swap(x, y);
    return LLM_OK;
}

static int has(const u32vec *v, uint32_t c)
{
    for (size_t i = 0; i < v->n; i++)
        if (v->p[i] == c)
            return 1;
    return 0;
}

static int digit(uint32_t c)
{
    return c >= '0' && c <= '9';
}

/* ([\{-\~\[-\` -\&\(-\+\:-\@\/]) -> ' \1 ' */
static int punct13a(uint32_t c)
{
    return (c >= 0x7B && c <= 0x7E) || (c >= 0x5B && c <= 0x60) || (c >= 0x20 && c <= 0x26) ||
           (c >= 0x28 && c <= 0x2B) || (c >= 0x3A && c <= 0x40) || c == '/';
}

/* One of the pair rules over *x (y scratch): where x[i] is in class A and
 * x[i+1] in class B (left to right, a match consuming both), the pair with
 * spaces as `form` says: 0 "\1 \2 ", 1 " \1 \2". */
static int pair_pass(u32vec *x, u32vec *y, int (*a)(uint32_t), int (*b)(uint32_t), int form)
{
    const u32vec *in = x;
    u32vec *out = y;
    int rc = vec_room(out, in->n, 2, 0);
    if (rc)
        return rc;
    for (size_t i = 0; i < in->n;) {
        uint32_t c = in->p[i];
        if (i + 1 < in->n && a(c) && b(in->p[i + 1])) {
            if (form)
                out->p[out->n++] = ' ';
            out->p[out->n++] = c;
            out->p[out->n++] = ' ';
            out->p[out->n++] = in->p[i + 1];
            if (!form)
                out->p[out->n++] = ' ';
            i += 2;
        } else {
            out->p[out->n++] = c;
            i++;
        }
    }
    swap(x, y);
    return LLM_OK;
}

static int not_digit(uint32_t c) { return !digit(c); }
static int period_comma(uint32_t c) { return c == '.' || c == ','; }
static int dash(uint32_t c) { return c == '-'; }

/* s->cp tokenized into s->tok (offsets into s->x). */
static int tok13a(side *s)
{
    int rc;
    u32vec *x = &s->x, *y = &s->y;
    /* _preprocess_segment(): sent.rstrip() */
    size_t n = s->cp.n;
    while (n > 0 && is_space(s->cp.p[n - 1]))
        n--;
    if ((rc = vec_room(x, n, 1, 0)))
        return rc;
    if (n)
        memcpy(x->p, s->cp.p, n * sizeof *x->p);
    x->n = n;
    if ((rc = replace(x, y, "<skipped>", "")) || (rc = replace(x, y, "-\n", "")) ||
        (rc = replace(x, y, "\n", " ")))
        return rc;
    if (has(x, '&')) {
        static const char *const ent[4][2] = {
            { "&quot;", "\"" }, { "&amp;", "&" }, { "&lt;", "<" }, { "&gt;", ">" },
        };
        for (int e = 0; e < 4; e++)
            if ((rc = replace(x, y, ent[e][0], ent[e][1])))
                return rc;
    }
    /* f' {line} ', then ([\{-\~\[-\` -\&\(-\+\:-\@\/]) -> ' \1 ' */
    if ((rc = vec_room(y, x->n, 1, 2)))
        return rc;
    y->p[y->n++] = ' ';
    if (x->n)
        memcpy(y->p + 1, x->p, x->n * sizeof *x->p);
    y->n += x->n;
    y->p[y->n++] = ' ';
    swap(x, y);
    if ((rc = vec_room(y, x->n, 3, 0)))
        return rc;
    for (size_t i = 0; i < x->n; i++) {
        uint32_t c = x->p[i];
        if (punct13a(c)) {
            y->p[y->n++] = ' ';
            y->p[y->n++] = c;
            y->p[y->n++] = ' ';
        } else {
            y->p[y->n++] = c;
        }
    }
    swap(x, y);
    /* ([^0-9])([\.,]) -> '\1 \2 '; ([\.,])([^0-9]) -> ' \1 \2';
     * ([0-9])(-) -> '\1 \2 ' */
    if ((rc = pair_pass(x, y, not_digit, period_comma, 0)) ||
        (rc = pair_pass(x, y, period_comma, not_digit, 1)) ||
        (rc = pair_pass(x, y, digit, dash, 0)))
        return rc;
    return split(x->p, x->n, &s->tok);
}

/* Token ids of both sides' tokens (s[i].tok over `base(i)`), shared. */
static int intern(llm_text_metrics *m, const uint32_t *base0, const uint32_t *base1,
                  uint32_t *nsym)
{
    side *s = m->s;
    int rc = tab_clear(&m->t, s[0].tok.n + s[1].tok.n);
    if (rc)
        return rc;
    for (int k = 0; k < 2; k++) {
        const uint32_t *base = k ? base1 : base0;
        if ((rc = vec_room(&s[k].ids, s[k].tok.n, 1, 0)))
            return rc;
        for (size_t i = 0; i < s[k].tok.n; i++) {
            slot *e = tab_get(&m->t, base + s[k].tok.p[i].off, (uint32_t)s[k].tok.p[i].len, 1);
            if (e->b == 0) {
                e->a = m->t.n - 1;
                e->b = 1;
            }
            s[k].ids.p[s[k].ids.n++] = e->a;
        }
    }
    *nsym = m->t.n;
    return LLM_OK;
}

/* The clipped matches of the order-n grams: over the distinct grams of
 * h[0..nh), min(count in r[0..nr), count in h). */
static int ngram_matches(table *t, const uint32_t *r, size_t nr, const uint32_t *h, size_t nh,
                         uint32_t n, uint64_t *match)
{
    *match = 0;
    if (nr < n || nh < n)
        return LLM_OK;
    int rc = tab_clear(t, nr - n + 1);
    if (rc)
        return rc;
    for (size_t i = 0; i + n <= nr; i++)
        tab_get(t, r + i, n, 1)->a++;
    for (size_t i = 0; i + n <= nh; i++) {
        slot *e = tab_get(t, h + i, n, 0);
        if (e && e->b < e->a) {
            e->b++;
            (*match)++;
        }
    }
    return LLM_OK;
}

static int bleu_line(llm_text_metrics *m, line_stats *st)
{
    side *s = m->s;
    int rc;
    uint32_t nsym;
    if ((rc = tok13a(&s[0])) || (rc = tok13a(&s[1])) ||
        (rc = intern(m, s[0].x.p, s[1].x.p, &nsym)))
        return rc;
    size_t nr = s[0].ids.n, nh = s[1].ids.n;
    st->ref = nr;
    st->sys = nh;
    for (uint32_t n = 1; n <= BLEU_ORDER; n++) {
        if ((rc = ngram_matches(&m->t, s[0].ids.p, nr, s[1].ids.p, nh, n,
                                &st->correct[n - 1])))
            return rc;
        st->total[n - 1] = nh >= n ? nh - n + 1 : 0;
    }
    return LLM_OK;
}

/* ------------------------------------------------------------------------ */
/* chrF (sacrebleu/metrics/chrf.py): character n-grams without whitespace. */

static int chrf_line(llm_text_metrics *m, line_stats *st)
{
    side *s = m->s;
    int rc;
    for (int k = 0; k < 2; k++) {
        if ((rc = vec_room(&s[k].nows, s[k].cp.n, 1, 0)))
            return rc;
        for (size_t i = 0; i < s[k].cp.n; i++)
            if (!is_space(s[k].cp.p[i]))
                s[k].nows.p[s[k].nows.n++] = s[k].cp.p[i];
    }
    size_t nr = s[0].nows.n, nh = s[1].nows.n;
    for (uint32_t n = 1; n <= CHRF_ORDER; n++) {
        /* A hypothesis' n-grams count only where the reference has some. */
        st->cref[n - 1] = nr >= n ? nr - n + 1 : 0;
        st->chyp[n - 1] = nh >= n && nr >= n ? nh - n + 1 : 0;
        if ((rc = ngram_matches(&m->t, s[0].nows.p, nr, s[1].nows.p, nh, n,
                                &st->cmatch[n - 1])))
            return rc;
    }
    return LLM_OK;
}

/* ------------------------------------------------------------------------ */
/* SQuAD v1.1 (evaluate-v1.1.py): normalize_answer(), exact match, F1. */

static int ascii_punct(uint32_t c)   /* string.punctuation */
{
    return (c >= 0x21 && c <= 0x2F) || (c >= 0x3A && c <= 0x40) || (c >= 0x5B && c <= 0x60) ||
           (c >= 0x7B && c <= 0x7E);
}

static int word_char(uint32_t c)   /* re's \w on str */
{
    if (c < 0x80)
        return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
               c == '_';
    int cat = utf8proc_category((utf8proc_int32_t)c);
    return (cat >= UTF8PROC_CATEGORY_LU && cat <= UTF8PROC_CATEGORY_LO) ||
           (cat >= UTF8PROC_CATEGORY_ND && cat <= UTF8PROC_CATEGORY_NO);
}

static int is_article(const uint32_t *w, size_t n)
{
    static const char *const art[] = { "a", "an", "the" };
    for (int k = 0; k < 3; k++) {
        size_t len = strlen(art[k]), i = 0;
        if (len != n)
            continue;
        while (i < n && w[i] == (unsigned char)art[k][i])
            i++;
        if (i == n)
            return 1;
    }
    return 0;
}

/* lower -> remove_punc -> remove_articles (\b(a|an|the)\b -> ' ': a whole
 * run of word characters) -> split, into s->squad and s->tok. */
static int squad_tokens(side *s)
{
    u32vec *x = &s->x, *out = &s->squad;
    int rc = vec_room(x, s->low.n, 1, 0);
    if (rc || (rc = vec_room(out, s->low.n, 1, 0)))
        return rc;
    for (size_t i = 0; i < s->low.n; i++)
        if (!ascii_punct(s->low.p[i]))
            x->p[x->n++] = s->low.p[i];
    for (size_t i = 0; i < x->n;) {
        if (!word_char(x->p[i])) {
            out->p[out->n++] = x->p[i++];
            continue;
        }
        size_t j = i;
        while (j < x->n && word_char(x->p[j]))
            j++;
        if (is_article(x->p + i, j - i)) {
            out->p[out->n++] = ' ';
        } else {
            memcpy(out->p + out->n, x->p + i, (j - i) * sizeof *x->p);
            out->n += j - i;
        }
        i = j;
    }
    return split(out->p, out->n, &s->tok);
}

static int squad_line(llm_text_metrics *m, line_stats *st)
{
    side *s = m->s;
    int rc;
    if ((rc = squad_tokens(&s[0])) || (rc = squad_tokens(&s[1])))
        return rc;
    const spanvec *rt = &s[0].tok, *ht = &s[1].tok;
    const uint32_t *rb = s[0].squad.p, *hb = s[1].squad.p;
    size_t nr = rt->n, nh = ht->n;
    /* F1: tokens shared, as Counter(prediction) & Counter(ground truth) */
    uint64_t same = 0;
    if (nr && nh) {
        if ((rc = tab_clear(&m->t, nr)))
            return rc;
        for (size_t i = 0; i < nr; i++)
            tab_get(&m->t, rb + rt->p[i].off, (uint32_t)rt->p[i].len, 1)->a++;
        for (size_t i = 0; i < nh; i++) {
            slot *e = tab_get(&m->t, hb + ht->p[i].off, (uint32_t)ht->p[i].len, 0);
            if (e && e->b < e->a) {
                e->b++;
                same++;
            }
        }
    }
    if (same == 0) {
        st->f1 = 0;   /* also when both are empty (v1.1; v2.0 gives 1) */
    } else {
        double p = (double)same / (double)nh, r = (double)same / (double)nr;
        st->f1 = 2 * p * r / (p + r);
    }
    /* Exact match: equal normalised strings, i.e. equal token lists. */
    int equal = nr == nh;
    for (size_t i = 0; equal && i < nr; i++)
        equal = rt->p[i].len == ht->p[i].len &&
                memcmp(rb + rt->p[i].off, hb + ht->p[i].off, rt->p[i].len * sizeof *rb) == 0;
    st->em = equal;
    return LLM_OK;
}

/* ------------------------------------------------------------------------ */
/* ROUGE-L (rouge_score: tokenize.tokenize(), _score_lcs()). */

/* Tokens: the runs of [a-z0-9] of the lowered text. */
static int rouge_tokens(side *s)
{
    const u32vec *v = &s->low;
    s->tok.n = 0;
    for (size_t i = 0; i < v->n;) {
        while (i < v->n && !(digit(v->p[i]) || (v->p[i] >= 'a' && v->p[i] <= 'z')))
            i++;
        size_t j = i;
        while (j < v->n && (digit(v->p[j]) || (v->p[j] >= 'a' && v->p[j] <= 'z')))
            j++;
        if (j > i) {
            int rc = span_push(&s->tok, i, j - i);
            if (rc)
                return rc;
        }
        i = j;
    }
    return LLM_OK;
}

/* Length of the longest common subsequence of a[0..na) and b[0..nb),
 * symbols < nsym. Hyyrö's bit-parallel form: V starts all ones (one bit
 * per position of a); for each symbol of b with match mask M,
 * U = V & M, V = (V + U) | (V & ~M); the LCS is the count of zero bits.
 * The masks of symbols occurring W times or more in a (at most 64 of them)
 * are built once; a rarer symbol's mask is set and cleared per use. */
static int lcs_length(llm_text_metrics *m, const uint32_t *a, size_t na, const uint32_t *b,
                      size_t nb, uint32_t nsym, size_t *out)
{
    *out = 0;
    if (!na || !nb)
        return LLM_OK;
    size_t W = (na + 63) / 64, ndense = 0, syms = (size_t)nsym + 1;
    int rc;
    if ((rc = grow(&m->cnt, &m->cap_cnt, syms, sizeof *m->cnt)) ||
        (rc = grow(&m->start, &m->cap_start, syms, sizeof *m->start)) ||
        (rc = grow(&m->didx, &m->cap_didx, syms, sizeof *m->didx)) ||
        (rc = grow(&m->pos, &m->cap_pos, na, sizeof *m->pos)))
        return rc;
    memset(m->cnt, 0, syms * sizeof *m->cnt);
    for (size_t i = 0; i < na; i++)
        m->cnt[a[i]]++;
    m->start[0] = 0;
    for (uint32_t k = 0; k < nsym; k++)
        m->start[k + 1] = m->start[k] + m->cnt[k];
    for (size_t i = 0; i < na; i++)
        m->pos[m->start[a[i]] + --m->cnt[a[i]]] = (uint32_t)i;   /* cnt back to 0 */
    for (uint32_t k = 0; k < nsym; k++) {
        m->cnt[k] = m->start[k + 1] - m->start[k];
        m->didx[k] = m->cnt[k] >= W ? (int32_t)ndense++ : -1;
    }
    size_t words, dwords;
    if (llm_mul_size(W, 2, &words) || llm_mul_size(W, ndense ? ndense : 1, &dwords))
        return llm_fail(LLM_ERR_NOMEM, "out of memory (%zu tokens)", na);
    if ((rc = grow(&m->v, &m->cap_words, words, sizeof *m->v)) ||
        (rc = grow(&m->dense, &m->cap_dense, dwords, sizeof *m->dense)))
        return rc;
    uint64_t *V = m->v, *M = m->v + W;
    memset(V, 0xFF, W * sizeof *V);
    memset(M, 0, W * sizeof *M);
    if (ndense)
        memset(m->dense, 0, W * ndense * sizeof *m->dense);
    for (uint32_t k = 0; k < nsym; k++) {
        if (m->didx[k] < 0)
            continue;
        uint64_t *d = m->dense + (size_t)m->didx[k] * W;
        for (uint32_t i = m->start[k]; i < m->start[k + 1]; i++)
            d[m->pos[i] / 64] |= 1ull << (m->pos[i] % 64);
    }
    for (size_t j = 0; j < nb; j++) {
        uint32_t k = b[j];
        if (m->cnt[k] == 0)
            continue;   /* U = 0: V stays */
        const uint64_t *pm;
        if (m->didx[k] >= 0) {
            pm = m->dense + (size_t)m->didx[k] * W;
        } else {
            for (uint32_t i = m->start[k]; i < m->start[k + 1]; i++)
                M[m->pos[i] / 64] |= 1ull << (m->pos[i] % 64);
            pm = M;
        }
        uint64_t carry = 0;
        for (size_t w = 0; w < W; w++) {
            uint64_t v = V[w], u = v & pm[w];
            uint64_t t = v + u, c1 = t < v;
            uint64_t t2 = t + carry, c2 = t2 < t;
            carry = c1 | c2;
            V[w] = t2 | (v & ~pm[w]);
        }
        if (m->didx[k] < 0)
            for (uint32_t i = m->start[k]; i < m->start[k + 1]; i++)
                M[m->pos[i] / 64] = 0;
    }
    size_t zeros = 0;
    for (size_t w = 0; w < W; w++) {
        uint64_t v = V[w];
        if (w == W - 1 && na % 64)
            v |= ~0ull << (na % 64);   /* bits past the end are not positions */
        zeros += (size_t)(64 - __builtin_popcountll(v));
    }
    *out = zeros;
    return LLM_OK;
}

static int rouge_line(llm_text_metrics *m, line_stats *st)
{
    side *s = m->s;
    int rc;
    uint32_t nsym;
    size_t lcs;
    if ((rc = rouge_tokens(&s[0])) || (rc = rouge_tokens(&s[1])) ||
        (rc = intern(m, s[0].low.p, s[1].low.p, &nsym)))
        return rc;
    size_t nr = s[0].ids.n, nh = s[1].ids.n;
    st->rouge = 0;
    if (!nr || !nh)
        return LLM_OK;
    if ((rc = lcs_length(m, s[0].ids.p, nr, s[1].ids.p, nh, nsym, &lcs)))
        return rc;
    double p = (double)lcs / (double)nh, r = (double)lcs / (double)nr;
    st->rouge = p + r > 0 ? 2 * p * r / (p + r) : 0.0;
    return LLM_OK;
}

/* ------------------------------------------------------------------------ */
/* The accumulator. */

int llm_text_metrics_new(llm_text_metrics **out)
{
    *out = calloc(1, sizeof **out);
    return *out ? LLM_OK : llm_fail(LLM_ERR_NOMEM, "out of memory");
}

void llm_text_metrics_free(llm_text_metrics *m)
{
    if (!m)
        return;
    for (int k = 0; k < 2; k++) {
        side *s = &m->s[k];
        free(s->cp.p);
        free(s->low.p);
        free(s->x.p);
        free(s->y.p);
        free(s->squad.p);
        free(s->nows.p);
        free(s->tok.p);
        free(s->ids.p);
    }
    free(m->t.s);
    free(m->v);
    free(m->dense);
    free(m->cnt);
    free(m->start);
    free(m->pos);
    free(m->didx);
    free(m);
}

int llm_text_metrics_add(llm_text_metrics *m, const char *ref, size_t ref_len,
                         const char *hyp, size_t hyp_len)
{
    const char *text[2] = { ref, hyp };
    size_t len[2] = { ref_len, hyp_len };
    int rc;
    for (int k = 0; k < 2; k++) {
        size_t bad;
        if (!llm_utf8_check(text[k], len[k], &bad))
            return llm_fail(LLM_ERR_UTF8, "%s: invalid UTF-8 at byte %zu",
                            k ? "hypothesis" : "reference", bad + 1);
        /* Slices, counts and ids are 32-bit; this leaves a wide margin. */
        if (len[k] >= UINT32_MAX / 16)
            return llm_fail(LLM_ERR_RANGE, "%s of %zu bytes: too long to score",
                            k ? "hypothesis" : "reference", len[k]);
        if ((rc = vec_room(&m->s[k].cp, len[k], 1, 0)))
            return rc;
        decode(text[k], len[k], &m->s[k].cp);
        if ((rc = lower(&m->s[k].cp, &m->s[k].low)))
            return rc;
    }
    line_stats st = { 0 };
    if ((rc = bleu_line(m, &st)) || (rc = chrf_line(m, &st)) || (rc = squad_line(m, &st)) ||
        (rc = rouge_line(m, &st)))
        return rc;
    line_stats *t = &m->sum;
    t->sys += st.sys;
    t->ref += st.ref;
    for (int n = 0; n < BLEU_ORDER; n++) {
        t->correct[n] += st.correct[n];
        t->total[n] += st.total[n];
    }
    for (int n = 0; n < CHRF_ORDER; n++) {
        t->chyp[n] += st.chyp[n];
        t->cref[n] += st.cref[n];
        t->cmatch[n] += st.cmatch[n];
    }
    t->em += st.em;
    t->f1 += st.f1;
    t->rouge += st.rouge;
    m->lines++;
    return LLM_OK;
}

/* sacreBLEU's BLEU.compute_bleu() with smooth_method 'exp', effective
 * order off; my_log(0) is -9999999999. */
static void bleu_score(const line_stats *t, llm_text_metrics_result *r)
{
    r->bleu_sys_len = t->sys;
    r->bleu_ref_len = t->ref;
    r->bleu_bp = 1.0;
    if (t->sys < t->ref)
        r->bleu_bp = t->sys > 0 ? exp(1.0 - (double)t->ref / (double)t->sys) : 0.0;
    int any = 0;
    for (int n = 0; n < BLEU_ORDER; n++) {
        r->bleu_correct[n] = t->correct[n];
        r->bleu_total[n] = t->total[n];
        r->bleu_precisions[n] = 0.0;
        any |= t->correct[n] != 0;
    }
    r->bleu = 0.0;
    if (!any)
        return;
    double smooth = 1.0, logs = 0.0;
    for (int n = 0; n < BLEU_ORDER; n++) {
        if (t->total[n] == 0)
            break;
        if (t->correct[n] == 0) {
            smooth *= 2;
            r->bleu_precisions[n] = 100.0 / (smooth * (double)t->total[n]);
        } else {
            r->bleu_precisions[n] = 100.0 * (double)t->correct[n] / (double)t->total[n];
        }
    }
    for (int n = 0; n < BLEU_ORDER; n++)
        logs += r->bleu_precisions[n] == 0.0 ? -9999999999.0 : log(r->bleu_precisions[n]);
    r->bleu = r->bleu_bp * exp(logs / BLEU_ORDER);
}

/* sacreBLEU's CHRF._compute_f_score() with eps_smoothing False: precision
 * and recall averaged over the orders both sides have, then F-beta. */
static double chrf_score(const line_stats *t)
{
    double p = 0, r = 0, beta2 = CHRF_BETA * CHRF_BETA;
    int eff = 0;
    for (int n = 0; n < CHRF_ORDER; n++) {
        if (t->chyp[n] > 0 && t->cref[n] > 0) {
            p += (double)t->cmatch[n] / (double)t->chyp[n];
            r += (double)t->cmatch[n] / (double)t->cref[n];
            eff++;
        }
    }
    if (eff == 0)
        return 0.0;
    p /= eff;
    r /= eff;
    if (p + r == 0)
        return 0.0;
    return 100.0 * (1 + beta2) * p * r / (beta2 * p + r);
}

int llm_text_metrics_summary(const llm_text_metrics *m, llm_text_metrics_result *r)
{
    memset(r, 0, sizeof *r);
    if (m->lines == 0)
        return llm_fail(LLM_ERR_INVALID, "no lines");
    r->lines = m->lines;
    bleu_score(&m->sum, r);
    r->chrf = chrf_score(&m->sum);
    r->exact_match = 100.0 * m->sum.em / (double)m->lines;
    r->token_f1 = 100.0 * m->sum.f1 / (double)m->lines;
    r->rouge_l = 100.0 * m->sum.rouge / (double)m->lines;
    return LLM_OK;
}
