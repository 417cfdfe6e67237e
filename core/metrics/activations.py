"""Metrics that run prompts through their frozen backbone: on, on_probe, panda_sim, zs.

    python -m core matrix --library data/demo/prompts --metric on --out on.csv

``on``: the prompt alone, one forward per prompt (batched). ``on_probe`` and ``panda_sim``: a
shared probe set of k examples from every task, one batched forward per prompt, all pairs by
one matrix product (``panda_sim`` also has a target-faithful mode for small N). ``zs``: each
source prompt evaluated zero-shot on each target task's validation split minus that split's
majority rate. A backbone that cannot be loaded here raises :class:`BackboneUnavailable`.
"""
from __future__ import annotations

import json
import zlib
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np
import torch

from core.fsutil import atomic_write_text, json_hash
from core.metrics.items import _Item, _items
from core.metrics.prompt_space import _cos_from_gram, _same_length_blocks
from core.metrics.registry import BackboneUnavailable, MetricError, zs_lm_head


# --------------------------------------------------------------------------- backbone metrics
def _binary_cosine(A: torch.Tensor, chunk: int = 1 << 20) -> np.ndarray:
    """A [N, D] bool -> cosine of the 0/1 rows [N, N]: |a∧b| / sqrt(|a||b|).

    The Gram is accumulated over column chunks so a long probe vector never
    needs a full float copy.
    """
    N, D = A.shape
    G = torch.zeros((N, N), dtype=torch.float64)
    for c in range(0, D, chunk):
        F_ = A[:, c:c + chunk].float()
        G += (F_ @ F_.T).double()  # counts < 2^24 per chunk: exact in float32
    return _cos_from_gram(G).numpy()


def _backbone_wanted(items: list[_Item], backbone=None) -> str | None:
    """The model name these prompts are read with: ``backbone`` (a name, or a loaded Backbone's name), else
    the one backbone the prompts name (None when they name none or several)."""
    if backbone is not None:
        return backbone if isinstance(backbone, str) else backbone.name
    names = {it.backbone for it in items}
    return next(iter(names)) if len(names) == 1 else None


def _load_backbone_for(items: list[_Item], metric: str, backbone=None):
    """The Backbone object for these prompts (passed in, or loaded by the prompts' backbone name)."""
    if backbone is not None and not isinstance(backbone, str):
        bb = backbone
    else:
        want = _backbone_wanted(items, backbone)
        if want is None:
            raise BackboneUnavailable(None, metric)
        try:
            from core.backbone import load_backbone
        except ImportError as e:
            raise BackboneUnavailable(want, metric, f"core.backbone cannot be imported: {e}") from None
        try:
            bb = load_backbone(want)
        except (ValueError, OSError) as e:  # BackboneError is a ValueError
            raise BackboneUnavailable(want, metric, str(e).split("\n")[0]) from None
    d = {it.tensor.shape[1] for it in items}
    if d != {bb.dim}:
        raise MetricError(f"{metric}: prompts have d={sorted(d)} but backbone {bb.name} has d={bb.dim}")
    return bb


def on(prompts, backbone=None, *, batch: int = 16, counter: dict | None = None) -> np.ndarray:
    """ON: cosine of binarised FFN activations of each prompt alone. -> [N, N].

    One forward per prompt (``batch`` prompts share a batched forward):
    ``backbone.ffn_activations(P [n, L, d])`` -> [n, layers, d_ff], > 0.
    """
    items = _items(prompts)
    bb = _load_backbone_for(items, "on", backbone)
    rows = []
    for L, idx in _same_length_blocks(items).items():
        for s in range(0, len(idx), batch):
            part = idx[s:s + batch]
            acts = bb.ffn_activations(torch.stack([items[i].tensor for i in part]))  # [n, layers, d_ff]
            if counter is not None:
                counter["forwards"] = counter.get("forwards", 0) + 1
                counter["prompt_forwards"] = counter.get("prompt_forwards", 0) + len(part)
            rows += list(zip(part, (acts > 0).reshape(len(part), -1)))
    rows.sort(key=lambda r: r[0])
    return _binary_cosine(torch.stack([r[1] for r in rows]))


def _task_names(items: list[_Item], tasks: Sequence[str] | None) -> list[str]:
    if tasks:
        return list(dict.fromkeys(tasks))
    names = [it.task for it in items if it.task]
    if not names:
        try:
            from core.tasks import list_tasks
            names = list(list_tasks())
        except ImportError:
            names = []
    return list(dict.fromkeys(names))


def _get_task(name: str):
    try:
        from core.tasks import get_task
    except ImportError as e:
        raise MetricError(f"task {name!r}: core.tasks is not available ({e})") from None
    return get_task(name)


def probe_set(task_names: Sequence[str], *, k: int = 8, seed: int = 0, split: str = "validation",
              strict: bool = False) -> tuple[list[str], list[str], dict[str, str]]:
    """The shared probe set: k examples from every task (fixed seed per task).

    -> (texts, task of each text, {task: why it was skipped}). Tasks whose data
    is not prepared are skipped (or raise with ``strict``). An example of a sentence-pair
    task is a ``(first, second)`` tuple: :func:`_tokenize` encodes it as a pair.
    """
    texts, owner, skipped = [], [], {}
    for name in task_names:
        try:
            task = _get_task(name)
        except (ValueError, OSError) as e:
            if strict:
                raise MetricError(f"probe set: task {name!r}: {e}") from None
            skipped[name] = str(e).split("\n")[0]
            continue
        sp = getattr(task, split)
        pool = sp.texts
        if not pool:
            skipped[name] = f"empty {split} split"
            continue
        rng = np.random.default_rng([seed, zlib.crc32(name.encode())])
        pick = rng.choice(len(pool), size=min(k, len(pool)), replace=False)
        texts2 = getattr(sp, "texts2", None)
        texts += [pool[i] if texts2 is None else (pool[i], texts2[i]) for i in sorted(pick)]
        owner += [name] * len(pick)
    if not texts:
        why = "; ".join(f"{t}: {w}" for t, w in skipped.items()) or "no tasks known"
        raise MetricError(f"no probe examples: {why} (prepare task data with `python -m core tasks prepare`)")
    return texts, owner, skipped


def on_probe(prompts, backbone=None, *, tasks: Sequence[str] | None = None, k: int = 8, seed: int = 0,
             max_length: int = 64, position: int | str = 0, probe_texts: Sequence[str] | None = None,
             counter: dict | None = None) -> np.ndarray:
    """ON on the shared probe set: per prompt, one batched forward over all probe texts.

    Activations at ``position`` (0: the first prompt slot, holding the mask
    token as in ``on``) of every probe example, binarised and concatenated.
    ``probe_texts`` replaces the task-drawn probe set (tests, benchmarks).
    """
    items = _items(prompts)
    bb = _load_backbone_for(items, "on_probe", backbone)
    texts = list(probe_texts) if probe_texts else probe_set(_task_names(items, tasks), k=k, seed=seed)[0]
    enc = _tokenize(bb, texts, max_length)
    vecs = []
    for it in items:
        acts = bb.ffn_activations(it.tensor, enc["input_ids"], enc["attention_mask"], position=position,
                                  mask_slot0=True)  # [B, layers, d_ff]
        _count(counter)
        vecs.append((acts > 0).reshape(-1))
    return _binary_cosine(torch.stack(vecs))


def _tokenize(bb, texts: Sequence, max_length: int) -> dict:
    """Probe examples -> {"input_ids", "attention_mask"} [B, T]. Plain strings as before
    (``bb.tokenize``); when some are ``(first, second)`` pairs (a sentence-pair task), each is
    encoded as the tokenizer encodes pairs, the rest alone, and all right-padded together."""
    texts = list(texts)
    if not any(isinstance(t, tuple) for t in texts):
        return bb.tokenize(texts, max_length=max_length)
    single = [i for i, t in enumerate(texts) if not isinstance(t, tuple)]
    pair = [i for i, t in enumerate(texts) if isinstance(t, tuple)]
    ids: list = [None] * len(texts)
    for i, x in zip(single, bb.token_ids([texts[i] for i in single], max_length) if single else []):
        ids[i] = x
    for i, x in zip(pair, bb.token_ids([texts[i][0] for i in pair], max_length, [texts[i][1] for i in pair])):
        ids[i] = x
    return bb.pad(ids)


@torch.no_grad()
def _pooled(bb, prompt: torch.Tensor, enc: dict, pool: str = "text") -> torch.Tensor:
    """h(x; P) for all probe texts: [B, d] float32, unit rows."""
    h = bb.encode(enc["input_ids"], enc["attention_mask"], prompt, pool=pool).float().cpu()
    return torch.nn.functional.normalize(h, dim=1)


def _count(counter: dict | None, key: str = "forwards") -> None:
    if counter is not None:
        counter[key] = counter.get(key, 0) + 1
        if key == "forwards":
            counter["prompt_forwards"] = counter.get("prompt_forwards", 0) + 1


def _pooled_outputs(bb, items: list[_Item], texts: Sequence[str], *, max_length: int, pool: str,
                    counter: dict | None) -> tuple[torch.Tensor, int]:
    """One batched forward per prompt over ``texts``: flattened unit pooled outputs [N, B*d] float64, and B."""
    enc = _tokenize(bb, list(texts), max_length)
    H = []
    for it in items:
        H.append(_pooled(bb, it.tensor, enc, pool))
        _count(counter)
    H = torch.stack(H).double()                       # [N, B, d]
    return H.reshape(H.shape[0], -1), H.shape[1]


def panda_sim(prompts, backbone=None, *, tasks: Sequence[str] | None = None, k: int = 8, seed: int = 0,
              max_length: int = 64, target_faithful: bool = False, max_faithful: int = 40,
              pool: str = "text", probe_texts: Sequence[str] | None = None,
              counter: dict | None = None) -> np.ndarray:
    """mean_x cos(h(x; P_s), h(x; P_t)) -> [N, N] (our reading of PANDA's metric).

    Shared probe (default): one batched forward per prompt gives H [N, B, d]
    (unit rows); all pairs = reshape(H, [N, B*d]) Gram / B.
    Target-faithful: x = the target task's own inputs (k*#tasks of them): one
    batched forward per (prompt, target task); asymmetric; only for small N.
    """
    items = _items(prompts)
    bb = _load_backbone_for(items, "panda_sim", backbone)

    def outputs(texts) -> tuple[torch.Tensor, int]:
        return _pooled_outputs(bb, items, texts, max_length=max_length, pool=pool, counter=counter)

    if not target_faithful:
        texts = list(probe_texts) if probe_texts else probe_set(_task_names(items, tasks), k=k, seed=seed)[0]
        flat, B = outputs(texts)
        return (flat @ flat.T / B).clamp(-1.0, 1.0).numpy()
    if len(items) > max_faithful:
        raise MetricError(f"panda_sim target-faithful mode costs one forward per (prompt, target task): "
                          f"{len(items)} prompts is more than max_faithful={max_faithful}; use the shared probe")
    return _panda_faithful(items, outputs, k * max(1, len(_task_names(items, tasks))), seed)


def _panda_faithful(items: list[_Item], outputs, n_probe: int, seed: int) -> np.ndarray:
    """Target-faithful panda_sim: each target task's columns from ``n_probe`` of its own inputs."""
    n = len(items)
    out = np.full((n, n), np.nan)
    by_task: dict[str, list[int]] = {}
    for j, it in enumerate(items):
        if it.task:
            by_task.setdefault(it.task, []).append(j)
    for task_name, cols in by_task.items():
        try:
            texts, _, _ = probe_set([task_name], k=n_probe, seed=seed, strict=True)
        except MetricError:
            continue  # no data for this target task: its columns stay NaN
        flat, B = outputs(texts)
        out[:, cols] = (flat @ flat[cols].T / B).clamp(-1.0, 1.0).numpy()
    return out


def _zs_cache_path() -> Path:
    from core.config import cache_dir
    return cache_dir() / "metrics" / "zs_pairs.json"


def _zs_store(path: Path, use_cache: bool) -> dict[str, float]:
    """The zs evaluations cached on disk (key -> accuracy); {} when absent, unreadable or not used."""
    if not (use_cache and path.is_file()):
        return {}
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return {}


def _target_tasks(items: list[_Item]) -> dict[str, Any]:
    """task name -> Task for every task the prompts name; None where its data is not here."""
    tasks: dict[str, Any] = {}
    for it in items:
        if it.task and it.task not in tasks:
            try:
                tasks[it.task] = _get_task(it.task)
            except (ValueError, OSError):
                tasks[it.task] = None  # no data here: the task's columns stay blank
    return tasks


def _zs_key(bb_name: str, head: str, src_hash: str, t_name: str, data: str) -> str:
    """One zs evaluation's key: backbone | head | prompt content hash | target task | task data hash."""
    return f"{bb_name}|{head}|{src_hash}|{t_name}|{data}"


def _zs_head_key(head: str | None, task) -> str:
    """The head part of a zs key: ``verbalizer`` (the cosine head; the key zs always had), else the preset
    and a hash of the label words it reads for this task (so words set differently are another number).
    MetricError when the preset has no word for one of the task's labels."""
    lm = zs_lm_head(head)
    if lm is None:
        return "verbalizer"
    from core.heads.presets import HeadError, PRESETS, label_words
    try:
        words = label_words(PRESETS[lm], task)[0]
    except HeadError as e:
        raise MetricError(f"zs through {lm}: task {task.name}: {e}") from None
    return f"{lm}:{json_hash(words, 8)}"


def _zs_plan(items: list[_Item], max_examples: int) -> list[tuple[str, Any, list[int], float, str]]:
    """(task name, Task, its columns, majority rate, data hash) per target task with data here."""
    plan = []
    for t_name, task in _target_tasks(items).items():
        if task is None:
            continue
        cols = [j for j, it in enumerate(items) if it.task == t_name]
        labels = list(task.validation.labels)[:max_examples or None]
        majority = max(np.bincount(labels)) / len(labels) if labels else 0.0
        data = zs_data_key(task, max_examples)  # both texts of a pair task
        plan.append((t_name, task, cols, majority, data))
    return plan


def zs_pair_keys(prompts, backbone_name: str, *, max_examples: int = 200, head: str | None = None) -> list[str]:
    """The evaluations zs needs for these prompts: one key per (source prompt, target task with data here).
    Targets sharing a task share a key, and so does every prompt set holding the same prompt."""
    items = _items(prompts)
    return [_zs_key(backbone_name, _zs_head_key(head, task), src.hash, t_name, data)
            for t_name, task, _cols, _maj, data in _zs_plan(items, max_examples) for src in items]


def zs(prompts, backbone=None, *, max_examples: int = 200, head: str | None = None,
       counter: dict | None = None, use_cache: bool = True, pairs=None,
       progress: Callable[[int, int], None] | None = None) -> np.ndarray:
    """Zero-shot transfer [N_s, N_t]: accuracy of source s on target t's task, validation
    split (first ``max_examples``), minus that split's majority rate.

    head: None / ``cosine`` = the cosine head on pooled features against the label descriptions
    (core.training.evaluate); a label-word preset (``thunlp-roberta``, ``peft-causal``, ... of
    core.heads.presets) = each source read through the LM's own head with that preset's layout and the
    target's label words (core.training.lmhead), as released prompts were trained.
    Evaluations are per (source prompt, target task) and cached by the prompt's content hash, so
    targets sharing a task cost one evaluation. ``pairs`` (a mapping that saves each value as it is
    set: core.jobs.PairStore) replaces the JSON cache file, so an interrupted computation keeps
    what it did; ``progress(done, todo)`` is called after each evaluation (it may raise to stop).
    """
    items = _items(prompts)
    lm_head = zs_lm_head(head)
    if lm_head is None:
        bb = _load_backbone_for(items, "zs", backbone)
        bb_name = bb.name
    else:   # the LM with its head loads only when an evaluation is missing
        bb, bb_name = None, _backbone_wanted(items, backbone)
        if bb_name is None:
            raise BackboneUnavailable(None, "zs")
        _resolve_or_unavailable(bb_name)   # as the cosine head: a model not here is said before anything else
    try:
        from core.training.evaluation import evaluate
    except ImportError as e:
        raise MetricError(f"zs needs core.training.evaluate ({e})") from None
    path = _zs_cache_path()
    store = pairs if pairs is not None else _zs_store(path, use_cache)
    n_before = len(store) if pairs is None else 0
    plan = [(t, task, cols, maj, data, _zs_head_key(head, task)) for t, task, cols, maj, data
            in _zs_plan(items, max_examples)]
    todo = sum(_zs_key(bb_name, hk, src.hash, t, data) not in store
               for t, _, _, _, data, hk in plan for src in items)
    done = 0
    out = np.full((len(items), len(items)), np.nan)
    for t_name, task, cols, majority, data, hk in plan:
        reader = None   # (label-word head, its ids of the target's rows, labels) -- built at the first miss
        for i, src in enumerate(items):
            key = _zs_key(bb_name, hk, src.hash, t_name, data)
            if key not in store:
                if lm_head is None:
                    acc = evaluate(src.tensor, task, split="validation", backbone=bb, head="verbalizer",
                                   limit=max_examples or None)
                else:
                    reader = reader or _lm_reader(lm_head, bb_name, task, items[0].tensor.shape[1], max_examples)
                    lmh, ids, y = reader
                    pred = lmh.predict(ids, src.tensor.to(lmh.lm.device)).argmax(-1).numpy()
                    acc = float((pred == y).mean())
                store[key] = float(acc)
                _count(counter, "evaluations")
                done += 1
                if progress is not None:
                    progress(done, todo)
            out[i, cols] = store[key] - majority
    if pairs is None and len(store) > n_before and use_cache:
        atomic_write_text(path, json.dumps(store))
    return out


def _resolve_or_unavailable(bb_name: str) -> None:
    """BackboneUnavailable when the model is neither a local folder nor in the Hugging Face cache."""
    from core.backbone import BackboneError, resolve_model_path
    try:
        resolve_model_path(bb_name)
    except (BackboneError, OSError) as e:
        raise BackboneUnavailable(bb_name, "zs", str(e).split("\n")[0]) from None


def _lm_reader(preset: str, bb_name: str, task, d: int, max_examples: int):
    """(LabelWordHead, ids of the target's first ``max_examples`` validation rows in the LM's layout,
    their labels [n]) for zs through a label-word head; BackboneUnavailable / MetricError say why not."""
    from core.training.config import TrainError
    from core.training.lmhead import head_for_prompts
    try:
        lmh = head_for_prompts(preset, bb_name, task, d)
        n = min(len(task.validation), max_examples or len(task.validation))
        texts, texts2 = task.validation.inputs(list(range(n)))
        ids = lmh.encode(texts, texts2, 128)   # max_length 128, as core.training.evaluate
    except TrainError as e:
        raise MetricError(f"zs through {preset}: {e}") from None
    return lmh, ids, np.asarray(list(task.validation.labels)[:n])


def zs_data_key(task, max_examples: int | None = 200) -> str:
    """The part of a ``zs`` cache key that stands for the target's data: its first ``max_examples``
    validation rows (both texts of a pair: a changed second text is a new key), labels and the
    label descriptions. Single-text tasks keep the key they always had."""
    va = task.validation
    labels = list(va.labels)[:max_examples or None]
    rows = list(va.texts)[:len(labels)]
    if getattr(va, "texts2", None) is not None:
        rows = [[a, b] for a, b in zip(rows, list(va.texts2)[:len(labels)])]
    return json_hash([rows, labels, list(task.descriptions)], 12)


BACKBONE_FUNCS: dict[str, Callable[..., np.ndarray]] = {
    "on": on, "on_probe": on_probe, "panda_sim": panda_sim, "zs": zs}
