#!/usr/bin/env python3
"""finetune_torch.py GGUF TOKENS.bin --batch B --context T --threads N --steps S
[--compile] [--lora R] [--bf16]: the peer of `llm-train --init GGUF`: Hugging Face transformers'
LlamaForCausalLM loaded from the same GGUF file (dequantized to fp32),
AdamW over every weight, batches of B x T tokens cut in order from our token
file (llm-formats(5): a 32-byte header with the token width at offset 12, then
little-endian ids), SDPA
attention (transformers' default), optionally torch.compile; with --lora,
PEFT's LoRA of rank R (alpha R, no dropout) on the same seven projections
as `llm-train --lora`, only the adapters trained; with --bf16, the
forward under CPU bf16 autocast (fp32 weights and AdamW state, as
`llm-train --precision bf16`). Prints one JSON
line with tokens_per_s over the steps after the first."""
import argparse
import json
import os
import time

import numpy as np
import torch
import transformers
from transformers import AutoModelForCausalLM


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("gguf")
    ap.add_argument("tokens")
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--context", type=int, default=256)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--steps", type=int, default=4)
    ap.add_argument("--compile", action="store_true")
    ap.add_argument("--lora", type=int, default=0)
    ap.add_argument("--bf16", action="store_true")
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    transformers.utils.logging.set_verbosity_error()
    transformers.utils.logging.disable_progress_bar()
    d, name = os.path.split(os.path.abspath(a.gguf))
    model = AutoModelForCausalLM.from_pretrained(d, gguf_file=name, dtype=torch.float32,
                                                 attn_implementation="sdpa")
    if a.lora:
        import peft
        cfg = peft.LoraConfig(r=a.lora, lora_alpha=a.lora, lora_dropout=0.0,
                              target_modules=["q_proj", "k_proj", "v_proj", "o_proj",
                                              "gate_proj", "up_proj", "down_proj"])
        model = peft.get_peft_model(model, cfg)
    model.train()
    model.config.use_cache = False
    raw = np.fromfile(a.tokens, dtype=np.uint8)
    width = int(raw[12:16].view("<u4")[0]) if raw.size >= 32 else 4
    ids = raw[32:].view("<u2" if width == 2 else "<u4").astype(np.int64)
    opt = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-5, betas=(0.9, 0.95),
                            weight_decay=0.1)
    step_fn = model
    if a.compile:
        step_fn = torch.compile(model)
    n = a.batch * (a.context + 1)
    times = []
    for s in range(a.steps):
        off = (s * n) % max(1, ids.size - n)
        x = torch.from_numpy(ids[off:off + n].reshape(a.batch, a.context + 1))
        t0 = time.perf_counter()
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=a.bf16):
            out = step_fn(input_ids=x[:, :-1])
            logits = out.logits
            loss = torch.nn.functional.cross_entropy(logits.reshape(-1, logits.size(-1)).float(),
                                                     x[:, 1:].reshape(-1))
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        times.append(time.perf_counter() - t0)
    rest = times[1:] if len(times) > 1 else times
    tps = a.batch * a.context * len(rest) / sum(rest)
    print(json.dumps({"tokens_per_s": round(tps, 1), "loss": loss.item(),
                      "torch": torch.__version__, "compile": a.compile, "lora": a.lora, "bf16": a.bf16,
                      "threads": a.threads}))


if __name__ == "__main__":
    main()
