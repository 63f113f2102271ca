# The two commands: `make run` serves the API on the bundled default model, `make test` runs the tests.
SHELL := /bin/bash
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

# numba: a writable on-disk cache (the venv may be read-only) and a fork-safe threading layer.
export NUMBA_CACHE_DIR ?= $(CURDIR)/.numba_cache
export NUMBA_THREADING_LAYER ?= workqueue
export PYTHONPATH := $(CURDIR)

.PHONY: run test test-fast train model bench lint install clean-model redis-server

install: $(STAMP)

$(STAMP): requirements.txt requirements-dev.txt
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --disable-pip-version-check --upgrade pip
	$(PY) -m pip install --quiet --disable-pip-version-check -r requirements.txt -r requirements-dev.txt
	@touch $@

# Serve the live release, or the newest one that verifies; train the bundled sample only when there is no
# release at all (portal/bootstrap.py exits 1), and stop when the company's own releases cannot load (2).
model: $(STAMP)
	@$(PY) -m portal.bootstrap; status=$$?; \
	if [ $$status -eq 1 ]; then $(VENV)/bin/flask --app app train; elif [ $$status -ne 0 ]; then exit $$status; fi

run: model
	exec $(VENV)/bin/gunicorn -c gunicorn.conf.py

# The tests start their own Redis server (several-hosts cases): Debian's package, installed once (CI is root).
redis-server:
	@command -v redis-server >/dev/null || (apt-get update -qq && \
		DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends redis-server >/dev/null)

test: $(STAMP) redis-server
	$(PY) -m pytest

# Day-to-day: everything but the `slow` marker (real gunicorn, subprocess fits). CI runs `make test`.
test-fast: $(STAMP) redis-server
	$(PY) -m pytest -m "not slow"

train: $(STAMP)
	$(VENV)/bin/flask --app app train $(if $(DATA),--data "$(DATA)",)

bench: $(STAMP) redis-server
	$(PY) -m bench.run $(BENCH_ARGS)

lint: $(STAMP)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/mypy
