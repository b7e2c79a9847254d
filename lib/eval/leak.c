/* leak.c: train/test leakage, the search for test documents whose text (or
 * nearly) is also in the training data.
 *
 * Texts are compared folded: Unicode NFKC with full case folding (utf8proc,
 * Debian libutf8proc-dev: normalisation needs Unicode's decomposition and
 * composition tables, which no hand-written table should copy), default-
 * ignorable characters removed (zero-width spaces and joiners, soft
 * hyphens, byte-order marks: NFKC_Casefold removes them too), every
 * punctuation character (general category P*), separator (Z*) or control
 * character (Cc) as a space, runs of spaces as one, none at either end.
 * Invalid UTF-8 bytes become U+FFFD first.
 *
 * Exact: equal folded texts. Near: the Jaccard similarity of the two sets
 * of character 5-grams (shingles; a text of fewer than 5 characters is one
 * shingle, itself) at least the threshold. Candidates come from MinHash
 * signatures (LLM_LEAK_HASHES functions of the multiply-shift family over a
 * 64-bit hash of each shingle) in LSH bands of LLM_LEAK_ROWS values: a pair
 * of similarity s shares at least one band with probability
 * 1 - (1 - s^6)^24, 0.9983 at s = 0.8, 0.9999 at 0.85. Every candidate is
 * then confirmed by the exact Jaccard of the shingles themselves (compared
 * as code points, not hashes), so a reported pair is never a hashing
 * artefact; only recall depends on the hashing.
 *
 * The test documents are indexed (signatures, band keys sorted, folded
 * texts); the training documents stream past once (llm_leak_scan()), so a
 * training file of any length costs no memory. */
#include <stdlib.h>
#include <string.h>

#include <utf8proc.h>

#include "elementwise.h"
#include "internal.h"

#define K_SHINGLE 5
#define N_BANDS (LLM_LEAK_HASHES / LLM_LEAK_ROWS)

/* A 64-bit hash and the document (or group) it belongs to; arrays of them
 * are sorted by (h, id) and searched by h. */
typedef struct {
    uint64_t h;
    uint32_t id;
    uint32_t found;   /* n-grams: seen in the training data */
} hkey;

struct llm_leak {
    double threshold;
    uint64_t a[LLM_LEAK_HASHES], b[LLM_LEAK_HASHES];   /* multiply-add-shift */
    /* Test documents: folded code points (cp[off[i]] .. cp[off[i + 1]]). */
    uint32_t *cp;
    size_t n_cp, cap_cp;
    size_t *off;             /* (n_docs + 1) */
    size_t n_docs, cap_off;
    uint32_t *sig;           /* (n_docs, HASHES) */
    hkey *bands;             /* (n_docs x N_BANDS): hash of (band, its values) */
    size_t n_bands;
    hkey *texts;             /* (n_texts): hash of each distinct folded text */
    size_t n_texts;
    uint32_t *rep;           /* (n_docs): the first test document of its text */
    /* Each rep's distinct shingles, sorted: start offsets within its text,
     * sh[sh_off[i]] .. sh[sh_off[i + 1]] (none for the others). */
    uint32_t *sh;
    size_t *sh_off;          /* (n_docs + 1) */
    llm_leak_match *best;    /* (n_docs): by rep (the others' are their rep's) */
    int indexed;
    /* Scratch of one training document. */
    uint32_t *tcp;
    size_t cap_tcp;
    uint32_t *cand;
    size_t cap_cand;
    uint32_t *sa, *sb;       /* shingle start offsets, for the exact Jaccard */
    size_t cap_sa, cap_sb;
    llm_buf fold;
};

/* ------------------------------------------------------------------------ */
/* Folding. */

static int is_space_like(utf8proc_int32_t c)
{
    switch (utf8proc_category(c)) {
    case UTF8PROC_CATEGORY_PC: case UTF8PROC_CATEGORY_PD: case UTF8PROC_CATEGORY_PS:
    case UTF8PROC_CATEGORY_PE: case UTF8PROC_CATEGORY_PI: case UTF8PROC_CATEGORY_PF:
    case UTF8PROC_CATEGORY_PO: case UTF8PROC_CATEGORY_ZS: case UTF8PROC_CATEGORY_ZL:
    case UTF8PROC_CATEGORY_ZP: case UTF8PROC_CATEGORY_CC:
        return 1;
    default:
        return 0;
    }
}

/* Folded code points of s into *cp (*n of them, *cap grown). */
static int fold_cps(const char *s, size_t n, llm_buf *tmp, uint32_t **cp, size_t *n_cp,
                    size_t *cap)
{
    /* Valid UTF-8 first: each invalid byte becomes U+FFFD. */
    tmp->len = 0;
    while (n) {
        size_t bad;
        if (llm_utf8_check(s, n, &bad))   /* valid */
            bad = n;
        if (llm_buf_append(tmp, s, bad) || (bad < n && llm_buf_append(tmp, "\xEF\xBF\xBD", 3)))
            return LLM_ERR_NOMEM;
        if (bad >= n)
            break;
        s += bad + 1;
        n -= bad + 1;
    }
    *n_cp = 0;
    if (!tmp->len)
        return LLM_OK;
    utf8proc_uint8_t *m = NULL;
    utf8proc_ssize_t len = utf8proc_map((const utf8proc_uint8_t *)tmp->data,
                                        (utf8proc_ssize_t)tmp->len, &m,
                                        UTF8PROC_STABLE | UTF8PROC_COMPAT | UTF8PROC_COMPOSE |
                                            UTF8PROC_CASEFOLD | UTF8PROC_IGNORE);
    if (len < 0)
        return len == UTF8PROC_ERROR_NOMEM ? LLM_ERR_NOMEM
                                            : llm_fail(LLM_ERR_UTF8, "text cannot be normalised: %s",
                                                       utf8proc_errmsg(len));
    int rc = LLM_OK;
    size_t k = 0;
    int space = 1;   /* drops leading spaces */
    for (utf8proc_ssize_t i = 0; i < len;) {
        utf8proc_int32_t c;
        utf8proc_ssize_t step = utf8proc_iterate(m + i, len - i, &c);
        if (step <= 0)
            break;   /* utf8proc's own output: cannot happen */
        i += step;
        if (is_space_like(c)) {
            if (space)
                continue;
            c = ' ';
            space = 1;
        } else
            space = 0;
        if (llm_grow((void **)cp, cap, k + 1, sizeof **cp)) {
            rc = LLM_ERR_NOMEM;
            break;
        }
        (*cp)[k++] = (uint32_t)c;
    }
    free(m);
    if (k && (*cp)[k - 1] == ' ')
        k--;
    *n_cp = k;
    return rc;
}

int llm_leak_fold(const char *s, size_t n, llm_buf *out)
{
    llm_buf tmp = {0};
    uint32_t *cp = NULL;
    size_t k = 0, cap = 0;
    int rc = fold_cps(s, n, &tmp, &cp, &k, &cap);
    out->len = 0;
    for (size_t i = 0; rc == LLM_OK && i < k; i++) {
        utf8proc_uint8_t u[4];
        utf8proc_ssize_t m = utf8proc_encode_char((utf8proc_int32_t)cp[i], u);
        if (llm_buf_append(out, u, (size_t)m))
            rc = LLM_ERR_NOMEM;
    }
    llm_buf_free(&tmp);
    free(cp);
    return rc;
}

/* ------------------------------------------------------------------------ */
/* Shingles, signatures, exact Jaccard. */

static size_t n_shingles(size_t n)
{
    return n == 0 ? 0 : n < K_SHINGLE ? 1 : n - K_SHINGLE + 1;
}

static uint64_t shingle_hash(const uint32_t *c, size_t n)
{
    uint64_t h = 0x9e3779b97f4a7c15ULL ^ n;
    for (size_t i = 0; i < n; i++)
        h = llm_mix64(h ^ c[i]);
    return h;
}

static void signature(const llm_leak *x, const uint32_t *c, size_t n, uint32_t *sig)
{
    for (int i = 0; i < LLM_LEAK_HASHES; i++)
        sig[i] = UINT32_MAX;
    size_t ns = n_shingles(n), w = n < K_SHINGLE ? n : K_SHINGLE;
    for (size_t s = 0; s < ns; s++) {
        uint64_t h = shingle_hash(c + s, w);
        uint32_t v = (uint32_t)(h ^ (h >> 32));
        for (int i = 0; i < LLM_LEAK_HASHES; i++) {
            uint32_t y = (uint32_t)((x->a[i] * v + x->b[i]) >> 32);
            sig[i] = y < sig[i] ? y : sig[i];
        }
    }
}

static uint64_t band_hash(const uint32_t *sig, int band)
{
    uint64_t h = llm_mix64((uint64_t)band + 1);
    for (int r = 0; r < LLM_LEAK_ROWS; r++)
        h = llm_mix64(h ^ sig[band * LLM_LEAK_ROWS + r]);
    return h;
}

/* Shingle order for sorting: the code points compared in turn. */
static const uint32_t *sort_base;
static size_t sort_w;
static int cmp_shingle(const void *pa, const void *pb)
{
    const uint32_t *a = sort_base + *(const uint32_t *)pa, *b = sort_base + *(const uint32_t *)pb;
    for (size_t i = 0; i < sort_w; i++)
        if (a[i] != b[i])
            return a[i] < b[i] ? -1 : 1;
    return 0;
}

static int shingle_cmp(const uint32_t *a, const uint32_t *b, size_t w)
{
    for (size_t i = 0; i < w; i++)
        if (a[i] != b[i])
            return a[i] < b[i] ? -1 : 1;
    return 0;
}

/* The distinct shingles of c (n code points): sorted start offsets, *m. */
static int distinct_shingles(const uint32_t *c, size_t n, uint32_t **s, size_t *cap, size_t *m)
{
    size_t ns = n_shingles(n), w = n < K_SHINGLE ? n : K_SHINGLE;
    if (n > UINT32_MAX || llm_grow((void **)s, cap, ns ? ns : 1, sizeof **s))
        return LLM_ERR_NOMEM;
    for (size_t i = 0; i < ns; i++)
        (*s)[i] = (uint32_t)i;
    sort_base = c;
    sort_w = w;
    qsort(*s, ns, sizeof **s, cmp_shingle);
    size_t k = 0;
    for (size_t i = 0; i < ns; i++)
        if (!k || shingle_cmp(c + (*s)[k - 1], c + (*s)[i], w))
            (*s)[k++] = (*s)[i];
    *m = k;
    return LLM_OK;
}

/* The Jaccard similarity of two sets of distinct shingles, sorted (start
 * offsets sa[0..ma) into a, of width wa; sb likewise): shingles of two
 * widths never meet. With `need` > 0, -1 as soon as fewer than `need`
 * shingles can be shared. */
static double overlap(const uint32_t *a, const uint32_t *sa, size_t ma, size_t wa,
                      const uint32_t *b, const uint32_t *sb, size_t mb, size_t wb,
                      size_t need)
{
    size_t i = 0, j = 0, both = 0;
    while (wa == wb && i < ma && j < mb) {
        int c = shingle_cmp(a + sa[i], b + sb[j], wa);
        both += c == 0;
        i += c <= 0;
        j += c >= 0;
        if (c && both + (ma - i < mb - j ? ma - i : mb - j) < need)
            return -1.0;
    }
    size_t uni = ma + mb - both;
    return uni ? (double)both / (double)uni : 0.0;
}

/* Exact Jaccard of two folded texts' shingle sets (a text shorter than 5
 * characters is the one shingle of its own length). */
static int jaccard(llm_leak *x, const uint32_t *a, size_t na, const uint32_t *b, size_t nb,
                   double *out)
{
    size_t ma, mb;
    if (distinct_shingles(a, na, &x->sa, &x->cap_sa, &ma) ||
        distinct_shingles(b, nb, &x->sb, &x->cap_sb, &mb))
        return LLM_ERR_NOMEM;
    *out = overlap(a, x->sa, ma, na < K_SHINGLE ? na : K_SHINGLE, b, x->sb, mb,
                   nb < K_SHINGLE ? nb : K_SHINGLE, 0);
    return LLM_OK;
}

int llm_leak_jaccard(const char *a, size_t na, const char *b, size_t nb, double *out)
{
    llm_leak *x;
    int rc = llm_leak_new(0.5, &x);
    if (rc)
        return rc;
    uint32_t *ca = NULL;
    size_t ka = 0, kb = 0, capa = 0;
    rc = fold_cps(a, na, &x->fold, &ca, &ka, &capa);
    if (!rc)
        rc = fold_cps(b, nb, &x->fold, &x->tcp, &kb, &x->cap_tcp);
    if (!rc)
        rc = jaccard(x, ca, ka, x->tcp, kb, out);
    free(ca);
    llm_leak_free(x);
    return rc;
}

/* ------------------------------------------------------------------------ */

int llm_leak_new(double threshold, llm_leak **out)
{
    *out = NULL;
    if (!(threshold > 0 && threshold <= 1))
        return llm_fail(LLM_ERR_INVALID, "similarity threshold %g is not in (0, 1]", threshold);
    llm_leak *x = calloc(1, sizeof *x);
    if (!x)
        return LLM_ERR_NOMEM;
    x->threshold = threshold;
    llm_rng rng;
    llm_rng_seed(&rng, 0x1ea4a6e5);   /* fixed: the same signatures on every run */
    for (int i = 0; i < LLM_LEAK_HASHES; i++) {
        x->a[i] = llm_rng_u64(&rng) | 1;
        x->b[i] = llm_rng_u64(&rng);
    }
    x->cap_cp = 64;   /* never NULL: offsets into it are taken */
    if (!(x->off = malloc(sizeof *x->off)) || !(x->cp = malloc(x->cap_cp * sizeof *x->cp))) {
        free(x->off);
        free(x);
        return LLM_ERR_NOMEM;
    }
    x->off[0] = 0;
    x->cap_off = 1;
    *out = x;
    return LLM_OK;
}

void llm_leak_free(llm_leak *x)
{
    if (!x)
        return;
    free(x->cp);
    free(x->off);
    free(x->sig);
    free(x->bands);
    free(x->texts);
    free(x->rep);
    free(x->sh);
    free(x->sh_off);
    free(x->best);
    free(x->tcp);
    free(x->cand);
    free(x->sa);
    free(x->sb);
    llm_buf_free(&x->fold);
    free(x);
}

int llm_leak_add_test(llm_leak *x, const char *text, size_t n)
{
    if (x->indexed)
        return llm_fail(LLM_ERR_INVALID, "test documents are added before the index is built");
    if (x->n_docs >= UINT32_MAX - 1)
        return llm_fail(LLM_ERR_RANGE, "more than %u test documents", UINT32_MAX - 2);
    size_t k;
    int rc = fold_cps(text, n, &x->fold, &x->tcp, &k, &x->cap_tcp);
    if (rc)
        return rc;
    if (llm_grow((void **)&x->cp, &x->cap_cp, x->n_cp + k, sizeof *x->cp) ||
        llm_grow((void **)&x->off, &x->cap_off, x->n_docs + 2, sizeof *x->off))
        return LLM_ERR_NOMEM;
    if (k)
        memcpy(x->cp + x->n_cp, x->tcp, k * sizeof *x->cp);
    x->n_cp += k;
    x->off[++x->n_docs] = x->n_cp;
    return LLM_OK;
}

static int cmp_hkey(const void *pa, const void *pb)
{
    const hkey *a = pa, *b = pb;
    if (a->h != b->h)
        return a->h < b->h ? -1 : 1;
    return a->id < b->id ? -1 : a->id > b->id;
}

static void sort_hkeys(hkey *k, size_t n)
{
    if (n > 1)
        qsort(k, n, sizeof *k, cmp_hkey);
}

/* The first of k[0..n) (sorted) with hash h, or n. */
static size_t find_hkey(const hkey *k, size_t n, uint64_t h)
{
    size_t lo = 0, hi = n;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (k[mid].h < h)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo;
}

static int same_text(const llm_leak *x, uint32_t a, uint32_t b)
{
    size_t la = x->off[a + 1] - x->off[a], lb = x->off[b + 1] - x->off[b];
    return la == lb && memcmp(x->cp + x->off[a], x->cp + x->off[b], la * sizeof *x->cp) == 0;
}

/* Test documents of the same folded text are one entry of the index (the
 * first of them, rep), whose match is theirs: each training document then
 * meets a text once, not once per copy (a file of repeated lines took time
 * growing with the square of the copies). */
int llm_leak_index(llm_leak *x)
{
    if (x->indexed)
        return LLM_OK;
    size_t n = x->n_docs;
    /* (what a call that ran out of memory left is freed first) */
    free(x->sig);
    free(x->bands);
    free(x->texts);
    free(x->rep);
    free(x->best);
    free(x->sh);
    free(x->sh_off);
    x->sh = NULL;
    x->sh_off = NULL;
    x->sig = malloc((n ? n : 1) * LLM_LEAK_HASHES * sizeof *x->sig);
    x->bands = malloc((n ? n : 1) * N_BANDS * sizeof *x->bands);
    x->texts = malloc((n ? n : 1) * sizeof *x->texts);
    x->rep = malloc((n ? n : 1) * sizeof *x->rep);
    x->best = malloc((n ? n : 1) * sizeof *x->best);
    if (!x->sig || !x->bands || !x->texts || !x->rep || !x->best)
        return llm_fail(LLM_ERR_NOMEM, "out of memory for the index of %zu test documents", n);
    for (size_t i = 0; i < n; i++) {
        x->best[i] = (llm_leak_match){-1, 0.0, 0};
        x->texts[i] = (hkey){shingle_hash(x->cp + x->off[i], x->off[i + 1] - x->off[i]),
                             (uint32_t)i, 0};
        x->rep[i] = (uint32_t)i;
    }
    sort_hkeys(x->texts, n);
    /* In each run of one hash (sorted by id), a text's rep is the first
     * earlier rep of the same text; the reps alone stay in texts. */
    size_t nt = 0;
    for (size_t i = 0, j; i < n; i = j) {
        size_t first = nt;
        for (j = i; j < n && x->texts[j].h == x->texts[i].h; j++) {
            uint32_t d = x->texts[j].id;
            size_t r = first;
            while (r < nt && !same_text(x, x->texts[r].id, d))
                r++;
            if (r < nt)
                x->rep[d] = x->texts[r].id;
            else
                x->texts[nt++] = x->texts[j];
        }
    }
    x->n_texts = nt;
    /* A rep's shingles are sorted once here, not once per candidate pair
     * (a cluster of near duplicates meets every training document of its
     * kind: 42 s for 2,000 templated test lines against 20,000). Never
     * more of them than code points. */
    x->sh = malloc((x->n_cp ? x->n_cp : 1) * sizeof *x->sh);
    x->sh_off = malloc((n + 1) * sizeof *x->sh_off);
    if (!x->sh || !x->sh_off)
        return llm_fail(LLM_ERR_NOMEM, "out of memory for the index of %zu test documents", n);
    x->sh_off[0] = 0;
    x->n_bands = 0;
    for (size_t i = 0; i < n; i++) {
        const uint32_t *c = x->cp + x->off[i];
        size_t len = x->off[i + 1] - x->off[i], m = 0;
        uint32_t *sig = x->sig + i * LLM_LEAK_HASHES;
        x->sh_off[i + 1] = x->sh_off[i];
        if (!len || x->rep[i] != i)
            continue;   /* an empty text has no shingles: never a candidate */
        if (distinct_shingles(c, len, &x->sa, &x->cap_sa, &m))
            return LLM_ERR_NOMEM;
        memcpy(x->sh + x->sh_off[i], x->sa, m * sizeof *x->sh);
        x->sh_off[i + 1] += m;
        signature(x, c, len, sig);
        for (int bnd = 0; bnd < N_BANDS; bnd++)
            x->bands[x->n_bands++] = (hkey){band_hash(sig, bnd), (uint32_t)i, 0};
    }
    sort_hkeys(x->bands, x->n_bands);
    x->indexed = 1;
    return LLM_OK;
}

static int cmp_u32(const void *pa, const void *pb)
{
    uint32_t a = *(const uint32_t *)pa, b = *(const uint32_t *)pb;
    return a < b ? -1 : a > b;
}

/* Records (id, sim, exact) as doc's match when better than the one it has:
 * exact before near, then the higher similarity, then the earlier id. */
static void offer(llm_leak *x, uint32_t doc, int64_t id, double sim, int exact)
{
    llm_leak_match *m = x->best + doc;
    if (m->train_id >= 0 &&
        (m->exact > exact || (m->exact == exact && m->similarity >= sim)))
        return;
    *m = (llm_leak_match){id, sim, exact};
}

/* Whether `both` shingles shared of `sum` in the two sets give a
 * similarity that offer() would take over the match m. */
static int could_offer(const llm_leak *x, const llm_leak_match *m, size_t both, size_t sum)
{
    double sim = sum > both ? (double)both / (double)(sum - both) : 0.0;
    return sim >= x->threshold && (m->train_id < 0 || sim > m->similarity);
}

int llm_leak_scan(llm_leak *x, const char *text, size_t n, int64_t id)
{
    if (!x->indexed)
        return llm_fail(LLM_ERR_INVALID, "llm_leak_index() comes before llm_leak_scan()");
    if (id < 0)
        return llm_fail(LLM_ERR_INVALID, "training document id %lld is negative", (long long)id);
    size_t k;
    int rc = fold_cps(text, n, &x->fold, &x->tcp, &k, &x->cap_tcp);
    if (rc || !k || !x->n_docs)
        return rc;
    const uint32_t *c = x->tcp;
    /* Exact: the same folded text. */
    uint64_t h = shingle_hash(c, k);
    for (size_t i = find_hkey(x->texts, x->n_texts, h); i < x->n_texts && x->texts[i].h == h;
         i++) {
        uint32_t d = x->texts[i].id;
        size_t len = x->off[d + 1] - x->off[d];
        if (len == k && memcmp(x->cp + x->off[d], c, k * sizeof *c) == 0)
            offer(x, d, id, 1.0, 1);
    }
    /* Near: the test documents sharing a band, confirmed exactly. */
    uint32_t sig[LLM_LEAK_HASHES];
    signature(x, c, k, sig);
    size_t nc = 0;
    for (int bnd = 0; bnd < N_BANDS; bnd++) {
        uint64_t key = band_hash(sig, bnd);
        for (size_t i = find_hkey(x->bands, x->n_bands, key);
             i < x->n_bands && x->bands[i].h == key; i++) {
            if (llm_grow((void **)&x->cand, &x->cap_cand, nc + 1, sizeof *x->cand))
                return LLM_ERR_NOMEM;
            x->cand[nc++] = x->bands[i].id;
        }
    }
    if (nc > 1)
        qsort(x->cand, nc, sizeof *x->cand, cmp_u32);
    size_t mt = 0, wt = k < K_SHINGLE ? k : K_SHINGLE;   /* the training text's shingles */
    for (size_t i = 0; i < nc; i++) {
        uint32_t d = x->cand[i];
        if (i && d == x->cand[i - 1])
            continue;
        const llm_leak_match *m = x->best + d;
        if (m->exact)
            continue;   /* nothing beats it */
        if (!mt && distinct_shingles(c, k, &x->sb, &x->cap_sb, &mt))
            return LLM_ERR_NOMEM;
        /* With b shingles shared of sizes md and mt, the similarity is
         * b / (md + mt - b), rising with b: `need`, the fewest that could
         * be offered (at or above the threshold, above the match d has),
         * found in doubles as offer() compares them. At most the smaller
         * set's size: none reaching it, the pair is skipped unread. */
        size_t md = x->sh_off[d + 1] - x->sh_off[d], lo = md < mt ? md : mt;
        if (!could_offer(x, m, lo, md + mt))
            continue;
        size_t bot = 0, need = lo;   /* could_offer(need), not (bot - 1) */
        while (bot < need) {
            size_t mid = bot + (need - bot) / 2;
            if (could_offer(x, m, mid, md + mt))
                need = mid;
            else
                bot = mid + 1;
        }
        size_t len = x->off[d + 1] - x->off[d];
        double sim = overlap(x->cp + x->off[d], x->sh + x->sh_off[d], md,
                             len < K_SHINGLE ? len : K_SHINGLE, c, x->sb, mt, wt, need);
        if (sim >= x->threshold)
            offer(x, d, id, sim, 0);
    }
    return LLM_OK;
}

const llm_leak_match *llm_leak_result(const llm_leak *x, size_t doc)
{
    return x->indexed && doc < x->n_docs ? x->best + x->rep[doc] : NULL;
}

size_t llm_leak_count(const llm_leak *x)
{
    return x->n_docs;
}

/* ------------------------------------------------------------------------ */
/* Token n-grams: the share of the test files' n-grams that occur in the
 * training data (the contamination measure of language-model benchmarks).
 * An n-gram is a 64-bit hash of its ids; two distinct n-grams of a few
 * million share one with probability about 1e-7. */

struct llm_ngrams {
    int n;
    hkey *e;                 /* the test n-grams; id: their group */
    size_t len, cap;
    int indexed;
};

int llm_ngrams_new(int n, llm_ngrams **out)
{
    *out = NULL;
    if (n < 1 || n > 64)
        return llm_fail(LLM_ERR_INVALID, "n-gram length %d is not in [1, 64]", n);
    llm_ngrams *g = calloc(1, sizeof *g);
    if (!g)
        return LLM_ERR_NOMEM;
    g->n = n;
    *out = g;
    return LLM_OK;
}

void llm_ngrams_free(llm_ngrams *g)
{
    if (g) {
        free(g->e);
        free(g);
    }
}

static uint64_t ngram_hash(const int32_t *ids, int n)
{
    uint64_t h = 0x6a09e667f3bcc909ULL;
    for (int i = 0; i < n; i++)
        h = llm_mix64(h ^ (uint32_t)ids[i]);
    return h;
}

int llm_ngrams_add(llm_ngrams *g, const int32_t *ids, size_t n, uint32_t group)
{
    if (g->indexed)
        return llm_fail(LLM_ERR_INVALID, "test n-grams are added before the index is built");
    for (size_t i = 0; i + (size_t)g->n <= n; i++) {
        if (llm_grow((void **)&g->e, &g->cap, g->len + 1, sizeof *g->e))
            return LLM_ERR_NOMEM;
        g->e[g->len++] = (hkey){ngram_hash(ids + i, g->n), group, 0};
    }
    return LLM_OK;
}

void llm_ngrams_index(llm_ngrams *g)
{
    sort_hkeys(g->e, g->len);
    g->indexed = 1;
}

void llm_ngrams_scan(llm_ngrams *g, const int32_t *ids, size_t n)
{
    if (!g->indexed)
        llm_ngrams_index(g);
    for (size_t i = 0; i + (size_t)g->n <= n; i++) {
        uint64_t h = ngram_hash(ids + i, g->n);
        for (size_t j = find_hkey(g->e, g->len, h); j < g->len && g->e[j].h == h &&
             !g->e[j].found; j++)
            g->e[j].found = 1;
    }
}

void llm_ngrams_counts(const llm_ngrams *g, uint32_t group, uint64_t *total, uint64_t *found)
{
    *total = *found = 0;
    for (size_t i = 0; i < g->len; i++)
        if (g->e[i].id == group) {
            ++*total;
            *found += g->e[i].found;
        }
}
