#!/bin/sh
# translate.sh: English->French translation on Multi30k (issue #16): our
# decoder-only model with the input as a prefix (`llm-train --task pairs`,
# then `llm-generate`, greedy, 128 sentences at a time as the peer decodes
# 100) beside the model this field starts from,
# PyTorch's nn.Transformer encoder-decoder (tests/bench/translate_torch.py:
# 3 + 3 layers of 256, 6.0M parameters, the textbook recipe), each trained
# for the same wall-clock budget (TIME_LIMIT seconds, default 1200: the
# issue's 20 minutes) on 2 threads, both on one joint 8,000-piece unigram
# tokenizer made by `llm-tokenize train` from both columns of train.tsv.
# Prints one row a system: BLEU and chrF from sacrebleu (defaults, on the
# detokenised output; "-" without it) and from `llm-eval --pairs --text`,
# the minutes from start to a trained model (ours: the llm-train command;
# the peer: reading, tokenizing and training), test sentences decoded per
# second on 2 threads (the median of DECODE_RUNS decodings, default 3, of
# the whole test set by each system, after both have trained, the two
# systems in turn: one decoding of 1,000 sentences lasts a few seconds, a
# shared machine moves single timings by 15% and its speed drifts more
# than that over the 20 minutes of a training), and
# parameters. Our recipe is OURS_OPTS (default
# below: 5 layers of 256, 4 query and 2 key/value heads, FFN 688, 5.7M
# parameters, rows of 128 tokens,
# 16 rows a step, learning rate 1e-3 fitted to the time, dropout 0.2,
# label smoothing 0.1 (as the peer),
# the model of the best sample BLEU kept, products in PREC, below); it
# names no data set. QUICK=1 for trying it: TIME_LIMIT 90 and the first
# TEST_LINES=200 test sentences unless those are set (TEST_LINES=0: all
# 1,000). KEEP=DIR keeps both models and the outputs. When our side fails, its
# row says so after the program's message and the peer still runs.
set -u
TOP=${TOP:-$(cd "$(dirname "$0")/../.." && pwd)}
PATH=$TOP/${B:-build}/bin:$PATH
LC_ALL=C.UTF-8
export PATH LC_ALL
d=${DATA:-$(cd "$TOP/.." && pwd)/shared/data}/multi30k_en_fr
for f in train val test; do
    [ -f "$d/$f.tsv" ] || { echo "multi30k_en_fr not found under DATA='${DATA:-}'"; exit 77; }
done
if [ "${QUICK:-0}" = 1 ]; then
    TIME_LIMIT=${TIME_LIMIT:-90}
    TEST_LINES=${TEST_LINES:-200}
fi
TIME_LIMIT=${TIME_LIMIT:-1200}
TEST_LINES=${TEST_LINES:-0}
DECODE_RUNS=${DECODE_RUNS:-3}
# PREC: the products' precision in training and decoding, bf16 where the
# CPU has AVX512_BF16 (twice fp32's products there; emulated, and slower
# than fp32, elsewhere), else f32.
if [ -z "${PREC:-}" ]; then
    if grep -qw avx512_bf16 /proc/cpuinfo 2>/dev/null; then PREC=bf16; else PREC=f32; fi
fi
OURS_OPTS=${OURS_OPTS:---layers 5 --dim 256 --heads 4 --kv-heads 2 --ffn-dim 688 --context 128 --batch 16 --lr 1e-3 --warmup 200 --dropout 0.2 --label-smoothing 0.1 --eval-every 200 --eval-samples 200 --precision $PREC}
tmp=$(mktemp -d "${TMPDIR:-/tmp}/llm-translate.XXXXXX") || exit 1
trap 'rm -rf "$tmp"' EXIT
trap 'exit 130' INT TERM
cd "$tmp" || exit 1

now() { date +%s.%N; }
since() { echo "$1 $(now)" | awk '{ printf "%.3f", $2 - $1 }'; }

if [ "$TEST_LINES" -gt 0 ]; then head -n "$TEST_LINES" "$d/test.tsv"; else cat "$d/test.tsv"; fi > test.tsv
cut -f1 test.tsv > src.txt
cut -f2 test.tsv > ref.txt
n=$(wc -l < src.txt)
echo "CPU: $(lscpu | sed -n 's/^Model name: *//p'), $(nproc) cores; each system trains" \
    "for $TIME_LIMIT s on 2 threads; $n test sentences; ours in $PREC"

# "BLEU chrF" of hypotheses FILE against ref.txt, or "- -".
sacre() {
    python3 - "$1" ref.txt 2>/dev/null <<'EOF' || echo "- -"
import sys
import sacrebleu
hyp = open(sys.argv[1], encoding="utf-8").read().split("\n")[:-1]
ref = open(sys.argv[2], encoding="utf-8").read().split("\n")[:-1]
print("%.2f %.2f" % (sacrebleu.corpus_bleu(hyp, [ref]).score,
                     sacrebleu.corpus_chrf(hyp, [ref]).score))
EOF
}
ourscore() {
    paste ref.txt "$1" | llm-eval --pairs --text --format json 2> eval.err |
        python3 -c 'import json, sys
j = json.load(sys.stdin)
print("%.2f %.2f" % (j["bleu"], j["chrf"]))' 2>/dev/null ||
        { echo "    (llm-eval --pairs --text failed: $(head -n 1 eval.err))" >&2; echo "- -"; }
}
# row SYSTEM MINUTES SENTENCES/S PARAMS HYP-FILE: one line of the table, to rows.txt
row() {
    s=$(sacre "$5") o=$(ourscore "$5")
    printf '%-26s %7s %7s %9s %9s %9s %10s %10s\n' "$1" "${s% *}" "${s#* }" "${o% *}" "${o#* }" \
        "$2" "$3" "$4" >> rows.txt
}
failed() { printf '%-26s %s\n' "$1" "$2" >> rows.txt; }
: > rows.txt

# ------------------------------------------------------------ tokenizer
{ cut -f1 "$d/train.tsv"; cut -f2 "$d/train.tsv"; } > both.txt
tok=""
if llm-tokenize train --vocab-size 8000 --strict-size -t 2 -q -o tok.model both.txt 2> tok.err; then
    tok=$tmp/tok.model
else
    echo "llm-tokenize train failed: $(tail -n 3 tok.err)"
    echo "  (the peer trains its own tokenizer with the same settings)"
fi

# ------------------------------------------------------------ our side
# Each system decodes the test set once after training (its scores); the
# timed decodings come after both have trained, the two systems in turn.
name="llm-train --task pairs"
ours_ok=0
if [ -z "$tok" ]; then
    failed "$name" "no tokenizer"
else
    t0=$(now)
    # shellcheck disable=SC2086
    llm-train --task pairs -m "$tok" -o ours.llm --time-limit "$TIME_LIMIT" -t 2 \
        --val "$d/val.tsv" $OURS_OPTS "$d/train.tsv" > train.out 2> train.err
    rc=$?
    train_s=$(since "$t0")
    if [ $rc -ne 0 ]; then
        echo "$name failed (exit $rc):"
        tail -n 5 train.err | sed 's/^/    /'
        failed "$name" "failed (exit $rc)"
    else
        params=$(sed -n 's/.*[^0-9]\([0-9][0-9]*\) parameters.*/\1/p' train.err | head -n 1)
        llm-generate -m ours.llm -t 2 -b 128 --precision "$PREC" < src.txt > ours.hyp 2> gen.err
        rc=$?
        if [ $rc -ne 0 ]; then
            echo "llm-generate failed (exit $rc):"
            tail -n 5 gen.err | sed 's/^/    /'
            failed "$name" "llm-generate failed (exit $rc)"
        elif [ "$(wc -l < ours.hyp)" -ne "$n" ]; then
            echo "llm-generate wrote $(wc -l < ours.hyp) lines for $n sources"
            failed "$name" "wrong number of output lines"
        else
            ours_ok=1
        fi
    fi
fi

# ------------------------------------------------------------ the peer
pname="PyTorch nn.Transformer"
peer_ok=0
peer() {
    python3 "$TOP/tests/bench/translate_torch.py" --data "$d" ${tok:+--tokenizer "$tok"} \
        --threads 2 --test-lines "$TEST_LINES" "$@"
}
peer --time-limit "$TIME_LIMIT" --hyp peer.hyp --save-model peer.pt > peer.json 2> peer.err
rc=$?
if grep -q 'skipped:' peer.json; then
    cat peer.json
    failed "$pname" "not installed"
elif [ $rc -ne 0 ] || [ ! -s peer.hyp ]; then
    echo "translate_torch.py failed (exit $rc):"
    tail -n 5 peer.err | sed 's/^/    /'
    failed "$pname" "failed (exit $rc)"
else
    peer_ok=1
fi

# ------------------------------------------------------------ decoding, timed
# DECODE_RUNS rounds, each our decoding (the whole program: start, load,
# decode) then the peer's (its greedy loop only, timed inside, after
# Python has loaded the model); each must repeat its first output.
: > dec.txt
: > peerdec.txt
i=0
while [ $i -lt "$DECODE_RUNS" ]; do
    i=$((i + 1))
    if [ $ours_ok = 1 ]; then
        t0=$(now)
        llm-generate -m ours.llm -t 2 -b 128 --precision "$PREC" < src.txt > again.hyp 2> gen.err
        echo "$(since "$t0")" >> dec.txt
        if ! cmp -s ours.hyp again.hyp; then
            echo "llm-generate: decoding $i failed or differs from the first"
            ours_ok=0
            failed "$name" "decodings differ"
        fi
    fi
    if [ $peer_ok = 1 ]; then
        if peer --load-model peer.pt --hyp again.hyp > again.json 2>> peer.err &&
            cmp -s peer.hyp again.hyp; then
            python3 -c 'import json, sys; print(json.load(open(sys.argv[1]))["decode_seconds"])' \
                again.json >> peerdec.txt
        else
            echo "translate_torch.py: decoding $i failed or differs from the first"
            peer_ok=0
            failed "$pname" "decodings differ"
        fi
    fi
done
median() { sort -g "$1" | awk '{ t[NR] = $1 } END { print t[int((NR + 1) / 2)] }'; }
if [ $ours_ok = 1 ]; then
    dec_s=$(median dec.txt)
    echo "ours: decoding took $(sort -g dec.txt | tr '\n' ' ')s (median $dec_s)"
    row "$name" "$(echo "$train_s" | awk '{ printf "%.1f", $1 / 60 }')" \
        "$(echo "$n $dec_s" | awk '{ printf "%.1f", $1 / $2 }')" "${params:--}" ours.hyp
fi
if [ $peer_ok = 1 ]; then
    pdec_s=$(median peerdec.txt)
    echo "peer: decoding took $(sort -g peerdec.txt | tr '\n' ' ')s (median $pdec_s)"
    python3 -c 'import json, sys
j = json.load(open(sys.argv[1]))
print("%.1f %.1f %d %d %.2f %s" % ((j["setup_seconds"] + j["train_seconds"]) / 60,
      j["sentences"] / float(sys.argv[2]), j["params"], j["steps"], j["epochs"], j["torch"]))' \
        peer.json "$pdec_s" > peer.txt
    read -r minutes rate pparams steps epochs tv < peer.txt
    row "$pname" "$minutes" "$rate" "$pparams" peer.hyp
    echo "peer: torch $tv, $steps steps ($epochs epochs)"
fi

echo
printf '%-26s %7s %7s %9s %9s %9s %10s %10s\n' system BLEU chrF "BLEU(ll)" "chrF(ll)" \
    "train min" "sent/s" params
cat rows.txt
echo "(BLEU, chrF: sacrebleu defaults; (ll): llm-eval --pairs --text)"
# KEEP=DIR: our model, the peer's weights (translate_torch.py --load-model), the
# hypotheses and our training log kept there.
if [ -n "${KEEP:-}" ]; then
    mkdir -p "$KEEP" && cp -f ours.llm peer.pt ./*.hyp train.err train.out src.txt ref.txt "$KEEP"/ 2>/dev/null
fi
