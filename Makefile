# The course's commands. Each target sets up its own virtual environment first, so a fresh
# clone needs nothing but Python 3.11+ and make.  See README.md.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(abspath $(VENV))/bin
# torch is installed before the package, from PyTorch's CPU wheel index (TORCH_INDEX): on Linux
# the default index (PyPI) has only the CUDA build, several GB. Where that index is unreachable
# (10 s timeout, no retries), pip falls back to the default index. With an NVIDIA GPU:
# make setup TORCH=torch TORCH_INDEX=   (the CUDA build from the default index).
TORCH       ?= torch==2.13.0
TORCH_INDEX ?= https://download.pytorch.org/whl/cpu
PIP_INSTALL  = $(BIN)/python -m pip install --quiet --disable-pip-version-check
export PATH := $(BIN):$(PATH)

.PHONY: setup book test browser-test lint bench mutation clean

setup: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(if $(TORCH_INDEX),$(PIP_INSTALL) --index-url $(TORCH_INDEX) --timeout 10 --retries 0 "$(TORCH)" \
	    || { echo "no $(TORCH) from $(TORCH_INDEX): trying the default index"; $(PIP_INSTALL) "$(TORCH)"; }, \
	    $(PIP_INSTALL) "$(TORCH)")
	$(PIP_INSTALL) -e ".[dev]"
	touch $@

## book: build the HTML book into _build/html (executes every lab; warnings are errors)
book: setup
	$(BIN)/jupyter-book build . -W -n --keep-going

## test: unit tests and every lab notebook, full and exercise edition, executed start to finish
## (pytest --nbval), on JOBS processes: each lab computes on one thread, so two cores run two labs
JOBS ?= 2
test: setup
	$(BIN)/python -m pytest --nbval -n $(JOBS) --dist loadfile

## browser-test: open every page of the built book in headless Chromium (after `make book`):
## console errors, images, links and anchors, Colab links, search, next-page order, a phone's
## width, axe-core's WCAG 2 A/AA rules in light and dark mode; screenshots in _build/screenshots/.
## SEARCH=word picks the word the search must find. axe-core: the version pinned in
## tests_browser/package-lock.json, installed by npm into tests_browser/node_modules.
browser-test: setup tests_browser/node_modules/.package-lock.json
	@test -f _build/html/searchindex.js || { echo "no built book in _build/html: run make book first"; exit 1; }
	@test -x /usr/bin/chromium -a -x /usr/bin/chromedriver || { echo "needs Debian's chromium: apt-get install -y chromium chromium-driver"; exit 1; }
	$(BIN)/python -m pytest tests_browser $(if $(SEARCH),--search-term "$(SEARCH)")

tests_browser/node_modules/.package-lock.json: tests_browser/package-lock.json
	@command -v npm >/dev/null || { echo "needs npm for axe-core: apt-get install -y npm"; exit 1; }
	npm ci --prefix tests_browser --no-audit --no-fund

lint: setup
	$(BIN)/ruff check src tools tests tests_browser labs book/_ext
	$(BIN)/ruff format --check src tools tests tests_browser book/_ext

## bench: the speed benchmarks quoted in the closing notes and labs
bench: setup
	$(BIN)/python tools/bench.py all

## mutation: mutation testing of attention, moe, grpo and markets against their unit tests (mutmut),
## a seeded sample of SAMPLE mutants per module (0 = all), one score per module; about 20 min on
## 2 cores with the default 60. Not part of test or CI. See CONTRIBUTING.md, "Mutation testing".
SAMPLE ?= 60
mutation: setup
	$(BIN)/python tools/mutation.py --sample $(SAMPLE) $(if $(MODULES),--modules $(MODULES))

clean:
	rm -rf _build .pytest_cache tests_browser/node_modules mutants
