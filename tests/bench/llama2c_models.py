#!/usr/bin/env python3
"""llama2c_models.py: random-weight checkpoints in llama2.c's legacy format
(config header, then every tensor in run.c's order, classifier shared with
the embedding) for the stories15M, 42M and 110M shapes at vocabulary 32000,
and a tokenizer.bin whose pieces cover ASCII, so that llama2.c's run.c can
be timed beside generate_speed on the same shapes. Writes into the current
directory: small.bin, medium.bin, large.bin, tokenizer.bin. Needs numpy."""
import struct

import numpy as np

SHAPES = [  # name, dim, layers, heads, ffn, context: as lib/model/model.c's presets
    ("small", 288, 6, 6, 768, 256),
    ("medium", 512, 8, 8, 1376, 1024),
    ("large", 768, 12, 12, 2048, 1024),
]
VOCAB = 32000


def main():
    rng = np.random.default_rng(0)
    for name, dim, layers, heads, ffn, ctx in SHAPES:
        hs = dim // heads
        sizes = [VOCAB * dim, layers * dim] + [layers * dim * dim] * 4 + [
            layers * dim, layers * ffn * dim, layers * dim * ffn, layers * ffn * dim,
            dim, ctx * hs // 2, ctx * hs // 2]
        with open(name + ".bin", "wb") as f:
            f.write(struct.pack("7i", dim, ffn, layers, heads, heads, VOCAB, ctx))
            for n in sizes:
                (rng.standard_normal(n, dtype=np.float32) * 0.02).tofile(f)
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
