/* cli.c: what every llm-* program shares besides its option table:
 * messages (warnings, fatal errors, usage errors with the "Try" line, the
 * library's messages led by the option at fault), I/O that treats a
 * reader going away and write errors as Unix filters do, signals, the
 * clock. The table's machinery: cli_parse.c (parsing, --help),
 * cli_gen.c (man pages, completions); labelled lines: labelled.c. */
#include "cli.h"
#include "cli_int.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <sys/stat.h>
#include <unistd.h>

const char *cli_g_prog;            /* name used in messages */
const char *cli_g_cmd;             /* chosen subcommand, for the "Try" line */
const cli_prog *cli_g_table;       /* the table cli_parse() parsed */
/* ======================================================================== */
/* Messages                                                                 */

void cli_set_prog(const char *name)
{
    cli_g_prog = name;
}

const char *cli_prog_name(void)
{
    return cli_g_prog ? cli_g_prog : "llm";
}

static void vmsg(const char *fmt, va_list ap) CLI_PRINTF(1, 0);
static void vmsg(const char *fmt, va_list ap)
{
    fprintf(stderr, "%s: ", cli_prog_name());
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
}

void cli_warn(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vmsg(fmt, ap);
    va_end(ap);
}

void cli_die(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vmsg(fmt, ap);
    va_end(ap);
    exit(CLI_EXIT_FAIL);
}

static CLI_NORETURN void try_help(void)
{
    if (cli_g_cmd)
        fprintf(stderr, "Try '%s %s --help' for more information.\n",
                cli_prog_name(), cli_g_cmd);
    else
        fprintf(stderr, "Try '%s --help' for more information.\n", cli_prog_name());
    exit(CLI_EXIT_USAGE);
}

void cli_usage(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vmsg(fmt, ap);
    va_end(ap);
    try_help();
}

/* The library's parameters (llm_errparam()) and the options that set them
 * in every program that has them. */
static const struct { const char *param, *option; } param_options[] = {
    { "dim", "dim" }, { "n_layers", "layers" }, { "n_heads", "heads" },
    { "n_kv_heads", "kv-heads" }, { "ffn_dim", "ffn-dim" }, { "context", "context" },
    { "dropout", "dropout" }, { "lr", "lr" }, { "weight_decay", "weight-decay" },
};


/* The running program's option for a library parameter, or NULL. */
static const char *param_option(const char *param)
{
    for (size_t i = 0; param && cli_g_table && i < sizeof param_options / sizeof *param_options;
         i++)
        if (strcmp(param, param_options[i].param) == 0)
            for (int j = 0; j < cli_g_table->nopts; j++)
                if (strcmp(cli_g_table->opts[j].name, param_options[i].option) == 0)
                    return param_options[i].option;
    return NULL;
}

const char *cli_errmsg(int status)
{
    static char buf[1100];
    const char *m = llm_errmsg(), *opt = param_option(llm_errparam());
    if (!m || !*m)
        return llm_strerror(status);
    if (!opt)
        return m;
    snprintf(buf, sizeof buf, "--%s: %s", opt, m);
    return buf;
}

void cli_die_status(int status)
{
    cli_die("%s", cli_errmsg(status));
}

void cli_precision(llm_model *m, const char *precision)
{
    int rc = strcmp(precision, "f16") == 0    ? llm_model_decode_f16(m)
             : strcmp(precision, "q8") == 0   ? llm_model_quantize_q8(m)
             : strcmp(precision, "bf16") == 0 ? llm_model_weights_bf16(m)
                                              : LLM_OK;
    if (rc)
        cli_die("--precision %s: %s", precision, llm_errmsg());
}

/* ======================================================================== */
/* I/O helpers                                                              */

FILE *cli_open(const char *path)
{
    if (!path || strcmp(path, "-") == 0)
        return stdin;
    FILE *f = fopen(path, "rb");
    if (!f)
        cli_die("cannot open '%s': %s", path, strerror(errno));
    /* fopen succeeds on a directory and the first read fails with EISDIR;
     * say so up front, naming the file. */
    struct stat st;
    if (fstat(fileno(f), &st) == 0 && S_ISDIR(st.st_mode)) {
        fclose(f);
        cli_die("cannot read '%s': %s", path, strerror(EISDIR));
    }
    return f;
}

void cli_close(FILE *f)
{
    if (f && f != stdin)
        fclose(f);
}

void cli_records_open(cli_records *r, const char *path)
{
    r->name = !path || strcmp(path, "-") == 0 ? "(standard input)" : path;
    r->ln = 0;
    r->f = cli_open(path);
    int rc = llm_lines_open(r->f, &r->lines);
    if (rc)
        cli_die_status(rc);
}

int cli_records_next(cli_records *r, const char **line, size_t *len)
{
    int rc;
    while ((rc = llm_lines_next(r->lines, line, len)) == 1) {
        r->ln = (long long)llm_lines_number(r->lines);
        if (*len && (*line)[*len - 1] == '\r')
            (*len)--;
        if (*len == 0)
            continue;
        size_t bad;
        if (!llm_utf8_check(*line, *len, &bad))
            cli_die("'%s', line %lld: invalid UTF-8 at byte %zu", r->name, r->ln, bad + 1);
        return 1;
    }
    if (rc < 0)
        cli_die("'%s': %s", r->name, llm_errmsg());
    return 0;
}

void cli_records_close(cli_records *r)
{
    llm_lines_free(r->lines);
    cli_close(r->f);
}

/* A reader went away. With SIGPIPE at its default disposition (cli_signals)
 * the write itself kills us and we never get here; EPIPE means SIGPIPE was
 * ignored or blocked by the program. We still end the way a pipeline
 * expects, quietly and as if killed by SIGPIPE (the shell sees 141), like
 * `yes | head` does; reporting "Broken pipe" for a reader that merely
 * stopped early would be noise. */
static CLI_NORETURN void die_sigpipe(void)
{
    sigset_t set;
    signal(SIGPIPE, SIG_DFL);
    sigemptyset(&set);
    sigaddset(&set, SIGPIPE);
    sigprocmask(SIG_UNBLOCK, &set, NULL);
    raise(SIGPIPE);
    _exit(128 + SIGPIPE);
}

static CLI_NORETURN void write_failed(int err)
{
    if (err == EPIPE)
        die_sigpipe();
    cli_die("write error: %s", strerror(err ? err : EIO));
}

void cli_write(const void *p, size_t n, FILE *f)
{
    if (n == 0)
        return;
    errno = 0;
    if (fwrite(p, 1, n, f) != n)
        write_failed(errno);
}

void cli_flush(FILE *f)
{
    errno = 0;
    if (fflush(f) != 0 || ferror(f))
        write_failed(errno);
}

void cli_signals(void)
{
    /* A parent (some daemons, Python's subprocess with restore_signals=False)
     * may leave SIGPIPE ignored or blocked; both are inherited. */
    sigset_t set;
    signal(SIGPIPE, SIG_DFL);
    sigemptyset(&set);
    sigaddset(&set, SIGPIPE);
    sigprocmask(SIG_UNBLOCK, &set, NULL);
    /* A closed standard error (2>&-) would be the next file opened, and
     * the diagnostics written into it (llm-train's --log began with its
     * progress lines): /dev/null takes its place. */
    if (fcntl(STDERR_FILENO, F_GETFD) < 0 && errno == EBADF) {
        int fd = open("/dev/null", O_WRONLY);
        if (fd >= 0 && fd != STDERR_FILENO) {
            dup2(fd, STDERR_FILENO);
            close(fd);
        }
    }
}

int cli_isatty_stderr(void)
{
    return isatty(STDERR_FILENO);
}

static volatile sig_atomic_t stop_signal;

static void on_stop(int sig)
{
    stop_signal = sig;
    signal(sig, SIG_DFL);   /* a second one ends the program at once */
}

void cli_catch_stop(void)
{
    signal(SIGINT, on_stop);
    signal(SIGTERM, on_stop);
}

int cli_stopped(void)
{
    return stop_signal;
}

int cli_wait_input(int fd)
{
    struct pollfd p = { fd, POLLIN, 0 };
    while (poll(&p, 1, -1) < 0 && errno == EINTR)
        if (stop_signal)
            return 0;
    return 1;
}

static ssize_t stoppable_read(void *cookie, char *buf, size_t n)
{
    int fd = (int)(intptr_t)cookie;
    for (;;) {
        if (!cli_wait_input(fd))
            return 0;
        ssize_t r = read(fd, buf, n);
        if (r >= 0 || errno != EINTR)
            return r;
    }
}

FILE *cli_stoppable(FILE *f)
{
    struct stat st;
    if (fstat(fileno(f), &st) == 0 && S_ISREG(st.st_mode))
        return f;
    cookie_io_functions_t io = { .read = stoppable_read };
    FILE *s = fopencookie((void *)(intptr_t)fileno(f), "r", io);
    if (!s)
        cli_die("out of memory");
    return s;
}

double cli_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}
