/* train_speed.c: training throughput of the library (forward + backward +
 * clipping + AdamW per step) in tokens/s, and model FLOPs utilisation
 * against the sgemm peak measured on this machine in the same run.
 *
 *   train_speed [--preset small] [--vocab 4096] [--context 256]
 *               [--batch 8,32] [--threads 1,2] [--steps 3]
 *               [--device cpu] [--peak GFLOPS] [--precision f32|bf16]
 *
 * MFU is always against the fp32 peak, so bf16 can pass 100%.
 * --device cuda times the GPU; its peak is not the CPU's sgemm, so MFU
 * is then against --peak (tests/cuda/gemm_peak measures cuBLAS's), and
 * left out without it.
 *
 * FLOPs per token: llm_config_flops_per_token() (6 per weight of every matrix
 * product, the output projection included, + 12 L C T for attention scores
 * and values: PaLM's accounting, causal masking not discounted); the peak
 * is llm_peak_flops(), the same figures llm-train's progress line uses. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "llm.h"

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + ts.tv_nsec * 1e-9;
}

static int parse_list(const char *s, int *v, int cap)
{
    int n = 0;
    while (*s && n < cap) {
        char *end;
        long x = strtol(s, &end, 10);
        if (end == s || x < 1 || x > 4096) {
            fprintf(stderr, "train_speed: bad list '%s'\n", s);
            exit(2);
        }
        v[n++] = (int)x;
        s = *end == ',' ? end + 1 : end;
        if (*end && *end != ',') {
            fprintf(stderr, "train_speed: bad list '%s'\n", s);
            exit(2);
        }
    }
    return n;
}

int main(int argc, char **argv)
{
    const char *preset = "small", *device = "cpu", *precision = "f32";
    int vocab = 4096, context = 256, steps = 3;
    double peak_arg = 0;   /* GFLOP/s, 0: measure the CPU's sgemm */
    int batches[8] = { 8, 32 }, nb = 2, threads[8] = { 1, 2 }, nt = 2;
    for (int i = 1; i + 1 < argc; i += 2) {
        if (!strcmp(argv[i], "--preset")) preset = argv[i + 1];
        else if (!strcmp(argv[i], "--vocab")) vocab = atoi(argv[i + 1]);
        else if (!strcmp(argv[i], "--context")) context = atoi(argv[i + 1]);
        else if (!strcmp(argv[i], "--steps")) steps = atoi(argv[i + 1]);
        else if (!strcmp(argv[i], "--batch")) nb = parse_list(argv[i + 1], batches, 8);
        else if (!strcmp(argv[i], "--threads")) nt = parse_list(argv[i + 1], threads, 8);
        else if (!strcmp(argv[i], "--device")) device = argv[i + 1];
        else if (!strcmp(argv[i], "--precision")) precision = argv[i + 1];
        else if (!strcmp(argv[i], "--peak")) peak_arg = atof(argv[i + 1]);
        else {
            fprintf(stderr, "train_speed: unknown option '%s'\n", argv[i]);
            return 2;
        }
    }
    llm_config c = { .vocab_size = vocab };
    if (llm_config_preset(preset, &c) != LLM_OK) {
        fprintf(stderr, "train_speed: %s\n", llm_errmsg());
        return 2;
    }
    c.context = context;
    if (llm_config_check(&c) != LLM_OK || steps < 1) {
        fprintf(stderr, "train_speed: %s\n", llm_errmsg());
        return 2;
    }
    double P = (double)llm_config_params(&c);
    double flops_tok = llm_config_flops_per_token(&c, context);
    printf("model %s: %d x %d, heads %d/%d, ffn %d, vocab %d, context %d, %.2fM parameters\n",
           preset, c.n_layers, c.dim, c.n_heads, c.n_kv_heads, c.ffn_dim, vocab, context, P / 1e6);
    for (int ti = 0; ti < nt; ti++) {
        llm_set_threads(threads[ti]);
        int cpu = !strcmp(device, "cpu");
        double peak = peak_arg > 0 ? peak_arg : cpu ? llm_peak_flops() / 1e9 : 0;
        char dev[96];   /* on the CPU, its level and product: avx512 or amx, ... */
        if (cpu)
            snprintf(dev, sizeof dev, "cpu (level %s, %s)", llm_cpu_level(), llm_cpu_gemm());
        else
            snprintf(dev, sizeof dev, "%s", device);
        printf("threads %d, device %s, %s: peak %.1f GFLOP/s (%s)\n", threads[ti], dev,
               precision, peak, peak_arg > 0 ? "--peak" : cpu ? "fp32 sgemm measured"
                                                             : "unknown: no MFU");
        for (int bi = 0; bi < nb; bi++) {
            int B = batches[bi], T = context;
            llm_set_threads(threads[ti]);
            llm_model *m;
            if (llm_model_create(&c, 1, device, &m) != LLM_OK ||
                llm_model_set_precision(m, precision) != LLM_OK) {
                fprintf(stderr, "train_speed: %s\n", llm_errmsg());
                return 1;
            }
            int32_t *tok = malloc((size_t)B * (T + 1) * sizeof *tok);
            int32_t *x = malloc((size_t)B * T * sizeof *x), *y = malloc((size_t)B * T * sizeof *y);
            llm_rng r;
            llm_rng_seed(&r, 5);
            for (size_t i = 0; i < (size_t)B * (T + 1); i++)
                tok[i] = (int32_t)llm_rng_below(&r, (uint64_t)vocab);
            for (int b = 0; b < B; b++) {
                memcpy(x + (size_t)b * T, tok + (size_t)b * (T + 1), (size_t)T * sizeof *x);
                memcpy(y + (size_t)b * T, tok + (size_t)b * (T + 1) + 1, (size_t)T * sizeof *y);
            }
            llm_adamw o;
            llm_adamw_defaults(&o);
            double t_fwd = 0, t_bwd = 0, t_opt = 0, t0 = 0;
            float loss = 0;
            for (int s = -1; s < steps; s++) {   /* step -1 warms up, untimed */
                double a = now();
                if (s == 0)
                    t0 = a;
                int rc = llm_model_zero_grad(m);
                if (!rc) rc = llm_model_forward(m, x, y, B, T, &loss);
                double b1 = now();
                if (!rc) rc = llm_model_backward(m);
                double b2 = now();
                llm_model_clip_grad(m, 1.0);
                if (!rc) rc = llm_model_adamw_step(m, &o);
                double b3 = now();
                if (rc) {
                    fprintf(stderr, "train_speed: %s\n", llm_errmsg());
                    return 1;
                }
                if (s >= 0) {
                    t_fwd += b1 - a;
                    t_bwd += b2 - b1;
                    t_opt += b3 - b2;
                }
            }
            double el = now() - t0, tps = (double)B * T * steps / el;
            double mfu = peak > 0 ? tps * flops_tok / (peak * 1e9) : 0;
            printf("  batch %2d: %7.0f tokens/s  MFU %4.1f%%  (per step: forward %.3f s, "
                   "backward %.3f s, clip+adamw %.3f s; loss %.3f)\n",
                   B, tps, 100 * mfu, t_fwd / steps, t_bwd / steps, t_opt / steps, loss);
            fflush(stdout);
            free(tok); free(x); free(y);
            llm_model_free(m);
        }
    }
    return 0;
}
