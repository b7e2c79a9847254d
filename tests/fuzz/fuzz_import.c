/* fuzz_import.c: a GGUF file of any bytes handed to llm_model_load() and
 * llm_tok_load(), as a user would give a model (through a memfd, since both
 * take a path). A file either loads, and then its model runs one forward
 * pass and its tokenizer a round trip, or is refused with a message; it
 * never crashes, reads out of bounds or makes a huge allocation. The seeds
 * are small llama models written by our GGUF writer (tests/unit/test_import.c
 * makes the same kind). */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "llm.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    /* Only GGUF inputs reach the importer; the others are our own files,
     * fuzzed by fuzz_safetensors. */
    if (size < 4 || memcmp(data, "GGUF", 4) != 0)
        return 0;
    int fd = memfd_create("fuzz.gguf", 0);
    if (fd < 0)
        return 0;
    size_t off = 0;
    while (off < size) {
        ssize_t w = write(fd, data + off, size - off);
        if (w <= 0)
            break;
        off += (size_t)w;
    }
    char path[64];
    snprintf(path, sizeof path, "/proc/self/fd/%d", fd);
    llm_model *m = NULL;
    llm_tok *t = NULL;
    if (off == size && llm_model_load(path, "cpu", &m) == LLM_OK) {
        const llm_config *c = llm_model_config(m);
        if (c->context >= 2) {
            int32_t tok[2] = { 0, c->vocab_size - 1 };
            if (llm_model_forward(m, tok, NULL, 1, 2, NULL) != LLM_OK)
                abort();   /* a loaded model must run */
        }
    }
    if (off == size && llm_tok_load(path, &t) == LLM_OK) {
        llm_ids ids = { 0 };
        llm_buf b = { 0 };
        static const char text[] = "Hello, wörld 123 <|im_end|>\n";
        if (llm_tok_encode(t, text, sizeof text - 1, &ids) == LLM_OK)
            (void)llm_tok_decode(t, ids.data, ids.len, &b);
        llm_ids_free(&ids);
        llm_buf_free(&b);
    }
    llm_tok_free(t);
    llm_model_free(m);
    close(fd);
    return 0;
}
