#!/bin/sh
# gguf-reference.sh: lib/format/gguf.c against gguf-py (the pip package gguf) on
# fresh data: the quants fixture regenerated with another seed and compared
# bit for bit by test_gguf --check, and a file written by our writer read
# back by gguf-py's GGUFReader with the same keys, values and tensor bytes.
# Skips (77) without python3, numpy and gguf.
set -eu
PY=${PYTHON:-python3}
command -v "$PY" >/dev/null 2>&1 || { echo "python3 not installed"; exit 77; }
"$PY" -c 'import gguf, numpy' 2>/dev/null ||
    { echo "python3 cannot import gguf and numpy (pip install gguf numpy)"; exit 77; }
T=$TOP/$B/tests/test_gguf
[ -x "$T" ] || { echo "FAIL: $T not built"; exit 1; }

# Two seeds other than the committed fixture's.
for seed in 7 $(date +%s); do
    "$PY" "$TOP/tests/fixtures/make_gguf_quants.py" --seed "$seed" --out fresh.gguf
    "$T" --check fresh.gguf || { echo "FAIL: seed $seed: differs from gguf-py"; exit 1; }
    echo "ok: dequantize/quantize bit-exact with gguf-py, seed $seed"
done

"$T" --write ours.gguf
"$PY" - ours.gguf <<'PYEOF'
import sys
import numpy as np
import gguf
from gguf import GGUFValueType as V, GGMLQuantizationType as Q

# The values test_gguf.c's sample_writer() writes (change both together).
r = gguf.GGUFReader(sys.argv[1])
f32 = lambda x: float(np.float32(x))
want = {
    "general.architecture": (V.STRING, "llama"),
    "general.name": (V.STRING, "tiny \u00fcn\u00efcode"),
    "general.alignment": (V.UINT32, 64),
    "test.u32": (V.UINT32, 4000000000),
    "test.i32": (V.INT32, -123456),
    "test.u64": (V.UINT64, (1 << 40) + 3),
    "test.f32": (V.FLOAT32, f32(0.1)),
    "test.bool_t": (V.BOOL, True),
    "test.bool_f": (V.BOOL, False),
    "test.empty": (V.STRING, ""),
    "tokenizer.ggml.tokens": (V.STRING, ["<unk>", "a", "", "h\u00e9llo", "\u2581the"]),
    "tokenizer.ggml.scores": (V.FLOAT32, [0.0, -1.5, 3.25, f32(-1e30), f32(1e-40)]),
    "tokenizer.ggml.token_type": (V.INT32, [2, 1, 1, -5, 2147483647]),
    "test.empty_arr": (V.INT32, []),
}
bad = 0
def fail(msg):
    global bad
    print("FAIL:", msg)
    bad += 1

keys = [k for k in r.fields if not k.startswith("GGUF.")]
if keys != list(want):
    fail(f"keys {keys}")
for k, (vt, v) in want.items():
    fld = r.fields.get(k)
    if fld is None:
        fail(f"{k} missing")
        continue
    types = [V.ARRAY, vt] if isinstance(v, list) else [vt]
    # GGUFReader leaves an empty array's element type out of .types.
    if list(fld.types) != types and not (v == [] and list(fld.types) == [V.ARRAY]):
        fail(f"{k}: types {fld.types}, want {types}")
    got = fld.contents()
    if isinstance(v, list):
        got = list(got)
    if got != v:
        fail(f"{k}: {got!r}, want {v!r}")

emb = np.arange(40, dtype=np.float32) * np.float32(0.25) - np.float32(3)
q8src = (np.arange(128) % 17 - 8).astype(np.float32) * np.float32(0.37)
f16src = (np.arange(8) - 4).astype(np.float32) * np.float32(0.1)
bsrc = np.arange(12).astype(np.float32) * np.float32(-1.25)
tensors = [  # name, type, ne (GGUF order), bytes
    ("token_embd.weight", Q.F32, [8, 5], emb.tobytes()),
    ("blk.0.attn_q.weight", Q.Q8_0, [64, 2],
     gguf.quants.quantize(q8src.reshape(2, 64), Q.Q8_0).tobytes()),
    ("blk.0.ffn_norm.weight", Q.F16, [8], f16src.astype(np.float16).tobytes()),
    ("t3d", Q.F32, [2, 3, 4], np.arange(24, dtype=np.float32).tobytes()),
    ("t4d", Q.BF16, [2, 1, 3, 2], gguf.quants.quantize(bsrc, Q.BF16).tobytes()),
    ("iq", Q.IQ2_XXS, [256], bytes((i * 7) & 255 for i in range(66))),
]
if [t.name for t in r.tensors] != [t[0] for t in tensors]:
    fail(f"tensors {[t.name for t in r.tensors]}")
for t, (name, ty, ne, data) in zip(r.tensors, tensors):
    if t.tensor_type != ty or [int(x) for x in t.shape] != ne:
        fail(f"{name}: {t.tensor_type.name} {list(t.shape)}, want {ty.name} {ne}")
    if t.data_offset % 64:
        fail(f"{name}: data offset {t.data_offset} not aligned to 64")
    if bytes(np.ascontiguousarray(t.data).view(np.uint8).reshape(-1)) != data:
        fail(f"{name}: tensor bytes differ")
if bad:
    sys.exit(1)
print(f"ok: gguf-py reads our file: {len(want)} keys, {len(tensors)} tensors")
PYEOF
