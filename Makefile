# Event Trail: the two commands a newcomer needs are `make dev` and `make test`.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
MANAGE := cd app && ../$(BIN)/python manage.py
HOST ?= 127.0.0.1
PORT ?= 8000
# The stamp changes whenever the pins change, so a second run skips the install.
STAMP := $(VENV)/.installed-$(shell cat pyproject.toml constraints.txt 2>/dev/null | md5sum | cut -c1-12)

.PHONY: help install dev seed serve test lint up down e2e engine clean

help:
	@echo "make dev    - install, migrate, seed demo data and serve http://$(HOST):$(PORT) (embedded store)"
	@echo "make test   - the whole test suite"
	@echo "make lint   - ruff, plus mypy on app/eventtrail"
	@echo "make up     - docker compose up the full ELK stack (writes .env on first run)"
	@echo "make down   - docker compose down"
	@echo "make e2e    - bring the stack up and prove a click reaches Elasticsearch and the API"
	@echo "make engine - run the local search engine in the foreground"

$(STAMP): pyproject.toml constraints.txt
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -c constraints.txt -e '.[dev]'
	rm -f $(VENV)/.installed-* && touch $@

install: $(STAMP)

seed: install
	$(MANAGE) migrate --noinput -v0
	$(MANAGE) migrate --database events --noinput -v0
	$(MANAGE) seed_demo

dev: seed
	$(MANAGE) runserver $(HOST):$(PORT)

test: install
	$(BIN)/pytest

lint: install
	$(BIN)/ruff check app tests bench
	$(BIN)/mypy app/eventtrail

up:
	docker compose up

down:
	docker compose down

clean:
	rm -rf var test-artifacts
