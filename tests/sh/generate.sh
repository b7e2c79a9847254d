#!/bin/sh
# generate.sh: llm-generate's signals and pipes: SIGINT leaves only complete
# records, in order, and exits 130; a reader going away ends it quietly;
# a -p stream is flushed token by token (readable before the end).
set -u
model=$FIXTURES/gen.llm
fail=0
no() { echo "FAIL: $*"; fail=1; }

# Many prompts, one at a time, so that the run lasts long enough to interrupt.
i=0
while [ $i -lt 3000 ]; do echo "The pump $i"; i=$((i + 1)); done > prompts.txt
llm-generate -m "$model" -n 40 --batch 1 --threads 1 --format jsonl prompts.txt > out.jsonl 2>err &
pid=$!
n=0
while [ ! -s out.jsonl ] && [ $n -lt 200 ]; do sleep 0.1; n=$((n + 1)); done
kill -INT $pid
wait $pid; st=$?
[ $st -eq 130 ] || no "SIGINT: exit $st, want 130: $(cat err)"
[ -s err ] && no "SIGINT: unexpected stderr: $(cat err)"
lines=$(wc -l < out.jsonl)
[ "$lines" -gt 0 ] && [ "$lines" -lt 3000 ] || no "SIGINT: $lines records"
# Every record complete and in input order.
awk -v n="$lines" '
    !/^\{"prompt":"The pump [0-9]+","text":.*,"tokens":[0-9]+,"finish":"(eos|stop|length)"\}$/ { print "bad record " NR ": " $0; bad = 1 }
    { p = $0; sub(/^\{"prompt":"The pump /, "", p); sub(/".*/, "", p); if (p != NR - 1) { print "record " NR " is for line " p + 1; bad = 1 } }
    END { exit bad }' out.jsonl || no "SIGINT: incomplete or misordered records"
[ "$(tail -c 1 out.jsonl | od -An -c | tr -d ' ')" = '\n' ] || no "SIGINT: last record not ended"

# A reader that goes away: quiet, killed by SIGPIPE (141 in the shell).
( llm-generate -m "$model" -n 20 --threads 1 prompts.txt 2>err2; echo $? > st2 ) | head -n 2 > two.txt
[ "$(cat st2)" -eq 141 ] || no "SIGPIPE: exit $(cat st2)"
[ -s err2 ] && no "SIGPIPE: stderr: $(cat err2)"
[ "$(wc -l < two.txt)" -eq 2 ] || no "SIGPIPE: $(wc -l < two.txt) lines"

# -p streams: the first bytes arrive while generation still runs (a long,
# sampled continuation; the reader stops after the first few bytes).
( llm-generate -m "$model" -n 60 --threads 1 --min-p 0 --top-k 0 -p "The" 2>err3; echo $? > st3 ) |
    head -c 3 > first.txt
[ "$(wc -c < first.txt)" -eq 3 ] || no "-p: $(wc -c < first.txt) bytes streamed"
exit $fail
