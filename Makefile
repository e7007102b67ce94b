# Two entry points: `make demo` (install, then the APW ablation on the synthetic corpus, demo profile) and
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
	$(PY) harness/run_ablation.py apw --profile demo

test: $(STAMP)
	$(PY) -m pytest -q --timeout 1800

clean:
	rm -rf $(VENV) results

# The MLflow UI of ./results on 127.0.0.1:5000; the URL of an experiment's runs table is the one a run prints.
mlflow: $(STAMP)
	@echo "An experiment's runs: http://127.0.0.1:5000/#/experiments/ID/runs?workflowType=machine_learning&viewStateShareKey=harness-runs"
	$(VENV)/bin/mlflow ui --backend-store-uri sqlite:///$(CURDIR)/results/mlflow.db --host 127.0.0.1 --port 5000
