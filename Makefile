# Two commands do everything on a fresh machine with python3, pip and make:
#   make demo   build the environment, run the example programme, write the report
#   make test   build the environment, lint, type-check and run the tests
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
DEMO_DIR ?= demo-project

.PHONY: demo test test-slow lint typecheck architecture system-packages bench lock clean dictionary

$(STAMP): requirements.lock pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --disable-pip-version-check -r requirements.lock
	$(BIN)/pip install --quiet --disable-pip-version-check --no-deps -e .
	touch $(STAMP)

demo: $(STAMP)
	$(BIN)/knowdo demo --dir $(DEMO_DIR)

# The tests drive Debian's chromium (report and workspace pages), start throwaway PostgreSQL
# servers (OMOP sources, workspace storage, the panel on PostgreSQL) and run Spark in local mode
# (the panel on Spark, which needs Java 17); install them from Debian when missing (root or sudo).
system-packages:
	@missing=""; \
	command -v chromium >/dev/null 2>&1 || missing="$$missing chromium"; \
	ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || missing="$$missing postgresql"; \
	command -v java >/dev/null 2>&1 || missing="$$missing openjdk-17-jre-headless"; \
	if [ -n "$$missing" ]; then \
	  SUDO=$$( [ "$$(id -u)" = 0 ] || echo sudo ); \
	  $$SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq $$missing >/dev/null; \
	fi

lint: $(STAMP)
	$(BIN)/ruff check src tests benchmarks

typecheck: $(STAMP)
	$(BIN)/mypy src

architecture: $(STAMP)
	$(BIN)/lint-imports

test: $(STAMP) system-packages lint typecheck architecture
	$(BIN)/pytest -n 2 -m "not slow"

test-slow: $(STAMP) system-packages
	$(BIN)/pytest -m slow

bench: $(STAMP)
	$(BIN)/python benchmarks/bench_panel.py

dictionary: $(STAMP)
	$(BIN)/knowdo dictionary > docs/data-dictionary.md

# Re-pin every dependency after changing pyproject.toml.
lock:
	rm -rf .lock-venv && $(PYTHON) -m venv .lock-venv
	.lock-venv/bin/pip install --quiet ".[dev,bench]"
	.lock-venv/bin/pip freeze --exclude knowdo > requirements.lock
	rm -rf .lock-venv

clean:
	rm -rf $(VENV) $(DEMO_DIR) .mypy_cache .ruff_cache .pytest_cache
