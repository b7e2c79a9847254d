/* test_textmetrics.c: the text metrics on cases worked out by hand (the
 * fractions are written out; sacreBLEU 2.6, rouge-score 0.1.2 and the SQuAD
 * v1.1 script give the same), corpus sums over lines, the longest common
 * subsequence of ROUGE-L against the textbook table on random token
 * sequences, a line of a megabyte, and the errors. tests/sh/text-metrics.sh
 * compares whole files with the Python implementations' figures. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "llm.h"

static int failures;
#define CHECK(c) do { if (!(c)) { fprintf(stderr, "%s:%d: check failed: %s\n", \
    __FILE__, __LINE__, #c); failures++; } } while (0)
#define NEAR(a, b, tol) do { double a_ = (a), b_ = (b); if (!(fabs(a_ - b_) <= (tol))) { \
    fprintf(stderr, "%s:%d: %s = %.17g, expected %.17g (tolerance %g)\n", __FILE__, \
    __LINE__, #a, a_, b_, (double)(tol)); failures++; } } while (0)

#define EXACT 1e-9   /* ratios of small integers, and their logarithms */

/* The figures of one line scored alone. */
static llm_text_metrics_result one(const char *ref, const char *hyp)
{
    llm_text_metrics *m;
    llm_text_metrics_result r;
    memset(&r, 0, sizeof r);
    CHECK(llm_text_metrics_new(&m) == LLM_OK);
    CHECK(llm_text_metrics_add(m, ref, strlen(ref), hyp, strlen(hyp)) == LLM_OK);
    CHECK(llm_text_metrics_summary(m, &r) == LLM_OK);
    llm_text_metrics_free(m);
    return r;
}

static void test_identical(void)
{
    llm_text_metrics_result r = one("The cat sat on the mat.", "The cat sat on the mat.");
    CHECK(r.lines == 1);
    NEAR(r.bleu, 100, EXACT);
    for (int n = 0; n < 4; n++)
        NEAR(r.bleu_precisions[n], 100, EXACT);
    NEAR(r.bleu_bp, 1, EXACT);
    CHECK(r.bleu_sys_len == 7 && r.bleu_ref_len == 7);   /* the period is a token */
    NEAR(r.chrf, 100, EXACT);
    NEAR(r.exact_match, 100, EXACT);
    NEAR(r.token_f1, 100, EXACT);
    NEAR(r.rouge_l, 100, EXACT);
}

static void test_empty(void)
{
    /* Nothing generated: every figure 0; BP 0 (no hypothesis tokens). */
    llm_text_metrics_result r = one("a b c d", "");
    NEAR(r.bleu, 0, 0);
    NEAR(r.bleu_bp, 0, 0);
    CHECK(r.bleu_sys_len == 0 && r.bleu_ref_len == 4);
    NEAR(r.chrf, 0, 0);
    NEAR(r.exact_match, 0, 0);
    NEAR(r.token_f1, 0, 0);
    NEAR(r.rouge_l, 0, 0);
    /* Both empty: the normalised texts are equal (exact match), but SQuAD
     * v1.1's F1 shares no token, so 0; BLEU has no match at all. */
    r = one("", "");
    NEAR(r.bleu, 0, 0);
    NEAR(r.bleu_bp, 1, 0);
    NEAR(r.chrf, 0, 0);
    NEAR(r.exact_match, 100, 0);
    NEAR(r.token_f1, 0, 0);
    NEAR(r.rouge_l, 0, 0);
}

static void test_bleu(void)
{
    /* a b c d e / a b c e d: 5/5 unigrams, 2/4 bigrams, 1/3 trigrams, no
     * 4-gram of 2: the first order without a match is smoothed to
     * 1 / (2 x 2). */
    llm_text_metrics_result r = one("a b c d e", "a b c e d");
    NEAR(r.bleu_precisions[0], 100, EXACT);
    NEAR(r.bleu_precisions[1], 50, EXACT);
    NEAR(r.bleu_precisions[2], 100.0 / 3, EXACT);
    NEAR(r.bleu_precisions[3], 25, EXACT);
    NEAR(r.bleu, pow(100 * 50 * (100.0 / 3) * 25, 0.25), EXACT);
    CHECK(r.bleu_correct[3] == 0 && r.bleu_total[3] == 2);
    /* chrF of abcde / abced: P = R = (1 + 2/4 + 1/3 + 0/2 + 0/1) / 5 */
    NEAR(r.chrf, 100 * (1 + 0.5 + 1.0 / 3) / 5, EXACT);
    NEAR(r.token_f1, 100, EXACT);   /* the same bag of words */
    NEAR(r.exact_match, 0, 0);
    NEAR(r.rouge_l, 80, EXACT);     /* LCS 4 of 5 */
    /* A hypothesis without 4-grams: that order's precision stays 0 and
     * sacreBLEU's log of 0 (-9999999999) makes BLEU 0. */
    r = one("a b c d", "a b c");
    NEAR(r.bleu, 0, 0);
    NEAR(r.bleu_precisions[2], 100, EXACT);
    NEAR(r.bleu_precisions[3], 0, 0);
    NEAR(r.bleu_bp, exp(1 - 4.0 / 3), EXACT);
    NEAR(r.token_f1, 80, EXACT);   /* a removed: b c d / b c: P 1, R 2/3 */
    NEAR(r.rouge_l, 100 * 2 * 3.0 / 7, EXACT);
    /* Clipping and the second smoothed order: b b c x / a b c d: 2/4, 1/3,
     * then 1/(2 x 2) and 1/(4 x 1). */
    r = one("a b c d", "b b c x");
    NEAR(r.bleu_precisions[0], 50, EXACT);
    NEAR(r.bleu_precisions[1], 100.0 / 3, EXACT);
    NEAR(r.bleu_precisions[2], 25, EXACT);
    NEAR(r.bleu_precisions[3], 25, EXACT);
    NEAR(r.bleu, pow(50 * (100.0 / 3) * 25 * 25, 0.25), EXACT);
    NEAR(r.chrf, 100 * (0.5 + 1.0 / 3) / 4, EXACT);
    NEAR(r.token_f1, 100 * 4.0 / 7, EXACT);   /* 2 shared: P 2/4, R 2/3 */
    NEAR(r.rouge_l, 50, EXACT);                /* LCS b c */
}

static void test_13a(void)
{
    /* 13a splits punctuation off, keeps 3.50 and 1,000.5 whole, and parts
     * a dash after a digit: the detokenised and the tokenised text agree. */
    llm_text_metrics_result r = one("Hello, world! It costs $3.50 (approx.).",
                                    "Hello , world ! It costs $ 3.50 ( approx . ) .");
    NEAR(r.bleu, 100, EXACT);
    CHECK(r.bleu_sys_len == 13 && r.bleu_ref_len == 13);
    r = one("1,000.5 x-1 2-3 a.b,c", "1,000.5 x-1 2 - 3 a . b , c");
    NEAR(r.bleu, 100, EXACT);
    CHECK(r.bleu_sys_len == 10);
    /* Entities are decoded, <skipped> and a dash before a newline go. */
    r = one("\"A&B\" <x>", "&quot;A&amp;B&quot; <skipped>&lt;x&gt;");
    NEAR(r.bleu, 100, EXACT);
    r = one("le milieu du jour", "le mi-\nlieu du jour");
    NEAR(r.bleu, 100, EXACT);
    /* Non-ASCII punctuation stays in its word. */
    r = one("«oui»", "« oui »");
    CHECK(r.bleu_ref_len == 1 && r.bleu_sys_len == 3);
    NEAR(r.bleu, 0, 0);
}

static void test_unicode(void)
{
    /* chrF counts code points: 日本語 / 日本 has 2/2 and 1/1 matched, the
     * reference 3 and 2 grams: P = 1, R = (2/3 + 1/2) / 2, F = 5PR/(4P+R). */
    llm_text_metrics_result r = one("日本語", "日本");
    double p = 1, rc = (2.0 / 3 + 0.5) / 2;
    NEAR(r.chrf, 100 * 5 * p * rc / (4 * p + rc), EXACT);
    CHECK(r.bleu_sys_len == 1 && r.bleu_ref_len == 1);
    /* Whitespace is Python's: no-break and ideographic spaces separate. */
    r = one("a b", "a\xc2\xa0" "b");
    NEAR(r.bleu_precisions[0], 100, EXACT);
    CHECK(r.bleu_sys_len == 2);
    r = one("中 文", "中\xe3\x80\x80文");
    NEAR(r.chrf, 100, EXACT);
    /* Lower case is str.lower(): a final capital sigma becomes a final
     * sigma; the Kelvin sign and dotted I lower to ASCII k and i. */
    r = one("οδος", "ΟΔΟΣ");
    NEAR(r.exact_match, 100, 0);
    r = one("οδοσ", "ΟΔΟΣ");
    NEAR(r.exact_match, 0, 0);
    r = one("k i", "\xe2\x84\xaa \xc4\xb0");
    NEAR(r.rouge_l, 100, EXACT);   /* U+0307 after the i is not [a-z0-9] */
    NEAR(r.exact_match, 0, 0);     /* but it is part of the SQuAD token */
    /* SQuAD: case, ASCII punctuation and articles go. */
    r = one("The Eiffel Tower!", "eiffel tower");
    NEAR(r.exact_match, 100, 0);
    NEAR(r.token_f1, 100, EXACT);
    NEAR(r.rouge_l, 80, EXACT);    /* the is a rouge token */
    /* \b of Python's re: a combining accent is not a word character, so
     * "the" before one is an article; before a letter it is not. */
    r = one("x", "the\xcc\x81 x");
    NEAR(r.token_f1, 100 * 2 * 0.5 / 1.5, EXACT);   /* tokens: U+0301, x */
    r = one("x", "thé x");
    NEAR(r.token_f1, 100 * 2 * 0.5 / 1.5, EXACT);   /* tokens: thé, x */
    r = one("x", "the x");
    NEAR(r.token_f1, 100, EXACT);                   /* tokens: x */
}

static void test_corpus(void)
{
    /* Counts are summed over lines before BLEU and chrF; the others are
     * means of the lines' figures. */
    llm_text_metrics *m;
    llm_text_metrics_result r;
    CHECK(llm_text_metrics_new(&m) == LLM_OK);
    CHECK(llm_text_metrics_summary(m, &r) == LLM_ERR_INVALID);   /* no lines */
    const char *lines[3][2] = {
        { "a b c d e", "a b c e d" }, { "a b c d", "b b c x" }, { "a b c d", "" },
    };
    for (int i = 0; i < 3; i++)
        CHECK(llm_text_metrics_add(m, lines[i][0], strlen(lines[i][0]), lines[i][1],
                                   strlen(lines[i][1])) == LLM_OK);
    /* Invalid UTF-8 is refused and counts nothing. */
    CHECK(llm_text_metrics_add(m, "a\xff", 2, "a", 1) == LLM_ERR_UTF8);
    CHECK(llm_text_metrics_add(m, "a", 1, "\xc3", 1) == LLM_ERR_UTF8);
    CHECK(llm_text_metrics_summary(m, &r) == LLM_OK);
    CHECK(r.lines == 3);
    CHECK(r.bleu_sys_len == 9 && r.bleu_ref_len == 13);
    /* 1-grams 7/9, 2-grams 3/7, 3-grams 1/5, 4-grams 0/3 -> 1/(2 x 3) */
    CHECK(r.bleu_correct[0] == 7 && r.bleu_total[0] == 9);
    CHECK(r.bleu_correct[1] == 3 && r.bleu_total[1] == 7);
    CHECK(r.bleu_correct[2] == 1 && r.bleu_total[2] == 5);
    CHECK(r.bleu_correct[3] == 0 && r.bleu_total[3] == 3);
    double bp = exp(1 - 13.0 / 9);
    NEAR(r.bleu_bp, bp, EXACT);
    NEAR(r.bleu, bp * pow(100 * 7.0 / 9 * 100 * 3.0 / 7 * 100 * 1.0 / 5 * 100.0 / 6, 0.25),
         EXACT);
    NEAR(r.exact_match, 0, 0);
    NEAR(r.token_f1, (100 + 100 * 4.0 / 7 + 0) / 3, EXACT);
    NEAR(r.rouge_l, (80 + 50 + 0) / 3.0, EXACT);
    /* chrF, orders 1..6 summed: hyp 9 7 5 3 1 0, ref 13 10 7 4 1 0,
     * matches 7 3 1 0 0 0 (the empty hypothesis counts no n-grams, but its
     * reference's do); orders 1-5 have both sides. */
    double P = (7.0 / 9 + 3.0 / 7 + 1.0 / 5 + 0 + 0) / 5;
    double R = (7.0 / 13 + 3.0 / 10 + 1.0 / 7 + 0 + 0) / 5;
    NEAR(r.chrf, 100 * 5 * P * R / (4 * P + R), EXACT);
    llm_text_metrics_free(m);
    llm_text_metrics_free(NULL);
}

/* The textbook LCS table, for reference. */
static size_t lcs_table(const int *a, size_t na, const int *b, size_t nb)
{
    size_t *row = calloc(nb + 1, sizeof *row);
    for (size_t i = 1; i <= na; i++) {
        size_t diag = 0;
        for (size_t j = 1; j <= nb; j++) {
            size_t up = row[j];
            row[j] = a[i - 1] == b[j - 1] ? diag + 1 : up > row[j - 1] ? up : row[j - 1];
            diag = up;
        }
    }
    size_t r = row[nb];
    free(row);
    return r;
}

static void words(const int *w, size_t n, char *out, size_t cap)
{
    size_t k = 0;
    out[0] = '\0';
    for (size_t i = 0; i < n && k < cap; i++)
        k += (size_t)snprintf(out + k, cap - k, "%sw%d", i ? " " : "", w[i]);
}

static void test_lcs(void)
{
    /* Random sequences over 3 to 2000 words (so that some words fill a
     * mask of their own), 1 to 700 long (masks of many words). */
    uint64_t s = 12345;
    enum { MAXN = 700 };
    static int a[MAXN], b[MAXN];
    static char ta[MAXN * 8], tb[MAXN * 8];
    for (int trial = 0; trial < 60; trial++) {
        s = s * 6364136223846793005ull + 1442695040888963407ull;
        size_t na = 1 + (s >> 33) % MAXN, nb = 1 + (s >> 13) % MAXN;
        int vocab = trial % 3 == 0 ? 3 : trial % 3 == 1 ? 40 : 2000;
        for (size_t i = 0; i < na; i++) {
            s = s * 6364136223846793005ull + 1442695040888963407ull;
            a[i] = (int)((s >> 33) % (uint64_t)vocab);
        }
        for (size_t i = 0; i < nb; i++) {
            s = s * 6364136223846793005ull + 1442695040888963407ull;
            b[i] = (int)((s >> 33) % (uint64_t)vocab);
        }
        words(a, na, ta, sizeof ta);
        words(b, nb, tb, sizeof tb);
        size_t l = lcs_table(a, na, b, nb);
        llm_text_metrics_result r = one(ta, tb);
        double p = (double)l / (double)nb, rc = (double)l / (double)na;
        NEAR(r.rouge_l, p + rc > 0 ? 100 * 2 * p * rc / (p + rc) : 0, EXACT);
    }
}

static void test_long_line(void)
{
    /* A line of half a megabyte (110,000 words): every figure of a text against
     * itself is 100; a word in a hundred changed costs a little. */
    size_t n = 1 << 19;
    char *t = malloc(n + 16), *u = malloc(n + 16);
    size_t k = 0;
    int i = 0;
    while (k < n) {
        k += (size_t)snprintf(t + k, n + 16 - k, "%s%d", k ? " " : "", i % 5000);
        i++;
    }
    llm_text_metrics_result r = one(t, t);
    NEAR(r.bleu, 100, EXACT);
    NEAR(r.chrf, 100, EXACT);
    NEAR(r.exact_match, 100, 0);
    NEAR(r.token_f1, 100, EXACT);
    NEAR(r.rouge_l, 100, EXACT);
    CHECK(r.bleu_sys_len == (uint64_t)i);
    /* About one word in a hundred changed. */
    memcpy(u, t, k + 1);
    for (size_t j = 0; j < k; j += 600)
        if (u[j] >= '0' && u[j] <= '9')
            u[j] = 'x';
    r = one(t, u);
    CHECK(r.rouge_l > 90 && r.rouge_l < 100);
    CHECK(r.bleu > 50 && r.bleu < 100);
    free(t);
    free(u);
}

int main(void)
{
    test_identical();
    test_empty();
    test_bleu();
    test_13a();
    test_unicode();
    test_corpus();
    test_lcs();
    test_long_line();
    if (failures) {
        fprintf(stderr, "test_textmetrics: %d checks failed\n", failures);
        return 1;
    }
    printf("test_textmetrics: all checks passed\n");
    return 0;
}
