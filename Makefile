# driftline: `make demo` (the main job) and `make test` (the tests) do all set-up themselves.
SHELL := /bin/bash
VENV ?= .venv
PY := $(VENV)/bin/python
DL := $(VENV)/bin/driftline
PYTEST_ARGS ?=

.PHONY: setup system-deps demo test test-fast test-cluster lint format stack-up stack-down stack-status bench clean

setup: system-deps $(VENV)/.installed

# Debian packages the local stack and the rule tests need: redis-server, promtool (prometheus), Java 17, Maven;
# chromium and chromium-driver for the console's browser tests.
system-deps:
	@missing=""; \
	command -v redis-server >/dev/null || missing="$$missing redis-server"; \
	command -v promtool >/dev/null || missing="$$missing prometheus"; \
	command -v java >/dev/null || missing="$$missing openjdk-17-jre-headless"; \
	command -v mvn >/dev/null || missing="$$missing maven"; \
	command -v chromium >/dev/null || missing="$$missing chromium"; \
	command -v chromedriver >/dev/null || missing="$$missing chromium-driver"; \
	if [ -n "$$missing" ]; then \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
	    echo "installing:$$missing"; \
	    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$missing >/dev/null; \
	  else \
	    echo "missing:$$missing. Install them (Debian: sudo apt-get install$$missing) or use 'docker compose up'." >&2; exit 1; \
	  fi; \
	fi

$(VENV)/.installed: pyproject.toml constraints.txt
	test -x $(PY) || python3 -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -c constraints.txt -e ".[dev,fast]"
	touch $@

stack-up: setup
	$(DL) stack up

stack-down:
	$(DL) stack down

stack-status:
	$(DL) stack status

demo: setup
	$(DL) demo $(DEMO_ARGS)

test: setup
	$(DL) stack up
	$(PY) -m pytest $(PYTEST_ARGS)

# Only the fault tests on a private three-node cluster (also part of `make test`).
test-cluster: setup
	$(DL) stack up
	$(PY) -m pytest -m cluster $(PYTEST_ARGS)

test-fast: setup
	$(PY) -m pytest -m "not kafka and not faults" $(PYTEST_ARGS)

lint: setup
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/mypy

format: setup
	$(VENV)/bin/ruff format .
	$(VENV)/bin/ruff check --fix .

bench: setup
	$(DL) stack up
	$(DL) bench $(BENCH_ARGS)

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache *.egg-info
