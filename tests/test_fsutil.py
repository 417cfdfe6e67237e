"""core.fsutil: atomic writes leave the old file or the new one, never a half; hashes never drift."""
from __future__ import annotations

import hashlib
import json

import numpy as np
import pytest

from core import fsutil


def test_atomic_write_text_bytes_json_npy(tmp_path):
    p = tmp_path / "a" / "b.txt"
    fsutil.atomic_write_text(p, "é\n")
    assert p.read_bytes() == "é\n".encode("utf-8")
    fsutil.atomic_write_bytes(p, b"\x00\x01")
    assert p.read_bytes() == b"\x00\x01"
    fsutil.atomic_write_json(tmp_path / "c.json", {"b": 1, "a": [1, 2]}, indent=2)
    assert (tmp_path / "c.json").read_text().endswith("}\n")
    assert json.loads((tmp_path / "c.json").read_text()) == {"b": 1, "a": [1, 2]}
    fsutil.atomic_write_json(tmp_path / "d.json", {"x": 1})
    assert (tmp_path / "d.json").read_text() == '{"x": 1}'
    fsutil.atomic_save_npy(tmp_path / "e.npy", np.eye(2))
    assert np.array_equal(np.load(tmp_path / "e.npy", allow_pickle=False), np.eye(2))
    assert sorted(x.name for x in tmp_path.rglob("*")) == ["a", "b.txt", "c.json", "d.json", "e.npy"]


def test_failed_write_keeps_the_old_file_and_no_temp(tmp_path):
    p = tmp_path / "keep.txt"
    p.write_text("old")
    with pytest.raises(RuntimeError):
        with fsutil.atomic_open(p, "w") as f:
            f.write("half")
            raise RuntimeError("killed mid-write")
    assert p.read_text() == "old"
    assert [x.name for x in tmp_path.iterdir()] == ["keep.txt"]
    with pytest.raises(ValueError, match="mode"):
        with fsutil.atomic_open(p, "a"):
            pass


def test_hashes_are_pinned():
    """Stored artifacts (demo matrices, caches) are keyed by these: the values were computed by the
    code before fsutil existed (prompts.content_hash, metrics.matrix_key, projection_key, ...)."""
    import torch

    from core import metrics, projection, prompts, ranking
    from core.tasks.demo import spec

    v = np.arange(12, dtype=np.float32).reshape(3, 4) / 7
    p = prompts.SoftPrompt(tensor=v, name="a", task="t")
    assert p.content_hash() == "234e8735745d170a"
    assert metrics._content_hash(torch.from_numpy(v)) == "234e8735745d170a"
    assert fsutil.array_hash(v) == "234e8735745d170a"
    assert metrics.matrix_key("e_avg", [p], None) == "f55fc870529145d076aa"
    assert projection.projection_key(v, ["a", "b", "c"], "pca", {"k": 1}) == "14e561e253dad82d0580"
    assert spec._task_hash("sent_movie", {"x": 1}) == "f2af2c89d58edafa"
    assert ranking._cache_path("bb", ranking.RankSettings(), "abc").name == "8a5989ad9f1054778fc6.json"
    assert fsutil.json_hash([1, "a"], 8) == hashlib.sha256(b'[1, "a"]').hexdigest()[:8]
    # the demo's recorded predictions are keyed by split_fingerprint, the pages' matrix memo by the
    # library's content_hash: both now fsutil.lines_hash, values from the code before it
    from core.demo import split_fingerprint
    from core.library import LibraryIndex
    assert split_fingerprint(["a film", "é un"], [0, 1]) == "e24db3be78eb0d7c"
    ix = LibraryIndex(prompts={"b": prompts.SoftPrompt(tensor=v, name="b", backbone="m"),
                               "a": prompts.SoftPrompt(tensor=v * 2, name="a")})
    assert ix.content_hash() == "f62d6743f37c0877"
    assert fsutil.lines_hash(["a\n", "b\n"]) == hashlib.sha256(b"a\nb\n").hexdigest()[:16]
    assert projection.features_hash(v, ["a", "b", "c"]) == fsutil.array_hash(v, "a\x1fb\x1fc")


def test_file_sha256(tmp_path):
    data = bytes(range(256)) * 5000  # > 1 MiB: more than one chunk
    (tmp_path / "f").write_bytes(data)
    assert fsutil.file_sha256(tmp_path / "f") == hashlib.sha256(data).hexdigest()
