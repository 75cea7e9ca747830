# The course's commands. Each target sets up its own virtual environment first, so a fresh
# clone needs nothing but Python 3.11+ and make.  See README.md.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(abspath $(VENV))/bin
# The CPU build of torch. Install it before the package, or pip pulls a multi-GB CUDA build.
# With a GPU: make test TORCH=torch
TORCH  ?= torch==2.13.0
export PATH := $(BIN):$(PATH)

.PHONY: setup book test lint bench clean

setup: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check "$(TORCH)"
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -e ".[dev]"
	touch $@

## book: build the HTML book into _build/html (executes every lab; warnings are errors)
book: setup
	$(BIN)/jupyter-book build . -W -n --keep-going

## test: unit tests and every lab notebook, executed start to finish (pytest --nbval)
test: setup
	$(BIN)/python -m pytest --nbval

lint: setup
	$(BIN)/ruff check src tests labs
	$(BIN)/ruff format --check src tests

## bench: the speed benchmarks quoted in the closing notes and labs
bench: setup
	$(BIN)/python -m effllm.bench all

clean:
	rm -rf _build .pytest_cache
