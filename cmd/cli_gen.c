/* cli_gen.c: man page OPTIONS sections and bash, zsh and fish
 * completions, generated from a program's option table
 * (cli_generate(), reached by the hidden --generate=KIND). */
#include "cli.h"
#include "cli_int.h"

#include <string.h>

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
    if (cli_takes_arg(o)) {
        fputs(o->type == CLI_OPTINT ? "[=\\fI" : "=\\fI", f);
        roff(f, cli_metavar(o), 0);
        fputs(o->type == CLI_OPTINT ? "\\fR]" : "\\fR", f);
    }
    fputc('\n', f);
    roff(f, o->help ? o->help : "", 1);
    int has_def = cli_default_str(o, def, sizeof def);
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
    int n = cli_opt_count(p);
    if (!p->cmds) {
        for (int i = 0; i < n; i++)
            man_opt(f, cli_opt_at(p, i));
        return;
    }
    fputs(".SS \"Options common to all commands\"\n", f);
    for (int i = 0; i < n; i++)
        if (cli_opt_at(p, i)->cmds == 0)
            man_opt(f, cli_opt_at(p, i));
    for (int c = 0; c < p->ncmds; c++) {
        int any = 0;
        for (int i = 0; i < n; i++) {
            const cli_opt *o = cli_opt_at(p, i);
            if (o->cmds == 0 || !cli_applies(o, c))
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
    cli_choice_list(o->choices, " ", buf, cap);
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
    int n = cli_opt_count(p), any = 0;
    char words[512];
    for (int i = 0; i < n; i++) {
        const cli_opt *o = cli_opt_at(p, i);
        if (!cli_applies(o, cmd) || !cli_needs_arg(o))
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
        const cli_opt *o = cli_opt_at(p, i);
        if (!cli_applies(o, cmd))
            continue;
        if (b.len)
            cli_buf_add(&b, " ");
        cli_buf_add(&b, "--");
        cli_buf_add(&b, o->name);
        if (o->short_name) {
            char sh[4] = {' ', '-', (char)o->short_name, 0};
            cli_buf_add(&b, sh);
        }
    }
    sh_quote(f, b.len ? b.data : "");
    llm_buf_free(&b);
    fprintf(f, "\n%sfiles=%d\n", ind, cli_reads_files(p, cmd));
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
        const cli_opt *h = cli_find_type(p, CLI_HELP), *v = cli_find_type(p, CLI_VERSION);
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
                cli_buf_add(&b, " ");
            cli_buf_add(&b, p->cmds[c].name);
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
        fprintf(f, "-%c%s", o->short_name, cli_needs_arg(o) ? "+" : "");
    else
        fprintf(f, "--%s%s", o->name, cli_needs_arg(o) ? "=" : "");
    fputc('[', f);
    zsh_text(f, o->help ? o->help : "", "[]");
    fputc(']', f);
    if (cli_needs_arg(o)) {
        fputc(':', f);
        zsh_text(f, cli_metavar(o), ":");
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
    int n = cli_opt_count(p);
    char ind2[64];
    snprintf(ind2, sizeof ind2, "%s    ", ind);
    fprintf(f, "%s_arguments -s -S%s \\\n", ind, p->cmds && cmd < 0 ? " -C" : "");
    for (int i = 0; i < n; i++) {
        const cli_opt *o = cli_opt_at(p, i);
        if (p->cmds && cmd < 0 ? o->type != CLI_HELP && o->type != CLI_VERSION
                               : !cli_applies(o, cmd))
            continue;
        if (o->short_name)
            zsh_spec(f, o, 1, ind2);
        zsh_spec(f, o, 0, ind2);
    }
    if (p->cmds && cmd < 0)
        fprintf(f, "%s'1:command:->command' \\\n%s'*::arg:->args' \\\n", ind2, ind2);
    else if (cli_reads_files(p, cmd))
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
    int n = cli_opt_count(p);
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
        const cli_opt *o = cli_opt_at(p, i);
        fprintf(f, "complete -c %s", p->name);
        if (p->cmds && o->type != CLI_HELP && o->type != CLI_VERSION) {
            /* the subcommands this option applies to */
            llm_buf cond = {0};
            cli_buf_add(&cond, "__fish_seen_subcommand_from");
            for (int c = 0; c < p->ncmds; c++)
                if (cli_applies(o, c)) {
                    cli_buf_add(&cond, " ");
                    cli_buf_add(&cond, p->cmds[c].name);
                }
            fputs(" -n ", f);
            fish_quote(f, cond.data);
            llm_buf_free(&cond);
        }
        if (o->short_name)
            fprintf(f, " -s %c", o->short_name);
        fprintf(f, " -l %s", o->name);
        if (cli_needs_arg(o)) {
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
            if (cli_reads_files(p, c)) {
                char cond[256];
                snprintf(cond, sizeof cond, "__fish_seen_subcommand_from %s",
                         p->cmds[c].name);
                fprintf(f, "complete -c %s -n ", p->name);
                fish_quote(f, cond);
                fputs(" -F\n", f);
            }
    } else if (cli_reads_files(p, -1)) {
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
