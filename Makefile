# skphotoz developer commands. `make demo` and `make test` bootstrap .venv from pyproject.toml.
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed
# CI and laptops: 2 threads unless the caller says otherwise.
export OMP_NUM_THREADS ?= 2

.PHONY: demo test test-minimum bench lint format venv clean

venv: $(STAMP)

# Re-installs only when pyproject.toml changes; a second run with nothing changed is instant.
$(STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[test,dev,plot,explore]'
	touch $(STAMP)

demo: $(STAMP)
	$(VENV)/bin/skphotoz demo

test: $(STAMP)
	$(PY) -m pytest -q --durations=10

# The fast tests on the oldest releases pyproject.toml allows (torch/torchvision excepted: see
# .ci/minimum_versions.py), in a separate environment.
MIN_VENV  := .venv-min
MIN_TESTS ?= tests/test_metrics.py tests/data tests/datasets tests/nn tests/test_preprocessing.py \
	tests/test_search.py tests/test_embedder.py tests/test_regressor.py tests/test_cli.py \
	tests/test_cli_photoz.py tests/test_input_errors.py tests/test_model_selection.py \
	tests/test_properties_search.py tests/test_properties_photometry.py tests/test_packaging.py \
	tests/test_baselines.py tests/test_io.py tests/test_silent_inputs.py tests/test_selection.py \
	tests/test_data_pipeline.py
test-minimum:
	test -x $(MIN_VENV)/bin/python || $(PYTHON) -m venv $(MIN_VENV)
	$(MIN_VENV)/bin/python -m pip install --quiet --upgrade pip
	$(PYTHON) .ci/minimum_versions.py > $(MIN_VENV)/constraints.txt
	$(MIN_VENV)/bin/python -m pip install --quiet -c $(MIN_VENV)/constraints.txt -e . \
		"pytest>=7.4" "hypothesis>=6.80" "psutil>=5.9"
	$(MIN_VENV)/bin/python -m pip list 2>/dev/null | grep -iE '^(numpy|scipy|scikit-learn|joblib|skops|h5py|tqdm|torch|torchvision) '
	$(MIN_VENV)/bin/python -m pytest -q -p no:cacheprovider $(MIN_TESTS)

bench: $(STAMP)
	@for script in benchmarks/*.py; do echo "== $$script"; $(PY) $$script || exit 1; done

lint: $(STAMP)
	$(VENV)/bin/ruff check skphotoz tests benchmarks
	$(VENV)/bin/ruff format --check skphotoz tests benchmarks

format: $(STAMP)
	$(VENV)/bin/ruff check --fix skphotoz tests benchmarks
	$(VENV)/bin/ruff format skphotoz tests benchmarks

clean:
	rm -rf $(VENV) $(MIN_VENV) build *.egg-info .pytest_cache .ruff_cache
