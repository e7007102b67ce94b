# Two entry points: `make demo` (install, then UniGloR's three rows of the APW ablation, demo profile) and
# `make test` (install, then the whole test suite). Each creates the virtual environment it needs.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed-$(shell cksum pyproject.toml | cut -d' ' -f1)

.PHONY: install demo test mlflow clean

install: $(STAMP)

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	# Pinned first, so pip takes the local CPU wheel instead of downloading CUDA packages.
	$(PY) -m pip install -q torch==2.13.0
	$(PY) -m pip install -q -e '.[test]'
	rm -f $(VENV)/.installed-*
	touch $@

demo: $(STAMP)
	$(PY) harness/run_ablation.py apw --profile demo --only none,fpw,apw

test: $(STAMP)
	$(PY) -m pytest -q --timeout 1800

clean:
	rm -rf $(VENV) results

# The MLflow UI of ./results on 127.0.0.1:5000, after the URL of each experiment's runs table (as a run prints it).
mlflow: $(STAMP)
	@test ! -f results/mlflow.db || $(PY) -c 'import sys; from harness import tracking; \
	print("Runs tables (open one):", *tracking.runs_views(sys.argv[1], "http://127.0.0.1:5000"), sep="\n  ")' \
	sqlite:///$(CURDIR)/results/mlflow.db
	$(VENV)/bin/mlflow ui --backend-store-uri sqlite:///$(CURDIR)/results/mlflow.db --host 127.0.0.1 --port 5000
