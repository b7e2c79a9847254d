#!/bin/sh
# eval-classify.sh: llm-eval -m on a classifier. Its report is the one
# --pairs gives for llm-classify's output pasted beside the gold labels, to
# the last digit (table and JSON, any --batch and threads used by both);
# fastText lines, CRLF, blank lines and standard input change nothing;
# --labels orders the report; a multi-label model is scored on label sets;
# bad input stops with the file and line.
set -u
tok=$FIXTURES/tiny.model
shape="--layers 1 --dim 32 --heads 2 --ffn-dim 64 --context 32 --batch 16 --threads 1 -q"
fail=0
no() { echo "FAIL: $*"; fail=1; }

awk -v n=400 -v seed=1 -f "$FIXTURES/labelled.awk" > train.tsv
awk -v n=100 -v seed=2 -f "$FIXTURES/labelled.awk" > val.tsv
awk -v n=200 -v seed=9 -f "$FIXTURES/labelled.awk" > test.tsv
cut -f1 test.tsv > gold.txt
cut -f2 test.tsv > test.txt

# A few steps only: a classifier that is often wrong and unsure, so that
# the confusion matrix and the calibration bins are not trivial.
c="--task classify -m $tok $shape --lr 3e-3 --warmup 5 --seed 3"
llm-train $c --steps 4 --val val.tsv -o c.llm train.tsv || no "train"

# same OPTIONS...: llm-eval -m and llm-classify | paste | llm-eval --pairs
# give the same bytes, as JSON and as a table.
same() {
    for fmt in json text; do
        llm-eval -q -m c.llm --format $fmt "$@" test.tsv > m.out || no "llm-eval -m $*"
        llm-classify -q -m c.llm "$@" test.txt | paste gold.txt - |
            llm-eval --pairs --format $fmt > p.out || no "llm-classify | llm-eval --pairs $*"
        cmp -s m.out p.out || { no "--format $fmt $*: -m and --pairs differ"; diff m.out p.out | head -5; }
    done
}
same
same --batch 7 --threads 2
same --batch 1
llm-eval -q -m c.llm --format json test.tsv > ref.json
grep -q '"accuracy":1,' ref.json && no "the test classifier is always right: nothing is tested"
grep -q '"ece":null' ref.json && no "no calibration error"
grep -q '"confusion":\[\[' ref.json || no "no confusion matrix"

# fastText lines; CRLF and blank lines; standard input; '-'.
sed 's/^\([^	]*\)	/__label__\1 /' test.tsv > test.ft
llm-eval -q -m c.llm --format json test.ft > o.json && cmp -s ref.json o.json || no "fastText lines differ"
awk 'NR % 3 { printf "%s\r\n", $0; next } { print; print "" }' test.tsv > crlf.tsv
llm-eval -q -m c.llm --format json crlf.tsv > o.json && cmp -s ref.json o.json || no "CRLF and blank lines differ"
llm-eval -q -m c.llm --format json < test.tsv > o.json && cmp -s ref.json o.json || no "standard input differs"
llm-eval -q -m c.llm --format json - < test.tsv > o.json && cmp -s ref.json o.json || no "'-' differs"

# --labels sets the report order, as with --pairs.
llm-eval -q -m c.llm --labels clinical,payment --format json test.tsv > o.json || no "--labels"
llm-classify -q -m c.llm test.txt | paste gold.txt - |
    llm-eval --pairs --labels clinical,payment --format json > p.json
cmp -s o.json p.json || no "--labels: -m and --pairs differ"
grep -q '"labels":\[{"label":"clinical".*{"label":"payment".*{"label":"maintenance"' o.json ||
    no "--labels order not kept: $(cat o.json)"

# Truncation is reported unless --quiet.
llm-eval -m c.llm test.tsv > /dev/null 2> err || no "notes run"
grep -q '^llm-eval: [0-9]* documents* w[ae][sr]e* longer than the context of 32 tokens: truncated$' err ||
    no "no truncation note: $(cat err)"

# Multi-label: the predicted set is every label at or above its tuned
# threshold, as llm-classify prints it; the same counts as --pairs
# --multi-label on its output (which has no set probability, so no ECE).
awk -v n=400 -v seed=5 -f "$FIXTURES/labelled.awk" > train2.tsv
paste train.tsv train2.tsv | awk -F'\t' '$1 != $3 { print $1 "," $3 "\t" $2 " " $4; next } { print $1 "\t" $2 }' > multi.tsv
head -n 100 multi.tsv > mtest.tsv
cut -f1 mtest.tsv > mgold.txt
llm-train $c --multi-label --val-fraction 0.2 --steps 30 -o ml.llm multi.tsv || no "train multi-label"
llm-eval -q -m ml.llm --format json mtest.tsv > ml.json || no "llm-eval multi-label"
grep -q '"multi_label":true' ml.json || no "not scored as multi-label: $(cat ml.json)"
grep -q '"ece":null' ml.json && no "multi-label: no calibration error"
cut -f2 mtest.tsv | llm-classify -q -m ml.llm |
    awk -F'\t' '{ s = ""; for (i = 1; i < NF; i += 2) s = s (i > 1 ? "," : "") $i; print s }' |
    paste mgold.txt - |
    llm-eval --pairs --multi-label --format json > mp.json || no "--pairs --multi-label"
strip() { sed 's/"ece":[^,]*,//; s/,"calibration":.*/}/' "$1"; }
[ "$(strip ml.json)" = "$(strip mp.json)" ] || no "multi-label: -m and --pairs differ: $(strip ml.json) vs $(strip mp.json)"

# Errors name the file and the line; exit 1 (usage errors 2).
err1() { # expected message, then the command
    msg=$1; shift
    "$@" > out 2> err; st=$?
    [ $st -eq 1 ] && [ ! -s out ] && [ "$(cat err)" = "$msg" ] || no "$*: exit $st, '$(cat err)', expected '$msg'"
}
{ head -n 6 test.tsv; printf 'x\tpump seal\n'; } > unknown.tsv
err1 "llm-eval: 'unknown.tsv', line 7: label 'x' is not one of the model's labels (clinical, maintenance, payment)" \
    llm-eval -m c.llm unknown.tsv
printf '__label__payment refund\n__label__nope pump\n' > unknown.ft
err1 "llm-eval: 'unknown.ft', line 2: label 'nope' is not one of the model's labels (clinical, maintenance, payment)" \
    llm-eval -m c.llm unknown.ft
{ head -n 2 test.tsv; printf 'payment refund card\n'; } > notab.tsv
err1 "llm-eval: 'notab.tsv', line 3: no tab between label and text (expected 'label<TAB>text' or '__label__x text')" \
    llm-eval -m c.llm notab.tsv
printf 'payment\tcard \377\n' > bad.tsv
err1 "llm-eval: 'bad.tsv', line 1: invalid UTF-8 at byte 14" llm-eval -m c.llm bad.tsv
printf '__label__payment __label__clinical card fever\n' > two.ft
err1 "llm-eval: 'two.ft', line 1: 2 labels, but the model is single-label" llm-eval -m c.llm two.ft
printf '\tcard\n' > empty.tsv
err1 "llm-eval: 'empty.tsv', line 1: empty label" llm-eval -m c.llm empty.tsv
printf 'payment,\tcard fever\n' > mempty.tsv
err1 "llm-eval: 'mempty.tsv', line 1: empty label" llm-eval -m ml.llm mempty.tsv
printf '\n\n' > blank.tsv
err1 "llm-eval: no records in the input" llm-eval -m c.llm blank.tsv
llm-eval -m c.llm --task lm test.tsv > out 2> err; st=$?
[ $st -eq 2 ] && grep -q "^llm-eval: 'c.llm' is a classifier, not a language model: --task lm does not apply$" err ||
    no "--task lm on a classifier: exit $st, $(cat err)"
llm-generate -m c.llm -n 2 -p card > out 2> err; st=$?
[ $st -eq 2 ] && [ ! -s out ] && grep -q "^llm-generate: 'c.llm' is a classifier: it labels text (llm-classify), it does not continue it$" err ||
    no "llm-generate on a classifier: exit $st, $(cat err)"
llm-eval -m c.llm --labels payment,nope test.tsv > out 2> err; st=$?
[ $st -eq 2 ] && grep -q "^llm-eval: --labels: 'nope' is not one of the model's labels$" err ||
    no "--labels with an unknown label: exit $st, $(cat err)"
llm-eval -m c.llm --context 16 test.tsv > out 2> err; st=$?
[ $st -eq 2 ] && grep -q "^llm-eval: --context applies to a language model" err ||
    no "--context with a classifier: exit $st, $(cat err)"
exit $fail
