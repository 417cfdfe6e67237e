"""Does a piece of Streamlit markdown (or plotly text) hold live markup? The test oracle of core.safetext.

    from markup_check import PAYLOADS, live_markup, live_plotly
    assert live_markup(element.value) == []

Streamlit renders markdown in the browser (react-markdown + GFM + math + directives); here the same
source is rendered by markdown-it (CommonMark, raw HTML on) and then checked for what the browser's
extra passes would turn live: GFM autolink literals over the *decoded* text (``https://``, ``www.``,
``a@b.c``), ``:material/…:`` and ``:color[…]`` shortcodes, ``$…$`` maths. What is returned names
each live construct; an empty list means the text shows as text.
"""
from __future__ import annotations

import html
import re

from markdown_it import MarkdownIt

PAYLOADS = {
    "link": "[click me](https://evil.example/phish)",
    "image": "![b](http://127.0.0.1:9/x.png)",
    "bare": "https://evil.example",
    "www": "www.evil.example",
    "html": '<a href="https://evil.example">x</a>',
    "color": ":red[x]",
    "material": ":material/home:",
    "math": "$x$",
    "backtick": "a`b",
}
EVIL = ("evil.example", "127.0.0.1:9")

_md = MarkdownIt("commonmark", {"html": True})
_md_text = MarkdownIt("commonmark", {"html": False})
_CODE = re.compile(r"<code>.*?</code>", re.S)
_TAG = re.compile(r"<[^>]+>")


def live_markup(source: str) -> list[str]:
    """The live constructs in Streamlit markdown ``source`` (links, images, raw HTML, autolinks,
    shortcodes, maths, a code span closed early)."""
    out = []
    rendered = _md.render(str(source))
    for m in re.finditer(r'<(a|img)\b[^>]*(href|src)="([^"]*)"', rendered):
        if not m.group(3).startswith(("/", "#")) or m.group(3).startswith("//"):  # the app's own pages are fine
            out.append(f"<{m.group(1)} {m.group(2)}={m.group(3)}>")
    if rendered != _md_text.render(str(source)):  # raw HTML passes through only when html is on
        out.append("raw html")
    if "material/" in str(source) and re.search(r":material/", str(source)):
        out.append("material shortcode")
    # what the browser's text passes see: the decoded text outside code spans
    text = html.unescape(_TAG.sub("", _CODE.sub("", rendered)))
    for pat, what in ((r"https?://", "autolink"), (r"(?i)www\.", "www autolink"),
                      (r"[\w.+-]+@[-\w]+(\.[-\w]+)+", "email autolink"), (r":[a-z]+\[", "directive")):
        if re.search(pat, text):
            out.append(what)
    # maths: an unescaped $…$ pair in the source (outside code spans)
    if re.search(r"(?<![\\$])\$(?![\s$])[^$\n]*?[^\s$\\]\$", _strip_code(str(source))):
        out.append("maths")
    return out


def _strip_code(source: str) -> str:
    return re.sub(r"(`+)(.+?)\1", "", source)


def live_plotly(text: str) -> list[str]:
    """Tags plotly's text renderer would act on (it splits tags out before decoding entities)."""
    return [m.group(0) for m in re.finditer(r"<\s*(a|b|i|br|span|sup|sub|em|s|u)\b[^>]*>", str(text), re.I)]


def page_texts(at) -> list[str]:
    """Every markdown-rendered text an AppTest page shows (and widget labels)."""
    kinds = ("markdown", "caption", "error", "warning", "info", "success", "subheader", "title", "header")
    out = [str(e.value) for k in kinds for e in getattr(at, k)]
    for k in ("checkbox", "button", "selectbox", "multiselect", "text_input", "toggle", "radio"):
        out += [str(getattr(e, "label", "")) for e in getattr(at, k)]
    return out
