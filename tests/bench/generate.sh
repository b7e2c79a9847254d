#!/bin/sh
# generate.sh: generation tokens/s of the stories15M, 42M and 110M shapes
# (random weights, vocabulary 32000) at batch 1, 16 and 32 on 1 and 2
# threads, with the weight bandwidth of batch 1 against a STREAM triad of
# the same run, and the ratio to llama2.c's run.c (2 threads, top-p off:
# 365 / 142 / 57 tokens/s on the reference machine, when the issue was
# written). Rows: f32 reads a private block of weights in transparent huge
# pages (a model in memory, or llm-generate --no-mmap), mmap the mapping of
# a model file (llm-generate's default; this kernel maps the page cache in
# large folios, as fast here), f16 half-precision copies.
#
# This machine's bandwidth drifts within minutes, so a fixed reference can
# mislead: with LLAMA2C=path/to/run (llama2.c's run.c built with -Ofast
# -fopenmp -march=native) and numpy, run.c is timed on the same shapes
# (llama2c_models.py writes them; 128 tokens, top-p off, 1 and 2 threads)
# just before ours, shape by shape.
set -u
prog=$TOP/$B/bench/generate_speed
[ -x "$prog" ] || { echo "generate: $prog not built"; exit 1; }
peer=
if [ -n "${LLAMA2C:-}" ] && [ -x "$LLAMA2C" ] &&
    python3 "$TOP/tests/bench/llama2c_models.py" 2>/dev/null; then
    peer=$LLAMA2C
else
    echo "(llama2.c not timed here: set LLAMA2C to a built run.c; numpy needed)"
fi
for m in small medium large; do
    for t in 1 2; do
        [ -n "$peer" ] || break
        tps=$(OMP_NUM_THREADS=$t "$peer" $m.bin -z tokenizer.bin -t 1.0 -p 1.0 -n 128 \
            -s 1 -i hello 2>&1 >/dev/null | sed -n 's/achieved tok\/s: //p')
        printf 'llama2.c run.c, %s, threads %d batch  1: %8.1f tokens/s\n' $m $t "${tps:-0}"
    done
    "$prog" --preset $m --vocab 32000 --batch 1,16,32 --threads 1,2 --tokens 128
    echo
done
