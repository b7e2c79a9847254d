/* plot.h: pictures as plain SVG, written by the programs themselves (no
 * dependency): llm-train's loss curves from its JSON Lines log, llm-eval's
 * confusion matrix and reliability diagram. Each picture also holds the
 * plotted numbers as text (a <desc> per series), so that scripts and tests
 * can read them back. */
#ifndef PLOT_H
#define PLOT_H

#include <stddef.h>
#include <stdint.h>

#include "llm.h"

/* The series of a training log: per step the loss, learning rate and tokens
 * (cumulative over the log), and the validations (val_loss at a step). */
typedef struct {
    double *step, *loss, *lr, *tokens;
    size_t n;
    double *vstep, *vloss;
    size_t nv;
} plot_log;

/*! plot_log_read() : the lines of a llm-train --log file text[0..n) (`name`
 *  in messages); JSON lines that are not objects with a step are refused,
 *  other members ignored; lines that are not JSON at all (cut by a run
 *  killed while writing) are skipped with a warning, and the records of a
 *  step logged again (by a resumed run) replace the earlier ones from that
 *  step on. Dies on bad input (cli_die). */
void plot_log_read(const char *text, size_t n, const char *name, plot_log *out);
void plot_log_free(plot_log *p);

/*! plot_training() : training and validation loss against step (tokens
 *  under the step axis), with the learning rate on a second axis. */
void plot_training(llm_buf *svg, const plot_log *p, const char *title);

/*! plot_classifier() : the confusion matrix (K labels, conf[gold * K +
 *  predicted], NULL for multi-label models) as a heat map of each row's
 *  shares, and the reliability diagram of 10 confidence bins (count,
 *  mean confidence, accuracy per bin; count 0 where empty). */
void plot_classifier(llm_buf *svg, int K, const char *const *names, const size_t *name_len,
                     const uint64_t *conf, const uint64_t *bin_n, const double *bin_conf,
                     const double *bin_acc, const char *title);

#endif
