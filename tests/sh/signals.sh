#!/bin/sh
# signals.sh: SIGTERM to a filter that waits on an idle input pipe (a
# producer that has gone quiet) ends it at once with 128 + 15, its output
# whole records: llm-generate and llm-classify wait in poll(), which the
# signal interrupts (a read() on the pipe would be restarted, and the
# program would wait for the next line); so does llm-tokenize encode, and
# -o FILE is then left as it was, with no temporary file beside it. A
# watchdog kills a program still running 20 s after the signal (exit 137: a
# hang); a line written after the signal must not be read.
set -u
trap '' PIPE   # (a program that died early must not take this script with it)
fail=0
no() { echo "FAIL: $*"; fail=1; }
tok=$FIXTURES/tiny.model

# Runs "$@" reading the FIFO in.fifo, writes $first to it, waits, sends
# SIGTERM, then (with $second non-empty) writes $second; $st is the status.
term_idle() {
    rm -f in.fifo && mkfifo in.fifo
    "$@" < in.fifo &
    pid=$!
    exec 3> in.fifo
    printf '%s\n' "$first" >&3
    sleep 2
    kill -TERM $pid
    (sleep 20; kill -KILL $pid 2> /dev/null) &
    dog=$!
    [ -n "$second" ] && { sleep 1; printf '%s\n' "$second" >&3 2> /dev/null; }
    wait $pid
    st=$?
    kill $dog 2> /dev/null
    exec 3>&-
}

first="The pump stopped" second=""
term_idle llm-generate -m "$FIXTURES/gen.llm" -n 4 -t 1 -q > g.out
[ $st -eq 143 ] || no "llm-generate on an idle pipe: exit $st (137: it did not stop)"
[ "$(wc -l < g.out)" -eq 1 ] && [ "$(tail -c 1 g.out | od -An -c | tr -d ' ')" = '\n' ] ||
    no "llm-generate: not one whole record: $(cat g.out)"

printf 'ok\tthe pump runs\nbad\tthe pump failed\nok\tall good\nbad\tvalve leaks\n' > l.tsv
llm-train --task classify -m "$tok" --layers 1 --dim 32 --heads 2 --context 32 --steps 2 \
    -t 1 -q -o c.llm l.tsv || no "a classifier"
term_idle llm-classify -m c.llm -t 1 -q > c.out
[ $st -eq 143 ] || no "llm-classify on an idle pipe: exit $st (137: it did not stop)"
[ "$(wc -l < c.out)" -eq 1 ] || no "llm-classify: not one record: $(cat c.out)"

echo keep > ids.txt
first="the pump" second="the valve"
term_idle llm-tokenize encode -m "$tok" -o ids.txt
[ $st -eq 143 ] || no "llm-tokenize encode -o: exit $st (137: it did not stop)"
[ "$(cat ids.txt)" = keep ] || no "llm-tokenize encode -o: the file changed: $(cat ids.txt)"
ls | grep -q '^ids\.txt\.tmp' && no "llm-tokenize encode -o: a temporary file was left: $(ls)"
term_idle llm-tokenize encode -m "$tok" > ids.out
[ $st -eq 143 ] || no "llm-tokenize encode: exit $st (137: it did not stop)"
printf 'the pump\n' | llm-tokenize encode -m "$tok" > want.out
cmp -s ids.out want.out || no "llm-tokenize encode: not the line before the signal alone: $(cat ids.out)"
first="$(cat want.out)"
term_idle llm-tokenize decode -m "$tok" > text.out
[ $st -eq 143 ] || no "llm-tokenize decode: exit $st (137: it did not stop)"
[ "$(cat text.out)" = "the pump" ] || no "llm-tokenize decode: $(cat text.out)"

# llm-train: SIGTERM part way through a step drops that step, rather than
# finishing it (steps of a real model can take minutes, past a service
# manager's grace period), saves the run as it stood after the step before,
# and exits 143; resumed, the run ends with the bytes of one never stopped.
cp "$FIXTURES/tiny.txt" d.txt
big="-m $tok --layers 6 --dim 256 --heads 4 --context 32 --batch 128 --lr 1e-3 --seed 5 -t 1"
llm-train $big --steps 3 -q -o u.llm d.txt || no "llm-train, the uninterrupted run"
llm-train $big --steps 3 --progress -o i.llm d.txt 2> i.err &
pid=$!
i=0
while ! grep -q "step 1/3" i.err && [ $i -lt 600 ]; do sleep 0.05; i=$((i + 1)); done
kill -TERM $pid
wait $pid
st=$?
[ $st -eq 143 ] || no "llm-train: exit $st after SIGTERM, want 143: $(cat i.err)"
grep -q "interrupted at step 1;" i.err ||
    no "llm-train finished the step under way (a step of about a second, signalled at its start): $(cat i.err)"
llm-train --resume i.llm.ckpt -q 2> err.txt && cmp -s u.llm i.llm ||
    no "llm-train, stopped in a step and resumed: not the uninterrupted bytes: $(cat err.txt)"
# Stopped in its first step, a run with adapters (--lora) is saved at step 0
# with them apart from the base weights, and resumes (its checkpoint had
# them merged, without moments, and --resume refused it).
llm-train --init u.llm --lora 4 --steps 2 -b 128 -t 1 -q -o lu.llm d.txt ||
    no "llm-train --lora, the uninterrupted run"
llm-train --init u.llm --lora 4 --steps 2 -b 128 -t 1 -o li.llm d.txt 2> li.err &
pid=$!
i=0
while ! grep -q "parameters" li.err && [ $i -lt 600 ]; do sleep 0.05; i=$((i + 1)); done
sleep 0.3
kill -TERM $pid
wait $pid
st=$?
[ $st -eq 143 ] && grep -q "interrupted at step 0;" li.err ||
    no "llm-train --lora, signalled in its first step: exit $st: $(cat li.err)"
llm-train --resume li.llm.ckpt -q 2> err.txt && cmp -s lu.llm li.llm ||
    no "llm-train --lora, stopped at step 0 and resumed: not the uninterrupted bytes: $(cat err.txt)"
exit $fail
