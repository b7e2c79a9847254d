/* test_cuda_kernels.c: every CUDA kernel, forward and backward, against the
 * reference kernels on random inputs of several shapes (odd sizes, T across
 * tile and warp sizes, grouped-query attention, packed documents), plus run-to-run bitwise
 * determinism of the kernels that reduce; the inference entries
 * (matmul_rows, matmul_rows_packed, attention_rows, to_half, linear_f64,
 * dropout) bit for bit where their contracts fix the order, each row alone
 * against the same row in a batch. Exits 77 with "no CUDA device"
 * when no GPU can be used.
 *
 * The CUDA table is wrapped in a host-memory table (h_*): each wrapper copies
 * every argument to the device (outputs too, so that "=" kernels are seen to
 * overwrite and "+=" kernels to add to what was there), runs the kernel and
 * copies the outputs back. The tests then treat both tables alike.
 *
 * Tolerances, |cuda - ref| <= atol + rtol * |ref| (the reference computes in
 * double, CUDA in fp32):
 *   exact copies and single float operations (embedding forward and
 *   backward, residual, scale): bitwise;
 *   matrix products (fp32 sums over up to ~2300 terms): 1e-4, 1e-4;
 *   flash attention (fp32, expf; the reference's probabilities in double):
 *   out 1e-5, 1e-4; the saved log-sum-exps 1e-5, 1e-5 (against
 *   lse_reference()); the gradients, each backend from its own forward:
 *   1e-4, 1e-4;
 *   bf16 products (against the reference's of the same rounded inputs): 2e-4, 2e-4;
 *   rmsnorm: 1e-5, 1e-5 forward, 1e-4, 1e-4 backward;
 *   rope, swiglu, cross-entropy, adamw (a few roundings each): 1e-6..1e-5;
 *   sum_squares (double): 1e-9 relative;
 *   attention_rows: 1e-5, 1e-4 (the others of that section: bitwise). */
#include <math.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cpu/cpu.h"     /* the base level's sampler entries */
#include "cuda/cuda.h"
#include "half.h"
#include "kernels.h"

#define TESTRAND_SEED 0x2545f4914f6cdd1dull
#include "../unit/testrand.h"

static const llm_kernels *K;   /* the CUDA table, device pointers */
static int passed, failed;

/* ------------------------------------------------------------ host side */


static float *rnd(size_t n)
{
    float *p = xmalloc(n * sizeof *p);
    for (size_t i = 0; i < n; i++)
        p[i] = uniform();
    return p;
}

static float *dup(const float *a, size_t n)
{
    float *p = xmalloc(n * sizeof *p);
    memcpy(p, a, n * sizeof *p);
    return p;
}

static int32_t *tokens(int N, int V)
{
    int32_t *t = xmalloc((size_t)N * sizeof *t);
    for (int n = 0; n < N; n++)   /* every third id is 0 or 1: long runs */
        t[n] = (int32_t)(next_u64() % (uint64_t)(n % 3 == 0 ? (V < 2 ? V : 2) : V));
    return t;
}

/* ------------------------------------------------------------ checks */

static void result(const char *what, int ok, const char *detail)
{
    if (ok)
        passed++;
    else
        failed++;
    printf("%s %s%s%s\n", ok ? "PASS" : "FAIL", what, detail[0] ? ": " : "", detail);
    fflush(stdout);
}

/* Reports the worst element, and on success how close to the limit the
 * worst one came (ratio = max |d| / limit), to help set tolerances. */
static void check(const char *what, const float *got, const float *ref, size_t n,
                  double atol, double rtol)
{
    size_t bad = 0, worst = 0;
    double wratio = -1, maxd = 0;
    for (size_t i = 0; i < n; i++) {
        double d = fabs((double)got[i] - ref[i]), lim = atol + rtol * fabs(ref[i]);
        double ratio = isnan(d) ? INFINITY : d / lim;
        if (!(d <= lim))
            bad++;
        if (ratio > wratio) {
            wratio = ratio;
            worst = i;
        }
        if (d > maxd)
            maxd = d;
    }
    char detail[200];
    if (bad)
        snprintf(detail, sizeof detail,
                 "%zu of %zu differ; worst [%zu] got %.9g want %.9g (atol %g rtol %g)",
                 bad, n, worst, n ? got[worst] : 0.0f, n ? ref[worst] : 0.0f, atol, rtol);
    else
        snprintf(detail, sizeof detail, "max |d| %.3g, worst/limit %.3f", maxd,
                 wratio < 0 ? 0.0 : wratio);
    result(what, bad == 0, detail);
}

static void check_bits(const char *what, const void *a, const void *b, size_t bytes)
{
    result(what, memcmp(a, b, bytes) == 0, memcmp(a, b, bytes) ? "not bitwise identical" : "");
}

/* A kernel failure recorded by the backend fails the test that caused it. */
static void check_errors(const char *what)
{
    if (llm_cuda_sync() != 0) {
        char detail[300];
        snprintf(detail, sizeof detail, "CUDA error: %s",
                 llm_cuda_errmsg() ? llm_cuda_errmsg() : "?");
        result(what, 0, detail);
        llm_cuda_clear_error();
    }
}

/* ------------------------------------------------------------ device copies */

static void *dput(const void *h, size_t bytes)
{
    void *d = NULL;
    if (bytes == 0)
        return NULL;
    if (llm_cuda_alloc(&d, bytes) != 0 || llm_cuda_h2d(d, h, bytes) != 0) {
        fprintf(stderr, "test_cuda_kernels: %s\n", llm_cuda_errmsg());
        exit(1);
    }
    return d;
}

static void dget(void *h, const void *d, size_t bytes)
{
    if (bytes && llm_cuda_d2h(h, d, bytes) != 0) {
        fprintf(stderr, "test_cuda_kernels: %s\n", llm_cuda_errmsg());
        exit(1);
    }
}

static void dback(void *h, void *d, size_t bytes)   /* copy back and free */
{
    dget(h, d, bytes);
    llm_cuda_free(d);
}

#define F4 sizeof(float)

/* ------------------------------------------------------------ host wrappers */

static void h_matmul_forward(float *out, const float *inp, const float *w, int N, int IC, int OC)
{
    float *o = dput(out, (size_t)N * OC * F4), *i = dput(inp, (size_t)N * IC * F4);
    float *ww = dput(w, (size_t)OC * IC * F4);
    K->matmul_forward(o, i, ww, N, IC, OC);
    dback(out, o, (size_t)N * OC * F4);
    llm_cuda_free(i);
    llm_cuda_free(ww);
}

static void h_matmul_backward(float *dinp, float *dw, const float *dout, const float *inp,
                              const float *w, int N, int IC, int OC)
{
    float *di = dinp ? dput(dinp, (size_t)N * IC * F4) : NULL;
    float *dww = dput(dw, (size_t)OC * IC * F4), *dd = dput(dout, (size_t)N * OC * F4);
    float *i = dput(inp, (size_t)N * IC * F4), *ww = dput(w, (size_t)OC * IC * F4);
    K->matmul_backward(di, dww, dd, i, ww, N, IC, OC);
    if (di)
        dback(dinp, di, (size_t)N * IC * F4);
    dback(dw, dww, (size_t)OC * IC * F4);
    llm_cuda_free(dd);
    llm_cuda_free(i);
    llm_cuda_free(ww);
}

static int max_token(const int32_t *tok, int N)
{
    int v = 0;
    for (int n = 0; n < N; n++)
        v = tok[n] > v ? tok[n] : v;
    return v + 1;
}

static void h_embedding_forward(float *out, const int32_t *tok, const float *wte, int N, int C)
{
    int V = max_token(tok, N);
    float *o = dput(out, (size_t)N * C * F4), *w = dput(wte, (size_t)V * C * F4);
    int32_t *t = dput(tok, (size_t)N * 4);
    K->embedding_forward(o, t, w, N, C);
    dback(out, o, (size_t)N * C * F4);
    llm_cuda_free(w);
    llm_cuda_free(t);
}

static void h_embedding_backward(float *dwte, const float *dout, const int32_t *tok, int N, int C)
{
    int V = max_token(tok, N);
    float *d = dput(dwte, (size_t)V * C * F4), *g = dput(dout, (size_t)N * C * F4);
    int32_t *t = dput(tok, (size_t)N * 4);
    K->embedding_backward(d, g, t, N, C);
    dback(dwte, d, (size_t)V * C * F4);
    llm_cuda_free(g);
    llm_cuda_free(t);
}

static void h_rmsnorm_forward(float *out, float *rstd, const float *inp, const float *w,
                              int N, int C, float eps)
{
    float *o = dput(out, (size_t)N * C * F4), *r = dput(rstd, (size_t)N * F4);
    float *x = dput(inp, (size_t)N * C * F4), *ww = dput(w, (size_t)C * F4);
    K->rmsnorm_forward(o, r, x, ww, N, C, eps);
    dback(out, o, (size_t)N * C * F4);
    dback(rstd, r, (size_t)N * F4);
    llm_cuda_free(x);
    llm_cuda_free(ww);
}

static void h_rmsnorm_backward(float *dinp, float *dw, const float *dout, const float *inp,
                               const float *w, const float *rstd, int N, int C)
{
    size_t nc = (size_t)N * C * F4;
    float *dx = dput(dinp, nc), *dww = dput(dw, (size_t)C * F4), *dy = dput(dout, nc);
    float *x = dput(inp, nc), *ww = dput(w, (size_t)C * F4), *r = dput(rstd, (size_t)N * F4);
    K->rmsnorm_backward(dx, dww, dy, x, ww, r, N, C);
    dback(dinp, dx, nc);
    dback(dw, dww, (size_t)C * F4);
    llm_cuda_free(dy);
    llm_cuda_free(x);
    llm_cuda_free(ww);
    llm_cuda_free(r);
}

static void h_rope(float *x, const float *c, const float *s, int B, int T, int nh, int hd,
                   int stride, int backward)
{
    size_t n = (size_t)B * T * stride * F4, nt = (size_t)T * (hd / 2) * F4;
    float *dx = dput(x, n), *dc = dput(c, nt), *ds = dput(s, nt);
    if (backward)
        K->rope_backward(dx, dc, ds, B, T, nh, hd, stride);
    else
        K->rope_forward(dx, dc, ds, B, T, nh, hd, stride);
    dback(x, dx, n);
    llm_cuda_free(dc);
    llm_cuda_free(ds);
}

static void h_rope_forward(float *x, const float *c, const float *s, int B, int T, int nh,
                           int hd, int stride)
{
    h_rope(x, c, s, B, T, nh, hd, stride, 0);
}

static void h_rope_backward(float *x, const float *c, const float *s, int B, int T, int nh,
                            int hd, int stride)
{
    h_rope(x, c, s, B, T, nh, hd, stride, 1);
}

static size_t h_attention_saved(int B, int T, int H)
{
    return K->attention_saved(B, T, H);
}

static size_t h_attention_scratch(int B, int T, int H, int KVH, int hd, int backward)
{
    return K->attention_scratch(B, T, H, KVH, hd, backward);
}

/* The forward takes no scratch on cuda (attention_scratch(..., 0) is 0). */
static void h_attention_forward(float *out, float *saved, float *scratch, const float *qkv,
                                const int32_t *start, int B, int T, int H, int KVH, int hd)
{
    (void)scratch;
    size_t nq = (size_t)B * T * (H + 2 * KVH) * hd * F4, no = (size_t)B * T * H * hd * F4;
    size_t ns = K->attention_saved(B, T, H) * F4;
    float *o = dput(out, no), *a = dput(saved, ns), *q = dput(qkv, nq);
    int32_t *st = start ? dput(start, (size_t)B * T * 4) : NULL;
    K->attention_forward(o, a, NULL, q, st, B, T, H, KVH, hd);
    dback(out, o, no);
    dback(saved, a, ns);
    llm_cuda_free(q);
    if (st)
        llm_cuda_free(st);
}

static void h_attention_backward(float *dqkv, float *scratch, const float *dout,
                                 const float *qkv, const float *out, const float *saved,
                                 const int32_t *start, int B, int T, int H, int KVH, int hd)
{
    size_t nq = (size_t)B * T * (H + 2 * KVH) * hd * F4, no = (size_t)B * T * H * hd * F4;
    size_t ns = K->attention_saved(B, T, H) * F4;
    float *d = dput(dqkv, nq), *g = dput(dout, no), *q = dput(qkv, nq), *o = dput(out, no);
    float *a = dput(saved, ns);
    int32_t *st = start ? dput(start, (size_t)B * T * 4) : NULL;
    size_t nsc = K->attention_scratch(B, T, H, KVH, hd, 1) * F4;
    float *s = NULL;
    if (scratch)
        s = dput(scratch, nsc);
    else if (llm_cuda_alloc((void **)&s, nsc) != 0)
        exit(1);
    K->attention_backward(d, s, g, q, o, a, st, B, T, H, KVH, hd);
    dback(dqkv, d, nq);
    llm_cuda_free(s);
    llm_cuda_free(g);
    llm_cuda_free(q);
    llm_cuda_free(o);
    llm_cuda_free(a);
    if (st)
        llm_cuda_free(st);
}

static void h_swiglu_forward(float *out, const float *h13, int N, int F)
{
    float *o = dput(out, (size_t)N * F * F4), *h = dput(h13, (size_t)N * 2 * F * F4);
    K->swiglu_forward(o, h, N, F);
    dback(out, o, (size_t)N * F * F4);
    llm_cuda_free(h);
}

static void h_swiglu_backward(float *dh13, const float *dout, const float *h13, int N, int F)
{
    size_t n2 = (size_t)N * 2 * F * F4;
    float *d = dput(dh13, n2), *o = dput(dout, (size_t)N * F * F4), *h = dput(h13, n2);
    K->swiglu_backward(d, o, h, N, F);
    dback(dh13, d, n2);
    llm_cuda_free(o);
    llm_cuda_free(h);
}

static void h_residual_forward(float *out, const float *a, const float *b, size_t n)
{
    float *o = dput(out, n * F4);   /* out may alias a or b: so may the copies */
    float *da = a == out ? o : dput(a, n * F4), *db = b == out ? o : dput(b, n * F4);
    K->residual_forward(o, da, db, n);
    dback(out, o, n * F4);
    if (da != o)
        llm_cuda_free(da);
    if (db != o)
        llm_cuda_free(db);
}

static void h_crossentropy_forward(float *losses, float *dlogits, const float *logits,
                                   const int32_t *targets, int N, int V, float dscale,
                                   float eps)
{
    size_t nl = (size_t)N * V * F4;
    float *l = dput(logits, nl), *lo = dput(losses, (size_t)N * F4);
    float *d = dlogits == logits ? l : dlogits ? dput(dlogits, nl) : NULL;
    int32_t *t = dput(targets, (size_t)N * 4);
    K->crossentropy_forward(lo, d, l, t, N, V, dscale, eps);
    dback(losses, lo, (size_t)N * F4);
    if (d)
        dget(dlogits, d, nl);
    if (d && d != l)
        llm_cuda_free(d);
    llm_cuda_free(l);
    llm_cuda_free(t);
}

static void h_adamw_update(float *p, const float *g, float *m, float *v, size_t n, float lr,
                           float beta1, float beta2, float eps, float wd, int t)
{
    float *dp = dput(p, n * F4), *dg = dput(g, n * F4), *dm = dput(m, n * F4);
    float *dv = dput(v, n * F4);
    K->adamw_update(dp, dg, dm, dv, n, lr, beta1, beta2, eps, wd, t);
    dback(p, dp, n * F4);
    dback(m, dm, n * F4);
    dback(v, dv, n * F4);
    llm_cuda_free(dg);
}

static double h_sum_squares(const float *x, size_t n)
{
    float *d = dput(x, n * F4);
    double s = K->sum_squares(d, n);
    llm_cuda_free(d);
    return s;
}

static void h_scale(float *x, size_t n, float s)
{
    float *d = dput(x, n * F4);
    K->scale(d, n, s);
    dback(x, d, n * F4);
}

static const llm_kernels host_cuda = {
    .name = "cuda (host copies)",
    .matmul_forward = h_matmul_forward,
    .matmul_backward = h_matmul_backward,
    .embedding_forward = h_embedding_forward,
    .embedding_backward = h_embedding_backward,
    .rmsnorm_forward = h_rmsnorm_forward,
    .rmsnorm_backward = h_rmsnorm_backward,
    .rope_forward = h_rope_forward,
    .rope_backward = h_rope_backward,
    .attention_saved = h_attention_saved,
    .attention_scratch = h_attention_scratch,
    .attention_forward = h_attention_forward,
    .attention_backward = h_attention_backward,
    .swiglu_forward = h_swiglu_forward,
    .swiglu_backward = h_swiglu_backward,
    .residual_forward = h_residual_forward,
    .crossentropy_forward = h_crossentropy_forward,
    .adamw_update = h_adamw_update,
    .sum_squares = h_sum_squares,
    .scale = h_scale,
};

/* ------------------------------------------------------------ tests */

static void test_matmul(const llm_kernels *f, const llm_kernels *r, int N, int IC, int OC)
{
    char what[128];
    float *inp = rnd((size_t)N * IC), *w = rnd((size_t)OC * IC), *dout = rnd((size_t)N * OC);
    float *o1 = rnd((size_t)N * OC), *o2 = rnd((size_t)N * OC);
    f->matmul_forward(o1, inp, w, N, IC, OC);
    r->matmul_forward(o2, inp, w, N, IC, OC);
    snprintf(what, sizeof what, "matmul_forward N=%d IC=%d OC=%d", N, IC, OC);
    check_errors(what);
    check(what, o1, o2, (size_t)N * OC, 1e-4, 1e-4);

    float *di1 = rnd((size_t)N * IC), *di2 = rnd((size_t)N * IC);
    float *dw1 = rnd((size_t)OC * IC), *dw2 = dup(dw1, (size_t)OC * IC);
    f->matmul_backward(di1, dw1, dout, inp, w, N, IC, OC);
    r->matmul_backward(di2, dw2, dout, inp, w, N, IC, OC);
    snprintf(what, sizeof what, "matmul_backward dinp N=%d IC=%d OC=%d", N, IC, OC);
    check_errors(what);
    check(what, di1, di2, (size_t)N * IC, 1e-4, 1e-4);
    snprintf(what, sizeof what, "matmul_backward dw N=%d IC=%d OC=%d", N, IC, OC);
    check(what, dw1, dw2, (size_t)OC * IC, 1e-4, 1e-4);

    /* dinp NULL: only dw, added a second time. */
    f->matmul_backward(NULL, dw1, dout, inp, w, N, IC, OC);
    r->matmul_backward(NULL, dw2, dout, inp, w, N, IC, OC);
    snprintf(what, sizeof what, "matmul_backward dinp=NULL N=%d IC=%d OC=%d", N, IC, OC);
    check_errors(what);
    check(what, dw1, dw2, (size_t)OC * IC, 2e-4, 1e-4);
    free(inp); free(w); free(dout); free(o1); free(o2);
    free(di1); free(di2); free(dw1); free(dw2);
}

/* The bf16 products against the reference's (the same products of the
 * rounded inputs, summed in double): the inputs' rounding is exact on both
 * sides, the sums are fp32 on tensor cores; 2e-4 + 2e-4 |ref| (inputs left
 * unrounded, or rounded by truncation, miss by ~1e-2 at these sizes). */
static void test_matmul_bf16(const llm_kernels *r, int N, int IC, int OC)
{
    char what[128];
    size_t ni = (size_t)N * IC, nw = (size_t)OC * IC, no = (size_t)N * OC;
    float *inp = rnd(ni), *w = rnd(nw), *dout = rnd(no), *o1 = rnd(no), *o2 = rnd(no);
    float *di1 = rnd(ni), *di2 = rnd(ni), *dw1 = rnd(nw), *dw2 = dup(dw1, nw);
    float *d_inp = dput(inp, ni * F4), *d_w = dput(w, nw * F4), *d_dout = dput(dout, no * F4);
    float *d_o = dput(o1, no * F4), *d_di = dput(di1, ni * F4), *d_dw = dput(dw1, nw * F4);
    K->matmul_forward_bf16(d_o, d_inp, d_w, N, IC, OC);
    K->matmul_backward_bf16(d_di, d_dw, d_dout, d_inp, d_w, N, IC, OC);
    r->matmul_forward_bf16(o2, inp, w, N, IC, OC);
    r->matmul_backward_bf16(di2, dw2, dout, inp, w, N, IC, OC);
    snprintf(what, sizeof what, "matmul_forward_bf16 N=%d IC=%d OC=%d", N, IC, OC);
    check_errors(what);
    dback(o1, d_o, no * F4);
    check(what, o1, o2, no, 2e-4, 2e-4);
    snprintf(what, sizeof what, "matmul_backward_bf16 dinp N=%d IC=%d OC=%d", N, IC, OC);
    dback(di1, d_di, ni * F4);
    check(what, di1, di2, ni, 2e-4, 2e-4);
    snprintf(what, sizeof what, "matmul_backward_bf16 dw N=%d IC=%d OC=%d", N, IC, OC);
    dget(dw1, d_dw, nw * F4);
    check(what, dw1, dw2, nw, 2e-4, 2e-4);
    /* dinp NULL (a frozen input): dw alone, added a second time. */
    K->matmul_backward_bf16(NULL, d_dw, d_dout, d_inp, d_w, N, IC, OC);
    r->matmul_backward_bf16(NULL, dw2, dout, inp, w, N, IC, OC);
    snprintf(what, sizeof what, "matmul_backward_bf16 dinp=NULL N=%d IC=%d OC=%d", N, IC, OC);
    check_errors(what);
    dback(dw1, d_dw, nw * F4);
    check(what, dw1, dw2, nw, 4e-4, 2e-4);
    free(inp); free(w); free(dout); free(o1); free(o2); free(di1); free(di2);
    free(dw1); free(dw2);
    llm_cuda_free(d_inp); llm_cuda_free(d_w); llm_cuda_free(d_dout);
}

static void test_embedding(const llm_kernels *f, const llm_kernels *r, int N, int V, int C)
{
    char what[128];
    int32_t *tok = tokens(N, V);
    int Vu = max_token(tok, N);   /* the wrappers copy rows [0, Vu) */
    float *wte = rnd((size_t)Vu * C), *o1 = rnd((size_t)N * C), *o2 = rnd((size_t)N * C);
    f->embedding_forward(o1, tok, wte, N, C);
    r->embedding_forward(o2, tok, wte, N, C);
    snprintf(what, sizeof what, "embedding_forward N=%d V=%d C=%d", N, V, C);
    check_errors(what);
    check_bits(what, o1, o2, (size_t)N * C * F4);
    /* Same order of float additions as the reference: bitwise. */
    float *dout = rnd((size_t)N * C), *d1 = rnd((size_t)Vu * C), *d2 = dup(d1, (size_t)Vu * C);
    f->embedding_backward(d1, dout, tok, N, C);
    r->embedding_backward(d2, dout, tok, N, C);
    snprintf(what, sizeof what, "embedding_backward N=%d V=%d C=%d", N, V, C);
    check_errors(what);
    check_bits(what, d1, d2, (size_t)Vu * C * F4);
    free(tok); free(wte); free(o1); free(o2); free(dout); free(d1); free(d2);
}

static void test_rmsnorm(const llm_kernels *f, const llm_kernels *r, int N, int C)
{
    char what[128];
    float *x = rnd((size_t)N * C), *w = rnd(C);
    float *o1 = rnd((size_t)N * C), *o2 = rnd((size_t)N * C), *s1 = rnd(N), *s2 = rnd(N);
    f->rmsnorm_forward(o1, s1, x, w, N, C, 1e-5f);
    r->rmsnorm_forward(o2, s2, x, w, N, C, 1e-5f);
    snprintf(what, sizeof what, "rmsnorm_forward out N=%d C=%d", N, C);
    check_errors(what);
    check(what, o1, o2, (size_t)N * C, 1e-5, 1e-5);
    snprintf(what, sizeof what, "rmsnorm_forward rstd N=%d C=%d", N, C);
    check(what, s1, s2, N, 1e-5, 1e-5);
    float *dout = rnd((size_t)N * C), *dx1 = rnd((size_t)N * C), *dx2 = dup(dx1, (size_t)N * C);
    float *dw1 = rnd(C), *dw2 = dup(dw1, C);
    f->rmsnorm_backward(dx1, dw1, dout, x, w, s2, N, C);
    r->rmsnorm_backward(dx2, dw2, dout, x, w, s2, N, C);
    snprintf(what, sizeof what, "rmsnorm_backward dinp N=%d C=%d", N, C);
    check_errors(what);
    check(what, dx1, dx2, (size_t)N * C, 1e-4, 1e-4);
    snprintf(what, sizeof what, "rmsnorm_backward dw N=%d C=%d", N, C);
    /* dw sums N terms; the reference adds them in float, one by one. */
    check(what, dw1, dw2, C, 1e-4 * (1 + N / 1000), 1e-4);
    free(x); free(w); free(o1); free(o2); free(s1); free(s2);
    free(dout); free(dx1); free(dx2); free(dw1); free(dw2);
}

static void rope_tables(int T, int hd, float **c, float **s)
{
    *c = xmalloc((size_t)T * (hd / 2) * sizeof **c);
    *s = xmalloc((size_t)T * (hd / 2) * sizeof **s);
    for (int t = 0; t < T; t++)
        for (int i = 0; i < hd / 2; i++) {
            double a = t * pow(10000.0, -2.0 * i / hd);
            (*c)[(size_t)t * (hd / 2) + i] = (float)cos(a);
            (*s)[(size_t)t * (hd / 2) + i] = (float)sin(a);
        }
}

static void test_rope(const llm_kernels *f, const llm_kernels *r, int B, int T, int nh, int hd,
                      int tail)
{
    char what[128];
    int stride = nh * hd + tail;   /* a tail the kernel must leave alone */
    size_t n = (size_t)B * T * stride;
    float *c, *s;
    rope_tables(T, hd, &c, &s);
    float *x1 = rnd(n), *x2 = dup(x1, n);
    f->rope_forward(x1, c, s, B, T, nh, hd, stride);
    r->rope_forward(x2, c, s, B, T, nh, hd, stride);
    snprintf(what, sizeof what, "rope_forward B=%d T=%d nh=%d hd=%d stride=%d", B, T, nh, hd, stride);
    check_errors(what);
    check(what, x1, x2, n, 1e-6, 1e-6);
    f->rope_backward(x1, c, s, B, T, nh, hd, stride);
    r->rope_backward(x2, c, s, B, T, nh, hd, stride);
    snprintf(what, sizeof what, "rope_backward B=%d T=%d nh=%d hd=%d stride=%d", B, T, nh, hd, stride);
    check_errors(what);
    check(what, x1, x2, n, 1e-6, 1e-6);
    free(c); free(s); free(x1); free(x2);
}

/* Documents of 1 to 2 * mean positions packed into rows of T. */
static int32_t *random_starts(int B, int T, int mean)
{
    int32_t *st = (int32_t *)malloc((size_t)B * T * sizeof *st);
    if (!st)
        abort();
    for (int b = 0; b < B; b++)
        for (int t = 0, s = 0, left = 0; t < T; t++) {
            if (left == 0) {
                s = t;
                left = 1 + (int)(rand() % (unsigned)(2 * mean));
            }
            st[(size_t)b * T + t] = s;
            left--;
        }
    return st;
}

/* Each query's log-sum-exp of its scaled scores over keys [start, t], in
 * double: what the CUDA forward saves. */
static void lse_reference(double *lse, const float *qkv, const int32_t *st, int B, int T, int H,
                          int KVH, int hd)
{
    int QS = (H + 2 * KVH) * hd, rep = H / KVH;
    double scale = 1.0 / sqrt((double)hd);
    for (int b = 0; b < B; b++)
        for (int h = 0; h < H; h++)
            for (int t = 0; t < T; t++) {
                const float *q = qkv + ((size_t)b * T + t) * QS + (size_t)h * hd;
                int s0 = st ? st[(size_t)b * T + t] : 0;
                double mx = -INFINITY, sum = 0;
                for (int pass = 0; pass < 2; pass++)
                    for (int s = s0; s <= t; s++) {
                        const float *k = qkv + ((size_t)b * T + s) * QS + (size_t)(H + h / rep) * hd;
                        double d = 0;
                        for (int i = 0; i < hd; i++)
                            d += (double)q[i] * k[i];
                        d *= scale;
                        if (pass == 0)
                            mx = d > mx ? d : mx;
                        else
                            sum += exp(d - mx);
                    }
                lse[((size_t)b * H + h) * T + t] = mx + log(sum);
            }
}

/* Flash attention (cuda) against the reference's (B, H, T, T) one: the
 * outputs; the saved log-sum-exps against lse_reference(); the gradients
 * from each backend's own forward (cuda's out and lse, the reference's
 * probabilities), under the same starts. */
static void test_attention(const llm_kernels *f, const llm_kernels *r,
                           int B, int T, int H, int KVH, int hd, int packed)
{
    char what[160];
    int QS = (H + 2 * KVH) * hd;
    size_t nq = (size_t)B * T * QS, no = (size_t)B * T * H * hd, na = (size_t)B * H * T * T;
    size_t ns = f->attention_saved(B, T, H);
    float *qkv = rnd(nq);
    for (size_t i = 0; i < nq; i++)
        qkv[i] *= 2.0f;   /* peakier softmax */
    float *o1 = rnd(no), *o2 = rnd(no), *s1 = rnd(ns), *a2 = rnd(na);
    int32_t *st = packed ? random_starts(B, T, packed) : NULL;
    f->attention_forward(o1, s1, NULL, qkv, st, B, T, H, KVH, hd);
    r->attention_forward(o2, a2, NULL, qkv, st, B, T, H, KVH, hd);
    char shape[96];
    snprintf(shape, sizeof shape, "B=%d T=%d H=%d KVH=%d hd=%d%s", B, T, H, KVH, hd,
             packed ? " packed" : "");
    snprintf(what, sizeof what, "attention_forward out %s", shape);
    check_errors(what);
    check(what, o1, o2, no, 1e-5, 1e-4);
    double *lse = xmalloc((size_t)B * H * T * sizeof *lse);
    float *lsef = xmalloc((size_t)B * H * T * sizeof *lsef);
    lse_reference(lse, qkv, st, B, T, H, KVH, hd);
    for (size_t i = 0; i < (size_t)B * H * T; i++)
        lsef[i] = (float)lse[i];
    snprintf(what, sizeof what, "attention_forward saved log-sum-exps %s", shape);
    result("attention_saved is (B, H, T)", ns == (size_t)B * H * T, "");
    check(what, s1, lsef, (size_t)B * H * T, 1e-5, 1e-5);
    float *dout = rnd(no), *d1 = rnd(nq), *d2 = rnd(nq);
    float *scr = rnd(f->attention_scratch(B, T, H, KVH, hd, 1));
    f->attention_backward(d1, scr, dout, qkv, o1, s1, st, B, T, H, KVH, hd);
    r->attention_backward(d2, NULL, dout, qkv, o2, a2, st, B, T, H, KVH, hd);
    snprintf(what, sizeof what, "attention_backward %s", shape);
    check_errors(what);
    check(what, d1, d2, nq, 1e-4, 1e-4);
    free(qkv); free(o1); free(o2); free(s1); free(a2); free(st); free(lse); free(lsef);
    free(dout); free(d1); free(d2); free(scr);
}

static void test_swiglu(const llm_kernels *f, const llm_kernels *r, int N, int F)
{
    char what[128];
    float *h = rnd((size_t)N * 2 * F);
    for (size_t i = 0; i < (size_t)N * 2 * F; i++)
        h[i] *= 6.0f;
    float *o1 = rnd((size_t)N * F), *o2 = rnd((size_t)N * F), *dout = rnd((size_t)N * F);
    float *d1 = rnd((size_t)N * 2 * F), *d2 = rnd((size_t)N * 2 * F);
    f->swiglu_forward(o1, h, N, F);
    r->swiglu_forward(o2, h, N, F);
    snprintf(what, sizeof what, "swiglu_forward N=%d F=%d", N, F);
    check_errors(what);
    check(what, o1, o2, (size_t)N * F, 1e-6, 1e-5);
    f->swiglu_backward(d1, dout, h, N, F);
    r->swiglu_backward(d2, dout, h, N, F);
    snprintf(what, sizeof what, "swiglu_backward N=%d F=%d", N, F);
    check_errors(what);
    check(what, d1, d2, (size_t)N * 2 * F, 1e-6, 1e-5);
    free(h); free(o1); free(o2); free(dout); free(d1); free(d2);
}

static void test_crossentropy(const llm_kernels *f, const llm_kernels *r, int N, int V,
                              float eps)
{
    char what[128];
    size_t n = (size_t)N * V;
    float *l = rnd(n);
    for (size_t i = 0; i < n; i++)
        l[i] *= 8.0f;
    int32_t *y = xmalloc((size_t)N * sizeof *y);
    for (int i = 0; i < N; i++)
        y[i] = i % 5 == 2 ? -1 : (int32_t)(next_u64() % (uint64_t)V);
    float *l1 = rnd(N), *l2 = rnd(N), *l3 = rnd(N), *d1 = rnd(n), *d2 = rnd(n);
    float *inplace = dup(l, n);
    float dscale = 1.0f / (float)N;
    f->crossentropy_forward(l1, NULL, l, y, N, V, dscale, eps);
    r->crossentropy_forward(l2, d2, l, y, N, V, dscale, eps);
    snprintf(what, sizeof what, "crossentropy_forward losses (no dlogits) N=%d V=%d", N, V);
    check_errors(what);
    check(what, l1, l2, N, 1e-5, 1e-5);
    f->crossentropy_forward(l3, d1, l, y, N, V, dscale, eps);
    snprintf(what, sizeof what, "crossentropy_forward losses N=%d V=%d", N, V);
    check_errors(what);
    check(what, l3, l2, N, 1e-5, 1e-5);
    snprintf(what, sizeof what, "crossentropy_forward dlogits N=%d V=%d", N, V);
    check(what, d1, d2, n, 1e-7, 1e-5);
    f->crossentropy_forward(l3, inplace, inplace, y, N, V, dscale, eps);
    snprintf(what, sizeof what, "crossentropy_forward in place dlogits N=%d V=%d", N, V);
    check_errors(what);
    check(what, inplace, d2, n, 1e-7, 1e-5);
    snprintf(what, sizeof what, "crossentropy_forward in place losses N=%d V=%d", N, V);
    check(what, l3, l2, N, 1e-5, 1e-5);
    free(l); free(y); free(l1); free(l2); free(l3); free(d1); free(d2); free(inplace);
}

static void test_elementwise(const llm_kernels *f, const llm_kernels *r, size_t n)
{
    char what[128];
    float *a = rnd(n), *b = rnd(n), *o1 = rnd(n), *o2 = rnd(n);
    f->residual_forward(o1, a, b, n);
    r->residual_forward(o2, a, b, n);
    snprintf(what, sizeof what, "residual_forward n=%zu", n);
    check_errors(what);
    check_bits(what, o1, o2, n * F4);
    f->residual_forward(a, a, b, n);   /* out aliasing a */
    snprintf(what, sizeof what, "residual_forward in place n=%zu", n);
    check_errors(what);
    check_bits(what, a, o2, n * F4);
    f->scale(o1, n, 0.37f);
    r->scale(o2, n, 0.37f);
    snprintf(what, sizeof what, "scale n=%zu", n);
    check_errors(what);
    check_bits(what, o1, o2, n * F4);
    double s1 = f->sum_squares(b, n), s2 = r->sum_squares(b, n);
    snprintf(what, sizeof what, "sum_squares n=%zu", n);
    check_errors(what);
    char detail[128];
    snprintf(detail, sizeof detail, "%.17g vs %.17g", s1, s2);
    result(what, fabs(s1 - s2) <= 1e-9 * s2 + 1e-12, detail);
    /* AdamW: several steps so that m, v and the bias corrections all matter. */
    float *p1 = rnd(n), *p2 = dup(p1, n), *m1 = calloc(n + 1, 4), *m2 = calloc(n + 1, 4);
    float *v1 = calloc(n + 1, 4), *v2 = calloc(n + 1, 4);
    if (!m1 || !m2 || !v1 || !v2)
        exit(1);
    for (int t = 1; t <= 4; t++) {
        float *g = rnd(n);
        f->adamw_update(p1, g, m1, v1, n, 1e-2f, 0.9f, 0.95f, 1e-8f, 0.1f, t);
        r->adamw_update(p2, g, m2, v2, n, 1e-2f, 0.9f, 0.95f, 1e-8f, 0.1f, t);
        free(g);
    }
    snprintf(what, sizeof what, "adamw_update p n=%zu", n);
    check_errors(what);
    check(what, p1, p2, n, 1e-6, 1e-5);
    snprintf(what, sizeof what, "adamw_update m n=%zu", n);
    check(what, m1, m2, n, 1e-7, 1e-5);
    snprintf(what, sizeof what, "adamw_update v n=%zu", n);
    check(what, v1, v2, n, 1e-7, 1e-5);
    free(a); free(b); free(o1); free(o2); free(p1); free(p2);
    free(m1); free(m2); free(v1); free(v2);
}

/* ------------------------------------------------------------ determinism
 * The kernels that reduce, run twice on the same inputs: same bits. */

static void test_determinism(const llm_kernels *f)
{
    {
        int N = 300, IC = 517, OC = 263;
        float *inp = rnd((size_t)N * IC), *w = rnd((size_t)OC * IC), *dout = rnd((size_t)N * OC);
        float *dw1 = rnd((size_t)OC * IC), *dw2 = dup(dw1, (size_t)OC * IC);
        float *di1 = rnd((size_t)N * IC), *di2 = rnd((size_t)N * IC);
        f->matmul_backward(di1, dw1, dout, inp, w, N, IC, OC);
        f->matmul_backward(di2, dw2, dout, inp, w, N, IC, OC);
        check_bits("determinism matmul_backward dinp", di1, di2, (size_t)N * IC * F4);
        check_bits("determinism matmul_backward dw", dw1, dw2, (size_t)OC * IC * F4);
        free(inp); free(w); free(dout); free(dw1); free(dw2); free(di1); free(di2);
    }
    {
        int N = 5000, C = 300;
        float *x = rnd((size_t)N * C), *w = rnd(C), *dout = rnd((size_t)N * C), *rs = rnd(N);
        float *dx1 = rnd((size_t)N * C), *dx2 = dup(dx1, (size_t)N * C);
        float *dw1 = rnd(C), *dw2 = dup(dw1, C), *o = rnd((size_t)N * C);
        f->rmsnorm_forward(o, rs, x, w, N, C, 1e-5f);
        f->rmsnorm_backward(dx1, dw1, dout, x, w, rs, N, C);
        f->rmsnorm_backward(dx2, dw2, dout, x, w, rs, N, C);
        check_bits("determinism rmsnorm_backward dinp", dx1, dx2, (size_t)N * C * F4);
        check_bits("determinism rmsnorm_backward dw", dw1, dw2, (size_t)C * F4);
        free(x); free(w); free(dout); free(rs); free(dx1); free(dx2); free(dw1); free(dw2); free(o);
    }
    for (int packed = 0; packed < 2; packed++) {
        int B = 2, T = 200, H = 6, KVH = 2, hd = 32;
        size_t nq = (size_t)B * T * (H + 2 * KVH) * hd, no = (size_t)B * T * H * hd;
        size_t ns = f->attention_saved(B, T, H);
        int32_t *st = packed ? random_starts(B, T, 30) : NULL;
        float *qkv = rnd(nq), *o1 = rnd(no), *o2 = rnd(no), *a1 = rnd(ns), *a2 = rnd(ns);
        float *dout = rnd(no), *d1 = rnd(nq), *d2 = rnd(nq);
        f->attention_forward(o1, a1, NULL, qkv, st, B, T, H, KVH, hd);
        f->attention_forward(o2, a2, NULL, qkv, st, B, T, H, KVH, hd);
        check_bits("determinism attention_forward out", o1, o2, no * F4);
        check_bits("determinism attention_forward saved", a1, a2, ns * F4);
        f->attention_backward(d1, NULL, dout, qkv, o1, a1, st, B, T, H, KVH, hd);
        f->attention_backward(d2, NULL, dout, qkv, o1, a1, st, B, T, H, KVH, hd);
        check_bits(packed ? "determinism attention_backward, packed" : "determinism attention_backward",
                   d1, d2, nq * F4);
        free(qkv); free(o1); free(o2); free(a1); free(a2); free(dout); free(d1); free(d2);
        free(st);
    }
    {
        int N = 64, V = 32003;
        size_t n = (size_t)N * V;
        float *l = rnd(n), *l1 = rnd(N), *l2 = rnd(N), *d1 = rnd(n), *d2 = rnd(n);
        int32_t *y = tokens(N, V);
        f->crossentropy_forward(l1, d1, l, y, N, V, 0.5f, 0.1f);
        f->crossentropy_forward(l2, d2, l, y, N, V, 0.5f, 0.1f);
        check_bits("determinism crossentropy losses", l1, l2, (size_t)N * F4);
        check_bits("determinism crossentropy dlogits", d1, d2, n * F4);
        free(l); free(l1); free(l2); free(d1); free(d2); free(y);
    }
    {
        size_t n = 3000017;
        float *x = rnd(n);
        double s1 = f->sum_squares(x, n), s2 = f->sum_squares(x, n);
        check_bits("determinism sum_squares", &s1, &s2, sizeof s1);
        free(x);
    }
    check_errors("determinism");
}

/* ------------------------------------------------------------ inference
 * The inference entries against the reference on the same inputs: bit for
 * bit where the contract fixes the order (matmul_rows, matmul_rows_packed,
 * to_half, linear_f64, dropout), within rounding for attention_rows
 * (fast_expf is the same bits, but the sum of the exponentials is taken in
 * another order, and the reference computes in double with exp()). */

static void *dalloc(size_t bytes)
{
    void *d = NULL;
    if (llm_cuda_alloc(&d, bytes ? bytes : 4) != 0) {
        fprintf(stderr, "test_cuda_kernels: %s\n", llm_cuda_errmsg());
        exit(1);
    }
    return d;
}

static int *shuffled_rows(int R)
{
    int *perm = xmalloc((size_t)R * sizeof *perm);
    for (int i = 0; i < R; i++)
        perm[i] = i;
    for (int i = R - 1; i > 0; i--) {
        int j = (int)(next_u64() % (uint64_t)(i + 1)), t = perm[i];
        perm[i] = perm[j];
        perm[j] = t;
    }
    return perm;
}

/* matmul_rows (packed = 0) or matmul_rows_packed of the CUDA table on
 * device copies of R rows of out (in and out) and inp and of w; map is
 * host memory, as the contract says. */
static void cuda_rows(int packed, float *out, size_t ldo, const float *inp, size_t ldi,
                      const int *map, const void *w, int half, int R, int N, int IC, int OC)
{
    size_t no = (size_t)R * ldo * F4;
    float *dout = dput(out, no), *din = dput(inp, (size_t)R * ldi * F4);
    void *dw = dput(w, (size_t)OC * IC * (half ? 2 : F4));
    float *dscr = dalloc((K->matmul_rows_scratch(IC, OC) + 1) * F4);
    if (packed)
        K->matmul_rows_packed(dout, ldo, din, ldi, map, dw, dscr, N, IC, OC);
    else
        K->matmul_rows(dout, ldo, din, ldi, map, dw, half, N, IC, OC);
    dback(out, dout, no);
    llm_cuda_free(din);
    llm_cuda_free(dw);
    llm_cuda_free(dscr);
}

/* N of R rows through a shuffled map, rows ldi and ldo floats apart with
 * gaps (IC and OC odd in most shapes: a tail after the 8-wide sums), then
 * N rows without a map: the reference's bits everywhere (so the rows
 * outside the map and the gaps are untouched); each row alone gets the
 * bits it gets in the batch. */
static void test_matmul_rows(int packed, int half, int N, int IC, int OC)
{
    char what[128], name[96];
    const llm_kernels *r = llm_kernels_ref();
    int R = N + 3;
    size_t ldi = (size_t)IC + 5, ldo = (size_t)OC + 3, no = (size_t)R * ldo;
    float *inp = rnd((size_t)R * ldi), *wf = rnd((size_t)OC * IC);
    uint16_t *wh = xmalloc((size_t)OC * IC * sizeof *wh);
    for (size_t i = 0; i < (size_t)OC * IC; i++) {
        wh[i] = llm_float_to_half(wf[i]);
        if (half)
            wf[i] = llm_half_to_float(wh[i]);   /* the weights the product sees */
    }
    const void *w = half ? (const void *)wh : (const void *)wf;
    float *o1 = rnd(no), *o2 = dup(o1, no), *o3 = dup(o1, no);
    int *map = shuffled_rows(R);
    snprintf(name, sizeof name, "matmul_rows%s%s N=%d IC=%d OC=%d", packed ? "_packed" : "",
             half ? " (halves)" : "", N, IC, OC);
    cuda_rows(packed, o1, ldo, inp, ldi, map, w, half, R, N, IC, OC);
    if (packed)
        r->matmul_rows_packed(o2, ldo, inp, ldi, map, wf, NULL, N, IC, OC);
    else
        r->matmul_rows(o2, ldo, inp, ldi, map, w, half, N, IC, OC);
    check_errors(name);
    check_bits(name, o1, o2, no * F4);
    for (int n = 0; n < N; n++)
        cuda_rows(packed, o3, ldo, inp, ldi, map + n, w, half, R, 1, IC, OC);
    snprintf(what, sizeof what, "%s: each row alone", name);
    check_errors(what);
    check_bits(what, o3, o1, no * F4);
    float *o4 = rnd(no), *o5 = dup(o4, no);
    cuda_rows(packed, o4, ldo, inp, ldi, NULL, w, half, R, N, IC, OC);
    if (packed)
        r->matmul_rows_packed(o5, ldo, inp, ldi, NULL, wf, NULL, N, IC, OC);
    else
        r->matmul_rows(o5, ldo, inp, ldi, NULL, w, half, N, IC, OC);
    snprintf(what, sizeof what, "%s: no map", name);
    check_errors(what);
    check_bits(what, o4, o5, no * F4);
    free(inp); free(wf); free(wh); free(o1); free(o2); free(o3); free(o4); free(o5);
    free(map);
}

/* attention_rows over a cache of n rows of different lengths (keys and
 * values kvs > KVH * hd floats apart), in device memory, through host
 * pointer arrays; against the reference on a host copy; each row alone
 * gets the bits it gets in the batch; over a whole sequence's own qkv rows
 * it is causal attention (the reference's attention_forward). */
static void test_attention_rows(int n, int H, int KVH, int hd, int maxlen)
{
    char what[128];
    const llm_kernels *r = llm_kernels_ref();
    size_t kvs = (size_t)KVH * hd + 3, OS = (size_t)H * hd;
    size_t ncache = (size_t)n * 2 * maxlen * kvs;
    const float **q = xmalloc((size_t)n * sizeof *q), **Kp = xmalloc((size_t)n * sizeof *Kp);
    const float **V = xmalloc((size_t)n * sizeof *V), **dq = xmalloc((size_t)n * sizeof *dq);
    const float **dK = xmalloc((size_t)n * sizeof *dK), **dV = xmalloc((size_t)n * sizeof *dV);
    int *len = xmalloc((size_t)n * sizeof *len);
    float *qs = rnd((size_t)n * OS), *cache = rnd(ncache);
    for (size_t i = 0; i < ncache; i++)
        cache[i] *= 3.0f;   /* peakier softmax */
    float *o1 = rnd((size_t)n * OS), *o2 = rnd((size_t)n * OS), *o3 = rnd((size_t)n * OS);
    float *dqs = dput(qs, (size_t)n * OS * F4), *dcache = dput(cache, ncache * F4);
    float *dout = dput(o1, (size_t)n * OS * F4), *dalone = dput(o3, (size_t)n * OS * F4);
    float *dscr = dalloc((size_t)maxlen * F4);   /* one thread's worth: unused on cuda */
    for (int i = 0; i < n; i++) {
        q[i] = qs + (size_t)i * OS;
        Kp[i] = cache + (size_t)i * 2 * maxlen * kvs;
        V[i] = Kp[i] + (size_t)maxlen * kvs;
        dq[i] = dqs + (size_t)i * OS;
        dK[i] = dcache + (size_t)i * 2 * maxlen * kvs;
        dV[i] = dK[i] + (size_t)maxlen * kvs;
        len[i] = i == 0 ? maxlen : 1 + (int)(next_u64() % (uint64_t)maxlen);
    }
    K->attention_rows(dout, OS, dq, dK, dV, kvs, len, n, H, KVH, hd, dscr, maxlen);
    for (int i = 0; i < n; i++)
        K->attention_rows(dalone + (size_t)i * OS, OS, dq + i, dK + i, dV + i, kvs, len + i, 1,
                          H, KVH, hd, dscr, maxlen);
    r->attention_rows(o2, OS, q, Kp, V, kvs, len, n, H, KVH, hd, NULL, maxlen);
    snprintf(what, sizeof what, "attention_rows n=%d H=%d KVH=%d hd=%d len<=%d", n, H, KVH,
             hd, maxlen);
    check_errors(what);
    dget(o1, dout, (size_t)n * OS * F4);
    check(what, o1, o2, (size_t)n * OS, 1e-5, 1e-4);
    dget(o3, dalone, (size_t)n * OS * F4);
    snprintf(what, sizeof what, "attention_rows n=%d H=%d KVH=%d hd=%d: each row alone", n, H,
             KVH, hd);
    check_bits(what, o3, o1, (size_t)n * OS * F4);
    /* One sequence of T = maxlen positions over its own rows of qkv. */
    int T = maxlen, QS = (H + 2 * KVH) * hd;
    float *qkv = rnd((size_t)T * QS), *att = xmalloc((size_t)H * T * T * F4);
    float *full = xmalloc((size_t)T * OS * F4), *rows = rnd((size_t)T * OS);
    float *dqkv = dput(qkv, (size_t)T * QS * F4), *drows = dput(rows, (size_t)T * OS * F4);
    const float **tq = xmalloc((size_t)T * sizeof *tq), **tk = xmalloc((size_t)T * sizeof *tk);
    const float **tv = xmalloc((size_t)T * sizeof *tv);
    int *tl = xmalloc((size_t)T * sizeof *tl);
    for (int t = 0; t < T; t++) {
        tq[t] = dqkv + (size_t)t * QS;
        tk[t] = dqkv + (size_t)H * hd;
        tv[t] = tk[t] + (size_t)KVH * hd;
        tl[t] = t + 1;
    }
    r->attention_forward(full, att, NULL, qkv, NULL, 1, T, H, KVH, hd);
    K->attention_rows(drows, OS, tq, tk, tv, (size_t)QS, tl, T, H, KVH, hd, dscr, maxlen);
    snprintf(what, sizeof what, "attention_rows = attention_forward T=%d H=%d KVH=%d hd=%d",
             T, H, KVH, hd);
    check_errors(what);
    dget(rows, drows, (size_t)T * OS * F4);
    check(what, rows, full, (size_t)T * OS, 1e-5, 1e-4);
    free(q); free(Kp); free(V); free(dq); free(dK); free(dV); free(len); free(qs);
    free(cache); free(o1); free(o2); free(o3); free(qkv); free(att); free(full); free(rows);
    free(tq); free(tk); free(tv); free(tl);
    llm_cuda_free(dqs); llm_cuda_free(dcache); llm_cuda_free(dout); llm_cuda_free(dalone);
    llm_cuda_free(dscr); llm_cuda_free(dqkv); llm_cuda_free(drows);
}

/* to_half against the reference (and so half.h), bit for bit, and the
 * lowest index out of half's range (bad_at, with more after it), or n. */
static void test_to_half(size_t n, size_t bad_at)
{
    char what[96], detail[160] = "";
    float *x = rnd(n);
    static const float edge[] = { 65504.0f, 65519.99f, -6.1e-5f, 5.96e-8f, 2.98e-8f,
                                  1.0009765625f, 1.00048828125f, -0.0f, 1e-10f, -65505.0f };
    for (size_t i = 0; i < n; i++)
        x[i] = i % 3 == 0 ? edge[(i / 3) % (sizeof edge / sizeof edge[0])] : x[i] * 1000;
    if (bad_at < n)
        x[bad_at] = bad_at % 2 ? 65520.0f : NAN;
    if (bad_at + 2 < n)
        x[bad_at + 2] = INFINITY;
    if (bad_at + 1000 < n)
        x[n - 1] = -NAN;
    uint16_t *h1 = xmalloc(n * sizeof *h1), *h2 = xmalloc(n * sizeof *h2);
    float *dx = dput(x, n * F4);
    uint16_t *dh = dalloc(n * sizeof *dh);
    size_t b1 = K->to_half(dh, dx, n), b2 = llm_kernels_ref()->to_half(h2, x, n);
    size_t want = bad_at < n ? bad_at : n;
    snprintf(what, sizeof what, "to_half n=%zu", n);
    check_errors(what);
    dback(h1, dh, n * sizeof *h1);
    if (b1 != b2 || b1 != want)
        snprintf(detail, sizeof detail, "first bad %zu, reference %zu, want %zu", b1, b2, want);
    result(what, !detail[0], detail);
    check_bits(what, h1, h2, n * sizeof *h1);
    free(x); free(h1); free(h2);
    llm_cuda_free(dx);
}

static void test_linear_f64(int N, int C, int Kn)
{
    char what[96];
    float *x = rnd((size_t)N * C), *w = rnd((size_t)Kn * C), *b = rnd(Kn);
    float *o1 = rnd((size_t)N * Kn), *o2 = rnd((size_t)N * Kn);
    float *dx = dput(x, (size_t)N * C * F4), *dw = dput(w, (size_t)Kn * C * F4);
    float *db = dput(b, (size_t)Kn * F4), *dout = dput(o1, (size_t)N * Kn * F4);
    K->linear_f64(dout, dx, dw, db, N, C, Kn);
    llm_kernels_ref()->linear_f64(o2, x, w, b, N, C, Kn);
    snprintf(what, sizeof what, "linear_f64 N=%d C=%d K=%d", N, C, Kn);
    check_errors(what);
    dback(o1, dout, (size_t)N * Kn * F4);
    check_bits(what, o1, o2, (size_t)N * Kn * F4);
    free(x); free(w); free(b); free(o1); free(o2);
    llm_cuda_free(dx); llm_cuda_free(dw); llm_cuda_free(db);
}

static void test_dropout(size_t n, double p, uint64_t key)
{
    char what[96];
    float *x = rnd(n), *y = dup(x, n);
    float *dx = dput(x, n * F4);
    K->dropout(dx, n, p, key);
    llm_kernels_ref()->dropout(y, n, p, key);
    snprintf(what, sizeof what, "dropout n=%zu p=%g", n, p);
    check_errors(what);
    dback(x, dx, n * F4);
    check_bits(what, x, y, n * F4);
    size_t zeros = 0;   /* and the mask is a mask: about p of them dropped */
    for (size_t i = 0; i < n; i++)
        zeros += x[i] == 0.0f;
    if (n >= 100000) {
        char detail[96];
        snprintf(detail, sizeof detail, "%zu of %zu dropped", zeros, n);
        snprintf(what, sizeof what, "dropout n=%zu p=%g: share dropped", n, p);
        result(what, fabs((double)zeros / n - p) < 0.01, detail);
    }
    free(x); free(y);
}

/* Every entry is set but the optional ones (kernels.h:
 * LLM_KERNELS_OPTIONAL), which the library checks for itself (the model
 * needs all the others); to_half, optional elsewhere, is there too. The
 * memory entries move bytes, and the sampler's entries are host-side ones:
 * the base CPU level's, or those llm_cuda_set_host_kernels() gives. */
#define OPTIONAL_AT(name) offsetof(llm_kernels, name),
static void test_table(void)
{
    typedef void (*fn)(void);
    size_t first = offsetof(llm_kernels, alloc), hm = offsetof(llm_kernels, host_memory);
    size_t optional[] = { LLM_KERNELS_OPTIONAL(OPTIONAL_AT) };
    int missing = 0;
    char detail[64] = "";
    result("to_half is set", K->to_half != NULL, "");
    for (size_t at = first; at + sizeof(fn) <= sizeof(llm_kernels); at += sizeof(fn)) {
        fn f;
        int skip = at <= hm && hm < at + sizeof(fn);
        for (size_t j = 0; j < sizeof optional / sizeof optional[0]; j++)
            skip |= at == optional[j];
        if (skip)
            continue;
        memcpy(&f, (const char *)K + at, sizeof f);
        if (!f) {
            missing++;
            snprintf(detail, sizeof detail, "no entry at byte %zu", at);
        }
    }
    result("every table entry is set", missing == 0 && K->host_memory == 0, detail);
    result("sampler entries: the base CPU level's",
           K->logits_max == llm_cpu_logits_max && K->softmax_weights == llm_cpu_softmax_weights &&
           K->find_first == llm_cpu_find_first, "");
    const llm_kernels *r = llm_kernels_ref();
    llm_cuda_set_host_kernels(r);
    float x[5] = { 1, 3, -2, 3, 0 };
    int bad = 1;
    result("llm_cuda_set_host_kernels", K->logits_max == r->logits_max &&
           K->find_first == r->find_first && K->softmax_weights == r->softmax_weights &&
           K->logits_max(x, 5, &bad) == 3.0f && !bad && K->find_first(x, 5, 3.0f) == 1, "");
    llm_kernels base = { .logits_max = llm_cpu_logits_max,
                         .softmax_weights = llm_cpu_softmax_weights,
                         .find_first = llm_cpu_find_first };
    llm_cuda_set_host_kernels(&base);
    /* The memory entries: up, copy, zero part, down. */
    float h[100], g[100];
    for (int i = 0; i < 100; i++)
        h[i] = (float)i;
    float *a = K->alloc(sizeof h), *b = K->alloc(sizeof h);
    K->upload(a, h, sizeof h);
    K->copy(b, a, sizeof h);
    K->zero(b, 10 * sizeof *h);
    K->download(g, b, sizeof g);
    K->free(a);
    K->free(b);
    K->free(NULL);
    memset(h, 0, 10 * sizeof *h);
    check_errors("memory entries");
    check_bits("memory entries", g, h, sizeof h);
}

/* ------------------------------------------------------------ misc */

static void test_lookup(void)
{
    result("table name", strcmp(K->name, "cuda") == 0 && llm_kernels_cuda() == K, K->name);
    char name[256] = "";
    result("llm_cuda_device_name", llm_cuda_device_name(name, sizeof name) == 0 && name[0], name);
    /* A bad launch is recorded, not fatal, and cleared on request. */
    void *p = NULL;
    int big = llm_cuda_alloc(&p, (size_t)1 << 62);
    result("llm_cuda_alloc of 4 EiB fails cleanly", big == -1 && p == NULL && llm_cuda_errmsg(),
           llm_cuda_errmsg() ? llm_cuda_errmsg() : "no message");
    /* The table's failure entry hands the error over once. */
    const char *f1 = K->failure();
    char first[300];
    snprintf(first, sizeof first, "%s", f1 ? f1 : "no failure reported");
    const char *f2 = K->failure();
    result("failure() reports the error once", f1 && strstr(first, "cudaMalloc") && !f2 &&
           !llm_cuda_errmsg(), first);
    big = llm_cuda_alloc(&p, (size_t)1 << 62);   /* again, for the checks below */
    llm_cuda_clear_error();
    result("llm_cuda_clear_error", llm_cuda_errmsg() == NULL && llm_cuda_sync() == 0, "");
    /* Zero sizes launch nothing. */
    K->residual_forward(NULL, NULL, NULL, 0);
    K->scale(NULL, 0, 2.0f);
    K->swiglu_forward(NULL, NULL, 0, 5);
    K->matmul_forward(NULL, NULL, NULL, 0, 3, 4);
    K->embedding_backward(NULL, NULL, NULL, 0, 4);
    K->rmsnorm_backward(NULL, NULL, NULL, NULL, NULL, NULL, 0, 4);
    K->crossentropy_forward(NULL, NULL, NULL, NULL, 0, 10, 1.0f, 0.0f);
    result("zero sizes", llm_cuda_sync() == 0 && K->sum_squares(NULL, 0) == 0.0,
           llm_cuda_errmsg() ? llm_cuda_errmsg() : "");
    llm_cuda_clear_error();
    /* Flash attention takes head sizes up to 256: above, a recorded
     * failure, before any memory is touched. */
    K->attention_forward(NULL, NULL, NULL, NULL, NULL, 1, 4, 2, 1, 257);
    const char *f3 = K->failure();
    result("attention_forward: head size 257 refused", f3 && strstr(f3, "head size"),
           f3 ? f3 : "no failure reported");
    K->attention_backward(NULL, NULL, NULL, NULL, NULL, NULL, NULL, 1, 4, 2, 1, 257);
    const char *f4 = K->failure();
    result("attention_backward: head size 257 refused", f4 && strstr(f4, "head size"),
           f4 ? f4 : "no failure reported");
    llm_cuda_clear_error();
}

/* LLM_TEST_QUICK=1 in the environment: small shapes only (for runs under
 * compute-sanitizer, which slows kernels down a hundredfold). */
int main(void)
{
    setvbuf(stdout, NULL, _IOLBF, 0);
    K = llm_kernels_cuda();
    if (!K) {
        const char *why = llm_cuda_errmsg();
        printf("no CUDA device%s%s\n", why ? ": " : "", why ? why : "");
        return 77;
    }
    const char *q = getenv("LLM_TEST_QUICK");
    int big = !(q && *q && strcmp(q, "0") != 0);
    const llm_kernels *f = &host_cuda, *r = llm_kernels_ref();
    char name[256] = "?";
    llm_cuda_device_name(name, sizeof name);
    printf("device: %s%s\n", name, big ? "" : " (quick: small shapes only)");

    test_lookup();
    test_matmul(f, r, 1, 1, 1);
    test_matmul(f, r, 7, 13, 5);
    test_matmul(f, r, 64, 96, 131);
    if (big) {
        test_matmul(f, r, 257, 771, 2305);
        test_matmul(f, r, 1000, 288, 769);
    }
    test_matmul_bf16(r, 1, 1, 1);
    test_matmul_bf16(r, 7, 13, 5);
    test_matmul_bf16(r, 64, 96, 131);
    if (big)
        test_matmul_bf16(r, 257, 771, 2305);
    test_embedding(f, r, 9, 5, 7);
    test_embedding(f, r, 100, 37, 33);
    test_embedding(f, r, 1000, 3, 129);      /* long runs of one token */
    if (big)
        test_embedding(f, r, 4096, 50257, 768);
    test_rmsnorm(f, r, 1, 1);
    test_rmsnorm(f, r, 5, 7);
    test_rmsnorm(f, r, 70, 288);
    if (big) {
        test_rmsnorm(f, r, 4097, 768);       /* several dw chunks */
        test_rmsnorm(f, r, 33, 4099);
    }
    test_rope(f, r, 2, 5, 3, 6, 3);
    test_rope(f, r, 1, 17, 2, 48, 3);
    test_rope(f, r, 1, 4, 2, 7, 0);                /* odd hd: last element untouched */
    if (big)
        test_rope(f, r, 3, 129, 12, 64, 2 * 4 * 64);   /* q heads of a GQA qkv row */
    test_attention(f, r, 1, 1, 1, 1, 2, 0);
    test_attention(f, r, 2, 5, 4, 2, 6, 0);
    test_attention(f, r, 1, 31, 2, 2, 16, 0);
    test_attention(f, r, 1, 33, 3, 1, 8, 0);
    test_attention(f, r, 2, 65, 8, 2, 64, 0);
    test_attention(f, r, 2, 65, 8, 2, 64, 7);
    /* Flash attention's tiles are 64 rows (32 above hd 128) and hd is
     * padded to 32, 64, 128 or 256: T across and inside tiles, hd at and
     * between the paddings, GQA, packed documents short and long (tiles
     * of keys skipped before the starts). */
    test_attention(f, r, 3, 64, 6, 3, 32, 0);
    test_attention(f, r, 2, 100, 4, 2, 48, 5);
    test_attention(f, r, 1, 129, 2, 1, 128, 9);
    test_attention(f, r, 1, 70, 2, 2, 256, 0);
    test_attention(f, r, 1, 97, 4, 2, 200, 3);
    test_attention(f, r, 1, 300, 2, 2, 100, 40);
    if (big) {
        test_attention(f, r, 1, 70, 3, 3, 8, 0);
        test_attention(f, r, 2, 130, 6, 1, 4, 0);
        test_attention(f, r, 1, 257, 4, 4, 64, 0);
        test_attention(f, r, 1, 1024, 4, 2, 64, 0);
        test_attention(f, r, 2, 1000, 4, 1, 64, 300);
        test_attention(f, r, 1, 555, 3, 3, 128, 0);
    }
    test_swiglu(f, r, 3, 5);
    test_swiglu(f, r, 33, 97);
    if (big)
        test_swiglu(f, r, 1000, 2048);
    test_crossentropy(f, r, 1, 1, 0.0f);
    test_crossentropy(f, r, 7, 67, 0.0f);
    test_crossentropy(f, r, 12, 4096, 0.0f);
    test_crossentropy(f, r, 7, 67, 0.1f);
    test_crossentropy(f, r, 12, 4096, 0.25f);
    if (big)
        test_crossentropy(f, r, 5, 50257, 0.1f);
    test_table();
    test_matmul_rows(0, 0, 1, 1, 1);
    test_matmul_rows(0, 0, 5, 7, 9);       /* IC < 8: the tail alone */
    test_matmul_rows(0, 0, 3, 64, 70);     /* no tail */
    test_matmul_rows(0, 0, 9, 37, 13);
    test_matmul_rows(0, 1, 9, 37, 13);
    test_matmul_rows(0, 0, 20, 101, 67);   /* several blocks of rows and outputs */
    test_matmul_rows(0, 1, 20, 101, 67);
    test_matmul_rows(1, 0, 1, 1, 1);
    test_matmul_rows(1, 0, 17, 37, 33);    /* across tiles, partial last tiles */
    test_matmul_rows(1, 0, 40, 100, 21);
    if (big) {
        test_matmul_rows(0, 0, 64, 771, 1027);
        test_matmul_rows(0, 1, 33, 768, 2304);
        test_matmul_rows(1, 0, 70, 288, 769);
    }
    test_attention_rows(1, 1, 1, 2, 1);
    test_attention_rows(5, 4, 2, 6, 9);
    test_attention_rows(3, 3, 1, 13, 30);  /* hd not a multiple of 8 */
    test_attention_rows(7, 8, 2, 64, 65);
    if (big) {
        test_attention_rows(33, 12, 4, 64, 300);
        test_attention_rows(2, 4, 4, 128, 700);
    }
    test_to_half(1, 0);
    test_to_half(1, 5);
    test_to_half(1001, 1001);
    test_to_half(1001, 500);
    if (big) {
        test_to_half(3000017, 2999000);
        test_to_half(3000017, 3000017);
    }
    test_linear_f64(1, 1, 1);
    test_linear_f64(7, 129, 5);
    test_linear_f64(64, 768, 20);
    test_dropout(1, 0.5, 7);
    test_dropout(1001, 0.1, 42);
    test_dropout(1000003, 0.0, 5);
    test_dropout(1000003, 0.1, 0x123456789abcdefull);
    if (big)
        test_dropout(3000017, 0.9, 99);
    test_elementwise(f, r, 1);
    test_elementwise(f, r, 1001);
    test_elementwise(f, r, 100003);
    if (big) {
        test_elementwise(f, r, 3000017);
        test_determinism(f);
    }

    printf("%d passed, %d failed\n", passed, failed);
    return failed ? 1 : 0;
}
