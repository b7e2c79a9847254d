/* gemm_peak.cu: the dense matrix-product peaks of this GPU as cuBLAS
 * reaches them, for the MFU of tests/cuda/gpu-session.sh: fp32 (SGEMM,
 * pedantic math: no TF32, as the CUDA table computes) and bf16 (bf16
 * inputs and output, fp32 accumulation), square products of n = 8192,
 * the best of 10 timed runs after one untimed. Prints
 *
 *   device NAME
 *   fp32 TFLOPS
 *   bf16 TFLOPS
 *
 * and exits 0, or 77 with "no CUDA device" when no GPU can be used.
 *
 *   gemm_peak [n] */
#include <stdio.h>
#include <stdlib.h>

#include <cublas_v2.h>
#include <cuda_runtime.h>

static int fail(const char *what, const char *why)
{
    printf("gemm_peak: %s: %s\n", what, why);
    return 1;
}

/* The best TFLOP/s of 10 products C = A B of n x n in `type`, after one
 * untimed; 0 on failure (said on stdout). */
static double peak(cublasHandle_t h, int n, cudaDataType_t type, cublasComputeType_t compute)
{
    size_t es = type == CUDA_R_32F ? 4 : 2, bytes = (size_t)n * n * es;
    void *a = NULL, *b = NULL, *c = NULL;
    cudaEvent_t t0, t1;
    double best = 0;
    if (cudaMalloc(&a, bytes) || cudaMalloc(&b, bytes) || cudaMalloc(&c, bytes)) {
        fail("cudaMalloc", "out of GPU memory");
        goto done;
    }
    /* Any finite bits: a pattern of small values (0x3c00.. as bf16, tiny as fp32). */
    cudaMemset(a, 0x3c, bytes);
    cudaMemset(b, 0x3c, bytes);
    cudaEventCreate(&t0);
    cudaEventCreate(&t1);
    for (int rep = -1; rep < 10; rep++) {
        float alpha = 1.0f, beta = 0.0f, ms = 0;
        cudaEventRecord(t0, 0);
        cublasStatus_t s = cublasGemmEx(h, CUBLAS_OP_N, CUBLAS_OP_N, n, n, n, &alpha, a, type,
                                        n, b, type, n, &beta, c, type, n, compute,
                                        CUBLAS_GEMM_DEFAULT);
        cudaEventRecord(t1, 0);
        if (s != CUBLAS_STATUS_SUCCESS || cudaEventSynchronize(t1) != cudaSuccess) {
            fail("cublasGemmEx", cublasGetStatusString(s));
            best = 0;
            break;
        }
        cudaEventElapsedTime(&ms, t0, t1);
        double tflops = 2.0 * n * (double)n * n / (ms * 1e-3) / 1e12;
        if (rep >= 0 && tflops > best)
            best = tflops;
    }
    cudaEventDestroy(t0);
    cudaEventDestroy(t1);
done:
    cudaFree(a);
    cudaFree(b);
    cudaFree(c);
    return best;
}

int main(int argc, char **argv)
{
    int n = argc > 1 ? atoi(argv[1]) : 8192, count = 0;
    if (n < 256 || n > 32768) {
        fprintf(stderr, "usage: gemm_peak [n], 256 <= n <= 32768\n");
        return 2;
    }
    if (cudaGetDeviceCount(&count) != cudaSuccess || count < 1) {
        printf("no CUDA device\n");
        return 77;
    }
    cudaDeviceProp prop;
    cublasHandle_t h;
    if (cudaGetDeviceProperties(&prop, 0) != cudaSuccess)
        return fail("cudaGetDeviceProperties", "failed");
    if (cublasCreate(&h) != CUBLAS_STATUS_SUCCESS)
        return fail("cublasCreate", "failed");
    printf("device %s\n", prop.name);
    cublasSetMathMode(h, CUBLAS_PEDANTIC_MATH);
    double f32 = peak(h, n, CUDA_R_32F, CUBLAS_COMPUTE_32F_PEDANTIC);
    cublasSetMathMode(h, CUBLAS_DEFAULT_MATH);
    double bf16 = peak(h, n, CUDA_R_16BF, CUBLAS_COMPUTE_32F);
    printf("fp32 %.1f\nbf16 %.1f\n", f32, bf16);
    cublasDestroy(h);
    return f32 > 0 && bf16 > 0 ? 0 : 1;
}
