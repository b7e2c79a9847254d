/* pbwrite.h: protobuf fields appended to an llm_buf, for tests and fuzz
 * harnesses that build or extend SentencePiece ModelProtos. Fields appended
 * to a serialized message merge into it (a message field merges, a scalar
 * field's last value wins), which SentencePiece and our walker both follow. */
#ifndef LLM_TEST_PBWRITE_H
#define LLM_TEST_PBWRITE_H

#include <stdint.h>
#include <string.h>

#include "llm.h"

static inline void pb_varint(llm_buf *b, uint64_t v)
{
    unsigned char c;
    do {
        c = (unsigned char)(v & 0x7f);
        v >>= 7;
        if (v)
            c |= 0x80;
        llm_buf_append(b, &c, 1);
    } while (v);
}

/* A length-delimited field: bytes, a string or a message. */
static inline void pb_len_field(llm_buf *b, unsigned field, const void *p, size_t n)
{
    pb_varint(b, (uint64_t)field << 3 | 2);
    pb_varint(b, n);
    llm_buf_append(b, p, n);
}

/* A varint field: an integer, an enum or a bool. */
static inline void pb_uint_field(llm_buf *b, unsigned field, uint64_t v)
{
    pb_varint(b, (uint64_t)field << 3);
    pb_varint(b, v);
}

/* A float field (fixed32, little-endian). */
static inline void pb_float_field(llm_buf *b, unsigned field, float f)
{
    unsigned char w[4];
    uint32_t bits;
    memcpy(&bits, &f, sizeof bits);
    for (int i = 0; i < 4; i++)
        w[i] = (unsigned char)(bits >> 8 * i);
    pb_varint(b, (uint64_t)field << 3 | 5);
    llm_buf_append(b, w, 4);
}

#endif
