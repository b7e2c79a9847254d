#!/bin/sh
# lora.sh: llm-train --lora: the usage errors (no --init, with --freeze, a
# rank of 0 or below, --lora-alpha without --lora, --decay-embeddings with
# it), a short LoRA run on the fixtures whose model llm-generate reads,
# determinism, resume giving the same bytes as a straight run, and a LoRA
# classifier (the head trains, validation reads the adapted weights) that
# llm-classify reads; a checkpoint given to --init or llm-convert stands for
# its model file (adapters merged, a fresh optimiser at step 0).
set -u
tok=$FIXTURES/tiny.model
shape="--layers 2 --dim 32 --heads 4 --kv-heads 2 --ffn-dim 64 --context 32 --threads 1 -q"
fail=0
no() { echo "FAIL: $*"; fail=1; }
usage() { # expected status 2 and a one-line message
    "$@" > out 2> err; rc=$?
    [ $rc -eq 2 ] || no "'$*' exited $rc, not 2"
    grep -q '^llm-train: ' err || no "'$*': no message: $(cat err)"
}

llm-train -m $tok $shape --steps 20 -o base.llm "$FIXTURES/tiny.txt" || no "base model"
usage llm-train -m $tok $shape --lora 4 -o x.llm "$FIXTURES/tiny.txt"
usage llm-train --init base.llm --lora 4 --freeze --task classify -o x.llm train.tsv
usage llm-train --init base.llm --lora 0 -o x.llm "$FIXTURES/tiny.txt"
usage llm-train --init base.llm --lora -3 -o x.llm "$FIXTURES/tiny.txt"
usage llm-train --init base.llm --lora 4 --lora-alpha 0 -o x.llm "$FIXTURES/tiny.txt"
# --lora-alpha scales adapters: without --lora it would be ignored.
llm-train --init base.llm --lora-alpha 16 --steps 0 -o x.llm "$FIXTURES/tiny.txt" 2> err
[ $? -eq 2 ] && grep -qxF "llm-train: --lora-alpha needs --lora: it scales the adapters' outputs" err ||
    no "--lora-alpha without --lora: $(cat err)"
# The embedding does not train under adapters: nothing to decay.
llm-train --init base.llm --lora 4 --decay-embeddings --steps 0 -o x.llm "$FIXTURES/tiny.txt" 2> err
[ $? -eq 2 ] && grep -qxF "llm-train: --decay-embeddings decays the embedding, which --lora keeps as it is" err ||
    no "--decay-embeddings with --lora: $(cat err)"
[ ! -e x.llm ] || no "a usage error wrote x.llm"

l="--init base.llm --lora 4 --context 32 --threads 1 -q --lr 1e-2 --seed 5"
llm-train $l --steps 12 -o a.llm "$FIXTURES/tiny.txt" || no "LoRA run"
llm-train $l --steps 12 -o b.llm "$FIXTURES/tiny.txt" || no "LoRA run again"
cmp -s a.llm b.llm || no "same seed gave different LoRA models"
cmp -s a.llm base.llm && no "LoRA training left the model as it was"
grep -q 'lora' a.llm && no "the model file holds adapters (it should hold merged weights)"
grep -q '"lora.rank":"4"' a.llm.ckpt || no "the checkpoint has no adapters"
[ "$(wc -c < a.llm)" -eq "$(wc -c < base.llm)" ] || no "the merged model is not the base's size"
printf 'the\n' | llm-generate -m a.llm -n 8 --seed 1 > gen.out || no "llm-generate on the LoRA model"
[ -s gen.out ] || no "llm-generate wrote nothing"

# Stop at step 5, resume to 12: the same bytes as one run (model and
# checkpoint; the checkpoint names its output, so both runs write x.llm).
mkdir straight stopped
lsub=$(echo "$l" | sed 's,base.llm,../base.llm,')
(cd straight && llm-train $lsub --steps 12 -o x.llm "$FIXTURES/tiny.txt") || no "straight run"
(cd stopped && llm-train $lsub --steps 12 --until 5 -o x.llm "$FIXTURES/tiny.txt") || no "run to step 5"
(cd stopped && llm-train --resume x.llm.ckpt -q) || no "resume"
cmp -s straight/x.llm stopped/x.llm || no "resumed LoRA model differs from the straight run"
cmp -s straight/x.llm.ckpt stopped/x.llm.ckpt ||
    no "resumed LoRA checkpoint differs from the straight run"
# The checkpoint's run has --lora 4: another rank is refused.
llm-train --resume stopped/x.llm.ckpt --lora 2 -q -o s.llm 2> err &&
    no "resuming adapters with another --lora succeeded"
grep -q -e "--lora 2 differs from the run" err || no "no message naming --lora: $(cat err)"

# A classifier: the head trains with the adapters.
awk -v n=200 -v seed=1 -f "$FIXTURES/labelled.awk" > train.tsv
awk -v n=60 -v seed=2 -f "$FIXTURES/labelled.awk" > val.tsv
llm-train --task classify --init base.llm --lora 8 --lora-alpha 16 --threads 1 -q \
    --batch 16 --lr 3e-3 --steps 30 --val val.tsv --eval-every 10 -o c.llm train.tsv \
    || no "LoRA classifier"
cut -f2 val.tsv | llm-classify -q -m c.llm > c.out || no "llm-classify on the LoRA classifier"
[ "$(wc -l < c.out)" -eq 60 ] || no "$(wc -l < c.out) labels for 60 lines"
# A checkpoint given to --init starts afresh, as its model file does (it
# kept its step count and moments, and its adapters: "the model already has
# adapters", or only they trained); llm-convert merges them (it had no GGUF
# name for them).
t="-t 1 -q --batch 4 --steps 3"
llm-train --init base.llm --lora 4 $t -o l.llm "$FIXTURES/tiny.txt" || no "a LoRA run"
llm-train --init base.llm.ckpt $t -o i1.llm "$FIXTURES/tiny.txt" &&
    llm-train --init base.llm $t -o i2.llm "$FIXTURES/tiny.txt" && cmp -s i1.llm i2.llm ||
    no "--init from a checkpoint is not --init from its model file"
llm-train --init l.llm.ckpt $t -o i3.llm "$FIXTURES/tiny.txt" 2> err &&
    llm-train --init l.llm $t -o i4.llm "$FIXTURES/tiny.txt" && cmp -s i3.llm i4.llm ||
    no "--init from a LoRA checkpoint is not --init from its model file: $(cat err)"
llm-train --init l.llm.ckpt --lora 2 $t -o i5.llm "$FIXTURES/tiny.txt" 2> err ||
    no "--init from a LoRA checkpoint with new adapters: $(cat err)"
llm-convert -q l.llm.ckpt -o l1.gguf 2> err && llm-convert -q l.llm -o l2.gguf &&
    cmp -s l1.gguf l2.gguf || no "llm-convert of a LoRA checkpoint: $(cat err)"
exit $fail
