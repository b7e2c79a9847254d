#!/bin/sh
# plot.sh: the SVG pictures are well-formed XML (xmllint) and hold the
# numbers they plot. llm-train --plot from its --log file, from memory
# without --log (the same series for the same run), and --plot-only
# redrawing a log; llm-eval --plot on --pairs input whose confusion counts
# and calibration bins are known by hand. Skipped without xmllint.
set -u
command -v xmllint > /dev/null || { echo "no xmllint (Debian libxml2-utils)"; exit 77; }
fail=0
tok=$FIXTURES/tiny.model
train() { llm-train -m "$tok" --layers 1 --dim 16 --heads 2 --ffn-dim 32 --context 16 \
          --steps 30 --eval-every 10 --val-fraction 0.1 --threads 1 -q "$@" "$FIXTURES/tiny.txt"; }
train -o a.llm --log a.jsonl --plot a.svg || exit 1
train -o b.llm --plot b.svg || exit 1
llm-train --plot c.svg --log a.jsonl --plot-only || exit 1
for f in a b c; do xmllint --noout $f.svg || { echo "FAIL: $f.svg is not well-formed"; fail=1; }; done
# The <desc> of each series, as lines of numbers.
series() { awk -v id="$2" '$0 ~ "<g id=\"" id "\"><desc>" { on = 1; next } on && /^<\/desc>/ { exit }
                          on { print }' "$1"; }
series a.svg train > a.train
series a.svg validation > a.val
[ "$(wc -l < a.train)" -eq 30 ] && [ "$(wc -l < a.val)" -eq 3 ] ||
    { echo "FAIL: 30 steps and 3 validations expected"; fail=1; }
# Every logged loss is in the picture (to %g's 6 digits).
bad=$(awk 'NR == FNR { if (match($0, /"step":[0-9]+,"loss":[-0-9.e]+/)) {
              split(substr($0, RSTART, RLENGTH), f, /[":,]+/); want[f[3]] = f[5] + 0 } next }
           { d = $2 - want[$1]; if (!($1 in want) || d > 1e-5 || d < -1e-5) n++ }
           END { print n + 0 }' a.jsonl a.train)
[ "$bad" -eq 0 ] || { echo "FAIL: $bad plotted losses differ from the log"; fail=1; }
series b.svg train | cmp -s - a.train || { echo "FAIL: the plot from memory differs"; fail=1; }
series c.svg train | cmp -s - a.train || { echo "FAIL: --plot-only differs"; fail=1; }
# A log a killed run cut mid-line, resumed from an earlier checkpoint (steps
# 11-20 logged twice): the resumed run starts a line of its own, the cut
# line is skipped with a warning, and the later records of a step replace
# the earlier: the straight run's picture (--plot refused the log before).
train -o d.llm --log d.jsonl --until 10 && cp d.llm.ckpt d10.ckpt &&
    llm-train --resume d.llm.ckpt --until 20 -q || { echo "FAIL: the run in slices"; fail=1; }
head -c -25 d.jsonl > cut.jsonl && mv cut.jsonl d.jsonl
llm-train --resume d10.ckpt --checkpoint d.llm.ckpt --plot d.svg -q 2> err.txt ||
    { echo "FAIL: resumed on a cut log: $(cat err.txt)"; fail=1; }
grep -q "'d.jsonl': 1 damaged line skipped (the first: line 22)" err.txt ||
    { echo "FAIL: no warning for the cut line: $(cat err.txt)"; fail=1; }
series d.svg train | cmp -s - a.train || { echo "FAIL: the cut and resumed log's picture differs"; fail=1; }
[ "$(series d.svg validation | wc -l)" -eq 3 ] || { echo "FAIL: not 3 validations"; fail=1; }
# llm-eval: 3 x a (2 right), 2 x b (1 right); probabilities in known bins.
printf 'a\ta\t0.95\na\ta\t0.91\na\tb\t0.55\nb\tb\t0.65\nb\ta\t0.15\n' > p.tsv
llm-eval --pairs --plot e.svg p.tsv > /dev/null || exit 1
xmllint --noout e.svg || { echo "FAIL: e.svg is not well-formed"; fail=1; }
series e.svg confusion > e.conf
printf 'a\ta\t2\na\tb\t1\nb\ta\t1\nb\tb\t1\n' | cmp -s - e.conf || { echo "FAIL: confusion"; cat e.conf; fail=1; }
series e.svg reliability | awk '$3 > 0 { print $1, $3, $5 }' > e.bins
printf '0.1 1 0\n0.5 1 0\n0.6 1 1\n0.9 2 1\n' | cmp -s - e.bins || { echo "FAIL: bins"; cat e.bins; fail=1; }
llm-train --plot x.svg --plot-only 2> err.txt; [ $? -eq 2 ] || { echo "FAIL: --plot-only without --log"; fail=1; }
exit $fail
