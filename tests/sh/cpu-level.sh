#!/bin/sh
# cpu-level.sh: the CPU kernels' level chosen at start-up and forced by
# LLM_CPU. Each level this CPU runs: --version names it (and what computes
# its matrix products, as LLM_GEMM chooses), a greedy and a
# sampled run (fp32 and f16 weights, 1 and 2 threads) and a short training
# run give the same bytes every time (training on our product's levels on
# 1, 2 and 3 threads alike). Greedy text is the same on every
# level; a level this build lacks or this CPU cannot run, or an unknown
# name, is said on stderr and the best level used.
set -u
model=$FIXTURES/gen.llm
tok=$FIXTURES/tiny.model
txt=$FIXTURES/tiny.txt
shape="--layers 2 --dim 32 --heads 4 --kv-heads 2 --ffn-dim 64 --context 32 --batch 4 -q"
fail=0
no() { echo "FAIL: $*"; fail=1; }

unset LLM_CPU LLM_GEMM   # the defaults are checked below
printf 'The pump\nOnce upon a time\n' > prompts.txt
llm-generate --version > v.txt 2>err || no "--version: $(cat err)"
# kernels: cpu BEST (OTHER, OTHER available); matrix products: WHAT
best=$(sed -n 's/^kernels: cpu \([a-z0-9]*\).*/\1/p' v.txt)
levels="$best $(sed -n 's/^kernels: cpu [a-z0-9]* (\(.*\) available);.*/\1/p' v.txt | tr -d ,)"
[ -n "$best" ] || { no "no kernels line in --version: $(cat v.txt)"; exit 1; }
echo "levels this CPU runs: $levels"

# gen LEVEL NAME ARGS...: NAME.out of llm-generate on LEVEL; stderr must be empty.
gen() {
    lv=$1 name=$2; shift 2
    LLM_CPU=$lv llm-generate -m "$model" -n 24 "$@" prompts.txt > "$name.out" 2>"$name.err" ||
        no "$lv: llm-generate $*: exit $?: $(cat "$name.err")"
    [ -s "$name.err" ] && no "$lv: llm-generate $*: stderr: $(cat "$name.err")"
    [ -s "$name.out" ] || no "$lv: llm-generate $*: no output"
}

for lv in $levels; do
    LLM_CPU=$lv llm-eval --version > v.txt 2>err
    grep -q "^kernels: cpu $lv\\b" v.txt && [ ! -s err ] ||
        no "LLM_CPU=$lv: --version says $(tail -n 1 v.txt) $(cat err)"
    # Our product on avx512 and avx2, OpenBLAS on generic; OpenBLAS on
    # every level with LLM_GEMM=openblas.
    case $lv in
    amx | avx512 | avx2) want="own $lv" ;;
    generic) want=openblas ;;
    *) want="" ;;
    esac
    if [ -n "$want" ]; then
        grep -q "; matrix products: $want\$" v.txt || no "LLM_CPU=$lv: --version says $(tail -n 1 v.txt)"
        LLM_GEMM=openblas LLM_CPU=$lv llm-eval --version | grep -q "; matrix products: openblas\$" ||
            no "LLM_CPU=$lv LLM_GEMM=openblas: not openblas"
    fi
    # Greedy: fp32 and f16 weights, 1 and 2 threads, and again.
    for th in 1 2; do
        gen "$lv" "$lv-greedy-$th" --temperature 0 --threads $th
        gen "$lv" "$lv-greedy-$th-again" --temperature 0 --threads $th
        cmp -s "$lv-greedy-$th.out" "$lv-greedy-$th-again.out" ||
            no "$lv: greedy text differs between two runs ($th threads)"
        gen "$lv" "$lv-f16-$th" --temperature 0 --threads $th --precision f16
    done
    cmp -s "$lv-greedy-1.out" "$lv-greedy-2.out" || no "$lv: greedy text differs with the threads"
    cmp -s "$lv-f16-1.out" "$lv-f16-2.out" || no "$lv: f16 greedy text differs with the threads"
    # Sampled, with a batch: the same bytes on the same level.
    gen "$lv" "$lv-sampled" --seed 3 --samples 2 --batch 4 --threads 2
    gen "$lv" "$lv-sampled-again" --seed 3 --samples 2 --batch 4 --threads 2
    cmp -s "$lv-sampled.out" "$lv-sampled-again.out" || no "$lv: sampled text differs between runs"
    # Training: the same model bytes for the same level and threads.
    for r in 1 2; do
        LLM_CPU=$lv llm-train -m "$tok" $shape --steps 6 --seed 7 --threads 2 -o "$lv-$r.llm" \
            "$txt" 2>err || no "$lv: llm-train: $(cat err)"
    done
    cmp -s "$lv-1.llm" "$lv-2.llm" || no "$lv: two trainings gave different model bytes"
    # Where our product runs, the same bytes on any thread count too: no
    # kernel's order of summation follows the threads (attention's cut
    # into units included: this shape's 4 kv-head groups, 2 heads of 4
    # tiles of queries each, are cut into 8 units each; fails where the
    # cut follows the threads).
    case $lv in amx | avx512 | avx2)
        for th in 1 2 3; do
            LLM_CPU=$lv llm-train -m "$tok" $shape --context 256 --batch 2 --steps 3 --seed 7 \
                --threads $th -o "$lv-t$th.llm" "$txt" 2>err ||
                no "$lv: llm-train --threads $th: $(cat err)"
        done
        cmp -s "$lv-t1.llm" "$lv-t2.llm" && cmp -s "$lv-t1.llm" "$lv-t3.llm" ||
            no "$lv: training on 1, 2 and 3 threads gave different model bytes" ;;
    esac
done

# Across levels: the same greedy text (the vectorised sums differ in order,
# but not enough to change the most likely token on this model). Sampled
# text and trained models may differ in their last bits; say so only.
for lv in $levels; do
    [ "$lv" = "$best" ] && continue
    cmp -s "$best-greedy-1.out" "$lv-greedy-1.out" ||
        no "greedy text differs between $best and $lv: $(diff "$best-greedy-1.out" "$lv-greedy-1.out" | head -4)"
    cmp -s "$best-f16-1.out" "$lv-f16-1.out" || no "f16 greedy text differs between $best and $lv"
    cmp -s "$best-sampled.out" "$lv-sampled.out" || echo "note: sampled text differs between $best and $lv"
    cmp -s "$best-1.llm" "$lv-1.llm" || echo "note: trained model bytes differ between $best and $lv"
done

# Unset or empty: the best level, quietly.
LLM_CPU= llm-eval --version > v.txt 2>err
grep -q "^kernels: cpu $best\\b" v.txt && [ ! -s err ] || no "LLM_CPU empty: $(cat v.txt err)"

# An unknown name: a message naming the levels, then the best level.
LLM_CPU=avx9000 llm-generate -m "$model" -n 24 --temperature 0 --threads 1 prompts.txt > unknown.out 2>err
st=$?
[ $st -eq 0 ] || no "LLM_CPU=avx9000: exit $st"
grep -q "^llm-generate: LLM_CPU=avx9000: no such level in this build (.*generic.*); using $best\$" err ||
    no "LLM_CPU=avx9000: stderr: $(cat err)"
[ "$(wc -l < err)" -eq 1 ] || no "LLM_CPU=avx9000: $(wc -l < err) lines on stderr, want one"
cmp -s unknown.out "$best-greedy-1.out" || no "LLM_CPU=avx9000: not the best level's output"

# A level this CPU cannot run (or this build lacks): said, then the best.
for lv in generic avx2 avx512 amx; do
    case " $levels " in *" $lv "*) continue;; esac
    LLM_CPU=$lv llm-eval --version > v.txt 2>err
    grep -q "^kernels: cpu $best\\b" v.txt || no "LLM_CPU=$lv (not run here): $(tail -n 1 v.txt)"
    grep -Eq "^llm-eval: LLM_CPU=$lv: (this CPU lacks the instructions of level $lv \\(it runs .*\\)|no such level in this build \\(.*\\)); using $best\$" err ||
        no "LLM_CPU=$lv (not run here): stderr: $(cat err)"
done
exit $fail
