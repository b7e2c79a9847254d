/* json.c: a small strict JSON (RFC 8259) parser into a read-only tree, and a
 * string escaper, for safetensors headers and model configs. */
#include <errno.h>
#include <locale.h>
#include <stdlib.h>
#include <string.h>

#include "internal.h"

/* Deep enough for any header or config we write; bounded so that a hostile
 * file cannot exhaust the stack through recursion. */
#define JSON_MAX_DEPTH 64

/* Nodes live in one growable array, so links are kept as indices (0 = none,
 * since the root is slot 0 and is nobody's child or sibling) while parsing
 * and turned into pointers once the array stops moving. */
struct slot {
    llm_json_node n;
    size_t child, next;
};

struct llm_json {
    struct slot *slots;
    size_t nslots, cap;
    char *pool;          /* decoded strings and number literals */
    size_t pool_len, pool_cap;
};

struct parser {
    const unsigned char *s;
    size_t len, pos;
    const char *name;
    size_t base;
    llm_json *j;
};

/* Length of the UTF-8 sequence at s[0..n), or 0 when it is not valid:
 * overlong forms, surrogates and code points past U+10FFFF are rejected. */
static size_t utf8_seq(const unsigned char *s, size_t n, uint32_t *cp)
{
    unsigned char c = s[0];
    size_t len;
    uint32_t v, min;
    if (c < 0x80) {
        *cp = c;
        return 1;
    } else if (c >= 0xC2 && c <= 0xDF) {
        len = 2; v = c & 0x1F; min = 0x80;
    } else if (c >= 0xE0 && c <= 0xEF) {
        len = 3; v = c & 0x0F; min = 0x800;
    } else if (c >= 0xF0 && c <= 0xF4) {
        len = 4; v = c & 0x07; min = 0x10000;
    } else {
        return 0;
    }
    if (n < len)
        return 0;
    for (size_t i = 1; i < len; i++) {
        if ((s[i] & 0xC0) != 0x80)
            return 0;
        v = v << 6 | (s[i] & 0x3F);
    }
    if (v < min || v > 0x10FFFF || (v >= 0xD800 && v <= 0xDFFF))
        return 0;
    *cp = v;
    return len;
}

static size_t utf8_put(char *d, uint32_t cp)
{
    if (cp < 0x80) {
        d[0] = (char)cp;
        return 1;
    } else if (cp < 0x800) {
        d[0] = (char)(0xC0 | cp >> 6);
        d[1] = (char)(0x80 | (cp & 0x3F));
        return 2;
    } else if (cp < 0x10000) {
        d[0] = (char)(0xE0 | cp >> 12);
        d[1] = (char)(0x80 | (cp >> 6 & 0x3F));
        d[2] = (char)(0x80 | (cp & 0x3F));
        return 3;
    }
    d[0] = (char)(0xF0 | cp >> 18);
    d[1] = (char)(0x80 | (cp >> 12 & 0x3F));
    d[2] = (char)(0x80 | (cp >> 6 & 0x3F));
    d[3] = (char)(0x80 | (cp & 0x3F));
    return 4;
}

static int syntax(const struct parser *p, size_t at, const char *what)
{
    return llm_fail(LLM_ERR_FORMAT, "'%s': invalid JSON at offset %zu: %s",
                    p->name, p->base + at, what);
}

static void skip_ws(struct parser *p)
{
    while (p->pos < p->len) {
        unsigned char c = p->s[p->pos];
        if (c != ' ' && c != '\t' && c != '\n' && c != '\r')
            break;
        p->pos++;
    }
}

static int new_slot(struct parser *p, llm_json_type t, size_t *idx)
{
    llm_json *j = p->j;
    if (j->nslots == j->cap) {
        size_t ncap = j->cap ? j->cap * 2 : 64, bytes;
        if (ncap < j->cap || llm_mul_size(ncap, sizeof *j->slots, &bytes))
            return llm_fail(LLM_ERR_NOMEM, "'%s': JSON too large", p->name);
        struct slot *ns = realloc(j->slots, bytes);
        if (!ns)
            return llm_fail(LLM_ERR_NOMEM, "'%s': out of memory parsing JSON",
                            p->name);
        j->slots = ns;
        j->cap = ncap;
    }
    struct slot *s = &j->slots[j->nslots];
    memset(s, 0, sizeof *s);
    s->n.type = t;
    s->n.offset = p->base + p->pos;
    *idx = j->nslots++;
    return LLM_OK;
}

/* The pool is sized up front (see llm_json_parse), so pointers into it stay
 * valid; running out would be a bug in that bound, reported rather than
 * overrun. */
static int pool_room(struct parser *p, size_t n)
{
    if (p->j->pool_cap - p->j->pool_len < n)
        return llm_fail(LLM_ERR_NOMEM, "'%s': JSON string pool exhausted",
                        p->name);
    return LLM_OK;
}

static int hex4(struct parser *p, uint32_t *v)
{
    if (p->len - p->pos < 4)
        return syntax(p, p->pos, "truncated \\u escape");
    uint32_t r = 0;
    for (int i = 0; i < 4; i++) {
        unsigned char c = p->s[p->pos + i];
        uint32_t d;
        if (c >= '0' && c <= '9')
            d = (uint32_t)(c - '0');
        else if (c >= 'a' && c <= 'f')
            d = (uint32_t)(c - 'a' + 10);
        else if (c >= 'A' && c <= 'F')
            d = (uint32_t)(c - 'A' + 10);
        else
            return syntax(p, p->pos + (size_t)i, "bad hex digit in \\u escape");
        r = r << 4 | d;
    }
    p->pos += 4;
    *v = r;
    return LLM_OK;
}

/* Decodes the string at p->pos (on its opening quote) into the pool. */
static int parse_string(struct parser *p, const char **out, size_t *out_len)
{
    size_t start = p->pos++;
    llm_json *j = p->j;
    char *d = j->pool + j->pool_len;
    size_t n = 0;
    for (;;) {
        if (p->pos >= p->len)
            return syntax(p, start, "unterminated string");
        unsigned char c = p->s[p->pos];
        uint32_t cp;
        if (c == '"') {
            p->pos++;
            break;
        }
        if (c < 0x20)
            return syntax(p, p->pos, "control character in string");
        /* Each write checks room for itself and the final NUL. */
        int rc;
        if (c == '\\') {
            if ((rc = pool_room(p, n + 2)))
                return rc;
            if (++p->pos >= p->len)
                return syntax(p, start, "unterminated string");
            c = p->s[p->pos++];
            switch (c) {
            case '"': d[n++] = '"'; break;
            case '\\': d[n++] = '\\'; break;
            case '/': d[n++] = '/'; break;
            case 'b': d[n++] = '\b'; break;
            case 'f': d[n++] = '\f'; break;
            case 'n': d[n++] = '\n'; break;
            case 'r': d[n++] = '\r'; break;
            case 't': d[n++] = '\t'; break;
            case 'u': {
                size_t at = p->pos - 2;
                if ((rc = hex4(p, &cp)))
                    return rc;
                if (cp >= 0xDC00 && cp <= 0xDFFF)
                    return syntax(p, at, "unpaired low surrogate in \\u escape");
                if (cp >= 0xD800 && cp <= 0xDBFF) {
                    uint32_t lo;
                    if (p->len - p->pos < 2 || p->s[p->pos] != '\\' ||
                        p->s[p->pos + 1] != 'u')
                        return syntax(p, at, "unpaired high surrogate in \\u escape");
                    p->pos += 2;
                    if ((rc = hex4(p, &lo)))
                        return rc;
                    if (lo < 0xDC00 || lo > 0xDFFF)
                        return syntax(p, at, "unpaired high surrogate in \\u escape");
                    cp = 0x10000 + ((cp - 0xD800) << 10) + (lo - 0xDC00);
                }
                size_t k = cp < 0x80 ? 1 : cp < 0x800 ? 2 : cp < 0x10000 ? 3 : 4;
                if ((rc = pool_room(p, n + k + 1)))
                    return rc;
                n += utf8_put(d + n, cp);
                break;
            }
            default:
                return syntax(p, p->pos - 2, "unknown escape in string");
            }
            continue;
        }
        size_t k = utf8_seq(p->s + p->pos, p->len - p->pos, &cp);
        if (k == 0)
            return syntax(p, p->pos, "invalid UTF-8 in string");
        if ((rc = pool_room(p, n + k + 1)))
            return rc;
        memcpy(d + n, p->s + p->pos, k);
        n += k;
        p->pos += k;
    }
    int rc = pool_room(p, n + 1);
    if (rc)
        return rc;
    d[n] = '\0';
    j->pool_len += n + 1;
    *out = d;
    *out_len = n;
    return LLM_OK;
}

static int parse_number(struct parser *p, size_t idx)
{
    size_t start = p->pos;
    const unsigned char *s = p->s;
#define DIGIT(i) ((i) < p->len && s[i] >= '0' && s[i] <= '9')
    if (p->pos < p->len && s[p->pos] == '-')
        p->pos++;
    if (!DIGIT(p->pos))
        return syntax(p, start, "bad number");
    if (s[p->pos] == '0') {
        p->pos++;
        if (DIGIT(p->pos))
            return syntax(p, start, "leading zero in number");
    } else {
        while (DIGIT(p->pos))
            p->pos++;
    }
    if (p->pos < p->len && s[p->pos] == '.') {
        p->pos++;
        if (!DIGIT(p->pos))
            return syntax(p, start, "bad number");
        while (DIGIT(p->pos))
            p->pos++;
    }
    if (p->pos < p->len && (s[p->pos] == 'e' || s[p->pos] == 'E')) {
        p->pos++;
        if (p->pos < p->len && (s[p->pos] == '+' || s[p->pos] == '-'))
            p->pos++;
        if (!DIGIT(p->pos))
            return syntax(p, start, "bad number");
        while (DIGIT(p->pos))
            p->pos++;
    }
#undef DIGIT
    size_t n = p->pos - start;
    int rc = pool_room(p, n + 1);
    if (rc)
        return rc;
    char *d = p->j->pool + p->j->pool_len;
    memcpy(d, s + start, n);
    d[n] = '\0';
    p->j->pool_len += n + 1;
    p->j->slots[idx].n.str = d;
    p->j->slots[idx].n.len = n;
    return LLM_OK;
}

static int parse_value(struct parser *p, size_t *out, int depth);

/* Arrays and objects: `close` is ']' or '}'; object members carry keys. */
static int parse_container(struct parser *p, size_t idx, int depth, int object)
{
    unsigned char close = object ? '}' : ']';
    size_t last = 0, count = 0;
    p->pos++;
    skip_ws(p);
    if (p->pos < p->len && p->s[p->pos] == close) {
        p->pos++;
        return LLM_OK;
    }
    for (;;) {
        const char *key = NULL;
        size_t key_len = 0, child;
        int rc;
        if (object) {
            skip_ws(p);
            if (p->pos >= p->len || p->s[p->pos] != '"')
                return syntax(p, p->pos, "expected a string key");
            if ((rc = parse_string(p, &key, &key_len)))
                return rc;
            skip_ws(p);
            if (p->pos >= p->len || p->s[p->pos] != ':')
                return syntax(p, p->pos, "expected ':' after object key");
            p->pos++;
        }
        if ((rc = parse_value(p, &child, depth + 1)))
            return rc;
        struct slot *sl = p->j->slots;
        sl[child].n.key = key;
        sl[child].n.key_len = key_len;
        if (last)
            sl[last].next = child;
        else
            sl[idx].child = child;
        last = child;
        count++;
        skip_ws(p);
        if (p->pos >= p->len)
            return syntax(p, p->pos, object ? "unterminated object"
                                            : "unterminated array");
        unsigned char c = p->s[p->pos++];
        if (c == close)
            break;
        if (c != ',')
            return syntax(p, p->pos - 1, object ? "expected ',' or '}'"
                                                : "expected ',' or ']'");
    }
    p->j->slots[idx].n.count = count;
    return LLM_OK;
}

static int literal(struct parser *p, const char *word)
{
    size_t n = strlen(word);
    if (p->len - p->pos < n || memcmp(p->s + p->pos, word, n) != 0)
        return syntax(p, p->pos, "unexpected character");
    p->pos += n;
    return LLM_OK;
}

static int parse_value(struct parser *p, size_t *out, int depth)
{
    if (depth > JSON_MAX_DEPTH)
        return syntax(p, p->pos, "nested too deeply");
    skip_ws(p);
    if (p->pos >= p->len)
        return syntax(p, p->pos, "unexpected end of input");
    unsigned char c = p->s[p->pos];
    llm_json_type t;
    switch (c) {
    case '{': t = LLM_JSON_OBJECT; break;
    case '[': t = LLM_JSON_ARRAY; break;
    case '"': t = LLM_JSON_STRING; break;
    case 't': t = LLM_JSON_TRUE; break;
    case 'f': t = LLM_JSON_FALSE; break;
    case 'n': t = LLM_JSON_NULL; break;
    default:
        if (c == '-' || (c >= '0' && c <= '9')) {
            t = LLM_JSON_NUMBER;
            break;
        }
        return syntax(p, p->pos, "unexpected character");
    }
    size_t idx = 0;
    int rc = new_slot(p, t, &idx);
    if (rc)
        return rc;
    *out = idx;
    switch (t) {
    case LLM_JSON_OBJECT: return parse_container(p, idx, depth, 1);
    case LLM_JSON_ARRAY: return parse_container(p, idx, depth, 0);
    case LLM_JSON_NUMBER: return parse_number(p, idx);
    case LLM_JSON_TRUE: return literal(p, "true");
    case LLM_JSON_FALSE: return literal(p, "false");
    case LLM_JSON_NULL: return literal(p, "null");
    case LLM_JSON_STRING: {
        const char *s;
        size_t n;
        if ((rc = parse_string(p, &s, &n)))
            return rc;
        p->j->slots[idx].n.str = s;
        p->j->slots[idx].n.len = n;
        return LLM_OK;
    }
    }
    return LLM_OK;
}

int llm_json_parse(const char *text, size_t len, const char *name, size_t base,
                   llm_json **out)
{
    *out = NULL;
    if (!name)
        name = "<json>";
    llm_json *j = calloc(1, sizeof *j);
    if (!j)
        return llm_fail(LLM_ERR_NOMEM, "'%s': out of memory parsing JSON", name);
    /* Every decoded string plus its NUL fits in its quoted form, and every
     * number literal plus its NUL fits in the literal and the byte after it
     * (a separator, or the end): len + 1 bytes hold them all. */
    if (llm_add_size(len, 1, &j->pool_cap) ||
        !(j->pool = malloc(j->pool_cap))) {
        free(j);
        return llm_fail(LLM_ERR_NOMEM, "'%s': out of memory parsing JSON", name);
    }
    struct parser p = { (const unsigned char *)text, len, 0, name, base, j };
    size_t root;
    int rc = parse_value(&p, &root, 0);
    if (rc == LLM_OK) {
        skip_ws(&p);
        if (p.pos != len)
            rc = syntax(&p, p.pos, "trailing characters after the value");
    }
    if (rc) {
        llm_json_free(j);
        return rc;
    }
    for (size_t i = 0; i < j->nslots; i++) {
        struct slot *s = &j->slots[i];
        s->n.child = s->child ? &j->slots[s->child].n : NULL;
        s->n.next = s->next ? &j->slots[s->next].n : NULL;
    }
    *out = j;
    return LLM_OK;
}

const llm_json_node *llm_json_root(const llm_json *j)
{
    return j && j->nslots ? &j->slots[0].n : NULL;
}

void llm_json_free(llm_json *j)
{
    if (!j)
        return;
    free(j->slots);
    free(j->pool);
    free(j);
}

const llm_json_node *llm_json_get(const llm_json_node *obj, const char *key)
{
    if (!obj || obj->type != LLM_JSON_OBJECT)
        return NULL;
    size_t n = strlen(key);
    for (const llm_json_node *c = obj->child; c; c = c->next)
        if (c->key_len == n && memcmp(c->key, key, n) == 0)
            return c;
    return NULL;
}

int llm_json_int64(const llm_json_node *n, int64_t *v)
{
    if (!n || n->type != LLM_JSON_NUMBER)
        return -1;
    const char *s = n->str;
    int neg = *s == '-';
    s += neg;
    uint64_t m = 0;
    for (; *s; s++) {
        if (*s < '0' || *s > '9')
            return -1;   /* a fraction or an exponent: not an integer */
        unsigned d = (unsigned)(*s - '0');
        if (m > (UINT64_MAX - d) / 10)
            return -1;
        m = m * 10 + d;
    }
    if (neg) {
        if (m > (uint64_t)INT64_MAX + 1)
            return -1;
        *v = m == (uint64_t)INT64_MAX + 1 ? INT64_MIN : -(int64_t)m;
    } else {
        if (m > (uint64_t)INT64_MAX)
            return -1;
        *v = (int64_t)m;
    }
    return 0;
}

int llm_json_double(const llm_json_node *n, double *v)
{
    if (!n || n->type != LLM_JSON_NUMBER)
        return -1;
    /* JSON numbers use '.', whatever locale the program has set. */
    locale_t c = newlocale(LC_ALL_MASK, "C", (locale_t)0);
    if (c == (locale_t)0)
        return -1;
    char *end;
    errno = 0;
    double d = strtod_l(n->str, &end, c);
    int e = errno;
    freelocale(c);
    if (*end != '\0' || (e == ERANGE && (d > 1.0 || d < -1.0)))
        return -1;   /* overflow; an underflow to (near) zero is accepted */
    *v = d;
    return 0;
}

int llm_json_put_string(llm_buf *b, const char *s, size_t n)
{
    static const char hex[] = "0123456789abcdef";
    const unsigned char *u = (const unsigned char *)s;
    for (size_t i = 0; i < n;) {
        uint32_t cp;
        size_t k = utf8_seq(u + i, n - i, &cp);
        if (k == 0)
            return llm_fail(LLM_ERR_UTF8, "invalid UTF-8 at byte %zu of a JSON string", i);
        i += k;
    }
    int rc = llm_buf_append(b, "\"", 1);
    size_t run = 0;   /* bytes copied as they are, flushed before an escape */
    for (size_t i = 0; rc == LLM_OK && i < n; i++) {
        unsigned char c = u[i];
        char esc[6];
        size_t elen = 2;
        esc[0] = '\\';
        switch (c) {
        case '"': esc[1] = '"'; break;
        case '\\': esc[1] = '\\'; break;
        case '\b': esc[1] = 'b'; break;
        case '\f': esc[1] = 'f'; break;
        case '\n': esc[1] = 'n'; break;
        case '\r': esc[1] = 'r'; break;
        case '\t': esc[1] = 't'; break;
        default:
            if (c >= 0x20) {
                run++;
                continue;
            }
            esc[1] = 'u'; esc[2] = '0'; esc[3] = '0';
            esc[4] = hex[c >> 4]; esc[5] = hex[c & 15];
            elen = 6;
        }
        rc = llm_buf_append(b, s + i - run, run);
        run = 0;
        if (rc == LLM_OK)
            rc = llm_buf_append(b, esc, elen);
    }
    if (rc == LLM_OK)
        rc = llm_buf_append(b, s + n - run, run);
    if (rc == LLM_OK)
        rc = llm_buf_append(b, "\"", 1);
    return rc;
}
