#!/bin/sh
# attention.sh: one layer's causal attention, forward and backward, on the
# CPU: ours (attention_speed: the kernel table of the level this CPU runs)
# beside PyTorch's scaled_dot_product_attention (attention_torch.py: its
# flash-attention CPU kernel), on the stories15M layer at batch 8 (8, 256, 6
# heads, 48 wide) and SmolLM2-135M's at batch 2 x 1024 and 1 x 1024 (9
# query heads on 3 kv heads, 64 wide), 2 threads. ATTN_REPS (default 3) rounds, each ours
# then PyTorch, in turn; medians and ranges over the rounds of each one's
# best of 5 calls. ATTN_PRECISION (default "f32", and bf16 too on a CPU with
# AVX512_BF16, where PyTorch's bf16 runs at speed) names the precisions.
set -u
prog=$TOP/$B/bench/attention_speed
[ -x "$prog" ] || { echo "attention_speed: $prog not built"; exit 1; }
cpu=$(lscpu 2>/dev/null | sed -n 's/^Model name: *//p' | head -n 1)
echo "CPU: ${cpu:-unknown}, $(nproc) CPUs"
precs=${ATTN_PRECISION:-f32$(grep -q avx512_bf16 /proc/cpuinfo 2>/dev/null && echo " bf16")}
reps=${ATTN_REPS:-3}
py=""
for p in python3 /usr/bin/python3; do
    if command -v "$p" >/dev/null 2>&1 && "$p" -c 'import torch' 2>/dev/null; then py=$p; break; fi
done
[ -n "$py" ] || echo "PyTorch: not installed (pip install torch), ours alone"
for p in $precs; do
    r=1
    while [ "$r" -le "$reps" ]; do
        "$prog" --threads 2 --precision "$p" | sed 's/^/ours /' >> rounds.txt
        [ -n "$py" ] && "$py" "$TOP/tests/bench/attention_torch.py" --threads 2 --precision "$p" |
            sed 's/^/torch /' >> rounds.txt
        r=$((r + 1))
    done
done
[ -n "$py" ] && echo "torch $("$py" -c 'import torch; print(torch.__version__)')"
# rounds.txt lines: "WHO B b T t H h KVH k hd d threads n PREC: forward F ms, backward G ms"
awk '
function med(s,   n, a, i, j, t) {
    n = split(s, a, " ")
    for (i = 2; i <= n; i++) for (j = i; j > 1 && a[j - 1] + 0 > a[j] + 0; j--) { t = a[j]; a[j] = a[j - 1]; a[j - 1] = t }
    return sprintf("%.2f (%.2f-%.2f)", n % 2 ? a[(n + 1) / 2] : (a[n / 2] + a[n / 2 + 1]) / 2, a[1], a[n])
}
function mid(s,   n, a, i, j, t) {
    n = split(s, a, " ")
    for (i = 2; i <= n; i++) for (j = i; j > 1 && a[j - 1] + 0 > a[j] + 0; j--) { t = a[j]; a[j] = a[j - 1]; a[j - 1] = t }
    return n % 2 ? a[(n + 1) / 2] : (a[n / 2] + a[n / 2 + 1]) / 2
}
{
    key = $3 " x " $5 ", " $7 "/" $9 " heads x " $11 ", " $14
    sub(/:$/, "", key)
    if (!(key in seen)) { seen[key] = 1; order[++nk] = key }
    f[$1, key] = f[$1, key] " " $16
    b[$1, key] = b[$1, key] " " $19
    t[$1, key] = t[$1, key] " " ($16 + $19)
}
END {
    printf "one layer, 2 threads, ms (median, range over rounds): forward | backward\n"
    for (i = 1; i <= nk; i++) {
        k = order[i]
        printf "%-32s ours  %s | %s\n", k, med(f["ours", k]), med(b["ours", k])
        if (("torch", k) in f) {
            printf "%-32s torch %s | %s\n", "", med(f["torch", k]), med(b["torch", k])
            printf "%-32s torch / ours, forward + backward: %.2fx\n", "",
                mid(t["torch", k]) / mid(t["ours", k])
        }
    }
}' rounds.txt
