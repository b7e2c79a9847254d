/* test_flash_emulated.cc: the CUDA table's flash attention kernels
 * (kernels/cuda/flash.cuh, the source nvcc compiles) run on the CPU, block
 * after block, each block as FA_THREADS threads with real barriers
 * (__syncthreads, __syncthreads_or) and warp shuffles through a per-warp
 * buffer and barrier; dynamic shared memory is a heap block of exactly the
 * bytes the launch asks for, filled with NaN first, so that a read of an
 * unwritten or stale place shows in the results (and, under make asan, an
 * access past the block faults). Forward outputs, saved log-sum-exps and
 * the backward's dqkv are checked against the reference kernels
 * (kernels/cpu/ref.c), as tests/cuda/test_cuda_kernels.c checks them on a
 * GPU, within the same tolerances, on odd T, every head-size padding,
 * GQA and packed documents; a second run gives the same bits. No GPU is
 * needed: what this cannot see is the hardware (scheduling, memory model
 * beyond the barriers, fast-math differences), which the GPU test does. */
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <functional>
#include <mutex>
#include <thread>
#include <vector>

#include <pthread.h>

#include "kernels.h"

using std::min;

/* ------------------------------------------------------------ the CUDA side */

struct dim3 {
    unsigned x, y, z;
    dim3(unsigned a = 1, unsigned b = 1, unsigned c = 1) : x(a), y(b), z(c) {}
};
static thread_local dim3 threadIdx;
static dim3 blockIdx, gridDim, blockDim;
static float *g_shared;   /* the block's dynamic shared memory */
static pthread_barrier_t block_barrier, warp_barrier[32];
static float warp_buf[32][32];
static int or_buf[1024];
static std::mutex atomic_lock;

#define __global__
#define __device__
#define __shared__ static   /* one block at a time: static is per block */
#define __launch_bounds__(n)
#define FA_SHARED_BLOCK(name) float *name = g_shared
#define FA_UNROLL

static inline float __fmaf_rn(float a, float b, float c) { return std::fma(a, b, c); }
static inline float __fmul_rn(float a, float b) { return a * b; }
static inline float __fadd_rn(float a, float b) { return a + b; }
static inline float __fsub_rn(float a, float b) { return a - b; }
static inline float __fdiv_rn(float a, float b) { return a / b; }

static void __syncthreads() { pthread_barrier_wait(&block_barrier); }

static int __syncthreads_or(int p)
{
    or_buf[threadIdx.x] = p;
    __syncthreads();
    int r = 0;
    for (unsigned i = 0; i < blockDim.x; i++)
        r |= or_buf[i];
    __syncthreads();   /* or_buf is free again */
    return r;
}

static float __shfl_xor_sync(unsigned mask, float v, int lane_mask)
{
    (void)mask;   /* every lane takes part, as in the kernels */
    int w = threadIdx.x / 32, l = threadIdx.x % 32;
    warp_buf[w][l] = v;
    pthread_barrier_wait(&warp_barrier[w]);
    float r = warp_buf[w][l ^ lane_mask];
    pthread_barrier_wait(&warp_barrier[w]);
    return r;
}

static int atomicMin(int *p, int v)
{
    std::lock_guard<std::mutex> hold(atomic_lock);
    int old = *p;
    if (v < old)
        *p = v;
    return old;
}

template <typename T> static T warp_sum(T v)
{
    for (int o = 16; o > 0; o >>= 1)
        v += __shfl_xor_sync(0xffffffffu, v, o);
    return v;
}

#include "cuda/flash.cuh"

/* Runs kernel() over grid, block after block, each on `threads` threads. */
static void launch(dim3 grid, unsigned threads, size_t shared_bytes,
                   const std::function<void()> &kernel)
{
    gridDim = grid;
    blockDim = dim3(threads);
    pthread_barrier_init(&block_barrier, NULL, threads);
    for (unsigned w = 0; w < threads / 32; w++)
        pthread_barrier_init(&warp_barrier[w], NULL, 32);
    for (unsigned y = 0; y < grid.y; y++)
        for (unsigned x = 0; x < grid.x; x++) {
            blockIdx = dim3(x, y);
            size_t n = shared_bytes / sizeof(float);
            g_shared = new float[n ? n : 1];
            for (size_t i = 0; i < n; i++)
                g_shared[i] = NAN;
            std::vector<std::thread> block;
            for (unsigned t = 0; t < threads; t++)
                block.emplace_back([t, &kernel] {
                    threadIdx = dim3(t);
                    kernel();
                });
            for (auto &t : block)
                t.join();
            delete[] g_shared;
        }
    pthread_barrier_destroy(&block_barrier);
    for (unsigned w = 0; w < threads / 32; w++)
        pthread_barrier_destroy(&warp_barrier[w]);
}

/* The launches of cuda.cu's flash_forward() and flash_backward(). */
template <int D, int R> static void forward(const fa_args &a, int B)
{
    constexpr int BT = 16 * R;
    size_t bytes = (size_t)(2 * BT * (D + 1) + BT * (BT + 1)) * sizeof(float);
    launch(dim3(B * a.H, (a.T + BT - 1) / BT), FA_THREADS, bytes,
           [&a] { flash_forward_k<D, R>(a); });
}

template <int D, int R> static void backward(const fa_args &a, int B)
{
    constexpr int BT = 16 * R;
    unsigned tiles = (a.T + BT - 1) / BT;
    size_t kv = (size_t)(4 * BT * (D + 1) + 2 * BT * (BT + 1) + 3 * BT) * sizeof(float);
    size_t q = (size_t)(4 * BT * (D + 1) + BT * (BT + 1)) * sizeof(float);
    launch(dim3(B * a.KVH, tiles), FA_THREADS, kv, [&a] { flash_dkdv_k<D, R>(a); });
    launch(dim3(B * a.H, tiles), FA_THREADS, q, [&a] { flash_dq_k<D, R>(a); });
}

static void run_kernels(const fa_args &a, int B, bool back)
{
    if (a.hd <= 32)
        back ? backward<32, 4>(a, B) : forward<32, 4>(a, B);
    else if (a.hd <= 64)
        back ? backward<64, 4>(a, B) : forward<64, 4>(a, B);
    else if (a.hd <= 128)
        back ? backward<128, 4>(a, B) : forward<128, 4>(a, B);
    else
        back ? backward<256, 2>(a, B) : forward<256, 2>(a, B);
}

/* ------------------------------------------------------------ checks */

static int passed, failed;
static uint64_t rng_state = 0x2545f4914f6cdd1dull;

static float uniform()   /* [-1, 1) */
{
    rng_state ^= rng_state << 13;
    rng_state ^= rng_state >> 7;
    rng_state ^= rng_state << 17;
    return (float)((double)(rng_state >> 11) * (2.0 / 9007199254740992.0) - 1.0);
}

static void check(const char *what, const float *got, const float *want, size_t n, double atol,
                  double rtol)
{
    size_t bad = 0, worst = 0;
    double maxd = 0;
    for (size_t i = 0; i < n; i++) {
        double d = std::fabs((double)got[i] - want[i]);
        if (!(d <= atol + rtol * std::fabs(want[i])))
            bad++;
        if (!(d <= maxd)) {
            maxd = d;
            worst = i;
        }
    }
    if (bad) {
        failed++;
        printf("FAIL %s: %zu of %zu differ; worst [%zu] got %.9g want %.9g\n", what, bad, n,
               worst, got[worst], want[worst]);
    } else {
        passed++;
        printf("PASS %s: max |d| %.3g\n", what, maxd);
    }
}

/* Documents of 1 to 2 * mean + 1 positions packed into rows of T. */
static std::vector<int32_t> starts(int B, int T, int mean)
{
    std::vector<int32_t> st((size_t)B * T);
    for (int b = 0; b < B; b++)
        for (int t = 0, s = 0, left = 0; t < T; t++) {
            if (left == 0) {
                s = t;
                left = 1 + (int)((uniform() + 1.0f) * (float)mean);
            }
            st[(size_t)b * T + t] = s;
            left--;
        }
    return st;
}

static void test(int B, int T, int H, int KVH, int hd, int mean)
{
    const llm_kernels *r = llm_kernels_ref();
    int QS = (H + 2 * KVH) * hd, OS = H * hd;
    size_t nq = (size_t)B * T * QS, no = (size_t)B * T * OS, nl = (size_t)B * H * T;
    size_t na = (size_t)B * H * T * T;
    std::vector<float> qkv(nq), dout(no), out(no, NAN), lse(nl, NAN), drow(nl, NAN);
    std::vector<float> dqkv(nq, NAN), out_ref(no), att(na), dqkv_ref(nq), lse_ref(nl);
    for (auto &x : qkv)
        x = 2.0f * uniform();   /* peakier softmax */
    for (auto &x : dout)
        x = uniform();
    std::vector<int32_t> st = starts(B, T, mean);
    const int32_t *sp = mean ? st.data() : NULL;
    char shape[96], what[160];
    snprintf(shape, sizeof shape, "B=%d T=%d H=%d KVH=%d hd=%d%s", B, T, H, KVH, hd,
             mean ? " packed" : "");

    fa_args a = {};
    a.qkv = qkv.data();
    a.start = sp;
    a.o = out.data();
    a.lse_out = lse.data();
    a.T = T;
    a.H = H;
    a.KVH = KVH;
    a.hd = hd;
    a.scale = 1.0f / sqrtf((float)hd);
    run_kernels(a, B, false);
    r->attention_forward(out_ref.data(), att.data(), NULL, qkv.data(), sp, B, T, H, KVH, hd);
    snprintf(what, sizeof what, "forward out %s", shape);
    check(what, out.data(), out_ref.data(), no, 1e-5, 1e-4);
    /* The log-sum-exp of each query's scaled scores, in double. */
    double scale = 1.0 / std::sqrt((double)hd);
    for (int b = 0; b < B; b++)
        for (int h = 0; h < H; h++)
            for (int t = 0; t < T; t++) {
                const float *q = &qkv[((size_t)b * T + t) * QS + (size_t)h * hd];
                int s0 = sp ? sp[(size_t)b * T + t] : 0;
                std::vector<double> e;
                double mx = -INFINITY, sum = 0;
                for (int s = s0; s <= t; s++) {
                    const float *k = &qkv[((size_t)b * T + s) * QS + (size_t)(H + h / (H / KVH)) * hd];
                    double d = 0;
                    for (int i = 0; i < hd; i++)
                        d += (double)q[i] * k[i];
                    e.push_back(d * scale);
                    mx = std::fmax(mx, d * scale);
                }
                for (double x : e)
                    sum += std::exp(x - mx);
                lse_ref[((size_t)b * H + h) * T + t] = (float)(mx + std::log(sum));
            }
    snprintf(what, sizeof what, "forward saved log-sum-exps %s", shape);
    check(what, lse.data(), lse_ref.data(), nl, 1e-5, 1e-5);

    launch(dim3((unsigned)((nl + 7) / 8)), 256, 0, [&] {
        flash_drow_k(drow.data(), dout.data(), out.data(), B * T, T, H, hd);
    });
    a.out = out.data();
    a.dout = dout.data();
    a.lse = lse.data();
    a.drow = drow.data();
    a.dqkv = dqkv.data();
    run_kernels(a, B, true);
    r->attention_backward(dqkv_ref.data(), NULL, dout.data(), qkv.data(), out_ref.data(),
                          att.data(), sp, B, T, H, KVH, hd);
    snprintf(what, sizeof what, "backward %s", shape);
    check(what, dqkv.data(), dqkv_ref.data(), nq, 1e-4, 1e-4);

    /* Again: the same bits. */
    std::vector<float> dqkv2(nq, NAN);
    a.dqkv = dqkv2.data();
    run_kernels(a, B, true);
    snprintf(what, sizeof what, "backward %s, run twice", shape);
    bool same = std::memcmp(dqkv.data(), dqkv2.data(), nq * sizeof(float)) == 0;
    (same ? passed : failed)++;
    printf("%s %s%s\n", same ? "PASS" : "FAIL", what, same ? "" : ": not bitwise identical");
}

int main()
{
    setvbuf(stdout, NULL, _IOLBF, 0);
    test(1, 1, 1, 1, 2, 0);
    test(2, 5, 4, 2, 6, 0);      /* T inside one tile, GQA */
    test(1, 70, 2, 1, 16, 0);    /* T across tiles */
    test(2, 65, 4, 2, 16, 7);    /* packed short documents */
    test(1, 100, 4, 2, 48, 5);   /* hd padded to 64 */
    test(1, 129, 2, 1, 100, 9);  /* hd padded to 128 */
    test(1, 70, 2, 2, 200, 0);   /* hd padded to 256: tiles of 32 */
    test(1, 97, 2, 2, 256, 3);
    test(1, 200, 2, 1, 8, 40);   /* long documents: key tiles skipped */
    printf("%d passed, %d failed\n", passed, failed);
    return failed ? 1 : 0;
}
