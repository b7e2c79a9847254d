#!/bin/sh
# classify-agnews.sh: the classification workflow end to end on AG News
# (../shared/data/ag_news: 6,042 training and 1,558 test lines, 4 topics),
# sized to take about a minute and a half on 2 cores: a 2,000-piece
# tokenizer and a 2-layer, 96-wide language model pretrained for 150 steps on
# the training texts, fine-tuned for one epoch as a classifier (a tenth held
# out for model choice and calibration), then llm-classify on the test
# texts. Test accuracy must reach 0.70 (chance is 0.25; measured 0.79; the
# longer recipe of tests/bench/classify.sh reaches 0.86). Steps, not a time
# limit, bound it, so a busy machine takes longer but checks the same
# thing. Skipped without the data or under sanitizers.
set -u
d=$DATA/ag_news
[ -f "$d/train.tsv" ] && [ -f "$d/test.tsv" ] || { echo "no $d"; exit 77; }
[ -z "${SANITIZED:-}" ] || { echo "skipped under sanitizers (too slow there)"; exit 77; }
t0=$(date +%s)
cut -f2 "$d/train.tsv" > train.txt
llm-tokenize train --vocab-size 2000 --seed 1 -q -o ag.model train.txt || exit 1
llm-train -m ag.model --layers 2 --dim 96 --heads 4 --ffn-dim 256 --context 96 \
    --batch 16 --lr 2e-3 --warmup 20 --steps 150 --threads 2 -q -o base.llm train.txt || exit 1
llm-train --task classify --init base.llm --val-fraction 0.1 --epochs 1 --batch 32 \
    --lr 1e-3 --warmup 10 --eval-every 40 --threads 2 -q -o ag.llm "$d/train.tsv" || exit 1
cut -f2 "$d/test.tsv" | llm-classify -m ag.llm --threads 2 -q > pred.tsv || exit 1
[ "$(wc -l < pred.tsv)" -eq "$(wc -l < "$d/test.tsv")" ] || { echo "FAIL: record count"; exit 1; }
acc=$(cut -f1 pred.tsv | paste - "$d/test.tsv" | awk -F'\t' '{ n++; c += $1 == $2 } END { printf "%.4f", c / n }')
echo "test accuracy $acc in $(($(date +%s) - t0)) s"
awk -v a="$acc" 'BEGIN { exit !(a >= 0.70) }' || { echo "FAIL: accuracy $acc < 0.70"; exit 1; }
