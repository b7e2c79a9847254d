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
# with a float scale and offset each: 1.25 bytes per weight), bf16 bfloat16 copies
# (inputs rounded too: 2 bytes per weight).
#
# This machine's bandwidth drifts within minutes, so a fixed reference can
# mislead: with LLAMA2C=path/to/run (llama2.c's run.c, built with
# -fopenmp -march=native and -O3 or -Ofast) and numpy, run.c is timed on the
# same shapes (llama2c_models.py writes them; 128 tokens, top-p off, 1 and 2
# threads) just before ours, shape by shape; runq.c (llama2.c's int8
# inference, Q8_0-style groups, here of 32 like ours) too when it is built
# beside run.c as runq, or LLAMA2CQ names it. Then, since one run of each can
# land on a fast or a slow minute, a side-by-side table at batch 1 on 2
# threads: GEN_REPS (default 5) rounds per shape, each run.c, ours (f32,
# mmap, f16, q8, bf16 in one process) and runq.c in turn; medians, ranges, and
# ours against run.c (fp32) and runq.c (int8), with the share of the STREAM
# triad that each one's weight reads make. GEN_SWEEP=0 leaves out the sweep
# of batches and threads and times the table alone; GEN_SHAPES (default
# "small medium large") picks the shapes of the table.
set -u
prog=$TOP/$B/bench/generate_speed
[ -x "$prog" ] || { echo "generate: $prog not built"; exit 1; }
cpu=$(lscpu 2>/dev/null | sed -n 's/^Model name: *//p' | head -n 1)
[ -n "$cpu" ] || cpu=$(sed -n 's/^model name[^:]*: *//p' /proc/cpuinfo | head -n 1)
echo "CPU: ${cpu:-unknown}, $(nproc) CPUs"
peer=
if [ -n "${LLAMA2C:-}" ] && [ -x "$LLAMA2C" ] &&
    python3 "$TOP/tests/bench/llama2c_models.py" 2>/dev/null; then
    peer=$LLAMA2C
else
    echo "(llama2.c not timed here: set LLAMA2C to a built run.c; numpy needed)"
fi
peerq=
if [ -n "$peer" ]; then
    q=${LLAMA2CQ:-$(dirname "$peer")/runq}
    if [ -x "$q" ]; then peerq=$q; else echo "(runq.c not timed here: build it beside run.c or set LLAMA2CQ)"; fi
fi
# GEN_SWEEP=0: the side-by-side table alone
for m in small medium large; do
    [ "${GEN_SWEEP:-1}" = 0 ] && break
    ref=0
    for t in 1 2; do
        [ -n "$peer" ] || break
        tps=$(OMP_NUM_THREADS=$t "$peer" $m.bin -z tokenizer.bin -t 1.0 -p 1.0 -n 128 \
            -s 1 -i hello 2>&1 >/dev/null | sed -n 's/achieved tok\/s: //p')
        printf 'llama2.c run.c, %s, threads %d batch  1: %8.1f tokens/s\n' $m $t "${tps:-0}"
        ref=${tps:-0}
        [ -n "$peerq" ] || continue
        tq=$(OMP_NUM_THREADS=$t "$peerq" ${m}_q8.bin -z tokenizer.bin -t 1.0 -p 1.0 -n 128 \
            -s 1 -i hello 2>&1 >/dev/null | sed -n 's/achieved tok\/s: //p')
        printf 'llama2.c runq.c (int8), %s, threads %d batch  1: %8.1f tokens/s\n' $m $t "${tq:-0}"
    done
    "$prog" --preset $m --vocab 32000 --batch 1,16,32 --threads 1,2 --tokens 128 --ref "$ref"
    echo
done

# "median lo-hi" of the numbers on standard input
stats() {
    sort -n | awk '{ v[NR] = $1 } END {
        if (NR == 0) { print "0 -"; exit }
        m = NR % 2 ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2
        printf "%.1f %.0f-%.0f\n", m, v[1], v[NR] }'
}
reps=${GEN_REPS:-5}
[ -n "$peer" ] && [ "$reps" -gt 0 ] || exit 0
echo "side by side: decoding at batch 1, 2 threads, 128 tokens, top-p off; CPU: ${cpu:-unknown};"
echo "medians and ranges over $reps rounds, each run.c, ours (f32, mmap, f16, q8, bf16) and runq.c in"
echo "turn; x run.c / x runq.c: our median over theirs; triad: the share of the STREAM triad"
echo "of our runs that the weight reads make (fp32 4, f16 and bf16 2, int8 1.25 bytes a weight; runq.c's 1.125)"
for m in ${GEN_SHAPES:-small medium large}; do
    : > run.txt
    : > runq.txt
    : > triad.txt
    for v in f32 mmap f16 q8 bf16; do : > $v.txt; done
    r=0
    while [ $r -lt "$reps" ]; do
        OMP_NUM_THREADS=2 "$peer" $m.bin -z tokenizer.bin -t 1.0 -p 1.0 -n 128 -s 1 -i hello \
            2>&1 >/dev/null | sed -n 's/achieved tok\/s: //p' >> run.txt
        out=$("$prog" --preset $m --vocab 32000 --batch 1 --threads 2 --tokens 128 \
            --precision f32,mmap,f16,q8,bf16)
        mb=$(echo "$out" | sed -n 's/.* \([0-9][0-9]*\) MB of fp32 weights per token.*/\1/p')
        for v in f32 mmap f16 q8 bf16; do
            echo "$out" | awk -v v=$v '$1 == v && /threads 2 batch  1:/ { print $6 }' >> $v.txt
        done
        echo "$out" | sed -n 's/.*threads 2 batch  1:.*of triad (\([0-9.]*\)).*/\1/p' |
            sort -n | tail -n 1 >> triad.txt
        if [ -n "$peerq" ]; then
            OMP_NUM_THREADS=2 "$peerq" ${m}_q8.bin -z tokenizer.bin -t 1.0 -p 1.0 -n 128 -s 1 \
                -i hello 2>&1 >/dev/null | sed -n 's/achieved tok\/s: //p' >> runq.txt
        fi
        r=$((r + 1))
    done
    l2c=$(stats < run.txt) l2q=$(stats < runq.txt) tr=$(stats < triad.txt)
    tr=${tr%% *}
    printf '\n%s (%s MB of fp32 weights per token; triad %s GB/s):\n' $m "$mb" "$tr"
    printf '  %-24s %9s  %-9s %8s %8s %7s\n' implementation tokens/s range "x run.c" "x runq.c" triad
    for row in "llama2.c run.c (fp32)|run|4" "ours f32|f32|4" "ours mmap (f32)|mmap|4" \
        "ours f16|f16|2" "ours bf16|bf16|2" "llama2.c runq.c (int8)|runq|1.125" \
        "ours q8|q8|1.25"; do
        name=${row%%|*} rest=${row#*|}
        f=${rest%|*} bpw=${rest#*|}
        [ -s $f.txt ] || continue
        st=$(stats < $f.txt)
        echo "$st ${l2c%% *} ${l2q%% *} $mb $bpw $tr" | awk -v n="$name" -v f=$f '{
            x1 = (f != "run" && $3 > 0) ? sprintf("%.2fx", $1 / $3) : ""
            x2 = (f == "q8" && $4 > 0) ? sprintf("%.2fx", $1 / $4) : ""
            sh = ($7 > 0 ? sprintf("%.0f%%", 100 * $1 * $5 * $6 / 4 / 1000 / $7) : "")
            printf "  %-24s %9.1f  %-9s %8s %8s %7s\n", n, $1, $2, x1, x2, sh }'
    done
done
