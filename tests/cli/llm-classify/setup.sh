# setup.sh: sourced by the llm-classify CLI cases: a small labelled set and
# a tiny classifier trained on it from scratch in well under a second
# (single thread, fixed seed: the same bytes every run on a machine).
awk -v n=300 -v seed=1 -f "$FIXTURES/labelled.awk" > train.tsv
llm-train --task classify -m "$FIXTURES/tiny.model" --layers 1 --dim 32 --heads 2 \
    --ffn-dim 64 --context 32 --batch 16 --steps 30 --lr 3e-3 --warmup 5 --threads 1 \
    -q -o c.llm train.tsv || exit 3
