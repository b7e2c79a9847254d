/* test_guarded.c: the memory entries of the tables, and the guarded table
 * that the whole suite also runs on (make check-guarded). Checks that
 *  - upload, download, copy and zero move the bytes
 *    they should on cpu, ref and guarded;
 *  - the guarded table computes the cpu table's bits (a product, a norm,
 *    AdamW) from its own memory;
 *  - its memory cannot be read or written from outside the table: a read,
 *    and a write, in a child process die of SIGSEGV, while the same access
 *    through download succeeds; a block stays closed after an entry ran,
 *    and a freed block is gone;
 *  - LLM_KERNELS=guarded turns the "cpu" device into it. */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "kernels.h"

#define TESTRAND_SEED 0x13198a2e03707344ull
#include "testrand.h"

static int failures;

#define FAIL(...) do { failures++; printf("FAIL "); printf(__VA_ARGS__); printf("\n"); } while (0)

static float *dev_from(const llm_kernels *k, const float *h, size_t n)
{
    float *d = k->alloc(n * sizeof *d);
    if (!d) {
        fprintf(stderr, "out of memory\n");
        exit(1);
    }
    k->upload(d, h, n * sizeof *d);
    return d;
}

static void test_moves(const llm_kernels *k)
{
    enum { N = 1000 };
    float h[N], back[N];
    for (int i = 0; i < N; i++)
        h[i] = uniform();
    float *d = dev_from(k, h, N);
    k->download(back, d, sizeof back);
    if (memcmp(h, back, sizeof h))
        FAIL("%s: download does not give back what upload put", k->name);
    /* A copy within the block, between ranges that do not overlap. */
    float want[N];
    memcpy(want, h, sizeof h);
    memcpy(want + 500, want + 3, 400 * sizeof *want);
    k->copy(d + 500, d + 3, 400 * sizeof *d);
    k->download(back, d, sizeof back);
    if (memcmp(want, back, sizeof want))
        FAIL("%s: copy moves the wrong floats", k->name);
    k->zero(d + 10, 20 * sizeof *d);
    memset(want + 10, 0, 20 * sizeof *want);
    k->download(back, d, sizeof back);
    if (memcmp(want, back, sizeof want))
        FAIL("%s: zero clears the wrong floats", k->name);
    k->free(d);
    k->free(NULL);
}

/* The guarded table's results are the cpu table's, bit for bit. */
static void test_same_bits(const llm_kernels *g, const llm_kernels *c)
{
    enum { NR = 7, IC = 37, OC = 19 };
    float x[NR * IC], w[OC * IC], y1[NR * OC], y2[NR * OC], nw[IC], r1[NR], r2[NR];
    for (int i = 0; i < NR * IC; i++)
        x[i] = uniform();
    for (int i = 0; i < OC * IC; i++)
        w[i] = uniform();
    for (int i = 0; i < IC; i++)
        nw[i] = 1 + uniform() / 4;
    c->matmul_forward(y1, x, w, NR, IC, OC);
    float *dx = dev_from(g, x, NR * IC), *dw = dev_from(g, w, OC * IC);
    float *dy = g->alloc(sizeof y2), *dn = dev_from(g, nw, IC), *dr = g->alloc(sizeof r2);
    g->matmul_forward(dy, dx, dw, NR, IC, OC);
    g->download(y2, dy, sizeof y2);
    if (memcmp(y1, y2, sizeof y1))
        FAIL("guarded matmul_forward differs from cpu's");
    float o1[NR * IC], o2[NR * IC];
    c->rmsnorm_forward(o1, r1, x, nw, NR, IC, 1e-5f);
    float *dout = g->alloc(sizeof o2);
    g->rmsnorm_forward(dout, dr, dx, dn, NR, IC, 1e-5f);
    g->download(o2, dout, sizeof o2);
    g->download(r2, dr, sizeof r2);
    if (memcmp(o1, o2, sizeof o1) || memcmp(r1, r2, sizeof r1))
        FAIL("guarded rmsnorm_forward differs from cpu's");
    /* AdamW: p, m, v updated in place. */
    float p[OC * IC], m[OC * IC] = { 0 }, v[OC * IC] = { 0 }, pg[OC * IC];
    memcpy(p, w, sizeof p);
    c->adamw_update(p, x, m, v, OC * IC < NR * IC ? OC * IC : NR * IC, 1e-2f, 0.9f, 0.95f,
                    1e-8f, 0.1f, 1);
    float *dm = g->alloc(sizeof m), *dv = g->alloc(sizeof v);
    g->zero(dm, sizeof m);
    g->zero(dv, sizeof v);
    g->adamw_update(dw, dx, dm, dv, OC * IC < NR * IC ? OC * IC : NR * IC, 1e-2f, 0.9f, 0.95f,
                    1e-8f, 0.1f, 1);
    g->download(pg, dw, sizeof pg);
    if (memcmp(p, pg, sizeof p))
        FAIL("guarded adamw_update differs from cpu's");
    double s1 = c->sum_squares(x, NR * IC), s2 = g->sum_squares(dx, NR * IC);
    if (s1 != s2)
        FAIL("guarded sum_squares %.17g, cpu %.17g", s2, s1);
    float *all[] = { dx, dw, dy, dn, dr, dout, dm, dv };
    for (size_t i = 0; i < sizeof all / sizeof all[0]; i++)
        g->free(all[i]);
}

/* Does fn(p) die of SIGSEGV in a child process? */
static int faults(void (*fn)(volatile float *), float *p)
{
    fflush(stdout);
    pid_t pid = fork();
    if (pid < 0) {
        perror("fork");
        exit(1);
    }
    if (pid == 0) {
        signal(SIGSEGV, SIG_DFL);   /* not a sanitizer's handler, which aborts */
        fn(p);
        _exit(0);
    }
    int st;
    if (waitpid(pid, &st, 0) != pid)
        return 0;
    return WIFSIGNALED(st) && WTERMSIG(st) == SIGSEGV;
}

static void read_one(volatile float *p)
{
    volatile float x = p[5];
    (void)x;
}

static void write_one(volatile float *p)
{
    p[5] = 1.0f;
}

static void test_walls(const llm_kernels *g)
{
    float h[4096];
    for (int i = 0; i < 4096; i++)
        h[i] = (float)i;
    float *d = dev_from(g, h, 4096);
    if (!faults(read_one, d))
        FAIL("reading guarded memory from the host does not fault");
    if (!faults(write_one, d + 1000))
        FAIL("writing guarded memory from the host does not fault");
    /* Closed again after an entry ran. */
    g->scale(d, 4096, 2.0f);
    if (!faults(read_one, d))
        FAIL("guarded memory stays open after a kernel");
    float back[4096];
    g->download(back, d, sizeof back);
    if (back[5] != 10.0f || back[4095] != 8190.0f)
        FAIL("scale through the table: %g and %g, want 10 and 8190", back[5], back[4095]);
    g->free(d);
    if (!faults(read_one, d))
        FAIL("a freed guarded block can still be read");
    /* A fresh block is not zeros: a missing zero() shows. */
    float *u = g->alloc(64 * sizeof *u);
    float f[64];
    g->download(f, u, sizeof f);
    if (f[0] == 0.0f)
        FAIL("a fresh guarded block reads as zeros");
    g->free(u);
}

int main(void)
{
    const llm_kernels *g = llm_kernels_guarded(), *c = llm_kernels_cpu();
    const llm_kernels *tables[] = { c, llm_kernels_ref(), g };
    for (size_t i = 0; i < sizeof tables / sizeof tables[0]; i++)
        test_moves(tables[i]);
    if (!c->host_memory || !llm_kernels_ref()->host_memory || g->host_memory)
        FAIL("host_memory: cpu %d, ref %d, guarded %d; want 1, 1, 0", c->host_memory,
             llm_kernels_ref()->host_memory, g->host_memory);
    test_same_bits(g, c);
    test_walls(g);
    if (llm_kernels_get("guarded") != g)
        FAIL("llm_kernels_get(\"guarded\") is not the guarded table");
    const char *env = getenv("LLM_KERNELS");
    int want_guarded = env && strcmp(env, "guarded") == 0;
    if ((llm_kernels_get("cpu") == g) != want_guarded)
        FAIL("LLM_KERNELS=%s: the cpu device is %s", env ? env : "(unset)",
             llm_kernels_get("cpu")->name);
    if (failures) {
        printf("%d failures\n", failures);
        return 1;
    }
    printf("guarded memory: all checks passed\n");
    return 0;
}
