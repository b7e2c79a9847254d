/* plot.c: the SVG pictures of plot.h. Fixed 800 x 460 canvas, system fonts,
 * no script; numbers printed with %g so that a picture is the same bytes for
 * the same data. */
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "plot.h"

static void add(llm_buf *b, const char *s)
{
    if (llm_buf_append(b, s, strlen(s)))
        cli_die("out of memory");
}

static void addf(llm_buf *b, const char *fmt, ...) CLI_PRINTF(2, 3);
static void addf(llm_buf *b, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int rc = llm_buf_vprintf(b, fmt, ap);
    va_end(ap);
    if (rc)
        cli_die("%s", llm_errmsg());
}

/* XML character data: invalid UTF-8 and control characters (not allowed
 * in XML 1.0) as U+FFFD, & < > " escaped. */
static void add_text(llm_buf *b, const char *s, size_t n)
{
    llm_buf t = { 0 };
    if (llm_utf8_repair(s, n, &t, NULL))
        cli_die("%s", llm_errmsg());
    for (size_t i = 0; i < t.len; i++) {
        unsigned char c = (unsigned char)t.data[i];
        if (c == '&')
            add(b, "&amp;");
        else if (c == '<')
            add(b, "&lt;");
        else if (c == '>')
            add(b, "&gt;");
        else if (c == '"')
            add(b, "&quot;");
        else if (c < 0x20 && c != '\t' && c != '\n')
            add(b, "\xEF\xBF\xBD");
        else if (llm_buf_append(b, t.data + i, 1))
            cli_die("out of memory");
    }
    llm_buf_free(&t);
}

enum { W = 800, H = 460 };

static void header(llm_buf *b, const char *title)
{
    addf(b, "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n"
            "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"%d\" height=\"%d\" "
            "viewBox=\"0 0 %d %d\" font-family=\"sans-serif\" font-size=\"12\">\n"
            "<rect width=\"%d\" height=\"%d\" fill=\"white\"/>\n",
         W, H, W, H, W, H);
    add(b, "<title>");
    add_text(b, title, strlen(title));
    add(b, "</title>\n<text x=\"400\" y=\"20\" text-anchor=\"middle\" font-size=\"14\">");
    add_text(b, title, strlen(title));
    add(b, "</text>\n");
}

/* Tick step for about `want` ticks over [lo, hi]: 1, 2 or 5 x 10^k. */
static double nice_step(double lo, double hi, int want)
{
    double raw = (hi - lo) / want;
    if (!(raw > 0))
        return 1;
    double p = pow(10, floor(log10(raw))), m = raw / p;
    return (m < 1.5 ? 1 : m < 3.5 ? 2 : m < 7.5 ? 5 : 10) * p;
}

/* 1234567 as "1.23M". */
static void short_num(char *s, size_t cap, double v)
{
    const char *unit = "";
    if (fabs(v) >= 1e9) {
        v /= 1e9;
        unit = "G";
    } else if (fabs(v) >= 1e6) {
        v /= 1e6;
        unit = "M";
    } else if (fabs(v) >= 1e3) {
        v /= 1e3;
        unit = "k";
    }
    snprintf(s, cap, "%.3g%s", v, unit);
}

/* ------------------------------------------------------------ training log */

static void push(double **v, size_t n, double x)
{
    if ((n & (n - 1)) == 0) {   /* grow at powers of two */
        double *p = realloc(*v, (n ? 2 * n : 16) * sizeof *p);
        if (!p)
            cli_die("out of memory");
        *v = p;
    }
    (*v)[n] = x;
}

static int member(const llm_json_node *o, const char *key, double *v)
{
    const llm_json_node *n = llm_json_get(o, key);
    return n && llm_json_double(n, v) == 0;
}

void plot_log_read(const char *text, size_t n, const char *name, plot_log *out)
{
    memset(out, 0, sizeof *out);
    double cum = 0;
    size_t off = 0, line = 0, damaged = 0, first_damaged = 0;
    while (off < n) {
        const char *nl = memchr(text + off, '\n', n - off);
        size_t len = nl ? (size_t)(nl - (text + off)) : n - off;
        line++;
        size_t a = 0;
        while (a < len && (text[off + a] == ' ' || text[off + a] == '\r'))
            a++;
        if (a < len) {
            llm_json *j;
            if (llm_json_parse(text + off, len, name, off, &j)) {
                /* A line cut by a run killed while writing it (kill -9, a
                 * full disk), which a resumed run then appended to. */
                if (!damaged++)
                    first_damaged = line;
                off += len + (nl != NULL);
                continue;
            }
            const llm_json_node *o = llm_json_root(j);
            double step, v, lr = NAN, tok = 0;
            if (o->type != LLM_JSON_OBJECT || !member(o, "step", &step))
                cli_die("'%s', line %zu: not a llm-train log line (a JSON object with "
                        "\"step\")", name, line);
            if (member(o, "loss", &v)) {
                /* A resumed run logs again the steps after the checkpoint it
                 * resumed from: its records replace the earlier ones. */
                while (out->n && out->step[out->n - 1] >= step)
                    out->n--;
                while (out->nv && out->vstep[out->nv - 1] >= step)
                    out->nv--;
                cum = out->n ? out->tokens[out->n - 1] : 0;
                member(o, "lr", &lr);
                member(o, "tokens", &tok);
                cum += tok;
                push(&out->step, out->n, step);
                push(&out->loss, out->n, v);
                push(&out->lr, out->n, lr);
                push(&out->tokens, out->n, cum);
                out->n++;
            }
            if (member(o, "val_loss", &v)) {
                push(&out->vstep, out->nv, step);
                push(&out->vloss, out->nv, v);
                out->nv++;
            }
            llm_json_free(j);
        }
        off += len + (nl != NULL);
    }
    if (damaged)
        cli_warn("'%s': %zu damaged line%s skipped (the first: line %zu), cut by a run "
                 "killed while writing", name, damaged, damaged == 1 ? "" : "s", first_damaged);
}

void plot_log_free(plot_log *p)
{
    free(p->step);
    free(p->loss);
    free(p->lr);
    free(p->tokens);
    free(p->vstep);
    free(p->vloss);
    memset(p, 0, sizeof *p);
}

/* Plot area. */
enum { X0 = 70, X1 = 720, Y0 = 50, Y1 = 390 };

void plot_training(llm_buf *b, const plot_log *p, const char *title)
{
    header(b, title);
    double s0 = INFINITY, s1 = -INFINITY, l0 = INFINITY, l1 = -INFINITY, lrmax = 0;
    for (size_t i = 0; i < p->n; i++) {
        s0 = fmin(s0, p->step[i]);
        s1 = fmax(s1, p->step[i]);
        if (isfinite(p->loss[i])) {
            l0 = fmin(l0, p->loss[i]);
            l1 = fmax(l1, p->loss[i]);
        }
        if (isfinite(p->lr[i]))
            lrmax = fmax(lrmax, p->lr[i]);
    }
    for (size_t i = 0; i < p->nv; i++) {
        s0 = fmin(s0, p->vstep[i]);
        s1 = fmax(s1, p->vstep[i]);
        if (isfinite(p->vloss[i])) {
            l0 = fmin(l0, p->vloss[i]);
            l1 = fmax(l1, p->vloss[i]);
        }
    }
    if (!(s0 <= s1) || !(l0 <= l1)) {
        add(b, "<text x=\"400\" y=\"230\" text-anchor=\"middle\">no steps logged</text>\n"
               "</svg>\n");
        return;
    }
    if (s1 == s0)
        s1 = s0 + 1;
    double pad = (l1 - l0) * 0.05 + (l1 == l0 ? 0.5 : 0);
    l0 -= pad;
    l1 += pad;
#define PX(s) (X0 + ((s) - s0) / (s1 - s0) * (X1 - X0))
#define PY(l) (Y1 - ((l) - l0) / (l1 - l0) * (Y1 - Y0))
    addf(b, "<rect x=\"%d\" y=\"%d\" width=\"%d\" height=\"%d\" fill=\"none\" "
            "stroke=\"#444\"/>\n", X0, Y0, X1 - X0, Y1 - Y0);
    /* Loss axis and grid. */
    double dy = nice_step(l0, l1, 6);
    for (double v = ceil(l0 / dy) * dy; v <= l1; v += dy)
        addf(b, "<line x1=\"%d\" x2=\"%d\" y1=\"%.1f\" y2=\"%.1f\" stroke=\"#ddd\"/>"
                "<text x=\"%d\" y=\"%.1f\" text-anchor=\"end\">%g</text>\n",
             X0, X1, PY(v), PY(v), X0 - 6, PY(v) + 4, fabs(v) < dy / 1e6 ? 0.0 : v);
    addf(b, "<text transform=\"translate(18 %d) rotate(-90)\" text-anchor=\"middle\">"
            "loss (nats per token)</text>\n", (Y0 + Y1) / 2);
    /* Step axis, with the tokens seen by each tick under it. */
    double dx = nice_step(s0, s1, 8);
    for (double s = ceil(s0 / dx) * dx; s <= s1; s += dx) {
        addf(b, "<line x1=\"%.1f\" x2=\"%.1f\" y1=\"%d\" y2=\"%d\" stroke=\"#444\"/>"
                "<text x=\"%.1f\" y=\"%d\" text-anchor=\"middle\">%g</text>\n",
             PX(s), PX(s), Y1, Y1 + 5, PX(s), Y1 + 18, s);
        size_t k = 0;
        while (k + 1 < p->n && p->step[k + 1] <= s)
            k++;
        if (p->n && p->tokens[k] > 0) {
            char t[32];
            short_num(t, sizeof t, p->tokens[k]);
            addf(b, "<text x=\"%.1f\" y=\"%d\" text-anchor=\"middle\" fill=\"#777\">%s"
                    "</text>\n", PX(s), Y1 + 32, t);
        }
    }
    addf(b, "<text x=\"%d\" y=\"%d\" text-anchor=\"middle\">step (grey: tokens seen)"
            "</text>\n", (X0 + X1) / 2, Y1 + 52);
    /* Learning rate: dashed, on its own axis at the right. */
    if (lrmax > 0) {
        add(b, "<polyline fill=\"none\" stroke=\"#999\" stroke-dasharray=\"4 3\" points=\"");
        for (size_t i = 0; i < p->n; i++)
            if (isfinite(p->lr[i]))
                addf(b, "%.1f,%.1f ", PX(p->step[i]),
                     Y1 - p->lr[i] / lrmax * (Y1 - Y0));
        add(b, "\"/>\n");
        addf(b, "<text x=\"%d\" y=\"%d\" fill=\"#777\">lr %.3g</text>"
                "<text x=\"%d\" y=\"%d\" fill=\"#777\">0</text>\n",
             X1 + 6, Y0 + 4, lrmax, X1 + 6, Y1 + 4);
    }
    /* Training loss; at most 4000 points drawn (every k-th). */
    size_t every = p->n > 4000 ? (p->n + 3999) / 4000 : 1;
    add(b, "<g id=\"train\"><desc>step loss lr tokens\n");
    for (size_t i = 0; i < p->n; i++)
        addf(b, "%g %g %g %g\n", p->step[i], p->loss[i], p->lr[i], p->tokens[i]);
    add(b, "</desc><polyline fill=\"none\" stroke=\"#1f77b4\" stroke-width=\"1.2\" points=\"");
    for (size_t i = 0; i < p->n; i += every)
        if (isfinite(p->loss[i]))
            addf(b, "%.1f,%.1f ", PX(p->step[i]), PY(p->loss[i]));
    add(b, "\"/></g>\n");
    /* Validation loss: a line through circles. */
    if (p->nv) {
        add(b, "<g id=\"validation\"><desc>step val_loss\n");
        for (size_t i = 0; i < p->nv; i++)
            addf(b, "%g %g\n", p->vstep[i], p->vloss[i]);
        add(b, "</desc><polyline fill=\"none\" stroke=\"#ff7f0e\" stroke-width=\"2\" points=\"");
        for (size_t i = 0; i < p->nv; i++)
            if (isfinite(p->vloss[i]))
                addf(b, "%.1f,%.1f ", PX(p->vstep[i]), PY(p->vloss[i]));
        add(b, "\"/>\n");
        for (size_t i = 0; i < p->nv; i++)
            if (isfinite(p->vloss[i]))
                addf(b, "<circle cx=\"%.1f\" cy=\"%.1f\" r=\"3\" fill=\"#ff7f0e\"><title>"
                        "step %g: validation loss %g</title></circle>\n",
                     PX(p->vstep[i]), PY(p->vloss[i]), p->vstep[i], p->vloss[i]);
        add(b, "</g>\n");
    }
#undef PX
#undef PY
    /* Legend. */
    addf(b, "<g transform=\"translate(%d %d)\">"
            "<line x1=\"0\" x2=\"20\" y1=\"0\" y2=\"0\" stroke=\"#1f77b4\" stroke-width=\"2\"/>"
            "<text x=\"25\" y=\"4\">training loss</text>", X0 + 10, Y0 - 12);
    if (p->nv)
        add(b, "<line x1=\"130\" x2=\"150\" y1=\"0\" y2=\"0\" stroke=\"#ff7f0e\" "
               "stroke-width=\"2\"/><text x=\"155\" y=\"4\">validation loss</text>");
    if (lrmax > 0)
        add(b, "<line x1=\"270\" x2=\"290\" y1=\"0\" y2=\"0\" stroke=\"#999\" "
               "stroke-dasharray=\"4 3\"/><text x=\"295\" y=\"4\">learning rate</text>");
    add(b, "</g>\n</svg>\n");
}

/* ----------------------------------------------------------- classifier */

void plot_classifier(llm_buf *b, int K, const char *const *names, const size_t *name_len,
                     const uint64_t *conf, const uint64_t *bin_n, const double *bin_conf,
                     const double *bin_acc, const char *title)
{
    header(b, title);
    /* Left: the confusion matrix, each cell shaded by its share of the row
     * (the gold label's documents), in a square of 300 px. */
    const int MX = 150, MY = 120, SIDE = 300;
    if (conf && K <= 100) {
        double cell = (double)SIDE / K;
        int show = K <= 20;
        add(b, "<g id=\"confusion\"><desc>gold predicted count\n");
        for (int i = 0; i < K; i++)
            for (int j = 0; j < K; j++)
                if (conf[(size_t)i * K + j]) {
                    add_text(b, names[i], name_len[i]);
                    add(b, "\t");
                    add_text(b, names[j], name_len[j]);
                    addf(b, "\t%llu\n", (unsigned long long)conf[(size_t)i * K + j]);
                }
        add(b, "</desc>\n");
        for (int i = 0; i < K; i++) {
            uint64_t row = 0;
            for (int j = 0; j < K; j++)
                row += conf[(size_t)i * K + j];
            for (int j = 0; j < K; j++) {
                uint64_t c = conf[(size_t)i * K + j];
                double share = row ? (double)c / (double)row : 0;
                int lum = (int)lround(255 - 200 * share);
                addf(b, "<rect x=\"%.2f\" y=\"%.2f\" width=\"%.2f\" height=\"%.2f\" "
                        "fill=\"rgb(%d,%d,255)\" stroke=\"#fff\"><title>",
                     MX + j * cell, MY + i * cell, cell, cell, lum, lum);
                add_text(b, names[i], name_len[i]);
                add(b, " as ");
                add_text(b, names[j], name_len[j]);
                addf(b, ": %llu</title></rect>\n", (unsigned long long)c);
                if (show && c)
                    addf(b, "<text x=\"%.1f\" y=\"%.1f\" text-anchor=\"middle\" "
                            "fill=\"%s\">%llu</text>\n", MX + (j + 0.5) * cell,
                         MY + (i + 0.5) * cell + 4, share > 0.6 ? "white" : "black",
                         (unsigned long long)c);
            }
        }
        for (int i = 0; show && i < K; i++) {
            addf(b, "<text x=\"%d\" y=\"%.1f\" text-anchor=\"end\">", MX - 6,
                 MY + (i + 0.5) * cell + 4);
            add_text(b, names[i], name_len[i] > 24 ? 24 : name_len[i]);
            addf(b, "</text><text transform=\"translate(%.1f %d) rotate(-45)\">",
                 MX + (i + 0.5) * cell, MY - 6);
            add_text(b, names[i], name_len[i] > 24 ? 24 : name_len[i]);
            add(b, "</text>\n");
        }
        addf(b, "</g>\n<text x=\"%d\" y=\"%d\" text-anchor=\"middle\">rows: gold label, "
                "columns: predicted (shade: share of the row)</text>\n",
             MX + SIDE / 2, MY + SIDE + 24);
    } else {
        addf(b, "<text x=\"%d\" y=\"%d\" text-anchor=\"middle\">%s</text>\n", MX + SIDE / 2,
             MY + SIDE / 2, conf ? "confusion matrix: too many labels to draw (JSON has it)"
                                 : "multi-label: no confusion matrix");
    }
    /* Right: the reliability diagram. */
    const int RX = 500, RY = 120;
    add(b, "<g id=\"reliability\"><desc>lower upper count confidence accuracy\n");
    for (int i = 0; i < 10; i++)
        addf(b, "%.1f %.1f %llu %g %g\n", i / 10.0, (i + 1) / 10.0,
             (unsigned long long)bin_n[i], bin_n[i] ? bin_conf[i] : NAN,
             bin_n[i] ? bin_acc[i] : NAN);
    addf(b, "</desc>\n<rect x=\"%d\" y=\"%d\" width=\"%d\" height=\"%d\" "
            "fill=\"none\" stroke=\"#444\"/>\n"
            "<line x1=\"%d\" y1=\"%d\" x2=\"%d\" y2=\"%d\" stroke=\"#999\" "
            "stroke-dasharray=\"4 3\"/>\n", RX, RY, 250, 250, RX, RY + 250, RX + 250, RY);
    for (int i = 0; i < 10; i++) {
        if (!bin_n[i])
            continue;
        double h = bin_acc[i] * 250;
        addf(b, "<rect x=\"%d\" y=\"%.1f\" width=\"25\" height=\"%.1f\" fill=\"#1f77b4\" "
                "fill-opacity=\"0.6\" stroke=\"#fff\"><title>confidence %.1f-%.1f: %llu "
                "documents, accuracy %.3f, mean confidence %.3f</title></rect>\n",
             RX + i * 25, RY + 250 - h, h, i / 10.0, (i + 1) / 10.0,
             (unsigned long long)bin_n[i], bin_acc[i], bin_conf[i]);
        addf(b, "<circle cx=\"%.1f\" cy=\"%.1f\" r=\"3\" fill=\"#ff7f0e\"/>\n",
             RX + bin_conf[i] * 250, RY + 250 - bin_acc[i] * 250);
    }
    for (int i = 0; i <= 10; i += 2)
        addf(b, "<text x=\"%d\" y=\"%d\" text-anchor=\"middle\">%.1f</text>"
                "<text x=\"%d\" y=\"%d\" text-anchor=\"end\">%.1f</text>\n",
             RX + i * 25, RY + 266, i / 10.0, RX - 6, RY + 250 - i * 25 + 4, i / 10.0);
    addf(b, "<text x=\"%d\" y=\"%d\" text-anchor=\"middle\">confidence (bars: accuracy; "
            "dots: mean confidence)</text></g>\n</svg>\n", RX + 125, RY + 290);
}
