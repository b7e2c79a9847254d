#!/bin/sh
# train_speed.sh: training tokens/s and MFU of the stories15M shape (vocab
# 4096, context 256) at batch 8 and 32 on 1 and 2 threads; PyTorch 1.13 on
# 2 threads does ~940 tokens/s at batch 8 and ~1200 at batch 32 here
# (tests/bench/pytorch_train.py prints today's figure when torch is present).
set -u
prog=$TOP/$B/bench/train_speed
[ -x "$prog" ] || { echo "train_speed: $prog not built"; exit 1; }
"$prog" --preset small --vocab 4096 --context 256 --batch 8,32 --threads 1,2 --steps 3
