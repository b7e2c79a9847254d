#!/usr/bin/env python3
"""llama2c_models.py: random-weight checkpoints in llama2.c's legacy format
(config header, then every tensor in run.c's order, classifier shared with
the embedding) for the stories15M, 42M and 110M shapes at vocabulary 32000,
the same weights quantized for llama2.c's runq.c (its version 2 format:
256-byte header with magic "ak42", version 2, the config, a shared-classifier
byte and the group size; then the norm weights in fp32, then each matrix as
int8 values followed by one fp32 scale per group; groups of 32, as our q8),
and a tokenizer.bin whose pieces cover ASCII, so that llama2.c's run.c and
runq.c can be timed beside generate_speed on the same shapes. Writes into the
current directory: small.bin, medium.bin, large.bin, small_q8.bin,
medium_q8.bin, large_q8.bin, tokenizer.bin. Needs numpy."""
import struct

import numpy as np

SHAPES = [  # name, dim, layers, heads, ffn, context: as lib/model/model.c's presets
    ("small", 288, 6, 6, 768, 256),
    ("medium", 512, 8, 8, 1376, 1024),
    ("large", 768, 12, 12, 2048, 1024),
]
VOCAB = 32000
GS = 32  # runq.c's group size here: our q8's block


def q8(w):
    """Symmetric int8 per group of GS, as llama2.c's export.py quantizes."""
    g = w.reshape(-1, GS)
    s = np.abs(g).max(axis=1) / 127.0
    s[s == 0] = 1.0
    q = np.round(g / s[:, None]).astype(np.int8)
    return q.reshape(-1), s.astype(np.float32)


def main():
    rng = np.random.default_rng(0)
    for name, dim, layers, heads, ffn, ctx in SHAPES:
        hs = dim // heads
        sizes = [VOCAB * dim, layers * dim] + [layers * dim * dim] * 4 + [
            layers * dim, layers * ffn * dim, layers * dim * ffn, layers * ffn * dim,
            dim, ctx * hs // 2, ctx * hs // 2]
        ts = [rng.standard_normal(n, dtype=np.float32) * 0.02 for n in sizes]
        with open(name + ".bin", "wb") as f:
            f.write(struct.pack("7i", dim, ffn, layers, heads, heads, VOCAB, ctx))
            for t in ts:
                t.tofile(f)
        # runq.c: rms_att, rms_ffn, rms_final in fp32, then the embedding
        # (shared classifier), wq, wk, wv, wo, w1, w2, w3, each layer's
        # int8 values then its scales.
        emb, rms_att, wq, wk, wv, wo, rms_ffn, w1, w2, w3, rms_final = ts[:11]
        with open(name + "_q8.bin", "wb") as f:
            head = struct.pack("<Ii7iBi", 0x616B3432, 2, dim, ffn, layers, heads, heads,
                               VOCAB, ctx, 1, GS)
            f.write(head + bytes(256 - len(head)))
            for t in (rms_att, rms_ffn, rms_final):
                t.tofile(f)
            for t, n in ((emb, 1), (wq, layers), (wk, layers), (wv, layers), (wo, layers),
                         (w1, layers), (w2, layers), (w3, layers)):
                for part in np.split(t, n):
                    q, sc = q8(part)
                    q.tofile(f)
                    sc.tofile(f)
    pieces = [b"<unk>", b"<s>", b"</s>"] + [b"<0x%02X>" % i for i in range(256)]
    pieces += [bytes([c]) for c in range(32, 127)]
    pieces += [b"tk%d" % i for i in range(VOCAB - len(pieces))]
    with open("tokenizer.bin", "wb") as f:
        f.write(struct.pack("i", max(len(p) for p in pieces)))
        for p in pieces:
            f.write(struct.pack("fi", 0.0, len(p)))
            f.write(p)


if __name__ == "__main__":
    main()
