/* cli.c: the option-table machinery behind every llm-* program (parsing with
 * strict value checks, --help, man OPTIONS sections, bash/zsh/fish
 * completions) and the message and I/O helpers they share. See cli.h. */
#include "cli.h"

#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <limits.h>
#include <math.h>
#include <signal.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <sys/stat.h>
#include <unistd.h>

static const char *g_prog;   /* name used in messages */
static const char *g_cmd;    /* chosen subcommand, for the "Try" line */

/* Widest line the help text wraps to. */
#define HELP_WIDTH 79
/* Help column never further right than this; longer option names get
 * their description on the next line. */
#define HELP_MAXCOL 32

/* ======================================================================== */
/* Messages                                                                 */

void cli_set_prog(const char *name)
{
    g_prog = name;
}

const char *cli_prog_name(void)
{
    return g_prog ? g_prog : "llm";
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
    if (g_cmd)
        fprintf(stderr, "Try '%s %s --help' for more information.\n",
                cli_prog_name(), g_cmd);
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

static const cli_prog *g_table;   /* the table cli_parse() parsed */

/* The running program's option for a library parameter, or NULL. */
static const char *param_option(const char *param)
{
    for (size_t i = 0; param && g_table && i < sizeof param_options / sizeof *param_options;
         i++)
        if (strcmp(param, param_options[i].param) == 0)
            for (int j = 0; j < g_table->nopts; j++)
                if (strcmp(g_table->opts[j].name, param_options[i].option) == 0)
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

double cli_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

/* Appends label s..e to labels (cap of them). @return NULL or the error. */
static const char *add_label(const char *s, const char *e, cli_span *labels, size_t cap,
                             size_t *n)
{
    if (e == s)
        return "empty label";
    if (*n == cap)
        return "too many labels";
    labels[(*n)++] = (cli_span){ s, (size_t)(e - s) };
    return NULL;
}

const char *cli_split_labelled(const char *line, size_t len, int multi, cli_span *labels,
                               size_t cap, size_t *n, const char **text)
{
    static const char ft[] = "__label__";
    const size_t FT = sizeof ft - 1;
    const char *end = line + len;
    *n = 0;
    if (len >= FT && memcmp(line, ft, FT) == 0) {
        const char *p = line;
        while ((size_t)(end - p) >= FT && memcmp(p, ft, FT) == 0) {
            const char *s = p + FT, *e = s;
            while (e < end && *e != ' ' && *e != '\t')
                e++;
            const char *why = add_label(s, e, labels, cap, n);
            if (why)
                return why;
            p = e;
            while (p < end && (*p == ' ' || *p == '\t'))
                p++;
        }
        *text = p;
        return NULL;
    }
    const char *tab = memchr(line, '\t', len);
    if (!tab)
        return "no tab between label and text (expected 'label<TAB>text' or "
               "'__label__x text')";
    /* Each label ends at a comma (multi) or the tab; one ending at a comma
     * must be followed by another. */
    for (const char *s = line; s <= tab;) {
        const char *e = s;
        while (e < tab && !(multi && *e == ','))
            e++;
        const char *why = add_label(s, e, labels, cap, n);
        if (why)
            return why;
        s = e + 1;
    }
    *text = tab + 1;
    return NULL;
}

/* ======================================================================== */
/* The table, with --help and --version added when the program left them out */

static const cli_opt implicit_help = {
    "help", 0, CLI_HELP, NULL, NULL, "display this help and exit",
    NULL, 0, 0, 0, CLI_COMPLETE_NONE, 1};
static const cli_opt implicit_version = {
    "version", 0, CLI_VERSION, NULL, NULL, "output version information and exit",
    NULL, 0, 0, 0, CLI_COMPLETE_NONE, 1};

static const cli_opt *find_type(const cli_prog *p, cli_type t)
{
    for (int i = 0; i < p->nopts; i++)
        if (p->opts[i].type == t)
            return &p->opts[i];
    return NULL;
}

static int opt_count(const cli_prog *p)
{
    return p->nopts + !find_type(p, CLI_HELP) + !find_type(p, CLI_VERSION);
}

/* Option i of the table, then the implicit --help and --version. */
static const cli_opt *opt_at(const cli_prog *p, int i)
{
    if (i < p->nopts)
        return &p->opts[i];
    i -= p->nopts;
    if (!find_type(p, CLI_HELP)) {
        if (i == 0)
            return &implicit_help;
        i--;
    }
    return &implicit_version;
}

static int takes_arg(const cli_opt *o)
{
    return o->type != CLI_FLAG && o->type != CLI_HELP && o->type != CLI_VERSION;
}

/* Takes an argument that may not be left out (completions offer one). */
static int needs_arg(const cli_opt *o)
{
    return takes_arg(o) && o->type != CLI_OPTINT;
}

/* Whether option `o` may be used with subcommand `cmd`. */
static int applies(const cli_opt *o, int cmd)
{
    return cmd < 0 || o->cmds == 0 || (cmd < 32 && (o->cmds >> cmd) & 1u);
}

/* Whether option `o` belongs in the help/man group of `cmd`: for programs
 * with subcommands the overview (-1) shows the options common to all. */
static int shown(const cli_prog *p, const cli_opt *o, int cmd)
{
    if (!p->cmds)
        return 1;
    if (cmd < 0)
        return o->cmds == 0;
    return applies(o, cmd);
}

static const char *metavar(const cli_opt *o)
{
    if (o->metavar)
        return o->metavar;
    switch (o->type) {
    case CLI_INT: case CLI_INT64: case CLI_OPTINT: return "N";
    case CLI_DOUBLE: return "X";
    case CLI_CHOICE: return "WORD";
    default: return "STRING";
    }
}

/* The operands of `cmd` (or of the program) read files. */
static int reads_files(const cli_prog *p, int cmd)
{
    const char *a = cmd >= 0 ? p->cmds[cmd].args : p->args;
    return a && strstr(a, "FILE") != NULL;
}

static void print_version(const cli_prog *p)
{
    printf("%s (llm) %s\n", p->name, LLM_VERSION);
    /* kernels: cpu avx512 (avx2, generic available) */
    const char *level = llm_cpu_level(), *const *all = llm_cpu_levels();
    printf("kernels: cpu %s", level);
    for (int i = 0, n = 0; all[i]; i++)
        if (strcmp(all[i], level) != 0)
            printf("%s%s", n++ ? ", " : " (", all[i]);
    printf("%s\n", all[1] ? " available)" : "");   /* level is one of all */
    cli_flush(stdout);
    exit(CLI_EXIT_OK);
}

static CLI_NORETURN void print_help(const cli_prog *p, int cmd)
{
    cli_help(p, cmd, stdout);
    cli_flush(stdout);
    exit(CLI_EXIT_OK);
}

/* ======================================================================== */
/* Parsing                                                                  */

/* "a, b, c" from "a|b|c", for messages. */
static void choice_list(const char *choices, const char *sep, char *buf, size_t cap)
{
    size_t n = 0;
    buf[0] = '\0';
    for (const char *s = choices; s && *s; ) {
        size_t len = strcspn(s, "|");
        int w = snprintf(buf + n, cap - n, "%s%.*s", n ? sep : "", (int)len, s);
        if (w < 0 || (size_t)w >= cap - n)
            break;
        n += (size_t)w;
        s += len + (s[len] == '|');
    }
}

static int is_choice(const char *choices, const char *v)
{
    size_t vlen = strlen(v);
    for (const char *s = choices; s && *s; ) {
        size_t len = strcspn(s, "|");
        if (len == vlen && strncmp(s, v, len) == 0)
            return 1;
        s += len + (s[len] == '|');
    }
    return 0;
}

static CLI_NORETURN CLI_PRINTF(3, 4)
void bad_value(const cli_opt *o, const char *arg, const char *fmt, ...)
{
    char want[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(want, sizeof want, fmt, ap);
    va_end(ap);
    cli_usage("invalid value '%s' for --%s: expected %s", arg, o->name, want);
}

/* Full-string base-10 integer; no leading blanks (strtoll would skip them). */
static int parse_ll(const char *s, long long *v)
{
    char *end;
    if (!*s || *s == ' ' || (*s >= '\t' && *s <= '\r'))
        return 0;
    errno = 0;
    *v = strtoll(s, &end, 10);
    return errno == 0 && *end == '\0';
}

static int parse_double(const char *s, double *v)
{
    char *end;
    if (!*s || *s == ' ' || (*s >= '\t' && *s <= '\r'))
        return 0;
    errno = 0;
    *v = strtod(s, &end);
    /* ERANGE on underflow still gives a usable (tiny or zero) value. */
    return *end == '\0' && isfinite(*v);
}

/* The integer range [lo, hi] of an option, the type's whole range when
 * the table says min == max == 0. */
static void int_range(const cli_opt *o, long long tmin, long long tmax,
                      long long *lo, long long *hi)
{
    if (o->min == 0 && o->max == 0) {
        *lo = tmin;
        *hi = tmax;
        return;
    }
    *lo = o->min <= (double)tmin ? tmin : (long long)ceil(o->min);
    *hi = o->max >= (double)tmax ? tmax : (long long)floor(o->max);
}

static void list_push(cli_list *l, const char *v)
{
    if (l->n == l->cap) {
        int ncap = l->cap ? l->cap * 2 : 4;
        const char **items = realloc(l->items, (size_t)ncap * sizeof *items);
        if (!items || ncap < l->cap)
            cli_die("out of memory");
        l->items = items;
        l->cap = ncap;
    }
    l->items[l->n++] = v;
}

/* The options given on the command line, by destination (cli_given()). */
static const void *given[512];
static int n_given;

int cli_given(const void *dest)
{
    for (int i = 0; i < n_given; i++)
        if (given[i] == dest)
            return 1;
    return 0;
}

static void set_value(const cli_prog *p, int cmd, const cli_opt *o, const char *arg)
{
    if (o->dest && !cli_given(o->dest) && n_given < (int)(sizeof given / sizeof given[0]))
        given[n_given++] = o->dest;
    long long lo, hi, v;
    double d;
    switch (o->type) {
    case CLI_FLAG:
        if (o->dest)
            *(int *)o->dest = 1;
        break;
    case CLI_OPTINT:
        if (!arg) {
            *(int *)o->dest = -1;
            break;
        }
        /* fall through */
    case CLI_INT:
        int_range(o, INT_MIN, INT_MAX, &lo, &hi);
        if (!parse_ll(arg, &v) || v < lo || v > hi)
            bad_value(o, arg, "an integer in [%lld, %lld]", lo, hi);
        *(int *)o->dest = (int)v;
        break;
    case CLI_INT64:
        int_range(o, INT64_MIN, INT64_MAX, &lo, &hi);
        if (!parse_ll(arg, &v) || v < lo || v > hi)
            bad_value(o, arg, "an integer in [%lld, %lld]", lo, hi);
        *(int64_t *)o->dest = (int64_t)v;
        break;
    case CLI_DOUBLE:
        if (o->min == 0 && o->max == 0) {
            if (!parse_double(arg, &d))
                bad_value(o, arg, "a finite number");
        } else if (!parse_double(arg, &d) || d < o->min || d > o->max) {
            bad_value(o, arg, "a number in [%g, %g]", o->min, o->max);
        }
        *(double *)o->dest = d;
        break;
    case CLI_STRING:
        *(const char **)o->dest = arg;
        break;
    case CLI_CHOICE:
        if (!is_choice(o->choices, arg)) {
            char list[512];
            choice_list(o->choices, ", ", list, sizeof list);
            bad_value(o, arg, "one of %s", list);
        }
        *(const char **)o->dest = arg;
        break;
    case CLI_LIST:
        list_push((cli_list *)o->dest, arg);
        break;
    case CLI_HELP:
        print_help(p, cmd);
    case CLI_VERSION:
        print_version(p);
    }
}

/* Whether `a` is the long or short form of the table's option of type t
 * (or of the implicit one). */
static int is_form(const cli_prog *p, const char *a, cli_type t)
{
    const cli_opt *o = find_type(p, t);
    const char *name = o ? o->name : t == CLI_HELP ? "help" : "version";
    if (a[0] == '-' && a[1] == '-' && strcmp(a + 2, name) == 0)
        return 1;
    return o && o->short_name && a[0] == '-' && a[1] == o->short_name && !a[2];
}

/* Whether `a` ("--name", "--name=value", an abbreviation of a name, or
 * "-x...") names some option of the program: before the command, a known
 * option means the command is missing, an unknown one is just unknown. */
static int is_option(const cli_prog *p, const char *a)
{
    int n = opt_count(p);
    if (a[1] == '-') {
        size_t len = strcspn(a + 2, "=");
        if (len == 0)
            return 1;   /* "--": no command follows it either */
        for (int i = 0; i < n; i++)
            if (strncmp(opt_at(p, i)->name, a + 2, len) == 0)
                return 1;
        return 0;
    }
    for (int i = 0; i < n; i++)
        if (opt_at(p, i)->short_name == (unsigned char)a[1])
            return 1;
    return 0;
}

static CLI_NORETURN void no_command(const cli_prog *p, const char *what, const char *a)
{
    char list[512];
    size_t n = 0;
    list[0] = '\0';
    for (int i = 0; i < p->ncmds; i++) {
        int w = snprintf(list + n, sizeof list - n, "%s%s", i ? ", " : "",
                         p->cmds[i].name);
        if (w < 0 || (size_t)w >= sizeof list - n)
            break;
        n += (size_t)w;
    }
    if (a)
        cli_usage("%s '%s': expected one of %s", what, a, list);
    cli_usage("%s: expected one of %s", what, list);
}

/* Reports a getopt failure in GNU's words. `args` is what getopt_long saw;
 * `sel` the options it was given, long option k having val 256 + k. */
static CLI_NORETURN void getopt_error(int r, char **args, const struct option *lo,
                                      const cli_opt *const *sel)
{
    int c = optopt;
    if (c >= 256) {
        const cli_opt *o = sel[c - 256];
        if (r == ':')
            cli_usage("option '--%s' requires an argument", o->name);
        cli_usage("option '--%s' doesn't allow an argument", o->name);
    }
    if (c != 0) {
        if (r == ':')
            cli_usage("option requires an argument -- '%c'", c);
        if (c > ' ' && c < 127)
            cli_usage("invalid option -- '%c'", c);
        cli_usage("invalid option -- '\\x%02x'", (unsigned)c & 0xffu);
    }
    /* An unknown or ambiguous long option: getopt has moved past it. */
    const char *a = optind > 0 ? args[optind - 1] : "";
    if (strncmp(a, "--", 2) == 0) {
        size_t len = strcspn(a + 2, "=");
        int matches = 0;
        for (int k = 0; lo[k].name; k++)
            if (strncmp(lo[k].name, a + 2, len) == 0)
                matches++;
        if (matches > 1)
            cli_usage("option '%.*s' is ambiguous", (int)(len + 2), a);
    }
    cli_usage("unrecognized option '%s'", a);
}

int cli_parse(const cli_prog *p, int argc, char **argv, int *cmd)
{
    if (!g_prog)
        g_prog = p->name;
    g_table = p;
    g_cmd = NULL;
    if (cmd)
        *cmd = -1;

    /* Hidden, for the build: before anything else so that no table state
     * (a required subcommand) gets in the way. */
    if (argc > 1 && strncmp(argv[1], "--generate", 10) == 0 &&
        (argv[1][10] == '=' || argv[1][10] == '\0')) {
        const char *kind = argv[1][10] == '=' ? argv[1] + 11 : argc > 2 ? argv[2] : NULL;
        if (!kind)
            cli_usage("option '--generate' requires an argument");
        if (cli_generate(p, kind, stdout) != 0)
            cli_usage("invalid value '%s' for --generate: expected one of "
                      "man, bash, zsh, fish", kind);
        cli_flush(stdout);
        exit(CLI_EXIT_OK);
    }

    int c = -1, off = 0;
    if (p->cmds) {
        if (argc < 2)
            no_command(p, "missing command", NULL);
        for (int i = 0; i < p->ncmds; i++)
            if (strcmp(argv[1], p->cmds[i].name) == 0)
                c = i;
        if (c < 0) {
            if (is_form(p, argv[1], CLI_HELP))
                print_help(p, -1);
            if (is_form(p, argv[1], CLI_VERSION))
                print_version(p);
            if (argv[1][0] == '-' && argv[1][1] && !is_option(p, argv[1])) {
                if (argv[1][1] == '-')
                    cli_usage("unrecognized option '%s'", argv[1]);
                cli_usage("invalid option -- '%c'", argv[1][1]);
            }
            if (argv[1][0] == '-')
                no_command(p, "missing command", NULL);
            no_command(p, "unknown command", argv[1]);
        }
        g_cmd = p->cmds[c].name;
        off = 1;
        if (cmd)
            *cmd = c;
    }

    /* The options of this subcommand first; then, so that using one gets
     * "does not apply" rather than "unrecognized", the other subcommands'
     * options whose names are still free. */
    int n = opt_count(p);
    /* Reachable from statics while parsing: a usage error exits from
     * inside, and LeakSanitizer must not count them as leaked then. */
    static const cli_opt **sel;
    static struct option *lo;
    static char *shorts;
    sel = calloc((size_t)n, sizeof *sel);
    lo = calloc((size_t)n + 1, sizeof *lo);
    shorts = malloc(3 * (size_t)n + 2);
    if (!sel || !lo || !shorts)
        cli_die("out of memory");
    int short_idx[256];
    for (int i = 0; i < 256; i++)
        short_idx[i] = -1;
    int ns = 0;
    size_t sl = 0;
    shorts[sl++] = ':';   /* report a missing argument as ':' */
    for (int pass = 0; pass < 2; pass++) {
        for (int i = 0; i < n; i++) {
            const cli_opt *o = opt_at(p, i);
            if (applies(o, c) != !pass)
                continue;
            int taken = 0;
            for (int k = 0; k < ns; k++)
                if (strcmp(sel[k]->name, o->name) == 0)
                    taken = 1;
            if (taken)
                continue;
            lo[ns].name = o->name;
            lo[ns].has_arg = !takes_arg(o) ? no_argument
                             : o->type == CLI_OPTINT ? optional_argument : required_argument;
            lo[ns].flag = NULL;
            lo[ns].val = 256 + ns;
            unsigned char s = (unsigned char)o->short_name;
            if (s && short_idx[s] < 0) {
                short_idx[s] = ns;
                shorts[sl++] = (char)s;
                if (takes_arg(o))
                    shorts[sl++] = ':';
            }
            sel[ns++] = o;
        }
    }
    shorts[sl] = '\0';

    int gargc = argc - off;
    char **gargv = argv + off;
    opterr = 0;
#ifdef __GLIBC__
    optind = 0;   /* full re-initialisation, should cli_parse run twice */
#else
    optind = 1;
#endif
    for (;;) {
        int r = getopt_long(gargc, gargv, shorts, lo, NULL);
        if (r == -1)
            break;
        if (r == '?' || r == ':')
            getopt_error(r, gargv, lo, sel);
        const cli_opt *o;
        int k = r >= 256 ? r - 256 : short_idx[r & 0xff];
        o = sel[k];
        if (!applies(o, c)) {
            if (r >= 256)
                cli_usage("option '--%s' does not apply to '%s'", o->name, g_cmd);
            cli_usage("option '-%c' does not apply to '%s'", r, g_cmd);
        }
        set_value(p, c, o, optarg);
    }
    int first = optind + off;
    free(sel);
    free(lo);
    free(shorts);
    sel = NULL;
    lo = NULL;
    shorts = NULL;
    return first;
}

int cli_opt_string(const cli_opt *o, char *buf, size_t cap)
{
    if (!o->dest)
        return 0;
    switch (o->type) {
    case CLI_FLAG:   snprintf(buf, cap, "%d", *(const int *)o->dest); return 1;
    case CLI_INT:
    case CLI_OPTINT: snprintf(buf, cap, "%d", *(const int *)o->dest); return 1;
    case CLI_INT64:  snprintf(buf, cap, "%lld", (long long)*(const int64_t *)o->dest); return 1;
    case CLI_DOUBLE: snprintf(buf, cap, "%.17g", *(const double *)o->dest); return 1;
    case CLI_STRING:
    case CLI_CHOICE: {
        const char *v = *(const char *const *)o->dest;
        if (!v || strlen(v) >= cap)
            return 0;
        snprintf(buf, cap, "%s", v);
        return 1;
    }
    default:
        return 0;
    }
}

void cli_opt_set(const cli_prog *p, const cli_opt *o, const char *value)
{
    if (o->type == CLI_FLAG) {
        if (strcmp(value, "0") != 0 && strcmp(value, "1") != 0)
            bad_value(o, value, "0 or 1");
        *(int *)o->dest = value[0] == '1';
        return;
    }
    if (o->type == CLI_LIST || o->type == CLI_HELP || o->type == CLI_VERSION)
        return;
    int str = o->type == CLI_STRING || o->type == CLI_CHOICE;
    char *copy = str ? strdup(value) : NULL;   /* string options keep pointing at it */
    if (str && !copy)
        cli_die("out of memory");
    int was = cli_given(o->dest);
    set_value(p, -1, o, str ? copy : value);
    if (!was)
        n_given--;   /* restored, not given */
}

/* ======================================================================== */
/* --help                                                                   */

/* The "(default: x)" value, when the variable holds a meaningful one. */
static int default_str(const cli_opt *o, char *buf, size_t cap)
{
    if (o->no_default || !o->dest)
        return 0;
    switch (o->type) {
    case CLI_INT:
        snprintf(buf, cap, "%d", *(const int *)o->dest);
        return 1;
    case CLI_INT64:
        snprintf(buf, cap, "%" PRId64, *(const int64_t *)o->dest);
        return 1;
    case CLI_DOUBLE:
        snprintf(buf, cap, "%g", *(const double *)o->dest);
        return 1;
    case CLI_STRING:
    case CLI_CHOICE: {
        const char *s = *(const char *const *)o->dest;
        if (!s || !*s)
            return 0;
        snprintf(buf, cap, "%s", s);
        return 1;
    }
    default:
        return 0;
    }
}

static void buf_add(llm_buf *b, const char *s)
{
    if (llm_buf_append(b, s, strlen(s)) != LLM_OK)
        cli_die("out of memory");
}

/* The description: help text, then the choices and the default. */
static void describe(const cli_opt *o, llm_buf *b)
{
    char def[256], list[512];
    int has_def = default_str(o, def, sizeof def);
    buf_add(b, o->help ? o->help : "");
    if (o->type == CLI_CHOICE) {
        choice_list(o->choices, ", ", list, sizeof list);
        buf_add(b, " (one of ");
        buf_add(b, list);
        if (has_def) {
            buf_add(b, "; default: ");
            buf_add(b, def);
        }
        buf_add(b, ")");
    } else if (has_def) {
        buf_add(b, " (default: ");
        buf_add(b, def);
        buf_add(b, ")");
    }
}

/* "  -m, --model=FILE" */
static void opt_left(const cli_opt *o, char *buf, size_t cap)
{
    char sh[8] = "    ";
    if (o->short_name)
        snprintf(sh, sizeof sh, "-%c, ", o->short_name);
    if (o->type == CLI_OPTINT)
        snprintf(buf, cap, "  %s--%s[=%s]", sh, o->name, metavar(o));
    else if (takes_arg(o))
        snprintf(buf, cap, "  %s--%s=%s", sh, o->name, metavar(o));
    else
        snprintf(buf, cap, "  %s--%s", sh, o->name);
}

/* Prints `left`, then `text` from column `col`, wrapped at HELP_WIDTH. */
static void print_wrapped(FILE *f, const char *left, const char *text, int col)
{
    int pos = (int)strlen(left);
    fputs(left, f);
    if (pos + 2 > col) {
        fputc('\n', f);
        pos = 0;
    }
    fprintf(f, "%*s", col - pos, "");
    pos = col;
    int first = 1;
    for (const char *s = text; *s; ) {
        while (*s == ' ')
            s++;
        if (!*s)
            break;
        int len = (int)strcspn(s, " ");
        if (!first && pos + 1 + len > HELP_WIDTH) {
            fprintf(f, "\n%*s", col, "");
            pos = col;
            first = 1;
        }
        if (!first) {
            fputc(' ', f);
            pos++;
        }
        fwrite(s, 1, (size_t)len, f);
        pos += len;
        first = 0;
        s += len;
    }
    fputc('\n', f);
}

static int help_col(int widest)
{
    int col = widest + 2;
    return col > HELP_MAXCOL ? HELP_MAXCOL : col;
}

void cli_help(const cli_prog *p, int cmd, FILE *f)
{
    char left[256];
    const char *args;
    if (p->cmds && cmd < 0) {
        fprintf(f, "Usage: %s COMMAND [OPTION]... [ARG]...\n", p->name);
        fprintf(f, "%s\n", p->summary);
    } else if (p->cmds) {
        args = p->cmds[cmd].args;
        fprintf(f, "Usage: %s %s [OPTION]...%s%s\n", p->name, p->cmds[cmd].name,
                args ? " " : "", args ? args : "");
        fprintf(f, "%s\n", p->cmds[cmd].summary);
    } else {
        args = p->args;
        fprintf(f, "Usage: %s [OPTION]...%s%s\n", p->name, args ? " " : "",
                args ? args : "");
        fprintf(f, "%s\n", p->summary);
    }

    if (p->cmds && cmd < 0) {
        int widest = 0;
        for (int i = 0; i < p->ncmds; i++) {
            int w = 2 + (int)strlen(p->cmds[i].name);
            widest = w > widest ? w : widest;
        }
        fputs("\nCommands:\n", f);
        for (int i = 0; i < p->ncmds; i++) {
            snprintf(left, sizeof left, "  %s", p->cmds[i].name);
            print_wrapped(f, left, p->cmds[i].summary, help_col(widest));
        }
    }

    int n = opt_count(p), widest = 0, any = 0;
    for (int i = 0; i < n; i++) {
        const cli_opt *o = opt_at(p, i);
        if (!shown(p, o, cmd))
            continue;
        opt_left(o, left, sizeof left);
        int w = (int)strlen(left);
        if (w + 2 <= HELP_MAXCOL && w > widest)
            widest = w;
        any = 1;
    }
    if (any) {
        fputs(p->cmds && cmd < 0 ? "\nOptions common to all commands:\n" : "\nOptions:\n", f);
        llm_buf b = {0};
        for (int i = 0; i < n; i++) {
            const cli_opt *o = opt_at(p, i);
            if (!shown(p, o, cmd))
                continue;
            opt_left(o, left, sizeof left);
            b.len = 0;
            describe(o, &b);
            print_wrapped(f, left, b.len ? b.data : "", help_col(widest));
        }
        llm_buf_free(&b);
    }

    if (p->cmds && cmd < 0)
        fprintf(f, "\nRun '%s COMMAND --help' for the options of each command.\n",
                p->name);
    else if (reads_files(p, cmd))
        fputs("\nWith no FILE, or when FILE is -, read standard input.\n", f);
}

/* ======================================================================== */
/* man                                                                      */

/* Text for a roff line that does not start a request: backslashes and
 * hyphens escaped; a leading '.' or '\'' would start one, so it is guarded. */
static void roff(FILE *f, const char *s, int line_start)
{
    if (line_start && (*s == '.' || *s == '\''))
        fputs("\\&", f);
    for (; *s; s++) {
        if (*s == '\\')
            fputs("\\e", f);
        else if (*s == '-')
            fputs("\\-", f);
        else
            fputc(*s, f);
    }
}

static void man_opt(FILE *f, const cli_opt *o)
{
    char def[256];
    fputs(".TP\n", f);
    if (o->short_name) {
        char sh[2] = {(char)o->short_name, 0};
        fputs("\\fB\\-", f);
        roff(f, sh, 0);
        fputs("\\fR, ", f);
    }
    fputs("\\fB\\-\\-", f);
    roff(f, o->name, 0);
    fputs("\\fR", f);
    if (takes_arg(o)) {
        fputs(o->type == CLI_OPTINT ? "[=\\fI" : "=\\fI", f);
        roff(f, metavar(o), 0);
        fputs(o->type == CLI_OPTINT ? "\\fR]" : "\\fR", f);
    }
    fputc('\n', f);
    roff(f, o->help ? o->help : "", 1);
    int has_def = default_str(o, def, sizeof def);
    if (o->type == CLI_CHOICE) {
        fputs(" (one of ", f);
        int first = 1;
        for (const char *s = o->choices; s && *s; ) {
            size_t len = strcspn(s, "|");
            char w[256];
            snprintf(w, sizeof w, "%.*s", (int)len, s);
            fputs(first ? "\\fB" : ", \\fB", f);
            roff(f, w, 0);
            fputs("\\fR", f);
            first = 0;
            s += len + (s[len] == '|');
        }
        if (has_def) {
            fputs("; default: \\fB", f);
            roff(f, def, 0);
            fputs("\\fR", f);
        }
        fputc(')', f);
    } else if (has_def) {
        fputs(" (default: \\fB", f);
        roff(f, def, 0);
        fputs("\\fR)", f);
    }
    fputc('\n', f);
}

static void gen_man(const cli_prog *p, FILE *f)
{
    int n = opt_count(p);
    if (!p->cmds) {
        for (int i = 0; i < n; i++)
            man_opt(f, opt_at(p, i));
        return;
    }
    fputs(".SS \"Options common to all commands\"\n", f);
    for (int i = 0; i < n; i++)
        if (opt_at(p, i)->cmds == 0)
            man_opt(f, opt_at(p, i));
    for (int c = 0; c < p->ncmds; c++) {
        int any = 0;
        for (int i = 0; i < n; i++) {
            const cli_opt *o = opt_at(p, i);
            if (o->cmds == 0 || !applies(o, c))
                continue;
            if (!any)
                fprintf(f, ".SS \"Options for %s\"\n", p->cmds[c].name);
            any = 1;
            man_opt(f, o);
        }
    }
}

/* ======================================================================== */
/* Completions                                                              */

/* 's' as a POSIX shell single-quoted word. */
static void sh_quote(FILE *f, const char *s)
{
    fputc('\'', f);
    for (; *s; s++) {
        if (*s == '\'')
            fputs("'\\''", f);
        else
            fputc(*s, f);
    }
    fputc('\'', f);
}

/* The choices as one space-separated string. */
static void choice_words(const cli_opt *o, char *buf, size_t cap)
{
    choice_list(o->choices, " ", buf, cap);
}

/* "_llm_tokenize" from "llm-tokenize". */
static void func_name(const cli_prog *p, char *buf, size_t cap)
{
    snprintf(buf, cap, "_%s", p->name);
    for (char *s = buf + 1; *s; s++)
        if (!((*s >= 'a' && *s <= 'z') || (*s >= 'A' && *s <= 'Z') ||
              (*s >= '0' && *s <= '9')))
            *s = '_';
}

/* Bash: the value completions and option words for subcommand `cmd`. */
static void bash_block(const cli_prog *p, int cmd, FILE *f, const char *ind)
{
    int n = opt_count(p), any = 0;
    char words[512];
    for (int i = 0; i < n; i++) {
        const cli_opt *o = opt_at(p, i);
        if (!applies(o, cmd) || !needs_arg(o))
            continue;
        if (!any)
            fprintf(f, "%scase $opt in\n", ind);
        any = 1;
        fprintf(f, "%s", ind);
        if (o->short_name)
            fprintf(f, "-%c|", o->short_name);
        fprintf(f, "--%s)\n", o->name);
        switch (o->type == CLI_CHOICE ? CLI_COMPLETE_CHOICE : o->complete) {
        case CLI_COMPLETE_FILE:
            fprintf(f, "%s    local IFS=$'\\n'; compopt -o filenames 2>/dev/null\n", ind);
            fprintf(f, "%s    COMPREPLY=($(compgen -f -P \"$pre\" -- \"$cur\"));;\n", ind);
            break;
        case CLI_COMPLETE_DIR:
            fprintf(f, "%s    local IFS=$'\\n'; compopt -o filenames 2>/dev/null\n", ind);
            fprintf(f, "%s    COMPREPLY=($(compgen -d -P \"$pre\" -- \"$cur\"));;\n", ind);
            break;
        case CLI_COMPLETE_CHOICE:
            choice_words(o, words, sizeof words);
            fprintf(f, "%s    COMPREPLY=($(compgen -W ", ind);
            sh_quote(f, words);
            fputs(" -P \"$pre\" -- \"$cur\"));;\n", f);
            break;
        default:
            fprintf(f, "%s    ;;\n", ind);
        }
    }
    if (any) {
        fprintf(f, "%s*) opt=;;\n", ind);
        fprintf(f, "%sesac\n", ind);
        fprintf(f, "%s[ -n \"$opt\" ] && return 0\n", ind);
    }
    fprintf(f, "%sopts=", ind);
    llm_buf b = {0};
    for (int i = 0; i < n; i++) {
        const cli_opt *o = opt_at(p, i);
        if (!applies(o, cmd))
            continue;
        if (b.len)
            buf_add(&b, " ");
        buf_add(&b, "--");
        buf_add(&b, o->name);
        if (o->short_name) {
            char sh[4] = {' ', '-', (char)o->short_name, 0};
            buf_add(&b, sh);
        }
    }
    sh_quote(f, b.len ? b.data : "");
    llm_buf_free(&b);
    fprintf(f, "\n%sfiles=%d\n", ind, reads_files(p, cmd));
}

static void gen_bash(const cli_prog *p, FILE *f)
{
    char fn[256];
    func_name(p, fn, sizeof fn);
    fprintf(f, "# bash completion for %s; generated by '%s --generate=bash'\n",
            p->name, p->name);
    fprintf(f, "%s()\n{\n", fn);
    fputs("    local cur=${COMP_WORDS[COMP_CWORD]} prev= opt= pre= opts= files=0\n"
          "    [ \"$COMP_CWORD\" -gt 0 ] && prev=${COMP_WORDS[COMP_CWORD-1]}\n"
          "    # An option's value: '--opt value', or '--opt=value' which\n"
          "    # readline splits at '=' (COMP_WORDBREAKS) or, when '=' is not a\n"
          "    # word break, leaves whole.\n"
          "    if [ \"$cur\" = = ]; then\n"
          "        opt=$prev cur=\n"
          "    elif [ \"$prev\" = = ] && [ \"$COMP_CWORD\" -gt 1 ]; then\n"
          "        opt=${COMP_WORDS[COMP_CWORD-2]}\n"
          "    elif [[ $cur == --*=* ]]; then\n"
          "        opt=${cur%%=*} pre=${cur%%=*}= cur=${cur#*=}\n"
          "    else\n"
          "        opt=$prev\n"
          "    fi\n", f);
    if (p->cmds) {
        fputs("    if [ \"$COMP_CWORD\" -eq 1 ]; then\n"
              "        case $cur in\n"
              "        -*) COMPREPLY=($(compgen -W ", f);
        const cli_opt *h = find_type(p, CLI_HELP), *v = find_type(p, CLI_VERSION);
        char w[128];
        snprintf(w, sizeof w, "--%s%s%c --%s%s%c", h ? h->name : "help",
                 h && h->short_name ? " -" : "", h && h->short_name ? h->short_name : ' ',
                 v ? v->name : "version", v && v->short_name ? " -" : "",
                 v && v->short_name ? v->short_name : ' ');
        /* trim the padding left by absent short forms */
        size_t wl = strlen(w);
        while (wl && w[wl - 1] == ' ')
            w[--wl] = '\0';
        sh_quote(f, w);
        fputs(" -- \"$cur\"));;\n"
              "        *) COMPREPLY=($(compgen -W ", f);
        llm_buf b = {0};
        for (int c = 0; c < p->ncmds; c++) {
            if (c)
                buf_add(&b, " ");
            buf_add(&b, p->cmds[c].name);
        }
        sh_quote(f, b.len ? b.data : "");
        llm_buf_free(&b);
        fputs(" -- \"$cur\"));;\n"
              "        esac\n"
              "        return 0\n"
              "    fi\n"
              "    case ${COMP_WORDS[1]} in\n", f);
        for (int c = 0; c < p->ncmds; c++) {
            fputs("    ", f);
            sh_quote(f, p->cmds[c].name);
            fputs(")\n", f);
            bash_block(p, c, f, "        ");
            fputs("        ;;\n", f);
        }
        fputs("    *) return 0;;\n"
              "    esac\n", f);
    } else {
        bash_block(p, -1, f, "    ");
    }
    fputs("    case $cur in\n"
          "    -*) COMPREPLY=($(compgen -W \"$opts\" -- \"$cur\")); return 0;;\n"
          "    esac\n"
          "    if [ \"$files\" = 1 ]; then\n"
          "        local IFS=$'\\n'; compopt -o filenames 2>/dev/null\n"
          "        COMPREPLY=($(compgen -f -- \"$cur\"))\n"
          "    fi\n"
          "    return 0\n"
          "}\n", f);
    fprintf(f, "complete -F %s %s\n", fn, p->name);
}

/* Text inside a zsh single-quoted _arguments spec: `'` closes the quote,
 * and `extra` lists the characters _arguments itself treats specially in
 * this position (brackets in descriptions, colons in messages). */
static void zsh_text(FILE *f, const char *s, const char *extra)
{
    for (; *s; s++) {
        if (*s == '\'')
            fputs("'\\''", f);
        else if (*s == '\\' || strchr(extra, *s))
            fprintf(f, "\\%c", *s);
        else
            fputc(*s, f);
    }
}

static void zsh_spec(FILE *f, const cli_opt *o, int shrt, const char *ind)
{
    char words[512];
    fprintf(f, "%s'", ind);
    if (o->type == CLI_HELP || o->type == CLI_VERSION)
        fputs("(- *)", f);
    else if (o->type == CLI_LIST)
        fputc('*', f);
    else if (o->short_name)
        fprintf(f, "(-%c --%s)", o->short_name, o->name);
    if (shrt)
        fprintf(f, "-%c%s", o->short_name, needs_arg(o) ? "+" : "");
    else
        fprintf(f, "--%s%s", o->name, needs_arg(o) ? "=" : "");
    fputc('[', f);
    zsh_text(f, o->help ? o->help : "", "[]");
    fputc(']', f);
    if (needs_arg(o)) {
        fputc(':', f);
        zsh_text(f, metavar(o), ":");
        fputc(':', f);
        switch (o->type == CLI_CHOICE ? CLI_COMPLETE_CHOICE : o->complete) {
        case CLI_COMPLETE_FILE: fputs("_files", f); break;
        case CLI_COMPLETE_DIR: fputs("_files -/", f); break;
        case CLI_COMPLETE_CHOICE:
            choice_words(o, words, sizeof words);
            fputc('(', f);
            zsh_text(f, words, "():");
            fputc(')', f);
            break;
        default: fputc(' ', f);   /* a space: show the message, complete nothing */
        }
    }
    fputs("' \\\n", f);
}

/* One _arguments call with the options of `cmd` (-1: all, or for programs
 * with subcommands, only --help and --version before the command). */
static void zsh_args(const cli_prog *p, int cmd, FILE *f, const char *ind)
{
    int n = opt_count(p);
    char ind2[64];
    snprintf(ind2, sizeof ind2, "%s    ", ind);
    fprintf(f, "%s_arguments -s -S%s \\\n", ind, p->cmds && cmd < 0 ? " -C" : "");
    for (int i = 0; i < n; i++) {
        const cli_opt *o = opt_at(p, i);
        if (p->cmds && cmd < 0 ? o->type != CLI_HELP && o->type != CLI_VERSION
                               : !applies(o, cmd))
            continue;
        if (o->short_name)
            zsh_spec(f, o, 1, ind2);
        zsh_spec(f, o, 0, ind2);
    }
    if (p->cmds && cmd < 0)
        fprintf(f, "%s'1:command:->command' \\\n%s'*::arg:->args' \\\n", ind2, ind2);
    else if (reads_files(p, cmd))
        fprintf(f, "%s'*:file:_files' \\\n", ind2);
    fprintf(f, "%s&& ret=0\n", ind2);
}

static void gen_zsh(const cli_prog *p, FILE *f)
{
    char fn[256];
    func_name(p, fn, sizeof fn);
    fprintf(f, "#compdef %s\n# zsh completion for %s; generated by '%s --generate=zsh'\n\n",
            p->name, p->name, p->name);
    fprintf(f, "%s() {\n", fn);
    fputs("    local curcontext=$curcontext state line ret=1\n"
          "    typeset -A opt_args\n", f);
    zsh_args(p, -1, f, "    ");
    if (p->cmds) {
        fputs("    case $state in\n"
              "    command)\n"
              "        local -a cmds\n"
              "        cmds=(\n", f);
        for (int c = 0; c < p->ncmds; c++) {
            fputs("            '", f);
            zsh_text(f, p->cmds[c].name, ":");
            fputc(':', f);
            zsh_text(f, p->cmds[c].summary, "");
            fputs("'\n", f);
        }
        fputs("        )\n"
              "        _describe -t commands command cmds && ret=0\n"
              "        ;;\n"
              "    args)\n", f);
        fprintf(f, "        curcontext=${curcontext%%:*:*}:%s-$line[1]:\n", p->name);
        fputs("        case $line[1] in\n", f);
        for (int c = 0; c < p->ncmds; c++) {
            fputs("        ", f);
            sh_quote(f, p->cmds[c].name);
            fputs(")\n", f);
            zsh_args(p, c, f, "            ");
            fputs("            ;;\n", f);
        }
        fputs("        esac\n"
              "        ;;\n"
              "    esac\n", f);
    }
    fputs("    return ret\n}\n\n", f);
    fprintf(f, "%s \"$@\"\n", fn);
}

/* Text inside a fish single-quoted string. */
static void fish_quote(FILE *f, const char *s)
{
    fputc('\'', f);
    for (; *s; s++) {
        if (*s == '\'' || *s == '\\')
            fputc('\\', f);
        fputc(*s, f);
    }
    fputc('\'', f);
}

static void gen_fish(const cli_prog *p, FILE *f)
{
    char words[512];
    int n = opt_count(p);
    fprintf(f, "# fish completion for %s; generated by '%s --generate=fish'\n",
            p->name, p->name);
    /* Files only where an option or operand wants them. */
    fprintf(f, "complete -c %s -f\n", p->name);
    for (int c = 0; p->cmds && c < p->ncmds; c++) {
        fprintf(f, "complete -c %s -n __fish_use_subcommand -a ", p->name);
        fish_quote(f, p->cmds[c].name);
        fputs(" -d ", f);
        fish_quote(f, p->cmds[c].summary);
        fputc('\n', f);
    }
    for (int i = 0; i < n; i++) {
        const cli_opt *o = opt_at(p, i);
        fprintf(f, "complete -c %s", p->name);
        if (p->cmds && o->type != CLI_HELP && o->type != CLI_VERSION) {
            /* the subcommands this option applies to */
            llm_buf cond = {0};
            buf_add(&cond, "__fish_seen_subcommand_from");
            for (int c = 0; c < p->ncmds; c++)
                if (applies(o, c)) {
                    buf_add(&cond, " ");
                    buf_add(&cond, p->cmds[c].name);
                }
            fputs(" -n ", f);
            fish_quote(f, cond.data);
            llm_buf_free(&cond);
        }
        if (o->short_name)
            fprintf(f, " -s %c", o->short_name);
        fprintf(f, " -l %s", o->name);
        if (needs_arg(o)) {
            switch (o->type == CLI_CHOICE ? CLI_COMPLETE_CHOICE : o->complete) {
            case CLI_COMPLETE_FILE: fputs(" -r -F", f); break;
            case CLI_COMPLETE_DIR: fputs(" -x -a '(__fish_complete_directories)'", f); break;
            case CLI_COMPLETE_CHOICE:
                choice_words(o, words, sizeof words);
                fputs(" -x -a ", f);
                fish_quote(f, words);
                break;
            default: fputs(" -x", f);
            }
        }
        fputs(" -d ", f);
        fish_quote(f, o->help ? o->help : "");
        fputc('\n', f);
    }
    if (p->cmds) {
        for (int c = 0; c < p->ncmds; c++)
            if (reads_files(p, c)) {
                char cond[256];
                snprintf(cond, sizeof cond, "__fish_seen_subcommand_from %s",
                         p->cmds[c].name);
                fprintf(f, "complete -c %s -n ", p->name);
                fish_quote(f, cond);
                fputs(" -F\n", f);
            }
    } else if (reads_files(p, -1)) {
        fprintf(f, "complete -c %s -F\n", p->name);
    }
}

int cli_generate(const cli_prog *p, const char *kind, FILE *f)
{
    if (strcmp(kind, "man") == 0)
        gen_man(p, f);
    else if (strcmp(kind, "bash") == 0)
        gen_bash(p, f);
    else if (strcmp(kind, "zsh") == 0)
        gen_zsh(p, f);
    else if (strcmp(kind, "fish") == 0)
        gen_fish(p, f);
    else
        return -1;
    return 0;
}
