# Two commands set up a fresh machine: `make run` and `make test`. Everything else is optional.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed-$(shell cat requirements.in requirements.txt requirements-dev.txt | cksum | cut -d' ' -f1)
# requirements.txt is generated from requirements.in: every package pinned, with its hashes, for
# every platform and Python 3.11 on (the Function App runs 3.11), so Azure's remote build installs it.
LOCK_COMMAND := uv pip compile --quiet --universal --python-version 3.11 --generate-hashes \
	--custom-compile-command "make lock" requirements.in -o requirements.txt

.DEFAULT_GOAL := help
.PHONY: help venv lock run test test-older-pg test-pgbouncer lint migrate audit token bench soak fuzz clean

# The suite again on another database server covers what talks to the database; the tests of
# infra, docs, packaging and tooling do not change with the server.
SERVER_INDEPENDENT := --ignore=tests/infra --ignore=tests/test_fuzz.py --ignore=tests/test_docs_browser.py \
	--ignore=tests/test_supply_chain.py --ignore=tests/test_run.py --ignore=tests/test_openapi.py \
	--ignore=tests/test_config.py --ignore=tests/test_telemetry.py

help: ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-15s %s\n", $$1, $$2}'

$(STAMP): requirements.in requirements.txt requirements-dev.txt
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else "Python 3.11 or newer is required (set PYTHON=python3.11)")'
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --disable-pip-version-check --upgrade pip
	$(PY) -m pip install --quiet --disable-pip-version-check --require-hashes -r requirements.txt
	$(PY) -m pip install --quiet --disable-pip-version-check -r requirements-dev.txt
	@rm -f $(VENV)/.installed-* && touch $(STAMP)

venv: $(STAMP) ## create .venv and install what the app and its tools need

lock: ## regenerate requirements.txt (pinned, hash-checked) from requirements.in; run after editing it
	@test -x $(VENV)/bin/uv || { test -x $(PY) || $(PYTHON) -m venv $(VENV); $(PY) -m pip install --quiet "uv>=0.9,<1"; }
	$(VENV)/bin/$(LOCK_COMMAND)

run: $(STAMP) ## serve the API on http://127.0.0.1:7071/api with a local database and sign-in authority
	$(PY) -m tools.run $(ARGS)

test: $(STAMP) lint ## lint, type-check, the whole suite, then its database part on PostgreSQL 15 and via PgBouncer
	$(PY) -m pytest $(ARGS)
	@$(MAKE) --no-print-directory test-older-pg
	@$(MAKE) --no-print-directory test-pgbouncer

test-older-pg: $(STAMP) ## the database part of the suite on Debian's PostgreSQL 15 (installed when missing)
	@bin="$$(tools/older_postgres.sh)"; \
	if [ "$$bin" = SKIP ]; then echo "test-older-pg: skipped (see the reason above)"; \
	else echo "== the suite on $$bin"; PG_BIN="$$bin" $(PY) -m pytest -q -p no:cacheprovider $(SERVER_INDEPENDENT) $(ARGS); fi

test-pgbouncer: $(STAMP) ## the database part of the suite through PgBouncer in transaction mode
	@echo "== the suite through PgBouncer (transaction pooling)"
	TEST_VIA_PGBOUNCER=1 $(PY) -m pytest -q -p no:cacheprovider $(SERVER_INDEPENDENT) $(ARGS)

lint: $(STAMP) ## ruff and mypy
	$(VENV)/bin/ruff check .
	$(VENV)/bin/mypy

migrate: $(STAMP) ## apply sql/migrations to DATABASE_URL
	$(PY) -m tools.migrate

audit: $(STAMP) ## list live registrations in DATABASE_URL that today's submission rules would refuse
	$(PY) -m tools.audit_registrations $(ARGS)

token: $(STAMP) ## mint a development token, e.g. make token ARGS="--name Ada --admin"
	@$(PY) -m tools.token $(ARGS)

bench: $(STAMP) ## run the benchmarks and print their figures
	$(PY) -m bench $(ARGS)

soak: $(STAMP) ## minutes of mixed traffic through a dev host, e.g. make soak ARGS="--minutes 2"
	$(PY) -m bench.soak $(ARGS)

fuzz: $(STAMP) ## a long schemathesis run against a live dev host
	FUZZ_EXAMPLES=$${FUZZ_EXAMPLES:-500} $(PY) -m pytest tests/test_fuzz.py -p no:cacheprovider $(ARGS)

clean: ## remove the virtual environment and local data
	rm -rf $(VENV) .data .mypy_cache .ruff_cache .pytest_cache
