/* test_metrics.c: classification metrics against confusion matrices and
 * per-label counts worked out by hand (the fractions are written out below),
 * report order, multi-label decisions, and expected calibration error of a
 * perfectly calibrated case (~0) and an overconfident one (a hand value). */
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

#define EXACT 1e-12   /* the figures are ratios of small integers */

/* One single-label record. */
static int add1(llm_metrics *m, const char *g, const char *p, double prob)
{
    size_t gl = strlen(g), pl = strlen(p);
    return llm_metrics_add(m, &g, &gl, 1, &p, &pl, 1, prob);
}

/* One multi-label record from comma-separated sets ("" = empty). */
static int addm(llm_metrics *m, const char *g, const char *p)
{
    const char *s[2][8];
    size_t n[2][8], k[2] = { 0, 0 };
    char buf[2][64];
    for (int side = 0; side < 2; side++) {
        snprintf(buf[side], sizeof buf[side], "%s", side ? p : g);
        for (char *t = buf[side]; *t;) {
            char *e = strchr(t, ',');
            if (e)
                *e = '\0';
            s[side][k[side]] = t;
            n[side][k[side]++] = strlen(t);
            if (!e)
                break;
            t = e + 1;
        }
    }
    return llm_metrics_add(m, s[0], n[0], k[0], s[1], n[1], k[1], -1);
}

static void check_label(const llm_metrics *m, size_t i, const char *name, uint64_t support,
                        uint64_t predicted, uint64_t tp, double p, double r, double f1)
{
    llm_label_stats s;
    CHECK(llm_metrics_label_at(m, i, &s) == LLM_OK);
    CHECK(s.name && strcmp(s.name, name) == 0 && s.len == strlen(name));
    CHECK(s.support == support && s.predicted == predicted && s.tp == tp);
    NEAR(s.precision, p, EXACT);
    NEAR(s.recall, r, EXACT);
    NEAR(s.f1, f1, EXACT);
}

/* Three classes. Confusion matrix, rows gold, columns predicted:
 *
 *            a  b  c   support
 *       a    3  1  0   4
 *       b    1  2  2   5
 *       c    0  1  1   2
 *   predicted 4  4  3   11 records, 6 on the diagonal
 *
 *   a: P = 3/4, R = 3/4, F1 = 3/4
 *   b: P = 2/4, R = 2/5, F1 = 2*2/(5+4) = 4/9
 *   c: P = 1/3, R = 1/2, F1 = 2*1/(2+3) = 2/5
 *   accuracy = micro-P = micro-R = micro-F1 = 6/11
 *   macro-P = (3/4 + 1/2 + 1/3)/3 = 19/36
 *   macro-R = (3/4 + 2/5 + 1/2)/3 = 11/20
 *   macro-F1 = (3/4 + 4/9 + 2/5)/3 = (135 + 80 + 72)/180/3 = 287/540
 *
 * Records are given so that gold labels first appear as b, a, c (c is
 * predicted before it is first seen as gold): the report order is b, a, c. */
static void test_three_classes(void)
{
    llm_metrics *m;
    CHECK(llm_metrics_new(0, &m) == LLM_OK);
    static const char *const recs[11][2] = {
        {"b", "c"}, {"a", "a"}, {"c", "b"}, {"a", "a"}, {"a", "b"}, {"a", "a"},
        {"b", "a"}, {"b", "b"}, {"b", "b"}, {"b", "c"}, {"c", "c"},
    };
    for (int i = 0; i < 11; i++)
        CHECK(add1(m, recs[i][0], recs[i][1], -1) == LLM_OK);
    llm_metrics_result r;
    CHECK(llm_metrics_summary(m, &r) == LLM_OK);
    CHECK(r.records == 11 && r.labels == 3 && !r.multi_label && !r.has_prob);
    CHECK(isnan(r.ece));
    NEAR(r.accuracy, 6.0 / 11, EXACT);
    NEAR(r.micro_precision, 6.0 / 11, EXACT);
    NEAR(r.micro_recall, 6.0 / 11, EXACT);
    NEAR(r.micro_f1, 6.0 / 11, EXACT);
    NEAR(r.macro_precision, 19.0 / 36, EXACT);
    NEAR(r.macro_recall, 11.0 / 20, EXACT);
    NEAR(r.macro_f1, 287.0 / 540, EXACT);
    check_label(m, 0, "b", 5, 4, 2, 2.0 / 4, 2.0 / 5, 4.0 / 9);
    check_label(m, 1, "a", 4, 4, 3, 3.0 / 4, 3.0 / 4, 3.0 / 4);
    check_label(m, 2, "c", 2, 3, 1, 1.0 / 3, 1.0 / 2, 2.0 / 5);
    /* The matrix in report order (b, a, c). */
    static const uint64_t want[3][3] = { {2, 1, 2}, {1, 3, 0}, {1, 0, 1} };
    for (size_t g = 0; g < 3; g++)
        for (size_t p = 0; p < 3; p++)
            CHECK(llm_metrics_confusion(m, g, p) == want[g][p]);
    CHECK(llm_metrics_confusion(m, 3, 0) == 0);
    llm_label_stats s;
    CHECK(llm_metrics_label_at(m, 3, &s) == LLM_ERR_RANGE);
    llm_metrics_free(m);
}

/* A label only ever predicted: a row of zeros, support 0, F1 0, and it
 * counts in the macro average (as scikit-learn's labels = gold | predicted).
 *   x -> x, x -> z, y -> y, y -> x
 *   x: P = 1/2, R = 1/2, F1 = 1/2;  y: P = 1, R = 1/2, F1 = 2/3;  z: 0, 0, 0
 *   macro-F1 = (1/2 + 2/3 + 0)/3 = 7/18; accuracy 2/4.
 * With z and y declared first, the order is z, y, x. */
static void test_predicted_only(void)
{
    for (int declared = 0; declared < 2; declared++) {
        llm_metrics *m;
        CHECK(llm_metrics_new(0, &m) == LLM_OK);
        if (declared) {
            CHECK(llm_metrics_declare(m, "z", 1) == LLM_OK);
            CHECK(llm_metrics_declare(m, "y", 1) == LLM_OK);
        }
        CHECK(add1(m, "x", "x", -1) == LLM_OK);
        CHECK(add1(m, "x", "z", -1) == LLM_OK);
        CHECK(add1(m, "y", "y", -1) == LLM_OK);
        CHECK(add1(m, "y", "x", -1) == LLM_OK);
        llm_metrics_result r;
        CHECK(llm_metrics_summary(m, &r) == LLM_OK);
        CHECK(r.labels == 3);
        NEAR(r.accuracy, 0.5, EXACT);
        NEAR(r.macro_f1, 7.0 / 18, EXACT);
        size_t ix = declared ? 2 : 0, iy = 1, iz = declared ? 0 : 2;
        check_label(m, ix, "x", 2, 2, 1, 0.5, 0.5, 0.5);
        check_label(m, iy, "y", 2, 1, 1, 1.0, 0.5, 2.0 / 3);
        check_label(m, iz, "z", 0, 1, 0, 0, 0, 0);
        CHECK(llm_metrics_confusion(m, ix, iz) == 1);
        CHECK(llm_metrics_confusion(m, iy, ix) == 1);
        CHECK(llm_metrics_confusion(m, iz, ix) == 0);
        llm_metrics_free(m);
    }
}

/* Multi-label, labels a, b, c:
 *   gold {a,b}  pred {a}     a TP, b FN
 *   gold {b}    pred {b,c}   b TP, c FP
 *   gold {a,c}  pred {a,c}   a TP, c TP        (exact)
 *   gold {}     pred {b}     b FP
 *   gold {c}    pred {c,c}   c TP (once)       (exact)
 *   a: tp 2, support 2, predicted 2: P 1, R 1, F1 1
 *   b: tp 1, support 2, predicted 2: P 1/2, R 1/2, F1 1/2
 *   c: tp 2, support 2, predicted 3: P 2/3, R 1, F1 4/5
 *   macro-F1 = (1 + 1/2 + 4/5)/3 = 23/30; macro-P = (1 + 1/2 + 2/3)/3 = 13/18
 *   micro: TP 5, predicted 7, gold 6: P 5/7, R 5/6, F1 10/13
 *   exact match 2/5; decisions 6 + 7 - 5 = 8. */
static void test_multi_label(void)
{
    llm_metrics *m;
    CHECK(llm_metrics_new(1, &m) == LLM_OK);
    CHECK(addm(m, "a,b", "a") == LLM_OK);
    CHECK(addm(m, "b", "b,c") == LLM_OK);
    CHECK(addm(m, "a,c", "a,c") == LLM_OK);
    CHECK(addm(m, "", "b") == LLM_OK);
    CHECK(addm(m, "c", "c,c") == LLM_OK);
    llm_metrics_result r;
    CHECK(llm_metrics_summary(m, &r) == LLM_OK);
    CHECK(r.multi_label && r.records == 5 && r.labels == 3 && r.decisions == 8);
    NEAR(r.accuracy, 2.0 / 5, EXACT);
    NEAR(r.macro_f1, 23.0 / 30, EXACT);
    NEAR(r.macro_precision, 13.0 / 18, EXACT);
    NEAR(r.macro_recall, 5.0 / 6, EXACT);
    NEAR(r.micro_precision, 5.0 / 7, EXACT);
    NEAR(r.micro_recall, 5.0 / 6, EXACT);
    NEAR(r.micro_f1, 10.0 / 13, EXACT);
    check_label(m, 0, "a", 2, 2, 2, 1, 1, 1);
    check_label(m, 1, "b", 2, 2, 1, 0.5, 0.5, 0.5);
    check_label(m, 2, "c", 2, 3, 2, 2.0 / 3, 1, 0.8);
    CHECK(llm_metrics_confusion(m, 0, 0) == 0);   /* no matrix for sets */
    llm_metrics_free(m);
}

/* ECE over 10 bins of the top-label confidence. */
static void test_ece(void)
{
    llm_metrics_result r;
    llm_metrics *m;

    /* Perfectly calibrated by construction: 20 records at 0.15 with 3 right,
     * 20 at 0.55 with 11 right, 20 at 0.95 with 19 right: ECE = 0 up to
     * rounding of the sums (tolerance 1e-12). */
    CHECK(llm_metrics_new(0, &m) == LLM_OK);
    static const double conf[3] = { 0.15, 0.55, 0.95 };
    static const int right[3] = { 3, 11, 19 };
    for (int b = 0; b < 3; b++)
        for (int i = 0; i < 20; i++)
            CHECK(add1(m, "y", i < right[b] ? "y" : "n", conf[b]) == LLM_OK);
    CHECK(llm_metrics_summary(m, &r) == LLM_OK);
    CHECK(r.has_prob);
    NEAR(r.ece, 0.0, 1e-12);
    uint64_t cnt;
    double c, a;
    CHECK(llm_metrics_ece_bin(m, 5, &cnt, &c, &a) == LLM_OK);
    CHECK(cnt == 20);
    NEAR(c, 0.55, 1e-12);
    NEAR(a, 0.55, 1e-12);
    CHECK(llm_metrics_ece_bin(m, 10, &cnt, &c, &a) == LLM_ERR_RANGE);
    llm_metrics_free(m);

    /* Calibrated in expectation: p uniform in [0, 1], right with probability
     * p, 200000 records (seeded). Per bin the sampling error is about
     * sqrt(0.25 / 20000) = 0.0035; we allow ECE < 0.01. */
    CHECK(llm_metrics_new(0, &m) == LLM_OK);
    llm_rng rng;
    llm_rng_seed(&rng, 42);
    for (int i = 0; i < 200000; i++) {
        double p = llm_rng_uniform(&rng);
        CHECK(add1(m, "y", llm_rng_uniform(&rng) < p ? "y" : "n", p) == LLM_OK);
    }
    CHECK(llm_metrics_summary(m, &r) == LLM_OK);
    CHECK(r.ece >= 0 && r.ece < 0.01);
    llm_metrics_free(m);

    /* Overconfident: 10 records at 0.95 with 5 right (|0.5 - 0.95| = 0.45),
     * 10 at 0.75 with 6 right (|0.6 - 0.75| = 0.15):
     * ECE = 10/20 * 0.45 + 10/20 * 0.15 = 0.30. */
    CHECK(llm_metrics_new(0, &m) == LLM_OK);
    for (int i = 0; i < 10; i++)
        CHECK(add1(m, "y", i < 5 ? "y" : "n", 0.95) == LLM_OK);
    for (int i = 0; i < 10; i++)
        CHECK(add1(m, "y", i < 6 ? "y" : "n", 0.75) == LLM_OK);
    CHECK(llm_metrics_summary(m, &r) == LLM_OK);
    NEAR(r.ece, 0.30, 1e-12);
    llm_metrics_free(m);

    /* Bin edges: 0 in the first bin, 1.0 in the last, 0.5 in bin 5.
     * 0.0 right (gap 1), 1.0 right (gap 0), 0.5 wrong (gap 0.5):
     * ECE = (1 + 0 + 0.5)/3 = 0.5. */
    CHECK(llm_metrics_new(0, &m) == LLM_OK);
    CHECK(add1(m, "y", "y", 0.0) == LLM_OK);
    CHECK(add1(m, "y", "y", 1.0) == LLM_OK);
    CHECK(add1(m, "y", "n", 0.5) == LLM_OK);
    CHECK(llm_metrics_summary(m, &r) == LLM_OK);
    NEAR(r.ece, 0.5, 1e-12);
    CHECK(llm_metrics_ece_bin(m, 0, &cnt, &c, &a) == LLM_OK && cnt == 1);
    CHECK(llm_metrics_ece_bin(m, 9, &cnt, &c, &a) == LLM_OK && cnt == 1);
    CHECK(llm_metrics_ece_bin(m, 5, &cnt, &c, &a) == LLM_OK && cnt == 1);
    llm_metrics_free(m);
}

static void test_errors(void)
{
    llm_metrics *m;
    llm_metrics_result r;
    CHECK(llm_metrics_new(0, &m) == LLM_OK);
    CHECK(llm_metrics_summary(m, &r) == LLM_ERR_INVALID);
    CHECK(strcmp(llm_errmsg(), "no records") == 0);
    CHECK(add1(m, "a", "b", 1.5) == LLM_ERR_RANGE);
    CHECK(add1(m, "a", "b", NAN) == LLM_ERR_RANGE);
    CHECK(add1(m, "a", "b", 0.5) == LLM_OK);
    CHECK(add1(m, "a", "b", -1) == LLM_ERR_INVALID);   /* earlier records had one */
    const char *g[2] = { "a", "b" };
    size_t gl[2] = { 1, 1 };
    CHECK(llm_metrics_add(m, g, gl, 2, g, gl, 1, 0.5) == LLM_ERR_INVALID);
    CHECK(llm_metrics_summary(m, &r) == LLM_OK);
    CHECK(r.records == 1);   /* failed records are not counted */
    /* Labels are bytes: "a" and "a\0b" differ; NUL inside is kept. */
    const char *x = "a\0b";
    size_t xl = 3;
    const char *y = "a";
    size_t yl = 1;
    CHECK(llm_metrics_add(m, &x, &xl, 1, &y, &yl, 1, 0.5) == LLM_OK);
    CHECK(llm_metrics_summary(m, &r) == LLM_OK);
    CHECK(r.labels == 3 && r.records == 2);
    llm_metrics_free(m);
    llm_metrics_free(NULL);

    /* Many labels: the interning table and the sparse matrix grow. */
    CHECK(llm_metrics_new(0, &m) == LLM_OK);
    for (int i = 0; i < 5000; i++) {
        char a[16], b[16];
        snprintf(a, sizeof a, "L%d", i);
        snprintf(b, sizeof b, "L%d", (i * 7) % 5000);
        CHECK(add1(m, a, b, -1) == LLM_OK);
    }
    CHECK(llm_metrics_summary(m, &r) == LLM_OK);
    CHECK(r.labels == 5000);
    CHECK(llm_metrics_confusion(m, 3, 21) == 1);   /* L3 -> L21 */
    CHECK(llm_metrics_confusion(m, 3, 3) == 0);
    NEAR(r.accuracy, 2.0 / 5000, EXACT);   /* 7i = i (mod 5000): i = 0, 2500 */
    llm_metrics_free(m);
}

int main(void)
{
    test_three_classes();
    test_predicted_only();
    test_multi_label();
    test_ece();
    test_errors();
    if (failures) {
        fprintf(stderr, "test_metrics: %d checks failed\n", failures);
        return 1;
    }
    printf("test_metrics: all checks passed\n");
    return 0;
}
