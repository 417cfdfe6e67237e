#!/usr/bin/env bash
# On a lent GPU machine (device tool), from the repo root:
#   DEADLINE=370 bash bench/gpu_demo.sh     # GPU train bench (BERT-large shape), then the demo grid
# Needs carried: .cache/device (prepared task text + an fp16 copy of MiniLM, made by
# `python bench/pack_device.py`). Everything lands in $OUT (a few small files come back).
# Knobs: SMOKE=1 adds a one-run CUDA smoke test first; BENCH=0 skips the bench;
# DEADLINE = seconds after which the demo build starts no new run (it resumes next time).
set -u
OUT=${OUT:-/tmp/out}; mkdir -p "$OUT"
PY=$(command -v python3)
export ATLAS_CACHE=$PWD/.cache/device ATLAS_MINILM_PATH=$PWD/.cache/device/minilm-fp16
export HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 ATLAS_HOME=/tmp/atlas_home PYTHONUNBUFFERED=1
DEADLINE=${DEADLINE:-300}
{ nvidia-smi --query-gpu=name,memory.total --format=csv; $PY -c "import torch,transformers,peft;print(torch.__version__,transformers.__version__,peft.__version__)"; } 2>&1 | tee "$OUT/env.txt"
# 0. CUDA path of the engine: one short real run
[ "${SMOKE:-0}" = 1 ] && timeout 60 $PY -m core train --task sent_tweet --method scratch --steps 60 --train-size 128 --device cuda \
  --out /tmp/cuda_smoke 2>&1 | tail -5 | tee "$OUT/cuda_smoke.txt"
# 1. the GPU train bench (issue 3's GPU target), BERT-large shape, batch 16
if [ "${BENCH:-1}" = 1 ]; then
  timeout "${BENCH_TIMEOUT:-140}" $PY bench/train_speed.py --device cuda --bert-large --steps 100 --seq-len 128 \
    --compile --tasks '' 2>&1 | grep -v Warning | tail -40 | tee "$OUT/train_speed_gpu.txt"
fi
# 2. the demo grid (resumes from data/demo/results.csv)
timeout $((DEADLINE + 90)) $PY -m core demo build --profile gpu --deadline "$DEADLINE" --no-finalize \
  --work /tmp/demo-runs > "$OUT/demo_build.log" 2>&1
tail -8 "$OUT/demo_build.log"
cp data/demo/results.csv data/demo/manifest.json "$OUT/"
ls -la "$OUT"
