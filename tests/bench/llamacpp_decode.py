#!/usr/bin/env python3
"""llamacpp_decode.py: decoding tokens/s at batch 1 of llama.cpp (through
llama-cpp-python) and of our llm-generate on the same GGUF files, taken in
turn in the same run.

    python3 tests/bench/llamacpp_decode.py --llm-generate build/bin/llm-generate \\
        --threads 2 --tokens 256 --reps 5 \\
        ours:f32:model.gguf ours:q8:model.gguf llamacpp:Q8_0:model-q8_0.gguf ...

Each positional argument is IMPL:LABEL:FILE.  llamacpp: the file loaded once
by llama_cpp.Llama (n_threads = n_threads_batch = --threads, untimed), then
per round: the context reset, the prompt evaluated, and --tokens tokens
decoded one at a time, each sampled from the full distribution (temperature
1, top-k, top-p and min-p off) and fed back, end-of-text ignored: the time of
that loop, and the rate of llama.cpp's own decoding time over the same
tokens (llama_perf_context: no Python, no sampling).

ours: LABEL is llm-generate's --precision (f32, f16, q8), one run of
--tokens tokens (-b 1, the same sampling settings, a fixed seed) with
standard error on a pseudo-terminal, so that it prints its summary: tokens
over the time after the model is loaded (the prompt's 4 tokens included).
A run that stops early (end of text) is counted by the tokens it made.

Every round times every argument in the order given.  Prints one JSON line
per argument and round, then a table (medians, ranges, and ours over
llama.cpp on the same weight type, F32 for f32 and Q8_0 for q8, both over
its loop and over its decoding time alone).  Exits 77 when llama_cpp cannot
be imported.
"""

import argparse
import json
import os
import pty
import re
import statistics
import subprocess
import sys
import time

try:
    import llama_cpp
except ImportError as e:
    print("llamacpp_decode.py: skipped: cannot import llama_cpp (%s)" % e, file=sys.stderr)
    sys.exit(77)

PROMPT = "Once upon a time"


def ours(a, prec, path):
    """llm-generate's own summary (printed when standard error is a
    terminal: tokens over the time after loading the model)."""
    cmd = [a.llm_generate, "-m", path, "-n", str(a.tokens), "-t", str(a.threads), "-b", "1",
           "--precision", prec, "--temperature", "1", "--top-k", "0", "--top-p", "1",
           "--min-p", "0", "--seed", str(a.seed)]
    master, slave = pty.openpty()
    proc = subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=subprocess.DEVNULL,
                            stderr=slave)
    os.close(slave)
    proc.stdin.write((PROMPT + "\n").encode())
    proc.stdin.close()
    err = b""
    while True:   # read as it comes: a full terminal buffer would stop it
        try:
            chunk = os.read(master, 4096)
        except OSError:   # EIO: the process has closed the terminal
            break
        if not chunk:
            break
        err += chunk
    os.close(master)
    if proc.wait() != 0:
        raise RuntimeError("llm-generate failed: %s" % err.decode(errors="replace")[-300:])
    m = re.search(rb"(\d+) tokens in [0-9.]+ s \(([0-9.]+) tokens/s\)", err)
    return float(m.group(2)) if m else 0.0


def llamacpp(a, llm):
    """(tokens/s of the loop, tokens/s of llama.cpp's own decoding time)"""
    llm.reset()
    toks = llm.tokenize(PROMPT.encode())
    llm.eval(toks)
    perf = hasattr(llama_cpp, "llama_perf_context")
    if perf:
        llama_cpp.llama_perf_context_reset(llm.ctx)
    t0 = time.perf_counter()
    for _ in range(a.tokens):
        tok = llm.sample(top_k=0, top_p=1.0, min_p=0.0, temp=1.0)
        llm.eval([tok])
    tps = a.tokens / (time.perf_counter() - t0)
    if not perf:
        return tps, 0.0
    d = llama_cpp.llama_perf_context(llm.ctx)
    return tps, (d.n_eval / d.t_eval_ms * 1000 if d.t_eval_ms > 0 else 0.0)


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--llm-generate", dest="llm_generate", required=True)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--tokens", type=int, default=256)
    p.add_argument("--reps", type=int, default=5)
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("runs", nargs="+", help="IMPL:LABEL:FILE")
    a = p.parse_args()
    runs = []
    for r in a.runs:
        impl, label, path = r.split(":", 2)
        if impl not in ("ours", "llamacpp") or not os.path.exists(path):
            p.error("bad run %s" % r)
        obj = None
        if impl == "llamacpp":
            obj = llama_cpp.Llama(model_path=path, n_threads=a.threads,
                                  n_threads_batch=a.threads, n_ctx=a.tokens + 64,
                                  n_batch=64, seed=a.seed, verbose=False)
        runs.append((impl, label, path, obj))
    res, own = {}, {}
    for rep in range(a.reps):
        for impl, label, path, obj in runs:
            rec = {"impl": impl, "label": label, "file": os.path.basename(path),
                   "rep": rep + 1, "threads": a.threads, "tokens": a.tokens}
            if impl == "ours":
                tps = ours(a, label, path)
            else:
                tps, eval_tps = llamacpp(a, obj)
                own.setdefault(label, []).append(eval_tps)
                rec["eval_tokens_per_s"] = round(eval_tps, 1)
            res.setdefault((impl, label), []).append(tps)
            rec["tokens_per_s"] = round(tps, 1)
            print(json.dumps(rec), flush=True)
    med = statistics.median
    print()
    print("  %-16s %9s  %-9s %12s  %-9s %8s %8s" % (
        "implementation", "tokens/s", "range", "decode only", "range", "x loop", "x decode"))
    for impl, label, path, _ in runs:
        v = res[(impl, label)]
        if impl == "ours":
            ref = {"q8": "Q8_0", "f32": "F32", "f16": "F16"}.get(label, label)
            r1 = "%.2fx" % (med(v) / med(res[("llamacpp", ref)])) if ("llamacpp", ref) in res else ""
            r2 = "%.2fx" % (med(v) / med(own[ref])) if ref in own and med(own[ref]) > 0 else ""
            print("  %-16s %9.1f  %-9s %12s  %-9s %8s %8s" % (
                "ours " + label, med(v), "%.0f-%.0f" % (min(v), max(v)), "", "", r1, r2))
        else:
            o = own[label]
            print("  %-16s %9.1f  %-9s %12.1f  %-9s" % (
                "llama.cpp " + label, med(v), "%.0f-%.0f" % (min(v), max(v)), med(o),
                "%.0f-%.0f" % (min(o), max(o))))
    print("  (llama_cpp %s)" % getattr(llama_cpp, "__version__", "?"))


if __name__ == "__main__":
    main()
