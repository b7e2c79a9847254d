/* test_safetensors.c: the safetensors reader and writer against known bytes,
 * a corpus of malformed headers, and the writer's atomic replacement. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

#include "llm.h"

static int failures;

#define CHECK(cond)                                                            \
    do {                                                                       \
        if (!(cond)) {                                                         \
            fprintf(stderr, "%s:%d: CHECK failed: %s (last error: %s)\n",      \
                    __FILE__, __LINE__, #cond, llm_errmsg());                  \
            failures++;                                                        \
        }                                                                      \
    } while (0)

#define CHECK_RC(expr, want)                                                   \
    do {                                                                       \
        int rc_ = (expr);                                                      \
        if (rc_ != (want)) {                                                   \
            fprintf(stderr, "%s:%d: %s returned %d, expected %d (%s)\n",       \
                    __FILE__, __LINE__, #expr, rc_, (want), llm_errmsg());     \
            failures++;                                                        \
        }                                                                      \
    } while (0)

static unsigned char *read_file(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        return NULL;
    size_t cap = 1 << 16;
    unsigned char *b = malloc(cap);
    *len = b ? fread(b, 1, cap, f) : 0;
    fclose(f);
    return b;
}

static void write_file(const char *path, const void *p, size_t n)
{
    FILE *f = fopen(path, "wb");
    if (!f || fwrite(p, 1, n, f) != n || fclose(f) != 0) {
        fprintf(stderr, "cannot write test file '%s'\n", path);
        exit(1);
    }
}

/* Counts directory entries whose name starts with `prefix`. */
static int count_entries(const char *dir, const char *prefix)
{
    DIR *d = opendir(dir);
    int n = 0;
    if (!d)
        return -1;
    struct dirent *e;
    while ((e = readdir(d)) != NULL)
        if (strncmp(e->d_name, prefix, strlen(prefix)) == 0)
            n++;
    closedir(d);
    return n;
}

/* ------------------------------------------------------------------------ */

static void test_dtypes(void)
{
    static const char *names[LLM_DT_COUNT] = {
        "BOOL", "U8", "I8", "I16", "U16", "F16", "BF16", "I32", "U32", "F32",
        "F64", "I64", "U64"};
    static const size_t sizes[LLM_DT_COUNT] = {1, 1, 1, 2, 2, 2, 2, 4, 4, 4, 8, 8, 8};
    for (int i = 0; i < LLM_DT_COUNT; i++) {
        CHECK(strcmp(llm_dtype_name((llm_dtype)i), names[i]) == 0);
        CHECK(llm_dtype_size((llm_dtype)i) == sizes[i]);
    }
    CHECK(llm_dtype_size(LLM_DT_COUNT) == 0);
}

/* The writer's output, byte for byte, against a header counted by hand:
 * metadata first, compact JSON, names in insertion order, spaces to a
 * multiple of 8 (141 bytes of JSON + 3 spaces = 144 = 0x90). */
static void test_known_bytes(void)
{
    static const char header[] =
        "{\"__metadata__\":{\"fmt\":\"x\\\"y\"},"
        "\"w\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]},"
        "\"ids\":{\"dtype\":\"U8\",\"shape\":[1,3],\"data_offsets\":[8,11]}}   ";
    unsigned char want[8 + 144 + 11];
    CHECK(sizeof header - 1 == 144);
    memcpy(want, "\x90\0\0\0\0\0\0\0", 8);
    memcpy(want + 8, header, 144);
    memcpy(want + 152, "\x00\x00\x80\x3f\x00\x00\x00\xc0\x07\x08\x09", 11);

    float w[2] = {1.0f, -2.0f};
    unsigned char ids[3] = {7, 8, 9};
    int64_t sw[1] = {2}, si[2] = {1, 3};
    llm_st_writer *wr;
    CHECK_RC(llm_st_writer_new(&wr), LLM_OK);
    CHECK_RC(llm_st_writer_add(wr, "w", LLM_DT_F32, 1, sw, w), LLM_OK);
    CHECK_RC(llm_st_writer_add(wr, "ids", LLM_DT_U8, 2, si, ids), LLM_OK);
    CHECK_RC(llm_st_writer_meta(wr, "fmt", "x\"y"), LLM_OK);
    CHECK_RC(llm_st_writer_write(wr, "known.st"), LLM_OK);
    llm_st_writer_free(wr);

    size_t len = 0;
    unsigned char *got = read_file("known.st", &len);
    CHECK(got && len == sizeof want);
    if (got && len == sizeof want && memcmp(got, want, len) != 0) {
        for (size_t i = 0; i < len; i++)
            if (got[i] != want[i]) {
                fprintf(stderr, "known.st differs at byte %zu: 0x%02x, expected 0x%02x\n",
                        i, got[i], want[i]);
                break;
            }
        failures++;
    }
    free(got);

    /* And the reader over the same known bytes. */
    llm_st *f;
    CHECK_RC(llm_st_open_mem(want, sizeof want, "known", &f), LLM_OK);
    if (!f)
        return;
    CHECK(llm_st_count(f) == 2);
    const llm_st_tensor *t = llm_st_at(f, 0);
    CHECK(t && strcmp(t->name, "w") == 0 && t->dtype == LLM_DT_F32 && t->ndim == 1 &&
          t->shape[0] == 2 && t->nbytes == 8 && t->data == want + 152);
    t = llm_st_at(f, 1);
    CHECK(t && strcmp(t->name, "ids") == 0 && t->dtype == LLM_DT_U8 && t->ndim == 2 &&
          t->shape[0] == 1 && t->shape[1] == 3 && t->nbytes == 3 && t->data == want + 160);
    CHECK(llm_st_at(f, 2) == NULL);
    CHECK(llm_st_find(f, "ids") == llm_st_at(f, 1));
    CHECK(llm_st_find(f, "w") == llm_st_at(f, 0));
    CHECK(llm_st_find(f, "x") == NULL);
    CHECK(llm_st_meta_count(f) == 1);
    CHECK(llm_st_meta(f, "fmt") && strcmp(llm_st_meta(f, "fmt"), "x\"y") == 0);
    CHECK(llm_st_meta(f, "nope") == NULL);
    llm_st_close(f);
}

static void test_round_trip(void)
{
    /* One tensor of every dtype, with distinct byte patterns. */
    unsigned char pool[LLM_DT_COUNT][48];
    for (int i = 0; i < LLM_DT_COUNT; i++)
        for (int j = 0; j < 48; j++)
            pool[i][j] = (unsigned char)(i * 31 + j * 7 + 1);
    static const char *names[LLM_DT_COUNT] = {
        "model.flag", "tok\xc3\xa9nizer", "i8", "layers.0.\"q\"", "u16", "f16",
        "bf16 with space", "i32\\back", "u32\ttab", "\xf0\x9f\x98\x80.emoji",
        "f64", "i64", "u64"};
    llm_st_writer *w;
    CHECK_RC(llm_st_writer_new(&w), LLM_OK);
    for (int i = 0; i < LLM_DT_COUNT; i++) {
        size_t esz = llm_dtype_size((llm_dtype)i);
        int64_t shape[3] = {2, 1, (int64_t)(48 / esz / 2)};
        CHECK_RC(llm_st_writer_add(w, names[i], (llm_dtype)i, 3, shape, pool[i]), LLM_OK);
    }
    int64_t zshape[2] = {0, 5};
    CHECK_RC(llm_st_writer_add(w, "empty", LLM_DT_F32, 2, zshape, NULL), LLM_OK);
    double scalar = 3.5;
    CHECK_RC(llm_st_writer_add(w, "scalar", LLM_DT_F64, 0, NULL, &scalar), LLM_OK);
    static const char *mk[] = {"format", "config", "esc", "utf8", "empty"};
    static const char *mv[] = {
        "llm-1", "{\"dim\": 64, \"layers\": [1, 2]}",
        "quote\" back\\ slash/ nl\n cr\r tab\t bs\b ff\f ctl\x01\x1f del\x7f",
        "h\xc3\xa9llo \xe2\x9c\x93 \xf0\x9f\x98\x80", ""};
    for (int i = 0; i < 5; i++)
        CHECK_RC(llm_st_writer_meta(w, mk[i], mv[i]), LLM_OK);
    CHECK_RC(llm_st_writer_write(w, "rt.st"), LLM_OK);
    llm_st_writer_free(w);

    llm_st *f;
    CHECK_RC(llm_st_open("rt.st", &f), LLM_OK);
    if (!f)
        return;
    CHECK(llm_st_count(f) == LLM_DT_COUNT + 2);
    for (int i = 0; i < LLM_DT_COUNT; i++) {
        const llm_st_tensor *t = llm_st_at(f, (size_t)i);
        size_t esz = llm_dtype_size((llm_dtype)i);
        CHECK(t && strcmp(t->name, names[i]) == 0);
        CHECK(t && llm_st_find(f, names[i]) == t);
        CHECK(t && t->dtype == (llm_dtype)i && t->ndim == 3 && t->shape[0] == 2 &&
              t->shape[1] == 1 && t->shape[2] == (int64_t)(48 / esz / 2));
        CHECK(t && t->nbytes == 48 && memcmp(t->data, pool[i], 48) == 0);
        /* The header is padded so that the data of each tensor stays aligned
         * to its element size (all sizes here are multiples of 8 bytes). */
        CHECK(t && (uintptr_t)t->data % 8 == 0);
    }
    const llm_st_tensor *t = llm_st_find(f, "empty");
    CHECK(t && t->ndim == 2 && t->shape[0] == 0 && t->shape[1] == 5 && t->nbytes == 0);
    t = llm_st_find(f, "scalar");
    CHECK(t && t->ndim == 0 && t->nbytes == 8 && memcmp(t->data, &scalar, 8) == 0);
    CHECK(llm_st_meta_count(f) == 5);
    for (int i = 0; i < 5; i++) {
        const char *v = llm_st_meta(f, mk[i]);
        CHECK(v && strcmp(v, mv[i]) == 0);
    }
    /* meta_at lists every pair once. */
    int seen = 0;
    for (size_t i = 0; i < llm_st_meta_count(f); i++) {
        const char *k, *v;
        llm_st_meta_at(f, i, &k, &v);
        for (int j = 0; j < 5; j++)
            if (strcmp(k, mk[j]) == 0 && strcmp(v, mv[j]) == 0)
                seen |= 1 << j;
    }
    CHECK(seen == 31);
    /* ... in the order they were written. */
    for (size_t i = 0; i < 5 && i < llm_st_meta_count(f); i++) {
        const char *k, *v;
        llm_st_meta_at(f, i, &k, &v);
        CHECK(strcmp(k, mk[i]) == 0);
    }
    llm_st_close(f);

    /* Overwriting an existing file works and leaves no temporary behind. */
    llm_st_writer *w2;
    CHECK_RC(llm_st_writer_new(&w2), LLM_OK);
    CHECK_RC(llm_st_writer_write(w2, "rt.st"), LLM_OK);
    llm_st_writer_free(w2);
    size_t len;
    unsigned char *b = read_file("rt.st", &len);
    CHECK(b && len == 16 && memcmp(b, "\x08\0\0\0\0\0\0\0{}      ", 16) == 0);
    free(b);
    CHECK(count_entries(".", "rt.st.tmp") == 0);
    struct stat st;
    CHECK(stat("rt.st", &st) == 0 && (st.st_mode & 0777) == 0644);
}

/* A file written by the reference implementation (Python `safetensors`, see
 * tests/fixtures/safetensors/make_ref.py), against the values that made it. */
static void test_reference_file(void)
{
    const char *dir = getenv("FIXTURES");
    char path[4096];
    snprintf(path, sizeof path, "%s/safetensors/ref.st", dir ? dir : "tests/fixtures");
    llm_st *f;
    CHECK_RC(llm_st_open(path, &f), LLM_OK);
    if (!f)
        return;
    CHECK(llm_st_count(f) == 7);
    CHECK(llm_st_meta_count(f) == 2);
    const char *v = llm_st_meta(f, "k");
    CHECK(v && strcmp(v, "v \"q\" \\ \n \xc3\xa9 \xf0\x9f\x98\x80") == 0);
    v = llm_st_meta(f, "cfg");
    CHECK(v && strcmp(v, "{\"a\": 1}") == 0);

    const llm_st_tensor *t = llm_st_find(f, "emb");
    CHECK(t && t->dtype == LLM_DT_F32 && t->ndim == 2 && t->shape[0] == 5 &&
          t->shape[1] == 3 && t->nbytes == 60);
    for (int i = 0; t && i < 15; i++) {
        float x;
        memcpy(&x, (const char *)t->data + 4 * i, 4);
        CHECK(x == (float)(i - 7) / 4.0f);
    }
    t = llm_st_find(f, "ids");
    CHECK(t && t->dtype == LLM_DT_I64 && t->ndim == 1 && t->shape[0] == 7 && t->nbytes == 56);
    for (int i = 0; t && i < 7; i++) {
        int64_t x;
        memcpy(&x, (const char *)t->data + 8 * i, 8);
        CHECK(x == -3 * i);
    }
    t = llm_st_find(f, "h");
    CHECK(t && t->dtype == LLM_DT_F16 && t->ndim == 2 && t->nbytes == 8 &&
          memcmp(t->data, "\x00\x3c\x00\xc0\x00\x38\xff\x7b", 8) == 0);
    t = llm_st_find(f, "flag");
    CHECK(t && t->dtype == LLM_DT_BOOL && t->shape[0] == 3 &&
          memcmp(t->data, "\x01\x00\x01", 3) == 0);
    t = llm_st_find(f, "s");
    double d = 0;
    if (t)
        memcpy(&d, t->data, 8);
    CHECK(t && t->dtype == LLM_DT_F64 && t->ndim == 0 && t->nbytes == 8 && d == 2.5);
    t = llm_st_find(f, "na\xc3\xafve \xe2\x9c\x93");
    CHECK(t && t->dtype == LLM_DT_U16 && t->ndim == 2 && t->shape[0] == 0 &&
          t->shape[1] == 4 && t->nbytes == 0);
    t = llm_st_find(f, "u32");
    CHECK(t && t->dtype == LLM_DT_U32 && t->nbytes == 8 &&
          memcmp(t->data, "\xff\xff\xff\xff\x01\x00\x00\x00", 8) == 0);
    llm_st_close(f);
}

/* Builds "u64 length, header, `data` zero bytes" and opens it from memory. */
static int open_header(const char *hdr, size_t data, llm_st **out)
{
    size_t h = strlen(hdr), n = 8 + h + data;
    unsigned char *b = calloc(1, n);
    if (!b)
        exit(1);
    b[0] = (unsigned char)h;
    b[1] = (unsigned char)(h >> 8);
    b[2] = (unsigned char)(h >> 16);
    memcpy(b + 8, hdr, h);
    int rc = llm_st_open_mem(b, n, "m.llm", out);
    if (rc == LLM_OK) {
        /* Touch everything while the buffer lives, for the sanitizers. */
        unsigned sum = 0;
        for (size_t i = 0; i < llm_st_count(*out); i++) {
            const llm_st_tensor *t = llm_st_at(*out, i);
            for (size_t k = 0; k < t->nbytes; k++)
                sum += ((const unsigned char *)t->data)[k];
        }
        CHECK(sum == 0);
        llm_st_close(*out);
        *out = NULL;
    }
    free(b);
    return rc;
}

#define T(n, dt, shape, b, e) \
    "\"" n "\":{\"dtype\":\"" dt "\",\"shape\":" shape ",\"data_offsets\":[" #b "," #e "]}"

static void test_accepts(void)
{
    static const struct {
        const char *hdr;
        size_t data;
    } ok[] = {
        {"{}", 0},
        {"{}        ", 0},                                 /* space padding */
        {" \t\r\n{} \n", 0},                               /* JSON whitespace */
        {"{" T("a", "F32", "[2,2]", 0, 16) "}", 16},
        {"{" T("a", "F32", "[]", 0, 4) "}", 4},            /* scalar */
        {"{" T("a", "F32", "[0,7]", 0, 0) "}", 0},         /* empty */
        {"{" T("a", "U8", "[4294967296,0]", 3, 3) "}", 3},
        {"{" T("a", "F32", "[1]", 8, 12) "," T("b", "U8", "[2]", 0, 2) "}", 16}, /* holes */
        {"{\"__metadata__\":null," T("a", "I8", "[1]", 0, 1) "}", 1},
        {"{\"__metadata__\":{}}", 0},
        {"{" T("a", "BF16", "[1,1,1,1,1,1,1,1]", 0, 2) "}", 2},   /* 8 dims */
        {"{" T("a\\u00e9", "U8", "[1]", 0, 1) "," T("a\\u00E9 ", "U8", "[1]", 1, 2) "}", 2},
    };
    for (size_t i = 0; i < sizeof ok / sizeof ok[0]; i++) {
        llm_st *f;
        int rc = open_header(ok[i].hdr, ok[i].data, &f);
        if (rc != LLM_OK) {
            fprintf(stderr, "valid header %zu rejected: %s\n  %s\n", i, llm_errmsg(), ok[i].hdr);
            failures++;
        }
    }
}

static void test_json_strings(void)
{
    /* Escapes decode to the UTF-8 bytes given by the JSON spec. */
    const char *hdr = "{\"__metadata__\":{\"k\\u0041\\/\":\"\\u00e9\\u20ac\\ud83d\\ude00\\n\\\"\","
                      "\"raw\":\"\xc3\xa9\xe2\x82\xac\xf0\x9f\x98\x80\"},"
                      T("\\ud834\\udd1e", "U8", "[1]", 0, 1) "}";
    size_t h = strlen(hdr);
    unsigned char b[512] = {0};
    b[0] = (unsigned char)h;
    memcpy(b + 8, hdr, h);
    llm_st *f;
    CHECK_RC(llm_st_open_mem(b, 8 + h + 1, "s", &f), LLM_OK);
    if (!f)
        return;
    const char *v = llm_st_meta(f, "kA/");
    CHECK(v && strcmp(v, "\xc3\xa9\xe2\x82\xac\xf0\x9f\x98\x80\n\"") == 0);
    v = llm_st_meta(f, "raw");
    CHECK(v && strcmp(v, "\xc3\xa9\xe2\x82\xac\xf0\x9f\x98\x80") == 0);
    CHECK(llm_st_find(f, "\xf0\x9d\x84\x9e") != NULL);   /* U+1D11E */
    llm_st_close(f);
}

static void test_rejects(void)
{
    static const struct {
        const char *what, *hdr;
        size_t data;
    } bad[] = {
        /* JSON syntax */
        {"empty header", "", 0},
        {"not an object", "[]", 0},
        {"unterminated object", "{", 0},
        {"trailing comma", "{" T("a", "U8", "[1]", 0, 1) ",}", 1},
        {"single quotes", "{'a':1}", 0},
        {"missing colon", "{\"a\" {}}", 0},
        {"unterminated string", "{\"a", 0},
        {"raw newline in string", "{\"__metadata__\":{\"k\":\"a\nb\"}}", 0},
        {"raw control in key", "{\"\x01\":{}}", 0},
        {"invalid UTF-8", "{\"__metadata__\":{\"k\":\"\xff\"}}", 0},
        {"overlong UTF-8", "{\"__metadata__\":{\"k\":\"\xc0\xaf\"}}", 0},
        {"UTF-8 surrogate", "{\"__metadata__\":{\"k\":\"\xed\xa0\x80\"}}", 0},
        {"truncated UTF-8", "{\"__metadata__\":{\"k\":\"\xe2\x82\"}}", 0},
        {"lone high surrogate", "{\"__metadata__\":{\"k\":\"\\ud83d\"}}", 0},
        {"high surrogate + BMP", "{\"__metadata__\":{\"k\":\"\\ud83d\\u0041\"}}", 0},
        {"lone low surrogate", "{\"__metadata__\":{\"k\":\"\\ude00\"}}", 0},
        {"bad escape", "{\"__metadata__\":{\"k\":\"\\x41\"}}", 0},
        {"bad hex", "{\"__metadata__\":{\"k\":\"\\u00g0\"}}", 0},
        {"short \\u", "{\"__metadata__\":{\"k\":\"\\u00\"}}", 0},
        {"leading zero", "{" T("a", "U8", "[01]", 0, 1) "}", 1},
        {"bare minus", "{" T("a", "U8", "[-]", 0, 1) "}", 1},
        {"trailing garbage", "{} x", 0},
        {"two values", "{}{}", 0},
        {"bad literal", "{\"__metadata__\":nul}", 0},
        {"too deep", "{\"__metadata__\":{\"k\":"
                     "[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[["
                     "]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]}}", 0},
        /* tensor entries */
        {"unknown dtype", "{" T("a", "F8", "[1]", 0, 1) "}", 1},
        {"lowercase dtype", "{" T("a", "f32", "[1]", 0, 4) "}", 4},
        {"dtype not a string", "{\"a\":{\"dtype\":1,\"shape\":[1],\"data_offsets\":[0,1]}}", 1},
        {"entry not an object", "{\"a\":[1]}", 0},
        {"missing dtype", "{\"a\":{\"shape\":[1],\"data_offsets\":[0,1]}}", 1},
        {"missing shape", "{\"a\":{\"dtype\":\"U8\",\"data_offsets\":[0,1]}}", 1},
        {"missing offsets", "{\"a\":{\"dtype\":\"U8\",\"shape\":[1]}}", 1},
        {"duplicate field",
         "{\"a\":{\"dtype\":\"U8\",\"dtype\":\"U8\",\"shape\":[1],\"data_offsets\":[0,1]}}", 1},
        {"unknown field",
         "{\"a\":{\"dtype\":\"U8\",\"shape\":[1],\"data_offsets\":[0,1],\"x\":0}}", 1},
        {"shape not an array", "{\"a\":{\"dtype\":\"U8\",\"shape\":1,\"data_offsets\":[0,1]}}", 1},
        {"shape/size mismatch", "{" T("a", "F32", "[2,2]", 0, 15) "}", 16},
        {"shape/size mismatch (dtype)", "{" T("a", "F16", "[4]", 0, 4) "}", 4},
        {"negative dim", "{" T("a", "U8", "[-1]", 0, 0) "}", 0},
        {"fractional dim", "{" T("a", "U8", "[1.5]", 0, 1) "}", 1},
        {"exponent dim", "{" T("a", "U8", "[1e0]", 0, 1) "}", 1},
        {"string dim", "{" T("a", "U8", "[\"1\"]", 0, 1) "}", 1},
        {"too many dims", "{" T("a", "U8", "[1,1,1,1,1,1,1,1,1]", 0, 1) "}", 1},
        {"overflowing shape", "{" T("a", "U8", "[4294967296,4294967296]", 0, 0) "}", 0},
        {"overflowing size", "{" T("a", "F64", "[2305843009213693952]", 0, 0) "}", 0},
        {"dim past int64", "{" T("a", "U8", "[9223372036854775808]", 0, 0) "}", 0},
        {"offsets out of range", "{" T("a", "U8", "[4]", 0, 4) "}", 3},
        {"offsets reversed", "{" T("a", "U8", "[0]", 4, 0) "}", 8},
        {"offsets reversed, sized", "{" T("a", "U8", "[4]", 8, 4) "}", 8},
        {"offsets negative", "{" T("a", "U8", "[1]", -1, 0) "}", 8},
        {"offsets past int64", "{" T("a", "U8", "[0]", 18446744073709551615, 18446744073709551615) "}", 8},
        {"offsets three", "{\"a\":{\"dtype\":\"U8\",\"shape\":[1],\"data_offsets\":[0,1,2]}}", 2},
        {"offsets one", "{\"a\":{\"dtype\":\"U8\",\"shape\":[1],\"data_offsets\":[1]}}", 2},
        {"offsets fractional", "{\"a\":{\"dtype\":\"U8\",\"shape\":[1],\"data_offsets\":[0,1.0]}}", 2},
        {"overlapping", "{" T("a", "U8", "[4]", 0, 4) "," T("b", "U8", "[4]", 2, 6) "}", 8},
        {"overlapping, reordered", "{" T("a", "U8", "[4]", 4, 8) "," T("b", "U8", "[8]", 0, 8) "}", 8},
        {"same range", "{" T("a", "U8", "[4]", 0, 4) "," T("b", "I8", "[4]", 0, 4) "}", 4},
        {"empty inside another", "{" T("a", "U8", "[4]", 0, 4) "," T("b", "U8", "[0]", 2, 2) "}", 4},
        {"duplicate names", "{" T("a", "U8", "[1]", 0, 1) "," T("a", "U8", "[1]", 1, 2) "}", 2},
        {"duplicate names (escaped)", "{" T("a", "U8", "[1]", 0, 1) "," T("\\u0061", "U8", "[1]", 1, 2) "}", 2},
        /* metadata */
        {"metadata number", "{\"__metadata__\":{\"k\":1}}", 0},
        {"metadata null value", "{\"__metadata__\":{\"k\":null}}", 0},
        {"metadata object value", "{\"__metadata__\":{\"k\":{}}}", 0},
        {"metadata not an object", "{\"__metadata__\":[\"k\"]}", 0},
        {"metadata string", "{\"__metadata__\":\"k\"}", 0},
        {"duplicate metadata key", "{\"__metadata__\":{\"k\":\"1\",\"k\":\"2\"}}", 0},
        {"duplicate __metadata__", "{\"__metadata__\":{},\"__metadata__\":{}}", 0},
        {"NUL in a name", "{" T("a\\u0000b", "U8", "[1]", 0, 1) "}", 1},
        {"NUL in metadata", "{\"__metadata__\":{\"k\":\"a\\u0000\"}}", 0},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        llm_st *f = NULL;
        int rc = open_header(bad[i].hdr, bad[i].data, &f);
        if (rc != LLM_ERR_FORMAT || f != NULL) {
            fprintf(stderr, "malformed header '%s' gave %d, expected LLM_ERR_FORMAT (%s)\n",
                    bad[i].what, rc, llm_errmsg());
            failures++;
        } else if (strncmp(llm_errmsg(), "'m.llm': ", 9) != 0) {
            fprintf(stderr, "'%s': message does not name the file: %s\n", bad[i].what,
                    llm_errmsg());
            failures++;
        } else {
            printf("rejected %-28s %s\n", bad[i].what, llm_errmsg());
        }
    }

    /* Messages say what is wrong and where. */
    llm_st *f;
    CHECK_RC(open_header("{" T("x", "U8", "[0]", 10, 4) "}", 16, &f), LLM_ERR_FORMAT);
    CHECK(strstr(llm_errmsg(), "'m.llm': tensor 'x' data_offsets [10, 4] out of range"));
    CHECK_RC(open_header("{\"a\" 1}", 0, &f), LLM_ERR_FORMAT);
    CHECK(strstr(llm_errmsg(), "'m.llm': invalid JSON at offset 13: expected ':'"));
    CHECK_RC(open_header("{" T("a", "U8", "[4]", 0, 4) "," T("b", "U8", "[4]", 2, 6) "}", 8, &f),
             LLM_ERR_FORMAT);
    CHECK(strstr(llm_errmsg(), "'a'") && strstr(llm_errmsg(), "'b'") &&
          strstr(llm_errmsg(), "overlap"));

    /* The length prefix itself. */
    unsigned char b[64] = {0};
    CHECK_RC(llm_st_open_mem(b, 0, "m.llm", &f), LLM_ERR_FORMAT);
    CHECK_RC(llm_st_open_mem(NULL, 0, "m.llm", &f), LLM_ERR_FORMAT);
    CHECK_RC(llm_st_open_mem(b, 7, "m.llm", &f), LLM_ERR_FORMAT);        /* truncated */
    CHECK(strstr(llm_errmsg(), "'m.llm': not a model file"));
    CHECK_RC(llm_st_open_mem((const unsigned char *)"hello world, a text\n", 20, "m.llm", &f),
             LLM_ERR_FORMAT);                                          /* text */
    CHECK(strstr(llm_errmsg(), "'m.llm': not a model file"));
    memcpy(b, "\x03\0\0\0\0\0\0\0{} ", 11);
    CHECK_RC(llm_st_open_mem(b, 10, "m.llm", &f), LLM_ERR_FORMAT);       /* past the end */
    CHECK_RC(llm_st_open_mem(b, 11, "m.llm", &f), LLM_OK);               /* just fits */
    llm_st_close(f);
    memcpy(b, "\x04\0\0\0\0\0\0\0{}\0\0", 12);                          /* NUL padding */
    CHECK_RC(llm_st_open_mem(b, 12, "m.llm", &f), LLM_ERR_FORMAT);
    memcpy(b, "\0\0\0\0\0\0\0\x80", 8);                                  /* 2^63 */
    CHECK_RC(llm_st_open_mem(b, 64, "m.llm", &f), LLM_ERR_FORMAT);
    memcpy(b, "\xff\xff\xff\xff\xff\xff\xff\xff", 8);                    /* 2^64-1 */
    CHECK_RC(llm_st_open_mem(b, 64, "m.llm", &f), LLM_ERR_FORMAT);
    memcpy(b, "\x01\xe1\xf5\x05\0\0\0\0", 8);                            /* 100000001 */
    CHECK_RC(llm_st_open_mem(b, 64, "m.llm", &f), LLM_ERR_FORMAT);
    CHECK(strstr(llm_errmsg(), "limit"));

    /* Files: a missing one is an I/O error, an empty one malformed. */
    CHECK_RC(llm_st_open("does-not-exist.st", &f), LLM_ERR_IO);
    CHECK(strstr(llm_errmsg(), "does-not-exist.st"));
    write_file("empty.st", "", 0);
    CHECK_RC(llm_st_open("empty.st", &f), LLM_ERR_FORMAT);
    CHECK(f == NULL);
    llm_st_close(NULL);
}

static void test_writer_args(void)
{
    llm_st_writer *w;
    unsigned char d[16] = {0};
    int64_t s1[1] = {4}, neg[1] = {-1}, big[2] = {INT64_MAX, 2};
    int64_t nine[9] = {1, 1, 1, 1, 1, 1, 1, 1, 1};
    CHECK_RC(llm_st_writer_new(&w), LLM_OK);
    CHECK_RC(llm_st_writer_add(w, "a", LLM_DT_U8, 1, s1, d), LLM_OK);
    CHECK_RC(llm_st_writer_add(w, "a", LLM_DT_U8, 1, s1, d), LLM_ERR_INVALID);
    CHECK_RC(llm_st_writer_add(w, "__metadata__", LLM_DT_U8, 1, s1, d), LLM_ERR_INVALID);
    CHECK_RC(llm_st_writer_add(w, "bad\xff", LLM_DT_U8, 1, s1, d), LLM_ERR_INVALID);
    CHECK_RC(llm_st_writer_add(w, "n", LLM_DT_U8, 1, neg, d), LLM_ERR_INVALID);
    CHECK_RC(llm_st_writer_add(w, "n", LLM_DT_U8, 9, nine, d), LLM_ERR_INVALID);
    CHECK_RC(llm_st_writer_add(w, "n", LLM_DT_U8, -1, s1, d), LLM_ERR_INVALID);
    CHECK_RC(llm_st_writer_add(w, "n", LLM_DT_F64, 2, big, d), LLM_ERR_INVALID);
    CHECK_RC(llm_st_writer_add(w, "n", LLM_DT_COUNT, 1, s1, d), LLM_ERR_INVALID);
    CHECK_RC(llm_st_writer_add(w, "n", LLM_DT_U8, 1, s1, NULL), LLM_ERR_INVALID);
    CHECK_RC(llm_st_writer_meta(w, "k", "v"), LLM_OK);
    CHECK_RC(llm_st_writer_meta(w, "k", "w"), LLM_ERR_INVALID);
    CHECK_RC(llm_st_writer_meta(w, "k2", "\xc0\x80"), LLM_ERR_INVALID);
    CHECK_RC(llm_st_writer_write(w, "args.st"), LLM_OK);
    llm_st_writer_free(w);
    llm_st_writer_free(NULL);
    llm_st *f;
    CHECK_RC(llm_st_open("args.st", &f), LLM_OK);
    CHECK(f && llm_st_count(f) == 1 && llm_st_meta_count(f) == 1);
    llm_st_close(f);
}

/* A failed write leaves an existing file as it was and no temporary. */
static void test_writer_atomic(void)
{
    static const char good[] = "GOOD OLD CONTENT";
    static unsigned char big[1 << 16];
    int64_t shape[1] = {sizeof big};
    llm_st_writer *w;
    CHECK_RC(llm_st_writer_new(&w), LLM_OK);
    CHECK_RC(llm_st_writer_add(w, "big", LLM_DT_U8, 1, shape, big), LLM_OK);

    /* A directory that does not exist. */
    CHECK_RC(llm_st_writer_write(w, "no-such-dir/m.st"), LLM_ERR_IO);
    CHECK(strstr(llm_errmsg(), "'no-such-dir/m.st'") && strstr(llm_errmsg(), "No such file"));

    /* An unwritable directory (root may write anywhere, so only as a user). */
    if (mkdir("ro", 0755) != 0) {
        fprintf(stderr, "mkdir ro: %s\n", strerror(errno));
        failures++;
    }
    write_file("ro/keep.st", good, sizeof good);
    chmod("ro", 0555);
    if (geteuid() != 0) {
        CHECK_RC(llm_st_writer_write(w, "ro/keep.st"), LLM_ERR_IO);
        CHECK(strstr(llm_errmsg(), "'ro/keep.st'") && strstr(llm_errmsg(), "Permission denied"));
    } else {
        printf("note: running as root, unwritable-directory case skipped\n");
    }
    size_t len;
    unsigned char *b = read_file("ro/keep.st", &len);
    CHECK(b && len == sizeof good && memcmp(b, good, len) == 0);
    free(b);
    CHECK(count_entries("ro", "keep.st.tmp") == 0);
    chmod("ro", 0755);

    /* Running out of space half-way (a file size limit gives EFBIG, like
     * ENOSPC, even for root). */
    write_file("keep.st", good, sizeof good);
    struct rlimit old, lim;
    signal(SIGXFSZ, SIG_IGN);
    if (getrlimit(RLIMIT_FSIZE, &old) == 0) {
        lim = old;
        lim.rlim_cur = 4096;
        if (setrlimit(RLIMIT_FSIZE, &lim) == 0) {
            CHECK_RC(llm_st_writer_write(w, "keep.st"), LLM_ERR_IO);
            CHECK(strstr(llm_errmsg(), "'keep.st'") && strstr(llm_errmsg(), "too large"));
            setrlimit(RLIMIT_FSIZE, &old);
        } else {
            printf("note: cannot lower RLIMIT_FSIZE, out-of-space case skipped\n");
        }
    }
    b = read_file("keep.st", &len);
    CHECK(b && len == sizeof good && memcmp(b, good, len) == 0);
    free(b);
    CHECK(count_entries(".", "keep.st.tmp") == 0);

    /* The final rename fails: the target is a non-empty directory. */
    mkdir("adir", 0755);
    write_file("adir/x", "x", 1);
    CHECK_RC(llm_st_writer_write(w, "adir"), LLM_ERR_IO);
    CHECK(strstr(llm_errmsg(), "'adir'"));
    CHECK(count_entries(".", "adir.tmp") == 0);

    /* And then a good write replaces the file. */
    CHECK_RC(llm_st_writer_write(w, "keep.st"), LLM_OK);
    llm_st *f;
    CHECK_RC(llm_st_open("keep.st", &f), LLM_OK);
    CHECK(f && llm_st_count(f) == 1 && llm_st_at(f, 0)->nbytes == sizeof big);
    llm_st_close(f);
    CHECK(count_entries(".", "keep.st.tmp") == 0);
    llm_st_writer_free(w);
}

int main(void)
{
    umask(022);
    test_dtypes();
    test_known_bytes();
    test_round_trip();
    test_reference_file();
    test_accepts();
    test_json_strings();
    test_rejects();
    test_writer_args();
    test_writer_atomic();
    if (failures) {
        fprintf(stderr, "test_safetensors: %d check(s) failed\n", failures);
        return 1;
    }
    printf("test_safetensors: all checks passed\n");
    return 0;
}
