/* generate_speed.c: generation throughput of the key/value-cache path
 * (lib/model/infer.c) with random weights: tokens/s of one sequence (batch 1) and
 * aggregated tokens/s of batches decoded together, and at batch 1 the
 * weight bandwidth it implies (weight bytes read per token x tokens/s)
 * against a STREAM triad measured in the same run with the same threads.
 *
 *   generate_speed [--preset small,medium,large] [--vocab 32000]
 *                  [--batch 1,16,32] [--threads 1,2] [--tokens 128]
 *                  [--precision f32,mmap,f16,q8,bf16] [--ref TPS] [--device cpu]
 *
 * --device cuda decodes on the GPU (no STREAM triad then: the weights'
 * bandwidth is printed alone).
 *
 * f32 reads the weights from a private block in transparent huge pages (a
 * model made in memory, or llm-generate --no-mmap), mmap from the mapping
 * of a model file (llm-generate's default), f16 half-precision copies
 * (llm_model_decode_f16()), half the bytes per token, q8 int8 copies in
 * blocks of 32 with a float scale and offset each
 * (llm_model_quantize_q8()), 1.25 bytes per weight, bf16 bfloat16 copies
 * (llm_model_weights_bf16(), of the model saved and loaded again), 2
 * bytes. Rows of 2 threads
 * give their ratio to llama2.c's run.c on 2 threads: to --ref TPS, its
 * tokens/s timed just before (generate.sh does), else to the figure the
 * issue gave for the reference machine.
 * Each sequence starts from one token and generates --tokens tokens; the
 * time is that of the decoding steps, sampling included (temperature 1, no
 * top-k/top-p/min-p: one softmax and one draw over the vocabulary per token,
 * as llama2.c's run.c with top-p off). */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <omp.h>

#include "llm.h"

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + ts.tv_nsec * 1e-9;
}

static int parse_ints(const char *s, int *v, int cap)
{
    int n = 0;
    while (*s && n < cap) {
        char *end;
        long x = strtol(s, &end, 10);
        if (end == s || x < 1 || x > 4096 || (*end && *end != ',')) {
            fprintf(stderr, "generate_speed: bad list '%s'\n", s);
            exit(2);
        }
        v[n++] = (int)x;
        s = *end ? end + 1 : end;
    }
    return n;
}

/* STREAM triad a = b + s c, best of 20, in bytes/s (3 arrays, as STREAM). */
static double triad(int threads)
{
    size_t n = (size_t)24 << 20;   /* 96 MB per array: far past the caches */
    float *a = malloc(n * sizeof *a), *b = malloc(n * sizeof *b), *c = malloc(n * sizeof *c);
    if (!a || !b || !c) {
        fprintf(stderr, "generate_speed: out of memory\n");
        exit(1);
    }
#pragma omp parallel for num_threads(threads) schedule(static)
    for (size_t i = 0; i < n; i++) {
        a[i] = 0.0f;
        b[i] = 1.0f;
        c[i] = 2.0f;
    }
    double best = 1e30;
    for (int rep = 0; rep < 20; rep++) {
        double t = now();
#pragma omp parallel for num_threads(threads) schedule(static)
        for (size_t i = 0; i < n; i++)
            a[i] = b[i] + 3.0f * c[i];
        t = now() - t;
        best = t < best ? t : best;
    }
    volatile float sink = a[n / 2];
    (void)sink;
    free(a);
    free(b);
    free(c);
    return 3.0 * (double)n * sizeof(float) / best;
}

/* Decodes `tokens` steps of B sequences; @return aggregated tokens/s, and
 * the share of the time spent sampling in *sampling. */
static double run(llm_model *m, int B, int tokens, llm_sampler *smp, double *sampling)
{
    const llm_config *c = llm_model_config(m);
    int V = c->vocab_size;
    llm_session *s;
    if (llm_session_new(m, B, &s)) {
        fprintf(stderr, "generate_speed: %s\n", llm_errmsg());
        exit(1);
    }
    float *logits = malloc((size_t)B * V * sizeof *logits);
    int *seqs = malloc((size_t)B * sizeof *seqs);
    int32_t *next = malloc((size_t)B * sizeof *next);
    llm_rng *rng = malloc((size_t)B * sizeof *rng);
    for (int j = 0; j < B; j++) {
        int32_t first = (int32_t)(1 + j % (V - 1));
        seqs[j] = j;
        llm_rng_seed(&rng[j], (uint64_t)j + 1);
        if (llm_session_prefill(s, j, &first, 1, logits + (size_t)j * V) ||
            llm_sampler_sample(smp, &rng[j], logits + (size_t)j * V, V, NULL, 0,
                               &next[j], NULL)) {
            fprintf(stderr, "generate_speed: %s\n", llm_errmsg());
            exit(1);
        }
    }
    double t = now(), ts = 0;
    for (int step = 0; step < tokens; step++) {
        if (llm_session_step(s, seqs, next, B, logits)) {
            fprintf(stderr, "generate_speed: %s\n", llm_errmsg());
            exit(1);
        }
        double t1 = now();
        if (llm_sampler_sample_batch(smp, B, rng, logits, V, NULL, NULL, next, NULL)) {
            fprintf(stderr, "generate_speed: %s\n", llm_errmsg());
            exit(1);
        }
        ts += now() - t1;
    }
    t = now() - t;
    *sampling = ts / t;
    llm_session_free(s);
    free(logits);
    free(seqs);
    free(next);
    free(rng);
    return (double)B * tokens / t;
}

/* NAME is one of the comma-separated names of LIST. */
static int listed(const char *list, const char *name)
{
    size_t n = strlen(name);
    for (const char *p = list; (p = strstr(p, name)) != NULL; p += n)
        if ((p == list || p[-1] == ',') && (p[n] == ',' || p[n] == '\0'))
            return 1;
    return 0;
}

int main(int argc, char **argv)
{
    const char *presets = "small,medium,large";
    int vocab = 32000, tokens = 128;
    int batches[8] = { 1, 16, 32 }, nb = 3, threads[8] = { 1, 2 }, nt = 2;
    const char *precisions = "f32,mmap,f16,q8,bf16";
    double ref_now = 0;   /* --ref: llama2.c timed in this run */
    const char *device = "cpu";
    for (int i = 1; i + 1 < argc; i += 2) {
        if (!strcmp(argv[i], "--preset")) presets = argv[i + 1];
        else if (!strcmp(argv[i], "--vocab")) vocab = atoi(argv[i + 1]);
        else if (!strcmp(argv[i], "--tokens")) tokens = atoi(argv[i + 1]);
        else if (!strcmp(argv[i], "--batch")) nb = parse_ints(argv[i + 1], batches, 8);
        else if (!strcmp(argv[i], "--threads")) nt = parse_ints(argv[i + 1], threads, 8);
        else if (!strcmp(argv[i], "--precision")) precisions = argv[i + 1];
        else if (!strcmp(argv[i], "--ref")) ref_now = atof(argv[i + 1]);
        else if (!strcmp(argv[i], "--device")) device = argv[i + 1];
        else {
            fprintf(stderr, "generate_speed: unknown option '%s'\n", argv[i]);
            return 2;
        }
    }
    /* llama2.c run.c, 2 threads, top-p off, on the reference machine. */
    const struct { const char *name; double tps; } ref[] = {
        { "small", 365 }, { "medium", 142 }, { "large", 57 },
    };
    double bw[8] = { 0 };
    int cpu = !strcmp(device, "cpu");
    for (int t = 0; cpu && t < nt; t++) {
        bw[t] = triad(threads[t]);
        printf("STREAM triad, %d thread%s: %.1f GB/s\n", threads[t], threads[t] > 1 ? "s" : "",
               bw[t] / 1e9);
    }
    llm_sampler_params sp;
    llm_sampler_defaults(&sp);
    sp.temperature = 1.0;
    sp.top_k = 0;
    sp.top_p = 1.0;
    sp.min_p = 0.0;
    llm_sampler *smp;
    if (llm_sampler_new(&sp, &smp))
        return 1;
    char list[256];
    snprintf(list, sizeof list, "%s", presets);
    for (char *name = strtok(list, ","); name; name = strtok(NULL, ",")) {
        llm_config c = { .vocab_size = vocab };
        llm_model *m;
        if (llm_config_preset(name, &c) || llm_model_create(&c, 1, device, &m)) {
            fprintf(stderr, "generate_speed: %s\n", llm_errmsg());
            return 1;
        }
        if (tokens >= c.context)
            tokens = c.context - 2;
        /* Weights read per token: every matrix once (the embedding as the
         * output projection when tied, plus the one row looked up). */
        double params = (double)llm_config_params(&c);
        double weights = params - (c.tied ? 0.0 : (double)c.vocab_size * c.dim);
        double reftps = ref_now;
        for (size_t i = 0; reftps <= 0 && i < sizeof ref / sizeof ref[0]; i++)
            if (!strcmp(ref[i].name, name))
                reftps = ref[i].tps;
        printf("\n%s: %d x %d, vocab %d, %.1fM parameters, %.0f MB of fp32 weights per "
               "token; %d tokens per sequence\n", name, c.n_layers, c.dim, c.vocab_size,
               params / 1e6, 4 * weights / 1e6, tokens);
        /* f32 first: llm_model_decode_f16() and llm_model_quantize_q8()
         * are for the rest of the model's life (q8 last: its copies take
         * precedence over f16's). "mmap": f32 read from the file's mapping
         * (llm-generate --mmap), the model saved and loaded again; the
         * others read a private block in huge pages, as llm-generate by
         * default. */
        static const char *const variant[] = { "f32", "mmap", "f16", "q8", "bf16" };
        for (int v = 0; v < 5; v++) {
            int f16 = v == 2, q8 = v == 3, bf16 = v == 4;
            if (!listed(precisions, variant[v]))
                continue;
            llm_model *mm = m;
            if ((v == 1 || bf16) && (llm_model_save(m, "generate_speed.llm", NULL) ||
                                     llm_model_load("generate_speed.llm", device, &mm))) {
                fprintf(stderr, "generate_speed: %s\n", llm_errmsg());
                return 1;
            }
            if (bf16 && llm_model_weights_bf16(mm)) {   /* a table without them */
                printf("  bf16: %s; skipped\n", llm_errmsg());
                llm_model_free(mm);
                remove("generate_speed.llm");
                continue;
            }
            if (f16 && llm_model_decode_f16(m)) {
                fprintf(stderr, "generate_speed: %s\n", llm_errmsg());
                return 1;
            }
            if (q8 && llm_model_quantize_q8(m)) {   /* a table without int8 products */
                printf("  q8: %s; skipped\n", llm_errmsg());
                continue;
            }
            double bytes = (q8 ? 36.0 / 32 : f16 || bf16 ? 2.0 : 4.0) * weights;
            for (int t = 0; t < nt; t++) {
                llm_set_threads(threads[t]);
                for (int b = 0; b < nb; b++) {
                    /* The triad again just before batch 1, the best seen kept:
                     * a shared machine's bandwidth varies over a run. */
                    if (cpu && batches[b] == 1) {
                        double again = triad(threads[t]);
                        bw[t] = again > bw[t] ? again : bw[t];
                    }
                    double share;
                    double tps = run(mm, batches[b], tokens, smp, &share);
                    printf("  %-4s threads %d batch %2d: %8.1f tokens/s (%2.0f%% sampling)",
                           variant[v], threads[t], batches[b], tps, 100 * share);
                    if (batches[b] == 1 && cpu)
                        printf("  weights %.1f GB/s = %.0f%% of triad (%.1f)",
                               bytes * tps / 1e9, 100.0 * bytes * tps / bw[t], bw[t] / 1e9);
                    else if (batches[b] == 1)
                        printf("  weights %.1f GB/s", bytes * tps / 1e9);
                    if (cpu && reftps > 0 && threads[t] == 2)
                        printf("  %.2fx llama2.c (%.0f%s)", tps / reftps, reftps,
                               ref_now > 0 ? " now" : "");
                    printf("\n");
                    fflush(stdout);
                }
            }
            if (mm != m) {
                llm_model_free(mm);
                remove("generate_speed.llm");
            }
        }
        llm_model_free(m);
    }
    llm_sampler_free(smp);
    return 0;
}
