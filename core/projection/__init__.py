"""2-D / 3-D maps of soft prompts: UMAP, PCA, t-SNE, one backbone group at a time.

    python -m core project --library DIR --method umap|pca|tsne [--group BACKBONE] [--dims 2|3] --out FILE.csv

Points are either one per prompt (`reduce="mean"`: the mean of its L tokens, [d];
`reduce="flat"`: the flattened prompt, [L*d], only when every L matches) or one per
prompt token (`point_mode="token"`, [d] each). Prompts of different backbones live in
different embedding spaces, so a map never mixes groups: callers pass one group.

Cost (measured on the 2-core dev box): `import umap` plus the first fit pays a numba
compile of 5-25 s once per process; after that UMAP on 5,000 x 384 points takes ~2 s.
So UMAP is imported lazily, `warm_umap()` compiles it on a tiny fit (the page runs it
in a background thread), the k-nearest-neighbour graph is computed with scikit-learn
(brute force: no pynndescent compile even above 4,096 points) and results are cached
in memory and on disk (cache_dir()/projections) by content hash + parameters.

Modules: ``config`` (ProjectionConfig, Projection, effective parameters) <- ``features`` (points,
transfer arrows) <- ``methods`` (UMAP warm-up, PCA, t-SNE) and ``cache`` (keys, memory/disk cache,
precomputed files) <- ``maps`` (project, lookup, precompute, map quality) <- ``cli``. The names
below are the public API: import them from ``core.projection``.
"""
from __future__ import annotations

from core.projection.cache import clear_memory_cache, features_hash, load_precomputed, projection_key
from core.projection.cli import cli
from core.projection.config import (META_COLUMNS, METHODS, METRICS, MIN_POINTS, POINT_MODES, REDUCES, Projection,
                                    ProjectionConfig, ProjectionError, effective_params)
from core.projection.features import prompt_features, transfer_pairs
from core.projection.maps import (fallback_config, lookup, nearest_neighbours, precompute_projections, project,
                                  project_features, TRUST_MIN, trust_caution, trustworthiness)
from core.projection.methods import compute_threads, pca_scores, umap_is_warm, umap_status, warm_umap

__all__ = ["META_COLUMNS", "METHODS", "METRICS", "MIN_POINTS", "POINT_MODES", "REDUCES", "Projection",
           "ProjectionConfig", "ProjectionError", "clear_memory_cache", "cli", "compute_threads", "effective_params",
           "fallback_config", "features_hash", "load_precomputed", "lookup", "nearest_neighbours", "pca_scores",
           "precompute_projections", "project", "project_features", "projection_key", "prompt_features",
           "transfer_pairs", "TRUST_MIN", "trust_caution", "trustworthiness", "umap_is_warm", "umap_status", "warm_umap"]
