# The README's two commands: `make run` and `make test`. Everything they need is set up here.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin

# mypy's Django plugin imports the settings; a URL (never connected to) keeps it from
# starting the embedded PostgreSQL, which it would leave running.
MYPY := TENSORZERO_POSTGRES_URL=postgresql://mypy@127.0.0.1:1/mypy DJANGO_SECRET_KEY=mypy-only $(BIN)/mypy .

# axe-core for the accessibility tests, from the npm registry at the locked version and
# hash (tests/axe/package-lock.json); never a CDN while the tests run.
AXE := tests/axe/node_modules/.installed

.PHONY: run test lint typecheck pytest bench bench-usage clean lock

run: $(VENV)/.runtime
	$(BIN)/python -m t0admin.serve

# Tests get their own embedded cluster, apart from the one `make run` keeps your keys in;
# with TENSORZERO_POSTGRES_URL set they use that server (in a test_ database of its own).
test: $(VENV)/.dev $(AXE)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(MYPY)
	T0ADMIN_DATA_DIR=$${T0ADMIN_TEST_DATA_DIR:-$(CURDIR)/.data/test} \
	  DJANGO_SECRET_KEY=$${DJANGO_SECRET_KEY:-test-only-not-a-secret-$$$$-0123456789abcdefghij} \
	  $(BIN)/pytest $(PYTEST_ARGS)

lint: $(VENV)/.dev
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(MYPY)

bench: $(VENV)/.dev
	T0ADMIN_DATA_DIR=$${T0ADMIN_BENCH_DATA_DIR:-$(CURDIR)/.data/bench} $(BIN)/python bench/paging.py $(BENCH_ARGS)

# Usage at 10 million inferences; the data is generated once (minutes) and kept in the
# bench cluster's database t0admin_usage_bench.
bench-usage: $(VENV)/.dev
	T0ADMIN_DATA_DIR=$${T0ADMIN_BENCH_DATA_DIR:-$(CURDIR)/.data/bench} $(BIN)/python bench/usage.py $(BENCH_ARGS)

$(VENV)/bin/python:
	$(PYTHON) -m venv $(VENV)

# Installs only from the lock files, every package checked against its hash.
$(VENV)/.runtime: requirements.lock | $(VENV)/bin/python
	$(BIN)/python -m pip install --quiet --disable-pip-version-check --require-hashes --no-deps -r requirements.lock
	touch $@

$(VENV)/.dev: requirements-dev.lock | $(VENV)/bin/python
	$(BIN)/python -m pip install --quiet --disable-pip-version-check --require-hashes --no-deps -r requirements-dev.lock
	touch $@ $(VENV)/.runtime

# npm stamps package files with a 1985 date, so a stamp of our own tells make it is done.
$(AXE): tests/axe/package.json tests/axe/package-lock.json
	npm ci --prefix tests/axe --no-audit --no-fund --ignore-scripts --loglevel=error
	touch $@

# Maintainers only: regenerate the locks after changing pyproject.toml (needs uv).
lock:
	uv pip compile pyproject.toml --generate-hashes --python-version 3.11 -o requirements.lock
	uv pip compile pyproject.toml --extra dev --generate-hashes --python-version 3.11 -o requirements-dev.lock

clean:
	rm -rf $(VENV) tests/axe/node_modules .mypy_cache .pytest_cache .ruff_cache
