"""Transferability metrics: source x target matrices over a prompt library.

    python -m core matrix --library DIR --metric e_avg [--group BACKBONE] --out FILE.csv
    python -m core matrix --list

Definitions are in ../shared/DESIGN.md §3. Every metric gives a matrix with
rows = source prompts and columns = target prompts (``measured``: columns =
target tasks); higher always means "predicted to transfer better".

Layout (one concept per module; arrows point down):
    cli.py           `python -m core matrix`
    cache.py         compute_matrix / cached_matrix: the disk cache and a library's precomputed matrices
    activations.py   on, on_probe, panda_sim, zs: need the prompts' backbone              (torch)
    prompt_space.py  e_avg, e_tok, tok_max, e_flat, euclid, compute_pairs: no model needed (torch)
    validation.py    by_task, validate, retrieval_table: a metric against measured transfer
    measured.py      relative gain over scratch from finished runs (core.results)
    clustering.py    hierarchical clustering of a matrix's rows and columns
    items.py         what a metric needs from a prompt; backbone groups
    registry.py      METRICS (what each needs), MetricError and its kinds

Only prompt_space and activations import torch, and they load on first use of one of their
names (PEP 562 ``__getattr__`` below): ``import core.metrics.validation`` (the Home page's
headline) or ``core.metrics.measured`` never imports torch. Every public name stays
importable from ``core.metrics`` as before; ``core.metrics.measured`` and ``core.metrics.cli``
are the functions (as ``core.tasks.cli`` is), their modules are in ``sys.modules``.
"""
from __future__ import annotations

import importlib

from core.metrics.cache import (CACHE_VERSION, PRECOMPUTED_INDEX, all_from, cached_matrix, compute_matrices,  # noqa: F401
                                compute_matrix, load_precomputed, matrix_key, metric_status, read_matrix_csv,
                                save_precomputed, write_matrix_csv)
from core.metrics.cli import cli  # noqa: F401  (binds the function over the submodule's name)
from core.metrics.clustering import Clustering, cluster  # noqa: F401
from core.metrics.items import _content_hash, _Item, _items, check_one_group, group_key, split_groups  # noqa: F401
from core.metrics.measured import BUDGET_KEYS, Measured, finished_runs, measured  # noqa: F401
from core.metrics.registry import (BACKBONE_METRICS, METRICS, PROMPT_METRICS, BackboneUnavailable,  # noqa: F401
                                   MetricError, MetricSpec, MixedBackboneError, get_spec, zs_heads,
                                   zs_lm_head, zs_params)
from core.metrics.validation import (by_task, ndcg_at_k, regret_at_k, retrieval_table, summarise,  # noqa: F401
                                     validate, validate_retrieval, validation_table)

# names of the torch modules, loaded on first use
_LAZY = {
    "core.metrics.prompt_space": ["e_avg", "e_tok", "tok_max", "e_flat", "euclid", "PROMPT_FUNCS", "compute_pairs"],
    "core.metrics.activations": ["on", "on_probe", "panda_sim", "zs", "probe_set", "BACKBONE_FUNCS"],
}
_LAZY_NAME = {name: mod for mod, names in _LAZY.items() for name in names}

__all__ = [
    "MetricError", "BackboneUnavailable", "MixedBackboneError", "MetricSpec", "METRICS",
    "PROMPT_METRICS", "BACKBONE_METRICS", "compute_matrix", "compute_matrices", "compute_pairs", "metric_status",
    "e_avg", "e_tok", "tok_max", "e_flat", "euclid", "on", "on_probe", "panda_sim", "zs",
    "Measured", "measured", "by_task", "validate", "validation_table",
    "ndcg_at_k", "regret_at_k", "validate_retrieval", "retrieval_table", "cluster", "Clustering",
    "group_key", "all_from", "split_groups", "check_one_group", "cached_matrix", "save_precomputed", "load_precomputed",
    "cli",
]


def __getattr__(name: str):
    """A torch-using name (e.g. ``M.e_avg``), imported from its module on first use."""
    mod = _LAZY_NAME.get(name)
    if mod is None:
        raise AttributeError(f"module 'core.metrics' has no attribute {name!r}")
    value = getattr(importlib.import_module(mod), name)
    globals()[name] = value  # later lookups skip __getattr__
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_LAZY_NAME))
