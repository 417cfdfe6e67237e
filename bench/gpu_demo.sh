#!/usr/bin/env bash
# On a lent GPU machine (device tool), from the repo root:
#   bash bench/gpu_demo.sh            # CUDA smoke run, GPU train bench, then the demo grid
# Needs carried: .cache/device (prepared task text + an fp16 copy of MiniLM, made by
# `python bench/pack_device.py`). Everything lands in $OUT (at most 8 files come back).
set -u
OUT=${OUT:-/tmp/out}; mkdir -p "$OUT"
PY=$(command -v python3)
export ATLAS_CACHE=$PWD/.cache/device ATLAS_MINILM_PATH=$PWD/.cache/device/minilm-fp16
export HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 ATLAS_HOME=/tmp/atlas_home PYTHONUNBUFFERED=1
DEADLINE=${DEADLINE:-300}
{ nvidia-smi --query-gpu=name,memory.total --format=csv; $PY -c "import torch,transformers,peft;print(torch.__version__,transformers.__version__,peft.__version__)"; } 2>&1 | tee "$OUT/env.txt"
# 1. CUDA path of the engine: one short real run
[ "${SMOKE:-1}" = 1 ] && timeout 60 $PY -m core train --task sent_tweet --method scratch --steps 60 --train-size 128 --device cuda \
  --out /tmp/cuda_smoke 2>&1 | tail -5 | tee "$OUT/cuda_smoke.txt"
# 2. the demo grid (resumes from data/demo/results.csv when present)
timeout $((DEADLINE + 120)) $PY -m core demo build --profile gpu --deadline "$DEADLINE" --no-finalize \
  --work /tmp/demo-runs 2>&1 | tee "$OUT/demo_build.log" | tail -40
tar czf "$OUT/demo.tar.gz" data/demo
# 3. the GPU train bench, time permitting
if [ -f bench/train_speed.py ] && [ "${BENCH:-1}" = 1 ]; then
  timeout 100 $PY bench/train_speed.py --device cuda --bert-large --steps 100 --seq-len 128 --compile --tasks '' \
    2>&1 | tail -30 | tee "$OUT/train_speed_gpu.txt"
  timeout 60 $PY bench/train_speed.py --device cuda --steps 100 --tasks sent_movie,question_type \
    2>&1 | tail -30 | tee "$OUT/train_speed_gpu_minilm.txt"
fi
ls -la "$OUT"
