"""Real-browser harness: a `streamlit run` server on a free port and a headless Chromium driven by Selenium.

    .venv/bin/python -m pytest -q tests/e2e        (or: make e2e; `make browser` installs Chromium)

Used by tests/e2e/conftest.py; kept free of pytest so that a person can drive the app by hand:

    import sys; sys.path.insert(0, "tests/e2e")
    from e2e_harness import StreamlitServer, Browser
    with StreamlitServer(env={"ATLAS_HOME": "/tmp/h"}) as srv, Browser(srv.url) as b:
        b.open("transferability", metric="e_avg"); b.screenshot("look")

Why the waiting is careful: Streamlit renders in two phases. The script run ends
(`[data-testid='stApp']` gets `data-test-script-state='notRunning'`), then plotly and
data grids draw asynchronously. A widget interaction flips the state back to running a
moment later, so "idle" means "notRunning for a short settle window", and a test then
waits for the specific element it needs.
"""
from __future__ import annotations

import re

import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path
from urllib.parse import urlencode

REPO = Path(__file__).resolve().parents[2]
ARTIFACTS = Path(__file__).resolve().parent / "artifacts"


def app_nav() -> list[str]:
    """The page titles app.py gives ``st.navigation``, in order: what a whole app's sidebar lists."""
    titles = re.findall(r'st\.Page\([^)]*title="([^"]+)"', (REPO / "app.py").read_text(encoding="utf-8"))
    assert len(titles) >= 5, f"app.py's st.Page titles not found ({titles}): update app_nav()"
    return titles


def app_nav_pages() -> list[tuple[str, str]]:
    """(url path, title) of every page in app.py's ``st.navigation``, in order.

    The url path is what Streamlit derives from the file name ("pages/library.py" -> "library");
    the page marked ``default=True`` is served at "" (the app's root)."""
    out = []
    for args in re.findall(r"st\.Page\(([^)]*)\)", (REPO / "app.py").read_text(encoding="utf-8")):
        file = re.search(r'"([^"]+\.py)"', args).group(1)
        title = re.search(r'title="([^"]+)"', args).group(1)
        out.append(("" if "default=True" in args else Path(file).stem, title))
    assert [t for _, t in out] == app_nav(), out
    return out
CHROMIUM = Path(os.environ.get("ATLAS_CHROMIUM", "/usr/bin/chromium"))
CHROMEDRIVER = Path(os.environ.get("ATLAS_CHROMEDRIVER", "/usr/bin/chromedriver"))

CHROME_FLAGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
    "--window-size=1400,1000", "--disable-dev-shm-usage",
]

APP = "[data-testid='stApp']"
EXCEPTION = "[data-testid='stException']"


class HarnessError(RuntimeError):
    """The browser or the server could not be set up (not a failure of the app itself)."""


def browser_problem() -> str | None:
    """None when Chromium + chromedriver are installed, else the message telling how to install them."""
    missing = [str(p) for p in (CHROMIUM, CHROMEDRIVER) if not (p.is_file() and os.access(p, os.X_OK))]
    if not missing:
        return None
    return (f"browser tests need Debian's Chromium and its driver; missing: {', '.join(missing)}. "
            "Install them with `make browser` (apt-get install chromium chromium-driver); "
            "CI does this in `make test`.")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class StreamlitServer:
    """`streamlit run APP` on <address>:<free port> with an isolated environment; a context manager.

    app: serve.py by default, the entry `make run` serves (app.py behind the start-up warm-up).

    env: variables added to a copy of os.environ (ATLAS_HOME should always be set by the caller;
         ATLAS_MODE / ATLAS_ALLOWED_ROOTS / ATLAS_LIBRARY of the caller never leak in).
    cwd: the folder holding serve.py, app.py + pages/ (default: the repo).
    address: what `--server.address` gets; "0.0.0.0" makes a shared server (viewer mode unless
             ATLAS_MODE says otherwise). The tests always probe it through 127.0.0.1.
    """

    def __init__(self, env: dict[str, str] | None = None, cwd: Path | str = REPO,
                 app: str = "serve.py", python: str | None = None, log_path: Path | None = None,
                 address: str = "127.0.0.1"):
        self.cwd = Path(cwd)
        self.app = app
        self.address = address
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.python = python or str(REPO / ".venv" / "bin" / "python")
        if not Path(self.python).exists():
            self.python = sys.executable
        # extra prompt folders or a mode leaking from the caller's environment would change what pages show
        inherited = {k: v for k, v in os.environ.items()
                     if k not in ("ATLAS_LIBRARY", "ATLAS_MODE", "ATLAS_ALLOWED_ROOTS")}
        self.env = {**inherited, "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1",
                    "HF_DATASETS_OFFLINE": "1", "RAY_AUTH_MODE": "disabled",
                    "PYTHONDONTWRITEBYTECODE": "1", "OMP_NUM_THREADS": "1",
                    "STREAMLIT_BROWSER_GATHER_USAGE_STATS": "false",
                    **(env or {})}
        self.log_path = log_path or Path(tempfile.mkstemp(prefix="streamlit-e2e-", suffix=".log")[1])
        self.proc: subprocess.Popen | None = None

    def start(self, timeout: float = 60.0) -> "StreamlitServer":
        cmd = [self.python, "-m", "streamlit", "run", self.app,
               "--server.port", str(self.port), "--server.address", self.address,
               "--server.headless", "true", "--browser.gatherUsageStats", "false",
               "--server.fileWatcherType", "none", "--server.runOnSave", "false"]
        self._log = open(self.log_path, "wb")
        # own process group: teardown signals streamlit and any worker it spawned, nothing else
        self.proc = subprocess.Popen(cmd, cwd=self.cwd, env=self.env, stdout=self._log,
                                     stderr=subprocess.STDOUT, start_new_session=True)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise HarnessError(f"streamlit exited with code {self.proc.returncode}:\n{self.log_tail()}")
            try:
                with urllib.request.urlopen(f"{self.url}/_stcore/health", timeout=2) as r:
                    if r.status == 200:
                        return self
            except (urllib.error.URLError, ConnectionError, OSError):
                pass
            time.sleep(0.25)
        self.stop()
        raise HarnessError(f"streamlit did not serve {self.url} within {timeout:.0f} s:\n{self.log_tail()}")

    def stop(self, grace: float = 10.0) -> None:
        """SIGTERM the server's process group, SIGKILL after `grace` seconds."""
        p, self.proc = self.proc, None
        if p is None:
            return
        if p.poll() is None:
            try:
                os.killpg(p.pid, signal.SIGTERM)
            except ProcessLookupError:
                pass
            try:
                p.wait(timeout=grace)
            except subprocess.TimeoutExpired:
                try:
                    os.killpg(p.pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
                p.wait(timeout=5)
        self._log.close()

    def log_tail(self, n: int = 4000) -> str:
        try:
            return self.log_path.read_text(errors="replace")[-n:]
        except OSError:
            return "(no log)"

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()


def make_driver(user_data_dir: Path | str):
    """Headless Debian Chromium via /usr/bin/chromedriver, with a fresh profile folder."""
    problem = browser_problem()
    if problem:
        raise HarnessError(problem)
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    opts = webdriver.ChromeOptions()
    opts.binary_location = str(CHROMIUM)
    for flag in CHROME_FLAGS:
        opts.add_argument(flag)
    opts.add_argument(f"--user-data-dir={user_data_dir}")
    driver = webdriver.Chrome(service=Service(str(CHROMEDRIVER)), options=opts)
    driver.set_page_load_timeout(60)
    return driver


class Browser:
    """One Chromium window on one server; helpers that know how Streamlit renders."""

    def __init__(self, base_url: str, driver=None):
        self.base_url = base_url.rstrip("/")
        self._profile = None
        if driver is None:
            self._profile = tempfile.mkdtemp(prefix="chromium-e2e-")
            driver = make_driver(self._profile)
        self.driver = driver

    # ---- lifecycle -------------------------------------------------------------
    def close(self) -> None:
        try:
            self.driver.quit()
        finally:
            if self._profile:
                shutil.rmtree(self._profile, ignore_errors=True)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    # ---- navigation & waiting ----------------------------------------------------
    def url_for(self, path: str = "", **query) -> str:
        q = {k: v for k, v in query.items() if v is not None}
        return f"{self.base_url}/{path.lstrip('/')}" + (f"?{urlencode(q, doseq=True)}" if q else "")

    def open(self, path: str = "", *, timeout: float = 60.0, **query) -> "Browser":
        """Load `/<path>?<query>` (path = a page's url name, e.g. "transferability") and wait for idle."""
        self.driver.get(self.url_for(path, **query))
        self.wait_idle(timeout=timeout)
        return self

    def script_state(self) -> str | None:
        try:
            return self.driver.execute_script(
                "const a=document.querySelector(arguments[0]);"
                "return a ? a.getAttribute('data-test-script-state') : null;", APP)
        except Exception:  # page in the middle of navigation
            return None

    def wait_idle(self, timeout: float = 60.0, settle: float = 0.5, start_wait: float = 0.0) -> "Browser":
        """Wait until the script run has finished and stayed finished for `settle` seconds.

        start_wait: first give a just-triggered rerun up to this long to start (an interaction
        is sent over the websocket; the state flips to running a moment later).
        """
        deadline = time.monotonic() + timeout
        if start_wait:
            t_end = min(deadline, time.monotonic() + start_wait)
            while time.monotonic() < t_end and self.script_state() == "notRunning":
                time.sleep(0.05)
        stable_since = None
        last = None
        while time.monotonic() < deadline:
            state = self.script_state()
            last = state
            if state == "notRunning":
                stable_since = stable_since or time.monotonic()
                if time.monotonic() - stable_since >= settle:
                    return self
            else:
                stable_since = None
            time.sleep(0.05)
        raise TimeoutError(f"app not idle after {timeout:.0f} s (script state {last!r}) at {self.driver.current_url}")

    def wait_for(self, css: str, timeout: float = 30.0, visible: bool = True, count: int = 1, text: str | None = None):
        """Wait until at least `count` elements match `css` (visible, containing `text` if given); return them."""
        deadline = time.monotonic() + timeout
        found = []
        while time.monotonic() < deadline:
            try:
                found = [e for e in self.driver.find_elements("css selector", css)
                         if (not visible or e.is_displayed()) and (text is None or text in e.text)]
            except Exception:  # stale element while Streamlit re-renders
                found = []
            if len(found) >= count:
                return found
            time.sleep(0.1)
        raise TimeoutError(f"no {count}× {css!r}{f' with text {text!r}' if text else ''} after {timeout:.0f} s "
                           f"at {self.driver.current_url}; page text: {self.page_text()[:600]!r}")

    def wait_until(self, predicate, timeout: float = 30.0, what: str = "condition", poll: float = 0.2):
        deadline = time.monotonic() + timeout
        last_err = None
        while time.monotonic() < deadline:
            try:
                value = predicate()
                if value:
                    return value
            except Exception as e:  # stale elements during a rerun
                last_err = e
            time.sleep(poll)
        raise TimeoutError(f"{what} not met after {timeout:.0f} s at {self.driver.current_url}"
                           + (f" (last error: {last_err!r})" if last_err else ""))

    # ---- inspection --------------------------------------------------------------
    def find(self, css: str):
        return self.driver.find_elements("css selector", css)

    def page_text(self) -> str:
        try:
            return self.driver.find_element("css selector", APP).text
        except Exception:
            return ""

    def exceptions(self) -> list[str]:
        """Texts of every visible Streamlit exception box."""
        out = []
        for e in self.find(EXCEPTION):
            try:
                out.append(e.text)
            except Exception:
                out.append("(stale exception element)")
        return out

    def assert_no_exception(self) -> None:
        exc = self.exceptions()
        if exc:
            raise AssertionError(f"exception box at {self.driver.current_url}:\n" + "\n---\n".join(exc))

    def screenshot(self, name: str) -> Path:
        ARTIFACTS.mkdir(parents=True, exist_ok=True)
        path = ARTIFACTS / f"{name}.png"
        # full-height capture: grow the window to the app's scroll height (headless allows it)
        try:
            h = self.driver.execute_script(
                "const m=document.querySelector('[data-testid=\"stMain\"]')||document.body;"
                "return Math.max(m.scrollHeight, document.body.scrollHeight);")
            w = self.driver.get_window_size()
            if h and h > w["height"]:
                self.driver.set_window_size(w["width"], min(int(h) + 150, 4000))
                self.driver.save_screenshot(str(path))
                self.driver.set_window_size(w["width"], w["height"])
                return path
        except Exception:
            pass
        self.driver.save_screenshot(str(path))
        return path

    def tables(self) -> list[list[list[str]]]:
        """Every st.dataframe's visible cells as rows of strings (header row first).

        The grid draws on a canvas; glide-data-grid keeps an accessible <table> copy of
        the cells in view (virtualised: wide or long frames show only what is scrolled in).
        Note: st.dataframe gets no `st-key-*` class unless it has selections, so find a
        frame by its header instead (see `table_with`).
        """
        return self.driver.execute_script("""
          return [...document.querySelectorAll("[data-testid='stDataFrame']")].map(g => {
            const t = g.querySelector('table');
            if (!t) return [];
            return [...t.querySelectorAll('tr')].map(r => [...r.children].map(c => c.textContent.trim()));
          });""")

    def table_with(self, *columns: str, timeout: float = 30.0) -> list[list[str]]:
        """Rows (header first) of the first st.dataframe whose header has all `columns`."""
        def pick():
            for t in self.tables():
                if t and all(c in t[0] for c in columns):
                    return t
            return None
        return self.wait_until(pick, timeout, f"a dataframe with columns {columns}")

    @staticmethod
    def column(rows: list[list[str]], name: str) -> list[str]:
        i = rows[0].index(name)
        return [r[i] for r in rows[1:] if len(r) > i]

    # ---- widgets -----------------------------------------------------------------
    def keyed(self, key: str) -> str:
        """CSS for the element container Streamlit tags with `st-key-<key>`."""
        return f".st-key-{key}"

    def button(self, label: str | None = None, key: str | None = None, timeout: float = 30.0):
        """A visible button (st.button / st.form_submit_button / download/link) by label text or key."""
        def pick():
            scope = self.find(self.keyed(key)) if key else [self.driver]
            for s in scope:
                for b in s.find_elements("css selector", "button, a[data-testid='stPageLink-NavLink'], a"):
                    if b.is_displayed() and (label is None or b.text.strip() == label or label in b.text):
                        return b
            return None
        return self.wait_until(pick, timeout, f"button {label or key!r}")

    def click(self, element) -> None:
        self.driver.execute_script("arguments[0].scrollIntoView({block: 'center'});", element)
        try:
            element.click()
        except Exception:
            self.driver.execute_script("arguments[0].click();", element)

    def widget(self, label: str | None = None, key: str | None = None, testid: str | None = None,
               timeout: float = 30.0):
        """The container of a widget, found by key (st-key-*) or by its label text (optionally its testid)."""
        def pick():
            if key:
                els = self.find(self.keyed(key))
                return els[0] if els else None
            css = f"[data-testid='{testid}']" if testid else "[data-testid^='st']"
            for el in self.find(css):
                try:
                    lab = el.find_elements("css selector", "[data-testid='stWidgetLabel']")
                    if lab and lab[0].text.strip().startswith(label):
                        return el
                except Exception:
                    continue
            return None
        return self.wait_until(pick, timeout, f"widget {label or key!r}")

    def select(self, option, label: str | None = None, key: str | None = None, timeout: float = 30.0) -> str:
        """Choose an option in a st.selectbox (react-aria combobox) found by label or key.

        option: the option's shown text, or a predicate on it (format_func labels differ from values).
        Returns the text chosen.
        """
        box = self.widget(label, key, testid=None if key else "stSelectbox", timeout=timeout)
        inp = box.find_element("css selector", "input")
        self.click(inp)
        match = option if callable(option) else (lambda text: text == option)

        def opt():
            for o in self.find("[role='option']"):
                if o.is_displayed() and match(o.text.strip()):
                    return o
            return None
        o = self.wait_until(opt, 10, f"option {option!r} in {label or key!r}")
        text = o.text.strip()
        self.click(o)
        self.wait_idle(start_wait=1.0)
        got = self.selected(label, key)
        if got != text:
            raise AssertionError(f"selectbox {label or key!r} shows {got!r} after choosing {text!r}")
        return text

    def selected(self, label: str | None = None, key: str | None = None) -> str:
        """The value a st.selectbox shows (Streamlit 1.67: a react-aria combobox <input>)."""
        box = self.widget(label, key, testid=None if key else "stSelectbox")
        return box.find_element("css selector", "input").get_attribute("value")

    def multiselected(self, label: str | None = None, key: str | None = None) -> list[str]:
        """The shown labels of a st.multiselect's chosen values (its tags)."""
        box = self.widget(label, key, testid=None if key else "stMultiSelect")
        return [t.get_attribute("title") or t.text for t in box.find_elements("css selector", "[data-tag]")]

    def set_number(self, value, label: str | None = None, key: str | None = None, tries: int = 3) -> None:
        """Type a value into a st.number_input and commit it (Enter), as a person does. A rerun that
        replaces the input under the cursor (another control's, a background job's panel) leaves the
        element stale: the value is typed again into the new one, as a person would."""
        from selenium.common.exceptions import StaleElementReferenceException
        from selenium.webdriver.common.keys import Keys

        for i in range(tries):
            try:
                box = self.widget(label, key, testid=None if key else "stNumberInput")
                inp = box.find_element("css selector", "input")
                self.click(inp)
                inp.send_keys(Keys.CONTROL, "a")
                inp.send_keys(str(value), Keys.ENTER)
                self.wait_until(lambda: inp.get_attribute("value") == str(value), 10, f"number input {label or key!r}")
                self.wait_idle(start_wait=1.0)
                return
            except (TimeoutError, StaleElementReferenceException):
                if i == tries - 1:
                    raise
                self.wait_idle(start_wait=2.0)

    def set_text(self, value: str, label: str | None = None, key: str | None = None) -> None:
        """Type into a st.text_input and commit it (Enter)."""
        from selenium.webdriver.common.keys import Keys

        box = self.widget(label, key, testid=None if key else "stTextInput")
        inp = box.find_element("css selector", "input")
        self.click(inp)
        inp.send_keys(Keys.CONTROL, "a")
        inp.send_keys(Keys.DELETE)
        inp.send_keys(value, Keys.ENTER)
        self.wait_until(lambda: inp.get_attribute("value") == value, 10, f"text input {label or key!r}")
        self.wait_idle(start_wait=1.0)

    def upload(self, path: Path | str, label: str | None = None, key: str | None = None) -> None:
        """Send a file to a st.file_uploader (its hidden input[type=file])."""
        scope = self.widget(label, key, testid=None if key else "stFileUploader") if (label or key) else self.driver
        inp = scope.find_element("css selector", "input[type='file']")
        inp.send_keys(str(Path(path).resolve()))
        self.wait_idle(start_wait=2.0, timeout=90)

    # ---- plotly ------------------------------------------------------------------
    def plot_points(self, plot, trace: int | None = None) -> list[dict]:
        """Pixel positions (relative to the plot's top-left) of the points of 2-D traces in a drawn plotly chart.

        trace: index into the figure's data; default = every trace that carries customdata
        (our clickable overlays). Each item: {trace, index, x, y, px, py, customdata, text}.
        """
        return self.driver.execute_script("""
          const gd = arguments[0].querySelector('.js-plotly-plot') || arguments[0];
          const want = arguments[1];
          const out = [];
          (gd._fullData || []).forEach((t, ti) => {
            if (want !== null ? ti !== want : !t.customdata) return;
            if (!t.x || !t.y || t.type.indexOf('3d') >= 0) return;
            const xa = gd._fullLayout[(t.xaxis || 'x').replace('x', 'xaxis')];
            const ya = gd._fullLayout[(t.yaxis || 'y').replace('y', 'yaxis')];
            for (let i = 0; i < t.x.length; i++) {
              const px = xa._offset + xa.d2p(t.x[i]), py = ya._offset + ya.d2p(t.y[i]);
              if (!isFinite(px) || !isFinite(py)) continue;
              out.push({trace: ti, index: i, x: t.x[i], y: t.y[i], px: px, py: py,
                        customdata: t.customdata ? t.customdata[i] : null,
                        text: Array.isArray(t.text) ? t.text[i] : (t.text || null)});
            }
          });
          return out;
        """, plot, trace)

    def click_plot(self, plot, px: float, py: float) -> None:
        """A real mouse click at pixel (px, py) from the chart's top-left (what a person does).

        Verified: plotly's click on a point becomes Streamlit's selection event for
        `st.plotly_chart(on_select="rerun", selection_mode="points")`; heatmap cells alone do not.
        """
        from selenium.webdriver.common.action_chains import ActionChains

        gd = self.driver.execute_script(
            "return arguments[0].querySelector('.js-plotly-plot') || arguments[0];", plot)
        self.driver.execute_script("arguments[0].scrollIntoView({block: 'center'});", gd)
        w, h = self.driver.execute_script(
            "const r = arguments[0].getBoundingClientRect(); return [r.width, r.height];", gd)
        dx, dy = int(round(px - w / 2)), int(round(py - h / 2))
        # hover first and let plotly register it (its hover throttle is ~50 ms): in select/lasso
        # drag modes a click is emitted only for the point currently hovered
        (ActionChains(self.driver).move_to_element_with_offset(gd, dx + 3, dy + 3).pause(0.1)
         .move_to_element_with_offset(gd, dx, dy).pause(0.3).click().perform())
        self.wait_idle(start_wait=2.0)

    def lasso_plot(self, plot, px: float, py: float, r: float = 14.0) -> None:
        """Drag a small closed path around pixel (px, py) — a lasso (or box) selection by mouse."""
        from selenium.webdriver.common.action_chains import ActionChains

        gd = self.driver.execute_script(
            "return arguments[0].querySelector('.js-plotly-plot') || arguments[0];", plot)
        self.driver.execute_script("arguments[0].scrollIntoView({block: 'center'});", gd)
        # pick the lasso tool in the modebar, as a person would (the chart opens in zoom mode)
        found = self.driver.execute_script(
            "const b = arguments[0].querySelector(\".modebar-btn[data-val='lasso']\"); if (b) b.click(); return !!b;", gd)
        assert found, "the chart's modebar has no lasso tool"
        w, h = self.driver.execute_script(
            "const r = arguments[0].getBoundingClientRect(); return [r.width, r.height];", gd)
        cx, cy = px - w / 2, py - h / 2
        corners = [(-r, -r), (r, -r), (r, r), (-r, r), (-r, -r + 2)]
        a = ActionChains(self.driver).move_to_element_with_offset(gd, int(cx - r), int(cy - r)).pause(0.1)
        a = a.click_and_hold()
        for dx, dy in corners[1:]:
            a = a.move_to_element_with_offset(gd, int(cx + dx), int(cy + dy)).pause(0.05)
        a.release().perform()
        self.wait_idle(start_wait=2.0)


def copy_app(dest: Path) -> Path:
    """Copy serve.py, app.py, pages/, core/ and .streamlit/ into `dest` (a throw-away app to break on purpose)."""
    dest.mkdir(parents=True, exist_ok=True)
    for entry in ("serve.py", "app.py"):
        shutil.copy2(REPO / entry, dest / entry)
    for folder in ("pages", "core", ".streamlit"):
        if (REPO / folder).is_dir():
            shutil.copytree(REPO / folder, dest / folder,
                            ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
    return dest


def check_page(b: Browser, path: str, main_css: str, *, text: str | None = None, timeout: float = 60.0,
               **query):
    """Open a page and assert what every page must show: no exception box and its main element.

    The one check that the page-smoke tests use and that test_e2e_can_fail.py proves able to fail.
    """
    b.open(path, timeout=timeout, **query)
    b.assert_no_exception()
    try:
        el = b.wait_for(main_css, timeout=timeout, text=text)[0]
    except TimeoutError as e:
        b.assert_no_exception()  # an exception that landed late explains the missing element best
        raise AssertionError(str(e)) from None
    b.assert_no_exception()
    return el


def wait_runs_ended(home: Path, timeout: float, poll: float = 2.0) -> list[dict]:
    """Every run in ``home``'s runs.db, once all have ended (finished, failed or cancelled) or ``timeout``
    seconds passed; the caller asserts what it expects of them (the store is read, never the page)."""
    from core.runs.store import RunStore
    store = RunStore(Path(home) / "runs.db")
    deadline = time.monotonic() + timeout
    while True:
        runs = store.list_runs()
        if (runs and all(r["status"] in ("finished", "failed", "cancelled") for r in runs)) \
                or time.monotonic() >= deadline:
            return runs
        time.sleep(poll)
