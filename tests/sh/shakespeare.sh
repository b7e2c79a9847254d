#!/bin/sh
# shakespeare.sh: a 60-second end-to-end pretraining run on tiny Shakespeare
# (../shared/data/tinyshakespeare): tokenizer, token files, training with
# validation; the held-out loss must fall below 3.0 bits per byte (a model
# that learnt nothing sits near 5.6 at the start; unigram statistics alone
# give about 3.5). Skipped without the data or under sanitizers, which run
# the same code several times slower.
set -u
d=$DATA/tinyshakespeare
[ -f "$d/train.txt" ] && [ -f "$d/valid.txt" ] || { echo "no $d"; exit 77; }
[ -z "${SANITIZED:-}" ] || { echo "skipped under sanitizers (timed run)"; exit 77; }
llm-tokenize train --vocab-size 512 --seed 1 -o ts.model "$d/train.txt" || exit 1
llm-tokenize encode -m ts.model --bos --eos --output-format bin -o train.tok "$d/train.txt" || exit 1
llm-tokenize encode -m ts.model --bos --eos --output-format bin -o valid.tok "$d/valid.txt" || exit 1
llm-train -m ts.model -o ts.llm --preset tiny --context 128 --batch 16 --lr 2e-3 \
    --warmup 20 --steps 600 --time-limit 60 --eval-every 100 --eval-tokens 32768 \
    --val valid.tok --log log.jsonl --quiet train.tok || exit 1
bpb=$(grep val_bpb log.jsonl | tail -n 1 | sed 's/.*"val_bpb":\([0-9.]*\).*/\1/')
steps=$(grep -c '"loss"' log.jsonl)
echo "after $steps steps: validation $bpb bits per byte"
awk -v b="$bpb" 'BEGIN { exit !(b > 0 && b < 3.0) }' || { echo "FAIL: $bpb >= 3.0 bits per byte"; exit 1; }
