#!/bin/sh
# gen.sh write|check: man pages and completions generated from each program's
# option table (`prog --generate=man|bash|zsh|fish`). `write` updates the
# committed files; `check` fails when a committed file differs.
set -u
mode=${1:-check}
B=${B:-build}
status=0
tmp=$(mktemp -d "${TMPDIR:-/tmp}/llm-gen.XXXXXX")
trap 'rm -rf "$tmp"' EXIT
for bin in "$B"/bin/llm-*; do
    p=$(basename "$bin")
    "$bin" --generate=man >"$tmp/$p.opts" || { echo "$p --generate=man failed"; exit 1; }
    for page in man/$p.*.in; do
        [ -f "$page" ] || continue
        out=${page%.in}
        awk -v f="$tmp/$p.opts" '$0 == "@OPTIONS@" { while ((getline l < f) > 0) print l; next } { print }' \
            "$page" >"$tmp/page"
        if [ "$mode" = write ]; then cp "$tmp/page" "$out"
        elif ! cmp -s "$tmp/page" "$out"; then echo "$out is out of date (run 'make gen')"; status=1; fi
    done
    for kind in bash zsh fish; do
        case $kind in bash) out=completions/$p.bash;; zsh) out=completions/_$p;; fish) out=completions/$p.fish;; esac
        "$bin" --generate=$kind >"$tmp/c" || { echo "$p --generate=$kind failed"; exit 1; }
        if [ "$mode" = write ]; then cp "$tmp/c" "$out"
        elif ! cmp -s "$tmp/c" "$out"; then echo "$out is out of date (run 'make gen')"; status=1; fi
    done
done
exit $status
