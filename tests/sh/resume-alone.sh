#!/bin/sh
# resume-alone.sh: a checkpoint holds its run. `llm-train --resume CKPT`
# with no other option continues it (here from step 10 of 20) to a model
# byte-identical to the uninterrupted run's; an option that differs from
# the checkpoint's is refused, naming it, unless it is one of those that may
# change (--threads, -o, ...) or --override is given; a data file changed or
# truncated since the checkpoint is refused; other data files than the
# run's are refused. Validation's best model and --patience's count
# survive a resume, unless --override changes what validation measures.
# An option the run's combination ignores (--steps on a run of --epochs,
# --pooling of a language model recorded before it was refused): restated,
# accepted; changed with --override, refused.
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
# An option the run left at its default: restated, accepted; changed, refused.
refused "--schedule linear differs from the run in 'step10.ckpt' (there: the default cosine)" \
    --resume step10.ckpt --schedule linear -o c.llm
cp step10.ckpt restated.ckpt
llm-train --resume restated.ckpt --schedule cosine --clip 1 -q -o r.llm 2> err.txt &&
    cmp -s r.llm a.llm || { echo "FAIL: options restated at their defaults: $(cat err.txt)"; fail=1; }
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

# Validation's state goes with the checkpoint: the best model is kept (a run
# cut after its best evaluation and resumed saved its next one instead),
# --patience counts on, and resuming a finished run leaves its best model.
cp "$FIXTURES/tiny.txt" e.txt   # (d.txt was changed above)
v="-m $tok --layers 1 --dim 32 --heads 2 --context 32 -b 4 -t 1 --steps 40 --lr 0.01 --warmup 0 --val-fraction 0.2 --eval-every 4"
llm-train $v -q -o v1.llm e.txt || { echo "FAIL: a validated run"; fail=1; }
llm-train $v -q -o v2.llm --until 36 e.txt && llm-train --resume v2.llm.ckpt -q ||
    { echo "FAIL: a validated run cut at 36"; fail=1; }
cmp -s v1.llm v2.llm || { echo "FAIL: cut after its best evaluation and resumed: another model"; fail=1; }
cp v1.llm v1.keep
llm-train --resume v1.llm.ckpt -q || { echo "FAIL: resuming a finished run"; fail=1; }
cmp -s v1.llm v1.keep || { echo "FAIL: resuming a finished run replaced its best model"; fail=1; }
llm-train $v --patience 1 -o w1.llm e.txt 2>&1 | grep -q "stopped early" ||
    { echo "FAIL: --patience 1 did not stop the run early"; fail=1; }
at=$(llm-train --resume w1.llm.ckpt 2>&1 | sed -n 's/.*nothing to do at step \([0-9]*\);.*/\1/p')
[ -n "$at" ] || { echo "FAIL: resuming a run stopped early trained on"; fail=1; at=20; }
llm-train $v -q --patience 1 -o w2.llm --until $((at - 2)) e.txt &&
    llm-train --resume w2.llm.ckpt 2>&1 | grep -q "stopped early: no improvement in validation loss at step $at;" ||
    { echo "FAIL: --patience did not count across --resume (not stopped at step $at)"; fail=1; }
cmp -s w1.llm w2.llm || { echo "FAIL: --patience: cut and resumed, another model"; fail=1; }
# --override of what validation measures (here another --val, of noise whose
# loss no model of the run comes near) starts the best score anew: the next
# validation's model replaces the best one (it was kept for ever).
awk 'BEGIN { srand(1); for (i = 0; i < 100; i++) { s = "";
    for (j = 0; j < 40; j++) s = s sprintf("%c", 33 + int(rand() * 90)); print s } }' > noise.txt
llm-train $v -q -o v3.llm --until 36 e.txt && cp v3.llm v3.keep &&
    llm-train --resume v3.llm.ckpt --override --val noise.txt --val-fraction 0 2> err.txt ||
    { echo "FAIL: --override --val: $(cat err.txt)"; fail=1; }
grep -q "override changed what validation measures (--val): the run's best score starts anew" err.txt ||
    { echo "FAIL: --override --val: no warning: $(cat err.txt)"; fail=1; }
cmp -s v3.llm v3.keep && { echo "FAIL: --override --val: the old best model was kept"; fail=1; }
# A run of --epochs: --steps restated at its default (the run did not
# record it) is accepted; a --steps changed with --override would not
# count, and is refused naming both (unless --epochs 0 comes with it).
ep="-m $tok --layers 1 --dim 32 --heads 2 --context 32 -b 4 -t 1 --epochs 2 --seed 3 -q"
llm-train $ep --until 3 -o ep.llm e.txt || { echo "FAIL: a run of --epochs to step 3"; fail=1; }
cp ep.llm.ckpt ep3.ckpt
llm-train --resume ep3.ckpt --override --steps 5 -o c.llm 2> err.txt
[ $? -eq 2 ] && grep -qxF "llm-train: --steps 5 would not count: the run in 'ep3.ckpt' trains --epochs 2 (give --epochs 0 to count steps)" err.txt ||
    { echo "FAIL: --override --steps on a run of --epochs: $(cat err.txt)"; fail=1; }
llm-train --resume ep3.ckpt --override --epochs 0 --steps 5 -q -o c.llm 2> err.txt ||
    { echo "FAIL: --override --epochs 0 --steps 5: $(cat err.txt)"; fail=1; }
llm-train --resume ep.llm.ckpt --epochs 2 --steps 1000 -q 2> err.txt ||
    { echo "FAIL: a run of --epochs resumed with both restated: $(cat err.txt)"; fail=1; }
# A run started before an option it ignored was refused (here a language
# model's checkpoint that records --pooling mean, made by renaming its
# "run.--dropout":"0.25"): it resumes alone and with the option restated;
# changed, with --override, the option is refused as on a new run.
llm-train -m "$tok" --layers 1 --dim 32 --heads 2 --context 32 -b 4 -t 1 --steps 6 --until 3 \
    --dropout 0.25 --seed 3 -q -o lg.llm e.txt || { echo "FAIL: a run for an old checkpoint"; fail=1; }
sed 's/"run.--dropout":"0.25"/"run.--pooling":"mean"/' lg.llm.ckpt > old.ckpt
grep -aq '"run.--pooling":"mean"' old.ckpt || { echo "FAIL: no --pooling in old.ckpt"; fail=1; }
cp old.ckpt old1.ckpt
llm-train --resume old1.ckpt -q -o lg1.llm 2> err.txt ||
    { echo "FAIL: an old checkpoint with --pooling, resumed alone: $(cat err.txt)"; fail=1; }
cp old.ckpt old2.ckpt
llm-train --resume old2.ckpt --pooling mean -q -o lg2.llm 2> err.txt ||
    { echo "FAIL: an old checkpoint with --pooling, restated: $(cat err.txt)"; fail=1; }
llm-train --resume old.ckpt --override --pooling last -q -o lg3.llm 2> err.txt
[ $? -eq 2 ] && grep -qxF "llm-train: --pooling is for --task classify (--task lm has no head to pool for)" err.txt ||
    { echo "FAIL: --pooling changed with --override on a language model: $(cat err.txt)"; fail=1; }
# Runs llm-train ARGS with --progress until it says that its schedule is
# fitted to --time-limit, stops it, and checks that the checkpoint CKPT
# holds the fitted steps: fit_and_stop CKPT WHAT ARGS...
fit_and_stop() {
    ck=$1 what=$2
    shift 2
    : > fit.err   # (emptied here: the job's own redirection may come after the first grep)
    llm-train "$@" --progress 2> fit.err &
    pid=$!
    i=0
    while ! grep -q "fitted to --time-limit" fit.err && [ $i -lt 100 ]; do sleep 0.2; i=$((i + 1)); done
    kill -TERM $pid
    wait $pid
    fitted=$(sed -n 's/.*fitted to --time-limit: \([0-9]*\) steps.*/\1/p' fit.err | tail -n 1)
    llm-train --resume "$ck" --steps 1000 -q 2> err.txt
    [ $? -eq 1 ] && [ -n "$fitted" ] && grep -qF "(there: $fitted)" err.txt ||
        { echo "FAIL: $what ($fitted): $(cat fit.err err.txt)"; fail=1; }
}
# A run whose length --time-limit fitted records it: interrupted, it
# resumes to the fitted step count (the checkpoint kept the default 1000,
# so --resume ended the run there, or at once past it).
fit_and_stop tl.llm.ckpt "--time-limit's fitted steps not the run's" \
    -m $tok --preset tiny --context 32 --batch 4 --lr 2e-3 --seed 3 -t 1 --time-limit 60 \
    -o tl.llm e.txt
# A run to be fitted to --time-limit that stops before it is (here paused by
# --until) is fitted when resumed with --time-limit, and says so when
# resumed without (it went on to the default 1000 steps without a word).
llm-train -m $tok --preset tiny --context 32 --batch 4 --lr 2e-3 --seed 3 -t 1 -q \
    --time-limit 60 --until 3 -o tp.llm e.txt 2> err.txt ||
    { echo "FAIL: a run to be fitted, paused: $(cat err.txt)"; fail=1; }
cp tp.llm.ckpt tp2.ckpt
llm-train --resume tp2.ckpt --until 5 -o tp2.llm 2> err.txt &&
    grep -qF "llm-train: the run in 'tp2.ckpt' stopped before its schedule was fitted to --time-limit: the schedule runs to 1000 steps" err.txt ||
    { echo "FAIL: no word that the resumed run is not fitted: $(cat err.txt)"; fail=1; }
fit_and_stop tp.llm.ckpt "a paused run's schedule not fitted on --resume" \
    --resume tp.llm.ckpt --time-limit 60
# One that reached the default steps unfitted (--until past them) is over:
# its checkpoint no longer asks for a fit.
llm-train -m $tok --layers 1 --dim 32 --heads 2 --context 32 -b 4 -t 1 -q --time-limit 60 \
    --until 2000 -o po.llm e.txt 2> err.txt && ! grep -aq '"run.fit":"pending"' po.llm.ckpt ||
    { echo "FAIL: a run past its default steps still to be fitted: $(cat err.txt)"; fail=1; }
# A run in slices of --time-limit (here one step each: 0.0001 s) gives the
# straight run's model: the validation at each limit, off the --eval-every
# schedule, is reported but counts neither for the best model nor for
# --patience (it did: the sliced run stopped early, elsewhere).
sv="-m $tok --layers 1 --dim 32 --heads 2 --context 32 -b 4 -t 1 --steps 24 --lr 0.01 --warmup 0 --val-fraction 0.2 --eval-every 4 --patience 2 -q"
llm-train $sv -o sl0.llm e.txt 2> /dev/null || { echo "FAIL: the straight run"; fail=1; }
llm-train $sv --time-limit 0.0001 -o sl1.llm e.txt 2> /dev/null
i=0
while [ $i -lt 40 ] && ! llm-train --resume sl1.llm.ckpt --time-limit 0.0001 2>&1 | grep -q "nothing to do"; do
    i=$((i + 1))
done
cmp -s sl0.llm sl1.llm || { echo "FAIL: a run in slices of --time-limit ($i) is not the straight run's"; fail=1; }
# A run on standard input resumes on it with a warning that its data
# cannot be checked (it resumed on other bytes without a word).
llm-train $run --until 5 -o in.llm < d.txt 2> /dev/null &&
    llm-train --resume in.llm.ckpt --until 8 < d.txt 2> err.txt &&
    grep -q "read standard input: whether it gives the same data cannot be checked" err.txt ||
    { echo "FAIL: a run on standard input resumed: $(cat err.txt)"; fail=1; }
exit $fail
