#!/bin/sh
# crash.sh: llm-train killed with SIGKILL at 10 random moments (seeded) of a
# run that checkpoints every 2 steps, each time resumed from its checkpoint
# alone (or started again when none was written yet), ends with the model
# bytes of an uninterrupted run, and leaves no temporary file; a checkpoint
# or model that cannot be written (the file size limit of `ulimit -f`, and a
# full tmpfs where one can be mounted) fails with exit 1 and a message, the
# previous checkpoint and model stay intact and loadable.
set -u
[ -z "${SANITIZED:-}" ] || { echo "skipped under sanitizers (timing)"; exit 77; }
cp "$FIXTURES/tiny.txt" d.txt
tok=$FIXTURES/tiny.model
run="-m $tok --preset tiny --context 32 --batch 4 --steps 200 --save-every 2 --lr 2e-3 --seed 3 -q -t 1"
fail=0
t0=$(date +%s.%N)
llm-train $run -o ref.llm d.txt || { echo "FAIL: the uninterrupted run"; exit 1; }
secs=$(echo "$t0 $(date +%s.%N)" | awk '{ print $2 - $1 }')
echo "uninterrupted run: $secs s"
kills=0
for i in 1 2 3 4 5 6 7 8 9 10; do
    if [ -s k.llm.ckpt ]; then llm-train --resume k.llm.ckpt -q & else llm-train $run -o k.llm d.txt & fi
    pid=$!
    # 0.1 to 0.7 s into each start (a 200-step run takes several seconds)
    sleep "$(awk -v i="$i" 'BEGIN { srand(i * 7919); printf "%.3f", 0.1 + 0.6 * rand() }')"
    kill -9 $pid 2>/dev/null && kills=$((kills + 1))
    wait $pid 2>/dev/null
    step=$(grep -ao '"adamw.step":"[0-9]*"' k.llm.ckpt 2>/dev/null | head -n 1 | tr -dc 0-9)
    echo "kill $i: $(ls | grep -c '\.tmp') temporary files; checkpoint at step ${step:-none}"
done
echo "$kills of 10 runs killed before they ended"
if [ -s k.llm.ckpt ]; then llm-train --resume k.llm.ckpt -q 2> err.txt
else llm-train $run -o k.llm d.txt 2> err.txt; fi || { echo "FAIL: the last resume"; cat err.txt; fail=1; }
cmp ref.llm k.llm && echo "after the kills: the uninterrupted run's bytes" ||
    { echo "FAIL: the model after kills and resumes differs"; fail=1; }
if ls | grep -q '\.tmp'; then echo "FAIL: temporary files left:"; ls | grep '\.tmp'; fail=1; fi

# --save-interval: a run that writes its checkpoint by time alone, killed
# once it has, resumes from it to the same bytes.
llm-train $(echo "$run" | sed 's/--save-every 2/--save-interval 0.3/') -o s.llm d.txt &
pid=$!
i=0
while [ ! -s s.llm.ckpt ] && [ $i -lt 100 ]; do sleep 0.1; i=$((i + 1)); done
kill -9 $pid 2>/dev/null
wait $pid 2>/dev/null
step=$(grep -ao '"adamw.step":"[0-9]*"' s.llm.ckpt 2>/dev/null | head -n 1 | tr -dc 0-9)
echo "--save-interval 0.3: checkpoint at step ${step:-none} when killed"
[ -n "$step" ] && [ "$step" -gt 0 ] && [ "$step" -lt 200 ] ||
    { echo "FAIL: no checkpoint by --save-interval during the run"; fail=1; }
llm-train --resume s.llm.ckpt -q 2> err.txt && cmp -s ref.llm s.llm ||
    { echo "FAIL: resumed from the checkpoint of --save-interval: $(cat err.txt)"; fail=1; }

# A write that fails: the limit lets the small checkpoint of step 2 through
# but not the model with its optimiser state (about 3x the size).
llm-train $run --steps 2 -o f.llm d.txt || { echo "FAIL: run to step 2"; exit 1; }
cp f.llm f0.llm; cp f.llm.ckpt f0.ckpt
limit=$(( $(wc -c < f.llm) / 1024 + 8 ))   # KiB: the model fits, the checkpoint does not
(
    trap '' XFSZ   # a write past the limit fails with EFBIG instead of killing
    ulimit -f "$limit"
    llm-train --resume f.llm.ckpt --override --steps 4 -q -o f.llm
) 2> err.txt; st=$?
[ $st -eq 1 ] || { echo "FAIL: a write past the limit: exit $st, want 1"; fail=1; }
grep -q "f.llm" err.txt || { echo "FAIL: no message naming the file:"; cat err.txt; fail=1; }
echo "write past the limit: exit $st: $(head -c 300 err.txt)"
cmp -s f.llm f0.llm && cmp -s f.llm.ckpt f0.ckpt ||
    { echo "FAIL: a failed write changed the previous model or checkpoint"; fail=1; }
printf 'the\n' | llm-generate -m f.llm -n 2 > /dev/null || { echo "FAIL: the old model no longer loads"; fail=1; }
if ls | grep -q '\.tmp'; then echo "FAIL: temporary files left after the failed write"; fail=1; fi
# A full file system, where this machine lets the test make one (root with
# the right to mount a tmpfs): room for the model and checkpoint of step 2
# and 64 KiB, not for the next checkpoint.
mkdir full
need=$(( ($(wc -c < f0.llm) + $(wc -c < f0.ckpt)) / 1024 + 64 ))
if mount -t tmpfs -o size=${need}k tmpfs full 2> /dev/null; then
    cp f0.llm full/f.llm && cp f0.ckpt full/f.llm.ckpt
    llm-train --resume full/f.llm.ckpt --override --steps 4 -q -o full/f.llm 2> err.txt; st=$?
    echo "full file system: exit $st: $(head -c 300 err.txt)"
    [ $st -eq 1 ] && grep -q "cannot write 'full/f.llm.ckpt': No space left on device" err.txt ||
        { echo "FAIL: a full file system: exit $st, want 1 and the file named"; fail=1; }
    cmp -s full/f.llm f0.llm && cmp -s full/f.llm.ckpt f0.ckpt ||
        { echo "FAIL: a full file system changed the previous model or checkpoint"; fail=1; }
    ls full | grep -q '\.tmp' && { echo "FAIL: temporary files left on the full file system"; fail=1; }
    umount full
else
    echo "no tmpfs can be mounted here (not root, or no right to mount): full file system not tried"
fi
exit $fail
