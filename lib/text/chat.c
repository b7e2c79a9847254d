/* chat.c: an instruct model's prompt layout, built as ids. The two layouts
 * pretrained models use most are written out here rather than run through
 * a Jinja engine: ChatML (SmolLM2, Qwen, many fine-tunes) and Llama 2's
 * [INST]. Markers that are special tokens of the vocabulary are put in as
 * those ids and only the turns' text goes through the tokenizer, so a user
 * who types "<|im_end|>" gets text, not a turn boundary. */
#include <string.h>

#include "internal.h"

/* Appends the id of special token `piece`. */
static int push_special(const llm_tok *t, const char *piece, llm_ids *out)
{
    int id = llm_tok_piece_id(t, piece);
    if (id < 0)
        return llm_fail(LLM_ERR_UNSUPPORTED, "the vocabulary has no '%s' token for this chat "
                        "template", piece);
    return llm_ids_push(out, id);
}

/* Appends the ids of a + b (either may be empty). */
static int push_text2(const llm_tok *t, const char *a, size_t an, const char *b, size_t bn,
                      llm_ids *out)
{
    llm_buf s = { 0 };
    int rc = llm_buf_append(&s, a, an);
    if (!rc)
        rc = llm_buf_append(&s, b, bn);
    if (!rc && s.len)
        rc = llm_tok_encode(t, s.data, s.len, out);
    llm_buf_free(&s);
    return rc;
}

static int chatml_turn(const llm_tok *t, const char *role, const char *text, size_t n,
                       llm_ids *out)
{
    char head[32];
    int hn = snprintf(head, sizeof head, "%s\n", role);
    int rc = push_special(t, "<|im_start|>", out);
    if (!rc) rc = push_text2(t, head, (size_t)hn, text, n, out);
    if (!rc) rc = push_special(t, "<|im_end|>", out);
    if (!rc) rc = push_text2(t, "\n", 1, "", 0, out);
    return rc;
}

static int chat_encode(const llm_tok *t, const char *tmpl, const char *system, size_t sn,
                       const char *user, size_t un, llm_ids *out)
{
    int rc;
    if (!tmpl)
        return llm_fail(LLM_ERR_INVALID, "the model has no chat template");
    if (strcmp(tmpl, "chatml") == 0) {
        if (system && (rc = chatml_turn(t, "system", system, sn, out)))
            return rc;
        if ((rc = chatml_turn(t, "user", user, un, out)) ||
            (rc = push_special(t, "<|im_start|>", out)))
            return rc;
        return push_text2(t, "assistant\n", 10, "", 0, out);
    }
    if (strcmp(tmpl, "llama2") == 0) {
        /* <s>[INST] <<SYS>>\n{system}\n<</SYS>>\n\n{user} [/INST] */
        int bos = llm_tok_bos_id(t);
        if (bos >= 0 && (rc = llm_ids_push(out, bos)))
            return rc;
        llm_buf s = { 0 };
        rc = llm_buf_append(&s, "[INST] ", 7);
        if (!rc && system) {
            rc = llm_buf_append(&s, "<<SYS>>\n", 8);
            if (!rc) rc = llm_buf_append(&s, system, sn);
            if (!rc) rc = llm_buf_append(&s, "\n<</SYS>>\n\n", 11);
        }
        if (!rc) rc = llm_buf_append(&s, user, un);
        if (!rc) rc = llm_buf_append(&s, " [/INST]", 8);
        if (!rc) rc = llm_tok_encode(t, s.data, s.len, out);
        llm_buf_free(&s);
        return rc;
    }
    return llm_fail(LLM_ERR_INVALID, "unknown chat template '%s' (chatml, llama2)", tmpl);
}

int llm_chat_encode(const llm_tok *t, const char *tmpl, const char *system, size_t sn,
                    const char *user, size_t un, llm_ids *out)
{
    int rc = chat_encode(t, tmpl, system, sn, user, un, out);
    if (rc != LLM_ERR_RANGE)
        return rc;
    /* A byte no piece holds: the user's own, or the layout's words (and
     * the system turn's), which no prompt can then get past. */
    llm_ids alone = { 0 };
    if (llm_tok_encode(t, user, un, &alone) == LLM_OK)
        rc = llm_fail_cause(LLM_ERR_UNSUPPORTED, "the %s chat layout%s", tmpl,
                            system ? " and its system turn" : "");
    llm_ids_free(&alone);
    return rc;
}
