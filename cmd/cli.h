/* cli.h: the option table every llm-* program is built around, and the small
 * helpers all programs share (messages, exit codes, opening "-" as stdin).
 *
 * One table per program drives getopt_long parsing, value checking, the
 * --help text (defaults printed from the variables themselves), the man
 * page's OPTIONS section and the bash/zsh/fish completions, so that they
 * cannot drift apart. `prog --generate=man|bash|zsh|fish` prints the
 * generated text (used by the Makefile; not meant for users).
 */
#ifndef LLM_CLI_H
#define LLM_CLI_H

#include <stdint.h>
#include <stdio.h>

#include "llm.h"

#if defined(__GNUC__)
#define CLI_PRINTF(a, b) __attribute__((format(printf, a, b)))
#define CLI_NORETURN __attribute__((noreturn))
#else
#define CLI_PRINTF(a, b)
#define CLI_NORETURN
#endif

/* Exit statuses. */
enum { CLI_EXIT_OK = 0, CLI_EXIT_FAIL = 1, CLI_EXIT_USAGE = 2 };

typedef enum {
    CLI_FLAG,     /* no argument; *(int *)dest = 1 */
    CLI_INT,      /* *(int *)dest, checked against [min, max] */
    CLI_INT64,    /* *(int64_t *)dest, checked against [min, max] */
    CLI_DOUBLE,   /* *(double *)dest, finite, checked against [min, max] */
    CLI_STRING,   /* *(const char **)dest = optarg */
    CLI_CHOICE,   /* *(const char **)dest = optarg, one of `choices` */
    CLI_LIST,     /* appends optarg to a cli_list (repeatable option) */
    CLI_OPTINT,   /* --name[=N], no short name: *(int *)dest = N in [min, max], or -1
                   * when given bare (the program's default) */
    CLI_HELP,     /* --help: prints help to stdout, exits 0 */
    CLI_VERSION   /* --version: prints "prog VERSION", exits 0 */
} cli_type;

typedef enum {
    CLI_COMPLETE_NONE,   /* free text or a number */
    CLI_COMPLETE_FILE,   /* a path */
    CLI_COMPLETE_DIR,    /* a directory */
    CLI_COMPLETE_CHOICE  /* one of `choices` */
} cli_complete;

typedef struct {
    const char **items;
    int n, cap;
} cli_list;

typedef struct {
    const char *name;      /* long name without "--" */
    int short_name;        /* e.g. 'm', or 0 */
    cli_type type;
    void *dest;            /* where the parsed value goes (NULL for HELP/VERSION) */
    const char *metavar;   /* e.g. "N", "FILE"; NULL for flags */
    const char *help;      /* one sentence, no full stop at the end */
    const char *choices;   /* "a|b|c" for CLI_CHOICE */
    double min, max;       /* inclusive range for numbers; min == max == 0: any */
    unsigned cmds;         /* bit i set: applies to subcommand i; 0: all */
    cli_complete complete;
    int no_default;        /* 1: do not print "(default: ...)" in help */
} cli_opt;

/* The options every program that has them declares alike, one place for
 * their names, letters, ranges and help. */
#define CLI_OPT_THREADS(var)                                                             \
    {"threads", 't', CLI_INT, (var), "N", "threads (0: all cores)", NULL, 0, 4096, 0,   \
     CLI_COMPLETE_NONE, 1}
#define CLI_OPT_DEVICE(var)                                                              \
    {"device", 0, CLI_CHOICE, (var), "DEV",                                              \
     "where to compute (cuda: an NVIDIA GPU, in a CUDA=1 build; see llm(7))", "cpu|cuda",\
     0, 0, 0, CLI_COMPLETE_CHOICE, 0}
#define CLI_OPT_HELP                                                                     \
    {"help", 'h', CLI_HELP, NULL, NULL, "display this help and exit", NULL, 0, 0, 0,    \
     CLI_COMPLETE_NONE, 1}
#define CLI_OPT_VERSION                                                                  \
    {"version", 0, CLI_VERSION, NULL, NULL, "output version information and exit", NULL, \
     0, 0, 0, CLI_COMPLETE_NONE, 1}

typedef struct {
    const char *name;      /* "train" */
    const char *args;      /* "[FILE]...", shown in usage */
    const char *summary;   /* one line */
} cli_cmd;

typedef struct {
    const char *name;      /* "llm-tokenize" */
    const char *args;      /* usage arguments when there are no subcommands */
    const char *summary;   /* one line: what the program does */
    const cli_cmd *cmds;   /* NULL when the program has no subcommands */
    int ncmds;
    const cli_opt *opts;
    int nopts;
} cli_prog;

/*! cli_parse() : parses argv with getopt_long from the table. For programs
 *  with subcommands argv[1] must name one (its index goes to *cmd; "--help"
 *  and "--version" are accepted in its place). Options of another subcommand
 *  are usage errors. Handles --help, --version and --generate itself (they
 *  exit). On a usage error prints one line and "Try 'prog --help'" to stderr
 *  and exits 2. @return the index of the first operand in argv. */
int cli_parse(const cli_prog *p, int argc, char **argv, int *cmd);

/*! cli_given() : whether the option whose value lives at `dest` was given
 *  on the command line (by the last cli_parse()). */
int cli_given(const void *dest);
/*! cli_opt_string() : an option's current value as text ("0"/"1" for
 *  flags); 0 when it has none to give (unset string, list). */
int cli_opt_string(const cli_opt *o, char *buf, size_t cap);
/*! cli_opt_set() : sets an option from text as if given (checked the same
 *  way; a bad value is a usage error naming the option), without counting
 *  it as given. */
void cli_opt_set(const cli_prog *p, const cli_opt *o, const char *value);

/*! cli_help() : writes the --help text for subcommand `cmd` (-1: the
 *  program overview) to `f`, with defaults read from the dest variables. */
void cli_help(const cli_prog *p, int cmd, FILE *f);
/*! cli_generate() : writes the man OPTIONS section ("man"), or a completion
 *  script ("bash", "zsh", "fish") to `f`. @return 0, or -1 for an unknown kind. */
int cli_generate(const cli_prog *p, const char *kind, FILE *f);

/*! cli_errmsg() : the library's last message (llm_errmsg()), led by the
 *  option that sets the parameter at fault when this program has one
 *  ("--lr: learning rate ..."); llm_strerror(status) when there is none. */
const char *cli_errmsg(int status);
/* Messages, all to stderr, prefixed with the program name. */
void cli_set_prog(const char *name);
const char *cli_prog_name(void);
void cli_warn(const char *fmt, ...) CLI_PRINTF(1, 2);
CLI_NORETURN void cli_die(const char *fmt, ...) CLI_PRINTF(1, 2);       /* exit 1 */
CLI_NORETURN void cli_usage(const char *fmt, ...) CLI_PRINTF(1, 2);     /* exit 2 */
/*! cli_die_status() : "prog: <llm_errmsg()>" and exit 1, for library failures. */
CLI_NORETURN void cli_die_status(int status);
/*! cli_precision() : the copies an inference --precision asks of model m:
 *  "f16" (llm_model_decode_f16()), "q8" (llm_model_quantize_q8()), "bf16"
 *  (llm_model_weights_bf16()); "f32" none. Dies with the reason when the
 *  library refuses. */
void cli_precision(llm_model *m, const char *precision);

/*! cli_open() : opens `path` for reading, "-" or NULL meaning stdin; dies
 *  with "cannot open 'x': reason" on failure. */
FILE *cli_open(const char *path);
void cli_close(FILE *f);   /* no-op for stdin */

/* A file of text records read a line at a time, as the programs read
 * labelled lines and pairs: the final '\r' dropped, empty lines skipped,
 * UTF-8 checked. */
typedef struct {
    const char *name;   /* the path, or "(standard input)": for messages */
    long long ln;       /* the number of the line last returned */
    FILE *f;
    llm_lines *lines;
} cli_records;

/*! cli_records_open() : opens `path` ("-" or NULL: stdin); dies as cli_open(). */
void cli_records_open(cli_records *r, const char *path);
/*! cli_records_next() : the next non-empty line; dies with "'NAME', line N:
 *  invalid UTF-8 at byte B", or "'NAME': reason" when reading fails.
 *  @return 1, or 0 at the end of the file. */
int  cli_records_next(cli_records *r, const char **line, size_t *len);
void cli_records_close(cli_records *r);

/*! cli_write() : fwrite that dies quietly on EPIPE and loudly on other errors. */
void cli_write(const void *p, size_t n, FILE *f);
/*! cli_flush() : fflush with the same error handling. */
void cli_flush(FILE *f);

/*! cli_signals() : SIGPIPE ends the program quietly (default disposition). */
void cli_signals(void);

/*! cli_isatty_stderr() : whether progress should be shown by default. */
int cli_isatty_stderr(void);

/*! cli_catch_stop() : the first SIGINT or SIGTERM is only recorded, for the
 *  program to finish cleanly; a second one ends it at once. */
void cli_catch_stop(void);
/*! cli_stopped() : the signal recorded by cli_catch_stop(), or 0. */
int cli_stopped(void);
/*! cli_wait_input() : waits until fd has input (or its end) in poll(),
 *  which a signal interrupts where a read() on a pipe would be restarted.
 *  @return 0 when SIGINT or SIGTERM (cli_catch_stop()) came meanwhile. */
int cli_wait_input(int fd);
/*! cli_stoppable() : f itself when it is a regular file, else a stream
 *  over its descriptor (close it with fclose() before f) whose reads wait
 *  in cli_wait_input(), and which ends at SIGINT or SIGTERM instead of
 *  waiting on for input that may never come (a quiet pipe). Read nothing
 *  from f before. */
FILE *cli_stoppable(FILE *f);
/*! cli_now() : seconds on the monotonic clock. */
double cli_now(void);

/* A piece of a line. */
typedef struct {
    const char *s;
    size_t n;
} cli_span;

/*! cli_split_labelled() : the labels and the text of a labelled line (its
 *  end of line removed): leading "__label__NAME" words (fastText's form),
 *  or "LABEL<TAB>text" where LABEL holds comma-separated labels when
 *  `multi`. Up to cap labels go into labels[], *n of them, and *text
 *  points past them. @return NULL, or what is wrong with the line. */
const char *cli_split_labelled(const char *line, size_t len, int multi, cli_span *labels,
                               size_t cap, size_t *n, const char **text);

#endif
