# driftline: `make demo` (the main job) and `make test` (the tests) do all set-up themselves.
SHELL := /bin/bash
VENV ?= .venv
PY := $(VENV)/bin/python
DL := $(VENV)/bin/driftline
PYTEST_ARGS ?=
# The tests' own stack when DRIFTLINE_TEST_KAFKA / DRIFTLINE_TEST_REDIS name one (as tests/conftest.py reads them):
# `make test` then starts (or reuses) that one, never the default 9092/6379 (session 41).
TEST_STACK := $(if $(DRIFTLINE_TEST_KAFKA),--bootstrap $(DRIFTLINE_TEST_KAFKA)) $(if $(DRIFTLINE_TEST_REDIS),--redis-url $(DRIFTLINE_TEST_REDIS))

.PHONY: setup system-deps test-deps demo test test-fast test-cluster lint format stack-up stack-down stack-status bench clean doctor

setup: system-deps $(VENV)/.installed

# Debian packages: what the local stack needs (redis-server, Java 17, Maven), and for `make test` only what the
# tests add (promtool for the alert rules, kcat for examples/README.md's one-liners, chromium + chromium-driver for
# the console's browser tests). A non-root user without the test tools can still run `make demo`.
RUNTIME_DEPS := redis-server:redis-server java:openjdk-17-jre-headless mvn:maven
TEST_DEPS := promtool:prometheus kcat:kcat chromium:chromium chromedriver:chromium-driver

define apt_install
	@missing=""; \
	for pair in $(1); do command -v "$${pair%%:*}" >/dev/null || missing="$$missing $${pair#*:}"; done; \
	if [ -n "$$missing" ]; then \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
	    echo "installing:$$missing"; \
	    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$missing >/dev/null; \
	  else \
	    echo "missing:$$missing. Install them (Debian: sudo apt-get install$$missing) or use 'docker compose up'." >&2; exit 1; \
	  fi; \
	fi
endef

system-deps:
	$(call apt_install,$(RUNTIME_DEPS))

test-deps:
	$(call apt_install,$(TEST_DEPS))

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

doctor: setup
	$(DL) doctor

demo: setup
	$(DL) demo $(DEMO_ARGS)

test: setup test-deps
	$(DL) $(TEST_STACK) stack up
	$(PY) -m pytest --durations=25 $(PYTEST_ARGS)

# Only the fault tests on a private three-node cluster (also part of `make test`).
test-cluster: setup test-deps
	$(DL) $(TEST_STACK) stack up
	$(PY) -m pytest -m cluster $(PYTEST_ARGS)

test-fast: setup test-deps
	$(PY) -m pytest -m "not kafka and not faults" $(PYTEST_ARGS)

lint: setup
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/mypy
	$(VENV)/bin/lint-imports

format: setup
	$(VENV)/bin/ruff format .
	$(VENV)/bin/ruff check --fix .

bench: setup
	$(DL) stack up
	$(DL) bench $(BENCH_ARGS)

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache *.egg-info
