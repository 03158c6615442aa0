# Two commands set up a fresh machine: `make run` and `make test`. Everything else is optional.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed-$(shell cat requirements.txt requirements-dev.txt | cksum | cut -d' ' -f1)

.DEFAULT_GOAL := help
.PHONY: help venv run test lint typecheck pytest migrate token bench fuzz clean

help: ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-10s %s\n", $$1, $$2}'

$(STAMP): requirements.txt requirements-dev.txt
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else "Python 3.11 or newer is required (set PYTHON=python3.11)")'
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --disable-pip-version-check --upgrade pip
	$(PY) -m pip install --quiet --disable-pip-version-check -r requirements-dev.txt
	@rm -f $(VENV)/.installed-* && touch $(STAMP)

venv: $(STAMP) ## create .venv and install what the app and its tools need

run: $(STAMP) ## serve the API on http://127.0.0.1:7071/api with a local database and sign-in authority
	$(PY) -m tools.run $(ARGS)

test: $(STAMP) lint ## lint, type-check and run the whole test suite
	$(PY) -m pytest $(ARGS)

lint: $(STAMP) ## ruff and mypy
	$(VENV)/bin/ruff check .
	$(VENV)/bin/mypy

migrate: $(STAMP) ## apply sql/migrations to DATABASE_URL
	$(PY) -m tools.migrate

token: $(STAMP) ## mint a development token, e.g. make token ARGS="--name Ada --admin"
	@$(PY) -m tools.token $(ARGS)

bench: $(STAMP) ## run the benchmarks and print their figures
	$(PY) -m bench $(ARGS)

fuzz: $(STAMP) ## a long schemathesis run against a live dev host
	FUZZ_EXAMPLES=$${FUZZ_EXAMPLES:-500} $(PY) -m pytest tests/test_fuzz.py -p no:cacheprovider $(ARGS)

clean: ## remove the virtual environment and local data
	rm -rf $(VENV) .data .mypy_cache .ruff_cache .pytest_cache
