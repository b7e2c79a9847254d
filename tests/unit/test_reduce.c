/* test_reduce.c: the data-parallel all-reduce hook of the trainer
 * (llm_train_params.reduce), in one process: a rank of 2 whose reduce()
 * plays the other rank as its twin (every gradient and sum doubled, as two
 * ranks with the same micro-batches would give: exact in floats). reduce()
 * handed the gradient block where the model keeps it (reduce_device, as
 * NCCL between GPUs gets it; doubled through the model's own table, since
 * under LLM_KERNELS=guarded the host cannot touch it) takes the same steps,
 * bit for bit, as reduce() on the host copy (as MPI gets it); both see the
 * whole block (the first step's gradient norm is exactly twice that of a
 * reduce() that does nothing), and the same number of floats. */
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kernels.h"
#include "llm.h"

static int failures;

#define FAIL(...) do { failures++; printf("FAIL "); printf(__VA_ARGS__); printf("\n"); } while (0)
#define CHECK_RC(call) do { int rc_ = (call); if (rc_ != LLM_OK) { \
    printf("FAIL %s:%d: %s: %s\n", __FILE__, __LINE__, #call, llm_errmsg()); exit(1); } } while (0)

enum { IDENTITY, HOST, DEVICE };

typedef struct {
    int how;
    const llm_kernels *k;   /* the model's table */
    size_t n;               /* floats of the last block */
    int calls;
} twin;

static int twin_reduce(void *ctx, float *grads, size_t n, double *sums, size_t ns)
{
    twin *t = ctx;
    t->n = n;
    t->calls++;
    if (t->how == IDENTITY)
        return LLM_OK;
    if (t->how == DEVICE)
        t->k->scale(grads, n, 2.0f);
    else
        for (size_t i = 0; i < n; i++)
            grads[i] *= 2.0f;
    for (size_t i = 0; i < ns; i++)
        sums[i] *= 2.0;
    return LLM_OK;
}

#define STEPS 4

typedef struct {
    llm_step_info info[STEPS];
    float eval;     /* the trained model's loss on a fixed batch */
    size_t n;
    int calls;
} outcome;

static outcome train(int how)
{
    llm_config c = { .vocab_size = 11, .dim = 8, .n_layers = 2, .n_heads = 2,
                     .n_kv_heads = 1, .ffn_dim = 12, .context = 6,
                     .rope_base = 10000.0, .norm_eps = 1e-5, .tied = 1 };
    llm_model *m;
    CHECK_RC(llm_model_create(&c, 7, "cpu", &m));
    int32_t ids[600];
    uint64_t s = 12345;
    for (int i = 0; i < 600; i++) {
        s = s * 6364136223846793005ull + 1442695040888963407ull;
        ids[i] = (int32_t)((s >> 33) % 11);
    }
    llm_data *d;
    llm_batcher *b;
    CHECK_RC(llm_data_new(11, &d));
    CHECK_RC(llm_data_add_ids(d, ids, 600));
    CHECK_RC(llm_batcher_new(d, 0, 600, 6, 3, &b));
    llm_train_params p;
    llm_train_defaults(&p);
    p.batch = 2;
    p.seq_len = 6;
    p.accum = 2;
    p.sched.warmup = 1;
    p.sched.total = STEPS;
    p.rank = 0;
    p.world = 2;
    twin t = { how, llm_kernels_get("cpu"), 0, 0 };
    p.reduce = twin_reduce;
    p.reduce_ctx = &t;
    p.reduce_device = how == DEVICE;
    llm_trainer *tr;
    CHECK_RC(llm_trainer_new(m, b, &p, &tr));
    outcome o;
    memset(&o, 0, sizeof o);
    for (int i = 0; i < STEPS; i++)
        CHECK_RC(llm_trainer_step(tr, &o.info[i]));
    CHECK_RC(llm_model_forward(m, ids, ids + 1, 2, 6, &o.eval));
    o.n = t.n;
    o.calls = t.calls;
    llm_trainer_free(tr);
    llm_batcher_free(b);
    llm_data_free(d);
    llm_model_free(m);
    return o;
}

int main(void)
{
    outcome id = train(IDENTITY), host = train(HOST), dev = train(DEVICE);
    if (host.calls != STEPS || dev.calls != STEPS)
        FAIL("reduce() called %d (host) and %d (device) times, not %d", host.calls, dev.calls,
             STEPS);
    if (host.n == 0 || host.n != dev.n || host.n != id.n)
        FAIL("blocks of %zu (host), %zu (device) and %zu floats", host.n, dev.n, id.n);
    if (!(host.info[0].grad_norm == 2 * id.info[0].grad_norm))
        FAIL("host: first gradient norm %.17g, not twice %.17g", host.info[0].grad_norm,
             id.info[0].grad_norm);
    if (!(dev.info[0].grad_norm == 2 * id.info[0].grad_norm))
        FAIL("device: first gradient norm %.17g, not twice %.17g", dev.info[0].grad_norm,
             id.info[0].grad_norm);
    for (int i = 0; i < STEPS; i++)
        if (memcmp(&host.info[i].loss, &dev.info[i].loss, sizeof(double)) ||
            memcmp(&host.info[i].grad_norm, &dev.info[i].grad_norm, sizeof(double)) ||
            host.info[i].tokens != dev.info[i].tokens)
            FAIL("step %d: host loss %.17g norm %.17g tokens %llu, device %.17g %.17g %llu", i + 1,
                 host.info[i].loss, host.info[i].grad_norm,
                 (unsigned long long)host.info[i].tokens, dev.info[i].loss,
                 dev.info[i].grad_norm, (unsigned long long)dev.info[i].tokens);
    if (memcmp(&host.eval, &dev.eval, sizeof(float)))
        FAIL("trained models: loss %.9g (host reduce) against %.9g (device reduce)", host.eval,
             dev.eval);
    if (host.info[STEPS - 1].tokens != 2 * id.info[STEPS - 1].tokens)
        FAIL("tokens %llu, not twice one rank's %llu", (unsigned long long)host.info[3].tokens,
             (unsigned long long)id.info[3].tokens);
    printf("%s: reduce() on the host copy and in device memory, %d steps: %s\n",
           llm_kernels_get("cpu")->name, STEPS, failures ? "FAILED" : "the same bits");
    return failures ? 1 : 0;
}
