/* fuzz_bpe_json.c: llm_bpe_from_json() on arbitrary bytes. An accepted
 * tokenizer must encode a fixed string (every byte kind: ASCII, CJK,
 * emoji, digits, whitespace runs, invalid UTF-8) to ids in range that decode
 * back to it when every byte has a token (and give byte spans that tile
 * it), write itself back as JSON, and read that back; a refusal must leave
 * a message. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "text/bpe.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static const char text[] = "Hello  world 12345 don't\n\n\t中文 😀<|endoftext|>\xff\xe4\xb8 end ";

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    llm_bpe *b = NULL;
    int rc = llm_bpe_from_json((const char *)data, size, "fuzz.json", &b);
    if (rc != LLM_OK) {
        if (b != NULL || llm_errmsg()[0] == '\0')
            abort();
        return 0;
    }
    size_t n = sizeof text - 1;
    for (int special = 0; special < 2; special++) {
        llm_ids ids = {0};
        llm_buf dec = {0};
        rc = llm_bpe_encode(b, text, n, special, &ids);
        if (rc == LLM_OK) {
            for (size_t i = 0; i < ids.len; i++)
                if (ids.data[i] < 0 || (size_t)ids.data[i] >= llm_bpe_n_tokens(b))
                    abort();
            if (llm_bpe_decode(b, ids.data, ids.len, &dec) != LLM_OK)
                abort();
            /* no unk stands in for a byte: the text comes back exactly */
            if (llm_bpe_special(b, LLM_BPE_UNK) < 0 &&
                (dec.len != n || memcmp(dec.data, text, n) != 0))
                abort();
        } else if (rc != LLM_ERR_RANGE && rc != LLM_ERR_FORMAT) {
            abort();
        }
        /* With offsets: the same ids; spans inside the text, in order; with
         * no unk and text NFC leaves alone, they tile it. */
        if (!special) {
            llm_ids ids2 = {0}, sp = {0};
            llm_bpe_scratch sc;
            memset(&sc, 0, sizeof sc);
            int rc2 = llm_bpe_encode_spans(b, text, n, &sc, &ids2, &sp);
            if (rc2 != rc || (rc == LLM_OK && (ids2.len != ids.len || sp.len != 2 * ids.len ||
                                               (ids.len && memcmp(ids.data, ids2.data,
                                                                  ids.len * sizeof *ids.data)))))
                abort();
            int32_t last = 0;
            for (size_t i = 0; rc == LLM_OK && i < ids2.len; i++) {
                int32_t a = sp.data[2 * i], z = sp.data[2 * i + 1];
                if (a < last || z < a || (size_t)z > n)
                    abort();
                if (llm_bpe_special(b, LLM_BPE_UNK) < 0 && a != last)
                    abort();
                last = llm_bpe_special(b, LLM_BPE_UNK) < 0 ? z : a;
            }
            if (rc == LLM_OK && ids2.len && llm_bpe_special(b, LLM_BPE_UNK) < 0 &&
                (size_t)last != n)
                abort();
            llm_bpe_scratch_free(&sc);
            llm_ids_free(&ids2);
            llm_ids_free(&sp);
        }
        llm_ids_free(&ids);
        llm_buf_free(&dec);
    }
    llm_buf j = {0};
    if (llm_bpe_to_json(b, &j) == LLM_OK) {
        llm_bpe *c = NULL;
        if (llm_bpe_from_json(j.data, j.len, "again.json", &c) != LLM_OK)
            abort();
        if (llm_bpe_n_tokens(c) != llm_bpe_n_tokens(b) ||
            llm_bpe_n_merges(c) != llm_bpe_n_merges(b))
            abort();
        llm_bpe_free(c);
    }
    llm_buf_free(&j);
    llm_bpe_free(b);
    return 0;
}
