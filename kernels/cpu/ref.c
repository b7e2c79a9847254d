/* ref.c: reference kernels, plain loops with double accumulation, written to
 * be obviously correct; the fast CPU and CUDA kernels are tested against
 * them. Single-threaded and slow on purpose. */
#include <float.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "cpu.h"
#include "q8_rule.h"
#include "half.h"
#include "kernels.h"

/* x rounded to bfloat16's 8 significant bits, to nearest, ties to even
 * (rint in the default rounding mode), by the arithmetic of frexp rather
 * than bits; when `bf16` is 0, x. */
static double in(float x, int bf16)
{
    if (!bf16 || !isfinite(x) || x == 0)
        return x;
    int e;
    double m = frexp(x, &e);   /* x = m 2^e, 0.5 <= |m| < 1 */
    return ldexp(rint(ldexp(m, 8)), e - 8);
}

static void product_forward(float *out, const float *inp, const float *w,
                            int N, int IC, int OC, int bf16)
{
    for (int n = 0; n < N; n++)
        for (int o = 0; o < OC; o++) {
            double s = 0;
            for (int i = 0; i < IC; i++)
                s += in(inp[(size_t)n * IC + i], bf16) * in(w[(size_t)o * IC + i], bf16);
            out[(size_t)n * OC + o] = (float)s;
        }
}

static void product_backward(float *dinp, float *dw, const float *dout,
                             const float *inp, const float *w,
                             int N, int IC, int OC, int bf16)
{
    if (dinp)
        for (int n = 0; n < N; n++)
            for (int i = 0; i < IC; i++) {
                double s = 0;
                for (int o = 0; o < OC; o++)
                    s += in(dout[(size_t)n * OC + o], bf16) * in(w[(size_t)o * IC + i], bf16);
                dinp[(size_t)n * IC + i] = (float)s;
            }
    for (int o = 0; dw && o < OC; o++)
        for (int i = 0; i < IC; i++) {
            double s = 0;
            for (int n = 0; n < N; n++)
                s += in(dout[(size_t)n * OC + o], bf16) * in(inp[(size_t)n * IC + i], bf16);
            dw[(size_t)o * IC + i] += (float)s;
        }
}

static void matmul_forward(float *out, const float *inp, const float *w,
                           int N, int IC, int OC)
{
    product_forward(out, inp, w, N, IC, OC, 0);
}

static void matmul_backward(float *dinp, float *dw, const float *dout,
                            const float *inp, const float *w,
                            int N, int IC, int OC)
{
    product_backward(dinp, dw, dout, inp, w, N, IC, OC, 0);
}

static void matmul_forward_bf16(float *out, const float *inp, const float *w,
                                int N, int IC, int OC)
{
    product_forward(out, inp, w, N, IC, OC, 1);
}

static void matmul_backward_bf16(float *dinp, float *dw, const float *dout,
                                 const float *inp, const float *w,
                                 int N, int IC, int OC)
{
    product_backward(dinp, dw, dout, inp, w, N, IC, OC, 1);
}

static void embedding_forward(float *out, const int32_t *tokens,
                              const float *wte, int N, int C)
{
    for (int n = 0; n < N; n++)
        memcpy(out + (size_t)n * C, wte + (size_t)tokens[n] * C,
               (size_t)C * sizeof *out);
}

static void embedding_backward(float *dwte, const float *dout,
                               const int32_t *tokens, int N, int C)
{
    for (int n = 0; n < N; n++)
        for (int c = 0; c < C; c++)
            dwte[(size_t)tokens[n] * C + c] += dout[(size_t)n * C + c];
}

static void rmsnorm_forward(float *out, float *rstd, const float *inp,
                            const float *w, int N, int C, float eps)
{
    for (int n = 0; n < N; n++) {
        const float *x = inp + (size_t)n * C;
        double ss = 0;
        for (int c = 0; c < C; c++)
            ss += (double)x[c] * x[c];
        double r = 1.0 / sqrt(ss / C + eps);
        for (int c = 0; c < C; c++)
            out[(size_t)n * C + c] = (float)(x[c] * r * w[c]);
        rstd[n] = (float)r;
    }
}

/* y_c = x_c r w_c with r = (mean(x^2) + eps)^-1/2, so
 * dx_j = r w_j dy_j - r^3 x_j / C * sum_c dy_c w_c x_c. */
static void rmsnorm_backward(float *dinp, float *dw, const float *dout,
                             const float *inp, const float *w,
                             const float *rstd, int N, int C)
{
    for (int n = 0; n < N; n++) {
        const float *x = inp + (size_t)n * C, *dy = dout + (size_t)n * C;
        double r = rstd[n], dot = 0;
        for (int c = 0; c < C; c++)
            dot += (double)dy[c] * w[c] * x[c];
        for (int c = 0; c < C; c++) {
            dinp[(size_t)n * C + c] +=
                (float)(r * w[c] * dy[c] - r * r * r * x[c] * dot / C);
            dw[c] += (float)((double)dy[c] * x[c] * r);
        }
    }
}

static void rope(float *x, const float *cos_t, const float *sin_t,
                 int B, int T, int nh, int hd, int stride, double sign)
{
    for (int b = 0; b < B; b++)
        for (int t = 0; t < T; t++)
            for (int h = 0; h < nh; h++) {
                float *p = x + ((size_t)b * T + t) * stride + (size_t)h * hd;
                for (int i = 0; i < hd / 2; i++) {
                    double c = cos_t[(size_t)t * (hd / 2) + i];
                    double s = sign * sin_t[(size_t)t * (hd / 2) + i];
                    double x0 = p[2 * i], x1 = p[2 * i + 1];
                    p[2 * i] = (float)(x0 * c - x1 * s);
                    p[2 * i + 1] = (float)(x0 * s + x1 * c);
                }
            }
}

static void rope_forward(float *x, const float *cos_t, const float *sin_t,
                         int B, int T, int nh, int hd, int stride)
{
    rope(x, cos_t, sin_t, B, T, nh, hd, stride, 1.0);
}

static void rope_backward(float *dx, const float *cos_t, const float *sin_t,
                          int B, int T, int nh, int hd, int stride)
{
    rope(dx, cos_t, sin_t, B, T, nh, hd, stride, -1.0);
}

/* The forward keeps the (B, H, T, T) probabilities for the backward, and
 * needs no scratch. */
static size_t attention_saved(int B, int T, int H)
{
    return (size_t)B * H * T * T;
}

static size_t attention_scratch(int B, int T, int H, int KVH, int hd, int backward)
{
    (void)B, (void)T, (void)H, (void)KVH, (void)hd, (void)backward;
    return 0;
}

/* With bf16, the products' inputs rounded as in() rounds them: q and k;
 * the probabilities (as floats) and v. */
static void attend_forward(float *out, float *att, const float *qkv, const int32_t *start,
                           int B, int T, int H, int KVH, int hd, int bf16)
{
    int QS = (H + 2 * KVH) * hd, rep = H / KVH;
    double scale = 1.0 / sqrt((double)hd);
    double *e = malloc((size_t)T * sizeof *e);
    if (!e)
        abort();   /* reference kernels are test-only; no recovery */
    for (int b = 0; b < B; b++)
        for (int h = 0; h < H; h++) {
            int kh = h / rep;
            for (int t = 0; t < T; t++) {
                const float *q = qkv + ((size_t)b * T + t) * QS + (size_t)h * hd;
                float *a = att + (((size_t)b * H + h) * T + t) * T;
                double mx = -INFINITY, sum = 0;
                int s0 = start ? start[(size_t)b * T + t] : 0;
                for (int s = s0; s <= t; s++) {
                    const float *k = qkv + ((size_t)b * T + s) * QS +
                                     (size_t)(H + kh) * hd;
                    double d = 0;
                    for (int i = 0; i < hd; i++)
                        d += in(q[i], bf16) * in(k[i], bf16);
                    e[s] = d * scale;
                    if (e[s] > mx)
                        mx = e[s];
                }
                for (int s = s0; s <= t; s++) {
                    e[s] = exp(e[s] - mx);
                    sum += e[s];
                }
                for (int s = 0; s < T; s++)
                    a[s] = s >= s0 && s <= t ? (float)(e[s] / sum) : 0.0f;
                float *o = out + ((size_t)b * T + t) * H * hd + (size_t)h * hd;
                for (int i = 0; i < hd; i++) {
                    double acc = 0;
                    for (int s = s0; s <= t; s++)
                        acc += in((float)(e[s] / sum), bf16) *
                               in(qkv[((size_t)b * T + s) * QS + (size_t)(H + KVH + kh) * hd + i],
                                  bf16);
                    o[i] = (float)acc;
                }
            }
        }
    free(e);
}

/* With bf16, the products' inputs rounded as in() rounds them: the
 * probabilities and dout, dout and v, dS (as floats) and k, dS and q. */
static void attend_backward(float *dqkv, const float *dout, const float *qkv, const float *att,
                            int B, int T, int H, int KVH, int hd, int bf16)
{
    int QS = (H + 2 * KVH) * hd, rep = H / KVH;
    double scale = 1.0 / sqrt((double)hd);
    double *dp = malloc((size_t)T * sizeof *dp);
    if (!dp)
        abort();
    memset(dqkv, 0, (size_t)B * T * QS * sizeof *dqkv);
    for (int b = 0; b < B; b++)
        for (int h = 0; h < H; h++) {
            int kh = h / rep;
            for (int t = 0; t < T; t++) {
                const float *a = att + (((size_t)b * H + h) * T + t) * T;
                const float *dO = dout + ((size_t)b * T + t) * H * hd + (size_t)h * hd;
                const float *q = qkv + ((size_t)b * T + t) * QS + (size_t)h * hd;
                float *dq = dqkv + ((size_t)b * T + t) * QS + (size_t)h * hd;
                double dot = 0;
                for (int s = 0; s <= t; s++) {
                    const float *v = qkv + ((size_t)b * T + s) * QS +
                                     (size_t)(H + KVH + kh) * hd;
                    float *dv = dqkv + ((size_t)b * T + s) * QS +
                                (size_t)(H + KVH + kh) * hd;
                    double d = 0;
                    for (int i = 0; i < hd; i++) {
                        d += in(dO[i], bf16) * in(v[i], bf16);
                        dv[i] += (float)(in(a[s], bf16) * in(dO[i], bf16));
                    }
                    dp[s] = d;
                    dot += d * a[s];
                }
                for (int s = 0; s <= t; s++) {
                    double ds = in((float)(a[s] * (dp[s] - dot) * scale), bf16);
                    const float *k = qkv + ((size_t)b * T + s) * QS + (size_t)(H + kh) * hd;
                    float *dk = dqkv + ((size_t)b * T + s) * QS + (size_t)(H + kh) * hd;
                    for (int i = 0; i < hd; i++) {
                        dq[i] += (float)(ds * in(k[i], bf16));
                        dk[i] += (float)(ds * in(q[i], bf16));
                    }
                }
            }
        }
    free(dp);
}

static void attention_forward(float *out, float *att, float *scratch, const float *qkv,
                              const int32_t *start, int B, int T, int H, int KVH, int hd)
{
    (void)scratch;
    attend_forward(out, att, qkv, start, B, T, H, KVH, hd, 0);
}

static void attention_forward_bf16(float *out, float *att, float *scratch, const float *qkv,
                                   const int32_t *start, int B, int T, int H, int KVH, int hd)
{
    (void)scratch;
    attend_forward(out, att, qkv, start, B, T, H, KVH, hd, 1);
}

/* The mask and the weights are in att: out, start and scratch go unused. */
static void attention_backward(float *dqkv, float *scratch, const float *dout,
                               const float *qkv, const float *out, const float *att,
                               const int32_t *start, int B, int T, int H, int KVH, int hd)
{
    (void)scratch, (void)out, (void)start;
    attend_backward(dqkv, dout, qkv, att, B, T, H, KVH, hd, 0);
}

static void attention_backward_bf16(float *dqkv, float *scratch, const float *dout,
                                    const float *qkv, const float *out, const float *att,
                                    const int32_t *start, int B, int T, int H, int KVH, int hd)
{
    (void)scratch, (void)out, (void)start;
    attend_backward(dqkv, dout, qkv, att, B, T, H, KVH, hd, 1);
}

static double silu(double z)
{
    return z / (1.0 + exp(-z));
}

static void swiglu_forward(float *out, const float *h13, int N, int F)
{
    for (int n = 0; n < N; n++)
        for (int f = 0; f < F; f++) {
            double g = h13[(size_t)n * 2 * F + f], u = h13[(size_t)n * 2 * F + F + f];
            out[(size_t)n * F + f] = (float)(silu(g) * u);
        }
}

static void swiglu_backward(float *dh13, const float *dout, const float *h13,
                            int N, int F)
{
    for (int n = 0; n < N; n++)
        for (int f = 0; f < F; f++) {
            double g = h13[(size_t)n * 2 * F + f], u = h13[(size_t)n * 2 * F + F + f];
            double sg = 1.0 / (1.0 + exp(-g)), d = dout[(size_t)n * F + f];
            dh13[(size_t)n * 2 * F + f] = (float)(d * u * sg * (1.0 + g * (1.0 - sg)));
            dh13[(size_t)n * 2 * F + F + f] = (float)(d * g * sg);
        }
}

static void residual_forward(float *out, const float *a, const float *b, size_t n)
{
    for (size_t i = 0; i < n; i++)
        out[i] = a[i] + b[i];
}

static void crossentropy_forward(float *losses, float *dlogits,
                                 const float *logits, const int32_t *targets,
                                 int N, int V, float dscale, float eps)
{
    for (int n = 0; n < N; n++) {
        const float *l = logits + (size_t)n * V;
        int y = targets[n];
        if (y < 0) {
            losses[n] = 0;
            if (dlogits)
                memset(dlogits + (size_t)n * V, 0, (size_t)V * sizeof *dlogits);
            continue;
        }
        double mx = -INFINITY, sum = 0, tot = 0;
        for (int i = 0; i < V; i++) {
            if (l[i] > mx)
                mx = l[i];
            tot += l[i];
        }
        for (int i = 0; i < V; i++)
            sum += exp(l[i] - mx);
        double ly = l[y];
        losses[n] = (float)(log(sum) + mx - (1.0 - eps) * ly - eps * tot / V);
        if (dlogits)
            for (int i = 0; i < V; i++) {
                double p = exp(l[i] - mx) / sum, q = (1.0 - eps) * (i == y) + (double)eps / V;
                dlogits[(size_t)n * V + i] = (float)((p - q) * dscale);
            }
    }
}

static void adamw_update(float *p, const float *g, float *m, float *v,
                         size_t n, float lr, float beta1, float beta2,
                         float eps, float wd, int t)
{
    double c1 = 1.0 - pow(beta1, t), c2 = 1.0 - pow(beta2, t);
    for (size_t i = 0; i < n; i++) {
        double mi = (double)beta1 * m[i] + (1.0 - beta1) * g[i];
        double vi = (double)beta2 * v[i] + (1.0 - beta2) * (double)g[i] * g[i];
        m[i] = (float)mi;
        v[i] = (float)vi;
        double step = (mi / c1) / (sqrt(vi / c2) + eps) + (double)wd * p[i];
        p[i] = (float)(p[i] - lr * step);
    }
}

static double sum_squares(const float *x, size_t n)
{
    double s = 0;
    for (size_t i = 0; i < n; i++)
        s += (double)x[i] * x[i];
    return s;
}

static void scale(float *x, size_t n, float s)
{
    for (size_t i = 0; i < n; i++)
        x[i] *= s;
}

static void axpy(float *y, int ldy, const float *x, int ldx, int N, int C, float a)
{
    for (int n = 0; n < N; n++)
        for (int c = 0; c < C; c++)
            y[(size_t)n * ldy + c] += a * x[(size_t)n * ldx + c];
}

/* The inference kernels' orders of summation are their contracts: these
 * compute the same orders in plain C (matmul_rows, matmul_rows_packed,
 * bit for bit), or (attention_rows) in double with exp(). */
static float weight_at(const void *w, size_t i, int half)
{
    return half ? llm_half_to_float(((const uint16_t *)w)[i]) : ((const float *)w)[i];
}

static void matmul_rows(float *out, size_t ldo, const float *inp, size_t ldi,
                        const int *map, const void *w, int half, int N, int IC, int OC)
{
    int K8 = IC & ~7;
    for (int n = 0; n < N; n++) {
        size_t r = (size_t)(map ? map[n] : n);
        const float *x = inp + r * ldi;
        for (int o = 0; o < OC; o++) {
            size_t wr = (size_t)o * IC;
            float l[8] = { 0 };
            for (int k = 0; k < K8; k += 8)
                for (int j = 0; j < 8; j++)
                    l[j] = fmaf(weight_at(w, wr + k + j, half), x[k + j], l[j]);
            float sum = ((l[0] + l[4]) + (l[2] + l[6])) + ((l[1] + l[5]) + (l[3] + l[7]));
            for (int k = K8; k < IC; k++) {
                float p = weight_at(w, wr + k, half) * x[k];
                sum += p;
            }
            out[r * ldo + o] = sum;
        }
    }
}

static size_t matmul_rows_scratch(int IC, int OC)
{
    (void)IC;
    (void)OC;
    return 0;
}

static void matmul_rows_packed(float *out, size_t ldo, const float *inp, size_t ldi,
                               const int *map, const float *w, float *scratch,
                               int N, int IC, int OC)
{
    (void)scratch;
    for (int n = 0; n < N; n++) {
        size_t r = (size_t)(map ? map[n] : n);
        for (int o = 0; o < OC; o++) {
            float acc = 0.0f;
            for (int k = 0; k < IC; k++)
                acc = fmaf(inp[r * ldi + k], w[(size_t)o * IC + k], acc);
            out[r * ldo + o] = acc;
        }
    }
}

/* Element e of sequence i's cached keys or values: of floats F, or of
 * bf16 bits B when B is not NULL. */
static double cached(const float *const *F, const uint16_t *const *B, int i, size_t e)
{
    return B ? llm_bf16_to_float(B[i][e]) : F[i][e];
}

/* attention_rows (Kb NULL) and attention_rows_bf16 (keys and values Kb,
 * Vb; q and the probabilities rounded to bf16), in double with exp(). */
static void rows_attention(float *out, size_t ldo, const float *const *q, const float *const *K,
                           const float *const *V, const uint16_t *const *Kb,
                           const uint16_t *const *Vb, size_t kvs, const int *len, int n, int H,
                           int KVH, int hd, int maxlen)
{
    double *a = malloc((size_t)maxlen * sizeof *a);
    if (!a)
        abort();
    int rep = H / KVH, bf16 = Kb != NULL;
    double scale = 1.0 / sqrt((double)hd);
    for (int i = 0; i < n; i++)
        for (int h = 0; h < H; h++) {
            size_t kh = (size_t)(h / rep) * hd;
            const float *qh = q[i] + (size_t)h * hd;
            double mx = -INFINITY, sum = 0;
            for (int t = 0; t < len[i]; t++) {
                double d = 0;
                for (int j = 0; j < hd; j++)
                    d += in(qh[j], bf16) * cached(K, Kb, i, (size_t)t * kvs + kh + j);
                a[t] = d * scale;
                mx = a[t] > mx ? a[t] : mx;
            }
            for (int t = 0; t < len[i]; t++)
                sum += a[t] = exp(a[t] - mx);
            for (int t = 0; t < len[i]; t++)
                a[t] = bf16 ? in((float)(a[t] / sum), 1) : a[t] / sum;
            for (int j = 0; j < hd; j++) {
                double o = 0;
                for (int t = 0; t < len[i]; t++)
                    o += a[t] * cached(V, Vb, i, (size_t)t * kvs + kh + j);
                out[(size_t)i * ldo + (size_t)h * hd + j] = (float)o;
            }
        }
    free(a);
}

static void attention_rows(float *out, size_t ldo, const float *const *q,
                           const float *const *K, const float *const *V, size_t kvs,
                           const int *len, int n, int H, int KVH, int hd,
                           float *scratch, int maxlen)
{
    (void)scratch;
    rows_attention(out, ldo, q, K, V, NULL, NULL, kvs, len, n, H, KVH, hd, maxlen);
}

static void attention_rows_bf16(float *out, size_t ldo, const float *const *q,
                                const uint16_t *const *K, const uint16_t *const *V, size_t kvs,
                                const int *len, int n, int H, int KVH, int hd, float *scratch,
                                int maxlen)
{
    (void)scratch;
    rows_attention(out, ldo, q, NULL, NULL, K, V, kvs, len, n, H, KVH, hd, maxlen);
}

static void copy_rows_bf16(uint16_t *const *dst, const float *src, size_t lds, int N, int n)
{
    for (int i = 0; i < N; i++)
        for (int j = 0; j < n; j++)
            dst[i][j] = llm_float_to_bf16(src[(size_t)i * lds + j]);
}

static void copy_rows(float *const *dst, const float *src, size_t lds, int N, int n)
{
    for (int i = 0; i < N; i++)
        for (int j = 0; j < n; j++)
            dst[i][j] = src[(size_t)i * lds + j];
}

static size_t to_half(uint16_t *h, const float *f, size_t n)
{
    size_t bad = n;
    for (size_t i = 0; i < n; i++) {
        h[i] = llm_float_to_half(f[i]);
        if ((h[i] & 0x7c00u) == 0x7c00u && bad == n)
            bad = i;
    }
    return bad;
}

/* int8 weights: quantize_q8's rule (q8_rule.h), one block at a time. */
static int quantize_q8(void *w, const float *inp, size_t ldi, const int *map, int N, int IC)
{
    int nb = (IC + 31) / 32, bad = N;
    for (int n = 0; n < N; n++) {
        const float *x = inp + (size_t)(map ? map[n] : n) * ldi;
        char *row = (char *)w + (size_t)n * nb * LLM_Q8_BYTES;
        for (int b = 0; b < nb; b++)
            if (weight_block((int8_t *)(row + llm_q8_qoff(nb, b)),
                             (float *)(row + llm_q8_doff(nb, b)),
                             (float *)(row + llm_q8_moff(nb, b)), x + 32 * b,
                             IC - 32 * b < 32 ? IC - 32 * b : 32) && bad == N)
                bad = n;
    }
    return bad;
}

/* The int8 product's inputs: quantize_q16's rule (q8_rule.h), one block at
 * a time. */
static int quantize_q16(int16_t *q, float *d, float *s, const float *inp, size_t ldi,
                        const int *map, int N, int IC)
{
    int nb = (IC + 31) / 32, bad = N;
    for (int n = 0; n < N; n++) {
        const float *x = inp + (size_t)(map ? map[n] : n) * ldi;
        size_t i = (size_t)n * nb;
        for (int b = 0; b < nb; b++)
            if (input_block(q + (i + b) * 32, d + i + b, s + i + b, x + 32 * b,
                            IC - 32 * b < 32 ? IC - 32 * b : 32) && bad == N)
                bad = n;
    }
    return bad;
}

/* i_b of matmul_rows_q8: an exact integer (|i_b| <= 32 * 128 * 32767). */
static int32_t q8_block_dot(const int8_t *w, const int16_t *x)
{
    int32_t s = 0;
    for (int k = 0; k < 32; k++)
        s += (int32_t)w[k] * x[k];
    return s;
}

/* Block b of a row of int8 weights: its contribution to a partial sum p
 * with input block b (x, scale dx, scaled sum sx). */
static float q8_term(const char *row, int nb, int b, const int16_t *x, float dx, float sx,
                     float p)
{
    float d, m;
    memcpy(&d, row + llm_q8_doff(nb, b), sizeof d);
    memcpy(&m, row + llm_q8_moff(nb, b), sizeof m);
    int32_t i = q8_block_dot((const int8_t *)(row + llm_q8_qoff(nb, b)), x);
    return fmaf(m, sx, fmaf(d * dx, (float)i, p));
}

static void matmul_rows_q8(float *out, size_t ldo, const int *map, const int16_t *xq,
                           const float *xd, const float *xs, const void *w, int N, int IC,
                           int OC)
{
    int nb = (IC + 31) / 32, nb8 = nb & ~7;
    for (int n = 0; n < N; n++) {
        size_t r = (size_t)(map ? map[n] : n);
        const int16_t *x = xq + (size_t)n * nb * 32;
        const float *dx = xd + (size_t)n * nb, *sx = xs + (size_t)n * nb;
        for (int o = 0; o < OC; o++) {
            const char *row = (const char *)w + (size_t)o * nb * LLM_Q8_BYTES;
            float p[8] = { 0 };
            for (int b = 0; b < nb8; b++)
                p[b % 8] = q8_term(row, nb, b, x + 32 * b, dx[b], sx[b], p[b % 8]);
            float sum = ((p[0] + p[4]) + (p[2] + p[6])) + ((p[1] + p[5]) + (p[3] + p[7]));
            for (int b = nb8; b < nb; b++)
                sum = q8_term(row, nb, b, x + 32 * b, dx[b], sx[b], sum);
            out[r * ldo + o] = sum;
        }
    }
}

/* bf16 copies: the bits of in(x, 1) (exact in a float). */
static uint32_t bf16_of(float x)
{
    float r = isnan(x) ? x : (float)in(x, 1);
    uint32_t u;
    memcpy(&u, &r, sizeof u);
    return isnan(x) ? (u | 0x400000u) >> 16 : u >> 16;
}

static void pack_bf16(uint32_t *dst, const float *w, int IC, int OC)
{
    int kp = (IC + 1) / 2;
    for (int o = 0; o < (OC + 31) / 32 * 32; o++)
        for (int j = 0; j < kp; j++) {
            uint32_t lo = 0, hi = 0;
            if (o < OC) {
                lo = bf16_of(w[(size_t)o * IC + 2 * j]);
                hi = 2 * j + 1 < IC ? bf16_of(w[(size_t)o * IC + 2 * j + 1]) : 0;
            }
            dst[((size_t)(o / 32) * kp + j) * 32 + o % 32] = lo | hi << 16;
        }
}

/* Value k of row o of a packed weight. */
static float packed_at(const uint32_t *w, int kp, int o, int k)
{
    uint32_t s = w[((size_t)(o / 32) * kp + k / 2) * 32 + o % 32];
    uint32_t u = k % 2 ? s & 0xffff0000u : s << 16;
    float f;
    memcpy(&f, &u, sizeof f);
    return f;
}

static void matmul_rows_bf16(float *out, size_t ldo, const float *inp, size_t ldi,
                             const int *map, const uint32_t *w, int o0, uint32_t *scratch,
                             int N, int IC, int OC)
{
    (void)scratch;
    int kp = (IC + 1) / 2;
    for (int n = 0; n < N; n++) {
        size_t r = (size_t)(map ? map[n] : n);
        const float *x = inp + r * ldi;
        for (int o = 0; o < OC; o++) {
            float s = 0.0f;
            for (int k = 0; k < IC; k++)
                s = fmaf((float)in(x[k], 1), packed_at(w, kp, o0 + o, k), s);
            out[r * ldo + o] = s;
        }
    }
}

static const llm_kernels ref_kernels = {
    .name = "ref",
    LLM_HOST_MEMORY,
    LLM_TRAINING_ENTRIES,
    .matmul_rows = matmul_rows,
    .matmul_rows_packed = matmul_rows_packed,
    .matmul_rows_scratch = matmul_rows_scratch,
    .attention_rows = attention_rows,
    .copy_rows = copy_rows,
    .attention_rows_bf16 = attention_rows_bf16,
    .copy_rows_bf16 = copy_rows_bf16,
    .to_half = to_half,
    .quantize_q8 = quantize_q8,
    .quantize_q16 = quantize_q16,
    .matmul_rows_q8 = matmul_rows_q8,
    .pack_bf16 = pack_bf16,
    .matmul_rows_bf16 = matmul_rows_bf16,
    .logits_max = llm_ref_logits_max,
    .softmax_weights = llm_ref_softmax_weights,
    .find_first = llm_ref_find_first,
    .linear_f64 = llm_ref_linear_f64,
    .dropout = llm_ref_dropout,
};

const llm_kernels *llm_kernels_ref(void)
{
    return &ref_kernels;
}
