# veritee: two set-up commands on a fresh Debian 12 machine (as root): `make demo` and `make test`.
# Install steps are stamped: a re-run with everything installed does no installing.

SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMPS := .stamps
APT_PACKAGES := swtpm swtpm-tools tpm2-tools libtss2-dev pkg-config python3-venv python3-dev gcc chromium postgresql-client
PYTEST_ARGS ?=
LINT_PATHS := $(wildcard src tests bench tools)

.PHONY: demo test lint pytest bench deps apt venv clean

demo: deps
	$(BIN)/veritee demo

test: deps lint pytest

lint: deps
	$(BIN)/ruff check $(LINT_PATHS)
	$(BIN)/ruff format --check $(LINT_PATHS)
	$(BIN)/mypy
	bash tools/mypy_tests.sh $(BIN)/mypy
	MYPYPATH=src $(BIN)/mypy --explicit-package-bases bench
	$(BIN)/lint-imports

pytest: deps
	$(BIN)/pytest $(PYTEST_ARGS)

bench: deps
	bash bench/setup_keylime.sh
	$(BIN)/python -m bench

deps: apt venv

# Debian packages: skipped when every one is already installed.
apt:
	@missing=""; for p in $(APT_PACKAGES); do \
	  dpkg-query -W -f='$${Status}' $$p 2>/dev/null | grep -q 'install ok installed' || missing="$$missing $$p"; \
	done; \
	if [ -n "$$missing" ]; then \
	  echo "installing Debian packages:$$missing"; \
	  if [ "$$(id -u)" != 0 ]; then echo "run as root (or install:$$missing)"; exit 1; fi; \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$missing >/dev/null; \
	fi

venv: $(STAMPS)/venv

$(STAMPS)/venv: pyproject.toml
	@mkdir -p $(STAMPS)
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -e '.[dev]'
	touch $@

clean:
	rm -rf $(VENV) $(STAMPS) .mypy_cache .ruff_cache .pytest_cache
