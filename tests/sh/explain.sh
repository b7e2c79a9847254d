#!/bin/sh
# explain.sh: llm-classify --explain is faithful on a classifier whose labels
# are decided by one planted keyword. Documents are 12 words drawn from 30
# fillers; labels a-d each plant their own keyword at a random place, label e
# plants none (so that no keyword class is "everything else"). A 1-layer,
# 32-wide classifier over a word tokenizer learns this exactly; then, on 200
# fresh documents, the top-scored token must be the keyword in at least 95%
# of the keyword documents, with integrated gradients and with occlusion
# (measured: 141 and 144 of 144),
# and every reported token must be the bytes its start/end offsets name in
# the record; llm-eval --top-tokens names each keyword first for its label.
# Also: a document longer than the context is explained over its kept
# beginning and flagged ("explain_truncated", a warning).
set -u
awk -v seed=1 -v n=1000 -f "$TOP/tests/sh/keywords.awk" > train.tsv
awk -v seed=2 -v n=200 -f "$TOP/tests/sh/keywords.awk" > test.tsv
cut -f2 train.tsv > text.txt
fail=0
llm-tokenize train --model-type word --no-byte-fallback --vocab-size 48 -q -o w.model text.txt || exit 1
llm-train --task classify -m w.model --layers 1 --dim 32 --heads 2 --ffn-dim 64 --context 16 \
    --steps 150 --batch 16 --lr 3e-3 --threads 2 -q -o k.llm train.tsv || exit 1
for method in ig occlusion; do
    llm-classify -m k.llm -f 2 --explain=1 --explain-method $method test.tsv > $method.tsv || exit 1
    # field 3: "token:score ..." of the predicted label
    share=$(awk -F'\t' 'BEGIN { split("zebra quartz violin copper", kw, " ")
                               split("a b c d", lab, " "); for (i in lab) want[lab[i]] = kw[i] }
        NR == FNR { gold[FNR] = $1; next }
        gold[FNR] in want { n++; split($3, p, " "); sub(/:[^:]*$/, "", p[1]); ok += p[1] == want[gold[FNR]] }
        END { printf "%.3f %d", ok / n, n }' test.tsv $method.tsv)
    echo "$method: keyword on top in $share keyword documents"
    awk -v s="${share% *}" 'BEGIN { exit !(s >= 0.95) }' || { echo "FAIL: $method: $share < 0.95"; fail=1; }
done
# Offsets: every token of every explanation is the record's bytes there.
llm-classify -m k.llm -f 2 --explain=5 --format jsonl test.tsv > ex.jsonl || exit 1
bad=$(awk -F'\t' 'NR == FNR { text[FNR] = $2; next }
    { s = $0
      while (match(s, /"token":"[^"]*","start":[0-9]+,"end":[0-9]+/)) {
          e = substr(s, RSTART, RLENGTH); s = substr(s, RSTART + RLENGTH)
          split(e, f, /[":,]+/)   # "" token T start S end E
          n++
          if (substr(text[FNR], f[5] + 1, f[7] - f[5]) != f[3]) bad++
      } }
    END { print bad + 0, n + 0 }' test.tsv ex.jsonl)
echo "offsets: ${bad% *} of ${bad#* } tokens do not match their bytes"
[ "${bad% *}" -eq 0 ] && [ "${bad#* }" -ge 1000 ] || { echo "FAIL: offsets ($bad)"; fail=1; }
# llm-eval --top-tokens: the keyword drives each keyword label.
llm-eval -m k.llm --top-tokens 2 test.tsv > top.txt || exit 1
for p in "a: zebra (" "b: quartz (" "c: violin (" "d: copper ("; do
    grep -qF "$p" top.txt || { echo "FAIL: llm-eval --top-tokens: no '$p'"; cat top.txt; fail=1; }
done
llm-eval -m k.llm --top-tokens 1 --format json test.tsv | grep -q '"top_tokens":{"a":\[{"token":"zebra","documents":' ||
    { echo "FAIL: --top-tokens in JSON"; fail=1; }
# On a terminal (script(1) makes one) the text follows in colour, the
# keyword on green; in a pipe never.
esc=$(printf '\033')
if command -v script > /dev/null 2>&1; then
    script -qc "printf 'x\tthe zebra was here\n' | llm-classify -m k.llm -f 2 --explain=1" /dev/null > tty.txt
    grep -q "${esc}\[97;48;5;[0-9]*mzebra${esc}\[0m" tty.txt ||
        { echo "FAIL: no coloured keyword on a terminal"; cat -v tty.txt; fail=1; }
else
    echo "no script(1): the terminal colours are not tried"
fi
printf 'x\tthe zebra was here\n' | llm-classify -m k.llm -f 2 --explain=1 | grep -q "$esc" &&
    { echo "FAIL: colour codes in a pipe"; fail=1; }
# Longer than the context (16): the beginning is explained and flagged.
long="the of and to in is was for on that with as by at from this are be it zebra"
printf 'x\t%s\n' "$long" | llm-classify -m k.llm -f 2 --explain=3 --format jsonl > long.jsonl 2> long.err || exit 1
grep -q '"explain_truncated":true' long.jsonl || { echo "FAIL: no explain_truncated"; cat long.jsonl; fail=1; }
grep -q 'explanation covers only the first 16 tokens' long.err || { echo "FAIL: no warning"; cat long.err; fail=1; }
grep -q '"token":"zebra"' long.jsonl && { echo "FAIL: a token past the context explained"; fail=1; }

# Every token of a document at most once, the positive scores falling, then
# the negative ones rising (the negatives were reversed in place over
# entries not yet read: a token dropped, another repeated).
for method in ig occlusion; do
    llm-classify -m k.llm -f 2 --explain=100 --explain-method $method --format jsonl \
        test.tsv > all-$method.jsonl || exit 1
    bad=$(awk '{ n = split($0, t, "\"start\":"); delete seen; neg = 0; prev = ""; ok = n > 1
                 for (i = 2; i <= n; i++) {
                     s = t[i]; sub(/,.*/, "", s)
                     v = t[i]; sub(/.*"score":/, "", v); sub(/[}].*/, "", v); v += 0
                     if (s in seen) ok = 0
                     seen[s] = 1
                     if (v < 0 && !neg) { neg = 1; prev = "" }
                     if (v > 0 && neg) ok = 0
                     if (prev != "" && (neg ? v < prev : v > prev)) ok = 0
                     prev = v }
                 if (!ok) bad++ }
               END { print bad + 0 }' all-$method.jsonl)
    [ "$bad" -eq 0 ] || { echo "FAIL: $method: $bad records whose tokens repeat or are out of order"; fail=1; }
done
exit $fail
