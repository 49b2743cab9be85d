# One-command set-up: a virtual environment with torch==2.13.0 installed before the package.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
TORCH_VERSION ?= 2.13.0
# Extra pip flags for the torch install, e.g. a CPU-only package index on machines without a GPU.
TORCH_PIP_FLAGS ?=

.PHONY: install demo test test-slow bench clean

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet torch==$(TORCH_VERSION) $(TORCH_PIP_FLAGS)
	$(PY) -m pip install --quiet -e '.[test]'
	touch $@

install: $(VENV)/.installed

demo: install
	$(VENV)/bin/meanteacher demo

test: install
	$(PY) -m pytest -q

test-slow: install
	$(PY) -m pytest -q -m slow

bench: install
	$(PY) -m benchmarks.speed

clean:
	rm -rf $(VENV) runs .pytest_cache
