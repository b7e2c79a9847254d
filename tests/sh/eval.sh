#!/bin/sh
# eval.sh: llm-eval on a language model made from the tiny fixture corpus:
# an untrained model's perplexity is about the vocabulary size; the loss and
# bits per byte are those llm-train's validation logs for the same data,
# window and batch; a token file, standard input and text agree; bad input
# and bad options fail cleanly.
set -u
tok=$FIXTURES/tiny.model
txt=$FIXTURES/tiny.txt
shape="--layers 2 --dim 32 --heads 4 --kv-heads 2 --ffn-dim 64 --context 32 --threads 2 -q"
fail=0
no() { echo "FAIL: $*"; fail=1; }
# field NAME: the value of "NAME" in the one-line JSON object on stdin.
field() { sed -n "s/.*\"$1\":\([^,}]*\).*/\1/p"; }
# near A B TOL: |A - B| <= TOL
near() { awk -v a="$1" -v b="$2" -v t="$3" 'BEGIN { d = a - b; if (d < 0) d = -d; exit !(d <= t) }'; }

# 1. Random initialisation (std 0.02): the logits are nearly equal, so the
# loss is about ln(V) and the perplexity about V = 600; allow 3%.
llm-train -m "$tok" $shape --steps 0 -o z.llm "$txt" || no "llm-train --steps 0"
llm-eval -m z.llm --format json "$txt" > z.json || no "llm-eval on the initial model"
ppl=$(field perplexity < z.json)
tokens=$(field tokens < z.json)
near "$ppl" 600 18 || no "perplexity of a random model is $ppl, expected about 600"
[ "$tokens" -gt 1000 ] || no "only $tokens tokens scored"
# perplexity = exp(loss), bits per byte = loss * tokens / bytes / ln 2
loss=$(field loss < z.json)
bytes=$(field bytes < z.json)
bpb=$(field bits_per_byte < z.json)
near "$ppl" "$(awk -v l="$loss" 'BEGIN { printf "%.10g", exp(l) }')" 1e-4 || no "perplexity != exp(loss)"
near "$bpb" "$(awk -v l="$loss" -v t="$tokens" -v b="$bytes" 'BEGIN { printf "%.10g", l * t / b / log(2) }')" 1e-6 ||
    no "bits per byte inconsistent: $bpb"
# The bytes are the text's: every non-empty line and its newline, as
# decoded (identity normalisation: byte for byte), less what falls outside
# the scored windows (at most one window of 32 tokens).
textbytes=$(grep -v '^$' "$txt" | wc -c)
[ "$bytes" -le "$textbytes" ] && [ "$bytes" -gt $((textbytes - 64)) ] ||
    no "bytes $bytes, text has $textbytes"

# 2. The same loss as llm-train's validation: a few steps validating on the
# same file with the same window (--context) and batch, all tokens; the
# output model is the one validated at the last step.
llm-train -m "$tok" $shape --batch 4 --steps 3 --eval-every 1 --eval-tokens 0 \
    --val "$txt" --log log.jsonl -o s.llm "$txt" || no "llm-train with --val"
vloss=$(grep '"step":3,"val_loss"' log.jsonl | field val_loss)
vbpb=$(grep '"step":3,"val_loss"' log.jsonl | field val_bpb)
vtok=$(grep '"step":3,"val_loss"' log.jsonl | field val_tokens)
llm-eval -m s.llm --batch 4 --threads 2 --format json "$txt" > s.json || no "llm-eval on the trained model"
near "$(field loss < s.json)" "$vloss" 2e-6 || no "loss $(field loss < s.json) != llm-train's $vloss"
near "$(field bits_per_byte < s.json)" "$vbpb" 2e-6 || no "bpb $(field bits_per_byte < s.json) != llm-train's $vbpb"
[ "$(field tokens < s.json)" = "$vtok" ] || no "tokens $(field tokens < s.json) != llm-train's $vtok"

# 3. A token file of the same text, and standard input, give the same figures.
llm-tokenize encode -m s.llm --bos --eos --output-format bin -o tiny.tok "$txt" || no "encode"
llm-eval -m s.llm --batch 4 --threads 2 --format json tiny.tok > t.json || no "token file"
cmp -s s.json t.json || no "token file and text differ: $(cat t.json) vs $(cat s.json)"
llm-eval -m s.llm --batch 4 --threads 2 --format json < "$txt" > i.json || no "stdin"
cmp -s s.json i.json || no "standard input and file differ"
llm-eval -m s.llm --batch 4 --threads 2 --format json - < tiny.tok > ti.json || no "token stream on stdin"
cmp -s s.json ti.json || no "token stream on standard input differs"

# 4. --max-tokens (whole windows), --context, the text table.
llm-eval -m s.llm --max-tokens 100 --context 16 --format json "$txt" > mt.json 2>err ||
    no "--max-tokens"
[ "$(field tokens < mt.json)" = 96 ] || no "--max-tokens 100 --context 16 scored $(field tokens < mt.json)"
[ "$(field context < mt.json)" = 16 ] || no "--context 16 not used"
grep -q "scored 96 of" err || no "no note of the tokens left out: $(cat err)"
llm-eval -m s.llm "$txt" > table.txt || no "text output"
for k in tokens bytes loss perplexity "bits per byte"; do
    grep -q "^$k  *[0-9]" table.txt || no "no '$k' in the table: $(cat table.txt)"
done

# 5. Errors: clear messages, exit 1 or 2.
llm-eval -m s.llm --context 64 "$txt" 2>err; st=$?
[ $st -eq 2 ] && grep -q "longer than the model's context 32" err || no "--context 64: $st $(cat err)"
llm-eval -m s.llm --max-tokens 10 "$txt" 2>err; st=$?
[ $st -eq 2 ] && grep -q "less than one window" err || no "--max-tokens 10: $st $(cat err)"
printf 'short\n' > short.txt
# A text shorter than the default window is scored whole; a window asked
# for with --context must fit.
n=$(llm-tokenize encode -m s.llm --bos --eos short.txt | wc -w)
llm-eval -m s.llm --format json short.txt > short.json 2>err; st=$?
[ $st -eq 0 ] && grep -q "\"tokens\":$((n - 1))," short.json ||
    no "short text: $st $(cat err short.json)"
llm-eval -m s.llm --context 32 short.txt 2>err; st=$?
[ $st -eq 1 ] && grep -q "fewer than one window of 32 + 1" err || no "short text, --context 32: $st $(cat err)"
: > empty.txt
llm-eval -m s.llm empty.txt 2>err; st=$?
[ $st -eq 1 ] && grep -q "no tokens in the input" err || no "empty text: $st $(cat err)"
printf 'ok\n\377 bad\n' > bad.txt
llm-eval -m s.llm bad.txt 2>err; st=$?
[ $st -eq 1 ] && grep -q "'bad.txt', line 2: invalid UTF-8" err || no "invalid UTF-8: $st $(cat err)"
llm-eval -m nope.llm "$txt" 2>err; st=$?
[ $st -eq 1 ] && grep -q "nope.llm" err || no "missing model: $st $(cat err)"
llm-eval -m "$tok" "$txt" 2>err; st=$?
[ $st -eq 1 ] || no "a tokenizer given as the model: exit $st"
exit $fail
