# Kehu: `make run` serves a demo on http://127.0.0.1:8000, `make test` runs the test suite.
# Both keep their virtualenv in .venv; front-end files come from the npm registry, pinned by
# package-lock.json, and are copied into core/static/vendor/ (pages never load from a CDN).

SHELL := /bin/bash
.DEFAULT_GOAL := run

PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
VENDOR := core/static/vendor
# npm writes node_modules/.package-lock.json on every install: it is the "node_modules" date.
NODE_STAMP := node_modules/.package-lock.json
VENDOR_FILES := $(VENDOR)/htmx.min.js

HOST ?= 127.0.0.1
PORT ?= 8000
PYTEST_ARGS ?=
BENCH_ARGS ?=

.PHONY: venv assets run test bench clean

# --- Python -----------------------------------------------------------------------------

venv: $(STAMP)

# Reinstalled only when pyproject.toml is newer than the stamp.
$(STAMP): pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --disable-pip-version-check -e '.[test]'
	@touch $@

# --- Front-end files --------------------------------------------------------------------

assets: $(VENDOR_FILES)

$(NODE_STAMP): package-lock.json package.json
	npm ci --no-audit --no-fund
	@touch $@

$(VENDOR)/htmx.min.js: $(NODE_STAMP)
	@mkdir -p $(VENDOR)
	cp node_modules/htmx.org/dist/htmx.min.js $@

# --- Everyday commands ------------------------------------------------------------------

# Migrates the embedded SQLite database in ./var, loads the demo (the administrator's password
# is printed the first time only) and serves with an embedded job worker.
run: venv assets
	$(BIN)/kehu db upgrade
	$(BIN)/kehu demo load
	$(BIN)/kehu serve --host $(HOST) --port $(PORT)

# pytest's own exit code is the result (e.g. make test PYTEST_ARGS="-k browser -x").
# The tests run in PYTEST_WORKERS pytest-xdist processes (0: all in one process, e.g. for
# --pdb); tests that share a module-wide deployment stay on one worker (--dist loadgroup).
PYTEST_WORKERS ?= 2
test: venv assets
	$(BIN)/python -m pytest -q -n $(PYTEST_WORKERS) --dist loadgroup $(PYTEST_ARGS)

bench: venv
	$(BIN)/python bench/run.py $(BENCH_ARGS)

# Keeps ./var (the demo deployment and its master key).
clean:
	rm -rf $(VENV) node_modules $(VENDOR) build .pytest_cache .hypothesis *.egg-info
	find . -name __pycache__ -type d -not -path './var/*' -prune -exec rm -rf {} +
