#!/bin/sh
# install.sh: `make install DESTDIR=... prefix=/usr` puts every program, the
# library, the header, the man pages and the completions in place; each
# installed program answers --help and --version; each man page renders
# without warnings; each completion script loads in bash (and zsh and fish
# when installed) and completes the program's options; `make uninstall`
# removes everything again.
set -u
fail=0
no() { echo "FAIL: $*"; fail=1; }
dest=$PWD/root
make -s -C "$TOP" B="$B" install DESTDIR="$dest" prefix=/usr >install.log 2>&1 ||
    { cat install.log; exit 1; }
[ -f "$dest/usr/include/llm.h" ] || no "llm.h not installed"
[ -f "$dest/usr/lib/libllm.a" ] || no "libllm.a not installed"
[ -f "$dest/usr/share/man/man7/llm.7" ] || no "llm(7) not installed"
[ -f "$dest/usr/share/man/man5/llm-formats.5" ] || no "llm-formats(5) not installed"
n=0
for src in "$TOP"/cmd/llm-*.c; do
    p=$(basename "$src" .c)
    n=$((n + 1))
    bin=$dest/usr/bin/$p
    [ -x "$bin" ] || { no "$p not installed"; continue; }
    "$bin" --help >help.out 2>help.err || no "$p --help failed"
    [ -s help.out ] && [ ! -s help.err ] || no "$p --help: nothing on stdout or something on stderr"
    "$bin" --version | grep -q "^$p (llm) " || no "$p --version"
    page=$dest/usr/share/man/man1/$p.1
    [ -f "$page" ] || { no "$p.1 not installed"; continue; }
    MANWIDTH=80 man --warnings -l "$page" >man.out 2>man.err || no "man -l $p.1 failed"
    [ ! -s man.err ] || { no "man $p.1 warnings:"; cat man.err; }
    grep -q -- "--help" man.out || no "$p.1 lists no options"

    # bash: load the completion and complete "--" after the program name.
    comp=$dest/usr/share/bash-completion/completions/$p
    [ -f "$comp" ] || { no "bash completion for $p not installed"; continue; }
    words=$(bash -c '
        . "$1"
        fn=$(complete -p "$2" | sed "s/.*-F \([^ ]*\).*/\1/")
        COMP_WORDS=("$2" --); COMP_CWORD=1; COMP_LINE="$2 --"; COMP_POINT=${#COMP_LINE}
        "$fn" "$2" -- "$2"
        printf "%s\n" "${COMPREPLY[@]}"' sh "$comp" "$p" 2>&1)
    case $words in *--help*) ;; *) no "bash completion of '$p --': $words";; esac
    if command -v zsh >/dev/null 2>&1; then
        zsh -n "$dest/usr/share/zsh/site-functions/_$p" || no "zsh completion of $p does not parse"
    fi
    if command -v fish >/dev/null 2>&1; then
        fish --no-config -c "source $dest/usr/share/fish/vendor_completions.d/$p.fish; complete -C '$p --'" \
            >fish.out 2>&1 || no "fish completion of $p failed"
        grep -q -- "--help" fish.out || no "fish completion of '$p --': $(head -3 fish.out)"
    fi
done
[ $n -ge 2 ] || no "only $n programs"
make -s -C "$TOP" B="$B" uninstall DESTDIR="$dest" prefix=/usr >>install.log 2>&1 || no "uninstall failed"
left=$(find "$dest" -type f | head -5)
[ -z "$left" ] || no "left after uninstall: $left"
exit $fail
