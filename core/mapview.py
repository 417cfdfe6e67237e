"""How a 2-D prompt map is drawn so that every point can be seen and clicked (the Projection page).

    from core.mapview import spread_stacked, arrows_by_default
    xy_shown = spread_stacked(xy)        # [N, 2] -> [N, 2]; points that sit on one another fanned out

A projection of a library with transfers stacks points: a PoT prompt starts from its source and
stays close to it, so a source and its twenty transfers land within a fraction of a percent of
the map on one spot, and a click selects whichever is drawn on top. The map fans each such stack
out on a small sunflower around its centre (spacing ≈ one marker), so each point is visible and
clickable; the distances that matter (between stacks) are unchanged up to that radius. The
exported coordinates are always the projection's own.
"""
from __future__ import annotations

import numpy as np
from scipy.cluster.hierarchy import fcluster, linkage

STACK_EPS = 0.01       # points closer than this fraction of the map's span count as one stack
STACK_SPACING = 0.012  # distance between fanned-out neighbours, as a fraction of the span (~ one marker)
SPREAD_MAX = 1500       # above this many points (a per-token map) nothing is moved: O(N²) distances
ARROWS_DEFAULT_MAX = 30  # more transfer arrows than this are off until asked for (they hide the points)
GOLDEN_ANGLE = np.pi * (3 - np.sqrt(5))


def spread_stacked(xy: np.ndarray, eps: float = STACK_EPS, spacing: float = STACK_SPACING,
                   order: list | None = None) -> np.ndarray:
    """Fan out stacks of (nearly) coincident points.

    xy: [N, 2] map coordinates. Points whose single-linkage distance is below ``eps`` × span (span =
    the larger axis range) form a stack; a stack of n > 1 points is laid on a sunflower around its
    centroid (which it keeps), point k at radius spacing·span·√(k + 0.5), angle k·golden angle, in
    ``order`` (default: the input order) so the layout is the same on every rerun. A fan that comes
    within half a spacing of another stack's point merges with that stack. Returns a new [N, 2]
    array; a map with no stack, or more than SPREAD_MAX points, comes back unchanged.
    """
    xy = np.asarray(xy, dtype=float)
    out = xy.copy()
    n = len(xy)
    if n < 2 or n > SPREAD_MAX or not np.isfinite(xy).all():
        return out
    span = float(np.ptp(xy, axis=0).max())
    if span <= 0:
        span = 1.0
    labels = fcluster(linkage(xy, method="single"), t=eps * span, criterion="distance")
    rank = np.argsort(np.argsort(order, kind="stable"), kind="stable") if order is not None else np.arange(n)
    for _ in range(n):  # a fan that lands on a neighbouring stack joins it: fan the two together
        out = _fan(xy, labels, rank, spacing * span)
        d = np.linalg.norm(out[:, None] - out[None], axis=-1)
        close = (d < 0.5 * spacing * span) & (labels[:, None] != labels[None])
        if not close.any():
            break
        i, j = np.argwhere(close)[0]
        labels[labels == labels[j]] = labels[i]
    return out


def _fan(xy: np.ndarray, labels: np.ndarray, rank: np.ndarray, step: float) -> np.ndarray:
    """Each stack (same label, > 1 point) on a sunflower around its centroid, ``step`` apart."""
    out = xy.copy()
    for lab in np.unique(labels):
        idx = np.flatnonzero(labels == lab)
        if len(idx) < 2:
            continue
        idx = idx[np.argsort(rank[idx], kind="stable")]
        k = np.arange(len(idx))
        r = step * np.sqrt(k + 0.5)
        fan = np.stack([r * np.cos(k * GOLDEN_ANGLE), r * np.sin(k * GOLDEN_ANGLE)], axis=1)
        out[idx] = xy[idx].mean(axis=0) + fan - fan.mean(axis=0)  # the stack keeps its centroid
    return out


def arrows_by_default(n_pairs: int) -> bool:
    """Transfer arrows start on only when there are few enough to read (≤ ARROWS_DEFAULT_MAX)."""
    return 0 < n_pairs <= ARROWS_DEFAULT_MAX
