#!/bin/sh
# classify.sh: llm-train --task classify and llm-classify end to end on the
# synthetic labelled set of tests/fixtures/labelled.awk: determinism,
# resume giving the same bytes as a straight run, --freeze leaving the
# backbone's bytes alone, --balance, multi-label training with tuned
# thresholds, batching not changing the output, usage errors for the
# options that a classifier alone reads given where they would be ignored,
# and streaming (a record's output arrives before the next record is
# written).
set -u
tok=$FIXTURES/tiny.model
shape="--layers 1 --dim 32 --heads 2 --ffn-dim 64 --context 32 --batch 16 --threads 1 -q"
fail=0
no() { echo "FAIL: $*"; fail=1; }

awk -v n=400 -v seed=1 -f "$FIXTURES/labelled.awk" > train.tsv
awk -v n=100 -v seed=2 -f "$FIXTURES/labelled.awk" > val.tsv
awk -v n=200 -v seed=9 -f "$FIXTURES/labelled.awk" > test.tsv
cut -f2 test.tsv > test.txt

c="--task classify -m $tok $shape --lr 3e-3 --warmup 5"
llm-train $c --steps 40 --seed 3 --val val.tsv --eval-every 10 -o a.llm train.tsv || no "train"
llm-train $c --steps 40 --seed 3 --val val.tsv --eval-every 10 -o b.llm train.tsv || no "train again"
cmp -s a.llm b.llm || no "same seed gave different classifier bytes"
llm-classify -q -m a.llm -t 1 test.txt > a.out || no "classify"
[ "$(wc -l < a.out)" -eq 200 ] || no "$(wc -l < a.out) records for 200 lines"
acc=$(cut -f1 a.out | paste - test.tsv | awk -F'\t' '{ n++; c += $1 == $2 } END { print c / n }')
awk -v a="$acc" 'BEGIN { exit !(a >= 0.95) }' || no "accuracy $acc on the synthetic test set"
grep -q '"temperature":"1"' a.llm && no "no temperature was fitted"

# Batching and threads do not change labels; probabilities agree to 1e-4.
llm-classify -q -m a.llm -t 2 --batch 1 test.txt > b1.out || no "batch 1"
llm-classify -q -m a.llm -t 2 --batch 7 test.txt > b7.out || no "batch 7"
paste a.out b1.out b7.out | awk -F'\t' '$1 != $3 || $1 != $5 || ($2 - $4)^2 > 1e-8 || ($2 - $6)^2 > 1e-8 { bad++ } END { exit bad > 0 }' ||
    no "batching changed the output"

# 20 steps, then 20 more from the checkpoint: the same bytes as 40 straight.
llm-train $c --steps 40 --seed 3 -o s.llm train.tsv || no "straight"
llm-train $c --steps 40 --seed 3 --until 20 -o r.llm train.tsv || no "until 20"
llm-train $c --steps 40 --seed 3 --resume r.llm.ckpt -o r.llm train.tsv || no "resume"
cmp -s s.llm r.llm || no "20 + resume + 20 steps differ from 40 straight"

# --freeze from a language model: every backbone tensor keeps its bytes.
llm-train -m "$tok" $shape --steps 10 -o base.llm "$FIXTURES/tiny.txt" || no "pretrain"
llm-train $c --init base.llm --freeze --steps 20 -o f.llm train.tsv || no "freeze"
tensor() { # file name: the tensor's bytes on stdout
    hl=$(od -An -t u8 -N 8 "$1" | tr -d ' ')
    o=$(head -c $((8 + hl)) "$1" | tail -c "$hl" | grep -o "\"$2\":{[^}]*}" |
        sed 's/.*data_offsets":\[\([0-9]*\),\([0-9]*\)\].*/\1 \2/')
    set -- "$1" $o
    tail -c +$((8 + hl + $2 + 1)) "$1" | head -c $(($3 - $2))
}
for t in tok_embeddings.weight layers.0.attention.wq.weight layers.0.feed_forward.w2.weight norm.weight; do
    tensor base.llm $t > t1; tensor f.llm $t > t2
    [ -s t1 ] && cmp -s t1 t2 || no "--freeze changed $t"
done
tensor f.llm head.weight > h1
[ -s h1 ] || no "no head.weight in the frozen classifier"
llm-train $c --init base.llm --steps 20 -o u.llm train.tsv || no "unfrozen"
tensor u.llm tok_embeddings.weight > t2
tensor base.llm tok_embeddings.weight > t1
cmp -s t1 t2 && no "without --freeze the backbone did not train"

# --balance on a skewed set still learns the rare label.
{ grep '^maintenance' train.tsv; grep '^payment' train.tsv; grep '^clinical' train.tsv | head -15; } > skew.tsv
llm-train $c --balance --steps 60 --seed 3 -o bal.llm skew.tsv || no "balance"
grep '^clinical' test.tsv | cut -f2 | llm-classify -q -m bal.llm -t 1 | cut -f1 | sort | uniq -c | sort -rn | head -1 | grep -q clinical ||
    no "--balance: clinical lines are not mostly labelled clinical"

# Multi-label: pairs of lines joined, with both labels; thresholds tuned.
awk -v n=400 -v seed=5 -f "$FIXTURES/labelled.awk" > train2.tsv
paste train.tsv train2.tsv | awk -F'\t' '$1 != $3 { print $1 "," $3 "\t" $2 " " $4; next } { print $1 "\t" $2 }' > multi.tsv
llm-train $c --multi-label --val-fraction 0.2 --steps 80 --eval-every 20 -o m.llm multi.tsv || no "multi-label"
grep -q '"multi_label":"1"' m.llm || no "multi_label not stored"
grep -q '"thresholds":"\[0.5,0.5,0.5\]"' m.llm && no "thresholds were not tuned"
printf 'pump seal leak valve refund bank card invoice\npatient fever\n' | llm-classify -q -m m.llm -t 1 > m.out || no "classify multi"
head -1 m.out | grep -q maintenance && head -1 m.out | grep -q payment || no "mixed line: $(head -1 m.out)"
sed -n 2p m.out | cut -f1 | grep -qx clinical || no "clinical line: $(sed -n 2p m.out)"

# Combinations that would be ignored are usage errors (exit 2, one line
# naming both options), before any file is read or written.
usage() { # expected-message llm-train-arguments...
    msg=$1; shift
    llm-train "$@" > out.txt 2> err.txt; rc=$?
    [ $rc -eq 2 ] && grep -qxF -e "llm-train: $msg" err.txt ||
        no "llm-train $*: exit $rc, not 2 with '$msg': $(cat err.txt)"
    [ -e x.llm ] && no "llm-train $*: wrote x.llm"
    rm -f x.llm x.llm.ckpt
}
usage "--pooling is for --task classify (--task lm has no head to pool for)" \
    -m "$tok" $shape --steps 0 --pooling mean -o x.llm "$FIXTURES/tiny.txt"
usage "--pooling is for --task classify (--task pairs has no head to pool for)" \
    --task pairs -m "$tok" --pooling last -o x.llm pairs.tsv
usage "--freeze needs --init: a head on frozen random weights learns little" \
    $c --freeze --steps 0 -o x.llm train.tsv
usage "--decay-embeddings decays the embedding, which --freeze keeps as it is" \
    $c --init base.llm --freeze --decay-embeddings --steps 0 -o x.llm train.tsv
# Label smoothing acts on the next-token loss only: with --lm-weight.
usage "--label-smoothing smooths the next-token loss, which --task classify trains only with --lm-weight" \
    $c --label-smoothing 0.1 --steps 0 -o x.llm train.tsv
llm-train $c --label-smoothing 0.1 --lm-weight 0.5 --steps 2 -o ls.llm train.tsv ||
    no "--label-smoothing with --lm-weight"
# --eval-tokens bounds a language model's validation; a classifier's
# scores every document.
usage "--eval-tokens is for --task lm (--task classify scores every held-out document)" \
    $c --val val.tsv --eval-tokens 100 --steps 0 -o x.llm train.tsv

# Streaming: the answer to a record comes before the next one is written.
mkfifo in out
llm-classify -q -m a.llm -t 1 < in > out &
pid=$!
exec 3> in 4< out
echo "pump seal leak" >&3
r1=$(timeout 20 sh -c 'read -r l; echo "$l"' <&4)
echo "bank card refund" >&3
r2=$(timeout 20 sh -c 'read -r l; echo "$l"' <&4)
exec 3>&- 4<&-
wait $pid || no "streaming run failed"
case $r1 in maintenance*) ;; *) no "streaming: first answer '$r1'";; esac
case $r2 in payment*) ;; *) no "streaming: second answer '$r2'";; esac
exit $fail
