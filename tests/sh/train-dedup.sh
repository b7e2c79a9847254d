#!/bin/sh
# train-dedup.sh: llm-train --task classify warns when validation documents
# (--val, or the --val-fraction split) are also in the training data, with
# exact and near counts, and --dedup drops the documents that repeat an
# earlier one (folded: case and punctuation) before the split. Expected
# counts by hand: l.tsv holds 6 lines, of which line 3 is line 1 folded and
# line 6 is line 2; v.tsv's first line is l.tsv's first without its full
# stop, its second is new; v.tsv's third line is l.tsv's line 5 with one
# word of 16 changed (5-gram Jaccard 0.8356 >= 0.8, near). Language models:
# a --val text made of training lines has all its 13-token sequences in the
# training data (warned, 100%); fresh sentences have none (no warning).
# --dedup with --task lm is a usage error.
set -u
printf 'a\tThe pump failed at the north station.\nb\tInvoice paid twice in March.\na\tthe PUMP failed at the north station!\nb\tA quite different line here.\na\tanother long line about the pumps and valves of the plant in the west wing\nb\tInvoice paid twice in March.\n' > l.tsv
printf 'a\tThe pump failed at the north station\nb\tnew text entirely\na\tanother long line about the pumps and valves of the plant in the east wing\n' > v.tsv
tok=$FIXTURES/tiny.model
fail=0
run() { llm-train --task classify -m "$tok" --preset tiny --steps 1 -q -o m.llm "$@" 2> err.txt ||
        { echo "FAIL: llm-train $*"; cat err.txt; fail=1; }; cat err.txt; }
want() { grep -qF -e "$1" err.txt || { echo "FAIL: no '$1'"; fail=1; }; }
run --val v.tsv l.tsv
want "warning: 2 of 3 --val documents are also in the training data (1 exact, 1 near,"
run --val-fraction 0.5 l.tsv
want "warning: 2 of 3 validation documents are also in the training data (2 exact, 0 near,"
want "--dedup drops exact repeats before the split"
run --val-fraction 0.5 --dedup l.tsv
grep -q warning err.txt && { echo "FAIL: a warning after --dedup"; fail=1; }
llm-train --task classify -m "$tok" --preset tiny --steps 1 -o m.llm --dedup l.tsv 2> err.txt
cat err.txt
want "llm-train: --dedup: dropped 2 of 6 documents that repeat an earlier one"
want "llm-train: 4 training documents, 2 labels"
head -40 "$FIXTURES/tiny.txt" > seen.txt
printf 'Zebras quietly paint violet copper bridges under seven moons tonight while kettles hum about the weather of distant harbours.\nA second fresh sentence mentions quartz, violins and the peculiar habits of accountants in spring.\n' > fresh.txt
lm() { llm-train -m "$tok" --layers 1 --dim 16 --heads 2 --ffn-dim 16 --context 16 --steps 1 \
       -q -o lm.llm --val "$1" "$FIXTURES/tiny.txt" 2> err.txt || { echo "FAIL: llm-train --val $1"; fail=1; }
       cat err.txt; }
lm seen.txt
grep -qE '^llm-train: warning: ([0-9]+) of \1 13-token sequences of the --val text \(100\.0%\) also occur' err.txt ||
    { echo "FAIL: no 100% overlap warning"; fail=1; }
lm fresh.txt
[ -s err.txt ] && { echo "FAIL: a warning for fresh --val text"; fail=1; }
# --dedup reads labelled documents: with --task lm it would drop nothing, a
# usage error naming both options, before the input is read.
llm-train -m "$tok" --layers 1 --dim 16 --heads 2 --ffn-dim 16 --context 16 --steps 0 -q \
    -o x.llm --dedup "$FIXTURES/tiny.txt" 2> err.txt
[ $? -eq 2 ] && [ ! -e x.llm ] &&
    grep -qxF "llm-train: --dedup is for --task classify (--task lm trains on every document as it is)" err.txt ||
    { echo "FAIL: --dedup with --task lm: $(cat err.txt)"; fail=1; }
exit $fail
