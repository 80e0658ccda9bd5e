# The two commands a new machine needs (see README): `make demo` and `make test`.
PY ?= python3.11
VENV := .venv
BIN := $(VENV)/bin

$(BIN)/python:
	@command -v $(PY) >/dev/null 2>&1 || { echo "need $(PY) on PATH (or run: make PY=python3 ...)"; exit 1; }
	$(PY) -m venv $(VENV)

# Two install levels: the demo needs only the app and its local S3 (requirements-demo.txt); tests, linters
# and the browser driver (requirements-dev.txt, a superset) install with `make test` / `make install` (CI).
# (The pip upgrade pays for itself: Python 3.11's bundled pip 23.2 took 79 s for the demo's requirements, pip 26 41 s.)
$(VENV)/.installed-demo: $(BIN)/python requirements.txt requirements-demo.txt
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -r requirements-demo.txt
	touch $@

$(VENV)/.installed: $(BIN)/python requirements.txt requirements-demo.txt requirements-dev.txt
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -r requirements-dev.txt
	touch $@ $(VENV)/.installed-demo

install: $(VENV)/.installed
install-demo: $(VENV)/.installed-demo

## demo: install the runtime only, migrate a SQLite db, start the sandbox upstreams, run every sync, print a
## report, then serve the admin on 127.0.0.1:8000 with a qcluster worker (DEMO_ARGS="--port 8001", "--no-serve")
demo: install-demo
	@test -f .env.demo || $(BIN)/python -c "from cryptography.fernet import Fernet; import secrets; print('DEBUG=true\nOUTBOUND_ALLOW_LOOPBACK=true\nSECRET_KEY=' + secrets.token_urlsafe(50) + '\nFIELD_ENCRYPTION_KEYS=' + Fernet.generate_key().decode() + '\nDATABASE_URL=sqlite:///demo.sqlite3')" > .env.demo
	set -a && . ./.env.demo && set +a && $(BIN)/python manage.py demo $(DEMO_ARGS)

## test: install and run the whole test suite (SQLite unless DATABASE_URL is set)
test: install
	$(BIN)/pytest $(PYTEST_ARGS)

lint: install
	$(BIN)/ruff check .
	$(BIN)/lint-imports --no-cache
	$(BIN)/ruff format --check .

## bench: every benchmark (B1-B8) against PostgreSQL (DATABASE_URL, default synchub_bench); prints medians and ratios
bench: install
	$(BIN)/python -m bench $(BENCH_ARGS)

.PHONY: install install-demo demo test lint bench
