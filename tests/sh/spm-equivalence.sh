#!/bin/sh
# spm-equivalence.sh: `llm-tokenize encode` gives exactly what Debian's
# spm_encode gives with the same model, on English (tinyshakespeare, AG News)
# and Chinese (THUCNews titles) text, for unigram and BPE models trained by
# `llm-tokenize train` on a sample of each corpus. Unigram ids come from our
# own encoder (lib/text/unigram.c), BPE ids and all pieces from SentencePiece.
set -eu
command -v spm_encode >/dev/null 2>&1 || { echo "spm_encode not installed"; exit 77; }
ts=${DATA:-}/tinyshakespeare
th=${DATA:-}/thucnews_titles
ag=${DATA:-}/ag_news
[ -f "$ts/train.txt" ] && [ -f "$ts/valid.txt" ] && [ -f "$th/train.tsv" ] &&
    [ -f "$th/test.tsv" ] && [ -f "$ag/train.tsv" ] && [ -f "$ag/test.tsv" ] ||
    { echo "data sets not found under DATA='${DATA:-}'"; exit 77; }

same() { # what: compares ours.txt with ref.txt
    if ! cmp -s ours.txt ref.txt; then
        echo "FAIL: $1: llm-tokenize and spm_encode differ"
        diff ours.txt ref.txt | head -10
        exit 1
    fi
    echo "ok: $1 ($(wc -l < ours.txt) lines)"
}

# English, default normalisation (nmt_nfkc), whole train and valid files.
head -n 6000 "$ts/train.txt" > sample.txt
llm-tokenize train --vocab-size 1000 --threads 2 -o en.model sample.txt
cat "$ts/train.txt" "$ts/valid.txt" > en.txt
llm-tokenize encode -m en.model en.txt > ours.txt
spm_encode --model=en.model --output_format=id < en.txt > ref.txt
same "tinyshakespeare, unigram, ids"

llm-tokenize train --model-type bpe --vocab-size 1000 --threads 2 -o bpe.model sample.txt
llm-tokenize encode -m bpe.model "$ts/valid.txt" > ours.txt
spm_encode --model=bpe.model --output_format=id < "$ts/valid.txt" > ref.txt
same "tinyshakespeare, bpe, ids"

# AG News, every train and test text (the column after the label, then the
# whole labelled lines, tabs included): with the default normalisation, and
# with identity normalisation and no byte fallback (unknowns merged).
cut -f 2 "$ag/train.tsv" | head -n 3000 > ag-sample.txt
cut -f 2 "$ag/train.tsv" "$ag/test.tsv" > ag.txt
cat "$ag/train.tsv" "$ag/test.tsv" >> ag.txt
llm-tokenize train --vocab-size 4000 --threads 2 -o ag.model ag-sample.txt
llm-tokenize encode -m ag.model ag.txt > ours.txt
spm_encode --model=ag.model --output_format=id < ag.txt > ref.txt
same "ag news, unigram, ids"
llm-tokenize train --vocab-size 2000 --threads 2 --normalization identity \
    --no-byte-fallback -o ag-id.model ag-sample.txt
llm-tokenize encode -m ag-id.model ag.txt > ours.txt
spm_encode --model=ag-id.model --output_format=id < ag.txt > ref.txt
same "ag news, unigram, identity, no byte fallback, ids"

# Chinese titles: the text column; rare characters go through byte pieces.
cut -f 2 "$th/train.tsv" | head -n 4000 > zh-sample.txt
cut -f 2 "$th/test.tsv" > zh.txt
llm-tokenize train --vocab-size 4000 --threads 2 -o zh.model zh-sample.txt
llm-tokenize encode -m zh.model zh.txt > ours.txt
spm_encode --model=zh.model --output_format=id < zh.txt > ref.txt
same "thucnews titles, unigram, ids"
llm-tokenize train --vocab-size 4000 --threads 2 --normalization identity \
    -o zh-id.model zh-sample.txt
cut -f 2 "$th/train.tsv" >> zh.txt   # from here on, train titles too
llm-tokenize encode -m zh-id.model zh.txt > ours.txt
spm_encode --model=zh-id.model --output_format=id < zh.txt > ref.txt
same "thucnews titles, unigram, identity, ids"
llm-tokenize encode -m zh.model --output-format pieces zh.txt > ours.txt
spm_encode --model=zh.model --output_format=piece < zh.txt > ref.txt
same "thucnews titles, unigram, pieces"
