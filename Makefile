# One-command set-up: a virtual environment with torch==2.13.0 installed before the package.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
TORCH_VERSION ?= 2.13.0
# Extra pip flags for the torch install, e.g. a CPU-only package index on machines without a GPU.
TORCH_PIP_FLAGS ?=

.PHONY: install demo test test-kernels test-slow lint bench clean

# Tests whose numbers depend on which CPU kernels PyTorch picks: run again under other kernel sets, and with the
# automatic settings seeing a CPU with bf16 in hardware (the suite otherwise pins one without).
SENSITIVE_TESTS = tests/test_processor.py tests/test_capture_safety.py tests/test_optim.py tests/test_regression.py tests/test_distributed.py tests/test_train.py
KERNEL_SETS = ATEN_CPU_CAPABILITY=avx2 ONEDNN_MAX_CPU_ISA=AVX2 MEANTEACHER_NATIVE_BF16=1
# Test processes side by side (pytest-xdist), one thread each (more would only contend for the cores), each test
# file in one of them so that a file's fixtures are built once.
TEST_WORKERS ?= 2
PYTEST := OMP_NUM_THREADS=1 $(PY) -m pytest -q -n $(TEST_WORKERS) --dist loadfile

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet torch==$(TORCH_VERSION) $(TORCH_PIP_FLAGS)
	$(PY) -m pip install --quiet -e '.[test]'
	touch $@

install: $(VENV)/.installed

demo: install
	$(VENV)/bin/meanteacher demo

test: install
	$(PYTEST)

test-kernels: install
	set -e; for setting in $(KERNEL_SETS); do echo "== $$setting"; env $$setting $(PYTEST) $(SENSITIVE_TESTS); done

lint: install
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

test-slow: install
	$(PYTEST) -m slow

bench: install
	$(PY) -m benchmarks.speed

clean:
	rm -rf $(VENV) runs .pytest_cache
