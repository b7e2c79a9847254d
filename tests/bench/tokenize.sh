#!/bin/sh
# tokenize.sh: encode throughput of `llm-tokenize encode` against Debian's
# spm_encode, same model, same input, output into a pipe; best of 3 runs.
# Also checks that both produce the same ids (a fast tool that is wrong is
# not faster).
set -u
command -v spm_encode >/dev/null 2>&1 || { echo "spm_encode not installed"; exit 77; }
ts=${DATA:-}/tinyshakespeare
th=${DATA:-}/thucnews_titles
[ -f "$ts/train.txt" ] && [ -f "$th/train.tsv" ] ||
    { echo "data sets not found under DATA='${DATA:-}'"; exit 77; }

now() { date +%s.%N; }
best() { # command...: prints the best wall time of 3 runs, in seconds
    b=
    for i in 1 2 3; do
        t0=$(now)
        "$@"
        t1=$(now)
        b=$(echo "$t0 $t1 ${b:-1e9}" | awk '{ d = $2 - $1; print (d < $3 ? d : $3) }')
    done
    echo "$b"
}
ours() { llm-tokenize encode -m "$1" "$2" | cat > /dev/null; }
spm() { spm_encode --model="$1" --output_format=id < "$2" | cat > /dev/null; }

# English: tinyshakespeare train+valid repeated to ~10 MB; Chinese: THUCNews
# titles repeated to ~5 MB.
llm-tokenize train --vocab-size 8000 -q -o en.model "$ts/train.txt"
: > en.txt
for i in 1 2 3 4 5 6 7 8 9; do cat "$ts/train.txt" "$ts/valid.txt" >> en.txt; done
cut -f 2 "$th/train.tsv" > zh-sample.txt
llm-tokenize train --vocab-size 8000 -q -o zh.model zh-sample.txt
: > zh.txt
for i in 1 2 3 4 5 6 7 8; do cut -f 2 "$th/train.tsv" "$th/test.tsv" >> zh.txt; done

printf '%-14s %8s %9s %10s %11s %10s %11s %6s\n' input MB lines \
    "ours s" "ours MB/s" "spm s" "spm MB/s" ratio
for c in en zh; do
    llm-tokenize encode -m $c.model $c.txt > a.ids
    spm_encode --model=$c.model --output_format=id < $c.txt > b.ids
    cmp -s a.ids b.ids || echo "WARNING: $c: ids differ from spm_encode"
    bytes=$(wc -c < $c.txt)
    lines=$(wc -l < $c.txt)
    to=$(best ours $c.model $c.txt)
    ts_=$(best spm $c.model $c.txt)
    echo "$c $bytes $lines $to $ts_" | awk '{
        mb = $2 / 1e6
        printf "%-14s %8.1f %9d %10.2f %11.2f %10.2f %11.2f %5.2fx\n",
            $1 == "en" ? "tinyshakesp." : "thucnews", mb, $3, $4, mb / $4, $5, mb / $5, $5 / $4
        printf "%-14s %8s %9s %10s %11s %10s %11s\n", "  lines/s", "", "",
            "", sprintf("%.0f", $3 / $4), "", sprintf("%.0f", $3 / $5)
    }'
done
