/* test_cli.c: drives cmd/cli.c with two fake option tables (one with
 * subcommands, one without) and checks parsing, exit statuses and messages
 * (each case in a forked child), the exact --help and man text, and that the
 * generated completions parse and complete in bash, zsh and fish. */
#include "cli.h"

#include <errno.h>
#include <signal.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

static int nchecks, nfailed;

#define CHECK(cond, ...) check((cond), __LINE__, __VA_ARGS__)

static void check(int ok, int line, const char *fmt, ...) CLI_PRINTF(3, 4);
static void check(int ok, int line, const char *fmt, ...)
{
    nchecks++;
    if (ok)
        return;
    nfailed++;
    va_list ap;
    va_start(ap, fmt);
    fprintf(stderr, "FAIL (line %d): ", line);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputc('\n', stderr);
}

/* ------------------------------------------------------------------------ */
/* Program X: subcommands train (0), encode (1), decode (2).                 */

static const char *x_model = "tok.model", *x_output, *x_type = "unigram",
                  *x_cache = "cache";
static int x_vocab = 8000, x_quiet, x_threads, x_nbest = 1, x_ndigits = 3;
static int64_t x_seed = 1234;
static double x_temp = 0.8, x_scale = 1;
static cli_list x_stop;

#define TRAIN 1u
#define ENCODE 2u
#define DECODE 4u

static const cli_cmd x_cmds[] = {
    {"train", "[FILE]...", "Train a tokenizer model on text."},
    {"encode", "[FILE]...", "Encode text to token ids."},
    {"decode", NULL, "Decode token ids read from standard input."},
};

static const cli_opt x_opts[] = {
    {"model", 'm', CLI_STRING, &x_model, "FILE", "tokenizer model", NULL,
     0, 0, 0, CLI_COMPLETE_FILE, 0},
    {"output", 'o', CLI_STRING, &x_output, "FILE", "write the model to FILE",
     NULL, 0, 0, TRAIN, CLI_COMPLETE_FILE, 0},
    {"vocab-size", 0, CLI_INT, &x_vocab, "N",
     "number of pieces in the vocabulary, including the special pieces and "
     "the byte pieces when byte fallback is on",
     NULL, 1, 1000000, TRAIN, CLI_COMPLETE_NONE, 0},
    {"model-type", 0, CLI_CHOICE, &x_type, "TYPE", "segmentation algorithm",
     "unigram|bpe|char|word", 0, 0, TRAIN, CLI_COMPLETE_CHOICE, 0},
    {"cache-dir", 0, CLI_STRING, &x_cache, "DIR", "scratch directory", NULL,
     0, 0, TRAIN, CLI_COMPLETE_DIR, 1},
    {"nbest", 'n', CLI_INT, &x_nbest, "N", "number of segmentations", NULL,
     1, 100, ENCODE, CLI_COMPLETE_NONE, 0},
    {"temperature", 0, CLI_DOUBLE, &x_temp, "T", "sampling temperature", NULL,
     0, 2, ENCODE, CLI_COMPLETE_NONE, 0},
    {"stop", 0, CLI_LIST, &x_stop, "STR", "stop at STR (repeatable)", NULL,
     0, 0, ENCODE, CLI_COMPLETE_NONE, 0},
    {"ndigits", 'n', CLI_INT, &x_ndigits, "N", "digits to print", NULL,
     0, 9, DECODE, CLI_COMPLETE_NONE, 0},
    {"scale", 0, CLI_DOUBLE, &x_scale, "X", "scale factor", NULL,
     0, 0, DECODE, CLI_COMPLETE_NONE, 0},
    {"seed", 0, CLI_INT64, &x_seed, "N", "random seed", NULL,
     0, 0, 0, CLI_COMPLETE_NONE, 0},
    {"threads", 0, CLI_INT, &x_threads, "N", "worker threads, 0 for all cores",
     NULL, 0, 0, 0, CLI_COMPLETE_NONE, 0},
    {"quiet", 'q', CLI_FLAG, &x_quiet, NULL, "do not show progress", NULL,
     0, 0, 0, CLI_COMPLETE_NONE, 0},
    {"help", 'h', CLI_HELP, NULL, NULL, "display this help and exit", NULL,
     0, 0, 0, CLI_COMPLETE_NONE, 0},
    {"version", 'V', CLI_VERSION, NULL, NULL,
     "output version information and exit", NULL, 0, 0, 0, CLI_COMPLETE_NONE, 0},
};

static const cli_prog prog_x = {
    "llm-x", NULL, "Train, apply and invert a tokenizer.", x_cmds, 3,
    x_opts, (int)(sizeof x_opts / sizeof x_opts[0])};

static void dump_x(int cmd, int first, int argc, char **argv)
{
    printf("cmd=%d model=%s output=%s vocab=%d type=%s cache=%s nbest=%d "
           "ndigits=%d temp=%g scale=%g seed=%lld threads=%d quiet=%d stop=",
           cmd, x_model, x_output ? x_output : "(null)", x_vocab, x_type,
           x_cache, x_nbest, x_ndigits, x_temp, x_scale, (long long)x_seed,
           x_threads, x_quiet);
    for (int i = 0; i < x_stop.n; i++)
        printf("%s[%s]", i ? "," : "", x_stop.items[i]);
    printf(" ops=");
    for (int i = first; i < argc; i++)
        printf("%s[%s]", i > first ? "," : "", argv[i]);
    printf("\n");
}

/* ------------------------------------------------------------------------ */
/* Program Y: no subcommands; --help and --version left implicit.            */

static const char *y_prompt, *y_format = "text";
static int y_max = 256, y_quiet;

static const cli_opt y_opts[] = {
    {"prompt", 'p', CLI_STRING, &y_prompt, "TEXT",
     ".start from TEXT, a \\ backslash and 'quotes' [sic]: ok", NULL,
     0, 0, 0, CLI_COMPLETE_NONE, 0},
    {"max-tokens", 'n', CLI_INT, &y_max, NULL, "tokens to generate", NULL,
     1, 100000, 0, CLI_COMPLETE_NONE, 0},
    {"format", 0, CLI_CHOICE, &y_format, "FMT", "output format", "text|json",
     0, 0, 0, CLI_COMPLETE_CHOICE, 0},
    {"quiet", 'q', CLI_FLAG, &y_quiet, NULL, "do not show progress", NULL,
     0, 0, 0, CLI_COMPLETE_NONE, 0},
};

static const cli_prog prog_y = {
    "llm-y", "[FILE]...", "Continue each input line.", NULL, 0,
    y_opts, (int)(sizeof y_opts / sizeof y_opts[0])};

static void dump_y(int cmd, int first, int argc, char **argv)
{
    printf("cmd=%d prompt=%s max=%d format=%s quiet=%d ops=", cmd,
           y_prompt ? y_prompt : "(null)", y_max, y_format, y_quiet);
    for (int i = first; i < argc; i++)
        printf("%s[%s]", i > first ? "," : "", argv[i]);
    printf("\n");
}

/* ------------------------------------------------------------------------ */
/* Running a case in a child.                                               */

static char *slurp(FILE *f)
{
    size_t cap = 4096, n = 0;
    char *s = malloc(cap);
    if (!s)
        abort();
    size_t r;
    while ((r = fread(s + n, 1, cap - n - 1, f)) > 0) {
        n += r;
        if (cap - n - 1 == 0) {
            cap *= 2;
            s = realloc(s, cap);
            if (!s)
                abort();
        }
    }
    s[n] = '\0';
    return s;
}

typedef void (*child_fn)(void *arg);

/* Runs fn in a child with stdout and stderr captured. *status is the exit
 * status, or 1000 + signal number when killed. */
static void in_child(child_fn fn, void *arg, int *status, char **out, char **err)
{
    FILE *fo = tmpfile(), *fe = tmpfile();
    if (!fo || !fe)
        abort();
    fflush(stdout);
    fflush(stderr);
    pid_t pid = fork();
    if (pid < 0)
        abort();
    if (pid == 0) {
        dup2(fileno(fo), STDOUT_FILENO);
        dup2(fileno(fe), STDERR_FILENO);
        fn(arg);
        exit(0);
    }
    int ws;
    while (waitpid(pid, &ws, 0) < 0)
        if (errno != EINTR)
            abort();
    *status = WIFEXITED(ws) ? WEXITSTATUS(ws) : 1000 + WTERMSIG(ws);
    rewind(fo);
    rewind(fe);
    *out = slurp(fo);
    *err = slurp(fe);
    fclose(fo);
    fclose(fe);
}

typedef struct {
    const cli_prog *p;
    void (*dump)(int, int, int, char **);
    const char *line;
} parse_case;

/* argv from a space-separated line; '' stands for an empty argument and
 * '~' for a blank inside one. */
static int split(const char *name, const char *line, char **argv, int cap, char *buf)
{
    int argc = 0;
    argv[argc++] = (char *)name;
    snprintf(buf, 1024, "%s", line);
    for (char *s = buf; *s; ) {
        while (*s == ' ')
            s++;
        if (!*s)
            break;
        char *w = s;
        while (*s && *s != ' ')
            s++;
        if (*s)
            *s++ = '\0';
        if (strcmp(w, "''") == 0)
            *w = '\0';
        for (char *q = w; *q; q++)
            if (*q == '~')
                *q = ' ';
        if (argc < cap - 1)
            argv[argc++] = w;
    }
    argv[argc] = NULL;
    return argc;
}

static void parse_child(void *arg)
{
    const parse_case *c = arg;
    char *argv[64], buf[1024];
    int argc = split(c->p->name, c->line, argv, 64, buf);
    int cmd = -7;
    int first = cli_parse(c->p, argc, argv, &cmd);
    c->dump(cmd, first, argc, argv);
}

static void expect(int line, const char *what, int status, const char *out,
                   const char *err, int want_status, const char *want_out,
                   const char *want_err)
{
    check(status == want_status, line, "%s: exit status %d, expected %d",
          what, status, want_status);
    if (want_out)
        check(strcmp(out, want_out) == 0, line,
              "%s: stdout\n--- got:\n%s--- expected:\n%s---", what, out, want_out);
    if (want_err)
        check(strcmp(err, want_err) == 0, line,
              "%s: stderr\n--- got:\n%s--- expected:\n%s---", what, err, want_err);
}

#define RUN(p, dump, line, st, out, err) run(__LINE__, p, dump, line, st, out, err)

static void run(int srcline, const cli_prog *p, void (*dump)(int, int, int, char **),
                const char *line, int want_status, const char *want_out,
                const char *want_err)
{
    parse_case c = {p, dump, line};
    int status;
    char *out, *err, what[256];
    snprintf(what, sizeof what, "%s %s", p->name, line);
    in_child(parse_child, &c, &status, &out, &err);
    expect(srcline, what, status, out, err, want_status, want_out, want_err);
    free(out);
    free(err);
}

/* ------------------------------------------------------------------------ */
/* Parsing.                                                                 */

#define X_DEFAULTS "model=tok.model output=(null) vocab=8000 type=unigram cache=cache nbest=1 ndigits=3 temp=0.8 scale=1 seed=1234 threads=0 quiet=0"
#define TRY_X "Try 'llm-x --help' for more information.\n"
#define TRY_TRAIN "Try 'llm-x train --help' for more information.\n"
#define TRY_ENCODE "Try 'llm-x encode --help' for more information.\n"
#define TRY_DECODE "Try 'llm-x decode --help' for more information.\n"
#define TRY_Y "Try 'llm-y --help' for more information.\n"

/* What `prog --version` prints: the version, then the CPU kernels' level
 * in use, the others this CPU runs (which differ between machines) and
 * what computes the matrix products. */
static const char *version_text(const char *prog, char *buf, size_t cap)
{
    const char *level = llm_cpu_level(), *const *all = llm_cpu_levels(), *sep = " (";
    int n = snprintf(buf, cap, "%s (llm) %s\nkernels: cpu %s", prog, LLM_VERSION, level);
    for (int i = 0; all[i]; i++)
        if (strcmp(all[i], level) != 0) {
            n += snprintf(buf + n, cap - (size_t)n, "%s%s", sep, all[i]);
            sep = ", ";
        }
    snprintf(buf + n, cap - (size_t)n, "%s; matrix products: %s\n", all[1] ? " available)" : "",
             llm_cpu_gemm());
    return buf;
}

static void test_parse_x(void)
{
    const cli_prog *p = &prog_x;
    char vbuf[256];
    const char *version = version_text("llm-x", vbuf, sizeof vbuf);
    RUN(p, dump_x, "train", 0, "cmd=0 " X_DEFAULTS " stop= ops=\n", "");
    RUN(p, dump_x, "train -m a.model -o b --vocab-size 500 --model-type=bpe "
        "--cache-dir /tmp -q --seed -5 --threads=4 in1 - in2", 0,
        "cmd=0 model=a.model output=b vocab=500 type=bpe cache=/tmp nbest=1 "
        "ndigits=3 temp=0.8 scale=1 seed=-5 threads=4 quiet=1 stop= "
        "ops=[in1],[-],[in2]\n", "");
    /* operands are permuted past options; "--" ends options */
    RUN(p, dump_x, "encode a --stop x b --stop= -n 7 --temperature 2 -- -q --stop y", 0,
        "cmd=1 model=tok.model output=(null) vocab=8000 type=unigram cache=cache "
        "nbest=7 ndigits=3 temp=2 scale=1 seed=1234 threads=0 quiet=0 "
        "stop=[x],[] ops=[a],[b],[-q],[--stop],[y]\n", "");
    /* -n means a different option in each subcommand; bundled short options */
    RUN(p, dump_x, "decode -qn2 --scale -1e300", 0,
        "cmd=2 model=tok.model output=(null) vocab=8000 type=unigram cache=cache "
        "nbest=1 ndigits=2 temp=0.8 scale=-1e+300 seed=1234 threads=0 quiet=1 "
        "stop= ops=\n", "");
    /* unambiguous abbreviations, as getopt_long allows */
    RUN(p, dump_x, "train --vocab 9 --model-t char", 0,
        "cmd=0 model=tok.model output=(null) vocab=9 type=char cache=cache nbest=1 "
        "ndigits=3 temp=0.8 scale=1 seed=1234 threads=0 quiet=0 stop= ops=\n", "");
    RUN(p, dump_x, "train --vocab-size +1000000 --seed 9223372036854775807", 0,
        "cmd=0 model=tok.model output=(null) vocab=1000000 type=unigram cache=cache "
        "nbest=1 ndigits=3 temp=0.8 scale=1 seed=9223372036854775807 threads=0 "
        "quiet=0 stop= ops=\n", "");
    RUN(p, dump_x, "encode --temperature 0 --seed -9223372036854775808", 0,
        "cmd=1 model=tok.model output=(null) vocab=8000 type=unigram cache=cache "
        "nbest=1 ndigits=3 temp=0 scale=1 seed=-9223372036854775808 threads=0 "
        "quiet=0 stop= ops=\n", "");

    /* subcommand errors */
    RUN(p, dump_x, "", 2, "",
        "llm-x: missing command: expected one of train, encode, decode\n" TRY_X);
    RUN(p, dump_x, "-q train", 2, "",
        "llm-x: missing command: expected one of train, encode, decode\n" TRY_X);
    RUN(p, dump_x, "--no-such-option train", 2, "",
        "llm-x: unrecognized option '--no-such-option'\n" TRY_X);
    RUN(p, dump_x, "-Z train", 2, "", "llm-x: invalid option -- 'Z'\n" TRY_X);
    RUN(p, dump_x, "--qui", 2, "",
        "llm-x: missing command: expected one of train, encode, decode\n" TRY_X);
    RUN(p, dump_x, "fit x", 2, "",
        "llm-x: unknown command 'fit': expected one of train, encode, decode\n" TRY_X);
    RUN(p, dump_x, "--generate=pdf", 2, "",
        "llm-x: invalid value 'pdf' for --generate: expected one of man, bash, zsh, fish\n" TRY_X);

    /* value errors */
    static const struct { const char *line, *err; } bad[] = {
        {"train --vocab-size abc", "llm-x: invalid value 'abc' for --vocab-size: expected an integer in [1, 1000000]\n" TRY_TRAIN},
        {"train --vocab-size=0", "llm-x: invalid value '0' for --vocab-size: expected an integer in [1, 1000000]\n" TRY_TRAIN},
        {"train --vocab-size 1000001", "llm-x: invalid value '1000001' for --vocab-size: expected an integer in [1, 1000000]\n" TRY_TRAIN},
        {"train --vocab-size=", "llm-x: invalid value '' for --vocab-size: expected an integer in [1, 1000000]\n" TRY_TRAIN},
        {"train --vocab-size 12k", "llm-x: invalid value '12k' for --vocab-size: expected an integer in [1, 1000000]\n" TRY_TRAIN},
        {"train --vocab-size 0x10", "llm-x: invalid value '0x10' for --vocab-size: expected an integer in [1, 1000000]\n" TRY_TRAIN},
        {"train --vocab-size 1.5", "llm-x: invalid value '1.5' for --vocab-size: expected an integer in [1, 1000000]\n" TRY_TRAIN},
        {"train --threads 2147483648", "llm-x: invalid value '2147483648' for --threads: expected an integer in [-2147483648, 2147483647]\n" TRY_TRAIN},
        {"train --seed 9223372036854775808", "llm-x: invalid value '9223372036854775808' for --seed: expected an integer in [-9223372036854775808, 9223372036854775807]\n" TRY_TRAIN},
        {"train --model-type BPE", "llm-x: invalid value 'BPE' for --model-type: expected one of unigram, bpe, char, word\n" TRY_TRAIN},
        {"train --model-type uni", "llm-x: invalid value 'uni' for --model-type: expected one of unigram, bpe, char, word\n" TRY_TRAIN},
        {"encode --temperature 2.01", "llm-x: invalid value '2.01' for --temperature: expected a number in [0, 2]\n" TRY_ENCODE},
        {"encode --temperature -0.1", "llm-x: invalid value '-0.1' for --temperature: expected a number in [0, 2]\n" TRY_ENCODE},
        {"encode --temperature nan", "llm-x: invalid value 'nan' for --temperature: expected a number in [0, 2]\n" TRY_ENCODE},
        {"encode --temperature 1x", "llm-x: invalid value '1x' for --temperature: expected a number in [0, 2]\n" TRY_ENCODE},
        {"decode --scale inf", "llm-x: invalid value 'inf' for --scale: expected a finite number\n" TRY_DECODE},
        {"decode --scale 1e999", "llm-x: invalid value '1e999' for --scale: expected a finite number\n" TRY_DECODE},
        {"encode -n 0", "llm-x: invalid value '0' for --nbest: expected an integer in [1, 100]\n" TRY_ENCODE},
        {"decode -n 10", "llm-x: invalid value '10' for --ndigits: expected an integer in [0, 9]\n" TRY_DECODE},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
        RUN(p, dump_x, bad[i].line, 2, "", bad[i].err);

    /* getopt errors */
    RUN(p, dump_x, "train --bogus", 2, "", "llm-x: unrecognized option '--bogus'\n" TRY_TRAIN);
    RUN(p, dump_x, "train --bogus=1", 2, "", "llm-x: unrecognized option '--bogus=1'\n" TRY_TRAIN);
    RUN(p, dump_x, "train -z", 2, "", "llm-x: invalid option -- 'z'\n" TRY_TRAIN);
    RUN(p, dump_x, "train -m", 2, "", "llm-x: option requires an argument -- 'm'\n" TRY_TRAIN);
    RUN(p, dump_x, "train --model", 2, "", "llm-x: option '--model' requires an argument\n" TRY_TRAIN);
    RUN(p, dump_x, "train --quiet=yes", 2, "", "llm-x: option '--quiet' doesn't allow an argument\n" TRY_TRAIN);
    RUN(p, dump_x, "train --mode x", 2, "", "llm-x: option '--mode' is ambiguous\n" TRY_TRAIN);
    /* an option of another subcommand */
    RUN(p, dump_x, "encode --vocab-size 5", 2, "", "llm-x: option '--vocab-size' does not apply to 'encode'\n" TRY_ENCODE);
    RUN(p, dump_x, "decode -o x", 2, "", "llm-x: option '-o' does not apply to 'decode'\n" TRY_DECODE);
    RUN(p, dump_x, "train --stop x", 2, "", "llm-x: option '--stop' does not apply to 'train'\n" TRY_TRAIN);

    /* help and version */
    RUN(p, dump_x, "--version", 0, version, "");
    RUN(p, dump_x, "-V", 0, version, "");
    RUN(p, dump_x, "decode --version", 0, version, "");
    RUN(p, dump_x, "train --vocab-size 1 -V --vocab-size 0", 0, version, "");
}

static void test_parse_y(void)
{
    const cli_prog *p = &prog_y;
    char vbuf[256];
    RUN(p, dump_y, "", 0, "cmd=-1 prompt=(null) max=256 format=text quiet=0 ops=\n", "");
    RUN(p, dump_y, "-p hi -n 3 --format json -q a -", 0,
        "cmd=-1 prompt=hi max=3 format=json quiet=1 ops=[a],[-]\n", "");
    RUN(p, dump_y, "-n ~3", 2, "",
        "llm-y: invalid value ' 3' for --max-tokens: expected an integer in [1, 100000]\n" TRY_Y);
    RUN(p, dump_y, "-n 3~", 2, "",
        "llm-y: invalid value '3 ' for --max-tokens: expected an integer in [1, 100000]\n" TRY_Y);
    RUN(p, dump_y, "--max-tokens 0", 2, "",
        "llm-y: invalid value '0' for --max-tokens: expected an integer in [1, 100000]\n" TRY_Y);
    RUN(p, dump_y, "--format xml", 2, "",
        "llm-y: invalid value 'xml' for --format: expected one of text, json\n" TRY_Y);
    RUN(p, dump_y, "--version", 0, version_text("llm-y", vbuf, sizeof vbuf), "");
    RUN(p, dump_y, "-V", 2, "", "llm-y: invalid option -- 'V'\n" TRY_Y);
    RUN(p, dump_y, "-h", 2, "", "llm-y: invalid option -- 'h'\n" TRY_Y);
    RUN(p, dump_y, "--generate", 2, "",
        "llm-y: option '--generate' requires an argument\n" TRY_Y);
}

/* ------------------------------------------------------------------------ */
/* --help text.                                                             */

static const char help_x[] =
    "Usage: llm-x COMMAND [OPTION]... [ARG]...\n"
    "Train, apply and invert a tokenizer.\n"
    "\n"
    "Commands:\n"
    "  train   Train a tokenizer model on text.\n"
    "  encode  Encode text to token ids.\n"
    "  decode  Decode token ids read from standard input.\n"
    "\n"
    "Options common to all commands:\n"
    "  -m, --model=FILE  tokenizer model (default: tok.model)\n"
    "      --seed=N      random seed (default: 1234)\n"
    "      --threads=N   worker threads, 0 for all cores (default: 0)\n"
    "  -q, --quiet       do not show progress\n"
    "  -h, --help        display this help and exit\n"
    "  -V, --version     output version information and exit\n"
    "\n"
    "Run 'llm-x COMMAND --help' for the options of each command.\n";

static const char help_train[] =
    "Usage: llm-x train [OPTION]... [FILE]...\n"
    "Train a tokenizer model on text.\n"
    "\n"
    "Options:\n"
    "  -m, --model=FILE       tokenizer model (default: tok.model)\n"
    "  -o, --output=FILE      write the model to FILE\n"
    "      --vocab-size=N     number of pieces in the vocabulary, including the\n"
    "                         special pieces and the byte pieces when byte fallback\n"
    "                         is on (default: 8000)\n"
    "      --model-type=TYPE  segmentation algorithm (one of unigram, bpe, char,\n"
    "                         word; default: unigram)\n"
    "      --cache-dir=DIR    scratch directory\n"
    "      --seed=N           random seed (default: 1234)\n"
    "      --threads=N        worker threads, 0 for all cores (default: 0)\n"
    "  -q, --quiet            do not show progress\n"
    "  -h, --help             display this help and exit\n"
    "  -V, --version          output version information and exit\n"
    "\n"
    "With no FILE, or when FILE is -, read standard input.\n";

static const char help_decode[] =
    "Usage: llm-x decode [OPTION]...\n"
    "Decode token ids read from standard input.\n"
    "\n"
    "Options:\n"
    "  -m, --model=FILE  tokenizer model (default: tok.model)\n"
    "  -n, --ndigits=N   digits to print (default: 3)\n"
    "      --scale=X     scale factor (default: 1)\n"
    "      --seed=N      random seed (default: 1234)\n"
    "      --threads=N   worker threads, 0 for all cores (default: 0)\n"
    "  -q, --quiet       do not show progress\n"
    "  -h, --help        display this help and exit\n"
    "  -V, --version     output version information and exit\n";

static const char help_y[] =
    "Usage: llm-y [OPTION]... [FILE]...\n"
    "Continue each input line.\n"
    "\n"
    "Options:\n"
    "  -p, --prompt=TEXT   .start from TEXT, a \\ backslash and 'quotes' [sic]: ok\n"
    "  -n, --max-tokens=N  tokens to generate (default: 256)\n"
    "      --format=FMT    output format (one of text, json; default: text)\n"
    "  -q, --quiet         do not show progress\n"
    "      --help          display this help and exit\n"
    "      --version       output version information and exit\n"
    "\n"
    "With no FILE, or when FILE is -, read standard input.\n";

static void test_help(void)
{
    RUN(&prog_x, dump_x, "--help", 0, help_x, "");
    RUN(&prog_x, dump_x, "-h", 0, help_x, "");
    RUN(&prog_x, dump_x, "train --help", 0, help_train, "");
    /* --help wins over what follows, even a bad value */
    RUN(&prog_x, dump_x, "train -h --vocab-size 0", 0, help_train, "");
    RUN(&prog_x, dump_x, "decode -qh", 0, help_decode, "");
    RUN(&prog_y, dump_y, "--help", 0, help_y, "");
    RUN(&prog_y, dump_y, "--he", 0, help_y, "");

    /* the defaults shown are the variables' current values */
    char *s = NULL;
    size_t n = 0;
    FILE *f = open_memstream(&s, &n);
    int saved = x_vocab;
    x_vocab = 42;
    cli_help(&prog_x, 0, f);
    fclose(f);
    x_vocab = saved;
    CHECK(strstr(s, "is on (default: 42)\n") != NULL, "help default not live:\n%s", s);
    free(s);

    /* every help line fits in 79 columns */
    const char *all[] = {help_x, help_train, help_decode, help_y};
    for (size_t i = 0; i < 4; i++)
        for (const char *l = all[i]; *l; ) {
            size_t len = strcspn(l, "\n");
            CHECK(len <= 79, "help line longer than 79: %.*s", (int)len, l);
            l += len + (l[len] == '\n');
        }
}

/* ------------------------------------------------------------------------ */
/* man and completions.                                                      */

static const char man_y[] =
    ".TP\n"
    "\\fB\\-p\\fR, \\fB\\-\\-prompt\\fR=\\fITEXT\\fR\n"
    "\\&.start from TEXT, a \\e backslash and 'quotes' [sic]: ok\n"
    ".TP\n"
    "\\fB\\-n\\fR, \\fB\\-\\-max\\-tokens\\fR=\\fIN\\fR\n"
    "tokens to generate (default: \\fB256\\fR)\n"
    ".TP\n"
    "\\fB\\-\\-format\\fR=\\fIFMT\\fR\n"
    "output format (one of \\fBtext\\fR, \\fBjson\\fR; default: \\fBtext\\fR)\n"
    ".TP\n"
    "\\fB\\-q\\fR, \\fB\\-\\-quiet\\fR\n"
    "do not show progress\n"
    ".TP\n"
    "\\fB\\-\\-help\\fR\n"
    "display this help and exit\n"
    ".TP\n"
    "\\fB\\-\\-version\\fR\n"
    "output version information and exit\n";

static char tmpdir[256];

static char *generate(const cli_prog *p, const char *kind, const char *file)
{
    char *s = NULL;
    size_t n = 0;
    FILE *f = open_memstream(&s, &n);
    CHECK(cli_generate(p, kind, f) == 0, "cli_generate(%s) failed", kind);
    fclose(f);
    if (file) {
        char path[512];
        snprintf(path, sizeof path, "%s/%s", tmpdir, file);
        FILE *o = fopen(path, "w");
        if (!o || fputs(s, o) < 0 || fclose(o) != 0)
            abort();
    }
    return s;
}

static int have(const char *shell)
{
    char cmd[128];
    snprintf(cmd, sizeof cmd, "command -v %s >/dev/null 2>&1", shell);
    return system(cmd) == 0;
}

/* Runs a shell command in tmpdir; returns its output, or NULL when it
 * failed. */
static char *shell(const char *fmt, ...) CLI_PRINTF(1, 2);
static char *shell(const char *fmt, ...)
{
    char cmd[4096], full[4400];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(cmd, sizeof cmd, fmt, ap);
    va_end(ap);
    snprintf(full, sizeof full, "cd '%s' && { %s ; } 2>&1", tmpdir, cmd);
    fflush(stdout);
    FILE *f = popen(full, "r");
    if (!f)
        abort();
    char *s = slurp(f);
    int st = pclose(f);
    if (st != 0) {
        fprintf(stderr, "command failed: %s\n%s", cmd, s);
        free(s);
        return NULL;
    }
    return s;
}

static void has(int line, const char *text, const char *what, const char *needle)
{
    check(strstr(text, needle) != NULL, line, "%s lacks: %s", what, needle);
}
#define HAS(text, what, needle) has(__LINE__, text, what, needle)

/* Completions bash offers for the words `words` (the last is completed). */
static void bash_completes(int line, const char *words, const char *want)
{
    char *s = shell("bash -c '. ./x.bash; COMP_WORDS=(%s); "
                    "COMP_CWORD=$((${#COMP_WORDS[@]} - 1)); _llm_x; "
                    "printf \"%%s\\n\" \"${COMPREPLY[*]}\"'", words);
    check(s && strcmp(s, want) == 0, line, "bash completion of (%s): got '%s', expected '%s'",
          words, s ? s : "(failed)", want);
    free(s);
}

static void fish_completes(int line, const char *cmdline, const char *want)
{
    char *s = shell("fish --no-config -c 'source x.fish; complete -C \"%s\" | cut -f1 | tr \"\\n\" \" \"'",
                    cmdline);
    check(s && strcmp(s, want) == 0, line, "fish completion of '%s': got '%s', expected '%s'",
          cmdline, s ? s : "(failed)", want);
    free(s);
}

static void test_generate(void)
{
    char *s;
    CHECK(cli_generate(&prog_x, "pdf", stdout) == -1, "unknown kind accepted");

    s = generate(&prog_y, "man", NULL);
    CHECK(strcmp(s, man_y) == 0, "man for llm-y:\n--- got:\n%s--- expected:\n%s---", s, man_y);
    free(s);

    s = generate(&prog_x, "man", "x.man");
    HAS(s, "man x", ".SS \"Options common to all commands\"\n.TP\n\\fB\\-m\\fR, \\fB\\-\\-model\\fR=\\fIFILE\\fR\ntokenizer model (default: \\fBtok.model\\fR)\n");
    HAS(s, "man x", ".SS \"Options for train\"\n.TP\n\\fB\\-o\\fR, \\fB\\-\\-output\\fR=\\fIFILE\\fR\nwrite the model to FILE\n");
    HAS(s, "man x", ".SS \"Options for encode\"\n.TP\n\\fB\\-n\\fR, \\fB\\-\\-nbest\\fR");
    HAS(s, "man x", ".SS \"Options for decode\"\n.TP\n\\fB\\-n\\fR, \\fB\\-\\-ndigits\\fR");
    HAS(s, "man x", "\\fB\\-\\-cache\\-dir\\fR=\\fIDIR\\fR\nscratch directory\n");
    CHECK(strstr(s, "generate") == NULL, "man lists --generate");
    free(s);
    /* the same bytes twice: no dates, no addresses */
    char *a = generate(&prog_x, "zsh", NULL), *b = generate(&prog_x, "zsh", NULL);
    CHECK(strcmp(a, b) == 0, "zsh output not deterministic");
    free(a);
    free(b);

    s = generate(&prog_x, "bash", "x.bash");
    HAS(s, "bash", "complete -F _llm_x llm-x\n");
    HAS(s, "bash", "-m|--model)\n");
    HAS(s, "bash", "COMPREPLY=($(compgen -W 'unigram bpe char word' -P \"$pre\" -- \"$cur\"));;\n");
    CHECK(strstr(s, "generate") == NULL || strstr(s, "--generate=bash") != NULL,
          "bash completes --generate");
    free(s);
    free(generate(&prog_y, "bash", "y.bash"));
    char *r = shell("bash -n x.bash && bash -n y.bash");
    CHECK(r != NULL, "bash -n failed");
    free(r);
    bash_completes(__LINE__, "llm-x tr", "train\n");
    bash_completes(__LINE__, "llm-x \"\"", "train encode decode\n");
    bash_completes(__LINE__, "llm-x --v", "--version\n");
    bash_completes(__LINE__, "llm-x train --model-type b", "bpe\n");
    bash_completes(__LINE__, "llm-x train --model-type = \"\"", "unigram bpe char word\n");
    bash_completes(__LINE__, "llm-x train --model-type = w", "word\n");
    bash_completes(__LINE__, "llm-x train --vocab-size \"\"", "\n");
    bash_completes(__LINE__, "llm-x train --v", "--vocab-size --version\n");
    bash_completes(__LINE__, "llm-x encode --st", "--stop\n");
    bash_completes(__LINE__, "llm-x decode -m x.ba", "x.bash\n");
    bash_completes(__LINE__, "llm-x encode y.ba", "y.bash\n");
    bash_completes(__LINE__, "llm-x decode y.ba", "\n");   /* decode reads no FILE */
    bash_completes(__LINE__, "llm-x train --cache-dir \"\"", "\n");   /* tmpdir has no subdirectories */

    s = generate(&prog_x, "zsh", "_llm-x");
    HAS(s, "zsh", "#compdef llm-x\n");
    HAS(s, "zsh", "'(-m --model)--model=[tokenizer model]:FILE:_files' \\\n");
    HAS(s, "zsh", "'--model-type=[segmentation algorithm]:TYPE:(unigram bpe char word)' \\\n");
    HAS(s, "zsh", "'*--stop=[stop at STR (repeatable)]:STR: ' \\\n");
    HAS(s, "zsh", "'--cache-dir=[scratch directory]:DIR:_files -/' \\\n");
    HAS(s, "zsh", "'train:Train a tokenizer model on text.'\n");
    free(s);
    s = generate(&prog_y, "zsh", "_llm-y");
    HAS(s, "zsh y", "'(-p --prompt)--prompt=[.start from TEXT, a \\\\ backslash and '\\''quotes'\\'' \\[sic\\]: ok]:TEXT: ' \\\n");
    HAS(s, "zsh y", "'*:file:_files' \\\n");
    free(s);
    if (have("zsh")) {
        r = shell("zsh -n _llm-x && zsh -n _llm-y");
        CHECK(r != NULL, "zsh -n failed");
        free(r);
    } else {
        printf("note: zsh not installed; zsh syntax not checked\n");
    }

    s = generate(&prog_x, "fish", "x.fish");
    HAS(s, "fish", "complete -c llm-x -n __fish_use_subcommand -a 'train' -d 'Train a tokenizer model on text.'\n");
    HAS(s, "fish", "complete -c llm-x -n '__fish_seen_subcommand_from train' -l model-type -x -a 'unigram bpe char word' -d 'segmentation algorithm'\n");
    HAS(s, "fish", "complete -c llm-x -n '__fish_seen_subcommand_from train encode decode' -s m -l model -r -F -d 'tokenizer model'\n");
    HAS(s, "fish", "complete -c llm-x -s V -l version -d 'output version information and exit'\n");
    free(s);
    s = generate(&prog_y, "fish", "y.fish");
    HAS(s, "fish y", "-d '.start from TEXT, a \\\\ backslash and \\'quotes\\' [sic]: ok'\n");
    HAS(s, "fish y", "complete -c llm-y -F\n");
    free(s);
    if (have("fish")) {
        r = shell("fish --no-config -n x.fish && fish --no-config -n y.fish");
        CHECK(r != NULL, "fish -n failed");
        free(r);
        fish_completes(__LINE__, "llm-x tr", "train ");
        fish_completes(__LINE__, "llm-x train --model-type=", "--model-type=bpe --model-type=char --model-type=unigram --model-type=word ");
        fish_completes(__LINE__, "llm-x encode --st", "--stop ");
    } else {
        printf("note: fish not installed; fish syntax not checked\n");
    }
}

/* ------------------------------------------------------------------------ */
/* Messages and I/O helpers.                                                 */

static void c_open_missing(void *arg)
{
    (void)arg;
    cli_set_prog("llm-t");
    cli_open("no/such.file");
}

static void c_open_dir(void *arg)
{
    (void)arg;
    cli_set_prog("llm-t");
    cli_open(".");
}

static void c_open_ok(void *arg)
{
    (void)arg;
    cli_set_prog("llm-t");
    FILE *f = cli_open("x.bash");
    int ok = f && f != stdin;
    cli_close(f);
    ok = ok && cli_open("-") == stdin && cli_open(NULL) == stdin;
    cli_close(stdin);   /* a no-op: stdin stays usable */
    printf("%d\n", ok && fileno(stdin) == 0 && !ferror(stdin));
}

static void c_messages(void *arg)
{
    (void)arg;
    cli_set_prog("llm-t");
    printf("%s\n", cli_prog_name());
    fflush(stdout);
    cli_warn("careful: %d", 42);
    errno = 0;
    cli_die_status(LLM_ERR_NOMEM);
}

static void c_usage(void *arg)
{
    (void)arg;
    cli_set_prog("llm-t");
    cli_usage("bad %s", "thing");
}

static void c_die(void *arg)
{
    (void)arg;
    cli_set_prog("llm-t");
    cli_die("cannot open '%s': %s", "m.llm", strerror(ENOENT));
}

static void c_full(void *arg)
{
    (void)arg;
    cli_set_prog("llm-t");
    FILE *f = fopen("/dev/full", "w");
    if (!f)
        exit(77);
    cli_write("hello\n", 6, f);
    cli_flush(f);
    exit(0);
}

/* Writes to a pipe nobody reads; arg: 0 SIGPIPE default via cli_signals
 * after it was ignored, 1 SIGPIPE ignored (EPIPE reaches cli_write). */
static void c_pipe(void *arg)
{
    int mode = *(int *)arg;
    int fd[2];
    cli_set_prog("llm-t");
    if (pipe(fd) != 0)
        exit(99);
    close(fd[0]);
    signal(SIGPIPE, SIG_IGN);
    if (mode == 0)
        cli_signals();
    FILE *f = fdopen(fd[1], "w");
    cli_write("x\n", 2, f);
    cli_flush(f);
    exit(98);   /* not reached */
}

static void c_help_full(void *arg)
{
    (void)arg;
    if (!freopen("/dev/full", "w", stdout))
        exit(77);
    char *argv[] = {(char *)"llm-y", (char *)"--help", NULL};
    int cmd;
    cli_parse(&prog_y, 2, argv, &cmd);
    exit(97);
}

static void test_messages(void)
{
    int st;
    char *out, *err;
    in_child(c_open_missing, NULL, &st, &out, &err);
    expect(__LINE__, "cli_open missing", st, out, err, 1, "",
           "llm-t: cannot open 'no/such.file': No such file or directory\n");
    free(out), free(err);
    in_child(c_open_dir, NULL, &st, &out, &err);
    expect(__LINE__, "cli_open dir", st, out, err, 1, "",
           "llm-t: cannot read '.': Is a directory\n");
    free(out), free(err);
    in_child(c_open_ok, NULL, &st, &out, &err);
    expect(__LINE__, "cli_open ok", st, out, err, 0, "1\n", "");
    free(out), free(err);
    in_child(c_messages, NULL, &st, &out, &err);
    expect(__LINE__, "messages", st, out, err, 1, "llm-t\n",
           "llm-t: careful: 42\nllm-t: out of memory\n");
    free(out), free(err);
    in_child(c_usage, NULL, &st, &out, &err);
    expect(__LINE__, "cli_usage", st, out, err, 2, "",
           "llm-t: bad thing\nTry 'llm-t --help' for more information.\n");
    free(out), free(err);
    in_child(c_die, NULL, &st, &out, &err);
    expect(__LINE__, "cli_die", st, out, err, 1, "",
           "llm-t: cannot open 'm.llm': No such file or directory\n");
    free(out), free(err);
    in_child(c_full, NULL, &st, &out, &err);
    if (st != 77)
        expect(__LINE__, "write to /dev/full", st, out, err, 1, "",
               "llm-t: write error: No space left on device\n");
    free(out), free(err);
    in_child(c_help_full, NULL, &st, &out, &err);
    if (st != 77)
        expect(__LINE__, "--help to /dev/full", st, out, err, 1, "",
               "llm-y: write error: No space left on device\n");
    free(out), free(err);
    for (int mode = 0; mode < 2; mode++) {
        in_child(c_pipe, &mode, &st, &out, &err);
        expect(__LINE__, mode ? "EPIPE with SIGPIPE ignored" : "SIGPIPE restored",
               st, out, err, 1000 + SIGPIPE, "", "");
        free(out), free(err);
    }
    CHECK(cli_isatty_stderr() == isatty(2), "cli_isatty_stderr");
}

/* Labelled lines: the labels (joined with |), the text, or the error. */
static void labelled(int line, const char *in, int multi, size_t cap, const char *want)
{
    cli_span sp[8];
    size_t n = 99;
    const char *text = NULL;
    const char *why = cli_split_labelled(in, strlen(in), multi, sp, cap, &n, &text);
    char got[256] = "";
    if (why)
        snprintf(got, sizeof got, "error: %s", why);
    else {
        for (size_t i = 0; i < n; i++)
            snprintf(got + strlen(got), sizeof got - strlen(got), "%s%.*s", i ? "|" : "",
                     (int)sp[i].n, sp[i].s);
        snprintf(got + strlen(got), sizeof got - strlen(got), " / %s", text);
    }
    check(strncmp(got, want, strlen(want)) == 0, line, "'%s': got '%s', want '%s'", in, got,
          want);
}

static void test_labelled(void)
{
    labelled(__LINE__, "sports\tThe match", 0, 8, "sports / The match");
    labelled(__LINE__, "a,b\tx", 0, 8, "a,b / x");            /* one label, with a comma */
    labelled(__LINE__, "a,b\tx", 1, 8, "a|b / x");
    labelled(__LINE__, "a,\tx", 1, 8, "error: empty label");
    labelled(__LINE__, "\tx", 0, 8, "error: empty label");
    labelled(__LINE__, "a,b,c\tx", 1, 2, "error: too many labels");
    labelled(__LINE__, "no tab here", 0, 8, "error: no tab between label and text");
    labelled(__LINE__, "__label__a __label__b  text here", 1, 8, "a|b / text here");
    labelled(__LINE__, "__label__a\t__label__b", 1, 8, "a|b / ");
    labelled(__LINE__, "__label__ text", 0, 8, "error: empty label");
    labelled(__LINE__, "x __label__a", 0, 8, "error: no tab");   /* labels only in front */
}

int main(void)
{
    /* getopt permutes unless POSIXLY_CORRECT is set; the cases expect GNU's
     * default. */
    unsetenv("POSIXLY_CORRECT");
    const char *t = getenv("TMPDIR");
    snprintf(tmpdir, sizeof tmpdir, "%s/test_cli.XXXXXX", t && *t ? t : "/tmp");
    if (!mkdtemp(tmpdir)) {
        perror("mkdtemp");
        return 1;
    }
    test_parse_x();
    test_parse_y();
    test_help();
    test_generate();
    test_labelled();
    if (chdir(tmpdir) != 0)
        abort();
    test_messages();
    if (chdir("/") != 0)
        abort();
    char rm[400];
    snprintf(rm, sizeof rm, "rm -rf '%s'", tmpdir);
    if (system(rm) != 0)
        fprintf(stderr, "warning: could not remove %s\n", tmpdir);
    printf("test_cli: %d checks, %d failed\n", nchecks, nfailed);
    return nfailed ? 1 : 0;
}
