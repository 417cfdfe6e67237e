"""Capacity: how many runs a device takes at once, and which queued runs share one worker process.

    ATLAS_CPU_SLOTS=1  ATLAS_GPU_SLOTS=N  ATLAS_PACK=64  ATLAS_PACK_CPU=1  ATLAS_DEVICE=cpu   (overrides)

Per-device caps count worker processes: CPU 1 by default; GPU from the model's size -- a
MiniLM run uses a sliver of a GPU and is launch-bound, so 12 concurrent processes gave 6.6x
the throughput of one on an H200 (DESIGN.md §5). Packed training: on a GPU one process takes
up to :func:`pack_cap` ready runs of one :func:`pack_group` (backbone, device, prompt length)
and trains them in one forward per step (``core.training.train_packed``).

Pure functions of the environment and the model's config.json (no store, no processes).
"""
from __future__ import annotations

import math
import os

from core.runs.spec import backbone_info

GPU_SLOTS_MAX = 12  # measured sweet spot for MiniLM on an H200


def gpu_slots(backbone: str | None, mem_bytes: int | None = None) -> int:
    """Concurrent runs per GPU for a model: floor(0.9 * GPU memory / per-run estimate),
    between 1 and 12. Per-run estimate = 0.6 GB (CUDA context, allocator) + 4 bytes x
    params x 3 (bf16 weights, activations, optimizer state of the prompt: generous)."""
    env = os.environ.get("ATLAS_GPU_SLOTS")
    if env:
        return max(1, int(env))
    try:
        params = backbone_info(backbone)["params"]
    except Exception:
        params = 110_000_000
    if mem_bytes is None:
        try:
            import torch

            mem_bytes = torch.cuda.get_device_properties(0).total_memory
        except Exception:
            mem_bytes = 16 * 2**30
    per_run = 0.6 * 2**30 + 12 * params
    cap = min(GPU_SLOTS_MAX, int(0.9 * mem_bytes // per_run))
    # a large model saturates the GPU itself: scale the 12 (measured for 22.7M params) down
    cap = min(cap, max(1, round(GPU_SLOTS_MAX * math.sqrt(25e6 / max(params, 25e6)))))
    return max(1, cap)


PACK_MAX = 64  # runs per packed worker process (ATLAS_PACK overrides)
PROMPT_LENGTH_DEFAULT = 20  # core.training.TrainConfig.prompt_length (not imported: that pulls in torch)


def cpu_packing() -> bool:
    """Whether CPU runs are packed. Off unless ATLAS_PACK_CPU=1. Measured (bench/packed_speed.py,
    2 shared cores, prompt-steps per CPU-second, one thread): at the default shape (batch 16,
    20 + 64 tokens) a pack of 4 did 1.02x one run; at batch 4 x (20 + 32) tokens packs of 4 / 16
    did 1.15x / 1.19x. CPU training is compute-bound, so a pack mostly makes K runs finish
    together, later, instead of one after another; one process per run stays the CPU default."""
    return os.environ.get("ATLAS_PACK_CPU", "").strip().lower() in ("1", "true", "yes")


def pack_cap(device: str, spec: dict, mem_bytes: int | None = None) -> int:
    """How many queued runs one worker process trains packed (one forward per step).

    GPU: min(ATLAS_PACK or 64, what fits in half the GPU's memory by a per-run activation
    estimate: batch x (L + max_length) positions x layers x (12 d + 2 heads x positions)
    values of 4 bytes, kept for the backward). CPU: 1 unless packing is forced on
    (``ATLAS_PACK_CPU=1``), then ATLAS_PACK or 64."""
    env = os.environ.get("ATLAS_PACK", "").strip()
    cap = max(1, int(env)) if env else PACK_MAX
    if not str(device).startswith("cuda"):
        return cap if cpu_packing() else 1
    params = spec.get("params") or {}
    try:
        info = backbone_info(spec.get("backbone"))
    except Exception:
        info = {"dim": 768, "layers": 12, "heads": 12}
    S = int(params.get("prompt_length", PROMPT_LENGTH_DEFAULT)) + int(params.get("max_length", 128))
    per_run = int(params.get("batch_size", 16)) * S * info["layers"] * (12 * info["dim"] + 2 * info["heads"] * S) * 4
    if mem_bytes is None:
        try:
            import torch

            mem_bytes = torch.cuda.get_device_properties(0).total_memory
        except Exception:
            mem_bytes = 16 * 2**30
    return max(1, min(cap, int(0.5 * mem_bytes // max(per_run, 1))))


def pack_group(spec: dict) -> tuple:
    """Queued runs pack together when these agree (core.training.pack_key): backbone, device,
    prompt length, label-word head. Backend and address too: a pack is one process or one Ray job."""
    params = spec.get("params") or {}
    return (spec.get("backend", "local"), spec.get("address"), spec.get("device"), spec.get("backbone"),
            int(params.get("prompt_length", PROMPT_LENGTH_DEFAULT)), params.get("lm_head") or "",
            params.get("lm_scoring") or "")


def cpu_slots() -> int:
    return max(1, int(os.environ.get("ATLAS_CPU_SLOTS", "1")))


def n_gpus() -> int:
    try:
        import torch

        return torch.cuda.device_count() if torch.cuda.is_available() else 0
    except Exception:
        return 0


def resolve_device_for_queue(device: str) -> str:
    """'auto' -> 'cuda' when this machine has a GPU, else 'cpu' (decided at submit)."""
    if device == "auto":
        forced = os.environ.get("ATLAS_DEVICE", "").strip().lower()
        if forced:
            return forced
        return "cuda" if n_gpus() else "cpu"
    return device
