# Event Trail. A newcomer needs two commands: `make dev` and `make test`.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
MANAGE := cd app && ../$(BIN)/python manage.py
HOST ?= 127.0.0.1
PORT ?= 8000
DEV_EVENTS ?= 50000
# The stamp changes whenever the pins change, so a second run skips the install.
STAMP := $(VENV)/.installed-$(shell cat pyproject.toml constraints.txt 2>/dev/null | md5sum | cut -c1-12)

.PHONY: help install dev seed test lint up down e2e engine frontend bench clean

help:
	@echo "make dev      - install, migrate, seed demo data and a month of activity, serve http://$(HOST):$(PORT)"
	@echo "make test     - the whole test suite (starts its own search engine and PostgreSQL)"
	@echo "make lint     - ruff, plus mypy on app/eventtrail"
	@echo "make up       - docker compose up the full ELK stack (writes a random .env first)"
	@echo "make down     - docker compose down"
	@echo "make e2e      - machines with Docker: bring the stack up and prove a click reaches ES and the API"
	@echo "make engine   - run the local search engine (OpenSearch from Maven Central) in the foreground"
	@echo "make frontend - rebuild the browser script from frontend/ (the build is committed)"
	@echo "make bench    - run the benchmarks in bench/"

$(STAMP): pyproject.toml constraints.txt
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -c constraints.txt -e '.[dev]'
	rm -f $(VENV)/.installed-* && touch $@

install: $(STAMP)

frontend/node_modules/.package-lock.json: frontend/package-lock.json
	cd frontend && npm ci --no-audit --no-fund --loglevel=error

frontend: frontend/node_modules/.package-lock.json
	cd frontend && npm run build

seed: install
	$(MANAGE) migrate --noinput -v0
	$(MANAGE) migrate --database events --noinput -v0
	$(MANAGE) seed_demo
	$(MANAGE) generate_activity --days 30 --events $(DEV_EVENTS) --seed 1 --if-empty

dev: seed
	@echo "Open http://$(HOST):$(PORT)/ - analytics at /analytics/me/, the API at /api/events/ (docs: /api/docs/), delivery counters at /eventtrail/stats/ (staff)"
	$(MANAGE) runserver $(HOST):$(PORT)

test: install frontend/node_modules/.package-lock.json
	$(BIN)/pytest

lint: install
	$(BIN)/ruff check app tests bench scripts kibana
	$(BIN)/mypy app/eventtrail

engine: install
	$(BIN)/python -m tests.support.engine

bench: install
	@for script in capture e2e delivery api analytics; do \
	  echo "load average before $$script.py: $$(cut -d' ' -f1-3 /proc/loadavg)"; \
	  $(BIN)/python bench/$$script.py || exit 1; \
	  echo "load average after $$script.py: $$(cut -d' ' -f1-3 /proc/loadavg)"; \
	done

up:
	$(PYTHON) scripts/make_env.py
	docker compose up

down:
	docker compose down

e2e: install
	$(BIN)/python scripts/e2e.py

clean:
	rm -rf var test-artifacts
