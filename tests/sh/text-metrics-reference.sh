#!/bin/sh
# text-metrics-reference.sh: llm-eval --pairs --text against sacreBLEU,
# rouge-score and the SQuAD v1.1 definitions on fresh files: the fixtures'
# generator run with two other seeds (other perturbations of other lines'
# hypotheses), then text-metrics.sh's comparison on them. Skips (77)
# without python3, sacrebleu and rouge-score, or without ../shared/data.
set -u
PY=${PYTHON:-python3}
command -v "$PY" >/dev/null 2>&1 || { echo "python3 not installed"; exit 77; }
"$PY" -c 'import sacrebleu, rouge_score' 2>/dev/null ||
    { echo "python3 cannot import sacrebleu and rouge_score (pip install sacrebleu rouge-score)"; exit 77; }
[ -f "$DATA/multi30k_en_fr/test.tsv" ] && [ -f "$DATA/thucnews_titles/test.tsv" ] ||
    { echo "no $DATA/multi30k_en_fr or thucnews_titles"; exit 77; }
fail=0
for seed in 7 $(date +%s); do
    mkdir -p "fresh$seed"
    "$PY" "$TOP/tests/fixtures/make_text_metrics_reference.py" --data "$DATA" \
        --out "fresh$seed" --seed "$seed" || { echo "FAIL: the generator, seed $seed"; exit 1; }
    (cd "fresh$seed" && FIXTURES=$PWD sh "$TOP/tests/sh/text-metrics.sh") ||
        { echo "FAIL: seed $seed"; fail=1; }
done
exit $fail
