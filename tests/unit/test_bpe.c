/* test_bpe.c: byte-level BPE (lib/text/bpe.c): hand-checked merges, ties, added
 * tokens, pre-tokenizer splits per preset, the invalid-UTF-8 rule, round
 * trips of random bytes, tokenizer.json round trips, hostile JSON, the
 * llm_tok wrapper, and id-for-id equality with Hugging Face tokenizers on
 * tests/fixtures/bpe_reference.txt (made by make_bpe_reference.py).
 *
 * With arguments it is the driver of tests/sh/bpe-reference.sh: it reads
 * hex-encoded lines on standard input and prints their ids, one line each:
 *   test_bpe encode TOKENIZER.json PRESET   (PRESET "json": the file's own)
 *   test_bpe vocab VOCAB.json               (llm_tok_from_vocab, see below)
 *   test_bpe json TOKENIZER.json PRESET     (prints llm_bpe_to_json())
 *   test_bpe bench TOKENIZER.json PRESET TEXT  (encode speed, lines of TEXT)
 * and exits 1 when a line does not decode back to itself. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "text/bpe.h"

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

static char *read_all(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    if (!f) {
        perror(path);
        exit(1);
    }
    llm_buf b = {0};
    char chunk[65536];
    size_t k;
    while ((k = fread(chunk, 1, sizeof chunk, f)) > 0)
        if (llm_buf_append(&b, chunk, k))
            abort();
    fclose(f);
    if (llm_buf_append(&b, "", 0))
        abort();
    *len = b.len;
    return b.data;
}

/* ---------------------------------------------------------------- byte alphabet */

static unsigned byte_cp(unsigned c)
{
    if (c <= 32)
        return 256 + c;
    if (c >= 127 && c <= 160)
        return 256 + 33 + (c - 127);
    if (c == 173)
        return 323;
    return c;
}

/* Bytes in the GPT-2 alphabet, as a NUL-terminated string in `out`. */
static void to_alpha(const char *s, size_t n, llm_buf *out)
{
    out->len = 0;
    for (size_t i = 0; i < n; i++) {
        unsigned cp = byte_cp((unsigned char)s[i]);
        char u[2];
        if (cp < 0x80) {
            u[0] = (char)cp;
            CHECK(llm_buf_append(out, u, 1) == 0);
        } else {
            u[0] = (char)(0xC0 | (cp >> 6));
            u[1] = (char)(0x80 | (cp & 0x3F));
            CHECK(llm_buf_append(out, u, 2) == 0);
        }
    }
    CHECK(llm_buf_append(out, "", 0) == 0);
}

/* A vocabulary: the 256 byte tokens, then `extra` (plain text, converted),
 * then `added` (literal) with their types. */
typedef struct {
    char **toks;
    int32_t *types;
    size_t n;
} vocab;

static void vocab_add(vocab *v, const char *s, int32_t type)
{
    v->toks = realloc(v->toks, (v->n + 1) * sizeof *v->toks);
    v->types = realloc(v->types, (v->n + 1) * sizeof *v->types);
    if (!v->toks || !v->types)
        abort();
    v->toks[v->n] = strdup(s);
    v->types[v->n++] = type;
}

static void vocab_bytes(vocab *v)
{
    llm_buf a = {0};
    for (unsigned c = 0; c < 256; c++) {
        char ch = (char)c;
        to_alpha(&ch, 1, &a);
        vocab_add(v, a.data, LLM_PIECE_NORMAL);
    }
    llm_buf_free(&a);
}

static void vocab_text(vocab *v, const char *text)
{
    llm_buf a = {0};
    to_alpha(text, strlen(text), &a);
    vocab_add(v, a.data, LLM_PIECE_NORMAL);
    llm_buf_free(&a);
}

static void vocab_free(vocab *v)
{
    for (size_t i = 0; i < v->n; i++)
        free(v->toks[i]);
    free(v->toks);
    free(v->types);
    memset(v, 0, sizeof *v);
}

static llm_bpe *build(const vocab *v, const char *const *merges, size_t n_merges,
                      const char *pre, int ignore_merges)
{
    llm_bpe_spec s;
    memset(&s, 0, sizeof s);
    s.tokens = (const char *const *)v->toks;
    s.n_tokens = v->n;
    s.types = v->types;
    s.merges = merges;
    s.n_merges = n_merges;
    if (pre)
        CHECK(llm_bpe_pre_regexes(pre, &s.regexes, &s.n_regexes) == 0);
    s.bos_id = s.eos_id = s.unk_id = s.pad_id = -1;
    s.ignore_merges = ignore_merges;
    llm_bpe *b = NULL;
    CHECK(llm_bpe_new(&s, "test", &b) == 0);
    return b;
}

/* The decoded pieces of text, joined by '|'. */
static void pieces_of(const llm_bpe *b, const char *text, size_t n, int special, llm_buf *out)
{
    llm_ids ids = {0};
    out->len = 0;
    CHECK(llm_buf_append(out, "", 0) == 0);
    CHECK(llm_bpe_encode(b, text, n, special, &ids) == 0);
    for (size_t i = 0; i < ids.len; i++) {
        if (i)
            CHECK(llm_buf_append(out, "|", 1) == 0);
        CHECK(llm_bpe_decode_piece(b, ids.data[i], out) == 0);
    }
    llm_ids_free(&ids);
}

static void expect_pieces(const llm_bpe *b, const char *text, int special, const char *want)
{
    llm_buf got = {0};
    pieces_of(b, text, strlen(text), special, &got);
    if (strcmp(got.data, want) != 0) {
        fprintf(stderr, "encode('%s'): pieces '%s', expected '%s'\n", text, got.data, want);
        failures++;
    }
    llm_buf_free(&got);
}

/* ---------------------------------------------------------------- hand-checked */

static void merges_and_ties(void)
{
    vocab v = {0};
    vocab_bytes(&v);
    vocab_text(&v, "ab");
    vocab_text(&v, "bc");
    vocab_text(&v, "aa");
    vocab_text(&v, "aaaa");
    vocab_text(&v, "abc");
    /* rank order decides: "a b" first gives ab|c, "b c" first gives a|bc */
    const char *m1[] = {"a b", "b c"}, *m2[] = {"b c", "a b"};
    llm_bpe *b = build(&v, m1, 2, NULL, 0);
    if (b)
        expect_pieces(b, "abc", 0, "ab|c");
    llm_bpe_free(b);
    b = build(&v, m2, 2, NULL, 0);
    if (b)
        expect_pieces(b, "abc", 0, "a|bc");
    llm_bpe_free(b);
    /* equal ranks: leftmost first; then merges of merges */
    const char *m3[] = {"a a", "aa aa", "ab c"};
    b = build(&v, m3, 2, NULL, 0);
    if (b) {
        expect_pieces(b, "aaa", 0, "aa|a");
        expect_pieces(b, "aaaaa", 0, "aaaa|a");
        expect_pieces(b, "aaaaaa", 0, "aaaa|aa");
        expect_pieces(b, "", 0, "");
    }
    llm_bpe_free(b);
    /* ignore_merges: a piece that is a token wins over its merges */
    const char *m4[] = {"a b"};
    b = build(&v, m4, 1, NULL, 1);
    if (b)
        expect_pieces(b, "abc", 0, "abc");
    llm_bpe_free(b);
    b = build(&v, m4, 1, NULL, 0);
    if (b)
        expect_pieces(b, "abc", 0, "ab|c");
    llm_bpe_free(b);
    vocab_free(&v);
}

static void added_tokens(void)
{
    vocab v = {0};
    vocab_bytes(&v);
    vocab_text(&v, "ab");
    vocab_add(&v, "<s>", LLM_PIECE_CONTROL);
    vocab_add(&v, "<s>x", LLM_PIECE_CONTROL);   /* longest match wins */
    vocab_add(&v, "[u]", LLM_PIECE_USER);
    vocab_add(&v, "a—b", LLM_PIECE_USER);       /* outside the byte alphabet */
    const char *m[] = {"a b"};
    llm_bpe *b = build(&v, m, 1, "gpt2", 0);
    if (!b)
        return;
    expect_pieces(b, "ab<s>ab", 1, "ab|<s>|ab");
    expect_pieces(b, "ab<s>xab", 1, "ab|<s>x|ab");
    /* control tokens only with parse_special; user-defined always */
    expect_pieces(b, "<s>", 0, "<|s|>");
    expect_pieces(b, "a[u]b", 0, "a|[u]|b");
    expect_pieces(b, "ba—bab", 0, "b|a—b|ab");
    /* an added token cuts a word: the regex never sees across it */
    expect_pieces(b, "x[u]y", 1, "x|[u]|y");
    llm_ids ids = {0};
    CHECK(llm_bpe_encode(b, "a—b", 5, 0, &ids) == 0);
    CHECK(ids.len == 1 && ids.data[0] == 256 + 4);
    llm_ids_free(&ids);
    llm_bpe_free(b);
    vocab_free(&v);
}

/* Splits by preset: a vocabulary of the byte tokens and every expected
 * piece, with ignore_merges, gives one token per piece. */
static void regex_splits(void)
{
    static const struct { const char *pre, *text, *want; } cases[] = {
        {"gpt2", "Hello world", "Hello| world"},
        {"gpt2", "don't you'll", "don|'t| you|'ll"},
        {"gpt2", "DON'T", "DON|'|T"},
        {"gpt2", "a  b", "a| | b"},
        {"gpt2", "a   ", "a|   "},
        {"gpt2", "a\n\nb", "a|\n|\n|b"},
        {"gpt2", "x 123456", "x| 123456"},
        {"gpt2", "hi 😀!", "hi| 😀!"},
        {"gpt2", "中文 测试", "中文| 测试"},
        {"gpt2", "f(x);", "f|(|x|);"},
        {"smollm", "x 123456", "x| |1|2|3|4|5|6"},
        {"smollm", "ab12", "ab|1|2"},
        {"llama3", "x 1234567", "x| |123|456|7"},
        {"llama3", "DON'T", "DON|'T"},
        {"llama3", "a\n\nb", "a|\n\n|b"},
        {"llama3", "hello  world", "hello| | world"},
        {"llama3", "(x)", "(x|)"},
        {"qwen2", "x 1234", "x| |1|2|3|4"},
        {"qwen2", "It'S", "It|'S"},
    };
    size_t nc = sizeof cases / sizeof cases[0];
    vocab v = {0};
    vocab_bytes(&v);
    /* every multi-byte expected piece, once */
    for (size_t i = 0; i < nc; i++) {
        char *w = strdup(cases[i].want), *save = w;
        for (char *p = w;; ) {
            char *bar = strchr(p, '|');
            if (bar)
                *bar = 0;
            llm_buf a = {0};
            to_alpha(p, strlen(p), &a);
            int dup = strlen(p) <= 1;
            for (size_t k = 0; k < v.n && !dup; k++)
                dup = strcmp(v.toks[k], a.data) == 0;
            if (!dup)
                vocab_add(&v, a.data, LLM_PIECE_NORMAL);
            llm_buf_free(&a);
            if (!bar)
                break;
            p = bar + 1;
        }
        free(save);
    }
    for (size_t i = 0; i < nc; i++) {
        llm_bpe *b = build(&v, NULL, 0, cases[i].pre, 1);
        if (!b)
            continue;
        llm_buf got = {0};
        pieces_of(b, cases[i].text, strlen(cases[i].text), 0, &got);
        if (strcmp(got.data, cases[i].want) != 0) {
            fprintf(stderr, "%s: '%s' splits as '%s', expected '%s'\n", cases[i].pre,
                    cases[i].text, got.data, cases[i].want);
            failures++;
        }
        llm_buf_free(&got);
        llm_bpe_free(b);
    }
    vocab_free(&v);
}

/* Each byte of invalid UTF-8 is a piece of its own, encoded by its byte
 * token; the valid text around it is split and merged as usual. */
static void invalid_utf8(void)
{
    vocab v = {0};
    vocab_bytes(&v);
    vocab_text(&v, "ab");
    vocab_text(&v, "cd");
    vocab_text(&v, "abcd");
    vocab_text(&v, "\xe4\xb8\xad");
    const char *m[] = {"a b", "c d", "ab cd"};
    llm_bpe *b = build(&v, m, 3, "gpt2", 1);   /* ignore_merges: "中" is one token */
    if (!b)
        return;
    expect_pieces(b, "abcd", 0, "abcd");
    expect_pieces(b, "ab\x80" "cd", 0, "ab|\x80|cd");
    expect_pieces(b, "ab\xff\xfe" "cd", 0, "ab|\xff|\xfe|cd");
    /* a truncated character: two stray bytes; then a whole one */
    expect_pieces(b, "\xe4\xb8" "ab", 0, "\xe4|\xb8|ab");
    expect_pieces(b, "\xe4\xb8\xad", 0, "\xe4\xb8\xad");
    /* overlong and surrogate encodings are invalid too */
    expect_pieces(b, "\xc0\xaf", 0, "\xc0|\xaf");
    expect_pieces(b, "\xed\xa0\x80", 0, "\xed|\xa0|\x80");
    llm_ids ids = {0};
    CHECK(llm_bpe_encode(b, "\xff", 1, 0, &ids) == 0);
    CHECK(ids.len == 1 && ids.data[0] == 0xff);   /* the byte token of 0xFF */
    llm_ids_free(&ids);
    llm_bpe_free(b);
    vocab_free(&v);
}

static uint64_t rng_state = 88172645463325252ull;
static uint32_t rnd(void)
{
    rng_state ^= rng_state << 13;
    rng_state ^= rng_state >> 7;
    rng_state ^= rng_state << 17;
    return (uint32_t)(rng_state >> 16);
}

/* decode(encode(x)) == x for any bytes, and streaming decode agrees. */
static void round_trips(const llm_bpe *b)
{
    static const char *const atoms[] = {"the", " ", "  ", "\n", "中", "😀", "'s", "12",
                                        "<|endoftext|>", "[[sep]]", "\xff", "\xe4\xb8", "\t"};
    llm_ids ids = {0};
    llm_buf text = {0}, stream = {0};
    char s[256];
    for (int iter = 0; iter < 3000; iter++) {
        size_t n = 0;
        if (iter % 2) {
            n = rnd() % sizeof s;
            for (size_t i = 0; i < n; i++)
                s[i] = (char)(rnd() & 0xff);
        } else {
            while (n < 200) {
                const char *a = atoms[rnd() % (sizeof atoms / sizeof atoms[0])];
                memcpy(s + n, a, strlen(a));
                n += strlen(a);
            }
        }
        ids.len = text.len = stream.len = 0;
        int special = iter % 3 == 0;
        CHECK(llm_bpe_encode(b, s, n, special, &ids) == 0);
        CHECK(llm_bpe_decode(b, ids.data, ids.len, &text) == 0);
        for (size_t i = 0; i < ids.len; i++)
            CHECK(llm_bpe_decode_piece(b, ids.data[i], &stream) == 0);
        if (text.len != n || memcmp(text.data, s, n) != 0 || stream.len != n ||
            memcmp(stream.data, s, n) != 0) {
            fprintf(stderr, "round trip failed on a string of %zu bytes (iteration %d)\n", n, iter);
            failures++;
            break;
        }
    }
    llm_ids_free(&ids);
    llm_buf_free(&text);
    llm_buf_free(&stream);
}

/* ---------------------------------------------------------------- reference */

/* A tokenizer with b's vocabulary and merges and a preset's regexes. */
static llm_bpe *with_preset(const llm_bpe *b, const char *pre)
{
    size_t n = llm_bpe_n_tokens(b), nm = llm_bpe_n_merges(b);
    const char **toks = malloc(n * sizeof *toks);
    size_t *lens = malloc(n * sizeof *lens);
    int32_t *types = malloc(n * sizeof *types);
    char **merges = malloc((nm ? nm : 1) * sizeof *merges);
    if (!toks || !lens || !types || !merges)
        abort();
    for (size_t i = 0; i < n; i++) {
        toks[i] = llm_bpe_token(b, (int32_t)i, &lens[i]);
        types[i] = llm_bpe_token_type(b, (int32_t)i);
    }
    for (size_t i = 0; i < nm; i++) {
        int32_t l, r;
        size_t ll, rl;
        CHECK(llm_bpe_merge(b, i, &l, &r) == 0);
        const char *ls = llm_bpe_token(b, l, &ll), *rs = llm_bpe_token(b, r, &rl);
        merges[i] = malloc(ll + rl + 2);
        if (!merges[i])
            abort();
        memcpy(merges[i], ls, ll);
        merges[i][ll] = ' ';
        memcpy(merges[i] + ll + 1, rs, rl);
        merges[i][ll + rl + 1] = 0;
    }
    llm_bpe_spec s;
    memset(&s, 0, sizeof s);
    s.tokens = toks;
    s.token_lens = lens;
    s.n_tokens = n;
    s.types = types;
    s.merges = (const char *const *)merges;
    s.n_merges = nm;
    CHECK(llm_bpe_pre_regexes(pre, &s.regexes, &s.n_regexes) == 0);
    s.ignore_merges = llm_bpe_pre_ignore_merges(pre);
    s.bos_id = s.eos_id = s.unk_id = s.pad_id = -1;
    llm_bpe *out = NULL;
    CHECK(llm_bpe_new(&s, pre, &out) == 0);
    for (size_t i = 0; i < nm; i++)
        free(merges[i]);
    free(merges);
    free(toks);
    free(lens);
    free(types);
    return out;
}

static size_t unhex(const char *h, size_t n, char *out)
{
    size_t k = 0;
    for (size_t i = 0; i + 2 <= n; i += 2) {
        char x[3] = {h[i], h[i + 1], 0};
        out[k++] = (char)strtoul(x, NULL, 16);
    }
    return k;
}

static void ids_string(const llm_ids *ids, llm_buf *out)
{
    out->len = 0;
    CHECK(llm_buf_append(out, "", 0) == 0);
    for (size_t i = 0; i < ids->len; i++) {
        char n[16];
        snprintf(n, sizeof n, i ? " %d" : "%d", (int)ids->data[i]);
        CHECK(llm_buf_append(out, n, strlen(n)) == 0);
    }
}

static const char *const PRESETS[] = {"gpt2", "llama3", "smollm", "qwen2"};

/* Every string of bpe_reference.txt gives HF's ids under each preset. */
/* llm_bpe_encode_spans() on a tokenizer without normaliser: the ids of
 * llm_bpe_encode(), and spans that tile text[0..n) in order, each holding
 * exactly its token's bytes. */
static void check_spans(const llm_bpe *b, const char *text, size_t n, long lineno)
{
    llm_ids ids = {0}, got = {0}, sp = {0};
    llm_buf piece = {0};
    llm_bpe_scratch s;
    memset(&s, 0, sizeof s);
    CHECK(llm_bpe_encode(b, text, n, 0, &ids) == 0);
    CHECK(llm_bpe_encode_spans(b, text, n, &s, &got, &sp) == 0);
    int ok = got.len == ids.len && sp.len == 2 * got.len &&
             (!ids.len || memcmp(got.data, ids.data, ids.len * sizeof *ids.data) == 0);
    size_t at = 0;
    for (size_t i = 0; ok && i < got.len; i++) {
        int32_t s0 = sp.data[2 * i], e0 = sp.data[2 * i + 1];
        piece.len = 0;
        ok = s0 == (int32_t)at && e0 > s0 && (size_t)e0 <= n &&
             llm_bpe_decode_piece(b, got.data[i], &piece) == 0 &&
             piece.len == (size_t)(e0 - s0) && memcmp(piece.data, text + s0, piece.len) == 0;
        at = (size_t)e0;
    }
    if (!ok || at != n) {
        fprintf(stderr, "bpe_reference.txt line %ld: spans do not tile the text\n", lineno);
        failures++;
    }
    llm_bpe_scratch_free(&s);
    llm_ids_free(&ids);
    llm_ids_free(&got);
    llm_ids_free(&sp);
    llm_buf_free(&piece);
}

static long reference(const llm_bpe *base)
{
    char *path = path_in_fixtures("bpe_reference.txt");
    FILE *f = fopen(path, "rb");
    CHECK(f != NULL);
    free(path);
    if (!f)
        return 0;
    llm_bpe *b[4];
    for (int p = 0; p < 4; p++)
        b[p] = with_preset(base, PRESETS[p]);
    char *line = NULL, *text = NULL;
    size_t cap = 0;
    ssize_t k;
    long compared = 0, lineno = 0;
    llm_ids ids = {0};
    llm_buf got = {0};
    while ((k = getline(&line, &cap, f)) > 0) {
        lineno++;
        if (line[k - 1] == '\n')
            line[--k] = 0;
        char *cols[5];
        int nc = 0;
        for (char *p = line; nc < 5; ) {
            cols[nc++] = p;
            char *t = strchr(p, '\t');
            if (!t)
                break;
            *t = 0;
            p = t + 1;
        }
        CHECK(nc == 5);
        if (nc != 5)
            continue;
        text = realloc(text, strlen(cols[0]) / 2 + 1);
        size_t n = unhex(cols[0], strlen(cols[0]), text);
        for (int p = 0; p < 4; p++) {
            if (!b[p])
                continue;
            check_spans(b[p], text, n, lineno);
            ids.len = 0;
            CHECK(llm_bpe_encode(b[p], text, n, 1, &ids) == 0);
            ids_string(&ids, &got);
            compared++;
            if (strcmp(got.data, cols[p + 1]) != 0) {
                fprintf(stderr, "bpe_reference.txt line %ld, %s: ids '%s', HF gives '%s'\n",
                        lineno, PRESETS[p], got.data, cols[p + 1]);
                failures++;
            }
        }
    }
    for (int p = 0; p < 4; p++)
        llm_bpe_free(b[p]);
    free(line);
    free(text);
    llm_ids_free(&ids);
    llm_buf_free(&got);
    fclose(f);
    return compared;
}

/* to_json -> from_json gives the same tokenizer: same JSON again and the
 * same ids on the reference strings. */
static void json_round_trip(const llm_bpe *base)
{
    for (int p = 0; p < 4; p++) {
        llm_bpe *b = with_preset(base, PRESETS[p]);
        if (!b)
            continue;
        CHECK(llm_bpe_set_special(b, LLM_BPE_BOS, 1) == 0);
        CHECK(llm_bpe_set_special(b, LLM_BPE_ADD_BOS, 1) == 0);
        CHECK(llm_bpe_set_special(b, LLM_BPE_EOS, 2) == 0);
        CHECK(llm_bpe_set_special(b, LLM_BPE_PAD, 0) == 0);
        CHECK(llm_bpe_set_special(b, LLM_BPE_ADD_EOS, 2) != 0);
        CHECK(llm_bpe_set_special(b, LLM_BPE_UNK, 99999) != 0);
        llm_buf j1 = {0}, j2 = {0};
        CHECK(llm_bpe_to_json(b, &j1) == 0);
        CHECK(j1.len > 0 && j1.data[0] == '{');
        llm_bpe *c = NULL;
        CHECK(llm_bpe_from_json(j1.data, j1.len, "round-trip", &c) == 0);
        if (c) {
            CHECK(llm_bpe_to_json(c, &j2) == 0);
            CHECK(j1.len == j2.len && memcmp(j1.data, j2.data, j1.len) == 0);
            CHECK(llm_bpe_special(c, LLM_BPE_BOS) == 1);
            CHECK(llm_bpe_special(c, LLM_BPE_EOS) == 2);
            CHECK(llm_bpe_special(c, LLM_BPE_PAD) == 0);
            CHECK(llm_bpe_special(c, LLM_BPE_ADD_BOS) == 1);
            CHECK(llm_bpe_special(c, LLM_BPE_ADD_EOS) == 0);
            const char *s = "Hello  world 12345 don't 中文 😀\n\n<|im_start|>x\xff";
            llm_ids x = {0}, y = {0};
            CHECK(llm_bpe_encode(b, s, strlen(s), 1, &x) == 0);
            CHECK(llm_bpe_encode(c, s, strlen(s), 1, &y) == 0);
            CHECK(x.len == y.len && memcmp(x.data, y.data, x.len * sizeof *x.data) == 0);
            llm_ids_free(&x);
            llm_ids_free(&y);
        }
        llm_bpe_free(c);
        llm_buf_free(&j1);
        llm_buf_free(&j2);
        llm_bpe_free(b);
    }
}

/* Hostile or unsupported tokenizer.json: refused with a message naming the
 * file and what is wrong. */
/* normalizer NFC (Qwen2's tokenizer.json): a decomposed accent encodes as
 * the composed one, invalid bytes pass through as before, and the
 * normalizer survives our tokenizer.json. HF's ids: tests/sh/bpe-reference.sh. */
static void nfc_normalizer(const char *json, size_t len)
{
    const char *key = "\"normalizer\":null";
    const char *at = strstr(json, key);
    CHECK(at != NULL);
    if (!at)
        return;
    llm_buf j = {0};
    CHECK(llm_buf_append(&j, json, (size_t)(at - json)) == 0);
    const char *nfc = "\"normalizer\":{\"type\":\"NFC\"}";
    CHECK(llm_buf_append(&j, nfc, strlen(nfc)) == 0);
    size_t rest = len - (size_t)(at - json) - strlen(key);
    CHECK(llm_buf_append(&j, at + strlen(key), rest) == 0);
    llm_bpe *b = NULL, *plain = NULL, *again = NULL;
    CHECK(llm_bpe_from_json(j.data, j.len, "nfc", &b) == 0);
    CHECK(llm_bpe_from_json(json, len, "plain", &plain) == 0);
    if (b && plain) {
        /* "cafe\u0301 \xff" with NFC = "caf\u00e9 \xff" without. */
        llm_ids x = {0}, y = {0}, z = {0};
        CHECK(llm_bpe_encode(b, "cafe\xcc\x81 \xff", 8, 0, &x) == 0);
        CHECK(llm_bpe_encode(plain, "caf\xc3\xa9 \xff", 7, 0, &y) == 0);
        CHECK(llm_bpe_encode(plain, "cafe\xcc\x81 \xff", 8, 0, &z) == 0);
        CHECK(x.len == y.len && memcmp(x.data, y.data, x.len * sizeof *x.data) == 0);
        CHECK(!(z.len == y.len && memcmp(z.data, y.data, z.len * sizeof *z.data) == 0));
        /* Offsets lead back to the caller's bytes: the two byte tokens of
         * the composed "\u00e9" both span the decomposed "e\u0301" [3, 6);
         * the rest are as without a normaliser. */
        llm_ids w = {0}, sp = {0};
        llm_bpe_scratch sc;
        memset(&sc, 0, sizeof sc);
        const char *t8 = "cafe\xcc\x81 \xff ok";
        static const int32_t want[] = { 0, 1, 1, 2, 2, 3, 3, 6, 3, 6, 6, 7, 7, 8, 8, 10, 10, 11 };
        CHECK(llm_bpe_encode_spans(b, t8, 11, &sc, &w, &sp) == 0);
        CHECK(sp.len == sizeof want / sizeof *want && sp.len == 2 * w.len &&
              memcmp(sp.data, want, sizeof want) == 0);
        llm_bpe_scratch_free(&sc);
        llm_ids_free(&w);
        llm_ids_free(&sp);
        llm_buf out = {0};
        CHECK(llm_bpe_to_json(b, &out) == 0);
        CHECK(out.data && strstr(out.data, "\"normalizer\":{\"type\":\"NFC\"}") != NULL);
        CHECK(llm_bpe_from_json(out.data, out.len, "again", &again) == 0);
        z.len = 0;
        if (again)
            CHECK(llm_bpe_encode(again, "cafe\xcc\x81 \xff", 8, 0, &z) == 0 && z.len == x.len &&
                  memcmp(z.data, x.data, x.len * sizeof *x.data) == 0);
        llm_buf_free(&out);
        llm_ids_free(&x);
        llm_ids_free(&y);
        llm_ids_free(&z);
    }
    llm_bpe_free(b);
    llm_bpe_free(plain);
    llm_bpe_free(again);
    llm_buf_free(&j);
}

static void hostile_json(void)
{
#define M "\"model\":{\"type\":\"BPE\",\"vocab\":{\"a\":0,\"b\":1,\"ab\":2},\"merges\":[\"a b\"]"
#define P "\"pre_tokenizer\":{\"type\":\"ByteLevel\",\"use_regex\":false}"
    static const struct { const char *json, *msg; int rc; } cases[] = {
        {"{" M "}," P "}", NULL, LLM_OK},
        {"{\"model\":{\"type\":\"BPE\",\"vocab\":{\"a\":0,\"b\":1,\"ab\":2},"
         "\"merges\":[[\"a\",\"b\"]]}," P "}", NULL, LLM_OK},
        {"[]", "not an object", LLM_ERR_FORMAT},
        {"{" P "}", "no model object", LLM_ERR_FORMAT},
        {"{" M "}}", "no pre_tokenizer", LLM_ERR_UNSUPPORTED},
        {"{\"model\":{\"type\":\"BPE\",\"vocab\":{\"a\":0,\"b\":1},\"merges\":[\"a c\"]}," P "}",
         "'c' is not a token", LLM_ERR_FORMAT},
        {"{\"model\":{\"type\":\"BPE\",\"vocab\":{\"a\":0,\"b\":1},\"merges\":[\"a b\"]}," P "}",
         "merged token is not in the vocabulary", LLM_ERR_FORMAT},
        {"{\"model\":{\"type\":\"BPE\",\"vocab\":{\"a\":0,\"b\":2},\"merges\":[]}," P "}",
         "a model.vocab id is not an integer", LLM_ERR_FORMAT},
        {"{\"model\":{\"type\":\"BPE\",\"vocab\":{\"a\":0,\"b\":0},\"merges\":[]}," P "}",
         "id 0 is given to both", LLM_ERR_FORMAT},
        {"{\"model\":{\"type\":\"BPE\",\"vocab\":{\"a\":0,\"b\":1,\"c\":3},"
         "\"merges\":[]}," P ",\"added_tokens\":[{\"id\":0,\"content\":\"a\"}]}",
         "no token has id 2", LLM_ERR_FORMAT},
        {"{\"model\":{\"type\":\"BPE\",\"vocab\":{\"a\":-1},\"merges\":[]}," P "}",
         "not an integer", LLM_ERR_FORMAT},
        {"{\"model\":{\"type\":\"BPE\",\"vocab\":{\"a\":0,\"b\":1,\"ab\":2},"
         "\"merges\":[\"a b\",\"a b\"]}," P "}", "repeats merge 0", LLM_ERR_FORMAT},
        {"{\"model\":{\"type\":\"BPE\",\"vocab\":{\"a\":0},\"merges\":[\"ab\"]}," P "}",
         "separated by one space", LLM_ERR_FORMAT},
        {"{\"model\":{\"type\":\"BPE\",\"vocab\":{\"a\":0},\"merges\":[7]}," P "}",
         "neither", LLM_ERR_FORMAT},
        {"{\"model\":{\"type\":\"BPE\",\"vocab\":{\"\":0},\"merges\":[]}," P "}",
         "token 0 is empty", LLM_ERR_FORMAT},
        {"{\"model\":{\"type\":\"WordPiece\",\"vocab\":{\"a\":0}}," P "}",
         "model type 'WordPiece'", LLM_ERR_UNSUPPORTED},
        {"{" M ",\"dropout\":0.1}," P "}", "model.dropout", LLM_ERR_UNSUPPORTED},
        {"{" M ",\"continuing_subword_prefix\":\"##\"}," P "}", "continuing_subword_prefix",
         LLM_ERR_UNSUPPORTED},
        {"{" M ",\"end_of_word_suffix\":\"</w>\"}," P "}", "end_of_word_suffix",
         LLM_ERR_UNSUPPORTED},
        {"{" M ",\"byte_fallback\":true}," P "}", "byte_fallback", LLM_ERR_UNSUPPORTED},
        {"{" M "}," P ",\"normalizer\":{\"type\":\"NFKC\"}}", "normalizer 'NFKC'",
         LLM_ERR_UNSUPPORTED},
        {"{" M "},\"pre_tokenizer\":{\"type\":\"Metaspace\"}}", "pre_tokenizer 'Metaspace'",
         LLM_ERR_UNSUPPORTED},
        {"{" M "},\"pre_tokenizer\":{\"type\":\"Split\",\"pattern\":{\"Regex\":\"a\"},"
         "\"behavior\":\"Removed\"}}", "behavior 'Removed'", LLM_ERR_UNSUPPORTED},
        {"{" M "},\"pre_tokenizer\":{\"type\":\"Sequence\",\"pretokenizers\":[{\"type\":"
         "\"Split\",\"pattern\":{\"Regex\":\"(a\"},\"behavior\":\"Isolated\"},{\"type\":"
         "\"ByteLevel\"}]}}", "does not compile", LLM_ERR_FORMAT},
        {"{" M "},\"pre_tokenizer\":{\"type\":\"Digits\"}}", "has no ByteLevel",
         LLM_ERR_UNSUPPORTED},
        {"{" M "},\"pre_tokenizer\":{\"type\":\"ByteLevel\",\"add_prefix_space\":true}}",
         "add_prefix_space", LLM_ERR_UNSUPPORTED},
        {"{" M "}," P ",\"decoder\":{\"type\":\"Metaspace\"}}", "decoder 'Metaspace'",
         LLM_ERR_UNSUPPORTED},
        {"{" M "}," P ",\"post_processor\":{\"type\":\"BertProcessing\"}}",
         "post_processor 'BertProcessing'", LLM_ERR_UNSUPPORTED},
        {"{" M "}," P ",\"added_tokens\":[{\"id\":3,\"content\":\"<s>\",\"lstrip\":true}]}",
         "lstrip true", LLM_ERR_UNSUPPORTED},
        {"{" M "}," P ",\"added_tokens\":[{\"id\":1,\"content\":\"<s>\"}]}",
         "given to both", LLM_ERR_FORMAT},
        {"{" M ",\"unk_token\":\"zz\"}," P "}", "unk_token is not a token", LLM_ERR_FORMAT},
        {"{" M ",\"llm\":{\"bos_id\":7}}," P "}", "model.llm.bos_id", LLM_ERR_FORMAT},
        {"{" M ",\"llm\":{\"add_bos\":1}}," P "}", "add_bos is set but", LLM_ERR_FORMAT},
        {"{" M "}," P ",\"post_processor\":{\"type\":\"TemplateProcessing\",\"single\":["
         "{\"SpecialToken\":{\"id\":\"q\"}},{\"Sequence\":{\"id\":\"A\"}}]}}",
         "special token 'q' is not a token", LLM_ERR_FORMAT},
        {"{\"model\":{\"type\":\"BPE\",\"vocab\":{\"a\":0,\"a\":1},\"merges\":[]}," P "}",
         "repeats token 0", LLM_ERR_FORMAT},
        {"{\"model\":{\"type\":\"BPE\",\"vocab\":{\"\\u00ff\\u00fe\":0}},\"merges\":[]," P "}",
         "model.merges is not an array", LLM_ERR_FORMAT},
        {"{" M "}," P, "invalid JSON", LLM_ERR_FORMAT},
    };
#undef M
#undef P
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        llm_bpe *b = NULL;
        int rc = llm_bpe_from_json(cases[i].json, strlen(cases[i].json), "hostile.json", &b);
        if (rc != cases[i].rc || (cases[i].msg && (!strstr(llm_errmsg(), cases[i].msg) ||
                                                   !strstr(llm_errmsg(), "hostile.json")))) {
            fprintf(stderr, "hostile case %zu: rc %d (expected %d), message '%s' "
                    "(expected to contain '%s')\n", i, rc, cases[i].rc, llm_errmsg(),
                    cases[i].msg ? cases[i].msg : "");
            failures++;
        }
        CHECK((rc == 0) == (b != NULL));
        llm_bpe_free(b);
    }
    /* a Split with a String pattern is literal, and the llm member is read */
    const char *lit = "{\"model\":{\"type\":\"BPE\",\"vocab\":{\"a\":0,\"+\":1,\"b\":2},"
                      "\"merges\":[]},\"pre_tokenizer\":{\"type\":\"Sequence\",\"pretokenizers\":"
                      "[{\"type\":\"Split\",\"pattern\":{\"String\":\"+\"},\"behavior\":"
                      "\"Isolated\",\"invert\":false},{\"type\":\"ByteLevel\",\"use_regex\":false}]}}";
    llm_bpe *b = NULL;
    CHECK(llm_bpe_from_json(lit, strlen(lit), "lit", &b) == 0);
    if (b) {
        CHECK(llm_bpe_n_regexes(b) == 1 && strcmp(llm_bpe_regex(b, 0), "\\+") == 0);
        llm_ids ids = {0};
        CHECK(llm_bpe_encode(b, "a+b", 3, 0, &ids) == 0);
        CHECK(ids.len == 3 && ids.data[1] == 1);
        /* "c" has no byte token and there is no unk */
        CHECK(llm_bpe_encode(b, "ac", 2, 0, &ids) == LLM_ERR_RANGE);
        CHECK(ids.len == 3);    /* untouched on error */
        llm_ids_free(&ids);
        llm_bpe_free(b);
    }
}

/* ---------------------------------------------------------------- llm_tok */

static void write_file(const char *path, const void *p, size_t n)
{
    FILE *f = fopen(path, "wb");
    if (!f || fwrite(p, 1, n, f) != n || fclose(f) != 0) {
        perror(path);
        exit(1);
    }
}

static void tok_wrapper(const char *json_path)
{
    llm_tok *t = NULL;
    CHECK(llm_tok_load(json_path, &t) == 0);
    llm_tok *u = NULL;
    CHECK(llm_tok_load_hf_json(json_path, &u) == 0);
    if (!t || !u) {
        llm_tok_free(t);
        llm_tok_free(u);
        return;
    }
    CHECK(strcmp(llm_tok_model_type(t), "bytelevel-bpe") == 0);
    CHECK(llm_tok_format(t) == LLM_TOK_HF_JSON);
    CHECK(llm_tok_vocab_size(t) == 1201);
    CHECK(llm_tok_bos_id(t) == -1 && llm_tok_eos_id(t) == -1 && llm_tok_add_bos(t) == 0);
    CHECK(llm_tok_piece_type(t, 0) == LLM_PIECE_CONTROL);
    CHECK(llm_tok_piece_type(t, 1200) == LLM_PIECE_USER);
    CHECK(strcmp(llm_tok_piece(t, 0), "<|endoftext|>") == 0);
    CHECK(llm_tok_piece_id(t, "<|endoftext|>") == 0);
    CHECK(llm_tok_piece_id(t, "no such piece") == -1);
    CHECK(llm_tok_piece(t, 5000) == NULL);
    const void *bytes;
    size_t len;
    llm_tok_bytes(t, &bytes, &len);
    CHECK(len > 0 && ((const char *)bytes)[0] == '{');
    /* encode: control tokens stay text, user-defined ones match */
    const char *s = "Hello <|endoftext|> [[sep]] 中文\xff";
    llm_ids ids = {0};
    llm_buf text = {0}, pieces = {0}, stream = {0};
    CHECK(llm_tok_encode(t, s, strlen(s), &ids) == 0);
    int has_eot = 0, has_sep = 0;
    for (size_t i = 0; i < ids.len; i++) {
        has_eot |= ids.data[i] == 0;
        has_sep |= ids.data[i] == 1200;
        CHECK(llm_tok_decode_piece(t, i ? ids.data[i - 1] : -1, ids.data[i], &stream) == 0);
    }
    CHECK(!has_eot && has_sep);
    CHECK(llm_tok_decode(t, ids.data, ids.len, &text) == 0);
    CHECK(text.len == strlen(s) && memcmp(text.data, s, text.len) == 0);
    CHECK(stream.len == strlen(s) && memcmp(stream.data, s, stream.len) == 0);
    CHECK(llm_tok_encode_pieces(t, "Hello world", 11, &pieces) == 0);
    CHECK(strstr(pieces.data, "\xc4\xa0") != NULL);   /* "Ġ" */
    int32_t bad = 1201;
    CHECK(llm_tok_decode(t, &bad, 1, &text) == LLM_ERR_RANGE);
    /* the bytes load back (as a model file would hold them) */
    write_file("bpe-copy.json", bytes, len);
    llm_tok *c = NULL;
    CHECK(llm_tok_load("bpe-copy.json", &c) == 0);
    if (c) {
        llm_ids ids2 = {0};
        CHECK(llm_tok_encode(c, s, strlen(s), &ids2) == 0);
        CHECK(ids2.len == ids.len && !memcmp(ids2.data, ids.data, ids.len * sizeof *ids.data));
        llm_ids_free(&ids2);
    }
    llm_tok_free(c);
    remove("bpe-copy.json");
    write_file("broken.json", "{\"model\":7}", 11);
    CHECK(llm_tok_load("broken.json", &c) == LLM_ERR_FORMAT && c == NULL);
    CHECK(strstr(llm_errmsg(), "broken.json") != NULL);
    remove("broken.json");
    llm_ids_free(&ids);
    llm_buf_free(&text);
    llm_buf_free(&pieces);
    llm_buf_free(&stream);
    llm_tok_free(t);
    llm_tok_free(u);
}

/* llm_tok_from_vocab("gpt2") over the fixture's tokens and merges gives
 * the ids of llm_bpe with the same preset. */
static void from_vocab(const llm_bpe *base)
{
    size_t n = llm_bpe_n_tokens(base), nm = llm_bpe_n_merges(base);
    const char **toks = malloc(n * sizeof *toks);
    int32_t *types = malloc(n * sizeof *types);
    char **merges = malloc(nm * sizeof *merges);
    if (!toks || !types || !merges)
        abort();
    for (size_t i = 0; i < n; i++) {
        toks[i] = llm_bpe_token(base, (int32_t)i, NULL);
        types[i] = llm_bpe_token_type(base, (int32_t)i);
    }
    for (size_t i = 0; i < nm; i++) {
        int32_t l, r;
        CHECK(llm_bpe_merge(base, i, &l, &r) == 0);
        size_t k = strlen(toks[l]) + strlen(toks[r]) + 2;
        merges[i] = malloc(k);
        snprintf(merges[i], k, "%s %s", toks[l], toks[r]);
    }
    llm_tok_vocab v;
    memset(&v, 0, sizeof v);
    v.model = "gpt2";
    v.tokens = toks;
    v.n_tokens = n;
    v.types = types;
    v.merges = (const char *const *)merges;
    v.n_merges = nm;
    v.pre = "smollm";
    v.bos_id = 1;
    v.eos_id = 2;
    v.unk_id = v.pad_id = -1;
    v.add_bos = v.add_eos = v.add_space_prefix = -1;
    llm_tok *t = NULL;
    CHECK(llm_tok_from_vocab(&v, "vocab", &t) == 0);
    llm_bpe *ref = with_preset(base, "smollm");
    if (t && ref) {
        CHECK(llm_tok_bos_id(t) == 1 && llm_tok_eos_id(t) == 2 && llm_tok_add_bos(t) == 0);
        const char *s = "x 12345 don't stop, 中文 😀😀  \n";
        llm_ids a = {0}, b = {0};
        CHECK(llm_tok_encode(t, s, strlen(s), &a) == 0);
        CHECK(llm_bpe_encode(ref, s, strlen(s), 0, &b) == 0);
        CHECK(a.len == b.len && !memcmp(a.data, b.data, a.len * sizeof *a.data));
        llm_ids_free(&a);
        llm_ids_free(&b);
    }
    llm_tok_free(t);
    v.pre = "no-such-pre";
    CHECK(llm_tok_from_vocab(&v, "vocab", &t) == LLM_ERR_UNSUPPORTED && t == NULL);
    v.pre = NULL;
    v.model = "bert";
    CHECK(llm_tok_from_vocab(&v, "vocab", &t) == LLM_ERR_INVALID && t == NULL);
    v.model = "gpt2";
    v.bos_id = (int)n;
    CHECK(llm_tok_from_vocab(&v, "vocab", &t) == LLM_ERR_FORMAT && t == NULL);
    v.bos_id = 1;
    toks[5] = toks[6];
    CHECK(llm_tok_from_vocab(&v, "vocab", &t) == LLM_ERR_FORMAT && t == NULL);
    CHECK(strstr(llm_errmsg(), "repeats") != NULL);
    llm_bpe_free(ref);
    for (size_t i = 0; i < nm; i++)
        free(merges[i]);
    free(merges);
    free(toks);
    free(types);
}

/* ---------------------------------------------------------------- driver */

static int drive_lines(const llm_bpe *b, const llm_tok *t)
{
    char *line = NULL, *text = NULL;
    size_t cap = 0;
    ssize_t k;
    llm_ids ids = {0};
    llm_buf out = {0}, dec = {0};
    int bad = 0;
    long lineno = 0;
    while ((k = getline(&line, &cap, stdin)) >= 0) {
        lineno++;
        if (k && line[k - 1] == '\n')
            line[--k] = 0;
        text = realloc(text, (size_t)k / 2 + 1);
        size_t n = unhex(line, (size_t)k, text);
        ids.len = dec.len = 0;
        int rc = b ? llm_bpe_encode(b, text, n, 1, &ids) : llm_tok_encode(t, text, n, &ids);
        if (rc) {
            fprintf(stderr, "line %ld: %s\n", lineno, llm_errmsg());
            return 1;
        }
        rc = b ? llm_bpe_decode(b, ids.data, ids.len, &dec) : llm_tok_decode(t, ids.data, ids.len, &dec);
        int same = !rc && dec.len == n && memcmp(dec.data, text, n) == 0;
        if (!same && !rc && b && llm_bpe_nfc(b)) {
            /* NFC: decode gives the normalised text, which encodes the same */
            llm_ids again = {0};
            same = llm_bpe_encode(b, dec.data, dec.len, 1, &again) == 0 && again.len == ids.len &&
                   memcmp(again.data, ids.data, ids.len * sizeof *ids.data) == 0;
            llm_ids_free(&again);
        }
        if (!same) {
            fprintf(stderr, "line %ld: decode(encode(x)) != x\n", lineno);
            bad = 1;
        }
        ids_string(&ids, &out);
        puts(out.data);
    }
    free(line);
    free(text);
    llm_ids_free(&ids);
    llm_buf_free(&out);
    llm_buf_free(&dec);
    return bad;
}

static llm_bpe *load_json_file(const char *path, const char *pre)
{
    size_t len;
    char *j = read_all(path, &len);
    llm_bpe *b = NULL;
    if (llm_bpe_from_json(j, len, path, &b)) {
        fprintf(stderr, "test_bpe: %s\n", llm_errmsg());
        exit(1);
    }
    free(j);
    if (strcmp(pre, "json") != 0) {
        llm_bpe *p = with_preset(b, pre);
        llm_bpe_free(b);
        if (!p)
            exit(1);
        b = p;
    }
    return b;
}

/* VOCAB.json: {"model": "gpt2", "pre": "smollm", "tokens": [...],
 * "types": [...], "merges": [...]}, as a GGUF holds them. */
static llm_tok *load_vocab(const char *path)
{
    size_t len;
    char *text = read_all(path, &len);
    llm_json *j = NULL;
    if (llm_json_parse(text, len, path, 0, &j)) {
        fprintf(stderr, "test_bpe: %s\n", llm_errmsg());
        exit(1);
    }
    const llm_json_node *r = llm_json_root(j);
    const llm_json_node *tk = llm_json_get(r, "tokens"), *ty = llm_json_get(r, "types"),
                        *mg = llm_json_get(r, "merges");
    if (!tk || !ty || !mg || tk->count != ty->count) {
        fprintf(stderr, "test_bpe: %s: tokens, types, merges needed\n", path);
        exit(1);
    }
    const char **toks = malloc(tk->count * sizeof *toks);
    size_t *lens = malloc(tk->count * sizeof *lens);
    int32_t *types = malloc(tk->count * sizeof *types);
    const char **merges = malloc((mg->count + 1) * sizeof *merges);
    size_t i = 0;
    for (const llm_json_node *c = tk->child; c; c = c->next, i++) {
        toks[i] = c->str;
        lens[i] = c->len;
    }
    i = 0;
    for (const llm_json_node *c = ty->child; c; c = c->next, i++) {
        int64_t v = 1;
        llm_json_int64(c, &v);
        types[i] = (int32_t)v;
    }
    i = 0;
    for (const llm_json_node *c = mg->child; c; c = c->next, i++)
        merges[i] = c->str;
    llm_tok_vocab v;
    memset(&v, 0, sizeof v);
    const llm_json_node *model = llm_json_get(r, "model"), *pre = llm_json_get(r, "pre");
    v.model = model ? model->str : "gpt2";
    v.pre = pre ? pre->str : NULL;
    v.tokens = toks;
    v.token_lens = lens;
    v.n_tokens = tk->count;
    v.types = types;
    v.merges = merges;
    v.n_merges = mg->count;
    v.bos_id = v.eos_id = v.unk_id = v.pad_id = -1;
    v.add_bos = v.add_eos = v.add_space_prefix = -1;
    llm_tok *t = NULL;
    if (llm_tok_from_vocab(&v, path, &t)) {
        fprintf(stderr, "test_bpe: %s\n", llm_errmsg());
        exit(1);
    }
    free(toks);
    free(lens);
    free(types);
    free(merges);
    llm_json_free(j);
    free(text);
    return t;
}

static int bench(const llm_bpe *b, const char *path)
{
    size_t len;
    char *text = read_all(path, &len);
    llm_ids ids = {0};
    llm_bpe_scratch s;
    memset(&s, 0, sizeof s);
    struct timespec t0, t1;
    size_t tokens = 0, lines = 0;
    double best = 1e30;
    for (int rep = 0; rep < 3; rep++) {
        clock_gettime(CLOCK_MONOTONIC, &t0);
        tokens = lines = 0;
        for (size_t at = 0; at < len;) {
            const char *nl = memchr(text + at, '\n', len - at);
            size_t end = nl ? (size_t)(nl - text) : len;
            ids.len = 0;
            if (llm_bpe_encode_with(b, text + at, end - at, 1, &s, &ids))
                return 1;
            tokens += ids.len;
            lines++;
            at = end + 1;
        }
        clock_gettime(CLOCK_MONOTONIC, &t1);
        double sec = (double)(t1.tv_sec - t0.tv_sec) + 1e-9 * (double)(t1.tv_nsec - t0.tv_nsec);
        if (sec < best)
            best = sec;
    }
    printf("%zu lines, %zu bytes, %zu tokens in %.3f s: %.2f MB/s, %.0f tokens/s\n", lines, len,
           tokens, best, (double)len / best / 1e6, (double)tokens / best);
    llm_bpe_scratch_free(&s);
    llm_ids_free(&ids);
    free(text);
    return 0;
}

int main(int argc, char **argv)
{
    if (argc > 1) {
        if (argc == 4 && strcmp(argv[1], "encode") == 0) {
            llm_bpe *b = load_json_file(argv[2], argv[3]);
            int rc = drive_lines(b, NULL);
            llm_bpe_free(b);
            return rc;
        }
        if (argc == 4 && strcmp(argv[1], "json") == 0) {
            llm_bpe *b = load_json_file(argv[2], argv[3]);
            llm_buf j = {0};
            int rc = llm_bpe_to_json(b, &j);
            if (!rc)
                fwrite(j.data, 1, j.len, stdout);
            llm_buf_free(&j);
            llm_bpe_free(b);
            return rc ? 1 : 0;
        }
        if (argc == 3 && strcmp(argv[1], "vocab") == 0) {
            llm_tok *t = load_vocab(argv[2]);
            int rc = drive_lines(NULL, t);
            llm_tok_free(t);
            return rc;
        }
        if (argc == 5 && strcmp(argv[1], "bench") == 0) {
            llm_bpe *b = load_json_file(argv[2], argv[3]);
            int rc = bench(b, argv[4]);
            llm_bpe_free(b);
            return rc;
        }
        fprintf(stderr, "usage: test_bpe [encode|json TOKENIZER.json PRESET | vocab VOCAB.json | "
                "bench TOKENIZER.json PRESET TEXT] (hex lines on stdin)\n");
        return 2;
    }
    const char *const *re;
    size_t n;
    CHECK(llm_bpe_pre_regexes("llama-bpe", &re, &n) == 0 && n == 1);
    CHECK(llm_bpe_pre_regexes("smollm", &re, &n) == 0 && n == 2);
    CHECK(llm_bpe_pre_regexes("nope", &re, &n) == LLM_ERR_UNSUPPORTED);
    merges_and_ties();
    added_tokens();
    regex_splits();
    invalid_utf8();
    hostile_json();
    char *path = path_in_fixtures("bpe_tiny.json");
    size_t len;
    char *json = read_all(path, &len);
    llm_bpe *base = NULL;
    CHECK(llm_bpe_from_json(json, len, path, &base) == 0);
    long compared = 0;
    if (base) {
        CHECK(llm_bpe_n_tokens(base) == 1201);
        CHECK(llm_bpe_n_regexes(base) == 1);
        round_trips(base);
        compared = reference(base);
        json_round_trip(base);
        nfc_normalizer(json, len);
        tok_wrapper(path);
        from_vocab(base);
    }
    llm_bpe_free(base);
    free(json);
    free(path);
    printf("test_bpe: %ld reference encodings compared, %d failures\n", compared, failures);
    return failures ? 1 : 0;
}
