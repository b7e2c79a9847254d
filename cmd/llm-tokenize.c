/* llm-tokenize.c: train a SentencePiece model, encode text to ids, pieces or
 * a token file, decode back, and describe a model. Options and I/O only; the
 * tokenizer is lib/text/tokenizer.cc. */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "cli.h"

enum { CMD_TRAIN, CMD_ENCODE, CMD_DECODE, CMD_INFO };
#define ONLY(c) (1u << (c))

/* Option values, holding their defaults (--help prints them from here). */
static const char *o_model, *o_output;
static int o_threads, o_quiet, o_verbose;
static int64_t o_seed;
static const char *o_vocab_size = "auto";
static int o_strict_size;
static const char *o_model_type = "unigram";
static double o_coverage = 0.9995;
static int o_byte_fallback, o_no_byte_fallback, o_split_digits;
static const char *o_normalization = "nmt_nfkc";
static const char *o_user_symbols, *o_control_symbols;
static int64_t o_input_sentence_size;
static int o_max_sentence_length = 4192;
static const char *o_format = "ids";
static int o_bos, o_eos, o_vocab;

static const cli_cmd cmds[] = {
    {"train", "[FILE]...", "train a SentencePiece model on text, one sentence per line"},
    {"encode", "[FILE]...", "encode text lines to ids, pieces or a token file"},
    {"decode", "[FILE]...", "decode lines of ids, or a token file, back to text"},
    {"info", NULL, "describe a model: vocabulary, special ids, type, normalisation"},
};

#define TRAIN ONLY(CMD_TRAIN)
#define USES_MODEL (ONLY(CMD_ENCODE) | ONLY(CMD_DECODE) | ONLY(CMD_INFO))

static const cli_opt opts[] = {
    {"model", 'm', CLI_STRING, &o_model, "FILE",
     "tokenizer: a SentencePiece .model or an llm model file", NULL, 0, 0, USES_MODEL,
     CLI_COMPLETE_FILE, 0},
    {"output", 'o', CLI_STRING, &o_output, "FILE",
     "write to FILE (atomically) instead of standard output; required for train",
     NULL, 0, 0, 0, CLI_COMPLETE_FILE, 0},
    {"quiet", 'q', CLI_FLAG, &o_quiet, NULL, "print no summary on standard error",
     NULL, 0, 0, 0, CLI_COMPLETE_NONE, 1},
    {"verbose", 'v', CLI_FLAG, &o_verbose, NULL,
     "let SentencePiece log its progress to standard error", NULL, 0, 0, 0,
     CLI_COMPLETE_NONE, 1},
    {"threads", 't', CLI_INT, &o_threads, "N", "trainer threads, 0 for all cores", NULL,
     0, 128, TRAIN, CLI_COMPLETE_NONE, 0},
    {"seed", 0, CLI_INT64, &o_seed, "N", "seed for sampling sentences", NULL, 0,
     4294967295.0, TRAIN, CLI_COMPLETE_NONE, 0},
    {"vocab-size", 0, CLI_STRING, &o_vocab_size, "N",
     "vocabulary size, 1 to 1000000, or auto: 8000, or the nearest size the corpus "
     "supports (the trainer's upper bound for a small corpus, the pieces its characters "
     "need for a large alphabet); a size that does not fit is changed to the nearest "
     "that does, with a warning", NULL, 0, 0, TRAIN, CLI_COMPLETE_NONE, 0},
    {"strict-size", 0, CLI_FLAG, &o_strict_size, NULL,
     "fail when --vocab-size N does not fit the corpus instead of changing it", NULL, 0,
     0, TRAIN, CLI_COMPLETE_NONE, 1},
    {"model-type", 0, CLI_CHOICE, &o_model_type, "TYPE", "segmentation algorithm",
     "unigram|bpe|char|word", 0, 0, TRAIN, CLI_COMPLETE_CHOICE, 0},
    {"character-coverage", 0, CLI_DOUBLE, &o_coverage, "X",
     "share of characters the alphabet must cover", NULL, 0.98, 1, TRAIN,
     CLI_COMPLETE_NONE, 0},
    {"byte-fallback", 0, CLI_FLAG, &o_byte_fallback, NULL,
     "spell unknown characters as UTF-8 byte pieces (the default, but with --model-type "
     "word, whose unknown words would decode with their word-start mark)", NULL, 0, 0, TRAIN,
     CLI_COMPLETE_NONE, 1},
    {"no-byte-fallback", 0, CLI_FLAG, &o_no_byte_fallback, NULL,
     "map unknown characters to <unk> instead", NULL, 0, 0, TRAIN, CLI_COMPLETE_NONE, 1},
    {"normalization", 0, CLI_CHOICE, &o_normalization, "RULE",
     "Unicode normalisation; identity keeps text byte for byte",
     "nmt_nfkc|nfkc|nmt_nfkc_cf|nfkc_cf|identity", 0, 0, TRAIN, CLI_COMPLETE_CHOICE, 0},
    {"split-digits", 0, CLI_FLAG, &o_split_digits, NULL, "make every digit its own piece",
     NULL, 0, 0, TRAIN, CLI_COMPLETE_NONE, 1},
    {"user-symbols", 0, CLI_STRING, &o_user_symbols, "LIST",
     "comma-separated pieces always kept whole", NULL, 0, 0, TRAIN, CLI_COMPLETE_NONE, 0},
    {"control-symbols", 0, CLI_STRING, &o_control_symbols, "LIST",
     "comma-separated control pieces (ids only, never produced from text)", NULL, 0, 0,
     TRAIN, CLI_COMPLETE_NONE, 0},
    {"input-sentence-size", 0, CLI_INT64, &o_input_sentence_size, "N",
     "train on a random sample of N sentences, 0 for all (N > 100)", NULL, 0, 1e15,
     TRAIN, CLI_COMPLETE_NONE, 0},
    {"max-sentence-length", 0, CLI_INT, &o_max_sentence_length, "N",
     "skip training lines longer than N bytes", NULL, 10, 1073741824, TRAIN,
     CLI_COMPLETE_NONE, 0},
    {"output-format", 0, CLI_CHOICE, &o_format, "FORMAT",
     "ids: one line of ids per input line; pieces: the pieces; bin: a token file",
     "ids|pieces|bin", 0, 0, ONLY(CMD_ENCODE), CLI_COMPLETE_CHOICE, 0},
    {"bos", 0, CLI_FLAG, &o_bos, NULL, "begin every line with the BOS id", NULL, 0, 0,
     ONLY(CMD_ENCODE), CLI_COMPLETE_NONE, 1},
    {"eos", 0, CLI_FLAG, &o_eos, NULL, "end every line with the EOS id", NULL, 0, 0,
     ONLY(CMD_ENCODE), CLI_COMPLETE_NONE, 1},
    {"vocab", 0, CLI_FLAG, &o_vocab, NULL, "list every piece as id, piece and score",
     NULL, 0, 0, ONLY(CMD_INFO), CLI_COMPLETE_NONE, 1},
    CLI_OPT_HELP,
    CLI_OPT_VERSION,
};

static const cli_prog prog = {
    "llm-tokenize", NULL,
    "Train a SentencePiece tokenizer; encode text to token ids and decode them back.",
    cmds, (int)(sizeof cmds / sizeof cmds[0]),
    opts, (int)(sizeof opts / sizeof opts[0]),
};

static const char *display(const char *path)
{
    return !path || strcmp(path, "-") == 0 ? "(standard input)" : path;
}

/* ------------------------------------------------------------------------ */
/* Output: standard output, or -o FILE written to a temporary name in the
 * same directory and renamed over FILE only when everything succeeded, so
 * that a failure never leaves half a model or half an encoding behind
 * (where FILE is a link, over the file it names; a device or FIFO such as
 * /dev/stdout is written in place: llm_output_target()). */

static char *g_tmp;      /* the temporary file while it exists */
static char *g_target;   /* what it becomes */

static void remove_tmp(void)
{
    if (g_tmp) {
        unlink(g_tmp);
        free(g_tmp);
        g_tmp = NULL;
    }
}

static FILE *out_open(const char *path)
{
    if (!path || strcmp(path, "-") == 0)
        return stdout;
    int direct;
    int rc = llm_output_target(path, &g_target, &direct);
    if (rc)
        cli_die("%s", llm_errmsg());
    if (direct) {
        FILE *f = fopen(g_target, "wb");
        if (!f)
            cli_die("cannot write '%s': %s", path, strerror(errno));
        return f;
    }
    /* Named as the library names its own (FILE.tmpXXXXXX), so that a run
     * killed (SIGKILL, power) leaves one that the next run removes. */
    int stale = llm_remove_stale_temps(g_target);
    if (stale && !o_quiet)
        fprintf(stderr, "%s: removed %d temporary file%s left by an interrupted run\n",
                cli_prog_name(), stale, stale == 1 ? "" : "s");
    size_t n = strlen(g_target) + sizeof ".tmpXXXXXX";
    g_tmp = malloc(n);
    if (!g_tmp)
        cli_die("out of memory");
    snprintf(g_tmp, n, "%s.tmpXXXXXX", g_target);
    atexit(remove_tmp);
    int fd = mkstemp(g_tmp);
    if (fd < 0) {
        int e = errno;
        free(g_tmp);
        g_tmp = NULL;
        cli_die("cannot create '%s': %s", path, strerror(e));
    }
    /* mkstemp makes the file 0600; a model or encoding should get the
     * permissions any new file would. */
    mode_t um = umask(0);
    umask(um);
    if (fchmod(fd, 0666 & ~um) != 0)
        cli_die("cannot create '%s': %s", path, strerror(errno));
    FILE *f = fdopen(fd, "wb");
    if (!f)
        cli_die("cannot create '%s': %s", path, strerror(errno));
    return f;
}

static void out_close(FILE *f, const char *path)
{
    if (cli_stopped()) {   /* the records so far, whole, to a stream; a file stays as it was */
        if (f == stdout || !g_tmp)
            cli_flush(f);
        else
            remove_tmp();
        exit(128 + cli_stopped());
    }
    if (f == stdout) {
        cli_flush(stdout);
        return;
    }
    if (!g_tmp) {   /* written in place */
        if (fclose(f) != 0)
            cli_die("cannot write '%s': %s", path, strerror(errno));
        return;
    }
    if (fflush(f) != 0 || fsync(fileno(f)) != 0) {
        int e = errno;
        fclose(f);
        cli_die("cannot write '%s': %s", path, strerror(e));
    }
    if (fclose(f) != 0)
        cli_die("cannot write '%s': %s", path, strerror(errno));
    if (rename(g_tmp, g_target) != 0)
        cli_die("cannot rename to '%s': %s", path, strerror(errno));
    free(g_tmp);
    g_tmp = NULL;
}

static int is_regular(FILE *f)
{
    struct stat st;
    return fstat(fileno(f), &st) == 0 && S_ISREG(st.st_mode);
}

static llm_tok *load_model(void)
{
    if (!o_model)
        cli_usage("a model is required (-m FILE)");
    llm_tok *t;
    int rc = llm_tok_load(o_model, &t);
    if (rc)
        cli_die_status(rc);
    return t;
}

/* ------------------------------------------------------------------------ */
/* train */

static int cmd_train(int nfiles, char **files)
{
    if (!o_output)
        cli_usage("train needs an output file (-o FILE)");
    if (o_byte_fallback && o_no_byte_fallback)
        cli_usage("--byte-fallback and --no-byte-fallback conflict");
    int word = strcmp(o_model_type, "word") == 0;
    /* SentencePiece's word model spells an unknown word with its "▁" as
     * bytes (decoded as the mark itself), and matches neither user symbols
     * nor digits inside a word. */
    if (word && (o_byte_fallback || o_split_digits || (o_user_symbols && *o_user_symbols)))
        cli_usage("--%s does not apply to --model-type word",
                  o_byte_fallback ? "byte-fallback" : o_split_digits ? "split-digits"
                                                                     : "user-symbols");
    static const char *const stdin_only[] = {"-"};
    const char *const *inputs = nfiles ? (const char *const *)files : stdin_only;
    size_t n = nfiles ? (size_t)nfiles : 1;
    int stdin_uses = 0;
    for (size_t i = 0; i < n; i++)
        stdin_uses += strcmp(inputs[i], "-") == 0;
    if (stdin_uses > 1)
        cli_usage("standard input ('-') given more than once");

    llm_tok_train_params p;
    llm_tok_train_defaults(&p);
    p.model_type = o_model_type;
    int is_auto = strcmp(o_vocab_size, "auto") == 0;
    if (is_auto) {
        if (o_strict_size)
            cli_usage("--strict-size needs a number for --vocab-size, not auto");
        p.vocab_size = 8000;
    } else {
        char *end;
        errno = 0;
        long v = strtol(o_vocab_size, &end, 10);
        if (errno || end == o_vocab_size || *end || v < 1 || v > 1000000)
            cli_usage("invalid value '%s' for --vocab-size: expected auto or an integer in "
                      "[1, 1000000]", o_vocab_size);
        p.vocab_size = (int)v;
    }
    p.fit_vocab = !o_strict_size;
    p.character_coverage = o_coverage;
    p.byte_fallback = !o_no_byte_fallback && !word;
    p.normalization = o_normalization;
    /* identity promises text back byte for byte, which needs the spaces too */
    p.remove_extra_whitespaces = strcmp(o_normalization, "identity") != 0;
    p.split_digits = o_split_digits;
    p.user_symbols = o_user_symbols;
    p.control_symbols = o_control_symbols;
    p.input_sentence_size = o_input_sentence_size;
    p.seed = (uint32_t)o_seed;
    p.threads = o_threads;
    p.max_sentence_length = o_max_sentence_length;
    p.verbose = o_verbose;

    /* An unwritable -o fails before, not after, minutes of training; the
     * output itself is opened after (a run killed while training leaves no
     * temporary file). */
    int e = llm_can_write_beside(o_output);
    if (e)
        cli_die("cannot write '%s': %s", o_output, strerror(e));
    struct timespec t0, t1;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    llm_tok *t;
    int rc = llm_tok_train(inputs, n, &p, &t);
    if (rc)
        cli_die_status(rc);
    clock_gettime(CLOCK_MONOTONIC, &t1);

    const void *buf;
    size_t len;
    /* Unigram and BPE give the size asked for or fail; character and word
     * models may have fewer pieces (the size is their bound): so a unigram
     * or BPE model of another size was fitted. */
    int got = llm_tok_vocab_size(t);
    const char *type = llm_tok_model_type(t);
    if (got != p.vocab_size && (strcmp(type, "unigram") == 0 || strcmp(type, "bpe") == 0)) {
        if (!is_auto)
            cli_warn("warning: a vocabulary of %d does not fit this corpus; trained %d "
                     "pieces instead (--strict-size refuses)", p.vocab_size, got);
        else if (!o_quiet)
            fprintf(stderr, "%s: --vocab-size auto: %d pieces (8000 does not fit this "
                    "corpus)\n", cli_prog_name(), got);
    }
    llm_tok_bytes(t, &buf, &len);
    FILE *f = out_open(o_output);
    cli_write(buf, len, f);
    out_close(f, o_output);
    if (!o_quiet && (o_verbose || cli_isatty_stderr()))
        fprintf(stderr, "%s: wrote '%s': %s model, %d pieces, %.1f s\n", cli_prog_name(),
                o_output, llm_tok_model_type(t), llm_tok_vocab_size(t),
                (double)(t1.tv_sec - t0.tv_sec) + (double)(t1.tv_nsec - t0.tv_nsec) * 1e-9);
    llm_tok_free(t);
    return CLI_EXIT_OK;
}

/* ------------------------------------------------------------------------ */
/* encode */

/* Appends the decimal form of a non-negative id: this loop runs for every
 * token, and snprintf would cost more than the rest of the formatting. */
static char *put_id(char *p, int32_t v)
{
    char tmp[12];
    int n = 0;
    uint32_t u = (uint32_t)v;
    do {
        tmp[n++] = (char)('0' + u % 10);
        u /= 10;
    } while (u);
    while (n)
        *p++ = tmp[--n];
    return p;
}

static void buf_or_die(int rc)
{
    if (rc)
        cli_die_status(rc);
}

/* A line reader over `in`; *flush: whether to flush the output after each
 * line, which only helps when a reader downstream may be waiting and the
 * input itself can pause (pipe, terminal, socket): lines from a regular
 * file arrive at once, so flushing each would only cost a system call. */
/* A file's lines, one call of fn each (line without its newline, its
 * number from 1); `out` is flushed after each when it and the input are
 * streams and `flush` is set, so that a pipeline sees every record at once. */
typedef void line_fn(void *ctx, const char *path, int64_t lineno, const char *line,
                     size_t len);
static void each_line(FILE *in, const char *path, FILE *out, int flush, line_fn *fn,
                      void *ctx)
{
    flush = flush && !is_regular(out) && !is_regular(in);
    llm_lines *lr;
    buf_or_die(llm_lines_open(in, &lr));
    const char *line;
    size_t len;
    int r;
    /* A line read as a stop signal came may be cut short: not written. */
    while ((r = llm_lines_next(lr, &line, &len)) == 1 && !cli_stopped()) {
        fn(ctx, path, llm_lines_number(lr), line, len);
        if (flush)
            cli_flush(out);
    }
    if (r < 0)
        cli_die("cannot read '%s': %s", display(path), llm_errmsg());
    llm_lines_free(lr);
}

/* What encoding a line needs. */
typedef struct {
    const llm_tok *t;
    FILE *out;
    int pieces, bos, eos;
    const char *bos_piece, *eos_piece;   /* NULL: none (pieces) */
    llm_tokwriter *w;                    /* bin, else NULL */
    llm_ids ids;
    llm_buf text;
} encoder;

static void encode_pieces(encoder *e, const char *path, int64_t lineno, const char *line,
                          size_t len)
{
    llm_buf *o = &e->text;
    if (e->bos_piece)
        buf_or_die(llm_buf_append(o, e->bos_piece, strlen(e->bos_piece)));
    if (e->bos_piece && len)
        buf_or_die(llm_buf_append(o, " ", 1));
    size_t before = o->len;
    if (llm_tok_encode_pieces(e->t, line, len, o))
        cli_die("'%s', line %lld: %s", display(path), (long long)lineno, llm_errmsg());
    if (e->eos_piece) {
        if (o->len > before || (e->bos_piece && !len))
            buf_or_die(llm_buf_append(o, " ", 1));
        buf_or_die(llm_buf_append(o, e->eos_piece, strlen(e->eos_piece)));
    }
    buf_or_die(llm_buf_append(o, "\n", 1));
    cli_write(o->data, o->len, e->out);
}

static void encode_line(void *ctx, const char *path, int64_t lineno, const char *line,
                        size_t len)
{
    encoder *e = ctx;
    size_t bad;
    if (!llm_utf8_check(line, len, &bad))
        cli_die("'%s', line %lld: invalid UTF-8 at byte %zu", display(path),
                (long long)lineno, bad + 1);
    e->ids.len = 0;
    e->text.len = 0;
    if (e->pieces) {
        encode_pieces(e, path, lineno, line, len);
        return;
    }
    if (e->bos >= 0)
        buf_or_die(llm_ids_push(&e->ids, e->bos));
    if (llm_tok_encode(e->t, line, len, &e->ids))
        cli_die("'%s', line %lld: %s", display(path), (long long)lineno, llm_errmsg());
    if (e->eos >= 0)
        buf_or_die(llm_ids_push(&e->ids, e->eos));
    if (e->w) {
        buf_or_die(llm_tokwriter_write(e->w, e->ids.data, e->ids.len));
        return;
    }
    /* at most 10 digits and a separator per id, and "\n" */
    buf_or_die(llm_buf_reserve(&e->text, e->ids.len * 11 + 1));
    char *p = e->text.data;
    for (size_t i = 0; i < e->ids.len; i++) {
        if (i)
            *p++ = ' ';
        p = put_id(p, e->ids.data[i]);
    }
    *p++ = '\n';
    cli_write(e->text.data, (size_t)(p - e->text.data), e->out);
}

static int cmd_encode(int nfiles, char **files)
{
    llm_tok *t = load_model();
    int bin = strcmp(o_format, "bin") == 0;
    encoder e = {.t = t, .pieces = strcmp(o_format, "pieces") == 0, .bos = -1, .eos = -1};
    int bos = llm_tok_bos_id(t), eos = llm_tok_eos_id(t);
    if (o_bos && bos < 0)
        cli_die("'%s' has no BOS piece (--bos)", o_model);
    if (o_eos && eos < 0)
        cli_die("'%s' has no EOS piece (--eos)", o_model);
    if (o_bos) {
        e.bos = bos;
        e.bos_piece = llm_tok_piece(t, bos);
    }
    if (o_eos) {
        e.eos = eos;
        e.eos_piece = llm_tok_piece(t, eos);
    }

    FILE *out = e.out = out_open(o_output);
    if (bin && out == stdout && isatty(STDOUT_FILENO))
        cli_die("refusing to write a binary token file to a terminal (use -o FILE or a redirection)");
    /* A large buffer for throughput; records are flushed by hand below. */
    static char obuf[1 << 16];
    setvbuf(out, obuf, _IOFBF, sizeof obuf);
    if (bin)
        buf_or_die(llm_tokwriter_open(out, (uint32_t)llm_tok_vocab_size(t), &e.w));

    int n = nfiles ? nfiles : 1;
    for (int fi = 0; fi < n && !cli_stopped(); fi++) {
        const char *path = nfiles ? files[fi] : "-";
        FILE *f = cli_open(path), *in = cli_stoppable(f);
        each_line(in, path, out, !bin, encode_line, &e);
        if (in != f)
            fclose(in);
        cli_close(f);
    }
    if (bin) {
        int rc = llm_tokwriter_close(e.w);
        if (rc)
            cli_die_status(rc);
    }
    out_close(out, o_output);
    llm_ids_free(&e.ids);
    llm_buf_free(&e.text);
    llm_tok_free(t);
    return CLI_EXIT_OK;
}

/* ------------------------------------------------------------------------ */
/* decode */

/* Parses one line of ids separated by spaces or tabs into `ids`. */
static void parse_ids(const llm_tok *t, const char *path, int64_t lineno, const char *s,
                      size_t len, llm_ids *ids)
{
    const char *end = s + len;
    int vocab = llm_tok_vocab_size(t);
    while (s < end) {
        while (s < end && (*s == ' ' || *s == '\t' || *s == '\r'))
            s++;
        if (s == end)
            break;
        const char *w = s;
        while (s < end && *s != ' ' && *s != '\t' && *s != '\r')
            s++;
        int neg = *w == '-';
        const char *d = w + neg;
        long long v = 0;
        int ok = d < s;
        for (const char *q = d; ok && q < s; q++) {
            if (*q < '0' || *q > '9' || v > 1000000000000LL)
                ok = 0;
            else
                v = v * 10 + (*q - '0');
        }
        if (!ok)
            cli_die("'%s', line %lld: '%.*s' is not a token id", display(path),
                    (long long)lineno, (int)(s - w > 40 ? 40 : s - w), w);
        if (neg)
            v = -v;
        if (v < 0 || v >= vocab)
            cli_die("'%s', line %lld: id %lld is out of range (vocabulary %d)", display(path),
                    (long long)lineno, v, vocab);
        buf_or_die(llm_ids_push(ids, (int32_t)v));
    }
}

/* A token file: the text of each run of ids up to an EOS, then a newline;
 * ids after the last EOS make a final line. */
static void decode_tokfile(const llm_tok *t, FILE *in, const char *path, FILE *out)
{
    llm_tokreader *r;
    buf_or_die(llm_tokreader_open(in, display(path), &r));
    const llm_tokfile_header *h = llm_tokreader_info(r);
    if (h->vocab_size > (uint32_t)llm_tok_vocab_size(t))
        cli_die("'%s': token file vocabulary %u is larger than the model's %d",
                display(path), h->vocab_size, llm_tok_vocab_size(t));
    int eos = llm_tok_eos_id(t);
    static uint32_t chunk[1 << 14];
    llm_ids doc = {0};
    llm_buf text = {0};
    int64_t got;
    while ((got = llm_tokreader_read(r, chunk, sizeof chunk / sizeof chunk[0])) > 0) {
        for (int64_t i = 0; i < got; i++) {
            int32_t id = (int32_t)chunk[i];
            if (id != eos) {
                buf_or_die(llm_ids_push(&doc, id));
                continue;
            }
            text.len = 0;
            buf_or_die(llm_tok_decode(t, doc.data, doc.len, &text));
            buf_or_die(llm_buf_append(&text, "\n", 1));
            cli_write(text.data, text.len, out);
            doc.len = 0;
        }
    }
    if (got < 0)
        cli_die_status((int)got);
    if (doc.len) {
        text.len = 0;
        buf_or_die(llm_tok_decode(t, doc.data, doc.len, &text));
        buf_or_die(llm_buf_append(&text, "\n", 1));
        cli_write(text.data, text.len, out);
    }
    llm_ids_free(&doc);
    llm_buf_free(&text);
    llm_tokreader_free(r);
}

/* What decoding a line of ids needs. */
typedef struct {
    llm_tok *t;
    FILE *out;
    llm_ids ids;
    llm_buf text;
} decoder;

static void decode_line(void *ctx, const char *path, int64_t lineno, const char *line,
                        size_t len)
{
    decoder *d = ctx;
    d->ids.len = 0;
    d->text.len = 0;
    parse_ids(d->t, path, lineno, line, len, &d->ids);
    buf_or_die(llm_tok_decode(d->t, d->ids.data, d->ids.len, &d->text));
    buf_or_die(llm_buf_append(&d->text, "\n", 1));
    cli_write(d->text.data, d->text.len, d->out);
}

static int cmd_decode(int nfiles, char **files)
{
    decoder d = {.t = load_model(), .out = out_open(o_output)};
    int n = nfiles ? nfiles : 1;
    for (int fi = 0; fi < n && !cli_stopped(); fi++) {
        const char *path = nfiles ? files[fi] : "-";
        FILE *f = cli_open(path), *in = cli_stoppable(f);
        /* A token file starts with "LLMTOKS\0" and a line of ids never with
         * 'L', so one byte of look-ahead (all ungetc promises) tells them
         * apart, on a pipe too. */
        errno = 0;
        int c = getc(in);
        if (c != EOF)
            ungetc(c, in);
        else if (ferror(in))
            cli_die("cannot read '%s': %s", display(path), strerror(errno ? errno : EIO));
        if (c == 'L')
            decode_tokfile(d.t, in, path, d.out);
        else
            each_line(in, path, d.out, 1, decode_line, &d);
        if (in != f)
            fclose(in);
        cli_close(f);
    }
    out_close(d.out, o_output);
    llm_ids_free(&d.ids);
    llm_buf_free(&d.text);
    llm_tok_free(d.t);
    return CLI_EXIT_OK;
}

/* ------------------------------------------------------------------------ */
/* info */

/* A piece for a tab-separated line: tabs, newlines and backslashes escaped,
 * since identity-normalised models may hold them. */
static void put_piece(FILE *f, const char *s)
{
    for (; *s; s++) {
        switch (*s) {
        case '\t': fputs("\\t", f); break;
        case '\n': fputs("\\n", f); break;
        case '\r': fputs("\\r", f); break;
        case '\\': fputs("\\\\", f); break;
        default: fputc(*s, f);
        }
    }
}

static void special(FILE *f, const char *label, const llm_tok *t, int id)
{
    fprintf(f, "%-16s%d", label, id);
    if (id >= 0) {
        fputs(" (", f);
        put_piece(f, llm_tok_piece(t, id));
        fputc(')', f);
    }
    fputc('\n', f);
}

static int cmd_info(int nfiles, char **files)
{
    (void)files;
    if (nfiles)
        cli_usage("info takes no operands (the model is -m FILE)");
    llm_tok *t = load_model();
    FILE *out = out_open(o_output);
    if (o_vocab) {
        for (int i = 0; i < llm_tok_vocab_size(t); i++) {
            fprintf(out, "%d\t", i);
            put_piece(out, llm_tok_piece(t, i));
            fprintf(out, "\t%g\n", (double)llm_tok_score(t, i));
        }
    } else {
        int counts[7] = {0};
        for (int i = 0; i < llm_tok_vocab_size(t); i++)
            counts[llm_tok_piece_type(t, i)]++;
        const char *norm = llm_tok_normalizer(t);
        fprintf(out, "%-16s%d\n", "vocabulary:", llm_tok_vocab_size(t));
        fprintf(out, "%-16s%s\n", "model type:", llm_tok_model_type(t));
        fprintf(out, "%-16s%s\n", "normalization:", *norm ? norm : "(none)");
        fprintf(out, "%-16s%s\n", "byte fallback:", llm_tok_byte_fallback(t) ? "yes" : "no");
        special(out, "unk id:", t, llm_tok_unk_id(t));
        special(out, "bos id:", t, llm_tok_bos_id(t));
        special(out, "eos id:", t, llm_tok_eos_id(t));
        special(out, "pad id:", t, llm_tok_pad_id(t));
        fprintf(out, "%-16s%d normal, %d byte, %d control, %d user-defined, %d unknown, "
                "%d unused\n", "pieces:", counts[LLM_PIECE_NORMAL], counts[LLM_PIECE_BYTE],
                counts[LLM_PIECE_CONTROL], counts[LLM_PIECE_USER], counts[LLM_PIECE_UNKNOWN],
                counts[LLM_PIECE_UNUSED]);
    }
    if (ferror(out))
        cli_die("write error: %s", strerror(errno ? errno : EIO));
    out_close(out, o_output);
    llm_tok_free(t);
    return CLI_EXIT_OK;
}

int main(int argc, char **argv)
{
    cli_signals();
    int cmd;
    int first = cli_parse(&prog, argc, argv, &cmd);
    int nfiles = argc - first;
    char **files = argv + first;
    switch (cmd) {
    case CMD_TRAIN: return cmd_train(nfiles, files);
    /* SIGINT, SIGTERM: the records so far, whole (out_close()) */
    case CMD_ENCODE: cli_catch_stop(); return cmd_encode(nfiles, files);
    case CMD_DECODE: cli_catch_stop(); return cmd_decode(nfiles, files);
    default: return cmd_info(nfiles, files);
    }
}
