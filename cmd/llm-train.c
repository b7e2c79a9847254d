/* llm-train.c: pretrain a Llama-style language model on token files or text,
 * with validation, checkpoints and resume. Options, I/O, progress and the
 * training loop's bookkeeping only; the maths is in lib/ (model.c, train.c). */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <math.h>
#include <spawn.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

extern char **environ;

#include "cli.h"
#include "plot.h"
#include "par.h"

/* Option values, holding their defaults (--help prints them from here). */
static const char *o_model, *o_output, *o_checkpoint, *o_resume, *o_init, *o_log, *o_plot;
static const char *o_val;
static const char *o_task = "lm";
static const char *o_pooling = "last";
static int o_multi_label, o_balance, o_freeze, o_lora, o_dedup, o_override;
static double o_lora_alpha = 8;   /* PEFT's LoraConfig default */
static const char *o_preset = "tiny";
static int o_layers, o_dim, o_heads, o_kv_heads, o_ffn_dim, o_context, o_untied;
static double o_rope_base = 10000, o_norm_eps = 1e-5;
/* Training defaults (steps, warmup, batch, rate, schedule, AdamW, clip)
 * come from the library: library_defaults(). */
static int64_t o_steps, o_batch_tokens, o_save_every, o_eval_every = 100;
static int64_t o_eval_tokens = 16384, o_warmup, o_until;
static double o_epochs, o_val_fraction, o_time_limit, o_autotune;
static double o_save_interval = 600;
static int o_eval_samples = 200;
static int o_batch, o_patience, o_decay_embeddings, o_threads, o_quiet, o_progress;
static int o_plot_only;
static double o_dropout, o_lm_weight, o_label_smoothing;
static double o_lr, o_min_lr = -1, o_weight_decay, o_beta1, o_beta2, o_adam_eps, o_clip,
              o_decay_fraction;
static const char *o_schedule;
static const char *o_device = "cpu", *o_precision = "f32";
static int64_t o_seed = 1;

#define SHAPE "model shape (ignored with --init and --resume): "

/* The choices of --preset and --schedule, the library's names
 * (library_defaults()). */
static char preset_choices[128], schedule_choices[128];

static const cli_opt opts[] = {
    {"model", 'm', CLI_STRING, &o_model, "FILE",
     "tokenizer: a SentencePiece .model or an llm model file (default: the one in "
     "--init or --resume)", NULL, 0, 0, 0, CLI_COMPLETE_FILE, 1},
    {"output", 'o', CLI_STRING, &o_output, "FILE",
     "model file to write (required); with validation, the best model seen", NULL, 0, 0,
     0, CLI_COMPLETE_FILE, 0},
    {"task", 0, CLI_CHOICE, &o_task, "TASK",
     "what to train: a language model, a classifier of labelled lines, or a model that "
     "writes an output for an input (input<TAB>output lines, or JSON Lines with "
     "\"input\" and \"output\")", "lm|classify|pairs", 0, 0, 0, CLI_COMPLETE_CHOICE, 0},
    {"multi-label", 0, CLI_FLAG, &o_multi_label, NULL,
     "classify: each line may carry several labels (comma-separated, or several "
     "__label__ tokens)", NULL, 0, 0, 0, CLI_COMPLETE_NONE, 1},
    {"pooling", 0, CLI_CHOICE, &o_pooling, "HOW",
     "classify: the head reads the final hidden state of the last token (EOS), or the "
     "mean over the document's tokens", "last|mean", 0, 0, 0, CLI_COMPLETE_CHOICE, 0},
    {"balance", 0, CLI_FLAG, &o_balance, NULL,
     "classify: weigh each label's loss inversely to its frequency", NULL, 0, 0, 0,
     CLI_COMPLETE_NONE, 1},
    {"dedup", 0, CLI_FLAG, &o_dedup, NULL,
     "classify: drop each document whose text, folded as llm-eval --leakage folds it, "
     "repeats an earlier one, before validation documents are split off", NULL, 0, 0, 0,
     CLI_COMPLETE_NONE, 1},
    {"freeze", 0, CLI_FLAG, &o_freeze, NULL,
     "classify, with --init: train only the head, keeping that model's weights", NULL, 0,
     0, 0, CLI_COMPLETE_NONE, 1},
    {"lm-weight", 0, CLI_DOUBLE, &o_lm_weight, "X",
     "classify: add X times the documents' own next-token loss to the classifier's "
     "(GPT-1's auxiliary objective: the backbone stays a model of the domain's text; "
     "0: off)", NULL, 0, 1000, 0, CLI_COMPLETE_NONE, 0},
    {"lora", 0, CLI_INT, &o_lora, "R",
     "with --init: train low-rank adapters of rank R on every layer's attention and "
     "feed-forward projections instead of all the weights (default: off)", NULL, 1, 4096, 0,
     CLI_COMPLETE_NONE, 1},
    {"lora-alpha", 0, CLI_DOUBLE, &o_lora_alpha, "X",
     "with --lora: the adapters' outputs are scaled by X / R (as PEFT's lora_alpha)", NULL,
     1e-6, 1e6, 0, CLI_COMPLETE_NONE, 0},
    {"init", 0, CLI_STRING, &o_init, "FILE",
     "start from the weights of this model file instead of random ones", NULL, 0, 0, 0,
     CLI_COMPLETE_FILE, 0},
    {"resume", 0, CLI_STRING, &o_resume, "FILE",
     "continue the run saved in this checkpoint, with its options and data files (given "
     "alone, exactly that run)", NULL, 0, 0, 0, CLI_COMPLETE_FILE, 0},
    {"override", 0, CLI_FLAG, &o_override, NULL,
     "with --resume: accept options or data that differ from the checkpoint's run", NULL,
     0, 0, 0, CLI_COMPLETE_NONE, 1},
    {"checkpoint", 0, CLI_STRING, &o_checkpoint, "FILE",
     "where checkpoints go (default: OUTPUT.ckpt)", NULL, 0, 0, 0, CLI_COMPLETE_FILE, 0},
    {"save-every", 0, CLI_INT64, &o_save_every, "N",
     "also write the checkpoint every N steps (0: not by steps)",
     NULL, 0, 1e12, 0, CLI_COMPLETE_NONE, 0},
    {"save-interval", 0, CLI_DOUBLE, &o_save_interval, "SECONDS",
     "also write the checkpoint when this much time has passed since it was last "
     "written, so that a run killed outright (SIGKILL, power) loses no more (0: not by "
     "time)", NULL, 0, 1e9, 0, CLI_COMPLETE_NONE, 0},
    {"preset", 0, CLI_CHOICE, &o_preset, "NAME",
     SHAPE "tiny ~1M, small 15M, medium 42M, large 110M parameters (with vocabulary 32000)",
     preset_choices, 0, 0, 0, CLI_COMPLETE_CHOICE, 0},
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
     "model shape: longest sequence, and the training sequence length (0: from the preset); "
     "with --init and --resume, the training sequence length only (0: the model's context, "
     "up to 1024)",
     NULL, 0, 1 << 20, 0, CLI_COMPLETE_NONE, 1},
    {"rope-base", 0, CLI_DOUBLE, &o_rope_base, "X", SHAPE "rotary embedding base", NULL,
     1, 1e9, 0, CLI_COMPLETE_NONE, 0},
    {"norm-eps", 0, CLI_DOUBLE, &o_norm_eps, "X", SHAPE "RMSNorm epsilon", NULL, 1e-12,
     1, 0, CLI_COMPLETE_NONE, 0},
    {"untied", 0, CLI_FLAG, &o_untied, NULL,
     SHAPE "give the output projection its own weights instead of the embedding's",
     NULL, 0, 0, 0, CLI_COMPLETE_NONE, 1},
    {"dropout", 0, CLI_DOUBLE, &o_dropout, "P",
     "drop this share of each block's attention and feed-forward outputs while "
     "training, against overfitting small data (0: off)", NULL, 0, 0.9, 0,
     CLI_COMPLETE_NONE, 0},
    {"label-smoothing", 0, CLI_DOUBLE, &o_label_smoothing, "E",
     "train the next-token loss (lm, pairs, and classify's --lm-weight, which it then "
     "needs) against targets that put E of their weight evenly on every token "
     "(translation recipes use 0.1; the losses printed stay the plain cross-entropy; "
     "0: off)", NULL, 0, 0.5, 0, CLI_COMPLETE_NONE, 0},
    {"precision", 0, CLI_CHOICE, &o_precision, "P",
     "matrix products of the weights and (on the CPU) of attention: f32, or bf16: "
     "inputs rounded to bfloat16, sums, weights, gradients and optimiser state in fp32 "
     "(faster on CPUs with AVX512_BF16; may change on --resume)", "f32|bf16", 0, 0, 0,
     CLI_COMPLETE_CHOICE, 0},
    {"steps", 0, CLI_INT64, &o_steps, "N",
     "optimiser steps in all (0: write the initial model; not with --epochs)", NULL, 0,
     1e12, 0, CLI_COMPLETE_NONE, 0},
    {"until", 0, CLI_INT64, &o_until, "N",
     "stop after step N of the run (saving a checkpoint), to --resume later: "
     "training in slices gives the same weights as one run", NULL, 0, 1e12, 0,
     CLI_COMPLETE_NONE, 1},
    {"epochs", 0, CLI_DOUBLE, &o_epochs, "X",
     "train for X passes over the data instead of --steps (not with it)", NULL, 0, 1e6, 0,
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
     "final learning rate of the decay (default: lr / 10; not with --schedule constant)",
     NULL, 0, 10, 0, CLI_COMPLETE_NONE, 1},
    {"warmup", 0, CLI_INT64, &o_warmup, "N", "steps of linear warmup", NULL, 0, 1e12, 0,
     CLI_COMPLETE_NONE, 0},
    {"schedule", 0, CLI_CHOICE, &o_schedule, "NAME",
     "learning rate after warmup (wsd: constant, then linear decay)",
     schedule_choices, 0, 0, 0, CLI_COMPLETE_CHOICE, 0},
    {"decay-fraction", 0, CLI_DOUBLE, &o_decay_fraction, "X",
     "wsd: share of the steps after warmup spent decaying", NULL, 0.001, 1, 0,
     CLI_COMPLETE_NONE, 0},
    {"weight-decay", 0, CLI_DOUBLE, &o_weight_decay, "X",
     "AdamW decoupled weight decay on matrices (never on norms)", NULL, 0, 10, 0,
     CLI_COMPLETE_NONE, 0},
    {"decay-embeddings", 0, CLI_FLAG, &o_decay_embeddings, NULL,
     "apply weight decay to the token embedding too (not with --weight-decay 0, --freeze "
     "or --lora)", NULL, 0, 0, 0, CLI_COMPLETE_NONE, 1},
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
    {"eval-every", 0, CLI_INT64, &o_eval_every, "N",
     "with --val or --val-fraction: validate every N steps", NULL, 1, 1e12, 0,
     CLI_COMPLETE_NONE, 0},
    {"eval-tokens", 0, CLI_INT64, &o_eval_tokens, "N",
     "lm: score at most N held-out tokens per validation (0: all)", NULL, 0, 1e15, 0,
     CLI_COMPLETE_NONE, 0},
    {"eval-samples", 0, CLI_INT, &o_eval_samples, "N",
     "pairs: at each validation also write outputs for the first N held-out inputs "
     "(greedy) and score them by BLEU; the best model is then the one of the best BLEU "
     "(0: validation loss only)", NULL, 0, 1000000, 0, CLI_COMPLETE_NONE, 0},
    {"patience", 0, CLI_INT, &o_patience, "N",
     "stop after N validations without improvement (0: never)", NULL, 0, 1000000, 0,
     CLI_COMPLETE_NONE, 1},
    {"time-limit", 0, CLI_DOUBLE, &o_time_limit, "SECONDS",
     "stop when this much time has passed, validate and save (0: no limit); without "
     "--steps or --epochs the learning-rate schedule is fitted to it", NULL, 0,
     1e9, 0, CLI_COMPLETE_NONE, 1},
    {"autotune", 0, CLI_DOUBLE, &o_autotune, "SECONDS",
     "with neither -m nor --init: search the fine-tuning settings (learning rate, "
     "language-modelling weight, pooling, dropout, epochs) on a held-out tenth, then "
     "train with the best; the whole run stays within SECONDS", NULL, 0, 1e9, 0,
     CLI_COMPLETE_NONE, 1},
    {"seed", 0, CLI_INT64, &o_seed, "N", "seed for weights and data order", NULL, 0,
     9.2e18, 0, CLI_COMPLETE_NONE, 0},
    CLI_OPT_THREADS(&o_threads),
    CLI_OPT_DEVICE(&o_device),
    {"log", 0, CLI_STRING, &o_log, "FILE", "append JSON Lines metrics, one per step and "
     "per validation", NULL, 0, 0, 0, CLI_COMPLETE_FILE, 0},
    {"plot", 0, CLI_STRING, &o_plot, "FILE",
     "draw training and validation loss against step and tokens, with the learning rate, "
     "as SVG when training stops (from the whole --log file when given)", NULL, 0, 0, 0,
     CLI_COMPLETE_FILE, 1},
    {"plot-only", 0, CLI_FLAG, &o_plot_only, NULL,
     "only draw the existing --log file into --plot, without training", NULL, 0, 0, 0,
     CLI_COMPLETE_NONE, 1},
    {"progress", 0, CLI_FLAG, &o_progress, NULL,
     "show progress even when standard error is not a terminal", NULL, 0, 0, 0,
     CLI_COMPLETE_NONE, 1},
    {"quiet", 'q', CLI_FLAG, &o_quiet, NULL, "show no progress and no summary", NULL, 0,
     0, 0, CLI_COMPLETE_NONE, 1},
    CLI_OPT_HELP,
    CLI_OPT_VERSION,
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
/* Classifier input (--task classify): `label<TAB>text` lines (with
 * --multi-label, comma-separated labels), or fastText's `__label__x text`
 * with the labels as the leading tokens. Each line is one document: BOS,
 * its ids, EOS, cut to the context. Labels are numbered in byte order. */

typedef struct {
    char **names;            /* labels, first-seen order while reading */
    int n, cap;
    llm_ids ids;             /* documents' ids, concatenated */
    llm_ids labs;            /* documents' label numbers, concatenated */
    size_t *off, *loff;      /* (ndocs + 1) */
    llm_buf text;            /* documents' texts, concatenated */
    size_t *toff;            /* (ndocs + 1) */
    size_t ndocs, dcap;
    uint64_t truncated;
} cls_raw;

static int label_index(cls_raw *r, const char *s, size_t n, int add)
{
    for (int i = 0; i < r->n; i++)
        if (strlen(r->names[i]) == n && memcmp(r->names[i], s, n) == 0)
            return i;
    if (!add)
        return -1;
    if (r->n == r->cap) {
        r->cap = r->cap ? 2 * r->cap : 16;
        r->names = realloc(r->names, (size_t)r->cap * sizeof *r->names);
        if (!r->names)
            cli_die("out of memory");
    }
    if (!(r->names[r->n] = strndup(s, n)))
        cli_die("out of memory");
    return r->n++;
}

static void raw_doc(cls_raw *r, const llm_ids *doc, const int32_t *lab, size_t nl,
                    const char *text, size_t tn)
{
    if (r->ndocs + 1 >= r->dcap) {
        r->dcap = r->dcap ? 2 * r->dcap : 1024;
        r->off = realloc(r->off, (r->dcap + 1) * sizeof *r->off);
        r->loff = realloc(r->loff, (r->dcap + 1) * sizeof *r->loff);
        r->toff = realloc(r->toff, (r->dcap + 1) * sizeof *r->toff);
        if (!r->off || !r->loff || !r->toff)
            cli_die("out of memory");
        if (r->ndocs == 0)
            r->off[0] = r->loff[0] = r->toff[0] = 0;
    }
    check(llm_buf_append(&r->text, text, tn));
    r->toff[r->ndocs + 1] = r->text.len;
    for (size_t i = 0; i < doc->len; i++)
        check(llm_ids_push(&r->ids, doc->data[i]));
    for (size_t i = 0; i < nl; i++)
        check(llm_ids_push(&r->labs, lab[i]));
    r->ndocs++;
    r->off[r->ndocs] = r->ids.len;
    r->loff[r->ndocs] = r->labs.len;
}

/* Reads one labelled file into r; `add`: new labels allowed (training). */
static void read_labelled(cls_raw *r, const llm_tok *tok, const char *path, int T, int add)
{
    cli_records lr;
    cli_records_open(&lr, path);
    const char *name = lr.name, *line;
    size_t len;
    llm_ids doc = { 0 };
    static int32_t lab[4096];
    static cli_span span[4096];
    while (cli_records_next(&lr, &line, &len)) {
        long long ln = lr.ln;
        size_t nl = 0;
        const char *text, *end = line + len;
        const char *why = cli_split_labelled(line, len, o_multi_label, span,
                                             sizeof span / sizeof span[0], &nl, &text);
        if (why)
            cli_die("'%s', line %lld: %s", name, ln, why);
        for (size_t i = 0; i < nl; i++) {
            int k = label_index(r, span[i].s, span[i].n, add);
            if (k < 0)
                cli_die("'%s', line %lld: label '%.*s' is not among the training "
                        "labels", name, ln, (int)span[i].n, span[i].s);
            lab[i] = k;
        }
        if (nl > 1 && !o_multi_label)
            cli_die("'%s', line %lld: %zu labels on one line (use --multi-label)", name,
                    ln, nl);
        /* The same label twice on a line counts once. */
        size_t u = 0;
        for (size_t i = 0; i < nl; i++) {
            size_t j = 0;
            while (j < u && lab[j] != lab[i])
                j++;
            if (j == u)
                lab[u++] = lab[i];
        }
        int tr;
        if (llm_cls_encode(tok, text, (size_t)(end - text), T, &doc, &tr))
            cli_die("'%s', line %lld: %s", name, ln, llm_errmsg());
        r->truncated += (uint64_t)tr;
        raw_doc(r, &doc, lab, u, text, (size_t)(end - text));
    }
    cli_records_close(&lr);
    llm_ids_free(&doc);
}

static const cls_raw *g_sort_raw;

static int cmp_label(const void *a, const void *b)
{
    return strcmp(g_sort_raw->names[*(const int *)a], g_sort_raw->names[*(const int *)b]);
}

/* The documents [from, to) of r, with labels renumbered by `map`, into d. */
static void raw_to_data(const cls_raw *r, const size_t *pick, size_t n, const int *map,
                        llm_cls_data *d)
{
    int32_t lab[4096];
    for (size_t j = 0; j < n; j++) {
        size_t i = pick ? pick[j] : j;
        size_t nl = r->loff[i + 1] - r->loff[i];
        for (size_t k = 0; k < nl; k++)
            lab[k] = map[r->labs.data[r->loff[i] + k]];
        check(llm_cls_data_add(d, r->ids.data + r->off[i], r->off[i + 1] - r->off[i], lab,
                               nl));
    }
}

static int cmp_sz(const void *a, const void *b)
{
    size_t x = *(const size_t *)a, y = *(const size_t *)b;
    return x < y ? -1 : x > y;
}

static void raw_free(cls_raw *r)
{
    for (int i = 0; i < r->n; i++)
        free(r->names[i]);
    free(r->names);
    llm_ids_free(&r->ids);
    llm_ids_free(&r->labs);
    free(r->off);
    free(r->loff);
    free(r->toff);
    llm_buf_free(&r->text);
}

/* --dedup: the first n documents of r less those whose folded text repeats
 * an earlier one's; @return how many remain. */
static size_t raw_dedup(cls_raw *r, size_t n)
{
    llm_leak *x;   /* exact duplicates: equal folded texts */
    check(llm_leak_new(1.0, &x));
    for (size_t i = 0; i < n; i++)
        check(llm_leak_add_test(x, r->text.data + r->toff[i], r->toff[i + 1] - r->toff[i]));
    check(llm_leak_index(x));
    for (size_t i = 0; i < n; i++)
        check(llm_leak_scan(x, r->text.data + r->toff[i], r->toff[i + 1] - r->toff[i],
                            (int64_t)i));
    /* Document i is a repeat when its best exact match is an earlier one
     * (the first scanned wins, and every document matches itself). */
    size_t k = 0, ids = 0, labs = 0, txt = 0;
    for (size_t i = 0; i < n; i++) {
        const llm_leak_match *m = llm_leak_result(x, i);
        size_t ti = r->toff[i + 1] - r->toff[i];
        if (m->exact && m->train_id < (int64_t)i && ti)
            continue;
        size_t ni = r->off[i + 1] - r->off[i], li = r->loff[i + 1] - r->loff[i];
        memmove(r->ids.data + ids, r->ids.data + r->off[i], ni * sizeof *r->ids.data);
        memmove(r->labs.data + labs, r->labs.data + r->loff[i], li * sizeof *r->labs.data);
        memmove(r->text.data + txt, r->text.data + r->toff[i], ti);
        r->off[k] = ids;
        r->loff[k] = labs;
        r->toff[k] = txt;
        ids += ni;
        labs += li;
        txt += ti;
        k++;
    }
    /* The documents after the first n (--val's) move down behind them. */
    size_t rest = r->ndocs - n;
    size_t ni = r->off[r->ndocs] - r->off[n], li = r->loff[r->ndocs] - r->loff[n],
           ti = r->toff[r->ndocs] - r->toff[n];
    size_t o0 = r->off[n], l0 = r->loff[n], t0 = r->toff[n];
    for (size_t j = 0; j <= rest; j++) {
        r->off[k + j] = ids + (r->off[n + j] - o0);
        r->loff[k + j] = labs + (r->loff[n + j] - l0);
        r->toff[k + j] = txt + (r->toff[n + j] - t0);
    }
    memmove(r->ids.data + ids, r->ids.data + o0, ni * sizeof *r->ids.data);
    memmove(r->labs.data + labs, r->labs.data + l0, li * sizeof *r->labs.data);
    memmove(r->text.data + txt, r->text.data + t0, ti);
    r->ids.len = ids + ni;
    r->labs.len = labs + li;
    r->text.len = txt + ti;
    r->ndocs = k + rest;
    llm_leak_free(x);
    return k;
}

/* How many of the n test documents of x have an exact match, and a near one. */
static void leak_counts(const llm_leak *x, size_t n, size_t *exact, size_t *near)
{
    *exact = *near = 0;
    for (size_t j = 0; j < n; j++) {
        const llm_leak_match *m = llm_leak_result(x, j);
        *exact += m->train_id >= 0 && m->exact;
        *near += m->train_id >= 0 && !m->exact;
    }
}

/* A warning when validation documents (val, nv of them) also occur in the
 * training documents (train, nt), exactly or nearly (llm-eval --leakage's
 * rules): their scores would flatter the model. */
static void warn_overlap(const cls_raw *r, const size_t *val, size_t nv, const size_t *train,
                         size_t nt, const char *what)
{
    llm_leak *x;
    check(llm_leak_new(0.8, &x));
    for (size_t j = 0; j < nv; j++) {
        size_t i = val[j];
        check(llm_leak_add_test(x, r->text.data + r->toff[i], r->toff[i + 1] - r->toff[i]));
    }
    check(llm_leak_index(x));
    for (size_t j = 0; j < nt; j++) {
        size_t i = train[j];
        check(llm_leak_scan(x, r->text.data + r->toff[i], r->toff[i + 1] - r->toff[i],
                            (int64_t)j));
    }
    size_t exact, near;
    leak_counts(x, nv, &exact, &near);
    if (exact + near)
        cli_warn("warning: %zu of %zu %s are also in the training data (%zu exact, %zu "
                 "near, after folding case, Unicode forms and punctuation), so validation "
                 "flatters the model; %s'llm-eval --leakage' lists them",
                 exact + near, nv, what, exact, near,
                 o_val ? "" : "--dedup drops exact repeats before the split; ");
    llm_leak_free(x);
}

/* A warning when a tenth or more of the language-model validation tokens'
 * 13-grams (val [v0, v1), at most its first 2^20 tokens) occur in the
 * training tokens (train [t0, t1)): llm-eval --leakage -m's contamination
 * measure. Read in chunks of 2^20 tokens that overlap by 12. */
static void warn_lm_overlap(const llm_data *train, uint64_t t0, uint64_t t1,
                            const llm_data *val, uint64_t v0, uint64_t v1, const char *what)
{
    enum { N = 13, CHUNK = 1 << 20 };
    if (v1 - v0 > CHUNK)
        v1 = v0 + CHUNK;
    if (v1 - v0 < N || t1 - t0 < N)
        return;
    int32_t *buf = malloc((CHUNK + N - 1) * sizeof *buf);
    if (!buf)
        cli_die("out of memory");
    llm_ngrams *g;
    check(llm_ngrams_new(N, &g));
    check(llm_data_read(val, v0, (size_t)(v1 - v0), buf));
    check(llm_ngrams_add(g, buf, (size_t)(v1 - v0), 0));
    llm_ngrams_index(g);
    for (uint64_t s = t0; s + N <= t1; s += CHUNK) {
        size_t n = (size_t)(t1 - s < CHUNK + N - 1 ? t1 - s : CHUNK + N - 1);
        check(llm_data_read(train, s, n, buf));
        llm_ngrams_scan(g, buf, n);
    }
    uint64_t total, found;
    llm_ngrams_counts(g, 0, &total, &found);
    if (total && found * 10 >= total)
        cli_warn("warning: %llu of %llu %d-token sequences of the %s (%.1f%%) also occur in "
                 "the training data, so validation loss flatters the model; 'llm-eval "
                 "--leakage TRAIN -m MODEL' measures it per file",
                 (unsigned long long)found, (unsigned long long)total, N, what,
                 100.0 * (double)found / (double)total);
    llm_ngrams_free(g);
    free(buf);
}

/* The training and validation documents: --val's, or a seeded random
 * --val-fraction of the training ones (both parts in file order), or none;
 * labels renumbered by map. */
static void cls_split(const cls_raw *r, size_t ntrain, const int *map, int K, llm_cls_data **train,
                      llm_cls_data **val)
{
    check(llm_cls_data_new(K, train));
    *val = NULL;
    if (o_val) {
        if (r->ndocs == ntrain)
            cli_die("'%s': no labelled documents", o_val);
        check(llm_cls_data_new(K, val));
        raw_to_data(r, NULL, ntrain, map, *train);
        size_t *pick = malloc((r->ndocs - ntrain) * sizeof *pick);
        if (!pick)
            cli_die("out of memory");
        for (size_t i = ntrain; i < r->ndocs; i++)
            pick[i - ntrain] = i;
        raw_to_data(r, pick, r->ndocs - ntrain, map, *val);
        size_t *all = malloc(ntrain * sizeof *all);
        if (!all)
            cli_die("out of memory");
        for (size_t i = 0; i < ntrain; i++)
            all[i] = i;
        warn_overlap(r, pick, r->ndocs - ntrain, all, ntrain, "--val documents");
        free(all);
        free(pick);
    } else if (o_val_fraction > 0) {
        size_t nv = (size_t)((double)ntrain * o_val_fraction);
        if (nv < 1 || nv >= ntrain)
            cli_die("--val-fraction %g of %zu documents leaves no validation or no training "
                    "documents", o_val_fraction, ntrain);
        size_t *perm = malloc(ntrain * sizeof *perm);
        if (!perm)
            cli_die("out of memory");
        llm_rng rng;
        llm_rng_seed(&rng, (uint64_t)o_seed ^ 0x76616c6964ULL);
        llm_rng_permutation(&rng, perm, ntrain);
        /* Both parts keep the file order. */
        qsort(perm, nv, sizeof *perm, cmp_sz);
        qsort(perm + nv, ntrain - nv, sizeof *perm, cmp_sz);
        check(llm_cls_data_new(K, val));
        raw_to_data(r, perm, nv, map, *val);
        raw_to_data(r, perm + nv, ntrain - nv, map, *train);
        warn_overlap(r, perm, nv, perm + nv, ntrain - nv, "validation documents");
        free(perm);
    } else {
        raw_to_data(r, NULL, ntrain, map, *train);
    }
}

/* Reads the labelled inputs; gives the model its head (or checks the one it
 * has); splits off the validation documents. */
static void cls_prepare(const llm_tok *tok, llm_model *m, int T, int first, int argc,
                        char **argv, llm_cls_data **train, llm_cls_data **val,
                        float **weights)
{
    cls_raw r = { 0 };
    if (first >= argc)
        read_labelled(&r, tok, NULL, T, 1);
    for (int i = first; i < argc; i++)
        read_labelled(&r, tok, argv[i], T, 1);
    if (r.ndocs == 0)
        cli_die("no labelled documents in %s", first >= argc ? "standard input" : "the input");
    uint64_t tr_train = r.truncated;
    size_t ntrain = r.ndocs;
    if (o_val)
        read_labelled(&r, tok, o_val, T, 0);
    if (o_dedup) {
        size_t kept = raw_dedup(&r, ntrain);
        if (!o_quiet && kept < ntrain)
            fprintf(stderr, "llm-train: --dedup: dropped %zu of %zu documents that repeat an "
                    "earlier one\n", ntrain - kept, ntrain);
        ntrain = kept;
    }
    int K = r.n;
    if (K < 2 && !o_multi_label)
        cli_die("only one label ('%s') in the training data: a classifier needs two or more",
                r.names[0]);
    int *order = malloc((size_t)K * sizeof *order), *map = malloc((size_t)K * sizeof *map);
    const char **names = malloc((size_t)K * sizeof *names);
    if (!order || !map || !names)
        cli_die("out of memory");
    for (int i = 0; i < K; i++)
        order[i] = i;
    g_sort_raw = &r;
    qsort(order, (size_t)K, sizeof *order, cmp_label);
    for (int i = 0; i < K; i++) {
        map[order[i]] = i;
        names[i] = r.names[order[i]];
    }
    /* The head: a classifier with these labels keeps its own (resume, or
     * --init from a classifier of the same labels); anything else gets a
     * fresh one. */
    int same = llm_model_n_labels(m) == K && llm_model_multi_label(m) == o_multi_label &&
               strcmp(llm_pooling_name(llm_model_pooling(m)), o_pooling) == 0;
    for (int i = 0; same && i < K; i++)
        same = strcmp(llm_model_label(m, i), names[i]) == 0;
    if (o_resume && !same)
        cli_die("'%s' is not a classifier of these labels and options (--multi-label, "
                "--pooling)", o_resume);
    if (!same) {
        llm_head_params hp = { K, names, o_multi_label, LLM_POOL_LAST };
        check(llm_pooling_parse(o_pooling, &hp.pooling));
        int rc = llm_model_add_head(m, &hp, (uint64_t)o_seed);
        if (rc == LLM_ERR_INVALID)
            cli_die("the training data: %s", llm_errmsg());
        check(rc);
    }
    cls_split(&r, ntrain, map, K, train, val);
    /* --balance: weights inverse to frequency, 1 on average (single-label);
     * multi-label: each label's negatives over its positives (pos_weight). */
    *weights = NULL;
    if (o_balance) {
        if (!(*weights = malloc((size_t)K * sizeof **weights)))
            cli_die("out of memory");
        check(llm_cls_class_weights(*train, o_multi_label, *weights));
    }
    if (!o_quiet) {
        fprintf(stderr, "llm-train: %zu training documents", llm_cls_data_count(*train));
        if (*val)
            fprintf(stderr, ", %zu validation documents", llm_cls_data_count(*val));
        fprintf(stderr, ", %d labels%s", K, o_multi_label ? " (multi-label)" : "");
        if (tr_train || r.truncated > tr_train)
            fprintf(stderr, "; %llu truncated to the context of %d tokens",
                    (unsigned long long)r.truncated, T);
        fputc('\n', stderr);
    }
    free(order);
    free(map);
    free(names);
    raw_free(&r);
}

/* After training: temperature (and multi-label thresholds) fitted on the
 * validation documents with the best model, which is saved again. */
static void cls_calibrate(const char *path, const llm_cls_data *val,
                          const llm_save_params *sp)
{
    llm_model *b;
    check(llm_model_load(path, o_device, &b));
    int K = llm_model_n_labels(b);
    size_t n = llm_cls_data_count(val);
    float *z = malloc(n * (size_t)K * sizeof *z), *thr = malloc((size_t)K * sizeof *thr);
    if (!z || !thr)
        cli_die("out of memory");
    llm_cls_eval_result r;
    check(llm_cls_eval(b, val, o_batch, z, &r));
    double temp;
    check(llm_cls_fit_temperature(b, z, val, &temp));
    check(llm_model_set_calibration(b, temp, NULL));
    if (llm_model_multi_label(b)) {
        llm_cls_probs(b, z, n, z);
        check(llm_cls_tune_thresholds(b, z, val, thr));
        check(llm_model_set_calibration(b, temp, thr));
    }
    check(llm_model_save(b, path, sp));
    if (!o_quiet)
        fprintf(stderr, "llm-train: calibrated on %zu validation documents: temperature "
                "%.4g%s\n", n, temp, llm_model_multi_label(b) ? ", per-label thresholds" : "");
    free(z);
    free(thr);
    llm_model_free(b);
}


/* ------------------------------------------------------------------------ */
/* Input -> output pairs (--task pairs). */

typedef struct {
    llm_pairs *d;
    char **ref;            /* held-out outputs, for the sample's BLEU */
    char **in;             /* inputs, for the overlap warning (then freed) */
    size_t nref;           /* entries of ref, and of in while it is kept */
    size_t packed;         /* pairs in the rows: those not left out */
} pairs_set;

static void free_texts(char ***t, size_t n)
{
    for (size_t i = 0; *t && i < n; i++)
        free((*t)[i]);
    free(*t);
    *t = NULL;
}

static void pairs_set_free(pairs_set *p)
{
    llm_pairs_free(p->d);
    free_texts(&p->ref, p->nref);
    free_texts(&p->in, p->nref);
    memset(p, 0, sizeof *p);
}

/* Reads a pairs file into p, keeping the text of every input and output. */
static void read_pairs(const llm_model *m, const llm_tok *tok, const char *path, pairs_set *p)
{
    FILE *f = cli_open(path);
    const char *name = !path || strcmp(path, "-") == 0 ? "(standard input)" : path;
    llm_lines *lr;
    check(llm_lines_open(f, &lr));
    const char *line;
    size_t len, cap = p->nref;
    int rc;
    llm_buf in = { 0 }, out = { 0 };
    llm_ids ids = { 0 };
    while ((rc = llm_lines_next(lr, &line, &len)) == 1) {
        long long ln = (long long)llm_lines_number(lr);
        if (len == 0 || (len == 1 && line[0] == '\r'))
            continue;
        if (llm_pairs_parse(line, len, &in, &out))
            cli_die("'%s', line %lld: %s", name, ln, llm_errmsg());
        ids.len = 0;
        size_t np;
        if (llm_pairs_encode(m, tok, in.data, in.len, out.data, out.len, &ids, &np))
            cli_die("'%s', line %lld: %s", name, ln, llm_errmsg());
        check(llm_pairs_add(p->d, ids.data, ids.len, np));
        if (p->nref == cap) {
            cap = cap ? 2 * cap : 1024;
            char **nr = realloc(p->ref, cap * sizeof *nr);
            if (!nr)
                cli_die("out of memory");
            p->ref = nr;
            if (!(nr = realloc(p->in, cap * sizeof *nr)))
                cli_die("out of memory");
            p->in = nr;
        }
        p->ref[p->nref] = strdup(out.data);
        p->in[p->nref] = strdup(in.data);
        if (!p->ref[p->nref] || !p->in[p->nref])
            cli_die("out of memory");
        p->nref++;
    }
    if (rc < 0)
        cli_die("'%s': %s", name, llm_errmsg());
    llm_lines_free(lr);
    cli_close(f);
    llm_buf_free(&in);
    llm_buf_free(&out);
    llm_ids_free(&ids);
}

/* Moves example i of `from` (and its texts) into `to`. */
static void pairs_take(const pairs_set *from, size_t i, pairs_set *to)
{
    const int32_t *ids;
    size_t n, np;
    llm_pairs_example(from->d, i, &ids, &n, &np);
    check(llm_pairs_add(to->d, ids, n, np));
    to->in[to->nref] = from->in[i];
    to->ref[to->nref++] = from->ref[i];
}

/* A warning when validation inputs also occur among the training inputs,
 * exactly or nearly (llm-eval --leakage --task pairs's rules): a model that
 * has seen an input has had the chance to learn its answer. */
static void pairs_overlap_say(const pairs_set *train, const pairs_set *val, const char *what)
{
    llm_leak *x;
    check(llm_leak_new(0.8, &x));
    for (size_t j = 0; j < val->nref; j++)
        check(llm_leak_add_test(x, val->in[j], strlen(val->in[j])));
    check(llm_leak_index(x));
    for (size_t j = 0; j < train->nref; j++)
        check(llm_leak_scan(x, train->in[j], strlen(train->in[j]), (int64_t)j));
    size_t exact, near;
    leak_counts(x, val->nref, &exact, &near);
    if (exact + near)
        cli_warn("warning: %zu of %zu %s have their input among the training inputs (%zu "
                 "exact, %zu near, after folding case, Unicode forms and punctuation), so "
                 "validation flatters the model; 'llm-eval --leakage TRAIN --task pairs' "
                 "lists them", exact + near, val->nref, what, exact, near);
    llm_leak_free(x);
}

/* Packs `d` in rows of T and says how many of its pairs were too long:
 * those whose input lost its start, and those left out, their output and
 * EOS alone filling T. */
static void pairs_pack_say(pairs_set *p, int T, int shuffle, const char *what)
{
    llm_pairs *d = p->d;
    size_t dropped, cut;
    check(llm_pairs_pack(d, T, shuffle, (uint64_t)o_seed, &dropped, &cut));
    p->packed = llm_pairs_count(d) - dropped;
    if (cut && !o_quiet)
        cli_warn("%zu of %zu %s pairs are longer than %d tokens: their inputs are "
                 "truncated on the left", cut, llm_pairs_count(d), what, T);
    if (dropped && !o_quiet)
        cli_warn("%zu of %zu %s pairs are left out: their outputs and EOS fill rows of %d "
                 "tokens", dropped, llm_pairs_count(d), what, T);
}

/* The training and validation pairs (--val, or a seeded --val-fraction of
 * the training lines), the training set packed in rows of T. */
static void pairs_prepare(const llm_model *m, const llm_tok *tok, int T, int first, int argc,
                          char **argv, pairs_set *train, pairs_set *val)
{
    pairs_set all = { 0 };
    check(llm_pairs_new(&all.d));
    if (first >= argc)
        read_pairs(m, tok, NULL, &all);
    for (int i = first; i < argc; i++)
        read_pairs(m, tok, argv[i], &all);
    size_t n = llm_pairs_count(all.d);
    if (n == 0)
        cli_die("no input<TAB>output pairs in %s", first >= argc ? "standard input" : "the input");
    if (o_val) {
        *train = all;
        check(llm_pairs_new(&val->d));
        read_pairs(m, tok, o_val, val);
        if (llm_pairs_count(val->d) == 0)
            cli_die("'%s': no validation pairs", o_val);
    } else if (o_val_fraction > 0) {
        size_t nv = (size_t)((double)n * o_val_fraction);
        if (nv == 0 || nv == n)
            cli_die("--val-fraction %g of %zu pairs leaves %s", o_val_fraction, n,
                    nv ? "none to train on" : "none to validate on");
        size_t *perm = malloc(n * sizeof *perm);
        unsigned char *held = calloc(n, 1);
        if (!perm || !held)
            cli_die("out of memory");
        llm_rng r;
        llm_rng_seed(&r, (uint64_t)o_seed ^ 0x243f6a8885a308d3ULL);
        llm_rng_permutation(&r, perm, n);
        for (size_t i = 0; i < nv; i++)
            held[perm[i]] = 1;
        check(llm_pairs_new(&train->d));
        check(llm_pairs_new(&val->d));
        train->ref = malloc(n * sizeof *train->ref);
        val->ref = malloc(n * sizeof *val->ref);
        train->in = malloc(n * sizeof *train->in);
        val->in = malloc(n * sizeof *val->in);
        if (!train->ref || !val->ref || !train->in || !val->in)
            cli_die("out of memory");
        for (size_t i = 0; i < n; i++)   /* file order within each set */
            pairs_take(&all, i, held[i] ? val : train);
        llm_pairs_free(all.d);
        free(all.ref);
        free(all.in);
        free(perm);
        free(held);
    } else {
        *train = all;
    }
    if (val->d)
        pairs_overlap_say(train, val, o_val ? "--val pairs" : "validation pairs");
    /* Training needs no texts; validation, its outputs. */
    free_texts(&train->ref, train->nref);
    free_texts(&train->in, train->nref);
    train->nref = 0;
    free_texts(&val->in, val->nref);
    pairs_pack_say(train, T, 1, "training");
    if (llm_pairs_rows(train->d) == 0)
        cli_die("no training pair fits %d tokens", T);
    if (val->d)   /* in file order, as llm_pairs_eval() keeps it */
        pairs_pack_say(val, T, 0, "validation");
}

/* Greedy outputs for the first `n` held-out inputs, scored by corpus BLEU
 * against their references. */
static double pairs_sample_bleu(llm_model *m, const llm_tok *tok, const pairs_set *val, int n,
                                int B)
{
    if ((size_t)n > llm_pairs_count(val->d))
        n = (int)llm_pairs_count(val->d);
    int ctx = llm_model_config(m)->context, eos = llm_tok_eos_id(tok);
    llm_session *s;
    check(llm_session_new(m, B, &s));
    llm_text_metrics *tm;
    check(llm_text_metrics_new(&tm));
    const int32_t **pr = malloc((size_t)B * sizeof *pr);
    size_t *lens = malloc((size_t)B * sizeof *lens);
    llm_ids *outs = calloc((size_t)B, sizeof *outs);
    llm_buf text = { 0 };
    if (!pr || !lens || !outs)
        cli_die("out of memory");
    for (int i0 = 0; i0 < n; i0 += B) {
        int k = n - i0 < B ? n - i0 : B, go = 0;
        int idx[4096];
        for (int i = 0; i < k; i++) {
            size_t np;
            llm_pairs_example(val->d, (size_t)(i0 + i), &pr[go], NULL, &np);
            if (np + 1 >= (size_t)ctx) {   /* keep its end, as llm-generate would */
                size_t keep = (size_t)(ctx - (ctx / 2 < 128 ? ctx / 2 : 128));
                pr[go] += np - keep;
                np = keep;
            }
            lens[go] = np;
            idx[go++] = i;
            outs[go - 1].len = 0;
        }
        int maxt = ctx;
        for (int i = 0; i < go; i++)
            maxt = ctx - (int)lens[i] < maxt ? ctx - (int)lens[i] : maxt;
        llm_beam_params bp = { 1, 1.0, maxt - 1 < 256 ? maxt - 1 : 256 };
        if (go)
            check(llm_beam_search(s, pr, lens, go, eos, &bp, outs, NULL, NULL));
        for (int i = 0, g = 0; i < k; i++) {
            text.len = 0;
            check(llm_buf_append(&text, "", 0));
            if (g < go && idx[g] == i) {
                check(llm_tok_decode(tok, outs[g].data, outs[g].len, &text));
                g++;
            }
            const char *ref = val->ref[i0 + i];
            check(llm_text_metrics_add(tm, ref, strlen(ref), text.data, text.len));
        }
    }
    llm_text_metrics_result res;
    check(llm_text_metrics_summary(tm, &res));
    for (int i = 0; i < B; i++)
        llm_ids_free(&outs[i]);
    free(outs);
    free(pr);
    free(lens);
    llm_buf_free(&text);
    llm_text_metrics_free(tm);
    llm_session_free(s);
    return res.bleu;
}

/* One validation of a pairs model: the loss over every held-out pair and,
 * with --eval-samples, the BLEU of the first ones' greedy outputs, logged
 * and shown. An evaluation that improves neither resets no patience.
 * @return the key the best model is chosen by (lower is better). */
static double pairs_evaluate(llm_model *m, const llm_tok *tok, const pairs_set *val, int T,
                             int64_t step, FILE *logf, int say, double *last_val,
                             double *last_bleu, double *best_loss, double *best_bleu,
                             int *bad_evals)
{
    llm_pairs_eval_result r;
    check(llm_pairs_eval(m, val->d, o_batch, T, &r));
    double bleu = o_eval_samples ? pairs_sample_bleu(m, tok, val, o_eval_samples,
                                                     o_batch * 4 < 64 ? o_batch * 4 : 64)
                                 : NAN;
    *last_val = r.loss;
    *last_bleu = bleu;
    if (logf) {
        fprintf(logf, "{\"step\":%lld,\"val_loss\":%.6f,", (long long)step, r.loss);
        if (o_eval_samples)
            fprintf(logf, "\"val_bleu\":%.4f,", bleu);
        fprintf(logf, "\"val_pairs\":%zu,\"val_tokens\":%llu}\n", r.examples,
                (unsigned long long)r.tokens);
    }
    if (say && o_eval_samples)
        fprintf(stderr, "llm-train: step %lld: validation loss %.4f, sample BLEU %.2f\n",
                (long long)step, r.loss, bleu);
    else if (say)
        fprintf(stderr, "llm-train: step %lld: validation loss %.4f\n", (long long)step,
                r.loss);
    int better = 0;
    if (r.loss < *best_loss) {
        *best_loss = r.loss;
        better = 1;
    }
    if (o_eval_samples && bleu > *best_bleu) {
        *best_bleu = bleu;
        better = 1;
    }
    *bad_evals = better ? 0 : *bad_evals + 1;
    return o_eval_samples ? -bleu + 1e-9 * r.loss : r.loss;
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

/* Do all ranks hold the same weights? A 64-bit FNV-1a hash of the bytes,
 * compared by its minimum and maximum over the ranks. */
static int same_weights(const llm_model *m)
{
    uint64_t h = 0xcbf29ce484222325ULL;
    llm_param p;
    for (size_t i = 0; i < llm_model_param_count(m); i++) {
        check(llm_model_param_at(m, i, &p));
        float *f = malloc((p.numel ? p.numel : 1) * sizeof *f);
        if (!f)
            cli_die("out of memory");
        check(llm_model_param_read(m, i, LLM_PARAM_DATA, f));
        const unsigned char *b = (const unsigned char *)f;
        for (size_t j = 0; j < p.numel * sizeof *f; j++)
            h = (h ^ b[j]) * 0x100000001b3ULL;
        free(f);
    }
    return par_max_u64(h) == par_min_u64(h);
}

/* Can we create files next to `path`? Checked before hours of training,
 * without creating any: mpirun kills a rank whose peer died at any point. */
static void check_writable(const char *path)
{
    int e = llm_can_write_beside(path);
    if (e)
        cli_die("cannot write '%s': %s", path, strerror(e));
}

/* Floats of the adapters (tensors named *.lora_a / *.lora_b). */
static size_t lora_params(const llm_model *m)
{
    size_t n = 0;
    llm_param p;
    for (size_t i = 0; i < llm_model_param_count(m); i++)
        if (llm_model_param_at(m, i, &p) == LLM_OK && strstr(p.name, ".lora_"))
            n += p.numel;
    return n;
}

/* ------------------------------------------------------------------------ */
/* The run in the checkpoint: every option that defines it ("run.--NAME"),
 * and its data files with their sizes and hashes ("run.input.I", ".size",
 * ".hash"), so that --resume CKPT alone continues exactly that run. */

/* Whether `name` is one of the NULL-ended `list`. */
static int among(const char *name, const char *const *list)
{
    for (int i = 0; list[i]; i++)
        if (strcmp(name, list[i]) == 0)
            return 1;
    return 0;
}

/* Options of this process only: never stored; given or not, they apply. */
static int transient(const cli_opt *o)
{
    static const char *const names[] = {"resume", "override", "time-limit", "progress",
                                        "quiet", "until", "init", "model", "plot",
                                        "plot-only", "autotune", "help", "version", NULL};
    return among(o->name, names);
}

/* Stored and restored, but free to change when resuming (another thread
 * count, device or precision continues the run with other roundings: not
 * the same bytes). */
static int changeable(const cli_opt *o)
{
    static const char *const names[] = {"output", "checkpoint", "threads", "save-every",
                                        "save-interval", "log", "device", "precision",
                                        NULL};
    return among(o->name, names);
}

/* What --override changed of the validation (an option's name, or the
 * data its held-out part comes from), or NULL: the run's best score,
 * measured on other validation, then starts anew. */
static const char *run_val_changed;

static int validation_option(const cli_opt *o)
{
    static const char *const names[] = {"val", "val-fraction", "eval-tokens", "eval-samples",
                                        "seed", "task", NULL};
    return among(o->name, names);
}

/* The run in the checkpoint was to fit its schedule to --time-limit and
 * stopped before it had ("run.fit": "pending"). */
static int run_fit_pending;
static int fit_marked;   /* and this run's are so far */

static char **run_meta;   /* key, value, ..., NULL: the checkpoint's extra */
static unsigned char run_restored[256];   /* by option index: set from the checkpoint */
static unsigned char run_restated[256];   /* by option index: given as the run had it */
static char *run_defaults[256];   /* by option index: the default's string, or NULL */
static size_t run_n, run_cap;

/* Sets key to val, replacing the value it has. */
static void run_put(const char *key, const char *val)
{
    for (size_t i = 0; i < run_n; i += 2)
        if (strcmp(run_meta[i], key) == 0) {
            free(run_meta[i + 1]);
            if (!(run_meta[i + 1] = strdup(val)))
                cli_die("out of memory");
            return;
        }
    if (run_n + 3 > run_cap) {
        run_cap = run_cap ? 2 * run_cap : 64;
        run_meta = realloc(run_meta, run_cap * sizeof *run_meta);
        if (!run_meta)
            cli_die("out of memory");
    }
    run_meta[run_n++] = strdup(key);
    run_meta[run_n++] = strdup(val);
    run_meta[run_n] = NULL;
    if (!run_meta[run_n - 1] || !run_meta[run_n - 2])
        cli_die("out of memory");
}

static void run_record(int first, int argc, char **argv)
{
    char key[96], val[4096];
    for (int i = 0; i < prog.nopts; i++) {
        const cli_opt *o = &prog.opts[i];
        /* What was given (or restored); defaults stay defaults. */
        if (transient(o) || !(cli_given(o->dest) || run_restored[i]) ||
            !cli_opt_string(o, val, sizeof val))
            continue;
        snprintf(key, sizeof key, "run.--%s", o->name);
        run_put(key, val);
    }
    int n = argc - first;
    snprintf(val, sizeof val, "%d", n > 0 ? n : 1);
    run_put("run.inputs", val);
    for (int i = 0; i < (n > 0 ? n : 1); i++) {
        const char *path = n > 0 ? argv[first + i] : "-";
        snprintf(key, sizeof key, "run.input.%d", i);
        run_put(key, path);
        if (strcmp(path, "-") == 0)
            continue;   /* standard input: nothing to check on resume */
        uint64_t size, hash;
        check(llm_file_digest(path, &size, &hash));
        snprintf(key, sizeof key, "run.input.%d.size", i);
        snprintf(val, sizeof val, "%llu", (unsigned long long)size);
        run_put(key, val);
        snprintf(key, sizeof key, "run.input.%d.hash", i);
        snprintf(val, sizeof val, "%016llx", (unsigned long long)hash);
        run_put(key, val);
    }
}

/* --resume: the checkpoint's options where none is given, a refusal where
 * one given differs (but for the changeable ones, or with --override), its
 * data files when none are given, and a refusal when they changed. A
 * checkpoint written before runs were recorded resumes on the options given. */
static void run_apply(const char *ckpt, int *first, int *argc, char ***argv)
{
    llm_st *f;
    if (llm_model_format(ckpt) != LLM_FORMAT_LLM)
        cli_die("'%s' is a pretrained model, not a training checkpoint (--init starts from "
                "it)", ckpt);
    check(llm_st_open(ckpt, &f));
    const char *ninp = llm_st_meta(f, "run.inputs");
    if (!ninp) {
        int ckpt_ok = llm_st_meta(f, "train.epoch") != NULL;
        llm_st_close(f);
        if (!ckpt_ok)
            cli_die("'%s': not a training checkpoint (no data position; is it a final model "
                    "file?)", ckpt);
        return;
    }
    const char *fit = llm_st_meta(f, "run.fit");
    run_fit_pending = fit && strcmp(fit, "pending") == 0;
    char key[96], cur[4096];
    for (int i = 0; i < prog.nopts; i++) {
        const cli_opt *o = &prog.opts[i];
        if (transient(o))
            continue;
        snprintf(key, sizeof key, "run.--%s", o->name);
        const char *was = llm_st_meta(f, key);
        if (!cli_given(o->dest)) {
            if (was) {
                cli_opt_set(&prog, o, was);
                run_restored[i] = 1;
            }
            continue;
        }
        int has = cli_opt_string(o, cur, sizeof cur);
        /* (a run records what was given: one not recorded had the default) */
        const char *ref = was ? was : run_defaults[i];
        int differs = !ref || !has || strcmp(ref, cur) != 0;
        run_restated[i] = !differs;
        if (differs && o_override && validation_option(o) && !run_val_changed)
            run_val_changed = o->name;
        if (differs && !changeable(o) && !o_override)
            cli_die("--%s %s differs from the run in '%s' (%s%s); --resume continues that "
                    "run as it was started (--override to change it)", o->name,
                    o->type == CLI_FLAG ? "given" : cur, ckpt,
                    was ? "there: " : ref && o->type != CLI_FLAG ? "there: the default " :
                                                                   "not set there",
                    ref ? (o->type == CLI_FLAG ? (was ? (was[0] == '1' ? "set" : "not set") : "")
                                               : ref)
                        : "");
    }
    long n = strtol(ninp, NULL, 10);
    if (n < 1 || n > 100000)
        cli_die("'%s': bad run.inputs '%s'", ckpt, ninp);
    int given = *argc - *first;
    if (given == 0) {
        static char **v;   /* the run's files: argv from here on */
        v = calloc((size_t)n + 1, sizeof *v);
        if (!v)
            cli_die("out of memory");
        for (long i = 0; i < n; i++) {
            snprintf(key, sizeof key, "run.input.%ld", i);
            const char *p = llm_st_meta(f, key);
            if (!p)
                cli_die("'%s': no %s", ckpt, key);
            if (!(v[i] = strdup(p)))
                cli_die("out of memory");
        }
        *argv = v;
        *first = 0;
        *argc = (int)n;
    } else {
        int same = given == n;
        for (long i = 0; same && i < n; i++) {
            snprintf(key, sizeof key, "run.input.%ld", i);
            const char *p = llm_st_meta(f, key);
            same = p && strcmp(p, (*argv)[*first + i]) == 0;
        }
        if (!same && !o_override)
            cli_die("the data files differ from those of the run in '%s' (give none to use "
                    "its own, or --override)", ckpt);
        if (!same && !o_val && !run_val_changed)
            run_val_changed = "data files";   /* the held-out part is theirs */
        if (!same)
            n = 0;   /* (other files: no sizes and hashes to compare) */
    }
    for (long i = 0; i < n && (!o_override || (!o_val && !run_val_changed)); i++) {
        const char *path = (*argv)[*first + i];
        snprintf(key, sizeof key, "run.input.%ld.size", i);
        const char *ws = llm_st_meta(f, key);
        snprintf(key, sizeof key, "run.input.%ld.hash", i);
        const char *wh = llm_st_meta(f, key);
        if (!ws || !wh) {   /* standard input: no size or digest to compare */
            if (!o_quiet)
                cli_warn("the run in '%s' read standard input: whether it gives the same "
                         "data cannot be checked", ckpt);
            continue;
        }
        uint64_t size, hash;
        check(llm_file_digest(path, &size, &hash));
        char h[32];
        snprintf(h, sizeof h, "%016llx", (unsigned long long)hash);
        int changed = strtoull(ws, NULL, 10) != size || strcmp(wh, h) != 0;
        if (changed && o_override) {   /* (the loop's condition: no --val, nothing else) */
            run_val_changed = "data files";
            break;
        }
        if (changed)
            cli_die("'%s' changed since the checkpoint '%s' was written (%llu bytes, were %s"
                    "%s); resuming on other data would not continue the run (--override "
                    "to go on anyway)", path, ckpt, (unsigned long long)size, ws,
                    strtoull(ws, NULL, 10) == size ? ", same size, other bytes" : "");
    }
    llm_st_close(f);
}

/* ------------------------------------------------------------------------ */
/* One command: `llm-train --task classify FILE... -o OUT` with neither -m
 * nor --init builds what they would name, in three stages run as child
 * processes of the sibling programs (each with its own signals, checkpoints
 * and messages): a tokenizer from the texts, a small language model
 * pretrained on them, and the classifier fine-tuned from it with the
 * auxiliary language-model loss, a held-out tenth for model choice and
 * calibration. The stages' files go to OUT.parts.XXXXXX, removed at the end.
 * The recipe is tests/bench/classify.sh's, sized by the data. */

/* Options that keep their meaning here; any other is a usage error. */
static int one_command_option(const char *name)
{
    static const char *const ok[] = {"task", "output", "val", "val-fraction", "epochs",
                                     "time-limit", "threads", "seed", "multi-label",
                                     "balance", "dedup", "quiet", "progress", "log", "plot",
                                     "device", "autotune", NULL};
    return among(name, ok);
}

/* The sibling program `name`: in this program's directory, else on PATH. */
static char *sibling(const char *name)
{
    char self[4096];
    ssize_t n = readlink("/proc/self/exe", self, sizeof self - 1);
    size_t need = (n > 0 ? (size_t)n : 0) + strlen(name) + 2;
    char *p = malloc(need);
    if (!p)
        cli_die("out of memory");
    if (n > 0) {
        self[n] = '\0';
        char *slash = strrchr(self, '/');
        if (slash) {
            *slash = '\0';
            snprintf(p, need, "%s/%s", self, name);
            if (access(p, X_OK) == 0)
                return p;
        }
    }
    snprintf(p, need, "%s", name);
    return p;
}

typedef struct {
    char **v;
    int n, cap;
} argvec;

static void arg(argvec *a, const char *fmt, ...) CLI_PRINTF(2, 3);
static void arg(argvec *a, const char *fmt, ...)
{
    if (a->n + 2 > a->cap) {
        a->cap = a->cap ? 2 * a->cap : 32;
        a->v = realloc(a->v, (size_t)a->cap * sizeof *a->v);
        if (!a->v)
            cli_die("out of memory");
    }
    char buf[4096];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(buf, sizeof buf, fmt, ap);
    va_end(ap);
    if (!(a->v[a->n++] = strdup(buf)))
        cli_die("out of memory");
    a->v[a->n] = NULL;
}

static void argvec_free(argvec *a)
{
    for (int i = 0; i < a->n; i++)
        free(a->v[i]);
    free(a->v);
    memset(a, 0, sizeof *a);
}

/* Runs a stage; dies naming it (and the kept parts) when it fails. */
static void stage(argvec *a, const char *what, const char *parts)
{
    pid_t pid;
    int rc = posix_spawnp(&pid, a->v[0], NULL, NULL, a->v, environ);
    if (rc)
        cli_die("cannot run '%s' (%s): %s; the parts are in '%s'", a->v[0], what,
                strerror(rc), parts);
    int st;
    while (waitpid(pid, &st, 0) < 0)
        if (errno != EINTR)
            cli_die("waiting for '%s': %s", a->v[0], strerror(errno));
    if (WIFSIGNALED(st))
        cli_die("%s was killed by signal %d; the parts are in '%s'", what, WTERMSIG(st),
                parts);
    if (WEXITSTATUS(st) != 0) {
        cli_warn("%s failed (exit %d); the parts are in '%s'", what, WEXITSTATUS(st),
                 parts);
        exit(WEXITSTATUS(st) >= 128 ? WEXITSTATUS(st) : CLI_EXIT_FAIL);
    }
}

static int cmp_size(const void *a, const void *b)
{
    size_t x = *(const size_t *)a, y = *(const size_t *)b;
    return (x > y) - (x < y);
}

static void remove_parts(const char *dir)
{
    static const char *const files[] = {"texts.txt", "tok.model", "base.llm",
                                        "base.llm.ckpt", NULL};
    char p[4096];
    for (int i = 0; files[i]; i++) {
        snprintf(p, sizeof p, "%s/%s", dir, files[i]);
        unlink(p);
    }
    rmdir(dir);
}

/* Fine-tuning settings that --autotune searches. */
typedef struct {
    double lr, lm, dropout, epochs;
    const char *pooling;
} tune_cfg;

static void tune_args(argvec *a, const tune_cfg *c)
{
    arg(a, "--lr=%g", c->lr);
    arg(a, "--lm-weight=%g", c->lm);
    arg(a, "--dropout=%g", c->dropout);
    arg(a, "--epochs=%g", c->epochs);
    arg(a, "--pooling=%s", c->pooling);
}

/* The best validation accuracy in a --log file (0 when none). */
static double best_accuracy(const char *path)
{
    FILE *f = fopen(path, "r");
    double best = 0;
    char line[1024];
    while (f && fgets(line, sizeof line, f)) {
        const char *p = strstr(line, "\"val_accuracy\":");
        double v;
        if (p && sscanf(p + 15, "%lf", &v) == 1 && v > best)
            best = v;
    }
    if (f)
        fclose(f);
    return best;
}

/* Labelled lines of the inputs: every tenth (the 10th, 20th, ...) into
 * val, the others into train. */
static void tune_split(int first, int argc, char **argv, const char *train, const char *val)
{
    FILE *t = fopen(train, "w"), *v = fopen(val, "w");
    if (!t || !v)
        cli_die("cannot create '%s': %s", !t ? train : val, strerror(errno));
    uint64_t k = 0;
    for (int i = first; i < argc; i++) {
        FILE *f = cli_open(argv[i]);
        llm_lines *lr;
        check(llm_lines_open(f, &lr));
        const char *line;
        size_t len;
        int rc;
        while ((rc = llm_lines_next(lr, &line, &len)) == 1) {
            if (len == 0)
                continue;
            FILE *o = ++k % 10 == 0 ? v : t;
            if (fwrite(line, 1, len, o) != len || fputc('\n', o) == EOF)
                cli_die("write error: %s", strerror(errno));
        }
        if (rc < 0)
            cli_die("'%s': %s", argv[i], llm_errmsg());
        llm_lines_free(lr);
        cli_close(f);
    }
    if (fclose(t) != 0 || fclose(v) != 0)
        cli_die("write error: %s", strerror(errno));
}

/* --autotune: coordinate search from `best` over one setting at a time, each
 * trial a fine-tuning run on the split with its share of the time left
 * before `deadline` (cli_now() seconds); `best` ends as the winner. */
static void autotune(const char *trainp, const char *parts, const tune_cfg *base_cfg,
                     double deadline, tune_cfg *best)
{
    char tr[4096], va[4096], lg[4096], mo[4096];
    snprintf(tr, sizeof tr, "%s/tune-train.tsv", parts);
    snprintf(va, sizeof va, "%s/tune-val.tsv", parts);
    snprintf(mo, sizeof mo, "%s/trial.llm", parts);
    *best = *base_cfg;
    tune_cfg tries[8];
    int nt = 0;
    tries[nt] = *best, tries[nt++].lr = 2 * base_cfg->lr;
    tries[nt] = *best, tries[nt++].lr = base_cfg->lr / 2;
    tries[nt] = *best, tries[nt++].lm = 0;
    tries[nt] = *best, tries[nt++].lm = 1;
    tries[nt] = *best, tries[nt++].pooling = "last";
    tries[nt] = *best, tries[nt++].dropout = 0.1;
    tries[nt] = *best, tries[nt++].epochs = 2 * base_cfg->epochs;
    double best_acc = -1;
    for (int t = -1; t < nt; t++) {
        double left = deadline - cli_now();
        int remaining = nt - t;
        double share = left / remaining;
        if (share < 3)   /* too short for all: the next takes what is left */
            share = left;
        if (share < 3)
            break;
        tune_cfg c = t < 0 ? *best : tries[t];
        /* The settings found so far, with this trial's one change. */
        if (t >= 0) {
            tune_cfg d = *best;
            if (t < 2)
                d.lr = c.lr;
            else if (t < 4)
                d.lm = c.lm;
            else if (t == 4)
                d.pooling = c.pooling;
            else if (t == 5)
                d.dropout = c.dropout;
            else
                d.epochs = c.epochs;
            c = d;
        }
        snprintf(lg, sizeof lg, "%s/trial%d.jsonl", parts, t + 1);
        argvec a = { 0 };
        arg(&a, "%s", trainp);
        arg(&a, "--task=classify");
        arg(&a, "--init=%s/base.llm", parts);
        tune_args(&a, &c);
        static const char *const fixed[] = {"--batch=32", "--warmup=20", "--eval-every=25",
                                            "--patience=6", "-q", NULL};
        for (int i = 0; fixed[i]; i++)
            arg(&a, "%s", fixed[i]);
        arg(&a, "--threads=%d", o_threads);
        arg(&a, "--seed=%lld", (long long)o_seed);
        if (o_multi_label)
            arg(&a, "--multi-label");
        arg(&a, "--val=%s", va);
        arg(&a, "--log=%s", lg);
        arg(&a, "--time-limit=%g", share * 0.8 > 1 ? share * 0.8 : 1);
        arg(&a, "-o");
        arg(&a, "%s", mo);
        arg(&a, "%s", tr);
        double t1 = cli_now();
        stage(&a, "an autotune trial", parts);
        argvec_free(&a);
        double acc = best_accuracy(lg);
        unlink(lg);
        if (!o_quiet)
            fprintf(stderr, "llm-train: autotune trial %d (lr %g, lm-weight %g, pooling %s, "
                    "dropout %g, epochs %g): validation accuracy %.4f in %.0f s\n", t + 2,
                    c.lr, c.lm, c.pooling, c.dropout, c.epochs, acc, cli_now() - t1);
        if (acc > best_acc) {
            best_acc = acc;
            *best = c;
        }
    }
    char p2[4200];
    snprintf(p2, sizeof p2, "%s.ckpt", mo);
    unlink(mo);
    unlink(p2);
    unlink(tr);
    unlink(va);
    if (!o_quiet)
        fprintf(stderr, "llm-train: autotune chose lr %g, lm-weight %g, pooling %s, dropout "
                "%g, epochs %g (validation accuracy %.4f)\n", best->lr, best->lm,
                best->pooling, best->dropout, best->epochs, best_acc);
}

/* What sizes the one-command recipe, read from the labelled texts. */
typedef struct {
    size_t docs;
    int by_char;   /* text without spaces (Chinese, Japanese): a character tokenizer */
    int ctx;       /* holds the 95th percentile document */
} text_shape;

/* The labelled files' texts into parts/texts.txt, one per line, and their
 * shape: characters, spaces, lengths. */
static text_shape write_texts(const char *parts, int first, int argc, char **argv)
{
    char path[4096];
    snprintf(path, sizeof path, "%s/texts.txt", parts);
    FILE *out = fopen(path, "w");
    if (!out)
        cli_die("cannot create '%s': %s", path, strerror(errno));
    size_t docs = 0, cap = 0, *lens = NULL;
    uint64_t chars = 0, spaces = 0;
    static cli_span span[4096];
    for (int i = first; i < argc; i++) {
        FILE *f = cli_open(argv[i]);
        llm_lines *lr;
        check(llm_lines_open(f, &lr));
        const char *line, *text;
        size_t len, nl;
        int rc;
        while ((rc = llm_lines_next(lr, &line, &len)) == 1) {
            if (len && line[len - 1] == '\r')
                len--;
            if (len == 0 || cli_split_labelled(line, len, o_multi_label, span,
                                               sizeof span / sizeof span[0], &nl, &text))
                continue;   /* the classifier stage reports bad lines */
            size_t tl = (size_t)(line + len - text), c = 0;
            for (size_t k = 0; k < tl; k++) {
                c += ((unsigned char)text[k] & 0xC0) != 0x80;
                spaces += text[k] == ' ';
            }
            chars += c;
            if (docs == cap) {
                cap = cap ? 2 * cap : 1024;
                if (!(lens = realloc(lens, cap * sizeof *lens)))
                    cli_die("out of memory");
            }
            lens[docs++] = c;
            if (fwrite(text, 1, tl, out) != tl || fputc('\n', out) == EOF)
                cli_die("write error on '%s': %s", path, strerror(errno));
        }
        if (rc < 0)
            cli_die("'%s': %s", argv[i], llm_errmsg());
        llm_lines_free(lr);
        cli_close(f);
    }
    if (fclose(out) != 0)
        cli_die("write error on '%s': %s", path, strerror(errno));
    if (docs == 0)
        cli_die("no labelled documents in the input");
    text_shape sh = { docs, spaces * 20 < chars, 0 };
    qsort(lens, docs, sizeof *lens, cmp_size);
    size_t p95 = lens[(docs - 1) * 95 / 100];
    free(lens);
    int ctx = (int)(sh.by_char ? p95 : p95 / 4) + 2;
    sh.ctx = ctx < 32 ? 32 : ctx > 256 ? 256 : (ctx + 15) / 16 * 16;
    return sh;
}

/* Stage 1: the tokenizer, unigram pieces or characters. */
static void stage_tokenizer(const char *tokp, const char *parts, const text_shape *sh)
{
    argvec a = { 0 };
    arg(&a, "%s", tokp);
    arg(&a, "train");
    if (sh->by_char)
        arg(&a, "--model-type=char");
    arg(&a, "--vocab-size=auto");
    arg(&a, "--seed=%lld", (long long)o_seed);
    arg(&a, "--threads=%d", o_threads);
    arg(&a, "-q");
    arg(&a, "-o");
    arg(&a, "%s/tok.model", parts);
    arg(&a, "%s/texts.txt", parts);
    stage(&a, "building the tokenizer", parts);
    argvec_free(&a);
}

/* Stage 2: pretraining on the texts; two thirds of what --time-limit
 * leaves (35% of --autotune). */
static void stage_pretrain(const char *trainp, const char *parts, const text_shape *sh,
                           double t0)
{
    argvec a = { 0 };
    arg(&a, "%s", trainp);
    arg(&a, "-m");
    arg(&a, "%s/tok.model", parts);
    static const char *const shape[] = {"--layers=2", "--dim=128", "--heads=4",
                                        "--ffn-dim=344", "--batch=16", "--lr=2e-3",
                                        "--warmup=20", "--dropout=0.1", "--epochs=10", NULL};
    for (int i = 0; shape[i]; i++)
        arg(&a, "%s", shape[i]);
    arg(&a, "--context=%d", sh->ctx);
    arg(&a, "--threads=%d", o_threads);
    arg(&a, "--seed=%lld", (long long)o_seed);
    arg(&a, "--device=%s", o_device);
    if (o_time_limit > 0) {
        double left = o_time_limit - (cli_now() - t0);
        double part = o_autotune > 0 ? o_autotune * 0.35 : left * 2 / 3;
        arg(&a, "--time-limit=%g", part > 1 ? part : 1);
    }
    arg(&a, "%s", o_progress ? "--progress" : "-q");
    arg(&a, "-o");
    arg(&a, "%s/base.llm", parts);
    arg(&a, "%s/texts.txt", parts);
    stage(&a, "pretraining", parts);
    argvec_free(&a);
}

/* Stage 3: the classifier, with this command's own options and files; at
 * least 3 epochs and about 600 steps (small sets need more passes), or
 * the recipe --autotune found. */
static void stage_classifier(const char *trainp, const char *parts, const text_shape *sh,
                             double t0, int first, int argc, char **argv)
{
    double vf = o_val ? 0 : cli_given(&o_val_fraction) ? o_val_fraction : 0.1;
    double ep = ceil(600.0 * 32 / ((double)sh->docs * (1 - vf)));
    ep = ep < 3 ? 3 : ep > 50 ? 50 : ep;
    tune_cfg cfgv = { 1e-3, 0.5, 0, cli_given(&o_epochs) ? o_epochs : ep, "mean" };
    if (o_autotune > 0) {
        char tr[4096], va[4096];
        snprintf(tr, sizeof tr, "%s/tune-train.tsv", parts);
        snprintf(va, sizeof va, "%s/tune-val.tsv", parts);
        tune_split(first, argc, argv, tr, va);
        tune_cfg found;
        autotune(trainp, parts, &cfgv, t0 + o_autotune * 0.75, &found);
        cfgv = found;
    }
    argvec a = { 0 };
    arg(&a, "%s", trainp);
    arg(&a, "--task=classify");
    arg(&a, "--init");
    arg(&a, "%s/base.llm", parts);
    static const char *const fine[] = {"--batch=32", "--warmup=20", "--eval-every=50",
                                       "--patience=6", NULL};
    for (int i = 0; fine[i]; i++)
        arg(&a, "%s", fine[i]);
    tune_args(&a, &cfgv);
    if (o_val)
        arg(&a, "--val=%s", o_val);
    else
        arg(&a, "--val-fraction=%g", cli_given(&o_val_fraction) ? o_val_fraction : 0.1);
    arg(&a, "--threads=%d", o_threads);
    arg(&a, "--seed=%lld", (long long)o_seed);
    arg(&a, "--device=%s", o_device);
    if (o_multi_label)
        arg(&a, "--multi-label");
    if (o_balance)
        arg(&a, "--balance");
    if (o_dedup)
        arg(&a, "--dedup");
    if (o_log)
        arg(&a, "--log=%s", o_log);
    if (o_plot)
        arg(&a, "--plot=%s", o_plot);
    if (o_progress)
        arg(&a, "--progress");
    if (o_quiet)
        arg(&a, "-q");
    if (o_time_limit > 0) {   /* a margin for loading, calibrating and saving */
        double left = (o_time_limit - (cli_now() - t0)) * 0.9;
        arg(&a, "--time-limit=%g", left > 1 ? left : 1);
    }
    arg(&a, "-o");
    arg(&a, "%s", o_output);
    for (int i = first; i < argc; i++)
        arg(&a, "%s", argv[i]);
    stage(&a, "fine-tuning the classifier", parts);
    argvec_free(&a);
}

static int one_command(const cli_prog *pg, int first, int argc, char **argv)
{
    for (int i = 0; i < pg->nopts; i++)
        if (pg->opts[i].dest && cli_given(pg->opts[i].dest) &&
            !one_command_option(pg->opts[i].name))
            cli_usage("--%s needs -m TOKENIZER or --init MODEL: with neither, llm-train "
                      "chooses the tokenizer and model itself", pg->opts[i].name);
    if (first >= argc)
        cli_usage("with neither -m nor --init, name the labelled files (they are read "
                  "twice: for the tokenizer and the model, then for the classifier)");
    for (int i = first; i < argc; i++)
        if (strcmp(argv[i], "-") == 0)
            cli_usage("with neither -m nor --init, standard input cannot be read (it is "
                      "read twice): name a file");
    double t0 = cli_now();
    if (o_autotune > 0 && o_time_limit > 0)
        cli_usage("--autotune SECONDS bounds the whole run: --time-limit is not needed");
    if (o_autotune > 0)   /* pretraining gets 35%, the search until 75%, then the final */
        o_time_limit = o_autotune;
    size_t n = strlen(o_output) + 16;
    char *parts = malloc(n);
    if (!parts)
        cli_die("out of memory");
    snprintf(parts, n, "%s.parts.XXXXXX", o_output);
    if (!mkdtemp(parts))
        cli_die("cannot make a directory beside '%s': %s", o_output, strerror(errno));
    text_shape sh = write_texts(parts, first, argc, argv);
    char *tokp = sibling("llm-tokenize"), *trainp = sibling("llm-train");
    if (!o_quiet)
        fprintf(stderr, "llm-train: no -m or --init: a %s tokenizer from the %zu texts, a "
                "2 x 128 language model pretrained on them (10 epochs, context %d), then "
                "the classifier fine-tuned from it with the language-modelling loss; "
                "parts in '%s'\n", sh.by_char ? "character" : "unigram", sh.docs, sh.ctx,
                parts);
    stage_tokenizer(tokp, parts, &sh);
    stage_pretrain(trainp, parts, &sh, t0);
    stage_classifier(trainp, parts, &sh, t0, first, argc, argv);
    remove_parts(parts);
    if (!o_quiet)
        fprintf(stderr, "llm-train: one command done in %.0f s; model '%s'\n",
                cli_now() - t0, o_output);
    free(tokp);
    free(trainp);
    free(parts);
    return 0;
}

/* --plot: the log text[0..n) (`name` in messages) as SVG into o_plot. */
static void write_plot(const char *text, size_t n, const char *name)
{
    plot_log pl;
    plot_log_read(text, n, name, &pl);
    llm_buf svg = { 0 };
    char title[256];
    snprintf(title, sizeof title, "llm-train: %s", o_output ? o_output : name);
    plot_training(&svg, &pl, title);
    check(llm_write_file(o_plot, svg.data, svg.len));
    llm_buf_free(&svg);
    plot_log_free(&pl);
}

static void plot_file(const char *path)
{
    FILE *f = cli_open(path);
    llm_buf t = { 0 };
    char chunk[65536];
    size_t k;
    while ((k = fread(chunk, 1, sizeof chunk, f)) > 0)
        check(llm_buf_append(&t, chunk, k));
    if (ferror(f))
        cli_die("cannot read '%s': %s", path, strerror(errno));
    cli_close(f);
    write_plot(t.data ? t.data : "", t.len, path);
    llm_buf_free(&t);
}

/* ------------------------------------------------------------------------ */
/* One training run: what main() sets up, the loop reads and the end frees. */

typedef struct {
    int cls, pairs;          /* --task */
    int rank, world;         /* under mpirun; 0 of 1 otherwise */
    int progress, tty, threads;
    llm_tok *tok;
    const char *tok_path;
    const char *from;        /* --resume or --init, or NULL: a new model */
    llm_model *m;
    int T;                   /* tokens per row */
    /* --task lm: training tokens [0, train_end) of data; validation
     * [vbegin, vend) of vdata (data itself for --val-fraction). */
    llm_data *data, *vdata;
    uint64_t train_end, vbegin, vend;
    /* --task classify */
    llm_cls_data *ctrain, *cval;
    float *cweights;         /* --balance, else NULL */
    /* --task pairs */
    pairs_set ptrain, pval;
    int has_val;
    llm_batcher *batcher;
    int accum;               /* micro-batches per step */
    int64_t start, total;    /* first and last step of this run's schedule */
    llm_train_params tp;
    llm_trainer *tr;
    FILE *logf;              /* --log, or memory for --plot without --log */
    char *memlog;
    size_t memlog_n;
    const void *tokb;        /* the tokenizer's bytes, saved with every model */
    size_t tokn;
    llm_save_params sp;
    /* Validation: the best model is the one saved; `best` is its key (lower
     * is better: the loss, 1 - accuracy, or the pairs' key). last_bpb holds
     * bits per byte, a classifier's accuracy or the pairs' sample BLEU. */
    double best, last_val, last_bpb, best_loss, best_bleu;
    int bad_evals;
    uint64_t val_bytes;
} train_run;

/* The index in opts[] of the option whose value lives at dest. */
static int opt_index(const void *dest)
{
    for (int i = 0; i < prog.nopts; i++)
        if (prog.opts[i].dest == dest)
            return i;
    cli_die("internal error: no option at %p", dest);
}

/* Given on the command line, and not a restatement of the resumed run's
 * own value (run_apply()): the combinations checked below refuse what is
 * given anew, so that a run started before a check existed, or restated
 * at a default it did not record, still resumes. */
static int given_anew(const void *dest)
{
    return cli_given(dest) && !(o_resume && run_restated[opt_index(dest)]);
}

/* --steps with --epochs, which sets the steps and would win; on --resume
 * --override, a --steps changed on a run of --epochs would not count. */
static void check_steps_epochs(void)
{
    if (!cli_given(&o_steps) || !(o_epochs > 0))
        return;
    if (!given_anew(&o_steps) && !given_anew(&o_epochs))
        return;   /* both (or --steps alone) as the run had them */
    if (cli_given(&o_epochs))
        cli_usage("--epochs and --steps cannot be combined (--epochs sets the steps from the "
                  "data)");
    cli_usage("--steps %lld would not count: the run in '%s' trains --epochs %g (give "
              "--epochs 0 to count steps)", (long long)o_steps, o_resume, o_epochs);
}

/* ------------------------------------------------------------------------ */
/* The run's files: outputs apart from each other and from the inputs, and
 * one run at a time on them. */

/* Where a file not there yet would be: its folder's real path and its
 * name (malloc'd). */
static char *would_be(const char *path)
{
    const char *slash = strrchr(path, '/'), *name = slash ? slash + 1 : path;
    char dir[4096];
    snprintf(dir, sizeof dir, "%.*s", slash ? (int)(slash - path + 1) : 1, slash ? path : ".");
    char *real = realpath(dir, NULL);
    size_t n = strlen(real ? real : dir) + strlen(name) + 2;
    char *w = malloc(n);
    if (!w)
        cli_die("out of memory");
    snprintf(w, n, "%s/%s", real ? real : dir, name);
    free(real);
    return w;
}

/* Whether a and b name one regular file (or would: the same folder and
 * name); devices and FIFOs (/dev/null twice) never count. */
static int same_file(const char *a, const char *b)
{
    struct stat sa, sb;
    int ha = stat(a, &sa) == 0, hb = stat(b, &sb) == 0;
    if (ha && hb)
        return S_ISREG(sa.st_mode) && S_ISREG(sb.st_mode) && sa.st_dev == sb.st_dev &&
               sa.st_ino == sb.st_ino;
    if (ha != hb)
        return 0;
    char *wa = would_be(a), *wb = would_be(b);
    int same = strcmp(wa, wb) == 0;
    free(wa);
    free(wb);
    return same;
}

/* -o, --checkpoint, --log and --plot are four files, none of them an
 * input (a data file, --val, -m, --init): --checkpoint -o's name had the
 * model overwrite the checkpoint, -o DATA replaced the corpus. */
static void check_distinct(int first, int argc, char **argv)
{
    const char *out[][2] = { { "-o", o_output }, { "--checkpoint", o_checkpoint },
                             { "--log", o_log }, { "--plot", o_plot } };
    enum { NO = sizeof out / sizeof *out };
    for (int i = 0; i < NO; i++) {
        if (!out[i][1])
            continue;
        for (int j = i + 1; j < NO; j++)
            if (out[j][1] && same_file(out[i][1], out[j][1]))
                cli_usage("%s and %s name one file, '%s'", out[i][0], out[j][0], out[i][1]);
        for (int k = first; k < argc; k++)
            if (strcmp(argv[k], "-") != 0 && same_file(out[i][1], argv[k]))
                cli_usage("%s '%s' is a data file of the run", out[i][0], out[i][1]);
        const char *in[][2] = { { "--val", o_val }, { "-m", o_model }, { "--init", o_init } };
        for (int k = 0; k < 3; k++)
            if (in[k][1] && same_file(out[i][1], in[k][1]))
                cli_usage("%s '%s' is the run's %s file", out[i][0], out[i][1], in[k][0]);
    }
}

/* One run at a time writes `path`: an exclusive lock on PATH.lock while
 * the process lives, the file removed at exit (one a SIGKILL leaves holds
 * no lock). Two runs on one -o from cron each removed the other's
 * temporary files and overwrote its checkpoint with an older one. Devices
 * and FIFOs (written in place) take no lock. */
static char *locks[2];
static int nlocks;

static void unlock_outputs(void)
{
    for (int i = 0; i < nlocks; i++)
        unlink(locks[i]);   /* (before the descriptor closes at exit) */
}

static void lock_output(const char *path)
{
    char *target;
    int direct;
    check(llm_output_target(path, &target, &direct));
    if (direct || nlocks == 2) {
        free(target);
        return;
    }
    size_t n = strlen(target) + 6;
    char *lock = malloc(n);
    if (!lock)
        cli_die("out of memory");
    snprintf(lock, n, "%s.lock", target);
    free(target);
    for (;;) {
        int fd = open(lock, O_RDWR | O_CREAT | O_CLOEXEC, 0644);
        if (fd < 0)
            cli_die("cannot open '%s': %s", lock, strerror(errno));
        if (flock(fd, LOCK_EX | LOCK_NB) != 0) {
            if (errno == EWOULDBLOCK)
                cli_die("'%s' is being written by another llm-train (it holds '%s'): one "
                        "run at a time", path, lock);
            cli_die("cannot lock '%s': %s", lock, strerror(errno));
        }
        /* Locked: unless its holder removed the file just before (at its
         * exit), after we opened it; then the lock is on nothing. */
        struct stat a, b;
        if (fstat(fd, &a) == 0 && stat(lock, &b) == 0 && a.st_ino == b.st_ino &&
            a.st_dev == b.st_dev)
            break;   /* fd stays open: the lock lasts as long as the process */
        close(fd);
    }
    if (nlocks == 0)
        atexit(unlock_outputs);
    locks[nlocks++] = lock;
}

/* Usage errors of option combinations, once the run's kind is known. */
static void check_combinations(const train_run *r)
{
    if (o_autotune > 0)
        cli_usage("--autotune is for a classifier made by llm-train alone (--task classify "
                  "with neither -m nor --init)");
    if (!r->cls && (o_multi_label || o_balance || o_freeze || o_lm_weight > 0))
        cli_usage("--multi-label, --balance, --freeze and --lm-weight need --task classify");
    if (!r->cls && given_anew(&o_pooling))
        cli_usage("--pooling is for --task classify (--task %s has no head to pool for)",
                  o_task);
    if (!r->cls && given_anew(&o_dedup))
        cli_usage("--dedup is for --task classify (--task %s trains on every document as "
                  "it is)", o_task);
    if (o_freeze && !o_init && !o_resume)
        cli_usage("--freeze needs --init: a head on frozen random weights learns little");
    if (o_lora && !o_init && !o_resume)
        cli_usage("--lora needs --init: adapters train on a pretrained model");
    if (given_anew(&o_lora_alpha) && !o_lora)
        cli_usage("--lora-alpha needs --lora: it scales the adapters' outputs");
    if (o_lora && o_freeze)
        cli_usage("--lora and --freeze cannot be combined (--lora trains the head too)");
    if (o_freeze && o_lm_weight > 0)
        cli_usage("--lm-weight trains the backbone, which --freeze keeps as it is");
    if (given_anew(&o_decay_embeddings) && o_decay_embeddings && (o_lora || o_freeze))
        cli_usage("--decay-embeddings decays the embedding, which --%s keeps as it is",
                  o_lora ? "lora" : "freeze");
    if (given_anew(&o_decay_embeddings) && o_decay_embeddings && !(o_weight_decay > 0))
        cli_usage("--decay-embeddings with --weight-decay 0 decays nothing");
    if (r->cls && given_anew(&o_label_smoothing) && o_label_smoothing > 0 &&
        !(o_lm_weight > 0))
        cli_usage("--label-smoothing smooths the next-token loss, which --task classify "
                  "trains only with --lm-weight");
    if (!r->pairs && cli_given(&o_eval_samples))
        cli_usage("--eval-samples needs --task pairs");
    if ((r->cls || r->pairs) && given_anew(&o_eval_tokens))
        cli_usage("--eval-tokens is for --task lm (--task %s scores every held-out %s)",
                  o_task, r->cls ? "document" : "pair");
    if (!o_val && !(o_val_fraction > 0)) {   /* no validation: nothing reads these */
        const char *v = given_anew(&o_patience) && o_patience > 0 ? "patience"
                        : given_anew(&o_eval_every) ? "eval-every"
                        : given_anew(&o_eval_tokens) ? "eval-tokens"
                        : given_anew(&o_eval_samples) && o_eval_samples > 0 ? "eval-samples"
                        : NULL;
        if (v)
            cli_usage("--%s needs validation: --val or --val-fraction", v);
    }
    if (r->cls && o_batch_tokens)
        cli_usage("--batch-tokens is for --task lm (classify: --batch documents per step)");
    if (r->cls && r->world > 1)
        cli_usage("--task classify runs as one process, not over %d MPI ranks", r->world);
    check_steps_epochs();
    llm_schedule_kind sched;
    check(llm_schedule_parse(o_schedule, &sched));
    if (given_anew(&o_decay_fraction) && sched != LLM_SCHED_WSD)
        cli_usage("--decay-fraction is for --schedule wsd (not --schedule %s)", o_schedule);
    if (given_anew(&o_min_lr) && sched == LLM_SCHED_CONSTANT)
        cli_usage("--min-lr is where a decay ends: not with --schedule constant");
}

/* The tokenizer (-m, else the one inside --init / --resume) and the model
 * (from a checkpoint, from --init, or new from the shape options). */
static void load_model(train_run *r)
{
    r->tok_path = o_model ? o_model : o_resume ? o_resume : o_init;
    if (!r->tok_path)
        cli_usage("missing --model TOKENIZER (or --init / --resume)");
    check(llm_tok_load(r->tok_path, &r->tok));
    int V = llm_tok_vocab_size(r->tok);
    r->from = o_resume ? o_resume : o_init;
    if (r->from) {
        check(llm_model_load(r->from, o_device, &r->m));
        if (o_init) {   /* a checkpoint starts afresh, as its model file would */
            check(llm_model_lora_fold(r->m));
            llm_model_reset_optimizer(r->m);
        }
        if (llm_model_config(r->m)->vocab_size != V)
            cli_die("'%s' has a vocabulary of %d, the tokenizer '%s' has %d", r->from,
                    llm_model_config(r->m)->vocab_size, r->tok_path, V);
        if (o_model) {   /* the same size is not the same pieces */
            llm_tok *own;
            check(llm_tok_load(r->from, &own));
            for (int i = 0; i < V; i++)
                if (strcmp(llm_tok_piece(own, i), llm_tok_piece(r->tok, i)) != 0)
                    cli_die("the tokenizer '%s' is not the one of '%s' (piece %d is '%s' "
                            "there, '%s' here): its embeddings would stand for other "
                            "pieces", o_model, r->from, i, llm_tok_piece(own, i),
                            llm_tok_piece(r->tok, i));
            llm_tok_free(own);
        }
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
            cli_usage("%s", cli_errmsg(rc));
        check(llm_model_create(&c, (uint64_t)o_seed, o_device, &r->m));
    }
    if (r->pairs && llm_model_n_labels(r->m))
        cli_die("'%s' is a classifier; --task pairs needs a language model", r->from);
    if (r->pairs && !llm_model_pairs(r->m))   /* an instruct model answers in its chat layout */
        check(llm_model_set_pairs(r->m, llm_model_chat_template(r->m) ? "chat" : "eos"));
    else if (!r->pairs)
        check(llm_model_set_pairs(r->m, NULL));
    const llm_config *cfg = llm_model_config(r->m);
    /* From a pretrained model, rows of at most 1024 tokens unless asked
     * (as Hugging Face's run_clm and TRL's SFT): SmolLM2-135M's context of
     * 8192 at the default batch of 8 would need some 100 GB. */
    r->T = !r->from ? cfg->context : o_context ? o_context
           : cfg->context < 1024 ? cfg->context : 1024;
    if (r->T > cfg->context)
        cli_usage("--context %d is longer than the model's context %d", r->T, cfg->context);
    if (!o_context) {   /* a resumed run keeps it, whatever the defaults become */
        char v[16];
        snprintf(v, sizeof v, "%d", r->T);
        run_put("run.--context", v);
    }
}

/* --task lm: the input's tokens, and the validation tokens (--val, or the
 * last --val-fraction of them). */
static void load_lm_data(train_run *r, int first, int argc, char **argv)
{
    int T = r->T;
    check(llm_data_new((uint32_t)llm_tok_vocab_size(r->tok), &r->data));
    if (first >= argc)
        add_input(r->data, r->tok, NULL);
    for (int i = first; i < argc; i++)
        add_input(r->data, r->tok, argv[i]);
    uint64_t ntok = llm_data_count(r->data);
    if (ntok == 0)
        cli_die("no training tokens in %s", first >= argc ? "standard input" : "the input");
    r->vdata = r->data;
    r->train_end = ntok;
    if (o_val) {
        check(llm_data_new((uint32_t)llm_tok_vocab_size(r->tok), &r->vdata));
        add_input(r->vdata, r->tok, o_val);
        r->vend = llm_data_count(r->vdata);
        if (r->vend < (uint64_t)T + 1)
            cli_die("'%s': %llu validation tokens are fewer than one sequence of %d + 1",
                    o_val, (unsigned long long)r->vend, T);
    } else if (o_val_fraction > 0) {
        r->vbegin = r->train_end = ntok - (uint64_t)((double)ntok * o_val_fraction);
        r->vend = ntok;
        if (r->vend - r->vbegin < (uint64_t)T + 1)
            cli_die("--val-fraction %g holds out %llu tokens, fewer than one sequence of "
                    "%d + 1", o_val_fraction, (unsigned long long)(r->vend - r->vbegin), T);
    }
    if (r->train_end < (uint64_t)T + 1)
        cli_die("%llu training tokens are fewer than one sequence of %d + 1 (use a "
                "shorter --context or more text)", (unsigned long long)r->train_end, T);
    if (r->vend > r->vbegin)
        warn_lm_overlap(r->data, 0, r->train_end, r->vdata, r->vbegin, r->vend,
                        o_val ? "--val text" : "validation split");
}

/* llm_train_params.stop: SIGINT or SIGTERM has come. */
static int stop_requested(void *ctx)
{
    (void)ctx;
    return cli_stopped() != 0;
}

/* The batcher over the training data, the schedule and the trainer (from
 * the checkpoint's state on --resume). */
static void make_trainer(train_run *r)
{
    int T = r->T;
    if (r->cls)
        check(llm_batcher_new_docs(r->ctrain, (uint64_t)o_seed, &r->batcher));
    else if (r->pairs)
        check(llm_batcher_new_pairs(r->ptrain.d, (uint64_t)o_seed, &r->batcher));
    else
        check(llm_batcher_new(r->data, 0, r->train_end, T, (uint64_t)o_seed, &r->batcher));
    uint64_t per_micro = (uint64_t)o_batch * (uint64_t)T;
    r->accum = 1;
    if (o_batch_tokens) {
        if ((uint64_t)o_batch_tokens % per_micro)
            cli_usage("--batch-tokens %lld is not a multiple of batch x context = %llu",
                      (long long)o_batch_tokens, (unsigned long long)per_micro);
        uint64_t accum = (uint64_t)o_batch_tokens / per_micro;
        if (accum > 1u << 20)
            cli_usage("--batch-tokens %lld is %llu micro-batches of %d x %d per step (at most "
                      "%d)", (long long)o_batch_tokens, (unsigned long long)accum, o_batch, T,
                      1 << 20);
        r->accum = (int)accum;
    }
    if (r->accum % r->world)
        cli_usage("%d micro-batch%s of %d x %d per step cannot be shared by %d MPI ranks: "
                  "set --batch-tokens to a multiple of %llu (rank r takes micro-batches r, "
                  "r + %d, ...)", r->accum, r->accum == 1 ? "" : "es", o_batch, T, r->world,
                  (unsigned long long)per_micro * (unsigned long long)r->world, r->world);
    r->total = o_steps;
    if (o_epochs > 0) {
        double seqs = (double)llm_batcher_sequences(r->batcher) * o_epochs;
        r->total = (int64_t)ceil(seqs / ((double)o_batch * r->accum));
    }

    llm_train_params *tp = &r->tp;
    llm_train_defaults(tp);
    tp->batch = o_batch;
    tp->seq_len = T;
    tp->accum = r->accum;
    check(llm_schedule_parse(o_schedule, &tp->sched.kind));
    tp->sched.lr = o_lr;
    tp->sched.min_lr = o_min_lr >= 0 ? o_min_lr : o_lr / 10;
    tp->sched.warmup = o_warmup < r->total ? o_warmup : r->total;
    tp->sched.total = r->total;
    tp->sched.decay_fraction = o_decay_fraction;
    tp->adamw.beta1 = o_beta1;
    tp->adamw.beta2 = o_beta2;
    tp->adamw.eps = o_adam_eps;
    tp->adamw.weight_decay = o_weight_decay;
    tp->adamw.decay_embedding = o_decay_embeddings;
    tp->clip = o_clip;
    tp->class_weights = r->cweights;
    tp->lm_weight = o_lm_weight;
    tp->rank = r->rank;
    tp->world = r->world;
    tp->reduce = par_reduce;
    tp->reduce_device = par_reduce_device();
    /* Alone, a signal drops the step under way; under mpirun the ranks
     * agree on stopping after each step instead. */
    tp->stop = r->world > 1 ? NULL : stop_requested;
    llm_model *m = r->m;
    if (r->cls)
        check(llm_model_freeze(m, o_freeze));
    if (o_resume && llm_model_lora_rank(m) != o_lora)
        cli_die("'%s' was saved with %s%d: pass the same --lora", o_resume,
                llm_model_lora_rank(m) ? "--lora " : "no adapters, not --lora ",
                llm_model_lora_rank(m) ? llm_model_lora_rank(m) : o_lora);
    else if (o_lora && !o_resume)
        check(llm_model_lora(m, o_lora, o_lora_alpha, (uint64_t)o_seed));
    check(llm_model_set_dropout(m, o_dropout, (uint64_t)o_seed));
    check(llm_model_set_label_smoothing(m, o_label_smoothing));
    check(llm_model_set_precision(m, o_precision));
    check(llm_trainer_new(m, r->batcher, tp, &r->tr));
    if (o_resume)
        check(llm_trainer_restore(r->tr, o_resume));
    r->start = llm_model_steps(m);
}

/* Every file the run writes is writable before the first step; the log. */
static void open_outputs(train_run *r)
{
    if (o_log && !(r->logf = fopen(o_log, "a+")))
        cli_die("cannot open '%s': %s", o_log, strerror(errno));
    if (o_log) {
        /* A record per write (a kill cuts no line in two from here on),
         * and after one a killed run left cut, a line of its own. */
        setvbuf(r->logf, NULL, _IOLBF, 0);
        int last = fseeko(r->logf, -1, SEEK_END) == 0 ? fgetc(r->logf) : '\n';
        fseeko(r->logf, 0, SEEK_END);   /* (from reading to writing) */
        if (last != '\n')
            fputc('\n', r->logf);
    }
    if (o_plot && r->rank == 0)
        check_writable(o_plot);
    if (o_plot && !o_log && r->rank == 0 &&
        !(r->logf = open_memstream(&r->memlog, &r->memlog_n)))
        cli_die("out of memory");
    llm_tok_bytes(r->tok, &r->tokb, &r->tokn);
    r->sp = (llm_save_params){ r->tokb, r->tokn, 0, NULL };
}

/* What is about to train, on stderr. */
static void announce(const train_run *r)
{
    const llm_config *cfg = llm_model_config(r->m);
    const llm_model *m = r->m;
    int V = cfg->vocab_size, T = r->T, threads = r->threads, world = r->world;
    if (o_quiet)
        return;
    if (o_lora)
        fprintf(stderr, "llm-train: LoRA rank %d, alpha %g: %zu adapter parameters train%s; "
                "the base model's stay as they are\n", o_lora, llm_model_lora_alpha(m),
                lora_params(m), r->cls ? " with the head" : "");
    if (r->cls)
        fprintf(stderr, "llm-train: %lld parameters (%d layers x %d, %d heads, FFN %d, "
                "context %d, vocabulary %d) and a head of %d labels (%s pooling%s%s); "
                "%d thread%s\n", (long long)llm_config_params(cfg), cfg->n_layers, cfg->dim,
                cfg->n_heads, cfg->ffn_dim, cfg->context, V, llm_model_n_labels(m),
                llm_pooling_name(llm_model_pooling(m)), o_freeze ? ", backbone frozen" : "",
                o_lm_weight > 0 ? ", with the LM loss" : "", threads, threads == 1 ? "" : "s");
    else if (r->pairs)
        fprintf(stderr, "llm-train: %lld parameters (%d layers x %d, %d heads, %d kv heads, "
                "FFN %d, context %d, vocabulary %d); %zu training pairs packed in %zu row%s "
                "of %d (%s layout)%s; %d thread%s%s\n",
                (long long)llm_config_params(cfg), cfg->n_layers, cfg->dim, cfg->n_heads,
                cfg->n_kv_heads, cfg->ffn_dim, cfg->context, V, r->ptrain.packed,
                llm_pairs_rows(r->ptrain.d), llm_pairs_rows(r->ptrain.d) == 1 ? "" : "s", T,
                llm_model_pairs(m),
                r->pval.d ? "" : ", no validation", threads, threads == 1 ? "" : "s",
                world > 1 ? " per rank" : "");
    else
        fprintf(stderr, "llm-train: %lld parameters (%d layers x %d, %d heads, %d kv heads, "
                "FFN %d, context %d, vocabulary %d); %llu training tokens, %llu "
                "sequences of %d; %d thread%s%s\n",
                (long long)llm_config_params(cfg), cfg->n_layers, cfg->dim, cfg->n_heads,
                cfg->n_kv_heads, cfg->ffn_dim, cfg->context, V,
                (unsigned long long)r->train_end,
                (unsigned long long)llm_batcher_sequences(r->batcher), T,
                threads, threads == 1 ? "" : "s", world > 1 ? " per rank" : "");
    if (world > 1)
        fprintf(stderr, "llm-train: %d MPI ranks, each taking %d of the %d micro-batches "
                "of %d x %d per step%s\n", world, r->accum / world, r->accum, o_batch, T,
                par_reduce_device() ? "; gradients summed between the GPUs over NCCL" : "");
    if (r->start >= r->total && r->total > 0)
        fprintf(stderr, "llm-train: the checkpoint is already at step %lld of %lld\n",
                (long long)r->start, (long long)r->total);
}

/* A validation better than the best so far (key lower) saves the model;
 * any other counts towards --patience. */
/* The checkpoint, with what validation has kept so far (the best key,
 * the evaluations since, the best pairs loss and BLEU), so that a resumed
 * run keeps the best model and counts --patience on. */
static int try_checkpoint(const train_run *r)
{
    char v[64];
    snprintf(v, sizeof v, "%.17g", r->best);
    run_put("run.best", v);
    snprintf(v, sizeof v, "%d", r->bad_evals);
    run_put("run.bad_evals", v);
    snprintf(v, sizeof v, "%.17g", r->best_loss);
    run_put("run.best_loss", v);
    snprintf(v, sizeof v, "%.17g", r->best_bleu);
    run_put("run.best_bleu", v);
    return llm_trainer_save(r->tr, o_checkpoint, r->tokb, r->tokn, (const char *const *)run_meta);
}

static void save_checkpoint(const train_run *r)
{
    check(try_checkpoint(r));
}

/* save_checkpoint()'s validation state from the checkpoint being resumed
 * (one written before it was kept starts afresh). */
static void restore_best(train_run *r, const char *ckpt)
{
    llm_st *f;
    check(llm_st_open(ckpt, &f));
    const char *keys[] = { "run.best", "run.bad_evals", "run.best_loss", "run.best_bleu" };
    double *to[] = { &r->best, NULL, &r->best_loss, &r->best_bleu };
    for (int i = 0; i < 4; i++) {
        const char *v = llm_st_meta(f, keys[i]);
        char *end;
        double x = v ? strtod(v, &end) : 0;
        if (!v)
            continue;
        if (end == v || *end || (!to[i] && !(x >= 0 && x <= INT_MAX && x == floor(x))))
            cli_die("'%s': bad %s '%s'", ckpt, keys[i], v);
        if (to[i])
            *to[i] = x;
        else
            r->bad_evals = (int)x;
    }
    llm_st_close(f);
}

/* Validation's state, as the checkpoint keeps it. */
typedef struct {
    double best, best_loss, best_bleu;
    int bad_evals;
} val_state;

static val_state val_state_of(const train_run *r)
{
    return (val_state){ r->best, r->best_loss, r->best_bleu, r->bad_evals };
}

static void val_state_set(train_run *r, val_state v)
{
    r->best = v.best;
    r->best_loss = v.best_loss;
    r->best_bleu = v.best_bleu;
    r->bad_evals = v.bad_evals;
}

/* The model of a new best score `key` to -o. Where it cannot be written (a
 * full disk), the run so far is saved in the checkpoint first, with the
 * validation state of before (`was`: its model is the one on disk). */
static void save_best(train_run *r, double key, val_state was)
{
    r->best = key;
    if (llm_model_save(r->m, o_output, &r->sp) == LLM_OK)
        return;
    char why[1024];
    snprintf(why, sizeof why, "%s", llm_errmsg());
    val_state_set(r, was);
    if (try_checkpoint(r) == LLM_OK)
        cli_die("%s; the run is saved in '%s' (--resume goes on)", why, o_checkpoint);
    cli_die("%s; and the checkpoint: %s", why, llm_errmsg());
}

static void keep_best(train_run *r, double key)
{
    val_state was = val_state_of(r);
    if (key < r->best) {
        r->bad_evals = 0;
        save_best(r, key, was);
    } else {
        r->bad_evals++;
    }
}

/* Validation at `step` (rank 0): a classifier keeps the model of the best
 * accuracy (ties: the lower loss); pairs, of the best sample BLEU or loss;
 * a language model, of the lowest loss. One that does not `count` (at
 * --time-limit, off the --eval-every schedule) is reported and logged, and
 * changes neither the best model nor --patience's count: a run in nightly
 * slices then keeps the models and stops where one straight run would. */
static void evaluate(train_run *r, int64_t step, int count)
{
    int say = r->progress && !r->tty;
    if (r->cls) {
        llm_cls_eval_result cev;
        check(llm_cls_eval(r->m, r->cval, o_batch, NULL, &cev));
        r->last_val = cev.loss;
        r->last_bpb = cev.accuracy;
        if (r->logf)
            fprintf(r->logf, "{\"step\":%lld,\"val_loss\":%.6f,\"val_accuracy\":%.6f,"
                    "\"val_docs\":%zu}\n", (long long)step, cev.loss, cev.accuracy, cev.docs);
        if (say)
            fprintf(stderr, "llm-train: step %lld: validation loss %.4f, accuracy %.4f\n",
                    (long long)step, cev.loss, cev.accuracy);
        if (count)
            keep_best(r, 1.0 - cev.accuracy + 1e-9 * cev.loss);
        return;
    }
    if (r->pairs) {
        /* pairs_evaluate() counts the validations that improve nothing. */
        val_state was = val_state_of(r);
        double key = pairs_evaluate(r->m, r->tok, &r->pval, r->T, step, r->logf, say,
                                    &r->last_val, &r->last_bpb, &r->best_loss, &r->best_bleu,
                                    &r->bad_evals);
        if (!count)
            val_state_set(r, was);
        else if (key < r->best)
            save_best(r, key, was);
        return;
    }
    llm_eval_result ev;
    check(llm_eval_loss(r->m, r->vdata, r->vbegin, r->vend, o_batch, r->T,
                        (uint64_t)o_eval_tokens, &ev));
    if (!r->val_bytes)
        r->val_bytes = text_bytes(r->vdata, r->tok, ev.first, ev.tokens);
    r->last_val = ev.loss;
    r->last_bpb = r->val_bytes ? ev.loss * (double)ev.tokens / (double)r->val_bytes / log(2.0)
                               : NAN;
    if (r->logf)
        fprintf(r->logf, "{\"step\":%lld,\"val_loss\":%.6f,\"val_bpb\":%.6f,"
                "\"val_tokens\":%llu}\n", (long long)step, ev.loss, r->last_bpb,
                (unsigned long long)ev.tokens);
    if (say)
        fprintf(stderr, "llm-train: step %lld: validation loss %.4f, %.4f bits per byte\n",
                (long long)step, ev.loss, r->last_bpb);
    if (count)
        keep_best(r, ev.loss);
}

/* --time-limit without --steps or --epochs: the schedule's last step
 * becomes the steps the time left allows at the mean pace so far
 * (validations included). */
static void fit_schedule(train_run *r, int64_t step, double spent)
{
    double per = spent / (double)(step - r->start);
    int64_t fitted = step + (int64_t)((o_time_limit - spent) / per);
    if (fitted <= step)
        return;
    r->total = fitted;
    /* The run's length from now on, as if given: --resume continues it (the
     * checkpoint kept the default's 1000 steps and --resume ended there). */
    char v[32];
    snprintf(v, sizeof v, "%lld", (long long)fitted);
    run_put("run.--steps", v);
    run_put("run.fit", "done");
    fit_marked = 0;
    r->tp.sched.total = fitted;
    r->tp.sched.warmup = o_warmup < fitted ? o_warmup : fitted;
    llm_trainer_set_schedule(r->tr, &r->tp.sched);
    if (r->progress && !r->tty)
        fprintf(stderr, "llm-train: the schedule is fitted to --time-limit: %lld steps\n",
                (long long)fitted);
}

/* A step's line in the log (with the time spent in all-reduces under MPI). */
static void log_step(const train_run *r, const llm_step_info *info, double elapsed,
                     double tps, double *comm_last)
{
    static int warned;
    if (!r->logf)
        return;
    if (ferror(r->logf) && !warned && o_log) {   /* said now, not after the run */
        cli_warn("cannot write the log '%s': %s; training goes on (and ends with this "
                 "error)", o_log, strerror(errno ? errno : EIO));
        warned = 1;
    }
    if (r->world > 1) {
        double comm = par_comm_seconds();
        fprintf(r->logf, "{\"step\":%lld,\"loss\":%.6f,\"lr\":%.6g,\"grad_norm\":%.6f,"
                "\"tokens\":%llu,\"tokens_per_s\":%.1f,\"elapsed_s\":%.3f,\"ranks\":%d,"
                "\"allreduce_s\":%.6f}\n", (long long)info->step, info->loss, info->lr,
                info->grad_norm, (unsigned long long)info->tokens, tps, elapsed, r->world,
                comm - *comm_last);
        *comm_last = comm;
    } else {
        fprintf(r->logf, "{\"step\":%lld,\"loss\":%.6f,\"lr\":%.6g,\"grad_norm\":%.6f,"
                "\"tokens\":%llu,\"tokens_per_s\":%.1f,\"elapsed_s\":%.3f}\n",
                (long long)info->step, info->loss, info->lr, info->grad_norm,
                (unsigned long long)info->tokens, tps, elapsed);
    }
}

/* The progress line: rewritten in place on a terminal, else one line. */
static void show_progress(const train_run *r, const llm_step_info *info, double elapsed,
                          double tps, double mfu)
{
    int64_t step = info->step;
    char eta[32], val[64] = "";
    fmt_duration(eta, sizeof eta, (double)(r->total - step) * elapsed /
                                      (double)(step - r->start));
    if (!isnan(r->last_val))
        snprintf(val, sizeof val, r->cls ? " | val %.4f (acc %.3f)" : r->pairs &&
                 o_eval_samples ? " | val %.4f (BLEU %.1f)" : r->pairs ? " | val %.4f" :
                 " | val %.4f (%.3f bpb)", r->last_val, r->last_bpb);
    fprintf(stderr, "%sstep %lld/%lld | loss %.4f%s | lr %.2e | gnorm %.2f | "
            "%.0f tok/s | MFU %.0f%% | ETA %s%s", r->tty ? "\r\033[K" : "",
            (long long)step, (long long)r->total, info->loss, val, info->lr,
            info->grad_norm, tps, mfu, eta, r->tty ? "" : "\n");
}

/* Whether the schedule's length is fitted to --time-limit: a run given no
 * --steps or --epochs, a new one or one resumed that stopped before its
 * schedule was fitted (it would have gone on to the default steps). Such a
 * run says so in its checkpoints ("run.fit"), until it is fitted or its
 * schedule is over: one paused by --until, or run under mpirun (whose
 * ranks' clocks would fit different schedules), is fitted when resumed
 * alone with --time-limit. */
static int fit_to_time(const train_run *r)
{
    if ((o_resume && !run_fit_pending) || (!o_resume && !(o_time_limit > 0)) ||
        cli_given(&o_steps) || o_epochs > 0 || r->start >= r->total)
        return 0;
    run_put("run.fit", "pending");
    fit_marked = 1;
    if (o_time_limit > 0 && !o_until && r->world == 1)
        return 1;
    if (o_quiet)
        return 0;
    if (r->world > 1 && o_time_limit > 0)
        cli_warn("under mpirun the schedule is not fitted to --time-limit (the ranks would "
                 "time it differently): it runs to %lld steps unless the time runs out "
                 "first (give --steps)", (long long)r->total);
    else if (o_resume)
        cli_warn("the run in '%s' stopped before its schedule was fitted to --time-limit: "
                 "the schedule runs to %lld steps (resume with --time-limit, and no "
                 "--until, to fit the rest to it)", o_resume, (long long)r->total);
    return 0;
}

/* Steps until the schedule's end, --until, early stopping, the time limit
 * or a signal. @return the exit status; *why says how it ended (NULL: a
 * failure, nothing to save) and *last the last step taken. */
static int train_loop(train_run *r, const char **why, int64_t *last)
{
    const llm_config *cfg = llm_model_config(r->m);
    double flops_tok = llm_config_flops_per_token(cfg, r->T);
    double peak = r->progress ? llm_peak_flops() * r->world : 0;   /* ranks alike */
    double t0 = cli_now(), tlast = t0, comm_last = 0, saved = t0;
    int64_t step = r->start;
    int status = 0;
    uint64_t tokens_done = 0;
    int64_t stop_at = o_until && o_until < r->total ? o_until : r->total;
    /* Resumed where it had stopped early, or at or past --until. */
    if ((r->has_val && o_patience && r->bad_evals >= o_patience) || stop_at < step)
        stop_at = step;
    *why = step >= stop_at ? "nothing to do" : "done";
    /* The schedule is fitted after 10 steps or a tenth of the time,
     * whichever comes first, and again at every validation. */
    int fit = fit_to_time(r);
    int fitted_once = 0;
    while (step < stop_at) {
        llm_step_info info;
        int rc = llm_trainer_step(r->tr, &info);
        if (rc == LLM_ERR_INTERRUPTED && cli_stopped()) {
            /* The step under way was dropped: the run stands at the last. */
            *why = "interrupted";
            status = 128 + cli_stopped();
            break;
        }
        if (rc == LLM_ERR_NUMERIC) {
            /* Every rank sees the same reduced loss and gradient: all stop. */
            if (r->tty)
                fputc('\n', stderr);
            if (r->rank == 0) {
                cli_warn("%s", llm_errmsg());
                cli_warn("stopped without saving; the last checkpoint '%s' (if any) is kept",
                         o_checkpoint);
            }
            status = 1;
            *why = NULL;
            break;
        }
        check(rc);
        step = info.step;
        double spent = fit ? cli_now() - t0 : 0;
        if (fit && (fitted_once ? r->has_val && step % o_eval_every == 1
                                : step >= r->start + 10 || spent >= o_time_limit / 10)) {
            fitted_once = 1;
            fit_schedule(r, step, spent);
            stop_at = r->total;
        }
        int64_t total = r->total, print_every = total / 20 > 0 ? total / 20 : 1;
        tokens_done += info.tokens;
        double t = cli_now(), tps = (double)tokens_done / (t - t0);
        log_step(r, &info, t - t0, tps, &comm_last);
        /* Validation on rank 0 only: its outcome reaches the others through
         * the stop decision below. */
        if (r->has_val && r->rank == 0 && (step % o_eval_every == 0 || step == total))
            evaluate(r, step, 1);
        if (r->progress && (r->tty ? t - tlast > 0.2 || step == total
                                   : step % print_every == 0 || step == total)) {
            show_progress(r, &info, t - t0, tps, peak > 0 ? 100 * tps * flops_tok / peak : 0.0);
            tlast = t;
        }
        if (step == stop_at && stop_at < total)
            *why = "paused (resume with --resume)";
        if (r->rank == 0 && step < stop_at &&
            ((o_save_every && step % o_save_every == 0) ||
             (o_save_interval > 0 && t - saved >= o_save_interval))) {
            save_checkpoint(r);
            saved = cli_now();   /* from the end of the write: never back to back */
        }
        /* Stop decisions are agreed by all ranks every step, so that none is
         * left waiting in the next step's all-reduce. */
        int stop = (r->has_val && o_patience && r->bad_evals >= o_patience ? 1 : 0) |
                   (o_time_limit > 0 && t - t0 >= o_time_limit ? 2 : 0) | (cli_stopped() ? 4 : 0);
        stop = par_or(stop);
        if (stop & 1) {
            *why = "stopped early: no improvement in validation loss";
            break;
        }
        if (stop & 2) {
            *why = "stopped at the time limit";
            if (r->has_val && r->rank == 0 && step % o_eval_every != 0)
                evaluate(r, step, 0);
            break;
        }
        if (stop & 4) {
            *why = "interrupted";
            status = 128 + (int)par_max_u64((unsigned long long)cli_stopped());
            break;
        }
    }
    if (fit_marked && step >= r->total)
        run_put("run.fit", "done");   /* the schedule is over: nothing left to fit */
    *last = step;
    return status;
}

/* The checkpoint, the output model (unless validation already saved the
 * best), calibration, the closing line and the plot. */
static void finish(train_run *r, const char *why, int64_t step)
{
    if (r->world > 1 && why && !same_weights(r->m))
        cli_die("the ranks' weights differ at step %lld (an MPI reduction that is not "
                "identical on every rank?); nothing saved", (long long)step);
    if (r->tty)
        fputc('\n', stderr);
    if (why && r->rank == 0) {
        save_checkpoint(r);
        /* Without validation, or when nothing was validated yet, the output is
         * the latest model; otherwise it already holds the best one. */
        if (!r->has_val || isinf(r->best))
            check(llm_model_save(r->m, o_output, &r->sp));
        else if (r->cls)
            cls_calibrate(o_output, r->cval, &r->sp);
        if (!o_quiet) {
            fprintf(stderr, "llm-train: %s at step %lld; model '%s'", why, (long long)step,
                    o_output);
            if (r->has_val && !isinf(r->best) && r->cls)
                fprintf(stderr, " (best validation accuracy %.4f)", 1 - r->best);
            else if (r->has_val && !isinf(r->best) && r->pairs && o_eval_samples)
                fprintf(stderr, " (best sample BLEU %.2f)", r->best_bleu);
            else if (r->has_val && !isinf(r->best))
                fprintf(stderr, " (best validation loss %.4f)", r->best);
            fprintf(stderr, ", checkpoint '%s'\n", o_checkpoint);
        }
    }
    if (r->logf && fclose(r->logf) != 0)
        cli_die("write error on '%s': %s", o_log ? o_log : "(memory)", strerror(errno));
    r->logf = NULL;
    if (o_plot && r->rank == 0) {
        if (o_log)
            plot_file(o_log);
        else
            write_plot(r->memlog ? r->memlog : "", r->memlog_n, "(this run)");
    }
}

static void run_free(train_run *r)
{
    free(r->memlog);
    llm_trainer_free(r->tr);
    llm_batcher_free(r->batcher);
    if (r->vdata != r->data)
        llm_data_free(r->vdata);
    llm_data_free(r->data);
    llm_cls_data_free(r->ctrain);
    llm_cls_data_free(r->cval);
    pairs_set_free(&r->ptrain);
    pairs_set_free(&r->pval);
    free(r->cweights);
    llm_model_free(r->m);
    llm_tok_free(r->tok);
}

/* "a|b|c" of the names name(0), name(1), ... until NULL, into buf. */
static void choice_names(char *buf, size_t cap, const char *(*name)(int))
{
    size_t n = 0;
    buf[0] = '\0';
    for (int i = 0; name(i); i++) {
        int w = snprintf(buf + n, cap - n, "%s%s", i ? "|" : "", name(i));
        if (w < 0 || (size_t)w >= cap - n)
            cli_die("internal error: too many names for a choice");
        n += (size_t)w;
    }
}

static const char *schedule_at(int i)
{
    return llm_schedule_name((llm_schedule_kind)i);
}

/* The training defaults are the library's (llm_train_defaults()), and so
 * are the names of presets and schedules. */
static void library_defaults(void)
{
    choice_names(preset_choices, sizeof preset_choices, llm_config_preset_name);
    choice_names(schedule_choices, sizeof schedule_choices, schedule_at);
    llm_train_params d;
    llm_train_defaults(&d);
    o_batch = d.batch;
    o_steps = d.sched.total;
    o_warmup = d.sched.warmup;
    o_lr = d.sched.lr;
    o_decay_fraction = d.sched.decay_fraction;
    o_schedule = llm_schedule_name(d.sched.kind);
    o_weight_decay = d.adamw.weight_decay;
    o_beta1 = d.adamw.beta1;
    o_beta2 = d.adamw.beta2;
    o_adam_eps = d.adamw.eps;
    o_clip = d.clip;
}

int main(int argc, char **argv)
{
    cli_signals();
    /* Training writes nothing to a pipe but its messages: a reader of them
     * that goes away (2>&1 | head) must not kill the run unsaved; -o to a
     * pipe gets a write error instead. */
    signal(SIGPIPE, SIG_IGN);
    par_init(&argc, &argv);
    library_defaults();
    for (int i = 0; i < prog.nopts && i < 256; i++) {
        char v[4096];
        if (cli_opt_string(&prog.opts[i], v, sizeof v) && !(run_defaults[i] = strdup(v)))
            cli_die("out of memory");
    }
    int first = cli_parse(&prog, argc, argv, NULL);
    if (o_plot_only) {
        if (!o_plot || !o_log)
            cli_usage("--plot-only needs --plot FILE and --log FILE");
        if (first < argc)
            cli_usage("--plot-only trains nothing: no input files");
        plot_file(o_log);
        return 0;
    }
    if (o_override && !o_resume)
        cli_usage("--override needs --resume");
    if (o_resume)
        run_apply(o_resume, &first, &argc, &argv);
    train_run r = { .best = INFINITY, .last_val = NAN, .last_bpb = NAN,
                    .best_loss = INFINITY, .best_bleu = -INFINITY };
    if (o_resume && !run_val_changed)
        restore_best(&r, o_resume);
    else if (o_resume && !o_quiet)
        cli_warn("--override changed what validation measures (%s%s): the run's best "
                 "score starts anew", strchr(run_val_changed, ' ') ? "" : "--",
                 run_val_changed);
    /* Under mpirun: rank 0 alone speaks and writes files (see "Scaling out"
     * in llm-train(1)); every rank trains. */
    r.rank = par_rank();
    r.world = par_world();
    if (r.rank > 0) {
        o_quiet = 1;
        o_log = NULL;
    }
    if (!o_output)
        cli_usage("missing --output FILE");
    if (o_resume && o_init)
        cli_usage("--resume and --init cannot be combined");
    if (o_val && o_val_fraction > 0)
        cli_usage("--val and --val-fraction cannot be combined");
    r.cls = strcmp(o_task, "classify") == 0;
    r.pairs = strcmp(o_task, "pairs") == 0;
    if (r.cls && !o_model && !o_init && !o_resume && r.rank == 0 && r.world == 1)
        return one_command(&prog, first, argc, argv);
    check_combinations(&r);
    par_device(o_device);   /* under MPI with NCCL: this rank's GPU, before CUDA starts */
    check(llm_device_check(o_device));
    char *ckpt_default = NULL;
    if (!o_checkpoint) {
        size_t n = strlen(o_output) + 6;
        ckpt_default = malloc(n);
        if (!ckpt_default)
            cli_die("out of memory");
        snprintf(ckpt_default, n, "%s.ckpt", o_output);
        o_checkpoint = ckpt_default;
    }
    run_record(first, argc, argv);
    check_distinct(first, argc, argv);
    if (r.rank == 0) {
        check_writable(o_output);
        check_writable(o_checkpoint);
        lock_output(o_output);
        lock_output(o_checkpoint);
        /* A run killed while writing (SIGKILL, power) leaves its temporary
         * files; this one, holding the lock, is about to write the same
         * targets. */
        int stale = llm_remove_stale_temps(o_checkpoint) + llm_remove_stale_temps(o_output);
        if (stale && !o_quiet)
            fprintf(stderr, "llm-train: removed %d temporary file%s left by an interrupted "
                    "run\n", stale, stale == 1 ? "" : "s");
    }
    r.progress = !o_quiet && (o_progress || cli_isatty_stderr());
    r.tty = r.progress && cli_isatty_stderr();
    r.threads = llm_set_threads(o_threads);
    if (!o_threads && par_local() > 1)   /* share this machine's cores */
        r.threads = llm_set_threads(r.threads / par_local() > 0 ? r.threads / par_local() : 1);

    load_model(&r);
    if (r.cls)
        cls_prepare(r.tok, r.m, r.T, first, argc, argv, &r.ctrain, &r.cval, &r.cweights);
    else if (r.pairs)
        pairs_prepare(r.m, r.tok, r.T, first, argc, argv, &r.ptrain, &r.pval);
    else
        load_lm_data(&r, first, argc, argv);
    r.has_val = r.cls ? r.cval != NULL : r.pairs ? r.pval.d != NULL : r.vend > r.vbegin;
    make_trainer(&r);
    open_outputs(&r);
    announce(&r);

    cli_catch_stop();   /* the first SIGINT/SIGTERM: save and stop */
    const char *why;
    int64_t step;
    int status = train_loop(&r, &why, &step);
    finish(&r, why, step);
    run_free(&r);
    free(ckpt_default);
    par_finalize();
    return status;
}
