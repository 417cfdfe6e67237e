"""What a map is asked for and what it gives back: ProjectionConfig, Projection, the effective parameters.

    python -m core project --library DIR --method umap|pca|tsne --out FILE.csv

A config is validated on creation (ProjectionError says which field and why); values that
the number of points does not allow are clamped by :func:`effective_params`, with a note.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd

METHODS = ("umap", "pca", "tsne")
POINT_MODES = ("prompt", "token")
REDUCES = ("mean", "flat")
METRICS = ("cosine", "euclidean")
MIN_POINTS = 4  # UMAP / t-SNE need a neighbourhood; below this we fall back to PCA
META_COLUMNS = ("name", "task", "family", "backbone", "method", "source", "score", "L")


class ProjectionError(ValueError):
    """Bad input for a projection (message says what and why)."""


@dataclass
class ProjectionConfig:
    """What to project and how. Values outside what n points allow are clamped later
    (see `effective_params`), not here: the same config works for any library size."""

    method: str = "umap"
    n_components: int = 2
    point_mode: str = "prompt"  # prompt | token
    reduce: str = "mean"  # mean | flat (prompt mode only)
    metric: str = "cosine"  # cosine | euclidean (PCA: cosine = rows L2-normalised first)
    n_neighbors: int = 15  # UMAP
    min_dist: float = 0.1  # UMAP
    perplexity: float = 30.0  # t-SNE
    seed: int = 0

    def __post_init__(self):
        self.method = str(self.method).lower()
        if self.method not in METHODS:
            raise ProjectionError(f"method must be one of {METHODS}, got {self.method!r}")
        if int(self.n_components) not in (2, 3):
            raise ProjectionError(f"n_components must be 2 or 3, got {self.n_components!r}")
        self.n_components = int(self.n_components)
        if self.point_mode not in POINT_MODES:
            raise ProjectionError(f"point_mode must be one of {POINT_MODES}, got {self.point_mode!r}")
        if self.reduce not in REDUCES:
            raise ProjectionError(f"reduce must be one of {REDUCES}, got {self.reduce!r}")
        if self.metric not in METRICS:
            raise ProjectionError(f"metric must be one of {METRICS}, got {self.metric!r}")
        if int(self.n_neighbors) < 2:
            raise ProjectionError(f"n_neighbors must be >= 2, got {self.n_neighbors!r}")
        if not 0.0 <= float(self.min_dist) <= 1.0:
            raise ProjectionError(f"min_dist must be in [0, 1], got {self.min_dist!r}")
        if float(self.perplexity) <= 0:
            raise ProjectionError(f"perplexity must be > 0, got {self.perplexity!r}")
        self.n_neighbors, self.min_dist = int(self.n_neighbors), float(self.min_dist)
        self.perplexity, self.seed = float(self.perplexity), int(self.seed)


@dataclass
class Projection:
    """coords [N, n_components] float64, row i = meta row i = features row i.

    method is what actually ran (may differ from config.method after a fallback);
    params are the effective (clamped) parameters; notes say what was changed and why."""

    coords: np.ndarray
    meta: pd.DataFrame
    features: np.ndarray  # [N, D] float32, the original space (neighbours, trustworthiness)
    config: ProjectionConfig
    method: str
    params: dict
    notes: list[str] = field(default_factory=list)
    key: str = ""
    seconds: float = 0.0
    source: str = "computed"  # computed | memory | disk | precomputed

    def table(self) -> pd.DataFrame:
        """meta columns + x, y[, z]."""
        out = self.meta.copy()
        for j, axis in enumerate("xyz"[: self.coords.shape[1]]):
            out[axis] = self.coords[:, j]
        return out



# ---------------------------------------------------------------- parameters


def effective_params(cfg: ProjectionConfig, n: int, d: int) -> tuple[str, dict, list[str]]:
    """(method that will run, its parameters clamped to n points of width d, notes)."""
    notes: list[str] = []
    method = cfg.method
    if method in ("umap", "tsne") and n < MIN_POINTS:
        label = "UMAP" if method == "umap" else "t-SNE"
        notes.append(f"{label} needs at least {MIN_POINTS} points to build neighbourhoods; "
                     f"this group has {n}: showing PCA instead")
        method = "pca"
    params: dict = {"n_components": cfg.n_components, "metric": cfg.metric, "seed": cfg.seed}
    if method == "pca":
        informative = max(0, min(cfg.n_components, n - 1, d))
        if informative < cfg.n_components:
            notes.append(f"{n} point(s) span at most {informative} axis/axes: "
                         "the remaining coordinates are 0")
        params["informative"] = informative
    elif method == "umap":
        k = min(cfg.n_neighbors, n - 1)
        if k != cfg.n_neighbors:
            notes.append(f"n_neighbors {cfg.n_neighbors} -> {k} (only {n} points)")
        params.update(n_neighbors=k, min_dist=cfg.min_dist,
                      # UMAP's own default is 500 epochs up to 10k points; 200 gives the same
                      # picture above ~2k points at 1/3 of the cost (5k points: 6.1 s -> 1.6 s)
                      n_epochs=500 if n <= 2000 else 200,
                      # spectral init needs n > n_components + 1 and is unstable on tiny
                      # graphs (scipy eigsh: "k >= N"); PCA init is fine there
                      init="spectral" if n >= 16 else "pca")
    else:  # tsne
        # scikit-learn requires perplexity < n; ~n/3 keeps the neighbourhood meaningful
        cap = max(1.0, (n - 1) / 3.0)
        perp = min(cfg.perplexity, cap)
        if perp != cfg.perplexity:
            notes.append(f"perplexity {cfg.perplexity:g} -> {perp:g} (only {n} points)")
        # scikit-learn's "auto" rate has a floor of 50, which blows small 3-D maps apart
        # (measured: 24 points in two tight clusters, silhouette 0.02 at 50, 0.86 at 2);
        # below the floor its own rule N / (early_exaggeration * 4) is kept
        params.update(perplexity=perp,
                      learning_rate="auto" if cfg.n_components == 2 else max(n / 48.0, 2.0))
    return method, params, notes
