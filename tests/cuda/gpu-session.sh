#!/bin/sh
# gpu-session.sh: the GPU checks, in one call on a machine with an NVIDIA GPU
# (the device tool's H200), in under 8 minutes:
#   1. build the CUDA kernel test (CUDA=1 WERROR=1), and the programs and
#      benchmarks (CUDA=1) beside it;
#   2. make check-cuda: every CUDA kernel against the reference (flash
#      attention's forward, saved log-sum-exps and backward among them,
#      counted apart in the summary);
#   3. end to end with the real programs, GPU against CPU: 50 training
#      steps (loss curves within 1e-3; in bf16 mixed precision within
#      1e-2), greedy generation of 64 tokens
#      (identical), classification labels (identical), a checkpoint saved
#      on the GPU and resumed on the CPU, models read on either device;
#      30 steps of --task pairs (packed documents: flash attention's
#      document masks) within 1e-3;
#   4. benchmarks: cuBLAS's fp32 and bf16 peaks, training tokens/s and MFU
#      (fp32 and bf16, each against its peak) of the stories15M shape and of
#      the GPT-2-124M-like one (12 x 768, 12 heads, context 1024, vocabulary
#      50304, batch 16), generation tokens/s at batch 1 and 64;
#   5. compute-sanitizer memcheck on the kernel test's small shapes and on a
#      short training run, with the time left;
#   6. several GPUs (make MPI=1 CUDA=1: NCCL): 2 ranks against 1 process,
#      only where the machine has 2 GPUs or more and Open MPI; on the one-GPU
#      H200 it says so and is untested (NCCL needs one GPU per rank).
# Every step has a timeout and is skipped when the time left is too short.
#
#   sh tests/cuda/gpu-session.sh          (device tool: timeout_s 540)
#
# $OUT (the device tool's output folder; ./gpu-logs elsewhere) gets
# summary.txt, written as the steps go, and logs.tar.gz: env.log,
# build*.log, check-cuda.log, e2e-*.txt and e2e/, bench-*.log,
# memcheck*.log. Exit 0 only when every check ran and passed on a GPU;
# without one it says "no GPU" and exits 1.
set -u
cd "$(dirname "$0")/../.." || exit 1
TOP=$PWD
OUT=${OUT:-$TOP/gpu-logs}
B=${B:-build-cuda}
# The logs and the end-to-end files are made in W; $OUT gets summary.txt
# and logs.tar.gz (the logs without the models), packed after each section
# (the device tool brings back 8 files of $OUT at most).
W=$TOP/$B-session
rm -rf "$W"
mkdir -p "$OUT" "$W" || exit 1
pack() { tar -czf "$OUT/logs.tar.gz" -C "$W" --exclude='*.llm' --exclude='*.ckpt' . 2>/dev/null; }
CUDA_HOME=${CUDA_HOME:-/usr/local/cuda}
PATH=$PATH:$CUDA_HOME/bin
export PATH
J=$(nproc 2>/dev/null || echo 8)
BUDGET=${BUDGET:-450}   # seconds for the whole; steps are skipped past it
T0=$(date +%s)
elapsed() { echo $(($(date +%s) - T0)); }
left() { echo $((BUDGET - $(date +%s) + T0)); }
note() { echo "$*" | tee -a "$OUT/summary.txt"; }
status=0
bad() { note "$*"; status=1; }
# fits SECONDS: the step's timeout, when at least that much time is left.
fits() { [ "$(left)" -ge "$1" ]; }
: > "$OUT/summary.txt"

{
    date -u; uname -a; nvidia-smi; nvcc --version
    cc --version | head -n 1; command -v make || echo "make: not installed"
    command -v compute-sanitizer || echo "compute-sanitizer: not installed"
    git log -1 --oneline 2>/dev/null
} > "$W/env.log" 2>&1
note "device: $(nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader 2>/dev/null || echo 'no nvidia-smi')"

# Libraries: the programs need SentencePiece, OpenBLAS (its OpenMP build),
# PCRE2 and utf8proc, as `make check` installs them. A GPU image without
# them (nothing can be fetched there) is given their Debian packages in
# DEPS (default build-gpu-deps/: the device tool carries it when named in
# carry; ignored by git). Made here on Debian 12, glibc 2.36, with
#   mkdir -p build-gpu-deps && cd build-gpu-deps && apt-get download \
#     libsentencepiece0 libsentencepiece-dev libopenblas0-openmp \
#     libopenblas-openmp-dev libgfortran5 libquadmath0 libutf8proc2 \
#     libutf8proc-dev libpcre2-dev libpcre2-8-0        (14 MB)
# They are unpacked under /tmp/llm-deps and found through CPATH,
# LIBRARY_PATH and LD_LIBRARY_PATH.
DEPS=${DEPS:-$TOP/build-gpu-deps}
if ls "$DEPS"/*.deb >/dev/null 2>&1; then
    R=/tmp/llm-deps
    A=$(gcc -print-multiarch 2>/dev/null || echo x86_64-linux-gnu)
    mkdir -p "$R" && for f in "$DEPS"/*.deb; do dpkg -x "$f" "$R"; done
    CPATH="$R/usr/include:$R/usr/include/$A:$R/usr/include/$A/openblas-openmp${CPATH:+:$CPATH}"
    LIBRARY_PATH="$R/usr/lib/$A:$R/usr/lib/$A/openblas-openmp${LIBRARY_PATH:+:$LIBRARY_PATH}"
    LD_LIBRARY_PATH="$LIBRARY_PATH${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
    export CPATH LIBRARY_PATH LD_LIBRARY_PATH
    note "libraries: $(ls "$DEPS"/*.deb | wc -l) packages unpacked from $DEPS"
fi

# ---------------------------------------------------------------- 1. build
# The kernel test links the reference and CUDA kernels only (nvcc, cc,
# cuBLAS), so it builds even where OpenBLAS or SentencePiece are missing.
TEST=$B/tests/cuda/test_cuda_kernels
if ! command -v make >/dev/null 2>&1; then
    bad "build: make is not installed"
    note "total: $(elapsed) s; status $status"
    pack
    exit 1
fi
timeout 150 make B="$B" CUDA=1 WERROR=1 -j"$J" "$TEST" > "$W/build.log" 2>&1
rc=$?
if [ $rc -ne 0 ]; then
    bad "build: FAIL (exit $rc), see build.log"
    tail -n 30 "$W/build.log"
    note "total: $(elapsed) s; status $status"
    pack
    exit 1
fi
note "build (kernel test): ok ($(elapsed) s)"

# The programs and benchmarks build while the kernel test runs (without
# WERROR: another compiler's new warnings must not cost the GPU run).
PROGS="$B/bin/llm-train $B/bin/llm-generate $B/bin/llm-classify $B/bin/llm-eval"
BENCH="$B/bench/train_speed $B/bench/generate_speed $B/tests/cuda/gemm_peak"
timeout 240 make B="$B" CUDA=1 -j"$J" $PROGS $BENCH > "$W/build-all.log" 2>&1 &
build_pid=$!

# ---------------------------------------------------------------- 2. kernels
timeout 150 "$TEST" > "$W/check-cuda.log" 2>&1
rc=$?
if [ $rc -eq 77 ] || grep -q "no CUDA device" "$W/check-cuda.log"; then
    wait $build_pid
    bad "no GPU: the kernel test saw no CUDA device: $(head -n 1 "$W/check-cuda.log")"
    note "total: $(elapsed) s; status $status (nothing ran on a GPU)"
    pack
    exit 1
elif [ $rc -ne 0 ] || ! grep -q ' 0 failed$' "$W/check-cuda.log"; then
    bad "check-cuda: FAIL (exit $rc): $(tail -n 1 "$W/check-cuda.log")"
    grep '^FAIL' "$W/check-cuda.log" | head -n 40 | tee -a "$OUT/summary.txt"
else
    note "check-cuda: $(tail -n 1 "$W/check-cuda.log") ($(elapsed) s)"
fi
# Flash attention's share of the kernel test (attention_rows, the decoding
# kernel, counted apart).
att() { grep -E "^$1 .*attention_(forward|backward|saved)" "$W/check-cuda.log" | grep -vc attention_rows; }
note "flash attention (kernel test): $(att PASS) checks passed, $(att FAIL) failed (forward, saved log-sum-exps, backward against the reference; odd T, GQA, packed documents, hd 2 to 256; determinism)"

wait $build_pid
rc=$?
if [ $rc -ne 0 ]; then
    bad "build (programs, benchmarks): FAIL (exit $rc): $(grep -m1 -E 'error|Error' "$W/build-all.log")"
    note "total: $(elapsed) s; status $status"
    pack
    exit $status
fi
note "build (programs, benchmarks): ok ($(elapsed) s)"
pack

# ---------------------------------------------------------------- 3. end to end
# The fixtures of tests/sh/train.sh and classify.sh; every program from
# this build, with a timeout each. GPU and CPU runs share every option but
# --device.
E=$W/e2e
mkdir -p "$E"
BIN=$TOP/$B/bin
FIX=$TOP/tests/fixtures
tok=$FIX/tiny.model
txt=$FIX/tiny.txt
shape="--layers 2 --dim 64 --heads 4 --kv-heads 2 --ffn-dim 128 --context 128 --batch 8"
train="-m $tok $shape --lr 3e-3 --warmup 5 --seed 5 --threads $J -q"
run() { # timeout name command...: runs it, its stderr into $E/name.err
    run_t=$1 run_n=$2
    shift 2
    timeout "$run_t" "$@" 2> "$E/$run_n.err"
}
# step<TAB>loss of a --log file
losses() { sed -n 's/.*"step":\([0-9]*\),"loss":\([-0-9.eE+naif]*\).*/\1\t\2/p' "$1"; }
# max |a - b| over the joined columns of two step<TAB>value files, or "none"
maxdiff() {
    join -t "$(printf '\t')" "$1" "$2" |
        awk -F'\t' '{ d = $2 - $3; d = d < 0 ? -d : d; if (d > m || d != d) m = d; n++ }
                    END { if (n) printf "%.3g %d\n", m, n; else print "none 0" }'
}

if fits 120; then
    # a. 50 training steps, GPU and CPU.
    run 90 train-cuda "$BIN/llm-train" $train --steps 50 --device cuda --log "$E/cuda.jsonl" \
        -o "$E/cuda.llm" "$txt"
    rc_g=$?
    run 90 train-cpu "$BIN/llm-train" $train --steps 50 --device cpu --log "$E/cpu.jsonl" \
        -o "$E/cpu.llm" "$txt"
    rc_c=$?
    if [ $rc_g -ne 0 ] || [ $rc_c -ne 0 ]; then
        bad "e2e train: FAIL (exit cuda $rc_g, cpu $rc_c): $(tail -n 2 "$E/train-cuda.err" "$E/train-cpu.err" | tr '\n' ' ')"
    else
        losses "$E/cuda.jsonl" | sort -k1,1 > "$E/cuda.loss"
        losses "$E/cpu.jsonl" | sort -k1,1 > "$E/cpu.loss"
        set -- $(maxdiff "$E/cuda.loss" "$E/cpu.loss")
        { echo "step  loss(cuda)  loss(cpu)"
          join -t "$(printf '\t')" "$E/cuda.loss" "$E/cpu.loss" | sort -n |
              awk -F'\t' '{ printf "%4d  %.6f  %.6f\n", $1, $2, $3 }'; } > "$W/e2e-loss.txt"
        if [ "$2" -eq 50 ] && awk -v d="$1" 'BEGIN { exit !(d <= 1e-3) }'; then
            note "e2e train: 50 steps, loss curves within $1 of each other (limit 1e-3)"
        else
            bad "e2e train: FAIL: $2 steps compared, max |cuda - cpu| loss $1 (limit 1e-3)"
        fi
        awk 'NR <= 2 || (NR - 1) % 5 == 0' "$W/e2e-loss.txt" | tee -a "$OUT/summary.txt"
    fi
else
    bad "e2e train: not run (no time left)"
fi

if fits 90; then
    # a'. The same 50 steps in bf16 mixed precision (--precision bf16), GPU
    # and CPU: both round the same inputs to bf16 and sum in fp32, in other
    # orders, and an input near a rounding boundary may round the other
    # way: a stated tolerance of 1e-2 at every step (fp32's is 1e-3). And
    # bf16 is not fp32 (its curve differs from fp32's on the GPU).
    for d in cuda cpu; do
        run 90 "train-bf16-$d" "$BIN/llm-train" $train --steps 50 --precision bf16 --device $d \
            --log "$E/bf16-$d.jsonl" -o "$E/bf16-$d.llm" "$txt" ||
            bad "e2e train bf16 ($d): FAIL (exit $?): $(tail -n 1 "$E/train-bf16-$d.err")"
        losses "$E/bf16-$d.jsonl" | sort -k1,1 > "$E/bf16-$d.loss"
    done
    set -- $(maxdiff "$E/bf16-cuda.loss" "$E/bf16-cpu.loss")
    { echo "step  bf16(cuda)  bf16(cpu)"
      join -t "$(printf '\t')" "$E/bf16-cuda.loss" "$E/bf16-cpu.loss" | sort -n |
          awk -F'\t' '{ printf "%4d  %.6f  %.6f\n", $1, $2, $3 }'; } > "$W/e2e-loss-bf16.txt"
    if [ "$2" -eq 50 ] && awk -v d="$1" 'BEGIN { exit !(d <= 1e-2) }'; then
        note "e2e train bf16: 50 steps, GPU and CPU curves within $1 (limit 1e-2)"
    else
        bad "e2e train bf16: FAIL: $2 steps compared, max |cuda - cpu| loss $1 (limit 1e-2)"
    fi
    awk 'NR <= 2 || (NR - 1) % 10 == 0' "$W/e2e-loss-bf16.txt" | tee -a "$OUT/summary.txt"
    if [ -s "$E/cuda.loss" ]; then
        set -- $(maxdiff "$E/bf16-cuda.loss" "$E/cuda.loss")
        if [ "$2" -eq 50 ] && awk -v d="$1" 'BEGIN { exit !(d > 0 && d <= 0.25) }'; then
            note "e2e train bf16 against fp32 on the GPU: max |d| $1 (bf16, not fp32; limit 0.25 as tests/sh/bf16.sh)"
        else
            bad "e2e train bf16 against fp32 on the GPU: FAIL: max |d| $1 over $2 steps (want > 0, <= 0.25)"
        fi
    fi
else
    bad "e2e train bf16: not run (no time left)"
fi

if fits 60; then
    # a''. Packed documents: --task pairs puts several input -> output
    # pairs in each row, each seeing only itself (flash attention's
    # document masks, in the forward and the backward): 30 steps, GPU and
    # CPU, loss curves within 1e-3.
    awk 'BEGIN { srand(7); split("red green blue cat dog sun moon tree", w, " ");
                 for (i = 0; i < 800; i++) { n = 2 + int(rand() * 4); s = "";
                     for (j = 0; j < n; j++) s = s (j ? " " : "") w[1 + int(rand() * 8)];
                     print s "\t" s } }' > "$E/pairs.tsv"
    pairs="--task pairs -m $tok --layers 2 --dim 64 --heads 4 --kv-heads 2 --ffn-dim 128 --context 64 --batch 8 --lr 3e-3 --warmup 5 --steps 30 --seed 3 --threads $J -q"
    for d in cuda cpu; do
        run 60 "pairs-$d" "$BIN/llm-train" $pairs --device $d --log "$E/pairs-$d.jsonl" \
            -o "$E/pairs-$d.llm" "$E/pairs.tsv" ||
            bad "e2e pairs ($d): FAIL (exit $?): $(tail -n 1 "$E/pairs-$d.err")"
        losses "$E/pairs-$d.jsonl" | sort -k1,1 > "$E/pairs-$d.loss"
    done
    set -- $(maxdiff "$E/pairs-cuda.loss" "$E/pairs-cpu.loss")
    if [ "$2" -eq 30 ] && awk -v d="$1" 'BEGIN { exit !(d <= 1e-3) }'; then
        note "e2e pairs (packed documents): 30 steps, loss curves within $1 (limit 1e-3)"
    else
        bad "e2e pairs (packed documents): FAIL: $2 steps compared, max |cuda - cpu| loss $1 (limit 1e-3)"
    fi
else
    bad "e2e pairs: not run (no time left)"
fi

if [ -s "$E/cpu.llm" ] && [ -s "$E/cuda.llm" ] && fits 90; then
    # b. Greedy generation, 64 tokens of 4 prompts, GPU and CPU, from a
    # model trained longer on the CPU (as tests/fixtures/gen.llm was: 50
    # steps mostly repeat one piece) and from the GPU's 50-step model; in
    # fp32 and from half-precision weights; one prompt at a time on the GPU
    # too (batch invariance).
    run 60 train-gen "$BIN/llm-train" $train --steps 300 --device cpu -o "$E/gen.llm" "$txt" ||
        bad "e2e generate: FAIL: training its model (e2e/train-gen.err)"
    printf 'The pump\nPayment of the invoice\nLe patient\nThe\n' > "$E/prompts.txt"
    gen="--temperature 0 -n 64 --threads $J"
    for m in gen cuda; do
        for p in f32 f16; do
            ok=1
            for d in cpu cuda; do
                run 60 "gen-$m-$p-$d" "$BIN/llm-generate" -m "$E/$m.llm" $gen --precision $p \
                    --device $d "$E/prompts.txt" > "$E/gen-$m-$p-$d.txt" || ok=0
            done
            if [ $ok -eq 1 ] && [ -s "$E/gen-$m-$p-cpu.txt" ] &&
               cmp -s "$E/gen-$m-$p-cpu.txt" "$E/gen-$m-$p-cuda.txt"; then
                note "e2e generate ($m.llm, $p): identical on GPU and CPU ($(wc -w < "$E/gen-$m-$p-cpu.txt") words)"
            else
                bad "e2e generate ($m.llm, $p): FAIL: GPU and CPU differ or failed (e2e/gen-$m-$p-*)"
            fi
        done
    done
    if run 60 gen-batch1 "$BIN/llm-generate" -m "$E/gen.llm" $gen --batch 1 --device cuda \
           "$E/prompts.txt" > "$E/gen-gen-f32-cuda-b1.txt" &&
       [ -s "$E/gen-gen-f32-cuda-b1.txt" ] &&
       cmp -s "$E/gen-gen-f32-cuda.txt" "$E/gen-gen-f32-cuda-b1.txt"; then
        note "e2e generate: --batch 1 on the GPU gives the same text as the default batch"
    else
        bad "e2e generate: FAIL: --batch 1 on the GPU differs from the default batch"
    fi
    head -n 2 "$E/gen-gen-f32-cuda.txt" | cut -c1-160 | sed 's/^/    /' | tee -a "$OUT/summary.txt"

    # Models read on either device: the evaluation loss of each model on
    # the GPU and on the CPU.
    for m in cpu cuda; do
        for d in cpu cuda; do
            run 60 "eval-$m-$d" "$BIN/llm-eval" -m "$E/$m.llm" --device $d --threads $J "$txt" |
                sed -n 's/^loss  *\([0-9.]*\).*/\1/p' > "$E/eval-$m-$d.txt"
        done
        a=$(cat "$E/eval-$m-cpu.txt") g=$(cat "$E/eval-$m-cuda.txt")
        if [ -n "$a" ] && [ -n "$g" ] && awk -v a="$a" -v g="$g" 'BEGIN { d = a - g; exit !(d < 1e-3 && d > -1e-3) }'; then
            note "e2e eval ($m-trained model): loss $g on the GPU, $a on the CPU"
        else
            bad "e2e eval ($m-trained model): FAIL: loss '$g' on the GPU, '$a' on the CPU"
        fi
    done
else
    bad "e2e generate, eval: not run (no models, or no time left)"
fi

if fits 90; then
    # c. A classifier (trained on the CPU, as tests/sh/classify.sh does):
    # the same labels on the GPU, probabilities within 1e-4; and one
    # trained on the GPU labels alike on the CPU.
    awk -v n=400 -v seed=1 -f "$FIX/labelled.awk" > "$E/train.tsv"
    awk -v n=200 -v seed=9 -f "$FIX/labelled.awk" > "$E/test.tsv"
    cut -f2 "$E/test.tsv" > "$E/test.txt"
    cls="--task classify -m $tok --layers 1 --dim 32 --heads 2 --ffn-dim 64 --context 32 --batch 16 --lr 3e-3 --warmup 5 --steps 40 --seed 3 --threads $J -q"
    for t in cpu cuda; do
        run 60 "cls-train-$t" "$BIN/llm-train" $cls --device $t -o "$E/cls-$t.llm" "$E/train.tsv"
        for d in cpu cuda; do
            run 60 "cls-$t-$d" "$BIN/llm-classify" -q -m "$E/cls-$t.llm" --device $d -t "$J" \
                "$E/test.txt" > "$E/cls-$t-$d.tsv"
        done
        cut -f1 "$E/cls-$t-cpu.tsv" > "$E/cls-$t-cpu.labels"
        cut -f1 "$E/cls-$t-cuda.tsv" > "$E/cls-$t-cuda.labels"
        n=$(wc -l < "$E/cls-$t-cpu.labels")
        if [ "$n" -eq 200 ] && cmp -s "$E/cls-$t-cpu.labels" "$E/cls-$t-cuda.labels"; then
            dp=$(paste "$E/cls-$t-cpu.tsv" "$E/cls-$t-cuda.tsv" |
                 awk -F'\t' '{ d = $2 - $4; d = d < 0 ? -d : d; if (d > m) m = d } END { printf "%.2g", m }')
            acc=$(cut -f1 "$E/cls-$t-cuda.tsv" | paste - "$E/test.tsv" | awk -F'\t' '{ n++; c += $1 == $2 } END { print c / n }')
            note "e2e classify ($t-trained): 200 labels identical on GPU and CPU (accuracy $acc, max |dp| $dp)"
        else
            bad "e2e classify ($t-trained): FAIL: labels differ or missing ($n lines; e2e/cls-$t-*.tsv)"
        fi
    done
else
    bad "e2e classify: not run (no time left)"
fi

if fits 90; then
    # d. A checkpoint saved on the GPU at step 10 of 20 and resumed on the
    # CPU: the losses of steps 11-20 follow a straight GPU run's within
    # 1e-3, and the resulting model reads on both.
    run 60 ckpt-straight "$BIN/llm-train" $train --steps 20 --device cuda --log "$E/ck-straight.jsonl" \
        -o "$E/ck-straight.llm" "$txt"
    run 60 ckpt-first "$BIN/llm-train" $train --steps 20 --until 10 --device cuda -o "$E/ck.llm" "$txt"
    run 60 ckpt-resume "$BIN/llm-train" --resume "$E/ck.llm.ckpt" --device cpu --threads "$J" \
        -q --log "$E/ck-resumed.jsonl" -o "$E/ck.llm"
    rc=$?
    losses "$E/ck-straight.jsonl" | sort -k1,1 > "$E/ck-straight.loss"
    losses "$E/ck-resumed.jsonl" 2>/dev/null | sort -k1,1 > "$E/ck-resumed.loss"
    set -- $(maxdiff "$E/ck-straight.loss" "$E/ck-resumed.loss")
    if [ $rc -eq 0 ] && [ "$2" -eq 10 ] && awk -v d="$1" 'BEGIN { exit !(d <= 1e-3) }'; then
        note "e2e checkpoint: saved on the GPU at step 10, resumed on the CPU: steps 11-20 within $1 of the GPU's"
    else
        bad "e2e checkpoint: FAIL (resume exit $rc; $2 steps compared, max |d| $1): $(tail -n 1 "$E/ckpt-resume.err")"
    fi
else
    bad "e2e checkpoint: not run (no time left)"
fi
note "end to end done ($(elapsed) s)"
pack

# ---------------------------------------------------------------- 4. benchmarks
# Figures only: they never fail the run.
fp32=0 bf16=0
if fits 30; then
    timeout 30 "$B/tests/cuda/gemm_peak" > "$W/bench-gemm.log" 2>&1
    fp32=$(sed -n 's/^fp32 //p' "$W/bench-gemm.log")
    bf16=$(sed -n 's/^bf16 //p' "$W/bench-gemm.log")
    note "bench: cuBLAS peaks ${fp32:-?} TFLOP/s fp32 (no TF32), ${bf16:-?} TFLOP/s bf16"
fi
# Training: each shape in fp32 (MFU against cuBLAS's fp32 peak) and in
# bf16 (against its bf16 peak: the issue's bar is 45% on the 124M shape).
for spec in "small 32000 256 5 60 stories15M shape (6 x 288, vocab 32000, context 256)" \
            "large 50304 1024 3 100 GPT-2-124M-like shape (12 x 768, vocab 50304, context 1024)"; do
    set -- $spec
    preset=$1 vocab=$2 ctx=$3 steps=$4 limit=$5
    shift 5
    for prec in f32 bf16; do
        peak=$fp32
        [ $prec = bf16 ] && peak=$bf16
        log=$W/bench-train-$preset-$prec.log
        if fits "$limit"; then
            timeout "$limit" "$B/bench/train_speed" --device cuda --preset "$preset" \
                --vocab "$vocab" --context "$ctx" --batch 16 --steps "$steps" --threads 1 \
                --precision $prec --peak "$(awk -v t="${peak:-0}" 'BEGIN { print t * 1000 }')" \
                > "$log" 2>&1
            if grep -q 'tokens/s' "$log"; then
                note "bench train $*, $prec (MFU against the $prec peak): $(grep 'tokens/s' "$log" | sed 's/^ *//')"
            else
                note "bench train $*, $prec: no figures ($(tail -n 1 "$log"))"
            fi
        else
            note "bench train $*, $prec: not run (no time left)"
        fi
    done
done
for g in "small 32000" "large 50304"; do
    set -- $g
    if fits 60; then
        timeout 60 "$B/bench/generate_speed" --device cuda --preset "$1" --vocab "$2" \
            --batch 1,64 --threads "$J" --tokens 128 --precision f32,f16 \
            > "$W/bench-generate-$1.log" 2>&1
        grep 'tokens/s' "$W/bench-generate-$1.log" | while read -r line; do
            note "bench generate $1 (vocab $2): $line"
        done
        grep -q 'tokens/s' "$W/bench-generate-$1.log" ||
            note "bench generate $1: no figures ($(tail -n 1 "$W/bench-generate-$1.log"))"
    fi
done

pack

# ---------------------------------------------------------------- 5. memcheck
if command -v compute-sanitizer >/dev/null 2>&1 && fits 100; then
    LLM_TEST_QUICK=1 timeout 60 compute-sanitizer --tool memcheck --error-exitcode 99 \
        "$TEST" > "$W/memcheck.log" 2>&1
    rc=$?
    case $rc in
    0) note "memcheck (kernel test, quick shapes): clean";;
    99) bad "memcheck (kernel test, quick shapes): ERRORS, see memcheck.log";;
    *) note "memcheck (kernel test, quick shapes): did not finish (exit $rc), see memcheck.log";;
    esac
    timeout 45 compute-sanitizer --tool memcheck --error-exitcode 99 "$BIN/llm-train" $train \
        --steps 3 --device cuda -o "$E/memcheck.llm" "$txt" > "$W/memcheck-train.log" 2>&1
    rc=$?
    case $rc in
    0) note "memcheck (3 training steps): clean";;
    99) bad "memcheck (3 training steps): ERRORS, see memcheck-train.log";;
    *) note "memcheck (3 training steps): did not finish (exit $rc), see memcheck-train.log";;
    esac
else
    note "memcheck: not run (no compute-sanitizer, or no time left)"
fi

# ---------------------------------------------------------------- 6. several GPUs
# make MPI=1 CUDA=1: one rank per GPU, gradients summed over NCCL. 2 ranks
# of 1 micro-batch each against 1 process of 2 (--batch-tokens): loss
# curves within 1e-3 (another order of the sums). A one-GPU machine cannot
# run it: llm-train refuses more ranks than GPUs (NCCL wants one GPU per
# rank), so it stays untested there.
ngpu=$(nvidia-smi -L 2>/dev/null | grep -c '^GPU')
if [ "$ngpu" -lt 2 ]; then
    note "mpi+nccl: not run: $ngpu GPU on this machine, and NCCL needs one per rank: untested"
elif ! command -v mpirun >/dev/null 2>&1 || ! command -v mpicc >/dev/null 2>&1; then
    note "mpi+nccl: not run: no Open MPI (mpirun, mpicc) on this machine: untested"
elif fits 150; then
    if timeout 120 make B="$B-mpi" MPI=1 CUDA=1 -j"$J" "$B-mpi/bin/llm-train" > "$W/build-mpi.log" 2>&1; then
        OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
        export OMPI_ALLOW_RUN_AS_ROOT OMPI_ALLOW_RUN_AS_ROOT_CONFIRM
        # not quiet: rank 0 says that NCCL sums the gradients
        nccl="$(echo "$train" | sed 's/ -q$//') --steps 20 --batch-tokens 2048 --device cuda"
        run 60 nccl-1 "$BIN/llm-train" $nccl --log "$E/nccl-1.jsonl" -o "$E/nccl-1.llm" "$txt"
        run 60 nccl-2 mpirun -np 2 "$TOP/$B-mpi/bin/llm-train" $nccl --log "$E/nccl-2.jsonl" \
            -o "$E/nccl-2.llm" "$txt"
        losses "$E/nccl-1.jsonl" | sort -k1,1 > "$E/nccl-1.loss"
        losses "$E/nccl-2.jsonl" | sort -k1,1 > "$E/nccl-2.loss"
        set -- $(maxdiff "$E/nccl-1.loss" "$E/nccl-2.loss")
        if [ "$2" -eq 20 ] && awk -v d="$1" 'BEGIN { exit !(d <= 1e-3) }' &&
           grep -q 'over NCCL' "$E/nccl-2.err"; then
            note "mpi+nccl: 2 ranks on 2 GPUs against 1 process: 20 steps within $1 (limit 1e-3)"
        else
            bad "mpi+nccl: FAIL: $2 steps compared, max |d| $1 (e2e/nccl-2.err: $(tail -n 1 "$E/nccl-2.err"))"
        fi
    else
        bad "mpi+nccl: build FAIL (make MPI=1 CUDA=1), see build-mpi.log"
    fi
else
    note "mpi+nccl: not run (no time left)"
fi

note "total: $(elapsed) s; status $status"
pack
exit $status
