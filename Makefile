# skphotoz developer commands. `make demo` and `make test` bootstrap .venv from pyproject.toml.
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed
# CI and laptops: 2 threads unless the caller says otherwise.
export OMP_NUM_THREADS ?= 2

.PHONY: demo test bench lint format venv clean

venv: $(STAMP)

# Re-installs only when pyproject.toml changes; a second run with nothing changed is instant.
$(STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[test,dev,plot]'
	touch $(STAMP)

demo: $(STAMP)
	$(VENV)/bin/skphotoz demo

test: $(STAMP)
	$(PY) -m pytest -q --durations=10

bench: $(STAMP)
	@for script in benchmarks/*.py; do echo "== $$script"; $(PY) $$script || exit 1; done

lint: $(STAMP)
	$(VENV)/bin/ruff check skphotoz tests benchmarks
	$(VENV)/bin/ruff format --check skphotoz tests benchmarks

format: $(STAMP)
	$(VENV)/bin/ruff check --fix skphotoz tests benchmarks
	$(VENV)/bin/ruff format skphotoz tests benchmarks

clean:
	rm -rf $(VENV) build *.egg-info .pytest_cache .ruff_cache
