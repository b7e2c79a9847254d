/* flash.cuh: the flash attention kernels of the CUDA table (cuda.cu
 * includes it; kernels.h has their contract, cuda.cu their launches), in
 * a file of their own so that tests/cuda/test_flash_emulated.cc can run
 * the same source on the CPU: 256 threads per block with real barriers,
 * checked against the reference kernels where no GPU is (make check).
 * The includer provides warp_sum() (a butterfly over the 32 lanes), the
 * CUDA intrinsics, and FA_SHARED_BLOCK(name) when the dynamic shared
 * memory is to be something else than `extern __shared__ float name[]`
 * (FA_UNROLL, "#pragma unroll" by default, may be empty). */
#ifndef LLM_FLASH_CUH
#define LLM_FLASH_CUH

#ifndef FA_SHARED_BLOCK
#define FA_SHARED_BLOCK(name) extern __shared__ float name[]
#endif
#ifndef FA_UNROLL
#define FA_UNROLL _Pragma("unroll")
#endif

/* Flash attention (Dao et al., 2022), fp32 on the CUDA cores, with no
 * (B, H, T, T) tensor in memory: the forward keeps, for the backward, each
 * query's log-sum-exp of its scaled scores, lse(B, H, T) (attention_saved),
 * and the backward recomputes the probabilities from q, k and lse.
 *
 * Tiles of BT = 16 R rows (R = 4, or 2 for head sizes above 128), in
 * shared memory, rows padded to D + 1 floats (D: hd rounded up to 32, 64,
 * 128 or 256, the padding zeros) so that a warp's 16 lanes that read 16
 * rows of one column hit 16 banks. FA_THREADS threads form a 16 x 16 grid
 * (tx = thread & 15, ty = thread >> 4): a thread owns the tile's rows ty +
 * 16 i and columns tx + 16 j (i, j < R) of a score tile, and dimensions tx +
 * 16 k (k < D / 16) of an output row. A row's 16 threads are lanes of one
 * warp, which reduce by butterflies (xor 8, 4, 2, 1: every lane gets the
 * same bits).
 *
 * Order of summation, fixed by the sizes alone (no atomics on floats, so
 * the same inputs give the same bits run to run):
 *   score(t, s) = scale * (one fmaf chain over d = 0 .. hd-1 of q[d] k[d])
 *     (the padding adds exact zeros), the same bits in all three kernels;
 *   forward, per query: key tiles in order; per tile m' = max(m, the
 *     tile's max), p = expf(score - m'), l = l * expf(m - m') + (the
 *     thread's R p's in order, then the butterfly), o = o * expf(m - m')
 *     then one fmaf chain of p v over the tile's keys in order; out = o /
 *     l and lse = m + logf(l);
 *   backward: drow(t) = dout(t) . out(t) (lane-strided fmaf chains, then
 *     a warp butterfly); p = expf(score - lse), dp = dout . v (one fmaf
 *     chain over d), ds = p (dp - drow); dv(s) and dk(s) = fmaf chains
 *     over the query heads of s's kv head in order, their query tiles in
 *     order and the queries in order (dk times scale at the end), one
 *     block per (key tile, b, kv head); dq(t) = scale * (one fmaf chain
 *     over key tiles and keys in order of ds k), one block per (query
 *     tile, b, head). So the query heads sharing a kv head add into its dk
 *     and dv in one block, without atomics.
 * Keys before a query's start, or after it, get p = 0 (the forward skips
 * the key tiles before the smallest start of its query tile; the dk/dv
 * pass, query tiles whose every start is past its key tile). */
#define FA_THREADS 256

/* Rows [0, rows) of a tile from src (rows ld floats apart, hd floats
 * each) into dst (BT rows of D + 1 floats), zeros elsewhere. */
template <int D, int BT>
__device__ void fa_load(float *dst, const float *src, size_t ld, int rows, int hd)
{
    for (int i = threadIdx.x; i < BT * D; i += FA_THREADS) {
        int r = i / D, d = i % D;
        dst[r * (D + 1) + d] = r < rows && d < hd ? src[(size_t)r * ld + d] : 0.0f;
    }
}

__device__ inline float sum16(float v)   /* over the 16 lanes of a row */
{
    for (int o = 8; o > 0; o >>= 1)
        v = __fadd_rn(v, __shfl_xor_sync(0xffffffffu, v, o));
    return v;
}

__device__ inline float max16(float v)
{
    for (int o = 8; o > 0; o >>= 1)
        v = fmaxf(v, __shfl_xor_sync(0xffffffffu, v, o));
    return v;
}

/* The backward's two tiles of dot products over e < D from shared rows of
 * D + 1 floats: s[i][j] = X[x + 16 i] . Y[y + 16 j] (scores, from q and
 * k) and dp[i][j] = Xo[x + 16 i] . Yo[y + 16 j] (dO . v), each one fmaf
 * chain in e from 0 (a product's operands commute exactly, so the dK/dV
 * kernel's keys-by-queries tile has the same bits as the dQ kernel's
 * queries-by-keys one). */
template <int D, int R>
__device__ void fa_dots(const float *X, const float *Xo, int x, const float *Y, const float *Yo,
                        int y, float s[R][R], float dp[R][R])
{
    constexpr int SD = D + 1;
FA_UNROLL
    for (int i = 0; i < R; i++)
FA_UNROLL
        for (int j = 0; j < R; j++)
            s[i][j] = dp[i][j] = 0.0f;
    for (int e = 0; e < D; e++) {
        float a[R], ao[R], b[R], bo[R];
FA_UNROLL
        for (int i = 0; i < R; i++) {
            a[i] = X[(x + 16 * i) * SD + e];
            ao[i] = Xo[(x + 16 * i) * SD + e];
            b[i] = Y[(y + 16 * i) * SD + e];
            bo[i] = Yo[(y + 16 * i) * SD + e];
        }
FA_UNROLL
        for (int i = 0; i < R; i++)
FA_UNROLL
            for (int j = 0; j < R; j++) {
                s[i][j] = __fmaf_rn(a[i], b[j], s[i][j]);
                dp[i][j] = __fmaf_rn(ao[i], bo[j], dp[i][j]);
            }
    }
}

/* The backward's recomputed probability of a kept (ok) score s, exp(s
 * scale - lse), and dS = p (dP - rowsum(dO o)); 0 where masked. */
__device__ inline float fa_p(bool ok, float s, float scale, float lse)
{
    return ok ? expf(__fsub_rn(__fmul_rn(s, scale), lse)) : 0.0f;
}

__device__ inline float fa_ds(bool ok, float p, float dp, float drow)
{
    return ok ? __fmul_rn(p, __fsub_rn(dp, drow)) : 0.0f;
}

/* acc[i][k] += sum over c < nk of W[ty + 16 i][c] * X[c][tx + 16 k], in c
 * order, one fmaf each: the forward's P V and the backward's dS K. W has
 * rows of 16 R + 1 floats, X rows of D + 1. */
template <int D, int R>
__device__ void fa_mix(float acc[R][D / 16], const float *W, const float *X, int nk)
{
    constexpr int SD = D + 1, SP = 16 * R + 1, DK = D / 16;
    int tx = threadIdx.x % 16, ty = threadIdx.x / 16;
    for (int c = 0; c < nk; c++) {
        float x[DK];
FA_UNROLL
        for (int k = 0; k < DK; k++)
            x[k] = X[c * SD + tx + 16 * k];
FA_UNROLL
        for (int i = 0; i < R; i++) {
            float w = W[(ty + 16 * i) * SP + c];
FA_UNROLL
            for (int k = 0; k < DK; k++)
                acc[i][k] = __fmaf_rn(w, x[k], acc[i][k]);
        }
    }
}

struct fa_args {
    const float *qkv, *out, *dout, *lse, *drow;
    const int32_t *start;
    float *o, *lse_out, *dqkv;
    int T, H, KVH, hd;
    float scale;
};

/* One block per (b, h) (x) and query tile (y, last tiles first: they have
 * the most keys). */
template <int D, int R>
__global__ void __launch_bounds__(FA_THREADS) flash_forward_k(fa_args a)
{
    constexpr int BT = 16 * R, SD = D + 1, SP = BT + 1, DK = D / 16;
    FA_SHARED_BLOCK(fa_shm);
    float *sQ = fa_shm, *sKV = sQ + BT * SD, *sP = sKV + BT * SD;
    __shared__ int smin;
    int tx = threadIdx.x & 15, ty = threadIdx.x >> 4;
    int T = a.T, H = a.H, hd = a.hd, bh = blockIdx.x, b = bh / H, h = bh % H;
    int kh = h / (H / a.KVH), QS = (H + 2 * a.KVH) * hd, OS = H * hd;
    int q0 = (gridDim.y - 1 - blockIdx.y) * BT, nq = min(BT, T - q0);
    const float *base = a.qkv + (size_t)b * T * QS;
    if (threadIdx.x == 0)
        smin = a.start ? q0 : 0;   /* q0: row 0's start is at most q0 */
    fa_load<D, BT>(sQ, base + (size_t)q0 * QS + (size_t)h * hd, QS, nq, hd);
    int s0[R];
    float m[R], l[R], acc[R][DK];
FA_UNROLL
    for (int i = 0; i < R; i++) {
        int r = ty + 16 * i;
        s0[i] = r < nq && a.start ? a.start[(size_t)b * T + q0 + r] : 0;
        m[i] = -INFINITY;
        l[i] = 0.0f;
FA_UNROLL
        for (int k = 0; k < DK; k++)
            acc[i][k] = 0.0f;
    }
    __syncthreads();   /* smin set, sQ loaded */
    if (a.start && tx == 0)
FA_UNROLL
        for (int i = 0; i < R; i++)
            if (ty + 16 * i < nq)
                atomicMin(&smin, s0[i]);   /* an integer minimum: any order */
    __syncthreads();
    int kt1 = (q0 + nq - 1) / BT;
    for (int kt = smin / BT; kt <= kt1; kt++) {
        int k0 = kt * BT, nk = min(BT, T - k0);
        __syncthreads();   /* the last tile's values and probabilities are read */
        fa_load<D, BT>(sKV, base + (size_t)k0 * QS + (size_t)(H + kh) * hd, QS, nk, hd);
        __syncthreads();
        float s[R][R];
FA_UNROLL
        for (int i = 0; i < R; i++)
FA_UNROLL
            for (int j = 0; j < R; j++)
                s[i][j] = 0.0f;
        for (int e = 0; e < D; e++) {
            float qv[R], kv[R];
FA_UNROLL
            for (int i = 0; i < R; i++) {
                qv[i] = sQ[(ty + 16 * i) * SD + e];
                kv[i] = sKV[(tx + 16 * i) * SD + e];
            }
FA_UNROLL
            for (int i = 0; i < R; i++)
FA_UNROLL
                for (int j = 0; j < R; j++)
                    s[i][j] = __fmaf_rn(qv[i], kv[j], s[i][j]);
        }
FA_UNROLL
        for (int i = 0; i < R; i++) {
            int r = ty + 16 * i, t = q0 + r;
            float mt = -INFINITY;
FA_UNROLL
            for (int j = 0; j < R; j++) {
                int c = tx + 16 * j, sk = k0 + c;
                bool ok = r < nq && c < nk && sk <= t && sk >= s0[i];
                s[i][j] = ok ? __fmul_rn(s[i][j], a.scale) : -INFINITY;
                mt = fmaxf(mt, s[i][j]);
            }
            float mn = fmaxf(m[i], max16(mt));
            /* A row with no key yet (mn = -inf) keeps o = 0 and l = 0. */
            float alpha = mn == -INFINITY ? 1.0f : expf(m[i] - mn), ps = 0.0f;
FA_UNROLL
            for (int j = 0; j < R; j++) {
                float p = s[i][j] == -INFINITY ? 0.0f : expf(s[i][j] - mn);
                sP[r * SP + tx + 16 * j] = p;
                ps = __fadd_rn(ps, p);
            }
            l[i] = __fadd_rn(__fmul_rn(l[i], alpha), sum16(ps));
FA_UNROLL
            for (int k = 0; k < DK; k++)
                acc[i][k] = __fmul_rn(acc[i][k], alpha);
            m[i] = mn;
        }
        __syncthreads();   /* sP written, the keys read */
        fa_load<D, BT>(sKV, base + (size_t)k0 * QS + (size_t)(H + a.KVH + kh) * hd, QS, nk, hd);
        __syncthreads();
        fa_mix<D, R>(acc, sP, sKV, nk);
    }
FA_UNROLL
    for (int i = 0; i < R; i++) {
        int r = ty + 16 * i;
        if (r >= nq)
            continue;
        size_t t = (size_t)b * T + q0 + r;
FA_UNROLL
        for (int k = 0; k < DK; k++) {
            int d = tx + 16 * k;
            if (d < hd)
                a.o[t * OS + (size_t)h * hd + d] = __fdiv_rn(acc[i][k], l[i]);
        }
        if (tx == 0)
            a.lse_out[(size_t)bh * T + q0 + r] = __fadd_rn(m[i], logf(l[i]));
    }
}

/* drow(b, h, t) = dout . out over the head's hd dimensions, one warp per
 * (b, t, h). */
__global__ void flash_drow_k(float *drow, const float *dout, const float *out, int BT_rows,
                             int T, int H, int hd)
{
    int w = blockIdx.x * (blockDim.x >> 5) + (threadIdx.x >> 5), lane = threadIdx.x & 31;
    if (w >= BT_rows * H)
        return;
    int bt = w / H, h = w % H, b = bt / T, t = bt % T;
    const float *d = dout + (size_t)w * hd, *o = out + (size_t)w * hd;
    float s = 0.0f;
    for (int e = lane; e < hd; e += 32)
        s = __fmaf_rn(d[e], o[e], s);
    s = warp_sum(s);
    if (lane == 0)
        drow[((size_t)b * H + h) * T + t] = s;
}

/* dk and dv of one (b, kv head) (x) and key tile (y, first tiles first:
 * they have the most queries). */
template <int D, int R>
__global__ void __launch_bounds__(FA_THREADS) flash_dkdv_k(fa_args a)
{
    constexpr int BT = 16 * R, SD = D + 1, SP = BT + 1, DK = D / 16;
    FA_SHARED_BLOCK(fa_shm);
    float *sK = fa_shm, *sV = sK + BT * SD, *sQ = sV + BT * SD, *sO = sQ + BT * SD;
    float *sP = sO + BT * SD, *sS = sP + BT * SP, *sL = sS + BT * SP, *sDr = sL + BT;
    int *sSt = (int *)(sDr + BT);
    int tx = threadIdx.x & 15, ty = threadIdx.x >> 4;
    int T = a.T, H = a.H, KVH = a.KVH, hd = a.hd, rep = H / KVH;
    int g = blockIdx.x, b = g / KVH, kh = g % KVH, QS = (H + 2 * KVH) * hd, OS = H * hd;
    int nT = (T + BT - 1) / BT, kt = blockIdx.y, k0 = kt * BT, nk = min(BT, T - k0);
    const float *base = a.qkv + (size_t)b * T * QS;
    fa_load<D, BT>(sK, base + (size_t)k0 * QS + (size_t)(H + kh) * hd, QS, nk, hd);
    fa_load<D, BT>(sV, base + (size_t)k0 * QS + (size_t)(H + KVH + kh) * hd, QS, nk, hd);
    float dk[R][DK], dv[R][DK];
FA_UNROLL
    for (int i = 0; i < R; i++)
FA_UNROLL
        for (int k = 0; k < DK; k++)
            dk[i][k] = dv[i][k] = 0.0f;
    for (int j = 0; j < rep; j++) {
        int h = kh * rep + j;
        size_t bh = (size_t)b * H + h;
        for (int qt = kt; qt < nT; qt++) {
            int q0 = qt * BT, nq = min(BT, T - q0);
            __syncthreads();   /* the last tile is read */
            int live = 0;
            for (int q = threadIdx.x; q < BT; q += FA_THREADS) {
                bool in = q < nq;
                sL[q] = in ? a.lse[bh * T + q0 + q] : 0.0f;
                sDr[q] = in ? a.drow[bh * T + q0 + q] : 0.0f;
                sSt[q] = in ? (a.start ? a.start[(size_t)b * T + q0 + q] : 0) : T;
                live |= sSt[q] <= k0 + nk - 1;
            }
            if (!__syncthreads_or(live))
                continue;   /* every query of the tile starts after these keys */
            fa_load<D, BT>(sQ, base + (size_t)q0 * QS + (size_t)h * hd, QS, nq, hd);
            fa_load<D, BT>(sO, a.dout + ((size_t)b * T + q0) * OS + (size_t)h * hd, OS, nq, hd);
            __syncthreads();
            float s[R][R], dp[R][R];   /* rows: keys; columns: queries */
            fa_dots<D, R>(sK, sV, ty, sQ, sO, tx, s, dp);
            /* Rows: keys ty + 16 i; columns: queries tx + 16 c. */
FA_UNROLL
            for (int i = 0; i < R; i++)
FA_UNROLL
                for (int c = 0; c < R; c++) {
                    int kr = ty + 16 * i, q = tx + 16 * c, sk = k0 + kr, t = q0 + q;
                    bool ok = kr < nk && q < nq && sk <= t && sk >= sSt[q];
                    float p = fa_p(ok, s[i][c], a.scale, sL[q]);
                    sP[kr * SP + q] = p;
                    sS[kr * SP + q] = fa_ds(ok, p, dp[i][c], sDr[q]);
                }
            __syncthreads();
            for (int q = 0; q < nq; q++) {
                float ov[DK], qv[DK];
FA_UNROLL
                for (int k = 0; k < DK; k++) {
                    ov[k] = sO[q * SD + tx + 16 * k];
                    qv[k] = sQ[q * SD + tx + 16 * k];
                }
FA_UNROLL
                for (int i = 0; i < R; i++) {
                    float p = sP[(ty + 16 * i) * SP + q], ds = sS[(ty + 16 * i) * SP + q];
FA_UNROLL
                    for (int k = 0; k < DK; k++) {
                        dv[i][k] = __fmaf_rn(p, ov[k], dv[i][k]);
                        dk[i][k] = __fmaf_rn(ds, qv[k], dk[i][k]);
                    }
                }
            }
        }
    }
FA_UNROLL
    for (int i = 0; i < R; i++) {
        int kr = ty + 16 * i;
        if (kr >= nk)
            continue;
        float *row = a.dqkv + ((size_t)b * T + k0 + kr) * QS;
FA_UNROLL
        for (int k = 0; k < DK; k++) {
            int d = tx + 16 * k;
            if (d < hd) {
                row[(size_t)(H + kh) * hd + d] = __fmul_rn(dk[i][k], a.scale);
                row[(size_t)(H + KVH + kh) * hd + d] = dv[i][k];
            }
        }
    }
}

/* dq of one (b, h) (x) and query tile (y, last tiles first). */
template <int D, int R>
__global__ void __launch_bounds__(FA_THREADS) flash_dq_k(fa_args a)
{
    constexpr int BT = 16 * R, SD = D + 1, SP = BT + 1, DK = D / 16;
    FA_SHARED_BLOCK(fa_shm);
    float *sQ = fa_shm, *sO = sQ + BT * SD, *sK = sO + BT * SD, *sV = sK + BT * SD;
    float *sS = sV + BT * SD;
    __shared__ int smin;
    int tx = threadIdx.x & 15, ty = threadIdx.x >> 4;
    int T = a.T, H = a.H, hd = a.hd, bh = blockIdx.x, b = bh / H, h = bh % H;
    int kh = h / (H / a.KVH), QS = (H + 2 * a.KVH) * hd, OS = H * hd;
    int q0 = (gridDim.y - 1 - blockIdx.y) * BT, nq = min(BT, T - q0);
    const float *base = a.qkv + (size_t)b * T * QS;
    if (threadIdx.x == 0)
        smin = a.start ? q0 : 0;
    fa_load<D, BT>(sQ, base + (size_t)q0 * QS + (size_t)h * hd, QS, nq, hd);
    fa_load<D, BT>(sO, a.dout + ((size_t)b * T + q0) * OS + (size_t)h * hd, OS, nq, hd);
    int s0[R];
    float lse[R], dr[R], dq[R][DK];
FA_UNROLL
    for (int i = 0; i < R; i++) {
        int r = ty + 16 * i;
        bool in = r < nq;
        s0[i] = in && a.start ? a.start[(size_t)b * T + q0 + r] : 0;
        lse[i] = in ? a.lse[(size_t)bh * T + q0 + r] : 0.0f;
        dr[i] = in ? a.drow[(size_t)bh * T + q0 + r] : 0.0f;
FA_UNROLL
        for (int k = 0; k < DK; k++)
            dq[i][k] = 0.0f;
    }
    __syncthreads();
    if (a.start && tx == 0)
FA_UNROLL
        for (int i = 0; i < R; i++)
            if (ty + 16 * i < nq)
                atomicMin(&smin, s0[i]);
    __syncthreads();
    int kt1 = (q0 + nq - 1) / BT;
    for (int kt = smin / BT; kt <= kt1; kt++) {
        int k0 = kt * BT, nk = min(BT, T - k0);
        __syncthreads();
        fa_load<D, BT>(sK, base + (size_t)k0 * QS + (size_t)(H + kh) * hd, QS, nk, hd);
        fa_load<D, BT>(sV, base + (size_t)k0 * QS + (size_t)(H + a.KVH + kh) * hd, QS, nk, hd);
        __syncthreads();
        float s[R][R], dp[R][R];   /* rows: queries; columns: keys */
        fa_dots<D, R>(sQ, sO, ty, sK, sV, tx, s, dp);
FA_UNROLL
        for (int i = 0; i < R; i++)
FA_UNROLL
            for (int j = 0; j < R; j++) {
                int r = ty + 16 * i, c = tx + 16 * j, t = q0 + r, sk = k0 + c;
                bool ok = r < nq && c < nk && sk <= t && sk >= s0[i];
                sS[r * SP + c] = fa_ds(ok, fa_p(ok, s[i][j], a.scale, lse[i]), dp[i][j], dr[i]);
            }
        __syncthreads();
        fa_mix<D, R>(dq, sS, sK, nk);
    }
FA_UNROLL
    for (int i = 0; i < R; i++) {
        int r = ty + 16 * i;
        if (r >= nq)
            continue;
        float *row = a.dqkv + ((size_t)b * T + q0 + r) * QS + (size_t)h * hd;
FA_UNROLL
        for (int k = 0; k < DK; k++) {
            int d = tx + 16 * k;
            if (d < hd)
                row[d] = __fmul_rn(dq[i][k], a.scale);
        }
    }
}

#endif
