#!/bin/sh
# train_speed.sh: training tokens/s and MFU of the stories15M shape (vocab
# 4096, context 256) at batch 8 and 32 on 1 and 2 threads, and beside it, when
# a Python with PyTorch is installed, the same model in PyTorch eager (fp32,
# AdamW, same batch and threads: tests/bench/pytorch_train.py), with the ratio.
set -u
prog=$TOP/$B/bench/train_speed
[ -x "$prog" ] || { echo "train_speed: $prog not built"; exit 1; }
"$prog" --preset small --vocab 4096 --context 256 --batch 8,32 --threads 1,2 --steps 4 | tee ours.txt

py=""
for p in /usr/bin/python3 python3; do
    if command -v "$p" >/dev/null 2>&1 && "$p" -c 'import torch' 2>/dev/null; then py=$p; break; fi
done
if [ -z "$py" ]; then
    echo "PyTorch: not installed (apt-get install python3-torch), no comparison"
    exit 0
fi
echo
echo "side by side (tokens/s, same model, batch and threads):"
printf '%-8s %-6s %10s %10s %7s\n' threads batch llm pytorch ratio
awk '/^threads/ { t = $2; sub(":", "", t) } /batch/ { b = $2; sub(":", "", b); print t, b, $3 }' ours.txt |
while read -r t b ours; do
    theirs=$("$py" "$TOP/tests/bench/pytorch_train.py" --batch "$b" --threads "$t" --steps 4 2>/dev/null </dev/null |
             sed 's/.*"tokens_per_s": *\([0-9.]*\).*/\1/')
    [ -n "$theirs" ] || theirs=0
    awk -v t="$t" -v b="$b" -v o="$ours" -v p="$theirs" \
        'BEGIN { printf "%-8s %-6s %10.0f %10.0f %6.2fx\n", t, b, o, p, (p > 0 ? o / p : 0) }'
done
