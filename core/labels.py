"""How prompts and categories read on every page: short names and one colour per task / family.

    from core import labels
    labels.short_names(["lib/task_prompt_emb/IMDBPromptRoberta", "lib/task_prompt_emb/SST2PromptRoberta"])
    # {'lib/task_prompt_emb/IMDBPromptRoberta': 'IMDB', 'lib/task_prompt_emb/SST2PromptRoberta': 'SST2'}
    labels.colours(["sentiment", "nli", None])   # {'nli': '#F3C300', 'sentiment': '#875692', None: '#BDBDBD'}

Names in a released library repeat a long path (thunlp's 46 prompts all start
``thunlp-prompt-transferability/task_prompt_emb/`` and end ``PromptRoberta``): a label keeps what
tells the prompts in view apart, the full name stays in hovers and the detail.

Colours come from one categorical palette (Kelly's 20 colours of maximum contrast, white and black
left out) assigned in sorted order of every value the caller's library holds, not of what one view
shows: a task keeps its colour on every page and view of the same collections, and up to 20 values
are all distinct (a hash would collide: 10 hashed colours put IMDB and `random` together). A
missing value is grey. More than 20 values cycle the palette (the 21st repeats the 1st).
"""
from __future__ import annotations

from typing import Iterable

# Kelly (1965), 22 colours of maximum contrast without white and black, in his order (neighbours differ most)
PALETTE = ("#F3C300", "#875692", "#F38400", "#A1CAF1", "#BE0032", "#C2B280", "#848482", "#008856", "#E68FAC",
           "#0067A5", "#F99379", "#604E97", "#F6A600", "#B3446C", "#DCD300", "#882D17", "#8DB600", "#654522",
           "#E25822", "#2B3D26")
MISSING = "#BDBDBD"   # no task / family recorded
MISSING_NAMES = (None, "", "—", "?", "nan", "None")
MIN_SUFFIX = 4        # a shared ending shorter than this is part of the names (e.g. "-1"), not boilerplate


def _common_dir(names: list[str]) -> str:
    """The leading folders ('a/b/') every name shares; never a whole name."""
    parts = [n.split("/") for n in names]
    common = []
    for level in zip(*(p[:-1] for p in parts)):
        if len(set(level)) != 1:
            break
        common.append(level[0])
    return "/".join(common) + "/" if common else ""


def _common_suffix(names: list[str]) -> str:
    suffix = names[0]
    for n in names[1:]:
        while suffix and not n.endswith(suffix):
            suffix = suffix[1:]
    return suffix


def short_names(names: Iterable[str], *, suffix: bool = True) -> dict[str, str]:
    """name -> label without the folders all ``names`` share and (``suffix``) a common ending
    (>= MIN_SUFFIX chars, e.g. thunlp's ``PromptRoberta``: axis labels; a table of names keeps it).
    Labels stay distinct and non-empty: where dropping a part would merge two names or empty one,
    that part is kept."""
    names = [str(n) for n in dict.fromkeys(names)]
    if len(names) < 2:
        return {n: n for n in names}
    prefix = _common_dir(names)
    out = [n[len(prefix):] for n in names]
    end = _common_suffix(out) if suffix else ""
    if len(end) >= MIN_SUFFIX and all(len(x) > len(end) for x in out):
        cut = [x[:-len(end)].rstrip("/_-") or x[:-len(end)] for x in out]
        if all(cut) and len(set(cut)) == len(cut):
            out = cut
    if len(set(out)) != len(out):
        out = names
    return dict(zip(names, out))


def _key(v) -> str | None:
    if v is None or (isinstance(v, float) and v != v):
        return None
    s = str(v)
    return None if s in MISSING_NAMES else s


def colours(values: Iterable) -> dict:
    """value -> a hex colour: the palette in sorted order of the distinct ``values`` (pass every value
    of the library the page shows, not only those in one view, so a value keeps its colour). A missing
    value (None, NaN, '', '—') maps to MISSING under its own key."""
    values = list(values)
    out: dict = {}
    present = sorted({k for k in (_key(v) for v in values) if k is not None}, key=lambda s: (s.lower(), s))
    for i, v in enumerate(present):
        out[v] = PALETTE[i % len(PALETTE)]
    for v in values:
        if _key(v) is None and not (isinstance(v, float) and v != v):  # NaN is no dict key
            out[v] = MISSING
    return out


def colour_of(value, library_values: Iterable) -> str:
    """The colour of one value among the library's values (see :func:`colours`)."""
    k = _key(value)
    return MISSING if k is None else colours(list(library_values)).get(k, MISSING)
