# Two commands do everything on a fresh machine with python3, pip and make:
#   make demo   build the environment, run the example programme, write the report
#   make test   build the environment, lint, type-check and run the tests
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
DEMO_DIR ?= demo-project

.PHONY: demo test test-slow lint typecheck architecture browser bench lock clean dictionary

$(STAMP): requirements.lock pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --disable-pip-version-check -r requirements.lock
	$(BIN)/pip install --quiet --disable-pip-version-check --no-deps -e .
	touch $(STAMP)

demo: $(STAMP)
	$(BIN)/knowdo demo --dir $(DEMO_DIR)

# Debian's chromium drives the browser tests; install it when missing (root or sudo).
browser:
	@command -v chromium >/dev/null 2>&1 || { \
	  SUDO=$$( [ "$$(id -u)" = 0 ] || echo sudo ); \
	  $$SUDO apt-get update -qq && $$SUDO apt-get install -y -qq chromium >/dev/null; }

lint: $(STAMP)
	$(BIN)/ruff check src tests benchmarks

typecheck: $(STAMP)
	$(BIN)/mypy src

architecture: $(STAMP)
	$(BIN)/lint-imports

test: $(STAMP) browser lint typecheck architecture
	$(BIN)/pytest -n 2 -m "not slow"

test-slow: $(STAMP) browser
	$(BIN)/pytest -m slow

bench: $(STAMP)
	$(BIN)/python benchmarks/bench_panel.py

dictionary: $(STAMP)
	$(BIN)/knowdo dictionary > docs/data-dictionary.md

# Re-pin every dependency after changing pyproject.toml.
lock:
	rm -rf /tmp/knowdo-lock && $(PYTHON) -m venv /tmp/knowdo-lock
	/tmp/knowdo-lock/bin/pip install --quiet ".[dev]"
	/tmp/knowdo-lock/bin/pip freeze --exclude knowdo > requirements.lock

clean:
	rm -rf $(VENV) $(DEMO_DIR) .mypy_cache .ruff_cache .pytest_cache
