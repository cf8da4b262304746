# rail-django: `make demo` runs the sample project, `make test` runs every test.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: install demo test test-sqlite test-postgresql test-mysql lint bench clean chromium doc-tools

$(PY):
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip

$(STAMP): $(PY) setup.cfg pyproject.toml
	$(PY) -m pip install --quiet -e ".[test]"
	touch $(STAMP)

install: $(STAMP)

demo: $(STAMP)
	cd sample_project && ../$(PY) manage.py migrate --noinput
	cd sample_project && ../$(PY) manage.py demo_setup
	cd sample_project && ../$(PY) manage.py runserver 127.0.0.1:8000

# Every test: SQLite always; PostgreSQL and MariaDB/MySQL when their servers
# answer (skipped with a reason otherwise, and never skipped when CI=true).
test: $(STAMP) lint test-sqlite test-postgresql test-mysql

# ruff, then the import contracts of pyproject.toml ([tool.importlinter]; ARCHITECTURE.md draws them).
lint: $(STAMP)
	$(VENV)/bin/ruff check rail_django tests sample_project benchmarks
	$(VENV)/bin/lint-imports

test-sqlite: $(STAMP) chromium doc-tools
	RAIL_DJANGO_TEST_DB=sqlite $(PY) -m pytest

test-postgresql: $(STAMP)
	RAIL_DJANGO_TEST_DB=postgresql $(PY) -m pytest -m "not sqlite_only"

test-mysql: $(STAMP)
	RAIL_DJANGO_TEST_DB=mysql $(PY) -m pytest -m "not sqlite_only"

# The browser test drives Debian's chromium through Playwright (never `playwright install`).
# As root with apt-get (CI, containers) it is installed when missing; anyone else
# without it gets that test skipped, with the reason.
chromium:
	@if [ ! -x /usr/bin/chromium ] && [ "$$(id -u)" = "0" ] && command -v apt-get >/dev/null 2>&1; then \
		echo "Installing Debian's chromium for the browser test"; \
		apt-get update && DEBIAN_FRONTEND=noninteractive apt-get install -y chromium; \
	fi

# tests/docs/test_reference_docs.py runs delivery.md's logrotate block with logrotate and
# graphql.md's JavaScript block with node; installed the same way as chromium.
doc-tools:
	@if [ ! -x /usr/sbin/logrotate ] || ! command -v node >/dev/null; then \
		if [ "$$(id -u)" = "0" ] && command -v apt-get >/dev/null 2>&1; then \
			echo "Installing logrotate and nodejs for the docs tests"; \
			apt-get update && DEBIAN_FRONTEND=noninteractive apt-get install -y logrotate nodejs; \
		fi; \
	fi

# The benchmark suite (benchmarks/RESULTS.md): also installs the reference packages it compares with.
BENCH_STAMP := $(VENV)/.installed-bench

$(BENCH_STAMP): $(STAMP)
	$(PY) -m pip install --quiet -e ".[test,bench]"
	touch $(BENCH_STAMP)

bench: $(BENCH_STAMP)
	$(PY) benchmarks/run.py $(BENCH_ARGS)

clean:
	rm -rf $(VENV) build dist *.egg-info
