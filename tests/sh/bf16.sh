#!/bin/sh
# bf16.sh: llm-train --precision bf16 (the weights' products on inputs
# rounded to bfloat16, fp32 sums, weights and AdamW state) against fp32
# training: 200 steps on tinyshakespeare from the same seed, whose loss
# curves must stay within 0.25 of each other at every step and their means
# over each 20 steps within 0.08 (measured on an AMD EPYC: at most 0.06 to
# 0.11 at a step, while the loss falls fastest and runs drift apart in
# time, and 0.007 to 0.047 for the means, with losses from 5.6 down to
# 2.3; rounding inputs to 8 bits moves a step's loss by about 1%, while a
# product in the wrong precision or transposed moves it by far more, and
# one left unrounded gives fp32's very bytes). The kernels' rounding is
# checked exactly by test_kernels and test_gemm. On every path of the bf16
# product this machine has: AMX tiles on the amx level (in a make
# AMX_EMULATE=1 build, the model of them: 0.075 at a step and 0.014 for
# the means on the AMD EPYC), VDPBF16PS or its emulation on the avx512
# level, our product rounding as it packs on avx2, OpenBLAS on rounded
# copies on generic. bf16 must not give fp32's very bytes; it is
# deterministic; a bad --precision is refused; --resume may change it.
set -u
data=$DATA/tinyshakespeare/train.txt
[ -f "$data" ] || { echo "tinyshakespeare not found under DATA='$DATA'"; exit 77; }
fail=0
no() { echo "FAIL: $*"; fail=1; }
head -c 200000 "$data" > ts.txt
llm-tokenize train --vocab-size 256 -q -o tok.model ts.txt || { no "llm-tokenize train"; exit 1; }
run="-m tok.model --layers 2 --dim 64 --heads 4 --ffn-dim 172 --context 64 --batch 8
     --steps 200 --lr 3e-3 --warmup 20 --seed 7 -q -t 1"
losses() { sed -n 's/.*"step":[0-9]*,"loss":\([^,]*\),.*/\1/p' "$1"; }

# train NAME PRECISION [VAR=VALUE...]: NAME.llm and NAME.jsonl.
train() {
    name=$1 p=$2; shift 2
    rm -f "$name.jsonl"
    # shellcheck disable=SC2086
    env "$@" llm-train $run --precision "$p" --log "$name.jsonl" -o "$name.llm" ts.txt ||
        no "$name: llm-train failed"
}
train f32 f32

# compare NAME: NAME's curve against fp32's.
compare() {
    losses f32.jsonl > a.txt
    losses "$1.jsonl" > b.txt
    [ "$(wc -l < b.txt)" -eq 200 ] || { no "$1: $(wc -l < b.txt) steps logged, not 200"; return; }
    paste a.txt b.txt | awk -v n="$1" '
        { d = $1 - $2; if (d < 0) d = -d; if (d > m) { m = d; at = NR }
          w += $1 - $2; if (NR % 20 == 0) { if (w < 0) w = -w; if (w / 20 > wm) wm = w / 20; w = 0 } }
        END { printf "%s: largest difference from fp32 %.4f (step %d), of 20-step means " \
                     "%.4f; final loss %s (fp32 %s)\n", n, m, at, wm, $2, $1
              exit !(m <= 0.25 && wm <= 0.08) }' ||
        no "$1: the loss curve is not within 0.25 of fp32's, or its 20-step means within 0.08"
    cmp -s f32.llm "$1.llm" && no "$1: the very bytes of the fp32 model: were bf16 products used?"
}

levels=$(llm-eval --version | sed -n 's/^kernels: cpu \([a-z0-9]*\)\( (\(.*\) available)\)\{0,1\};.*/\1 \3/p' | tr -d ,)
for lv in $levels; do
    train "bf16-$lv" bf16 LLM_CPU="$lv"
    compare "bf16-$lv"
    if [ "$lv" = avx512 ]; then   # the emulated path of CPUs without AVX512_BF16
        train "bf16-$lv-emulated" bf16 LLM_CPU="$lv" LLM_GEMM=own-nobf16
        compare "bf16-$lv-emulated"
    fi
done

# Deterministic: the same bytes again.
set -- $levels
train again bf16 LLM_CPU="$1"
cmp -s "bf16-$1.llm" again.llm || no "bf16 on $1: two runs gave different models"

# A bad value is refused; --resume may change the precision.
if llm-train $run --precision f8 -o x.llm ts.txt 2> err.txt; then no "--precision f8 accepted"
else grep -q "invalid value 'f8' for --precision" err.txt || no "--precision f8: $(cat err.txt)"; fi
llm-train $run --precision bf16 --until 100 -o r.llm ts.txt || no "the run to step 100"
llm-train --resume r.llm.ckpt --precision f32 -q -o r.llm 2> err.txt ||
    no "--resume with another --precision: $(cat err.txt)"
exit $fail
