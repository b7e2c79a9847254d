/* cuda.cu: the CUDA backend: every entry of the llm_kernels table on device
 * pointers (the sampler's host-side passes excepted: those are the CPU's),
 * plus the memory and error helpers of cuda.h.
 *
 * Matrix products go through cuBLAS in fp32 (pedantic compute: no TF32
 * unless llm_cuda_set_tf32() asks), row-major nn.Linear semantics mapped
 * onto cuBLAS's column-major view: a row-major (R, C) array is a column-major
 * (C, R) one, so out = inp . w^T becomes out' = w'^T . inp'.
 *
 * Attention is flash attention (flash.cuh): no (B,H,T,T) tensor in memory;
 * the forward keeps each query's log-sum-exp for the backward.
 *
 * Determinism: no floating-point atomics anywhere. Reductions run in a fixed
 * order that depends only on the sizes: warp butterflies and fixed block
 * trees; rmsnorm's dw and sum_squares sum per-chunk partials in chunk order;
 * embedding backward sorts positions by token (stable radix sort, a unique
 * result) and adds each vocabulary row's gradients in position order, which
 * is the reference's order, so its result is bitwise the reference's.
 * cuBLAS gives the same bits run to run on the same GPU model and toolkit
 * with one stream and atomics disallowed (set explicitly below). */
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <mutex>

#include <cublas_v2.h>
#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <cuda_runtime.h>
#include <cub/device/device_radix_sort.cuh>

#include "../cpu/cpu.h"
#include "../elementwise.h"
#include "../fastexp.h"
#include "../half.h"
#include "cuda.h"

/* ------------------------------------------------------------ errors */

static char err_msg[256];
static int err_set;

static void set_error(const char *where, const char *what)
{
    if (err_set)
        return;
    snprintf(err_msg, sizeof err_msg, "%s: %s", where, what);
    err_set = 1;
}

static bool ok_cuda(cudaError_t e, const char *where)
{
    if (e == cudaSuccess)
        return true;
    set_error(where, cudaGetErrorString(e));
    cudaGetLastError();   /* else a later launch check would see it again */
    return false;
}

static bool ok_blas(cublasStatus_t s, const char *where)
{
    if (s == CUBLAS_STATUS_SUCCESS)
        return true;
    set_error(where, cublasGetStatusString(s));
    return false;
}

/* A launch's configuration errors show at once; faults inside the kernel
 * show at the next synchronising call. */
#define LAUNCHED(name) ok_cuda(cudaGetLastError(), name)

extern "C" const char *llm_cuda_errmsg(void)
{
    return err_set ? err_msg : NULL;
}

extern "C" void llm_cuda_clear_error(void)
{
    err_set = 0;
    err_msg[0] = '\0';
}

/* ------------------------------------------------------------ start-up */

static cublasHandle_t blas;
static int started;              /* 0 not tried, 1 ready, -1 unusable */
static cublasComputeType_t gemm_compute = CUBLAS_COMPUTE_32F_PEDANTIC;
static cublasMath_t math_mode = CUBLAS_PEDANTIC_MATH;   /* the fp32 products' */

extern "C" int llm_cuda_device_count(void)
{
    int n = 0;
    if (cudaGetDeviceCount(&n) != cudaSuccess) {
        cudaGetLastError();   /* no driver or no device: not sticky, clear it */
        return 0;
    }
    return n;
}

extern "C" int llm_cuda_device_name(char *buf, size_t cap)
{
    cudaDeviceProp prop;
    int dev = 0;
    if (llm_cuda_device_count() <= 0 || cudaGetDevice(&dev) != cudaSuccess ||
        cudaGetDeviceProperties(&prop, dev) != cudaSuccess) {
        cudaGetLastError();
        return -1;
    }
    if (cap)
        snprintf(buf, cap, "%s", prop.name);
    return 0;
}

static bool start(void)
{
    if (started)
        return started > 0;
    started = -1;
    int n = 0;
    cudaError_t e = cudaGetDeviceCount(&n);
    if (e != cudaSuccess) {
        cudaGetLastError();
        set_error("cudaGetDeviceCount", cudaGetErrorString(e));
        return false;
    }
    if (n <= 0) {
        set_error("cudaGetDeviceCount", "the driver reports no GPU");
        return false;
    }
    /* Touch the device now, so that a broken driver fails here and not in
     * the first kernel. */
    if (!ok_cuda(cudaFree(0), "cudaFree(0)"))
        return false;
    if (!ok_blas(cublasCreate(&blas), "cublasCreate"))
        return false;
    if (!ok_blas(cublasSetAtomicsMode(blas, CUBLAS_ATOMICS_NOT_ALLOWED), "cublasSetAtomicsMode") ||
        !ok_blas(cublasSetPointerMode(blas, CUBLAS_POINTER_MODE_HOST), "cublasSetPointerMode") ||
        !ok_blas(cublasSetMathMode(blas, math_mode), "cublasSetMathMode")) {
        cublasDestroy(blas);
        return false;
    }
    started = 1;
    return true;
}

extern "C" int llm_cuda_use_device(int ordinal)
{
    int n = llm_cuda_device_count(), cur = -1;
    if (ordinal < 0 || ordinal >= n) {
        char msg[96];
        snprintf(msg, sizeof msg, "GPU %d does not exist (the driver reports %d)", ordinal, n);
        set_error("cudaSetDevice", msg);
        return -1;
    }
    if (started) {   /* the handle and the memory belong to the device in use */
        if (cudaGetDevice(&cur) == cudaSuccess && cur == ordinal)
            return 0;
        cudaGetLastError();
        set_error("cudaSetDevice", "CUDA has already started on another GPU");
        return -1;
    }
    return ok_cuda(cudaSetDevice(ordinal), "cudaSetDevice") ? 0 : -1;
}

extern "C" void llm_cuda_set_tf32(int on)
{
    gemm_compute = on ? CUBLAS_COMPUTE_32F_FAST_TF32 : CUBLAS_COMPUTE_32F_PEDANTIC;
    math_mode = on ? CUBLAS_TF32_TENSOR_OP_MATH : CUBLAS_PEDANTIC_MATH;
    if (started > 0)
        ok_blas(cublasSetMathMode(blas, math_mode), "cublasSetMathMode");
}

/* ------------------------------------------------------------ memory */

extern "C" int llm_cuda_alloc(void **p, size_t bytes)
{
    *p = NULL;
    if (bytes == 0)
        return 0;
    if (!ok_cuda(cudaMalloc(p, bytes), "cudaMalloc")) {
        *p = NULL;
        return -1;
    }
    return 0;
}

extern "C" void llm_cuda_free(void *p)
{
    if (p)
        ok_cuda(cudaFree(p), "cudaFree");
}

static int copy(void *dst, const void *src, size_t bytes, cudaMemcpyKind kind,
                const char *where)
{
    if (bytes == 0)
        return 0;
    return ok_cuda(cudaMemcpy(dst, src, bytes, kind), where) ? 0 : -1;
}

extern "C" int llm_cuda_h2d(void *dst, const void *src, size_t bytes)
{
    return copy(dst, src, bytes, cudaMemcpyHostToDevice, "cudaMemcpy to device");
}

extern "C" int llm_cuda_d2h(void *dst, const void *src, size_t bytes)
{
    return copy(dst, src, bytes, cudaMemcpyDeviceToHost, "cudaMemcpy to host");
}

extern "C" int llm_cuda_d2d(void *dst, const void *src, size_t bytes)
{
    return copy(dst, src, bytes, cudaMemcpyDeviceToDevice, "cudaMemcpy on device");
}

extern "C" int llm_cuda_memset(void *dst, int byte, size_t bytes)
{
    if (bytes == 0)
        return 0;
    return ok_cuda(cudaMemset(dst, byte, bytes), "cudaMemset") ? 0 : -1;
}

extern "C" int llm_cuda_sync(void)
{
    if (!ok_cuda(cudaDeviceSynchronize(), "cudaDeviceSynchronize"))
        return -1;
    return err_set ? -1 : 0;
}

/* One grow-only device buffer for the kernels' own temporaries (sort
 * buffers, partial sums, pointer arrays). Everything runs in order on one
 * stream, so a kernel's temporaries are dead by the time the next kernel
 * call reuses the buffer; growing waits for the device before freeing. */
static void *scratch;
static size_t scratch_cap;

static void *scratch_get(size_t bytes)
{
    if (bytes <= scratch_cap)
        return scratch;
    size_t cap = bytes + bytes / 4 + 4096;
    if (scratch) {
        ok_cuda(cudaDeviceSynchronize(), "cudaDeviceSynchronize");
        ok_cuda(cudaFree(scratch), "cudaFree");
        scratch = NULL;
        scratch_cap = 0;
    }
    if (!ok_cuda(cudaMalloc(&scratch, cap), "cudaMalloc (kernel scratch)")) {
        scratch = NULL;
        return NULL;
    }
    scratch_cap = cap;
    return scratch;
}

static size_t align256(size_t n)
{
    return (n + 255) & ~(size_t)255;
}

/* Blocks for a grid-stride loop over n items: enough to fill the GPU, a
 * fixed cap so that huge n loop instead of needing a huge grid. */
static unsigned grid_for(size_t n, int threads)
{
    size_t b = (n + threads - 1) / threads;
    return (unsigned)(b < 8192 ? b : 8192);
}

/* ------------------------------------------------------------ reductions */

template <typename T>
__device__ T warp_sum(T v)
{
    for (int o = 16; o > 0; o >>= 1)
        v += __shfl_xor_sync(0xffffffffu, v, o);
    return v;
}

__device__ float warp_max(float v)
{
    for (int o = 16; o > 0; o >>= 1)
        v = fmaxf(v, __shfl_xor_sync(0xffffffffu, v, o));
    return v;
}

/* Sum over the block in a fixed order (warp butterflies, then warp 0 over
 * the warps' sums); every thread gets the result. blockDim.x must be a
 * multiple of 32, at most 1024; shm holds 32 values. */
template <typename T>
__device__ T block_sum(T v, T *shm)
{
    int lane = threadIdx.x & 31, warp = threadIdx.x >> 5, nw = blockDim.x >> 5;
    v = warp_sum(v);
    __syncthreads();   /* shm may still be read from a previous call */
    if (lane == 0)
        shm[warp] = v;
    __syncthreads();
    if (warp == 0) {
        T w = lane < nw ? shm[lane] : (T)0;
        w = warp_sum(w);
        if (lane == 0)
            shm[0] = w;
    }
    __syncthreads();
    return shm[0];
}

__device__ float block_max(float v, float *shm)
{
    int lane = threadIdx.x & 31, warp = threadIdx.x >> 5, nw = blockDim.x >> 5;
    v = warp_max(v);
    __syncthreads();
    if (lane == 0)
        shm[warp] = v;
    __syncthreads();
    if (warp == 0) {
        float w = lane < nw ? shm[lane] : -INFINITY;
        w = warp_max(w);
        if (lane == 0)
            shm[0] = w;
    }
    __syncthreads();
    return shm[0];
}

/* ------------------------------------------------------------ matmul */

static void gemm(cublasOperation_t ta, cublasOperation_t tb, int m, int n, int k,
                 float alpha, const float *A, int lda, const float *B, int ldb,
                 float beta, float *C, int ldc, const char *where)
{
    ok_blas(cublasGemmEx(blas, ta, tb, m, n, k, &alpha, A, CUDA_R_32F, lda,
                         B, CUDA_R_32F, ldb, &beta, C, CUDA_R_32F, ldc,
                         gemm_compute, CUBLAS_GEMM_DEFAULT), where);
}

/* out(N,OC) = inp(N,IC) . w(OC,IC)^T; column-major: out' (OC,N) = w'^T inp'. */
static void matmul_forward(float *out, const float *inp, const float *w,
                           int N, int IC, int OC)
{
    if (N <= 0 || OC <= 0)
        return;
    gemm(CUBLAS_OP_T, CUBLAS_OP_N, OC, N, IC, 1.0f, w, IC, inp, IC, 0.0f, out, OC,
         "matmul_forward");
}

static void matmul_backward(float *dinp, float *dw, const float *dout,
                            const float *inp, const float *w,
                            int N, int IC, int OC)
{
    if (IC <= 0 || OC <= 0)
        return;
    /* dinp' (IC,N) = w' (IC,OC) . dout' (OC,N) */
    if (dinp && N > 0)
        gemm(CUBLAS_OP_N, CUBLAS_OP_N, IC, N, OC, 1.0f, w, IC, dout, OC, 0.0f, dinp, IC,
             "matmul_backward dinp");
    /* dw' (IC,OC) += inp' (IC,N) . dout'^T; with N = 0 cuBLAS leaves dw as is */
    if (dw)
        gemm(CUBLAS_OP_N, CUBLAS_OP_T, IC, OC, N, 1.0f, inp, IC, dout, OC, 1.0f, dw, IC,
             "matmul_backward dw");
}

/* ------------------------------------------------------------ bf16 products
 *
 * The same products in mixed precision (kernels.h): the inputs rounded to
 * bfloat16 (to nearest, ties to even) into the scratch buffer, then cuBLAS
 * on tensor cores with fp32 accumulation and fp32 outputs. The handle's
 * pedantic math mode (which the fp32 products keep) would forbid the
 * tensor cores: these calls run in the default mode, then restore it. */

__global__ void to_bf16_k(__nv_bfloat16 *h, const float *f, size_t n)
{
    for (size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x; i < n;
         i += (size_t)gridDim.x * blockDim.x)
        h[i] = __float2bfloat16_rn(f[i]);
}

/* n floats of src rounded into the scratch at *at (advanced). */
static const __nv_bfloat16 *bf16_of(char *base, size_t *at, const float *src, size_t n)
{
    __nv_bfloat16 *d = (__nv_bfloat16 *)(base + *at);
    *at += align256(n * sizeof *d);
    if (n) {
        to_bf16_k<<<grid_for(n, 256), 256>>>(d, src, n);
        if (!LAUNCHED("bf16 rounding"))
            return NULL;
    }
    return d;
}

static void gemm_bf16(cublasOperation_t ta, cublasOperation_t tb, int m, int n, int k,
                      const __nv_bfloat16 *A, int lda, const __nv_bfloat16 *B, int ldb,
                      float beta, float *C, int ldc, const char *where)
{
    float alpha = 1.0f;
    if (!ok_blas(cublasSetMathMode(blas, CUBLAS_DEFAULT_MATH), where))
        return;
    ok_blas(cublasGemmEx(blas, ta, tb, m, n, k, &alpha, A, CUDA_R_16BF, lda, B, CUDA_R_16BF,
                         ldb, &beta, C, CUDA_R_32F, ldc, CUBLAS_COMPUTE_32F,
                         CUBLAS_GEMM_DEFAULT), where);
    ok_blas(cublasSetMathMode(blas, math_mode), where);
}

static void matmul_forward_bf16(float *out, const float *inp, const float *w,
                                int N, int IC, int OC)
{
    if (N <= 0 || OC <= 0)
        return;
    size_t ni = (size_t)N * IC, nw = (size_t)OC * IC, at = 0;
    char *s = (char *)scratch_get(align256(ni * 2) + align256(nw * 2));
    if (!s)
        return;
    const __nv_bfloat16 *bi = bf16_of(s, &at, inp, ni), *bw = bf16_of(s, &at, w, nw);
    if (bi && bw)
        gemm_bf16(CUBLAS_OP_T, CUBLAS_OP_N, OC, N, IC, bw, IC, bi, IC, 0.0f, out, OC,
                  "matmul_forward_bf16");
}

static void matmul_backward_bf16(float *dinp, float *dw, const float *dout,
                                 const float *inp, const float *w,
                                 int N, int IC, int OC)
{
    if (IC <= 0 || OC <= 0 || (!dinp && !dw))
        return;
    size_t nn = (size_t)(N > 0 ? N : 0), nd = nn * OC, ni = nn * IC, nw = (size_t)OC * IC;
    size_t at = 0;
    char *s = (char *)scratch_get(align256(nd * 2) + align256(ni * 2) + align256(nw * 2));
    if (!s)
        return;
    const __nv_bfloat16 *bd = bf16_of(s, &at, dout, nd);
    const __nv_bfloat16 *bi = dw ? bf16_of(s, &at, inp, ni) : NULL;
    const __nv_bfloat16 *bw = dinp && N > 0 ? bf16_of(s, &at, w, nw) : NULL;
    if (!bd || (dw && !bi) || (dinp && N > 0 && !bw))
        return;
    if (dinp && N > 0)   /* dinp' (IC,N) = w' (IC,OC) . dout' (OC,N) */
        gemm_bf16(CUBLAS_OP_N, CUBLAS_OP_N, IC, N, OC, bw, IC, bd, OC, 0.0f, dinp, IC,
                  "matmul_backward_bf16 dinp");
    if (dw)   /* dw' (IC,OC) += inp' (IC,N) . dout'^T; N = 0 leaves dw as is */
        gemm_bf16(CUBLAS_OP_N, CUBLAS_OP_T, IC, OC, (int)nn, bi, IC, bd, OC, 1.0f, dw, IC,
                  "matmul_backward_bf16 dw");
}

/* ------------------------------------------------------------ embedding */

__global__ void embedding_forward_k(float *out, const int32_t *tokens, const float *wte,
                                    size_t total, int C)
{
    for (size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x; i < total;
         i += (size_t)gridDim.x * blockDim.x) {
        size_t n = i / C, c = i % C;
        out[i] = wte[(size_t)tokens[n] * C + c];
    }
}

static void embedding_forward(float *out, const int32_t *tokens, const float *wte,
                              int N, int C)
{
    size_t total = (size_t)N * (N > 0 && C > 0 ? C : 0);
    if (!total)
        return;
    embedding_forward_k<<<grid_for(total, 256), 256>>>(out, tokens, wte, total, C);
    LAUNCHED("embedding_forward");
}

__global__ void iota_k(int32_t *x, int n)
{
    for (int i = blockIdx.x * blockDim.x + threadIdx.x; i < n; i += gridDim.x * blockDim.x)
        x[i] = i;
}

/* Block x = sorted position i; it works only where a run of equal tokens
 * starts, and adds that run's rows in position order. */
__global__ void embedding_backward_k(float *dwte, const float *dout,
                                     const uint32_t *tok_sorted, const int32_t *pos_sorted,
                                     int N, int C)
{
    int i = blockIdx.x;
    uint32_t v = tok_sorted[i];
    if (i > 0 && tok_sorted[i - 1] == v)
        return;
    int c = blockIdx.y * blockDim.x + threadIdx.x;
    if (c >= C)
        return;
    float *d = dwte + (size_t)v * C + c;
    float acc = *d;
    for (int j = i; j < N && tok_sorted[j] == v; j++)
        acc += dout[(size_t)pos_sorted[j] * C + c];
    *d = acc;
}

static void embedding_backward(float *dwte, const float *dout, const int32_t *tokens,
                               int N, int C)
{
    if (N <= 0 || C <= 0)
        return;
    const uint32_t *keys_in = (const uint32_t *)tokens;   /* tokens are >= 0 */
    size_t temp_bytes = 0;
    if (!ok_cuda(cub::DeviceRadixSort::SortPairs(NULL, temp_bytes, keys_in, (uint32_t *)NULL,
                                                 (const int32_t *)NULL, (int32_t *)NULL, N),
                 "embedding_backward sort size"))
        return;
    size_t nb = align256((size_t)N * 4);
    char *s = (char *)scratch_get(3 * nb + align256(temp_bytes));
    if (!s)
        return;
    uint32_t *keys_out = (uint32_t *)s;
    int32_t *pos_in = (int32_t *)(s + nb), *pos_out = (int32_t *)(s + 2 * nb);
    void *temp = s + 3 * nb;
    iota_k<<<grid_for((size_t)N, 256), 256>>>(pos_in, N);
    if (!LAUNCHED("embedding_backward iota"))
        return;
    if (!ok_cuda(cub::DeviceRadixSort::SortPairs(temp, temp_bytes, keys_in, keys_out,
                                                 pos_in, pos_out, N),
                 "embedding_backward sort"))
        return;
    dim3 grid((unsigned)N, (unsigned)((C + 127) / 128));
    embedding_backward_k<<<grid, 128>>>(dwte, dout, keys_out, pos_out, N, C);
    LAUNCHED("embedding_backward");
}

/* ------------------------------------------------------------ rmsnorm */

/* One warp per row, 8 rows per block. */
#define ROWS_PER_BLOCK 8

__global__ void rmsnorm_forward_k(float *out, float *rstd, const float *inp,
                                  const float *w, int N, int C, float eps)
{
    int n = blockIdx.x * ROWS_PER_BLOCK + (threadIdx.x >> 5), lane = threadIdx.x & 31;
    if (n >= N)
        return;
    const float *x = inp + (size_t)n * C;
    float *y = out + (size_t)n * C;
    float ss = 0.0f;
    for (int c = lane; c < C; c += 32)
        ss += x[c] * x[c];
    ss = warp_sum(ss);
    float r = 1.0f / sqrtf(ss / (float)C + eps);
    for (int c = lane; c < C; c += 32)
        y[c] = x[c] * r * w[c];
    if (lane == 0)
        rstd[n] = r;
}

static void rmsnorm_forward(float *out, float *rstd, const float *inp, const float *w,
                            int N, int C, float eps)
{
    if (N <= 0 || C <= 0)
        return;
    rmsnorm_forward_k<<<(N + ROWS_PER_BLOCK - 1) / ROWS_PER_BLOCK, 32 * ROWS_PER_BLOCK>>>(
        out, rstd, inp, w, N, C, eps);
    LAUNCHED("rmsnorm_forward");
}

/* dx_j += r w_j dy_j - r^3 x_j / C * sum_c dy_c w_c x_c, one warp per row. */
__global__ void rmsnorm_backward_dx_k(float *dinp, const float *dout, const float *inp,
                                      const float *w, const float *rstd, int N, int C)
{
    int n = blockIdx.x * ROWS_PER_BLOCK + (threadIdx.x >> 5), lane = threadIdx.x & 31;
    if (n >= N)
        return;
    const float *x = inp + (size_t)n * C, *dy = dout + (size_t)n * C;
    float *dx = dinp + (size_t)n * C;
    float dot = 0.0f, r = rstd[n];
    for (int c = lane; c < C; c += 32)
        dot += dy[c] * w[c] * x[c];
    dot = warp_sum(dot);
    float k = r * r * r * dot / (float)C;
    for (int c = lane; c < C; c += 32)
        dx[c] += r * w[c] * dy[c] - k * x[c];
}

/* partial[chunk][c] = sum over the chunk's rows of dy x r, rows in order. */
__global__ void rmsnorm_backward_dw_k(float *partial, const float *dout, const float *inp,
                                      const float *rstd, int N, int C, int rows)
{
    int c = blockIdx.x * blockDim.x + threadIdx.x, chunk = blockIdx.y;
    if (c >= C)
        return;
    int n0 = chunk * rows, n1 = n0 + rows < N ? n0 + rows : N;
    float s = 0.0f;
    for (int n = n0; n < n1; n++)
        s += dout[(size_t)n * C + c] * inp[(size_t)n * C + c] * rstd[n];
    partial[(size_t)chunk * C + c] = s;
}

/* dw[c] += the chunks' partials, in chunk order. */
__global__ void sum_chunks_k(float *dw, const float *partial, int chunks, int C)
{
    int c = blockIdx.x * blockDim.x + threadIdx.x;
    if (c >= C)
        return;
    double s = 0.0;
    for (int k = 0; k < chunks; k++)
        s += partial[(size_t)k * C + c];
    dw[c] += (float)s;
}

static void rmsnorm_backward(float *dinp, float *dw, const float *dout, const float *inp,
                             const float *w, const float *rstd, int N, int C)
{
    if (N <= 0 || C <= 0)
        return;
    rmsnorm_backward_dx_k<<<(N + ROWS_PER_BLOCK - 1) / ROWS_PER_BLOCK, 32 * ROWS_PER_BLOCK>>>(
        dinp, dout, inp, w, rstd, N, C);
    if (!LAUNCHED("rmsnorm_backward dinp"))
        return;
    /* At most ~256 chunks of at least 32 rows: the chunking depends on N
     * alone, so the sum order does too. */
    int rows = (N + 255) / 256;
    rows = rows < 32 ? 32 : rows;
    int chunks = (N + rows - 1) / rows;
    float *partial = (float *)scratch_get((size_t)chunks * C * sizeof(float));
    if (!partial)
        return;
    dim3 grid((unsigned)((C + 127) / 128), (unsigned)chunks);
    rmsnorm_backward_dw_k<<<grid, 128>>>(partial, dout, inp, rstd, N, C, rows);
    if (!LAUNCHED("rmsnorm_backward dw partials"))
        return;
    sum_chunks_k<<<(C + 127) / 128, 128>>>(dw, partial, chunks, C);
    LAUNCHED("rmsnorm_backward dw");
}

/* ------------------------------------------------------------ rope */

__global__ void rope_k(float *x, const float *cos_t, const float *sin_t, size_t total,
                       int T, int nh, int hd, int stride, float sign)
{
    int h2 = hd / 2;
    for (size_t idx = blockIdx.x * (size_t)blockDim.x + threadIdx.x; idx < total;
         idx += (size_t)gridDim.x * blockDim.x) {
        int i = (int)(idx % h2);
        size_t rest = idx / h2;
        int h = (int)(rest % nh);
        size_t bt = rest / nh;
        int t = (int)(bt % T);
        float *p = x + bt * stride + (size_t)h * hd + 2 * i;
        float c = cos_t[(size_t)t * h2 + i], s = sign * sin_t[(size_t)t * h2 + i];
        float x0 = p[0], x1 = p[1];
        p[0] = x0 * c - x1 * s;
        p[1] = x0 * s + x1 * c;
    }
}

static void rope(float *x, const float *cos_t, const float *sin_t, int B, int T, int nh,
                 int hd, int stride, float sign)
{
    if (B <= 0 || T <= 0 || nh <= 0 || hd < 2)
        return;
    size_t total = (size_t)B * T * nh * (hd / 2);
    rope_k<<<grid_for(total, 256), 256>>>(x, cos_t, sin_t, total, T, nh, hd, stride, sign);
    LAUNCHED("rope");
}

static void rope_forward(float *x, const float *cos_t, const float *sin_t, int B, int T,
                         int nh, int hd, int stride)
{
    rope(x, cos_t, sin_t, B, T, nh, hd, stride, 1.0f);
}

static void rope_backward(float *dx, const float *cos_t, const float *sin_t, int B, int T,
                          int nh, int hd, int stride)
{
    rope(dx, cos_t, sin_t, B, T, nh, hd, stride, -1.0f);
}

/* ------------------------------------------------------------ attention
 *
 * Flash attention: the kernels, their tiles and their order of summation
 * are in flash.cuh; here, their launches. */
#include "flash.cuh"

static bool att_shape_ok(int B, int T, int H, int KVH, int hd, const char *where)
{
    if (!(B > 0 && T > 0 && H > 0 && KVH > 0 && hd > 0 && H % KVH == 0))
        return false;
    if (hd > 256 || T > 65535 * 32 || (size_t)B * H > 0x7fffffffu) {
        set_error(where, "head size above 256, or a sequence or batch too long for the grid");
        return false;
    }
    return true;
}

/* Allows `kernel` `bytes` of dynamic shared memory, when the GPU has them. */
static bool fa_shared(const void *kernel, size_t bytes, const char *where)
{
    int dev = 0, most = 0;
    if (!ok_cuda(cudaGetDevice(&dev), where) ||
        !ok_cuda(cudaDeviceGetAttribute(&most, cudaDevAttrMaxSharedMemoryPerBlockOptin, dev),
                 where))
        return false;
    if (bytes > (size_t)most) {
        char msg[128];
        snprintf(msg, sizeof msg, "needs %zu bytes of shared memory per block; this GPU has %d",
                 bytes, most);
        set_error(where, msg);
        return false;
    }
    return ok_cuda(cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize,
                                        (int)bytes), where);
}

template <int D, int R>
static void flash_forward(const fa_args &a, int B)
{
    constexpr int BT = 16 * R;
    size_t bytes = (size_t)(2 * BT * (D + 1) + BT * (BT + 1)) * sizeof(float);
    if (!fa_shared((const void *)flash_forward_k<D, R>, bytes, "attention_forward"))
        return;
    dim3 grid((unsigned)(B * a.H), (unsigned)((a.T + BT - 1) / BT));
    flash_forward_k<D, R><<<grid, FA_THREADS, bytes>>>(a);
    LAUNCHED("attention_forward");
}

template <int D, int R>
static void flash_backward(const fa_args &a, int B)
{
    constexpr int BT = 16 * R;
    size_t kv_bytes = (size_t)(4 * BT * (D + 1) + 2 * BT * (BT + 1) + 3 * BT) * sizeof(float);
    size_t q_bytes = (size_t)(4 * BT * (D + 1) + BT * (BT + 1)) * sizeof(float);
    if (!fa_shared((const void *)flash_dkdv_k<D, R>, kv_bytes, "attention_backward dk dv") ||
        !fa_shared((const void *)flash_dq_k<D, R>, q_bytes, "attention_backward dq"))
        return;
    unsigned tiles = (unsigned)((a.T + BT - 1) / BT);
    flash_dkdv_k<D, R><<<dim3((unsigned)(B * a.KVH), tiles), FA_THREADS, kv_bytes>>>(a);
    if (!LAUNCHED("attention_backward dk dv"))
        return;
    flash_dq_k<D, R><<<dim3((unsigned)(B * a.H), tiles), FA_THREADS, q_bytes>>>(a);
    LAUNCHED("attention_backward dq");
}

static size_t attention_saved(int B, int T, int H)
{
    return (size_t)(B > 0 ? B : 0) * (size_t)(H > 0 ? H : 0) * (size_t)(T > 0 ? T : 0);
}

/* The arguments every flash kernel takes: the shape, scale 1/sqrt(hd). */
static fa_args fa_shape(const float *qkv, const int32_t *start, int T, int H, int KVH, int hd)
{
    fa_args a = {};
    a.qkv = qkv;
    a.start = start;
    a.T = T;
    a.H = H;
    a.KVH = KVH;
    a.hd = hd;
    a.scale = 1.0f / sqrtf((float)hd);
    return a;
}

/* The forward or backward instance for the head size (tiles of 64 rows,
 * 32 above hd 128). */
static void flash_run(const fa_args &a, int B, bool backward)
{
    if (a.hd <= 32)
        backward ? flash_backward<32, 4>(a, B) : flash_forward<32, 4>(a, B);
    else if (a.hd <= 64)
        backward ? flash_backward<64, 4>(a, B) : flash_forward<64, 4>(a, B);
    else if (a.hd <= 128)
        backward ? flash_backward<128, 4>(a, B) : flash_forward<128, 4>(a, B);
    else
        backward ? flash_backward<256, 2>(a, B) : flash_forward<256, 2>(a, B);
}

/* scratch: the backward's drow(B, H, T); the forward needs none. */
static size_t attention_scratch(int B, int T, int H, int KVH, int hd, int backward)
{
    (void)KVH, (void)hd;
    return backward ? attention_saved(B, T, H) : 0;
}

static void attention_forward(float *out, float *saved, float *scratch, const float *qkv,
                              const int32_t *start, int B, int T, int H, int KVH, int hd)
{
    (void)scratch;
    if (!att_shape_ok(B, T, H, KVH, hd, "attention_forward"))
        return;
    fa_args a = fa_shape(qkv, start, T, H, KVH, hd);
    a.o = out;
    a.lse_out = saved;
    flash_run(a, B, false);
}

/* scratch: drow(B, H, T). */
static void attention_backward(float *dqkv, float *scratch, const float *dout,
                               const float *qkv, const float *out, const float *saved,
                               const int32_t *start, int B, int T, int H, int KVH, int hd)
{
    if (!att_shape_ok(B, T, H, KVH, hd, "attention_backward"))
        return;
    size_t rows = (size_t)B * T * H;
    flash_drow_k<<<(unsigned)((rows + 7) / 8), 256>>>(scratch, dout, out, B * T, T, H, hd);
    if (!LAUNCHED("attention_backward drow"))
        return;
    fa_args a = fa_shape(qkv, start, T, H, KVH, hd);
    a.out = out;
    a.dout = dout;
    a.lse = saved;
    a.drow = scratch;
    a.dqkv = dqkv;
    flash_run(a, B, true);
}

/* ------------------------------------------------------------ swiglu */

__global__ void swiglu_forward_k(float *out, const float *h13, size_t total, int F)
{
    for (size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x; i < total;
         i += (size_t)gridDim.x * blockDim.x) {
        size_t n = i / F, f = i % F;
        float g = h13[n * 2 * F + f], u = h13[n * 2 * F + F + f];
        out[i] = g / (1.0f + expf(-g)) * u;
    }
}

__global__ void swiglu_backward_k(float *dh13, const float *dout, const float *h13,
                                  size_t total, int F)
{
    for (size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x; i < total;
         i += (size_t)gridDim.x * blockDim.x) {
        size_t n = i / F, f = i % F;
        float g = h13[n * 2 * F + f], u = h13[n * 2 * F + F + f], d = dout[i];
        float sg = 1.0f / (1.0f + expf(-g));
        dh13[n * 2 * F + f] = d * u * sg * (1.0f + g * (1.0f - sg));
        dh13[n * 2 * F + F + f] = d * g * sg;
    }
}

static void swiglu_forward(float *out, const float *h13, int N, int F)
{
    size_t total = (size_t)(N > 0 ? N : 0) * (F > 0 ? F : 0);
    if (!total)
        return;
    swiglu_forward_k<<<grid_for(total, 256), 256>>>(out, h13, total, F);
    LAUNCHED("swiglu_forward");
}

static void swiglu_backward(float *dh13, const float *dout, const float *h13, int N, int F)
{
    size_t total = (size_t)(N > 0 ? N : 0) * (F > 0 ? F : 0);
    if (!total)
        return;
    swiglu_backward_k<<<grid_for(total, 256), 256>>>(dh13, dout, h13, total, F);
    LAUNCHED("swiglu_backward");
}

/* ------------------------------------------------------------ element-wise */

__global__ void residual_k(float *out, const float *a, const float *b, size_t n)
{
    for (size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x; i < n;
         i += (size_t)gridDim.x * blockDim.x)
        out[i] = a[i] + b[i];
}

static void residual_forward(float *out, const float *a, const float *b, size_t n)
{
    if (!n)
        return;
    residual_k<<<grid_for(n, 256), 256>>>(out, a, b, n);
    LAUNCHED("residual_forward");
}

__global__ void scale_k(float *x, size_t n, float s)
{
    for (size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x; i < n;
         i += (size_t)gridDim.x * blockDim.x)
        x[i] *= s;
}

static void scale(float *x, size_t n, float s)
{
    if (!n)
        return;
    scale_k<<<grid_for(n, 256), 256>>>(x, n, s);
    LAUNCHED("scale");
}

__global__ void axpy_k(float *y, int ldy, const float *x, int ldx, int N, int C, float a)
{
    size_t n = (size_t)N * C;
    for (size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x; i < n;
         i += (size_t)gridDim.x * blockDim.x) {
        size_t r = i / (size_t)C, c = i % (size_t)C;
        y[r * (size_t)ldy + c] += a * x[r * (size_t)ldx + c];
    }
}

static void axpy(float *y, int ldy, const float *x, int ldx, int N, int C, float a)
{
    if (N <= 0 || C <= 0)
        return;
    axpy_k<<<grid_for((size_t)N * C, 256), 256>>>(y, ldy, x, ldx, N, C, a);
    LAUNCHED("axpy");
}

__global__ void adamw_k(float *p, const float *g, float *m, float *v, size_t n, float lr,
                        float beta1, float beta2, float eps, float wd, float ic1, float ic2)
{
    float a1 = 1.0f - beta1, a2 = 1.0f - beta2;
    for (size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x; i < n;
         i += (size_t)gridDim.x * blockDim.x)
        llm_adamw_one(p, g, m, v, i, lr, beta1, beta2, a1, a2, eps, wd, ic1, ic2);
}

static void adamw_update(float *p, const float *g, float *m, float *v, size_t n, float lr,
                         float beta1, float beta2, float eps, float wd, int t)
{
    if (!n)
        return;
    float ic1 = (float)(1.0 / (1.0 - pow(beta1, t)));
    float ic2 = (float)(1.0 / (1.0 - pow(beta2, t)));
    adamw_k<<<grid_for(n, 256), 256>>>(p, g, m, v, n, lr, beta1, beta2, eps, wd, ic1, ic2);
    LAUNCHED("adamw_update");
}

/* A fixed grid, whatever the GPU, so that the order of the sum depends on n
 * alone: SS_BLOCKS partials, then one block sums them. */
#define SS_BLOCKS 512
#define SS_THREADS 256

__global__ void sum_squares_k(double *partial, const float *x, size_t n)
{
    __shared__ double shm[32];
    double s = 0.0;
    for (size_t i = blockIdx.x * (size_t)SS_THREADS + threadIdx.x; i < n;
         i += (size_t)SS_BLOCKS * SS_THREADS)
        s += (double)x[i] * x[i];
    s = block_sum(s, shm);
    if (threadIdx.x == 0)
        partial[blockIdx.x] = s;
}

__global__ void sum_partials_k(double *out, const double *partial)
{
    __shared__ double shm[32];
    double s = block_sum(partial[threadIdx.x], shm);
    if (threadIdx.x == 0)
        *out = s;
}

static double sum_squares(const float *x, size_t n)
{
    if (!n)
        return 0.0;
    double *partial = (double *)scratch_get((SS_BLOCKS + 1) * sizeof(double));
    if (!partial)
        return NAN;
    sum_squares_k<<<SS_BLOCKS, SS_THREADS>>>(partial, x, n);
    if (!LAUNCHED("sum_squares"))
        return NAN;
    sum_partials_k<<<1, SS_BLOCKS>>>(partial + SS_BLOCKS, partial);
    if (!LAUNCHED("sum_squares partials"))
        return NAN;
    double s = NAN;
    if (llm_cuda_d2h(&s, partial + SS_BLOCKS, sizeof s) != 0)
        return NAN;
    return s;
}

/* ------------------------------------------------------------ cross-entropy */

#define CE_THREADS 512

/* One block per row. dlogits may be logits: every element is read and
 * written by the same thread, and logit[target] is read by all threads
 * before the first barrier, ahead of any write. */
__global__ void crossentropy_k(float *losses, float *dlogits, const float *logits,
                               const int32_t *targets, int V, float dscale, float eps)
{
    __shared__ float fshm[32];
    __shared__ double dshm[32];
    __shared__ double tshm[32];
    size_t n = blockIdx.x;
    const float *l = logits + n * V;
    float *e = dlogits ? dlogits + n * V : NULL;
    int y = targets[n];
    if (y < 0) {
        if (threadIdx.x == 0)
            losses[n] = 0.0f;
        if (e)
            for (int i = threadIdx.x; i < V; i += CE_THREADS)
                e[i] = 0.0f;
        return;
    }
    float ly = l[y];
    float mx = -INFINITY;
    for (int i = threadIdx.x; i < V; i += CE_THREADS)
        mx = fmaxf(mx, l[i]);
    mx = block_max(mx, fshm);
    float part = 0.0f, lsum = 0.0f;
    for (int i = threadIdx.x; i < V; i += CE_THREADS) {
        part += expf(l[i] - mx);
        lsum += l[i];
    }
    double sum = block_sum((double)part, dshm);
    double tot = eps > 0.0f ? block_sum((double)lsum, tshm) : 0.0;
    if (threadIdx.x == 0)
        losses[n] = (float)(log(sum) + mx - (1.0 - eps) * ly - eps * (tot / V));
    if (e) {
        float inv = (float)(1.0 / sum), hit = 1.0f - eps, u = eps / (float)V;
        for (int i = threadIdx.x; i < V; i += CE_THREADS) {
            float pr = expf(l[i] - mx) * inv;
            e[i] = (pr - (i == y ? hit + u : u)) * dscale;
        }
    }
}

static void crossentropy_forward(float *losses, float *dlogits, const float *logits,
                                 const int32_t *targets, int N, int V, float dscale, float eps)
{
    if (N <= 0 || V <= 0)
        return;
    crossentropy_k<<<(unsigned)N, CE_THREADS>>>(losses, dlogits, logits, targets, V, dscale,
                                                eps);
    LAUNCHED("crossentropy_forward");
}

/* ------------------------------------------------------------ inference
 *
 * The inference entries' orders of summation are their contracts
 * (kernels.h): every operation is spelled out (__fmaf_rn, __fmul_rn,
 * __fadd_rn), so that nvcc neither contracts a product and a sum into an
 * fma nor reorders, and each output element is computed alone, in an order
 * that depends on the sizes of its own row only: the same bits as the cpu
 * and ref tables, whatever the batch. The small index arrays (map, len, the
 * pointer arrays of attention_rows) are host memory: they travel to the
 * device scratch in one copy per call, in stream order. */

/* Host arrays gathered into one host buffer, to go to the device scratch
 * in one copy: put() appends the n elements of a at *at (advanced) and
 * returns where they will be on the device (dev + their offset). */
static char *staging;
static size_t staging_cap;

template <typename T>
static const T *put(char *dev, size_t *at, const T *a, size_t n)
{
    size_t off = *at, bytes = n * sizeof *a;
    *at += align256(bytes);
    if (*at > staging_cap) {
        size_t cap = *at * 2;
        char *p = (char *)realloc(staging, cap);
        if (!p) {
            set_error("staging the index arrays", "out of host memory");
            return NULL;
        }
        staging = p;
        staging_cap = cap;
    }
    memcpy(staging + off, a, bytes);
    return (const T *)(dev + off);
}

/* The `bytes` staged by put() into dev. */
static bool staged(char *dev, size_t bytes)
{
    return llm_cuda_h2d(dev, staging, bytes) == 0;
}

/* A product's host row map (N entries) in the device scratch; NULL with
 * the error set when it cannot get there. */
static const int *device_map(const int *map, int N)
{
    size_t at = 0;
    char *s = (char *)scratch_get(align256((size_t)N * sizeof *map));
    const int *d = s ? put(s, &at, map, (size_t)N) : NULL;
    return d && staged(s, at) ? d : NULL;
}

/* Rows of a product: row n of both inp and out is map[n] (map NULL: n). */
__device__ inline size_t row_of(const int *map, int n)
{
    return (size_t)(map ? map[n] : n);
}

__device__ inline float weight_at(const void *w, size_t i, int halves)
{
    return halves ? __half2float(__ushort_as_half(((const unsigned short *)w)[i]))
                : ((const float *)w)[i];
}

/* matmul_rows: a group of 8 lanes per output feature o, lane j holding the
 * partial sum s_j (fmaf over k = 8i + j) of up to MR_ROWS input rows at a
 * time, so that the group reads each 8 consecutive weights once for all of
 * them; the tree ((s0 + s4) + (s2 + s6)) + ((s1 + s5) + (s3 + s7)) by
 * shuffles within the group, then lane 0 adds the tail k >= K8 in order,
 * each a product then a sum. 4 groups per warp, 8 warps per block. */
#define MR_ROWS 8
#define MR_THREADS 256
#define GRID_Y_MAX 65535

__global__ void matmul_rows_k(float *out, size_t ldo, const float *inp, size_t ldi,
                              const int *map, int row0, const void *w, int halves, int N, int IC,
                              int OC)
{
    int j = threadIdx.x & 7;
    int o = blockIdx.x * (MR_THREADS / 8) + (threadIdx.x >> 3);
    int n0 = row0 + blockIdx.y * MR_ROWS, nr = N - n0 < MR_ROWS ? N - n0 : MR_ROWS;
    bool live = o < OC;   /* dead lanes still take part in the shuffles */
    int K8 = IC & ~7;
    size_t wr = (size_t)(live ? o : 0) * IC;
    const float *x[MR_ROWS];
    float s[MR_ROWS];
#pragma unroll
    for (int r = 0; r < MR_ROWS; r++) {
        x[r] = inp + row_of(map, n0 + (r < nr ? r : 0)) * ldi;
        s[r] = 0.0f;
    }
    for (int k = j; live && k < K8; k += 8) {
        float wk = weight_at(w, wr + k, halves);
#pragma unroll
        for (int r = 0; r < MR_ROWS; r++)
            if (r < nr)
                s[r] = __fmaf_rn(wk, x[r][k], s[r]);
    }
#pragma unroll
    for (int r = 0; r < MR_ROWS; r++) {
        float t = __fadd_rn(s[r], __shfl_down_sync(0xffffffffu, s[r], 4, 8));  /* s_j + s_j+4 */
        t = __fadd_rn(t, __shfl_down_sync(0xffffffffu, t, 2, 8));
        t = __fadd_rn(t, __shfl_down_sync(0xffffffffu, t, 1, 8));
        if (live && j == 0 && r < nr) {
            for (int k = K8; k < IC; k++)
                t = __fadd_rn(t, __fmul_rn(weight_at(w, wr + k, halves), x[r][k]));
            out[row_of(map, n0 + r) * ldo + o] = t;
        }
    }
}

static void matmul_rows(float *out, size_t ldo, const float *inp, size_t ldi, const int *map,
                        const void *w, int halves, int N, int IC, int OC)
{
    if (N <= 0 || OC <= 0)
        return;
    const int *dmap = NULL;
    if (map && !(dmap = device_map(map, N)))
        return;
    /* grid.y is at most 65535: row chunks of that many blocks. */
    for (int n0 = 0; n0 < N; n0 += GRID_Y_MAX * MR_ROWS) {
        int nc = N - n0 < GRID_Y_MAX * MR_ROWS ? N - n0 : GRID_Y_MAX * MR_ROWS;
        dim3 grid((unsigned)((OC + MR_THREADS / 8 - 1) / (MR_THREADS / 8)),
                  (unsigned)((nc + MR_ROWS - 1) / MR_ROWS));
        matmul_rows_k<<<grid, MR_THREADS>>>(out, ldo, inp, ldi, dmap, n0, w, halves, n0 + nc, IC,
                                            OC);
        if (!LAUNCHED("matmul_rows"))
            return;
    }
}

/* matmul_rows_packed: a tiled product (PK_TILE x PK_TILE outputs per block,
 * one per thread), each output one fmaf chain over k = 0 .. IC-1 in order
 * through the tiles: the order the contract fixes, with no repacking (no
 * scratch). */
#define PK_TILE 16

__global__ void matmul_rows_packed_k(float *out, size_t ldo, const float *inp, size_t ldi,
                                     const int *map, int row0, const float *w, int N, int IC,
                                     int OC)
{
    __shared__ float xs[PK_TILE][PK_TILE + 1], ws[PK_TILE][PK_TILE + 1];
    int tx = threadIdx.x, ty = threadIdx.y;
    int o = blockIdx.x * PK_TILE + tx, n = row0 + blockIdx.y * PK_TILE + ty;
    /* Loading: thread (tx, ty) fetches element tx of row ty of each tile. */
    int ol = blockIdx.x * PK_TILE + ty;
    const float *xrow = n < N ? inp + row_of(map, n) * ldi : NULL;
    const float *wrow = ol < OC ? w + (size_t)ol * IC : NULL;
    float acc = 0.0f;
    for (int k0 = 0; k0 < IC; k0 += PK_TILE) {
        int k = k0 + tx;
        xs[ty][tx] = xrow && k < IC ? xrow[k] : 0.0f;
        ws[ty][tx] = wrow && k < IC ? wrow[k] : 0.0f;
        __syncthreads();
        int kn = IC - k0 < PK_TILE ? IC - k0 : PK_TILE;   /* no padded terms */
        for (int kk = 0; kk < kn; kk++)
            acc = __fmaf_rn(xs[ty][kk], ws[tx][kk], acc);
        __syncthreads();
    }
    if (n < N && o < OC)
        out[row_of(map, n) * ldo + o] = acc;
}

static size_t matmul_rows_scratch(int IC, int OC)
{
    (void)IC;
    (void)OC;
    return 0;
}

static void matmul_rows_packed(float *out, size_t ldo, const float *inp, size_t ldi,
                               const int *map, const float *w, float *scratch_unused,
                               int N, int IC, int OC)
{
    (void)scratch_unused;
    if (N <= 0 || OC <= 0)
        return;
    const int *dmap = NULL;
    if (map && !(dmap = device_map(map, N)))
        return;
    for (int n0 = 0; n0 < N; n0 += GRID_Y_MAX * PK_TILE) {
        int nc = N - n0 < GRID_Y_MAX * PK_TILE ? N - n0 : GRID_Y_MAX * PK_TILE;
        dim3 grid((unsigned)((OC + PK_TILE - 1) / PK_TILE),
                  (unsigned)((nc + PK_TILE - 1) / PK_TILE));
        matmul_rows_packed_k<<<grid, dim3(PK_TILE, PK_TILE)>>>(out, ldo, inp, ldi, dmap, n0, w,
                                                               n0 + nc, IC, OC);
        if (!LAUNCHED("matmul_rows_packed"))
            return;
    }
}

/* attention_rows: one block per (row, head) task, blocks taking tasks in
 * turn; each block's scores live in its own maxlen floats of scratch. The
 * orders are the CPU kernel's (rows.c): a score is 8 fmaf chains over j =
 * 8u + l, the same tree, then the tail j, times the scale; the
 * probabilities are fast_expf(a - max) times 1/sum; an output element is
 * one fmaf chain over t in order. Only the sum of the exponentials is taken
 * in another order (a fixed block tree; the CPU's is a vectorised
 * reduction), hence "within rounding". */
#define AR_THREADS 128
#define AR_BLOCKS 1024

struct rows_att {
    const float *const *q, *const *K, *const *V;
    const int *len;
    float *out, *sc;
    size_t ldo, kvs;
    int tasks, H, rep, hd, maxlen;
    float scale;
};

__global__ void attention_rows_k(rows_att a)
{
    __shared__ float fshm[32];
    float *sc = a.sc + (size_t)blockIdx.x * a.maxlen;
    for (int task = blockIdx.x; task < a.tasks; task += gridDim.x) {
        int i = task / a.H, h = task % a.H, kh = h / a.rep, p = a.len[i];
        const float *q = a.q[i] + (size_t)h * a.hd;
        const float *Kh = a.K[i] + (size_t)kh * a.hd, *Vh = a.V[i] + (size_t)kh * a.hd;
        int H8 = a.hd & ~7;
        float mx = -INFINITY;
        for (int t = threadIdx.x; t < p; t += AR_THREADS) {
            const float *k = Kh + (size_t)t * a.kvs;
            float l[8] = { 0, 0, 0, 0, 0, 0, 0, 0 };
            for (int j = 0; j < H8; j += 8)
#pragma unroll
                for (int u = 0; u < 8; u++)
                    l[u] = __fmaf_rn(q[j + u], k[j + u], l[u]);
            float d = __fadd_rn(__fadd_rn(__fadd_rn(l[0], l[4]), __fadd_rn(l[2], l[6])),
                                __fadd_rn(__fadd_rn(l[1], l[5]), __fadd_rn(l[3], l[7])));
            for (int j = H8; j < a.hd; j++)
                d = __fadd_rn(d, __fmul_rn(q[j], k[j]));
            d = __fmul_rn(d, a.scale);
            sc[t] = d;
            mx = d > mx ? d : mx;
        }
        mx = block_max(mx, fshm);
        float sum = 0.0f;
        for (int t = threadIdx.x; t < p; t += AR_THREADS) {
            float e = fast_expf(__fsub_rn(sc[t], mx));
            sc[t] = e;
            sum = __fadd_rn(sum, e);
        }
        sum = block_sum(sum, fshm);   /* its barriers publish sc too */
        float inv = __fdiv_rn(1.0f, sum);
        for (int t = threadIdx.x; t < p; t += AR_THREADS)
            sc[t] = __fmul_rn(sc[t], inv);
        __syncthreads();
        for (int j = threadIdx.x; j < a.hd; j += AR_THREADS) {
            float v = 0.0f;
            for (int t = 0; t < p; t++)
                v = __fmaf_rn(sc[t], Vh[(size_t)t * a.kvs + j], v);
            a.out[(size_t)i * a.ldo + (size_t)h * a.hd + j] = v;
        }
        __syncthreads();   /* sc is the next task's */
    }
}

static void attention_rows(float *out, size_t ldo, const float *const *q,
                           const float *const *K, const float *const *V, size_t kvs,
                           const int *len, int n, int H, int KVH, int hd,
                           float *scratch_unused, int maxlen)
{
    (void)scratch_unused;   /* sized for the CPU's threads; ours is per block */
    if (n <= 0 || H <= 0 || KVH <= 0 || hd <= 0 || maxlen <= 0 || H % KVH)
        return;
    int tasks = n * H, blocks = tasks < AR_BLOCKS ? tasks : AR_BLOCKS;
    size_t np = align256((size_t)n * sizeof *q), nl = align256((size_t)n * sizeof *len);
    size_t need = 3 * np + nl + (size_t)blocks * maxlen * sizeof(float);
    char *s = (char *)scratch_get(need);
    if (!s)
        return;
    size_t at = 0;
    rows_att a;
    a.q = put(s, &at, q, (size_t)n);
    a.K = put(s, &at, K, (size_t)n);
    a.V = put(s, &at, V, (size_t)n);
    a.len = put(s, &at, len, (size_t)n);
    if (!a.q || !a.K || !a.V || !a.len || !staged(s, at))
        return;
    a.sc = (float *)(s + at);
    a.out = out;
    a.ldo = ldo;
    a.kvs = kvs;
    a.tasks = tasks;
    a.H = H;
    a.rep = H / KVH;
    a.hd = hd;
    a.maxlen = maxlen;
    a.scale = 1.0f / sqrtf((float)hd);   /* on the host, as the CPU's */
    attention_rows_k<<<blocks, AR_THREADS>>>(a);
    LAUNCHED("attention_rows");
}

/* to_half: llm_float_to_half() (half.h) per element, and the lowest index
 * whose half is inf or NaN: each block's minimum, then the minimum of those
 * by an integer atomicMin, whose result does not depend on the order. */
__global__ void to_half_k(uint16_t *h, const float *f, size_t n, unsigned long long *bad)
{
    __shared__ unsigned long long shm[32];
    unsigned long long lo = n;
    for (size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x; i < n;
         i += (size_t)gridDim.x * blockDim.x) {
        uint16_t v = llm_float_to_half(f[i]);
        h[i] = v;
        if ((v & 0x7c00u) == 0x7c00u && i < lo)
            lo = i;
    }
    int lane = threadIdx.x & 31, warp = threadIdx.x >> 5, nw = blockDim.x >> 5;
    for (int o = 16; o > 0; o >>= 1) {
        unsigned long long other = __shfl_xor_sync(0xffffffffu, lo, o);
        lo = other < lo ? other : lo;
    }
    if (lane == 0)
        shm[warp] = lo;
    __syncthreads();
    if (threadIdx.x == 0) {
        for (int w = 1; w < nw; w++)
            lo = shm[w] < lo ? shm[w] : lo;
        if (lo < n)
            atomicMin(bad, lo);
    }
}

static size_t to_half(uint16_t *h, const float *f, size_t n)
{
    if (!n)
        return 0;
    unsigned long long *bad = (unsigned long long *)scratch_get(sizeof *bad), r = n;
    if (!bad || llm_cuda_h2d(bad, &r, sizeof r) != 0)
        return 0;   /* the failure is recorded; 0 says "no good" to the caller */
    to_half_k<<<grid_for(n, 256), 256>>>(h, f, n, bad);
    if (!LAUNCHED("to_half") || llm_cuda_d2h(&r, bad, sizeof r) != 0)
        return 0;
    return (size_t)r;
}

/* linear_f64: one thread per output, the sum in double from b[k] over c in
 * order (each product of two floats is exact in double), rounded once. */
__global__ void linear_f64_k(float *out, const float *inp, const float *w, const float *b,
                             int N, int C, int K)
{
    size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x;
    if (i >= (size_t)N * K)
        return;
    size_t r = i / K, k = i % K;
    const float *x = inp + r * C, *wk = w + k * C;
    double sum = b[k];
    for (int c = 0; c < C; c++)
        sum = __dadd_rn(sum, __dmul_rn((double)x[c], (double)wk[c]));
    out[i] = (float)sum;
}

static void linear_f64(float *out, const float *inp, const float *w, const float *b,
                       int N, int C, int K)
{
    if (N <= 0 || K <= 0)
        return;
    size_t n = (size_t)N * K;
    linear_f64_k<<<(unsigned)((n + 127) / 128), 128>>>(out, inp, w, b, N, C, K);
    LAUNCHED("linear_f64");
}

/* dropout: the mask of (key, i) alone (kernels.h), scale from the host as
 * the CPU computes it. */
__global__ void dropout_k(float *x, size_t n, uint32_t cut, float scale, uint64_t key)
{
    for (size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x; i < n;
         i += (size_t)gridDim.x * blockDim.x) {
        uint32_t u = (uint32_t)(llm_mix64(key + i * 0x9e3779b97f4a7c15ULL) >> 40);
        x[i] = u >= cut ? __fmul_rn(x[i], scale) : 0.0f;
    }
}

static void dropout(float *x, size_t n, double p, uint64_t key)
{
    if (!n)
        return;
    uint32_t cut = (uint32_t)(p * 16777216.0);
    float s = (float)(1.0 / (1.0 - p));
    dropout_k<<<grid_for(n, 256), 256>>>(x, n, cut, s, key);
    LAUNCHED("dropout");
}

/* ------------------------------------------------------------ the table */

static llm_kernels cuda_kernels;

/* The table's memory entries over the helpers above; a failed copy is
 * recorded (llm_cuda_errmsg()) like a failed kernel. */
static void *t_alloc(size_t bytes)
{
    void *p;
    return llm_cuda_alloc(&p, bytes ? bytes : 256) ? NULL : p;
}

static void t_upload(void *dst, const void *src, size_t bytes)
{
    (void)llm_cuda_h2d(dst, src, bytes);
}

static void t_download(void *dst, const void *src, size_t bytes)
{
    (void)llm_cuda_d2h(dst, src, bytes);
}

static void t_copy(void *dst, const void *src, size_t bytes)
{
    (void)llm_cuda_d2d(dst, src, bytes);
}

static void t_zero(void *dst, size_t bytes)
{
    (void)llm_cuda_memset(dst, 0, bytes);
}

/* The first recorded failure, handed over once (then forgotten). */
static const char *t_failure(void)
{
    static char reported[sizeof err_msg];
    if (llm_cuda_sync() == 0)
        return NULL;
    snprintf(reported, sizeof reported, "%s", err_msg);
    llm_cuda_clear_error();
    return reported;
}

/* The library may call the table from several host threads at once
 * (llm_kernels_parallel(): batches of documents being classified), while
 * the scratch buffer, the error record and the cuBLAS handle are shared:
 * every device entry of the table runs under one lock. The work itself is
 * serialised anyway, on the one stream. */
static std::mutex table_lock;

template <auto F> struct locked;
template <typename R, typename... A, R (*F)(A...)> struct locked<F> {
    static R call(A... a)
    {
        std::lock_guard<std::mutex> hold(table_lock);
        return F(a...);
    }
};

/* The sampler's passes work on host memory by contract: the CPU's, of
 * the level the CPU table uses once llm_cuda_set_host_kernels() says which
 * (the base level's until then). */
extern "C" void llm_cuda_set_host_kernels(const llm_kernels *host)
{
    std::lock_guard<std::mutex> hold(table_lock);
    if (!host)
        return;
    cuda_kernels.logits_max = host->logits_max;
    cuda_kernels.softmax_weights = host->softmax_weights;
    cuda_kernels.find_first = host->find_first;
}

extern "C" const llm_kernels *llm_kernels_cuda(void)
{
    std::lock_guard<std::mutex> hold(table_lock);
    if (!start())
        return NULL;
    if (!cuda_kernels.name) {
        llm_kernels *k = &cuda_kernels;
        k->alloc = locked<t_alloc>::call;
        k->free = locked<llm_cuda_free>::call;
        k->upload = locked<t_upload>::call;
        k->download = locked<t_download>::call;
        k->copy = locked<t_copy>::call;
        k->zero = locked<t_zero>::call;
        k->host_memory = 0;
        k->matmul_forward = locked<matmul_forward>::call;
        k->matmul_backward = locked<matmul_backward>::call;
        k->matmul_forward_bf16 = locked<matmul_forward_bf16>::call;
        k->matmul_backward_bf16 = locked<matmul_backward_bf16>::call;
        k->embedding_forward = locked<embedding_forward>::call;
        k->embedding_backward = locked<embedding_backward>::call;
        k->rmsnorm_forward = locked<rmsnorm_forward>::call;
        k->rmsnorm_backward = locked<rmsnorm_backward>::call;
        k->rope_forward = locked<rope_forward>::call;
        k->rope_backward = locked<rope_backward>::call;
        k->attention_saved = attention_saved;
        k->attention_scratch = attention_scratch;
        k->attention_forward = locked<attention_forward>::call;
        k->attention_backward = locked<attention_backward>::call;
        k->swiglu_forward = locked<swiglu_forward>::call;
        k->swiglu_backward = locked<swiglu_backward>::call;
        k->residual_forward = locked<residual_forward>::call;
        k->crossentropy_forward = locked<crossentropy_forward>::call;
        k->adamw_update = locked<adamw_update>::call;
        k->sum_squares = locked<sum_squares>::call;
        k->scale = locked<scale>::call;
        k->axpy = locked<axpy>::call;
        k->matmul_rows = locked<matmul_rows>::call;
        k->matmul_rows_packed = locked<matmul_rows_packed>::call;
        k->matmul_rows_scratch = matmul_rows_scratch;
        k->attention_rows = locked<attention_rows>::call;
        k->to_half = locked<to_half>::call;
        /* No int8 or bf16 inference product on the GPU yet: the library
         * refuses those precisions on a table without these. */
        k->quantize_q8 = NULL;
        k->matmul_rows_q8 = NULL;
        k->pack_bf16 = NULL;
        k->matmul_rows_bf16 = NULL;
        k->linear_f64 = locked<linear_f64>::call;
        k->dropout = locked<dropout>::call;
        k->failure = locked<t_failure>::call;
        k->logits_max = llm_cpu_logits_max;
        k->softmax_weights = llm_cpu_softmax_weights;
        k->find_first = llm_cpu_find_first;
        k->name = "cuda";
    }
    return &cuda_kernels;
}
