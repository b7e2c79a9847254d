#!/usr/bin/env python3
"""PyTorch side of the training benchmark: tokens/s of the MODEL SPEC Llama
with AdamW, the figures llm-train's own benchmark (train_speed) is set beside.

    python3 tests/bench/pytorch_train.py --batch 8 --threads 2 \
        --modes eager,sdpa,compile --precision f32,bf16 --reps 3

Defaults are the stories15M shape with a 4096 vocabulary (dim 288, 6 layers,
6 heads, 6 kv heads, ffn 768, context 256, tied; ~7.2M parameters).  Each
step is forward + backward + gradient clipping (norm 1, as llm-train) +
AdamW on a fresh random batch.

Modes: eager (attention written out: q k^T, mask, softmax, @ v), sdpa
(F.scaled_dot_product_attention, causal), compile (sdpa, the model under
torch.compile with its default backend, inductor).  Precision: f32, or bf16
(torch.autocast("cpu", dtype=torch.bfloat16) around the forward pass; the
weights, gradients and AdamW state stay fp32, as llm-train --precision
bf16).  AdamW is torch's fused CPU kernel where this torch has it (fused=True,
else its default), the fastest of its implementations on CPU.

Every configuration (mode x precision) gets its own model, with the same
initial weights, and --warmup untimed steps first (torch.compile compiles
there, which can take minutes).  Then --reps rounds: in each round, every
configuration in turn runs --steps timed steps, so that a shared machine's
slow minutes fall on all of them alike; --between CMD runs CMD (a shell
command, its output to standard error) at the start of each round, which is
how train_speed.sh times llm-train's benchmark in turn with these.  Prints one line of JSON per
configuration and round on stdout.  Exits 77 (skipped) when torch cannot be
imported.
"""

import argparse
import json
import math
import subprocess
import sys
import time

try:
    import torch
    import torch.nn as nn
    import torch.nn.functional as F
except ImportError as e:
    print("pytorch_train.py: skipped: cannot import torch (%s)" % e, file=sys.stderr)
    sys.exit(77)


class RMSNorm(nn.Module):
    def __init__(self, dim, eps):
        super().__init__()
        self.eps = eps
        self.weight = nn.Parameter(torch.ones(dim))

    def forward(self, x):
        return x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + self.eps) * self.weight


def rope(x, cos, sin):
    """Adjacent pairs (x[2i], x[2i+1]) rotated; x (B, T, nh, hd)."""
    B, T, nh, hd = x.shape
    xp = x.reshape(B, T, nh, hd // 2, 2)
    x0, x1 = xp[..., 0], xp[..., 1]
    return torch.stack((x0 * cos - x1 * sin, x0 * sin + x1 * cos), -1).reshape(B, T, nh, hd)


class Block(nn.Module):
    def __init__(self, a):
        super().__init__()
        C, H, KVH, Fd = a.dim, a.n_heads, a.n_kv_heads, a.ffn_dim
        self.H, self.KVH, self.hd = H, KVH, C // H
        self.attention_norm = RMSNorm(C, a.norm_eps)
        self.wq = nn.Linear(C, H * self.hd, bias=False)
        self.wk = nn.Linear(C, KVH * self.hd, bias=False)
        self.wv = nn.Linear(C, KVH * self.hd, bias=False)
        self.wo = nn.Linear(H * self.hd, C, bias=False)
        self.ffn_norm = RMSNorm(C, a.norm_eps)
        self.w1 = nn.Linear(C, Fd, bias=False)
        self.w2 = nn.Linear(Fd, C, bias=False)
        self.w3 = nn.Linear(C, Fd, bias=False)

    def forward(self, h, cos, sin, mask, sdpa):
        B, T, C = h.shape
        x = self.attention_norm(h)
        q = rope(self.wq(x).view(B, T, self.H, self.hd), cos, sin)
        k = rope(self.wk(x).view(B, T, self.KVH, self.hd), cos, sin)
        v = self.wv(x).view(B, T, self.KVH, self.hd)
        if self.KVH != self.H:
            k = k.repeat_interleave(self.H // self.KVH, dim=2)
            v = v.repeat_interleave(self.H // self.KVH, dim=2)
        q, k, v = q.transpose(1, 2), k.transpose(1, 2), v.transpose(1, 2)
        if sdpa:
            o = F.scaled_dot_product_attention(q, k, v, is_causal=True)
        else:
            s = (q @ k.transpose(-2, -1)) * (1.0 / math.sqrt(self.hd))
            s = s.masked_fill(mask[:T, :T], float("-inf"))
            o = torch.softmax(s, -1) @ v
        o = o.transpose(1, 2).reshape(B, T, C)
        h = h + self.wo(o)
        x = self.ffn_norm(h)
        return h + self.w2(F.silu(self.w1(x)) * self.w3(x))


class Llama(nn.Module):
    def __init__(self, a, sdpa=False):
        super().__init__()
        self.tied = a.tied
        self.sdpa = sdpa
        self.tok_embeddings = nn.Embedding(a.vocab_size, a.dim)
        self.layers = nn.ModuleList(Block(a) for _ in range(a.n_layers))
        self.norm = RMSNorm(a.dim, a.norm_eps)
        if not a.tied:
            self.output = nn.Linear(a.dim, a.vocab_size, bias=False)
        hd = a.dim // a.n_heads
        freqs = a.rope_base ** (-2.0 * torch.arange(hd // 2, dtype=torch.float64) / hd)
        theta = torch.outer(torch.arange(a.context, dtype=torch.float64), freqs)
        self.register_buffer("cos", torch.cos(theta).float()[None, :, None, :])
        self.register_buffer("sin", torch.sin(theta).float()[None, :, None, :])
        self.register_buffer("mask", torch.ones(a.context, a.context, dtype=torch.bool).triu(1))
        for n, p in self.named_parameters():
            if p.dim() == 2:
                nn.init.normal_(p, std=0.02)

    def forward(self, x, y):
        T = x.shape[1]
        cos, sin = self.cos[:, :T], self.sin[:, :T]
        h = self.tok_embeddings(x)
        for layer in self.layers:
            h = layer(h, cos, sin, self.mask, self.sdpa)
        h = self.norm(h)
        w = self.tok_embeddings.weight if self.tied else self.output.weight
        logits = h @ w.t()
        return F.cross_entropy(logits.reshape(-1, logits.shape[-1]), y.reshape(-1), ignore_index=-1)


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--batch", type=int, default=8)
    p.add_argument("--seq", type=int, default=None, help="sequence length T (default --context)")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--modes", default="eager", help="comma list of eager, sdpa, compile")
    p.add_argument("--precision", default="f32", help="comma list of f32, bf16")
    p.add_argument("--warmup", type=int, default=2)
    p.add_argument("--steps", type=int, default=10)
    p.add_argument("--reps", type=int, default=1)
    p.add_argument("--between", default=None,
                   help="shell command run at the start of every round (another"
                        " implementation timed in turn with these)")
    p.add_argument("--vocab-size", dest="vocab_size", type=int, default=4096)
    p.add_argument("--dim", type=int, default=288)
    p.add_argument("--n-layers", dest="n_layers", type=int, default=6)
    p.add_argument("--n-heads", dest="n_heads", type=int, default=6)
    p.add_argument("--n-kv-heads", dest="n_kv_heads", type=int, default=6)
    p.add_argument("--ffn-dim", dest="ffn_dim", type=int, default=768)
    p.add_argument("--context", type=int, default=256)
    p.add_argument("--rope-base", dest="rope_base", type=float, default=10000.0)
    p.add_argument("--norm-eps", dest="norm_eps", type=float, default=1e-5)
    p.add_argument("--tied", type=int, choices=(0, 1), default=1)
    p.add_argument("--lr", type=float, default=3e-4)
    p.add_argument("--weight-decay", dest="weight_decay", type=float, default=0.1)
    p.add_argument("--seed", type=int, default=1)
    a = p.parse_args()
    T = a.seq if a.seq is not None else a.context
    modes = a.modes.split(",")
    precs = a.precision.split(",")
    if (a.batch < 1 or T < 1 or T > a.context or a.threads < 1 or a.steps < 1
            or a.warmup < 0 or a.reps < 1 or a.dim % a.n_heads or (a.dim // a.n_heads) % 2
            or a.n_heads % a.n_kv_heads):
        p.error("invalid sizes")
    if any(m not in ("eager", "sdpa", "compile") for m in modes):
        p.error("--modes: eager, sdpa, compile")
    if any(q not in ("f32", "bf16") for q in precs):
        p.error("--precision: f32, bf16")

    torch.set_num_threads(a.threads)
    gen = torch.Generator().manual_seed(a.seed + 1)
    fused = "fused" in torch.optim.AdamW.__init__.__code__.co_varnames

    def config(mode, prec):
        torch.manual_seed(a.seed)
        model = Llama(a, sdpa=mode != "eager")
        decay = [q for n, q in model.named_parameters()
                 if q.dim() == 2 and n != "tok_embeddings.weight"]
        no_decay = [q for n, q in model.named_parameters()
                    if not (q.dim() == 2 and n != "tok_embeddings.weight")]
        opt = torch.optim.AdamW([{"params": decay, "weight_decay": a.weight_decay},
                                 {"params": no_decay, "weight_decay": 0.0}],
                                lr=a.lr, betas=(0.9, 0.95), eps=1e-8,
                                **({"fused": True} if fused else {}))
        fwd = torch.compile(model) if mode == "compile" else model
        params = list(model.parameters())

        def step():
            xy = torch.randint(0, a.vocab_size, (a.batch, T + 1), generator=gen)
            with torch.autocast("cpu", dtype=torch.bfloat16, enabled=prec == "bf16"):
                loss = fwd(xy[:, :-1], xy[:, 1:])
            opt.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(params, 1.0)
            opt.step()
            return loss.item()
        return step, sum(q.numel() for q in params)

    runs = []
    for mode in modes:
        for prec in precs:
            step, nparams = config(mode, prec)
            t0 = time.perf_counter()
            for _ in range(a.warmup):
                loss = step()
            runs.append((mode, prec, step, nparams, time.perf_counter() - t0))
    for r in range(a.reps):
        if a.between:
            subprocess.run(a.between, shell=True, check=False, stdout=sys.stderr)
        for mode, prec, step, nparams, warm in runs:
            t0 = time.perf_counter()
            for _ in range(a.steps):
                loss = step()
            dt = time.perf_counter() - t0
            print(json.dumps({
                "impl": "pytorch", "torch": torch.__version__, "mode": mode,
                "precision": prec, "rep": r + 1, "batch": a.batch, "context": T,
                "threads": a.threads, "params": nparams, "fused_adamw": fused,
                "tokens_per_s": round(a.batch * T * a.steps / dt, 1),
                "step_ms": round(1000.0 * dt / a.steps, 1),
                "warmup_s": round(warm, 1), "loss": round(loss, 3)}), flush=True)


if __name__ == "__main__":
    main()
