# greenprof: the two commands of the README.
#   make demo   a real demo training, profiled, into the default database
#   make test   everything the tests need, then lint, types and tests
# Both create or reuse .venv and install what they need.

PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
PIP    := $(PY) -m pip
# torch 2.13.0 is the CPU build on our machines; an unpinned torch pulls a multi-GB CUDA build.
TORCH  := torch==2.13.0
export TF_CPP_MIN_LOG_LEVEL := 3

.PHONY: demo test lint typecheck pytest bench clean system-deps

$(VENV)/bin/python:
	$(PYTHON) -m venv $(VENV)
	$(PIP) install -q --upgrade pip

$(VENV)/.demo-installed: pyproject.toml | $(VENV)/bin/python
	$(PIP) install -q -e '.[torch]' '$(TORCH)'
	touch $@

$(VENV)/.test-installed: pyproject.toml | $(VENV)/bin/python
	$(PIP) install -q -e '.[torch,tensorflow,tui,prometheus,postgres]' '$(TORCH)' --group dev \
		lightning transformers accelerate
	touch $@ $(VENV)/.demo-installed

demo: $(VENV)/.demo-installed
	$(VENV)/bin/greenprof demo

# Prometheus's promtool and server (Debian) back the exporter tests; tmux the TUI end-to-end test.
system-deps:
	@command -v promtool >/dev/null && command -v prometheus >/dev/null && command -v tmux >/dev/null \
		|| { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq prometheus tmux >/dev/null; }

lint: $(VENV)/.test-installed
	$(VENV)/bin/ruff check greenprof tests benchmarks tools
	$(VENV)/bin/ruff format --check greenprof tests benchmarks tools
	$(VENV)/bin/lint-imports

typecheck: $(VENV)/.test-installed
	$(VENV)/bin/mypy greenprof

pytest: $(VENV)/.test-installed system-deps
	$(VENV)/bin/pytest -q

test: lint typecheck pytest

bench: $(VENV)/.test-installed
	$(PY) benchmarks/run_all.py

clean:
	rm -rf $(VENV) .mypy_cache .ruff_cache .pytest_cache
