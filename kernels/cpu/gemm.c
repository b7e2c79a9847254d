/* gemm.c: the CPU tables' general matrix product, C(M,N) = (or +=)
 * op(A)(M,K) . op(B)(K,N), row-major, op a transpose where asked.
 *
 * On the avx512 level it is our own blocked product (BLIS's loop nest:
 * panels of B and of A packed into slivers of NR columns and MR rows, and
 * a 12 x 32 register micro-kernel of 512-bit FMAs), since the OpenBLAS
 * that Debian ships may run 256-bit kernels on CPUs that have AVX-512
 * (it knows no newer core than its release, and OPENBLAS_CORETYPE can
 * pin it lower); elsewhere, and with LLM_GEMM=openblas, OpenBLAS's sgemm.
 *
 * Order of summation (the avx512 product): each element is a chain of
 * fmaf over k within each block of KC values of k, from 0, times alpha,
 * added to the element in block order (the first block stored when beta
 * is 0, every block added when it is 1). Threads split rows and columns only, never k, so the
 * result is the same bits for any thread count. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cblas.h>
#include <omp.h>

#include "cpu.h"

static void blas_gemm(int ta, int tb, int M, int N, int K, float alpha, const float *A,
                      int lda, const float *B, int ldb, float beta, float *C, int ldc)
{
    cblas_sgemm(CblasRowMajor, ta ? CblasTrans : CblasNoTrans, tb ? CblasTrans : CblasNoTrans,
                M, N, K, alpha, A, lda, B, ldb, beta, C, ldc);
}

#if defined(__AVX512F__)
#include <immintrin.h>

enum {
    MR = 12,     /* rows of the micro-kernel: 24 accumulators of 16 floats */
    NR = 32,     /* columns: two vectors */
    KC = LLM_GEMM_KC,   /* k per packed block: an A sliver (12 KB) and a B sliver
                  * (32 KB) stay in L1/L2 across the micro-kernel's loop */
    MC = 96,     /* rows of A packed per task (96 KB: L2) */
    NC = 4096,   /* columns of B packed at once (KC x NC: 4 MB, L3) */
};

/* Grow-only scratch of the calling thread (OpenMP's threads persist), so
 * that the many small products of attention allocate nothing. */
static float *scratch(int which, size_t floats)
{
    static _Thread_local float *buf[2];
    static _Thread_local size_t cap[2];
    if (cap[which] < floats) {
        free(buf[which]);
        size_t bytes = (floats * sizeof(float) + 63) & ~(size_t)63;
        buf[which] = aligned_alloc(64, bytes);
        cap[which] = buf[which] ? floats : 0;
    }
    return buf[which];
}

/* Rows k0.. of op(B), columns j0..j0+nc, into slivers of NR columns:
 * bp[s * kc * NR + k * NR + j], zero past column nc. */
static void pack_b(float *restrict bp, const float *B, int ldb, int tb, int k0, int kc,
                   int j0, int nc, int s0, int s1)
{
    for (int s = s0; s < s1; s++) {
        int js = s * NR, nr = nc - js < NR ? nc - js : NR;
        float *dst = bp + (size_t)s * kc * NR;
        if (!tb) {
            for (int k = 0; k < kc; k++) {
                const float *src = B + (size_t)(k0 + k) * ldb + j0 + js;
                memcpy(dst + (size_t)k * NR, src, (size_t)nr * sizeof *src);
                memset(dst + (size_t)k * NR + nr, 0, (size_t)(NR - nr) * sizeof *dst);
            }
        } else {
            for (int j = 0; j < nr; j++) {
                const float *src = B + (size_t)(j0 + js + j) * ldb + k0;
                for (int k = 0; k < kc; k++)
                    dst[(size_t)k * NR + j] = src[k];
            }
            for (int j = nr; j < NR; j++)
                for (int k = 0; k < kc; k++)
                    dst[(size_t)k * NR + j] = 0.0f;
        }
    }
}

/* Rows i0..i0+mc of op(A), columns k0..k0+kc, into slivers of MR rows:
 * ap[s * kc * MR + k * MR + i], zero past row mc. */
static void pack_a(float *restrict ap, const float *A, int lda, int ta, int i0, int mc,
                   int k0, int kc)
{
    for (int is = 0; is < mc; is += MR) {
        int mr = mc - is < MR ? mc - is : MR;
        float *dst = ap + (size_t)is * kc;
        if (ta) {
            for (int k = 0; k < kc; k++) {
                const float *src = A + (size_t)(k0 + k) * lda + i0 + is;
                memcpy(dst + (size_t)k * MR, src, (size_t)mr * sizeof *src);
                memset(dst + (size_t)k * MR + mr, 0, (size_t)(MR - mr) * sizeof *dst);
            }
        } else {
            for (int i = 0; i < mr; i++) {
                const float *src = A + (size_t)(i0 + is + i) * lda + k0;
                for (int k = 0; k < kc; k++)
                    dst[(size_t)k * MR + i] = src[k];
            }
            for (int i = mr; i < MR; i++)
                for (int k = 0; k < kc; k++)
                    dst[(size_t)k * MR + i] = 0.0f;
        }
    }
}

/* c(mr, nr) = (add ? c + : ) alpha * (a-sliver . b-sliver over kc). */
static void micro(int kc, const float *restrict a, const float *restrict b, float alpha,
                  float *c, int ldc, int mr, int nr, int add)
{
    __m512 acc[MR][2];
#pragma GCC unroll 12
    for (int i = 0; i < MR; i++)
        acc[i][0] = acc[i][1] = _mm512_setzero_ps();
    for (int k = 0; k < kc; k++, a += MR, b += NR) {
        __m512 b0 = _mm512_load_ps(b), b1 = _mm512_load_ps(b + 16);
#pragma GCC unroll 12
        for (int i = 0; i < MR; i++) {
            __m512 ai = _mm512_set1_ps(a[i]);
            acc[i][0] = _mm512_fmadd_ps(ai, b0, acc[i][0]);
            acc[i][1] = _mm512_fmadd_ps(ai, b1, acc[i][1]);
        }
    }
    __m512 va = _mm512_set1_ps(alpha);
    __mmask16 m0 = nr >= 16 ? 0xffff : (__mmask16)((1u << nr) - 1);
    __mmask16 m1 = nr >= 32 ? 0xffff : nr <= 16 ? 0 : (__mmask16)((1u << (nr - 16)) - 1);
#pragma GCC unroll 12
    for (int i = 0; i < MR; i++) {
        if (i >= mr)
            break;
        float *ci = c + (size_t)i * ldc;
        __m512 r0 = _mm512_mul_ps(va, acc[i][0]), r1 = _mm512_mul_ps(va, acc[i][1]);
        if (add) {
            r0 = _mm512_add_ps(_mm512_maskz_loadu_ps(m0, ci), r0);
            r1 = _mm512_add_ps(_mm512_maskz_loadu_ps(m1, ci + 16), r1);
        }
        _mm512_mask_storeu_ps(ci, m0, r0);
        _mm512_mask_storeu_ps(ci + 16, m1, r1);
    }
}

/* Rows [i0, i0+mc) and columns [jt, jt+nt) (offsets within the packed
 * panel of nc columns at j0) of C, over the packed block of kc. */
static void task(const float *bp, float *ap, const float *A, int lda, int ta, int i0,
                 int mc, int k0, int kc, int jt, int nt, float alpha, float *C, int ldc,
                 int j0, int add)
{
    pack_a(ap, A, lda, ta, i0, mc, k0, kc);
    for (int jr = jt; jr < jt + nt; jr += NR) {
        int nr = jt + nt - jr < NR ? jt + nt - jr : NR;
        const float *b = bp + (size_t)(jr / NR) * kc * NR;
        for (int ir = 0; ir < mc; ir += MR)
            micro(kc, ap + (size_t)ir * kc, b, alpha, C + (size_t)(i0 + ir) * ldc + j0 + jr, ldc,
                  mc - ir < MR ? mc - ir : MR, nr, add);
    }
}

static void own_gemm(int ta, int tb, int M, int N, int K, float alpha, const float *A,
                     int lda, const float *B, int ldb, float beta, float *C, int ldc)
{
    int accumulate = beta != 0.0f;
    if (K == 0) {
        if (!accumulate)
            for (int i = 0; i < M; i++)
                memset(C + (size_t)i * ldc, 0, (size_t)N * sizeof *C);
        return;
    }
    int ncmax = N < NC ? N : NC, kcmax = K < KC ? K : KC;
    float *bp = scratch(0, (size_t)kcmax * ((ncmax + NR - 1) / NR * NR));
    int par = !omp_in_parallel() && omp_get_max_threads() > 1 &&
              (double)M * N * K >= 64.0 * 64 * 64;
    int failed = !bp, nth = par ? omp_get_max_threads() : 1;
#pragma omp parallel if (par) shared(failed)
    {
        float *ap = scratch(1, (size_t)MC * kcmax);
        if (!ap) {
#pragma omp atomic write
            failed = 1;
        }
#pragma omp barrier
        for (int j0 = 0; j0 < N && !failed; j0 += NC) {
            int nc = N - j0 < NC ? N - j0 : NC, ns = (nc + NR - 1) / NR;
            for (int k0 = 0; k0 < K; k0 += KC) {
                int kc = K - k0 < KC ? K - k0 : KC, add = accumulate || k0 > 0;
#pragma omp for schedule(static)
                for (int s = 0; s < ns; s++)
                    pack_b(bp, B, ldb, tb, k0, kc, j0, nc, s, s + 1);
                /* Tasks of MC rows by all nc columns, so that each A block
                 * is packed once; split the columns too (repacking A for
                 * each part) only when rows alone give each thread fewer
                 * than two tasks. */
                int tm = (M + MC - 1) / MC, tn = (2 * nth + tm - 1) / tm;
                int cw = (nc + tn - 1) / tn;
                cw = (cw + NR - 1) / NR * NR;
                tn = (nc + cw - 1) / cw;
#pragma omp for schedule(static)
                for (int t = 0; t < tm * tn; t++) {
                    int i0 = t / tn * MC, jt = t % tn * cw;
                    task(bp, ap, A, lda, ta, i0, M - i0 < MC ? M - i0 : MC, k0, kc, jt,
                         nc - jt < cw ? nc - jt : cw, alpha, C, ldc, j0, add);
                }
            }
        }
    }
    if (failed)   /* out of memory for the packed panels: OpenBLAS needs none */
        blas_gemm(ta, tb, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc);
}

/* 1: our product (the default), 0: OpenBLAS (LLM_GEMM=openblas). */
static int use_own(void)
{
    static int use = -1;
    int u = __atomic_load_n(&use, __ATOMIC_RELAXED);
    if (u < 0) {
        const char *e = getenv("LLM_GEMM");
        u = !(e && strcmp(e, "openblas") == 0);
        __atomic_store_n(&use, u, __ATOMIC_RELAXED);
    }
    return u;
}

void llm_cpu_gemm(int ta, int tb, int M, int N, int K, float alpha, const float *A, int lda,
                  const float *B, int ldb, float beta, float *C, int ldc)
{
    if (M <= 0 || N <= 0)
        return;
    if (use_own())
        own_gemm(ta, tb, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc);
    else
        blas_gemm(ta, tb, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc);
}

const char *llm_cpu_gemm_name(void)
{
    return use_own() ? "own avx512" : "openblas";
}

#else

void llm_cpu_gemm(int ta, int tb, int M, int N, int K, float alpha, const float *A, int lda,
                  const float *B, int ldb, float beta, float *C, int ldc)
{
    if (M > 0 && N > 0)
        blas_gemm(ta, tb, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc);
}

const char *llm_cpu_gemm_name(void)
{
    return "openblas";
}

#endif
