#!/bin/sh
# run.sh: runs every test of `make check` and ends with "N passed, N failed".
#
#   unit tests      $B/tests/test_*            exit 0 pass, 77 skip, else fail
#   fuzz replays    $B/tests/replay_fuzz_*     over tests/fuzz/corpus/fuzz_*/
#   shell tests     tests/sh/*.sh              exit 0 pass, 77 skip, else fail
#   CLI cases       tests/cli/PROG/CASE/       cmd, [stdin], stdout, stderr, [status]
#   generated docs  tests/gen.sh check         man pages and completions match the tables
#
# Every test runs in its own temporary directory. Environment for tests:
#   BIN (programs), TOP (source tree), FIXTURES (tests/fixtures),
#   DATA (../shared/data beside the checkout; may not exist).
# TESTS=pattern runs only the tests whose name contains pattern.
set -u
B=${B:-build}
TOP=$(cd "$(dirname "$0")/.." && pwd)
# The tests join $TOP/$B: an absolute B made relative to TOP.
case $B in /*) B=$(realpath -m --relative-to="$TOP" "$B") ;; esac
export B
BIN=$TOP/$B/bin
FIXTURES=$TOP/tests/fixtures
DATA=${DATA:-$(cd "$TOP/.." && pwd)/shared/data}
PATH=$BIN:$PATH
export B TOP BIN FIXTURES DATA PATH
LC_ALL=C.UTF-8
export LC_ALL

pass=0 fail=0 skip=0 failed=""
tmproot=$(mktemp -d "${TMPDIR:-/tmp}/llm-check.XXXXXX")
trap 'rm -rf "$tmproot"' EXIT INT TERM
want() { [ -z "${TESTS:-}" ] || case "$1" in *"$TESTS"*) return 0;; *) return 1;; esac; }

started=$(date +%s)
result() { # name status log
    took=$(( $(date +%s) - started )); t=""
    [ "$took" -lt 5 ] || t=" ($took s)"
    case $2 in
    0) pass=$((pass + 1)); echo "PASS: $1$t";;
    77) skip=$((skip + 1)); echo "SKIP: $1 ($(tail -n 1 "$3" 2>/dev/null))";;
    *) fail=$((fail + 1)); failed="$failed $1"; echo "FAIL: $1 (exit $2)"
       sed -n '1,60p' "$3" | sed 's/^/    /';;
    esac
}

run_in_tmp() { # name log command...
    name=$1 log=$2; shift 2
    d=$tmproot/$(echo "$name" | tr '/ ' '__')
    mkdir -p "$d"
    started=$(date +%s)
    (cd "$d" && "$@") >"$log" 2>&1 </dev/null
}

# Unit tests.
for t in "$TOP/$B"/tests/test_*; do
    [ -x "$t" ] || continue
    n=unit/$(basename "$t"); want "$n" || continue
    run_in_tmp "$n" "$tmproot/log" "$t"; result "$n" $? "$tmproot/log"
done
# The avx512 level's emulated bf16 paths (processors without AVX512_BF16):
# the training product's and the inference rows' (on the avx2 level, the
# same paths as by default).
for t in test_gemm test_kernels; do
    n=unit/$t-nobf16
    if [ -x "$TOP/$B/tests/$t" ] && want "$n"; then
        run_in_tmp "$n" "$tmproot/log" env LLM_GEMM=own-nobf16 "$TOP/$B/tests/$t"
        result "$n" $? "$tmproot/log"
    fi
done

# Fuzz corpus replays.
for t in "$TOP/$B"/tests/replay_fuzz_*; do
    [ -x "$t" ] || continue
    h=${t##*/replay_}; n=fuzz-replay/$h; want "$n" || continue
    run_in_tmp "$n" "$tmproot/log" "$t" "$TOP/tests/fuzz/corpus/$h"; result "$n" $? "$tmproot/log"
done

# Shell tests.
for t in "$TOP"/tests/sh/*.sh; do
    [ -f "$t" ] || continue
    n=sh/$(basename "$t" .sh); want "$n" || continue
    run_in_tmp "$n" "$tmproot/log" sh "$t"; result "$n" $? "$tmproot/log"
done

# CLI cases: each directory holds `cmd` (sh script), expected `stdout`,
# `stderr` (absent = must be empty) and `status` (absent = 0), optional `stdin`.
for c in "$TOP"/tests/cli/*/*/; do
    [ -f "$c/cmd" ] || continue
    c=${c%/}; n=cli/${c#"$TOP"/tests/cli/}; want "$n" || continue
    d=$tmproot/$(echo "$n" | tr '/' '_'); mkdir -p "$d"
    inp=/dev/null; [ -f "$c/stdin" ] && inp=$c/stdin
    started=$(date +%s)
    (cd "$d" && CASE=$c sh "$c/cmd") <"$inp" >"$d.out" 2>"$d.err"
    st=$?
    exp=0; [ -f "$c/status" ] && exp=$(cat "$c/status")
    # A subshell: `exit` in a brace group would end the whole runner.
    (
        ok=0
        [ "$st" = "$exp" ] || { echo "exit status $st, expected $exp"; ok=1; }
        if [ -f "$c/stdout" ]; then cmp -s "$c/stdout" "$d.out" || { echo "stdout differs:"; diff "$c/stdout" "$d.out" | head -20; ok=1; }
        elif [ -s "$d.out" ]; then echo "unexpected stdout:"; head -5 "$d.out"; ok=1; fi
        if [ -f "$c/stderr" ]; then cmp -s "$c/stderr" "$d.err" || { echo "stderr differs:"; diff "$c/stderr" "$d.err" | head -20; ok=1; }
        elif [ -s "$d.err" ]; then echo "unexpected stderr:"; head -5 "$d.err"; ok=1; fi
        exit $ok
    ) >"$tmproot/log" 2>&1
    result "$n" $? "$tmproot/log"
done

# Generated man pages and completions match the option tables.
if want gen; then
    started=$(date +%s)
    (cd "$TOP" && sh tests/gen.sh check) >"$tmproot/log" 2>&1; result gen/man-and-completions $? "$tmproot/log"
fi

echo
[ -n "$failed" ] && echo "failed:$failed"
echo "$pass passed, $fail failed, $skip skipped"
[ "$fail" -eq 0 ]
