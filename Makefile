# aimo-submit: every entry point a user or CI needs. Each target installs what it needs first.
PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed

# Rehearsal knobs (make local-gateway MODEL=... CSV=... BUDGET=...)
MODEL   ?= tiny-qwen2-math
CSV     ?= aimo_submit/assets/tiny_problems.csv
BUDGET  ?= 600
PROFILE ?= aimo2
KAGGLE_DATA ?=
GATEWAY ?=
RERUN   ?=
ARGS    ?=

.PHONY: help venv test local-gateway tiny-model notebook package bench bench-faults bench-deadline \
	bench-confidence lint clean

help:
	@echo "make local-gateway   rehearse the whole submission on the embedded tiny model (CPU)"
	@echo "make test            run the test suite"
	@echo "make tiny-model      retrain the embedded tiny model and its problem CSV, update the manifest (~12 min)"
	@echo "make notebook        build notebooks/aimo_submit.ipynb from its template"
	@echo "make package         build the Kaggle upload folders under build/"
	@echo "make bench           run the benchmarks and print their tables"
	@echo "make bench-faults    each injected fault on the tiny model and what predict did (~1 min)"
	@echo "make bench-deadline  1,000 simulated runs under injected faults through Submission.predict (6-25 min; SEEDS=N for fewer)"
	@echo "make bench-confidence confidence-weighted vote and online termination, tiny model"
	@echo "make lint            ruff"

venv: $(STAMP)

$(STAMP): requirements.txt requirements-data.txt
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q -r requirements.txt
	$(PY) -m pip install -q --no-deps -r requirements-data.txt
	touch $(STAMP)

test: $(STAMP)
	$(PY) -m pytest -q tests

# GATEWAY=standin: our stand-in of Kaggle's package for the profile (tests/fixtures/kaggle/PROFILE);
# RERUN=1: rehearse a competition rerun (gateway in another process, serve() blocking here).
STANDIN_DATA := tests/fixtures/kaggle/$(PROFILE)
local-gateway: $(STAMP)
	$(PY) -m aimo_submit local-gateway --model $(MODEL) --csv $(CSV) --time-budget $(BUDGET) \
		--profile $(PROFILE) $(if $(KAGGLE_DATA),--kaggle-data $(KAGGLE_DATA)) \
		$(if $(filter standin,$(GATEWAY)),--kaggle-data $(STANDIN_DATA)) \
		$(if $(RERUN),--rerun) $(ARGS)

# The manifest records the tiny model's sizes and sha256 (preflight and tests check them).
tiny-model: $(STAMP)
	$(PY) scripts/make_tiny_model.py
	$(PY) -m aimo_submit manifest update tiny-qwen2-math

notebook: $(STAMP)
	$(PY) -m aimo_submit build-notebook

package: $(STAMP)
	$(PY) -m aimo_submit package $(ARGS)

bench: $(STAMP)
	$(PY) -m bench

bench-faults: $(STAMP)
	$(PY) -m bench.faults

bench-deadline: $(STAMP)
	$(PY) -m bench.deadline --seeds $(or $(SEEDS),1000)

bench-confidence: $(STAMP)
	$(PY) -m bench.bench_confidence $(ARGS)

lint: $(STAMP)
	$(PY) -m ruff check aimo_submit tests scripts bench

clean:
	rm -rf build runs .pytest_cache
