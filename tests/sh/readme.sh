#!/bin/sh
# readme.sh: the tour in README.md, run as written, so that it cannot rot.
# The commands between the "tour" markers are extracted and run by sh in a
# directory holding the files they name, made from ../shared/data/ag_news
# (skipped when absent): corpus.txt and held-out.txt (text, one document per
# line), labelled.tsv and test.tsv (label<TAB>text), notes.txt (text to label).
set -u
d=$DATA/ag_news
[ -f "$d/train.tsv" ] && [ -f "$d/test.tsv" ] || { echo "no $d"; exit 77; }
[ -z "${SANITIZED:-}" ] || { echo "skipped under sanitizers (too slow there)"; exit 77; }
cut -f 2 "$d/train.tsv" > corpus.txt
cut -f 2 "$d/test.tsv" | head -n 300 > held-out.txt
head -n 1200 "$d/train.tsv" > labelled.tsv
tail -n 300 "$d/test.tsv" > test.tsv
cut -f 2 test.tsv | head -n 50 > notes.txt
awk '/<!-- tour -->/ { on = 1; next } /<!-- \/tour -->/ { on = 0 } on && !/^```/' \
    "$TOP/README.md" > tour.sh
[ "$(grep -c 'llm-' tour.sh)" -ge 8 ] || { echo "FAIL: no tour found in README.md"; cat tour.sh; exit 1; }
echo "running README's tour:"
sed 's/^/    /' tour.sh
sh -eux tour.sh > tour.out 2> tour.err || { echo "FAIL: the tour failed"; tail -n 30 tour.err; exit 1; }
fail=0
# What each step should have left behind.
[ -s tok.model ] && [ -s corpus.tok ] && [ -s base.llm ] && [ -s risk.llm ] || { echo "FAIL: missing model files"; fail=1; }
[ "$(wc -l < labels.tsv)" -eq "$(wc -l < notes.txt)" ] || { echo "FAIL: labels.tsv does not have one record per note"; fail=1; }
grep -q "accuracy" tour.out || { echo "FAIL: no accuracy in the output"; fail=1; }
[ "$(grep -c '"explain":\[{"token":' why.jsonl)" -eq "$(wc -l < notes.txt)" ] || { echo "FAIL: why.jsonl lacks explanations"; fail=1; }
grep -q "^tokens that most often drive each predicted label" tour.out || { echo "FAIL: no --top-tokens"; fail=1; }
for f in base.svg risk.svg; do grep -q '</svg>' $f || { echo "FAIL: no picture $f"; fail=1; }; done
grep -q "perplexity" tour.out || { echo "FAIL: no perplexity in the output"; fail=1; }
grep -q "^# test.tsv: .* documents .* also in labelled.tsv" tour.out || { echo "FAIL: no leakage summary in the output"; fail=1; }
exit $fail
