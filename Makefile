# Two commands for a newcomer: `make up` runs Keel, `make test` runs the suite.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
RUNTIME := $(VENV)/.installed-runtime
DEV := $(VENV)/.installed-dev

.PHONY: up test lint install clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --upgrade pip

# torch first, pinned to the local CPU build: a looser pin pulls several GB of CUDA packages.
$(RUNTIME): pyproject.toml | $(BIN)/python
	$(BIN)/pip install torch==2.13.0
	$(BIN)/pip install -e .
	touch $(RUNTIME)

# The test tools add llama.cpp's server (built from source once; pip caches the wheel). Built for
# any x86-64, not this CPU's every extension: a native build crashed in ggml on some of these
# machines (a general protection fault on the first completion).
$(DEV): $(RUNTIME)
	CMAKE_ARGS="-DGGML_NATIVE=OFF" $(BIN)/pip install -e ".[dev]"
	touch $(DEV)

# The browser tests drive Debian's Chromium; `playwright install` would download its own. Needs root, once.
/usr/bin/chromium:
	apt-get update && apt-get install -y --no-install-recommends chromium

install: $(DEV)

up: $(RUNTIME)
	$(BIN)/keel up

test: $(DEV) /usr/bin/chromium
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy
	$(BIN)/lint-imports
	$(BIN)/python -m pytest

lint: $(DEV)
	$(BIN)/ruff check .
	$(BIN)/mypy
	$(BIN)/lint-imports

clean:
	rm -rf $(VENV) .keel
