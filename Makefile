# rail-django: `make demo` runs the sample project, `make test` runs every test.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: install demo test test-sqlite test-postgresql test-mysql test-django-versions lint bench clean chromium doc-tools nats-server

$(PY):
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip

$(STAMP): $(PY) setup.cfg pyproject.toml
	$(PY) -m pip install --quiet -e ".[test]"
	touch $(STAMP)

install: $(STAMP)

# `make demo PORT=8001` when 8000 is taken.
PORT ?= 8000

demo: $(STAMP)
	cd sample_project && ../$(PY) manage.py migrate --noinput
	cd sample_project && ../$(PY) manage.py demo_setup --port $(PORT)
	cd sample_project && ../$(PY) manage.py runserver 127.0.0.1:$(PORT)

# Every test: SQLite always; PostgreSQL and MariaDB/MySQL when their servers
# answer (skipped with a reason otherwise, and never skipped when CI=true).
test: $(STAMP) lint test-sqlite test-postgresql test-mysql test-django-versions test-graphql-versions

# ruff, then the import contracts of pyproject.toml ([tool.importlinter]; ARCHITECTURE.md draws them).
lint: $(STAMP)
	$(VENV)/bin/ruff check rail_django tests sample_project benchmarks
	$(VENV)/bin/lint-imports

test-sqlite: $(STAMP) chromium doc-tools nats-server
	RAIL_DJANGO_TEST_DB=sqlite $(PY) -m pytest

test-postgresql: $(STAMP) nats-server
	RAIL_DJANGO_TEST_DB=postgresql $(PY) -m pytest -m "not sqlite_only"

test-mysql: $(STAMP)
	RAIL_DJANGO_TEST_DB=mysql $(PY) -m pytest -m "not sqlite_only"

# Every Django release setup.cfg claims besides the one in .venv (5.2 LTS, on python3), as
# RELEASE:PYTHON -- Django 6.x needs Python 3.12+. Each gets .venv-django-RELEASE (python found on
# PATH, else under pyenv) and runs the SQLite suite; tests/packaging (wheel and sdist, which do
# not depend on the Django release) runs once, in test-sqlite.
DJANGO_MATRIX ?= 6.0:3.12 6.1:3.13
django_python = $(patsubst $(1):%,%,$(filter $(1):%,$(DJANGO_MATRIX)))
# The first pythonX.Y that runs: on PATH, else pyenv's (its shims answer only for pyenv's global version).
find_python = $(firstword $(foreach p,$(shell command -v python$(1)) $(wildcard $(HOME)/.pyenv/versions/$(1).*/bin/python$(1)),$(if $(shell "$(p)" -c "print(1)" 2>/dev/null),$(p))))
django_interpreter = $(call find_python,$(call django_python,$(1)))

test-django-versions: $(foreach pair,$(DJANGO_MATRIX),test-django-$(firstword $(subst :, ,$(pair))))

.SECONDEXPANSION:
test-django-%: chromium doc-tools $$(if $$(call django_interpreter,$$*),.venv-django-$$*/.installed)
	$(if $(call django_interpreter,$*),$(django_run),$(django_skip))

define django_run
.venv-django-$*/bin/python -c "import django, sys; print('Django', django.get_version()); sys.exit(django.get_version().split('.')[:2] != '$*'.split('.'))"
	RAIL_DJANGO_TEST_DB=sqlite .venv-django-$*/bin/python -m pytest --ignore=tests/packaging $(DJANGO_PYTEST_ARGS)
endef

define django_skip
@if [ "$$CI" = "true" ]; then echo "Django $*: python$(call django_python,$*) not found, and CI=true forbids skipping" >&2; exit 1; fi
	@echo "SKIPPED Django $*: python$(call django_python,$*) not found (on PATH or under pyenv)"
endef

.PRECIOUS: .venv-django-%/.installed
.venv-django-%/.installed: setup.cfg pyproject.toml
	$(call django_interpreter,$*) -m venv .venv-django-$*
	.venv-django-$*/bin/python -m pip install --quiet --upgrade pip
	.venv-django-$*/bin/python -m pip install --quiet -e ".[test]" "Django==$*.*"
	touch $@

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

# tests/stream starts its own 3-node NATS cluster with JetStream: Debian's nats-server, installed the same
# way as chromium (as root with apt-get; anyone else without it gets those tests skipped, with the reason).
nats-server:
	@if ! command -v nats-server >/dev/null 2>&1 && [ ! -x /usr/sbin/nats-server ] && [ "$$(id -u)" = "0" ] && command -v apt-get >/dev/null 2>&1; then \
		echo "Installing Debian's nats-server for the streaming tests"; \
		apt-get update && DEBIAN_FRONTEND=noninteractive apt-get install -y nats-server; \
	fi

# The benchmark suite (benchmarks/RESULTS.md): also installs the reference packages it compares with.
BENCH_STAMP := $(VENV)/.installed-bench

$(BENCH_STAMP): $(STAMP)
	$(PY) -m pip install --quiet -e ".[test,bench]"
	touch $(BENCH_STAMP)

bench: $(BENCH_STAMP)
	$(PY) benchmarks/run.py $(BENCH_ARGS)

clean:
	rm -rf $(VENV) .venv-django-* build dist *.egg-info

# tests/graphql against the oldest and newest graphql-core/graphene-django that setup.cfg admits.
include Makefile.graphql
