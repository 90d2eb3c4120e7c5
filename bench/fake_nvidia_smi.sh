#!/bin/sh
# A stand-in for `nvidia-smi --query-gpu=utilization.gpu,utilization.encoder --format=csv` on a
# one-GPU host that nobody uses: the header line, then one "gpu, encoder" line with units.
echo "utilization.gpu [%], utilization.encoder [%]"
echo "0 %, 0 %"
