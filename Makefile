# The two commands a user types: `make run` and `make test`. Everything they need is bootstrapped here.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
TOOLS := .tools
CHECKOV := $(TOOLS)/checkov/bin/checkov
PYTEST_ARGS ?=

.PHONY: run test lint tf-check pytest bench chaos clean

# A stamp per requirements set: the venv is rebuilt only when the pins change.
$(VENV)/.stamp: requirements.txt requirements-dev.txt
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --disable-pip-version-check -r requirements-dev.txt
	@touch $@

# checkov pins its own versions of shared libraries, so it gets a venv of its own.
$(CHECKOV):
	@test -x $(TOOLS)/checkov/bin/python || $(PYTHON) -m venv $(TOOLS)/checkov
	$(TOOLS)/checkov/bin/pip install --quiet --disable-pip-version-check checkov==3.3.30

run: $(VENV)/.stamp
	$(PY) -m measure dev

test: $(VENV)/.stamp lint tf-check pytest

lint: $(VENV)/.stamp
	$(VENV)/bin/ruff check .

tf-check: $(CHECKOV)
	terraform fmt -check -recursive terraform
	../shared/tools/tf-validate/tf-validate terraform
	$(CHECKOV) -d terraform --framework terraform --quiet --compact --skip-download

pytest: $(VENV)/.stamp
	$(PY) -m pytest $(PYTEST_ARGS)

bench: $(VENV)/.stamp
	$(PY) -m benchmarks

chaos: $(VENV)/.stamp
	MEASURE_CHAOS_FULL=1 $(PY) -m pytest tests/test_chaos.py -s

clean:
	rm -rf $(VENV) $(TOOLS) .pytest_cache .ruff_cache .hypothesis .run
