/* test_tokenizer.c: the SentencePiece wrapper: training, exact round trips,
 * streaming decode against whole-sequence decode, model metadata read by the
 * protobuf walker, the error paths (bad ids, bad files, bad input), and our
 * own encoder against SentencePiece's, id by id, on many models and strings,
 * corrupt charsmaps included. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "internal.h"
#include "pbwrite.h"
#include "text/text.h"

static int failures;

#define CHECK(c) do { if (!(c)) { fprintf(stderr, "%s:%d: CHECK(%s) failed; errmsg: %s\n", \
    __FILE__, __LINE__, #c, llm_errmsg()); failures++; } } while (0)

static char *path_in_fixtures(const char *name)
{
    const char *dir = getenv("FIXTURES");
    if (!dir)
        dir = "tests/fixtures";
    size_t n = strlen(dir) + strlen(name) + 2;
    char *p = malloc(n);
    if (!p)
        abort();
    snprintf(p, n, "%s/%s", dir, name);
    return p;
}

static void write_file(const char *path, const void *p, size_t n)
{
    FILE *f = fopen(path, "wb");
    if (!f || fwrite(p, 1, n, f) != n || fclose(f) != 0) {
        perror(path);
        exit(1);
    }
}

/* Every line of `path` must survive encode -> decode byte for byte, and the
 * concatenated decode_piece() output must equal decode(). */
static void round_trips(const llm_tok *t, const char *path)
{
    FILE *f = fopen(path, "rb");
    CHECK(f != NULL);
    if (!f)
        return;
    char *line = NULL;
    size_t cap = 0;
    ssize_t k;
    int lines = 0;
    llm_ids ids = {0};
    llm_buf text = {0}, stream = {0}, pieces = {0};
    while ((k = getline(&line, &cap, f)) > 0) {
        size_t n = (size_t)k;
        if (line[n - 1] == '\n')
            n--;
        ids.len = text.len = stream.len = pieces.len = 0;
        CHECK(llm_tok_encode(t, line, n, &ids) == LLM_OK);
        CHECK(llm_tok_decode(t, ids.data, ids.len, &text) == LLM_OK);
        if (text.len != n || memcmp(text.data, line, n) != 0) {
            fprintf(stderr, "round trip differs:\n  in:  %.*s\n  out: %s\n", (int)n, line,
                    text.data);
            failures++;
        }
        int prev = -1;
        for (size_t i = 0; i < ids.len; i++) {
            CHECK(llm_tok_decode_piece(t, prev, ids.data[i], &stream) == LLM_OK);
            prev = ids.data[i];
        }
        CHECK(stream.len == text.len && memcmp(stream.data, text.data, text.len) == 0);
        /* The pieces, joined by spaces, are those of the ids. */
        CHECK(llm_tok_encode_pieces(t, line, n, &pieces) == LLM_OK);
        llm_buf join = {0};
        for (size_t i = 0; i < ids.len; i++) {
            if (i)
                llm_buf_append(&join, " ", 1);
            const char *p = llm_tok_piece(t, ids.data[i]);
            llm_buf_append(&join, p, strlen(p));
        }
        llm_buf_append(&join, "", 0);
        CHECK(strcmp(join.data, pieces.data) == 0);
        llm_buf_free(&join);
        lines++;
    }
    CHECK(lines > 20);
    free(line);
    fclose(f);
    llm_ids_free(&ids);
    llm_buf_free(&text);
    llm_buf_free(&stream);
    llm_buf_free(&pieces);
}

/* ---------------------------------------------------------------- own encoder
 * llm_tok_encode() runs our own encoder (unigram.c) for unigram models;
 * every string below goes through it and through SentencePiece
 * (llm_tok_encode_spm()), and the ids must be the same, one by one. */

static long compared;   /* strings compared, for the summary line */

static void same_ids(const llm_tok *t, const char *s, size_t n, const char *model)
{
    static llm_ids own, ref, sp_ids, spans;
    own.len = ref.len = sp_ids.len = spans.len = 0;
    int rc1 = llm_tok_encode(t, s, n, &own);
    int rc2 = llm_tok_encode_spm(t, s, n, &ref);
    compared++;
    /* With offsets: the same ids; spans in order, inside the text. */
    int rc3 = llm_tok_encode_spans(t, s, n, &sp_ids, &spans);
    int ok = rc3 == LLM_OK && sp_ids.len == ref.len && spans.len == 2 * ref.len &&
             (!ref.len || memcmp(sp_ids.data, ref.data, ref.len * sizeof *ref.data) == 0);
    for (size_t i = 0, last = 0; ok && i < sp_ids.len; i++) {
        int32_t b = spans.data[2 * i], e = spans.data[2 * i + 1];
        ok = b >= (int32_t)last && b <= e && (size_t)e <= n;
        last = (size_t)b;
    }
    if (!ok) {
        failures++;
        fprintf(stderr, "%s: llm_tok_encode_spans() (rc %d) disagrees with encode or has "
                "spans out of order\n", model, rc3);
    }
    if (rc1 == LLM_OK && rc2 == LLM_OK && own.len == ref.len &&
        (own.len == 0 || memcmp(own.data, ref.data, own.len * sizeof *own.data) == 0))
        return;
    failures++;
    fprintf(stderr, "%s: own encoder differs from SentencePiece (rc %d, %d) on", model, rc1,
            rc2);
    for (size_t i = 0; i < n && i < 64; i++)
        fprintf(stderr, " %02x", (unsigned char)s[i]);
    fprintf(stderr, "\n  own:");
    for (size_t i = 0; i < own.len && i < 40; i++)
        fprintf(stderr, " %d", own.data[i]);
    fprintf(stderr, "\n  spm:");
    for (size_t i = 0; i < ref.len && i < 40; i++)
        fprintf(stderr, " %d", ref.data[i]);
    fprintf(stderr, "\n");
}

typedef struct {
    const char *s;
    size_t n;
} str;

#define S(lit) {lit, sizeof(lit) - 1}

/* Whitespace, every kind of malformed UTF-8, NUL, what NFKC changes,
 * characters no model here knows, digits, the escaped space itself. */
static const str adversarial[] = {
    S(""), S(" "), S("   "), S("\t"), S("\n"), S(" \t \n "), S("a"), S(" a"), S("a "),
    S("  a  b  "), S("a\tb\nc\r\nd"), S("\t\tleading tabs"), S("trailing spaces   "),
    S("one  two   three\t\tfour"),
    S("\x80"), S("\xBF"), S("a\x80z"), S("\xC3"), S("\xE2\x82"), S("\xF0\x9F\x98"),
    S("x\xC3"), S("x\xE2\x82"), S("\xC0\xAF"), S("\xC1\xBF"), S("\xE0\x80\xAF"),
    S("\xF0\x80\x80\xAF"), S("\xED\xA0\x80"), S("\xED\xBF\xBF"), S("\xF4\x90\x80\x80"),
    S("\xF5\x80\x80\x80"), S("\xF8\x88\x80\x80\x80"), S("\xFE\xFF"), S("a\xE2" "b"),
    S("\xC2\x80"), S("\xE0\x9F\xBF"), S("\xE0\xA0\x80"), S("\xF0\x8F\xBF\xBF"),
    S("\xF0\x90\x80\x80"), S("\xF4\x8F\xBF\xBF"), S("\xED\x9F\xBF"), S("\xEE\x80\x80"),
    S("\xEF\xBF\xBD"), S("\xEF\xBF\xBD\xEF\xBF\xBD x"), S(" \x80 "),
    S("\0"), S("a\0b"), S("\0\0 x"), S("x \0"),
    S("\xEF\xBD\x86\xEF\xBD\x95\xEF\xBD\x8C\xEF\xBD\x8C"), S("\xE2\x91\xA0"),
    S("\xEF\xAC\x81"), S("\xE2\x84\xAB"), S("\xEF\xBD\xB6"), S("\xE3\x88\xB1"),
    S("\xE2\x84\xA2"), S("\xC2\xBD"), S("\xED\x95\x9C\xEA\xB5\xAD\xEC\x96\xB4"),
    S("\xE1\x84\x92\xE1\x85\xA1\xE1\x86\xAB"), S("e\xCC\x81"), S("A\xCC\x8A"),
    S("\xCC\x81"), S("a\xC2\xA0" "b"), S("\xE3\x80\x80x\xE3\x80\x80"), S("\xE2\x80\x8B"),
    S("\xC2\xAD"), S("\xEF\xBB\xBFx"), S("\x01\x1F\x7F"), S("\xE2\x96\x81"),
    S("x\xE2\x96\x81"), S("\xE2\x96\x81 \xE2\x96\x81"),
    S("\xF0\x9F\xA6\x84\xF0\x9F\xA6\x84"), S("\xE9\xBE\x98\xE9\xBE\x98 \xEA\xB0\x80"),
    S("\xD7\x90\xD7\x91"), S("0123456789"), S("3.14159 2,718"),
    S("\xD9\xA1\xD9\xA2\xD9\xA3"), S("\xEF\xBC\x91\xEF\xBC\x92\xEF\xBC\x93"),
    S("<sep> the<sep>abc ab a"), S("<unk> <s> </s> <0x41>"),
};

/* Pieces of random strings. */
static const char *const atoms[] = {
    "a", "e", "t", "the", "ing", "pump", "Pump", "ab", "abc", "<sep>", " ", "  ", "\t",
    "\n", "\r", "\0", "0", "7", "42", "2023", ".", ",", "-", "'", "\"", "(", "\xC3\xA9",
    "e\xCC\x81", "\xCC\x81", "\xEF\xBD\x86", "\xE2\x91\xA0", "\xEF\xAC\x81", "\xE6\xB3\xB5",
    "\xE5\xAE\xA2", "\xE9\xBE\x98", "\xED\x95\x9C", "\xE1\x84\x92", "\xE1\x85\xA1",
    "\xF0\x9F\x91\x8D", "\xE2\x9C\x85", "\xE2\x96\x81", "\xEF\xBF\xBD", "\xE3\x80\x80",
    "\xC2\xA0", "\xE2\x80\x8B", "\x80", "\xC3", "\xE2\x82", "\xED\xA0\x80", "\xC0\xAF",
    "\xF4\x90\x80\x80", "\xFF", "\xD0\xB4", "\xCE\xB1",
};

/* Every line of `path`, the adversarial strings and `n_random` random
 * strings from `seed`. */
static void compare_all(const llm_tok *t, const char *model, const char *path, int n_random,
                        uint64_t seed)
{
    CHECK(llm_tok_own_encoder(t) == 1);
    if (path) {
        FILE *f = fopen(path, "rb");
        CHECK(f != NULL);
        char *line = NULL;
        size_t cap = 0;
        ssize_t k;
        while (f && (k = getline(&line, &cap, f)) > 0)
            same_ids(t, line, (size_t)k - (line[k - 1] == '\n'), model);
        free(line);
        if (f)
            fclose(f);
    }
    for (size_t i = 0; i < sizeof adversarial / sizeof *adversarial; i++)
        same_ids(t, adversarial[i].s, adversarial[i].n, model);
    llm_rng rng;
    llm_rng_seed(&rng, seed);
    char buf[512];
    const size_t n_atoms = sizeof atoms / sizeof *atoms;
    for (int r = 0; r < n_random; r++) {
        size_t n = 0, parts = llm_rng_below(&rng, 24);
        for (size_t j = 0; j < parts; j++) {
            size_t a = llm_rng_below(&rng, n_atoms);
            /* "\0" is one byte, not an empty string. */
            size_t len = atoms[a][0] ? strlen(atoms[a]) : 1;
            memcpy(buf + n, atoms[a], len);
            n += len;
        }
        same_ids(t, buf, n, model);
    }
}

/* The model `t` with `spec` appended as ModelProto field `field`
 * (2 TrainerSpec, 3 NormalizerSpec, 5 denormalizer). */
static int load_with(const llm_tok *t, unsigned field, const llm_buf *spec, llm_tok **out)
{
    const void *p;
    size_t n;
    llm_tok_bytes(t, &p, &n);
    llm_buf b = {0};
    llm_buf_append(&b, p, n);
    pb_len_field(&b, field, spec->data, spec->len);
    int rc = llm_tok_load_mem(b.data, b.len, out);
    llm_buf_free(&b);
    return rc;
}

/* darts-clone units for a hand-made charsmap: unit i matching byte `label`,
 * its children at base ^ byte, and with a leaf the replacement at `value`. */
static void unit_at(uint32_t *u, uint32_t i, uint32_t label, uint32_t base, int leaf,
                    uint32_t value)
{
    u[i] = label | (leaf ? 1u << 8 : 0) | (i ^ base) << 10;
    if (leaf)
        u[base] = 1u << 31 | value;
}

/* A charsmap blob: the trie size, the units little-endian, the strings. */
static void charsmap_blob(llm_buf *b, const uint32_t *units, size_t n_units, uint32_t size,
                          const char *strs, size_t strs_len)
{
    unsigned char w[4];
    b->len = 0;
    llm_put_le32(w, size);
    llm_buf_append(b, w, 4);
    for (size_t i = 0; i < n_units; i++) {
        llm_put_le32(w, units[i]);
        llm_buf_append(b, w, 4);
    }
    llm_buf_append(b, strs, strs_len);
}

/* Appends s and its NUL to the strings of a charsmap: its offset. */
static uint32_t add_str(llm_buf *strs, const char *s)
{
    uint32_t at = (uint32_t)strs->len;
    llm_buf_append(strs, s, strlen(s) + 1);
    return at;
}

/* A model from `t` with `blob` as its normalizer's charsmap. */
static int load_with_charsmap(const llm_tok *t, unsigned field, const llm_buf *blob,
                              llm_tok **out)
{
    llm_buf spec = {0};
    pb_len_field(&spec, 2, blob->data, blob->len);
    int rc = load_with(t, field, &spec, out);
    llm_buf_free(&spec);
    return rc;
}

/* `msg`, for a charsmap SentencePiece itself takes: our check's words. */
static void charsmap_refused(const llm_tok *t, unsigned field, const llm_buf *blob,
                             const char *msg)
{
    llm_tok *bad = NULL;
    int rc = load_with_charsmap(t, field, blob, &bad);
    if (rc != LLM_ERR_FORMAT || bad || (msg && !strstr(llm_errmsg(), msg))) {
        fprintf(stderr, "charsmap: load gave %d: %s\n", rc, llm_errmsg());
        failures++;
    }
    llm_tok_free(bad);
}

/* A charsmap made by hand on the identity model: one-byte rules the ASCII
 * fast path takes, rules that go on past an ASCII byte, nested rules (the
 * longest wins), a replacement with spaces inside and one that deletes.
 * Then corrupt ones, which must be refused at load: SentencePiece would
 * read them out of bounds. */
static void own_charsmap(const llm_tok *identity, const llm_tok *bpe, const char *tiny)
{
    enum { R = 256, BLOCKS = 20 };
    uint32_t u[256 * BLOCKS] = {0};
    llm_buf strs = {0}, blob = {0};
    u[0] = (uint32_t)R << 10;                                       /* root: children at R ^ c */
    unit_at(u, R ^ 'a', 'a', 2 * 256, 1, add_str(&strs, "b"));
    unit_at(u, R ^ '\t', '\t', 3 * 256, 1, add_str(&strs, " "));
    unit_at(u, R ^ 'z', 'z', 4 * 256, 1, add_str(&strs, ""));
    unit_at(u, R ^ 0xC3, 0xC3, 5 * 256, 0, 0);                      /* é -> e */
    unit_at(u, (5 * 256) ^ 0xA9, 0xA9, 6 * 256, 1, add_str(&strs, "e"));
    unit_at(u, R ^ 'e', 'e', 7 * 256, 0, 0);                        /* e + U+0301 -> E */
    unit_at(u, (7 * 256) ^ 0xCC, 0xCC, 8 * 256, 0, 0);
    unit_at(u, (8 * 256) ^ 0x81, 0x81, 9 * 256, 1, add_str(&strs, "E"));
    unit_at(u, R ^ 'x', 'x', 10 * 256, 1, add_str(&strs, "1"));     /* x, xy, xyz */
    unit_at(u, (10 * 256) ^ 'y', 'y', 11 * 256, 1, add_str(&strs, "2"));
    unit_at(u, (11 * 256) ^ 'z', 'z', 12 * 256, 1, add_str(&strs, "3"));
    unit_at(u, R ^ 'q', 'q', 13 * 256, 1, add_str(&strs, "  Q  q "));
    unit_at(u, R ^ 0xE2, 0xE2, 14 * 256, 0, 0);                     /* U+2003 -> " " */
    unit_at(u, (14 * 256) ^ 0x80, 0x80, 15 * 256, 0, 0);
    unit_at(u, (15 * 256) ^ 0x83, 0x83, 16 * 256, 1, add_str(&strs, " "));
    /* 'k' leads back to the root with a rule: "kkk..." nests without end. */
    unit_at(u, R ^ 'k', 'k', R, 1, add_str(&strs, "K"));
    charsmap_blob(&blob, u, 256 * BLOCKS, 4 * 256 * BLOCKS, strs.data, strs.len);
    llm_tok *t = NULL;
    CHECK(load_with_charsmap(identity, 3, &blob, &t) == LLM_OK);
    if (t) {
        compare_all(t, "hand-made charsmap", tiny, 1000, 5);
        static const str rules[] = {
            S("a z xyz xy x xz xyy"), S("\tq\t q q"), S("caf\xC3\xA9 e\xCC\x81 e\xCC"),
            S("a\xE2\x80\x83" "b \xE2\x80\x83 "), S("kkk k"), S("zzz"), S(" z z "),
        };
        for (size_t i = 0; i < sizeof rules / sizeof *rules; i++)
            same_ids(t, rules[i].s, rules[i].n, "hand-made charsmap");
        /* 40 nested matches overflow SentencePiece's 32 results: refused. */
        llm_ids ids = {0};
        CHECK(llm_tok_encode(t, "kkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkk", 40, &ids) ==
              LLM_ERR_FORMAT);
        CHECK(strstr(llm_errmsg(), "more than 32 nested rules") != NULL);
        CHECK(ids.len == 0);
        llm_ids_free(&ids);
        llm_tok_free(t);
    }

    /* The trie size past the end (SentencePiece takes up to 3 bytes more). */
    uint32_t size = (uint32_t)(blob.len - 4 + 2);
    llm_put_le32((unsigned char *)blob.data, size);
    charsmap_refused(identity, 3, &blob, "corrupt normalization map (trie past the end)");
    /* The same blob cut short: SentencePiece refuses it itself. */
    charsmap_refused(identity, 3, &(llm_buf){.data = blob.data, .len = 3, .cap = 3}, NULL);
    /* The root's children past the end. */
    uint32_t small[256] = {0};
    small[0] = 256u << 10;
    charsmap_blob(&blob, small, 256, 4 * 256, "x", 2);
    charsmap_refused(identity, 3, &blob, "(unit 0 points past the end)");
    /* The root's children in block 0, so that 'r' leads back to the root,
     * whose leaf is past the strings (found by fuzz_unigram). */
    small[0] = 'r' | 1u << 8 | (uint32_t)'r' << 10;
    small['r'] = 1u << 31 | 2;
    charsmap_blob(&blob, small, 256, 4 * 256, "x", 2);
    charsmap_refused(identity, 3, &blob, "(unit 0 has a value past the strings)");
    /* A rule whose children are past the end. */
    unit_at(u, R ^ 'w', 'w', 300 * 256, 0, 0);
    charsmap_blob(&blob, u, 256 * BLOCKS, 4 * 256 * BLOCKS, strs.data, strs.len);
    charsmap_refused(identity, 3, &blob, "points past the end)");
    u[R ^ 'w'] = 0;
    /* A replacement past the strings, or with no NUL after it. */
    unit_at(u, R ^ 'v', 'v', 17 * 256, 1, (uint32_t)strs.len);
    charsmap_blob(&blob, u, 256 * BLOCKS, 4 * 256 * BLOCKS, strs.data, strs.len);
    charsmap_refused(identity, 3, &blob, "has a value past the strings)");
    charsmap_blob(&blob, u, 256 * BLOCKS, 4 * 256 * BLOCKS, strs.data, strs.len - 1);
    charsmap_refused(identity, 3, &blob, "has a value past the strings)");
    /* The denormalizer's charsmap too, and for models we leave to SentencePiece. */
    charsmap_refused(identity, 5, &blob, "has a value past the strings)");
    charsmap_refused(bpe, 3, &blob, "has a value past the strings)");
    llm_buf_free(&strs);
    llm_buf_free(&blob);
}

/* Pieces of private-use characters (U+E000...), which no model here has,
 * appended to the identity model, with scores that decide close calls:
 * EncodeOptimized compares a piece's candidate in double, so [E000][E001]
 * at -1 + 1e-8 beats the pair piece at -1, though both are -1 in float; an
 * unknown character costs the lowest score (the pair piece's -50 here) less
 * 10, so <unk E002>[E003] at -60 + 11 beats the pair [E002 E003] at -50. No
 * dummy prefix: the text starts at score 0. */
static void crafted_scores(const llm_tok *identity)
{
    static const struct { const char *piece; float score; } add[] = {
        {"\xEE\x80\x80", -1.0f}, {"\xEE\x80\x81", 1e-8f}, {"\xEE\x80\x80\xEE\x80\x81", -1.0f},
        {"\xEE\x80\x83", 11.0f}, {"\xEE\x80\x82\xEE\x80\x83", -50.0f},
    };
    const void *p;
    size_t n;
    llm_tok_bytes(identity, &p, &n);
    llm_buf b = {0}, piece = {0}, spec = {0};
    llm_buf_append(&b, p, n);
    for (size_t i = 0; i < sizeof add / sizeof *add; i++) {
        piece.len = 0;
        pb_len_field(&piece, 1, add[i].piece, strlen(add[i].piece));
        pb_float_field(&piece, 2, add[i].score);
        pb_len_field(&b, 1, piece.data, piece.len);
    }
    pb_uint_field(&spec, 3, 0);   /* add_dummy_prefix */
    pb_len_field(&b, 3, spec.data, spec.len);
    llm_tok *t = NULL;
    CHECK(llm_tok_load_mem(b.data, b.len, &t) == LLM_OK);
    if (t) {
        int base = llm_tok_vocab_size(identity);
        llm_ids ids = {0};
        CHECK(llm_tok_own_encoder(t) == 1);
        CHECK(llm_tok_encode(t, "\xEE\x80\x80\xEE\x80\x81", 6, &ids) == LLM_OK);
        CHECK(ids.len == 2 && ids.data[0] == base && ids.data[1] == base + 1);
        same_ids(t, "\xEE\x80\x80\xEE\x80\x81", 6, "crafted scores");
        ids.len = 0;
        CHECK(llm_tok_encode(t, "\xEE\x80\x82\xEE\x80\x83", 6, &ids) == LLM_OK);
        CHECK(ids.len == 4 && ids.data[0] == llm_tok_piece_id(t, "<0xEE>") &&
              ids.data[3] == base + 3);
        same_ids(t, "\xEE\x80\x82\xEE\x80\x83", 6, "crafted scores");
        llm_ids_free(&ids);
        llm_tok_free(t);
    }
    llm_buf_free(&b);
    llm_buf_free(&piece);
    llm_buf_free(&spec);
}

/* The fixture, the identity model of main(), and models trained here:
 * nmt_nfkc (the default), its NormalizerSpec flags off in every
 * combination, no byte fallback with user-defined pieces. Models the
 * encoder does not implement stay with SentencePiece. */
static void own_encoder(const llm_tok *identity, const char *tiny)
{
    char *fixture = path_in_fixtures("tiny.model");
    llm_tok *t = NULL;
    CHECK(llm_tok_load(fixture, &t) == LLM_OK);
    if (t)
        compare_all(t, "tiny.model", tiny, 1000, 1);
    llm_tok_free(t);
    free(fixture);
    compare_all(identity, "identity", tiny, 1000, 2);
    crafted_scores(identity);

    const char *inputs[] = {tiny};
    llm_tok_train_params p;
    llm_tok_train_defaults(&p);
    p.vocab_size = 600;
    p.threads = 1;
    p.seed = 1;
    llm_tok *nmt = NULL;
    CHECK(llm_tok_train(inputs, 1, &p, &nmt) == LLM_OK);
    if (!nmt)
        return;
    compare_all(nmt, "nmt_nfkc", tiny, 3000, 3);
    for (int m = 1; m < 8; m++) {
        llm_buf spec = {0};
        pb_uint_field(&spec, 3, !(m & 1));     /* add_dummy_prefix */
        pb_uint_field(&spec, 4, !(m & 2));     /* remove_extra_whitespaces */
        pb_uint_field(&spec, 5, !(m & 4));     /* escape_whitespaces */
        CHECK(load_with(nmt, 3, &spec, &t) == LLM_OK);
        char name[64];
        snprintf(name, sizeof name, "nmt_nfkc, flags %d", m);
        if (t)
            compare_all(t, name, tiny, 500, 10 + (uint64_t)m);
        llm_tok_free(t);
        llm_buf_free(&spec);
    }
    /* treat_whitespace_as_suffix (TrainerSpec 24) is SentencePiece's. */
    llm_buf spec = {0};
    pb_uint_field(&spec, 24, 1);
    CHECK(load_with(nmt, 2, &spec, &t) == LLM_OK);
    llm_buf_free(&spec);
    if (t) {
        CHECK(llm_tok_own_encoder(t) == 0);
        llm_ids ids = {0};
        CHECK(llm_tok_encode(t, "a pump", 6, &ids) == LLM_OK && ids.len > 0);
        llm_ids_free(&ids);
        llm_tok_free(t);
    }
    llm_tok_free(nmt);

    p.byte_fallback = 0;
    p.vocab_size = 450;     /* no byte pieces: the corpus has fewer pieces */
    p.user_symbols = "\xE2\x96\x81the,ing,<sep>,ab,abc,e\xCC\x81";
    CHECK(llm_tok_train(inputs, 1, &p, &t) == LLM_OK);
    if (t) {
        CHECK(llm_tok_piece_type(t, llm_tok_piece_id(t, "<sep>")) == LLM_PIECE_USER);
        compare_all(t, "user pieces, no byte fallback", tiny, 3000, 4);
        llm_tok_free(t);
    }

    p.user_symbols = NULL;
    p.model_type = "bpe";
    llm_tok *bpe = NULL;
    CHECK(llm_tok_train(inputs, 1, &p, &bpe) == LLM_OK);
    if (bpe) {
        CHECK(llm_tok_own_encoder(bpe) == 0);
        own_charsmap(identity, bpe, tiny);
        llm_tok_free(bpe);
    }
    fprintf(stderr, "own encoder: %ld strings compared with SentencePiece\n", compared);
}

/* llm_tok_from_vocab("llama"): a SentencePiece BPE model re-expressed as a
 * GGUF-style vocabulary (pieces, scores, types) gives the same ids as the
 * model itself on every line of tiny.txt. Trained here as BPE, since that
 * is the model type the vocabulary path builds (Llama 2's). */
static void from_vocab_llama(const char *tiny)
{
    const char *inputs[] = {tiny};
    llm_tok_train_params p;
    llm_tok_train_defaults(&p);
    p.model_type = "bpe";
    p.vocab_size = 600;
    p.normalization = "identity";
    p.remove_extra_whitespaces = 0;
    p.threads = 1;
    llm_tok *t = NULL, *v = NULL;
    CHECK(llm_tok_train(inputs, 1, &p, &t) == LLM_OK);
    if (!t)
        return;
    int n = llm_tok_vocab_size(t);
    const char **pieces = malloc((size_t)n * sizeof *pieces);
    float *scores = malloc((size_t)n * sizeof *scores);
    int32_t *types = malloc((size_t)n * sizeof *types);
    if (!pieces || !scores || !types)
        abort();
    for (int i = 0; i < n; i++) {
        pieces[i] = llm_tok_piece(t, i);
        scores[i] = llm_tok_score(t, i);
        types[i] = (int32_t)llm_tok_piece_type(t, i);
    }
    llm_tok_vocab voc;
    memset(&voc, 0, sizeof voc);
    voc.model = "llama";
    voc.tokens = pieces;
    voc.n_tokens = (size_t)n;
    voc.scores = scores;
    voc.types = types;
    voc.bos_id = llm_tok_bos_id(t);
    voc.eos_id = llm_tok_eos_id(t);
    voc.unk_id = llm_tok_unk_id(t);
    voc.pad_id = -1;
    voc.add_bos = voc.add_eos = voc.add_space_prefix = -1;
    CHECK(llm_tok_from_vocab(&voc, "vocab", &v) == LLM_OK);
    if (v) {
        CHECK(strcmp(llm_tok_model_type(v), "bpe") == 0);
        CHECK(llm_tok_format(v) == LLM_TOK_SPM);
        CHECK(llm_tok_add_bos(v) == 1 && llm_tok_add_eos(v) == 0);
        CHECK(llm_tok_bos_id(v) == llm_tok_bos_id(t) && llm_tok_eos_id(v) == llm_tok_eos_id(t));
        CHECK(llm_tok_unk_id(v) == llm_tok_unk_id(t) && llm_tok_byte_fallback(v) == 1);
        FILE *f = fopen(tiny, "rb");
        CHECK(f != NULL);
        char *line = NULL;
        size_t cap = 0;
        ssize_t k;
        long lines = 0, same = 0;
        llm_ids a = {0}, b = {0};
        while (f && (k = getline(&line, &cap, f)) > 0) {
            a.len = b.len = 0;
            CHECK(llm_tok_encode(t, line, (size_t)k, &a) == LLM_OK);
            CHECK(llm_tok_encode(v, line, (size_t)k, &b) == LLM_OK);
            lines++;
            same += a.len == b.len && !memcmp(a.data, b.data, a.len * sizeof *a.data);
        }
        CHECK(lines > 0 && same == lines);
        const char *odd = "  two  spaces\t\xe2\x9c\x93 \xf0\x9f\x98\x80 Zebra-Quokka 12345";
        a.len = b.len = 0;
        CHECK(llm_tok_encode(t, odd, strlen(odd), &a) == LLM_OK);
        CHECK(llm_tok_encode(v, odd, strlen(odd), &b) == LLM_OK);
        CHECK(a.len == b.len && !memcmp(a.data, b.data, a.len * sizeof *a.data));
        llm_ids_free(&a);
        llm_ids_free(&b);
        free(line);
        if (f)
            fclose(f);
    }
    llm_tok_free(v);
    v = NULL;
    voc.scores = NULL;
    CHECK(llm_tok_from_vocab(&voc, "vocab", &v) == LLM_ERR_INVALID && !v);
    voc.scores = scores;
    voc.unk_id = n;
    CHECK(llm_tok_from_vocab(&voc, "vocab", &v) == LLM_ERR_FORMAT && !v);
    free(pieces);
    free(scores);
    free(types);
    llm_tok_free(t);
}

int main(void)
{
    char *tiny = path_in_fixtures("tiny.txt");
    const char *inputs[] = {tiny};
    llm_tok_train_params p;
    llm_tok_train_defaults(&p);
    CHECK(p.vocab_size == 8000 && p.byte_fallback == 1 && p.max_sentence_length == 4192);
    CHECK(strcmp(p.model_type, "unigram") == 0 && strcmp(p.normalization, "nmt_nfkc") == 0);

    /* Identity normalisation without whitespace removal: exact round trips. */
    p.vocab_size = 600;
    p.normalization = "identity";
    p.remove_extra_whitespaces = 0;
    p.threads = 1;
    p.seed = 1;
    llm_tok *t = NULL;
    CHECK(llm_tok_train(inputs, 1, &p, &t) == LLM_OK);
    if (!t)
        return 1;
    CHECK(llm_tok_vocab_size(t) == 600);
    CHECK(strcmp(llm_tok_model_type(t), "unigram") == 0);
    CHECK(strcmp(llm_tok_normalizer(t), "identity") == 0);
    CHECK(llm_tok_byte_fallback(t) == 1);
    CHECK(llm_tok_unk_id(t) == 0 && llm_tok_bos_id(t) == 1 && llm_tok_eos_id(t) == 2);
    CHECK(llm_tok_pad_id(t) == -1);
    CHECK(llm_tok_piece_type(t, 0) == LLM_PIECE_UNKNOWN);
    CHECK(llm_tok_piece_type(t, 1) == LLM_PIECE_CONTROL);
    int bytes = 0;
    for (int i = 0; i < llm_tok_vocab_size(t); i++)
        bytes += llm_tok_piece_type(t, i) == LLM_PIECE_BYTE;
    CHECK(bytes == 256);
    CHECK(llm_tok_piece_id(t, "<0x41>") >= 0);
    CHECK(strcmp(llm_tok_piece(t, llm_tok_piece_id(t, "<0x41>")), "<0x41>") == 0);
    CHECK(llm_tok_piece_id(t, "<unk>") == 0);
    CHECK(llm_tok_piece_id(t, "no such piece, surely") == -1);
    round_trips(t, tiny);
    own_encoder(t, tiny);

    /* Text the model never saw: emoji and CJK go through byte pieces. */
    const char *odd = "  \xF0\x9F\xA6\x84 \xE9\xBE\x8D\tz\xCC\x8C  trailing  ";
    llm_ids ids = {0};
    llm_buf out = {0};
    CHECK(llm_tok_encode(t, odd, strlen(odd), &ids) == LLM_OK);
    CHECK(llm_tok_decode(t, ids.data, ids.len, &out) == LLM_OK);
    CHECK(strcmp(out.data, odd) == 0);
    /* An empty line encodes to nothing and decodes to "". */
    ids.len = out.len = 0;
    CHECK(llm_tok_encode(t, "", 0, &ids) == LLM_OK && ids.len == 0);
    CHECK(llm_tok_decode(t, NULL, 0, &out) == LLM_OK && out.len == 0 && out.data[0] == 0);

    /* Out-of-range ids are refused with the id in the message. */
    int32_t bad[] = {5, 600};
    CHECK(llm_tok_decode(t, bad, 2, &out) == LLM_ERR_RANGE);
    CHECK(strstr(llm_errmsg(), "id 600 is out of range (vocabulary 600)") != NULL);
    CHECK(llm_tok_decode_piece(t, -1, -3, &out) == LLM_ERR_RANGE);
    CHECK(llm_tok_piece(t, 600) == NULL);
    CHECK(llm_tok_piece_type(t, -1) == 0);

    /* The serialized model loads back to the same tokenizer, from memory and
     * from a file; a corrupt copy is refused. */
    const void *buf;
    size_t len;
    llm_tok_bytes(t, &buf, &len);
    llm_tok *t2 = NULL;
    CHECK(llm_tok_load_mem(buf, len, &t2) == LLM_OK);
    CHECK(t2 && llm_tok_vocab_size(t2) == 600);
    llm_tok_free(t2);
    write_file("m.model", buf, len);
    CHECK(llm_tok_load("m.model", &t2) == LLM_OK);
    llm_tok_free(t2);
    write_file("half.model", buf, len / 2);
    CHECK(llm_tok_load("half.model", &t2) == LLM_ERR_FORMAT && t2 == NULL);
    CHECK(strcmp(llm_errmsg(), "'half.model': not a SentencePiece model or llm model file") == 0);
    write_file("text.model", "hello world\n", 12);
    CHECK(llm_tok_load("text.model", &t2) == LLM_ERR_FORMAT);
    write_file("empty.model", "", 0);
    CHECK(llm_tok_load("empty.model", &t2) == LLM_ERR_FORMAT);
    CHECK(llm_tok_load("missing.model", &t2) == LLM_ERR_IO);
    CHECK(strstr(llm_errmsg(), "cannot open 'missing.model'") != NULL);
    CHECK(llm_tok_load_mem("\x0a\x02\x0a", 3, &t2) == LLM_ERR_FORMAT);

    /* The tokenizer embedded in an llm model file (safetensors, U8 tensor
     * "tokenizer.model") loads the same; a model file without one is refused. */
    llm_st_writer *w = NULL;
    int64_t shape[1] = {(int64_t)len};
    float one = 1.0f;
    int64_t one_shape[1] = {1};
    CHECK(llm_st_writer_new(&w) == LLM_OK);
    CHECK(llm_st_writer_add(w, "norm.weight", LLM_DT_F32, 1, one_shape, &one) == LLM_OK);
    CHECK(llm_st_writer_add(w, "tokenizer.model", LLM_DT_U8, 1, shape, buf) == LLM_OK);
    CHECK(llm_st_writer_write(w, "m.llm") == LLM_OK);
    llm_st_writer_free(w);
    CHECK(llm_tok_load("m.llm", &t2) == LLM_OK);
    if (t2) {
        const void *buf2;
        size_t len2;
        llm_tok_bytes(t2, &buf2, &len2);
        CHECK(len2 == len && memcmp(buf2, buf, len) == 0);
        llm_tok_free(t2);
    }
    CHECK(llm_st_writer_new(&w) == LLM_OK);
    CHECK(llm_st_writer_add(w, "norm.weight", LLM_DT_F32, 1, one_shape, &one) == LLM_OK);
    CHECK(llm_st_writer_write(w, "none.llm") == LLM_OK);
    llm_st_writer_free(w);
    CHECK(llm_tok_load("none.llm", &t2) == LLM_ERR_FORMAT);
    CHECK(strcmp(llm_errmsg(), "'none.llm': model file has no U8 tensor 'tokenizer.model' or 'tokenizer.json'") == 0);
    llm_tok_free(t);
    llm_ids_free(&ids);
    llm_buf_free(&out);

    /* A vocabulary too large for the corpus is reported in our words. */
    llm_tok_train_defaults(&p);
    p.threads = 1;
    CHECK(llm_tok_train(inputs, 1, &p, &t) == LLM_ERR_INVALID);
    CHECK(strstr(llm_errmsg(), "vocabulary size 8000 is too large for this corpus; "
                               "the trainer suggests <= ") != NULL);

    long bound = strtol(strstr(llm_errmsg(), "<= ") + 3, NULL, 10);
    /* fit_vocab: trained at the bound the strict error named. */
    p.fit_vocab = 1;
    CHECK(llm_tok_train(inputs, 1, &p, &t) == LLM_OK);
    CHECK(bound > 300 && bound < 8000 && llm_tok_vocab_size(t) == (int)bound);
    llm_tok_free(t);
    p.fit_vocab = 0;

    p.vocab_size = 300;
    CHECK(llm_tok_train(inputs, 1, &p, &t) == LLM_ERR_INVALID);
    CHECK(strstr(llm_errmsg(), "vocabulary size 300 is too small for this corpus") != NULL);
    const char *need = strstr(llm_errmsg(), "need ");
    long least = need ? strtol(need + 5, NULL, 10) : 0;
    p.fit_vocab = 1;   /* ... and at the size its characters need */
    CHECK(llm_tok_train(inputs, 1, &p, &t) == LLM_OK);
    CHECK(least > 300 && llm_tok_vocab_size(t) == (int)least);
    llm_tok_free(t);
    p.fit_vocab = 0;

    /* Other models and normalisers are reported as trained. */
    p.vocab_size = 600;
    p.model_type = "bpe";
    p.normalization = "nfkc";
    CHECK(llm_tok_train(inputs, 1, &p, &t) == LLM_OK);
    if (t) {
        CHECK(strcmp(llm_tok_model_type(t), "bpe") == 0);
        CHECK(strcmp(llm_tok_normalizer(t), "nfkc") == 0);
        llm_tok_free(t);
    }
    p.model_type = "char";
    p.byte_fallback = 0;
    p.vocab_size = 5000;   /* an upper bound for char models */
    CHECK(llm_tok_train(inputs, 1, &p, &t) == LLM_OK);
    if (t) {
        CHECK(strcmp(llm_tok_model_type(t), "char") == 0);
        CHECK(llm_tok_byte_fallback(t) == 0);
        CHECK(llm_tok_vocab_size(t) < 5000);
        llm_tok_free(t);
    }

    /* Bad parameters and bad input. */
    llm_tok_train_defaults(&p);
    p.model_type = "trigram";
    CHECK(llm_tok_train(inputs, 1, &p, &t) == LLM_ERR_INVALID);
    llm_tok_train_defaults(&p);
    p.character_coverage = 0.5;
    CHECK(llm_tok_train(inputs, 1, &p, &t) == LLM_ERR_INVALID);
    llm_tok_train_defaults(&p);
    const char *missing[] = {"no-such-file.txt"};
    CHECK(llm_tok_train(missing, 1, &p, &t) == LLM_ERR_IO);
    CHECK(strstr(llm_errmsg(), "cannot open 'no-such-file.txt'") != NULL);
    write_file("bad.txt", "good line\nbad \xC3\x28 line\n", 22);
    const char *badin[] = {"bad.txt"};
    CHECK(llm_tok_train(badin, 1, &p, &t) == LLM_ERR_UTF8);
    CHECK(strcmp(llm_errmsg(), "'bad.txt', line 2: invalid UTF-8 at byte 5") == 0);

    from_vocab_llama(tiny);
    free(tiny);
    if (failures)
        fprintf(stderr, "%d checks failed\n", failures);
    return failures != 0;
}
