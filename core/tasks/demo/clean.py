"""Cleaning rules for the demo tasks' raw text (tweets, newswire, usenet): the regexes and why.

    python -m core tasks prepare --force   (after a change here: bump PREP_VERSION in spec.py)
"""
from __future__ import annotations

import html
import re

from core.tasks.demo.spec import MAX_WORDS


# ----------------------------------------------------------------------------- cleaning

_URL = re.compile(r"\bhttps?:(?://)?\S*|\bwww\.\S+|\b(?:t\.co|bit\.ly|goo\.gl|ow\.ly)/\S+", re.I)
_HANDLE = re.compile(r"(?<![\w@])@\w+")                      # not e-mail addresses
_RT = re.compile(r"(?:^|(?<=\s))(?:RT|MT)\s*@\w+\s*:?", re.I)  # "RT @user:" anywhere
_RT_BARE = re.compile(r"^\s*RT\b\s*:?", re.I)
_VIA = re.compile(r"\(?\bvia\s+@\w+\)?", re.I)
# Clinton's account signs her own words "-H" / "—Hillary" and quotes of others "—@x on Hillary":
# a label in the text. Hashtags may follow the signature.
_QUOTE_ON_HILLARY = re.compile(r"([\"”])\s*[-—–]\s*(?:[\w.]+\s+){0,3}on Hillary\b.*$")
_HILLARY_SIG = re.compile(r"\s*[-—–]\s*(?:H|Hillary|(?:[\w.@]+\s+){0,3}on Hillary)\s*(?=(?:#\w+\s*)*$)")
_DATELINE = [
    re.compile(r"^\s*[A-Z][A-Za-z .,'-]{0,40}\((?:CNN|Reuters|AP|AFP|UPI)\)\s*[-—–:]*\s*"),
    re.compile(r"^\s*\((?:CNN|Reuters|AP|AFP|UPI)\)\s*[-—–:]*\s*", re.I),
    re.compile(r"\s*/\s*TASS\s*/\s*", re.I),
]
_REUTER_TAIL = re.compile(r"\s+reuters?\s*$", re.I)
# Poster attributions ("in article <id> joe@cs.cmu.edu (Joe) writes:"); this copy is lower-cased
# letters only, so they read "in article ... writes", "... cmu edu joe smith writes".
_TLDS = frozenset("edu com org net gov mil uk ca de au nl sg se fi ch jp il us no dk".split())


def _strip_attributions(text: str) -> str:
    """Drop the words that name a poster before each "writes"/"wrote" (linear in the text;
    a regex version backtracked for seconds on 20 Newsgroups)."""
    out: list[str] = []
    for w in text.split():
        if w in ("writes", "wrote") and out:
            window = out[-14:]
            base = len(out) - len(window)
            cut = next((base + j for j in range(len(window) - 1)
                        if window[j] == "in" and window[j + 1] == "article"), None)
            if cut is None:
                tail = out[-8:]
                tld = [j for j, x in enumerate(tail) if x in _TLDS]
                if tld:
                    cut = max(len(out) - len(tail) + tld[0] - 2, 0)   # "joe oswego edu joe smith"
                elif len(out) < 30:
                    cut = max(len(out) - 2, 0)                         # "joe smith" in the header
            if cut is not None:
                del out[cut:]
                continue
        out.append(w)
    return " ".join(out)

# punctuation left at the start by a removed "RT @x:" (but not the ":" of a leading ":)")
_LEAD_PUNCT = re.compile(r"^(?:[\s,;|]|[:.\-–—](?=\s|$))+")


def _norm_space(text: str) -> str:
    return " ".join(text.split())


def _clean_common(text: str) -> str:
    """HTML entities decoded, URLs removed, whitespace collapsed, cut to MAX_WORDS words."""
    words = _URL.sub(" ", html.unescape(text)).split()
    return " ".join(words[:MAX_WORDS])


def _clean_tweet(text: str) -> str:
    text = html.unescape(text)
    text = _URL.sub(" ", text)
    text = _RT.sub(" ", text)
    text = _RT_BARE.sub(" ", text)
    text = _VIA.sub(" ", text)
    text = _HANDLE.sub(" ", text)
    text = _LEAD_PUNCT.sub("", _norm_space(text))
    return _clean_common(text)


def _clean_news(text: str) -> str:
    for pat in _DATELINE:
        text = pat.sub(" ", text)
    text = _REUTER_TAIL.sub("", text)
    return _clean_common(text)


def _dedupe_key(text: str) -> str:
    return re.sub(r"[^a-z0-9]+", " ", text.lower()).strip()
