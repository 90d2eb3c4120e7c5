#!/bin/sh
# A stand-in for `nvidia-smi --query-gpu=utilization.gpu,utilization.encoder
# --format=csv,noheader,nounits` on a one-GPU host that nobody uses: one "gpu, encoder" line.
echo "0, 0"
