"""What a page opens on when the user has not chosen: one rule for every page and the CLI (issue 28:
after opening a folder, Transferability jumped to the t5-small group while Projection stayed on MiniLM).

    default_group(groups)                       -> the backbone group a page opens on
    default_metric(measured, can_show, scores)  -> (metric, the sentence that says why)

**Group.** The group of the bundled default backbone (all-MiniLM-L6-v2: the demo's and every run trained
here) when the chosen collections hold one; otherwise the largest group, ties by name. Opening a folder
of other backbones therefore never moves a page off the demo's group; each page's selector still lists
every group, largest first.

**Metric** of a group with no measured runs (a group with runs opens on ``measured``): the metric with the
best validated mean Spearman ρ — validated against the demo's measured runs (core.headline's
``metric_scores``: ρ between each metric and the measured PoT gains, per target) — among those that can be
shown for this group without computing a backbone metric on first paint; only a positive ρ counts as
validated. When none is, ``e_avg`` with a sentence saying that no metric is validated for this group.
"""
from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence

from core.config import DEFAULT_BACKBONE

FALLBACK_METRIC = "e_avg"


def default_group(groups: Mapping[str, Sequence]) -> str | None:
    """groups: group name -> its prompts (core.library.LibraryIndex.groups()). None when empty."""
    if not groups:
        return None
    if DEFAULT_BACKBONE in groups:
        return DEFAULT_BACKBONE
    return min(groups, key=lambda g: (-len(groups[g]), g))


def validated(scores: Sequence[dict]) -> list[dict]:
    """The metrics with a positive validated mean ρ, best first (scores: core.headline's metric_scores)."""
    ok = [s for s in scores if s.get("metric") != "measured" and (s.get("mean_rho") or 0) > 0]
    return sorted(ok, key=lambda s: (-s["mean_rho"], s["metric"]))


def default_metric(measured: bool, can_show: Callable[[str], bool], scores: Sequence[dict],
                   where: str = "the demo's measured runs") -> tuple[str, str]:
    """(metric, why). ``measured``: the group has finished transfer runs; ``can_show(m)``: m can be shown for
    this group now; ``scores``: validated metrics with ``metric`` and ``mean_rho``; ``where``: what they were
    validated against (said in the sentence)."""
    if measured:
        return "measured", ""
    for s in validated(scores):
        if can_show(s["metric"]):
            return s["metric"], (f"No run of this group is measured yet: sources are ordered by `{s['metric']}`, the "
                                 f"best-validated metric available here (mean Spearman ρ {s['mean_rho']:.2f} "
                                 f"against {where}).")
    return FALLBACK_METRIC, (f"No run of this group is measured yet and no metric is validated for this group: "
                             f"sources are ordered by `{FALLBACK_METRIC}`, which no measurement backs.")
