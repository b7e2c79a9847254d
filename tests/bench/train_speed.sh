#!/bin/sh
# train_speed.sh: training tokens/s and MFU of the stories15M shape (vocab
# 4096, context 256) at batch 8 and 32 on 1 and 2 threads, in fp32 and in
# bf16 (train_speed --precision bf16: bf16 products, fp32 sums, weights and
# AdamW state). Then, when a Python with PyTorch is installed, a table of
# ours beside PyTorch on the same model, batch and threads
# (tests/bench/pytorch_train.py: eager, SDPA and torch.compile + SDPA, each in
# fp32 and under bf16 autocast, AdamW and gradient clipping as ours), with
# each one's ratio to the fastest PyTorch configuration of the same precision.
#
# Side by side: for each THREADS:BATCH of TRAIN_SIDE (default "2:8 1:8
# 2:32"), one PyTorch process warms every configuration up (torch.compile
# compiles then, untimed: a minute or more), then TRAIN_REPS (default 3)
# rounds, each ours f32, ours bf16, and every PyTorch configuration in turn,
# TRAIN_STEPS (default 4) timed steps each: medians and ranges over rounds.
# TRAIN_PRECISION (default "f32 bf16") names the precisions side by side:
# "f32" alone on a CPU without bf16 instructions, where PyTorch's bf16
# autocast runs at a twentieth of its fp32 speed and would take an hour.
set -u
prog=$TOP/$B/bench/train_speed
[ -x "$prog" ] || { echo "train_speed: $prog not built"; exit 1; }
cpu=$(lscpu 2>/dev/null | sed -n 's/^Model name: *//p' | head -n 1)
[ -n "$cpu" ] || cpu=$(sed -n 's/^model name[^:]*: *//p' /proc/cpuinfo | head -n 1)
echo "CPU: ${cpu:-unknown}, $(nproc) CPUs"
for p in f32 bf16; do
    "$prog" --preset small --vocab 4096 --context 256 --batch 8,32 --threads 1,2 --steps 4 \
        --precision $p | tee -a ours.txt
done

py=""
for p in python3 /usr/bin/python3; do
    if command -v "$p" >/dev/null 2>&1 && "$p" -c 'import torch' 2>/dev/null; then py=$p; break; fi
done
if [ -z "$py" ]; then
    echo "PyTorch: not installed (pip install torch), no comparison"
    exit 0
fi
# The sgemm peak of the runs above, passed on so the timed rounds skip
# measuring it again (MFU is not in the table).
peak=$(sed -n 's/.*: peak \([0-9.]*\) GFLOP\/s.*/\1/p' ours.txt | head -n 1)
reps=${TRAIN_REPS:-3} steps=${TRAIN_STEPS:-4}
tv=$("$py" -c 'import torch; print(torch.__version__)' 2>/dev/null)

# median and range of the numbers on standard input: "median lo-hi"
stats() {
    sort -n | awk '{ v[NR] = $1 } END {
        if (NR == 0) { print "0 -"; exit }
        m = NR % 2 ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2
        printf "%.0f %.0f-%.0f\n", m, v[1], v[NR] }'
}
echo
echo "side by side: training tokens/s, stories15M shape (6 x 288, vocab 4096, context 256),"
echo "AdamW; CPU: ${cpu:-unknown}; torch $tv; medians and ranges over $reps rounds taken in"
echo "turn; ratio: to the fastest PyTorch configuration of the same precision"
for tb in ${TRAIN_SIDE:-2:8 1:8 2:32}; do
    t=${tb%:*} b=${tb#*:}
    ours="$prog --preset small --vocab 4096 --context 256 --batch $b --threads $t --steps $steps"
    [ -n "$peak" ] && ours="$ours --peak $peak"
    precs=${TRAIN_PRECISION:-f32 bf16} between=""
    for p in $precs; do
        : > $p.txt
        between="$between$ours --precision $p >> $p.txt; "
    done
    OMP_NUM_THREADS=$t "$py" "$TOP/tests/bench/pytorch_train.py" --batch "$b" --threads "$t" \
        --steps "$steps" --reps "$reps" --modes eager,sdpa,compile --precision "$(echo $precs | tr ' ' ,)" \
        --between "$between" \
        2>torch.err </dev/null > torch.txt
    rc=$?
    [ $rc -eq 0 ] || { echo "pytorch_train.py failed (exit $rc):"; tail -n 5 torch.err; continue; }
    : > rows.txt
    for p in $precs; do
        s=$(awk '/batch/ { print $3 }' $p.txt | stats)
        echo "ours $p $s" >> rows.txt
    done
    for m in eager sdpa compile; do
        for p in $precs; do
            s=$(grep "\"mode\": \"$m\", \"precision\": \"$p\"" torch.txt |
                sed 's/.*"tokens_per_s": *\([0-9.]*\).*/\1/' | stats)
            echo "pytorch-$m $p $s" >> rows.txt
        done
    done
    printf '\nthreads %s, batch %s:\n' "$t" "$b"
    printf '  %-20s %-5s %9s  %-13s %s\n' implementation prec tokens/s range ratio
    awk 'NR == FNR { if ($1 ~ /^pytorch/ && $3 > best[$2]) best[$2] = $3; next }
         { name = $1; sub("pytorch-eager", "PyTorch eager", name)
           sub("pytorch-sdpa", "PyTorch SDPA", name); sub("pytorch-compile", "PyTorch compile+SDPA", name)
           printf "  %-20s %-5s %9s  %-13s %.2fx\n", name, $2, $3, $4,
                  (best[$2] > 0 ? $3 / best[$2] : 0) }' rows.txt rows.txt
done
