#!/bin/sh
# mpi.sh: scaling out. (1) llm-train tokens/s as 1 process and as 2 MPI
# ranks of 1 thread each on this machine, with the scaling efficiency;
# (2) the all-reduce time per step of a stories15M-sized gradient (15.1M
# floats, 60 MB: preset small with 15 layers, as this 600-piece tokenizer
# leaves the embedding small); (3) the memory of 4 concurrent llm-classify
# processes against 1, the weights mapped from one file: resident set (RSS,
# which counts shared pages in every process), proportional set (PSS, which
# splits them) and anonymous memory (activations and buffers: weights copied
# into each process would show here). Needs llm-train built with MPI=1 for (1)
# and (2); (3) always runs.
set -u
tok=$FIXTURES/tiny.model
OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
export OMPI_ALLOW_RUN_AS_ROOT OMPI_ALLOW_RUN_AS_ROOT_CONFIRM

last() { tail -n 1 "$1" | sed -n "s/.*\"$2\":\([0-9.e-]*\).*/\1/p"; }
params() { head -c 65536 "$1" | LC_ALL=C grep -ao '"params":"[0-9]*"' | head -n 1 | tr -dc 0-9; }

mpi=0
if command -v mpirun >/dev/null 2>&1; then
    mpirun --oversubscribe -np 2 llm-train -m "$tok" --layers 1 --dim 32 --heads 2 --ffn-dim 64 \
        --context 16 --batch 1 --batch-tokens 32 --steps 0 -q -o probe.llm "$FIXTURES/tiny.txt" 2>err
    grep -q "built without MPI" err || mpi=1
fi
if [ $mpi = 0 ]; then
    echo "training: needs mpirun and llm-train built with MPI=1 (make MPI=1 B=build-mpi bench)"
else
    # A corpus of repeated fixture text: throughput does not care.
    for i in $(seq 60); do cat "$FIXTURES/tiny.txt"; done > corpus.txt
    llm-tokenize encode -m "$tok" --bos --eos --output-format bin -o corpus.tok corpus.txt
    # (1) The tiny preset at context 128, 4 micro-batches of 8 per step.
    run="-m $tok --preset tiny --context 128 --batch 8 --batch-tokens 4096 --steps 12 --warmup 2 --threads 1 -q"
    llm-train $run --log one.log -o one.llm corpus.tok
    mpirun --oversubscribe -np 2 llm-train $run --log two.log -o two.llm corpus.tok
    # What the machine gives two processes at once, each training alone: the
    # ceiling for 2 ranks here (two vCPUs need not be two cores' worth).
    llm-train $run --log c1.log -o c1.llm corpus.tok & llm-train $run --log c2.log -o c2.llm corpus.tok
    wait
    t1=$(last one.log tokens_per_s) t2=$(last two.log tokens_per_s)
    tc=$(awk -v a="$(last c1.log tokens_per_s)" -v b="$(last c2.log tokens_per_s)" 'BEGIN { print a + b }')
    ar=$(awk -F'"allreduce_s":' 'NF > 1 { s += $2 + 0; n++ } END { if (n) printf "%.4f", s / n }' two.log)
    np=$(params one.llm)
    awk -v a="$t1" -v b="$t2" -v c="$tc" -v r="$ar" -v np="$np" 'BEGIN {
        printf "training, preset tiny at context 128 (%.2fM parameters), 1 thread per process:\n", np / 1e6;
        printf "  1 process:             %8.0f tokens/s\n", a;
        printf "  2 ranks:               %8.0f tokens/s  speed-up %.2fx, efficiency %.0f%%\n", b, b / a, 50 * b / a;
        printf "  2 lone processes, sum: %8.0f tokens/s  (the machine: 2 ranks reach %.0f%% of it)\n", c, 100 * b / c;
        printf "  all-reduce: %.1f ms per step (waiting for the slower rank included)\n", 1000 * r }'
    # (2) A 15.1M-parameter gradient: short steps, all-reduce time.
    big="-m $tok --preset small --layers 15 --context 32 --batch 1 --batch-tokens 64 --steps 6 --warmup 1 --threads 1 -q"
    mpirun --oversubscribe -np 2 llm-train $big --log big.log -o big.llm corpus.tok
    n=$(params big.llm)
    awk -F'"allreduce_s":' -v n="$n" 'NF > 1 && ++k > 1 { s += $2 + 0; m++ }
        END { printf "all-reduce of %d floats (%.1f MB; stories15M has 15.2M) between 2 ranks " \
              "on this machine: %.1f ms per step (mean of %d steps after the first)\n",
              n, n * 4 / 1e6, 1000 * s / m, m }' big.log
fi

# (3) Memory of concurrent classifiers over one mapped model file.
awk -v n=300 -v seed=1 -f "$FIXTURES/labelled.awk" > train.tsv
cut -f2 train.tsv | head -n 60 > in.txt
llm-train --task classify -m "$tok" --preset small --layers 15 --steps 0 -q -o cls.llm train.tsv
size=$(wc -c < cls.llm)
mem() { # pids...: sums of RSS, PSS and anonymous memory, in MiB
    for p in "$@"; do
        awk '/^Rss:/ { r = $2 } /^Pss:/ { s = $2 } /^Anonymous:/ { v = $2 }
             END { print r, s, v }' "/proc/$p/smaps_rollup"
    done | awk '{ r += $1; s += $2; v += $3 } END { printf "%7.1f %7.1f %9.1f", r / 1024, s / 1024, v / 1024 }'
}
measure() { # count
    pids=""
    for i in $(seq "$1"); do
        # Each labels the input, then waits on its open standard input.
        (cat in.txt; sleep 8) | llm-classify -q -t 1 -b 4 -m cls.llm > /dev/null &
        pids="$pids $!"
    done
    sleep 6
    # shellcheck disable=SC2086
    printf "%d process%s  %s\n" "$1" "$([ "$1" = 1 ] && echo "  " || echo es)" "$(mem $pids)"
    wait
}
echo "memory of llm-classify over a $(awk -v s="$size" 'BEGIN { printf "%.1f", s / 1048576 }') MiB model file (MiB, summed over the processes):"
echo "               RSS     PSS anonymous"
measure 1
measure 4
