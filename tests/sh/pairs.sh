#!/bin/sh
# pairs.sh: llm-train --task pairs end to end, on a task with one right
# answer per input (copy the words of the input): trained from scratch, the
# model must write the right output for most held-out inputs (65-75% after
# 300 steps of this small model; an untrained one gets none), greedy and
# with beams; beams give the same bytes whatever the batch; JSON Lines and
# TSV train the same model; bad pairs files get a message naming the line;
# --eval-samples without validation and --eval-tokens are usage errors.
set -u
fail=0
no() { echo "FAIL: $*"; fail=1; }
tok=$FIXTURES/tiny.model

awk 'BEGIN { srand(7); split("red green blue cat dog sun moon tree", w, " ");
             for (i = 0; i < 2300; i++) { n = 2 + int(rand() * 4); s = "";
                 for (j = 0; j < n; j++) s = s (j ? " " : "") w[1 + int(rand() * 8)];
                 print s "\t" s } }' > all.tsv
head -n 2200 all.tsv > train.tsv
tail -n 100 all.tsv > val.tsv
cut -f1 val.tsv > in.txt
cut -f2 val.tsv > ref.txt

shape="--layers 2 --dim 64 --heads 4 --context 64 --batch 8 -t 2 --seed 3"
llm-train --task pairs -m "$tok" -o copy.llm $shape --steps 300 --lr 4e-3 --warmup 20 \
    --val val.tsv --eval-every 100 --eval-samples 40 --log log.jsonl train.tsv 2>err ||
    no "training: $(cat err)"
grep -q '"val_bleu":' log.jsonl || no "the log has no val_bleu: $(cat log.jsonl)"
grep -q 'training pairs packed in' err || no "no summary of the packing: $(cat err)"

# Greedy (the default for a pairs model): most outputs exactly right.
llm-generate -m copy.llm -t 2 in.txt > greedy.txt 2>err || no "generate: $(cat err)"
[ "$(wc -l < greedy.txt)" -eq 100 ] || no "$(wc -l < greedy.txt) outputs for 100 inputs"
paste ref.txt greedy.txt | llm-eval --pairs --text --format json > g.json ||
    no "llm-eval on the outputs failed"
em=$(sed 's/.*"exact_match":\([0-9.]*\).*/\1/' g.json)
awk -v e="$em" 'BEGIN { exit !(e >= 50) }' || no "greedy exact match $em% (want >= 50%)"
llm-generate -m copy.llm -t 2 in.txt | cmp -s - greedy.txt || no "greedy is not deterministic"

# Beams: the same bytes one input at a time and 32 at a time.
llm-generate -m copy.llm -t 2 --beams 4 -b 4 in.txt > beam1.txt 2>err || no "beams: $(cat err)"
llm-generate -m copy.llm -t 2 --beams 4 -b 128 in.txt > beam32.txt || no "beams -b 128"
cmp -s beam1.txt beam32.txt || no "beam search depends on the batch"
paste ref.txt beam1.txt | llm-eval --pairs --text --format json > b.json
emb=$(sed 's/.*"exact_match":\([0-9.]*\).*/\1/' b.json)
awk -v e="$emb" 'BEGIN { exit !(e >= 50) }' || no "beam exact match $emb% (want >= 50%)"
echo "copy task: exact match greedy $em%, 4 beams $emb%"

# An input with escapes reaches the model unescaped: a tab in the input.
printf 'red\\tcat\n' | llm-generate -m copy.llm -t 2 --echo --format jsonl > esc.jsonl ||
    no "escaped input"
grep -q '"prompt":"red\\\\tcat"' esc.jsonl || no "echoed prompt: $(cat esc.jsonl)"

# JSON Lines train the same model as TSV, bit for bit.
awk -F'\t' '{ printf "{\"input\": \"%s\", \"output\": \"%s\"}\n", $1, $2 }' train.tsv > train.jsonl
llm-train --task pairs -m "$tok" -o a.llm $shape --steps 3 -q train.tsv || no "tsv, 3 steps"
llm-train --task pairs -m "$tok" -o b.llm $shape --steps 3 -q train.jsonl || no "jsonl, 3 steps"
cmp -s a.llm b.llm || no "JSON Lines and TSV trained different models"

# --time-limit without --steps fits the schedule to the time.
llm-train --task pairs -m "$tok" -o t.llm $shape --time-limit 3 --progress train.tsv 2>err ||
    no "--time-limit: $(cat err)"
grep -q "the schedule is fitted to --time-limit" err || no "no fitted schedule: $(cat err)"

# Too long for a row: an input loses its start (as llm-generate truncates
# a prompt) and keeps its output; an output that fills a row with EOS
# leaves its pair out; each said, for training and validation pairs.
long=$(yes red | head -n 40 | tr '\n' ' ')
{ head -n 50 train.tsv; printf '%s\tcat dog\n' "$long"; printf 'cat\t%s\n' "$long"; } > long.tsv
{ head -n 3 val.tsv; printf '%s\tsun\n' "$long"; } > longval.tsv
llm-train --task pairs -m "$tok" -o l.llm --layers 1 --dim 32 --heads 2 --context 64 -b 4 \
    -t 2 --steps 2 --val longval.tsv --eval-every 1 --eval-samples 4 long.tsv 2>err ||
    no "long pairs: $(cat err)"
grep -q "1 of 52 training pairs are longer than 64 tokens: their inputs are truncated on the left" err ||
    no "no note of a truncated input: $(cat err)"
grep -q "1 of 52 training pairs are left out: their outputs and EOS fill rows of 64 tokens" err ||
    no "no note of a pair left out: $(cat err)"
grep -q "1 of 4 validation pairs are longer than 64 tokens" err ||
    no "no note of a truncated validation input: $(cat err)"
grep -q "51 training pairs packed in" err || no "the truncated pair is not trained on: $(cat err)"

# Validation inputs that are also training inputs, exactly or nearly after
# folding: a warning with the counts, for --val and --val-fraction.
printf 'red cat\tred cat\nblue dog sun moon tree\tblue dog sun moon tree\ngreen tree\tgreen tree\n' > ov.tsv
printf 'RED cat!\tsomething else\nblue dog sun moon trees\tx\nmoon moon moon\tmoon\n' > ovval.tsv
llm-train --task pairs -m "$tok" -o o.llm --layers 1 --dim 32 --heads 2 --context 64 -b 4 \
    -t 2 --steps 1 --val ovval.tsv ov.tsv 2>err || no "overlap: $(cat err)"
grep -q "warning: 2 of 3 --val pairs have their input among the training inputs (1 exact, 1 near," err ||
    no "no warning of validation inputs in training: $(cat err)"
yes "$(printf 'red cat\tx')" | head -n 10 > same.tsv
llm-train --task pairs -m "$tok" -o o.llm --layers 1 --dim 32 --heads 2 --context 64 -b 4 \
    -t 2 --steps 1 --val-fraction 0.2 same.tsv 2>err || no "overlap: $(cat err)"
grep -q "warning: 2 of 2 validation pairs have their input among the training inputs (2 exact, 0 near," err ||
    no "no warning of held-out inputs in training: $(cat err)"

# CRLF lines train the same model as LF ones; an empty input or output is
# an example like any other (a prompt of BOS and EOS; an output of EOS).
{ printf '\tcat dog\nred sun\t\n'; head -n 50 train.tsv; } > e.tsv
sed 's/$/\r/' e.tsv > ecrlf.tsv
llm-train --task pairs -m "$tok" -o e.llm $shape --steps 2 e.tsv 2>err || no "empty fields: $(cat err)"
grep -q "52 training pairs packed in" err || no "empty fields: not 52 pairs: $(cat err)"
llm-train --task pairs -m "$tok" -o e2.llm $shape --steps 2 -q ecrlf.tsv || no "CRLF"
cmp -s e.llm e2.llm || no "CRLF lines trained another model"

# Bad input: the file and line.
printf 'a\tb\nno tab here\n' > bad.tsv
llm-train --task pairs -m "$tok" -o x.llm $shape --steps 1 bad.tsv 2>err
[ $? -eq 1 ] || no "a line without a tab: exit status"
grep -q "'bad.tsv', line 2: no tab" err || no "a line without a tab: $(cat err)"
printf 'a\tb\tc\n' > bad2.tsv
llm-train --task pairs -m "$tok" -o x.llm $shape --steps 1 bad2.tsv 2>err
grep -q "line 1: more than one tab" err || no "two tabs: $(cat err)"
printf 'a\tb\nred \377\tcat\n' > bad3.tsv
llm-train --task pairs -m "$tok" -o x.llm $shape --steps 1 bad3.tsv 2>err
[ $? -eq 1 ] && grep -q "'bad3.tsv', line 2: invalid UTF-8 in the input at byte 5" err ||
    no "invalid UTF-8: $(cat err)"
[ -e x.llm ] && no "a model was written from bad input"
# From a pretrained model, rows of its context up to 1024 unless --context
# says otherwise (and never past its context).
llm-train --task lm -m "$tok" -o c2048.llm --layers 1 --dim 32 --heads 2 --context 2048 \
    --steps 0 -q train.tsv || no "a model of context 2048"
llm-train --task lm -m "$tok" -o c64.llm --layers 1 --dim 32 --heads 2 --context 64 \
    --steps 0 -q train.tsv || no "a model of context 64"
for c in "c2048.llm: 1024" "c2048.llm --context 1536: 1536" "c64.llm: 64"; do
    llm-train --task pairs --init ${c%%:*} -o x.llm -b 1 -t 2 --steps 1 train.tsv 2>err ||
        no "--init ${c%%:*}: $(cat err)"
    grep -q "training pairs packed in [0-9]* rows of ${c##*: } " err ||
        no "--init ${c%%:*}: not rows of ${c##*: }: $(cat err)"
done
# The run keeps its rows when resumed: the checkpoint holds the context.
p1="--task pairs --init c2048.llm -b 1 -t 2 --steps 4 --seed 5 -q train.tsv"
llm-train $p1 -o s.llm || no "a straight run from c2048.llm"
llm-train $p1 -o r.llm --until 2 || no "a run to step 2"
llm-train --resume r.llm.ckpt -o r.llm --context 512 -q 2>err
[ $? -eq 1 ] && grep -q "context 512 differs from the run in 'r.llm.ckpt' (there: 1024)" err ||
    no "the checkpoint does not hold the context of 1024: $(cat err)"
llm-train --resume r.llm.ckpt -o r.llm -q || no "resuming"
cmp -s r.llm s.llm || no "resumed from step 2, not the straight run's bytes"
rm -f x.llm
llm-train --task pairs --init c2048.llm -o x.llm --context 2048 -b 300 --steps 1 train.tsv 2>err
[ $? -eq 1 ] && grep -q "batch 300 x 2048 is too large: 614400 tokens x 4096 attention scores" err ||
    no "a batch past 2^31 scores: $(cat err)"
llm-train --task pairs --init c64.llm -o x.llm --context 128 --steps 1 train.tsv 2>err
[ $? -eq 2 ] && grep -q "context 128 is longer than the model's context 64" err ||
    no "--context past the model's: $(cat err)"
llm-train --task lm -m "$tok" -o x.llm --eval-samples 5 train.tsv 2>err
[ $? -eq 2 ] || no "--eval-samples without --task pairs: not a usage error: $(cat err)"
llm-train --task pairs -m "$tok" -o x.llm $shape --steps 2 --eval-samples 5 train.tsv 2>err
[ $? -eq 2 ] && grep -qxF "llm-train: --eval-samples needs validation: --val or --val-fraction" err ||
    no "--eval-samples without validation: $(cat err)"
llm-train --task pairs -m "$tok" -o x.llm $shape --steps 2 --val val.tsv --eval-tokens 100 train.tsv 2>err
[ $? -eq 2 ] && grep -qxF "llm-train: --eval-tokens is for --task lm (--task pairs scores every held-out pair)" err ||
    no "--eval-tokens with --task pairs: $(cat err)"
llm-generate -m copy.llm --beams 2 --temperature 0.7 in.txt 2>err >/dev/null
[ $? -eq 2 ] || no "--beams with --temperature: not a usage error"
exit $fail
