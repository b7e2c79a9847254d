/* test_tokenizer.c: the SentencePiece wrapper: training, exact round trips,
 * streaming decode against whole-sequence decode, model metadata read by the
 * protobuf walker, and the error paths (bad ids, bad files, bad input). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "llm.h"

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
    CHECK(strcmp(llm_errmsg(), "'none.llm': model file has no U8 tensor 'tokenizer.model'") == 0);
    llm_tok_free(t);
    llm_ids_free(&ids);
    llm_buf_free(&out);

    /* A vocabulary too large for the corpus is reported in our words. */
    llm_tok_train_defaults(&p);
    p.threads = 1;
    CHECK(llm_tok_train(inputs, 1, &p, &t) == LLM_ERR_INVALID);
    CHECK(strstr(llm_errmsg(), "vocabulary size 8000 is too large for this corpus; "
                               "the trainer suggests <= ") != NULL);

    p.vocab_size = 300;
    CHECK(llm_tok_train(inputs, 1, &p, &t) == LLM_ERR_INVALID);
    CHECK(strstr(llm_errmsg(), "vocabulary size 300 is too small for this corpus") != NULL);

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

    free(tiny);
    if (failures)
        fprintf(stderr, "%d checks failed\n", failures);
    return failures != 0;
}
