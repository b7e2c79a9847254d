#!/bin/sh
# generate.sh: generation tokens/s of the stories15M, 42M and 110M shapes
# (random weights, vocabulary 32000) at batch 1, 16 and 32 on 1 and 2
# threads, with the weight bandwidth of batch 1 against a STREAM triad of
# the same run, and the ratio to llama2.c's run.c (2 threads, top-p off:
# 365 / 142 / 57 tokens/s on the reference machine).
set -u
prog=$TOP/$B/bench/generate_speed
[ -x "$prog" ] || { echo "generate: $prog not built"; exit 1; }
"$prog" --preset small,medium,large --vocab 32000 --batch 1,16,32 --threads 1,2 --tokens 128
