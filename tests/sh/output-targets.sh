#!/bin/sh
# output-targets.sh: what -o FILE does to what is already at FILE. A regular
# file is replaced whole (a temporary file renamed over it); a symbolic link
# stays a link and the file it names is replaced (a link to nothing yet
# creates that file); a FIFO (as a device such as /dev/stdout) is written in
# place, not replaced by a regular file; a folder is refused before any
# work, its contents untouched. Through llm-tokenize's own output and the
# library's model writer (llm-train, llm-tokenize train).
set -u
fail=0
no() { echo "FAIL: $*"; fail=1; }
tok=$FIXTURES/tiny.model
txt=$FIXTURES/tiny.txt
llm-tokenize encode -m "$tok" "$txt" > want.ids || no "encode to standard output"

# A link: the link stays, its file gets the output.
echo old > real.ids
ln -s real.ids link.ids
llm-tokenize encode -m "$tok" -o link.ids "$txt" || no "encode -o a link"
[ -L link.ids ] || no "the link was replaced by a file"
cmp -s real.ids want.ids || no "the file the link names did not get the output"
ln -s new.ids dangling.ids
llm-tokenize encode -m "$tok" -o dangling.ids "$txt" || no "encode -o a link to nothing"
[ -L dangling.ids ] && cmp -s new.ids want.ids || no "a link to nothing: not written through"

# A FIFO: written in place, still a FIFO after.
mkfifo pipe
cat pipe > got.ids &
reader=$!
llm-tokenize encode -m "$tok" -o pipe "$txt" || no "encode -o a FIFO"
if [ -p pipe ]; then
    wait $reader
    cmp -s got.ids want.ids || no "the FIFO's reader did not get the output"
else
    kill $reader   # (still waiting for a writer)
    no "the FIFO was replaced"
fi

# A folder: refused, before training, its contents kept.
mkdir out.llm
echo keep > out.llm/x
llm-tokenize encode -m "$tok" -o out.llm "$txt" 2>err
[ $? -eq 1 ] && grep -q "cannot write 'out.llm': it is a folder" err || no "encode -o a folder: $(cat err)"
llm-train -m "$tok" -o out.llm --layers 1 --dim 32 --heads 2 --context 32 --steps 200 \
    -t 1 -q "$txt" 2>err
[ $? -eq 1 ] && grep -q "cannot write 'out.llm'" err || no "llm-train -o a folder: $(cat err)"
[ -e out.llm.ckpt ] && no "llm-train -o a folder trained (left out.llm.ckpt)"
[ "$(cat out.llm/x)" = keep ] || no "the folder's contents changed"

# The library's writer: a model through a link, a tokenizer through one.
echo old > m.real
ln -s m.real m.llm
llm-train -m "$tok" -o m.llm --layers 1 --dim 32 --heads 2 --context 32 --steps 1 -t 1 -q \
    "$txt" || no "llm-train -o a link"
[ -L m.llm ] || no "llm-train replaced the link"
llm-generate -m m.real -n 2 -t 1 -p hello > /dev/null 2>err || no "the model through the link: $(cat err)"
ln -s t.real t.model
llm-tokenize train --vocab-size 454 -q -o t.model "$txt" || no "llm-tokenize train -o a link"
[ -L t.model ] && [ -f t.real ] || no "llm-tokenize train did not write through the link"
exit $fail
