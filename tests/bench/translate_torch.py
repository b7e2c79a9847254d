#!/usr/bin/env python3
"""translate_torch.py: the peer of `llm-train --task pairs` on Multi30k
English->French: the encoder-decoder this field starts from, PyTorch's
nn.Transformer, trained for a fixed wall-clock budget, then greedy-decoded on
the test sources and scored with sacrebleu's defaults.

    python3 tests/bench/translate_torch.py --tokenizer tok.model --time-limit 1200

The recipe is the textbook one ("Attention is all you need" as the Annotated
Transformer and the PyTorch tutorial teach it), sized for a CPU: d_model 256,
3 + 3 layers, 4 heads, FFN 512 (6.0M parameters with 8000 pieces), dropout 0.1, sinusoidal positions, one
embedding matrix shared by source, target and output projection over a joint
SentencePiece vocabulary (scaled by sqrt(d_model) at the input), label
smoothing 0.1, Adam (0.9, 0.98, 1e-9) with linear warmup then inverse
square root decay, batches of about --batch-tokens source+target pieces
drawn from length-sorted buckets. Two deviations, both the usual choice for
short budgets: pre-norm layers (norm_first), and a warmup sized to the
budget rather than to days of training: the learning rate rises over the
first tenth of the time limit (--warmup-share), then falls as the inverse
square root of the time spent, which is the inverse square root of steps at
a steady step rate (--warmup N: over N steps, then 1/sqrt(step), as in the
paper).

The tokenizer is --tokenizer (translate.sh passes the one `llm-tokenize
train` made, so both systems see the same pieces); without it, a unigram
model of --vocab-size pieces is trained here on both columns of train.tsv.
The source is its pieces then </s>; the decoder reads <s> + target and
predicts target + </s>. The model has no padding piece of its own: padding
uses <unk>'s id, always masked (the tokenizer falls back to bytes, so <unk>
never occurs in the data).

Nothing is evaluated during training. Greedy decoding runs in batches of
sentences sorted by length, up to 1.5 x source pieces + 10, one position a
step through the model's own layers with their keys and values kept (the
tutorial's loop runs the whole prefix again at every step, which made
decoding the slower half of a short run; --self-test checks the two agree).
Prints one JSON
object: bleu, chrf (sacrebleu.corpus_bleu / corpus_chrf, defaults, on
detokenised output), params, steps, epochs, setup_seconds (reading and
tokenizing the data, building the model), train_seconds, decode_seconds
(the median of --decode-runs decodings of the test set, each timed in
decode_runs; every decoding must give the same text), sentences_per_second,
last_loss, torch. --hyp FILE writes the hypotheses,
one a line. --save-model FILE keeps the trained weights; --load-model FILE
skips training and decodes with them (steps 0), so that translate.sh can
time the two systems' decodings in turn, minutes apart rather than a
training apart. Without torch, sentencepiece or sacrebleu it prints a
"skipped: ..." line and exits 0.
"""

import argparse
import json
import math
import os
import random
import sys
import tempfile
import time
import warnings

try:
    import torch
    import torch.nn as nn
    import torch.nn.functional as F
    import sentencepiece as spm
    import sacrebleu
except ImportError as e:
    print("translate_torch.py: skipped: %s (pip install torch sentencepiece sacrebleu)" % e)
    sys.exit(0)

# nn.Transformer builds its encoder with nested tensors on, which norm_first
# turns off again, with a warning.
warnings.filterwarnings("ignore", message="enable_nested_tensor")


def default_data():
    top = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    data = os.environ.get("DATA") or os.path.join(os.path.dirname(top), "shared", "data")
    return os.path.join(data, "multi30k_en_fr")


def read_pairs(path, limit=0):
    src, tgt = [], []
    with open(path, encoding="utf-8") as f:
        for line in f:
            s, t = line.rstrip("\n").split("\t", 1)
            src.append(s)
            tgt.append(t)
            if limit and len(src) == limit:
                break
    return src, tgt


def train_tokenizer(src, tgt, vocab, seed):
    """The serialized model of `llm-tokenize train`'s defaults: unigram,
    byte fallback, nmt_nfkc."""
    with tempfile.TemporaryDirectory(prefix="translate-torch.") as d:
        txt = os.path.join(d, "both.txt")
        with open(txt, "w", encoding="utf-8") as f:
            f.write("".join(s + "\n" for s in src + tgt))
        spm.set_random_generator_seed(seed)
        spm.SentencePieceTrainer.train(input=txt, model_prefix=os.path.join(d, "tok"),
                                       vocab_size=vocab, model_type="unigram",
                                       byte_fallback=True, num_threads=2, minloglevel=2)
        with open(os.path.join(d, "tok.model"), "rb") as f:
            return f.read()


class Positions(nn.Module):
    """The fixed sinusoids of Vaswani et al., added to the scaled embeddings."""

    def __init__(self, dim, n=1024):
        super().__init__()
        pos = torch.arange(n).unsqueeze(1)
        div = torch.exp(torch.arange(0, dim, 2) * (-math.log(10000.0) / dim))
        pe = torch.zeros(n, dim)
        pe[:, 0::2] = torch.sin(pos * div)
        pe[:, 1::2] = torch.cos(pos * div)
        self.register_buffer("pe", pe, persistent=False)

    def forward(self, x):
        return x + self.pe[: x.size(1)]


class Translator(nn.Module):
    def __init__(self, vocab, dim, heads, enc, dec, ffn, dropout, pad):
        super().__init__()
        self.pad, self.scale = pad, math.sqrt(dim)
        self.emb = nn.Embedding(vocab, dim)
        self.pos = Positions(dim)
        self.drop = nn.Dropout(dropout)
        self.tf = nn.Transformer(d_model=dim, nhead=heads, num_encoder_layers=enc,
                                 num_decoder_layers=dec, dim_feedforward=ffn,
                                 dropout=dropout, batch_first=True, norm_first=True)
        for p in self.tf.parameters():
            if p.dim() > 1:
                nn.init.xavier_uniform_(p)
        # Tied input/output matrix: N(0, dim^-1/2) so that the sqrt(dim)
        # input scale gives unit-size embeddings (fairseq's choice).
        nn.init.normal_(self.emb.weight, std=dim ** -0.5)

    def embed(self, ids):
        return self.drop(self.pos(self.emb(ids) * self.scale))

    def encode(self, src):
        mask = src == self.pad
        return self.tf.encoder(self.embed(src), src_key_padding_mask=mask), mask

    def decode(self, mem, mem_mask, tgt_in):
        T = tgt_in.size(1)
        causal = torch.ones(T, T, dtype=torch.bool).triu(1)
        h = self.tf.decoder(self.embed(tgt_in), mem, tgt_mask=causal, tgt_is_causal=True,
                            tgt_key_padding_mask=tgt_in == self.pad,
                            memory_key_padding_mask=mem_mask)
        return h @ self.emb.weight.t()

    def forward(self, src, tgt_in):
        mem, mask = self.encode(src)
        return self.decode(mem, mask, tgt_in)


def pad_batch(seqs, pad):
    n = max(len(s) for s in seqs)
    return torch.tensor([s + [pad] * (n - len(s)) for s in seqs], dtype=torch.long)


def make_batches(pairs, max_tokens, rng):
    """Batches of pairs of similar length, each at most max_tokens source +
    target pieces counted with padding, in random order."""
    order = sorted(range(len(pairs)),
                   key=lambda i: (len(pairs[i][0]) + len(pairs[i][1]), rng.random()))
    batches, cur, longest = [], [], 0
    for i in order:
        n = len(pairs[i][0]) + len(pairs[i][1])
        if cur and max(longest, n) * (len(cur) + 1) > max_tokens:
            batches.append(cur)
            cur, longest = [], 0
        cur.append(i)
        longest = max(longest, n)
    if cur:
        batches.append(cur)
    rng.shuffle(batches)
    return batches


def heads(x, n):
    B, T, C = x.shape
    return x.view(B, T, n, C // n).transpose(1, 2)


class Cache:
    """Incremental decoding through the model's own decoder layers (pre-norm,
    eval mode, so no dropout): each layer keeps the keys and values of the
    positions decoded so far and of the encoder output, so a step costs one
    position, not the whole prefix again. test_cache() checks it against
    the full decoder."""

    def __init__(self, model, mem, mem_mask):
        self.m, self.self_kv, self.cross_kv = model, [], []
        self.mask = ~mem_mask[:, None, None, :]
        for layer in model.tf.decoder.layers:
            a = layer.multihead_attn
            C = a.embed_dim
            k = F.linear(mem, a.in_proj_weight[C:2 * C], a.in_proj_bias[C:2 * C])
            v = F.linear(mem, a.in_proj_weight[2 * C:], a.in_proj_bias[2 * C:])
            self.cross_kv.append((heads(k, a.num_heads), heads(v, a.num_heads)))
            self.self_kv.append(None)
        self.t = 0

    def step(self, ids):
        """ids (B,): the newest input piece; returns the logits (B, V) after it."""
        m = self.m
        x = m.emb(ids[:, None]) * m.scale + m.pos.pe[self.t]
        for i, layer in enumerate(m.tf.decoder.layers):
            a = layer.self_attn
            H = a.num_heads
            q, k, v = F.linear(layer.norm1(x), a.in_proj_weight, a.in_proj_bias).chunk(3, -1)
            k, v = heads(k, H), heads(v, H)
            if self.self_kv[i] is not None:
                k = torch.cat([self.self_kv[i][0], k], 2)
                v = torch.cat([self.self_kv[i][1], v], 2)
            self.self_kv[i] = (k, v)
            y = F.scaled_dot_product_attention(heads(q, H), k, v)
            x = x + a.out_proj(y.transpose(1, 2).reshape(x.shape))
            a = layer.multihead_attn
            C = a.embed_dim
            q = F.linear(layer.norm2(x), a.in_proj_weight[:C], a.in_proj_bias[:C])
            y = F.scaled_dot_product_attention(heads(q, H), *self.cross_kv[i], attn_mask=self.mask)
            x = x + a.out_proj(y.transpose(1, 2).reshape(x.shape))
            x = x + layer.linear2(layer.activation(layer.linear1(layer.norm3(x))))
        self.t += 1
        return m.tf.decoder.norm(x[:, 0]) @ m.emb.weight.t()


@torch.no_grad()
def greedy(model, srcs, bos, eos, pad, batch):
    model.eval()
    out = [None] * len(srcs)
    order = sorted(range(len(srcs)), key=lambda i: len(srcs[i]))
    for k in range(0, len(order), batch):
        idx = order[k:k + batch]
        src = pad_batch([srcs[i] for i in idx], pad)
        cache = Cache(model, *model.encode(src))
        limit = int(src.size(1) * 1.5) + 10
        nxt = torch.full((len(idx),), bos, dtype=torch.long)
        ys = []
        done = torch.zeros(len(idx), dtype=torch.bool)
        for _ in range(limit):
            nxt = cache.step(nxt).argmax(-1)
            ys.append(nxt)
            done |= nxt == eos
            if done.all():
                break
        ys = torch.stack(ys, 1).tolist()
        for j, i in enumerate(idx):
            seq = ys[j]
            out[i] = seq[:seq.index(eos)] if eos in seq else seq
    return out


@torch.no_grad()
def test_cache():
    """The cached step's logits against the full decoder's, on random weights."""
    torch.manual_seed(0)
    m = Translator(50, 32, 4, 2, 2, 64, 0.1, 0).eval()
    src = torch.randint(3, 50, (3, 7))
    src[0, 5:] = 0
    tgt = torch.randint(3, 50, (3, 6))
    mem, mask = m.encode(src)
    full = m.decode(mem, mask, tgt)
    c = Cache(m, mem, mask)
    inc = torch.stack([c.step(tgt[:, t]) for t in range(tgt.size(1))], 1)
    err = (full - inc).abs().max().item()
    print("cache vs full decoder: max |difference| %.2e" % err)
    return err < 1e-4


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--data", default=default_data(), help="folder of train.tsv and test.tsv")
    ap.add_argument("--tokenizer", help="SentencePiece model (default: train one here)")
    ap.add_argument("--vocab-size", type=int, default=8000)
    ap.add_argument("--time-limit", type=float, default=1200, help="training seconds")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--dim", type=int, default=256)
    ap.add_argument("--heads", type=int, default=4)
    ap.add_argument("--layers", type=int, default=3, help="encoder and decoder layers each")
    ap.add_argument("--ffn", type=int, default=512)
    ap.add_argument("--dropout", type=float, default=0.1)
    ap.add_argument("--label-smoothing", type=float, default=0.1)
    ap.add_argument("--lr", type=float, default=1e-3, help="peak learning rate")
    ap.add_argument("--warmup", type=int, default=0,
                    help="warmup steps (0: the first --warmup-share of the time limit)")
    ap.add_argument("--warmup-share", type=float, default=0.1)
    ap.add_argument("--batch-tokens", type=int, default=2000,
                    help="source + target pieces per batch, with padding")
    ap.add_argument("--max-len", type=int, default=128, help="drop longer training pairs")
    ap.add_argument("--decode-batch", type=int, default=100, help="sentences")
    ap.add_argument("--decode-runs", type=int, default=1,
                    help="decode the test set this many times; the median time is reported")
    ap.add_argument("--test-lines", type=int, default=0, help="decode only the first N (0: all)")
    ap.add_argument("--hyp", help="write the hypotheses here, one a line")
    ap.add_argument("--save-model", help="write the trained weights here")
    ap.add_argument("--load-model", help="decode with these weights; no training")
    ap.add_argument("--self-test", action="store_true",
                    help="check the incremental decoder against the full one and exit")
    a = ap.parse_args()
    if a.self_test:
        sys.exit(0 if test_cache() else 1)

    torch.set_num_threads(a.threads)
    torch.set_num_interop_threads(1)
    random.seed(a.seed)
    torch.manual_seed(a.seed)
    rng = random.Random(a.seed)

    t0 = time.perf_counter()
    tr_src, tr_tgt = read_pairs(os.path.join(a.data, "train.tsv"))
    te_src, te_ref = read_pairs(os.path.join(a.data, "test.tsv"), a.test_lines)
    if a.tokenizer:
        sp = spm.SentencePieceProcessor(model_file=a.tokenizer)
    else:
        sp = spm.SentencePieceProcessor(
            model_proto=train_tokenizer(tr_src, tr_tgt, a.vocab_size, a.seed))
    V, bos, eos = sp.vocab_size(), sp.bos_id(), sp.eos_id()
    if bos < 0 or eos < 0:
        sys.exit("translate_torch.py: the tokenizer has no <s> or </s> piece")
    pad = sp.pad_id() if sp.pad_id() >= 0 else sp.unk_id()
    pairs = []
    if not a.load_model:
        enc_s, enc_t = sp.encode(tr_src), sp.encode(tr_tgt)
        pairs = [(s + [eos], [bos] + t + [eos]) for s, t in zip(enc_s, enc_t)
                 if len(s) < a.max_len and len(t) < a.max_len]
    model = Translator(V, a.dim, a.heads, a.layers, a.layers, a.ffn, a.dropout, pad)
    if a.load_model:
        model.load_state_dict(torch.load(a.load_model, weights_only=True))
        a.time_limit = 0
    params = sum(p.numel() for p in model.parameters())
    opt = torch.optim.Adam(model.parameters(), lr=a.lr, betas=(0.9, 0.98), eps=1e-9)
    setup_s = time.perf_counter() - t0

    t0 = time.perf_counter()
    steps = seen = 0
    loss = torch.tensor(float("nan"))
    model.train()
    while time.perf_counter() - t0 < a.time_limit:
        for b in make_batches(pairs, a.batch_tokens, rng):
            if time.perf_counter() - t0 >= a.time_limit:
                break
            src = pad_batch([pairs[i][0] for i in b], pad)
            tgt = pad_batch([pairs[i][1] for i in b], pad)
            logits = model(src, tgt[:, :-1])
            loss = F.cross_entropy(logits.reshape(-1, V), tgt[:, 1:].reshape(-1),
                                   ignore_index=pad, label_smoothing=a.label_smoothing)
            if a.warmup > 0:
                x, w = steps + 1, a.warmup
            else:
                x, w = max(time.perf_counter() - t0, 1e-3), a.warmup_share * a.time_limit
            for g in opt.param_groups:
                g["lr"] = a.lr * min(x / w, math.sqrt(w / x))
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            steps += 1
            seen += len(b)
    train_s = time.perf_counter() - t0
    if a.save_model:
        torch.save(model.state_dict(), a.save_model)

    runs = []
    for r in range(max(a.decode_runs, 1)):
        t0 = time.perf_counter()
        out = greedy(model, [s + [eos] for s in sp.encode(te_src)], bos, eos, pad, a.decode_batch)
        h = [sp.decode(o) for o in out]
        runs.append(time.perf_counter() - t0)
        if r and h != hyps:
            print("decoding %d differs from the first" % (r + 1), file=sys.stderr)
            sys.exit(1)
        hyps = h
    decode_s = sorted(runs)[(len(runs) - 1) // 2]
    if a.hyp:
        with open(a.hyp, "w", encoding="utf-8") as f:
            f.write("".join(h + "\n" for h in hyps))
    print(json.dumps({
        "bleu": round(sacrebleu.corpus_bleu(hyps, [te_ref]).score, 2),
        "chrf": round(sacrebleu.corpus_chrf(hyps, [te_ref]).score, 2),
        "params": params, "steps": steps,
        "epochs": round(seen / max(len(pairs), 1), 2),
        "setup_seconds": round(setup_s, 1), "train_seconds": round(train_s, 1),
        "decode_seconds": round(decode_s, 2),
        "decode_runs": [round(t, 2) for t in runs],
        "sentences_per_second": round(len(hyps) / decode_s, 1),
        "sentences": len(hyps), "last_loss": round(loss.item(), 3),
        "threads": a.threads, "torch": torch.__version__,
        "sacrebleu": sacrebleu.__version__}))


if __name__ == "__main__":
    main()
