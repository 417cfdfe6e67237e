"""core.safetext: untrusted text made inert per output (markdown, code span, plotly, HTML, CSV), and
the control-character rule for names. The oracle (tests/markup_check.py) renders the markdown with
markdown-it and applies Streamlit's extra passes, so each test fails on the raw payload.

    .venv/bin/python -m pytest -q tests/test_safetext.py
"""
from __future__ import annotations

import io

import pandas as pd
import pytest

from core import safetext as S
from markup_check import PAYLOADS, live_markup, live_plotly


@pytest.mark.parametrize("kind", list(PAYLOADS))
def test_the_oracle_sees_every_raw_payload(kind):
    if kind == "backtick":
        assert live_markup(f"`{PAYLOADS[kind]}`") == [] and "`a`" in f"`{PAYLOADS[kind]}`"  # closes early
        return
    assert live_markup(f"Unknown value {PAYLOADS[kind]} in the link"), kind


@pytest.mark.parametrize("kind", list(PAYLOADS))
def test_md_shows_every_payload_as_text(kind):
    v = PAYLOADS[kind]
    assert live_markup(f"Unknown value {S.md(v)} in the link") == []
    assert live_markup(f"group {S.md_code(v)} not here") == []
    # the reader still sees the characters: escapes and zero-width spaces are not shown
    from markdown_it import MarkdownIt
    import html
    shown = html.unescape(MarkdownIt("commonmark").render(S.md(v))).replace(S.ZWSP, "")
    assert v.replace("<", "&lt;") in shown or v in html.unescape(shown)


def test_md_code_cannot_be_closed_by_a_backtick():
    from markdown_it import MarkdownIt
    out = MarkdownIt("commonmark").render(f"x {S.md_code('a`b [l](https://evil.example)')} y")
    assert out.count("<code>") == 1 and "<a " not in out and "a`b" in out
    assert S.md_code("`") == "`` ` ``"


def test_md_mixed_payload_and_autolink_forms():
    evil = "see https://evil.example/x, www.EVIL.example, me@evil.example and ![i](http://h/x.png)"
    assert live_markup(evil)
    assert live_markup(S.md(evil)) == []


def test_controls_shown_as_code_points():
    assert S.md("\u202ecod.exe").startswith("⟨U+202E⟩")
    assert S.plotly("a\nb") == "a⟨U+000A⟩b"
    assert "\u202e" not in S.html("\u202ex")


@pytest.mark.parametrize("kind", list(PAYLOADS))
def test_plotly_and_html(kind):
    v = PAYLOADS[kind]
    if "<" in v:
        assert live_plotly(v)
    assert live_plotly(S.plotly(v)) == []
    assert "<a" not in S.html(v) and '"' not in S.html(v)


@pytest.mark.parametrize("name,char", [("a\nb", "U+000A LINE FEED"), ("a\x00b", "U+0000 NULL"),
                                       ("\u202ecod.exe", "U+202E RIGHT-TO-LEFT OVERRIDE"),
                                       ("zero\u200bwidth", "U+200B ZERO WIDTH SPACE"),
                                       ("line\u2028sep", "U+2028 LINE SEPARATOR"),
                                       ("para\u2029sep", "U+2029 PARAGRAPH SEPARATOR")])
def test_control_problem_names_the_character(name, char):
    assert char in S.control_problem(name)


def test_plain_names_have_no_control_problem():
    for ok in ("sent_tweet", "prompt v2.safetensors", "Grüße-模型", "a b"):
        assert S.control_problem(ok) is None


def test_csv_neutralises_formulas_only():
    df = pd.DataFrame({"name": ["=HYPERLINK(\"http://evil\",\"x\")", "+1+2", "-2+3", "@SUM(A1)", "\tx",
                                "plain", "-0.5", "1e-3"],
                       "value": [-1.0, 2.0, -3.5, 0.0, 1.0, 3.0, 4.0, 5.0]})
    df.index = ["=cmd", "b", "c", "d", "e", "g", "h", "i"]
    back = pd.read_csv(io.BytesIO(S.csv_bytes(df)), index_col=0, keep_default_na=False)
    assert list(back["name"][:5]) == ["'=HYPERLINK(\"http://evil\",\"x\")", "'+1+2", "'-2+3", "'@SUM(A1)", "'\tx"]
    assert S.csv_cell("\rx") == "'\rx" and S.csv_cell(-1.5) == -1.5
    assert list(back["name"][5:]) == ["plain", "-0.5", "1e-3"]      # numbers as text untouched
    assert list(back["value"]) == list(df["value"])                  # numeric cells untouched
    assert back.index[0] == "'=cmd"
    cols = S.csv_frame(pd.DataFrame({"=x": [1]})).columns
    assert list(cols) == ["'=x"]


def test_md_message_keeps_cores_code_spans_and_nothing_else():
    assert S.md_message("`generic` is not a registered task") == "`generic` is not a registered task"
    for v in PAYLOADS.values():
        msg = f"`{v}` is not a task here; {v} again"
        assert live_markup(S.md_message(msg)) == [], (v, S.md_message(msg))
    assert live_markup(S.md_message("odd ` count [x](https://evil.example)")) == []
