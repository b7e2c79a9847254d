/* attention_speed.c: one layer's causal attention on the CPU, forward and
 * backward, through the kernel table of the level this CPU runs (kernels.h:
 * attention_forward, attention_backward and their bf16 forms), in
 * milliseconds, the minimum over --reps calls each. The shapes and output
 * match tests/bench/attention_torch.py (PyTorch's
 * scaled_dot_product_attention), which attention.sh runs beside it.
 *
 *   attention_speed [--shape B,T,H,KVH,hd]... [--threads N] [--reps 5]
 *                   [--precision f32|bf16]
 *
 * Prints for each shape:
 *   B 8 T 256 H 6 KVH 6 hd 48 threads 2 f32: forward 4.55 ms, backward 10.01 ms
 * (the default shapes: stories15M's layer at batch 8, and SmolLM2-135M's at
 * batch 2 x 1024 and 1 x 1024, grouped-query heads: at batch 1 its 3 kv
 * heads are fewer than the units attention cuts a layer into). */
#include <omp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "kernels.h"

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + ts.tv_nsec * 1e-9;
}

/* Uniform in [-1, 1) from a fixed stream (xorshift64*). */
static float *filled(size_t n, uint64_t *s)
{
    float *p = malloc((n ? n : 1) * sizeof *p);
    if (!p) {
        fprintf(stderr, "attention_speed: out of memory\n");
        exit(1);
    }
    for (size_t i = 0; i < n; i++) {
        *s ^= *s >> 12, *s ^= *s << 25, *s ^= *s >> 27;
        p[i] = (float)((*s * 0x2545f4914f6cdd1dull) >> 40) / (float)(1 << 23) - 1.0f;
    }
    return p;
}

static void run(const llm_kernels *k, const int *sh, int threads, int reps, int bf16)
{
    int B = sh[0], T = sh[1], H = sh[2], KVH = sh[3], hd = sh[4];
    int QS = (H + 2 * KVH) * hd, OS = H * hd;
    size_t nq = (size_t)B * T * QS, no = (size_t)B * T * OS;
    uint64_t seed = 0x9e3779b97f4a7c15ull;
    float *qkv = filled(nq, &seed), *dout = filled(no, &seed);
    float *out = filled(no, &seed), *dqkv = filled(nq, &seed);
    float *saved = filled(k->attention_saved(B, T, H), &seed);
    float *scratch = filled(k->attention_scratch(B, T, H, KVH, hd, 1), &seed);
    omp_set_num_threads(threads);
    double fwd = 1e30, bwd = 1e30;
    for (int r = 0; r < reps; r++) {
        double t0 = now();
        (bf16 ? k->attention_forward_bf16 : k->attention_forward)(out, saved, scratch, qkv, NULL,
                                                                  B, T, H, KVH, hd);
        double t1 = now();
        (bf16 ? k->attention_backward_bf16 : k->attention_backward)(
            dqkv, scratch, dout, qkv, out, saved, NULL, B, T, H, KVH, hd);
        double t2 = now();
        fwd = t1 - t0 < fwd ? t1 - t0 : fwd;
        bwd = t2 - t1 < bwd ? t2 - t1 : bwd;
    }
    printf("B %d T %d H %d KVH %d hd %d threads %d %s: forward %.2f ms, backward %.2f ms\n", B, T,
           H, KVH, hd, threads, bf16 ? "bf16" : "f32", fwd * 1e3, bwd * 1e3);
    fflush(stdout);
    free(qkv), free(dout), free(out), free(dqkv), free(saved), free(scratch);
}

int main(int argc, char **argv)
{
    int shapes[8][5], ns = 0, threads = omp_get_max_threads(), reps = 5, bf16 = 0;
    for (int i = 1; i + 1 < argc; i += 2) {
        if (!strcmp(argv[i], "--shape") && ns < 8) {
            int *s = shapes[ns];
            if (sscanf(argv[i + 1], "%d,%d,%d,%d,%d", &s[0], &s[1], &s[2], &s[3], &s[4]) != 5 ||
                s[0] < 1 || s[0] > 4096 || s[1] < 1 || s[1] > 65536 || s[2] < 1 ||
                s[2] > 1024 || s[3] < 1 || s[2] % s[3] != 0 || s[4] < 1 || s[4] > 1024) {
                fprintf(stderr, "attention_speed: bad shape '%s' (B,T,H,KVH,hd)\n", argv[i + 1]);
                return 2;
            }
            ns++;
        } else if (!strcmp(argv[i], "--threads")) {
            threads = atoi(argv[i + 1]);
        } else if (!strcmp(argv[i], "--reps")) {
            reps = atoi(argv[i + 1]);
        } else if (!strcmp(argv[i], "--precision") &&
                   (!strcmp(argv[i + 1], "f32") || !strcmp(argv[i + 1], "bf16"))) {
            bf16 = !strcmp(argv[i + 1], "bf16");
        } else {
            fprintf(stderr, "attention_speed: unknown option '%s %s'\n", argv[i], argv[i + 1]);
            return 2;
        }
    }
    if (threads < 1 || reps < 1) {
        fprintf(stderr, "attention_speed: --threads and --reps must be at least 1\n");
        return 2;
    }
    if (!ns) {
        static const int def[3][5] = { { 8, 256, 6, 6, 48 }, { 2, 1024, 9, 3, 64 },
                                       { 1, 1024, 9, 3, 64 } };
        memcpy(shapes, def, sizeof def);
        ns = 3;
    }
    const llm_kernels *k = llm_kernels_cpu();
    if (bf16 && !k->attention_forward_bf16) {
        fprintf(stderr, "attention_speed: this level has no bf16 attention\n");
        return 2;
    }
    for (int s = 0; s < ns; s++)
        run(k, shapes[s], threads, reps, bf16);
    return 0;
}
