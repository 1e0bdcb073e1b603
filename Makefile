# Every target sets up what it needs: a fresh machine runs `make demo` or `make test` directly.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: setup test lint unit browser demo bench docs clean

setup: $(STAMP)

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[test]' --config-settings editable_mode=compat
	touch $(STAMP)

lint: $(STAMP)
	$(BIN)/ruff check mdrun tests
	$(BIN)/mypy

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

demo: $(STAMP)
	$(BIN)/mdrun run demos/hello.md.in -o demos/hello.md
	@echo "--- demos/hello.md ---"
	@cat demos/hello.md

bench: $(STAMP)
	$(BIN)/python -m pip install --quiet -e '.[test,bench]'
	$(BIN)/python -m tests.bench

clean:
	rm -rf $(VENV) .mypy_cache .ruff_cache .pytest_cache .hypothesis
