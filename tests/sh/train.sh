#!/bin/sh
# train.sh: llm-train end to end on the tiny fixture corpus: determinism,
# resume giving the same bytes as a straight run, --steps 0, token-file and
# text input agreeing, bad input failing cleanly without touching good
# files, and options that others would make ignored (--epochs with --steps,
# the schedule's, validation's without validation, --decay-embeddings
# without weight decay) usage errors.
set -u
tok=$FIXTURES/tiny.model
txt=$FIXTURES/tiny.txt
shape="--layers 2 --dim 32 --heads 4 --kv-heads 2 --ffn-dim 64 --context 32 --batch 4 --threads 2 -q"
fail=0
no() { echo "FAIL: $*"; fail=1; }

llm-train -m "$tok" $shape --steps 12 --seed 7 -o a.llm "$txt" || no "straight run"
llm-train -m "$tok" $shape --steps 12 --seed 7 -o b.llm "$txt" || no "second run"
cmp -s a.llm b.llm || no "same seed and threads gave different model bytes"
llm-train -m "$tok" $shape --steps 12 --seed 8 -o c.llm "$txt" || no "seed 8 run"
cmp -s a.llm c.llm && no "different seeds gave the same model"

# 6 steps, then 6 more from the checkpoint: the same bytes as 12 straight.
llm-train -m "$tok" $shape --steps 12 --seed 7 --until 6 -o r.llm "$txt" || no "run to step 6"
[ -f r.llm.ckpt ] || no "no checkpoint after --until"
llm-train $shape --steps 12 --seed 7 --resume r.llm.ckpt -o r.llm "$txt" || no "resume"
cmp -s a.llm r.llm || no "6 + resume + 6 steps differ from 12 straight steps"

# Gradient accumulation: 2 micro-batches of 2 sequences make the same step
# as 1 of 4 (the same sequences; sums in another order, so compared to 4
# decimals of the held-out loss).
acc="--layers 2 --dim 32 --heads 4 --kv-heads 2 --ffn-dim 64 --context 32 --threads 2 -q"
llm-train -m "$tok" $acc --batch 2 --batch-tokens 128 --steps 12 --seed 7 -o acc.llm "$txt" ||
    no "accumulation run"
l4=$(llm-eval -m a.llm --format json "$txt" | grep -o '"loss": *[0-9.]*' | grep -o '[0-9.]*$')
l22=$(llm-eval -m acc.llm --format json "$txt" | grep -o '"loss": *[0-9.]*' | grep -o '[0-9.]*$')
awk -v a="$l4" -v b="$l22" 'BEGIN { d = a - b; exit !(a > 0 && d < 1e-4 && d > -1e-4) }' ||
    no "batch 4 (loss $l4) and 2 x 2 accumulated (loss $l22) differ"
# More micro-batches a step than an int holds (it wrapped to a negative
# count, reported as a runtime error): a usage error naming the count.
llm-train -m "$tok" $acc --batch 1 --batch-tokens 137438953472 --steps 1 -o x.llm "$txt" 2>err
[ $? -eq 2 ] && grep -q "is 4294967296 micro-batches of 1 x 32 per step (at most 1048576)" err ||
    no "--batch-tokens past 2^20 micro-batches: $(cat err)"

# With dropout too (its masks follow the step, so resuming repeats them).
llm-train -m "$tok" $shape --dropout 0.2 --steps 12 --seed 7 -o d.llm "$txt" || no "dropout run"
cmp -s a.llm d.llm && no "--dropout 0.2 changed nothing"
llm-train -m "$tok" $shape --dropout 0.2 --steps 12 --seed 7 --until 6 -o dr.llm "$txt" || no "dropout to 6"
llm-train $shape --dropout 0.2 --steps 12 --seed 7 --resume dr.llm.ckpt -o dr.llm "$txt" || no "dropout resume"
cmp -s d.llm dr.llm || no "with dropout, 6 + resume + 6 steps differ from 12 straight steps"

# Label smoothing: another model, the same bytes again and after a resume;
# out of [0, 0.5] it is a usage error naming the option.
llm-train -m "$tok" $shape --label-smoothing 0.1 --steps 12 --seed 7 -o ls.llm "$txt" ||
    no "label smoothing run"
cmp -s a.llm ls.llm && no "--label-smoothing 0.1 changed nothing"
llm-train -m "$tok" $shape --label-smoothing 0.1 --steps 12 --seed 7 --until 6 -o lsr.llm \
    "$txt" || no "label smoothing to 6"
llm-train $shape --label-smoothing 0.1 --steps 12 --seed 7 --resume lsr.llm.ckpt -o lsr.llm \
    "$txt" || no "label smoothing resume"
cmp -s ls.llm lsr.llm || no "with label smoothing, 6 + resume + 6 steps differ from 12 straight"
llm-train -m "$tok" $shape --label-smoothing 1 --steps 2 -o bad.llm "$txt" 2> ls.err
[ $? -eq 2 ] && grep -q 'label-smoothing' ls.err && [ ! -e bad.llm ] ||
    no "--label-smoothing 1 was not a usage error naming it: $(cat ls.err)"

# Options that the others given would make ignored: usage errors naming
# both, before anything is written. usage_error MESSAGE ARGS...
usage_error() {
    msg=$1; shift
    llm-train "$@" 2> ue.err; st=$?
    [ $st -eq 2 ] && [ ! -e ue.llm ] && grep -qxF "llm-train: $msg" ue.err ||
        no "llm-train $*: exit $st, not 2 with '$msg': $(cat ue.err)"
    rm -f ue.llm ue.llm.ckpt
}
# --epochs sets the steps (it won, and --steps was ignored).
usage_error "--epochs and --steps cannot be combined (--epochs sets the steps from the data)" \
    -m "$tok" $shape --epochs 1 --steps 3 -o ue.llm "$txt"
# Only wsd has a decay fraction; a constant rate has no end to decay to.
usage_error "--decay-fraction is for --schedule wsd (not --schedule cosine)" \
    -m "$tok" $shape --steps 2 --decay-fraction 0.3 -o ue.llm "$txt"
usage_error "--min-lr is where a decay ends: not with --schedule constant" \
    -m "$tok" $shape --steps 2 --schedule constant --min-lr 1e-5 -o ue.llm "$txt"
llm-train -m "$tok" $shape --steps 2 --schedule wsd --decay-fraction 0.3 --min-lr 1e-5 \
    -o ok.llm "$txt" || no "--schedule wsd with --decay-fraction and --min-lr"
# No weight decay: nothing for --decay-embeddings to add.
usage_error "--decay-embeddings with --weight-decay 0 decays nothing" \
    -m "$tok" $shape --steps 2 --weight-decay 0 --decay-embeddings -o ue.llm "$txt"
# Without --val or --val-fraction nothing validates.
for o in "--patience 3" "--eval-every 5" "--eval-tokens 100"; do
    usage_error "${o%% *} needs validation: --val or --val-fraction" \
        -m "$tok" $shape --steps 2 $o -o ue.llm "$txt"
done
llm-train -m "$tok" $shape --steps 2 --patience 0 -o ok.llm "$txt" || no "--patience 0 alone"

# SIGINT: the run saves a checkpoint, says so and exits 130; resuming it
# finishes the run.
llm-train -m "$tok" $shape --steps 100000 --seed 7 -o int.llm "$txt" 2>int.err &
pid=$!
i=0
while [ ! -s int.llm.ckpt ] && [ $i -lt 1 ]; do sleep 1; i=$((i + 1)); done
kill -INT $pid
wait $pid; st=$?
[ $st -eq 130 ] || no "SIGINT: exit $st, want 130: $(cat int.err)"
[ -s int.llm.ckpt ] && [ -s int.llm ] || no "SIGINT: no checkpoint or model written"
llm-train $shape --steps 3 --override --resume int.llm.ckpt -o int2.llm "$txt" 2>err ||
    no "resume after SIGINT: $(cat err)"

# The same corpus as a token file (BOS/EOS per line, as llm-train does for text).
llm-tokenize encode -m "$tok" --bos --eos --output-format bin -o tiny.tok "$txt" || no "encode"
llm-train -m "$tok" $shape --steps 12 --seed 7 -o t.llm tiny.tok || no "token-file run"
cmp -s a.llm t.llm || no "text input and its token file gave different models"

# --steps 0 writes the initial model; it is a model file with the tokenizer.
llm-train -m "$tok" $shape --steps 0 -o z.llm "$txt" || no "--steps 0"
llm-tokenize info -m z.llm >/dev/null || no "tokenizer not embedded in the model file"

# Bad input: a clear message, exit 1, good files untouched.
cp a.llm keep.llm
: > empty.txt
llm-train -m "$tok" $shape -o keep.llm empty.txt 2>err; st=$?
[ $st -eq 1 ] || no "empty corpus: exit $st"
grep -q "no training tokens" err || no "empty corpus message: $(cat err)"
printf 'short line\n' > short.txt
llm-train -m "$tok" $shape -o keep.llm short.txt 2>err; st=$?
[ $st -eq 1 ] && grep -q "fewer than one sequence" err || no "short corpus: exit $st: $(cat err)"
llm-train -m "$tok" $shape -o /nonexistent-dir/x.llm "$txt" 2>err; st=$?
[ $st -eq 1 ] && grep -q "cannot write '/nonexistent-dir/x.llm'" err || no "unwritable output: $st: $(cat err)"
llm-train -m "$tok" $shape -o short.txt/x.llm "$txt" 2>err; st=$?
[ $st -eq 1 ] && grep -q "cannot write 'short.txt/x.llm': Not a directory" err || no "output under a file: $st: $(cat err)"
# A folder this process may not write (root may write any, so not as root);
# the check before training creates nothing there.
mkdir ro
if chmod 555 ro && ! ( : > ro/probe ) 2>/dev/null; then
    llm-train -m "$tok" $shape -o ro/x.llm "$txt" 2>err; st=$?
    [ $st -eq 1 ] && grep -q "cannot write 'ro/x.llm': Permission denied" err || no "read-only folder: $st: $(cat err)"
fi
chmod 755 ro
mkdir wr
llm-train -m "$tok" $shape --steps 0 -o wr/x.llm "$txt" 2>err || no "--steps 0 into a folder: $(cat err)"
[ "$(ls -A wr | tr '\n' ' ')" = "x.llm x.llm.ckpt " ] || no "files written beside a model: $(ls -A wr)"
# A model whose final norm weights are NaN (as a corrupted file could be):
# the loss is not finite, training stops, nothing is saved.
hlen=$(od -An -t u8 -N 8 z.llm | tr -d ' ')
off=$(head -c $((8 + hlen)) z.llm | tail -c "$hlen" | grep -o '"norm.weight":{[^}]*}' |
      sed 's/.*data_offsets":\[\([0-9]*\),.*/\1/')
[ -n "$off" ] || no "cannot find norm.weight in the header"
cp z.llm nan.llm
head -c 128 /dev/zero | tr '\0' '\377' | dd of=nan.llm bs=1 seek=$((8 + hlen + off)) conv=notrunc 2>/dev/null
llm-train $shape --init nan.llm --steps 5 -o keep.llm --checkpoint keep.ckpt "$txt" 2>err; st=$?
[ $st -eq 1 ] && grep -q "loss is NaN at step 1" err || no "non-finite loss: exit $st: $(cat err)"
[ -f keep.ckpt ] && no "a checkpoint was written after a non-finite loss"
cmp -s a.llm keep.llm || no "a failed run changed an existing model file"
printf '\377\376 bad\n' > bad.txt
llm-train -m "$tok" $shape -o keep.llm bad.txt 2>err; st=$?
[ $st -eq 1 ] && grep -q "'bad.txt', line 1: invalid UTF-8" err || no "invalid UTF-8: exit $st: $(cat err)"
# Resuming with a tokenizer of another vocabulary.
printf 'a b c d e f g h i j k l m n o p q r s t u v w x y z\n' > abc.txt
llm-tokenize train --vocab-size 30 --no-byte-fallback --model-type char -o other.model abc.txt 2>/dev/null || no "train other tokenizer"
llm-train -m other.model $shape --resume r.llm.ckpt -o keep.llm "$txt" 2>err; st=$?
[ $st -eq 1 ] && grep -q "vocabulary" err || no "vocabulary mismatch on resume: exit $st: $(cat err)"
cmp -s a.llm keep.llm || no "a failed run changed an existing model file"
# -m with --init: a tokenizer of the same size but other pieces is refused.
cut -f1 "$FIXTURES/text_pairs_en.tsv" > en.txt
llm-tokenize train --vocab-size 600 --strict-size -t 1 -q -o other600.model en.txt || no "a tokenizer of 600"
llm-train --init a.llm -m other600.model --steps 1 -q -o x.llm "$txt" 2>err; st=$?
[ $st -eq 1 ] && grep -q "^llm-train: the tokenizer 'other600.model' is not the one of 'a.llm' (piece " err ||
    no "--init with another tokenizer of the same size: exit $st: $(cat err)"
llm-train --init a.llm -m "$tok" --steps 1 -q -o x.llm "$txt" || no "--init with its own tokenizer given"

# The library names the parameter at fault; llm-train names its option.
llm-train -m "$tok" --dim 36 --heads 5 --steps 1 -q -o x.llm "$txt" 2>err; st=$?
[ $st -eq 2 ] && grep -qx "llm-train: --heads: number of heads 5 must divide the model dimension 36" err ||
    no "heads not dividing dim: exit $st: $(cat err)"
llm-train -m "$tok" --dim 32 --heads 4 --kv-heads 3 --steps 1 -q -o x.llm "$txt" 2>err; st=$?
[ $st -eq 2 ] && grep -q "^llm-train: --kv-heads: number of key/value heads 3 must divide" err ||
    no "kv-heads not dividing heads: exit $st: $(cat err)"

# Unattended: a closed standard error does not become the --log file (its
# progress lines were written at the start of the log), and a reader of the
# messages that goes away (2>&1 | head) does not kill the run unsaved.
llm-train -m "$tok" --layers 1 --dim 32 --heads 2 --context 16 --steps 20 -t 1 --progress \
    --log closed.jsonl -o closed.llm "$txt" 2>&- || no "stderr closed: the run failed"
head -c 9 closed.jsonl | grep -q '^{"step":1' || no "stderr closed: the log begins $(head -c 40 closed.jsonl)"
llm-train -m "$tok" --layers 1 --dim 32 --heads 2 --context 16 --steps 300 -t 1 --progress \
    -o piped.llm "$txt" 2>&1 | head -n 1 > /dev/null
[ -s piped.llm ] || no "stderr's reader gone: no model written"
# The run's files: -o, --checkpoint, --log and --plot are four files and
# none an input (the model overwrote the checkpoint; -o DATA replaced the
# corpus); one run at a time writes an -o (two from cron removed each
# other's temporary files), its lock file gone at the end.
cp "$txt" data.txt
small="-m $tok --layers 1 --dim 32 --heads 2 --context 16 -t 1"
llm-train $small --steps 2 -q -o same.llm --checkpoint same.llm data.txt 2>err; st=$?
[ $st -eq 2 ] && grep -qx "llm-train: -o and --checkpoint name one file, 'same.llm'" err ||
    no "-o = --checkpoint: exit $st: $(cat err)"
llm-train $small --steps 2 -q -o data.txt data.txt 2>err; st=$?
[ $st -eq 2 ] && grep -qx "llm-train: -o 'data.txt' is a data file of the run" err &&
    cmp -s data.txt "$txt" || no "-o = the data: exit $st: $(cat err)"
llm-train $small --steps 100000 -q -o busy.llm data.txt 2>/dev/null &
pid=$!
i=0
while [ ! -e busy.llm.lock ] && [ $i -lt 100 ]; do sleep 0.1; i=$((i + 1)); done
llm-train $small --steps 2 -q -o busy.llm data.txt 2>err; st=$?
kill -TERM $pid
wait $pid
[ $st -eq 1 ] && grep -qx "llm-train: 'busy.llm' is being written by another llm-train (it holds 'busy.llm.lock'): one run at a time" err ||
    no "a second run on one -o: exit $st: $(cat err)"
[ -s busy.llm.ckpt ] || no "the first run, interrupted, left no checkpoint"
ls | grep -q '\.lock$' && no "lock files left: $(ls | grep '\.lock$')"
# The best model cannot be written (/dev/full: a full disk): the run so far
# is saved in the checkpoint before the error (it was lost).
if [ -w /dev/full ]; then
    rm -f full.ckpt
    llm-train $small --steps 40 --val-fraction 0.2 --eval-every 10 -q -o /dev/full \
        --checkpoint full.ckpt data.txt 2>err; st=$?
    [ $st -eq 1 ] && [ -s full.ckpt ] &&
        grep -qx "llm-train: cannot write '/dev/full': No space left on device; the run is saved in 'full.ckpt' (--resume goes on)" err ||
        no "the best model on a full disk: exit $st: $(cat err)"
fi
exit $fail
