"""How numbers and counts read, in every page and the CLI: one unit for gains, no "-0.00", plurals.

    from core import fmt
    fmt.gain(0.178)                  # '+17.8%'
    fmt.num(-0.004)                  # '0.00'
    fmt.count(1, "prompt")           # '1 prompt'
    fmt.best_source("generic", -0.005)  # 'no source helps'

Gains are **percent** everywhere: a relative gain over scratch, (score − scratch) / scratch, of
0.178 reads "+17.8%" (a heatmap cell "+18%", a table column "+17.8%", a regret "0.9%"); a value
that rounds to zero reads "0%", never "-0%". Stored
values stay fractions (results, matrices, CSV exports); only what a person reads is in percent.
Similarity metrics (e_avg, zs, ...) are not gains and keep their own scale ("0.54").
"""
from __future__ import annotations

import math
import numpy as np
import pandas as pd

GAIN_UNIT = "%"
# st.column_config.NumberColumn format for a gain column already scaled by ``gain_pct``
GAIN_PRINTF = "%+.1f%%"
REGRET_PRINTF = "%.1f%%"      # regrets are gain differences, never negative: no sign
# plotly (d3-format) for a value that is a fraction: d3's "%" multiplies by 100
GAIN_D3 = "+.1%"
NO_SOURCE_HELPS = "no source helps"


def _finite(x) -> bool:
    try:
        return x is not None and math.isfinite(float(x))
    except (TypeError, ValueError):
        return False


def gain(x, digits: int = 1, sign: bool = True) -> str:
    """A relative gain (a fraction, 0.178) as a person reads it: '+17.8%'; '–' when missing.
    A value that rounds to zero reads '0.0%', never '-0.0%'."""
    if not _finite(x):
        return "–"
    v = round(float(x) * 100, digits) + 0.0  # + 0.0 turns -0.0 into 0.0
    return f"{v:+.{digits}f}%" if sign and v != 0 else f"{v:.{digits}f}%"


def gain_pct(values):
    """A gain column (fractions) scaled to percent for display with ``GAIN_PRINTF``: keeps it numeric,
    so a table still sorts by it."""
    s = values if isinstance(values, (pd.Series, pd.DataFrame)) else pd.Series(values, dtype=float)
    return no_negative_zero(s.astype(float) * 100, 1)


def num(x, digits: int = 2) -> str:
    """A plain number with ``digits`` decimals; rounding to zero reads '0.00', never '-0.00'."""
    if not _finite(x):
        return "–"
    return f"{round(float(x), digits) + 0.0:.{digits}f}"


def no_negative_zero(values, digits: int):
    """Round a number, Series or DataFrame to ``digits`` decimals so that what rounds to zero is +0.0
    (a table then shows '0.00', not '-0.00'). Non-numeric columns of a DataFrame are left alone."""
    if isinstance(values, pd.DataFrame):
        out = values.copy()
        for c in out.columns:
            if pd.api.types.is_float_dtype(out[c]):
                out[c] = out[c].round(digits) + 0.0
        return out
    if isinstance(values, pd.Series):
        return values.round(digits) + 0.0
    return np.round(values, digits) + 0.0


def significant(values: pd.DataFrame, digits: int = 4) -> pd.DataFrame:
    """Float columns rounded to ``digits`` significant figures (an event log's loss 0.6931471805599453
    reads 0.6931); ints, strings and missing values untouched."""
    out = values.copy()
    for c in out.columns:
        if pd.api.types.is_float_dtype(out[c]):
            out[c] = out[c].map(lambda v: float(f"{v:.{digits}g}") + 0.0 if _finite(v) else v)
        elif out[c].dtype == object:
            out[c] = out[c].map(lambda v: float(f"{v:.{digits}g}") + 0.0 if isinstance(v, float) and _finite(v) else v)
    return out


MISSING_TEXT = "—"


def no_none(table: pd.DataFrame, *, as_text: tuple[str, ...] = (), digits: int | None = 3) -> pd.DataFrame:
    """A table as a person reads it: a grid draws a missing cell as "None". Text columns read "—" where
    missing; the numeric columns named in ``as_text`` become text (``digits`` decimals, or as written when
    None; '-0' never) with a blank where missing — only those, since a numeric column sorts as numbers and
    keeps its format."""
    out = table.copy()
    for c in out.columns:
        if c in as_text:
            out[c] = [("" if not _finite(v) else num(v, digits) if digits is not None else f"{float(v) + 0.0:g}")
                      for v in out[c]]
        elif not pd.api.types.is_numeric_dtype(out[c]) and not pd.api.types.is_bool_dtype(out[c]):
            out[c] = out[c].map(lambda v: MISSING_TEXT if v is None or (isinstance(v, float) and v != v) else v)
    return out


def with_gaps(table: pd.DataFrame) -> tuple[str, ...]:
    """The numeric columns of ``table`` that miss a value somewhere (for ``no_none(as_text=...)``)."""
    return tuple(c for c in table.columns if pd.api.types.is_float_dtype(table[c]) and table[c].isna().any())


def count(n: int, word: str, plural: str | None = None) -> str:
    """'1 prompt', '2 prompts', '0 prompts' (``plural`` for irregular words: 'runs', 'matrices')."""
    return f"{n} {word if n == 1 else (plural or word + 's')}"


def best_source(source: str | None, gain_value) -> str:
    """What a "best source for this target" cell says: the source, or "no source helps" when even the
    best one does not beat scratch (gain ≤ 0, or no measured gain)."""
    if not source or not _finite(gain_value) or float(gain_value) <= 0:
        return NO_SOURCE_HELPS
    return str(source)


def sentence(*parts: str) -> str:
    """Join parts into one sentence ending in a single full stop ('Su et al.' + '.' is 'Su et al.')."""
    text = " ".join(p.strip() for p in parts if p and p.strip())
    return text if text.endswith((".", "!", "?")) else text + "."

