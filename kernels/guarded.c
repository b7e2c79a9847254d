/* guarded.c: the "guarded" table, the cpu kernels behind a wall. Its
 * device memory is host memory mapped PROT_NONE except while one of the
 * table's entries runs, so that the library's every read or write of a
 * weight, gradient, moment, activation or cache outside the table faults
 * at once (SIGSEGV), where a GPU backend would read garbage or crash far
 * away. Same arithmetic and bits as the cpu table it wraps: the whole test
 * suite runs on it unchanged (LLM_KERNELS=guarded, make check-guarded).
 *
 * Entries may run at once on several of the library's threads
 * (llm_kernels_parallel()): the blocks open with the first entry to start
 * and close with the last to finish. While one entry runs, another thread's
 * stray access goes unseen; every test also runs single-threaded paths,
 * where it does not. */
#include <errno.h>
#include <stdint.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "cpu/cpu.h"
#include "kernels.h"

/* All blocks lie in one arena of reserved address space, so that opening
 * and closing them is one mprotect() over its used part, [arena, arena +
 * top), whatever the number of blocks. The arena is advised into
 * transparent huge pages and top kept on 2 MiB boundaries, so that those
 * calls rewrite few page entries. Blocks are 64-byte aligned, placed
 * first-fit; a freed block's whole pages are given back to the kernel. */
#define ARENA ((size_t)1 << 40)          /* address space, not memory */
#define STEP ((size_t)2 << 20)           /* top grows by whole huge pages */
#define ALIGN ((size_t)64)

typedef struct {
    size_t off, len;   /* bytes from the arena's start; sorted by off */
} block;

static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static char *arena;
static size_t top;       /* bytes of the arena in use (opened and closed) */
static block *blocks;
static size_t n_blocks, cap_blocks;
static int open_count;   /* entries running */
static const llm_kernels *cpu;

static void die(const char *what)
{
    fprintf(stderr, "guarded kernels: %s: %s\n", what, strerror(errno));
    abort();
}

static void protect(size_t from, size_t to, int prot)
{
    if (to > from && mprotect(arena + from, to - from, prot))
        die("mprotect");
}

static void enter(void)
{
    pthread_mutex_lock(&lock);
    if (open_count++ == 0)
        protect(0, top, PROT_READ | PROT_WRITE);
    pthread_mutex_unlock(&lock);
}

static void leave(void)
{
    pthread_mutex_lock(&lock);
    if (--open_count == 0)
        protect(0, top, PROT_NONE);
    pthread_mutex_unlock(&lock);
}

/* Called with the lock held. */
static int reserve(void)
{
    if (arena)
        return 0;
    void *p = mmap(NULL, ARENA, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE,
                   -1, 0);
    if (p == MAP_FAILED)
        return -1;
    arena = p;
#ifdef MADV_HUGEPAGE
    (void)madvise(arena, ARENA, MADV_HUGEPAGE);
#endif
    return 0;
}

static void *g_alloc(size_t bytes)
{
    if (bytes > ARENA / 2)
        return NULL;
    size_t len = bytes ? (bytes + ALIGN - 1) & ~(ALIGN - 1) : ALIGN;
    void *p = NULL;
    pthread_mutex_lock(&lock);
    if (reserve())
        goto out;
    if (n_blocks == cap_blocks) {
        size_t cap = cap_blocks ? 2 * cap_blocks : 64;
        block *b = realloc(blocks, cap * sizeof *b);
        if (!b)
            goto out;
        blocks = b;
        cap_blocks = cap;
    }
    /* First fit: the lowest gap that holds len bytes. */
    size_t at = 0, i = 0;
    for (; i < n_blocks && blocks[i].off < at + len; i++)
        at = blocks[i].off + blocks[i].len;
    if (at + len > ARENA)
        goto out;
    if (at + len > top) {   /* the used part grows, open if the rest is */
        size_t t = (at + len + STEP - 1) & ~(STEP - 1);
        protect(top, t, open_count ? PROT_READ | PROT_WRITE : PROT_NONE);
        top = t;
    }
    memmove(blocks + i + 1, blocks + i, (n_blocks - i) * sizeof *blocks);
    blocks[i] = (block){ at, len };
    n_blocks++;
    p = arena + at;
    /* Uninitialised, as the contract says: garbage, not the zeros of fresh
     * pages, so that a missing zero() shows. */
    if (!open_count)
        protect(at & ~(STEP - 1), (at + len + STEP - 1) & ~(STEP - 1),
                PROT_READ | PROT_WRITE);
    memset(p, 0xff, len);   /* NaN floats, -1 ints */
    if (!open_count)
        protect(at & ~(STEP - 1), (at + len + STEP - 1) & ~(STEP - 1), PROT_NONE);
out:
    pthread_mutex_unlock(&lock);
    return p;
}

static void g_free(void *p)
{
    if (!p)
        return;
    pthread_mutex_lock(&lock);
    size_t off = (size_t)((char *)p - arena);
    for (size_t i = 0; arena && (char *)p >= arena && i < n_blocks; i++)
        if (blocks[i].off == off) {
            /* Its whole pages back to the kernel: they read as zeros after. */
            size_t page = (size_t)sysconf(_SC_PAGESIZE);
            size_t a = (off + page - 1) & ~(page - 1);
            size_t b = (off + blocks[i].len) & ~(page - 1);
            if (b > a)
                (void)madvise(arena + a, b - a, MADV_DONTNEED);
            memmove(blocks + i, blocks + i + 1, (n_blocks - i - 1) * sizeof *blocks);
            n_blocks--;
            pthread_mutex_unlock(&lock);
            return;
        }
    pthread_mutex_unlock(&lock);
    fprintf(stderr, "guarded kernels: free of %p, which is not a block of the table\n", p);
    abort();
}

static void g_copy(void *dst, const void *src, size_t bytes)
{
    const char *d = dst, *s = src;
    if (bytes && d < s + bytes && s < d + bytes) {   /* cudaMemcpy would not do it */
        fprintf(stderr, "guarded kernels: copy of %zu bytes between overlapping ranges\n",
                bytes);
        abort();
    }
    enter();
    if (bytes)
        memcpy(dst, src, bytes);
    leave();
}

static void g_zero(void *dst, size_t bytes)
{
    enter();
    if (bytes)
        memset(dst, 0, bytes);
    leave();
}

/* Every compute entry: open, the cpu kernel, close. */
#define WRAP(ret, name, params, args)      \
    static ret g_##name params              \
    {                                       \
        enter();                            \
        ret r_ = cpu->name args;            \
        leave();                            \
        return r_;                          \
    }
#define WRAPV(name, params, args)          \
    static void g_##name params             \
    {                                       \
        enter();                            \
        cpu->name args;                     \
        leave();                            \
    }

WRAPV(matmul_forward, (float *out, const float *inp, const float *w, int N, int IC, int OC),
      (out, inp, w, N, IC, OC))
WRAPV(matmul_backward, (float *dinp, float *dw, const float *dout, const float *inp,
                        const float *w, int N, int IC, int OC),
      (dinp, dw, dout, inp, w, N, IC, OC))
WRAPV(matmul_forward_bf16, (float *out, const float *inp, const float *w, int N, int IC,
                            int OC),
      (out, inp, w, N, IC, OC))
WRAPV(matmul_backward_bf16, (float *dinp, float *dw, const float *dout, const float *inp,
                             const float *w, int N, int IC, int OC),
      (dinp, dw, dout, inp, w, N, IC, OC))
WRAPV(embedding_forward, (float *out, const int32_t *tokens, const float *wte, int N, int C),
      (out, tokens, wte, N, C))
WRAPV(embedding_backward, (float *dwte, const float *dout, const int32_t *tokens, int N,
                           int C),
      (dwte, dout, tokens, N, C))
WRAPV(rmsnorm_forward, (float *out, float *rstd, const float *inp, const float *w, int N,
                        int C, float eps),
      (out, rstd, inp, w, N, C, eps))
WRAPV(rmsnorm_backward, (float *dinp, float *dw, const float *dout, const float *inp,
                         const float *w, const float *rstd, int N, int C),
      (dinp, dw, dout, inp, w, rstd, N, C))
WRAPV(rope_forward, (float *x, const float *cos_t, const float *sin_t, int B, int T, int nh,
                     int hd, int stride),
      (x, cos_t, sin_t, B, T, nh, hd, stride))
WRAPV(rope_backward, (float *dx, const float *cos_t, const float *sin_t, int B, int T,
                      int nh, int hd, int stride),
      (dx, cos_t, sin_t, B, T, nh, hd, stride))
WRAPV(attention_forward, (float *out, float *att, float *scratch, const float *qkv,
                          const int32_t *start, int B, int T, int H, int KVH, int hd),
      (out, att, scratch, qkv, start, B, T, H, KVH, hd))
WRAPV(attention_backward, (float *dqkv, float *scratch, const float *dout, const float *qkv,
                           const float *out, const float *att, const int32_t *start, int B,
                           int T, int H, int KVH, int hd),
      (dqkv, scratch, dout, qkv, out, att, start, B, T, H, KVH, hd))
WRAPV(attention_forward_bf16, (float *out, float *att, float *scratch, const float *qkv,
                               const int32_t *start, int B, int T, int H, int KVH, int hd),
      (out, att, scratch, qkv, start, B, T, H, KVH, hd))
WRAPV(attention_backward_bf16, (float *dqkv, float *scratch, const float *dout,
                                const float *qkv, const float *out, const float *att,
                                const int32_t *start, int B, int T, int H, int KVH, int hd),
      (dqkv, scratch, dout, qkv, out, att, start, B, T, H, KVH, hd))
WRAPV(swiglu_forward, (float *out, const float *h13, int N, int F), (out, h13, N, F))
WRAPV(swiglu_backward, (float *dh13, const float *dout, const float *h13, int N, int F),
      (dh13, dout, h13, N, F))
WRAPV(residual_forward, (float *out, const float *a, const float *b, size_t n),
      (out, a, b, n))
WRAPV(crossentropy_forward, (float *losses, float *dlogits, const float *logits,
                             const int32_t *targets, int N, int V, float dscale, float eps),
      (losses, dlogits, logits, targets, N, V, dscale, eps))
WRAPV(adamw_update, (float *p, const float *g, float *m, float *v, size_t n, float lr,
                     float beta1, float beta2, float eps, float wd, int t),
      (p, g, m, v, n, lr, beta1, beta2, eps, wd, t))
WRAP(double, sum_squares, (const float *x, size_t n), (x, n))
WRAPV(scale, (float *x, size_t n, float s), (x, n, s))
WRAPV(axpy, (float *y, int ldy, const float *x, int ldx, int N, int C, float a),
      (y, ldy, x, ldx, N, C, a))
WRAPV(matmul_rows, (float *out, size_t ldo, const float *inp, size_t ldi, const int *map,
                    const void *w, int half, int N, int IC, int OC),
      (out, ldo, inp, ldi, map, w, half, N, IC, OC))
WRAPV(matmul_rows_packed, (float *out, size_t ldo, const float *inp, size_t ldi,
                           const int *map, const float *w, float *scratch, int N, int IC,
                           int OC),
      (out, ldo, inp, ldi, map, w, scratch, N, IC, OC))
WRAPV(attention_rows, (float *out, size_t ldo, const float *const *q, const float *const *K,
                       const float *const *V, size_t kvs, const int *len, int n, int H,
                       int KVH, int hd, float *scratch, int maxlen),
      (out, ldo, q, K, V, kvs, len, n, H, KVH, hd, scratch, maxlen))
WRAPV(copy_rows, (float *const *dst, const float *src, size_t lds, int N, int n),
      (dst, src, lds, N, n))
WRAPV(attention_rows_bf16, (float *out, size_t ldo, const float *const *q,
                            const uint16_t *const *K, const uint16_t *const *V, size_t kvs,
                            const int *len, int n, int H, int KVH, int hd, float *scratch,
                            int maxlen),
      (out, ldo, q, K, V, kvs, len, n, H, KVH, hd, scratch, maxlen))
WRAPV(copy_rows_bf16, (uint16_t *const *dst, const float *src, size_t lds, int N, int n),
      (dst, src, lds, N, n))
WRAP(size_t, to_half, (uint16_t *h, const float *f, size_t n), (h, f, n))
WRAP(int, quantize_q8, (void *w, const float *inp, size_t ldi, const int *map, int N, int IC),
     (w, inp, ldi, map, N, IC))
WRAP(int, quantize_q16, (int16_t *q, float *d, float *s, const float *inp, size_t ldi,
                         const int *map, int N, int IC),
     (q, d, s, inp, ldi, map, N, IC))
WRAPV(matmul_rows_q8, (float *out, size_t ldo, const int *map, const int16_t *xq,
                       const float *xd, const float *xs, const void *w, int N, int IC,
                       int OC),
      (out, ldo, map, xq, xd, xs, w, N, IC, OC))
WRAPV(pack_bf16, (uint32_t *dst, const float *w, int IC, int OC), (dst, w, IC, OC))
WRAPV(matmul_rows_bf16, (float *out, size_t ldo, const float *inp, size_t ldi, const int *map,
                         const uint32_t *w, int o0, uint32_t *scratch, int N, int IC, int OC),
      (out, ldo, inp, ldi, map, w, o0, scratch, N, IC, OC))
WRAPV(linear_f64, (float *out, const float *inp, const float *w, const float *b, int N,
                   int C, int K),
      (out, inp, w, b, N, C, K))
WRAPV(dropout, (float *x, size_t n, double p, uint64_t key), (x, n, p, key))

static llm_kernels guarded = {
    .name = "guarded",
    .alloc = g_alloc, .free = g_free, .upload = g_copy, .download = g_copy,
    .copy = g_copy, .zero = g_zero, .host_memory = 0,
    .matmul_forward = g_matmul_forward,
    .matmul_backward = g_matmul_backward,
    .matmul_forward_bf16 = g_matmul_forward_bf16,
    .matmul_backward_bf16 = g_matmul_backward_bf16,
    .embedding_forward = g_embedding_forward,
    .embedding_backward = g_embedding_backward,
    .rmsnorm_forward = g_rmsnorm_forward,
    .rmsnorm_backward = g_rmsnorm_backward,
    .rope_forward = g_rope_forward,
    .rope_backward = g_rope_backward,
    .attention_saved = NULL,   /* the cpu's: sizes, no memory */
    .attention_scratch = NULL,
    .attention_forward = g_attention_forward,
    .attention_backward = g_attention_backward,
    .attention_forward_bf16 = g_attention_forward_bf16,
    .attention_backward_bf16 = g_attention_backward_bf16,
    .swiglu_forward = g_swiglu_forward,
    .swiglu_backward = g_swiglu_backward,
    .residual_forward = g_residual_forward,
    .crossentropy_forward = g_crossentropy_forward,
    .adamw_update = g_adamw_update,
    .sum_squares = g_sum_squares,
    .scale = g_scale,
    .axpy = g_axpy,
    .matmul_rows = g_matmul_rows,
    .matmul_rows_packed = g_matmul_rows_packed,
    .attention_rows = g_attention_rows,
    .copy_rows = g_copy_rows,
    .attention_rows_bf16 = g_attention_rows_bf16,
    .copy_rows_bf16 = g_copy_rows_bf16,
    .to_half = g_to_half,
    .quantize_q8 = g_quantize_q8,
    .quantize_q16 = g_quantize_q16,
    .matmul_rows_q8 = g_matmul_rows_q8,
    .pack_bf16 = g_pack_bf16,
    .matmul_rows_bf16 = g_matmul_rows_bf16,
    .linear_f64 = g_linear_f64,
    .dropout = g_dropout,
    /* No memory of the table: host rows and sizes, as on cpu. */
    .matmul_rows_scratch = NULL,
    .logits_max = NULL,
    .softmax_weights = NULL,
    .find_first = NULL,
};

static pthread_once_t init_once = PTHREAD_ONCE_INIT;

static void init(void)
{
    cpu = llm_kernels_cpu();
    guarded.matmul_rows_scratch = cpu->matmul_rows_scratch;
    guarded.attention_saved = cpu->attention_saved;
    guarded.attention_scratch = cpu->attention_scratch;
    guarded.logits_max = cpu->logits_max;
    guarded.softmax_weights = cpu->softmax_weights;
    guarded.find_first = cpu->find_first;
}

const llm_kernels *llm_kernels_guarded(void)
{
    pthread_once(&init_once, init);
    return &guarded;
}
