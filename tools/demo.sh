#!/bin/sh
# demo.sh: the toolkit's main job on a corpus every Debian machine can have
# (the `fortunes` package): train a tokenizer, look at it, encode and decode.
# Every step is a plain llm-* command, printed before it runs.
set -eu
TOP=$(cd "$(dirname "$0")/.." && pwd)
BIN=${BIN:-$TOP/${B:-build}/bin}
PATH=$BIN:$PATH
FORTUNES=${FORTUNES:-/usr/share/games/fortunes}
OUT=${DEMO_DIR:-$TOP/demo}
mkdir -p "$OUT"
cd "$OUT"

run() { printf '\n$ %s\n' "$*" >&2; "$@"; }

# Fortunes are records separated by "%" lines; one record per line here.
for f in "$FORTUNES"/*; do
    case $f in *.dat|*.u8) continue;; esac
    [ -f "$f" ] || continue
    awk 'BEGIN { RS = "\n%\n" } { gsub(/[ \t]*\n[ \t]*/, " "); if (length($0) > 0) print }' "$f"
done > fortunes.txt
printf 'corpus: %s records, %s bytes of fortunes in %s/fortunes.txt\n' \
    "$(wc -l < fortunes.txt)" "$(wc -c < fortunes.txt)" "$OUT" >&2

run llm-tokenize train --vocab-size 4000 --seed 1 -o tok.model fortunes.txt
run llm-tokenize info -m tok.model
echo "The pump failed because the bearing overheated." > prompt.txt
run llm-tokenize encode -m tok.model --output-format pieces prompt.txt
run llm-tokenize encode -m tok.model prompt.txt
run llm-tokenize encode -m tok.model --bos --eos --output-format bin -o fortunes.tok fortunes.txt
run llm-tokenize decode -m tok.model fortunes.tok | head -n 3
printf '\nmodel: %s/tok.model   tokens: %s/fortunes.tok (%s bytes)\n' "$OUT" "$OUT" "$(wc -c < fortunes.tok)" >&2
echo "next: man llm-tokenize, man llm-formats" >&2
