/* test_export.c: our models written as GGUF files and Hugging Face folders
 * (export.c) and read back by our own import: F32 gives every parameter
 * bit for bit, F16/Q8_0/BF16 exactly the rounding of each weight (checked
 * against gguf.c's quantizer and an independent BF16 rounding), the config
 * and chat settings survive, and the exported tokenizer encodes text to the
 * same ids. Classifiers and non-empty output folders are refused, and
 * nothing is left behind on failure.
 *
 * With arguments it serves tests/sh/convert-reference.sh:
 *   test_export logits MODEL IDS OUT   logits of each line of ids in IDS
 *                                      (one sequence per line), as text
 *   test_export encode MODEL TEXT OUT  ids of each line of TEXT
 *   test_export bpe-model OUT          a small random model with the byte-level
 *                                      BPE tokenizer of tests/fixtures/bpe_tiny.json */
#include <dirent.h>
#include <errno.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "format/gguf.h"
#include "llm.h"
#include "testparam.h"

static int failures;

#define FAIL(...) do { failures++; printf("FAIL "); printf(__VA_ARGS__); printf("\n"); } while (0)
#define CHECK_RC(call) do { int rc_ = (call); if (rc_ != LLM_OK) { \
    printf("FAIL %s:%d: %s: %s\n", __FILE__, __LINE__, #call, llm_errmsg()); exit(1); } } while (0)

static char fixture_dir[1024];

static const char *fixture(const char *name)
{
    static char path[2048];
    snprintf(path, sizeof path, "%s/%s", fixture_dir, name);
    return path;
}

static int exists(const char *path)
{
    struct stat st;
    return stat(path, &st) == 0;
}

/* What a weight becomes through a file of `type`. */
static void round_trip(int type, const float *src, float *dst, size_t n)
{
    size_t nb;
    CHECK_RC(llm_gguf_type_nbytes(type, n, &nb));
    void *q = malloc(nb);
    CHECK_RC(llm_gguf_quantize(type, src, n, q, nb));
    CHECK_RC(llm_gguf_dequantize(type, q, nb, dst, n));
    free(q);
}

/* BF16 round to nearest even, computed in double arithmetic (not by bit
 * tricks, as export.c does it): the nearest float with 8 significant bits. */
static float bf16_ref(float f)
{
    if (f == 0 || !isfinite(f))
        return f;
    int e;
    double m = frexp((double)f, &e);        /* f = m 2^e, 0.5 <= |m| < 1 */
    double r = nearbyint(ldexp(m, 8));      /* FE_TONEAREST: ties to even */
    return (float)ldexp(r, e - 8);
}

/* Every parameter of b equals expect(a's) bit for bit; `how`: 0 identical,
 * else a GGUF type (2-D weights only; with Q8_0, rows not a multiple of 32
 * are F16), or -1 for BF16 (every tensor). */
static void compare_params(const llm_model *a, const llm_model *b, int how, const char *what)
{
    size_t n = llm_model_param_count(a), bad = 0;
    if (n != llm_model_param_count(b)) {
        FAIL("%s: %zu parameters, not %zu", what, llm_model_param_count(b), n);
        return;
    }
    for (size_t i = 0; i < n; i++) {
        llm_param p, q;
        CHECK_RC(llm_model_param_at(a, i, &p));
        CHECK_RC(llm_model_param_at(b, i, &q));
        if (strcmp(p.name, q.name) != 0 || p.numel != q.numel) {
            FAIL("%s: tensor %zu is '%s', not '%s'", what, i, q.name, p.name);
            return;
        }
        float *want = malloc(p.numel * sizeof *want);
        float *pd = param_get(a, i, LLM_PARAM_DATA), *qd = param_get(b, i, LLM_PARAM_DATA);
        int ty = how;
        if (how == -1)   /* BF16 holds every tensor, norms too */
            for (size_t j = 0; j < p.numel; j++)
                want[j] = bf16_ref(pd[j]);
        else if (p.ndim == 1 || how == 0)
            memcpy(want, pd, p.numel * sizeof *want);
        else {
            if (ty == LLM_GGUF_Q8_0 && p.shape[1] % 32)
                ty = LLM_GGUF_F16;
            round_trip(ty, pd, want, p.numel);
        }
        if (memcmp(want, qd, p.numel * sizeof *want) != 0) {
            bad++;
            FAIL("%s: '%s' differs from the expected rounding", what, p.name);
        }
        free(want);
        free(pd);
        free(qd);
    }
    if (!bad)
        printf("ok   %s: %zu tensors as expected\n", what, n);
}

static void compare_config(const llm_model *a, const llm_model *b, const char *what)
{
    const llm_config *x = llm_model_config(a), *y = llm_model_config(b);
    /* GGUF holds eps and theta as float32. */
    int gguf = strstr(what, "GGUF") != NULL;
    double eps = gguf ? (double)(float)x->norm_eps : x->norm_eps;
    double base = gguf ? (double)(float)x->rope_base : x->rope_base;
    if (x->vocab_size != y->vocab_size || x->dim != y->dim || x->n_layers != y->n_layers ||
        x->n_heads != y->n_heads || x->n_kv_heads != y->n_kv_heads ||
        x->ffn_dim != y->ffn_dim || x->context != y->context || x->tied != y->tied ||
        eps != y->norm_eps || base != y->rope_base)
        FAIL("%s: the config differs", what);
    const char *ca = llm_model_chat_template(a), *cb = llm_model_chat_template(b);
    const char *sa = llm_model_chat_system(a), *sb = llm_model_chat_system(b);
    if ((ca == NULL) != (cb == NULL) || (ca && strcmp(ca, cb) != 0))
        FAIL("%s: chat template %s, not %s", what, cb ? cb : "(none)", ca ? ca : "(none)");
    else if ((sa == NULL) != (sb == NULL) || (sa && strcmp(sa, sb) != 0))
        FAIL("%s: chat system '%s', not '%s'", what, sb ? sb : "(none)", sa ? sa : "(none)");
    else
        printf("ok   %s: config and chat (%s) as expected\n", what, ca ? ca : "none");
}

/* Encodes every line of tests/fixtures/tiny.txt with both tokenizers. */
static void compare_tok(const llm_tok *a, const llm_tok *b, const char *what)
{
    FILE *f = fopen(fixture("tiny.txt"), "rb");
    if (!f) {
        FAIL("cannot open tiny.txt");
        return;
    }
    char line[8192];
    size_t lines = 0, ids = 0, bad = 0;
    while (fgets(line, sizeof line, f)) {
        size_t n = strcspn(line, "\n");
        llm_ids x = { 0 }, y = { 0 };
        CHECK_RC(llm_tok_encode(a, line, n, &x));
        CHECK_RC(llm_tok_encode(b, line, n, &y));
        if (x.len != y.len || (x.len && memcmp(x.data, y.data, x.len * sizeof *x.data)))
            bad++;
        lines++;
        ids += x.len;
        llm_ids_free(&x);
        llm_ids_free(&y);
    }
    fclose(f);
    if (llm_tok_bos_id(a) != llm_tok_bos_id(b) || llm_tok_eos_id(a) != llm_tok_eos_id(b) ||
        llm_tok_add_bos(a) != llm_tok_add_bos(b) || llm_tok_add_eos(a) != llm_tok_add_eos(b))
        FAIL("%s: special ids or flags differ", what);
    if (bad)
        FAIL("%s: %zu of %zu lines encode differently", what, bad, lines);
    else
        printf("ok   %s: %zu lines, %zu ids identical\n", what, lines, ids);
}

static llm_model *load(const char *path)
{
    llm_model *m;
    CHECK_RC(llm_model_load(path, NULL, &m));
    return m;
}

static llm_tok *tok_load(const char *path)
{
    llm_tok *t;
    CHECK_RC(llm_tok_load(path, &t));
    return t;
}

static void test_sentencepiece(void)
{
    llm_model *m = load(fixture("gen.llm"));
    llm_tok *t = tok_load(fixture("gen.llm"));
    CHECK_RC(llm_model_set_chat(m, "chatml"));
    /* A quote and a backslash, which the Jinja literal must escape. */
    CHECK_RC(llm_model_set_chat_system(m, "You are a helpful AI assistant named Pump's "
                                          "helper, trained by C:\\llm"));
    static const struct { int type; const char *what; } g[] = {
        { LLM_EXPORT_F32, "GGUF F32" }, { LLM_EXPORT_F16, "GGUF F16" },
        { LLM_EXPORT_Q8_0, "GGUF Q8_0" },
    };
    for (size_t i = 0; i < 3; i++) {
        CHECK_RC(llm_model_export_gguf(m, t, "m.gguf", g[i].type));
        llm_model *b = load("m.gguf");
        compare_params(m, b, g[i].type, g[i].what);
        compare_config(m, b, g[i].what);
        llm_model_free(b);
    }
    /* The tokenizer: unigram, so llama.cpp's "t5" vocabulary with our
     * pieces, scores and types. */
    llm_gguf *g2;
    CHECK_RC(llm_gguf_open("m.gguf", &g2));
    const char *s;
    size_t len, n = 0;
    int bad = llm_gguf_get_str(g2, "tokenizer.ggml.model", &s, &len) != LLM_OK ||
              strcmp(s, "t5") != 0 ||
              llm_gguf_get_arr(g2, "tokenizer.ggml.tokens", NULL, &n) != LLM_OK ||
              n != (size_t)llm_tok_vocab_size(t);
    for (size_t i = 0; !bad && i < n; i++) {
        double sc;
        int64_t ty;
        bad = llm_gguf_arr_str(g2, "tokenizer.ggml.tokens", i, &s, &len) != LLM_OK ||
              strcmp(s, llm_tok_piece(t, (int)i)) != 0 ||
              llm_gguf_arr_float(g2, "tokenizer.ggml.scores", i, &sc) != LLM_OK ||
              (float)sc != llm_tok_score(t, (int)i) ||
              llm_gguf_arr_int(g2, "tokenizer.ggml.token_type", i, &ty) != LLM_OK ||
              ty != (int64_t)llm_tok_piece_type(t, (int)i);
    }
    llm_gguf_close(g2);
    if (bad)
        FAIL("GGUF: the SentencePiece vocabulary differs");
    else
        printf("ok   GGUF: %zu pieces, scores and types, tokenizer model t5\n", n);
    llm_tok *gt;
    if (llm_tok_load("m.gguf", &gt) == LLM_OK) {
        compare_tok(t, gt, "GGUF SentencePiece tokenizer");
        llm_tok_free(gt);
    } else {
        printf("note GGUF tokenizer not read back by our import: %s\n", llm_errmsg());
    }

    CHECK_RC(llm_model_export_hf(m, t, "hf32", 0));
    llm_model *b = load("hf32");
    compare_params(m, b, 0, "HF F32");
    compare_config(m, b, "HF F32");
    llm_model_free(b);
    llm_tok *ht = tok_load("hf32");
    compare_tok(t, ht, "HF SentencePiece tokenizer");
    llm_tok_free(ht);
    CHECK_RC(llm_model_export_hf(m, t, "hf16/", 1));
    b = load("hf16");
    compare_params(m, b, -1, "HF BF16");
    llm_model_free(b);

    /* Refusals: a non-empty folder, a file in the way; nothing written. */
    if (llm_model_export_hf(m, t, "hf32", 0) != LLM_ERR_INVALID ||
        !strstr(llm_errmsg(), "not empty"))
        FAIL("a non-empty folder was not refused: %s", llm_errmsg());
    else
        printf("ok   non-empty folder refused: %s\n", llm_errmsg());
    mkdir("empty", 0777);
    CHECK_RC(llm_model_export_hf(m, t, "empty", 0));
    if (!exists("empty/model.safetensors"))
        FAIL("an empty folder was not used");
    llm_model_free(m);
    llm_tok_free(t);
}

/* A model of shape c with fresh weights, whose rows (dim 48, wo's 48 and
 * w2's 80) are not all multiples of 32: those fall back to F16 under Q8_0. */
static void test_odd_rows(void)
{
    llm_config c = { 600, 48, 1, 4, 2, 80, 32, 10000.0, 1e-6, 0 };
    llm_model *m;
    CHECK_RC(llm_model_create(&c, 7, NULL, &m));
    llm_tok *t = tok_load(fixture("gen.llm"));
    CHECK_RC(llm_model_set_chat(m, "llama2"));
    CHECK_RC(llm_model_export_gguf(m, t, "odd.gguf", LLM_EXPORT_Q8_0));
    llm_model *b = load("odd.gguf");
    compare_params(m, b, LLM_GGUF_Q8_0, "GGUF Q8_0, untied, rows of 48 and 80");
    compare_config(m, b, "GGUF untied llama2");
    llm_model_free(b);
    llm_gguf *g;
    CHECK_RC(llm_gguf_open("odd.gguf", &g));
    const llm_gguf_tensor *o = llm_gguf_tensor_find(g, "output.weight");
    const llm_gguf_tensor *w2 = llm_gguf_tensor_find(g, "blk.0.ffn_down.weight");
    const llm_gguf_tensor *nm = llm_gguf_tensor_find(g, "output_norm.weight");
    if (!o || o->type != LLM_GGUF_F16 || !w2 || w2->type != LLM_GGUF_F16 || !nm ||
        nm->type != LLM_GGUF_F32 || w2->ne[0] != 80 || w2->ne[1] != 48)
        FAIL("odd rows: unexpected tensor types or shapes");
    else
        printf("ok   odd rows: F16 fallback, norms F32, ne = {in, out}\n");
    llm_gguf_close(g);
    CHECK_RC(llm_model_export_hf(m, t, "oddhf", 0));
    b = load("oddhf");
    compare_params(m, b, 0, "HF F32 untied");
    compare_config(m, b, "HF untied llama2");
    llm_model_free(b);
    llm_model_free(m);
    llm_tok_free(t);
}

static int bpe_model(const char *out, llm_model **mo, llm_tok **to)
{
    llm_tok *t;
    if (!exists(fixture("bpe_tiny.json")))
        return 77;
    CHECK_RC(llm_tok_load_hf_json(fixture("bpe_tiny.json"), &t));
    llm_config c = { llm_tok_vocab_size(t), 32, 2, 4, 2, 64, 64, 10000.0, 1e-5, 1 };
    llm_model *m;
    CHECK_RC(llm_model_create(&c, 11, NULL, &m));
    if (out) {
        llm_save_params sp;
        memset(&sp, 0, sizeof sp);
        llm_tok_bytes(t, &sp.tokenizer, &sp.tokenizer_len);
        CHECK_RC(llm_model_save(m, out, &sp));
    }
    *mo = m;
    *to = t;
    return 0;
}

static void test_bpe(void)
{
    llm_model *m;
    llm_tok *t;
    if (bpe_model(NULL, &m, &t) == 77) {
        printf("skip byte-level BPE: tests/fixtures/bpe_tiny.json does not exist\n");
        return;
    }
    CHECK_RC(llm_model_set_chat(m, "chatml"));
    CHECK_RC(llm_model_export_gguf(m, t, "bpe.gguf", LLM_EXPORT_F32));
    llm_model *b = load("bpe.gguf");
    compare_params(m, b, 0, "GGUF F32, byte-level BPE model");
    compare_config(m, b, "GGUF chatml without system");
    llm_model_free(b);
    llm_tok *g = tok_load("bpe.gguf");
    compare_tok(t, g, "GGUF byte-level BPE tokenizer");
    llm_tok_free(g);
    CHECK_RC(llm_model_export_hf(m, t, "bpehf", 0));
    llm_tok *h = tok_load("bpehf");
    compare_tok(t, h, "HF byte-level BPE tokenizer");
    llm_tok_free(h);
    llm_model_free(m);
    llm_tok_free(t);
}

static void test_classifier(void)
{
    llm_model *m = load(fixture("gen.llm"));
    llm_tok *t = tok_load(fixture("gen.llm"));
    static const char *const labels[] = { "ok", "fault" };
    llm_head_params hp = { 2, labels, 0, LLM_POOL_LAST };
    CHECK_RC(llm_model_add_head(m, &hp, 1));
    int a = llm_model_export_gguf(m, t, "cls.gguf", LLM_EXPORT_F32);
    int b = llm_model_export_hf(m, t, "clshf", 0);
    if (a != LLM_ERR_UNSUPPORTED || b != LLM_ERR_UNSUPPORTED || exists("cls.gguf") ||
        exists("clshf"))
        FAIL("a classifier was not refused (%d, %d)", a, b);
    else
        printf("ok   classifier refused: %s\n", llm_errmsg());
    llm_model_free(m);
    llm_tok_free(t);
}

/* Nothing but the named outputs is left in the working folder (no
 * temporary files or folders). */
static void test_no_leftovers(void)
{
    DIR *d = opendir(".");
    struct dirent *e;
    while (d && (e = readdir(d)))
        if (strstr(e->d_name, ".tmp"))
            FAIL("leftover '%s'", e->d_name);
    if (d)
        closedir(d);
}

/* ------------------------------------------------------------ tool modes */

static int mode_logits(const char *model, const char *ids_path, const char *out_path)
{
    llm_model *m = load(model);
    FILE *in = fopen(ids_path, "r"), *out = fopen(out_path, "w");
    if (!in || !out) {
        printf("cannot open '%s' or '%s'\n", ids_path, out_path);
        return 1;
    }
    char line[65536];
    int V = llm_model_config(m)->vocab_size;
    while (fgets(line, sizeof line, in)) {
        int32_t ids[4096];
        int n = 0;
        char *p = line, *end;
        for (long v; n < 4096 && (v = strtol(p, &end, 10), end != p); p = end)
            ids[n++] = (int32_t)v;
        if (!n)
            continue;
        CHECK_RC(llm_model_forward(m, ids, NULL, 1, n, NULL));
        const float *lg = llm_model_logits(m);
        for (int i = 0; i < n; i++)
            for (int v = 0; v < V; v++)
                fprintf(out, "%.9g%c", lg[(size_t)i * V + v], v + 1 < V ? ' ' : '\n');
    }
    fclose(in);
    fclose(out);
    llm_model_free(m);
    return 0;
}

static int mode_encode(const char *model, const char *text, const char *out_path)
{
    llm_tok *t = tok_load(model);
    FILE *in = fopen(text, "rb"), *out = fopen(out_path, "w");
    if (!in || !out) {
        printf("cannot open '%s' or '%s'\n", text, out_path);
        return 1;
    }
    char line[65536];
    while (fgets(line, sizeof line, in)) {
        llm_ids x = { 0 };
        CHECK_RC(llm_tok_encode(t, line, strcspn(line, "\n"), &x));
        for (size_t i = 0; i < x.len; i++)
            fprintf(out, "%s%d", i ? " " : "", x.data[i]);
        fprintf(out, "\n");
        llm_ids_free(&x);
    }
    fclose(in);
    fclose(out);
    llm_tok_free(t);
    return 0;
}

int main(int argc, char **argv)
{
    const char *fx = getenv("FIXTURES");
    snprintf(fixture_dir, sizeof fixture_dir, "%s", fx ? fx : "tests/fixtures");
    llm_set_threads(1);
    if (argc == 5 && strcmp(argv[1], "logits") == 0)
        return mode_logits(argv[2], argv[3], argv[4]);
    if (argc == 5 && strcmp(argv[1], "encode") == 0)
        return mode_encode(argv[2], argv[3], argv[4]);
    if (argc == 3 && strcmp(argv[1], "bpe-model") == 0) {
        llm_model *m;
        llm_tok *t;
        int rc = bpe_model(argv[2], &m, &t);
        if (rc == 77) {
            printf("no tests/fixtures/bpe_tiny.json\n");
            return 77;
        }
        llm_model_free(m);
        llm_tok_free(t);
        return 0;
    }
    if (argc != 1) {
        fprintf(stderr, "usage: test_export [logits MODEL IDS OUT | encode MODEL TEXT OUT | "
                        "bpe-model OUT]\n");
        return 2;
    }
    test_sentencepiece();
    test_odd_rows();
    test_bpe();
    test_classifier();
    test_no_leftovers();
    printf("%s: %d failure(s)\n", failures ? "FAIL" : "PASS", failures);
    return failures ? 1 : 0;
}
