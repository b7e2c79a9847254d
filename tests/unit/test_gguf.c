/* test_gguf.c: the GGUF reader, (de)quantizer and writer (lib/format/gguf.c):
 * dequantization and quantization bit-exact against gguf-py's output kept in
 * tests/fixtures/gguf_quants.gguf, a writer -> reader round trip of every
 * value type, and hostile files (truncated, huge counts, bad offsets...).
 *
 *   test_gguf                 everything (fixture from $FIXTURES or tests/fixtures)
 *   test_gguf --check FILE    only the comparison against FILE (a fixture made
 *                             by make_gguf_quants.py with another seed)
 *   test_gguf --write FILE    writes the round-trip sample for gguf-py to read
 *                             (tests/sh/gguf-reference.sh) */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "format/gguf.h"
#include "internal.h"

static int failures;

#define CHECK(cond)                                                            \
    do {                                                                       \
        if (!(cond)) {                                                         \
            fprintf(stderr, "%s:%d: CHECK failed: %s (last error: %s)\n",      \
                    __FILE__, __LINE__, #cond, llm_errmsg());                  \
            failures++;                                                        \
        }                                                                      \
    } while (0)

static uint32_t fbits(float f)
{
    uint32_t u;
    memcpy(&u, &f, sizeof u);
    return u;
}

/* ======================================================================== */
/* Against gguf-py                                                          */

static const int supported[] = {
    LLM_GGUF_F32, LLM_GGUF_F16, LLM_GGUF_BF16, LLM_GGUF_Q4_0, LLM_GGUF_Q4_1, LLM_GGUF_Q5_0,
    LLM_GGUF_Q5_1, LLM_GGUF_Q8_0, LLM_GGUF_Q4_K, LLM_GGUF_Q5_K, LLM_GGUF_Q6_K,
};
#define N_SUPPORTED (int)(sizeof supported / sizeof supported[0])

/* The floats of an F32 tensor, as the file holds them. */
static float *f32_of(const llm_gguf *g, const llm_gguf_tensor *t)
{
    float *v = malloc((size_t)t->n_elements * sizeof *v + 1);
    if (!v || t->type != LLM_GGUF_F32 ||
        llm_gguf_tensor_dequantize(g, t, v, (size_t)t->n_elements) != LLM_OK) {
        free(v);
        return NULL;
    }
    return v;
}

/* Every float bit for bit; says where the first difference is. */
static int same_floats(const char *what, const float *got, const float *want, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (fbits(got[i]) != fbits(want[i])) {
            fprintf(stderr, "%s: element %zu is %08x (%.9g), gguf-py says %08x (%.9g)\n", what,
                    i, fbits(got[i]), (double)got[i], fbits(want[i]), (double)want[i]);
            return 0;
        }
    return 1;
}

static void check_dequant(const llm_gguf *g, int type)
{
    char name[64], ename[80];
    snprintf(name, sizeof name, "q.%s", llm_gguf_type_name(type));
    snprintf(ename, sizeof ename, "%s.expected", name);
    const llm_gguf_tensor *t = llm_gguf_tensor_find(g, name), *e = llm_gguf_tensor_find(g, ename);
    CHECK(t && e);
    if (!t || !e)
        return;
    CHECK(t->type == type && llm_gguf_type_supported(type));
    CHECK(e->n_elements == t->n_elements && e->ne[0] == t->ne[0] && e->ne[1] == t->ne[1]);
    size_t n = (size_t)t->n_elements;
    float *want = f32_of(g, e), *got = malloc(n * sizeof *got);
    CHECK(want && got);
    if (want && got) {
        CHECK(llm_gguf_dequantize(type, t->data, t->nbytes, got, n) == LLM_OK);
        if (!same_floats(name, got, want, n))
            failures++;
        /* Block by block gives the same as all at once. */
        size_t bl = llm_gguf_type_block(type), bb = llm_gguf_type_block_bytes(type);
        memset(got, 0, n * sizeof *got);
        for (size_t b = 0; b < n / bl; b++)
            CHECK(llm_gguf_dequantize(type, (const unsigned char *)t->data + b * bb, bb,
                                      got + b * bl, bl) == LLM_OK);
        if (!same_floats(name, got, want, n))
            failures++;
        /* A wrong size or a partial block is refused. */
        CHECK(llm_gguf_dequantize(type, t->data, t->nbytes - 1, got, n) == LLM_ERR_INVALID);
        if (bl > 1)
            CHECK(llm_gguf_dequantize(type, t->data, t->nbytes, got, n - 1) == LLM_ERR_INVALID);
    }
    free(want);
    free(got);
}

/* quantize(input) against gguf-py's bytes for it. */
static void check_quant(const llm_gguf *g, const char *input, int type, int must_exist)
{
    char name[64];
    snprintf(name, sizeof name, "%s.%s", input, llm_gguf_type_name(type));
    const llm_gguf_tensor *x = llm_gguf_tensor_find(g, input), *q = llm_gguf_tensor_find(g, name);
    if (!q && !must_exist)
        return;
    CHECK(x && q && q->type == type && q->n_elements == x->n_elements);
    if (!x || !q)
        return;
    float *v = f32_of(g, x);
    unsigned char *out = malloc(q->nbytes);
    CHECK(v && out);
    if (v && out) {
        CHECK(llm_gguf_quantize(type, v, (size_t)x->n_elements, out, q->nbytes) == LLM_OK);
        for (size_t i = 0; i < q->nbytes; i++)
            if (out[i] != ((const unsigned char *)q->data)[i]) {
                fprintf(stderr, "%s: byte %zu is %02x, gguf-py says %02x\n", name, i, out[i],
                        ((const unsigned char *)q->data)[i]);
                failures++;
                break;
            }
        CHECK(llm_gguf_quantize(type, v, (size_t)x->n_elements, out, q->nbytes - 1) ==
              LLM_ERR_INVALID);
    }
    free(v);
    free(out);
}

static void check_fixture(const char *path)
{
    llm_gguf *g = NULL;
    int rc = llm_gguf_open(path, &g);
    CHECK(rc == LLM_OK);
    if (rc) {
        fprintf(stderr, "cannot open the fixture %s: %s\n", path, llm_errmsg());
        return;
    }
    for (int i = 0; i < N_SUPPORTED; i++)
        check_dequant(g, supported[i]);
    check_quant(g, "quant.input", LLM_GGUF_F16, 1);
    check_quant(g, "quant.input", LLM_GGUF_BF16, 1);
    check_quant(g, "quant.input", LLM_GGUF_Q8_0, 1);
    check_quant(g, "quant.special", LLM_GGUF_F16, 1);
    check_quant(g, "quant.special", LLM_GGUF_BF16, 1);
    const llm_gguf_tensor *sp = llm_gguf_tensor_find(g, "quant.special");
    float *v = sp ? f32_of(g, sp) : NULL;
    unsigned char q8[34];
    CHECK(v && llm_gguf_quantize(LLM_GGUF_Q8_0, v, 32, q8, sizeof q8) == LLM_ERR_NUMERIC);
    free(v);

    /* Our table of block sizes is ggml's (types gguf-py knows and we do not
     * are left out: they only need a name in messages). */
    size_t n = 0, nn = 0;
    int et;
    CHECK(llm_gguf_get_arr(g, "fixture.quant_sizes", &et, &n) == LLM_OK && n % 3 == 0);
    CHECK(llm_gguf_get_arr(g, "fixture.quant_names", &et, &nn) == LLM_OK && nn * 3 == n);
    int known = 0;
    for (size_t i = 0; i + 2 < n && i / 3 < nn; i += 3) {
        int64_t t, bl, bb;
        const char *nm;
        CHECK(llm_gguf_arr_int(g, "fixture.quant_sizes", i, &t) == LLM_OK);
        CHECK(llm_gguf_arr_int(g, "fixture.quant_sizes", i + 1, &bl) == LLM_OK);
        CHECK(llm_gguf_arr_int(g, "fixture.quant_sizes", i + 2, &bb) == LLM_OK);
        CHECK(llm_gguf_arr_str(g, "fixture.quant_names", i / 3, &nm, NULL) == LLM_OK);
        if (!llm_gguf_type_block((int)t))
            continue;
        known++;
        CHECK(llm_gguf_type_block((int)t) == (size_t)bl);
        CHECK(llm_gguf_type_block_bytes((int)t) == (size_t)bb);
        CHECK(strcmp(llm_gguf_type_name((int)t), nm) == 0);
    }
    CHECK(known >= N_SUPPORTED);
    llm_gguf_close(g);
}

/* ======================================================================== */
/* Round trip (also read by gguf-py in tests/sh/gguf-reference.sh, which    */
/* holds the same values: change both together).                            */

static const char *const tokens[] = {"<unk>", "a", "", "h\xc3\xa9llo", "\xe2\x96\x81the"};
static const float scores[] = {0.0f, -1.5f, 3.25f, -1e30f, 1e-40f};
static const int32_t token_types[] = {2, 1, 1, -5, 2147483647};

static float emb[40], t3d[24], f16src[8], q8src[128];
static unsigned char q8[4 * 34], f16[16], bf16[24], iq[66];

static void sample_data(void)
{
    for (int i = 0; i < 40; i++)
        emb[i] = (float)i * 0.25f - 3.0f;
    for (int i = 0; i < 24; i++)
        t3d[i] = (float)i;
    for (int i = 0; i < 8; i++)
        f16src[i] = (float)(i - 4) * 0.1f;
    for (int i = 0; i < 128; i++)
        q8src[i] = (float)(i % 17 - 8) * 0.37f;
    for (int i = 0; i < 66; i++)
        iq[i] = (unsigned char)(i * 7);
    float b[12];
    for (int i = 0; i < 12; i++)
        b[i] = (float)i * -1.25f;
    CHECK(llm_gguf_quantize(LLM_GGUF_Q8_0, q8src, 128, q8, sizeof q8) == LLM_OK);
    CHECK(llm_gguf_quantize(LLM_GGUF_F16, f16src, 8, f16, sizeof f16) == LLM_OK);
    CHECK(llm_gguf_quantize(LLM_GGUF_BF16, b, 12, bf16, sizeof bf16) == LLM_OK);
}

static llm_gguf_writer *sample_writer(void)
{
    llm_gguf_writer *w = NULL;
    CHECK(llm_gguf_writer_new(&w) == LLM_OK);
    if (!w)
        return NULL;
    sample_data();
    CHECK(llm_gguf_writer_kv_str(w, "general.architecture", "llama") == LLM_OK);
    CHECK(llm_gguf_writer_kv_str(w, "general.name", "tiny \xc3\xbcn\xc3\xaf" "code") == LLM_OK);
    CHECK(llm_gguf_writer_kv_u32(w, "general.alignment", 64) == LLM_OK);
    CHECK(llm_gguf_writer_kv_u32(w, "test.u32", 4000000000u) == LLM_OK);
    CHECK(llm_gguf_writer_kv_i32(w, "test.i32", -123456) == LLM_OK);
    CHECK(llm_gguf_writer_kv_u64(w, "test.u64", ((uint64_t)1 << 40) + 3) == LLM_OK);
    CHECK(llm_gguf_writer_kv_f32(w, "test.f32", 0.1f) == LLM_OK);
    CHECK(llm_gguf_writer_kv_bool(w, "test.bool_t", 1) == LLM_OK);
    CHECK(llm_gguf_writer_kv_bool(w, "test.bool_f", 0) == LLM_OK);
    CHECK(llm_gguf_writer_kv_str(w, "test.empty", "") == LLM_OK);
    CHECK(llm_gguf_writer_kv_arr_str(w, "tokenizer.ggml.tokens", tokens, 5) == LLM_OK);
    CHECK(llm_gguf_writer_kv_arr_f32(w, "tokenizer.ggml.scores", scores, 5) == LLM_OK);
    CHECK(llm_gguf_writer_kv_arr_i32(w, "tokenizer.ggml.token_type", token_types, 5) == LLM_OK);
    CHECK(llm_gguf_writer_kv_arr_i32(w, "test.empty_arr", NULL, 0) == LLM_OK);
    int64_t ne_emb[2] = {8, 5}, ne_q[2] = {64, 2}, ne_f16[1] = {8}, ne3[3] = {2, 3, 4},
            ne4[4] = {2, 1, 3, 2}, ne_iq[1] = {256};
    CHECK(llm_gguf_writer_tensor(w, "token_embd.weight", LLM_GGUF_F32, 2, ne_emb, emb,
                                 sizeof emb) == LLM_OK);
    CHECK(llm_gguf_writer_tensor(w, "blk.0.attn_q.weight", LLM_GGUF_Q8_0, 2, ne_q, q8,
                                 sizeof q8) == LLM_OK);
    CHECK(llm_gguf_writer_tensor_copy(w, "blk.0.ffn_norm.weight", LLM_GGUF_F16, 1, ne_f16, f16,
                                      sizeof f16) == LLM_OK);
    CHECK(llm_gguf_writer_tensor(w, "t3d", LLM_GGUF_F32, 3, ne3, t3d, sizeof t3d) == LLM_OK);
    CHECK(llm_gguf_writer_tensor(w, "t4d", LLM_GGUF_BF16, 4, ne4, bf16, sizeof bf16) == LLM_OK);
    CHECK(llm_gguf_writer_tensor(w, "iq", LLM_GGUF_IQ2_XXS, 1, ne_iq, iq, sizeof iq) == LLM_OK);
    return w;
}

static void check_sample(const llm_gguf *g)
{
    const char *s;
    size_t len;
    int64_t i;
    double d;
    int b, et;
    CHECK(llm_gguf_version(g) == 3 && llm_gguf_alignment(g) == 64);
    CHECK(llm_gguf_kv_count(g) == 14 && llm_gguf_tensor_count(g) == 6);
    CHECK(strcmp(llm_gguf_kv_key(g, 0), "general.architecture") == 0);
    CHECK(llm_gguf_kv_type(g, 3) == LLM_GGUF_T_UINT32 && llm_gguf_kv_type(g, 10) == LLM_GGUF_T_ARRAY);
    CHECK(llm_gguf_kv_key(g, 14) == NULL && llm_gguf_kv_type(g, 14) == -1);
    CHECK(llm_gguf_get_str(g, "general.architecture", &s, &len) == LLM_OK &&
          strcmp(s, "llama") == 0 && len == 5);
    CHECK(llm_gguf_get_str(g, "general.name", &s, NULL) == LLM_OK &&
          strcmp(s, "tiny \xc3\xbcn\xc3\xaf" "code") == 0);
    CHECK(llm_gguf_get_str(g, "test.empty", &s, &len) == LLM_OK && s[0] == '\0' && len == 0);
    CHECK(llm_gguf_get_int(g, "test.u32", &i) == LLM_OK && i == 4000000000);
    CHECK(llm_gguf_get_int(g, "test.i32", &i) == LLM_OK && i == -123456);
    CHECK(llm_gguf_get_int(g, "test.u64", &i) == LLM_OK && i == ((int64_t)1 << 40) + 3);
    CHECK(llm_gguf_get_int(g, "test.bool_t", &i) == LLM_OK && i == 1);
    CHECK(llm_gguf_get_float(g, "test.f32", &d) == LLM_OK && d == (double)0.1f);
    CHECK(llm_gguf_get_float(g, "test.i32", &d) == LLM_OK && d == -123456.0);
    CHECK(llm_gguf_get_bool(g, "test.bool_t", &b) == LLM_OK && b == 1);
    CHECK(llm_gguf_get_bool(g, "test.bool_f", &b) == LLM_OK && b == 0);
    CHECK(llm_gguf_has(g, "test.f32") == 1 && llm_gguf_has(g, "test.nope") == 0);
    /* Absent, wrong type. */
    i = 7;
    CHECK(llm_gguf_get_int(g, "test.nope", &i) == LLM_ERR_RANGE && i == 7);
    CHECK(strstr(llm_errmsg(), "test.nope") != NULL);
    CHECK(llm_gguf_get_int(g, "test.f32", &i) == LLM_ERR_FORMAT && i == 7);
    CHECK(strstr(llm_errmsg(), "key 'test.f32' is float32, not an integer") != NULL);
    CHECK(llm_gguf_get_str(g, "test.u32", &s, &len) == LLM_ERR_FORMAT);
    CHECK(strstr(llm_errmsg(), "is uint32, not a string") != NULL);
    CHECK(llm_gguf_get_float(g, "test.bool_t", &d) == LLM_ERR_FORMAT);
    CHECK(llm_gguf_get_bool(g, "test.i32", &b) == LLM_ERR_FORMAT);
    CHECK(llm_gguf_get_arr(g, "test.i32", &et, &len) == LLM_ERR_FORMAT);
    CHECK(llm_gguf_get_int(g, "tokenizer.ggml.tokens", &i) == LLM_ERR_FORMAT);
    CHECK(strstr(llm_errmsg(), "is an array of string, not an integer") != NULL);
    /* Arrays. */
    CHECK(llm_gguf_get_arr(g, "tokenizer.ggml.tokens", &et, &len) == LLM_OK &&
          et == LLM_GGUF_T_STRING && len == 5);
    for (size_t k = 0; k < 5; k++)
        CHECK(llm_gguf_arr_str(g, "tokenizer.ggml.tokens", k, &s, &len) == LLM_OK &&
              strcmp(s, tokens[k]) == 0 && len == strlen(tokens[k]));
    CHECK(llm_gguf_arr_str(g, "tokenizer.ggml.tokens", 5, &s, &len) == LLM_ERR_RANGE);
    CHECK(llm_gguf_arr_float(g, "tokenizer.ggml.tokens", 0, &d) == LLM_ERR_FORMAT);
    CHECK(llm_gguf_get_arr(g, "tokenizer.ggml.scores", &et, &len) == LLM_OK &&
          et == LLM_GGUF_T_FLOAT32 && len == 5);
    for (size_t k = 0; k < 5; k++)
        CHECK(llm_gguf_arr_float(g, "tokenizer.ggml.scores", k, &d) == LLM_OK &&
              d == (double)scores[k]);
    CHECK(llm_gguf_arr_int(g, "tokenizer.ggml.scores", 0, &i) == LLM_ERR_FORMAT);
    for (size_t k = 0; k < 5; k++) {
        CHECK(llm_gguf_arr_int(g, "tokenizer.ggml.token_type", k, &i) == LLM_OK &&
              i == token_types[k]);
        CHECK(llm_gguf_arr_float(g, "tokenizer.ggml.token_type", k, &d) == LLM_OK &&
              d == token_types[k]);
    }
    CHECK(llm_gguf_arr_str(g, "tokenizer.ggml.token_type", 0, &s, &len) == LLM_ERR_FORMAT);
    CHECK(llm_gguf_get_arr(g, "test.empty_arr", &et, &len) == LLM_OK && len == 0 &&
          et == LLM_GGUF_T_INT32);
    CHECK(llm_gguf_arr_int(g, "test.empty_arr", 0, &i) == LLM_ERR_RANGE);

    /* Tensors, in order, aligned, with their bytes. */
    static const char *const names[] = {"token_embd.weight", "blk.0.attn_q.weight",
                                        "blk.0.ffn_norm.weight", "t3d", "t4d", "iq"};
    const void *data[] = {emb, q8, f16, t3d, bf16, iq};
    size_t sizes[] = {sizeof emb, sizeof q8, sizeof f16, sizeof t3d, sizeof bf16, sizeof iq};
    for (size_t k = 0; k < 6; k++) {
        const llm_gguf_tensor *t = llm_gguf_tensor_at(g, k);
        CHECK(t && strcmp(t->name, names[k]) == 0 && llm_gguf_tensor_find(g, names[k]) == t);
        CHECK(t && t->nbytes == sizes[k] && memcmp(t->data, data[k], sizes[k]) == 0);
        CHECK(t && t->offset % 64 == 0);
    }
    CHECK(llm_gguf_tensor_at(g, 6) == NULL && llm_gguf_tensor_find(g, "nope") == NULL);
    const llm_gguf_tensor *t = llm_gguf_tensor_find(g, "t4d");
    CHECK(t && t->n_dims == 4 && t->ne[0] == 2 && t->ne[1] == 1 && t->ne[2] == 3 &&
          t->ne[3] == 2 && t->n_elements == 12 && t->type == LLM_GGUF_BF16);
    t = llm_gguf_tensor_find(g, "t3d");
    CHECK(t && t->n_dims == 3 && t->ne[2] == 4 && t->ne[3] == 1);
    /* Q8_0 dequantizes near its source. */
    float back[128];
    t = llm_gguf_tensor_find(g, "blk.0.attn_q.weight");
    CHECK(t && t->ne[0] == 64 && t->ne[1] == 2 && t->type == LLM_GGUF_Q8_0);
    CHECK(t && llm_gguf_tensor_dequantize(g, t, back, 128) == LLM_OK);
    for (int k = 0; k < 128; k++)
        CHECK(fabsf(back[k] - q8src[k]) <= 2.96f / 127.0f * 0.5f + 1e-3f);
    CHECK(t && llm_gguf_tensor_dequantize(g, t, back, 129) == LLM_ERR_INVALID);
    CHECK(t && llm_gguf_tensor_dequantize(g, t, back, 16) == LLM_ERR_INVALID);
    CHECK(t && llm_gguf_tensor_dequantize(g, t, back, 32) == LLM_OK);
    /* A type we cannot dequantize still lists. */
    t = llm_gguf_tensor_find(g, "iq");
    CHECK(t && t->type == LLM_GGUF_IQ2_XXS && !llm_gguf_type_supported(t->type));
    CHECK(t && llm_gguf_tensor_dequantize(g, t, back, 0) == LLM_ERR_UNSUPPORTED);
    CHECK(strstr(llm_errmsg(), "tensor 'iq' has type IQ2_XXS, which is not supported") != NULL);
    CHECK(strstr(llm_errmsg(), llm_gguf_name(g)) != NULL);
}

static void test_roundtrip(void)
{
    llm_gguf_writer *w = sample_writer();
    if (!w)
        return;
    void *bytes = NULL;
    size_t len = 0;
    CHECK(llm_gguf_writer_bytes(w, &bytes, &len) == LLM_OK);
    CHECK(llm_gguf_is_gguf(bytes, len) == 1 && llm_gguf_is_gguf("GGU", 3) == 0);
    CHECK(llm_gguf_writer_write(w, "rt.gguf") == LLM_OK);
    /* The file holds the same bytes as the buffer. */
    const void *map = NULL;
    size_t mlen = 0;
    CHECK(llm_map_file("rt.gguf", &map, &mlen) == LLM_OK && mlen == len &&
          memcmp(map, bytes, len) == 0);
    llm_unmap_file(map, mlen);
    CHECK(llm_gguf_writer_write(w, "no/such/dir/rt.gguf") == LLM_ERR_IO);
    CHECK(strstr(llm_errmsg(), "no/such/dir/rt.gguf") != NULL);

    /* Refusals when adding. */
    int64_t ne[2] = {16, 2}, ne0[1] = {0};
    float z[64] = {0};
    CHECK(llm_gguf_writer_kv_i32(w, "test.i32", 1) == LLM_ERR_INVALID);
    CHECK(llm_gguf_writer_kv_str(w, "", "x") == LLM_ERR_INVALID);
    CHECK(llm_gguf_writer_kv_str(w, "bad\xff", "x") == LLM_ERR_INVALID);
    CHECK(llm_gguf_writer_kv_u32(w, "general.alignment", 48) == LLM_ERR_INVALID);
    CHECK(llm_gguf_writer_tensor(w, "t3d", LLM_GGUF_F32, 1, ne, z, 64) == LLM_ERR_INVALID);
    CHECK(llm_gguf_writer_tensor(w, "x", LLM_GGUF_F32, 2, ne, z, 64) == LLM_ERR_INVALID);
    CHECK(llm_gguf_writer_tensor(w, "x", LLM_GGUF_Q8_0, 2, ne, z, 68) == LLM_ERR_INVALID);
    CHECK(llm_gguf_writer_tensor(w, "x", LLM_GGUF_F32, 0, ne, z, 0) == LLM_ERR_INVALID);
    CHECK(llm_gguf_writer_tensor(w, "x", LLM_GGUF_F32, 5, ne, z, 64) == LLM_ERR_INVALID);
    CHECK(llm_gguf_writer_tensor(w, "x", LLM_GGUF_F32, 1, ne0, z, 0) == LLM_ERR_INVALID);
    CHECK(llm_gguf_writer_tensor(w, "x", 99, 1, ne, z, 64) == LLM_ERR_INVALID);
    llm_gguf_writer_free(w);
    llm_gguf_writer_free(NULL);
    llm_gguf_writer *w2 = NULL;
    CHECK(llm_gguf_writer_new(&w2) == LLM_OK);
    CHECK(llm_gguf_writer_kv_i32(w2, "general.alignment", 32) == LLM_ERR_INVALID);
    llm_gguf_writer_free(w2);

    llm_gguf *g = NULL;
    CHECK(llm_gguf_open("rt.gguf", &g) == LLM_OK);
    if (g)
        check_sample(g);
    llm_gguf_close(g);
    g = NULL;
    CHECK(llm_gguf_open_mem(bytes, len, "rt-mem", &g) == LLM_OK);
    if (g) {
        CHECK(strcmp(llm_gguf_name(g), "rt-mem") == 0);
        check_sample(g);
    }
    llm_gguf_close(g);
    llm_gguf_close(NULL);
    CHECK(llm_gguf_open("no-such.gguf", &g) == LLM_ERR_IO && g == NULL);
    free(bytes);
    unlink("rt.gguf");
}

/* ======================================================================== */
/* Hostile files                                                            */

#define HNAME "hostile.gguf"

/* Opens an exact-size copy (so that sanitizers see any read past the end)
 * and expects `want` with a message naming the file and saying `sub`. */
static void expect(const void *p, size_t n, int want, const char *sub, int line)
{
    void *copy = malloc(n ? n : 1);
    if (!copy)
        abort();
    memcpy(copy, p, n);
    llm_gguf *g = (llm_gguf *)&failures;   /* must be reset to NULL */
    int rc = llm_gguf_open_mem(copy, n, HNAME, &g);
    if (rc != want || (want != LLM_OK && (g != NULL || !strstr(llm_errmsg(), "'" HNAME "'") ||
                                          (sub && !strstr(llm_errmsg(), sub))))) {
        fprintf(stderr, "line %d: %zu bytes: got %d (%s), want %d with '%s'\n", line, n, rc,
                rc ? llm_errmsg() : "ok", want, sub ? sub : "");
        failures++;
    }
    if (rc == LLM_OK)
        llm_gguf_close(g);
    free(copy);
}

/* A byte builder for hand-made files. */
static llm_buf hb;

static void b_bytes(const void *p, size_t n)
{
    if (llm_buf_append(&hb, p, n))
        abort();
}

static void b_u32(uint32_t v)
{
    unsigned char b[4];
    llm_put_le32(b, v);
    b_bytes(b, 4);
}

static void b_u64(uint64_t v)
{
    unsigned char b[8];
    llm_put_le64(b, v);
    b_bytes(b, 8);
}

static void b_str(const char *s)
{
    b_u64(strlen(s));
    b_bytes(s, strlen(s));
}

static void b_start(uint32_t version, uint64_t nt, uint64_t nkv)
{
    hb.len = 0;
    b_bytes("GGUF", 4);
    b_u32(version);
    b_u64(nt);
    b_u64(nkv);
}

static void b_kv_u32(const char *key, uint32_t v)
{
    b_str(key);
    b_u32(LLM_GGUF_T_UINT32);
    b_u32(v);
}

static void b_tensor(const char *name, uint32_t nd, const uint64_t *ne, uint32_t type,
                     uint64_t off)
{
    b_str(name);
    b_u32(nd);
    for (uint32_t i = 0; i < nd; i++)
        b_u64(ne[i]);
    b_u32(type);
    b_u64(off);
}

static void b_data(size_t align, size_t n)
{
    while (hb.len % align)
        b_bytes("", 1);
    for (size_t i = 0; i < n; i++)
        b_bytes("\x11", 1);
}

#define EXPECT(want, sub) expect(hb.data, hb.len, want, sub, __LINE__)

static void test_hostile(void)
{
    /* Truncated at every byte of a valid file whose last tensor ends the
     * file (no trailing padding that could be cut harmlessly). */
    llm_gguf_writer *w = NULL;
    CHECK(llm_gguf_writer_new(&w) == LLM_OK);
    const char *const strs[] = {"x", "yz"};
    int32_t ints[3] = {1, 2, 3};
    float fl[64];
    for (int i = 0; i < 64; i++)
        fl[i] = (float)i;
    int64_t ne[2] = {8, 2}, ne32[1] = {32};
    unsigned char blk[34] = {0x00, 0x3c, 1, 2, 3};
    CHECK(llm_gguf_writer_kv_str(w, "a.s", "hello") == LLM_OK);
    CHECK(llm_gguf_writer_kv_u32(w, "a.u", 7) == LLM_OK);
    CHECK(llm_gguf_writer_kv_bool(w, "a.b", 1) == LLM_OK);
    CHECK(llm_gguf_writer_kv_arr_str(w, "a.as", strs, 2) == LLM_OK);
    CHECK(llm_gguf_writer_kv_arr_i32(w, "a.ai", ints, 3) == LLM_OK);
    CHECK(llm_gguf_writer_tensor(w, "q", LLM_GGUF_Q8_0, 1, ne32, blk, sizeof blk) == LLM_OK);
    CHECK(llm_gguf_writer_tensor(w, "f", LLM_GGUF_F32, 2, ne, fl, 64) == LLM_OK);
    void *file = NULL;
    size_t len = 0;
    CHECK(llm_gguf_writer_bytes(w, &file, &len) == LLM_OK);
    llm_gguf_writer_free(w);
    if (file) {
        expect(file, len, LLM_OK, NULL, __LINE__);
        for (size_t n = 0; n < len; n++)
            expect(file, n, LLM_ERR_FORMAT, NULL, __LINE__);
        /* Every single-byte corruption either opens or fails cleanly. */
        unsigned char *m = malloc(len);
        for (size_t k = 0; m && k < len; k++) {
            memcpy(m, file, len);
            m[k] ^= 0xa5;
            llm_gguf *g = NULL;
            int rc = llm_gguf_open_mem(m, len, HNAME, &g);
            CHECK(rc == LLM_OK || (g == NULL && strstr(llm_errmsg(), HNAME)));
            llm_gguf_close(g);
        }
        free(m);
    }
    free(file);

    uint64_t one[1] = {32}, two[2] = {16, 1};
    /* Magic and version. */
    b_start(3, 0, 0);
    EXPECT(LLM_OK, NULL);
    b_start(2, 0, 0);
    EXPECT(LLM_OK, NULL);
    hb.data[3] = 'X';
    EXPECT(LLM_ERR_FORMAT, "bad magic");
    b_start(1, 0, 0);
    EXPECT(LLM_ERR_UNSUPPORTED, "version 1");
    b_start(4, 0, 0);
    EXPECT(LLM_ERR_UNSUPPORTED, "version 4");
    b_start(0x03000000, 0, 0);
    EXPECT(LLM_ERR_UNSUPPORTED, "big-endian");
    /* Counts. */
    b_start(3, (uint64_t)1 << 62, 0);
    EXPECT(LLM_ERR_FORMAT, "cannot fit");
    b_start(3, 0, UINT64_MAX);
    EXPECT(LLM_ERR_FORMAT, "cannot fit");
    b_start(3, UINT64_MAX / 33 + 1, UINT64_MAX / 14 + 1);
    EXPECT(LLM_ERR_FORMAT, "cannot fit");
    /* Strings. */
    b_start(3, 0, 1);
    b_u64((uint64_t)1 << 63);
    b_bytes("abcdefghijklmnop", 16);
    EXPECT(LLM_ERR_FORMAT, "past the end");
    b_start(3, 0, 1);
    b_u64(UINT64_MAX);
    b_bytes("abcdefghijklmnop", 16);
    EXPECT(LLM_ERR_FORMAT, "past the end");
    b_start(3, 0, 1);
    b_str("k");
    b_u32(LLM_GGUF_T_STRING);
    b_u64(UINT64_MAX - 3);
    b_bytes("abcdefghijklmnop", 16);
    EXPECT(LLM_ERR_FORMAT, "past the end");
    b_start(3, 0, 1);
    b_str("");
    b_u32(LLM_GGUF_T_UINT8);
    b_bytes("abcdefghijklmnop", 16);
    EXPECT(LLM_ERR_FORMAT, "empty key");
    b_start(3, 0, 1);
    b_u64(3);
    b_bytes("a\0b", 3);
    b_u32(LLM_GGUF_T_UINT8);
    b_bytes("abcdefghijklmnop", 16);
    EXPECT(LLM_ERR_FORMAT, "NUL");
    /* Value types. */
    b_start(3, 0, 1);
    b_str("k");
    b_u32(13);
    b_bytes("abcdefghijklmnop", 16);
    EXPECT(LLM_ERR_FORMAT, "unknown value type 13");
    b_start(3, 0, 1);
    b_str("k");
    b_u32(LLM_GGUF_T_BOOL);
    b_bytes("\2abcdefghijklmnop", 16);
    EXPECT(LLM_ERR_FORMAT, "bool");
    b_start(3, 0, 1);
    b_str("k");
    b_u32(LLM_GGUF_T_ARRAY);
    b_u32(LLM_GGUF_T_ARRAY);
    b_u64(1);
    b_u32(LLM_GGUF_T_UINT8);
    b_u64(1);
    b_bytes("abcdefghijklmnop", 16);
    EXPECT(LLM_ERR_FORMAT, "array of arrays");
    b_start(3, 0, 1);
    b_str("k");
    b_u32(LLM_GGUF_T_ARRAY);
    b_u32(99);
    b_u64(1);
    b_bytes("abcdefghijklmnop", 16);
    EXPECT(LLM_ERR_FORMAT, "unknown value type 99");
    b_start(3, 0, 1);
    b_str("k");
    b_u32(LLM_GGUF_T_ARRAY);
    b_u32(LLM_GGUF_T_UINT32);
    b_u64((uint64_t)1 << 62);
    b_bytes("abcdefghijklmnop", 16);
    EXPECT(LLM_ERR_FORMAT, "past the end");
    b_start(3, 0, 1);
    b_str("k");
    b_u32(LLM_GGUF_T_ARRAY);
    b_u32(LLM_GGUF_T_STRING);
    b_u64((uint64_t)1 << 61);
    b_bytes("abcdefghijklmnop", 16);
    EXPECT(LLM_ERR_FORMAT, "past the end");
    /* Duplicate keys. */
    b_start(3, 0, 3);
    b_kv_u32("a", 1);
    b_kv_u32("b", 1);
    b_kv_u32("a", 2);
    EXPECT(LLM_ERR_FORMAT, "duplicate key 'a'");
    /* Alignment. */
    static const uint32_t bad_align[] = {0, 3, 48, (uint32_t)1 << 30};
    for (int i = 0; i < 4; i++) {
        b_start(3, 0, 1);
        b_kv_u32("general.alignment", bad_align[i]);
        EXPECT(LLM_ERR_FORMAT, "general.alignment");
    }
    b_start(3, 0, 1);
    b_str("general.alignment");
    b_u32(LLM_GGUF_T_UINT64);
    b_u64(32);
    EXPECT(LLM_ERR_FORMAT, "not uint32");
    b_start(3, 1, 1);
    b_kv_u32("general.alignment", 8);
    b_tensor("t", 1, two, LLM_GGUF_F32, 8);
    b_data(8, 8 + 64);
    EXPECT(LLM_OK, NULL);
    /* Tensor infos. */
    b_start(3, 1, 0);
    b_tensor("t", 0, one, LLM_GGUF_F32, 0);
    b_data(32, 128);
    EXPECT(LLM_ERR_FORMAT, "0 dimensions");
    uint64_t five[5] = {1, 1, 1, 1, 1};
    b_start(3, 1, 0);
    b_tensor("t", 5, five, LLM_GGUF_F32, 0);
    b_data(32, 128);
    EXPECT(LLM_ERR_FORMAT, "5 dimensions");
    uint64_t zero[2] = {4, 0};
    b_start(3, 1, 0);
    b_tensor("t", 2, zero, LLM_GGUF_F32, 0);
    b_data(32, 128);
    EXPECT(LLM_ERR_FORMAT, "ne[1] = 0");
    uint64_t big[3] = {(uint64_t)1 << 32, (uint64_t)1 << 32, 1};
    b_start(3, 1, 0);
    b_tensor("t", 3, big, LLM_GGUF_F32, 0);
    b_data(32, 128);
    EXPECT(LLM_ERR_FORMAT, "overflows");
    uint64_t huge[1] = {(uint64_t)1 << 40};
    b_start(3, 1, 0);
    b_tensor("t", 1, huge, LLM_GGUF_F32, 0);
    b_data(32, 128);
    EXPECT(LLM_ERR_FORMAT, "do not fit");
    uint64_t neg[1] = {(uint64_t)1 << 63};
    b_start(3, 1, 0);
    b_tensor("t", 1, neg, LLM_GGUF_F32, 0);
    b_data(32, 128);
    EXPECT(LLM_ERR_FORMAT, "ne[0]");
    uint64_t sixteen[1] = {16};
    b_start(3, 1, 0);
    b_tensor("blk.0.attn_q.weight", 1, sixteen, LLM_GGUF_Q4_0, 0);
    b_data(32, 128);
    EXPECT(LLM_ERR_FORMAT, "not a multiple of the Q4_0 block size 32");
    b_start(3, 1, 0);
    b_tensor("t", 1, one, 99, 0);
    b_data(32, 128);
    EXPECT(LLM_ERR_UNSUPPORTED, "unknown type 99");
    b_start(3, 1, 0);
    b_tensor("t", 1, one, 0x80000000u, 0);
    b_data(32, 128);
    EXPECT(LLM_ERR_UNSUPPORTED, "unknown type");
    b_start(3, 1, 0);
    b_tensor("", 1, one, LLM_GGUF_F32, 0);
    b_data(32, 128);
    EXPECT(LLM_ERR_FORMAT, "empty name");
    /* Offsets. */
    b_start(3, 1, 0);
    b_tensor("t", 1, one, LLM_GGUF_F32, 4);
    b_data(32, 256);
    EXPECT(LLM_ERR_FORMAT, "not a multiple of the alignment 32");
    b_start(3, 1, 0);
    b_tensor("t", 1, one, LLM_GGUF_F32, 64);
    b_data(32, 128 + 63);
    EXPECT(LLM_ERR_FORMAT, "past the end");
    b_start(3, 1, 0);
    b_tensor("t", 1, one, LLM_GGUF_F32, UINT64_MAX - 31);
    b_data(32, 128);
    EXPECT(LLM_ERR_FORMAT, "past the end");
    b_start(3, 1, 0);
    b_tensor("t", 1, one, LLM_GGUF_F32, 0);   /* data section missing entirely */
    EXPECT(LLM_ERR_FORMAT, "tensor 't'");
    b_start(3, 2, 0);
    b_tensor("a", 1, one, LLM_GGUF_F32, 0);
    b_tensor("b", 1, one, LLM_GGUF_F32, 96);
    b_data(32, 128 + 96);
    EXPECT(LLM_ERR_FORMAT, "overlap");
    b_start(3, 2, 0);
    b_tensor("a", 1, one, LLM_GGUF_F32, 0);
    b_tensor("b", 1, one, LLM_GGUF_F32, 0);
    b_data(32, 128);
    EXPECT(LLM_ERR_FORMAT, "overlap");
    b_start(3, 2, 0);
    b_tensor("a", 1, one, LLM_GGUF_F32, 0);
    b_tensor("a", 1, one, LLM_GGUF_F32, 128);
    b_data(32, 256);
    EXPECT(LLM_ERR_FORMAT, "duplicate tensor name 'a'");
    b_start(3, 2, 0);
    b_tensor("a", 1, one, LLM_GGUF_F32, 128);
    b_tensor("b", 1, one, LLM_GGUF_F32, 0);
    b_data(32, 256);
    EXPECT(LLM_OK, NULL);   /* out of order but disjoint */

    /* A uint64 above INT64_MAX reads as a float but not as an int. */
    b_start(3, 0, 1);
    b_str("k");
    b_u32(LLM_GGUF_T_UINT64);
    b_u64(UINT64_MAX);
    llm_gguf *g = NULL;
    CHECK(llm_gguf_open_mem(hb.data, hb.len, HNAME, &g) == LLM_OK);
    if (g) {
        int64_t i;
        double d;
        CHECK(llm_gguf_get_int(g, "k", &i) == LLM_ERR_FORMAT && strstr(llm_errmsg(), "too large"));
        CHECK(llm_gguf_get_float(g, "k", &d) == LLM_OK && d == 18446744073709551615.0);
        CHECK(llm_gguf_version(g) == 3 && llm_gguf_alignment(g) == 32);
    }
    llm_gguf_close(g);
    llm_buf_free(&hb);
}

/* Type names and block sizes; quantize/dequantize argument checks. */
static void test_types(void)
{
    CHECK(strcmp(llm_gguf_type_name(LLM_GGUF_Q4_K), "Q4_K") == 0);
    CHECK(strcmp(llm_gguf_type_name(LLM_GGUF_IQ2_XXS), "IQ2_XXS") == 0);
    CHECK(strcmp(llm_gguf_type_name(99), "type 99") == 0);
    CHECK(strcmp(llm_gguf_type_name(-1), "type -1") == 0);
    CHECK(strcmp(llm_gguf_value_type_name(LLM_GGUF_T_FLOAT64), "float64") == 0);
    int n = 0;
    for (int t = -2; t < 64; t++)
        n += llm_gguf_type_supported(t);
    CHECK(n == N_SUPPORTED);
    CHECK(llm_gguf_type_block(LLM_GGUF_Q6_K) == 256 && llm_gguf_type_block_bytes(LLM_GGUF_Q6_K) == 210);
    CHECK(llm_gguf_type_block(99) == 0 && llm_gguf_type_block_bytes(99) == 0);
    float x[32] = {0}, y[32];
    unsigned char q[64];
    CHECK(llm_gguf_dequantize(LLM_GGUF_IQ2_XXS, q, 66, y, 256) == LLM_ERR_UNSUPPORTED);
    CHECK(llm_gguf_dequantize(99, q, 0, y, 0) == LLM_ERR_UNSUPPORTED);
    CHECK(llm_gguf_quantize(LLM_GGUF_Q4_K, x, 32, q, sizeof q) == LLM_ERR_UNSUPPORTED);
    CHECK(llm_gguf_quantize(LLM_GGUF_Q8_0, x, 16, q, sizeof q) == LLM_ERR_INVALID);
    CHECK(llm_gguf_quantize(LLM_GGUF_Q8_0, x, 32, q, 33) == LLM_ERR_INVALID);
    CHECK(llm_gguf_quantize(LLM_GGUF_Q8_0, x, 32, q, 34) == LLM_OK && q[0] == 0 && q[1] == 0);
    x[3] = INFINITY;
    CHECK(llm_gguf_quantize(LLM_GGUF_Q8_0, x, 32, q, 34) == LLM_ERR_NUMERIC);
    CHECK(llm_gguf_quantize(LLM_GGUF_F32, x, 4, q, 16) == LLM_OK && memcmp(q, x, 16) == 0);
    size_t nb;
    CHECK(llm_gguf_type_nbytes(LLM_GGUF_Q4_K, 512, &nb) == LLM_OK && nb == 288);
    CHECK(llm_gguf_type_nbytes(LLM_GGUF_Q4_K, 100, &nb) == LLM_ERR_INVALID);
    CHECK(llm_gguf_type_nbytes(LLM_GGUF_F32, UINT64_MAX / 2, &nb) == LLM_ERR_INVALID);
}

int main(int argc, char **argv)
{
    if (argc == 3 && strcmp(argv[1], "--check") == 0) {
        check_fixture(argv[2]);
    } else if (argc == 3 && strcmp(argv[1], "--write") == 0) {
        llm_gguf_writer *w = sample_writer();
        CHECK(w && llm_gguf_writer_write(w, argv[2]) == LLM_OK);
        llm_gguf_writer_free(w);
    } else if (argc == 1) {
        const char *dir = getenv("FIXTURES");
        char path[4096];
        snprintf(path, sizeof path, "%s/gguf_quants.gguf", dir ? dir : "tests/fixtures");
        test_types();
        check_fixture(path);
        test_roundtrip();
        test_hostile();
    } else {
        fprintf(stderr, "usage: test_gguf [--check FILE | --write FILE]\n");
        return 2;
    }
    if (failures) {
        fprintf(stderr, "test_gguf: %d failures\n", failures);
        return 1;
    }
    printf("test_gguf: ok\n");
    return 0;
}
