# CMRRisk developer commands. `make test` is what CI runs (.ci/run).
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.cmrrisk-setup

.PHONY: setup test bench demo clean

setup: $(STAMP)

# Idempotent: re-runs only when pyproject.toml changes. torch==2.13.0 first (CPU wheel on disk).
$(STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q torch==2.13.0
	$(PY) -m pip install -q -e '.[predict,test]'
	touch $(STAMP)

test: setup
	$(PY) -m pytest -q Testing

# The whole pipeline on a generated synthetic cohort -> demo-output/ (report.html, metrics.json,
# tables/, heatmaps/, scenes/*.mrb). Options: make demo DEMO_ARGS="--n 60 --seed 1"
demo: setup
	$(VENV)/bin/cmrrisk demo --out demo-output $(DEMO_ARGS)

bench: setup
	$(PY) bench/bench_segment.py --model cine
	$(PY) bench/bench_segment.py --model lge

clean:
	rm -rf $(VENV) .pytest_cache build *.egg-info CMRRiskExtension/*.egg-info demo-output demo-output.previous
