/* llm-generate.c: continue prompts with a language model, one prompt per
 * input line (or one -p prompt), several prompts decoded together. Options,
 * I/O, stop strings and record bookkeeping only; the model and its key/value
 * cache are lib/model/infer.c, sampling is lib/model/sample.c. */
#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli.h"

/* Option values, holding their defaults (--help prints them from here). */
static const char *o_model, *o_prompt;
static int o_max_tokens = 128;
static double o_temperature = 0.8, o_top_p = 0.95, o_min_p = 0.05;
static int o_top_k = 40, o_repeat_last_n = 64;
static double o_repeat_penalty = 1.0, o_presence = 0.0, o_frequency = 0.0;
static int64_t o_seed = 1;
static cli_list o_stop;
static int o_samples = 1, o_batch = 16, o_threads, o_quiet;
static const char *o_format = "text";
static int o_logprobs, o_echo, o_null, o_no_mmap;
static const char *o_device = "cpu", *o_precision = "f32";
static int o_chat;
static const char *o_chat_template, *o_system;
static int o_beams = 1;
static double o_length_penalty = 1.0;

static const cli_opt opts[] = {
    {"model", 'm', CLI_STRING, &o_model, "FILE", "model file to generate with (required)",
     NULL, 0, 0, 0, CLI_COMPLETE_FILE, 1},
    {"prompt", 'p', CLI_STRING, &o_prompt, "TEXT",
     "continue this one prompt, streaming the text as it comes, instead of reading "
     "prompt lines", NULL, 0, 0, 0, CLI_COMPLETE_NONE, 1},
    {"chat", 0, CLI_FLAG, &o_chat, NULL,
     "wrap each prompt as a user's turn in the model's chat layout (an instruct model's "
     "template), so that the model answers it", NULL, 0, 0, 0, CLI_COMPLETE_NONE, 1},
    {"chat-template", 0, CLI_CHOICE, &o_chat_template, "NAME",
     "with --chat: this layout instead of the model's own (chatml: <|im_start|>role ... "
     "<|im_end|>; llama2: [INST] ... [/INST])", "chatml|llama2", 0, 0, 0,
     CLI_COMPLETE_CHOICE, 1},
    {"system", 0, CLI_STRING, &o_system, "TEXT",
     "with --chat: begin each conversation with this system turn instead of the one the "
     "model's template adds by default (if any)", NULL,
     0, 0, 0, CLI_COMPLETE_NONE, 1},
    {"max-tokens", 'n', CLI_INT, &o_max_tokens, "N",
     "generate at most N tokens per sample (less than the model's context; when not "
     "given, at most half of it)", NULL, 1,
     1 << 20, 0, CLI_COMPLETE_NONE, 0},
    {"temperature", 0, CLI_DOUBLE, &o_temperature, "X",
     "sampling temperature; 0 picks the most likely token every time (greedy)", NULL,
     0, 1e6, 0, CLI_COMPLETE_NONE, 0},
    {"top-k", 0, CLI_INT, &o_top_k, "N", "sample among the N most likely tokens (0: all)",
     NULL, 0, 1 << 24, 0, CLI_COMPLETE_NONE, 0},
    {"top-p", 0, CLI_DOUBLE, &o_top_p, "X",
     "sample among the most likely tokens whose probabilities sum to X, in (0, 1] "
     "(1: off)", NULL, 0, 1, 0, CLI_COMPLETE_NONE, 0},
    {"min-p", 0, CLI_DOUBLE, &o_min_p, "X",
     "drop tokens less likely than X times the most likely one, in [0, 1] (0: off)",
     NULL, 0, 1, 0, CLI_COMPLETE_NONE, 0},
    {"repeat-penalty", 0, CLI_DOUBLE, &o_repeat_penalty, "X",
     "divide positive (multiply negative) logits of recent tokens by X > 0 (1: off)",
     NULL, 0, 1e6, 0, CLI_COMPLETE_NONE, 0},
    {"repeat-last-n", 0, CLI_INT, &o_repeat_last_n, "N",
     "recent tokens the penalties look at (0: none, -1: the whole sequence)", NULL, -1,
     1 << 24, 0, CLI_COMPLETE_NONE, 0},
    {"presence-penalty", 0, CLI_DOUBLE, &o_presence, "X",
     "subtract X from the logit of every recent token (negative: reward)", NULL, -1e6,
     1e6, 0, CLI_COMPLETE_NONE, 0},
    {"frequency-penalty", 0, CLI_DOUBLE, &o_frequency, "X",
     "subtract X times its count from the logit of every recent token", NULL, -1e6, 1e6,
     0, CLI_COMPLETE_NONE, 0},
    {"beams", 0, CLI_INT, &o_beams, "N",
     "beam search: keep the N most likely outputs at each step and write the best "
     "(1: greedy or sampling; with N > 1 the sampling options do not apply)", NULL, 1, 256,
     0, CLI_COMPLETE_NONE, 0},
    {"length-penalty", 0, CLI_DOUBLE, &o_length_penalty, "X",
     "beam search: rank finished outputs by log-probability / length^X (0: the plain "
     "sum, which favours short outputs)", NULL, -100, 100, 0, CLI_COMPLETE_NONE, 0},
    {"seed", 0, CLI_INT64, &o_seed, "N",
     "seed for sampling; each prompt line and sample draws from its own stream, so "
     "results do not depend on --batch", NULL, 0, 9.2e18, 0, CLI_COMPLETE_NONE, 0},
    {"stop", 0, CLI_LIST, &o_stop, "TEXT",
     "end a sample where TEXT appears in it, even across tokens, leaving TEXT out "
     "(repeatable)", NULL, 0, 0, 0, CLI_COMPLETE_NONE, 1},
    {"samples", 0, CLI_INT, &o_samples, "N", "samples (output records) per prompt", NULL,
     1, 1000000, 0, CLI_COMPLETE_NONE, 0},
    {"format", 0, CLI_CHOICE, &o_format, "FORMAT",
     "text: the continuation, one line per record (newline, tab and backslash "
     "escaped); jsonl: a JSON object per record", "text|jsonl", 0, 0, 0,
     CLI_COMPLETE_CHOICE, 0},
    {"logprobs", 0, CLI_FLAG, &o_logprobs, NULL,
     "jsonl: add the log-probability of each generated token", NULL, 0, 0, 0,
     CLI_COMPLETE_NONE, 1},
    {"echo", 0, CLI_FLAG, &o_echo, NULL, "begin each record's text with its prompt", NULL,
     0, 0, 0, CLI_COMPLETE_NONE, 1},
    {"null", '0', CLI_FLAG, &o_null, NULL,
     "text: end records with NUL instead of newline, and escape nothing", NULL, 0, 0, 0,
     CLI_COMPLETE_NONE, 1},
    {"batch", 'b', CLI_INT, &o_batch, "N",
     "decode up to N samples together (throughput; the output is the same)", NULL, 1,
     4096, 0, CLI_COMPLETE_NONE, 0},
    CLI_OPT_THREADS(&o_threads),
    CLI_OPT_DEVICE(&o_device),
    {"precision", 0, CLI_CHOICE, &o_precision, "P",
     "weights of the matrix products: f32; f16 copies for each generated token (half "
     "the memory traffic, up to twice the speed; prompts still read f32); q8: int8 "
     "copies in blocks of 32 with a scale and an offset each, inputs in int16, for "
     "prompts and tokens (under a third of the traffic); or bf16: bfloat16 copies, inputs rounded "
     "alike, sums in f32 (as llm-train --precision bf16 computes; about twice f32's "
     "speed where the CPU has AVX512_BF16); q8 and bf16 CPU only", "f32|f16|q8|bf16",
     0, 0, 0,
     CLI_COMPLETE_CHOICE, 0},
    {"no-mmap", 0, CLI_FLAG, &o_no_mmap, NULL,
     "f32: copy the weights out of the model file's mapping into memory of this "
     "process's own, in huge pages where the system has them (faster where files are "
     "mapped in 4 KiB pages; not shared with other processes)", NULL, 0, 0, 0,
     CLI_COMPLETE_NONE, 1},
    {"quiet", 'q', CLI_FLAG, &o_quiet, NULL, "print no warnings and no summary", NULL, 0,
     0, 0, CLI_COMPLETE_NONE, 1},
    CLI_OPT_HELP,
    CLI_OPT_VERSION,
};

static const cli_prog prog = {
    "llm-generate", "[FILE]...",
    "Continue prompts with a language model: each input line is a prompt, or one -p "
    "prompt. With a model trained by llm-train --task pairs each line is an input "
    "(\\t, \\n and \\\\ unescaped) and each record the model's output, greedy by "
    "default.",
    NULL, 0, opts, (int)(sizeof opts / sizeof opts[0]),
};

static void check(int rc)
{
    if (rc)
        cli_die_status(rc);
}

static void *xmalloc(size_t n)
{
    void *p = malloc(n ? n : 1);
    if (!p)
        cli_die("out of memory");
    return p;
}

/* ------------------------------------------------------------------------ */
/* Text helpers. */

/* Appends s[0..n) to b with every invalid UTF-8 sequence replaced by U+FFFD.
 * @return how many replacements were made. */
static int put_utf8_repaired(llm_buf *b, const char *s, size_t n)
{
    size_t fixed;
    check(llm_utf8_repair(s, n, b, &fixed));
    return (int)fixed;
}

/* Text records: one line each, so newline, CR, tab and backslash are
 * escaped as \n, \r, \t and \\ (undo with printf '%b'). */
static void put_escaped(llm_buf *b, const char *s, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        const char *e = NULL;
        switch (s[i]) {
        case '\n': e = "\\n"; break;
        case '\r': e = "\\r"; break;
        case '\t': e = "\\t"; break;
        case '\\': e = "\\\\"; break;
        default: break;
        }
        if (e)
            check(llm_buf_append(b, e, 2));
        else
            check(llm_buf_append(b, s + i, 1));
    }
}

/* Stop strings. */
static size_t g_stop_max;

/* The offset where the first stop string occurs in text[from..len), or -1. */
static long find_stop(const char *text, size_t len, size_t from)
{
    long best = -1;
    for (int i = 0; i < o_stop.n; i++) {
        size_t sl = strlen(o_stop.items[i]);
        if (sl > len)
            continue;
        const char *p = memmem(text + from, len - from, o_stop.items[i], sl);
        if (p && (best < 0 || p - text < best))
            best = p - text;
    }
    return best;
}

/* Bytes at the end of text[0..len) that could begin a stop string: held
 * back from streaming until the next token decides. */
static size_t stop_holdback(const char *text, size_t len)
{
    size_t keep = 0;
    for (int i = 0; i < o_stop.n; i++) {
        size_t sl = strlen(o_stop.items[i]);
        for (size_t k = sl - 1 < len ? sl - 1 : len; k > keep; k--)
            if (memcmp(text + len - k, o_stop.items[i], k) == 0) {
                keep = k;
                break;
            }
    }
    return keep;
}

/* ------------------------------------------------------------------------ */
/* Jobs: one (prompt, sample) each; records come out in job order. */

typedef struct {
    int64_t line;          /* 1-based input line (1 for -p) */
    int samples;           /* samples started so far */
    int refs;              /* jobs alive */
    char *prompt;          /* valid UTF-8 (repaired) */
    size_t prompt_len;
    int32_t *ids;          /* prompt ids, after truncation */
    size_t n_ids;
} prompt_t;

typedef struct {
    prompt_t *pr;          /* shared by the samples of one prompt */
    int sample;            /* 0-based */
    llm_rng rng;
    llm_ids hist;          /* prompt and generated ids, for the penalties */
    llm_buf text;          /* generated text */
    float *lp;             /* logprobs of generated tokens */
    int ntok;
    int32_t next;          /* the token to feed at the next step */
    const char *finish;    /* NULL while running */
    size_t streamed;       /* bytes of text already written (-p text) */
    int started;           /* anything written yet (-p text) */
} job_t;

/* The seed of job (line, sample): the same whatever the batching. */
static uint64_t job_seed(uint64_t seed, uint64_t line, uint64_t sample)
{
    uint64_t h = seed;
    uint64_t v[2] = { line, sample };
    for (int i = 0; i < 2; i++) {
        h ^= v[i] + 0x9E3779B97F4A7C15ULL + (h << 6) + (h >> 2);
        h ^= h >> 30;
        h *= 0xBF58476D1CE4E5B9ULL;
        h ^= h >> 27;
        h *= 0x94D049BB133111EBULL;
        h ^= h >> 31;
    }
    return h;
}

static const llm_tok *g_tok;
static llm_sampler *g_sampler;
static int g_eos, g_V, g_stream, g_jsonl;
static FILE *g_out;

/* Applies a sampled token t, of log-probability lp, to a job: append,
 * check the ends. */
static void advance(job_t *j, int32_t t, float lp)
{
    j->lp[j->ntok++] = lp;
    if (t == g_eos) {
        j->finish = "eos";
        return;
    }
    int prev = j->hist.len ? j->hist.data[j->hist.len - 1] : -1;
    size_t old = j->text.len;
    check(llm_tok_decode_piece(g_tok, prev, t, &j->text));
    check(llm_ids_push(&j->hist, t));
    if (o_stop.n) {
        size_t from = old + 1 > g_stop_max ? old + 1 - g_stop_max : 0;
        long at = find_stop(j->text.data, j->text.len, from);
        if (at >= 0) {
            j->text.len = (size_t)at;
            j->text.data[at] = '\0';
            j->finish = "stop";
            return;
        }
    }
    if (j->ntok >= o_max_tokens)
        j->finish = "length";
    j->next = t;
}

/* -p text: writes what is safe to show of the front job, now. */
static void stream(job_t *j)
{
    llm_buf b = { 0 };
    if (!j->started && o_echo)
        check(llm_buf_append(&b, j->pr->prompt, j->pr->prompt_len));
    j->started = 1;
    size_t upto = j->finish ? j->text.len : j->text.len - stop_holdback(j->text.data,
                                                                        j->text.len);
    if (upto > j->streamed) {
        check(llm_buf_append(&b, j->text.data + j->streamed, upto - j->streamed));
        j->streamed = upto;
    }
    if (j->finish)
        check(llm_buf_append(&b, o_null ? "" : "\n", 1));
    if (b.len) {
        cli_write(b.data, b.len, g_out);
        cli_flush(g_out);
    }
    llm_buf_free(&b);
}

/* A finished job's record. */
static void write_record(job_t *j)
{
    llm_buf b = { 0 };
    const prompt_t *p = j->pr;
    if (g_jsonl) {
        llm_buf t = { 0 };
        if (o_echo)
            check(llm_buf_append(&t, p->prompt, p->prompt_len));
        put_utf8_repaired(&t, j->text.data, j->text.len);
        check(llm_buf_append(&b, "{\"prompt\":", 10));
        check(llm_json_put_string(&b, p->prompt, p->prompt_len));
        check(llm_buf_append(&b, ",\"text\":", 8));
        check(llm_json_put_string(&b, t.data ? t.data : "", t.len));
        char num[96];
        int n = snprintf(num, sizeof num, ",\"tokens\":%d,\"finish\":\"%s\"", j->ntok,
                         j->finish);
        check(llm_buf_append(&b, num, (size_t)n));
        if (o_samples > 1) {
            n = snprintf(num, sizeof num, ",\"sample\":%d", j->sample);
            check(llm_buf_append(&b, num, (size_t)n));
        }
        if (o_logprobs) {
            check(llm_buf_append(&b, ",\"logprobs\":[", 13));
            for (int i = 0; i < j->ntok; i++) {
                n = snprintf(num, sizeof num, "%s%.6g", i ? "," : "", (double)j->lp[i]);
                check(llm_buf_append(&b, num, (size_t)n));
            }
            check(llm_buf_append(&b, "]", 1));
        }
        check(llm_buf_append(&b, "}\n", 2));
        llm_buf_free(&t);
    } else if (o_null) {
        if (o_echo)
            check(llm_buf_append(&b, p->prompt, p->prompt_len));
        check(llm_buf_append(&b, j->text.data ? j->text.data : "", j->text.len));
        check(llm_buf_append(&b, "", 1));
    } else {
        if (o_echo)
            put_escaped(&b, p->prompt, p->prompt_len);
        put_escaped(&b, j->text.data ? j->text.data : "", j->text.len);
        check(llm_buf_append(&b, "\n", 1));
    }
    cli_write(b.data, b.len, g_out);
    cli_flush(g_out);
    llm_buf_free(&b);
}

/* ------------------------------------------------------------------------ */
/* Input: prompt lines from the files in turn, read with read(2) into our
 * own buffer (never through stdio), so that we know when no whole line is
 * waiting: then the prompts already started are decoded instead of waiting
 * for a full batch (interactive pipes), as llm-classify does. */

typedef struct {
    char **files;
    int nfiles, at;
    FILE *f;               /* from cli_open(); only its descriptor is read */
    const char *name;
    char *buf;
    size_t cap, beg, end;
    int eof;               /* the open file has ended */
    int64_t lineno;        /* within the open file */
    int64_t line;          /* across all inputs, for seeds */
} input_t;

/* Opens the next input when none is open. @return 0 when all are done. */
static int input_open(input_t *in)
{
    if (in->f)
        return 1;
    if (in->at >= in->nfiles && !(in->nfiles == 0 && in->at == 0))
        return 0;
    const char *path = in->nfiles ? in->files[in->at] : "-";
    in->at++;
    in->f = cli_open(path);
    in->name = strcmp(path, "-") == 0 ? "(standard input)" : path;
    in->beg = in->end = 0;
    in->eof = 0;
    in->lineno = 0;
    return 1;
}

static void input_close(input_t *in)
{
    if (in->f)
        cli_close(in->f);
    in->f = NULL;
}

static int has_line(const input_t *in)
{
    return in->beg < in->end &&
           (in->eof || memchr(in->buf + in->beg, '\n', in->end - in->beg));
}

/* Whether the next line (or the end) can be had without waiting. */
static int input_ready(input_t *in)
{
    if (!input_open(in) || in->eof || has_line(in))
        return 1;
    struct pollfd p = { fileno(in->f), POLLIN, 0 };
    return poll(&p, 1, 0) > 0;
}

/* The next prompt line, or 0 at the end of all inputs. */
static int next_line(input_t *in, const char **line, size_t *len, int64_t *lineno,
                     const char **name)
{
    while (input_open(in)) {
        char *nl = in->beg < in->end ? memchr(in->buf + in->beg, '\n', in->end - in->beg)
                                     : NULL;
        if (nl || (in->eof && in->beg < in->end)) {
            *line = in->buf + in->beg;
            *len = nl ? (size_t)(nl - *line) : in->end - in->beg;
            in->beg += *len + (nl != NULL);
            in->line++;
            *lineno = ++in->lineno;
            *name = in->name;
            if (*lineno == 1)   /* a byte-order mark before the first line */
                llm_utf8_skip_bom(line, len);
            return 1;
        }
        if (in->eof) {
            input_close(in);
            continue;
        }
        if (in->beg > 0) {
            memmove(in->buf, in->buf + in->beg, in->end - in->beg);
            in->end -= in->beg;
            in->beg = 0;
        }
        if (in->end == in->cap) {
            size_t nc = in->cap ? 2 * in->cap : 1 << 16;
            char *nb = realloc(in->buf, nc);
            if (!nb)
                cli_die("'%s', line %lld: out of memory for a line of %zu bytes", in->name,
                        (long long)in->lineno + 1, in->end);
            in->buf = nb;
            in->cap = nc;
        }
        if (!cli_wait_input(fileno(in->f)))   /* SIGINT or SIGTERM ends an idle input */
            return 0;
        ssize_t n = read(fileno(in->f), in->buf + in->end, in->cap - in->end);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0)
            cli_die("cannot read '%s': %s", in->name, strerror(errno));
        if (n == 0)
            in->eof = 1;
        in->end += (size_t)n;
    }
    return 0;
}

static int g_ctx, g_bos, g_pairs;
static const llm_model *g_model;
static const char *g_chat;   /* --chat: the layout, else NULL */
static const char *g_chat_system;   /* the model's default system turn, or NULL */

static void free_prompt(prompt_t *p)
{
    free(p->prompt);
    free(p->ids);
    free(p);
}

/* The first input line the vocabulary cannot encode, named (empty while
 * there is none): the lines before it are generated and written, then the
 * run ends with this error. */
static char g_unencodable[512];

/* An encoding's failure (a byte the vocabulary cannot hold), named by the
 * prompt (the end of the run) or the input line (kept in g_unencodable).
 * @return rc */
static int check_encoded(int rc, const char *name, int64_t lineno)
{
    if (rc && o_prompt)
        cli_die("the prompt: %s", llm_errmsg());
    if (rc)
        snprintf(g_unencodable, sizeof g_unencodable, "'%s', line %lld: %s", name,
                 (long long)lineno, llm_errmsg());
    return rc;
}

/* Builds a prompt: repaired text, BOS + ids, truncated on the left.
 * @return NULL for a line the vocabulary cannot encode (g_unencodable) */
static prompt_t *make_prompt(const char *line, size_t len, const char *name,
                             int64_t lineno, int64_t seqline)
{
    prompt_t *p = xmalloc(sizeof *p);
    memset(p, 0, sizeof *p);
    p->line = seqline;
    if (len && line[len - 1] == '\r' && !o_prompt)
        len--;
    llm_buf t = { 0 };
    check(llm_buf_append(&t, "", 0));
    int fixed = put_utf8_repaired(&t, line, len);
    if (fixed && !o_quiet) {
        if (o_prompt)
            cli_warn("the prompt is not valid UTF-8: %d bad sequence%s replaced by U+FFFD",
                     fixed, fixed == 1 ? "" : "s");
        else
            cli_warn("'%s', line %lld: invalid UTF-8: %d bad sequence%s replaced by U+FFFD",
                     name, (long long)lineno, fixed, fixed == 1 ? "" : "s");
    }
    p->prompt = t.data;
    p->prompt_len = t.len;
    llm_ids ids = { 0 };
    int rc;   /* an encoding's failure: the line's own bytes */
    if (g_pairs) {
        llm_buf in = { 0 };
        check(llm_unescape(p->prompt, p->prompt_len, &in));
        check(llm_buf_append(&in, "", 0));
        rc = check_encoded(llm_pairs_encode(g_model, g_tok, in.data, in.len, NULL, 0, &ids,
                                            NULL), name, lineno);
        llm_buf_free(&in);
    } else if (g_chat) {
        const char *sys = o_system ? o_system : g_chat_system;
        rc = llm_chat_encode(g_tok, g_chat, sys, sys ? strlen(sys) : 0, p->prompt,
                             p->prompt_len, &ids);
        if (rc == LLM_ERR_RANGE)   /* the line's own bytes */
            rc = check_encoded(rc, name, lineno);
        else if (rc)   /* the layout's: every line's */
            cli_die("%s", llm_errmsg());
    } else {
        /* BOS first where the tokenizer's users put it; an empty prompt
         * starts from BOS, else EOS, in any case. */
        if (g_bos >= 0 && llm_tok_add_bos(g_tok))
            check(llm_ids_push(&ids, g_bos));
        rc = check_encoded(llm_tok_encode(g_tok, p->prompt, p->prompt_len, &ids), name, lineno);
        if (!rc && ids.len == 0 && (g_bos >= 0 || g_eos >= 0))
            check(llm_ids_push(&ids, g_bos >= 0 ? g_bos : g_eos));
    }
    if (rc) {
        llm_ids_free(&ids);
        free_prompt(p);
        return NULL;
    }
    if (ids.len == 0)
        cli_die("the tokenizer has neither BOS nor EOS: cannot start from an empty prompt");
    size_t room = (size_t)(g_ctx - o_max_tokens);
    if (ids.len > room) {
        if (!o_quiet) {
            if (o_prompt)
                cli_warn("the prompt's %zu tokens do not fit the context (%d) with "
                         "--max-tokens %d: keeping its last %zu", ids.len, g_ctx,
                         o_max_tokens, room);
            else
                cli_warn("'%s', line %lld: the prompt's %zu tokens do not fit the "
                         "context (%d) with --max-tokens %d: keeping its last %zu", name,
                         (long long)lineno, ids.len, g_ctx, o_max_tokens, room);
        }
        memmove(ids.data, ids.data + ids.len - room, room * sizeof *ids.data);
        ids.len = room;
    }
    p->ids = ids.data;
    p->n_ids = ids.len;
    return p;
}

/* A job for the next sample of p in session sequence q, emptied; the
 * caller prefills it (advance_jobs(), beside the running jobs' steps). */
static job_t *start_job(prompt_t *p, llm_session *s, int q)
{
    job_t *j = xmalloc(sizeof *j);
    memset(j, 0, sizeof *j);
    j->pr = p;
    j->sample = p->samples++;
    p->refs++;
    llm_rng_seed(&j->rng, job_seed((uint64_t)o_seed, (uint64_t)p->line,
                                   (uint64_t)j->sample));
    j->lp = xmalloc((size_t)o_max_tokens * sizeof *j->lp);
    check(llm_buf_append(&j->text, "", 0));
    check(llm_ids_reserve(&j->hist, p->n_ids + (size_t)o_max_tokens));
    for (size_t i = 0; i < p->n_ids; i++)
        check(llm_ids_push(&j->hist, p->ids[i]));
    check(llm_session_clear(s, q));
    return j;
}

/* Frees a job, and its prompt with the last of its `samples` samples. */
static void free_job(job_t *j, int samples)
{
    if (!j)
        return;
    prompt_t *p = j->pr;
    if (--p->refs == 0 && p->samples == samples)
        free_prompt(p);
    llm_ids_free(&j->hist);
    llm_buf_free(&j->text);
    free(j->lp);
    free(j);
}

/* ------------------------------------------------------------------------ */
/* Beam search (--beams N > 1): prompts in groups of `groups`, each group
 * searched to its end (lib/model/beam.c) before the next starts. */

static void run_beams(llm_session *s, input_t *in, int groups, uint64_t *records,
                      uint64_t *tokens)
{
    prompt_t **pr = xmalloc((size_t)groups * sizeof *pr);
    const int32_t **ids = xmalloc((size_t)groups * sizeof *ids);
    size_t *lens = xmalloc((size_t)groups * sizeof *lens);
    int *fin = xmalloc((size_t)groups * sizeof *fin);
    llm_ids *out = xmalloc((size_t)groups * sizeof *out);
    memset(out, 0, (size_t)groups * sizeof *out);
    llm_beam_params bp = { o_beams, o_length_penalty, o_max_tokens };
    int eof = 0;
    while (!eof && !cli_stopped()) {
        int n = 0;
        while (n < groups) {
            if (o_prompt) {
                if (in->at++ > 0) {
                    eof = 1;
                    break;
                }
                pr[n++] = make_prompt(o_prompt, strlen(o_prompt), "", 1, 1);
                continue;
            }
            const char *line, *name;
            size_t len;
            int64_t lineno;
            if (n && !input_ready(in))   /* search what has come rather than wait */
                break;
            if (!next_line(in, &line, &len, &lineno, &name)) {
                eof = 1;
                break;
            }
            if (!(pr[n] = make_prompt(line, len, name, lineno, in->line))) {
                eof = 1;   /* the lines before it are searched first */
                break;
            }
            n++;
        }
        if (n == 0)
            break;
        for (int i = 0; i < n; i++) {
            ids[i] = pr[i]->ids;
            lens[i] = pr[i]->n_ids;
            out[i].len = 0;
        }
        check(llm_beam_search(s, ids, lens, n, g_eos, &bp, out, NULL, fin));
        for (int i = 0; i < n; i++) {
            job_t j;
            memset(&j, 0, sizeof j);
            j.pr = pr[i];
            check(llm_buf_append(&j.text, "", 0));
            check(llm_tok_decode(g_tok, out[i].data, out[i].len, &j.text));
            j.ntok = (int)out[i].len + fin[i];
            j.finish = fin[i] ? "eos" : "length";
            write_record(&j);
            *tokens += (uint64_t)j.ntok;
            (*records)++;
            llm_buf_free(&j.text);
            free_prompt(pr[i]);
        }
    }
    for (int i = 0; i < groups; i++)
        llm_ids_free(&out[i]);
    free(out);
    free(fin);
    free(lens);
    free(ids);
    free(pr);
}

/* Usage errors of option combinations, before anything is loaded. */
static void check_combinations(int first, int argc)
{
    if (!o_model)
        cli_usage("missing --model FILE");
    if (o_logprobs && !g_jsonl)
        cli_usage("--logprobs needs --format jsonl");
    if (o_null && g_jsonl)
        cli_usage("--null applies to --format text only");
    if (o_prompt && first < argc)
        cli_usage("--prompt and input files cannot be combined");
    if (o_beams > 1 && (o_samples > 1 || o_logprobs || o_stop.n))
        cli_usage("--beams %d writes the one best output: not with --%s", o_beams,
                  o_samples > 1 ? "samples" : o_logprobs ? "logprobs" : "stop");
    if (o_beams > 1 && cli_given(&o_temperature) && o_temperature > 0)
        cli_usage("--beams searches, it does not sample: --temperature applies with "
                  "--beams 1");
    if (cli_given(&o_length_penalty) && o_beams == 1)
        cli_usage("--length-penalty needs --beams N > 1");
    for (int i = 0; i < o_stop.n; i++) {
        size_t l = strlen(o_stop.items[i]);
        if (l == 0)
            cli_usage("--stop needs a non-empty string");
        if (l > g_stop_max)
            g_stop_max = l;
    }
}

/* The model (its copies for --precision) and its tokenizer, and what
 * the jobs read of them (g_*). */
static void load_model(llm_model **mp, llm_tok **tokp)
{
    llm_model *m;
    check(llm_model_load(o_model, o_device, &m));
    if (llm_model_n_labels(m))
        cli_usage("'%s' is a classifier: it labels text (llm-classify), it does not continue it",
                  o_model);
    cli_precision(m, o_precision);
    if (strcmp(o_precision, "f32") == 0 && o_no_mmap)
        check(llm_model_own(m));
    llm_tok *tok;
    check(llm_tok_load(o_model, &tok));
    const llm_config *cfg = llm_model_config(m);
    g_V = cfg->vocab_size;
    g_ctx = cfg->context;
    if (llm_tok_vocab_size(tok) != g_V)
        cli_die("'%s': the tokenizer has %d pieces, the model %d", o_model,
                llm_tok_vocab_size(tok), g_V);
    if (!cli_given(&o_max_tokens) && o_max_tokens > g_ctx / 2)
        o_max_tokens = g_ctx / 2 > 0 ? g_ctx / 2 : 1;   /* leave room for the prompt */
    if (o_max_tokens >= g_ctx)
        cli_usage("--max-tokens %d must be less than the model's context (%d)",
                  o_max_tokens, g_ctx);
    g_tok = tok;
    if (o_chat) {
        g_chat = o_chat_template ? o_chat_template : llm_model_chat_template(m);
        if (!g_chat)
            cli_usage("--chat: '%s' has no chat template; name one with --chat-template",
                      o_model);
        if (!o_chat_template || strcmp(o_chat_template, g_chat) == 0)
            g_chat_system = llm_model_chat_system(m);
    } else if (o_chat_template || o_system) {
        cli_usage("--%s needs --chat", o_system ? "system" : "chat-template");
    }
    g_bos = llm_tok_bos_id(tok);
    g_eos = llm_tok_eos_id(tok);
    g_model = m;
    g_pairs = llm_model_pairs(m) != NULL;
    if (g_pairs && o_chat)
        cli_usage("'%s' writes outputs for inputs in its own layout: no --chat", o_model);
    *mp = m;
    *tokp = tok;
}

/* The jobs of a sampling run: one per session sequence at most (slot), and
 * the started ones in record order (queue), written as they finish. */
typedef struct {
    int B;
    llm_session *s;
    float *logits;          /* (B, V) */
    job_t **slot;           /* (B) by session sequence */
    job_t **queue;
    size_t qcap, qhead, qlen;
    prompt_t *cur;          /* the prompt whose samples are being started */
    int eof;
    uint64_t tokens, records;
    /* One step's sequences, tokens, streams, histories and log-probabilities;
     * the prompts of the jobs started together. */
    const int32_t **ptoks;
    int *plens;
    int *seqs;
    int32_t *toks;
    llm_rng *rngs;
    const int32_t **hists;
    size_t *nhist;
    float *lps;
} decoder;

static void queue_push(decoder *d, job_t *j)
{
    if (d->qhead + d->qlen == d->qcap) {
        memmove(d->queue, d->queue + d->qhead, d->qlen * sizeof *d->queue);
        d->qhead = 0;
        if (d->qlen == d->qcap) {
            d->qcap *= 2;
            d->queue = realloc(d->queue, d->qcap * sizeof *d->queue);
            if (!d->queue)
                cli_die("out of memory");
        }
    }
    d->queue[d->qhead + d->qlen++] = j;
}

/* Jobs into free slots, in input order: their sequences and prompts to
 * d->seqs, ptoks and plens from index n on. @return how many. */
static int start_jobs(decoder *d, input_t *in, int n)
{
    int n0 = n;
    for (int q = 0; q < d->B && !cli_stopped(); q++) {
        if (d->slot[q])
            continue;
        if (!d->cur) {
            if (d->eof)
                break;
            if (o_prompt) {
                if (in->at++ > 0) {
                    d->eof = 1;
                    break;
                }
                d->cur = make_prompt(o_prompt, strlen(o_prompt), "", 1, 1);
            } else {
                const char *line, *name;
                size_t len;
                int64_t lineno;
                /* Decode what has started rather than wait for input. */
                if (d->qlen && !input_ready(in))
                    break;
                if (!next_line(in, &line, &len, &lineno, &name)) {
                    d->eof = 1;
                    break;
                }
                d->cur = make_prompt(line, len, name, lineno, in->line);
                if (!d->cur) {   /* the lines before it are finished first */
                    d->eof = 1;
                    break;
                }
            }
        }
        job_t *j = start_job(d->cur, d->s, q);
        d->seqs[n] = q;
        d->ptoks[n] = d->cur->ids;
        d->plens[n++] = (int)d->cur->n_ids;
        if (d->cur->samples == o_samples)
            d->cur = NULL;   /* owned by its jobs from here on */
        d->slot[q] = j;
        queue_push(d, j);
    }
    return n - n0;
}

/* One token for every job: a step of each running one and the prompts of
 * those started now, in one session forward (llm_session_advance()),
 * sampled on the threads, applied in turn. */
static void advance_jobs(decoder *d, input_t *in)
{
    int n = 0;
    for (int q = 0; q < d->B; q++)
        if (d->slot[q] && !d->slot[q]->finish) {
            d->seqs[n] = q;
            d->ptoks[n] = &d->slot[q]->next;
            d->plens[n++] = 1;
        }
    int n_step = n;
    n += start_jobs(d, in, n);
    if (!n || cli_stopped())
        return;
    check(llm_session_advance(d->s, d->seqs, d->ptoks, d->plens, n, n_step, d->logits));
    for (int i = 0; i < n; i++) {
        job_t *j = d->slot[d->seqs[i]];
        d->rngs[i] = j->rng;
        d->hists[i] = j->hist.data;
        d->nhist[i] = j->hist.len;
    }
    /* Log-probabilities cost a pass of exp over the vocabulary per token:
     * only for --logprobs. */
    check(llm_sampler_sample_batch(g_sampler, n, d->rngs, d->logits, g_V, d->hists, d->nhist,
                                   d->toks, o_logprobs ? d->lps : NULL));
    for (int i = 0; i < n; i++) {
        d->slot[d->seqs[i]]->rng = d->rngs[i];
        advance(d->slot[d->seqs[i]], d->toks[i], o_logprobs ? d->lps[i] : 0.0f);
    }
}

/* Frees the slots of finished jobs and writes the records now due. */
static void write_due(decoder *d)
{
    for (int q = 0; q < d->B; q++)
        if (d->slot[q] && d->slot[q]->finish)
            d->slot[q] = NULL;
    while (d->qlen) {
        job_t *j = d->queue[d->qhead];
        if (g_stream)
            stream(j);
        if (!j->finish)
            break;
        if (!g_stream)
            write_record(j);
        d->tokens += (uint64_t)j->ntok;
        d->records++;
        d->qhead++;
        d->qlen--;
        free_job(j, o_samples);
    }
}

/* Sampling (or greedy) continuations of every input, B sequences decoded
 * together, records written in input order. */
static void run_sampling(llm_model *m, input_t *in, int B)
{
    decoder d = { .B = B, .qcap = (size_t)B * 2 };
    check(llm_session_new(m, B, &d.s));
    d.logits = xmalloc((size_t)B * g_V * sizeof *d.logits);
    d.slot = xmalloc((size_t)B * sizeof *d.slot);
    for (int i = 0; i < B; i++)
        d.slot[i] = NULL;
    d.queue = xmalloc(d.qcap * sizeof *d.queue);
    d.ptoks = xmalloc((size_t)B * sizeof *d.ptoks);
    d.plens = xmalloc((size_t)B * sizeof *d.plens);
    d.seqs = xmalloc((size_t)B * sizeof *d.seqs);
    d.toks = xmalloc((size_t)B * sizeof *d.toks);
    d.rngs = xmalloc((size_t)B * sizeof *d.rngs);
    d.hists = xmalloc((size_t)B * sizeof *d.hists);
    d.nhist = xmalloc((size_t)B * sizeof *d.nhist);
    d.lps = xmalloc((size_t)B * sizeof *d.lps);
    double t0 = cli_now();
    for (;;) {
        advance_jobs(&d, in);
        write_due(&d);
        if (cli_stopped()) {
            if (g_stream && d.qlen && d.queue[d.qhead]->started)
                cli_write(o_null ? "" : "\n", 1, g_out);
            break;
        }
        if (d.eof && d.qlen == 0)
            break;
    }
    cli_flush(g_out);
    while (d.qlen)   /* unfinished after an interrupt */
        free_job(d.queue[d.qhead + --d.qlen], o_samples);
    if (d.cur && d.cur->refs == 0)
        free_prompt(d.cur);
    double dt = cli_now() - t0;
    if (!o_quiet && cli_isatty_stderr() && !g_stream)
        fprintf(stderr, "llm-generate: %llu records, %llu tokens in %.1f s (%.1f tokens/s)\n",
                (unsigned long long)d.records, (unsigned long long)d.tokens, dt,
                dt > 0 ? (double)d.tokens / dt : 0.0);
    free(d.ptoks);
    free(d.plens);
    free(d.seqs);
    free(d.toks);
    free(d.rngs);
    free(d.hists);
    free(d.nhist);
    free(d.lps);
    free(d.queue);
    free(d.slot);
    free(d.logits);
    llm_session_free(d.s);
}

/* Beam search of every input, groups of beams decoded together. */
static void run_beam_search(llm_model *m, input_t *in, int B)
{
    int groups = B / o_beams > 0 ? B / o_beams : 1;
    llm_session *s;
    check(llm_session_new(m, groups * o_beams, &s));
    uint64_t records = 0, tokens = 0;
    double t0 = cli_now();
    run_beams(s, in, groups, &records, &tokens);
    cli_flush(g_out);
    double dt = cli_now() - t0;
    if (!o_quiet && cli_isatty_stderr())
        fprintf(stderr, "llm-generate: %llu records, %llu tokens in %.1f s (%d beams)\n",
                (unsigned long long)records, (unsigned long long)tokens, dt, o_beams);
    llm_session_free(s);
}

int main(int argc, char **argv)
{
    cli_signals();
    int first = cli_parse(&prog, argc, argv, NULL);
    g_jsonl = strcmp(o_format, "jsonl") == 0;
    check_combinations(first, argc);
    llm_sampler_params sp;
    sp.temperature = o_temperature;
    sp.top_k = o_top_k;
    sp.top_p = o_top_p;
    sp.min_p = o_min_p;
    sp.repeat_penalty = o_repeat_penalty;
    sp.repeat_last_n = o_repeat_last_n;
    sp.presence_penalty = o_presence;
    sp.frequency_penalty = o_frequency;
    if (llm_sampler_check(&sp))
        cli_usage("--%s", llm_errmsg());
    check(llm_device_check(o_device));
    llm_set_threads(o_threads);

    llm_model *m;
    llm_tok *tok;
    load_model(&m, &tok);
    if (g_pairs && !cli_given(&o_temperature))
        sp.temperature = 0;   /* an input has one best output */
    check(llm_sampler_new(&sp, &g_sampler));
    g_out = stdout;
    g_stream = o_prompt && !g_jsonl;

    input_t in = { 0 };
    in.files = argv + first;
    in.nfiles = argc - first;
    cli_catch_stop();
    if (o_beams > 1)
        run_beam_search(m, &in, o_batch);
    else
        run_sampling(m, &in, o_batch);
    input_close(&in);   /* open when interrupted before the end of the input */
    free(in.buf);
    llm_sampler_free(g_sampler);
    llm_tok_free(tok);
    llm_model_free(m);
    if (g_unencodable[0] && !cli_stopped())
        cli_die("%s", g_unencodable);
    if (g_unencodable[0])
        cli_warn("%s", g_unencodable);
    return cli_stopped() ? 128 + cli_stopped() : 0;
}
