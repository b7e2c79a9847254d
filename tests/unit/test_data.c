/* test_data.c: token stream segments, the seeded batcher (coverage, order,
 * resume by position), learning-rate schedules against hand values, and
 * batchers and trainers that do not fit each other refused. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "llm.h"

static int failures;
#define CHECK(c) do { if (!(c)) { fprintf(stderr, "%s:%d: check failed: %s\n", \
    __FILE__, __LINE__, #c); failures++; } } while (0)

static void test_segments(void)
{
    llm_data *d;
    CHECK(llm_data_new(100, &d) == LLM_OK);
    int32_t a[5] = { 1, 2, 3, 4, 5 }, b[3] = { 6, 7, 8 };
    CHECK(llm_data_add_ids(d, a, 5) == LLM_OK);
    CHECK(llm_data_add_ids(d, b, 3) == LLM_OK);
    int32_t bad = 100;
    CHECK(llm_data_add_ids(d, &bad, 1) == LLM_ERR_RANGE);
    CHECK(llm_data_count(d) == 8);
    int32_t out[8];
    CHECK(llm_data_read(d, 3, 4, out) == LLM_OK);   /* crosses the segment boundary */
    CHECK(out[0] == 4 && out[1] == 5 && out[2] == 6 && out[3] == 7);
    CHECK(llm_data_read(d, 6, 3, out) == LLM_ERR_RANGE);

    /* A token file with another vocabulary is refused. */
    char path[] = "data_test.tok";
    FILE *f = fopen(path, "wb");
    llm_tokwriter *w;
    CHECK(f && llm_tokwriter_open(f, 50, &w) == LLM_OK);
    CHECK(llm_tokwriter_write(w, a, 5) == LLM_OK);
    CHECK(llm_tokwriter_close(w) == LLM_OK);
    fclose(f);
    CHECK(llm_data_add_file(d, path) == LLM_ERR_FORMAT);
    CHECK(strstr(llm_errmsg(), "vocabulary size 50") != NULL);
    llm_data_free(d);

    CHECK(llm_data_new(50, &d) == LLM_OK);
    CHECK(llm_data_add_file(d, path) == LLM_OK);
    CHECK(llm_data_add_ids(d, b, 3) == LLM_OK);
    CHECK(llm_data_read(d, 0, 8, out) == LLM_OK);
    for (int i = 0; i < 8; i++)
        CHECK(out[i] == i + 1);
    llm_data_free(d);
    remove(path);
}

static void test_batcher(void)
{
    enum { N = 1001, T = 10, B = 4 };
    int32_t *ids = malloc(N * sizeof *ids);
    for (int i = 0; i < N; i++)
        ids[i] = i % 997;
    llm_data *d;
    CHECK(llm_data_new(997, &d) == LLM_OK);
    CHECK(llm_data_add_ids(d, ids, N) == LLM_OK);
    llm_batcher *bt, *bt2;
    CHECK(llm_batcher_new(d, 0, N, T, 42, &bt) == LLM_OK);
    CHECK(llm_batcher_sequences(bt) == 100);
    CHECK(llm_batcher_new(d, 0, 5, T, 42, &bt2) == LLM_ERR_INVALID);

    /* One epoch = 25 batches of 4: every sequence exactly once, targets
     * are inputs shifted by one. */
    int seen[100] = { 0 };
    int32_t in[B * T], tg[B * T];
    for (int k = 0; k < 25; k++) {
        CHECK(llm_batcher_next(bt, B, in, tg) == LLM_OK);
        for (int i = 0; i < B; i++) {
            int s = in[i * T] / T;
            CHECK(in[i * T] % T == 0);
            if (s >= 0 && s < 100)
                seen[s]++;
            for (int t = 0; t < T; t++)
                CHECK(tg[i * T + t] == (in[i * T + t] + 1) % 997);
        }
    }
    for (int s = 0; s < 100; s++)
        CHECK(seen[s] == 1);
    llm_data_pos p = llm_batcher_pos(bt);
    CHECK(p.epoch == 1 && p.index == 0);

    /* Continue 7 batches; a second batcher seeked to the same position
     * produces the same batches. The second epoch's order differs. */
    int32_t first_e1 = -1;
    CHECK(llm_batcher_next(bt, B, in, tg) == LLM_OK);
    first_e1 = in[0];
    llm_data_pos mid = llm_batcher_pos(bt);
    CHECK(llm_batcher_new(d, 0, N, T, 42, &bt2) == LLM_OK);
    CHECK(llm_batcher_seek(bt2, mid) == LLM_OK);
    int32_t in2[B * T], tg2[B * T];
    for (int k = 0; k < 7; k++) {
        CHECK(llm_batcher_next(bt, B, in, tg) == LLM_OK);
        CHECK(llm_batcher_next(bt2, B, in2, tg2) == LLM_OK);
        CHECK(memcmp(in, in2, sizeof in) == 0 && memcmp(tg, tg2, sizeof tg) == 0);
    }
    llm_batcher_free(bt2);
    /* Another seed gives another order. */
    CHECK(llm_batcher_new(d, 0, N, T, 43, &bt2) == LLM_OK);
    CHECK(llm_batcher_next(bt2, B, in2, tg2) == LLM_OK);
    llm_batcher *bt3;
    CHECK(llm_batcher_new(d, 0, N, T, 42, &bt3) == LLM_OK);
    CHECK(llm_batcher_next(bt3, B, in, tg) == LLM_OK);
    CHECK(memcmp(in, in2, sizeof in) != 0);
    CHECK(first_e1 >= 0);
    CHECK(llm_batcher_seek(bt3, (llm_data_pos){ 0, 100 }) == LLM_ERR_RANGE);
    llm_batcher_free(bt2);
    llm_batcher_free(bt3);
    llm_batcher_free(bt);
    llm_batcher_free(NULL);
    llm_data_free(d);
    free(ids);
}

static int near(double a, double b)
{
    return fabs(a - b) <= 1e-12 + 1e-9 * fabs(b);
}

static void test_schedule(void)
{
    llm_schedule s = { LLM_SCHED_COSINE, 1.0, 0.1, 10, 110, 0 };
    CHECK(near(llm_schedule_lr(&s, 0), 0.1));       /* (0+1)/10 */
    CHECK(near(llm_schedule_lr(&s, 9), 1.0));
    CHECK(near(llm_schedule_lr(&s, 10), 1.0));
    CHECK(near(llm_schedule_lr(&s, 60), 0.55));     /* half way: mid of [0.1, 1] */
    CHECK(near(llm_schedule_lr(&s, 110), 0.1));
    CHECK(near(llm_schedule_lr(&s, 500), 0.1));
    s.kind = LLM_SCHED_LINEAR;
    CHECK(near(llm_schedule_lr(&s, 35), 1.0 - 0.9 * 0.25));
    s.kind = LLM_SCHED_CONSTANT;
    CHECK(near(llm_schedule_lr(&s, 100), 1.0));
    s.kind = LLM_SCHED_WSD;
    s.decay_fraction = 0.5;
    CHECK(near(llm_schedule_lr(&s, 50), 1.0));
    CHECK(near(llm_schedule_lr(&s, 60), 1.0));
    CHECK(near(llm_schedule_lr(&s, 85), 0.55));
    CHECK(near(llm_schedule_lr(&s, 110), 0.1));
    llm_schedule_kind k;
    CHECK(llm_schedule_parse("wsd", &k) == LLM_OK && k == LLM_SCHED_WSD);
    CHECK(llm_schedule_parse("step", &k) == LLM_ERR_INVALID);
    CHECK(llm_schedule_parse(NULL, &k) == LLM_ERR_INVALID);
}

/* Batchers and trainers that do not fit each other are refused before
 * anything is written past a buffer (each of these crashed, or wrote past
 * the trainer's rows, before it was checked). */
static void test_mismatch(void)
{
    llm_config c = { .vocab_size = 32, .dim = 16, .n_layers = 1, .n_heads = 2,
                     .n_kv_heads = 2, .ffn_dim = 32, .context = 64, .rope_base = 1e4,
                     .norm_eps = 1e-5, .tied = 1 };
    llm_model *lm, *cls;
    CHECK(llm_model_create(&c, 1, "cpu", &lm) == LLM_OK);
    CHECK(llm_model_create(&c, 1, "cpu", &cls) == LLM_OK);
    const char *labels[] = { "a", "b" };
    llm_head_params hp = { 2, labels, 0, LLM_POOL_LAST };
    CHECK(llm_model_add_head(cls, &hp, 1) == LLM_OK);
    llm_train_params p;
    llm_train_defaults(&p);
    p.batch = 2;
    p.seq_len = 4;
    llm_trainer *t = NULL;

    /* Token sequences of 64 for a trainer of rows of 4. */
    int32_t ids[1000];
    for (int i = 0; i < 1000; i++)
        ids[i] = i % 32;
    llm_data *d;
    llm_batcher *b;
    CHECK(llm_data_new(32, &d) == LLM_OK);
    CHECK(llm_data_add_ids(d, ids, 1000) == LLM_OK);
    CHECK(llm_batcher_new(d, 0, 1000, 64, 1, &b) == LLM_OK);
    CHECK(llm_trainer_new(lm, b, &p, &t) == LLM_ERR_INVALID && !t);
    CHECK(strstr(llm_errmsg(), "sequences of 64 tokens, sequence length 4") != NULL);
    llm_batcher_free(b);

    /* Documents of 40 tokens for rows of 4; a token batcher's next over
     * documents. */
    llm_cls_data *cd;
    int32_t lab = 0;
    CHECK(llm_cls_data_new(2, &cd) == LLM_OK);
    for (int i = 0; i < 4; i++)
        CHECK(llm_cls_data_add(cd, ids, i == 2 ? 40 : 3, &lab, 1) == LLM_OK);
    CHECK(llm_batcher_new_docs(cd, 1, &b) == LLM_OK);
    CHECK(llm_trainer_new(cls, b, &p, &t) == LLM_ERR_INVALID && !t);
    CHECK(strstr(llm_errmsg(), "document 3 has 40 tokens, more than the sequence length 4"));
    int32_t in[64], tg[64];
    CHECK(llm_batcher_next(b, 1, in, tg) == LLM_ERR_INVALID);
    p.seq_len = 40;
    CHECK(llm_trainer_new(cls, b, &p, &t) == LLM_OK && t);
    llm_trainer_free(t);
    llm_batcher_free(b);
    llm_cls_data_free(cd);
    llm_data_free(d);
    llm_model_free(lm);
    llm_model_free(cls);
}

int main(void)
{
    test_segments();
    test_batcher();
    test_schedule();
    test_mismatch();
    if (failures) {
        fprintf(stderr, "test_data: %d checks failed\n", failures);
        return 1;
    }
    printf("test_data: all checks passed\n");
    return 0;
}
