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
 * ones), as a double array of our own: the child of unit x by byte c is unit
 * base(x) ^ c when that unit's check is x, so one load per byte of text
 * walks it, and the unit carries the piece and score found there. With XOR,
 * a base's 256 children share its aligned block of 256 units, so units come
 * in whole blocks and a lookup needs no bounds check. */

typedef struct {
    int32_t base;       /* children at base ^ byte */
    int32_t check;      /* the parent unit; DA_FREE, or DA_ROOT for unit 0 */
    int32_t id;         /* the normal or user-defined piece spelled up to here, else -1 */
    float score;        /* its score */
} da_unit;

enum { DA_FREE = -1, DA_ROOT = -2 };

/* Units are int32-indexed; beyond this the model stays with SentencePiece. */
#define DA_MAX_UNITS ((size_t)1 << 30)

/* Charsmap lookups with more results than this overflow SentencePiece's
 * fixed array (Normalizer::kMaxTrieResultsSize); its builder never makes
 * such a map. */
#define CHARSMAP_MAX_RESULTS 32

/* quick[c], for a byte c below 0x80 followed by another or by the end:
 * whether its normalization depends on c alone, and then whether c stays or
 * which replacement (an offset in strs) it gets. */
enum { QUICK_SLOW = -2, QUICK_KEEP = -1 };

struct llm_unigram {
    da_unit *units;             /* the pieces trie, in whole blocks of 256 */
    unsigned char *user;        /* (n_pieces) 1 for user-defined; NULL when there are none */
    unsigned char user_first[256];  /* some user-defined piece starts with this byte */
    float max_score;            /* over normal pieces, as unigram::Model computes it */
    float unk_score;
    int32_t unk_id;
    int byte_fallback;
    int32_t byte_id[256];       /* id of <0xXX>, when byte_fallback */
    /* The normalizer: a darts-clone double array (NULL for identity) whose
     * values are offsets of NUL-terminated replacements in strs. */
    uint32_t *cmap;
    char *strs;
    int32_t quick[128];
    int32_t quick_len[128];
    int add_dummy_prefix, remove_extra_ws, escape_ws;
};

/* The child of unit x by byte c (c > 0), or -1. */
static inline int32_t da_child(const da_unit *units, int32_t x, unsigned char c)
{
    int32_t y = units[x].base ^ c;
    return units[y].check == x ? y : -1;
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
 * leaf must start a NUL-terminated string. The root is a unit a byte can
 * match too when one leads back to it (a base in block 0): darts-clone never
 * lays a trie out so, but a crafted map can. */
int llm_charsmap_check(const unsigned char *b, size_t n)
{
    /* Normalizer::DecodePrecompiledCharsMap: a little-endian uint32 trie
     * size in bytes, the double array, then the replacement strings. */
    if (n <= 4 || llm_le32(b) > n - 4)
        return llm_fail(LLM_ERR_FORMAT, "corrupt normalization map (trie past the end)");
    size_t trie = llm_le32(b), n_units = trie / 4;
    const unsigned char *units = b + 4, *strs = b + 4 + trie;
    size_t end = n - 4 - trie;   /* strings start before, so end at, the last NUL */
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
        if (!(unit >> 31) && unit_has_leaf(unit) &&
            unit_value(llm_le32(units + 4 * base)) >= end)
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
        int32_t x = 0;
        for (size_t k = 0; k < n && (x = da_child(u->units, x, s[k])) >= 0; k++) {
            int32_t id = u->units[x].id;
            if (id >= 0 && u->user[id])
                best = k + 1;
        }
        if (best) {
            p->rep = (const char *)s;
            p->len = p->used = best;
            return 0;
        }
    }
    if (u->cmap) {
        const uint32_t *units = u->cmap;
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
                    return llm_fail(LLM_ERR_FORMAT, "corrupt normalization map "
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
    free(u->user);
    free(u->units);
    free(u->cmap);
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

/* ---------------------------------------------------------------- building the trie
 * A level (byte position) at a time, as darts-clone builds from sorted
 * keys. The pieces still longer than the level are kept grouped by the node
 * they have reached; within a group, sorted by their next byte, the distinct
 * bytes are the node's children, all placed at once at the first base where
 * each finds a free unit. One-child nodes, most of them, take the first
 * free unit and so fill the gaps the others leave. */

/* The double array while it is built: a bitmap of the units taken, so that
 * searches skip them a word at a time. Nodes with several children start
 * their search at `scan`, which moves on past free units that have failed
 * DA_TRIES searches (as darts' old next_check_pos skipped dense regions),
 * and after DA_SEARCH failures take a fresh block. */
typedef struct {
    size_t cap;             /* units, a power of 2 */
    uint64_t *taken;        /* (cap / 64) */
    unsigned char *fails;   /* (cap) searches each free unit failed */
    size_t head, scan;      /* no free unit below head; where searches start */
    size_t end;             /* past the last unit taken */
} da_build;

#define DA_TRIES 8
#define DA_SEARCH 256

/* Grows the units to at least `want`, new ones free. */
static int da_grow(llm_unigram *u, da_build *d, size_t want)
{
    if (want <= d->cap)
        return LLM_OK;
    size_t n = d->cap ? d->cap : 1024;
    while (n < want)
        n *= 2;
    if (n > DA_MAX_UNITS)
        return LLM_UNIGRAM_FALLBACK;
    da_unit *v = realloc(u->units, n * sizeof *v);
    if (v)
        u->units = v;
    uint64_t *taken = v ? realloc(d->taken, n / 8) : NULL;
    if (taken)
        d->taken = taken;
    unsigned char *fails = taken ? realloc(d->fails, n) : NULL;
    if (!fails)
        return llm_fail(LLM_ERR_NOMEM, "out of memory (tokenizer trie)");
    d->fails = fails;
    for (size_t i = d->cap; i < n; i++)
        v[i] = (da_unit){.base = 0, .check = DA_FREE, .id = -1, .score = 0.0f};
    memset(taken + d->cap / 64, 0, (n - d->cap) / 8);
    memset(fails + d->cap, 0, n - d->cap);
    d->cap = n;
    return LLM_OK;
}

static int da_is_taken(const da_build *d, size_t i)
{
    return (d->taken[i / 64] >> (i % 64)) & 1;
}

/* The first free unit from i on; d->cap when there is none. */
static size_t da_next_free(const da_build *d, size_t i)
{
    size_t w = i / 64, words = d->cap / 64;
    if (w >= words)
        return d->cap;
    uint64_t free_bits = ~d->taken[w] & (~(uint64_t)0 << (i % 64));
    while (!free_bits) {
        if (++w == words)
            return d->cap;
        free_bits = ~d->taken[w];
    }
    return w * 64 + (size_t)__builtin_ctzll(free_bits);
}

/* Gives unit x the children lab[0..k), k > 0: its base, and their units. */
static int da_fit(llm_unigram *u, da_build *d, int32_t x, const unsigned char *lab, int k)
{
    const int many = k > 1;
    size_t f, base;
    int rc, tries = 0;
    if (many)
        f = d->scan = da_next_free(d, d->scan);
    else
        f = d->head = da_next_free(d, d->head);
    for (;; f = da_next_free(d, f + 1)) {
        if (many && tries++ == DA_SEARCH)
            f = (d->end + 255) & ~(size_t)255;
        if (f >= d->cap && (rc = da_grow(u, d, f + 1)))
            return rc;
        base = f ^ lab[0];
        int j = 1;
        while (j < k && !da_is_taken(d, base ^ lab[j]))
            j++;
        if (j == k)
            break;
        if (many && ++d->fails[f] >= DA_TRIES && f == d->scan)
            d->scan = da_next_free(d, f + 1);
    }
    u->units[x].base = (int32_t)base;
    for (int j = 0; j < k; j++) {
        size_t z = base ^ lab[j];
        d->taken[z / 64] |= (uint64_t)1 << (z % 64);
        u->units[z].check = x;
        if (z >= d->end)
            d->end = z + 1;
    }
    return LLM_OK;
}

static int is_trie_piece(unsigned type)
{
    return type == LLM_PIECE_NORMAL || type == LLM_PIECE_USER || type == LLM_PIECE_UNUSED;
}

/* A piece not yet at its end. */
typedef struct {
    int32_t id;         /* the piece */
    int32_t unit;       /* the node it has reached */
    uint32_t off, end;  /* its bytes in the pool */
} active;

/* Sorts a[0..n) by the byte at `lvl` of each: insertion for the small
 * groups most nodes have, counting into b for large ones. */
static void sort_group(active *a, active *b, size_t n, const unsigned char *pool, uint32_t lvl)
{
    if (n <= 32) {
        for (size_t i = 1; i < n; i++) {
            active v = a[i];
            unsigned char c = pool[v.off + lvl];
            size_t j = i;
            for (; j > 0 && pool[a[j - 1].off + lvl] > c; j--)
                a[j] = a[j - 1];
            a[j] = v;
        }
        return;
    }
    size_t count[257] = {0};
    for (size_t j = 0; j < n; j++)
        count[pool[a[j].off + lvl] + 1]++;
    for (int c = 1; c < 257; c++)
        count[c] += count[c - 1];
    for (size_t j = 0; j < n; j++)
        b[count[pool[a[j].off + lvl]]++] = a[j];
    memcpy(a, b, n * sizeof *a);
}

/* The trie of `n` pieces of `bytes` bytes in all (every one non-empty). */
static int da_levels(llm_unigram *u, da_build *d, const llm_unigram_spec *s, size_t n,
                     size_t bytes)
{
    active *a = malloc(n * sizeof *a), *b = malloc(n * sizeof *b);
    unsigned char *pool = malloc(bytes);
    int rc = LLM_OK;
    if (!a || !b || !pool) {
        rc = llm_fail(LLM_ERR_NOMEM, "out of memory (tokenizer trie)");
        goto done;
    }
    /* The pieces' bytes side by side: each level reads one of each. */
    size_t n_act = 0, at = 0;
    for (int i = 0; i < s->n_pieces; i++) {
        if (!is_trie_piece(s->types[i]))
            continue;
        memcpy(pool + at, s->pieces[i], s->piece_lens[i]);
        a[n_act++] = (active){.id = i, .unit = 0, .off = (uint32_t)at,
                              .end = (uint32_t)(at + s->piece_lens[i])};
        at += s->piece_lens[i];
        if (s->types[i] == LLM_PIECE_USER)
            u->user_first[(unsigned char)s->pieces[i][0]] = 1;
    }
    /* Each level keeps a node's pieces together, in the order of its
     * children, so the next level's groups are again runs. */
    for (uint32_t lvl = 0; n_act && !rc; lvl++) {
        size_t kept = 0;
        for (size_t g = 0, e; g < n_act && !rc; g = e) {
            int32_t x = a[g].unit;
            for (e = g + 1; e < n_act && a[e].unit == x; e++)
                ;
            sort_group(a + g, b, e - g, pool, lvl);
            unsigned char lab[256];
            int k = 0;
            for (size_t j = g; j < e; j++) {
                unsigned char c = pool[a[j].off + lvl];
                if (k == 0 || lab[k - 1] != c)
                    lab[k++] = c;
            }
            if ((rc = da_fit(u, d, x, lab, k)))
                break;
            int32_t base = u->units[x].base;
            for (size_t j = g; j < e; j++) {
                int32_t y = base ^ pool[a[j].off + lvl], id = a[j].id;
                if (a[j].off + lvl + 1 < a[j].end) {
                    a[kept] = a[j];
                    a[kept++].unit = y;
                } else if (s->types[id] != LLM_PIECE_UNUSED) {
                    /* unigram::Model skips unused pieces where it finds them. */
                    u->units[y].id = id;
                    u->units[y].score = s->scores[id];
                }
            }
        }
        n_act = kept;
    }
done:
    free(a);
    free(b);
    free(pool);
    return rc;
}

/* The pieces trie, or LLM_UNIGRAM_FALLBACK for pieces it cannot hold. */
static int build_trie(llm_unigram *u, const llm_unigram_spec *s)
{
    size_t bytes = 0, n = 0;
    for (int i = 0; i < s->n_pieces; i++) {
        if (!is_trie_piece(s->types[i]))
            continue;
        /* SentencePiece's trie keys are C strings: a NUL would cut the piece. */
        if (s->piece_lens[i] == 0 || memchr(s->pieces[i], 0, s->piece_lens[i]))
            return LLM_UNIGRAM_FALLBACK;
        bytes += s->piece_lens[i];
        n++;
    }
    /* At most a node per byte, plus the root. */
    if (n == 0 || bytes >= DA_MAX_UNITS / 4)
        return LLM_UNIGRAM_FALLBACK;
    da_build d = {.cap = 0, .taken = NULL, .fails = NULL, .head = 0, .scan = 0, .end = 1};
    int rc = da_grow(u, &d, 1024);
    if (!rc) {
        d.taken[0] = 1;   /* the root */
        u->units[0].check = DA_ROOT;
        rc = da_levels(u, &d, s, n, bytes);
    }
    free(d.taken);
    free(d.fails);
    if (rc)
        return rc;
    /* Every base is in the block of its children, so the blocks up to the
     * last unit taken hold every lookup. */
    da_unit *v = realloc(u->units, ((d.end + 255) & ~(size_t)255) * sizeof *v);
    if (v)
        u->units = v;
    return LLM_OK;
}

static int build_charsmap(llm_unigram *u, const llm_unigram_spec *s)
{
    int rc = llm_charsmap_check(s->charsmap, s->charsmap_len);
    if (rc)
        return rc;
    const unsigned char *b = s->charsmap;
    size_t trie = llm_le32(b), n_units = trie / 4, strs_len = s->charsmap_len - 4 - trie;
    u->cmap = malloc(n_units * sizeof *u->cmap);
    u->strs = malloc(strs_len ? strs_len : 1);
    if (!u->cmap || !u->strs)
        return llm_fail(LLM_ERR_NOMEM, "out of memory (tokenizer charsmap)");
    for (size_t i = 0; i < n_units; i++)
        u->cmap[i] = llm_le32(b + 4 + 4 * i);
    memcpy(u->strs, b + 4 + trie, strs_len);
    return LLM_OK;
}

/* quick[c] for bytes below 0x80: no charsmap rule goes on from c with
 * another such byte (rules that do, like a letter and a combining mark,
 * need bytes from 0x80), and no user-defined piece starts with c. */
static void build_quick(llm_unigram *u)
{
    for (int c = 0; c < 128; c++) {
        u->quick[c] = QUICK_KEEP;
        u->quick_len[c] = 1;
        if (u->user && u->user_first[c]) {
            u->quick[c] = QUICK_SLOW;
            continue;
        }
        if (!u->cmap)
            continue;
        uint32_t node = unit_offset(u->cmap[0]) ^ (uint32_t)c;
        uint32_t unit = u->cmap[node];
        if (unit_label(unit) != (uint32_t)c)
            continue;
        uint32_t base = node ^ unit_offset(unit);
        for (uint32_t k = 0; k < 128; k++)
            if (unit_label(u->cmap[base ^ k]) == k)
                u->quick[c] = QUICK_SLOW;
        if (u->quick[c] == QUICK_SLOW || !unit_has_leaf(unit))
            continue;
        u->quick[c] = (int32_t)unit_value(u->cmap[base]);
        u->quick_len[c] = (int32_t)strlen(u->strs + u->quick[c]);
    }
    /* A NUL kept in the text goes to SentencePiece (normalize_prefix()). */
    if (u->quick[0] == QUICK_KEEP)
        u->quick[0] = QUICK_SLOW;
}

int llm_unigram_new(const llm_unigram_spec *s, llm_unigram **out)
{
    *out = NULL;
    llm_unigram *u = calloc(1, sizeof *u);
    if (!u)
        return llm_fail(LLM_ERR_NOMEM, "out of memory (tokenizer)");
    size_t n = (size_t)(s->n_pieces > 0 ? s->n_pieces : 0);
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
    if (u->unk_id < 0 || (s->byte_fallback && n_bytes != 256))
        rc = LLM_UNIGRAM_FALLBACK;
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
        rc = build_trie(u, s);
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
        if (c < 0x80 && u->quick[c] != QUICK_SLOW && (i + 1 == n || in[i + 1] < 0x80)) {
            if (u->quick[c] == QUICK_KEEP && c != ' ') {
                out[at++] = (char)c;
                prev_space = 0;
                i++;
                continue;
            }
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
    const da_unit *units = u->units;
    const unsigned char *user = u->user;
    const float max_score = u->max_score, unk_score = u->unk_score;
    const int32_t unk_id = u->unk_id;
    int mblen;
    for (int start = 0; start < size; start += mblen) {
        const float here = best[start].score;
        mblen = one_char_len(t[start]);
        if (mblen > size - start)
            mblen = size - start;
        int single = 0;
        int32_t x = 0;
        for (int end = start; end < size;) {
            int32_t y = units[x].base ^ t[end];
            if (units[y].check != x)
                break;
            x = y;
            end++;
            int32_t id = units[x].id;
            if (id < 0)
                continue;
            double score = units[x].score;
            if (user && user[id]) {
                float lm = (float)(end - start) * max_score;
                score = (double)lm - 0.1;
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
        if (!single) {
            float cand = unk_score + here;
            best_node *b = &best[start + mblen];
            if (b->start < 0 || cand > b->score) {
                b->score = cand;
                b->start = start;
                b->id = unk_id;
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
