/* cpu.c: the fast CPU kernels: llm_cpu_gemm() (gemm.c: our AVX-512 product,
 * or OpenBLAS's sgemm) for every matrix product (the attention products
 * too, tile by tile, skipping the masked half), OpenMP
 * threads over rows and auto-vectorised loops for the rest.
 *
 * Threads: OpenMP loops use static schedules and every reduction runs in a
 * fixed order, so results are bitwise reproducible for a given thread
 * count. Reductions over rows (dw of rmsnorm, dwte) are split by columns
 * instead, which makes them independent of the thread count as well. */
#include <math.h>
#include <stdint.h>
#include <string.h>

#include <cblas.h>
#include <omp.h>

#include "cpu.h"
#include "elementwise.h"
#include "fastexp.h"
#include "half.h"
#include "kernels.h"

/* Query/key rows per attention tile: tiles above the diagonal are skipped. */
#define TILE 64

/* Row-wise and elementwise kernels go parallel from this many elements:
 * below it (one decoding step's row, a few thousand floats) a fork and
 * join of the threads (3 us here) costs more than the work. Their results
 * do not depend on the thread count either way. */
#define PAR_MIN 32768

/* Column strip [*c0, *c1) of thread id out of nt over C columns. */
static void strip(int C, int id, int nt, int *c0, int *c1)
{
    *c0 = (int)((int64_t)C * id / nt);
    *c1 = (int)((int64_t)C * (id + 1) / nt);
}

/* Inside an OpenMP region each thread calls sgemm on its own small tile;
 * OpenBLAS must not fan out into its own pool there. Only its pthreads
 * build needs telling: the OpenMP build (the one the Makefile links) runs
 * one thread inside a parallel region by itself, and its
 * openblas_set_num_threads() is omp_set_num_threads(), which would shrink
 * the very region that follows to one thread. */
static int blas_serial_begin(void)
{
    if (openblas_get_parallel() != 1)
        return 0;
    int n = openblas_get_num_threads();
    if (n > 1)
        openblas_set_num_threads(1);
    return n;
}

static void blas_serial_end(int n)
{
    if (n > 1)
        openblas_set_num_threads(n);
}

/* The table's products through one matrix product, llm_cpu_gemm() or its
 * bf16 form: out = inp . w^T; dinp = dout . w; dw += dout^T . inp. */
typedef void gemm_fn(int ta, int tb, int M, int N, int K, float alpha, const float *A,
                     int lda, const float *B, int ldb, float beta, float *C, int ldc);

static void product_forward(gemm_fn *g, float *out, const float *inp, const float *w, int N,
                            int IC, int OC)
{
    g(0, 1, N, OC, IC, 1.0f, inp, IC, w, IC, 0.0f, out, OC);
}

static void product_backward(gemm_fn *g, float *dinp, float *dw, const float *dout,
                             const float *inp, const float *w, int N, int IC, int OC)
{
    if (dinp)
        g(0, 0, N, IC, OC, 1.0f, dout, OC, w, IC, 0.0f, dinp, IC);
    if (dw)
        g(1, 0, OC, IC, N, 1.0f, dout, OC, inp, IC, 1.0f, dw, IC);
}

static void matmul_forward(float *out, const float *inp, const float *w, int N, int IC, int OC)
{
    product_forward(llm_cpu_gemm, out, inp, w, N, IC, OC);
}

static void matmul_backward(float *dinp, float *dw, const float *dout, const float *inp,
                            const float *w, int N, int IC, int OC)
{
    product_backward(llm_cpu_gemm, dinp, dw, dout, inp, w, N, IC, OC);
}

static void matmul_forward_bf16(float *out, const float *inp, const float *w, int N, int IC,
                                int OC)
{
    product_forward(llm_cpu_gemm_bf16, out, inp, w, N, IC, OC);
}

static void matmul_backward_bf16(float *dinp, float *dw, const float *dout, const float *inp,
                                 const float *w, int N, int IC, int OC)
{
    product_backward(llm_cpu_gemm_bf16, dinp, dw, dout, inp, w, N, IC, OC);
}

static void embedding_forward(float *out, const int32_t *tokens,
                              const float *wte, int N, int C)
{
#pragma omp parallel for schedule(static) if ((size_t)N * C >= PAR_MIN)
    for (int n = 0; n < N; n++)
        memcpy(out + (size_t)n * C, wte + (size_t)tokens[n] * C,
               (size_t)C * sizeof *out);
}

static void embedding_backward(float *dwte, const float *dout,
                               const int32_t *tokens, int N, int C)
{
#pragma omp parallel
    {
        int c0, c1;
        strip(C, omp_get_thread_num(), omp_get_num_threads(), &c0, &c1);
        for (int n = 0; n < N; n++) {
            float *restrict d = dwte + (size_t)tokens[n] * C;
            const float *restrict g = dout + (size_t)n * C;
            for (int c = c0; c < c1; c++)
                d[c] += g[c];
        }
    }
}

static void rmsnorm_forward(float *out, float *rstd, const float *inp,
                            const float *w, int N, int C, float eps)
{
#pragma omp parallel for schedule(static) if ((size_t)N * C >= PAR_MIN)
    for (int n = 0; n < N; n++) {
        const float *restrict x = inp + (size_t)n * C;
        float *restrict y = out + (size_t)n * C;
        float ss = 0.0f;
#pragma omp simd reduction(+:ss)
        for (int c = 0; c < C; c++)
            ss += x[c] * x[c];
        float r = 1.0f / sqrtf(ss / (float)C + eps);
        for (int c = 0; c < C; c++)
            y[c] = x[c] * r * w[c];
        rstd[n] = r;
    }
}

static void rmsnorm_backward(float *dinp, float *dw, const float *dout,
                             const float *inp, const float *w,
                             const float *rstd, int N, int C)
{
#pragma omp parallel
    {
#pragma omp for schedule(static)
        for (int n = 0; n < N; n++) {
            const float *restrict x = inp + (size_t)n * C;
            const float *restrict dy = dout + (size_t)n * C;
            float *restrict dx = dinp + (size_t)n * C;
            float dot = 0.0f, r = rstd[n];
#pragma omp simd reduction(+:dot)
            for (int c = 0; c < C; c++)
                dot += dy[c] * w[c] * x[c];
            float k = r * r * r * dot / (float)C;
            for (int c = 0; c < C; c++)
                dx[c] += r * w[c] * dy[c] - k * x[c];
        }
        int c0, c1;
        strip(C, omp_get_thread_num(), omp_get_num_threads(), &c0, &c1);
        for (int n = 0; n < N; n++) {
            const float *restrict x = inp + (size_t)n * C;
            const float *restrict dy = dout + (size_t)n * C;
            float r = rstd[n];
            for (int c = c0; c < c1; c++)
                dw[c] += dy[c] * x[c] * r;
        }
    }
}

static void rope(float *x, const float *cos_t, const float *sin_t,
                 int B, int T, int nh, int hd, int stride, float sign)
{
    int h2 = hd / 2;
#pragma omp parallel for schedule(static) if ((size_t)B * T * nh * hd >= PAR_MIN)
    for (int bt = 0; bt < B * T; bt++) {
        int t = bt % T;
        const float *restrict c = cos_t + (size_t)t * h2;
        const float *restrict s = sin_t + (size_t)t * h2;
        for (int h = 0; h < nh; h++) {
            float *restrict p = x + (size_t)bt * stride + (size_t)h * hd;
            for (int i = 0; i < h2; i++) {
                float x0 = p[2 * i], x1 = p[2 * i + 1], si = sign * s[i];
                p[2 * i] = x0 * c[i] - x1 * si;
                p[2 * i + 1] = x0 * si + x1 * c[i];
            }
        }
    }
}

static void rope_forward(float *x, const float *cos_t, const float *sin_t,
                         int B, int T, int nh, int hd, int stride)
{
    rope(x, cos_t, sin_t, B, T, nh, hd, stride, 1.0f);
}

static void rope_backward(float *dx, const float *cos_t, const float *sin_t,
                          int B, int T, int nh, int hd, int stride)
{
    rope(dx, cos_t, sin_t, B, T, nh, hd, stride, -1.0f);
}

static int imin(int a, int b)
{
    return a < b ? a : b;
}

/* Attention keeps no (B, H, T, T) tensor: the forward keeps, for each
 * query row (b, h, t), its softmax's maximum and the reciprocal of its
 * sum, saved[2 (bh T + t)] and the float after it, and the backward
 * recomputes the probabilities from them with the forward's own products
 * and operations, so bit for bit the forward's (flash attention's memory:
 * 2 floats a row where it kept T; SmolLM2-135M's fine-tuning at batch 8 x
 * 256 holds 566 MB less). Both work a tile of TILE queries at a time in a
 * thread's part of the scratch, L2-sized: its probabilities (and in the
 * backward their gradients) over the keys up to the tile's last. The
 * products read the head's keys and values from panels packed once for
 * the task (llm_cpu_panel; below, where tasks are cut, once for all the
 * units of a group), where a product of each tile would pack its prefix
 * of them again (on average T / (2 TILE) times each: 8 at T =
 * 1024). With documents packed in rows (`start`), a tile reads the keys
 * from its earliest document's start only, down to a multiple of
 * LLM_PANEL_STEP (first_key): the probabilities of those before are exact
 * zeros, and the products from there give the whole products' bits
 * (cpu.h): a tile of Multi30k's pairs (some 70 tokens each) packed in rows
 * of 1024 reads two or three blocks of 64 keys where it read up to 16, and
 * training gives the same bytes.
 * (The cut below still weighs each tile by all its keys: it follows the
 * shape, not the documents.)
 *
 * The forward's tasks are heads (b, h), the backward's groups (b, kv
 * head) of the query heads sharing a kv head, whose tiles add into its dK
 * and dV. Where a layer has fewer than UNITS tasks (short batches,
 * grouped-query heads: SmolLM2-135M at batch 1 has 3 groups, 2 threads
 * would take 2 rounds of them, 16 threads leave 13 idle) each task is cut
 * into units of consecutive tiles of about equal cost, shared out to the
 * threads in equal runs; a unit of the backward but a group's first adds
 * its dK and dV into a partial of its own, summed into the group's after
 * all units in the order of the units. The cut follows the shape (B, T,
 * H, KVH) alone, so the bits do not depend on the thread count (the
 * forward's not on the cut either). UNITS is a compromise measured on 2
 * threads: the partials and the panels packed for all groups at once
 * (below) cost nothing measurable at SmolLM2's 24 groups (batch 8 x 256),
 * but 13% of the forward of stories15M's 48 heads (batch 8), which
 * therefore stay whole. The loops run on the whole team, threads without
 * a unit idle: a team of fewer would end libgomp's other threads, to be
 * started anew by the next product's team, every layer. */
#define UNITS 32

static size_t attention_saved(int B, int T, int H)
{
    return 2 * (size_t)B * H * T;
}

/* n floats rounded up to 64 bytes. */
static size_t lines(size_t n)
{
    return (n + 15) & ~(size_t)15;
}

/* A task's tiles, in order: the backward's rep query heads' (the
 * forward's one head's) nt = ceil(T / TILE) tiles each. Tile i's queries
 * [*r0, *r0 + *m); its products cost m (r0 + m) (queries x keys). */
static int64_t tile_of(int i, int nt, int T, int *r0, int *m)
{
    *r0 = i % nt * TILE;
    *m = imin(TILE, T - *r0);
    return (int64_t)*m * (*r0 + *m);
}

/* Units per task, for a layer of the given tasks of n tiles each (1
 * for an empty layer, which the library sizes too). */
static int units(int tasks, int n)
{
    int U = tasks > 0 ? (UNITS + tasks - 1) / tasks : 1;
    return U > n ? (n > 0 ? n : 1) : U;
}

/* Unit u of U of a task of n tiles: tiles [*i0, *i1), cut where the cost
 * so far reaches u / U of the task's (the first unit is never empty), and
 * *end, the keys they read (the last tile's end; T if they end a head). */
static void unit_tiles(int u, int U, int n, int nt, int T, int *i0, int *i1, int *end)
{
    int64_t total = 0, sum = 0;
    int r0, m, i = 0;
    for (int j = 0; j < n; j++)
        total += tile_of(j, nt, T, &r0, &m);
    while (i < n && sum * U < u * total)
        sum += tile_of(i++, nt, T, &r0, &m);
    *i0 = i;
    while (i < n && sum * U < (u + 1) * total)
        sum += tile_of(i++, nt, T, &r0, &m);
    *i1 = i;
    *end = 0;
    for (int j = *i0; j < *i1; j++) {
        tile_of(j, nt, T, &r0, &m);
        *end = r0 + m > *end ? r0 + m : *end;
    }
}

/* The scratch of a call, 64-byte aligned from a pointer that may not be
 * (16 floats more), in floats of whole cache lines: a part for each
 * thread of the team (a tile's probabilities, TILE x T, the backward's
 * and their gradients too; the products' work; where tasks are not cut,
 * the panels of its task's group); where tasks are cut into units, each
 * group's panels, packed once for all the units that read them, and the
 * backward's partials: a unit's dK and dV (T x hd each, rows [0, end)
 * used) for each unit but a group's first. A group's panels are the
 * forward's K^T and V, the backward's K^T, K and V^T. Packed in the
 * thread's part and used at once, a task's panels stay in its core's
 * cache; packed for all groups first, they go out to memory. */
typedef struct {
    float *base;
    int T, hd, backward, U;   /* U: units per task */
    size_t tile, thread, kt, kn, group, threads, groups, partials;
} attention_plan;

static attention_plan plan_of(float *scratch, int B, int T, int H, int KVH, int hd,
                              int backward)
{
    int nt = (T + TILE - 1) / TILE;
    attention_plan p = {
        .base = scratch ? (float *)(((uintptr_t)scratch + 63) & ~(uintptr_t)63) : NULL,
        .T = T, .hd = hd, .backward = backward,
        .U = backward ? units(B * KVH, H / KVH * nt) : units(B * H, nt),
        .tile = lines((size_t)imin(TILE, T) * T),
        .kt = lines(llm_cpu_panel_floats(hd, T)), .kn = lines(llm_cpu_panel_floats(T, hd)),
        .threads = (size_t)omp_get_max_threads(), .groups = (size_t)B * KVH,
    };
    p.group = (backward ? 2 : 1) * p.kt + p.kn;
    p.thread = (backward ? 2 : 1) * p.tile + lines(llm_cpu_panel_work(T > hd ? T : hd)) +
               (p.U == 1 ? p.group : 0);
    p.partials = backward ? p.groups * (size_t)(p.U - 1) : 0;
    return p;
}

static size_t plan_floats(const attention_plan *p)
{
    return p->threads * p->thread + (p->U > 1 ? p->groups * p->group : 0) +
           p->partials * 2 * (size_t)p->T * p->hd + 16;
}

/* Thread id's probabilities P (the backward's gradients D after them)
 * and work (its task's panels after it). */
static float *thread_part(const attention_plan *p, int id, float **work)
{
    float *P = p->base + (size_t)id * p->thread;
    *work = P + (p->backward ? 2 : 1) * p->tile;
    return P;
}

/* Panel pi of group g (b, kv head): 0 its K^T (hd x T), 1 the forward's
 * V or the backward's K (T x hd), 2 the backward's V^T; in the group's
 * place, or where tasks are not cut in thread id's part. Packed from qkv,
 * or (pack 0) described, as packed before. */
static void panel(const attention_plan *p, llm_cpu_panel *pn, int pack, int bf16, size_t g,
                  int id, int pi, const float *qkv, int H, int KVH)
{
    int T = p->T, hd = p->hd, QS = (H + 2 * KVH) * hd, b = (int)g / KVH, kh = (int)g % KVH;
    int v = pi == 2 || (pi == 1 && !p->backward), tb = pi != 1;
    float *mem = p->U == 1 ? p->base + (size_t)(id + 1) * p->thread - p->group
                           : p->base + p->threads * p->thread + g * p->group;
    mem += (pi ? p->kt : 0) + (pi > 1 ? p->kn : 0);
    const float *src = qkv + (size_t)b * T * QS + (size_t)(H + (v ? KVH : 0) + kh) * hd;
    if (pack)
        llm_cpu_panel_pack(pn, mem, bf16, src, QS, tb, tb ? hd : T, tb ? T : hd);
    else
        llm_cpu_panel_at(pn, mem, bf16, tb ? hd : T, tb ? T : hd);
}

/* The backward's partial of unit u > 0 of group g: its dK, dV after. */
static float *partial(const attention_plan *p, size_t g, int u)
{
    size_t e = g * (size_t)(p->U - 1) + (size_t)u - 1;
    return p->base + p->threads * p->thread + p->groups * p->group +
           e * 2 * (size_t)p->T * p->hd;
}

/* The backward's scratch holds the forward's too (their tasks are cut
 * differently). */
static size_t attention_scratch(int B, int T, int H, int KVH, int hd, int backward)
{
    attention_plan f = plan_of(NULL, B, T, H, KVH, hd, 0);
    attention_plan b = plan_of(NULL, B, T, H, KVH, hd, 1);
    size_t nf = plan_floats(&f), nb = plan_floats(&b);
    return backward && nb > nf ? nb : nf;
}

/* Where tasks are cut: packs every group's panels, on the team of the
 * enclosing region. */
static void pack_panels(const attention_plan *p, int bf16, const float *qkv, int H, int KVH)
{
    if (p->U == 1)
        return;
    int np = p->backward ? 3 : 2;
#pragma omp for schedule(static)
    for (size_t w = 0; w < p->groups * np; w++) {
        llm_cpu_panel pn;
        panel(p, &pn, 1, bf16, w / np, 0, (int)(w % np), qkv, H, KVH);
    }
}

/* The panels of group g for a unit on thread id: packed there where
 * tasks are not cut, else described. */
static void unit_panels(const attention_plan *p, int bf16, size_t g, int id, const float *qkv,
                        int H, int KVH, llm_cpu_panel *pn)
{
    for (int pi = 0; pi < (p->backward ? 3 : 2); pi++)
        panel(p, &pn[pi], p->U == 1, bf16, g, id, pi, qkv, H, KVH);
}

/* Row t of the probabilities from its scores row[kf, t] (read where t >=
 * s0 only): the forward's softmax over [s0, t], keeping its maximum and
 * reciprocal sum in keep[0] and keep[1], or (keep NULL) those of from;
 * 0 over [kf, s0) and (t, end), where the tile's products read. */
static void probs_row(float *row, int kf, int s0, int t, int end, float *keep,
                      const float *from)
{
    for (int s = kf; s < s0; s++)
        row[s] = 0.0f;
    if (keep) {
        float m = -INFINITY, sum = 0.0f;
#pragma omp simd reduction(max:m)
        for (int s = s0; s <= t; s++)
            m = row[s] > m ? row[s] : m;
#pragma omp simd reduction(+:sum)
        for (int s = s0; s <= t; s++) {
            float e = fast_expf(row[s] - m);
            row[s] = e;
            sum += e;
        }
        float r = 1.0f / sum;
#pragma omp simd
        for (int s = s0; s <= t; s++)
            row[s] *= r;
        keep[0] = m;
        keep[1] = r;
    } else {
        float m = from[0], r = from[1];
#pragma omp simd
        for (int s = s0; s <= t; s++)
            row[s] = fast_expf(row[s] - m) * r;
    }
    for (int s = t + 1; s < end; s++)
        row[s] = 0.0f;
}

/* The first key that queries [r0, r0 + m) of row b read: their earliest
 * document's start (0 without documents), down to a multiple of
 * LLM_PANEL_STEP. */
static int first_key(const int32_t *start, int b, int T, int r0, int m)
{
    if (!start)
        return 0;
    int s = r0;
    for (int i = 0; i < m; i++)
        s = imin(s, start[(size_t)b * T + r0 + i]);
    return s / LLM_PANEL_STEP * LLM_PANEL_STEP;
}

/* P(m x (r0 + m)) at ld T, columns [kf, r0 + m) of them, the probabilities
 * of queries [r0, r0 + m) of head h of row b, from the scores against the
 * panel kt of its keys: the forward's, keeping each row's maximum and
 * reciprocal sum in keep (T pairs for the head), or the backward's from
 * those pairs (keep NULL). */
static void probs_tile(float *P, const llm_cpu_panel *kt, float *work, const float *qkv,
                       const int32_t *start, float *keep, const float *from, int b, int h,
                       int r0, int m, int kf, int T, int H, int KVH, int hd)
{
    int QS = (H + 2 * KVH) * hd;
    const float *q = qkv + (size_t)b * T * QS + (size_t)h * hd;
    llm_cpu_panel_gemm(0, m, r0 + m, hd, kf, 0, 1.0f / sqrtf((float)hd), q + (size_t)r0 * QS,
                       QS, kt, 0.0f, P, T, work);
    for (int i = 0; i < m; i++) {
        int t = r0 + i, s0 = start ? start[(size_t)b * T + t] : 0;
        probs_row(P + (size_t)i * T, kf, s0, t, r0 + m, keep ? keep + 2 * t : NULL,
                  keep ? NULL : from + 2 * t);
    }
}

/* Attention whose products are llm_cpu_gemm's, or with bf16
 * llm_cpu_gemm_bf16's: a unit of a head's tiles at a time. */
static void attend_forward(int bf16, float *out, float *saved, float *scratch,
                           const float *qkv, const int32_t *start, int B, int T, int H,
                           int KVH, int hd)
{
    int OS = H * hd, rep = H / KVH, nt = (T + TILE - 1) / TILE;
    attention_plan p = plan_of(scratch, B, T, H, KVH, hd, 0);
    int blas = blas_serial_begin();
#pragma omp parallel
    {
        pack_panels(&p, bf16, qkv, H, KVH);
#pragma omp for schedule(static)
        for (int w = 0; w < B * H * p.U; w++) {
            int bh = w / p.U, b = bh / H, h = bh % H, i0, i1, end;
            unit_tiles(w % p.U, p.U, nt, nt, T, &i0, &i1, &end);
            int id = omp_get_thread_num();
            float *work, *P = thread_part(&p, id, &work);
            llm_cpu_panel pn[2];   /* K^T, V */
            unit_panels(&p, bf16, (size_t)b * KVH + h / rep, id, qkv, H, KVH, pn);
            for (int i = i0; i < i1; i++) {
                int r0, m;
                tile_of(i, nt, T, &r0, &m);
                int kf = first_key(start, b, T, r0, m);
                probs_tile(P, &pn[0], work, qkv, start, saved + (size_t)bh * 2 * T, NULL, b, h,
                           r0, m, kf, T, H, KVH, hd);
                llm_cpu_panel_gemm(0, m, hd, r0 + m, 0, kf, 1.0f, P, T, &pn[1], 0.0f,
                                   out + ((size_t)b * T + r0) * OS + (size_t)h * hd, OS, work);
            }
        }
    }
    blas_serial_end(blas);
}

/* Group g's (b, kv head's) dK in dqkv, and its dV in *dv (QS apart rows). */
static float *group_dk(float *dqkv, int g, int T, int H, int KVH, int hd, float **dv)
{
    float *d = dqkv + (size_t)(g / KVH) * T * (H + 2 * KVH) * hd;
    *dv = d + (size_t)(H + KVH + g % KVH) * hd;
    return d + (size_t)(H + g % KVH) * hd;
}

/* A unit of a group (b, kv head): for each of its tiles in order (query
 * head, then queries), the tile's dQ, and its share of dK and dV over the
 * keys up to its end added into the group's dK and dV (by the group's
 * first unit, which zeroes them first) or into the unit's partial. Then
 * the partials are added into the group's dK and dV in the order of the
 * units. */
static void attend_backward(int bf16, float *dqkv, float *scratch, const float *dout,
                            const float *qkv, const float *saved, const int32_t *start, int B,
                            int T, int H, int KVH, int hd)
{
    gemm_fn *prod = bf16 ? llm_cpu_gemm_bf16 : llm_cpu_gemm;
    int QS = (H + 2 * KVH) * hd, OS = H * hd, rep = H / KVH, nt = (T + TILE - 1) / TILE;
    float scale = 1.0f / sqrtf((float)hd);
    attention_plan p = plan_of(scratch, B, T, H, KVH, hd, 1);
    int blas = blas_serial_begin();
#pragma omp parallel
    {
        pack_panels(&p, bf16, qkv, H, KVH);
#pragma omp for schedule(static)
        for (int w = 0; w < B * KVH * p.U; w++) {
            int g = w / p.U, u = w % p.U, b = g / KVH, kh = g % KVH, i0, i1, end;
            unit_tiles(u, p.U, rep * nt, nt, T, &i0, &i1, &end);
            const float *base = qkv + (size_t)b * T * QS;
            float *dbase = dqkv + (size_t)b * T * QS;
            float *dv, *dk = group_dk(dqkv, g, T, H, KVH, hd, &dv);
            int ld = QS;
            if (u == 0) {
                for (int t = 0; t < T; t++) {
                    memset(dk + (size_t)t * QS, 0, (size_t)hd * sizeof *dk);
                    memset(dv + (size_t)t * QS, 0, (size_t)hd * sizeof *dv);
                }
            } else {
                dk = partial(&p, (size_t)g, u);
                dv = dk + (size_t)T * hd;
                ld = hd;
                memset(dk, 0, (size_t)end * hd * sizeof *dk);
                memset(dv, 0, (size_t)end * hd * sizeof *dv);
            }
            int id = omp_get_thread_num();
            float *work, *P = thread_part(&p, id, &work), *D = P + p.tile;
            llm_cpu_panel pn[3];   /* K^T, K, V^T */
            unit_panels(&p, bf16, (size_t)g, id, qkv, H, KVH, pn);
            for (int i = i0; i < i1; i++) {
                int r0, m, h = kh * rep + i / nt;
                tile_of(i, nt, T, &r0, &m);
                int nk = r0 + m, kf = first_key(start, b, T, r0, m);
                size_t bh = (size_t)b * H + h;
                const float *qr = base + (size_t)r0 * QS + (size_t)h * hd;
                const float *dOr = dout + ((size_t)b * T + r0) * OS + (size_t)h * hd;
                probs_tile(P, &pn[0], work, qkv, start, NULL, saved + bh * 2 * T, b, h, r0, m,
                           kf, T, H, KVH, hd);
                /* dP = dO V^T. */
                llm_cpu_panel_gemm(0, m, nk, hd, kf, 0, 1.0f, dOr, OS, &pn[2], 0.0f, D, T, work);
                /* dS = P (dP - <dP, P>) * scale, 0 past the diagonal (the
                 * sum from kf, a multiple of 64: its lanes and so its bits
                 * those of the sum from 0, whose terms before are 0). */
                for (int r = 0; r < m; r++) {
                    const float *pr = P + (size_t)r * T;
                    float *d = D + (size_t)r * T;
                    int t = r0 + r;
                    float dot = 0.0f;
#pragma omp simd reduction(+:dot)
                    for (int s = kf; s <= t; s++)
                        dot += pr[s] * d[s];
                    for (int s = kf; s <= t; s++)
                        d[s] = pr[s] * (d[s] - dot) * scale;
                    for (int s = t + 1; s < nk; s++)
                        d[s] = 0.0f;
                }
                /* dQ = dS K; dV += P^T dO and dK += dS^T Q over keys [kf, nk). */
                llm_cpu_panel_gemm(0, m, hd, nk, 0, kf, 1.0f, D, T, &pn[1], 0.0f,
                                   dbase + (size_t)r0 * QS + (size_t)h * hd, QS, work);
                prod(1, 0, nk - kf, hd, m, 1.0f, P + kf, T, dOr, OS, 1.0f,
                     dv + (size_t)kf * ld, ld);
                prod(1, 0, nk - kf, hd, m, 1.0f, D + kf, T, qr, QS, 1.0f,
                     dk + (size_t)kf * ld, ld);
            }
        }
        if (p.U > 1) {
            /* The partials added, a block of TILE keys of a group at a time. */
#pragma omp for schedule(static)
            for (int w = 0; w < B * KVH * nt; w++) {
                int g = w / nt, s0 = w % nt * TILE, s1 = imin(T, s0 + TILE);
                float *dv, *dk = group_dk(dqkv, g, T, H, KVH, hd, &dv);
                for (int u = 1; u < p.U; u++) {
                    int i0, i1, end;
                    unit_tiles(u, p.U, rep * nt, nt, T, &i0, &i1, &end);
                    const float *pk = partial(&p, (size_t)g, u), *pv = pk + (size_t)T * hd;
                    for (int s = s0; s < imin(s1, end); s++) {
#pragma omp simd
                        for (int c = 0; c < hd; c++) {
                            dk[(size_t)s * QS + c] += pk[(size_t)s * hd + c];
                            dv[(size_t)s * QS + c] += pv[(size_t)s * hd + c];
                        }
                    }
                }
            }
        }
    }
    blas_serial_end(blas);
}

static void attention_forward(float *out, float *saved, float *scratch, const float *qkv,
                              const int32_t *start, int B, int T, int H, int KVH, int hd)
{
    attend_forward(0, out, saved, scratch, qkv, start, B, T, H, KVH, hd);
}

static void attention_forward_bf16(float *out, float *saved, float *scratch, const float *qkv,
                                   const int32_t *start, int B, int T, int H, int KVH, int hd)
{
    attend_forward(1, out, saved, scratch, qkv, start, B, T, H, KVH, hd);
}

/* out goes unread. */
static void attention_backward(float *dqkv, float *scratch, const float *dout,
                               const float *qkv, const float *out, const float *saved,
                               const int32_t *start, int B, int T, int H, int KVH, int hd)
{
    (void)out;
    attend_backward(0, dqkv, scratch, dout, qkv, saved, start, B, T, H, KVH, hd);
}

static void attention_backward_bf16(float *dqkv, float *scratch, const float *dout,
                                    const float *qkv, const float *out, const float *saved,
                                    const int32_t *start, int B, int T, int H, int KVH, int hd)
{
    (void)out;
    attend_backward(1, dqkv, scratch, dout, qkv, saved, start, B, T, H, KVH, hd);
}

static void swiglu_forward(float *out, const float *h13, int N, int F)
{
#pragma omp parallel for schedule(static) if ((size_t)N * F >= PAR_MIN)
    for (int n = 0; n < N; n++) {
        const float *restrict g = h13 + (size_t)n * 2 * F;
        const float *restrict u = g + F;
        float *restrict o = out + (size_t)n * F;
#pragma omp simd
        for (int f = 0; f < F; f++)
            o[f] = g[f] / (1.0f + fast_expf(-g[f])) * u[f];
    }
}

static void swiglu_backward(float *dh13, const float *dout, const float *h13,
                            int N, int F)
{
#pragma omp parallel for schedule(static)
    for (int n = 0; n < N; n++) {
        const float *restrict g = h13 + (size_t)n * 2 * F;
        const float *restrict u = g + F;
        const float *restrict d = dout + (size_t)n * F;
        float *restrict dg = dh13 + (size_t)n * 2 * F;
        float *restrict du = dg + F;
#pragma omp simd
        for (int f = 0; f < F; f++) {
            float sg = 1.0f / (1.0f + fast_expf(-g[f]));
            dg[f] = d[f] * u[f] * sg * (1.0f + g[f] * (1.0f - sg));
            du[f] = d[f] * g[f] * sg;
        }
    }
}

/* Split between the threads, so are the first touches of a new cache's
 * pages (the kernel zeroes each 2 MiB page on the thread that touches it). */
static void copy_rows(float *const *dst, const float *src, size_t lds, int N, int n)
{
#pragma omp parallel for schedule(static) if ((size_t)N * n >= PAR_MIN)
    for (int i = 0; i < N; i++)
        memcpy(dst[i], src + (size_t)i * lds, (size_t)n * sizeof *src);
}

static void copy_rows_bf16(uint16_t *const *dst, const float *src, size_t lds, int N, int n)
{
#pragma omp parallel for schedule(static) if ((size_t)N * n >= PAR_MIN)
    for (int i = 0; i < N; i++)
        for (int j = 0; j < n; j++)
            dst[i][j] = llm_float_to_bf16(src[(size_t)i * lds + j]);
}

static void residual_forward(float *out, const float *a, const float *b, size_t n)
{
#pragma omp parallel for simd schedule(static) if (n >= PAR_MIN)
    for (size_t i = 0; i < n; i++)
        out[i] = a[i] + b[i];
}

static void crossentropy_forward(float *losses, float *dlogits,
                                 const float *logits, const int32_t *targets,
                                 int N, int V, float dscale, float eps)
{
#pragma omp parallel for schedule(static)
    for (int n = 0; n < N; n++) {
        const float *l = logits + (size_t)n * V;
        float *e = dlogits ? dlogits + (size_t)n * V : NULL;
        int y = targets[n];
        if (y < 0) {
            losses[n] = 0.0f;
            if (e)
                memset(e, 0, (size_t)V * sizeof *e);
            continue;
        }
        float mx = -INFINITY, sum = 0.0f, ly = l[y], tot = 0.0f;
#pragma omp simd reduction(max:mx)
        for (int i = 0; i < V; i++)
            mx = l[i] > mx ? l[i] : mx;
        if (eps > 0.0f) {   /* before e overwrites l */
#pragma omp simd reduction(+:tot)
            for (int i = 0; i < V; i++)
                tot += l[i];
        }
        if (e) {
            /* e may be l itself: each element is read before it is written. */
#pragma omp simd reduction(+:sum)
            for (int i = 0; i < V; i++) {
                float x = fast_expf(l[i] - mx);
                e[i] = x;
                sum += x;
            }
            float k = dscale / sum;
            if (eps > 0.0f) {
                float u = eps * dscale / (float)V;
#pragma omp simd
                for (int i = 0; i < V; i++)
                    e[i] = e[i] * k - u;
                e[y] -= (1.0f - eps) * dscale;
            } else {
#pragma omp simd
                for (int i = 0; i < V; i++)
                    e[i] *= k;
                e[y] -= dscale;
            }
        } else {
#pragma omp simd reduction(+:sum)
            for (int i = 0; i < V; i++)
                sum += fast_expf(l[i] - mx);
        }
        if (eps > 0.0f)
            losses[n] = (float)(log((double)sum) + mx - (1.0 - eps) * ly -
                                eps * ((double)tot / V));
        else
            losses[n] = (float)(log((double)sum) + mx - ly);
    }
}

static void adamw_update(float *p, const float *g, float *m, float *v,
                         size_t n, float lr, float beta1, float beta2,
                         float eps, float wd, int t)
{
    float ic1 = (float)(1.0 / (1.0 - pow(beta1, t)));
    float ic2 = (float)(1.0 / (1.0 - pow(beta2, t)));
    float a1 = 1.0f - beta1, a2 = 1.0f - beta2;
#pragma omp parallel for simd schedule(static)
    for (size_t i = 0; i < n; i++)
        llm_adamw_one(p, g, m, v, i, lr, beta1, beta2, a1, a2, eps, wd, ic1, ic2);
}

/* Fixed chunks, whatever the thread count, summed in chunk order. */
#define SS_CHUNKS 64
static double sum_squares(const float *x, size_t n)
{
    double part[SS_CHUNKS];
    size_t len = (n + SS_CHUNKS - 1) / SS_CHUNKS;
#pragma omp parallel for schedule(static)
    for (int c = 0; c < SS_CHUNKS; c++) {
        size_t i0 = (size_t)c * len, i1 = i0 + len;
        if (i0 > n)
            i0 = n;
        if (i1 > n)
            i1 = n;
        double s = 0.0;
#pragma omp simd reduction(+:s)
        for (size_t i = i0; i < i1; i++)
            s += (double)x[i] * x[i];
        part[c] = s;
    }
    double s = 0.0;
    for (int c = 0; c < SS_CHUNKS; c++)
        s += part[c];
    return s;
}

static void scale(float *x, size_t n, float s)
{
#pragma omp parallel for simd schedule(static)
    for (size_t i = 0; i < n; i++)
        x[i] *= s;
}

static void axpy(float *y, int ldy, const float *x, int ldx, int N, int C, float a)
{
#pragma omp parallel for schedule(static) if ((size_t)N * C >= PAR_MIN)
    for (int n = 0; n < N; n++) {
        float *restrict yr = y + (size_t)n * ldy;
        const float *restrict xr = x + (size_t)n * ldx;
#pragma omp simd
        for (int c = 0; c < C; c++)
            yr[c] += a * xr[c];
    }
}

static const llm_kernels cpu_kernels = {
    .name = "cpu",
    LLM_HOST_MEMORY,
    LLM_TRAINING_ENTRIES,
    .matmul_rows = llm_cpu_matmul_rows,
    .matmul_rows_packed = llm_cpu_matmul_rows_packed,
    .matmul_rows_scratch = llm_cpu_matmul_rows_scratch,
    .attention_rows = llm_cpu_attention_rows,
    .copy_rows = copy_rows,
    .attention_rows_bf16 = llm_cpu_attention_rows_bf16,
    .copy_rows_bf16 = copy_rows_bf16,
    .to_half = llm_cpu_to_half,
    .quantize_q8 = llm_cpu_quantize_q8,
    .quantize_q16 = llm_cpu_quantize_q16,
    .matmul_rows_q8 = llm_cpu_matmul_rows_q8,
    .pack_bf16 = llm_cpu_pack_bf16,
    .matmul_rows_bf16 = llm_cpu_matmul_rows_bf16,
    .logits_max = llm_cpu_logits_max,
    .softmax_weights = llm_cpu_softmax_weights,
    .find_first = llm_cpu_find_first,
    .linear_f64 = llm_cpu_linear_f64,
    .dropout = llm_cpu_dropout,
};

/* llm_kernels_cpu_<level>(); kernels.c's llm_kernels_cpu() chooses. */
const llm_kernels *LLM_CPU_NAME(llm_kernels_cpu)(void)
{
    return &cpu_kernels;
}
