/* unigram.c: our own encoder for SentencePiece unigram models. It follows
 * SentencePiece 0.1.97 step for step (Normalizer::Normalize, then
 * unigram::Model::EncodeOptimized, then the unknown-piece handling of
 * SentencePieceProcessor::PopulateSentencePieceText) so that the ids are the
 * same for every input, but builds no protobuf, allocates nothing per call
 * once warm, and never computes what only the surfaces need. */
#include <float.h>
#include <stdlib.h>
#include <string.h>

#include "unigram.h"

/* ---------------------------------------------------------------- pieces trie
 * The pieces SentencePiece puts in its trie (normal, user-defined and unused
 * ones), as an open-addressing hash of (parent node, byte) -> node: a node is
 * its slot, so one probe sequence per byte finds the child and the piece
 * ending there. Linear to build, which matters as every command loads a
 * tokenizer. */

typedef struct {
    uint32_t key;       /* (parent slot + 1) << 8 | byte, the root's slot being -1; 0: empty */
    int32_t id;         /* the normal or user-defined piece spelled up to here, else -1 */
} trie_slot;

/* Slots are named by 23 bits so that keys fit in 32 bits. */
#define TRIE_MAX_SLOTS ((size_t)1 << 23)

/* Charsmap lookups with more results than this overflow SentencePiece's
 * fixed array (Normalizer::kMaxTrieResultsSize); its builder never makes
 * such a map. */
#define CHARSMAP_MAX_RESULTS 32

/* quick[] entries for bytes below 0x80 whose normalization depends on the
 * byte alone; other values are offsets of a replacement. */
enum { QUICK_SLOW = -2, QUICK_KEEP = -1 };

struct llm_unigram {
    trie_slot *slots;           /* (mask + 1) */
    uint32_t mask;
    int shift;                  /* 32 - log2(mask + 1), for the hash */
    int32_t root[256];          /* slot of each one-byte prefix, -1 when none */
    float *scores;              /* (n_pieces) */
    unsigned char *user;        /* (n_pieces) 1 for user-defined; NULL when there are none */
    unsigned char user_first[256];  /* some user-defined piece starts with this byte */
    float max_score;            /* over normal pieces, as unigram::Model computes it */
    float unk_score;
    int32_t unk_id;
    int byte_fallback;
    int32_t byte_id[256];       /* id of <0xXX>, when byte_fallback */
    /* The normalizer: a darts-clone double array (NULL for identity) whose
     * values are offsets of NUL-terminated replacements in strs. */
    uint32_t *units;
    char *strs;
    int32_t quick[128];
    int32_t quick_len[128];
    int add_dummy_prefix, remove_extra_ws, escape_ws;
};

static inline uint32_t trie_hash(const llm_unigram *u, uint32_t key)
{
    return (key * 0x9E3779B1u) >> u->shift;
}

/* The child of slot `node` by byte c, or -1. */
static inline int32_t trie_child(const llm_unigram *u, int32_t node, unsigned char c)
{
    uint32_t key = ((uint32_t)node + 1) << 8 | c;
    uint32_t h = trie_hash(u, key);
    for (;;) {
        uint32_t k = u->slots[h].key;
        if (k == key)
            return (int32_t)h;
        if (k == 0)
            return -1;
        h = (h + 1) & u->mask;
    }
}

static int32_t trie_insert(llm_unigram *u, int32_t node, unsigned char c)
{
    uint32_t key = ((uint32_t)node + 1) << 8 | c;
    uint32_t h = trie_hash(u, key);
    while (u->slots[h].key != key) {
        if (u->slots[h].key == 0) {
            u->slots[h].key = key;
            break;
        }
        h = (h + 1) & u->mask;
    }
    if (node < 0)
        u->root[c] = (int32_t)h;
    return (int32_t)h;
}

/* ---------------------------------------------------------------- charsmap
 * darts-clone's unit: the label in bits 0-7 (bit 31 set on leaf units, so
 * that no byte matches them), "has a leaf child" in bit 8, and the offset
 * to the children in bits 10-31, shifted left by 8 when bit 9 is set. */

static inline uint32_t unit_offset(uint32_t u) { return (u >> 10) << ((u & (1u << 9)) >> 6); }
static inline uint32_t unit_label(uint32_t u) { return u & ((1u << 31) | 0xFF); }
static inline int unit_has_leaf(uint32_t u) { return (u >> 8) & 1; }
static inline uint32_t unit_value(uint32_t u) { return u & ((1u << 31) - 1); }

/* Checks every offset a lookup can follow, once, so that lookups need no
 * bounds checks: each unit a byte can match (label bit 31 clear), and the
 * root, must have its 256 children inside the array, and the value of its
 * leaf must start a NUL-terminated string. */
int llm_charsmap_check(const unsigned char *b, size_t n)
{
    /* Normalizer::DecodePrecompiledCharsMap: a little-endian uint32 trie
     * size in bytes, the double array, then the replacement strings. */
    if (n <= 4 || llm_le32(b) > n - 4)
        return llm_fail(LLM_ERR_FORMAT, "corrupt normalization map (trie past the end)");
    size_t trie = llm_le32(b), n_units = trie / 4;
    const unsigned char *units = b + 4, *strs = b + 4 + trie;
    size_t end = n - 4 - trie;   /* a string must start before the last NUL */
    while (end && strs[end - 1] != 0)
        end--;
    if (n_units == 0)
        return llm_fail(LLM_ERR_FORMAT, "corrupt normalization map (no trie)");
    for (size_t i = 0; i < n_units; i++) {
        uint32_t unit = llm_le32(units + 4 * i);
        if (i != 0 && (unit >> 31))
            continue;
        size_t base = i ^ unit_offset(unit);
        if ((base | 0xFF) >= n_units)
            return llm_fail(LLM_ERR_FORMAT, "corrupt normalization map "
                            "(unit %zu points past the end)", i);
        if (i != 0 && unit_has_leaf(unit) && unit_value(llm_le32(units + 4 * base)) >= end)
            return llm_fail(LLM_ERR_FORMAT, "corrupt normalization map "
                            "(unit %zu has a value past the strings)", i);
    }
    return LLM_OK;
}

/* Result of normalizing the longest prefix of the text (NormalizePrefix). */
typedef struct {
    const char *rep;    /* its replacement */
    size_t len;         /* bytes in rep */
    size_t used;        /* bytes of text it stands for */
} prefix;

/* string_util::DecodeUTF8: the length of the well-formed character at
 * s[0..n), n > 0, or 0 (overlong forms, surrogates and code points past
 * U+10FFFF are malformed). */
static size_t utf8_char_len(const unsigned char *s, size_t n)
{
    unsigned c = s[0];
    if (c < 0x80)
        return 1;
    if (n >= 2 && (c & 0xE0) == 0xC0) {
        uint32_t cp = (c & 0x1Fu) << 6 | (s[1] & 0x3Fu);
        if ((s[1] & 0xC0) == 0x80 && cp >= 0x80)
            return 2;
    } else if (n >= 3 && (c & 0xF0) == 0xE0) {
        uint32_t cp = (c & 0x0Fu) << 12 | (s[1] & 0x3Fu) << 6 | (s[2] & 0x3Fu);
        if ((s[1] & 0xC0) == 0x80 && (s[2] & 0xC0) == 0x80 && cp >= 0x800 &&
            (cp < 0xD800 || cp >= 0xE000))
            return 3;
    } else if (n >= 4 && (c & 0xF8) == 0xF0) {
        uint32_t cp = (c & 0x07u) << 18 | (s[1] & 0x3Fu) << 12 | (s[2] & 0x3Fu) << 6 |
                      (s[3] & 0x3Fu);
        if ((s[1] & 0xC0) == 0x80 && (s[2] & 0xC0) == 0x80 && (s[3] & 0xC0) == 0x80 &&
            cp >= 0x10000 && cp <= 0x10FFFF)
            return 4;
    }
    return 0;
}

static const char kReplacement[] = "\xEF\xBF\xBD";   /* U+FFFD */

/* Normalizer::NormalizePrefix over s[0..n), n > 0: a user-defined piece
 * stays as it is; else the longest charsmap match gives its replacement;
 * else one character stays, a malformed byte becoming U+FFFD.
 * @return 0, LLM_UNIGRAM_FALLBACK for a NUL kept in the text, or
 * LLM_ERR_FORMAT for a charsmap SentencePiece cannot read either. */
static int normalize_prefix(const llm_unigram *u, const unsigned char *s, size_t n, prefix *p)
{
    if (u->user && u->user_first[s[0]]) {
        size_t best = 0;
        int32_t node = u->root[s[0]];
        for (size_t k = 1;; k++) {
            int32_t id = u->slots[node].id;
            if (id >= 0 && u->user[id])
                best = k;
            if (k == n || (node = trie_child(u, node, s[k])) < 0)
                break;
        }
        if (best) {
            p->rep = (const char *)s;
            p->len = p->used = best;
            return 0;
        }
    }
    if (u->units) {
        const uint32_t *units = u->units;
        size_t best = 0;
        uint32_t value = 0;
        int hits = 0;
        uint32_t pos = unit_offset(units[0]);
        for (size_t i = 0; i < n; i++) {
            pos ^= s[i];
            uint32_t unit = units[pos];
            if (unit_label(unit) != s[i])
                break;
            pos ^= unit_offset(unit);
            if (unit_has_leaf(unit)) {
                if (++hits > CHARSMAP_MAX_RESULTS)
                    return llm_fail(LLM_ERR_FORMAT, "tokenizer: corrupt normalization map "
                                    "(more than %d nested rules)", CHARSMAP_MAX_RESULTS);
                best = i + 1;
                value = unit_value(units[pos]);
            }
        }
        if (best) {
            p->rep = u->strs + value;
            p->len = strlen(p->rep);
            p->used = best;
            return 0;
        }
    }
    size_t k = utf8_char_len(s, n);
    if (k == 0) {
        p->rep = kReplacement;
        p->len = 3;
        p->used = 1;
        return 0;
    }
    if (s[0] == 0)
        return LLM_UNIGRAM_FALLBACK;
    p->rep = (const char *)s;
    p->len = p->used = k;
    return 0;
}

/* ---------------------------------------------------------------- build */

void llm_unigram_free(llm_unigram *u)
{
    if (!u)
        return;
    free(u->slots);
    free(u->scores);
    free(u->user);
    free(u->units);
    free(u->strs);
    free(u);
}

/* "<0xXX>", as ByteToPiece writes it: the byte, or -1. */
static int byte_of_piece(const char *p, size_t n)
{
    static const char hex[] = "0123456789ABCDEF";
    if (n != 6 || memcmp(p, "<0x", 3) != 0 || p[5] != '>')
        return -1;
    const char *hi = memchr(hex, p[3], 16), *lo = memchr(hex, p[4], 16);
    if (!hi || !lo)
        return -1;
    return (int)(hi - hex) * 16 + (int)(lo - hex);
}

static int build_trie(llm_unigram *u, const llm_unigram_spec *s, const char **why)
{
    size_t bytes = 0;
    for (int i = 0; i < s->n_pieces; i++) {
        unsigned t = s->types[i];
        if (t != LLM_PIECE_NORMAL && t != LLM_PIECE_USER && t != LLM_PIECE_UNUSED)
            continue;
        /* SentencePiece's trie keys are C strings: a NUL would cut the piece. */
        if (memchr(s->pieces[i], 0, s->piece_lens[i])) {
            *why = "a piece holds a NUL byte";
            return LLM_UNIGRAM_FALLBACK;
        }
        bytes += s->piece_lens[i];
    }
    /* At most one node per byte: a load factor of at most 1/2. */
    size_t cap = 256;
    while (cap < 2 * bytes && cap < TRIE_MAX_SLOTS)
        cap *= 2;
    if (cap < 2 * bytes) {
        *why = "too many pieces";
        return LLM_UNIGRAM_FALLBACK;
    }
    u->slots = calloc(cap, sizeof *u->slots);
    if (!u->slots)
        return llm_fail(LLM_ERR_NOMEM, "out of memory (tokenizer trie)");
    u->mask = (uint32_t)cap - 1;
    u->shift = 32;
    for (size_t c = cap; c > 1; c /= 2)
        u->shift--;
    for (size_t i = 0; i < cap; i++)
        u->slots[i].id = -1;
    for (int c = 0; c < 256; c++)
        u->root[c] = -1;
    for (int i = 0; i < s->n_pieces; i++) {
        unsigned t = s->types[i];
        if (t != LLM_PIECE_NORMAL && t != LLM_PIECE_USER && t != LLM_PIECE_UNUSED)
            continue;
        const unsigned char *p = (const unsigned char *)s->pieces[i];
        int32_t node = -1;
        for (size_t k = 0; k < s->piece_lens[i]; k++)
            node = trie_insert(u, node, p[k]);
        /* unigram::Model skips unused pieces where it finds them. */
        if (node >= 0 && t != LLM_PIECE_UNUSED)
            u->slots[node].id = i;
        if (t == LLM_PIECE_USER && s->piece_lens[i])
            u->user_first[p[0]] = 1;
    }
    return LLM_OK;
}

static int build_charsmap(llm_unigram *u, const llm_unigram_spec *s)
{
    int rc = llm_charsmap_check(s->charsmap, s->charsmap_len);
    if (rc)
        return rc;
    const unsigned char *b = s->charsmap;
    size_t trie = llm_le32(b), n_units = trie / 4, strs_len = s->charsmap_len - 4 - trie;
    u->units = malloc(n_units * sizeof *u->units);
    u->strs = malloc(strs_len ? strs_len : 1);
    if (!u->units || !u->strs)
        return llm_fail(LLM_ERR_NOMEM, "out of memory (tokenizer charsmap)");
    for (size_t i = 0; i < n_units; i++)
        u->units[i] = llm_le32(b + 4 + 4 * i);
    memcpy(u->strs, b + 4 + trie, strs_len);
    return LLM_OK;
}

/* quick[c] for bytes below 0x80 whose lookup cannot go past them. */
static void build_quick(llm_unigram *u)
{
    for (int c = 0; c < 128; c++) {
        u->quick[c] = QUICK_KEEP;
        u->quick_len[c] = 1;
        if (u->user && u->user_first[c]) {
            u->quick[c] = QUICK_SLOW;
            continue;
        }
        if (!u->units)
            continue;
        uint32_t node = unit_offset(u->units[0]) ^ (uint32_t)c;
        uint32_t unit = u->units[node];
        if (unit_label(unit) != (uint32_t)c)
            continue;
        uint32_t base = node ^ unit_offset(unit);
        for (uint32_t k = 0; k < 256; k++)
            if (unit_label(u->units[base ^ k]) == k)
                u->quick[c] = QUICK_SLOW;
        if (u->quick[c] == QUICK_SLOW || !unit_has_leaf(unit))
            continue;
        u->quick[c] = (int32_t)unit_value(u->units[base]);
        u->quick_len[c] = (int32_t)strlen(u->strs + u->quick[c]);
    }
    /* A NUL kept in the text goes to SentencePiece (normalize_prefix()). */
    if (u->quick[0] == QUICK_KEEP)
        u->quick[0] = QUICK_SLOW;
}

int llm_unigram_new(const llm_unigram_spec *s, llm_unigram **out, const char **why)
{
    *out = NULL;
    *why = NULL;
    llm_unigram *u = calloc(1, sizeof *u);
    if (!u)
        return llm_fail(LLM_ERR_NOMEM, "out of memory (tokenizer)");
    size_t n = (size_t)(s->n_pieces > 0 ? s->n_pieces : 0);
    u->scores = malloc((n ? n : 1) * sizeof *u->scores);
    if (!u->scores) {
        llm_unigram_free(u);
        return llm_fail(LLM_ERR_NOMEM, "out of memory (tokenizer)");
    }
    /* unigram::Model's bounds start at FLT_MAX and FLT_MIN (the smallest
     * positive float) and take normal pieces with std::min and std::max,
     * which keep the bound when the score is NaN. */
    float min_score = FLT_MAX, max_score = FLT_MIN;
    u->unk_id = -1;
    for (int b = 0; b < 256; b++)
        u->byte_id[b] = -1;
    int n_user = 0, n_bytes = 0;
    for (int i = 0; i < s->n_pieces; i++) {
        float sc = s->scores[i];
        u->scores[i] = sc;
        switch (s->types[i]) {
        case LLM_PIECE_NORMAL:
            if (sc < min_score)
                min_score = sc;
            if (max_score < sc)
                max_score = sc;
            break;
        case LLM_PIECE_UNKNOWN:
            if (u->unk_id < 0)
                u->unk_id = i;
            break;
        case LLM_PIECE_USER:
            n_user++;
            break;
        case LLM_PIECE_BYTE: {
            int b = byte_of_piece(s->pieces[i], s->piece_lens[i]);
            if (b >= 0 && u->byte_id[b] < 0) {
                u->byte_id[b] = i;
                n_bytes++;
            }
            break;
        }
        default:
            break;
        }
    }
    int rc = LLM_OK;
    /* SentencePiece refuses models without these; to be safe, leave them to it. */
    if (u->unk_id < 0 || (s->byte_fallback && n_bytes != 256)) {
        *why = "no <unk>, or byte pieces missing";
        rc = LLM_UNIGRAM_FALLBACK;
    }
    u->unk_score = min_score - 10.0f;   /* kUnkPenalty */
    u->max_score = max_score;
    u->byte_fallback = s->byte_fallback;
    if (!rc && n_user) {
        u->user = calloc(n, 1);
        if (!u->user)
            rc = llm_fail(LLM_ERR_NOMEM, "out of memory (tokenizer)");
        for (int i = 0; !rc && i < s->n_pieces; i++)
            u->user[i] = s->types[i] == LLM_PIECE_USER;
    }
    if (!rc)
        rc = build_trie(u, s, why);
    if (!rc && s->charsmap_len)
        rc = build_charsmap(u, s);
    if (rc) {
        llm_unigram_free(u);
        return rc;
    }
    build_quick(u);
    u->add_dummy_prefix = s->add_dummy_prefix;
    u->remove_extra_ws = s->remove_extra_ws;
    u->escape_ws = s->escape_ws;
    *out = u;
    return LLM_OK;
}

/* ---------------------------------------------------------------- encode */

/* The best path ending at a byte position (EncodeOptimized's BestPathNode). */
typedef struct {
    float score;
    int32_t start;      /* where its last piece starts, -1: none yet */
    int32_t id;
} best_node;

void llm_unigram_scratch_free(llm_unigram_scratch *s)
{
    if (!s)
        return;
    free(s->text);
    free(s->best);
    s->text = NULL;
    s->best = NULL;
    s->text_cap = s->best_cap = 0;
}

static int reserve(void **p, size_t *cap, size_t want, size_t elem)
{
    if (want <= *cap)
        return LLM_OK;
    size_t ncap = *cap ? *cap : 256;
    while (ncap < want) {
        if (ncap > SIZE_MAX / 2 / elem)
            return llm_fail(LLM_ERR_NOMEM, "tokenizer: text too long");
        ncap *= 2;
    }
    void *q = realloc(*p, ncap * elem);
    if (!q)
        return llm_fail(LLM_ERR_NOMEM, "out of memory (%zu bytes)", ncap * elem);
    *p = q;
    *cap = ncap;
    return LLM_OK;
}

static int reserve_text(llm_unigram_scratch *s, size_t want)
{
    void *p = s->text;
    int rc = reserve(&p, &s->text_cap, want, 1);
    s->text = p;
    return rc;
}

static const char kSpace[] = "\xE2\x96\x81";   /* U+2581, the escaped space */

/* Normalizer::Normalize into s->text; *len its length. */
static int normalize(const llm_unigram *u, const unsigned char *in, size_t n,
                     llm_unigram_scratch *s, size_t *len)
{
    *len = 0;
    size_t i = 0;
    prefix p;
    int rc;
    /* Leading text that normalizes to exactly " " is dropped. */
    if (u->remove_extra_ws) {
        while (i < n) {
            if ((rc = normalize_prefix(u, in + i, n - i, &p)))
                return rc;
            if (p.len != 1 || p.rep[0] != ' ')
                break;
            i += p.used;
        }
    }
    if (i == n)
        return LLM_OK;
    /* Room for 3 bytes per input byte left (a space becomes 3 bytes), kept
     * as the loop goes: only a replacement longer than its input needs more. */
    size_t want, at = 0;
    if (llm_mul_size(n - i, 3, &want) || llm_add_size(want, 3, &want))
        return llm_fail(LLM_ERR_NOMEM, "tokenizer: text too long");
    if ((rc = reserve_text(s, want)))
        return rc;
    char *out = s->text;
    const int esc = u->escape_ws;
    if (u->add_dummy_prefix) {
        if (esc) {
            memcpy(out, kSpace, 3);
            at = 3;
        } else {
            out[at++] = ' ';
        }
    }
    int prev_space = u->remove_extra_ws;
    while (i < n) {
        unsigned char c = in[i];
        if (c < 0x80 && u->quick[c] != QUICK_SLOW) {
            p.rep = u->quick[c] == QUICK_KEEP ? (const char *)in + i : u->strs + u->quick[c];
            p.len = (size_t)u->quick_len[c];
            p.used = 1;
        } else if ((rc = normalize_prefix(u, in + i, n - i, &p))) {
            return rc;
        }
        const char *r = p.rep;
        size_t k = p.len;
        /* Spaces right after a space are dropped. */
        if (prev_space)
            while (k && *r == ' ') {
                r++;
                k--;
            }
        if (k) {
            if (k > p.used) {
                size_t need;
                if (llm_mul_size(k + n - i - p.used, 3, &need) || llm_add_size(need, at, &need))
                    return llm_fail(LLM_ERR_NOMEM, "tokenizer: text too long");
                if ((rc = reserve_text(s, need)))
                    return rc;
                out = s->text;
            }
            for (size_t j = 0; j < k; j++) {
                if (r[j] == ' ' && esc) {
                    memcpy(out + at, kSpace, 3);
                    at += 3;
                } else {
                    out[at++] = r[j];
                }
            }
            prev_space = r[k - 1] == ' ';
        }
        i += p.used;
        if (!u->remove_extra_ws)
            prev_space = 0;
    }
    /* Trailing spaces are dropped, the dummy prefix too if nothing else is left. */
    if (u->remove_extra_ws) {
        if (esc)
            while (at >= 3 && memcmp(out + at - 3, kSpace, 3) == 0)
                at -= 3;
        else
            while (at >= 1 && out[at - 1] == ' ')
                at--;
    }
    *len = at;
    return LLM_OK;
}

/* string_util::OneCharLen: the length of a character from its first byte. */
static inline int one_char_len(unsigned char c)
{
    return "\1\1\1\1\1\1\1\1\1\1\1\1\2\2\3\4"[c >> 4];
}

/* unigram::Model::EncodeOptimized's arithmetic: a piece's candidate score is
 * computed and compared in double (the score is the double of a conditional
 * whose other branch, for user-defined pieces, is double), then stored as
 * float; the unknown character's candidate stays in float throughout. */
static void viterbi(const llm_unigram *u, const unsigned char *t, int size, best_node *best)
{
    for (int i = 0; i <= size; i++) {
        best[i].score = 0.0f;
        best[i].start = -1;
        best[i].id = -1;
    }
    const trie_slot *slots = u->slots;
    int mblen;
    for (int start = 0; start < size; start += mblen) {
        const float here = best[start].score;
        mblen = one_char_len(t[start]);
        if (mblen > size - start)
            mblen = size - start;
        int single = 0;
        int32_t node = u->root[t[start]];
        for (int end = start + 1; node >= 0; end++) {
            int32_t id = slots[node].id;
            if (id >= 0) {
                double score;
                if (u->user && u->user[id]) {
                    float lm = (float)(end - start) * u->max_score;
                    score = (double)lm - 0.1;
                } else {
                    score = u->scores[id];
                }
                double cand = score + (double)here;
                best_node *b = &best[end];
                if (b->start < 0 || cand > (double)b->score) {
                    b->score = (float)cand;
                    b->start = start;
                    b->id = id;
                }
                if (end - start == mblen)
                    single = 1;
            }
            if (end == size)
                break;
            node = trie_child(u, node, t[end]);
        }
        if (!single) {
            float cand = u->unk_score + here;
            best_node *b = &best[start + mblen];
            if (b->start < 0 || cand > b->score) {
                b->score = cand;
                b->start = start;
                b->id = u->unk_id;
            }
        }
    }
}

int llm_unigram_encode(const llm_unigram *u, const char *text, size_t n,
                       llm_unigram_scratch *s, llm_ids *out)
{
    /* A NUL can reach the pieces through the user-defined piece matcher
     * too, whose trie SentencePiece builds with darts-clone. */
    if (u->user && n && memchr(text, 0, n))
        return LLM_UNIGRAM_FALLBACK;
    size_t len;
    int rc = normalize(u, (const unsigned char *)text, n, s, &len);
    if (rc || len == 0)
        return rc;
    /* EncodeOptimized indexes the text with int. */
    if (len >= (size_t)INT32_MAX)
        return LLM_UNIGRAM_FALLBACK;
    if ((rc = reserve(&s->best, &s->best_cap, len + 1, sizeof(best_node))))
        return rc;
    best_node *best = s->best;
    const unsigned char *t = (const unsigned char *)s->text;
    viterbi(u, t, (int)len, best);

    /* Every piece is at least one byte, and so is every byte piece. */
    size_t first = out->len;
    if ((rc = llm_ids_reserve(out, first + len)))
        return rc;
    int32_t *ids = out->data;
    size_t k = first;
    /* Backwards from the end: an unknown piece becomes the byte pieces of
     * its (normalized) bytes with byte fallback, else a run of unknown
     * pieces gives one <unk>. Then the ids are put in order. */
    for (int end = (int)len; end > 0;) {
        const best_node *b = &best[end];
        int start = b->start;
        if (b->id != u->unk_id) {
            ids[k++] = b->id;
        } else if (u->byte_fallback) {
            for (int j = end - 1; j >= start; j--)
                ids[k++] = u->byte_id[t[j]];
        } else if (start == 0 || best[start].id != u->unk_id) {
            ids[k++] = b->id;
        }
        end = start;
    }
    for (size_t a = first, z = k - 1; a < z; a++, z--) {
        int32_t x = ids[a];
        ids[a] = ids[z];
        ids[z] = x;
    }
    out->len = k;
    return LLM_OK;
}
