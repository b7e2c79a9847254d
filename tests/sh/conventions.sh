#!/bin/sh
# conventions.sh: every llm-* program in $BIN against the command-line
# conventions of DESIGN.md, one reported line per check and program:
#
#   help-*        --help (and -h, and each command's --help) exits 0, writes
#                 "Usage: PROG" to stdout and nothing to stderr, and names
#                 every long option of the program's man page (--generate=man)
#   version       "PROG (llm) VERSION", exit 0
#   unknown-*     an unknown option: exit 2, nothing on stdout, on stderr one
#                 line "PROG: ..." and "Try 'PROG [COMMAND] --help' ..."
#   missing-file  exit 1, "PROG: cannot open 'nope.txt': No such file or directory"
#   directory     a directory as input: exit 1, one "PROG: ... Is a directory" line
#   stdin         FILE, '-' with FILE on stdin, and no operand give the same output
#   write-error   standard output on /dev/full: exit 1, "PROG: write error: ..."
#   unwritable    -o into a missing directory: exit 1, one "PROG: ..." line
#   sigpipe*      writing into `| head -n 1` ends quietly, 141 or 0 (also when
#                 the parent ignores SIGPIPE)
#   stream        a record's output comes out before the next record comes in
#   notty         stderr not a terminal: no progress, only "PROG: ..." lines
#   quiet*        --quiet: nothing on stderr (nor on a terminal)
#   tty-progress  progress shows when stderr is a terminal (script(1))
#   threads, seed, device, bad-*: the shared options where a program has them;
#                 --device cuda without CUDA: exit 1 and one clear line
#
# A program needs a "recipe" below (how to run it on an input file); a new
# program without one fails the check "recipe". Known violations of programs
# being written elsewhere are listed in TODO: reported as "todo", not failed.
set -u
LC_ALL=C.UTF-8
export LC_ALL
# The report is printed at the end, failures first (run.sh shows the first
# lines of a failing test's output).
exec 5>&1 >report.txt

# PROG:CHECK pairs that are known to fail (each with its reason), e.g.
#   TODO=" llm-x:stream-y "
TODO=" "

nok=0 nfail=0 ntodo=0
ok() { echo "ok   $1 $2"; nok=$((nok + 1)); }
skip() { echo "skip $1 $2 ($3)"; }
bad() { # prog check reason [file to show]
    case $TODO in
    *" $1:$2 "*) echo "todo $1 $2: $3"; ntodo=$((ntodo + 1)); return;;
    esac
    echo "FAIL $1 $2: $3"
    [ $# -ge 4 ] && [ -s "$4" ] && sed -n '1,8p' "$4" | sed 's/^/        /'
    nfail=$((nfail + 1))
}

nlines() { if [ -s "$1" ]; then wc -l < "$1" | tr -d ' '; else echo 0; fi; }

# usage_error PROG CHECK TRY STATUS: the files out/err of a usage error.
usage_error() {
    if [ "$4" -ne 2 ]; then bad "$1" "$2" "exit $4, expected 2" err; return; fi
    if [ -s out ]; then bad "$1" "$2" "output on stdout" out; return; fi
    if [ "$(nlines err)" -ne 2 ]; then bad "$1" "$2" "stderr is not 2 lines" err; return; fi
    l1=$(sed -n 1p err) l2=$(sed -n 2p err)
    case $l1 in "$1: "?*) ;; *) bad "$1" "$2" "first line not '$1: ...'" err; return;; esac
    [ "$l2" = "Try '$3 --help' for more information." ] ||
        { bad "$1" "$2" "second line not \"Try '$3 --help' ...\"" err; return; }
    ok "$1" "$2"
}

# one_error PROG CHECK STATUS PATTERN: exit 1, nothing on stdout, exactly one
# stderr line "PROG: ..." matching the grep pattern.
one_error() {
    if [ "$3" -ne 1 ]; then bad "$1" "$2" "exit $3, expected 1" err; return; fi
    if [ -s out ]; then bad "$1" "$2" "output on stdout" out; return; fi
    if [ "$(nlines err)" -ne 1 ]; then bad "$1" "$2" "stderr is not one line" err; return; fi
    grep -q "^$1: " err || { bad "$1" "$2" "message not '$1: ...'" err; return; }
    grep -q -- "$4" err || { bad "$1" "$2" "message does not match '$4'" err; return; }
    ok "$1" "$2"
}

# Inputs, all in the current (temporary) directory under simple names.
cp "$FIXTURES/tiny.model" tok.model
cp "$FIXTURES/tiny.txt" tiny.txt
grep -v '^$' tiny.txt | tr '\t' ' ' > lines.txt
awk '{ print (NR % 2 ? "odd" : "even") "\t" $0 }' lines.txt > labelled.tsv
i=0; while [ $i -lt 40 ]; do cat tiny.txt; i=$((i + 1)); done > big.txt
i=0; while [ $i -lt 6 ]; do cat lines.txt; i=$((i + 1)); done > prompts.txt
awk '{ print $1 "\t" (NR % 3 ? $1 : "x") }' labelled.tsv > pairs.tsv
awk 'BEGIN { for (i = 0; i < 20000; i++) print "l" i % 300 "\tl" (i * 7) % 300 }' > bigpairs.tsv
shape="--layers 1 --dim 32 --heads 2 --ffn-dim 64 --batch 4 --threads 1"
llm-tokenize encode -m tok.model tiny.txt > ids.txt &&
llm-tokenize encode -m tok.model big.txt > bigids.txt &&
llm-train -m tok.model $shape --context 64 --steps 2 -q -o lm.llm tiny.txt &&
llm-train --task classify -m tok.model $shape --context 32 --steps 2 -q -o cls.llm labelled.tsv ||
    { exec >&5; cat report.txt; echo "FAIL setup: cannot make the inputs"; exit 1; }

# recipe PROG: the ways to run PROG on an input file, one per line:
#   name|arguments (the input file is appended; @O@ is an output file)|input|
#   big input for SIGPIPE (- : none)|first record for the stream check (- : none)|
#   flags: p = shows progress; n = the input is a model path, not a stream
#   (no standard input; a directory is a Hugging Face model folder)
recipe() {
    case $1 in
    llm-tokenize) cat <<EOF
train|train --vocab-size 500 --threads 1 --seed 1 -o @O@|tiny.txt|-|-|
encode|encode -m tok.model|tiny.txt|big.txt|The pump failed|
decode|decode -m tok.model|ids.txt|bigids.txt|$(sed -n 1p ids.txt)|
EOF
    ;;
    llm-train) cat <<EOF
lm|-m tok.model $shape --context 32 --steps 2 --seed 3 -o @O@|tiny.txt|-|-|p
classify|--task classify -m tok.model $shape --context 32 --steps 2 -o @O@|labelled.tsv|-|-|p
EOF
    ;;
    llm-generate) cat <<EOF
generate|-m lm.llm -n 4 --seed 5 --threads 1|lines.txt|prompts.txt|The pump|
EOF
    ;;
    llm-classify) cat <<EOF
classify|-m cls.llm --threads 1|lines.txt|big.txt|The pump failed|
EOF
    ;;
    llm-convert) cat <<EOF
gguf|-o @O@ --to gguf|lm.llm|-|-|n
EOF
    ;;
    llm-eval) cat <<EOF
lm|-m lm.llm --threads 1|tiny.txt|-|-|
pairs|--pairs --threads 1|pairs.tsv|bigpairs.tsv|-|
EOF
    ;;
    esac
}

# has OPTION: whether the help text $h lists --OPTION.
has() { grep -q -E -- "^ *(-[A-Za-z0-9], )?--$1([= ]|\$)" "$h"; }

# A CUDA build links the CUDA runtime; there --device cuda may work.
cuda_build() { ldd "$1" 2>/dev/null | grep -q 'libcudart'; }
have_script=0
command -v script >/dev/null 2>&1 && script -qfec true /dev/null </dev/null >/dev/null 2>&1 &&
    have_script=1

# on_tty OUT COMMAND: runs the shell command with stderr (and stdin) on a
# pseudo-terminal; what the terminal shows goes to OUT.
on_tty() { SHELL=/bin/sh script -qfec "$2" /dev/null </dev/null >"$1" 2>&1; }

nprogs=0
for bin in "$BIN"/llm-*; do
    [ -x "$bin" ] || continue
    p=${bin##*/}
    nprogs=$((nprogs + 1))

    # ---- --help, -h, --version, unknown options
    "$p" --help >help.txt 2>err; st=$?
    if [ $st -ne 0 ]; then bad "$p" help-stdout "exit $st" err
    elif [ -s err ]; then bad "$p" help-stdout "output on stderr" err
    elif [ "$(head -n 1 help.txt | cut -d ' ' -f 1-2)" != "Usage: $p" ]
    then bad "$p" help-stdout "does not begin 'Usage: $p'" help.txt
    else ok "$p" help-stdout; fi
    if grep -q '^ *-h, --help' help.txt; then
        "$p" -h >out 2>err; st=$?
        [ $st -eq 0 ] && [ ! -s err ] && cmp -s out help.txt && ok "$p" help-short ||
            bad "$p" help-short "-h: exit $st, or not the --help text" err
    fi
    # Commands: the "Commands:" list of the overview.
    cmds=$(awk '/^Commands:/ { c = 1; next } c && /^$/ { exit } c { print $1 }' help.txt)
    for c in $cmds; do
        "$p" "$c" --help >"help-$c.txt" 2>err; st=$?
        [ $st -eq 0 ] && [ ! -s err ] && grep -q "^Usage: $p $c" "help-$c.txt" &&
            ok "$p" "help-stdout-$c" || bad "$p" "help-stdout-$c" "exit $st or wrong text" err
    done
    # Every long option of the man page's OPTIONS section, in the --help of
    # the command it belongs to.
    if "$p" --generate=man >man.txt 2>err; then
        awk '/^\.SS "Options for / { s = $0; sub(/^\.SS "Options for /, "", s); sub(/".*/, "", s) }
             /^\.SS "Options common/ { s = "" }
             t { gsub(/\\-/, "-"); while (match($0, /--[A-Za-z0-9][A-Za-z0-9-]*/)) {
                     print (s == "" ? "-" : s), substr($0, RSTART, RLENGTH); $0 = substr($0, RSTART + RLENGTH) } }
             { t = ($0 == ".TP") }' man.txt > manopts.txt
        missing=
        while read -r sec o; do
            h=help.txt; [ "$sec" = - ] || h=help-$sec.txt
            grep -q -E -- "$o([^A-Za-z0-9-]|\$)" "$h" 2>/dev/null || missing="$missing $sec:$o"
        done < manopts.txt
        if [ ! -s manopts.txt ]; then bad "$p" help-options "no options found in --generate=man" man.txt
        elif [ -n "$missing" ]; then bad "$p" help-options "not in --help:$missing"
        else ok "$p" help-options; fi
    else
        bad "$p" help-options "--generate=man failed" err
    fi

    "$p" --version >out 2>err; st=$?
    [ $st -eq 0 ] && [ ! -s err ] && [ "$(nlines out)" -eq 2 ] &&
        head -n 1 out | grep -q "^$p (llm) [0-9][0-9.]*[0-9a-z.+-]*\$" &&
        tail -n 1 out | grep -q "^kernels: cpu [a-z0-9]*" && ok "$p" version ||
        bad "$p" version "exit $st: $(head -c 200 out)" err

    "$p" --no-such-option >out 2>err; usage_error "$p" unknown-option "$p" $?
    "$p" -Z >out 2>err; usage_error "$p" unknown-short "$p" $?
    for c in $cmds; do
        "$p" "$c" --no-such-option >out 2>err; usage_error "$p" "unknown-option-$c" "$p $c" $?
    done

    # ---- the recipes
    recipe "$p" > recipe.txt
    if [ ! -s recipe.txt ]; then
        bad "$p" recipe "no recipe in tests/sh/conventions.sh: add how to run it"
        continue
    fi
    # The recipe on descriptor 4: nothing in the loop may eat it from stdin.
    while IFS='|' read -r name args input big rec flags <&4; do
        P=$p
        t=$name   # check names: CHECK-NAME
        c=
        [ -n "$cmds" ] && c=${args%% *}
        h=help.txt; [ -n "$c" ] && h=help-$c.txt
        a=$(echo "$args" | sed 's/@O@/o.out/')

        # Missing input, a directory as input.
        $P $a nope.txt >out 2>err; st=$?
        one_error "$P" "missing-file-$t" $st "^$P: cannot open 'nope.txt': No such file or directory\$"
        $P $a . >out 2>err; st=$?
        case $flags in
        *n*) one_error "$P" "directory-$t" $st "'\.'.*config.json";;
        *) one_error "$P" "directory-$t" $st "'\.'.*Is a directory";;
        esac
        # The same error under --quiet.
        if has quiet; then
            $P $a -q nope.txt >out 2>err; st=$?
            one_error "$P" "quiet-errors-$t" $st "cannot open 'nope.txt'"
        fi

        # FILE, -, and no operand read the same.
        rm -f o1.out o2.out o3.out
        a1=$(echo "$args" | sed 's/@O@/o1.out/')
        a2=$(echo "$args" | sed 's/@O@/o2.out/')
        a3=$(echo "$args" | sed 's/@O@/o3.out/')
        $P $a1 "$input" >s1 2>err1; st1=$?
        $P $a2 - <"$input" >s2 2>err2; st2=$?
        $P $a3 <"$input" >s3 2>err3; st3=$?
        case $flags in *n*) st2=0 st3=0; cp s1 s2; cp s1 s3
                            cp o1.out o2.out 2>/dev/null; cp o1.out o3.out 2>/dev/null;; esac
        if [ $st1 -ne 0 ] || [ $st2 -ne 0 ] || [ $st3 -ne 0 ]; then
            cat err1 err2 err3 > err
            bad "$P" "stdin-$t" "exit $st1 (FILE), $st2 (-), $st3 (none)" err
        elif ! cmp -s s1 s2 || ! cmp -s s1 s3; then
            bad "$P" "stdin-$t" "standard output differs between FILE, - and no operand"
        elif case $args in *@O@*) ! cmp -s o1.out o2.out || ! cmp -s o1.out o3.out;; *) false;; esac; then
            bad "$P" "stdin-$t" "output file differs between FILE, - and no operand"
        else
            ok "$P" "stdin-$t"
        fi

        # Without a terminal: no progress, only "PROG: ..." lines (err1).
        if grep -q "$(printf '\r')\|$(printf '\033')" err1; then
            bad "$P" "notty-$t" "carriage return or escape on stderr" err1
        elif grep -v -q "^$P: " err1; then
            bad "$P" "notty-$t" "stderr lines not '$P: ...'" err1
        elif [ "$(nlines err1)" -gt 4 ]; then
            bad "$P" "notty-$t" "$(nlines err1) lines on stderr" err1
        else ok "$P" "notty-$t"; fi

        if has quiet; then
            $P $a -q "$input" >out 2>err; st=$?
            [ $st -eq 0 ] && [ ! -s err ] && ok "$P" "quiet-$t" ||
                bad "$P" "quiet-$t" "exit $st, or stderr not empty" err
        else
            bad "$P" "quiet-$t" "no --quiet option"
        fi

        if [ $have_script = 1 ]; then
            on_tty tty.txt "$P $a -q $input >out"; st=$?
            [ $st -eq 0 ] && [ ! -s tty.txt ] && ok "$P" "quiet-tty-$t" ||
                bad "$P" "quiet-tty-$t" "exit $st, or the terminal shows" tty.txt
            case $flags in *p*)
                on_tty tty.txt "$P $a $input >out"; st=$?
                # DESIGN.md: bars, loss, tokens/s, ETA; redrawn in place.
                [ $st -eq 0 ] && grep -q 'ETA' tty.txt && grep -q "$(printf '\033')\[K" tty.txt &&
                    ok "$P" "tty-progress-$t" ||
                    bad "$P" "tty-progress-$t" "exit $st, or no progress line on a terminal" tty.txt
                if has progress; then
                    $P $a --progress "$input" >out 2>err; st=$?
                    [ $st -eq 0 ] && grep -q 'ETA' err && ! grep -q "$(printf '\r')" err &&
                        ok "$P" "progress-flag-$t" ||
                        bad "$P" "progress-flag-$t" "--progress without a terminal: exit $st" err
                fi
                ;;
            esac
        else
            skip "$P" "tty-$t" "script(1) is not available"
        fi

        case $args in
        *@O@*)
            b=$(echo "$args" | sed 's|@O@|nonexistent-dir/x|')
            has quiet && b="$b -q"   # only the error, no summary before it
            $P $b "$input" >out 2>err; st=$?
            one_error "$P" "unwritable-$t" $st "'nonexistent-dir/x'"
            ;;
        *)
            $P $a "$input" >/dev/full 2>err; st=$?
            : > out
            one_error "$P" "write-error-$t" $st "^$P: write error: No space left on device\$"
            ;;
        esac

        # SIGPIPE: quiet, killed by it (141) or done before the reader left (0).
        if [ "$big" != - ]; then
            rm -f st
            { $P $a "$big" 2>err; echo $? >st; } | head -n 1 >/dev/null
            st=$(cat st)
            [ "$st" = 141 ] || [ "$st" = 0 ] && [ ! -s err ] && ok "$P" "sigpipe-$t" ||
                bad "$P" "sigpipe-$t" "exit $st, or a message" err
            rm -f st
            (trap '' PIPE; { $P $a "$big" 2>err; echo $? >st; } | head -n 1 >/dev/null)
            st=$(cat st)
            [ "$st" = 141 ] || [ "$st" = 0 ] && [ ! -s err ] && ok "$P" "sigpipe-ignored-$t" ||
                bad "$P" "sigpipe-ignored-$t" "with SIGPIPE ignored: exit $st, or a message" err
        fi

        # Streaming: one record in, its output out, while the input stays
        # open. Into a pipe: output to a regular file may be block-buffered.
        if [ "$rec" != - ]; then
            rm -f fifo st; mkfifo fifo
            : > out
            { $P $a <fifo 2>err; echo $? >st; } | cat >out &
            pid=$!
            exec 3>fifo
            printf '%s\n' "$rec" >&3
            n=0
            while [ "$(nlines out)" -lt 1 ] && [ $n -lt 50 ]; do sleep 0.1; n=$((n + 1)); done
            got=$(nlines out)
            exec 3>&-
            wait $pid; st=$(cat st)
            [ "$got" -ge 1 ] && [ "$st" = 0 ] && ok "$P" "stream-$t" ||
                bad "$P" "stream-$t" "no output for the first record within 5 s (exit $st)" err
        fi

        # The shared options, where the program has them.
        if has threads; then
            $P $a --threads 1 "$input" >out 2>err; st=$?
            [ $st -eq 0 ] && ok "$P" "threads-$t" || bad "$P" "threads-$t" "exit $st" err
            $P $a --threads x "$input" >out 2>err; usage_error "$P" "bad-threads-$t" "$P${c:+ $c}" $?
        fi
        if has seed; then
            $P $a1 --seed 9 "$input" >s1 2>err; st=$?
            $P $a2 --seed 9 "$input" >s2 2>>err; st2=$?
            if [ $st -ne 0 ] || [ $st2 -ne 0 ]; then bad "$P" "seed-$t" "exit $st, $st2" err
            elif ! cmp -s s1 s2; then bad "$P" "seed-$t" "same seed, different output"
            elif case $args in *@O@*) ! cmp -s o1.out o2.out;; *) false;; esac; then
                bad "$P" "seed-$t" "same seed, different output file"
            else ok "$P" "seed-$t"; fi
            $P $a --seed x "$input" >out 2>err; usage_error "$P" "bad-seed-$t" "$P${c:+ $c}" $?
        fi
        if has device; then
            $P $a --device cpu "$input" >out 2>err; st=$?
            [ $st -eq 0 ] && ok "$P" "device-cpu-$t" || bad "$P" "device-cpu-$t" "exit $st" err
            if cuda_build "$bin"; then
                skip "$P" "device-cuda-$t" "a CUDA build"
            else
                $P $a --device cuda "$input" >out 2>err; st=$?
                one_error "$P" "device-cuda-$t" $st "[Cc][Uu][Dd][Aa]"
            fi
            $P $a --device gpu "$input" >out 2>err; usage_error "$P" "bad-device-$t" "$P${c:+ $c}" $?
        fi
    done 4<recipe.txt
done

[ $nprogs -gt 0 ] || { echo "FAIL: no programs in $BIN"; nfail=$((nfail + 1)); }
exec >&5
echo "$nok ok, $nfail failed, $ntodo todo ($nprogs programs)"
grep -v '^ok ' report.txt
grep '^ok ' report.txt
[ $nfail -eq 0 ]
