#!/bin/sh
# gpu-session.sh: the GPU checks, in one call on a machine with an NVIDIA GPU
# (the device tool's H200): build the CUDA kernels and their test with
# CUDA=1, run `make check-cuda`, then (if time allows) the quick shapes
# under compute-sanitizer and the full CUDA=1 build. About 2-3 minutes;
# every step has a timeout, the whole stays under ~4.5 minutes.
#
#   sh tests/cuda/gpu-session.sh          (device tool: timeout_s 420)
#
# Logs go to $OUT (the device tool's output folder; ./gpu-logs elsewhere):
# summary.txt, env.log, build.log, check-cuda.log, memcheck.log, build-all.log.
# Exit 0 only when every kernel check passed on a GPU; a skip ("no CUDA
# device") counts as a failure here.
set -u
cd "$(dirname "$0")/../.." || exit 1
OUT=${OUT:-$PWD/gpu-logs}
mkdir -p "$OUT" || exit 1
B=${B:-build-cuda}
CUDA_HOME=${CUDA_HOME:-/usr/local/cuda}
PATH=$PATH:$CUDA_HOME/bin
export PATH
J=$(nproc 2>/dev/null || echo 8)
T0=$(date +%s)
elapsed() { echo $(($(date +%s) - T0)); }
note() { echo "$*" | tee -a "$OUT/summary.txt"; }
: > "$OUT/summary.txt"

{
    date -u; uname -a; nvidia-smi; nvcc --version
    cc --version | head -n 1; command -v make || echo "make: not installed"
    git log -1 --oneline 2>/dev/null
} > "$OUT/env.log" 2>&1
note "device: $(nvidia-smi --query-gpu=name,driver_version --format=csv,noheader 2>/dev/null || echo '?')"

# 1. The kernel test links the reference and CUDA kernels only (nvcc, cc,
# cuBLAS), so it builds even where OpenBLAS or SentencePiece are missing.
TEST=$B/tests/cuda/test_cuda_kernels
if command -v make >/dev/null 2>&1; then
    timeout 150 make B="$B" CUDA=1 WERROR=1 -j"$J" "$TEST" > "$OUT/build.log" 2>&1
    rc=$?
else   # the same commands as the Makefile's, by hand
    mkdir -p "$B/kernels/cuda" "$B/kernels/cpu" "$B/tests/cuda"
    ( set -x
      timeout 120 nvcc -Ilib -Ikernels -DLLM_CUDA=1 -O3 -std=c++17 \
          -gencode arch=compute_90,code=sm_90 -gencode arch=compute_90,code=compute_90 \
          -Xcompiler -fPIC -c kernels/cuda/cuda.cu -o "$B/kernels/cuda/cuda.o" &&
      cc -std=c11 -O2 -Ilib -Ikernels -DLLM_CUDA=1 -c kernels/cpu/ref.c -o "$B/kernels/cpu/ref.o" &&
      cc -std=c11 -O2 -Ilib -Ikernels -DLLM_CUDA=1 -c tests/cuda/test_cuda_kernels.c \
          -o "$B/tests/cuda/test_cuda_kernels.o" &&
      c++ -o "$TEST" "$B/tests/cuda/test_cuda_kernels.o" "$B/kernels/cpu/ref.o" \
          "$B/kernels/cuda/cuda.o" -L"$CUDA_HOME/lib64" -Wl,-rpath,"$CUDA_HOME/lib64" \
          -lcublas -lcublasLt -lcudart -lm
    ) > "$OUT/build.log" 2>&1
    rc=$?
fi
if [ $rc -ne 0 ]; then
    note "build: FAIL (exit $rc), see build.log"
    tail -n 30 "$OUT/build.log"
    exit 1
fi
note "build: ok ($(elapsed) s)"

# 2. make check-cuda: every kernel against the reference.
if command -v make >/dev/null 2>&1; then
    timeout 150 make B="$B" CUDA=1 check-cuda > "$OUT/check-cuda.log" 2>&1
else
    timeout 150 "$TEST" > "$OUT/check-cuda.log" 2>&1
fi
rc=$?
status=0
if grep -q "no CUDA device" "$OUT/check-cuda.log"; then
    note "check-cuda: FAIL, the test saw no GPU: $(grep 'no CUDA device' "$OUT/check-cuda.log")"
    status=1
elif [ $rc -ne 0 ] || ! grep -q ' 0 failed$' "$OUT/check-cuda.log"; then
    note "check-cuda: FAIL (exit $rc): $(tail -n 1 "$OUT/check-cuda.log")"
    grep '^FAIL' "$OUT/check-cuda.log" | head -n 40 | tee -a "$OUT/summary.txt"
    status=1
else
    note "check-cuda: $(tail -n 1 "$OUT/check-cuda.log") ($(elapsed) s)"
fi

# 3. Out-of-bounds accesses and races on the small shapes (optional: the
# tool may be missing or refuse the device).
if [ "$(elapsed)" -lt 170 ] && command -v compute-sanitizer >/dev/null 2>&1; then
    LLM_TEST_QUICK=1 timeout 90 compute-sanitizer --tool memcheck --error-exitcode 99 \
        "$TEST" > "$OUT/memcheck.log" 2>&1
    rc=$?
    case $rc in
    0) note "memcheck (quick shapes): clean";;
    99) note "memcheck (quick shapes): ERRORS, see memcheck.log"; status=1;;
    *) note "memcheck (quick shapes): did not finish (exit $rc), see memcheck.log";;
    esac
else
    note "memcheck: not run (no compute-sanitizer, or no time left)"
fi

# 4. The whole project with CUDA=1 (informative: needs OpenBLAS and
# SentencePiece headers there, which a bare GPU image may lack).
left=$((270 - $(elapsed)))
if [ $left -gt 30 ] && command -v make >/dev/null 2>&1; then
    timeout $left make B="$B" CUDA=1 WERROR=1 -j"$J" all > "$OUT/build-all.log" 2>&1
    rc=$?
    if [ $rc -eq 0 ]; then
        note "make CUDA=1 all: ok"
    else
        note "make CUDA=1 all: failed (exit $rc; informative only): $(grep -m1 -E 'error|Error' "$OUT/build-all.log")"
    fi
else
    note "make CUDA=1 all: not run"
fi

note "total: $(elapsed) s; status $status"
exit $status
