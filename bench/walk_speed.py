"""What the bounded walk (core.access.Walk) costs against a plain os.walk, on the same tree.

    .venv/bin/python bench/walk_speed.py [--adapters 3000] [--repeat 3]

Builds a temporary library shaped like a big PEFT collection (``--adapters`` folders of
adapter_config.json + adapter_model.safetensors + README.md, in 30 sub-folders: ~4 entries per
prompt), then times, best of ``--repeat``: os.walk listing every file (the old walk), Walk
listing every file (the pages' change detector), and core.library's candidate walk. A huge
tree (more entries than the cap) is walked too, to show the cap bounds the cost.
Prints seconds and ratios against os.walk measured in this process.
"""
from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from core.access import MAX_ENTRIES, Walk  # noqa: E402
from core.library import _walk  # noqa: E402


def build(root: Path, adapters: int) -> int:
    for i in range(adapters):
        d = root / f"group{i % 30:02d}" / f"adapter{i:05d}"
        d.mkdir(parents=True)
        for name in ("adapter_config.json", "adapter_model.safetensors", "README.md"):
            (d / name).write_bytes(b"{}")
    return sum(len(ds) + len(fs) for _, ds, fs in os.walk(root))


def best(fn, repeat: int) -> tuple[float, int]:
    times, n = [], 0
    for _ in range(repeat):
        t0 = time.perf_counter()
        n = fn()
        times.append(time.perf_counter() - t0)
    return min(times), n


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--adapters", type=int, default=3000)
    ap.add_argument("--repeat", type=int, default=3)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp) / "lib"
        entries = build(root, args.adapters)
        print(f"tree: {args.adapters} adapter folders, {entries} files and folders (cap {MAX_ENTRIES})")
        base, n0 = best(lambda: sum(len(fs) for _, _, fs in os.walk(root)), args.repeat)
        print(f"os.walk, every file:              {base:.3f} s  ({n0} files)  ratio 1.00")

        def bounded():
            w = Walk(root)
            n = sum(len(fs) for _, _, fs in w)
            assert not w.notes, w.notes
            return n
        t, n = best(bounded, args.repeat)
        print(f"Walk, every file:                 {t:.3f} s  ({n} files)  ratio {t / base:.2f}")
        t, n = best(lambda: sum(1 for _ in _walk(root)), args.repeat)
        print(f"core.library candidates (Walk):   {t:.3f} s  ({n} adapters)  ratio {t / base:.2f}")

        huge = Path(tmp) / "huge"
        for i in range(40):
            d = huge / f"d{i:02d}"
            d.mkdir(parents=True)
            for j in range(2000):
                (d / f"f{j:04d}").write_bytes(b"")
        cap = 20_000
        t_all, n_all = best(lambda: sum(len(fs) for _, _, fs in os.walk(huge)), 1)
        w = Walk(huge, max_entries=cap)
        t_cap, n_cap = best(lambda: sum(len(fs) for _, _, fs in w), 1)
        print(f"huge tree {n_all} files: os.walk {t_all:.3f} s; Walk capped at {cap} entries {t_cap:.3f} s "
              f"({n_cap} files, ratio {t_cap / t_all:.2f}); note: {w.notes[0][:60]}...")


if __name__ == "__main__":
    main()
