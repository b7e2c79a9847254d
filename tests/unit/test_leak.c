/* test_leak.c: the leakage search (lib/eval/leak.c) against independent
 * references: folding against hand-written expected texts; the shingle
 * Jaccard against hand-counted sets; the MinHash/LSH search against a
 * brute-force search over every (test, training) pair, with shingle sets
 * built here by a naive method, on planted exact and near duplicates
 * (case, punctuation, spacing, one or two words changed) among unrelated
 * lines, and clusters of training lines one or two words apart: recall and
 * precision >= 0.99, every reported similarity equal to the brute-force
 * one, and the reported match the brute-force best (the highest
 * similarity, then the earliest training line) wherever the search found
 * that line; token n-gram overlap against a brute-force count. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "llm.h"

static int failures;

#define FAIL(...) do { failures++; printf("FAIL "); printf(__VA_ARGS__); printf("\n"); } while (0)
#define CHECK_RC(call) do { int rc_ = (call); if (rc_ != LLM_OK) { \
    printf("FAIL %s:%d: %s: %s\n", __FILE__, __LINE__, #call, llm_errmsg()); exit(1); } } while (0)

static void check_fold(const char *in, const char *want)
{
    llm_buf b = {0};
    CHECK_RC(llm_leak_fold(in, strlen(in), &b));
    if (b.len != strlen(want) || (b.len && memcmp(b.data, want, b.len) != 0))
        FAIL("fold('%s') = '%.*s', want '%s'", in, (int)b.len, b.data ? b.data : "", want);
    llm_buf_free(&b);
}

static void check_jaccard(const char *a, const char *b, double want)
{
    double j;
    CHECK_RC(llm_leak_jaccard(a, strlen(a), b, strlen(b), &j));
    if (fabs(j - want) > 1e-12)
        FAIL("jaccard('%s', '%s') = %.6f, want %.6f", a, b, j, want);
}

/* ------------------------------------------------------------------------ */
/* The brute-force reference: shingles as strings of 5 UTF-8 characters
 * (the whole text below 5), sorted with strcmp, duplicates dropped. */

typedef struct {
    char **s;
    int n;
} shingles;

static int cmp_str(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

static int utf8_len(unsigned char c)
{
    return c < 0x80 ? 1 : c < 0xE0 ? 2 : c < 0xF0 ? 3 : 4;
}

static shingles naive_shingles(const char *text)
{
    llm_buf f = {0};
    CHECK_RC(llm_leak_fold(text, strlen(text), &f));
    int starts[4096], nc = 0;
    for (size_t i = 0; i < f.len && nc < 4095; i += (size_t)utf8_len((unsigned char)f.data[i]))
        starts[nc++] = (int)i;
    starts[nc] = (int)f.len;
    shingles r = { calloc((size_t)nc + 1, sizeof(char *)), 0 };
    int w = nc < 5 ? nc : 5;
    for (int i = 0; nc && i + w <= nc; i++) {
        int len = starts[i + w] - starts[i];
        char *s = malloc((size_t)len + 1);
        memcpy(s, f.data + starts[i], (size_t)len);
        s[len] = 0;
        r.s[r.n++] = s;
    }
    qsort(r.s, (size_t)r.n, sizeof *r.s, cmp_str);
    int k = 0;
    for (int i = 0; i < r.n; i++)
        if (k && strcmp(r.s[k - 1], r.s[i]) == 0)
            free(r.s[i]);
        else
            r.s[k++] = r.s[i];
    r.n = k;
    llm_buf_free(&f);
    return r;
}

static double naive_jaccard(const shingles *a, const shingles *b)
{
    int both = 0;
    for (int i = 0, j = 0; i < a->n && j < b->n;) {
        int c = strcmp(a->s[i], b->s[j]);
        both += c == 0;
        i += c <= 0;
        j += c >= 0;
    }
    int uni = a->n + b->n - both;
    return uni ? (double)both / uni : 0.0;
}

/* ------------------------------------------------------------------------ */
/* Planted duplicates among lines of random words. */

#define N_WORDS 3000
static char words[N_WORDS][12];

static void make_words(llm_rng *r)
{
    for (int i = 0; i < N_WORDS; i++) {
        int n = 3 + (int)llm_rng_below(r, 7);
        for (int k = 0; k < n; k++)
            words[i][k] = (char)('a' + llm_rng_below(r, 26));
        words[i][n] = 0;
    }
}

static char *random_line(llm_rng *r, int nw)
{
    char *s = malloc((size_t)nw * 12 + 1);
    s[0] = 0;
    for (int i = 0; i < nw; i++) {
        if (i)
            strcat(s, " ");
        strcat(s, words[llm_rng_below(r, N_WORDS)]);
    }
    return s;
}

/* A copy of s with case, punctuation and spacing changed (folds equal), and
 * `edits` words replaced by random ones. */
static char *variant(llm_rng *r, const char *s, int edits)
{
    char *w[64];
    int n = 0;
    char *copy = strdup(s);
    for (char *t = strtok(copy, " "); t && n < 64; t = strtok(NULL, " "))
        w[n++] = t;
    for (int e = 0; e < edits; e++)
        w[llm_rng_below(r, (uint64_t)n)] = words[llm_rng_below(r, N_WORDS)];
    char *out = malloc(strlen(s) * 3 + 64 * 16);
    out[0] = 0;
    for (int i = 0; i < n; i++) {
        char buf[32];
        snprintf(buf, sizeof buf, "%s", w[i]);
        if (i == 0)
            buf[0] = (char)(buf[0] - 'a' + 'A');
        strcat(out, buf);
        strcat(out, i == n - 1 ? "." : i % 5 == 4 ? ",  " : " ");
    }
    free(copy);
    return out;
}

static void test_search(void)
{
    llm_rng r;
    llm_rng_seed(&r, 7);
    make_words(&r);
    enum { N_TRAIN = 1500, N_TEST = 500 };
    char *train[N_TRAIN], *test[N_TEST];
    /* The last 300 training lines are clusters: 5 variants of each of the
     * 60 lines before them, one or two words changed, so that a test line
     * drawn from there has several near matches of different similarity. */
    for (int i = 0; i < N_TRAIN; i++)
        train[i] = i < N_TRAIN - 360 ? random_line(&r, 12 + (int)llm_rng_below(&r, 20))
                 : i < N_TRAIN - 300 ? random_line(&r, 25 + (int)llm_rng_below(&r, 15))
                 : variant(&r, train[N_TRAIN - 360 + (i - (N_TRAIN - 300)) / 5],
                           1 + (int)llm_rng_below(&r, 2));
    /* Test lines: 100 exact after folding, 150 with one word changed, 50
     * with two, 200 unrelated. */
    for (int i = 0; i < N_TEST; i++) {
        /* Every third planted line from a cluster's base, the others from
         * the random lines (the variants' capitals and commas are not
         * variant()'s input). */
        const char *src = train[i % 3 == 0 && i < 300
                                    ? N_TRAIN - 360 + (int)llm_rng_below(&r, 60)
                                    : (int)llm_rng_below(&r, N_TRAIN - 300)];
        test[i] = i < 100 ? variant(&r, src, 0) : i < 250 ? variant(&r, src, 1)
                : i < 300 ? variant(&r, src, 2) : random_line(&r, 15);
    }
    test[N_TEST - 1][0] = 0;   /* an empty document: never a match */

    llm_leak *x;
    CHECK_RC(llm_leak_new(0.8, &x));
    for (int i = 0; i < N_TEST; i++)
        CHECK_RC(llm_leak_add_test(x, test[i], strlen(test[i])));
    CHECK_RC(llm_leak_index(x));
    for (int j = 0; j < N_TRAIN; j++)
        CHECK_RC(llm_leak_scan(x, train[j], strlen(train[j]), j));

    shingles *st = malloc(N_TRAIN * sizeof *st);
    llm_buf *ft = calloc(N_TRAIN, sizeof *ft);
    for (int j = 0; j < N_TRAIN; j++) {
        st[j] = naive_shingles(train[j]);
        CHECK_RC(llm_leak_fold(train[j], strlen(train[j]), &ft[j]));
    }
    int should = 0, found = 0, reported = 0, right = 0, exact_ok = 0, n_exact = 0,
        near = 0, not_best = 0, competed = 0;
    for (int i = 0; i < N_TEST; i++) {
        shingles s = naive_shingles(test[i]);
        llm_buf fi = {0};
        CHECK_RC(llm_leak_fold(test[i], strlen(test[i]), &fi));
        double best = 0;
        int exact = 0, first = -1, over = 0;   /* first: the earliest of the best */
        for (int j = 0; j < N_TRAIN; j++) {
            double jac = naive_jaccard(&s, &st[j]);
            if (jac > best + 1e-12 || first < 0) {
                best = jac;
                first = j;
            }
            over += jac >= 0.8;
            exact |= fi.len && fi.len == ft[j].len && memcmp(fi.data, ft[j].data, fi.len) == 0;
        }
        const llm_leak_match *m = llm_leak_result(x, (size_t)i);
        int want = best >= 0.8 || exact;
        should += want;
        if (m->train_id >= 0) {
            reported++;
            right += want;
            found += want;
            double jac = naive_jaccard(&s, &st[m->train_id]);
            if (fabs(jac - m->similarity) > 1e-12 && !m->exact)
                FAIL("test %d: reported similarity %.6f, the pair's is %.6f", i,
                     m->similarity, jac);
            if (!m->exact && jac < 0.8)
                FAIL("test %d: reported near at %.6f, below the threshold", i, jac);
            if (!m->exact) {
                near++;
                competed += over > 1;
                /* Not the best: allowed only where MinHash missed it (a
                 * pair at >= 0.8 shares a band with probability 0.998). */
                not_best += m->train_id != first;
            }
        }
        n_exact += exact;
        exact_ok += exact && m->exact;
        if (m->exact && !exact)
            FAIL("test %d reported exact, but no training text folds the same", i);
        for (int k = 0; k < s.n; k++)
            free(s.s[k]);
        free(s.s);
        llm_buf_free(&fi);
    }
    double recall = should ? (double)found / should : 1, precision = reported ? (double)right / reported : 1;
    printf("leak search: %d of %d duplicates found (recall %.4f), precision %.4f; exact %d of %d\n",
           found, should, recall, precision, exact_ok, n_exact);
    if (should < 250)
        FAIL("only %d planted duplicates at >= 0.8 (the test plants 250 or more)", should);
    /* MinHash misses a pair at 0.8 with probability 0.0017, fewer above:
     * recall below 0.99 means pairs the exact check wrongly refused. */
    if (recall < 0.99 || precision < 0.99)
        FAIL("recall %.4f / precision %.4f below 0.99", recall, precision);
    printf("leak search: %d near matches, %d of them among several candidates at >= 0.8; "
           "%d not the brute-force best\n", near, competed, not_best);
    if (competed < 50)
        FAIL("only %d test lines with several near matches (the clusters plant more)", competed);
    if (not_best > near / 100)
        FAIL("%d of %d near matches are not the best training line", not_best, near);
    if (exact_ok != n_exact || n_exact < 100)
        FAIL("exact duplicates: %d of %d found as exact", exact_ok, n_exact);
    if (llm_leak_result(x, N_TEST) != NULL)
        FAIL("a result past the last test document");
    for (int j = 0; j < N_TRAIN; j++) {
        for (int k = 0; k < st[j].n; k++)
            free(st[j].s[k]);
        free(st[j].s);
        free(train[j]);
        llm_buf_free(&ft[j]);
    }
    free(ft);
    for (int i = 0; i < N_TEST; i++)
        free(test[i]);
    free(st);
    llm_leak_free(x);
}

/* Token n-grams against a brute-force count. */
static void test_ngrams(void)
{
    llm_rng r;
    llm_rng_seed(&r, 3);
    enum { NT = 4000, NA = 300, NB = 200, N = 4 };
    int32_t train[NT], a[NA], b[NB];
    for (int i = 0; i < NT; i++)
        train[i] = (int32_t)llm_rng_below(&r, 6);
    for (int i = 0; i < NA; i++)   /* half of it copied from the training ids */
        a[i] = i < NA / 2 ? train[1000 + i] : (int32_t)llm_rng_below(&r, 9);
    for (int i = 0; i < NB; i++)
        b[i] = (int32_t)llm_rng_below(&r, 9);
    llm_ngrams *g;
    CHECK_RC(llm_ngrams_new(N, &g));
    CHECK_RC(llm_ngrams_add(g, a, NA, 0));
    CHECK_RC(llm_ngrams_add(g, b, NB, 1));
    CHECK_RC(llm_ngrams_add(g, b, N - 1, 1));   /* shorter than n: no n-gram */
    llm_ngrams_index(g);
    llm_ngrams_scan(g, train, NT / 2);
    llm_ngrams_scan(g, train + NT / 2, NT / 2);
    for (int grp = 0; grp < 2; grp++) {
        const int32_t *t = grp ? b : a;
        int n = grp ? NB : NA;
        uint64_t total = 0, in = 0, gt, gi;
        for (int i = 0; i + N <= n; i++) {
            total++;
            int hit = 0;
            for (int h = 0; h < 2 && !hit; h++)   /* the two scanned halves */
                for (int j = h * NT / 2; j + N <= (h + 1) * NT / 2 && !hit; j++)
                    hit = memcmp(t + i, train + j, N * sizeof *t) == 0;
            in += (uint64_t)hit;
        }
        llm_ngrams_counts(g, (uint32_t)grp, &gt, &gi);
        printf("n-grams of group %d: %llu of %llu in the training ids (brute force %llu of %llu)\n",
               grp, (unsigned long long)gi, (unsigned long long)gt, (unsigned long long)in,
               (unsigned long long)total);
        if (gt != total || gi != in)
            FAIL("group %d: %llu of %llu, brute force %llu of %llu", grp,
                 (unsigned long long)gi, (unsigned long long)gt, (unsigned long long)in,
                 (unsigned long long)total);
        if (in == 0 || in == total)
            FAIL("group %d: the test data should give a share strictly between 0 and 1", grp);
    }
    llm_ngrams_free(g);
    if (llm_ngrams_new(0, &g) != LLM_ERR_INVALID)
        FAIL("n = 0 accepted");
}

/* Test documents of one folded text share one entry of the index: each
 * copy's result is the one a single copy gets, against a brute-force
 * check (exact: the first training line of the text; near: the best
 * Jaccard, the first of equals), and copies interleaved with other texts,
 * empty ones and near variants of each other keep their own. */
static void test_copies(void)
{
    const char *test[] = {
        "The pump failed at the north station again today",
        "the PUMP failed, at the north station again today!",   /* a copy, folded */
        "the pump failed at the north station again tonight",   /* near, not a copy */
        "",
        "Invoice 4471 was paid twice by the customer in March",
        "THE PUMP FAILED AT THE NORTH STATION AGAIN TODAY",
        "",
        "invoice 4471 was paid twice by the customer in march.",
    };
    const char *train[] = {
        "nothing to see here at all",
        "the pump failed at the north station again tonight",
        "The pump failed at the north station again today.",
        "the pump failed at the north station again today",
        "Invoice 4471 was paid twice by the buyer in March",
    };
    enum { NT = sizeof test / sizeof *test, NR = sizeof train / sizeof *train };
    llm_leak *x;
    CHECK_RC(llm_leak_new(0.5, &x));
    for (int i = 0; i < NT; i++)
        CHECK_RC(llm_leak_add_test(x, test[i], strlen(test[i])));
    CHECK_RC(llm_leak_index(x));
    for (int j = 0; j < NR; j++)
        CHECK_RC(llm_leak_scan(x, train[j], strlen(train[j]), j));
    for (int i = 0; i < NT; i++) {
        llm_buf fi = { 0 };
        CHECK_RC(llm_leak_fold(test[i], strlen(test[i]), &fi));
        int want = -1, exact = 0;
        double best = 0;
        for (int j = 0; j < NR && fi.len; j++) {
            llm_buf fj = { 0 };
            double jac;
            CHECK_RC(llm_leak_fold(train[j], strlen(train[j]), &fj));
            CHECK_RC(llm_leak_jaccard(test[i], strlen(test[i]), train[j], strlen(train[j]), &jac));
            int ex = fj.len == fi.len && memcmp(fj.data, fi.data, fi.len) == 0;
            if (!exact && (ex || (jac >= 0.5 && jac > best))) {
                want = j;
                best = ex ? 1.0 : jac;
                exact = ex;
            }
            llm_buf_free(&fj);
        }
        const llm_leak_match *m = llm_leak_result(x, (size_t)i);
        if (m->train_id != want || m->exact != exact || (want >= 0 && fabs(m->similarity - best) > 1e-12))
            FAIL("copies: test %d matched %lld (%s %.4f), want %d (%s %.4f)", i,
                 (long long)m->train_id, m->exact ? "exact" : "near", m->similarity, want,
                 exact ? "exact" : "near", best);
        llm_buf_free(&fi);
    }
    llm_leak_free(x);
}

int main(void)
{
    check_fold("Hello,   World!", "hello world");
    check_fold("\xEF\xBC\xA8\xEF\xBD\x85\xEF\xBD\x8C\xEF\xBD\x8C\xEF\xBD\x8F", "hello");  /* fullwidth */
    check_fold("Stra\xC3\x9F" "e", "strasse");                  /* full case folding */
    check_fold("\xEF\xAC\x81" "ne", "fine");                    /* ligature fi (NFKC) */
    check_fold("e\xCC\x81t\xC3\xA9", "\xC3\xA9t\xC3\xA9");      /* e + combining acute = é */
    check_fold("\t a\xE2\x80\x93" "b -- c\xC2\xA0" "d \n", "a b c d");  /* en dash, NBSP */
    check_fold("a\xFF" "b", "a\xEF\xBF\xBD" "b");               /* invalid byte: U+FFFD */
    check_fold("...!?", "");
    check_fold("$5 + 3 = 8", "$5 + 3 = 8");                     /* symbols stay */
    /* Default-ignorable characters go (NFKC_Casefold's rule): a zero-width
     * space, a soft hyphen, a byte-order mark, a zero-width joiner. */
    check_fold("Oil\xE2\x80\x8B prices", "oil prices");
    check_fold("co\xC2\xADoperation", "cooperation");
    check_fold("\xEF\xBB\xBFshort doc", "short doc");
    check_fold("a\xE2\x80\x8D" "b", "ab");
    check_fold("\xE4\xB8\xAD\xE6\x96\x87\xEF\xBC\x8C\xE6\xA0\x87\xE9\xA2\x98",
               "\xE4\xB8\xAD\xE6\x96\x87 \xE6\xA0\x87\xE9\xA2\x98");   /* fullwidth comma */
    /* {abcde, bcdef} and {abcde, bcdeg}: 1 of 3. */
    check_jaccard("abcdef", "abcdeg", 1.0 / 3);
    check_jaccard("ABCDEF!", "abcdef", 1.0);
    check_jaccard("abc", "ABC", 1.0);
    check_jaccard("abc", "abcd", 0.0);
    check_jaccard("abc", "abcdef", 0.0);
    /* "aaaaaaa": one distinct shingle; "aaaaab": {aaaaa, aaaab}. */
    check_jaccard("aaaaaaa", "aaaaab", 0.5);
    check_jaccard("", "", 0.0);
    llm_leak *x;
    if (llm_leak_new(0.0, &x) != LLM_ERR_INVALID || llm_leak_new(1.5, &x) != LLM_ERR_INVALID)
        FAIL("a threshold outside (0, 1] accepted");
    CHECK_RC(llm_leak_new(0.8, &x));
    if (llm_leak_scan(x, "a", 1, 0) != LLM_ERR_INVALID)
        FAIL("a scan before the index accepted");
    CHECK_RC(llm_leak_index(x));   /* no test documents: scans find nothing */
    CHECK_RC(llm_leak_scan(x, "abc", 3, 0));
    if (llm_leak_count(x) != 0 || llm_leak_result(x, 0))
        FAIL("an empty index has results");
    llm_leak_free(x);
    test_search();
    test_copies();
    test_ngrams();
    if (failures)
        printf("%d failures\n", failures);
    return failures ? 1 : 0;
}
