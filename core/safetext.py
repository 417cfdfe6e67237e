"""Untrusted text made inert for each output it is shown in: one function per output.

    from core import safetext as S
    st.error(f"Unknown metric {S.md(value)}")          # Streamlit markdown (errors, captions, chips)
    st.warning(f"Task {S.md_code(name)} is empty")       # the same, as a code span
    go.Scatter(name=S.plotly(task), text=[S.plotly(n) for n in names])   # legend / hover / tick text
    f"<td>{S.html(name)}</td>"                            # an HTML export
    S.csv_frame(df).to_csv(...)                           # a CSV the pages offer for download

Values from a URL query parameter, a file name or a stored field (prompt name, task, family) are
untrusted: shown as they are, ``?lib=[x](https://evil.example)`` became a live link inside the
app's own error box, ``![b](http://host/x.png)`` made every visitor's browser fetch a URL, and a
task name became a link in a plotly legend. Why each function does what it does:

- **Markdown** (Streamlit's renderer: CommonMark + GFM + math + directives + its shortcodes).
  Every ASCII punctuation character is backslash-escaped (CommonMark allows it for all of them), so
  no link, image, emphasis, raw HTML, ``$…$`` maths, ``:red[…]`` directive or code span can start.
  Escapes are not enough for two things Streamlit does on the *decoded* text or the raw source:
  GFM autolink literals (``https://…``, ``www.…``, ``a@b.c``: a regex over text nodes after escapes
  are resolved) and ``:material/…:`` / ``:emoji:`` shortcodes (a replace over the raw source).
  Those are broken with a zero-width space after ``:``, after ``@`` and inside ``www.``: invisible,
  and none of the regexes matches across it.
- **Code span**: inside backticks nothing is markup and no escape applies; the fence is one
  backtick longer than the longest run of backticks in the value (CommonMark's rule), so a backtick
  cannot close it early.
- **Plotly text**: plotly renders a small HTML subset (``<a href>``, ``<b>``, ``<br>``, ``<span
  style>``) in legend, hover, tick and annotation text, splitting tags out *before* decoding
  entities, so HTML-escaping ``& < >`` shows the characters as text.
- **HTML** export: html.escape with quotes.
- **CSV** (OWASP "CSV injection"): a text cell starting with ``=``, ``+``, ``-``, ``@``, tab or CR is
  a formula to a spreadsheet (``=HYPERLINK(…)``); it gets a leading ``'``. Numbers (numeric cells,
  and text that is exactly a decimal number such as ``-0.5``) are left as they are. Only for files
  the pages offer for download: the CLI's ``--out`` files stay raw because the product reads them back.

In every output, a character of Unicode category Cc, Cf, Zl or Zp (newline, NUL, a bidi override
such as U+202E, a zero-width character) is shown as ``⟨U+202E⟩`` rather than acting on the text
around it (``‮cod.exe`` read "exe.doc"). Names containing one are refused at every entry
(:func:`control_problem`, used by uploads, zip members, rename, task add and describe).
"""
from __future__ import annotations

import html as _html
import re
import unicodedata

CONTROL_CATEGORIES = frozenset({"Cc", "Cf", "Zl", "Zp"})
ZWSP = "\u200b"
# the C0/C1 controls have no Unicode name (unicodedata.name raises): their usual names
_CONTROL_NAMES = {0x00: "NULL", 0x07: "BELL", 0x08: "BACKSPACE", 0x09: "CHARACTER TABULATION",
                  0x0A: "LINE FEED", 0x0B: "LINE TABULATION", 0x0C: "FORM FEED", 0x0D: "CARRIAGE RETURN",
                  0x1B: "ESCAPE", 0x7F: "DELETE", 0x85: "NEXT LINE"}
# markdown punctuation escaped wherever it is: links/images ([ ] and so ![), HTML and autolinks (<),
# entities (&), maths ($), code spans (`), emphasis (* ~), tables (|), escapes (\\)
_ALWAYS = set("\\`*[]<>&$~|")
_AT_START = set("#-+>=!")   # block markers: only where a line starts (newlines are shown as ⟨U+000A⟩)
_NUMBER = re.compile(r"^[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?$")
FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


# ------------------------------------------------------------------ control characters
def char_name(c: str) -> str:
    """``U+202E RIGHT-TO-LEFT OVERRIDE``: the code point and its Unicode name (or the usual name of a control)."""
    cp = ord(c)
    name = unicodedata.name(c, "") or _CONTROL_NAMES.get(cp, "CONTROL CHARACTER")
    return f"U+{cp:04X} {name}"


def is_control(c: str) -> bool:
    """A character of category Cc, Cf, Zl or Zp: it changes how the text around it reads."""
    return unicodedata.category(c) in CONTROL_CATEGORIES


def control_problem(name: str) -> str | None:
    """One line naming the first control/format/separator character in ``name``, or None if it has none.

        >>> control_problem("\\u202ecod.exe")
        'contains U+202E RIGHT-TO-LEFT OVERRIDE, a control or invisible character'
    """
    for c in str(name):
        if is_control(c):
            return f"contains {char_name(c)}, a control or invisible character"
    return None


def visible(text) -> str:
    """``text`` with every Cc/Cf/Zl/Zp character shown as ``⟨U+XXXX⟩`` (no bidi override acts on the page)."""
    s = "" if text is None else str(text)
    if s.isprintable() or not any(is_control(c) for c in s):  # isprintable: False for every Cc/Cf/Zl/Zp (fast path)
        return s
    return "".join(f"⟨U+{ord(c):04X}⟩" if is_control(c) else c for c in s)


# ------------------------------------------------------------------ markdown
def md(text) -> str:
    """``text`` as literal Streamlit markdown: no link, image, autolink, HTML, maths, shortcode or code span.

    Only what could start markup is escaped, so a plain name reads (and compares) as itself:
    ``sent_tweet`` stays ``sent_tweet`` (an underscore between two letters opens no emphasis),
    ``steps: 150`` keeps its colon.
    """
    s = visible(text)
    out = []
    for i, c in enumerate(s):
        prev, nxt = s[i - 1] if i else "", s[i + 1] if i + 1 < len(s) else ""
        if c in _ALWAYS or (c == "_" and not (prev.isalnum() and nxt.isalnum())):
            out.append("\\" + c)
        elif c in _AT_START and i == 0:
            out.append("\\" + c)
        elif c == ":" and (nxt.isalpha() or nxt == "/"):  # :red[, :material/, :emoji:, https://
            out.append(":" + ZWSP)
        elif c == "@" and prev and nxt and (prev.isalnum() or prev in "._+-") and nxt.isalnum():  # a@b.c
            out.append("@" + ZWSP)
        elif c == "." and s[max(0, i - 3):i].lower() == "www":  # www.x autolink
            out.append(ZWSP + ".")
        else:
            out.append(c)
    s = "".join(out)
    m = re.match(r"^(\d+)([.)])", s)  # "1. x" would start a list
    return f"{m.group(1)}\\{m.group(2)}{s[m.end():]}" if m else s


def md_message(text) -> str:
    """A message that quotes values in backticks (core's style: "`generic` is not a task") as
    markdown: each backticked part a code span (:func:`md_code`), the rest literal text (:func:`md`).
    A stray backtick (an odd count) stays a literal backtick."""
    parts = visible(text).split("`")
    if len(parts) % 2 == 0:  # odd number of backticks: the last one opens nothing
        parts[-2:] = [parts[-2] + "`" + parts[-1]]
    return "".join(md_code(p) if i % 2 else md(p) for i, p in enumerate(parts))


def md_code(text) -> str:
    """``text`` as one markdown code span (backticks included): a backtick in it cannot close the span."""
    s = visible(text).replace(":material/", ":" + ZWSP + "material/")  # Streamlit rewrites it in the raw source
    runs = [len(r) for r in re.findall(r"`+", s)]
    fence = "`" * (max(runs, default=0) + 1)
    pad = " " if s.startswith("`") or s.endswith("`") or not s.strip() else ""
    return f"{fence}{pad}{s}{pad}{fence}"


def md_list(values, sep: str = ", ", code: bool = False) -> str:
    """Several untrusted values for markdown, joined by ``sep`` (each one through :func:`md` or :func:`md_code`)."""
    f = md_code if code else md
    return sep.join(f(v) for v in values)


# ------------------------------------------------------------------ plotly, HTML
def plotly(text) -> str:
    """``text`` for plotly legend/hover/tick/annotation text: its HTML subset shows as characters."""
    return _html.escape(visible(text), quote=False)


def plotly_all(values) -> list[str]:
    """:func:`plotly` of every value (None stays None: plotly's "no label")."""
    return [None if v is None else plotly(v) for v in values]


def html(text) -> str:
    """``text`` for an HTML document or attribute (figure export)."""
    return _html.escape(visible(text), quote=True)


# ------------------------------------------------------------------ CSV
def csv_cell(value):
    """One CSV cell: text starting like a formula gets a leading ``'``; numbers and other values unchanged."""
    if not isinstance(value, str) or not value.startswith(FORMULA_START) or _NUMBER.match(value):
        return value
    return "'" + value


def csv_frame(df):
    """A copy of a pandas DataFrame with every text cell, column name and index label through :func:`csv_cell`."""
    import numpy as np
    from pandas.api.types import is_bool_dtype, is_numeric_dtype

    def text(values) -> bool:  # object, str (pandas 3's default for text) or category: may hold text
        return not (is_numeric_dtype(values.dtype) or is_bool_dtype(values.dtype))

    out = df.copy()
    for c in out.columns:
        if text(out[c]):
            out[c] = np.array([csv_cell(v) for v in out[c].astype(object)], dtype=object)
    out.columns = [csv_cell(c) for c in out.columns]
    if text(out.index):
        out.index = np.array([csv_cell(v) for v in out.index], dtype=object)
    return out



def csv_bytes(df, **to_csv_kw) -> bytes:
    """``df`` as utf-8 CSV bytes for a download button, formula cells neutralised (:func:`csv_frame`)."""
    return csv_frame(df).to_csv(**to_csv_kw).encode("utf-8")
