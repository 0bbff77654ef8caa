# Two front-door targets: `make run` and `make test`. Everything they need is installed here.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: run test lint install system-packages bench-hop bench clean

# PROVIDERS=my-providers.yaml: your own providers, served beside the bundled local ones.
run: install
	$(BIN)/python deploy/local/run.py $(if $(PROVIDERS),--providers '$(PROVIDERS)') $(ARGS)

test: install
	$(BIN)/python -m pytest

lint: install
	$(BIN)/ruff check gateway releases tests deploy benchmarks
	$(BIN)/ruff format --check gateway releases tests deploy benchmarks
	$(BIN)/mypy

install: system-packages $(STAMP)

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[test]'
	touch $(STAMP)

# System packages, installed only where missing, with one `apt-get update`:
# redis-server (tests and `make run` start their own), postgresql (the lineage store's tests
# start their own cluster), chromium and its driver (the console's browser tests) and venv
# support for Debian's python3.
system-packages:
	@missing=""; \
	command -v redis-server >/dev/null 2>&1 || missing="$$missing redis-server"; \
	ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || missing="$$missing postgresql"; \
	command -v chromium >/dev/null 2>&1 || missing="$$missing chromium"; \
	command -v chromedriver >/dev/null 2>&1 || missing="$$missing chromium-driver"; \
	$(PYTHON) -c 'import ensurepip, venv' >/dev/null 2>&1 || missing="$$missing python3-venv"; \
	if [ -n "$$missing" ]; then \
		echo "installing:$$missing (apt)"; \
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$missing; \
	fi

# Hand-run benchmark of upstream HTTP clients (benchmarks/RESULTS.md); needs wrk and httpx-aiohttp.
bench-hop: install
	@command -v wrk >/dev/null 2>&1 || { apt-get update -qq && apt-get install -y -qq wrk; }
	$(BIN)/pip install --quiet httpx-aiohttp
	$(BIN)/python benchmarks/hop/run.py

# Hand-run benchmark of the gateway against nginx and a bare Python hop (benchmarks/RESULTS.md):
# throughput, rollback propagation, lineage cost, workers, the translated and rate-limited
# paths, fan-out to 8 replicas, memory over 1M requests, uvicorn against granian, body and
# answer sizes, then printed only: JSON work, CPU by layer, the gateway's protocol and 5,000
# open streams (37 minutes in the last recorded run; ARGS="--skip-memory --skip-bodies ..."
# leaves steps out, see README "Benchmarks"; granian and py-spy come from the `bench` extra).
bench: install
	@missing=""; \
	command -v wrk >/dev/null 2>&1 || missing="$$missing wrk"; \
	command -v nginx >/dev/null 2>&1 || [ -x /usr/sbin/nginx ] || missing="$$missing nginx"; \
	if [ -n "$$missing" ]; then \
		echo "installing:$$missing (apt)"; \
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$missing; \
	fi
	@{ $(BIN)/python -c 'import granian' 2>/dev/null && [ -x $(BIN)/py-spy ]; } || $(BIN)/pip install --quiet -e '.[test,bench]'
	$(BIN)/python benchmarks/gateway/run.py $(ARGS)

clean:
	rm -rf $(VENV) .run
