"""Mixture runs read back: what an attempt run attended to, and a mixture's members (torch-free).

    python -c "from core.mixture import attention_rows; print(attention_rows({'attempt': {'mean_attention': {'a': .6, 'target': .4}}}))"

An attempt run records, in its prompt's settings (atlas.json), ``attempt.mean_attention``: the best
checkpoint's attention averaged over the target's validation split, one weight per source and one
for the target prompt (they sum to 1; core.training.attempt). A mixture planned from a ranking
records ``mix`` (label, members, weights) in its run spec (core.runs.sweeps).
"""
from __future__ import annotations

import pandas as pd


def attention_rows(settings: dict | None) -> pd.DataFrame | None:
    """An attempt prompt's mean attention as rows (prompt, role, mean attention), largest first;
    None for any other prompt."""
    att = ((settings or {}).get("attempt") or {}).get("mean_attention")
    if not isinstance(att, dict) or not att:
        return None
    rows = [{"prompt": k, "role": "target (trained)" if k == "target" else "source (frozen)",
             "mean attention": float(v)} for k, v in att.items()]
    return pd.DataFrame(rows).sort_values("mean attention", ascending=False, ignore_index=True)
