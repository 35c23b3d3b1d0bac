# OW Victory Counter — every command a developer or streamer needs.
# `make run` and `make test` work as the first command on a fresh clone.

SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
PIP := $(BIN)/pip install -q --disable-pip-version-check -c constraints.txt
PYTEST_ARGS ?=

.PHONY: help setup setup-dev setup-train system-run system-test system-train \
        run demo test test-unit test-training test-integration test-e2e test-compose screenshots lint up down train eval eval-quick bench \
        clean clean-compose

help:
	@echo "make run        start Redis + all services (Ctrl+C stops)"
	@echo "make demo       watch it count a bundled replay, no OBS needed"
	@echo "make test       install everything the tests need and run all tiers"
	@echo "make test-unit  the fast tier: pure rules and contracts, no network (< 1 min)"
	@echo "make test-training  the shipped model and the training code (synthetic frames, evaluation)"
	@echo "make test-compose  the compose tier alone: real dockerd, Dockerfile and compose.yaml (root)"
	@echo "make lint       ruff + mypy --strict"
	@echo "make up/down    docker compose up -d / down"
	@echo "make train      train and export the model (installs torch CPU)"
	@echo "make eval       evaluate the shipped model, rewrite all of models/MODEL_CARD.md (~40 min, ~80 min the first time)"
	@echo "make eval-quick  a quick evaluation, card in artifacts/MODEL_CARD.quick.md (~10 min)"
	@echo "make screenshots  refresh the overlay theme pictures in docs/img"
	@echo "make bench      run the benchmarks (capture, inference, gateway, e2e, resources)"
	@echo "make clean      remove .venv and the caches in this checkout"
	@echo "make clean-compose  remove the compose tier's cache (~/.cache/owc-compose, about 1.6 GB)"

$(VENV)/.runtime: pyproject.toml constraints.txt | system-run
	@$(PYTHON) -c 'import sys; assert sys.version_info >= (3, 11), "Python 3.11+ is required"'
	@test -x $(BIN)/pip || { rm -rf $(VENV); $(PYTHON) -m venv $(VENV); }
	$(PIP) --upgrade pip
	$(PIP) -e .
	@touch $@

$(VENV)/.dev: $(VENV)/.runtime
	$(PIP) -e '.[dev]'
	@touch $@

$(VENV)/.train: $(VENV)/.runtime
	$(PIP) -e '.[train]'
	@touch $@

setup: $(VENV)/.runtime system-run
setup-dev: $(VENV)/.dev system-test
setup-train: $(VENV)/.train system-train

system-run:
	@scripts/system-deps.sh run
system-test:
	@scripts/system-deps.sh test
system-train:
	@scripts/system-deps.sh train

run: setup
	$(BIN)/owc run

demo: setup
	$(BIN)/owc demo

lint: $(VENV)/.dev
	$(BIN)/ruff check services training tools tests
	$(BIN)/mypy services training tools

# pytest exits 5 when it collects no test: treat that as a failure, deliberately.
test: setup-dev lint
	@$(BIN)/pytest $(PYTEST_ARGS) tests; s=$$?; \
	  if [ $$s -eq 5 ]; then echo "make test: pytest collected no tests" >&2; exit 1; fi; exit $$s

test-unit: $(VENV)/.dev
	$(BIN)/pytest $(PYTEST_ARGS) tests/unit

# the shipped model and the training package (no torch): minutes of CPU, so apart from the unit tier
test-training: $(VENV)/.dev
	$(BIN)/pytest $(PYTEST_ARGS) tests/training

test-integration: setup-dev
	$(BIN)/pytest $(PYTEST_ARGS) tests/integration

test-e2e: setup-dev
	$(BIN)/pytest $(PYTEST_ARGS) tests/e2e

# Starts its own dockerd (root only; skipped otherwise, a failure under CI=true), builds the
# image with local Debian base images, runs compose.yaml, and leaves the machine as it was.
# the pictures in docs/img (one per overlay theme), made by the browser tests
screenshots: setup-dev
	OWC_SCREENSHOTS=$(CURDIR)/docs/img $(BIN)/pytest -q tests/e2e/test_gateway_browser.py -k "theme_pictures"

test-compose: setup-dev
	$(BIN)/pytest $(PYTEST_ARGS) tests/compose

up:
	docker compose up -d
down:
	docker compose down

train: setup-train
	$(BIN)/python -m training.train

# the card's settings (training.evaluate.FULL): every section of models/MODEL_CARD.md, as the card says
eval: setup-train
	$(BIN)/python -m training.evaluate --json artifacts/eval-report.json

eval-quick: setup-train
	$(BIN)/python -m training.evaluate --quick --json artifacts/eval-quick.json

bench: setup-dev
	$(BIN)/owc bench inference
	$(BIN)/owc bench capture
	$(BIN)/owc bench gateway
	$(BIN)/owc bench e2e --with-actions
	$(BIN)/owc bench resources

# the compose tier's Docker engine data, base images and wheels (tests/support/docker_engine.py)
COMPOSE_CACHE := $(or $(OWC_COMPOSE_CACHE),$(or $(XDG_CACHE_HOME),$(HOME)/.cache)/owc-compose)

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache artifacts
	@if [ -d "$(COMPOSE_CACHE)" ]; then \
	  echo "the compose tier's cache $(COMPOSE_CACHE) is kept ($$(du -sh "$(COMPOSE_CACHE)" | cut -f1)): make clean-compose removes it"; fi

clean-compose:
	@if [ -d "$(COMPOSE_CACHE)" ]; then \
	  echo "removing $(COMPOSE_CACHE) ($$(du -sh "$(COMPOSE_CACHE)" | cut -f1))"; rm -rf "$(COMPOSE_CACHE)"; \
	else echo "no compose cache at $(COMPOSE_CACHE)"; fi
