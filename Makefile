# CMRRisk developer commands. `make test` is what CI runs (.ci/run).
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.cmrrisk-setup

.PHONY: setup test bench demo dev-models clean

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

# Weights of the development models (bench/models/<task>_split/model.safetensors, used by the
# held-out benchmarks; not in the tree), restored from the repository's history and checked
# against their checksums.json. Needs a clone with history (not --depth 1).
DEV_MODELS_REV := 3a13e22b66fd11c05e2af602a7f81cefbd795870
dev-models: setup
	for m in cine_split lge_split; do \
	  git show $(DEV_MODELS_REV):bench/models/$$m/model.safetensors > bench/models/$$m/.weights.tmp \
	    && mv bench/models/$$m/.weights.tmp bench/models/$$m/model.safetensors \
	    || { rm -f bench/models/$$m/.weights.tmp; echo "dev-models: $(DEV_MODELS_REV) not in this clone's history; clone without --depth"; exit 1; }; \
	done
	$(PY) -c "from cmrrisk import modeldir; [modeldir.verify('bench/models/' + m) for m in ('cine_split', 'lge_split')]; print('development models restored and verified')"

clean:
	rm -rf $(VENV) .pytest_cache build *.egg-info CMRRiskExtension/*.egg-info demo-output demo-output.previous
