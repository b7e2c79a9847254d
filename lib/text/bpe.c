/* bpe.c: byte-level BPE tokenizers (GPT-2 style), id for id equal to Hugging
 * Face `tokenizers`: building from a vocabulary and merges, encoding,
 * decoding, and reading and writing tokenizer.json. See bpe.h for the rules.
 *
 * Regexes go through PCRE2 (UTF + UCP, JIT when available): the peers'
 * pre-tokenizers need Unicode property classes, lookahead and (?i:), with
 * Oniguruma's meaning, which HF tokenizers uses.
 *
 * tokenizer.json, as read: model {type "BPE", vocab object, merges as "a b"
 * strings or [a, b] pairs, unk_token, ignore_merges; dropout,
 * continuing_subword_prefix, end_of_word_suffix and byte_fallback true are
 * refused by name}; added_tokens (special -> control, else user-defined;
 * single_word, lstrip, rstrip refused); normalizer null or NFC (Qwen2's;
 * through utf8proc, each run of valid UTF-8 composed on its own; others
 * refused by name); pre_tokenizer a ByteLevel (add_prefix_space
 * false; use_regex true adds the GPT-2 regex) after any Split (Regex or
 * String pattern, behavior Isolated, invert false) and Digits, possibly in
 * Sequences; decoder ByteLevel or null; post_processor null, ByteLevel,
 * TemplateProcessing (its special token before $A is BOS, after it EOS) or
 * a Sequence of them. truncation and padding are ignored (batch options).
 * Special ids and flags: model.llm {bos_id, eos_id, unk_id, pad_id,
 * add_bos, add_eos, types} when present (we write it; HF ignores unknown
 * members of model), else derived from the post_processor and unk_token. */
#define PCRE2_CODE_UNIT_WIDTH 8
#include <pcre2.h>
#include <utf8proc.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bpe.h"

#define MAX_REGEXES 32
/* Per regex match: bounds the work a hostile pattern can cause. */
#define MATCH_LIMIT 10000000u

struct llm_bpe_span {
    size_t off, len;
    int32_t id;             /* >= 0: an added token; SPAN_TEXT; SPAN_BYTE */
};
enum { SPAN_TEXT = -1, SPAN_BYTE = -2 };

struct llm_bpe_sym {
    int32_t id;             /* -1: merged into its left neighbour */
    int32_t prev, next;     /* -1: none */
};

struct llm_bpe_pair {
    int32_t rank, left, right, lid, rid, merged;
};

struct llm_bpe {
    size_t n;                   /* tokens */
    char *blob;                 /* token strings, each NUL-terminated */
    size_t *off;                /* (n + 1) into blob; token i is off[i]..off[i+1]-1 */
    unsigned char *type;        /* (n) GGUF token type */
    int32_t *vhash;             /* token string -> id, open addressing, -1 empty */
    size_t vmask;
    char *dec;                  /* bytes of each token */
    size_t *dec_off;            /* (n + 1) */
    int32_t byte_tok[256];      /* the token of each byte, or -1 */
    /* merges: (left id, right id) -> rank and merged id */
    size_t n_merges;
    int32_t *m_left, *m_right;  /* (n_merges), for writing */
    uint64_t *pkey;             /* open addressing; PAIR_EMPTY empty */
    int32_t *prank, *pmerged;
    size_t pmask;
    /* pre-tokenizer */
    size_t n_re;
    char *re_src[MAX_REGEXES];
    pcre2_code *re[MAX_REGEXES];
    pcre2_match_context *mctx;
    /* added tokens (types 3 and 4), chained by first byte */
    int32_t first[256];         /* first added token starting with a byte, or -1 */
    int32_t *chain;             /* (n) next added token with the same first byte */
    size_t n_added;
    int special[LLM_BPE_N_SPECIAL];
    int ignore_merges;
    int nfc;                    /* normalizer NFC before everything else */
};

#define PAIR_EMPTY UINT64_MAX

/* ---------------------------------------------------------------- presets */

static const char RE_GPT2[] =
    "'s|'t|'re|'ve|'m|'ll|'d| ?\\p{L}+| ?\\p{N}+| ?[^\\s\\p{L}\\p{N}]+|\\s+(?!\\S)|\\s+";
static const char RE_LLAMA3[] =
    "(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}{1,3}|"
    " ?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+";
static const char RE_QWEN2[] =
    "(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}|"
    " ?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+";
static const char RE_DIGIT[] = "\\p{N}";

static const char *const PRE_GPT2[] = {RE_GPT2};
static const char *const PRE_LLAMA3[] = {RE_LLAMA3};
static const char *const PRE_SMOLLM[] = {RE_DIGIT, RE_GPT2};
static const char *const PRE_QWEN2[] = {RE_QWEN2};

static const struct {
    const char *name;
    const char *const *re;
    size_t n;
    int ignore_merges;
} presets[] = {
    {"default", PRE_GPT2, 1, 0}, {"gpt2", PRE_GPT2, 1, 0}, {"gpt-2", PRE_GPT2, 1, 0},
    {"phi-2", PRE_GPT2, 1, 0}, {"mpt", PRE_GPT2, 1, 0},
    {"olmo", PRE_GPT2, 1, 0}, {"jais", PRE_GPT2, 1, 0},
    {"llama3", PRE_LLAMA3, 1, 1}, {"llama-bpe", PRE_LLAMA3, 1, 1},
    {"smollm", PRE_SMOLLM, 2, 0}, {"starcoder", PRE_SMOLLM, 2, 0},
    {"refact", PRE_SMOLLM, 2, 0}, {"command-r", PRE_SMOLLM, 2, 0},
    {"codeshell", PRE_SMOLLM, 2, 0}, {"exaone", PRE_SMOLLM, 2, 0},
    {"minerva", PRE_SMOLLM, 2, 0},
    {"qwen2", PRE_QWEN2, 1, 0}, {"qwen2.5", PRE_QWEN2, 1, 0},
    {"stablelm2", PRE_QWEN2, 1, 0}, {"deepseek-r1-qwen", PRE_QWEN2, 1, 0},
};

int llm_bpe_pre_regexes(const char *name, const char *const **re, size_t *n)
{
    for (size_t i = 0; name && i < sizeof presets / sizeof presets[0]; i++) {
        if (strcmp(presets[i].name, name) == 0) {
            *re = presets[i].re;
            *n = presets[i].n;
            return LLM_OK;
        }
    }
    return llm_fail(LLM_ERR_UNSUPPORTED, "unknown pre-tokenizer '%s'", name ? name : "(null)");
}

int llm_bpe_pre_ignore_merges(const char *name)
{
    for (size_t i = 0; name && i < sizeof presets / sizeof presets[0]; i++)
        if (strcmp(presets[i].name, name) == 0)
            return presets[i].ignore_merges;
    return 0;
}

/* ---------------------------------------------------------------- helpers */

/* The GPT-2 byte alphabet: printable bytes stand for themselves, the others
 * (0-32, 127-160, 173) for U+0100 on, in byte order. */
static uint32_t byte_char(unsigned c)
{
    if (c <= 32)
        return 256 + c;
    if (c >= 127 && c <= 160)
        return 256 + 33 + (c - 127);
    if (c == 173)
        return 323;
    return c;
}

/* The byte a character stands for, or -1. */
static int char_byte(uint32_t cp)
{
    if (cp < 256)
        return cp <= 32 || (cp >= 127 && cp <= 160) || cp == 173 ? -1 : (int)cp;
    if (cp <= 288)
        return (int)cp - 256;
    if (cp <= 322)
        return (int)cp - 289 + 127;
    return cp == 323 ? 173 : -1;
}

static size_t put_utf8(char *p, uint32_t cp)
{
    if (cp < 0x80) {
        p[0] = (char)cp;
        return 1;
    }
    p[0] = (char)(0xC0 | (cp >> 6));    /* the alphabet ends below U+0800 */
    p[1] = (char)(0x80 | (cp & 0x3F));
    return 2;
}

/* Length of the valid UTF-8 character at s[0..n), 0 when invalid (overlong,
 * surrogate, past U+10FFFF, truncated), as llm_utf8_check() judges. */
static size_t utf8_len(const unsigned char *s, size_t n, uint32_t *cp)
{
    unsigned c = s[0];
    if (c < 0x80) {
        *cp = c;
        return 1;
    }
    size_t k;
    uint32_t v, min;
    if (c >= 0xC2 && c <= 0xDF) { k = 2; v = c & 0x1F; min = 0x80; }
    else if (c >= 0xE0 && c <= 0xEF) { k = 3; v = c & 0x0F; min = 0x800; }
    else if (c >= 0xF0 && c <= 0xF4) { k = 4; v = c & 0x07; min = 0x10000; }
    else return 0;
    if (n < k)
        return 0;
    for (size_t i = 1; i < k; i++) {
        if ((s[i] & 0xC0) != 0x80)
            return 0;
        v = v << 6 | (s[i] & 0x3F);
    }
    if (v < min || v > 0x10FFFF || (v >= 0xD800 && v <= 0xDFFF))
        return 0;
    *cp = v;
    return k;
}

static uint64_t hash_bytes(const char *s, size_t n)
{
    uint64_t h = 1469598103934665603ull;
    for (size_t i = 0; i < n; i++)
        h = (h ^ (unsigned char)s[i]) * 1099511628211ull;
    return h ^ (h >> 29);
}

static uint64_t hash_pair(uint64_t k)
{
    k *= 0x9E3779B97F4A7C15ull;
    return k ^ (k >> 31);
}

static size_t tok_len(const llm_bpe *b, size_t i) { return b->off[i + 1] - b->off[i] - 1; }
static const char *tok_str(const llm_bpe *b, size_t i) { return b->blob + b->off[i]; }

int32_t llm_bpe_token_id(const llm_bpe *b, const char *s, size_t n)
{
    for (size_t h = hash_bytes(s, n) & b->vmask;; h = (h + 1) & b->vmask) {
        int32_t id = b->vhash[h];
        if (id < 0)
            return -1;
        if (tok_len(b, (size_t)id) == n && memcmp(tok_str(b, (size_t)id), s, n) == 0)
            return id;
    }
}

/* The merge of (l, r): its rank, and the merged id in *merged; -1 when none. */
static int32_t pair_rank(const llm_bpe *b, int32_t l, int32_t r, int32_t *merged)
{
    uint64_t key = (uint64_t)(uint32_t)l << 32 | (uint32_t)r;
    for (size_t h = hash_pair(key) & b->pmask;; h = (h + 1) & b->pmask) {
        if (b->pkey[h] == PAIR_EMPTY)
            return -1;
        if (b->pkey[h] == key) {
            *merged = b->pmerged[h];
            return b->prank[h];
        }
    }
}

static size_t pow2_above(size_t n)
{
    size_t c = 16;
    while (c < 2 * n)
        c <<= 1;
    return c;
}

/* Grows a scratch array to hold `need` elements of `size` bytes. */
static int grow(void **p, size_t *cap, size_t need, size_t size)
{
    if (need <= *cap)
        return LLM_OK;
    size_t c = *cap ? *cap : 64, bytes;
    while (c < need)
        c *= 2;
    if (llm_mul_size(c, size, &bytes))
        return llm_fail(LLM_ERR_NOMEM, "out of memory");
    void *q = realloc(*p, bytes);
    if (!q)
        return llm_fail(LLM_ERR_NOMEM, "out of memory");
    *p = q;
    *cap = c;
    return LLM_OK;
}

/* ---------------------------------------------------------------- building */

void llm_bpe_free(llm_bpe *b)
{
    if (!b)
        return;
    free(b->blob);
    free(b->off);
    free(b->type);
    free(b->vhash);
    free(b->dec);
    free(b->dec_off);
    free(b->m_left);
    free(b->m_right);
    free(b->pkey);
    free(b->prank);
    free(b->pmerged);
    for (size_t i = 0; i < b->n_re; i++) {
        free(b->re_src[i]);
        pcre2_code_free(b->re[i]);
    }
    pcre2_match_context_free(b->mctx);
    free(b->chain);
    free(b);
}

/* Tokens: copied, checked (non-empty, valid UTF-8, unique) and hashed. */
static int add_tokens(llm_bpe *b, const char *const *toks, const size_t *lens, size_t n,
                      const char *name)
{
    size_t total = 0;
    if (n == 0)
        return llm_fail(LLM_ERR_FORMAT, "'%s': no tokens", name);
    if (n > (size_t)INT32_MAX / 2)
        return llm_fail(LLM_ERR_FORMAT, "'%s': %zu tokens is too many", name, n);
    for (size_t i = 0; i < n; i++) {
        size_t len = lens ? lens[i] : strlen(toks[i]);
        if (llm_add_size(total, len + 1, &total))
            return llm_fail(LLM_ERR_NOMEM, "out of memory");
    }
    b->n = n;
    b->blob = malloc(total);
    b->off = malloc((n + 1) * sizeof *b->off);
    b->vmask = pow2_above(n) - 1;
    b->vhash = malloc((b->vmask + 1) * sizeof *b->vhash);
    b->type = malloc(n);
    b->chain = malloc(n * sizeof *b->chain);
    if (!b->blob || !b->off || !b->vhash || !b->type || !b->chain)
        return llm_fail(LLM_ERR_NOMEM, "out of memory");
    memset(b->vhash, 0xFF, (b->vmask + 1) * sizeof *b->vhash);
    size_t at = 0;
    for (size_t i = 0; i < n; i++) {
        size_t len = lens ? lens[i] : strlen(toks[i]);
        size_t bad;
        if (len == 0)
            return llm_fail(LLM_ERR_FORMAT, "'%s': token %zu is empty", name, i);
        if (!llm_utf8_check(toks[i], len, &bad))
            return llm_fail(LLM_ERR_FORMAT, "'%s': token %zu is not valid UTF-8", name, i);
        b->off[i] = at;
        memcpy(b->blob + at, toks[i], len);
        b->blob[at + len] = 0;
        at += len + 1;
        b->off[i + 1] = at;
        size_t h = hash_bytes(toks[i], len) & b->vmask;
        for (; b->vhash[h] >= 0; h = (h + 1) & b->vmask) {
            int32_t j = b->vhash[h];
            if (tok_len(b, (size_t)j) == len && memcmp(tok_str(b, (size_t)j), toks[i], len) == 0)
                return llm_fail(LLM_ERR_FORMAT, "'%s': token %zu ('%.*s') repeats token %d",
                                name, i, (int)(len > 60 ? 60 : len), toks[i], j);
        }
        b->vhash[h] = (int32_t)i;
    }
    return LLM_OK;
}

static int set_types(llm_bpe *b, const int32_t *types, const char *name)
{
    memset(b->first, 0xFF, sizeof b->first);
    for (size_t i = 0; i < b->n; i++) {
        int32_t t = types ? types[i] : LLM_PIECE_NORMAL;
        if (t == 0)
            t = LLM_PIECE_NORMAL;   /* GGUF's "undefined" */
        if (t < LLM_PIECE_NORMAL || t > LLM_PIECE_BYTE)
            return llm_fail(LLM_ERR_FORMAT, "'%s': token %zu has type %d (not 1-6)",
                            name, i, (int)t);
        b->type[i] = (unsigned char)t;
    }
    /* Chained in reverse id order, so each chain runs in id order. */
    b->n_added = 0;
    for (size_t i = b->n; i-- > 0;) {
        b->chain[i] = -1;
        if (b->type[i] == LLM_PIECE_CONTROL || b->type[i] == LLM_PIECE_USER) {
            unsigned char c = (unsigned char)tok_str(b, i)[0];
            b->chain[i] = b->first[c];
            b->first[c] = (int32_t)i;
            b->n_added++;
        }
    }
    return LLM_OK;
}

static int derive(llm_bpe *b)
{
    for (unsigned c = 0; c < 256; c++) {
        char s[2];
        size_t k = put_utf8(s, byte_char(c));
        b->byte_tok[c] = llm_bpe_token_id(b, s, k);
    }
    /* Each token's bytes: those its characters stand for, or its text. */
    b->dec_off = malloc((b->n + 1) * sizeof *b->dec_off);
    b->dec = malloc(b->off[b->n]);
    if (!b->dec_off || !b->dec)
        return llm_fail(LLM_ERR_NOMEM, "out of memory");
    size_t at = 0;
    for (size_t i = 0; i < b->n; i++) {
        const unsigned char *s = (const unsigned char *)tok_str(b, i);
        size_t n = tok_len(b, i), k, j = 0, start = at;
        uint32_t cp;
        b->dec_off[i] = at;
        for (; j < n; j += k) {
            int byte;
            k = utf8_len(s + j, n - j, &cp);
            if (!k || (byte = char_byte(cp)) < 0)
                break;
            b->dec[at++] = (char)byte;
        }
        if (j < n) {
            memcpy(b->dec + start, s, n);
            at = start + n;
        }
    }
    b->dec_off[b->n] = at;
    return LLM_OK;
}

static int init_merges(llm_bpe *b, size_t n)
{
    b->pmask = pow2_above(n) - 1;
    b->pkey = malloc((b->pmask + 1) * sizeof *b->pkey);
    b->prank = malloc((b->pmask + 1) * sizeof *b->prank);
    b->pmerged = malloc((b->pmask + 1) * sizeof *b->pmerged);
    b->m_left = malloc((n ? n : 1) * sizeof *b->m_left);
    b->m_right = malloc((n ? n : 1) * sizeof *b->m_right);
    if (!b->pkey || !b->prank || !b->pmerged || !b->m_left || !b->m_right)
        return llm_fail(LLM_ERR_NOMEM, "out of memory");
    memset(b->pkey, 0xFF, (b->pmask + 1) * sizeof *b->pkey);
    return LLM_OK;
}

static int add_merge(llm_bpe *b, const char *l, size_t ll, const char *r, size_t rl,
                     const char *name)
{
    size_t rank = b->n_merges;
    int32_t li = llm_bpe_token_id(b, l, ll), ri = llm_bpe_token_id(b, r, rl);
    if (li < 0 || ri < 0) {
        const char *what = li < 0 ? l : r;
        size_t wl = li < 0 ? ll : rl;
        return llm_fail(LLM_ERR_FORMAT, "'%s': merge %zu ('%.*s %.*s'): '%.*s' is not a token",
                        name, rank, (int)ll, l, (int)rl, r, (int)wl, what);
    }
    char tmp[512];
    char *cat = ll + rl <= sizeof tmp ? tmp : malloc(ll + rl);
    if (!cat)
        return llm_fail(LLM_ERR_NOMEM, "out of memory");
    memcpy(cat, l, ll);
    memcpy(cat + ll, r, rl);
    int32_t mi = llm_bpe_token_id(b, cat, ll + rl);
    if (cat != tmp)
        free(cat);
    if (mi < 0)
        return llm_fail(LLM_ERR_FORMAT, "'%s': merge %zu ('%.*s %.*s'): the merged token "
                        "is not in the vocabulary", name, rank, (int)ll, l, (int)rl, r);
    uint64_t key = (uint64_t)(uint32_t)li << 32 | (uint32_t)ri;
    size_t h = hash_pair(key) & b->pmask;
    for (; b->pkey[h] != PAIR_EMPTY; h = (h + 1) & b->pmask)
        if (b->pkey[h] == key)
            return llm_fail(LLM_ERR_FORMAT, "'%s': merge %zu ('%.*s %.*s') repeats merge %d",
                            name, rank, (int)ll, l, (int)rl, r, (int)b->prank[h]);
    b->pkey[h] = key;
    b->prank[h] = (int32_t)rank;
    b->pmerged[h] = mi;
    b->m_left[rank] = li;
    b->m_right[rank] = ri;
    b->n_merges++;
    return LLM_OK;
}

static int add_regex(llm_bpe *b, const char *src, size_t len, const char *name)
{
    if (b->n_re == MAX_REGEXES)
        return llm_fail(LLM_ERR_FORMAT, "'%s': more than %d pre-tokenizer regexes",
                        name, MAX_REGEXES);
    if (!b->mctx) {
        b->mctx = pcre2_match_context_create(NULL);
        if (!b->mctx)
            return llm_fail(LLM_ERR_NOMEM, "out of memory");
        pcre2_set_match_limit(b->mctx, MATCH_LIMIT);
    }
    int err;
    PCRE2_SIZE at;
    pcre2_code *re = pcre2_compile((PCRE2_SPTR)src, len, PCRE2_UTF | PCRE2_UCP, &err, &at,
                                   NULL);
    if (!re) {
        PCRE2_UCHAR msg[256];
        pcre2_get_error_message(err, msg, sizeof msg);
        return llm_fail(LLM_ERR_FORMAT, "'%s': pre-tokenizer regex %zu ('%.*s') does not "
                        "compile at offset %zu: %s", name, b->n_re + 1,
                        (int)(len > 80 ? 80 : len), src, (size_t)at, (const char *)msg);
    }
    (void)pcre2_jit_compile(re, PCRE2_JIT_COMPLETE);   /* else interpreted */
    char *copy = malloc(len + 1);
    if (!copy) {
        pcre2_code_free(re);
        return llm_fail(LLM_ERR_NOMEM, "out of memory");
    }
    memcpy(copy, src, len);
    copy[len] = 0;
    b->re[b->n_re] = re;
    b->re_src[b->n_re++] = copy;
    return LLM_OK;
}

static int check_special(llm_bpe *b, const char *name)
{
    static const char *const what[] = {"bos", "eos", "unk", "pad", "add_bos", "add_eos"};
    for (int i = 0; i < LLM_BPE_N_SPECIAL; i++) {
        int v = b->special[i];
        if (i <= LLM_BPE_PAD && (v < -1 || (v >= 0 && (size_t)v >= b->n)))
            return llm_fail(LLM_ERR_FORMAT, "'%s': %s id %d is out of range (vocabulary %zu)",
                            name, what[i], v, b->n);
        if (i > LLM_BPE_PAD && v != 0 && v != 1)
            return llm_fail(LLM_ERR_FORMAT, "'%s': %s is %d, not 0 or 1", name, what[i], v);
    }
    if (b->special[LLM_BPE_ADD_BOS] && b->special[LLM_BPE_BOS] < 0)
        return llm_fail(LLM_ERR_FORMAT, "'%s': add_bos is set but there is no bos id", name);
    if (b->special[LLM_BPE_ADD_EOS] && b->special[LLM_BPE_EOS] < 0)
        return llm_fail(LLM_ERR_FORMAT, "'%s': add_eos is set but there is no eos id", name);
    return LLM_OK;
}

int llm_bpe_new(const llm_bpe_spec *s, const char *name, llm_bpe **out)
{
    *out = NULL;
    if (!name)
        name = "(memory)";
    llm_bpe *b = calloc(1, sizeof *b);
    if (!b)
        return llm_fail(LLM_ERR_NOMEM, "out of memory");
    int rc = add_tokens(b, s->tokens, s->token_lens, s->n_tokens, name);
    if (!rc)
        rc = set_types(b, s->types, name);
    if (!rc)
        rc = derive(b);
    if (!rc)
        rc = init_merges(b, s->n_merges);
    for (size_t i = 0; !rc && i < s->n_merges; i++) {
        const char *m = s->merges[i], *sp = strchr(m, ' ');
        size_t n = strlen(m);
        if (!sp || sp == m || sp == m + n - 1 || strchr(sp + 1, ' '))
            rc = llm_fail(LLM_ERR_FORMAT, "'%s': merge %zu ('%.*s') is not two tokens "
                          "separated by one space", name, i, (int)(n > 60 ? 60 : n), m);
        else
            rc = add_merge(b, m, (size_t)(sp - m), sp + 1, n - (size_t)(sp - m) - 1, name);
    }
    for (size_t i = 0; !rc && i < s->n_regexes; i++)
        rc = add_regex(b, s->regexes[i], strlen(s->regexes[i]), name);
    if (!rc) {
        b->special[LLM_BPE_BOS] = s->bos_id;
        b->special[LLM_BPE_EOS] = s->eos_id;
        b->special[LLM_BPE_UNK] = s->unk_id;
        b->special[LLM_BPE_PAD] = s->pad_id;
        b->special[LLM_BPE_ADD_BOS] = s->add_bos;
        b->special[LLM_BPE_ADD_EOS] = s->add_eos;
        b->ignore_merges = s->ignore_merges != 0;
        rc = check_special(b, name);
    }
    if (rc) {
        llm_bpe_free(b);
        return rc;
    }
    *out = b;
    return LLM_OK;
}

/* ---------------------------------------------------------------- queries */

size_t llm_bpe_n_tokens(const llm_bpe *b) { return b->n; }
size_t llm_bpe_n_merges(const llm_bpe *b) { return b->n_merges; }
size_t llm_bpe_n_regexes(const llm_bpe *b) { return b->n_re; }
int llm_bpe_nfc(const llm_bpe *b) { return b->nfc; }

int llm_bpe_merge(const llm_bpe *b, size_t i, int32_t *left, int32_t *right)
{
    if (i >= b->n_merges)
        return -1;
    *left = b->m_left[i];
    *right = b->m_right[i];
    return 0;
}
const char *llm_bpe_regex(const llm_bpe *b, size_t i) { return i < b->n_re ? b->re_src[i] : NULL; }

const char *llm_bpe_token(const llm_bpe *b, int32_t id, size_t *len)
{
    if (id < 0 || (size_t)id >= b->n)
        return NULL;
    if (len)
        *len = tok_len(b, (size_t)id);
    return tok_str(b, (size_t)id);
}

int llm_bpe_token_type(const llm_bpe *b, int32_t id)
{
    return id < 0 || (size_t)id >= b->n ? 0 : b->type[id];
}

int llm_bpe_special(const llm_bpe *b, int which)
{
    return which >= 0 && which < LLM_BPE_N_SPECIAL ? b->special[which] : -1;
}

int llm_bpe_set_special(llm_bpe *b, int which, int value)
{
    if (which < 0 || which >= LLM_BPE_N_SPECIAL)
        return llm_fail(LLM_ERR_INVALID, "no special value %d", which);
    int old = b->special[which];
    b->special[which] = value;
    if (check_special(b, "tokenizer")) {
        b->special[which] = old;
        return LLM_ERR_INVALID;   /* with check_special's message */
    }
    return LLM_OK;
}

/* ---------------------------------------------------------------- encoding */

void llm_bpe_scratch_free(llm_bpe_scratch *s)
{
    if (!s)
        return;
    llm_buf_free(&s->norm);
    pcre2_match_data_free(s->match);
    free(s->a);
    free(s->b);
    free(s->sym);
    free(s->heap);
    free(s->enc);
    memset(s, 0, sizeof *s);
}

static int push_span(struct llm_bpe_span **v, size_t *cap, size_t *n, size_t off, size_t len,
                     int32_t id)
{
    int rc = grow((void **)v, cap, *n + 1, sizeof **v);
    if (rc)
        return rc;
    (*v)[*n].off = off;
    (*v)[*n].len = len;
    (*v)[*n].id = id;
    (*n)++;
    return LLM_OK;
}

/* Cuts text[off, off+len) into runs of valid UTF-8 and single invalid bytes. */
static int push_text(llm_bpe_scratch *s, size_t *n, const unsigned char *t, size_t off,
                     size_t len)
{
    size_t i = off, end = off + len, run = off;
    while (i < end) {
        uint32_t cp;
        size_t k = t[i] < 0x80 ? 1 : utf8_len(t + i, end - i, &cp);
        if (k) {
            i += k;
            continue;
        }
        int rc = run < i ? push_span(&s->a, &s->a_cap, n, run, i - run, SPAN_TEXT) : LLM_OK;
        if (!rc)
            rc = push_span(&s->a, &s->a_cap, n, i, 1, SPAN_BYTE);
        if (rc)
            return rc;
        run = ++i;
    }
    return run < end ? push_span(&s->a, &s->a_cap, n, run, end - run, SPAN_TEXT) : LLM_OK;
}

/* Splits one text span by regex r into matches and gaps, appended to s->b. */
static int split_span(const llm_bpe *b, size_t r, const char *text,
                      const struct llm_bpe_span *sp, llm_bpe_scratch *s, size_t *nb)
{
    PCRE2_SPTR subj = (PCRE2_SPTR)(text + sp->off);
    size_t len = sp->len, start = 0, gap = 0;
    int rc;
    while (start <= len) {
        int m = pcre2_match(b->re[r], subj, len, start, PCRE2_NO_UTF_CHECK, s->match, b->mctx);
        if (m == PCRE2_ERROR_JIT_STACKLIMIT)
            m = pcre2_match(b->re[r], subj, len, start, PCRE2_NO_UTF_CHECK | PCRE2_NO_JIT,
                            s->match, b->mctx);
        if (m == PCRE2_ERROR_NOMATCH)
            break;
        if (m < 0) {
            PCRE2_UCHAR msg[256];
            pcre2_get_error_message(m, msg, sizeof msg);
            return llm_fail(LLM_ERR_FORMAT, "pre-tokenizer regex %zu failed: %s", r + 1,
                            (const char *)msg);
        }
        PCRE2_SIZE *ov = pcre2_get_ovector_pointer(s->match);
        size_t ms = ov[0], me = ov[1];
        if (me <= ms) {
            /* An empty match splits nothing: look again one character on. */
            uint32_t cp;
            if (start >= len)
                break;
            start += utf8_len(subj + start, len - start, &cp);
            continue;
        }
        if (ms > gap && (rc = push_span(&s->b, &s->b_cap, nb, sp->off + gap, ms - gap,
                                        SPAN_TEXT)))
            return rc;
        if ((rc = push_span(&s->b, &s->b_cap, nb, sp->off + ms, me - ms, SPAN_TEXT)))
            return rc;
        gap = start = me;
    }
    if (gap < len)
        return push_span(&s->b, &s->b_cap, nb, sp->off + gap, len - gap, SPAN_TEXT);
    return LLM_OK;
}

static int pair_less(const struct llm_bpe_pair *x, const struct llm_bpe_pair *y)
{
    return x->rank < y->rank || (x->rank == y->rank && x->left < y->left);
}

static void heap_push(struct llm_bpe_pair *h, size_t *n, struct llm_bpe_pair p)
{
    size_t i = (*n)++;
    while (i > 0) {
        size_t up = (i - 1) / 2;
        if (!pair_less(&p, &h[up]))
            break;
        h[i] = h[up];
        i = up;
    }
    h[i] = p;
}

static struct llm_bpe_pair heap_pop(struct llm_bpe_pair *h, size_t *n)
{
    struct llm_bpe_pair top = h[0], last = h[--(*n)];
    size_t i = 0;
    for (;;) {
        size_t c = 2 * i + 1;
        if (c >= *n)
            break;
        if (c + 1 < *n && pair_less(&h[c + 1], &h[c]))
            c++;
        if (!pair_less(&h[c], &last))
            break;
        h[i] = h[c];
        i = c;
    }
    if (*n)
        h[i] = last;
    return top;
}

static void try_pair(const llm_bpe *b, llm_bpe_scratch *s, size_t *nh, int32_t l, int32_t r)
{
    if (l < 0 || r < 0)
        return;
    struct llm_bpe_pair p;
    p.lid = s->sym[l].id;
    p.rid = s->sym[r].id;
    p.rank = pair_rank(b, p.lid, p.rid, &p.merged);
    if (p.rank < 0)
        return;
    p.left = l;
    p.right = r;
    heap_push(s->heap, nh, p);
}

static int push_pair(llm_ids *spans, size_t start, size_t end)
{
    int rc = llm_ids_push(spans, (int32_t)start);
    return rc ? rc : llm_ids_push(spans, (int32_t)end);
}

/* BPE over one piece of text t[0..n), at byte `at` of the text: with
 * `spans`, each token's [start, end) too. */
static int encode_piece(const llm_bpe *b, const unsigned char *t, size_t n, size_t at,
                        llm_bpe_scratch *s, llm_ids *out, llm_ids *spans)
{
    int rc;
    if (n > (size_t)INT32_MAX)
        return llm_fail(LLM_ERR_RANGE, "a pre-token of %zu bytes is too long", n);
    if (b->ignore_merges && n > 1) {
        if ((rc = grow((void **)&s->enc, &s->enc_cap, 2 * n, 1)))
            return rc;
        size_t k = 0;
        for (size_t i = 0; i < n; i++)
            k += put_utf8(s->enc + k, byte_char(t[i]));
        int32_t id = llm_bpe_token_id(b, s->enc, k);
        if (id >= 0) {
            rc = llm_ids_push(out, id);
            return rc || !spans ? rc : push_pair(spans, at, at + n);
        }
    }
    if ((rc = grow((void **)&s->sym, &s->sym_cap, n, sizeof *s->sym)) ||
        (rc = grow((void **)&s->heap, &s->heap_cap, n, sizeof *s->heap)))
        return rc;
    for (size_t i = 0; i < n; i++) {
        int32_t id = b->byte_tok[t[i]];
        if (id < 0)
            id = b->special[LLM_BPE_UNK];
        if (id < 0)
            return llm_fail(LLM_ERR_RANGE, "no token for byte 0x%02X and no unknown token",
                            t[i]);
        s->sym[i].id = id;
        s->sym[i].prev = (int32_t)i - 1;
        s->sym[i].next = i + 1 < n ? (int32_t)i + 1 : -1;
    }
    /* Every live pair is in the heap at most once per (left, right, ids),
     * and there are at most n - 1 + (merges * 2) pushes: bound the heap by
     * growing before each round. */
    size_t nh = 0;
    for (size_t i = 0; i + 1 < n; i++)
        try_pair(b, s, &nh, (int32_t)i, (int32_t)i + 1);
    while (nh) {
        struct llm_bpe_pair p = heap_pop(s->heap, &nh);
        struct llm_bpe_sym *l = &s->sym[p.left], *r = &s->sym[p.right];
        if (l->id != p.lid || r->id != p.rid || l->next != p.right)
            continue;   /* stale: one side has merged since */
        l->id = p.merged;
        l->next = r->next;
        if (r->next >= 0)
            s->sym[r->next].prev = p.left;
        r->id = -1;
        if ((rc = grow((void **)&s->heap, &s->heap_cap, nh + 2, sizeof *s->heap)))
            return rc;
        try_pair(b, s, &nh, l->prev, p.left);
        try_pair(b, s, &nh, p.left, l->next);
    }
    for (int32_t i = 0; i >= 0; i = s->sym[i].next) {
        if ((rc = llm_ids_push(out, s->sym[i].id)))
            return rc;
        /* A symbol spans its first byte up to the next symbol's. */
        size_t end = s->sym[i].next >= 0 ? (size_t)s->sym[i].next : n;
        if (spans && (rc = push_pair(spans, at + (size_t)i, at + end)))
            return rc;
    }
    return LLM_OK;
}

/* The longest added token at t[i..n) that may match, or -1. */
static int32_t added_at(const llm_bpe *b, const char *t, size_t i, size_t n, int special)
{
    int32_t best = -1;
    size_t best_len = 0;
    for (int32_t id = b->first[(unsigned char)t[i]]; id >= 0; id = b->chain[id]) {
        size_t k = tok_len(b, (size_t)id);
        if (k > best_len && k <= n - i && (special || b->type[id] == LLM_PIECE_USER) &&
            memcmp(tok_str(b, (size_t)id), t + i, k) == 0) {
            best = id;
            best_len = k;
        }
    }
    return best;
}

/* text[0..n) in Unicode NFC into out: each run of valid UTF-8 composed,
 * invalid bytes kept as they are (HF sees only valid strings). */
static int nfc(const char *text, size_t n, llm_buf *out)
{
    out->len = 0;
    while (n) {
        size_t bad;
        if (llm_utf8_check(text, n, &bad))
            bad = n;
        if (bad) {
            utf8proc_uint8_t *m = NULL;
            utf8proc_ssize_t k = utf8proc_map((const utf8proc_uint8_t *)text,
                                              (utf8proc_ssize_t)bad, &m,
                                              UTF8PROC_STABLE | UTF8PROC_COMPOSE);
            if (k < 0)
                return k == UTF8PROC_ERROR_NOMEM ? llm_fail(LLM_ERR_NOMEM, "out of memory")
                                                 : llm_fail(LLM_ERR_UTF8, "NFC: %s",
                                                            utf8proc_errmsg(k));
            int rc = llm_buf_append(out, m, (size_t)k);
            free(m);
            if (rc)
                return rc;
        }
        if (bad < n && llm_buf_append(out, text + bad, 1))
            return LLM_ERR_NOMEM;
        size_t skip = bad < n ? bad + 1 : n;
        text += skip;
        n -= skip;
    }
    return LLM_OK;
}

static int map_spans(const char *text, size_t n, const llm_buf *norm, int32_t *v, size_t nv);

static int encode(const llm_bpe *b, const char *text, size_t n, int parse_special,
                  llm_bpe_scratch *s, llm_ids *out, llm_ids *spans)
{
    const char *orig = text;
    size_t orig_n = n, na = 0, start = out->len, sstart = spans ? spans->len : 0;
    int rc = LLM_OK;
    if (b->nfc) {
        if ((rc = nfc(text, n, &s->norm)))
            return rc;
        text = s->norm.data ? s->norm.data : "";
        n = s->norm.len;
    }
    const unsigned char *t = (const unsigned char *)text;
    if (!s->match) {
        s->match = pcre2_match_data_create(16, NULL);
        if (!s->match)
            return llm_fail(LLM_ERR_NOMEM, "out of memory");
    }
    /* 1. added tokens; 2. valid UTF-8 runs and stray bytes */
    size_t seg = 0;
    for (size_t i = 0; b->n_added && i < n && !rc;) {
        int32_t id = b->first[t[i]] >= 0 ? added_at(b, text, i, n, parse_special) : -1;
        if (id < 0) {
            i++;
            continue;
        }
        if (seg < i)
            rc = push_text(s, &na, t, seg, i - seg);
        if (!rc)
            rc = push_span(&s->a, &s->a_cap, &na, i, tok_len(b, (size_t)id), id);
        i += tok_len(b, (size_t)id);
        seg = i;
    }
    if (!rc && seg < n)
        rc = push_text(s, &na, t, seg, n - seg);
    /* 3. the regexes in turn */
    for (size_t r = 0; !rc && r < b->n_re; r++) {
        size_t nb = 0;
        for (size_t i = 0; !rc && i < na; i++) {
            if (s->a[i].id == SPAN_TEXT)
                rc = split_span(b, r, text, &s->a[i], s, &nb);
            else
                rc = push_span(&s->b, &s->b_cap, &nb, s->a[i].off, s->a[i].len, s->a[i].id);
        }
        struct llm_bpe_span *tv = s->a;
        size_t tc = s->a_cap;
        s->a = s->b;
        s->a_cap = s->b_cap;
        s->b = tv;
        s->b_cap = tc;
        na = nb;
    }
    /* 4. BPE per piece */
    for (size_t i = 0; !rc && i < na; i++) {
        const struct llm_bpe_span *sp = &s->a[i];
        if (sp->id >= 0) {
            rc = llm_ids_push(out, sp->id);
            if (!rc && spans)
                rc = push_pair(spans, sp->off, sp->off + sp->len);
        } else {
            rc = encode_piece(b, t + sp->off, sp->len, sp->off, s, out, spans);
        }
    }
    /* 5. offsets in the normalised text back to the caller's */
    if (!rc && spans && b->nfc)
        rc = map_spans(orig, orig_n, &s->norm, spans->data + sstart, spans->len - sstart);
    if (rc) {
        out->len = start;
        if (spans)
            spans->len = sstart;
    }
    return rc;
}

int llm_bpe_encode_with(const llm_bpe *b, const char *text, size_t n, int parse_special,
                        llm_bpe_scratch *s, llm_ids *out)
{
    return encode(b, text, n, parse_special, s, out, NULL);
}

int llm_bpe_encode_spans(const llm_bpe *b, const char *text, size_t n, llm_bpe_scratch *s,
                         llm_ids *out, llm_ids *spans)
{
    if (n > (size_t)INT32_MAX / 2)
        return llm_fail(LLM_ERR_RANGE, "a text of %zu bytes is too long for offsets", n);
    return encode(b, text, n, 0, s, out, spans);
}

/* The first byte of the code point at or after i that starts a composition
 * segment: a valid code point of canonical combining class 0 that is not a
 * Hangul vowel or trailing jamo (which compose with what precedes them), or
 * an invalid byte (kept as it is by nfc()). */
static size_t next_segment(const unsigned char *t, size_t i, size_t n)
{
    while (i < n) {
        uint32_t cp;
        size_t k = t[i] < 0x80 ? (cp = t[i], 1) : utf8_len(t + i, n - i, &cp);
        if (!k)
            return i;
        const utf8proc_property_t *p = utf8proc_get_property((utf8proc_int32_t)cp);
        int jamo = (cp >= 0x1160 && cp <= 0x11FF) || (cp >= 0xD7B0 && cp <= 0xD7FF);
        if (p->combining_class == 0 && !jamo)
            return i;
        i += k;
    }
    return n;
}

/* Maps nv/2 [start, end) pairs v of offsets in norm (text[0..n) in NFC)
 * to offsets in text. Each composition segment of text is normalised on its
 * own; where their concatenation is not norm (a starter that composes with
 * a previous starter), every pair becomes [-1, -1). Within a segment that
 * normalisation changed, a start maps to the segment's start and an end to
 * its end. */
static int map_spans(const char *text, size_t n, const llm_buf *norm, int32_t *v, size_t nv)
{
    const unsigned char *t = (const unsigned char *)text;
    if (norm->len == n && (n == 0 || memcmp(norm->data, text, n) == 0))
        return LLM_OK;
    /* Segments: (orig start, norm start, changed) per segment, plus ends. */
    size_t cap = 0, ns = 0, *seg = NULL;
    size_t i = 0, at = 0;
    int rc = LLM_OK, ok = 1;
    llm_buf one = { 0 };
    while (i < n && !rc) {
        uint32_t cp;
        size_t k = t[i] < 0x80 ? 1 : utf8_len(t + i, n - i, &cp);
        size_t j = next_segment(t, i + (k ? k : 1), n);
        if ((rc = nfc(text + i, j - i, &one)))
            break;
        if (at + one.len > norm->len || memcmp(norm->data + at, one.data, one.len) != 0) {
            ok = 0;
            break;
        }
        if ((rc = grow((void **)&seg, &cap, 3 * (ns + 1), sizeof *seg)))
            break;
        seg[3 * ns] = i;
        seg[3 * ns + 1] = at;
        seg[3 * ns + 2] = one.len != j - i || memcmp(one.data, text + i, one.len) != 0;
        ns++;
        at += one.len;
        i = j;
    }
    llm_buf_free(&one);
    if (!rc && ok && at != norm->len)
        ok = 0;
    for (size_t p = 0; !rc && p < nv; p++) {
        size_t x = (size_t)v[p];
        int is_end = p & 1;
        if (!ok) {
            v[p] = -1;
            continue;
        }
        /* The segment holding x (an end: holding x - 1). */
        size_t lo = 0, hi = ns;
        size_t key = is_end && x > 0 ? x - 1 : x;
        while (hi - lo > 1) {
            size_t mid = (lo + hi) / 2;
            if (seg[3 * mid + 1] <= key)
                lo = mid;
            else
                hi = mid;
        }
        if (ns == 0 || key >= norm->len) {   /* no token lies there: defensive */
            v[p] = -1;
            continue;
        }
        size_t os = seg[3 * lo], nsb = seg[3 * lo + 1];
        size_t oe = lo + 1 < ns ? seg[3 * (lo + 1)] : n;
        if (!seg[3 * lo + 2])
            v[p] = (int32_t)(os + (x - nsb));
        else
            v[p] = (int32_t)(is_end ? oe : os);
    }
    free(seg);
    return rc;
}

int llm_bpe_encode(const llm_bpe *b, const char *text, size_t n, int parse_special,
                   llm_ids *out)
{
    llm_bpe_scratch s;
    memset(&s, 0, sizeof s);
    int rc = llm_bpe_encode_with(b, text, n, parse_special, &s, out);
    llm_bpe_scratch_free(&s);
    return rc;
}

int llm_bpe_decode_piece(const llm_bpe *b, int32_t id, llm_buf *out)
{
    if (id < 0 || (size_t)id >= b->n)
        return llm_fail(LLM_ERR_RANGE, "id %d is out of range (vocabulary %zu)", (int)id, b->n);
    return llm_buf_append(out, b->dec + b->dec_off[id], b->dec_off[id + 1] - b->dec_off[id]);
}

int llm_bpe_decode(const llm_bpe *b, const int32_t *ids, size_t n, llm_buf *out)
{
    size_t start = out->len;
    int rc = llm_buf_append(out, "", 0);
    for (size_t i = 0; !rc && i < n; i++)
        rc = llm_bpe_decode_piece(b, ids[i], out);
    if (rc) {
        out->len = start;
        if (out->data)
            out->data[start] = 0;
    }
    return rc;
}

/* ---------------------------------------------------------------- writing JSON */

static int put(llm_buf *o, const char *s)
{
    return llm_buf_append(o, s, strlen(s));
}

static int put_int(llm_buf *o, long long v)
{
    char n[32];
    snprintf(n, sizeof n, "%lld", v);
    return put(o, n);
}

static int put_tok(llm_buf *o, const llm_bpe *b, int32_t id)
{
    return llm_json_put_string(o, tok_str(b, (size_t)id), tok_len(b, (size_t)id));
}

static int put_template(llm_buf *o, const llm_bpe *b)
{
    int bos = b->special[LLM_BPE_ADD_BOS] ? b->special[LLM_BPE_BOS] : -1;
    int eos = b->special[LLM_BPE_ADD_EOS] ? b->special[LLM_BPE_EOS] : -1;
    int rc = put(o, "{\"type\":\"TemplateProcessing\",\"single\":[");
    for (int part = 0; !rc && part < 2; part++) {
        if (part)
            rc = put(o, "],\"pair\":[");
        for (int seq = 0; !rc && seq <= part; seq++) {
            if (bos >= 0 && !rc) {
                rc = put(o, "{\"SpecialToken\":{\"id\":");
                if (!rc) rc = put_tok(o, b, bos);
                if (!rc) rc = put(o, seq ? ",\"type_id\":1}}," : ",\"type_id\":0}},");
            }
            if (!rc)
                rc = put(o, seq ? "{\"Sequence\":{\"id\":\"B\",\"type_id\":1}}"
                                : "{\"Sequence\":{\"id\":\"A\",\"type_id\":0}}");
            if (eos >= 0 && !rc) {
                rc = put(o, ",{\"SpecialToken\":{\"id\":");
                if (!rc) rc = put_tok(o, b, eos);
                if (!rc) rc = put(o, seq ? ",\"type_id\":1}}" : ",\"type_id\":0}}");
            }
            if (!rc && seq == 0 && part == 1)
                rc = put(o, ",");
        }
    }
    if (!rc)
        rc = put(o, "],\"special_tokens\":{");
    int ids[2] = {bos, eos == bos ? -1 : eos};
    for (int i = 0, k = 0; !rc && i < 2; i++) {
        if (ids[i] < 0)
            continue;
        if (k++) rc = put(o, ",");
        if (!rc) rc = put_tok(o, b, ids[i]);
        if (!rc) rc = put(o, ":{\"id\":");
        if (!rc) rc = put_tok(o, b, ids[i]);
        if (!rc) rc = put(o, ",\"ids\":[");
        if (!rc) rc = put_int(o, ids[i]);
        if (!rc) rc = put(o, "],\"tokens\":[");
        if (!rc) rc = put_tok(o, b, ids[i]);
        if (!rc) rc = put(o, "]}");
    }
    return rc ? rc : put(o, "}}");
}

int llm_bpe_to_json(const llm_bpe *b, llm_buf *o)
{
    size_t start = o->len;
    int rc = put(o, "{\"version\":\"1.0\",\"truncation\":null,\"padding\":null,"
                    "\"added_tokens\":[");
    for (size_t i = 0, k = 0; !rc && i < b->n; i++) {
        if (b->type[i] != LLM_PIECE_CONTROL && b->type[i] != LLM_PIECE_USER)
            continue;
        if (k++) rc = put(o, ",");
        if (!rc) rc = put(o, "{\"id\":");
        if (!rc) rc = put_int(o, (long long)i);
        if (!rc) rc = put(o, ",\"content\":");
        if (!rc) rc = put_tok(o, b, (int32_t)i);
        if (!rc) rc = put(o, ",\"single_word\":false,\"lstrip\":false,\"rstrip\":false,"
                             "\"normalized\":false,\"special\":");
        if (!rc) rc = put(o, b->type[i] == LLM_PIECE_CONTROL ? "true}" : "false}");
    }
    if (!rc) rc = put(o, b->nfc ? "],\"normalizer\":{\"type\":\"NFC\"}" : "],\"normalizer\":null");
    if (!rc) rc = put(o, ",\"pre_tokenizer\":{\"type\":\"Sequence\",\"pretokenizers\":[");
    for (size_t i = 0; !rc && i < b->n_re; i++) {
        rc = put(o, "{\"type\":\"Split\",\"pattern\":{\"Regex\":");
        if (!rc) rc = llm_json_put_string(o, b->re_src[i], strlen(b->re_src[i]));
        if (!rc) rc = put(o, "},\"behavior\":\"Isolated\",\"invert\":false},");
    }
    if (!rc) rc = put(o, "{\"type\":\"ByteLevel\",\"add_prefix_space\":false,"
                         "\"trim_offsets\":true,\"use_regex\":false}]},\"post_processor\":");
    if (!rc) {
        if (b->special[LLM_BPE_ADD_BOS] || b->special[LLM_BPE_ADD_EOS])
            rc = put_template(o, b);
        else
            rc = put(o, "null");
    }
    if (!rc) rc = put(o, ",\"decoder\":{\"type\":\"ByteLevel\",\"add_prefix_space\":true,"
                         "\"trim_offsets\":true,\"use_regex\":true},\"model\":{\"type\":\"BPE\","
                         "\"dropout\":null,\"unk_token\":");
    if (!rc) {
        if (b->special[LLM_BPE_UNK] >= 0)
            rc = put_tok(o, b, b->special[LLM_BPE_UNK]);
        else
            rc = put(o, "null");
    }
    if (!rc) rc = put(o, ",\"continuing_subword_prefix\":null,\"end_of_word_suffix\":null,"
                         "\"fuse_unk\":false,\"byte_fallback\":false,\"ignore_merges\":");
    if (!rc) rc = put(o, b->ignore_merges ? "true" : "false");
    if (!rc) rc = put(o, ",\"llm\":{");
    static const char *const keys[] = {"\"bos_id\":", ",\"eos_id\":", ",\"unk_id\":",
                                       ",\"pad_id\":", ",\"add_bos\":", ",\"add_eos\":"};
    for (int i = 0; !rc && i < LLM_BPE_N_SPECIAL; i++) {
        rc = put(o, keys[i]);
        if (!rc) rc = put_int(o, b->special[i]);
    }
    /* Types HF cannot say (unknown, unused, byte) */
    if (!rc) rc = put(o, ",\"types\":[");
    for (size_t i = 0, k = 0; !rc && i < b->n; i++) {
        int t = b->type[i];
        if (t == LLM_PIECE_NORMAL || t == LLM_PIECE_CONTROL || t == LLM_PIECE_USER)
            continue;
        if (k++) rc = put(o, ",");
        if (!rc) rc = put(o, "[");
        if (!rc) rc = put_int(o, (long long)i);
        if (!rc) rc = put(o, ",");
        if (!rc) rc = put_int(o, t);
        if (!rc) rc = put(o, "]");
    }
    if (!rc) rc = put(o, "]},\"vocab\":{");
    for (size_t i = 0; !rc && i < b->n; i++) {
        if (i) rc = put(o, ",");
        if (!rc) rc = put_tok(o, b, (int32_t)i);
        if (!rc) rc = put(o, ":");
        if (!rc) rc = put_int(o, (long long)i);
    }
    /* "a b" strings, as every version of tokenizers reads, unless a token
     * of a merge holds a space: then [a, b] pairs (tokenizers >= 0.20). */
    int pairs = 0;
    for (size_t i = 0; i < b->n_merges && !pairs; i++)
        pairs = memchr(tok_str(b, (size_t)b->m_left[i]), ' ', tok_len(b, (size_t)b->m_left[i])) ||
                memchr(tok_str(b, (size_t)b->m_right[i]), ' ', tok_len(b, (size_t)b->m_right[i]));
    if (!rc) rc = put(o, "},\"merges\":[");
    llm_buf m = {0};
    for (size_t i = 0; !rc && i < b->n_merges; i++) {
        int32_t l = b->m_left[i], r = b->m_right[i];
        if (i) rc = put(o, ",");
        if (rc)
            break;
        if (pairs) {
            rc = put(o, "[");
            if (!rc) rc = put_tok(o, b, l);
            if (!rc) rc = put(o, ",");
            if (!rc) rc = put_tok(o, b, r);
            if (!rc) rc = put(o, "]");
        } else {
            m.len = 0;
            rc = llm_buf_append(&m, tok_str(b, (size_t)l), tok_len(b, (size_t)l));
            if (!rc) rc = llm_buf_append(&m, " ", 1);
            if (!rc) rc = llm_buf_append(&m, tok_str(b, (size_t)r), tok_len(b, (size_t)r));
            if (!rc) rc = llm_json_put_string(o, m.data, m.len);
        }
    }
    llm_buf_free(&m);
    if (!rc) rc = put(o, "]}}");
    if (rc) {
        o->len = start;
        if (o->data)
            o->data[start] = 0;
    }
    return rc;
}

/* ---------------------------------------------------------------- reading JSON */

typedef struct {
    const char *name;
    llm_bpe *b;
    const llm_json_node *vocab, *merges, *added, *post, *llm;
    /* pre-tokenizer regexes, in order; owned strings */
    char *re[MAX_REGEXES];
    size_t re_len[MAX_REGEXES];
    size_t n_re;
    int seen_bytelevel;
} reader;

static int is_str(const llm_json_node *n, const char *s)
{
    return n && n->type == LLM_JSON_STRING && strlen(s) == n->len && memcmp(n->str, s, n->len) == 0;
}

static int is_null(const llm_json_node *n)
{
    return !n || n->type == LLM_JSON_NULL;
}

static int is_true(const llm_json_node *n)
{
    return n && n->type == LLM_JSON_TRUE;
}

static const char *type_of(const llm_json_node *n)
{
    const llm_json_node *t = n && n->type == LLM_JSON_OBJECT ? llm_json_get(n, "type") : NULL;
    return t && t->type == LLM_JSON_STRING ? t->str : "(no type)";
}

static int push_re(reader *r, const char *s, size_t len)
{
    if (r->n_re == MAX_REGEXES)
        return llm_fail(LLM_ERR_UNSUPPORTED, "'%s': more than %d pre-tokenizer regexes",
                        r->name, MAX_REGEXES);
    char *c = malloc(len + 1);
    if (!c)
        return llm_fail(LLM_ERR_NOMEM, "out of memory");
    memcpy(c, s, len);
    c[len] = 0;
    r->re[r->n_re] = c;
    r->re_len[r->n_re++] = len;
    return LLM_OK;
}

/* A literal string as a regex: every ASCII punctuation character escaped. */
static int push_literal(reader *r, const char *s, size_t len)
{
    llm_buf e = {0};
    int rc = llm_buf_append(&e, "", 0);
    for (size_t i = 0; !rc && i < len; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c < 0x80 && !((c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') ||
                          (c >= 'A' && c <= 'Z') || c >= 0x80)) {
            if (c < 0x20 || c == 0x7F) {
                char x[8];
                snprintf(x, sizeof x, "\\x{%02x}", c);
                rc = llm_buf_append(&e, x, strlen(x));
                continue;
            }
            rc = llm_buf_append(&e, "\\", 1);
        }
        if (!rc)
            rc = llm_buf_append(&e, s + i, 1);
    }
    if (!rc)
        rc = push_re(r, e.data, e.len);
    llm_buf_free(&e);
    return rc;
}

static int read_pre(reader *r, const llm_json_node *p, int depth)
{
    const char *t = type_of(p);
    if (depth > 8)
        return llm_fail(LLM_ERR_UNSUPPORTED, "'%s': pre_tokenizer nested too deeply", r->name);
    if (r->seen_bytelevel)
        return llm_fail(LLM_ERR_UNSUPPORTED, "'%s': pre_tokenizer '%s' after ByteLevel "
                        "(only ByteLevel last is supported)", r->name, t);
    if (strcmp(t, "Sequence") == 0) {
        const llm_json_node *l = llm_json_get(p, "pretokenizers");
        if (!l || l->type != LLM_JSON_ARRAY)
            return llm_fail(LLM_ERR_FORMAT, "'%s': pre_tokenizer Sequence without a "
                            "pretokenizers array", r->name);
        for (const llm_json_node *c = l->child; c; c = c->next) {
            int rc = read_pre(r, c, depth + 1);
            if (rc)
                return rc;
        }
        return LLM_OK;
    }
    if (strcmp(t, "ByteLevel") == 0) {
        if (is_true(llm_json_get(p, "add_prefix_space")))
            return llm_fail(LLM_ERR_UNSUPPORTED, "'%s': pre_tokenizer ByteLevel with "
                            "add_prefix_space true is not supported", r->name);
        const llm_json_node *u = llm_json_get(p, "use_regex");
        r->seen_bytelevel = 1;
        if (!u || is_true(u))      /* HF's default is true */
            return push_re(r, RE_GPT2, strlen(RE_GPT2));
        return LLM_OK;
    }
    if (strcmp(t, "Digits") == 0) {
        if (is_true(llm_json_get(p, "individual_digits")))
            return push_re(r, RE_DIGIT, strlen(RE_DIGIT));
        return push_re(r, "\\p{N}+", 6);
    }
    if (strcmp(t, "Split") == 0) {
        const llm_json_node *pat = llm_json_get(p, "pattern"), *bh = llm_json_get(p, "behavior");
        if (!is_str(bh, "Isolated"))
            return llm_fail(LLM_ERR_UNSUPPORTED, "'%s': pre_tokenizer Split with behavior "
                            "'%s' is not supported (only Isolated)", r->name,
                            bh && bh->type == LLM_JSON_STRING ? bh->str : "(none)");
        if (is_true(llm_json_get(p, "invert")))
            return llm_fail(LLM_ERR_UNSUPPORTED, "'%s': pre_tokenizer Split with invert "
                            "true is not supported", r->name);
        const llm_json_node *re = pat && pat->type == LLM_JSON_OBJECT ? llm_json_get(pat, "Regex")
                                                                      : NULL;
        const llm_json_node *st = pat && pat->type == LLM_JSON_OBJECT ? llm_json_get(pat, "String")
                                                                      : NULL;
        if (re && re->type == LLM_JSON_STRING)
            return push_re(r, re->str, re->len);
        if (st && st->type == LLM_JSON_STRING)
            return push_literal(r, st->str, st->len);
        return llm_fail(LLM_ERR_FORMAT, "'%s': pre_tokenizer Split without a Regex or "
                        "String pattern", r->name);
    }
    return llm_fail(LLM_ERR_UNSUPPORTED, "'%s': pre_tokenizer '%s' is not supported",
                    r->name, t);
}

static int read_post(reader *r, const llm_json_node *p, int depth, int *bos, int *eos)
{
    const char *t = type_of(p);
    if (is_null(p) || strcmp(t, "ByteLevel") == 0)
        return LLM_OK;
    if (depth > 8)
        return llm_fail(LLM_ERR_UNSUPPORTED, "'%s': post_processor nested too deeply", r->name);
    if (strcmp(t, "Sequence") == 0) {
        const llm_json_node *l = llm_json_get(p, "processors");
        if (!l || l->type != LLM_JSON_ARRAY)
            return llm_fail(LLM_ERR_FORMAT, "'%s': post_processor Sequence without a "
                            "processors array", r->name);
        for (const llm_json_node *c = l->child; c; c = c->next) {
            int rc = read_post(r, c, depth + 1, bos, eos);
            if (rc)
                return rc;
        }
        return LLM_OK;
    }
    if (strcmp(t, "TemplateProcessing") != 0)
        return llm_fail(LLM_ERR_UNSUPPORTED, "'%s': post_processor '%s' is not supported",
                        r->name, t);
    const llm_json_node *single = llm_json_get(p, "single");
    if (!single || single->type != LLM_JSON_ARRAY)
        return llm_fail(LLM_ERR_FORMAT, "'%s': TemplateProcessing without a single template",
                        r->name);
    int seen_a = 0;
    for (const llm_json_node *c = single->child; c; c = c->next) {
        const llm_json_node *sp = c->type == LLM_JSON_OBJECT ? llm_json_get(c, "SpecialToken") : NULL;
        const llm_json_node *sq = c->type == LLM_JSON_OBJECT ? llm_json_get(c, "Sequence") : NULL;
        if (sq) {
            if (seen_a)
                return llm_fail(LLM_ERR_UNSUPPORTED, "'%s': TemplateProcessing with two "
                                "sequences in its single template", r->name);
            seen_a = 1;
            continue;
        }
        const llm_json_node *id = sp && sp->type == LLM_JSON_OBJECT ? llm_json_get(sp, "id") : NULL;
        if (!id || id->type != LLM_JSON_STRING)
            return llm_fail(LLM_ERR_FORMAT, "'%s': TemplateProcessing item is neither a "
                            "SpecialToken nor a Sequence", r->name);
        int32_t tok = llm_bpe_token_id(r->b, id->str, id->len);
        if (tok < 0)
            return llm_fail(LLM_ERR_FORMAT, "'%s': TemplateProcessing special token '%s' "
                            "is not a token", r->name, id->str);
        if (!seen_a && *bos < 0)
            *bos = tok;
        else if (seen_a && *eos < 0)
            *eos = tok;
        else
            return llm_fail(LLM_ERR_UNSUPPORTED, "'%s': TemplateProcessing with more than "
                            "one special token on a side", r->name);
    }
    return LLM_OK;
}

static int get_int(const reader *r, const llm_json_node *n, const char *what, int64_t lo,
                   int64_t hi, int64_t *v)
{
    if (!n || llm_json_int64(n, v) || *v < lo || *v > hi)
        return llm_fail(LLM_ERR_FORMAT, "'%s': %s is not an integer in [%lld, %lld]",
                        r->name, what, (long long)lo, (long long)hi);
    return LLM_OK;
}

/* The token table from model.vocab and added_tokens: every id in [0, n)
 * exactly once. */
static int read_tokens(reader *r, const llm_json_node *model, const llm_json_node *root)
{
    const llm_json_node *vocab = llm_json_get(model, "vocab");
    const llm_json_node *added = llm_json_get(root, "added_tokens");
    if (!vocab || vocab->type != LLM_JSON_OBJECT)
        return llm_fail(LLM_ERR_FORMAT, "'%s': model.vocab is not an object", r->name);
    if (added && added->type == LLM_JSON_NULL)
        added = NULL;
    if (added && added->type != LLM_JSON_ARRAY)
        return llm_fail(LLM_ERR_FORMAT, "'%s': added_tokens is not an array", r->name);
    size_t total = vocab->count + (added ? added->count : 0);
    if (total == 0)
        return llm_fail(LLM_ERR_FORMAT, "'%s': no tokens", r->name);
    const char **toks = calloc(total, sizeof *toks);
    size_t *lens = calloc(total, sizeof *lens);
    int32_t *types = calloc(total, sizeof *types);
    int rc = LLM_OK;
    size_t n = 0;
    if (!toks || !lens || !types)
        rc = llm_fail(LLM_ERR_NOMEM, "out of memory");
    for (const llm_json_node *c = vocab->child; !rc && c; c = c->next) {
        int64_t id;
        if ((rc = get_int(r, c, "a model.vocab id", 0, (int64_t)total - 1, &id)))
            break;
        if (toks[id]) {
            rc = llm_fail(LLM_ERR_FORMAT, "'%s': id %lld is given to both '%s' and '%s'",
                          r->name, (long long)id, toks[id], c->key);
            break;
        }
        toks[id] = c->key;
        lens[id] = c->key_len;
        types[id] = LLM_PIECE_NORMAL;
        if ((size_t)id + 1 > n)
            n = (size_t)id + 1;
    }
    for (const llm_json_node *c = added ? added->child : NULL; !rc && c; c = c->next) {
        const llm_json_node *content = c->type == LLM_JSON_OBJECT ? llm_json_get(c, "content") : NULL;
        int64_t id;
        if (!content || content->type != LLM_JSON_STRING) {
            rc = llm_fail(LLM_ERR_FORMAT, "'%s': an added token has no content string", r->name);
            break;
        }
        if ((rc = get_int(r, llm_json_get(c, "id"), "an added token id", 0,
                          (int64_t)total - 1, &id)))
            break;
        static const char *const opts[] = {"single_word", "lstrip", "rstrip"};
        for (int k = 0; !rc && k < 3; k++)
            if (is_true(llm_json_get(c, opts[k])))
                rc = llm_fail(LLM_ERR_UNSUPPORTED, "'%s': added token '%s' has %s true "
                              "(not supported)", r->name, content->str, opts[k]);
        if (rc)
            break;
        if (toks[id] && (lens[id] != content->len || memcmp(toks[id], content->str, lens[id]))) {
            rc = llm_fail(LLM_ERR_FORMAT, "'%s': id %lld is given to both '%s' and added "
                          "token '%s'", r->name, (long long)id, toks[id], content->str);
            break;
        }
        toks[id] = content->str;
        lens[id] = content->len;
        types[id] = is_true(llm_json_get(c, "special")) ? LLM_PIECE_CONTROL : LLM_PIECE_USER;
        if ((size_t)id + 1 > n)
            n = (size_t)id + 1;
    }
    for (size_t i = 0; !rc && i < n; i++)
        if (!toks[i])
            rc = llm_fail(LLM_ERR_FORMAT, "'%s': no token has id %zu (ids must run from 0 "
                          "without gaps)", r->name, i);
    if (!rc)
        rc = add_tokens(r->b, toks, lens, n, r->name);
    if (!rc)
        rc = set_types(r->b, types, r->name);
    free(toks);
    free(lens);
    free(types);
    return rc;
}

static int read_merges(reader *r, const llm_json_node *model)
{
    const llm_json_node *m = llm_json_get(model, "merges");
    if (!m || m->type != LLM_JSON_ARRAY)
        return llm_fail(LLM_ERR_FORMAT, "'%s': model.merges is not an array", r->name);
    int rc = init_merges(r->b, m->count);
    size_t i = 0;
    for (const llm_json_node *c = m->child; !rc && c; c = c->next, i++) {
        if (c->type == LLM_JSON_STRING) {
            const char *sp = memchr(c->str, ' ', c->len);
            if (!sp || sp == c->str || sp == c->str + c->len - 1 ||
                memchr(sp + 1, ' ', c->len - (size_t)(sp - c->str) - 1))
                return llm_fail(LLM_ERR_FORMAT, "'%s': merge %zu ('%s') is not two tokens "
                                "separated by one space", r->name, i, c->str);
            rc = add_merge(r->b, c->str, (size_t)(sp - c->str), sp + 1,
                           c->len - (size_t)(sp - c->str) - 1, r->name);
        } else if (c->type == LLM_JSON_ARRAY && c->count == 2 &&
                   c->child->type == LLM_JSON_STRING && c->child->next->type == LLM_JSON_STRING) {
            const llm_json_node *a = c->child, *b = a->next;
            rc = add_merge(r->b, a->str, a->len, b->str, b->len, r->name);
        } else {
            return llm_fail(LLM_ERR_FORMAT, "'%s': merge %zu is neither \"a b\" nor [a, b]",
                            r->name, i);
        }
    }
    return rc;
}

static int read_model_options(reader *r, const llm_json_node *model)
{
    if (!is_str(llm_json_get(model, "type"), "BPE"))
        return llm_fail(LLM_ERR_UNSUPPORTED, "'%s': model type '%s' is not supported "
                        "(only BPE)", r->name, type_of(model));
    const llm_json_node *d = llm_json_get(model, "dropout");
    if (!is_null(d))
        return llm_fail(LLM_ERR_UNSUPPORTED, "'%s': model.dropout is not supported", r->name);
    static const char *const strs[] = {"continuing_subword_prefix", "end_of_word_suffix"};
    for (int i = 0; i < 2; i++) {
        const llm_json_node *n = llm_json_get(model, strs[i]);
        if (!is_null(n) && !is_str(n, ""))
            return llm_fail(LLM_ERR_UNSUPPORTED, "'%s': model.%s is not supported", r->name,
                            strs[i]);
    }
    if (is_true(llm_json_get(model, "byte_fallback")))
        return llm_fail(LLM_ERR_UNSUPPORTED, "'%s': model.byte_fallback true is not supported "
                        "(a byte-level model needs none)", r->name);
    return LLM_OK;
}

static int read_special(reader *r, const llm_json_node *model, const llm_json_node *root)
{
    llm_bpe *b = r->b;
    int bos = -1, eos = -1, rc;
    const llm_json_node *post = llm_json_get(root, "post_processor");
    if ((rc = read_post(r, post, 0, &bos, &eos)))
        return rc;
    b->special[LLM_BPE_BOS] = bos;
    b->special[LLM_BPE_EOS] = eos;
    b->special[LLM_BPE_ADD_BOS] = bos >= 0;
    b->special[LLM_BPE_ADD_EOS] = eos >= 0;
    b->special[LLM_BPE_UNK] = b->special[LLM_BPE_PAD] = -1;
    const llm_json_node *unk = llm_json_get(model, "unk_token");
    if (!is_null(unk)) {
        if (unk->type != LLM_JSON_STRING ||
            (b->special[LLM_BPE_UNK] = llm_bpe_token_id(b, unk->str, unk->len)) < 0)
            return llm_fail(LLM_ERR_FORMAT, "'%s': model.unk_token is not a token", r->name);
    }
    const llm_json_node *l = llm_json_get(model, "llm");
    if (l && l->type == LLM_JSON_OBJECT) {
        static const char *const keys[] = {"bos_id", "eos_id", "unk_id", "pad_id", "add_bos",
                                           "add_eos"};
        for (int i = 0; i < LLM_BPE_N_SPECIAL; i++) {
            const llm_json_node *v = llm_json_get(l, keys[i]);
            int64_t x;
            char what[32];
            snprintf(what, sizeof what, "model.llm.%s", keys[i]);
            if (v && (rc = get_int(r, v, what, -1, (int64_t)b->n - 1, &x)))
                return rc;
            if (v)
                b->special[i] = (int)x;
        }
        const llm_json_node *ty = llm_json_get(l, "types");
        if (ty && ty->type != LLM_JSON_ARRAY)
            return llm_fail(LLM_ERR_FORMAT, "'%s': model.llm.types is not an array", r->name);
        for (const llm_json_node *c = ty ? ty->child : NULL; c; c = c->next) {
            int64_t id, t;
            if (c->type != LLM_JSON_ARRAY || c->count != 2)
                return llm_fail(LLM_ERR_FORMAT, "'%s': model.llm.types holds a non-pair", r->name);
            if ((rc = get_int(r, c->child, "a model.llm.types id", 0, (int64_t)b->n - 1, &id)) ||
                (rc = get_int(r, c->child->next, "a model.llm.types type", 1, 6, &t)))
                return rc;
            if (t == LLM_PIECE_CONTROL || t == LLM_PIECE_USER ||
                b->type[id] == LLM_PIECE_CONTROL || b->type[id] == LLM_PIECE_USER)
                return llm_fail(LLM_ERR_FORMAT, "'%s': model.llm.types changes whether token "
                                "%lld is an added token", r->name, (long long)id);
            b->type[id] = (unsigned char)t;
        }
    }
    if (b->special[LLM_BPE_UNK] >= 0 && b->type[b->special[LLM_BPE_UNK]] == LLM_PIECE_NORMAL)
        b->type[b->special[LLM_BPE_UNK]] = LLM_PIECE_UNKNOWN;
    return check_special(b, r->name);
}

static int read_json(reader *r, const llm_json_node *root)
{
    if (root->type != LLM_JSON_OBJECT)
        return llm_fail(LLM_ERR_FORMAT, "'%s': not a tokenizer.json (not an object)", r->name);
    const llm_json_node *model = llm_json_get(root, "model");
    if (!model || model->type != LLM_JSON_OBJECT)
        return llm_fail(LLM_ERR_FORMAT, "'%s': not a tokenizer.json (no model object)", r->name);
    int rc = read_model_options(r, model);
    if (rc)
        return rc;
    const llm_json_node *norm = llm_json_get(root, "normalizer");
    if (!is_null(norm) && strcmp(type_of(norm), "NFC") != 0)
        return llm_fail(LLM_ERR_UNSUPPORTED, "'%s': normalizer '%s' is not supported "
                        "(only null and NFC)", r->name, type_of(norm));
    r->b->nfc = !is_null(norm);
    const llm_json_node *pre = llm_json_get(root, "pre_tokenizer");
    if (is_null(pre))
        return llm_fail(LLM_ERR_UNSUPPORTED, "'%s': no pre_tokenizer: not a byte-level BPE "
                        "model (ByteLevel needed)", r->name);
    if ((rc = read_pre(r, pre, 0)))
        return rc;
    if (!r->seen_bytelevel)
        return llm_fail(LLM_ERR_UNSUPPORTED, "'%s': pre_tokenizer has no ByteLevel: not a "
                        "byte-level BPE model", r->name);
    const llm_json_node *dec = llm_json_get(root, "decoder");
    if (!is_null(dec) && strcmp(type_of(dec), "ByteLevel") != 0)
        return llm_fail(LLM_ERR_UNSUPPORTED, "'%s': decoder '%s' is not supported "
                        "(only ByteLevel)", r->name, type_of(dec));
    if ((rc = read_tokens(r, model, root)) || (rc = derive(r->b)) ||
        (rc = read_merges(r, model)))
        return rc;
    for (size_t i = 0; i < r->n_re; i++)
        if ((rc = add_regex(r->b, r->re[i], r->re_len[i], r->name)))
            return rc;
    const llm_json_node *im = llm_json_get(model, "ignore_merges");
    r->b->ignore_merges = is_true(im);
    return read_special(r, model, root);
}

int llm_bpe_from_json(const char *text, size_t len, const char *name, llm_bpe **out)
{
    *out = NULL;
    if (!name)
        name = "(memory)";
    llm_json *j;
    int rc = llm_json_parse(text, len, name, 0, &j);
    if (rc)
        return rc;
    reader r;
    memset(&r, 0, sizeof r);
    r.name = name;
    r.b = calloc(1, sizeof *r.b);
    if (!r.b)
        rc = llm_fail(LLM_ERR_NOMEM, "out of memory");
    else
        rc = read_json(&r, llm_json_root(j));
    for (size_t i = 0; i < r.n_re; i++)
        free(r.re[i]);
    llm_json_free(j);
    if (rc) {
        llm_bpe_free(r.b);
        return rc;
    }
    *out = r.b;
    return LLM_OK;
}
