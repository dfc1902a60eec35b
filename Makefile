# Two commands on a fresh machine: `make run` (the chat) and `make test`. Both create .venv/ first.
PYTHON ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-stamp
export HF_HUB_OFFLINE := 1

.PHONY: install run test test-fast bench browser clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --disable-pip-version-check torch==2.13.0
	$(BIN)/python -m pip install -q --disable-pip-version-check -e '.[test]'
	touch $(STAMP)

install: $(STAMP)

run: install
	$(BIN)/qa serve

# Debian's Chromium for the browser tests (Playwright's own browser download is not reachable here).
browser:
	@command -v chromium >/dev/null || { [ "$$(id -u)" = 0 ] && apt-get update -qq && apt-get install -y -qq chromium >/dev/null; } || echo "chromium not installed: browser tests will be skipped"

# The tests in parallel, one worker per core up to 4 (each loads the model once), each module's tests on one
# worker so that a module's shared index is built once.
PARALLEL := -n auto --maxprocesses 4 --dist loadscope

test: install browser
	$(BIN)/pytest -q $(PARALLEL)

test-fast: install
	$(BIN)/pytest -q $(PARALLEL) -m "not browser and not server"

bench: install
	$(BIN)/python bench/bench.py && $(BIN)/python bench/pg.py

clean:
	rm -rf $(VENV) index
