/* data.c: training data as one token stream made of segments (mapped token
 * files or ids held in memory), and the seeded batcher that cuts it into
 * sequences: every epoch visits each whole sequence once in a shuffled order
 * derived from (seed, epoch), so a position (epoch, index) is all a resumed
 * run needs to continue with the same batches. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "internal.h"
#include "train.h"

typedef struct {
    llm_tokfile *tf;      /* a mapped token file, or */
    int32_t *ids;         /* ids in memory (owned) */
    uint64_t n;
    uint64_t start;       /* offset of this segment in the stream */
} segment;

struct llm_data {
    uint32_t vocab;
    segment *seg;
    size_t nseg, cap;
    uint64_t count;
};

int llm_data_new(uint32_t vocab_size, llm_data **out)
{
    *out = NULL;
    if (vocab_size == 0)
        return llm_fail(LLM_ERR_INVALID, "vocabulary size is 0");
    llm_data *d = calloc(1, sizeof *d);
    if (!d)
        return llm_fail(LLM_ERR_NOMEM, "out of memory");
    d->vocab = vocab_size;
    *out = d;
    return LLM_OK;
}

void llm_data_free(llm_data *d)
{
    if (!d)
        return;
    for (size_t i = 0; i < d->nseg; i++) {
        llm_tokfile_close(d->seg[i].tf);
        free(d->seg[i].ids);
    }
    free(d->seg);
    free(d);
}

static int add_segment(llm_data *d, segment s)
{
    if (d->nseg == d->cap) {
        size_t ncap = d->cap ? 2 * d->cap : 8;
        segment *p = realloc(d->seg, ncap * sizeof *p);
        if (!p)
            return llm_fail(LLM_ERR_NOMEM, "out of memory");
        d->seg = p;
        d->cap = ncap;
    }
    s.start = d->count;
    d->seg[d->nseg++] = s;
    d->count += s.n;
    return LLM_OK;
}

int llm_data_add_file(llm_data *d, const char *path)
{
    llm_tokfile *tf;
    int rc = llm_tokfile_open(path, &tf);
    if (rc)
        return rc;
    uint32_t v = llm_tokfile_info(tf)->vocab_size;
    if (v != d->vocab) {
        llm_tokfile_close(tf);
        return llm_fail(LLM_ERR_FORMAT,
                        "'%s': token file has vocabulary size %u, the tokenizer has %u "
                        "(encoded with another tokenizer?)", path, v, d->vocab);
    }
    segment s = { .tf = tf, .n = llm_tokfile_count(tf) };
    if (s.n == 0) {
        llm_tokfile_close(tf);
        return LLM_OK;
    }
    rc = add_segment(d, s);
    if (rc)
        llm_tokfile_close(tf);
    return rc;
}

int llm_data_add_ids(llm_data *d, const int32_t *ids, size_t n)
{
    if (n == 0)
        return LLM_OK;
    for (size_t i = 0; i < n; i++)
        if (ids[i] < 0 || (uint32_t)ids[i] >= d->vocab)
            return llm_fail(LLM_ERR_RANGE, "token id %d is out of range (vocabulary %u)",
                            ids[i], d->vocab);
    size_t bytes;
    if (llm_mul_size(n, sizeof *ids, &bytes))
        return llm_fail(LLM_ERR_NOMEM, "too many tokens");
    segment s = { .ids = malloc(bytes), .n = n };
    if (!s.ids)
        return llm_fail(LLM_ERR_NOMEM, "out of memory (%zu bytes)", bytes);
    memcpy(s.ids, ids, bytes);
    int rc = add_segment(d, s);
    if (rc)
        free(s.ids);
    return rc;
}

uint64_t llm_data_count(const llm_data *d)
{
    return d->count;
}

uint32_t llm_data_vocab(const llm_data *d)
{
    return d->vocab;
}

int llm_data_read(const llm_data *d, uint64_t pos, size_t n, int32_t *dst)
{
    if (pos > d->count || n > d->count - pos)
        return llm_fail(LLM_ERR_RANGE, "read of %zu tokens at %llu past the end (%llu)",
                        n, (unsigned long long)pos, (unsigned long long)d->count);
    /* Binary search for the segment holding pos. */
    size_t lo = 0, hi = d->nseg;
    while (hi - lo > 1) {
        size_t mid = lo + (hi - lo) / 2;
        if (d->seg[mid].start <= pos)
            lo = mid;
        else
            hi = mid;
    }
    for (size_t s = lo; n > 0; s++) {
        const segment *g = &d->seg[s];
        uint64_t off = pos - g->start;
        uint64_t take = g->n - off < n ? g->n - off : n;
        if (g->ids)
            memcpy(dst, g->ids + off, (size_t)take * sizeof *dst);
        else
            for (uint64_t i = 0; i < take; i++)
                dst[i] = (int32_t)llm_tokfile_get(g->tf, off + i);
        dst += take;
        pos += take;
        n -= (size_t)take;
    }
    return LLM_OK;
}

/* ------------------------------------------------------------------------ */
/* Batcher. */

struct llm_batcher {
    const llm_data *d;     /* token sequences, or */
    const llm_cls_data *docs;  /* labelled documents (classify.c), or */
    const llm_pairs *pairs;    /* input -> output pairs packed in rows (pairs.c) */
    uint64_t begin, end;   /* the token range sequences come from */
    int T;
    uint64_t seed;
    uint64_t nseq;         /* whole sequences of T+1 tokens (overlapping by 1) */
    uint64_t *perm;        /* this epoch's order */
    uint64_t perm_epoch;   /* epoch perm was built for, UINT64_MAX: none */
    llm_data_pos pos;
};

int llm_batcher_new(const llm_data *d, uint64_t begin, uint64_t end, int T,
                    uint64_t seed, llm_batcher **out)
{
    *out = NULL;
    if (T < 1)
        return llm_fail(LLM_ERR_INVALID, "sequence length %d must be positive", T);
    if (begin > end || end > d->count)
        return llm_fail(LLM_ERR_RANGE, "token range [%llu, %llu) out of [0, %llu)",
                        (unsigned long long)begin, (unsigned long long)end,
                        (unsigned long long)d->count);
    uint64_t len = end - begin;
    if (len < (uint64_t)T + 1)
        return llm_fail(LLM_ERR_INVALID,
                        "%llu tokens are fewer than one sequence of %d + 1",
                        (unsigned long long)len, T);
    llm_batcher *b = calloc(1, sizeof *b);
    if (!b)
        return llm_fail(LLM_ERR_NOMEM, "out of memory");
    b->d = d;
    b->begin = begin;
    b->end = end;
    b->T = T;
    b->seed = seed;
    b->nseq = (len - 1) / (uint64_t)T;
    size_t bytes;
    if (b->nseq > SIZE_MAX || llm_mul_size((size_t)b->nseq, sizeof *b->perm, &bytes) ||
        !(b->perm = malloc(bytes))) {
        free(b);
        return llm_fail(LLM_ERR_NOMEM, "out of memory for %llu sequences",
                        (unsigned long long)len);
    }
    b->perm_epoch = UINT64_MAX;
    *out = b;
    return LLM_OK;
}

int llm_batcher_new_items(const llm_cls_data *docs, uint64_t n, uint64_t seed,
                          llm_batcher **out)
{
    *out = NULL;
    if (n == 0)
        return llm_fail(LLM_ERR_INVALID, "no documents to train on");
    llm_batcher *b = calloc(1, sizeof *b);
    size_t bytes;
    if (!b || n > SIZE_MAX || llm_mul_size((size_t)n, sizeof *b->perm, &bytes) ||
        !(b->perm = malloc(bytes))) {
        free(b);
        return llm_fail(LLM_ERR_NOMEM, "out of memory for %llu documents",
                        (unsigned long long)n);
    }
    b->docs = docs;
    b->seed = seed;
    b->nseq = n;
    b->perm_epoch = UINT64_MAX;
    *out = b;
    return LLM_OK;
}

int llm_batcher_new_pairs(const llm_pairs *p, uint64_t seed, llm_batcher **out)
{
    *out = NULL;
    uint64_t rows = llm_pairs_rows(p);
    if (rows == 0)
        return llm_fail(LLM_ERR_INVALID, "no packed rows of pairs to train on");
    int rc = llm_batcher_new_items(NULL, rows, seed, out);
    if (!rc)
        (*out)->pairs = p;
    return rc;
}

const llm_cls_data *llm_batcher_docs(const llm_batcher *b)
{
    return b->docs;
}

const llm_pairs *llm_batcher_pairs(const llm_batcher *b)
{
    return b->pairs;
}

int llm_batcher_width(const llm_batcher *b)
{
    return b->d ? b->T : 0;
}

static void shuffle(llm_batcher *b, uint64_t epoch);

uint64_t llm_batcher_take(llm_batcher *b)
{
    if (b->perm_epoch != b->pos.epoch)
        shuffle(b, b->pos.epoch);
    uint64_t s = b->perm[b->pos.index];
    if (++b->pos.index == b->nseq) {
        b->pos.index = 0;
        b->pos.epoch++;
    }
    return s;
}

void llm_batcher_skip(llm_batcher *b, uint64_t n)
{
    /* Orders are a function of (seed, epoch) only: no need to build them. */
    n += b->pos.index;
    b->pos.epoch += n / b->nseq;
    b->pos.index = n % b->nseq;
}

void llm_batcher_free(llm_batcher *b)
{
    if (!b)
        return;
    free(b->perm);
    free(b);
}

uint64_t llm_batcher_sequences(const llm_batcher *b)
{
    return b->nseq;
}

llm_data_pos llm_batcher_pos(const llm_batcher *b)
{
    return b->pos;
}

int llm_batcher_seek(llm_batcher *b, llm_data_pos pos)
{
    if (pos.index >= b->nseq)
        return llm_fail(LLM_ERR_RANGE, "data position %llu is past the %llu sequences "
                        "(different data than the checkpoint?)",
                        (unsigned long long)pos.index, (unsigned long long)b->nseq);
    b->pos = pos;
    return LLM_OK;
}

static void shuffle(llm_batcher *b, uint64_t epoch)
{
    llm_rng r;
    llm_rng_seed(&r, b->seed ^ (0x5851f42d4c957f2dULL * (epoch + 1)));
    for (uint64_t i = 0; i < b->nseq; i++)
        b->perm[i] = i;
    for (uint64_t i = b->nseq; i > 1; i--) {       /* Fisher-Yates */
        uint64_t j = llm_rng_below(&r, i);
        uint64_t t = b->perm[i - 1];
        b->perm[i - 1] = b->perm[j];
        b->perm[j] = t;
    }
    b->perm_epoch = epoch;
}

int llm_batcher_next(llm_batcher *b, int B, int32_t *inputs, int32_t *targets)
{
    if (!b->d)
        return llm_fail(LLM_ERR_INVALID, "the batcher is not over token sequences");
    int T = b->T;
    int32_t *tmp = malloc(((size_t)T + 1) * sizeof *tmp);
    if (!tmp)
        return llm_fail(LLM_ERR_NOMEM, "out of memory");
    for (int i = 0; i < B; i++) {
        if (b->perm_epoch != b->pos.epoch)
            shuffle(b, b->pos.epoch);
        uint64_t s = b->perm[b->pos.index];
        int rc = llm_data_read(b->d, b->begin + s * (uint64_t)T, (size_t)T + 1, tmp);
        if (rc) {
            free(tmp);
            return rc;
        }
        memcpy(inputs + (size_t)i * T, tmp, (size_t)T * sizeof *tmp);
        memcpy(targets + (size_t)i * T, tmp + 1, (size_t)T * sizeof *tmp);
        if (++b->pos.index == b->nseq) {
            b->pos.index = 0;
            b->pos.epoch++;
        }
    }
    free(tmp);
    return LLM_OK;
}

/* ------------------------------------------------------------------------ */
/* Learning-rate schedules. */

static const char *const schedule_names[] = { "cosine", "linear", "constant", "wsd" };

const char *llm_schedule_name(llm_schedule_kind kind)
{
    return (unsigned)kind < 4 ? schedule_names[kind] : NULL;
}

int llm_schedule_parse(const char *name, llm_schedule_kind *kind)
{
    const char *const *names = schedule_names;
    for (int i = 0; name && i < 4; i++)
        if (strcmp(name, names[i]) == 0) {
            *kind = (llm_schedule_kind)i;
            return LLM_OK;
        }
    return llm_fail(LLM_ERR_INVALID, "unknown schedule '%s' (cosine, linear, constant, wsd)",
                    name ? name : "(null)");
}

double llm_schedule_lr(const llm_schedule *s, int64_t step)
{
    if (step < s->warmup)
        return s->lr * (double)(step + 1) / (double)s->warmup;
    int64_t span = s->total - s->warmup;
    if (span <= 0 || s->kind == LLM_SCHED_CONSTANT)
        return s->lr;
    double p = (double)(step - s->warmup) / (double)span;   /* 0 .. 1 */
    if (p > 1)
        p = 1;
    double lo = s->min_lr;
    switch (s->kind) {
    case LLM_SCHED_COSINE:
        return lo + 0.5 * (s->lr - lo) * (1 + cos(M_PI * p));
    case LLM_SCHED_LINEAR:
        return s->lr + (lo - s->lr) * p;
    case LLM_SCHED_WSD: {
        /* Warmup-stable-decay: constant, then linear to min_lr over the
         * last decay_fraction of the steps after warmup. */
        double f = s->decay_fraction > 0 ? s->decay_fraction : 0.2;
        if (p <= 1 - f)
            return s->lr;
        return s->lr + (lo - s->lr) * (p - (1 - f)) / f;
    }
    default:
        return s->lr;
    }
}
