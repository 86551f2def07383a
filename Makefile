# Handover: `make run` serves the demo portal; `make test` runs every check. Both set themselves up.
PYTHON ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
FLASK := $(BIN)/flask --app portal
STAMP := $(VENV)/.installed
# Tests run in parallel: two processes per core is what this suite keeps busy.
PYTEST_WORKERS ?= auto
NODE_STAMP := node_modules/.package-lock.json
ASSETS := static/build/handover.css

.PHONY: run setup assets chromium nginx test lint typecheck pytest pytest-postgres smoke requirements migration clean

$(STAMP): requirements.txt requirements-dev.txt
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -r requirements-dev.txt
	touch $(STAMP)

# Front-end: GOV.UK Frontend (pinned in package-lock.json) compiled with Handover's brand into static/build/.
$(NODE_STAMP): package.json package-lock.json
	npm ci --no-audit --no-fund
	touch $(NODE_STAMP)

$(ASSETS): $(NODE_STAMP) scripts/build-assets.sh $(wildcard static/src/*.scss static/src/*/*.scss)
	sh scripts/build-assets.sh

assets: $(ASSETS)

## The browser tests drive Debian's Chromium (never a browser downloaded by `playwright install`).
chromium:
	@command -v chromium >/dev/null || { \
		echo "Installing Chromium for the browser tests (apt-get)"; \
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null; }

## The production-stack smoke test runs Debian's nginx itself (own prefix and ports; never the system service).
nginx:
	@command -v nginx >/dev/null || [ -x /usr/sbin/nginx ] || { \
		echo "Installing nginx for the production-stack smoke test (apt-get)"; \
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq nginx-light >/dev/null; }

setup: $(STAMP) $(ASSETS)

## First command of the README: set up, migrate, seed the demo and serve on http://127.0.0.1:8000
run: setup
	$(FLASK) db upgrade
	$(FLASK) seed-demo
	@echo "Serving Handover on http://127.0.0.1:8000 (Ctrl-C to stop)"
	$(FLASK) run --host 127.0.0.1 --port 8000

## Second command of the README: every check, on SQLite, then the production-stack smoke test
test: setup chromium lint typecheck pytest smoke

lint: setup
	$(BIN)/ruff check .
	$(BIN)/ruff format --check portal tests bench

typecheck: setup
	$(BIN)/mypy

pytest: setup chromium
	$(BIN)/pytest -n $(PYTEST_WORKERS) $(PYTEST_ARGS)

## nginx + two gunicorn instances + PostgreSQL + Redis + S3 on 127.0.0.1, driven over HTTPS
smoke: setup nginx
	HANDOVER_DEPLOY_SMOKE=1 $(BIN)/pytest -p no:xdist -m deploy tests/deploy

## The same suite against PostgreSQL (CI runs this too)
pytest-postgres: setup chromium
	PORTAL_TEST_DATABASE_URL=$${PORTAL_TEST_DATABASE_URL:-postgresql+psycopg://postgres@127.0.0.1:5432/test} \
		$(BIN)/pytest -n $(PYTEST_WORKERS) $(PYTEST_ARGS)

requirements:
	$(BIN)/python -m pip install --quiet pip-tools
	$(BIN)/pip-compile -q --strip-extras --no-emit-index-url --no-emit-find-links -o requirements.txt requirements.in
	$(BIN)/pip-compile -q --strip-extras --no-emit-index-url --no-emit-find-links -o requirements-dev.txt requirements-dev.in

migration: setup
	$(FLASK) db migrate -m "$(m)"

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache node_modules static/build
