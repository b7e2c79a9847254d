#!/bin/sh
# roundtrip.sh: with identity normalisation and byte fallback, encode then
# decode gives the input back byte for byte: emoji, CJK, combining marks,
# characters never seen in training, tabs, runs of spaces, leading and
# trailing blanks, carriage returns, empty lines; through ids and token files.
set -eu
m=$FIXTURES/tiny.model
printf '%s\n' \
    'plain ASCII line' \
    '' \
    '   three leading spaces' \
    'trailing spaces   ' \
    '     ' \
    '	' \
    'tab	separated	fields		with an empty one' \
    'many     spaces     inside' \
    'emoji 🦄🐉🧪 family 👨‍👩‍👧 flag 🇫🇷 skin 👍🏽' \
    'CJK 漢字かなカナ한국어 ｆｕｌｌｗｉｄｔｈ ＡＢＣ' \
    'combining: e\xcc\x81 vs é, a\xcc\x88 vs ä, Z̤̈ stacked' \
    'ligature ﬁ, ellipsis …, nbsp here, ZWJ‍join, BOM﻿mid' \
    'Ünïcödé — “quotes” ‘single’ « guillemets »' \
    'Cyrillic Кириллица, Greek Ελληνικά, Arabic العربية, Hebrew עברית' \
    'math ∑∫√∞ ≤ ≥ ≠ and arrows ← → ↑ ↓' \
    'private use  and astral 𝔘𝔫𝔦𝔠𝔬𝔡𝔢 𓀀' > in.txt
# printf %s kept the \x escapes literal; make them real bytes, add a CR line.
sed 's/\\xcc\\x81/\xcc\x81/; s/\\xcc\\x88/\xcc\x88/' in.txt > t && mv t in.txt
printf 'carriage return at the end\r\nlast line without newline' >> in.txt
cat in.txt > all.txt; printf '\n' >> all.txt; cat "$FIXTURES/tiny.txt" >> all.txt
if [ -f "${DATA:-}/tinyshakespeare/valid.txt" ]; then
    cat "$DATA/tinyshakespeare/valid.txt" >> all.txt
fi
vocab=600
if [ -f "${DATA:-}/thucnews_titles/test.tsv" ]; then
    head -n 2000 "$DATA/thucnews_titles/test.tsv" >> all.txt
    vocab=3500   # room for the Chinese characters
fi

check() { # what expected actual
    if ! cmp -s "$2" "$3"; then
        echo "FAIL: $1: text differs after the round trip"
        diff "$2" "$3" | head -10
        exit 1
    fi
    echo "ok: $1"
}

# The decoder writes a newline after every line, so a last line without
# one comes back with one.
cp all.txt want.txt; [ -z "$(tail -c 1 want.txt)" ] || printf '\n' >> want.txt

llm-tokenize encode -m "$m" all.txt > ids.txt
llm-tokenize decode -m "$m" ids.txt > back.txt
check "ids" want.txt back.txt
[ "$(wc -l < ids.txt)" -eq "$(wc -l < want.txt)" ] || { echo "FAIL: line count"; exit 1; }

llm-tokenize encode -m "$m" --eos --output-format bin all.txt > all.tok
llm-tokenize decode -m "$m" all.tok > back.txt
check "token file" want.txt back.txt

# The same through pipes, with BOS and EOS in the id lines.
llm-tokenize encode -m "$m" --bos --eos < all.txt | llm-tokenize decode -m "$m" > back.txt
check "pipes with --bos --eos" want.txt back.txt

# A model trained here with the same settings round-trips too.
llm-tokenize train --vocab-size $vocab --normalization identity --threads 2 -o own.model all.txt
llm-tokenize encode -m own.model all.txt | llm-tokenize decode -m own.model > back.txt
check "freshly trained identity model" want.txt back.txt
