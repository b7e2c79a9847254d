/* cli_parse.c: the option table of an llm-* program: parsing with strict
 * value checks (getopt_long), the implicit --help and --version, and the
 * --help text. See cli.h. */
#include "cli.h"
#include "cli_int.h"

#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <limits.h>
#include <math.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

/* Widest line the help text wraps to. */
#define HELP_WIDTH 79
/* Help column never further right than this; longer option names get
 * their description on the next line. */
#define HELP_MAXCOL 32

/* ======================================================================== */
/* The table, with --help and --version added when the program left them out */

static const cli_opt implicit_help = {
    "help", 0, CLI_HELP, NULL, NULL, "display this help and exit",
    NULL, 0, 0, 0, CLI_COMPLETE_NONE, 1};
static const cli_opt implicit_version = {
    "version", 0, CLI_VERSION, NULL, NULL, "output version information and exit",
    NULL, 0, 0, 0, CLI_COMPLETE_NONE, 1};

const cli_opt *cli_find_type(const cli_prog *p, cli_type t)
{
    for (int i = 0; i < p->nopts; i++)
        if (p->opts[i].type == t)
            return &p->opts[i];
    return NULL;
}

int cli_opt_count(const cli_prog *p)
{
    return p->nopts + !cli_find_type(p, CLI_HELP) + !cli_find_type(p, CLI_VERSION);
}

/* Option i of the table, then the implicit --help and --version. */
const cli_opt *cli_opt_at(const cli_prog *p, int i)
{
    if (i < p->nopts)
        return &p->opts[i];
    i -= p->nopts;
    if (!cli_find_type(p, CLI_HELP)) {
        if (i == 0)
            return &implicit_help;
        i--;
    }
    return &implicit_version;
}

int cli_takes_arg(const cli_opt *o)
{
    return o->type != CLI_FLAG && o->type != CLI_HELP && o->type != CLI_VERSION;
}

/* Takes an argument that may not be left out (completions offer one). */
int cli_needs_arg(const cli_opt *o)
{
    return cli_takes_arg(o) && o->type != CLI_OPTINT;
}

/* Whether option `o` may be used with subcommand `cmd`. */
int cli_applies(const cli_opt *o, int cmd)
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
    return cli_applies(o, cmd);
}

const char *cli_metavar(const cli_opt *o)
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
int cli_reads_files(const cli_prog *p, int cmd)
{
    const char *a = cmd >= 0 ? p->cmds[cmd].args : p->args;
    return a && strstr(a, "FILE") != NULL;
}

static void print_version(const cli_prog *p)
{
    printf("%s (llm) %s\n", p->name, LLM_VERSION);
    /* kernels: cpu avx512 (avx2, generic available); matrix products: own avx512 */
    const char *level = llm_cpu_level(), *const *all = llm_cpu_levels();
    printf("kernels: cpu %s", level);
    for (int i = 0, n = 0; all[i]; i++)
        if (strcmp(all[i], level) != 0)
            printf("%s%s", n++ ? ", " : " (", all[i]);
    printf("%s; matrix products: %s\n", all[1] ? " available)" : "",   /* level is in all */
           llm_cpu_gemm());
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
void cli_choice_list(const char *choices, const char *sep, char *buf, size_t cap)
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
            cli_choice_list(o->choices, ", ", list, sizeof list);
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
    const cli_opt *o = cli_find_type(p, t);
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
    int n = cli_opt_count(p);
    if (a[1] == '-') {
        size_t len = strcspn(a + 2, "=");
        if (len == 0)
            return 1;   /* "--": no command follows it either */
        for (int i = 0; i < n; i++)
            if (strncmp(cli_opt_at(p, i)->name, a + 2, len) == 0)
                return 1;
        return 0;
    }
    for (int i = 0; i < n; i++)
        if (cli_opt_at(p, i)->short_name == (unsigned char)a[1])
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

/* The subcommand argv[1] names (index into p->cmds); --help, --version,
 * or a usage error and exit otherwise. */
static int pick_command(const cli_prog *p, int argc, char **argv)
{
    if (argc < 2)
        no_command(p, "missing command", NULL);
    for (int i = 0; i < p->ncmds; i++)
        if (strcmp(argv[1], p->cmds[i].name) == 0)
            return i;
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

int cli_parse(const cli_prog *p, int argc, char **argv, int *cmd)
{
    if (!cli_g_prog)
        cli_g_prog = p->name;
    cli_g_table = p;
    cli_g_cmd = NULL;
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
        c = pick_command(p, argc, argv);
        cli_g_cmd = p->cmds[c].name;
        off = 1;
        if (cmd)
            *cmd = c;
    }

    /* The options of this subcommand first; then, so that using one gets
     * "does not apply" rather than "unrecognized", the other subcommands'
     * options whose names are still free. */
    int n = cli_opt_count(p);
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
            const cli_opt *o = cli_opt_at(p, i);
            if (cli_applies(o, c) != !pass)
                continue;
            int taken = 0;
            for (int k = 0; k < ns; k++)
                if (strcmp(sel[k]->name, o->name) == 0)
                    taken = 1;
            if (taken)
                continue;
            lo[ns].name = o->name;
            lo[ns].has_arg = !cli_takes_arg(o) ? no_argument
                             : o->type == CLI_OPTINT ? optional_argument : required_argument;
            lo[ns].flag = NULL;
            lo[ns].val = 256 + ns;
            unsigned char s = (unsigned char)o->short_name;
            if (s && short_idx[s] < 0) {
                short_idx[s] = ns;
                shorts[sl++] = (char)s;
                if (cli_takes_arg(o))
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
        if (!cli_applies(o, c)) {
            if (r >= 256)
                cli_usage("option '--%s' does not apply to '%s'", o->name, cli_g_cmd);
            cli_usage("option '-%c' does not apply to '%s'", r, cli_g_cmd);
        }
        /* "--explain 3": an optional value goes attached; a number as the
         * next word would be taken for a file. */
        if (o->type == CLI_OPTINT && !optarg && optind < gargc && gargv[optind][0] &&
            strspn(gargv[optind], "0123456789") == strlen(gargv[optind]))
            cli_usage("--%s takes its %s attached: --%s=%s (a file named '%s': ./%s)",
                      o->name, o->metavar, o->name, gargv[optind], gargv[optind],
                      gargv[optind]);
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
int cli_default_str(const cli_opt *o, char *buf, size_t cap)
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

void cli_buf_add(llm_buf *b, const char *s)
{
    if (llm_buf_append(b, s, strlen(s)) != LLM_OK)
        cli_die("out of memory");
}

/* The description: help text, then the choices and the default. */
static void describe(const cli_opt *o, llm_buf *b)
{
    char def[256], list[512];
    int has_def = cli_default_str(o, def, sizeof def);
    cli_buf_add(b, o->help ? o->help : "");
    if (o->type == CLI_CHOICE) {
        cli_choice_list(o->choices, ", ", list, sizeof list);
        cli_buf_add(b, " (one of ");
        cli_buf_add(b, list);
        if (has_def) {
            cli_buf_add(b, "; default: ");
            cli_buf_add(b, def);
        }
        cli_buf_add(b, ")");
    } else if (has_def) {
        cli_buf_add(b, " (default: ");
        cli_buf_add(b, def);
        cli_buf_add(b, ")");
    }
}

/* "  -m, --model=FILE" */
static void opt_left(const cli_opt *o, char *buf, size_t cap)
{
    char sh[8] = "    ";
    if (o->short_name)
        snprintf(sh, sizeof sh, "-%c, ", o->short_name);
    if (o->type == CLI_OPTINT)
        snprintf(buf, cap, "  %s--%s[=%s]", sh, o->name, cli_metavar(o));
    else if (cli_takes_arg(o))
        snprintf(buf, cap, "  %s--%s=%s", sh, o->name, cli_metavar(o));
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

    int n = cli_opt_count(p), widest = 0, any = 0;
    for (int i = 0; i < n; i++) {
        const cli_opt *o = cli_opt_at(p, i);
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
            const cli_opt *o = cli_opt_at(p, i);
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
    else if (cli_reads_files(p, cmd))
        fputs("\nWith no FILE, or when FILE is -, read standard input.\n", f);
}
