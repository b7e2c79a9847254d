/* fuzz_unigram.c: our unigram encoder (unigram.c) on untrusted model bytes.
 * The input is a flags byte, a length L (2 bytes, little-endian), L bytes of
 * NormalizerSpec.precompiled_charsmap (none when L is 0; with F_SPARSE, the
 * units to set in one, expand()) and then text. A fixed piece table with
 * that charsmap and the flags must build exactly when llm_charsmap_check()
 * takes the charsmap, and encode the text to ids in range, appended to what
 * `out` held (left as it was on error). With F_SPM the same model also goes
 * through llm_tok_load_mem() as a ModelProto, and where our encoder
 * answers, its ids must be SentencePiece's. Last, the whole input is tried
 * as a ModelProto: when it loads, encoding fixed strings and the input
 * itself gives ids in range.
 *
 * Seeds: charsmaps from SentencePiece's own builder (spm_train
 * --normalization_rule_tsv; the nmt_nfkc one is 237 KB, past L), made by
 * hand as test_tokenizer.c makes them, identity; whole models
 * (tests/fixtures/tiny.model and a model with such rules). */
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "llm.h"
#include "internal.h"
#include "text/text.h"
#include "text/unigram.h"
#include "../unit/pbwrite.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

enum {
    F_DUMMY = 1,        /* add_dummy_prefix */
    F_RMWS = 2,         /* remove_extra_whitespaces */
    F_ESC = 4,          /* escape_whitespaces */
    F_BYTES = 8,        /* byte_fallback, with the 256 byte pieces */
    F_USER = 16,        /* the user-defined pieces (else they are unused) */
    F_SPM = 32,         /* compare with SentencePiece */
    F_NAN = 64,         /* one normal piece scores NaN */
    F_SPARSE = 128,     /* the charsmap comes as units to set (expand()) */
};

#define SP "\xE2\x96\x81"   /* U+2581, the escaped space */

/* Normal pieces are one, two, three and four-byte characters, pieces that
 * overlap, with and without the escaped space. */
static const struct {
    const char *piece;
    unsigned char type;
    float score;
} kPieces[] = {
    {"<unk>", LLM_PIECE_UNKNOWN, 0.0f},
    {"<s>", LLM_PIECE_CONTROL, 0.0f},
    {"</s>", LLM_PIECE_CONTROL, 0.0f},
    {SP, LLM_PIECE_NORMAL, -2.0f},
    {SP SP, LLM_PIECE_NORMAL, -5.0f},
    {SP "a", LLM_PIECE_NORMAL, -3.0f},
    {"a", LLM_PIECE_NORMAL, -2.5f},
    {"b", LLM_PIECE_NORMAL, -3.5f},
    {"ab", LLM_PIECE_NORMAL, -4.0f},
    {SP "the", LLM_PIECE_NORMAL, -3.0f},
    {"the", LLM_PIECE_NORMAL, -4.5f},
    {"e", LLM_PIECE_NORMAL, -3.0f},
    {"\xC3\xA9", LLM_PIECE_NORMAL, -5.0f},          /* é */
    {"e\xCC\x81", LLM_PIECE_NORMAL, -6.0f},         /* e + U+0301 */
    {"\xE6\x97\xA5\xE6\x9C\xAC", LLM_PIECE_NORMAL, -7.0f},  /* 日本 */
    {"\xE6\x9C\xAC", LLM_PIECE_NORMAL, -6.0f},      /* 本 */
    {"\xF0\x9F\x98\x80", LLM_PIECE_NORMAL, -8.0f},  /* U+1F600 */
    {"\xEF\xBF\xBD", LLM_PIECE_NORMAL, -9.0f},      /* U+FFFD */
    {"x", LLM_PIECE_NORMAL, -4.0f},
    {"xyz", LLM_PIECE_NORMAL, -5.0f},
    {"1", LLM_PIECE_NORMAL, -4.0f},
    {"fi", LLM_PIECE_NORMAL, -5.0f},
    {SP "fi", LLM_PIECE_NORMAL, -5.5f},
    {"<sep>", LLM_PIECE_USER, 0.0f},
    {"\xC3\xA9!", LLM_PIECE_USER, 0.0f},
    {"ab" SP, LLM_PIECE_UNUSED, -1.0f},
};
enum { N_FIXED = sizeof kPieces / sizeof *kPieces, N_MAX = N_FIXED + 256, NAN_PIECE = 8 };

typedef struct {
    int n;
    const char *pieces[N_MAX];
    size_t lens[N_MAX];
    float scores[N_MAX];
    unsigned char types[N_MAX];
    char bytes[256][7];
} table;

static void make_table(table *t, unsigned flags)
{
    t->n = 0;
    for (int i = 0; i < N_FIXED; i++, t->n++) {
        t->pieces[i] = kPieces[i].piece;
        t->lens[i] = strlen(kPieces[i].piece);
        t->scores[i] = kPieces[i].score;
        t->types[i] = kPieces[i].type;
        if (t->types[i] == LLM_PIECE_USER && !(flags & F_USER))
            t->types[i] = LLM_PIECE_UNUSED;
    }
    if (flags & F_NAN)
        t->scores[NAN_PIECE] = NAN;
    if (!(flags & F_BYTES))
        return;
    static const char hex[] = "0123456789ABCDEF";
    for (int b = 0; b < 256; b++, t->n++) {
        char *p = t->bytes[b];
        memcpy(p, "<0x", 3);
        p[3] = hex[b >> 4];
        p[4] = hex[b & 15];
        p[5] = '>';
        p[6] = 0;
        t->pieces[t->n] = p;
        t->lens[t->n] = 6;
        t->scores[t->n] = 0.0f;
        t->types[t->n] = LLM_PIECE_BYTE;
    }
}

/* ---------------------------------------------------------------- ModelProto */

/* The table, the flags and the charsmap as a serialized ModelProto. */
static void make_proto(llm_buf *b, const table *t, unsigned flags,
                       const unsigned char *cmap, size_t cmap_len)
{
    llm_buf sub = {0};
    for (int i = 0; i < t->n; i++) {
        sub.len = 0;
        pb_len_field(&sub, 1, t->pieces[i], t->lens[i]);
        pb_float_field(&sub, 2, t->scores[i]);
        pb_uint_field(&sub, 3, t->types[i]);
        pb_len_field(b, 1, sub.data, sub.len);
    }
    sub.len = 0;
    pb_uint_field(&sub, 3, 1);                       /* model_type UNIGRAM */
    pb_uint_field(&sub, 35, !!(flags & F_BYTES));    /* byte_fallback */
    pb_len_field(b, 2, sub.data, sub.len);
    sub.len = 0;
    if (cmap_len)
        pb_len_field(&sub, 2, cmap, cmap_len);
    pb_uint_field(&sub, 3, !!(flags & F_DUMMY));
    pb_uint_field(&sub, 4, !!(flags & F_RMWS));
    pb_uint_field(&sub, 5, !!(flags & F_ESC));
    pb_len_field(b, 3, sub.data, sub.len);
    llm_buf_free(&sub);
}

/* ---------------------------------------------------------------- checks */

#define SENTINEL 0x5eed

/* `out` held one SENTINEL before the call that gave rc: it is still there,
 * and alone on error; every id after it is in [0, n). */
static void check_ids(const llm_ids *out, int rc, int n)
{
    if (out->len < 1 || out->data[0] != SENTINEL)
        abort();
    if (rc != LLM_OK && out->len != 1)
        abort();
    for (size_t i = 1; i < out->len; i++)
        if (out->data[i] < 0 || out->data[i] >= n)
            abort();
}

static void encode_tok(const llm_tok *t, const char *s, size_t n)
{
    llm_ids ids = {0};
    llm_ids_push(&ids, SENTINEL);
    int rc = llm_tok_encode(t, s, n, &ids);
    check_ids(&ids, rc, llm_tok_vocab_size(t));
    llm_ids_free(&ids);
}

/* Our encoder against SentencePiece on the model of `tb` and the text. */
static void compare_spm(const table *tb, unsigned flags, const unsigned char *cmap,
                        size_t cmap_len, const char *text, size_t n,
                        const llm_ids *own, int own_rc)
{
    llm_buf proto = {0};
    make_proto(&proto, tb, flags, cmap, cmap_len);
    llm_tok *t = NULL;
    int rc = llm_tok_load_mem(proto.data, proto.len, &t);
    llm_buf_free(&proto);
    /* The model is one llm_unigram_new() took (a NaN score aside, which
     * SentencePiece takes too): it loads, with our encoder. */
    if (rc != LLM_OK || !llm_tok_own_encoder(t))
        abort();
    if (own_rc == LLM_OK) {
        llm_ids ids = {0};
        llm_ids_push(&ids, SENTINEL);
        int src = llm_tok_encode_spm(t, text, n, &ids);
        check_ids(&ids, src, tb->n);
        if (src != LLM_OK || ids.len != own->len ||
            memcmp(ids.data, own->data, ids.len * sizeof *ids.data) != 0)
            abort();
        llm_ids_free(&ids);
    }
    llm_tok_free(t);
}

/* A charsmap from p[0..n): 1 + (p[0] & 15) blocks of 256 units, zero but
 * for p[1] records of a unit index (2 bytes, little-endian, modulo the
 * units) and its value (4 bytes), then the strings. Mutations of raw
 * charsmaps mostly hit the zeros between units; these hit the units.
 * @return the length of the charsmap in out, 0 for none. */
static size_t expand(const unsigned char *p, size_t n, unsigned char *out)
{
    if (n < 2)
        return 0;
    size_t n_units = 256 * (1 + (size_t)(p[0] & 15)), records = p[1];
    if (records > (n - 2) / 6)
        records = (n - 2) / 6;
    llm_put_le32(out, (uint32_t)(4 * n_units));
    memset(out + 4, 0, 4 * n_units);
    const unsigned char *r = p + 2;
    for (size_t i = 0; i < records; i++, r += 6) {
        size_t at = ((size_t)r[0] | (size_t)r[1] << 8) % n_units;
        memcpy(out + 4 + 4 * at, r + 2, 4);
    }
    size_t strs = n - 2 - 6 * records;
    memcpy(out + 4 + 4 * n_units, r, strs);
    return 4 + 4 * n_units + strs;
}

static void fuzz_spec(const uint8_t *data, size_t size)
{
    if (size < 3)
        return;
    unsigned flags = data[0];
    size_t cmap_len = (size_t)data[1] | (size_t)data[2] << 8;
    if (cmap_len > size - 3)
        cmap_len = size - 3;
    const unsigned char *cmap = data + 3;
    const char *text = (const char *)data + 3 + cmap_len;
    size_t n = size - 3 - cmap_len;
    static unsigned char expanded[4 + 4 * 256 * 16 + 0xFFFF];
    if (flags & F_SPARSE) {
        cmap_len = expand(cmap, cmap_len, expanded);
        cmap = expanded;
    }

    static table tb;
    make_table(&tb, flags);
    int ok = cmap_len == 0 || llm_charsmap_check(cmap, cmap_len) == LLM_OK;
    llm_unigram_spec s = {
        .n_pieces = tb.n, .pieces = tb.pieces, .piece_lens = tb.lens,
        .scores = tb.scores, .types = tb.types, .byte_fallback = !!(flags & F_BYTES),
        .charsmap = cmap_len ? cmap : NULL, .charsmap_len = cmap_len,
        .add_dummy_prefix = !!(flags & F_DUMMY), .remove_extra_ws = !!(flags & F_RMWS),
        .escape_ws = !!(flags & F_ESC),
    };
    llm_unigram *u = NULL;
    int rc = llm_unigram_new(&s, &u);
    if (!ok) {
        if (rc != LLM_ERR_FORMAT || u)
            abort();
        return;
    }
    if (rc != LLM_OK || !u)
        abort();

    llm_unigram_scratch scratch = {0};
    llm_ids ids = {0}, again = {0};
    llm_ids_push(&ids, SENTINEL);
    llm_ids_push(&again, SENTINEL);
    rc = llm_unigram_encode(u, text, n, &scratch, &ids);
    if (rc != LLM_OK && rc != LLM_UNIGRAM_FALLBACK && rc != LLM_ERR_FORMAT)
        abort();
    check_ids(&ids, rc, tb.n);
    /* Byte fallback leaves no unknown piece; no text gives no ids. */
    if (rc == LLM_OK && (flags & F_BYTES))
        for (size_t i = 1; i < ids.len; i++)
            if (ids.data[i] == 0)
                abort();
    if (n == 0 && ids.len != 1)
        abort();
    /* The scratch, warm now, gives the same. */
    int rc2 = llm_unigram_encode(u, text, n, &scratch, &again);
    if (rc2 != rc || again.len != ids.len ||
        memcmp(again.data, ids.data, ids.len * sizeof *ids.data) != 0)
        abort();
    if (flags & F_SPM)
        compare_spm(&tb, flags, cmap, cmap_len, text, n, &ids, rc);
    llm_ids_free(&ids);
    llm_ids_free(&again);
    llm_unigram_scratch_free(&scratch);
    llm_unigram_free(u);
}

static void fuzz_proto(const uint8_t *data, size_t size)
{
    llm_tok *t = NULL;
    if (llm_tok_load_mem(data, size, &t) != LLM_OK) {
        if (t)
            abort();
        return;
    }
    static const char *const fixed[] = {
        "", "Hello world", "  a  b  ", "\t\n", " ", "\xE6\x97\xA5\xE6\x9C\xAC\xE8\xAA\x9E",
        "caf\xC3\xA9 e\xCC\x81", "\xC3", "\xF0\x9F\x98\x80!", "\xED\xA0\x80", "<sep> <s>",
        "xyz xy x", "\xEF\xBC\xA1\xE2\x91\xA0\xEF\xAC\x81", "kkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkk",
    };
    for (size_t i = 0; i < sizeof fixed / sizeof *fixed; i++)
        encode_tok(t, fixed[i], strlen(fixed[i]));
    encode_tok(t, (const char *)data, size);
    llm_tok_free(t);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    fuzz_spec(data, size);
    fuzz_proto(data, size);
    return 0;
}
