/* kernels.h: the table of compute kernels a backend provides to the library.
 *
 * Kernels know arrays and sizes, never models or files. Every array is a
 * dense row-major float array unless a stride says otherwise. Notation:
 * N = rows (B*T positions), C = channels, OC/IC = out/in features, H query
 * heads, KVH key/value heads, hd head size. A "qkv" row is the concatenation
 * q (H*hd) | k (KVH*hd) | v (KVH*hd), stride QS = (H + 2*KVH)*hd.
 *
 * Accumulation rules, fixed so the model needs no memsets between layers:
 * "=" overwrites, "+=" accumulates. Parameter gradients always accumulate
 * (gradient accumulation over micro-batches); activation gradients of
 * matmul inputs are overwritten; the residual stream gradient accumulates.
 *
 * Determinism: for the same inputs and thread count every kernel gives the
 * same bits (static schedules, reductions in a fixed order, no atomics).
 */
#ifndef LLM_KERNELS_H
#define LLM_KERNELS_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* int8 weights (quantize_q8) are rows of nb = ceil(IC / 32) blocks of 32
 * values, a block being 32 int8s q, a float scale d and a float offset m
 * (value k: d * q[k] + m), LLM_Q8_BYTES bytes a block, rows one after
 * another. Within a row the blocks go in groups of 8 (the last group
 * holds the nb % 8 left, if any): a group of g blocks is their int8s (32
 * bytes a block, in order), then their g scales, then their g offsets, so
 * that a product reads a row as one stream and 8 blocks' scales and
 * offsets as two vectors. The byte offsets of block b's parts from its
 * row's start: */
#define LLM_Q8_BYTES 40
static inline size_t llm_q8_group(int nb, int b, int *g)
{
    int b0 = b & ~7;
    *g = nb - b0 < 8 ? nb - b0 : 8;
    return (size_t)b0 * LLM_Q8_BYTES;
}
static inline size_t llm_q8_qoff(int nb, int b)   /* the int8s */
{
    int g;
    return llm_q8_group(nb, b, &g) + 32 * (size_t)(b & 7);
}
static inline size_t llm_q8_doff(int nb, int b)   /* the scale */
{
    int g;
    size_t at = llm_q8_group(nb, b, &g);
    return at + 32 * (size_t)g + 4 * (size_t)(b & 7);
}
static inline size_t llm_q8_moff(int nb, int b)   /* the offset */
{
    int g;
    size_t at = llm_q8_group(nb, b, &g);
    return at + 36 * (size_t)g + 4 * (size_t)(b & 7);
}

typedef struct llm_kernels {
    const char *name;   /* "cpu", "ref", "guarded", "cuda" */

    /* --- memory. Every array a kernel reads or writes lives in memory of
     * its table ("device memory": host memory on cpu and ref, GPU memory
     * on cuda, host memory the library cannot touch on guarded), except
     * where a kernel says "host": the sampler's rows, and the small index
     * arrays of the inference kernels (map, len, and the pointer arrays
     * q, K, V, which point into device memory). The library reaches
     * device memory through these entries only. */
    /* bytes of device memory, uninitialised, 64-byte aligned (large blocks
     * on huge-page boundaries); NULL when out of memory. Free with free. */
    void *(*alloc)(size_t bytes);
    void (*free)(void *p);                                      /* NULL: nothing */
    void (*upload)(void *dst, const void *src, size_t bytes);   /* host -> device */
    void (*download)(void *dst, const void *src, size_t bytes); /* device -> host */
    /* device -> device; the two ranges must not overlap. */
    void (*copy)(void *dst, const void *src, size_t bytes);
    void (*zero)(void *dst, size_t bytes);
    /* 1: device memory is host memory (cpu, ref), so that weights can run
     * straight from a read-only mapping of their file, shared between
     * processes, and be written to a file, without a copy. The library
     * uses it for nothing else. */
    int host_memory;

    /* out(N,OC) = inp(N,IC) . w(OC,IC)^T, as nn.Linear without bias. */
    void (*matmul_forward)(float *out, const float *inp, const float *w,
                           int N, int IC, int OC);
    /* dinp(N,IC) = dout(N,OC) . w (skipped when dinp is NULL);
     * dw(OC,IC) += dout^T . inp (skipped when dw is NULL: a frozen weight). */
    void (*matmul_backward)(float *dinp, float *dw, const float *dout,
                            const float *inp, const float *w,
                            int N, int IC, int OC);
    /* The same two products in mixed precision (--precision bf16): inputs
     * rounded to bfloat16 (8 significant bits, to nearest, ties to even;
     * the hardware may flush denormal inputs to zero), products summed in
     * fp32, outputs fp32; within rounding of the fp32 product of the
     * rounded inputs. NULL where a backend has none. */
    void (*matmul_forward_bf16)(float *out, const float *inp, const float *w,
                                int N, int IC, int OC);
    void (*matmul_backward_bf16)(float *dinp, float *dw, const float *dout,
                                 const float *inp, const float *w,
                                 int N, int IC, int OC);

    /* out(N,C) = wte[tokens[n]]; every token must be in [0, V). Also a
     * gather of any rows (RoPE tables by position). */
    void (*embedding_forward)(float *out, const int32_t *tokens,
                              const float *wte, int N, int C);
    /* dwte(V,C) += scatter of dout(N,C) by tokens. */
    void (*embedding_backward)(float *dwte, const float *dout,
                               const int32_t *tokens, int N, int C);

    /* out(N,C) = inp / sqrt(mean(inp^2) + eps) * w; rstd(N) saved. */
    void (*rmsnorm_forward)(float *out, float *rstd, const float *inp,
                            const float *w, int N, int C, float eps);
    /* dinp(N,C) += d/dinp; dw(C) += d/dw. */
    void (*rmsnorm_backward)(float *dinp, float *dw, const float *dout,
                             const float *inp, const float *w,
                             const float *rstd, int N, int C);

    /* In place on x(B,T,stride): the first nh heads of hd floats of each row
     * rotate by adjacent pairs, position t = row index within its sequence;
     * cos_t/sin_t are (T, hd/2) tables of angle t * base^(-2i/hd). */
    void (*rope_forward)(float *x, const float *cos_t, const float *sin_t,
                         int B, int T, int nh, int hd, int stride);
    /* In place on dx: the transposed (inverse) rotation. */
    void (*rope_backward)(float *dx, const float *cos_t, const float *sin_t,
                          int B, int T, int nh, int hd, int stride);

    /* Causal attention, scale 1/sqrt(hd), query head j reads kv head
     * j / (H/KVH). out(B,T,H*hd) =. start(B,T), or NULL for all 0: query
     * t of row b sees keys [start[b*T+t], t] only (0 <= start <= t), so
     * that several documents packed into one row do not see each other.
     * saved ("=") is what the forward keeps for the backward, in a form
     * the backend chooses and the library never reads:
     * attention_saved(B, T, H) floats. ref keeps att(B,H,T,T), the softmax
     * probabilities (0 outside [start, t]); cpu (and guarded) each query
     * row's softmax maximum and reciprocal sum, (B,H,T,2), and its
     * backward recomputes the probabilities bit for bit; cuda keeps
     * lse(B,H,T), each query's log-sum-exp of its scaled scores, and the
     * backward recomputes the probabilities (flash attention: no (B,H,T,T)
     * tensor in memory on either). scratch holds attention_scratch(B, T,
     * H, KVH, hd, 0) floats for the forward, (..., 1) for the backward
     * (at least the forward's), sized for the thread count the call runs with
     * (cpu: a part for each thread), clobbered; NULL where that is 0. */
    size_t (*attention_saved)(int B, int T, int H);
    size_t (*attention_scratch)(int B, int T, int H, int KVH, int hd, int backward);
    void (*attention_forward)(float *out, float *saved, float *scratch, const float *qkv,
                              const int32_t *start, int B, int T, int H, int KVH, int hd);
    /* dqkv(B,T,QS) = the gradient of qkv given dout(B,T,H*hd), from the
     * forward's qkv, out, saved and start, unchanged since (ref reads only
     * saved's probabilities for the mask and the weights; cpu reads saved
     * and start; cuda reads them all). */
    void (*attention_backward)(float *dqkv, float *scratch, const float *dout,
                               const float *qkv, const float *out, const float *saved,
                               const int32_t *start, int B, int T, int H, int KVH, int hd);
    /* The same two in mixed precision (--precision bf16): the inputs of
     * their products rounded to bfloat16 as matmul_forward_bf16 rounds
     * them (q and k, the probabilities and v; in the backward dout and v,
     * the probabilities and dout, dS and k, dS and q), sums, softmax and
     * its backward in fp32; saved as the fp32 forward's. NULL where a
     * backend has none: the fp32 pair serves. */
    void (*attention_forward_bf16)(float *out, float *saved, float *scratch, const float *qkv,
                                   const int32_t *start, int B, int T, int H, int KVH, int hd);
    void (*attention_backward_bf16)(float *dqkv, float *scratch, const float *dout,
                                    const float *qkv, const float *out, const float *saved,
                                    const int32_t *start, int B, int T, int H, int KVH,
                                    int hd);

    /* out(N,F) = silu(h13[:, :F]) * h13[:, F:]  (gate | up in one row). */
    void (*swiglu_forward)(float *out, const float *h13, int N, int F);
    /* dh13(N,2F) =. */
    void (*swiglu_backward)(float *dh13, const float *dout, const float *h13,
                            int N, int F);

    /* out = a + b over n floats; out may alias a or b. */
    void (*residual_forward)(float *out, const float *a, const float *b,
                             size_t n);

    /* Cross-entropy of softmax(logits(N,V)) against targets, with label
     * smoothing eps in [0, 1): against q = (1 - eps) onehot + eps / V.
     * losses(N) = logsumexp - (1 - eps) logit[target] - eps mean(logits),
     * 0 where target < 0 (ignored). When dlogits is not NULL, dlogits(N,V)
     * = (softmax - q) * dscale (0 rows for ignored targets); dlogits may be
     * logits itself, to save memory. Every target >= 0 must be < V. eps 0
     * takes no extra operation. */
    void (*crossentropy_forward)(float *losses, float *dlogits,
                                 const float *logits, const int32_t *targets,
                                 int N, int V, float dscale, float eps);

    /* torch.optim.AdamW on n floats at step t (1-based): m, v updated;
     * p -= lr * (mhat / (sqrt(vhat) + eps) + wd * p). */
    void (*adamw_update)(float *p, const float *g, float *m, float *v,
                         size_t n, float lr, float beta1, float beta2,
                         float eps, float wd, int t);

    /* sum of x^2 in double, in a fixed order independent of threads. */
    double (*sum_squares)(const float *x, size_t n);
    /* x *= s. */
    void (*scale)(float *x, size_t n, float s);
    /* y(N,C) += a * x(N,C), rows ldy and ldx floats apart (>= C): adds a
     * low-rank adapter's output into columns of a fused projection, and
     * gathers them back (into a zeroed y) for its backward. */
    void (*axpy)(float *y, int ldy, const float *x, int ldx, int N, int C, float a);

    /* Inference (KV-cached generation, packed classification): products
     * and attention whose every output element is computed alone, in an
     * order independent of the batch, of the other rows and of the thread
     * count, so that a sequence gets the same bits in any batch. Rows of
     * inp and out are ldi and ldo floats apart; row n of a product is row
     * map[n] of both (map NULL: n; map is host memory).
     *
     * out[map n](OC) = inp[map n](IC) . w(OC,IC)^T for n in [0, N), where w
     * is floats, or IEEE halves when `half` (see to_half). Few rows (a
     * decoding step): each weight row is read once for all N. Element
     * (n, o) is, bit for bit on every backend: 8 partial sums s0..s7, s_j
     * accumulated by fmaf over k = 8i + j while 8i + 8 <= IC, then
     * ((s0 + s4) + (s2 + s6)) + ((s1 + s5) + (s3 + s7)), then += w[o][k] *
     * x[k] (a product, then a sum) for the remaining k in order. */
    void (*matmul_rows)(float *out, size_t ldo, const float *inp, size_t ldi,
                        const int *map, const void *w, int half, int N, int IC, int OC);
    /* The same product over float weights for many rows (a packed
     * forward), element (n, o) being, bit for bit on every backend, one
     * fmaf chain over k = 0 .. IC-1 from 0. scratch holds
     * matmul_rows_scratch(IC, OC) floats (the weights repacked), clobbered. */
    void (*matmul_rows_packed)(float *out, size_t ldo, const float *inp, size_t ldi,
                               const int *map, const float *w, float *scratch,
                               int N, int IC, int OC);
    size_t (*matmul_rows_scratch)(int IC, int OC);
    /* Attention of n query rows over keys and values held elsewhere (a
     * cache): for row i and head h (kv head kh = h / (H/KVH)), with
     * q_i = q[i] + h*hd, k_t = K[i] + t*kvs + kh*hd and v_t = V[i] + t*kvs
     * + kh*hd for t in [0, len[i]) (1 <= len[i] <= maxlen; q, K, V and
     * len are host arrays, their pointers point into device memory):
     * out[i*ldo + h*hd ..](hd) = sum_t softmax_t(q_i . k_t / sqrt(hd)) v_t.
     * scratch holds llm_kernels_threads() * maxlen floats, clobbered. The
     * exponentials are fast_expf's: backends agree within rounding. */
    void (*attention_rows)(float *out, size_t ldo, const float *const *q,
                           const float *const *K, const float *const *V, size_t kvs,
                           const int *len, int n, int H, int KVH, int hd,
                           float *scratch, int maxlen);
    /* dst[i][0..n) = src[i*lds ..](n) for i in [0, N) (dst a host array of
     * pointers into device memory, rows apart from each other and from
     * src): each new row's keys or values into its sequence's cache. */
    void (*copy_rows)(float *const *dst, const float *src, size_t lds, int N, int n);
    /* The same two over a cache of bfloat16 (a session of a model with bf16
     * weights, llm_model_weights_bf16(): half the cache's memory and
     * traffic). copy_rows_bf16: dst[i][j] = llm_float_to_bf16(src[i*lds +
     * j]) (half.h), bit for bit on every backend. attention_rows_bf16:
     * attention_rows with K and V of such bits, rounded as
     * attention_forward_bf16 rounds: q to bf16, the scores q . k_t summed
     * in fp32 over the exact products, scaled and softmaxed in fp32 as
     * attention_rows does, each probability rounded to bf16, and out =
     * sum_t p_t v_t summed in fp32 over t. The orders of summation are fixed
     * by hd and the path: attention_rows' (8 lanes over j; one FMA per
     * element and t), except on a CPU with AVX512_BF16 (cpu table, avx512
     * level, unless LLM_GEMM names another path), whose VDPBF16PS takes j
     * and t in pairs and flushes subnormals. Each (row, head) alone: the
     * same bits in any batch and on any thread count. scratch holds
     * llm_kernels_threads() * (2 * maxlen + hd) floats, clobbered. NULL
     * (both) where a backend has none: sessions then cache floats. */
    void (*attention_rows_bf16)(float *out, size_t ldo, const float *const *q,
                                const uint16_t *const *K, const uint16_t *const *V,
                                size_t kvs, const int *len, int n, int H, int KVH, int hd,
                                float *scratch, int maxlen);
    void (*copy_rows_bf16)(uint16_t *const *dst, const float *src, size_t lds, int N, int n);
    /* h(n) = f rounded to the nearest IEEE half (ties to even; overflow
     * gives +-inf, NaN stays NaN), as llm_float_to_half() (half.h).
     * @return the lowest i whose half is inf or NaN, n if none. NULL where
     * matmul_rows does not take halves. */
    size_t (*to_half)(uint16_t *h, const float *f, size_t n);
    /* int8 weights (llm_model_quantize_q8()): rows map[n] (map NULL: n) of
     * inp, ldi floats apart, for n in [0, N), each cut into nb = ceil(IC /
     * 32) blocks of 32 values, the last one short when 32 does not divide
     * IC. Block b of row n ("="; rows compact by n, laid out as
     * LLM_Q8_BYTES says): 32 int8s q (a short block's padded with 0), a
     * scale d and an offset m, value k standing for d * q_k + m:
     *   a = the largest |x| of the block, compared as bit patterns (exact,
     *       in any order: a NaN above inf, inf above every finite value);
     *   a is inf or NaN: d = NaN, m = 0, q = 0 (the products then give
     *       NaN); else a / 127.0f below FLT_MIN (0, subnormal): d = m = q =
     *       0; else the better of two (float operations as written):
     *   symmetric: d = a / 127.0f, m = 0, q_k = x_k * (1.0f / d) rounded to
     *       the nearest integer, ties to even (within [-127, 127]);
     *   asymmetric, when lo < hi (the block's least and largest value): d =
     *       (hi - lo) / 255.0f, m = lo + 128.0f * d, q_k = (x_k - m) * (1.0f
     *       / d) rounded likewise and clamped to [-128, 127];
     *   the asymmetric one when its error sum over the block of ((double)d
     *       * q_k + m - x_k)^2 is below the symmetric one's, both summed in
     *       double as 4 lanes do: the squares of k = j, j + 4, j + 8, ...
     *       added in turn into e_j (from 0), then (e0 + e2) + (e1 +
     *       e3). (Weights dequantized from a 4-bit GGUF block with an
     *       offset, Q4_1, come back nearly exactly this way.)
     * The same bits on every backend. @return the lowest n whose row
     * holds an inf or NaN, N if none. NULL where there is no int8 product
     * (then quantize_q16 and matmul_rows_q8 are NULL too). */
    int (*quantize_q8)(void *w, const float *inp, size_t ldi, const int *map, int N, int IC);
    /* The int8 product's input rows, as quantize_q8's blocks but in int16
     * and symmetric: block b of row n gets q[(n*nb + b)*32 ..] ("=", 0
     * past IC) and d[n*nb + b] ("="), with a the largest |x| as there: inf
     * or NaN, d = NaN, q = 0; a / 32767.0f below FLT_MIN, d = q = 0; else
     * d = a / 32767.0f, q_k = x_k * (1.0f / d) rounded to the nearest,
     * ties to even (within [-32767, 32767]); and s[n*nb + b] ("=") = d *
     * (float)(the exact sum of the block's q), which the weights' offsets
     * multiply. The same bits on every backend. @return the lowest n whose
     * row holds an inf or NaN, N if none. */
    int (*quantize_q16)(int16_t *q, float *d, float *s, const float *inp, size_t ldi,
                        const int *map, int N, int IC);
    /* out[map n](OC) ("="; map as matmul_rows') = the product of the
     * quantized input row n (xq, xd, xs: quantize_q16 of N rows of IC) with
     * the int8 weights (w: quantize_q8 of a weight (OC, IC), with block b of
     * row o's parts q, d and m). Element (n, o) is, bit for bit on every
     * backend:
     * for each block b, the exact integer i_b = sum over its 32 k of q[k] *
     * xq[n][b][k]; 8 partial sums p0..p7 from 0, p_j = fmaf(m, xs[n][b],
     * fmaf(d * xd[n][b], (float)i_b, p_j)) over b = 8i + j while 8i + 8 <=
     * nb; then p = ((p0 + p4) + (p2 + p6)) + ((p1 + p5) + (p3 + p7)); then
     * p likewise for the remaining b in order. Each element alone: a row
     * gets the same bits in any batch and thread count. */
    void (*matmul_rows_q8)(float *out, size_t ldo, const int *map, const int16_t *xq,
                           const float *xd, const float *xs, const void *w, int N, int IC,
                           int OC);
    /* bf16 inference (llm_model_weights_bf16()): w(OC, IC) rounded to
     * bfloat16 (to nearest, ties to even; NaN stays NaN) into panels of
     * 32 rows: the 32-bit slot dst[(p * kp + j) * 32 + r], kp = (IC + 1) /
     * 2, holds the bits of w[32p + r][2j] in its low half and of w[32p +
     * r][2j + 1] in its high half (0 past IC and past row OC), for p <
     * ceil(OC / 32). The same bits on every backend. NULL where there is
     * no bf16 product (then matmul_rows_bf16 is NULL too). */
    void (*pack_bf16)(uint32_t *dst, const float *w, int IC, int OC);
    /* out[map n](OC) ("="; map as matmul_rows') = row map[n] of inp
     * rounded to bf16 as pack_bf16 rounds, times rows o0 .. o0+OC-1 of the
     * packed w (pack_bf16 of a weight of at least o0 + OC rows), summed in
     * fp32 from 0 over the exact products of the bf16 values: by fmaf over
     * k in order, bit for bit on every backend; except on a CPU with
     * AVX512_BF16 (cpu table, avx512 level, unless LLM_GEMM names another
     * path), whose VDPBF16PS takes k in pairs (2j, 2j + 1) and flushes
     * subnormals, so its bits differ within rounding. Each element alone,
     * in an order fixed by the path and IC: a row gets the same bits in any
     * batch, with any o0, and on any thread count. scratch holds N * kp
     * 32-bit slots, clobbered. */
    void (*matmul_rows_bf16)(float *out, size_t ldo, const float *inp, size_t ldi,
                             const int *map, const uint32_t *w, int o0, uint32_t *scratch,
                             int N, int IC, int OC);
    /* The sampler's passes over one row of logits. Host memory on every
     * backend (the sampler runs on the CPU), so a GPU table points at the
     * CPU's. Serial: they run inside llm_kernels_parallel() tasks. */
    /* @return the largest of x[0..n) (n >= 1; -inf when every x is -inf);
     * *bad = 1 when some x is NaN or +inf (the maximum is then
     * unspecified), else 0. A maximum does not round: cpu and ref agree
     * exactly (as values: the sign of a zero maximum is unspecified). */
    float (*logits_max)(const float *x, int n, int *bad);
    /* The weights of a draw at temperature 1 / inv_t: w(n) = fast_expf((x -
     * xmax) * inv_t), 0 where x is -inf; bsum(n / block + 1) = the float sum
     * of w over each block of `block` entries (the last one possibly
     * shorter); "=" for both. @return the sum of bsum in double, in block
     * order. Every x <= xmax and none NaN. w is the same bits on cpu and
     * ref; cpu sums a block as a vectorised reduction whose order is the
     * compiler's (fixed for a build, independent of threads), so bsum and
     * the sum agree with ref (in order) within 2 * block * 2^-24 relative. */
    double (*softmax_weights)(float *w, float *bsum, const float *x, int n,
                              float xmax, float inv_t, int block);
    /* @return the lowest i < n with x[i] == v (so ties go to the lowest
     * index; -0 == +0), n when there is none. Exact on every backend. */
    int (*find_first)(const float *x, int n, float v);
    /* A classifier head's logits: out(N,K) = b(K) + inp(N,C) . w(K,C)^T
     * ("="), each element summed in double from b[k] over c in order and
     * rounded to float once, so cpu, ref and cuda agree bit for bit (a few
     * outputs per row do not pay for a matrix product; the training pass
     * uses matmul_forward). Serial on the CPU. */
    void (*linear_f64)(float *out, const float *inp, const float *w,
                       const float *b, int N, int C, int K);
    /* Inverted dropout in place on x(n) ("="): element i is kept when u_i
     * >= (uint32_t)(p * 2^24) and then multiplied by (float)(1 / (1 - p)),
     * else set to 0, where u_i = the top 24 bits of mix64(key + i *
     * 0x9e3779b97f4a7c15) and mix64 is SplitMix64's finaliser (shifts 30,
     * 27, 31; multipliers 0xbf58476d1ce4e5b9, 0x94d049bb133111eb). The
     * mask is a function of (key, i) alone: no thread count or split of x
     * changes it, and cpu, ref and cuda agree bit for bit. 0 <= p < 1. */
    void (*dropout)(float *x, size_t n, double p, uint64_t key);

    /* The entries return nothing, and a GPU's work runs after they return:
     * @return the first failure inside an entry since the last call (out
     * of device memory for a kernel's scratch, a launch or library error),
     * as a message, and forgets it; NULL when none. Waits for the work
     * queued. NULL where no entry fails but alloc (cpu, ref, guarded). */
    const char *(*failure)(void);
} llm_kernels;

/* The entries a backend may leave NULL, as X(name) each: the library checks
 * each where it uses it and says what is missing. Every other entry is
 * required: llm_device_check() refuses a table that lacks one. A new entry
 * that some backend has no version of goes here too. */
#define LLM_KERNELS_OPTIONAL(X) X(copy_rows) X(to_half) X(quantize_q8) X(quantize_q16) X(matmul_rows_q8) X(pack_bf16) \
    X(matmul_rows_bf16) X(matmul_forward_bf16) X(matmul_backward_bf16) \
    X(attention_forward_bf16) X(attention_backward_bf16) X(attention_rows_bf16) \
    X(copy_rows_bf16) X(failure)

/*! llm_kernels_cpu() : OpenBLAS sgemm + OpenMP kernels, compiled once per
 *  instruction-set level ("generic": baseline x86-64 or any other machine;
 *  "avx2": AVX2, FMA and F16C; "avx512": AVX-512 F, BW, VL and DQ besides;
 *  "native" alone in a NATIVE=1 build). The table of the best level this
 *  CPU runs, chosen at the first call; the environment variable LLM_CPU
 *  names another. A level this build lacks or this CPU cannot run, or an
 *  unknown name, is reported once on stderr (the one message the library
 *  prints: nobody else is told) and the best level used instead. Within a
 *  level results are bitwise reproducible (see Determinism above); across
 *  levels the orders of the vectorised reductions differ. */
const llm_kernels *llm_kernels_cpu(void);
/*! llm_kernels_cpu_level() : the name of the level llm_kernels_cpu() uses. */
const char *llm_kernels_cpu_level(void);
/*! llm_kernels_cpu_gemm() : what computes that level's matrix products:
 *  "own avx512" or "own avx2" (kernels/cpu/gemm.c), or "openblas": ours
 *  on avx512 and avx2 unless LLM_GEMM=openblas; generic always uses
 *  OpenBLAS. */
const char *llm_kernels_cpu_gemm(void);
/*! llm_kernels_cpu_levels() : the levels' names, best first,
 *  NULL-terminated: every one this build has (runnable = 0), or those this
 *  CPU runs (runnable = 1). */
const char *const *llm_kernels_cpu_levels(int runnable);
/*! llm_kernels_cpu_for() : the table of one level, whatever LLM_CPU says
 *  (for tests and comparisons); NULL when this build lacks it or this CPU
 *  cannot run it. */
const llm_kernels *llm_kernels_cpu_for(const char *level);
/*! llm_kernels_guarded() : the cpu table (same bits) whose memory the
 *  library cannot touch: every block from its alloc is kept PROT_NONE
 *  except while one of its entries runs, so that any read or write of
 *  device memory outside the table crashes (SIGSEGV). For tests: run the
 *  suite with LLM_KERNELS=guarded (make check-guarded). Slow: two passes
 *  of mprotect over every live block per kernel call. */
const llm_kernels *llm_kernels_guarded(void);
/*! llm_kernels_ref() : plain loops, double accumulation; the yardstick every
 *  other backend is tested against. Slow. */
const llm_kernels *llm_kernels_ref(void);
/*! llm_kernels_get() : "cpu", "ref", "guarded", or "cuda" (NULL unless
 *  built with LLM_CUDA); NULL for an unknown name. With the environment
 *  variable LLM_KERNELS=guarded, "cpu" (and NULL) give the guarded table. */
const llm_kernels *llm_kernels_get(const char *device);

/*! llm_kernels_set_threads() : one thread count for OpenMP and OpenBLAS
 *  (n <= 0: all cores). @return the count in use. */
int llm_kernels_set_threads(int n);
/*! llm_kernels_threads() : the count in use. */
int llm_kernels_threads(void);

/*! llm_kernels_parallel() : calls fn(ctx, task, thread) once for every task
 *  in [0, n_tasks), on at most `threads` threads (<= 0: llm_kernels_threads()),
 *  handing tasks out one at a time as threads come free (which thread runs
 *  which task is not fixed). `thread` is in [0, min(threads, n_tasks)) and
 *  no two tasks run on one thread at once, so fn may use scratch indexed by
 *  it. Kernels called inside fn run on that thread only. Returns when every
 *  task is done; fn reports failures through ctx (kernels/cpu/parallel.c). */
void llm_kernels_parallel(int n_tasks, int threads,
                          void (*fn)(void *ctx, int task, int thread), void *ctx);

#ifdef __cplusplus
}
#endif
#endif
