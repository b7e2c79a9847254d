#!/bin/sh
# generate.sh: generation tokens/s of the stories15M, 42M and 110M shapes
# (random weights, vocabulary 32000) at batch 1, 16 and 32 on 1 and 2
# threads, with the weight bandwidth of batch 1 against a STREAM triad of
# the same run, and the ratio to llama2.c's run.c (2 threads, top-p off):
# timed just before when LLAMA2C is set (marked "now"), else 365 / 142 / 57
# tokens/s, the reference machine's when the issue was written. Rows: f32
# reads a private block of weights in transparent huge pages (a model in
# memory, or llm-generate --no-mmap), mmap the mapping of a model file
# (llm-generate's default; this kernel maps the page cache in large folios,
# as fast here), f16 half-precision copies, q8 int8 copies (blocks of 32
# with a float scale each: 1.125 bytes per weight).
#
# This machine's bandwidth drifts within minutes, so a fixed reference can
# mislead: with LLAMA2C=path/to/run (llama2.c's run.c built with -Ofast
# -fopenmp -march=native) and numpy, run.c is timed on the same shapes
# (llama2c_models.py writes them; 128 tokens, top-p off, 1 and 2 threads)
# just before ours, shape by shape. Then, since one run of each can land on
# a fast or a slow minute, GEN_REPS (default 5) runs of run.c and of ours
# (batch 1, 2 threads, the model file's mapping as llm-generate reads it)
# taken in turn per shape, and the medians.
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
    ref=0
    for t in 1 2; do
        [ -n "$peer" ] || break
        tps=$(OMP_NUM_THREADS=$t "$peer" $m.bin -z tokenizer.bin -t 1.0 -p 1.0 -n 128 \
            -s 1 -i hello 2>&1 >/dev/null | sed -n 's/achieved tok\/s: //p')
        printf 'llama2.c run.c, %s, threads %d batch  1: %8.1f tokens/s\n' $m $t "${tps:-0}"
        ref=${tps:-0}
    done
    "$prog" --preset $m --vocab 32000 --batch 1,16,32 --threads 1,2 --tokens 128 --ref "$ref"
    echo
done

# Median of the numbers on standard input.
median() { sort -n | awk '{ v[NR] = $1 } END { print NR % 2 ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2 }'; }
reps=${GEN_REPS:-5}
[ -n "$peer" ] && [ "$reps" -gt 1 ] || exit 0
echo "batch 1, 2 threads, $reps runs of each taken in turn (file mapping; medians; the share"
echo "of the STREAM triad that each one's weight reads make, against the triad of our runs):"
for m in small medium large; do
    : > l2c.txt
    : > ours.txt
    : > triad.txt
    r=0
    while [ $r -lt "$reps" ]; do
        OMP_NUM_THREADS=2 "$peer" $m.bin -z tokenizer.bin -t 1.0 -p 1.0 -n 128 -s 1 -i hello \
            2>&1 >/dev/null | sed -n 's/achieved tok\/s: //p' >> l2c.txt
        out=$("$prog" --preset $m --vocab 32000 --batch 1 --threads 2 --tokens 128 \
            --precision mmap)
        mb=$(echo "$out" | sed -n 's/.* \([0-9][0-9]*\) MB of fp32 weights per token.*/\1/p')
        echo "$out" | awk '/mmap threads 2 batch  1:/ { print $6 }' >> ours.txt
        echo "$out" | sed -n 's/.*mmap threads 2 batch  1:.*of triad (\([0-9.]*\)).*/\1/p' >> triad.txt
        r=$((r + 1))
    done
    a=$(median < ours.txt) b=$(median < l2c.txt) tr=$(median < triad.txt)
    printf '  %-6s ours %7.1f (%s)  llama2.c %7.1f (%s)  %.2fx;  %s MB per token: %s%% / %s%% of the triad (%s GB/s)\n' \
        $m "$a" "$(sort -n ours.txt | cut -d. -f1 | tr '\n' ' ' | sed 's/ $//')" "$b" \
        "$(sort -n l2c.txt | cut -d. -f1 | tr '\n' ' ' | sed 's/ $//')" \
        "$(echo "$a $b" | awk '{ print ($2 > 0 ? $1 / $2 : 0) }')" "$mb" \
        "$(echo "$a $mb $tr" | awk '{ printf "%.0f", ($3 > 0 ? 100 * $1 * $2 / 1000 / $3 : 0) }')" \
        "$(echo "$b $mb $tr" | awk '{ printf "%.0f", ($3 > 0 ? 100 * $1 * $2 / 1000 / $3 : 0) }')" "$tr"
done
