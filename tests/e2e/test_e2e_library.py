"""Library page in a browser: uploads a person makes, and what the table shows afterwards.

    .venv/bin/python -m pytest -q tests/e2e/test_e2e_library.py

A broken prompt file gets its clear error (naming the file) and adds nothing, on screen
and on disk; a PEFT adapter zipped the way people share it joins the table.
"""
from __future__ import annotations

import zipfile
from pathlib import Path

import pytest
import torch

from e2e_harness import check_page

ALERT = "[data-testid='stAlert']"  # st.error / st.success drawn under the uploader


@pytest.fixture(scope="module")
def server_env(mini_demo):
    return {"ATLAS_DEMO": str(mini_demo)}


def prompt_count(b) -> int:
    """The 'Prompts' metric above the table."""
    for m in b.find("[data-testid='stMetric']"):
        label = m.find_elements("css selector", "[data-testid='stMetricLabel']")
        if label and label[0].text.strip() == "Prompts":
            return int(m.find_element("css selector", "[data-testid='stMetricValue']").text.strip())
    raise AssertionError(f"no 'Prompts' metric on the page: {b.page_text()[:500]!r}")


def library_files(home: Path) -> dict[str, bytes]:
    lib = home / "library"
    return {str(p.relative_to(lib)): p.read_bytes() for p in sorted(lib.rglob("*")) if p.is_file()} \
        if lib.exists() else {}


def open_library(b):
    check_page(b, "library", "[data-testid='stDataFrame']")
    return b.table_with("name", "task", "backbone")


def test_table_lists_the_library(browser, mini_demo):
    rows = open_library(browser)
    assert prompt_count(browser) == 5
    names = sorted(p.name for p in (mini_demo / "prompts").iterdir())
    assert sorted(browser.column(rows, "name")) == names
    assert set(browser.column(rows, "backbone")) == {"all-MiniLM-L6-v2"}  # short name; the full id in the detail
    browser.screenshot("library_table")


def test_broken_upload_shows_error_and_adds_nothing(browser, tmp_path):
    from safetensors.torch import save_file

    bad = tmp_path / "nan_prompt.safetensors"
    t = torch.zeros(4, 384)
    t[1, 7] = float("nan")
    save_file({"prompt": t}, str(bad))
    before = library_files(browser.server.home)

    open_library(browser)
    browser.upload(bad, key="library_upload")
    err = browser.wait_for(ALERT, timeout=30, text="nan_prompt")[0].text
    browser.screenshot("library_upload_broken")
    assert "nan_prompt.safetensors" in err, err          # names the file
    assert "nan" in err.lower(), err                     # and the problem
    browser.assert_no_exception()
    assert prompt_count(browser) == 5
    assert "nan_prompt" not in " ".join(browser.column(browser.table_with("name"), "name"))
    assert library_files(browser.server.home) == before  # byte-for-byte unchanged


def test_valid_peft_zip_joins_the_table(browser, tmp_path):
    from core.prompts import SoftPrompt, write_prompt

    folder = write_prompt(SoftPrompt(tensor=torch.randn(6, 384), name="e2e_uploaded", task="sent_movie",
                                     backbone="sentence-transformers/all-MiniLM-L6-v2", method="scratch"),
                          tmp_path / "e2e_uploaded")
    zpath = tmp_path / "e2e_uploaded.zip"
    with zipfile.ZipFile(zpath, "w") as z:  # folder inside the zip, as `zip -r` makes it
        for f in sorted(folder.iterdir()):
            z.write(f, f"e2e_uploaded/{f.name}")

    open_library(browser)
    browser.upload(zpath, key="library_upload")
    msg = browser.wait_for(ALERT, timeout=30, text="e2e_uploaded.zip")[0].text
    assert "e2e_uploaded" in msg and "added" in msg, msg
    browser.assert_no_exception()
    browser.wait_until(lambda: prompt_count(browser) == 6, 20, "Prompts metric to reach 6")
    rows = browser.wait_until(
        lambda: (r := browser.table_with("name")) and "e2e_uploaded" in browser.column(r, "name") and r,
        20, "e2e_uploaded in the table")
    i = browser.column(rows, "name").index("e2e_uploaded")
    assert browser.column(rows, "L")[i] == "6" and browser.column(rows, "d")[i] == "384"
    assert (browser.server.home / "library" / "e2e_uploaded" / "adapter_config.json").is_file()
    browser.screenshot("library_upload_zip")
