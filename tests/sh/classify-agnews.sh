#!/bin/sh
# classify-agnews.sh: the classification workflow end to end on AG News
# (../shared/data/ag_news: 6,042 training and 1,558 test lines, 4 topics),
# sized to take about a minute and a half on 2 cores: a 2,000-piece
# tokenizer and a 2-layer, 96-wide language model pretrained for 150 steps on
# the training texts, fine-tuned for one epoch as a classifier (a tenth held
# out for model choice and calibration), then llm-classify on the test
# texts. Test accuracy must reach 0.70 (chance is 0.25; measured 0.79; the
# longer recipe of tests/bench/classify.sh reaches 0.86). Then --explain's
# deletion check on 194 test documents (measured: the top 3 tokens' removal
# lowers the label's probability by 0.235 on average, 3 random tokens' by
# 0.010), about 20 s more. Steps, not a time
# limit, bound it, so a busy machine takes longer but checks the same
# thing. Skipped without the data or under sanitizers.
set -u
d=$DATA/ag_news
[ -f "$d/train.tsv" ] && [ -f "$d/test.tsv" ] || { echo "no $d"; exit 77; }
[ -z "${SANITIZED:-}" ] || { echo "skipped under sanitizers (too slow there)"; exit 77; }
t0=$(date +%s)
cut -f2 "$d/train.tsv" > train.txt
llm-tokenize train --vocab-size 2000 --seed 1 -q -o ag.model train.txt || exit 1
llm-train -m ag.model --layers 2 --dim 96 --heads 4 --ffn-dim 256 --context 96 \
    --batch 16 --lr 2e-3 --warmup 20 --steps 150 --threads 2 -q -o base.llm train.txt || exit 1
llm-train --task classify --init base.llm --val-fraction 0.1 --epochs 1 --batch 32 \
    --lr 1e-3 --warmup 10 --eval-every 40 --threads 2 -q -o ag.llm "$d/train.tsv" || exit 1
cut -f2 "$d/test.tsv" | llm-classify -m ag.llm --threads 2 -q > pred.tsv || exit 1
[ "$(wc -l < pred.tsv)" -eq "$(wc -l < "$d/test.tsv")" ] || { echo "FAIL: record count"; exit 1; }
acc=$(cut -f1 pred.tsv | paste - "$d/test.tsv" | awk -F'\t' '{ n++; c += $1 == $2 } END { printf "%.4f", c / n }')
echo "test accuracy $acc in $(($(date +%s) - t0)) s"
awk -v a="$acc" 'BEGIN { exit !(a >= 0.70) }' || { echo "FAIL: accuracy $acc < 0.70"; exit 1; }
# Explanations are faithful on real text: on every 8th test document, taking
# out the 3 tokens integrated gradients scores highest for the predicted
# label lowers its probability more, on average, than taking out 3 tokens
# drawn at random from the same document (each span replaced by a space).
awk 'NR % 8 == 0' "$d/test.tsv" | cut -f2 > few.txt
llm-classify -m ag.llm --explain=1000 --format jsonl --threads 2 -q few.txt > ex.jsonl || exit 1
LC_ALL=C awk 'BEGIN { srand(1) }
    NR == FNR { text[FNR] = $0; next }
    { s = $0; n = 0
      match(s, /"label":"[^"]*"/); lab = substr(s, RSTART + 9, RLENGTH - 10)
      while (match(s, /"start":[0-9]+,"end":[0-9]+,"score":[-0-9.e+]+/)) {
          e = substr(s, RSTART, RLENGTH); s = substr(s, RSTART + RLENGTH)
          split(e, f, /[":,]+/)    # "" start S end E score X
          n++; st[n] = f[3]; en[n] = f[5]; sc[n] = f[7] + 0
      }
      if (n < 6) next
      # the first entries are the positive ones, highest first
      for (i = 1; i <= n; i++) top[i] = i <= 3 && sc[i] > 0
      for (i = 1; i <= n; i++) rnd[i] = 0
      for (k = 0; k < 3; ) { i = 1 + int(rand() * n); if (!rnd[i]) { rnd[i] = 1; k++ } }
      print lab > "labels.txt"; print cut(text[FNR], top) > "top.txt"; print cut(text[FNR], rnd) > "rand.txt"
    }
    function cut(t, sel,   i, out) {
        # spans, right to left, so that earlier offsets stay valid
        out = t
        for (i = n; i >= 1; i--) if (sel[i]) out = substr(out, 1, st[i]) " " substr(out, en[i] + 1)
        return out
    }' few.txt ex.jsonl
for v in few top rand; do
    llm-classify -m ag.llm -k 4 --threads 2 -q $v.txt > p-$v.tsv || exit 1
done
drops=$(paste labels.txt p-few.tsv p-top.tsv p-rand.tsv | awk -F'\t' '
    function prob(first,   i) { for (i = first; i < first + 8; i += 2) if ($i == $1) return $(i + 1); return 0 }
    { n++; p = prob(2); t += p - prob(10); r += p - prob(18) }
    END { printf "%.4f %.4f %d", t / n, r / n, n }')
set -- $drops
echo "explanations: mean probability drop without the top 3 tokens $1, without 3 random tokens $2 ($3 documents)"
awk -v t="$1" -v r="$2" 'BEGIN { exit !(t > r) }' || { echo "FAIL: top-3 deletion does not beat random"; exit 1; }
