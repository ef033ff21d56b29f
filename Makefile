# The README's two commands: `make run` and `make test`. Everything they need is set up here.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin

# mypy's Django plugin and collectstatic import the settings; a URL (never connected to)
# keeps them from starting the embedded PostgreSQL, which they would leave running.
NO_DATABASE := TENSORZERO_POSTGRES_URL=postgresql://unused@127.0.0.1:1/unused DJANGO_SECRET_KEY=settings-only
MYPY := $(NO_DATABASE) $(BIN)/mypy .

# The app serves static files only as collectstatic leaves them (hashed, compressed).
export T0ADMIN_STATIC_ROOT ?= $(CURDIR)/staticfiles
STATIC := $(T0ADMIN_STATIC_ROOT)/staticfiles.json

# axe-core for the accessibility tests, from the npm registry at the locked version and
# hash (tests/axe/package-lock.json); never a CDN while the tests run.
AXE := tests/axe/node_modules/.installed

.PHONY: run test lint typecheck pytest bench bench-usage clean lock staticfiles

run: $(VENV)/.runtime $(STATIC)
	$(BIN)/python -m t0admin.serve

staticfiles: $(STATIC)

# Again whenever a source file or an installed package (Django's admin files) changes.
$(STATIC): $(VENV)/.runtime $(shell find static -type f)
	$(NO_DATABASE) $(BIN)/python manage.py collectstatic --noinput --clear --verbosity 0

# Tests get their own embedded cluster, apart from the one `make run` keeps your keys in;
# with TENSORZERO_POSTGRES_URL set they use that server (in a test_ database of its own).
test: $(VENV)/.dev $(STATIC) $(AXE)
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

bench: $(VENV)/.dev $(STATIC)
	T0ADMIN_DATA_DIR=$${T0ADMIN_BENCH_DATA_DIR:-$(CURDIR)/.data/bench} $(BIN)/python bench/paging.py $(BENCH_ARGS)
	T0ADMIN_DATA_DIR=$${T0ADMIN_BENCH_DATA_DIR:-$(CURDIR)/.data/bench} $(BIN)/python bench/leaks.py
	$(BIN)/python bench/gateway_check.py

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
	rm -rf $(VENV) staticfiles tests/axe/node_modules .mypy_cache .pytest_cache .ruff_cache
