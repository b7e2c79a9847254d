#!/bin/sh
# demo.sh: the whole toolkit on a corpus every Debian machine can have (the
# `fortunes` package, 43 files of quotations): train a tokenizer and a small
# language model, generate new fortunes, fine-tune a classifier of four
# well-separated categories, label held-out fortunes and score the labels.
# Every step is a plain llm-* command, printed before it runs. About five
# minutes on 2 cores; the results are the same on every run (seed 1).
set -eu
TOP=$(cd "$(dirname "$0")/.." && pwd)
BIN=${BIN:-$TOP/${B:-build}/bin}
PATH=$BIN:$PATH
FORTUNES=${FORTUNES:-/usr/share/games/fortunes}
OUT=${DEMO_DIR:-$TOP/demo}
STEPS=${DEMO_STEPS:-400}        # pretraining steps; the test suite uses fewer
EPOCHS=${DEMO_EPOCHS:-3}        # classifier epochs
THREADS=${DEMO_THREADS:-0}
[ -d "$FORTUNES" ] || { echo "demo: no $FORTUNES (apt-get install fortunes)" >&2; exit 1; }
mkdir -p "$OUT"
cd "$OUT"

say() { printf '\n== %s\n' "$*" >&2; }
run() { printf '$ %s\n' "$*" >&2; "$@"; }

# A fortune file holds records separated by "%" lines; here one per line.
records() {
    awk 'BEGIN { RS = "\n%\n" } { gsub(/[ \t]*\n[ \t]*/, " "); gsub(/^ +| +$/, "");
                                 if (length($0) > 0) print }' "$1"
}

say "corpus: every fortune, one per line"
for f in "$FORTUNES"/*; do
    case $f in *.dat|*.u8) continue;; esac
    [ -f "$f" ] && records "$f"
done > fortunes.txt
printf '%s fortunes, %s bytes in %s/fortunes.txt\n' \
    "$(wc -l < fortunes.txt)" "$(wc -c < fortunes.txt)" "$OUT" >&2

say "1. a tokenizer"
run llm-tokenize train --vocab-size 2000 --seed 1 -o tok.model fortunes.txt
echo "The pump failed because the bearing overheated." |
    run llm-tokenize encode -m tok.model --output-format pieces

say "2. a language model (tiny preset: 4 layers x 128, about 1M parameters)"
run llm-tokenize encode -m tok.model --bos --eos --output-format bin -o fortunes.tok fortunes.txt
run llm-train -m tok.model --preset tiny --context 128 --batch 16 --lr 2e-3 --warmup 20 \
    --steps "$STEPS" --val-fraction 0.05 --eval-every 100 --seed 1 --threads "$THREADS" \
    --progress -o fortunes.llm fortunes.tok

say "3. new fortunes, one per prompt line"
printf 'A computer\nLove is\nThe meaning of life\n' > prompts.txt
run llm-generate -m fortunes.llm -n 40 --temperature 0.8 --seed 1 --echo --threads "$THREADS" prompts.txt

say "4. a classifier of four categories, fine-tuned from the language model"
# Every fifth fortune of each category is held out for testing.
for cat in computers definitions politics startrek; do
    records "$FORTUNES/$cat" | awk -v c="$cat" '{ print c "\t" $0 }'
done > labelled.tsv
awk 'NR % 5 != 0' labelled.tsv > train.tsv
awk 'NR % 5 == 0' labelled.tsv > test.tsv
printf '%s training and %s test fortunes\n' "$(wc -l < train.tsv)" "$(wc -l < test.tsv)" >&2
run llm-train --task classify --init fortunes.llm --epochs "$EPOCHS" --batch 16 --lr 1e-3 \
    --val-fraction 0.1 --seed 1 --threads "$THREADS" --progress -o topics.llm train.tsv

say "5. label the held-out fortunes and score the labels"
cut -f 2 test.tsv | run llm-classify -m topics.llm --threads "$THREADS" > predicted.tsv
head -n 3 predicted.tsv
run llm-eval -m topics.llm --threads "$THREADS" test.tsv

cat >&2 <<EOF

== done. In $OUT:
  tok.model      the tokenizer           llm-tokenize info -m tok.model
  fortunes.llm   the language model      echo 'Never' | llm-generate -m fortunes.llm
  topics.llm     the classifier          echo 'Beam me up' | llm-classify -m topics.llm
Next: man llm (the overview), man llm-train, man llm-classify.
EOF
