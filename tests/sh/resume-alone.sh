#!/bin/sh
# resume-alone.sh: a checkpoint holds its run. `llm-train --resume CKPT`
# with no other option continues it (here from step 10 of 20) to a model
# byte-identical to the uninterrupted run's; an option that differs from
# the checkpoint's is refused, naming it, unless it is one of those that may
# change (--threads, -o, ...) or --override is given; a data file changed or
# truncated since the checkpoint is refused; other data files than the
# run's are refused.
set -u
cp "$FIXTURES/tiny.txt" d.txt
n=$(wc -c < d.txt)
tok=$FIXTURES/tiny.model
run="-m $tok --preset tiny --context 32 --batch 4 --steps 20 --save-every 5 --lr 2e-3 --seed 3 -q -t 1"
fail=0
llm-train $run -o a.llm d.txt || { echo "FAIL: the uninterrupted run"; exit 1; }
llm-train $run --until 10 -o b.llm d.txt || { echo "FAIL: the run to step 10"; exit 1; }
cp b.llm.ckpt step10.ckpt
llm-train --resume b.llm.ckpt -q 2> err.txt || { echo "FAIL: resume alone"; cat err.txt; fail=1; }
cmp a.llm b.llm && echo "resumed alone: the same bytes as the uninterrupted run" ||
    { echo "FAIL: the resumed model differs from the uninterrupted one"; fail=1; }
refused() { # expected-message args...
    msg=$1; shift
    if llm-train "$@" 2> err.txt; then echo "FAIL: accepted: $*"; fail=1
    elif ! grep -qF -e "$msg" err.txt; then echo "FAIL: $*: wrong message:"; cat err.txt; fail=1
    else echo "refused as expected: $*: $(cat err.txt)"; fi
}
refused "--lr 0.001 differs from the run in 'step10.ckpt' (there: 0.002)" --resume step10.ckpt --lr 1e-3 -o c.llm
refused "--untied given differs from the run in 'step10.ckpt' (not set there)" --resume step10.ckpt --untied -o c.llm
refused "the data files differ from those of the run" --resume step10.ckpt -o c.llm "$FIXTURES/tiny.txt"
printf 'x' >> d.txt
refused "'d.txt' changed since the checkpoint 'step10.ckpt' was written ($((n + 1)) bytes, were $n)" --resume step10.ckpt -o c.llm
head -c $((n - 100)) "$FIXTURES/tiny.txt" > d.txt
refused "'d.txt' changed since the checkpoint 'step10.ckpt' was written ($((n - 100)) bytes, were $n)" --resume step10.ckpt -o c.llm
# The same size, other bytes.
tr 'e' 'E' < "$FIXTURES/tiny.txt" > d.txt
refused "same size, other bytes" --resume step10.ckpt -o c.llm
# --override goes on with what is given.
llm-train --resume step10.ckpt --override --steps 12 -o c.llm -q 2> err.txt ||
    { echo "FAIL: --override"; cat err.txt; fail=1; }

# Not a checkpoint: a final model, a pretrained one, a checkpoint whose data
# position is not a count (strtoull read "-1" as 2^64 - 1); each named.
llm-train --resume a.llm -t 1 2>err
[ $? -eq 1 ] && grep -q "'a.llm': not a training checkpoint (no data position; is it a final model file?)" err ||
    { echo "FAIL: --resume a final model: $(cat err)"; fail=1; }
llm-train --resume "$FIXTURES/tiny-gpt2.gguf" -t 1 2>err
[ $? -eq 1 ] && grep -q "is a pretrained model, not a training checkpoint (--init starts from it)" err ||
    { echo "FAIL: --resume a GGUF model: $(cat err)"; fail=1; }
llm-train -m "$tok" --layers 1 --dim 32 --heads 2 --context 16 --batch 4 --steps 3 -t 1 -q \
    -o p.llm d.txt || { echo "FAIL: a run for its checkpoint"; fail=1; }
grep -aq '"train.index":"12"' p.llm.ckpt || { echo "FAIL: the checkpoint is not at index 12"; fail=1; }
sed 's/"train.index":"12"/"train.index":"-1"/' p.llm.ckpt > neg.ckpt
llm-train --resume neg.ckpt -o n.llm -t 1 2>err
[ $? -eq 1 ] && grep -q "'neg.ckpt': bad data position (epoch '0', index '-1')" err ||
    { echo "FAIL: a data position of -1: $(cat err)"; fail=1; }
exit $fail
