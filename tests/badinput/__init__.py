"""A corpus of broken prompt files, generated on the fly (no binary junk in git).

    from badinput import make_corpus
    cases = make_corpus(tmp_path)     # list[BadCase]

Every case has the bytes a user would upload (``filename``, ``data``) and,
unless it only makes sense as an upload (zip-level attacks), a form on disk
(``path``: a file, or an adapter folder) for the read API and
``python -m core prompts inspect``. ``expect`` is a substring of the problem
the user must see. ``marker`` is the file the malicious pickles would create
if anything ever executed them.
"""
from __future__ import annotations

import io
import json
import os
import pickle
import zipfile
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from safetensors.torch import save as st_save

MINILM = "sentence-transformers/all-MiniLM-L6-v2"
CAP_ENV = {"ATLAS_MAX_PROMPT_BYTES": "4096"}  # a tiny size cap, for the over-the-cap case only


@dataclass
class BadCase:
    name: str
    expect: str                  # substring of the PromptError problem
    filename: str                # upload name
    data: bytes                  # upload bytes
    path: Path | None = None     # on-disk form (None: upload only)
    env: dict = field(default_factory=dict)


class _Evil:
    """Unpickling this runs a shell command: what a hostile "prompt" file does."""

    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


def _torch_bytes(obj) -> bytes:
    buf = io.BytesIO()
    torch.save(obj, buf)
    return buf.getvalue()


def _npy_bytes(a: np.ndarray, allow_pickle=False) -> bytes:
    buf = io.BytesIO()
    np.save(buf, a, allow_pickle=allow_pickle)
    return buf.getvalue()


def _adapter_files(config: dict | None = None, weights: torch.Tensor | None = None, *, L=8, d=384,
                   backbone=MINILM, drop_weights=False) -> dict[str, bytes]:
    cfg = {"peft_type": "PROMPT_TUNING", "task_type": "FEATURE_EXTRACTION", "num_virtual_tokens": L,
           "token_dim": d, "num_transformer_submodules": 1, "base_model_name_or_path": backbone}
    cfg.update(config or {})
    files = {"adapter_config.json": json.dumps(cfg).encode()}
    if not drop_weights:
        w = torch.randn(L, d) if weights is None else weights
        files["adapter_model.safetensors"] = st_save({"prompt_embeddings": w})
    return files


def _zip(members: dict[str, bytes], *, symlink: str | None = None) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as z:
        for name, data in members.items():
            z.writestr(name, data)
        if symlink:
            info = zipfile.ZipInfo(symlink)
            info.external_attr = (0o120777 << 16)  # S_IFLNK
            z.writestr(info, "/etc/passwd")
    return buf.getvalue()


def _zip_bomb(declared_mib: int = 300) -> bytes:
    """One member of zeros that inflates to ``declared_mib`` MiB (about 0.3 MiB zipped)."""
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED, compresslevel=9) as z:
        with z.open("adapter/adapter_model.safetensors", "w", force_zip64=True) as f:
            chunk = bytes(1 << 20)
            for _ in range(declared_mib):
                f.write(chunk)
        z.writestr("adapter/adapter_config.json", json.dumps({"peft_type": "PROMPT_TUNING"}))
    return buf.getvalue()


def _zip_lying_sizes() -> bytes:
    """A member whose headers declare 10 bytes while it inflates to 4 MiB."""
    data = bytearray(_zip({"adapter/adapter_model.safetensors": bytes(4 << 20)}))
    local, central = data.find(b"PK\x03\x04"), data.find(b"PK\x01\x02")
    data[local + 22: local + 26] = (10).to_bytes(4, "little")
    data[central + 24: central + 28] = (10).to_bytes(4, "little")
    return bytes(data)


def make_corpus(root: Path) -> list[BadCase]:
    root = Path(root)
    root.mkdir(parents=True, exist_ok=True)
    marker = root / "PWNED"
    good = torch.randn(8, 384)
    st_good = st_save({"prompt_embeddings": good})
    torch_good = _torch_bytes(good)
    nan = good.clone()
    nan[2, 3] = float("nan")
    inf = good.numpy().copy()
    inf[0, 0] = np.inf

    cases: list[BadCase] = []

    def file_case(name, expect, filename, data, env=None):
        p = root / name / filename
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_bytes(data)
        cases.append(BadCase(name, expect, filename, data, p, env or {}))

    def adapter_case(name, expect, files):
        folder = root / name / "adapter"
        folder.mkdir(parents=True, exist_ok=True)
        for rel, data in files.items():
            (folder / rel).write_bytes(data)
        zipped = _zip({f"adapter/{rel}": data for rel, data in files.items()})
        cases.append(BadCase(name, expect, f"{name}.zip", zipped, folder))

    def upload_case(name, expect, data, filename=None):
        cases.append(BadCase(name, expect, filename or f"{name}.zip", data))

    file_case("not_2d", "expected a 2-D", "three_d.pt", _torch_bytes(torch.randn(2, 8, 384)))
    file_case("one_d_npy", "expected a 2-D", "vector.npy", _npy_bytes(np.ones(384, np.float32)))
    file_case("zero_size", "zero-size", "empty_rows.safetensors",
              st_save({"prompt_embeddings": torch.zeros(0, 384)}))
    file_case("nan", "NaN", "nan_prompt", _torch_bytes(nan))  # no extension, as thunlp publishes
    file_case("inf", "Inf", "inf.npy", _npy_bytes(inf))
    file_case("int_values", "expected float values", "ints.pt", _torch_bytes(torch.ones(8, 384, dtype=torch.int64)))
    file_case("ambiguous", "ambiguous", "two_tensors.pt", _torch_bytes({"a": good, "b": good * 2}))
    file_case("unknown_format", "unknown format", "prompt.bin", b"hello, this is not a tensor at all\n")
    file_case("csv_renamed", "unknown format", "prompt.safetensors", b"text,label\ngreat movie,1\nawful,0\n")
    file_case("empty_file", "empty file", "nothing.pt", b"")
    file_case("truncated_safetensors", "truncated", "cut.safetensors", st_good[: len(st_good) // 2])
    file_case("truncated_torch", "truncated or corrupt torch", "cut.pt", torch_good[: len(torch_good) // 2])
    file_case("malicious_pickle", "refused: file contains pickled code", "prompt.pkl",
              pickle.dumps(_Evil(marker), protocol=4))
    file_case("malicious_torch_zip", "refused: file contains pickled code", "task_prompt_evil",
              _torch_bytes({"prompt_embeddings": good, "hook": _Evil(marker)}))
    file_case("npy_object", "refused: object array", "objects.npy",
              _npy_bytes(np.array([{"a": 1}, None], dtype=object), allow_pickle=True))
    file_case("over_size_cap", "over the size cap", "big.safetensors",
              st_save({"prompt_embeddings": torch.randn(64, 384)}), env=CAP_ENV)
    adapter_case("adapter_disagree", "disagree", _adapter_files({"num_virtual_tokens": 10}))
    adapter_case("adapter_missing_weights", "adapter weights missing", _adapter_files(drop_weights=True))
    adapter_case("adapter_not_prompt_tuning", "only PROMPT_TUNING", _adapter_files({"peft_type": "LORA"}))
    adapter_case("adapter_wrong_dim", "does not match its backbone",
                 _adapter_files(weights=torch.randn(8, 512), d=512))
    adapter_case("adapter_bad_json", "not valid JSON",
                 {"adapter_config.json": b"{not json", "adapter_model.safetensors": st_good})
    upload_case("zip_dotdot", "'..' path", _zip({"../evil/adapter_config.json": b"{}"}))
    upload_case("zip_absolute", "absolute path", _zip({"/tmp/evil/adapter_config.json": b"{}"}))
    upload_case("zip_symlink", "symbolic link", _zip(_adapter_files(), symlink="adapter/link"))
    upload_case("zip_too_many", "more than 16", _zip({f"adapter/f{i}.txt": b"x" for i in range(20)}))
    upload_case("zip_bomb", "zip bomb", _zip_bomb())
    upload_case("zip_lying_sizes", "CRC", _zip_lying_sizes())
    upload_case("zip_no_prompt", "no soft prompt", _zip({"notes/README.md": b"# nothing here"}))
    upload_case("zip_truncated", "not a readable zip", _zip({f"adapter/{k}": v for k, v in _adapter_files().items()})[:200])
    return cases


def tree_digest(folder: Path) -> dict[str, str]:
    """relative path -> sha256 (or 'dir') for everything under ``folder``: byte-for-byte comparison."""
    import hashlib

    out = {}
    for p in sorted(Path(folder).rglob("*")):
        rel = p.relative_to(folder).as_posix()
        out[rel] = "dir" if p.is_dir() else hashlib.sha256(p.read_bytes()).hexdigest()
    return out


__all__ = ["BadCase", "make_corpus", "tree_digest", "CAP_ENV", "MINILM"]


REPO = Path(__file__).resolve().parent.parent.parent


def run_cli(*args, env_extra=None):
    """`python -m core ARGS...` in a subprocess (what a user types), one BLAS thread."""
    import subprocess
    import sys
    env = {**os.environ, "OMP_NUM_THREADS": "1", **(env_extra or {})}
    return subprocess.run([sys.executable, "-m", "core", *map(str, args)], cwd=REPO, env=env,
                          capture_output=True, text=True, timeout=300)
