# prunebound -- two commands on a fresh machine: `make demo` and `make test`.
PYTHON ?= python3.11
TORCH ?= torch==2.13.0
VENV ?= .venv
PY := $(VENV)/bin/python
PYTEST_ARGS ?=
JOBS ?= 2

.PHONY: demo test test-all bench lint verify figures clean venv

$(VENV)/.installed: pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip >/dev/null 2>&1 || true
	$(PY) -m pip install -q "$(TORCH)"
	$(PY) -m pip install -q -e '.[dev,dist]' pytest-xdist
	touch $@

venv: $(VENV)/.installed

demo: venv
	$(VENV)/bin/prunebound demo --out demo_out

test: venv
	$(PY) -m pytest -q -n $(JOBS) --timeout=900 $(PYTEST_ARGS)

test-all: venv
	$(PY) -m pytest -q -n $(JOBS) -m "" $(PYTEST_ARGS)

verify: venv
	PRUNEBOUND_FULL=1 $(PY) -m pytest -q -n $(JOBS) -m "statistical or statistical_full" $(PYTEST_ARGS)

bench: venv
	$(PY) -m pytest -q benchmarks --benchmark-only -p no:xdist -o addopts="" $(PYTEST_ARGS)

lint: venv
	$(VENV)/bin/ruff check .

figures: venv
	$(VENV)/bin/prunebound repro figures --out docs/figures

clean:
	rm -rf demo_out out .pytest_cache .benchmarks
