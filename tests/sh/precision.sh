#!/bin/sh
# precision.sh: the inference precisions of reduced-precision copies end
# to end, --precision q8 (int8 weights with a scale and offset a block,
# int16 inputs) and bf16 (bfloat16 weights and inputs, fp32 sums). For
# each, on the trained fixture gen.llm: perplexity within 1% of fp32
# (measured 0.06% for q8 and 0.01% for bf16: int8 steps of at most 1/254
# of each block's spread, or bf16's 2^-9 relative rounding, perturb every product by well under 1%,
# and a trained model's loss moves by a fraction of that; a broken product,
# wrong scales, blocks or pairs, moves it by tens of percent), and not
# fp32's very bytes; generation deterministic, the same with 1 or 2
# threads and with prompts decoded together (--batch) or alone. A
# classifier trained on the synthetic labelled set: the same labels as in
# fp32 for at least 97% of the test lines, accuracy still >= 0.95, and the
# same output for any batch. Bad uses are refused.
set -u
gen=$FIXTURES/gen.llm
txt=$FIXTURES/tiny.txt
fail=0
no() { echo "FAIL: $*"; fail=1; }
field() { sed -n "s/.*\"$1\":\([^,}]*\).*/\1/p"; }

llm-eval -q -m "$gen" --format json "$txt" > f32.json || no "llm-eval f32"
# A classifier, and its fp32 labels.
tok=$FIXTURES/tiny.model
awk -v n=400 -v seed=1 -f "$FIXTURES/labelled.awk" > train.tsv
awk -v n=200 -v seed=9 -f "$FIXTURES/labelled.awk" > test.tsv
cut -f2 test.tsv > test.txt
llm-train --task classify -m "$tok" --layers 1 --dim 64 --heads 2 --ffn-dim 128 \
    --context 32 --batch 16 --threads 1 -q --lr 3e-3 --warmup 5 --steps 40 --seed 3 \
    -o c.llm train.tsv || no "train a classifier"
llm-classify -q -m c.llm -t 1 test.txt > f.out || no "classify f32"

for p in q8 bf16; do
    # 1. Perplexity.
    llm-eval -q -m "$gen" --precision $p --format json "$txt" > $p.json || no "llm-eval $p"
    pf=$(field perplexity < f32.json)
    pp=$(field perplexity < $p.json)
    echo "perplexity f32 $pf, $p $pp"
    awk -v a="$pp" -v b="$pf" 'BEGIN { r = a / b - 1; if (r < 0) r = -r; exit !(r <= 0.01) }' ||
        no "$p perplexity $pp is not within 1% of fp32's $pf"
    cmp -s f32.json $p.json && no "$p gave fp32's very bytes: were its products used?"

    # 2. Generation: deterministic, any threads, any batch.
    head -n 6 "$txt" | cut -c1-24 > prompts.txt
    g="-m $gen -n 24 --temperature 0.8 --seed 7"
    llm-generate $g --precision $p -t 1 prompts.txt > a.out || no "generate $p"
    llm-generate $g --precision $p -t 1 prompts.txt > b.out || no "generate $p again"
    llm-generate $g --precision $p -t 2 --batch 4 prompts.txt > c.out || no "generate $p batch 4"
    [ "$(wc -l < a.out)" -eq 6 ] || no "$(wc -l < a.out) lines of output for 6 prompts"
    cmp -s a.out b.out || no "$p generation is not deterministic"
    cmp -s a.out c.out || no "$p generation changed with 2 threads and --batch 4"

    # 3. The classifier.
    llm-classify -q -m c.llm -t 1 --precision $p test.txt > q.out || no "classify $p"
    llm-classify -q -m c.llm -t 2 --batch 7 --precision $p test.txt > q7.out || no "classify $p batch 7"
    cmp -s q.out q7.out || no "$p classification changed with --batch 7 and 2 threads"
    same=$(paste f.out q.out | awk -F'\t' '{ n++; s += $1 == $3 } END { print s / n }')
    acc=$(cut -f1 q.out | paste - test.tsv | awk -F'\t' '{ n++; c += $1 == $2 } END { print c / n }')
    echo "classifier: $p agrees with f32 on $same of the labels; $p accuracy $acc"
    awk -v s="$same" -v a="$acc" 'BEGIN { exit !(s >= 0.97 && a >= 0.95) }' ||
        no "$p labels agree with fp32 on $same, accuracy $acc"
    llm-eval -q -m c.llm --precision $p --format json test.tsv > ce.json || no "llm-eval $p classifier"
    grep -q '"accuracy"' ce.json || no "no accuracy from llm-eval --precision $p on a classifier"
done

# 4. Refusals.
for p in q8 bf16; do
    llm-classify -q -m c.llm --precision $p --explain test.txt > /dev/null 2> e.err &&
        no "--explain (integrated gradients) accepted with $p"
    grep -q "occlusion" e.err || no "the $p --explain refusal names no way out: $(cat e.err)"
done
llm-classify -q -m c.llm --precision q8 --explain --explain-method occlusion test.txt \
    > /dev/null || no "--explain-method occlusion refused with q8"
llm-eval --pairs --precision q8 "$FIXTURES/text_pairs_en.tsv" > /dev/null 2>&1 &&
    no "--precision without --model accepted"
llm-generate -m "$gen" --precision q4 -p x > /dev/null 2>&1 && no "--precision q4 accepted"
exit $fail
