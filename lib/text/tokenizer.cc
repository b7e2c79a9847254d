// tokenizer.cc: the llm_tok_* C API of llm.h over SentencePiece; the one C++ file.
//
// Every entry point catches all exceptions, so none reaches C callers; a
// failed util::Status becomes LLM_ERR_TOKENIZER with SentencePiece's message.
// The Debian package ships no sentencepiece_model.pb.h, so the few fields of
// the serialized ModelProto we need (model type, normaliser, byte fallback,
// piece types, the charsmap) are read by a small bounds-checked protobuf
// walker; field numbers are those of upstream src/sentencepiece_model.proto.
//
// llm_tok_encode() runs our own encoder (unigram.c) when the model is one it
// implements, decided at load: SentencePiece's Encode builds a protobuf per
// call, which was half of llm-classify's time. Everything else, and encoding
// with other models, goes through SentencePiece.
//
// A byte-level BPE tokenizer (bpe.c) is the other kind of llm_tok: every
// llm_tok_* call branches on t->bpe, and its llm_tok_bytes() is the
// tokenizer.json that llm_bpe_to_json() writes.
#include <sentencepiece_processor.h>
#include <sentencepiece_trainer.h>

#include <algorithm>
#include <cerrno>
#include <cstdarg>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <new>
#include <set>
#include <memory>
#include <string>
#include <thread>
#include <unordered_map>
#include <vector>

#include "bpe.h"
#include "format/import.h"
#include "internal.h"
#include "text.h"
#include "unigram.h"

namespace {

// ---------------------------------------------------------------- protobuf

// Wire types of the protobuf encoding.
enum { WT_VARINT = 0, WT_I64 = 1, WT_LEN = 2, WT_I32 = 5 };

struct PbReader {
    const unsigned char *p, *end;
};

bool pb_varint(PbReader &r, uint64_t *v)
{
    uint64_t x = 0;
    for (int shift = 0; shift < 70; shift += 7) {
        if (r.p >= r.end)
            return false;
        unsigned char c = *r.p++;
        x |= (uint64_t)(c & 0x7f) << shift;
        if (!(c & 0x80)) {
            *v = x;
            return true;
        }
    }
    return false;   // more than 10 bytes: not a varint
}

struct PbField {
    uint32_t number;
    int wire;
    uint64_t value;                 // WT_VARINT, WT_I64, WT_I32
    const unsigned char *data;      // WT_LEN
    size_t len;
};

// Reads one field; false on malformed input (groups are not used by
// SentencePiece models and are rejected).
bool pb_next(PbReader &r, PbField *f)
{
    uint64_t key;
    if (!pb_varint(r, &key) || (key >> 3) == 0 || (key >> 3) > 0x1fffffff)
        return false;
    f->number = (uint32_t)(key >> 3);
    f->wire = (int)(key & 7);
    size_t left = (size_t)(r.end - r.p);
    switch (f->wire) {
    case WT_VARINT:
        return pb_varint(r, &f->value);
    case WT_I64:
        if (left < 8)
            return false;
        f->value = llm_le64(r.p);
        r.p += 8;
        return true;
    case WT_I32:
        if (left < 4)
            return false;
        f->value = llm_le32(r.p);
        r.p += 4;
        return true;
    case WT_LEN: {
        uint64_t n;
        if (!pb_varint(r, &n) || n > (uint64_t)(r.end - r.p))
            return false;
        f->data = r.p;
        f->len = (size_t)n;
        r.p += n;
        return true;
    }
    default:
        return false;
    }
}

// What we read from a serialized ModelProto.
struct ModelInfo {
    std::vector<unsigned char> types;   // per piece: llm_piece_type
    int model_type = 1;                 // TrainerSpec.model_type, UNIGRAM
    bool byte_fallback = false;         // TrainerSpec.byte_fallback
    std::string unk_surface = " \xE2\x81\x87 ";  // TrainerSpec.unk_surface
    bool treat_ws_suffix = false;       // TrainerSpec.treat_whitespace_as_suffix
    std::string normalizer;             // NormalizerSpec.name
    bool add_dummy_prefix = true;       // NormalizerSpec.add_dummy_prefix
    bool remove_extra_ws = true;        // NormalizerSpec.remove_extra_whitespaces
    bool escape_ws = true;              // NormalizerSpec.escape_whitespaces
    // NormalizerSpec.precompiled_charsmap of the normalizer and of the
    // denormalizer, as offsets into the serialized model (empty: none).
    size_t charsmap_at = 0, charsmap_len = 0;
    size_t decharsmap_at = 0, decharsmap_len = 0;
};

// ModelProto { repeated SentencePiece pieces = 1; TrainerSpec trainer_spec = 2;
//              NormalizerSpec normalizer_spec = 3; ... }
// SentencePiece { string piece = 1; float score = 2; Type type = 3; }
// TrainerSpec { ModelType model_type = 3; bool treat_whitespace_as_suffix = 24;
//               bool byte_fallback = 35; string unk_surface = 44; ... }
// NormalizerSpec { string name = 1; bytes precompiled_charsmap = 2;
//                  bool add_dummy_prefix = 3; bool remove_extra_whitespaces = 4;
//                  bool escape_whitespaces = 5; ... }
// ModelProto.denormalizer_spec = 5 is a NormalizerSpec too.
bool parse_model(const unsigned char *buf, size_t len, ModelInfo *mi)
{
    PbReader r{buf, buf + len};
    PbField f;
    while (r.p < r.end) {
        if (!pb_next(r, &f))
            return false;
        if (f.number == 1 && f.wire == WT_LEN) {
            PbReader s{f.data, f.data + f.len};
            PbField g;
            unsigned type = LLM_PIECE_NORMAL;
            while (s.p < s.end) {
                if (!pb_next(s, &g))
                    return false;
                if (g.number == 3 && g.wire == WT_VARINT)
                    type = (unsigned)g.value;
            }
            if (type < LLM_PIECE_NORMAL || type > LLM_PIECE_BYTE)
                return false;
            mi->types.push_back((unsigned char)type);
        } else if (f.number == 2 && f.wire == WT_LEN) {
            PbReader s{f.data, f.data + f.len};
            PbField g;
            while (s.p < s.end) {
                if (!pb_next(s, &g))
                    return false;
                if (g.number == 3 && g.wire == WT_VARINT)
                    mi->model_type = (int)g.value;
                else if (g.number == 24 && g.wire == WT_VARINT)
                    mi->treat_ws_suffix = g.value != 0;
                else if (g.number == 35 && g.wire == WT_VARINT)
                    mi->byte_fallback = g.value != 0;
                else if (g.number == 44 && g.wire == WT_LEN)
                    mi->unk_surface.assign((const char *)g.data, g.len);
            }
        } else if (f.number == 3 && f.wire == WT_LEN) {
            PbReader s{f.data, f.data + f.len};
            PbField g;
            while (s.p < s.end) {
                if (!pb_next(s, &g))
                    return false;
                if (g.number == 1 && g.wire == WT_LEN) {
                    mi->normalizer.assign((const char *)g.data, g.len);
                } else if (g.number == 2 && g.wire == WT_LEN) {
                    mi->charsmap_at = (size_t)(g.data - buf);
                    mi->charsmap_len = g.len;
                } else if (g.number == 3 && g.wire == WT_VARINT) {
                    mi->add_dummy_prefix = g.value != 0;
                } else if (g.number == 4 && g.wire == WT_VARINT) {
                    mi->remove_extra_ws = g.value != 0;
                } else if (g.number == 5 && g.wire == WT_VARINT) {
                    mi->escape_ws = g.value != 0;
                }
            }
        } else if (f.number == 5 && f.wire == WT_LEN) {
            PbReader s{f.data, f.data + f.len};
            PbField g;
            while (s.p < s.end) {
                if (!pb_next(s, &g))
                    return false;
                if (g.number == 2 && g.wire == WT_LEN) {
                    mi->decharsmap_at = (size_t)(g.data - buf);
                    mi->decharsmap_len = g.len;
                }
            }
        }
    }
    return !mi->types.empty();
}

// ---------------------------------------------------------------- helpers

int fail_status(const sentencepiece::util::Status &st)
{
    return llm_fail(LLM_ERR_TOKENIZER, "sentencepiece: %s", st.ToString().c_str());
}

// The catch-all every entry point ends with.
int fail_exception()
{
    try {
        throw;
    } catch (const std::bad_alloc &) {
        return llm_fail(LLM_ERR_NOMEM, "out of memory");
    } catch (const std::exception &e) {
        return llm_fail(LLM_ERR_TOKENIZER, "sentencepiece: %s", e.what());
    } catch (...) {
        return llm_fail(LLM_ERR_TOKENIZER, "sentencepiece: unknown exception");
    }
}

const char kSpace[] = "\xE2\x96\x81";   // U+2581, SentencePiece's space symbol

}  // namespace

struct llm_tok {
    sentencepiece::SentencePieceProcessor sp;
    std::string proto;      // the serialized ModelProto (or tokenizer.json), for llm_tok_bytes()
    ModelInfo info;
    int vocab = 0;
    llm_unigram *own = nullptr;     // our encoder, or null: SentencePiece's
    llm_bpe *bpe = nullptr;         // a byte-level BPE tokenizer: sp is unused
    int add_bos = 0, add_eos = 0;   // the model's own flags
    ~llm_tok()
    {
        llm_unigram_free(own);
        llm_bpe_free(bpe);
    }
};

namespace {

int check_id(const llm_tok *t, int id)
{
    if (id < 0 || id >= t->vocab)
        return llm_fail(LLM_ERR_RANGE, "id %d is out of range (vocabulary %d)",
                        id, t->vocab);
    return LLM_OK;
}

// Our encoder for the models it implements (unigram.c); for others t->own
// stays null.
int build_own_encoder(llm_tok *t)
{
    const ModelInfo &mi = t->info;
    if (mi.model_type != 1 || mi.treat_ws_suffix)
        return LLM_OK;
    size_t n = (size_t)t->vocab;
    std::vector<const char *> pieces(n);
    std::vector<size_t> lens(n);
    std::vector<float> scores(n);
    for (size_t i = 0; i < n; i++) {
        const std::string &p = t->sp.IdToPiece((int)i);
        pieces[i] = p.data();
        lens[i] = p.size();
        scores[i] = t->sp.GetScore((int)i);
    }
    llm_unigram_spec s;
    s.n_pieces = t->vocab;
    s.pieces = pieces.data();
    s.piece_lens = lens.data();
    s.scores = scores.data();
    s.types = mi.types.data();
    s.byte_fallback = mi.byte_fallback;
    s.charsmap = (const unsigned char *)t->proto.data() + mi.charsmap_at;
    s.charsmap_len = mi.charsmap_len;
    s.add_dummy_prefix = mi.add_dummy_prefix;
    s.remove_extra_ws = mi.remove_extra_ws;
    s.escape_ws = mi.escape_ws;
    int rc = llm_unigram_new(&s, &t->own);
    return rc == LLM_UNIGRAM_FALLBACK ? LLM_OK : rc;
}

// `name` is NULL for bytes that did not come from a file.
int load_proto(const void *buf, size_t len, const char *name, llm_tok **out)
{
    *out = nullptr;
    ModelInfo mi;
    // Our walker first: it rejects arbitrary bytes before SentencePiece sees
    // them, so that a wrong file gives our message rather than a parser's.
    if (!buf || !parse_model((const unsigned char *)buf, len, &mi)) {
        if (name)
            return llm_fail(LLM_ERR_FORMAT,
                            "'%s': not a SentencePiece model or llm model file", name);
        return llm_fail(LLM_ERR_FORMAT, "not a SentencePiece model");
    }
    // Owned until handed out: SentencePiece may throw while loading.
    std::unique_ptr<llm_tok> t(new llm_tok);
    t->proto.assign((const char *)buf, len);
    sentencepiece::util::Status st;
    try {
        st = t->sp.LoadFromSerializedProto(t->proto);
    } catch (const std::bad_alloc &) {
        throw;
    } catch (const std::exception &e) {
        // Its trie builder throws on some malformed pieces (an empty key).
        st = sentencepiece::util::Status(sentencepiece::util::StatusCode::kInternal, e.what());
    }
    if (!st.ok()) {
        if (name)
            return llm_fail(LLM_ERR_FORMAT, "'%s': not a usable SentencePiece model: %s",
                            name, st.ToString().c_str());
        return llm_fail(LLM_ERR_FORMAT, "not a usable SentencePiece model: %s",
                        st.ToString().c_str());
    }
    t->vocab = t->sp.GetPieceSize();
    if (t->vocab != (int)mi.types.size()) {
        return llm_fail(LLM_ERR_FORMAT, "'%s': inconsistent SentencePiece model",
                        name ? name : "(memory)");
    }
    t->info = std::move(mi);
    // SentencePiece reads the charsmaps without bounds checks: a corrupt
    // one is refused here, whatever encodes (our encoder checks its own).
    const ModelInfo &i = t->info;
    const unsigned char *p = (const unsigned char *)t->proto.data();
    int rc = build_own_encoder(t.get());
    if (!rc && !t->own && i.charsmap_len)
        rc = llm_charsmap_check(p + i.charsmap_at, i.charsmap_len);
    if (!rc && i.decharsmap_len)
        rc = llm_charsmap_check(p + i.decharsmap_at, i.decharsmap_len);
    if (rc) {
        std::string m = llm_errmsg();
        if (name)
            return llm_fail(rc, "'%s': %s", name, m.c_str());
        return llm_fail(rc, "%s", m.c_str());
    }
    t->add_bos = t->sp.bos_id() >= 0;
    t->add_eos = 0;
    *out = t.release();
    return LLM_OK;
}

// Takes `b` (freed on failure) into a new llm_tok.
int wrap_bpe(llm_bpe *b, llm_tok **out)
{
    *out = nullptr;
    llm_tok *raw = new (std::nothrow) llm_tok;
    if (!raw) {
        llm_bpe_free(b);
        return llm_fail(LLM_ERR_NOMEM, "out of memory");
    }
    std::unique_ptr<llm_tok> t(raw);
    t->bpe = b;
    llm_buf json = {};
    int rc = llm_bpe_to_json(b, &json);
    if (rc) {
        llm_buf_free(&json);
        return rc;
    }
    try {
        t->proto.assign(json.data, json.len);
    } catch (...) {
        llm_buf_free(&json);
        throw;
    }
    llm_buf_free(&json);
    t->vocab = (int)llm_bpe_n_tokens(b);
    t->add_bos = llm_bpe_special(b, LLM_BPE_ADD_BOS);
    t->add_eos = llm_bpe_special(b, LLM_BPE_ADD_EOS);
    *out = t.release();
    return LLM_OK;
}

int load_json(const void *buf, size_t len, const char *name, llm_tok **out)
{
    *out = nullptr;
    llm_bpe *b;
    int rc = llm_bpe_from_json((const char *)buf, len, name, &b);
    if (rc)
        return rc;
    return wrap_bpe(b, out);
}

// JSON text: the first byte that is not white space is '{'.
bool looks_json(const unsigned char *b, size_t len)
{
    size_t i = 0;
    while (i < len && (b[i] == ' ' || b[i] == '\t' || b[i] == '\n' || b[i] == '\r'))
        i++;
    return i < len && b[i] == '{';
}

// ---------------------------------------------------------------- protobuf writing

void pbw_varint(std::string &o, uint64_t v)
{
    do {
        unsigned char c = (unsigned char)(v & 0x7f);
        v >>= 7;
        o.push_back((char)(v ? c | 0x80 : c));
    } while (v);
}

void pbw_key(std::string &o, unsigned field, int wire)
{
    pbw_varint(o, (uint64_t)field << 3 | (unsigned)wire);
}

void pbw_bytes(std::string &o, unsigned field, const void *p, size_t n)
{
    pbw_key(o, field, WT_LEN);
    pbw_varint(o, n);
    o.append((const char *)p, n);
}

void pbw_uint(std::string &o, unsigned field, uint64_t v)
{
    pbw_key(o, field, WT_VARINT);
    pbw_varint(o, v);
}

void pbw_float(std::string &o, unsigned field, float f)
{
    uint32_t u;
    memcpy(&u, &f, 4);
    unsigned char b[4];
    llm_put_le32(b, u);
    pbw_key(o, field, WT_I32);
    o.append((const char *)b, 4);
}

// A SentencePiece ModelProto from a GGUF "llama" (BPE) or "t5" (unigram,
// llama.cpp's UGM) vocabulary.
int spm_from_vocab(const llm_tok_vocab *v, const char *name, llm_tok **out)
{
    bool unigram = strcmp(v->model, "t5") == 0;
    if (!v->scores)
        return llm_fail(LLM_ERR_INVALID, "'%s': a %s vocabulary needs piece scores", name,
                        v->model);
    size_t n = v->n_tokens;
    if (n == 0 || n > (size_t)INT32_MAX / 2)
        return llm_fail(LLM_ERR_FORMAT, "'%s': %zu tokens", name, n);
    int special[4] = {v->unk_id, v->bos_id, v->eos_id, v->pad_id};
    for (int i = 0; i < 4; i++)
        if (special[i] < -1 || (special[i] >= 0 && (size_t)special[i] >= n))
            return llm_fail(LLM_ERR_FORMAT, "'%s': special id %d is out of range "
                            "(vocabulary %zu)", name, special[i], n);
    std::string model, piece;
    bool bytes = false;
    for (size_t i = 0; i < n; i++) {
        int type = v->types ? v->types[i] : LLM_PIECE_NORMAL;
        if (type == 0)
            type = LLM_PIECE_NORMAL;
        if ((int)i == v->unk_id)
            type = LLM_PIECE_UNKNOWN;
        else if ((int)i == v->bos_id || (int)i == v->eos_id || (int)i == v->pad_id)
            type = LLM_PIECE_CONTROL;
        if (type < LLM_PIECE_NORMAL || type > LLM_PIECE_BYTE)
            return llm_fail(LLM_ERR_FORMAT, "'%s': token %zu has type %d (not 1-6)", name, i,
                            type);
        bytes = bytes || type == LLM_PIECE_BYTE;
        size_t len = v->token_lens ? v->token_lens[i] : strlen(v->tokens[i]);
        piece.clear();
        pbw_bytes(piece, 1, v->tokens[i], len);
        pbw_float(piece, 2, v->scores[i]);
        if (type != LLM_PIECE_NORMAL)
            pbw_uint(piece, 3, (uint64_t)type);
        pbw_bytes(model, 1, piece.data(), piece.size());
    }
    // TrainerSpec: model_type 3, vocab_size 4, byte_fallback 35,
    // unk/bos/eos/pad_id 40-43, unk/bos/eos/pad_piece 45-48. SentencePiece
    // finds the special ids by their pieces, so those say which they are.
    std::string ts;
    pbw_uint(ts, 3, unigram ? 1 : 2);     // UNIGRAM or BPE
    pbw_uint(ts, 4, n);
    pbw_uint(ts, 35, bytes);
    for (int i = 0; i < 4; i++) {
        pbw_uint(ts, 40 + (unsigned)i, (uint64_t)(int64_t)special[i]);
        if (special[i] >= 0) {
            size_t len = v->token_lens ? v->token_lens[special[i]] : strlen(v->tokens[special[i]]);
            pbw_bytes(ts, 45 + (unsigned)i, v->tokens[special[i]], len);
        }
    }
    pbw_bytes(model, 2, ts.data(), ts.size());
    // NormalizerSpec: name 1, add_dummy_prefix 3, remove_extra_whitespaces 4,
    // escape_whitespaces 5.
    std::string ns;
    pbw_bytes(ns, 1, "identity", 8);
    pbw_uint(ns, 3, v->add_space_prefix != 0);
    pbw_uint(ns, 4, 0);
    pbw_uint(ns, 5, 1);
    pbw_bytes(model, 3, ns.data(), ns.size());
    int rc = load_proto(model.data(), model.size(), name, out);
    if (rc)
        return rc;
    (*out)->add_bos = v->add_bos < 0 ? (*out)->sp.bos_id() >= 0 : v->add_bos != 0;
    (*out)->add_eos = v->add_eos < 0 ? 0 : v->add_eos != 0;
    return LLM_OK;
}

int bpe_from_vocab(const llm_tok_vocab *v, const char *name, llm_tok **out)
{
    const char *pre = v->pre ? v->pre : "default";
    llm_bpe_spec s;
    memset(&s, 0, sizeof s);
    int rc = llm_bpe_pre_regexes(pre, &s.regexes, &s.n_regexes);
    if (rc)
        return llm_fail(rc, "'%s': unknown pre-tokenizer '%s'", name, pre);
    s.tokens = v->tokens;
    s.token_lens = v->token_lens;
    s.n_tokens = v->n_tokens;
    s.types = v->types;
    s.merges = v->merges;
    s.n_merges = v->n_merges;
    s.bos_id = v->bos_id;
    s.eos_id = v->eos_id;
    s.unk_id = v->unk_id;
    s.pad_id = v->pad_id;
    s.add_bos = v->add_bos < 0 ? 0 : v->add_bos != 0;
    s.add_eos = v->add_eos < 0 ? 0 : v->add_eos != 0;
    s.ignore_merges = llm_bpe_pre_ignore_merges(pre);
    llm_bpe *b;
    if ((rc = llm_bpe_new(&s, name, &b)))
        return rc;
    return wrap_bpe(b, out);
}

// Sentences for the trainer, read from our files line by line: this lets
// names contain commas (the trainer's own "input" list splits on them),
// reads "-" as standard input without a temporary copy, and checks UTF-8
// with the file and line in the message.
class LineIterator : public sentencepiece::SentenceIterator {
public:
    // max_len: the trainer's maximum sentence length in bytes, for usable().
    // sample > 0: yields `sample` of the usable lines, drawn uniformly with
    // `seed` (reservoir sampling over all of them, read first; kept in the
    // order they came), or all of them where there are no more.
    // in: standard input's bytes, read beforehand (so that each try of a
    // fitted size reads them again), for the files named "-".
    LineIterator(const char *const *files, size_t n, size_t max_len, int64_t sample,
                 uint64_t seed, const std::string &in)
        : files_(files), n_(n), max_len_(max_len), in_(in)
    {
        if (sample > 0)
            draw(sample, seed);
        Next();
    }
    ~LineIterator() override
    {
        close_file();
        free(buf_);
    }
    bool done() const override { return done_; }
    const std::string &value() const override { return value_; }
    sentencepiece::util::Status status() const override
    {
        if (err_)
            return sentencepiece::util::Status(sentencepiece::util::StatusCode::kInternal,
                                               "input error");
        return sentencepiece::util::Status();
    }
    void Next() override
    {
        if (drawn_) {
            if (at_ == kept_.size()) {
                done_ = true;
                return;
            }
            value_.swap(kept_[at_++].second);
            return;
        }
        while (!done_) {
            if (!f_ && !open_next())
                return;
            errno = 0;
            ssize_t k = getline(&buf_, &cap_, f_);
            if (k < 0) {
                if (ferror(f_)) {
                    fail(LLM_ERR_IO, "'%s': read error: %s", name(),
                         strerror(errno ? errno : EIO));
                    return;
                }
                close_file();
                continue;
            }
            line_++;
            size_t len = (size_t)k;
            if (len && buf_[len - 1] == '\n')
                len--;
            size_t bad;
            if (!llm_utf8_check(buf_, len, &bad)) {
                fail(LLM_ERR_UTF8, "'%s', line %lld: invalid UTF-8 at byte %zu", name(),
                     (long long)line_, bad + 1);
                return;
            }
            const char *text = buf_;
            if (line_ == 1)   // a byte-order mark before a file's first line
                llm_utf8_skip_bom(&text, &len);
            value_.assign(text, len);
            lines_++;
            usable_ += len > 0 && len <= max_len_;
            return;
        }
    }
    // The status and message of a failure, re-recorded after training since
    // the trainer's own calls may have overwritten the thread's message.
    int err() const { return err_; }
    const std::string &msg() const { return msg_; }
    // Lines read, and those neither empty nor too long (what it trains on).
    long long lines() const { return lines_; }
    long long usable() const { return usable_; }

private:
    void draw(int64_t sample, uint64_t seed)
    {
        llm_rng r;
        llm_rng_seed(&r, seed);
        uint64_t seen = 0;
        for (Next(); !done_; Next()) {
            if (value_.empty() || value_.size() > max_len_)
                continue;
            if (kept_.size() < (uint64_t)sample) {
                kept_.emplace_back(seen, value_);
            } else {
                uint64_t j = llm_rng_below(&r, seen + 1);
                if (j < (uint64_t)sample)
                    kept_[j] = std::make_pair(seen, value_);
            }
            seen++;
        }
        if (err_)
            return;
        std::sort(kept_.begin(), kept_.end(),
                  [](const std::pair<uint64_t, std::string> &a,
                     const std::pair<uint64_t, std::string> &b) { return a.first < b.first; });
        drawn_ = true;
        done_ = false;
    }
    bool is_stdin() const { return strcmp(files_[idx_ - 1], "-") == 0; }
    const char *name() const { return is_stdin() ? "(standard input)" : files_[idx_ - 1]; }
    bool open_next()
    {
        if (idx_ == n_) {
            done_ = true;
            return false;
        }
        idx_++;
        line_ = 0;
        f_ = !is_stdin()   ? fopen(files_[idx_ - 1], "r")
             : in_.empty() ? fopen("/dev/null", "r")
                           : fmemopen((void *)in_.data(), in_.size(), "r");
        if (!f_) {
            fail(LLM_ERR_IO, "cannot open '%s': %s", files_[idx_ - 1], strerror(errno));
            return false;
        }
        return true;
    }
    void close_file()
    {
        if (f_)
            fclose(f_);
        f_ = nullptr;
    }
    void fail(int status, const char *fmt, ...) LLM_PRINTF(3, 4)
    {
        char m[1024];
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(m, sizeof m, fmt, ap);
        va_end(ap);
        err_ = status;
        msg_ = m;
        done_ = true;
    }

    const char *const *files_;
    size_t n_, idx_ = 0;
    FILE *f_ = nullptr;
    char *buf_ = nullptr;
    size_t cap_ = 0;
    long long line_ = 0, lines_ = 0, usable_ = 0;
    size_t max_len_;
    const std::string &in_;
    std::vector<std::pair<uint64_t, std::string>> kept_;   // (line, text) drawn
    size_t at_ = 0;
    bool drawn_ = false;
    bool done_ = false;
    int err_ = 0;
    std::string msg_, value_;
};

bool one_of(const char *s, const char *const *set)
{
    for (; *set; set++)
        if (strcmp(s, *set) == 0)
            return true;
    return false;
}

std::string num(double v)
{
    char b[64];
    snprintf(b, sizeof b, "%.17g", v);
    return b;
}

// The vocabulary size the trainer says this corpus supports, from its
// complaint about the one asked for (0: not such a complaint).
long feasible_vocab(const sentencepiece::util::Status &st)
{
    std::string m = st.ToString();
    const char key[] = "Please set it to a value <= ";
    size_t at = m.find(key);
    if (at != std::string::npos)
        return strtol(m.c_str() + at + sizeof key - 1, nullptr, 10);
    const char key2[] = "smaller than required_chars. ";
    at = m.find(key2);
    if (at != std::string::npos) {
        const char *q = strstr(m.c_str() + at, " vs ");
        return q ? strtol(q + 4, nullptr, 10) : 0;
    }
    return 0;
}

// Maps the trainer's vocabulary-size complaints into our wording; other
// statuses pass through. "Vocabulary size too high (8000). Please set it to
// a value <= 1234." comes from unigram training on a small corpus.
int fail_train(const sentencepiece::util::Status &st, int vocab_size)
{
    long n = feasible_vocab(st);
    if (n && st.ToString().find("Please set it to a value <= ") != std::string::npos)
        return llm_fail(LLM_ERR_INVALID,
                        "vocabulary size %d is too large for this corpus; "
                        "the trainer suggests <= %ld", vocab_size, n);
    // "Vocabulary size is smaller than required_chars. 400 vs 457."
    if (n)
        return llm_fail(LLM_ERR_INVALID,
                        "vocabulary size %d is too small for this corpus: its characters, "
                        "byte pieces and special pieces need %ld", vocab_size, n);
    return fail_status(st);
}

}  // namespace

// ---------------------------------------------------------------- C API

extern "C" {

int llm_tok_load_mem(const void *buf, size_t len, llm_tok **out)
{
    try {
        return load_proto(buf, len, nullptr, out);
    } catch (...) {
        *out = nullptr;
        return fail_exception();
    }
}

int llm_tok_load(const char *path, llm_tok **out)
{
    *out = nullptr;
    // Pretrained models of other formats carry their tokenizer (import.c).
    switch (llm_model_format(path)) {
    case LLM_FORMAT_GGUF:
        return llm_gguf_tok_load(path, out);
    case LLM_FORMAT_HF:
        return llm_hf_tok_load(path, out);
    }
    const void *map;
    size_t len;
    int rc = llm_map_file(path, &map, &len);
    if (rc)
        return rc;
    const unsigned char *b = (const unsigned char *)map;
    // An llm model file is safetensors: a little-endian header length that
    // fits the file, then a JSON object. A ModelProto starts with field 1
    // (0x0a) and a piece, which cannot pass this test.
    bool is_st = len >= 9 && llm_le64(b) <= len - 8 && b[8] == '{';
    if (!is_st) {
        try {
            if (looks_json(b, len))
                rc = load_json(map, len, path, out);
            else
                rc = load_proto(map, len, path, out);
        } catch (...) {
            rc = fail_exception();
        }
        llm_unmap_file(map, len);
        return rc;
    }
    llm_unmap_file(map, len);
    llm_st *st;
    rc = llm_st_open(path, &st);
    if (rc)
        return rc;
    const llm_st_tensor *ten = llm_st_find(st, "tokenizer.model");
    bool json = false;
    if (!ten) {
        ten = llm_st_find(st, "tokenizer.json");
        json = true;
    }
    if (!ten || ten->dtype != LLM_DT_U8) {
        llm_st_close(st);
        return llm_fail(LLM_ERR_FORMAT, "'%s': model file has no U8 tensor 'tokenizer.model' "
                        "or 'tokenizer.json'", path);
    }
    try {
        if (json)
            rc = load_json(ten->data, ten->nbytes, path, out);
        else
            rc = load_proto(ten->data, ten->nbytes, path, out);
    } catch (...) {
        rc = fail_exception();
    }
    llm_st_close(st);
    return rc;
}

int llm_tok_load_hf_json(const char *path, llm_tok **out)
{
    *out = nullptr;
    const void *map;
    size_t len;
    int rc = llm_map_file(path, &map, &len);
    if (rc)
        return rc;
    try {
        rc = load_json(map ? map : "", len, path, out);
    } catch (...) {
        rc = fail_exception();
    }
    llm_unmap_file(map, len);
    return rc;
}

int llm_tok_from_vocab(const llm_tok_vocab *v, const char *name, llm_tok **out)
{
    *out = nullptr;
    if (!name)
        name = "(vocabulary)";
    if (!v->model || (strcmp(v->model, "gpt2") != 0 && strcmp(v->model, "llama") != 0 &&
                      strcmp(v->model, "t5") != 0))
        return llm_fail(LLM_ERR_INVALID, "'%s': tokenizer model '%s' is not supported "
                        "(gpt2, llama or t5)", name, v->model ? v->model : "(null)");
    if (!v->tokens && v->n_tokens)
        return llm_fail(LLM_ERR_INVALID, "'%s': no tokens", name);
    try {
        if (strcmp(v->model, "gpt2") == 0)
            return bpe_from_vocab(v, name, out);
        return spm_from_vocab(v, name, out);
    } catch (...) {
        return fail_exception();
    }
}

int llm_tok_format(const llm_tok *t)
{
    return t->bpe ? LLM_TOK_HF_JSON : LLM_TOK_SPM;
}

int llm_tok_set_special(llm_tok *t, const int *ids)
{
    if (!t->bpe)
        return llm_fail(LLM_ERR_UNSUPPORTED, "special ids of a SentencePiece model are "
                        "fixed by the model");
    for (int w = 0; w < LLM_BPE_N_SPECIAL; w++) {
        int rc = ids[w] == -2 ? LLM_OK : llm_bpe_set_special(t->bpe, w, ids[w]);
        if (rc)
            return rc;
    }
    llm_buf json = {};
    int rc = llm_bpe_to_json(t->bpe, &json);
    if (!rc) {
        try {
            t->proto.assign(json.data, json.len);
        } catch (...) {
            rc = llm_fail(LLM_ERR_NOMEM, "out of memory");
        }
    }
    llm_buf_free(&json);
    t->add_bos = llm_bpe_special(t->bpe, LLM_BPE_ADD_BOS);
    t->add_eos = llm_bpe_special(t->bpe, LLM_BPE_ADD_EOS);
    return rc;
}

int llm_tok_add_bos(const llm_tok *t) { return t->add_bos; }
int llm_tok_add_eos(const llm_tok *t) { return t->add_eos; }

void llm_tok_free(llm_tok *t)
{
    delete t;
}

void llm_tok_bytes(const llm_tok *t, const void **buf, size_t *len)
{
    *buf = t->proto.data();
    *len = t->proto.size();
}

int llm_tok_vocab_size(const llm_tok *t) { return t->vocab; }
int llm_tok_bos_id(const llm_tok *t)
{
    return t->bpe ? llm_bpe_special(t->bpe, LLM_BPE_BOS) : t->sp.bos_id();
}
int llm_tok_eos_id(const llm_tok *t)
{
    return t->bpe ? llm_bpe_special(t->bpe, LLM_BPE_EOS) : t->sp.eos_id();
}
int llm_tok_unk_id(const llm_tok *t)
{
    return t->bpe ? llm_bpe_special(t->bpe, LLM_BPE_UNK) : t->sp.unk_id();
}
int llm_tok_pad_id(const llm_tok *t)
{
    return t->bpe ? llm_bpe_special(t->bpe, LLM_BPE_PAD) : t->sp.pad_id();
}

const char *llm_tok_model_type(const llm_tok *t)
{
    if (t->bpe)
        return "bytelevel-bpe";
    switch (t->info.model_type) {
    case 1: return "unigram";
    case 2: return "bpe";
    case 3: return "word";
    case 4: return "char";
    default: return "unknown";
    }
}

const char *llm_tok_normalizer(const llm_tok *t)
{
    if (t->bpe)
        return "identity";
    return t->info.normalizer.c_str();
}

int llm_tok_byte_fallback(const llm_tok *t)
{
    if (t->bpe)
        return 0;
    return t->info.byte_fallback;
}

// Out-of-range ids give NULL / 0 / 0 and LLM_ERR_RANGE in llm_errmsg().
const char *llm_tok_piece(const llm_tok *t, int id)
{
    if (check_id(t, id))
        return nullptr;
    if (t->bpe)
        return llm_bpe_token(t->bpe, id, nullptr);
    return t->sp.IdToPiece(id).c_str();   // a reference into the model: stable
}

float llm_tok_score(const llm_tok *t, int id)
{
    if (check_id(t, id))
        return 0.0f;
    if (t->bpe)
        return 0.0f;
    return t->sp.GetScore(id);
}

llm_piece_type llm_tok_piece_type(const llm_tok *t, int id)
{
    if (check_id(t, id))
        return (llm_piece_type)0;
    if (t->bpe)
        return (llm_piece_type)llm_bpe_token_type(t->bpe, id);
    return (llm_piece_type)t->info.types[(size_t)id];
}

int llm_tok_piece_id(const llm_tok *t, const char *piece)
{
    if (t->bpe)
        return llm_bpe_token_id(t->bpe, piece, strlen(piece));
    try {
        int id = t->sp.PieceToId(piece);
        // PieceToId answers unk_id for unknown pieces; only <unk> itself is it.
        if (id == t->sp.unk_id() && t->sp.IdToPiece(id) != piece)
            return -1;
        return id;
    } catch (...) {
        fail_exception();
        return -1;
    }
}

int llm_tok_own_encoder(const llm_tok *t)
{
    return t->own != nullptr;
}

// One scratch per thread for byte-level BPE, freed with the thread.
static int encode_bpe(const llm_tok *t, const char *text, size_t n, llm_ids *out)
{
    struct Scratch {
        llm_bpe_scratch s = {};
        ~Scratch() { llm_bpe_scratch_free(&s); }
    };
    thread_local Scratch scratch;
    return llm_bpe_encode_with(t->bpe, text, n, 0, &scratch.s, out);
}

int llm_tok_encode(const llm_tok *t, const char *text, size_t n, llm_ids *out)
{
    if (t->bpe)
        return encode_bpe(t, text, n, out);
    if (t->own) {
        // One scratch per thread, freed with the thread.
        struct Scratch {
            llm_unigram_scratch s = {};
            ~Scratch() { llm_unigram_scratch_free(&s); }
        };
        thread_local Scratch scratch;
        int rc = llm_unigram_encode(t->own, text, n, &scratch.s, out);
        if (rc != LLM_UNIGRAM_FALLBACK)
            return rc;
    }
    return llm_tok_encode_spm(t, text, n, out);
}

int llm_tok_encode_spans(const llm_tok *t, const char *text, size_t n, llm_ids *out,
                         llm_ids *spans)
{
    if (n > (size_t)INT32_MAX / 2)
        return llm_fail(LLM_ERR_RANGE, "a text of %zu bytes is too long for offsets", n);
    if (t->bpe) {
        struct Scratch {
            llm_bpe_scratch s = {};
            ~Scratch() { llm_bpe_scratch_free(&s); }
        };
        thread_local Scratch scratch;
        return llm_bpe_encode_spans(t->bpe, text, n, &scratch.s, out, spans);
    }
    try {
        // SentencePiece traces each piece back through its normaliser.
        sentencepiece::ImmutableSentencePieceText spt;
        auto st = t->sp.Encode(absl::string_view(text, n), spt.mutable_proto());
        if (!st.ok())
            return fail_status(st);
        size_t len = out->len, slen = spans->len;
        int rc = LLM_OK;
        for (size_t i = 0; i < spt.pieces_size() && !rc; i++) {
            auto p = spt.pieces((int)i);
            uint32_t b = p.begin(), e = p.end();
            int known = b <= e && e <= n;
            rc = llm_ids_push(out, (int32_t)p.id());
            if (!rc)
                rc = llm_ids_push(spans, known ? (int32_t)b : -1);
            if (!rc)
                rc = llm_ids_push(spans, known ? (int32_t)e : -1);
        }
        if (rc) {
            out->len = len;
            spans->len = slen;
        }
        return rc;
    } catch (...) {
        return fail_exception();
    }
}

int llm_tok_encode_spm(const llm_tok *t, const char *text, size_t n, llm_ids *out)
{
    if (t->bpe)
        return encode_bpe(t, text, n, out);
    try {
        // One vector per thread, reused: no allocation per line once warm.
        thread_local std::vector<int> ids;
        ids.clear();
        auto st = t->sp.Encode(absl::string_view(text, n), &ids);
        if (!st.ok())
            return fail_status(st);
        int rc = llm_ids_reserve(out, out->len + ids.size());
        if (rc)
            return rc;
        static_assert(sizeof(int) == sizeof(int32_t), "ids are 32-bit");
        if (!ids.empty())
            memcpy(out->data + out->len, ids.data(), ids.size() * sizeof(int32_t));
        out->len += ids.size();
        return LLM_OK;
    } catch (...) {
        return fail_exception();
    }
}

int llm_tok_encode_pieces(const llm_tok *t, const char *text, size_t n, llm_buf *out)
{
    if (t->bpe) {
        llm_ids ids = {};
        int rc = encode_bpe(t, text, n, &ids);
        for (size_t i = 0; !rc && i < ids.len; i++) {
            size_t len;
            const char *p = llm_bpe_token(t->bpe, ids.data[i], &len);
            rc = i ? llm_buf_append(out, " ", 1) : LLM_OK;
            if (!rc)
                rc = llm_buf_append(out, p, len);
        }
        llm_ids_free(&ids);
        return rc ? rc : llm_buf_append(out, "", 0);
    }
    try {
        thread_local std::vector<std::string> pieces;
        pieces.clear();
        auto st = t->sp.Encode(absl::string_view(text, n), &pieces);
        if (!st.ok())
            return fail_status(st);
        for (size_t i = 0; i < pieces.size(); i++) {
            int rc = (i ? llm_buf_append(out, " ", 1) : LLM_OK);
            if (!rc)
                rc = llm_buf_append(out, pieces[i].data(), pieces[i].size());
            if (rc)
                return rc;
        }
        return llm_buf_append(out, "", 0);   // keeps data NUL-terminated
    } catch (...) {
        return fail_exception();
    }
}

int llm_tok_decode(const llm_tok *t, const int32_t *ids, size_t n, llm_buf *out)
{
    if (t->bpe)
        return llm_bpe_decode(t->bpe, ids, n, out);
    try {
        thread_local std::vector<int> v;
        thread_local std::string text;
        v.assign(ids, ids + n);
        for (int id : v)
            if (check_id(t, id))
                return LLM_ERR_RANGE;
        auto st = t->sp.Decode(v, &text);
        if (!st.ok())
            return fail_status(st);
        return llm_buf_append(out, text.data(), text.size());
    } catch (...) {
        return fail_exception();
    }
}

// Follows SentencePieceProcessor::Decode piece by piece: control pieces are
// invisible, <unk> shows its surface, a byte piece gives its raw byte (the
// bytes of a character arrive one id at a time), "▁" is a space, and the
// first visible piece loses the space the dummy prefix added. "First" is
// judged from `prev` alone: -1 or a control piece (e.g. <s>); a caller
// streaming after an invisible piece in mid-text should pass the last
// visible one.
int llm_tok_decode_piece(const llm_tok *t, int prev, int id, llm_buf *out)
{
    try {
        int rc = check_id(t, id);
        if (rc)
            return rc;
        if (prev >= t->vocab || prev < -1)
            return check_id(t, prev);
        if (t->bpe)
            return llm_bpe_decode_piece(t->bpe, id, out);
        const ModelInfo &mi = t->info;
        unsigned type = mi.types[(size_t)id];
        const std::string &piece = t->sp.IdToPiece(id);
        if (type == LLM_PIECE_CONTROL)
            return llm_buf_append(out, "", 0);
        if (type == LLM_PIECE_UNKNOWN)
            return llm_buf_append(out, mi.unk_surface.data(), mi.unk_surface.size());
        if (type == LLM_PIECE_BYTE) {
            // "<0xNN>"
            unsigned char c = (unsigned char)strtoul(piece.c_str() + 3, nullptr, 16);
            return llm_buf_append(out, &c, 1);
        }
        size_t at = 0;
        bool first = prev < 0 || mi.types[(size_t)prev] == LLM_PIECE_CONTROL;
        if (first && (mi.add_dummy_prefix || mi.remove_extra_ws) &&
            piece.compare(0, 3, kSpace) == 0)
            at = 3;
        if ((rc = llm_buf_append(out, "", 0)))
            return rc;
        while (at < piece.size()) {
            size_t sp = piece.find(kSpace, at);
            size_t end = sp == std::string::npos ? piece.size() : sp;
            if ((rc = llm_buf_append(out, piece.data() + at, end - at)))
                return rc;
            if (sp == std::string::npos)
                break;
            if ((rc = llm_buf_append(out, " ", 1)))
                return rc;
            at = sp + 3;
        }
        return LLM_OK;
    } catch (...) {
        return fail_exception();
    }
}

void llm_tok_train_defaults(llm_tok_train_params *p)
{
    memset(p, 0, sizeof *p);
    p->model_type = "unigram";
    p->vocab_size = 8000;
    p->character_coverage = 0.9995;
    p->byte_fallback = 1;
    p->normalization = "nmt_nfkc";
    p->remove_extra_whitespaces = 1;
    p->split_digits = 0;
    p->input_sentence_size = 0;
    p->seed = 0;
    p->threads = 0;
    p->max_sentence_length = 4192;
    p->verbose = 0;
}

int llm_tok_train(const char *const *inputs, size_t n_inputs,
                  const llm_tok_train_params *p, llm_tok **out)
{
    *out = nullptr;
    static const char *const types[] = {"unigram", "bpe", "char", "word", nullptr};
    static const char *const norms[] = {"nmt_nfkc", "nfkc", "nmt_nfkc_cf", "nfkc_cf",
                                        "identity", nullptr};
    // The trainer's own limits (trainer_interface.cc VerifySpec), checked
    // here so that the message names our option rather than a proto field.
    if (!p->model_type || !one_of(p->model_type, types))
        return llm_fail(LLM_ERR_INVALID, "unknown model type '%s'",
                        p->model_type ? p->model_type : "(null)");
    if (!p->normalization || !one_of(p->normalization, norms))
        return llm_fail(LLM_ERR_INVALID, "unknown normalization '%s'",
                        p->normalization ? p->normalization : "(null)");
    if (p->vocab_size < 1)
        return llm_fail(LLM_ERR_INVALID, "vocabulary size %d must be positive", p->vocab_size);
    if (!(p->character_coverage >= 0.98 && p->character_coverage <= 1.0))
        return llm_fail(LLM_ERR_INVALID, "character coverage %g is outside [0.98, 1]",
                        p->character_coverage);
    if (p->threads < 0 || p->threads > 128)
        return llm_fail(LLM_ERR_INVALID, "thread count %d is outside [0, 128]", p->threads);
    if (p->max_sentence_length < 10 || p->max_sentence_length > 1073741824)
        return llm_fail(LLM_ERR_INVALID, "maximum sentence length %d is outside [10, 2^30]",
                        p->max_sentence_length);
    if (p->input_sentence_size < 0 ||
        (p->input_sentence_size > 0 && p->input_sentence_size <= 100))
        return llm_fail(LLM_ERR_INVALID,
                        "input sentence size %lld must be 0 (all) or more than 100",
                        (long long)p->input_sentence_size);
    if (n_inputs == 0)
        return llm_fail(LLM_ERR_INVALID, "no training input");
    // The user and control symbols, each a piece of its own (SentencePiece
    // fails on an empty or repeated one without saying which).
    std::set<std::string> syms = {"<unk>", "<s>", "</s>"};
    for (const char *list : {p->user_symbols, p->control_symbols})
        for (const char *s = list; s && *s;) {
            const char *e = strchr(s, ',');
            size_t n = e ? (size_t)(e - s) : strlen(s);
            if (n == 0)
                return llm_fail(LLM_ERR_INVALID, "an empty symbol in '%s'", list);
            std::string sym(s, n);
            if (!syms.insert(sym).second)
                return llm_fail(LLM_ERR_INVALID, "symbol '%s' is given twice or is a special "
                                "piece", sym.c_str());
            s = e ? e + 1 : s + n;
        }
    int specials = (int)syms.size() + (p->byte_fallback ? 256 : 0);   // and the bytes
    if (p->vocab_size <= specials && !p->fit_vocab)
        return llm_fail(LLM_ERR_INVALID, "vocabulary size %d is too small: its special pieces "
                        "(<unk>, <s>, </s>%s, and any user or control symbols) alone are %d",
                        p->vocab_size, p->byte_fallback ? ", 256 bytes" : "", specials);
    try {
        int threads = p->threads;
        if (threads == 0)
            threads = (int)std::min(128u, std::max(1u, std::thread::hardware_concurrency()));
        std::unordered_map<std::string, std::string> kw = {
            {"model_type", p->model_type},
            {"vocab_size", std::to_string(p->vocab_size)},
            {"character_coverage", num(p->character_coverage)},
            {"byte_fallback", p->byte_fallback ? "true" : "false"},
            {"normalization_rule_name", p->normalization},
            {"remove_extra_whitespaces", p->remove_extra_whitespaces ? "true" : "false"},
            {"split_digits", p->split_digits ? "true" : "false"},
            // (sampled by LineIterator, with the seed: SentencePiece's own
            // sampler ignores SetRandomGeneratorSeed in 0.1.97)
            {"input_sentence_size", "0"},
            {"num_threads", std::to_string(threads)},
            {"max_sentence_length", std::to_string(p->max_sentence_length)},
            // SentencePiece logs through its own LOG() to std::cerr; its
            // global minimum level hides INFO and WARNING (the latter is
            // printed per skipped line) unless asked for. Set on every call
            // because the level is process-wide and sticky.
            {"minloglevel", p->verbose ? "0" : "2"},
        };
        if (p->user_symbols && *p->user_symbols)
            kw["user_defined_symbols"] = p->user_symbols;
        if (p->control_symbols && *p->control_symbols)
            kw["control_symbols"] = p->control_symbols;
        // Character and word models take every piece the corpus has; the
        // vocabulary size is then an upper bound, as spm_train treats it.
        // With fit_vocab, a size the corpus cannot support is replaced by
        // the one the trainer names and trained again (a bound found for one
        // size can move a little for the next, hence up to three tries).
        // (Fitted from above the special pieces, which the trainer
        // otherwise fails on without naming a size.)
        int vocab = p->vocab_size > specials ? p->vocab_size : specials + 1;
        std::string in;
        for (size_t i = 0; i < n_inputs; i++)
            if (strcmp(inputs[i], "-") == 0) {
                char buf[1 << 16];
                size_t k;
                while ((k = fread(buf, 1, sizeof buf, stdin)) > 0)
                    in.append(buf, k);
                if (ferror(stdin))
                    return llm_fail(LLM_ERR_IO, "'(standard input)': read error: %s",
                                    strerror(errno ? errno : EIO));
                break;
            }
        for (int attempt = 0;; attempt++) {
            kw["vocab_size"] = std::to_string(vocab);
            sentencepiece::SetRandomGeneratorSeed(p->seed);
            LineIterator it(inputs, n_inputs, (size_t)p->max_sentence_length,
                            p->input_sentence_size, p->seed, in);
            std::string serialized;
            // model_prefix stays empty: with an output string the trainer
            // serializes into it and writes no files.
            auto st = sentencepiece::SentencePieceTrainer::Train(kw, &it, &serialized);
            if (it.err())
                return llm_fail(it.err(), "%s", it.msg().c_str());
            if (st.ok())
                return load_proto(serialized.data(), serialized.size(), nullptr, out);
            if (it.usable() == 0)
                return it.lines() == 0
                           ? llm_fail(LLM_ERR_INVALID, "no text to train on: the input is empty")
                           : llm_fail(LLM_ERR_INVALID, "no text to train on: each of the %lld "
                                      "lines is empty or longer than the maximum sentence "
                                      "length (%d bytes)", it.lines(), p->max_sentence_length);
            long fit = feasible_vocab(st);
            if (!p->fit_vocab || attempt == 2 || fit < 1 || fit == vocab || fit > 1000000)
                return fail_train(st, vocab);
            vocab = (int)fit;
        }
    } catch (...) {
        return fail_exception();
    }
}

}  // extern "C"
