/* llm-train.c: pretrain a Llama-style language model on token files or text,
 * with validation, checkpoints and resume. Options, I/O, progress and the
 * training loop's bookkeeping only; the maths is in lib/ (model.c, train.c). */
#include <errno.h>
#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "cli.h"

/* Option values, holding their defaults (--help prints them from here). */
static const char *o_model, *o_output, *o_checkpoint, *o_resume, *o_init, *o_log;
static const char *o_val;
static const char *o_task = "lm";
static const char *o_preset = "tiny";
static int o_layers, o_dim, o_heads, o_kv_heads, o_ffn_dim, o_context, o_untied;
static double o_rope_base = 10000, o_norm_eps = 1e-5;
static int64_t o_steps = 1000, o_batch_tokens, o_save_every, o_eval_every = 100;
static int64_t o_eval_tokens = 16384, o_warmup = 50, o_until;
static double o_epochs, o_val_fraction, o_time_limit;
static int o_batch = 8, o_patience, o_decay_embeddings, o_threads, o_quiet, o_progress;
static double o_lr = 1e-3, o_min_lr = -1, o_weight_decay = 0.1, o_beta1 = 0.9,
              o_beta2 = 0.95, o_adam_eps = 1e-8, o_clip = 1.0, o_decay_fraction = 0.2;
static const char *o_schedule = "cosine";
static const char *o_device = "cpu";
static int64_t o_seed = 1;

#define SHAPE "model shape (ignored with --init and --resume): "

static const cli_opt opts[] = {
    {"model", 'm', CLI_STRING, &o_model, "FILE",
     "tokenizer: a SentencePiece .model or an llm model file (default: the one in "
     "--init or --resume)", NULL, 0, 0, 0, CLI_COMPLETE_FILE, 1},
    {"output", 'o', CLI_STRING, &o_output, "FILE",
     "model file to write (required); with validation, the best model seen", NULL, 0, 0,
     0, CLI_COMPLETE_FILE, 0},
    {"task", 0, CLI_CHOICE, &o_task, "TASK", "what to train", "lm", 0, 0, 0,
     CLI_COMPLETE_CHOICE, 0},
    {"init", 0, CLI_STRING, &o_init, "FILE",
     "start from the weights of this model file instead of random ones", NULL, 0, 0, 0,
     CLI_COMPLETE_FILE, 0},
    {"resume", 0, CLI_STRING, &o_resume, "FILE",
     "continue the run saved in this checkpoint (pass the same options)", NULL, 0, 0, 0,
     CLI_COMPLETE_FILE, 0},
    {"checkpoint", 0, CLI_STRING, &o_checkpoint, "FILE",
     "where checkpoints go (default: OUTPUT.ckpt)", NULL, 0, 0, 0, CLI_COMPLETE_FILE, 0},
    {"save-every", 0, CLI_INT64, &o_save_every, "N",
     "also write the checkpoint every N steps (0: at the end and on interrupt only)",
     NULL, 0, 1e12, 0, CLI_COMPLETE_NONE, 0},
    {"preset", 0, CLI_CHOICE, &o_preset, "NAME",
     SHAPE "tiny ~1M, small 15M, medium 42M, large 110M parameters (with vocabulary 32000)",
     "tiny|small|medium|large", 0, 0, 0, CLI_COMPLETE_CHOICE, 0},
    {"layers", 0, CLI_INT, &o_layers, "N", SHAPE "transformer blocks (0: from the preset)",
     NULL, 0, 1024, 0, CLI_COMPLETE_NONE, 1},
    {"dim", 0, CLI_INT, &o_dim, "N", SHAPE "model width (0: from the preset)", NULL, 0,
     65536, 0, CLI_COMPLETE_NONE, 1},
    {"heads", 0, CLI_INT, &o_heads, "N", SHAPE "attention heads (0: from the preset)",
     NULL, 0, 1024, 0, CLI_COMPLETE_NONE, 1},
    {"kv-heads", 0, CLI_INT, &o_kv_heads, "N",
     SHAPE "key/value heads, dividing --heads (0: as many as --heads)", NULL, 0, 1024, 0,
     CLI_COMPLETE_NONE, 1},
    {"ffn-dim", 0, CLI_INT, &o_ffn_dim, "N", SHAPE "SwiGLU hidden width (0: from the preset)",
     NULL, 0, 1 << 20, 0, CLI_COMPLETE_NONE, 1},
    {"context", 0, CLI_INT, &o_context, "N",
     SHAPE "longest sequence, and the training sequence length (0: from the preset)",
     NULL, 0, 1 << 20, 0, CLI_COMPLETE_NONE, 1},
    {"rope-base", 0, CLI_DOUBLE, &o_rope_base, "X", SHAPE "rotary embedding base", NULL,
     1, 1e9, 0, CLI_COMPLETE_NONE, 0},
    {"norm-eps", 0, CLI_DOUBLE, &o_norm_eps, "X", SHAPE "RMSNorm epsilon", NULL, 1e-12,
     1, 0, CLI_COMPLETE_NONE, 0},
    {"untied", 0, CLI_FLAG, &o_untied, NULL,
     SHAPE "give the output projection its own weights instead of the embedding's",
     NULL, 0, 0, 0, CLI_COMPLETE_NONE, 1},
    {"steps", 0, CLI_INT64, &o_steps, "N",
     "optimiser steps in all (0: write the initial model)", NULL, 0, 1e12, 0,
     CLI_COMPLETE_NONE, 0},
    {"until", 0, CLI_INT64, &o_until, "N",
     "stop after step N of the run (saving a checkpoint), to --resume later: "
     "training in slices gives the same weights as one run", NULL, 0, 1e12, 0,
     CLI_COMPLETE_NONE, 1},
    {"epochs", 0, CLI_DOUBLE, &o_epochs, "X",
     "train for X passes over the data instead of --steps", NULL, 0, 1e6, 0,
     CLI_COMPLETE_NONE, 1},
    {"batch", 'b', CLI_INT, &o_batch, "N", "sequences per micro-batch", NULL, 1, 65536, 0,
     CLI_COMPLETE_NONE, 0},
    {"batch-tokens", 0, CLI_INT64, &o_batch_tokens, "N",
     "tokens per optimiser step, a multiple of batch x context: gradients of "
     "several micro-batches are accumulated (0: one micro-batch)", NULL, 0, 1e12, 0,
     CLI_COMPLETE_NONE, 1},
    {"lr", 0, CLI_DOUBLE, &o_lr, "X", "peak learning rate", NULL, 1e-12, 10, 0,
     CLI_COMPLETE_NONE, 0},
    {"min-lr", 0, CLI_DOUBLE, &o_min_lr, "X",
     "final learning rate of the decay (default: lr / 10)", NULL, 0, 10, 0,
     CLI_COMPLETE_NONE, 1},
    {"warmup", 0, CLI_INT64, &o_warmup, "N", "steps of linear warmup", NULL, 0, 1e12, 0,
     CLI_COMPLETE_NONE, 0},
    {"schedule", 0, CLI_CHOICE, &o_schedule, "NAME",
     "learning rate after warmup (wsd: constant, then linear decay)",
     "cosine|linear|constant|wsd", 0, 0, 0, CLI_COMPLETE_CHOICE, 0},
    {"decay-fraction", 0, CLI_DOUBLE, &o_decay_fraction, "X",
     "wsd: share of the steps after warmup spent decaying", NULL, 0.001, 1, 0,
     CLI_COMPLETE_NONE, 0},
    {"weight-decay", 0, CLI_DOUBLE, &o_weight_decay, "X",
     "AdamW decoupled weight decay on matrices (never on norms)", NULL, 0, 10, 0,
     CLI_COMPLETE_NONE, 0},
    {"decay-embeddings", 0, CLI_FLAG, &o_decay_embeddings, NULL,
     "apply weight decay to the token embedding too", NULL, 0, 0, 0, CLI_COMPLETE_NONE, 1},
    {"beta1", 0, CLI_DOUBLE, &o_beta1, "X", "AdamW first-moment decay", NULL, 0, 0.999999,
     0, CLI_COMPLETE_NONE, 0},
    {"beta2", 0, CLI_DOUBLE, &o_beta2, "X", "AdamW second-moment decay", NULL, 0,
     0.999999, 0, CLI_COMPLETE_NONE, 0},
    {"adam-eps", 0, CLI_DOUBLE, &o_adam_eps, "X", "AdamW epsilon", NULL, 1e-30, 1, 0,
     CLI_COMPLETE_NONE, 0},
    {"clip", 0, CLI_DOUBLE, &o_clip, "X",
     "clip gradients to this global norm (0: no clipping)", NULL, 0, 1e9, 0,
     CLI_COMPLETE_NONE, 0},
    {"val", 0, CLI_STRING, &o_val, "FILE", "held-out text or token file for validation",
     NULL, 0, 0, 0, CLI_COMPLETE_FILE, 0},
    {"val-fraction", 0, CLI_DOUBLE, &o_val_fraction, "X",
     "hold out the last X of the training tokens for validation", NULL, 0, 0.5, 0,
     CLI_COMPLETE_NONE, 1},
    {"eval-every", 0, CLI_INT64, &o_eval_every, "N", "validate every N steps", NULL, 1,
     1e12, 0, CLI_COMPLETE_NONE, 0},
    {"eval-tokens", 0, CLI_INT64, &o_eval_tokens, "N",
     "score at most N held-out tokens per validation (0: all)", NULL, 0, 1e15, 0,
     CLI_COMPLETE_NONE, 0},
    {"patience", 0, CLI_INT, &o_patience, "N",
     "stop after N validations without improvement (0: never)", NULL, 0, 1000000, 0,
     CLI_COMPLETE_NONE, 1},
    {"time-limit", 0, CLI_DOUBLE, &o_time_limit, "SECONDS",
     "stop when this much time has passed, validate and save (0: no limit)", NULL, 0,
     1e9, 0, CLI_COMPLETE_NONE, 1},
    {"seed", 0, CLI_INT64, &o_seed, "N", "seed for weights and data order", NULL, 0,
     9.2e18, 0, CLI_COMPLETE_NONE, 0},
    {"threads", 't', CLI_INT, &o_threads, "N", "threads (0: all cores)", NULL, 0, 4096, 0,
     CLI_COMPLETE_NONE, 1},
    {"device", 0, CLI_CHOICE, &o_device, "DEV", "where to compute", "cpu|cuda", 0, 0, 0,
     CLI_COMPLETE_CHOICE, 0},
    {"log", 0, CLI_STRING, &o_log, "FILE", "append JSON Lines metrics, one per step and "
     "per validation", NULL, 0, 0, 0, CLI_COMPLETE_FILE, 0},
    {"progress", 0, CLI_FLAG, &o_progress, NULL,
     "show progress even when standard error is not a terminal", NULL, 0, 0, 0,
     CLI_COMPLETE_NONE, 1},
    {"quiet", 'q', CLI_FLAG, &o_quiet, NULL, "show no progress and no summary", NULL, 0,
     0, 0, CLI_COMPLETE_NONE, 1},
    {"help", 'h', CLI_HELP, NULL, NULL, "display this help and exit", NULL, 0, 0, 0,
     CLI_COMPLETE_NONE, 1},
    {"version", 0, CLI_VERSION, NULL, NULL, "output version information and exit", NULL,
     0, 0, 0, CLI_COMPLETE_NONE, 1},
};

static const cli_prog prog = {
    "llm-train", "[FILE]...",
    "Train a transformer language model on token files or text, one document per line.",
    NULL, 0, opts, (int)(sizeof opts / sizeof opts[0]),
};

static void check(int rc)
{
    if (rc)
        cli_die_status(rc);
}

/* ------------------------------------------------------------------------ */
/* Input: token files are used as they are; text is tokenized line by line,
 * each non-empty line one document: BOS, its ids, EOS (llm_data_add_input(),
 * shared with llm-eval so that their losses agree). */

static void add_input(llm_data *d, const llm_tok *tok, const char *path)
{
    check(llm_data_add_input(d, tok, path));
}

/* Bytes of text the tokens [first, first+n) stand for: the decoded UTF-8,
 * plus one newline per EOS (a line end in the source text). */
static uint64_t text_bytes(const llm_data *d, const llm_tok *tok, uint64_t first,
                           uint64_t n)
{
    uint64_t bytes;
    check(llm_data_text_bytes(d, tok, first, n, &bytes));
    return bytes;
}

/* ------------------------------------------------------------------------ */
/* Signals: the first SIGINT/SIGTERM asks the loop to save and stop. */

static volatile sig_atomic_t g_stop;

static void on_signal(int sig)
{
    g_stop = sig;
    signal(sig, SIG_DFL);   /* a second one ends the program at once */
}

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static void fmt_duration(char *buf, size_t n, double s)
{
    if (!(s >= 0) || s > 1e8)
        snprintf(buf, n, "?");
    else if (s < 60)
        snprintf(buf, n, "%.0fs", s);
    else if (s < 3600)
        snprintf(buf, n, "%dm%02ds", (int)s / 60, (int)s % 60);
    else
        snprintf(buf, n, "%dh%02dm", (int)s / 3600, (int)s % 3600 / 60);
}

/* Can we create files next to `path`? Checked before hours of training. */
static void check_writable(const char *path)
{
    size_t n = strlen(path) + 16;
    char *tmp = malloc(n);
    if (!tmp)
        cli_die("out of memory");
    snprintf(tmp, n, "%s.tmp.XXXXXX", path);
    int fd = mkstemp(tmp);
    if (fd < 0)
        cli_die("cannot write '%s': %s", path, strerror(errno));
    close(fd);
    unlink(tmp);
    free(tmp);
}

int main(int argc, char **argv)
{
    cli_signals();
    int first = cli_parse(&prog, argc, argv, NULL);
    if (!o_output)
        cli_usage("missing --output FILE");
    if (o_resume && o_init)
        cli_usage("--resume and --init cannot be combined");
    if (o_val && o_val_fraction > 0)
        cli_usage("--val and --val-fraction cannot be combined");
    if (strcmp(o_device, "cpu") != 0)
        cli_die("device '%s' is not available in this build (CUDA support is not built)",
                o_device);
    char *ckpt_default = NULL;
    if (!o_checkpoint) {
        size_t n = strlen(o_output) + 6;
        ckpt_default = malloc(n);
        if (!ckpt_default)
            cli_die("out of memory");
        snprintf(ckpt_default, n, "%s.ckpt", o_output);
        o_checkpoint = ckpt_default;
    }
    int progress = !o_quiet && (o_progress || cli_isatty_stderr());
    int tty = progress && cli_isatty_stderr();
    int threads = llm_set_threads(o_threads);

    /* The tokenizer: -m, else the one inside --init / --resume. */
    const char *tok_path = o_model ? o_model : o_resume ? o_resume : o_init;
    if (!tok_path)
        cli_usage("missing --model TOKENIZER (or --init / --resume)");
    llm_tok *tok;
    check(llm_tok_load(tok_path, &tok));
    int V = llm_tok_vocab_size(tok);

    /* The model: from a checkpoint, from --init, or new. */
    llm_model *m = NULL;
    const char *from = o_resume ? o_resume : o_init;
    if (from) {
        check(llm_model_load(from, o_device, &m));
        if (llm_model_config(m)->vocab_size != V)
            cli_die("'%s' has a vocabulary of %d, the tokenizer '%s' has %d", from,
                    llm_model_config(m)->vocab_size, tok_path, V);
    } else {
        llm_config c;
        c.vocab_size = V;
        check(llm_config_preset(o_preset, &c));
        if (o_layers) c.n_layers = o_layers;
        if (o_dim) c.dim = o_dim;
        if (o_heads) c.n_heads = o_heads;
        c.n_kv_heads = o_kv_heads ? o_kv_heads : o_heads ? o_heads : c.n_kv_heads;
        if (o_ffn_dim) c.ffn_dim = o_ffn_dim;
        if (o_context) c.context = o_context;
        c.rope_base = o_rope_base;
        c.norm_eps = o_norm_eps;
        c.tied = !o_untied;
        int rc = llm_config_check(&c);
        if (rc)
            cli_usage("%s", llm_errmsg());
        check(llm_model_create(&c, (uint64_t)o_seed, o_device, &m));
    }
    const llm_config *cfg = llm_model_config(m);
    int T = o_context && from ? o_context : cfg->context;
    if (T > cfg->context)
        cli_usage("--context %d is longer than the model's context %d", T, cfg->context);

    /* Data. */
    llm_data *data;
    check(llm_data_new((uint32_t)V, &data));
    if (first >= argc)
        add_input(data, tok, NULL);
    for (int i = first; i < argc; i++)
        add_input(data, tok, argv[i]);
    uint64_t ntok = llm_data_count(data);
    if (ntok == 0)
        cli_die("no training tokens in %s", first >= argc ? "standard input" : "the input");
    llm_data *vdata = data;
    uint64_t train_end = ntok, vbegin = 0, vend = 0;
    if (o_val) {
        check(llm_data_new((uint32_t)V, &vdata));
        add_input(vdata, tok, o_val);
        vend = llm_data_count(vdata);
        if (vend < (uint64_t)T + 1)
            cli_die("'%s': %llu validation tokens are fewer than one sequence of %d + 1",
                    o_val, (unsigned long long)vend, T);
    } else if (o_val_fraction > 0) {
        vbegin = train_end = ntok - (uint64_t)((double)ntok * o_val_fraction);
        vend = ntok;
        if (vend - vbegin < (uint64_t)T + 1)
            cli_die("--val-fraction %g holds out %llu tokens, fewer than one sequence of "
                    "%d + 1", o_val_fraction, (unsigned long long)(vend - vbegin), T);
    }
    if (train_end < (uint64_t)T + 1)
        cli_die("%llu training tokens are fewer than one sequence of %d + 1 (use a "
                "shorter --context or more text)", (unsigned long long)train_end, T);
    int has_val = vend > vbegin;

    llm_batcher *batcher;
    check(llm_batcher_new(data, 0, train_end, T, (uint64_t)o_seed, &batcher));
    uint64_t per_micro = (uint64_t)o_batch * (uint64_t)T;
    int accum = 1;
    if (o_batch_tokens) {
        if ((uint64_t)o_batch_tokens % per_micro)
            cli_usage("--batch-tokens %lld is not a multiple of batch x context = %llu",
                      (long long)o_batch_tokens, (unsigned long long)per_micro);
        accum = (int)((uint64_t)o_batch_tokens / per_micro);
    }
    int64_t total = o_steps;
    if (o_epochs > 0) {
        double seqs = (double)llm_batcher_sequences(batcher) * o_epochs;
        total = (int64_t)ceil(seqs / ((double)o_batch * accum));
    }

    llm_train_params tp;
    llm_train_defaults(&tp);
    tp.batch = o_batch;
    tp.seq_len = T;
    tp.accum = accum;
    check(llm_schedule_parse(o_schedule, &tp.sched.kind));
    tp.sched.lr = o_lr;
    tp.sched.min_lr = o_min_lr >= 0 ? o_min_lr : o_lr / 10;
    tp.sched.warmup = o_warmup < total ? o_warmup : total;
    tp.sched.total = total;
    tp.sched.decay_fraction = o_decay_fraction;
    tp.adamw.beta1 = o_beta1;
    tp.adamw.beta2 = o_beta2;
    tp.adamw.eps = o_adam_eps;
    tp.adamw.weight_decay = o_weight_decay;
    tp.adamw.decay_embedding = o_decay_embeddings;
    tp.clip = o_clip;
    llm_trainer *tr;
    check(llm_trainer_new(m, batcher, &tp, &tr));
    if (o_resume)
        check(llm_trainer_restore(tr, o_resume));

    check_writable(o_output);
    check_writable(o_checkpoint);
    FILE *logf = NULL;
    if (o_log && !(logf = fopen(o_log, "a")))
        cli_die("cannot open '%s': %s", o_log, strerror(errno));

    const void *tokb;
    size_t tokn;
    llm_tok_bytes(tok, &tokb, &tokn);
    llm_save_params sp = { tokb, tokn, 0, NULL };
    int64_t start = llm_model_steps(m);
    if (!o_quiet)
        fprintf(stderr, "llm-train: %lld parameters (%d layers x %d, %d heads, %d kv heads, "
                "FFN %d, context %d, vocabulary %d); %llu training tokens, %llu "
                "sequences of %d; %d thread%s\n",
                (long long)llm_config_params(cfg), cfg->n_layers, cfg->dim, cfg->n_heads,
                cfg->n_kv_heads, cfg->ffn_dim, cfg->context, V,
                (unsigned long long)train_end,
                (unsigned long long)llm_batcher_sequences(batcher), T,
                threads, threads == 1 ? "" : "s");
    if (start >= total && !o_quiet && total > 0)
        fprintf(stderr, "llm-train: the checkpoint is already at step %lld of %lld\n",
                (long long)start, (long long)total);

    signal(SIGINT, on_signal);
    signal(SIGTERM, on_signal);

    /* Validation bookkeeping. */
    double best = INFINITY, last_val = NAN, last_bpb = NAN;
    int bad_evals = 0;
    uint64_t val_bytes = 0;
    llm_eval_result ev;
    double flops_tok = llm_config_flops_per_token(cfg, T);
    double peak = progress ? llm_peak_flops() : 0;

#define EVALUATE(step_)                                                                \
    do {                                                                               \
        check(llm_eval_loss(m, vdata, vbegin, vend, o_batch, T, (uint64_t)o_eval_tokens, \
                            &ev));                                                     \
        if (!val_bytes)                                                                \
            val_bytes = text_bytes(vdata, tok, ev.first, ev.tokens);                   \
        last_val = ev.loss;                                                            \
        last_bpb = val_bytes ? ev.loss * (double)ev.tokens / (double)val_bytes / log(2.0) \
                             : NAN;                                                    \
        if (logf)                                                                      \
            fprintf(logf, "{\"step\":%lld,\"val_loss\":%.6f,\"val_bpb\":%.6f,"         \
                    "\"val_tokens\":%llu}\n", (long long)(step_), ev.loss, last_bpb,    \
                    (unsigned long long)ev.tokens);                                    \
        if (progress && !tty)                                                          \
            fprintf(stderr, "llm-train: step %lld: validation loss %.4f, %.4f bits per " \
                    "byte\n", (long long)(step_), ev.loss, last_bpb);                  \
        if (ev.loss < best) {                                                          \
            best = ev.loss;                                                            \
            bad_evals = 0;                                                             \
            check(llm_model_save(m, o_output, &sp));                                   \
        } else {                                                                       \
            bad_evals++;                                                               \
        }                                                                              \
    } while (0)

    double t0 = now(), tlast = t0;
    int64_t step = start;
    int status = 0;
    const char *why = "done";
    if (step >= total)
        why = "nothing to do";
    uint64_t tokens_done = 0;
    int64_t print_every = total / 20 > 0 ? total / 20 : 1;
    int64_t stop_at = o_until && o_until < total ? o_until : total;
    while (step < stop_at) {
        llm_step_info info;
        int rc = llm_trainer_step(tr, &info);
        if (rc == LLM_ERR_NUMERIC) {
            if (tty)
                fputc('\n', stderr);
            cli_warn("%s", llm_errmsg());
            cli_warn("stopped without saving; the last checkpoint '%s' (if any) is kept",
                     o_checkpoint);
            status = 1;
            why = NULL;
            break;
        }
        check(rc);
        step = info.step;
        tokens_done += info.tokens;
        double t = now();
        double tps = (double)tokens_done / (t - t0);
        if (logf)
            fprintf(logf, "{\"step\":%lld,\"loss\":%.6f,\"lr\":%.6g,\"grad_norm\":%.6f,"
                    "\"tokens\":%llu,\"tokens_per_s\":%.1f,\"elapsed_s\":%.3f}\n",
                    (long long)step, info.loss, info.lr, info.grad_norm,
                    (unsigned long long)info.tokens, tps, t - t0);
        if (has_val && (step % o_eval_every == 0 || step == total))
            EVALUATE(step);
        if (progress && (tty ? t - tlast > 0.2 || step == total : step % print_every == 0
                                                                    || step == total)) {
            char eta[32], val[64] = "";
            fmt_duration(eta, sizeof eta, (double)(total - step) * (t - t0) /
                                              (double)(step - start));
            if (!isnan(last_val))
                snprintf(val, sizeof val, " | val %.4f (%.3f bpb)", last_val, last_bpb);
            fprintf(stderr, "%sstep %lld/%lld | loss %.4f%s | lr %.2e | gnorm %.2f | "
                    "%.0f tok/s | MFU %.0f%% | ETA %s%s", tty ? "\r\033[K" : "",
                    (long long)step, (long long)total, info.loss, val, info.lr,
                    info.grad_norm, tps, peak > 0 ? 100 * tps * flops_tok / peak : 0.0,
                    eta, tty ? "" : "\n");
            tlast = t;
        }
        if (step == stop_at && stop_at < total)
            why = "paused (resume with --resume)";
        if (o_save_every && step % o_save_every == 0 && step < stop_at)
            check(llm_trainer_save(tr, o_checkpoint, tokb, tokn, NULL));
        if (has_val && o_patience && bad_evals >= o_patience) {
            why = "stopped early: no improvement in validation loss";
            break;
        }
        if (o_time_limit > 0 && t - t0 >= o_time_limit) {
            why = "stopped at the time limit";
            if (has_val && step % o_eval_every != 0)
                EVALUATE(step);
            break;
        }
        if (g_stop) {
            why = "interrupted";
            status = 128 + g_stop;
            break;
        }
    }
    if (tty)
        fputc('\n', stderr);
    if (why) {
        check(llm_trainer_save(tr, o_checkpoint, tokb, tokn, NULL));
        /* Without validation, or when nothing was validated yet, the output is
         * the latest model; otherwise it already holds the best one. */
        if (!has_val || isinf(best))
            check(llm_model_save(m, o_output, &sp));
        if (!o_quiet) {
            fprintf(stderr, "llm-train: %s at step %lld; model '%s'", why, (long long)step,
                    o_output);
            if (has_val && !isinf(best))
                fprintf(stderr, " (best validation loss %.4f)", best);
            fprintf(stderr, ", checkpoint '%s'\n", o_checkpoint);
        }
    }
    if (logf && fclose(logf) != 0)
        cli_die("write error on '%s': %s", o_log, strerror(errno));
    llm_trainer_free(tr);
    llm_batcher_free(batcher);
    if (vdata != data)
        llm_data_free(vdata);
    llm_data_free(data);
    llm_model_free(m);
    llm_tok_free(tok);
    free(ckpt_default);
    return status;
}
