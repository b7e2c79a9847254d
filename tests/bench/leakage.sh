#!/bin/sh
# leakage.sh: llm-eval --leakage at scale: 1,000,000 training lines against
# 100,000 test lines (10-30 words each, drawn from the words of ag_news by
# their frequency; 5,000 test lines are training lines with one word
# changed and 5,000 with only case and punctuation changed), the scale the
# issue sets a minute for on 2 cores. Prints the time, peak memory and what
# was found against what was planted. Then the same search over templated
# lines (LEAK_TPL_TRAIN, default 20,000, against LEAK_TPL_TEST, 2,000, of
# "pump 17 inspected on 2024-03-12 by technician Chen, pressure 4.2 bar,
# ..."): there every test line is a candidate of thousands of training
# lines, each pair confirmed by exact Jaccard, the search's worst case.
# No peer tool does this from the shell.
set -u
ag=${DATA:-}/ag_news/train.tsv
[ -f "$ag" ] || { echo "ag_news not found under DATA='${DATA:-}'"; exit 77; }
NTRAIN=${LEAK_TRAIN:-1000000}
NTEST=${LEAK_TEST:-100000}
echo "CPU: $(lscpu | sed -n 's/^Model name: *//p'), $(nproc) cores"
cut -f2 "$ag" | tr -s ' ' '\n' > words.txt
awk -v ntrain="$NTRAIN" -v ntest="$NTEST" '
    { w[n++] = $0 }
    function line(   k, s, i) {
        k = 10 + int(rand() * 21); s = w[int(rand() * n)]
        for (i = 1; i < k; i++) s = s " " w[int(rand() * n)]
        return s
    }
    END {
        srand(1)
        for (i = 0; i < ntrain; i++) { t[i] = line(); print t[i] > "train.txt" }
        for (i = 0; i < ntest; i++) {
            if (i % 20 == 0) {            # one word changed
                m = split(t[int(rand() * ntrain)], a, " "); a[1 + int(rand() * m)] = w[int(rand() * n)]
                s = a[1]; for (j = 2; j <= m; j++) s = s " " a[j]; print s > "test.txt"
            } else if (i % 20 == 1)       # case and punctuation
                print toupper(t[int(rand() * ntrain)]) "!" > "test.txt"
            else
                print line() > "test.txt"
        }
    }' words.txt
printf '%s training lines (%s MB), %s test lines\n' "$(wc -l < train.txt)" \
    "$(du -m train.txt | cut -f1)" "$(wc -l < test.txt)"
/usr/bin/time -f '%e %M' -o time.txt llm-eval --leakage train.txt test.txt > out.txt ||
    { echo "llm-eval failed"; exit 1; }
read -r secs kb < time.txt
tail -n 2 out.txt
awk -F'\t' '!/^#/ { k[$3]++ } END { printf "found: %d exact, %d near\n", k["exact"], k["near"] }' out.txt
echo "planted: $((NTEST / 20)) exact after folding, up to $((NTEST / 20)) near (one word of 10-30 changed)"
printf 'llm-eval --leakage: %.1f s, %.0f MB peak\n' "$secs" "$(echo "$kb" | awk '{ print $1 / 1024 }')"

# Templated lines: maintenance reports of one form with varying fields.
awk -v ntrain="${LEAK_TPL_TRAIN:-20000}" -v ntest="${LEAK_TPL_TEST:-2000}" '
    function line() {
        split("Ahmed Berg Chen Diaz Evans", tech, " ")
        return sprintf("Pump %d inspected on 2024-%02d-%02d by technician %s, pressure %.1f bar, vibration %d, no fault found",
            1 + int(rand() * 40), 1 + int(rand() * 12), 1 + int(rand() * 28), tech[1 + int(rand() * 5)],
            1 + rand() * 8, 1 + int(rand() * 99))
    }
    BEGIN {
        srand(1)
        for (i = 0; i < ntrain; i++) print line() > "tpl-train.txt"
        for (i = 0; i < ntest; i++) print line() > "tpl-test.txt"
    }'
/usr/bin/time -f '%e %M' -o time.txt llm-eval --leakage tpl-train.txt tpl-test.txt > tpl.txt ||
    { echo "llm-eval failed on templated lines"; exit 1; }
read -r secs kb < time.txt
tail -n 2 tpl.txt | head -n 1
printf 'llm-eval --leakage, %s templated training lines against %s: %.1f s, %.0f MB peak\n' \
    "$(wc -l < tpl-train.txt)" "$(wc -l < tpl-test.txt)" "$secs" \
    "$(echo "$kb" | awk '{ print $1 / 1024 }')"
