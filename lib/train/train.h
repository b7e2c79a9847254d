/* train.h: the training group's internals (lib/train/: batchers, the
 * trainer state, the steps) that other groups use; not API. */
#ifndef LLM_TRAIN_H
#define LLM_TRAIN_H

#include "llm.h"

/* Batchers over items other than token sequences (data.c), for classify.c:
 * the same seeded, resumable order over n items (documents of `docs`). */
int llm_batcher_new_items(const llm_cls_data *docs, uint64_t n, uint64_t seed,
                          llm_batcher **out);
/*! llm_batcher_docs() : the documents of a batcher over them, else NULL. */
const llm_cls_data *llm_batcher_docs(const llm_batcher *b);
/*! llm_pairs_width() : T of the last llm_pairs_pack() (0 before any). */
int llm_pairs_width(const llm_pairs *d);
/*! llm_batcher_pairs() : the pairs of a batcher over them, else NULL. */
const llm_pairs *llm_batcher_pairs(const llm_batcher *b);
/*! llm_batcher_width() : T of a batcher over token sequences, else 0. */
int llm_batcher_width(const llm_batcher *b);
/*! llm_batcher_take() : the next item's index in the shuffled order. */
uint64_t llm_batcher_take(llm_batcher *b);

/* The trainer state (optim.c), for the trainer (train.c). */
/*! llm_model_grad_size() : floats of the gradient block (every tensor
 *  that trains, in parameter-block order), 0 before the first
 *  llm_model_zero_grad(). */
size_t llm_model_grad_size(const llm_model *m);
/*! llm_model_grad_copy() : the gradient block to host (to_host) or back
 *  from it, llm_model_grad_size() floats. */
void llm_model_grad_copy(llm_model *m, float *host, int to_host);
/*! llm_model_set_micro() : the micro-batch of this step whose dropout masks
 *  the next forward draws (by default, counted by backward passes). */
void llm_model_set_micro(llm_model *m, int64_t micro);

#endif
