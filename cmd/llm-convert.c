/* llm-convert.c: convert a model between our model files, GGUF files and
 * Hugging Face folders. Options and I/O only; the readers are lib/format/import.c
 * and lib/format/model_io.c, the writers lib/format/export.c and lib/format/model_io.c. */
#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "cli.h"

/* Option values, holding their defaults (--help prints them from here). */
static const char *o_to, *o_type, *o_output;
static int o_quiet, o_threads;

static const cli_opt opts[] = {
    {"output", 'o', CLI_STRING, &o_output, "OUT",
     "write the converted model here (instead of the second operand)", NULL, 0, 0, 0,
     CLI_COMPLETE_FILE, 1},
    {"to", 0, CLI_CHOICE, &o_to, "FORMAT",
     "output format: gguf (llama.cpp), hf (a Hugging Face folder) or llm (our model "
     "file); default: from OUT's name", "gguf|hf|llm", 0, 0, 0, CLI_COMPLETE_CHOICE, 1},
    {"type", 0, CLI_CHOICE, &o_type, "TYPE",
     "weight type: gguf f32, f16 (default) or q8_0; hf f32 (default) or bf16; llm f32",
     "f32|f16|q8_0|bf16", 0, 0, 0, CLI_COMPLETE_CHOICE, 1},
    CLI_OPT_THREADS(&o_threads),
    {"quiet", 'q', CLI_FLAG, &o_quiet, NULL, "print no summary on standard error", NULL, 0,
     0, 0, CLI_COMPLETE_NONE, 1},
    CLI_OPT_HELP,
    CLI_OPT_VERSION,
};

static const cli_prog prog = {
    "llm-convert", "IN OUT | -o OUT IN",
    "Convert a model between our model files, GGUF files and Hugging Face folders.",
    NULL, 0, opts, (int)(sizeof opts / sizeof opts[0]),
};

enum { TO_LLM, TO_GGUF, TO_HF };

static int ends_with(const char *s, const char *suffix)
{
    size_t n = strlen(s), k = strlen(suffix);
    return n >= k && strcmp(s + n - k, suffix) == 0;
}

static int is_dir(const char *path)
{
    struct stat st;
    return stat(path, &st) == 0 && S_ISDIR(st.st_mode);
}

/* The output format: --to, else OUT's name. */
static int target(const char *out)
{
    if (o_to)
        return strcmp(o_to, "gguf") == 0 ? TO_GGUF : strcmp(o_to, "hf") == 0 ? TO_HF : TO_LLM;
    if (ends_with(out, "/") || is_dir(out))
        return TO_HF;
    if (ends_with(out, ".gguf"))
        return TO_GGUF;
    if (ends_with(out, ".llm") || ends_with(out, ".safetensors"))
        return TO_LLM;
    cli_usage("cannot tell the format of '%s' from its name: use --to gguf|hf|llm", out);
}

/* Bytes of a file, or of the plain files of a folder. */
static double disk_size(const char *path)
{
    struct stat st;
    if (stat(path, &st) != 0)
        return 0;
    if (!S_ISDIR(st.st_mode))
        return (double)st.st_size;
    double total = 0;
    DIR *d = opendir(path);
    struct dirent *e;
    while (d && (e = readdir(d))) {
        char p[4096];
        if ((size_t)snprintf(p, sizeof p, "%s/%s", path, e->d_name) < sizeof p &&
            stat(p, &st) == 0 && S_ISREG(st.st_mode))
            total += (double)st.st_size;
    }
    if (d)
        closedir(d);
    return total;
}

static void human(double v, const char *const *units, double base, const char *sep, char *buf,
                  size_t cap)
{
    int u = 0;
    while (v >= base && units[u + 1]) {
        v /= base;
        u++;
    }
    snprintf(buf, cap, u ? "%.1f%s%s" : "%.0f%s%s", v, sep, units[u]);
}

int main(int argc, char **argv)
{
    cli_signals();
    int first = cli_parse(&prog, argc, argv, NULL);
    int want = o_output ? 1 : 2;
    if (argc - first < want)
        cli_usage(argc - first == 0 ? (o_output ? "missing input (IN)"
                                                : "missing input and output (IN OUT)")
                                    : "missing output after '%s'", argv[first]);
    if (argc - first > want)
        cli_usage("too many operands: '%s'", argv[first + want]);
    const char *in = argv[first], *out = o_output ? o_output : argv[first + 1];
    int to = target(out);
    const char *type = o_type ? o_type : to == TO_GGUF ? "f16" : "f32";
    int gguf_type = LLM_EXPORT_F16;
    if (to == TO_GGUF) {
        if (strcmp(type, "bf16") == 0)
            cli_usage("--type bf16 is for hf; gguf takes f32, f16 or q8_0");
        gguf_type = strcmp(type, "f32") == 0 ? LLM_EXPORT_F32
                    : strcmp(type, "f16") == 0 ? LLM_EXPORT_F16 : LLM_EXPORT_Q8_0;
    } else if (to == TO_HF && strcmp(type, "f32") != 0 && strcmp(type, "bf16") != 0) {
        cli_usage("--type %s is for gguf; hf takes f32 or bf16", type);
    } else if (to == TO_LLM && strcmp(type, "f32") != 0) {
        cli_usage("--type %s: model files hold f32 weights", type);
    }
    llm_set_threads(o_threads);

    llm_model *m;
    llm_tok *t;
    int rc = llm_model_load(in, NULL, &m);
    if (rc)
        cli_die_status(rc);
    /* A checkpoint's adapters, merged as its model file holds them: no
     * other format has a place for them. */
    if ((rc = llm_model_lora_fold(m))) {
        llm_model_free(m);
        cli_die_status(rc);
    }
    if ((rc = llm_tok_load(in, &t))) {
        llm_model_free(m);
        cli_die_status(rc);
    }
    const char *pairs = llm_model_pairs(m);
    if (pairs && to != TO_LLM)
        cli_warn("'%s' answers inputs in its %s layout (llm-train --task pairs), which %s "
                 "cannot hold: the converted model continues text as given%s", in, pairs,
                 to == TO_GGUF ? "GGUF" : "a Hugging Face folder",
                 strcmp(pairs, "chat") == 0 ? " (its chat template goes with it)" : "");
    const char *what;
    if (to == TO_GGUF) {
        rc = llm_model_export_gguf(m, t, out, gguf_type);
        what = "GGUF";
    } else if (to == TO_HF) {
        rc = llm_model_export_hf(m, t, out, strcmp(type, "bf16") == 0);
        what = "Hugging Face folder";
    } else {
        /* The tokenizer travels inside the model file. */
        llm_save_params sp;
        memset(&sp, 0, sizeof sp);
        llm_tok_bytes(t, &sp.tokenizer, &sp.tokenizer_len);
        rc = llm_model_save(m, out, &sp);
        what = "model file";
    }
    if (rc) {
        llm_tok_free(t);
        llm_model_free(m);
        cli_die_status(rc);
    }
    if (!o_quiet) {
        static const char *const bytes[] = { "B", "KiB", "MiB", "GiB", "TiB", NULL };
        static const char *const counts[] = { "", "k", "M", "G", NULL };
        const llm_config *c = llm_model_config(m);
        char size[32], params[32];
        human(disk_size(out), bytes, 1024, " ", size, sizeof size);
        human((double)llm_config_params(c), counts, 1000, "", params, sizeof params);
        fprintf(stderr, "%s: wrote '%s': %s, %s weights, %s parameters (%d layers, dim %d, "
                "vocabulary %d), %s\n", cli_prog_name(), out, what, type, params, c->n_layers,
                c->dim, c->vocab_size, size);
    }
    llm_tok_free(t);
    llm_model_free(m);
    return 0;
}
