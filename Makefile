# Every target sets up what it needs: a fresh machine runs `make demo` or `make test` directly.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
DEMO_STAMP := $(VENV)/.installed-demo
STAMP := $(VENV)/.installed
# Runs a set-up command quietly: its output is shown (on stderr) only when it fails.
QUIETLY := sh -c 'log=$$(mktemp); "$$@" >"$$log" 2>&1; status=$$?; \
  [ $$status -eq 0 ] || cat "$$log" >&2; rm -f "$$log"; exit $$status' quietly

.PHONY: setup setup-demo test lint unit browser demo bench docs site corpus sweep cluster clean

# What the demo needs (mdrun, numpy, matplotlib, the bash kernel); `setup` adds the test tools.
setup-demo: $(DEMO_STAMP)
setup: $(STAMP)

$(DEMO_STAMP): pyproject.toml
	@echo "mdrun: setting up $(VENV) (a few minutes the first time)"
	@test -x $(BIN)/python || $(QUIETLY) $(PYTHON) -m venv $(VENV)
	@$(QUIETLY) $(BIN)/python -m pip install --upgrade pip
	@$(QUIETLY) $(BIN)/python -m pip install -e '.[demo]' --config-settings editable_mode=compat
	@$(QUIETLY) $(BIN)/python -m bash_kernel.install --sys-prefix
	@touch $(DEMO_STAMP)

$(STAMP): $(DEMO_STAMP)
	@echo "mdrun: adding the test tools to $(VENV)"
	@$(QUIETLY) $(BIN)/python -m pip install -e '.[test,demo]' --config-settings editable_mode=compat
	@touch $(STAMP)

lint: $(STAMP)
	$(BIN)/ruff check mdrun tests demos tools docs/sandbox.py
	$(BIN)/mypy
	$(BIN)/mypy tools docs/sandbox.py

unit: $(STAMP) browser
	$(BIN)/python -m pytest -q

# Debian's Chromium, for tests/document/test_browser.py (Playwright drives it; it downloads none).
browser:
	@if [ ! -x /usr/bin/chromium ] && command -v apt-get >/dev/null; then \
	  sudo=$$([ "$$(id -u)" = 0 ] || echo sudo); \
	  $$sudo apt-get update -qq && \
	  $$sudo env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null; \
	fi

test: lint unit

# The data tutorial, rendered in place (a second run takes everything from the store).
demo: $(DEMO_STAMP)
	$(BIN)/mdrun run demos/data-tutorial.md
	@echo "rendered document: $(CURDIR)/demos/data-tutorial.md"
	@for image in $$(grep -o 'data-tutorial_files/[0-9a-f]*\.png' demos/data-tutorial.md); do \
	  echo "its figure:        $(CURDIR)/demos/$$image"; done
	@echo "run mdrun yourself: $(BIN)/mdrun run demos/data-tutorial.md"
	@echo "  (or put it on PATH first: source $(BIN)/activate, then: mdrun run FILE.md)"

# The API reference from the docstrings, then every page run by mdrun in a fresh store of its
# own: the pages show mdrun's own behaviour, which is not part of their blocks' keys.
docs: $(STAMP)
	$(BIN)/python tools/apidoc.py
	rm -rf .mdrun-docs-store
	for doc in docs/*.md; do $(BIN)/mdrun --store .mdrun-docs-store run "$$doc" || exit 1; done

# Real documents by others (tests/corpus/manifest.toml), fetched from PyPI at pinned versions and
# checked by sha256, run in .corpus/venv (which it makes): needs PyPI, so not part of `make test`.
corpus:
	$(PYTHON) -m tests.corpus

# The kill sweep: `mdrun run` SIGKILLed at KILLS random instants (200 unless told), each checked
# for a whole document, a sound store, present images and no surviving process; `make test`
# runs a few of them.
KILLS ?= 200
sweep: $(STAMP)
	MDRUN_SWEEP_KILLS=$(KILLS) $(BIN)/python -m pytest tests/document/test_kill_sweep.py -q -s

# `--executor dask` against a Dask LocalCluster the tests start: a worker SIGKILLed mid-block
# CLUSTER_KILLS times (5 unless told), each run checked against a serial one; `make test` runs one.
CLUSTER_KILLS ?= 5
cluster: $(STAMP)
	MDRUN_CLUSTER_KILLS=$(CLUSTER_KILLS) $(BIN)/python -m pytest tests/document/test_dask.py -q

# The mdrun server is off unless a benchmark turns it on (tests/bench/server_edit.py does, in a
# socket folder of its own that it empties).
bench: $(STAMP)
	@$(QUIETLY) $(BIN)/python -m pip install -e '.[test,demo,bench]' --config-settings editable_mode=compat
	MDRUN_SERVER=off $(BIN)/python -m tests.bench

clean:
	rm -rf $(VENV) .corpus .mypy_cache .ruff_cache .pytest_cache .hypothesis

# The docs as a site (MkDocs, Material theme) in site/, every page run by the mdrun plugin
# through the store `make docs` fills.
site: $(STAMP)
	NO_MKDOCS_2_WARNING=1 $(BIN)/mkdocs build
	@echo "site: $(CURDIR)/site/index.html"
