#!/bin/sh
# text-metrics.sh: llm-eval --pairs --text against the Python references.
# The fixtures are real references (French and English of multi30k, Chinese
# news titles of thucnews) with perturbed hypotheses; text_metrics_expected.tsv
# holds what sacreBLEU (corpus BLEU, chrF2), the SQuAD v1.1 script (exact
# match, token F1) and rouge-score (ROUGE-L) compute for each file
# (tests/fixtures/make_text_metrics_reference.py, which needs no run here).
# Every figure must agree to 0.01; the counts exactly.
set -u
exp=$FIXTURES/text_metrics_expected.tsv
[ -f "$exp" ] || { echo "FAIL: no $exp"; exit 1; }
fail=0 checked=0
for f in $(grep -v '^#' "$exp" | cut -f1 | sort -u); do
    llm-eval --pairs --text --format json "$FIXTURES/$f" > "$f.json" ||
        { echo "FAIL: llm-eval on $f"; fail=1; continue; }
    # The JSON object as "name value" lines, arrays as name.0, name.1, ...
    sed 's/[{}]//g; s/\[\([^]]*\)\]/"\1"/g' "$f.json" | tr ',' '\n' |
        awk -F: '
            /^"/ { key = $1; gsub(/"/, "", key); v = $2; gsub(/"/, "", v)
                   if (key == "bleu_precisions") { i = 0; print key "." i, v; next }
                   print key, v; next }
            { i++; gsub(/"/, ""); print key "." i, $0 }' > "$f.got"
    out=$(grep "^$f	" "$exp" | awk -F'\t' -v file="$f" -v got="$f.got" '
        BEGIN { while ((getline l < got) > 0) { split(l, a, " "); v[a[1]] = a[2] } }
        { n++
          if (!($2 in v)) { print "FAIL: " file ": no " $2 " in the output"; bad = 1; next }
          d = v[$2] - $3; if (d < 0) d = -d
          tol = ($2 ~ /_len$|^lines$/) ? 0 : 0.01
          if (d > tol) { printf "FAIL: %s: %s = %s, the Python reference gives %s\n", file, $2, v[$2], $3; bad = 1 } }
        END { printf "%d\n", n; exit bad }')
    st=$?
    echo "$out" | grep FAIL
    [ "$st" -eq 0 ] || fail=1
    checked=$((checked + $(echo "$out" | tail -n 1)))
    echo "$f: $(cat "$f.json")"
done
[ "$checked" -ge 39 ] || { echo "FAIL: only $checked figures checked"; fail=1; }
echo "$checked figures checked"
exit $fail
