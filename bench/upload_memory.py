"""Server memory (RSS) after uploads the app refuses: ours vs a bare Streamlit uploader, same run.

    .venv/bin/python bench/upload_memory.py                       # 3 uploads of 4 x 40 MB per uploader
    .venv/bin/python bench/upload_memory.py --uploads 4 --files 8 --mb 60   # the issue's measurement

Three `streamlit run` servers on loopback ports, each driven by its own headless Chromium
(/usr/bin/chromedriver) through the real upload path (the browser's multipart PUT to the server):

- bare:    a one-widget app, ``st.file_uploader(accept_multiple_files=True)`` reading each file's
           ``getvalue()`` once -- what Streamlit itself keeps;
- tasks:   the Tasks page's "Add a task from a file" uploader (files of random bytes named .parquet:
           refused with one message);
- library: the Library page's prompt uploader (random bytes named .safetensors: refused).

Each round sends ``--files`` new files of ``--mb`` MB to the same session's uploader (the uploader
keeps its earlier files, as a user's would), waits until the script run is done, and prints the
server's RSS (the process and its children, via psutil). The last lines give each app's growth over
its start-up RSS and the ratio to the bare app's growth: about 1x means the app keeps nothing of
its own. Bounded: every wait has a timeout, every server is stopped at the end.
"""
from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

import psutil

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "tests" / "e2e"))
sys.path.insert(0, str(REPO))

from e2e_harness import Browser, StreamlitServer, browser_problem  # noqa: E402

BARE_APP = '''import streamlit as st
files = st.file_uploader("files", accept_multiple_files=True)
st.write(sum(len(f.getvalue()) for f in files or []), "bytes")
'''


def rss_mb(pid: int) -> float:
    p = psutil.Process(pid)
    procs = [p, *p.children(recursive=True)]
    total = 0
    for q in procs:
        try:
            total += q.memory_info().rss
        except psutil.NoSuchProcess:
            pass
    return total / 2**20


def settled_rss(pid: int, before: float, sent_mb: float, timeout: float = 120.0) -> float:
    """The server's RSS once this round's upload has landed: on a loaded machine the page can look idle
    before the browser's PUT is in (a first run sampled every round one upload late). Waits until the RSS
    has grown by at least a quarter of what was sent (at most 30 s: an app that keeps nothing never
    grows), then until two samples 1 s apart differ by under 5 MB (at most ``timeout``)."""
    t0 = time.perf_counter()
    cur = rss_mb(pid)
    while cur - before < sent_mb / 4 and time.perf_counter() - t0 < 30.0:
        time.sleep(1.0)
        cur = rss_mb(pid)
    while time.perf_counter() - t0 < timeout:
        time.sleep(1.0)
        nxt = rss_mb(pid)
        if abs(nxt - cur) < 5:
            return nxt
        cur = nxt
    return cur


def make_files(folder: Path, n: int, mb: int, suffix: str, tag: str) -> list[Path]:
    out = []
    for i in range(n):
        p = folder / f"{tag}_{i}{suffix}"
        with p.open("wb") as f:
            f.write(os.urandom(mb * 2**20))
        out.append(p)
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--uploads", type=int, default=3, help="upload rounds per uploader")
    ap.add_argument("--files", type=int, default=4, help="files sent per round")
    ap.add_argument("--mb", type=int, default=40, help="size of each file, MB")
    args = ap.parse_args()
    if problem := browser_problem():
        sys.exit(f"no browser: {problem}")
    tmp = Path(tempfile.mkdtemp(prefix="atlas-upmem-"))
    (tmp / "bare").mkdir()
    (tmp / "bare" / "bare_upload.py").write_text(BARE_APP)
    home = tmp / "home"
    home.mkdir()
    # full mode on loopback (viewers cannot upload); every server a fresh ATLAS_HOME
    apps = {
        "bare": dict(server=StreamlitServer(cwd=tmp / "bare", app="bare_upload.py"), path="", suffix=".bin"),
        "tasks": dict(server=StreamlitServer(env={"ATLAS_HOME": str(home / "t"), "ATLAS_MODE": "full"}),
                      path="tasks", suffix=".parquet"),
        "library": dict(server=StreamlitServer(env={"ATLAS_HOME": str(home / "l"), "ATLAS_MODE": "full"}),
                        path="library", suffix=".safetensors"),
    }
    growth, peak = {}, {}
    try:
        for name, a in apps.items():
            srv = a["server"].start(timeout=120)
            b = Browser(srv.url)
            driver = b.driver
            try:
                b.open(a["path"], timeout=180)
                time.sleep(2)
                base = rss_mb(srv.proc.pid)
                print(f"{name:8s} start      RSS {base:8.0f} MB", flush=True)
                last = base
                for r in range(1, args.uploads + 1):
                    files = make_files(tmp, args.files, args.mb, a["suffix"], f"{name}{r}")
                    inp = b.wait_until(lambda: next(iter(driver.find_elements("css selector", "input[type='file']")),
                                                    None), 60, "the file input")
                    t0 = time.perf_counter()
                    inp.send_keys("\n".join(str(p) for p in files))
                    b.wait_idle(start_wait=3.0, timeout=300)
                    last = settled_rss(srv.proc.pid, before=last, sent_mb=args.files * args.mb)
                    print(f"{name:8s} upload {r}   RSS {last:8.0f} MB   (+{last - base:.0f} MB, "
                          f"{args.files} x {args.mb} MB sent, {time.perf_counter() - t0:.1f} s)", flush=True)
                    for p in files:
                        p.unlink()
                    peak[name] = max(peak.get(name, 0.0), last - base)
                growth[name] = last - base
            finally:
                b.close()
                a["server"].stop()
    finally:
        for a in apps.values():
            a["server"].stop()
    sent = args.uploads * args.files * args.mb
    print(f"\n{args.uploads} uploads of {args.files} x {args.mb} MB ({sent} MB sent per uploader); RSS growth:")
    for name, g in growth.items():
        ratio = g / growth["bare"] if growth.get("bare", 0) > 0 else float("nan")
        pk = peak.get(name, g)
        pratio = pk / peak["bare"] if peak.get("bare", 0) > 0 else float("nan")
        # the last sample alone can mislead: the allocator may hand memory back to the OS between rounds
        # (the bare app's RSS fell at the 4th of 4 x 8 x 60 MB), so the peak growth is printed too
        print(f"  {name:8s} +{g:6.0f} MB   {ratio:5.2f}x the bare Streamlit uploader's   "
              f"(peak +{pk:.0f} MB, {pratio:.2f}x the bare app's peak)")


if __name__ == "__main__":
    main()
