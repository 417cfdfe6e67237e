"""Hostile link values and stored names in a real browser, with a local beacon (loopback only): no page
makes the browser fetch the beacon (an image), and no anchor on the page points at it (a link).

    .venv/bin/python -m pytest -q tests/e2e/test_e2e_markup.py

The beacon is a tiny HTTP server on a free 127.0.0.1 port; every payload names it. tests/test_markup_pages.py
checks the same through AppTest for every page; this is the browser's own rendering (Streamlit's markdown,
GFM autolinks, plotly's legend/hover HTML) in headless Chromium.
"""
from __future__ import annotations

import http.server
import threading
from pathlib import Path

import pytest

from e2e_harness import free_port

HITS: list[str] = []


class _Beacon(http.server.BaseHTTPRequestHandler):
    def do_GET(self):  # noqa: N802 -- http.server's name
        HITS.append(self.path)
        self.send_response(204)
        self.end_headers()

    def log_message(self, *a):
        pass


PORT = free_port()
BEACON = f"127.0.0.1:{PORT}"
PAYLOADS = {
    "metric": f"[click me](http://{BEACON}/phish)",
    "lib": f"![b](http://{BEACON}/img.png)",
    "order": f"http://{BEACON}/bare",
    "view": f'<img src="http://{BEACON}/raw.png">',
    "group": f"www.{BEACON}",
    "target": f"`x![b](http://{BEACON}/tick.png)",
}


@pytest.fixture(scope="module")
def beacon():
    server = http.server.HTTPServer(("127.0.0.1", PORT), _Beacon)
    t = threading.Thread(target=server.serve_forever, daemon=True)
    t.start()
    yield HITS
    server.shutdown()


@pytest.fixture(scope="module")
def server_env(tmp_path_factory, mini_demo):
    """The mini demo plus a library whose stored task and family are payloads naming the beacon."""
    import sys
    sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
    import torch
    from core.prompts import DEFAULT_BACKBONE, SoftPrompt, write_prompt

    lib = tmp_path_factory.mktemp("hostile_lib")
    for i, (task, family) in enumerate([(f"<a href=\"http://{BEACON}/legend\">t</a>", f"![f](http://{BEACON}/fam.png)"),
                                        (f"[t](http://{BEACON}/task)", f"http://{BEACON}/fam2")]):
        write_prompt(SoftPrompt(torch.randn(4, 384), name=f"hostile{i}", task=task, family=family,
                                backbone=DEFAULT_BACKBONE), lib / f"hostile{i}")
    return {"ATLAS_DEMO": str(mini_demo), "ATLAS_LIBRARY": str(lib), "ATLAS_UMAP_WARM_DELAY": "3600"}


def _outside(browser) -> dict[str, list[str]]:
    js = ("return [Array.from(document.querySelectorAll('a[href]')).map(a => a.href),"
          " Array.from(document.querySelectorAll('img[src], image[href]')).map(i => i.src || i.getAttribute('href'))];")
    links, images = browser.driver.execute_script(js)
    return {"links": [h for h in links if BEACON in h], "images": [s for s in images if BEACON in (s or "")]}


@pytest.mark.parametrize("page,query", [
    ("transferability", {k: PAYLOADS[k] for k in ("metric", "order", "view", "group", "target")}),
    ("transferability", {"lib": PAYLOADS["lib"]}),
    ("projection", {"highlight": PAYLOADS["metric"], "group": PAYLOADS["lib"]}),
    ("library", {"lib": PAYLOADS["view"]}),
    ("runs", {"target": PAYLOADS["metric"], "source": PAYLOADS["lib"], "method": PAYLOADS["order"]}),
])
def test_no_page_links_to_or_loads_from_the_beacon(beacon, browser, page, query):
    browser.open(page, **query)
    # the payload is echoed as text (so the checks below are not vacuous)
    def echoed() -> bool:  # textContent: also inside a folded expander
        text = browser.driver.execute_script("return document.body.textContent") or ""
        return BEACON in text or "click me" in text

    browser.wait_until(echoed, timeout=60, what="the payload echoed as text")
    import time
    time.sleep(2)  # plotly draws after the script run: give a live legend link time to appear
    found = _outside(browser)
    assert found == {"links": [], "images": []}, found
    assert beacon == [], beacon
    browser.assert_no_exception()
