/* fuzz_textmetrics.c: the text metrics over arbitrary bytes. Each line is
 * reference<TAB>hypothesis (no tab: the whole line is both). Checks that
 * invalid UTF-8 is refused, that every figure is in [0, 100] (BP in [0, 1],
 * counts consistent), and that a corpus of each text against itself scores
 * exact match 100 and chrF2 100 or 0 (no characters). */
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "llm.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static int in_range(double x)
{
    return isfinite(x) && x >= 0 && x <= 100 + 1e-9;
}

static void check(const llm_text_metrics *m, uint64_t lines)
{
    llm_text_metrics_result r;
    int rc = llm_text_metrics_summary(m, &r);
    if (lines == 0) {
        if (rc != LLM_ERR_INVALID)
            abort();
        return;
    }
    if (rc != LLM_OK || r.lines != lines)
        abort();
    if (!in_range(r.bleu) || !in_range(r.chrf) || !in_range(r.exact_match) ||
        !in_range(r.token_f1) || !in_range(r.rouge_l) || !(r.bleu_bp >= 0 && r.bleu_bp <= 1))
        abort();
    for (int n = 0; n < 4; n++)
        if (!in_range(r.bleu_precisions[n]) || r.bleu_correct[n] > r.bleu_total[n] ||
            r.bleu_total[n] > r.bleu_sys_len)
            abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    llm_text_metrics *m, *self;
    if (llm_text_metrics_new(&m))
        return 0;
    if (llm_text_metrics_new(&self)) {
        llm_text_metrics_free(m);
        return 0;
    }
    const char *s = (const char *)data, *end = s + size;
    uint64_t lines = 0, selfs = 0;
    for (const char *p = s; p < end;) {
        const char *nl = memchr(p, '\n', (size_t)(end - p));
        const char *e = nl ? nl : end;
        const char *tab = memchr(p, '\t', (size_t)(e - p));
        const char *ref = p, *hyp = tab ? tab + 1 : p;
        size_t rn = (size_t)((tab ? tab : e) - p), hn = (size_t)(e - hyp);
        int valid = llm_utf8_check(ref, rn, NULL) && llm_utf8_check(hyp, hn, NULL);
        int rc = llm_text_metrics_add(m, ref, rn, hyp, hn);
        if (rc != (valid ? LLM_OK : LLM_ERR_UTF8))
            abort();
        lines += valid;
        for (int k = 0; valid && k < 2; k++) {
            const char *t = k ? hyp : ref;
            size_t tn = k ? hn : rn;
            if (llm_text_metrics_add(self, t, tn, t, tn))
                abort();
            selfs++;
        }
        p = e + 1;
    }
    check(m, lines);
    check(self, selfs);
    llm_text_metrics_result r;
    if (selfs && (llm_text_metrics_summary(self, &r) || r.exact_match != 100 ||
                  (r.chrf != 0 && fabs(r.chrf - 100) > 1e-9) ||
                  r.bleu_correct[0] != r.bleu_total[0]))
        abort();
    llm_text_metrics_free(m);
    llm_text_metrics_free(self);
    return 0;
}
