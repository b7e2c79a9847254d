/* cli_int.h: what cli.c, cli_parse.c and cli_gen.c share; not for the
 * programs (they include cli.h). */
#ifndef CLI_INT_H
#define CLI_INT_H

#include "cli.h"

extern const char *cli_g_prog;        /* name used in messages */
extern const char *cli_g_cmd;         /* chosen subcommand, for the "Try" line */
extern const cli_prog *cli_g_table;   /* the table cli_parse() parsed */

/* The table with the implicit --help and --version (cli_parse.c). */
int cli_opt_count(const cli_prog *p);
const cli_opt *cli_opt_at(const cli_prog *p, int i);
const cli_opt *cli_find_type(const cli_prog *p, cli_type t);
int cli_takes_arg(const cli_opt *o);
int cli_needs_arg(const cli_opt *o);
int cli_applies(const cli_opt *o, int cmd);
const char *cli_metavar(const cli_opt *o);
int cli_reads_files(const cli_prog *p, int cmd);
int cli_default_str(const cli_opt *o, char *buf, size_t cap);
void cli_choice_list(const char *choices, const char *sep, char *buf, size_t cap);
void cli_buf_add(llm_buf *b, const char *s);

#endif
