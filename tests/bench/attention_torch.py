#!/usr/bin/env python3
"""PyTorch side of the attention benchmark: one layer's causal attention,
forward and backward, by torch.nn.functional.scaled_dot_product_attention
(is_causal=True; enable_gqa where the kv heads are fewer), in milliseconds,
the minimum over --reps calls each, as tests/bench/attention_speed.c prints
ours:

    python3 tests/bench/attention_torch.py --shape 8,256,6,6,48 --threads 2

q is (B, H, T, hd), k and v (B, KVH, T, hd), fp32 (bf16 with --precision
bf16), uniform in [-1, 1); the backward is out.backward(dout), all three
gradients.  --warmup untimed calls first.  Exits 77 (skipped) when torch
cannot be imported.
"""
import argparse
import sys
import time


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--shape", action="append", default=[])
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--reps", type=int, default=5)
    ap.add_argument("--warmup", type=int, default=2)
    ap.add_argument("--precision", default="f32", choices=["f32", "bf16"])
    a = ap.parse_args()
    try:
        import torch
        import torch.nn.functional as F
    except ImportError:
        print("attention_torch: torch not installed", file=sys.stderr)
        sys.exit(77)
    torch.set_num_threads(a.threads)
    torch.manual_seed(0)
    dt = torch.bfloat16 if a.precision == "bf16" else torch.float32
    shapes = a.shape or ["8,256,6,6,48", "2,1024,9,3,64", "1,1024,9,3,64"]
    for s in shapes:
        B, T, H, KVH, hd = (int(x) for x in s.split(","))

        def u(*size):
            return (torch.rand(*size) * 2 - 1).to(dt).requires_grad_()

        q, k, v = u(B, H, T, hd), u(B, KVH, T, hd), u(B, KVH, T, hd)
        dout = (torch.rand(B, H, T, hd) * 2 - 1).to(dt)
        gqa = {"enable_gqa": True} if KVH != H else {}
        fwd = bwd = float("inf")
        for r in range(a.warmup + a.reps):
            q.grad = k.grad = v.grad = None
            t0 = time.perf_counter()
            out = F.scaled_dot_product_attention(q, k, v, is_causal=True, **gqa)
            t1 = time.perf_counter()
            out.backward(dout)
            t2 = time.perf_counter()
            if r >= a.warmup:
                fwd, bwd = min(fwd, t1 - t0), min(bwd, t2 - t1)
        print("B %d T %d H %d KVH %d hd %d threads %d %s: forward %.2f ms, backward %.2f ms"
              % (B, T, H, KVH, hd, a.threads, a.precision, fwd * 1e3, bwd * 1e3), flush=True)


if __name__ == "__main__":
    main()
