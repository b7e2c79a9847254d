#!/bin/sh
# parallel.sh: bulk labelling split with GNU parallel reassembles exactly:
# `parallel --pipe --keep-order -N 100 llm-classify -m M` over a few hundred
# lines gives the same bytes as one llm-classify run (one output record per
# input record, in order), as does a split into files labelled one by one;
# OMP_WAIT_POLICY=passive changes no byte. Skipped without GNU parallel
# (Debian: parallel).
set -u
if ! parallel --version 2>/dev/null | grep -q "GNU parallel"; then
    echo "GNU parallel not found (Debian: parallel)"; exit 77
fi
tok=$FIXTURES/tiny.model
fail=0
no() { echo "FAIL: $*"; fail=1; }

awk -v n=200 -v seed=1 -f "$FIXTURES/labelled.awk" > train.tsv
awk -v n=350 -v seed=4 -f "$FIXTURES/labelled.awk" | cut -f2 > in.txt
llm-train --task classify -m "$tok" --layers 1 --dim 32 --heads 2 --ffn-dim 64 \
    --context 32 --batch 16 --threads 1 -q --lr 3e-3 --steps 10 -o m.llm train.tsv ||
    no "train a classifier"

llm-classify -q -t 1 -m m.llm in.txt > one.out || no "one run"
[ "$(wc -l < one.out)" -eq 350 ] || no "$(wc -l < one.out) records for 350 lines"
parallel --will-cite --pipe --keep-order -N 100 -j 4 llm-classify -q -t 1 -m m.llm \
    < in.txt > par.out || no "parallel run"
cmp -s one.out par.out || no "parallel --pipe -k -N 100 differs from one run"
parallel --will-cite --pipe --keep-order -N 100 -j 4 llm-classify -q -t 1 -m m.llm --format jsonl \
    < in.txt > par.jsonl && llm-classify -q -t 1 -m m.llm --format jsonl in.txt > one.jsonl &&
    cmp -s one.jsonl par.jsonl || no "JSON Lines through parallel differ"

# A job array's way: split, label each piece, concatenate in order.
split -l 120 -d in.txt piece.
for p in piece.*; do llm-classify -q -t 1 -m m.llm "$p" > "$p.out" || no "label $p"; done
cat piece.*.out > split.out
cmp -s one.out split.out || no "split + cat differs from one run"

# Jobs side by side may want OpenMP's passive waiting (README, man llm):
# it changes the time, never the bytes, explanations included.
llm-classify -q -t 2 -m m.llm --explain --format jsonl in.txt > spin.jsonl &&
    OMP_WAIT_POLICY=passive llm-classify -q -t 2 -m m.llm --explain --format jsonl in.txt \
        > passive.jsonl && cmp -s spin.jsonl passive.jsonl ||
    no "OMP_WAIT_POLICY=passive changed the output"
exit $fail
