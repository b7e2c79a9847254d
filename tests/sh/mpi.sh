#!/bin/sh
# mpi.sh: llm-train as 2 data-parallel MPI ranks on one machine against one
# process with the same seed and global batch: per-step losses and the final
# models agree within 1e-4 (float sums in another order), mpirun -np 1 gives
# the same bytes as no mpirun, a 2-rank checkpoint resumes in 1 process and
# the reverse, only rank 0 writes, a micro-batch count that the ranks cannot
# share and a dying rank fail cleanly. Skipped without mpirun, or when
# llm-train was built without MPI (make MPI=1).
set -u
command -v mpirun >/dev/null 2>&1 || { echo "mpirun not found (Debian: openmpi-bin)"; exit 77; }
# CI runs as root; Open MPI refuses that unless told.
OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
OMPI_MCA_rmaps_base_oversubscribe=1
export OMPI_ALLOW_RUN_AS_ROOT OMPI_ALLOW_RUN_AS_ROOT_CONFIRM OMPI_MCA_rmaps_base_oversubscribe
tok=$FIXTURES/tiny.model
txt=$FIXTURES/tiny.txt
# 4 micro-batches of 4 x 32 per step: 2 for each rank.
shape="--layers 2 --dim 32 --heads 4 --kv-heads 2 --ffn-dim 64 --context 32 --batch 4 --threads 1 -q"
run="--batch-tokens 512 --dropout 0.1 --steps 16 --seed 7 --lr 3e-3 --warmup 2"
TOL=1e-4
fail=0
no() { echo "FAIL: $*"; fail=1; }
mpi() { timeout 120 mpirun --oversubscribe -np "$@"; }

mpi 2 llm-train -m "$tok" $shape --batch-tokens 256 --steps 0 -o probe.llm "$txt" 2>err
if grep -q "built without MPI" err; then
    echo "llm-train was built without MPI (make MPI=1 B=build-mpi)"; exit 77
fi
[ -s probe.llm ] || { cat err; no "mpirun -np 2 --steps 0"; }

losses() { sed -n 's/.*"loss":\([-0-9.e]*\).*/\1/p' "$1"; }
# Column-wise |a - b| <= TOL over two equally long lists.
close() { # what file1 file2
    [ "$(wc -l < "$2")" -eq "$(wc -l < "$3")" ] && [ -s "$2" ] ||
        { no "$1: $(wc -l < "$2") against $(wc -l < "$3") values"; return; }
    paste "$2" "$3" | awk -v t=$TOL '{ d = $1 - $2; if (d < 0) d = -d; if (d > m) m = d }
        END { printf "%s: largest difference %.2g\n", what, m; exit !(m <= t) }' what="$1" ||
        no "$1 differ by more than $TOL"
}
evalloss() { llm-eval -q -m "$1" --format json "$txt" | sed -n 's/.*"loss":\([-0-9.e]*\).*/\1/p'; }

llm-train -m "$tok" $shape $run --log one.log -o one.llm "$txt" || no "one process"
mpi 2 llm-train -m "$tok" $shape $run --log two.log -o two.llm "$txt" || no "2 ranks"
losses one.log > one.l; losses two.log > two.l
close "per-step losses, 2 ranks vs 1 process" one.l two.l
[ "$(wc -l < two.log)" -eq 16 ] || no "2-rank log has $(wc -l < two.log) lines, not 16 (rank 0 alone writes)"
grep -q '"ranks":2,"allreduce_s":' two.log || no "no all-reduce time in the 2-rank log"
grep -q '"tokens":512,' two.log || no "2-rank log does not count the global batch's 512 tokens"
evalloss one.llm > one.e; evalloss two.llm > two.e
close "final models' loss on the corpus" one.e two.e
ls two.llm.tmp* >/dev/null 2>&1 && no "temporary files left behind"

# One rank is one process, bit for bit.
mpi 1 llm-train -m "$tok" $shape $run -o np1.llm "$txt" || no "mpirun -np 1"
cmp -s one.llm np1.llm || no "mpirun -np 1 differs from a plain run"

# Resume with another number of ranks: the data position is global.
mpi 2 llm-train -m "$tok" $shape $run --until 8 --log r2.log -o r2.llm "$txt" || no "2 ranks to step 8"
llm-train $shape $run --resume r2.llm.ckpt --log r2.log -o r2.llm "$txt" || no "resume in 1 process"
losses r2.log > r2.l
close "2 ranks to step 8 + 1 process to 16, vs 1 process" one.l r2.l
evalloss r2.llm > r2.e
close "model after resuming a 2-rank checkpoint" one.e r2.e
llm-train -m "$tok" $shape $run --until 8 --log r1.log -o r1.llm "$txt" || no "1 process to step 8"
mpi 2 llm-train $shape $run --resume r1.llm.ckpt --log r1.log -o r1.llm "$txt" || no "resume on 2 ranks"
losses r1.log > r1.l
close "1 process to step 8 + 2 ranks to 16, vs 1 process" one.l r1.l

# 3 micro-batches cannot be shared by 2 ranks: a usage error, nothing written.
mpi 2 llm-train -m "$tok" $shape --batch-tokens 384 --steps 2 -o odd.llm "$txt" 2>err; st=$?
[ $st -ne 0 ] && grep -q "cannot be shared by 2 MPI ranks: set --batch-tokens to a multiple of 256" err ||
    no "3 micro-batches on 2 ranks: exit $st: $(cat err)"
[ -f odd.llm ] && no "a refused run wrote a model"

# A rank that dies (rank 1 cannot read its input) ends the whole job with a
# message, and the model and checkpoint from before stay whole.
cp one.llm keep.llm; cp one.llm.ckpt keep.ckpt
mpi 2 sh -c 'if [ "$OMPI_COMM_WORLD_RANK" = 1 ]; then f=/nonexistent.txt; else f=$0; fi
    exec llm-train -m "$1" $2 --batch-tokens 256 --steps 50 -o keep.llm --checkpoint keep.ckpt --save-every 1 "$f"' \
    "$txt" "$tok" "$shape" 2>err; st=$?
[ $st -ne 0 ] || no "a dead rank: exit 0"
[ $st -eq 124 ] && no "a dead rank: the job hung"
grep -q "cannot open '/nonexistent.txt'" err || no "a dead rank: no message: $(head -c 600 err)"
cmp -s keep.llm one.llm && cmp -s keep.ckpt one.llm.ckpt || no "a dead rank: files changed"
ls keep.* | grep -q tmp && no "a dead rank: temporary files left behind"
exit $fail
