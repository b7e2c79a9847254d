#!/bin/sh
# shakespeare.sh: an end-to-end pretraining run on tiny Shakespeare
# (../shared/data/tinyshakespeare) sized to take about a minute on 2 cores:
# tokenizer, token files, 300 steps of the tiny preset with validation; the
# held-out loss must fall below 2.8 bits per byte (an untrained model starts
# near 5.5; step 100 is near 2.9, step 200 near 2.6). A step count, not a
# time limit, bounds it, so that a slow or busy machine takes longer but
# checks the same thing. Skipped without the data or under sanitizers.
set -u
d=$DATA/tinyshakespeare
[ -f "$d/train.txt" ] && [ -f "$d/valid.txt" ] || { echo "no $d"; exit 77; }
[ -z "${SANITIZED:-}" ] || { echo "skipped under sanitizers (too slow there)"; exit 77; }
llm-tokenize train --vocab-size 512 --seed 1 -o ts.model "$d/train.txt" || exit 1
llm-tokenize encode -m ts.model --bos --eos --output-format bin -o train.tok "$d/train.txt" || exit 1
llm-tokenize encode -m ts.model --bos --eos --output-format bin -o valid.tok "$d/valid.txt" || exit 1
llm-train -m ts.model -o ts.llm --preset tiny --context 128 --batch 16 --lr 2e-3 \
    --warmup 20 --steps 300 --eval-every 100 --eval-tokens 32768 \
    --val valid.tok --log log.jsonl --quiet train.tok || exit 1
bpb=$(grep val_bpb log.jsonl | tail -n 1 | sed 's/.*"val_bpb":\([0-9.]*\).*/\1/')
steps=$(grep -c '"loss"' log.jsonl)
echo "after $steps steps: validation $bpb bits per byte"
awk -v b="$bpb" 'BEGIN { exit !(b > 0 && b < 2.8) }' || { echo "FAIL: $bpb >= 2.8 bits per byte"; exit 1; }
